//! Async waits (cargo feature `async`): [`Shared::changed`](crate::Shared::changed) and
//! [`DynObject::changed`](crate::DynObject::changed) return futures that any executor can poll
//! (std's `Future` and `Waker` only), woken by the futex wake that writers already make.
//!
//! # Design
//! A futex cannot be registered with epoll (`FUTEX_FD` is gone), so the sleeping is done by
//! helper threads, shared by every future of the process:
//! - **Registration**, in `poll`: a future registers in the object's header exactly as a
//!   blocking waiter does ([`sync::register_sleeper`]: `sleepers` raised to `seq + 1`, then
//!   `seq` re-loaded, both SeqCst), then hands its `Waker` and `(futex word, low 32 bits of
//!   seq)` to the reactor. Writers change nothing and pay nothing new: they see a non-zero
//!   `sleepers` and make the one `FUTEX_WAKE` they make for blocking waiters.
//! - **Slots**: the reactor keeps one *slot* per distinct `(word, expected value)` with the
//!   wakers of every future waiting on it: a thousand futures on one object share one slot.
//! - **Helpers**: threads started on first use, each owning up to 127 slots and sleeping in one
//!   `futex_waitv` call (Linux 5.16+, 128 words at most) on their slots' words plus a private
//!   *control* word, which the reactor bumps and wakes when the helper's set of slots changes.
//!   A second helper starts only when 127 words are watched at once, and so on. Helpers are
//!   never stopped; one with no slot sleeps on its control word and costs nothing.
//! - **Firing**: a slot *fires* when its helper learns that its word was woken or no longer
//!   holds the expected value: `futex_waitv` returns the word's index, or fails with `EAGAIN`
//!   (a word changed before the call slept) or `EFAULT` (a word was unmapped), after which the
//!   helper probes each slot alone with a `FUTEX_WAIT` of zero time-out, which only compares.
//!   A fired slot is removed and its wakers woken (outside the reactor's lock); each future then
//!   re-checks `seq` in `poll`, and completes or registers again.
//! - **Cancellation**: dropping a future removes its waker, and the slot with it when it was
//!   the last, and bumps the helper's control word, so the helper stops watching the word. The
//!   registration in `sleepers` stays, exactly as a timed-out blocking waiter's does: the next
//!   publish past it clears it (self-healing, as for a waiter that died: see
//!   `Region::wake_sleepers`), so a cancelled future costs writers at most the wakes a
//!   timed-out blocking wait costs. The same holds for a process killed (`SIGKILL`) while it awaits.
//! - **Fallback**, where `futex_waitv` is missing (Linux before 5.16, or refused by a seccomp
//!   filter): each helper owns one slot and sleeps in plain `FUTEX_WAIT` on its word, so there
//!   is one thread per watched word (pooled: a helper whose slot fired takes the next). That
//!   keeps the latency and the zero idle cost of the blocking wait, which polling would not,
//!   and bounds the threads by the words watched, not by the futures. A helper asleep on an
//!   object's word cannot be reached through a control word, so cancelling its last future
//!   wakes that word (other processes' waiters on the object see one spurious wake-up and
//!   sleep again), and a helper re-checks its slot every 5 s, which returns one stranded by a
//!   cancel that raced with its going to sleep.
//!
//! # No lost wake-up
//! A future returns `Pending` only after [`sync::register_sleeper`] raised `sleepers` to
//! `e + 1` and then saw `seq == e`, and only once the slot `(word, e as u32)` holds its waker.
//! By the argument of `wake_sleepers` (the Dekker pair of SeqCst operations), every publish of
//! a `seq > e` is then followed by a `FUTEX_WAKE` on the word, made after its `seq` store. The
//! slot stays in its helper's set until it fires, and the helper hands the kernel `e as u32`
//! every time it sleeps: if the helper is queued on the word when the wake comes,
//! `futex_waitv` returns the word's index and the slot fires; if it is not queued (it is
//! between two calls, or the slot is so new that the helper has not rebuilt its list: the
//! reactor bumped the control word, so the helper's current call, if any, ends), its next call
//! compares the word with `e as u32` inside the kernel, finds the new `seq`, and fails with
//! `EAGAIN`, and the probe fires the slot. Either way the future's waker is woken after the
//! publish, and `poll` sees the new version. (The kernel compares 32 bits: as for the blocking
//! wait, only 2^31 publishes between two calls could hide a change.)
//!
//! A spin model of this path (futures, reactor, helper, cancellation, the writers' wake),
//! `docs/model/async.pml`, explores every interleaving of two futures, one of which may be
//! dropped, and two publishes; CI verifies it and that it finds each of its seeded bugs.
//!
//! # Soundness
//! The helpers never read or write an object's memory: they hand word addresses to the kernel,
//! which reads each word once when a call starts (with fault handling) and never writes it.
//! Every load of `seq` and store to `sleepers` is made in `poll`, through the future's borrow of
//! the handle, which keeps the mapping alive. A word's mapping can go away while a helper holds
//! its address: a future (and then its handle) can be dropped between the helper's building
//! its list and its call. The kernel then fails the call with `EFAULT` (the probe fires the
//! stale slot), or compares whatever is mapped there now and fails with `EAGAIN` or sleeps on
//! an unrelated futex until the control word or another slot wakes it. No outcome is more than
//! a hint: firing a slot only wakes futures, which re-check with their own live borrow.
//!
//! A future leaked with `mem::forget` keeps its slot while its handle lives. The handle's drop
//! removes every slot on its futex word before it unmaps the header ([`forget_word`]): left
//! behind, such a slot (address, version 0 for a new object) would be joined by a future on
//! another object that the kernel maps at the same address, while the helper sleeps on the
//! old segment's futex (the kernel keys a shared futex by segment, not address), and that
//! future would never be woken.
//!
//! No waker is dropped or woken under the reactor's lock: the last reference to a waker may
//! drop its task, and with it a future or a handle whose drop takes the lock.
//!
//! # Fork
//! The helpers do not survive `fork`: in a child forked after the parent used async waits,
//! `changed()` completes with an error (the child can still use `wait_for_update`, or exec).

