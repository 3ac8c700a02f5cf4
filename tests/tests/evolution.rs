//! Append-only evolution across real processes: two builds of one struct (`evo::v1` and
//! `evo::v2`, the same type name) share an object when the attaching build's fields are a prefix
//! of the object's; otherwise the attach is refused naming the first field that differs. The
//! older build always runs in its own process (`smo-evolve`).
#![allow(clippy::float_cmp)] // exact values written and read back, never computed

use std::process::Command;

use smobject::{DynObject, ErrorKind, Shared, SharedStruct};
use tests::structs::evo::{v1, v2};
use tests::{helper_exe, Helper, KeyFile};

fn evolve(args: &[&str]) -> Helper {
    Helper::spawn_with(Command::new(helper_exe().with_file_name("smo-evolve")).args(args))
}

fn newer() -> v2::Sensor {
    v2::Sensor {
        seq: 1,
        pos: [1.0, 2.0, 3.0],
        status: 5,
        mode: 6,
        temp: 7.5,
    }
}

#[test]
fn an_older_build_reads_and_writes_its_prefix_and_the_tail_is_kept() {
    let kf = KeyFile::new("evo-prefix");
    kf.key(b'e');
    let object = Shared::<v2::Sensor>::create_with_at(kf.path(), b'e', newer()).unwrap();
    let before = object.version();

    let mut old = evolve(&["v1-rw", &kf.arg()]);
    assert_eq!(old.line(), format!("ok 1 [1.0, 2.0, 3.0] v{before}"));
    assert_eq!(old.line(), format!("wrote v{}", before + 1));
    assert!(old.wait().success());

    // One publish by the older build: its prefix changed, the newer fields kept.
    assert_eq!(object.version(), before + 1);
    assert_eq!(
        object.read(),
        v2::Sensor {
            seq: 2,
            pos: [4.0, 5.0, 6.0],
            ..newer()
        }
    );
    // The object keeps describing the newer struct.
    assert_eq!(object.schema().fields.len(), 5);
    assert_eq!(object.raw().data_size(), std::mem::size_of::<v2::Sensor>());
    drop(object);
    assert!(kf.is_clean(b'e'));
}

#[test]
fn an_older_build_waits_for_writes_of_the_newer() {
    let kf = KeyFile::new("evo-wait");
    kf.key(b'e');
    let object = Shared::<v2::Sensor>::create_with_at(kf.path(), b'e', newer()).unwrap();
    let seen = object.version();
    let mut old = evolve(&["v1-wait", &kf.arg(), &seen.to_string()]);
    assert_eq!(old.line(), "ready");
    object.write(|s| {
        s.seq = 9;
        s.temp = -1.0;
    });
    assert_eq!(old.line(), format!("woke v{} 9", seen + 1));
    assert!(old.wait().success());
    drop(object);
    assert!(kf.is_clean(b'e'));
}

#[test]
fn a_newer_build_is_refused_on_an_older_object_naming_the_missing_field() {
    let kf = KeyFile::new("evo-newer");
    kf.key(b'e');
    let mut old = evolve(&["v1-create", &kf.arg()]);
    assert_eq!(old.line(), "ok");

    let e = Shared::<v2::Sensor>::access_at(kf.path(), b'e').unwrap_err();
    assert_eq!(e.kind(), ErrorKind::LayoutMismatch, "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("field `status` is missing from the object created by pid")
            && msg.contains("older build of `Sensor` with 2 fields"),
        "{msg}"
    );
    assert!(
        msg.contains(&old.pid().to_string()),
        "names the creator: {msg}"
    );
    // open_or_create refuses it the same way; the object never grows in place.
    let e = Shared::<v2::Sensor>::open_or_create_at(kf.path(), b'e').unwrap_err();
    assert_eq!(e.kind(), ErrorKind::LayoutMismatch, "{e}");

    // The older build itself and an untyped tool still open it.
    let same = Shared::<v1::Sensor>::access_at(kf.path(), b'e').unwrap();
    assert_eq!(same.read().pos, [1.0, 2.0, 3.0]);
    let tool = DynObject::access_at(kf.path(), b'e').unwrap();
    assert_eq!(tool.schema(), &v1::Sensor::SCHEMA.to_schema());
    drop((same, tool));
    old.send("exit");
    assert!(old.wait().success());
    assert!(kf.is_clean(b'e'));
}

