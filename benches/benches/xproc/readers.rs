//! Readers here under a writer in the other process.

use super::{
    arg, child, untorn, Big, Duration, Goal, Histogram, Instant, KeyFile, Page, Path, Peer, Res,
    Row, Shared, Small, Words,
};

/// (size label, rates in Hz; 0 = back-to-back).
const CASES: &[(&str, &[u32])] = &[
    ("64 B", &[100_000, 0]),
    ("4 KiB", &[100_000, 0]),
    ("1 MiB", &[1_000, 5_000, 0]),
];
const WINDOW: Duration = Duration::from_millis(10);

pub(super) fn run(rows: &mut Vec<Row>, smoke: bool) -> Res<()> {
    let dur = Duration::from_millis(if smoke { 30 } else { 400 });
    for &(size, rates) in CASES {
        match size {
            "64 B" => case::<Small>(rows, rates, dur)?,
            "4 KiB" => case::<Page>(rows, rates, dur)?,
            _ => case::<Big>(rows, rates, dur)?,
        }
    }
    Ok(())
}

struct Stats {
    hist: Histogram,
    per_sec: f64,
    torn: u64,
    starved_windows: u64,
    windows: u64,
}

/// Reads for `dur`, timing each read; counts torn snapshots and empty 10 ms windows.
fn read_loop<T: Words>(s: &Shared<T>, dur: Duration) -> Stats {
    let mut out = T::boxed_zeroed();
    let mut hist = Histogram::default();
    let mut torn = 0;
    let (mut starved, mut windows) = (0, 0);
    let start = Instant::now();
    let mut window_end = start + WINDOW;
    let mut in_window = 0u64;
    let mut n = 0u64;
    loop {
        let t0 = Instant::now();
        s.read_into(&mut out);
        let t1 = Instant::now();
        hist.record((t1 - t0).as_nanos() as u64);
        n += 1;
        in_window += 1;
        if !untorn(out.words()) {
            torn += 1;
        }
        while t1 >= window_end {
            windows += 1;
            if in_window == 0 {
                starved += 1;
            }
            in_window = 0;
            window_end += WINDOW;
        }
        if t1 - start >= dur {
            return Stats {
                hist,
                per_sec: n as f64 / (t1 - start).as_secs_f64(),
                torn,
                starved_windows: starved,
                windows,
            };
        }
    }
}

fn case<T: Words>(rows: &mut Vec<Row>, rates: &[u32], dur: Duration) -> Res<()> {
    let key = KeyFile::new("rd")?;
    let s = Shared::<T>::create_at(key.path(), b'C')?;
    let base = read_loop(&s, dur);
    let b = base.hist.summary();
    let how = if T::LABEL == "1 MiB" {
        "`read_into`"
    } else {
        "`read`"
    };
    for &rate in rates {
        let peer = Peer::spawn(
            "writer",
            &[
                key.path().display().to_string(),
                T::LABEL.replace(' ', ""),
                rate.to_string(),
                (dur + Duration::from_millis(50)).as_millis().to_string(),
            ],
        )?;
        let st = read_loop(&s, dur);
        let mut peer = peer;
        let writes: f64 = peer.line()?.parse().unwrap_or(0.0);
        peer.finish()?;
        let h = st.hist.summary();
        let writer = if rate == 0 {
            format!("back-to-back writer ({:.0} kHz done)", writes / 1e3)
        } else {
            format!("writer at {} kHz", rate / 1000)
        };
        let baseline = format!("same reader, no writer, {}", T::LABEL);
        let row = |what: &str, value: f64, base: f64, goal: Goal, unit: &str| Row {
            workload: "readers".into(),
            figure: format!("{how} {} under {writer}: {what}", T::LABEL),
            value,
            baseline: baseline.clone(),
            base,
            goal,
            unit: unit.into(),
        };
        rows.push(row("latency p50", h.p50, b.p50, Goal::None, "ns"));
        rows.push(row("latency p99", h.p99, b.p99, Goal::None, "ns"));
        rows.push(row("latency p99.9", h.p999, b.p999, Goal::None, "ns"));
        rows.push(row("latency max", h.max, b.max, Goal::None, "ns"));
        rows.push(row(
            "snapshots/s",
            st.per_sec,
            base.per_sec,
            Goal::None,
            "snapshots/s",
        ));
        rows.push(row(
            &format!("10 ms windows without a snapshot (of {})", st.windows),
            st.starved_windows as f64,
            base.starved_windows as f64,
            Goal::Equal,
            "windows",
        ));
        rows.push(row(
            "torn snapshots",
            st.torn as f64,
            0.0,
            Goal::Equal,
            "snapshots",
        ));
    }
    drop(s);
    drop(key);
    Ok(())
}

/// The writer: writes every word = k at `rate` Hz (0: back-to-back) for `ms`, then prints
/// how many writes it did.
pub(super) fn writer(args: &[String]) -> Res<()> {
    let path: String = arg(args, 0)?;
    let size: String = arg(args, 1)?;
    let rate: u32 = arg(args, 2)?;
    let ms: u64 = arg(args, 3)?;
    match size.as_str() {
        "64B" => write_loop::<Small>(Path::new(&path), rate, ms),
        "4KiB" => write_loop::<Page>(Path::new(&path), rate, ms),
        _ => write_loop::<Big>(Path::new(&path), rate, ms),
    }
}

fn write_loop<T: Words>(path: &Path, rate: u32, ms: u64) -> Res<()> {
    let s = Shared::<T>::access_at(path, b'C')?;
    child::ready();
    let start = Instant::now();
    let end = start + Duration::from_millis(ms);
    let period = if rate == 0 {
        Duration::ZERO
    } else {
        Duration::from_secs(1) / rate
    };
    let mut k = 0u64;
    let mut next = start;
    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        if now < next {
            std::hint::spin_loop();
            continue;
        }
        k += 1;
        s.write(|t| t.words_mut().fill(k));
        next += period;
    }
    println!("{k}");
    Ok(())
}
