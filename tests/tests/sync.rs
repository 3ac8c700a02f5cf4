//! Synchronised access across real processes: no torn reads, exclusive writers, a writer
//! killed mid-write, blocking waits, reader progress against a back-to-back 1 MiB writer.

use std::time::Duration;

use smobject::Shared;
use tests::structs::{Counter, Words};
use tests::{Helper, KeyFile, Tally};

fn nums(line: &str) -> Vec<u64> {
    line.split_whitespace()
        .skip(1)
        .map(|w| w.parse().unwrap())
        .collect()
}

#[test]
fn readers_in_two_processes_never_see_a_torn_value() {
    const READS: &str = "20000000";
    let kf = KeyFile::new("torn");
    kf.key(b't');
    let mut writer = Helper::spawn(&["t-writer", &kf.arg(), "t"]);
    assert_eq!(writer.line(), "ok");
    let mut readers: Vec<Helper> = (0..2)
        .map(|_| Helper::spawn(&["t-reader", &kf.arg(), "t", READS]))
        .collect();
    for r in &mut readers {
        let line = r.line();
        let n = nums(&line);
        assert_eq!(n[0], 0, "torn values seen: {line}");
        assert!(n[1] > 10, "the writer was not running concurrently: {line}");
        assert!(r.wait().success());
    }
    writer.kill();
    assert!(
        smobject::remove_stale(kf.path(), b't').unwrap(),
        "the killed writer was the last one"
    );
    assert!(kf.is_clean(b't'));
}

#[test]
fn writers_in_two_processes_are_exclusive() {
    const N: u64 = 100_000;
    let kf = KeyFile::new("excl");
    kf.key(b'x');
    let mut ws: Vec<Helper> = (0..2)
        .map(|_| Helper::spawn(&["t-inc", &kf.arg(), "x", &N.to_string()]))
        .collect();
    for w in &mut ws {
        assert_eq!(w.line(), "ok");
    }
    // Both are attached now: start them together.
    for w in &mut ws {
        w.send("go");
    }
    for w in &mut ws {
        assert_eq!(w.line(), "done");
    }
    let c = Shared::<Counter>::access_at(kf.path(), b'x').unwrap();
    assert_eq!(
        c.read().n,
        2 * N,
        "increments were lost: writers interleaved"
    );
    assert_eq!(c.version(), 2 * N);
    for w in &mut ws {
        w.send("exit");
        assert!(w.wait().success());
    }
    drop(c);
    assert!(kf.is_clean(b'x'));
}

#[test]
fn writer_killed_mid_write_loses_its_write_and_is_reported() {
    let kf = KeyFile::new("killed-writer");
    kf.key(b'k');
    let w = Shared::<Words>::create_at(kf.path(), b'k').unwrap();
    w.write(|v| v.words = [7; 32]);
    let mut dying = Helper::spawn(&["t-die-in-write", &kf.arg(), "k"]);
    assert_eq!(dying.line(), "inside");
    // While the writer is stuck inside its write, readers get the last complete value.
    assert_eq!(w.read().words, [7; 32]);
    assert_eq!(w.version(), 1);
    dying.kill();
    // Readers still get the last complete value, without waiting for anyone.
    assert_eq!(w.read().words, [7; 32]);
    // The next writer proceeds and is told the previous holder died; its change was made to a
    // private copy, so nothing reached the object and nothing had to be rolled back.
    let g = w.lock_timeout(Duration::from_secs(5)).unwrap();
    assert!(g.owner_died(), "the guard must report the dead writer");
    assert!(
        !g.recovered(),
        "nothing was half-published, so nothing was rolled back"
    );
    assert_eq!(
        g.words, [7; 32],
        "the dead writer's change never reached the object"
    );
    drop(g);
    assert_eq!(w.recoveries(), 0);
    assert_eq!(w.version(), 2, "the write above published once");
    let g = w.lock().unwrap();
    assert!(!g.owner_died(), "the report is not sticky");
    drop(g);
    w.write(|v| v.words = [8; 32]);
    assert_eq!(w.read().words, [8; 32]);
    drop(w);
    assert!(kf.is_clean(b'k'));
}

#[test]
fn reader_recovers_after_writer_killed_mid_write() {
    let kf = KeyFile::new("killed-writer-reader");
    kf.key(b'q');
    let w = Shared::<Words>::create_at(kf.path(), b'q').unwrap();
    w.write(|v| v.words = [3; 32]);
    let mut dying = Helper::spawn(&["t-die-in-write", &kf.arg(), "q"]);
    assert_eq!(dying.line(), "inside");
    dying.kill();
    // A reader in another process gets the last complete value.
    let mut r = Helper::spawn(&["t-reader", &kf.arg(), "q", "1000"]);
    assert_eq!(nums(&r.line())[0], 0);
    assert!(r.wait().success());
    assert_eq!(w.read().words, [3; 32]);
    drop(w);
    assert!(kf.is_clean(b'q'));
}

