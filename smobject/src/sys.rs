//! The only module that calls libc: SysV shared memory, `ftok`, `flock`, futexes, robust
//! process-shared mutexes and a few process facts. Every C return value becomes a
//! [`std::io::Result`] in one place ([`ret`]); callers add the key, path and hint.
//!
//! # References
//! `shmget(2)`, `shmat(2)`, `shmctl(2)`, `ftok(3)`, `flock(2)`, `futex(2)`,
//! `pthread_mutexattr_setrobust(3)`.

use std::ffi::CString;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::time::Duration;

/// Turns a C `-1`-on-error return value into a `Result` carrying `errno`.
fn ret(r: libc::c_int) -> io::Result<libc::c_int> {
    if r == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn c_path(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

/// `ftok(path, id)`.
pub(crate) fn ftok(path: &Path, id: u8) -> io::Result<i32> {
    let c = c_path(path)?;
    // SAFETY: `c` is a valid NUL-terminated string that outlives the call.
    let key = unsafe { libc::ftok(c.as_ptr(), libc::c_int::from(id)) };
    ret(key)
}

/// `(st_dev, st_ino)` of `path`, stored in the header to detect `ftok` collisions.
pub(crate) fn file_identity(file: &std::fs::File) -> io::Result<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let m = file.metadata()?;
    Ok((m.dev(), m.ino()))
}

/// `shmget(key, size, flags)`: the segment's id.
pub(crate) fn shmget(key: i32, size: usize, flags: i32) -> io::Result<i32> {
    // SAFETY: shmget takes no pointers; any argument values are defined behaviour.
    ret(unsafe { libc::shmget(key, size, flags) })
}

/// What `IPC_STAT` tells about a segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SegInfo {
    pub(crate) size: usize,
    pub(crate) nattch: u64,
    pub(crate) uid: u32,
    pub(crate) cuid: u32,
    pub(crate) mode: u32,
    pub(crate) cpid: i32,
    pub(crate) lpid: i32,
    pub(crate) ctime: i64,
    /// `SHM_DEST`: removed, alive until the last detach.
    pub(crate) removed: bool,
}

/// `shmctl(id, IPC_STAT)`.
#[doc(alias = "shmctl")]
pub(crate) fn shm_stat(id: i32) -> io::Result<SegInfo> {
    let mut ds = std::mem::MaybeUninit::<libc::shmid_ds>::zeroed();
    // SAFETY: `ds` points to writable memory of the size IPC_STAT fills.
    ret(unsafe { libc::shmctl(id, libc::IPC_STAT, ds.as_mut_ptr()) })?;
    // SAFETY: IPC_STAT succeeded and filled the struct (it was zeroed before, so every field is
    // initialised either way).
    let ds = unsafe { ds.assume_init() };
    #[allow(clippy::unnecessary_cast, clippy::useless_conversion)]
    let mode = u32::from(ds.shm_perm.mode as u16);
    Ok(SegInfo {
        #[allow(clippy::unnecessary_cast)]
        size: ds.shm_segsz as usize,
        #[allow(clippy::unnecessary_cast, clippy::useless_conversion)]
        nattch: ds.shm_nattch as u64,
        uid: ds.shm_perm.uid,
        cuid: ds.shm_perm.cuid,
        mode: mode & 0o777,
        cpid: ds.shm_cpid,
        lpid: ds.shm_lpid,
        #[allow(clippy::unnecessary_cast, clippy::useless_conversion)]
        ctime: ds.shm_ctime as i64,
        removed: mode & SHM_DEST != 0,
    })
}

#[cfg(target_os = "linux")]
const SHM_DEST: u32 = 0o1000;
#[cfg(not(target_os = "linux"))]
const SHM_DEST: u32 = 0;

/// `shmctl(id, IPC_RMID)`. Succeeds if the segment is already gone.
#[doc(alias = "shmctl")]
pub(crate) fn shm_remove(id: i32) -> io::Result<()> {
    // SAFETY: IPC_RMID takes no buffer; a null pointer is what the man page specifies.
    match ret(unsafe { libc::shmctl(id, libc::IPC_RMID, std::ptr::null_mut()) }) {
        Ok(_) => Ok(()),
        Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::EIDRM)) => Ok(()),
        Err(e) => Err(e),
    }
}

