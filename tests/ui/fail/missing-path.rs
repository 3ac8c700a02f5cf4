use smobject::shared_memory;

#[shared_memory(id = 'a')]
#[repr(C)]
pub struct Telemetry {
    pub seq: u64,
}

fn main() {}
