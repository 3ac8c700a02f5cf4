//! Key files under `/tmp` with unique names, and a guard that leaves no segment behind.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// The ids the benchmarks give smobject objects (their counter segments use `id - 58`).
pub const OBJECT_IDS: [u8; 4] = [b'A', b'B', b'C', b'D'];
/// The ids the raw baselines use with `ftok`.
pub const RAW_IDS: [u8; 2] = [b'r', b's'];

/// A fresh, empty key file `/tmp/smobject-bench-TAG-PID-N-NANOS`. On drop, removes every
/// unattached segment under the keys the benchmarks derive from it ([`OBJECT_IDS`], their
/// counter ids, [`RAW_IDS`]), then the file: a run that panicked leaves nothing behind.
#[derive(Debug)]
pub struct KeyFile {
    path: PathBuf,
}

impl KeyFile {
    /// Creates the file.
    ///
    /// # Errors
    /// If `/tmp` is not writable.
    pub fn new(tag: &str) -> std::io::Result<KeyFile> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let path = PathBuf::from(format!(
            "/tmp/smobject-bench-{tag}-{}-{}-{nanos}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)?;
        Ok(KeyFile { path })
    }

    /// Wraps an existing key file made by another process of the benchmark (a child uses
    /// its parent's); does not remove it on drop.
    #[must_use]
    pub fn borrowed(path: &Path) -> std::mem::ManuallyDrop<KeyFile> {
        std::mem::ManuallyDrop::new(KeyFile {
            path: path.to_owned(),
        })
    }

    /// The path.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `ftok(path, id)`.
    ///
    /// # Panics
    /// If the file vanished.
    #[must_use]
    pub fn key(&self, id: u8) -> i32 {
        crate::raw::ftok(&self.path, id).expect("ftok on the benchmark's key file")
    }
}

impl Drop for KeyFile {
    fn drop(&mut self) {
        let counter_ids = OBJECT_IDS.map(|id| id - 58);
        for &id in OBJECT_IDS.iter().chain(&counter_ids).chain(&RAW_IDS) {
            if let Ok(key) = crate::raw::ftok(&self.path, id) {
                crate::raw::remove_if_unattached(key);
            }
        }
        let _ = std::fs::remove_file(&self.path);
    }
}
