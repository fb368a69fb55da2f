//! `rmqs_config`: one key/value builder for connections, producers, consumers and stream
//! creation. Keys and values are validated when set; whether a key applies to the object being
//! created is checked when the config is used.

use std::ffi::c_char;
use std::path::PathBuf;
use std::time::Duration;

use super::args::{Handle, handle_arg, str_arg};
use super::error::{Error, rmqs_error};
use super::panic::{ffi_boundary, ffi_status};
use super::status::rmqs_status;
use crate::client::config::{
    ConnectionConfig, DEFAULT_PORT, DEFAULT_TLS_PORT, Endpoint, MIN_FRAME_MAX, check_frame_max,
};
use crate::client::error::echo;
use crate::client::{CreditPolicy, SaslMechanism, TlsConfig};
use crate::protocol::codes::OffsetSpec;
use crate::protocol::compression::Compression;

/// What a config is used for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    Connection,
    Producer,
    Consumer,
    Stream,
    /// `rmqs_super_producer_new`: the producer keys and its own.
    SuperProducer,
    /// `rmqs_super_consumer_new`: the consumer keys and its own.
    SuperConsumer,
}

impl Scope {
    fn is_super(self) -> bool {
        matches!(self, Scope::SuperProducer | Scope::SuperConsumer)
    }

    fn noun(self) -> &'static str {
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

#[derive(Clone, Copy, Debug)]
enum Kind {
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

struct Key {
    name: &'static str,
    scope: Scope,
    kind: Kind,
    /// For stream keys: the broker's argument name.
    arg: &'static str,
}

const fn k(name: &'static str, scope: Scope, kind: Kind) -> Key {
    Key {
        name,
        scope,
        kind,
        arg: "",
    }
}

const fn s(name: &'static str, arg: &'static str, kind: Kind) -> Key {
    Key {
        name,
        scope: Scope::Stream,
        kind,
        arg,
    }
}

const MS_MAX: u64 = i32::MAX as u64;

use Kind::*;
use Scope::*;

/// Every key. Producer and consumer keys may also be set on a connection config with a
/// `producer.` / `consumer.` prefix, as defaults for the producers and consumers of that
/// connection.
const KEYS: &[Key] = &[
    k("uri", Connection, Uri),
    k("hosts", Connection, Hosts),
    k("port", Connection, Uint(1, 65535)),
    k("username", Connection, Str),
    k("password", Connection, Str),
    k("vhost", Connection, NonEmpty),
    k("frame_max", Connection, FrameMax),
    k("heartbeat", Connection, Uint(0, 65535)),
    k("connection_name", Connection, Str),
    k("tls", Connection, Bool),
    k("tls_ca_file", Connection, NonEmpty),
    k("tls_cert_file", Connection, NonEmpty),
    k("tls_key_file", Connection, NonEmpty),
    k("tls_verify", Connection, Bool),
    k("tls_server_name", Connection, NonEmpty),
    k("sasl_mechanism", Connection, Word(&["PLAIN", "EXTERNAL"])),
    k("connect_timeout_ms", Connection, Uint(1, MS_MAX)),
    k("request_timeout_ms", Connection, Uint(1, MS_MAX)),
    k("max_producers_per_connection", Connection, Uint(1, 256)),
    k("max_consumers_per_connection", Connection, Uint(1, 256)),
    k("load_balancer", Connection, Bool),
    k("recovery", Connection, Bool),
    k("recovery_initial_delay_ms", Connection, Uint(1, 3_600_000)),
    k("recovery_max_delay_ms", Connection, Uint(1, 3_600_000)),
    k("recovery_attempts", Connection, Uint(0, u32::MAX as u64)),
    k("lazy_open", Connection, Bool),
    k(
        "log_level",
        Connection,
        Word(&["off", "error", "warn", "warning", "info", "debug", "trace"]),
    ),
    // producers
    k("name", Producer, Name),
    k("batch_size", Producer, Uint(1, 65535)),
    k("batch_delay_ms", Producer, Uint(0, 60_000)),
    k("max_in_flight", Producer, Uint(1, 1 << 20)),
    k("confirm_timeout_ms", Producer, Uint(0, MS_MAX)),
    k("block_when_full", Producer, Bool),
    k("send_timeout_ms", Producer, Uint(0, MS_MAX)),
    k("sub_entry_size", Producer, Uint(0, 65535)),
    k("compression", Producer, Codec),
    // consumers ("name" is shared with producers, see `lookup`)
    k("offset", Consumer, Offset),
    k("initial_credit", Consumer, Uint(1, 32767)),
    k("credit_policy", Consumer, Credit),
    k("crc_check", Consumer, Bool),
    k(
        "tracking",
        Consumer,
        Word(&["none", "manual", "auto", "custom"]),
    ),
    k("tracking_messages", Consumer, Uint(0, u32::MAX as u64)),
    k("tracking_interval_ms", Consumer, Uint(0, MS_MAX)),
    k("tracking_reference", Consumer, Name),
    k("single_active_consumer", Consumer, Bool),
    k("consumer_update_timeout_ms", Consumer, Uint(1, 55_000)),
    k("filter_values", Consumer, List),
    k("match_unfiltered", Consumer, Bool),
    // super producers (and every producer key)
    k("routing", SuperProducer, Word(&["hash", "key"])),
    k("eager", SuperProducer, Bool),
    // super consumers (and every consumer key)
    k("added_partition_offset", SuperConsumer, Offset),
    // stream creation
    s(
        "max_length_bytes",
        "max-length-bytes",
        Uint(0, i64::MAX as u64),
    ),
    s("max_age", "max-age", Age),
    s(
        "stream_max_segment_size_bytes",
        "stream-max-segment-size-bytes",
        Uint(1, 3_000_000_000),
    ),
    s("initial_cluster_size", "initial-cluster-size", Uint(1, 255)),
    s(
        "queue_leader_locator",
        "queue-leader-locator",
        Word(&["client-local", "balanced", "least-leaders", "random"]),
    ),
    s("filter_size", "stream-filter-size-bytes", Uint(16, 255)),
];

/// Keys that also apply to consumers although listed once.
const CONSUMER_ALSO: &[&str] = &["name"];

/// Key aliases: another spelling → the canonical key.
const ALIASES: &[(&str, &str)] = &[
    ("host", "hosts"),
    ("stream_filter_size_bytes", "filter_size"),
    ("max_segment_size_bytes", "stream_max_segment_size_bytes"),
];

/// A key as understood: its canonical spelling and where it applies.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Parsed {
    /// The canonical key as stored (`producer.batch_size`, `arg.x-foo`, `max_age`, ...).
    key: String,
    /// Scopes the key applies to when used.
    scopes: Vec<Scope>,
}

fn canonical(name: &str) -> String {
    let n = name.replace('-', "_");
    ALIASES
        .iter()
        .find(|(a, _)| *a == n)
        .map_or(n.clone(), |(_, c)| (*c).to_string())
}

fn find_key(name: &str) -> Option<&'static Key> {
    KEYS.iter().find(|k| k.name == name)
}

