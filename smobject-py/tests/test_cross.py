"""Python and Rust processes sharing objects: the same schema and fingerprint from both
declarations, each side opening the other's objects as its own struct, waits across languages,
mismatches refused naming the field, and no torn read against a flat-out Rust writer."""

from __future__ import annotations

import struct
import time

import pytest
from conftest import Telemetry

import smobject


class Sensor(smobject.Struct):
    """`tests::structs::evo::v2::Sensor`: the issue's 48-byte struct."""

    seq: smobject.u64
    pos: smobject.f64[3]
    status: smobject.u32
    mode: smobject.u32
    temp: smobject.f64


class Vec3(smobject.Struct):
    x: smobject.f64
    y: smobject.f64
    z: smobject.f64


class Pose(smobject.Struct):
    position: Vec3
    orientation: smobject.f64[4]


class Robot(smobject.Struct):
    """`Robot` of `smo-py-peer`: arrays of nested structs, nested arrays, 16-byte alignment."""

    seq: smobject.u64
    poses: Pose[2]
    grid: smobject.u16[2, 3]
    level: smobject.i32
    small: smobject.i8[4]
    ratio: smobject.f32
    wide: smobject.u128


class Counters(smobject.Struct):
    hits: smobject.AtomicU64
    misses: smobject.AtomicU32
    _pad: smobject.u32


class Counter(smobject.Struct):
    """`tests::structs::Counter`."""

    n: smobject.u64
    other: smobject.u64


ROBOT = {
    "seq": 7,
    "poses": [
        {"position": {"x": i + 0.5, "y": -float(i), "z": i * 2.0}, "orientation": [1.0, 0.0, 0.0, float(i)]}
        for i in (1, 2)
    ],
    "grid": [[1, 2, 3], [4, 5, 6]],
    "level": -5,
    "small": [-1, 2, -3, 4],
    "ratio": struct.unpack("f", struct.pack("f", 0.1))[0],
    "wide": 2**128 - 2,
}


@pytest.mark.parametrize("cls", [Telemetry, Sensor, Robot, Counters], ids=lambda c: c.__name__)
def test_same_schema_and_fingerprint_as_the_rust_macro(spawn, cls):
    p = spawn("smo-py-peer", "fingerprint", cls.__name__, stdin=False)
    fingerprint, encoded = p.line().split()
    assert p.finish() == 0
    assert encoded == cls.encoded_schema().hex(), "byte for byte the schema #[shared_memory] generates"
    assert int(fingerprint, 16) == cls.schema().fingerprint


def test_rust_writes_python_reads_without_declaration(key_path, spawn):
    p = spawn("smo-helper", "t-produce", key_path, "a")
    p.expect("ok")
    with smobject.access(key_path, "a") as o:
        assert o.read() == {"seq": 42, "pos": [1.5, -2.5, 3.25], "status": 7, "_pad": 0}
        assert o.version == 1 and o.schema == Telemetry.schema() and not o.created
        assert o.creator_pid == p.proc.pid
    with smobject.access(key_path, "a", Telemetry) as o:
        assert o.read()["seq"] == 42
    p.send()
    assert p.finish() == 0


def test_rust_nested_struct_read_by_python(key_path, spawn):
    p = spawn("smo-py-peer", "create", "Robot", key_path, "r")
    p.expect("ok")
    with smobject.access(key_path, "r") as o:
        assert o.read() == ROBOT
        assert o.schema == Robot.schema()
    with smobject.access(key_path, "r", Robot) as o:
        assert o.read()["poses"][1]["position"]["x"] == 2.5
    p.send()
    assert p.finish() == 0


def test_python_creates_rust_accesses_as_its_own_struct(key_path, spawn):
    with smobject.create(key_path, "a", Telemetry) as o:
        o.write(seq=42, pos=[1.5, -2.5, 3.25], status=7)
        p = spawn("smo-helper", "t-consume", key_path, "a", stdin=False)
        assert p.line() == "ok 42 [1.5, -2.5, 3.25] 7 v1"
        assert p.finish() == 0
    with smobject.create(key_path, "r", Robot) as o:
        o.write(**ROBOT)
        p = spawn("smo-py-peer", "open", "Robot", key_path, "r", stdin=False)
        line = p.line()
        assert line.startswith("ok (true, Robot { seq: 7,"), line
        assert p.finish() == 0


def test_python_waits_rust_writes(key_path, spawn):
    with smobject.create(key_path, "C", Counter) as o:
        p = spawn("smo-helper", "t-inc", key_path, "C", "1000")
        p.expect("ok")
        seen = o.version
        p.send()
        start = time.monotonic()
        v = o.wait_for_update(seen, timeout=10)
        assert v > seen and time.monotonic() - start < 5
        while v < 1000:
            v = o.wait_for_update(v, timeout=10)
        p.expect("done")
        assert o.read() == {"n": 1000, "other": 0} and o.version == 1000
        p.send()
        assert p.finish() == 0


