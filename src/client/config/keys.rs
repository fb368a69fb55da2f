//! The one table of configuration keys: for each its name, scope, type and range, default and
//! doc, and the checks of its values. [`Settings`](super::Settings) applies them;
//! `docs/CONFIGURATION.md` is generated from it ([`reference_markdown`]).

use super::{ConnectionConfig, MAX_PER_CONNECTION, MIN_FRAME_MAX, check_frame_max};
use crate::client::consumer::{CreditPolicy, MAX_CONSUMER_UPDATE_TIMEOUT, MAX_CREDIT};
use crate::client::environment::MAX_NAME_LEN;
use crate::client::error::echo;
use crate::client::producer::{MAX_BATCH_SIZE, MAX_IN_FLIGHT_LIMIT, MAX_SUB_ENTRY_RECORDS};
use crate::client::recovery::MAX_DELAY_LIMIT;
use crate::protocol::codes::OffsetSpec;
use crate::protocol::compression::Compression;

/// A refused key or value; the message names the key and says what it accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

impl From<crate::client::ClientError> for ConfigError {
    fn from(e: crate::client::ClientError) -> Self {
        ConfigError(e.to_string())
    }
}

impl From<ConfigError> for crate::client::ClientError {
    fn from(e: ConfigError) -> Self {
        crate::client::ClientError::InvalidArgument(e.0)
    }
}

/// What a config is used for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    Connection,
    Producer,
    Consumer,
    Stream,
    /// A super stream producer: the producer keys and its own.
    SuperProducer,
    /// A super stream consumer: the consumer keys and its own.
    SuperConsumer,
}

impl Scope {
    /// Every scope, in the order of the reference.
    pub const ALL: [Scope; 6] = [
        Scope::Connection,
        Scope::Producer,
        Scope::Consumer,
        Scope::SuperProducer,
        Scope::SuperConsumer,
        Scope::Stream,
    ];

    pub(crate) fn is_super(self) -> bool {
        matches!(self, Scope::SuperProducer | Scope::SuperConsumer)
    }

    /// `a connection`, `a producer`, ...: for messages.
    pub fn noun(self) -> &'static str {
        match self {
            Scope::Connection => "a connection",
            Scope::Producer => "a producer",
            Scope::Consumer => "a consumer",
            Scope::Stream => "stream creation",
            Scope::SuperProducer => "a super producer",
            Scope::SuperConsumer => "a super consumer",
        }
    }
}

/// The type (and range) of a key's values.
#[derive(Clone, Copy, Debug)]
pub enum Kind {
    /// Any string.
    Str,
    /// A non-empty string.
    NonEmpty,
    /// 1 to 255 bytes (stream names, references).
    Name,
    Bool,
    /// An unsigned integer within a range.
    Uint(u64, u64),
    /// One of these words (case-insensitive).
    Word(&'static [&'static str]),
    /// A `rabbitmq-stream://` URI.
    Uri,
    /// `host[:port][,host[:port]...]`.
    Hosts,
    /// `first|last|next|offset:N|timestamp:MS`.
    Offset,
    /// A broker duration: digits followed by one of `Y M D h m s`.
    Age,
    /// `on_release|on_arrival|manual|after_processed:N|when_below:PERCENT|ratio:R`.
    Credit,
    /// Non-empty items separated by commas.
    List,
    /// A sub-entry codec name (`Compression::from_name`).
    Codec,
    /// 0 or at least `MIN_FRAME_MAX`, at most `u32::MAX`.
    FrameMax,
}

