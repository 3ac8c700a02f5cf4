//! The `smobject` command, run as a real binary against real pairs made by real processes.
//!
//! **Finding the binary.** `smobject` belongs to the `smobject-cli` package, so cargo neither
//! builds it for this package's tests nor sets `CARGO_BIN_EXE_smobject`. The tests run
//! `cargo build -p smobject-cli` once (under a `Once`, with the target directory and profile
//! this test executable was built with: `<target>/<profile>/deps/cli-<hash>` gives
//! `<target>/<profile>/smobject`), so the binary is never missing nor older than its sources;
//! when it is up to date that build is a no-op of about a second. `SMOBJECT_BIN=/path` skips
//! the build and tests that binary instead.
//!
//! **Isolation.** Other test binaries (and other people's runs) make pairs on this host at
//! the same time. So every assertion is about this test's own pairs (its own key file), and
//! `gc` is only ever run filtered (`--path <key file>` or `--key`): a bare `smobject gc` would
//! remove other tests' stale pairs in the middle of their run. Every test ends by checking that
//! its keys are free, and [`KeyFile`] removes whatever is left even when a test panics.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, OnceLock};
use std::time::Duration;

use serde_json::Value;
use smobject::{Shared, SharedStruct};
use tests::structs::Telemetry;
use tests::{nattch, Helper, KeyFile, WAIT};

/// The `smobject` binary, built once per test run (see the module docs).
fn smobject_exe() -> &'static Path {
    static EXE: OnceLock<PathBuf> = OnceLock::new();
    EXE.get_or_init(|| {
        if let Some(p) = std::env::var_os("SMOBJECT_BIN") {
            return PathBuf::from(p);
        }
        let me = std::env::current_exe().expect("current_exe");
        // <target>/<profile>/deps/cli-<hash>
        let profile_dir = me.parent().and_then(Path::parent).expect("profile dir");
        let target_dir = profile_dir.parent().expect("target dir");
        let profile = match profile_dir.file_name().and_then(|s| s.to_str()) {
            Some("debug") | None => "dev",
            Some(other) => other,
        };
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| env!("CARGO").into());
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
        let st = Command::new(cargo)
            .args([
                "build",
                "--quiet",
                "-p",
                "smobject-cli",
                "--bin",
                "smobject",
            ])
            .args(["--profile", profile, "--target-dir"])
            .arg(target_dir)
            .arg("--manifest-path")
            .arg(&manifest)
            .status()
            .expect("running cargo build -p smobject-cli");
        assert!(st.success(), "cargo build -p smobject-cli failed: {st:?}");
        let exe = profile_dir.join("smobject");
        assert!(exe.exists(), "{} not built", exe.display());
        exe
    })
}

/// What one run of the command did.
#[derive(Debug)]
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    /// Asserts exit 0 and returns stdout.
    fn ok(&self) -> &str {
        assert_eq!(self.code, Some(0), "expected success: {self:#?}");
        self.assert_no_panic();
        &self.stdout
    }

    /// Asserts exit status `code` and returns stderr.
    fn fails(&self, code: i32) -> &str {
        assert_eq!(self.code, Some(code), "expected exit {code}: {self:#?}");
        self.assert_no_panic();
        &self.stderr
    }

    fn assert_no_panic(&self) {
        assert!(
            !self.stderr.contains("panicked") && !self.stderr.contains("RUST_BACKTRACE"),
            "the command panicked: {self:#?}"
        );
    }
}

/// Runs `smobject ARGS...`, at most [`WAIT`].
fn smobject(args: &[&str]) -> Run {
    let mut child = Command::new(smobject_exe())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning smobject");
    let pid = child.id() as i32;
    let (mut out, mut err) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let (mut o, mut e) = (String::new(), String::new());
        let reader = std::thread::spawn(move || {
            let _ = err.read_to_string(&mut e);
            e
        });
        let _ = out.read_to_string(&mut o);
        let e = reader.join().unwrap_or_default();
        let st = child.wait().expect("wait");
        let _ = tx.send((st, o, e));
    });
    let Ok((st, stdout, stderr)) = rx.recv_timeout(WAIT) else {
        // SAFETY: kill takes no pointers; the child is not reaped until the thread's wait.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        panic!(
            "`smobject {}` did not finish within {WAIT:?}",
            args.join(" ")
        );
    };
    Run {
        code: st.code(),
        stdout,
        stderr,
    }
}

