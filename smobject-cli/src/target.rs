//! What a command acts on: one pair ([`Target`]: `PATH ID` or `--key`) or a set of pairs
//! ([`Filter`]), and the argument parsers for ids, keys and durations.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use smobject::inspect::{self, Pair};
use smobject::{ErrorKind, Key};

use crate::fmt::{fmt_id, fmt_key};
use crate::Failure;

/// One pair: its data key, and the key file and id when given that way.
#[derive(Debug)]
pub(crate) struct Target {
    /// The data segment's key.
    pub(crate) data_key: i32,
    /// The key as derived from `PATH ID` (absent with `--key`).
    pub(crate) key: Option<Key>,
}

impl Target {
    /// A pair named by its raw data key.
    pub(crate) fn from_key(data_key: i32) -> Target {
        Target {
            data_key,
            key: None,
        }
    }

    /// `ftok(path, id)`; smobject's errors for a missing file or an id outside `'A'..='z'`.
    pub(crate) fn from_path(path: &Path, id: u8) -> Result<Target, Failure> {
        let key = Key::from_path(path, id)?;
        Ok(Target {
            data_key: key.raw(),
            key: Some(key),
        })
    }

    /// `key 0x..., path ..., id 'a'`, as smobject's errors name an object.
    pub(crate) fn describe(&self) -> String {
        match &self.key {
            Some(k) => format!(
                "key {}, path {}, id {}",
                fmt_key(self.data_key),
                k.path().display(),
                fmt_id(k.id())
            ),
            None => format!("key {}", fmt_key(self.data_key)),
        }
    }

    /// The pair under the key, or [`Failure::NotFound`].
    pub(crate) fn pair(&self) -> Result<Pair, Failure> {
        inspect::pair_by_key(self.data_key)?.ok_or_else(|| Failure::NotFound(self.describe()))
    }
}

/// Which pairs `ls` and `gc` consider.
#[derive(Debug)]
pub(crate) enum Filter {
    /// Every pair on the host.
    All,
    /// The pair whose data or counter key is this.
    Key(i32),
    /// Pairs made for this key file.
    File {
        /// The key file (`gc` removes under its lock).
        path: PathBuf,
        /// The key file's `st_dev` and `st_ino`, compared with the header's `key_dev`/`key_ino`.
        dev: u64,
        /// See `dev`.
        ino: u64,
        /// The low 24 bits `ftok` derives from the file: used for pairs without a readable
        /// header (a half pair's data segment).
        low_bits: i32,
    },
}

impl Filter {
    /// Pairs made for `path`.
    pub(crate) fn from_path(path: &PathBuf) -> Result<Filter, Failure> {
        // Through `Key::from_path` for smobject's own checks and hints; its error would name
        // the id used here, which the user never gave: reworded to name the path only.
        let key = Key::from_path(path, smobject::ID_MIN).map_err(|e| key_file_failure(path, &e))?;
        let meta = std::fs::metadata(path)
            .map_err(|e| Failure::Usage(format!("cannot examine {}: {e}", path.display())))?;
        Ok(Filter::File {
            path: path.clone(),
            dev: meta.dev(),
            ino: meta.ino(),
            low_bits: key.raw() & 0x00ff_ffff,
        })
    }

    /// Whether `p` is selected.
    pub(crate) fn matches(&self, p: &Pair) -> bool {
        match self {
            Filter::All => true,
            Filter::Key(k) => p.data_key == *k || p.counter_key == *k,
            Filter::File {
                dev, ino, low_bits, ..
            } => match &p.header {
                Some(Ok(h)) if h.valid => h.key_dev == *dev && h.key_ino == *ino,
                _ => p.data_key & 0x00ff_ffff == *low_bits,
            },
        }
    }
}

/// `key file not found (path P): ...; hint: ...`: a key file error naming the path alone.
fn key_file_failure(path: &Path, e: &smobject::Error) -> Failure {
    let what = match (e.kind(), e.errno()) {
        (ErrorKind::PathNotFound, _) => {
            format!(
                "{} does not exist; ftok needs an existing file",
                path.display()
            )
        }
        (_, Some(errno)) => format!("ftok: {}", std::io::Error::from_raw_os_error(errno)),
        (_, None) => "ftok failed".into(),
    };
    let mut m = format!("{} (path {}): {what}", e.kind(), path.display());
    if let Some(hint) = e.hint_text() {
        m.push_str("; hint: ");
        m.push_str(hint);
    }
    Failure::Other(m)
}

/// A project id: exactly one ASCII character (its range is checked by `Key::from_path`, so
/// `#` is a run-time error naming the valid range rather than a usage error).
pub(crate) fn parse_id(s: &str) -> Result<u8, String> {
    match s.as_bytes() {
        [b] if b.is_ascii() => Ok(*b),
        _ => Err("expected one character in 'A'..='z', such as `a`".into()),
    }
}