fn scopes_of(key: &Key) -> Vec<Scope> {
    let mut v = vec![key.scope];
    if CONSUMER_ALSO.contains(&key.name) {
        v.push(Consumer);
    }
    // super producers and consumers take every producer / consumer key
    if v.contains(&Producer) {
        v.push(SuperProducer);
    }
    if v.contains(&Consumer) {
        v.push(SuperConsumer);
    }
    v
}

/// Parses and validates `key = value`.
fn check(key: &str, value: &str) -> Result<Parsed, Error> {
    if let Some(raw) = key.strip_prefix("arg.") {
        if raw.is_empty() {
            return Err(Error::invalid_argument(
                "config key \"arg.\" needs a stream argument name after the dot",
            ));
        }
        return Ok(Parsed {
            key: key.to_string(),
            scopes: vec![Stream],
        });
    }
    if let Some(raw) = key.strip_prefix("property.") {
        if raw.is_empty() {
            return Err(Error::invalid_argument(
                "config key \"property.\" needs a subscription property name after the dot",
            ));
        }
        return Ok(Parsed {
            key: key.to_string(),
            scopes: vec![Consumer, SuperConsumer],
        });
    }
    for (prefix, scope) in [("producer.", Producer), ("consumer.", Consumer)] {
        if let Some(inner) = key.strip_prefix(prefix) {
            let inner_parsed = check(inner, value).map_err(|e| {
                Error::invalid_argument(format!("{} (in \"{}\")", e.message, echo(key)))
            })?;
            if !inner_parsed.scopes.contains(&scope) {
                return Err(Error::invalid_argument(format!(
                    "config key \"{}\": \"{}\" does not apply to {}",
                    echo(key),
                    echo(inner),
                    scope.noun()
                )));
            }
            return Ok(Parsed {
                key: format!("{prefix}{}", inner_parsed.key),
                scopes: vec![Connection],
            });
        }
    }
    let name = canonical(key);
    let Some(def) = find_key(&name) else {
        return Err(Error::invalid_argument(format!(
            "unknown config key \"{}\"",
            echo(key)
        )));
    };
    check_value(def, value)?;
    Ok(Parsed {
        key: name,
        scopes: scopes_of(def),
    })
}

fn bad_value(key: &str, value: &str, want: &str) -> Error {
    Error::invalid_argument(format!(
        "config key \"{}\": invalid value \"{}\" ({want})",
        echo(key),
        echo(value)
    ))
}

/// The error for a codec name that is none of [`Compression::ALL`].
pub fn unknown_codec(v: &str) -> Error {
    bad_value(
        "compression",
        v,
        &format!("one of {}", Compression::names()),
    )
}

fn parse_bool(v: &str) -> Option<bool> {
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
        return parse_uint(n, 1, 32767).map(|n| CreditPolicy::AfterProcessed(n as u16));
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

fn parse_hosts(v: &str, default_port: Option<u16>) -> Option<Vec<(String, Option<u16>)>> {
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
        out.push((
            ep.host,
            if explicit {
                Some(ep.port)
            } else {
                default_port
            },
        ));
    }
    (!out.is_empty()).then_some(out)
}

