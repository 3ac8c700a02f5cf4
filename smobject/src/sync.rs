//! The synchronisation protocol over an object's bytes: a seqlock for lock-free consistent
//! snapshots, a robust process-shared mutex for exclusive writes that survive a writer's death,
//! an undo copy (the *backup*) to roll back a half-done write, and a futex word for blocking
//! waits. Untyped: [`Shared`](crate::Shared) puts types on top.
//!
//! # Protocol (also in `docs/FORMAT.md`, for C programs)
//! Writer, holding the mutex (`seq` is even, `s`):
//! 1. copy data to the backup, store `backup_seq = s` (Release);
//! 2. store `seq = s + 1` (odd: write in progress), Release fence;
//! 3. modify the data in place (offset 0 of the data segment, as the original class);
//! 4. store `seq = s + 2` (Release), `version` = s/2 + 1 (SeqCst), wake the futex if `waiters` is not 0
//!    (a SeqCst load: the Dekker pair with the waiter's increment), unlock.
//!
//! Reader, optimistic: load `seq` (Acquire); if even copy the data, else if
//! `backup_seq == seq - 1` copy the backup (the last complete value while the write is in
//! progress); Acquire fence; the copy is good if `seq` is unchanged. After bounded retries the
//! reader takes the mutex (with a short time-out, retrying optimistically in between) and copies
//! under it; `read_req`/`read_ack` make a back-to-back writer let it in.
//!
//! A writer that dies holding the mutex hands the next locker `EOWNERDEAD`: if `seq` is odd
//! the data is half-written and the backup (taken at `seq - 1`) is copied back; `seq` is made
//! even, the mutex marked consistent, `recoveries` incremented.
//!
//! The optimistic copies race with the writer by design (the seqlock pattern): they are byte
//! copies into a private buffer whose result is discarded unless `seq` proves no write
//! overlapped, and the types copied are valid for every byte pattern. This is the standard
//! seqlock argument (as in crossbeam's `AtomicCell`): sound in practice, not in the letter of
//! Rust's memory model, which has no notion of a discarded racy read.

use std::sync::atomic::{fence, Ordering};
use std::time::{Duration, Instant, SystemTime};

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

/// Bytes of an attached object: data pointer and length plus its header.
#[derive(Clone, Copy)]
pub(crate) struct Region {
    pub(crate) header: HeaderPtr,
    pub(crate) data: *mut u8,
    pub(crate) len: usize,
}

impl Region {
    fn sync(&self) -> &SyncWords {
        self.header.sync()
    }

    /// The number of completed writes.
    #[inline]
    pub(crate) fn version(&self) -> u64 {
        // Acquire: pairs with the writer's SeqCst store in `publish_version`, which follows
        // its Release store of the even `seq`: a reader that sees version v also sees a `seq`
        // of at least 2v, so its next `read` returns that version or a newer one.
        self.sync().version.load(Ordering::Acquire)
    }

    /// Copies a consistent snapshot into `dst` as one `T`, with the size known at compile
    /// time (no `memcpy` call, no second copy).
    ///
    /// # Safety
    /// `dst` must be valid for one `T` of writes, `len` must be `size_of::<T>()`, and every
    /// byte pattern must be a valid `T`; the region's pointers must be live.
    #[inline]
    pub(crate) unsafe fn read_as<T>(&self, dst: *mut T) {
        debug_assert_eq!(self.len, std::mem::size_of::<T>());
        // SAFETY: forwarded from the caller.
        unsafe { self.read_with(&Typed(dst)) };
    }

    #[inline]
    unsafe fn read_with(&self, into: &impl Sink) {
        // Fast path, inlined into `Shared::read`: one optimistic copy, the common case.
        // SAFETY: forwarded from the caller.
        if unsafe { self.try_read_with(into) } {
            return;
        }
        // SAFETY: forwarded from the caller.
        let done = unsafe { self.read_until(into, None) };
        debug_assert!(done, "a read without deadline only returns when done");
    }

