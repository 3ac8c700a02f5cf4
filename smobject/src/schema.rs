//! Self-describing objects: the schema of a shared struct (its name and, for every field in
//! order, the name, offset and type), as `#[shared_memory]` generates it ([`StructDef`], a
//! `const`), as it is stored in an object ([`encode`](Schema::encode), documented byte by byte
//! in `docs/FORMAT.md`), and as it is read back ([`Schema`], validated like the header), with
//! the append-only evolution rule ([`Schema::check_prefix`]) and values by field name
//! ([`Value`], [`Schema::resolve`]).
//!
//! Every typed object stores its schema (format version 3): `#[shared_memory]` generates it
//! as [`SharedStruct::SCHEMA`](crate::SharedStruct::SCHEMA), the creator writes its encoding
//! into the counter segment, and every opener validates it and applies the prefix rule.
//! [`DynObject`](crate::DynObject) reads and writes objects by it, with no Rust type.

use std::fmt;

use crate::layout::{fnv1a as fnv, FNV_OFFSET};

/// The element types a field can be made of.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Scalar {
    /// `u8`
    U8,
    /// `u16`
    U16,
    /// `u32`
    U32,
    /// `u64`
    U64,
    /// `i8`
    I8,
    /// `i16`
    I16,
    /// `i32`
    I32,
    /// `i64`
    I64,
    /// `f32`
    F32,
    /// `f64`
    F64,
    /// `u128`
    U128,
    /// `i128`
    I128,
}

/// Every scalar, in tag order.
const SCALARS: [Scalar; 12] = [
    Scalar::U8,
    Scalar::U16,
    Scalar::U32,
    Scalar::U64,
    Scalar::I8,
    Scalar::I16,
    Scalar::I32,
    Scalar::I64,
    Scalar::F32,
    Scalar::F64,
    Scalar::U128,
    Scalar::I128,
];

impl Scalar {
    /// Bytes of one value.
    #[must_use]
    pub const fn size(self) -> usize {
        match self {
            Self::U8 | Self::I8 => 1,
            Self::U16 | Self::I16 => 2,
            Self::U32 | Self::I32 | Self::F32 => 4,
            Self::U64 | Self::I64 | Self::F64 => 8,
            Self::U128 | Self::I128 => 16,
        }
    }

    /// The Rust name (`u32`, `f64`, ...).
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::U8 => "u8",
            Self::U16 => "u16",
            Self::U32 => "u32",
            Self::U64 => "u64",
            Self::I8 => "i8",
            Self::I16 => "i16",
            Self::I32 => "i32",
            Self::I64 => "i64",
            Self::F32 => "f32",
            Self::F64 => "f64",
            Self::U128 => "u128",
            Self::I128 => "i128",
        }
    }

    /// Its tag in the encoded schema (1..=12).
    const fn tag(self) -> u8 {
        match self {
            Self::U8 => 1,
            Self::U16 => 2,
            Self::U32 => 3,
            Self::U64 => 4,
            Self::I8 => 5,
            Self::I16 => 6,
            Self::I32 => 7,
            Self::I64 => 8,
            Self::F32 => 9,
            Self::F64 => 10,
            Self::U128 => 11,
            Self::I128 => 12,
        }
    }

    fn from_tag(tag: u8) -> Option<Scalar> {
        SCALARS.get(usize::from(tag).checked_sub(1)?).copied()
    }

    /// Whether `std::sync::atomic` has an atomic of this integer (`AtomicU8`..`AtomicI64`).
    #[must_use]
    pub const fn has_atomic(self) -> bool {
        !matches!(self, Self::F32 | Self::F64 | Self::U128 | Self::I128)
    }

    fn is_float(self) -> bool {
        matches!(self, Self::F32 | Self::F64)
    }

    fn is_signed(self) -> bool {
        matches!(
            self,
            Self::I8 | Self::I16 | Self::I32 | Self::I64 | Self::I128
        )
    }
}

impl fmt::Display for Scalar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

// ---------------------------------------------------------------------------------------------
// The static description, generated as a const.

/// A field's type as `#[shared_memory]` and `#[derive(Describe)]` describe it at compile time.
#[derive(Clone, Copy, Debug)]
pub enum TypeDef {
    /// A number.
    Scalar(Scalar),
    /// A `std::sync::atomic` integer (same bytes as the scalar).
    Atomic(Scalar),
    /// `[T; N]`.
    Array(&'static TypeDef, usize),
    /// A nested `#[repr(C)]` struct.
    Struct(&'static StructDef),
}

/// A `#[repr(C)]` struct described at compile time: what `SharedStruct::SCHEMA` holds.
#[derive(Clone, Copy, Debug)]
pub struct StructDef {
    /// The struct's name.
    pub name: &'static str,
    /// `size_of` the struct.
    pub size: usize,
    /// `align_of` the struct.
    pub align: usize,
    /// Its fields in declaration order (`_0`, `_1`, ... for a tuple struct).
    pub fields: &'static [FieldDef],
}

/// One field of a [`StructDef`].
#[derive(Clone, Copy, Debug)]
pub struct FieldDef {
    /// The field's name.
    pub name: &'static str,
    /// `offset_of!` the field.
    pub offset: usize,
    /// Its type.
    pub ty: TypeDef,
}

/// A type that can be a field of a shared struct, with its description. Implemented for the
/// integers, `f32`, `f64`, the atomic integers, arrays of such types, every
/// `#[shared_memory]` struct, and structs that `#[derive(smobject::Describe)]`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` has no smobject schema, so it cannot be a field of a `#[shared_memory]` struct",
    label = "this field's type is not described",
    note = "add `#[derive(smobject::Describe)]` to a nested `#[repr(C)]` struct, or use a number, an atomic integer or an array of them"
)]
pub trait Describe {
    /// The description.
    const TYPE: TypeDef;
}

macro_rules! describe_scalars {
    ($($t:ty => $s:ident, $a:ty;)*) => {$(
        impl Describe for $t {
            const TYPE: TypeDef = TypeDef::Scalar(Scalar::$s);
        }
        impl Describe for $a {
            const TYPE: TypeDef = TypeDef::Atomic(Scalar::$s);
        }
    )*};
}

describe_scalars! {
    u8 => U8, std::sync::atomic::AtomicU8;
    u16 => U16, std::sync::atomic::AtomicU16;
    u32 => U32, std::sync::atomic::AtomicU32;
    u64 => U64, std::sync::atomic::AtomicU64;
    i8 => I8, std::sync::atomic::AtomicI8;
    i16 => I16, std::sync::atomic::AtomicI16;
    i32 => I32, std::sync::atomic::AtomicI32;
    i64 => I64, std::sync::atomic::AtomicI64;
}

impl Describe for u128 {
    const TYPE: TypeDef = TypeDef::Scalar(Scalar::U128);
}
impl Describe for i128 {
    const TYPE: TypeDef = TypeDef::Scalar(Scalar::I128);
}
/// `Wrapping<T>` has `T`'s layout (`repr(transparent)`).
impl<T: Describe> Describe for std::num::Wrapping<T> {
    const TYPE: TypeDef = T::TYPE;
}
/// `ManuallyDrop<T>` has `T`'s layout (`repr(transparent)`).
impl<T: Describe> Describe for std::mem::ManuallyDrop<T> {
    const TYPE: TypeDef = T::TYPE;
}
/// Zero-sized: described as `[u8; 0]`.
impl Describe for () {
    const TYPE: TypeDef = TypeDef::Array(&TypeDef::Scalar(Scalar::U8), 0);
}
/// Zero-sized: described as `[u8; 0]`.
impl<T: ?Sized> Describe for std::marker::PhantomData<T> {
    const TYPE: TypeDef = TypeDef::Array(&TypeDef::Scalar(Scalar::U8), 0);
}

