"""Fixtures of the Python bindings' tests: a key file per test with a leak check, and Rust peer
processes that are always reaped.

The Rust helpers (`smo-helper`, `smo-evolve`, `smo-py-peer` of the workspace's `tests` crate)
are found in `$SMOBJECT_TEST_BIN_DIR`, by default the workspace's `target/debug` (built by
`cargo test --workspace --no-run`). Tests that need them are skipped when they are missing,
unless `SMOBJECT_TEST_REQUIRE_BINS=1` (CI) makes that a failure.
"""

from __future__ import annotations

import gc
import os
import select
import subprocess
import time
from pathlib import Path
from typing import Iterator, List, Optional

import pytest

import smobject

ROOT = Path(__file__).resolve().parents[2]
BIN_DIR = Path(os.environ.get("SMOBJECT_TEST_BIN_DIR", ROOT / "target" / "debug"))
REQUIRE_BINS = os.environ.get("SMOBJECT_TEST_REQUIRE_BINS") == "1"


def bin_path(name: str) -> str:
    p = BIN_DIR / name
    if not p.exists():
        msg = f"the Rust helper {p} is missing (cargo test --workspace --no-run builds it)"
        if REQUIRE_BINS:
            pytest.fail(msg)
        pytest.skip(msg)
    return str(p)


def ftok(path: str, id: str) -> int:
    """glibc's ftok, to find a test's segments in /proc/sysvipc/shm."""
    st = os.stat(path)
    key = (st.st_ino & 0xFFFF) | ((st.st_dev & 0xFF) << 16) | ((ord(id) & 0xFF) << 24)
    return key - (1 << 32) if key >= 1 << 31 else key


def segments() -> List[int]:
    """The keys of every SysV segment that exists now."""
    with open("/proc/sysvipc/shm") as f:
        lines = f.read().splitlines()[1:]
    return [int(line.split()[0]) for line in lines if line.strip()]


def keys_of(path: str) -> set:
    """Every data and counter key an object under `path` can have (ids 'A'..'z')."""
    out = set()
    for i in range(ord("A"), ord("z") + 1):
        out.add(ftok(path, chr(i)))
        out.add(ftok(path, chr(i - 58)))
    return out


class Peer:
    """A child process speaking lines: `expect` reads one with a time-out."""

    def __init__(self, args: List[str], stdin: bool = True) -> None:
        self.args = args
        self.proc = subprocess.Popen(
            args,
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def line(self, timeout: float = 20.0) -> str:
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            raise AssertionError(f"{self.args}: no line within {timeout} s")
        line = self.proc.stdout.readline()
        if not line:
            err = self.proc.stderr.read() if self.proc.stderr else ""
            raise AssertionError(f"{self.args}: ended without a line; stderr: {err}")
        return line.rstrip("\n")

    def expect(self, prefix: str, timeout: float = 20.0) -> str:
        line = self.line(timeout)
        assert line.startswith(prefix), f"{self.args}: expected {prefix!r}, got {line!r}"
        return line

    def send(self, text: str = "go") -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()

    def finish(self, timeout: float = 20.0) -> int:
        """Waits for the exit and returns the status (the caller asserts it)."""
        try:
            return self.proc.wait(timeout)
        finally:
            self.close_pipes()

    def close_pipes(self) -> None:
        for f in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if f is not None:
                try:
                    f.close()
                except OSError:
                    pass

    def kill(self) -> int:
        """SIGKILL (if still running), then reap."""
        if self.proc.poll() is None:
            self.proc.kill()
        status = self.proc.wait(20)
        self.close_pipes()
        return status

    def stop(self) -> None:
        """Ends a helper that may still run: EOF on its stdin first (the helpers that hold an
        object until a stdin line then detach normally), SIGKILL after 5 s."""
        if self.proc.poll() is None and self.proc.stdin is not None:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                pass
        self.kill()


@pytest.fixture
def key_path(tmp_path: Path) -> Iterator[str]:
    """A fresh key file for the test; afterwards, no segment may remain under its keys."""
    path = tmp_path / "key"
    path.touch()
    keys = keys_of(str(path))
    yield str(path)
    gc.collect()
    deadline = time.monotonic() + 5
    left = [k for k in segments() if k in keys]
    while left and time.monotonic() < deadline:  # a child's exit may still be detaching
        time.sleep(0.02)
        gc.collect()
        left = [k for k in segments() if k in keys]
    assert not left, f"segments left behind: {[hex(k & 0xFFFFFFFF) for k in left]}"


@pytest.fixture
def peers() -> Iterator[List[Peer]]:
    """Peer processes of the test: whatever is still running at the end is killed and reaped."""
    started: List[Peer] = []
    yield started
    for p in started:
        p.stop()


@pytest.fixture
def spawn(peers: List[Peer]):
    """`spawn(binary, *args)` starts a Rust helper; `spawn(sys.executable, "-c", code)` Python."""

    def start(binary: str, *args: str, stdin: bool = True) -> Peer:
        exe = binary if os.path.isabs(binary) else bin_path(binary)
        p = Peer([exe, *args], stdin=stdin)
        peers.append(p)
        return p

    return start


class Telemetry(smobject.Struct):
    """`tests::structs::Telemetry`."""

    seq: smobject.u64
    pos: smobject.f64[3]
    status: smobject.u32
    _pad: smobject.u32


def no_segments_under(path: str) -> Optional[List[int]]:
    keys = keys_of(path)
    return [k for k in segments() if k in keys]
