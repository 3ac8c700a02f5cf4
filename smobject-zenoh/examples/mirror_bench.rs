//! Benchmark of mirroring across two simulated hosts (network namespaces joined by a veth
//! pair, each host process in its own IPC namespace, A pinned to CPU 0 and B to CPU 1):
//!
//! - latency: a write on host A until `wait_for_update` returns on host B's mirror, against a
//!   bare Zenoh put/subscribe of the same 48 bytes between the same two hosts, same session
//!   configuration;
//! - staleness: A writes at 100 kHz for a few seconds; B samples the age of the value its
//!   mirror holds every millisecond; B's resident memory before and after (bounded).
//!
//! Run as root: `cargo run --release -p smobject-zenoh --example mirror_bench`. Both namespaces
//! share the kernel's `CLOCK_MONOTONIC`, so one-way times are measured directly. Prints a
//! markdown table for BENCHMARKS.md.

// Durations in ns (< 2^52 here) shown as f64 microseconds.
#![allow(clippy::cast_precision_loss)]

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use smobject::{DynObject, Key, Options, Shared};
use zenoh::Wait;

/// What travels: a sequence number and the writer's monotonic time, padded to 48 bytes.
#[smobject::shared_memory(path = "/tmp/smobject-bench-mirror-src", id = 'a')]
#[repr(C)]
struct Stamp {
    seq: u64,
    when_ns: u64,
    pad: [u64; 4],
}

const A_ADDR: &str = "10.232.0.1";
const SAMPLES: usize = 2000;
const SPACING: Duration = Duration::from_millis(2);
const FAST_SECS: u64 = 3;
/// Interleaved latency rounds per variant.
const ROUNDS: usize = 5;

fn now_ns() -> u64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `t` is a writable timespec for the call.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &raw mut t) };
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

fn pin(cpu: usize) {
    // SAFETY: a zeroed cpu_set_t is an empty set; CPU_SET writes inside it.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `cpu` is below CPU_SETSIZE.
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: plain syscall on this process with a valid set.
    unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &raw const set) };
}

fn config_file() -> String {
    let path = std::env::temp_dir().join(format!(
        "smobject-mirror-bench-{}.json5",
        std::process::id()
    ));
    std::fs::write(
        &path,
        "{ mode: \"peer\", scouting: { multicast: { enabled: false }, gossip: { enabled: false } } }\n",
    )
    .expect("config file");
    path.display().to_string()
}

fn session(listen: bool, config: &str) -> zenoh::Session {
    let endpoint = format!("tcp/{A_ADDR}:7448");
    let (l, c) = if listen {
        (vec![endpoint], vec![])
    } else {
        (vec![], vec![endpoint])
    };
    let config =
        smobject_zenoh::config(&l, &c, Some(std::path::Path::new(config))).expect("config");
    zenoh::open(config).wait().expect("zenoh session")
}

fn stats(mut v: Vec<f64>) -> (f64, f64) {
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    (v[v.len() / 2], v[(v.len() * 99 / 100).min(v.len() - 1)])
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).map(str::to_owned))
        })
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn stdin_line() -> String {
    let mut line = String::new();
    let _ = std::io::stdin().lock().read_line(&mut line);
    line.trim().to_owned()
}

fn say(line: &str) {
    println!("{line}");
    let _ = std::io::stdout().flush();
}

/// Host A, smobject path: creates the object, publishes it, writes on "go".
fn a_smo(config: &str, fast: bool) {
    pin(0);
    let src = "/tmp/smobject-bench-mirror-src";
    std::fs::write(src, b"").expect("key file");
    let object = Shared::<Stamp>::create_at(src, b'a').expect("create");
    let session = session(true, config);
    let stop = Arc::new(AtomicBool::new(false));
    let dyn_object = DynObject::access_at(src, b'a').expect("dyn");
    let mut publication = smobject_zenoh::Publication::new(&session, "bench/mirror", dyn_object)
        .expect("publication");
    let stop_pub = Arc::clone(&stop);
    let t = std::thread::spawn(move || publication.run(&stop_pub));
    say("ready");
    assert_eq!(stdin_line(), "go");
    if fast {
        // 100 kHz on average for FAST_SECS seconds: every version due by the clock (one per
        // 10 us) is written, then the writer naps ~20 us, leaving the core to the publication
        // thread (a busy-waiting pacer would starve it on this 2-core machine).
        // SAFETY: plain prctl on this thread: 1 ns timer slack, so the naps stay short.
        unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1, 0, 0, 0) };
        let start = now_ns();
        let mut i = 0u64;
        while now_ns() - start < FAST_SECS * 1_000_000_000 {
            let due = (now_ns() - start) / 10_000;
            while i < due {
                i += 1;
                object.write(|s| {
                    s.seq = i;
                    s.when_ns = now_ns();
                });
            }
            std::thread::sleep(Duration::from_micros(20));
        }
        say(&format!("wrote {i}"));
    } else {
        for i in 1..=SAMPLES as u64 + 20 {
            object.write(|s| {
                s.seq = i;
                s.when_ns = now_ns();
            });
            std::thread::sleep(SPACING);
        }
        say("done");
    }
    assert_eq!(stdin_line(), "exit");
    stop.store(true, Ordering::Relaxed);
    let _ = t.join();
    drop(object);
    let _ = std::fs::remove_file(src);
}