    /// [`read`](Self::read) giving up at `deadline`: false if no consistent snapshot could be
    /// taken by then (a writer holding the lock that long, or a corrupted header).
    ///
    /// # Safety
    /// As for [`read`](Self::read), for the sink's destination.
    #[inline(never)]
    pub(crate) unsafe fn read_until(&self, into: &impl Sink, deadline: Option<Instant>) -> bool {
        let spins = if self.len >= LARGE {
            SPINS_LARGE
        } else {
            SPINS_SMALL
        };
        loop {
            for _ in 0..spins {
                // SAFETY: forwarded from the caller.
                if unsafe { self.try_read_with(into) } {
                    return true;
                }
                std::hint::spin_loop();
            }
            // SAFETY: forwarded from the caller.
            if unsafe { self.locked_read(into) } {
                return true;
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return false;
            }
        }
    }

    /// One optimistic attempt into `dst` (`len` bytes); true if it holds a consistent snapshot.
    ///
    /// # Safety
    /// As for [`read`](Self::read).
    pub(crate) unsafe fn try_read(&self, dst: *mut u8) -> bool {
        // SAFETY: forwarded from the caller.
        unsafe { self.try_read_with(&Bytes { dst, len: self.len }) }
    }

    /// One optimistic attempt; true if the sink now holds a consistent snapshot.
    ///
    /// # Safety
    /// As for [`read`](Self::read), for the sink's destination.
    #[inline]
    unsafe fn try_read_with(&self, into: &impl Sink) -> bool {
        let Some(ticket) = self.read_begin() else {
            return false;
        };
        // SAFETY: `ticket.src` is valid for `len` bytes (segment sizes checked on attach), the
        // sink's destination too (the caller's contract), and they do not overlap (private
        // buffer vs mapping). The copy may race with a writer; it is discarded unless
        // `read_end` proves no write overlapped it.
        unsafe { into.fill_from(ticket.src) };
        self.read_end(ticket)
    }

    /// Opens one optimistic read: where the last complete value is (the data, or the backup
    /// while a write is in progress) and the `seq` that [`read_end`](Self::read_end) checks.
    /// `None` if no complete value can be copied right now.
    ///
    /// The caller copies `len` bytes from `src`, then calls `read_end`; the copy is a snapshot
    /// only if that returns true. Split in two so that [`Shared::read`](crate::Shared::read)
    /// can copy straight into its return value.
    #[inline]
    pub(crate) fn read_begin(&self) -> Option<ReadTicket> {
        let s = self.sync();
        // Acquire: pairs with the writer's Release stores of `seq`.
        let seq = s.seq.load(Ordering::Acquire);
        let src = if seq % 2 == 0 {
            self.data
        } else if s.backup_seq.load(Ordering::Acquire) == seq.wrapping_sub(1) {
            // A write is in progress; the backup holds the version before it, complete.
            self.header.backup()
        } else {
            return None;
        };
        Some(ReadTicket { src, seq })
    }

    /// Closes an optimistic read: true if no write overlapped the copy made since
    /// [`read_begin`](Self::read_begin) returned `ticket`.
    #[inline]
    pub(crate) fn read_end(&self, ticket: ReadTicket) -> bool {
        // Acquire fence: orders the copy before the re-check of `seq` (pairs with the writer's
        // Release fence after it makes `seq` odd).
        fence(Ordering::Acquire);
        self.sync().seq.load(Ordering::Relaxed) == ticket.seq
    }

