//! The counter segment: the original's `int` count at offset 0, then smobject's header, then
//! the backup copy of the data used to recover from a writer that died mid-write.
//! `docs/FORMAT.md` describes it byte by byte; the offsets here are asserted at compile time.

use std::sync::atomic::{AtomicI32, AtomicU32, AtomicU64};

/// `"SMOBJECT"` read as a little-endian `u64`.
pub(crate) const MAGIC: u64 = u64::from_le_bytes(*b"SMOBJECT");
/// Version of the segment format. Changing any offset or meaning bumps it.
pub const FORMAT_VERSION: u32 = 3;
/// Bytes before the backup copy in the counter segment.
pub const HEADER_SIZE: usize = 1024;
/// Offset of the identity block.
const IDENT_OFFSET: usize = 8;
/// Offset of the synchronisation words.
pub(crate) const SYNC_OFFSET: usize = 256;
/// Offset of the robust process-shared writer mutex.
pub(crate) const MUTEX_OFFSET: usize = 448;
/// Room reserved for the mutex (`pthread_mutex_t` is 40 bytes on x86-64 glibc, 48 on aarch64).
const MUTEX_ROOM: usize = 64;
/// Longest type name stored (UTF-8, NUL-padded).
pub(crate) const TYPE_NAME_LEN: usize = 64;

/// `state` word: creator is writing the header (a fresh segment holds 0).
pub(crate) const STATE_INITIALISING: u32 = 1;
/// `state` word: header complete; the object may be used.
pub(crate) const STATE_READY: u32 = 2;

const _: () = assert!(std::mem::size_of::<libc::pthread_mutex_t>() <= MUTEX_ROOM);
const _: () = assert!(std::mem::align_of::<libc::pthread_mutex_t>() <= 64);
const _: () = assert!(IDENT_OFFSET + std::mem::size_of::<Ident>() <= SYNC_OFFSET);
const _: () = assert!(SYNC_OFFSET + std::mem::size_of::<SyncWords>() <= MUTEX_OFFSET);
const _: () = assert!(MUTEX_OFFSET + MUTEX_ROOM <= HEADER_SIZE);

/// The header's write-once part, at offset 8. Written by the creator under the key's lock
/// before `state` becomes [`STATE_READY`]; never changed after. Readers copy it out and
/// validate the copy (every byte of a segment is untrusted input).
#[derive(Clone, Copy, Debug)]
#[repr(C)]
pub(crate) struct Ident {
    /// [`MAGIC`].
    pub(crate) magic: u64,
    /// [`FORMAT_VERSION`].
    pub(crate) version: u32,
    /// [`HEADER_SIZE`].
    pub(crate) header_size: u32,
    /// Bytes of the data segment in use (the struct's size).
    pub(crate) data_size: u64,
    /// Layout fingerprint; 0 for an untyped object.
    pub(crate) fingerprint: u64,
    /// Random per instance: tells a re-created object from the old one.
    pub(crate) nonce: u64,
    /// Creator's pid and its start time in clock ticks since boot (pid reuse-proof identity).
    pub(crate) creator_pid: i32,
    /// Mode the segments were created with.
    pub(crate) mode: u32,
    pub(crate) creator_start: u64,
    /// `st_dev` and `st_ino` of the key file: detects `ftok` collisions and re-created files.
    pub(crate) key_dev: u64,
    pub(crate) key_ino: u64,
    /// Creation time, seconds since the Unix epoch.
    pub(crate) created_unix: u64,
    /// Low byte: the project id of the data key; other bits reserved, 0.
    pub(crate) flags: u64,
    /// The struct's name, UTF-8, NUL-padded; empty for an untyped object.
    pub(crate) type_name: [u8; TYPE_NAME_LEN],
    /// FNV-1a hash of the key file's absolute path: finds the objects of a key file that was
    /// deleted and re-created (and so has another inode, and maybe another key).
    pub(crate) path_hash: u64,
    /// Which `pthread_mutex_t` the writer lock is ([`lock_abi`]): only programs built for the
    /// same C library and word size may take it.
    pub(crate) lock_abi: u64,
    /// Bytes of the encoded schema (`schema::Schema::encode`) stored in the counter segment
    /// at [`schema_offset`]`(data_size)`; 0 for an untyped object.
    pub(crate) schema_len: u64,
}

