//! The synchronisation protocol over an object's bytes: a seqlock for lock-free consistent
//! snapshots, a robust process-shared mutex for exclusive writes that survive a writer's death,
//! an undo copy (the *backup*) to roll back a half-published write, and a futex on `seq` for
//! blocking waits. Untyped: [`Shared`](crate::Shared) puts types on top.
//!
//! # Memory model
//! No access to the data or the backup is a data race: every one is atomic and follows the
//! granule rule of [`copy`](crate::copy) (so racing accesses never partially overlap), readers
//! only load, and the writer changes a *private* copy and publishes it with atomic stores. No
//! `&T` or `&mut T` into the mapping ever exists. The seqlock's fences make a validated copy a
//! snapshot; an invalid copy is discarded and was a valid byte pattern all along.
//!
//! # Protocol (also in `docs/FORMAT.md`, for C programs)
//! Writer (`lock`/`write`), `seq` even (`s`):
//! 1. take the mutex; if `EOWNERDEAD`, [recover](Region::recover) first;
//! 2. Release fence; copy the data to the private buffer and from it to the backup; store
//!    `backup_seq = s` (Release);
//! 3. the caller changes the private buffer (no shared byte changes: a panic or a death here
//!    loses nothing and needs no rollback);
//! 4. publish: store `seq = s + 1` (Release), Release fence, store the private buffer to the
//!    data, store `seq = s + 2` (SeqCst); wake sleepers (see `wait_for_update`); unlock.
//!
//! Reader: load `seq` (Acquire); if even copy the data, else if `backup_seq == seq - 1` copy the
//! backup (the last complete value while a publish is in progress); Acquire fence; the copy is
//! good if `seq` is unchanged. After bounded retries the reader takes the mutex (with a short
//! time-out, retrying optimistically in between) and copies under it; `read_req`/`read_ack`
//! make a back-to-back writer let it in.
//!
//! Why the fences suffice (the classic seqlock argument, crossbeam's `SeqLock`):
//! - a reader's copy that loaded any byte of a publish in step 4 has, through the writer's
//!   Release fence after `seq = s + 1` and its own Acquire fence, `seq = s + 1` happen before
//!   its re-check, which then sees `seq != s`;
//! - a backup-path reader (it saw `s + 1` and `backup_seq = s`) whose copy loaded a byte that
//!   the *next* write stored to the backup in step 2 has, through that writer's Release fence
//!   (after its mutex acquisition, which follows `seq = s + 2`), `seq = s + 2` happen before
//!   its re-check, which then sees `seq != s + 1`;
//! - a reader whose copy loaded only bytes stored before `seq = s` or `backup_seq = s`
//!   (Release) and then saw them through `seq` (Acquire) sees complete values.
//!
//! A writer that dies holding the mutex hands the next locker `EOWNERDEAD`: if `seq` is odd it
//! died publishing, the data is half-written and the backup (taken at `seq - 1`) is copied
//! back; `seq` is made even, the mutex marked consistent, `recoveries` incremented. If `seq`
//! is odd but `backup_seq` is not `seq - 1`, no complete value exists (something outside the
//! protocol wrote the header): the lock is left unrecoverable and the error says how to repair.

use std::sync::atomic::{fence, Ordering};
use std::time::{Duration, Instant};

use crate::error::{Error, ErrorKind, Result};
use crate::header::{HeaderPtr, SyncWords};
use crate::sys::{self, Locked};

/// Optimistic attempts before a reader falls back to the lock, for small and large objects.
const SPINS_SMALL: u32 = 64;
const SPINS_LARGE: u32 = 4;
const LARGE: usize = 64 * 1024;
/// How long one locked-read attempt waits before trying optimistically again.
const READ_LOCK_SLICE: Duration = Duration::from_millis(2);
/// How long a writer lets a waiting fallback reader take the lock before going on.
const READER_GRACE: Duration = Duration::from_millis(5);

