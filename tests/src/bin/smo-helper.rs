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
//! - `t-*`: typed roles on the structs of `tests::structs`, see the `typed` module.
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
            ["create" | "access" | "open", ..] => {
                let r = match words[0] {
                    "create" => RawObject::create(&key, layout, &opts),
                    "access" => RawObject::access(&key, layout, &opts),
                    _ => RawObject::open_or_create(&key, layout, &opts),
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
            // Reads Words N times; counts torn values and distinct versions.
            "t-reader" => {
                let Some(r) = report(Shared::<Words>::access_at(path, id(a))) else {
                    return 1;
                };
                let n: u64 = arg(a, 2);
                let (mut torn, mut changes, mut last) = (0u64, 0u64, 0u64);
                for _ in 0..n {
                    let v = r.read();
                    if v.words.iter().any(|&x| x != v.words[0]) {
                        torn += 1;
                    }
                    if v.words[0] != last {
                        changes += 1;
                        last = v.words[0];
                    }
                }
                println!("ok {torn} {changes}");
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
            // Waits for a version > SEEN, at most MS milliseconds.
            "t-wait" => {
                let Some(w) = report(Shared::<Counter>::access_at(path, id(a))) else {
                    return 1;
                };
                let seen: u64 = arg(a, 2);
                let ms: u64 = arg(a, 3);
                println!("waiting");
                let start = Instant::now();
                match w.wait_for_update(seen, Some(Duration::from_millis(ms))) {
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
                let (mut snaps, mut torn, mut distinct, mut last) = (0u64, 0u64, 0u64, u64::MAX);
                let start = Instant::now();
                while start.elapsed() < Duration::from_millis(ms) {
                    r.read_into(&mut buf);
                    snaps += 1;
                    if buf.words.iter().any(|&x| x != buf.words[0]) {
                        torn += 1;
                    }
                    if buf.words[0] != last {
                        distinct += 1;
                        last = buf.words[0];
                    }
                }
                println!("ok {snaps} {torn} {distinct}");
            }
            _ => {
                eprintln!("smo-helper: unknown role {role}");
                return 2;
            }
        }
        0
    }

    fn zeroed<T: smobject::__private::zerocopy::FromZeros>() -> T {
        T::new_zeroed()
    }
}
