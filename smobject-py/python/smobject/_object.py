"""`Object`: an attached shared object, and the functions that open one."""

from __future__ import annotations

import atexit
import os
import weakref
from typing import Any, Iterable, List, Optional, Type, Union

from . import _smobject
from ._errors import Closed
from ._schema import Schema
from ._types import Struct

__all__ = ["Object", "create", "open_or_create", "access", "remove_stale"]

PathLike = Union[str, bytes, "os.PathLike[str]", "os.PathLike[bytes]"]

# Open objects, closed at interpreter exit (whatever still references them), so that a Python
# process that exits normally is never left attached: the last one out frees.
_open: "weakref.WeakSet[Object]" = weakref.WeakSet()


@atexit.register
def _close_all() -> None:
    for o in list(_open):
        o.close()


def _desc(struct: Optional[Type[Struct]], op: str) -> Any:
    if struct is None:
        if op != "access":  # only access can read the struct from the object
            raise TypeError(f"{op}: expected a smobject.Struct subclass with fields, not None")
        return None
    if not (isinstance(struct, type) and issubclass(struct, Struct) and "__smobject_desc__" in struct.__dict__):
        raise TypeError(f"{op}: expected a smobject.Struct subclass with fields, not {struct!r}")
    return struct.__smobject_desc__


class Object(_smobject.Object):
    """An attached object. Reads are consistent snapshots, writes one locked publish; the
    methods come from the Rust runtime (`read`, `read_into`, `write`, `wait_for_update`,
    `version`, `last_write`, `close`, `size`, `key`, `path`, `id`, `created`, `attached`,
    `creator_pid`). Use it as a context manager, or let it be garbage-collected: either
    detaches, and the last process out frees the object.
    """

    @property
    def schema(self) -> Schema:
        """The schema stored in the object (its creator's struct): name, size, fields with
        their type, offset and shape, nested structs included, and the fingerprint."""
        cached = self.__dict__.get("_schema")
        if cached is None:
            cached = Schema.from_desc(self._schema_desc, self._fingerprint)
            self.__dict__["_schema"] = cached
        return cached

    @property
    def dtype(self) -> Any:
        """The numpy structured dtype of the object (names, formats, offsets, itemsize):
        `a = numpy.zeros((), o.dtype); o.read_into(a)`. Raises ImportError without numpy."""
        cached = self.__dict__.get("_dtype")
        if cached is None:
            cached = self.schema.dtype()
            self.__dict__["_dtype"] = cached
        return cached

    def __enter__(self) -> "Object":
        if self.closed:
            raise Closed("the object was closed: open it again to use it")
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        if self.closed:
            return "<smobject.Object (closed)>"
        return (
            f"<smobject.Object {self.schema.name} ({self.size} bytes) at {self.path!r} "
            f"id {self.id!r}, version {self.version}>"
        )


def create(
    path: PathLike, id: str, struct: Type[Struct], *, mode: int = 0o600, allow_uid: Iterable[int] = ()
) -> Object:
    """Creates a new, zeroed object of `struct` under `(path, id)`; the key file is created if
    missing. Raises `AlreadyExists` if a live one exists (a stale one, whose processes all
    died, is replaced). `mode`: permission bits of the segments (read and write bits only,
    the owner's among them: `0o660` shares the object with the group; others raise
    `InvalidOptions`). `allow_uid`: as for `access`."""
    return _opened(Object("create", _path(path), id, _desc(struct, "create"), mode, _uids(allow_uid)))


def open_or_create(
    path: PathLike, id: str, struct: Type[Struct], *, mode: int = 0o600, allow_uid: Iterable[int] = ()
) -> Object:
    """Attaches to the live object under `(path, id)` if its struct has `struct`'s fields
    first (the prefix rule), or creates it. `o.created` tells which happened. `mode` and
    `allow_uid` as for `create` and `access`."""
    return _opened(
        Object("open_or_create", _path(path), id, _desc(struct, "open_or_create"), mode, _uids(allow_uid))
    )


def access(
    path: PathLike,
    id: str,
    struct: Optional[Type[Struct]] = None,
    *,
    mode: int = 0o600,
    allow_uid: Iterable[int] = (),
) -> Object:
    """Attaches to the existing object under `(path, id)`, whatever struct it holds (its
    schema says how to read it). With `struct`, the object must hold that struct or a newer
    build of it with fields appended (the prefix rule), else `LayoutMismatch` names the
    first field that differs.

    Only this user's objects of mode `0o600` are trusted, as in Rust: an object created with
    a broader mode (`0o660`, shared with the group) needs `mode=0o660`, and one owned by
    another user needs its uid in `allow_uid`; otherwise `ForeignOwner` is raised."""
    return _opened(Object("access", _path(path), id, _desc(struct, "access"), mode, _uids(allow_uid)))


def remove_stale(path: PathLike, id: str, *, allow_uid: Iterable[int] = ()) -> bool:
    """Removes the object under `(path, id)` if no process is attached to it (left by
    processes that all died), whatever its mode; returns whether one was removed. Raises
    `InUse` if processes are attached (the last of them frees it), and `ForeignOwner` for
    another user's pair unless its uid is in `allow_uid`."""
    return _smobject.remove_stale(_path(path), id, allow_uid=_uids(allow_uid))


def _path(path: PathLike) -> str:
    """A key file's path as text (str, bytes or os.PathLike), refusing what no file can be
    named: a NUL byte would cut the path short, as `open()` refuses it too."""
    p = os.fsdecode(os.fspath(path))
    if "\0" in p:
        raise ValueError(f"key file path {p!r}: embedded null byte")
    return p


def _uids(allow_uid: Iterable[int]) -> List[int]:
    if isinstance(allow_uid, int):  # one uid given bare: as good as a list of one
        return [allow_uid]
    return list(allow_uid)


def _opened(o: Object) -> Object:
    _open.add(o)
    return o