/// `0x6101abcd`, as the command prints keys.
fn hex(key: i32) -> String {
    format!("{:#010x}", key as u32)
}

/// The `ls` table row whose data key is `key`, split into columns.
fn ls_row(table: &str, key: i32) -> Vec<String> {
    let k = hex(key);
    let line = table
        .lines()
        .find(|l| l.starts_with(&k))
        .unwrap_or_else(|| panic!("no row for {k} in:\n{table}"));
    line.split_whitespace().map(str::to_owned).collect()
}

/// The `ls --json` object whose data key is `key`.
fn ls_json(json: &str, key: i32) -> Value {
    let v: Value = serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {json}"));
    let arr = v.as_array().expect("a JSON array");
    arr.iter()
        .find(|o| o["data_key"] == hex(key).as_str())
        .unwrap_or_else(|| panic!("no object for {} in {json}", hex(key)))
        .clone()
}

/// Starts `t-produce`: a Telemetry (40 bytes) created and written once by another process,
/// held until a line arrives on its stdin.
fn producer(kf: &KeyFile, id: u8) -> Helper {
    kf.key(id);
    let mut p = Helper::spawn(&["t-produce", &kf.arg(), &(id as char).to_string()]);
    assert_eq!(p.line(), "ok");
    p
}

fn finish_producer(mut p: Helper) {
    p.send("exit");
    assert!(p.wait().success());
}

/// Whether a segment with this shmid still exists (even removed and waiting for detaches).
fn shmid_exists(shmid: i32) -> bool {
    smobject::inspect::segments()
        .unwrap()
        .iter()
        .any(|s| s.shmid == shmid)
}

#[test]
fn ls_shows_a_live_pair_with_type_size_mode_attachments_and_pid() {
    let kf = KeyFile::new("cli-ls");
    let p = producer(&kf, b'a');
    let key = kf.key(b'a');
    let pid = p.pid().to_string();

    // Unfiltered (read-only, so safe beside other tests) and filtered by key file.
    for args in [vec!["ls"], vec!["ls", "--path", &kf.arg()]] {
        let out = smobject(&args);
        let row = ls_row(out.ok(), key.raw());
        // DATA KEY  COUNTER KEY  SHMIDS  TYPE  SIZE  OWNER  MODE  ATTACHED  PIDS  STATE  AGE
        assert_eq!(row.len(), 11, "{row:?}");
        assert_eq!(row[1], hex(key.counter().raw()));
        assert_eq!(row[3], "Telemetry");
        assert_eq!(row[4], size_of::<Telemetry>().to_string());
        assert_eq!(row[6], "0600");
        assert_eq!(row[7], "1/1", "kernel attachments / count at offset 0");
        assert_eq!(row[8], pid);
        assert_eq!(row[9], "live");
    }

    let json = smobject(&["ls", "--json", "--key", &hex(key.raw())]);
    let o = ls_json(json.ok(), key.raw());
    assert_eq!(o["type"], "Telemetry");
    assert_eq!(o["size"], 40);
    assert_eq!(o["mode"], "0600");
    assert_eq!(o["nattch"], 1);
    assert_eq!(o["count"], 1);
    assert_eq!(o["pids"], serde_json::json!([p.pid()]));
    assert_eq!(o["state"], "live");
    assert_eq!(o["creator_pid"], p.pid());
    assert_eq!(o["creator_alive"], true);
    assert_eq!(o["counter_key"], hex(key.counter().raw()).as_str());

    finish_producer(p);
    assert!(kf.is_clean(b'a'));
}

