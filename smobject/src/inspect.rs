//! Looking at objects from outside: every smobject pair on the host, their headers and
//! states, and removal by key. What the `smobject` command is built on; Linux only (it reads
//! `/proc/sysvipc/shm`).
//!
//! Inspection never takes an object's locks and never writes to a segment: headers are read
//! through a read-only attachment and validated like any untrusted input.

use std::path::Path;
use std::sync::atomic::Ordering;

use std::time::Duration;

use crate::error::{Error, ErrorKind, Result};
use crate::header::{HeaderPtr, Ident, FORMAT_VERSION, HEADER_SIZE, MAGIC, STATE_READY};
use crate::key::{Key, COUNTER_OFFSET, ID_MAX, ID_MIN};
use crate::object::Options;
use crate::schema::{Schema, MAX_SCHEMA_BYTES};
use crate::sync::Region;
use crate::sys;

/// One SysV shared-memory segment, as `/proc/sysvipc/shm` lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Segment {
    /// The key (0 once removed: a removed segment's key is private).
    pub key: i32,
    /// The shmid.
    pub shmid: i32,
    /// Permission bits.
    pub mode: u32,
    /// Marked for removal (`SHM_DEST`); alive until the last detach.
    pub removed: bool,
    /// Size in bytes.
    pub size: usize,
    /// Creator's and last operator's pid.
    pub cpid: i32,
    /// Last `shmat`/`shmdt` pid.
    pub lpid: i32,
    /// Attachments (`shm_nattch`).
    pub nattch: u64,
    /// Owner uid.
    pub uid: u32,
    /// Creation (or last `IPC_SET`) time, seconds since the Unix epoch.
    pub ctime: i64,
}

/// Every segment on the host (in this IPC namespace).
///
/// # Errors
/// [`ErrorKind::Os`] if `/proc/sysvipc/shm` cannot be read (not Linux, or no `/proc`).
pub fn segments() -> Result<Vec<Segment>> {
    let text = read_proc_shm().map_err(|e| {
        Error::os("reading /proc/sysvipc/shm", &e).hint("inspection needs Linux's /proc")
    })?;
    Ok(parse_proc_shm(&text))
}

/// Reads `/proc/sysvipc/shm` with as few syscalls as it takes (`create` calls this).
fn read_proc_shm() -> std::io::Result<String> {
    use std::io::Read;
    let mut f = std::fs::File::open("/proc/sysvipc/shm")?;
    let mut buf = Vec::with_capacity(16 * 1024);
    f.read_to_end(&mut buf)?;
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

fn parse_proc_shm(text: &str) -> Vec<Segment> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 14 {
                return None;
            }
            let perms = u32::from_str_radix(f[2], 8).ok()?;
            Some(Segment {
                key: f[0].parse::<i64>().ok()? as i32,
                shmid: f[1].parse().ok()?,
                mode: perms & 0o777,
                removed: perms & 0o1000 != 0,
                size: f[3].parse().ok()?,
                cpid: f[4].parse().ok()?,
                lpid: f[5].parse().ok()?,
                nattch: f[6].parse().ok()?,
                uid: f[7].parse().ok()?,
                ctime: f[13].parse().ok()?,
            })
        })
        .collect()
}

