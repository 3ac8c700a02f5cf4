use smobject::shared_memory;

use smobject::__private::zerocopy;
use smobject::schema::{Scalar, TypeDef};

#[shared_memory(path = "/tmp/counter", id = 'C')]
#[repr(C)]
pub struct Counter(pub u64, pub [u32; 2]);

/// A described tuple struct nested in a tuple struct.
#[repr(C)]
#[derive(zerocopy::FromBytes, zerocopy::IntoBytes, smobject::Describe)]
#[zerocopy(crate = "smobject::__private::zerocopy")]
pub struct Pair(pub u16, pub i16);

#[shared_memory(path = "/tmp/pairs", id = 'P')]
#[repr(C)]
pub struct Pairs(pub Pair, pub [Pair; 3]);

fn main() {
    let _create: fn() -> smobject::Result<smobject::Shared<Counter>> = Counter::create;
    assert_eq!(<Counter as smobject::SharedStruct>::TYPE_NAME, "Counter");

    let counter = <Counter as smobject::SharedStruct>::SCHEMA;
    assert_eq!(counter.name, "Counter");
    assert_eq!(counter.size, 16);
    assert_eq!(counter.fields.len(), 2);
    assert_eq!(
        (counter.fields[0].name, counter.fields[0].offset),
        ("_0", 0)
    );
    assert_eq!(
        (counter.fields[1].name, counter.fields[1].offset),
        ("_1", 8)
    );
    assert!(matches!(counter.fields[0].ty, TypeDef::Scalar(Scalar::U64)));
    assert!(matches!(
        counter.fields[1].ty,
        TypeDef::Array(TypeDef::Scalar(Scalar::U32), 2)
    ));

    let pairs = <Pairs as smobject::SharedStruct>::SCHEMA;
    let TypeDef::Array(TypeDef::Struct(pair), 3) = pairs.fields[1].ty else {
        panic!("`_1` is an array of 3 `Pair`s")
    };
    assert_eq!((pairs.fields[1].name, pairs.fields[1].offset), ("_1", 4));
    assert_eq!(pair.name, "Pair");
    assert_eq!((pair.fields[1].name, pair.fields[1].offset), ("_1", 2));
    assert!(matches!(pair.fields[1].ty, TypeDef::Scalar(Scalar::I16)));
}
