//! Publishes `Telemetry` at a steady rate until Ctrl-C (or `--count N` publishes).
//!
//! ```sh
//! cargo run -p examples --example producer -- --hz 10 --count 100
//! cargo run -p examples --example consumer        # in another terminal, before or after
//! ```
//!
//! It attaches to the object if it exists (a consumer does not create it, but another producer
//! may have) and creates it otherwise. On Ctrl-C it finishes the current publish, marks the
//! value done and returns, so the handle's destructor detaches: the last process out frees
//! both segments.

use std::time::Duration;

use examples::{ensure_key_file, flag, sleep_unless_stopped, stop_on_signals, Telemetry};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!("usage: producer [--hz N] [--count N]   (default: 10 Hz until Ctrl-C)");
        return Ok(());
    }
    let hz: f64 = flag(&args, "--hz").unwrap_or(10.0);
    let count: u64 = flag(&args, "--count").unwrap_or(u64::MAX);
    if !(hz > 0.0 && hz <= 100_000.0) {
        return Err(format!("--hz must be in (0, 100000], not {hz}").into());
    }
    stop_on_signals();
    let path = ensure_key_file()?;
    let shared = Telemetry::open_or_create()?;
    let pid = std::process::id();
    println!(
        "[producer {pid}] {} the object under {} (key {}); publishing at {hz} Hz, Ctrl-C to stop",
        if shared.created() {
            "created"
        } else {
            "attached to"
        },
        path.display(),
        shared.key(),
    );
    let period = Duration::from_secs_f64(1.0 / hz);
    let mut sent = 0;
    while sent < count {
        let last = sent + 1 == count;
        let value = shared.write(|t| {
            let mut next = Telemetry::sample(t.seq + 1);
            if last {
                next.status = examples::STATUS_DONE;
            }
            *t = next;
            next
        });
        sent += 1;
        println!("[producer {pid}] published {value}");
        if last || !sleep_unless_stopped(period) {
            break;
        }
    }
    if examples::stopped() {
        shared.write(|t| t.status = examples::STATUS_DONE);
        println!("[producer {pid}] stopped by signal after {sent} publishes");
    }
    println!(
        "[producer {pid}] detaching ({} process(es) attached, this one included)",
        shared.attached()?
    );
    Ok(())
}