impl Kind {
    /// What the values are, for the reference and for messages.
    pub fn describe(self) -> String {
        match self {
            Kind::Str => "string".into(),
            Kind::NonEmpty => "non-empty string".into(),
            Kind::Name => format!("string of 1 to {MAX_NAME_LEN} bytes"),
            Kind::Bool => "true or false".into(),
            Kind::Uint(min, max) => format!("an integer from {min} to {max}"),
            Kind::Word(words) => format!("one of {}", words.join(", ")),
            Kind::Uri => "rabbitmq-stream:// or rabbitmq-stream+tls:// URI".into(),
            Kind::Hosts => "host[:port] separated by commas".into(),
            Kind::Offset => "first, last, next, offset:N or timestamp:MS".into(),
            Kind::Age => "a number followed by Y, M, D, h, m or s, e.g. 7D".into(),
            Kind::Credit => {
                "on_release, on_arrival, manual, after_processed:N, when_below:PERCENT or ratio:R"
                    .into()
            }
            Kind::List => "non-empty items of at most 32767 bytes separated by commas".into(),
            Kind::Codec => format!("one of {}", Compression::names()),
            Kind::FrameMax => format!("0 or an integer from {MIN_FRAME_MAX} to {}", u32::MAX),
        }
    }
}

/// One configuration key.
#[derive(Debug)]
pub struct Key {
    pub name: &'static str,
    /// Where it applies (see [`Key::scopes`] for the super scopes and shared keys).
    pub scope: Scope,
    pub kind: Kind,
    /// The effective value when unset (`""`: none, or what the doc says).
    pub default: &'static str,
    /// For stream keys: the broker's argument name.
    pub arg: &'static str,
    /// One line for the reference.
    pub doc: &'static str,
}

impl Key {
    /// Every scope the key applies to: super producers and consumers take every producer /
    /// consumer key, and `name` is a consumer key too.
    pub fn scopes(&self) -> Vec<Scope> {
        let mut v = vec![self.scope];
        if CONSUMER_ALSO.contains(&self.name) {
            v.push(Scope::Consumer);
        }
        if v.contains(&Scope::Producer) {
            v.push(Scope::SuperProducer);
        }
        if v.contains(&Scope::Consumer) {
            v.push(Scope::SuperConsumer);
        }
        v
    }

    /// Whether the value is a secret, shown as `***` by [`Settings::dump`](super::Settings::dump).
    pub fn is_secret(&self) -> bool {
        self.name == "password"
    }
}

const fn k(
    name: &'static str,
    scope: Scope,
    kind: Kind,
    default: &'static str,
    doc: &'static str,
) -> Key {
    Key {
        name,
        scope,
        kind,
        default,
        arg: "",
        doc,
    }
}

const fn s(name: &'static str, arg: &'static str, kind: Kind, doc: &'static str) -> Key {
    Key {
        name,
        scope: Scope::Stream,
        kind,
        default: "",
        arg,
        doc,
    }
}

const MS_MAX: u64 = i32::MAX as u64;
const PER_CONNECTION: Kind = Kind::Uint(1, MAX_PER_CONNECTION as u64);
const RECOVERY_DELAY: Kind = Kind::Uint(1, MAX_DELAY_LIMIT.as_millis() as u64);

use Kind::*;
use Scope::*;

