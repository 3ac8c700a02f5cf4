//! The `#[shared_memory]` attribute and `#[derive(Describe)]` of `smobject`. Use them through
//! `smobject::shared_memory` and `smobject::Describe`.
//!
//! The pipeline: `args` parses the attribute's arguments, `check` validates the struct
//! syntactically, `expand` generates the code (or re-emits the item with every error), with the
//! struct's schema from `describe`, which also implements the derive.
#![forbid(unsafe_code)]

mod args;
mod check;
mod describe;
mod expand;

use proc_macro::TokenStream;

/// Shares a plain `#[repr(C)]` struct between processes through System V shared memory.
///
/// ```ignore
/// use smobject::shared_memory;
///
/// #[shared_memory(path = "/tmp/telemetry", id = 'a')]
/// #[repr(C)]
/// #[derive(Clone, Copy, Debug, Default, PartialEq)]
/// pub struct Telemetry {
///     pub seq: u64,
///     pub pos: [f64; 3],
///     pub status: u32,
///     pub _pad: u32,
/// }
///
/// # fn main() -> smobject::Result<()> {
/// let producer: smobject::Shared<Telemetry> = Telemetry::create()?;
/// let consumer = Telemetry::access()?;
/// let either = Telemetry::open_or_create()?;
/// # Ok(())
/// # }
/// ```
///
/// # Arguments
///
/// - `path = "/absolute/file"` (required): the key file given to `ftok(3)`. It must be a string
///   literal holding an absolute path (a relative path would name a different file, and so a
///   different object, in each working directory) without NUL bytes.
/// - `id = 'a'` (required): the project id given to `ftok(3)`, a char literal in `'A'..='z'`.
///   The object's counter segment uses the key `ftok(path, id - 58)` (`7..=64`), which cannot
///   collide with another object's id only while every id stays in that range.
/// - `mode = 0o660` (optional, default `0o600`): the permission bits the segments are created
///   with, an integer literal with no bits outside `0o666`.
///
/// Unknown and duplicate arguments are rejected.
///
/// # What is checked
///
/// The layout is checked twice. First syntactically, with a message that says what is wrong
/// and how to fix it, every error reported at once, each on the offending token:
///
/// - the item is a struct (not an enum, a union or a function) with named fields or a tuple
///   struct (both are supported; a tuple struct's fields are named `_0`, `_1`, ... in its
///   schema);
/// - it has no lifetime, type or const parameter and no `where` clause;
/// - it has `#[repr(C)]`: the default `repr(Rust)` layout is unspecified and may differ
///   between builds, so two processes could disagree on field offsets;
/// - it is not `packed` (`repr(packed)`, `repr(C, packed(N))`): unaligned fields make atomics
///   and references to fields unsound. `align(N)` is allowed up to `align(4096)`, the page
///   size: a segment is only guaranteed to be mapped at a page boundary;
/// - it is not obviously zero-sized (a unit struct, no fields, only `[T; 0]`, `()` or
///   `PhantomData` fields);
/// - no field (also inside an array, `[bool; 4]`) is a reference or a raw pointer, a function
///   pointer or a trait object (an address is meaningless in another process), `Box`, `Vec`,
///   `String`, `Rc`, `Arc` or another heap-owning type (same reason), `bool`, `char`,
///   `AtomicBool`, `Option<T>` or `NonZero*` (not valid for every byte pattern: use `u8`,
///   `u32`, `AtomicU8`, a flag field, the plain integer), a tuple (`repr(Rust)` layout) or a
///   slice. These checks see names as written: a user type named `Vec` is rejected too;
/// - no field is behind `#[cfg]` or `#[cfg_attr]` (builds with different `cfg`s would disagree
///   on the layout of the same object);
/// - the struct does not already derive zerocopy's `FromBytes`/`IntoBytes`, which the
///   attribute adds.
///
/// Then at the type level, so that nothing hidden behind a type alias or a macro slips
/// through: the struct derives zerocopy's `FromBytes` (every field is valid for any bytes
/// another process writes) and `IntoBytes` (no padding, so no uninitialised byte is ever
/// published), every field's type must implement `smobject::schema::Describe` (reported at the
/// field), and const asserts check that the struct is not zero-sized, that its size is
/// the sum of its fields' sizes (no padding; add an explicit `_pad` field where the compiler
/// would insert some) and that it is aligned to at most 4096 bytes (a field type with a larger
/// `align(N)` is refused there).
///
/// Numbers (`u8` to `u128`, `i8` to `i128`, `usize`, `isize`, `f32`, `f64`), atomics
/// (`AtomicU32`, `core::sync::atomic::AtomicU64`, ...), arrays of them and nested structs are
/// fine as fields. A nested struct must implement both zerocopy traits and `Describe`: another
/// `#[shared_memory]` struct does, and a plain `#[repr(C)]` struct does with
/// `#[derive(smobject::Describe)]` next to zerocopy's derives:
///
/// ```ignore
/// use smobject::__private::zerocopy; // or your own `zerocopy` dependency
///
/// #[repr(C)]
/// #[derive(Clone, Copy, zerocopy::FromBytes, zerocopy::IntoBytes, smobject::Describe)]
/// #[zerocopy(crate = "smobject::__private::zerocopy")]
/// pub struct Vec3 {
///     pub x: f64,
///     pub y: f64,
///     pub z: f64,
/// }
///
/// #[smobject::shared_memory(path = "/tmp/robot", id = 'r')]
/// #[repr(C)]
/// pub struct Robot {
///     pub seq: u64,
///     pub waypoints: [Vec3; 4],
/// }
///
/// let schema = <Robot as smobject::SharedStruct>::SCHEMA;
/// assert_eq!(schema.fields[1].name, "waypoints");
/// ```
///
/// On any error the struct is emitted unchanged next to the errors, so code that uses it does
/// not cascade into further errors.
///
/// # What is generated
///
/// The struct itself, unchanged, with `#[derive(FromBytes, IntoBytes)]` (zerocopy, through
/// `smobject`'s re-export) added after its own attributes, and:
///
/// - its schema, as `#[derive(smobject::Describe)]` generates it: an implementation of
///   `smobject::schema::Describe` whose `TYPE` is a `TypeDef::Struct` holding a `StructDef` with
///   the struct's name, size and alignment and, for every field in order, its name (`_0`, `_1`,
///   ... for a tuple struct; `r#type` is `type`), its `offset_of!` and its type's
///   `Describe::TYPE`. So a `#[shared_memory]` struct can itself be a field of another;
/// - an implementation of `smobject::SharedStruct` carrying `PATH`, `ID`, `MODE`, `TYPE_NAME`,
///   the `SCHEMA` above (stored in every object the struct creates, and checked by the prefix
///   rule on attach) and `C_FIELDS`; its `FINGERPRINT` is computed from `SCHEMA` (so two builds
///   share an object only if they agree on its layout);
/// - three associated functions with the struct's visibility:
///   - `fn create() -> smobject::Result<smobject::Shared<Self>>`, which calls
///     `smobject::Shared::create_at(PATH, ID)`;
///   - `fn access() -> smobject::Result<smobject::Shared<Self>>`, which calls
///     `smobject::Shared::access_at(PATH, ID)`;
///   - `fn open_or_create() -> smobject::Result<smobject::Shared<Self>>`, which calls
///     `smobject::Shared::open_or_create_at(PATH, ID)`.
///
///   An inherent `create`, `access` or `open_or_create` of your own would conflict with them.
///
/// The generated code uses absolute paths only, so it compiles under `#![no_implicit_prelude]`
/// and needs no import besides the attribute, and it contains no `unsafe` of its own (the
/// zerocopy derives' impls are checked by zerocopy), so `#![forbid(unsafe_code)]` crates can
/// use it.
#[proc_macro_attribute]
pub fn shared_memory(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::shared_memory(args.into(), &item.into()).into()
}

