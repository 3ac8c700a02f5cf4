//! `smobject set`: fields written by name, all in one locked write.

use std::io::Write;
use std::path::Path;

use smobject::{DynObject, ErrorKind};

use crate::Failure;

/// `smobject set PATH ID FIELD=VALUE...`: every assignment parsed by the object's schema and
/// range-checked, then all of them in **one** locked write (one new version, waiters woken
/// once). If any is invalid, nothing is written. Prints `version N`, the new version.
pub(crate) fn run(
    out: &mut impl Write,
    path: &Path,
    id: u8,
    assignments: &[String],
) -> Result<(), Failure> {
    let object = DynObject::access_at(path, id)?;
    match object.set(assignments) {
        Ok(version) => {
            writeln!(out, "version {version}")?;
            Ok(())
        }
        Err(e) if e.kind() == ErrorKind::InvalidValue => {
            let more = format!(
                "nothing was written (the object is at version {})",
                object.version()
            );
            Err(Failure::Context(e, more))
        }
        Err(e) => Err(e.into()),
    }
}