def test_rust_waits_python_writes(key_path, spawn):
    with smobject.create(key_path, "C", Counter) as o:
        p = spawn("smo-helper", "t-wait", key_path, "C", "0", "10000", stdin=False)
        p.expect("waiting")
        time.sleep(0.1)
        o.write(n=5)
        line = p.line().split()
        assert line[:3] == ["ok", "1", "5"], line
        assert p.finish() == 0


def test_mismatched_python_declaration_refused_naming_the_field(key_path, spawn):
    class Wrong(smobject.Struct, name="Telemetry"):
        seq: smobject.u64
        pos: smobject.f32[6]
        status: smobject.u32
        _pad: smobject.u32

    p = spawn("smo-helper", "t-produce", key_path, "a")
    p.expect("ok")
    with pytest.raises(smobject.LayoutMismatch) as e:
        smobject.access(key_path, "a", Wrong)
    msg = str(e.value)
    assert "field `pos`: `[f32; 6]` here, `[f64; 3]` in the object created by pid" in msg, msg
    assert e.value.path == key_path and e.value.id == "a"
    with pytest.raises(smobject.LayoutMismatch, match="holds `Telemetry`, not `Sensor`"):
        smobject.access(key_path, "a", Sensor)
    with pytest.raises(smobject.LayoutMismatch, match="field `status`"):
        smobject.open_or_create(key_path, "a", WideStatus)
    p.send()
    assert p.finish() == 0

    # The other way: Rust refuses a Python object whose struct differs from its own.
    with smobject.create(key_path, "a", WideStatus):
        p = spawn("smo-helper", "t-consume", key_path, "a", stdin=False)
        line = p.line()
        assert line.startswith("err LayoutMismatch") and "field `status`" in line, line
        assert p.finish() == 0


class WideStatus(smobject.Struct, name="Telemetry"):
    """`tests::structs::v2::Telemetry`: `status` widened to u64."""

    seq: smobject.u64
    pos: smobject.f64[3]
    status: smobject.u64


def test_evolution_across_languages(key_path, spawn):
    # Python's newer Sensor; Rust's older build (v1: seq, pos) reads and writes its prefix.
    with smobject.create(key_path, "e", Sensor) as o:
        o.write(seq=1, pos=[1, 2, 3], status=7, mode=8, temp=9.5)
        p = spawn("smo-evolve", "v1-rw", key_path, stdin=False)
        assert p.line() == "ok 1 [1.0, 2.0, 3.0] v1"
        assert p.line() == "wrote v2"
        assert p.finish() == 0
        assert o.read() == {"seq": 2, "pos": [4.0, 5.0, 6.0], "status": 7, "mode": 8, "temp": 9.5}
    # Rust's older object; Python's newer declaration is refused, naming the missing field.
    p = spawn("smo-evolve", "v1-create", key_path)
    p.expect("ok")
    with pytest.raises(smobject.LayoutMismatch) as e:
        smobject.access(key_path, "e", Sensor)
    assert "field `status` is missing from the object created by pid" in str(e.value)
    assert "older build of `Sensor` with 2 fields" in str(e.value)

    class OldSensor(smobject.Struct, name="Sensor"):
        seq: smobject.u64
        pos: smobject.f64[3]

    with smobject.access(key_path, "e", OldSensor) as o:
        assert o.read() == {"seq": 1, "pos": [1.0, 2.0, 3.0]}
    p.send()
    assert p.finish() == 0


def test_no_torn_read_against_a_flat_out_rust_writer(key_path, spawn):
    p = spawn("smo-helper", "t-tele-writer", key_path, "a")
    p.expect("ok")
    reads = changes = 0
    last = -1
    buf = bytearray(40)
    with smobject.access(key_path, "a", Telemetry) as o:
        end = time.monotonic() + 1.0
        while time.monotonic() < end:
            t = o.read()
            i = t["seq"]
            assert t["pos"] == [float(i)] * 3, t
            assert t["status"] == t["_pad"] == i & 0xFFFFFFFF, t
            v = o.read_into(buf)
            seq, x, y, z, status, pad = struct.unpack("=Q3dII", buf)
            assert x == y == z == float(seq) and status == pad == seq & 0xFFFFFFFF
            assert v >= i
            reads += 2
            if i != last:
                changes += 1
                last = i
        p.send()
        done = p.expect("done")
        assert p.finish() == 0
        assert o.read()["seq"] == int(done.split()[1])
    assert reads > 100 and changes > 10, (reads, changes)


def test_no_torn_read_of_words(key_path, spawn):
    p = spawn("smo-helper", "t-writer", key_path, "W")
    p.expect("ok")
    with smobject.access(key_path, "W") as o:
        assert o.schema.name == "Words" and o.schema["words"].shape == (32,)
        seen = set()
        end = time.monotonic() + 0.5
        while time.monotonic() < end:
            words = o.read()["words"]
            assert len(set(words)) == 1, words
            seen.add(words[0])
        assert len(seen) > 10
        p.kill()  # killed while writing: its attachment goes with it, this one frees
