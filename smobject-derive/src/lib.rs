//! The `#[shared_memory]` attribute of `smobject`. Use it through `smobject::shared_memory`.
//!
//! The pipeline: `args` parses the attribute's arguments, `check` validates the struct
//! syntactically, `expand` generates the code (or re-emits the item with every error).
#![forbid(unsafe_code)]

mod args;
mod check;
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
///   struct (both are supported; tuple fields are described by their index);
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
/// published), and const asserts check that the struct is not zero-sized, that its size is
/// the sum of its fields' sizes (no padding; add an explicit `_pad` field where the compiler
/// would insert some) and that it is aligned to at most 4096 bytes (a field type with a larger
/// `align(N)` is refused there). Atomics (`AtomicU32`, `core::sync::atomic::AtomicU64`, ...) and nested
/// structs that implement both zerocopy traits (for example another `#[shared_memory]`
/// struct) are fine as fields.
///
/// On any error the struct is emitted unchanged next to the errors, so code that uses it does
/// not cascade into further errors.
///
/// # What is generated
///
/// The struct itself, unchanged, with `#[derive(FromBytes, IntoBytes)]` (zerocopy, through
/// `smobject`'s re-export) added after its own attributes, and:
///
/// - an implementation of `smobject::SharedStruct` carrying `PATH`, `ID`, `MODE`, `TYPE_NAME`
///   and a `FINGERPRINT` that hashes the struct's name, each field's name and type tokens in
///   order, its size and its alignment (so two builds share an object only if they agree on
///   its layout);
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
