//! Configuration: connection settings and the `rabbitmq-stream://` URI, the one table of
//! configuration keys ([`keys`]) and the key/value [`Settings`] it checks and applies.

pub mod keys;
pub mod settings;

pub use keys::{ConfigError, Key, Kind, Scope};
pub use settings::{ProducerSettings, Settings, SuperProducerSettings};

use std::path::PathBuf;
use std::time::Duration;

use super::error::{ClientError, Result, echo, echo_uri};
use super::recovery::RecoveryPolicy;

/// Smallest `frame_max` a connection accepts to set (0, the broker's choice, aside): the
/// broker's own ceiling for frames before the connection is tuned (`stream.initial_frame_max`,
/// 8192 bytes since RabbitMQ 4.3.5), so that every command of the protocol fits. The broker
/// itself sets no floor (4.0.5 tunes to 16 bytes); AMQP 0-9-1's frame-min-size is 4096.
pub const MIN_FRAME_MAX: u32 = 8192;

/// Most producers (or consumers) sharing one TCP connection.
pub const MAX_PER_CONNECTION: usize = 256;

/// Longest host name accepted (DNS names are at most 253 bytes).
pub const MAX_HOST_LEN: usize = 255;

/// The query parameters a URI may carry, and what they set.
pub const URI_PARAMETERS: &[&str] = &[
    "heartbeat",
    "frame_max",
    "connection_name",
    "connect_timeout",
    "connection_timeout",
    "request_timeout",
    "load_balancer_mode",
];

/// Default stream port (plain TCP).
pub const DEFAULT_PORT: u16 = 5552;
/// Default stream port over TLS.
pub const DEFAULT_TLS_PORT: u16 = 5551;

/// How the client authenticates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaslMechanism {
    /// Username and password.
    Plain,
    /// The TLS client certificate (needs `rabbitmq_auth_mechanism_ssl` on the broker).
    External,
}

/// TLS settings. Certificate and host-name verification are on unless `verify` is false.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfig {
    /// PEM file of trusted CA certificates; the system's roots when `None`.
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate chain (for mutual TLS / SASL EXTERNAL).
    pub cert_file: Option<PathBuf>,
    /// PEM private key of the client certificate.
    pub key_file: Option<PathBuf>,
    /// Name to verify the server certificate against; the host when `None`.
    pub server_name: Option<String>,
    /// Verify the server's certificate chain and name (default true).
    pub verify: bool,
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            ca_file: None,
            cert_file: None,
            key_file: None,
            server_name: None,
            verify: true,
        }
    }
}

/// One seed host.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
}

/// Everything needed to open connections to a broker or cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionConfig {
    /// Seed hosts, tried in order for the locator connection.
    pub endpoints: Vec<Endpoint>,
    pub username: String,
    pub password: String,
    pub vhost: String,
    pub sasl: SaslMechanism,
    pub tls: Option<TlsConfig>,
    /// Largest frame we accept to send (0 = broker's choice). Negotiated with Tune.
    pub frame_max: u32,
    /// Heartbeat interval in seconds (0 = broker's choice). Negotiated with Tune.
    pub heartbeat: u32,
    /// Shown by the broker as the connection's user-provided name.
    pub connection_name: String,
    /// Time allowed to connect and complete the handshake.
    pub connect_timeout: Duration,
    /// Time allowed for one request/response exchange.
    pub request_timeout: Duration,
    /// Producers sharing one TCP connection before another is opened (1 to
    /// [`MAX_PER_CONNECTION`]).
    pub max_producers_per_connection: usize,
    /// Consumers sharing one TCP connection before another is opened (1 to
    /// [`MAX_PER_CONNECTION`]).
    pub max_consumers_per_connection: usize,
    /// Behind a load balancer: connect through the seed hosts repeatedly until the broker's
    /// advertised host/port is the wanted node, instead of dialling the advertised address.
    pub load_balancer_mode: bool,
    /// How producers and consumers recover from a lost connection or stream leader (on by
    /// default).
    pub recovery: RecoveryPolicy,
}

