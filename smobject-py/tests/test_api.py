"""The Python API in one process: open, read, write, read_into, dtype, schema, last_write,
close, and the errors of each."""

from __future__ import annotations

import gc
import itertools
import struct
import time

import pytest
from conftest import Telemetry, no_segments_under

import smobject


class Sensor(smobject.Struct):
    """The issue's 48-byte struct."""

    seq: smobject.u64
    pos: smobject.f64[3]
    status: smobject.u32
    mode: smobject.u32
    temp: smobject.f64


def test_create_read_write_version(key_path):
    with smobject.create(key_path, "a", Sensor) as o:
        assert o.created and o.size == 48 and o.version == 0
        assert o.read() == {"seq": 0, "pos": [0.0, 0.0, 0.0], "status": 0, "mode": 0, "temp": 0.0}
        v = o.write(seq=8, pos=[4.0, 5.0, 6.0], temp=-1.5)
        assert v == 1 == o.version, "several fields, one publish"
        assert o.read() == {"seq": 8, "pos": [4.0, 5.0, 6.0], "status": 0, "mode": 0, "temp": -1.5}
        # A tuple, a generator and a path assignment; untouched fields keep their values.
        assert o.write(pos=(1, 2, 3)) == 2
        assert o.write(**{"pos[1]": 2.5, "status": 7}) == 3
        assert o.read() == {"seq": 8, "pos": [1.0, 2.5, 3.0], "status": 7, "mode": 0, "temp": -1.5}
        assert o.write() == 4, "no fields: still one publish"
        assert (o.path, o.id, o.attached) == (key_path, "a", 1)
        assert o.key == smobject_key(key_path, "a")
        assert o.creator_pid > 0
        assert "Sensor" in repr(o)


def smobject_key(path: str, id: str) -> int:
    from conftest import ftok

    return ftok(path, id)


def test_values_of_every_scalar_type_round_trip(key_path):
    class Every(smobject.Struct):
        u128_: smobject.u128
        i128_: smobject.i128
        u64_: smobject.u64
        i64_: smobject.i64
        f64_: smobject.f64
        u32_: smobject.u32
        i32_: smobject.i32
        f32_: smobject.f32
        a32: smobject.AtomicU32
        u16_: smobject.u16
        i16_: smobject.i16
        u8_: smobject.u8
        i8_: smobject.i8
        ai8: smobject.AtomicI8
        _pad: smobject.u8

    values = {
        "u128_": 2**128 - 1,
        "i128_": -(2**127),
        "u64_": 2**64 - 1,
        "i64_": -(2**63),
        "f64_": 1e300,
        "u32_": 2**32 - 1,
        "i32_": -(2**31),
        "f32_": 0.1,
        "a32": 123,
        "u16_": 65535,
        "i16_": -32768,
        "u8_": 255,
        "i8_": -128,
        "ai8": -1,
        "_pad": True,  # a bool is an int
    }
    with smobject.create(key_path, "a", Every) as o:
        o.write(**values)
        got = o.read()
    assert got["f32_"] == struct.unpack("f", struct.pack("f", 0.1))[0], "f32 widens exactly"
    got["f32_"] = 0.1
    values["_pad"] = 1
    assert got == values


def test_nested_structs_and_arrays(key_path):
    class Vec3(smobject.Struct):
        x: smobject.f64
        y: smobject.f64
        z: smobject.f64

    class Path(smobject.Struct):
        seq: smobject.u32
        count: smobject.u16
        flags: smobject.u8[2]
        points: Vec3[2]
        grid: smobject.u16[2, 3]
        cube: smobject.u8[2][2][2]
        _pad: smobject.u32

    s = Path.schema()
    assert [(f.name, f.offset, f.shape, f.type) for f in s] == [
        ("seq", 0, (), "u32"),
        ("count", 4, (), "u16"),
        ("flags", 6, (2,), "u8"),
        ("points", 8, (2,), "Vec3"),
        ("grid", 56, (2, 3), "u16"),
        ("cube", 68, (2, 2, 2), "u8"),
        ("_pad", 76, (), "u32"),
    ]
    assert s.size == 80 and s.align == 8, "76 bytes rounded up to 8"
    assert [(f.name, f.offset) for f in s["points"].fields] == [("x", 0), ("y", 8), ("z", 16)]
    assert s["grid"].rust == "[[u16; 3]; 2]" and s["points"].rust == "[Vec3; 2]"
    # `f64[2, 3]` and `f64[3][2]` are one type.
    assert smobject.u16[2, 3].rust() == smobject.u16[3][2].rust() == "[[u16; 3]; 2]"


