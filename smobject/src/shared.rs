//! [`Shared<T>`]: the typed handle to a shared struct.

use std::fmt;
use std::marker::PhantomData;
use std::mem::MaybeUninit;
use std::ops::{Deref, DerefMut};
use std::path::Path;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::OnceLock;
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
    /// The writer's private copy of the value, made when the lock is taken and published when
    /// the guard drops: no `&mut T` into shared memory ever exists. Allocated on the first
    /// write; only touched while this process holds the object's writer lock.
    scratch: OnceLock<Scratch<T>>,
    /// Whether a write guard of this handle is out: one that is leaked (`mem::forget`) keeps
    /// the counter segment mapped for good (see `Drop`). Changed only by the holder of the
    /// writer lock (set after taking it, cleared before releasing it), so plain atomic loads
    /// and stores suffice: the lock orders them, and `Drop` reads it through `&mut self`.
    guard_out: AtomicBool,
    /// The `seq` whose value the scratch buffer holds (this handle's last publish), or
    /// `u64::MAX`: lets a writer skip copying the value it published itself. Like
    /// `guard_out`, only touched by the holder of the writer lock.
    scratch_seq: AtomicU64,
    _t: PhantomData<T>,
}

/// A heap buffer for one `T`, aligned for it and at least the object's length.
struct Scratch<T> {
    ptr: NonNull<T>,
    layout: std::alloc::Layout,
}

impl<T> Scratch<T> {
    /// Zeroed, so that every byte is initialised before the first copy fills it.
    fn new(len: usize) -> Scratch<T> {
        let layout = std::alloc::Layout::from_size_align(
            len.max(size_of::<T>()).max(1),
            align_of::<T>().max(8),
        )
        .expect("an attached object's size fits a Layout");
        // SAFETY: the layout has a non-zero size.
        let raw = unsafe { std::alloc::alloc_zeroed(layout) };
        let Some(ptr) = NonNull::new(raw.cast::<T>()) else {
            std::alloc::handle_alloc_error(layout)
        };
        Scratch { ptr, layout }
    }
}

impl<T> Drop for Scratch<T> {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout, freed once. Nothing of T is dropped: the
        // buffer holds a byte copy of the shared value, which nobody owns.
        unsafe { std::alloc::dealloc(self.ptr.as_ptr().cast(), self.layout) };
    }
}

// SAFETY: the scratch buffer is plain bytes owned by the handle; the handle's accesses to it are
// serialised by the object's writer lock (see `Shared`'s Sync impl).
unsafe impl<T: Send> Send for Scratch<T> {}
// SAFETY: as above: `&Scratch` is only dereferenced by the thread holding the writer lock.
unsafe impl<T: Send> Sync for Scratch<T> {}

// SAFETY: every access to the shared bytes is atomic (the granule rule of `copy`), made only
// through the synchronisation protocol, which works from any thread; the scratch buffer is
// touched only under the process-shared mutex; T: Send because values move between threads
// through the object.
unsafe impl<T: SharedStruct> Send for Shared<T> {}
// SAFETY: `&Shared<T>` allows reads (atomic copies into the caller's memory) and writes from
// many threads at once; the mutex serialises writers, and with them every use of the scratch
// buffer, across threads as across processes (its lock and unlock synchronise).
unsafe impl<T: SharedStruct> Sync for Shared<T> {}

impl<T: SharedStruct> Shared<T> {
    fn wrap(object: RawObject) -> Shared<T> {
        let region = Region::of(&object);
        Shared {
            object,
            region,
            scratch: OnceLock::new(),
            guard_out: AtomicBool::new(false),
            scratch_seq: AtomicU64::new(u64::MAX),
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
    /// bounded retries, and reads the last complete value while a publish stalls.
    ///
    /// The common case is one copy of the struct from the mapping (atomic loads that compile
    /// to plain moves) and a re-check of one word; see `BENCHMARKS.md`. For a struct too big
    /// for the stack, use [`read_into`](Self::read_into).
    #[must_use]
    #[inline]
    pub fn read(&self) -> T {
        let mut out = MaybeUninit::<T>::uninit();
        // SAFETY: `out` has room for one T, the size the region is read with (<= its length).
        if !unsafe {
            self.region
                .try_read(out.as_mut_ptr().cast(), size_of::<T>())
        } {
            return self.read_slow();
        }
        // SAFETY: the validated copy wrote every byte of `out`, and T: FromBytes is valid for
        // any bytes.
        unsafe { out.assume_init() }
    }

    /// `read` after a failed optimistic attempt: retries, then the lock (see `Region`).
    #[cold]
    #[inline(never)]
    fn read_slow(&self) -> T {
        let mut out = MaybeUninit::<T>::uninit();
        // SAFETY: `out` has room for one T; the region is live while `self` is.
        let done = unsafe {
            self.region
                .read_until(out.as_mut_ptr().cast(), size_of::<T>(), None)
        };
        debug_assert!(
            done.is_some(),
            "a read without deadline only returns when done"
        );
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
                out.as_mut_ptr().cast(),
                size_of::<T>(),
                crate::sync::deadline_after(timeout),
            )
        };
        if done.is_none() {
            return Err(crate::Error::new(crate::ErrorKind::Timeout, format!("no consistent snapshot within {timeout:?}"))
                .with_key(self.key())
                .hint("a writer held the lock that long, or the header is being corrupted: see `smobject inspect`"));
        }
        // SAFETY: every byte of `out` was written by the successful copy; T: FromBytes.
        Ok(unsafe { out.assume_init() })
    }

