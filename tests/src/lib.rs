//! Support code shared by smobject's integration tests: key files that remove themselves and
//! every segment made under them (even when a test panics), and a driver for `smo-helper`
//! child processes with a bound on every wait.
#![allow(clippy::missing_panics_doc, clippy::must_use_candidate)]

pub mod structs;

use std::cell::RefCell;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc::{channel, Receiver};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// How long any single wait on a child may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(20);

/// A unique, world-readable key file. On drop, removes every segment under the ids it handed
/// out (data and counter keys) and the file.
pub struct KeyFile {
    path: PathBuf,
    ids: RefCell<Vec<u8>>,
}

impl KeyFile {
    /// A fresh file under the system temp dir, named after `name`.
    pub fn new(name: &str) -> KeyFile {
        static N: AtomicU32 = AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "smobject-test-{name}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::write(&path, b"smobject test key file\n").unwrap();
        // Readable by the unprivileged child of the permission tests.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        KeyFile {
            path,
            ids: RefCell::new(Vec::new()),
        }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The path as a string for command lines.
    pub fn arg(&self) -> String {
        self.path.display().to_string()
    }

    /// The key for `id`, registered for clean-up.
    pub fn key(&self, id: u8) -> smobject::Key {
        self.ids.borrow_mut().push(id);
        smobject::Key::from_path(&self.path, id).unwrap()
    }

    /// `(data shmid, counter shmid)` currently under `id`'s keys.
    pub fn segments(&self, id: u8) -> (Option<i32>, Option<i32>) {
        let k = self.key(id);
        (shmid(k.raw()), shmid(k.counter().raw()))
    }

    /// Whether no segment exists under `id`'s keys.
    pub fn is_clean(&self, id: u8) -> bool {
        self.segments(id) == (None, None)
    }
}