fn check_value(def: &Key, v: &str) -> Result<(), Error> {
    let name = def.name;
    let ok = match def.kind {
        Str => true,
        NonEmpty => !v.is_empty(),
        Name => {
            return super::args::check_name(v, &format!("config key \"{name}\""));
        }
        Bool => parse_bool(v).is_some(),
        Uint(min, max) => {
            if parse_uint(v, min, max).is_none() {
                return Err(bad_value(
                    name,
                    v,
                    &format!("an integer from {min} to {max}"),
                ));
            }
            true
        }
        Word(words) => {
            if !words.iter().any(|w| w.eq_ignore_ascii_case(v)) {
                return Err(bad_value(name, v, &format!("one of {}", words.join(", "))));
            }
            true
        }
        Uri => {
            let mut c = ConnectionConfig::default();
            if let Err(e) = c.apply_uri(v) {
                return Err(Error::invalid_argument(format!(
                    "config key \"uri\": {}",
                    super::runtime::client_error(e).message
                )));
            }
            true
        }
        Codec => {
            if Compression::from_name(v).is_none() {
                return Err(unknown_codec(v));
            }
            true
        }
        FrameMax => {
            if parse_uint(v, 0, u32::MAX as u64).is_none_or(|n| check_frame_max(n as u32).is_err())
            {
                return Err(bad_value(
                    name,
                    v,
                    &format!("0 or an integer from {MIN_FRAME_MAX} to {}", u32::MAX),
                ));
            }
            true
        }
        Hosts => parse_hosts(v, None).is_some(),
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
            NonEmpty => "must not be empty",
            Bool => "true or false",
            Hosts => "host[:port] separated by commas",
            Offset => "first, last, next, offset:N or timestamp:MS",
            Age => "a number followed by Y, M, D, h, m or s, e.g. 7D",
            Credit => {
                "on_release, on_arrival, manual, after_processed:N, when_below:PERCENT or ratio:R"
            }
            List => "non-empty items of at most 32767 bytes separated by commas",
            _ => "bad value",
        };
        Err(bad_value(name, v, want))
    }
}

/// Configuration key/value pairs. Opaque.
///
/// Created by `rmqs_config_new()`, freed by `rmqs_config_free()`. The same type configures a
/// connection, a producer, a consumer or a stream's creation; functions that take one copy what
/// they need, so the caller may change or free it right after.
///
/// Thread safety: not thread-safe; use from one thread at a time (it may move between threads).
pub struct rmqs_config {
    magic: u64,
    entries: Vec<Entry>,
    /// `rmqs_config_set_log_cb()` (src/ffi/log.rs).
    pub(crate) log: Option<std::sync::Arc<super::log::LogRegistration>>,
    /// `rmqs_config_set_routing_cb()` / `rmqs_config_set_key_extractor()`
    /// (src/ffi/super_producer.rs).
    pub(crate) super_producer: super::super_producer::Callbacks,
    /// `rmqs_config_set_consumer_update_cb()`, `_post_filter_cb()`, `_tracking_cb()`
    /// (src/ffi/hooks.rs).
    pub(crate) hooks: super::hooks::ConfigHooks,
}

#[derive(Clone, Debug)]
struct Entry {
    parsed: Parsed,
    value: String,
}

impl Handle for rmqs_config {
    const MAGIC: u64 = 0x726d_7173_636f_6e66; // "rmqsconf"
    const NAME: &'static str = "rmqs_config";
    fn magic(&self) -> u64 {
        self.magic
    }
}

/// The key/value pairs of a config, as used by the other modules.
#[derive(Clone, Debug, Default)]
pub struct Settings {
    entries: Vec<Entry>,
}

impl Settings {
    /// The settings of a config argument (NULL = empty).
    ///
    /// # Safety
    /// `cfg` must be NULL or a live config.
    pub unsafe fn from_arg(cfg: *const rmqs_config) -> Result<Settings, Error> {
        if cfg.is_null() {
            return Ok(Settings::default());
        }
        // SAFETY: forwarded.
        let c = unsafe { handle_arg(cfg) }?;
        Ok(Settings {
            entries: c.entries.clone(),
        })
    }