    /// [`read`](Self::read) into an existing value: no `T` on the stack, and for a large
    /// struct the copy runs at `memcpy` speed.
    pub fn read_into(&self, dst: &mut T) {
        // SAFETY: `dst` is a valid, exclusive T of size_of::<T>() bytes; any bytes written are a
        // valid T (FromBytes), and it is never dropped half-written (the copy cannot panic).
        unsafe {
            self.region
                .read(std::ptr::from_mut(dst).cast(), size_of::<T>());
        }
    }

    /// Runs `f` on a private copy of the value with the writer lock held, then publishes the
    /// result to every reader at once. Returns what `f` returns. If `f` panics, nothing is
    /// published and the panic continues.
    ///
    /// # Panics
    /// If the lock cannot be taken: this thread already holds a [`WriteGuard`] of this object
    /// (re-entrant write), the object is
    /// [`Unrecoverable`](crate::ErrorKind::Unrecoverable), or the lock is broken at the OS
    /// level. Use [`lock`](Self::lock) to get these as errors.
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

    /// Takes the writer lock and returns a guard that dereferences to a private copy of the
    /// value; dropping the guard publishes the copy (one new version). Blocks while another
    /// writer holds the lock.
    ///
    /// If the previous holder died holding the lock, the guard says so
    /// ([`WriteGuard::owner_died`]); if it died publishing, its half-published write was rolled
    /// back ([`WriteGuard::recovered`]). Either way the object is consistent again.
    ///
    /// Leaking the guard (`mem::forget`) leaks the lock, as with `std::sync::MutexGuard`: the
    /// object cannot be written again, and this handle keeps its mapping of the lock for the
    /// rest of the process's life (counted, and shown by `smobject ls` as `held`).
    ///
    /// # Errors
    /// [`Os`](crate::ErrorKind::Os) with `EDEADLK` if this thread already holds a guard;
    /// [`Unrecoverable`](crate::ErrorKind::Unrecoverable) if a dead writer left no complete
    /// value to restore.
    pub fn lock(&self) -> Result<WriteGuard<'_, T>> {
        self.lock_until(None)
    }

    /// [`lock`](Self::lock), giving up after `timeout` with
    /// [`Timeout`](crate::ErrorKind::Timeout).
    ///
    /// # Errors
    /// As [`lock`](Self::lock), and the time-out.
    pub fn lock_timeout(&self, timeout: Duration) -> Result<WriteGuard<'_, T>> {
        self.lock_until(crate::sync::deadline_after(timeout))
    }

    #[inline]
    fn lock_until(&self, deadline: Option<Instant>) -> Result<WriteGuard<'_, T>> {
        let scratch = self
            .scratch
            .get_or_init(|| Scratch::new(self.region.len))
            .ptr;
        // SAFETY: the scratch buffer has room for the object's `len` bytes and is private to
        // this handle; only the holder of the writer lock touches it (and `scratch_seq`), which
        // `begin_write` makes us before it reads either.
        match unsafe {
            self.region
                .begin_write(scratch.as_ptr().cast(), &self.scratch_seq, deadline)
        } {
            Ok(state) => {
                // Relaxed: we hold the lock (see the field). The handle cannot be dropped
                // before this store: it is borrowed until the guard is gone.
                self.guard_out.store(true, Ordering::Relaxed);
                Ok(WriteGuard {
                    shared: self,
                    scratch,
                    state,
                })
            }
            Err(e) => Err(e.with_key(self.key())),
        }
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

    /// Waits, without blocking a thread, until the version is greater than `seen` (a value
    /// from [`version`](Self::version)) and completes with the new version: the async form of
    /// [`wait_for_update`](Self::wait_for_update), for any executor (feature `async`).
    ///
    /// Woken by the futex wake that writers already make for blocking waiters, through one
    /// helper thread per process that sleeps in `futex_waitv` on every awaited object at once:
    /// no polling, no thread per future, and writers pay nothing new (nothing at all when
    /// nobody waits). The future is `Send` and `Unpin`, and cancel-safe: dropping it (a
    /// `select!` branch that lost, a time-out) leaves nothing registered with the helper, and
    /// the object's waiter registration is cleared by the next write, as for a timed-out
    /// blocking wait. For a time-out, use the executor's (`tokio::time::timeout`).
    ///
    /// # Errors
    /// [`Os`](crate::ErrorKind::Os) if the helper thread cannot be started (out of threads),
    /// or in a child forked from a process that had used async waits.
    ///
    /// # Examples
    /// ```
    /// // A minimal executor with std only, for this example: tokio, smol or any other polls
    /// // the future alike (`let v = consumer.changed(seen).await?;`).
    /// fn block_on<F: std::future::Future>(f: F) -> F::Output {
    ///     struct Unpark(std::thread::Thread);
    ///     impl std::task::Wake for Unpark {
    ///         fn wake(self: std::sync::Arc<Self>) { self.0.unpark() }
    ///     }
    ///     let waker = std::task::Waker::from(std::sync::Arc::new(Unpark(std::thread::current())));
    ///     let mut cx = std::task::Context::from_waker(&waker);
    ///     let mut f = std::pin::pin!(f);
    ///     loop {
    ///         if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
    ///             return v;
    ///         }
    ///         std::thread::park();
    ///     }
    /// }
    ///
    /// #[smobject::shared_memory(path = "/tmp", id = 'q')]
    /// #[repr(C)]
    /// #[derive(Clone, Copy, Debug, Default)]
    /// pub struct Telemetry { pub seq: u64, pub pos: [f64; 3] }
    ///
    /// # let path = std::env::temp_dir().join(format!("smobject-doc-changed-{}", std::process::id()));
    /// # std::fs::write(&path, b"")?;
    /// let producer = smobject::Shared::<Telemetry>::create_at(&path, b'a')?;
    /// let consumer = smobject::Shared::<Telemetry>::access_at(&path, b'a')?; // another process, usually
    /// let seen = consumer.version();
    /// std::thread::scope(|s| {
    ///     s.spawn(|| {
    ///         std::thread::sleep(std::time::Duration::from_millis(20));
    ///         producer.write(|t| t.seq = 7);
    ///     });
    ///     let v = block_on(consumer.changed(seen))?; // sleeps until the write
    ///     assert_eq!(v, seen + 1);
    ///     assert_eq!(consumer.read().seq, 7);
    ///     Ok::<(), smobject::Error>(())
    /// })?;
    /// # drop((producer, consumer)); std::fs::remove_file(&path)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(feature = "async")]
    pub fn changed(
        &self,
        seen: u64,
    ) -> impl std::future::Future<Output = Result<u64>> + Send + Unpin + '_ {
        crate::asyncwait::Changed::new(self.region.header.sync(), self.key(), seen)
    }

    /// The versions written from now on, one `next().await` at a time (feature `async`):
    /// [`changed`](Self::changed) with the last version seen kept for you.
    ///
    /// ```
    /// # fn block_on<F: std::future::Future>(f: F) -> F::Output {
    /// #     struct Unpark(std::thread::Thread);
    /// #     impl std::task::Wake for Unpark {
    /// #         fn wake(self: std::sync::Arc<Self>) { self.0.unpark() }
    /// #     }
    /// #     let waker = std::task::Waker::from(std::sync::Arc::new(Unpark(std::thread::current())));
    /// #     let mut cx = std::task::Context::from_waker(&waker);
    /// #     let mut f = std::pin::pin!(f);
    /// #     loop {
    /// #         if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) { return v; }
    /// #         std::thread::park();
    /// #     }
    /// # }
    /// # #[smobject::shared_memory(path = "/tmp", id = 'q')]
    /// # #[repr(C)]
    /// # #[derive(Clone, Copy, Debug, Default)]
    /// # pub struct Telemetry { pub seq: u64, pub pos: [f64; 3] }
    /// # let path = std::env::temp_dir().join(format!("smobject-doc-updates-{}", std::process::id()));
    /// # std::fs::write(&path, b"")?;
    /// # let producer = smobject::Shared::<Telemetry>::create_at(&path, b'a')?;
    /// # let consumer = smobject::Shared::<Telemetry>::access_at(&path, b'a')?;
    /// # std::thread::scope(|s| {
    /// # s.spawn(|| for i in 1..=3 { std::thread::sleep(std::time::Duration::from_millis(5)); producer.write(|t| t.seq = i) });
    /// # block_on(async {
    /// let mut updates = consumer.updates();
    /// loop {
    ///     let v = updates.next().await?; // the current version, once past the last one returned
    ///     let t = consumer.read(); // version `v` or newer
    ///     if t.seq == 3 {
    ///         break;
    ///     }
    /// }
    /// # Ok::<(), smobject::Error>(())
    /// # })
    /// # })?;
    /// # drop((producer, consumer)); std::fs::remove_file(&path)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(feature = "async")]
    #[must_use]
    pub fn updates(&self) -> crate::Updates<'_> {
        crate::asyncwait::Updates::new(self.region.header.sync(), self.key())
    }

    /// How many times a writer that died publishing had its half-published write rolled back.
    #[must_use]
    pub fn recoveries(&self) -> u64 {
        self.region.recoveries()
    }

    /// When the last write was published (by any process), or the object was created if it
    /// was never written: for staleness checks, `shared.last_write().elapsed() > limit`.
    ///
    /// Writers stamp the kernel's coarse monotonic clock, so the time is at the kernel tick's
    /// resolution (1 to 10 ms; `CONFIG_HZ`) and may read up to one tick early.
    #[must_use]
    pub fn last_write(&self) -> Instant {
        crate::sync::instant_of(self.region.last_write_ns())
    }

    /// The schema stored in the object: its creator's struct, of which `T` is a prefix.
    ///
    /// # Panics
    /// Never: a typed handle exists only for an object whose schema was validated on attach.
    #[must_use]
    pub fn schema(&self) -> &crate::schema::Schema {
        self.object
            .schema()
            .expect("a typed object was validated to hold a schema on attach")
    }
}

