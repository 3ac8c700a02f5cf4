#![no_implicit_prelude]

extern crate core;
extern crate smobject;
extern crate std;

#[smobject::shared_memory(path = "/tmp/telemetry", id = 'a', mode = 0o640)]
#[repr(C)]
pub struct Telemetry {
    pub seq: u64,
    pub pos: [f64; 3],
    pub hits: core::sync::atomic::AtomicU32,
    pub _pad: u32,
}

fn main() {
    let _create: fn() -> smobject::Result<smobject::Shared<Telemetry>> = Telemetry::create;
}
