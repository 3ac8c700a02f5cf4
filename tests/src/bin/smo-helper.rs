//! Child process for the multi-process tests. `smo-helper [--as-nobody] ROLE ARGS...`
//!
//! Roles:
//! - `worker PATH ID SIZE`: obeys one command per stdin line, answers one line on stdout:
//!   `create`, `access`, `open` (`open_or_create`) -> `ok created|accessed` or `err KIND message`;
//!   `put OFFSET HEX` / `get OFFSET LEN` (raw bytes); `ctr` (count at offset 0); `nattch`;
//!   `brain` (checks the key still names our segment: `ok` or `split`); `drop`; `exit`.
//! - `churn PATH ID SEED`: `open_or_create` / touch / drop in a loop until killed; prints `split`
//!   and exits 3 if the key ever names another segment than the attached one, exits 4 on an
//!   unexpected error.
//! - `squat PATH ID SIZE`: creates both segments with plain `shmget(IPC_CREAT, 0666)`, as a
//!   careless or hostile program would, and exits.
//! - `legacy-create PATH ID SIZE STATE`: creates both segments raw with an all-zero (or
//!   `STATE`) header and nobody attached: what a creator killed mid-initialisation leaves.
//! - `t-*`: typed roles on the structs of `tests::structs`, see the `typed` module (e.g.
//!   `t-tele-writer PATH ID`: a flat-out writer of a `Telemetry` whose fields are all equal).
//! - `ns-*`: scenarios run inside private IPC and PID namespaces (`unshare`), where sysctls
//!   can be lowered and the leak check is exact; see the `namespaced` module.
#![allow(clippy::missing_panics_doc)]

use std::io::{BufRead, Write};
use std::time::Duration;

use smobject::{Key, Layout, Options, RawObject};

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--as-nobody") {
        args.remove(0);
        drop_privileges();
    }
    let role = args.first().cloned().unwrap_or_default();
    let code = match role.as_str() {
        "worker" => worker(&args[1..]),
        "churn" => churn(&args[1..]),
        "squat" => squat(&args[1..]),
        "legacy-create" => legacy_create(&args[1..]),
        "ns-limits" => namespaced::limits(&args[1..]),
        "ns-pid-reuse" => namespaced::pid_reuse(&args[1..]),
        "ns-exhaust" => namespaced::exhaust(&args[1..]),
        role if role.starts_with("t-") => typed::run(role, &args[1..]),
        _ => {
            eprintln!("smo-helper: unknown role {role:?}");
            2
        }
    };
    std::process::exit(code);
}

fn drop_privileges() {
    // SAFETY: a null list with length 0 is valid for setgroups; called before any thread.
    let groups = unsafe { libc::setgroups(0, std::ptr::null()) };
    // SAFETY: plain syscall, no pointers.
    let gid = unsafe { libc::setgid(65534) };
    // SAFETY: plain syscall, no pointers.
    let uid = unsafe { libc::setuid(65534) };
    assert!(
        groups == 0 && gid == 0 && uid == 0,
        "dropping privileges failed: {}",
        std::io::Error::last_os_error()
    );
}

fn key_args(args: &[String]) -> (Key, usize) {
    let id = args[1].as_bytes()[0];
    let key = Key::from_path(&args[0], id).expect("key");
    let size = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(64);
    (key, size)
}

fn kind(e: &smobject::Error) -> String {
    format!("err {:?} {}", e.kind(), e)
}

