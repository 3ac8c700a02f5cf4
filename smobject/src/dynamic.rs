//! [`DynObject`]: an object opened by its schema instead of a Rust type, for tools and other
//! languages (the `smobject` command, Python, bridges to other hosts). Same protocol as
//! [`Shared`](crate::Shared): consistent snapshots, one locked publish per write, futex waits.

use std::ops::ControlFlow;
use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::error::{Error, ErrorKind, Result};
use crate::key::Key;
use crate::object::{Layout, Options, RawObject};
use crate::schema::{self, Schema, Type, Value};
use crate::sync::Region;

/// An object accessed through the schema stored in it: values by field name, no Rust type.
///
/// ```
/// # #[smobject::shared_memory(path = "/tmp/smobject-doc-dyn", id = 'd')]
/// # #[repr(C)]
/// # pub struct Telemetry { pub seq: u64, pub pos: [f64; 3], pub status: u32, pub _pad: u32 }
/// # std::fs::write("/tmp/smobject-doc-dyn", b"")?;
/// # let producer = Telemetry::create()?;
/// use smobject::schema::Value;
///
/// // Another process runs `Telemetry::create()`; this one has no Rust type for it.
/// let o = smobject::DynObject::access_at("/tmp/smobject-doc-dyn", b'd')?;
/// assert_eq!(o.schema().name, "Telemetry");
/// // One locked write of two fields, parsed by their types: one new version.
/// let v = o.set(&["seq=7", "pos[1]=2.5"])?;
/// let snap = o.read();                          // a consistent snapshot
/// assert_eq!(snap.version(), v);
/// assert_eq!(snap.get("seq")?, Value::Unsigned(7));
/// assert_eq!(snap.get("pos")?.to_string(), "[0.0, 2.5, 0.0]");
/// assert_eq!(
///     snap.value().to_json(),
///     r#"{"seq": 7, "pos": [0.0, 2.5, 0.0], "status": 0, "_pad": 0}"#
/// );
/// // An unknown field or a value out of range writes nothing.
/// assert!(o.set(&["seq=8", "nope=1"]).is_err());
/// assert_eq!(o.version(), v);
/// # drop(o); drop(producer);
/// # std::fs::remove_file("/tmp/smobject-doc-dyn")?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct DynObject {
    object: RawObject,
    region: Region,
    schema: Arc<Schema>,
    /// The private write buffer (whole 8-byte words, so 8-aligned), behind a process-local
    /// mutex taken before the writer lock: only its holder uses it.
    scratch: Mutex<Vec<u64>>,
    /// The `seq` whose value `scratch` holds (see `Region::begin_write`).
    scratch_seq: AtomicU64,
}

// SAFETY: `Region` holds raw pointers into the mappings `object` owns for as long as the
// `DynObject` lives; every access through them is atomic (the granule rule of `copy`) or under
// the process-shared mutex, from any thread. The scratch buffer is behind a `Mutex`.
unsafe impl Send for DynObject {}
// SAFETY: as above: `&DynObject` reads with atomic copies and writes under both locks.
unsafe impl Sync for DynObject {}

/// Where a mirror's value came from: the source object's version and the source's publish
/// time (nanoseconds since the Unix epoch, the source host's clock).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Origin {
    /// The version of the source object that the value was.
    pub version: u64,
    /// When the source published it, nanoseconds since the Unix epoch (source host's clock).
    pub published_unix_ns: u64,
}

/// A consistent snapshot of a [`DynObject`]: the bytes of one version, decodable by field.
#[derive(Clone, Debug)]
pub struct Snapshot {
    version: u64,
    bytes: Vec<u8>,
    schema: Arc<Schema>,
}

impl Snapshot {
    /// The version (completed writes) this snapshot holds.
    #[must_use]
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The object's bytes (native-endian, laid out as the schema says).
    #[must_use]
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The schema the bytes follow.
    #[must_use]
    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    /// Every field, as a [`Value::Struct`].
    #[must_use]
    pub fn value(&self) -> Value {
        self.schema.decode_value(&self.bytes)
    }