/// What a counter segment's header says, copied out and decoded. Fields are as in
/// `docs/FORMAT.md`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct HeaderInfo {
    /// The count at offset 0.
    pub count: i32,
    /// Init state: 0 fresh, 1 initialising, 2 ready.
    pub state: u32,
    /// Whether magic, format version and header size are smobject's.
    pub valid: bool,
    /// Format version found.
    pub format: u32,
    /// The project id of the data key (the header's `flags` low byte).
    pub id: u8,
    /// Hash of the key file's canonical path.
    pub path_hash: u64,
    /// Bytes of data.
    pub data_size: u64,
    /// Layout fingerprint (0: untyped).
    pub fingerprint: u64,
    /// Instance nonce.
    pub nonce: u64,
    /// Type name (`"(untyped)"` if none).
    pub type_name: String,
    /// Creator pid and its start time (clock ticks since boot).
    pub creator_pid: i32,
    /// See `creator_pid`.
    pub creator_start: u64,
    /// Mode asked for at creation.
    pub mode: u32,
    /// Key file's device and inode.
    pub key_dev: u64,
    /// See `key_dev`.
    pub key_ino: u64,
    /// Creation time, seconds since the Unix epoch.
    pub created_unix: u64,
    /// Completed writes.
    pub version: u64,
    /// A write is in progress (or its writer died and nobody recovered yet).
    pub writing: bool,
    /// Whether a process may be asleep in `wait_for_update` (the next publish wakes it).
    pub sleepers: bool,
    /// Handles that keep this segment mapped because a write guard was leaked holding the
    /// lock (the lock stays held: the object can no longer be written).
    pub leaked_guards: u32,
    /// Dead writers' writes rolled back.
    pub recoveries: u64,
    /// Pid of the last writer.
    pub last_writer: i32,
    /// Thread id holding the writer lock, if held (glibc's robust mutex keeps the owner's tid in
    /// its first word; `None` elsewhere or when free).
    pub lock_owner: Option<i32>,
    /// `CLOCK_MONOTONIC_COARSE` nanoseconds of the last publish (of the creation before the
    /// first one); 0 if unknown. See [`last_write_age`](Self::last_write_age).
    pub last_write_ns: u64,
    /// The struct's schema stored in the counter segment: `None` for an untyped object, a
    /// header that is not valid and ready, or a malformed schema (then
    /// [`schema_error`](Self::schema_error) says why).
    pub schema: Option<Schema>,
    /// Why the stored schema could not be used (malformed bytes, sizes outside the segment, or
    /// a schema that does not match the header's fingerprint, size or type name). Such an
    /// object cannot be attached (`NotAnObject`).
    pub schema_error: Option<String>,
    /// For a mirror of an object on another host (`smobject subscribe`): the source's version
    /// of the value it holds and the source's publish time (ns since the Unix epoch, source
    /// host's clock); `None` if not a mirror.
    pub origin: Option<(u64, u64)>,
}

impl HeaderInfo {
    /// Whether the creator process (pid plus start time, so a reused pid does not count) is
    /// still running.
    #[must_use]
    pub fn creator_alive(&self) -> bool {
        self.creator_start != 0 && sys::process_start_time(self.creator_pid) == self.creator_start
    }

    /// How long ago the last write was published (or, before the first write, the object was
    /// created), at the kernel tick's resolution; `None` if the header holds no time. Measured
    /// on the clock writers stamp (`CLOCK_MONOTONIC_COARSE`), so it is never negative.
    #[must_use]
    pub fn last_write_age(&self) -> Option<Duration> {
        if self.last_write_ns == 0 {
            return None;
        }
        Some(Duration::from_nanos(
            sys::monotonic_coarse_ns().saturating_sub(self.last_write_ns),
        ))
    }
}

/// Reads and checks the schema stored in a counter segment of `segment_size` bytes whose
/// identity block is `ident`: `Ok(None)` for an untyped object. Untrusted input: every size is
/// checked against the segment before a byte is read, and the decoded schema must match the
/// header (as attaching requires).
fn stored_schema(
    h: HeaderPtr,
    ident: &Ident,
    segment_size: usize,
) -> std::result::Result<Option<Schema>, String> {
    if ident.schema_len == 0 {
        return if ident.fingerprint == 0 {
            Ok(None)
        } else {
            Err(format!(
                "the header records fingerprint {:#018x} but no schema",
                ident.fingerprint
            ))
        };
    }
    let len = usize::try_from(ident.schema_len)
        .ok()
        .filter(|&l| l <= MAX_SCHEMA_BYTES)
        .ok_or_else(|| format!("the header records a {}-byte schema", ident.schema_len))?;
    let data_size = usize::try_from(ident.data_size).unwrap_or(usize::MAX);
    // Where `header::schema_offset` puts it, computed without overflow.
    let fits = data_size
        .checked_next_multiple_of(8)
        .and_then(|d| d.checked_add(HEADER_SIZE))
        .and_then(|o| o.checked_add(len))
        .is_some_and(|end| end <= segment_size);
    if !fits {
        return Err(format!(
            "the header records {} data bytes and a {len}-byte schema, more than the counter segment's {segment_size} bytes hold",
            ident.data_size
        ));
    }
    let bytes = h.read_schema(data_size, len);
    let schema = Schema::decode(&bytes).map_err(|why| format!("malformed schema: {why}"))?;
    if schema.size as u64 != ident.data_size
        || schema.fingerprint() != ident.fingerprint
        || Ident::encode_type_name(&schema.name) != ident.type_name
    {
        return Err(format!(
            "the schema (`{}`, {} bytes) does not match the header (`{}`, {} bytes, fingerprint {:#018x})",
            schema.name,
            schema.size,
            ident.type_name(),
            ident.data_size,
            ident.fingerprint
        ));
    }
    Ok(Some(schema))
}