/// `shmat(id, NULL, 0)`: a read-write mapping of the whole segment.
pub(crate) fn shmat(id: i32) -> io::Result<NonNull<u8>> {
    // SAFETY: a null address lets the kernel choose where to map; no Rust object is affected.
    let p = unsafe { libc::shmat(id, std::ptr::null(), 0) };
    if p as isize == -1 {
        return Err(io::Error::last_os_error());
    }
    NonNull::new(p.cast::<u8>()).ok_or_else(|| io::Error::from_raw_os_error(libc::EFAULT))
}

/// `shmat(id, NULL, SHM_RDONLY)`: a read-only mapping, for inspection.
pub(crate) fn shmat_readonly(id: i32) -> io::Result<NonNull<u8>> {
    // SAFETY: a null address lets the kernel choose where to map; no Rust object is affected.
    let p = unsafe { libc::shmat(id, std::ptr::null(), libc::SHM_RDONLY) };
    if p as isize == -1 {
        return Err(io::Error::last_os_error());
    }
    NonNull::new(p.cast::<u8>()).ok_or_else(|| io::Error::from_raw_os_error(libc::EFAULT))
}

/// `shmdt(addr)`.
///
/// # Safety
/// `addr` must be an address returned by [`shmat`] that is still attached, and no reference
/// into the mapping may be used after this call.
pub(crate) unsafe fn shmdt(addr: NonNull<u8>) -> io::Result<()> {
    // SAFETY: the caller guarantees `addr` is a live attachment nobody uses any more.
    ret(unsafe { libc::shmdt(addr.as_ptr().cast()) }).map(drop)
}

/// Takes an exclusive `flock` on `file`, polling until `timeout`. `Ok(false)` on time-out.
/// The kernel releases the lock when its holder dies, which is what makes the create /
/// attach / detach critical sections crash-safe.
#[doc(alias = "flock")]
pub(crate) fn flock_exclusive(file: &std::fs::File, timeout: Duration) -> io::Result<bool> {
    let fd = file.as_raw_fd();
    let start = std::time::Instant::now();
    let mut pause = Duration::from_micros(20);
    loop {
        // SAFETY: `fd` is an open descriptor owned by `file` for the duration of the call.
        match ret(unsafe { libc::flock(fd, libc::LOCK_EX | libc::LOCK_NB) }) {
            Ok(_) => return Ok(true),
            Err(e) if e.raw_os_error() == Some(libc::EWOULDBLOCK) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
        if start.elapsed() >= timeout {
            return Ok(false);
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(2));
    }
}

/// Releases a `flock` taken by [`flock_exclusive`].
pub(crate) fn funlock(file: &std::fs::File) {
    // SAFETY: `fd` is an open descriptor owned by `file`. Unlocking cannot fail on a valid fd,
    // and a lock that could not be released is released anyway when the fd closes.
    let _ = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_UN) };
}

/// Kills this process with `SIGKILL` (fault injection).
#[cfg(feature = "fault-injection")]
pub(crate) fn kill_self() {
    // SAFETY: raise takes no pointers; SIGKILL cannot be caught, so this does not return.
    unsafe { libc::raise(libc::SIGKILL) };
}

/// Effective uid of this process.
pub(crate) fn geteuid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// This process's id (a syscall: glibc stopped caching it in 2.25; see [`cached_pid`]).
pub(crate) fn getpid() -> i32 {
    std::process::id() as i32
}

/// This process's id and start time, cached: `getpid` is a syscall and the start time costs
/// an open/read/close of `/proc/self/stat`, while an uncontended `write` must make no syscall
/// (the pid is stored as the last writer) and `create` should not pay for them every time.
/// 0 means not known yet; a `fork` child resets both, so it never keeps its parent's.
static PID: AtomicI32 = AtomicI32::new(0);
static START: AtomicU64 = AtomicU64::new(0);
static FORGET_ON_FORK: std::sync::Once = std::sync::Once::new();

/// `pthread_atfork` child handler: runs in the child right after `fork`. Async-signal-safe
/// (atomic stores only), as a handler in a child of a multi-threaded parent must be.
extern "C" fn forget_on_fork() {
    // Relaxed: the child's only thread reads them next.
    PID.store(0, Ordering::Relaxed);
    START.store(0, Ordering::Relaxed);
}

