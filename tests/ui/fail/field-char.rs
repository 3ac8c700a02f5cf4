use smobject::shared_memory;

#[shared_memory(path = "/tmp/telemetry", id = 'a')]
#[repr(C)]
pub struct Telemetry {
    pub seq: u64,
    pub grade: char,
    pub _pad: u32,
}

fn main() {}
