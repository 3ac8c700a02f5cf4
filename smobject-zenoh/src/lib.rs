//! Mirror smobject objects to other hosts over [Zenoh](https://zenoh.io): the same object on
//! every host, with its schema, state semantics (only the latest value matters), late joiners,
//! and convergence after link loss or restarts.
//!
//! A [`Publication`] watches a local object (sleeping on its futex) and publishes every new
//! version it sees as an [`Envelope`]: the consistent snapshot, its version, the source's publish
//! time, the object's identity and its schema. It also answers queries on the same key
//! expression with the latest envelope, so a [`Mirror`] started later gets the current value at
//! once, and republishes the latest envelope once a second while the object is idle, so a mirror
//! whose link was cut converges to the last version without a new write.
//!
//! A [`Mirror`] subscribes to the key expression, creates the local object from the first
//! envelope's schema (or opens an existing one, which must pass the schema's prefix rule) and,
//! in Zenoh's receive callback, writes each newer snapshot into it in one locked write, recording the source's version and
//! publish time ([`smobject::DynObject::origin`]); local readers use the mirror like any object.
//!
//! # State, not a queue
//! Intermediate versions are dropped wherever they would queue: the publication reads only the
//! newest snapshot when it wakes and puts with `CongestionControl::Drop`; the mirror applies a
//! sample as it arrives (one short locked write, so none waits behind another) and skips any
//! older than what it holds. The mirror always holds some complete version of the source.
//!
//! # One writer per object, one source per key
//! A mirror is written by its [`Mirror`] only. A local write into a mirror is not sent back
//! (nothing publishes the mirror) and is undone by the next envelope received, a heartbeat
//! included: mirrors are read-only by convention, which keeps every object's history linear
//! (one source, no merge). A mirror refuses to take over an object a local program wrote, or
//! the object published on its own key expression ([`Error::NotAMirror`]). A key expression
//! names one key, never a pattern ([`Error::KeyExpr`]); when two publications use one key, a
//! mirror follows the first until it has been silent for [`SOURCE_SILENCE`]
//! ([`Error::OtherSource`]), which is also how it moves to a re-created source.
//!
//! # Embedding
//! A process that already has a Zenoh session publishes one of its objects with
//! [`Publication::new`] and [`Publication::run`] (or calls [`Publication::publish_latest`] after
//! its own writes), and mirrors with [`Mirror::new`] and [`Mirror::run`] (or
//! [`Mirror::receive`] in its own loop):
//!
//! ```no_run
//! use std::sync::atomic::AtomicBool;
//! use zenoh::Wait;
//!
//! let session = zenoh::open(smobject_zenoh::config(&[], &["tcp/10.0.0.1:7447".into()], None)?).wait()?;
//! let object = smobject::DynObject::access_at("/tmp/telemetry", b'a')?;
//! let mut publication = smobject_zenoh::Publication::new(&session, "robot/telemetry", object)?;
//! publication.run(&AtomicBool::new(false))?;
//! # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
//! ```

use std::fmt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use smobject::schema::Schema;
use smobject::{DynObject, ErrorKind, Key, Options, Origin};
use zenoh::bytes::ZBytes;
use zenoh::handlers::FifoChannelHandler;
use zenoh::pubsub::{Publisher, Subscriber};
use zenoh::qos::CongestionControl;
use zenoh::query::{Queryable, Reply};
use zenoh::{Session, Wait};

/// How often an idle publication republishes its latest envelope (the heartbeat that lets a
/// mirror converge after a cut link without a new write).
pub const HEARTBEAT: Duration = Duration::from_secs(1);
/// How long the run loops sleep at most before checking their stop flag.
pub const STOP_CHECK: Duration = Duration::from_millis(100);
/// How long the source instance a mirror follows must be silent (no envelope, heartbeats
/// included) before the mirror follows another instance publishing on its key expression.
pub const SOURCE_SILENCE: Duration = Duration::from_secs(3);
/// How long a new mirror waits for the publication's answer to its query for the current value.
const QUERY_TIMEOUT: Duration = Duration::from_secs(2);

/// What went wrong: the local object ([`smobject::Error`], e.g. `LayoutMismatch` naming the
/// field), Zenoh (session, declarations), or a malformed envelope from the network.
#[derive(Debug)]
pub enum Error {
    /// The local object.
    Object(smobject::Error),
    /// Zenoh: opening the session, a declaration, a put or a query.
    Zenoh(String),
    /// An envelope that is not one (untrusted input from the network): never applied.
    Envelope(String),
    /// A key expression that cannot name one mirrored object: invalid, or a pattern (`*`,
    /// `**`, `$*`), which would mix several sources into one object.
    KeyExpr(String),
    /// An envelope from another source instance than the one the mirror follows (two
    /// publications on one key expression): skipped until the followed one has been silent
    /// for [`SOURCE_SILENCE`].
    OtherSource(String),
    /// The mirror's target cannot be a mirror: an object written locally (not by a mirror),
    /// or the very object published on the key expression (which would loop).
    NotAMirror(String),
}

