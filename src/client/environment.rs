//! The environment: a locator connection to one of the seed hosts for management and
//! metadata, and a pool of data connections per broker node for producers and consumers.
//!
//! It owns the [`Log`] its connections, producers and consumers log through, and the traffic
//! counters its connections share ([`Environment::stats`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::config::{ConnectionConfig, Endpoint};
use super::connection::{Connection, ServerInfo, TrafficCounters};
use super::error::{ClientError, Result};
use super::log::{Level, Log, log_at};
use crate::protocol::codes::{ResponseCode, key};
use crate::protocol::commands::{
    CreateStream, CreateSuperStream, DeleteStream, DeleteSuperStream, Frame, Metadata,
    MetadataResponse, Partitions, QueryOffset, QueryPublisherSequence, Route, StoreOffset,
    StreamStats,
};

/// Longest stream name, publisher reference or offset-tracking reference the broker accepts.
pub const MAX_NAME_LEN: usize = 255;

/// Checks a stream name or reference: non-empty, at most 255 bytes.
pub fn check_name(what: &str, name: &str) -> Result<()> {
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return Err(ClientError::InvalidArgument(format!(
            "{what} must be 1 to {MAX_NAME_LEN} bytes long, got {}",
            name.len()
        )));
    }
    Ok(())
}

/// Stream statistics (StreamStats, 3.11+). Ids are chunk ids (offsets of chunks' first
/// records); -1 when the stream is empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamStatistics {
    pub first_chunk_id: i64,
    pub committed_chunk_id: i64,
    /// Only brokers with osiris ≥ 1.4 report it; -1 otherwise.
    pub last_chunk_id: i64,
}

/// Where a stream lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamLocation {
    pub leader: Option<Endpoint>,
    pub replicas: Vec<Endpoint>,
}

/// Which member of a stream a data connection should reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Producers write to the leader.
    Leader,
    /// Consumers prefer a replica and fall back to the leader.
    Consumer,
}

/// Counters of an environment, read with [`Environment::stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EnvironmentStats {
    /// Frames received over all its connections (handshakes and heartbeats included).
    pub frames_in: u64,
    /// Frames sent over all its connections.
    pub frames_out: u64,
    /// Bytes received over all its connections.
    pub bytes_in: u64,
    /// Bytes sent over all its connections.
    pub bytes_out: u64,
    /// Connections opened (handshake done) since the environment was created, locator
    /// connections included.
    pub connections_opened: u64,
    /// Data connections (for producers and consumers) open now.
    pub data_connections: u64,
    /// Times the locator connection was reopened after it was lost.
    pub reconnects: u64,
}

/// Connections to a broker or cluster. Cheap to clone: clones share the connections.
/// Producers and consumers keep a weak reference to recover through; once the environment is
/// closed (or its last clone dropped) they recover no more.
#[derive(Clone)]
pub struct Environment {
    shared: Arc<EnvShared>,
}

/// What the clones of an [`Environment`] share.
pub struct EnvShared {
    config: ConnectionConfig,
    locator: tokio::sync::Mutex<Option<Connection>>,
    pool: Mutex<Vec<Connection>>,
    log: Log,
    counters: Arc<TrafficCounters>,
    reconnects: AtomicU64,
    closed: std::sync::atomic::AtomicBool,
}

impl std::ops::Deref for Environment {
    type Target = EnvShared;
    fn deref(&self) -> &EnvShared {
        &self.shared
    }
}

/// A weak reference to an [`Environment`], held by producers and consumers for recovery.
#[derive(Clone)]
pub(crate) struct WeakEnvironment(std::sync::Weak<EnvShared>);

impl WeakEnvironment {
    /// The environment, unless it was closed or dropped.
    pub(crate) fn get(&self) -> Option<Environment> {
        self.0
            .upgrade()
            .filter(|s| !s.closed.load(Ordering::Acquire))
            .map(|shared| Environment { shared })
    }
}

impl Environment {
    /// Opens the locator connection to the first seed host that answers. Logs nothing; see
    /// [`connect_with`](Self::connect_with).
    pub async fn connect(config: ConnectionConfig) -> Result<Environment> {
        Self::connect_with(config, Log::off()).await
    }

