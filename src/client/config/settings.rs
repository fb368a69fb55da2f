//! [`Settings`]: key/value pairs checked against the key table ([`super::keys`]) and applied
//! to the client's configurations, with the defaults of the table.

use std::path::PathBuf;
use std::time::Duration;

use super::keys::{
    ConfigError, Key, Scope, canonical, check_value, find_key, format_offset, parse_bool,
    parse_credit_policy, parse_hosts, parse_list, parse_offset, unknown_codec,
};
use super::{ConnectionConfig, DEFAULT_PORT, DEFAULT_TLS_PORT, Endpoint, SaslMechanism, TlsConfig};
use crate::client::blocking::SendWait;
use crate::client::consumer::{ConsumerConfig, TrackingDecider, TrackingStrategy};
use crate::client::error::{echo, redact_uri};
use crate::client::log::Level;
use crate::client::producer::{Compression, ProducerConfig};
use crate::client::super_consumer::SuperConsumerConfig;
use crate::client::super_producer::{Routing, SuperProducerConfig};
use crate::protocol::codes::OffsetSpec;

type Result<T> = std::result::Result<T, ConfigError>;

/// Sets `field` to the value of a key when it is set.
fn put<T>(field: &mut T, value: Option<T>) {
    if let Some(v) = value {
        *field = v;
    }
}

/// A key as understood: its canonical spelling and where it applies.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Parsed {
    /// The canonical key as stored (`producer.batch_size`, `arg.x-foo`, `max_age`, ...).
    key: String,
    /// Scopes the key applies to when used.
    scopes: Vec<Scope>,
}

/// Parses and validates `key = value`.
fn check(key: &str, value: &str) -> Result<Parsed> {
    for (prefix, scopes, what) in [
        ("arg.", &[Scope::Stream][..], "a stream argument"),
        (
            "property.",
            &[Scope::Consumer, Scope::SuperConsumer][..],
            "a subscription property",
        ),
    ] {
        if let Some(raw) = key.strip_prefix(prefix) {
            if raw.is_empty() {
                return Err(ConfigError(format!(
                    "config key \"{prefix}\" needs {what} name after the dot"
                )));
            }
            return Ok(Parsed {
                key: key.to_string(),
                scopes: scopes.to_vec(),
            });
        }
    }
    for (prefix, scope) in [
        ("producer.", Scope::Producer),
        ("consumer.", Scope::Consumer),
    ] {
        if let Some(inner) = key.strip_prefix(prefix) {
            // One prefix at most: a nested one could never apply, and each level would quote
            // the key again in the error.
            if inner.starts_with("producer.") || inner.starts_with("consumer.") {
                return Err(ConfigError(format!(
                    "config key \"{}\": a \"{prefix}\" key takes no second prefix",
                    echo(key)
                )));
            }
            let inner_parsed = check(inner, value)
                .map_err(|e| ConfigError(format!("{} (in \"{}\")", e.0, echo(key))))?;
            if !inner_parsed.scopes.contains(&scope) {
                return Err(ConfigError(format!(
                    "config key \"{}\": \"{}\" does not apply to {}",
                    echo(key),
                    echo(inner),
                    scope.noun()
                )));
            }
            return Ok(Parsed {
                key: format!("{prefix}{}", inner_parsed.key),
                scopes: vec![Scope::Connection],
            });
        }
    }
    let name = canonical(key);
    let Some(def) = find_key(&name) else {
        return Err(ConfigError(format!("unknown config key \"{}\"", echo(key))));
    };
    check_value(def, value)?;
    Ok(Parsed {
        key: name,
        scopes: def.scopes(),
    })
}

#[derive(Clone, Debug)]
struct Entry {
    parsed: Parsed,
    value: String,
}

/// Configuration key/value pairs, checked when set against the key table
/// ([`keys::KEYS`](super::keys::KEYS)), turned into the client's configurations with the
/// table's defaults. What `rmqs_config` holds.
#[derive(Clone, Debug, Default)]
pub struct Settings {
    entries: Vec<Entry>,
}

