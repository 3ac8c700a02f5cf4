//! The typed handle across real processes: a producer creates and writes, a consumer in
//! another process reads it; another build of the struct is refused; the last drop frees.

use smobject::{ErrorKind, Shared, SharedStruct};
use tests::structs::{v2, Telemetry};
use tests::{Helper, KeyFile};

#[test]
fn producer_process_writes_consumer_process_reads() {
    let kf = KeyFile::new("typed-pc");
    kf.key(b'a');
    let mut producer = Helper::spawn(&["t-produce", &kf.arg(), "a"]);
    assert_eq!(producer.line(), "ok");
    let mut consumer = Helper::spawn(&["t-consume", &kf.arg(), "a"]);
    assert_eq!(consumer.line(), "ok 42 [1.5, -2.5, 3.25] 7 v1");
    assert!(consumer.wait().success());

    // The same from this process, through the typed API.
    let here = Shared::<Telemetry>::access_at(kf.path(), b'a').unwrap();
    assert_eq!(
        here.read(),
        Telemetry {
            seq: 42,
            pos: [1.5, -2.5, 3.25],
            status: 7,
            _pad: 0
        }
    );
    assert_eq!(here.attached().unwrap(), 2);
    assert!(!here.created());
    assert_eq!(here.raw().type_name(), "Telemetry");
    producer.send("exit");
    assert!(producer.wait().success());
    assert_eq!(here.attached().unwrap(), 1);
    drop(here);
    assert!(kf.is_clean(b'a'), "the last drop frees both segments");
}

#[test]
fn another_build_of_the_struct_is_a_layout_mismatch() {
    let kf = KeyFile::new("typed-mismatch");
    kf.key(b'a');
    let mut producer = Helper::spawn(&["t-produce", &kf.arg(), "a"]);
    assert_eq!(producer.line(), "ok");
    let mut other = Helper::spawn(&["t-consume-v2", &kf.arg(), "a"]);
    let line = other.line();
    assert!(line.starts_with("err LayoutMismatch"), "{line}");
    assert!(
        line.contains("field `status`: `u64` here, `u32` in the object created by pid"),
        "names the first differing field: {line}"
    );
    assert!(other.wait().success());
    assert_ne!(Telemetry::FINGERPRINT, v2::Telemetry::FINGERPRINT);
    assert_eq!(
        std::mem::size_of::<Telemetry>(),
        std::mem::size_of::<v2::Telemetry>()
    );

    // Nothing was written by the refused process.
    let here = Shared::<Telemetry>::access_at(kf.path(), b'a').unwrap();
    assert_eq!(here.read().seq, 42);
    assert_eq!(here.version(), 1);
    // An untyped object is not a Telemetry either.
    drop(here);
    producer.send("exit");
    assert!(producer.wait().success());
    let raw = smobject::RawObject::create(
        &kf.key(b'b'),
        smobject::Layout::untyped(48),
        &smobject::Options::new(),
    )
    .unwrap();
    let e = Shared::<Telemetry>::access_at(kf.path(), b'b').unwrap_err();
    assert_eq!(e.kind(), ErrorKind::LayoutMismatch, "{e}");
    drop(raw);
    // So is an untyped object too small for T.
    let raw = smobject::RawObject::create(
        &kf.key(b'c'),
        smobject::Layout::untyped(8),
        &smobject::Options::new(),
    )
    .unwrap();
    let e = Shared::<Telemetry>::access_at(kf.path(), b'c').unwrap_err();
    assert_eq!(e.kind(), ErrorKind::LayoutMismatch, "{e}");
    assert!(e.to_string().contains("untyped"), "{e}");
    drop(raw);
    assert!(kf.is_clean(b'a') && kf.is_clean(b'b') && kf.is_clean(b'c'));
}

