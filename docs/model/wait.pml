/*
 * smobject's blocking wait (`Region::wait_for_update`) and the writers' wake
 * (`Region::publish` + `wake_sleepers`), in smobject/src/sync.rs: no lost wake-up.
 *
 * Every operation of the Rust code on `seq` and `sleepers` is SeqCst, so spin's interleavings
 * (sequential consistency) are exactly the executions the Rust memory model allows for them.
 * The futex is the kernel's: FUTEX_WAIT compares the word and queues the caller in one step
 * (under the futex bucket lock), FUTEX_WAKE dequeues every caller queued on the word.
 * Versions are small numbers, so the kernel's 32-bit compare is the whole value here.
 *
 * Property: when every writer has finished, no waiter sleeps: each one returned a version
 * greater than the one it had seen. A waiter asleep with nobody left to wake it is an invalid
 * end state, which spin reports. Run (spin 6.5, about 6 s, 9.5 million states):
 *   spin -a wait.pml && cc -O2 -DSAFETY -o pan pan.c && ./pan -m100000     -> errors: 0
 * Each seeded bug (`spin -DBUG_LOAD_FIRST`, `-DBUG_CLEAR_CURRENT`, `-DBUG_PLAIN_CLEAR`,
 * `-DBUG_NO_REGISTER`: a step of the protocol reordered, loosened or left out) makes it report
 * an invalid end state: a waiter asleep for good. tests/tests/model.rs runs all of this in CI.
 */

#ifndef WRITERS
#define WRITERS 1
#endif
#ifndef PUBLISHES
#define PUBLISHES 3          /* by each writer */
#endif
#ifndef WAITERS
#define WAITERS 3
#endif

byte seq = 0;                /* even at rest; version = seq / 2 */
byte sleepers = 0;           /* 0, or 1 + the highest seq a waiter registered at */
bool wlock = false;          /* the writer mutex (robust pthread mutex) */
bool queued[WAITERS];        /* the futex's queue on the word `seq` */
byte wakes = 0;              /* FUTEX_WAKE calls made by writers (for the cost check) */
byte done = 0;

inline futex_wake_all() {
  d_step {
    byte k = 0;
    do
    :: k < WAITERS -> queued[k] = false; k++
    :: else -> break
    od;
    wakes++
  }
}

/* Region::publish from the odd store on, then wake_sleepers(published); under the lock. */
inline publish(s, reg) {
  atomic { !wlock -> wlock = true };
  s = seq;
  seq = s + 1;               /* Release; the data stores follow */
#ifdef BUG_LOAD_FIRST
  reg = sleepers;            /* seeded bug: sleepers loaded before the final seq store */
  seq = s + 2;
#else
  seq = s + 2;               /* SeqCst */
  reg = sleepers;            /* SeqCst */
#endif
  if
  :: reg == 0 -> skip
  :: else ->
     if
#ifdef BUG_CLEAR_CURRENT
     :: reg - 1 <= s + 2 ->  /* seeded bug: also clears a registration at the new seq */
#else
     :: reg - 1 < s + 2 ->
#endif
#ifdef BUG_PLAIN_CLEAR
        sleepers = 0         /* seeded bug: a store, not a compare-exchange */
#else
        atomic { if :: sleepers == reg -> sleepers = 0 :: else -> skip fi }   /* CAS */
#endif
     :: else -> skip
     fi;
     futex_wake_all()
  fi;
  wlock = false
}

proctype Writer() {
  byte n = 0, s, reg;
  do
  :: n < PUBLISHES -> publish(s, reg); n++
  :: else -> break
  od;
  atomic { done++ }
}

/* Region::wait_for_update(seen): waiter i waits past version i, below the last one. */
proctype Waiter(byte me; byte seen) {
  byte sq, reg;
again:
  sq = seq;                                        /* SeqCst */
  if
  :: sq / 2 > seen -> goto out
  :: else -> skip
  fi;
  reg = (sq + 1 > 1 -> sq + 1 : 1);
#ifndef BUG_NO_REGISTER
  atomic { if :: sleepers < reg -> sleepers = reg :: else -> skip fi };   /* fetch_max */
#endif
  /* (Under sequential consistency the FUTEX_WAIT compare below would catch a publish made
     since `sq` on its own; the SeqCst re-load is what makes the argument hold in the Rust
     memory model, where the kernel's read is not a Rust atomic, and saves the syscall.) */
  if
  :: seq != sq -> goto again                       /* SeqCst re-load */
  :: else -> skip
  fi;
  atomic { if :: seq == sq -> queued[me] = true :: else -> skip fi };     /* FUTEX_WAIT */
  !queued[me];
  goto again;
out:
  assert(seq / 2 > seen);
  atomic { done++ }
}

init {
  atomic {
    byte i = 0;
    do
    :: i < WRITERS -> run Writer(); i++
    :: else -> break
    od;
    i = 0;
    do
    :: i < WAITERS -> run Waiter(i, i); i++
    :: else -> break
    od
  };
  done == WRITERS + WAITERS;
  assert(seq == 2 * WRITERS * PUBLISHES);
  /* Self-healing: with every waiter gone, the first publish clears whatever registration is
     left, and the next one makes no FUTEX_WAKE (writers pay nothing when nobody waits). */
  byte s, reg, w;
  publish(s, reg);
  assert(sleepers == 0);
  w = wakes;
  publish(s, reg);
  assert(wakes == w)
}