fn worker(args: &[String]) -> i32 {
    let (key, size) = key_args(args);
    let opts = Options::new();
    let layout = Layout::untyped(size);
    let mut obj: Option<RawObject> = None;
    let stdin = std::io::stdin();
    let mut out = std::io::stdout();
    for line in stdin.lock().lines() {
        let Ok(line) = line else { break };
        let words: Vec<&str> = line.split_whitespace().collect();
        let reply = match words.as_slice() {
            ["create" | "create-660" | "access" | "open" | "access-allow", ..] => {
                let r = match words[0] {
                    "create" => RawObject::create(&key, layout.clone(), &opts),
                    "create-660" => {
                        RawObject::create(&key, layout.clone(), &Options::new().mode(0o660))
                    }
                    "access" => RawObject::access(&key, layout.clone(), &opts),
                    "access-allow" => {
                        let uid = words.get(1).and_then(|u| u.parse().ok()).unwrap_or(0);
                        RawObject::access(&key, layout.clone(), &Options::new().allow_uid(uid))
                    }
                    _ => RawObject::open_or_create(&key, layout.clone(), &opts),
                };
                match r {
                    Ok(o) => {
                        let s = if o.created() {
                            "ok created"
                        } else {
                            "ok accessed"
                        };
                        obj = Some(o);
                        s.to_owned()
                    }
                    Err(e) => kind(&e),
                }
            }
            ["put", off, hex] => with(obj.as_ref(), |o| {
                let off: usize = off.parse().unwrap();
                let bytes = from_hex(hex);
                assert!(off + bytes.len() <= o.len());
                // SAFETY: in bounds (asserted); tests coordinate writers by protocol.
                unsafe {
                    std::ptr::copy_nonoverlapping(
                        bytes.as_ptr(),
                        o.as_ptr().wrapping_add(off),
                        bytes.len(),
                    );
                };
                "ok".to_owned()
            }),
            ["get", off, len] => with(obj.as_ref(), |o| {
                let (off, len): (usize, usize) = (off.parse().unwrap(), len.parse().unwrap());
                assert!(off + len <= o.len());
                let mut buf = vec![0u8; len];
                // SAFETY: in bounds (asserted); tests coordinate writers by protocol.
                unsafe {
                    std::ptr::copy_nonoverlapping(
                        o.as_ptr().wrapping_add(off),
                        buf.as_mut_ptr(),
                        len,
                    );
                };
                format!("ok {}", to_hex(&buf))
            }),
            ["ctr"] => with(obj.as_ref(), |o| format!("ok {}", o.mem_ctr())),
            ["nattch"] => with(obj.as_ref(), |o| format!("ok {}", o.attached().unwrap())),
            ["brain"] => with(obj.as_ref(), |o| {
                if same_segment(&key, o) {
                    "ok".into()
                } else {
                    "split".into()
                }
            }),
            ["drop"] => {
                obj = None;
                "ok".to_owned()
            }
            ["exit"] => return 0,
            // Exit without running destructors, the handle still attached.
            ["quit-hard"] => std::process::exit(0),
            _ => format!("err Usage {line:?}"),
        };
        if writeln!(out, "{reply}").and_then(|()| out.flush()).is_err() {
            break;
        }
    }
    0
}

fn with(obj: Option<&RawObject>, f: impl FnOnce(&RawObject) -> String) -> String {
    obj.map_or_else(|| "err NotAttached".to_owned(), f)
}

/// Whether `shmget(key)` still names the data segment `o` is attached to.
fn same_segment(key: &Key, o: &RawObject) -> bool {
    // SAFETY: shmget takes no pointers.
    let id = unsafe { libc::shmget(key.raw(), 0, 0) };
    id == o.shmids().0
}

fn churn(args: &[String]) -> i32 {
    let (key, _) = key_args(args);
    let mut seed: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(1) | 1;
    let opts = Options::new().lock_timeout(Duration::from_secs(30));
    loop {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        match RawObject::open_or_create(&key, Layout::untyped(4096), &opts) {
            Ok(o) => {
                if !same_segment(&key, &o) {
                    println!("split");
                    return 3;
                }
                // SAFETY: the object is 4096 bytes; racing byte writes are fine for this test.
                unsafe {
                    o.as_ptr()
                        .wrapping_add((seed % 4096) as usize)
                        .write_volatile(seed as u8);
                };
                std::thread::sleep(Duration::from_micros(seed % 1500));
            }
            Err(e) => {
                println!("error {e}");
                return 4;
            }
        }
    }
}

fn raw_create(key: i32, size: usize, mode: i32) -> i32 {
    // SAFETY: shmget takes no pointers.
    let id = unsafe { libc::shmget(key, size, libc::IPC_CREAT | mode) };
    assert!(id >= 0, "shmget: {}", std::io::Error::last_os_error());
    id
}