/// `usize`/`isize` are described as the fixed-width integer of this target's word size.
const USIZE: Scalar = if cfg!(target_pointer_width = "64") {
    Scalar::U64
} else if cfg!(target_pointer_width = "32") {
    Scalar::U32
} else {
    Scalar::U16
};
const ISIZE: Scalar = if cfg!(target_pointer_width = "64") {
    Scalar::I64
} else if cfg!(target_pointer_width = "32") {
    Scalar::I32
} else {
    Scalar::I16
};

impl Describe for usize {
    const TYPE: TypeDef = TypeDef::Scalar(USIZE);
}
impl Describe for isize {
    const TYPE: TypeDef = TypeDef::Scalar(ISIZE);
}
impl Describe for std::sync::atomic::AtomicUsize {
    const TYPE: TypeDef = TypeDef::Atomic(USIZE);
}
impl Describe for std::sync::atomic::AtomicIsize {
    const TYPE: TypeDef = TypeDef::Atomic(ISIZE);
}
impl Describe for f32 {
    const TYPE: TypeDef = TypeDef::Scalar(Scalar::F32);
}
impl Describe for f64 {
    const TYPE: TypeDef = TypeDef::Scalar(Scalar::F64);
}
impl<T: Describe, const N: usize> Describe for [T; N] {
    const TYPE: TypeDef = TypeDef::Array(&T::TYPE, N);
}

const fn fnv_u8(h: u64, v: u8) -> u64 {
    fnv(h, &[v])
}
const fn fnv_u16(h: u64, v: usize) -> u64 {
    fnv(h, &(v as u16).to_le_bytes())
}
const fn fnv_u32(h: u64, v: usize) -> u64 {
    fnv(h, &(v as u32).to_le_bytes())
}
const fn fnv_str(h: u64, s: &str) -> u64 {
    fnv(fnv_u16(h, s.len()), s.as_bytes())
}

const fn hash_type(mut h: u64, t: &TypeDef) -> u64 {
    match t {
        TypeDef::Scalar(s) => fnv_u8(h, s.tag()),
        TypeDef::Atomic(s) => fnv_u8(h, ATOMIC | s.tag()),
        TypeDef::Array(elem, n) => {
            h = fnv_u8(h, ARRAY);
            h = fnv_u32(h, *n);
            hash_type(h, elem)
        }
        TypeDef::Struct(s) => hash_struct(fnv_u8(h, STRUCT), s),
    }
}

const fn hash_struct(mut h: u64, s: &StructDef) -> u64 {
    h = fnv_str(h, s.name);
    h = fnv_u32(h, s.size);
    h = fnv_u32(h, s.align);
    h = fnv_u32(h, s.fields.len());
    let mut i = 0;
    while i < s.fields.len() {
        let f = &s.fields[i];
        h = fnv_str(h, f.name);
        h = fnv_u32(h, f.offset);
        h = hash_type(h, &f.ty);
        i += 1;
    }
    h
}

impl StructDef {
    /// The layout fingerprint: FNV-1a of the encoded schema ([`Schema::encode`]), followed by
    /// the format version. Equal fingerprints mean equal schemas (exactly: same name, fields,
    /// offsets and types). Never 0 (0 marks an untyped object).
    #[must_use]
    pub const fn fingerprint(&self) -> u64 {
        let mut h = fnv(FNV_OFFSET, &MAGIC);
        h = hash_struct(h, self);
        h = fnv(h, &crate::header::FORMAT_VERSION.to_le_bytes());
        if h == 0 {
            1
        } else {
            h
        }
    }

    /// The owned form, as it would be read back from an object.
    #[must_use]
    pub fn to_schema(&self) -> Schema {
        Schema {
            name: self.name.to_owned(),
            size: self.size,
            align: self.align,
            fields: self
                .fields
                .iter()
                .map(|f| Field {
                    name: f.name.to_owned(),
                    offset: f.offset,
                    ty: type_of(&f.ty),
                })
                .collect(),
        }
    }
}

fn type_of(t: &TypeDef) -> Type {
    match t {
        TypeDef::Scalar(s) => Type::Scalar(*s),
        TypeDef::Atomic(s) => Type::Atomic(*s),
        TypeDef::Array(e, n) => Type::Array(Box::new(type_of(e)), *n),
        TypeDef::Struct(s) => Type::Struct(Box::new(s.to_schema())),
    }
}

// ---------------------------------------------------------------------------------------------
// The owned schema, as read from an object.

/// A struct's schema: its name, size, alignment and fields in order. Nested structs are
/// described the same way ([`Type::Struct`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Schema {
    /// The struct's name.
    pub name: String,
    /// `size_of` the struct.
    pub size: usize,
    /// `align_of` the struct.
    pub align: usize,
    /// Its fields in declaration order.
    pub fields: Vec<Field>,
}

/// One field of a [`Schema`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Field {
    /// The field's name.
    pub name: String,
    /// Its offset in the struct.
    pub offset: usize,
    /// Its type.
    pub ty: Type,
}

/// A field's type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Type {
    /// A number.
    Scalar(Scalar),
    /// An atomic integer (same bytes as the scalar).
    Atomic(Scalar),
    /// An array of a type, with its length.
    Array(Box<Type>, usize),
    /// A nested struct.
    Struct(Box<Schema>),
}

impl Type {
    /// Bytes of one value of this type.
    #[must_use]
    pub fn size(&self) -> usize {
        match self {
            Type::Scalar(s) | Type::Atomic(s) => s.size(),
            Type::Array(e, n) => e.size().saturating_mul(*n),
            Type::Struct(s) => s.size,
        }
    }

    /// The element type of a number or atomic.
    #[must_use]
    pub fn scalar(&self) -> Option<Scalar> {
        match self {
            Type::Scalar(s) | Type::Atomic(s) => Some(*s),
            _ => None,
        }
    }

    /// The number or atomic type of a Rust name, as [`Display`](fmt::Display) writes it:
    /// `u64`, `f32`, `AtomicU32`. `None` for any other name.
    #[must_use]
    pub fn from_name(name: &str) -> Option<Type> {
        SCALARS.iter().find_map(|&s| {
            if s.name() == name {
                Some(Type::Scalar(s))
            } else if s.has_atomic() && Type::Atomic(s).to_string() == name {
                Some(Type::Atomic(s))
            } else {
                None
            }
        })
    }
}

impl fmt::Display for Type {
    /// Rust syntax: `u32`, `AtomicU32`, `[f64; 3]`, `Vec3`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Type::Scalar(s) => f.write_str(s.name()),
            Type::Atomic(s) => {
                let n = s.name();
                write!(f, "Atomic{}{}", n[..1].to_ascii_uppercase(), &n[1..])
            }
            Type::Array(e, n) => write!(f, "[{e}; {n}]"),
            Type::Struct(s) => f.write_str(&s.name),
        }
    }
}

/// The encoding's first bytes, and its version.
const MAGIC: [u8; 5] = *b"SMOS\x01";
const ATOMIC: u8 = 0x40;
const ARRAY: u8 = 0x20;
const STRUCT: u8 = 0x30;
/// Limits a decoder enforces (the encoder refuses to exceed them too).
pub const MAX_SCHEMA_BYTES: usize = 64 * 1024;
const MAX_DEPTH: usize = 16;
const MAX_FIELDS: usize = 4096;

impl Schema {
    /// The schema's bytes as stored in an object (`docs/FORMAT.md`, "Schema"): little-endian,
    /// so they mean the same on every host.
    ///
    /// # Errors
    /// A description too large for the format (over 64 KiB, 4096 fields a struct, 16 levels
    /// of nesting, names over 65535 bytes).
    pub fn encode(&self) -> Result<Vec<u8>, String> {
        let mut out = MAGIC.to_vec();
        encode_struct(self, &mut out, 0)?;
        if out.len() > MAX_SCHEMA_BYTES {
            return Err(format!(
                "the schema of `{}` takes {} bytes, more than the {MAX_SCHEMA_BYTES} an object stores",
                self.name,
                out.len()
            ));
        }
        Ok(out)
    }

