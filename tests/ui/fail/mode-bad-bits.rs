use smobject::shared_memory;

#[shared_memory(path = "/tmp/telemetry", id = 'a', mode = 0o777)]
#[repr(C)]
pub struct Telemetry {
    pub seq: u64,
}

fn main() {}
