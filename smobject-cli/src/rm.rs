//! `smobject rm`: removes both segments of one pair.

use std::io::Write;
use std::time::Duration;

use smobject::inspect;
use smobject::{ErrorKind, Key};

use crate::fmt::fmt_key;
use crate::ls::View;
use crate::procfs::{describe_pids, Attachments, Users};
use crate::target::Target;
use crate::Failure;

/// How long `rm PATH ID` waits for the key file's lock: smobject's own bound (its default
/// `Options::lock_timeout`, which `inspect::remove` uses), so a stuck lock holder cannot hang
/// the command.
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

/// `rm --force PATH ID`: removes the pair, attached or not, holding the key file's lock (the
/// library's `remove` takes it, waiting at most [`LOCK_TIMEOUT`]). A lock still held then is an
/// error whose hint is `--force --key` (which takes no lock).
fn force_remove_locked(
    out: &mut impl Write,
    key: &Key,
    target: &Target,
    view: &View,
) -> Result<(), Failure> {
    match inspect::remove(key.path(), key.id(), true) {
        Ok(()) => removed(out, view),
        Err(e) if e.kind() == ErrorKind::NotFound => Err(Failure::NotFound(target.describe())),
        Err(e) if e.kind() == ErrorKind::Timeout => Err(Failure::Other(format!(
            "the key file's lock was not free within {LOCK_TIMEOUT:?} ({}); hint: {}; to remove the pair without the lock: `smobject rm --force --key {}`",
            target.describe(),
            e.hint_text().unwrap_or_default(),
            fmt_key(target.data_key)
        ))),
        Err(e) => Err(Failure::Context(
            e,
            format!(
                "removing {}; to remove the pair without the key file's lock: `smobject rm --force --key {}`",
                target.describe(),
                fmt_key(target.data_key)
            ),
        )),
    }
}