impl Default for ConnectionConfig {
    fn default() -> Self {
        ConnectionConfig {
            endpoints: vec![Endpoint {
                host: "localhost".into(),
                port: DEFAULT_PORT,
            }],
            username: "guest".into(),
            password: "guest".into(),
            vhost: "/".into(),
            sasl: SaslMechanism::Plain,
            tls: None,
            frame_max: 1_048_576,
            heartbeat: 60,
            connection_name: "rmqstream".into(),
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(10),
            max_producers_per_connection: MAX_PER_CONNECTION,
            max_consumers_per_connection: MAX_PER_CONNECTION,
            load_balancer_mode: false,
            recovery: RecoveryPolicy::default(),
        }
    }
}

impl ConnectionConfig {
    /// Applies a URI `rabbitmq-stream://user:pass@host:port/vhost?key=value&...` (or
    /// `rabbitmq-stream+tls://`) on top of the current settings. Several hosts may be given
    /// separated by commas (`host1:5552,host2:5552`). User, password, vhost and parameter
    /// values are percent-decoded; an empty path means vhost `/`, and `%2f` is `/`.
    ///
    /// Query parameters ([`URI_PARAMETERS`]; an unknown one is an error, never ignored):
    /// - `heartbeat`: seconds, 0 to 65535 (0 = none);
    /// - `frame_max`: bytes, 0 (the broker's choice) or [`MIN_FRAME_MAX`] to 2^32-1;
    /// - `connection_name`: the name the broker shows;
    /// - `connect_timeout` (or `connection_timeout`, as in AMQP URIs), `request_timeout`:
    ///   milliseconds, 1 to 2^31-1;
    /// - `load_balancer_mode`: `true` or `false`.
    ///
    /// Errors echo the URI with its password replaced by `***`, shortened to a few hundred
    /// bytes.
    pub fn apply_uri(&mut self, uri: &str) -> Result<()> {
        let bad =
            |why: &str| ClientError::InvalidArgument(format!("URI \"{}\": {why}", echo_uri(uri)));
        let (tls, rest) = if let Some(r) = uri.strip_prefix("rabbitmq-stream+tls://") {
            (true, r)
        } else if let Some(r) = uri.strip_prefix("rabbitmq-stream://") {
            (false, r)
        } else {
            return Err(bad(
                "scheme must be rabbitmq-stream:// or rabbitmq-stream+tls://",
            ));
        };
        let rest = rest.split('#').next().unwrap_or("");
        let (rest, query) = match rest.split_once('?') {
            Some((r, q)) => (r, Some(q)),
            None => (rest, None),
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, ""),
        };
        let (userinfo, hosts) = match authority.rfind('@') {
            Some(i) => (Some(&authority[..i]), &authority[i + 1..]),
            None => (None, authority),
        };
        // Everything is parsed into a copy first: a URI that fails changes nothing.
        let mut c = self.clone();
        if let Some(ui) = userinfo {
            let (u, p) = ui.split_once(':').unwrap_or((ui, ""));
            c.username = percent_decode(u).ok_or_else(|| bad("bad escape in user"))?;
            c.password = percent_decode(p).ok_or_else(|| bad("bad escape in password"))?;
        }
        let default_port = if tls { DEFAULT_TLS_PORT } else { DEFAULT_PORT };
        let mut endpoints = Vec::new();
        for h in hosts.split(',').filter(|h| !h.is_empty()) {
            endpoints.push(parse_host_port(h, default_port).ok_or_else(|| {
                bad(&format!(
                    "bad host:port \"{}\" (a host of 1 to {MAX_HOST_LEN} bytes, a port of 1 to 65535)",
                    echo(h)
                ))
            })?);
        }
        if endpoints.is_empty() {
            return Err(bad("no host"));
        }
        c.endpoints = endpoints;
        c.vhost = if path.is_empty() {
            "/".into()
        } else {
            percent_decode(path).ok_or_else(|| bad("bad escape in vhost"))?
        };
        if tls && c.tls.is_none() {
            c.tls = Some(TlsConfig::default());
        }
        if !tls {
            c.tls = None;
        }
        for pair in query.into_iter().flat_map(|q| q.split('&')) {
            if pair.is_empty() {
                continue;
            }
            let (key, raw) = pair.split_once('=').unwrap_or((pair, ""));
            let value = percent_decode(raw)
                .ok_or_else(|| bad(&format!("bad escape in the value of \"{}\"", echo(key))))?;
            c.apply_uri_parameter(key, &value)
                .map_err(|why| bad(&why))?;
        }
        *self = c;
        Ok(())
    }

    /// One query parameter of a URI; the error says why, for [`apply_uri`](Self::apply_uri).
    fn apply_uri_parameter(&mut self, key: &str, value: &str) -> std::result::Result<(), String> {
        let invalid =
            |want: &str| format!("invalid value \"{}\" for \"{key}\" ({want})", echo(value));
        let uint = |min: u64, max: u64| {
            Some(value)
                .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|v| v.parse::<u64>().ok())
                .filter(|n| (min..=max).contains(n))
                .ok_or_else(|| invalid(&format!("an integer from {min} to {max}")))
        };
        let ms_max = i32::MAX as u64;
        match key {
            "heartbeat" => self.heartbeat = uint(0, 65_535)? as u32,
            "frame_max" => {
                let v = uint(0, u32::MAX as u64)? as u32;
                check_frame_max(v).map_err(|_| {
                    invalid(&format!(
                        "0 or an integer from {MIN_FRAME_MAX} to {}",
                        u32::MAX
                    ))
                })?;
                self.frame_max = v;
            }
            "connection_name" => self.connection_name = value.to_string(),
            "connect_timeout" | "connection_timeout" => {
                self.connect_timeout = Duration::from_millis(uint(1, ms_max)?)
            }
            "request_timeout" => self.request_timeout = Duration::from_millis(uint(1, ms_max)?),
            "load_balancer_mode" => {
                self.load_balancer_mode = match value.to_ascii_lowercase().as_str() {
                    "true" | "1" | "yes" | "on" => true,
                    "false" | "0" | "no" | "off" => false,
                    _ => return Err(invalid("true or false")),
                }
            }
            _ => {
                return Err(format!(
                    "unknown query parameter \"{}\" (known: {})",
                    echo(key),
                    URI_PARAMETERS.join(", ")
                ));
            }
        }
        Ok(())
    }

    /// Checks the values that cannot be caught when set.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(ClientError::InvalidArgument(m.into()));
        if self.endpoints.is_empty() {
            return bad("no host configured");
        }
        let per = 1..=MAX_PER_CONNECTION;
        if !per.contains(&self.max_producers_per_connection)
            || !per.contains(&self.max_consumers_per_connection)
        {
            return Err(ClientError::InvalidArgument(format!(
                "producers/consumers per connection must be 1 to {MAX_PER_CONNECTION}"
            )));
        }
        if self.sasl == SaslMechanism::External && self.tls.is_none() {
            return bad("SASL EXTERNAL needs TLS with a client certificate");
        }
        check_frame_max(self.frame_max)?;
        if let Some(e) = self
            .endpoints
            .iter()
            .find(|e| e.host.is_empty() || e.host.len() > MAX_HOST_LEN)
        {
            return Err(ClientError::InvalidArgument(format!(
                "host \"{}\" must be 1 to {MAX_HOST_LEN} bytes long, got {}",
                echo(&e.host),
                e.host.len()
            )));
        }
        self.recovery.validate()
    }
}