/// This process's id, without a syscall after the first call.
pub(crate) fn cached_pid() -> i32 {
    // Relaxed: a per-process cache; any value seen is this process's pid or 0 (the fork
    // handler runs in the child before any of its code can read it).
    let pid = PID.load(Ordering::Relaxed);
    if pid != 0 {
        return pid;
    }
    FORGET_ON_FORK.call_once(|| {
        // SAFETY: registers a child handler that only stores to static atomics; no prepare or
        // parent handler. Registration cannot be undone, which is fine for a static.
        let _ = unsafe { libc::pthread_atfork(None, None, Some(forget_on_fork)) };
    });
    let pid = getpid();
    PID.store(pid, Ordering::Relaxed);
    pid
}

/// This process's start time (see [`process_start_time`]), read once per process.
pub(crate) fn cached_start_time() -> u64 {
    let pid = cached_pid(); // registers the fork handler first
                            // Relaxed: as for PID.
    let t = START.load(Ordering::Relaxed);
    if t != 0 {
        return t;
    }
    let t = process_start_time(pid);
    START.store(t, Ordering::Relaxed);
    t
}

/// The start time of process `pid` in clock ticks since boot (`/proc/PID/stat` field 22), which
/// together with the pid identifies a process even after its pid is reused. 0 where unknown.
pub(crate) fn process_start_time(pid: i32) -> u64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0;
    };
    // The command name (field 2) is in parentheses and may contain spaces: split after it.
    let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
        return 0;
    };
    // `rest` starts at field 3; field 22 is the 20th from there.
    rest.split_ascii_whitespace()
        .nth(19)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// 64 random bits from the kernel, or a mix of time and pid where `getrandom` is missing.
pub(crate) fn random_u64() -> u64 {
    let mut buf = [0u8; 8];
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        // SAFETY: `buf` is writable for its full length.
        let n = unsafe { libc::getrandom(buf.as_mut_ptr().cast(), buf.len(), libc::GRND_NONBLOCK) };
        if n == buf.len() as isize {
            return u64::from_ne_bytes(buf);
        }
    }
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    buf = (t ^ (u64::from(std::process::id()) << 32)).to_ne_bytes();
    u64::from_ne_bytes(buf).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

/// Sleeps while the 32-bit word at `word` holds `expected`, at most `timeout` (none: forever).
/// Returns on a wake, a time-out, a signal or a spurious wake-up: the caller re-checks.
/// Shared (not `FUTEX_PRIVATE_FLAG`): waiters and wakers are in different processes.
///
/// # Safety
/// `word` must point to a live, 4-byte aligned word in memory shared with the wakers.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) unsafe fn futex_wait(word: *const u32, expected: u32, timeout: Option<Duration>) {
    let ts = timeout.map(|d| libc::timespec {
        tv_sec: d.as_secs().min(i64::MAX as u64) as libc::time_t,
        tv_nsec: libc::c_long::from(d.subsec_nanos() as i32),
    });
    let ts_ptr = ts.as_ref().map_or(std::ptr::null(), std::ptr::from_ref);
    // SAFETY: the caller guarantees `word` is valid; `ts_ptr` is null or points to `ts`, which
    // lives across the call. FUTEX_WAIT only reads the word.
    let _ = unsafe { libc::syscall(libc::SYS_futex, word, libc::FUTEX_WAIT, expected, ts_ptr) };
}

/// Wakes every process sleeping in [`futex_wait`] on `word`; returns how many were asleep.
///
/// # Safety
/// `word` must point to a live, 4-byte aligned word.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) unsafe fn futex_wake_all(word: *const u32) -> usize {
    // SAFETY: the caller guarantees `word` is valid; FUTEX_WAKE does not access it.
    let r = unsafe { libc::syscall(libc::SYS_futex, word, libc::FUTEX_WAKE, i32::MAX) };
    usize::try_from(r).unwrap_or(0)
}