#[cfg(not(any(target_os = "linux", target_os = "android")))]
compile_error!("the `async` feature of smobject needs Linux futexes (`futex_waitv`, `FUTEX_WAIT`)");

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use crate::error::{Error, ErrorKind, Result};
use crate::header::SyncWords;
use crate::key::Key;
use crate::sync;
use crate::sys::{self, FutexWaitv, FUTEX_WAITV_MAX};

/// Slots one helper watches with `futex_waitv`: the call's maximum, less its control word.
const SLOTS_PER_HELPER: usize = FUTEX_WAITV_MAX - 1;
/// How often a fallback helper asleep on an object's word checks that its slot is still
/// wanted (which returns a helper stranded by a cancel that raced with its going to sleep).
const FALLBACK_RECHECK: Duration = Duration::from_secs(5);
/// How long a helper pauses after an unexpected error of its wait before it tries again, so
/// that an error that persists cannot make it spin.
const ERROR_PAUSE: Duration = Duration::from_millis(10);

/// A slot's key: the futex word's address and the value its futures expect there.
type SlotKey = (usize, u32);

/// The futures waiting for one futex word to change from one value.
struct Slot {
    /// Tells this slot from a later one with the same key (the helper fires by id).
    id: u64,
    /// The index of the helper watching it.
    helper: usize,
    /// Each waiting future's token and waker.
    waiters: Vec<(u64, Waker)>,
}

/// One helper thread, as the reactor sees it.
struct Helper {
    /// Bumped whenever the helper's slots change, and woken if it sleeps. Leaked: helpers live
    /// as long as the process.
    control: &'static AtomicU32,
    /// Its slots.
    slots: Vec<SlotKey>,
    /// Set when it built its list and is about to sleep (or sleeps); cleared when its call
    /// returned. While clear, it rebuilds its list before sleeping again, so a change of its
    /// slots needs no wake.
    asleep: bool,
    /// Fallback mode: the slot whose word it sleeps on (possibly not its own any more).
    sleeping_on: Option<SlotKey>,
}

struct State {
    slots: HashMap<SlotKey, Slot>,
    helpers: Vec<Helper>,
    next_slot_id: u64,
}

/// The process's async-wait reactor.
struct Reactor {
    state: Mutex<State>,
    /// `futex_waitv` works here: 127 slots per helper. Otherwise one (the fallback).
    waitv: bool,
    /// The process that made it: helper threads do not survive `fork`.
    pid: i32,
}

/// A wake to make once the reactor's lock is released.
enum Kick {
    None,
    /// A helper's control word.
    Control(&'static AtomicU32),
    /// An object's futex word, which a fallback helper sleeps on. Only made from a future's
    /// `poll` or `drop`, whose borrow of the handle keeps the word mapped, or from
    /// [`forget_word`], which a handle calls before it unmaps the word.
    Word(usize),
}

impl Kick {
    fn run(self) {
        match self {
            Kick::None => {}
            Kick::Control(c) => {
                // SAFETY: the control word is a leaked, aligned AtomicU32: live for good.
                unsafe { sys::futex_wake_all(c.as_ptr()) };
            }
            Kick::Word(w) => {
                // SAFETY: `w` is the futex word of the object whose future is being polled or
                // dropped, or whose handle is about to unmap it (see the variant): an aligned
                // u32 in a mapping that is live during this call.
                unsafe { sys::futex_wake_all(w as *const u32) };
            }
        }
    }
}

static REACTOR: OnceLock<Reactor> = OnceLock::new();
/// Distinguishes futures inside a slot.
static NEXT_TOKEN: AtomicU64 = AtomicU64::new(1);

/// The reactor, made on first use (no thread is started until a future waits).
fn reactor() -> Result<&'static Reactor> {
    let r = REACTOR.get_or_init(|| Reactor {
        state: Mutex::new(State {
            slots: HashMap::new(),
            helpers: Vec::new(),
            next_slot_id: 0,
        }),
        waitv: waitv_usable(),
        pid: sys::cached_pid(),
    });
    if r.pid != sys::cached_pid() {
        return Err(Error::new(
            ErrorKind::Os,
            "async waits cannot be used in a process forked from one that used them: its helper threads did not survive the fork",
        )
        .hint("use `wait_for_update` in the child, or exec a new program"));
    }
    Ok(r)
}