/// Every key. Producer and consumer keys may also be set on a connection config with a
/// `producer.` / `consumer.` prefix, as defaults for the producers and consumers of that
/// connection.
pub const KEYS: &[Key] = &[
    k(
        "uri",
        Connection,
        Uri,
        "rabbitmq-stream://localhost:5552/%2f",
        "`rabbitmq-stream://user:pass@host:port/vhost?key=value&...` (`rabbitmq-stream+tls://` for TLS; hosts separated by commas; user, password, vhost and values percent-encoded); query parameters `heartbeat`, `frame_max`, `connection_name`, `connect_timeout` (or `connection_timeout`) and `request_timeout` (ms), `load_balancer_mode`, any other is refused; other keys override what the URI says",
    ),
    k(
        "hosts",
        Connection,
        Hosts,
        "localhost",
        "seed hosts, tried in order; a host without a port takes `port`",
    ),
    k(
        "port",
        Connection,
        Uint(1, 65535),
        "5552",
        "the port of hosts given without one (default 5551 with TLS)",
    ),
    k(
        "username",
        Connection,
        Str,
        "guest",
        "user name (SASL PLAIN)",
    ),
    k(
        "password",
        Connection,
        Str,
        "guest",
        "password (SASL PLAIN); never shown in messages or dumps",
    ),
    k("vhost", Connection, NonEmpty, "/", "virtual host"),
    k(
        "frame_max",
        Connection,
        FrameMax,
        "1048576",
        "largest frame in bytes, 0 = the broker's choice; at least 8192 (the broker's limit before tuning) so that every command fits",
    ),
    k(
        "heartbeat",
        Connection,
        Uint(0, 65535),
        "60",
        "heartbeat interval in seconds, 0 = none",
    ),
    k(
        "connection_name",
        Connection,
        Str,
        "rmqstream",
        "the name the broker shows for the connection",
    ),
    k(
        "tls",
        Connection,
        Bool,
        "false",
        "connect with TLS (also from a `rabbitmq-stream+tls://` URI)",
    ),
    k(
        "tls_ca_file",
        Connection,
        NonEmpty,
        "",
        "PEM file of trusted CA certificates (default: the system's roots); needs TLS",
    ),
    k(
        "tls_cert_file",
        Connection,
        NonEmpty,
        "",
        "PEM client certificate chain (mutual TLS, SASL EXTERNAL); needs TLS",
    ),
    k(
        "tls_key_file",
        Connection,
        NonEmpty,
        "",
        "PEM private key of the client certificate; needs TLS",
    ),
    k(
        "tls_verify",
        Connection,
        Bool,
        "true",
        "verify the server's certificate chain and name; needs TLS",
    ),
    k(
        "tls_server_name",
        Connection,
        NonEmpty,
        "",
        "name to verify the server's certificate against (default: the host); needs TLS",
    ),
    k(
        "sasl_mechanism",
        Connection,
        Word(&["PLAIN", "EXTERNAL"]),
        "PLAIN",
        "`PLAIN` (user name and password) or `EXTERNAL` (the TLS client certificate)",
    ),
    k(
        "connect_timeout_ms",
        Connection,
        Uint(1, MS_MAX),
        "10000",
        "time allowed to connect and complete the handshake, per seed host",
    ),
    k(
        "request_timeout_ms",
        Connection,
        Uint(1, MS_MAX),
        "10000",
        "time allowed for one request/response exchange",
    ),
    k(
        "max_producers_per_connection",
        Connection,
        PER_CONNECTION,
        "256",
        "producers sharing one TCP connection before another is opened",
    ),
    k(
        "max_consumers_per_connection",
        Connection,
        PER_CONNECTION,
        "256",
        "consumers sharing one TCP connection before another is opened",
    ),
    k(
        "load_balancer",
        Connection,
        Bool,
        "false",
        "reach nodes through the seed hosts (a load balancer) instead of the addresses the broker advertises",
    ),
    k(
        "recovery",
        Connection,
        Bool,
        "true",
        "producers and consumers come back by themselves after a lost connection, a heartbeat timeout, a broker restart or a moved stream leader; false: they close for good",
    ),
    k(
        "recovery_initial_delay_ms",
        Connection,
        RECOVERY_DELAY,
        "200",
        "wait before the first recovery attempt, doubled after each failed one up to `recovery_max_delay_ms`, each ±25 % at random",
    ),
    k(
        "recovery_max_delay_ms",
        Connection,
        RECOVERY_DELAY,
        "5000",
        "longest wait between recovery attempts",
    ),
    k(
        "recovery_attempts",
        Connection,
        Uint(0, u32::MAX as u64),
        "0",
        "recovery attempts before giving up, 0 = forever; a deleted stream is never retried",
    ),
    k(
        "lazy_open",
        Connection,
        Bool,
        "false",
        "opening returns at once; the first call that needs the broker connects (calls meanwhile wait, within `connect_timeout_ms`)",
    ),
    k(
        "runtime_threads",
        Connection,
        Uint(1, 64),
        "1",
        "threads (`rmqs-rt`) of the connection's Tokio runtime, which reads and writes the frames of all its producers and consumers; one costs the least CPU per message, more keep frames moving while a post-filter or TLS keeps a thread busy (C API)",
    ),
    k(
        "dispatch_threads",
        Connection,
        Uint(1, 64),
        "2",
        "threads (`rmqs-dispatch`) that run the callbacks of the connection's producers and consumers, however many there are; started with the first object that has a callback (C API)",
    ),
    k(
        "log_level",
        Connection,
        Word(&["off", "error", "warn", "warning", "info", "debug", "trace"]),
        "info",
        "what reaches the log callback",
    ),
    // producers
    k(
        "name",
        Producer,
        Name,
        "",
        "producer: deduplicate under this name (continues after the last publishing id the broker kept); consumer: the single-active-consumer group and default tracking reference",
    ),
    k(
        "batch_size",
        Producer,
        Uint(1, MAX_BATCH_SIZE as u64),
        "100",
        "messages per Publish frame",
    ),
    k(
        "batch_delay_ms",
        Producer,
        Uint(0, 60_000),
        "5",
        "how long a partial frame (or sub-entry) waits for more messages, 0 = each send goes out at once",
    ),
    k(
        "dynamic_batch",
        Producer,
        Bool,
        "false",
        "true: a partial frame goes at once when nothing sent before it is unconfirmed, else once all is confirmed (or it fills, or `batch_delay_ms` passes): confirm latency of about one round trip at low rates, for 2-4.5x the broker's CPU per message; not used with `sub_entry_size`",
    ),
    k(
        "max_in_flight",
        Producer,
        Uint(1, MAX_IN_FLIGHT_LIMIT as u64),
        "",
        "unconfirmed messages at most (default: 1000, or 10000 with `sub_entry_size`; deeper only adds latency)",
    ),
    k(
        "confirm_timeout_ms",
        Producer,
        Uint(0, MS_MAX),
        "30000",
        "a message not confirmed in this time completes as timed out, 0 = never",
    ),
    k(
        "block_when_full",
        Producer,
        Bool,
        "true",
        "a send waits for room below `max_in_flight`; false: it fails with RMQS_ERR_QUEUE_FULL",
    ),
    k(
        "send_timeout_ms",
        Producer,
        Uint(0, MS_MAX),
        "",
        "how long a blocking send waits for room (default: forever)",
    ),
    k(
        "sub_entry_size",
        Producer,
        Uint(0, MAX_SUB_ENTRY_RECORDS as u64),
        "0",
        "2 or more packs up to that many consecutive messages into one sub-entry (one broker entry); 0 or 1: each message its own entry; not with filter values",
    ),
    k(
        "compression",
        Producer,
        Codec,
        "none",
        "codec of sub-entries (ignored without `sub_entry_size`)",
    ),
    // consumers ("name" is shared with producers, see `CONSUMER_ALSO`)
    k(
        "offset",
        Consumer,
        Offset,
        "next",
        "where to start when offset tracking finds nothing stored",
    ),
    k(
        "initial_credit",
        Consumer,
        Uint(1, MAX_CREDIT as u64),
        "10",
        "chunks the broker may send ahead",
    ),
    k(
        "credit_policy",
        Consumer,
        Credit,
        "on_release",
        "when credit goes back: `on_release` (a chunk released), `on_arrival`, `after_processed:N` (N at most half the initial credit), `when_below:PERCENT` / `ratio:R` (when the broker's credit falls below), `manual`",
    ),
    k(
        "crc_check",
        Consumer,
        Bool,
        "true",
        "verify every chunk's CRC-32 (a mismatch is an error event, the chunk is not delivered)",
    ),
    k(
        "tracking",
        Consumer,
        Word(&["none", "manual", "auto", "custom"]),
        "none",
        "server-side offset tracking under `tracking_reference`: `manual` (stored when the application says), `auto` (every `tracking_messages` / `tracking_interval_ms` and on close), `custom` (when the tracking callback says, and on close); all but `none` resume after the stored offset",
    ),
    k(
        "tracking_messages",
        Consumer,
        Uint(0, u32::MAX as u64),
        "10000",
        "`tracking=auto`: store every this many messages, 0 = not by count",
    ),
    k(
        "tracking_interval_ms",
        Consumer,
        Uint(0, MS_MAX),
        "5000",
        "`tracking=auto`: store this often when the offset moved, 0 = not by time",
    ),
    k(
        "tracking_reference",
        Consumer,
        Name,
        "",
        "offset tracking reference (default: `name`)",
    ),
    k(
        "single_active_consumer",
        Consumer,
        Bool,
        "false",
        "among the consumers of the stream with this `name`, one at a time receives (RabbitMQ 3.11+)",
    ),
    k(
        "consumer_update_timeout_ms",
        Consumer,
        Uint(1, MAX_CONSUMER_UPDATE_TIMEOUT.as_millis() as u64),
        "5000",
        "how long a single active consumer's activation waits for the application's answer",
    ),
    k(
        "filter_values",
        Consumer,
        List,
        "",
        "broker-side filtering: only chunks that may hold messages sent with one of these values arrive (RabbitMQ 3.13+)",
    ),
    k(
        "match_unfiltered",
        Consumer,
        Bool,
        "false",
        "with `filter_values`: also chunks with messages sent without a filter value",
    ),
    // super producers (and every producer key)
    k(
        "routing",
        SuperProducer,
        Word(&["hash", "key"]),
        "hash",
        "`hash` (MurmurHash3 of the routing key, as the official clients) or `key` (the broker's bindings)",
    ),
    k(
        "eager",
        SuperProducer,
        Bool,
        "false",
        "create every partition producer at once instead of at the first send routed to it",
    ),
    // super consumers (and every consumer key)
    k(
        "added_partition_offset",
        SuperConsumer,
        Offset,
        "first",
        "where consumers of partitions added by a refresh start when nothing is stored",
    ),
    // stream creation
    s(
        "max_length_bytes",
        "max-length-bytes",
        Uint(0, i64::MAX as u64),
        "retention: largest size of the stream in bytes",
    ),
    s(
        "max_age",
        "max-age",
        Age,
        "retention: oldest segment age, e.g. `3600s`, `7D`",
    ),
    s(
        "stream_max_segment_size_bytes",
        "stream-max-segment-size-bytes",
        Uint(1, 3_000_000_000),
        "size of a segment file",
    ),
    s(
        "initial_cluster_size",
        "initial-cluster-size",
        Uint(1, 255),
        "members of the stream (leader and replicas)",
    ),
    s(
        "queue_leader_locator",
        "queue-leader-locator",
        Word(&["client-local", "balanced", "least-leaders", "random"]),
        "where the leader goes",
    ),
    s(
        "filter_size",
        "stream-filter-size-bytes",
        Uint(16, 255),
        "Bloom filter size per chunk in bytes",
    ),
];

