use smobject::shared_memory;

#[shared_memory(path = "/tmp/telemetry", id = 'a')]
#[repr(C)]
pub union Word {
    pub int: u32,
    pub float: f32,
}

fn main() {}
