//! Cross-process figures: a harness (`harness = false`) that re-executes itself with a role
//! argument for the other process, both pinned to different cores.
//!
//! ```text
//! cargo bench -p smobject-benches --bench xproc -- [--smoke] [--force] [pingpong|readers|syscalls]
//! ```
//! - `pingpong`: round trips between two processes: raw spin on a shared cache line (the
//!   floor), smobject publish + spin on `version()`, raw 64 B payload each way + flag
//!   (`raw-spin-64`) against smobject 64 B `write` + spin on `version()` + `read`
//!   (`smo-spin-read`), raw shared futex, smobject `wait_for_update`, the async waits
//!   (`changed().await` under tokio and under a std-only executor, and tokio's
//!   `spawn_blocking` around `wait_for_update`), eventfd, pipe, Unix socket pair (and
//!   iceoryx2 with `--features iceoryx2`). Variants are interleaved over
//!   several rounds so drift hits them alike.
//! - `readers`: a reader here under a writer in the other process at a fixed rate, and a
//!   back-to-back writer: reader latency percentiles, snapshots per second, torn snapshots
//!   and 10 ms windows without a snapshot (starvation), next to the same reader without writer.
//! - `syscalls`: `write` with no waiter makes no syscall: `strace -c -f` counts of a child
//!   doing 10 and 1,000,000 writes must be equal.
//!
//! `--awake` keeps both CPUs from idling during the run (see `keep_cpus_awake`).
//!
//! Prints a Markdown table of ratios; exits 1 on a setup error, 2 when the machine is busy
//! (1-minute load > 1.5 before starting, unless `--force`). `--smoke` runs everything briefly
//! and reports no timing (CI).

// Nanosecond and sample counts, all far below 2^52.
#![allow(clippy::cast_precision_loss)]
// `ping`/`pong`, `pr`/`pw`, `cr`/`cw`: the protocol's own names, clearer than longer ones.
#![allow(clippy::similar_names)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use smobject::Shared;
use smobject_benches::keyfile::KeyFile;
use smobject_benches::raw::{self, PrivateSeg};
use smobject_benches::report::{self, Goal, Histogram, Row};
use smobject_benches::structs::{untorn, Big, Page, Small, Words};

type Res<T> = Result<T, Box<dyn std::error::Error>>;
/// One round trip `i` of a ping-pong variant.
type RoundTrip<'a> = &'a mut dyn FnMut(u64) -> Res<()>;
/// Runs warm-up and timed round trips; returns the timed loop's total ns.
type Timed<'a> = &'a mut dyn FnMut(RoundTrip<'_>) -> Res<f64>;

/// The parent runs on this CPU, children on the other.
const PARENT_CPU: usize = 0;
const CHILD_CPU: usize = 1;
const TIMEOUT: Duration = Duration::from_secs(5);

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    if args.first().map(String::as_str) == Some("child") {
        let code = match child::run(&args[1..]) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("xproc child {:?}: {e}", &args[1..]);
                1
            }
        };
        std::process::exit(code);
    }
    let smoke = args.iter().any(|a| a == "--smoke");
    let awake = args.iter().any(|a| a == "--awake");
    let force = args.iter().any(|a| a == "--force")
        || std::env::var_os("SMOBJECT_BENCH_FORCE").is_some_and(|v| v == "1");
    let filter: Vec<&str> = args
        .iter()
        .filter(|a| !a.starts_with("--"))
        .map(String::as_str)
        .collect();
    // A ping-pong variant's name (`smo-spin`, ...) selects `pingpong` with only the named
    // variants (for profiling one of them).
    let variants: Vec<&str> = filter
        .iter()
        .copied()
        .filter(|f| pingpong::VARIANTS.iter().any(|v| v.name == *f))
        .collect();
    let selected = |name: &str| {
        filter.is_empty() || filter.contains(&name) || (name == "pingpong" && !variants.is_empty())
    };
    if !smoke {
        report::refuse_if_busy(force);
    }
    let load_before = report::load1();
    let mut rows = Vec::new();
    let result = (|| -> Res<()> {
        pin(PARENT_CPU);
        if awake {
            keep_cpus_awake();
        }
        if selected("pingpong") {
            pingpong::run(&mut rows, smoke, &variants)?;
            if variants.is_empty() || variants.iter().any(|v| v.starts_with("smo-async")) {
                asyncwait::threads(&mut rows)?;
            }
        }
        if selected("readers") {
            readers::run(&mut rows, smoke)?;
        }
        if selected("syscalls") {
            syscalls::run(&mut rows, smoke)?;
        }
        Ok(())
    })();
    if let Err(e) = result {
        eprintln!("xproc: setup error: {e}");
        std::process::exit(1);
    }
    if smoke {
        println!(
            "smobject-bench xproc: smoke run done, {} figures (no timing asserted)",
            rows.len()
        );
        return;
    }
    println!("\n{}\n", report::machine());
    println!("{}", report::table(&rows));
    println!("{}", report::conditions(load_before));
    if awake {
        println!(
            "--awake: a SCHED_IDLE spinner kept both CPUs from idling (it adds 2 to the load)"
        );
    }
    match report::save("xproc", &rows) {
        Ok(p) => println!("results: {}", p.display()),
        Err(e) => eprintln!("could not save results: {e}"),
    }
}

