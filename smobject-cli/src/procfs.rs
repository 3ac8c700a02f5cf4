//! Who is attached, from `/proc/*/maps`, and user names from `/etc/passwd`.
//!
//! A SysV attachment appears in a process's maps as a shared mapping named `/SYSV%08x` (the key
//! it was created under, in hex, followed by ` (deleted)`), whose inode column is the shmid.
//! Matching on the shmid rather than the key tells apart an old, removed segment from a new one
//! under the same key. shmids are per IPC namespace, so only processes in the caller's IPC
//! namespace (same `/proc/PID/ns/ipc`) are counted, and where the segment's key is known the
//! mapping's name must carry it too. Processes whose maps or namespace we may not read
//! (another user's, without privileges) are skipped, so the lists can be incomplete for an
//! unprivileged caller; the kernel's attachment count is not.

use std::collections::{BTreeSet, HashMap};
use std::os::unix::fs::MetadataExt;

use smobject::inspect::Segment;

/// shmid to the pids of the processes (of this IPC namespace) that have it mapped, with the key
/// each mapping is named after.
#[derive(Debug, Default)]
pub(crate) struct Attachments {
    by_shmid: HashMap<i64, BTreeSet<(i32, u32)>>,
}

/// An IPC namespace: `st_dev` and `st_ino` of a `/proc/PID/ns/ipc` link's target.
fn ipc_namespace(pid: &str) -> Option<(u64, u64)> {
    let m = std::fs::metadata(format!("/proc/{pid}/ns/ipc")).ok()?;
    Some((m.dev(), m.ino()))
}

impl Attachments {
    /// Scans the maps of every process in the caller's IPC namespace once.
    pub(crate) fn scan() -> Attachments {
        let mut a = Attachments::default();
        // Without our own namespace we cannot tell which processes share our shmids.
        let Some(ours) = ipc_namespace("self") else {
            return a;
        };
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
            // Another IPC namespace's shmids are not ours (the same number is another segment);
            // a namespace we may not read, or a process that exited meanwhile: skip it.
            if ipc_namespace(&pid.to_string()) != Some(ours) {
                continue;
            }
            // Raced with the process's exit, or not ours to read: skip it.
            let Ok(maps) = std::fs::read_to_string(entry.path().join("maps")) else {
                continue;
            };
            for (shmid, key) in sysv_mappings(&maps) {
                a.by_shmid.entry(shmid).or_default().insert((pid, key));
            }
        }
        a
    }

    /// The pids attached to any of `segments`, ascending, each once: a mapping counts if its
    /// inode is the segment's shmid and, unless the segment was removed (its key then reads 0),
    /// its name carries the segment's key.
    pub(crate) fn pids<'a>(&self, segments: impl IntoIterator<Item = &'a Segment>) -> Vec<i32> {
        let mut set = BTreeSet::new();
        for s in segments {
            if let Some(p) = self.by_shmid.get(&i64::from(s.shmid)) {
                set.extend(
                    p.iter()
                        .filter(|&&(_, key)| key_matches(s.key, key))
                        .map(|&(pid, _)| pid),
                );
            }
        }
        set.into_iter().collect()
    }
}

/// Whether a mapping named after `mapped` can be of a segment whose key is now `segment` (0
/// once removed: any name then).
fn key_matches(segment: i32, mapped: u32) -> bool {
    segment == 0 || segment as u32 == mapped
}

/// The SysV mappings in one maps file: shmid (the inode) and the key in the name.
fn sysv_mappings(maps: &str) -> impl Iterator<Item = (i64, u32)> + '_ {
    maps.lines().filter_map(|line| {
        // address perms offset dev inode pathname
        let mut f = line.split_ascii_whitespace();
        let inode = f.nth(4)?;
        let name = f.next()?;
        let key = u32::from_str_radix(name.strip_prefix("/SYSV")?, 16).ok()?;
        Some((inode.parse().ok()?, key))
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
        assert_eq!(
            sysv_mappings(maps).collect::<Vec<_>>(),
            [(32770, 0x6101_abcd), (0, 0x2701_abcd)]
        );
    }

    #[test]
    fn mappings_must_carry_the_segments_key_unless_removed() {
        assert!(key_matches(0x6101_abcd, 0x6101_abcd));
        assert!(!key_matches(0x6101_abcd, 0x6201_abcd));
        assert!(key_matches(-1, 0xffff_ffff));
        assert!(
            key_matches(0, 0x6101_abcd),
            "a removed segment's key reads 0"
        );
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
