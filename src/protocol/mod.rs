//! The RabbitMQ stream protocol codec: frames, chunks, AMQP 1.0 messages, routing hash.
//!
//! Pure data transformation: this module knows no sockets, no Tokio and no C.

pub mod error;
pub mod wire;

pub use error::{DecodeError, EncodeError};