/// `now + timeout`, or `None` (no deadline) when that is not representable: a timeout of
/// `Duration::MAX` means "wait forever", never a panic.
pub(crate) fn deadline_after(timeout: Duration) -> Option<Instant> {
    Instant::now().checked_add(timeout)
}

/// The `Instant` of a `CLOCK_MONOTONIC(_COARSE)` stamp in nanoseconds (`Instant` is
/// `CLOCK_MONOTONIC` on Linux, but opaque): now, less the stamp's age.
pub(crate) fn instant_of(stamp_ns: u64) -> Instant {
    let now = Instant::now();
    let age = Duration::from_nanos(sys::monotonic_ns().saturating_sub(stamp_ns));
    now.checked_sub(age).unwrap_or(now)
}

/// Bytes of an attached object: data pointer and length plus its header.
#[derive(Clone, Copy)]
pub(crate) struct Region {
    pub(crate) header: HeaderPtr,
    /// The data segment: page-aligned, `len` bytes, only accessed through `copy`.
    pub(crate) data: *mut u8,
    /// The object's length, which fixes its granules (see `copy`).
    pub(crate) len: usize,
}

impl Region {
    /// The region of an attached object: its data segment with the object's whole length (its
    /// creator's struct, which may have more fields than the opener's by the prefix rule): the
    /// length fixes the granules, and writes publish all of it.
    pub(crate) fn of(object: &crate::RawObject) -> Region {
        Region {
            header: *object.header(),
            data: object.as_ptr(),
            len: object.data_size(),
        }
    }

    fn sync(&self) -> &SyncWords {
        self.header.sync()
    }

    /// The number of completed writes: `seq / 2`.
    #[inline]
    pub(crate) fn version(&self) -> u64 {
        // Acquire: pairs with the writer's SeqCst (so also Release) store of the even `seq`, so
        // a `read` after seeing version v returns that version or a newer one.
        self.sync().seq.load(Ordering::Acquire) / 2
    }

    /// Copies a consistent snapshot of the first `n` bytes into `dst`.
    ///
    /// # Safety
    /// `dst` must be valid for `n` bytes of writes, `n <= len`, and the region's pointers live.
    #[inline]
    pub(crate) unsafe fn read(&self, dst: *mut u8, n: usize) {
        // SAFETY: forwarded from the caller.
        if unsafe { self.try_read(dst, n) } {
            return;
        }
        // SAFETY: forwarded from the caller.
        let done = unsafe { self.read_until(dst, n, None) };
        debug_assert!(
            done.is_some(),
            "a read without deadline only returns when done"
        );
    }

    /// [`read`](Self::read) giving up at `deadline`: the version the snapshot holds, or `None`
    /// if no consistent snapshot could be taken by then (a writer holding the lock that long,
    /// or a corrupted header).
    ///
    /// # Safety
    /// As for [`read`](Self::read).
    #[cold]
    #[inline(never)]
    pub(crate) unsafe fn read_until(
        &self,
        dst: *mut u8,
        n: usize,
        deadline: Option<Instant>,
    ) -> Option<u64> {
        let spins = if self.len >= LARGE {
            SPINS_LARGE
        } else {
            SPINS_SMALL
        };
        loop {
            for _ in 0..spins {
                // SAFETY: forwarded from the caller.
                if let Some(version) = unsafe { self.try_read_version(dst, n) } {
                    return Some(version);
                }
                std::hint::spin_loop();
            }
            // SAFETY: forwarded from the caller.
            match unsafe { self.locked_read(dst, n) } {
                Ok(Some(version)) => return Some(version),
                Ok(None) => {}
                // The lock is unusable (unrecoverable): do not spin hot on it.
                Err(()) => std::thread::sleep(READ_LOCK_SLICE),
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return None;
            }
        }
    }

    /// One optimistic attempt; true if `dst` now holds a consistent snapshot of `n` bytes.
    ///
    /// # Safety
    /// As for [`read`](Self::read).
    #[inline]
    pub(crate) unsafe fn try_read(&self, dst: *mut u8, n: usize) -> bool {
        // SAFETY: forwarded from the caller.
        unsafe { self.try_read_version(dst, n) }.is_some()
    }

