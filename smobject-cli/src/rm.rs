//! `smobject rm`: removes both segments of one pair.

use std::io::Write;

use smobject::inspect;
use smobject::ErrorKind;

use crate::ls::View;
use crate::procfs::{describe_pids, Attachments, Users};
use crate::target::Target;
use crate::Failure;

/// `smobject rm`. Given `PATH ID`, removal holds the key file's lock (no process can attach
/// meanwhile); given `--key`, it re-checks the attachments just before removing.
pub(crate) fn run(out: &mut impl Write, target: &Target, force: bool) -> Result<(), Failure> {
    let view = View::new(target.pair()?, &Attachments::scan(), &Users::load());
    let result = match &target.key {
        Some(k) => inspect::remove(k.path(), k.id(), force),
        None => inspect::remove_key(target.data_key, force),
    };
    match result {
        Ok(()) => {
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
        Err(e) if e.kind() == ErrorKind::InUse => {
            // Pids as of just before the attempt: a fresh scan if someone attached meanwhile.
            let pids = if view.pids.is_empty() {
                Attachments::scan().pids(
                    view.pair
                        .data
                        .iter()
                        .chain(view.pair.counter.iter())
                        .map(|s| s.shmid),
                )
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
