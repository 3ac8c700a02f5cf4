//! [`SMObject`]: the original C++ class, ported method for method, on the crash-safe core.

use std::path::{Path, PathBuf};

use crate::error::{Error, ErrorKind, Result};
use crate::key::Key;
use crate::object::{Layout, Options, RawObject};

/// The untyped port of the original `SMObject` class, for porting C++ code: same constructor,
/// same create/access split, same counter at offset 0 of the counter segment.
///
/// What changed: errors are [`Error`] values instead of `error_handle_`/`pError()`; the count
/// is updated atomically and repaired from the kernel's attach count, so a crashed process no
/// longer leaves it wrong; the last handle to drop frees both segments, and a pair left by
/// crashed processes is reclaimed by the next `shm_create`; segments are `0o600` by default.
///
/// `SMObject` gives out a raw pointer: reading and writing it concurrently with other
/// processes is up to you, as in the original. New code should use [`Shared`](crate::Shared).
///
/// ```
/// use smobject::SMObject;
/// # let path = std::env::temp_dir().join(format!("smobject-doc-smobject-{}", std::process::id()));
/// # std::fs::write(&path, b"")?;
/// let mut obj = SMObject::new(&path, b'a', 64);
/// obj.shm_create()?;                   // create (or open) both segments and attach
/// obj.shm_access()?;                   // no-op here: shm_create attached already
/// assert_eq!(obj.mem_ctr(), 1);
/// // SAFETY: the object is 64 bytes and no other process writes it in this example.
/// unsafe { obj.as_ptr().write(42) };
/// drop(obj);                           // last one out: both segments are freed
/// # std::fs::remove_file(&path)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct SMObject {
    path: PathBuf,
    proj_id: u8,
    size: usize,
    options: Options,
    object: Option<RawObject>,
}

impl SMObject {
    /// Remembers the key file, project id (`b'A'..=b'z'`) and size. No system call, like the
    /// original constructor.
    pub fn new(path: impl AsRef<Path>, proj_id: u8, size: usize) -> SMObject {
        SMObject {
            path: path.as_ref().to_path_buf(),
            proj_id,
            size,
            options: Options::new(),
            object: None,
        }
    }

    /// Changes the key file and id before the segments are opened.
    pub fn set_unique_path_id(&mut self, path: impl AsRef<Path>, proj_id: u8) {
        self.path = path.as_ref().to_path_buf();
        self.proj_id = proj_id;
    }

    /// Changes the size before the segments are opened.
    pub fn set_size(&mut self, size: usize) {
        self.size = size;
    }

    /// Changes the options (mode, trusted uids) before the segments are opened.
    pub fn set_options(&mut self, options: Options) {
        self.options = options;
    }

    /// Creates both segments, or opens them if they exist, and attaches (the original created
    /// here and attached in `shmAccess`; attaching at once closes the window in which a
    /// created-but-unattached pair looks abandoned). A stale pair is reclaimed.
    ///
    /// # Errors
    /// Key errors ([`ErrorKind::InvalidId`], [`ErrorKind::PathNotFound`]), kernel limits,
    /// [`ErrorKind::ForeignOwner`], [`ErrorKind::SizeMismatch`] if an existing object is
    /// smaller than `size`.
    pub fn shm_create(&mut self) -> Result<()> {
        if self.object.is_some() {
            return Ok(());
        }
        let key = Key::from_path(&self.path, self.proj_id)?;
        self.object = Some(RawObject::open_or_create(
            &key,
            Layout::untyped(self.size),
            &self.options,
        )?);
        Ok(())
    }

    /// Attaches to the existing object and counts this process in. A no-op after
    /// [`shm_create`](Self::shm_create), so the original's `shmCreate(); shmAccess();` counts
    /// once.
    ///
    /// # Errors
    /// [`ErrorKind::NotFound`] if no object exists (is the creator running?), and the errors
    /// of [`shm_create`](Self::shm_create).
    pub fn shm_access(&mut self) -> Result<()> {
        if self.object.is_some() {
            return Ok(());
        }
        let key = Key::from_path(&self.path, self.proj_id)?;
        self.object = Some(RawObject::access(
            &key,
            Layout::untyped(self.size),
            &self.options,
        )?);
        Ok(())
    }

    /// The start of the shared data, or null before `shm_create`/`shm_access`.
    #[must_use]
    pub fn as_ptr(&self) -> *mut u8 {
        self.object
            .as_ref()
            .map_or(std::ptr::null_mut(), RawObject::as_ptr)
    }

    /// The size in bytes.
    #[must_use]
    pub fn len(&self) -> usize {
        self.object.as_ref().map_or(self.size, RawObject::len)
    }

    /// Whether the size is zero.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The count at offset 0 of the counter segment (0 before attaching).
    #[must_use]
    pub fn mem_ctr(&self) -> i32 {
        self.object.as_ref().map_or(0, RawObject::mem_ctr)
    }

    /// Kept for parity with the original, where it fixed the count after a crash. Here the
    /// count is repaired from the kernel's attach count instead, so calling it is never needed
    /// and never makes the count wrong.
    ///
    /// # Errors
    /// [`ErrorKind::NotFound`] before attaching.
    pub fn decrement_mem_ctr(&mut self) -> Result<i32> {
        match &self.object {
            Some(o) => o.repair_count(),
            None => Err(Error::new(ErrorKind::NotFound, "not attached yet")
                .with_path_id(&self.path, self.proj_id)
                .hint("call shm_create or shm_access first")),
        }
    }

    /// The key, once attached.
    #[must_use]
    pub fn key(&self) -> Option<&Key> {
        self.object.as_ref().map(RawObject::key)
    }

    /// The underlying object, once attached.
    #[must_use]
    pub fn raw(&self) -> Option<&RawObject> {
        self.object.as_ref()
    }
}