/// A producer's configuration and how its sends wait.
#[derive(Debug)]
pub struct ProducerSettings {
    pub config: ProducerConfig,
    pub wait: SendWait,
}

/// A super producer's configuration and how its sends wait.
pub struct SuperProducerSettings {
    pub config: SuperProducerConfig,
    pub wait: SendWait,
}

impl Settings {
    /// Sets a key (validated); replaces an earlier value of the same key. The settings are
    /// unchanged on failure.
    pub fn set(&mut self, key: &str, value: &str) -> Result<()> {
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

    /// Sets where consumers start (the `offset` key) from a typed spec; None removes the key
    /// (the default, or the connection's `consumer.offset`, applies).
    pub fn set_offset(&mut self, offset: Option<OffsetSpec>) {
        self.entries.retain(|e| e.parsed.key != "offset");
        if let Some(o) = offset {
            // format_offset writes what parse_offset reads: never refused
            let _ = self.set("offset", &format_offset(o));
        }
    }

    /// Settings holding `key = value` as given, unchecked: for tests of what uses them.
    #[cfg(test)]
    pub(crate) fn unchecked(key: &str, value: &str) -> Settings {
        let def = find_key(key).expect("a known key");
        Settings {
            entries: vec![Entry {
                parsed: Parsed {
                    key: key.to_string(),
                    scopes: def.scopes(),
                },
                value: value.to_string(),
            }],
        }
    }

    /// The value set for a key (canonical spelling), if any.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|e| e.parsed.key == key)
            .map(|e| e.value.as_str())
    }

