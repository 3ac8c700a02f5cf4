use smobject::shared_memory;

#[shared_memory(path = "/tmp/telemetry", id = 'a')]
#[repr(C)]
pub struct Telemetry {
    pub status: u8,
    pub seq: u64,
    pub flags: [u16; 3],
    pub more: u16,
}

fn main() {}
