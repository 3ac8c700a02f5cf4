//! Child process of the evolution tests: the *other* build of a struct, in its own process.
//! `smo-evolve ROLE PATH [ARGS...]`; prints `ok ...` or `err KIND message` lines.
//!
//! Roles (the structs are `tests::structs::evo`):
//! - `v1-create PATH`: creates a `v1::Sensor` `{seq: 1, pos: [1, 2, 3]}`, says `ok`, holds it
//!   until a stdin line.
//! - `v1-rw PATH`: accesses as `v1::Sensor`, prints `ok SEQ POS vVERSION`, writes
//!   `{seq: SEQ + 1, pos: [4, 5, 6]}`, prints `wrote vVERSION`.
//! - `v1-wait PATH SEEN`: accesses as `v1::Sensor`, says `ready`, waits for a version after
//!   `SEEN` (10 s at most), prints `woke vVERSION SEQ`.
//! - `v2-access`, `changed-access`, `reordered-access PATH`: accesses with that build, prints
//!   `ok` or the error.
//! - `tiny-v1-rw PATH`: accesses as `v1::Tiny`, prints `ok A`, writes `a = A + 1`, prints
//!   `wrote`.

use std::io::BufRead;
use std::time::Duration;

use smobject::Shared;
use tests::structs::evo::{changed, reordered, v1, v2};

fn report<T>(r: smobject::Result<T>) -> Option<T> {
    match r {
        Ok(v) => Some(v),
        Err(e) => {
            println!("err {:?} {e}", e.kind());
            None
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(role), Some(path)) = (args.first(), args.get(1)) else {
        eprintln!("usage: smo-evolve ROLE PATH [ARGS...]");
        std::process::exit(2);
    };
    match role.as_str() {
        "v1-create" => {
            if let Some(s) = report(Shared::<v1::Sensor>::create_at(path, b'e')) {
                s.write(|v| {
                    v.seq = 1;
                    v.pos = [1.0, 2.0, 3.0];
                });
                println!("ok");
                let mut line = String::new();
                let _ = std::io::stdin().lock().read_line(&mut line);
            }
        }
        "v1-rw" => {
            if let Some(s) = report(Shared::<v1::Sensor>::access_at(path, b'e')) {
                let v = s.read();
                println!("ok {} {:?} v{}", v.seq, v.pos, s.version());
                s.write(|w| {
                    w.seq = v.seq + 1;
                    w.pos = [4.0, 5.0, 6.0];
                });
                println!("wrote v{}", s.version());
            }
        }
        "v1-wait" => {
            let seen: u64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(0);
            if let Some(s) = report(Shared::<v1::Sensor>::access_at(path, b'e')) {
                println!("ready");
                if let Some(v) = report(s.wait_for_update(seen, Some(Duration::from_secs(10)))) {
                    println!("woke v{v} {}", s.read().seq);
                }
            }
        }
        "v2-access" => {
            if report(Shared::<v2::Sensor>::access_at(path, b'e')).is_some() {
                println!("ok");
            }
        }
        "changed-access" => {
            if report(Shared::<changed::Sensor>::access_at(path, b'e')).is_some() {
                println!("ok");
            }
        }
        "reordered-access" => {
            if report(Shared::<reordered::Sensor>::access_at(path, b'e')).is_some() {
                println!("ok");
            }
        }
        "tiny-v1-rw" => {
            if let Some(s) = report(Shared::<v1::Tiny>::access_at(path, b't')) {
                let a = s.read().a;
                println!("ok {a}");
                s.write(|w| w.a = a + 1);
                println!("wrote");
            }
        }
        _ => {
            eprintln!("smo-evolve: unknown role {role:?}");
            std::process::exit(2);
        }
    }
}