impl<T: SharedStruct> Drop for Shared<T> {
    /// Detaches (the last process out frees the pair). If a [`WriteGuard`] of this handle was
    /// leaked, the lock it holds stays locked and its mapping stays mapped until the process
    /// exits: glibc keeps a held robust mutex in the thread's robust list *inside* the mutex,
    /// and the thread's next robust lock would write through it into whatever was mapped there
    /// next. Same rule as std's `MutexGuard`: a leaked guard leaks what it guards.
    fn drop(&mut self) {
        if *self.guard_out.get_mut() {
            self.region.note_leaked();
            self.object.keep_counter_mapped();
        }
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

/// Exclusive write access to a [`Shared<T>`]: dereferences to a private copy of the value,
/// taken when the lock was; dropping it publishes the copy to all readers at once (or, if a
/// panic started while it was held, publishes nothing).
///
/// Not `Send`: the process-shared mutex must be unlocked by the thread that locked it.
pub struct WriteGuard<'a, T: SharedStruct> {
    shared: &'a Shared<T>,
    /// The handle's scratch buffer, ours while the lock is held.
    scratch: NonNull<T>,
    state: WriteState,
}

impl<T: SharedStruct> WriteGuard<'_, T> {
    /// Whether the previous holder died publishing, in which case its half-published write
    /// was rolled back before this guard was handed out. A rollback publishes the restored
    /// value as a new version (`version()` advances by one), so that readers and waiters that
    /// saw the half-published state move on.
    #[must_use]
    pub fn recovered(&self) -> bool {
        self.state.rolled_back()
    }