/// The reactor if this process made it: none in a process that never awaited, nor in a child
/// forked from one that did (its parent's slots and helpers are not its own).
fn live_reactor() -> Option<&'static Reactor> {
    REACTOR.get().filter(|r| r.pid == sys::cached_pid())
}

/// Whether helpers can use `futex_waitv` here (else the fallback).
fn waitv_usable() -> bool {
    sys::futex_waitv_supported() && !forced_fallback()
}

/// The reliability suite's switch to the fallback (`SMOBJECT_ASYNC_FALLBACK=1`).
#[cfg(feature = "fault-injection")]
fn forced_fallback() -> bool {
    std::env::var_os("SMOBJECT_ASYNC_FALLBACK").is_some_and(|v| v == "1")
}

#[cfg(not(feature = "fault-injection"))]
fn forced_fallback() -> bool {
    false
}

impl Reactor {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Every critical section leaves the state consistent before anything that could panic
        // (a waker's `clone`), so a poisoned lock is still good. No waker is dropped or woken
        // under it: dropping a waker's last reference may drop its task, and with it a
        // `Changed` or a handle, whose drop takes this lock again.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn capacity(&self) -> usize {
        if self.waitv {
            SLOTS_PER_HELPER
        } else {
            1
        }
    }

    /// Whether `token` still waits in slot `key` (it has not fired); if so, stores `waker` as
    /// its waker.
    fn still_armed(&self, key: SlotKey, token: u64, waker: &Waker) -> bool {
        let mut st = self.lock();
        let Some(slot) = st.slots.get_mut(&key) else {
            return false;
        };
        let Some(entry) = slot.waiters.iter_mut().find(|(t, _)| *t == token) else {
            return false;
        };
        let old =
            (!entry.1.will_wake(waker)).then(|| std::mem::replace(&mut entry.1, waker.clone()));
        drop(st);
        drop(old); // outside the lock (see `Reactor::lock`)
        true
    }

    /// Moves `token` from slot `old` (if it is still there) to slot `new`, made if needed and
    /// given to a helper (started if needed).
    fn arm(
        &'static self,
        token: u64,
        old: Option<SlotKey>,
        new: SlotKey,
        waker: &Waker,
    ) -> Result<()> {
        let mut st = self.lock();
        let mut kicks = [Kick::None, Kick::None];
        let mut garbage = Vec::new();
        if let Some(old) = old {
            kicks[0] = self.leave(&mut st, old, token, &mut garbage);
        }
        let joined = if let Some(slot) = st.slots.get_mut(&new) {
            match slot.waiters.iter_mut().find(|(t, _)| *t == token) {
                Some(entry) => garbage.push(std::mem::replace(&mut entry.1, waker.clone())),
                None => slot.waiters.push((token, waker.clone())),
            }
            Ok(())
        } else {
            // On error (no helper could start) the kick of leaving `old` still runs below.
            self.helper_with_room(&mut st).map(|helper| {
                let id = st.next_slot_id;
                st.next_slot_id += 1;
                st.slots.insert(
                    new,
                    Slot {
                        id,
                        helper,
                        waiters: vec![(token, waker.clone())],
                    },
                );
                let h = &mut st.helpers[helper];
                h.slots.push(new);
                kicks[1] = Self::changed(h);
            })
        };
        drop(st);
        drop(garbage);
        for k in kicks {
            k.run();
        }
        joined
    }

    /// Removes `token` from slot `key`, if it is there (a future completed or dropped).
    fn disarm(&self, key: SlotKey, token: u64) {
        let mut st = self.lock();
        let mut garbage = Vec::new();
        let kick = self.leave(&mut st, key, token, &mut garbage);
        drop(st);
        drop(garbage);
        kick.run();
    }

    /// Takes `token` out of slot `key` (its waker into `garbage`, to be dropped once the lock
    /// is released); removes the slot if it was the last, and says which wake tells its helper.
    fn leave(&self, st: &mut State, key: SlotKey, token: u64, garbage: &mut Vec<Waker>) -> Kick {
        let Some(slot) = st.slots.get_mut(&key) else {
            return Kick::None;
        };
        if let Some(i) = slot.waiters.iter().position(|(t, _)| *t == token) {
            garbage.push(slot.waiters.swap_remove(i).1);
        }
        if !slot.waiters.is_empty() {
            return Kick::None;
        }
        // The slot's waiters are none: `token` was the last.
        self.remove_slot(st, key).1
    }

    /// Removes slot `key` (which must exist) from the reactor and its helper; returns its
    /// waiters and the wake that tells the helper.
    fn remove_slot(&self, st: &mut State, key: SlotKey) -> (Vec<(u64, Waker)>, Kick) {
        let Some(slot) = st.slots.remove(&key) else {
            return (Vec::new(), Kick::None);
        };
        let h = &mut st.helpers[slot.helper];
        h.slots.retain(|k| *k != key);
        let kick = if self.waitv {
            Self::changed(h)
        } else if h.sleeping_on == Some(key) {
            Kick::Word(key.0)
        } else {
            Kick::None
        };
        (slot.waiters, kick)
    }

    /// Records that helper `h`'s slots changed: bumps its control word (under the lock), and
    /// says whether it must be woken (only if it built its list and may sleep on it).
    fn changed(h: &Helper) -> Kick {
        // SeqCst, made under the reactor's lock like the helper's load of the value it sleeps
        // on; the kernel's compare at the helper's call, or this wake, ends that sleep.
        h.control.fetch_add(1, Ordering::SeqCst);
        if h.asleep && h.sleeping_on.is_none() {
            Kick::Control(h.control)
        } else {
            Kick::None
        }
    }

    /// A helper with room for one more slot, starting one if none has.
    fn helper_with_room(&'static self, st: &mut State) -> Result<usize> {
        let cap = self.capacity();
        if let Some(i) = st
            .helpers
            .iter()
            .position(|h| h.slots.len() < cap && h.sleeping_on.is_none())
        {
            return Ok(i);
        }
        let me = st.helpers.len();
        let control: &'static AtomicU32 = Box::leak(Box::new(AtomicU32::new(0)));
        std::thread::Builder::new()
            .name(format!("smobject-wait-{me}"))
            .spawn(move || self.run_helper(me, control))
            .map_err(|e| {
                Error::os("starting an async-wait helper thread", &e).hint(
                    "the process is out of threads or memory (`ulimit -u`, `kernel.threads-max`)",
                )
            })?;
        st.helpers.push(Helper {
            control,
            slots: Vec::new(),
            asleep: false,
            sleeping_on: None,
        });
        Ok(me)
    }

    /// Fires slot `key` if it is still the one with `id`: removes it and collects its wakers.
    fn fire(st: &mut State, key: SlotKey, id: u64, wake: &mut Vec<Waker>) {
        if st.slots.get(&key).is_none_or(|s| s.id != id) {
            return;
        }
        if let Some(slot) = st.slots.remove(&key) {
            st.helpers[slot.helper].slots.retain(|k| *k != key);
            wake.extend(slot.waiters.into_iter().map(|(_, w)| w));
        }
    }

    /// Helper thread `me`'s loop: never returns.
    fn run_helper(&'static self, me: usize, control: &'static AtomicU32) {
        if self.waitv {
            self.run_waitv(me, control);
        } else {
            self.run_fallback(me, control);
        }
    }

    fn run_waitv(&self, me: usize, control: &'static AtomicU32) -> ! {
        let mut list: Vec<FutexWaitv> = Vec::with_capacity(FUTEX_WAITV_MAX);
        let mut built: Vec<(SlotKey, u64)> = Vec::with_capacity(SLOTS_PER_HELPER);
        let mut changed: Vec<(SlotKey, u64)> = Vec::new();
        let mut wake: Vec<Waker> = Vec::new();
        loop {
            {
                let mut st = self.lock();
                list.clear();
                built.clear();
                // Relaxed: every bump is made under the lock we hold.
                let gen = control.load(Ordering::Relaxed);
                list.push(FutexWaitv::new(control.as_ptr(), gen));
                for key in &st.helpers[me].slots {
                    let id = st.slots.get(key).map_or(u64::MAX, |s| s.id);
                    list.push(FutexWaitv::new(key.0 as *const u32, key.1));
                    built.push((*key, id));
                }
                st.helpers[me].asleep = true;
            }
            // SAFETY: the control word is leaked (live for good); every slot's word is the
            // aligned futex word of a mapping that was live when its future made the slot. It
            // may have been unmapped since (module docs, Soundness): the kernel reads each word
            // once with fault handling and never writes it, and every outcome is a hint.
            let outcome = unsafe { sys::futex_waitv(&list) };
            let mut st = self.lock();
            st.helpers[me].asleep = false;
            match outcome {
                Ok(0) => {} // the control word: the slots changed
                Ok(i) => {
                    // Slots on the same word (other expected values) are woken by the same wake.
                    let word = built.get(i - 1).map_or(0, |(k, _)| k.0);
                    for &(key, id) in built.iter().filter(|(k, _)| k.0 == word) {
                        Self::fire(&mut st, key, id, &mut wake);
                    }
                }
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => {}
                Err(e) if matches!(e.raw_os_error(), Some(libc::EAGAIN | libc::EFAULT)) => {
                    // Which words changed (or vanished)? Probe each alone, without the lock.
                    drop(st);
                    changed.clear();
                    for &(key, id) in &built {
                        // SAFETY: as for the call above; a zero time-out makes it a compare.
                        let r = unsafe {
                            sys::futex_wait_outcome(
                                key.0 as *const u32,
                                key.1,
                                Some(Duration::ZERO),
                            )
                        };
                        if !matches!(r, Err(ref e) if e.raw_os_error() == Some(libc::ETIMEDOUT)) {
                            changed.push((key, id));
                        }
                    }
                    st = self.lock();
                    for &(key, id) in &changed {
                        Self::fire(&mut st, key, id, &mut wake);
                    }
                }
                Err(_) => {
                    // Unexpected (ENOMEM): let every future re-check, and pause.
                    for &(key, id) in &built {
                        Self::fire(&mut st, key, id, &mut wake);
                    }
                    drop(st);
                    std::thread::sleep(ERROR_PAUSE);
                    st = self.lock();
                }
            }
            drop(st);
            for w in wake.drain(..) {
                w.wake();
            }
        }
    }

    fn run_fallback(&self, me: usize, control: &'static AtomicU32) -> ! {
        let mut wake: Vec<Waker> = Vec::new();
        loop {
            let (target, gen) = {
                let mut st = self.lock();
                let target = st.helpers[me]
                    .slots
                    .first()
                    .map(|k| (*k, st.slots.get(k).map_or(u64::MAX, |s| s.id)));
                let h = &mut st.helpers[me];
                h.sleeping_on = target.map(|(k, _)| k);
                h.asleep = true;
                // Relaxed: every bump is made under the lock we hold.
                (target, control.load(Ordering::Relaxed))
            };
            let outcome = match target {
                None => {
                    // SAFETY: the control word is leaked, aligned and live for good.
                    unsafe { sys::futex_wait_outcome(control.as_ptr(), gen, None) }
                }
                Some((key, _)) => {
                    // SAFETY: as in `run_waitv`: an aligned futex word, possibly unmapped since;
                    // the kernel only reads it, with fault handling.
                    unsafe {
                        sys::futex_wait_outcome(key.0 as *const u32, key.1, Some(FALLBACK_RECHECK))
                    }
                }
            };
            let mut st = self.lock();
            let h = &mut st.helpers[me];
            h.asleep = false;
            h.sleeping_on = None;
            if let Some((key, id)) = target {
                match outcome {
                    Err(e) if matches!(e.raw_os_error(), Some(libc::ETIMEDOUT | libc::EINTR)) => {}
                    Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => {
                        Self::fire(&mut st, key, id, &mut wake);
                    }
                    Ok(()) => Self::fire(&mut st, key, id, &mut wake),
                    Err(_) => {
                        // EFAULT (the word is gone) or unexpected: let the futures re-check.
                        Self::fire(&mut st, key, id, &mut wake);
                        drop(st);
                        std::thread::sleep(ERROR_PAUSE);
                        st = self.lock();
                    }
                }
            }
            drop(st);
            for w in wake.drain(..) {
                w.wake();
            }
        }
    }
}