fn squat(args: &[String]) -> i32 {
    let (key, size) = key_args(args);
    raw_create(key.raw(), size, 0o666);
    raw_create(key.counter().raw(), 4096, 0o666);
    println!("ok");
    0
}

fn legacy_create(args: &[String]) -> i32 {
    let (key, size) = key_args(args);
    let state: u32 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(0);
    raw_create(key.raw(), size, 0o600);
    let c = raw_create(key.counter().raw(), 4096 + size, 0o600);
    // SAFETY: attaching a segment we just created; null lets the kernel pick the address.
    let p = unsafe { libc::shmat(c, std::ptr::null(), 0) };
    assert!(p as isize != -1);
    // SAFETY: the segment is at least 4096 bytes; offset 4 is the state word.
    unsafe { p.cast::<u8>().wrapping_add(4).cast::<u32>().write(state) };
    // SAFETY: attached above, not used after.
    unsafe { libc::shmdt(p) };
    println!("ok");
    0
}

fn to_hex(b: &[u8]) -> String {
    use std::fmt::Write as _;
    b.iter().fold(String::new(), |mut s, x| {
        let _ = write!(s, "{x:02x}");
        s
    })
}

fn from_hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// Roles on typed objects (`Shared<T>`). Each takes `PATH ID` first.
mod typed {
    use std::io::BufRead;
    use std::time::{Duration, Instant};

    use smobject::Shared;
    use tests::structs::{v2, Big, Counter, Telemetry, Words};
    use tests::Tally;

