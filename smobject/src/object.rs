//! [`RawObject`]: the low-level core. A data segment and its paired counter segment, created,
//! accessed and freed under the key file's `flock`, with the kernel's attach count as the
//! truth about who is attached.
//!
//! # The lifetime protocol
//! Every create, attach and detach runs while holding an exclusive `flock` on the key file.
//! The kernel releases that lock when its holder dies, so a process killed at any instruction
//! never leaves it held. Under the lock:
//! - *create* makes the data segment, then the counter segment (both `IPC_CREAT|IPC_EXCL`),
//!   writes the header and marks it ready last. A creator that dies part-way leaves a pair
//!   nobody is attached to, which the next opener removes.
//! - *attach* validates owner, mode, sizes and the header copy before attaching the data,
//!   then sets the count at offset 0 from the kernel's `shm_nattch`.
//! - *detach* detaches the data, reads `shm_nattch`, stores it as the count, and removes both
//!   segments when it reached zero ("last one out frees").
//!
//! A pair whose every process was killed has `shm_nattch == 0`: it is *stale*, and the next
//! `create`/`open_or_create` removes it, [`remove_stale`] removes it on demand, and `access`
//! may still attach it to read the last data.

use std::fs::File;
use std::path::Path;
use std::ptr::NonNull;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::error::{Error, ErrorKind, Result};
use crate::header::{self, HeaderPtr, Ident, FORMAT_VERSION, HEADER_SIZE, MAGIC};
use crate::key::Key;
use crate::schema::Schema;
use crate::sys::{self, SegInfo};

/// What the object holds: its size and, for a typed object, its schema.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    /// Bytes of the data segment.
    pub size: usize,
    /// The struct's schema, stored in the object by its creator and checked by the prefix
    /// rule on attach ([`Schema::check_prefix`]); `None` for untyped bytes (accepts any object
    /// of at least `size` bytes).
    pub schema: Option<Schema>,
}

impl Layout {
    /// Untyped bytes, as the original class shared them.
    #[must_use]
    pub const fn untyped(size: usize) -> Layout {
        Layout { size, schema: None }
    }

    /// The layout of a struct annotated with `#[shared_memory]`.
    #[must_use]
    pub fn of<T: crate::SharedStruct>() -> Layout {
        Layout {
            size: std::mem::size_of::<T>(),
            schema: Some(T::SCHEMA.to_schema()),
        }
    }

    /// The layout a schema describes (for objects created without a Rust type: tools, other
    /// languages).
    #[must_use]
    pub fn from_schema(schema: Schema) -> Layout {
        Layout {
            size: schema.size,
            schema: Some(schema),
        }
    }

    /// The layout fingerprint stored in the header: the schema's
    /// ([`StructDef::fingerprint`](crate::schema::StructDef::fingerprint)), 0 when untyped.
    #[must_use]
    pub fn fingerprint(&self) -> u64 {
        self.schema.as_ref().map_or(0, Schema::fingerprint)
    }

    fn type_name(&self) -> &str {
        self.schema.as_ref().map_or("", |s| s.name.as_str())
    }
}

/// How segments are created and which existing segments are trusted.
///
/// ```
/// use std::time::Duration;
/// let opts = smobject::Options::new().mode(0o660).allow_uid(1000).lock_timeout(Duration::from_secs(2));
/// assert_eq!(opts.get_mode(), 0o660);
/// ```
#[derive(Clone, Debug)]
pub struct Options {
    mode: u32,
    allowed_uids: Vec<u32>,
    lock_timeout: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Self::new()
    }
}

impl Options {
    /// Mode `0o600`, only this user's segments trusted, a 10 s bound on the key lock.
    #[must_use]
    pub fn new() -> Options {
        Options {
            mode: 0o600,
            allowed_uids: Vec::new(),
            lock_timeout: Duration::from_secs(10),
        }
    }

    /// Permission bits for new segments, and the broadest mode an existing object may have.
    /// Only read and write bits, including the owner's (`0o600`): a mode with other bits
    /// (execute, setuid, sticky) or without the owner's is refused, not narrowed, when the
    /// options are used ([`ErrorKind::InvalidOptions`]; [`validate`](Self::validate) checks
    /// beforehand). An existing object whose mode is broader is refused as
    /// [`ErrorKind::ForeignOwner`] when attaching; a stale one is removed whatever its mode.
    #[must_use]
    pub fn mode(mut self, mode: u32) -> Options {
        self.mode = mode;
        self
    }

    /// Also trust segments owned by `uid` (by default only the effective uid's are trusted).
    #[must_use]
    pub fn allow_uid(mut self, uid: u32) -> Options {
        self.allowed_uids.push(uid);
        self
    }

    /// How long to wait for the key file's lock before [`ErrorKind::Timeout`].
    #[must_use]
    pub fn lock_timeout(mut self, timeout: Duration) -> Options {
        self.lock_timeout = timeout;
        self
    }

    /// The permission bits.
    #[must_use]
    pub fn get_mode(&self) -> u32 {
        self.mode
    }

    /// Checks that the options can be used: [`ErrorKind::InvalidOptions`] for a mode with bits
    /// outside `0o666` or without the owner's read and write bits. Creating and attaching
    /// make this check (naming the key); a command-line tool can make it before.
    ///
    /// ```
    /// use smobject::{ErrorKind, Options};
    /// assert!(Options::new().mode(0o660).validate().is_ok());
    /// assert_eq!(Options::new().mode(0o755).validate().unwrap_err().kind(), ErrorKind::InvalidOptions);
    /// assert_eq!(Options::new().mode(0o060).validate().unwrap_err().kind(), ErrorKind::InvalidOptions);
    /// ```
    ///
    /// # Errors
    /// [`ErrorKind::InvalidOptions`], naming the mode, with a hint.
    pub fn validate(&self) -> Result<()> {
        check_mode(self.mode)
    }
}

/// How often, and how long apart, a counter segment's extra attachment is re-checked before it
/// is taken for a user rather than a header reader that attached it for a moment (the last
/// detacher in `Drop for RawObject`, a removed segment in `check_unreachable`): 20 x 0.5 ms.
const COUNTER_SETTLE_TRIES: u32 = 20;
const COUNTER_SETTLE_PAUSE: Duration = Duration::from_micros(500);

