//! Prints a C header for the examples' `Telemetry`, so a C or C++ program can share it:
//!
//! ```sh
//! cargo run -p examples --example c_header > telemetry.h
//! ```
//!
//! The header declares `struct Telemetry` (with `_Static_assert`s on its size and every
//! offset), its key (`TELEMETRY_SMOBJECT_PATH`, `_ID`, `_COUNTER_ID`), its layout fingerprint,
//! and `telemetry_smobject_check`/`_read`/`_version` for reading it consistently.
//! `tests/c/legacy_reader.c` is a complete C program using it.

fn main() {
    print!("{}", smobject::c_header::<examples::Telemetry>());
}
