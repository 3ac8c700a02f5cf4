//! The Rust side of the Python bindings' cross-language tests and benchmark
//! (`smobject-py/tests`, `smobject-py/bench`): Rust structs whose Python declarations must give
//! the same schema, and processes that create, open and ping-pong objects.
//!
//! ```text
//! smo-py-peer fingerprint NAME         prints `0xFINGERPRINT HEX-OF-ENCODED-SCHEMA`
//! smo-py-peer create NAME PATH ID      creates NAME with known values, prints `ok`, holds it
//!                                      until a line arrives on stdin
//! smo-py-peer open NAME PATH ID        accesses the object as NAME, prints `ok {value:?}` or
//!                                      `err KIND message`
//! smo-py-peer pingpong PATH N CPU CPU  wake-up round trips between two Rust processes
//!                                      (`write` + `wait_for_update`), pinned to the two CPUs;
//!                                      prints `ok MEDIAN_NS MEAN_NS`
//! smo-py-peer pong PATH N CPU          the other side of `pingpong` (started by it)
//! ```
//! NAME is `Telemetry` (the tests' struct), `Sensor` (the issue's 48-byte example), `Robot`
//! (nested structs, arrays of them, nested arrays, `i8`, `u128`, `f32`) or `Counters`
//! (atomics).

// `_pad` fields are public so the structs can be built with literals.
#![allow(clippy::pub_underscore_fields)]

use std::io::{BufRead, Write};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, AtomicU64};
use std::time::{Duration, Instant};

use smobject::__private::zerocopy;
use smobject::{shared_memory, Shared, SharedStruct};
use tests::structs::{evo, Telemetry, Vec3};

/// A position and a quaternion.
#[repr(C)]
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    zerocopy::FromBytes,
    zerocopy::IntoBytes,
    smobject::Describe,
)]
#[zerocopy(crate = "smobject::__private::zerocopy")]
pub struct Pose {
    /// Where.
    pub position: Vec3,
    /// Which way.
    pub orientation: [f64; 4],
}

/// Every kind of field the Python declaration must lay out as Rust does.
#[shared_memory(path = "/tmp", id = 'r')]
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Robot {
    /// 0
    pub seq: u64,
    /// 8: an array of nested structs.
    pub poses: [Pose; 2],
    /// 120: a nested array.
    pub grid: [[u16; 3]; 2],
    /// 132
    pub level: i32,
    /// 136
    pub small: [i8; 4],
    /// 140
    pub ratio: f32,
    /// 144: aligned to 16.
    pub wide: u128,
}

/// Atomics (same bytes as their integers, their own type tags).
#[shared_memory(path = "/tmp", id = 'n')]
#[repr(C)]
pub struct Counters {
    /// Hits.
    pub hits: AtomicU64,
    /// Misses.
    pub misses: AtomicU32,
    /// Explicit padding.
    pub _pad: u32,
}

/// The ping-pong payload.
#[shared_memory(path = "/tmp", id = 'P')]
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Ping {
    /// The round.
    pub n: u64,
}

