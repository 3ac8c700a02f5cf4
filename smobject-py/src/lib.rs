//! `smobject._smobject`: the Python bindings of the smobject runtime, built by maturin into the
//! package `smobject` (whose pure-Python layer, `python/smobject/`, declares `Struct`, the
//! field types, the exceptions and the `Object` class users see).
//!
//! A thin binding over [`smobject::DynObject`]: every protocol step (seqlock copies, the writer
//! lock and its recovery, futex waits, the lifetime protocol, schema validation and the
//! prefix rule) is the Rust runtime's. This crate converts between Python values and the
//! object's bytes, maps errors to the Python exception classes, and releases the GIL while it
//! blocks.

mod buffer;
mod convert;
mod plan;

use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyDict};
use smobject::{DynObject, Key, Options};

use crate::plan::Plan;

/// How long one futex wait of `wait_for_update` lasts at most before the GIL is taken again to
/// run Python's signal handlers (Ctrl-C raises `KeyboardInterrupt` within this, plus a little).
const SIGNAL_SLICE: Duration = Duration::from_millis(50);

/// How long `close()` waits for other threads' waits and writes to let go of the object (they
/// see the close within [`SIGNAL_SLICE`]); a read in progress holds it for microseconds. After
/// that, the last of them to finish detaches.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// The Python exception classes by `ErrorKind` name (`smobject._errors.BY_KIND`).
static ERRORS: PyOnceLock<Py<PyDict>> = PyOnceLock::new();

/// The Python exception for a Rust error: the class of its kind (from `smobject._errors`),
/// with the Rust error's message and its `key`, `path`, `id`, `hint` and `errno` attributes.
fn py_err(py: Python<'_>, e: &smobject::Error) -> PyErr {
    let kind = format!("{:?}", e.kind());
    let make = || -> PyResult<PyErr> {
        let classes = ERRORS.import(py, "smobject._errors", "BY_KIND")?;
        let Some(class) = classes.get_item(&kind)? else {
            return Ok(PyRuntimeError::new_err(e.to_string()));
        };
        let exc = class.call1((e.to_string(),))?;
        exc.setattr("key", e.key())?;
        exc.setattr("path", e.path().map(|p| p.to_string_lossy().into_owned()))?;
        exc.setattr("id", e.id().map(|i| char::from(i).to_string()))?;
        exc.setattr("hint", e.hint_text())?;
        exc.setattr("errno", e.errno())?;
        Ok(PyErr::from_value(exc))
    };
    make().unwrap_or_else(|err| err)
}

/// A Python exception of class `name` from `smobject._errors` with `message` (for errors the
/// binding finds itself: a bad id, a Python value of the wrong type).
fn py_err_named(py: Python<'_>, name: &str, message: &str) -> PyErr {
    let make = || -> PyResult<PyErr> {
        let module = py.import("smobject._errors")?;
        let exc = module.getattr(name)?.call1((message,))?;
        Ok(PyErr::from_value(exc))
    };
    make().unwrap_or_else(|err| err)
}

/// An `InvalidValue` (class `class`: `InvalidValue` or `InvalidValueType`) about `obj`, worded
/// and with the attributes of the runtime's errors: `invalid value (key .., path .., id ..):
/// {detail}; hint: ..`.
fn invalid_value(py: Python<'_>, obj: &DynObject, class: &str, detail: &str) -> PyErr {
    let key = obj.key();
    let path = key.path().to_string_lossy().into_owned();
    let id = char::from(key.id()).to_string();
    let hint = format!(
        "see the object's fields and types with `smobject inspect {path} {id}` (`o.schema` in Python)"
    );
    let message = format!(
        "invalid value (key {:#010x}, path {path}, id '{id}'): {detail}; hint: {hint}",
        key.raw() as u32
    );
    let make = || -> PyResult<PyErr> {
        let exc = py
            .import("smobject._errors")?
            .getattr(class)?
            .call1((message,))?;
        exc.setattr("key", key.raw())?;
        exc.setattr("path", path)?;
        exc.setattr("id", id)?;
        exc.setattr("hint", hint)?;
        Ok(PyErr::from_value(exc))
    };
    make().unwrap_or_else(|err| err)
}

