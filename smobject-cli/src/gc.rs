//! `smobject gc`: removes every stale pair (nobody attached: its processes died).
//!
//! With `--path FILE`, each removal holds that key file's lock, as smobject's own create and
//! attach do, so it cannot race with a process attaching. Without it the key file is unknown:
//! each pair is re-read just before removal and removed only if it is still the same instance
//! (same nonce), still ready and still has nobody attached.

use std::io::Write;

use smobject::inspect::{self, PairState};
use smobject::ErrorKind;

use crate::ls::{header, views, View};
use crate::target::Filter;
use crate::Failure;

/// `smobject gc`.
pub(crate) fn run(out: &mut impl Write, filter: &Filter, dry_run: bool) -> Result<(), Failure> {
    let stale: Vec<View> = views(filter)?
        .into_iter()
        .filter(|v| v.pair.state == PairState::Stale)
        .collect();
    if stale.is_empty() {
        writeln!(out, "no stale pairs")?;
        return Ok(());
    }
    let (mut removed, mut failed) = (0usize, 0usize);
    for v in &stale {
        if dry_run {
            writeln!(out, "would remove {}", v.summary())?;
            continue;
        }
        match remove(filter, v) {
            Ok(true) => {
                writeln!(out, "removed {}", v.summary())?;
                removed += 1;
            }
            Ok(false) => writeln!(out, "skipped {}: no longer stale", v.summary())?,
            Err(e) => {
                eprintln!("error: {e}");
                failed += 1;
            }
        }
    }
    if dry_run {
        writeln!(
            out,
            "{} stale pair(s); nothing removed (--dry-run)",
            stale.len()
        )?;
        return Ok(());
    }
    writeln!(out, "{removed} stale pair(s) removed")?;
    if failed > 0 {
        return Err(Failure::Usage(format!(
            "{failed} stale pair(s) could not be removed (see above)"
        )));
    }
    Ok(())
}

/// Removes one stale pair; `Ok(false)` if it changed or went away meanwhile.
fn remove(filter: &Filter, v: &View) -> Result<bool, Failure> {
    if let Filter::File { path, .. } = filter {
        // Under the key file's lock: removes only if still nobody is attached.
        let id = v.pair.id;
        return match smobject::remove_stale(path, id) {
            Ok(removed) => Ok(removed),
            Err(e) if e.kind() == ErrorKind::InUse => Ok(false),
            Err(e) => Err(e.into()),
        };
    }
    let Some(now) = inspect::pair_by_key(v.pair.data_key)? else {
        return Ok(false);
    };
    let same = match (header(&now), header(&v.pair)) {
        (Some(a), Some(b)) => a.nonce == b.nonce,
        _ => false,
    };
    if !same || now.state != PairState::Stale {
        return Ok(false);
    }
    match inspect::remove_key(v.pair.data_key, false) {
        Ok(()) => Ok(true),
        Err(e) if matches!(e.kind(), ErrorKind::InUse | ErrorKind::NotFound) => Ok(false),
        Err(e) => Err(e.into()),
    }
}