/// How to open.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Intent {
    Create,
    Access,
    OpenOrCreate,
}

/// An attached object: the data segment and the counter segment, counted in the count at
/// offset 0 of the counter segment. Dropping it detaches; the last one out frees both.
///
/// This is the untyped core [`Shared`](crate::Shared) and [`SMObject`](crate::SMObject) are
/// built on. It hands out raw pointers only: reading or writing the data soundly needs the
/// synchronisation [`Shared`](crate::Shared) provides.
pub struct RawObject {
    key: Key,
    lock_file: File,
    data_id: i32,
    counter_id: i32,
    data: NonNull<u8>,
    len: usize,
    counter: NonNull<u8>,
    header: HeaderPtr,
    ident: Ident,
    /// The schema stored in the object (validated on attach), `None` for an untyped object.
    schema: Option<std::sync::Arc<Schema>>,
    created: bool,
    lock_timeout: Duration,
    /// Set when a leaked write guard holds the lock inside the counter segment: `Drop` then
    /// neither detaches nor frees it (see `Shared`'s `Drop`).
    keep_counter: bool,
}

// SAFETY: the raw pointers are to shared mappings that live as long as the RawObject; the
// object has no thread affinity (shmdt may be called from any thread).
unsafe impl Send for RawObject {}
// SAFETY: `&RawObject` gives out only raw pointers and atomics; nothing is mutated through it.
unsafe impl Sync for RawObject {}

/// Holds the key file's `flock` for a critical section; released on drop.
struct KeyLock<'a>(&'a File);

impl<'a> KeyLock<'a> {
    fn take(file: &'a File, key: &Key, timeout: Duration) -> Result<KeyLock<'a>> {
        match sys::flock_exclusive(file, timeout) {
            Ok(true) => Ok(KeyLock(file)),
            Ok(false) => Err(Error::new(
                ErrorKind::Timeout,
                format!("the key file's lock was not free within {timeout:?}"),
            )
            .with_key(key)
            .hint("another process holds the key file's flock: is one stopped (SIGSTOP) or stuck in a debugger? (see `lslocks`)")),
            Err(e) => Err(Error::os("flock on the key file", &e).with_key(key)),
        }
    }
}

impl Drop for KeyLock<'_> {
    fn drop(&mut self) {
        sys::funlock(self.0);
    }
}

/// A segment found under a key.
#[derive(Clone, Copy, Debug)]
struct Found {
    id: i32,
    info: SegInfo,
}

fn find(key: &Key) -> Result<Option<Found>> {
    match sys::shmget(key.raw(), 0, 0) {
        Ok(id) => match sys::shm_stat(id) {
            Ok(info) => Ok(Some(Found { id, info })),
            // Removed between the two calls: as good as absent.
            Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::EIDRM)) => Ok(None),
            Err(e) => Err(Error::os("shmctl(IPC_STAT)", &e).with_key(key).hint(
                "the segment is not readable by this user: it belongs to another user; run as its owner or have it created with a mode that grants access",
            )),
        },
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
        Err(e) => Err(Error::os("shmget", &e).with_key(key)),
    }
}

/// [`ErrorKind::InvalidOptions`] unless `mode` holds only read and write bits, the owner's
/// among them (the creator attaches for reading and writing).
pub(crate) fn check_mode(mode: u32) -> Result<()> {
    let why = if mode & !0o666 != 0 {
        "has bits outside 0o666 (execute, setuid, sticky): shared memory has only read and write bits"
    } else if mode & 0o600 != 0o600 {
        "lacks the owner's read and write bits (0o600): the creating process itself could not attach"
    } else {
        return Ok(());
    };
    // The hint is the kind's own (`error::default_hint`).
    Err(Error::new(
        ErrorKind::InvalidOptions,
        format!("mode {mode:#o} {why}"),
    ))
}

/// Refuses a segment that is not ours or is more open than asked, before reading a byte.
fn check_owner(key: &Key, f: &Found, opts: &Options) -> Result<()> {
    check_segment(key, f, opts, true)
}

/// Refuses to remove a stale pair (or half pair) whose segments are not ours. Their mode
/// does not matter: nothing is read from a pair that is removed, so one left by an earlier run
/// with another mode (say 0660) is freed like any other.
fn check_removable(
    key: &Key,
    data: Option<Found>,
    counter: Option<Found>,
    opts: &Options,
) -> Result<()> {
    data.iter()
        .chain(counter.iter())
        .try_for_each(|f| check_segment(key, f, opts, false))
}

fn check_segment(key: &Key, f: &Found, opts: &Options, mode_matters: bool) -> Result<()> {
    let me = sys::geteuid();
    let owner_ok = f.info.uid == me || opts.allowed_uids.contains(&f.info.uid);
    let mode_ok = !mode_matters || f.info.mode & !opts.mode == 0;
    if owner_ok && mode_ok {
        return Ok(());
    }
    let why = if owner_ok {
        format!(
            "its mode {:#o} is broader than the {:#o} asked for",
            f.info.mode, opts.mode
        )
    } else {
        format!(
            "it is owned by uid {} (created by uid {}), not by uid {me}",
            f.info.uid, f.info.cuid
        )
    };
    Err(Error::new(ErrorKind::ForeignOwner, format!("refusing segment shmid {}: {why}", f.id))
        .with_key(key)
        .hint("another user may be squatting the key: check `ipcs -m -p`; remove it as its owner, or trust it with Options::allow_uid / a matching mode"))
}

fn stale(f: Option<Found>) -> bool {
    f.is_none_or(|f| f.info.nattch == 0)
}

/// Removes both segments (either may be missing).
fn remove_pair(data: Option<Found>, counter: Option<Found>) -> std::io::Result<()> {
    if let Some(d) = data {
        sys::shm_remove(d.id)?;
    }
    if let Some(c) = counter {
        sys::shm_remove(c.id)?;
    }
    Ok(())
}