#[test]
fn sigkilled_pair_is_stale_and_gc_removes_only_stale_pairs() {
    let kf = KeyFile::new("cli-gc");
    let mut dead = Helper::worker(&kf, b's', 64);
    let mut live = Helper::worker(&kf, b'l', 64);
    dead.ok("create");
    live.ok("create");
    let (stale_key, live_key) = (kf.key(b's').raw(), kf.key(b'l').raw());
    dead.kill();

    let table = smobject(&["ls", "--path", &kf.arg()]);
    let row = ls_row(table.ok(), stale_key);
    assert_eq!(row[9], "stale", "{row:?}");
    assert_eq!(row[8], "-", "nobody is attached: {row:?}");
    assert!(row[7].starts_with("0/"), "the kernel counts 0: {row:?}");
    assert_eq!(ls_row(&table.stdout, live_key)[9], "live");
    let json = smobject(&["ls", "--json", "--path", &kf.arg()]);
    let o = ls_json(json.ok(), stale_key);
    assert_eq!(
        (o["state"].as_str(), o["nattch"].as_u64()),
        (Some("stale"), Some(0))
    );
    assert_eq!(o["creator_alive"], false);

    // --dry-run lists the stale pair only and removes nothing.
    let dry = smobject(&["gc", "--dry-run", "--path", &kf.arg()]);
    let out = dry.ok();
    assert!(
        out.contains(&format!("would remove {}", hex(stale_key))),
        "{out}"
    );
    assert!(!out.contains(&hex(live_key)), "{out}");
    assert_eq!(kf.segments(b's').0.is_some(), kf.segments(b's').1.is_some());
    assert!(kf.segments(b's').0.is_some(), "--dry-run removed something");
    // Filtered by the live pair's key: nothing to do.
    let none = smobject(&["gc", "--key", &hex(live_key)]);
    assert!(none.ok().contains("no stale pairs"), "{none:#?}");

    let gc = smobject(&["gc", "--path", &kf.arg()]);
    let out = gc.ok();
    assert!(
        out.contains(&format!("removed {}", hex(stale_key))),
        "{out}"
    );
    assert!(out.contains("1 stale pair(s) removed"), "{out}");
    assert!(kf.is_clean(b's'), "gc left the stale pair");
    assert!(!kf.is_clean(b'l'), "gc removed the live pair");
    assert_eq!(live.ok("nattch"), "1");

    live.exit();
    assert!(kf.is_clean(b'l'));
}

#[test]
fn gc_by_key_removes_a_stale_pair_without_the_key_file_lock() {
    let kf = KeyFile::new("cli-gc-key");
    let mut w = Helper::worker(&kf, b'g', 64);
    w.ok("create");
    w.kill();
    let key = hex(kf.key(b'g').raw());
    let out = smobject(&["gc", "--key", &key]);
    assert!(out.ok().contains(&format!("removed {key}")), "{out:#?}");
    assert!(kf.is_clean(b'g'));
}

#[test]
fn inspect_prints_type_fingerprint_version_and_creator() {
    let kf = KeyFile::new("cli-inspect");
    let p = producer(&kf, b'i');
    let key = kf.key(b'i');
    let fingerprint = format!("{:#018x}", Telemetry::FINGERPRINT);
    let field = |out: &str, name: &str| -> String {
        // `name` padded to 14 columns, then the value.
        out.lines()
            .find_map(|l| {
                l.get(..14)
                    .filter(|n| n.trim_end() == name)
                    .map(|_| &l[14..])
            })
            .unwrap_or_else(|| panic!("no `{name}` line in:\n{out}"))
            .trim()
            .to_owned()
    };
    for target in [
        vec![kf.arg(), "i".to_owned()],
        vec!["--key".to_owned(), hex(key.raw())],
    ] {
        let mut args = vec!["inspect"];
        args.extend(target.iter().map(String::as_str));
        let run = smobject(&args);
        let out = run.ok();
        assert_eq!(field(out, "state"), "live");
        assert_eq!(field(out, "type"), "Telemetry");
        assert_eq!(field(out, "fingerprint"), fingerprint);
        assert_eq!(field(out, "version"), "1", "t-produce wrote once");
        assert_eq!(field(out, "writer lock"), "free");
        assert_eq!(field(out, "sleepers"), "no");
        assert_eq!(field(out, "count"), "1");
        assert!(field(out, "header").starts_with("valid"), "{out}");
        assert!(field(out, "creator").starts_with(&format!("pid {} (alive;", p.pid())));
        assert!(field(out, "attached pids").starts_with(&p.pid().to_string()));
        assert!(field(out, "data").starts_with(&format!("key {}", hex(key.raw()))));
    }
    // Given the key file, the header's key-file identity is checked against it.
    let run = smobject(&["inspect", &kf.arg(), "i"]);
    assert!(field(run.ok(), "key file").contains("matches"), "{run:#?}");

    finish_producer(p);
    assert!(kf.is_clean(b'i'));
}

