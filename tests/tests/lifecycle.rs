//! The runtime core across real processes: round trips, the count at offset 0, crashes,
//! reclaim, the creation race, churn with SIGKILLs, permissions, squatting, corrupt headers.

// Processes are called a, b, c, ... as in the scenarios.
#![allow(clippy::many_single_char_names)]

use std::time::{Duration, Instant};

use smobject::{ErrorKind, Key, Layout, Options, RawObject, SMObject};
use tests::{nattch, Helper, KeyFile};

#[test]
fn two_processes_round_trip_bytes() {
    let kf = KeyFile::new("roundtrip");
    let mut a = Helper::worker(&kf, b'a', 64);
    let mut b = Helper::worker(&kf, b'a', 64);
    assert_eq!(a.ok("create"), "created");
    a.ok("put 0 00112233445566778899aabbccddeeff");
    assert_eq!(b.ok("access"), "accessed");
    assert_eq!(b.ok("get 0 16"), "00112233445566778899aabbccddeeff");
    b.ok("put 60 cafebabe");
    assert_eq!(a.ok("get 56 8"), "00000000cafebabe");
    a.exit();
    b.exit();
    assert!(
        kf.is_clean(b'a'),
        "the last one out must free both segments"
    );
}

#[test]
fn count_follows_attach_and_detach_across_three_processes() {
    let kf = KeyFile::new("count");
    let mut w: Vec<Helper> = (0..3).map(|_| Helper::worker(&kf, b'c', 64)).collect();
    assert_eq!(w[0].ok("create"), "created");
    assert_eq!(w[0].ok("ctr"), "1");
    assert_eq!(w[1].ok("access"), "accessed");
    assert_eq!(w[0].ok("ctr"), "2");
    assert_eq!(w[2].ok("access"), "accessed");
    assert_eq!(w[1].ok("ctr"), "3");
    w[1].ok("drop");
    assert_eq!(w[0].ok("ctr"), "2");
    assert!(!kf.is_clean(b'c'));
    w[0].ok("drop");
    assert_eq!(w[2].ok("ctr"), "1");
    w[2].ok("drop");
    assert!(kf.is_clean(b'c'));
}

#[test]
fn sigkill_of_one_of_three_leaves_others_working_and_count_repaired() {
    let kf = KeyFile::new("kill-one");
    let mut a = Helper::worker(&kf, b'k', 64);
    let b = {
        let mut b = Helper::worker(&kf, b'k', 64);
        a.ok("create");
        b.ok("access");
        b
    };
    let mut c = Helper::worker(&kf, b'k', 64);
    c.ok("access");
    assert_eq!(a.ok("ctr"), "3");
    b.kill();
    // The kernel knows at once; the count at offset 0 is repaired at the next attach/detach.
    assert_eq!(a.ok("nattch"), "2");
    a.ok("put 0 aa");
    assert_eq!(c.ok("get 0 1"), "aa");
    let mut d = Helper::worker(&kf, b'k', 64);
    d.ok("access");
    assert_eq!(d.ok("ctr"), "3", "count repaired from shm_nattch: a, c, d");
    c.ok("drop");
    assert_eq!(a.ok("ctr"), "2");
    a.exit();
    d.exit();
    assert!(kf.is_clean(b'k'));
}

