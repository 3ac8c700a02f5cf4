//! [`Shared<T>`]: the typed handle to a shared struct.

use std::fmt;
use std::marker::PhantomData;
use std::mem::MaybeUninit;
use std::ops::{Deref, DerefMut};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::error::Result;
use crate::key::Key;
use crate::layout::SharedStruct;
use crate::object::{Layout, Options, RawObject};
use crate::sync::{Region, WriteState};

/// A struct shared with other processes: one process creates it, others access it by the same
/// key; reads are consistent snapshots, writes are exclusive, and the memory is freed when the
/// last handle in any process is dropped (crashed processes included).
///
/// Get one from the functions `#[shared_memory]` generates (`Telemetry::create()`,
/// `Telemetry::access()`, `Telemetry::open_or_create()`) or, for a key chosen at run time,
/// from [`create_at`](Self::create_at) and friends.
///
/// ```
/// use smobject::{shared_memory, Shared};
///
/// #[shared_memory(path = "/tmp", id = 'q')]
/// #[repr(C)]
/// #[derive(Clone, Copy, Debug, Default, PartialEq)]
/// pub struct Telemetry { pub seq: u64, pub pos: [f64; 3], pub status: u32, pub _pad: u32 }
///
/// # let path = std::env::temp_dir().join(format!("smobject-doc-shared-{}", std::process::id()));
/// # std::fs::write(&path, b"")?;
/// let producer = Shared::<Telemetry>::create_at(&path, b'a')?;   // a new, zeroed object
/// let consumer = Shared::<Telemetry>::access_at(&path, b'a')?;   // (another process, usually)
/// producer.write(|t| { t.seq += 1; t.pos = [1.0, 2.0, 3.0]; });
/// assert_eq!(consumer.read().pos, [1.0, 2.0, 3.0]);
/// assert_eq!(consumer.version(), 1);
/// # drop((producer, consumer)); std::fs::remove_file(&path)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Shared<T: SharedStruct> {
    object: RawObject,
    region: Region,
    _t: PhantomData<T>,
}

// SAFETY: every access to the shared bytes goes through the synchronisation protocol (copies
// validated by the seqlock, writes under the process-shared mutex), which works from any
// thread; T: Send because values move between threads through it.
unsafe impl<T: SharedStruct> Send for Shared<T> {}
// SAFETY: `&Shared<T>` allows reads (copies) and writes (under the mutex) from many threads at
// once; the mutex serialises writers across threads as across processes.
unsafe impl<T: SharedStruct> Sync for Shared<T> {}

impl<T: SharedStruct> Shared<T> {
    fn wrap(object: RawObject) -> Shared<T> {
        let region = Region {
            header: *object.header(),
            data: object.as_ptr(),
            len: std::mem::size_of::<T>(),
        };
        Shared {
            object,
            region,
            _t: PhantomData,
        }
    }

    fn options() -> Options {
        Options::new().mode(T::MODE)
    }

    /// Creates a new, zeroed object under `(path, id)`. The key file is created (readable as
    /// `T::MODE` allows) if it does not exist.
    ///
    /// # Errors
    /// [`AlreadyExists`](crate::ErrorKind::AlreadyExists) if a live object exists (a stale
    /// one, left by crashed processes, is reclaimed); key errors; kernel limits.
    pub fn create_at(path: impl AsRef<Path>, id: u8) -> Result<Shared<T>> {
        Self::create_in(
            &Key::from_path_creating(path, id, T::MODE)?,
            &Self::options(),
        )
    }

    /// Attaches to the existing object under `(path, id)`.
    ///
    /// # Errors
    /// [`NotFound`](crate::ErrorKind::NotFound) if none exists;
    /// [`LayoutMismatch`](crate::ErrorKind::LayoutMismatch) if it holds another type (or
    /// another build of this one); [`ForeignOwner`](crate::ErrorKind::ForeignOwner) if it
    /// is not this user's.
    pub fn access_at(path: impl AsRef<Path>, id: u8) -> Result<Shared<T>> {
        Self::access_in(&Key::from_path(path, id)?, &Self::options())
    }

    /// Attaches to the live object under `(path, id)` or creates it (and the key file, if
    /// missing).
    ///
    /// # Errors
    /// As [`create_at`](Self::create_at) and [`access_at`](Self::access_at).
    pub fn open_or_create_at(path: impl AsRef<Path>, id: u8) -> Result<Shared<T>> {
        Self::open_or_create_in(
            &Key::from_path_creating(path, id, T::MODE)?,
            &Self::options(),
        )
    }

