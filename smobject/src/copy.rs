//! Race-free copies between private memory and a mapping that other threads and processes
//! access at the same time (the seqlock's optimistic reads, the writer's publish).
//!
//! # The granule rule (also in `docs/FORMAT.md`)
//! Every byte of an object's data and of its backup copy is only ever accessed atomically, and
//! always in the same *granules*: the 8-byte words at offsets `0, 8, 16, ...` that lie wholly
//! inside the object's `len` bytes, then the last `len % 8` bytes as one 4-byte, one 2-byte and
//! one 1-byte atomic, in that order. Readers and writers derive the granules from the object's
//! `len` alone, so two accesses that overlap always cover exactly the same bytes with the same
//! size: Rust's memory model forbids racing atomic accesses that only partially overlap, and
//! forbids a non-atomic access racing with anything; neither can happen here.
//!
//! A copy of the first `n < len` bytes touches every granule that overlaps `[0, n)` in full and
//! keeps only the bytes it needs (loads), or writes back the bytes it did not change (stores).
//!
//! Loads are `Relaxed`: what makes a copy a *snapshot* is the seqlock's fences and re-check
//! around it (`sync.rs`), exactly as in crossbeam's `atomic_memcpy` and C++ P1478's
//! `atomic_load_per_byte_memcpy`; a copy that a write overlapped is discarded, and it is a
//! valid byte pattern meanwhile because every load returns some value that was stored.
//!
//! # Speed
//! Word-sized atomic loads and stores compile to plain `mov`s, but the compiler never merges or
//! vectorises atomics, so a long copy made of them runs at one 8-byte store per cycle. On x86-64
//! long loads go through [`load_sse`]: an `asm!` loop of 16-byte SSE2 loads that the compiler
//! cannot see into. Its argument: an `asm!` block may do anything some Rust code could do, and
//! what it does here (each aligned 8-byte half of every 16-byte load is a single-copy-atomic
//! load, x86's loads are never reordered with one another, and nothing is stored to the
//! mapping) is what the same sequence of `AtomicU64::load(Relaxed)` calls does.

use std::sync::atomic::{AtomicU16, AtomicU32, AtomicU64, AtomicU8, Ordering};

/// Copies of at least this many whole-word bytes use the vector loop on x86-64.
#[cfg(target_arch = "x86_64")]
const VECTOR_MIN: usize = 64;

/// Copies the first `n` bytes of the `len`-byte shared region at `src` to the private `dst`,
/// loading whole granules (see the module docs). `n <= len`.
///
/// # Safety
/// `src` must be 8-aligned and valid for `len` bytes of reads, every access to which (by any
/// thread or process) follows the granule rule for this `len`; `dst` must be valid for `n`
/// bytes of writes and not overlap `src`'s region.
// Always inlined: with `n` and `len` known at the call site (a `read` of one `T`), the loop
// unrolls into a handful of moves; an out-of-line call would cost as much as a 64-byte copy.
#[allow(clippy::inline_always)]
#[inline(always)]
pub(crate) unsafe fn load(src: *const u8, dst: *mut u8, n: usize, len: usize) {
    debug_assert!(n <= len && src.cast::<u64>().is_aligned());
    let full = len & !7;
    let mut words = n.min(full) & !7;
    let mut done = 0;
    #[cfg(target_arch = "x86_64")]
    if words >= VECTOR_MIN && src.cast::<u128>().is_aligned() {
        let vec = words & !63;
        // SAFETY: `vec` bytes from `src` are whole granules inside the region, 16-aligned, and
        // `dst` has room for them (vec <= n); the caller's contract covers the rest.
        unsafe { load_sse(src, dst, vec) };
        done = vec;
    }
    while done < words {
        // SAFETY: `src + done` is an 8-aligned whole-word granule inside the region (the
        // caller's contract), only ever accessed atomically as a u64.
        let v = unsafe { AtomicU64::from_ptr(src.wrapping_add(done).cast_mut().cast()) }
            .load(Ordering::Relaxed);
        // SAFETY: `dst + done .. + 8` is inside the `n` bytes the caller gave us.
        unsafe { dst.wrapping_add(done).cast::<u64>().write_unaligned(v) };
        done += 8;
    }
    if done >= n {
        return;
    }
    // The rest of `n` lies in one more granule or in the object's last partial word.
    let mut tail = [0u8; 8];
    if done < full {
        // A whole word of which we need only the first `n - done` bytes.
        // SAFETY: as in the loop above: done < full, so the word is inside the region.
        let v = unsafe { AtomicU64::from_ptr(src.wrapping_add(done).cast_mut().cast()) }
            .load(Ordering::Relaxed);
        tail = v.to_ne_bytes();
    } else {
        // SAFETY: `src + full .. + len` is the object's last partial word, accessed by everyone
        // as the 4-, 2- and 1-byte granules read here.
        unsafe { load_last(src.wrapping_add(full), &mut tail, len - full) };
    }
    words = n - done;
    // SAFETY: `dst + done .. + words` is inside the `n` bytes the caller gave us, and
    // `words < 8` bytes of `tail` are initialised.
    unsafe { std::ptr::copy_nonoverlapping(tail.as_ptr(), dst.wrapping_add(done), words) };
}

