//! Who is attached, from `/proc/*/maps`, and user names from `/etc/passwd`.
//!
//! A SysV attachment appears in a process's maps as a shared mapping named `/SYSV%08x` (the key
//! in hex, followed by ` (deleted)`), whose inode column is the shmid. Matching on the shmid
//! rather than the key tells apart an old, removed segment from a new one under the same key.
//! Processes whose maps we may not read (another user's, without privileges) are skipped, so
//! the lists can be incomplete for an unprivileged caller; the kernel's attachment count is not.

use std::collections::{BTreeSet, HashMap};

/// shmid to the pids of the processes that have it mapped.
#[derive(Debug, Default)]
pub(crate) struct Attachments {
    by_shmid: HashMap<i64, BTreeSet<i32>>,
}

impl Attachments {
    /// Scans every process's maps once.
    pub(crate) fn scan() -> Attachments {
        let mut a = Attachments::default();
        let Ok(dir) = std::fs::read_dir("/proc") else {
            return a;
        };
        for entry in dir.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<i32>().ok())
            else {
                continue;
            };
            // Raced with the process's exit, or not ours to read: skip it.
            let Ok(maps) = std::fs::read_to_string(entry.path().join("maps")) else {
                continue;
            };
            for shmid in sysv_shmids(&maps) {
                a.by_shmid.entry(shmid).or_default().insert(pid);
            }
        }
        a
    }

    /// The pids attached to any of `shmids`, ascending, each once.
    pub(crate) fn pids(&self, shmids: impl IntoIterator<Item = i32>) -> Vec<i32> {
        let mut set = BTreeSet::new();
        for id in shmids {
            if let Some(p) = self.by_shmid.get(&i64::from(id)) {
                set.extend(p);
            }
        }
        set.into_iter().collect()
    }
}

/// The shmids of the SysV mappings in one maps file.
fn sysv_shmids(maps: &str) -> impl Iterator<Item = i64> + '_ {
    maps.lines().filter_map(|line| {
        // address perms offset dev inode pathname
        let mut f = line.split_ascii_whitespace();
        let inode = f.nth(4)?;
        let name = f.next()?;
        if !name.starts_with("/SYSV") {
            return None;
        }
        inode.parse().ok()
    })
}

/// `4242 (producer)`: a pid with its command name, if still readable.
pub(crate) fn describe_pid(pid: i32) -> String {
    match std::fs::read_to_string(format!("/proc/{pid}/comm")) {
        Ok(comm) => format!("{pid} ({})", comm.trim_end()),
        Err(_) => pid.to_string(),
    }
}

/// `4242 (producer), 4243 (consumer)`, or `none found`.
pub(crate) fn describe_pids(pids: &[i32]) -> String {
    if pids.is_empty() {
        return "none found".into();
    }
    pids.iter()
        .map(|&p| describe_pid(p))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Whether a process or thread with this id is running.
pub(crate) fn running(tid: i32) -> bool {
    tid > 0 && std::path::Path::new(&format!("/proc/{tid}")).exists()
}

/// uid to user name, from `/etc/passwd`.
#[derive(Debug, Default)]
pub(crate) struct Users {
    names: HashMap<u32, String>,
}

impl Users {
    /// Reads `/etc/passwd` (empty if unreadable: uids are then printed as numbers).
    pub(crate) fn load() -> Users {
        let text = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
        Users {
            names: parse_passwd(&text),
        }
    }

    /// The user's name, or the uid as a number.
    pub(crate) fn name(&self, uid: u32) -> String {
        self.names
            .get(&uid)
            .cloned()
            .unwrap_or_else(|| uid.to_string())
    }
}

fn parse_passwd(text: &str) -> HashMap<u32, String> {
    text.lines()
        .filter_map(|l| {
            let mut f = l.split(':');
            let name = f.next()?;
            let uid = f.nth(1)?.parse().ok()?;
            Some((uid, name.to_owned()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_sysv_mappings_by_inode() {
        let maps = "\
55d0c0a00000-55d0c0a01000 r--p 00000000 08:01 1234  /usr/bin/cat
7f3a1c000000-7f3a1c001000 rw-s 00000000 00:01 32770 /SYSV6101abcd (deleted)
7f3a1c100000-7f3a1c101000 r--s 00000000 00:01 0     /SYSV2701abcd (deleted)
7f3a1c200000-7f3a1c201000 rw-p 00000000 00:00 0
";
        assert_eq!(sysv_shmids(maps).collect::<Vec<_>>(), [32770, 0]);
    }

    #[test]
    fn passwd_maps_uids_to_names() {
        let m = parse_passwd(
            "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534::/:/bin/false\nbad\n",
        );
        assert_eq!(m.get(&0).map(String::as_str), Some("root"));
        assert_eq!(m.get(&65534).map(String::as_str), Some("nobody"));
        assert_eq!(m.len(), 2);
    }

    #[test]
    fn this_process_is_running() {
        assert!(running(std::process::id() as i32));
        assert!(!running(0));
    }
}
