// A schema describes one concrete layout: no generic parameters.
#[derive(smobject::Describe)]
#[repr(C)]
pub struct Vec3<T> {
    pub x: T,
    pub y: T,
    pub z: T,
}

#[derive(smobject::Describe)]
#[repr(C)]
pub struct Buffer<const N: usize> {
    pub bytes: [u8; N],
}

fn main() {}