#[test]
fn sigkill_of_all_then_create_reclaims_and_access_reads_last_data() {
    let kf = KeyFile::new("kill-all");
    let mut a = Helper::worker(&kf, b'z', 64);
    let mut b = Helper::worker(&kf, b'z', 64);
    a.ok("create");
    a.ok("put 0 5a5a");
    b.ok("access");
    a.kill();
    b.kill();
    let (data, counter) = kf.segments(b'z');
    let data = data.expect("data segment left by crashed processes");
    let counter = counter.expect("counter segment left by crashed processes");
    assert_eq!((nattch(data), nattch(counter)), (0, 0));

    // `access` may attach the stale pair to read the last data.
    let mut r = Helper::worker(&kf, b'z', 64);
    assert_eq!(r.ok("access"), "accessed");
    assert_eq!(r.ok("get 0 2"), "5a5a");
    assert_eq!(
        r.ok("ctr"),
        "1",
        "count repaired: only the reader is attached"
    );
    r.exit();
    assert!(kf.is_clean(b'z'), "the reader was the last one out");

    // Crash again, then `create` reclaims without ipcrm.
    let mut a = Helper::worker(&kf, b'z', 64);
    a.ok("create");
    a.ok("put 0 77");
    a.kill();
    assert!(!kf.is_clean(b'z'));
    let mut n = Helper::worker(&kf, b'z', 64);
    assert_eq!(
        n.ok("create"),
        "created",
        "a stale pair must not block create"
    );
    assert_eq!(n.ok("get 0 1"), "00", "a reclaimed object starts zeroed");
    n.exit();
    assert!(kf.is_clean(b'z'));

    // And `remove_stale` removes one on demand; a live one is refused as InUse.
    let mut a = Helper::worker(&kf, b'z', 64);
    a.ok("create");
    let e = smobject::remove_stale(kf.path(), b'z').unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InUse, "{e}");
    a.kill();
    assert!(smobject::remove_stale(kf.path(), b'z').unwrap());
    assert!(kf.is_clean(b'z'));
    assert!(!smobject::remove_stale(kf.path(), b'z').unwrap());

    // A stale pair made with a broader mode (0660: shared with a group) is reclaimed by a
    // 0600 create like any other: nothing is read from it, so its mode does not matter.
    let mut a = Helper::worker(&kf, b'z', 64);
    a.ok("create-660");
    a.ok("put 0 66");
    a.kill();
    let data = kf
        .segments(b'z')
        .0
        .expect("the 0660 pair outlives its process");
    let mut n = Helper::worker(&kf, b'z', 64);
    assert_eq!(
        n.ok("create"),
        "created",
        "a stale 0660 pair must not block create"
    );
    assert_eq!(n.ok("get 0 1"), "00");
    assert_ne!(
        kf.segments(b'z').0,
        Some(data),
        "the 0660 segment was replaced"
    );
    n.exit();
    assert!(kf.is_clean(b'z'));
}

#[test]
fn creation_race_16_processes_200_rounds_one_creator_each() {
    const PROCS: usize = 16;
    const ROUNDS: usize = 200;
    let kf = KeyFile::new("race");
    let mut w: Vec<Helper> = (0..PROCS).map(|_| Helper::worker(&kf, b'r', 256)).collect();
    for round in 0..ROUNDS {
        // Send every `open` before reading any answer, so the opens race.
        for h in &mut w {
            h.send("open");
        }
        let answers: Vec<String> = w.iter_mut().map(Helper::line).collect();
        let creators = answers.iter().filter(|a| *a == "ok created").count();
        assert!(
            answers.iter().all(|a| a.starts_with("ok")),
            "round {round}: {answers:?}"
        );
        assert_eq!(
            creators, 1,
            "round {round}: exactly one creator, got {answers:?}"
        );
        for h in &mut w {
            h.send("drop");
        }
        for h in &mut w {
            assert_eq!(h.line(), "ok");
        }
        assert!(kf.is_clean(b'r'), "round {round}: the last one out frees");
    }
    for h in w {
        h.exit();
    }
}

#[test]
fn churn_with_random_sigkills_never_splits_and_leaves_nothing() {
    const PROCS: usize = 6;
    const KILLS: usize = 200;
    let kf = KeyFile::new("churn");
    kf.key(b'h');
    let spawn = |i: usize| Helper::spawn(&["churn", &kf.arg(), "h", &(i * 7919 + 1).to_string()]);
    let mut procs: Vec<Helper> = (0..PROCS).map(spawn).collect();
    let mut rng: u64 = 0x9e37_79b9_7f4a_7c15;
    let deadline = Instant::now() + Duration::from_secs(120);
    for kill in 0..KILLS {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        std::thread::sleep(Duration::from_micros(rng % 4000));
        let i = (rng % PROCS as u64) as usize;
        if let Some(st) = procs[i].try_wait() {
            panic!(
                "churner {i} exited by itself ({st:?}), saying {:?}",
                procs[i].try_line(Duration::from_millis(100))
            );
        }
        let victim = std::mem::replace(&mut procs[i], spawn(kill + PROCS));
        victim.kill();
        assert!(Instant::now() < deadline, "churn took too long");
    }
    for (i, p) in procs.iter_mut().enumerate() {
        assert!(
            p.try_wait().is_none(),
            "churner {i} exited by itself: {:?}",
            p.try_line(Duration::from_millis(100))
        );
    }
    for p in procs {
        p.kill();
    }
    // Everyone is dead: at most one stale pair remains, and it is removable.
    let _ = smobject::remove_stale(kf.path(), b'h').unwrap();
    assert!(
        kf.is_clean(b'h'),
        "no segment may remain: {:?}",
        kf.segments(b'h')
    );
}