    /// Decodes and validates stored schema bytes. Untrusted input: never panics; every offset,
    /// size and count is checked (fields inside the struct, in order, not overlapping, each
    /// as large as its type).
    ///
    /// # Errors
    /// What is malformed, for a [`NotAnObject`](crate::ErrorKind::NotAnObject) error.
    pub fn decode(bytes: &[u8]) -> Result<Schema, String> {
        if bytes.len() > MAX_SCHEMA_BYTES {
            return Err(format!(
                "the schema has {} bytes, over the limit",
                bytes.len()
            ));
        }
        let mut r = Reader { bytes, at: 0 };
        if r.take(MAGIC.len())? != MAGIC {
            return Err("the schema does not start with `SMOS` version 1".into());
        }
        let s = decode_struct(&mut r, 0)?;
        if r.at != bytes.len() {
            return Err(format!(
                "{} bytes follow the schema's end",
                bytes.len() - r.at
            ));
        }
        Ok(s)
    }

    /// The append-only evolution rule: `Ok` if `self` (the struct this process uses) is a
    /// prefix of `object` (the schema stored in the object): the same name, and `self`'s fields
    /// equal to `object`'s first fields (names, offsets, types). Otherwise the first
    /// difference, in words, naming the field.
    ///
    /// # Errors
    /// The first field that differs and how.
    pub fn check_prefix(&self, object: &Schema) -> Result<(), String> {
        self.check_prefix_in(object, "the object")
    }

    /// [`check_prefix`](Self::check_prefix), with the object described as `object_desc` in
    /// the message (e.g. "the object created by pid 4242").
    ///
    /// # Errors
    /// The first field that differs and how.
    pub fn check_prefix_in(&self, object: &Schema, object_desc: &str) -> Result<(), String> {
        if self.name != object.name {
            return Err(format!(
                "{object_desc} holds `{}`, not `{}`",
                object.name, self.name
            ));
        }
        for (i, mine) in self.fields.iter().enumerate() {
            let Some(theirs) = object.fields.get(i) else {
                return Err(format!(
                    "field `{}` is missing from {object_desc}: it was created by an older build of `{}` with {} field{}",
                    mine.name,
                    self.name,
                    object.fields.len(),
                    if object.fields.len() == 1 { "" } else { "s" }
                ));
            };
            if mine.name != theirs.name {
                return Err(format!(
                    "field {} is `{}` here, `{}` in {object_desc} (fields may only be appended, never renamed or reordered)",
                    i + 1,
                    mine.name,
                    theirs.name
                ));
            }
            if mine.ty != theirs.ty {
                return Err(format!(
                    "field `{}`: `{}` here, `{}` in {object_desc}",
                    mine.name, mine.ty, theirs.ty
                ));
            }
            if mine.offset != theirs.offset {
                return Err(format!(
                    "field `{}`: at offset {} here, {} in {object_desc}",
                    mine.name, mine.offset, theirs.offset
                ));
            }
        }
        if self.size > object.size {
            return Err(format!(
                "`{}` is {} bytes here but {} in {object_desc}: an object never grows in place",
                self.name, self.size, object.size
            ));
        }
        Ok(())
    }

    /// The layout fingerprint of this schema: equal to
    /// [`StructDef::fingerprint`] of the struct it describes. 0 never occurs; a schema too
    /// large to encode has fingerprint 1.
    #[must_use]
    pub fn fingerprint(&self) -> u64 {
        let Ok(bytes) = self.encode() else {
            return 1;
        };
        let h = fnv(
            fnv(FNV_OFFSET, &bytes),
            &crate::header::FORMAT_VERSION.to_le_bytes(),
        );
        if h == 0 {
            1
        } else {
            h
        }
    }

    /// Finds a field or element by path: `pos`, `pos[1]`, `pose.position.x`,
    /// `waypoints[2].x`. Returns its offset in the struct and its type.
    ///
    /// # Errors
    /// The path's first unknown part, naming it.
    pub fn resolve(&self, path: &str) -> Result<(usize, &Type), String> {
        let mut parts = PathParts::new(path);
        let Some(PathPart::Name(first)) = parts.next()? else {
            return Err(format!("`{path}` does not start with a field name"));
        };
        let field = self.field(first).ok_or_else(|| {
            format!(
                "no field `{first}` in `{}` (its fields: {})",
                self.name,
                self.field_names()
            )
        })?;
        let (mut offset, mut ty) = (field.offset, &field.ty);
        while let Some(part) = parts.next()? {
            match (part, ty) {
                (PathPart::Index(i), Type::Array(e, n)) => {
                    if i >= *n {
                        return Err(format!(
                            "index {i} is out of range in `{path}`: the array has {n} elements"
                        ));
                    }
                    offset += i * e.size();
                    ty = e;
                }
                (PathPart::Name(name), Type::Struct(s)) => {
                    let f = s.field(name).ok_or_else(|| {
                        format!(
                            "no field `{name}` in `{}` (in `{path}`; its fields: {})",
                            s.name,
                            s.field_names()
                        )
                    })?;
                    offset += f.offset;
                    ty = &f.ty;
                }
                (PathPart::Index(i), t) => {
                    return Err(format!("`{path}`: `[{i}]` indexes a `{t}`, not an array"));
                }
                (PathPart::Name(name), t) => {
                    return Err(format!("`{path}`: `.{name}` on a `{t}`, not a struct"));
                }
            }
        }
        Ok((offset, ty))
    }

    fn field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.name == name)
    }

    fn field_names(&self) -> String {
        self.fields
            .iter()
            .map(|f| format!("`{}`", f.name))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Decodes a whole value of this struct from its bytes (at least `size` of them).
    #[must_use]
    pub fn decode_value(&self, bytes: &[u8]) -> Value {
        decode_value(&Type::Struct(Box::new(self.clone())), bytes)
    }

    /// Every field of the struct with its value, flattened to paths (`pos[1]`, `a.b`).
    #[must_use]
    pub fn describe_layout(&self) -> Vec<(String, usize, String)> {
        let mut out = Vec::new();
        for f in &self.fields {
            out.push((f.name.clone(), f.offset, f.ty.to_string()));
            if let Type::Struct(s) = &f.ty {
                for (p, o, t) in s.describe_layout() {
                    out.push((format!("{}.{p}", f.name), f.offset + o, t));
                }
            }
        }
        out
    }
}

fn put_u16(out: &mut Vec<u8>, v: usize, what: &str) -> Result<(), String> {
    let v = u16::try_from(v).map_err(|_| format!("{what} is too long ({v} bytes)"))?;
    out.extend_from_slice(&v.to_le_bytes());
    Ok(())
}

fn put_u32(out: &mut Vec<u8>, v: usize, what: &str) -> Result<(), String> {
    let v = u32::try_from(v).map_err(|_| format!("{what} ({v}) does not fit the format"))?;
    out.extend_from_slice(&v.to_le_bytes());
    Ok(())
}

fn put_str(out: &mut Vec<u8>, s: &str) -> Result<(), String> {
    put_u16(out, s.len(), &format!("the name `{s}`"))?;
    out.extend_from_slice(s.as_bytes());
    Ok(())
}

fn encode_struct(s: &Schema, out: &mut Vec<u8>, depth: usize) -> Result<(), String> {
    if depth > MAX_DEPTH {
        return Err(format!(
            "`{}` is nested more than {MAX_DEPTH} levels deep",
            s.name
        ));
    }
    if s.fields.len() > MAX_FIELDS {
        return Err(format!("`{}` has more than {MAX_FIELDS} fields", s.name));
    }
    put_str(out, &s.name)?;
    put_u32(out, s.size, "the struct size")?;
    put_u32(out, s.align, "the alignment")?;
    put_u32(out, s.fields.len(), "the field count")?;
    for f in &s.fields {
        put_str(out, &f.name)?;
        put_u32(out, f.offset, "a field offset")?;
        encode_type(&f.ty, out, depth)?;
    }
    Ok(())
}

