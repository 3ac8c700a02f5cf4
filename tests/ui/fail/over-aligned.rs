use smobject::shared_memory;

#[shared_memory(path = "/tmp/telemetry", id = 'a')]
#[repr(C, align(8192))]
pub struct Telemetry {
    pub bytes: [u8; 8192],
}

fn main() {}