/// The project id: a one-character string in `'A'..='z'` (the range is the runtime's check).
fn parse_id(py: Python<'_>, path: &std::path::Path, id: &str) -> PyResult<u8> {
    let mut chars = id.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) if c.is_ascii() => Ok(c as u8),
        _ => Err(py_err_named(
            py,
            "InvalidId",
            &format!(
                "invalid project id (path {}): the id is one character in 'A'..='z' such as \"a\", not {id:?}; hint: use a letter as the id",
                path.display()
            ),
        )),
    }
}

/// An attached object (`smobject.Object` is its Python subclass): values by the schema stored
/// in it, consistent snapshots, one locked publish per write, futex waits.
#[pyclass(subclass, module = "smobject._smobject", name = "Object")]
struct Object {
    /// `None` once closed. An `Arc` so that a wait in progress keeps it attached while another
    /// thread closes the handle.
    inner: Option<Arc<DynObject>>,
    /// Set by `close()`: a wait or a write blocked in another thread sees it within
    /// [`SIGNAL_SLICE`], raises `smobject.Closed` and lets go of the object, so that `close()`
    /// (and the close at interpreter exit) really detaches.
    closing: Arc<AtomicBool>,
    /// How to turn a snapshot's bytes into a dict, made once from the schema.
    plan: Plan,
    /// The schema as nested tuples (for the Python layer's `Schema`).
    desc: Py<PyAny>,
}

impl Object {
    fn obj(&self, py: Python<'_>) -> PyResult<&Arc<DynObject>> {
        self.inner.as_ref().ok_or_else(|| {
            py_err_named(
                py,
                "Closed",
                "the object was closed: open it again to use it",
            )
        })
    }
}

/// Why a blocking call (a wait, a write waiting for the lock) stopped early.
enum Stop {
    /// A Python signal handler raised (Ctrl-C: `KeyboardInterrupt`).
    Signal(PyErr),
    /// Another thread called `close()`.
    Closed,
}

impl Stop {
    /// Between two slices of a blocking call, without the GIL: `close()` first, then the
    /// signal handlers (the GIL is taken for them only).
    fn check(closing: &AtomicBool) -> ControlFlow<Stop> {
        if closing.load(Ordering::Acquire) {
            return ControlFlow::Break(Stop::Closed);
        }
        Python::attach(|py| match py.check_signals() {
            Ok(()) => ControlFlow::Continue(()),
            Err(e) => ControlFlow::Break(Stop::Signal(e)),
        })
    }

    fn into_err(self, py: Python<'_>, what: &str) -> PyErr {
        match self {
            Stop::Signal(e) => e,
            Stop::Closed => py_err_named(
                py,
                "Closed",
                &format!("the object was closed by another thread during {what}"),
            ),
        }
    }
}

#[pymethods]
impl Object {
    /// Opens the object under `(path, id)`: `op` is `create`, `open_or_create` or `access`;
    /// `schema` the struct's description from `smobject.Struct` (required to create,
    /// optional to access: then checked by the prefix rule). The factory functions
    /// `smobject.create`, `smobject.open_or_create` and `smobject.access` call this.
    #[new]
    #[allow(clippy::needless_pass_by_value)] // pyo3 extracts arguments as owned values
    /// `mode` and `allow_uid` are [`Options::mode`] and [`Options::allow_uid`]: the mode of
    /// new segments and the broadest one accepted, and owners trusted besides this user.
    #[pyo3(signature = (op, path, id, schema=None, mode=0o600, allow_uid=Vec::new()))]
    fn new(
        py: Python<'_>,
        op: &str,
        path: PathBuf,
        id: &str,
        schema: Option<&Bound<'_, PyAny>>,
        mode: i64,
        allow_uid: Vec<u32>,
    ) -> PyResult<Self> {
        let id = parse_id(py, &path, id)?;
        let schema = schema.map(convert::schema_from_desc).transpose()?;
        // A mode outside u32 is refused like one with bad bits (the runtime checks the rest,
        // naming the key).
        let mode = u32::try_from(mode).map_err(|_| {
            py_err_named(
                py,
                "InvalidOptions",
                &format!("invalid options: mode {mode} is not a permission mode; hint: use 0o600 (owner only), 0o660 (owner and group) or 0o666 (everyone)"),
            )
        })?;
        let opts = options(Options::new().mode(mode), allow_uid);
        let opened = py.detach(|| -> smobject::Result<Option<DynObject>> {
            Ok(Some(match (op, schema) {
                ("access", None) => DynObject::access_in(&Key::from_path(&path, id)?, &opts)?,
                ("access", Some(s)) => {
                    DynObject::access_checked_in(&Key::from_path(&path, id)?, s, &opts)?
                }
                ("create", Some(s)) => DynObject::create_in(
                    &Key::from_path_creating(&path, id, opts.get_mode())?,
                    s,
                    &opts,
                )?,
                ("open_or_create", Some(s)) => DynObject::open_or_create_in(
                    &Key::from_path_creating(&path, id, opts.get_mode())?,
                    s,
                    &opts,
                )?,
                _ => return Ok(None),
            }))
        });
        let object = match opened {
            Ok(Some(o)) => o,
            Ok(None) => {
                return Err(PyValueError::new_err(format!(
                    "`{op}` needs a smobject.Struct class (ops: create, open_or_create, access)"
                )))
            }
            // The runtime's hint names `Options`; a Python user passes keyword arguments.
            Err(e) if e.kind() == smobject::ErrorKind::ForeignOwner => {
                let e = e.with_hint(
                    "if you trust it, pass its mode (`mode=0o660`) or its owner \
                     (`allow_uid=[uid]`); `ipcs -m -p` shows both",
                );
                return Err(py_err(py, &e));
            }
            Err(e) => return Err(py_err(py, &e)),
        };
        let plan = Plan::of_struct(py, object.schema());
        let desc = convert::schema_to_desc(py, object.schema())?.unbind();
        Ok(Object {
            inner: Some(Arc::new(object)),
            closing: Arc::new(AtomicBool::new(false)),
            plan,
            desc,
        })
    }

