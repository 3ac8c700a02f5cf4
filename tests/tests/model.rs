//! The spin models of docs/model/ are checked, not only written: each model's exhaustive search
//! finds no error, and each of its seeded bugs (`-DBUG_...`, a step of the protocol reordered,
//! loosened or left out) is found. The bugs keep the models honest: a model too coarse to see
//! them would pass vacuously.
//!
//! Needs `spin` and `gcc`. Without `spin` the tests say so and pass, unless
//! `SMOBJECT_TEST_REQUIRE_SPIN=1` (CI, which installs it) makes that a failure.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A scratch directory for one verification run, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    /// A new directory, never shared: the tests run in parallel, and two of them may verify
    /// the same model with the same defines (a safety and a liveness search).
    fn new(name: &str) -> Scratch {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("smobject-model-{name}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("creating the scratch dir");
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Whether `spin` can run here; `false` (after saying why) only when missing and not required.
fn have_spin() -> bool {
    let found = Command::new("spin")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var("SMOBJECT_TEST_REQUIRE_SPIN").as_deref() != Ok("1"),
            "SMOBJECT_TEST_REQUIRE_SPIN=1 but `spin` is not on PATH (install it: apt-get install spin)"
        );
        eprintln!("skipped: `spin` is not on PATH (apt-get install spin; CI requires it)");
    }
    found
}

/// What one search reported.
#[derive(Debug)]
struct Verdict {
    errors: u64,
    /// Stored states ("N states, stored").
    states: u64,
    /// pan searched the whole state space: not cut by the depth bound or the memory limit,
    /// not stopped at an error, not killed.
    complete: bool,
    report: String,
}

/// What pan searches for.
#[derive(Clone, Copy, Debug)]
enum Search {
    /// Assertions and invalid end states (`-DSAFETY`).
    Safety,
    /// Non-progress cycles (`-DNP`, `pan -l`; with state compression, `-DCOLLAPSE`): with no
    /// progress label in a model, any cycle, i.e. a run that never ends.
    Liveness,
}

/// How a seeded bug must show in pan's report.
#[derive(Clone, Copy, Debug)]
enum Shows {
    /// "invalid end state": a process blocked for good (a lost wake-up).
    InvalidEnd,
    /// "assertion violated" of an assertion whose text contains this.
    Assertion(&'static str),
    /// "non-progress cycle": a run that never ends (a liveness search).
    NonProgress,
}

impl Shows {
    /// Whether pan's error line says so ("pan:1: invalid end state (at depth 52)", "pan:1:
    /// assertion violated (x==3) (at depth 0)", "pan:1: non-progress cycle (at depth 9)";
    /// its list of what it checks, "invalid end states +", is not one).
    fn in_report(self, report: &str) -> bool {
        report
            .lines()
            .filter(|l| l.starts_with("pan:"))
            .any(|l| match self {
                Shows::InvalidEnd => l.contains("invalid end state"),
                Shows::Assertion(expr) => l.contains("assertion violated") && l.contains(expr),
                Shows::NonProgress => l.contains("non-progress cycle"),
            })
    }
}

/// The model file `docs/model/<name>`.
fn model_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../docs/model")
        .join(name)
}

/// How pan searches: the depth bound (`-m`) and the memory limit in MB (`-DMEMLIM`).
const DEPTH: u32 = 1_000_000;
const MEMLIM_MB: u32 = 8_000;

