use smobject::shared_memory;

#[shared_memory(path = "/tmp/counter", id = 'C')]
#[repr(C)]
pub struct Counter(pub u64, pub [u32; 2]);

fn main() {
    let _create: fn() -> smobject::Result<smobject::Shared<Counter>> = Counter::create;
    assert_eq!(<Counter as smobject::SharedStruct>::TYPE_NAME, "Counter");
}
