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

use std::io::{BufRead, BufReader, Read};

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use smobject::{shared_memory, Shared, SharedStruct};
use tests::structs::Telemetry;
use tests::{helper_exe, nattch, smobject_exe, Helper, KeyFile, WAIT};

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
    smobject_via(&[], args)
}

/// Runs `PREFIX... smobject ARGS...` (e.g. behind `setpriv` or `nsenter`), at most [`WAIT`].
fn smobject_via(prefix: &[&str], args: &[&str]) -> Run {
    let mut cmd = match prefix.split_first() {
        None => Command::new(smobject_exe()),
        Some((program, rest)) => {
            let mut c = Command::new(program);
            c.args(rest).arg(smobject_exe());
            c
        }
    };
    let mut child = cmd
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

/// `1.2s` (as `ls` and `inspect` print the last write's age; `3m12s` past a minute) in
/// seconds.
fn seconds(s: &str) -> f64 {
    if let Some((m, rest)) = s.split_once('m') {
        let m: f64 = m.parse().unwrap_or_else(|_| panic!("not an age: {s}"));
        return m * 60.0 + seconds(rest);
    }
    s.strip_suffix('s')
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("not an age: {s}"))
}

/// The `inspect` schema table (the indented lines after `schema`): field path, offset, type.
fn schema_rows(out: &str) -> Vec<(String, usize, String)> {
    out.lines()
        .skip_while(|l| !l.starts_with("schema "))
        .skip(2) // the `schema` line and the table's header
        .take_while(|l| l.starts_with("  "))
        .map(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            let offset = cols[1].parse().unwrap_or_else(|_| panic!("{l}"));
            (cols[0].to_owned(), offset, cols[2..].join(" "))
        })
        .collect()
}

/// The `name = value` lines of `get`.
fn get_lines(out: &str) -> Vec<&str> {
    out.lines().collect()
}

/// Parses one JSON document.
fn parse(text: &str) -> Value {
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("{e}: {text:?}"))
}

/// A struct nested in [`Outer`]: fields reached as `a.b`, `w[1].c`.
#[shared_memory(path = "/tmp", id = 'N')]
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Inner {
    b: u32,
    c: i32,
}

/// A struct with a nested struct, an array of numbers and an array of structs.
#[shared_memory(path = "/tmp", id = 'O')]
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Outer {
    a: Inner,
    v: [u16; 4],
    w: [Inner; 2],
    t: f32,
    n: u32,
}

/// Checks a `Telemetry` JSON value written by `t-tele-writer` (every field the same counter):
/// returns the counter.
fn untorn(value: &Value) -> u64 {
    let seq = value["seq"].as_u64().unwrap_or_else(|| panic!("{value}"));
    let pos: Vec<f64> = value["pos"]
        .as_array()
        .unwrap_or_else(|| panic!("{value}"))
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    #[allow(clippy::cast_precision_loss)] // exact: far below 2^53 writes
    let x = seq as f64;
    assert_eq!(pos, [x; 3], "torn value: {value}");
    assert_eq!(
        value["status"].as_u64(),
        Some(seq & 0xffff_ffff),
        "torn value: {value}"
    );
    assert_eq!(
        value["_pad"].as_u64(),
        Some(seq & 0xffff_ffff),
        "torn value: {value}"
    );
    seq
}

/// `smobject watch ...` as a running process whose stdout the test reads line by line: a
/// thread reads one line per request, so the test can also close the pipe between lines.
struct Watch {
    child: Child,
    lines: mpsc::Receiver<String>,
    /// Asks the reader thread for the next line; dropped to close the pipe.
    requests: Option<mpsc::Sender<()>>,
    /// A request is outstanding (the thread is reading).
    pending: bool,
}