/// Reads the header of the counter segment `shmid` through a read-only attachment.
///
/// # Errors
/// [`ErrorKind::NotAnObject`] if the segment is smaller than a header; OS errors from
/// `shmat` (e.g. [`ErrorKind::PermissionDenied`]).
pub fn read_header(shmid: i32) -> Result<HeaderInfo> {
    let info = sys::shm_stat(shmid).map_err(|e| Error::os("shmctl(IPC_STAT)", &e))?;
    if info.size < HEADER_SIZE {
        return Err(Error::new(
            ErrorKind::NotAnObject,
            format!(
                "segment {shmid} has {} bytes, fewer than a header's {HEADER_SIZE}",
                info.size
            ),
        ));
    }
    let p = sys::shmat_readonly(shmid).map_err(|e| Error::os("shmat(SHM_RDONLY)", &e))?;
    // SAFETY: the mapping has at least HEADER_SIZE bytes (checked above), is page-aligned and
    // stays mapped until the shmdt below; we only read through it.
    let h = unsafe { HeaderPtr::new(p) };
    // `state` first (acquire): once it says READY, the identity block and the schema that the
    // creator wrote before it are complete.
    let state = h.state().load(Ordering::Acquire);
    let ident = h.read_ident();
    let valid = ident.magic == MAGIC
        && ident.version == FORMAT_VERSION
        && ident.header_size as usize == HEADER_SIZE;
    let (schema, schema_error) = if valid && state == STATE_READY {
        match stored_schema(h, &ident, info.size) {
            Ok(s) => (s, None),
            Err(why) => (None, Some(why)),
        }
    } else {
        (None, None)
    };
    let s = h.sync();
    // SAFETY: the mutex slot is inside the mapping and 4-aligned (MUTEX_OFFSET is a multiple of
    // 64 in a page-aligned mapping); its first word is glibc's lock word, which every C library
    // call accesses atomically, so an atomic load of it races with nothing.
    let lock_word = unsafe { std::sync::atomic::AtomicU32::from_ptr(h.mutex().cast::<u32>()) }
        .load(Ordering::Relaxed);
    let seq = s.seq.load(Ordering::Acquire);
    let out = HeaderInfo {
        count: h.count().load(Ordering::Relaxed),
        state,
        valid,
        format: ident.version,
        id: (ident.flags & 0xff) as u8,
        path_hash: ident.path_hash,
        data_size: ident.data_size,
        fingerprint: ident.fingerprint,
        nonce: ident.nonce,
        type_name: ident.type_name(),
        creator_pid: ident.creator_pid,
        creator_start: ident.creator_start,
        mode: ident.mode,
        key_dev: ident.key_dev,
        key_ino: ident.key_ino,
        created_unix: ident.created_unix,
        version: seq / 2,
        writing: seq % 2 == 1,
        sleepers: s.sleepers.load(Ordering::Relaxed) != 0,
        leaked_guards: s.leaked.load(Ordering::Relaxed),
        recoveries: s.recoveries.load(Ordering::Relaxed),
        last_writer: s.last_writer.load(Ordering::Relaxed),
        lock_owner: if cfg!(all(target_os = "linux", target_env = "gnu"))
            && lock_word & 0x3fff_ffff != 0
        {
            Some((lock_word & 0x3fff_ffff) as i32)
        } else {
            None
        },
        last_write_ns: s.last_write.load(Ordering::Relaxed),
        schema,
        schema_error,
        origin: match s.origin_version.load(Ordering::Relaxed) {
            0 => None,
            v => Some((v - 1, s.origin_time.load(Ordering::Relaxed))),
        },
    };
    // SAFETY: attached above; `h` is not used after this.
    let _ = unsafe { sys::shmdt(p) };
    Ok(out)
}

/// Where a pair stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PairState {
    /// Processes are attached and the header is valid.
    Live,
    /// Nobody is attached: its processes died. The next creator reclaims it.
    Stale,
    /// One of the two segments is missing.
    Half,
    /// The header is missing, invalid or not initialised (or unreadable for another reason
    /// than permissions).
    Corrupt,
    /// This user may not read the header (e.g. another user's `0600` object): the state is
    /// unknown, not broken.
    Unreadable,
}

impl std::fmt::Display for PairState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Live => "live",
            Self::Stale => "stale",
            Self::Half => "half",
            Self::Corrupt => "corrupt",
            Self::Unreadable => "unreadable",
        })
    }
}

