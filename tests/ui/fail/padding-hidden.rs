// Padding the tokens cannot show (a nested struct's alignment): caught at the type level.
use smobject::shared_memory;

#[shared_memory(path = "/tmp/inner", id = 'i')]
#[repr(C)]
pub struct Inner {
    pub a: u64,
}

#[shared_memory(path = "/tmp/telemetry", id = 'a')]
#[repr(C)]
pub struct Telemetry {
    pub status: u32,
    pub inner: Inner,
}

fn main() {}