/// Generates the verifier of the model at `src` with `defines`, compiles it and runs its
/// exhaustive `search`, with the depth bound and memory limit given.
fn verify(src: &Path, defines: &[&str], search: Search, depth: u32, memlim_mb: u32) -> Verdict {
    let name = src.file_stem().and_then(|s| s.to_str()).unwrap_or("model");
    let scratch = Scratch::new(&format!("{name}{}", defines.concat()));
    let run = |cmd: &mut Command, what: &str| {
        let out = cmd
            .current_dir(&scratch.0)
            .output()
            .unwrap_or_else(|e| panic!("running {what}: {e}"));
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status, text)
    };
    let what = format!("{} {defines:?}", src.display());
    let (exit, text) = run(
        Command::new("spin").args(defines).arg("-a").arg(src),
        "spin -a",
    );
    assert!(exit.success(), "spin -a {what} failed:\n{text}");
    let memlim = format!("-DMEMLIM={memlim_mb}");
    let (exit, text) = run(
        Command::new("gcc")
            .args(["-O2", &memlim, "-w", "-o", "pan", "pan.c"])
            .args(match search {
                Search::Safety => &["-DSAFETY"][..],
                Search::Liveness => &["-DNP", "-DCOLLAPSE"][..],
            }),
        "gcc pan.c",
    );
    assert!(
        exit.success(),
        "compiling the verifier of {what} failed:\n{text}"
    );
    // pan exits 0 whether or not it found an error: the report says which.
    let mut pan = Command::new("./pan");
    pan.arg(format!("-m{depth}"));
    if let Search::Liveness = search {
        pan.arg("-l");
    }
    let (exit, report) = run(&mut pan, "pan");
    // "State-vector 60 byte, depth reached 219, errors: 0" and "  9518071 states, stored"
    // (printed with %g: 1.2345679e+08 from 100 million on).
    let errors = report
        .lines()
        .find_map(|l| l.split("errors:").nth(1))
        .and_then(|rest| rest.trim().parse().ok());
    let states = report
        .lines()
        .find(|l| l.contains("states, stored"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse::<f64>().ok());
    let (Some(errors), Some(states)) = (errors, states) else {
        panic!("pan's report for {what} has no error or state count ({exit}):\n{report}")
    };
    let cut = [
        "max search depth too small",
        "reached -DMEMLIM bound",
        "out of memory",
        "Search not completed",
    ];
    Verdict {
        errors,
        states: states as u64,
        complete: exit.success() && !cut.iter().any(|c| report.contains(c)),
        report,
    }
}

/// `model` verifies with no error over a complete search of at least `min_states` states
/// (with `defines`), and each of `bugs` makes it report an error of the kind given.
fn check(model: &str, defines: &[&str], min_states: u64, bugs: &[(&str, Shows)]) {
    if !have_spin() {
        return;
    }
    let clean = verify(
        &model_file(model),
        defines,
        Search::Safety,
        DEPTH,
        MEMLIM_MB,
    );
    assert_eq!(
        clean.errors, 0,
        "{model} {defines:?}: the protocol's model has an error:\n{}",
        clean.report
    );
    assert!(
        clean.complete,
        "{model} {defines:?}: the search was cut short:\n{}",
        clean.report
    );
    assert!(
        clean.states >= min_states,
        "{model} {defines:?}: only {} states were explored (expected at least {min_states}): the model shrank",
        clean.states
    );
    for &(bug, shows) in bugs {
        let define = format!("-D{bug}");
        let seeded = verify(
            &model_file(model),
            &[&define],
            Search::Safety,
            DEPTH,
            MEMLIM_MB,
        );
        assert!(
            seeded.errors > 0 && shows.in_report(&seeded.report),
            "{model}: the seeded bug {bug} was not found as {shows:?}, so the model cannot see it:\n{}",
            seeded.report
        );
    }
}

/// docs/model/wait.pml: the blocking wait and the writers' wake lose no wake-up, and a
/// registration left by waiters that have gone costs writers one wake at most.
#[test]
fn the_blocking_wait_model_has_no_lost_wakeup_and_sees_its_seeded_bugs() {
    check(
        "wait.pml",
        &[],
        9_000_000,
        &[
            ("BUG_LOAD_FIRST", Shows::InvalidEnd),
            ("BUG_CLEAR_CURRENT", Shows::InvalidEnd),
            ("BUG_PLAIN_CLEAR", Shows::InvalidEnd),
            ("BUG_NO_REGISTER", Shows::InvalidEnd),
        ],
    );
}

/// docs/model/async.pml: the async waits' `futex_waitv` path (futures, reactor, helper thread,
/// cancellation) loses no wake-up, leaves nothing in the reactor after a drop, and costs
/// writers nothing new. (Its `BUG_NO_PROBE` is found by the liveness search, below;
/// `BUG_NO_RECHECK` cannot be found under sequential consistency: the model's header says why.)
#[test]
fn the_async_wait_model_has_no_lost_wakeup_and_sees_its_seeded_bugs() {
    check(
        "async.pml",
        &[],
        24_000_000,
        &[
            ("BUG_NO_REGISTER", Shows::InvalidEnd),
            ("BUG_NO_CTRL_BUMP", Shows::InvalidEnd),
            ("BUG_NO_CTRL_KICK", Shows::InvalidEnd),
            ("BUG_LATE_GEN", Shows::InvalidEnd),
            ("BUG_STALE_EXPECTED", Shows::InvalidEnd),
            ("BUG_CANCEL_KEEPS_SLOT", Shows::Assertion("waiters[sq]")),
            ("BUG_LEAVE_NO_BUMP", Shows::Assertion("hobj")),
        ],
    );
}

