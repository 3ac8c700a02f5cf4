//! `smobject publish` and `smobject subscribe`: mirror an object to other hosts over Zenoh
//! (the `smobject-zenoh` crate). Both run until SIGINT, SIGTERM or SIGHUP, then detach cleanly.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use smobject::{DynObject, Key, Options};
use zenoh::Wait;

use crate::Failure;

/// Set by SIGINT/SIGTERM/SIGHUP: the run loops check it at least every 100 ms and return, so every
/// handle is dropped (detached) and the Zenoh session closed.
static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    // Async-signal-safe: a relaxed store to a static atomic.
    STOP.store(true, Ordering::Relaxed);
}

fn catch_stop_signals() {
    // SIGHUP too: a subscriber in a closed terminal or SSH session must detach, not leave a
    // stale pair.
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: `on_signal` is an `extern "C" fn(c_int)` that only stores to an atomic, which
        // is async-signal-safe; installing a handler has no other precondition.
        unsafe { libc::signal(sig, on_signal as *const () as libc::sighandler_t) };
    }
}

/// The Zenoh endpoints and configuration file of both commands.
pub(crate) struct Net<'a> {
    pub(crate) listen: &'a [String],
    pub(crate) connect: &'a [String],
    pub(crate) config: Option<&'a Path>,
}

fn session(net: &Net<'_>) -> Result<zenoh::Session, Failure> {
    let config = smobject_zenoh::config(net.listen, net.connect, net.config).map_err(bridge)?;
    // Through the crate's Zenoh error, for its hint on endpoints.
    zenoh::open(config).wait().map_err(|e| {
        bridge(smobject_zenoh::Error::Zenoh(format!(
            "opening the zenoh session: {e}"
        )))
    })
}

fn bridge(e: smobject_zenoh::Error) -> Failure {
    match e {
        smobject_zenoh::Error::Object(e) => Failure::Smobject(e),
        other => Failure::Bridge(other.to_string()),
    }
}

/// `smobject publish PATH ID KEYEXPR`.
pub(crate) fn publish(object: DynObject, keyexpr: &str, net: &Net<'_>) -> Result<(), Failure> {
    catch_stop_signals();
    let session = session(net)?;
    let mut publication =
        smobject_zenoh::Publication::new(&session, keyexpr, object).map_err(bridge)?;
    let key = publication.object().key();
    eprintln!(
        "publishing {} id '{}' ({}, key {key}) on `{keyexpr}`",
        key.path().display(),
        char::from(key.id()),
        publication.object().schema().name
    );
    let r = publication.run(&STOP).map_err(bridge);
    drop(publication);
    let _ = session.close().wait();
    r
}

/// `smobject subscribe KEYEXPR PATH ID`.
pub(crate) fn subscribe(
    keyexpr: &str,
    path: &PathBuf,
    id: u8,
    opts: Options,
    net: &Net<'_>,
) -> Result<(), Failure> {
    catch_stop_signals();
    // Before the key file is made: a bad key expression leaves nothing behind.
    smobject_zenoh::check_keyexpr(keyexpr).map_err(bridge)?;
    let key = Key::from_path_creating(path, id, 0o644)?;
    let session = session(net)?;
    let mirror = smobject_zenoh::Mirror::new(&session, keyexpr, key, opts).map_err(bridge)?;
    eprintln!(
        "mirroring `{keyexpr}` into {} id '{}'",
        path.display(),
        char::from(id)
    );
    let r = mirror.run(&STOP).map_err(bridge);
    drop(mirror);
    let _ = session.close().wait();
    r
}