/// The future of `changed`: completes with the version once it is greater than `seen`.
///
/// Unpin (no self-reference), `Send` (it holds shared references to atomics and the key).
pub(crate) struct Changed<'a> {
    sync: &'a SyncWords,
    key: &'a Key,
    seen: u64,
    token: u64,
    /// The slot this future waits in, and the `seq` it registered at.
    armed: Option<(SlotKey, u64)>,
}

impl<'a> Changed<'a> {
    pub(crate) fn new(sync: &'a SyncWords, key: &'a Key, seen: u64) -> Changed<'a> {
        Changed {
            sync,
            key,
            seen,
            // Relaxed: only uniqueness matters.
            token: NEXT_TOKEN.fetch_add(1, Ordering::Relaxed),
            armed: None,
        }
    }

    fn disarm(&mut self) {
        // (A future carried into a forked child has no helper to tell.)
        if let (Some((key, _)), Some(r)) = (self.armed.take(), live_reactor()) {
            r.disarm(key, self.token);
        }
    }
}

impl Future for Changed<'_> {
    type Output = Result<u64>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<u64>> {
        let this = self.get_mut();
        loop {
            // SeqCst: as the blocking wait loads it (see `wake_sleepers`).
            let seq = this.sync.seq.load(Ordering::SeqCst);
            if seq / 2 > this.seen {
                this.disarm();
                return Poll::Ready(Ok(seq / 2));
            }
            let reactor = match reactor() {
                Ok(r) => r,
                Err(e) => return Poll::Ready(Err(e.with_key(this.key))),
            };
            // Still waiting in a slot that has not fired, for this very `seq`: the registration
            // in `sleepers` holds too (only a publish past `seq` clears it).
            if let Some((key, at)) = this.armed {
                if at == seq && reactor.still_armed(key, this.token, cx.waker()) {
                    return Poll::Pending;
                }
            }
            if !sync::register_sleeper(this.sync, seq) {
                continue; // a publish came in between: re-check
            }
            let key = (this.sync.futex_word() as usize, SyncWords::futex_value(seq));
            let old = this.armed.map(|(k, _)| k);
            if let Err(e) = reactor.arm(this.token, old, key, cx.waker()) {
                this.disarm();
                return Poll::Ready(Err(e.with_key(this.key)));
            }
            this.armed = Some((key, seq));
            crate::fault::point("async:armed");
            return Poll::Pending;
        }
    }
}