/// Where the schema starts in the counter segment: after the header and the backup copy of
/// the data, at the next multiple of 8.
#[must_use]
pub(crate) const fn schema_offset(data_size: usize) -> usize {
    HEADER_SIZE + data_size.next_multiple_of(8)
}

/// The writer lock's ABI as recorded in the header: byte 0 the C library (1 glibc, 2 musl,
/// 3 another), byte 1 the pointer width in bytes, bytes 2-3 `sizeof(pthread_mutex_t)`.
/// glibc's robust mutex keeps list pointers inside the lock that the holder's C library
/// follows, so a program of another C library or word size must never take it.
#[must_use]
pub(crate) const fn lock_abi() -> u64 {
    let libc_id: u64 = if cfg!(target_env = "gnu") {
        1
    } else if cfg!(target_env = "musl") {
        2
    } else {
        3
    };
    libc_id
        | ((std::mem::size_of::<usize>() as u64) << 8)
        | ((std::mem::size_of::<libc::pthread_mutex_t>() as u64) << 16)
}

/// Describes a [`lock_abi`] value for error messages.
pub(crate) fn describe_lock_abi(abi: u64) -> String {
    let libc = match abi & 0xff {
        1 => "glibc",
        2 => "musl",
        3 => "another C library",
        _ => "an unknown C library",
    };
    format!(
        "{libc}, {}-bit, {}-byte pthread_mutex_t",
        ((abi >> 8) & 0xff) * 8,
        (abi >> 16) & 0xffff
    )
}

/// Bytes of an [`Ident`].
pub(crate) const IDENT_SIZE: usize = std::mem::size_of::<Ident>();

// Every field is an integer or a byte array and the sizes add up: no padding, so every byte of
// an Ident is initialised and every byte pattern is a valid Ident (what the conversions below
// rely on). Not derived with zerocopy, to keep this private type out of the trait listings in
// users' compile errors.
const _: () = assert!(IDENT_SIZE == 8 * 12 + 4 * 4 + TYPE_NAME_LEN);
const _: () = assert!(IDENT_SIZE % 8 == 0 && IDENT_OFFSET % 8 == 0);

impl Ident {
    /// Decodes the identity block from bytes.
    pub(crate) fn from_bytes(bytes: &[u8; IDENT_SIZE]) -> Ident {
        let mut out = std::mem::MaybeUninit::<Ident>::uninit();
        // SAFETY: `out` has room for IDENT_SIZE bytes and does not overlap `bytes`; a repr(C)
        // struct of integers and byte arrays without padding is valid for every byte pattern.
        unsafe {
            std::ptr::copy_nonoverlapping(
                bytes.as_ptr(),
                out.as_mut_ptr().cast::<u8>(),
                IDENT_SIZE,
            );
        }
        // SAFETY: fully initialised by the copy (see above).
        unsafe { out.assume_init() }
    }

    /// The identity block's bytes.
    pub(crate) fn to_bytes(self) -> [u8; IDENT_SIZE] {
        let mut out = [0u8; IDENT_SIZE];
        // SAFETY: `self` is IDENT_SIZE bytes, all initialised (no padding, see above); `out` is a
        // separate buffer of that size.
        unsafe {
            std::ptr::copy_nonoverlapping(
                std::ptr::from_ref(&self).cast::<u8>(),
                out.as_mut_ptr(),
                IDENT_SIZE,
            );
        }
        out
    }