def test_nested_values(key_path):
    class Vec3(smobject.Struct):
        x: smobject.f64
        y: smobject.f64
        z: smobject.f64

    class Pose(smobject.Struct):
        position: Vec3
        waypoints: Vec3[2]
        grid: smobject.i16[2, 2]

    with smobject.create(key_path, "p", Pose) as o:
        o.write(position={"x": 1, "y": 2, "z": 3}, grid=[[1, -2], [3, -4]])
        o.write(**{"waypoints[1].y": 5.5, "position": {"z": 9}})
        assert o.read() == {
            "position": {"x": 1.0, "y": 2.0, "z": 9.0},
            "waypoints": [{"x": 0.0, "y": 0.0, "z": 0.0}, {"x": 0.0, "y": 5.5, "z": 0.0}],
            "grid": [[1, -2], [3, -4]],
        }
        assert o.schema["waypoints"].fields[1].name == "y"


def test_read_into_buffers(key_path):
    with smobject.create(key_path, "a", Sensor) as o:
        o.write(seq=7, pos=[1.0, 2.0, 3.0], status=2, mode=3, temp=4.5)
        buf = bytearray(48)
        assert o.read_into(buf) == 1
        assert struct.unpack("=Q3dIId", buf) == (7, 1.0, 2.0, 3.0, 2, 3, 4.5)
        big = bytearray(64)
        assert o.read_into(memoryview(big)[8:56]) == 1, "a writable memoryview slice"
        assert big[8:56] == buf
        with pytest.raises(ValueError, match="exactly 48 bytes"):
            o.read_into(bytearray(47))
        with pytest.raises((BufferError, TypeError)):
            o.read_into(bytes(48))
        with pytest.raises(TypeError):
            o.read_into("x" * 48)


def test_dtype_and_numpy_read_into(key_path):
    np = pytest.importorskip("numpy")
    with smobject.create(key_path, "a", Sensor) as o:
        o.write(seq=7, pos=[1.0, 2.0, 3.0], status=2, mode=3, temp=4.5)
        dt = o.dtype
        assert dt.names == ("seq", "pos", "status", "mode", "temp")
        assert [dt.fields[n][1] for n in dt.names] == [0, 8, 32, 36, 40]
        assert dt.itemsize == 48
        assert dt["pos"].shape == (3,) and dt["seq"] == np.dtype("u8") and dt["temp"] == np.dtype("f8")
        a = np.zeros((), dt)
        assert o.read_into(a) == 1
        assert int(a["seq"]) == 7 and list(a["pos"]) == [1.0, 2.0, 3.0] and float(a["temp"]) == 4.5
        arr = np.zeros(1, dt)
        o.read_into(arr)
        assert arr[0]["status"] == 2
        o.write(seq=np.uint64(9), pos=np.array([7.0, 8.0, 9.0]), temp=np.float32(0.5), status=np.int8(3))
        assert o.read() == {"seq": 9, "pos": [7.0, 8.0, 9.0], "status": 3, "mode": 3, "temp": 0.5}
        with pytest.raises(smobject.InvalidValueType):
            o.write(seq=np.float32(1.0))