    fn arg<T: std::str::FromStr>(args: &[String], i: usize) -> T {
        args.get(i)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("argument {i} missing or bad: {args:?}"))
    }

    fn id(args: &[String]) -> u8 {
        args[1].as_bytes()[0]
    }

    fn wait_stdin_line() {
        let mut l = String::new();
        let _ = std::io::stdin().lock().read_line(&mut l);
    }

    fn report<T>(r: smobject::Result<T>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(e) => {
                println!("err {:?} {e}", e.kind());
                None
            }
        }
    }

    #[allow(clippy::too_many_lines)] // one arm per role, each short
    pub(super) fn run(role: &str, a: &[String]) -> i32 {
        let path = a[0].as_str();
        match role {
            // Creates a Telemetry, writes known values, says `ok`, holds it until a stdin line.
            "t-produce" => {
                let Some(p) = report(Shared::<Telemetry>::create_at(path, id(a))) else {
                    return 1;
                };
                p.write(|t| {
                    t.seq = 42;
                    t.pos = [1.5, -2.5, 3.25];
                    t.status = 7;
                });
                println!("ok");
                wait_stdin_line();
            }
            // Accesses a Telemetry and prints it.
            "t-consume" => {
                let Some(c) = report(Shared::<Telemetry>::access_at(path, id(a))) else {
                    return 0;
                };
                let t = c.read();
                println!("ok {} {:?} {} v{}", t.seq, t.pos, t.status, c.version());
            }
            // Accesses with the other build of Telemetry.
            "t-consume-v2" => {
                if let Some(c) = report(Shared::<v2::Telemetry>::access_at(path, id(a))) {
                    println!("ok {:?}", c.read());
                }
            }
            // Writes Words with all words equal to 1, 2, 3, ... flat out until killed (or N).
            "t-writer" => {
                let Some(w) = report(Shared::<Words>::open_or_create_at(path, id(a))) else {
                    return 1;
                };
                let n: u64 = a.get(2).and_then(|s| s.parse().ok()).unwrap_or(u64::MAX);
                println!("ok");
                for i in 1..=n {
                    w.write(|v| v.words = [i; 32]);
                }
            }
            // Creates a Telemetry and writes it flat out, every field equal to 1, 2, 3, ...
            // (`seq`, the three `pos`, `status` and `_pad`; the two `u32`s wrap) in each
            // write, until a line arrives on stdin; then prints `done N` (writes made).
            "t-tele-writer" => {
                let Some(w) = report(Shared::<Telemetry>::create_at(path, id(a))) else {
                    return 1;
                };
                let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
                let flag = std::sync::Arc::clone(&stop);
                std::thread::spawn(move || {
                    wait_stdin_line();
                    flag.store(true, std::sync::atomic::Ordering::Relaxed);
                });
                println!("ok");
                let mut i = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    i += 1;
                    #[allow(clippy::cast_precision_loss)] // exact below 2^53 writes
                    let x = i as f64;
                    w.write(|t| {
                        *t = Telemetry {
                            seq: i,
                            pos: [x; 3],
                            status: i as u32,
                            _pad: i as u32,
                        }
                    });
                }
                println!("done {i}");
            }
            // Reads Words N times; counts torn values and distinct versions.
            "t-reader" => {
                let Some(r) = report(Shared::<Words>::access_at(path, id(a))) else {
                    return 1;
                };
                let n: u64 = arg(a, 2);
                let mut t = Tally::starting_at(0);
                for _ in 0..n {
                    t.see(&r.read().words);
                }
                println!("ok {} {}", t.torn, t.changes);
            }
            // Increments Counter N times.
            "t-inc" => {
                let Some(c) = report(Shared::<Counter>::open_or_create_at(path, id(a))) else {
                    return 1;
                };
                println!("ok");
                wait_stdin_line();
                let n: u64 = arg(a, 2);
                for _ in 0..n {
                    c.write(|c| c.n += 1);
                }
                println!("done");
                wait_stdin_line();
            }
            // Takes the lock, half-writes Words with 0xdead, says `inside`, sleeps until killed.
            "t-die-in-write" => {
                let Some(w) = report(Shared::<Words>::access_at(path, id(a))) else {
                    return 1;
                };
                let mut g = match w.lock() {
                    Ok(g) => g,
                    Err(e) => {
                        println!("err {e}");
                        return 1;
                    }
                };
                g.words[..16].fill(0xdead);
                println!("inside");
                std::thread::sleep(Duration::from_secs(3600));
            }
            // Waits for a version > SEEN, at most MS milliseconds (0: no time-out).
            "t-wait" => {
                let Some(w) = report(Shared::<Counter>::access_at(path, id(a))) else {
                    return 1;
                };
                let seen: u64 = arg(a, 2);
                let ms: u64 = arg(a, 3);
                println!("waiting");
                let start = Instant::now();
                let timeout = (ms != 0).then(|| Duration::from_millis(ms));
                match w.wait_for_update(seen, timeout) {
                    Ok(v) => println!("ok {v} {} {}", w.read().n, start.elapsed().as_millis()),
                    Err(e) => println!("err {:?} {}", e.kind(), start.elapsed().as_millis()),
                }
            }
            // Back-to-back 1 MiB writes until killed.
            "t-big-writer" => {
                let Some(w) = report(Shared::<Big>::open_or_create_at(path, id(a))) else {
                    return 1;
                };
                println!("ok");
                for i in 1u64.. {
                    w.write(|b| b.words.fill(i));
                }
            }
            // Counts consistent 1 MiB snapshots for MS milliseconds.
            "t-big-reader" => {
                let Some(r) = report(Shared::<Big>::access_at(path, id(a))) else {
                    return 1;
                };
                let ms: u64 = arg(a, 2);
                let mut buf: Box<Big> = Box::new(zeroed());
                let mut t = Tally::starting_at(u64::MAX);
                let start = Instant::now();
                while start.elapsed() < Duration::from_millis(ms) {
                    r.read_into(&mut buf);
                    t.see(&buf.words);
                }
                println!("ok {} {} {}", t.snapshots, t.torn, t.changes);
            }
            // Scribbles random bytes over the live header (not the mutex) for MS milliseconds.
            "t-scribble" => return scribble(path, id(a), arg(a, 2)),
            // Attaches (prints `attached`), then reads and writes with time-outs for MS
            // milliseconds; counts successes and errors.
            "t-robust-rw" => {
                let Some(w) = report(Shared::<Words>::access_at(path, id(a))) else {
                    return 1;
                };
                println!("attached");
                let ms: u64 = arg(a, 2);
                let (mut reads, mut read_errs, mut writes, mut write_errs) =
                    (0u64, 0u64, 0u64, 0u64);
                let start = Instant::now();
                while start.elapsed() < Duration::from_millis(ms) {
                    match w.read_timeout(Duration::from_millis(20)) {
                        Ok(_) => reads += 1,
                        Err(_) => read_errs += 1,
                    }
                    match w.lock_timeout(Duration::from_millis(20)) {
                        Ok(mut g) => {
                            g.words[0] = g.words[0].wrapping_add(1);
                            writes += 1;
                        }
                        Err(_) => write_errs += 1,
                    }
                }
                println!("ok {reads} {read_errs} {writes} {write_errs}");
            }
            // Operations for the fault-point tests (SMOBJECT_FAULT set by the test).
            "t-fault" => return fault_op(path, id(a), &a[2..]),
            // Leaks a write guard of (path, ID), drops the handle, then maps marked pages where
            // its counter segment was (if that range was freed) and takes the robust lock of a
            // second object (ID2) on the same thread. Prints `kept|mapped intact|corrupted
            // SHMID`, then holds until a stdin line.
            "t-forget-guard" => return forget_guard(path, id(a), a[2].as_bytes()[0]),
            _ => {
                eprintln!("smo-helper: unknown role {role}");
                return 2;
            }
        }
        0
    }

    /// The address range `[start, end)` where this process maps SysV segment `shmid`, from
    /// `/proc/self/maps` (whose inode column is the shmid for SysV mappings).
    fn sysv_mapping(shmid: i32) -> Option<(usize, usize)> {
        let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
        maps.lines().find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() >= 6 && f[5].starts_with("/SYSV") && f[4] == shmid.to_string() {
                let (a, b) = f[0].split_once('-')?;
                Some((
                    usize::from_str_radix(a, 16).ok()?,
                    usize::from_str_radix(b, 16).ok()?,
                ))
            } else {
                None
            }
        })
    }

    fn forget_guard(path: &str, id: u8, id2: u8) -> i32 {
        const MARK: u8 = 0x5a;
        let Some(first) = report(Shared::<Counter>::create_at(path, id)) else {
            return 1;
        };
        let counter_shmid = first.raw().shmids().1;
        let Some((start, end)) = sysv_mapping(counter_shmid) else {
            println!("err no mapping of shmid {counter_shmid}");
            return 1;
        };
        let Ok(g) = first.lock() else {
            println!("err lock");
            return 1;
        };
        std::mem::forget(g);
        drop(first);
        let len = end - start;
        // SAFETY: MAP_FIXED_NOREPLACE never replaces an existing mapping: it fails with EEXIST
        // when any of the range is still mapped (the fix), and otherwise maps fresh anonymous
        // pages there that nothing else uses.
        let p = unsafe {
            libc::mmap(
                start as *mut libc::c_void,
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED_NOREPLACE,
                -1,
                0,
            )
        };
        let kept = p == libc::MAP_FAILED
            && std::io::Error::last_os_error().raw_os_error() == Some(libc::EEXIST);
        if !kept {
            if p as usize != start {
                println!("err mmap at {start:#x} gave {p:?}");
                return 1;
            }
            // SAFETY: `p` is our fresh private mapping of `len` bytes.
            unsafe { std::ptr::write_bytes(p.cast::<u8>(), MARK, len) };
        }
        // Another robust lock on this thread: glibc links it into the thread's robust list,
        // whose head is the leaked guard's mutex.
        let Some(second) = report(Shared::<Counter>::create_at(path, id2)) else {
            return 1;
        };
        second.write(|c| c.n = 1);
        drop(second);
        let intact = kept || {
            // SAFETY: `p` is our private mapping of `len` bytes, only ever written above.
            let bytes = unsafe { std::slice::from_raw_parts(p.cast::<u8>(), len) };
            bytes.iter().all(|&b| b == MARK)
        };
        println!(
            "{} {} {counter_shmid}",
            if kept { "kept" } else { "mapped" },
            if intact { "intact" } else { "corrupted" }
        );
        wait_stdin_line();
        0
    }

    fn fault_op(path: &str, id: u8, op: &[String]) -> i32 {
        let words = |r: smobject::Result<Shared<Words>>| report(r);
        match op.first().map(String::as_str) {
            Some("create") => {
                let Some(w) = words(Shared::<Words>::open_or_create_at(path, id)) else {
                    return 1;
                };
                println!("ok {}", w.created());
            }
            Some("access") => {
                let Some(w) = words(Shared::<Words>::access_at(path, id)) else {
                    return 1;
                };
                println!("ok {}", w.raw().mem_ctr());
                wait_stdin_line();
            }
            Some("write") => {
                let Some(w) = words(Shared::<Words>::access_at(path, id)) else {
                    return 1;
                };
                let n: u64 = arg(op, 1);
                w.write(|v| v.words = [n; 32]);
                println!("ok");
            }
            Some("lock") => {
                let Some(w) = words(Shared::<Words>::access_at(path, id)) else {
                    return 1;
                };
                let reply = match w.lock() {
                    Ok(g) => format!("ok {} {}", g.recovered(), g.words[0]),
                    Err(e) => format!("err {e}"),
                };
                println!("{reply}");
            }
            other => {
                eprintln!("smo-helper: unknown fault op {other:?}");
                return 2;
            }
        }
        0
    }

    fn scribble(path: &str, id: u8, ms: u64) -> i32 {
        let key = smobject::Key::from_path(path, id).unwrap();
        let pair = smobject::inspect::pair_by_key(key.raw())
            .unwrap()
            .expect("a live pair");
        let shmid = pair.counter.expect("counter segment").shmid;
        // SAFETY: attaching a live segment read-write; null lets the kernel pick the address.
        let p = unsafe { libc::shmat(shmid, std::ptr::null(), 0) }.cast::<u8>();
        assert!(
            p as isize != -1,
            "shmat: {}",
            std::io::Error::last_os_error()
        );
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut n = 0u64;
        let start = Instant::now();
        while start.elapsed() < Duration::from_millis(ms) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Any byte of the 1024-byte header except the mutex at 448..512, whose corruption
            // glibc's pthread code does not survive (see the reliability suite's notes).
            let off = (x % 960) as usize;
            let off = if off >= 448 { off + 64 } else { off };
            // SAFETY: off < 1024, inside the mapping; racing writes are the point of the test.
            unsafe { p.wrapping_add(off).write_volatile((x >> 32) as u8) };
            n += 1;
            if n % 64 == 0 {
                std::thread::sleep(Duration::from_micros(50));
            }
        }
        // SAFETY: attached above, not used after.
        unsafe { libc::shmdt(p.cast()) };
        println!("ok {n}");
        0
    }

    fn zeroed<T: smobject::__private::zerocopy::FromZeros>() -> T {
        T::new_zeroed()
    }
}

