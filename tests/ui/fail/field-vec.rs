use smobject::shared_memory;

#[shared_memory(path = "/tmp/telemetry", id = 'a')]
#[repr(C)]
pub struct Telemetry {
    pub seq: u64,
    pub samples: Vec<f64>,
}

fn main() {}