/// Opens the key file for its `flock`. Non-blocking, so that a key file which is a FIFO (or a
/// device) cannot block the open before the lock's time-out applies; `flock` itself waits
/// whatever the file's `O_NONBLOCK`.
fn open_key_file(key: &Key) -> Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(key.path())
        .map_err(|e| {
            let err = Error::os("opening the key file", &e).with_key(key);
            match e.kind() {
                std::io::ErrorKind::NotFound => Error::new(ErrorKind::PathNotFound, format!("{} disappeared", key.path().display()))
                    .with_key(key)
                    .hint("the key file must exist for as long as the object is used"),
                std::io::ErrorKind::PermissionDenied => err.hint("the key file must be readable by every process that opens the object (it is locked with flock)"),
                _ => err,
            }
        })
}

/// Maps `shmget(IPC_CREAT)` failures to errors with the limit and sysctl named.
fn create_error(key: &Key, size: usize, e: &std::io::Error) -> Error {
    let errno = e.raw_os_error();
    match errno {
        Some(libc::EEXIST) => Error::os("shmget(IPC_CREAT|IPC_EXCL)", e).with_key(key).hint(
            "a segment appeared under this key outside smobject's lock (a program using the original protocol?); access it instead",
        ),
        Some(libc::EINVAL) => {
            let max = sys::read_limit("shmmax");
            if size == 0 {
                Error::new(ErrorKind::SizeMismatch, "a shared object cannot be empty").with_errno(errno).with_key(key)
            } else if max.is_some_and(|m| size as u64 > m) {
                Error::new(ErrorKind::Limit, format!("{size} bytes exceed SHMMAX ({} bytes)", max.unwrap_or(0)))
                    .with_errno(errno)
                    .with_key(key)
                    .hint("raise it with `sysctl -w kernel.shmmax=BYTES`")
            } else {
                Error::os("shmget(IPC_CREAT)", e).with_key(key)
            }
        }
        Some(libc::ENOSPC) => {
            let mni = sys::read_limit("shmmni");
            let used = std::fs::read_to_string("/proc/sysvipc/shm").map(|s| s.lines().count().saturating_sub(1) as u64).ok();
            let (which, sysctl) = match (mni, used) {
                (Some(m), Some(u)) if u >= m => ("SHMMNI (the number of segments)", "kernel.shmmni"),
                _ => ("SHMALL (total shared memory pages)", "kernel.shmall"),
            };
            Error::new(ErrorKind::Limit, format!("the kernel limit {which} is reached"))
                .with_errno(errno)
                .with_key(key)
                .hint(format!("free unused segments (`smobject gc`, `ipcs -m`) or raise it with `sysctl -w {sysctl}=N`"))
        }
        Some(libc::ENOMEM) => Error::os("shmget(IPC_CREAT)", e).with_key(key).hint("not enough memory for the segment: make it smaller or free memory"),
        _ => Error::os("shmget(IPC_CREAT)", e).with_key(key),
    }
}

impl RawObject {
    /// Creates a new object: fails with [`ErrorKind::AlreadyExists`] if a live one exists
    /// under `key`; a stale one (nobody attached, e.g. after a crash) is removed first.
    pub fn create(key: &Key, layout: Layout, opts: &Options) -> Result<RawObject> {
        Self::open(key, layout, opts, Intent::Create, None)
    }

    /// [`create`](Self::create), with `init` filling the data before any other process can
    /// attach (it runs under the key lock, before the header is marked ready).
    pub(crate) fn create_init(
        key: &Key,
        layout: Layout,
        opts: &Options,
        init: &dyn Fn(*mut u8),
    ) -> Result<RawObject> {
        Self::open(key, layout, opts, Intent::Create, Some(init))
    }

    /// Attaches to an existing object: [`ErrorKind::NotFound`] if there is none.
    pub fn access(key: &Key, layout: Layout, opts: &Options) -> Result<RawObject> {
        Self::open(key, layout, opts, Intent::Access, None)
    }

    /// Attaches to the live object under `key`, or creates it (removing a stale one first).
    /// [`RawObject::created`] tells which happened.
    pub fn open_or_create(key: &Key, layout: Layout, opts: &Options) -> Result<RawObject> {
        Self::open(key, layout, opts, Intent::OpenOrCreate, None)
    }

    fn open(
        key: &Key,
        layout: Layout,
        opts: &Options,
        intent: Intent,
        init: Option<&dyn Fn(*mut u8)>,
    ) -> Result<RawObject> {
        check_mode(opts.mode).map_err(|e| e.with_key(key))?;
        let size = layout.size;
        let file = open_key_file(key)?;
        let ckey = key.counter();
        let lock = KeyLock::take(&file, key, opts.lock_timeout)?;
        // The key file's identity, from the locked descriptor: recorded by a creator, checked
        // by an accessor (an ftok collision or a re-created key file shows as a difference).
        let file_id = sys::file_identity(&file).unwrap_or((0, 0));
        let data = find(key)?;
        let counter = find(&ckey)?;
        let exists = data.is_some() || counter.is_some();
        let is_stale = exists && stale(data) && stale(counter);
        if !exists {
            check_unreachable(key, file_id, opts)?;
        }
        let r = match (intent, exists, is_stale) {
            (Intent::Access, false, _) => Err(Error::new(ErrorKind::NotFound, "no object exists under this key")
                .with_key(key)
                .hint("is the creating process running? create it first, or use open_or_create")),
            (Intent::Access, true, _) | (Intent::OpenOrCreate, true, false) => Self::attach(key, &ckey, data, counter, &layout, opts, file_id),
            (Intent::Create, true, false) => Err(Error::new(
                ErrorKind::AlreadyExists,
                format!("a live object has {} attachment(s) (one per open handle, in one or more processes)", data.map_or(0, |d| d.info.nattch)),
            )
            .with_key(key)
            .hint("use access() or open_or_create() to share it; if its processes are gone, remove_stale() frees it")),
            (_, true, true) => {
                check_removable(key, data, counter, opts)?;
                remove_pair(data, counter).map_err(|e| Error::os("removing a stale pair", &e).with_key(key))?;
                Self::create_locked(key, &ckey, layout, opts, init, file_id)
            }
            (_, false, _) => Self::create_locked(key, &ckey, layout, opts, init, file_id),
        };
        drop(lock);
        r.map(|(parts, created)| RawObject::assemble(key, file, &parts, size, created, opts))
    }

