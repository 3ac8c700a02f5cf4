//! `smobject inspect`: one pair's segments and header, field by field.

use std::io::Write;
use std::os::unix::fs::MetadataExt;

use smobject::inspect::{self, HeaderInfo, Pair, PairState, Segment};

use crate::fmt::{fmt_age, fmt_elapsed, fmt_key, fmt_mode, hexdump, now_unix, Table};
use crate::ls::UNREADABLE_HINT;
use crate::procfs::{describe_pid, describe_pids, running, Attachments, Users};
use crate::target::Target;
use crate::Failure;

/// `smobject inspect`.
pub(crate) fn run(out: &mut impl Write, target: &Target, hex: bool) -> Result<(), Failure> {
    let pair = target.pair()?;
    let users = Users::load();
    let pids = Attachments::scan().pids(pair.data.iter().chain(pair.counter.iter()));
    field(out, "state", pair.state.to_string())?;
    field(
        out,
        "data",
        segment(pair.data.as_ref(), pair.data_key, &users),
    )?;
    field(
        out,
        "counter",
        segment(pair.counter.as_ref(), pair.counter_key, &users),
    )?;
    field(out, "attached pids", describe_pids(&pids))?;
    match &pair.header {
        None => field(out, "header", "none: the counter segment is missing")?,
        Some(Err(e)) if pair.state == PairState::Unreadable => field(
            out,
            "header",
            format!("unreadable: {e}\n{:14}{UNREADABLE_HINT}", "hint"),
        )?,
        Some(Err(e)) => field(out, "header", format!("unreadable: {e}"))?,
        Some(Ok(h)) => header(out, h, target)?,
    }
    if hex {
        dump(out, &pair)?;
    }
    Ok(())
}

fn segment(s: Option<&Segment>, key: i32, users: &Users) -> String {
    match s {
        None => format!("key {}  (missing)", fmt_key(key)),
        Some(s) => format!(
            "key {}  shmid {}  {} bytes  owner {}  mode {}  nattch {}{}",
            fmt_key(key),
            s.shmid,
            s.size,
            users.name(s.uid),
            fmt_mode(s.mode),
            s.nattch,
            if s.removed { "  (removed)" } else { "" }
        ),
    }
}

/// One `name          value` line.
fn field(out: &mut dyn Write, name: &str, value: impl std::fmt::Display) -> std::io::Result<()> {
    writeln!(out, "{name:<14}{value}")
}

fn header(out: &mut dyn Write, h: &HeaderInfo, target: &Target) -> std::io::Result<()> {
    let state = match h.state {
        0 => "0 fresh",
        1 => "1 initialising",
        2 => "2 ready",
        _ => "unknown",
    };
    if h.valid {
        field(
            out,
            "header",
            format!("valid, format {}, state {state}", h.format),
        )?;
    } else {
        field(
            out,
            "header",
            format!(
                "INVALID (not smobject's magic/format/size), format {}, state {state}",
                h.format
            ),
        )?;
    }
    field(out, "type", h.type_name.clone())?;
    field(out, "fingerprint", format!("{:#018x}", h.fingerprint))?;
    field(out, "data size", format!("{} bytes", h.data_size))?;
    field(out, "nonce", format!("{:#018x}", h.nonce))?;
    field(out, "mode asked", fmt_mode(h.mode))?;
    let identity = match &target.key {
        Some(k) => match std::fs::metadata(k.path()) {
            Ok(m) if m.dev() == h.key_dev && m.ino() == h.key_ino => {
                format!(" (matches {})", k.path().display())
            }
            Ok(_) => format!(
                " (DIFFERS from {}: an ftok collision, or the file was re-created)",
                k.path().display()
            ),
            Err(_) => String::new(),
        },
        None => String::new(),
    };
    field(
        out,
        "key file",
        format!("dev {:#x} ino {}{identity}", h.key_dev, h.key_ino),
    )?;
    let created = i64::try_from(h.created_unix).unwrap_or(i64::MAX);
    field(
        out,
        "created",
        format!("{} ({} ago)", h.created_unix, fmt_age(now_unix() - created)),
    )?;
    field(
        out,
        "creator",
        format!(
            "pid {} ({}; start {} ticks)",
            h.creator_pid,
            if h.creator_alive() {
                "alive"
            } else {
                "not running"
            },
            h.creator_start
        ),
    )?;
    field(out, "count", h.count.to_string())?;
    sync_state(out, h)?;
    schema(out, h)
}

