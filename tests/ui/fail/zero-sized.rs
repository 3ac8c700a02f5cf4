use smobject::shared_memory;

#[shared_memory(path = "/tmp/telemetry", id = 'a')]
#[repr(C)]
pub struct Telemetry {}

fn main() {}