/// Scenarios for private namespaces (`unshare --ipc --pid --fork --mount-proc`). Each prints
/// `ok WHAT` lines, or `fail WHAT: why` and exits 1, and checks at the end that
/// `/proc/sysvipc/shm` (this namespace's segments only) is empty.
mod namespaced {
    use std::io::{BufRead, BufReader, Write};
    use std::process::{Command, Stdio};
    use std::time::Duration;

    use smobject::{ErrorKind, Key, Layout, Options, RawObject};

    fn set(name: &str, value: u64) {
        std::fs::write(format!("/proc/sys/kernel/{name}"), value.to_string())
            .unwrap_or_else(|e| panic!("cannot set kernel.{name} in this namespace: {e}"));
    }

    fn segments_here() -> usize {
        std::fs::read_to_string("/proc/sysvipc/shm").map_or(usize::MAX, |s| s.lines().count() - 1)
    }

    fn check(what: &str, ok: bool, why: impl std::fmt::Display) -> bool {
        if ok {
            println!("ok {what}");
        } else {
            println!("fail {what}: {why}");
        }
        ok
    }

    fn expect_limit(what: &str, r: smobject::Result<RawObject>, limit: &str, sysctl: &str) -> bool {
        match r {
            Err(e) => check(
                what,
                e.kind() == ErrorKind::Limit
                    && e.to_string().contains(limit)
                    && e.to_string().contains(sysctl),
                format!("{:?}: {e}", e.kind()),
            ),
            Ok(_) => check(what, false, "created despite the limit"),
        }
    }

