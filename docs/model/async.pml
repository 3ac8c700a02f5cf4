/*
 * smobject's async waits (cargo feature `async`, smobject/src/asyncwait.rs), futex_waitv path:
 * `Changed::poll` and its `Drop`, the reactor's `still_armed`, `arm`, `disarm`, `leave`,
 * `changed` and `fire`, the helper thread's loop `run_waitv`, with `sync::register_sleeper` and
 * the writers' `Region::publish` + `wake_sleepers` (smobject/src/sync.rs, copied from wait.pml).
 *
 * Processes: a Writer (PUBLISHES publishes); FUTURES futures on one object, each with the
 * executor task that polls it (future i waits past version i mod WRITERS*PUBLISHES; the last
 * CANCELS of them may be dropped at any Pending); the Helper, started by the first `arm` (as
 * `helper_with_room` starts it); init, which checks the end. A Waker is a flag per future:
 * `wake()` sets it, the executor clears it and polls again. Up to SPURIOUS polls come without
 * a wake (an executor polling every branch of a join!/select!): they reach `still_armed`'s
 * Pending and an `arm` that leaves a live slot (two control bumps in one critical section).
 *
 * Why sequential consistency is exact. Every operation on `seq` and `sleepers` is SeqCst, as in
 * wait.pml. The reactor's state (slot map, helper's slot list, `asleep`, slot ids) is only
 * touched under its std Mutex: data-race free, so SC too. The control word is bumped (SeqCst)
 * and loaded by the helper (Relaxed) under that mutex, so the load sees every earlier bump; its
 * only other reader is the kernel. The kernel orders a futex call's compare-and-queue against
 * FUTEX_WAKE with the hash-bucket lock and full barriers (the futex contract: a wake made after
 * a store finds the waiter queued, or the waiter's compare saw the store). The kernel's read of
 * `seq` is no Rust atomic, but it follows the future's SeqCst re-load in happens-before (arm's
 * unlock, the helper's lock at its build, its call), so coherence makes it read that value or
 * a newer one, which is what SC gives.
 *
 * Abstractions (exact for the runs below, or giving the model more behaviours, never fewer):
 * - Control word: `dirty` stands for `control != gen`. Every bump and the helper's load of
 *   `gen` are made under the mutex, so the value differs from `gen` iff a bump came after the
 *   load (up to 2^32 bumps, which no run makes): a bump sets `dirty`, the load clears it, the
 *   kernel's compare reads it. No counter, so nothing grows and no modulus can hide a bump.
 * - Slot ids: `fire(key, id)` fires only the slot built; ids only grow, so "the slot at `key`
 *   still has the id built" is "no slot at `key` was removed since the build". `bvalid` is that
 *   set: loaded with the slot map at the build, cleared by each removal (`leave`, `fire`).
 * - Slots: one object, one futex word, so a slot is its expected value, a `seq` value (the low
 *   32 bits are all of it here): slot k is `waiters[k]`, a set of futures (their wakers), and
 *   exists iff `slotset` has k (a slot never stays empty). One helper (127 slots per helper),
 *   whose `slots` are the map's keys; futex_waitv returns 0 (control word) or 1 (the word).
 * - futex_waitv is one step: EAGAIN if the control word changed or a slot's expected value is
 *   not `seq` (`built & ~BIT(seq)`), else queued on every word; FUTEX_WAKE on a word it waits
 *   on dequeues it with that index. The kernel compares and queues word by word: a wake between
 *   two compares either precedes its word's compare (which then sees the new value: as here) or
 *   wakes a queued word, and the call returns that index even if a later compare fails: index 1
 *   fires every slot built (more than the probe), index 0 makes the helper rebuild and call
 *   again, whose compare fails the same way (`seq` only grows). One more turn, no lost wake.
 * - The EAGAIN probe compares one slot per step, in key order (the code: `slots` order). The
 *   order cannot matter: keys are values `seq` had, `seq` only grows, so every key but the
 *   largest already differs. A zero-time-out FUTEX_WAIT woken during its wait (Ok: fires) is
 *   left out: it only adds a wake.
 * - Critical sections: taking and releasing the mutex are steps of their own, the body one
 *   d_step. Nothing outside the mutex reads what a body changes except the kernel reading the
 *   control word, and a body's bumps (two in `arm`: leave the old slot, make the new one) are
 *   one change for that compare, so each body is a single visible action and making it one step
 *   loses no behaviour (Lipton's reduction). -DCOARSE_LOCK makes the whole section one step.
 * - The helper's `w.wake()` calls are one step: each sets its own future's flag, which only
 *   that future's executor reads, so they commute with everything between them.
 * - Left out: EINTR (the helper loops: as index 0), EFAULT (no object is unmapped here),
 *   unexpected errors (every built slot fires, then a pause), the fallback without
 *   futex_waitv, several helpers, fork, `arm` failing to start a helper, the blocking waiters
 *   of wait.pml (they share the writers' wake, which the helper changes nothing of), and
 *   wakes of the object's word that are not publishes (another process's fallback helper
 *   cancelling, `Kick::Word`): such a wake fires a slot with `seq` unchanged, and its futures
 *   register again at the same key (a review run of a variant with one such wake: 76.8 M
 *   states, 0 errors).
 *
 * Properties:
 * 1. No lost wake-up: once the writers are done, every future not dropped has completed with
 *    a version > the one it had seen: a future only ends at `ready` after that check, and
 *    one waiting for a wake that nobody will give is an invalid end state, since its wait has
 *    no end label; the helper asleep
 *    (`end_sleep`) or never started (`end_unstarted`) is a valid one.
 * 2. Cancellation leaves nothing in the reactor: after a drop no slot holds the future's
 *    waker (asserted in Future); when every future has gone the slot map is empty, and the
 *    helper, once asleep, waits on its control word only (asserted in init).
 * 3. Writers pay nothing new: the writer is wait.pml's, so it wakes by the blocking wait's
 *    rule (a FUTEX_WAKE when `sleepers` is set); once every future has gone, the first publish
 *    clears what registration is left and the next one makes no FUTEX_WAKE (asserted in init).
 * Also, with -DNP and `./pan -l`: no non-progress cycle, with no progress label at all: every
 *    run ends, so the helper never spins (e.g. on EAGAIN) and no future is polled forever.
 *
 * In CI, tests/tests/model.rs runs the default search, the -DFOREVER configuration, the
 * liveness search below, and each seeded bug (about two and a half minutes, with wait.pml).
 * Run by hand (spin 6.5; scratch files in a temporary directory):
 *   spin -a async.pml && cc -O2 -DSAFETY -o pan pan.c && ./pan -m100000
 *     -> errors: 0; 25.2 million states, 27 s, 2.1 GB (the defaults: 1 writer, 2 publishes, 2
 *        futures waiting past versions 0 and 1, the second one droppable, 1 spurious poll).
 * Other configurations (`spin -D... -a`; -DCOLLAPSE compiles pan with state compression;
 * -DMEMLIM=4000 caps it at 4 GB):
 *   -DFOREVER (the last future waits past the last version: it is dropped at a Pending or once
 *     the writers are done, so drops also come after the last publish)   32.0 M states, 36 s, 2.6 GB
 *   -DCOARSE_LOCK                                                        13.0 M states, 12 s, 1.1 GB
 *   -DCANCELS=2                                        -DCOLLAPSE        35.9 M states, 55 s, 2.1 GB
 *   -DPUBLISHES=3 -DSPURIOUS=0                         -DCOLLAPSE         7.9 M states,  8 s, 0.4 GB
 *   -DWRITERS=2 -DPUBLISHES=1 -DSPURIOUS=0             -DCOLLAPSE        14.0 M states, 17 s, 0.7 GB
 *   -DCOARSE_LOCK -DPUBLISHES=3                        -DCOLLAPSE        24.0 M states, 29 s, 1.1 GB
 *   -DCOARSE_LOCK -DSPURIOUS=2                         -DCOLLAPSE        33.0 M states, 47 s, 1.4 GB
 *   -DFUTURES=3 -DSPURIOUS=0 -DCOARSE_LOCK   -DCOLLAPSE -DMEMLIM=16000   116 M states, 204 s, 5.2 GB
 *   the defaults, compiled -DNP -DCOLLAPSE, run ./pan -l -m100000         50.4 M states, 109 s, 3.1 GB
 *   all with errors: 0. Three futures with the fine-grained lock pass 4 GB (stopped at the cap
 *   after 80 M states, no error found; measured before a no-op assertion was taken out, which
 *   cut the default run from 30.0 M to 25.2 M states: the other figures are from after).
 *
 * Seeded bugs (`spin -DBUG_... -a async.pml`, then as above):
 * - BUG_NO_REGISTER (no `fetch_max` of `sleepers`: writers never wake), BUG_NO_CTRL_BUMP (a new
 *   slot neither bumps nor wakes the control word), BUG_NO_CTRL_KICK (bumps, never wakes),
 *   BUG_LATE_GEN (the helper loads the control word after releasing the lock: a bump between
 *   its build and that load is missed), BUG_STALE_EXPECTED (the helper hands the kernel the
 *   value the word holds at the call, not the slot's): each an invalid end state, a future
 *   Pending for good, in under 5,000 states.
 * - BUG_CANCEL_KEEPS_SLOT (drop leaves its waker in the slot): the assertion after the drop.
 * - BUG_LEAVE_NO_BUMP (a slot's removal does not bump the control word): the helper keeps
 *   watching a word nobody awaits, init's `!hobj` assertion. It needs a drop after the last
 *   publish while the dropped future's slot is watched, so this define turns FOREVER on.
 * - BUG_NO_PROBE (EAGAIN taken for a change of the control word: no probe, no fire): not an
 *   invalid end state, since the helper retries for ever (EAGAIN each time) and so never
 *   blocks; the safety run reports 0 errors. The liveness search (`cc -DNP -DCOLLAPSE ...`,
 *   `./pan -l`) finds the cycle.
 * - BUG_NO_RECHECK (no SeqCst re-load of `seq` after the registration): NOT found, and cannot
 *   be under SC: the future then arms a slot at a stale `seq`, and the kernel's compare in the
 *   helper's next futex_waitv (after the bump for the new slot) sees the new value, fails with
 *   EAGAIN, and the probe fires the slot. As wait.pml says of FUTEX_WAIT, the re-load is what
 *   makes the argument hold in the Rust memory model, where the kernel's read is not a Rust
 *   atomic; here it also saves a slot and a helper round trip.
 */

