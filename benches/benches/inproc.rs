//! In-process figures, measured with criterion, each next to its raw baseline from the same
//! run: the object lifecycle (create/access + drop versus the raw single-segment SysV
//! sequence), first touch, and `read`/`write` versus a raw copy from/to the same mapping.
//!
//! `cargo bench -p smobject-benches --bench inproc` measures and prints the ratio table
//! (medians of criterion's samples); `-- --test` runs every benchmark once without timing
//! (the CI smoke run). Refuses to measure when the machine is busy unless
//! `SMOBJECT_BENCH_FORCE=1`.

// Nanosecond and sample counts, all far below 2^52.
#![allow(clippy::cast_precision_loss)]

use std::hint::black_box;
use std::mem::{size_of, MaybeUninit};
use std::path::Path;
use std::time::Duration;

use criterion::{BenchmarkGroup, Criterion, SamplingMode};
use smobject::Shared;
use smobject_benches::keyfile::KeyFile;
use smobject_benches::raw;
use smobject_benches::report::{self, Goal, Row};
use smobject_benches::structs::{Big, Huge, Page, Small, Words};

type Group<'a> = BenchmarkGroup<'a, criterion::measurement::WallTime>;

fn slug<T: Words>() -> String {
    T::LABEL.replace(' ', "")
}

fn group<'a, T: Words>(c: &'a mut Criterion, what: &str) -> Group<'a> {
    let mut g = c.benchmark_group(format!("{what}_{}", slug::<T>()));
    if size_of::<T>() >= 1 << 20 {
        // Milliseconds per iteration: fewer, flat samples keep the run short.
        g.sample_size(10).sampling_mode(SamplingMode::Flat);
    }
    g
}

/// `create_at` + drop, `access_at` + drop, and the raw sequences.
fn lifecycle<T: Words>(c: &mut Criterion, key: &KeyFile) {
    let path = key.path();
    let size = size_of::<T>();
    let mut g = group::<T>(c, "lifecycle");
    g.bench_function("raw_create", |b| {
        b.iter(|| raw::lifecycle(key.key(b'r'), size, 0).expect("raw lifecycle"));
    });
    g.bench_function("smobject_create", |b| {
        b.iter(|| drop(Shared::<T>::create_at(path, b'A').expect("create_at")));
    });
    let holder = Shared::<T>::create_at(path, b'B').expect("create_at (holder)");
    g.bench_function("smobject_access", |b| {
        b.iter(|| drop(Shared::<T>::access_at(path, b'B').expect("access_at")));
    });
    drop(holder);
    let id = raw::shmget(
        key.key(b's'),
        size,
        libc::IPC_CREAT | libc::IPC_EXCL | 0o600,
    )
    .expect("raw segment for attach");
    g.bench_function("raw_attach", |b| {
        b.iter(|| raw::attach_detach(key.key(b's')).expect("raw attach"));
    });
    raw::rmid(id).expect("IPC_RMID");
    g.finish();
}

/// First touch of every page: raw versus smobject (same touches through `raw().as_ptr()`),
/// and smobject's first `write`, which also fills the backup copy.
fn first_touch<T: Words>(c: &mut Criterion, key: &KeyFile) {
    let path = key.path();
    let size = size_of::<T>();
    let mut g = group::<T>(c, "touch");
    g.bench_function("raw_touch", |b| {
        b.iter(|| raw::lifecycle(key.key(b'r'), size, size).expect("raw lifecycle"));
    });
    g.bench_function("smobject_touch", |b| {
        b.iter(|| {
            let s = Shared::<T>::create_at(path, b'A').expect("create_at");
            // SAFETY: the data segment holds `size` bytes; only this thread uses the object.
            unsafe { raw::touch_pages(s.raw().as_ptr(), size) };
        });
    });
    g.bench_function("smobject_first_write", |b| {
        b.iter(|| {
            let s = Shared::<T>::create_at(path, b'A').expect("create_at");
            s.write(|t| t.words_mut()[0] = 1);
        });
    });
    g.finish();
}

