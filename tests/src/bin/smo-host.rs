//! One simulated host of the mirroring tests: started inside a network namespace and its own
//! IPC namespace (`ip netns exec NS unshare --ipc smo-host`), it obeys one command per stdin
//! line and answers one line on stdout. Children it spawns (`smobject publish`/`subscribe`)
//! share its namespaces.
//!
//! Commands (`PATH` a key file, objects are `tests::structs::Telemetry` at id `a`):
//! - `create PATH` -> `ok`: creates the object (kept until `exit`).
//! - `create-words PATH` -> `ok`: creates a `Words` object instead (an incompatible schema).
//! - `write N` -> `ok vV`: one write with every field equal to `N`.
//! - `burst N` -> `ok vV`: writes `1..=N` with every field equal, as fast as possible.
//! - `spawn NAME ARGS...` -> `ok PID`: starts `ARGS` (the first is a program) as child `NAME`,
//!   which gets SIGKILL when this process dies, however it dies.
//! - `term NAME` / `kill NAME` -> `exit CODE STDERR-LAST-LINE`: SIGTERM (or SIGKILL), wait.
//! - `status NAME MS` -> `running` or `exit CODE LAST-STDERR-LINE` after at most `MS` ms.
//! - `until PATH N MS` -> `ok vV origin O` once the object at `PATH` holds `seq == N` (waiting on
//!   its futex), or `timeout SEQ` after `MS` ms (`none` while the object does not exist).
//! - `torn PATH MS` -> `reading` once attached and read once, then `torn=T reads=R
//!   versions=D`: reads the object for `MS` ms and counts snapshots whose fields are not all
//!   equal, and the versions seen (the one read before `reading` included).
//! - `exit` -> kills remaining children, exits.

// Test values are small integers (< 2^32), exact as f64 and compared exactly.
#![allow(clippy::float_cmp, clippy::cast_precision_loss)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use smobject::{DynObject, Shared};
use tests::structs::{Telemetry, Words};

fn all_equal(t: &Telemetry) -> bool {
    let n = t.seq;
    t.pos.iter().all(|&p| p == n as f64) && u64::from(t.status) == n & 0xffff_ffff
}

fn value(n: u64) -> Telemetry {
    Telemetry {
        seq: n,
        pos: [n as f64; 3],
        status: n as u32,
        _pad: 0,
    }
}

/// A child with its stderr collected.
struct Proc {
    child: Child,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl Proc {
    fn report(&mut self) -> String {
        let code = self
            .child
            .wait()
            .ok()
            .and_then(|s| s.code())
            .map_or("signal".to_owned(), |c| c.to_string());
        // Let the reader thread drain what the child wrote last.
        std::thread::sleep(Duration::from_millis(20));
        let last = self
            .stderr
            .lock()
            .unwrap()
            .iter()
            .rev()
            .find(|l| !l.trim().is_empty())
            .cloned()
            .unwrap_or_default();
        format!("exit {code} {last}")
    }
}

/// Makes `cmd`'s process get SIGKILL when this one dies, however it dies: a test that fails
/// kills its host with SIGKILL (the `Helper`'s drop), which would otherwise leave the host's
/// publisher and subscriber running, each keeping its network namespace alive.
fn die_with_this_process(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    let parent = std::process::id();
    let in_child = move || {
        // SAFETY: prctl with PR_SET_PDEATHSIG takes a signal number and touches no memory of
        // ours; it is a plain system call, safe in a forked child.
        if unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) } == -1 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: getppid has no preconditions. The parent may have died before the prctl:
        // then no signal would come, so the spawn fails instead.
        if unsafe { libc::getppid() } as u32 != parent {
            return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
        }
        Ok(())
    };
    // SAFETY: `in_child` runs in the forked child before exec and makes only async-signal-safe
    // system calls (prctl, getppid); it allocates nothing and takes no lock.
    unsafe {
        cmd.pre_exec(in_child);
    }
}

/// Reads the Telemetry fields of a mirror through its schema (the host has no Rust handle of
/// the mirror: it reads it the way a tool would).
fn read_mirror(o: &DynObject) -> (u64, Telemetry) {
    use smobject::schema::Value;
    let snap = o.read();
    let int = |path: &str| match snap.get(path) {
        Ok(Value::Unsigned(v)) => v as u64,
        _ => u64::MAX,
    };
    let float = |path: &str| match snap.get(path) {
        Ok(Value::Float(v)) => v,
        _ => f64::NAN,
    };
    let t = Telemetry {
        seq: int("seq"),
        pos: [float("pos[0]"), float("pos[1]"), float("pos[2]")],
        status: int("status") as u32,
        _pad: 0,
    };
    (snap.version(), t)
}