    fn assemble(
        key: &Key,
        lock_file: File,
        p: &Parts,
        len: usize,
        created: bool,
        opts: &Options,
    ) -> RawObject {
        RawObject {
            key: key.clone(),
            lock_file,
            data_id: p.data_id,
            counter_id: p.counter_id,
            data: p.data,
            len,
            counter: p.counter,
            header: p.header,
            ident: p.ident,
            schema: p.schema.clone(),
            created,
            lock_timeout: opts.lock_timeout,
            keep_counter: false,
        }
    }

    /// Under the key lock, with no segment under either key.
    fn create_locked(
        key: &Key,
        ckey: &Key,
        layout: Layout,
        opts: &Options,
        init: Option<&dyn Fn(*mut u8)>,
        file_id: (u64, u64),
    ) -> Result<(Parts, bool)> {
        let schema_bytes = encoded_schema(key, &layout)?;
        let flags = libc::IPC_CREAT | libc::IPC_EXCL | opts.mode as i32;
        let data_id = sys::shmget(key.raw(), layout.size, flags)
            .map_err(|e| create_error(key, layout.size, &e))?;
        let counter_size = header::schema_offset(layout.size) + schema_bytes.len();
        crate::fault::point("create:after-data");
        let counter_id = match sys::shmget(ckey.raw(), counter_size, flags) {
            Ok(id) => id,
            Err(e) => {
                // Classify first: the limit check counts the segments in use.
                let err = create_error(ckey, counter_size, &e);
                let _ = sys::shm_remove(data_id);
                return Err(err);
            }
        };
        let undo = |err: Error| {
            let _ = sys::shm_remove(data_id);
            let _ = sys::shm_remove(counter_id);
            err
        };
        let counter =
            sys::shmat(counter_id).map_err(|e| undo(Error::os("shmat", &e).with_key(ckey)))?;
        let data = match sys::shmat(data_id) {
            Ok(p) => p,
            Err(e) => {
                // SAFETY: `counter` was attached just above and nothing refers into it.
                let _ = unsafe { sys::shmdt(counter) };
                return Err(undo(Error::os("shmat (data segment)", &e).with_key(key)));
            }
        };
        // SAFETY: the counter mapping is HEADER_SIZE + size bytes, page-aligned, and stays
        // mapped until the RawObject built from these parts detaches it.
        let header = unsafe { HeaderPtr::new(counter) };
        header
            .state()
            .store(header::STATE_INITIALISING, Ordering::Relaxed);
        let me = sys::cached_pid();
        let ident = Ident {
            magic: MAGIC,
            version: FORMAT_VERSION,
            header_size: HEADER_SIZE as u32,
            data_size: layout.size as u64,
            fingerprint: layout.fingerprint(),
            nonce: sys::random_u64(),
            creator_pid: me,
            mode: opts.mode,
            creator_start: sys::cached_start_time(),
            key_dev: file_id.0,
            key_ino: file_id.1,
            created_unix: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            flags: u64::from(key.id()),
            type_name: Ident::encode_type_name(layout.type_name()),
            path_hash: key.path_hash(),
            lock_abi: header::lock_abi(),
            schema_len: schema_bytes.len() as u64,
        };
        // Nobody else can have opened the segment through the protocol yet (we created it under
        // the key lock and the state is not READY); the stores are atomic all the same.
        header.write_ident(&ident);
        header.write_schema(layout.size, &schema_bytes);
        header
            .sync()
            .last_write
            .store(sys::monotonic_coarse_ns(), Ordering::Relaxed);
        crate::fault::point("create:before-ready");
        // SAFETY: the mutex slot is inside our fresh mapping and nobody uses it yet.
        if let Err(e) = unsafe { sys::mutex_init(header.mutex()) } {
            // SAFETY: both were attached above and nothing refers into them.
            let _ = unsafe { sys::shmdt(data) };
            // SAFETY: as above.
            let _ = unsafe { sys::shmdt(counter) };
            return Err(undo(Error::os("pthread_mutex_init", &e).with_key(key)));
        }
        if let Some(init) = init {
            init(data.as_ptr());
        }
        header.count().store(1, Ordering::Relaxed);
        // Release: pairs with the Acquire load in `attach`, publishing every header byte.
        header.state().store(header::STATE_READY, Ordering::Release);
        Ok((
            Parts {
                data_id,
                counter_id,
                data,
                counter,
                header,
                ident,
                schema: layout.schema.map(std::sync::Arc::new),
            },
            true,
        ))
    }

