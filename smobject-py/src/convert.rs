//! Conversions between Python and the runtime's schema types: a struct's description as nested
//! tuples (both ways), and Python values to [`Value`]s for `write`.
//!
//! The description of a struct is `(name, size, align, fields)` with `fields` a sequence of
//! `(name, offset, type)`; a type is a scalar's Rust name (`"u64"`, `"f64"`, `"AtomicU32"`),
//! `("array", length, type)` or `("struct", description)`.

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyDict, PyFloat, PyString, PyTuple};
use smobject::schema::{Field, Scalar, Schema, Type, Value};
use smobject::DynObject;

fn bad_desc(why: impl Into<String>) -> PyErr {
    PyTypeError::new_err(why.into())
}

fn type_from_desc(t: &Bound<'_, PyAny>) -> PyResult<Type> {
    if let Ok(name) = t.extract::<String>() {
        if let Some(ty) = Type::from_name(&name) {
            return Ok(ty);
        }
        return Err(bad_desc(format!("unknown field type `{name}`")));
    }
    let tuple = t
        .cast::<PyTuple>()
        .map_err(|_| bad_desc("a field type is a name or a tuple"))?;
    let tag: String = tuple.get_item(0)?.extract()?;
    match tag.as_str() {
        "array" => {
            let n: usize = tuple.get_item(1)?.extract()?;
            Ok(Type::Array(
                Box::new(type_from_desc(&tuple.get_item(2)?)?),
                n,
            ))
        }
        "struct" => Ok(Type::Struct(Box::new(struct_from_desc(
            &tuple.get_item(1)?,
        )?))),
        other => Err(bad_desc(format!("unknown field type tag `{other}`"))),
    }
}

fn struct_from_desc(d: &Bound<'_, PyAny>) -> PyResult<Schema> {
    let (name, size, align, fields): (String, usize, usize, Vec<Bound<'_, PyAny>>) = d.extract()?;
    let fields = fields
        .iter()
        .map(|f| {
            let (name, offset, ty): (String, usize, Bound<'_, PyAny>) = f.extract()?;
            Ok(Field {
                name,
                offset,
                ty: type_from_desc(&ty)?,
            })
        })
        .collect::<PyResult<Vec<_>>>()?;
    Ok(Schema {
        name,
        size,
        align,
        fields,
    })
}

/// The schema a description gives, validated as an object's stored schema is (encoded, then
/// decoded with every check of `docs/FORMAT.md`).
///
/// # Errors
/// `TypeError` naming what is malformed.
pub(crate) fn schema_from_desc(d: &Bound<'_, PyAny>) -> PyResult<Schema> {
    let schema = struct_from_desc(d)?;
    let bytes = schema.encode().map_err(bad_desc)?;
    let back = Schema::decode(&bytes)
        .map_err(|why| bad_desc(format!("`{}` is not a valid struct: {why}", schema.name)))?;
    if back != schema {
        return Err(bad_desc(format!(
            "`{}` does not survive encoding: {back:?}",
            schema.name
        )));
    }
    Ok(schema)
}

fn type_to_desc<'py>(py: Python<'py>, t: &Type) -> PyResult<Bound<'py, PyAny>> {
    Ok(match t {
        Type::Array(e, n) => ("array", *n, type_to_desc(py, e)?)
            .into_pyobject(py)?
            .into_any(),
        Type::Struct(s) => ("struct", schema_to_desc(py, s)?)
            .into_pyobject(py)?
            .into_any(),
        other => PyString::new(py, &other.to_string()).into_any(),
    })
}

/// A schema as a description (the inverse of [`schema_from_desc`]).
pub(crate) fn schema_to_desc<'py>(py: Python<'py>, s: &Schema) -> PyResult<Bound<'py, PyAny>> {
    let fields = s
        .fields
        .iter()
        .map(|f| Ok((f.name.as_str(), f.offset, type_to_desc(py, &f.ty)?)))
        .collect::<PyResult<Vec<_>>>()?;
    Ok(
        (s.name.as_str(), s.size, s.align, PyTuple::new(py, fields)?)
            .into_pyobject(py)?
            .into_any(),
    )
}