impl Error {
    /// The smobject error kind, for an [`Error::Object`].
    #[must_use]
    pub fn kind(&self) -> Option<ErrorKind> {
        match self {
            Error::Object(e) => Some(e.kind()),
            _ => None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Object(e) => write!(f, "{e}"),
            Error::Zenoh(e) => write!(
                f,
                "zenoh: {e}; hint: check the endpoints (Zenoh syntax, e.g. `tcp/10.0.0.1:7447`): \
                 a --listen address must be one of this host's and free (`ss -ltn`), a \
                 --connect address reachable; and the --config file"
            ),
            Error::Envelope(e) => write!(
                f,
                "malformed envelope: {e}; hint: only `smobject publish` (or smobject-zenoh's \
                 Publication) of the same envelope version may publish on this key expression"
            ),
            Error::KeyExpr(e) => write!(
                f,
                "key expression {e}; hint: use one plain key per object, such as \
                 `robot/telemetry` (no `*`, no empty or leading `/` chunk), the same on both sides"
            ),
            Error::OtherSource(e) => write!(
                f,
                "{e}; hint: publish each object on a key expression of its own"
            ),
            Error::NotAMirror(e) => write!(
                f,
                "{e}; hint: mirror into another path or id (a mirror is written only by \
                 `subscribe`), or remove the object (`smobject rm PATH ID`) once its programs \
                 stopped"
            ),
        }
    }
}

impl std::error::Error for Error {}

impl From<smobject::Error> for Error {
    fn from(e: smobject::Error) -> Self {
        Error::Object(e)
    }
}

fn zenoh_err(what: &str, e: &zenoh::Error) -> Error {
    Error::Zenoh(format!("{what}: {e}"))
}

/// Refuses a key expression that is invalid or a pattern ([`Error::KeyExpr`]): a mirror is one
/// object, so the key names one source. [`Publication::new`] and [`Mirror::new`] check it; a
/// tool can check it before it makes anything.
///
/// # Errors
/// [`Error::KeyExpr`], saying why.
pub fn check_keyexpr(keyexpr: &str) -> Result<()> {
    if let Err(e) = zenoh::key_expr::KeyExpr::try_from(keyexpr) {
        // Zenoh's message ends with the source location of its check: not the user's concern.
        let e = e.to_string();
        let why = e.split(" at /").next().unwrap_or(&e).trim_end_matches('.');
        return Err(Error::KeyExpr(format!("`{keyexpr}` is invalid: {why}")));
    }
    if keyexpr.contains('*') || keyexpr.contains('$') {
        return Err(Error::KeyExpr(format!(
            "`{keyexpr}` is a pattern (`*`, `**` or `$*`): it would mix every matching source \
             into one object"
        )));
    }
    Ok(())
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A Zenoh configuration for the `smobject publish`/`subscribe` commands: the JSON5 file if
/// given (else Zenoh's defaults: peer mode, multicast scouting on), plus the `listen` and
/// `connect` endpoints (Zenoh syntax, e.g. `tcp/10.0.0.1:7447`). Switch multicast scouting off
/// in the file (`scouting: { multicast: { enabled: false } }`) to use only the endpoints given.
///
/// # Errors
/// An unreadable or invalid file, or an invalid endpoint.
pub fn config(listen: &[String], connect: &[String], file: Option<&Path>) -> Result<zenoh::Config> {
    let mut config = match file {
        Some(path) => zenoh::Config::from_file(path)
            .map_err(|e| Error::Zenoh(format!("config file {}: {e}", path.display())))?,
        None => zenoh::Config::default(),
    };
    let json = |list: &[String]| {
        let quoted: Vec<String> = list.iter().map(|e| format!("{e:?}")).collect();
        format!("[{}]", quoted.join(","))
    };
    if !listen.is_empty() {
        config
            .insert_json5("listen/endpoints", &json(listen))
            .map_err(|e| Error::Zenoh(format!("--listen {listen:?}: {e}")))?;
    }
    if !connect.is_empty() {
        config
            .insert_json5("connect/endpoints", &json(connect))
            .map_err(|e| Error::Zenoh(format!("--connect {connect:?}: {e}")))?;
    }
    Ok(config)
}

// ---------------------------------------------------------------------------------------------
// The envelope.

/// What travels for each version: a small versioned wrapper around the snapshot's bytes.
///
/// Wire format (little-endian): `"SMOZ"`, envelope version `1` (u8), flags (u8, 0), 2 reserved
/// bytes, the source version (u64), the source's publish time (u64, ns since the Unix epoch),
/// the source object's nonce (u64: a re-created source is a new instance), the data length (u32),
/// the data (native-endian as in the object: mirrors must share the source's byte order), the
/// schema length (u32) and the encoded schema (`docs/FORMAT.md`, "Schema"), which also carries
/// the fingerprint. Every field is checked on decode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Envelope {
    /// The source's version of this value.
    pub version: u64,
    /// When the source published it (ns since the Unix epoch, source host's clock).
    pub published_unix_ns: u64,
    /// The source object's nonce.
    pub instance: u64,
    /// The value's bytes.
    pub data: Vec<u8>,
    /// The source's schema, encoded.
    pub schema: Vec<u8>,
}