#ifndef WRITERS
#define WRITERS 1
#endif
#ifndef PUBLISHES
#define PUBLISHES 2          /* by each writer */
#endif
#ifndef FUTURES
#define FUTURES 2            /* future i waits past version i mod (WRITERS * PUBLISHES) */
#endif
#ifndef CANCELS
#define CANCELS 1            /* the last CANCELS futures may be dropped while Pending */
#endif
#ifndef SPURIOUS
#define SPURIOUS 1           /* polls without a wake (join!, select!), all futures together */
#endif

#ifdef BUG_LEAVE_NO_BUMP
#define FOREVER              /* the bug shows when a future is dropped after the last publish */
#endif

#define NKEYS (2 * WRITERS * PUBLISHES + 1)   /* slot keys: the values `seq` takes */
#define NONE 255                              /* `armed == None` */
#define BIT(k) (1 << (k))
#define EAGAIN 2                              /* futex_waitv's outcomes: 0 (the control word), */
                                              /* 1 (the object's word), EAGAIN */

/* --- the object's header and the writers (as in wait.pml) --- */
byte seq = 0;                /* even at rest; version = seq / 2 */
byte sleepers = 0;           /* 0, or 1 + the highest seq a waiter registered at */
bool wlock = false;          /* the writer mutex */
byte wakes = 0;              /* FUTEX_WAKE calls made by writers (for the cost check) */
byte wdone = 0;              /* writers finished */
byte fdone = 0;              /* futures completed or dropped */

