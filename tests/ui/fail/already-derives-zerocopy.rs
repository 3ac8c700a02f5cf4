use smobject::shared_memory;

#[shared_memory(path = "/tmp/telemetry", id = 'a')]
#[repr(C)]
#[derive(Clone, Copy, smobject::__private::zerocopy::FromBytes)]
#[zerocopy(crate = "smobject::__private::zerocopy")]
pub struct Telemetry {
    pub seq: u64,
}

fn main() {}