    /// [`connect`](Self::connect) with a logger for the environment, its connections and the
    /// producers and consumers created from it.
    pub async fn connect_with(config: ConnectionConfig, log: Log) -> Result<Environment> {
        config.validate()?;
        let env = Environment {
            shared: Arc::new(EnvShared {
                config,
                locator: tokio::sync::Mutex::new(None),
                pool: Mutex::new(Vec::new()),
                log,
                counters: Arc::default(),
                reconnects: AtomicU64::new(0),
                closed: std::sync::atomic::AtomicBool::new(false),
            }),
        };
        env.locator().await?;
        Ok(env)
    }

    /// A weak reference for recovery tasks.
    pub(crate) fn downgrade(&self) -> WeakEnvironment {
        WeakEnvironment(Arc::downgrade(&self.shared))
    }

    /// False once [`close`](Self::close) started.
    pub fn is_open(&self) -> bool {
        !self.closed.load(Ordering::Acquire)
    }

    fn check_open(&self) -> Result<()> {
        if self.is_open() {
            Ok(())
        } else {
            Err(ClientError::Closed("the environment is closed".into()))
        }
    }

    /// The configuration this environment was opened with.
    pub fn config(&self) -> &ConnectionConfig {
        &self.config
    }

    /// The environment's logger, for producers and consumers (targets `producer` and
    /// `consumer`): `log_at!(env.logger(), Level::Info, "producer", ...)`.
    pub fn logger(&self) -> &Log {
        &self.log
    }