    /// [`try_read`](Self::try_read), returning the version of the snapshot (`seq / 2` of the
    /// data, or of the backup while a publish is in progress).
    ///
    /// # Safety
    /// As for [`read`](Self::read).
    #[inline]
    pub(crate) unsafe fn try_read_version(&self, dst: *mut u8, n: usize) -> Option<u64> {
        let s = self.sync();
        // Ask for the data's first line now, so that its miss overlaps the one on `seq`
        // instead of following it (a reader that waited for a new version misses on both).
        prefetch(self.data);
        // Acquire: pairs with the writer's Release/SeqCst stores of `seq`.
        let seq = s.seq.load(Ordering::Acquire);
        let src = if seq % 2 == 0 {
            self.data
        } else if s.backup_seq.load(Ordering::Acquire) == seq.wrapping_sub(1) {
            // A publish is in progress; the backup holds the version before it, complete.
            self.header.backup()
        } else {
            return None;
        };
        // The granules of the first `n` bytes depend on `len` only when `n` ends inside a word
        // and more bytes follow; otherwise pass `n` as the length too, which a typed `read`
        // knows at compile time (the copy then unrolls into a few moves).
        let len = if n % 8 == 0 || n == self.len {
            n
        } else {
            self.len
        };
        // SAFETY: `src` is the data segment or the backup, each `len` bytes, page- or
        // HEADER_SIZE-aligned, live while the region is, and only accessed by the granule rule
        // for the object's length, whose granules over the first `n` bytes are those of `len`
        // (above); `dst` is valid for `n <= len` bytes and private (the caller's contract).
        // The loads are atomic: a concurrent writer makes the copy stale, never a data race.
        unsafe { crate::copy::load(src, dst, n, len) };
        // Acquire fence: the copy's loads happen before the re-check (see the module docs).
        fence(Ordering::Acquire);
        (s.seq.load(Ordering::Relaxed) == seq).then_some(seq / 2)
    }

    /// Copies under the writer lock, waiting at most one slice: `Ok(Some(version))` when done,
    /// `Ok(None)` if the slice passed (or this thread holds the lock), `Err` if the lock is
    /// unusable.
    ///
    /// # Safety
    /// As for [`read`](Self::read).
    unsafe fn locked_read(&self, dst: *mut u8, n: usize) -> std::result::Result<Option<u64>, ()> {
        let s = self.sync();
        s.read_req.fetch_add(1, Ordering::AcqRel);
        // Release on every exit: the writer's grace loop acquires it.
        let ack = || s.read_ack.fetch_add(1, Ordering::Release);
        let held = match self.lock(Some(Instant::now() + READ_LOCK_SLICE)) {
            Ok(Some(held)) => held,
            Ok(None) => {
                ack();
                return Ok(None);
            }
            Err(e) => {
                ack();
                // EDEADLK: this thread holds a write guard; optimistic reads succeed meanwhile.
                return if e.errno() == Some(libc::EDEADLK) {
                    Ok(None)
                } else {
                    Err(())
                };
            }
        };
        ack();
        // SAFETY: we hold the writer lock, so `seq` is even (recovery ran if needed) and
        // nobody stores to the data; the loads are atomic all the same (granule rule), and
        // `dst` is valid for `n` bytes (the caller's contract).
        unsafe { crate::copy::load(self.data, dst, n, self.len) };
        let version = s.seq.load(Ordering::Relaxed) / 2;
        drop(held);
        Ok(Some(version))
    }

