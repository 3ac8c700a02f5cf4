//! Shared code for the examples: the shared structs (declared once, used by every process),
//! key files, a clean exit on Ctrl-C, and a check that nothing was left behind.
//!
//! The examples are in `examples/examples/`; `examples/README.md` lists how to run each.

// The structs' `_pad` fields are public so that the structs can be built with literals.
#![allow(clippy::pub_underscore_fields)]

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// What the producer publishes and the consumer prints.
///
/// Shared under the key file `/tmp/smobject-telemetry`, id `'a'`: `Telemetry::open_or_create()`
/// and `Telemetry::access()` use that key; the self-contained demos use a key file of their own
/// with `smobject::Shared::<Telemetry>::create_at(path, b'a')`.
#[smobject::shared_memory(path = "/tmp/smobject-telemetry", id = 'a')]
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Telemetry {
    /// Incremented by every publish.
    pub seq: u64,
    /// When it was published, milliseconds since the Unix epoch.
    pub unix_ms: u64,
    /// A position that moves on a circle.
    pub pos: [f64; 3],
    /// [`STATUS_RUNNING`] or [`STATUS_DONE`].
    pub status: u32,
    /// Explicit padding (the struct may have none).
    pub _pad: u32,
}

/// `Telemetry::status` while the producer runs.
pub const STATUS_RUNNING: u32 = 1;
/// `Telemetry::status` in the producer's last publish.
pub const STATUS_DONE: u32 = 2;

impl Telemetry {
    /// The value of publish number `seq`.
    #[must_use]
    #[allow(clippy::cast_precision_loss)] // a demo's seq stays far below 2^52
    pub fn sample(seq: u64) -> Telemetry {
        let angle = seq as f64 * 0.1;
        Telemetry {
            seq,
            unix_ms: unix_ms(),
            pos: [angle.cos(), angle.sin(), seq as f64 * 0.01],
            status: STATUS_RUNNING,
            _pad: 0,
        }
    }
}

impl std::fmt::Display for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "seq={} pos=({:+.3}, {:+.3}, {:+.3}) status={}{}",
            self.seq,
            self.pos[0],
            self.pos[1],
            self.pos[2],
            self.status,
            if self.status == STATUS_DONE {
                " (done)"
            } else {
                ""
            }
        )
    }
}

/// A module's heartbeat in the monitor demo: one object per module (ids `'b'`, `'c'`, ...).
#[smobject::shared_memory(path = "/tmp/smobject-heartbeat", id = 'b')]
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Heartbeat {
    /// The module's pid.
    pub pid: u32,
    /// Explicit padding.
    pub _pad: u32,
    /// Beats so far.
    pub beats: u64,
    /// Time of the last beat, milliseconds since the Unix epoch.
    pub last_beat_unix_ms: u64,
}

impl Heartbeat {
    /// Decodes the bytes of a snapshot (`smobject::inspect::snapshot`): native-endian fields at
    /// their `#[repr(C)]` offsets. `None` if there are too few bytes.
    #[must_use]
    pub fn from_snapshot(bytes: &[u8]) -> Option<Heartbeat> {
        let u64_at = |at: usize| -> Option<u64> {
            Some(u64::from_ne_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
        };
        Some(Heartbeat {
            pid: u32::from_ne_bytes(bytes.get(0..4)?.try_into().ok()?),
            _pad: 0,
            beats: u64_at(8)?,
            last_beat_unix_ms: u64_at(16)?,
        })
    }
}

/// Milliseconds since the Unix epoch.
#[must_use]
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Creates `Telemetry`'s key file (`/tmp/smobject-telemetry`) if it does not exist: `ftok`
/// needs an existing file. The file is never truncated or re-created (a re-created file gets
/// another inode, so another key).
///
/// # Errors
/// If the file cannot be created.
pub fn ensure_key_file() -> io::Result<PathBuf> {
    let path = PathBuf::from(<Telemetry as smobject::SharedStruct>::PATH);
    ensure_key_file_at(&path)?;
    Ok(path)
}

/// Creates the key file `path` if it does not exist, leaving an existing one untouched.
///
/// # Errors
/// If the file cannot be created.
pub fn ensure_key_file_at(path: &Path) -> io::Result<()> {
    std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map(drop)
}

/// A key file for one run of a self-contained demo, under the temp dir and named after the
/// demo and this process, so it never collides with a running producer or another run.
///
/// # Errors
/// If the file cannot be created.
pub fn demo_key_file(demo: &str) -> io::Result<PathBuf> {
    let path = std::env::temp_dir().join(format!("smobject-{demo}-{}", std::process::id()));
    ensure_key_file_at(&path)?;
    Ok(path)
}

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_signal: libc::c_int) {
    // Async-signal-safe: a lock-free atomic store, nothing else.
    STOP.store(true, Ordering::Relaxed);
}

