"""`Schema` and `Field`: a struct's layout as an object stores it, and its numpy dtype."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator, Tuple

__all__ = ["Schema", "Field"]

_SIZES = {"8": 1, "16": 2, "32": 4, "64": 8, "128": 16}


def _scalar_size(name: str) -> int:
    digits = "".join(c for c in name if c.isdigit())
    return _SIZES[digits]


def _scalar_name(name: str) -> Any:
    base = name[len("Atomic"):].lower() if name.startswith("Atomic") else name
    ok = len(base) >= 2 and base[0] in "uif" and base[1:] in _SIZES
    return base if ok else None


def _numpy_format(name: str) -> str:
    """The numpy format of a scalar's Rust name (`u64` -> `u8`, `f32` -> `f4`); 128-bit
    integers have none and are raw bytes (`V16`)."""
    base = name[len("Atomic"):].lower() if name.startswith("Atomic") else name
    size = _scalar_size(base)
    if size == 16:
        return "V16"
    return f"{base[0]}{size}"


@dataclass(frozen=True)
class Field:
    """One field: its name, element type, offset in its struct, and shape.

    `type` is the element type's Rust name (`"f64"`, `"AtomicU32"`) or, for a struct element,
    the struct's name, whose fields are then in `fields` (offsets within that struct).
    `shape` is `()` for a single value, `(3,)` for `[f64; 3]`, `(2, 3)` for `[[f64; 3]; 2]`;
    `size` is the bytes of the whole field, `itemsize` those of one element.
    """

    name: str
    type: str
    offset: int
    shape: Tuple[int, ...]
    size: int
    itemsize: int
    fields: Tuple["Field", ...] = ()

    @property
    def is_struct(self) -> bool:
        """Whether the element type is a nested struct."""
        return bool(self.fields) or _scalar_name(self.type) is None

    @property
    def rust(self) -> str:
        """The field's type in Rust syntax (`[[f64; 3]; 2]`)."""
        t = self.type
        for n in reversed(self.shape):
            t = f"[{t}; {n}]"
        return t

    def __str__(self) -> str:
        return f"{self.name}: {self.rust} @ {self.offset}"


def _field(name: str, offset: int, t: Any) -> Field:
    shape = []
    while isinstance(t, tuple) and t[0] == "array":
        shape.append(t[1])
        t = t[2]
    count = 1
    for n in shape:
        count *= n
    if isinstance(t, tuple):  # ("struct", desc)
        sname, ssize, _align, sfields = t[1]
        inner = tuple(_field(f, o, ft) for f, o, ft in sfields)
        return Field(name, sname, offset, tuple(shape), ssize * count, ssize, inner)
    item = _scalar_size(t[len("Atomic"):] if t.startswith("Atomic") else t)
    return Field(name, t, offset, tuple(shape), item * count, item)


@dataclass(frozen=True)
class Schema:
    """A struct's schema: name, size, alignment, fields in order (nested structs included),
    and the layout fingerprint (equal fingerprints mean equal schemas, in every language)."""

    name: str
    size: int
    align: int
    fields: Tuple[Field, ...]
    fingerprint: int

    @classmethod
    def from_desc(cls, desc: Any, fingerprint: int) -> "Schema":
        name, size, align, fields = desc
        return cls(name, size, align, tuple(_field(f, o, t) for f, o, t in fields), fingerprint)

    def __iter__(self) -> Iterator[Field]:
        return iter(self.fields)

    def __len__(self) -> int:
        return len(self.fields)

    def __contains__(self, name: object) -> bool:
        """`"seq" in schema`: whether a field has this name (a `Field` of it counts too)."""
        return any(f.name == name or f is name for f in self.fields)

    def __getitem__(self, name: str) -> Field:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(f"no field `{name}` in `{self.name}` (its fields: {', '.join(f.name for f in self.fields)})")

    @property
    def names(self) -> Tuple[str, ...]:
        """The fields' names, in order."""
        return tuple(f.name for f in self.fields)

    def __str__(self) -> str:
        body = ", ".join(f"{f.name}: {f.rust}" for f in self.fields)
        return f"struct {self.name} {{ {body} }} ({self.size} bytes, fingerprint {self.fingerprint:#018x})"

    def dtype(self) -> Any:
        """The numpy structured dtype of the struct (names, formats, offsets, itemsize).

        Raises ImportError if numpy is not installed."""
        import numpy as np

        return _dtype(np, self.fields, self.size)


def _dtype(np: Any, fields: Tuple[Field, ...], itemsize: int) -> Any:
    formats = []
    for f in fields:
        if f.is_struct:
            base = _dtype(np, f.fields, f.itemsize)
        else:
            base = np.dtype(_numpy_format(f.type))
        formats.append(np.dtype((base, f.shape)) if f.shape else base)
    return np.dtype(
        {
            "names": [f.name for f in fields],
            "formats": formats,
            "offsets": [f.offset for f in fields],
            "itemsize": itemsize,
        }
    )
