use smobject::shared_memory;

/// A cache line of its own.
#[shared_memory(path = "/tmp/line", id = 'l')]
#[repr(C, align(64))]
pub struct Line {
    pub words: [u64; 8],
}

/// The page size is the largest alignment accepted, also as a separate `repr`.
#[shared_memory(path = "/tmp/page", id = 'p')]
#[repr(align(4096))]
#[repr(C)]
pub struct Page {
    pub bytes: [u8; 4096],
}

/// A field of an aligned type keeps its alignment.
#[shared_memory(path = "/tmp/lines", id = 'L')]
#[repr(C)]
pub struct Lines {
    pub first: Line,
    pub second: Line,
}

fn main() {
    let _create: fn() -> smobject::Result<smobject::Shared<Page>> = Page::create;
    assert_eq!(core::mem::align_of::<Line>(), 64);
    assert_eq!(core::mem::align_of::<Page>(), 4096);
    assert_eq!(core::mem::align_of::<Lines>(), 64);
}
