"""Declaring a struct in Python: the field types (`u8` .. `f64`, atomics, arrays) and `Struct`.

A `Struct` subclass is laid out by C's rules, as `#[repr(C)]` lays out the Rust struct with
the same fields: each field at the next multiple of its alignment, the size rounded up to the
largest alignment. Padding is refused, as `#[shared_memory]` refuses it, with the `_pad` field
to add. The schema it gives (name, fields, offsets, types) is the one the Rust macro generates
for the same struct, with the same fingerprint, so Rust, C and Python open each other's
objects as their own struct.
"""

from __future__ import annotations

import sys
from typing import Any, Dict, List, Optional, Tuple, Union

from . import _smobject
from ._schema import Schema

__all__ = [
    "FieldType",
    "Scalar",
    "Array",
    "Struct",
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
]


class FieldType:
    """A field's type: its size, alignment, description for the runtime, and Rust name.

    Index it to make an array: `smobject.f64[3]` is `[f64; 3]`; `smobject.f64[2, 3]` and
    `smobject.f64[3][2]` are both `[[f64; 3]; 2]` (shape `(2, 3)`).
    """

    size: int
    align: int

    def desc(self) -> Any:
        raise NotImplementedError

    def rust(self) -> str:
        raise NotImplementedError

    def __getitem__(self, shape: Union[int, Tuple[int, ...]]) -> "Array":
        dims = shape if isinstance(shape, tuple) else (shape,)
        if not dims:
            raise TypeError("an array needs a length: smobject.f64[3]")
        t: FieldType = self
        for n in reversed(dims):
            t = Array(t, n)
        return t  # type: ignore[return-value]

    def __repr__(self) -> str:
        return f"<smobject type {self.rust()}>"


class Scalar(FieldType):
    """A number (`u8` .. `u128`, `i8` .. `i128`, `f32`, `f64`) or an atomic integer."""

    __slots__ = ("name", "size", "align", "kind")

    def __init__(self, name: str, size: int, kind: str) -> None:
        self.name = name
        self.size = size
        # Rust's alignment of every scalar on the 64-bit Linux targets is its size (u128: 16).
        self.align = size
        self.kind = kind  # "u", "i", "f": the numpy kind

    def desc(self) -> str:
        return self.name

    def rust(self) -> str:
        return self.name


class Array(FieldType):
    """`[T; n]`: `n` elements of a type, without padding between them."""

    __slots__ = ("elem", "n", "size", "align")

    def __init__(self, elem: FieldType, n: int) -> None:
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise TypeError(f"an array length is an int >= 0, not {n!r}")
        if n >= 2**32:  # the schema format's limit (sizes and lengths are 32-bit)
            raise TypeError(f"an array length must be below 2**32 (the schema format's limit), not {n}")
        self.elem = elem
        self.n = n
        self.size = elem.size * n
        self.align = elem.align

    def desc(self) -> Tuple[str, int, Any]:
        return ("array", self.n, self.elem.desc())

    def rust(self) -> str:
        return f"[{self.elem.rust()}; {self.n}]"


class _StructType(FieldType):
    """A `Struct` class used as a field's type."""

    __slots__ = ("cls", "size", "align")

    def __init__(self, cls: "type[Struct]") -> None:
        self.cls = cls
        self.size = cls.__smobject_size__
        self.align = cls.__smobject_align__

    def desc(self) -> Tuple[str, Any]:
        return ("struct", self.cls.__smobject_desc__)

    def rust(self) -> str:
        return self.cls.__smobject_name__


