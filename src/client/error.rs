//! Errors of the async client.

use thiserror::Error;

use crate::protocol::codes::ResponseCode;
use crate::protocol::{DecodeError, EncodeError};

/// Why a client operation failed.
#[derive(Debug, Clone, Error)]
pub enum ClientError {
    /// The broker answered with a response code other than OK.
    #[error("broker answered {code} to {operation}")]
    Server {
        operation: &'static str,
        code: ResponseCode,
    },
    /// Socket-level failure (connect, read, write, DNS).
    #[error("I/O error: {0}")]
    Io(String),
    /// TLS configuration or handshake failure.
    #[error("TLS error: {0}")]
    Tls(String),
    /// The peer sent something the codec could not decode, or broke the protocol's rules.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The operation did not complete in time.
    #[error("timed out after {0} ms waiting for {1}")]
    Timeout(u64, &'static str),
    /// The connection (or the object) is closed.
    #[error("closed: {0}")]
    Closed(String),
    /// The broker lacks the feature.
    #[error("{feature} needs RabbitMQ {needs} or later (broker is {broker})")]
    Unsupported {
        feature: &'static str,
        needs: &'static str,
        broker: String,
    },
    /// A caller-supplied value is not acceptable.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The in-flight limit is reached and the caller asked not to block.
    #[error("too many unconfirmed messages (limit {0})")]
    QueueFull(usize),
    /// A batch send's producer accepted none of the messages left, without saying why (see
    /// [`SendWait::send_all`](super::blocking::SendWait::send_all)).
    #[error("the producer accepted none of the {0} remaining messages; retry them later")]
    NoneAccepted(usize),
    /// SASL authentication was refused.
    #[error("authentication failed ({0})")]
    Auth(ResponseCode),
    /// A flush or close found this many messages completed without a confirm (refused, timed
    /// out or closed); their [`Confirm`](super::Confirm)s say which and why.
    #[error("{0} message(s) completed without a confirm")]
    NotConfirmed(u64),
    /// A blocking call made on a thread where waiting would deadlock (see
    /// [`blocking`](super::blocking)).
    #[error("{0}")]
    WouldDeadlock(String),
}

impl ClientError {
    pub(crate) fn io(e: std::io::Error) -> Self {
        ClientError::Io(e.to_string())
    }

    /// Fails with [`ClientError::Server`] unless `code` is OK.
    pub(crate) fn check(operation: &'static str, code: ResponseCode) -> Result<(), ClientError> {
        if code.is_ok() {
            Ok(())
        } else {
            Err(ClientError::Server { operation, code })
        }
    }
}

impl From<DecodeError> for ClientError {
    fn from(e: DecodeError) -> Self {
        ClientError::Protocol(e.to_string())
    }
}

impl From<EncodeError> for ClientError {
    fn from(e: EncodeError) -> Self {
        ClientError::InvalidArgument(e.to_string())
    }
}

/// At most this many bytes of a caller's string are echoed in an error or log message (a
/// stream name, 255 bytes at most, always fits).
pub const ECHO_MAX: usize = 256;

/// A caller-supplied string as error and log messages echo it: the first [`ECHO_MAX`] bytes
/// (cut on a character boundary), followed by `… (N bytes)` when it is longer. Every message
/// that repeats user input goes through this (or [`echo_uri`]), so that a 1 MiB value does
/// not make a 1 MiB message.
pub fn echo(s: &str) -> String {
    if s.len() <= ECHO_MAX {
        return s.to_string();
    }
    let mut end = ECHO_MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &s[..end], s.len())
}

/// A URI as messages echo it: [`redact_uri`], then shortened as by [`echo`].
pub fn echo_uri(uri: &str) -> String {
    echo(&redact_uri(uri))
}

/// A URI with the password in its user info replaced by `***`
/// (`rabbitmq-stream://guest:***@host/vhost`). Also for strings that are not quite URIs:
/// whatever precedes the last `@` of the authority is user info.
pub fn redact_uri(uri: &str) -> String {
    let start = uri.find("://").map_or(0, |i| i + 3);
    let rest = &uri[start..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    match authority.rfind('@') {
        Some(at) => {
            let user = authority[..at]
                .split_once(':')
                .map_or(&authority[..at], |(u, _)| u);
            let password = if authority[..at].contains(':') {
                ":***"
            } else {
                ""
            };
            format!("{}{user}{password}{}", &uri[..start], &rest[at..])
        }
        None => uri.to_string(),
    }
}

/// Result alias of the client layer.
pub type Result<T, E = ClientError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echo_caps_on_a_character_boundary() {
        assert_eq!(echo("short"), "short");
        let exact = "a".repeat(ECHO_MAX);
        assert_eq!(echo(&exact), exact);
        let long = "h".repeat(1 << 20);
        assert_eq!(
            echo(&long),
            format!("{}… (1048576 bytes)", "h".repeat(ECHO_MAX))
        );
        // 255 one-byte characters then 'é' (2 bytes) across the limit: cut before it
        let s = format!("{}é{}", "x".repeat(ECHO_MAX - 1), "y".repeat(10));
        assert_eq!(
            echo(&s),
            format!("{}… ({} bytes)", "x".repeat(ECHO_MAX - 1), s.len())
        );
    }

    #[test]
    fn echo_uri_hides_the_password() {
        for (uri, want) in [
            (
                "rabbitmq-stream://guest:secret@h:5552/v",
                "rabbitmq-stream://guest:***@h:5552/v",
            ),
            (
                "rabbitmq-stream+tls://u:p%40ss:w@h1,h2/%2f?heartbeat=5",
                "rabbitmq-stream+tls://u:***@h1,h2/%2f?heartbeat=5",
            ),
            ("rabbitmq-stream://user@h", "rabbitmq-stream://user@h"),
            ("rabbitmq-stream://h/v@x", "rabbitmq-stream://h/v@x"),
            ("amqp://a:b@h", "amqp://a:***@h"),
            ("a:b@h", "a:***@h"),
            ("", ""),
        ] {
            assert_eq!(echo_uri(uri), want, "{uri}");
        }
        let long = format!("rabbitmq-stream://u:pw@{}", "h".repeat(1 << 20));
        let e = echo_uri(&long);
        assert!(e.starts_with("rabbitmq-stream://u:***@hhh"), "{e}");
        assert!(e.ends_with(&format!("… ({} bytes)", long.len() + 1)), "{e}");
        assert!(!e.contains("pw"));
    }
}