impl Watch {
    fn start(args: &[&str]) -> Watch {
        let mut child = Command::new(smobject_exe())
            .arg("watch")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawning smobject watch");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        let (requests, rx) = mpsc::channel::<()>();
        std::thread::spawn(move || {
            let mut r = BufReader::new(stdout);
            // Until the test drops `requests`: then `r` (the pipe's read end) is dropped.
            while rx.recv().is_ok() {
                let mut line = String::new();
                match r.read_line(&mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        if tx.send(line.trim_end().to_owned()).is_err() {
                            break;
                        }
                    }
                }
            }
        });
        Watch {
            child,
            lines,
            requests: Some(requests),
            pending: false,
        }
    }

    /// The next line if one arrives within `d`.
    fn try_line(&mut self, d: Duration) -> Option<String> {
        if !self.pending {
            self.requests
                .as_ref()
                .expect("stdout open")
                .send(())
                .expect("reader thread gone");
            self.pending = true;
        }
        let line = self.lines.recv_timeout(d).ok();
        if line.is_some() {
            self.pending = false;
        }
        line
    }

    /// The next line, within [`WAIT`].
    fn line(&mut self) -> String {
        self.try_line(WAIT)
            .unwrap_or_else(|| panic!("no line from watch within {WAIT:?}"))
    }

    /// Closes the read end of the command's stdout (as `| head -1` does after its line).
    fn close_stdout(&mut self) {
        assert!(!self.pending, "the reader thread is reading");
        self.requests = None;
    }

    /// The exit status if it has exited.
    fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().expect("try_wait")
    }

    /// Waits for the exit (within [`WAIT`]): the exit code; asserts stderr shows no panic.
    fn finish(mut self) -> Option<i32> {
        let start = Instant::now();
        let status = loop {
            if let Some(st) = self.exited() {
                break st;
            }
            assert!(start.elapsed() < WAIT, "watch did not exit within {WAIT:?}");
            std::thread::sleep(Duration::from_millis(5));
        };
        let mut err = String::new();
        let _ = self.child.stderr.take().unwrap().read_to_string(&mut err);
        assert!(
            !err.contains("panicked") && !err.contains("RUST_BACKTRACE"),
            "watch panicked: {err}"
        );
        status.code()
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
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
        // LAST WRITE
        assert_eq!(row.len(), 12, "{row:?}");
        assert_eq!(row[1], hex(key.counter().raw()));
        assert_eq!(row[3], "Telemetry");
        assert_eq!(row[4], size_of::<Telemetry>().to_string());
        assert_eq!(row[6], "0600");
        assert_eq!(row[7], "1/1", "kernel attachments / count at offset 0");
        assert_eq!(row[8], pid);
        assert_eq!(row[9], "live");
        let last = seconds(&row[11]);
        assert!(last >= 0.0, "{row:?}");
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
    assert!(o["last_write_s"].as_f64().is_some_and(|s| s >= 0.0), "{o}");

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
fn a_group_shared_object_needs_mode_and_its_stale_pairs_are_freed_whatever_their_mode() {
    let kf = KeyFile::new("cli-mode");
    let shared =
        Shared::<Telemetry>::create_in(&kf.key(b'm'), &smobject::Options::new().mode(0o660))
            .unwrap();
    shared.write(|t| t.seq = 9);
    let path = kf.arg();

    // As the library does, the command refuses a mode broader than 0600 unless told.
    let run = smobject(&["get", &path, "m"]);
    let err = run.fails(1);
    assert!(
        err.contains("0o660") && err.contains("`--mode 660`") && !err.contains("Options::"),
        "{err}"
    );
    let run = smobject(&["get", &path, "m", "seq", "--mode", "660"]);
    assert_eq!(run.ok().trim(), "seq = 9");
    let run = smobject(&["set", &path, "m", "seq=10", "--mode", "0660"]);
    assert!(run.ok().starts_with("version "), "{run:#?}");
    assert_eq!(shared.read().seq, 10);
    let run = smobject(&[
        "watch", &path, "m", "--json", "--count", "1", "--mode", "660",
    ]);
    let line: Value = serde_json::from_str(run.ok().trim()).unwrap();
    assert_eq!(line["value"]["seq"], 10, "{line}");
    // Without --json, watch does not attach: the flags would mean nothing (a usage error).
    for flag in ["--mode", "--allow-uid"] {
        let run = smobject(&["watch", &path, "m", "--count", "1", flag, "660"]);
        assert!(run.fails(2).contains("--json"), "{run:#?}");
    }
    let run = smobject(&["get", &path, "m", "--mode", "755"]);
    assert!(run.fails(2).contains("outside 0o666"), "{run:#?}");
    drop(shared);
    assert!(kf.is_clean(b'm'));

    // A stale pair is removed whatever its mode: nothing is read from it.
    for (id, args) in [
        (b'r', vec!["rm".to_owned(), path.clone(), "r".to_owned()]),
        (
            b'g',
            vec!["gc".to_owned(), "--path".to_owned(), path.clone()],
        ),
    ] {
        let mut w = Helper::worker(&kf, id, 64);
        w.ok("create-660");
        w.kill();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let run = smobject(&args);
        let out = run.ok();
        assert!(
            out.contains(&format!("removed {}", hex(kf.key(id).raw()))),
            "{args:?}: {out}"
        );
        assert!(kf.is_clean(id), "{args:?} left the 0660 pair");
    }
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
        // The schema stored in the object, and the age of t-produce's write.
        assert_eq!(
            field(out, "schema"),
            "Telemetry, 40 bytes, align 8, 4 fields"
        );
        assert_eq!(
            schema_rows(out),
            [
                ("seq".to_owned(), 0, "u64".to_owned()),
                ("pos".to_owned(), 8, "[f64; 3]".to_owned()),
                ("status".to_owned(), 32, "u32".to_owned()),
                ("_pad".to_owned(), 36, "u32".to_owned()),
            ]
        );
        let last = field(out, "last write");
        let age = last.strip_suffix(" ago").map(seconds);
        assert!(age.is_some_and(|a| a >= 0.0), "{last}");
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
    // The commands that attach: the hint is the command line's next step, not the
    // library's functions.
    for args in [
        vec!["get", &kf.arg(), "n"],
        vec!["set", &kf.arg(), "n", "seq=1"],
        vec!["watch", &kf.arg(), "n", "--json", "--count", "1"],
    ] {
        let run = smobject(&args);
        let err = run.fails(1);
        assert!(
            err.starts_with("error: no shared object under this key"),
            "{args:?}: {err}"
        );
        assert!(
            err.contains("`smobject ls`") && !err.contains("open_or_create"),
            "{args:?}: {err}"
        );
    }
    // A negative key (key_t is signed; `ipcs` prints some so) is a key, not an option.
    for args in [
        vec!["inspect", "--key", "-1234567"],
        vec!["rm", "--key", "-1234567"],
    ] {
        let run = smobject(&args);
        let err = run.fails(1);
        assert!(
            err.starts_with("error: no shared object under this key") && err.contains("0xffed2979"),
            "{args:?}: {err}"
        );
    }
    for args in [
        vec!["ls", "--key", "-1234567"],
        vec!["gc", "--dry-run", "--key", "-1234567"],
    ] {
        let run = smobject(&args);
        run.ok();
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

#[test]
fn get_prints_every_field_or_the_fields_asked_in_text_and_json() {
    let kf = KeyFile::new("cli-get");
    let p = producer(&kf, b'g'); // seq 42, pos [1.5, -2.5, 3.25], status 7
    let path = kf.arg();

    let run = smobject(&["get", &path, "g"]);
    assert_eq!(
        get_lines(run.ok()),
        [
            "seq = 42",
            "pos = [1.5, -2.5, 3.25]",
            "status = 7",
            "_pad = 0"
        ]
    );
    let run = smobject(&["get", &path, "g", "--json"]);
    assert_eq!(run.ok().lines().count(), 1, "one JSON object: {run:#?}");
    assert_eq!(
        parse(&run.stdout),
        json!({"seq": 42, "pos": [1.5, -2.5, 3.25], "status": 7, "_pad": 0})
    );

    // Fields and elements by path, in the order given.
    let run = smobject(&["get", &path, "g", "pos[1]", "seq", "pos"]);
    assert_eq!(
        get_lines(run.ok()),
        ["pos[1] = -2.5", "seq = 42", "pos = [1.5, -2.5, 3.25]"]
    );
    let run = smobject(&["get", "--json", &path, "g", "pos[1]", "status"]);
    assert_eq!(parse(run.ok()), json!({"pos[1]": -2.5, "status": 7}));

    // An unknown field or element: exit 1 naming it, nothing printed.
    for (bad, named) in [
        ("nope", "`nope`"),
        ("pos[3]", "pos[3]"),
        ("seq.x", "seq.x"),
        ("pos[x]", "pos[x]"),
    ] {
        for json in [false, true] {
            let mut args = vec!["get", &path, "g", "seq", bad];
            if json {
                args.push("--json");
            }
            let run = smobject(&args);
            let err = run.fails(1);
            assert!(err.starts_with("error: "), "{err}");
            assert!(err.contains(named), "{bad}: {err}");
            assert_eq!(run.stdout, "", "printed before failing: {run:#?}");
        }
    }
    // A key with nothing under it.
    kf.key(b'n');
    let run = smobject(&["get", &path, "n"]);
    assert!(run
        .fails(1)
        .starts_with("error: no shared object under this key"));

    finish_producer(p);
    assert!(kf.is_clean(b'g') && kf.is_clean(b'n'));
}

#[test]
fn get_set_and_inspect_reach_nested_fields_by_dotted_paths() {
    let kf = KeyFile::new("cli-nested");
    kf.key(b'o');
    let shared = Shared::<Outer>::create_at(kf.path(), b'o').unwrap();
    shared.write(|o| {
        *o = Outer {
            a: Inner { b: 1, c: -2 },
            v: [1, 2, 3, 4],
            w: [Inner { b: 5, c: -6 }, Inner { b: 7, c: -8 }],
            t: 0.5,
            n: 9,
        };
    });
    let path = kf.arg();

    let run = smobject(&["get", &path, "o"]);
    assert_eq!(
        get_lines(run.ok()),
        [
            "a.b = 1",
            "a.c = -2",
            "v = [1, 2, 3, 4]",
            "w[0].b = 5",
            "w[0].c = -6",
            "w[1].b = 7",
            "w[1].c = -8",
            "t = 0.5",
            "n = 9",
        ]
    );
    let run = smobject(&["get", &path, "o", "--json"]);
    assert_eq!(
        parse(run.ok()),
        json!({"a": {"b": 1, "c": -2}, "v": [1, 2, 3, 4],
               "w": [{"b": 5, "c": -6}, {"b": 7, "c": -8}], "t": 0.5, "n": 9})
    );
    let run = smobject(&["get", &path, "o", "a.b", "a", "w[1].c"]);
    assert_eq!(
        get_lines(run.ok()),
        ["a.b = 1", "a = {b: 1, c: -2}", "w[1].c = -8"]
    );
    let run = smobject(&["get", &path, "o", "a.c", "w[1]", "--json"]);
    assert_eq!(
        parse(run.ok()),
        json!({"a.c": -2, "w[1]": {"b": 7, "c": -8}})
    );
    let run = smobject(&["get", &path, "o", "a.x"]);
    let err = run.fails(1);
    assert!(err.contains("`x`") && err.contains("Inner"), "{err}");

    // Nested fields and a partial struct (`c` keeps its value) in one write.
    let run = smobject(&["set", &path, "o", "a.c=5", "w[1]={b: 70}", "v[3]=65535"]);
    assert_eq!(run.ok(), "version 2\n");
    let got = shared.read();
    assert_eq!(got.a, Inner { b: 1, c: 5 });
    assert_eq!(got.w[1], Inner { b: 70, c: -8 });
    assert_eq!(got.v, [1, 2, 3, 65535]);
    let run = smobject(&["set", &path, "o", "v[0]=65536"]);
    assert!(run.fails(1).contains("v[0]"), "{run:#?}");
    assert_eq!(shared.version(), 2);

    // `inspect` lists nested fields with their offsets in the outer struct.
    let run = smobject(&["inspect", &path, "o"]);
    let out = run.ok();
    assert!(
        out.contains("\nschema        Outer, 40 bytes, align 4, 5 fields\n"),
        "{out}"
    );
    let rows = schema_rows(out);
    let row = |p: &str| {
        rows.iter()
            .find(|r| r.0 == p)
            .map_or_else(|| panic!("no `{p}` in {rows:?}"), |r| (r.1, r.2.as_str()))
    };
    assert_eq!(row("a"), (0, "Inner"));
    assert_eq!(row("a.b"), (0, "u32"));
    assert_eq!(row("a.c"), (4, "i32"));
    assert_eq!(row("v"), (8, "[u16; 4]"));
    assert_eq!(row("w"), (16, "[Inner; 2]"));
    assert_eq!(row("t"), (32, "f32"));
    assert_eq!(row("n"), (36, "u32"));

    drop(shared);
    assert!(kf.is_clean(b'o'));
}

#[test]
fn set_gives_up_after_10_s_when_another_process_holds_the_writer_lock() {
    let kf = KeyFile::new("cli-set-held");
    let p = producer(&kf, b'h'); // version 1: seq 42
    let path = kf.arg();
    let holder = Shared::<Telemetry>::access_at(kf.path(), b'h').unwrap();
    let guard = holder.lock().unwrap();
    let start = Instant::now();
    let run = smobject(&["set", &path, "h", "seq=7"]);
    let took = start.elapsed();
    let err = run.fails(1);
    assert!(
        err.contains("not free") && err.contains(&path) && err.contains("hint:"),
        "{err}"
    );
    assert!(
        took >= Duration::from_millis(9500),
        "gave up after {took:?}"
    );
    assert_eq!(holder.version(), 1, "nothing was written");
    // The guard publishes when it drops (version 2); then the same command writes.
    drop(guard);
    assert_eq!(smobject(&["set", &path, "h", "seq=7"]).ok(), "version 3\n");
    assert_eq!(holder.read().seq, 7);
    drop(holder);
    finish_producer(p);
    assert!(kf.is_clean(b'h'));
}

#[test]
fn set_writes_every_assignment_in_one_version_or_nothing() {
    let kf = KeyFile::new("cli-set");
    let p = producer(&kf, b's'); // version 1: seq 42, pos [1.5, -2.5, 3.25], status 7
    let path = kf.arg();
    let reader = Shared::<Telemetry>::access_at(kf.path(), b's').unwrap();
    assert_eq!(reader.version(), 1);

    let run = smobject(&["set", &path, "s", "seq=7", "pos[1]=2.5", "status=3"]);
    assert_eq!(run.ok(), "version 2\n", "three fields, one new version");
    assert_eq!(reader.version(), 2);
    let after = Telemetry {
        seq: 7,
        pos: [1.5, 2.5, 3.25],
        status: 3,
        _pad: 0,
    };
    assert_eq!(reader.read(), after);
    let run = smobject(&["get", &path, "s", "--json"]);
    assert_eq!(
        parse(run.ok()),
        json!({"seq": 7, "pos": [1.5, 2.5, 3.25], "status": 3, "_pad": 0})
    );

    // Invalid assignments, alone or after valid ones: exit 1 naming the field; nothing written.
    for (args, named) in [
        (vec!["status=-1"], "`status`"),
        (vec!["seq=100", "status=-1"], "`status`"),
        (vec!["seq=1.5"], "`seq`"),
        (vec!["status=4294967296"], "`status`"),
        (vec!["seq=8", "pos=[1, 2]"], "`pos`"),
        (vec!["pos[3]=1"], "pos[3]"),
        (vec!["seq=8", "nope=1"], "`nope`"),
        (vec!["seq"], "`seq`"),
    ] {
        let mut all = vec!["set", path.as_str(), "s"];
        all.extend(&args);
        let run = smobject(&all);
        let err = run.fails(1);
        assert!(err.starts_with("error: invalid value"), "{args:?}: {err}");
        assert!(err.contains(named), "{args:?} should name {named}: {err}");
        assert!(err.contains("nothing was written"), "{err}");
        assert_eq!(run.stdout, "", "{run:#?}");
        assert_eq!(reader.version(), 2, "{args:?} published a version");
        assert_eq!(reader.read(), after, "{args:?} changed the value");
    }

    // A whole array and a negative float.
    let run = smobject(&["set", &path, "s", "pos=[0.5, 1, -1e3]"]);
    assert_eq!(run.ok(), "version 3\n");
    let whole = Telemetry {
        pos: [0.5, 1.0, -1000.0],
        ..after
    };
    assert_eq!(reader.read(), whole);

    drop(reader);
    finish_producer(p);
    assert!(kf.is_clean(b's'));
}

#[test]
fn watch_json_prints_strictly_increasing_versions_of_a_live_writer() {
    let kf = KeyFile::new("cli-watch-json");
    kf.key(b'j');
    let shared = Shared::<Telemetry>::create_at(kf.path(), b'j').unwrap();
    // The only writer sets `seq` to the version it publishes.
    shared.write(|t| t.seq = 1);
    let stop = AtomicBool::new(false);
    let run = std::thread::scope(|s| {
        s.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                shared.write(|t| {
                    t.seq += 1;
                    t.status = t.seq as u32;
                });
                std::thread::sleep(Duration::from_millis(1));
            }
        });
        let run = smobject(&["watch", &kf.arg(), "j", "--json", "--count", "20"]);
        stop.store(true, Ordering::Relaxed);
        run
    });
    let out = run.ok();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 20, "{out}");
    let mut prev = 0;
    for l in lines {
        let v = parse(l);
        let obj = v
            .as_object()
            .unwrap_or_else(|| panic!("not an object: {l}"));
        let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(keys, ["value", "version"], "{l}");
        let version = v["version"].as_u64().unwrap();
        assert!(version > prev, "not strictly increasing: {out}");
        prev = version;
        // Each line is one snapshot and its own version.
        assert_eq!(v["value"]["seq"].as_u64(), Some(version), "{l}");
        assert_eq!(v["value"]["status"].as_u64(), Some(version), "{l}");
        assert_eq!(v["value"]["pos"], json!([0.0, 0.0, 0.0]), "{l}");
    }
    drop(shared);
    assert!(kf.is_clean(b'j'));
}