u8 = Scalar("u8", 1, "u")
u16 = Scalar("u16", 2, "u")
u32 = Scalar("u32", 4, "u")
u64 = Scalar("u64", 8, "u")
u128 = Scalar("u128", 16, "u")
i8 = Scalar("i8", 1, "i")
i16 = Scalar("i16", 2, "i")
i32 = Scalar("i32", 4, "i")
i64 = Scalar("i64", 8, "i")
i128 = Scalar("i128", 16, "i")
f32 = Scalar("f32", 4, "f")
f64 = Scalar("f64", 8, "f")
AtomicU8 = Scalar("AtomicU8", 1, "u")
AtomicU16 = Scalar("AtomicU16", 2, "u")
AtomicU32 = Scalar("AtomicU32", 4, "u")
AtomicU64 = Scalar("AtomicU64", 8, "u")
AtomicI8 = Scalar("AtomicI8", 1, "i")
AtomicI16 = Scalar("AtomicI16", 2, "i")
AtomicI32 = Scalar("AtomicI32", 4, "i")
AtomicI64 = Scalar("AtomicI64", 8, "i")

_PAD_TYPES = {1: "u8", 2: "u16", 4: "u32", 8: "u64"}


def _pad_suggestion(name: str, gap: int) -> str:
    t = _PAD_TYPES.get(gap)
    return f"`{name}: smobject.{t}`" if t else f"`{name}: smobject.u8[{gap}]`"


def _field_type(cls_name: str, field: str, annotation: Any) -> FieldType:
    if isinstance(annotation, FieldType):
        return annotation
    if isinstance(annotation, type) and issubclass(annotation, Struct):
        if annotation is Struct or "__smobject_desc__" not in annotation.__dict__:
            raise TypeError(f"`{cls_name}.{field}`: `{annotation.__name__}` declares no fields")
        return _StructType(annotation)
    shown = getattr(annotation, "__name__", None) or repr(annotation)
    hint = {"int": "smobject.u64 or smobject.i64", "float": "smobject.f64", "bool": "smobject.u8 (0 or 1)"}
    raise TypeError(
        f"`{cls_name}.{field}` has type `{shown}`, which is not a smobject field type; use "
        f"{hint.get(shown, 'a number type (smobject.u32, smobject.f64, ...), an array (smobject.f64[3]) or a smobject.Struct')}"
    )


def _annotations(cls: type, frame: Any) -> Dict[str, Any]:
    """The class's own annotations in order, evaluated (also under `from __future__ import
    annotations` and lazy annotations), with the names visible where the class is defined
    (`frame`: its module, or the function declaring it)."""
    raw = cls.__dict__.get("__annotations__")
    if raw is None:
        try:  # Python 3.14: annotations are evaluated on demand
            import annotationlib  # type: ignore[import-not-found]

            raw = annotationlib.get_annotations(cls, format=annotationlib.Format.FORWARDREF)
        except ImportError:
            raw = {}
    out = {}
    for name, a in raw.items():
        if isinstance(a, str) or type(a).__name__ == "ForwardRef":
            text = a if isinstance(a, str) else a.__forward_arg__
            module = sys.modules.get(cls.__module__)
            globalns = frame.f_globals if frame is not None else dict(vars(module)) if module else {}
            localns = dict(frame.f_locals) if frame is not None else {}
            localns.update(vars(cls))
            a = eval(text, globalns, localns)  # noqa: S307 - the class's own annotation text
        out[name] = a
    return out


