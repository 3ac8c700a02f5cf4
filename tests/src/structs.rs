//! The shared structs the multi-process tests use, defined once for the helper and the tests.

// `Telemetry` is the struct, with its public `_pad` field.
#![allow(clippy::pub_underscore_fields)]

use smobject::shared_memory;

/// The torn-read invariant: every published value has all words equal.
#[shared_memory(path = "/tmp", id = 'W')]
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Words {
    /// All equal in every published value.
    pub words: [u64; 32],
}

/// 1 MiB, for the reader-progress case.
#[shared_memory(path = "/tmp", id = 'B')]
#[repr(C)]
pub struct Big {
    /// All equal in every published value.
    pub words: [u64; 131_072],
}

/// A counter incremented by several processes.
#[shared_memory(path = "/tmp", id = 'C')]
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Counter {
    /// Incremented by every write.
    pub n: u64,
    /// Unused.
    pub other: u64,
}

/// The README's struct.
#[shared_memory(path = "/tmp", id = 'a')]
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Telemetry {
    /// Sequence number.
    pub seq: u64,
    /// Position.
    pub pos: [f64; 3],
    /// Status code.
    pub status: u32,
    /// Explicit padding.
    pub _pad: u32,
}

/// Another build of `Telemetry` with a changed field: must not attach to a `Telemetry`.
pub mod v2 {
    use smobject::shared_memory;

    /// `Telemetry` with `status` widened to `u64` (and the padding gone).
    #[shared_memory(path = "/tmp", id = 'a')]
    #[repr(C)]
    #[derive(Clone, Copy, Debug, Default, PartialEq)]
    pub struct Telemetry {
        /// Sequence number.
        pub seq: u64,
        /// Position.
        pub pos: [f64; 3],
        /// Status code, wider.
        pub status: u64,
    }
}
