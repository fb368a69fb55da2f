//! The async client on Tokio: connections, management, producers and consumers.
//!
//! Knows no C: the FFI layer (`crate::ffi`) wraps it.

pub mod blocking;
pub mod config;
pub mod connection;
pub mod consumer;
pub mod dispatch;
pub mod environment;
pub mod error;
pub mod log;
mod partitions;
pub mod producer;
pub mod recovery;
pub mod super_consumer;
pub mod super_producer;
pub mod transport;

pub use crate::protocol::amqp::{HeaderField, MessageBuilder, PropertyField};
pub use config::{
    ConfigError, ConnectionConfig, Endpoint, SaslMechanism, Scope, Settings, TlsConfig,
};
pub use connection::{
    Connection, PublisherListener, ServerInfo, SubscriptionListener, Traffic, TrafficCounters,
};
pub use consumer::{
    Consumer, ConsumerConfig, ConsumerEvents, ConsumerRecord, ConsumerStats, ConsumerUpdate,
    CreditPolicy, DeliveredChunk, PostFilter, TrackingContext, TrackingDecider, TrackingStrategy,
};
pub use environment::{Environment, EnvironmentStats, Role, StreamLocation, StreamStatistics};
pub use error::{ClientError, Result};
pub use log::{Level, Log, Logger};
pub use producer::{
    BodyFormat, Confirm, ConfirmStatus, OutgoingMessage, Producer, ProducerConfig, ProducerEvents,
    ProducerStats,
};
pub use recovery::{RecoveryPolicy, StateChange};
pub use super_consumer::{SuperConsumer, SuperConsumerConfig, SuperConsumerEvents};
pub use super_producer::{
    EnvironmentHandle, KeyExtractor, Routing, RoutingFn, SuperProducer, SuperProducerConfig,
    SuperProducerEvents,
};
