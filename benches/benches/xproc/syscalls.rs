//! `write` with no waiter makes no syscall.

use super::{arg, Goal, Instant, KeyFile, Path, PathBuf, Res, Row, Shared, Small};
use std::collections::BTreeMap;
use std::process::Command;

pub(super) fn run(rows: &mut Vec<Row>, smoke: bool) -> Res<()> {
    let works = Command::new("strace")
        .args(["-f", "-c", "-o", "/dev/null", "true"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !works {
        eprintln!("xproc: strace is missing or cannot trace here: the syscall count is skipped");
        return Ok(());
    }
    let key = KeyFile::new("sc")?;
    let few = 10u64;
    let many = if smoke { 100_000 } else { 1_000_000 };
    let (c_few, _) = count(key.path(), few)?;
    let (c_many, (ns, raw_ns)) = count(key.path(), many)?;
    let total = |c: &BTreeMap<String, u64>| c.values().sum::<u64>() as f64;
    let diff: Vec<String> = c_many
        .iter()
        .filter(|(k, v)| c_few.get(*k) != Some(v))
        .map(|(k, v)| format!("{k} {} -> {v}", c_few.get(k).copied().unwrap_or(0)))
        .collect();
    if !diff.is_empty() {
        eprintln!(
            "xproc: syscalls that grew with the number of writes: {}",
            diff.join(", ")
        );
    }
    rows.push(Row {
        workload: "write, no waiter".into(),
        figure: format!("syscalls of a process doing {many} writes (strace -c -f)"),
        value: total(&c_many),
        baseline: format!("the same process doing {few} writes"),
        base: total(&c_few),
        goal: Goal::Equal,
        unit: "syscalls".into(),
    });
    rows.push(Row {
        workload: "write, no waiter".into(),
        figure: format!("`write` 64 B, mean of {many} (same process)"),
        value: ns,
        baseline: "raw 64 B copy into the mapping".into(),
        base: raw_ns,
        goal: Goal::None,
        unit: "ns".into(),
    });
    Ok(())
}

/// Runs the `writes` child under `strace -c -f`; returns calls per syscall, and the mean
/// ns per write the child measured.
fn count(path: &Path, n: u64) -> Res<(BTreeMap<String, u64>, (f64, f64))> {
    let out_file = PathBuf::from(format!("{}.strace", path.display()));
    let out = Command::new("strace")
        .args(["-f", "-c", "-o"])
        .arg(&out_file)
        .arg(std::env::current_exe()?)
        .args(["child", "writes"])
        .arg(path)
        .arg(n.to_string())
        .output()?;
    let text = std::fs::read_to_string(&out_file);
    let _ = std::fs::remove_file(&out_file);
    if !out.status.success() {
        return Err(format!(
            "strace run failed: {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    let mut calls = BTreeMap::new();
    for line in text?.lines() {
        let t: Vec<&str> = line.split_whitespace().collect();
        if t.len() >= 5 && t[0].parse::<f64>().is_ok() && t[t.len() - 1] != "total" {
            if let Ok(c) = t[3].parse::<u64>() {
                calls.insert(t[t.len() - 1].to_owned(), c);
            }
        }
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let find = |prefix: &str| {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(prefix).and_then(|x| x.parse().ok()))
            .unwrap_or(0.0)
    };
    Ok((calls, (find("ns/write "), find("ns/raw "))))
}

/// The child: creates an object and writes it `n` times.
pub(super) fn writes(args: &[String]) -> Res<()> {
    let path: String = arg(args, 0)?;
    let n: u64 = arg(args, 1)?;
    let s = Shared::<Small>::create_at(Path::new(&path), b'D')?;
    let start = Instant::now();
    for i in 0..n {
        s.write(|t| t.words[0] = i);
    }
    let ns = start.elapsed().as_nanos() as f64 / n as f64;
    let data = s.raw().as_ptr();
    let src = [7u8; 64];
    let start = Instant::now();
    for _ in 0..n {
        // SAFETY: the mapping holds 64 bytes and only this process uses the object.
        unsafe {
            std::ptr::copy_nonoverlapping(
                std::hint::black_box(src.as_ptr()),
                std::hint::black_box(data),
                64,
            );
        };
    }
    let raw_ns = start.elapsed().as_nanos() as f64 / n as f64;
    drop(s);
    println!("ns/write {ns}");
    println!("ns/raw {raw_ns}");
    Ok(())
}
