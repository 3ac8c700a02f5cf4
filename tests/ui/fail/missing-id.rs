use smobject::shared_memory;

#[shared_memory(path = "/tmp/telemetry")]
#[repr(C)]
pub struct Telemetry {
    pub seq: u64,
}

fn main() {}