/// `TypeError` (as `smobject.InvalidValueType`) for a Python value of the wrong type.
fn wrong_type(
    py: Python<'_>,
    obj: &DynObject,
    what: &str,
    ty: &Type,
    v: &Bound<'_, PyAny>,
) -> PyErr {
    let given = v
        .get_type()
        .name()
        .map_or_else(|_| "?".to_owned(), |n| n.to_string());
    let expected = match ty {
        Type::Array(..) => "a sequence",
        Type::Struct(_) => "a dict of its fields",
        t if t
            .scalar()
            .is_some_and(|s| matches!(s, Scalar::F32 | Scalar::F64)) =>
        {
            "a number"
        }
        _ => "an int",
    };
    crate::invalid_value(
        py,
        obj,
        "InvalidValueType",
        &format!("`{what}` is a `{ty}`: {expected} is needed, not a `{given}`"),
    )
}

/// A Python value as a [`Value`] of type `ty` (the field `what`). Types are checked here
/// (`TypeError`); ranges and lengths by the runtime when it encodes (`ValueError`).
fn to_value(
    py: Python<'_>,
    obj: &DynObject,
    what: &str,
    ty: &Type,
    v: &Bound<'_, PyAny>,
) -> PyResult<Value> {
    match ty {
        Type::Array(e, n) => array_value(py, obj, what, ty, (e, *n), v),
        Type::Struct(s) => {
            let Ok(d) = v.cast::<PyDict>() else {
                return Err(wrong_type(py, obj, what, ty, v));
            };
            let mut out = Vec::new();
            for (name, fv) in d.iter() {
                let Ok(name) = name.extract::<String>() else {
                    let given = name
                        .get_type()
                        .name()
                        .map_or_else(|_| "?".to_owned(), |n| n.to_string());
                    return Err(crate::invalid_value(
                        py,
                        obj,
                        "InvalidValueType",
                        &format!(
                            "`{what}` is a `{}`: its field names are `str`, not `{given}`",
                            s.name
                        ),
                    ));
                };
                let Some(field) = s.fields.iter().find(|f| f.name == name) else {
                    return Err(crate::invalid_value(
                        py,
                        obj,
                        "InvalidValue",
                        &format!("`{what}` is a `{}`, which has no field `{name}`", s.name),
                    ));
                };
                let path = format!("{what}.{name}");
                out.push((name, to_value(py, obj, &path, &field.ty, &fv)?));
            }
            Ok(Value::Struct(out))
        }
        t => {
            let is_float = t
                .scalar()
                .is_some_and(|s| matches!(s, Scalar::F32 | Scalar::F64));
            if is_float {
                if v.is_instance_of::<PyFloat>() {
                    return Ok(Value::Float(v.extract::<f64>()?));
                }
                match integer(v)? {
                    Int::Fits(i) => return Ok(i),
                    // Beyond 128 bits but within a double (`2**200`): the runtime checks
                    // an f32's range.
                    Int::Huge(_, Some(x)) => return Ok(Value::Float(x)),
                    Int::Huge(text, None) => {
                        return Err(crate::invalid_value(
                            py,
                            obj,
                            "InvalidValue",
                            &format!("`{what}` is a `{ty}`: {text} is out of range"),
                        ))
                    }
                    Int::No => {}
                }
                if v.is_instance_of::<PyString>() || v.is_instance_of::<PyBytes>() {
                    return Err(wrong_type(py, obj, what, ty, v));
                }
                // Anything else with `__float__` (numpy floats).
                v.extract::<f64>()
                    .map(Value::Float)
                    .map_err(|_| wrong_type(py, obj, what, ty, v))
            } else {
                match integer(v)? {
                    Int::Fits(i) => Ok(i),
                    Int::Huge(text, _) => Err(crate::invalid_value(
                        py,
                        obj,
                        "InvalidValue",
                        &format!("`{what}` is a `{ty}`: {text} is out of range"),
                    )),
                    Int::No => Err(wrong_type(py, obj, what, ty, v)),
                }
            }
        }
    }
}