impl Drop for Changed<'_> {
    /// Cancels: takes the waker out of its slot (and the slot out of its helper's set when it
    /// was the last). Never panics.
    fn drop(&mut self) {
        self.disarm();
    }
}

/// Successive versions of one object, for a loop of `updates.next().await`: from
/// [`Shared::updates`](crate::Shared::updates) or
/// [`DynObject::updates`](crate::DynObject::updates).
///
/// Each `next()` completes with the object's current version once it is greater than the one
/// the previous call returned (at first, the version when `updates()` was called): after
/// three writes since, that is the third one's. Versions written in between are skipped: an
/// object holds a state, not a queue, and the value read after `next()` is at least that
/// version's.
///
/// The inherent `next()` returns `Result<u64>`, and it takes precedence over
/// `StreamExt::next` (which returns `Option<Result<u64>>`) in method calls; to use the
/// stream's, call it as `StreamExt::next(&mut updates)`.
///
/// With the cargo feature `stream`, `Updates` is also a `futures_core::Stream` of
/// `Result<u64>` (and a `FusedStream`): each item is what `next()` would return. The stream
/// never ends on its own; after an error (the process was forked, or a helper thread could not
/// start) it yields that error and then ends, so that a loop which skips errors cannot spin.
/// To retry, make a new one with `updates()`; `next()` and `poll_update` never end.
pub struct Updates<'a> {
    sync: &'a SyncWords,
    key: &'a Key,
    seen: u64,
    /// The wait that [`poll_update`](Self::poll_update) has in progress, kept between polls.
    polling: Option<Changed<'a>>,
    /// The `Stream` yielded an error and has ended.
    #[cfg(feature = "stream")]
    ended: bool,
}

