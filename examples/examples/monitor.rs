//! Heartbeat monitoring: run `cargo run -p examples --example monitor`.
//!
//! Three module processes (this program again, with `--module ID PATH`) each create a
//! `Heartbeat` object (ids `'b'`, `'c'`, `'d'`) and beat every 100 ms. The monitor reads them
//! without attaching (`smobject::inspect::snapshot`, so it never keeps a module's object alive)
//! and prints a table every 500 ms. After about 2 s it SIGKILLs module `'c'` to show the
//! detection: a module is *dead* when it has not beaten for more than 3 intervals and its
//! process is gone (the header's creator pid plus start time, so a reused pid does not fool
//! it). The killed module could not run its destructor, so its pair is stale (nobody attached);
//! the monitor removes it with `smobject::remove_stale`. Then it stops the other modules with
//! SIGTERM (they exit cleanly, freeing their objects) and checks nothing is left behind.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode};
use std::time::{Duration, Instant};

use examples::{
    demo_key_file, fmt_keys, leftover, pair_keys, sleep_unless_stopped, stop_on_signals, unix_ms,
    Heartbeat,
};
use smobject::Shared;

const BEAT: Duration = Duration::from_millis(100);
const TABLE_EVERY: Duration = Duration::from_millis(500);
const KILL_AFTER: Duration = Duration::from_secs(2);
/// Dead must be reported within this after the kill.
const DETECT_WITHIN: Duration = Duration::from_secs(2);
const IDS: [u8; 3] = [b'b', b'c', b'd'];
const VICTIM: u8 = b'c';

fn main() -> Result<ExitCode, Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [flag, id, path] = args.as_slice() {
        if flag == "--module" {
            return module(id.as_bytes()[0], Path::new(path));
        }
    }
    monitor()
}

/// A module: creates its heartbeat object and beats until SIGTERM/SIGINT.
fn module(id: u8, path: &Path) -> Result<ExitCode, Box<dyn std::error::Error>> {
    stop_on_signals();
    let pid = std::process::id();
    let shared = Shared::<Heartbeat>::create_at(path, id)?;
    loop {
        shared.write(|h| {
            h.pid = pid;
            h.beats += 1;
            h.last_beat_unix_ms = unix_ms();
        });
        if !sleep_unless_stopped(BEAT) {
            break;
        }
    }
    println!("[module {} pid {pid}] stopping cleanly", char::from(id));
    Ok(ExitCode::SUCCESS)
}

struct Module {
    id: u8,
    child: Option<Child>,
    pid: u32,
    data_key: i32,
    dead_reported: bool,
}

/// What the monitor knows about a module right now.
#[derive(Debug)]
struct Status {
    beats: u64,
    age_ms: u64,
    process_alive: bool,
    attached: u64,
}

impl Status {
    fn dead(&self) -> bool {
        self.age_ms > 3 * BEAT.as_millis() as u64 && !self.process_alive
    }
}

/// Reads a module's heartbeat without attaching, and its liveness from the header.
fn status(m: &Module) -> Option<Status> {
    let pair = smobject::inspect::pair_by_key(m.data_key).ok()??;
    let header = pair.header.as_ref()?.as_ref().ok()?;
    let beat = smobject::inspect::snapshot(m.data_key)
        .ok()
        .and_then(|bytes| Heartbeat::from_snapshot(&bytes))?;
    Some(Status {
        beats: beat.beats,
        age_ms: unix_ms().saturating_sub(beat.last_beat_unix_ms),
        process_alive: header.creator_alive(),
        attached: pair.data.as_ref().map_or(0, |d| d.nattch),
    })
}

fn print_table(start: Instant, modules: &[Module]) {
    println!(
        "-- t={:.1}s  module  pid      beats  last beat  attached  state",
        start.elapsed().as_secs_f64()
    );
    for m in modules {
        match status(m) {
            Some(s) => println!(
                "           {:<7} {:<8} {:<6} {:>6} ms  {:<8}  {}",
                char::from(m.id),
                m.pid,
                s.beats,
                s.age_ms,
                s.attached,
                if s.dead() {
                    "DEAD"
                } else if s.age_ms > 3 * BEAT.as_millis() as u64 {
                    "silent"
                } else {
                    "alive"
                }
            ),
            None => println!(
                "           {:<7} {:<8} {}",
                char::from(m.id),
                m.pid,
                if m.dead_reported {
                    "DEAD (stale pair removed)"
                } else {
                    "(no object yet)"
                }
            ),
        }
    }
}

