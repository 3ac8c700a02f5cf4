//! The other process.

use super::Res;

/// Tells the parent the child is set up.
pub(super) fn ready() {
    println!("ready");
}

pub(super) fn run(args: &[String]) -> Res<()> {
    let role = args.first().map_or("", String::as_str);
    if role == "writes" {
        return super::syscalls::writes(&args[1..]);
    }
    super::pin(super::CHILD_CPU);
    match role {
        "writer" => super::readers::writer(&args[1..]),
        #[cfg(feature = "iceoryx2")]
        r if r.starts_with("iox2") => super::iox::child(r, &args[1..]),
        r => super::pingpong::child(r, &args[1..]),
    }
}
