use smobject::shared_memory;

#[shared_memory(path = "/tmp/telemetry", id = 'a')]
#[repr(C)]
pub struct Telemetry {
    pub seq: u64,
    #[cfg(unix)]
    pub extra: u64,
}

fn main() {}