    /// Takes the writer lock (recovering from a dead holder) until `deadline`. `Ok(None)` on
    /// time-out.
    #[inline]
    fn lock(&self, deadline: Option<Instant>) -> Result<Option<Held>> {
        let m = self.header.mutex();
        let locked = loop {
            // SAFETY: the mutex lives in the mapped header, initialised by the creator.
            match unsafe { sys::mutex_lock(m, deadline) } {
                Ok(Some(l)) => break l,
                Ok(None) => return Ok(None),
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => {}
                Err(e) if e.raw_os_error() == Some(libc::EDEADLK) => {
                    return Err(Error::os("locking the writer lock", &e)
                        .hint("this thread already holds a write guard of this object: drop it before writing again"));
                }
                Err(e) if e.raw_os_error() == Some(libc::ENOTRECOVERABLE) => {
                    return Err(unrecoverable("the writer lock is unrecoverable (ENOTRECOVERABLE): a writer died and its write could not be rolled back").with_errno(Some(libc::ENOTRECOVERABLE)));
                }
                Err(e) => return Err(Error::os("locking the writer lock", &e)),
            }
        };
        // The guard exists from the instant the lock is held: whatever happens next (a panic,
        // an error), the lock is released by a live thread.
        let mut held = Held {
            mutex: m,
            owner_died: locked == Locked::OwnerDied,
            rolled_back: false,
        };
        crate::fault::point("write:locked");
        if held.owner_died {
            held.rolled_back = self.recover()?;
            // SAFETY: we hold the mutex, obtained with EOWNERDEAD, and repaired what it guards.
            unsafe { sys::mutex_consistent(m) };
        }
        Ok(Some(held))
    }

    /// Repairs what a writer that died holding the lock left, holding the lock. True if a
    /// half-published write was rolled back. An error leaves the mutex inconsistent, so that
    /// unlocking makes it unrecoverable for everyone.
    #[cold]
    #[inline(never)]
    fn recover(&self) -> Result<bool> {
        let s = self.sync();
        let seq = s.seq.load(Ordering::Relaxed);
        let rolled_back = if seq % 2 == 1 {
            if s.backup_seq.load(Ordering::Relaxed) != seq.wrapping_sub(1) {
                return Err(unrecoverable(format!(
                    "a writer died publishing (seq {seq} is odd) and the backup holds seq {}, not {}: no complete value is left to restore",
                    s.backup_seq.load(Ordering::Relaxed),
                    seq.wrapping_sub(1)
                )));
            }
            // Release fence: as before a publish, so a data-path reader whose copy sees a
            // restored byte also sees the odd `seq` the dead writer stored.
            fence(Ordering::Release);
            // SAFETY: backup and data are `len` bytes each, in different segments, 8-aligned,
            // live, and only accessed by the granule rule for `len`; we hold the lock.
            unsafe { crate::copy::transfer(self.header.backup(), self.data, self.len) };
            crate::fault::point("recover:restored");
            s.seq.store(seq.wrapping_add(1), Ordering::SeqCst);
            s.recoveries.fetch_add(1, Ordering::Relaxed);
            true
        } else {
            false
        };
        // The dead writer may have published without waking its sleepers.
        self.wake_sleepers(s.seq.load(Ordering::Relaxed));
        Ok(rolled_back)
    }

