//! The `smobject` command: what `ipcs` and `ipcrm` do, aware of smobject's segment pairs, their
//! types and the liveness of the processes using them; and an object's fields by name (`get`,
//! `set`, `watch --json`), through the schema stored in it.
//!
//! ```text
//! smobject ls [--json] [--path FILE | --key KEY]
//! smobject inspect (PATH ID | --key KEY) [--hex]
//! smobject rm (PATH ID | --key KEY) [--force]
//! smobject gc [--dry-run] [--path FILE | --key KEY]
//! smobject watch (PATH ID | --key KEY) [--interval 1s] [--count N]
//! smobject watch PATH ID --json [--count N]
//! smobject get PATH ID [FIELD...] [--json]
//! smobject set PATH ID FIELD=VALUE...
//! ```
//!
//! Errors are printed as `error: ...` (smobject's messages name the key, path and id and carry a
//! hint) and exit with status 1; usage errors exit with status 2. See `README.md`.

mod bridge;
mod fmt;
mod gc;
mod get;
mod inspect;
mod ls;
mod procfs;
mod rm;
mod set;
mod target;
mod watch;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use smobject::{DynObject, Key, Options};

use crate::target::{parse_count, parse_duration, parse_id, parse_key, parse_mode, Filter, Target};

/// Share a `#[repr(C)]` struct between processes: list, inspect, remove and watch smobject
/// pairs (a data segment `ftok(path, id)` and a counter segment `ftok(path, id - 58)`), and
/// read, write and follow their fields by name.
#[derive(Parser, Debug)]
#[command(name = "smobject", version, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// List every smobject pair on the host: keys, type, size, owner, attachments, state, age.
    Ls {
        /// Print a JSON array instead of a table (for scripts).
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        filter: FilterArgs,
    },
    /// Show one pair's header field by field, its version and writer-lock state.
    Inspect {
        #[command(flatten)]
        target: TargetArgs,
        /// Also dump the data (a consistent read-only snapshot) in hex.
        #[arg(long)]
        hex: bool,
    },
    /// Remove both segments of a pair (refuses a pair with processes attached).
    ///
    /// Given PATH ID, the removal holds the key file's lock (waiting at most 10 s for it);
    /// given --key, it takes no lock.
    Rm {
        #[command(flatten)]
        target: TargetArgs,
        /// Remove even if processes are attached (they keep their mappings until they detach).
        #[arg(long)]
        force: bool,
    },
    /// Remove every stale pair (nobody attached; its processes died).
    ///
    /// Scripts and tests should filter with `--path` or `--key`: unfiltered, gc also removes
    /// other programs' pairs that are stale for a moment. With `--path`, each removal holds the
    /// key file's lock; otherwise each pair is re-checked (same instance, still unattached)
    /// just before it is removed.
    Gc {
        /// List what would be removed, remove nothing.
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        filter: FilterArgs,
    },
    /// Live view of a pair's version and update rate, or (`--json`) of its values.
    Watch {
        #[command(flatten)]
        target: TargetArgs,
        /// Time between samples: seconds (`0.5`) or with a unit (`200ms`, `2s`).
        #[arg(long, default_value = "1s", value_parser = parse_duration)]
        interval: Duration,
        /// Stop after this many samples (lines with `--json`), at least 1 (default: run until
        /// interrupted).
        #[arg(long, value_parser = parse_count)]
        count: Option<u64>,
        /// Print every new value as it is published, one JSON line each:
        /// `{"version": N, "value": {...}}` (attaches to the object; needs PATH ID).
        #[arg(long, conflicts_with_all = ["key", "interval"])]
        json: bool,
        /// With `--json`: the object's mode, as for `get` [default: 600].
        #[arg(long, value_name = "OCTAL", value_parser = parse_mode, requires = "json")]
        mode: Option<u32>,
        /// With `--json`: also trust an object owned by this uid, as for `get`; repeatable.
        #[arg(long = "allow-uid", value_name = "UID", requires = "json")]
        allow_uid: Vec<u32>,
    },
    /// Print an object's fields from one consistent snapshot (`name = value` lines).
    Get {
        #[command(flatten)]
        object: ObjectArgs,
        /// Only these fields or elements (`pos`, `pos[1]`, `a.b`), printed as `FIELD = value`.
        #[arg(value_name = "FIELD")]
        fields: Vec<String>,
        /// Print one JSON object instead (keys: the field names, or the FIELDs given).
        #[arg(long)]
        json: bool,
    },
    /// Set fields by name, all in one locked write (one new version); nothing is written if
    /// any assignment is invalid. Prints the new version.
    Set {
        #[command(flatten)]
        object: ObjectArgs,
        /// `FIELD=VALUE`: `seq=7`, `pos[1]=2.5`, `pos=[1, 2, 3]`, `a={b: 1, c: 2}`.
        #[arg(value_name = "FIELD=VALUE", required = true)]
        assignments: Vec<String>,
    },
    /// Publish an object's versions over Zenoh (to mirrors made by `subscribe` on other
    /// hosts): sleeps on the object's futex, puts each new version with its schema, answers
    /// late joiners' queries, republishes the latest once a second when idle. Runs until
    /// SIGINT/SIGTERM.
    Publish {
        #[command(flatten)]
        object: ObjectArgs,
        /// The Zenoh key expression, e.g. `robot/telemetry`.
        keyexpr: String,
        #[command(flatten)]
        net: NetArgs,
    },
    /// Mirror a published object into a local one (created from the received schema, or an
    /// existing one that passes the prefix rule): local readers use it like any object. Runs
    /// until SIGINT/SIGTERM.
    Subscribe {
        /// The Zenoh key expression, e.g. `robot/telemetry`.
        keyexpr: String,
        #[command(flatten)]
        object: ObjectArgs,
        #[command(flatten)]
        net: NetArgs,
    },
}