/// Loads the last partial word (`rest < 8` bytes at the 8-aligned `src`) into `out`.
///
/// # Safety
/// `src` must be 8-aligned and valid for `rest` bytes, accessed by everyone as these granules.
#[allow(clippy::inline_always)] // part of `load`'s inlined body
#[inline(always)]
unsafe fn load_last(src: *const u8, out: &mut [u8; 8], rest: usize) {
    let mut at = 0;
    if rest & 4 != 0 {
        // SAFETY: 4 bytes at an 8-aligned address inside the region (the caller's contract).
        let v = unsafe { AtomicU32::from_ptr(src.cast_mut().cast()) }.load(Ordering::Relaxed);
        out[..4].copy_from_slice(&v.to_ne_bytes());
        at = 4;
    }
    if rest & 2 != 0 {
        // SAFETY: 2 bytes at a 2-aligned address (8-aligned plus 0 or 4) inside the region.
        let v = unsafe { AtomicU16::from_ptr(src.wrapping_add(at).cast_mut().cast()) }
            .load(Ordering::Relaxed);
        out[at..at + 2].copy_from_slice(&v.to_ne_bytes());
        at += 2;
    }
    if rest & 1 != 0 {
        // SAFETY: the last byte of the region.
        out[at] =
            unsafe { AtomicU8::from_ptr(src.wrapping_add(at).cast_mut()) }.load(Ordering::Relaxed);
    }
}

/// Copies `len` private bytes from `src` to the shared region at `dst`, storing whole granules
/// (see the module docs): the writer's publish, backup and restore.
///
/// # Safety
/// `dst` must be 8-aligned and valid for `len` bytes of writes, every access to which follows
/// the granule rule for this `len`; `src` must be valid for `len` bytes of reads and not
/// overlap it.
#[allow(clippy::inline_always)] // as `load`: the writer's publish of one `T`
#[inline(always)]
pub(crate) unsafe fn store(src: *const u8, dst: *mut u8, len: usize) {
    debug_assert!(dst.cast::<u64>().is_aligned());
    let full = len & !7;
    let mut done = 0;
    while done < full {
        // SAFETY: `src + done .. + 8` is inside the caller's `len` readable bytes.
        let v = unsafe { src.wrapping_add(done).cast::<u64>().read_unaligned() };
        // SAFETY: an 8-aligned whole-word granule inside the region, only accessed atomically.
        unsafe { AtomicU64::from_ptr(dst.wrapping_add(done).cast()) }.store(v, Ordering::Relaxed);
        done += 8;
    }
    let rest = len - full;
    if rest & 4 != 0 {
        // SAFETY: 4 readable bytes of `src`; a 4-byte granule at an 8-aligned address of `dst`.
        let v = unsafe { src.wrapping_add(done).cast::<u32>().read_unaligned() };
        // SAFETY: as above.
        unsafe { AtomicU32::from_ptr(dst.wrapping_add(done).cast()) }.store(v, Ordering::Relaxed);
        done += 4;
    }
    if rest & 2 != 0 {
        // SAFETY: 2 readable bytes of `src`; a 2-byte granule at a 2-aligned address of `dst`.
        let v = unsafe { src.wrapping_add(done).cast::<u16>().read_unaligned() };
        // SAFETY: as above.
        unsafe { AtomicU16::from_ptr(dst.wrapping_add(done).cast()) }.store(v, Ordering::Relaxed);
        done += 2;
    }
    if rest & 1 != 0 {
        // SAFETY: the last readable byte of `src`.
        let v = unsafe { src.wrapping_add(done).read() };
        // SAFETY: the last byte of the region, a 1-byte granule.
        unsafe { AtomicU8::from_ptr(dst.wrapping_add(done)) }.store(v, Ordering::Relaxed);
    }
}

