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
    /// SASL authentication was refused.
    #[error("authentication failed ({0})")]
    Auth(ResponseCode),
    /// A flush or close found this many messages completed without a confirm (refused, timed
    /// out or closed); their [`Confirm`](super::Confirm)s say which and why.
    #[error("{0} message(s) completed without a confirm")]
    NotConfirmed(u64),
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

/// Result alias of the client layer.
pub type Result<T, E = ClientError> = std::result::Result<T, E>;
