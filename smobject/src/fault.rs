//! Fault points for the reliability suite: with the `fault-injection` feature, the process
//! kills itself with `SIGKILL` at the named step when `SMOBJECT_FAULT` names it (`step`, or
//! `step@N` for its N-th occurrence). Without the feature every point compiles to nothing.
//!
//! | point | where |
//! |---|---|
//! | `create:after-data` | data segment made, counter segment not yet |
//! | `create:before-ready` | header written, `state` not yet ready |
//! | `attach:before-count` | data attached, count not yet updated |
//! | `detach:after-shmdt` | data detached, nothing removed yet |
//! | `detach:after-rmid-data` | last one out removed the data segment, not yet the counter |
//! | `write:locked` | writer lock taken, backup not yet copied |
//! | `write:after-backup` | backup copied, `seq` still even, the caller's change not begun |
//! | `write:odd` | publishing: `seq` odd, data not yet stored |
//! | `publish:half-data` | publishing: `seq` odd, the first half of the data stored |
//! | `publish:after-seq` | new value published (`seq` even), no wake-up, lock held |
//! | `recover:restored` | a recovering locker restored the backup, `seq` still odd |
//! | `wait:registered` | a waiter registered in `sleepers`, `seq` not re-checked |
//! | `wait:checked` | a waiter re-checked `seq`, about to sleep |

/// Dies here if this point is armed.
#[cfg(feature = "fault-injection")]
pub(crate) fn point(name: &'static str) {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;
    static ARMED: OnceLock<Option<(String, u64)>> = OnceLock::new();
    static HITS: AtomicU64 = AtomicU64::new(0);
    let armed = ARMED.get_or_init(|| {
        let v = std::env::var("SMOBJECT_FAULT").ok()?;
        let (step, n) = v
            .split_once('@')
            .map_or((v.as_str(), 1), |(s, n)| (s, n.parse().unwrap_or(1)));
        Some((step.to_owned(), n))
    });
    if let Some((step, n)) = armed {
        if step == name && HITS.fetch_add(1, Ordering::Relaxed) + 1 == *n {
            crate::sys::kill_self();
        }
    }
}

/// Fault injection is compiled out.
#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub(crate) fn point(_name: &'static str) {}
