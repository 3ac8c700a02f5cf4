//! Child process for the multi-process tests.
fn main() {}