/// Keys that also apply to consumers although listed once.
const CONSUMER_ALSO: &[&str] = &["name"];

/// Key aliases: another spelling → the canonical key.
pub const ALIASES: &[(&str, &str)] = &[
    ("host", "hosts"),
    ("stream_filter_size_bytes", "filter_size"),
    ("max_segment_size_bytes", "stream_max_segment_size_bytes"),
];

/// The canonical spelling of a key: `-` as `_`, aliases resolved.
pub fn canonical(name: &str) -> String {
    let n = name.replace('-', "_");
    ALIASES
        .iter()
        .find(|(a, _)| *a == n)
        .map_or(n.clone(), |(_, c)| (*c).to_string())
}

/// The key of a canonical name.
pub fn find_key(name: &str) -> Option<&'static Key> {
    KEYS.iter().find(|k| k.name == name)
}

fn bad_value(key: &str, value: &str, want: &str) -> ConfigError {
    ConfigError(format!(
        "config key \"{}\": invalid value \"{}\" ({want})",
        echo(key),
        echo(value)
    ))
}

/// The error for a codec name that is none of [`Compression::ALL`].
pub fn unknown_codec(v: &str) -> ConfigError {
    bad_value("compression", v, &Kind::Codec.describe())
}

pub(crate) fn parse_bool(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}