    /// Sets a key (validated); replaces an earlier value of the same key.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), Error> {
        let parsed = check(key, value)?;
        let entry = Entry {
            parsed,
            value: value.to_string(),
        };
        match self
            .entries
            .iter_mut()
            .find(|e| e.parsed.key == entry.parsed.key)
        {
            Some(e) => *e = entry,
            None => self.entries.push(entry),
        }
        Ok(())
    }

    /// Settings holding `key = value` as given, unchecked: for tests of what uses them.
    #[cfg(test)]
    pub(crate) fn unchecked(key: &str, value: &str) -> Settings {
        let def = find_key(key).expect("a known key");
        Settings {
            entries: vec![Entry {
                parsed: Parsed {
                    key: key.to_string(),
                    scopes: scopes_of(def),
                },
                value: value.to_string(),
            }],
        }
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|e| e.parsed.key == key)
            .map(|e| e.value.as_str())
    }

    /// Fails when a key does not apply to `scope`.
    pub fn check_scope(&self, scope: Scope) -> Result<(), Error> {
        for e in &self.entries {
            if !e.parsed.scopes.contains(&scope) {
                let applies = e
                    .parsed
                    .scopes
                    .iter()
                    // the super objects take the keys of the plain ones: name those
                    .filter(|s| e.parsed.scopes.len() == 1 || !s.is_super())
                    .map(|s| s.noun())
                    .collect::<Vec<_>>()
                    .join(" or ");
                return Err(Error::invalid_argument(format!(
                    "config key \"{}\" applies to {applies}, not to {}",
                    e.parsed.key,
                    scope.noun()
                )));
            }
        }
        Ok(())
    }

    /// The settings under `prefix` (`producer.` / `consumer.`), prefix removed.
    pub fn defaults(&self, prefix: &str) -> Settings {
        let mut out = Settings::default();
        for e in &self.entries {
            if let Some(inner) = e.parsed.key.strip_prefix(prefix) {
                // Validated when set.
                let _ = out.set(inner, &e.value);
            }
        }
        out
    }

    /// Splits off the keys that apply to `scope` only (e.g. a super producer's own keys):
    /// `(those, the rest)`.
    pub fn split_scope(&self, scope: Scope) -> (Settings, Settings) {
        let (own, rest) = self
            .entries
            .iter()
            .cloned()
            .partition(|e| e.parsed.scopes == [scope]);
        (Settings { entries: own }, Settings { entries: rest })
    }

    /// `self` layered over `base`: keys set here win.
    pub fn over(&self, base: &Settings) -> Settings {
        let mut out = base.clone();
        for e in &self.entries {
            match out
                .entries
                .iter_mut()
                .find(|x| x.parsed.key == e.parsed.key)
            {
                Some(x) => *x = e.clone(),
                None => out.entries.push(e.clone()),
            }
        }
        out
    }

    fn bool(&self, key: &str) -> Option<bool> {
        self.get(key).and_then(parse_bool)
    }

    fn uint(&self, key: &str) -> Option<u64> {
        self.get(key).and_then(|v| v.parse().ok())
    }

    fn ms(&self, key: &str) -> Option<Duration> {
        self.uint(key).map(Duration::from_millis)
    }

    /// Builds the connection settings. Returns them and whether `lazy_open` is set.
    pub fn connection(&self) -> Result<(ConnectionConfig, bool), Error> {
        self.check_scope(Connection)?;
        let mut c = ConnectionConfig::default();
        if let Some(uri) = self.get("uri") {
            c.apply_uri(uri)?;
        }
        if let Some(t) = self.bool("tls") {
            if t && c.tls.is_none() {
                c.tls = Some(TlsConfig::default());
                if self.get("uri").is_none() && self.get("hosts").is_none() {
                    for ep in &mut c.endpoints {
                        if ep.port == DEFAULT_PORT {
                            ep.port = DEFAULT_TLS_PORT;
                        }
                    }
                }
            } else if !t {
                c.tls = None;
            }
        }
        let default_port = if c.tls.is_some() {
            DEFAULT_TLS_PORT
        } else {
            DEFAULT_PORT
        };
        let port = self.uint("port").map(|p| p as u16);
        if let Some(h) = self.get("hosts") {
            let hosts = parse_hosts(h, None)
                .ok_or_else(|| bad_value("hosts", h, "host[:port] separated by commas"))?;
            c.endpoints = hosts
                .into_iter()
                .map(|(host, p)| Endpoint {
                    host,
                    port: p.or(port).unwrap_or(default_port),
                })
                .collect();
        } else if let Some(p) = port {
            for ep in &mut c.endpoints {
                ep.port = p;
            }
        }
        if let Some(v) = self.get("username") {
            c.username = v.into();
        }
        if let Some(v) = self.get("password") {
            c.password = v.into();
        }
        if let Some(v) = self.get("vhost") {
            c.vhost = v.into();
        }
        if let Some(v) = self.uint("frame_max") {
            c.frame_max = v as u32;
        }
        if let Some(v) = self.uint("heartbeat") {
            c.heartbeat = v as u32;
        }
        if let Some(v) = self.get("connection_name") {
            c.connection_name = v.into();
        }
        let tls_keys = [
            "tls_ca_file",
            "tls_cert_file",
            "tls_key_file",
            "tls_verify",
            "tls_server_name",
        ];
        match c.tls.as_mut() {
            Some(t) => {
                if let Some(v) = self.get("tls_ca_file") {
                    t.ca_file = Some(PathBuf::from(v));
                }
                if let Some(v) = self.get("tls_cert_file") {
                    t.cert_file = Some(PathBuf::from(v));
                }
                if let Some(v) = self.get("tls_key_file") {
                    t.key_file = Some(PathBuf::from(v));
                }
                if let Some(v) = self.bool("tls_verify") {
                    t.verify = v;
                }
                if let Some(v) = self.get("tls_server_name") {
                    t.server_name = Some(v.into());
                }
            }
            None => {
                if let Some(k) = tls_keys.iter().find(|k| self.get(k).is_some()) {
                    return Err(Error::invalid_argument(format!(
                        "config key \"{k}\" is set but TLS is off \
                         (set \"tls\" to true or use a rabbitmq-stream+tls:// URI)"
                    )));
                }
            }
        }
        if let Some(v) = self.get("sasl_mechanism") {
            c.sasl = if v.eq_ignore_ascii_case("EXTERNAL") {
                SaslMechanism::External
            } else {
                SaslMechanism::Plain
            };
        }
        if let Some(v) = self.ms("connect_timeout_ms") {
            c.connect_timeout = v;
        }
        if let Some(v) = self.ms("request_timeout_ms") {
            c.request_timeout = v;
        }
        if let Some(v) = self.uint("max_producers_per_connection") {
            c.max_producers_per_connection = v as usize;
        }
        if let Some(v) = self.uint("max_consumers_per_connection") {
            c.max_consumers_per_connection = v as usize;
        }
        if let Some(v) = self.bool("load_balancer") {
            c.load_balancer_mode = v;
        }
        if let Some(v) = self.bool("recovery") {
            c.recovery.enabled = v;
        }
        if let Some(v) = self.ms("recovery_initial_delay_ms") {
            c.recovery.initial_delay = v;
        }
        if let Some(v) = self.ms("recovery_max_delay_ms") {
            c.recovery.max_delay = v;
        }
        if let Some(v) = self.uint("recovery_attempts") {
            c.recovery.max_attempts = (v > 0).then_some(v as u32);
        }
        c.validate()?;
        Ok((c, self.bool("lazy_open").unwrap_or(false)))
    }

    /// The broker arguments of stream creation, in the order set.
    pub fn stream_arguments(&self) -> Result<Vec<(String, String)>, Error> {
        self.check_scope(Stream)?;
        let mut out = Vec::new();
        for e in &self.entries {
            let arg = match e.parsed.key.strip_prefix("arg.") {
                Some(raw) => raw.to_string(),
                None => find_key(&e.parsed.key)
                    .map(|k| k.arg.to_string())
                    .unwrap_or_default(),
            };
            if !arg.is_empty() {
                out.push((arg, e.value.clone()));
            }
        }
        Ok(out)
    }

    /// A string value.
    pub fn str_value(&self, key: &str) -> Option<&str> {
        self.get(key)
    }

    /// A boolean value.
    pub fn bool_value(&self, key: &str) -> Option<bool> {
        self.bool(key)
    }

    /// An integer value.
    pub fn uint_value(&self, key: &str) -> Option<u64> {
        self.uint(key)
    }

    /// A millisecond value.
    pub fn ms_value(&self, key: &str) -> Option<Duration> {
        self.ms(key)
    }

    /// The `property.*` keys, prefix removed, in the order set.
    pub fn properties(&self) -> Vec<(String, String)> {
        self.entries
            .iter()
            .filter_map(|e| {
                e.parsed
                    .key
                    .strip_prefix("property.")
                    .map(|k| (k.to_string(), e.value.clone()))
            })
            .collect()
    }
}