/// `read` by value (64 B, 4 KiB) and `write` versus raw copies from/to the same mapping.
fn read_write_small<T: Words + Copy>(c: &mut Criterion, key: &KeyFile) {
    let s = Shared::<T>::create_at(key.path(), b'C').expect("create_at");
    let src = fill::<T>(&s);
    let data = s.raw().as_ptr();
    let mut g = group::<T>(c, "read");
    g.bench_function("raw_copy", |b| {
        b.iter(|| {
            let mut out = MaybeUninit::<T>::uninit();
            // SAFETY: the mapping holds size_of::<T>() bytes and `out` has room for them;
            // nobody writes the object during this benchmark.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    black_box(data),
                    out.as_mut_ptr().cast::<u8>(),
                    size_of::<T>(),
                );
            };
            black_box(&out);
        });
    });
    g.bench_function("raw_copy_runtime_len", |b| {
        b.iter(|| {
            let mut out = MaybeUninit::<T>::uninit();
            // SAFETY: as above; the length is hidden from the optimiser, so this is the
            // `memcpy` call an untyped reader (and `Region::read`) makes.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    black_box(data),
                    out.as_mut_ptr().cast::<u8>(),
                    black_box(size_of::<T>()),
                );
            };
            black_box(&out);
        });
    });
    // Every variant leaves its value in a local and hands `black_box` a reference to it, so all
    // pay the same harness costs: `black_box(value)` of a call's result, or returning the value
    // from the closure, adds copies of it (4 KiB each) that are not the read's.
    g.bench_function("raw_read_value", |b| {
        b.iter(|| {
            // SAFETY: the mapping holds one T (page-aligned, FromBytes); nobody writes the object
            // during this benchmark. A by-value read, as `read` returns.
            let value = unsafe { std::ptr::read(black_box(data).cast::<T>()) };
            black_box(&value);
        });
    });
    g.bench_function("smobject_read", |b| {
        b.iter(|| {
            let value = s.read();
            black_box(&value);
        });
    });
    let mut into = T::boxed_zeroed();
    g.bench_function("smobject_read_into", |b| {
        b.iter(|| {
            s.read_into(&mut into);
            black_box(&into);
        });
    });
    g.finish();
    write_pair(c, &s, &src);
}

/// `read_into` (1 MiB: a by-value `read` would put it on the stack) and `write`.
fn read_write_big<T: Words>(c: &mut Criterion, key: &KeyFile) {
    let s = Shared::<T>::create_at(key.path(), b'C').expect("create_at");
    let src = fill::<T>(&s);
    let data = s.raw().as_ptr();
    let mut out = T::boxed_zeroed();
    let mut g = group::<T>(c, "read");
    g.bench_function("raw_copy", |b| {
        b.iter(|| {
            // SAFETY: the mapping and `out` hold size_of::<T>() bytes each; nobody writes the
            // object during this benchmark.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    black_box(data),
                    std::ptr::from_mut(&mut *out).cast::<u8>(),
                    size_of::<T>(),
                );
            };
            black_box(&out);
        });
    });
    g.bench_function("smobject_read", |b| {
        b.iter(|| {
            s.read_into(&mut out);
            black_box(&out);
        });
    });
    g.finish();
    write_pair(c, &s, &src);
}

#[allow(clippy::unnecessary_box_returns)] // 1 MiB values live on the heap
fn fill<T: Words>(s: &Shared<T>) -> Box<T> {
    let mut src = T::boxed_zeroed();
    src.words_mut().fill(7);
    s.write(|t| t.words_mut().copy_from_slice(src.words()));
    src
}

fn write_pair<T: Words>(c: &mut Criterion, s: &Shared<T>, src: &T) {
    let data = s.raw().as_ptr();
    let mut g = group::<T>(c, "write");
    g.bench_function("raw_copy", |b| {
        b.iter(|| {
            // SAFETY: `src` and the mapping hold size_of::<T>() bytes each; this thread is
            // the only one using the object.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    std::ptr::from_ref(black_box(src)).cast::<u8>(),
                    black_box(data),
                    size_of::<T>(),
                );
            };
        });
    });
    g.bench_function("smobject_write", |b| {
        b.iter(|| s.write(|t| t.words_mut().copy_from_slice(black_box(src).words())));
    });
    g.finish();
}

/// Criterion's median estimate (ns) of `group/function`, if it was measured in this run.
fn median(dir: &Path, group: &str, function: &str) -> Option<f64> {
    let json = std::fs::read_to_string(
        dir.join(group)
            .join(function)
            .join("new")
            .join("estimates.json"),
    )
    .ok()?;
    let rest = &json[json.find("\"median\"")?..];
    let rest = &rest[rest.find("\"point_estimate\":")? + "\"point_estimate\":".len()..];
    let end = rest.find([',', '}'])?;
    rest[..end].trim().parse().ok()
}