#[test]
fn a_mode_that_cannot_work_is_refused_before_anything_is_made() {
    let kf = KeyFile::new("typed-badmode");
    let key = kf.key(b'a');
    let untyped = || smobject::Layout::untyped(8);
    for mode in [0o755, 0o1600, 0o060, 0o400] {
        let opts = smobject::Options::new().mode(mode);
        assert_eq!(opts.get_mode(), mode, "kept as given, not narrowed");
        let e = opts.validate().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidOptions, "{e}");
        for e in [
            smobject::RawObject::create(&key, untyped(), &opts)
                .map(drop)
                .unwrap_err(),
            smobject::RawObject::open_or_create(&key, untyped(), &opts)
                .map(drop)
                .unwrap_err(),
            smobject::RawObject::access(&key, untyped(), &opts)
                .map(drop)
                .unwrap_err(),
        ] {
            assert_eq!(e.kind(), ErrorKind::InvalidOptions, "{e}");
            assert_eq!(e.key(), Some(key.raw()), "{e}");
            assert!(e.to_string().contains(&format!("{mode:#o}")), "{e}");
            assert!(e.hint_text().unwrap().contains("0o660"), "{e}");
        }
        assert!(kf.is_clean(b'a'), "nothing was created with mode {mode:#o}");
        // The key file is not made either.
        let missing = kf.path().with_extension("never");
        let e = smobject::Key::from_path_creating(&missing, b'a', mode).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidOptions, "{e}");
        assert!(e.to_string().contains("never"), "names the path: {e}");
        assert!(!missing.exists());
    }
    let ok = smobject::Options::new().mode(0o660);
    let raw = smobject::RawObject::create(&key, untyped(), &ok).unwrap();
    drop(raw);
    assert!(kf.is_clean(b'a'));
}

#[test]
fn generated_constructors_use_the_attribute_key() {
    assert_eq!(Telemetry::PATH, "/tmp");
    assert_eq!(Telemetry::ID, b'a');
    assert_eq!(Telemetry::MODE, 0o600);
    assert_eq!(Telemetry::TYPE_NAME, "Telemetry");
    let _: fn() -> smobject::Result<Shared<Telemetry>> = Telemetry::create;
    let _: fn() -> smobject::Result<Shared<Telemetry>> = Telemetry::access;
    let _: fn() -> smobject::Result<Shared<Telemetry>> = Telemetry::open_or_create;
}

#[test]
fn create_with_starts_from_a_value_and_open_or_create_shares() {
    let kf = KeyFile::new("typed-with");
    kf.key(b'w');
    let value = Telemetry {
        seq: 9,
        pos: [0.5; 3],
        status: 1,
        _pad: 0,
    };
    let a = Shared::create_with_at(kf.path(), b'w', value).unwrap();
    assert!(a.created());
    let b = Shared::<Telemetry>::open_or_create_at(kf.path(), b'w').unwrap();
    assert!(!b.created());
    assert_eq!(b.read(), value);
    assert_eq!(
        Shared::<Telemetry>::create_at(kf.path(), b'w')
            .unwrap_err()
            .kind(),
        ErrorKind::AlreadyExists
    );
    let dbg = format!("{a:?}");
    assert!(
        dbg.contains("Telemetry") && dbg.contains("version"),
        "{dbg}"
    );
    drop((a, b));
    assert!(kf.is_clean(b'w'));
}

#[test]
fn shared_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Shared<Telemetry>>();
}

#[test]
fn create_makes_a_missing_key_file_and_access_does_not() {
    let dir = std::env::temp_dir().join(format!("smobject-test-mkkey-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("telemetry");
    let e = Shared::<Telemetry>::access_at(&path, b'a').unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PathNotFound, "{e}");
    assert!(!path.exists(), "access never creates the key file");
    let created = Shared::<Telemetry>::create_at(&path, b'a').unwrap();
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&path).unwrap().permissions());
    assert_eq!(
        mode & 0o777,
        0o400,
        "key file readable as the object's 0o600 mode allows"
    );
    let key = created.key().clone();
    drop(created);
    assert!(tests::shmid(key.raw()).is_none() && tests::shmid(key.counter().raw()).is_none());
    let e = Shared::<Telemetry>::create_at(dir.join("missing-dir").join("k"), b'a').unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PathNotFound, "{e}");
    assert!(e.hint_text().unwrap().contains("directory"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}
