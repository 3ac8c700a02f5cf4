use smobject::shared_memory;

#[shared_memory(path = "/tmp/frame", id = 'f')]
#[repr(C)]
pub struct Frame {
    pub len: u32,
    pub _pad: u32,
    pub bytes: [u8; 256],
    pub matrix: [[f32; 4]; 4],
    pub empty: [u64; 0],
    pub ids: [i16; 4],
}

fn main() {
    let _access: fn() -> smobject::Result<smobject::Shared<Frame>> = Frame::access;
}