/// Zenoh session settings of `publish` and `subscribe` (peer mode unless the file says
/// otherwise).
#[derive(Args, Debug)]
struct NetArgs {
    /// Listen on this endpoint, in Zenoh's syntax (`tcp/0.0.0.0:7447`); repeatable.
    #[arg(long, value_name = "ENDPOINT")]
    listen: Vec<String>,
    /// Connect to this endpoint (`tcp/10.0.0.1:7447`); repeatable.
    #[arg(long, value_name = "ENDPOINT")]
    connect: Vec<String>,
    /// A Zenoh JSON5 configuration file (e.g. to switch multicast scouting off).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

impl NetArgs {
    fn net(&self) -> bridge::Net<'_> {
        bridge::Net {
            listen: &self.listen,
            connect: &self.connect,
            config: self.config.as_deref(),
        }
    }
}

/// An object to attach to, by key file and id (`get`, `set`, `publish`, `subscribe`).
#[derive(Args, Debug)]
struct ObjectArgs {
    /// The key file (as given to `ftok`).
    path: PathBuf,
    /// The project id: one character in 'A'..='z', e.g. `a`.
    #[arg(value_parser = parse_id)]
    id: u8,
    #[command(flatten)]
    access: AccessArgs,
}

impl ObjectArgs {
    fn attach(&self) -> Result<DynObject, Failure> {
        attach(&self.path, self.id, &self.access.options())
    }
}

/// Which existing segments a command that attaches trusts: as the library's `Options`.
#[derive(Args, Debug)]
struct AccessArgs {
    /// The object's mode, in octal (`660`: shared with the group). An object more open than
    /// this is refused, as the library refuses it [default: 600]. `subscribe` creates its
    /// object with this mode.
    #[arg(long, value_name = "OCTAL", value_parser = parse_mode)]
    mode: Option<u32>,
    /// Also trust an object owned by this uid (by default only this user's); repeatable.
    #[arg(long = "allow-uid", value_name = "UID")]
    allow_uid: Vec<u32>,
}

impl AccessArgs {
    fn options(&self) -> Options {
        let mut opts = Options::new();
        if let Some(mode) = self.mode {
            opts = opts.mode(mode);
        }
        for uid in &self.allow_uid {
            opts = opts.allow_uid(*uid);
        }
        opts
    }
}

/// Attaches to the object at `path` `id` as `get`, `set`, `watch --json` and `publish` do,
/// with the hints of the command line rather than the library's.
fn attach(path: &Path, id: u8, opts: &Options) -> Result<DynObject, Failure> {
    DynObject::access_in(&Key::from_path(path, id)?, opts).map_err(|e| {
        if e.kind() == smobject::ErrorKind::ForeignOwner {
            return Failure::Smobject(e.with_hint(
                "if you trust it, accept its mode (`--mode 660`) or its owner \
                 (`--allow-uid UID`); `ipcs -m -p` shows both",
            ));
        }
        Failure::from(e)
    })
}