fn encode_type(t: &Type, out: &mut Vec<u8>, depth: usize) -> Result<(), String> {
    match t {
        Type::Scalar(s) => out.push(s.tag()),
        Type::Atomic(s) => out.push(ATOMIC | s.tag()),
        Type::Array(e, n) => {
            out.push(ARRAY);
            put_u32(out, *n, "an array length")?;
            encode_type(e, out, depth + 1)?;
        }
        Type::Struct(s) => {
            out.push(STRUCT);
            encode_struct(s, out, depth + 1)?;
        }
    }
    Ok(())
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or_else(|| format!("the schema ends early (at byte {})", self.at))?;
        let s = &self.bytes[self.at..end];
        self.at = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<usize, String> {
        let b = self.take(2)?;
        Ok(usize::from(u16::from_le_bytes([b[0], b[1]])))
    }
    fn u32(&mut self) -> Result<usize, String> {
        let b = self.take(4)?;
        usize::try_from(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .map_err(|_| "a number in the schema does not fit this machine".to_owned())
    }
    fn str(&mut self) -> Result<String, String> {
        let n = self.u16()?;
        let at = self.at;
        let b = self.take(n)?;
        let s = std::str::from_utf8(b)
            .map_err(|_| format!("a name at byte {at} of the schema is not UTF-8"))?;
        if s.is_empty() {
            return Err(format!("an empty name at byte {at} of the schema"));
        }
        Ok(s.to_owned())
    }
}

fn decode_struct(r: &mut Reader<'_>, depth: usize) -> Result<Schema, String> {
    if depth > MAX_DEPTH {
        return Err(format!("nested more than {MAX_DEPTH} levels deep"));
    }
    let name = r.str()?;
    let size = r.u32()?;
    let align = r.u32()?;
    let n = r.u32()?;
    if !align.is_power_of_two() || align > 4096 || size % align != 0 {
        return Err(format!(
            "`{name}` has size {size} and alignment {align}, which no struct has"
        ));
    }
    if n > MAX_FIELDS {
        return Err(format!("`{name}` claims {n} fields"));
    }
    let mut fields: Vec<Field> = Vec::with_capacity(n.min(64));
    let mut end = 0usize;
    for _ in 0..n {
        let fname = r.str()?;
        let offset = r.u32()?;
        let ty = decode_type(r, depth)?;
        let fsize = ty.size();
        if offset < end || offset.checked_add(fsize).is_none_or(|e| e > size) {
            return Err(format!(
                "field `{fname}` of `{name}` (offset {offset}, {fsize} bytes) overlaps another or lies outside the struct's {size} bytes"
            ));
        }
        if fields.iter().any(|f| f.name == fname) {
            return Err(format!("field `{fname}` appears twice in `{name}`"));
        }
        end = offset + fsize;
        fields.push(Field {
            name: fname,
            offset,
            ty,
        });
    }
    Ok(Schema {
        name,
        size,
        align,
        fields,
    })
}

fn decode_type(r: &mut Reader<'_>, depth: usize) -> Result<Type, String> {
    let at = r.at;
    let tag = r.u8()?;
    if let Some(s) = Scalar::from_tag(tag) {
        return Ok(Type::Scalar(s));
    }
    if tag & ATOMIC != 0 {
        return match Scalar::from_tag(tag & !ATOMIC) {
            Some(s) if s.has_atomic() => Ok(Type::Atomic(s)),
            _ => Err(format!("unknown type tag {tag:#04x} at byte {at}")),
        };
    }
    match tag {
        ARRAY => {
            let n = r.u32()?;
            let e = decode_type(r, depth + 1)?;
            if e.size()
                .checked_mul(n)
                .is_none_or(|s| s > u32::MAX as usize)
            {
                return Err(format!("an array at byte {at} is too large"));
            }
            Ok(Type::Array(Box::new(e), n))
        }
        STRUCT => Ok(Type::Struct(Box::new(decode_struct(r, depth + 1)?))),
        _ => Err(format!("unknown type tag {tag:#04x} at byte {at}")),
    }
}

// ---------------------------------------------------------------------------------------------
// Values.

/// A field's value, decoded by its schema type.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// An unsigned integer (`u8`..`u128` and their atomics).
    Unsigned(u128),
    /// A signed integer.
    Signed(i128),
    /// A float (`f32` values widened exactly).
    Float(f64),
    /// An array's elements.
    Array(Vec<Value>),
    /// A nested struct's fields, in order.
    Struct(Vec<(String, Value)>),
}

impl fmt::Display for Value {
    /// `7`, `-3`, `1.5`, `[1.0, 2.0, 3.0]`, `{x: 1.0, y: 2.0}`. Floats always show a decimal
    /// point or exponent, and round-trip exactly, except that every NaN prints as `NaN`
    /// (without its sign or payload bits).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Unsigned(v) => write!(f, "{v}"),
            Value::Signed(v) => write!(f, "{v}"),
            Value::Float(v) => write!(f, "{v:?}"),
            Value::Array(items) => {
                f.write_str("[")?;
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{v}")?;
                }
                f.write_str("]")
            }
            Value::Struct(fields) => {
                f.write_str("{")?;
                for (i, (n, v)) in fields.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{n}: {v}")?;
                }
                f.write_str("}")
            }
        }
    }
}

impl Value {
    /// The value as JSON: integers and floats as numbers, arrays as arrays, structs as
    /// objects with their fields in order. JSON has no NaN or infinity: those are `null`.
    #[must_use]
    pub fn to_json(&self) -> String {
        let mut out = String::new();
        self.write_json(&mut out);
        out
    }

    fn write_json(&self, out: &mut String) {
        use std::fmt::Write as _;
        match self {
            Value::Unsigned(v) => {
                let _ = write!(out, "{v}");
            }
            Value::Signed(v) => {
                let _ = write!(out, "{v}");
            }
            Value::Float(v) if v.is_finite() => {
                let _ = write!(out, "{v:?}");
            }
            Value::Float(_) => out.push_str("null"),
            Value::Array(items) => {
                out.push('[');
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    v.write_json(out);
                }
                out.push(']');
            }
            Value::Struct(fields) => {
                out.push('{');
                for (i, (n, v)) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    json_string(n, out);
                    out.push_str(": ");
                    v.write_json(out);
                }
                out.push('}');
            }
        }
    }
}