    /// Takes the writer lock and copies the current value to the private buffer `scratch`
    /// (and, from it, to the backup).
    ///
    /// # Safety
    /// `scratch` must be valid for `len` bytes of writes and private to this lock holder.
    ///
    /// `scratch_seq` holds the `seq` whose value `scratch` already holds (the handle's last
    /// publish), or `u64::MAX`; it is read once the lock is held. When it is still current and
    /// the previous holder did not die, the copy from the data is skipped (every change of the
    /// data changes `seq`).
    #[inline]
    pub(crate) unsafe fn begin_write(
        &self,
        scratch: *mut u8,
        scratch_seq: &std::sync::atomic::AtomicU64,
        deadline: Option<Instant>,
    ) -> Result<WriteState> {
        let s = self.sync();
        self.let_readers_in();
        let Some(held) = self.lock(deadline)? else {
            return Err(Error::new(ErrorKind::Timeout, "the writer lock was not free in time")
                .hint("another process holds a write guard; see `smobject inspect` for the last writer's pid"));
        };
        // Stored only when it changes: it shares a line the writer reads on every write.
        let pid = sys::cached_pid();
        if s.last_writer.load(Ordering::Relaxed) != pid {
            s.last_writer.store(pid, Ordering::Relaxed);
        }
        let seq = s.seq.load(Ordering::Relaxed);
        // A dead holder (a thread of this process, too) may have left the buffer half-changed.
        // Relaxed: only lock holders store it, and our lock acquisition follows their release.
        if seq != scratch_seq.load(Ordering::Relaxed) || held.owner_died {
            // SAFETY: the data is `len` bytes, 8-aligned, live, and only accessed by the
            // granule rule; `scratch` is a private buffer of `len` bytes (the caller's contract).
            unsafe { crate::copy::load(self.data, scratch, self.len, self.len) };
        }
        // Release fence before the backup is overwritten: a reader still copying the backup of
        // the previous write must see a newer `seq` at its re-check (module docs).
        fence(Ordering::Release);
        // SAFETY: the backup is `len` bytes, 8-aligned, live, only accessed by the granule
        // rule; `scratch` holds `len` initialised bytes.
        unsafe { crate::copy::store(scratch, self.header.backup(), self.len) };
        // Release: a reader that sees this value also sees the backup bytes.
        s.backup_seq.store(seq, Ordering::Release);
        crate::fault::point("write:after-backup");
        Ok(WriteState {
            held,
            seq,
            panicking: std::thread::panicking(),
        })
    }

    /// Publishes the private buffer as the new value (one new version), then wakes sleepers.
    /// Returns the new `seq`, whose value the buffer now holds.
    ///
    /// # Safety
    /// `scratch` must hold `len` initialised bytes; `st` must come from
    /// [`begin_write`](Self::begin_write) on this region.
    #[inline]
    pub(crate) unsafe fn publish(&self, st: &WriteState, scratch: *const u8) -> u64 {
        let s = self.sync();
        // Release: a reader that sees the odd `seq` also sees `backup_seq` and the backup.
        s.seq.store(st.seq.wrapping_add(1), Ordering::Release);
        // Release fence: the data stores below are ordered after the odd `seq` for every
        // reader that loads one of them (module docs).
        fence(Ordering::Release);
        crate::fault::point("write:odd");
        // The reliability suite kills a writer half-way through these stores: split in two at a
        // multiple of 8, which keeps every granule whole.
        let half = if cfg!(feature = "fault-injection") {
            (self.len / 2) & !7
        } else {
            0
        };
        // SAFETY: the data is `len` bytes, 8-aligned, live, only accessed by the granule rule;
        // `scratch` holds `len` initialised bytes (the caller's contract). `half` is a multiple
        // of 8, so both parts consist of whole granules of the region.
        unsafe { crate::copy::store(scratch, self.data, half) };
        crate::fault::point("publish:half-data");
        // SAFETY: as above, for the bytes from `half` on.
        unsafe {
            crate::copy::store(
                scratch.wrapping_add(half),
                self.data.wrapping_add(half),
                self.len - half,
            );
        };
        // Relaxed: ordered before the final `seq` store below by its Release half, so a reader
        // that saw the new version sees this time or a later one.
        s.last_write
            .store(crate::sys::monotonic_coarse_ns(), Ordering::Relaxed);
        let new = st.seq.wrapping_add(2);
        // SeqCst (so also Release, publishing the data): one half of the Dekker pair with
        // `wait_for_update` (see `wake_sleepers`).
        s.seq.store(new, Ordering::SeqCst);
        crate::fault::point("publish:after-seq");
        self.wake_sleepers(new);
        new
    }