def test_dtype_of_nested_struct(key_path):
    np = pytest.importorskip("numpy")

    class Vec3(smobject.Struct):
        x: smobject.f32
        y: smobject.f32
        z: smobject.f32

    class Body(smobject.Struct):
        wide: smobject.u128
        n: smobject.AtomicU64
        pts: Vec3[2]
        id: smobject.u32
        _pad: smobject.u32[3]

    with smobject.create(key_path, "b", Body) as o:
        o.write(pts=[{"x": 1}, {"z": 2}], id=3, wide=2**100, n=4)
        a = np.zeros((), o.dtype)
        o.read_into(a)
        assert a["pts"][1]["z"] == 2.0 and a["id"] == 3 and a["n"] == 4
        assert int.from_bytes(a["wide"].tobytes(), "little") == 2**100
        assert o.dtype.itemsize == o.size == 64


def test_schema_of_object(key_path):
    with smobject.create(key_path, "a", Sensor) as o:
        s = o.schema
        assert s.name == "Sensor" and s.size == 48 and s.align == 8
        assert s.names == ("seq", "pos", "status", "mode", "temp")
        pos = s["pos"]
        assert (pos.type, pos.offset, pos.shape, pos.size) == ("f64", 8, (3,), 24)
        assert s.fingerprint == Sensor.schema().fingerprint
        assert s == Sensor.schema()
        assert "struct Sensor { seq: u64, pos: [f64; 3]" in str(s)
        with pytest.raises(KeyError, match="no field `nope`"):
            s["nope"]


def test_last_write(key_path):
    with smobject.create(key_path, "a", Sensor) as o:
        time.sleep(0.3)
        assert o.last_write >= 0.2, "seconds since the creation"
        o.write(seq=1)
        assert 0 <= o.last_write < 0.2


def test_open_or_create_and_access(key_path):
    a = smobject.open_or_create(key_path, "a", Sensor)
    assert a.created
    b = smobject.open_or_create(key_path, "a", Sensor)
    assert not b.created
    c = smobject.access(key_path, "a")  # no declaration
    d = smobject.access(key_path, "a", Sensor)
    a.write(seq=5)
    assert b.read()["seq"] == c.read()["seq"] == d.read()["seq"] == 5
    assert c.attached == 4
    for o in (a, b, c, d):
        o.close()


def test_access_by_prefix_rule(key_path):
    class Old(smobject.Struct, name="Sensor"):
        seq: smobject.u64
        pos: smobject.f64[3]

    with smobject.create(key_path, "a", Sensor) as new:
        new.write(seq=1, temp=2.5)
        with smobject.access(key_path, "a", Old) as old:
            # The handle reads and writes the whole object by its stored schema.
            assert old.schema.name == "Sensor" and old.size == 48
            old.write(seq=2)
        assert new.read()["seq"] == 2 and new.read()["temp"] == 2.5
        # A Python process with a newer struct than the object: refused, naming the field.
        with pytest.raises(smobject.LayoutMismatch, match="field `temp`") as e:
            smobject.access(key_path, "a", Old2)
        assert e.value.kind == "LayoutMismatch"


class Old2(smobject.Struct, name="Sensor"):
    seq: smobject.u64
    pos: smobject.f64[3]
    status: smobject.u32
    mode: smobject.u32
    temp: smobject.f32
    _pad: smobject.u32


def test_close_context_manager_and_gc_detach(key_path):
    o = smobject.create(key_path, "a", Sensor)
    o.close()
    o.close()
    assert o.closed and "closed" in repr(o)
    with pytest.raises(smobject.Closed):
        o.read()
    with pytest.raises(smobject.Closed):
        o.version
    with pytest.raises(smobject.Closed, match="was closed"):
        with o:
            pass
    assert not no_segments_under(key_path), "close() detached: the last one out freed it"
    with smobject.create(key_path, "a", Sensor) as o:
        pass
    assert o.closed and not no_segments_under(key_path)
    o = smobject.create(key_path, "a", Sensor)
    del o
    gc.collect()
    assert not no_segments_under(key_path), "garbage collection detaches"
    with pytest.raises(smobject.NotFound):
        smobject.access(key_path, "a")