#[test]
fn another_uid_is_denied() {
    let kf = KeyFile::new("perm");
    let owner = RawObject::create(&kf.key(b'p'), Layout::untyped(64), &Options::new()).unwrap();
    let mut other = Helper::spawn(&["--as-nobody", "worker", &kf.arg(), "p", "64"]);
    if sys_uid() != 0 {
        eprintln!("not root: the uid-drop part of this test needs root; checked the owner only");
        return;
    }
    let r = other.cmd("access");
    assert!(r.starts_with("err PermissionDenied"), "{r}");
    assert!(r.contains("hint"), "{r}");
    other.exit();
    drop(owner);
    assert!(kf.is_clean(b'p'));
}

#[test]
fn squatted_key_is_refused_as_foreign_owner() {
    if sys_uid() != 0 {
        eprintln!("skipped: squatting by uid 65534 needs root to drop privileges");
        return;
    }
    let kf = KeyFile::new("squat");
    let key = kf.key(b's');
    let mut squatter = Helper::spawn(&["--as-nobody", "squat", &kf.arg(), "s", "64"]);
    assert_eq!(squatter.line(), "ok");
    assert!(squatter.wait().success());
    for how in ["create", "open", "access"] {
        let r = match how {
            "create" => RawObject::create(&key, Layout::untyped(64), &Options::new()),
            "open" => RawObject::open_or_create(&key, Layout::untyped(64), &Options::new()),
            _ => RawObject::access(&key, Layout::untyped(64), &Options::new()),
        };
        let e = r
            .err()
            .unwrap_or_else(|| panic!("{how} accepted a squatted key"));
        assert_eq!(e.kind(), ErrorKind::ForeignOwner, "{how}: {e}");
        assert!(e.to_string().contains("65534"), "{e}");
    }
    // Trusting the uid explicitly still refuses the 0666 mode (broader than 0600).
    let e = RawObject::access(&key, Layout::untyped(64), &Options::new().allow_uid(65534))
        .err()
        .unwrap();
    assert_eq!(e.kind(), ErrorKind::ForeignOwner);
    assert!(e.to_string().contains("0o666"), "{e}");
}

#[test]
fn garbage_header_is_a_typed_error_not_a_crash() {
    let kf = KeyFile::new("garbage");
    let key = kf.key(b'g');
    let owner = RawObject::create(&key, Layout::untyped(64), &Options::new()).unwrap();
    let counter = owner.shmids().1;
    // Scribble over the header (offsets 8..512), leaving the count alone.
    // SAFETY: attaching a live segment; we write only inside its 512-byte header.
    let p = unsafe { libc::shmat(counter, std::ptr::null(), 0) }.cast::<u8>();
    assert!(p as isize != -1);
    let mut x: u32 = 12345;
    for off in [8usize, 16, 24, 32, 100] {
        for i in 0..8 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            // SAFETY: off + i < 512, inside the mapping.
            unsafe { p.wrapping_add(off + i).write_volatile((x >> 16) as u8) };
        }
    }
    let e = RawObject::access(&key, Layout::untyped(64), &Options::new())
        .err()
        .expect("garbage accepted");
    assert_eq!(e.kind(), ErrorKind::NotAnObject, "{e}");
    // The object is named as its users know it (data key, id 'g'); the detail says which
    // counter segment is bad.
    assert_eq!((e.key(), e.id()), (Some(key.raw()), Some(b'g')), "{e}");
    let counter = format!("counter segment {:#010x}", key.counter().raw() as u32);
    assert!(e.to_string().contains(&counter), "{e}");
    // A valid magic but an impossible data size is caught too.
    // SAFETY: offsets 8..16 (magic) and 24..32 (data size) are inside the header.
    unsafe {
        p.wrapping_add(8)
            .cast::<u64>()
            .write_unaligned(u64::from_le_bytes(*b"SMOBJECT"));
    }
    // SAFETY: format version at offset 16.
    unsafe {
        p.wrapping_add(16)
            .cast::<u32>()
            .write_unaligned(smobject::FORMAT_VERSION);
    }
    // SAFETY: header size at offset 20.
    unsafe {
        p.wrapping_add(20)
            .cast::<u32>()
            .write_unaligned(smobject::HEADER_SIZE as u32);
    }
    // SAFETY: data size at offset 24.
    unsafe { p.wrapping_add(24).cast::<u64>().write_unaligned(u64::MAX) };
    let e = RawObject::access(&key, Layout::untyped(64), &Options::new())
        .err()
        .expect("garbage accepted");
    assert_eq!(e.kind(), ErrorKind::NotAnObject, "{e}");
    // SAFETY: attached above.
    unsafe { libc::shmdt(p.cast()) };
    drop(owner);
    assert!(kf.is_clean(b'g'));
}

