//! `smobject set`: fields written by name, all in one locked write.

use std::io::Write;
use std::time::Duration;

use smobject::{DynObject, ErrorKind};

use crate::Failure;

/// How long `set` waits for the writer lock before it gives up, writing nothing.
const LOCK_TIMEOUT: Duration = Duration::from_secs(10);

/// `smobject set PATH ID FIELD=VALUE...`: every assignment parsed by the object's schema and
/// range-checked, then all of them in **one** locked write (one new version, waiters woken
/// once). If any is invalid, nothing is written; nor if the writer lock is not free within
/// [`LOCK_TIMEOUT`]. Prints `version N`, the new version.
pub(crate) fn run(
    out: &mut impl Write,
    object: &DynObject,
    assignments: &[String],
) -> Result<(), Failure> {
    // A process holding a write guard (a stopped writer, a leaked guard) must not hang the
    // command: the same bound as the key file's lock.
    match object.set_timeout(assignments, LOCK_TIMEOUT) {
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