const MAGIC: &[u8; 4] = b"SMOZ";
const ENVELOPE_VERSION: u8 = 1;
const FIXED: usize = 4 + 4 + 8 * 3 + 4;

impl Envelope {
    /// The bytes that travel.
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        Parts {
            version: self.version,
            published_unix_ns: self.published_unix_ns,
            instance: self.instance,
            data: &self.data,
            schema: &self.schema,
        }
        .encode()
    }

    /// Decodes and checks received bytes; returns the envelope and its decoded schema, whose
    /// size equals the data's.
    ///
    /// # Errors
    /// [`Error::Envelope`] saying what is wrong.
    pub fn decode(bytes: &[u8]) -> Result<(Envelope, Schema)> {
        let parts = Parts::parse(bytes)?;
        let schema = parts.schema()?;
        Ok((
            Envelope {
                version: parts.version,
                published_unix_ns: parts.published_unix_ns,
                instance: parts.instance,
                data: parts.data.to_vec(),
                schema: parts.schema.to_vec(),
            },
            schema,
        ))
    }
}

/// An envelope's fields, borrowed: what is encoded from a snapshot without copying it, and what
/// a mirror reads a sample as (decoding the schema only when it differs from the last one).
struct Parts<'a> {
    version: u64,
    published_unix_ns: u64,
    instance: u64,
    data: &'a [u8],
    schema: &'a [u8],
}

impl<'a> Parts<'a> {
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(FIXED + self.data.len() + 4 + self.schema.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&[ENVELOPE_VERSION, 0, 0, 0]);
        out.extend_from_slice(&self.version.to_le_bytes());
        out.extend_from_slice(&self.published_unix_ns.to_le_bytes());
        out.extend_from_slice(&self.instance.to_le_bytes());
        out.extend_from_slice(&(self.data.len() as u32).to_le_bytes());
        out.extend_from_slice(self.data);
        out.extend_from_slice(&(self.schema.len() as u32).to_le_bytes());
        out.extend_from_slice(self.schema);
        out
    }

    /// The header and the lengths checked; the schema bytes not decoded yet.
    fn parse(bytes: &'a [u8]) -> Result<Parts<'a>> {
        let bad = |why: &str| Error::Envelope(why.to_owned());
        if bytes.len() < FIXED || &bytes[..4] != MAGIC {
            return Err(bad("not an smobject envelope (no `SMOZ` header)"));
        }
        if bytes[4] != ENVELOPE_VERSION {
            return Err(Error::Envelope(format!(
                "envelope version {} (this build reads {ENVELOPE_VERSION}): update the older side",
                bytes[4]
            )));
        }
        let u64_at = |at: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&bytes[at..at + 8]);
            u64::from_le_bytes(b)
        };
        let u32_at = |at: usize| -> Option<usize> {
            let b = bytes.get(at..at + 4)?;
            usize::try_from(u32::from_le_bytes([b[0], b[1], b[2], b[3]])).ok()
        };
        let data_len = u32_at(32).ok_or_else(|| bad("truncated"))?;
        let data_end = FIXED
            .checked_add(data_len)
            .filter(|&e| e <= bytes.len())
            .ok_or_else(|| bad("the data runs past the end"))?;
        let schema_len = u32_at(data_end).ok_or_else(|| bad("truncated before the schema"))?;
        let schema_at = data_end + 4;
        if schema_at.checked_add(schema_len) != Some(bytes.len()) {
            return Err(bad("the schema length does not match the message"));
        }
        Ok(Parts {
            version: u64_at(8),
            published_unix_ns: u64_at(16),
            instance: u64_at(24),
            data: &bytes[FIXED..data_end],
            schema: &bytes[schema_at..],
        })
    }

    /// Decodes the schema and checks that it describes the data's size.
    fn schema(&self) -> Result<Schema> {
        let schema = Schema::decode(self.schema)
            .map_err(|why| Error::Envelope(format!("its schema is malformed: {why}")))?;
        if schema.size != self.data.len() {
            return Err(Error::Envelope(format!(
                "{} data bytes for a `{}` of {} bytes",
                self.data.len(),
                schema.name,
                schema.size
            )));
        }
        Ok(schema)
    }
}

fn unix_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

// ---------------------------------------------------------------------------------------------
// Publishing.

/// Publishes a local object's versions on a key expression, and answers queries for the latest.
pub struct Publication {
    object: DynObject,
    publisher: Publisher<'static>,
    _queryable: Queryable<()>,
    /// The object's encoded schema, sent in every envelope.
    schema: Vec<u8>,
    /// The snapshot buffer, reused by every publish.
    snapshot: Vec<u8>,
    /// The last envelope put, shared with the queryable's callback (`ZBytes` clones share the
    /// bytes); `None` before the first put.
    latest: Arc<Mutex<Option<ZBytes>>>,
    last_version: Option<u64>,
    last_put: Instant,
}

