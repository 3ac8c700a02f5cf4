//! The async waits (`Shared::changed().await`, feature `async`) in the ping-pong: the parent
//! writes `A` and awaits `B`; the child is `smo-wait`'s (it sleeps in `wait_for_update` on `A`
//! and writes `B`), so the three variants differ only in how the parent waits:
//! - `smo-async`: `changed(i).await` under `tokio::time::timeout`, on a current-thread tokio
//!   runtime (one `block_on` per round trip);
//! - `smo-async-std`: `changed(i)` polled by a minimal std executor (park/unpark): the async
//!   wait without a runtime's own costs;
//! - `smo-spawn-blocking`: what one writes without async waits: tokio's `spawn_blocking`
//!   around `wait_for_update`, which hands each wait to a blocking-pool thread.
//!
//! The helper thread of the async waits, and tokio's blocking pool, are started by threads of
//! this process, so they run on the parent's CPU, as the parent does.

use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use super::{Goal, KeyFile, Peer, Res, Row, Shared, Small, TIMEOUT};
use smobject_benches::keyfile::OBJECT_IDS;

pub(super) fn parent(
    variant: &str,
    key: &KeyFile,
    total: u64,
    timed: super::Timed<'_>,
) -> Res<f64> {
    let path = key.path().display().to_string();
    let a = Shared::<Small>::create_at(key.path(), b'A')?;
    let b = Arc::new(Shared::<Small>::create_at(key.path(), b'B')?);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()?;
    // The child side is the blocking wait's: it waits on A, then writes B.
    let peer = Peer::spawn("smo-wait", &[path, total.to_string()])?;
    let ns = match variant {
        "smo-async" => timed(&mut |i| {
            a.write(|t| t.words[0] = i + 1);
            // (The time-out's timer needs the runtime's context: made inside `block_on`.)
            match rt.block_on(async { tokio::time::timeout(TIMEOUT, b.changed(i)).await }) {
                Ok(v) => v.map(drop).map_err(Into::into),
                Err(_) => Err("the peer stopped answering".into()),
            }
        })?,
        "smo-async-std" => timed(&mut |i| {
            a.write(|t| t.words[0] = i + 1);
            block_on(b.changed(i))?;
            Ok(())
        })?,
        _ => timed(&mut |i| {
            a.write(|t| t.words[0] = i + 1);
            let b = Arc::clone(&b);
            rt.block_on(async move {
                tokio::task::spawn_blocking(move || b.wait_for_update(i, Some(TIMEOUT))).await
            })??;
            Ok(())
        })?,
    };
    peer.finish()?;
    drop(rt);
    Ok(ns)
}

/// Wakes the thread that polls.
struct Unpark(std::thread::Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

/// Polls `f` on this thread, parking in between: the smallest executor.
fn block_on<F: Future>(f: F) -> F::Output {
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut f = std::pin::pin!(f);
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park();
    }
}

/// Threads that keep [`PENDING`] waits on as many objects pending: the async waits' helpers
/// against tokio's blocking-pool threads under `spawn_blocking(wait_for_update)`, which hold
/// one thread per pending wait (and cannot be cancelled: a dropped `JoinHandle` leaves its
/// thread asleep until the wait ends).
pub(super) fn threads(rows: &mut Vec<Row>) -> Res<()> {
    // Four objects per key file, under the ids its guard cleans up after a panic.
    let per = OBJECT_IDS.len();
    let files = (0..PENDING.div_ceil(per))
        .map(|_| KeyFile::new("threads"))
        .collect::<Result<Vec<_>, _>>()?;
    let objs: Vec<Arc<Shared<Small>>> = (0..PENDING)
        .map(|i| {
            Shared::<Small>::create_at(files[i / per].path(), OBJECT_IDS[i % per]).map(Arc::new)
        })
        .collect::<Result<_, _>>()?;
    let tasks = || std::fs::read_dir("/proc/self/task").map(Iterator::count);
    // A fresh runtime: its blocking pool starts empty.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()?;
    let helpers = rt.block_on(async {
        let mut futs: Vec<_> = objs.iter().map(|o| o.changed(o.version())).collect();
        for f in &mut futs {
            // Polls it once (it registers), then the zero time-out ends the wait.
            let _ = tokio::time::timeout(std::time::Duration::ZERO, f).await;
        }
        let s = smobject::async_stats();
        if s.waiting < PENDING {
            return Err(format!("only {} waits pending", s.waiting));
        }
        Ok(s.helpers)
    })?;
    let before = tasks()?;
    let pool = rt.block_on(async {
        let handles: Vec<_> = objs
            .iter()
            .map(|o| {
                let (o, seen) = (Arc::clone(o), o.version());
                tokio::task::spawn_blocking(move || o.wait_for_update(seen, Some(TIMEOUT)))
            })
            .collect();
        let start = std::time::Instant::now();
        while tasks()? < before + PENDING && start.elapsed() < TIMEOUT {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        let pool = tasks()? - before;
        for o in &objs {
            o.write(|t| t.words[0] += 1);
        }
        for h in handles {
            h.await??;
        }
        Ok::<_, Box<dyn std::error::Error>>(pool)
    })?;
    rows.push(Row {
        workload: "pending waits".into(),
        figure: format!("threads waiting for {PENDING} objects: `changed().await` helpers"),
        value: helpers as f64,
        baseline: "`spawn_blocking(wait_for_update)` pool threads".into(),
        base: pool as f64,
        goal: Goal::None,
        unit: "threads".into(),
    });
    drop(rt);
    drop(objs);
    Ok(())
}

/// Waits kept pending at once by [`threads`].
const PENDING: usize = 100;
