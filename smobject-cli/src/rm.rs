//! `smobject rm`: removes both segments of one pair.

use std::fs::File;
use std::io::Write;
use std::os::unix::io::AsRawFd;
use std::path::Path;
use std::time::{Duration, Instant};

use smobject::inspect;
use smobject::{ErrorKind, Key};

use crate::fmt::fmt_key;
use crate::ls::View;
use crate::procfs::{describe_pids, Attachments, Users};
use crate::target::Target;
use crate::Failure;

/// How long `rm PATH ID` waits for the key file's lock: smobject's own bound (its default
/// `Options::lock_timeout`), so a stuck lock holder cannot hang the command.
const LOCK_TIMEOUT: Duration = Duration::from_secs(10);

/// `smobject rm`. Given `PATH ID`, removal (with or without `--force`) holds the key file's
/// lock, waiting at most [`LOCK_TIMEOUT`] for it (no process can attach or create meanwhile);
/// given `--key`, it takes no lock and re-checks the attachments just before removing.
pub(crate) fn run(out: &mut impl Write, target: &Target, force: bool) -> Result<(), Failure> {
    let view = View::new(target.pair()?, &Attachments::scan(), &Users::load());
    let result = match &target.key {
        Some(k) if force => return force_remove_locked(out, k, target, &view),
        Some(k) => inspect::remove(k.path(), k.id(), false),
        None => inspect::remove_key(target.data_key, force),
    };
    match result {
        Ok(()) => removed(out, &view),
        Err(e) if e.kind() == ErrorKind::InUse => {
            // Pids as of just before the attempt: a fresh scan if someone attached meanwhile.
            let pids = if view.pids.is_empty() {
                Attachments::scan().pids(view.pair.data.iter().chain(view.pair.counter.iter()))
            } else {
                view.pids.clone()
            };
            let who = if pids.is_empty() {
                "attached: no pid found (their /proc/PID/maps are not readable by this user)"
                    .to_owned()
            } else {
                format!("attached: pid {}", describe_pids(&pids))
            };
            Err(Failure::Context(
                e,
                format!("{who}\nuse --force to remove it anyway (attached processes keep their mappings until they detach)"),
            ))
        }
        Err(e) => Err(e.into()),
    }
}

/// Reports a removal, with the attachments that remain.
fn removed(out: &mut impl Write, view: &View) -> Result<(), Failure> {
    writeln!(out, "removed {}", view.summary())?;
    let n = view.nattch();
    if n > 0 {
        writeln!(
            out,
            "note: {n} attachment(s) remain (pids: {}); the memory is freed when they detach",
            describe_pids(&view.pids)
        )?;
    }
    Ok(())
}

/// `rm --force PATH ID`: removes the pair, attached or not, holding the key file's lock so that
/// no process is in the middle of creating or attaching it. Waits at most [`LOCK_TIMEOUT`]; a
/// lock still held then is an error whose hint is `--force --key` (which takes no lock).
fn force_remove_locked(
    out: &mut impl Write,
    key: &Key,
    target: &Target,
    view: &View,
) -> Result<(), Failure> {
    let lock_failure = |why: String, hint: &str| {
        Failure::Other(format!(
            "{why} ({}); hint: {hint}; to remove the pair without the lock: `smobject rm --force --key {}`",
            target.describe(),
            fmt_key(target.data_key)
        ))
    };
    let _lock = match lock_key_file(key.path(), LOCK_TIMEOUT) {
        Ok(Some(file)) => file,
        Ok(None) => {
            return Err(lock_failure(
                format!("the key file's lock was not free within {LOCK_TIMEOUT:?}"),
                "another process holds the key file's flock: is one stopped (SIGSTOP) or stuck in a debugger? (see `lslocks`)",
            ))
        }
        Err(e) => {
            return Err(lock_failure(
                format!("cannot lock the key file: {e}"),
                "the key file must exist and be readable by this user",
            ))
        }
    };
    // Holding the lock (until `_lock` drops): removed by key, so smobject's `remove` does not
    // try to take the lock a second time.
    match inspect::remove_key(target.data_key, true) {
        Ok(()) => removed(out, view),
        Err(e) if e.kind() == ErrorKind::NotFound => Err(Failure::NotFound(target.describe())),
        Err(e) => Err(Failure::Context(
            e,
            format!("removing {}", target.describe()),
        )),
    }
}

/// An exclusive `flock` on `path` (held until the file returned is dropped), trying until
/// `timeout`: `Ok(None)` if it was not free by then. Opened non-blocking, so a key file that is
/// a FIFO cannot block the open itself.
fn lock_key_file(path: &Path, timeout: Duration) -> std::io::Result<Option<File>> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    let start = Instant::now();
    let mut pause = Duration::from_millis(1);
    loop {
        // SAFETY: flock takes no pointers; the descriptor is owned by `file`, open for the
        // whole call.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
            return Ok(Some(file));
        }
        let e = std::io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EWOULDBLOCK) => {}
            Some(libc::EINTR) => continue,
            _ => return Err(e),
        }
        if start.elapsed() >= timeout {
            return Ok(None);
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}