/// Host B, smobject path: mirrors, then measures latency or staleness.
fn b_smo(config: &str, fast: bool) {
    pin(1);
    let dst = "/tmp/smobject-bench-mirror-dst";
    let session = session(false, config);
    let key = Key::from_path_creating(dst, b'a', 0o600).expect("key");
    let stop = Arc::new(AtomicBool::new(false));
    let stop_mirror = Arc::clone(&stop);
    let mirror =
        smobject_zenoh::Mirror::new(&session, "bench/mirror", key, Options::new()).expect("mirror");
    let t = std::thread::spawn(move || mirror.run(&stop_mirror));
    let deadline = Instant::now() + Duration::from_secs(20);
    let object = loop {
        if let Ok(o) = DynObject::access_at(dst, b'a') {
            break o;
        }
        assert!(Instant::now() < deadline, "no mirror");
        std::thread::sleep(Duration::from_millis(5));
    };
    say("ready");
    let stamp = |o: &DynObject| {
        let snap = o.read();
        let b = snap.bytes();
        (
            u64::from_ne_bytes(b[0..8].try_into().unwrap()),
            u64::from_ne_bytes(b[8..16].try_into().unwrap()),
        )
    };
    let rss_before = rss_kib();
    let mut samples = Vec::new();
    if fast {
        let end = Instant::now() + Duration::from_secs(FAST_SECS);
        // Let the writer start.
        std::thread::sleep(Duration::from_millis(100));
        while Instant::now() < end {
            let (_, s) = stamp(&object);
            samples.push((now_ns().saturating_sub(s)) as f64 / 1000.0);
            std::thread::sleep(Duration::from_millis(1));
        }
    } else {
        let mut seen = object.version();
        while samples.len() < SAMPLES {
            let Ok(v) = object.wait_for_update(seen, Some(Duration::from_secs(5))) else {
                break;
            };
            let now = now_ns();
            let (seq, s) = stamp(&object);
            if seq > 0 {
                samples.push(now.saturating_sub(s) as f64 / 1000.0);
            }
            seen = v;
        }
    }
    let (median, p99) = stats(samples.clone());
    say(&format!(
        "result {median:.1} {p99:.1} {} {rss_before} {}",
        samples.len(),
        rss_kib()
    ));
    assert_eq!(stdin_line(), "exit");
    stop.store(true, Ordering::Relaxed);
    let _ = t.join();
    drop(object);
    let _ = std::fs::remove_file(dst);
}

/// Host A, bare Zenoh: puts the same 48 bytes every SPACING.
fn a_bare(config: &str) {
    pin(0);
    let session = session(true, config);
    let publisher = session
        .declare_publisher("bench/bare")
        .congestion_control(zenoh::qos::CongestionControl::Drop)
        .express(true)
        .wait()
        .expect("publisher");
    say("ready");
    assert_eq!(stdin_line(), "go");
    for i in 1..=SAMPLES as u64 + 20 {
        let mut b = [0u8; 48];
        b[0..8].copy_from_slice(&i.to_ne_bytes());
        b[8..16].copy_from_slice(&now_ns().to_ne_bytes());
        publisher.put(b.to_vec()).wait().expect("put");
        std::thread::sleep(SPACING);
    }
    say("done");
    assert_eq!(stdin_line(), "exit");
}

/// Host B, bare Zenoh: receives and measures.
fn b_bare(config: &str) {
    pin(1);
    let session = session(false, config);
    let sub = session
        .declare_subscriber("bench/bare")
        .wait()
        .expect("subscriber");
    say("ready");
    let mut samples = Vec::new();
    while samples.len() < SAMPLES {
        match sub.recv_timeout(Duration::from_secs(5)) {
            Ok(Some(sample)) => {
                let now = now_ns();
                let b = sample.payload().to_bytes();
                let s = u64::from_ne_bytes(b[8..16].try_into().unwrap());
                samples.push(now.saturating_sub(s) as f64 / 1000.0);
            }
            _ => break,
        }
    }
    let (median, p99) = stats(samples.clone());
    say(&format!(
        "result {median:.1} {p99:.1} {} 0 0",
        samples.len()
    ));
    assert_eq!(stdin_line(), "exit");
}

// ---------------------------------------------------------------------------------------------
// The driver.

struct Proc {
    child: Child,
    out: BufReader<std::process::ChildStdout>,
}

impl Proc {
    fn line(&mut self) -> String {
        let mut l = String::new();
        self.out.read_line(&mut l).expect("child output");
        l.trim().to_owned()
    }
    fn send(&mut self, s: &str) {
        let stdin = self.child.stdin.as_mut().expect("stdin");
        writeln!(stdin, "{s}").expect("child input");
    }
}