impl<'a> Updates<'a> {
    pub(crate) fn new(sync: &'a SyncWords, key: &'a Key) -> Updates<'a> {
        // Acquire: pairs with the publish's store of `seq`, as `version()`.
        let seen = sync.seq.load(Ordering::Acquire) / 2;
        Updates {
            sync,
            key,
            seen,
            polling: None,
            #[cfg(feature = "stream")]
            ended: false,
        }
    }

    /// The last version returned (or the version when the stream was made).
    #[must_use]
    pub fn seen(&self) -> u64 {
        self.seen
    }

    /// Waits for a version greater than [`seen`](Self::seen) and returns it. Cancel-safe: a
    /// dropped `next()` changes nothing, and the next call waits for the same thing.
    ///
    /// # Errors
    /// As [`Shared::changed`](crate::Shared::changed).
    // The name streams use (`StreamExt::next`); an `Iterator` it cannot be: it is async.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> impl Future<Output = Result<u64>> + Send + Unpin + '_ {
        // A wait left by `poll_update` waits for the same thing: this future replaces it.
        self.polling = None;
        Next {
            inner: Changed::new(self.sync, self.key, self.seen),
            seen: &mut self.seen,
        }
    }

    /// `next()` for code that polls by hand (a `Stream` of its own, a hand-written future):
    /// `Ready` with the current version once it is greater than [`seen`](Self::seen), which it records,
    /// or `Pending` after arranging for `cx`'s waker to be woken. The wait in progress is kept
    /// in `self` between calls, and dropping `self` cancels it, as dropping a `next()` future
    /// does.
    ///
    /// # Errors
    /// As [`Shared::changed`](crate::Shared::changed).
    pub fn poll_update(&mut self, cx: &mut Context<'_>) -> Poll<Result<u64>> {
        let (sync, key, seen) = (self.sync, self.key, self.seen);
        let wait = self
            .polling
            .get_or_insert_with(|| Changed::new(sync, key, seen));
        let r = Pin::new(wait).poll(cx);
        if r.is_ready() {
            // Done: the completed wait has disarmed itself.
            self.polling = None;
        }
        if let Poll::Ready(Ok(v)) = r {
            self.seen = v;
        }
        r
    }
}