fn robot_sample() -> Robot {
    let pose = |i: u32| Pose {
        position: Vec3 {
            x: f64::from(i) + 0.5,
            y: -f64::from(i),
            z: f64::from(i) * 2.0,
        },
        orientation: [1.0, 0.0, 0.0, f64::from(i)],
    };
    Robot {
        seq: 7,
        poses: [pose(1), pose(2)],
        grid: [[1, 2, 3], [4, 5, 6]],
        level: -5,
        small: [-1, 2, -3, 4],
        ratio: 0.1,
        wide: u128::MAX - 1,
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn print_schema<T: SharedStruct>() {
    let bytes = T::SCHEMA
        .to_schema()
        .encode()
        .expect("a generated schema encodes");
    println!("{:#018x} {}", T::SCHEMA.fingerprint(), hex(&bytes));
}

fn wait_stdin_line() {
    let mut l = String::new();
    let _ = std::io::stdin().lock().read_line(&mut l);
}

fn report<T: std::fmt::Debug>(r: smobject::Result<T>) {
    match r {
        Ok(v) => println!("ok {v:?}"),
        Err(e) => println!("err {:?} {e}", e.kind()),
    }
}

fn create_and_hold<T: SharedStruct>(path: &str, id: u8, value: T) -> i32 {
    match Shared::<T>::create_at(path, id) {
        Ok(o) => {
            o.write(|t| *t = value);
            println!("ok");
            let _ = std::io::stdout().flush();
            wait_stdin_line();
            0
        }
        Err(e) => {
            println!("err {:?} {e}", e.kind());
            1
        }
    }
}

/// Pins this process to one CPU (best effort: an error is printed, the run goes on).
fn pin(cpu: usize) {
    // SAFETY: `cpu_set_t` is plain data; all-zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `cpu` is below CPU_SETSIZE for any machine this runs on; `set` is valid.
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: `set` is a valid, initialised set of the size given; pid 0 is this process.
    let r = unsafe { libc::sched_setaffinity(0, std::mem::size_of_val(&set), &raw const set) };
    if r != 0 {
        eprintln!(
            "sched_setaffinity({cpu}): {}",
            std::io::Error::last_os_error()
        );
    }
}

fn arg<T: std::str::FromStr>(args: &[String], i: usize) -> T {
    args.get(i)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("argument {i} missing or bad: {args:?}"))
}

const ROUND_TIMEOUT: Duration = Duration::from_secs(10);

/// The parent side of the Rust ping-pong: returns the round trips in nanoseconds.
fn pingpong(path: &str, n: u64, cpu: usize, peer_cpu: usize) -> smobject::Result<Vec<u64>> {
    pin(cpu);
    let a = Shared::<Ping>::create_at(path, b'A')?;
    let b = Shared::<Ping>::create_at(path, b'B')?;
    let exe = std::env::current_exe().expect("the peer's own path");
    let mut child = Command::new(exe)
        .args(["pong", path, &n.to_string(), &peer_cpu.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawning the pong process");
    let mut out = std::io::BufReader::new(child.stdout.take().expect("piped stdout"));
    let mut line = String::new();
    let _ = out.read_line(&mut line);
    let rounds = || -> smobject::Result<Vec<u64>> {
        let mut times = Vec::with_capacity(n as usize);
        for i in 0..n {
            let start = Instant::now();
            a.write(|p| p.n = i + 1);
            b.wait_for_update(i, Some(ROUND_TIMEOUT))?;
            times.push(start.elapsed().as_nanos() as u64);
        }
        Ok(times)
    };
    let times = if line.trim() == "ok" {
        rounds()
    } else {
        let _ = child.kill();
        eprintln!("the pong process did not start: {line:?}");
        Ok(Vec::new())
    };
    let status = child.wait().expect("waiting for the pong process");
    assert!(status.success(), "the pong process failed: {status}");
    times
}

fn pong(path: &str, n: u64, cpu: usize) -> smobject::Result<()> {
    pin(cpu);
    let a = Shared::<Ping>::access_at(path, b'A')?;
    let b = Shared::<Ping>::access_at(path, b'B')?;
    println!("ok");
    let _ = std::io::stdout().flush();
    for i in 0..n {
        a.wait_for_update(i, Some(ROUND_TIMEOUT))?;
        b.write(|p| p.n = i + 1);
    }
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let role = args.first().map_or("", String::as_str);
    let name = args.get(1).map_or("", String::as_str);
    let id = || args.get(3).and_then(|s| s.bytes().next()).unwrap_or(b'a');
    let code = match (role, name) {
        ("fingerprint", "Telemetry") => {
            print_schema::<Telemetry>();
            0
        }
        ("fingerprint", "Sensor") => {
            print_schema::<evo::v2::Sensor>();
            0
        }
        ("fingerprint", "Robot") => {
            print_schema::<Robot>();
            0
        }
        ("fingerprint", "Counters") => {
            print_schema::<Counters>();
            0
        }
        ("create", "Telemetry") => create_and_hold(
            &args[2],
            id(),
            Telemetry {
                seq: 42,
                pos: [1.5, -2.5, 3.25],
                status: 7,
                _pad: 0,
            },
        ),
        ("create", "Robot") => create_and_hold(&args[2], id(), robot_sample()),
        ("open", "Telemetry") => {
            report(Shared::<Telemetry>::access_at(&args[2], id()).map(|o| o.read()));
            0
        }
        ("open", "Sensor") => {
            report(Shared::<evo::v2::Sensor>::access_at(&args[2], id()).map(|o| o.read()));
            0
        }
        ("open", "Robot") => {
            report(Shared::<Robot>::access_at(&args[2], id()).map(|o| {
                let v = o.read();
                (v == robot_sample(), v)
            }));
            0
        }
        ("pingpong", path) => match pingpong(path, arg(&args, 2), arg(&args, 3), arg(&args, 4)) {
            Ok(mut t) => {
                let mean = t.iter().sum::<u64>() / (t.len().max(1) as u64);
                t.sort_unstable();
                println!("ok {} {mean}", t.get(t.len() / 2).copied().unwrap_or(0));
                0
            }
            Err(e) => {
                println!("err {:?} {e}", e.kind());
                1
            }
        },
        ("pong", path) => match pong(path, arg(&args, 2), arg(&args, 3)) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("pong: {e}");
                1
            }
        },
        _ => {
            eprintln!("usage: see the header of tests/src/bin/smo-py-peer.rs; got {args:?}");
            2
        }
    };
    std::process::exit(code);
}
