//! Statistics, the ratio table, the machine description, the load check and the results file.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;

/// Refuse to measure above this 1-minute load average (before the benchmark starts).
pub const MAX_LOAD: f64 = 1.5;

/// Percentiles of a set of samples, in nanoseconds.
#[derive(Clone, Copy, Debug, Default)]
pub struct Summary {
    /// Number of samples.
    pub n: usize,
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Largest sample.
    pub max: f64,
    /// Mean.
    pub mean: f64,
}

/// A goal on a figure compared with its baseline.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Goal {
    /// Reported, no goal.
    None,
    /// `value / baseline <= r`.
    RatioAtMost(f64),
    /// `value - baseline <= ns`.
    ExtraAtMost(f64),
    /// `value == baseline` (counts).
    Equal,
}

/// One line of the table: a figure next to its baseline from the same run.
#[derive(Clone, Debug)]
pub struct Row {
    /// Workload (`lifecycle`, `read`, `ping-pong`, ...).
    pub workload: String,
    /// What was measured.
    pub figure: String,
    /// Its value (ns, or a count when `unit` says so).
    pub value: f64,
    /// The baseline's name.
    pub baseline: String,
    /// The baseline's value, same unit.
    pub base: f64,
    /// The goal.
    pub goal: Goal,
    /// `ns`, `ns p50`, `syscalls`, `snapshots/s` ...
    pub unit: String,
}

impl Row {
    /// `value / base`.
    #[must_use]
    pub fn ratio(&self) -> f64 {
        if self.base == 0.0 {
            if self.value == 0.0 {
                1.0
            } else {
                f64::INFINITY
            }
        } else {
            self.value / self.base
        }
    }

    /// Whether the goal is met (`None` when there is no goal).
    #[must_use]
    pub fn met(&self) -> Option<bool> {
        match self.goal {
            Goal::None => None,
            Goal::RatioAtMost(r) => Some(self.ratio() <= r),
            Goal::ExtraAtMost(ns) => Some(self.value - self.base <= ns),
            #[allow(clippy::float_cmp)] // counts, exact integers
            Goal::Equal => Some(self.value == self.base),
        }
    }

    fn goal_text(&self) -> String {
        match self.goal {
            Goal::None => "-".into(),
            Goal::RatioAtMost(r) if r < 1.0 => format!("<= {r}x (>= {:.1}x faster)", 1.0 / r),
            Goal::RatioAtMost(r) => format!("<= {r}x"),
            Goal::ExtraAtMost(ns) => format!("<= base + {ns} ns"),
            Goal::Equal => "equal".into(),
        }
    }
}

/// Formats a value for the table: ns below 10 us with a decimal, else us or ms.
#[must_use]
pub fn fmt_value(v: f64, unit: &str) -> String {
    if !unit.starts_with("ns") {
        return format!("{v:.0} {unit}");
    }
    let suffix = unit.strip_prefix("ns").unwrap_or("");
    if v < 100.0 {
        format!("{v:.1} ns{suffix}")
    } else if v < 10_000.0 {
        format!("{v:.0} ns{suffix}")
    } else if v < 10_000_000.0 {
        format!("{:.1} us{suffix}", v / 1e3)
    } else {
        format!("{:.1} ms{suffix}", v / 1e6)
    }
}

/// The rows as a Markdown table.
#[must_use]
pub fn table(rows: &[Row]) -> String {
    let mut s = String::from(
        "| workload | figure | value | baseline (same run) | baseline value | ratio | goal | verdict |\n|---|---|---|---|---|---|---|---|\n",
    );
    for r in rows {
        let verdict = match r.met() {
            None => "",
            Some(true) => "met",
            Some(false) => "**missed**",
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {:.2}x | {} | {} |",
            r.workload,
            r.figure,
            fmt_value(r.value, &r.unit),
            r.baseline,
            fmt_value(r.base, &r.unit),
            r.ratio(),
            r.goal_text(),
            verdict
        );
    }
    s
}

/// Where results go: `$CARGO_TARGET_DIR/smobject-bench` (or `target/` found from the
/// executable's path: `target/release/deps/NAME`).
#[must_use]
pub fn results_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::current_exe()
                .ok()
                .and_then(|e| e.ancestors().nth(3).map(PathBuf::from))
        })
        .unwrap_or_else(|| PathBuf::from("target"));
    target.join("smobject-bench")
}

/// Writes `rows` as CSV to `results_dir()/NAME.csv` (for the plot) and returns the path.
///
/// # Errors
/// If the file cannot be written.
pub fn save(name: &str, rows: &[Row]) -> std::io::Result<PathBuf> {
    let dir = results_dir();
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(format!("{name}.csv"));
    let mut f = std::fs::File::create(&path)?;
    writeln!(f, "workload,figure,value,baseline,base,ratio,goal,met,unit")?;
    for r in rows {
        let goal = match r.goal {
            Goal::None => String::new(),
            Goal::RatioAtMost(x) => format!("ratio<={x}"),
            Goal::ExtraAtMost(x) => format!("extra<={x}"),
            Goal::Equal => "equal".into(),
        };
        let met = r.met().map_or("", |m| if m { "met" } else { "missed" });
        writeln!(
            f,
            "{},{},{},{},{},{},{},{},{}",
            r.workload.replace(',', ";"),
            r.figure.replace(',', ";"),
            r.value,
            r.baseline.replace(',', ";"),
            r.base,
            r.ratio(),
            goal,
            met,
            r.unit
        )?;
    }
    Ok(path)
}