    /// After `seq` became `published` (a SeqCst store): wakes every sleeper if one registered,
    /// and clears the registration when it is for an older `seq`.
    ///
    /// Lost-wake-up freedom: a waiter registers `v + 1` with a SeqCst `fetch_max`, re-loads
    /// `seq` (SeqCst) and sleeps only while `seq` is still `v`. A publish of `s > v` stores `seq`
    /// (SeqCst) then loads `sleepers` (SeqCst); in the single total order either the waiter's
    /// re-load sees `s` (and it does not sleep), or this load sees its registration or a later
    /// value. Later values are larger registrations (still non-zero) or a clear, which a writer
    /// makes only of a registration older than what it published, and which it follows with a
    /// wake: the waiter is then asleep and woken, or its futex compare sees a newer `seq` and
    /// it does not sleep. Self-healing: a registration left by a waiter that died (or timed
    /// out) is cleared by the first publish past it, so writers pay at most two wakes for it.
    #[inline]
    fn wake_sleepers(&self, published: u64) {
        let s = self.sync();
        let reg = s.sleepers.load(Ordering::SeqCst);
        if reg == 0 {
            return;
        }
        if reg.wrapping_sub(1) < published {
            // Fails if a newer registration arrived meanwhile: it stays, and is woken below.
            let _ = s
                .sleepers
                .compare_exchange(reg, 0, Ordering::SeqCst, Ordering::Relaxed);
        }
        // SAFETY: the futex word (low half of `seq`) is a live, aligned u32 in the shared header.
        unsafe { sys::futex_wake_all(s.futex_word()) };
    }

    /// If fallback readers are waiting for the lock, give them a bounded moment to take it.
    #[inline]
    fn let_readers_in(&self) {
        let s = self.sync();
        let pending = |s: &SyncWords| {
            // Acquire: pairs with the readers' increments.
            let req = s.read_req.load(Ordering::Acquire);
            (req.wrapping_sub(s.read_ack.load(Ordering::Acquire)) as i32) > 0
        };
        if !pending(s) {
            return;
        }
        let start = Instant::now();
        while pending(s) {
            if start.elapsed() > READER_GRACE {
                // A reader died between asking and being served: forget it.
                s.read_ack
                    .store(s.read_req.load(Ordering::Relaxed), Ordering::Relaxed);
                return;
            }
            std::thread::yield_now();
        }
    }

    /// Sleeps until the version exceeds `seen` or the time-out passes.
    pub(crate) fn wait_for_update(&self, seen: u64, timeout: Option<Duration>) -> Result<u64> {
        let s = self.sync();
        let v = self.version();
        if v > seen {
            return Ok(v);
        }
        let deadline = timeout.and_then(deadline_after);
        loop {
            // SeqCst: see `wake_sleepers`.
            let seq = s.seq.load(Ordering::SeqCst);
            if seq / 2 > seen {
                return Ok(seq / 2);
            }
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            if left == Some(Duration::ZERO) {
                return Err(Error::new(
                    ErrorKind::Timeout,
                    format!(
                        "no update past version {seen} within {:?}",
                        timeout.unwrap_or_default()
                    ),
                ));
            }
            s.sleepers
                .fetch_max(seq.wrapping_add(1).max(1), Ordering::SeqCst);
            crate::fault::point("wait:registered");
            if s.seq.load(Ordering::SeqCst) != seq {
                continue;
            }
            crate::fault::point("wait:checked");
            // SAFETY: the futex word (low half of `seq`) is a live, aligned u32 in the shared
            // header. The kernel only reads it.
            unsafe { sys::futex_wait(s.futex_word(), SyncWords::futex_value(seq), left) };
        }
    }

    /// How many dead writers' half-published writes were rolled back over the object's life.
    /// Records a mirror's origin (see `SyncWords::origin_version`). Called by the lock holder
    /// before its publish; Relaxed, ordered before the publish's final `seq` store.
    pub(crate) fn set_origin(&self, version: u64, published_unix_ns: u64) {
        let s = self.sync();
        s.origin_time.store(published_unix_ns, Ordering::Relaxed);
        s.origin_version
            .store(version.wrapping_add(1), Ordering::Relaxed);
    }

