//! The counter segment: the original's `int` count at offset 0, then smobject's header, then
//! the backup copy of the data used to recover from a writer that died mid-write.
//! `docs/FORMAT.md` describes it byte by byte; the offsets here are asserted at compile time.

use std::sync::atomic::{AtomicI32, AtomicU32, AtomicU64};

/// `"SMOBJECT"` read as a little-endian `u64`.
pub(crate) const MAGIC: u64 = u64::from_le_bytes(*b"SMOBJECT");
/// Version of the segment format. Changing any offset or meaning bumps it.
pub const FORMAT_VERSION: u32 = 1;
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
/// Offset of the waiter slots.
const WAITERS_OFFSET: usize = 512;
/// Waiters that register their pid (more still wait correctly, but cannot be repaired).
pub(crate) const WAITER_SLOTS: usize = 28;
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
const _: () = assert!(MUTEX_OFFSET + MUTEX_ROOM <= WAITERS_OFFSET);
const _: () = assert!(WAITERS_OFFSET + std::mem::size_of::<WaiterSlots>() <= HEADER_SIZE);

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
}

/// Bytes of an [`Ident`].
pub(crate) const IDENT_SIZE: usize = std::mem::size_of::<Ident>();

// Every field is an integer or a byte array and the sizes add up: no padding, so every byte of
// an Ident is initialised and every byte pattern is a valid Ident (what the conversions below
// rely on). Not derived with zerocopy, to keep this private type out of the trait listings in
// users' compile errors.
const _: () = assert!(IDENT_SIZE == 8 * 10 + 4 * 4 + TYPE_NAME_LEN);

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
#[repr(C)]
///
/// Three cache lines, so that a reader polling `seq` shares its line only with the word it
/// needs next (`backup_seq`), and the writer's wake-up and bookkeeping stores do not pull the
/// polled line away from readers once more per publish.
pub(crate) struct SyncWords {
    /// Line 1 (offset 256). Seqlock sequence: odd while a write is in progress; `seq / 2` is
    /// the version.
    pub(crate) seq: AtomicU64,
    /// The `seq` at which the backup copy was taken (even); the backup holds that version.
    pub(crate) backup_seq: AtomicU64,
    _pad1: [u8; 48],
    /// Line 2 (offset 320). The version (`seq / 2` of the last publish), stored once per
    /// publish after `seq`: what `version()` and spinning readers poll, on a line the writer's
    /// two `seq` stores do not touch. Its low 32 bits are the futex word of `wait_for_update`.
    pub(crate) version: AtomicU64,
    /// Processes sleeping in `wait_for_update`; a writer wakes only when non-zero.
    pub(crate) waiters: AtomicU32,
    _pad2: [u8; 52],
    /// Line 3 (offset 384). Fallback readers that asked for the lock, and those that got it:
    /// a writer lets a waiting reader in before taking the lock again, so readers cannot starve.
    pub(crate) read_req: AtomicU32,
    pub(crate) read_ack: AtomicU32,
    /// Times a dead writer's half-done write was rolled back.
    pub(crate) recoveries: AtomicU64,
    /// Pid of the last process that held the writer lock (diagnostics only).
    pub(crate) last_writer: AtomicI32,
    _reserved: [u8; 44],
}

/// Who sleeps in `wait_for_update`, at offset 512, so that writers can forget waiters that
/// died asleep (otherwise every later write would pay a futex wake for them).
#[repr(C)]
pub(crate) struct WaiterSlots {
    /// Bit `i` set: slot `i` is taken.
    pub(crate) mask: AtomicU32,
    /// The pid of the waiter in each taken slot (0 while being claimed or released).
    pub(crate) pids: [AtomicI32; WAITER_SLOTS],
    /// Consecutive wakes that found nobody asleep; at 8 a writer checks the slots.
    pub(crate) idle_wakes: AtomicU32,
}

impl SyncWords {
    /// The futex word: the low 32 bits of `version`.
    pub(crate) fn futex_word(&self) -> *const u32 {
        let base = self.version.as_ptr().cast::<u32>().cast_const();
        if cfg!(target_endian = "little") {
            base
        } else {
            base.wrapping_add(1)
        }
    }

    /// The low 32 bits of `version`, as the futex compares them.
    pub(crate) fn futex_value(version: u64) -> u32 {
        version as u32
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
        // 64-aligned; SyncWords is made of atomics only, which may be shared.
        unsafe {
            &*self
                .0
                .as_ptr()
                .wrapping_add(SYNC_OFFSET)
                .cast::<SyncWords>()
        }
    }

    /// The waiter slots.
    pub(crate) fn waiters(&self) -> &WaiterSlots {
        // SAFETY: WAITERS_OFFSET + size_of::<WaiterSlots>() is in bounds (asserted above) and
        // 4-aligned; WaiterSlots is made of atomics only, which may be shared.
        unsafe {
            &*self
                .0
                .as_ptr()
                .wrapping_add(WAITERS_OFFSET)
                .cast::<WaiterSlots>()
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

    /// A copy of the identity block. The copy may be torn or garbage if something outside
    /// the protocol scribbles on the segment: callers validate it.
    pub(crate) fn read_ident(&self) -> Ident {
        let mut buf = [0u8; std::mem::size_of::<Ident>()];
        // SAFETY: the source range is in bounds (asserted above) and the destination is a
        // local buffer of the same length. The bytes are written once under the key's lock
        // before `state` is READY (acquire-loaded by callers); a concurrent scribbler outside
        // the protocol can only make the copy wrong, which validation catches, never invalid
        // (every byte pattern is a valid `[u8; N]`).
        unsafe {
            std::ptr::copy_nonoverlapping(
                self.0.as_ptr().wrapping_add(IDENT_OFFSET),
                buf.as_mut_ptr(),
                buf.len(),
            );
        }
        Ident::from_bytes(&buf)
    }

    /// Writes the identity block.
    ///
    /// # Safety
    /// The caller must be the creator, holding the key's lock, before `state` is READY.
    pub(crate) unsafe fn write_ident(&self, ident: &Ident) {
        let bytes = ident.to_bytes();
        // SAFETY: in bounds (asserted above); nobody else reads or writes the block yet (the
        // caller's contract); `bytes` is a separate local.
        unsafe {
            std::ptr::copy_nonoverlapping(
                bytes.as_ptr(),
                self.0.as_ptr().wrapping_add(IDENT_OFFSET),
                bytes.len(),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_match_the_format_document() {
        assert_eq!(std::mem::size_of::<Ident>(), 160);
        assert_eq!(std::mem::offset_of!(Ident, path_hash), 152);
        assert_eq!(std::mem::offset_of!(Ident, data_size), 16);
        assert_eq!(std::mem::offset_of!(Ident, type_name), 88);
        assert_eq!(std::mem::offset_of!(SyncWords, backup_seq), 8);
        assert_eq!(std::mem::offset_of!(SyncWords, version), 64);
        assert_eq!(std::mem::offset_of!(SyncWords, waiters), 72);
        assert_eq!(std::mem::offset_of!(SyncWords, read_req), 128);
        assert_eq!(std::mem::offset_of!(SyncWords, recoveries), 136);
        assert_eq!(std::mem::offset_of!(SyncWords, last_writer), 144);
        assert_eq!(std::mem::size_of::<SyncWords>(), 192);
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