impl Publication {
    /// Declares the publisher and the queryable for `keyexpr` on `session`, and publishes the
    /// object's current value at once.
    ///
    /// # Errors
    /// An invalid or pattern key expression ([`Error::KeyExpr`]); a failed declaration
    /// ([`Error::Zenoh`]); a schema too large.
    pub fn new(session: &Session, keyexpr: &str, object: DynObject) -> Result<Publication> {
        check_keyexpr(keyexpr)?;
        let schema = object
            .schema()
            .encode()
            .map_err(|why| Error::Envelope(why.clone()))?;
        let publisher = session
            .declare_publisher(keyexpr.to_owned())
            .congestion_control(CongestionControl::Drop)
            .express(true)
            .wait()
            .map_err(|e| zenoh_err(&format!("declaring a publisher on `{keyexpr}`"), &e))?;
        let latest = Arc::new(Mutex::new(None::<ZBytes>));
        let for_queries = Arc::clone(&latest);
        let reply_key = keyexpr.to_owned();
        let queryable = session
            .declare_queryable(keyexpr.to_owned())
            .callback(move |query| {
                let latest = for_queries
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .clone();
                if let Some(bytes) = latest {
                    // A failed reply only means the querier went away.
                    let _ = query.reply(reply_key.clone(), bytes).wait();
                }
            })
            .wait()
            .map_err(|e| zenoh_err(&format!("declaring a queryable on `{keyexpr}`"), &e))?;
        let mut publication = Publication {
            snapshot: vec![0; object.len()],
            object,
            publisher,
            _queryable: queryable,
            schema,
            latest,
            last_version: None,
            last_put: Instant::now(),
        };
        publication.publish_latest()?;
        Ok(publication)
    }

    /// The object published.
    #[must_use]
    pub fn object(&self) -> &DynObject {
        &self.object
    }

    /// Publishes the object's newest snapshot if its version was not published yet. Returns the
    /// version published, if any.
    ///
    /// # Errors
    /// A failed put.
    pub fn publish_latest(&mut self) -> Result<Option<u64>> {
        let version = self.object.read_into(&mut self.snapshot);
        if self.last_version == Some(version) {
            return Ok(None);
        }
        let envelope = Parts {
            version,
            published_unix_ns: unix_ns(),
            instance: self.object.raw().nonce(),
            data: &self.snapshot,
            schema: &self.schema,
        }
        .encode();
        self.put(ZBytes::from(envelope))?;
        self.last_version = Some(version);
        Ok(Some(version))
    }

    fn put(&mut self, envelope: ZBytes) -> Result<()> {
        self.publisher
            .put(envelope.clone())
            .wait()
            .map_err(|e| zenoh_err("put", &e))?;
        *self.latest.lock().unwrap_or_else(PoisonError::into_inner) = Some(envelope);
        self.last_put = Instant::now();
        Ok(())
    }

    /// Republishes the latest envelope (the heartbeat).
    ///
    /// # Errors
    /// A failed put.
    pub fn republish(&mut self) -> Result<()> {
        let latest = self
            .latest
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        match latest {
            Some(envelope) => self.put(envelope),
            None => Ok(()),
        }
    }

