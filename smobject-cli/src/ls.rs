//! `smobject ls`: every pair on the host, as a table or as JSON.

use std::io::Write;

use serde_json::{json, Value};
use smobject::inspect::{self, HeaderInfo, Pair, PairState};

use crate::fmt::{fmt_age, fmt_elapsed, fmt_key, fmt_mode, now_unix, Table};
use crate::procfs::{Attachments, Users};
use crate::target::Filter;
use crate::Failure;

/// What `ls` (and `gc`) show about one pair, gathered from the kernel, the header and `/proc`.
#[derive(Debug)]
pub(crate) struct View {
    pub(crate) pair: Pair,
    /// Processes with either segment mapped.
    pub(crate) pids: Vec<i32>,
    /// Owner's name (or uid).
    pub(crate) owner: Option<String>,
    /// Seconds since creation (header's time, else the segment's ctime).
    pub(crate) age: Option<i64>,
}

impl View {
    pub(crate) fn new(pair: Pair, att: &Attachments, users: &Users) -> View {
        let pids = att.pids(pair.data.iter().chain(pair.counter.iter()));
        let seg = pair.data.as_ref().or(pair.counter.as_ref());
        let owner = seg.map(|s| users.name(s.uid));
        let created = match header(&pair) {
            Some(h) if h.created_unix != 0 => i64::try_from(h.created_unix).ok(),
            _ => seg.map(|s| s.ctime),
        };
        View {
            owner,
            age: created.map(|c| now_unix() - c),
            pids,
            pair,
        }
    }

    /// Kernel attachments of the data segment (of the counter segment for a half pair).
    pub(crate) fn nattch(&self) -> u64 {
        let p = &self.pair;
        p.data
            .as_ref()
            .or(p.counter.as_ref())
            .map_or(0, |s| s.nattch)
    }

    /// The pair's state; a live pair whose writer lock is held for good by a leaked write guard
    /// (a handle that kept its mapping, counted in the header) shows as `held`.
    pub(crate) fn state(&self) -> String {
        match header(&self.pair) {
            Some(h) if h.leaked_guards > 0 && self.pair.state == PairState::Live => {
                format!("held({})", h.leaked_guards)
            }
            _ => self.pair.state.to_string(),
        }
    }

    /// The type name, `(untyped)`, or `-` without a valid header.
    pub(crate) fn type_name(&self) -> String {
        header(&self.pair).map_or_else(|| "-".into(), |h| h.type_name.clone())
    }

    /// Bytes of data: the header's size, else the data segment's.
    pub(crate) fn size(&self) -> Option<u64> {
        header(&self.pair)
            .map(|h| h.data_size)
            .or_else(|| self.pair.data.as_ref().map(|d| d.size as u64))
    }

    /// One line for `gc`/`rm` messages: `0x6101abcd (Telemetry, 40 bytes, 3m12s old)`.
    pub(crate) fn summary(&self) -> String {
        let mut parts = vec![self.type_name()];
        if let Some(s) = self.size() {
            parts.push(format!("{s} bytes"));
        }
        if let Some(a) = self.age {
            parts.push(format!("{} old", fmt_age(a)));
        }
        format!(
            "{} / {} ({})",
            fmt_key(self.pair.data_key),
            fmt_key(self.pair.counter_key),
            parts.join(", ")
        )
    }

    fn row(&self) -> Vec<String> {
        let p = &self.pair;
        let seg = p.data.as_ref().or(p.counter.as_ref());
        let shmid = |s: Option<&inspect::Segment>| s.map_or("-".into(), |s| s.shmid.to_string());
        let count = header(p).map_or("-".into(), |h| h.count.to_string());
        let pids = if self.pids.is_empty() {
            "-".into()
        } else {
            self.pids
                .iter()
                .map(i32::to_string)
                .collect::<Vec<_>>()
                .join(",")
        };
        vec![
            fmt_key(p.data_key),
            fmt_key(p.counter_key),
            format!("{}/{}", shmid(p.data.as_ref()), shmid(p.counter.as_ref())),
            self.type_name(),
            self.size().map_or("-".into(), |s| s.to_string()),
            self.owner.clone().unwrap_or_else(|| "-".into()),
            seg.map_or("-".into(), |s| fmt_mode(s.mode)),
            format!("{}/{count}", self.nattch()),
            pids,
            self.state(),
            self.age.map_or("-".into(), fmt_age),
            header(p)
                .and_then(HeaderInfo::last_write_age)
                .map_or("-".into(), fmt_elapsed),
        ]
    }