/* --- the reactor: `Reactor::state`, under its mutex `rl` --- */
bool rl = false;             /* the reactor's std Mutex */
byte slotset = 0;            /* keys of `State::slots` (= helper 0's `slots`: one helper) */
byte waiters[NKEYS];         /* per key: the futures whose waker that slot holds (bitmask) */
bool asleep = false;         /* `Helper::asleep` */
bool dirty = false;          /* the control word differs from the value the helper last loaded */
byte bvalid = 0;             /* keys of the helper's `built` list whose slot still has the id */
                             /* it had when built (see the header) */
bool hstarted = false;       /* the helper thread was started (first `arm`) */

/* --- the kernel's view of the helper's futex_waitv call --- */
bool hq = false;             /* queued on its words */
bool hobj = false;           /* ... and its list has the object's word (it has slots) */
byte hret = 0;               /* the index its wake-up returns: 0 control word, 1 object word */

#ifdef BUG_LATE_GEN
#define LOAD_GEN skip
#else
#define LOAD_GEN dirty = false
#endif
#ifdef BUG_NO_CTRL_BUMP
#define NEW_SLOT_CHANGED(kicks) skip
#else
#define NEW_SLOT_CHANGED(kicks) changed(kicks)
#endif

/* --- the executor --- */
bool woken[FUTURES];         /* Waker::wake was called: the executor polls the future again */
byte spurious = 0;           /* polls made without a wake, so far (all futures) */

