//! A writable Python buffer (`bytearray`, `memoryview`, numpy array, ...) for `read_into`.
//!
//! pyo3 offers the buffer protocol only where it is part of the limited API (Python 3.11 on),
//! and checks the element format, which a numpy structured array does not pass as bytes.
//! `PyObject_GetBuffer` and `PyBuffer_Release` are exported by every `CPython` 3 interpreter,
//! and `Py_buffer`'s layout is the same from 3.3 on (3.11 made it part of the stable ABI
//! unchanged), so this module declares them itself for the abi3 build for 3.9 and later.

use std::ffi::{c_char, c_int, c_void};

use pyo3::exceptions::PyBufferError;
use pyo3::ffi;
use pyo3::prelude::*;

/// `CPython`'s `Py_buffer` (`Include/pybuffer.h`), field for field.
#[repr(C)]
struct PyBufferRaw {
    buf: *mut c_void,
    obj: *mut ffi::PyObject,
    len: ffi::Py_ssize_t,
    itemsize: ffi::Py_ssize_t,
    readonly: c_int,
    ndim: c_int,
    format: *mut c_char,
    shape: *mut ffi::Py_ssize_t,
    strides: *mut ffi::Py_ssize_t,
    suboffsets: *mut ffi::Py_ssize_t,
    internal: *mut c_void,
}

/// `PyBUF_WRITABLE` (with `PyBUF_SIMPLE`, 0): a writable, C-contiguous block of bytes.
const PYBUF_WRITABLE: c_int = 0x0001;

extern "C" {
    /// `int PyObject_GetBuffer(PyObject *exporter, Py_buffer *view, int flags)`: fills `view`
    /// and returns 0, or sets an exception and returns -1.
    fn PyObject_GetBuffer(obj: *mut ffi::PyObject, view: *mut PyBufferRaw, flags: c_int) -> c_int;
    /// `void PyBuffer_Release(Py_buffer *view)`.
    fn PyBuffer_Release(view: *mut PyBufferRaw);
}

/// Releases a filled view on drop (also when `f` panics).
struct Release<'a>(&'a mut PyBufferRaw);

impl Drop for Release<'_> {
    fn drop(&mut self) {
        // SAFETY: the view was filled by a successful `PyObject_GetBuffer`, is released exactly
        // once, and the GIL is held (the caller's `Bound<'py>` borrow spans this).
        unsafe { PyBuffer_Release(&raw mut *self.0) };
    }
}

/// Runs `f` on the bytes of `obj`'s writable, C-contiguous buffer; no allocation (the view
/// lives on this stack frame and never moves while filled).
///
/// The slice is exclusive in every way Python code can observe: the GIL is held throughout,
/// so no Python thread runs. Native code that released the GIL and writes into the same
/// memory meanwhile would race with `f`, as with any C extension filling a buffer.
///
/// # Errors
/// `BufferError` or `TypeError` (as the exporter raises it) if `obj` has no such buffer:
/// read-only (`bytes`), not contiguous, or not a buffer at all; `f`'s error.
pub(crate) fn with_writable<R>(
    obj: &Bound<'_, PyAny>,
    f: impl FnOnce(&mut [u8]) -> PyResult<R>,
) -> PyResult<R> {
    let mut view = PyBufferRaw {
        buf: std::ptr::null_mut(),
        obj: std::ptr::null_mut(),
        len: 0,
        itemsize: 0,
        readonly: 0,
        ndim: 0,
        format: std::ptr::null_mut(),
        shape: std::ptr::null_mut(),
        strides: std::ptr::null_mut(),
        suboffsets: std::ptr::null_mut(),
        internal: std::ptr::null_mut(),
    };
    // SAFETY: `obj` is a live object and the GIL is held (`Bound`); `view` is a writable
    // `Py_buffer` of the interpreter's layout (see the module docs).
    let r = unsafe { PyObject_GetBuffer(obj.as_ptr(), &raw mut view, PYBUF_WRITABLE) };
    if r != 0 {
        return Err(PyErr::take(obj.py())
            .unwrap_or_else(|| PyBufferError::new_err("the object gave no writable buffer")));
    }
    let view = Release(&mut view);
    let len = usize::try_from(view.0.len).unwrap_or(0);
    if view.0.readonly != 0 || (view.0.buf.is_null() && len > 0) {
        return Err(PyBufferError::new_err("read_into needs a writable buffer"));
    }
    if len == 0 {
        return f(&mut []);
    }
    // SAFETY: the exporter guarantees that `buf` points to `len` writable, contiguous bytes
    // (a simple PyBUF_WRITABLE request, checked non-null above) that stay valid until
    // `PyBuffer_Release`, which `view`'s drop calls after the slice's last use; `u8` has no
    // alignment or validity requirement.
    let bytes = unsafe { std::slice::from_raw_parts_mut(view.0.buf.cast::<u8>(), len) };
    f(bytes)
}