    /// Under the key lock, with at least one segment present.
    fn attach(
        key: &Key,
        ckey: &Key,
        data: Option<Found>,
        counter: Option<Found>,
        layout: &Layout,
        opts: &Options,
        file_id: (u64, u64),
    ) -> Result<(Parts, bool)> {
        let (Some(d), Some(c)) = (data, counter) else {
            let missing = if data.is_none() { "data" } else { "counter" };
            if stale(data) && stale(counter) {
                check_removable(key, data, counter, opts)?;
                let _ = remove_pair(data, counter);
                return Err(Error::new(ErrorKind::NotFound, format!("only a half-created pair was found (its {missing} segment was missing); it was removed"))
                    .with_key(key)
                    .hint("its creator died while creating it: create it again"));
            }
            return Err(Error::new(ErrorKind::NotAnObject, format!("the {missing} segment of the pair is missing while the other is attached"))
                .with_key(key)
                .hint("a program following the original protocol without a counter, or an `ipcrm`, may have caused this; `smobject rm` removes the pair once its processes stopped"));
        };
        check_owner(key, &d, opts)?;
        check_owner(ckey, &c, opts)?;
        if c.info.size < HEADER_SIZE {
            return Err(Error::new(ErrorKind::NotAnObject, format!("the counter segment has {} bytes, too few for a smobject header ({HEADER_SIZE})", c.info.size))
                .with_key(ckey)
                .hint("it was created by a program following the original protocol, or another application uses this key: start a smobject process first, or pick another id"));
        }
        // A typed layout's size is checked against the stored schema below, which names the
        // first missing field.
        if layout.schema.is_none() && d.info.size < layout.size {
            return Err(Error::new(
                ErrorKind::SizeMismatch,
                format!(
                    "the data segment has {} bytes, {} were asked for",
                    d.info.size, layout.size
                ),
            )
            .with_key(key)
            .hint("both sides must share the same struct; rebuild the older one"));
        }
        let counter_ptr = sys::shmat(c.id).map_err(|e| Error::os("shmat", &e).with_key(ckey))?;
        // SAFETY: the mapping has at least HEADER_SIZE bytes (checked above) and is page-aligned;
        // it stays mapped until we detach it below or in RawObject's Drop.
        let header = unsafe { HeaderPtr::new(counter_ptr) };
        let detach_counter = |err: Error| {
            // SAFETY: attached above; `header` is not used after this.
            let _ = unsafe { sys::shmdt(counter_ptr) };
            err
        };
        // Acquire: pairs with the creator's Release store of READY.
        let state = header.state().load(Ordering::Acquire);
        let ident = header.read_ident();
        if state != header::STATE_READY {
            if d.info.nattch == 0 && c.info.nattch == 0 {
                let e = detach_counter(Error::new(ErrorKind::NotFound, "the object's creator died before finishing it; the half-made pair was removed")
                    .with_key(key)
                    .hint("create it again"));
                let _ = remove_pair(data, counter);
                return Err(e);
            }
            return Err(detach_counter(
                Error::new(
                    ErrorKind::NotAnObject,
                    format!("the header's init state is {state}, not ready"),
                )
                .with_key(ckey),
            ));
        }
        let schema = match validate(key, &ident, &d, &c, layout, file_id)
            .and_then(|()| read_schema(key, header, &ident, &c))
            .and_then(|schema| check_schema(key, &ident, schema.as_ref(), layout).map(|()| schema))
        {
            Ok(schema) => schema.map(std::sync::Arc::new),
            Err(e) => return Err(detach_counter(e)),
        };
        let data_ptr = sys::shmat(d.id)
            .map_err(|e| detach_counter(Error::os("shmat (data segment)", &e).with_key(key)))?;
        // The count follows the kernel: we are attached now, so nattch includes us.
        // Other smobject processes cannot attach meanwhile (we hold the key lock): the kernel's
        // count is the one read before attaching, plus us.
        let nattch = d.info.nattch + 1;
        crate::fault::point("attach:before-count");
        header.count().fetch_add(1, Ordering::Relaxed);
        repair_count(header, nattch);
        Ok((
            Parts {
                data_id: d.id,
                counter_id: c.id,
                data: data_ptr,
                counter: counter_ptr,
                header,
                ident,
                schema,
            },
            false,
        ))
    }

    /// The key.
    #[must_use]
    pub fn key(&self) -> &Key {
        &self.key
    }

    /// The start of the data segment.
    #[must_use]
    pub fn as_ptr(&self) -> *mut u8 {
        self.data.as_ptr()
    }

    /// Bytes of data (the size asked for; the segment may be larger).
    #[must_use]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the object has zero bytes (never, for an object that exists).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether this handle created the object (as opposed to attaching to an existing one).
    #[must_use]
    pub fn created(&self) -> bool {
        self.created
    }

    /// The count at offset 0 of the counter segment: attached handles, as the original kept
    /// it (repaired from the kernel's attach count on every attach and detach).
    #[must_use]
    pub fn mem_ctr(&self) -> i32 {
        self.header.count().load(Ordering::Relaxed)
    }

    /// Attachments to the data segment as the kernel counts them (`shm_nattch`), which stays
    /// right when processes crash.
    pub fn attached(&self) -> Result<usize> {
        sys::shm_stat(self.data_id)
            .map(|i| i.nattch as usize)
            .map_err(|e| Error::os("shmctl(IPC_STAT)", &e).with_key(&self.key))
    }

    /// Sets the count at offset 0 to the kernel's attach count (what `decrement_mem_ctr` in
    /// the original was used for after a crash). Returns the new count.
    pub fn repair_count(&self) -> Result<i32> {
        let _lock = KeyLock::take(&self.lock_file, &self.key, self.lock_timeout)?;
        let n = self.attached()?;
        repair_count(self.header, n as u64);
        Ok(self.mem_ctr())
    }

    /// The random nonce of this instance of the object.
    #[must_use]
    pub fn nonce(&self) -> u64 {
        self.ident.nonce
    }

    /// The type name stored by the creator (`"(untyped)"` for untyped objects).
    #[must_use]
    pub fn type_name(&self) -> String {
        self.ident.type_name()
    }

    /// Bytes of data the object holds (its creator's struct size; at least [`len`](Self::len)).
    #[must_use]
    pub fn data_size(&self) -> usize {
        self.ident.data_size as usize
    }

    /// The schema stored in the object, `None` for an untyped object.
    #[must_use]
    pub fn schema(&self) -> Option<&Schema> {
        self.schema.as_deref()
    }

    /// The pid of the process that created the object.
    #[must_use]
    pub fn creator_pid(&self) -> i32 {
        self.ident.creator_pid
    }

    /// The data segment's shmid and the counter segment's.
    #[must_use]
    pub fn shmids(&self) -> (i32, i32) {
        (self.data_id, self.counter_id)
    }

    pub(crate) fn header(&self) -> &HeaderPtr {
        &self.header
    }

    /// Keeps the counter segment mapped (and the pair unfreed) when this handle drops: a leaked
    /// write guard holds the lock that lives in it.
    pub(crate) fn keep_counter_mapped(&mut self) {
        self.keep_counter = true;
    }
}

/// Attached segments and the validated header copy.
struct Parts {
    data_id: i32,
    counter_id: i32,
    data: NonNull<u8>,
    counter: NonNull<u8>,
    header: HeaderPtr,
    ident: Ident,
    schema: Option<std::sync::Arc<Schema>>,
}

fn repair_count(header: HeaderPtr, nattch: u64) {
    let n = i32::try_from(nattch).unwrap_or(i32::MAX);
    if header.count().load(Ordering::Relaxed) != n {
        header.count().store(n, Ordering::Relaxed);
    }
}