def test_errors_carry_kind_key_path_id_hint(key_path):
    with smobject.create(key_path, "a", Sensor):
        with pytest.raises(smobject.AlreadyExists) as e:
            smobject.create(key_path, "a", Sensor)
    err = e.value
    assert isinstance(err, smobject.Error) and err.kind == "AlreadyExists"
    assert err.path == key_path and err.id == "a" and err.key == smobject_key(key_path, "a")
    assert err.hint and "hint: " + err.hint in str(err)
    assert f"path {key_path}" in str(err) and "id 'a'" in str(err)

    with pytest.raises(smobject.NotFound) as e:
        smobject.access(key_path, "b")
    assert e.value.kind == "NotFound" and "no object exists" in str(e.value)

    with pytest.raises(smobject.PathNotFound) as e:
        smobject.access(key_path + ".missing", "a")
    assert isinstance(e.value, FileNotFoundError) and e.value.kind == "PathNotFound"

    for bad in ["", "ab", "é", "0"]:
        with pytest.raises(smobject.InvalidId) as e:
            smobject.access(key_path, bad)
        assert isinstance(e.value, ValueError) and e.value.kind == "InvalidId"


def test_exception_hierarchy():
    assert issubclass(smobject.Timeout, TimeoutError) and issubclass(smobject.Timeout, smobject.Error)
    assert issubclass(smobject.PermissionDenied, PermissionError)
    assert issubclass(smobject.InvalidValue, ValueError)
    assert issubclass(smobject.InvalidValueType, TypeError)
    assert issubclass(smobject.InvalidValueType, smobject.InvalidValue)
    from smobject._errors import BY_KIND

    kinds = {
        "PathNotFound", "InvalidId", "NotFound", "AlreadyExists", "PermissionDenied",
        "ForeignOwner", "SizeMismatch", "LayoutMismatch", "NotAnObject", "Limit", "Timeout",
        "InUse", "Removed", "KeyCollision", "Unrecoverable", "InvalidValue", "InvalidOptions", "Os",
    }
    assert set(BY_KIND) == kinds
    for kind, cls in BY_KIND.items():
        assert cls.kind == kind and getattr(smobject, kind) is cls
        assert str(cls("some message")) == "some message"