impl Drop for KeyFile {
    fn drop(&mut self) {
        for &id in self.ids.borrow().iter() {
            if let Ok(k) = smobject::Key::from_path(&self.path, id) {
                for raw in [k.raw(), k.counter().raw()] {
                    if let Some(id) = shmid(raw) {
                        // SAFETY: IPC_RMID takes no buffer.
                        unsafe { libc::shmctl(id, libc::IPC_RMID, std::ptr::null_mut()) };
                    }
                }
            }
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

/// What a reader saw of the torn-read invariant (all words equal in every published value):
/// snapshots taken, torn ones, and how often the value changed.
#[derive(Debug)]
pub struct Tally {
    /// Snapshots seen.
    pub snapshots: u64,
    /// Snapshots whose words were not all equal.
    pub torn: u64,
    /// Snapshots whose first word differed from the previous one's.
    pub changes: u64,
    last: u64,
}

impl Tally {
    /// A tally whose first snapshot counts as a change unless its first word is `last`.
    #[must_use]
    pub fn starting_at(last: u64) -> Tally {
        Tally {
            snapshots: 0,
            torn: 0,
            changes: 0,
            last,
        }
    }

    /// Counts one snapshot's words.
    pub fn see(&mut self, words: &[u64]) {
        self.snapshots += 1;
        if words.iter().any(|&w| w != words[0]) {
            self.torn += 1;
        }
        if words[0] != self.last {
            self.changes += 1;
            self.last = words[0];
        }
    }
}

/// The shmid under `key`, if any.
pub fn shmid(key: i32) -> Option<i32> {
    // SAFETY: shmget takes no pointers.
    let id = unsafe { libc::shmget(key, 0, 0) };
    (id >= 0).then_some(id)
}

/// `shm_nattch` of a segment.
pub fn nattch(shmid: i32) -> u64 {
    let mut ds = std::mem::MaybeUninit::<libc::shmid_ds>::zeroed();
    // SAFETY: `ds` is writable storage for the struct IPC_STAT fills.
    let r = unsafe { libc::shmctl(shmid, libc::IPC_STAT, ds.as_mut_ptr()) };
    assert_eq!(r, 0, "IPC_STAT: {}", std::io::Error::last_os_error());
    // SAFETY: zero-initialised and filled by IPC_STAT.
    #[allow(clippy::unnecessary_cast)]
    let n = unsafe { ds.assume_init() }.shm_nattch as u64;
    n
}

/// What each async-wait helper thread of this process (named `smobject-wait-N`) is doing, from
/// `/proc/self/task/*/syscall`: the syscall number and its first two arguments, or `None` for
/// a thread that is running (not in a syscall). Threads gone while reading are skipped.
pub fn wait_helper_syscalls() -> Vec<Option<(u64, u64, u64)>> {
    let hex = |s: &str| u64::from_str_radix(s.trim_start_matches("0x"), 16).ok();
    let mut out = Vec::new();
    for task in std::fs::read_dir("/proc/self/task")
        .into_iter()
        .flatten()
        .flatten()
    {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if !comm.starts_with("smobject-wait") {
            continue;
        }
        let Ok(sc) = std::fs::read_to_string(task.path().join("syscall")) else {
            continue;
        };
        let f: Vec<&str> = sc.split_whitespace().collect();
        let call = match f.as_slice() {
            [nr, a0, a1, ..] => nr
                .parse()
                .ok()
                .and_then(|nr| Some((nr, hex(a0)?, hex(a1)?))),
            _ => None,
        };
        out.push(call);
    }
    out
}

/// The `smo-helper` binary: next to the test executable's `deps/` folder (cargo builds it for
/// the `tests` crate's integration tests).
pub fn helper_exe() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    dir.join("smo-helper")
}

/// A running `smo-helper`, driven line by line. Killed on drop.
pub struct Helper {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
}

impl Helper {
    /// Starts `smo-helper ARGS...`.
    pub fn spawn(args: &[&str]) -> Helper {
        Helper::spawn_with(Command::new(helper_exe()).args(args))
    }

    /// Starts `smo-helper ARGS...` with `SMOBJECT_FAULT=fault` (a fault point, see the library's
    /// `fault` module), so it kills itself there.
    pub fn spawn_fault(fault: &str, args: &[&str]) -> Helper {
        Helper::spawn_with(
            Command::new(helper_exe())
                .args(args)
                .env("SMOBJECT_FAULT", fault),
        )
    }

    /// Starts a prepared command (its program is usually `smo-helper`, possibly behind
    /// `unshare` or `setpriv`).
    pub fn spawn_with(cmd: &mut Command) -> Helper {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawning smo-helper");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stdin = child.stdin.take();
        Helper {
            child,
            stdin,
            lines: rx,
        }
    }

    /// A `worker` on `(key file, id, size)`.
    pub fn worker(kf: &KeyFile, id: u8, size: usize) -> Helper {
        kf.key(id);
        Helper::spawn(&[
            "worker",
            &kf.arg(),
            &(id as char).to_string(),
            &size.to_string(),
        ])
    }

    /// Sends `cmd`, returns the reply line.
    pub fn cmd(&mut self, cmd: &str) -> String {
        self.send(cmd);
        self.line()
    }

    /// Sends `cmd` without waiting for the reply.
    pub fn send(&mut self, cmd: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{cmd}")
            .and_then(|()| stdin.flush())
            .expect("writing to helper");
    }

    /// Sends `cmd` and asserts the reply starts with `ok`; returns the rest.
    pub fn ok(&mut self, cmd: &str) -> String {
        let r = self.cmd(cmd);
        assert!(r.starts_with("ok"), "`{cmd}` answered {r:?}");
        r.trim_start_matches("ok").trim().to_owned()
    }

    /// The next line the helper prints, waiting at most [`WAIT`].
    pub fn line(&mut self) -> String {
        self.lines
            .recv_timeout(WAIT)
            .unwrap_or_else(|e| panic!("no answer from helper within {WAIT:?}: {e}"))
    }

    /// The next line if one arrives within `d`.
    pub fn try_line(&mut self, d: Duration) -> Option<String> {
        self.lines.recv_timeout(d).ok()
    }

    /// The pid.
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Sends `SIGKILL` and reaps the process; asserts it died by that signal.
    pub fn kill(mut self) {
        self.sigkill();
        let st = self.wait();
        assert_eq!(
            st.signal(),
            Some(libc::SIGKILL),
            "helper exited otherwise: {st:?}"
        );
    }

    fn sigkill(&mut self) {
        // SAFETY: kill takes no pointers; the child is ours and not yet reaped.
        unsafe { libc::kill(self.pid(), libc::SIGKILL) };
    }

    /// Closes stdin and waits for the exit, at most [`WAIT`].
    pub fn wait(&mut self) -> ExitStatus {
        self.stdin = None;
        let start = Instant::now();
        loop {
            if let Some(st) = self.child.try_wait().expect("try_wait") {
                return st;
            }
            assert!(
                start.elapsed() < WAIT,
                "helper {} did not exit within {WAIT:?}",
                self.pid()
            );
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// The exit status if it has exited.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().expect("try_wait")
    }

    /// Asks a worker to exit and asserts it exited with 0.
    pub fn exit(mut self) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        let _ = writeln!(stdin, "exit");
        let st = self.wait();
        assert!(st.success(), "helper exited with {st:?}");
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.sigkill();
            let _ = self.child.wait();
        }
    }
}

/// The `smobject` binary, built once per test run: `smobject` belongs to the `smobject-cli`
/// package, so cargo neither builds it for this package's tests nor sets
/// `CARGO_BIN_EXE_smobject`; this runs `cargo build -p smobject-cli` once, with the target
/// directory and profile of the running test executable. `SMOBJECT_BIN=/path` skips the build.
pub fn smobject_exe() -> &'static Path {
    static EXE: OnceLock<PathBuf> = OnceLock::new();
    EXE.get_or_init(|| {
        if let Some(p) = std::env::var_os("SMOBJECT_BIN") {
            return PathBuf::from(p);
        }
        let me = std::env::current_exe().expect("current_exe");
        // <target>/<profile>/deps/cli-<hash>
        let profile_dir = me.parent().and_then(Path::parent).expect("profile dir");
        let target_dir = profile_dir.parent().expect("target dir");
        let profile = match profile_dir.file_name().and_then(|s| s.to_str()) {
            Some("debug") | None => "dev",
            Some(other) => other,
        };
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| env!("CARGO").into());
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
        let st = Command::new(cargo)
            .args([
                "build",
                "--quiet",
                "-p",
                "smobject-cli",
                "--bin",
                "smobject",
            ])
            .args(["--profile", profile, "--target-dir"])
            .arg(target_dir)
            .arg("--manifest-path")
            .arg(&manifest)
            .status()
            .expect("running cargo build -p smobject-cli");
        assert!(st.success(), "cargo build -p smobject-cli failed: {st:?}");
        let exe = profile_dir.join("smobject");
        assert!(exe.exists(), "{} not built", exe.display());
        exe
    })
}
