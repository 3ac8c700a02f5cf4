//! Async waits (`Shared::changed().await`, feature `async`) under a current-thread tokio
//! runtime, against writers in other processes (`smo-async`): many objects at once, cancel,
//! time-outs, no CPU while idle, races between a write and the registration, killed waiters,
//! the fallback without `futex_waitv`.
//!
//! The tests of this file run one at a time (`serial`): the helper threads and their counts
//! (`smobject::async_stats`) belong to the whole process.

use std::future::Future;
use std::os::unix::process::ExitStatusExt;
use std::process::Command;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use smobject::{async_stats, DynObject, Shared};
use tests::structs::Counter;
use tests::{Helper, KeyFile, WAIT};

/// One test at a time, for the whole test (its checks of the process-wide counts after its
/// runtime is gone included): every test takes it first.
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Runs `f` on a current-thread tokio runtime (with timers). The caller holds [`serial`].
fn run<F: Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a tokio runtime")
        .block_on(f)
}

fn child(args: &[&str]) -> Helper {
    Helper::spawn_with(Command::new(env!("CARGO_BIN_EXE_smo-async")).args(args))
}

fn child_env(env: (&str, &str), args: &[&str]) -> Helper {
    Helper::spawn_with(
        Command::new(env!("CARGO_BIN_EXE_smo-async"))
            .args(args)
            .env(env.0, env.1),
    )
}

/// Whether a waiter is registered in the object's header (writers then make a futex wake).
fn sleepers(o: &Shared<Counter>) -> bool {
    smobject::inspect::read_header(o.raw().shmids().1)
        .unwrap()
        .sleepers
}

/// For each helper thread of this process that sleeps in `futex_waitv` (syscall 449): how many
/// words it sleeps on (its control word included, the call's second argument).
fn helpers_asleep_on() -> Vec<usize> {
    tests::wait_helper_syscalls()
        .into_iter()
        .flatten()
        .filter(|&(nr, _, _)| nr == 449)
        .map(|(_, _, words)| words as usize)
        .collect()
}