    /// Copies under the writer lock, waiting at most one slice. False if the slice passed.
    ///
    /// # Safety
    /// As for [`read`](Self::read), for the sink's destination.
    unsafe fn locked_read(&self, into: &impl Sink) -> bool {
        let s = self.sync();
        s.read_req.fetch_add(1, Ordering::AcqRel);
        let deadline = SystemTime::now() + READ_LOCK_SLICE;
        // SAFETY: the mutex lives in the mapped header.
        if let Ok(Some(how)) = unsafe { sys::mutex_lock(self.header.mutex(), Some(deadline)) } {
            if how == Locked::OwnerDied {
                self.recover();
            }
            // Release: the writer's grace loop acquires it.
            s.read_ack.fetch_add(1, Ordering::Release);
            // SAFETY: we hold the writer lock, so `seq` is even and nobody writes the
            // data; the sink's destination is valid (the caller's contract).
            unsafe { into.fill_from(self.data) };
            // SAFETY: we hold the mutex.
            unsafe { sys::mutex_unlock(self.header.mutex()) };
            return true;
        }
        // Timed out, or the lock is unusable (EDEADLK: this thread holds a write guard): go
        // back to optimistic reads, which succeed while a write stalls.
        s.read_ack.fetch_add(1, Ordering::Release);
        false
    }

    /// Rolls back a dead writer's half-done write. Called holding the mutex after
    /// `EOWNERDEAD`; marks the mutex consistent.
    fn recover(&self) {
        let s = self.sync();
        let seq = s.seq.load(Ordering::Relaxed);
        if seq % 2 == 1 {
            if s.backup_seq.load(Ordering::Relaxed) == seq - 1 {
                // SAFETY: we hold the lock; backup and data are `len` bytes each and do not
                // overlap (different segments).
                unsafe { std::ptr::copy_nonoverlapping(self.header.backup(), self.data, self.len) };
            }
            crate::fault::point("recover:restored");
            // Release: pairs with readers' Acquire loads; the restored bytes are published.
            s.seq.store(seq + 1, Ordering::Release);
            self.publish_version(seq + 1);
        } else if s.version.load(Ordering::Relaxed) != seq / 2 {
            // The dead writer published its data but not the version, and woke nobody.
            self.publish_version(seq);
        }
        s.recoveries.fetch_add(1, Ordering::Relaxed);
        // SAFETY: we hold the mutex, obtained with EOWNERDEAD, and repaired what it protects.
        unsafe { sys::mutex_consistent(self.header.mutex()) };
    }

    fn publish_version(&self, seq: u64) {
        let s = self.sync();
        // SeqCst store then SeqCst load: the Dekker pair with `wait_for_update`'s increment of
        // `waiters` and load of `version`; one side always sees the other.
        s.version.store(seq / 2, Ordering::SeqCst);
        if s.waiters.load(Ordering::SeqCst) != 0 {
            // SAFETY: the futex word (low half of `version`) is a live, aligned u32 in the shared header.
            let woken = unsafe { sys::futex_wake_all(s.futex_word()) };
            self.note_wake(woken);
        }
    }

    /// Counts wakes that found nobody asleep; after 8 in a row, forgets the waiters that died
    /// (a waiter killed asleep never decrements `waiters`, and every write would pay a futex
    /// wake for it). A live waiter is never forgotten: only slots whose pid no longer exists
    /// are cleared, and a dead process can neither be asleep nor about to sleep.
    fn note_wake(&self, woken: usize) {
        let w = self.header.waiters();
        // Relaxed: a heuristic trigger; the repair itself re-reads everything it relies on.
        if woken != 0 {
            w.idle_wakes.store(0, Ordering::Relaxed);
            return;
        }
        if w.idle_wakes.fetch_add(1, Ordering::Relaxed) + 1 < 8 {
            return;
        }
        w.idle_wakes.store(0, Ordering::Relaxed);
        let mask = w.mask.load(Ordering::Acquire);
        for (i, slot) in w.pids.iter().enumerate() {
            let pid = slot.load(Ordering::Acquire);
            if mask & (1 << i) == 0 || pid == 0 || sys::process_exists(pid) {
                continue;
            }
            // The CAS makes one repairer win per dead slot.
            if slot
                .compare_exchange(pid, 0, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                // Release the slot, then the waiter it counted (never below zero).
                w.mask.fetch_and(!(1 << i), Ordering::AcqRel);
                let _ = self
                    .sync()
                    .waiters
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
            }
        }
    }

