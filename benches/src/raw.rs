//! The baselines: bare syscalls, one `unsafe` operation per block. Errors become
//! `std::io::Error` here, in one place.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::ptr::NonNull;
use std::sync::atomic::AtomicU32;
use std::time::Duration;

fn check(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// `ftok(path, id)`.
///
/// # Errors
/// If the path cannot be stat'ed.
pub fn ftok(path: &Path, id: u8) -> io::Result<i32> {
    let c = CString::new(path.as_os_str().as_bytes()).map_err(io::Error::other)?;
    // SAFETY: `c` is a NUL-terminated string that lives across the call.
    check(unsafe { libc::ftok(c.as_ptr(), libc::c_int::from(id)) })
}

/// `shmget(key, size, flags)`.
///
/// # Errors
/// The call's errno.
#[inline]
pub fn shmget(key: i32, size: usize, flags: i32) -> io::Result<i32> {
    // SAFETY: plain syscall, no pointers.
    check(unsafe { libc::shmget(key, size, flags) })
}

/// `shmat(id, NULL, 0)`.
///
/// # Errors
/// The call's errno.
#[inline]
pub fn shmat(id: i32) -> io::Result<NonNull<u8>> {
    // SAFETY: a null address lets the kernel choose; no memory is touched.
    let p = unsafe { libc::shmat(id, std::ptr::null(), 0) };
    if p as isize == -1 {
        return Err(io::Error::last_os_error());
    }
    NonNull::new(p.cast::<u8>()).ok_or_else(|| io::Error::other("shmat returned null"))
}

/// `shmdt(addr)`.
///
/// # Safety
/// `addr` is an attachment of this process that nothing uses afterwards.
///
/// # Errors
/// The call's errno.
#[inline]
pub unsafe fn shmdt(addr: NonNull<u8>) -> io::Result<()> {
    // SAFETY: the caller's contract.
    check(unsafe { libc::shmdt(addr.as_ptr().cast()) }).map(drop)
}

/// `shmctl(id, IPC_RMID)`.
///
/// # Errors
/// The call's errno.
#[inline]
pub fn rmid(id: i32) -> io::Result<()> {
    // SAFETY: IPC_RMID takes no buffer.
    check(unsafe { libc::shmctl(id, libc::IPC_RMID, std::ptr::null_mut()) }).map(drop)
}

/// Attach count of segment `id`.
///
/// # Errors
/// The call's errno.
pub fn nattch(id: i32) -> io::Result<u64> {
    let mut ds = std::mem::MaybeUninit::<libc::shmid_ds>::zeroed();
    // SAFETY: `ds` is writable storage for a shmid_ds.
    check(unsafe { libc::shmctl(id, libc::IPC_STAT, ds.as_mut_ptr()) })?;
    // SAFETY: zero-initialised and filled by IPC_STAT; all fields are plain integers.
    let ds = unsafe { ds.assume_init() };
    Ok(ds.shm_nattch)
}

/// Removes the segment under `key` if it exists and nobody is attached.
pub fn remove_if_unattached(key: i32) {
    if let Ok(id) = shmget(key, 0, 0) {
        if nattch(id).is_ok_and(|n| n == 0) {
            let _ = rmid(id);
        }
    }
}

/// The raw single-segment lifecycle: `shmget(IPC_CREAT|IPC_EXCL)`, `shmat`, touch `touch`
/// bytes (one write per page), `shmdt`, `IPC_RMID`.
///
/// # Errors
/// Any call's errno.
#[inline]
pub fn lifecycle(key: i32, size: usize, touch: usize) -> io::Result<()> {
    let id = shmget(key, size, libc::IPC_CREAT | libc::IPC_EXCL | 0o600)?;
    let p = match shmat(id) {
        Ok(p) => p,
        Err(e) => {
            let _ = rmid(id);
            return Err(e);
        }
    };
    // SAFETY: `p` is our fresh attachment of `size >= touch` bytes.
    unsafe { touch_pages(p.as_ptr(), touch) };
    // SAFETY: attached above; not used after.
    let r = unsafe { shmdt(p) };
    rmid(id)?;
    r
}

/// Writes one byte per 4 KiB page of `len` bytes at `p` (first touch).
///
/// # Safety
/// `p` is valid for writes of `len` bytes that nobody else is using.
pub unsafe fn touch_pages(p: *mut u8, len: usize) {
    for off in (0..len).step_by(4096) {
        // SAFETY: `off < len`, inside the caller's range.
        let q = unsafe { p.add(off) };
        // SAFETY: `q` is in the caller's range, valid for a write.
        unsafe { q.write_volatile(1) };
    }
}

/// The raw attach sequence on an existing segment: `shmget(key, 0, 0)`, `shmat`, `shmdt`.
///
/// # Errors
/// Any call's errno.
#[inline]
pub fn attach_detach(key: i32) -> io::Result<()> {
    let id = shmget(key, 0, 0)?;
    let p = shmat(id)?;
    // SAFETY: attached above; not used after.
    unsafe { shmdt(p) }
}

/// A private segment (`IPC_PRIVATE`) attached here and already marked for removal, so it
/// dies with its last attachment whatever happens: children attach it by id.
#[derive(Debug)]
pub struct PrivateSeg {
    id: i32,
    ptr: NonNull<u8>,
    len: usize,
}

impl PrivateSeg {
    /// Creates, attaches and marks removed a segment of `len` bytes (zeroed).
    ///
    /// # Errors
    /// Any call's errno.
    pub fn new(len: usize) -> io::Result<PrivateSeg> {
        let id = shmget(libc::IPC_PRIVATE, len, libc::IPC_CREAT | 0o600)?;
        let ptr = shmat(id);
        // Marked removed at once (Linux still lets processes attach it by id).
        rmid(id)?;
        Ok(PrivateSeg { id, ptr: ptr?, len })
    }

    /// Attaches the segment `id` made by the parent.
    ///
    /// # Errors
    /// The call's errno.
    pub fn attach(id: i32, len: usize) -> io::Result<PrivateSeg> {
        Ok(PrivateSeg {
            id,
            ptr: shmat(id)?,
            len,
        })
    }

    /// The shmid, for a child.
    #[must_use]
    pub fn id(&self) -> i32 {
        self.id
    }

    /// The `i`-th `AtomicU32` of the segment (`i * 4 < len`).
    ///
    /// # Panics
    /// If `i` is out of bounds.
    #[must_use]
    pub fn word(&self, i: usize) -> &AtomicU32 {
        assert!(i * 4 + 4 <= self.len, "word {i} outside the segment");
        let p = self.ptr.as_ptr().cast::<u32>().wrapping_add(i);
        // SAFETY: in bounds (asserted), 4-aligned (page-aligned base), and the mapping lives
        // as long as `self`; every access to the shared words is atomic.
        unsafe { AtomicU32::from_ptr(p) }
    }

    /// The `i`-th `AtomicU64` of the segment.
    ///
    /// # Panics
    /// If `i` is out of bounds.
    #[must_use]
    pub fn word64(&self, i: usize) -> &std::sync::atomic::AtomicU64 {
        assert!(i * 8 + 8 <= self.len, "word {i} outside the segment");
        let p = self.ptr.as_ptr().cast::<u64>().wrapping_add(i);
        // SAFETY: as in `word`, 8-aligned.
        unsafe { std::sync::atomic::AtomicU64::from_ptr(p) }
    }

    /// `N` consecutive `AtomicU64`s from the `i`-th, as one array (a payload of `N` words).
    ///
    /// # Panics
    /// If the words are out of bounds.
    #[must_use]
    pub fn words64<const N: usize>(&self, i: usize) -> &[std::sync::atomic::AtomicU64; N] {
        assert!(
            (i + N) * 8 <= self.len,
            "words {i}..{} outside the segment",
            i + N
        );
        let p = self.ptr.as_ptr().cast::<u64>().wrapping_add(i);
        // SAFETY: in bounds (asserted), 8-aligned (page-aligned base), `[AtomicU64; N]` has the
        // layout of `[u64; N]`, and the mapping lives as long as `self`; as in `word`, every
        // access to the shared words is atomic.
        unsafe { &*p.cast::<[std::sync::atomic::AtomicU64; N]>() }
    }
}

impl Drop for PrivateSeg {
    fn drop(&mut self) {
        // SAFETY: our attachment; the atomics borrowed from it are gone with `&self`.
        let _ = unsafe { shmdt(self.ptr) };
    }
}

/// `FUTEX_WAIT` (shared, not `FUTEX_PRIVATE_FLAG`) while `*word == expected`, with a time-out.
pub fn futex_wait(word: &AtomicU32, expected: u32, timeout: Duration) {
    let ts = libc::timespec {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_nsec: libc::c_long::from(timeout.subsec_nanos() as i32),
    };
    // SAFETY: `word` is a live aligned u32; `ts` lives across the call.
    let _ = unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            std::ptr::from_ref(&ts),
        )
    };
}

