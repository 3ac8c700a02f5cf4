//! Child process of the async-wait tests (`tests/async_wait.rs`). `smo-async ROLE ARGS...`;
//! prints one line per step. The async roles poll with a minimal std-only executor
//! ([`block_on`]): the futures are runtime-agnostic, and the tests drive them under tokio too.
//! The objects are `tests::structs::Counter`s.
//!
//! Roles:
//! - `await PATH ID`: prints `waiting`, awaits `changed(version)`, prints `armed` once the
//!   future is pending (registered), then `ok VERSION N` when it completes.
//! - `idle PATH ID MS`: awaits `changed(version)` with no writer for MS milliseconds; prints
//!   `idle CPU_US HELPERS WATCHED PENDING`: this process's CPU time (user + system, all threads)
//!   from the first pending poll to the deadline, the helper threads and watched words then,
//!   and whether the future was still pending.
//! - `write PATH ID VALUE`: writes `n = VALUE` once; prints `ok VERSION`.
//! - `write-each COUNT PATH...`: accesses COUNT objects (object `i` under `PATH[i / 50]`, id
//!   `'A' + i % 50`), prints `ready`, waits for a stdin line, writes `n = 1000 + i` into each
//!   once (in a shuffled order), prints `done`.
//! - `pong PATH ROUNDS MODE`: objects `A` and `B` under PATH, both at version `base`; for
//!   each round `i` from `base`, waits until `A` reaches version `i + 1` (MODE `block`: `wait_for_update`; `spin`: spinning on
//!   `version()`, so that the answer lands within a microsecond or so), then writes `B`.
//!   Prints `ready`, then `done`.
//! - `burst PATH ID N`: prints `ready`, waits for a stdin line, writes N times flat out, prints
//!   `done`.
//! - `no-thread PATH ID` (with `SMOBJECT_ASYNC_FALLBACK=1`: one word per helper): a future
//!   that must move to a new slot when no helper thread can start. Polls `changed(version)`
//!   once, prints `armed` once helper 0 sleeps on the object's word, and waits for a stdin line
//!   (meanwhile the test leaves the object's `seq` odd, with a writer killed mid-publish).
//!   Then it caps its address space (`RLIMIT_AS`) so that no thread can start, and polls again:
//!   the future leaves its slot, which needs a new helper. Prints `refused KIND MESSAGE` (or
//!   `err ...`); then, once no helper sleeps on a word of a SysV segment (`err` if one still
//!   does after 1 s), `left MS ms, watched W waiting N` with the reactor's counts; then `armed`
//!   for a new wait with the cap lifted, and `ok VERSION HELPERS` when the test's write
//!   completes it.
//! - `ping PATH ROUNDS`: the async side of a ping-pong (for the fallback): for each round `i`
//!   writes `A` and awaits `B.changed(i)` (5 s at most); then checks that a dropped pending
//!   future leaves no watched word; prints `ok ROUNDS HELPERS FUTEX_WAITV`.
//! - `leak-reuse PATH`: creates `a` under PATH, leaves a pending `changed()` on it leaked
//!   (`mem::forget`) while its helper sleeps on the word, drops `a`, then creates `b` (whose
//!   mapping the kernel tends to place at `a`'s old address) and awaits `b.changed(0)` while a
//!   thread writes `b` 50 ms later. Prints `ok SAME WATCHED WAITING WOKEN`: whether `b`'s data
//!   sits at `a`'s old address, the reactor's counts right after `a` was dropped, and whether
//!   the wait on `b` completed within 5 s.
//! - `stats-fork PATH ID`: calls `async_stats()` (and nothing else async), forks; the child
//!   polls `changed(version)` once and exits 0 if it is pending (async waits work in it), 1 if
//!   it failed. Prints `child EXIT_CODE`.

use std::future::Future;
use std::io::BufRead;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use smobject::Shared;
use tests::structs::Counter;