    fn finish(all: bool) -> i32 {
        let left = segments_here();
        let clean = check(
            "no segment left in the namespace",
            left == 0,
            format!("{left} left"),
        );
        i32::from(!(all && clean))
    }

    pub(super) fn limits(args: &[String]) -> i32 {
        let path = &args[0];
        let key = |id: u8| Key::from_path(path, id).unwrap();
        let o = Options::new();
        let mut all = true;
        set("shmmni", 3);
        let first = RawObject::create(&key(b'a'), Layout::untyped(64), &o);
        all &= check("a pair fits in shmmni=3", first.is_ok(), "create failed");
        all &= expect_limit(
            "SHMMNI",
            RawObject::create(&key(b'b'), Layout::untyped(64), &o),
            "SHMMNI",
            "kernel.shmmni",
        );
        all &= check(
            "no half pair after SHMMNI",
            segments_here() == 2,
            segments_here(),
        );
        drop(first);
        set("shmmni", 4096);

        set("shmmax", 8192);
        all &= expect_limit(
            "SHMMAX (data)",
            RawObject::create(&key(b'c'), Layout::untyped(16384), &o),
            "SHMMAX",
            "kernel.shmmax",
        );
        // The data segment fits, the counter segment (header + backup) does not.
        all &= expect_limit(
            "SHMMAX (counter)",
            RawObject::create(&key(b'c'), Layout::untyped(7900), &o),
            "SHMMAX",
            "kernel.shmmax",
        );
        all &= check(
            "no half pair after SHMMAX",
            segments_here() == 0,
            segments_here(),
        );
        set("shmmax", 1 << 40);

        set("shmall", 8);
        all &= expect_limit(
            "SHMALL",
            RawObject::create(&key(b'd'), Layout::untyped(64 * 1024), &o),
            "SHMALL",
            "kernel.shmall",
        );
        all &= check(
            "no half pair after SHMALL",
            segments_here() == 0,
            segments_here(),
        );
        set("shmall", 1 << 40);
        finish(all)
    }