/// `FUTEX_WAKE` (shared) of every waiter on `word`.
pub fn futex_wake(word: &AtomicU32) {
    // SAFETY: `word` is a live aligned u32; FUTEX_WAKE does not access it.
    let _ = unsafe { libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE, i32::MAX) };
}

/// Pins the calling thread to `cpu`.
///
/// # Errors
/// The call's errno (e.g. fewer CPUs).
pub fn pin_to_cpu(cpu: usize) -> io::Result<()> {
    // SAFETY: cpu_set_t is plain bits; all-zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid cpu_set_t and CPU_SET bounds-checks `cpu`.
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: `set` is initialised and its size is passed.
    check(unsafe {
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &raw const set)
    })
    .map(drop)
}

/// A blocking `eventfd` (inheritable: no `EFD_CLOEXEC`).
///
/// # Errors
/// The call's errno.
pub fn eventfd() -> io::Result<i32> {
    // SAFETY: plain syscall.
    check(unsafe { libc::eventfd(0, 0) })
}

/// A pipe `(read, write)`, inheritable.
///
/// # Errors
/// The call's errno.
pub fn pipe() -> io::Result<(i32, i32)> {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for two descriptors.
    check(unsafe { libc::pipe(fds.as_mut_ptr()) })?;
    Ok((fds[0], fds[1]))
}