#[test]
fn watch_json_sleeps_until_the_next_write_and_ends_quietly_on_a_closed_pipe() {
    let kf = KeyFile::new("cli-watch-block");
    kf.key(b'b');
    let shared = Shared::<Telemetry>::create_at(kf.path(), b'b').unwrap();
    shared.write(|t| t.seq = 10);
    let path = kf.arg();

    // The current value at once; nothing more without a write; the write's value next.
    let mut w = Watch::start(&[&path, "b", "--json", "--count", "2"]);
    let first = parse(&w.line());
    assert_eq!(
        first,
        json!({"version": 1, "value": {"seq": 10, "pos": [0.0, 0.0, 0.0], "status": 0, "_pad": 0}})
    );
    assert_eq!(
        w.try_line(Duration::from_millis(300)),
        None,
        "a line without a write"
    );
    assert!(w.exited().is_none(), "watch exited without a write");
    shared.write(|t| t.seq = 11);
    let second = parse(&w.line());
    assert_eq!(second["version"], 2);
    assert_eq!(second["value"]["seq"], 11);
    assert_eq!(w.finish(), Some(0), "--count 2 ends after two lines");

    // Without --count: runs until its stdout is closed, then ends without a panic.
    let mut w = Watch::start(&[&path, "b", "--json"]);
    assert_eq!(parse(&w.line())["version"], 2);
    w.close_stdout();
    let start = Instant::now();
    while w.exited().is_none() {
        assert!(
            start.elapsed() < WAIT,
            "watch kept running with stdout closed"
        );
        shared.write(|t| t.seq += 1); // wakes it: its next line fails with EPIPE
        std::thread::sleep(Duration::from_millis(10));
    }
    let code = w.finish();
    assert!(matches!(code, Some(0 | 1)), "exit {code:?}");

    drop(shared);
    assert!(kf.is_clean(b'b'));
}

