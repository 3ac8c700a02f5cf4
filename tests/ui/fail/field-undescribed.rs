use smobject::shared_memory;

use smobject::__private::zerocopy;

// Byte-safe (zerocopy's derives) but not described: the schema cannot list its fields.
#[repr(C)]
#[derive(zerocopy::FromBytes, zerocopy::IntoBytes)]
#[zerocopy(crate = "smobject::__private::zerocopy")]
pub struct Vec3 {
    pub x: f64,
    pub y: f64,
    pub z: f64,
}

#[shared_memory(path = "/tmp/pose", id = 'p')]
#[repr(C)]
pub struct Pose {
    pub seq: u64,
    pub position: Vec3,
}

// Also inside an array.
#[shared_memory(path = "/tmp/robot", id = 'r')]
#[repr(C)]
pub struct Robot {
    pub seq: u64,
    pub waypoints: [Vec3; 4],
}

fn main() {}