#[test]
fn creator_killed_before_init_is_reclaimed() {
    let kf = KeyFile::new("half");
    let key = kf.key(b'i');
    // What a creator killed between shmget and marking the header ready leaves behind.
    let mut h = Helper::spawn(&["legacy-create", &kf.arg(), "i", "64", "1"]);
    assert_eq!(h.line(), "ok");
    assert!(h.wait().success());
    let e = RawObject::access(&key, Layout::untyped(64), &Options::new())
        .err()
        .unwrap();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert!(kf.is_clean(b'i'), "access removed the half-made pair");
    let mut h = Helper::spawn(&["legacy-create", &kf.arg(), "i", "64", "0"]);
    assert_eq!(h.line(), "ok");
    assert!(h.wait().success());
    let o = RawObject::open_or_create(&key, Layout::untyped(64), &Options::new()).unwrap();
    assert!(o.created());
    drop(o);
    assert!(kf.is_clean(b'i'));
}

#[test]
fn bad_input_gives_typed_errors() {
    let kf = KeyFile::new("input");
    let e = Key::from_path(kf.path(), b'#').unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidId);
    assert!(
        e.to_string().contains("'#'") && e.hint_text().is_some(),
        "{e}"
    );
    let e = Key::from_path("/no/such/smobject/key", b'a').unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PathNotFound);
    assert!(e.to_string().contains("/no/such/smobject/key"), "{e}");

    let key = kf.key(b'n');
    let e = RawObject::access(&key, Layout::untyped(64), &Options::new())
        .err()
        .unwrap();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert!(e.hint_text().unwrap().contains("creat"), "{e}");
    assert!(e.to_string().contains(&format!("{key}")), "{e}");

    let o = RawObject::create(&key, Layout::untyped(64), &Options::new()).unwrap();
    let e = RawObject::create(&key, Layout::untyped(64), &Options::new())
        .err()
        .unwrap();
    assert_eq!(e.kind(), ErrorKind::AlreadyExists);
    let e = RawObject::access(&key, Layout::untyped(128), &Options::new())
        .err()
        .unwrap();
    assert_eq!(e.kind(), ErrorKind::SizeMismatch, "{e}");
    let small = RawObject::access(&key, Layout::untyped(16), &Options::new()).unwrap();
    assert_eq!(small.len(), 16);
    drop((o, small));

    let e = RawObject::create(&key, Layout::untyped(0), &Options::new())
        .err()
        .unwrap();
    assert_eq!(e.kind(), ErrorKind::SizeMismatch, "{e}");
    let e = RawObject::create(&key, Layout::untyped(usize::MAX / 2), &Options::new())
        .err()
        .unwrap();
    assert_eq!(e.kind(), ErrorKind::Limit, "{e}");
    assert!(kf.is_clean(b'n'), "a failed create leaves no half pair");
}

