use smobject::shared_memory;

use std::sync::atomic::{AtomicI32, AtomicU32, AtomicU64, AtomicU8};

#[shared_memory(path = "/tmp/stats", id = 's')]
#[repr(C)]
pub struct Stats {
    pub hits: AtomicU64,
    pub misses: core::sync::atomic::AtomicU64,
    pub state: AtomicU32,
    pub delta: AtomicI32,
    pub flags: [AtomicU8; 8],
}

fn main() {
    let _create: fn() -> smobject::Result<smobject::Shared<Stats>> = Stats::create;
    assert_eq!(core::mem::size_of::<Stats>(), 32);
}
