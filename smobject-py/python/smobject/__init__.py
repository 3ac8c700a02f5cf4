"""smobject: share a C struct between processes through System V shared memory.

Python bindings of the Rust runtime: consistent snapshots (seqlock), locked writes published
at once, futex waits, and objects freed when the last process detaches, even after crashes.
Objects describe themselves, so any object opens with no declaration:

```python
import smobject

o = smobject.access("/tmp/telemetry", "a")   # layout from the object's schema
snap = o.read()                              # {"seq": 7, "pos": [1.0, 2.0, 3.0], ...}
v = o.wait_for_update(o.version, timeout=1.0)
o.write(seq=8, pos=[4.0, 5.0, 6.0])          # one locked write, one publish

class Telemetry(smobject.Struct):            # C layout rules, as #[repr(C)]
    seq: smobject.u64
    pos: smobject.f64[3]
    status: smobject.u32
    _pad: smobject.u32

with smobject.create("/tmp/telemetry", "b", Telemetry) as t:
    t.write(seq=1)
```
"""

from ._errors import (
    AlreadyExists,
    Closed,
    Error,
    ForeignOwner,
    InUse,
    InvalidId,
    InvalidValue,
    InvalidValueType,
    KeyCollision,
    LayoutMismatch,
    Limit,
    NotAnObject,
    NotFound,
    Os,
    PathNotFound,
    PermissionDenied,
    Removed,
    SizeMismatch,
    Timeout,
    Unrecoverable,
)
from ._object import Object, access, create, open_or_create
from ._schema import Field, Schema
from ._smobject import FORMAT_VERSION, remove_stale
from ._types import (
    Array,
    AtomicI8,
    AtomicI16,
    AtomicI32,
    AtomicI64,
    AtomicU8,
    AtomicU16,
    AtomicU32,
    AtomicU64,
    FieldType,
    Scalar,
    Struct,
    f32,
    f64,
    i8,
    i16,
    i32,
    i64,
    i128,
    u8,
    u16,
    u32,
    u64,
    u128,
)

__all__ = [
    "access",
    "create",
    "open_or_create",
    "remove_stale",
    "Object",
    "Schema",
    "Field",
    "Struct",
    "FieldType",
    "Scalar",
    "Array",
    "u8",
    "u16",
    "u32",
    "u64",
    "u128",
    "i8",
    "i16",
    "i32",
    "i64",
    "i128",
    "f32",
    "f64",
    "AtomicU8",
    "AtomicU16",
    "AtomicU32",
    "AtomicU64",
    "AtomicI8",
    "AtomicI16",
    "AtomicI32",
    "AtomicI64",
    "Error",
    "PathNotFound",
    "InvalidId",
    "NotFound",
    "AlreadyExists",
    "PermissionDenied",
    "ForeignOwner",
    "SizeMismatch",
    "LayoutMismatch",
    "NotAnObject",
    "Limit",
    "Timeout",
    "InUse",
    "Removed",
    "KeyCollision",
    "Unrecoverable",
    "InvalidValue",
    "InvalidValueType",
    "Os",
    "Closed",
    "FORMAT_VERSION",
]