    /// One field or element by path (`pos`, `pos[1]`, `pose.position.x`).
    ///
    /// # Errors
    /// [`InvalidValue`](ErrorKind::InvalidValue) naming the unknown part of the path.
    pub fn get(&self, path: &str) -> Result<Value> {
        let (offset, ty) = resolve(&self.schema, path)?;
        Ok(schema::decode_value(ty, &self.bytes[offset..]))
    }
}

fn resolve<'s>(schema: &'s Schema, path: &str) -> Result<(usize, &'s Type)> {
    schema.resolve(path).map_err(invalid)
}

fn invalid(why: String) -> Error {
    Error::new(ErrorKind::InvalidValue, why)
}

impl DynObject {
    fn wrap(object: RawObject) -> Result<DynObject> {
        let Some(schema) = object.schema().cloned() else {
            return Err(Error::new(
                ErrorKind::LayoutMismatch,
                "the object is untyped bytes (an `SMObject` or raw object): it has no schema",
            )
            .with_key(object.key())
            .hint("read it as bytes (`smobject inspect --hex`, `SMObject`), or create it from a `#[shared_memory]` struct"));
        };
        let region = Region::of(&object);
        let len = region.len;
        Ok(DynObject {
            region,
            schema: Arc::new(schema),
            scratch: Mutex::new(vec![0u64; len.div_ceil(8).max(1)]),
            scratch_seq: AtomicU64::new(u64::MAX),
            object,
        })
    }

    /// Attaches to the existing object under `(path, id)`, whatever struct it holds.
    ///
    /// # Errors
    /// As [`RawObject::access`]; [`LayoutMismatch`](ErrorKind::LayoutMismatch) for an untyped
    /// object (no schema).
    pub fn access_at(path: impl AsRef<Path>, id: u8) -> Result<DynObject> {
        Self::access_in(&Key::from_path(path, id)?, &Options::new())
    }

    /// [`access_at`](Self::access_at) with an explicit key and options.
    ///
    /// # Errors
    /// As [`access_at`](Self::access_at).
    pub fn access_in(key: &Key, opts: &Options) -> Result<DynObject> {
        Self::wrap(RawObject::access(key, Layout::untyped(0), opts)?)
    }

    /// Attaches to the existing object under `key` if its schema has `schema` as a prefix
    /// (the evolution rule, as [`Shared::access_at`](crate::Shared::access_at) applies it);
    /// the handle still reads and writes the whole object by its stored schema. For callers
    /// that declare their struct at run time (other languages).
    ///
    /// # Errors
    /// As [`RawObject::access`]: [`LayoutMismatch`](ErrorKind::LayoutMismatch) naming the
    /// first field that differs.
    pub fn access_checked_in(key: &Key, schema: Schema, opts: &Options) -> Result<DynObject> {
        Self::wrap(RawObject::access(key, Layout::from_schema(schema), opts)?)
    }

    /// Attaches to the object under `key` if its schema has `schema` as a prefix (the
    /// evolution rule), or creates it from `schema` (zeroed).
    ///
    /// # Errors
    /// As [`RawObject::open_or_create`]: [`LayoutMismatch`](ErrorKind::LayoutMismatch) naming
    /// the first differing field.
    pub fn open_or_create_in(key: &Key, schema: Schema, opts: &Options) -> Result<DynObject> {
        Self::wrap(RawObject::open_or_create(
            key,
            Layout::from_schema(schema),
            opts,
        )?)
    }

    /// Creates a new, zeroed object from `schema`.
    ///
    /// # Errors
    /// As [`RawObject::create`].
    pub fn create_in(key: &Key, schema: Schema, opts: &Options) -> Result<DynObject> {
        Self::wrap(RawObject::create(key, Layout::from_schema(schema), opts)?)
    }

    /// The schema stored in the object.
    #[must_use]
    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    /// The key.
    #[must_use]
    pub fn key(&self) -> &Key {
        self.object.key()
    }

    /// The underlying object (ids, counts, creator).
    #[must_use]
    pub fn raw(&self) -> &RawObject {
        &self.object
    }

    /// Bytes of the object's data.
    #[must_use]
    pub fn len(&self) -> usize {
        self.region.len
    }