    /// Until `stop` is set: sleeps on the object's futex (woken by the next publish of any
    /// process; at most [`STOP_CHECK`] at a time to see `stop`), publishes each new version it
    /// wakes to, and republishes the latest envelope when the object was idle for
    /// [`HEARTBEAT`].
    ///
    /// # Errors
    /// A failed put or wait.
    pub fn run(&mut self, stop: &AtomicBool) -> Result<()> {
        while !stop.load(Ordering::Relaxed) {
            let seen = self.last_version.unwrap_or(0);
            match self.object.wait_for_update(seen, Some(STOP_CHECK)) {
                Ok(_) => {
                    self.publish_latest()?;
                }
                Err(e) if e.kind() == ErrorKind::Timeout => {
                    if self.last_put.elapsed() >= HEARTBEAT {
                        self.republish()?;
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Mirroring.

/// Writes the snapshots received on a key expression into a local object (created from the
/// first envelope's schema).
///
/// Each sample is applied in Zenoh's receive callback: a check of the envelope and one locked
/// write (a few hundred nanoseconds), so nothing queues behind it and no thread hand-off adds
/// a wake-up to the latency. Older and repeated versions are skipped.
pub struct Mirror {
    session: Session,
    keyexpr: String,
    state: Arc<Inner>,
    _subscriber: Subscriber<()>,
}

/// What the receive callback and the [`Mirror`] handle share.
struct Inner {
    state: Mutex<State>,
    /// Signalled after every write, and when a fatal error is stored.
    changed: Condvar,
}

struct State {
    key: Key,
    options: Options,
    /// The mirror object, and the encoded source schema it was opened for: samples that carry
    /// the same bytes (all of them, until the source changes its struct) are written without
    /// decoding or checking the schema again.
    object: Option<(DynObject, Vec<u8>)>,
    /// `(instance, version)` of the last envelope applied.
    applied: Option<(u64, u64)>,
    /// The mirror's own version after its last write (a local write moves it past this).
    local_version: u64,
    /// When the followed instance (that of `applied`) last sent an envelope.
    followed_at: Instant,
    /// The other instance last reported as skipped (reported once, not per envelope).
    reported_other: Option<u64>,
    /// The source's struct gained fields that the mirror cannot take while other processes
    /// are attached to it (reported once).
    reported_prefix: bool,
    /// Writes made (for [`Mirror::receive`]).
    writes: u64,
    /// An error that stops the mirror (e.g. the existing object's schema is incompatible).
    fatal: Option<Error>,
}

impl Mirror {
    /// Subscribes to `keyexpr` and asks the publication for the current value; the mirror
    /// object under `key` is created (or opened) with the first envelope received.
    ///
    /// # Errors
    /// An invalid or pattern key expression ([`Error::KeyExpr`]); a failed declaration; the
    /// first envelope's errors as [`apply`](Self::apply).
    pub fn new(session: &Session, keyexpr: &str, key: Key, options: Options) -> Result<Mirror> {
        check_keyexpr(keyexpr)?;
        let shared = Arc::new(Inner::new(key, options));
        let in_callback = Arc::clone(&shared);
        let subscriber = session
            .declare_subscriber(keyexpr.to_owned())
            .callback(move |sample| {
                let outcome = in_callback.apply(&sample.payload().to_bytes());
                match outcome {
                    Ok(_) => {}
                    Err(Error::Envelope(why) | Error::OtherSource(why)) => {
                        eprintln!("smobject-zenoh: ignored: {why}");
                    }
                    Err(e) => {
                        in_callback.lock().fatal.get_or_insert(e);
                        in_callback.changed.notify_all();
                    }
                }
            })
            .wait()
            .map_err(|e| zenoh_err(&format!("declaring a subscriber on `{keyexpr}`"), &e))?;
        let mirror = Mirror {
            session: session.clone(),
            keyexpr: keyexpr.to_owned(),
            state: shared,
            _subscriber: subscriber,
        };
        mirror.query_latest()?;
        Ok(mirror)
    }

    /// Asks the publication(s) for the latest envelope and applies it (late joiners).
    ///
    /// # Errors
    /// As [`apply`](Self::apply).
    pub fn query_latest(&self) -> Result<()> {
        let replies: FifoChannelHandler<Reply> = self
            .session
            .get(self.keyexpr.clone())
            .timeout(QUERY_TIMEOUT)
            .wait()
            .map_err(|e| zenoh_err(&format!("querying `{}`", self.keyexpr), &e))?;
        while let Ok(reply) = replies.recv() {
            if let Ok(sample) = reply.result() {
                self.apply(&sample.payload().to_bytes())?;
            }
        }
        Ok(())
    }

    /// `(source instance, source version)` of the last envelope written into the mirror.
    #[must_use]
    pub fn applied(&self) -> Option<(u64, u64)> {
        self.state.lock().applied
    }

    /// Applies an envelope received some other way (the receive callback does this for every
    /// sample): creates or opens the mirror from its schema the first time, then writes its
    /// data if it is a newer version of the followed source instance (or the last one again,
    /// when a local write moved the mirror since), or any version of another instance once
    /// the followed one has been silent for [`SOURCE_SILENCE`] (the source was re-created).
    /// Returns whether it wrote.
    ///
    /// # Errors
    /// A malformed envelope ([`Error::Envelope`]: nothing is written); one from another source
    /// instance while the followed one is live ([`Error::OtherSource`], once per instance;
    /// later ones return `Ok(false)`); a target that is not a mirror ([`Error::NotAMirror`]); a
    /// mirror that exists with an incompatible schema (`LayoutMismatch` naming the field); a
    /// source whose schema changed to one the mirror cannot hold. A source that only gained
    /// fields while other processes use the mirror is mirrored in the mirror's own prefix
    /// (reported once on stderr) until the mirror can be re-created.
    pub fn apply(&self, bytes: &[u8]) -> Result<bool> {
        self.state.apply(bytes)
    }

    /// Waits up to `timeout` for the next write into the mirror. Returns whether one came.
    ///
    /// # Errors
    /// The error that stopped the mirror, if one did.
    pub fn receive(&self, timeout: Duration) -> Result<bool> {
        let mut st = self.state.lock();
        let before = st.writes;
        let deadline = Instant::now() + timeout;
        while st.writes == before && st.fatal.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(false);
            }
            st = self
                .state
                .changed
                .wait_timeout(st, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        match st.fatal.take() {
            Some(e) => Err(e),
            None => Ok(true),
        }
    }

    /// Until `stop` is set (checked at least every [`STOP_CHECK`]), or an error stops the
    /// mirror: malformed envelopes are skipped (reported on stderr), an incompatible schema
    /// is returned.
    ///
    /// # Errors
    /// The error that stopped the mirror.
    pub fn run(&self, stop: &AtomicBool) -> Result<()> {
        while !stop.load(Ordering::Relaxed) {
            self.receive(STOP_CHECK)?;
        }
        Ok(())
    }
}

impl Inner {
    fn new(key: Key, options: Options) -> Inner {
        Inner {
            state: Mutex::new(State {
                key,
                options,
                object: None,
                applied: None,
                local_version: 0,
                followed_at: Instant::now(),
                reported_other: None,
                reported_prefix: false,
                writes: 0,
                fatal: None,
            }),
            changed: Condvar::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn apply(&self, bytes: &[u8]) -> Result<bool> {
        let parts = Parts::parse(bytes)?;
        let mut st = self.lock();
        if st.skips(&parts)? {
            return Ok(false);
        }
        let same_schema = st
            .object
            .as_ref()
            .is_some_and(|(_, source)| source.as_slice() == parts.schema);
        if !same_schema {
            let object = st.target_for(parts.schema()?)?;
            st.object = Some((object, parts.schema.to_vec()));
        }
        let Some((object, _)) = &st.object else {
            return Ok(false);
        };
        if parts.instance == object.raw().nonce() {
            return Err(Error::NotAMirror(format!(
                "{} is the one published on this key expression: mirroring it into itself \
                 would write in a loop",
                the_object(&st.key)
            )));
        }
        let n = parts.data.len().min(object.len());
        let local_version = object.write_mirrored(
            &parts.data[..n],
            Origin {
                version: parts.version,
                published_unix_ns: parts.published_unix_ns,
            },
        )?;
        st.followed_at = Instant::now();
        st.applied = Some((parts.instance, parts.version));
        st.local_version = local_version;
        st.writes += 1;
        drop(st);
        self.changed.notify_all();
        Ok(true)
    }
}

/// `the object under PATH id 'I'`, as the mirror's refusals name their target.
fn the_object(key: &Key) -> String {
    format!(
        "the object under {} id '{}'",
        key.path().display(),
        char::from(key.id())
    )
}

impl State {
    /// Whether an envelope is skipped: an older or repeated version of the followed source,
    /// or one of another source while the followed one is live ([`Error::OtherSource`] the
    /// first time).
    fn skips(&mut self, parts: &Parts<'_>) -> Result<bool> {
        if let Some((instance, version)) = self.applied {
            if instance == parts.instance {
                self.followed_at = Instant::now();
                // An older or repeated version is skipped, unless it is the one applied last
                // and a local program wrote the mirror since: then it restores the source's
                // value (within a heartbeat).
                let written_locally = self
                    .object
                    .as_ref()
                    .is_some_and(|(o, _)| o.version() != self.local_version);
                if parts.version < version || (parts.version == version && !written_locally) {
                    return Ok(true);
                }
            } else if self.followed_at.elapsed() < SOURCE_SILENCE {
                // Two publications on one key: follow the first until it goes silent (a
                // re-created source's old instance stops; a second live source never wins).
                if self.reported_other == Some(parts.instance) {
                    return Ok(true);
                }
                self.reported_other = Some(parts.instance);
                return Err(Error::OtherSource(format!(
                    "another source (instance {:#x}) publishes on this key expression; the \
                     mirror follows instance {instance:#x} until it is silent for {} s",
                    parts.instance,
                    SOURCE_SILENCE.as_secs()
                )));
            }
        }
        Ok(false)
    }

    /// The object that envelopes of `schema` are written into: the current one if it can take
    /// them, else one opened (or created) by the prefix rule.
    fn target_for(&mut self, schema: Schema) -> Result<DynObject> {
        let object = match self.object.take() {
            // The source's schema is a prefix of the mirror's (it shrank): the object stays.
            Some((o, _)) if schema.check_prefix(o.schema()).is_ok() => o,
            // The source gained fields while other processes use the mirror: re-creating
            // it would fail (they hold the old layout), so the mirror keeps its prefix.
            Some((o, _)) if o.schema().check_prefix(&schema).is_ok() && o.raw().attached()? > 1 => {
                if !self.reported_prefix {
                    self.reported_prefix = true;
                    eprintln!(
                        "smobject-zenoh: the source's `{}` gained fields; the mirror keeps \
                         its {} while other processes are attached to it; restart \
                         `subscribe` once they detached to mirror the rest",
                        schema.name,
                        o.schema().fields.len()
                    );
                }
                o
            }
            // First envelope, or an incompatible change: the old object is dropped
            // (detached, freed if it was the last attachment) before one is opened by the
            // prefix rule.
            old => {
                let changed = old.is_some();
                drop(old);
                let name = schema.name.clone();
                let o = DynObject::open_or_create_in(&self.key, schema, &self.options).map_err(
                    |e| match e.kind() {
                        // Said from the mirror's side: the message names the object's
                        // creator (this subscriber) and speaks of an older build.
                        ErrorKind::LayoutMismatch if changed => e.with_hint(format!(
                            "the source changed its struct (`{name}`) in a way the mirror's \
                             layout cannot take, and other processes still hold the mirror: \
                             stop them, then restart `subscribe`"
                        )),
                        _ => e,
                    },
                )?;
                if !o.raw().created() && o.origin().is_none() && o.version() > 0 {
                    return Err(Error::NotAMirror(format!(
                        "{} is not a mirror: it holds version {} written by a local program, \
                         which the mirror would overwrite",
                        the_object(&self.key),
                        o.version()
                    )));
                }
                o
            }
        };
        Ok(object)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema_bytes() -> Vec<u8> {
        let schema = Schema {
            name: "T".into(),
            size: 8,
            align: 8,
            fields: vec![smobject::schema::Field {
                name: "a".into(),
                offset: 0,
                ty: smobject::schema::Type::Scalar(smobject::schema::Scalar::U64),
            }],
        };
        schema.encode().unwrap()
    }

    #[test]
    fn envelopes_round_trip_and_malformed_ones_are_refused() {
        let e = Envelope {
            version: 7,
            published_unix_ns: 99,
            instance: 0xabc,
            data: 42u64.to_ne_bytes().to_vec(),
            schema: schema_bytes(),
        };
        let bytes = e.encode();
        let (back, schema) = Envelope::decode(&bytes).unwrap();
        assert_eq!(back, e);
        assert_eq!(schema.name, "T");
        // Every truncation and many single-byte changes are refused, never a panic.
        for n in 0..bytes.len() {
            assert!(Envelope::decode(&bytes[..n]).is_err(), "truncated to {n}");
        }
        let mut refused = 0;
        for at in 0..bytes.len() {
            for bit in 0..8 {
                let mut b = bytes.clone();
                b[at] ^= 1 << bit;
                if Envelope::decode(&b).is_err() {
                    refused += 1;
                }
            }
        }
        // Flips in the version, time, instance and data are valid envelopes; the rest are not.
        assert!(refused > bytes.len() * 2, "{refused}");
        let mut wrong_size = e;
        wrong_size.data.push(0);
        assert!(Envelope::decode(&wrong_size.encode()).is_err());
    }

    /// A struct of `n` u64 fields `a`, `b`, ... (each schema a prefix of the next).
    fn schema_of(n: usize) -> Schema {
        Schema {
            name: "T".into(),
            size: 8 * n,
            align: 8,
            fields: (0..n)
                .map(|i| smobject::schema::Field {
                    name: char::from(b'a' + i as u8).to_string(),
                    offset: 8 * i,
                    ty: smobject::schema::Type::Scalar(smobject::schema::Scalar::U64),
                })
                .collect(),
        }
    }

    /// An envelope of source `instance` at `version` whose fields all hold `value`.
    fn envelope(instance: u64, version: u64, fields: usize, value: u64) -> Vec<u8> {
        envelope_of(instance, version, &schema_of(fields), value)
    }

    /// [`envelope`] for a schema of 8-byte fields.
    fn envelope_of(instance: u64, version: u64, schema: &Schema, value: u64) -> Vec<u8> {
        Envelope {
            version,
            published_unix_ns: 1,
            instance,
            data: value.to_ne_bytes().repeat(schema.fields.len()),
            schema: schema.encode().unwrap(),
        }
        .encode()
    }

    /// A key file of its own in the temp directory, removed on drop (with any pair left).
    struct KeyFile(std::path::PathBuf);

    impl KeyFile {
        fn new(name: &str) -> KeyFile {
            let path = std::env::temp_dir()
                .join(format!("smobject-zenoh-test-{name}-{}", std::process::id()));
            std::fs::write(&path, b"").unwrap();
            KeyFile(path)
        }

        fn key(&self) -> Key {
            Key::from_path(&self.0, b'm').unwrap()
        }
    }

    impl Drop for KeyFile {
        fn drop(&mut self) {
            let _ = smobject::remove_stale(&self.0, b'm');
            let _ = std::fs::remove_file(&self.0);
        }
    }

    fn first_field(o: &DynObject) -> u64 {
        let mut buf = vec![0; o.len()];
        o.read_into(&mut buf);
        u64::from_ne_bytes(buf[..8].try_into().unwrap())
    }

    #[test]
    fn a_mirror_follows_one_source_and_takes_another_only_after_its_silence() {
        let kf = KeyFile::new("two-sources");
        let m = Inner::new(kf.key(), Options::new());
        assert!(m.apply(&envelope(0xa, 1, 1, 100)).unwrap());
        // A second live source on the key: reported once, then skipped silently.
        let e = m.apply(&envelope(0xb, 1, 1, 200)).unwrap_err();
        assert!(matches!(e, Error::OtherSource(_)), "{e}");
        assert!(
            e.to_string().contains("0xb") && e.to_string().contains("0xa"),
            "{e}"
        );
        assert!(!m.apply(&envelope(0xb, 2, 1, 200)).unwrap());
        assert!(m.apply(&envelope(0xa, 2, 1, 101)).unwrap());
        let reader = DynObject::access_in(&kf.key(), &Options::new()).unwrap();
        assert_eq!(first_field(&reader), 101, "the followed source's value");
        // Once the followed source has been silent long enough, the other one is taken.
        m.lock().followed_at = Instant::now().checked_sub(SOURCE_SILENCE).unwrap();
        assert!(m.apply(&envelope(0xb, 3, 1, 200)).unwrap());
        assert_eq!(first_field(&reader), 200);
        let e = m.apply(&envelope(0xa, 3, 1, 102)).unwrap_err();
        assert!(
            matches!(e, Error::OtherSource(_)),
            "0xa is the other one now: {e}"
        );
        assert_eq!(first_field(&reader), 200);
    }

    #[test]
    fn a_local_write_into_the_mirror_is_undone_by_the_next_heartbeat() {
        let kf = KeyFile::new("local-write");
        let m = Inner::new(kf.key(), Options::new());
        assert!(m.apply(&envelope(0xa, 5, 1, 7)).unwrap());
        assert!(
            !m.apply(&envelope(0xa, 5, 1, 7)).unwrap(),
            "a repeat is skipped"
        );
        let local = DynObject::access_in(&kf.key(), &Options::new()).unwrap();
        local.write_bytes(&999u64.to_ne_bytes()).unwrap();
        assert!(
            m.apply(&envelope(0xa, 5, 1, 7)).unwrap(),
            "the heartbeat restores"
        );
        assert_eq!(first_field(&local), 7);
        assert!(
            !m.apply(&envelope(0xa, 4, 1, 6)).unwrap(),
            "an older version never"
        );
    }

    #[test]
    fn a_local_object_or_the_published_one_is_not_taken_as_a_mirror() {
        let kf = KeyFile::new("not-a-mirror");
        let local = DynObject::create_in(&kf.key(), schema_of(1), &Options::new()).unwrap();
        // Its own envelope (publish and subscribe on one object) would loop.
        let own = envelope(local.raw().nonce(), 1, 1, 5);
        let e = Inner::new(kf.key(), Options::new())
            .apply(&own)
            .unwrap_err();
        assert!(
            matches!(e, Error::NotAMirror(_)) && e.to_string().contains("loop"),
            "{e}"
        );
        // Written by a local program: not overwritten by another source.
        local.write_bytes(&42u64.to_ne_bytes()).unwrap();
        let e = Inner::new(kf.key(), Options::new())
            .apply(&envelope(0xa, 1, 1, 5))
            .unwrap_err();
        assert!(matches!(e, Error::NotAMirror(_)), "{e}");
        assert!(
            e.to_string().contains("not a mirror") && e.to_string().contains("id 'm'"),
            "{e}"
        );
        assert_eq!(first_field(&local), 42);
    }

    #[test]
    fn a_source_that_gains_fields_is_mirrored_in_the_prefix_while_readers_hold_the_mirror() {
        let kf = KeyFile::new("grown");
        let m = Inner::new(kf.key(), Options::new());
        assert!(m.apply(&envelope(0xa, 1, 1, 1)).unwrap());
        let reader = DynObject::access_in(&kf.key(), &Options::new()).unwrap();
        // The source is rebuilt with a field more: the reader keeps the mirror's layout.
        assert!(m.apply(&envelope(0xa, 2, 2, 2)).unwrap());
        assert_eq!(reader.schema().fields.len(), 1);
        assert_eq!(first_field(&reader), 2);
        assert!(m.apply(&envelope(0xa, 3, 2, 3)).unwrap());
        assert_eq!(first_field(&reader), 3);
        // An incompatible change (another type) cannot be mirrored while the reader stays.
        let mut signed = schema_of(1);
        signed.fields[0].ty = smobject::schema::Type::Scalar(smobject::schema::Scalar::I64);
        let e = m.apply(&envelope_of(0xa, 4, &signed, 9)).unwrap_err();
        assert_eq!(e.kind(), Some(ErrorKind::LayoutMismatch), "{e}");
        assert!(e.to_string().contains("restart `subscribe`"), "{e}");
        drop(reader);
        // Once nobody else holds it, the next change of schema re-creates the mirror.
        let m = Inner::new(kf.key(), Options::new());
        assert!(m.apply(&envelope(0xa, 5, 3, 4)).unwrap());
        let reader = DynObject::access_in(&kf.key(), &Options::new()).unwrap();
        assert_eq!(reader.schema().fields.len(), 3);
        assert_eq!(first_field(&reader), 4);
    }

    #[test]
    fn patterns_and_invalid_key_expressions_are_refused() {
        for bad in ["robot/*", "robot/**", "a/$*b", "robot//x", "", "/robot"] {
            let e = check_keyexpr(bad).unwrap_err();
            assert!(matches!(e, Error::KeyExpr(_)), "{bad}: {e}");
            assert!(!e.to_string().contains("endpoints"), "{bad}: {e}");
            assert!(!e.to_string().contains(".rs:"), "no source location: {e}");
        }
        assert!(check_keyexpr("robot/telemetry").is_ok());
    }

    #[test]
    fn config_takes_endpoints_and_files() {
        let c = config(&["tcp/127.0.0.1:0".into()], &[], None).unwrap();
        assert!(format!("{c:?}").contains("127.0.0.1"));
        assert!(config(&["nonsense".into()], &[], None).is_err());
        assert!(config(&[], &[], Some(Path::new("/no/such/file.json5"))).is_err());
    }
}