    /// A consistent snapshot as a dict (`{"seq": 7, "pos": [1.0, 2.0, 3.0], ...}`): arrays
    /// are lists, nested structs dicts, `f32` values widened exactly to `float`.
    fn read<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let obj = self.obj(py)?;
        let len = obj.len();
        let mut stack = [0u8; 512];
        let mut heap = Vec::new();
        let bytes: &mut [u8] = if len <= stack.len() {
            &mut stack[..len]
        } else {
            heap.resize(len, 0);
            &mut heap
        };
        obj.read_into(bytes);
        self.plan.build(py, bytes, 0)
    }

    /// Copies a consistent snapshot into `buf` (any writable, contiguous buffer of exactly
    /// the object's size: `bytearray`, `memoryview`, a numpy array of `o.dtype`) without
    /// allocating; returns the version it holds.
    fn read_into(&self, py: Python<'_>, buf: &Bound<'_, PyAny>) -> PyResult<u64> {
        let obj = self.obj(py)?;
        buffer::with_writable(buf, |dst| {
            if dst.len() != obj.len() {
                return Err(PyValueError::new_err(format!(
                    "read_into: a buffer of {} bytes for an object of {} (`{}`): give one of exactly {} bytes",
                    dst.len(),
                    obj.len(),
                    obj.schema().name,
                    obj.len()
                )));
            }
            Ok(obj.read_into(dst))
        })
    }

    /// Completed writes (publishes) since the object was created.
    #[getter]
    fn version(&self, py: Python<'_>) -> PyResult<u64> {
        Ok(self.obj(py)?.version())
    }

    /// Seconds since the last publish (or the creation), as a float.
    #[getter]
    fn last_write(&self, py: Python<'_>) -> PyResult<f64> {
        let at = self.obj(py)?.last_write();
        Ok(Instant::now().saturating_duration_since(at).as_secs_f64())
    }

    /// Blocks until the version is greater than `seen` and returns it. The GIL is released
    /// while it sleeps; Python's signal handlers run every 50 ms (Ctrl-C raises
    /// `KeyboardInterrupt`). `timeout` in seconds (`None`: no limit) raises `smobject.Timeout`;
    /// a `close()` of the object by another thread raises `smobject.Closed`.
    #[pyo3(signature = (seen, timeout=None))]
    fn wait_for_update(slf: PyRef<'_, Self>, seen: i128, timeout: Option<f64>) -> PyResult<u64> {
        let py = slf.py();
        // Taken wider than a version so that a negative one is named, not an `OverflowError`.
        let seen = u64::try_from(seen).map_err(|_| {
            PyValueError::new_err(format!(
                "wait_for_update: seen must be a version (an int in 0..2**64, as `version()` \
                 returns), not {seen}"
            ))
        })?;
        let timeout = match timeout {
            None => None,
            // Too long for a `Duration` (or infinite): no limit.
            Some(t) if t >= 0.0 => Duration::try_from_secs_f64(t).ok(),
            Some(t) => {
                return Err(PyValueError::new_err(format!(
                    "wait_for_update: timeout must be a number of seconds >= 0 or None, not {t}"
                )))
            }
        };
        let obj = Arc::clone(slf.obj(py)?);
        let closing = Arc::clone(&slf.closing);
        // Another thread may close the handle while this one sleeps: the clone keeps it
        // attached until this wait sees `closing` and lets go.
        drop(slf);
        let v = obj.version();
        if v > seen {
            return Ok(v);
        }
        let outcome = py.detach(move || {
            let r =
                obj.wait_for_update_sliced(seen, timeout, SIGNAL_SLICE, || Stop::check(&closing));
            // Let go before taking the GIL back: a `close()` waiting for it need not wait for
            // the GIL too (at interpreter exit, a daemon thread never gets it back).
            drop(obj);
            r
        });
        match outcome {
            Ok(ControlFlow::Continue(v)) => Ok(v),
            Ok(ControlFlow::Break(stop)) => Err(stop.into_err(py, "wait_for_update")),
            Err(e) => Err(py_err(py, &e)),
        }
    }

    /// Sets fields by name in **one** locked write (one publish, waiters wake once); the other
    /// bytes keep their value. Names may be paths (`**{"pos[1]": 2.5}`); arrays take any
    /// sequence of the right length, nested structs a dict of some of their fields. A value
    /// of the wrong Python type raises `TypeError`, one out of range or of the wrong length
    /// `ValueError` (both `smobject.InvalidValue`), and nothing is written. Returns the new
    /// version. While it waits for the writer lock (held by another process), Ctrl-C raises
    /// `KeyboardInterrupt` and another thread's `close()` raises `smobject.Closed`, each
    /// before anything is written.
    #[pyo3(signature = (**fields))]
    fn write(slf: PyRef<'_, Self>, fields: Option<&Bound<'_, PyDict>>) -> PyResult<u64> {
        let py = slf.py();
        let obj = Arc::clone(slf.obj(py)?);
        let closing = Arc::clone(&slf.closing);
        drop(slf);
        let mut assignments = Vec::new();
        if let Some(fields) = fields {
            for (name, value) in fields.iter() {
                let path: String = name.extract()?;
                let value = convert::value_for(py, &obj, &path, &value)?;
                assignments.push((path, value));
            }
        }
        // The writer lock may be contended (or held by a stopped process): wait for it
        // without the GIL, in slices, running the signal handlers between them (Ctrl-C
        // raises `KeyboardInterrupt` and nothing is written) and giving up if another thread
        // closes the object.
        let outcome = py.detach(|| loop {
            match obj.write_timeout(&assignments, SIGNAL_SLICE) {
                Err(e) if e.kind() == smobject::ErrorKind::Timeout => {
                    if let ControlFlow::Break(stop) = Stop::check(&closing) {
                        return Ok(Err(stop));
                    }
                }
                other => return other.map(Ok),
            }
        });
        match outcome {
            Ok(Ok(version)) => Ok(version),
            Ok(Err(stop)) => Err(stop.into_err(py, "write")),
            Err(e) => Err(
                if e.kind() == smobject::ErrorKind::InvalidValue && e.key().is_none() {
                    // A range or length error: the runtime's words, with the object's context.
                    let text = e.to_string();
                    let detail = text.strip_prefix("invalid value: ").unwrap_or(&text);
                    let detail = detail.split("; hint: ").next().unwrap_or(detail);
                    invalid_value(py, &obj, "InvalidValue", detail)
                } else {
                    py_err(py, &e)
                },
            ),
        }
    }

    /// Detaches now (the last process out frees the object). Further use raises
    /// `smobject.Closed`; closing twice is allowed. Waits and writes blocked in other threads
    /// raise `smobject.Closed` within 50 ms, and `close()` returns once they let go (waiting
    /// at most 1 s), so the object is detached when it returns.
    fn close(&mut self, py: Python<'_>) {
        if let Some(obj) = self.inner.take() {
            self.closing.store(true, Ordering::Release);
            // Detaching takes the key file's lock: not under the GIL. Waits and writes in
            // other threads see `closing` within a slice and let go of their clones; this
            // waits for that (bounded), so the object is detached when `close()` returns.
            py.detach(move || {
                let until = Instant::now() + CLOSE_GRACE;
                while Arc::strong_count(&obj) > 1 && Instant::now() < until {
                    std::thread::sleep(Duration::from_millis(1));
                }
                drop(obj);
            });
        }
    }

    /// Whether `close()` was called.
    #[getter]
    fn closed(&self) -> bool {
        self.inner.is_none()
    }

    /// Bytes of the object's data (what `read_into` needs).
    #[getter]
    fn size(&self, py: Python<'_>) -> PyResult<usize> {
        Ok(self.obj(py)?.len())
    }

    /// The SysV key of the data segment.
    #[getter]
    fn key(&self, py: Python<'_>) -> PyResult<i32> {
        Ok(self.obj(py)?.key().raw())
    }

    /// The key file.
    #[getter]
    fn path(&self, py: Python<'_>) -> PyResult<String> {
        Ok(self.obj(py)?.key().path().to_string_lossy().into_owned())
    }

    /// The project id, a one-character string.
    #[getter]
    fn id(&self, py: Python<'_>) -> PyResult<String> {
        Ok(char::from(self.obj(py)?.key().id()).to_string())
    }

    /// Whether this handle created the object (`create`, or `open_or_create` when none was
    /// live).
    #[getter]
    fn created(&self, py: Python<'_>) -> PyResult<bool> {
        Ok(self.obj(py)?.raw().created())
    }

    /// Processes (attachments) attached now, this one included.
    #[getter]
    fn attached(&self, py: Python<'_>) -> PyResult<usize> {
        self.obj(py)?.raw().attached().map_err(|e| py_err(py, &e))
    }

    /// The pid of the process that created the object.
    #[getter]
    fn creator_pid(&self, py: Python<'_>) -> PyResult<i32> {
        Ok(self.obj(py)?.raw().creator_pid())
    }

    /// The stored schema as nested tuples (`smobject.Object.schema` wraps it).
    #[getter]
    fn _schema_desc(&self, py: Python<'_>) -> Py<PyAny> {
        self.desc.clone_ref(py)
    }

    /// The stored schema's fingerprint (equal for equal schemas, in every language).
    #[getter]
    fn _fingerprint(&self, py: Python<'_>) -> PyResult<u64> {
        Ok(self.obj(py)?.schema().fingerprint())
    }
}

