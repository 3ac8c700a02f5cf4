#![forbid(unsafe_code)]
#![deny(warnings)]

use smobject::shared_memory;

#[shared_memory(path = "/tmp/telemetry", id = 'a')]
#[repr(C)]
pub struct Telemetry {
    pub seq: u64,
}

fn main() {
    let _create: fn() -> smobject::Result<smobject::Shared<Telemetry>> = Telemetry::create;
    let _access: fn() -> smobject::Result<smobject::Shared<Telemetry>> = Telemetry::access;
    let _either: fn() -> smobject::Result<smobject::Shared<Telemetry>> = Telemetry::open_or_create;
}