    /// The stored type name, lossily decoded; `"(untyped)"` when empty.
    pub(crate) fn type_name(&self) -> String {
        let end = self
            .type_name
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(TYPE_NAME_LEN);
        if end == 0 {
            "(untyped)".to_owned()
        } else {
            String::from_utf8_lossy(&self.type_name[..end]).into_owned()
        }
    }

    pub(crate) fn encode_type_name(name: &str) -> [u8; TYPE_NAME_LEN] {
        let mut out = [0u8; TYPE_NAME_LEN];
        // Cut at a char boundary so the stored name stays valid UTF-8.
        let mut n = name.len().min(TYPE_NAME_LEN);
        while !name.is_char_boundary(n) {
            n -= 1;
        }
        out[..n].copy_from_slice(&name.as_bytes()[..n]);
        out
    }
}

/// The synchronisation words, at offset 256 (their own cache lines, away from the count).
/// The protocol is documented in `sync.rs` and `docs/FORMAT.md`.
///
/// Every field, padding included, is an atomic: a `&SyncWords` into a mapping that other
/// processes write is then sound, since a shared reference promises nothing about bytes inside
/// an `UnsafeCell` (which every atomic is), and another process storing to them (even outside
/// the protocol) is an atomic access, not a data race.
#[repr(C)]
pub(crate) struct SyncWords {
    /// Line 1 (offset 256). Seqlock sequence: odd while a write is being published;
    /// `seq / 2` is the version (completed writes). What `version()` and spinning readers
    /// poll, and the first word a reader loads. Its low 32 bits are the futex word of
    /// `wait_for_update`.
    pub(crate) seq: AtomicU64,
    _pad1: [AtomicU64; 7],
    /// Line 2 (offset 320): the writer's. The `seq` at which the backup copy was taken (even);
    /// the backup holds that version. Off the polled line: a reader needs it only while `seq`
    /// is odd, and its store would otherwise cost spinning readers one more line transfer per
    /// write.
    pub(crate) backup_seq: AtomicU64,
    /// `0`: nobody sleeps in `wait_for_update`. Otherwise `v + 1` for the
    /// newest `seq` value `v` that a waiter registered to sleep on (waiters store it with
    /// `fetch_max`); a publish of a `seq` greater than `v` clears it and wakes every sleeper,
    /// so a waiter that dies asleep costs writers at most two wakes (see `sync.rs`).
    pub(crate) sleepers: AtomicU64,
    /// Fallback readers that asked for the lock, and those that got it: a writer lets a
    /// waiting reader in before taking the lock again, so readers cannot starve.
    pub(crate) read_req: AtomicU32,
    pub(crate) read_ack: AtomicU32,
    /// Times a dead writer's half-published write was rolled back.
    pub(crate) recoveries: AtomicU64,
    /// Pid of the last process that held the writer lock (diagnostics only).
    pub(crate) last_writer: AtomicI32,
    /// Handles that kept their mapping of this segment for good because a write guard was
    /// leaked (`mem::forget`) while it held the lock (see `Shared`'s `Drop`).
    pub(crate) leaked: AtomicU32,
    /// `CLOCK_MONOTONIC` nanoseconds (coarse: the kernel tick's resolution) of the last
    /// publish, or of the creation before the first one. Stored before the publish's final
    /// `seq` store, so a reader that saw a version sees at least its time.
    pub(crate) last_write: AtomicU64,
    /// For a mirror of an object on another host (`smobject-zenoh`): the source's version of
    /// the value last written here, plus one (0: not a mirror, or nothing received yet).
    /// Stored by the mirror's writer under the lock, before its publish.
    pub(crate) origin_version: AtomicU64,
    /// ... and the source's publish time of that value, nanoseconds since the Unix epoch on
    /// the source host's clock.
    pub(crate) origin_time: AtomicU64,
}

impl SyncWords {
    /// The futex word: the low 32 bits of `seq`.
    pub(crate) fn futex_word(&self) -> *const u32 {
        let base = self.seq.as_ptr().cast::<u32>().cast_const();
        if cfg!(target_endian = "little") {
            base
        } else {
            base.wrapping_add(1)
        }
    }