/// Copies `len` bytes from one shared region to another, both following the granule rule for
/// `len`: atomic loads and atomic stores, granule by granule (the recovery's restore; no speed
/// is asked of it).
///
/// # Safety
/// Both pointers must be 8-aligned and valid for `len` bytes, every access to which follows the
/// granule rule for this `len`, and the regions must not overlap.
pub(crate) unsafe fn transfer(src: *const u8, dst: *mut u8, len: usize) {
    let mut buf = [0u8; 512];
    let mut done = 0;
    while done < len {
        // Whole granules only: a multiple of 8, or the rest of the region.
        let n = (len - done).min(buf.len());
        // SAFETY: `src + done` is 8-aligned and `n` bytes are granules of the whole region
        // (the caller's contract), accessed as such by `load` with the region's remaining
        // length; `buf` has room for `n`.
        unsafe { load(src.wrapping_add(done), buf.as_mut_ptr(), n, len - done) };
        // SAFETY: as above for `dst`; `n` readable bytes of `buf`. A chunk that ends inside the
        // region ends on a multiple of 8, so its granules are the region's.
        unsafe { store(buf.as_ptr(), dst.wrapping_add(done), n) };
        done += n;
    }
}

/// Loads `bytes` (a non-zero multiple of 64) from the 16-aligned shared `src` into `dst` with
/// SSE2 16-byte loads (`movdqa`), storing with `movdqu`.
///
/// Equivalent, by the `asm!` rules, to `bytes / 8` calls of `AtomicU64::load(Relaxed)` on the
/// words of `src` in order, each stored to `dst`. The Intel SDM (vol. 3A, "Guaranteed Atomic
/// Operations") makes an aligned 16-byte `movdqa` load atomic on processors with AVX and, on
/// any other, at worst a sequence of smaller loads of which each aligned quadword is atomic;
/// "Memory Ordering in P6 and More Recent Processor Families" keeps loads in order with other
/// loads. The block stores nothing to `src`'s memory.
///
/// # Safety
/// `src` must be 16-aligned and valid for `bytes` of reads, all of them whole-word granules;
/// `dst` must be valid for `bytes` of writes and not overlap `src`.
#[cfg(target_arch = "x86_64")]
#[inline]
unsafe fn load_sse(src: *const u8, dst: *mut u8, bytes: usize) {
    debug_assert!(bytes != 0 && bytes % 64 == 0 && src.cast::<u128>().is_aligned());
    // SAFETY: the caller's contract bounds every address the loop touches: it reads
    // `src .. src + bytes` and writes `dst .. dst + bytes`, 64 bytes per iteration, and stops
    // when the count reaches 0. It uses only the declared registers and no stack.
    unsafe {
        std::arch::asm!(
            "2:",
            "movdqa xmm0, xmmword ptr [{s}]",
            "movdqa xmm1, xmmword ptr [{s} + 16]",
            "movdqa xmm2, xmmword ptr [{s} + 32]",
            "movdqa xmm3, xmmword ptr [{s} + 48]",
            "movdqu xmmword ptr [{d}], xmm0",
            "movdqu xmmword ptr [{d} + 16], xmm1",
            "movdqu xmmword ptr [{d} + 32], xmm2",
            "movdqu xmmword ptr [{d} + 48], xmm3",
            "add {s}, 64",
            "add {d}, 64",
            "sub {n}, 64",
            "jnz 2b",
            s = inout(reg) src => _,
            d = inout(reg) dst => _,
            n = inout(reg) bytes => _,
            out("xmm0") _,
            out("xmm1") _,
            out("xmm2") _,
            out("xmm3") _,
            options(nostack),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 16-aligned buffer standing in for a mapping.
    #[repr(C, align(16))]
    struct Buf([u8; 1040]);

    #[test]
    fn loads_and_stores_every_length_and_prefix() {
        let mut shared = Buf([0; 1040]);
        for len in 0..=600usize {
            let src: Vec<u8> = (0..len).map(|i| (i * 7 + len) as u8).collect();
            // SAFETY: `shared` is 16-aligned with room for `len` bytes; `src` has `len`.
            unsafe { store(src.as_ptr(), shared.0.as_mut_ptr(), len) };
            assert_eq!(&shared.0[..len], &src[..], "store of {len}");
            for n in [0, 1, len / 3, len.saturating_sub(1), len]
                .into_iter()
                .filter(|&n| n <= len)
            {
                let mut out = vec![0xAAu8; n + 1];
                // SAFETY: as above; `out` has room for `n` bytes.
                unsafe { load(shared.0.as_ptr(), out.as_mut_ptr(), n, len) };
                assert_eq!(&out[..n], &src[..n], "load of {n} of {len}");
                assert_eq!(out[n], 0xAA, "load of {n} of {len} wrote past its end");
            }
        }
    }
}