/// One pair, named by its key file and id or by its raw data key.
#[derive(Args, Debug)]
struct TargetArgs {
    /// The key file (as given to `ftok`).
    #[arg(required_unless_present = "key", conflicts_with = "key")]
    path: Option<PathBuf>,
    /// The project id: one character in 'A'..='z', e.g. `a`.
    #[arg(required_unless_present = "key", value_parser = parse_id)]
    id: Option<u8>,
    /// The data segment's key instead of PATH ID (`0x6101abcd`, or decimal).
    #[arg(long, value_parser = parse_key, allow_hyphen_values = true)]
    key: Option<i32>,
}

impl TargetArgs {
    fn resolve(&self) -> Result<Target, Failure> {
        match (&self.path, self.id, self.key) {
            (_, _, Some(key)) => Ok(Target::from_key(key)),
            (Some(path), Some(id), None) => Target::from_path(path, id),
            // clap's `required_unless_present` makes this unreachable; still, no panic.
            _ => Err(Failure::Usage("give PATH and ID, or --key".into())),
        }
    }
}

/// Which pairs `ls` and `gc` consider.
#[derive(Args, Debug)]
struct FilterArgs {
    /// Only pairs made for this key file (their header's device and inode match it).
    #[arg(long, conflicts_with = "key")]
    path: Option<PathBuf>,
    /// Only the pair with this data (or counter) key.
    #[arg(long, value_parser = parse_key, allow_hyphen_values = true)]
    key: Option<i32>,
}

impl FilterArgs {
    fn resolve(&self) -> Result<Filter, Failure> {
        match (&self.path, self.key) {
            (Some(path), _) => Filter::from_path(path),
            (None, Some(key)) => Ok(Filter::Key(key)),
            (None, None) => Ok(Filter::All),
        }
    }
}

/// Why a command failed: printed as `error: {self}`, exit status 1.
#[derive(Debug)]
enum Failure {
    /// An error from the runtime (its message names key, path, id and a hint).
    Smobject(smobject::Error),
    /// An error with extra context lines (e.g. the pids attached to a pair `rm` refused).
    Context(smobject::Error, String),
    /// Nothing under the key.
    NotFound(String),
    /// An argument combination clap could not rule out.
    Usage(String),
    /// Writing the output failed (other than a closed pipe).
    Io(std::io::Error),
    /// Zenoh (the session, a declaration) or a malformed envelope.
    Bridge(String),
    /// A message composed here (e.g. the key file's lock not taken, a key file not usable).
    Other(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Smobject(e) => write!(f, "{e}"),
            Self::Context(e, more) => write!(f, "{e}\n{more}"),
            Self::NotFound(what) => write!(
                f,
                "no shared object under this key ({what}); hint: `smobject ls` lists every pair"
            ),
            Self::Usage(m) | Self::Bridge(m) | Self::Other(m) => f.write_str(m),
            Self::Io(e) => write!(f, "writing the output: {e}"),
        }
    }
}

