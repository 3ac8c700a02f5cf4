use smobject::shared_memory;

use smobject::__private::zerocopy;
use smobject::schema::{Describe, Scalar, TypeDef};

/// A plain struct made shareable by deriving zerocopy's traits through smobject's re-export,
/// and described by `smobject::Describe`.
#[repr(C)]
#[derive(Clone, Copy, zerocopy::FromBytes, zerocopy::IntoBytes, smobject::Describe)]
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
    pub r#type: u32,
    pub _pad: u32,
}

/// The schema is a constant.
const WAYPOINTS: &str = <Robot as smobject::SharedStruct>::SCHEMA.fields[1].name;

fn main() {
    let _create: fn() -> smobject::Result<smobject::Shared<Robot>> = Robot::create;
    assert_ne!(
        <Robot as smobject::SharedStruct>::FINGERPRINT,
        <Pose as smobject::SharedStruct>::FINGERPRINT
    );

    let robot = <Robot as smobject::SharedStruct>::SCHEMA;
    assert_eq!(WAYPOINTS, "waypoints");
    assert_eq!(robot.name, <Robot as smobject::SharedStruct>::TYPE_NAME);
    assert_eq!((robot.size, robot.align), (152, 8));
    let names: Vec<_> = robot.fields.iter().map(|f| f.name).collect();
    assert_eq!(names, ["pose", "waypoints", "type", "_pad"]);
    let offsets: Vec<_> = robot.fields.iter().map(|f| f.offset).collect();
    assert_eq!(offsets, [0, 48, 144, 148]);
    assert_eq!(
        <Robot as smobject::SharedStruct>::FINGERPRINT,
        robot.fingerprint()
    );

    // `pose` is the `#[shared_memory]` struct `Pose`, described the same way.
    let TypeDef::Struct(pose) = robot.fields[0].ty else {
        panic!("`pose` is a struct")
    };
    assert_eq!(
        pose.fingerprint(),
        <Pose as smobject::SharedStruct>::FINGERPRINT
    );
    assert_eq!(
        (pose.name, pose.fields[1].name, pose.fields[1].offset),
        ("Pose", "velocity", 24)
    );

    // `waypoints` is `[Vec3; 4]`, `Vec3` described by the derive.
    let TypeDef::Array(TypeDef::Struct(vec3), 4) = robot.fields[1].ty else {
        panic!("`waypoints` is an array of 4 structs")
    };
    assert_eq!((vec3.name, vec3.size, vec3.align), ("Vec3", 24, 8));
    assert_eq!(vec3.fields[2].name, "z");
    assert_eq!(vec3.fields[2].offset, 16);
    assert!(matches!(vec3.fields[2].ty, TypeDef::Scalar(Scalar::F64)));
    let TypeDef::Struct(same) = <Vec3 as Describe>::TYPE else {
        panic!("`Vec3` is a struct")
    };
    assert_eq!(same.fields.len(), 3);
    described::<Vec3>();
}

/// The trait is exported at the root too, beside the derive of the same name.
fn described<T: smobject::Describe>() {}
