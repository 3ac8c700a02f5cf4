//! A C program shares a `Telemetry` with Rust: it is compiled with `gcc` against the header
//! `smobject::c_header` generates, attaches the way the original C++ class did (`ftok` keys,
//! the `int` count at offset 0), reads consistently with the header's read function, and counts
//! correctly beside smobject: the pair is not freed while it is attached, and is stale (and
//! reclaimed) once it has left.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use smobject::Shared;
use tests::structs::Telemetry;
use tests::{nattch, Helper, KeyFile};

/// A temp dir holding the generated header and the compiled C program; removed on drop.
struct CProgram {
    dir: PathBuf,
}

impl CProgram {
    /// Writes `telemetry.h` from `smobject::c_header::<Telemetry>()` and compiles
    /// `tests/c/legacy_reader.c` against it.
    fn build(name: &str) -> CProgram {
        let program = CProgram::with_header(name);
        compile_c(&program.dir, "legacy_reader.c", &program.exe());
        program
    }

    /// A temp dir holding only `telemetry.h` (for a test that compiles its own program).
    fn with_header(name: &str) -> CProgram {
        let which = Command::new("which").arg("gcc").output();
        let found = which.as_ref().is_ok_and(|o| o.status.success());
        assert!(
            found,
            "the interop tests need a C compiler: `gcc` was not found on PATH (install it, e.g. `apt-get install gcc`)"
        );
        let dir =
            std::env::temp_dir().join(format!("smobject-interop-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let program = CProgram { dir };
        std::fs::write(
            program.dir.join("telemetry.h"),
            smobject::c_header::<Telemetry>(),
        )
        .unwrap();
        program
    }

    fn exe(&self) -> PathBuf {
        self.dir.join("legacy_reader")
    }

    fn spawn(&self, kf: &KeyFile) -> Helper {
        Helper::spawn_with(Command::new(self.exe()).arg(kf.path()))
    }
}

impl Drop for CProgram {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Compiles `tests/c/<source>` into `exe` with `-I dir` (where the generated header is).
fn compile_c(dir: &Path, source: &str, exe: &Path) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("c").join(source);
    let out = Command::new("gcc")
        .args(["-std=c11", "-O2", "-Wall", "-Wextra", "-Werror", "-I"])
        .arg(dir)
        .arg(&src)
        .arg("-o")
        .arg(exe)
        .output()
        .expect("running gcc");
    assert!(
        out.status.success(),
        "gcc failed on {} with the generated header:\n{}",
        src.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The header's prefix copy (a C program built with an older struct reads the first bytes of a
/// newer build's object) loads in the *object's* granules, as the Rust reader does, so its
/// loads never overlap a writer's stores of another size: `tests/c/granules.c` records every
/// load for each object length below 40 and each prefix, and checks it against the rule.
#[test]
fn the_c_headers_prefix_copy_loads_only_the_objects_granules() {
    let c = CProgram::with_header("granules");
    let exe = c.dir.join("granules");
    compile_c(&c.dir, "granules.c", &exe);
    let run = Command::new(&exe).output().unwrap();
    let out = String::from_utf8_lossy(&run.stdout);
    // 40 lengths, len + 1 prefixes each.
    assert_eq!(out.trim(), "ok 820", "{run:?}");
    assert!(run.status.success());
}

#[test]
fn c_reader_counts_itself_in_and_keeps_the_pair_alive() {
    let c = CProgram::build("alive");
    let kf = KeyFile::new("interop-alive");
    kf.key(b'a');
    let producer = Shared::<Telemetry>::create_at(kf.path(), b'a').unwrap();
    producer.write(|t| {
        t.seq = 42;
        t.pos = [1.5, -2.5, 3.25];
        t.status = 7;
    });

    let mut reader = c.spawn(&kf);
    assert_eq!(reader.line(), "attached count=2");
    assert_eq!(producer.raw().mem_ctr(), 2, "the C increment is seen");
    assert_eq!(producer.attached().unwrap(), 2, "the kernel agrees");
    assert_eq!(
        reader.cmd("read"),
        "seq=42 pos=1.5,-2.5,3.25 status=7 version=1"
    );
    producer.write(|t| t.seq = 43);
    assert_eq!(
        reader.cmd("read"),
        "seq=43 pos=1.5,-2.5,3.25 status=7 version=2"
    );

    // The last Rust handle goes while the C process is attached: nothing is freed.
    let (data_id, counter_id) = producer.raw().shmids();
    drop(producer);
    assert_eq!(
        kf.segments(b'a'),
        (Some(data_id), Some(counter_id)),
        "the pair survives while C is attached"
    );
    assert_eq!(nattch(data_id), 1);
    let here = Shared::<Telemetry>::access_at(kf.path(), b'a').unwrap();
    assert_eq!(here.read().seq, 43, "the value is still there");
    assert_eq!(here.raw().mem_ctr(), 2);
    drop(here);
    assert_eq!(kf.segments(b'a'), (Some(data_id), Some(counter_id)));

    // C leaves the original way (decrement, detach): the pair is stale, not freed by anyone.
    assert_eq!(reader.cmd("detach"), "detached");
    assert!(reader.wait().success());
    assert_eq!(kf.segments(b'a'), (Some(data_id), Some(counter_id)));
    assert_eq!((nattch(data_id), nattch(counter_id)), (0, 0), "stale");

    // smobject reclaims it.
    let removed = smobject::remove_stale(kf.path(), b'a');
    assert!(matches!(removed, Ok(true)), "remove_stale: {removed:?}");
    assert!(kf.is_clean(b'a'), "no segment remains");
}

#[test]
fn next_rust_creator_reclaims_what_c_left() {
    let c = CProgram::build("reclaim");
    let kf = KeyFile::new("interop-reclaim");
    kf.key(b'a');
    let producer = Shared::<Telemetry>::create_at(kf.path(), b'a').unwrap();
    producer.write(|t| t.seq = 1);
    let old = producer.raw().shmids();
    let mut reader = c.spawn(&kf);
    assert_eq!(reader.line(), "attached count=2");
    drop(producer);
    assert_eq!(reader.cmd("detach"), "detached");
    assert!(reader.wait().success());
    assert_eq!(kf.segments(b'a'), (Some(old.0), Some(old.1)), "stale pair");

    let fresh = Shared::<Telemetry>::create_at(kf.path(), b'a').unwrap();
    assert!(fresh.created());
    assert_ne!(fresh.raw().shmids(), old, "a new pair");
    assert_eq!((fresh.version(), fresh.read().seq), (0, 0));
    assert_eq!(fresh.raw().mem_ctr(), 1);
    drop(fresh);
    assert!(kf.is_clean(b'a'), "no segment remains");
}

#[test]
fn c_reads_are_never_torn_while_rust_writes() {
    let c = CProgram::build("torn");
    let kf = KeyFile::new("interop-torn");
    kf.key(b'a');
    let producer = Arc::new(Shared::<Telemetry>::create_at(kf.path(), b'a').unwrap());
    let mut reader = c.spawn(&kf);
    assert_eq!(reader.line(), "attached count=2");
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (producer, stop) = (Arc::clone(&producer), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                #[allow(clippy::cast_precision_loss)] // i stays far below 2^53
                let x = i as f64;
                producer.write(|t| {
                    t.seq = i;
                    t.pos = [x, x, x];
                });
            }
            i
        })
    };
    let start = std::time::Instant::now();
    while producer.version() < 1000 {
        assert!(
            start.elapsed() < tests::WAIT,
            "the writer thread does not write"
        );
        std::thread::yield_now();
    }
    // Reads for 300 ms: on a loaded machine the reader and the writer may share a CPU, so
    // the value changes only at context switches; 300 ms still spans dozens of them.
    let before = producer.version();
    let answer = reader.cmd("torn 300");
    let during = producer.version() - before;
    println!("C reader: {answer}; {during} writes meanwhile");
    stop.store(true, Ordering::Relaxed);
    let published = writer.join().unwrap();
    // "torn=T distinct=D reads=R"
    let field = |name: &str| -> u64 {
        answer
            .split_whitespace()
            .find_map(|w| w.strip_prefix(name)?.strip_prefix('='))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in the answer {answer:?}"))
    };
    assert_eq!(
        field("torn"),
        0,
        "torn C reads: {answer}, {published} writes"
    );
    assert!(
        field("distinct") > 1,
        "the reads did not overlap the writes: {answer}, {published} writes"
    );
    assert_eq!(reader.cmd("detach"), "detached");
    assert!(reader.wait().success());
    let producer = Arc::try_unwrap(producer).unwrap();
    drop(producer);
    // C detached first, so the Rust drop was the last one out.
    assert!(kf.is_clean(b'a'), "no segment remains");
}

/// Compiles `tests/c/prefix_reader.c` against `sensor.h` generated for one build of
/// `evo::Sensor`, runs it on the object under `(kf, 'e')` and returns its line.
fn prefix_reader(header: &str, kf: &KeyFile) -> String {
    let dir = std::env::temp_dir().join(format!(
        "smobject-interop-prefix-{}-{}",
        std::process::id(),
        kf.path().display().to_string().len() + header.len()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("sensor.h"), header).unwrap();
    let exe = dir.join("prefix_reader");
    compile_c(&dir, "prefix_reader.c", &exe);
    let run = Command::new(&exe).arg(kf.path()).output().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(run.status.success(), "{run:?}");
    String::from_utf8_lossy(&run.stdout).trim().to_owned()
}

/// The generated header applies the append-only rule too: a C program built with the older
/// struct reads its prefix of a newer object; one built with the newer struct refuses an older
/// object, and so does one whose field changed type.
#[test]
fn the_c_header_checks_the_prefix_rule() {
    use tests::structs::evo::{changed, v1, v2};
    let kf = KeyFile::new("interop-prefix");
    kf.key(b'e');
    let v1_header = smobject::c_header::<v1::Sensor>();
    let v2_header = smobject::c_header::<v2::Sensor>();
    let newer = Shared::<v2::Sensor>::create_with_at(
        kf.path(),
        b'e',
        v2::Sensor {
            seq: 9,
            pos: [1.0, 2.5, -3.0],
            status: 1,
            mode: 2,
            temp: 3.0,
        },
    )
    .unwrap();
    assert_eq!(prefix_reader(&v1_header, &kf), "check=0 seq=9 pos=1,2.5,-3");
    assert_eq!(prefix_reader(&v2_header, &kf), "check=0 seq=9 pos=1,2.5,-3");
    drop(newer);

    let older = Shared::<v1::Sensor>::create_at(kf.path(), b'e').unwrap();
    older.write(|s| s.seq = 4);
    assert_eq!(prefix_reader(&v1_header, &kf), "check=0 seq=4 pos=0,0,0");
    assert_eq!(prefix_reader(&v2_header, &kf), "check=-1");
    assert_eq!(
        prefix_reader(&smobject::c_header::<changed::Sensor>(), &kf),
        "check=-1"
    );
    drop(older);
    assert!(kf.is_clean(b'e'));
}