/// `s` as a JSON string literal.
fn json_string(s: &str, out: &mut String) {
    use std::fmt::Write as _;
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Decodes the value of type `ty` at the start of `bytes` (native-endian, as in the object).
/// Bytes missing at the end read as 0 (never a panic).
#[must_use]
pub fn decode_value(ty: &Type, bytes: &[u8]) -> Value {
    match ty {
        Type::Scalar(scalar) | Type::Atomic(scalar) => {
            let size = scalar.size();
            let have = size.min(bytes.len());
            let mut wide = [0u8; 16];
            // Native-endian: widen by placing the bytes at the low end of a 16-byte integer.
            let at = if cfg!(target_endian = "little") {
                0
            } else {
                16 - size
            };
            wide[at..at + have].copy_from_slice(&bytes[..have]);
            let u = u128::from_ne_bytes(wide);
            let bits = size * 8;
            match scalar {
                Scalar::F32 => {
                    // Widened through its shortest decimal form, so `0.1f32` shows as `0.1`
                    // (and converts back to the same `f32`: 53 >= 2 * 24 + 2 bits, so rounding
                    // twice is exact).
                    let x = f32::from_bits(u as u32);
                    Value::Float(x.to_string().parse().unwrap_or(f64::from(x)))
                }
                Scalar::F64 => Value::Float(f64::from_bits(u as u64)),
                s if s.is_signed() => {
                    // Sign-extend from the scalar's width.
                    let shift = 128 - bits;
                    Value::Signed(((u << shift) as i128) >> shift)
                }
                _ => Value::Unsigned(u),
            }
        }
        Type::Array(e, n) => {
            let es = e.size();
            Value::Array(
                (0..*n)
                    .map(|i| decode_value(e, bytes.get(i * es..).unwrap_or(&[])))
                    .collect(),
            )
        }
        Type::Struct(s) => Value::Struct(
            s.fields
                .iter()
                .map(|f| {
                    (
                        f.name.clone(),
                        decode_value(&f.ty, bytes.get(f.offset..).unwrap_or(&[])),
                    )
                })
                .collect(),
        ),
    }
}

/// Encodes `v` as type `ty` into the start of `out` (native-endian), range-checked: an integer
/// that does not fit, a float for an integer, or an array of the wrong length is an error
/// (naming `what`) and nothing is written.
///
/// # Errors
/// Why `v` is not a `ty`.
pub fn encode_value(ty: &Type, v: &Value, what: &str, out: &mut [u8]) -> Result<(), String> {
    let dst = out
        .get_mut(..ty.size())
        .ok_or_else(|| format!("`{what}` does not fit the buffer"))?;
    // Into a copy first: on an error nothing is written; struct fields not named keep their
    // bytes.
    let mut buf = dst.to_vec();
    encode_into(ty, v, what, &mut buf)?;
    dst.copy_from_slice(&buf);
    Ok(())
}

fn encode_into(ty: &Type, v: &Value, what: &str, out: &mut [u8]) -> Result<(), String> {
    match (ty, v) {
        (Type::Scalar(s) | Type::Atomic(s), _) => {
            let bytes =
                scalar_bytes(*s, v).map_err(|why| format!("`{what}` is a `{ty}`: {why}"))?;
            out[..s.size()].copy_from_slice(&bytes[..s.size()]);
            Ok(())
        }
        (Type::Array(e, n), Value::Array(items)) => {
            if items.len() != *n {
                return Err(format!(
                    "`{what}` is a `{ty}`: {} values given, {n} needed",
                    items.len()
                ));
            }
            let es = e.size();
            for (i, item) in items.iter().enumerate() {
                encode_into(e, item, &format!("{what}[{i}]"), &mut out[i * es..])?;
            }
            Ok(())
        }
        (Type::Struct(s), Value::Struct(fields)) => {
            for (name, fv) in fields {
                let f = s.field(name).ok_or_else(|| {
                    format!("`{what}` is a `{}`, which has no field `{name}`", s.name)
                })?;
                encode_into(&f.ty, fv, &format!("{what}.{name}"), &mut out[f.offset..])?;
            }
            Ok(())
        }
        (t, v) => Err(format!("`{what}` is a `{t}`, not {}", kind_of(v))),
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Unsigned(_) | Value::Signed(_) => "an integer",
        Value::Float(_) => "a number",
        Value::Array(_) => "an array",
        Value::Struct(_) => "a struct",
    }
}

#[allow(clippy::cast_precision_loss)] // integers given for floats convert as `as` does
#[allow(clippy::many_single_char_names)] // s(calar), v(alue), b(ytes), x, y: a short numeric body
fn scalar_bytes(s: Scalar, v: &Value) -> Result<[u8; 16], String> {
    let mut b = [0u8; 16];
    if s.is_float() {
        let x = match *v {
            Value::Float(x) => x,
            Value::Unsigned(u) => u as f64,
            Value::Signed(i) => i as f64,
            _ => return Err(format!("{} given", kind_of(v))),
        };
        if s == Scalar::F32 {
            #[allow(clippy::cast_possible_truncation)]
            let y = x as f32;
            if x.is_finite() && !y.is_finite() {
                return Err(format!(
                    "{x:e} is out of range for an f32 (about -3.4e38 to 3.4e38)"
                ));
            }
            b[..4].copy_from_slice(&y.to_ne_bytes());
        } else {
            b[..8].copy_from_slice(&x.to_ne_bytes());
        }
        return Ok(b);
    }
    let bits = s.size() * 8;
    // Range check: u128 and i128 values are compared in their own types.
    let fits = match *v {
        Value::Unsigned(u) => {
            let max = if s.is_signed() {
                (1u128 << (bits - 1)) - 1
            } else {
                u128::MAX >> (128 - bits)
            };
            u <= max
        }
        Value::Signed(i) => {
            if s.is_signed() {
                let min = i128::MIN >> (128 - bits);
                let max = i128::MAX >> (128 - bits);
                (min..=max).contains(&i)
            } else {
                i >= 0 && (i as u128) <= u128::MAX >> (128 - bits)
            }
        }
        Value::Float(x) => return Err(format!("{x:?} is not an integer")),
        _ => return Err(format!("{} given", kind_of(v))),
    };
    if !fits {
        let (min, max) = int_range(s);
        return Err(format!("{v} is out of range ({min}..={max})"));
    }
    let bits128 = match *v {
        Value::Unsigned(u) => u,
        Value::Signed(i) => i as u128,
        _ => 0,
    };
    let ne = bits128.to_ne_bytes();
    // Native-endian: the low bytes of the u128 are first on little-endian hosts, last on
    // big-endian ones.
    if cfg!(target_endian = "little") {
        b[..s.size()].copy_from_slice(&ne[..s.size()]);
    } else {
        b[..s.size()].copy_from_slice(&ne[16 - s.size()..]);
    }
    Ok(b)
}

/// Parses text as a value of type `ty`: integers (range-checked), floats (`1.5`, `-2e3`,
/// `nan`, `inf`), arrays `[1, 2, 3]` (nested for nested arrays), and structs
/// `{x: 1, y: 2}` (fields not named keep their value).
///
/// # Errors
/// Why the text is not a `ty`, naming `what`.
pub fn parse_value(ty: &Type, text: &str, what: &str) -> Result<Value, String> {
    let mut p = TextParser {
        s: text.as_bytes(),
        at: 0,
    };
    let v = p
        .value(ty, what)
        .map_err(|e| format!("{e} (in `{what}={text}`)"))?;
    p.ws();
    if p.at != p.s.len() {
        return Err(format!(
            "`{what}`: unexpected `{}` after the value",
            &text[p.at..]
        ));
    }
    // Range checks happen here, once, against the type.
    encode_into(ty, &v, what, &mut vec![0u8; ty.size()])?;
    Ok(v)
}

struct TextParser<'a> {
    s: &'a [u8],
    at: usize,
}