/* A reactor critical section: the lock taken and released as steps of their own, the body (only
   data under the lock, and the control word: see the header) one step; -DCOARSE_LOCK: one step
   for all. */
#ifdef COARSE_LOCK
#define CS(body) atomic { body }
#else
#define CS(body) atomic { !rl -> rl = true }; d_step { body }; rl = false
#endif

inline futex_wake_object() {            /* FUTEX_WAKE(all) on the object's word */
  atomic {
    if
    :: hq && hobj -> hq = false; hret = 1
    :: else -> skip
    fi;
    wakes++
  }
}

inline futex_wake_control() {           /* Kick::Control: FUTEX_WAKE(all) on the control word */
  atomic {
    if
    :: hq -> hq = false; hret = 0
    :: else -> skip
    fi
  }
}

/* Region::publish from the odd store on, then wake_sleepers(published); under the writer lock.
   As in wait.pml. */
inline publish(s, reg) {
  atomic { !wlock -> wlock = true };
  s = seq;
  seq = s + 1;               /* Release; the data stores follow */
  seq = s + 2;               /* SeqCst */
  reg = sleepers;            /* SeqCst */
  if
  :: reg == 0 -> skip
  :: else ->
     if
     :: reg - 1 < s + 2 ->
        atomic { if :: sleepers == reg -> sleepers = 0 :: else -> skip fi }   /* CAS */
     :: else -> skip
     fi;
     futex_wake_object()
  fi;
  wlock = false;
  s = 0; reg = 0
}

proctype Writer() {
  byte n = 0, s, reg;
  do
  :: n < PUBLISHES -> publish(s, reg); n++
  :: else -> break
  od;
  atomic { wdone++; n = 0 }
}

/* Reactor::changed: bump the control word (under the lock); a wake is due if the helper built
   its list (it may sleep on it). Inside a critical section's step. */
inline changed(kicks) {
  dirty = true;
  if
  :: asleep -> kicks++
  :: else -> skip
  fi
}

/* Reactor::leave: take future `me` out of slot `key` (if there); remove the slot if it was the
   last, and tell the helper. Inside a critical section's step. */
inline leave(me, key, kicks) {
  if
  :: key != NONE && (slotset & BIT(key)) ->
     waiters[key] = waiters[key] & ~BIT(me);
     if
     :: waiters[key] == 0 ->
        slotset = slotset & ~BIT(key);
        bvalid = bvalid & ~BIT(key);
#ifndef BUG_LEAVE_NO_BUMP
        changed(kicks)
#endif
     :: else -> skip
     fi
  :: else -> skip
  fi
}