/// A data segment and its counter segment, with the header decoded.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Pair {
    /// The data key, `ftok(path, id)`.
    pub data_key: i32,
    /// The counter key, `ftok(path, id - 58)`.
    pub counter_key: i32,
    /// The project id (the key's top byte).
    pub id: u8,
    /// The data segment, if present.
    pub data: Option<Segment>,
    /// The counter segment, if present.
    pub counter: Option<Segment>,
    /// The decoded header, or why it could not be read.
    pub header: Option<std::result::Result<HeaderInfo, String>>,
    /// Live, stale, half or corrupt.
    pub state: PairState,
}

/// The counter key for a data key: same low 24 bits, id minus 58 in the top byte.
#[must_use]
pub fn counter_key_of(data_key: i32) -> i32 {
    let id = ((data_key as u32) >> 24) as u8;
    crate::key::key_with_id(data_key, id.wrapping_sub(COUNTER_OFFSET))
}

/// Every smobject pair on the host: data keys whose id byte is in `'A'..='z'` and whose
/// counter segment exists, or whose counter segment carries a smobject header.
///
/// # Errors
/// As [`segments`].
pub fn pairs() -> Result<Vec<Pair>> {
    let segs = segments()?;
    let by_key = |k: i32| segs.iter().find(|s| s.key == k && k != 0).cloned();
    let mut out = Vec::new();
    let mut seen_counters = std::collections::HashSet::new();
    for s in &segs {
        let id = ((s.key as u32) >> 24) as u8;
        if s.key == 0 || !(ID_MIN..=ID_MAX).contains(&id) {
            continue;
        }
        let ck = counter_key_of(s.key);
        let counter = by_key(ck);
        let header = counter.as_ref().map(|c| read_header(c.shmid));
        if !matches!(header, Some(Ok(ref h)) if h.valid) && counter.is_none() {
            continue; // an unrelated segment whose key happens to have a letter on top
        }
        seen_counters.insert(ck);
        out.push(make_pair(s.key, ck, id, Some(s.clone()), counter, header));
    }
    // Counter segments whose data segment is gone.
    for s in &segs {
        if s.key == 0 || seen_counters.contains(&s.key) {
            continue;
        }
        let cid = ((s.key as u32) >> 24) as u8;
        let id = cid.wrapping_add(COUNTER_OFFSET);
        if !(ID_MIN..=ID_MAX).contains(&id) || s.size < HEADER_SIZE {
            continue;
        }
        if let Ok(h) = read_header(s.shmid) {
            if h.valid {
                let dk = crate::key::key_with_id(s.key, id);
                out.push(make_pair(dk, s.key, id, None, Some(s.clone()), Some(Ok(h))));
            }
        }
    }
    Ok(out)
}

fn make_pair(
    data_key: i32,
    counter_key: i32,
    id: u8,
    data: Option<Segment>,
    counter: Option<Segment>,
    header: Option<Result<HeaderInfo>>,
) -> Pair {
    let attached = data.as_ref().map_or(0, |d| d.nattch) + counter.as_ref().map_or(0, |c| c.nattch);
    let state = match (&data, &counter, &header) {
        (None, _, _) | (_, None, _) => PairState::Half,
        (_, _, Some(Ok(h))) if h.valid && h.state == STATE_READY => {
            if attached == 0 {
                PairState::Stale
            } else {
                PairState::Live
            }
        }
        (_, _, Some(Err(e))) if e.kind() == ErrorKind::PermissionDenied => PairState::Unreadable,
        _ => PairState::Corrupt,
    };
    let header = header.map(|h| h.map_err(|e| e.to_string()));
    Pair {
        data_key,
        counter_key,
        id,
        data,
        counter,
        header,
        state,
    }
}

/// The pair under a raw data key, if either segment exists.
///
/// # Errors
/// As [`segments`].
pub fn pair_by_key(data_key: i32) -> Result<Option<Pair>> {
    let segs = segments()?;
    let ck = counter_key_of(data_key);
    let find = |k: i32| segs.iter().find(|s| s.key == k).cloned();
    let (data, counter) = (find(data_key), find(ck));
    if data.is_none() && counter.is_none() {
        return Ok(None);
    }
    let header = counter.as_ref().map(|c| read_header(c.shmid));
    let id = ((data_key as u32) >> 24) as u8;
    Ok(Some(make_pair(data_key, ck, id, data, counter, header)))
}

