//! The benchmarked structs: 64 B, 4 KiB, 1 MiB and 64 MiB of `u64` words. Their attribute keys
//! are never used: the benchmarks open them under their own key files with `*_at`.

use smobject::shared_memory;

/// 64 bytes: one cache line.
#[shared_memory(path = "/tmp", id = 'b')]
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Small {
    /// All equal in every published value (the torn-read check).
    pub words: [u64; 8],
}

/// 4 KiB: one page.
#[shared_memory(path = "/tmp", id = 'b')]
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Page {
    /// All equal in every published value.
    pub words: [u64; 512],
}

/// 1 MiB: read with `read_into` (never on the stack).
#[shared_memory(path = "/tmp", id = 'b')]
#[repr(C)]
pub struct Big {
    /// All equal in every published value.
    pub words: [u64; 131_072],
}

/// 64 MiB: only created, attached and touched, never copied.
#[shared_memory(path = "/tmp", id = 'b')]
#[repr(C)]
pub struct Huge {
    /// Never read as a whole.
    pub words: [u64; 8_388_608],
}

/// A struct made of `u64` words, to write the same code for every size.
pub trait Words: smobject::SharedStruct {
    /// The words.
    fn words(&self) -> &[u64];
    /// The words, mutable.
    fn words_mut(&mut self) -> &mut [u64];
    /// A zeroed value on the heap (1 MiB and 64 MiB do not fit a thread's stack).
    fn boxed_zeroed() -> Box<Self>;
    /// A label for tables: `64 B`, `4 KiB`, `1 MiB`, `64 MiB`.
    const LABEL: &'static str;
}

macro_rules! words_impl {
    ($t:ty, $label:literal) => {
        impl Words for $t {
            fn words(&self) -> &[u64] {
                &self.words
            }
            fn words_mut(&mut self) -> &mut [u64] {
                &mut self.words
            }
            fn boxed_zeroed() -> Box<Self> {
                let layout = std::alloc::Layout::new::<Self>();
                // SAFETY: the layout is not zero-sized (the struct holds words).
                let p = unsafe { std::alloc::alloc_zeroed(layout) }.cast::<Self>();
                if p.is_null() {
                    std::alloc::handle_alloc_error(layout);
                }
                // SAFETY: `p` was allocated by the global allocator with `Self`'s layout, and
                // all-zero bytes are a valid `Self` (only `u64` words); the box owns it now.
                unsafe { Box::from_raw(p) }
            }
            const LABEL: &'static str = $label;
        }
    };
}
words_impl!(Small, "64 B");
words_impl!(Page, "4 KiB");
words_impl!(Big, "1 MiB");
words_impl!(Huge, "64 MiB");

/// Whether a snapshot is untorn: every word equal.
#[must_use]
pub fn untorn(words: &[u64]) -> bool {
    words.iter().all(|&w| w == words[0])
}