fn spawn(id: u8, path: &Path) -> Result<Child, Box<dyn std::error::Error>> {
    Ok(Command::new(std::env::current_exe()?)
        .arg("--module")
        .arg(char::from(id).to_string())
        .arg(path)
        .spawn()?)
}

#[allow(clippy::too_many_lines)] // the demo's script, top to bottom
fn monitor() -> Result<ExitCode, Box<dyn std::error::Error>> {
    stop_on_signals();
    let pid = std::process::id();
    let path: PathBuf = demo_key_file("monitor")?;
    let mut keys = Vec::new();
    let mut modules = Vec::new();
    for id in IDS {
        keys.extend(pair_keys(&path, id)?);
        let child = spawn(id, &path)?;
        modules.push(Module {
            id,
            pid: child.id(),
            child: Some(child),
            data_key: smobject::Key::from_path(&path, id)?.raw(),
            dead_reported: false,
        });
    }
    println!(
        "[monitor {pid}] key file {}, keys {}",
        path.display(),
        fmt_keys(&keys)
    );
    let mut ok = true;
    let start = Instant::now();
    let mut killed_at: Option<Instant> = None;
    let mut next_table = start;
    loop {
        if examples::stopped() {
            println!("[monitor {pid}] stopped by signal");
            ok = false;
            break;
        }
        // A parent must reap its children; until then a killed child is a zombie whose /proc
        // entry (and so its start time) still exists.
        for m in &mut modules {
            if let Some(child) = &mut m.child {
                if child.try_wait()?.is_some() {
                    m.child = None;
                }
            }
        }
        if killed_at.is_none() && start.elapsed() >= KILL_AFTER {
            let victim = modules.iter().find(|m| m.id == VICTIM).expect("victim");
            println!(
                "[monitor {pid}] SIGKILL module {} (pid {}): it cannot run any destructor",
                char::from(VICTIM),
                victim.pid
            );
            // SAFETY: kill(2) takes no pointers; the pid is our child, not yet reaped.
            unsafe { libc::kill(victim.pid as libc::pid_t, libc::SIGKILL) };
            killed_at = Some(Instant::now());
        }
        for m in &mut modules {
            let Some(s) = status(m) else { continue };
            if s.dead() && !m.dead_reported {
                m.dead_reported = true;
                let after = killed_at.map_or(0, |k| k.elapsed().as_millis());
                println!(
                    "[monitor {pid}] module {} (pid {}) is DEAD: no beat for {} ms and its process is gone ({after} ms after the kill)",
                    char::from(m.id),
                    m.pid,
                    s.age_ms
                );
                match smobject::remove_stale(&path, m.id) {
                    Ok(true) => println!(
                        "[monitor {pid}] removed its stale pair (nobody attached) with smobject::remove_stale"
                    ),
                    Ok(false) => println!("[monitor {pid}] its pair was already gone"),
                    Err(e) => {
                        println!("[monitor {pid}] could not remove its pair: {e}");
                        ok = false;
                    }
                }
            }
        }
        if Instant::now() >= next_table {
            print_table(start, &modules);
            next_table += TABLE_EVERY;
        }
        let victim_reported = modules.iter().any(|m| m.id == VICTIM && m.dead_reported);
        if let Some(k) = killed_at {
            if victim_reported && k.elapsed() >= Duration::from_millis(500) {
                break;
            }
            if !victim_reported && k.elapsed() > DETECT_WITHIN {
                println!(
                    "[monitor {pid}] the killed module was not detected within {DETECT_WITHIN:?}"
                );
                ok = false;
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }

    // Stop the others: SIGTERM, which they turn into a clean exit (their destructors free
    // their objects).
    for m in &mut modules {
        let Some(mut child) = m.child.take() else {
            continue;
        };
        // SAFETY: kill(2) takes no pointers; the pid is our child, not yet reaped.
        unsafe { libc::kill(m.pid as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(5);
        let status = loop {
            if let Some(status) = child.try_wait()? {
                break Some(status);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        match status {
            Some(s) if s.success() => {}
            other => {
                println!(
                    "[monitor {pid}] module {} did not stop cleanly: {other:?}",
                    char::from(m.id)
                );
                ok = false;
            }
        }
    }

    let left = leftover(&keys)?;
    let _ = std::fs::remove_file(&path);
    if left.is_empty() {
        println!(
            "[monitor {pid}] nothing left behind: no segment under {}",
            fmt_keys(&keys)
        );
    } else {
        println!("[monitor {pid}] segments left behind: {}", fmt_keys(&left));
        ok = false;
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