/// [`futex_wait`] that reports how it ended: `Ok(())` when woken (or spuriously),
/// `Err(EAGAIN)` when the word did not hold `expected`, `Err(ETIMEDOUT)`, `Err(EINTR)`, or
/// `Err(EFAULT)` when nothing is mapped at `word`. With a zero `timeout` it only compares: the
/// kernel reads the word, and returns `ETIMEDOUT` if it holds `expected`.
///
/// # Safety
/// `word` must be 4-byte aligned, and be a futex word of a live mapping or one that was and may
/// since have been unmapped (the `async` feature's helper, see `asyncwait.rs`): the kernel reads
/// the 4 bytes there once, with fault handling (`EFAULT`), and never writes them.
#[cfg(all(feature = "async", any(target_os = "linux", target_os = "android")))]
pub(crate) unsafe fn futex_wait_outcome(
    word: *const u32,
    expected: u32,
    timeout: Option<Duration>,
) -> io::Result<()> {
    let ts = timeout.map(|d| libc::timespec {
        tv_sec: d.as_secs().min(i64::MAX as u64) as libc::time_t,
        tv_nsec: libc::c_long::from(d.subsec_nanos() as i32),
    });
    let ts_ptr = ts.as_ref().map_or(std::ptr::null(), std::ptr::from_ref);
    // SAFETY: `word` is aligned (the caller's contract) and FUTEX_WAIT only reads it, with
    // fault handling; `ts_ptr` is null or points to `ts`, which lives across the call.
    let r = unsafe { libc::syscall(libc::SYS_futex, word, libc::FUTEX_WAIT, expected, ts_ptr) };
    if r == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// One entry of a `futex_waitv(2)` call (the kernel's `struct futex_waitv`): wait while the
/// 32-bit word at `uaddr` holds `val`. Shared, not `FUTEX2_PRIVATE`: the wakers are writers in
/// other processes, which wake with plain (shared) `FUTEX_WAKE`.
#[cfg(all(feature = "async", any(target_os = "linux", target_os = "android")))]
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub(crate) struct FutexWaitv {
    val: u64,
    uaddr: u64,
    flags: u32,
    reserved: u32,
}

#[cfg(all(feature = "async", any(target_os = "linux", target_os = "android")))]
impl FutexWaitv {
    /// `FUTEX2_SIZE_U32` (`include/uapi/linux/futex.h`).
    const SIZE_U32: u32 = 0x02;

    /// Wait while the word at `word` holds `expected`.
    pub(crate) fn new(word: *const u32, expected: u32) -> FutexWaitv {
        FutexWaitv {
            val: u64::from(expected),
            uaddr: word as usize as u64,
            flags: Self::SIZE_U32,
            reserved: 0,
        }
    }
}

/// The most words one `futex_waitv` call takes (`FUTEX_WAITV_MAX`).
#[cfg(all(feature = "async", any(target_os = "linux", target_os = "android")))]
pub(crate) const FUTEX_WAITV_MAX: usize = 128;

/// Whether the kernel has `futex_waitv` (Linux 5.16+) and lets this process call it (a seccomp
/// filter may refuse it with `EPERM` or `ENOSYS`). Asks with an empty list, which a kernel that
/// has the call refuses with `EINVAL` before reading anything.
#[cfg(all(feature = "async", any(target_os = "linux", target_os = "android")))]
pub(crate) fn futex_waitv_supported() -> bool {
    let none = std::ptr::null::<FutexWaitv>();
    let no_timeout = std::ptr::null::<libc::timespec>();
    // SAFETY: with `nr_futexes == 0` the kernel returns EINVAL without touching memory; the
    // null pointers are never dereferenced.
    let r = unsafe {
        libc::syscall(
            libc::SYS_futex_waitv,
            none,
            0u32,
            0u32,
            no_timeout,
            libc::CLOCK_MONOTONIC,
        )
    };
    r == -1 && io::Error::last_os_error().raw_os_error() == Some(libc::EINVAL)
}

/// `futex_waitv(waiters, len, 0, NULL, CLOCK_MONOTONIC)`: sleeps, with no time-out, until one
/// of the words is woken, and returns its index. Fails at once with `EAGAIN` if a word did not
/// hold its value when the call started, `EFAULT` if one is not mapped, `EINTR` on a signal.
/// At most [`FUTEX_WAITV_MAX`] entries.
///
/// # Safety
/// Every entry's word must be 4-byte aligned, and be a futex word of a live mapping or one that
/// was and may since have been unmapped (see [`futex_wait_outcome`]): the kernel reads each
/// word once, with fault handling, and never writes them.
///
/// # References
/// `futex_waitv(2)`; `kernel/futex/syscalls.c` (`sys_futex_waitv`).
#[cfg(all(feature = "async", any(target_os = "linux", target_os = "android")))]
pub(crate) unsafe fn futex_waitv(waiters: &[FutexWaitv]) -> io::Result<usize> {
    debug_assert!(!waiters.is_empty() && waiters.len() <= FUTEX_WAITV_MAX);
    let no_timeout = std::ptr::null::<libc::timespec>();
    // SAFETY: `waiters` is a live array of `len` `struct futex_waitv`s (repr(C), reserved
    // fields 0), which the kernel copies in; each word is aligned (the caller's contract) and
    // only read, with fault handling; the null time-out is never dereferenced.
    let r = unsafe {
        libc::syscall(
            libc::SYS_futex_waitv,
            waiters.as_ptr(),
            waiters.len() as libc::c_uint,
            0u32,
            no_timeout,
            libc::CLOCK_MONOTONIC,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r as usize)
    }
}

/// Portable fallback where there is no futex: a short sleep; the caller re-checks.
///
/// # Safety
/// None beyond the Linux version's, kept for one signature.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) unsafe fn futex_wait(_word: *const u32, _expected: u32, timeout: Option<Duration>) {
    std::thread::sleep(
        timeout
            .unwrap_or(Duration::from_millis(1))
            .min(Duration::from_millis(1)),
    );
}