/// Under the key lock, with nothing under either key: looks for objects made for this key file
/// that its key no longer reaches. One removed (`IPC_RMID`, e.g. by `ipcrm`) while processes
/// still use it, or one made for a key file that was since deleted and re-created, would be
/// silently split from a new object under the key: both are errors. An unreachable object
/// nobody uses is garbage and is removed. Skipped where `/proc/sysvipc/shm` is unavailable.
fn check_unreachable(key: &Key, (dev, ino): (u64, u64), opts: &Options) -> Result<()> {
    let Ok(segments) = crate::inspect::segments() else {
        return Ok(());
    };
    let me = sys::geteuid();
    let counter_id = key.counter().id();
    let hash = key.path_hash();
    for s in segments
        .iter()
        .filter(|s| s.size >= HEADER_SIZE && (s.uid == me || opts.allowed_uids.contains(&s.uid)))
    {
        let top = ((s.key as u32) >> 24) as u8;
        let candidate = if s.removed {
            s.nattch > 0
        } else {
            s.key != 0 && top == counter_id
        };
        if !candidate {
            continue;
        }
        let Ok(h) = crate::inspect::read_header(s.shmid) else {
            continue;
        };
        if !h.valid || h.id != key.id() {
            continue;
        }
        let same_file = (h.key_dev, h.key_ino) == (dev, ino);
        // A removed segment still attached only by another process's header reader (this
        // same scan, `smobject ls`) goes within microseconds: only one that stays is in use.
        if s.removed && same_file && attachments_settle(s.shmid, 0) == Some(false) {
            return Err(Error::new(
                ErrorKind::Removed,
                format!("the object under this key was removed (e.g. by `ipcrm`) while it still has {} attachment(s) (its counter segment is shmid {})", s.nattch, s.shmid),
            )
            .with_key(key)
            .hint("a new object would not be shared with them: stop them first (see `smobject ls`), or use another id"));
        }
        if !s.removed && h.path_hash == hash && !same_file {
            // `s` is the counter segment: the data key has the object's id in the top byte.
            let data_key = crate::key::key_with_id(s.key, key.id());
            if s.nattch > 0 {
                return Err(Error::new(
                    ErrorKind::KeyCollision,
                    format!("the key file was deleted and re-created since its object (key {:#010x}) was made; that object still has {} attachment(s)", data_key as u32, s.nattch),
                )
                .with_key(key)
                .hint("a new object would not be shared with them: stop them, or restore the key file; never re-create a key file while its objects live"));
            }
            // Garbage from the old key file: nobody can reach it by key any more.
            if let Ok(d) = sys::shmget(data_key, 0, 0) {
                if sys::shm_stat(d).is_ok_and(|i| i.nattch == 0) {
                    let _ = sys::shm_remove(d);
                }
            }
            let _ = sys::shm_remove(s.shmid);
        }
    }
    Ok(())
}

/// The bytes of `layout`'s schema as the creator stores them (empty for untyped bytes).
fn encoded_schema(key: &Key, layout: &Layout) -> Result<Vec<u8>> {
    let bytes = match &layout.schema {
        Some(schema) => {
            if schema.size != layout.size {
                return Err(Error::new(
                    ErrorKind::SizeMismatch,
                    format!(
                        "the schema of `{}` describes {} bytes, the layout {}",
                        schema.name, schema.size, layout.size
                    ),
                )
                .with_key(key)
                .hint("build the layout with Layout::from_schema"));
            }
            schema.encode().map_err(|why| {
                Error::new(ErrorKind::LayoutMismatch, why)
                    .with_key(key)
                    .hint("split the struct into several objects")
            })?
        }
        None => Vec::new(),
    };
    Ok(bytes)
}

/// Whether segment `shmid` has at most `at_most` attachments within the settle time (a header
/// reader's extra attachment goes within microseconds; a user's stays): `Some(true)` once it
/// has, `Some(false)` if it still has more at the end, `None` if the segment is gone.
fn attachments_settle(shmid: i32, at_most: u64) -> Option<bool> {
    for _ in 0..COUNTER_SETTLE_TRIES {
        match sys::shm_stat(shmid) {
            Ok(i) if i.nattch > at_most => std::thread::sleep(COUNTER_SETTLE_PAUSE),
            Ok(_) => return Some(true),
            Err(_) => return None,
        }
    }
    Some(false)
}

/// Validates a header copy against the segments and what the caller expects.
fn validate(
    key: &Key,
    ident: &Ident,
    d: &Found,
    c: &Found,
    layout: &Layout,
    (dev, ino): (u64, u64),
) -> Result<()> {
    let ckey = key.counter();
    if ident.magic != MAGIC {
        return Err(Error::new(ErrorKind::NotAnObject, format!("the counter segment's magic is {:#018x}, not smobject's", ident.magic))
            .with_key(&ckey)
            .hint("another application uses this key, or the header was overwritten: pick another id or path"));
    }
    if ident.version != FORMAT_VERSION || ident.header_size as usize != HEADER_SIZE {
        let why = if ident.version < FORMAT_VERSION {
            ", which stores no schema"
        } else {
            ""
        };
        return Err(Error::new(ErrorKind::LayoutMismatch, format!("the object uses smobject format version {} (header {} bytes){why}; this build reads format version {FORMAT_VERSION} only", ident.version, ident.header_size))
            .with_key(key)
            .hint("build every process that shares the object against the same smobject release (or remove the old object once its processes stopped: `smobject rm`)"));
    }
    if ident.lock_abi != header::lock_abi() {
        return Err(Error::new(ErrorKind::LayoutMismatch, format!("the object's writer lock is a {} mutex; this program's C library uses a {}: they cannot share it", header::describe_lock_abi(ident.lock_abi), header::describe_lock_abi(header::lock_abi())))
            .with_key(key)
            .hint("build every process that shares the object for the same C library and word size (e.g. all glibc x86-64)"));
    }
    let data_size = usize::try_from(ident.data_size).unwrap_or(usize::MAX);
    let schema_len = usize::try_from(ident.schema_len).unwrap_or(usize::MAX);
    let counter_needed =
        header::schema_offset(data_size.min(usize::MAX / 2)).saturating_add(schema_len);
    if data_size > d.info.size || data_size > usize::MAX / 2 || c.info.size < counter_needed {
        return Err(Error::new(
            ErrorKind::NotAnObject,
            format!(
                "the header records {} data bytes and a {}-byte schema but the segments have {} and {}: corrupt header",
                ident.data_size, ident.schema_len, d.info.size, c.info.size
            ),
        )
        .with_key(key)
        .hint("remove the pair (`smobject rm`) once its processes stopped, and create it again"));
    }
    let recorded = (ident.key_dev, ident.key_ino);
    if (dev, ino) != (0, 0) && recorded != (0, 0) && recorded != (dev, ino) {
        return Err(Error::new(ErrorKind::KeyCollision, format!("the object was made for another key file (device {} inode {}; this one is device {dev} inode {ino})", ident.key_dev, ident.key_ino))
                .with_key(key)
                .hint("two key files give the same ftok key, or the key file was deleted and re-created: use one key file, never re-create it while objects live, or pick another id"));
    }
    if (ident.fingerprint == 0) != (schema_len == 0) || schema_len > crate::schema::MAX_SCHEMA_BYTES
    {
        return Err(Error::new(
            ErrorKind::NotAnObject,
            format!(
                "the header records fingerprint {:#018x} with a {}-byte schema: corrupt header",
                ident.fingerprint, ident.schema_len
            ),
        )
        .with_key(key)
        .hint("remove the pair (`smobject rm`) once its processes stopped, and create it again"));
    }
    if layout.schema.is_none() && layout.size > data_size {
        return Err(Error::new(
            ErrorKind::SizeMismatch,
            format!(
                "the object holds {data_size} bytes, {} were asked for",
                layout.size
            ),
        )
        .with_key(key)
        .hint("ask for at most the creator's size"));
    }
    Ok(())
}