class Struct:
    """Base of structs declared in Python: annotate fields with smobject types.

    ```python
    class Telemetry(smobject.Struct):      # the Rust struct `Telemetry`, #[repr(C)]
        seq: smobject.u64
        pos: smobject.f64[3]
        status: smobject.u32
        _pad: smobject.u32
    ```

    The struct's name is the class name; `class T(smobject.Struct, name="Telemetry")` gives
    another. A `Struct` class is a declaration: pass it to `smobject.create`,
    `open_or_create` or `access`, use it as a field's type, or index it for an array
    (`Vec3[4]`). `T.schema()` gives its schema: size, fields, fingerprint.
    """

    __smobject_name__: str
    __smobject_size__: int
    __smobject_align__: int
    __smobject_desc__: Any
    __smobject_fields__: Tuple[Tuple[str, int, FieldType], ...]

    def __init_subclass__(cls, name: Optional[str] = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for base in cls.__mro__[1:]:
            if base is not Struct and issubclass(base, Struct):
                raise TypeError(
                    f"`{cls.__name__}` derives from the struct `{base.__name__}`: a struct's "
                    "fields are declared in one class (to add fields, append them to the class)"
                )
        struct_name = name or cls.__name__
        fields: List[Tuple[str, int, FieldType]] = []
        offset, align = 0, 1
        previous: Optional[str] = None
        # The frame that defines the class (type.__new__ and __build_class__ are C frames).
        try:
            frame = sys._getframe(1)
        except (AttributeError, ValueError):
            frame = None
        annotations = _annotations(cls, frame)
        del frame
        for field, annotation in annotations.items():
            if not isinstance(field, str) or not field.isidentifier():
                raise TypeError(
                    f"`{struct_name}`: the field name {field!r} is not an identifier, so no path "
                    "(`a.b`, `pos[1]`) could name it; use letters, digits and `_`"
                )
            t = _field_type(struct_name, field, annotation)
            start = -(-offset // t.align) * t.align
            if start > offset:
                gap = start - offset
                taken = set(annotations)
                pad = "_pad" if "_pad" not in taken else f"_pad{len(fields)}"
                after = f" after `{previous}`" if previous else ""
                raise TypeError(
                    f"`{struct_name}` has {gap} byte(s) of padding{after} (offsets {offset}..{start}), "
                    f"before `{field}`, which smobject rejects as #[shared_memory] does: padding bytes are "
                    f"never initialised, so they would leak into shared memory; add "
                    f"{_pad_suggestion(pad, gap)} before `{field}`, or order the fields from the largest "
                    "alignment down"
                )
            fields.append((field, start, t))
            offset = start + t.size
            align = max(align, t.align)
            previous = field
        if not fields:
            raise TypeError(f"`{struct_name}` has no fields: annotate them (`seq: smobject.u64`)")
        size = -(-offset // align) * align
        if size == 0:
            raise TypeError(
                f"`{struct_name}` has no bytes (every field is an empty array): a shared object "
                "cannot be empty; give it a field of at least one byte"
            )
        if size > offset:
            gap = size - offset
            raise TypeError(
                f"`{struct_name}` has {gap} byte(s) of trailing padding (offsets {offset}..{size}) "
                f"after `{previous}`, which smobject rejects as #[shared_memory] does: padding bytes "
                f"are never initialised, so they would leak into shared memory; add "
                f"{_pad_suggestion('_pad', gap)} as the last field"
            )
        cls.__smobject_name__ = struct_name
        cls.__smobject_size__ = size
        cls.__smobject_align__ = align
        cls.__smobject_fields__ = tuple(fields)
        cls.__smobject_desc__ = (
            struct_name,
            size,
            align,
            tuple((f, o, t.desc()) for f, o, t in fields),
        )
        # Validated by the runtime as it validates a stored schema (limits, names, nesting).
        _smobject.schema_info(cls.__smobject_desc__)

    def __class_getitem__(cls, shape: Union[int, Tuple[int, ...]]) -> Array:
        if cls is Struct:
            raise TypeError("index a Struct subclass to make an array of it: Vec3[4]")
        return _StructType(cls)[shape]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError(
            f"`{type(self).__name__}` is a declaration, not a value: open an object with "
            f"smobject.create(path, id, {type(self).__name__}) and read() it as a dict"
        )

    @classmethod
    def schema(cls) -> Schema:
        """The schema an object created from this struct stores (with its fingerprint)."""
        fingerprint, _ = _smobject.schema_info(cls.__smobject_desc__)
        return Schema.from_desc(cls.__smobject_desc__, fingerprint)

    @classmethod
    def encoded_schema(cls) -> bytes:
        """The schema's bytes as an object stores them (docs/FORMAT.md, "Schema")."""
        return _smobject.schema_info(cls.__smobject_desc__)[1]