    /// Fails when a key does not apply to `scope`.
    pub fn check_scope(&self, scope: Scope) -> Result<()> {
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
                return Err(ConfigError(format!(
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
    fn split_scope(&self, scope: Scope) -> (Settings, Settings) {
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

    /// `key` as set, else its default from the key table: for values the client does not
    /// keep in a config struct, so that the table stays their one default.
    fn uint_or_table(&self, key: &str) -> u64 {
        self.uint(key)
            .or_else(|| find_key(key).and_then(|k: &Key| k.default.parse().ok()))
            .unwrap_or(0)
    }

    fn offset(&self, key: &str) -> Option<OffsetSpec> {
        // validated when set
        self.get(key).and_then(parse_offset)
    }

    /// Whether `lazy_open` is set.
    pub fn lazy_open(&self) -> bool {
        self.bool("lazy_open").unwrap_or(false)
    }

    /// The `runtime_threads` key: how many threads the Tokio runtime of a connection in the C
    /// API has.
    pub fn runtime_threads(&self) -> usize {
        self.uint_or_table("runtime_threads") as usize
    }

    /// The `dispatch_threads` key: how many threads run the callbacks of a connection's
    /// objects in the C API.
    pub fn dispatch_threads(&self) -> usize {
        self.uint_or_table("dispatch_threads") as usize
    }

    /// The `log_level` key: the level, or None for `off` (default `info`).
    pub fn log_level(&self) -> Option<Level> {
        // validated when set: a level or "off"
        self.get("log_level")
            .map_or(Some(Level::Info), Level::parse)
    }

    /// The connection settings (scope checked).
    pub fn connection(&self) -> Result<ConnectionConfig> {
        self.check_scope(Scope::Connection)?;
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
            // validated when set
            c.endpoints = parse_hosts(h)
                .unwrap_or_default()
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
        put(&mut c.username, self.get("username").map(|v| v.into()));
        put(&mut c.password, self.get("password").map(|v| v.into()));
        put(&mut c.vhost, self.get("vhost").map(|v| v.into()));
        put(&mut c.frame_max, self.uint("frame_max").map(|v| v as u32));
        put(&mut c.heartbeat, self.uint("heartbeat").map(|v| v as u32));
        put(
            &mut c.connection_name,
            self.get("connection_name").map(|v| v.into()),
        );
        match c.tls.as_mut() {
            Some(t) => {
                put(
                    &mut t.ca_file,
                    self.get("tls_ca_file").map(|v| Some(PathBuf::from(v))),
                );
                put(
                    &mut t.cert_file,
                    self.get("tls_cert_file").map(|v| Some(PathBuf::from(v))),
                );
                put(
                    &mut t.key_file,
                    self.get("tls_key_file").map(|v| Some(PathBuf::from(v))),
                );
                put(&mut t.verify, self.bool("tls_verify"));
                put(
                    &mut t.server_name,
                    self.get("tls_server_name").map(|v| Some(v.into())),
                );
            }
            None => {
                let tls_keys = [
                    "tls_ca_file",
                    "tls_cert_file",
                    "tls_key_file",
                    "tls_verify",
                    "tls_server_name",
                ];
                if let Some(k) = tls_keys.iter().find(|k| self.get(k).is_some()) {
                    return Err(ConfigError(format!(
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
        put(&mut c.connect_timeout, self.ms("connect_timeout_ms"));
        put(&mut c.request_timeout, self.ms("request_timeout_ms"));
        put(
            &mut c.max_producers_per_connection,
            self.uint("max_producers_per_connection")
                .map(|v| v as usize),
        );
        put(
            &mut c.max_consumers_per_connection,
            self.uint("max_consumers_per_connection")
                .map(|v| v as usize),
        );
        put(&mut c.load_balancer_mode, self.bool("load_balancer"));
        put(&mut c.recovery.enabled, self.bool("recovery"));
        put(
            &mut c.recovery.initial_delay,
            self.ms("recovery_initial_delay_ms"),
        );
        put(&mut c.recovery.max_delay, self.ms("recovery_max_delay_ms"));
        put(
            &mut c.recovery.max_attempts,
            self.uint("recovery_attempts")
                .map(|v| (v > 0).then_some(v as u32)),
        );
        c.validate()?;
        Ok(c)
    }

    /// A producer's configuration (scope checked).
    pub fn producer(&self) -> Result<ProducerSettings> {
        self.check_scope(Scope::Producer)?;
        let mut c = ProducerConfig {
            name: self.get("name").map(str::to_string),
            ..ProducerConfig::default()
        };
        put(
            &mut c.batch_size,
            self.uint("batch_size").map(|v| v as usize),
        );
        put(&mut c.batch_delay, self.ms("batch_delay_ms"));
        put(&mut c.dynamic_batch, self.bool("dynamic_batch"));
        c.max_in_flight = self.uint("max_in_flight").map(|v| v as usize);
        put(&mut c.confirm_timeout, self.ms("confirm_timeout_ms"));
        put(
            &mut c.sub_entry_size,
            self.uint("sub_entry_size").map(|v| v as usize),
        );
        if let Some(v) = self.get("compression") {
            // Checked when set too, with the same table; an unknown name is never taken for
            // "none".
            c.compression = Compression::from_name(v).ok_or_else(|| unknown_codec(v))?;
        }
        c.validate()?;
        Ok(ProducerSettings {
            config: c,
            wait: SendWait {
                block_when_full: self.bool("block_when_full").unwrap_or(true),
                send_timeout: self.ms("send_timeout_ms"),
            },
        })
    }

    /// The tracking strategy of keys `tracking`, `tracking_messages`, `tracking_interval_ms`
    /// and a tracking callback.
    fn tracking(&self, decider: Option<TrackingDecider>) -> Result<TrackingStrategy> {
        let key = self.get("tracking").map(str::to_ascii_lowercase);
        Ok(match (key.as_deref(), decider) {
            (None | Some("custom"), Some(d)) => TrackingStrategy::Custom(d),
            (Some("custom"), None) => {
                return Err(ConfigError(
                    "tracking=custom needs a callback (rmqs_config_set_tracking_cb)".into(),
                ));
            }
            (Some(other), Some(_)) => {
                return Err(ConfigError(format!(
                    "a tracking callback is set (rmqs_config_set_tracking_cb) but tracking is \
                     {other}: set tracking to custom or remove the callback"
                )));
            }
            (None | Some("none"), None) => TrackingStrategy::Disabled,
            (Some("manual"), None) => TrackingStrategy::Manual,
            (Some(_auto), None) => {
                let messages = self.uint_or_table("tracking_messages");
                let interval = Duration::from_millis(self.uint_or_table("tracking_interval_ms"));
                match (messages, interval.is_zero()) {
                    (0, true) => {
                        return Err(ConfigError(
                            "tracking=auto with tracking_messages and tracking_interval_ms \
                             both 0: use tracking=manual to store only explicitly"
                                .into(),
                        ));
                    }
                    (0, false) => TrackingStrategy::Interval(interval),
                    (m, true) => TrackingStrategy::EveryMessages(m),
                    (m, false) => TrackingStrategy::MessagesOrInterval {
                        messages: m,
                        interval,
                    },
                }
            }
        })
    }

    /// A consumer's configuration (scope checked), with a tracking callback for
    /// `tracking=custom`.
    pub fn consumer(&self, tracking: Option<TrackingDecider>) -> Result<ConsumerConfig> {
        self.check_scope(Scope::Consumer)?;
        let mut c = ConsumerConfig {
            name: self.get("name").map(str::to_string),
            properties: self.properties(),
            tracking: self.tracking(tracking)?,
            tracking_reference: self.get("tracking_reference").map(str::to_string),
            single_active_consumer: self.bool("single_active_consumer").unwrap_or(false),
            filter_values: self
                .get("filter_values")
                .map(parse_list)
                .unwrap_or_default(),
            match_unfiltered: self.bool("match_unfiltered").unwrap_or(false),
            ..ConsumerConfig::default()
        };
        put(
            &mut c.consumer_update_timeout,
            self.ms("consumer_update_timeout_ms"),
        );
        put(&mut c.offset, self.offset("offset"));
        put(
            &mut c.initial_credit,
            self.uint("initial_credit").map(|v| v as u16),
        );
        put(
            &mut c.credit_policy,
            self.get("credit_policy").and_then(parse_credit_policy),
        );
        put(&mut c.crc_check, self.bool("crc_check"));
        c.validate()?;
        Ok(c)
    }

    /// A super producer's configuration (scope checked); `custom` routing (the application's
    /// function) instead of the `routing` key, which may then not be set.
    pub fn super_producer(&self, custom: Option<Routing>) -> Result<SuperProducerSettings> {
        self.check_scope(Scope::SuperProducer)?;
        let (own, rest) = self.split_scope(Scope::SuperProducer);
        let p = rest.producer()?;
        let routing = match (own.get("routing"), custom) {
            (Some(r), Some(_)) => {
                return Err(ConfigError(format!(
                    "config key \"routing\" is {r:?} but the config has a routing callback: \
                     use one of the two"
                )));
            }
            (_, Some(custom)) => custom,
            (Some(r), None) if r.eq_ignore_ascii_case("key") => Routing::Key,
            _ => Routing::Hash,
        };
        Ok(SuperProducerSettings {
            config: SuperProducerConfig {
                name: p.config.name.clone(),
                producer: p.config,
                routing,
                key_extractor: None,
                eager: own.bool("eager").unwrap_or(false),
            },
            wait: p.wait,
        })
    }

    /// A super consumer's configuration (scope checked).
    pub fn super_consumer(&self, tracking: Option<TrackingDecider>) -> Result<SuperConsumerConfig> {
        self.check_scope(Scope::SuperConsumer)?;
        let (own, rest) = self.split_scope(Scope::SuperConsumer);
        let consumer = rest.consumer(tracking)?;
        Ok(SuperConsumerConfig {
            name: consumer.name.clone(),
            single_active_consumer: consumer.single_active_consumer,
            consumer,
            added_partition_offset: own
                .offset("added_partition_offset")
                .unwrap_or(OffsetSpec::First),
        })
    }

    /// The broker arguments of stream creation (scope checked), in the order set.
    pub fn stream_arguments(&self) -> Result<Vec<(String, String)>> {
        self.check_scope(Scope::Stream)?;
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

    /// Every key of the table as `key=value` with its effective value (set, else the
    /// default, else empty), in the table's order, then the prefixed keys set (`producer.*`,
    /// `consumer.*`, `property.*`, `arg.*`) in the order set. Passwords show as `***`, also
    /// inside a URI.
    pub fn dump(&self) -> Vec<String> {
        let mut out: Vec<String> = super::keys::KEYS
            .iter()
            .map(|k| {
                let v = self.get(k.name).unwrap_or(k.default);
                let shown = match k.kind {
                    _ if k.is_secret() => "***".to_string(),
                    super::keys::Kind::Uri => redact_uri(v),
                    _ => v.to_string(),
                };
                format!("{}={shown}", k.name)
            })
            .collect();
        // prefixed keys: producer and consumer keys hold no secret
        out.extend(
            self.entries
                .iter()
                .filter(|e| find_key(&e.parsed.key).is_none())
                .map(|e| format!("{}={}", e.parsed.key, e.value)),
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::super::keys::{KEYS, Kind};
    use super::*;
    use crate::client::consumer::CreditPolicy;

    fn set(s: &mut Settings, k: &str, v: &str) -> std::result::Result<(), String> {
        s.set(k, v).map_err(|e| e.0)
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
        // Found by the config_values fuzz target: nested prefixes quoted the key once per
        // level (7 levels of a 380-byte key: 1,959 bytes of message).
        let e = set(&mut s, "consumer.producer.batch_size", "1").unwrap_err();
        assert!(e.contains("takes no second prefix"), "{e}");
        let deep = format!("{}{}", "consumer.producer.".repeat(20), "x".repeat(400));
        let e = set(&mut s, &deep, "").unwrap_err();
        assert!(
            e.len() < crate::client::error::ECHO_MAX + 100,
            "{} bytes: {e}",
            e.len()
        );
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

    /// Each integer key refuses the values just outside its range with a message naming the
    /// key and the range, and the client's own checks take the bounds the table gives.
    #[test]
    fn integer_ranges_are_enforced_at_both_ends() {
        for key in KEYS {
            let Kind::Uint(min, max) = key.kind else {
                continue;
            };
            let want = format!("(an integer from {min} to {max})");
            let mut outside = vec![
                max.checked_add(1)
                    .map_or("99999999999999999999".into(), |v| v.to_string()),
            ];
            if min > 0 {
                outside.push((min - 1).to_string());
            }
            for v in outside {
                let e = Settings::default().set(key.name, &v).unwrap_err().0;
                assert_eq!(
                    e,
                    format!("config key \"{}\": invalid value \"{v}\" {want}", key.name),
                    "{}",
                    key.name
                );
            }
            for v in [min, max] {
                let mut s = Settings::default();
                s.set(key.name, &v.to_string()).unwrap();
                // what the key configures accepts every value the table does
                let scope = key.scopes()[0];
                let r = match scope {
                    Scope::Connection => s.connection().map(drop),
                    Scope::Producer => s.producer().map(drop),
                    Scope::Consumer => s.consumer(None).map(drop),
                    _ => Ok(()),
                };
                // the recovery delays also depend on each other
                if !key.name.starts_with("recovery_") || key.name == "recovery_attempts" {
                    r.unwrap_or_else(|e| panic!("{}={v}: {e}", key.name));
                }
            }
        }
        // the named ones of issue 12: one range each, in the table and in the client
        for (key, max) in [
            ("batch_size", crate::client::producer::MAX_BATCH_SIZE as u64),
            (
                "max_in_flight",
                crate::client::producer::MAX_IN_FLIGHT_LIMIT as u64,
            ),
        ] {
            assert!(
                matches!(super::super::keys::find_key(key).unwrap().kind, Kind::Uint(1, m) if m == max)
            );
        }
        let p = ProducerConfig {
            batch_size: crate::client::producer::MAX_BATCH_SIZE + 1,
            ..ProducerConfig::default()
        };
        assert_eq!(
            p.validate().unwrap_err().to_string(),
            "invalid argument: batch_size must be 1 to 65535, got 65536"
        );
    }

    /// The defaults the table documents are the client's: setting a key to its documented
    /// default changes nothing.
    #[test]
    fn table_defaults_are_the_client_defaults() {
        let base = |s: &Settings, scope: Scope| match scope {
            Scope::Connection => format!(
                "{:?} {} {} {}",
                s.connection().unwrap(),
                s.lazy_open(),
                s.runtime_threads(),
                s.dispatch_threads()
            ),
            Scope::Producer => format!("{:?}", s.producer().unwrap()),
            Scope::Consumer => format!("{:?}", s.consumer(None).unwrap()),
            Scope::SuperProducer => format!("{:?}", s.super_producer(None).unwrap().config.routing),
            Scope::SuperConsumer => format!("{:?}", s.super_consumer(None).unwrap()),
            Scope::Stream => String::new(),
        };
        let mut checked = 0;
        for key in KEYS.iter().filter(|k| !k.default.is_empty()) {
            let scope = key.scopes()[0];
            // what some keys need to count: tracking=auto, TLS
            let context: &[(&str, &str)] = match key.name {
                n if n.starts_with("tracking_") => &[("tracking", "auto"), ("name", "n")],
                n if n.starts_with("tls_") => &[("tls", "true")],
                _ => &[],
            };
            let mut plain = Settings::default();
            for (k, v) in context {
                plain.set(k, v).unwrap();
            }
            let mut s = plain.clone();
            s.set(key.name, key.default).unwrap();
            if key.name == "log_level" {
                assert_eq!(s.log_level(), plain.log_level());
            } else {
                assert_eq!(base(&s, scope), base(&plain, scope), "{}", key.name);
            }
            checked += 1;
        }
        assert!(checked > 40, "{checked}");
    }

    #[test]
    fn connection_settings() {
        let mut s = Settings::default();
        set(&mut s, "uri", "rabbitmq-stream://u:p@h1:1000/v").unwrap();
        set(&mut s, "port", "2000").unwrap();
        set(&mut s, "lazy_open", "true").unwrap();
        set(&mut s, "producer.batch_size", "5").unwrap();
        let c = s.connection().unwrap();
        assert!(s.lazy_open());
        assert_eq!(c.username, "u");
        assert_eq!(c.vhost, "v");
        assert_eq!(c.endpoints[0].port, 2000);
        assert_eq!(s.defaults("producer.").get("batch_size"), Some("5"));

        let mut s = Settings::default();
        set(&mut s, "hosts", "a,b:7").unwrap();
        set(&mut s, "tls", "true").unwrap();
        let c = s.connection().unwrap();
        assert_eq!(c.endpoints[0].port, DEFAULT_TLS_PORT);
        assert_eq!(c.endpoints[1].port, 7);
        assert!(c.tls.is_some());

        let mut s = Settings::default();
        set(&mut s, "tls_ca_file", "/x").unwrap();
        assert!(s.connection().unwrap_err().0.contains("TLS is off"));

        let mut s = Settings::default();
        set(&mut s, "batch_size", "3").unwrap();
        let e = s.connection().unwrap_err().0;
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

    /// The tracking defaults (10000 messages, 5 s) come from the table, for Rust users too.
    #[test]
    fn automatic_tracking_takes_the_table_defaults() {
        let mut s = Settings::default();
        set(&mut s, "name", "c").unwrap();
        set(&mut s, "tracking", "auto").unwrap();
        assert!(matches!(
            s.consumer(None).unwrap().tracking,
            TrackingStrategy::MessagesOrInterval { messages: 10_000, interval }
                if interval == Duration::from_secs(5)
        ));
        set(&mut s, "tracking_messages", "0").unwrap();
        set(&mut s, "tracking_interval_ms", "0").unwrap();
        let e = s.consumer(None).unwrap_err().0;
        assert!(e.contains("both 0"), "{e}");
    }

    #[test]
    fn unknown_codec_names_are_refused_not_taken_for_none() {
        let e = Settings::unchecked("compression", "brotli")
            .producer()
            .unwrap_err();
        assert_eq!(
            e.0,
            "config key \"compression\": invalid value \"brotli\" \
             (one of none, gzip, snappy, lz4, zstd)"
        );
        for (name, want) in [
            ("none", Compression::None),
            ("GZIP", Compression::Gzip),
            ("snappy", Compression::Snappy),
            ("Lz4", Compression::Lz4),
            ("zstd", Compression::Zstd),
        ] {
            let p = Settings::unchecked("compression", name).producer().unwrap();
            assert_eq!(p.config.compression, want, "{name}");
        }
    }

    #[test]
    fn super_consumer_keys() {
        let mut s = Settings::default();
        s.set("name", "app").unwrap();
        s.set("offset", "first").unwrap();
        s.set("added_partition_offset", "next").unwrap();
        s.set("initial_credit", "3").unwrap();
        let c = s.super_consumer(None).unwrap();
        assert_eq!(c.name.as_deref(), Some("app"));
        assert_eq!(c.consumer.offset, OffsetSpec::First);
        assert_eq!(c.consumer.initial_credit, 3);
        assert_eq!(c.added_partition_offset, OffsetSpec::Next);
        c.validate("ss").unwrap();
        assert_eq!(
            Settings::default()
                .super_consumer(None)
                .unwrap()
                .added_partition_offset,
            OffsetSpec::First
        );

        let mut s = Settings::default();
        s.set("routing", "key").unwrap();
        let e = s.super_consumer(None).unwrap_err().0;
        assert!(e.contains("not to a super consumer"), "{e}");
        let mut s = Settings::default();
        s.set("batch_size", "5").unwrap();
        let e = s.super_consumer(None).unwrap_err().0;
        assert!(e.contains("applies to a producer,"), "{e}");
    }

    #[test]
    fn typed_offsets_round_trip_through_the_offset_key() {
        let mut s = Settings::default();
        for o in [
            OffsetSpec::First,
            OffsetSpec::Last,
            OffsetSpec::Next,
            OffsetSpec::Offset(u64::MAX),
            OffsetSpec::Timestamp(-5),
        ] {
            s.set_offset(Some(o));
            assert_eq!(s.consumer(None).unwrap().offset, o);
        }
        s.set_offset(None);
        assert_eq!(s.get("offset"), None);
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

    #[test]
    fn dump_shows_every_key_with_its_effective_value_and_hides_passwords() {
        let mut s = Settings::default();
        set(&mut s, "uri", "rabbitmq-stream://u:secret@h/v").unwrap();
        set(&mut s, "password", "hunter2").unwrap();
        set(&mut s, "batch-size", "7").unwrap();
        set(&mut s, "consumer.offset", "first").unwrap();
        let d = s.dump();
        assert_eq!(d.len(), KEYS.len() + 1);
        assert_eq!(d[0], "uri=rabbitmq-stream://u:***@h/v");
        assert!(d.contains(&"password=***".to_string()));
        assert!(d.contains(&"batch_size=7".to_string()));
        assert!(d.contains(&"max_in_flight=".to_string()));
        assert!(d.contains(&"name=".to_string()));
        assert_eq!(d.last().unwrap(), "consumer.offset=first");
        assert!(
            !d.iter()
                .any(|l| l.contains("secret") || l.contains("hunter2"))
        );
        assert!(
            Settings::default()
                .dump()
                .contains(&"password=***".to_string())
        );
    }
}
