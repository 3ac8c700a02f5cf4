use smobject::shared_memory;

#[shared_memory(path = "/tmp/telemetry", id = 97)]
#[repr(C)]
pub struct Telemetry {
    pub seq: u64,
}

fn main() {}
