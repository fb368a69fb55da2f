//! rmqstream: a RabbitMQ Streams client with a C ABI.
//!
//! Layers: [`protocol`] is the codec (no I/O); [`client`] the async client on Tokio (no C);
//! [`ffi`] the `extern "C"` surface (converts and checks only).

pub mod client;
pub mod ffi;
pub mod protocol;
