use smobject::shared_memory;

#[shared_memory(path = "/tmp/telemetry", id = 'a')]
#[repr(C)]
pub enum State {
    Idle,
    Running,
}

fn main() {}
