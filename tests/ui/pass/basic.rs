use smobject::shared_memory;

#[shared_memory(path = "/tmp/telemetry", id = 'a')]
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Telemetry {
    pub seq: u64,
    pub pos: [f64; 3],
    pub status: u32,
    pub _pad: u32,
}

fn main() {
    let _create: fn() -> smobject::Result<smobject::Shared<Telemetry>> = Telemetry::create;
    let _access: fn() -> smobject::Result<smobject::Shared<Telemetry>> = Telemetry::access;
    let _either: fn() -> smobject::Result<smobject::Shared<Telemetry>> = Telemetry::open_or_create;
    assert_eq!(<Telemetry as smobject::SharedStruct>::PATH, "/tmp/telemetry");
    assert_eq!(<Telemetry as smobject::SharedStruct>::ID, b'a');
    assert_eq!(<Telemetry as smobject::SharedStruct>::MODE, 0o600);
    assert_eq!(<Telemetry as smobject::SharedStruct>::TYPE_NAME, "Telemetry");
    assert_ne!(<Telemetry as smobject::SharedStruct>::FINGERPRINT, 0);
    // The user's own derives are kept.
    assert_eq!(Telemetry::default(), Telemetry::default().clone());
}