    /// Takes a waiter slot for this process, if one is free.
    fn claim_waiter_slot(&self) -> Option<usize> {
        let w = self.header.waiters();
        let all = u32::MAX >> (32 - crate::header::WAITER_SLOTS);
        let mut mask = w.mask.load(Ordering::Acquire);
        loop {
            let free = !mask & all;
            if free == 0 {
                return None;
            }
            let i = free.trailing_zeros() as usize;
            match w.mask.compare_exchange_weak(
                mask,
                mask | (1 << i),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    w.pids[i].store(sys::cached_pid(), Ordering::Release);
                    return Some(i);
                }
                Err(m) => mask = m,
            }
        }
    }

    fn release_waiter_slot(&self, slot: Option<usize>) {
        if let Some(i) = slot {
            let w = self.header.waiters();
            // A repairer only takes the slots of dead processes, so it is still ours: clear the
            // pid, then the bit (Release: the slot is free only once the pid is gone).
            if w.pids[i].swap(0, Ordering::AcqRel) != 0 {
                w.mask.fetch_and(!(1 << i), Ordering::AcqRel);
            }
        }
    }

    /// Takes the writer lock and opens a write: backup taken, `seq` odd.
    pub(crate) fn begin_write(&self, deadline: Option<Instant>) -> Result<WriteState> {
        let s = self.sync();
        self.let_readers_in();
        let m = self.header.mutex();
        let locked = loop {
            let wall =
                deadline.map(|d| SystemTime::now() + d.saturating_duration_since(Instant::now()));
            // SAFETY: the mutex lives in the mapped header.
            match unsafe { sys::mutex_lock(m, wall) } {
                Ok(Some(l)) => break l,
                Ok(None) => {
                    return Err(Error::new(ErrorKind::Timeout, "the writer lock was not free in time")
                        .hint("another process holds a write guard; see `smobject inspect` for the last writer's pid"))
                }
                Err(e) if e.raw_os_error() == Some(libc::EDEADLK) => {
                    return Err(Error::os("locking the writer lock", &e)
                        .hint("this thread already holds a write guard of this object: drop it before writing again"))
                }
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => {}
                Err(e) => return Err(Error::os("locking the writer lock", &e)),
            }
        };
        crate::fault::point("write:locked");
        let recovered = locked == Locked::OwnerDied;
        if recovered {
            self.recover();
        }
        // Stored only when it changes: readers spinning on `seq` share this cache line, and
        // every store to it while they do costs a cross-core transfer.
        let pid = sys::cached_pid();
        if s.last_writer.load(Ordering::Relaxed) != pid {
            s.last_writer.store(pid, Ordering::Relaxed);
        }
        let seq = s.seq.load(Ordering::Relaxed);
        // SAFETY: we hold the lock, so nobody else writes either buffer; both are `len` bytes
        // in different segments.
        unsafe { std::ptr::copy_nonoverlapping(self.data, self.header.backup(), self.len) };
        // Release: the backup bytes are visible to a reader that sees this value.
        s.backup_seq.store(seq, Ordering::Release);
        crate::fault::point("write:after-backup");
        // Release: a reader that sees `seq` odd also sees the backup and `backup_seq`.
        s.seq.store(seq + 1, Ordering::Release);
        // Release fence: the data writes that follow are ordered after the odd `seq`, for
        // readers that observe them (they re-check `seq` after an Acquire fence).
        fence(Ordering::Release);
        crate::fault::point("write:odd");
        Ok(WriteState { seq, recovered })
    }

    /// Ends a write opened by [`begin_write`](Self::begin_write): publishes, or rolls back to
    /// the backup when `abort`, then unlocks.
    pub(crate) fn end_write(&self, st: &WriteState, abort: bool) {
        let s = self.sync();
        if abort {
            // SAFETY: we hold the lock; the backup holds the value before this write.
            unsafe { std::ptr::copy_nonoverlapping(self.header.backup(), self.data, self.len) };
        }
        // Release: pairs with readers' Acquire loads; publishes the data writes.
        s.seq.store(st.seq + 2, Ordering::Release);
        crate::fault::point("publish:after-seq");
        self.publish_version(st.seq + 2);
        // SAFETY: we hold the mutex (taken in begin_write).
        unsafe { sys::mutex_unlock(self.header.mutex()) };
    }

    /// If fallback readers are waiting for the lock, give them a bounded moment to take it.
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
        let deadline = timeout.map(|t| Instant::now() + t);
        // Registered once for the whole wait: the slot lets writers forget us if we die asleep.
        let slot = self.claim_waiter_slot();
        // SeqCst: see `publish_version`.
        s.waiters.fetch_add(1, Ordering::SeqCst);
        let r = loop {
            let v = s.version.load(Ordering::SeqCst);
            if v > seen {
                break Ok(v);
            }
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            if left == Some(Duration::ZERO) {
                break Err(Error::new(
                    ErrorKind::Timeout,
                    format!(
                        "no update past version {seen} within {:?}",
                        timeout.unwrap_or_default()
                    ),
                ));
            }
            // SAFETY: the futex word (low half of `version`) is a live, aligned u32 in the shared header.
            unsafe { sys::futex_wait(s.futex_word(), SyncWords::futex_value(v), left) };
        };
        // Saturating: the word is shared memory, and other programs may follow the format.
        let _ = s
            .waiters
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
        self.release_waiter_slot(slot);
        r
    }

    /// How many dead writers' writes were rolled back over the object's life.
    pub(crate) fn recoveries(&self) -> u64 {
        self.sync().recoveries.load(Ordering::Relaxed)
    }
}

