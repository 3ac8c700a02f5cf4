//! `DynObject`: an object opened by the schema stored in it, with no Rust type: snapshots
//! decoded by field name, one locked write for several fields, nothing written on bad input.
#![allow(clippy::float_cmp)] // exact values written and read back, never computed

use std::process::Command;
use std::time::Duration;

use smobject::schema::Value;
use smobject::{DynObject, ErrorKind, Shared, SharedStruct};
use tests::structs::evo::v2;
use tests::structs::Vec3;
use tests::{Helper, KeyFile};

fn sensor() -> v2::Sensor {
    v2::Sensor {
        seq: 3,
        pos: [0.5, -1.0, 2.0],
        status: 4,
        mode: 1,
        temp: 21.5,
    }
}

#[test]
fn reads_a_snapshot_by_field_name() {
    let kf = KeyFile::new("dyn-read");
    kf.key(b'e');
    let typed = Shared::<v2::Sensor>::create_with_at(kf.path(), b'e', sensor()).unwrap();
    let o = DynObject::access_at(kf.path(), b'e').unwrap();
    assert_eq!(o.schema(), &v2::Sensor::SCHEMA.to_schema());
    assert_eq!(o.len(), std::mem::size_of::<v2::Sensor>());
    let snap = o.read();
    assert_eq!(snap.version(), typed.version());
    assert_eq!(
        snap.value().to_string(),
        "{seq: 3, pos: [0.5, -1.0, 2.0], status: 4, mode: 1, temp: 21.5}"
    );
    assert_eq!(
        snap.value().to_json(),
        r#"{"seq": 3, "pos": [0.5, -1.0, 2.0], "status": 4, "mode": 1, "temp": 21.5}"#
    );
    assert_eq!(snap.get("pos[2]").unwrap(), Value::Float(2.0));
    let e = snap.get("pressure").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidValue);
    assert!(e.to_string().contains("no field `pressure`"), "{e}");
    drop((o, typed));
    assert!(kf.is_clean(b'e'));
}

#[test]
fn several_fields_are_one_write_and_bad_input_writes_nothing() {
    let kf = KeyFile::new("dyn-write");
    kf.key(b'e');
    let typed = Shared::<v2::Sensor>::create_with_at(kf.path(), b'e', sensor()).unwrap();
    let o = DynObject::access_at(kf.path(), b'e').unwrap();
    let v0 = o.version();
    let v = o
        .set(&["seq=10", "pos[1]=2.5", "status=0xff", "temp=-3e2"])
        .unwrap();
    assert_eq!(v, v0 + 1, "one publish for all four");
    assert_eq!(
        typed.read(),
        v2::Sensor {
            seq: 10,
            pos: [0.5, 2.5, 2.0],
            status: 255,
            mode: 1,
            temp: -300.0
        }
    );
    for (bad, field) in [
        (&["seq=11", "status=-1"][..], "status"),
        (&["seq=11", "status=4294967296"][..], "status"),
        (&["mode=1.5"][..], "mode"),
        (&["pos=[1, 2]"][..], "pos"),
        (&["pos[3]=1"][..], "pos[3]"),
        (&["nope=1"][..], "nope"),
        (&["seq"][..], "seq"),
    ] {
        let e = o.set(bad).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidValue, "{bad:?}: {e}");
        assert!(e.to_string().contains(field), "{bad:?} names {field}: {e}");
    }
    assert_eq!(o.version(), v0 + 1, "nothing was written");
    assert_eq!(typed.read().seq, 10);
    // Raw bytes: a prefix replaced, the rest kept.
    o.write_bytes(&77u64.to_ne_bytes()).unwrap();
    assert_eq!(typed.read().seq, 77);
    assert_eq!(typed.read().temp, -300.0);
    assert!(o.write_bytes(&[0u8; 49]).is_err());
    drop((o, typed));
    assert!(kf.is_clean(b'e'));
}

#[test]
fn a_waiter_in_another_process_wakes_once_per_write() {
    let kf = KeyFile::new("dyn-wait");
    kf.key(b'e');
    let typed = Shared::<v2::Sensor>::create_with_at(kf.path(), b'e', sensor()).unwrap();
    let o = DynObject::access_at(kf.path(), b'e').unwrap();
    let seen = o.version();
    let mut old = Helper::spawn_with(
        std::process::Command::new(tests::helper_exe().with_file_name("smo-evolve")).args([
            "v1-wait",
            &kf.arg(),
            &seen.to_string(),
        ]),
    );
    assert_eq!(old.line(), "ready");
    o.set(&["seq=41", "pos=[1, 1, 1]"]).unwrap();
    assert_eq!(old.line(), format!("woke v{} 41", seen + 1));
    assert!(old.wait().success());
    // And a DynObject waits too.
    let e = o
        .wait_for_update(o.version(), Some(Duration::from_millis(20)))
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout);
    drop((o, typed));
    assert!(kf.is_clean(b'e'));
}