    /// The low 32 bits of a `seq`, as the futex compares them.
    pub(crate) fn futex_value(seq: u64) -> u32 {
        seq as u32
    }
}

/// A pointer to a mapped counter segment of at least [`HEADER_SIZE`] bytes.
#[derive(Clone, Copy)]
pub(crate) struct HeaderPtr(std::ptr::NonNull<u8>);

// SAFETY: the pointer is to shared memory that stays mapped while the owning handle lives; all
// access through it is via atomics, the process-shared mutex or copies.
unsafe impl Send for HeaderPtr {}
// SAFETY: as above.
unsafe impl Sync for HeaderPtr {}

impl HeaderPtr {
    /// # Safety
    /// `base` must point to a mapping of at least [`HEADER_SIZE`] bytes, 64-byte aligned
    /// (shmat returns page-aligned addresses), that stays mapped while this value is used.
    pub(crate) unsafe fn new(base: std::ptr::NonNull<u8>) -> Self {
        Self(base)
    }

    /// The original's counter at offset 0.
    pub(crate) fn count(&self) -> &AtomicI32 {
        // SAFETY: offset 0 is in bounds and 4-aligned (`new`'s contract); an AtomicI32 may be
        // shared with any other accessor, including other processes.
        unsafe { &*self.0.as_ptr().cast::<AtomicI32>() }
    }

    /// The init state word at offset 4.
    pub(crate) fn state(&self) -> &AtomicU32 {
        // SAFETY: offset 4 is in bounds and 4-aligned; see `count`.
        unsafe { &*self.0.as_ptr().wrapping_add(4).cast::<AtomicU32>() }
    }

    /// The synchronisation words.
    pub(crate) fn sync(&self) -> &SyncWords {
        // SAFETY: SYNC_OFFSET + size_of::<SyncWords>() is in bounds (asserted above) and
        // 64-aligned (page-aligned mapping, `new`'s contract), and stays mapped while `self`
        // is used. Every field of SyncWords, padding included, is an atomic, so the shared
        // reference covers only `UnsafeCell`s: concurrent stores by any thread or process are
        // atomic accesses, not data races, and violate no promise of `&`.
        unsafe {
            &*self
                .0
                .as_ptr()
                .wrapping_add(SYNC_OFFSET)
                .cast::<SyncWords>()
        }
    }

    /// The writer mutex.
    pub(crate) fn mutex(&self) -> *mut libc::pthread_mutex_t {
        // SAFETY: MUTEX_OFFSET + MUTEX_ROOM is in bounds (asserted above); the result stays
        // inside the mapping.
        unsafe { self.0.as_ptr().add(MUTEX_OFFSET).cast() }
    }

    /// The backup copy of the data, right after the header.
    pub(crate) fn backup(&self) -> *mut u8 {
        // SAFETY: the counter segment is HEADER_SIZE + data size bytes (checked on open), so
        // this is in bounds or one past the end for an empty backup.
        unsafe { self.0.as_ptr().add(HEADER_SIZE) }
    }

    /// A copy of the identity block. The copy may be wrong if something outside the protocol
    /// scribbles on the segment: callers validate it.
    pub(crate) fn read_ident(&self) -> Ident {
        let mut buf = [0u8; IDENT_SIZE];
        // SAFETY: the block is in bounds (asserted above) and 8-aligned (the mapping is
        // page-aligned and IDENT_OFFSET is a multiple of 8); it is only ever accessed through
        // `copy` with this length (here and in `write_ident`), so the loads are atomic and
        // never race with a store of another size; `buf` is a private buffer of that length.
        unsafe {
            crate::copy::load(
                self.0.as_ptr().wrapping_add(IDENT_OFFSET),
                buf.as_mut_ptr(),
                IDENT_SIZE,
                IDENT_SIZE,
            );
        }
        Ident::from_bytes(&buf)
    }