/// `nproc`, CPU model, kernel: the line `BENCHMARKS.md` quotes.
#[must_use]
pub fn machine() -> String {
    // Online CPUs of the machine (not this process's affinity mask, which pinning narrowed).
    // SAFETY: sysconf has no preconditions.
    let nproc = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map_or("unknown", str::trim)
        .to_owned();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_owned();
    format!("nproc {nproc}, CPU \"{model}\", kernel {kernel}")
}

/// The 1-minute load average.
#[must_use]
pub fn load1() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|x| x.parse().ok()))
        .unwrap_or(0.0)
}

/// Exits with status 2 and a message if the machine is busy (load above [`MAX_LOAD`]) and
/// `force` is not set: figures from a busy 2-core machine are not worth reporting.
pub fn refuse_if_busy(force: bool) {
    let load = load1();
    if load > MAX_LOAD && !force {
        eprintln!(
            "smobject-bench: refusing to measure: 1-minute load average is {load:.2} (> {MAX_LOAD}) before starting; \
             other work would distort the figures. Wait, or pass --force (SMOBJECT_BENCH_FORCE=1) to measure anyway."
        );
        std::process::exit(2);
    }
    eprintln!("smobject-bench: load average {load:.2} before starting (limit {MAX_LOAD})");
}

/// Involuntary context switches of this process and its waited-for children: how often the
/// scheduler took the CPU away from the benchmark (other work on the machine).
#[must_use]
pub fn preemptions() -> i64 {
    let mut total = 0;
    for who in [libc::RUSAGE_SELF, libc::RUSAGE_CHILDREN] {
        let mut ru = std::mem::MaybeUninit::<libc::rusage>::zeroed();
        // SAFETY: `ru` is writable storage for a rusage.
        if unsafe { libc::getrusage(who, ru.as_mut_ptr()) } == 0 {
            // SAFETY: zeroed and filled by getrusage; plain integers.
            total += unsafe { ru.assume_init() }.ru_nivcsw;
        }
    }
    total
}

/// The line printed under the table: load before/after and preemptions, so a disturbed run
/// shows itself.
#[must_use]
pub fn conditions(load_before: f64) -> String {
    let after = load1();
    let warn = if after > MAX_LOAD + 1.0 {
        " (WARNING: the load rose well above what the benchmark causes: other work ran; figures may be disturbed)"
    } else {
        ""
    };
    format!(
        "conditions: 1-minute load {load_before:.2} before, {after:.2} after; {} involuntary context switches{warn}",
        preemptions()
    )
}

/// A latency histogram: exact below 1024 ns, then 64 buckets per power of two (error < 1.6%),
/// so long runs need no per-sample storage.
#[derive(Clone, Debug)]
pub struct Histogram {
    counts: Vec<u64>,
    n: u64,
    sum: u128,
    max: u64,
}

const EXACT: u64 = 1024;
const SUB: u64 = 64;

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: vec![0; (EXACT + 64 * SUB) as usize],
            n: 0,
            sum: 0,
            max: 0,
        }
    }
}

impl Histogram {
    fn index(v: u64) -> usize {
        if v < EXACT {
            return v as usize;
        }
        let e = 63 - u64::from(v.leading_zeros()); // >= 10
        let mantissa = (v >> (e - 6)) & (SUB - 1);
        (EXACT + (e - 10) * SUB + mantissa) as usize
    }

    fn value(i: usize) -> u64 {
        let i = i as u64;
        if i < EXACT {
            return i;
        }
        let e = (i - EXACT) / SUB + 10;
        let mantissa = (i - EXACT) % SUB;
        (1 << e) | (mantissa << (e - 6))
    }

    /// Records one sample (ns).
    #[inline]
    pub fn record(&mut self, v: u64) {
        let i = Self::index(v).min(self.counts.len() - 1);
        self.counts[i] += 1;
        self.n += 1;
        self.sum += u128::from(v);
        self.max = self.max.max(v);
    }

    /// Adds another histogram's samples.
    pub fn merge(&mut self, o: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&o.counts) {
            *a += b;
        }
        self.n += o.n;
        self.sum += o.sum;
        self.max = self.max.max(o.max);
    }

    /// Samples recorded.
    #[must_use]
    pub fn len(&self) -> u64 {
        self.n
    }

    /// Whether no sample was recorded.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    fn quantile(&self, q: f64) -> f64 {
        let rank = ((self.n.saturating_sub(1)) as f64 * q).round() as u64;
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen > rank {
                return Self::value(i) as f64;
            }
        }
        self.max as f64
    }

    /// Percentiles, mean and maximum.
    #[must_use]
    pub fn summary(&self) -> Summary {
        if self.n == 0 {
            return Summary::default();
        }
        Summary {
            n: self.n as usize,
            p50: self.quantile(0.5),
            p99: self.quantile(0.99),
            p999: self.quantile(0.999),
            max: self.max as f64,
            mean: self.sum as f64 / self.n as f64,
        }
    }
}
