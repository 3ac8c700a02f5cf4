//! What a shared struct must tell the runtime about itself: [`SharedStruct`].

use crate::__private::Sealed;

/// A struct that may live in a smobject segment.
///
/// Implemented only by [`#[shared_memory]`](crate::shared_memory), which checks the struct's
/// layout at compile time (`#[repr(C)]`, no padding, every field valid for every byte pattern)
/// and fills in the key, the mode and the struct's schema (from which the layout fingerprint
/// is computed). The trait is sealed: implementing it by hand is not supported.
///
/// The bounds are the type-level half of the layout check: [`zerocopy::FromBytes`] (any bytes
/// another process wrote are a valid `Self`) and [`zerocopy::IntoBytes`] (no padding, so no
/// uninitialised byte is ever published).
pub trait SharedStruct:
    Sealed + zerocopy::FromBytes + zerocopy::IntoBytes + Send + Sized + 'static
{
    /// The key file given as `path = "..."`.
    const PATH: &'static str;
    /// The project id given as `id = 'x'`, in `b'A'..=b'z'`.
    const ID: u8;
    /// The permission bits the segments are created with (`mode = 0o...`, default `0o600`).
    const MODE: u32;
    /// The struct's name, stored in the header and shown in errors and by the CLI. Equal to
    /// `SCHEMA.name`.
    const TYPE_NAME: &'static str;
    /// The struct's schema: its name, size and alignment and, for every field in order, its
    /// name, offset and type (nested structs described the same way). Stored in every object
    /// the struct creates, and checked by the prefix rule
    /// ([`Schema::check_prefix`](crate::schema::Schema::check_prefix)) on attach.
    const SCHEMA: &'static crate::schema::StructDef;
    /// The layout fingerprint: FNV-1a of the encoded schema ([`Self::SCHEMA`]) and the format
    /// version ([`StructDef::fingerprint`](crate::schema::StructDef::fingerprint)). Equal
    /// fingerprints mean equal schemas. Never 0.
    const FINGERPRINT: u64 = Self::SCHEMA.fingerprint();
    /// The struct's fields as C declares them (name, C type, array dimensions, offset, size),
    /// in order: what [`c_header`](crate::c_header()) writes a C header from.
    const C_FIELDS: &'static [crate::__private::CField];
}

/// The FNV-1a offset basis: where a fresh hash starts.
pub(crate) const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// 64-bit FNV-1a over `bytes`, continuing from `hash`: the one hash of the crate (layout and
/// schema fingerprints, key-file path hashes).
pub(crate) const fn fnv1a(mut hash: u64, bytes: &[u8]) -> u64 {
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        i += 1;
    }
    hash
}