/// Reads and decodes the schema stored in the counter segment (whose size `validate` checked).
/// Malformed bytes are [`ErrorKind::NotAnObject`].
fn read_schema(key: &Key, header: HeaderPtr, ident: &Ident, c: &Found) -> Result<Option<Schema>> {
    if ident.schema_len == 0 {
        return Ok(None);
    }
    let bytes = header.read_schema(ident.data_size as usize, ident.schema_len as usize);
    let schema = Schema::decode(&bytes).map_err(|why| {
        Error::new(ErrorKind::NotAnObject, format!("the object's schema is malformed: {why}"))
            .with_key(&key.counter())
            .hint("the counter segment was overwritten or another application uses this key: remove the pair (`smobject rm`) once its processes stopped")
    })?;
    let ok = schema.size as u64 == ident.data_size
        && schema.fingerprint() == ident.fingerprint
        && Ident::encode_type_name(&schema.name) == ident.type_name;
    if !ok {
        return Err(Error::new(ErrorKind::NotAnObject, format!("the object's schema (`{}`, {} bytes) does not match its header (`{}`, {} bytes, {} byte segment)", schema.name, schema.size, ident.type_name(), ident.data_size, c.info.size))
            .with_key(&key.counter())
            .hint("the counter segment was overwritten: remove the pair (`smobject rm`) once its processes stopped"));
    }
    Ok(Some(schema))
}

/// The append-only evolution rule between the struct this process uses (`layout`) and the
/// object's stored schema.
fn check_schema(key: &Key, ident: &Ident, object: Option<&Schema>, layout: &Layout) -> Result<()> {
    let Some(mine) = &layout.schema else {
        return Ok(());
    };
    let created_by = format!("the object created by pid {}", ident.creator_pid);
    let Some(object) = object else {
        return Err(Error::new(ErrorKind::LayoutMismatch, format!("{created_by} is untyped bytes (an `SMObject` or raw object), not `{}`", mine.name))
            .with_key(key)
            .hint("open it untyped (`SMObject`, `RawObject` with `Layout::untyped`), or use another id for the typed object"));
    };
    if object.fingerprint() == mine.fingerprint() {
        return Ok(());
    }
    mine.check_prefix_in(object, &created_by).map_err(|why| {
        Error::new(ErrorKind::LayoutMismatch, why)
            .with_key(key)
            .hint("a struct may only grow by appending fields; rebuild the older program, or remove the object (`smobject rm`) once its processes stopped")
    })
}

impl Drop for RawObject {
    /// Detaches; the last one out removes both segments. Never panics: if the key lock cannot
    /// be had within the lock time-out, it detaches without freeing, leaving a stale pair that
    /// the next `create`/`open_or_create` (or `remove_stale`) reclaims.
    fn drop(&mut self) {
        if self.keep_counter {
            // A leaked write guard holds the lock inside the counter segment: that mapping
            // stays until the process exits (the kernel then detaches it, and the pair is
            // freed or reclaimed as after a crash). The data segment is detached as usual.
            // SAFETY: `data` is our live attachment, unused after this (the handle is going).
            let _ = unsafe { sys::shmdt(self.data) };
            return;
        }
        let lock = KeyLock::take(&self.lock_file, &self.key, self.lock_timeout).ok();
        // SAFETY: `data` is our live attachment; after this nothing dereferences it (the
        // handle is being dropped, and typed wrappers borrow from it).
        let _ = unsafe { sys::shmdt(self.data) };
        crate::fault::point("detach:after-shmdt");
        if let Ok(d) = sys::shm_stat(self.data_id) {
            repair_count(self.header, d.nattch);
            // We are still attached to the counter segment: 1 means only us (a program of the
            // original protocol may be attached to it alone). Readers of headers (another
            // creator's `check_unreachable` scan, `smobject ls`/`inspect`) attach counter
            // segments for a few microseconds without the key lock: give such a transient
            // attachment a few milliseconds to go before concluding that someone stays.
            if lock.is_some()
                && d.nattch == 0
                && attachments_settle(self.counter_id, 1) == Some(true)
            {
                let _ = sys::shm_remove(self.data_id);
                crate::fault::point("detach:after-rmid-data");
                let _ = sys::shm_remove(self.counter_id);
            }
        } else {
            // The data segment is gone (removed by someone else): release the counter too if
            // we were its last user.
            if let Ok(c) = sys::shm_stat(self.counter_id) {
                if lock.is_some() && c.nattch <= 1 {
                    let _ = sys::shm_remove(self.counter_id);
                }
            }
        }
        // Slots of leaked async futures on this header's futex word must go before the
        // address can be reused (see `asyncwait::forget_word`).
        #[cfg(feature = "async")]
        crate::asyncwait::forget_word(self.header.sync().futex_word());
        // SAFETY: `counter` is our live attachment and `header` is not used after this.
        let _ = unsafe { sys::shmdt(self.counter) };
        drop(lock);
    }
}