/// Waits (on the runtime's clock, so tasks keep running) until `cond` holds, at most 5 s.
async fn settle(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "not within 5 s: {what}"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// `count` Counters, 50 per key file (ids `'A'..`), each created here.
fn objects(name: &str, count: usize) -> (Vec<KeyFile>, Vec<Arc<Shared<Counter>>>) {
    let kfs: Vec<KeyFile> = (0..count.div_ceil(50))
        .map(|k| KeyFile::new(&format!("{name}{k}")))
        .collect();
    let objs = (0..count)
        .map(|i| {
            let (kf, id) = (&kfs[i / 50], b'A' + (i % 50) as u8);
            kf.key(id);
            Arc::new(Shared::<Counter>::create_at(kf.path(), id).unwrap())
        })
        .collect();
    (kfs, objs)
}

/// Awaits `changed(0)` on every object at once (one task each), lets another process write
/// each once, and checks every future completes with version 1 and that process's value.
/// Returns the helper threads started for them.
fn await_all_written_by_another_process(name: &str, count: usize) -> usize {
    let (kfs, objs) = objects(name, count);
    let mut args = vec!["write-each".to_owned(), count.to_string()];
    args.extend(kfs.iter().map(KeyFile::arg));
    let mut writer = child(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(writer.line(), "ready");
    let (helpers, before) = run(async {
        let before = async_stats();
        let mut set = tokio::task::JoinSet::new();
        for (i, o) in objs.iter().enumerate() {
            let o = Arc::clone(o);
            set.spawn(async move {
                let v = o.changed(0).await?;
                Ok::<_, smobject::Error>((i, v, o.read().n))
            });
        }
        settle("every future registered", || {
            async_stats().waiting == before.waiting + count
        })
        .await;
        let s = async_stats();
        assert_eq!(s.watched, before.watched + count, "one word per object");
        assert!(s.futex_waitv, "this kernel has futex_waitv: {s:?}");
        assert!(objs.iter().all(|o| sleepers(o)), "registered as waiters");
        let helpers = s.helpers;
        // Every word is in some helper's futex_waitv call, each with its control word.
        settle("the helpers sleep on every word", || {
            helpers_asleep_on().iter().map(|n| n - 1).sum::<usize>() == count
        })
        .await;
        writer.send("go");
        let mut done = vec![false; count];
        while let Some(r) = tokio::time::timeout(WAIT, set.join_next())
            .await
            .expect("every future completes")
        {
            let (i, v, n) = r.unwrap().unwrap();
            assert_eq!((v, n), (1, 1000 + i as u64), "object {i}");
            done[i] = true;
        }
        assert!(done.iter().all(|d| *d));
        (helpers, before)
    });
    assert_eq!(writer.line(), "done");
    assert!(writer.wait().success());
    let s = async_stats();
    assert_eq!((s.watched, s.waiting), (before.watched, before.waiting));
    drop(objs);
    for kf in &kfs {
        assert!((0..50).all(|i| kf.is_clean(b'A' + i)));
    }
    helpers
}

#[test]
fn a_hundred_objects_awaited_at_once_each_written_once_by_another_process() {
    let _one_at_a_time = serial();
    let helpers = await_all_written_by_another_process("async-100-", 100);
    // 100 words fit one futex_waitv call (127 besides the control word): one helper thread.
    assert_eq!(helpers, 1, "one helper for 100 objects");
}

#[test]
fn more_than_127_awaited_words_take_a_second_helper() {
    let _one_at_a_time = serial();
    let helpers = await_all_written_by_another_process("async-150-", 150);
    assert_eq!(helpers, 2, "127 words per helper");
}

#[test]
fn many_futures_on_one_object_share_one_watched_word() {
    let _one_at_a_time = serial();
    let kf = KeyFile::new("async-share");
    kf.key(b's');
    let o = Arc::new(Shared::<Counter>::create_at(kf.path(), b's').unwrap());
    run(async {
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..50 {
            let o = Arc::clone(&o);
            set.spawn(async move { o.changed(0).await });
        }
        settle("50 futures registered", || async_stats().waiting == 50).await;
        assert_eq!(async_stats().watched, 1);
        let mut w = child(&["write", &kf.arg(), "s", "9"]);
        assert_eq!(w.line(), "ok 1");
        let mut n = 0;
        while let Some(r) = tokio::time::timeout(WAIT, set.join_next()).await.unwrap() {
            assert_eq!(r.unwrap().unwrap(), 1);
            n += 1;
        }
        assert_eq!(n, 50);
        assert!(w.wait().success());
    });
    assert_eq!(async_stats().watched, 0);
    drop(o);
    assert!(kf.is_clean(b's'));
}

#[test]
fn a_dropped_future_leaves_nothing_watched_and_its_registration_clears_on_the_next_write() {
    let _one_at_a_time = serial();
    let kf = KeyFile::new("async-cancel");
    kf.key(b'c');
    let c = Shared::<Counter>::create_at(kf.path(), b'c').unwrap();
    run(async {
        let seen = c.version();
        let mut first = c.changed(seen);
        let mut second = c.changed(seen);
        // Polled until the time-out: pending, registered.
        assert!(tokio::time::timeout(Duration::from_millis(20), &mut first)
            .await
            .is_err());
        assert!(tokio::time::timeout(Duration::from_millis(20), &mut second)
            .await
            .is_err());
        let stats = async_stats();
        assert_eq!(
            (stats.watched, stats.waiting),
            (1, 2),
            "two futures, one word"
        );
        assert!(sleepers(&c));
        settle("the helper sleeps on the word", || {
            helpers_asleep_on().contains(&2)
        })
        .await;
        drop(first);
        assert_eq!((async_stats().watched, async_stats().waiting), (1, 1));
        drop(second);
        let stats = async_stats();
        assert_eq!((stats.watched, stats.waiting), (0, 0), "nothing registered");
        // The helper was told and sleeps on its control word alone.
        settle("the helper stops watching the word", || {
            helpers_asleep_on().iter().all(|n| *n == 1)
        })
        .await;
    });
    // The header registration is left as a timed-out blocking waiter leaves it: the next
    // publish (by another process) clears it, and later writes make no futex call for it.
    assert!(sleepers(&c));
    let mut w = child(&["write", &kf.arg(), "c", "1"]);
    assert_eq!(w.line(), "ok 1");
    assert!(w.wait().success());
    assert!(!sleepers(&c), "the next write cleared the registration");
    c.write(|c| c.n = 2);
    assert!(!sleepers(&c));
    // The object still wakes futures made afterwards.
    run(async {
        let mut w = child(&["write", &kf.arg(), "c", "3"]);
        let v = tokio::time::timeout(WAIT, c.changed(2))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(v, 3);
        assert_eq!(w.line(), "ok 3");
        assert!(w.wait().success());
    });
    drop(c);
    assert!(kf.is_clean(b'c'));
}

#[test]
fn tokio_time_timeout_bounds_a_wait_and_cancels_it() {
    let _one_at_a_time = serial();
    let kf = KeyFile::new("async-timeout");
    kf.key(b't');
    let o = Shared::<Counter>::create_at(kf.path(), b't').unwrap();
    run(async {
        // Nobody writes: the time-out ends the wait, which leaves nothing registered.
        let start = Instant::now();
        let r = tokio::time::timeout(Duration::from_millis(100), o.changed(0)).await;
        let took = start.elapsed();
        assert!(r.is_err(), "no write, yet {r:?}");
        assert!(
            took >= Duration::from_millis(100) && took < Duration::from_secs(2),
            "{took:?}"
        );
        assert_eq!(async_stats().waiting, 0);
        // A write within the time-out completes the wait.
        let mut w = child(&["write", &kf.arg(), "t", "5"]);
        let r = tokio::time::timeout(WAIT, o.changed(0)).await;
        assert_eq!(r.expect("woken before the time-out").unwrap(), 1);
        assert_eq!(o.read().n, 5);
        assert!(w.wait().success());
        // A version already past `seen` completes at the first poll, registering nothing.
        let r = tokio::time::timeout(Duration::from_millis(1), o.changed(0)).await;
        assert_eq!(r.unwrap().unwrap(), 1);
        assert_eq!(async_stats().watched, 0);
    });
    drop(o);
    assert!(kf.is_clean(b't'));
}

#[test]
fn an_idle_process_awaiting_uses_no_measurable_cpu() {
    let _one_at_a_time = serial();
    let kf = KeyFile::new("async-idle");
    kf.key(b'i');
    let o = Shared::<Counter>::create_at(kf.path(), b'i').unwrap();
    let mut idle = child(&["idle", &kf.arg(), "i", "1000"]);
    let line = idle.line();
    eprintln!("idle child: {line}");
    let f: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(f[0], "idle", "{line}");
    let (cpu_us, helpers, watched, pending): (u64, u64, u64, bool) = (
        f[1].parse().unwrap(),
        f[2].parse().unwrap(),
        f[3].parse().unwrap(),
        f[4].parse().unwrap(),
    );
    assert!(pending, "nobody wrote, yet it completed: {line}");
    assert_eq!(
        (helpers, watched),
        (1, 0),
        "one helper; the dropped future unwatched: {line}"
    );
    assert!(
        cpu_us < 20_000,
        "an idle await used {cpu_us} us of CPU in one second"
    );
    assert!(idle.wait().success());
    drop(o);
    assert!(kf.is_clean(b'i'));
}

#[test]
fn writes_racing_the_registration_are_never_lost() {
    const ROUNDS: u64 = 3000;
    const BURST: u64 = 200_000;
    let _one_at_a_time = serial();
    let kf = KeyFile::new("async-race");
    kf.key(b'A');
    kf.key(b'B');
    let a = Shared::<Counter>::create_at(kf.path(), b'A').unwrap();
    let b = Shared::<Counter>::create_at(kf.path(), b'B').unwrap();
    // Ping-pong: write A, await B; the other process answers each write of A by writing B,
    // sleeping on A (`block`) or spinning on it (`spin`, so that its write lands while this
    // future registers or the helper goes to sleep). A lost wake-up hangs a round.
    for mode in ["block", "spin"] {
        let base = a.version();
        assert_eq!(base, b.version());
        let mut pong = child(&["pong", &kf.arg(), &ROUNDS.to_string(), mode]);
        assert_eq!(pong.line(), "ready");
        run(async {
            for i in base..base + ROUNDS {
                a.write(|c| c.n = i + 1);
                let v = tokio::time::timeout(Duration::from_secs(5), b.changed(i))
                    .await
                    .unwrap_or_else(|_| panic!("{mode}: round {i} was never woken"))
                    .unwrap();
                assert_eq!(v, i + 1, "{mode}");
            }
        });
        assert_eq!(pong.line(), "done");
        assert!(pong.wait().success());
    }
    // A writer flat out: every await completes with a newer version, up to the last.
    let mut burst = child(&["burst", &kf.arg(), "B", &BURST.to_string()]);
    assert_eq!(burst.line(), "ready");
    let start = b.version();
    let awaits = run(async {
        burst.send("go");
        let (mut seen, mut awaits) = (start, 0u64);
        while seen < start + BURST {
            let v = tokio::time::timeout(Duration::from_secs(5), b.changed(seen))
                .await
                .unwrap_or_else(|_| panic!("stuck at version {seen}"))
                .unwrap();
            assert!(v > seen);
            seen = v;
            awaits += 1;
        }
        awaits
    });
    assert!(awaits > 0);
    assert_eq!(burst.line(), "done");
    assert!(burst.wait().success());
    assert_eq!(async_stats().watched, 0);
    drop((a, b));
    assert!(kf.is_clean(b'A') && kf.is_clean(b'B'));
}

#[test]
fn an_async_waiter_killed_at_any_step_costs_writers_nothing_after_one_write() {
    let _one_at_a_time = serial();
    let kf = KeyFile::new("async-killed");
    kf.key(b'k');
    let c = Shared::<Counter>::create_at(kf.path(), b'k').unwrap();
    for (round, point) in ["async:registered", "async:armed", "asleep"]
        .iter()
        .enumerate()
    {
        // A live async waiter in another process, which the next write must wake.
        let mut live = child(&["await", &kf.arg(), "k"]);
        assert_eq!(live.line(), "waiting");
        assert_eq!(live.line(), "armed");
        // Another one dies at `point`.
        if *point == "asleep" {
            let mut dying = child(&["await", &kf.arg(), "k"]);
            assert_eq!(dying.line(), "waiting");
            assert_eq!(dying.line(), "armed");
            std::thread::sleep(Duration::from_millis(20));
            dying.kill();
        } else {
            let mut dying = child_env(("SMOBJECT_FAULT", point), &["await", &kf.arg(), "k"]);
            assert_eq!(dying.line(), "waiting");
            assert!(
                !dying.wait().success(),
                "{point}: the fault point was not reached"
            );
        }
        assert!(sleepers(&c), "{point}: waiters registered");
        c.write(|c| c.n = round as u64 + 10);
        let woke = live.try_line(Duration::from_secs(5));
        assert_eq!(
            woke.as_deref(),
            Some(format!("ok {} {}", c.version(), round + 10).as_str()),
            "{point}: the live waiter"
        );
        assert!(live.wait().success());
        assert!(
            !sleepers(&c),
            "{point}: writes still pay for the dead waiter"
        );
        c.write(|c| c.n += 100);
        assert!(!sleepers(&c));
    }
    drop(c);
    assert!(kf.is_clean(b'k'));
}

#[test]
fn the_fallback_without_futex_waitv_wakes_and_cancels() {
    const ROUNDS: u64 = 500;
    let _one_at_a_time = serial();
    let kf = KeyFile::new("async-fallback");
    kf.key(b'A');
    kf.key(b'B');
    let a = Shared::<Counter>::create_at(kf.path(), b'A').unwrap();
    let b = Shared::<Counter>::create_at(kf.path(), b'B').unwrap();
    // The child awaits B with its helper in fallback mode (plain FUTEX_WAIT, one word per
    // helper); this process answers with blocking waits.
    let mut ping = child_env(
        ("SMOBJECT_ASYNC_FALLBACK", "1"),
        &["ping", &kf.arg(), &ROUNDS.to_string()],
    );
    for i in 0..ROUNDS {
        a.wait_for_update(i, Some(Duration::from_secs(5)))
            .unwrap_or_else(|e| panic!("round {i}: {e}"));
        b.write(|c| c.n = i + 1);
    }
    let line = ping.line();
    assert_eq!(
        line,
        format!("ok {ROUNDS} 1 false"),
        "one helper, fallback mode"
    );
    assert!(ping.wait().success());
    drop((a, b));
    assert!(kf.is_clean(b'A') && kf.is_clean(b'B'));
}

#[test]
fn a_future_that_cannot_get_a_helper_thread_fails_and_its_old_slot_is_let_go() {
    let _one_at_a_time = serial();
    let kf = KeyFile::new("async-no-thread");
    kf.key(b'A');
    let a = Shared::<Counter>::create_at(kf.path(), b'A').unwrap();
    // The child's future sleeps in a slot (fallback mode: one helper per word, so moving to a
    // new slot needs a new helper).
    let mut waiter = child_env(
        ("SMOBJECT_ASYNC_FALLBACK", "1"),
        &["no-thread", &kf.arg(), "A"],
    );
    assert_eq!(waiter.line(), "armed");
    // A writer killed mid-publish leaves `seq` odd with the version unchanged and no wake:
    // the child's next poll must register at the new `seq`, in a new slot.
    let mut crashed = child_env(
        ("SMOBJECT_FAULT", "write:odd"),
        &["write", &kf.arg(), "A", "7"],
    );
    assert_eq!(crashed.wait().signal(), Some(libc::SIGKILL));
    assert_eq!(a.version(), 0);
    waiter.send("go");
    // Under the address-space cap, no helper thread can start: a typed error naming the key.
    let refused = waiter.line();
    assert!(
        refused.starts_with("refused Os ")
            && refused.contains("starting an async-wait helper thread")
            && refused.contains(&kf.arg()),
        "{refused}"
    );
    // The slot it left was let go: its helper stopped sleeping on the object's word at once,
    // not at its 5 s re-check (this failed when the error path dropped that helper's wake).
    // And nothing of the failed future stays registered.
    let left = waiter.line();
    assert!(
        left.starts_with("left ") && left.ends_with(" ms, watched 0 waiting 0"),
        "{left}"
    );
    // With the cap lifted the next wait reuses that helper and completes.
    assert_eq!(waiter.line(), "armed");
    a.write(|c| c.n = 8);
    // The write recovered the killed one first, which made a version of its own: the wait may
    // complete at either.
    let done = waiter.line();
    let (version, helpers) = done
        .strip_prefix("ok ")
        .and_then(|r| r.split_once(' '))
        .and_then(|(v, h)| Some((v.parse::<u64>().ok()?, h.parse::<usize>().ok()?)))
        .unwrap_or_else(|| panic!("the wait after the cap: {done}"));
    assert!((1..=a.version()).contains(&version), "{done}");
    assert_eq!(helpers, 1, "the helper was reused: {done}");
    assert!(waiter.wait().success());
    drop(a);
    assert!(kf.is_clean(b'A'));
}

#[test]
fn dyn_object_changed_and_updates() {
    let _one_at_a_time = serial();
    let kf = KeyFile::new("async-dyn");
    kf.key(b'd');
    let typed = Shared::<Counter>::create_at(kf.path(), b'd').unwrap();
    let o = DynObject::access_at(kf.path(), b'd').unwrap();
    run(async {
        let mut updates = o.updates();
        assert_eq!(updates.seen(), 0);
        let mut w = child(&["write", &kf.arg(), "d", "4"]);
        let v = tokio::time::timeout(WAIT, o.changed(0))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(v, 1);
        assert_eq!(o.read().get("n").unwrap().to_string(), "4");
        assert!(w.wait().success());
        assert_eq!(
            tokio::time::timeout(WAIT, updates.next())
                .await
                .unwrap()
                .unwrap(),
            1
        );
        // A `next()` dropped before completing changes nothing.
        assert!(
            tokio::time::timeout(Duration::from_millis(10), updates.next())
                .await
                .is_err()
        );
        assert_eq!(updates.seen(), 1);
        let mut w = child(&["write", &kf.arg(), "d", "5"]);
        assert_eq!(
            tokio::time::timeout(WAIT, updates.next())
                .await
                .unwrap()
                .unwrap(),
            2
        );
        assert!(w.wait().success());
        // The typed handle's `updates()` starts at the current version.
        let t = typed.updates();
        assert_eq!(t.seen(), 2);
    });
    assert_eq!(async_stats().waiting, 0);
    drop((typed, o));
    assert!(kf.is_clean(b'd'));
}

/// `Updates` as a `futures_core::Stream` (feature `stream`), polled through the trait: each
/// item is the next version written by another process; a wait pending between polls is kept
/// (and counted once), replaced by a `next()`, and cancelled by dropping the stream.
#[test]
fn updates_is_a_stream_whose_pending_wait_is_kept_replaced_and_cancelled() {
    use futures_core::{FusedStream, Stream};
    use std::pin::Pin;
    /// The next item, through the trait alone (as `StreamExt::next` polls it).
    fn stream_next<S: Stream + Unpin>(s: &mut S) -> impl Future<Output = Option<S::Item>> + '_ {
        std::future::poll_fn(move |cx| Pin::new(&mut *s).poll_next(cx))
    }
    /// No item within 10 ms (the poll is then dropped by the time-out).
    async fn still_pending<S: Stream + Unpin>(s: &mut S) -> bool {
        tokio::time::timeout(Duration::from_millis(10), stream_next(s))
            .await
            .is_err()
    }
    let _one_at_a_time = serial();
    let kf = KeyFile::new("async-stream");
    kf.key(b's');
    let o = Shared::<Counter>::create_at(kf.path(), b's').unwrap();
    run(async {
        let mut u = o.updates();
        let mut w = child(&["write", &kf.arg(), "s", "4"]);
        let v = tokio::time::timeout(WAIT, stream_next(&mut u))
            .await
            .unwrap();
        assert!(matches!(v, Some(Ok(1))), "{v:?}");
        assert!(w.wait().success());
        // Pending when the time-out drops the poll: the stream keeps its wait, registered once.
        assert!(still_pending(&mut u).await);
        assert_eq!(async_stats().waiting, 1);
        assert!(still_pending(&mut u).await);
        assert_eq!(
            async_stats().waiting,
            1,
            "a second poll registers no second wait"
        );
        let mut w = child(&["write", &kf.arg(), "s", "5"]);
        let v = tokio::time::timeout(WAIT, stream_next(&mut u))
            .await
            .unwrap();
        assert!(matches!(v, Some(Ok(2))), "{v:?}");
        assert!(w.wait().success());
        assert_eq!(async_stats().waiting, 0);
        assert!(!u.is_terminated());
        assert_eq!(u.seen(), 2);
        // `next()` replaces a kept wait: when it times out, nothing is left waiting.
        assert!(still_pending(&mut u).await);
        assert_eq!(async_stats().waiting, 1);
        assert!(tokio::time::timeout(Duration::from_millis(10), u.next())
            .await
            .is_err());
        assert_eq!(async_stats().waiting, 0);
        // Dropping the stream cancels its kept wait.
        assert!(still_pending(&mut u).await);
        assert_eq!(async_stats().waiting, 1);
        drop(u);
        assert_eq!(async_stats().waiting, 0);
        assert_eq!(async_stats().watched, 0);
    });
    drop(o);
    assert!(kf.is_clean(b's'));
}

/// A child forked after this process used async waits (whose helper threads the child does not
/// have) gets a clear error from `changed()`, and `Updates` as a stream yields that error once
/// and then ends, so a loop over it that skips errors cannot spin.
#[test]
fn a_leaked_future_on_a_dropped_object_does_not_capture_waits_on_a_new_one() {
    // In a child: this process's reactor is shared by every test. The child leaks a pending
    // future on `a`, drops `a`, and awaits a new object `b`, which the kernel maps where `a`
    // was. The leaked future's slot used to stay, keyed by that address and version 0: `b`'s
    // future joined it, its helper slept on `a`'s (gone) futex, and `b`'s write never woke it.
    let _one_at_a_time = serial();
    let kf = KeyFile::new("async-leak-reuse");
    kf.key(b'a');
    kf.key(b'b');
    for mode in [None, Some(("SMOBJECT_ASYNC_FALLBACK", "1"))] {
        let mut c = match mode {
            None => child(&["leak-reuse", &kf.arg()]),
            Some(env) => child_env(env, &["leak-reuse", &kf.arg()]),
        };
        let line = c.line();
        assert!(c.wait().success(), "{line}");
        let f: Vec<&str> = line.split(' ').collect();
        assert_eq!(f.len(), 5, "{line}");
        assert_eq!(f[0], "ok", "{line}");
        // Dropping `a` forgot the leaked future's slot at once.
        assert_eq!(
            (f[2], f[3]),
            ("0", "0"),
            "watched, waiting after the drop: {line}"
        );
        assert_eq!(
            f[4], "true",
            "the wait on `b` was woken by its write ({mode:?}): {line}"
        );
        if f[1] != "true" {
            println!("note: `b` was not mapped at `a`'s old address this time ({mode:?})");
        }
        assert!(kf.is_clean(b'a') && kf.is_clean(b'b'));
    }
}

#[test]
fn async_stats_alone_leaves_async_waits_usable_in_a_forked_child() {
    let _one_at_a_time = serial();
    let kf = KeyFile::new("async-stats-fork");
    kf.key(b's');
    let o = Shared::<Counter>::create_at(kf.path(), b's').unwrap();
    // In a child process: this test process has used async waits already.
    let mut c = child(&["stats-fork", &kf.arg(), "s"]);
    assert_eq!(c.line(), "child 0", "the forked child's wait was refused");
    assert!(c.wait().success());
    drop(o);
    assert!(kf.is_clean(b's'));
}

#[test]
fn after_a_fork_the_child_gets_an_error_and_the_stream_ends() {
    use futures_core::{FusedStream, Stream};
    use std::pin::Pin;
    use std::task::{Context, Poll, Waker};

    /// The child's checks: 0 when all hold, else the number of the first that failed.
    fn in_child(o: &Shared<Counter>) -> i32 {
        let mut cx = Context::from_waker(Waker::noop());
        let mut wait = o.changed(1);
        let Poll::Ready(Err(e)) = Pin::new(&mut wait).poll(&mut cx) else {
            return 1;
        };
        if e.kind() != smobject::ErrorKind::Os || !e.to_string().contains("forked") {
            return 2;
        }
        let mut u = o.updates();
        if !matches!(
            Pin::new(&mut u).poll_next(&mut cx),
            Poll::Ready(Some(Err(_)))
        ) {
            return 3;
        }
        if !u.is_terminated() || !matches!(Pin::new(&mut u).poll_next(&mut cx), Poll::Ready(None)) {
            return 4;
        }
        0
    }

    let _one_at_a_time = serial();
    let kf = KeyFile::new("async-fork");
    kf.key(b'f');
    let o = Shared::<Counter>::create_at(kf.path(), b'f').unwrap();
    // This process uses async waits: a wait that times out starts the helper.
    run(async {
        assert!(
            tokio::time::timeout(Duration::from_millis(10), o.changed(0))
                .await
                .is_err()
        );
    });
    assert!(async_stats().helpers >= 1);
    // SAFETY: fork has no memory-safety preconditions; the child of this multi-threaded process
    // only runs `in_child` (which takes no lock another thread may hold: the reactor refuses
    // before locking, and glibc's malloc is reset for the child by fork), then `_exit`, which
    // runs no destructor and no atexit handler.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
    if pid == 0 {
        let code =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| in_child(&o))).unwrap_or(100);
        // SAFETY: ends the child at once, as the comment on `fork` requires.
        unsafe { libc::_exit(code) };
    }
    // Reaped with a deadline: a child stuck after the fork (a lock held by another thread at
    // the fork, on a failure path) is killed, and the test fails instead of hanging.
    let mut status = 0;
    let start = Instant::now();
    loop {
        // SAFETY: `pid` is our child; `status` is a live, writable int.
        let waited = unsafe { libc::waitpid(pid, &raw mut status, libc::WNOHANG) };
        if waited == pid {
            break;
        }
        assert_eq!(waited, 0, "waitpid: {}", std::io::Error::last_os_error());
        if start.elapsed() > WAIT {
            // SAFETY: kill takes no pointers; `pid` is our unreaped child.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            // SAFETY: as above.
            unsafe { libc::waitpid(pid, &raw mut status, 0) };
            panic!("the forked child did not exit within {WAIT:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "the forked child's check {} failed (status {status:#x})",
        libc::WEXITSTATUS(status)
    );
    // The parent's async waits still work.
    let mut w = child(&["write", &kf.arg(), "f", "7"]);
    run(async {
        assert_eq!(
            tokio::time::timeout(WAIT, o.changed(0))
                .await
                .unwrap()
                .unwrap(),
            1
        );
    });
    assert!(w.wait().success());
    drop(o);
    assert!(kf.is_clean(b'f'));
}

#[test]
fn the_futures_are_send_and_unpin() {
    fn check<F: Future + Send + Unpin>(_: &F) {}
    let _one_at_a_time = serial();
    let kf = KeyFile::new("async-send");
    kf.key(b'x');
    let o = Shared::<Counter>::create_at(kf.path(), b'x').unwrap();
    check(&o.changed(0));
    let mut u = o.updates();
    check(&u.next());
    drop(u);
    drop(o);
    assert!(kf.is_clean(b'x'));
}
