"""smobject: share a C struct between processes through System V shared memory.

Python bindings of the Rust runtime: consistent snapshots (seqlock), locked writes published
at once, futex waits, and objects freed when the last process detaches, also when others
crashed (a pair whose last process was killed waits for the next create or `remove_stale`).
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

# Each submodule lists its public names in `__all__`; the package re-exports them all.
from . import _errors, _object, _schema, _types
from ._errors import *  # noqa: F401,F403
from ._object import *  # noqa: F401,F403
from ._schema import *  # noqa: F401,F403
from ._smobject import FORMAT_VERSION
from ._types import *  # noqa: F401,F403

__all__ = [
    *_object.__all__,
    *_schema.__all__,
    *_types.__all__,
    *_errors.__all__,
    "FORMAT_VERSION",
]
