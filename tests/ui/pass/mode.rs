use smobject::shared_memory;

#[shared_memory(path = "/tmp/telemetry", id = 'z', mode = 0o660)]
#[repr(C)]
pub struct Telemetry {
    pub seq: u64,
}

#[shared_memory(path = "/tmp/telemetry", id = 'A', mode = 0o644)]
#[repr(C)]
pub struct Other {
    pub seq: u64,
}

fn main() {
    assert_eq!(<Telemetry as smobject::SharedStruct>::MODE, 0o660);
    assert_eq!(<Telemetry as smobject::SharedStruct>::ID, b'z');
    assert_eq!(<Other as smobject::SharedStruct>::MODE, 0o644);
    assert_eq!(<Other as smobject::SharedStruct>::ID, b'A');
}