    /// Whether the object has no bytes (never: a schema describes at least one).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.region.len == 0
    }

    /// Completed writes.
    #[must_use]
    pub fn version(&self) -> u64 {
        self.region.version()
    }

    /// When the last write was published (see [`Shared::last_write`](crate::Shared::last_write)).
    #[must_use]
    pub fn last_write(&self) -> Instant {
        crate::sync::instant_of(self.region.last_write_ns())
    }

    /// A consistent snapshot (never torn, whatever writers do meanwhile).
    #[must_use]
    pub fn read(&self) -> Snapshot {
        let mut bytes = vec![0u8; self.region.len];
        let version = self.read_into(&mut bytes);
        Snapshot {
            version,
            bytes,
            schema: Arc::clone(&self.schema),
        }
    }

    /// Copies a consistent snapshot of the first `dst.len()` bytes (at most [`len`](Self::len))
    /// into `dst`, without allocating; returns the version it holds.
    ///
    /// # Panics
    /// If `dst` is longer than the object.
    pub fn read_into(&self, dst: &mut [u8]) -> u64 {
        assert!(
            dst.len() <= self.region.len,
            "read_into: a buffer of {} bytes for an object of {}",
            dst.len(),
            self.region.len
        );
        // SAFETY: `dst` is valid for its `len() <= region.len` bytes of writes and private
        // (an exclusive borrow); the region's mappings live as long as `self`.
        let fast = unsafe { self.region.try_read_version(dst.as_mut_ptr(), dst.len()) };
        if let Some(version) = fast {
            return version;
        }
        // SAFETY: as above.
        let slow = unsafe { self.region.read_until(dst.as_mut_ptr(), dst.len(), None) };
        // Without a deadline it returns only with a snapshot.
        slow.unwrap_or_else(|| self.version())
    }

    /// Blocks until the version is greater than `seen`, and returns it (a futex wait, woken by
    /// the next publish).
    ///
    /// # Errors
    /// [`Timeout`](ErrorKind::Timeout) if `timeout` passes first.
    pub fn wait_for_update(&self, seen: u64, timeout: Option<Duration>) -> Result<u64> {
        self.region
            .wait_for_update(seen, timeout)
            .map_err(|e| e.with_key(self.key()))
    }

    /// [`wait_for_update`](Self::wait_for_update) in slices of at most `slice`, calling
    /// `between` after every slice that ended with no update, so that a caller can notice
    /// something else (a signal, a shutdown flag) while it waits. `between` returning
    /// [`ControlFlow::Break`] ends the wait with its value; the result is
    /// [`ControlFlow::Continue`] with the new version otherwise.
    ///
    /// # Errors
    /// [`Timeout`](ErrorKind::Timeout) if `timeout` passes first (its message gives the whole
    /// `timeout`, not the slice).
    pub fn wait_for_update_sliced<B>(
        &self,
        seen: u64,
        timeout: Option<Duration>,
        slice: Duration,
        mut between: impl FnMut() -> ControlFlow<B>,
    ) -> Result<ControlFlow<B, u64>> {
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        let slice = slice.max(Duration::from_millis(1));
        loop {
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            if left == Some(Duration::ZERO) {
                let v = self.version();
                if v > seen {
                    return Ok(ControlFlow::Continue(v));
                }
                return Err(Error::new(
                    ErrorKind::Timeout,
                    format!(
                        "no update past version {seen} within {:?}",
                        timeout.unwrap_or_default()
                    ),
                )
                .with_key(self.key()));
            }
            let this = left.map_or(slice, |l| l.min(slice));
            match self.region.wait_for_update(seen, Some(this)) {
                Ok(v) => return Ok(ControlFlow::Continue(v)),
                Err(e) if e.kind() == ErrorKind::Timeout => {
                    if let ControlFlow::Break(b) = between() {
                        return Ok(ControlFlow::Break(b));
                    }
                }
                Err(e) => return Err(e.with_key(self.key())),
            }
        }
    }

    /// Waits, without blocking a thread, until the version is greater than `seen`, and
    /// completes with it (feature `async`). As [`Shared::changed`](crate::Shared::changed):
    /// `Send`, `Unpin`, cancel-safe, for any executor.
    ///
    /// # Errors
    /// As [`Shared::changed`](crate::Shared::changed).
    #[cfg(feature = "async")]
    pub fn changed(
        &self,
        seen: u64,
    ) -> impl std::future::Future<Output = Result<u64>> + Send + Unpin + '_ {
        crate::asyncwait::Changed::new(self.region.header.sync(), self.key(), seen)
    }

    /// The versions written from now on, one `next().await` at a time (feature `async`); see
    /// [`Shared::updates`](crate::Shared::updates).
    #[cfg(feature = "async")]
    #[must_use]
    pub fn updates(&self) -> crate::Updates<'_> {
        crate::asyncwait::Updates::new(self.region.header.sync(), self.key())
    }

    /// Parses `FIELD=VALUE` assignments (`seq=7`, `pos=[1, 2, 3]`, `pos[1]=2.5`,
    /// `pose.position={x: 1, y: 2, z: 3}`) by the schema's types, range-checked.
    ///
    /// # Errors
    /// [`InvalidValue`](ErrorKind::InvalidValue) naming the field of the first bad one.
    pub fn parse_assignments<S: AsRef<str>>(&self, text: &[S]) -> Result<Vec<(String, Value)>> {
        text.iter()
            .map(|a| {
                let a = a.as_ref();
                let (path, value) = a.split_once('=').ok_or_else(|| {
                    invalid(format!(
                        "`{a}` is not an assignment: write `FIELD=VALUE` (e.g. `pos[1]=2.5`)"
                    ))
                })?;
                let path = path.trim();
                let (_, ty) = resolve(&self.schema, path)?;
                let v = schema::parse_value(ty, value.trim(), path).map_err(invalid)?;
                Ok((path.to_owned(), v))
            })
            .collect()
    }

    /// [`parse_assignments`](Self::parse_assignments) then [`write`](Self::write): all in one
    /// locked write, or nothing if any is invalid. Returns the new version.
    ///
    /// # Errors
    /// As both.
    pub fn set<S: AsRef<str>>(&self, assignments: &[S]) -> Result<u64> {
        let values = self.parse_assignments(assignments)?;
        self.write(&values)
    }

    /// [`set`](Self::set), waiting at most `timeout` for the writer lock: for tools that must
    /// not hang behind a process that holds a write guard (`smobject set`).
    ///
    /// # Errors
    /// As [`set`](Self::set), and [`Timeout`](ErrorKind::Timeout) (nothing written) if the
    /// lock was not free in time.
    pub fn set_timeout<S: AsRef<str>>(&self, assignments: &[S], timeout: Duration) -> Result<u64> {
        let values = self.parse_assignments(assignments)?;
        self.write_until(&values, crate::sync::deadline_after(timeout))
    }

    /// Sets fields or elements by path in **one** locked write (one publish: waiters wake
    /// once); the other bytes keep their value. Every assignment is checked first (path, type,
    /// range); if any is invalid nothing is written. Returns the new version.
    ///
    /// # Errors
    /// [`InvalidValue`](ErrorKind::InvalidValue) naming the field; lock errors as
    /// [`Shared::lock`](crate::Shared::lock).
    pub fn write(&self, assignments: &[(String, Value)]) -> Result<u64> {
        self.write_until(assignments, None)
    }

    /// [`write`](Self::write) that waits at most `timeout` for the writer lock: a program
    /// (the Python binding, to run signal handlers between tries) need not hang behind a
    /// process that holds a write guard.
    ///
    /// # Errors
    /// As [`write`](Self::write), and [`Timeout`](ErrorKind::Timeout) (nothing written) if
    /// the lock was not free in time.
    pub fn write_timeout(&self, assignments: &[(String, Value)], timeout: Duration) -> Result<u64> {
        self.write_until(assignments, crate::sync::deadline_after(timeout))
    }

    fn write_until(
        &self,
        assignments: &[(String, Value)],
        deadline: Option<Instant>,
    ) -> Result<u64> {
        // Every assignment is resolved and checked first, on a throw-away buffer the size of
        // its field: path, type and range errors do not depend on the current value, so no
        // lock is taken for invalid input. (Encoded again under the lock, onto the current
        // bytes: a struct value that names some fields keeps the others.)
        let mut resolved = Vec::with_capacity(assignments.len());
        let mut trial = Vec::new();
        for (path, v) in assignments {
            let (offset, ty) = resolve(&self.schema, path)?;
            trial.clear();
            trial.resize(ty.size(), 0);
            schema::encode_value(ty, v, path, &mut trial).map_err(invalid)?;
            resolved.push((offset, ty));
        }
        self.write_with(deadline, |bytes| {
            for ((path, v), &(offset, ty)) in assignments.iter().zip(&resolved) {
                schema::encode_value(ty, v, path, &mut bytes[offset..]).map_err(invalid)?;
            }
            Ok(())
        })
    }

    /// Replaces the first `bytes.len()` bytes of the value in one locked write (a mirror
    /// writing a received snapshot). Returns the new version.
    ///
    /// # Errors
    /// [`InvalidValue`](ErrorKind::InvalidValue) if `bytes` is longer than the object; lock
    /// errors.
    pub fn write_bytes(&self, bytes: &[u8]) -> Result<u64> {
        self.write_prefix(bytes, None)
    }

    /// [`write_bytes`](Self::write_bytes) for a mirror of an object on another host: also
    /// records, in the same locked write, the source's version and publish time of the value
    /// ([`origin`](Self::origin)).
    ///
    /// # Errors
    /// As [`write_bytes`](Self::write_bytes).
    pub fn write_mirrored(&self, bytes: &[u8], origin: Origin) -> Result<u64> {
        self.write_prefix(bytes, Some(origin))
    }

    fn write_prefix(&self, bytes: &[u8], origin: Option<Origin>) -> Result<u64> {
        if bytes.len() > self.region.len {
            return Err(invalid(format!(
                "{} bytes given for an object of {}",
                bytes.len(),
                self.region.len
            )));
        }
        self.write_with(None, |dst| {
            dst[..bytes.len()].copy_from_slice(bytes);
            if let Some(o) = origin {
                self.region.set_origin(o.version, o.published_unix_ns);
            }
            Ok(())
        })
    }

    /// For a mirror: the source's version and publish time of the value it holds (as of the
    /// last write through [`write_mirrored`](Self::write_mirrored)); `None` for an object
    /// that is not a mirror.
    #[must_use]
    pub fn origin(&self) -> Option<Origin> {
        self.region
            .origin()
            .map(|(version, published_unix_ns)| Origin {
                version,
                published_unix_ns,
            })
    }

    /// Runs `change` on a private copy of the value under the writer lock and publishes it,
    /// or publishes nothing if `change` fails (callers validate before, so it does not).
    fn write_with(
        &self,
        deadline: Option<Instant>,
        change: impl FnOnce(&mut [u8]) -> Result<()>,
    ) -> Result<u64> {
        let len = self.region.len;
        let mut scratch = self.scratch.lock().unwrap_or_else(PoisonError::into_inner);
        let ptr = scratch.as_mut_ptr().cast::<u8>();
        // SAFETY: `scratch` has room for `len` bytes (whole words, so 8-aligned) and is private
        // to us: the process-local mutex is held, and it is only used under it.
        let state = unsafe { self.region.begin_write(ptr, &self.scratch_seq, deadline) }
            .map_err(|e| e.with_key(self.key()))?;
        // SAFETY: `begin_write` filled the first `len` bytes of the buffer (initialised
        // `u64`s, so any bytes), which nobody else accesses while we hold both locks.
        let bytes = unsafe { std::slice::from_raw_parts_mut(ptr, len) };
        let outcome = change(bytes);
        match outcome {
            Ok(()) => {
                // SAFETY: the buffer holds `len` initialised bytes; `state` is this write's.
                let seq = unsafe { self.region.publish(&state, ptr) };
                self.scratch_seq
                    .store(seq, std::sync::atomic::Ordering::Relaxed);
                Ok(seq / 2)
            }
            Err(e) => {
                // The buffer may be half-changed: copy afresh next time. Nothing was published.
                self.scratch_seq
                    .store(u64::MAX, std::sync::atomic::Ordering::Relaxed);
                Err(e)
            }
        }
    }
}

impl std::fmt::Debug for DynObject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DynObject")
            .field("key", self.key())
            .field("type", &self.schema.name)
            .field("len", &self.region.len)
            .finish_non_exhaustive()
    }
}
