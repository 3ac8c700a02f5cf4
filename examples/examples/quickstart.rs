//! Two processes share a struct: run `cargo run -p examples --example quickstart`.
//!
//! This process creates a `Telemetry` object, starts a consumer process (itself again, with
//! `--consumer`), waits until the consumer is attached, publishes five updates 100 ms apart
//! and waits for the consumer to exit. The consumer prints each update it receives. When both
//! handles are dropped the segments are gone: the demo checks `/proc/sysvipc/shm` at the end.
//!
//! The key file is a fresh file under the temp dir, so the demo never meets a running
//! `producer`/`consumer` pair (which use `/tmp/smobject-telemetry`).

use std::path::Path;
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use examples::{demo_key_file, fmt_keys, leftover, pair_keys, Telemetry, STATUS_DONE};
use smobject::Shared;

const UPDATES: u64 = 5;
const ID: u8 = b'a';

fn main() -> Result<ExitCode, Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [flag, path] = args.as_slice() {
        if flag == "--consumer" {
            return consumer(Path::new(path));
        }
    }
    producer()
}

fn producer() -> Result<ExitCode, Box<dyn std::error::Error>> {
    let pid = std::process::id();
    let path = demo_key_file("quickstart")?;
    let keys = pair_keys(&path, ID)?;
    println!(
        "[producer {pid}] key file {}, keys {}",
        path.display(),
        fmt_keys(&keys)
    );
    let status = {
        let shared = Shared::<Telemetry>::create_at(&path, ID)?;
        println!("[producer {pid}] created the object; starting a consumer process");
        let mut child = Command::new(std::env::current_exe()?)
            .arg("--consumer")
            .arg(&path)
            .spawn()?;

        // The kernel counts attachments: 2 means the consumer is in.
        let start = Instant::now();
        while shared.attached()? < 2 {
            if let Some(status) = child.try_wait()? {
                return Err(format!("the consumer exited early: {status}").into());
            }
            if start.elapsed() > Duration::from_secs(5) {
                let _ = child.kill();
                let _ = child.wait();
                return Err("the consumer did not attach within 5 s".into());
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        println!("[producer {pid}] consumer attached; publishing {UPDATES} updates");

        for seq in 1..=UPDATES {
            let mut value = Telemetry::sample(seq);
            if seq == UPDATES {
                value.status = STATUS_DONE;
            }
            shared.write(|t| *t = value);
            println!("[producer {pid}] published {value}");
            std::thread::sleep(Duration::from_millis(100));
        }

        let start = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait()? {
                break status;
            }
            if start.elapsed() > Duration::from_secs(5) {
                let _ = child.kill();
                let _ = child.wait();
                return Err("the consumer did not exit within 5 s".into());
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        println!(
            "[producer {pid}] consumer exited ({status}); {} process(es) attached; dropping the handle",
            shared.attached()?
        );
        status
    }; // the last handle is dropped here: both segments are freed

    let left = leftover(&keys)?;
    std::fs::remove_file(&path)?;
    if left.is_empty() {
        println!(
            "[producer {pid}] nothing left behind: no segment under {}",
            fmt_keys(&keys)
        );
    } else {
        println!("[producer {pid}] segments left behind: {}", fmt_keys(&left));
        return Ok(ExitCode::FAILURE);
    }
    Ok(if status.success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn consumer(path: &Path) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let pid = std::process::id();
    let shared = Shared::<Telemetry>::access_at(path, ID)?;
    println!("[consumer {pid}] attached");
    let mut seen = 0;
    let mut received = 0;
    loop {
        // Each update is 100 ms apart; 2 s without one means the producer is gone.
        seen = shared.wait_for_update(seen, Some(Duration::from_secs(2)))?;
        let value = shared.read();
        received += 1;
        println!("[consumer {pid}] received v{seen}: {value}");
        if value.status == STATUS_DONE {
            break;
        }
    }
    println!("[consumer {pid}] got {received} of {UPDATES} updates; exiting");
    Ok(if received == UPDATES {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