impl TextParser<'_> {
    fn ws(&mut self) {
        while self.s.get(self.at).is_some_and(u8::is_ascii_whitespace) {
            self.at += 1;
        }
    }

    fn eat(&mut self, c: u8) -> bool {
        self.ws();
        if self.s.get(self.at) == Some(&c) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn value(&mut self, ty: &Type, what: &str) -> Result<Value, String> {
        match ty {
            Type::Scalar(s) | Type::Atomic(s) => self.number(*s, what),
            Type::Array(e, n) => {
                if !self.eat(b'[') {
                    return Err(format!("`{what}` is a `{ty}`: expected `[`"));
                }
                let mut items = Vec::new();
                if !self.eat(b']') {
                    loop {
                        items.push(self.value(e, &format!("{what}[{}]", items.len()))?);
                        if self.eat(b']') {
                            break;
                        }
                        if !self.eat(b',') {
                            return Err(format!("`{what}`: expected `,` or `]`"));
                        }
                    }
                }
                if items.len() != *n {
                    return Err(format!(
                        "`{what}` is a `{ty}`: {} values given, {n} needed",
                        items.len()
                    ));
                }
                Ok(Value::Array(items))
            }
            Type::Struct(s) => {
                if !self.eat(b'{') {
                    return Err(format!("`{what}` is a `{}`: expected `{{`", s.name));
                }
                let mut fields = Vec::new();
                if !self.eat(b'}') {
                    loop {
                        self.ws();
                        let start = self.at;
                        while self
                            .s
                            .get(self.at)
                            .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_')
                        {
                            self.at += 1;
                        }
                        let name = String::from_utf8_lossy(&self.s[start..self.at]).into_owned();
                        if !self.eat(b':') && !self.eat(b'=') {
                            return Err(format!("`{what}`: expected `name: value`"));
                        }
                        let f = s.field(&name).ok_or_else(|| {
                            format!("`{what}` is a `{}`, which has no field `{name}`", s.name)
                        })?;
                        if fields.iter().any(|(n, _)| *n == name) {
                            return Err(format!("`{what}`: field `{name}` is given twice"));
                        }
                        let v = self.value(&f.ty, &format!("{what}.{name}"))?;
                        fields.push((name, v));
                        if self.eat(b'}') {
                            break;
                        }
                        if !self.eat(b',') {
                            return Err(format!("`{what}`: expected `,` or `}}`"));
                        }
                    }
                }
                Ok(Value::Struct(fields))
            }
        }
    }

    fn number(&mut self, s: Scalar, what: &str) -> Result<Value, String> {
        self.ws();
        let start = self.at;
        while self
            .s
            .get(self.at)
            .is_some_and(|c| !matches!(c, b',' | b']' | b'}') && !c.is_ascii_whitespace())
        {
            self.at += 1;
        }
        let tok = std::str::from_utf8(&self.s[start..self.at]).unwrap_or("");
        if tok.is_empty() {
            return Err(format!("`{what}` is a `{s}`: a number is missing"));
        }
        if s.is_float() {
            let x = tok
                .parse::<f64>()
                .map_err(|_| format!("`{what}` is a `{s}`: `{tok}` is not a number"))?;
            return float_literal_fits(s, tok, x)
                .map(|()| Value::Float(x))
                .map_err(|range| {
                    format!("`{what}` is a `{s}`: `{tok}` is out of range ({range})")
                });
        }
        let not_int = || format!("`{what}` is a `{s}`: `{tok}` is not an integer");
        let signless = tok.strip_prefix('+').unwrap_or(tok);
        let (neg, digits) = signless
            .strip_prefix('-')
            .filter(|_| signless.len() == tok.len())
            .map_or((false, signless), |d| (true, d));
        let (radix, digits) = match digits.get(..2) {
            Some("0x" | "0X") => (16, &digits[2..]),
            Some("0b" | "0B") => (2, &digits[2..]),
            _ => (10, digits),
        };
        // `_` separates digits (`1_000`); it cannot stand first, and no second sign may
        // follow, which `from_str_radix` alone would accept (`0x+5`, `-+5`).
        if !digits.starts_with(|c: char| c.is_digit(radix)) {
            return Err(not_int());
        }
        let digits = digits.replace('_', "");
        let mag = u128::from_str_radix(&digits, radix).map_err(|e| {
            if *e.kind() == std::num::IntErrorKind::PosOverflow {
                let (min, max) = int_range(s);
                format!("`{what}` is a `{s}`: `{tok}` is out of range ({min}..={max})")
            } else {
                not_int()
            }
        })?;
        let v = if neg {
            i128::try_from(mag)
                .ok()
                .and_then(i128::checked_neg)
                .map(Value::Signed)
                .or_else(|| (mag == 1u128 << 127).then_some(Value::Signed(i128::MIN)))
        } else {
            Some(Value::Unsigned(mag))
        };
        v.ok_or_else(|| {
            let (min, max) = int_range(s);
            format!("`{what}` is a `{s}`: `{tok}` is out of range ({min}..={max})")
        })
    }
}

/// The smallest and largest value of the integer scalar `s`, as text.
fn int_range(s: Scalar) -> (String, String) {
    let bits = s.size() * 8;
    if s.is_signed() {
        (
            (i128::MIN >> (128 - bits)).to_string(),
            (i128::MAX >> (128 - bits)).to_string(),
        )
    } else {
        ("0".to_owned(), (u128::MAX >> (128 - bits)).to_string())
    }
}

/// Whether the float literal `tok`, parsed as `x`, is stored as a `s` without turning into
/// infinity or zero: `1e400` is not infinity and `1e-400` is not zero, whatever IEEE
/// rounding would make of them. The literals `inf` and `nan` are taken as written.
///
/// # Errors
/// The finite range of `s`, as text, when the literal is outside it.
fn float_literal_fits(s: Scalar, tok: &str, x: f64) -> Result<(), &'static str> {
    #[allow(clippy::cast_possible_truncation)] // the point: what does the f32 become?
    let stored = if s == Scalar::F32 {
        f64::from(x as f32)
    } else {
        x
    };
    let mantissa = tok.split(['e', 'E']).next().unwrap_or(tok);
    let written_inf = x.is_infinite() && !mantissa.bytes().any(|c| c.is_ascii_digit());
    let overflows = stored.is_infinite() && !written_inf;
    let underflows = stored == 0.0 && mantissa.bytes().any(|c| matches!(c, b'1'..=b'9'));
    if overflows || underflows {
        Err(if s == Scalar::F32 {
            "about 1.4e-45 to 3.4e38 in magnitude, or 0, inf, nan"
        } else {
            "about 4.9e-324 to 1.8e308 in magnitude, or 0, inf, nan"
        })
    } else {
        Ok(())
    }
}

/// One part of a field path.
enum PathPart<'a> {
    Name(&'a str),
    Index(usize),
}

struct PathParts<'a> {
    path: &'a str,
    rest: &'a str,
    first: bool,
}

impl<'a> PathParts<'a> {
    fn new(path: &'a str) -> Self {
        PathParts {
            path,
            rest: path,
            first: true,
        }
    }

    fn next(&mut self) -> Result<Option<PathPart<'a>>, String> {
        if self.rest.is_empty() {
            if self.first {
                return Err("an empty field path".into());
            }
            return Ok(None);
        }
        let path = self.path;
        let bad = || format!("`{path}` is not a field path (like `pos`, `pos[1]`, `a.b`)");
        if let Some(r) = self.rest.strip_prefix('[') {
            let end = r.find(']').ok_or_else(bad)?;
            let digits = &r[..end];
            // One spelling per element: decimal digits, no sign, space or leading zero.
            let canonical = !digits.is_empty()
                && digits.bytes().all(|b| b.is_ascii_digit())
                && (digits == "0" || !digits.starts_with('0'));
            if !canonical {
                return Err(bad());
            }
            let i = digits
                .parse()
                .map_err(|_| format!("index {digits} is out of range in `{path}`"))?;
            self.rest = &r[end + 1..];
            self.first = false;
            return Ok(Some(PathPart::Index(i)));
        }
        let r = if self.first {
            self.rest
        } else {
            self.rest.strip_prefix('.').ok_or_else(bad)?
        };
        let end = r.find(['.', '[']).unwrap_or(r.len());
        if end == 0 {
            return Err(bad());
        }
        self.rest = &r[end..];
        self.first = false;
        Ok(Some(PathPart::Name(&r[..end])))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[repr(C)]
    struct Vec3 {
        x: f64,
        y: f64,
        z: f64,
    }
    const VEC3: StructDef = StructDef {
        name: "Vec3",
        size: 24,
        align: 8,
        fields: &[
            FieldDef {
                name: "x",
                offset: 0,
                ty: TypeDef::Scalar(Scalar::F64),
            },
            FieldDef {
                name: "y",
                offset: 8,
                ty: TypeDef::Scalar(Scalar::F64),
            },
            FieldDef {
                name: "z",
                offset: 16,
                ty: TypeDef::Scalar(Scalar::F64),
            },
        ],
    };
    const T: StructDef = StructDef {
        name: "T",
        size: 64,
        align: 8,
        fields: &[
            FieldDef {
                name: "seq",
                offset: 0,
                ty: TypeDef::Scalar(Scalar::U64),
            },
            FieldDef {
                name: "pos",
                offset: 8,
                ty: <[f64; 3] as Describe>::TYPE,
            },
            FieldDef {
                name: "v",
                offset: 32,
                ty: TypeDef::Struct(&VEC3),
            },
            FieldDef {
                name: "n",
                offset: 56,
                ty: TypeDef::Atomic(Scalar::I32),
            },
            FieldDef {
                name: "m",
                offset: 60,
                ty: TypeDef::Scalar(Scalar::U32),
            },
        ],
    };