/// The stored schema: every field (nested structs' fields as `a.b`) with its offset and type.
fn schema(out: &mut dyn Write, h: &HeaderInfo) -> std::io::Result<()> {
    let Some(s) = &h.schema else {
        let why = match &h.schema_error {
            Some(e) => format!("UNUSABLE: {e}"),
            None if !h.valid || h.state != 2 => {
                "unknown (the header is not valid and ready)".into()
            }
            None => "none (an untyped object: bytes only)".into(),
        };
        return field(out, "schema", why);
    };
    field(
        out,
        "schema",
        format!(
            "{}, {} bytes, align {}, {} field{}",
            s.name,
            s.size,
            s.align,
            s.fields.len(),
            if s.fields.len() == 1 { "" } else { "s" }
        ),
    )?;
    let mut t = Table::new(&["FIELD", "OFFSET", "TYPE"]);
    for (path, offset, ty) in s.describe_layout() {
        t.push(vec![path, offset.to_string(), ty]);
    }
    let mut buf = Vec::new();
    t.print(&mut buf)?;
    for line in String::from_utf8_lossy(&buf).lines() {
        writeln!(out, "  {line}")?;
    }
    Ok(())
}

/// The synchronisation part of the header: version, writer lock, sleepers, recoveries.
fn sync_state(out: &mut dyn Write, h: &HeaderInfo) -> std::io::Result<()> {
    field(
        out,
        "version",
        format!(
            "{}{}",
            h.version,
            if h.writing {
                " (write in progress, or its writer died)"
            } else {
                ""
            }
        ),
    )?;
    let last_write = match h.last_write_age() {
        None => "unknown".to_owned(),
        Some(age) if h.version == 0 => {
            format!("{} ago (the creation: never written)", fmt_elapsed(age))
        }
        Some(age) => format!("{} ago", fmt_elapsed(age)),
    };
    field(out, "last write", last_write)?;
    if let Some((version, unix_ns)) = h.origin {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
        let age = std::time::Duration::from_nanos(now.saturating_sub(unix_ns));
        field(
            out,
            "mirror of",
            format!(
                "source version {version}, published at {}.{:09} (Unix time; {} ago by this host's clock)",
                unix_ns / 1_000_000_000,
                unix_ns % 1_000_000_000,
                fmt_elapsed(age)
            ),
        )?;
    }
    let lock = match h.lock_owner {
        None => "free".into(),
        Some(tid) if running(tid) => format!("held by tid {}", describe_pid(tid)),
        Some(tid) => format!("held by tid {tid}, not running: the next writer recovers it"),
    };
    field(out, "writer lock", lock)?;
    field(out, "sleepers", if h.sleepers { "yes" } else { "no" })?;
    if h.leaked_guards > 0 {
        field(
            out,
            "leaked guards",
            format!(
                "{} (a leaked write guard holds the lock: the object cannot be written again)",
                h.leaked_guards
            ),
        )?;
    }
    field(out, "recoveries", h.recoveries.to_string())?;
    field(
        out,
        "last writer",
        if h.last_writer == 0 {
            "none".into()
        } else {
            format!("pid {}", h.last_writer)
        },
    )
}

fn dump(out: &mut impl Write, pair: &Pair) -> Result<(), Failure> {
    let bytes = inspect::snapshot(pair.data_key)?;
    writeln!(out, "data ({} bytes):", bytes.len())?;
    hexdump(out, &bytes)?;
    Ok(())
}
