#![forbid(unsafe_code)]
#![deny(warnings)]

use smobject::shared_memory;

use smobject::__private::zerocopy;

#[repr(C)]
#[derive(zerocopy::FromBytes, zerocopy::IntoBytes, smobject::Describe)]
#[zerocopy(crate = "smobject::__private::zerocopy")]
pub struct Vec3 {
    pub x: f64,
    pub y: f64,
    pub z: f64,
}

#[shared_memory(path = "/tmp/telemetry", id = 'a')]
#[repr(C)]
pub struct Telemetry {
    pub seq: u64,
    pub pos: Vec3,
}

fn main() {
    let _create: fn() -> smobject::Result<smobject::Shared<Telemetry>> = Telemetry::create;
    let _access: fn() -> smobject::Result<smobject::Shared<Telemetry>> = Telemetry::access;
    let _either: fn() -> smobject::Result<smobject::Shared<Telemetry>> = Telemetry::open_or_create;
}
