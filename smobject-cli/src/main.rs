//! The `smobject` command.
fn main() {}
