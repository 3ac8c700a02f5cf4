"""Lifetime across Python processes: the last one out frees, also when it simply exits; a
SIGKILLed Python process leaves nothing after the next create."""

from __future__ import annotations

import os
import signal
import sys
import tempfile
import threading

import pytest
from conftest import no_segments_under

import smobject

DECLARE = """
import smobject, sys
class Telemetry(smobject.Struct):
    seq: smobject.u64
    pos: smobject.f64[3]
    status: smobject.u32
    _pad: smobject.u32
path, id = sys.argv[1], sys.argv[2]
"""


class Telemetry(smobject.Struct):
    seq: smobject.u64
    pos: smobject.f64[3]
    status: smobject.u32
    _pad: smobject.u32


def test_sigkilled_python_process_leaves_nothing_after_the_next_create(key_path, spawn):
    code = DECLARE + """
o = smobject.create(path, id, Telemetry)
o.write(seq=9)
print("ok", flush=True)
o.wait_for_update(o.version)          # sleeps in a futex wait, GIL released, until killed
"""
    p = spawn(sys.executable, "-c", code, key_path, "a")
    p.expect("ok")
    assert p.kill() == -signal.SIGKILL
    assert len(no_segments_under(key_path)) == 2, "the pair outlives its only process"
    # The stale pair can still be read...
    with smobject.access(key_path, "a") as o:
        assert o.read()["seq"] == 9
    # ...and the next create replaces it; closing that leaves nothing.
    with smobject.create(key_path, "a", Telemetry) as o:
        assert o.created and o.read()["seq"] == 0
    assert not no_segments_under(key_path)


def test_python_process_that_exits_without_close_frees(key_path, spawn):
    code = DECLARE + """
o = smobject.create(path, id, Telemetry)
held = [o, [o]]                      # still referenced at exit
held[1].append(held)                  # even from a reference cycle
o.write(seq=3)
print("ok", flush=True)
"""
    p = spawn(sys.executable, "-c", code, key_path, "a")
    p.expect("ok")
    assert p.finish() == 0
    assert not no_segments_under(key_path), "the last one out, exiting normally, freed the pair"


def test_last_one_out_frees_across_python_processes(key_path, spawn):
    code = DECLARE + """
o = smobject.access(path, id)
print("ok", o.read()["seq"], o.attached, flush=True)
sys.stdin.readline()
print("bye", o.attached, flush=True)
"""
    o = smobject.create(key_path, "a", Telemetry)
    o.write(seq=5)
    p = spawn(sys.executable, "-c", code, key_path, "a")
    assert p.expect("ok").split() == ["ok", "5", "2"]
    o.close()  # the creator leaves first: the reader keeps the object
    assert len(no_segments_under(key_path)) == 2
    p.send()
    assert p.expect("bye").split() == ["bye", "1"]
    assert p.finish() == 0
    assert not no_segments_under(key_path), "the reader was the last one out"


def test_python_child_of_fork_counts_as_attached(key_path):
    o = smobject.create(key_path, "a", Telemetry)
    pid = os.fork()
    if pid == 0:  # the child inherits the mapping: only async-signal-safe calls, then _exit
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    assert status == 0
    assert o.attached == 1, "the kernel's count is back to this process alone"
    o.close()
    assert not no_segments_under(key_path)


