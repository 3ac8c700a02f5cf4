use smobject::shared_memory;

use smobject::__private::zerocopy;

/// A plain struct made shareable by deriving zerocopy's traits through smobject's re-export.
#[repr(C)]
#[derive(Clone, Copy, zerocopy::FromBytes, zerocopy::IntoBytes)]
#[zerocopy(crate = "smobject::__private::zerocopy")]
pub struct Vec3 {
    pub x: f64,
    pub y: f64,
    pub z: f64,
}

/// Another shared struct is a valid field too.
#[shared_memory(path = "/tmp/pose", id = 'p')]
#[repr(C)]
pub struct Pose {
    pub position: Vec3,
    pub velocity: Vec3,
}

#[shared_memory(path = "/tmp/robot", id = 'r')]
#[repr(C)]
pub struct Robot {
    pub pose: Pose,
    pub waypoints: [Vec3; 4],
}

fn main() {
    let _create: fn() -> smobject::Result<smobject::Shared<Robot>> = Robot::create;
    assert_ne!(
        <Robot as smobject::SharedStruct>::FINGERPRINT,
        <Pose as smobject::SharedStruct>::FINGERPRINT
    );
}
