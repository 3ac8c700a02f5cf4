//! [`Error`], [`ErrorKind`] and [`Result`]: what replaces the original class's `error_handle_`
//! and `pError()`.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::key::Key;

/// `Result` with smobject's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, for matching. More kinds may be added.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The key file does not exist (or cannot be reached); `ftok` needs an existing file.
    PathNotFound,
    /// The project id is outside `b'A'..=b'z'`.
    InvalidId,
    /// No object exists under the key.
    NotFound,
    /// A live object already exists under the key (on `create`).
    AlreadyExists,
    /// The kernel refused access (mode bits, or the key file is not readable).
    PermissionDenied,
    /// A segment under the key belongs to another user or is more open than asked: possibly a
    /// squatted key. Not a byte of it was read.
    ForeignOwner,
    /// A segment is smaller (or its recorded size other) than the size asked for.
    SizeMismatch,
    /// The object holds another type (its layout fingerprint or format version differs).
    LayoutMismatch,
    /// The segments under the key are not a smobject object (no valid header), or the header
    /// is corrupt.
    NotAnObject,
    /// A kernel limit (`SHMMNI`, `SHMMAX`, `SHMALL`) or memory was exhausted.
    Limit,
    /// A bounded wait ended before its condition held.
    Timeout,
    /// The object is in use by other processes (on removal).
    InUse,
    /// The object under the key was removed (e.g. by `ipcrm`) while processes still use it;
    /// a new object under the key would silently split them from new users.
    Removed,
    /// The key belongs to an object made for another key file (an `ftok` collision), or the key
    /// file was deleted and re-created since the object was made.
    KeyCollision,
    /// The object cannot be written any more: a writer died publishing and no complete value
    /// was left to restore (the header was written outside the protocol), or the writer lock
    /// is `ENOTRECOVERABLE`. Repair: once its processes stopped, `smobject rm --force` and
    /// create it anew (the next creator also replaces it once every process detached).
    Unrecoverable,
    /// A value given by field name does not fit the object's schema: an unknown field, an
    /// integer out of range, a value of the wrong type or length (untyped access:
    /// [`DynObject`](crate::DynObject), the CLI). Nothing was written.
    InvalidValue,
    /// An [`Options`](crate::Options) value cannot be used: a mode with bits outside `0o666`,
    /// or without the owner's read and write bits (`0o600`). Nothing was created.
    InvalidOptions,
    /// Another operating-system error; see [`Error::errno`].
    Os,
}

impl ErrorKind {
    fn describe(self) -> &'static str {
        match self {
            Self::PathNotFound => "key file not found",
            Self::InvalidId => "invalid project id",
            Self::NotFound => "no shared object under this key",
            Self::AlreadyExists => "a shared object already exists under this key",
            Self::PermissionDenied => "permission denied",
            Self::ForeignOwner => "segment owned by another user or too permissive",
            Self::SizeMismatch => "size mismatch",
            Self::LayoutMismatch => "layout mismatch",
            Self::NotAnObject => "not a smobject object",
            Self::Limit => "kernel shared-memory limit reached",
            Self::Timeout => "timed out",
            Self::InUse => "object in use",
            Self::Removed => "object removed while in use",
            Self::KeyCollision => "key collision",
            Self::Unrecoverable => "object unrecoverable",
            Self::InvalidValue => "invalid value",
            Self::InvalidOptions => "invalid options",
            Self::Os => "operating-system error",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.describe())
    }
}

/// An error from smobject: a [`kind`](Error::kind), the key, path and id it concerns where
/// known, the OS error number where there was one, and a hint for the fix.
///
/// ```
/// let err = smobject::Key::from_path("/no/such/file", b'a').unwrap_err();
/// assert_eq!(err.kind(), smobject::ErrorKind::PathNotFound);
/// assert!(err.to_string().contains("/no/such/file"));
/// ```
pub struct Error {
    inner: Box<Inner>,
}

struct Inner {
    kind: ErrorKind,
    detail: String,
    hint: Option<String>,
    errno: Option<i32>,
    key: Option<i32>,
    path: Option<PathBuf>,
    id: Option<u8>,
}

impl Error {
    pub(crate) fn new(kind: ErrorKind, detail: impl Into<String>) -> Self {
        Self {
            inner: Box::new(Inner {
                kind,
                detail: detail.into(),
                hint: None,
                errno: None,
                key: None,
                path: None,
                id: None,
            }),
        }
    }

    /// An error from an OS call, classified by its errno.
    pub(crate) fn os(what: &str, err: &std::io::Error) -> Self {
        let kind = match err.raw_os_error() {
            Some(libc::EACCES | libc::EPERM) => ErrorKind::PermissionDenied,
            Some(libc::ENOENT) => ErrorKind::NotFound,
            Some(libc::EEXIST) => ErrorKind::AlreadyExists,
            Some(libc::ENOSPC | libc::ENOMEM) => ErrorKind::Limit,
            _ => ErrorKind::Os,
        };
        let mut e = Self::new(kind, format!("{what}: {err}"));
        e.inner.errno = err.raw_os_error();
        e
    }

