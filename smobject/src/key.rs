//! [`Key`]: the SysV key of an object, derived with `ftok` exactly as the original class did.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use crate::error::{fmt_id, Error, ErrorKind, Result};
use crate::sys;

/// The smallest valid project id, as in the original class.
pub const ID_MIN: u8 = b'A';
/// The largest valid project id, as in the original class.
pub const ID_MAX: u8 = b'z';
/// The counter segment's id is the data id minus this (the original's scheme).
pub const COUNTER_OFFSET: u8 = 58;

/// The key of an object's data segment: `ftok(path, id)`.
///
/// The counter segment's key is [`Key::counter`], `ftok(path, id - 58)`. Because ids are
/// limited to `b'A'..=b'z'` (65..=122), counter ids fall in 7..=64 and never collide with a
/// data id.
///
/// ```
/// # let dir = std::env::temp_dir().join(format!("smobject-doc-key-{}", std::process::id()));
/// # std::fs::write(&dir, b"")?;
/// let key = smobject::Key::from_path(&dir, b'a')?;
/// assert_eq!(key.counter().id(), b'a' - 58);
/// println!("data key {key}, counter key {}", key.counter()); // 0x61...., 0x27....
/// # std::fs::remove_file(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Key {
    raw: i32,
    counter_raw: i32,
    path: Arc<Path>,
    id: u8,
}

/// FNV-1a of the key file's absolute path, made absolute lexically (no symlink resolution, so
/// no syscall beyond `getcwd` for a relative path).
fn hash_path(path: &Path) -> u64 {
    use std::os::unix::ffi::OsStrExt;
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    crate::layout::fnv1a(crate::layout::FNV_OFFSET, abs.as_os_str().as_bytes())
}

/// The key `ftok` gives the same file with another id: ftok keeps the id in the top byte and
/// the file's device and inode in the low 24 bits.
pub(crate) fn key_with_id(raw: i32, id: u8) -> i32 {
    (raw & 0x00ff_ffff) | (i32::from(id) << 24)
}

impl Key {
    /// `ftok(path, id)`.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidId`] if `id` is outside `b'A'..=b'z'`; [`ErrorKind::PathNotFound`]
    /// if `path` does not exist or cannot be reached; [`ErrorKind::PermissionDenied`] if it
    /// cannot be examined.
    #[doc(alias = "ftok")]
    pub fn from_path(path: impl AsRef<Path>, id: u8) -> Result<Key> {
        let path = path.as_ref();
        if !(ID_MIN..=ID_MAX).contains(&id) {
            return Err(Error::new(
                ErrorKind::InvalidId,
                format!("id {} is outside 'A'..='z'", fmt_id(id)),
            )
            .with_path_id(path, id)
            .hint("use a letter: the counter segment's key is ftok(path, id - 58), so ids outside 'A'..='z' would collide with another object's counter"));
        }
        Self::derive(path, id)
    }