/// An array's value: a sequence (any iterable but `str`, a `dict`, or `bytes` unless the
/// elements are `u8`) of at most `n` elements of type `e`.
fn array_value(
    py: Python<'_>,
    obj: &DynObject,
    what: &str,
    ty: &Type,
    (e, n): (&Type, usize),
    v: &Bound<'_, PyAny>,
) -> PyResult<Value> {
    // `bytes` is a sequence of ints: right for a `u8` array (`o.write(raw=b"...")`),
    // a mistake for any other (as a `str` always is).
    let bytes_ok = matches!(*e, Type::Scalar(Scalar::U8));
    if v.is_instance_of::<PyString>()
        || (v.is_instance_of::<PyBytes>() && !bytes_ok)
        || v.is_instance_of::<PyDict>()
    {
        return Err(wrong_type(py, obj, what, ty, v));
    }
    let Ok(items) = v.try_iter() else {
        return Err(wrong_type(py, obj, what, ty, v));
    };
    let mut out = Vec::new(); // not with_capacity(n): n may be huge, the input short
    for (i, item) in items.enumerate() {
        // At most n + 1 items are taken: an endless iterator (`itertools.repeat`) or a
        // huge one is refused here, not collected.
        if i == n {
            return Err(crate::invalid_value(
                py,
                obj,
                "InvalidValue",
                &format!("`{what}` is a `{ty}`: more than {n} values given, {n} needed"),
            ));
        }
        out.push(to_value(py, obj, &format!("{what}[{i}]"), e, &item?)?);
    }
    Ok(Value::Array(out))
}

/// What [`integer`] found.
enum Int {
    /// An integer within 128 bits.
    Fits(Value),
    /// An integer beyond 128 bits: its text, and its value as a float if a double holds it
    /// (`float(10**400)` raises `OverflowError`: no infinity of either sign is made up).
    Huge(String, Option<f64>),
    /// Not an integer.
    No,
}

/// An `int` (or anything with `__index__`: `bool`, numpy integers; not a float, which
/// `__int__` would truncate).
fn integer(v: &Bound<'_, PyAny>) -> PyResult<Int> {
    static INDEX: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    if v.is_instance_of::<PyFloat>() || v.is_instance_of::<PyString>() {
        return Ok(Int::No);
    }
    let index = INDEX.import(v.py(), "operator", "index")?;
    let Ok(i) = index.call1((v,)) else {
        return Ok(Int::No);
    };
    if let Ok(i) = i.extract::<i128>() {
        return Ok(Int::Fits(if i < 0 {
            Value::Signed(i)
        } else {
            Value::Unsigned(i.unsigned_abs())
        }));
    }
    if let Ok(u) = i.extract::<u128>() {
        return Ok(Int::Fits(Value::Unsigned(u)));
    }
    Ok(Int::Huge(i.str()?.to_string(), i.extract::<f64>().ok()))
}

/// The [`Value`] to write to the field or path `path` of `obj` from a Python value.
///
/// # Errors
/// `smobject.InvalidValue` (a `ValueError`) for an unknown path, `InvalidValueType` (a
/// `TypeError`) for a value of the wrong Python type.
pub(crate) fn value_for(
    py: Python<'_>,
    obj: &DynObject,
    path: &str,
    v: &Bound<'_, PyAny>,
) -> PyResult<Value> {
    let (_, ty) = obj
        .schema()
        .resolve(path)
        .map_err(|why| crate::invalid_value(py, obj, "InvalidValue", &why))?;
    to_value(py, obj, path, ty, v)
}