    pub(crate) fn hint(mut self, hint: impl Into<String>) -> Self {
        self.inner.hint = Some(hint.into());
        self
    }

    /// The same error with another hint: for programs that present smobject's errors in
    /// their own terms (the `smobject` command names its own subcommands, not the library's
    /// functions). Kind, key, path, id and errno stay.
    ///
    /// ```
    /// let err = smobject::Key::from_path("/no/such/file", b'a').unwrap_err();
    /// let err = err.with_hint("run `make keys` first");
    /// assert_eq!(err.kind(), smobject::ErrorKind::PathNotFound);
    /// assert_eq!(err.hint_text(), Some("run `make keys` first"));
    /// assert!(err.to_string().ends_with("; hint: run `make keys` first"));
    /// ```
    #[must_use]
    pub fn with_hint(self, hint: impl Into<String>) -> Self {
        self.hint(hint)
    }

    /// The key, path and id the error concerns. Given a counter segment's key
    /// ([`Key::counter`], id below `'A'`), the error still names the object as its users
    /// know it, by its data key and id, and says in its detail which counter segment failed.
    pub(crate) fn with_key(mut self, key: &Key) -> Self {
        let (raw, id) = if key.id() < crate::key::ID_MIN {
            let id = key.id() + crate::key::COUNTER_OFFSET;
            let detail = std::mem::take(&mut self.inner.detail);
            self.inner.detail = format!("counter segment {key}: {detail}");
            (crate::key::key_with_id(key.raw(), id), id)
        } else {
            (key.raw(), key.id())
        };
        self.inner.key = Some(raw);
        self.inner.path = Some(key.path().to_path_buf());
        self.inner.id = Some(id);
        self
    }

    pub(crate) fn with_path_id(mut self, path: &Path, id: u8) -> Self {
        self.inner.path = Some(path.to_path_buf());
        self.inner.id = Some(id);
        self
    }

    pub(crate) fn with_errno(mut self, errno: Option<i32>) -> Self {
        self.inner.errno = errno;
        self
    }

    /// What went wrong, for matching.
    #[must_use]
    pub fn kind(&self) -> ErrorKind {
        self.inner.kind
    }

    /// The OS error number behind this error, if an OS call failed.
    #[must_use]
    pub fn errno(&self) -> Option<i32> {
        self.inner.errno
    }

    /// The SysV key this error concerns, if known.
    #[must_use]
    pub fn key(&self) -> Option<i32> {
        self.inner.key
    }

    /// The key file this error concerns, if known.
    #[must_use]
    pub fn path(&self) -> Option<&Path> {
        self.inner.path.as_deref()
    }

    /// The project id this error concerns, if known.
    #[must_use]
    pub fn id(&self) -> Option<u8> {
        self.inner.id
    }

    /// A suggestion for the fix: the one given where the error arose, or the general one for
    /// its kind (and errno). Every error has one.
    #[must_use]
    pub fn hint_text(&self) -> Option<&str> {
        Some(
            self.inner
                .hint
                .as_deref()
                .unwrap_or_else(|| default_hint(self.inner.kind, self.inner.errno)),
        )
    }
}

/// The hint for errors raised without a more specific one.
fn default_hint(kind: ErrorKind, errno: Option<i32>) -> &'static str {
    match kind {
        ErrorKind::PathNotFound => "create the key file first (e.g. with `touch`), where every process can reach it",
        ErrorKind::InvalidId => "use a letter in 'A'..='z' as the id",
        ErrorKind::NotFound => "is the creating process running? create the object first, or use open_or_create",
        ErrorKind::AlreadyExists => "use access() or open_or_create() to share the existing object",
        ErrorKind::PermissionDenied => "check the owner and mode of the key file and of the segments (`smobject ls`, `ipcs -m`)",
        ErrorKind::ForeignOwner => "check who owns the segments (`ipcs -m -p`); trust that user with Options::allow_uid, or remove them as their owner",
        ErrorKind::SizeMismatch => "every process must use the same struct (or size) for the same key",
        ErrorKind::LayoutMismatch => "build every process against the same struct definition and smobject version",
        ErrorKind::NotAnObject => "another program uses this key, or the pair is corrupt: look with `smobject inspect`, remove it with `smobject rm` once its processes stopped",
        ErrorKind::Limit => "free unused segments (`smobject gc`, `ipcs -m`) or raise kernel.shmmni, kernel.shmmax or kernel.shmall",
        ErrorKind::Timeout => "another process holds the lock or stopped updating the object: see `smobject inspect`",
        ErrorKind::InUse => "stop the attached processes first (see `smobject ls`)",
        ErrorKind::Removed => "stop the processes still using the removed object, or use another id",
        ErrorKind::KeyCollision => "use one key file per object, and never re-create it while the object lives",
        ErrorKind::Unrecoverable => "once its processes stopped, remove the object (`smobject rm --force PATH ID`) and create it anew",
        ErrorKind::InvalidValue => "see the object's fields and types with `smobject inspect PATH ID`",
        ErrorKind::InvalidOptions => "use mode 0o600 (owner only), 0o660 (owner and group) or 0o666 (everyone)",
        ErrorKind::Os => match errno {
            Some(libc::EINVAL | libc::EIDRM) => "the segment was removed meanwhile (e.g. by `ipcrm`): open the object again",
            Some(libc::EMFILE | libc::ENFILE) => "too many open files: raise the limit (`ulimit -n`)",
            Some(libc::EINTR) => "interrupted by a signal: retry",
            _ => "see the OS error above; `smobject inspect` shows the object's state",
        },
    }
}