    pub(super) fn pid_reuse(args: &[String]) -> i32 {
        let path = &args[0];
        let key = Key::from_path(path, b'p').unwrap();
        let small = std::fs::write("/proc/sys/kernel/pid_max", "400").is_ok();
        println!("info pid_max lowered to 400: {small}");
        // After a wrap the kernel hands out pids from 300 (RESERVED_PIDS) up: move past it
        // first, so the creator's pid is one that can come round again.
        let mut past_reserved = !small;
        while !past_reserved {
            // SAFETY: single-threaded; the child only calls _exit.
            match unsafe { libc::fork() } {
                // SAFETY: async-signal-safe.
                0 => unsafe { libc::_exit(0) },
                -1 => break,
                pid => {
                    // SAFETY: reaping our own child.
                    unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
                    past_reserved = pid >= 310;
                }
            }
        }
        // A creator that dies: its pair is left stale with its pid in the header.
        let mut creator = Command::new(std::env::current_exe().unwrap())
            .args(["worker", path, "p", "64"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        writeln!(creator.stdin.as_mut().unwrap(), "create").unwrap();
        let mut line = String::new();
        BufReader::new(creator.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        let target = creator.id() as i32;
        let _ = creator.kill();
        let _ = creator.wait();
        let pair = smobject::inspect::pair_by_key(key.raw())
            .unwrap()
            .expect("the dead creator's pair");
        let shmid = pair.counter.expect("counter segment").shmid;
        let header = smobject::inspect::read_header(shmid).unwrap();
        let mut all = check(
            "header names the dead creator",
            header.creator_pid == target,
            header.creator_pid,
        );
        all &= check(
            "dead creator is not alive",
            !header.creator_alive(),
            "alive",
        );

        // Start times have clock-tick (10 ms) resolution: a pid reused within the same tick
        // as its previous owner started would look alike. That needs a full pid wrap inside
        // 10 ms, which this small namespace could do; real systems cannot. Let a tick pass.
        std::thread::sleep(Duration::from_millis(30));
        // Fork until the kernel hands the dead creator's pid to a new process.
        let mut forks = 0u64;
        let reused = loop {
            if forks > 200_000 {
                break None;
            }
            forks += 1;
            // SAFETY: this process is single-threaded; the child only calls async-signal-safe
            // functions (getpid, sleep, _exit).
            match unsafe { libc::fork() } {
                0 => {
                    // SAFETY: async-signal-safe.
                    if unsafe { libc::getpid() } == target {
                        // SAFETY: async-signal-safe.
                        unsafe { libc::sleep(30) };
                    }
                    // SAFETY: async-signal-safe; never returns.
                    unsafe { libc::_exit(0) }
                }
                -1 => break None,
                pid if pid == target => break Some(pid),
                pid => {
                    // SAFETY: reaping our own child; a null status pointer is allowed.
                    unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
                }
            }
        };
        all &= check(
            "the dead creator's pid was reused",
            reused.is_some(),
            format!("not within {forks} forks"),
        );
        if let Some(pid) = reused {
            // SAFETY: signal 0 only checks existence.
            let exists = unsafe { libc::kill(pid, 0) } == 0;
            all &= check("a process runs under the reused pid", exists, "none");
            let header = smobject::inspect::read_header(shmid).unwrap();
            all &= check(
                &format!("liveness still says dead after {forks} forks (pid plus start time)"),
                !header.creator_alive(),
                "a bare pid check would have said alive",
            );
            // SAFETY: signalling our own child.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            // SAFETY: reaping our own child; a null status pointer is allowed.
            unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
        }
        all &= check(
            "stale pair removed",
            smobject::remove_stale(path, b'p').unwrap_or(false),
            "not removed",
        );
        finish(all)
    }

    fn resident_pages() -> u64 {
        let out = Command::new("ipcs").args(["-m", "-u"]).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        text.lines()
            .find(|l| l.contains("pages resident"))
            .and_then(|l| l.split_whitespace().last())
            .and_then(|n| n.parse().ok())
            .unwrap_or(u64::MAX)
    }

    pub(super) fn exhaust(args: &[String]) -> i32 {
        let path = &args[0];
        let mut all = true;
        let ids: Vec<u8> = (b'A'..=b'z').collect();
        let o = Options::new();
        // Hundreds of objects: 6 rounds of 58 objects alive at once (116 segments).
        for round in 0..6 {
            let objs: Vec<RawObject> = ids
                .iter()
                .map(|&id| {
                    RawObject::create(
                        &Key::from_path(path, id).unwrap(),
                        Layout::untyped(4096 * (round + 1)),
                        &o,
                    )
                    .unwrap()
                })
                .collect();
            for obj in &objs {
                // SAFETY: each object is at least 4096 bytes.
                unsafe { obj.as_ptr().write_bytes(0xa5, 4096) };
            }
            drop(objs);
        }
        all &= check(
            "348 objects created, written and dropped",
            segments_here() == 0,
            segments_here(),
        );
        let before = resident_pages();
        let key = Key::from_path(path, b'G').unwrap();
        let big = RawObject::create(&key, Layout::untyped(1 << 30), &o).unwrap();
        // SAFETY: the object is 1 GiB.
        unsafe { big.as_ptr().write_bytes(0x5a, 1 << 30) };
        let during = resident_pages();
        all &= check(
            "1 GiB resident while attached",
            during >= before + (1 << 30) / 4096,
            format!("{before} -> {during} pages"),
        );
        drop(big);
        std::thread::sleep(Duration::from_millis(50));
        let after = resident_pages();
        all &= check(
            "1 GiB returned after the last detach",
            after <= before,
            format!("{before} -> {after} pages"),
        );
        finish(all)
    }
}