fn ip(args: &[&str]) {
    let st = Command::new("ip").args(args).status().expect("ip");
    assert!(st.success(), "ip {args:?}");
}

fn spawn(ns: &str, role: &str, config: &str) -> Proc {
    let exe = std::env::current_exe().expect("exe");
    let mut child = Command::new("ip")
        .args(["netns", "exec", ns, "unshare", "--ipc"])
        .arg(exe)
        .args([role, config])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn");
    let out = BufReader::new(child.stdout.take().expect("stdout"));
    Proc { child, out }
}

fn round(a_role: &str, b_role: &str, config: &str) -> Vec<String> {
    let mut a = spawn("smobenchA", a_role, config);
    assert_eq!(a.line(), "ready");
    let mut b = spawn("smobenchB", b_role, config);
    assert_eq!(b.line(), "ready");
    a.send("go");
    let result = b.line();
    let wrote = a.line();
    a.send("exit");
    b.send("exit");
    let _ = a.child.wait();
    let _ = b.child.wait();
    let mut fields: Vec<String> = result
        .split_whitespace()
        .skip(1)
        .map(str::to_owned)
        .collect();
    fields.push(wrote);
    fields
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let (Some(role), Some(config)) = (args.get(1), args.get(2)) {
        match role.as_str() {
            "a-smo" => a_smo(config, false),
            "b-smo" => b_smo(config, false),
            "a-fast" => a_smo(config, true),
            "b-stale" => b_smo(config, true),
            "a-bare" => a_bare(config),
            "b-bare" => b_bare(config),
            _ => panic!("unknown role {role}"),
        }
        return;
    }
    let config = config_file();
    let _ = Command::new("ip")
        .args(["netns", "del", "smobenchA"])
        .status();
    let _ = Command::new("ip")
        .args(["netns", "del", "smobenchB"])
        .status();
    ip(&["netns", "add", "smobenchA"]);
    ip(&["netns", "add", "smobenchB"]);
    ip(&[
        "link", "add", "vbenchA", "type", "veth", "peer", "name", "vbenchB",
    ]);
    ip(&["link", "set", "vbenchA", "netns", "smobenchA"]);
    ip(&["link", "set", "vbenchB", "netns", "smobenchB"]);
    ip(&[
        "-n",
        "smobenchA",
        "addr",
        "add",
        &format!("{A_ADDR}/24"),
        "dev",
        "vbenchA",
    ]);
    ip(&[
        "-n",
        "smobenchB",
        "addr",
        "add",
        "10.232.0.2/24",
        "dev",
        "vbenchB",
    ]);
    for (ns, dev) in [("smobenchA", "vbenchA"), ("smobenchB", "vbenchB")] {
        ip(&["-n", ns, "link", "set", "lo", "up"]);
        ip(&["-n", ns, "link", "set", dev, "up"]);
    }
    let mut rows = Vec::new();
    // Interleaved rounds, so drift hits both alike.
    let (mut bare, mut smo) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        bare.push(round("a-bare", "b-bare", &config));
        smo.push(round("a-smo", "b-smo", &config));
    }
    let stale = round("a-fast", "b-stale", &config);
    let _ = Command::new("ip")
        .args(["netns", "del", "smobenchA"])
        .status();
    let _ = Command::new("ip")
        .args(["netns", "del", "smobenchB"])
        .status();
    let _ = std::fs::remove_file(&config);
    let median_of = |v: &[Vec<String>], i: usize| {
        let mut x: Vec<f64> = v.iter().filter_map(|r| r.get(i)?.parse().ok()).collect();
        x.sort_by(f64::total_cmp);
        x.get(x.len() / 2).copied().unwrap_or(f64::NAN)
    };
    let (bare_med, smo_med) = (median_of(&bare, 0), median_of(&smo, 0));
    rows.push(format!(
        "| latency, write on A to `wait_for_update` on B (median of {ROUNDS} rounds of {SAMPLES}) | {smo_med:.1} us (p99 {:.1}) | bare Zenoh put/subscribe, 48 B: {bare_med:.1} us (p99 {:.1}) | {:.2}x |",
        median_of(&smo, 1),
        median_of(&bare, 1),
        smo_med / bare_med
    ));
    let stale_med: f64 = stale[0].parse().unwrap_or(f64::NAN);
    rows.push(format!(
        "| staleness of the mirror, source at 100 kHz for {FAST_SECS} s (sampled every ms) | median {stale_med:.1} us, p99 {} us; B's RSS {} KiB before, {} KiB after; {} | the smobject latency above: {smo_med:.1} us | {:.2}x |",
        stale[1], stale[3], stale[4], stale[5], stale_med / smo_med
    ));
    println!("| figure | measured | baseline (same run) | ratio |");
    println!("|---|---|---|---|");
    for r in rows {
        println!("{r}");
    }
    for (name, r) in [("bare", &bare), ("smobject", &smo)] {
        println!("rounds {name}: {r:?}");
    }
}