#[test]
fn wait_for_update_wakes_across_processes_and_times_out() {
    let kf = KeyFile::new("wait");
    kf.key(b'w');
    let c = Shared::<Counter>::create_at(kf.path(), b'w').unwrap();
    let v = c.version();
    let mut waiter = Helper::spawn(&["t-wait", &kf.arg(), "w", &v.to_string(), "10000"]);
    assert_eq!(waiter.line(), "waiting");
    std::thread::sleep(Duration::from_millis(100));
    c.write(|c| c.n = 5);
    let line = waiter.line();
    let n = nums(&line);
    assert!(line.starts_with("ok"), "{line}");
    assert_eq!((n[0], n[1]), (v + 1, 5), "{line}");
    assert!(
        n[2] < 5000,
        "woken by the write, not by the time-out: {line}"
    );
    assert!(waiter.wait().success());

    let mut waiter = Helper::spawn(&["t-wait", &kf.arg(), "w", &c.version().to_string(), "200"]);
    assert_eq!(waiter.line(), "waiting");
    let line = waiter.line();
    assert!(line.starts_with("err Timeout"), "{line}");
    let elapsed_ms: u64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(elapsed_ms >= 200, "the time-out is honoured: {line}");
    assert!(waiter.wait().success());
    // A version already past returns at once.
    assert_eq!(c.wait_for_update(0, Some(Duration::ZERO)).unwrap(), 1);
    drop(c);
    assert!(kf.is_clean(b'w'));
}

#[test]
fn readers_progress_against_a_back_to_back_1mib_writer() {
    let kf = KeyFile::new("big");
    kf.key(b'b');
    let mut writer = Helper::spawn(&["t-big-writer", &kf.arg(), "b"]);
    assert_eq!(writer.line(), "ok");
    let mut reader = Helper::spawn(&["t-big-reader", &kf.arg(), "b", "1000"]);
    let line = reader.line();
    let n = nums(&line);
    assert!(reader.wait().success());
    assert_eq!(n[1], 0, "torn 1 MiB snapshots: {line}");
    assert!(n[0] >= 20, "the reader starved: {line}");
    assert!(n[2] >= 2, "the writer was not running: {line}");
    writer.kill();
    assert!(smobject::remove_stale(kf.path(), b'b').unwrap());
    assert!(kf.is_clean(b'b'));
}

#[test]
fn write_returns_the_closure_value_and_rolls_back_on_panic() {
    let kf = KeyFile::new("panic");
    kf.key(b'p');
    let c = Shared::<Counter>::create_at(kf.path(), b'p').unwrap();
    assert_eq!(
        c.write(|c| {
            c.n = 1;
            c.n * 10
        }),
        10
    );
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        c.write(|c| {
            c.n = 99;
            panic!("boom");
        });
    }));
    assert!(r.is_err());
    assert_eq!(c.read().n, 1, "a panicking write is discarded");
    assert_eq!(c.version(), 1, "a discarded write publishes nothing");
    // The writer's private copy held the abandoned change: the next write starts from the
    // published value, not from it.
    assert_eq!(
        c.write(|c| c.n),
        1,
        "the next write sees the published value"
    );
    // The lock was released: a re-entrant write is an error, not a deadlock.
    let g = c.lock().unwrap();
    let e = c.lock().unwrap_err();
    assert!(e.to_string().contains("already holds"), "{e}");
    drop(g);
    drop(c);
    assert!(kf.is_clean(b'p'));
}

/// Writes from a `Drop` impl, for the next test.
struct WritesOnDrop<'a>(&'a Shared<Counter>);

impl Drop for WritesOnDrop<'_> {
    fn drop(&mut self) {
        self.0.write(|c| c.n = 42);
    }
}

#[test]
fn a_write_made_while_unwinding_is_published() {
    let kf = KeyFile::new("unwinding");
    let c = Shared::<Counter>::create_at(kf.path(), b'u').unwrap();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _w = WritesOnDrop(&c);
        panic!("boom");
    }));
    assert!(r.is_err());
    // The thread was already panicking when the lock was taken: the write completed and is
    // published; only a panic that starts while the lock is held discards a write.
    assert_eq!(c.read().n, 42);
    assert_eq!(c.version(), 1);
    drop(c);
    assert!(kf.is_clean(b'u'));
}

#[test]
fn unrepresentable_timeouts_mean_no_deadline() {
    let kf = KeyFile::new("max-timeout");
    let c = Shared::<Counter>::create_at(kf.path(), b'm').unwrap();
    c.write(|c| c.n = 5);
    // Instant::now() + Duration::MAX overflows: these wait without a deadline, never panic.
    assert_eq!(c.read_timeout(Duration::MAX).unwrap().n, 5);
    drop(c.lock_timeout(Duration::MAX).unwrap());
    assert_eq!(c.wait_for_update(0, Some(Duration::MAX)).unwrap(), 2);
    std::thread::scope(|s| {
        let waiter = s.spawn(|| c.wait_for_update(2, Some(Duration::MAX)));
        std::thread::sleep(Duration::from_millis(50));
        c.write(|c| c.n = 6);
        assert_eq!(waiter.join().unwrap().unwrap(), 3);
    });
    drop(c);
    assert!(kf.is_clean(b'm'));
}