impl From<smobject::Error> for Failure {
    fn from(e: smobject::Error) -> Self {
        // The library's hint for a missing object names its own functions (`open_or_create`);
        // at the command line the useful next step is a different one.
        if e.kind() == smobject::ErrorKind::NotFound {
            return Self::Smobject(e.with_hint(
                "check PATH and ID, and that the program creating the object runs; \
                 `smobject ls` lists every pair",
            ));
        }
        Self::Smobject(e)
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Self {
        Self::Io(e)
    }
}

fn run(cli: Cli) -> Result<(), Failure> {
    let mut out = std::io::stdout().lock();
    match cli.command {
        Command::Ls { json, filter } => ls::run(&mut out, &filter.resolve()?, json),
        Command::Inspect { target, hex } => inspect::run(&mut out, &target.resolve()?, hex),
        Command::Rm { target, force } => rm::run(&mut out, &target.resolve()?, force),
        Command::Gc { dry_run, filter } => gc::run(&mut out, &filter.resolve()?, dry_run),
        Command::Watch {
            target,
            json: true,
            count,
            mode,
            allow_uid,
            ..
        } => match (&target.path, target.id) {
            (Some(path), Some(id)) => {
                let opts = AccessArgs { mode, allow_uid }.options();
                watch::run_json(&mut out, &attach(path, id, &opts)?, count)
            }
            // clap's `conflicts_with` makes this unreachable; still, no panic.
            _ => Err(Failure::Usage("--json needs PATH and ID, not --key".into())),
        },
        Command::Watch {
            target,
            interval,
            count,
            json: false,
            ..
        } => watch::run(&mut out, &target.resolve()?, interval, count),
        Command::Get {
            object,
            fields,
            json,
        } => get::run(&mut out, object.attach()?, &fields, json),
        Command::Set {
            object,
            assignments,
        } => set::run(&mut out, &object.attach()?, &assignments),
        Command::Publish {
            object,
            keyexpr,
            net,
        } => bridge::publish(object.attach()?, &keyexpr, &net.net()),
        Command::Subscribe {
            keyexpr,
            object,
            net,
        } => bridge::subscribe(
            &keyexpr,
            &object.path,
            object.id,
            object.access.options(),
            &net.net(),
        ),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse(); // usage errors: message and exit status 2
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        // `smobject ls | head`: a closed pipe ends the output quietly, as for other tools.
        Err(Failure::Io(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn target_needs_path_and_id_or_key() {
        assert!(Cli::try_parse_from(["smobject", "inspect", "/tmp/x", "a"]).is_ok());
        assert!(Cli::try_parse_from(["smobject", "inspect", "--key", "0x6101abcd"]).is_ok());
        assert!(Cli::try_parse_from(["smobject", "inspect", "/tmp/x"]).is_err());
        assert!(Cli::try_parse_from(["smobject", "inspect", "/tmp/x", "ab"]).is_err());
        assert!(Cli::try_parse_from(["smobject", "rm", "/tmp/x", "a", "--key", "1"]).is_err());
        assert!(Cli::try_parse_from(["smobject", "gc", "--path", "/x", "--key", "1"]).is_err());
    }

    #[test]
    fn get_set_and_watch_json_take_path_and_id() {
        let cli =
            Cli::try_parse_from(["smobject", "get", "/tmp/x", "a", "pos[1]", "--json"]).unwrap();
        let Command::Get { fields, json, .. } = cli.command else {
            panic!("not get");
        };
        assert_eq!((fields, json), (vec!["pos[1]".to_owned()], true));
        assert!(Cli::try_parse_from(["smobject", "get", "/tmp/x", "a"]).is_ok());
        assert!(Cli::try_parse_from(["smobject", "get", "/tmp/x"]).is_err());
        assert!(Cli::try_parse_from(["smobject", "set", "/tmp/x", "a", "seq=1", "s=2"]).is_ok());
        assert!(Cli::try_parse_from(["smobject", "set", "/tmp/x", "a"]).is_err());
        assert!(Cli::try_parse_from(["smobject", "watch", "/tmp/x", "a", "--json"]).is_ok());
        for args in [
            &["smobject", "watch", "--key", "0x61000001", "--json"][..],
            &[
                "smobject",
                "watch",
                "/tmp/x",
                "a",
                "--json",
                "--interval",
                "1s",
            ],
        ] {
            assert!(Cli::try_parse_from(args).is_err(), "{args:?}");
        }
    }

    #[test]
    fn watch_defaults_to_one_second() {
        let cli = Cli::try_parse_from(["smobject", "watch", "/tmp/x", "a"]).unwrap();
        let Command::Watch {
            interval, count, ..
        } = cli.command
        else {
            panic!("not watch");
        };
        assert_eq!((interval, count), (Duration::from_secs(1), None));
    }

    #[test]
    fn watch_count_is_at_least_one() {
        for json in [false, true] {
            let mut args = vec!["smobject", "watch", "/tmp/x", "a", "--count", "0"];
            if json {
                args.push("--json");
            }
            assert!(Cli::try_parse_from(&args).is_err(), "{args:?}");
            args[5] = "1";
            assert!(Cli::try_parse_from(&args).is_ok(), "{args:?}");
        }
    }
}
