//! `smobject get`: one consistent snapshot of an object's fields, by name, as text or JSON.

use std::io::Write;

use smobject::schema::Value;
use smobject::DynObject;

use crate::Failure;

/// `smobject get PATH ID [FIELD...] [--json]`.
///
/// Without `FIELD`s: every field, nested structs flattened to dotted paths (`a.b = 1`), one per
/// line; with `--json`, one object of the whole value. With `FIELD`s (`pos`, `pos[1]`, `a.b`):
/// each as `FIELD = value`, or one JSON object keyed by the paths given. Every value comes from
/// the same snapshot. An unknown field fails before anything is printed.
pub(crate) fn run(
    out: &mut impl Write,
    object: DynObject,
    fields: &[String],
    json: bool,
) -> Result<(), Failure> {
    let snap = object.read();
    drop(object); // the snapshot owns its bytes: detach before printing
    if fields.is_empty() {
        let value = snap.value();
        if json {
            writeln!(out, "{}", value.to_json())?;
        } else {
            let mut lines = Vec::new();
            flatten(String::new(), &value, &mut lines);
            for (path, v) in lines {
                writeln!(out, "{path} = {v}")?;
            }
        }
        return Ok(());
    }
    let mut picked: Vec<(String, Value)> = Vec::with_capacity(fields.len());
    for f in fields {
        if picked.iter().any(|(p, _)| p == f) {
            continue; // a path given twice is printed once (and is one JSON key)
        }
        picked.push((f.clone(), snap.get(f)?));
    }
    if json {
        writeln!(out, "{}", json_object(picked))?;
    } else {
        for (path, v) in &picked {
            writeln!(out, "{path} = {v}")?;
        }
    }
    Ok(())
}

/// `{"pos[1]": 2.5, "seq": 7}`: the paths asked for as the keys of one JSON object (written by
/// [`Value::to_json`], as a struct with those fields). Takes the values: nothing is copied.
fn json_object(entries: Vec<(String, Value)>) -> String {
    Value::Struct(entries).to_json()
}

/// The lines of `value` at `path`: a struct's fields become `path.field`, an array holding
/// structs becomes `path[i]`, and anything else (numbers, arrays of numbers) is one line. Every
/// path printed is one `get` and `set` accept.
fn flatten(path: String, value: &Value, out: &mut Vec<(String, String)>) {
    match value {
        Value::Struct(fields) => {
            for (name, v) in fields {
                let p = if path.is_empty() {
                    name.clone()
                } else {
                    format!("{path}.{name}")
                };
                flatten(p, v, out);
            }
        }
        Value::Array(items) if items.iter().any(holds_struct) => {
            for (i, v) in items.iter().enumerate() {
                flatten(format!("{path}[{i}]"), v, out);
            }
        }
        v => out.push((path, v.to_string())),
    }
}

fn holds_struct(v: &Value) -> bool {
    match v {
        Value::Struct(_) => true,
        Value::Array(items) => items.iter().any(holds_struct),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(v: &Value) -> Vec<String> {
        let mut out = Vec::new();
        flatten(String::new(), v, &mut out);
        out.into_iter().map(|(p, v)| format!("{p} = {v}")).collect()
    }

    #[test]
    fn nested_structs_are_flattened_to_paths() {
        let xy = |x: f64, y: f64| {
            Value::Struct(vec![
                ("x".into(), Value::Float(x)),
                ("y".into(), Value::Float(y)),
            ])
        };
        let v = Value::Struct(vec![
            ("seq".into(), Value::Unsigned(7)),
            (
                "pos".into(),
                Value::Array(vec![Value::Float(1.0), Value::Float(2.5)]),
            ),
            ("a".into(), xy(1.0, -2.0)),
            ("w".into(), Value::Array(vec![xy(0.5, 0.0), xy(3.0, 4.0)])),
            (
                "m".into(),
                Value::Array(vec![Value::Array(vec![Value::Signed(-1)])]),
            ),
        ]);
        assert_eq!(
            lines(&v),
            [
                "seq = 7",
                "pos = [1.0, 2.5]",
                "a.x = 1.0",
                "a.y = -2.0",
                "w[0].x = 0.5",
                "w[0].y = 0.0",
                "w[1].x = 3.0",
                "w[1].y = 4.0",
                "m = [[-1]]",
            ]
        );
    }

    #[test]
    fn selected_fields_are_one_json_object() {
        let s = json_object(vec![
            ("pos[1]".into(), Value::Float(2.5)),
            (
                "a".into(),
                Value::Struct(vec![("b".into(), Value::Unsigned(1))]),
            ),
            ("say \"hi\"".into(), Value::Float(f64::NAN)),
        ]);
        assert_eq!(s, r#"{"pos[1]": 2.5, "a": {"b": 1}, "say \"hi\"": null}"#);
    }
}