    /// Creates a new object under `T`'s own key holding `value` from the start: no other
    /// process can see it before `value` is in place.
    ///
    /// # Errors
    /// As [`create_at`](Self::create_at).
    #[allow(clippy::needless_pass_by_value)] // by value, as `Shared::new`-style constructors take it
    pub fn create_with(value: T) -> Result<Shared<T>> {
        Self::create_with_at(T::PATH, T::ID, value)
    }

    /// [`create_with`](Self::create_with) under `(path, id)`.
    ///
    /// # Errors
    /// As [`create_at`](Self::create_at).
    #[allow(clippy::needless_pass_by_value)] // by value, as `Shared::new`-style constructors take it
    pub fn create_with_at(path: impl AsRef<Path>, id: u8, value: T) -> Result<Shared<T>> {
        let key = Key::from_path_creating(path, id, T::MODE)?;
        let src = std::ptr::from_ref(&value).cast::<u8>();
        let init = |dst: *mut u8| {
            // SAFETY: `dst` is the fresh data segment of size_of::<T>() bytes; `src` points to
            // `value`, a separate T whose bytes are all initialised (T: IntoBytes has no padding).
            unsafe { std::ptr::copy_nonoverlapping(src, dst, std::mem::size_of::<T>()) };
        };
        RawObject::create_init(&key, Layout::of::<T>(), &Self::options(), &init).map(Self::wrap)
    }

    /// [`create_at`](Self::create_at) with a prepared key and explicit options.
    ///
    /// # Errors
    /// As [`create_at`](Self::create_at).
    pub fn create_in(key: &Key, opts: &Options) -> Result<Shared<T>> {
        RawObject::create(key, Layout::of::<T>(), opts).map(Self::wrap)
    }

    /// [`access_at`](Self::access_at) with a prepared key and explicit options.
    ///
    /// # Errors
    /// As [`access_at`](Self::access_at).
    pub fn access_in(key: &Key, opts: &Options) -> Result<Shared<T>> {
        RawObject::access(key, Layout::of::<T>(), opts).map(Self::wrap)
    }

    /// [`open_or_create_at`](Self::open_or_create_at) with a prepared key and explicit options.
    ///
    /// # Errors
    /// As [`open_or_create_at`](Self::open_or_create_at).
    pub fn open_or_create_in(key: &Key, opts: &Options) -> Result<Shared<T>> {
        RawObject::open_or_create(key, Layout::of::<T>(), opts).map(Self::wrap)
    }

    /// The key of the data segment.
    #[must_use]
    pub fn key(&self) -> &Key {
        self.object.key()
    }

    /// Whether this handle created the object.
    #[must_use]
    pub fn created(&self) -> bool {
        self.object.created()
    }

    /// Processes (attachments) currently attached, as the kernel counts them.
    ///
    /// # Errors
    /// [`Os`](crate::ErrorKind::Os) if the segment vanished (removed by an administrator).
    pub fn attached(&self) -> Result<usize> {
        self.object.attached()
    }

    /// The untyped object underneath (pointers, shmids, the count at offset 0).
    #[must_use]
    pub fn raw(&self) -> &RawObject {
        &self.object
    }

    /// How many writes have been published (0 for a fresh object).
    #[must_use]
    pub fn version(&self) -> u64 {
        self.region.version()
    }

    /// A consistent copy of the current value: one that a single write published completely.
    /// Never blocks for long: it copies optimistically, falls back to the writer lock after
    /// bounded retries, and reads the last complete value while a write stalls.
    ///
    /// The common case copies the struct once, straight from the mapping into the returned
    /// value, and costs what a plain by-value `ptr::read` of the mapping costs (see
    /// `BENCHMARKS.md`). For a struct too big for the stack, use [`read_into`](Self::read_into).
    #[must_use]
    #[inline]
    pub fn read(&self) -> T {
        // The fast path is generated by `#[shared_memory]` for the concrete `T`
        // (`SharedStruct::__read`): rustc builds a returned local in the caller's slot only
        // when the local's type is known not to need dropping, which generic code cannot know.
        T::__read(self)
    }

