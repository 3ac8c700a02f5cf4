use smobject::shared_memory;

#[shared_memory(path = "/tmp/telemetry", id = 'a')]
#[repr(C)]
pub struct Telemetry<'a> {
    pub seq: u64,
    pub _borrow: core::marker::PhantomData<&'a u64>,
}

fn main() {}