#[cfg(feature = "stream")]
impl futures_core::Stream for Updates<'_> {
    type Item = Result<u64>;

    /// [`Updates::poll_update`] as a stream: never ends on its own; ends after yielding an
    /// error.
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<u64>>> {
        let this = self.get_mut();
        if this.ended {
            return Poll::Ready(None);
        }
        let r = this.poll_update(cx);
        if let Poll::Ready(Err(_)) = r {
            this.ended = true;
        }
        r.map(Some)
    }
}

#[cfg(feature = "stream")]
impl futures_core::FusedStream for Updates<'_> {
    fn is_terminated(&self) -> bool {
        self.ended
    }
}

impl std::fmt::Debug for Updates<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Updates")
            .field("key", self.key)
            .field("seen", &self.seen)
            .field("waiting", &self.polling.is_some())
            .finish_non_exhaustive()
    }
}

/// The future of [`Updates::next`]: records the version it completes with.
struct Next<'a> {
    inner: Changed<'a>,
    seen: &'a mut u64,
}

impl Future for Next<'_> {
    type Output = Result<u64>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<u64>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll(cx);
        if let Poll::Ready(Ok(v)) = r {
            *this.seen = v;
        }
        r
    }
}

/// What the process's async waits use at this moment: see [`async_stats`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct AsyncStats {
    /// Helper threads started (they are never stopped; an idle one sleeps on its own futex).
    pub helpers: usize,
    /// Futex words the helpers watch: one per object and version awaited, however many futures
    /// await it.
    pub watched: usize,
    /// Futures waiting (registered with a helper).
    pub waiting: usize,
    /// Whether the helpers wait with `futex_waitv` (Linux 5.16+): up to 127 words per helper.
    /// `false`: the fallback, one helper per watched word.
    pub futex_waitv: bool,
}

/// Called by a handle that is about to unmap the object's header, whose futex word is at
/// `word`: removes the slots on that word. Only leaked futures (`mem::forget`) can still wait
/// in them, since a live future borrows the handle. Left in place, such a slot would be
/// joined by a future on another object mapped later at the same address, with the same
/// expected value (a new object starts at 0), and that future would never be woken: its
/// helper sleeps on the old mapping's futex, which the kernel keys by the segment, not by the
/// address. The leaked futures' wakers are dropped, not woken: nothing polls those futures.
pub(crate) fn forget_word(word: *const u32) {
    let Some(r) = live_reactor() else {
        return; // nothing ever awaited here: nothing to forget, and no lock to take
    };
    let mut st = r.lock();
    let keys: Vec<SlotKey> = st
        .slots
        .keys()
        .filter(|k| k.0 == word as usize)
        .copied()
        .collect();
    let mut kicks = Vec::with_capacity(keys.len());
    let mut leaked = Vec::new();
    for key in keys {
        let (waiters, kick) = r.remove_slot(&mut st, key);
        leaked.extend(waiters);
        kicks.push(kick);
    }
    drop(st);
    for k in kicks {
        k.run();
    }
    // Outside the lock: a waker's drop may run arbitrary code.
    drop(leaked);
}