#[test]
fn inspect_hex_dumps_known_bytes() {
    let kf = KeyFile::new("cli-hex");
    let mut w = Helper::worker(&kf, b'h', 64);
    w.ok("create");
    w.ok("put 0 00112233445566778899aabbccddeeff");
    w.ok("put 60 cafebabe");
    let key = hex(kf.key(b'h').raw());
    for args in [
        vec!["inspect", "--hex", &kf.arg(), "h"],
        vec!["inspect", "--key", &key, "--hex"],
    ] {
        let run = smobject(&args);
        let out = run.ok();
        assert!(out.contains("data (64 bytes):"), "{out}");
        assert!(
            out.contains(
                "00000000  00 11 22 33 44 55 66 77  88 99 aa bb cc dd ee ff  |..\"3DUfw........|"
            ),
            "{out}"
        );
        assert!(
            out.contains("00000030  00 00 00 00 00 00 00 00  00 00 00 00 ca fe ba be"),
            "{out}"
        );
        assert!(out.trim_end().ends_with("00000040"), "{out}");
    }
    // Inspecting neither attaches for good nor changes the count.
    assert_eq!(w.ok("nattch"), "1");
    assert_eq!(w.ok("ctr"), "1");
    w.exit();
    assert!(kf.is_clean(b'h'));
}

#[test]
fn rm_refuses_a_live_pair_naming_the_pid_and_force_removes_it() {
    let kf = KeyFile::new("cli-rm");
    let mut w = Helper::worker(&kf, b'r', 64);
    w.ok("create");
    let key = kf.key(b'r');
    let (Some(data), Some(counter)) = kf.segments(b'r') else {
        panic!("no pair")
    };

    for args in [
        vec!["rm".to_owned(), kf.arg(), "r".to_owned()],
        vec!["rm".to_owned(), "--key".to_owned(), hex(key.raw())],
    ] {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let run = smobject(&args);
        let err = run.fails(1);
        assert!(err.starts_with("error: object in use"), "{err}");
        assert!(err.contains(&format!("attached: pid {}", w.pid())), "{err}");
        assert!(err.contains("--force"), "{err}");
        assert_eq!(
            kf.segments(b'r'),
            (Some(data), Some(counter)),
            "rm removed a live pair"
        );
    }

    let run = smobject(&["rm", "--force", &kf.arg(), "r"]);
    let out = run.ok();
    assert!(
        out.contains(&format!("removed {}", hex(key.raw()))),
        "{out}"
    );
    assert!(out.contains("1 attachment(s) remain"), "{out}");
    assert!(kf.is_clean(b'r'), "the key is free at once");
    // The worker keeps its mapping until it detaches; then the memory goes.
    assert_eq!(nattch(data), 1);
    w.exit();
    assert!(!shmid_exists(data) && !shmid_exists(counter));
}

#[test]
fn rm_removes_a_stale_pair_without_force() {
    let kf = KeyFile::new("cli-rm-stale");
    let mut w = Helper::worker(&kf, b'd', 64);
    w.ok("create");
    w.kill();
    assert!(!kf.is_clean(b'd'));
    let run = smobject(&["rm", &kf.arg(), "d"]);
    assert!(run.ok().starts_with("removed "), "{run:#?}");
    assert!(kf.is_clean(b'd'));
    // Removing it again: nothing there, exit 1.
    let again = smobject(&["rm", &kf.arg(), "d"]);
    assert!(again
        .fails(1)
        .starts_with("error: no shared object under this key"));
}