def test_write_refuses_bad_values_and_writes_nothing(key_path):
    class Vec3(smobject.Struct):
        x: smobject.f64
        y: smobject.f64
        z: smobject.f64

    class T(smobject.Struct):
        seq: smobject.u64
        small: smobject.i8
        _pad: smobject.u8[7]
        pos: smobject.f64[3]
        v: Vec3

    with smobject.create(key_path, "a", T) as o:
        o.write(seq=1, pos=[1, 2, 3])
        before, v = o.read(), o.version
        cases = [
            (dict(seq=2, nope=1), smobject.InvalidValue, "no field `nope`"),
            (dict(seq=2, small=128), smobject.InvalidValue, "`small` is a `i8`: 128 is out of range"),
            (dict(seq=-1), smobject.InvalidValue, "`seq` is a `u64`: -1 is out of range"),
            (dict(seq=2**200), smobject.InvalidValue, "`seq` is a `u64`: 1606938044258990275541962092341162602522202993782792835301376 is out of range"),
            (dict(seq=2, pos=[1, 2]), smobject.InvalidValue, "`pos` is a `[f64; 3]`: 2 values given, 3 needed"),
            (dict(seq=2, **{"pos[3]": 1.0}), smobject.InvalidValue, "index 3 is out of range"),
            (dict(seq=2, v={"w": 1}), smobject.InvalidValue, "no field `w`"),
            (dict(seq="2"), smobject.InvalidValueType, "`seq` is a `u64`: an int is needed, not a `str`"),
            (dict(seq=2.0), smobject.InvalidValueType, "`seq` is a `u64`: an int is needed, not a `float`"),
            (dict(seq=2, pos="abc"), smobject.InvalidValueType, "`pos` is a `[f64; 3]`: a sequence is needed"),
            (dict(seq=2, pos=[1, "x", 3]), smobject.InvalidValueType, "`pos[1]` is a `f64`: a number is needed, not a `str`"),
            (dict(seq=2, v=[1, 2, 3]), smobject.InvalidValueType, "`v` is a `Vec3`: a dict of its fields is needed"),
            (dict(seq=2, pos=None), smobject.InvalidValueType, "not a `NoneType`"),
            # An endless (or huge) iterator is refused after n + 1 items, not collected.
            (dict(seq=2, pos=itertools.repeat(1.0)), smobject.InvalidValue, "`pos` is a `[f64; 3]`: more than 3 values given, 3 needed"),
            (dict(seq=2, pos=range(10**12)), smobject.InvalidValue, "more than 3 values given"),
            # An int beyond a double is out of range, not an infinity (of either sign).
            (dict(seq=2, **{"pos[0]": -(10**400)}), smobject.InvalidValue, "`pos[0]` is a `f64`: -1000"),
            (dict(seq=2, **{"pos[0]": 10**400}), smobject.InvalidValue, "is out of range"),
            # An unknown field of a nested struct is named as such, whatever its value.
            (dict(seq=2, v={"w": "str"}), smobject.InvalidValue, "`v` is a `Vec3`, which has no field `w`"),
            (dict(seq=2, v={1: 2.0}), smobject.InvalidValueType, "`v` is a `Vec3`: its field names are `str`, not `int`"),
        ]
        for fields, cls, text in cases:
            with pytest.raises(cls) as e:
                o.write(**fields)
            assert text in str(e.value), (fields, str(e.value))
            assert e.value.kind == "InvalidValue"
            assert f"path {key_path}" in str(e.value) and e.value.path == key_path and e.value.id == "a"
            assert "hint: " in str(e.value)
            assert isinstance(e.value, TypeError if cls is smobject.InvalidValueType else ValueError)
        assert o.read() == before and o.version == v, "nothing was written"
        # A double holds 2**200: a float field takes it.
        o.write(**{"pos[0]": 2**200})
        assert o.read()["pos"][0] == float(2**200)


def test_wait_for_update_timeout(key_path):
    with smobject.create(key_path, "a", Sensor) as o:
        start = time.monotonic()
        with pytest.raises(smobject.Timeout) as e:
            o.wait_for_update(o.version, timeout=0.2)
        took = time.monotonic() - start
        assert 0.19 <= took < 1.0
        assert isinstance(e.value, TimeoutError) and e.value.kind == "Timeout"
        assert "no update past version 0 within 200ms" in str(e.value) and e.value.path == key_path
        o.write(seq=1)
        assert o.wait_for_update(0, timeout=0) == 1, "already newer: returns at once"
        with pytest.raises(ValueError):
            o.wait_for_update(0, timeout=-1)
        with pytest.raises(ValueError):
            o.wait_for_update(0, timeout=float("nan"))
        assert o.wait_for_update(0, timeout=float("inf")) == 1 == o.wait_for_update(0, timeout=1e300)
        for seen in (-1, 2**64):  # named, not an OverflowError
            with pytest.raises(ValueError, match=f"seen must be a version .*not {seen}"):
                o.wait_for_update(seen, timeout=0)


