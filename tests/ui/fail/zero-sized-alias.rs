use smobject::shared_memory;

// Hidden behind an alias, the syntactic check cannot see it: the generated const assert can.
type Nothing = [u64; 0];

#[shared_memory(path = "/tmp/telemetry", id = 'a')]
#[repr(C)]
pub struct Telemetry {
    pub nothing: Nothing,
}

fn main() {}