#[test]
fn a_waiter_killed_at_any_step_loses_no_wakeup_and_costs_at_most_one_wake() {
    let kf = KeyFile::new("dead-waiter");
    kf.key(b'd');
    let c = Shared::<Counter>::create_at(kf.path(), b'd').unwrap();
    let counter_shmid = c.raw().shmids().1;
    let sleepers = || {
        smobject::inspect::read_header(counter_shmid)
            .unwrap()
            .sleepers
    };
    for (round, point) in ["wait:registered", "wait:checked", "asleep"]
        .iter()
        .enumerate()
    {
        let seen = c.version().to_string();
        // A waiter with no time-out, which only the next write can wake.
        let mut live = Helper::spawn(&["t-wait", &kf.arg(), "d", &seen, "0"]);
        assert_eq!(live.line(), "waiting");
        // Another waiter on the same version dies at `point`.
        if *point == "asleep" {
            let mut dying = Helper::spawn(&["t-wait", &kf.arg(), "d", &seen, "60000"]);
            assert_eq!(dying.line(), "waiting");
            std::thread::sleep(Duration::from_millis(50));
            dying.kill();
        } else {
            let mut dying = Helper::spawn_fault(point, &["t-wait", &kf.arg(), "d", &seen, "60000"]);
            assert_eq!(dying.line(), "waiting");
            assert!(
                !dying.wait().success(),
                "{point}: the fault point was not reached"
            );
        }
        std::thread::sleep(Duration::from_millis(50));
        assert!(sleepers(), "{point}: the waiters are registered");
        c.write(|c| c.n = round as u64);
        let woke = live.try_line(Duration::from_secs(5));
        assert!(
            woke.as_deref().is_some_and(|l| l.starts_with("ok")),
            "{point}: the live waiter was not woken: {woke:?}"
        );
        assert!(live.wait().success());
        // The dead waiter's registration was cleared by that publish: later writes make no
        // futex call for it.
        assert!(!sleepers(), "{point}: writes still pay for the dead waiter");
        c.write(|c| c.n += 100);
        assert!(!sleepers());
    }
    drop(c);
    assert!(kf.is_clean(b'd'));
}

#[test]
fn a_leaked_write_guard_keeps_its_lock_mapped_and_nothing_is_corrupted() {
    let kf = KeyFile::new("forget-guard");
    let mut h = Helper::spawn(&["t-forget-guard", &kf.arg(), "f", "g"]);
    let line = h.line();
    let fields: Vec<&str> = line.split_whitespace().collect();
    // Without the fix the handle unmaps the segment holding the locked robust mutex, the
    // helper maps marked pages there, and its next robust lock writes into them.
    assert_eq!(
        fields[..2],
        ["kept", "intact"],
        "the leaked guard's lock was unmapped: {line}"
    );
    let counter_shmid: i32 = fields[2].parse().unwrap();
    let header = smobject::inspect::read_header(counter_shmid).unwrap();
    assert_eq!(header.leaked_guards, 1, "the leak is counted in the header");
    assert!(
        header.lock_owner.is_some(),
        "the leaked guard still holds the lock"
    );
    h.send("exit");
    assert!(h.wait().success());
    // The process exit detached the kept mapping: the pair is stale and reclaimed as after a
    // crash; the second object was freed normally.
    assert!(kf.is_clean(b'g'));
    assert!(smobject::remove_stale(kf.path(), b'f').unwrap());
    assert!(kf.is_clean(b'f'));
}

/// A shared struct with a `Drop` impl that counts drops, for the next test.
mod counted {
    use std::sync::atomic::{AtomicU64, Ordering};

    pub(crate) static DROPS: AtomicU64 = AtomicU64::new(0);

    #[smobject::shared_memory(path = "/tmp", id = 'D')]
    #[repr(C)]
    pub(crate) struct Counted {
        pub words: [u64; 16],
    }

    impl Drop for Counted {
        fn drop(&mut self) {
            DROPS.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[test]
fn read_drops_only_the_snapshots_it_returns() {
    use counted::{Counted, DROPS};
    use std::sync::atomic::{AtomicBool, Ordering};

    const READS: u64 = 2_000_000;
    let kf = KeyFile::new("drop-snapshots");
    let shared = Shared::<Counted>::create_at(kf.path(), b'd').unwrap();
    let stop = AtomicBool::new(false);
    let tally = std::thread::scope(|s| {
        s.spawn(|| {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                shared.write(|v| v.words = [i; 16]);
            }
        });
        let mut tally = Tally::starting_at(0);
        for _ in 0..READS {
            tally.see(&shared.read().words);
        }
        stop.store(true, Ordering::Relaxed);
        tally
    });
    assert_eq!(tally.torn, 0, "torn snapshots returned");
    assert!(
        tally.changes > 1,
        "the reader raced the writer ({} changes seen)",
        tally.changes
    );
    // Snapshots discarded because a write overlapped them are never dropped: `Drop` runs once
    // per returned value (the writer's closure only borrows).
    assert_eq!(DROPS.load(Ordering::Relaxed), READS);
    drop(shared);
    assert!(kf.is_clean(b'd'));
}
