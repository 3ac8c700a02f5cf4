//! Formatting shared by the commands: keys, ids, modes, ages, hex dumps and aligned tables.

use std::fmt::Write as _;
use std::io::{self, Write};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// `0x6101abcd`, as `ipcs` prints keys.
pub(crate) fn fmt_key(key: i32) -> String {
    format!("{:#010x}", key as u32)
}

/// `'a'` for a printable id, `0x07` otherwise (as smobject's errors print ids).
pub(crate) fn fmt_id(id: u8) -> String {
    if id.is_ascii_graphic() {
        format!("'{}'", id as char)
    } else {
        format!("{id:#04x}")
    }
}

/// `0600`.
pub(crate) fn fmt_mode(mode: u32) -> String {
    format!("{:04o}", mode & 0o7777)
}

/// Seconds since the Unix epoch, now.
pub(crate) fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// `42s`, `3m12s`, `5h03m`, `2d04h`: a compact age.
pub(crate) fn fmt_age(secs: i64) -> String {
    let s = secs.max(0);
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        3600..=86_399 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{:02}h", s / 86_400, s % 86_400 / 3600),
    }
}

/// `0.0s`, `1.2s`, `59.9s`, then as [`fmt_age`] (`3m12s`): an age to a tenth of a second
/// while that matters (the last write of a live object).
pub(crate) fn fmt_elapsed(d: Duration) -> String {
    let secs = d.as_secs_f64();
    if secs < 59.95 {
        format!("{secs:.1}s")
    } else {
        // Rounded, so 59.96 s shows as `1m00s`, after `59.9s`.
        fmt_age(secs.round() as i64)
    }
}

/// A `hexdump -C` style dump: offset, 16 bytes in two groups of 8, the printable characters;
/// a run of lines equal to the one before is shown once as `*`.
pub(crate) fn hexdump(out: &mut impl Write, bytes: &[u8]) -> io::Result<()> {
    let mut prev: Option<&[u8]> = None;
    let mut starred = false;
    for (i, line) in bytes.chunks(16).enumerate() {
        if prev == Some(line) && line.len() == 16 {
            if !starred {
                writeln!(out, "*")?;
                starred = true;
            }
            continue;
        }
        starred = false;
        prev = Some(line);
        let mut hex = String::with_capacity(50);
        for (j, b) in line.iter().enumerate() {
            if j == 8 {
                hex.push(' ');
            }
            let _ = write!(hex, "{b:02x} "); // writing to a String cannot fail
        }
        let text: String = line
            .iter()
            .map(|&b| {
                if b.is_ascii_graphic() || b == b' ' {
                    b as char
                } else {
                    '.'
                }
            })
            .collect();
        writeln!(out, "{:08x}  {hex:<49} |{text}|", i * 16)?;
    }
    writeln!(out, "{:08x}", bytes.len())
}

/// Rows of cells printed with every column as wide as its widest cell.
pub(crate) struct Table {
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with a header row.
    pub(crate) fn new(header: &[&str]) -> Table {
        Table {
            rows: vec![header.iter().map(|s| (*s).to_owned()).collect()],
        }
    }

    /// Appends a row.
    pub(crate) fn push(&mut self, row: Vec<String>) {
        self.rows.push(row);
    }

    /// Prints the table, columns separated by two spaces, no trailing blanks.
    pub(crate) fn print(&self, out: &mut impl Write) -> io::Result<()> {
        let cols = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let widths: Vec<usize> = (0..cols)
            .map(|c| {
                self.rows
                    .iter()
                    .filter_map(|r| r.get(c))
                    .map(|s| s.chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        for row in &self.rows {
            let mut line = String::new();
            for (c, cell) in row.iter().enumerate() {
                if c + 1 == row.len() {
                    line.push_str(cell);
                } else {
                    let pad = widths[c] - cell.chars().count();
                    line.push_str(cell);
                    line.push_str(&" ".repeat(pad + 2));
                }
            }
            writeln!(out, "{}", line.trim_end())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_modes_ids_and_ages() {
        assert_eq!(fmt_key(0x6101_abcd), "0x6101abcd");
        assert_eq!(fmt_key(-1), "0xffffffff");
        assert_eq!(fmt_mode(0o600), "0600");
        assert_eq!((fmt_id(b'a'), fmt_id(7)), ("'a'".into(), "0x07".into()));
        assert_eq!(fmt_age(-3), "0s");
        assert_eq!(fmt_age(59), "59s");
        assert_eq!(fmt_age(192), "3m12s");
        assert_eq!(fmt_age(5 * 3600 + 180), "5h03m");
        assert_eq!(fmt_age(2 * 86_400 + 4 * 3600), "2d04h");
        assert_eq!(fmt_elapsed(Duration::ZERO), "0.0s");
        assert_eq!(fmt_elapsed(Duration::from_millis(1_240)), "1.2s");
        assert_eq!(fmt_elapsed(Duration::from_millis(59_940)), "59.9s");
        assert_eq!(fmt_elapsed(Duration::from_millis(59_960)), "1m00s");
        assert_eq!(fmt_elapsed(Duration::from_secs(192)), "3m12s");
    }

    #[test]
    fn hexdump_groups_and_collapses_repeats() {
        let mut bytes = vec![0u8; 64];
        bytes[..4].copy_from_slice(b"AB\x00\xff");
        let mut out = Vec::new();
        hexdump(&mut out, &bytes).unwrap();
        let s = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = s.lines().collect();
        assert_eq!(
            lines[0],
            "00000000  41 42 00 ff 00 00 00 00  00 00 00 00 00 00 00 00  |AB..............|"
        );
        assert_eq!(lines[1].split_whitespace().next(), Some("00000010"));
        assert_eq!(lines[2], "*");
        assert_eq!(lines[3], "00000040");
    }

    #[test]
    fn table_aligns_columns() {
        let mut t = Table::new(&["A", "LONGER"]);
        t.push(vec!["wide cell".into(), "x".into()]);
        let mut out = Vec::new();
        t.print(&mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "A          LONGER\nwide cell  x\n"
        );
    }
}