    /// Opens an optimistic read of one `T` (see `Region::read_begin`); `None` if no complete
    /// value can be copied right now, or the backup is misaligned for `T`.
    #[inline]
    pub(crate) fn read_begin(&self) -> Option<ReadTicket<'_, T>> {
        let inner = self.region.read_begin()?;
        // The data segment is page-aligned and the backup HEADER_SIZE bytes past a page
        // boundary, so only a `T` aligned to more than that can find the backup misaligned; for
        // every other `T` this folds to nothing.
        if align_of::<T>() > crate::header::HEADER_SIZE && !inner.src.cast::<T>().is_aligned() {
            return None;
        }
        Some(ReadTicket {
            shared: self,
            inner,
        })
    }

    /// `read` after a failed optimistic attempt: retries, then the lock (see `Region`).
    #[cold]
    #[inline(never)]
    pub(crate) fn read_slow(&self) -> T {
        let mut out = MaybeUninit::<T>::uninit();
        // SAFETY: `out` has room for one T, the region is size_of::<T>() bytes and live while
        // `self` is, and T: FromBytes is valid for any bytes. Straight to the retry loop: the
        // optimistic attempt `read` made just failed.
        let done = unsafe {
            self.region
                .read_until(&crate::sync::Typed(out.as_mut_ptr()), None)
        };
        debug_assert!(done, "a read without deadline only returns when done");
        // SAFETY: every byte of `out` was written by the copy, and T: FromBytes is valid for
        // any bytes.
        unsafe { out.assume_init() }
    }

    /// [`read`](Self::read), giving up after `timeout`.
    ///
    /// `read` only waits while a writer holds the lock *and* keeps changing the value, or while
    /// something outside the protocol corrupts the header; this bounds even those cases.
    ///
    /// # Errors
    /// [`Timeout`](crate::ErrorKind::Timeout) if no consistent snapshot could be taken in time.
    pub fn read_timeout(&self, timeout: Duration) -> Result<T> {
        let mut out = MaybeUninit::<T>::uninit();
        // SAFETY: `out` has room for one T; the region is live while `self` is.
        let done = unsafe {
            self.region.read_until(
                &crate::sync::Typed(out.as_mut_ptr()),
                Some(Instant::now() + timeout),
            )
        };
        if !done {
            return Err(crate::Error::new(crate::ErrorKind::Timeout, format!("no consistent snapshot within {timeout:?}"))
                .with_key(self.key())
                .hint("a writer held the lock that long, or the header is being corrupted: see `smobject inspect`"));
        }
        // SAFETY: every byte of `out` was written by the successful copy; T: FromBytes.
        Ok(unsafe { out.assume_init() })
    }

    /// [`read`](Self::read) into an existing value, which avoids a large `T` on the stack.
    pub fn read_into(&self, dst: &mut T) {
        // SAFETY: `dst` is a valid, exclusive T; any bytes written are a valid T (FromBytes).
        unsafe { self.region.read_as(std::ptr::from_mut(dst)) };
    }

    /// Runs `f` on the shared value with the writer lock held, then publishes the result to
    /// every reader at once. Returns what `f` returns. If `f` panics, the value is rolled back
    /// and the panic continues.
    ///
    /// # Panics
    /// If this thread already holds a [`WriteGuard`] of this object (re-entrant write), or the
    /// lock is broken at the OS level. Use [`lock`](Self::lock) to get these as errors.
    pub fn write<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        let mut guard = match self.lock() {
            Ok(g) => g,
            Err(e) => panic!(
                "smobject: cannot take the writer lock of {}: {e}",
                self.key()
            ),
        };
        f(&mut guard)
    }

    /// Takes the writer lock and returns a guard that dereferences to the shared value;
    /// dropping the guard publishes the change. Blocks while another writer holds the lock.
    ///
    /// If the previous holder died holding the lock, its half-done write is rolled back and
    /// the guard reports it through [`WriteGuard::recovered`] (like poisoning in
    /// `std::sync::Mutex`, but not sticky: the object is consistent again).
    ///
    /// # Errors
    /// [`Os`](crate::ErrorKind::Os) with `EDEADLK` if this thread already holds a guard.
    pub fn lock(&self) -> Result<WriteGuard<'_, T>> {
        self.lock_until(None)
    }

    /// [`lock`](Self::lock), giving up after `timeout` with
    /// [`Timeout`](crate::ErrorKind::Timeout).
    ///
    /// # Errors
    /// As [`lock`](Self::lock), and the time-out.
    pub fn lock_timeout(&self, timeout: Duration) -> Result<WriteGuard<'_, T>> {
        self.lock_until(Some(Instant::now() + timeout))
    }

    fn lock_until(&self, deadline: Option<Instant>) -> Result<WriteGuard<'_, T>> {
        let state = self
            .region
            .begin_write(deadline)
            .map_err(|e| e.with_key(self.key()))?;
        Ok(WriteGuard {
            shared: self,
            state,
            _not_send: PhantomData,
        })
    }

    /// Blocks until the version is greater than `seen` (a value from
    /// [`version`](Self::version)) and returns the new version. Sleeps on a futex in the shared
    /// header: no polling, woken by the next publish in any process.
    ///
    /// # Errors
    /// [`Timeout`](crate::ErrorKind::Timeout) if `timeout` passes first.
    pub fn wait_for_update(&self, seen: u64, timeout: Option<Duration>) -> Result<u64> {
        self.region
            .wait_for_update(seen, timeout)
            .map_err(|e| e.with_key(self.key()))
    }

    /// How many times a writer that died holding the lock had its write rolled back.
    #[must_use]
    pub fn recoveries(&self) -> u64 {
        self.region.recoveries()
    }
}