#[test]
fn a_changed_type_and_a_reordered_field_are_refused_naming_the_field() {
    let kf = KeyFile::new("evo-changed");
    kf.key(b'e');
    let object = Shared::<v1::Sensor>::create_at(kf.path(), b'e').unwrap();
    let pid = std::process::id();

    let mut changed = evolve(&["changed-access", &kf.arg()]);
    let line = changed.line();
    assert!(
        line.starts_with("err LayoutMismatch")
            && line.contains(&format!(
                "field `pos`: `[f32; 6]` here, `[f64; 3]` in the object created by pid {pid}"
            )),
        "{line}"
    );
    assert!(changed.wait().success());

    let mut reordered = evolve(&["reordered-access", &kf.arg()]);
    let line = reordered.line();
    assert!(
        line.starts_with("err LayoutMismatch")
            && line.contains("field 1 is `pos` here, `seq` in the object"),
        "{line}"
    );
    assert!(reordered.wait().success());

    // Neither wrote anything.
    assert_eq!(object.version(), 0);
    drop(object);
    assert!(kf.is_clean(b'e'));
}

#[test]
fn a_prefix_that_ends_inside_a_word_reads_and_writes_only_its_bytes() {
    let kf = KeyFile::new("evo-tiny");
    kf.key(b't');
    let full = v2::Tiny {
        a: 10,
        b: 0xdead_beef,
        c: 0xffff,
        d: 7,
    };
    let object = Shared::<v2::Tiny>::create_with_at(kf.path(), b't', full).unwrap();
    let mut old = evolve(&["tiny-v1-rw", &kf.arg()]);
    assert_eq!(old.line(), "ok 10");
    assert_eq!(old.line(), "wrote");
    assert!(old.wait().success());
    assert_eq!(object.read(), v2::Tiny { a: 11, ..full });
    drop(object);
    assert!(kf.is_clean(b't'));
}

#[test]
fn the_schema_is_the_structs_and_the_fingerprint_covers_it() {
    let s = v2::Sensor::SCHEMA;
    assert_eq!(s.name, "Sensor");
    let names: Vec<_> = s.fields.iter().map(|f| f.name).collect();
    assert_eq!(names, ["seq", "pos", "status", "mode", "temp"]);
    let offsets: Vec<_> = s.fields.iter().map(|f| f.offset).collect();
    assert_eq!(offsets, [0, 8, 32, 36, 40]);
    assert_eq!(s.size, 48);
    assert_ne!(v1::Sensor::FINGERPRINT, v2::Sensor::FINGERPRINT);
    assert_eq!(v2::Sensor::FINGERPRINT, s.to_schema().fingerprint());
    // The older schema is a prefix of the newer, not the reverse.
    let (old, new) = (v1::Sensor::SCHEMA.to_schema(), s.to_schema());
    assert!(old.check_prefix(&new).is_ok());
    assert!(new.check_prefix(&old).is_err());
}

/// The counter segment of `(kf, id)`, attached in this process for scribbling on.
struct Scribble {
    base: *mut u8,
}

impl Scribble {
    fn attach(kf: &KeyFile, id: u8) -> Scribble {
        let shmid = kf.segments(id).1.expect("counter segment");
        // SAFETY: plain syscall; a null address lets the kernel choose.
        let p = unsafe { libc::shmat(shmid, std::ptr::null(), 0) };
        assert_ne!(p as isize, -1, "shmat: {}", std::io::Error::last_os_error());
        Scribble { base: p.cast() }
    }

    fn get(&self, at: usize, n: usize) -> Vec<u8> {
        let mut out = vec![0u8; n];
        for (i, b) in out.iter_mut().enumerate() {
            let p = self.base.wrapping_add(at + i);
            // SAFETY: `p` is inside the attached counter segment (the tests read only the
            // identity and the schema block); nobody stores to these write-once bytes while the
            // test runs (it is the only process attached), so the read races with nothing.
            *b = unsafe { p.read_volatile() };
        }
        out
    }

    fn put(&self, at: usize, bytes: &[u8]) {
        for (i, b) in bytes.iter().enumerate() {
            let p = self.base.wrapping_add(at + i);
            // SAFETY: inside the attached segment; no other thread or process accesses these
            // bytes meanwhile (the test is the only process attached, and attaches of its own
            // are made after this store, under the key file's lock, which orders them).
            unsafe { p.write_volatile(*b) };
        }
    }
}

impl Drop for Scribble {
    fn drop(&mut self) {
        // SAFETY: attached in `attach`, not used after this.
        unsafe { libc::shmdt(self.base.cast()) };
    }
}

