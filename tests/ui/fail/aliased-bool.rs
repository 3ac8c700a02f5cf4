use smobject::shared_memory;

// Hidden behind an alias, the syntactic check cannot see it: zerocopy's `FromBytes` bound can.
type Flag = bool;

#[shared_memory(path = "/tmp/telemetry", id = 'a')]
#[repr(C)]
pub struct Telemetry {
    pub seq: u64,
    pub ready: Flag,
    pub _pad: [u8; 7],
}

fn main() {}