#[test]
fn get_and_watch_json_never_show_a_torn_value_under_a_flat_out_writer() {
    let kf = KeyFile::new("cli-torn");
    kf.key(b'f');
    let mut writer = Helper::spawn(&["t-tele-writer", &kf.arg(), "f"]);
    assert_eq!(writer.line(), "ok");
    let path = kf.arg();

    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..200 {
        let run = smobject(&["get", &path, "f", "--json"]);
        seen.insert(untorn(&parse(run.ok())));
    }
    // Evidence that the values were being written while read (else the check is vacuous).
    assert!(seen.len() > 1, "the writer made no progress: {seen:?}");

    let run = smobject(&["watch", &path, "f", "--json", "--count", "200"]);
    let out = run.ok();
    let mut prev = 0;
    let mut lines = 0;
    for l in out.lines() {
        let v = parse(l);
        let version = v["version"].as_u64().unwrap();
        assert!(version > prev, "not strictly increasing: {prev} then {l}");
        prev = version;
        // The writer created the object and is its only writer: value i is version i.
        assert_eq!(untorn(&v["value"]), version, "{l}");
        lines += 1;
    }
    assert_eq!(lines, 200);

    writer.send("stop");
    assert!(writer.line().starts_with("done "));
    assert!(writer.wait().success());
    assert!(kf.is_clean(b'f'));
}