/// A running child: its stdout (for the `ready` line and results) and a kill-on-drop guard.
struct Peer {
    child: Child,
    out: BufReader<std::process::ChildStdout>,
}

impl Peer {
    fn spawn(role: &str, args: &[String]) -> Res<Peer> {
        let mut child = Command::new(std::env::current_exe()?)
            .arg("child")
            .arg(role)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()?;
        let out = BufReader::new(child.stdout.take().ok_or("no child stdout")?);
        let mut peer = Peer { child, out };
        let line = peer.line()?;
        if line != "ready" {
            return Err(format!("child {role}: expected `ready`, got {line:?}").into());
        }
        Ok(peer)
    }

    fn line(&mut self) -> Res<String> {
        let mut s = String::new();
        self.out.read_line(&mut s)?;
        if s.is_empty() {
            return Err("child exited early (see its stderr)".into());
        }
        Ok(s.trim().to_owned())
    }

    /// Waits for a clean exit, killing the child after [`TIMEOUT`].
    fn finish(mut self) -> Res<()> {
        let start = Instant::now();
        loop {
            if let Some(st) = self.child.try_wait()? {
                return if st.success() {
                    Ok(())
                } else {
                    Err(format!("child failed: {st}").into())
                };
            }
            if start.elapsed() > TIMEOUT {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return Err("child timed out".into());
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A bounded wait that reads the clock only every `every` polls: a clock read in each spin
/// would add its ~20 ns to the very reaction time being measured.
struct Patience {
    every: u32,
    polls: u32,
    deadline: Option<Instant>,
}

impl Patience {
    /// For busy-wait loops.
    fn spin() -> Patience {
        Patience {
            every: 1 << 14,
            polls: 0,
            deadline: None,
        }
    }

    /// For loops that sleep in a syscall each time round.
    fn blocking() -> Patience {
        Patience {
            every: 1,
            polls: 0,
            deadline: None,
        }
    }

    /// Call after each poll that found nothing; an error once [`TIMEOUT`] has passed.
    #[inline]
    fn tick(&mut self, what: &str) -> Res<()> {
        self.polls = self.polls.wrapping_add(1);
        if self.polls % self.every != 0 {
            return Ok(());
        }
        let now = Instant::now();
        match self.deadline {
            None => self.deadline = Some(now + TIMEOUT),
            Some(d) if now > d => return Err(format!("{what} stopped answering").into()),
            Some(_) => {}
        }
        Ok(())
    }
}

/// `--awake`: one `SCHED_IDLE` thread spinning on each of the two CPUs for the rest of the run,
/// so that neither CPU goes idle. On this VM a wake-up that finds its CPU idle (the vCPU halted,
/// the host's thread asleep) costs tens of microseconds that depend on how long the CPU was
/// idle, so extra work before a wait can make a round trip *shorter*; with the CPUs kept busy,
/// the round trips measure the software path only. Any woken thread preempts a `SCHED_IDLE`
/// one at once. Blocking variants only: the spinners slow busy-polling ones.
fn keep_cpus_awake() {
    for cpu in [PARENT_CPU, CHILD_CPU] {
        std::thread::spawn(move || {
            pin(cpu);
            let param = libc::sched_param { sched_priority: 0 };
            // SAFETY: `param` is a valid sched_param for the duration of the call; pid 0 is
            // the calling thread.
            let r = unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &raw const param) };
            if r != 0 {
                eprintln!(
                    "xproc: --awake: SCHED_IDLE refused: {}",
                    std::io::Error::last_os_error()
                );
                return;
            }
            loop {
                std::hint::spin_loop();
            }
        });
    }
}

/// Pins this process to `cpu`; on a machine with fewer CPUs, warns and runs unpinned (the
/// figures are then not comparable, which the smoke run does not need).
fn pin(cpu: usize) {
    if let Err(e) = raw::pin_to_cpu(cpu) {
        eprintln!("xproc: cannot pin to CPU {cpu} ({e}); running unpinned");
    }
}

fn arg<T: std::str::FromStr>(args: &[String], i: usize) -> Res<T> {
    args.get(i)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad or missing argument {i} in {args:?}").into())
}

mod pingpong;

mod asyncwait;

mod readers;

mod syscalls;

mod child;

#[cfg(feature = "iceoryx2")]
mod iox;