def test_permission_denied_is_a_permission_error():
    """A user other than the owner is refused access to a 0600 object (root only: the child
    drops to `nobody`, which has no CAP_IPC_OWNER)."""
    if os.geteuid() != 0:
        pytest.skip("needs root to switch to another user")
    if threading.active_count() != 1:
        pytest.skip("forks: needs a single-threaded process")
    shared = tempfile.mkdtemp(prefix="smobject-py-perm-")
    try:
        os.chmod(shared, 0o755)
        path = os.path.join(shared, "key")
        with open(path, "w"):
            pass
        os.chmod(path, 0o644)
        with smobject.create(path, "a", Telemetry, mode=0o600):
            r, w = os.pipe()
            pid = os.fork()
            if pid == 0:  # the child reports on the pipe and _exits, whatever happens
                out = b"?"
                try:
                    os.setgroups([])
                    os.setgid(65534)
                    os.setuid(65534)
                    try:
                        smobject.access(path, "a").close()
                        out = b"opened"
                    except smobject.Error as e:
                        out = f"{type(e).__name__} {isinstance(e, PermissionError)} {e.kind} {e}".encode()
                finally:
                    os.write(w, out)
                    os._exit(0)
            os.close(w)
            with os.fdopen(r, "rb") as f:
                got = f.read().decode()
            _, status = os.waitpid(pid, 0)
            assert status == 0
        assert got.startswith("PermissionDenied True PermissionDenied permission denied"), got
        assert f"path {path}" in got and "hint: " in got
        assert not no_segments_under(path)
    finally:
        for name in os.listdir(shared):
            os.unlink(os.path.join(shared, name))
        os.rmdir(shared)


def test_a_group_shared_object_needs_its_mode_and_its_stale_pair_is_freed(key_path, spawn):
    code = DECLARE + """
o = smobject.create(path, id, Telemetry, mode=0o660)
o.write(seq=4)
print("ok", flush=True)
sys.stdin.readline()                  # holds the object until killed (a write must not end it)
"""
    p = spawn(sys.executable, "-c", code, key_path, "a")
    p.expect("ok")
    # As in Rust, only this user's 0o600 objects are trusted unless told.
    with pytest.raises(smobject.ForeignOwner) as e:
        smobject.access(key_path, "a")
    assert "0o660" in str(e.value) and "mode=0o660" in e.value.hint, str(e.value)
    with pytest.raises(smobject.ForeignOwner):
        smobject.access(key_path, "a", allow_uid=[65534])  # another uid is not another mode
    with pytest.raises(smobject.InvalidOptions, match="outside 0o666"):
        smobject.access(key_path, "a", mode=0o755)
    # Modes that cannot work are refused, naming the mode, not narrowed or overflowed.
    for mode, why in ((0o060, "owner's read and write"), (-1, "mode -1"), (2**32, "not a permission")):
        with pytest.raises(smobject.InvalidOptions, match=why) as e:
            smobject.create(key_path, "b", Telemetry, mode=mode)
        assert isinstance(e.value, ValueError)
    with smobject.access(key_path, "a", Telemetry, mode=0o660) as o:
        assert o.read()["seq"] == 4
        o.write(seq=5)
        assert o.read()["seq"] == 5
    # Its creator dies: the stale 0o660 pair is removed like any other (nothing is read).
    assert p.kill() == -signal.SIGKILL
    assert len(no_segments_under(key_path)) == 2  # the pair under 'a' only: none under 'b'
    assert smobject.remove_stale(key_path, "a") is True
    assert not no_segments_under(key_path)


def test_out_of_file_descriptors_is_an_os_error_with_the_ulimit_hint(key_path, spawn):
    # Each open object holds its key file open (for the lock); a low RLIMIT_NOFILE runs out.
    # A key file per object, made by create: the open that runs out is the key file's
    # creation (which once hinted to create the key file beforehand).
    code = DECLARE + """
import os, resource
resource.setrlimit(resource.RLIMIT_NOFILE, (24, 24))
held = []
try:
    for i in range(64):
        held.append(smobject.create(f"{path}.{i}", "a", Telemetry))
    print("no error", flush=True)
except smobject.Error as e:
    print("err", e.kind, e.errno, len(held), "|", e.hint, flush=True)
for i, o in enumerate(held):
    o.close()
    os.remove(f"{path}.{i}")
"""
    p = spawn(sys.executable, "-c", code, key_path, "a")
    line = p.expect("err ")
    kind, errno_, _, hint = line.split(" ", 4)[1:]
    assert kind == "Os" and int(errno_) == 24, line  # EMFILE
    assert "ulimit -n" in hint and "beforehand" not in hint, line
    assert p.finish() == 0
    assert not no_segments_under(key_path)