/// Makes SIGINT (Ctrl-C) and SIGTERM set a flag instead of killing the process, so the main
/// loop can return and the handles' destructors detach (the last one out frees the segments).
///
/// Without this a Ctrl-C kills the process at once and no destructor runs. That is safe with
/// smobject (the kernel detaches a dead process, and the next creator or the last detacher
/// reclaims a pair left with nobody attached), but leaving nothing behind at once is nicer.
///
/// # Panics
/// If `sigaction` fails (it cannot for these signals).
pub fn stop_on_signals() {
    for signal in [libc::SIGINT, libc::SIGTERM] {
        let handler: extern "C" fn(libc::c_int) = on_signal;
        // SAFETY: `sigaction` is plain data; all-zero is a valid value (empty mask, no flags).
        let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
        action.sa_sigaction = handler as libc::sighandler_t;
        // No SA_RESTART: a blocking call returns EINTR, and every wait here is bounded anyway.
        action.sa_flags = 0;
        // SAFETY: `action` is initialised and the handler only does an async-signal-safe store;
        // a null old-action pointer is allowed.
        let r =
            unsafe { libc::sigaction(signal, std::ptr::from_ref(&action), std::ptr::null_mut()) };
        assert_eq!(r, 0, "sigaction: {}", io::Error::last_os_error());
    }
}

/// Whether SIGINT or SIGTERM arrived (after [`stop_on_signals`]).
#[must_use]
pub fn stopped() -> bool {
    STOP.load(Ordering::Relaxed)
}

/// Sleeps for `d` in short slices; returns `false` early if a stop signal arrived.
#[must_use]
pub fn sleep_unless_stopped(d: Duration) -> bool {
    let end = Instant::now() + d;
    loop {
        if stopped() {
            return false;
        }
        let now = Instant::now();
        if now >= end {
            return true;
        }
        std::thread::sleep((end - now).min(Duration::from_millis(50)));
    }
}

/// The keys, among `keys`, under which a System V segment exists now (read from
/// `/proc/sysvipc/shm`). Empty means nothing was left behind.
///
/// # Errors
/// If `/proc/sysvipc/shm` cannot be read.
pub fn leftover(keys: &[i32]) -> smobject::Result<Vec<i32>> {
    Ok(smobject::inspect::segments()?
        .into_iter()
        .map(|s| s.key)
        .filter(|k| keys.contains(k))
        .collect())
}

/// The data and counter keys of `(path, id)`, for [`leftover`].
///
/// # Errors
/// As `smobject::Key::from_path`.
pub fn pair_keys(path: &Path, id: u8) -> smobject::Result<[i32; 2]> {
    let key = smobject::Key::from_path(path, id)?;
    Ok([key.raw(), key.counter().raw()])
}

/// Formats keys as `0x61001234 0x27001234`.
#[must_use]
pub fn fmt_keys(keys: &[i32]) -> String {
    keys.iter()
        .map(|&k| format!("{:#010x}", k as u32))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Parses `--name VALUE` from the command line.
///
/// # Panics
/// With a usage message if the value does not parse.
#[must_use]
pub fn flag<T: std::str::FromStr>(args: &[String], name: &str) -> Option<T> {
    let at = args.iter().position(|a| a == name)?;
    let value = args.get(at + 1).and_then(|v| v.parse().ok());
    Some(value.unwrap_or_else(|| panic!("{name} needs a value (e.g. `{name} 10`)")))
}