    /// [`from_path`](Self::from_path), first creating the key file if it does not exist, with
    /// the read bits of `mode` (every process that opens the object must be able to read it:
    /// the key file is locked with `flock`). Used by the creating side of the typed API.
    ///
    /// # Errors
    /// As [`from_path`](Self::from_path); [`ErrorKind::PathNotFound`] if the directory does not
    /// exist, [`ErrorKind::PermissionDenied`] if the file cannot be created,
    /// [`ErrorKind::InvalidOptions`] for a mode [`Options::validate`](crate::Options::validate)
    /// refuses (before any file is made).
    pub fn from_path_creating(path: impl AsRef<Path>, id: u8, mode: u32) -> Result<Key> {
        use std::os::unix::fs::OpenOptionsExt;
        let path = path.as_ref();
        crate::object::check_mode(mode).map_err(|e| e.with_path_id(path, id))?;
        let first = Self::from_path(path, id);
        if !matches!(&first, Err(e) if e.kind() == ErrorKind::PathNotFound) {
            return first;
        }
        {
            let created = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(mode & 0o444)
                .open(path);
            match created {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(Error::new(
                        ErrorKind::PathNotFound,
                        format!(
                            "cannot create the key file {}: its directory does not exist",
                            path.display()
                        ),
                    )
                    .with_errno(e.raw_os_error())
                    .with_path_id(path, id)
                    .hint("create the directory, or choose a key file in an existing one"));
                }
                Err(e) => {
                    let err = Error::os("creating the key file", &e).with_path_id(path, id);
                    // Out of file descriptors, creating it beforehand would not help: the
                    // errno's own hint (raise `ulimit -n`) says what would.
                    if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) {
                        return Err(err);
                    }
                    return Err(err.hint("create the key file beforehand, readable by every process that uses the object"));
                }
            }
        }
        Self::from_path(path, id)
    }

    fn derive(path: &Path, id: u8) -> Result<Key> {
        match sys::ftok(path, id) {
            Ok(raw) => {
                let counter_id = id.wrapping_sub(COUNTER_OFFSET);
                // The same file, stat'ed again; should it vanish in between, ftok's formula
                // on the data key gives what ftok would have.
                let counter_raw =
                    sys::ftok(path, counter_id).unwrap_or(key_with_id(raw, counter_id));
                Ok(Key {
                    raw,
                    counter_raw,
                    path: Arc::from(path),
                    id,
                })
            }
            Err(e) => {
                let err = Error::os("ftok", &e).with_path_id(path, id);
                Err(match e.raw_os_error() {
                    Some(libc::ENOENT | libc::ENOTDIR) => Error::new(
                        ErrorKind::PathNotFound,
                        format!("{} does not exist; ftok needs an existing file", path.display()),
                    )
                    .with_errno(e.raw_os_error())
                    .with_path_id(path, id)
                    .hint(format!("create it first (e.g. `touch {}`) in every process's view of the file system", path.display())),
                    Some(libc::EACCES) => err.hint("make the key file's directory searchable by this user"),
                    _ => err,
                })
            }
        }
    }

    /// FNV-1a hash of the key file's absolute path (made absolute lexically), stored in the
    /// header to recognise a key file that was deleted and re-created.
    #[must_use]
    pub fn path_hash(&self) -> u64 {
        hash_path(&self.path)
    }

    /// The key of the paired counter segment: `ftok(path, id - 58)`.
    #[must_use]
    pub fn counter(&self) -> Key {
        let id = self.id.wrapping_sub(COUNTER_OFFSET);
        Key {
            raw: self.counter_raw,
            // A counter key has no counter of its own; this value is never used as a key.
            counter_raw: key_with_id(self.counter_raw, id.wrapping_sub(COUNTER_OFFSET)),
            path: self.path.clone(),
            id,
        }
    }

    /// The raw `key_t`.
    #[must_use]
    pub fn raw(&self) -> i32 {
        self.raw
    }

    /// The key file.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The project id.
    #[must_use]
    pub fn id(&self) -> u8 {
        self.id
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#010x}", self.raw as u32)
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Key({self}, {}, {})",
            self.path.display(),
            fmt_id(self.id)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn temp_file(name: &str) -> PathBuf {
        let p = std::env::temp_dir().join(format!("smobject-key-{name}-{}", std::process::id()));
        std::fs::write(&p, b"").unwrap();
        p
    }

    #[test]
    fn ids_outside_range_are_rejected() {
        let p = temp_file("range");
        for id in [b'#', b'A' - 1, b'z' + 1, 0, 255] {
            let e = Key::from_path(&p, id).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidId);
            assert!(e.to_string().contains("'A'..='z'"), "{e}");
        }
        assert!(Key::from_path(&p, b'A').is_ok() && Key::from_path(&p, b'z').is_ok());
        std::fs::remove_file(p).unwrap();
    }

    #[test]
    fn key_matches_ftok_and_counter_is_id_minus_58() {
        let p = temp_file("ftok");
        let k = Key::from_path(&p, b'a').unwrap();
        assert_eq!(k.raw(), sys::ftok(&p, b'a').unwrap());
        assert_eq!(k.counter().raw(), sys::ftok(&p, b'a' - 58).unwrap());
        assert_eq!((k.raw() as u32) >> 24, u32::from(b'a'));
        assert_eq!(k.raw() & 0x00ff_ffff, k.counter().raw() & 0x00ff_ffff);
        assert_eq!(format!("{k}"), format!("{:#010x}", k.raw() as u32));
        std::fs::remove_file(p).unwrap();
    }

    #[test]
    fn missing_path_is_path_not_found() {
        let e = Key::from_path("/definitely/not/here", b'a').unwrap_err();
        assert_eq!(e.kind(), ErrorKind::PathNotFound);
        assert!(e.to_string().contains("/definitely/not/here"));
        assert!(e.hint_text().is_some());
    }
}