#[test]
fn inspect_and_ls_show_the_age_of_the_last_write() {
    let kf = KeyFile::new("cli-age");
    let key = kf.key(b'l');
    let shared = Shared::<Telemetry>::create_at(kf.path(), b'l').unwrap();
    shared.write(|t| t.seq = 1);
    let path = kf.arg();
    let inspect_age = || {
        let run = smobject(&["inspect", &path, "l"]);
        let line = run
            .ok()
            .lines()
            .find_map(|l| l.strip_prefix("last write"))
            .unwrap_or_else(|| panic!("no `last write` line: {run:#?}"))
            .trim()
            .to_owned();
        seconds(
            line.strip_suffix(" ago")
                .unwrap_or_else(|| panic!("{line}")),
        )
    };
    let ls_age = || {
        let run = smobject(&["ls", "--path", &path]);
        seconds(&ls_row(run.ok(), key.raw())[11])
    };
    let json_age = || {
        let run = smobject(&["ls", "--json", "--key", &hex(key.raw())]);
        ls_json(run.ok(), key.raw())["last_write_s"]
            .as_f64()
            .expect("last_write_s is a number")
    };

    // No write for 1.2 s: every view says at least about that (lower bounds only, which a
    // slow machine cannot break; the stamp is at the kernel tick's resolution).
    std::thread::sleep(Duration::from_millis(1200));
    assert!(inspect_age() >= 1.0);
    assert!(ls_age() >= 1.0);
    assert!(json_age() >= 1.0);

    // After a write, no view reports more than the time since it (plus rounding and a tick).
    let before = Instant::now();
    shared.write(|t| t.seq = 2);
    let (i, l, j) = (inspect_age(), ls_age(), json_age());
    let bound = before.elapsed().as_secs_f64() + 0.1;
    assert!(
        i <= bound && l <= bound && j <= bound,
        "{i} {l} {j} > {bound}"
    );

    drop(shared);
    assert!(kf.is_clean(b'l'));
}

