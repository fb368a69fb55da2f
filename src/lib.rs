//! rmqstream: a RabbitMQ Streams client with a C ABI.
//!
//! Layers: [`protocol`] is the codec (no I/O).

pub mod ffi;
pub mod protocol;