/// Creates an empty config.
///
/// @return a new config owned by the caller, to free with `rmqs_config_free()`; NULL only if
///         memory ran out.
///
/// Thread-safe, does not block.
#[unsafe(no_mangle)]
pub extern "C" fn rmqs_config_new() -> *mut rmqs_config {
    ffi_boundary(std::ptr::null_mut(), || {
        Box::into_raw(Box::new(rmqs_config {
            magic: rmqs_config::MAGIC,
            entries: Vec::new(),
            log: None,
            super_producer: Default::default(),
            hooks: Default::default(),
        }))
    })
}

/// Sets one key; a later call with the same key replaces the value.
///
/// Keys (`-` and `_` are interchangeable; values are strings, integers in decimal, booleans
/// `true`/`false`/`1`/`0`, durations in milliseconds unless said otherwise):
///
/// Connection (`rmqs_connection_open`):
/// - `uri`: `rabbitmq-stream://user:pass@host:port/vhost?key=value&...`
///   (`rabbitmq-stream+tls://` for TLS; several `host:port` separated by commas; user,
///   password, vhost and values percent-encoded). Query parameters: `heartbeat` (seconds),
///   `frame_max` (bytes, 0 or at least 8192), `connection_name`, `connect_timeout` (or
///   `connection_timeout`) and `request_timeout` (ms), `load_balancer_mode` (bool); any other
///   parameter is refused (`RMQS_ERR_INVALID_ARGUMENT` naming it), none is ignored. Other keys
///   override what the URI says. Error messages show the URI with its password as `***`.
/// - `host` / `hosts`: `host[:port]`, several separated by commas (seed hosts, tried in
///   order); `port`: the port of hosts given without one (default 5552, 5551 with TLS).
/// - `username`, `password` (default guest/guest), `vhost` (default `/`).
/// - `frame_max` (bytes, default 1048576, 0 = broker's; otherwise at least 8192, the broker's
///   own limit for frames before tuning, so that every command fits), `heartbeat` (seconds,
///   default 60, 0 = none), `connection_name`.
/// - `tls` (bool), `tls_ca_file`, `tls_cert_file`, `tls_key_file` (PEM paths), `tls_verify`
///   (default true), `tls_server_name`; `sasl_mechanism` `PLAIN` (default) or `EXTERNAL`.
/// - `connect_timeout_ms` (default 10000), `request_timeout_ms` (default 10000).
/// - `max_producers_per_connection`, `max_consumers_per_connection` (1–256, default 256).
/// - `load_balancer` (bool): reach nodes through the seed hosts.
/// - `recovery` (bool, default true): producers and consumers come back by themselves after a
///   lost connection, a heartbeat timeout, a broker restart or a moved stream leader (see
///   `RMQS_STATE_RECOVERING`); false: they close for good instead.
///   `recovery_initial_delay_ms` (default 200) is the wait before the first attempt, doubled
///   after each failed one up to `recovery_max_delay_ms` (default 5000), each ±25 % at random;
///   `recovery_attempts` (default 0 = forever) bounds the attempts. A deleted stream is never
///   retried.
/// - `lazy_open` (bool): `rmqs_connection_open` returns at once; the first call that needs the
///   broker connects, and calls made meanwhile wait for it (within `connect_timeout_ms`).
/// - `log_level`: what reaches the callback of `rmqs_config_set_log_cb()`: `error`, `warn`,
///   `info` (default), `debug`, `trace`, or `off`.
/// - `producer.<key>` / `consumer.<key>`: defaults for the producers / consumers created from
///   this connection; their own config overrides them key by key.
///
/// Producer (`rmqs_producer_new`):
/// - `name` (1–255 bytes): a named producer deduplicates; it continues after the last
///   publishing id the broker kept for the name.
/// - `batch_size` (messages per Publish frame, default 100), `batch_delay_ms` (how long a
///   partial frame waits for more messages, default 5; 0 = each send goes out at once),
///   `max_in_flight` (unconfirmed messages, default 10000),
///   `confirm_timeout_ms` (default 30000, 0 = none), `block_when_full` (default true: a send
///   waits for room; false: it fails with `RMQS_ERR_QUEUE_FULL`), `send_timeout_ms` (how long
///   a blocking send waits for room, default: forever).
/// - `sub_entry_size` (0–65535, default 0): 2 or more packs up to that many consecutive
///   messages into one sub-entry (one entry on the broker, its messages with consecutive
///   offsets; consumers see them one by one); 0 or 1 sends each message as its own entry. A
///   partial sub-entry waits `batch_delay_ms` like a partial frame. Not with filter values
///   (`rmqs_producer_send_ex` then fails with `RMQS_ERR_INVALID_ARGUMENT`); a named producer
///   deduplicates per sub-entry.
/// - `compression`: codec of sub-entries, `none` (default), `gzip`, `snappy`, `lz4`, `zstd`
///   (ignored without `sub_entry_size`); every official client reads all five.
///
/// Consumer (`rmqs_consumer_new`):
/// - `name` (1–255 bytes): the consumer's name: the single-active-consumer group and the
///   default offset-tracking reference.
/// - `offset`: `first`, `last`, `next` (default), `offset:N`, `timestamp:MS`: where to start
///   when offset tracking finds nothing stored.
/// - `initial_credit` (chunks, 1–32767, default 10): chunks the broker may send ahead.
/// - `credit_policy`: when credit goes back to the broker (credit counts chunks):
///   `on_release` (default: one credit when a chunk is released, so the application holds at
///   most `initial_credit` chunks); `on_arrival` (one credit as each chunk arrives: fastest,
///   memory not bounded); `after_processed:N` (N credits after every N released chunks, N at
///   most half the initial credit); `when_below:PERCENT` (released chunks' credit is held back
///   until the broker's remaining credit falls below PERCENT % of the initial credit, then
///   sent in one frame; `ratio:R` is the same with a fraction, e.g. `ratio:0.5`); `manual`
///   (only `rmqs_consumer_credit()`).
/// - `crc_check` (default true): verify every chunk's CRC-32 (a mismatch is an
///   `RMQS_EVENT_ERROR` and the chunk is not delivered). One SIMD pass over the chunk's bytes:
///   measured at about 3% of a consumer's CPU with 100-byte messages and 8% with 1 KB ones,
///   no measurable throughput change.
/// - `tracking`: server-side offset tracking under `tracking_reference` (default: `name`):
///   `none` (default); `manual` (the stored offset is looked up at start and reading resumes
///   right after it; stores only with `rmqs_consumer_store_offset()` /
///   `rmqs_consumer_store_processed_offset()`); `auto` (looked up at start; the processed
///   offset — that of the last message of the chunks released so far, in order — is stored
///   every `tracking_messages` messages (default 10000, 0 = not by count) and every
///   `tracking_interval_ms` (default 5000, 0 = not by time) when it moved, and on close);
///   `custom` (looked up at start; stored when the callback of
///   `rmqs_config_set_tracking_cb()` says so, and on close). `tracking_messages` and
///   `tracking_interval_ms` are ignored unless `tracking` is `auto`.
/// - `single_active_consumer` (bool, RabbitMQ 3.11+, needs `name`): among the consumers of the
///   stream with this name, one at a time receives; it starts after the offset stored under
///   its reference (else at `offset`), or where the callback of
///   `rmqs_config_set_consumer_update_cb()` (or an `RMQS_EVENT_CONSUMER_UPDATE` event) says.
///   `consumer_update_timeout_ms` (1–55000, default 5000): how long the library waits for that
///   answer (and, on a step-down, for the application to release its chunks) before answering
///   the broker with the default.
/// - `filter_values` (RabbitMQ 3.13+): broker-side filtering, comma-separated values (a value
///   holding a comma: `property.filter.N` keys); only chunks that may hold messages sent with
///   one of them arrive, whole (a Bloom filter: other messages come along; the callback of
///   `rmqs_config_set_post_filter_cb()` removes them). `match_unfiltered` (bool): also chunks
///   with messages sent without a filter value.
/// - `property.<key>`: a raw subscription property.
///
/// Single active consumers and filtering fail with `RMQS_ERR_UNSUPPORTED` on brokers without
/// them.
///
/// Super producer (`rmqs_super_producer_new`): every producer key (applied to each partition
/// producer; `name` makes every one of them a deduplicating producer of that name), and
/// - `routing`: `hash` (default: MurmurHash3 of the routing key, as the official clients) or
///   `key` (the broker's bindings, Route command); `rmqs_config_set_routing_cb()` instead
///   routes with the application's function;
/// - `eager` (bool, default false): create every partition producer in `_new` (and in
///   `_refresh`) instead of at the first send routed to it.
///
/// Super consumer (`rmqs_super_consumer_new`): every consumer key, applied to each partition
/// consumer: `name` is the single-active-consumer group (`single_active_consumer`: one active
/// consumer per partition among the group's super consumers, spread by the broker) and the
/// offset-tracking reference (one offset per partition); and
/// - `added_partition_offset`: where the consumers of partitions picked up by
///   `rmqs_super_consumer_refresh()` start when nothing is stored for them (default `first`).
///
/// Stream creation (`rmqs_stream_create`): `max_length_bytes`, `max_age` (e.g. `3600s`,
/// `7D`; units Y M D h m s), `stream_max_segment_size_bytes`, `initial_cluster_size`,
/// `queue_leader_locator` (`client-local`, `balanced`, `least-leaders`, `random`),
/// `filter_size` (16–255 bytes), and `arg.<name>`: any other broker argument, sent as given.
///
/// Whether a key applies to the object being created is checked when the config is used
/// (`RMQS_ERR_INVALID_ARGUMENT` naming the key). Error messages quote at most 256 bytes of a
/// key or value.
///
/// @param cfg the config (borrowed).
/// @param key the key (borrowed, NUL-terminated UTF-8).
/// @param value the value (borrowed, NUL-terminated UTF-8).
/// @param err optional error detail, see the conventions.
/// @return `RMQS_OK`; `RMQS_ERR_INVALID_ARGUMENT` for a NULL argument, an unknown key (the
///         message names it) or a value the key does not accept. The config is unchanged on
///         failure.
///
/// Not thread-safe for one config; does not block.
#[must_use]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_config_set(
    cfg: *mut rmqs_config,
    key: *const c_char,
    value: *const c_char,
    err: *mut *mut rmqs_error,
) -> rmqs_status {
    // SAFETY: err is NULL or writable per the conventions.
    unsafe {
        ffi_status(err, || {
            handle_arg(cfg)?;
            let key = str_arg(key, "key")?;
            let value = str_arg(value, "value")?;
            let cfg = &mut *cfg;
            let mut s = Settings {
                entries: std::mem::take(&mut cfg.entries),
            };
            let r = s.set(key, value);
            cfg.entries = s.entries;
            r
        })
    }
}