/// Wakes the thread that polls.
struct Unpark(std::thread::Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

/// Polls `f` on this thread, parking in between, until it completes or `deadline` passes
/// (`None`: then `f` is dropped, which cancels it). `pending` runs once, after the first poll
/// that returned `Pending`.
fn block_on<F: Future>(
    f: F,
    deadline: Option<Instant>,
    mut pending: impl FnMut(),
) -> Option<F::Output> {
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut f = std::pin::pin!(f);
    let mut first = true;
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return Some(v);
        }
        if first {
            first = false;
            pending();
        }
        match deadline {
            None => std::thread::park(),
            Some(d) => {
                let now = Instant::now();
                if now >= d {
                    return None;
                }
                std::thread::park_timeout(d - now);
            }
        }
    }
}

fn open(path: &str, id: u8) -> Shared<Counter> {
    Shared::<Counter>::access_at(path, id).unwrap_or_else(|e| {
        println!("err {e}");
        std::process::exit(1)
    })
}

fn id_arg(s: &str) -> u8 {
    s.as_bytes()[0]
}

fn num<T: std::str::FromStr>(a: &[String], i: usize) -> T {
    a.get(i)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("argument {i} missing or bad in {a:?}"))
}

fn stdin_line() {
    let mut line = String::new();
    let _ = std::io::stdin().lock().read_line(&mut line);
}

