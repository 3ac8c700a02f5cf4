//! `smobject watch`: a pair's version and update rate, sampled at an interval; or, with
//! `--json`, every new value as it is published.

use std::io::Write;
use std::time::{Duration, Instant};

use smobject::{inspect, DynObject};

use crate::ls::header;
use crate::target::Target;
use crate::Failure;

/// `smobject watch`: one line per sample; `count` samples, or until interrupted. A pair that
/// disappears is reported as `absent` and watched for again; a re-created one (new nonce)
/// restarts the rate.
pub(crate) fn run(
    out: &mut impl Write,
    target: &Target,
    interval: Duration,
    count: Option<u64>,
) -> Result<(), Failure> {
    let first = target.pair()?;
    let type_name = header(&first).map_or_else(|| "-".into(), |h| h.type_name.clone());
    writeln!(
        out,
        "watching {} ({type_name}), every {interval:?}",
        target.describe()
    )?;
    writeln!(
        out,
        "{:>9}  {:>12}  {:>10}  {:>8}  {:<7}  WRITER",
        "ELAPSED", "VERSION", "RATE/S", "ATTACHED", "STATE"
    )?;
    let start = Instant::now();
    let mut prev: Option<(u64, u64, Instant)> = None; // nonce, version, when
    let mut samples = 0u64;
    loop {
        let now = Instant::now();
        let pair = inspect::pair_by_key(target.data_key)?;
        let elapsed = format!("{:.1}s", now.duration_since(start).as_secs_f64());
        if let Some((p, h)) = pair.as_ref().and_then(|p| header(p).map(|h| (p, h))) {
            let rate = match prev {
                Some((nonce, v, t)) if nonce == h.nonce => {
                    let dt = now.duration_since(t).as_secs_f64();
                    // A rate for display: precision beyond 2^52 writes is irrelevant.
                    #[allow(clippy::cast_precision_loss)]
                    let writes = h.version.saturating_sub(v) as f64;
                    format!("{:.1}", writes / dt.max(1e-9))
                }
                Some(_) => "re-created".into(),
                None => "-".into(),
            };
            let nattch = p.data.as_ref().map_or(0, |d| d.nattch);
            let writer = match (h.writing, h.lock_owner) {
                (true, _) => "writing".to_owned(),
                (false, Some(tid)) => format!("locked by {tid}"),
                (false, None) => "-".to_owned(),
            };
            writeln!(
                out,
                "{elapsed:>9}  {:>12}  {rate:>10}  {nattch:>8}  {:<7}  {writer}",
                h.version,
                p.state.to_string()
            )?;
            prev = Some((h.nonce, h.version, now));
        } else {
            let state = pair.map_or_else(|| "absent".to_owned(), |p| p.state.to_string());
            writeln!(
                out,
                "{elapsed:>9}  {:>12}  {:>10}  {:>8}  {state:<7}  -",
                "-", "-", "-"
            )?;
            prev = None;
        }
        out.flush()?;
        samples += 1;
        if count.is_some_and(|c| samples >= c) {
            return Ok(());
        }
        std::thread::sleep(interval);
    }
}

/// `smobject watch PATH ID --json [--count N]`: one line `{"version": N, "value": {...}}` for
/// the current value at once, then one for each newer value, sleeping on the object's futex in
/// between (woken by the next publish: no polling). Each line is a consistent snapshot and its
/// own version, so versions are strictly increasing; versions published while a line is being
/// printed are skipped (the latest value is what counts). Stops after `count` lines, or runs
/// until interrupted or stdout is closed.
pub(crate) fn run_json(
    out: &mut impl Write,
    object: &DynObject,
    count: Option<u64>,
) -> Result<(), Failure> {
    let mut printed = 0u64;
    let mut last: Option<u64> = None;
    while count.is_none_or(|c| printed < c) {
        let snap = object.read();
        let version = snap.version();
        if last.is_none_or(|l| version > l) {
            writeln!(
                out,
                "{{\"version\": {version}, \"value\": {}}}",
                snap.value().to_json()
            )?;
            out.flush()?;
            printed += 1;
            last = Some(version);
            if count.is_some_and(|c| printed >= c) {
                break;
            }
        }
        object.wait_for_update(last.unwrap_or(version), None)?;
    }
    Ok(())
}
