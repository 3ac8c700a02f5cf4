//! Share a plain `#[repr(C)]` struct between processes on one host through System V shared
//! memory: typed, checked at compile time, synchronised, and freed when the last process
//! detaches, even when other processes crashed (a pair whose last process crashed is
//! reclaimed by the next creator, or by [`remove_stale`]).
//!
//! # Quick start
//! ```
//! use smobject::shared_memory;
//!
//! #[shared_memory(path = "/tmp", id = 'd')]
//! #[repr(C)]
//! #[derive(Clone, Copy, Debug, Default, PartialEq)]
//! pub struct Telemetry { pub seq: u64, pub pos: [f64; 3], pub status: u32, pub _pad: u32 }
//!
//! # let path = std::env::temp_dir().join(format!("smobject-doc-lib-{}", std::process::id()));
//! # std::fs::write(&path, b"")?;
//! // In the producer process (`Telemetry::create()` uses the key in the attribute):
//! let producer = smobject::Shared::<Telemetry>::create_at(&path, b'a')?;
//! producer.write(|t| { t.seq += 1; t.status = 2; });
//!
//! // In a consumer process (`Telemetry::access()`):
//! let consumer = smobject::Shared::<Telemetry>::access_at(&path, b'a')?;
//! let v = consumer.version();
//! assert_eq!(consumer.read().status, 2);
//! # producer.write(|t| t.seq += 1);
//! let v2 = consumer.wait_for_update(v, Some(std::time::Duration::from_millis(500)))?;
//! assert!(v2 > v);
//! # drop((producer, consumer)); std::fs::remove_file(&path)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Safety model
//! - **Compile time** ([`shared_memory`]): `#[repr(C)]`, no generics, no padding, every field
//!   valid for every byte pattern (no references, pointers, `bool`, `char`, heap types).
//! - **Run time**: every segment is checked before use (owner and mode, sizes, the header's
//!   magic, format version, key file identity and the struct's layout fingerprint), so
//!   another program's segment, a squatted key or another build's struct is an [`Error`],
//!   not memory corruption.
//! - **Concurrency**: [`Shared::read`] returns a consistent snapshot (seqlock, with a locked
//!   fallback so readers cannot starve); [`Shared::write`] and [`Shared::lock`] are exclusive
//!   across processes (a robust process-shared mutex); a writer edits a private copy that is
//!   published at once, and one killed while publishing is rolled back by the next locker.
//!   Every access to the shared bytes is atomic, so no access is a data race by the letter of
//!   the Rust memory model, and no `&T` or `&mut T` into shared memory ever exists.
//! - **Lifetime**: the count at offset 0 of the counter segment follows the kernel's attach
//!   count; create/attach/detach are serialised by an `flock` on the key file, which the
//!   kernel releases when a process dies; the last one out frees both segments, and a pair
//!   left by crashed processes is reclaimed by the next creator (or [`remove_stale`]).
//! - **What you guarantee**: the key file exists and is not re-created while objects live;
//!   every process uses the same struct definition (checked by fingerprint).
//!
//! # Cargo features
//! - `async`: `Shared::changed(seen).await`, `DynObject::changed` and `updates()`, futures any
//!   executor can poll (std's `Future` and `Waker` only; no dependency).
//! - `stream`: `async`, and `Updates` as a `futures_core::Stream` (and `FusedStream`), for
//!   stream combinators and tokio-stream's `StreamMap`; adds `futures-core`.
//! - `fault-injection`: for this crate's own reliability tests only.
//!
//! # Platform
//! Linux is tested. The SysV calls are POSIX; futex waits fall back to polling elsewhere.
//!
//! # The original class
//! [`SMObject`] ports the C++ `SMObject` (constructor `(path, proj_id, size)`,
//! `shmCreate`, `shmAccess`, `decrementMemCtr`) with the same keys (`ftok(path, id)` and
//! `ftok(path, id - 58)`) and the same `int` count at offset 0, so programs following the old
//! protocol count correctly beside it. `docs/FORMAT.md` documents the segments byte by byte.

#[cfg(feature = "async")]
mod asyncwait;
mod c_header;
mod copy;
mod dynamic;
mod error;
mod fault;
mod header;
pub mod inspect;
mod key;
mod layout;
mod object;
pub mod schema;
mod shared;
mod smobject;
mod sync;
mod sys;

#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;

/// The unit tests' fuzz inputs: a xorshift64 generator, seeded so that every run draws the
/// same sequence (a failure reproduces).
#[cfg(test)]
pub(crate) fn xorshift(mut x: u64) -> impl FnMut() -> u64 {
    move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    }
}

#[cfg(feature = "async")]
pub use crate::asyncwait::{async_stats, AsyncStats, Updates};
pub use crate::c_header::c_header;
pub use crate::dynamic::{DynObject, Origin, Snapshot};
pub use crate::error::{Error, ErrorKind, Result};
pub use crate::header::{FORMAT_VERSION, HEADER_SIZE};
pub use crate::key::{Key, COUNTER_OFFSET, ID_MAX, ID_MIN};
pub use crate::layout::SharedStruct;
pub use crate::object::{remove_stale, remove_stale_with, Layout, Options, RawObject};
pub use crate::schema::Describe;
pub use crate::shared::{Shared, WriteGuard};
pub use crate::smobject::SMObject;
pub use smobject_derive::shared_memory;
pub use smobject_derive::Describe;