/// An open optimistic read (see [`Region::read_begin`]).
#[derive(Clone, Copy)]
pub(crate) struct ReadTicket {
    /// The last complete value: the data, or the backup while a write is in progress.
    pub(crate) src: *const u8,
    /// `seq` when the read began; the copy is good if it is unchanged at the end.
    seq: u64,
}

/// Where a snapshot is copied to: bytes of a length known at run time, or one `T`.
pub(crate) trait Sink {
    /// Copies the region's `len` bytes from `src` to the destination.
    ///
    /// # Safety
    /// `src` must be valid for `len` reads and not overlap the destination, which must be
    /// valid for `len` writes.
    unsafe fn fill_from(&self, src: *const u8);
}

/// `len` bytes at `dst`.
pub(crate) struct Bytes {
    pub(crate) dst: *mut u8,
    pub(crate) len: usize,
}

impl Sink for Bytes {
    #[inline]
    unsafe fn fill_from(&self, src: *const u8) {
        // SAFETY: the caller's contract.
        unsafe { std::ptr::copy_nonoverlapping(src, self.dst, self.len) };
    }
}

/// One `T` at the pointer: the copy's size is a compile-time constant.
pub(crate) struct Typed<T>(pub(crate) *mut T);

impl<T> Sink for Typed<T> {
    #[inline]
    unsafe fn fill_from(&self, src: *const u8) {
        if std::mem::align_of::<T>() > crate::header::HEADER_SIZE {
            // The backup (HEADER_SIZE past a page boundary) may be misaligned for T: copy bytes.
            // SAFETY: the caller's contract, with len == size_of::<T>().
            unsafe {
                std::ptr::copy_nonoverlapping(src, self.0.cast::<u8>(), std::mem::size_of::<T>());
            }
        } else {
            // SAFETY: the caller's contract, with len == size_of::<T>(); `src` is page-aligned
            // (data segment) or HEADER_SIZE bytes past a page boundary (backup), so aligned
            // for T. A constant-size copy: no `memcpy` call for small T.
            unsafe { std::ptr::copy_nonoverlapping(src.cast::<T>(), self.0, 1) };
        }
    }
}

/// An open write.
#[derive(Debug)]
pub(crate) struct WriteState {
    /// `seq` before the write (even).
    seq: u64,
    /// The previous holder died holding the lock and its write was rolled back.
    pub(crate) recovered: bool,
}