/// A SysV key: `0x6101abcd` (hex) or decimal, as `ipcs` prints either; not 0 (`IPC_PRIVATE`).
pub(crate) fn parse_key(s: &str) -> Result<i32, String> {
    let t = s.trim();
    let v = if let Some(hex) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        u32::from_str_radix(hex, 16).map_err(|e| format!("`{s}` is not a hex key: {e}"))?
    } else if let Some(neg) = t.strip_prefix('-') {
        // ipcs-style negative decimal keys (key_t is signed).
        let n: u32 = neg
            .parse()
            .map_err(|e| format!("`{s}` is not a key: {e}"))?;
        if n > 1 << 31 {
            return Err(format!("`{s}` is below -2147483648, the smallest key"));
        }
        n.wrapping_neg()
    } else {
        t.parse::<u32>()
            .map_err(|e| format!("`{s}` is not a key (use hex like 0x6101abcd): {e}"))?
    };
    if v == 0 {
        return Err("key 0 is IPC_PRIVATE, never a smobject key".into());
    }
    Ok(v as i32)
}

/// `--mode OCTAL`: `600`, `0660`, `0o640`. Only read and write bits, the owner's among them
/// ([`smobject::Options::validate`]): a mode is refused rather than silently narrowed.
pub(crate) fn parse_mode(s: &str) -> Result<u32, String> {
    let t = s.trim();
    let digits = t.strip_prefix("0o").unwrap_or(t);
    let mode = u32::from_str_radix(digits, 8)
        .map_err(|_| format!("`{s}` is not an octal mode (like 600 or 660)"))?;
    smobject::Options::new()
        .mode(mode)
        .validate()
        .map_err(|e| format!("`{s}`: {e}"))?;
    Ok(mode)
}

/// `watch --count N`: a number of samples, at least 1 (0 would print nothing, or, without
/// `--json`, still one sample: refused rather than guessed).
pub(crate) fn parse_count(s: &str) -> Result<u64, String> {
    match s.trim().parse::<u64>() {
        Ok(0) => {
            Err("0 samples: give at least 1 (or omit --count to run until interrupted)".into())
        }
        Ok(n) => Ok(n),
        Err(_) => Err(format!("`{s}` is not a number of samples (at least 1)")),
    }
}

/// `1s`, `200ms`, `0.5` (seconds); at least 1 ms, at most a day.
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let (num, scale) = if let Some(ms) = t.strip_suffix("ms") {
        (ms, 1e-3)
    } else if let Some(sec) = t.strip_suffix('s') {
        (sec, 1.0)
    } else {
        (t, 1.0)
    };
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a duration (use e.g. `1s`, `200ms`, `0.5`)"))?;
    let secs = v * scale;
    if !(0.001..=86_400.0).contains(&secs) {
        return Err(format!("`{s}` is out of range (1ms to 24h)"));
    }
    Ok(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_one_ascii_character() {
        assert_eq!(parse_id("a"), Ok(b'a'));
        assert_eq!(parse_id("#"), Ok(b'#')); // rejected later, by Key::from_path
        assert!(parse_id("ab").is_err());
        assert!(parse_id("").is_err());
        assert!(parse_id("é").is_err());
    }

    #[test]
    fn keys_parse_in_hex_and_decimal() {
        assert_eq!(parse_key("0x6101abcd"), Ok(0x6101_abcd));
        assert_eq!(parse_key("0XFFFFFFFF"), Ok(-1));
        assert_eq!(parse_key("1627720434"), Ok(1_627_720_434));
        assert_eq!(parse_key("-1"), Ok(-1));
        assert_eq!(parse_mode("660"), Ok(0o660));
        assert_eq!(parse_mode("0o640"), Ok(0o640));
        assert_eq!(parse_mode("0600"), Ok(0o600));
        assert!(parse_mode("755").unwrap_err().contains("outside 0o666"));
        assert!(parse_mode("060")
            .unwrap_err()
            .contains("owner's read and write"));
        assert!(parse_mode("8").unwrap_err().contains("octal"));
        assert!(parse_mode("-1").is_err());
        assert_eq!(parse_key("-2147483648"), Ok(i32::MIN));
        assert!(parse_key("-2147483649")
            .unwrap_err()
            .contains("smallest key"));
        assert!(parse_key("-4294967295").is_err(), "would wrap to key 1");
        assert!(parse_key("-0").is_err(), "IPC_PRIVATE");
        assert!(parse_key("0").is_err());
        assert!(parse_key("0x").is_err());
        assert!(parse_key("zzz").is_err());
        assert!(parse_key("0x1ffffffff").is_err());
    }

    #[test]
    fn counts_are_at_least_one() {
        assert_eq!(parse_count("1"), Ok(1));
        assert_eq!(parse_count("20"), Ok(20));
        assert!(parse_count("0").is_err());
        assert!(parse_count("-1").is_err());
        assert!(parse_count("x").is_err());
    }

    #[test]
    fn durations_take_units() {
        assert_eq!(parse_duration("1s"), Ok(Duration::from_secs(1)));
        assert_eq!(parse_duration("200ms"), Ok(Duration::from_millis(200)));
        assert_eq!(parse_duration("0.5"), Ok(Duration::from_millis(500)));
        assert!(parse_duration("0").is_err());
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("NaN").is_err());
    }
}
