//! The examples as real processes: `quickstart` delivers every update to its consumer process,
//! `monitor` detects the module it kills, and neither leaves a segment behind.

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Once;
use std::time::{Duration, Instant};

/// Builds the examples once per test binary (with the cargo running the tests, into the same
/// target dir) and returns the path of `name`.
fn example(name: &str) -> PathBuf {
    static BUILD: Once = Once::new();
    let exe = std::env::current_exe().expect("current_exe");
    // target/debug/deps/examples-HASH -> target/debug/examples/NAME
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    BUILD.call_once(|| {
        let mut cargo = Command::new(env!("CARGO"));
        cargo
            .args(["build", "-p", "examples", "--examples"])
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        if dir.file_name().is_some_and(|n| n == "release") {
            cargo.arg("--release");
        }
        let status = cargo.status().expect("running cargo build");
        assert!(status.success(), "building the examples failed: {status}");
    });
    dir.join("examples").join(name)
}

/// Runs an example to completion (at most 30 s) and returns whether it succeeded and its stdout.
fn run(name: &str) -> (bool, String) {
    let mut child = Command::new(example(name))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {name}: {e}"));
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{name} did not finish within 30 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = reader.join().unwrap();
    println!("--- {name} ({status}):\n{out}");
    (status.success(), out)
}

/// The keys an example printed (`keys 0x... 0x...` on its first line).
fn printed_keys(out: &str) -> Vec<i32> {
    let line = out
        .lines()
        .find(|l| l.contains(" keys 0x"))
        .expect("the example prints its keys");
    let keys: Vec<i32> = line
        .split_whitespace()
        .filter_map(|w| w.strip_prefix("0x"))
        .map(|h| u32::from_str_radix(h, 16).unwrap() as i32)
        .collect();
    assert!(!keys.is_empty());
    keys
}

/// The keys, among `keys`, that have a segment now.
fn existing(keys: &[i32]) -> Vec<i32> {
    let text = std::fs::read_to_string("/proc/sysvipc/shm").unwrap();
    text.lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next()?.parse::<i64>().ok())
        .map(|k| k as i32)
        .filter(|k| keys.contains(k))
        .collect()
}

#[test]
fn quickstart_delivers_every_update_and_leaves_nothing() {
    let (ok, out) = run("quickstart");
    assert!(ok, "quickstart failed");
    for v in 1..=5 {
        assert!(
            out.lines()
                .any(|l| l.starts_with("[consumer ")
                    && l.contains(&format!("received v{v}: seq={v} "))),
            "the consumer did not print update {v}"
        );
    }
    assert!(out.contains("got 5 of 5 updates"));
    assert!(out.contains("nothing left behind"));
    let keys = printed_keys(&out);
    assert_eq!(keys.len(), 2);
    assert_eq!(existing(&keys), Vec::<i32>::new(), "segments left behind");
}

#[test]
fn monitor_detects_the_killed_module_and_leaves_nothing() {
    let (ok, out) = run("monitor");
    assert!(ok, "monitor failed");
    let dead: Vec<&str> = out.lines().filter(|l| l.contains("is DEAD")).collect();
    assert_eq!(dead.len(), 1, "exactly one module reported dead");
    assert!(dead[0].contains("module c "), "{}", dead[0]);
    assert!(out.contains("removed its stale pair"));
    // The two others were alive until stopped, and stopped cleanly.
    assert!(out.contains("[module b pid ") && out.contains("[module d pid "));
    assert!(
        !out.contains("[module c pid "),
        "the killed module ran no clean-up"
    );
    assert!(out.contains("nothing left behind"));
    let keys = printed_keys(&out);
    assert_eq!(keys.len(), 6);
    assert_eq!(existing(&keys), Vec::<i32>::new(), "segments left behind");
}