/* Kick::run for each kick collected, after the lock is released. */
inline run_kicks(kicks) {
  do
  :: kicks > 0 ->
#ifndef BUG_NO_CTRL_KICK
     futex_wake_control();
#endif
     kicks--
  :: else -> break
  od
}

/* Changed::disarm -> Reactor::disarm */
inline disarm(me, akey, kicks) {
  if
  :: akey != NONE ->
     CS(leave(me, akey, kicks); akey = NONE);
     run_kicks(kicks)
  :: else -> skip
  fi
}

/* A future of `changed(seen)` and the executor task that polls it. */
proctype Future(byte me; byte seen) {
  byte sq;                   /* `seq` loaded by this poll */
  byte akey = NONE;          /* `armed`: the slot it waits in (its key is the `seq` it saw) */
  byte kicks;                /* Kick::Control wakes to make once the lock is released */
  bool ok;

poll:                        /* Changed::poll */
  sq = seq;                                                  /* SeqCst */
  if
  :: sq / 2 > seen ->
     disarm(me, akey, kicks);                                /* Ready(version): sq / 2 > seen */
     goto ready
  :: else -> skip
  fi;
  if
  :: akey == sq ->                                           /* Reactor::still_armed */
     CS(ok = (slotset & BIT(sq)) && (waiters[sq] & BIT(me)));
     if
     :: ok -> ok = false; goto pending
     :: else -> skip
     fi
  :: else -> skip
  fi;
  /* sync::register_sleeper */
#ifndef BUG_NO_REGISTER
  atomic { if :: sleepers < sq + 1 -> sleepers = sq + 1 :: else -> skip fi };   /* fetch_max */
#endif
#ifndef BUG_NO_RECHECK
  if
  :: seq != sq -> sq = 0; goto poll                          /* SeqCst re-load: continue */
  :: else -> skip
  fi;
#endif
  /* Reactor::arm(token, old = armed, new = (word, seq)) */
  CS(
    leave(me, akey, kicks);
    if
    :: slotset & BIT(sq) -> waiters[sq] = waiters[sq] | BIT(me)
    :: else ->                                               /* a new slot */
       hstarted = true;                                      /* helper_with_room: helper 0 */
       slotset = slotset | BIT(sq);
       waiters[sq] = BIT(me);
       NEW_SLOT_CHANGED(kicks)
    fi;
    akey = sq
  );
  run_kicks(kicks);
pending:                     /* Poll::Pending */
  sq = 0;
  if
  :: me >= FUTURES - CANCELS -> goto cancel
  :: atomic { spurious < SPURIOUS -> spurious++ }; goto poll
  :: true -> skip
  fi;
  if
  :: atomic { woken[me] -> woken[me] = false }; goto poll   /* the executor polls it again */
#ifdef FOREVER
  :: me == FUTURES - 1 && wdone == WRITERS -> goto cancel   /* select!: the writers are done */
#endif
  fi;

cancel:                      /* Drop for Changed */
#ifndef BUG_CANCEL_KEEPS_SLOT
  disarm(me, akey, kicks);
#endif
  atomic {                   /* no slot holds its waker any more */
    sq = 0;
    do
    :: sq < NKEYS -> assert(!(waiters[sq] & BIT(me))); sq++
    :: else -> break
    od;
    sq = 0
  };
ready:
  atomic { fdone++; sq = 0; akey = 0 }
}

/* Reactor::fire for each key of `set` whose slot is still the one built: remove it, collect
   its wakers. Inside the helper's step. */
inline fire(set, wk, k) {
  k = 0;
  do
  :: k < NKEYS ->
     if
     :: set & bvalid & BIT(k) ->
        wk = wk | waiters[k];
        waiters[k] = 0;
        slotset = slotset & ~BIT(k);
        bvalid = bvalid & ~BIT(k)
     :: else -> skip
     fi;
     k++
  :: else -> break
  od;
  k = 0
}

