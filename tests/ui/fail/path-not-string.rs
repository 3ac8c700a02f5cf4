use smobject::shared_memory;

const PATH: &str = "/tmp/telemetry";

#[shared_memory(path = PATH, id = 'a')]
#[repr(C)]
pub struct Telemetry {
    pub seq: u64,
}

fn main() {}