    /// A copy of the stored schema bytes: `len` bytes at [`schema_offset`]`(data_size)`. The
    /// caller checked that the mapping holds them (`validate`).
    pub(crate) fn read_schema(&self, data_size: usize, len: usize) -> Vec<u8> {
        let mut buf = vec![0u8; len];
        // SAFETY: the counter segment has at least schema_offset(data_size) + len bytes
        // (checked by `validate` against the segment's size), the start is 8-aligned (a
        // multiple of 8 from a page-aligned mapping), and the block is only ever accessed
        // through `copy` with this length (here and in `write_schema`), so every load is atomic
        // and never races with a store of another size; `buf` is a private buffer of `len`.
        unsafe {
            crate::copy::load(
                self.0.as_ptr().wrapping_add(schema_offset(data_size)),
                buf.as_mut_ptr(),
                len,
                len,
            );
        }
        buf
    }

    /// Stores the schema bytes (by the creator, before `state` is READY).
    pub(crate) fn write_schema(&self, data_size: usize, bytes: &[u8]) {
        // SAFETY: the creator sized the counter segment schema_offset(data_size) + bytes.len();
        // 8-aligned as in `read_schema`; atomic stores of the granules `read_schema` loads.
        unsafe {
            crate::copy::store(
                bytes.as_ptr(),
                self.0.as_ptr().wrapping_add(schema_offset(data_size)),
                bytes.len(),
            );
        }
    }

    /// Writes the identity block (before `state` is READY, which publishes it).
    pub(crate) fn write_ident(&self, ident: &Ident) {
        let bytes = ident.to_bytes();
        // SAFETY: in bounds and 8-aligned (see `read_ident`); atomic stores of the granules
        // `read_ident` loads; `bytes` is a separate local.
        unsafe {
            crate::copy::store(
                bytes.as_ptr(),
                self.0.as_ptr().wrapping_add(IDENT_OFFSET),
                IDENT_SIZE,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_match_the_format_document() {
        assert_eq!(std::mem::size_of::<Ident>(), 176);
        assert_eq!(std::mem::offset_of!(Ident, schema_len), 168);
        assert_eq!(std::mem::offset_of!(SyncWords, last_write), 104);
        assert_eq!(std::mem::offset_of!(SyncWords, origin_version), 112);
        assert_eq!(std::mem::offset_of!(SyncWords, origin_time), 120);
        assert_eq!(std::mem::offset_of!(Ident, lock_abi), 160);
        assert_eq!(std::mem::offset_of!(Ident, path_hash), 152);
        assert_eq!(std::mem::offset_of!(Ident, data_size), 16);
        assert_eq!(std::mem::offset_of!(Ident, type_name), 88);
        assert_eq!(std::mem::offset_of!(SyncWords, backup_seq), 64);
        assert_eq!(std::mem::offset_of!(SyncWords, sleepers), 72);
        assert_eq!(std::mem::offset_of!(SyncWords, read_req), 80);
        assert_eq!(std::mem::offset_of!(SyncWords, read_ack), 84);
        assert_eq!(std::mem::offset_of!(SyncWords, recoveries), 88);
        assert_eq!(std::mem::offset_of!(SyncWords, last_writer), 96);
        assert_eq!(std::mem::offset_of!(SyncWords, leaked), 100);
        assert_eq!(std::mem::size_of::<SyncWords>(), 128);
        assert_eq!(MAGIC.to_le_bytes(), *b"SMOBJECT");
    }

    #[test]
    fn type_names_are_cut_at_char_boundaries() {
        let long = "é".repeat(40);
        let enc = Ident::encode_type_name(&long);
        let end = enc.iter().position(|&b| b == 0).unwrap_or(TYPE_NAME_LEN);
        assert!(std::str::from_utf8(&enc[..end]).is_ok());
        assert_eq!(end, 64);
    }
}
