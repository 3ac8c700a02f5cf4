use smobject::shared_memory;

#[shared_memory(path = "/tmp/telemetry", id = 'a')]
#[derive(Clone, Copy)]
pub struct Telemetry {
    pub seq: u64,
}

fn main() {}