    /// A mirror's origin `(version, unix ns)`, if one was recorded. The two words are read
    /// without the lock: they can be from two consecutive mirror writes while one is in
    /// progress (diagnostics).
    pub(crate) fn origin(&self) -> Option<(u64, u64)> {
        let s = self.sync();
        let v = s.origin_version.load(Ordering::Acquire);
        (v != 0).then(|| (v - 1, s.origin_time.load(Ordering::Relaxed)))
    }

    /// `CLOCK_MONOTONIC_COARSE` nanoseconds of the last publish (or of the creation).
    pub(crate) fn last_write_ns(&self) -> u64 {
        self.sync().last_write.load(Ordering::Relaxed)
    }

    pub(crate) fn recoveries(&self) -> u64 {
        self.sync().recoveries.load(Ordering::Relaxed)
    }

    /// Records that a handle keeps its mapping for good (a leaked write guard holds the lock).
    pub(crate) fn note_leaked(&self) {
        self.sync().leaked.fetch_add(1, Ordering::Relaxed);
    }
}

/// The registration step of a wait, as [`Region::wait_for_update`] makes it before it sleeps,
/// for the async waits (`asyncwait.rs`): raises `sleepers` to at least `seq + 1` and re-loads
/// `seq`, both SeqCst. True if `seq` still holds `seq`: whoever then sleeps on the futex word
/// expecting [`SyncWords::futex_value`]`(seq)` is woken by the next publish (the lost-wake-up
/// argument of `wake_sleepers`). False if a publish came in between: re-check, do not sleep.
/// Nothing to undo either way: the first publish past `seq` clears the registration.
#[cfg(feature = "async")]
pub(crate) fn register_sleeper(s: &SyncWords, seq: u64) -> bool {
    s.sleepers
        .fetch_max(seq.wrapping_add(1).max(1), Ordering::SeqCst);
    crate::fault::point("async:registered");
    s.seq.load(Ordering::SeqCst) == seq
}

/// Prefetches the line at `p` into the cache (a hint: no memory access in the Rust model).
#[allow(clippy::inline_always)] // a single instruction
#[inline(always)]
fn prefetch(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `prefetcht0` never faults and never changes memory, whatever the address.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

fn unrecoverable(detail: impl Into<String>) -> Error {
    Error::new(ErrorKind::Unrecoverable, detail).hint(
        "the object cannot be written again: once its processes stopped, remove it (`smobject rm --force PATH ID`) and create it anew; the next creator also replaces it when every process has detached",
    )
}

/// The writer lock, held: unlocked when dropped (by the thread that locked it).
#[derive(Debug)]
pub(crate) struct Held {
    mutex: *mut libc::pthread_mutex_t,
    /// The previous holder died holding the lock.
    owner_died: bool,
    /// ... and its half-published write was rolled back.
    rolled_back: bool,
}

impl Drop for Held {
    fn drop(&mut self) {
        // SAFETY: this thread locked the mutex when `Held` was made (it is not `Send`), and the
        // mapping holding it stays mapped while a `Held` exists: it lives in a `WriteState`
        // borrowed from its region's handle or in a `locked_read` frame, and a handle whose
        // guard was leaked never unmaps the counter segment.
        unsafe { sys::mutex_unlock(self.mutex) };
    }
}

/// An open write: the lock, held, and what publishing needs.
#[derive(Debug)]
pub(crate) struct WriteState {
    held: Held,
    /// `seq` before the write (even).
    seq: u64,
    /// Whether the thread was already panicking when it took the lock: a write made during
    /// unwinding (in a `Drop`) is published like any other; only a panic that starts while the
    /// lock is held discards the write.
    pub(crate) panicking: bool,
}

impl WriteState {
    /// The previous holder died holding the lock.
    pub(crate) fn owner_died(&self) -> bool {
        self.held.owner_died
    }

    /// The previous holder died publishing, and its half-published write was rolled back.
    pub(crate) fn rolled_back(&self) -> bool {
        self.held.rolled_back
    }
}
