//! Prints every new `Telemetry` value the producer publishes; waits for a producer to appear,
//! and for the next one when it goes away. Ctrl-C exits cleanly.
//!
//! ```sh
//! cargo run -p examples --example consumer
//! cargo run -p examples --example producer        # in another terminal, before or after
//! ```
//!
//! It blocks in `wait_for_update` (a futex in the shared header: no polling while attached),
//! with a time-out so it notices Ctrl-C and a producer that left. While no object exists it
//! polls `access()` every 500 ms.

use std::time::Duration;

use examples::{ensure_key_file, sleep_unless_stopped, stop_on_signals, stopped, Telemetry};
use smobject::ErrorKind;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    stop_on_signals();
    let path = ensure_key_file()?;
    let pid = std::process::id();
    while !stopped() {
        let shared = match Telemetry::access() {
            Ok(shared) => shared,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                println!(
                    "[consumer {pid}] waiting for producer\u{2026} (start `cargo run -p examples --example producer`)"
                );
                while !stopped() {
                    if !sleep_unless_stopped(Duration::from_millis(500)) {
                        break;
                    }
                    match Telemetry::access() {
                        Err(e) if e.kind() == ErrorKind::NotFound => {}
                        _ => break,
                    }
                }
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let mut seen = shared.version();
        println!(
            "[consumer {pid}] attached to {} (key {}); current v{seen}: {}",
            path.display(),
            shared.key(),
            shared.read()
        );
        while !stopped() {
            match shared.wait_for_update(seen, Some(Duration::from_millis(250))) {
                Ok(version) => {
                    let value = shared.read();
                    println!("[consumer {pid}] v{version}: {value}");
                    seen = version;
                }
                Err(e) if e.kind() == ErrorKind::Timeout => {
                    // Only this process attached: the producer left. Detach (the last one
                    // out frees the object) and wait for the next producer.
                    if shared.attached()? <= 1 {
                        println!("[consumer {pid}] the producer left");
                        break;
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
    println!("[consumer {pid}] stopped");
    Ok(())
}
