//! The RabbitMQ stream protocol codec: frames, chunks, AMQP 1.0 messages, routing hash.
//!
//! Pure data transformation: this module knows no sockets, no Tokio and no C.

pub mod amqp;
pub mod chunk;
pub mod codes;
pub mod commands;
pub mod compression;
pub mod error;
pub mod murmur3;
pub mod wire;

pub use error::{DecodeError, EncodeError};