/// Removes both segments of the pair under `(path, id)`, holding the key file's lock (so no
/// process can attach meanwhile; waiting for it at most the default lock time-out, 10 s).
/// Refuses a pair with processes attached unless `force` (attached processes keep their
/// mappings; the memory goes when they detach).
///
/// # Errors
/// [`ErrorKind::InUse`] (without `force`), [`ErrorKind::NotFound`],
/// [`ErrorKind::Timeout`] (the lock was not free in time), key errors.
pub fn remove(path: impl AsRef<Path>, id: u8, force: bool) -> Result<()> {
    let key = Key::from_path(path, id)?;
    if !force {
        return crate::object::remove_stale_with(&key, &Options::new()).and_then(|removed| {
            if removed {
                Ok(())
            } else {
                Err(
                    Error::new(ErrorKind::NotFound, "no object exists under this key")
                        .with_key(&key),
                )
            }
        });
    }
    crate::object::remove_forced(&key, &Options::new())
}

/// Removes both segments under a raw data key (and its counter key), without the key file's
/// lock: for pairs whose key file is gone. Refuses a pair with processes attached unless
/// `force`.
///
/// # Errors
/// [`ErrorKind::InUse`] (without `force`), [`ErrorKind::NotFound`], OS errors.
pub fn remove_key(data_key: i32, force: bool) -> Result<()> {
    let Some(p) = pair_by_key(data_key)? else {
        return Err(Error::new(
            ErrorKind::NotFound,
            format!(
                "no segment under key {:#010x} or its counter key",
                data_key as u32
            ),
        ));
    };
    // Each smobject handle attaches both segments: report the larger count, not the sum.
    let attached = p
        .data
        .as_ref()
        .map_or(0, |d| d.nattch)
        .max(p.counter.as_ref().map_or(0, |c| c.nattch));
    if attached > 0 && !force {
        return Err(Error::new(
            ErrorKind::InUse,
            format!(
                "it has {attached} attachment(s) (one per open handle, in one or more processes)"
            ),
        )
        .hint("stop the processes first (see `smobject ls`), or force the removal"));
    }
    for s in p.data.iter().chain(p.counter.iter()) {
        sys::shm_remove(s.shmid).map_err(|e| Error::os("shmctl(IPC_RMID)", &e))?;
    }
    Ok(())
}