/// Malformed schema bytes in a real object (random bytes, a few flipped bytes, a wrong
/// length) are refused as `NotAnObject` by every kind of opener, never a panic; the original
/// bytes are accepted again afterwards.
#[test]
fn malformed_schema_bytes_are_not_an_object() {
    const SCHEMA_LEN_AT: usize = 8 + 168; // the identity's `schema_len` field
    let kf = KeyFile::new("evo-fuzz");
    kf.key(b'e');
    let object = Shared::<v2::Sensor>::create_at(kf.path(), b'e').unwrap();
    let scribble = Scribble::attach(&kf, b'e');
    let len = u64::from_ne_bytes(scribble.get(SCHEMA_LEN_AT, 8).try_into().unwrap()) as usize;
    let at = smobject::HEADER_SIZE + std::mem::size_of::<v2::Sensor>().next_multiple_of(8);
    let good = scribble.get(at, len);
    assert_eq!(
        &good[..4],
        b"SMOS",
        "the schema block is where FORMAT.md says"
    );

    let mut x: u64 = 0x853c_49e6_748f_ea9b;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for i in 0..600u32 {
        let mut bad = good.clone();
        let mut bad_len = len as u64;
        match i % 3 {
            0 => bad.iter_mut().for_each(|b| *b = next() as u8),
            1 => {
                for _ in 0..=(next() % 3) {
                    let k = (next() as usize) % bad.len();
                    bad[k] ^= 1 << (next() % 8);
                }
            }
            _ => bad_len = next() % (len as u64 + 8),
        }
        if bad == good && bad_len == len as u64 {
            continue;
        }
        scribble.put(at, &bad);
        scribble.put(SCHEMA_LEN_AT, &bad_len.to_ne_bytes());
        let typed = Shared::<v2::Sensor>::access_at(kf.path(), b'e').map(drop);
        let tool = DynObject::access_at(kf.path(), b'e').map(drop);
        for r in [typed, tool] {
            let e = r.expect_err("a malformed schema is refused");
            assert!(
                matches!(e.kind(), ErrorKind::NotAnObject),
                "case {i}: {:?} {e}",
                e.kind()
            );
        }
    }
    scribble.put(at, &good);
    scribble.put(SCHEMA_LEN_AT, &(len as u64).to_ne_bytes());
    assert!(DynObject::access_at(kf.path(), b'e').is_ok());
    drop(scribble);
    drop(object);
    assert!(kf.is_clean(b'e'));
}

#[test]
fn last_write_is_the_time_of_the_last_publish() {
    let kf = KeyFile::new("evo-last-write");
    kf.key(b'e');
    let object = Shared::<v2::Sensor>::create_at(kf.path(), b'e').unwrap();
    std::thread::sleep(std::time::Duration::from_millis(60));
    // Not written since its creation: as old as the object (the clock is coarse: a tick).
    assert!(object.last_write().elapsed() >= std::time::Duration::from_millis(40));
    let mut old = evolve(&["v1-rw", &kf.arg()]);
    assert!(old.line().starts_with("ok"));
    assert!(old.line().starts_with("wrote"));
    assert!(old.wait().success());
    // Written by another process just now.
    assert!(object.last_write().elapsed() < std::time::Duration::from_millis(40));
    let tool = DynObject::access_at(kf.path(), b'e').unwrap();
    assert!(tool.last_write().elapsed() < std::time::Duration::from_millis(40));
    drop((tool, object));
    assert!(kf.is_clean(b'e'));
}

/// An object of an older format (no schema) is refused with an error that says so.
#[test]
fn an_object_of_an_older_format_is_refused_naming_the_versions() {
    const VERSION_AT: usize = 16;
    let kf = KeyFile::new("evo-format");
    kf.key(b'e');
    let object = Shared::<v1::Sensor>::create_at(kf.path(), b'e').unwrap();
    let scribble = Scribble::attach(&kf, b'e');
    let current = scribble.get(VERSION_AT, 4);
    for old in [1u32, 2] {
        scribble.put(VERSION_AT, &old.to_ne_bytes());
        for e in [
            Shared::<v1::Sensor>::access_at(kf.path(), b'e').map(drop),
            DynObject::access_at(kf.path(), b'e').map(drop),
        ]
        .map(Result::unwrap_err)
        {
            assert_eq!(e.kind(), ErrorKind::LayoutMismatch, "{e}");
            let msg = e.to_string();
            assert!(
                msg.contains(&format!("format version {old}"))
                    && msg.contains("stores no schema")
                    && msg.contains(&format!("format version {}", smobject::FORMAT_VERSION)),
                "{msg}"
            );
        }
    }
    scribble.put(VERSION_AT, &current);
    drop(scribble);
    drop(object);
    assert!(kf.is_clean(b'e'));
}