/// Describes a plain `#[repr(C)]` struct so that it can be a field of a `#[shared_memory]`
/// struct: implements `smobject::schema::Describe`, whose `TYPE` lists the struct's name, size,
/// alignment and, for every field in order, its name, offset and type. The schema of a
/// `#[shared_memory]` struct, which includes its nested structs', is stored in every object it
/// creates and checked on attach.
///
/// ```ignore
/// use smobject::__private::zerocopy; // or your own `zerocopy` dependency
///
/// #[repr(C)]
/// #[derive(Clone, Copy, zerocopy::FromBytes, zerocopy::IntoBytes, smobject::Describe)]
/// #[zerocopy(crate = "smobject::__private::zerocopy")]
/// pub struct Vec3 {
///     pub x: f64,
///     pub y: f64,
///     pub z: f64,
/// }
///
/// #[smobject::shared_memory(path = "/tmp/pose", id = 'p')]
/// #[repr(C)]
/// pub struct Pose {
///     pub position: Vec3,
///     pub velocity: Vec3,
/// }
///
/// use smobject::schema::{Describe, TypeDef};
/// let TypeDef::Struct(vec3) = <Vec3 as Describe>::TYPE else { unreachable!() };
/// assert_eq!((vec3.name, vec3.size, vec3.fields[2].name, vec3.fields[2].offset), ("Vec3", 24, "z", 16));
/// ```
///
/// Requirements, each reported on the offending token with what to do:
///
/// - the item is a struct (named fields or a tuple struct, whose fields are named `_0`, `_1`,
///   ...), not an enum or a union;
/// - it has `#[repr(C)]` and is not `packed`: the default `repr(Rust)` layout is unspecified
///   and may differ between builds, so two processes could disagree on field offsets;
/// - it has no lifetime, type or const parameter and no `where` clause: a schema describes one
///   concrete layout (declare one struct per instantiation);
/// - no field is of a type rejected by `#[shared_memory]` as written (references, pointers,
///   `bool`, `char`, heap types, ...), and every field's type implements `Describe` itself
///   (numbers, atomics, arrays, other described structs).
///
/// The derive does not make the struct byte-safe: derive zerocopy's `FromBytes` and
/// `IntoBytes` yourself, as above (`#[shared_memory]` requires both of its fields' types, and
/// `IntoBytes` rejects padding). The generated code uses absolute paths only and no `unsafe`,
/// so it compiles under `#![no_implicit_prelude]` and `#![forbid(unsafe_code)]`.
#[proc_macro_derive(Describe)]
pub fn derive_describe(item: TokenStream) -> TokenStream {
    describe::derive(item.into()).into()
}
