//! Shared code for smobject's benchmarks: the benchmarked structs, raw SysV baselines, key
//! files that clean up after themselves, CPU pinning, statistics and the ratio table.
//!
//! Two bench targets use it: `benches/inproc.rs` (criterion, in-process figures) and
//! `benches/xproc.rs` (a harness that re-executes itself for the cross-process figures).
//! `BENCHMARKS.md` at the repository root has the commands and the results.

// Statistics over nanosecond counts and sample counts, all far below 2^52.
#![allow(clippy::cast_precision_loss)]

pub mod keyfile;
pub mod raw;
pub mod report;
pub mod structs;
