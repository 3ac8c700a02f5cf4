// The derive describes `#[repr(C)]` structs only: the default layout is unspecified.
#[derive(smobject::Describe)]
pub struct Vec3 {
    pub x: f64,
    pub y: f64,
    pub z: f64,
}

#[derive(smobject::Describe)]
#[repr(C, packed)]
pub struct Packed {
    pub a: u8,
    pub b: u32,
}

#[derive(smobject::Describe)]
#[repr(u8)]
pub enum Mode {
    Off,
    On,
}

fn main() {}