/// A Unix stream socket pair, inheritable.
///
/// # Errors
/// The call's errno.
pub fn socketpair() -> io::Result<(i32, i32)> {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for two descriptors.
    check(unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_STREAM, 0, fds.as_mut_ptr()) })?;
    Ok((fds[0], fds[1]))
}

/// Writes all of `buf` to `fd`.
///
/// # Errors
/// The call's errno, or a short write.
#[inline]
pub fn write_fd(fd: i32, buf: &[u8]) -> io::Result<()> {
    // SAFETY: `buf` is valid for `buf.len()` bytes of reads.
    let n = unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) };
    if n == buf.len() as isize {
        Ok(())
    } else if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Err(io::Error::other("short write"))
    }
}

/// Reads exactly `buf.len()` bytes from `fd`.
///
/// # Errors
/// The call's errno, or end of file.
#[inline]
pub fn read_fd(fd: i32, buf: &mut [u8]) -> io::Result<()> {
    let mut done = 0;
    while done < buf.len() {
        // SAFETY: the range is inside `buf`, valid for writes.
        let n = unsafe { libc::read(fd, buf[done..].as_mut_ptr().cast(), buf.len() - done) };
        if n <= 0 {
            return Err(if n == 0 {
                io::Error::from(io::ErrorKind::UnexpectedEof)
            } else {
                io::Error::last_os_error()
            });
        }
        done += n as usize;
    }
    Ok(())
}

/// Closes `fd`, ignoring errors.
pub fn close(fd: i32) {
    // SAFETY: the callers own `fd` and do not use it afterwards.
    let _ = unsafe { libc::close(fd) };
}
