//! Compile-time tests of `#[shared_memory]`: every rejected struct or argument fails with the
//! message in its `.stderr` (`TRYBUILD=overwrite` regenerates them; review the diff like code),
//! and every accepted one compiles.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("ui/fail/*.rs");
    t.pass("ui/pass/*.rs");
}