#[test]
fn creates_an_object_from_a_schema_that_the_struct_opens() {
    let kf = KeyFile::new("dyn-create");
    let key = kf.key(b'e');
    let o = DynObject::create_in(
        &key,
        v2::Sensor::SCHEMA.to_schema(),
        &smobject::Options::new(),
    )
    .unwrap();
    o.set(&["seq=5", "temp=1.25"]).unwrap();
    let typed = Shared::<v2::Sensor>::access_at(kf.path(), b'e').unwrap();
    assert_eq!(typed.read().temp, 1.25);
    assert_eq!(typed.raw().type_name(), "Sensor");
    // open_or_create with an older schema attaches by the prefix rule.
    let older = DynObject::open_or_create_in(
        &key,
        tests::structs::evo::v1::Sensor::SCHEMA.to_schema(),
        &smobject::Options::new(),
    )
    .unwrap();
    assert_eq!(
        older.schema().fields.len(),
        5,
        "the object's schema, not the opener's"
    );
    // An untyped object has no schema.
    let raw = smobject::RawObject::create(
        &kf.key(b'u'),
        smobject::Layout::untyped(16),
        &smobject::Options::new(),
    )
    .unwrap();
    let e = DynObject::access_at(kf.path(), b'u').unwrap_err();
    assert_eq!(e.kind(), ErrorKind::LayoutMismatch, "{e}");
    drop((o, typed, older, raw));
    assert!(kf.is_clean(b'e') && kf.is_clean(b'u'));
}

/// A mirror's writer records the source's version and publish time with each value; the handle
/// and `smobject inspect` show them, and a plain object has none.
#[test]
fn a_mirror_write_records_its_origin_and_inspect_shows_it() {
    let kf = KeyFile::new("dyn-origin");
    kf.key(b'e');
    let typed = Shared::<v2::Sensor>::create_with_at(kf.path(), b'e', sensor()).unwrap();
    let o = DynObject::access_at(kf.path(), b'e').unwrap();
    assert_eq!(o.origin(), None);
    let origin = smobject::Origin {
        version: 41,
        published_unix_ns: 1_700_000_000_123_456_789,
    };
    let v = o.write_mirrored(&9u64.to_ne_bytes(), origin).unwrap();
    assert_eq!(o.version(), v);
    assert_eq!(o.origin(), Some(origin));
    assert_eq!(typed.read().seq, 9);
    assert_eq!(typed.read().temp, 21.5, "the rest of the value is kept");
    let out = Command::new(tests::smobject_exe())
        .args(["inspect", &kf.arg(), "e"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("mirror of     source version 41, published at 1700000000.123456789"),
        "{text}"
    );
    drop((o, typed));
    assert!(kf.is_clean(b'e'));
}

/// An object with struct-typed fields.
#[smobject::shared_memory(path = "/tmp", id = 'n')]
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Route {
    /// Where it is.
    pub at: Vec3,
    /// Where it goes.
    pub waypoints: [Vec3; 2],
}

#[test]
fn a_struct_value_naming_some_fields_keeps_the_others_and_a_bad_one_writes_nothing() {
    let kf = KeyFile::new("dyn-nested");
    kf.key(b'e');
    let p = |x, y, z| Vec3 { x, y, z };
    let start = Route {
        at: p(1.0, 2.0, 3.0),
        waypoints: [p(4.0, 5.0, 6.0), p(7.0, 8.0, 9.0)],
    };
    let typed = Shared::<Route>::create_with_at(kf.path(), b'e', start).unwrap();
    let o = DynObject::access_at(kf.path(), b'e').unwrap();
    let v0 = o.version();
    o.set(&["at={y: -2.5}", "waypoints[1]={z: 0.25, x: 70}"])
        .unwrap();
    assert_eq!(
        typed.read(),
        Route {
            at: p(1.0, -2.5, 3.0),
            waypoints: [p(4.0, 5.0, 6.0), p(70.0, 8.0, 0.25)],
        },
        "only the fields named changed"
    );
    for (bad, names) in [
        (&["at={x: 0}", "at={w: 1}"][..], "no field `w`"),
        (
            &["at={x: 0}", "waypoints[0]={y: [1, 2]}"][..],
            "waypoints[0].y",
        ),
        (&["at={x: 0}", "waypoints[2]={x: 1}"][..], "waypoints[2]"),
    ] {
        let e = o.set(bad).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidValue, "{bad:?}: {e}");
        assert!(e.to_string().contains(names), "{bad:?} names {names}: {e}");
    }
    assert_eq!(o.version(), v0 + 1, "no bad set was written");
    // The same through `write` with values built in code, which no text parser checked: the
    // check before the lock (on a buffer the size of each field) refuses them.
    let good = (
        "at".to_string(),
        Value::Struct(vec![("x".into(), Value::Float(0.0))]),
    );
    for (bad, names) in [
        (
            Value::Struct(vec![("w".into(), Value::Float(1.0))]),
            "no field `w`",
        ),
        (
            Value::Struct(vec![("y".into(), Value::Array(vec![Value::Float(1.0)]))]),
            "waypoints[0].y",
        ),
        (Value::Float(1.0), "waypoints[0]"),
    ] {
        let e = o
            .write(&[good.clone(), ("waypoints[0]".into(), bad.clone())])
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidValue, "{bad:?}: {e}");
        assert!(e.to_string().contains(names), "{bad:?} names {names}: {e}");
    }
    assert_eq!(o.version(), v0 + 1, "no bad write was written");
    assert_eq!(typed.read().at, p(1.0, -2.5, 3.0));
    drop((o, typed));
    assert!(kf.is_clean(b'e'));
}