#[test]
fn a_fifo_as_key_file_never_blocks_the_open() {
    // Opening a FIFO for reading blocks until a writer comes: the key file's open must not.
    let dir = std::env::temp_dir().join(format!("smobject-fifo-{}", std::process::id()));
    std::fs::create_dir(&dir).unwrap();
    let fifo = dir.join("key");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: `c` is a NUL-terminated path that lives across the call.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let key = Key::from_path(&fifo, b'f').unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let k = key.clone();
    std::thread::spawn(move || {
        let r = RawObject::access(&k, Layout::untyped(64), &Options::new()).map(|_| ());
        let _ = tx.send(r.map_err(|e| e.kind()));
    });
    let r = rx.recv_timeout(Duration::from_secs(5));
    if r.is_err() {
        // The open is stuck: unblock it with a writer, so that the test fails rather than hangs.
        let _ = std::fs::OpenOptions::new().write(true).open(&fifo);
        std::fs::remove_dir_all(&dir).unwrap();
        panic!("access on a FIFO key file did not return within 5 s");
    }
    // Created and dropped like on any file: the FIFO's inode is the key.
    let created = RawObject::create(&key, Layout::untyped(64), &Options::new()).map(drop);
    let clean = tests::shmid(key.raw()).is_none() && tests::shmid(key.counter().raw()).is_none();
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(r, Ok(Err(ErrorKind::NotFound)), "access on a FIFO key file");
    assert!(
        created.is_ok() && clean,
        "{created:?}, segments left: {}",
        !clean
    );
}

#[test]
fn smobject_port_follows_the_original_protocol() {
    let kf = KeyFile::new("port");
    let mut creator = SMObject::new(kf.path(), b'm', 32);
    kf.key(b'm');
    assert!(creator.as_ptr().is_null());
    creator.shm_create().unwrap();
    creator.shm_access().unwrap();
    assert_eq!(creator.mem_ctr(), 1, "shmCreate then shmAccess counts once");
    let mut reader = SMObject::new(kf.path(), b'm', 32);
    reader.shm_access().unwrap();
    assert_eq!(reader.mem_ctr(), 2);
    assert_eq!(
        reader.decrement_mem_ctr().unwrap(),
        2,
        "repairs, never corrupts, the count"
    );
    // SAFETY: 32-byte object; this thread is the only writer.
    unsafe { creator.as_ptr().wrapping_add(31).write(9) };
    // SAFETY: as above; read after the write in the same thread.
    assert_eq!(unsafe { reader.as_ptr().wrapping_add(31).read() }, 9);
    drop(creator);
    assert_eq!(reader.mem_ctr(), 1);
    drop(reader);
    assert!(kf.is_clean(b'm'));

    let mut bad = SMObject::new(kf.path(), b'#', 32);
    assert_eq!(bad.shm_create().unwrap_err().kind(), ErrorKind::InvalidId);
    let mut missing = SMObject::new(kf.path(), b'x', 32);
    assert_eq!(
        missing.shm_access().unwrap_err().kind(),
        ErrorKind::NotFound
    );
}

fn sys_uid() -> u32 {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() }
}

/// The last one out frees the pair even while other processes' creators scan every counter
/// segment (`check_unreachable` attaches them read-only for a moment, without this object's
/// key lock): a transient reader must not turn the last detach into a stale pair.
#[test]
fn last_detach_frees_while_another_creator_scans_the_headers() {
    let ours = KeyFile::new("settle-ours");
    let theirs = KeyFile::new("settle-theirs");
    theirs.key(b'q');
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let scanner = {
        let stop = std::sync::Arc::clone(&stop);
        let path = theirs.path().to_owned();
        std::thread::spawn(move || {
            let key = Key::from_path(&path, b'q').unwrap();
            let mut scans = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                // Every create of a key with nothing under it scans the counter segments of
                // the same id, ours included.
                drop(RawObject::create(&key, Layout::untyped(64), &Options::new()).unwrap());
                scans += 1;
            }
            scans
        })
    };
    let key = ours.key(b'q');
    for round in 0..300 {
        let o = RawObject::create(&key, Layout::untyped(64), &Options::new()).unwrap();
        drop(o);
        assert!(
            ours.is_clean(b'q'),
            "round {round}: the last detach left the pair"
        );
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(scanner.join().unwrap() > 0);
    assert!(theirs.is_clean(b'q'));
}