#[test]
fn watch_count_reports_versions_and_rate() {
    let kf = KeyFile::new("cli-watch");
    kf.key(b'w');
    let shared = Shared::<Telemetry>::create_at(kf.path(), b'w').unwrap();
    for i in 0..3 {
        shared.write(|t| t.seq = i);
    }
    let run = smobject(&[
        "watch",
        &kf.arg(),
        "w",
        "--count",
        "2",
        "--interval",
        "50ms",
    ]);
    let out = run.ok();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "title, header, 2 samples: {out}");
    assert!(lines[0].contains("(Telemetry)"), "{out}");
    for sample in &lines[2..] {
        let cols: Vec<&str> = sample.split_whitespace().collect();
        assert_eq!(cols[1], "3", "version: {out}");
        assert_eq!(cols[3], "1", "attached: {out}");
        assert_eq!(cols[4], "live", "{out}");
    }
    assert_eq!(
        lines[3].split_whitespace().nth(2),
        Some("0.0"),
        "no writes, no rate"
    );

    // With a writer running, the version grows and the rate is positive.
    let stop = AtomicBool::new(false);
    let run = std::thread::scope(|s| {
        s.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                shared.write(|t| t.seq += 1);
                std::thread::sleep(Duration::from_millis(2));
            }
        });
        let run = smobject(&[
            "watch",
            "--key",
            &hex(shared.key().raw()),
            "--count",
            "3",
            "--interval",
            "100ms",
        ]);
        stop.store(true, Ordering::Relaxed);
        run
    });
    let out = run.ok();
    let versions: Vec<u64> = out
        .lines()
        .skip(2)
        .map(|l| l.split_whitespace().nth(1).unwrap().parse().unwrap())
        .collect();
    assert_eq!(versions.len(), 3, "{out}");
    assert!(versions[2] > versions[0], "{out}");
    let rate: f64 = out
        .lines()
        .last()
        .unwrap()
        .split_whitespace()
        .nth(2)
        .unwrap()
        .parse()
        .unwrap();
    assert!(rate > 0.0, "{out}");

    drop(shared);
    assert!(kf.is_clean(b'w'));
}

#[test]
fn bad_input_exits_1_with_a_clear_message_and_no_panic() {
    let kf = KeyFile::new("cli-bad");
    kf.key(b'n');

    let run = smobject(&["inspect", "/no/such/file", "a"]);
    let err = run.fails(1);
    assert!(err.starts_with("error: key file not found"), "{err}");
    assert!(
        err.contains("/no/such/file") && err.contains("hint:"),
        "{err}"
    );

    let run = smobject(&["inspect", &kf.arg(), "#"]);
    let err = run.fails(1);
    assert!(err.starts_with("error: invalid project id"), "{err}");
    assert!(err.contains("'A'..='z'"), "{err}");

    // A valid key with nothing under it.
    for args in [
        vec!["inspect", &kf.arg(), "n"],
        vec!["rm", &kf.arg(), "n"],
        vec!["watch", &kf.arg(), "n", "--count", "1"],
    ] {
        let run = smobject(&args);
        let err = run.fails(1);
        assert!(
            err.starts_with("error: no shared object under this key"),
            "{err}"
        );
        assert!(err.contains(&hex(kf.key(b'n').raw())), "{err}");
    }

    let run = smobject(&["gc", "--path", "/no/such/file"]);
    assert!(run.fails(1).starts_with("error: key file not found"));

    // Usage errors: clap's message, exit 2.
    for args in [
        vec!["inspect", &kf.arg(), "ab"],
        vec!["inspect", "--key", "0xnothex"],
        vec!["inspect", "--key", "0"],
        vec!["inspect"],
        vec!["rm", &kf.arg(), "n", "--key", "0x61000001"],
        vec!["watch", &kf.arg(), "n", "--interval", "0"],
        vec!["frobnicate"],
    ] {
        let run = smobject(&args);
        assert!(run.fails(2).contains("error:"), "{args:?}: {run:#?}");
    }
    assert!(kf.is_clean(b'n'));
}