    /// Whether the previous holder died holding the lock (whatever it was doing: a write it
    /// had not published yet is lost, one it was publishing is rolled back).
    #[must_use]
    pub fn owner_died(&self) -> bool {
        self.state.owner_died()
    }
}

impl<T: SharedStruct> Deref for WriteGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the scratch buffer is private process memory, aligned for T, holding a full
        // copy of the value (every byte initialised: zeroed at allocation, then copied), and
        // any bytes are a valid T (FromBytes). Only the holder of the writer lock uses it, and
        // this guard holds the lock for as long as the reference lives (it borrows the guard).
        unsafe { self.scratch.as_ref() }
    }
}

impl<T: SharedStruct> DerefMut for WriteGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`; `&mut self` makes the reference unique within the process, and
        // the lock excludes every other user of the buffer.
        unsafe { self.scratch.as_mut() }
    }
}

impl<T: SharedStruct> Drop for WriteGuard<'_, T> {
    fn drop(&mut self) {
        // A panic that started while the lock was held abandons the write; one that was
        // already under way when the lock was taken (a write made in a `Drop` during unwinding)
        // does not.
        let now_holds = if !std::thread::panicking() || self.state.panicking {
            // SAFETY: the scratch buffer holds the object's `len` initialised bytes (copied in
            // `begin_write`, then changed through this guard), and `state` is this write's.
            unsafe {
                self.shared
                    .region
                    .publish(&self.state, self.scratch.as_ptr().cast())
            }
        } else {
            // The buffer holds an abandoned change: it must be copied afresh next time.
            u64::MAX
        };
        // Relaxed: we still hold the lock (see the field).
        self.shared.scratch_seq.store(now_holds, Ordering::Relaxed);
        // Relaxed: we still hold the lock (see the field).
        self.shared.guard_out.store(false, Ordering::Relaxed);
        // `state` drops after this, unlocking.
    }
}

impl<T: SharedStruct + fmt::Debug> fmt::Debug for WriteGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}