/// What the process's async waits ([`Shared::changed`](crate::Shared::changed)) use at this
/// moment: helper threads, watched futex words, waiting futures. For monitoring and tests: a
/// dropped future is no longer counted, and a word nobody awaits is no longer watched.
#[must_use]
pub fn async_stats() -> AsyncStats {
    // Never makes the reactor: a process that only looked must keep async waits usable in a
    // child it forks.
    let Some(r) = live_reactor() else {
        return AsyncStats {
            helpers: 0,
            watched: 0,
            waiting: 0,
            // What a reactor made now would use; none can be in a forked child.
            futex_waitv: REACTOR.get().is_none() && waitv_usable(),
        };
    };
    let st = r.lock();
    AsyncStats {
        helpers: st.helpers.len(),
        watched: st.slots.len(),
        waiting: st.slots.values().map(|s| s.waiters.len()).sum(),
        futex_waitv: r.waitv,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::task::Wake;

    #[test]
    fn a_futex_waitv_entry_is_the_kernels_struct() {
        // `struct futex_waitv { __u64 val; __u64 uaddr; __u32 flags; __u32 __reserved; }`
        assert_eq!(size_of::<FutexWaitv>(), 24);
        assert_eq!(align_of::<FutexWaitv>(), 8);
    }

    struct Unpark(std::thread::Thread);

    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }

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

    /// A writer's publish as `Region::publish` ends it: the SeqCst `seq` store, then a wake if
    /// a waiter registered (what `wake_sleepers` does, clearing included).
    fn publish(s: &SyncWords) {
        let new = s.seq.load(Ordering::Relaxed) + 2;
        s.seq.store(new, Ordering::SeqCst);
        let reg = s.sleepers.load(Ordering::SeqCst);
        if reg != 0 {
            if reg - 1 < new {
                let _ = s
                    .sleepers
                    .compare_exchange(reg, 0, Ordering::SeqCst, Ordering::Relaxed);
            }
            // SAFETY: the word is the low half of `seq`, a live aligned atomic.
            unsafe { sys::futex_wake_all(s.futex_word()) };
        }
    }

    /// The tests of this module one at a time: they check the process-wide counts.
    fn serial() -> std::sync::MutexGuard<'static, ()> {
        static LOCK: Mutex<()> = Mutex::new(());
        LOCK.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sync words on the heap, for tests without shared memory.
    fn heap_words() -> Arc<SyncWords> {
        // SAFETY: every field of `SyncWords` is an integer atomic (padding included), for which
        // all-zero bytes are a valid value.
        Arc::from(unsafe { Box::<SyncWords>::new_zeroed().assume_init() })
    }

    /// A waker whose last reference takes the reactor's lock when it goes, as dropping a task
    /// that owns a `Changed` or a handle does.
    struct LocksOnDrop;

    impl Wake for LocksOnDrop {
        fn wake(self: Arc<Self>) {}
    }

    impl Drop for LocksOnDrop {
        fn drop(&mut self) {
            let _ = async_stats();
        }
    }

    #[test]
    fn a_replaced_or_removed_waker_is_dropped_outside_the_reactors_lock() {
        let _one_at_a_time = serial();
        let words = heap_words();
        let (done, finished) = std::sync::mpsc::channel();
        // In a thread: a waker dropped under the lock deadlocks it, and the test fails.
        std::thread::spawn(move || {
            let key = Key::from_path("/tmp", b'A').unwrap();
            let mut f = Changed::new(&words, &key, 0);
            let poll = |f: &mut Changed<'_>, w: &Waker| {
                Pin::new(f).poll(&mut Context::from_waker(w)).is_pending()
            };
            let locks = Waker::from(Arc::new(LocksOnDrop));
            assert!(poll(&mut f, &locks));
            drop(locks); // the reactor holds its last reference
            assert!(poll(&mut f, Waker::noop())); // replaces it (`still_armed`)
            let locks = Waker::from(Arc::new(LocksOnDrop));
            assert!(poll(&mut f, &locks));
            drop(locks);
            drop(f); // takes it out (`leave`)
            done.send(async_stats().waiting).unwrap();
        });
        let waiting = finished.recv_timeout(Duration::from_secs(10));
        assert_eq!(
            waiting,
            Ok(0),
            "a waker was dropped under the reactor's lock (deadlock)"
        );
    }

    /// The protocol without shared memory: sync words on the heap, a writer thread answering
    /// each version with the next as fast as it can, so that its publish often lands between
    /// the future's registration and its helper's sleep. Then a dropped future leaves nothing.
    #[test]
    fn ping_pong_with_a_thread_loses_no_wake_up_and_a_dropped_future_leaves_nothing() {
        const ROUNDS: u64 = 5_000;
        let _one_at_a_time = serial();
        let words = heap_words();
        let key = Key::from_path("/tmp", b'A').unwrap();
        let writer = {
            let words = Arc::clone(&words);
            std::thread::spawn(move || {
                // Odd versions are the writer's: it answers version 2k + 1 with 2k + 2.
                for k in 0..ROUNDS {
                    while words.seq.load(Ordering::SeqCst) / 2 < 2 * k + 1 {
                        std::hint::spin_loop();
                    }
                    publish(&words);
                }
            })
        };
        for k in 0..ROUNDS {
            publish(&words);
            let v = block_on(Changed::new(&words, &key, 2 * k + 1)).unwrap();
            assert_eq!(v, 2 * k + 2);
        }
        writer.join().unwrap();
        let mut f = Changed::new(&words, &key, 2 * ROUNDS);
        let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
        assert!(Pin::new(&mut f)
            .poll(&mut Context::from_waker(&waker))
            .is_pending());
        assert_eq!(async_stats().waiting, 1);
        drop(f);
        let s = async_stats();
        assert_eq!((s.watched, s.waiting), (0, 0));
        // The registration stays until the next publish, which clears it.
        assert_ne!(words.sleepers.load(Ordering::SeqCst), 0);
        publish(&words);
        assert_eq!(words.sleepers.load(Ordering::SeqCst), 0);
    }
}