impl<T: SharedStruct> fmt::Debug for Shared<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared")
            .field("type", &T::TYPE_NAME)
            .field("key", self.key())
            .field("version", &self.version())
            .finish_non_exhaustive()
    }
}

/// An optimistic read of a [`Shared<T>`] in progress: where the last complete value is, and
/// the sequence number that proves a copy of it consistent. Not public API: the code
/// `#[shared_memory]` generates for `read` uses it through `smobject::__private`.
#[doc(hidden)]
pub struct ReadTicket<'a, T: SharedStruct> {
    shared: &'a Shared<T>,
    /// Its `src` is valid for one `T` while `shared` is borrowed, and aligned for it.
    inner: crate::sync::ReadTicket,
}

impl<T: SharedStruct> ReadTicket<'_, T> {
    /// Copies the value. It is a consistent snapshot only if [`end`](Self::end) then returns
    /// true; otherwise it is some valid `T` (any bytes are) to be discarded.
    #[inline]
    pub(crate) fn copy(&self) -> T {
        // SAFETY: `src` is valid for one T and aligned (checked by `Shared::read_begin`; the
        // mapping lives as long as the borrowed `Shared`), and T: FromBytes is valid for any
        // bytes. The copy may race with a writer: that is the seqlock's optimistic read,
        // whose result `end` validates (see `sync.rs`).
        unsafe { self.inner.src.cast::<T>().read() }
    }

    /// Closes the read: true if no write overlapped the copies made since it began.
    #[inline]
    pub(crate) fn end(self) -> bool {
        self.shared.region.read_end(self.inner)
    }
}

/// Exclusive write access to a [`Shared<T>`]; dereferences to the shared value. Dropping it
/// publishes the change to all readers (or rolls it back if the thread is panicking).
///
/// Not `Send`: the process-shared mutex must be unlocked by the thread that locked it.
pub struct WriteGuard<'a, T: SharedStruct> {
    shared: &'a Shared<T>,
    state: WriteState,
    _not_send: PhantomData<*mut ()>,
}

impl<T: SharedStruct> WriteGuard<'_, T> {
    /// Whether the previous holder died holding the lock, in which case its half-done write
    /// was rolled back before this guard was handed out.
    #[must_use]
    pub fn recovered(&self) -> bool {
        self.state.recovered
    }
}

impl<T: SharedStruct> Deref for WriteGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: we hold the writer lock, so no one else writes the value; the pointer is to
        // size_of::<T>() bytes of the live data segment, page-aligned (so aligned for T), and
        // any bytes are a valid T (FromBytes). Readers in other processes only copy it.
        unsafe { &*self.shared.region.data.cast::<T>() }
    }
}

impl<T: SharedStruct> DerefMut for WriteGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`; the lock makes this the only writer, and `&mut self` makes
        // this reference unique within the process.
        unsafe { &mut *self.shared.region.data.cast::<T>() }
    }
}

impl<T: SharedStruct> Drop for WriteGuard<'_, T> {
    fn drop(&mut self) {
        self.shared
            .region
            .end_write(&self.state, std::thread::panicking());
    }
}

impl<T: SharedStruct + fmt::Debug> fmt::Debug for WriteGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}
