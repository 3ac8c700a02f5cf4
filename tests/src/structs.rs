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

/// A position: a struct-typed field for the structs that nest one (the Python peer's `Robot`,
/// the `DynObject` tests' `Route`).
#[repr(C)]
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    smobject::__private::zerocopy::FromBytes,
    smobject::__private::zerocopy::IntoBytes,
    smobject::Describe,
)]
#[zerocopy(crate = "smobject::__private::zerocopy")]
pub struct Vec3 {
    /// x
    pub x: f64,
    /// y
    pub y: f64,
    /// z
    pub z: f64,
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

/// Two builds of one struct for the evolution tests: `v2` appends fields to `v1`'s (the
/// append-only rule), and `changed`/`reordered` break it. Same type name, same key.
pub mod evo {
    /// The older build.
    pub mod v1 {
        use smobject::shared_memory;

        /// Two fields.
        #[shared_memory(path = "/tmp", id = 'e')]
        #[repr(C)]
        #[derive(Clone, Copy, Debug, Default, PartialEq)]
        pub struct Sensor {
            /// Sequence number.
            pub seq: u64,
            /// Position.
            pub pos: [f64; 3],
        }

        /// Ends inside an 8-byte word of the newer build: its prefix reads and writes part of
        /// a granule.
        #[shared_memory(path = "/tmp", id = 't')]
        #[repr(C)]
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        pub struct Tiny {
            /// The only field.
            pub a: u32,
        }
    }

    /// The newer build: `v1`'s fields, then three more.
    pub mod v2 {
        use smobject::shared_memory;

        /// `v1::Sensor` plus `status`, `mode`, `temp`.
        #[shared_memory(path = "/tmp", id = 'e')]
        #[repr(C)]
        #[derive(Clone, Copy, Debug, Default, PartialEq)]
        pub struct Sensor {
            /// Sequence number.
            pub seq: u64,
            /// Position.
            pub pos: [f64; 3],
            /// Status code.
            pub status: u32,
            /// Mode.
            pub mode: u32,
            /// Temperature.
            pub temp: f64,
        }

        /// `v1::Tiny` plus `b`, `c`, `d`.
        #[shared_memory(path = "/tmp", id = 't')]
        #[repr(C)]
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        pub struct Tiny {
            /// As in v1.
            pub a: u32,
            /// Shares `a`'s 8-byte word.
            pub b: u32,
            /// Appended.
            pub c: u16,
            /// Appended.
            pub d: u16,
        }
    }

    /// `pos` changed type: refused, naming `pos`.
    pub mod changed {
        use smobject::shared_memory;

        /// `pos` as six `f32`s.
        #[shared_memory(path = "/tmp", id = 'e')]
        #[repr(C)]
        #[derive(Clone, Copy, Debug, Default, PartialEq)]
        pub struct Sensor {
            /// Sequence number.
            pub seq: u64,
            /// Position, narrower and longer.
            pub pos: [f32; 6],
        }
    }

    /// `seq` and `pos` swapped: refused, naming the first field.
    pub mod reordered {
        use smobject::shared_memory;

        /// `pos` first.
        #[shared_memory(path = "/tmp", id = 'e')]
        #[repr(C)]
        #[derive(Clone, Copy, Debug, Default, PartialEq)]
        pub struct Sensor {
            /// Position.
            pub pos: [f64; 3],
            /// Sequence number.
            pub seq: u64,
        }
    }
}