    fn json(&self) -> Value {
        let p = &self.pair;
        let seg = p.data.as_ref().or(p.counter.as_ref());
        let h = header(p);
        json!({
            "data_key": fmt_key(p.data_key),
            "counter_key": fmt_key(p.counter_key),
            "id": char::from(p.id).to_string(),
            "data_shmid": p.data.as_ref().map(|s| s.shmid),
            "counter_shmid": p.counter.as_ref().map(|s| s.shmid),
            "type": h.map(|h| h.type_name.clone()),
            "size": self.size(),
            "uid": seg.map(|s| s.uid),
            "owner": self.owner,
            "mode": seg.map(|s| fmt_mode(s.mode)),
            "nattch": self.nattch(),
            "counter_nattch": p.counter.as_ref().map(|s| s.nattch),
            "count": h.map(|h| h.count),
            "pids": self.pids,
            "state": self.state(),
            "leaked_guards": h.map(|h| h.leaked_guards),
            "age_secs": self.age,
            "last_write_s": h
                .and_then(HeaderInfo::last_write_age)
                .map(|d| (d.as_secs_f64() * 1000.0).round() / 1000.0),
            "created_unix": h.map(|h| h.created_unix),
            "version": h.map(|h| h.version),
            "fingerprint": h.map(|h| format!("{:#018x}", h.fingerprint)),
            "creator_pid": h.map(|h| h.creator_pid),
            "creator_alive": h.map(HeaderInfo::creator_alive),
            "header_error": match &p.header {
                Some(Err(e)) => Some(e.clone()),
                _ => None,
            },
        })
    }
}

/// What to do about a pair in state `unreadable` (this user may not read its header).
pub(crate) const UNREADABLE_HINT: &str =
    "this user may not read the segments (see their owner and mode): run as their owner or as root to see the state";

/// The header if it was read and is valid.
pub(crate) fn header(p: &Pair) -> Option<&HeaderInfo> {
    match &p.header {
        Some(Ok(h)) if h.valid => Some(h),
        _ => None,
    }
}

/// Every pair `filter` selects, with attachments and owners, sorted by data key.
pub(crate) fn views(filter: &Filter) -> Result<Vec<View>, Failure> {
    let mut pairs: Vec<Pair> = inspect::pairs()?
        .into_iter()
        .filter(|p| filter.matches(p))
        .collect();
    pairs.sort_by_key(|p| p.data_key as u32);
    let (att, users) = (Attachments::scan(), Users::load());
    Ok(pairs
        .into_iter()
        .map(|p| View::new(p, &att, &users))
        .collect())
}

/// `smobject ls`.
pub(crate) fn run(out: &mut impl Write, filter: &Filter, json: bool) -> Result<(), Failure> {
    let views = views(filter)?;
    if json {
        let all: Vec<Value> = views.iter().map(View::json).collect();
        writeln!(out, "{}", Value::Array(all))?;
        return Ok(());
    }
    let mut t = Table::new(&[
        "DATA KEY",
        "COUNTER KEY",
        "SHMIDS",
        "TYPE",
        "SIZE",
        "OWNER",
        "MODE",
        "ATTACHED",
        "PIDS",
        "STATE",
        "AGE",
        "LAST WRITE",
    ]);
    for v in &views {
        t.push(v.row());
    }
    t.print(out)?;
    let stale = views
        .iter()
        .filter(|v| v.pair.state == PairState::Stale)
        .count();
    if stale > 0 {
        // On stderr: the table on stdout stays one header line plus one line per pair.
        eprintln!("note: {stale} stale pair(s), nobody attached; `smobject gc` removes them");
    }
    let unreadable = views
        .iter()
        .filter(|v| v.pair.state == PairState::Unreadable)
        .count();
    if unreadable > 0 {
        eprintln!(
            "note: {unreadable} pair(s) unreadable (permission denied reading the header); hint: {UNREADABLE_HINT}"
        );
    }
    Ok(())
}