/// Portable fallback: waiters poll, nothing to wake.
///
/// # Safety
/// None.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) unsafe fn futex_wake_all(_word: *const u32) -> usize {
    1
}

/// Initialises a robust, process-shared, error-checking mutex in place.
///
/// # Safety
/// `m` must point to writable memory for a `pthread_mutex_t` that no other thread or process
/// uses yet.
pub(crate) unsafe fn mutex_init(m: *mut libc::pthread_mutex_t) -> io::Result<()> {
    let mut attr = std::mem::MaybeUninit::<libc::pthread_mutexattr_t>::uninit();
    // SAFETY: `attr` is writable storage for the attribute object.
    check(unsafe { libc::pthread_mutexattr_init(attr.as_mut_ptr()) })?;
    let a = attr.as_mut_ptr();
    let r = (|| {
        // SAFETY: `a` was initialised above.
        check(unsafe { libc::pthread_mutexattr_setpshared(a, libc::PTHREAD_PROCESS_SHARED) })?;
        // SAFETY: as above.
        check(unsafe { libc::pthread_mutexattr_setrobust(a, libc::PTHREAD_MUTEX_ROBUST) })?;
        // SAFETY: as above.
        check(unsafe { libc::pthread_mutexattr_settype(a, libc::PTHREAD_MUTEX_ERRORCHECK) })?;
        // SAFETY: `a` is initialised; the caller guarantees `m` is ours to initialise.
        check(unsafe { libc::pthread_mutex_init(m, a) })
    })();
    // SAFETY: `a` is initialised and no longer needed.
    unsafe { libc::pthread_mutexattr_destroy(a) };
    r
}

fn check(r: libc::c_int) -> io::Result<()> {
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(r))
    }
}

/// What locking a robust mutex gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Locked {
    /// Locked; the previous holder unlocked it.
    Clean,
    /// Locked, but the previous holder died holding it (`EOWNERDEAD`): repair the protected
    /// state, then call [`mutex_consistent`].
    OwnerDied,
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
extern "C" {
    /// glibc 2.30+: `pthread_mutex_timedlock` against a chosen clock (not in the `libc` crate).
    fn pthread_mutex_clocklock(
        m: *mut libc::pthread_mutex_t,
        clock: libc::clockid_t,
        abstime: *const libc::timespec,
    ) -> libc::c_int;
}

/// Locks `m`, waiting at most until `deadline` (none: forever). `Ok(None)` on time-out.
///
/// The deadline is on the monotonic clock (`Instant` is `CLOCK_MONOTONIC` on Linux), passed to
/// `pthread_mutex_clocklock(CLOCK_MONOTONIC)`, so a step of the wall clock neither stretches
/// nor cuts the wait. Elsewhere it falls back to `pthread_mutex_timedlock` with a wall-clock
/// deadline computed just before the call.
///
/// # Safety
/// `m` must point to a mutex initialised by [`mutex_init`], alive for the call.
pub(crate) unsafe fn mutex_lock(
    m: *mut libc::pthread_mutex_t,
    deadline: Option<std::time::Instant>,
) -> io::Result<Option<Locked>> {
    let r = match deadline {
        // SAFETY: the caller guarantees `m` is a live initialised mutex.
        None => unsafe { libc::pthread_mutex_lock(m) },
        Some(d) => {
            let left = d.saturating_duration_since(std::time::Instant::now());
            timed_lock(m, left)?
        }
    };
    match r {
        0 => Ok(Some(Locked::Clean)),
        libc::EOWNERDEAD => Ok(Some(Locked::OwnerDied)),
        libc::ETIMEDOUT => Ok(None),
        e => Err(io::Error::from_raw_os_error(e)),
    }
}