    #[test]
    fn encodes_decodes_and_fingerprints_the_same_bytes() {
        let s = T.to_schema();
        let bytes = s.encode().unwrap();
        assert_eq!(Schema::decode(&bytes).unwrap(), s);
        let h = fnv(
            fnv(FNV_OFFSET, &bytes),
            &crate::header::FORMAT_VERSION.to_le_bytes(),
        );
        assert_eq!(T.fingerprint(), h, "the const hash walks the encoded bytes");
        let _ = std::mem::size_of::<Vec3>();
    }

    #[test]
    fn prefix_rule_names_the_first_difference() {
        let full = T.to_schema();
        let mut old = full.clone();
        old.fields.truncate(3);
        old.size = 56;
        assert!(old.check_prefix(&full).is_ok());
        let e = full.check_prefix(&old).unwrap_err();
        assert!(
            e.contains("field `n` is missing") && e.contains("3 fields"),
            "{e}"
        );
        let mut changed = old.clone();
        changed.fields[1].ty = Type::Array(Box::new(Type::Scalar(Scalar::F32)), 6);
        let e = changed.check_prefix(&full).unwrap_err();
        assert_eq!(e, "field `pos`: `[f32; 6]` here, `[f64; 3]` in the object");
        let mut reordered = old.clone();
        reordered.fields.swap(0, 1);
        assert!(reordered
            .check_prefix(&full)
            .unwrap_err()
            .contains("`pos` here, `seq`"));
        let mut renamed = old;
        renamed.name = "U".into();
        assert!(renamed
            .check_prefix(&full)
            .unwrap_err()
            .contains("holds `T`"));
    }

    #[test]
    fn resolves_paths() {
        let s = T.to_schema();
        assert_eq!(s.resolve("pos[2]").unwrap().0, 24);
        assert_eq!(s.resolve("v.y").unwrap().0, 40);
        assert!(s.resolve("pos[3]").unwrap_err().contains("out of range"));
        assert!(s.resolve("nope").unwrap_err().contains("no field `nope`"));
        assert!(s.resolve("seq.x").is_err());
        assert!(s.resolve("v[0]").is_err());
        assert!(s.resolve("pos[").is_err());
    }

    #[test]
    fn values_round_trip_and_are_range_checked() {
        let s = T.to_schema();
        let mut buf = vec![0u8; 64];
        let (off, ty) = s.resolve("pos").unwrap();
        let v = parse_value(ty, "[1, 2.5, -3e2]", "pos").unwrap();
        encode_value(ty, &v, "pos", &mut buf[off..]).unwrap();
        let (off, ty) = s.resolve("n").unwrap();
        let v = parse_value(ty, "-7", "n").unwrap();
        encode_value(ty, &v, "n", &mut buf[off..]).unwrap();
        let all = s.decode_value(&buf);
        assert_eq!(
            all.to_string(),
            "{seq: 0, pos: [1.0, 2.5, -300.0], v: {x: 0.0, y: 0.0, z: 0.0}, n: -7, m: 0}"
        );
        let (_, m) = s.resolve("m").unwrap();
        assert!(parse_value(m, "4294967296", "m")
            .unwrap_err()
            .contains("out of range"));
        assert!(parse_value(m, "-1", "m")
            .unwrap_err()
            .contains("out of range"));
        assert!(parse_value(m, "1.5", "m")
            .unwrap_err()
            .contains("not an integer"));
        let (_, pos) = s.resolve("pos").unwrap();
        assert!(parse_value(pos, "[1,2]", "pos")
            .unwrap_err()
            .contains("3 needed"));
        let (_, v) = s.resolve("v").unwrap();
        assert!(parse_value(v, "{x: 1, w: 2}", "v")
            .unwrap_err()
            .contains("no field `w`"));
    }

    #[test]
    fn text_literals_out_of_range_or_malformed_are_refused_by_name() {
        let u128t = Type::Scalar(Scalar::U128);
        let e = parse_value(&u128t, &format!("{}0", u128::MAX), "big").unwrap_err();
        assert!(e.contains("out of range") && e.contains("`big`"), "{e}");
        let e =
            parse_value(&Type::Scalar(Scalar::U64), "0x1_0000_0000_0000_0000", "s").unwrap_err();
        assert!(e.contains("out of range (0..=18446744073709551615)"), "{e}");
        for bad in ["_1", "-_1", "0x_ff", "0x+5", "-+5", "+-5", "--5", "0x", "_"] {
            let e = parse_value(&Type::Scalar(Scalar::I64), bad, "seq").unwrap_err();
            assert!(e.contains("not an integer"), "{bad}: {e}");
        }
        for (ok, want) in [("+5", 5u128), ("1_000", 1000), ("0xff_ff", 0xffff)] {
            assert_eq!(
                parse_value(&Type::Scalar(Scalar::U32), ok, "n").unwrap(),
                Value::Unsigned(want),
                "{ok}"
            );
        }
        let f64t = Type::Scalar(Scalar::F64);
        let f32t = Type::Scalar(Scalar::F32);
        for (ty, bad) in [
            (&f64t, "1e400"),
            (&f64t, "-1e400"),
            (&f64t, "1e-400"),
            (&f64t, "-2.5e-999"),
            (&f32t, "1e39"),
            (&f32t, "1e-50"),
        ] {
            let e = parse_value(ty, bad, "x").unwrap_err();
            assert!(
                e.contains("out of range") && e.contains("`x`"),
                "{bad}: {e}"
            );
        }
        for (ty, ok) in [
            (&f64t, "inf"),
            (&f64t, "-inf"),
            (&f64t, "nan"),
            (&f64t, "0e999"),
            (&f64t, "-0.0"),
            (&f64t, "5e-324"),
            (&f32t, "inf"),
            (&f32t, "1e-40"),
            (&f32t, "3.4e38"),
        ] {
            assert!(parse_value(ty, ok, "x").is_ok(), "{ok}");
        }
        let s = T.to_schema();
        for odd in [
            "pos[01]", "pos[ 1]", "pos[1 ]", "pos[+1]", "pos[]", "pos[-0]",
        ] {
            let e = s.resolve(odd).unwrap_err();
            assert!(e.contains("not a field path"), "{odd}: {e}");
        }
        assert!(s.resolve("pos[0]").is_ok() && s.resolve("pos[2]").is_ok());
        let e = s.resolve("pos[99999999999999999999999]").unwrap_err();
        assert!(
            e.contains("out of range") && !e.contains("not a field path"),
            "{e}"
        );
        let (_, v) = s.resolve("v").unwrap();
        let e = parse_value(v, "{x: 1, y: 2, x: 3}", "v").unwrap_err();
        assert!(e.contains("field `x` is given twice"), "{e}");
    }