/// Fails unless `frame_max` is 0 (the broker's choice) or at least [`MIN_FRAME_MAX`].
pub fn check_frame_max(frame_max: u32) -> Result<()> {
    if frame_max != 0 && frame_max < MIN_FRAME_MAX {
        return Err(ClientError::InvalidArgument(format!(
            "frame_max {frame_max} is below the minimum of {MIN_FRAME_MAX} bytes (0 lets the broker choose)"
        )));
    }
    Ok(())
}

fn parse_host_port(s: &str, default_port: u16) -> Option<Endpoint> {
    // [v6addr]:port, host:port, host
    if let Some(r) = s.strip_prefix('[') {
        let (h, after) = r.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().ok().filter(|&p| p != 0)?,
            None if after.is_empty() => default_port,
            None => return None,
        };
        if h.is_empty() || h.len() > MAX_HOST_LEN {
            return None;
        }
        return Some(Endpoint {
            host: h.to_string(),
            port,
        });
    }
    let (h, port) = match s.rsplit_once(':') {
        Some((h, p)) => (h, p.parse().ok().filter(|&p| p != 0)?),
        None => (s, default_port),
    };
    if h.is_empty() || h.len() > MAX_HOST_LEN {
        return None;
    }
    Some(Endpoint {
        host: h.to_string(),
        port,
    })
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_with_everything() {
        let mut c = ConnectionConfig::default();
        c.apply_uri("rabbitmq-stream://us%40r:p%3Ass@h1:1234,h2/my%2fvhost")
            .unwrap();
        assert_eq!(c.username, "us@r");
        assert_eq!(c.password, "p:ss");
        assert_eq!(c.vhost, "my/vhost");
        assert_eq!(
            c.endpoints,
            vec![
                Endpoint {
                    host: "h1".into(),
                    port: 1234
                },
                Endpoint {
                    host: "h2".into(),
                    port: DEFAULT_PORT
                }
            ]
        );
        assert!(c.tls.is_none());
    }

    #[test]
    fn tls_uri_defaults_and_vhost_slash() {
        let mut c = ConnectionConfig::default();
        c.apply_uri("rabbitmq-stream+tls://[::1]/%2f").unwrap();
        assert_eq!(c.endpoints[0].host, "::1");
        assert_eq!(c.endpoints[0].port, DEFAULT_TLS_PORT);
        assert_eq!(c.vhost, "/");
        assert!(c.tls.as_ref().unwrap().verify);
        c.apply_uri("rabbitmq-stream://localhost").unwrap();
        assert_eq!(c.vhost, "/");
        assert_eq!(c.username, "guest");
    }

    #[test]
    fn bad_uris_are_rejected() {
        let mut c = ConnectionConfig::default();
        for u in [
            "amqp://h",
            "rabbitmq-stream://",
            "rabbitmq-stream://h:notaport",
            "rabbitmq-stream://h/%zz",
            "rabbitmq-stream://h/%ff",
            "rabbitmq-stream://[::1",
        ] {
            assert!(c.apply_uri(u).is_err(), "{u}");
        }
    }

    #[test]
    fn uri_query_parameters_are_honoured() {
        let mut c = ConnectionConfig::default();
        c.apply_uri(
            "rabbitmq-stream://h?heartbeat=5&frame_max=8192&connection_name=my%20app\
             &connect_timeout=2500&request_timeout=300&load_balancer_mode=true#frag",
        )
        .unwrap();
        assert_eq!(c.endpoints[0].host, "h");
        assert_eq!(c.vhost, "/");
        assert_eq!((c.heartbeat, c.frame_max), (5, 8192));
        assert_eq!(c.connection_name, "my app");
        assert_eq!(c.connect_timeout, Duration::from_millis(2500));
        assert_eq!(c.request_timeout, Duration::from_millis(300));
        assert!(c.load_balancer_mode);
        c.apply_uri("rabbitmq-stream://h/v?connection_timeout=7&frame_max=0&load_balancer_mode=0")
            .unwrap();
        assert_eq!(c.vhost, "v");
        assert_eq!(c.connect_timeout, Duration::from_millis(7));
        assert_eq!(c.frame_max, 0);
        assert!(!c.load_balancer_mode);
        // a URI that fails changes nothing
        let before = c.clone();
        let e = c
            .apply_uri("rabbitmq-stream://u:pw@other/x?heartbeat=1&bogus=2")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown query parameter \"bogus\""), "{e}");
        assert_eq!(c, before);
    }

    #[test]
    fn frame_max_is_checked() {
        let mut c = ConnectionConfig::default();
        for ok in [0, MIN_FRAME_MAX, u32::MAX] {
            c.frame_max = ok;
            c.validate().unwrap();
        }
        c.frame_max = MIN_FRAME_MAX - 1;
        assert_eq!(
            c.validate().unwrap_err().to_string(),
            "invalid argument: frame_max 8191 is below the minimum of 8192 bytes \
             (0 lets the broker choose)"
        );
    }

    #[test]
    fn host_length_is_checked() {
        let mut c = ConnectionConfig::default();
        c.endpoints[0].host = "h".repeat(MAX_HOST_LEN + 1);
        let e = c.validate().unwrap_err().to_string();
        assert!(e.ends_with("must be 1 to 255 bytes long, got 256"), "{e}");
        assert!(e.len() < 400, "{e}");
        assert!(c.apply_uri("rabbitmq-stream://h:0").is_err());
    }
}