/// `now + d` as a `timespec` on `clock`, saturating far in the future.
fn deadline_on(clock: libc::clockid_t, d: Duration) -> io::Result<libc::timespec> {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a writable timespec for the duration of the call.
    ret(unsafe { libc::clock_gettime(clock, &raw mut now) })?;
    let nanos = i64::from(now.tv_nsec as i32) + i64::from(d.subsec_nanos());
    // `time_t` is i64 here and i32 on some 32-bit targets: widen explicitly.
    #[allow(clippy::unnecessary_cast, clippy::useless_conversion)]
    let now_secs = i64::from(now.tv_sec as i64);
    let secs = i64::try_from(d.as_secs())
        .unwrap_or(i64::MAX)
        .saturating_add(now_secs)
        .saturating_add(nanos / 1_000_000_000);
    Ok(libc::timespec {
        tv_sec: secs as libc::time_t,
        tv_nsec: (nanos % 1_000_000_000) as libc::c_long,
    })
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn timed_lock(m: *mut libc::pthread_mutex_t, left: Duration) -> io::Result<libc::c_int> {
    let ts = deadline_on(libc::CLOCK_MONOTONIC, left)?;
    // SAFETY: `m` is a live initialised mutex (`mutex_lock`'s contract); `ts` lives across
    // the call.
    Ok(unsafe { pthread_mutex_clocklock(m, libc::CLOCK_MONOTONIC, &raw const ts) })
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn timed_lock(m: *mut libc::pthread_mutex_t, left: Duration) -> io::Result<libc::c_int> {
    let ts = deadline_on(libc::CLOCK_REALTIME, left)?;
    // SAFETY: as in the glibc version.
    Ok(unsafe { libc::pthread_mutex_timedlock(m, &raw const ts) })
}

/// Marks a mutex whose owner died consistent again, after the caller repaired the state.
///
/// # Safety
/// The calling thread must hold `m`, obtained with [`Locked::OwnerDied`].
pub(crate) unsafe fn mutex_consistent(m: *mut libc::pthread_mutex_t) {
    // SAFETY: `m` is a live robust mutex held by this thread after EOWNERDEAD (the caller's
    // contract). POSIX lists EINVAL (not robust, or not inconsistent) as its only error, which
    // that contract rules out; the result is checked in debug builds.
    let r = unsafe { libc::pthread_mutex_consistent(m) };
    debug_assert_eq!(r, 0, "pthread_mutex_consistent");
}

/// Unlocks `m`.
///
/// # Safety
/// The calling thread must hold `m`.
pub(crate) unsafe fn mutex_unlock(m: *mut libc::pthread_mutex_t) {
    // SAFETY: `m` is a live mutex held by this thread (the caller's contract). For an
    // error-checking robust mutex the only error is EPERM (not the owner), which that contract
    // rules out; the result is checked in debug builds.
    let r = unsafe { libc::pthread_mutex_unlock(m) };
    debug_assert_eq!(r, 0, "pthread_mutex_unlock");
}

/// The sysctl limits that bound SysV shared memory, for error hints.
pub(crate) fn read_limit(name: &str) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/sys/kernel/{name}"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
}

/// Nanoseconds on `clock` (0 if the clock cannot be read, which Linux never does for the
/// monotonic clocks).
fn clock_ns(clock: libc::clockid_t) -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a writable timespec for the duration of the call.
    if unsafe { libc::clock_gettime(clock, &raw mut now) } != 0 {
        return 0;
    }
    #[allow(clippy::unnecessary_cast, clippy::useless_conversion)]
    let secs = u64::try_from(i64::from(now.tv_sec as i64)).unwrap_or(0);
    secs.saturating_mul(1_000_000_000)
        .saturating_add(u64::try_from(now.tv_nsec).unwrap_or(0))
}

/// `CLOCK_MONOTONIC_COARSE` in nanoseconds: what a publish stamps as its time. A vDSO read of
/// the last tick's time (a few ns, no syscall), at the kernel tick's resolution (1 to 10 ms):
/// enough to see that a writer has stalled, cheap enough for every write.
#[inline]
pub(crate) fn monotonic_coarse_ns() -> u64 {
    clock_ns(libc::CLOCK_MONOTONIC_COARSE)
}

/// `CLOCK_MONOTONIC` in nanoseconds: the clock of `std::time::Instant` on Linux.
pub(crate) fn monotonic_ns() -> u64 {
    clock_ns(libc::CLOCK_MONOTONIC)
}