    #[test]
    fn wide_integers_floats_json_and_partial_structs() {
        let wide_u = Type::Scalar(Scalar::U128);
        let max = parse_value(&wide_u, &u128::MAX.to_string(), "u").unwrap();
        let mut bytes = [0u8; 16];
        encode_value(&wide_u, &max, "u", &mut bytes).unwrap();
        assert_eq!(decode_value(&wide_u, &bytes), Value::Unsigned(u128::MAX));
        let wide_i = Type::Scalar(Scalar::I128);
        let min = parse_value(&wide_i, &i128::MIN.to_string(), "i").unwrap();
        encode_value(&wide_i, &min, "i", &mut bytes).unwrap();
        assert_eq!(decode_value(&wide_i, &bytes), Value::Signed(i128::MIN));
        let i8t = Type::Scalar(Scalar::I8);
        assert!(parse_value(&i8t, "-129", "x")
            .unwrap_err()
            .contains("out of range"));
        encode_value(&i8t, &Value::Signed(-128), "x", &mut bytes).unwrap();
        assert_eq!(decode_value(&i8t, &bytes), Value::Signed(-128));
        let float = Type::Scalar(Scalar::F32);
        encode_value(&float, &Value::Float(0.1), "f", &mut bytes).unwrap();
        assert_eq!(decode_value(&float, &bytes).to_string(), "0.1");
        assert_eq!(Value::Float(f64::NAN).to_json(), "null");
        let mut out = String::new();
        json_string("a\"b\\\n", &mut out);
        assert_eq!(out, r#""a\"b\\\u000a""#);
        // A struct value naming some fields keeps the others.
        let s = T.to_schema();
        let (off, v) = s.resolve("v").unwrap();
        let mut buf = [0u8; 64];
        encode_value(
            v,
            &parse_value(v, "{x: 1, y: 2, z: 3}", "v").unwrap(),
            "v",
            &mut buf[off..],
        )
        .unwrap();
        encode_value(
            v,
            &parse_value(v, "{y: 5}", "v").unwrap(),
            "v",
            &mut buf[off..],
        )
        .unwrap();
        assert_eq!(
            decode_value(v, &buf[off..]).to_string(),
            "{x: 1.0, y: 5.0, z: 3.0}"
        );
        // Describe covers the wrappers and zero-sized types.
        assert!(matches!(
            <std::num::Wrapping<u16> as Describe>::TYPE,
            TypeDef::Scalar(Scalar::U16)
        ));
        assert!(matches!(<() as Describe>::TYPE, TypeDef::Array(_, 0)));
        assert!(matches!(
            <i128 as Describe>::TYPE,
            TypeDef::Scalar(Scalar::I128)
        ));
        // Names back to types: every scalar and every atomic std has, nothing else.
        for sc in SCALARS {
            assert_eq!(Type::from_name(sc.name()), Some(Type::Scalar(sc)));
            let atomic = Type::Atomic(sc);
            let back = Type::from_name(&atomic.to_string());
            assert_eq!(back, sc.has_atomic().then_some(atomic));
        }
        assert_eq!(Type::from_name("bool"), None);
        // An atomic tag of a scalar std has no atomic of is malformed.
        let mut bytes = T.to_schema().encode().unwrap();
        let at = bytes.len() - 1; // `m`'s type tag, the last byte
        bytes[at] = ATOMIC | Scalar::U128.tag();
        assert!(Schema::decode(&bytes).is_err());
        bytes[at] = ATOMIC | Scalar::U32.tag();
        assert!(Schema::decode(&bytes).is_ok());
    }

    /// Malformed schema bytes never panic and are refused: random bytes and mutations.
    #[test]
    fn decoding_fuzz() {
        let good = T.to_schema().encode().unwrap();
        let mut next = crate::xorshift(0x2545_f491_4f6c_dd1d);
        let mut refused = 0;
        for i in 0..100_000u32 {
            let mut b = good.clone();
            match i % 3 {
                0 => b.iter_mut().for_each(|c| *c = next() as u8),
                1 => {
                    for _ in 0..=(next() % 4) {
                        let at = (next() as usize) % b.len();
                        b[at] = next() as u8;
                    }
                }
                _ => b.truncate((next() as usize) % b.len()),
            }
            match Schema::decode(&b) {
                Ok(s) => {
                    // Whatever is accepted is self-consistent.
                    for f in &s.fields {
                        assert!(f.offset + f.ty.size() <= s.size);
                    }
                }
                Err(_) => refused += 1,
            }
        }
        assert!(refused > 50_000);
    }

    /// Tokens of the value and path fuzz: delimiters, numbers at the edges of ranges, float
    /// spellings, field names, non-ASCII.
    const FUZZ_TOKENS: &[&str] = &[
        "[",
        "]",
        "{",
        "}",
        ",",
        ":",
        "=",
        " ",
        "\t",
        "0",
        "1",
        "7",
        "-",
        "+",
        "0x",
        "0b",
        "ff",
        "_",
        "e",
        "E",
        ".",
        "5",
        "nan",
        "NaN",
        "inf",
        "-inf",
        "1e309",
        "1e-50",
        "x",
        "y",
        "z",
        "q",
        "seq",
        "pos",
        "v",
        "[1]",
        "[9]",
        ".x",
        "é",
        "∞",
        "\u{0}",
        "4294967296",
        "340282366920938463463374607431768211456",
        "-2147483649",
        "2147483647",
    ];

    /// Text for the fuzz: one time in four a good value of `ty` (random bytes, printed) with a
    /// token or two inserted; otherwise a soup of tokens.
    fn fuzz_text(ty: &Type, good: bool, next: &mut impl FnMut() -> u64) -> String {
        let pick = |n: u64| FUZZ_TOKENS[usize::try_from(n).unwrap() % FUZZ_TOKENS.len()];
        let mut text = String::new();
        if good {
            let bytes: Vec<u8> = (0..ty.size()).map(|_| next().to_le_bytes()[0]).collect();
            text = decode_value(ty, &bytes).to_string();
            for _ in 0..(next() % 3) {
                let mut at = usize::try_from(next()).unwrap() % (text.len() + 1);
                while !text.is_char_boundary(at) {
                    at -= 1;
                }
                text.insert_str(at, pick(next()));
            }
        } else {
            for _ in 0..(next() % 12) {
                text.push_str(pick(next()));
            }
        }
        text
    }

    /// Random text given as values and paths never panics. Every refusal names the field (or
    /// path) it was about, and every value accepted round-trips: its printed form parses back
    /// to the same value, so what `get` prints, `set` accepts.
    #[test]
    fn value_text_and_path_fuzz() {
        let schema = T.to_schema();
        let whole = Type::Struct(Box::new(schema.clone()));
        let mut targets: Vec<(&str, &Type)> = ["seq", "pos", "pos[2]", "v", "v.z", "n", "m"]
            .iter()
            .map(|p| (*p, schema.resolve(p).unwrap().1))
            .collect();
        targets.push(("t", &whole));
        let mut next = crate::xorshift(0x9e37_79b9_7f4a_7c15);
        let bytes_of = |ty: &Type, v: &Value| {
            let mut b = vec![0u8; ty.size()];
            encode_value(ty, v, "v", &mut b).map(|()| b)
        };
        let (mut accepted, mut refused, mut resolved) = (0, 0, 0);
        for i in 0..60_000u32 {
            let (what, ty) = targets[usize::try_from(next()).unwrap() % targets.len()];
            let text = fuzz_text(ty, i % 4 == 0, &mut next);
            match parse_value(ty, &text, what) {
                Ok(v) => {
                    accepted += 1;
                    let b = bytes_of(ty, &v).unwrap_or_else(|e| panic!("{text:?}: {e}"));
                    let again = parse_value(ty, &v.to_string(), what)
                        .unwrap_or_else(|e| panic!("{text:?} printed as {v}: {e}"));
                    // Compared as printed: a NaN's sign and payload are not printed.
                    let shown = |b: &[u8]| decode_value(ty, b).to_string();
                    let b2 = bytes_of(ty, &again).unwrap();
                    assert_eq!(shown(&b2), shown(&b), "{text:?} printed as {v}");
                }
                Err(e) => {
                    refused += 1;
                    assert!(e.contains(&format!("`{what}")), "{text:?}: {e}");
                }
            }
            // The same text as a path: what resolves lies inside the struct.
            match schema.resolve(&text) {
                Ok((off, t)) => {
                    resolved += 1;
                    assert!(off + t.size() <= schema.size, "{text:?}");
                }
                Err(e) => assert!(!e.is_empty()),
            }
        }
        assert!(
            accepted > 5_000 && refused > 30_000 && resolved > 100,
            "{accepted} accepted, {refused} refused, {resolved} resolved"
        );
    }
}
