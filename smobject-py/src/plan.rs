//! The decoding plan: how `Object.read()` turns a snapshot's bytes into Python values
//! directly (no intermediate `Value` tree), made once per object from its schema, with the
//! field names interned.

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyFloat, PyList, PyString};
use smobject::schema::{Scalar, Schema, Type};

/// What to build from the bytes at an offset.
pub(crate) enum Plan {
    /// A number (`int` or `float`).
    Scalar(Scalar),
    /// A `list` of `n` elements, `stride` bytes apart.
    Array {
        elem: Box<Plan>,
        n: usize,
        stride: usize,
    },
    /// A `dict` of the fields, each at its offset.
    Struct(Vec<(Py<PyString>, usize, Plan)>),
}

/// `N` bytes at `at`, or zeros where `bytes` ends first (never a panic; the schema was
/// validated, so it does not).
fn take<const N: usize>(bytes: &[u8], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    if let Some(b) = bytes.get(at..at.saturating_add(N)) {
        out.copy_from_slice(b);
    }
    out
}

/// One number as a Python object.
fn scalar<'py>(py: Python<'py>, s: Scalar, b: &[u8], at: usize) -> Bound<'py, PyAny> {
    match s {
        Scalar::U8 => b
            .get(at)
            .copied()
            .unwrap_or(0)
            .into_pyobject(py)
            .map(Bound::into_any),
        Scalar::U16 => u16::from_ne_bytes(take(b, at))
            .into_pyobject(py)
            .map(Bound::into_any),
        Scalar::U32 => u32::from_ne_bytes(take(b, at))
            .into_pyobject(py)
            .map(Bound::into_any),
        Scalar::U64 => u64::from_ne_bytes(take(b, at))
            .into_pyobject(py)
            .map(Bound::into_any),
        Scalar::I8 => i8::from_ne_bytes(take(b, at))
            .into_pyobject(py)
            .map(Bound::into_any),
        Scalar::I16 => i16::from_ne_bytes(take(b, at))
            .into_pyobject(py)
            .map(Bound::into_any),
        Scalar::I32 => i32::from_ne_bytes(take(b, at))
            .into_pyobject(py)
            .map(Bound::into_any),
        Scalar::I64 => i64::from_ne_bytes(take(b, at))
            .into_pyobject(py)
            .map(Bound::into_any),
        Scalar::U128 => u128::from_ne_bytes(take(b, at))
            .into_pyobject(py)
            .map(Bound::into_any),
        Scalar::I128 => i128::from_ne_bytes(take(b, at))
            .into_pyobject(py)
            .map(Bound::into_any),
        // Widened exactly, as `struct.unpack("f")` and numpy do.
        Scalar::F32 => Ok(PyFloat::new(py, f64::from(f32::from_ne_bytes(take(b, at)))).into_any()),
        Scalar::F64 => Ok(PyFloat::new(py, f64::from_ne_bytes(take(b, at))).into_any()),
        // `Scalar` is non-exhaustive: a scalar this build does not know reads as `None`.
        _ => Ok(py.None().into_bound(py)),
    }
    .unwrap_or_else(|never| match never {})
}

impl Plan {
    /// The plan of a struct's value.
    pub(crate) fn of_struct(py: Python<'_>, s: &Schema) -> Plan {
        Plan::Struct(
            s.fields
                .iter()
                .map(|f| {
                    (
                        PyString::intern(py, &f.name).unbind(),
                        f.offset,
                        Plan::of(py, &f.ty),
                    )
                })
                .collect(),
        )
    }

    fn of(py: Python<'_>, ty: &Type) -> Plan {
        match ty {
            Type::Array(e, n) => Plan::Array {
                elem: Box::new(Plan::of(py, e)),
                n: *n,
                stride: e.size(),
            },
            Type::Struct(s) => Plan::of_struct(py, s),
            // Numbers and atomics (the same bytes); a type this build does not know: bytes.
            other => other.scalar().map_or(
                Plan::Array {
                    elem: Box::new(Plan::Scalar(Scalar::U8)),
                    n: other.size(),
                    stride: 1,
                },
                Plan::Scalar,
            ),
        }
    }

    /// The value at `at` in `bytes`.
    pub(crate) fn build<'py>(
        &self,
        py: Python<'py>,
        bytes: &[u8],
        at: usize,
    ) -> PyResult<Bound<'py, PyAny>> {
        match self {
            Plan::Scalar(s) => Ok(scalar(py, *s, bytes, at)),
            Plan::Array { elem, n, stride } => {
                let list = if let Plan::Scalar(s) = **elem {
                    PyList::new(py, (0..*n).map(|i| scalar(py, s, bytes, at + i * stride)))?
                } else {
                    let items = (0..*n)
                        .map(|i| elem.build(py, bytes, at + i * stride))
                        .collect::<PyResult<Vec<_>>>()?;
                    PyList::new(py, items)?
                };
                Ok(list.into_any())
            }
            Plan::Struct(fields) => {
                let dict = PyDict::new(py);
                for (name, offset, plan) in fields {
                    dict.set_item(name.bind(py), plan.build(py, bytes, at + offset)?)?;
                }
                Ok(dict.into_any())
            }
        }
    }
}
