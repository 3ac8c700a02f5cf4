#![no_implicit_prelude]

extern crate core;
extern crate smobject;
extern crate std;

#[derive(
    smobject::__private::zerocopy::FromBytes,
    smobject::__private::zerocopy::IntoBytes,
    smobject::Describe,
)]
#[zerocopy(crate = "smobject::__private::zerocopy")]
#[repr(C)]
pub struct Vec3 {
    pub x: f64,
    pub y: f64,
    pub z: f64,
}

#[derive(smobject::Describe)]
#[repr(C)]
pub struct Tuple(pub u32, pub [i16; 2]);

#[smobject::shared_memory(path = "/tmp/telemetry", id = 'a', mode = 0o640)]
#[repr(C)]
pub struct Telemetry {
    pub seq: u64,
    pub pos: [f64; 3],
    pub hits: core::sync::atomic::AtomicU32,
    pub _pad: u32,
    pub vel: Vec3,
    pub r#type: [Vec3; 2],
}

fn main() {
    let _create: fn() -> smobject::Result<smobject::Shared<Telemetry>> = Telemetry::create;
    let _schema: &'static smobject::schema::StructDef =
        <Telemetry as smobject::SharedStruct>::SCHEMA;
    let _tuple: smobject::schema::TypeDef = <Tuple as smobject::Describe>::TYPE;
}