fn parse_uint(v: &str, min: u64, max: u64) -> Option<u64> {
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    v.parse::<u64>().ok().filter(|n| (min..=max).contains(n))
}

/// Parses a credit policy: `on_release`, `on_arrival`, `manual`, `after_processed:N` (N 1 to
/// 32767), `when_below:PERCENT` (1 to 100) or `ratio:R` (the same as a fraction, 0 < R <= 1).
pub fn parse_credit_policy(v: &str) -> Option<CreditPolicy> {
    let lower = v.to_ascii_lowercase();
    match lower.as_str() {
        "on_release" => return Some(CreditPolicy::OnRelease),
        "on_arrival" => return Some(CreditPolicy::OnArrival),
        "manual" => return Some(CreditPolicy::Manual),
        _ => {}
    }
    if let Some(n) = lower.strip_prefix("after_processed:") {
        return parse_uint(n, 1, MAX_CREDIT as u64).map(|n| CreditPolicy::AfterProcessed(n as u16));
    }
    if let Some(p) = lower.strip_prefix("when_below:") {
        return parse_uint(p, 1, 100).map(|p| CreditPolicy::WhenBelow { percent: p as u8 });
    }
    if let Some(r) = lower.strip_prefix("ratio:") {
        if r.is_empty() || !r.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
            return None;
        }
        let r: f64 = r.parse().ok()?;
        if !(r > 0.0 && r <= 1.0) {
            return None;
        }
        let percent = (r * 100.0).round().clamp(1.0, 100.0) as u8;
        return Some(CreditPolicy::WhenBelow { percent });
    }
    None
}