/// `'a'` for a printable id, `0x07` otherwise.
pub(crate) fn fmt_id(id: u8) -> String {
    if id.is_ascii_graphic() {
        format!("'{}'", id as char)
    } else {
        format!("{id:#04x}")
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.inner;
        write!(f, "{}", i.kind)?;
        let mut ctx = Vec::new();
        if let Some(k) = i.key {
            ctx.push(format!("key {:#010x}", k as u32));
        }
        if let Some(p) = &i.path {
            ctx.push(format!("path {}", p.display()));
        }
        if let Some(id) = i.id {
            ctx.push(format!("id {}", fmt_id(id)));
        }
        if !ctx.is_empty() {
            write!(f, " ({})", ctx.join(", "))?;
        }
        if !i.detail.is_empty() {
            write!(f, ": {}", i.detail)?;
        }
        if let Some(h) = self.hint_text() {
            write!(f, "; hint: {h}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.inner;
        f.debug_struct("Error")
            .field("kind", &i.kind)
            .field("detail", &i.detail)
            .field("errno", &i.errno)
            .field("key", &i.key.map(|k| format!("{:#010x}", k as u32)))
            .field("path", &i.path)
            .field("id", &i.id.map(fmt_id))
            .field("hint", &self.hint_text())
            .finish()
    }
}

impl std::error::Error for Error {}

impl From<Error> for std::io::Error {
    fn from(e: Error) -> Self {
        let kind = match e.kind() {
            ErrorKind::PathNotFound | ErrorKind::NotFound => std::io::ErrorKind::NotFound,
            ErrorKind::AlreadyExists => std::io::ErrorKind::AlreadyExists,
            ErrorKind::PermissionDenied | ErrorKind::ForeignOwner => {
                std::io::ErrorKind::PermissionDenied
            }
            ErrorKind::Timeout => std::io::ErrorKind::TimedOut,
            ErrorKind::InvalidId | ErrorKind::InvalidValue | ErrorKind::InvalidOptions => {
                std::io::ErrorKind::InvalidInput
            }
            _ => std::io::ErrorKind::Other,
        };
        std::io::Error::new(kind, e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_maps_to_kind() {
        let cases = [
            (libc::EACCES, ErrorKind::PermissionDenied),
            (libc::ENOENT, ErrorKind::NotFound),
            (libc::EEXIST, ErrorKind::AlreadyExists),
            (libc::ENOSPC, ErrorKind::Limit),
            (libc::EIO, ErrorKind::Os),
        ];
        for (errno, kind) in cases {
            let e = Error::os("shmget", &std::io::Error::from_raw_os_error(errno));
            assert_eq!(e.kind(), kind, "errno {errno}");
            assert_eq!(e.errno(), Some(errno));
        }
    }

    #[test]
    fn display_names_context_and_hint() {
        let e = Error::new(ErrorKind::NotFound, "nothing here")
            .with_path_id(Path::new("/tmp/x"), b'a')
            .hint("start the creator");
        let s = e.to_string();
        assert!(
            s.contains("/tmp/x") && s.contains("'a'") && s.contains("hint: start the creator"),
            "{s}"
        );
        assert_eq!(fmt_id(7), "0x07");
    }

    #[test]
    fn every_error_has_a_hint() {
        let kinds = [
            ErrorKind::PathNotFound,
            ErrorKind::InvalidId,
            ErrorKind::NotFound,
            ErrorKind::AlreadyExists,
            ErrorKind::PermissionDenied,
            ErrorKind::ForeignOwner,
            ErrorKind::SizeMismatch,
            ErrorKind::LayoutMismatch,
            ErrorKind::NotAnObject,
            ErrorKind::Limit,
            ErrorKind::Timeout,
            ErrorKind::InUse,
            ErrorKind::Removed,
            ErrorKind::KeyCollision,
            ErrorKind::Unrecoverable,
            ErrorKind::InvalidValue,
            ErrorKind::Os,
        ];
        for kind in kinds {
            let e = Error::new(kind, "x");
            assert!(e.hint_text().is_some_and(|h| !h.is_empty()), "{kind:?}");
            assert!(e.to_string().contains("; hint: "), "{e}");
        }
        let e = Error::os("shmat", &std::io::Error::from_raw_os_error(libc::EIDRM));
        assert!(e.hint_text().unwrap().contains("removed"), "{e}");
        let e = Error::new(ErrorKind::NotFound, "x").hint("specific");
        assert_eq!(e.hint_text(), Some("specific"));
    }

    #[test]
    fn error_is_send_sync_static() {
        fn check<T: std::error::Error + Send + Sync + 'static>() {}
        check::<Error>();
    }
}