/// Validates a struct description (nested tuples, from `smobject.Struct`) as the runtime
/// would store it, and returns `(fingerprint, encoded schema bytes)`.
#[pyfunction]
fn schema_info<'py>(
    py: Python<'py>,
    desc: &Bound<'py, PyAny>,
) -> PyResult<(u64, Bound<'py, PyBytes>)> {
    let schema = convert::schema_from_desc(desc)?;
    let bytes = schema.encode().map_err(PyTypeError::new_err)?;
    Ok((schema.fingerprint(), PyBytes::new(py, &bytes)))
}

/// Removes the object under `(path, id)` if no process is attached to it (left by processes
/// that all died), whatever its mode; returns whether one was removed. Raises
/// `smobject.InUse` if processes are attached (the last of them frees it), and
/// `smobject.ForeignOwner` for another user's pair unless its uid is in `allow_uid`.
#[pyfunction]
#[pyo3(signature = (path, id, *, allow_uid=Vec::new()))]
#[allow(clippy::needless_pass_by_value)] // pyo3 extracts arguments as owned values
fn remove_stale(py: Python<'_>, path: PathBuf, id: &str, allow_uid: Vec<u32>) -> PyResult<bool> {
    let id = parse_id(py, &path, id)?;
    let opts = options(Options::new(), allow_uid);
    py.detach(|| smobject::remove_stale_with(&Key::from_path(&path, id)?, &opts))
        .map_err(|e| py_err(py, &e))
}

/// `opts` trusting the owners `allow_uid` too (the keyword of `access`, `remove_stale`, ...).
fn options(opts: Options, allow_uid: Vec<u32>) -> Options {
    allow_uid.into_iter().fold(opts, Options::allow_uid)
}

/// The extension module.
#[pymodule]
fn _smobject(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Object>()?;
    m.add_function(wrap_pyfunction!(schema_info, m)?)?;
    m.add_function(wrap_pyfunction!(remove_stale, m)?)?;
    m.add("FORMAT_VERSION", smobject::FORMAT_VERSION)?;
    Ok(())
}
