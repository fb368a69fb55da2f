//! rmqstream: a RabbitMQ Streams client with a C ABI.
//!
//! Layers, each using only the ones before it: [`protocol`] is the codec (no I/O); [`client`]
//! the async client on Tokio (no C); [`ffi`] the `extern "C"` surface.
//!
//! [`ffi`] is more than argument checks today. Besides checking every pointer and argument,
//! guarding every call against panics and converting errors to statuses, it holds behaviour
//! that Rust users of [`client`] do not get: the dispatcher threads that run callbacks and the
//! event queue (C callbacks and C events; the C key extractor is a client
//! [`client::KeyExtractor`]). What the configuration keys mean, their checks and
//! defaults ([`client::config`]), closing an environment's producers before its consumers
//! ([`client::Environment::close_within`]), and lazy connect, a Tokio runtime per environment
//! and the rules for blocking on library threads ([`client::blocking`]) are the client's.

pub mod client;
pub mod ffi;
pub mod protocol;