/// A consistent copy of the data of the pair under a raw data key, taken through read-only
/// attachments with the optimistic half of the read protocol: it neither counts itself as
/// attached nor takes any lock, so inspecting a stale pair does not free it.
///
/// # Errors
/// [`ErrorKind::NotFound`] without a valid pair; [`ErrorKind::Timeout`] if writes kept
/// overlapping the copy for about a second; OS errors from `shmat`.
pub fn snapshot(data_key: i32) -> Result<Vec<u8>> {
    let not_found = || {
        Error::new(
            ErrorKind::NotFound,
            format!("no valid smobject pair under key {:#010x}", data_key as u32),
        )
    };
    let pair = pair_by_key(data_key)?.ok_or_else(not_found)?;
    let (Some(d), Some(c), Some(Ok(h))) = (pair.data, pair.counter, pair.header) else {
        return Err(not_found());
    };
    let len = usize::try_from(h.data_size).unwrap_or(usize::MAX);
    if !h.valid || len > d.size || c.size < HEADER_SIZE.saturating_add(len) {
        return Err(not_found());
    }
    let cp = sys::shmat_readonly(c.shmid).map_err(|e| Error::os("shmat(SHM_RDONLY)", &e))?;
    let dp = match sys::shmat_readonly(d.shmid) {
        Ok(dp) => dp,
        Err(e) => {
            // SAFETY: attached above, not used after.
            let _ = unsafe { sys::shmdt(cp) };
            return Err(Error::os("shmat(SHM_RDONLY)", &e));
        }
    };
    // SAFETY: the counter mapping holds the header and `len` backup bytes (checked above).
    let header = unsafe { HeaderPtr::new(cp) };
    let region = Region {
        header,
        data: dp.as_ptr(),
        len,
    };
    let mut buf = vec![0u8; len];
    let start = std::time::Instant::now();
    let mut ok = false;
    while !ok && start.elapsed() < std::time::Duration::from_secs(1) {
        // SAFETY: `buf` has `len` bytes; both mappings stay attached until below.
        ok = unsafe { region.try_read(buf.as_mut_ptr(), len) };
    }
    // SAFETY: attached above; `region` is not used after this.
    let _ = unsafe { sys::shmdt(dp) };
    // SAFETY: as above.
    let _ = unsafe { sys::shmdt(cp) };
    if ok {
        Ok(buf)
    } else {
        Err(Error::new(
            ErrorKind::Timeout,
            "writes kept overlapping the copy for a second",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_sysvipc_shm() {
        let text = "       key      shmid perms                  size  cpid  lpid nattch   uid   gid  cuid  cgid      atime      dtime      ctime                   rss                  swap\n\
                    1627720434     491542  1600                   100   596   597      1     0     0     0     0 1795839899          0 1795839899                     0                     0\n";
        let s = parse_proc_shm(text);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].shmid, 491_542);
        assert_eq!(s[0].mode, 0o600);
        assert!(s[0].removed);
        assert_eq!(
            (s[0].size, s[0].cpid, s[0].lpid, s[0].nattch),
            (100, 596, 597, 1)
        );
        assert_eq!(s[0].key, 1_627_720_434);
    }

    /// A counter segment's first page, as a mapping would be (page-aligned).
    #[repr(C, align(4096))]
    struct Page([u8; 4096]);

    /// A header of a `u64` field struct `Seq` with its schema, as a creator writes it.
    fn counter_with_schema() -> (Box<Page>, Ident, usize) {
        use crate::schema::{FieldDef, Scalar, StructDef, TypeDef};
        const SEQ: StructDef = StructDef {
            name: "Seq",
            size: 8,
            align: 8,
            fields: &[FieldDef {
                name: "seq",
                offset: 0,
                ty: TypeDef::Scalar(Scalar::U64),
            }],
        };
        let schema = SEQ.to_schema().encode().unwrap();
        let mut page = Box::new(Page([0; 4096]));
        let base = std::ptr::NonNull::new(page.0.as_mut_ptr()).unwrap();
        // SAFETY: the page is 4096 bytes (more than HEADER_SIZE plus the schema), page-aligned,
        // and outlives every use of the pointer below (the box is returned with it unused).
        let h = unsafe { HeaderPtr::new(base) };
        let mut ident = Ident::from_bytes(&[0; crate::header::IDENT_SIZE]);
        ident.data_size = 8;
        ident.fingerprint = SEQ.fingerprint();
        ident.type_name = Ident::encode_type_name("Seq");
        ident.schema_len = schema.len() as u64;
        h.write_schema(8, &schema);
        let size = crate::header::schema_offset(8) + schema.len();
        (page, ident, size)
    }

    #[test]
    fn stored_schema_is_checked_against_the_segment_and_the_header() {
        let (mut page, ident, size) = counter_with_schema();
        let base = std::ptr::NonNull::new(page.0.as_mut_ptr()).unwrap();
        // SAFETY: as in `counter_with_schema`; `page` lives until the end of the test.
        let h = unsafe { HeaderPtr::new(base) };
        let s = stored_schema(h, &ident, size).unwrap().unwrap();
        assert_eq!((s.name.as_str(), s.fields[0].name.as_str()), ("Seq", "seq"));

        // A segment too small for the recorded sizes, absurd sizes: refused, no panic.
        assert!(stored_schema(h, &ident, size - 1)
            .unwrap_err()
            .contains("more than the counter segment"));
        let mut huge = ident;
        huge.data_size = u64::MAX;
        assert!(stored_schema(h, &huge, size).is_err());
        huge = ident;
        huge.schema_len = u64::MAX;
        assert!(stored_schema(h, &huge, size).is_err());
        // A schema that is not the header's struct, and one without a schema.
        let mut other = ident;
        other.fingerprint ^= 1;
        assert!(stored_schema(h, &other, size)
            .unwrap_err()
            .contains("does not match the header"));
        let mut untyped = ident;
        untyped.schema_len = 0;
        assert!(
            stored_schema(h, &untyped, size).is_err(),
            "fingerprint without schema"
        );
        untyped.fingerprint = 0;
        assert_eq!(stored_schema(h, &untyped, size), Ok(None));
        // Scribbled bytes.
        let at = crate::header::schema_offset(8) + 6;
        page.0[at] ^= 0xff;
        // SAFETY: as above (a fresh pointer after the write through `page`).
        let h = unsafe { HeaderPtr::new(std::ptr::NonNull::new(page.0.as_mut_ptr()).unwrap()) };
        assert!(stored_schema(h, &ident, size).is_err());
    }

    #[test]
    fn counter_key_is_id_minus_58() {
        let k = (i32::from(b'a') << 24) | 0x12_3456;
        assert_eq!(counter_key_of(k), (i32::from(b'a' - 58) << 24) | 0x12_3456);
    }
}