/// CPU time of this process (all threads), user + system, in microseconds.
fn cpu_us() -> u64 {
    let mut ru = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: `ru` is writable storage for one `rusage`, which getrusage fills.
    let r = unsafe { libc::getrusage(libc::RUSAGE_SELF, ru.as_mut_ptr()) };
    assert_eq!(r, 0, "getrusage: {}", std::io::Error::last_os_error());
    // SAFETY: zero-initialised and filled by getrusage.
    let ru = unsafe { ru.assume_init() };
    let us = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    us(ru.ru_utime) + us(ru.ru_stime)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let role = args.first().map_or("", String::as_str);
    let code = match role {
        "await" => {
            let obj = open(&args[1], id_arg(&args[2]));
            let v = obj.version();
            println!("waiting");
            let r = block_on(obj.changed(v), None, || println!("armed"));
            match r {
                Some(Ok(v)) => println!("ok {v} {}", obj.read().n),
                Some(Err(e)) => println!("err {e}"),
                None => unreachable!("no deadline"),
            }
            0
        }
        "idle" => {
            let obj = open(&args[1], id_arg(&args[2]));
            let ms: u64 = num(&args, 3);
            let v = obj.version();
            let mut start = 0;
            let deadline = Instant::now() + Duration::from_millis(ms);
            let done = block_on(obj.changed(v), Some(deadline), || start = cpu_us());
            let used = cpu_us() - start;
            let s = smobject::async_stats();
            println!("idle {used} {} {} {}", s.helpers, s.watched, done.is_none());
            0
        }
        "write" => {
            let obj = open(&args[1], id_arg(&args[2]));
            let value: u64 = num(&args, 3);
            obj.write(|c| c.n = value);
            println!("ok {}", obj.version());
            0
        }
        "write-each" => {
            let count: usize = num(&args, 1);
            let objs: Vec<Shared<Counter>> = (0..count)
                .map(|i| open(&args[2 + i / 50], b'A' + (i % 50) as u8))
                .collect();
            println!("ready");
            stdin_line();
            // A fixed shuffle (a stride coprime with the count): not the order of registration.
            let stride = (count / 3..count)
                .find(|s| gcd(*s, count) == 1)
                .unwrap_or(1);
            for k in 0..count {
                let i = (k * stride) % count;
                objs[i].write(|c| c.n = 1000 + i as u64);
                if k % 7 == 0 {
                    std::thread::sleep(Duration::from_micros(300));
                }
            }
            println!("done");
            0
        }
        "pong" => pong(
            &args[1],
            num(&args, 2),
            args.get(3).map(String::as_str) == Some("spin"),
        ),
        "burst" => {
            let obj = open(&args[1], id_arg(&args[2]));
            let n: u64 = num(&args, 3);
            println!("ready");
            stdin_line();
            for i in 1..=n {
                obj.write(|c| c.n = i);
            }
            println!("done");
            0
        }
        "ping" => ping(&args[1], num(&args, 2)),
        "no-thread" => no_thread(&args[1], id_arg(&args[2])),
        "leak-reuse" => leak_reuse(&args[1]),
        "stats-fork" => stats_fork(&args[1], id_arg(&args[2])),
        _ => {
            eprintln!("smo-async: unknown role {role:?}");
            2
        }
    };
    std::process::exit(code);
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

fn pong(path: &str, rounds: u64, spin: bool) -> i32 {
    let ao = open(path, b'A');
    let bo = open(path, b'B');
    // Rounds are counted from the versions at the start (both objects have the same).
    let base = bo.version();
    println!("ready");
    for i in base..base + rounds {
        if spin {
            let start = Instant::now();
            while ao.version() <= i {
                std::hint::spin_loop();
                if start.elapsed() > Duration::from_secs(5) {
                    println!("err round {i}: no ping within 5 s");
                    return 1;
                }
            }
        } else if let Err(e) = ao.wait_for_update(i, Some(Duration::from_secs(5))) {
            println!("err round {i}: {e}");
            return 1;
        }
        bo.write(|c| c.n = i + 1);
    }
    println!("done");
    0
}

fn ping(path: &str, rounds: u64) -> i32 {
    let ao = open(path, b'A');
    let bo = open(path, b'B');
    for i in 0..rounds {
        ao.write(|c| c.n = i + 1);
        let deadline = Instant::now() + Duration::from_secs(5);
        match block_on(bo.changed(i), Some(deadline), || {}) {
            Some(Ok(v)) if v == i + 1 => {}
            other => {
                println!("err round {i}: {other:?}");
                return 1;
            }
        }
    }
    // A pending future, dropped: no word stays watched.
    let soon = Instant::now() + Duration::from_millis(20);
    let watched_while_pending = std::cell::Cell::new(0);
    let r = block_on(bo.changed(bo.version()), Some(soon), || {
        watched_while_pending.set(smobject::async_stats().watched);
    });
    let s = smobject::async_stats();
    if r.is_some() || watched_while_pending.get() != 1 || s.watched != 0 || s.waiting != 0 {
        println!(
            "err cancel: completed {}, watched while pending {}, after drop {s:?}",
            r.is_some(),
            watched_while_pending.get()
        );
        return 1;
    }
    println!("ok {rounds} {} {}", s.helpers, s.futex_waitv);
    0
}

/// The `no-thread` role (see the crate doc).
fn no_thread(path: &str, id: u8) -> i32 {
    let obj = open(path, id);
    let v = obj.version();
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut f = std::pin::pin!(obj.changed(v));
    if !f.as_mut().poll(&mut cx).is_pending() {
        println!("err the first poll completed");
        return 1;
    }
    if !within(Duration::from_secs(5), || helpers_on_shared_words() == 1) {
        println!("err helper 0 never slept on the object's word");
        return 1;
    }
    println!("armed");
    stdin_line();
    let old = cap_address_space();
    let r = f.as_mut().poll(&mut cx);
    // SAFETY: `old` is a `rlimit` that getrlimit filled; setrlimit only reads it.
    let lifted = unsafe { libc::setrlimit(libc::RLIMIT_AS, &raw const old) };
    assert_eq!(lifted, 0, "setrlimit: {}", std::io::Error::last_os_error());
    match r {
        Poll::Ready(Err(e)) => println!("refused {:?} {e}", e.kind()),
        other => {
            println!("err the poll under the cap gave {other:?}");
            return 1;
        }
    }
    // The future left its slot: the helper that slept on the object's word must be told.
    let start = Instant::now();
    if !within(Duration::from_secs(1), || helpers_on_shared_words() == 0) {
        println!("err a helper still sleeps on a word of a SysV segment after 1 s");
        return 1;
    }
    let s = smobject::async_stats();
    println!(
        "left {} ms, watched {} waiting {}",
        start.elapsed().as_millis(),
        s.watched,
        s.waiting
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    match block_on(obj.changed(v), Some(deadline), || println!("armed")) {
        Some(Ok(v)) => println!("ok {v} {}", smobject::async_stats().helpers),
        other => println!("err the wait after the cap: {other:?}"),
    }
    0
}

/// Polls `cond` every millisecond until it holds (`true`) or `d` passes (`false`).
fn within(d: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if cond() {
            return true;
        }
        if start.elapsed() > d {
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// How many helper threads of this process sleep in `FUTEX_WAIT` (syscall 202) on a word inside
/// a SysV shared-memory mapping (an object's word, not a helper's own control word).
fn helpers_on_shared_words() -> usize {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
    let sysv: Vec<(u64, u64)> = maps
        .lines()
        .filter(|l| l.contains("/SYSV"))
        .filter_map(|l| {
            let (a, b) = l.split_whitespace().next()?.split_once('-')?;
            Some((
                u64::from_str_radix(a, 16).ok()?,
                u64::from_str_radix(b, 16).ok()?,
            ))
        })
        .collect();
    tests::wait_helper_syscalls()
        .into_iter()
        .flatten()
        .filter(|&(nr, addr, _)| nr == 202 && sysv.iter().any(|&(lo, hi)| (lo..hi).contains(&addr)))
        .count()
}

/// Caps this process's address space a little above its size now, so that no thread can start
/// (a thread's stack alone is 2 MiB); returns the limit before.
fn cap_address_space() -> libc::rlimit {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let vm_kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmSize:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmSize in /proc/self/status");
    let mut old = std::mem::MaybeUninit::<libc::rlimit>::zeroed();
    // SAFETY: `old` is writable storage for one `rlimit`, which getrlimit fills.
    let r = unsafe { libc::getrlimit(libc::RLIMIT_AS, old.as_mut_ptr()) };
    assert_eq!(r, 0, "getrlimit: {}", std::io::Error::last_os_error());
    // SAFETY: zero-initialised and filled by getrlimit.
    let old = unsafe { old.assume_init() };
    let cap = (vm_kib + 1024) * 1024;
    let new = libc::rlimit {
        rlim_cur: cap,
        rlim_max: old.rlim_max,
    };
    // SAFETY: `new` is a valid `rlimit`; setrlimit only reads it. Lowering the soft limit is
    // always allowed.
    let r = unsafe { libc::setrlimit(libc::RLIMIT_AS, &raw const new) };
    assert_eq!(r, 0, "setrlimit: {}", std::io::Error::last_os_error());
    old
}

/// The `leak-reuse` role.
fn leak_reuse(path: &str) -> i32 {
    let a = Shared::<Counter>::create_at(path, b'a').expect("create a");
    let a_data = a.raw().as_ptr() as usize;
    let mut leaked = Box::pin(a.changed(a.version()));
    let mut cx = Context::from_waker(Waker::noop());
    assert!(leaked.as_mut().poll(&mut cx).is_pending());
    // Let the helper go to sleep on `a`'s word.
    std::thread::sleep(Duration::from_millis(50));
    std::mem::forget(leaked);
    drop(a);
    let stats = smobject::async_stats();
    let b = Arc::new(Shared::<Counter>::create_at(path, b'b').expect("create b"));
    let same = b.raw().as_ptr() as usize == a_data;
    let writer = {
        let b = Arc::clone(&b);
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            b.write(|c| c.n = 1);
        })
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    let woken = matches!(block_on(b.changed(0), Some(deadline), || {}), Some(Ok(1)));
    writer.join().expect("the writer thread");
    println!("ok {same} {} {} {woken}", stats.watched, stats.waiting);
    0
}

/// The `stats-fork` role.
fn stats_fork(path: &str, id: u8) -> i32 {
    let obj = open(path, id);
    let _ = smobject::async_stats();
    // SAFETY: fork has no memory-safety preconditions; this process has one thread (no async
    // wait ran: `async_stats` starts none), so the child inherits no lock held by another.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
    if pid == 0 {
        let mut wait = obj.changed(obj.version());
        let mut cx = Context::from_waker(Waker::noop());
        let code = i32::from(!std::pin::Pin::new(&mut wait).poll(&mut cx).is_pending());
        // SAFETY: ends the child at once, running no destructor (the parent owns the
        // attachment count and its key file lock).
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    // SAFETY: `pid` is our child; `status` is a live, writable int.
    let waited = unsafe { libc::waitpid(pid, &raw mut status, 0) };
    assert_eq!(waited, pid, "waitpid: {}", std::io::Error::last_os_error());
    println!("child {}", libc::WEXITSTATUS(status));
    0
}