/* The helper thread: Reactor::run_waitv. */
proctype Helper() {
  byte built;                /* keys of its list (`built`) */
  byte ret;                  /* futex_waitv's outcome */
  byte pb;                   /* keys left to probe */
  byte chg;                  /* `changed`: keys whose probe saw another value */
  byte wk;                   /* `wake`: futures whose waker to wake */
  byte k;

end_unstarted:
  hstarted;                  /* started by the first `arm` */
  do
  :: CS(
       LOAD_GEN;             /* gen = control.load(): the value handed to the kernel */
       built = slotset;      /* one entry per slot: (word, expected), (key, id) */
       bvalid = slotset;
       asleep = true
     );
#ifdef BUG_LATE_GEN
     dirty = false;          /* seeded bug: the control word loaded after the lock is released */
#endif
     /* futex_waitv([control: gen, word: key for each slot]) */
     atomic {
       if
#ifdef BUG_STALE_EXPECTED
       :: dirty -> ret = EAGAIN   /* seeded bug: the words handed with the value they hold now */
#else
       :: dirty || (built & ~BIT(seq)) -> ret = EAGAIN   /* a word does not hold its value */
#endif
       :: else -> hobj = (built != 0); hq = true          /* queued on every word */
       fi
     };
     if
     :: ret == EAGAIN -> skip
     :: else ->
end_sleep:
        atomic { !hq -> ret = hret; hret = 0; hobj = false }
     fi;
     CS(
       asleep = false;
       if
       :: ret == 1 -> fire(built, wk, k)                    /* Ok(i): every slot on the word */
       :: else -> skip                                      /* Ok(0): the slots changed; */
       fi                                                   /* EAGAIN: unlock and probe */
     );
     if
     :: ret == EAGAIN ->
#ifndef BUG_NO_PROBE
        pb = built;
        do                                                   /* FUTEX_WAIT, zero time-out: */
        :: pb == 0 -> break                                  /* a compare, one per slot */
        :: else ->
           d_step {
             k = 0;
             do
             :: pb & BIT(k) -> break
             :: else -> k++
             od;
             pb = pb & ~BIT(k);
             if
             :: seq != k -> chg = chg | BIT(k)                /* not ETIMEDOUT: changed */
             :: else -> skip
             fi;
             k = 0
           }
        od;
        CS(fire(chg, wk, k); chg = 0)
#else
        skip                 /* seeded bug: EAGAIN taken as the control word's change */
#endif
     :: else -> skip
     fi;
     d_step {                                                /* w.wake() for each, unlocked */
       k = 0;
       do
       :: k < FUTURES -> if :: wk & BIT(k) -> woken[k] = true :: else -> skip fi; k++
       :: else -> break
       od;
       k = 0; wk = 0; built = 0; ret = 0; bvalid = 0  /* (dead until the next build) */
     }
  od
}

init {
  byte i = 0;
  assert(NKEYS <= 8 && FUTURES <= 8);                        /* the byte-wide sets */
  atomic {
    run Helper();
    do
    :: i < WRITERS -> run Writer(); i++
    :: else -> break
    od;
    i = 0;
    do
#ifdef FOREVER
    :: i < FUTURES - 1 -> run Future(i, i % (WRITERS * PUBLISHES)); i++
    :: i == FUTURES - 1 -> run Future(i, WRITERS * PUBLISHES); i++  /* never completes */
#else
    :: i < FUTURES -> run Future(i, i % (WRITERS * PUBLISHES)); i++
#endif
    :: else -> break
    od;
    i = 0
  };
  wdone == WRITERS && fdone == FUTURES;
  assert(seq == 2 * WRITERS * PUBLISHES);
  /* Every future has gone: the slot map is empty ... */
  d_step {
    assert(slotset == 0);
    i = 0;
    do
    :: i < NKEYS -> assert(waiters[i] == 0); i++
    :: else -> break
    od;
    i = 0
  };
  /* ... and once the helper sleeps, it watches its control word only. */
  atomic { (!hstarted || hq) -> assert(!hobj) };
  /* Self-healing: the first publish clears whatever registration is left, and the next one
     makes no FUTEX_WAKE (writers pay nothing new). */
  byte s, reg, w;
  publish(s, reg);
  assert(sleepers == 0);
  w = wakes;
  publish(s, reg);
  assert(wakes == w)
}