/// Removes the object under `(path, id)` if nobody is attached to it (e.g. every process
/// using it crashed). Returns whether something was removed.
///
/// # Errors
/// [`ErrorKind::InUse`] if processes are attached; [`ErrorKind::ForeignOwner`] if the
/// segments belong to another user; key errors as [`Key::from_path`].
///
/// ```
/// # let path = std::env::temp_dir().join(format!("smobject-doc-stale-{}", std::process::id()));
/// # std::fs::write(&path, b"")?;
/// assert!(!smobject::remove_stale(&path, b'a')?); // nothing there
/// # std::fs::remove_file(&path)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn remove_stale(path: impl AsRef<Path>, id: u8) -> Result<bool> {
    remove_stale_with(&Key::from_path(path, id)?, &Options::new())
}

/// [`remove_stale`] with explicit options (trusted uids, lock time-out).
pub fn remove_stale_with(key: &Key, opts: &Options) -> Result<bool> {
    let file = open_key_file(key)?;
    let _lock = KeyLock::take(&file, key, opts.lock_timeout)?;
    let data = find(key)?;
    let counter = find(&key.counter())?;
    if data.is_none() && counter.is_none() {
        return Ok(false);
    }
    if !(stale(data) && stale(counter)) {
        let n = data
            .map_or(0, |d| d.info.nattch)
            .max(counter.map_or(0, |c| c.info.nattch));
        return Err(Error::new(
            ErrorKind::InUse,
            format!("it has {n} attachment(s) (one per open handle, in one or more processes)"),
        )
        .with_key(key)
        .hint("stop them first; the last one to detach frees the object"));
    }
    check_removable(key, data, counter, opts)?;
    remove_pair(data, counter).map_err(|e| Error::os("shmctl(IPC_RMID)", &e).with_key(key))?;
    Ok(true)
}

/// Removes the pair under `key` whoever is attached, holding the key file's lock (waiting at
/// most `opts`' lock time-out), so that no process is creating or attaching it meanwhile.
pub(crate) fn remove_forced(key: &Key, opts: &Options) -> Result<()> {
    let file = open_key_file(key)?;
    let _lock = KeyLock::take(&file, key, opts.lock_timeout)?;
    crate::inspect::remove_key(key.raw(), true).map_err(|e| e.with_key(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(size: usize) -> Found {
        Found {
            id: 1,
            info: SegInfo {
                size,
                nattch: 1,
                uid: 0,
                cuid: 0,
                mode: 0o600,
                cpid: 1,
                lpid: 1,
                ctime: 0,
                removed: false,
            },
        }
    }

    fn valid_ident(size: usize) -> Ident {
        Ident {
            magic: MAGIC,
            version: FORMAT_VERSION,
            header_size: HEADER_SIZE as u32,
            data_size: size as u64,
            fingerprint: 0x1234,
            nonce: 1,
            creator_pid: 1,
            mode: 0o600,
            creator_start: 1,
            key_dev: 0,
            key_ino: 0,
            created_unix: 0,
            flags: u64::from(b'a'),
            type_name: Ident::encode_type_name("T"),
            path_hash: 0,
            lock_abi: header::lock_abi(),
            schema_len: 40,
        }
    }

    /// The header-validation fuzz target, run with a fixed budget: arbitrary header bytes and
    /// mutations of a valid header never panic, and are accepted only when every checked
    /// field is right.
    #[test]
    fn header_validation_fuzz() {
        let path = std::env::temp_dir().join(format!("smobject-fuzz-{}", std::process::id()));
        std::fs::write(&path, b"").unwrap();
        let key = Key::from_path(&path, b'a').unwrap();
        let layout = Layout::untyped(64);
        let (d, c) = (found(64), found(header::schema_offset(64) + 40));
        assert!(validate(&key, &valid_ident(64), &d, &c, &layout, (0, 0)).is_ok());
        let mut next = crate::xorshift(0x9e37_79b9_7f4a_7c15);
        let mut accepted = 0;
        for i in 0..200_000u32 {
            let mut bytes = valid_ident(64).to_bytes();
            match i % 3 {
                // Entirely random header.
                0 => bytes.iter_mut().for_each(|b| *b = next() as u8),
                // A few random bytes of a valid header.
                1 => {
                    for _ in 0..=(next() % 4) {
                        let at = (next() as usize) % bytes.len();
                        bytes[at] = next() as u8;
                    }
                }
                // Boundary values in the size and version fields.
                _ => {
                    let v =
                        [0, 1, 63, 64, 65, u64::MAX, u64::MAX / 2, 1 << 32][(next() % 8) as usize];
                    let at = [16usize, 8, 12, 24][(next() % 4) as usize];
                    bytes[at..at + 4].copy_from_slice(&(v as u32).to_ne_bytes());
                }
            }
            let ident = Ident::from_bytes(&bytes);
            let seg = found((next() % 200) as usize);
            for (dd, cc) in [(&d, &c), (&seg, &c), (&d, &seg)] {
                if validate(&key, &ident, dd, cc, &layout, (0, 0)).is_ok() {
                    accepted += 1;
                    assert_eq!(ident.magic, MAGIC);
                    assert_eq!(ident.version, FORMAT_VERSION);
                    assert_eq!(ident.fingerprint == 0, ident.schema_len == 0);
                    let size = ident.data_size as usize;
                    assert!(size >= 64 && dd.info.size >= size);
                    assert!(
                        cc.info.size >= header::schema_offset(size) + ident.schema_len as usize
                    );
                }
            }
        }
        assert!(accepted > 0, "mutations of unchecked fields are accepted");
        std::fs::remove_file(path).unwrap();
    }
}