#[allow(clippy::too_many_lines)] // a flat list of the table's rows
fn rows(dir: &Path) -> Vec<Row> {
    let mut rows = Vec::new();
    let mut add = |workload: &str,
                   figure: String,
                   (group, f, bf): (String, &str, &str),
                   baseline: &str,
                   goal: Goal| {
        if let (Some(value), Some(base)) = (median(dir, &group, f), median(dir, &group, bf)) {
            rows.push(Row {
                workload: workload.into(),
                figure,
                value,
                baseline: baseline.into(),
                base,
                goal,
                unit: "ns".into(),
            });
        }
    };
    let raw_seq = "raw shmget+shmat+shmdt+IPC_RMID";
    for label in ["64 B", "4 KiB", "1 MiB", "64 MiB"] {
        let g = format!("lifecycle_{}", label.replace(' ', ""));
        add(
            "lifecycle",
            format!("`create_at` + drop, {label}"),
            (g.clone(), "smobject_create", "raw_create"),
            raw_seq,
            Goal::RatioAtMost(2.2),
        );
        add(
            "lifecycle",
            format!("`access_at` + drop, {label}"),
            (g.clone(), "smobject_access", "raw_create"),
            raw_seq,
            Goal::RatioAtMost(2.2),
        );
        add(
            "lifecycle",
            format!("`access_at` + drop, {label}"),
            (g, "smobject_access", "raw_attach"),
            "raw shmget(key,0,0)+shmat+shmdt",
            Goal::None,
        );
    }
    for label in ["4 KiB", "1 MiB", "64 MiB"] {
        let g = format!("touch_{}", label.replace(' ', ""));
        add(
            "first touch",
            format!("create + touch every page + drop, {label}"),
            (g.clone(), "smobject_touch", "raw_touch"),
            "raw sequence + touch every page",
            Goal::None,
        );
        add(
            "first touch",
            format!("create + first `write` + drop, {label}"),
            (g, "smobject_first_write", "raw_touch"),
            "raw sequence + touch every page",
            Goal::None,
        );
    }
    for (label, goal) in [("64 B", 2.0), ("4 KiB", 1.2), ("1 MiB", 1.05)] {
        let g = format!("read_{}", label.replace(' ', ""));
        let how = if label == "1 MiB" {
            "`read_into`"
        } else {
            "`read`"
        };
        add(
            "read",
            format!("{how}, {label}"),
            (g.clone(), "smobject_read", "raw_copy"),
            "raw copy from the mapping",
            Goal::RatioAtMost(goal),
        );
        add(
            "read",
            format!("{how}, {label}"),
            (g.clone(), "smobject_read", "raw_copy_runtime_len"),
            "raw copy, length unknown to the compiler (`memcpy` call)",
            Goal::None,
        );
        if label != "1 MiB" {
            add(
                "read",
                format!("{how}, {label}"),
                (g.clone(), "smobject_read", "raw_read_value"),
                "raw read of one `T` by value from the mapping (`ptr::read`)",
                Goal::None,
            );
        }
        add(
            "read",
            format!("`read_into` (no by-value return), {label}"),
            (g, "smobject_read_into", "raw_copy"),
            "raw copy from the mapping",
            Goal::None,
        );
    }
    for label in ["64 B", "4 KiB", "1 MiB"] {
        let g = format!("write_{}", label.replace(' ', ""));
        let goal = if label == "64 B" {
            Goal::ExtraAtMost(30.0)
        } else {
            Goal::None
        };
        add(
            "write",
            format!("`write`, uncontended, {label}"),
            (g, "smobject_write", "raw_copy"),
            "raw copy into the mapping",
            goal,
        );
    }
    rows
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let smoke = args.iter().any(|a| a == "--test" || a == "--list");
    if !smoke {
        report::refuse_if_busy(std::env::var_os("SMOBJECT_BENCH_FORCE").is_some_and(|v| v == "1"));
    }
    let load_before = report::load1();
    let key = KeyFile::new("inproc").expect("creating a key file under /tmp");
    let dir = report::results_dir().join("criterion");
    let mut c = Criterion::default()
        .output_directory(&dir)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_millis(900))
        .sample_size(20)
        .without_plots()
        .configure_from_args();
    lifecycle::<Small>(&mut c, &key);
    lifecycle::<Page>(&mut c, &key);
    lifecycle::<Big>(&mut c, &key);
    lifecycle::<Huge>(&mut c, &key);
    first_touch::<Page>(&mut c, &key);
    first_touch::<Big>(&mut c, &key);
    first_touch::<Huge>(&mut c, &key);
    read_write_small::<Small>(&mut c, &key);
    read_write_small::<Page>(&mut c, &key);
    read_write_big::<Big>(&mut c, &key);
    c.final_summary();
    drop(key);
    if smoke {
        println!("smobject-bench inproc: smoke run done (no timing asserted)");
        return;
    }
    let rows = rows(&dir);
    println!("\n{}\n", report::machine());
    println!("{}", report::table(&rows));
    println!("{}", report::conditions(load_before));
    match report::save("inproc", &rows) {
        Ok(p) => println!("results: {}", p.display()),
        Err(e) => eprintln!("could not save results: {e}"),
    }
}