/// Frees a config. NULL is allowed and does nothing.
///
/// @param cfg a config from `rmqs_config_new()` (ownership passes to the library), or NULL.
///
/// Does not block. Objects created with the config are not affected (they copied it).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_config_free(cfg: *mut rmqs_config) {
    ffi_boundary((), || {
        // SAFETY: the caller passes NULL or a live config, freed once.
        if unsafe { handle_arg(cfg) }.is_ok() {
            let mut b = unsafe { Box::from_raw(cfg) };
            b.magic = 0;
            drop(b);
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(s: &mut Settings, k: &str, v: &str) -> Result<(), String> {
        s.set(k, v).map_err(|e| e.message)
    }

    #[test]
    fn keys_and_values_are_validated() {
        let mut s = Settings::default();
        let e = set(&mut s, "bogus", "1").unwrap_err();
        assert!(e.contains("unknown config key \"bogus\""), "{e}");
        let e = set(&mut s, "port", "70000").unwrap_err();
        assert!(e.contains("1 to 65535"), "{e}");
        assert!(set(&mut s, "port", "-1").is_err());
        assert!(set(&mut s, "tls", "maybe").is_err());
        assert!(set(&mut s, "uri", "amqp://x").is_err());
        assert!(set(&mut s, "offset", "offset:x").is_err());
        assert!(set(&mut s, "max_age", "7X").is_err());
        assert!(set(&mut s, "name", &"n".repeat(256)).is_err());
        let e = set(&mut s, "producer.offset", "first").unwrap_err();
        assert!(e.contains("does not apply to a producer"), "{e}");
        for (k, v) in [
            ("max-age", "7D"),
            ("offset", "timestamp:-5"),
            ("offset", "OFFSET:42"),
            ("producer.batch_size", "10"),
            ("consumer.name", "c"),
            ("arg.x-custom", "v"),
            ("host", "a:1,[::1]:2,b"),
        ] {
            set(&mut s, k, v).unwrap();
        }
        assert_eq!(s.get("max_age"), Some("7D"));
        assert_eq!(s.get("hosts"), Some("a:1,[::1]:2,b"));
    }

    #[test]
    fn connection_settings() {
        let mut s = Settings::default();
        set(&mut s, "uri", "rabbitmq-stream://u:p@h1:1000/v").unwrap();
        set(&mut s, "port", "2000").unwrap();
        set(&mut s, "lazy_open", "true").unwrap();
        set(&mut s, "producer.batch_size", "5").unwrap();
        let (c, lazy) = s.connection().unwrap();
        assert!(lazy);
        assert_eq!(c.username, "u");
        assert_eq!(c.vhost, "v");
        assert_eq!(c.endpoints[0].port, 2000);
        assert_eq!(s.defaults("producer.").get("batch_size"), Some("5"));

        let mut s = Settings::default();
        set(&mut s, "hosts", "a,b:7").unwrap();
        set(&mut s, "tls", "true").unwrap();
        let (c, _) = s.connection().unwrap();
        assert_eq!(c.endpoints[0].port, DEFAULT_TLS_PORT);
        assert_eq!(c.endpoints[1].port, 7);
        assert!(c.tls.is_some());

        let mut s = Settings::default();
        set(&mut s, "tls_ca_file", "/x").unwrap();
        assert!(s.connection().unwrap_err().message.contains("TLS is off"));

        let mut s = Settings::default();
        set(&mut s, "batch_size", "3").unwrap();
        let e = s.connection().unwrap_err().message;
        assert!(
            e.contains("\"batch_size\" applies to a producer, not to a connection"),
            "{e}"
        );
    }

    #[test]
    fn stream_arguments_map_to_broker_names() {
        let mut s = Settings::default();
        set(&mut s, "max_length_bytes", "1000").unwrap();
        set(&mut s, "max_age", "3600s").unwrap();
        set(&mut s, "filter_size", "32").unwrap();
        set(&mut s, "arg.x-foo", "bar").unwrap();
        let args = s.stream_arguments().unwrap();
        assert_eq!(
            args,
            vec![
                ("max-length-bytes".into(), "1000".into()),
                ("max-age".into(), "3600s".into()),
                ("stream-filter-size-bytes".into(), "32".into()),
                ("x-foo".into(), "bar".into()),
            ]
        );
    }

    #[test]
    fn consumer_feature_values() {
        use CreditPolicy::*;
        for (v, want) in [
            ("on_release", Some(OnRelease)),
            ("ON_ARRIVAL", Some(OnArrival)),
            ("manual", Some(Manual)),
            ("after_processed:3", Some(AfterProcessed(3))),
            ("when_below:50", Some(WhenBelow { percent: 50 })),
            ("ratio:0.5", Some(WhenBelow { percent: 50 })),
            ("ratio:1", Some(WhenBelow { percent: 100 })),
            ("ratio:.25", Some(WhenBelow { percent: 25 })),
            ("ratio:0", None),
            ("ratio:1.5", None),
            ("ratio:-1", None),
            ("ratio:nan", None),
            ("after_processed:0", None),
            ("after_processed:", None),
            ("when_below:101", None),
            ("on_what", None),
        ] {
            assert_eq!(parse_credit_policy(v), want, "{v}");
        }
        let mut s = Settings::default();
        for (k, v) in [
            ("credit_policy", "after_processed:2"),
            ("consumer.credit_policy", "ratio:0.75"),
            ("tracking", "auto"),
            ("tracking_messages", "0"),
            ("tracking_interval_ms", "250"),
            ("single_active_consumer", "true"),
            ("consumer_update_timeout_ms", "55000"),
            ("filter_values", "eu,us"),
            ("match_unfiltered", "yes"),
            ("producer.sub_entry_size", "100"),
            ("producer.compression", "ZSTD"),
        ] {
            set(&mut s, k, v).unwrap();
        }
        assert_eq!(parse_list(s.get("filter_values").unwrap()), ["eu", "us"]);
        for (k, v) in [
            ("credit_policy", "sometimes"),
            ("tracking", "always"),
            ("consumer_update_timeout_ms", "55001"),
            ("filter_values", "eu,,us"),
            ("filter_values", ""),
            ("compression", "brotli"),
            ("sub_entry_size", "65536"),
        ] {
            assert!(set(&mut s, k, v).is_err(), "{k}={v}");
        }
        let e = set(&mut s, "producer.filter_values", "x").unwrap_err();
        assert!(e.contains("does not apply to a producer"), "{e}");
    }

    #[test]
    fn layering() {
        let mut base = Settings::default();
        set(&mut base, "batch_size", "5").unwrap();
        set(&mut base, "name", "a").unwrap();
        let mut top = Settings::default();
        set(&mut top, "name", "b").unwrap();
        let m = top.over(&base);
        assert_eq!(m.get("batch_size"), Some("5"));
        assert_eq!(m.get("name"), Some("b"));
    }
}