#[test]
fn an_untyped_object_has_no_schema_for_get_set_or_inspect() {
    let kf = KeyFile::new("cli-untyped");
    let mut w = Helper::worker(&kf, b'u', 64);
    w.ok("create");
    let path = kf.arg();

    let run = smobject(&["inspect", &path, "u"]);
    let out = run.ok();
    assert!(
        out.contains("\nschema        none (an untyped object: bytes only)\n"),
        "{out}"
    );
    assert!(
        out.contains("(the creation: never written)"),
        "never written: {out}"
    );
    for args in [vec!["get", &path, "u"], vec!["set", &path, "u", "x=1"]] {
        let run = smobject(&args);
        let err = run.fails(1);
        assert!(err.starts_with("error: layout mismatch"), "{err}");
        assert!(err.contains("no schema"), "{err}");
    }
    let run = smobject(&["watch", &path, "u", "--json", "--count", "1"]);
    assert!(run.fails(1).contains("no schema"));
    assert_eq!(w.ok("ctr"), "1", "the failed attaches left the count alone");
    w.exit();
    assert!(kf.is_clean(b'u'));
}

/// Whether this process may make IPC namespaces and enter them (`unshare`, `nsenter`: root).
fn ipc_namespaces_available() -> bool {
    let ok = |p: &str, a: &[&str]| {
        Command::new(p)
            .args(a)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    ok("unshare", &["--ipc", "true"]) && ok("nsenter", &["--version"])
}

#[test]
fn ls_and_inspect_list_only_the_pids_of_the_callers_ipc_namespace() {
    if !ipc_namespaces_available() {
        eprintln!("NOTE: needs root, unshare and nsenter; skipped");
        return;
    }
    let kf = KeyFile::new("cli-ns");
    let key = kf.key(b'a');
    // Two producers of the same object (same key file and id), each in a fresh IPC namespace
    // of its own: the same creation in two empty namespaces gives the same shmids, so the
    // number alone cannot tell their attachments apart.
    let in_fresh_namespace = || {
        let mut cmd = Command::new("unshare");
        cmd.arg("--ipc")
            .arg(helper_exe())
            .args(["t-produce", &kf.arg(), "a"]);
        let mut h = Helper::spawn_with(&mut cmd); // unshare execs: the helper keeps its pid
        assert_eq!(h.line(), "ok");
        h
    };
    let (ours, other) = (in_fresh_namespace(), in_fresh_namespace());
    let ns_of = |h: &Helper| format!("--ipc=/proc/{}/ns/ipc", h.pid());
    let (ours_ns, other_ns) = (ns_of(&ours), ns_of(&other));
    let ls_in = |ns: &str| {
        let run = smobject_via(
            &["nsenter", ns],
            &["ls", "--json", "--key", &hex(key.raw())],
        );
        ls_json(run.ok(), key.raw())
    };
    let (a, b) = (ls_in(&ours_ns), ls_in(&other_ns));
    assert_eq!(
        (&a["data_shmid"], &a["counter_shmid"]),
        (&b["data_shmid"], &b["counter_shmid"]),
        "the shmids must collide for this test to mean anything"
    );
    assert_eq!(a["pids"], json!([ours.pid()]), "{a}");
    assert_eq!(b["pids"], json!([other.pid()]), "{b}");
    assert_eq!(a["nattch"], 1);

    // The table's PIDS column, inspect's attached pids, and rm's refusal.
    let run = smobject_via(&["nsenter", &ours_ns], &["ls", "--key", &hex(key.raw())]);
    assert_eq!(ls_row(run.ok(), key.raw())[8], ours.pid().to_string());
    let run = smobject_via(&["nsenter", &ours_ns], &["inspect", &kf.arg(), "a"]);
    let line = run
        .ok()
        .lines()
        .find_map(|l| l.strip_prefix("attached pids"))
        .unwrap_or_else(|| panic!("no `attached pids` line: {run:#?}"))
        .trim()
        .to_owned();
    assert!(line.starts_with(&format!("{} (", ours.pid())), "{line}");
    assert!(!line.contains(&other.pid().to_string()), "{line}");
    let run = smobject_via(&["nsenter", &ours_ns], &["rm", &kf.arg(), "a"]);
    let err = run.fails(1);
    assert!(
        err.contains(&format!("attached: pid {} (", ours.pid())),
        "{err}"
    );
    assert!(!err.contains(&other.pid().to_string()), "{err}");

    // Nothing in the test's own namespace; each namespace (and its pair) goes with its process.
    assert!(kf.is_clean(b'a'));
    finish_producer(ours);
    finish_producer(other);
}

#[test]
fn rm_force_by_path_holds_the_key_file_lock_for_at_most_10_s() {
    let kf = KeyFile::new("cli-rm-lock");
    let mut f = Helper::worker(&kf, b'f', 64);
    let mut k = Helper::worker(&kf, b'k', 64);
    f.ok("create");
    k.ok("create");
    // Another process holds the key file's flock, as a stopped creator would (one process:
    // the shell that locks its fd 9 becomes the `sleep` holding it).
    let script = format!("exec 9<'{}'; flock 9; echo locked; exec sleep 30", kf.arg());
    let mut holder = Helper::spawn_with(Command::new("sh").args(["-c", &script]));
    assert_eq!(holder.line(), "locked");

    let start = Instant::now();
    let run = smobject(&["rm", "--force", &kf.arg(), "f"]);
    let waited = start.elapsed();
    let err = run.fails(1);
    assert!(
        err.starts_with("error: the key file's lock was not free within 10s"),
        "{err}"
    );
    assert!(err.contains(&kf.arg()) && err.contains("'f'"), "{err}");
    assert!(err.contains("rm --force --key"), "{err}");
    assert!(
        waited >= Duration::from_millis(9_500),
        "gave up after {waited:?}"
    );
    assert!(!kf.is_clean(b'f'), "removed without the lock");

    // By key, no lock is taken: removed at once, lock held or not.
    let start = Instant::now();
    let run = smobject(&["rm", "--force", "--key", &hex(kf.key(b'k').raw())]);
    assert!(run.ok().starts_with("removed "), "{run:#?}");
    assert!(start.elapsed() < Duration::from_secs(5));
    assert!(kf.is_clean(b'k'));

    // Once the holder is gone, the lock is free and the removal goes through.
    drop(holder);
    let run = smobject(&["rm", "--force", &kf.arg(), "f"]);
    let out = run.ok();
    assert!(out.starts_with("removed "), "{out}");
    assert!(out.contains("1 attachment(s) remain"), "{out}");
    assert!(kf.is_clean(b'f'));
    f.exit();
    k.exit();
}

#[test]
fn a_pair_this_user_may_not_read_is_unreadable_not_corrupt() {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 || Command::new("setpriv").arg("--version").output().is_err()
    {
        eprintln!("NOTE: needs root and setpriv; skipped");
        return;
    }
    let kf = KeyFile::new("cli-unreadable");
    let key = kf.key(b'u');
    // A healthy, live object of root's, mode 0600: nobody may not attach it to read the header.
    let shared = Shared::<Telemetry>::create_at(kf.path(), b'u').unwrap();
    shared.write(|t| t.seq = 1);
    let nobody = [
        "setpriv",
        "--reuid=nobody",
        "--regid=nogroup",
        "--clear-groups",
    ];
    let k = hex(key.raw());

    let run = smobject_via(&nobody, &["ls", "--key", &k]);
    let row = ls_row(run.ok(), key.raw());
    assert_eq!(row[9], "unreadable", "{row:?}");
    assert!(run.stderr.contains("permission"), "{run:#?}");
    assert!(!run.stdout.contains("corrupt"), "{run:#?}");

    let run = smobject_via(&nobody, &["ls", "--json", "--key", &k]);
    let o = ls_json(run.ok(), key.raw());
    assert_eq!(o["state"], "unreadable", "{o}");
    assert!(
        o["header_error"]
            .as_str()
            .is_some_and(|e| e.contains("permission denied")),
        "{o}"
    );

    for target in [
        vec![kf.arg(), "u".to_owned()],
        vec!["--key".to_owned(), k.clone()],
    ] {
        let mut args = vec!["inspect"];
        args.extend(target.iter().map(String::as_str));
        let run = smobject_via(&nobody, &args);
        let out = run.ok();
        assert!(out.starts_with("state         unreadable\n"), "{out}");
        assert!(out.contains("run as their owner or as root"), "{out}");
        assert!(!out.contains("corrupt"), "{out}");
    }

    // Root (the owner) still sees it live.
    let run = smobject(&["ls", "--json", "--key", &k]);
    assert_eq!(ls_json(run.ok(), key.raw())["state"], "live");
    drop(shared);
    assert!(kf.is_clean(b'u'));
}

#[test]
fn watch_refuses_count_0_with_and_without_json() {
    let kf = KeyFile::new("cli-watch-0");
    let p = producer(&kf, b'z');
    let path = kf.arg();
    for json in [false, true] {
        let mut args = vec!["watch", &path, "z", "--count", "0"];
        if json {
            args.push("--json");
        }
        let run = smobject(&args);
        let err = run.fails(2);
        assert!(err.contains("--count"), "{args:?}: {err}");
        assert_eq!(run.stdout, "", "{args:?}: printed something: {run:#?}");
    }
    // `--count 1`: one sample either way.
    let run = smobject(&["watch", &path, "z", "--count", "1", "--interval", "10ms"]);
    assert_eq!(
        run.ok().lines().count(),
        3,
        "title, header, 1 sample: {run:#?}"
    );
    let run = smobject(&["watch", &path, "z", "--json", "--count", "1"]);
    assert_eq!(run.ok().lines().count(), 1, "{run:#?}");
    finish_producer(p);
    assert!(kf.is_clean(b'z'));
}

#[test]
fn a_missing_key_file_for_ls_or_gc_is_named_without_an_invented_id() {
    for cmd in ["ls", "gc"] {
        let run = smobject(&[cmd, "--path", "/no/such/file"]);
        let err = run.fails(1);
        assert!(
            err.starts_with("error: key file not found (path /no/such/file)"),
            "{cmd}: {err}"
        );
        assert!(err.contains("hint:"), "{cmd}: {err}");
        assert!(
            !err.contains("id '"),
            "{cmd}: an id the user never gave: {err}"
        );
        assert_eq!(run.stdout, "", "{cmd}: {run:#?}");
    }
}

#[test]
fn subscribe_refuses_a_pattern_before_making_a_key_file_and_hints_at_a_bad_listen_address() {
    let kf = KeyFile::new("cli-subscribe-args");
    kf.key(b'a');
    let never = kf.path().with_extension("never");
    let never_arg = never.to_string_lossy().into_owned();
    for pattern in ["robot/*", "robot/**", "robot//x"] {
        let run = smobject(&["subscribe", pattern, &never_arg, "a"]);
        let err = run.fails(1);
        assert!(
            err.contains("key expression") && !err.contains("endpoints"),
            "{run:#?}"
        );
        assert!(!never.exists(), "no key file made for {pattern}");
    }
    // 192.0.2.1 (TEST-NET-1) is no host's address: the listener cannot bind.
    let run = smobject(&[
        "subscribe",
        "robot/x",
        &kf.arg(),
        "a",
        "--listen",
        "tcp/192.0.2.1:7447",
    ]);
    assert!(
        run.fails(1)
            .contains("--listen address must be one of this host's"),
        "{run:#?}"
    );
    assert!(kf.is_clean(b'a'));
}
