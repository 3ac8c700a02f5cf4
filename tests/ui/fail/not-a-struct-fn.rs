use smobject::shared_memory;

#[shared_memory(path = "/tmp/telemetry", id = 'a')]
pub fn telemetry() {}

fn main() {}