    /// The environment's counters: traffic over all its connections, connections opened, data
    /// connections open now, locator reconnections. Any thread; never blocks for long (takes
    /// the pool's lock to count open data connections).
    pub fn stats(&self) -> EnvironmentStats {
        let t = self.counters.snapshot();
        let data = self
            .pool
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|c| c.is_open())
            .count() as u64;
        EnvironmentStats {
            frames_in: t.frames_in,
            frames_out: t.frames_out,
            bytes_in: t.bytes_in,
            bytes_out: t.bytes_out,
            connections_opened: t.connections_opened,
            data_connections: data,
            reconnects: self.reconnects.load(Ordering::Relaxed),
        }
    }

    async fn open_seed(&self) -> Result<Connection> {
        let mut last = None;
        for ep in &self.config.endpoints {
            match Connection::open_with(&self.config, ep, &self.log, &self.counters).await {
                Ok(c) => return Ok(c),
                // A wrong password or vhost will not get better on the next host.
                Err(e @ ClientError::Auth(_)) => return Err(e),
                Err(e) => last = Some(e),
            }
        }
        let e = last.unwrap_or_else(|| ClientError::InvalidArgument("no host configured".into()));
        log_at!(
            self.log,
            Level::Error,
            "environment",
            "no seed host answered ({} tried): {e}",
            self.config.endpoints.len()
        );
        Err(e)
    }

    /// The locator connection, reopened when it was lost.
    pub async fn locator(&self) -> Result<Connection> {
        self.check_open()?;
        let mut guard = self.locator.lock().await;
        if let Some(c) = guard.as_ref().filter(|c| c.is_open()) {
            return Ok(c.clone());
        }
        let lost = guard.as_ref().map(|c| c.close_reason());
        if let Some(reason) = &lost {
            log_at!(
                self.log,
                Level::Info,
                "environment",
                "reopening the locator connection (lost: {})",
                reason
                    .as_ref()
                    .map_or_else(|| "unknown".to_string(), |r| r.to_string())
            );
        }
        let c = self.open_seed().await?;
        if lost.is_some() {
            self.reconnects.fetch_add(1, Ordering::Relaxed);
        }
        *guard = Some(c.clone());
        Ok(c)
    }

    /// What the locator's broker said about itself.
    pub async fn server_info(&self) -> Result<ServerInfo> {
        Ok(self.locator().await?.info().clone())
    }

    /// Creates a stream with arguments (`max-length-bytes`, `max-age`, ...). Returns false when
    /// it already existed (whatever its arguments: the broker does not compare them).
    pub async fn create_stream(
        &self,
        stream: &str,
        arguments: &[(String, String)],
    ) -> Result<bool> {
        check_name("stream name", stream)?;
        let conn = self.locator().await?;
        let r = conn
            .request("create stream", |correlation_id| {
                Frame::CreateStream(CreateStream {
                    correlation_id,
                    stream: stream.into(),
                    arguments: arguments.to_vec(),
                })
            })
            .await?;
        match code_of(&r)? {
            ResponseCode::OK => Ok(true),
            ResponseCode::STREAM_ALREADY_EXISTS => Ok(false),
            code => Err(ClientError::Server {
                operation: "create stream",
                code,
            }),
        }
    }

    /// Deletes a stream.
    pub async fn delete_stream(&self, stream: &str) -> Result<()> {
        check_name("stream name", stream)?;
        let conn = self.locator().await?;
        let r = conn
            .request("delete stream", |correlation_id| {
                Frame::DeleteStream(DeleteStream {
                    correlation_id,
                    stream: stream.into(),
                })
            })
            .await?;
        ClientError::check("delete stream", code_of(&r)?)
    }

    /// Metadata of several streams at once.
    pub async fn metadata(&self, streams: &[String]) -> Result<MetadataResponse> {
        for s in streams {
            check_name("stream name", s)?;
        }
        let conn = self.locator().await?;
        match conn
            .request("metadata", |correlation_id| {
                Frame::Metadata(Metadata {
                    correlation_id,
                    streams: streams.to_vec(),
                })
            })
            .await?
        {
            Frame::MetadataResponse(m) => Ok(m),
            f => Err(unexpected("metadata", &f)),
        }
    }

    /// Leader and replicas of one stream.
    pub async fn locate(&self, stream: &str) -> Result<StreamLocation> {
        let m = self.metadata(&[stream.to_string()]).await?;
        let sm = m
            .streams
            .iter()
            .find(|s| s.stream == stream)
            .ok_or_else(|| ClientError::Protocol("metadata lacks the stream asked for".into()))?;
        ClientError::check("metadata", sm.code)?;
        let ep = |r: u16| {
            m.brokers
                .iter()
                .find(|b| b.reference == r)
                .map(|b| Endpoint {
                    host: b.host.clone(),
                    port: u16::try_from(b.port).unwrap_or(0),
                })
        };
        Ok(StreamLocation {
            leader: sm.leader.and_then(ep),
            replicas: sm.replicas.iter().filter_map(|r| ep(*r)).collect(),
        })
    }

    /// True when the stream exists (and is visible to this user).
    pub async fn stream_exists(&self, stream: &str) -> Result<bool> {
        match self.locate(stream).await {
            Ok(_) => Ok(true),
            Err(ClientError::Server {
                code: ResponseCode::STREAM_DOES_NOT_EXIST,
                ..
            }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// First, committed and last chunk ids of a stream (RabbitMQ 3.11+).
    pub async fn stream_stats(&self, stream: &str) -> Result<StreamStatistics> {
        check_name("stream name", stream)?;
        let conn = self.locator().await?;
        conn.info()
            .require(key::STREAM_STATS, 1, "stream statistics", "3.11")?;
        match conn
            .request("stream stats", |correlation_id| {
                Frame::StreamStats(StreamStats {
                    correlation_id,
                    stream: stream.into(),
                })
            })
            .await?
        {
            Frame::StreamStatsResponse(r) => {
                ClientError::check("stream stats", r.code)?;
                let get = |k: &str| r.stats.iter().find(|(n, _)| n == k).map_or(-1, |(_, v)| *v);
                Ok(StreamStatistics {
                    first_chunk_id: get("first_chunk_id"),
                    committed_chunk_id: get("committed_chunk_id"),
                    last_chunk_id: get("last_chunk_id"),
                })
            }
            f => Err(unexpected("stream stats", &f)),
        }
    }

    /// The offset stored under `reference` for `stream`, `None` when nothing is stored.
    pub async fn query_offset(&self, reference: &str, stream: &str) -> Result<Option<u64>> {
        check_name("reference", reference)?;
        check_name("stream name", stream)?;
        let conn = self.locator().await?;
        match conn
            .request("query offset", |correlation_id| {
                Frame::QueryOffset(QueryOffset {
                    correlation_id,
                    reference: reference.into(),
                    stream: stream.into(),
                })
            })
            .await?
        {
            Frame::QueryOffsetResponse(r) => match r.code {
                ResponseCode::OK => Ok(Some(r.offset)),
                ResponseCode::NO_OFFSET => Ok(None),
                code => Err(ClientError::Server {
                    operation: "query offset",
                    code,
                }),
            },
            f => Err(unexpected("query offset", &f)),
        }
    }

    /// Stores `offset` under `reference` (fire and forget: the broker does not answer).
    pub async fn store_offset(&self, reference: &str, stream: &str, offset: u64) -> Result<()> {
        check_name("reference", reference)?;
        check_name("stream name", stream)?;
        self.locator()
            .await?
            .send_frame(&Frame::StoreOffset(StoreOffset {
                reference: reference.into(),
                stream: stream.into(),
                offset,
            }))
    }

    /// The last publishing id the broker kept for a named producer (0 when unknown).
    pub async fn query_publisher_sequence(&self, reference: &str, stream: &str) -> Result<u64> {
        check_name("producer name", reference)?;
        check_name("stream name", stream)?;
        let conn = self.locator().await?;
        query_publisher_sequence(&conn, reference, stream).await
    }

    /// Partitions of a super stream, in routing order.
    pub async fn partitions(&self, super_stream: &str) -> Result<Vec<String>> {
        check_name("super stream name", super_stream)?;
        let conn = self.locator().await?;
        match conn
            .request("partitions", |correlation_id| {
                Frame::Partitions(Partitions {
                    correlation_id,
                    super_stream: super_stream.into(),
                })
            })
            .await?
        {
            Frame::PartitionsResponse(r) => {
                ClientError::check("partitions", r.code)?;
                Ok(r.streams)
            }
            f => Err(unexpected("partitions", &f)),
        }
    }

    /// Streams a routing key is bound to in a super stream (may be empty).
    pub async fn route(&self, routing_key: &str, super_stream: &str) -> Result<Vec<String>> {
        check_name("super stream name", super_stream)?;
        let conn = self.locator().await?;
        match conn
            .request("route", |correlation_id| {
                Frame::Route(Route {
                    correlation_id,
                    routing_key: routing_key.into(),
                    super_stream: super_stream.into(),
                })
            })
            .await?
        {
            Frame::RouteResponse(r) => {
                ClientError::check("route", r.code)?;
                Ok(r.streams)
            }
            f => Err(unexpected("route", &f)),
        }
    }

    /// Creates a super stream with explicit partitions and binding keys (RabbitMQ 3.13+).
    pub async fn create_super_stream(
        &self,
        name: &str,
        partitions: &[String],
        binding_keys: &[String],
        arguments: &[(String, String)],
    ) -> Result<()> {
        check_name("super stream name", name)?;
        for p in partitions {
            check_name("partition name", p)?;
        }
        if partitions.is_empty() || partitions.len() != binding_keys.len() {
            return Err(ClientError::InvalidArgument(
                "a super stream needs one binding key per partition and at least one partition"
                    .into(),
            ));
        }
        let conn = self.locator().await?;
        conn.info()
            .require(key::CREATE_SUPER_STREAM, 1, "super stream creation", "3.13")?;
        let r = conn
            .request("create super stream", |correlation_id| {
                Frame::CreateSuperStream(CreateSuperStream {
                    correlation_id,
                    name: name.into(),
                    partitions: partitions.to_vec(),
                    binding_keys: binding_keys.to_vec(),
                    arguments: arguments.to_vec(),
                })
            })
            .await?;
        ClientError::check("create super stream", code_of(&r)?)
    }

    /// Deletes a super stream and its partitions (RabbitMQ 3.13+).
    pub async fn delete_super_stream(&self, name: &str) -> Result<()> {
        check_name("super stream name", name)?;
        let conn = self.locator().await?;
        conn.info()
            .require(key::DELETE_SUPER_STREAM, 1, "super stream deletion", "3.13")?;
        let r = conn
            .request("delete super stream", |correlation_id| {
                Frame::DeleteSuperStream(DeleteSuperStream {
                    correlation_id,
                    name: name.into(),
                })
            })
            .await?;
        ClientError::check("delete super stream", code_of(&r)?)
    }

    /// A data connection to the right member of `stream` with room for one more producer or
    /// consumer: an open pooled one when there is one, else a new one.
    pub async fn data_connection(&self, stream: &str, role: Role) -> Result<Connection> {
        self.check_open()?;
        let loc = self.locate(stream).await?;
        let mut candidates: Vec<Endpoint> = match role {
            Role::Leader => loc.leader.into_iter().collect(),
            Role::Consumer => {
                let mut c = loc.replicas.clone();
                c.extend(loc.leader);
                c
            }
        };
        if candidates.is_empty() {
            return Err(ClientError::Server {
                operation: "locate stream leader",
                code: ResponseCode::STREAM_NOT_AVAILABLE,
            });
        }
        candidates.dedup();
        let has_room = |c: &Connection| {
            let (p, s) = c.load();
            match role {
                Role::Leader => p < self.config.max_producers_per_connection,
                Role::Consumer => s < self.config.max_consumers_per_connection,
            }
        };
        {
            let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
            pool.retain(Connection::is_open);
            for ep in &candidates {
                if let Some(c) = pool.iter().find(|c| self.reaches(c, ep) && has_room(c)) {
                    return Ok(c.clone());
                }
            }
        }
        let target = &candidates[0];
        let conn = self.open_to(target).await?;
        log_at!(
            self.log,
            Level::Debug,
            "environment",
            "new data connection to {}:{} for {} on stream {stream:?}",
            target.host,
            target.port,
            match role {
                Role::Leader => "a producer",
                Role::Consumer => "a consumer",
            }
        );
        self.pool
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(conn.clone());
        Ok(conn)
    }

    /// True when `c` is connected to the node advertised as `ep`.
    fn reaches(&self, c: &Connection, ep: &Endpoint) -> bool {
        let i = c.info();
        (i.advertised_host == ep.host && i.advertised_port == ep.port) || c.endpoint() == ep
    }

    /// Opens a connection to the node advertised as `ep`. Directly by default; in
    /// load-balancer mode through the seed hosts until the advertised address matches.
    async fn open_to(&self, ep: &Endpoint) -> Result<Connection> {
        if !self.config.load_balancer_mode {
            return Connection::open_with(&self.config, ep, &self.log, &self.counters).await;
        }
        const ATTEMPTS: usize = 10;
        for _ in 0..ATTEMPTS {
            let c = self.open_seed().await?;
            if self.reaches(&c, ep) {
                return Ok(c);
            }
            log_at!(
                self.log,
                Level::Debug,
                "environment",
                "load balancer led to {}:{} instead of {}:{}; trying again",
                c.info().advertised_host,
                c.info().advertised_port,
                ep.host,
                ep.port
            );
            let _ = c.close().await;
        }
        Err(ClientError::Io(format!(
            "load balancer never led to {}:{} in {ATTEMPTS} attempts",
            ep.host, ep.port
        )))
    }

    /// Closes every connection. Producers and consumers still open lose their connection and
    /// do not recover.
    pub async fn close(&self) {
        self.closed.store(true, Ordering::Release);
        let pooled: Vec<Connection> =
            std::mem::take(&mut *self.pool.lock().unwrap_or_else(|e| e.into_inner()));
        log_at!(
            self.log,
            Level::Debug,
            "environment",
            "closing the environment ({} data connection(s))",
            pooled.len()
        );
        for c in pooled {
            let _ = c.close().await;
        }
        if let Some(c) = self.locator.lock().await.take() {
            let _ = c.close().await;
        }
    }
}

/// QueryPublisherSequence on a given connection.
pub(crate) async fn query_publisher_sequence(
    conn: &Connection,
    reference: &str,
    stream: &str,
) -> Result<u64> {
    match conn
        .request("query publisher sequence", |correlation_id| {
            Frame::QueryPublisherSequence(QueryPublisherSequence {
                correlation_id,
                publisher_reference: reference.into(),
                stream: stream.into(),
            })
        })
        .await?
    {
        Frame::QueryPublisherSequenceResponse(r) => {
            ClientError::check("query publisher sequence", r.code)?;
            Ok(r.sequence)
        }
        f => Err(unexpected("query publisher sequence", &f)),
    }
}

/// The code of a response that carries only a code.
pub(crate) fn code_of(f: &Frame) -> Result<ResponseCode> {
    match f {
        Frame::CreateStreamResponse(r)
        | Frame::DeleteStreamResponse(r)
        | Frame::DeclarePublisherResponse(r)
        | Frame::DeletePublisherResponse(r)
        | Frame::SubscribeResponse(r)
        | Frame::UnsubscribeResponse(r)
        | Frame::CreateSuperStreamResponse(r)
        | Frame::DeleteSuperStreamResponse(r)
        | Frame::CloseResponse(r) => Ok(r.code),
        f => Err(unexpected("a request", f)),
    }
}

pub(crate) fn unexpected(what: &str, f: &Frame) -> ClientError {
    ClientError::Protocol(format!(
        "unexpected answer to {what}: key 0x{:04x}",
        f.key()
    ))
}