#[allow(clippy::too_many_lines)] // one arm per command
fn main() {
    let mut objects: Vec<Box<dyn std::any::Any>> = Vec::new();
    let mut writer: Option<Shared<Telemetry>> = None;
    let mut procs: HashMap<String, Proc> = HashMap::new();
    let stdin = std::io::stdin();
    let mut out = std::io::stdout();
    for line in stdin.lock().lines() {
        let Ok(line) = line else { break };
        let words: Vec<&str> = line.split_whitespace().collect();
        let reply = match words.as_slice() {
            ["create", path] => match Shared::<Telemetry>::create_at(path, b'a') {
                Ok(s) => {
                    writer = Some(s);
                    "ok".to_owned()
                }
                Err(e) => format!("err {:?} {e}", e.kind()),
            },
            ["create-words", path] => match Shared::<Words>::create_at(path, b'a') {
                Ok(s) => {
                    objects.push(Box::new(s));
                    "ok".to_owned()
                }
                Err(e) => format!("err {:?} {e}", e.kind()),
            },
            ["write", n] => match (&writer, n.parse::<u64>()) {
                (Some(w), Ok(n)) => {
                    w.write(|t| *t = value(n));
                    format!("ok v{}", w.version())
                }
                _ => "err no writer or bad number".to_owned(),
            },
            ["burst", n] => match (&writer, n.parse::<u64>()) {
                (Some(w), Ok(n)) => {
                    for i in 1..=n {
                        w.write(|t| *t = value(i));
                    }
                    format!("ok v{}", w.version())
                }
                _ => "err no writer or bad number".to_owned(),
            },
            ["spawn", name, program, args @ ..] => {
                let mut cmd = Command::new(program);
                cmd.args(args)
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped());
                die_with_this_process(&mut cmd);
                let spawned = cmd.spawn();
                match spawned {
                    Ok(mut child) => {
                        let stderr = Arc::new(Mutex::new(Vec::new()));
                        let sink = Arc::clone(&stderr);
                        let pipe = child.stderr.take().expect("piped");
                        std::thread::spawn(move || {
                            for l in BufReader::new(pipe).lines().map_while(Result::ok) {
                                sink.lock().unwrap().push(l);
                            }
                        });
                        let pid = child.id();
                        procs.insert((*name).to_owned(), Proc { child, stderr });
                        format!("ok {pid}")
                    }
                    Err(e) => format!("err spawn {program}: {e}"),
                }
            }
            [sig @ ("term" | "kill"), name] => match procs.remove(*name) {
                Some(mut p) => {
                    let signal = if *sig == "term" {
                        libc::SIGTERM
                    } else {
                        libc::SIGKILL
                    };
                    // SAFETY: plain syscall on our own child's pid.
                    unsafe { libc::kill(p.child.id() as i32, signal) };
                    p.report()
                }
                None => format!("err no child {name}"),
            },
            ["status", name, ms] => {
                let deadline = Instant::now() + Duration::from_millis(ms.parse().unwrap_or(0));
                loop {
                    let Some(p) = procs.get_mut(*name) else {
                        break format!("err no child {name}");
                    };
                    if let Ok(Some(_)) = p.child.try_wait() {
                        let mut p = procs.remove(*name).expect("present");
                        break p.report();
                    }
                    if Instant::now() >= deadline {
                        break "running".to_owned();
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
            ["until", path, n, ms] => {
                let want: u64 = n.parse().unwrap_or(0);
                let deadline = Instant::now() + Duration::from_millis(ms.parse().unwrap_or(0));
                let mut last = "none".to_owned();
                loop {
                    if let Ok(o) = DynObject::access_at(path, b'a') {
                        let (version, t) = read_mirror(&o);
                        last = t.seq.to_string();
                        if t.seq == want {
                            let origin = o.origin().map_or(0, |g| g.version);
                            break format!("ok v{version} origin {origin}");
                        }
                        let left = deadline.saturating_duration_since(Instant::now());
                        if left.is_zero() {
                            break format!("timeout {last}");
                        }
                        let _ = o.wait_for_update(version, Some(left));
                    } else {
                        // Not created yet (the mirror appears with the first envelope).
                        if Instant::now() >= deadline {
                            break format!("timeout {last}");
                        }
                        std::thread::sleep(Duration::from_millis(20));
                    }
                }
            }
            ["torn", path, ms] => match DynObject::access_at(path, b'a') {
                Ok(o) => {
                    // The first read comes before `reading`: once the test sees that line, every
                    // later version counts as a new one, however late this process runs again.
                    let (first, t) = read_mirror(&o);
                    let mut torn = u64::from(!all_equal(&t));
                    let (mut reads, mut versions, mut last) = (1u64, 1u64, first);
                    let _ = writeln!(out, "reading");
                    let _ = out.flush();
                    let deadline = Instant::now() + Duration::from_millis(ms.parse().unwrap_or(0));
                    while Instant::now() < deadline {
                        let (v, t) = read_mirror(&o);
                        reads += 1;
                        if !all_equal(&t) {
                            torn += 1;
                        }
                        if v != last {
                            versions += 1;
                            last = v;
                        }
                    }
                    format!("torn={torn} reads={reads} versions={versions}")
                }
                Err(e) => format!("err {:?} {e}", e.kind()),
            },
            ["exit"] => break,
            _ => format!("err unknown command {line:?}"),
        };
        let _ = writeln!(out, "{reply}");
        let _ = out.flush();
    }
    for (_, mut p) in procs {
        let _ = p.child.kill();
        let _ = p.child.wait();
    }
    drop(writer);
    drop(objects);
}
