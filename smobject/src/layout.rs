//! What a shared struct must tell the runtime about itself: [`SharedStruct`].

use crate::__private::Sealed;

/// A struct that may live in a smobject segment.
///
/// Implemented only by [`#[shared_memory]`](crate::shared_memory), which checks the struct's
/// layout at compile time (`#[repr(C)]`, no padding, every field valid for every byte pattern)
/// and fills in the key, the mode and the layout fingerprint. The trait is sealed: implementing
/// it by hand is not supported.
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
    /// The struct's name, stored in the header and shown in errors and by the CLI.
    const TYPE_NAME: &'static str;
    /// A hash of the struct's name, its fields' names and types in order, its size and
    /// alignment and the runtime's format version. Two builds share an object only when their
    /// fingerprints agree.
    const FINGERPRINT: u64;
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

/// The layout fingerprint of a struct described by `desc` (its name and its fields' names and
/// type tokens, as the macro writes them) with the given size and alignment. Never 0: 0 marks
/// an untyped object in the header.
#[must_use]
pub const fn fingerprint(desc: &str, size: usize, align: usize) -> u64 {
    let mut h = fnv1a(FNV_OFFSET, desc.as_bytes());
    h = fnv1a(h, &(size as u64).to_le_bytes());
    h = fnv1a(h, &(align as u64).to_le_bytes());
    h = fnv1a(h, &crate::header::FORMAT_VERSION.to_le_bytes());
    if h == 0 {
        1
    } else {
        h
    }
}

#[cfg(test)]
mod tests {
    use super::fingerprint;

    #[test]
    fn fingerprint_depends_on_every_input() {
        let base = fingerprint("T{a:u32;}", 4, 4);
        assert_ne!(base, fingerprint("T{b:u32;}", 4, 4));
        assert_ne!(base, fingerprint("T{a:u32;}", 8, 4));
        assert_ne!(base, fingerprint("T{a:u32;}", 4, 8));
        assert_eq!(base, fingerprint("T{a:u32;}", 4, 4));
        assert_ne!(base, 0);
    }
}
