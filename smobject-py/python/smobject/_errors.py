"""The exceptions: `Error` and one subclass per kind of the Rust runtime's `ErrorKind`.

Every exception raised from the runtime carries its message (key, path, id and a hint, as the
Rust error displays them) and these attributes: `kind` (the `ErrorKind` name), `key` (the SysV
key, an int, or None), `path`, `id`, `hint` and `errno` (None where unknown).
"""

from __future__ import annotations

from typing import Dict, Optional, Type

__all__ = [
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
    "InvalidOptions",
    "Os",
    "Closed",
]


class Error(Exception):
    """Base class of smobject's errors; `kind` names the Rust `ErrorKind`."""

    kind: str = "Error"
    key: Optional[int] = None
    path: Optional[str] = None
    id: Optional[str] = None
    hint: Optional[str] = None
    errno: Optional[int] = None

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else self.kind


class PathNotFound(Error, FileNotFoundError):
    """The key file does not exist (or cannot be reached)."""

    kind = "PathNotFound"

    def __str__(self) -> str:  # OSError's own __str__ would add nothing useful
        return Error.__str__(self)


class InvalidId(Error, ValueError):
    """The project id is not one character in 'A'..='z'."""

    kind = "InvalidId"


class NotFound(Error):
    """No object exists under the key."""

    kind = "NotFound"


class AlreadyExists(Error):
    """A live object already exists under the key (on create)."""

    kind = "AlreadyExists"


class PermissionDenied(Error, PermissionError):
    """The kernel refused access (mode bits, or the key file is not readable)."""

    kind = "PermissionDenied"

    def __str__(self) -> str:
        return Error.__str__(self)


class ForeignOwner(Error):
    """A segment under the key belongs to another user or is more open than asked."""

    kind = "ForeignOwner"


class SizeMismatch(Error):
    """A segment is smaller than the size asked for."""

    kind = "SizeMismatch"


class LayoutMismatch(Error):
    """The object holds another struct; the message names the first field that differs."""

    kind = "LayoutMismatch"


class NotAnObject(Error):
    """The segments under the key are not a smobject object, or its header is corrupt."""

    kind = "NotAnObject"


class Limit(Error):
    """A kernel limit (SHMMNI, SHMMAX, SHMALL) or memory was exhausted."""

    kind = "Limit"


class Timeout(Error, TimeoutError):
    """A bounded wait ended before its condition held."""

    kind = "Timeout"

    def __str__(self) -> str:
        return Error.__str__(self)


class InUse(Error):
    """The object is in use by other processes."""

    kind = "InUse"


class Removed(Error):
    """The object was removed (e.g. by ipcrm) while processes still use it."""

    kind = "Removed"


class KeyCollision(Error):
    """The key belongs to an object made for another key file (an ftok collision)."""

    kind = "KeyCollision"


class Unrecoverable(Error):
    """The object cannot be written any more (see the hint)."""

    kind = "Unrecoverable"


class InvalidValue(Error, ValueError):
    """A value given to `write` does not fit: unknown field, out of range, wrong length.
    Nothing was written."""

    kind = "InvalidValue"


class InvalidValueType(InvalidValue, TypeError):
    """A value given to `write` has the wrong Python type (a str for an int, ...). Nothing
    was written."""


class InvalidOptions(Error, ValueError):
    """A `mode` cannot be used: bits outside 0o666, or without the owner's read and write
    bits (0o600). Nothing was created."""

    kind = "InvalidOptions"


class Os(Error, OSError):
    """Another operating-system error (see `errno`)."""

    kind = "Os"

    def __str__(self) -> str:
        return Error.__str__(self)


class Closed(Error, ValueError):
    """The handle was closed (`Object.close()`); not a Rust error kind."""

    kind = "Closed"


#: The classes by Rust `ErrorKind` name (the binding looks errors up here).
BY_KIND: Dict[str, Type[Error]] = {
    cls.kind: cls
    for cls in (
        PathNotFound,
        InvalidId,
        NotFound,
        AlreadyExists,
        PermissionDenied,
        ForeignOwner,
        SizeMismatch,
        LayoutMismatch,
        NotAnObject,
        Limit,
        Timeout,
        InUse,
        Removed,
        KeyCollision,
        Unrecoverable,
        InvalidValue,
        InvalidOptions,
        Os,
    )
}