/// The items of a `List` value (validated when set: none empty).
pub fn parse_list(v: &str) -> Vec<String> {
    v.split(',').map(str::to_string).collect()
}

/// Parses an offset spec: `first`, `last`, `next`, `offset:N`, `timestamp:MS`.
pub fn parse_offset(v: &str) -> Option<OffsetSpec> {
    let lower = v.to_ascii_lowercase();
    match lower.as_str() {
        "first" => return Some(OffsetSpec::First),
        "last" => return Some(OffsetSpec::Last),
        "next" => return Some(OffsetSpec::Next),
        _ => {}
    }
    if let Some(n) = lower.strip_prefix("offset:") {
        return parse_uint(n, 0, u64::MAX).map(OffsetSpec::Offset);
    }
    if let Some(t) = lower.strip_prefix("timestamp:") {
        let (neg, digits) = match t.strip_prefix('-') {
            Some(d) => (true, d),
            None => (false, t),
        };
        let n = parse_uint(digits, 0, i64::MAX as u64)? as i64;
        return Some(OffsetSpec::Timestamp(if neg { -n } else { n }));
    }
    None
}

/// The value of an offset spec as the `offset` key spells it ([`parse_offset`] reads it back).
pub fn format_offset(o: OffsetSpec) -> String {
    match o {
        OffsetSpec::First => "first".into(),
        OffsetSpec::Last => "last".into(),
        OffsetSpec::Next => "next".into(),
        OffsetSpec::Offset(n) => format!("offset:{n}"),
        OffsetSpec::Timestamp(t) => format!("timestamp:{t}"),
    }
}

/// `host[:port]` items: the host and the port when given explicitly.
pub(crate) fn parse_hosts(v: &str) -> Option<Vec<(String, Option<u16>)>> {
    let mut out = Vec::new();
    for h in v.split(',').map(str::trim) {
        // no user info, path or query parameters here: only host[:port]
        if h.is_empty() || h.contains(['@', '/', '?', '#']) {
            return None;
        }
        // reuse the URI parser for host[:port] and [v6]:port
        let mut c = ConnectionConfig::default();
        c.apply_uri(&format!("rabbitmq-stream://{h}")).ok()?;
        let ep = c.endpoints.into_iter().next()?;
        let explicit =
            h.starts_with('[') && h.contains("]:") || !h.starts_with('[') && h.contains(':');
        out.push((ep.host, explicit.then_some(ep.port)));
    }
    (!out.is_empty()).then_some(out)
}