/// docs/model/async.pml with `-DFOREVER` (a future that waits past the last version, dropped
/// at a Pending or once the writer is done): clean on its own, so that `BUG_LEAVE_NO_BUMP`,
/// which turns it on, is found for its own reason.
#[test]
fn the_async_wait_model_with_a_future_dropped_after_the_last_write_has_no_error() {
    check("async.pml", &["-DFOREVER"], 30_000_000, &[]);
}

/// docs/model/async.pml, liveness: every run ends (no cycle at all, so the helper never spins
/// on `futex_waitv` failing, and no future is polled for ever: no busy polling), and
/// `BUG_NO_PROBE` (EAGAIN taken for a control-word change, so nothing fires) is found as the
/// helper's endless loop. The longest model test: about two minutes and 3 GB.
#[test]
fn the_async_wait_models_helper_never_spins() {
    if !have_spin() {
        return;
    }
    let model = model_file("async.pml");
    let clean = verify(&model, &[], Search::Liveness, DEPTH, MEMLIM_MB);
    assert!(
        clean.errors == 0 && clean.complete && clean.states >= 45_000_000,
        "async.pml: a run that never ends, or a search cut short:\n{}",
        clean.report
    );
    let seeded = verify(
        &model,
        &["-DBUG_NO_PROBE"],
        Search::Liveness,
        DEPTH,
        MEMLIM_MB,
    );
    assert!(
        seeded.errors > 0 && Shows::NonProgress.in_report(&seeded.report),
        "async.pml: the seeded bug BUG_NO_PROBE was not found as a cycle:\n{}",
        seeded.report
    );
}

/// The harness reads reports as they are: a failing assertion is an error of that kind, an
/// invalid end state is one, a clean model has none, and a search cut by the depth bound or
/// the memory limit is not complete.
#[test]
fn the_harness_reads_errors_kinds_and_cut_searches() {
    if !have_spin() {
        return;
    }
    let scratch = Scratch::new("harness");
    let model = scratch.0.join("x.pml");
    let verify_text = |text: &str, depth: u32, memlim_mb: u32| {
        std::fs::write(&model, text).unwrap();
        verify(&model, &[], Search::Safety, depth, memlim_mb)
    };
    let ok = verify_text(
        "active proctype p() { byte x = 1; x++; assert(x == 2) }\n",
        DEPTH,
        MEMLIM_MB,
    );
    assert_eq!((ok.errors, ok.complete), (0, true), "{}", ok.report);
    assert!(ok.states >= 2, "{}", ok.report);
    let bad = verify_text(
        "active proctype p() { byte x = 1; x++; assert(x == 3) }\n",
        DEPTH,
        MEMLIM_MB,
    );
    assert_eq!(bad.errors, 1, "{}", bad.report);
    assert!(
        Shows::Assertion("x==3").in_report(&bad.report),
        "{}",
        bad.report
    );
    assert!(!Shows::InvalidEnd.in_report(&bad.report), "{}", bad.report);
    let stuck = verify_text("bool go; active proctype p() { go }\n", DEPTH, MEMLIM_MB);
    assert_eq!(stuck.errors, 1, "{}", stuck.report);
    assert!(
        Shows::InvalidEnd.in_report(&stuck.report),
        "{}",
        stuck.report
    );
    // 16.7 million states of three counters: cut by a depth bound of 100, and by 20 MB.
    let big = "byte a, b, c;\nactive proctype p() { do :: a < 255 -> a++ :: b < 255 -> b++ :: c < 255 -> c++ :: else -> break od }\n";
    let shallow = verify_text(big, 100, MEMLIM_MB);
    assert_eq!(
        (shallow.errors, shallow.complete),
        (0, false),
        "{}",
        shallow.report
    );
    let small = verify_text(big, DEPTH, 20);
    assert_eq!(
        (small.errors, small.complete),
        (0, false),
        "{}",
        small.report
    );
}