def test_struct_declarations_refused():
    with pytest.raises(TypeError, match=r"add `_pad: smobject.u32` before `temp`") as e:

        class Bad(smobject.Struct):
            seq: smobject.u64
            status: smobject.u32
            temp: smobject.f64

    assert "4 byte(s) of padding after `status` (offsets 12..16)" in str(e.value)
    with pytest.raises(TypeError, match=r"trailing padding .* add `_pad: smobject.u32` as the last field"):

        class Trailing(smobject.Struct):
            seq: smobject.u64
            status: smobject.u32

    with pytest.raises(TypeError, match=r"add `_pad1: smobject.u8\[3\]` before `n`"):

        class Odd(smobject.Struct):
            _pad: smobject.u8
            n: smobject.u32

    with pytest.raises(TypeError, match=r"`Ints.n` has type `int`.*smobject.u64"):

        class Ints(smobject.Struct):
            n: int

    with pytest.raises(TypeError, match="has no fields"):

        class Empty(smobject.Struct):
            pass

    class Base(smobject.Struct):
        a: smobject.u64

    with pytest.raises(TypeError, match="derives from the struct `Base`"):

        class Derived(Base):
            b: smobject.u64

    with pytest.raises(TypeError, match="is a declaration"):
        Base()
    with pytest.raises(TypeError):
        smobject.create("/tmp", "a", dict)  # type: ignore[arg-type]
    for make in (smobject.create, smobject.open_or_create):
        with pytest.raises(TypeError, match="not None"):
            make("/tmp", "a", None)  # type: ignore[arg-type]
    # A field no path could name (`a.b` would read as field `b` of `a`).
    for name in ["a.b", "a[0]", "x y", "a\x00b", ""]:
        with pytest.raises(TypeError, match="is not an identifier"):
            type("Dotted", (smobject.Struct,), {"__annotations__": {name: smobject.u64}})
    with pytest.raises(TypeError, match="has no bytes"):

        class Nothing(smobject.Struct):
            a: smobject.u64[0]

    # Array lengths the format cannot hold are named at the subscript, not an OverflowError later.
    for n in (-1, 2**32, 2**64):
        with pytest.raises(TypeError, match=f"not {n}"):
            smobject.u8[n]
    with pytest.raises(TypeError, match="does not fit the format"):

        class Huge(smobject.Struct):
            a: smobject.u64[2**30]  # a length that fits, a size (8 GiB) that does not


def test_a_u8_array_takes_bytes_and_no_other_array_does(key_path):
    class Frame(smobject.Struct):
        raw: smobject.u8[4]
        words: smobject.u32[1]

    with smobject.create(key_path, "a", Frame) as o:
        o.write(raw=b"\x01\x02\xfe\xff")
        assert o.read()["raw"] == [1, 2, 254, 255]
        with pytest.raises(smobject.InvalidValue, match="3 values given, 4 needed"):
            o.write(raw=b"abc")
        with pytest.raises(smobject.InvalidValueType, match="`words` is a `\\[u32; 1\\]`: a sequence is needed, not a `bytes`"):
            o.write(words=b"\x07")


def test_schema_membership_and_paths_given_as_bytes_or_with_nul(key_path):
    with smobject.create(key_path.encode(), "a", Telemetry) as o:
        assert "seq" in o.schema and "nope" not in o.schema
        assert o.schema["pos"] in o.schema
        assert "seq" in Telemetry.schema()
        assert o.path == key_path
    with pytest.raises(ValueError, match="embedded null byte"):
        smobject.access(key_path + "\0x", "a")
    with pytest.raises(ValueError, match="embedded null byte"):
        smobject.remove_stale(key_path + "\0x", "a")
    # A bare uid is as good as a list of one, as for access.
    assert smobject.remove_stale(key_path, "a", allow_uid=65534) is False


def test_struct_with_postponed_annotations():
    import textwrap

    ns: dict = {}
    exec(  # noqa: S102 - a module with `from __future__ import annotations`
        textwrap.dedent(
            """
            from __future__ import annotations
            import smobject
            class V(smobject.Struct):
                x: smobject.f32
                y: smobject.f32
            class W(smobject.Struct):
                v: V[2]
                n: smobject.u64
            """
        ),
        ns,
    )
    s = ns["W"].schema()
    assert [(f.name, f.offset, f.type, f.shape) for f in s] == [("v", 0, "V", (2,)), ("n", 16, "u64", ())]


def test_remove_stale(key_path):
    assert smobject.remove_stale(key_path, "a") is False
    o = smobject.create(key_path, "a", Telemetry)
    with pytest.raises(smobject.InUse):
        smobject.remove_stale(key_path, "a")
    o.close()