/// Checks a value of `def`; the error names the key and what it accepts.
pub fn check_value(def: &Key, v: &str) -> Result<(), ConfigError> {
    let name = def.name;
    let ok = match def.kind {
        Str => true,
        NonEmpty => !v.is_empty(),
        Name => {
            if v.is_empty() || v.len() > MAX_NAME_LEN {
                return Err(ConfigError(format!(
                    "config key \"{name}\" must be 1 to {MAX_NAME_LEN} bytes long, got {}",
                    v.len()
                )));
            }
            true
        }
        Bool => parse_bool(v).is_some(),
        Uint(min, max) => parse_uint(v, min, max).is_some(),
        Word(words) => words.iter().any(|w| w.eq_ignore_ascii_case(v)),
        Uri => {
            if let Err(e) = ConnectionConfig::default().apply_uri(v) {
                return Err(ConfigError(format!("config key \"uri\": {e}")));
            }
            true
        }
        Codec => Compression::from_name(v).is_some(),
        FrameMax => {
            parse_uint(v, 0, u32::MAX as u64).is_some_and(|n| check_frame_max(n as u32).is_ok())
        }
        Hosts => parse_hosts(v).is_some(),
        Offset => parse_offset(v).is_some(),
        Credit => parse_credit_policy(v).is_some(),
        List => v
            .split(',')
            .all(|i| !i.is_empty() && i.len() <= i16::MAX as usize),
        // The unit is one ASCII byte, so cutting before it is on a character boundary; the
        // byte is checked first (cutting at `len - 1` blindly panicked on "7é").
        Age => match v.as_bytes().last() {
            Some(b'Y' | b'M' | b'D' | b'h' | b'm' | b's') => {
                parse_uint(&v[..v.len() - 1], 1, u32::MAX as u64).is_some()
            }
            _ => false,
        },
    };
    if ok {
        Ok(())
    } else {
        let want = match def.kind {
            NonEmpty => "must not be empty".into(),
            Bool => "true or false".into(),
            kind => kind.describe(),
        };
        Err(bad_value(name, v, &want))
    }
}

/// The configuration reference (`docs/CONFIGURATION.md`), generated from [`KEYS`].
pub fn reference_markdown() -> String {
    let mut out = String::from(
        "# Configuration reference\n\n\
         <!-- Generated from src/client/config/keys.rs by `RMQS_BLESS=1 cargo test --test \
         config_reference`; do not edit. -->\n\n\
         Every key of `rmqs_config_set()` (and of the client's `Settings::set`). Keys are \
         checked when set (`RMQS_ERR_INVALID_ARGUMENT` naming the key and what it accepts) \
         and whether they apply to the object being created when the config is used. `-` and \
         `_` are interchangeable; booleans are `true`/`false` (also `1`/`0`, `yes`/`no`, \
         `on`/`off`); durations are in milliseconds unless said otherwise. \
         `rmqs_config_dump()` lists every key with its effective value.\n\n\
         Besides the keys below:\n\n\
         - `producer.<key>` / `consumer.<key>` on a connection config: defaults for the \
         producers / consumers created from that connection; their own config overrides them \
         key by key.\n\
         - `property.<name>` (consumers): a raw subscription property.\n\
         - `arg.<name>` (stream creation): any other broker argument, sent as given.\n\
         - Super producers take every producer key (applied to each partition producer), \
         super consumers every consumer key (applied to each partition consumer).\n",
    );
    let alias = |name: &str| {
        ALIASES
            .iter()
            .filter(|(_, c)| *c == name)
            .map(|(a, _)| format!(" (alias `{a}`)"))
            .collect::<String>()
    };
    for scope in Scope::ALL {
        let mut first = true;
        for key in KEYS.iter().filter(|k| k.scopes()[0] == scope) {
            if first {
                let title = scope.noun().trim_start_matches("a ");
                let mut t = title.chars();
                let title = t
                    .next()
                    .map_or(String::new(), |c| c.to_uppercase().chain(t).collect());
                out.push_str(&format!(
                    "\n## {title}\n\n| key | values | default | description |\n| --- | --- | --- | --- |\n"
                ));
                first = false;
            }
            let default = if key.default.is_empty() {
                "—".to_string()
            } else {
                format!("`{}`", key.default)
            };
            let also = match key.scopes().get(1) {
                Some(Scope::Consumer) => " (producers and consumers)",
                _ => "",
            };
            let broker = if key.arg.is_empty() {
                String::new()
            } else {
                format!(" (broker argument `{}`)", key.arg)
            };
            out.push_str(&format!(
                "| `{}`{} | {} | {default} | {}{also}{broker} |\n",
                key.name,
                alias(key.name),
                key.kind.describe().replace('|', "\\|"),
                key.doc.replace('|', "\\|"),
            ));
        }
    }
    out
}
