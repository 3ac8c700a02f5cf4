//! Support code shared by smobject's integration tests: key files that clean up after themselves,
//! and a driver for the `smo-helper` child process.
