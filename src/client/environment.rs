//! The environment: a locator connection to one of the seed hosts for management and
//! metadata, and a pool of data connections per broker node, producers and consumers apart.
//!
//! It owns the [`Log`] its connections, producers and consumers log through, and the traffic
//! counters its connections share ([`Environment::stats`]).
//!
//! # Placement on a cluster
//!
//! - Producers connect to the stream's leader. While the leader is unknown (a node just went
//!   down and the stream is electing one), [`Environment::data_connection`] asks for the
//!   metadata again with a short backoff, for up to [`LEADER_WAIT`].
//! - Consumers connect to a replica, the one with the fewest of this environment's consumers
//!   (ties go round-robin), and never share a connection to the leader while a replica is
//!   reachable. A replica that refuses the connection is skipped for the next one, then the
//!   leader; for [`UNREACHABLE_FOR`] afterwards it is tried after the others.
//! - Management calls go through the locator connection. When that connection is lost under
//!   a call (an I/O error or a closed connection, never a response code or a timeout), the
//!   locator is reopened on the next seed host and the call is made once more.
//! - In load-balancer mode the seed hosts lead anywhere: a connection is opened through them
//!   until the node it reaches advertises the wanted host and port, at most
//!   [`LOAD_BALANCER_ATTEMPTS`] times per node.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use super::config::{ConnectionConfig, Endpoint};
use super::connection::{Connection, ServerInfo, TrafficCounters, unexpected};
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

/// How long [`Environment::data_connection`] keeps asking for the metadata while a stream has
/// no leader (or no reachable member) before it fails with `STREAM_NOT_AVAILABLE`.
pub const LEADER_WAIT: Duration = Duration::from_secs(10);

/// Connections opened through the seed hosts, in load-balancer mode, to reach one node before
/// giving up on it.
pub const LOAD_BALANCER_ATTEMPTS: usize = 20;

/// How long a node that refused a data connection is tried after the other candidates.
pub const UNREACHABLE_FOR: Duration = Duration::from_secs(10);

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
    /// Consumers read from a replica, spread over the replicas, and fall back to another
    /// replica, then to the leader.
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

/// Something an environment closes when it closes: a producer or consumer made from it, or an
/// object wrapping one (the C layer's handles), handed over with [`Environment::adopt`].
pub trait Child: Send + Sync {
    /// Closes the object because its environment closes; `timeout` bounds the wait (None = no
    /// limit). Closing an object already closed does nothing.
    fn close_for_environment(
        &self,
        timeout: Option<Duration>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>>;
    /// Producers close (and wait for their confirms) before consumers.
    fn is_producer(&self) -> bool;
}

/// What the clones of an [`Environment`] share.
pub struct EnvShared {
    config: ConnectionConfig,
    locator: tokio::sync::Mutex<Option<Connection>>,
    /// Data connections, each with the role it serves: producers and consumers never share
    /// one (see [`Environment::data_connection`]).
    pool: Mutex<Vec<(Role, Connection)>>,
    log: Log,
    counters: Arc<TrafficCounters>,
    reconnects: AtomicU64,
    /// The seed host tried first when the locator is (re)opened.
    next_seed: AtomicUsize,
    /// Nodes that refused a data connection lately, and when.
    unreachable: Mutex<HashMap<Endpoint, Instant>>,
    /// Round-robin among equally loaded replicas.
    spread: AtomicUsize,
    closed: std::sync::atomic::AtomicBool,
    /// What [`close_within`](Environment::close_within) closes first.
    children: Mutex<Vec<std::sync::Weak<dyn Child>>>,
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

/// True for the errors that mean "this connection or node is gone" (a retry elsewhere may
/// work), as opposed to an answer of the broker, a timeout or a local mistake.
fn connection_lost(e: &ClientError) -> bool {
    matches!(e, ClientError::Io(_) | ClientError::Closed(_))
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
                next_seed: AtomicUsize::new(0),
                unreachable: Mutex::new(HashMap::new()),
                spread: AtomicUsize::new(0),
                closed: std::sync::atomic::AtomicBool::new(false),
                children: Mutex::new(Vec::new()),
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
            .filter(|(_, c)| c.is_open())
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

    /// A connection to the first seed host that answers, starting at `next_seed`.
    async fn open_seed(&self) -> Result<Connection> {
        let mut last = None;
        let seeds = &self.config.endpoints;
        let first = self.next_seed.load(Ordering::Relaxed);
        for i in (0..seeds.len()).map(|i| (first + i) % seeds.len()) {
            match Connection::open_with(&self.config, &seeds[i], &self.log, &self.counters).await {
                Ok(c) => {
                    self.next_seed.store(i, Ordering::Relaxed);
                    return Ok(c);
                }
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

    /// The locator connection, reopened when it was lost (starting at the seed host after the
    /// lost one).
    pub async fn locator(&self) -> Result<Connection> {
        self.check_open()?;
        let mut guard = self.locator.lock().await;
        if let Some(c) = guard.as_ref().filter(|c| c.is_open()) {
            return Ok(c.clone());
        }
        let lost = guard.as_ref().map(|c| c.close_reason());
        if let Some(c) = guard.as_ref() {
            self.skip_seed(c.endpoint());
        }
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

    /// Forgets the locator connection `failed` (when it is still the current one) and makes the
    /// next seed host after its own the first one tried.
    async fn drop_locator(&self, failed: &Connection) {
        let mut guard = self.locator.lock().await;
        if guard.as_ref().is_some_and(|c| c.same_as(failed)) {
            if let Some(c) = guard.take() {
                // Usually dead already; closing must not hold the next call up.
                tokio::spawn(async move {
                    let _ = c.close().await;
                });
            }
            self.skip_seed(failed.endpoint());
            self.reconnects.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Makes the seed host after `lost` the first one the locator tries next.
    fn skip_seed(&self, lost: &Endpoint) {
        let seeds = &self.config.endpoints;
        if let Some(i) = seeds.iter().position(|e| e == lost) {
            self.next_seed
                .store((i + 1) % seeds.len(), Ordering::Relaxed);
        }
    }

    /// Runs a management call on the locator connection. When the connection is lost under it
    /// (I/O error or closed connection; not a response code, not a timeout, not a close by the
    /// application) the locator is reopened on the next seed host and the call is made once
    /// more, with `retried` true. When no seed host can be reached then (each bounded by the
    /// connect timeout), the call fails with the error that lost the first connection.
    async fn with_locator<T, F>(
        &self,
        operation: &str,
        mut call: impl FnMut(Connection, bool) -> F,
    ) -> Result<T>
    where
        F: Future<Output = Result<T>>,
    {
        let conn = self.locator().await?;
        match call(conn.clone(), false).await {
            Err(e) if connection_lost(&e) && !conn.closed_by_application() => {
                log_at!(
                    self.log,
                    Level::Warn,
                    "environment",
                    "{operation}: the locator connection to {}:{} was lost ({e}); \
                     trying once more on the next seed host",
                    conn.endpoint().host,
                    conn.endpoint().port
                );
                self.drop_locator(&conn).await;
                match self.locator().await {
                    Ok(conn) => call(conn, true).await,
                    // The loss says more than the failure to reconnect (logged by locator()).
                    Err(_) => Err(e),
                }
            }
            r => r,
        }
    }

    /// What the locator's broker said about itself.
    pub async fn server_info(&self) -> Result<ServerInfo> {
        Ok(self.locator().await?.info().clone())
    }

    /// Creates a stream with arguments (`max-length-bytes`, `max-age`, ...). Returns false when
    /// it already existed (whatever its arguments: the broker does not compare them).
    ///
    /// When the locator connection is lost under the call, it is made once more on another
    /// seed host. The lost attempt may have created the stream: if the second one finds it,
    /// the result is true (created), as the likeliest creator is the lost attempt. A stream
    /// created by someone else in the same moment is indistinguishable and also reported as
    /// created.
    pub async fn create_stream(
        &self,
        stream: &str,
        arguments: &[(String, String)],
    ) -> Result<bool> {
        check_name("stream name", stream)?;
        self.with_locator("create stream", |conn, retried| async move {
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
                ResponseCode::STREAM_ALREADY_EXISTS if retried => {
                    self.log_ambiguous("create stream", stream, "exists");
                    Ok(true)
                }
                ResponseCode::STREAM_ALREADY_EXISTS => Ok(false),
                code => Err(ClientError::Server {
                    operation: "create stream",
                    code,
                }),
            }
        })
        .await
    }

    fn log_ambiguous(&self, operation: &str, name: &str, state: &str) {
        log_at!(
            self.log,
            Level::Info,
            "environment",
            "{operation} {name:?}: after the lost connection the broker says it {state}: \
             counted as done by the attempt whose answer was lost"
        );
    }

    /// Deletes a stream.
    ///
    /// When the locator connection is lost under the call, it is made once more on another
    /// seed host; if that one finds no stream, the lost attempt deleted it and the result is
    /// OK.
    pub async fn delete_stream(&self, stream: &str) -> Result<()> {
        check_name("stream name", stream)?;
        self.with_locator("delete stream", |conn, retried| async move {
            let r = conn
                .request("delete stream", |correlation_id| {
                    Frame::DeleteStream(DeleteStream {
                        correlation_id,
                        stream: stream.into(),
                    })
                })
                .await?;
            match code_of(&r)? {
                ResponseCode::STREAM_DOES_NOT_EXIST if retried => {
                    self.log_ambiguous("delete stream", stream, "does not exist");
                    Ok(())
                }
                code => ClientError::check("delete stream", code),
            }
        })
        .await
    }

    /// Metadata of several streams at once.
    pub async fn metadata(&self, streams: &[String]) -> Result<MetadataResponse> {
        for s in streams {
            check_name("stream name", s)?;
        }
        self.with_locator("metadata", |conn, _| async move {
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
        })
        .await
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
        self.with_locator("stream stats", |conn, _| async move {
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
                    let get =
                        |k: &str| r.stats.iter().find(|(n, _)| n == k).map_or(-1, |(_, v)| *v);
                    Ok(StreamStatistics {
                        first_chunk_id: get("first_chunk_id"),
                        committed_chunk_id: get("committed_chunk_id"),
                        last_chunk_id: get("last_chunk_id"),
                    })
                }
                f => Err(unexpected("stream stats", &f)),
            }
        })
        .await
    }

    /// The offset stored under `reference` for `stream`, `None` when nothing is stored.
    pub async fn query_offset(&self, reference: &str, stream: &str) -> Result<Option<u64>> {
        check_name("reference", reference)?;
        check_name("stream name", stream)?;
        self.with_locator("query offset", |conn, _| async move {
            query_offset(&conn, reference, stream).await
        })
        .await
    }

    /// Stores `offset` under `reference` (fire and forget: the broker does not answer).
    pub async fn store_offset(&self, reference: &str, stream: &str, offset: u64) -> Result<()> {
        check_name("reference", reference)?;
        check_name("stream name", stream)?;
        self.with_locator("store offset", |conn, _| async move {
            conn.send_frame(&Frame::StoreOffset(StoreOffset {
                reference: reference.into(),
                stream: stream.into(),
                offset,
            }))
        })
        .await
    }

    /// The last publishing id the broker kept for a named producer (0 when unknown).
    pub async fn query_publisher_sequence(&self, reference: &str, stream: &str) -> Result<u64> {
        check_name("producer name", reference)?;
        check_name("stream name", stream)?;
        self.with_locator("query publisher sequence", |conn, _| async move {
            query_publisher_sequence(&conn, reference, stream).await
        })
        .await
    }

    /// Partitions of a super stream, in routing order.
    pub async fn partitions(&self, super_stream: &str) -> Result<Vec<String>> {
        check_name("super stream name", super_stream)?;
        self.with_locator("partitions", |conn, _| async move {
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
        })
        .await
    }

    /// Streams a routing key is bound to in a super stream (may be empty).
    pub async fn route(&self, routing_key: &str, super_stream: &str) -> Result<Vec<String>> {
        check_name("super stream name", super_stream)?;
        self.with_locator("route", |conn, _| async move {
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
        })
        .await
    }

    /// Creates a super stream with explicit partitions and binding keys (RabbitMQ 3.13+).
    ///
    /// Retried once on another seed host when the locator connection is lost under it, as
    /// [`create_stream`](Self::create_stream): `STREAM_ALREADY_EXISTS` from the second attempt
    /// counts as created by the first.
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
        self.with_locator("create super stream", |conn, retried| async move {
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
            match code_of(&r)? {
                ResponseCode::STREAM_ALREADY_EXISTS if retried => {
                    self.log_ambiguous("create super stream", name, "exists");
                    Ok(())
                }
                code => ClientError::check("create super stream", code),
            }
        })
        .await
    }

    /// Deletes a super stream and its partitions (RabbitMQ 3.13+).
    ///
    /// Retried once on another seed host when the locator connection is lost under it, as
    /// [`delete_stream`](Self::delete_stream).
    pub async fn delete_super_stream(&self, name: &str) -> Result<()> {
        check_name("super stream name", name)?;
        self.with_locator("delete super stream", |conn, retried| async move {
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
            match code_of(&r)? {
                ResponseCode::STREAM_DOES_NOT_EXIST if retried => {
                    self.log_ambiguous("delete super stream", name, "does not exist");
                    Ok(())
                }
                code => ClientError::check("delete super stream", code),
            }
        })
        .await
    }

    /// A data connection to the right member of `stream` with room for one more producer or
    /// consumer: an open pooled one when there is one, else a new one. Producers and consumers
    /// get separate connections, even to the same node: the broker serves each connection
    /// with one process, and a consumer that has caught up makes it pause (RabbitMQ's stream
    /// reader sleeps 1 ms each time it finds no next chunk while the consumer has credit),
    /// which delayed the confirms of producers on the same connection by tens of
    /// milliseconds (at 50k msg/s, 100 B: confirm p50 17 ms shared, 1.9 ms apart).
    ///
    /// - [`Role::Leader`]: the leader. While the metadata names no leader, says
    ///   `STREAM_NOT_AVAILABLE`, or the leader refuses connections (it just went down), the
    ///   metadata is asked again with a backoff (100 ms doubling to 1 s) for up to
    ///   [`LEADER_WAIT`]; then `STREAM_NOT_AVAILABLE` (or the last connection error).
    /// - [`Role::Consumer`]: a replica, the one with the fewest of this environment's
    ///   consumers (ties round-robin); another replica when it refuses the connection, the
    ///   leader when none can be reached. Never the leader while a replica can be reached.
    ///   Waits for the metadata as above when no member can be reached at all.
    ///
    /// `STREAM_DOES_NOT_EXIST` and other answers of the broker fail at once.
    pub async fn data_connection(&self, stream: &str, role: Role) -> Result<Connection> {
        self.check_open()?;
        let deadline = Instant::now() + LEADER_WAIT;
        let mut delay = Duration::from_millis(100);
        loop {
            let e = match self.try_data_connection(stream, role).await {
                Ok(c) => return Ok(c),
                Err(e) => e,
            };
            let waitable = connection_lost(&e)
                || matches!(
                    e,
                    ClientError::Server {
                        code: ResponseCode::STREAM_NOT_AVAILABLE,
                        ..
                    }
                );
            if !waitable || Instant::now() + delay > deadline {
                return Err(e);
            }
            log_at!(
                self.log,
                Level::Info,
                "environment",
                "stream {stream:?}: no {} to connect to yet ({e}); asking again in {} ms",
                match role {
                    Role::Leader => "leader",
                    Role::Consumer => "member",
                },
                delay.as_millis()
            );
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(1));
        }
    }

    /// One attempt of [`data_connection`](Self::data_connection) on fresh metadata.
    async fn try_data_connection(&self, stream: &str, role: Role) -> Result<Connection> {
        let loc = self.locate(stream).await?;
        let no_member = || ClientError::Server {
            operation: "locate stream leader",
            code: ResponseCode::STREAM_NOT_AVAILABLE,
        };
        let candidates = match role {
            Role::Leader => vec![loc.leader.clone().ok_or_else(no_member)?],
            Role::Consumer => self.consumer_candidates(&loc),
        };
        if candidates.is_empty() {
            return Err(no_member());
        }
        let mut last = None;
        for (i, ep) in candidates.iter().enumerate() {
            if let Some(c) = self.pooled(ep, role) {
                return Ok(c);
            }
            match self.open_to(ep).await {
                Ok(conn) => {
                    self.unreachable_map().remove(ep);
                    log_at!(
                        self.log,
                        Level::Debug,
                        "environment",
                        "new data connection to {}:{} for {} on stream {stream:?}",
                        ep.host,
                        ep.port,
                        match (role, Some(ep) == loc.leader.as_ref()) {
                            (Role::Leader, _) => "a producer (leader)",
                            (Role::Consumer, false) => "a consumer (replica)",
                            (Role::Consumer, true) => "a consumer (leader)",
                        }
                    );
                    self.pool_lock().push((role, conn.clone()));
                    return Ok(conn);
                }
                Err(e) if connection_lost(&e) => {
                    self.unreachable_map().insert(ep.clone(), Instant::now());
                    if let Some(next) = candidates.get(i + 1) {
                        log_at!(
                            self.log,
                            Level::Warn,
                            "environment",
                            "stream {stream:?}: {}:{} cannot be reached ({e}); trying {}:{}{}",
                            ep.host,
                            ep.port,
                            next.host,
                            next.port,
                            if Some(next) == loc.leader.as_ref() {
                                " (the leader)"
                            } else {
                                ""
                            }
                        );
                    }
                    last = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(no_member))
    }

    /// The members a consumer may use, in order: the replicas (reachable lately first, then
    /// the fewest consumers of this environment, ties round-robin), then the leader.
    fn consumer_candidates(&self, loc: &StreamLocation) -> Vec<Endpoint> {
        let mut replicas: Vec<Endpoint> = Vec::new();
        for r in &loc.replicas {
            if Some(r) != loc.leader.as_ref() && !replicas.contains(r) {
                replicas.push(r.clone());
            }
        }
        if !replicas.is_empty() {
            let turn = self.spread.fetch_add(1, Ordering::Relaxed) % replicas.len();
            replicas.rotate_left(turn);
            let pool = self.pool_lock();
            let now = Instant::now();
            let mut unreachable = self.unreachable_map();
            unreachable.retain(|_, at| now.duration_since(*at) < UNREACHABLE_FOR);
            // Stable: equal keys keep the rotated order.
            replicas.sort_by_key(|ep| {
                let consumers: usize = pool
                    .iter()
                    .filter(|(_, c)| c.is_open() && self.reaches(c, ep))
                    .map(|(_, c)| c.load().1)
                    .sum();
                (unreachable.contains_key(ep), consumers)
            });
        }
        replicas.extend(loc.leader.clone());
        replicas
    }

    /// An open pooled connection of `role` to `ep` with room for one more.
    fn pooled(&self, ep: &Endpoint, role: Role) -> Option<Connection> {
        let mut pool = self.pool_lock();
        pool.retain(|(_, c)| c.is_open());
        pool.iter()
            .find(|(r, c)| {
                let (p, s) = c.load();
                *r == role
                    && self.reaches(c, ep)
                    && match role {
                        Role::Leader => p < self.config.max_producers_per_connection,
                        Role::Consumer => s < self.config.max_consumers_per_connection,
                    }
            })
            .map(|(_, c)| c.clone())
    }

    fn pool_lock(&self) -> std::sync::MutexGuard<'_, Vec<(Role, Connection)>> {
        self.pool.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn unreachable_map(&self) -> std::sync::MutexGuard<'_, HashMap<Endpoint, Instant>> {
        self.unreachable.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// True when `c` is connected to the node advertised as `ep`.
    fn reaches(&self, c: &Connection, ep: &Endpoint) -> bool {
        let i = c.info();
        (i.advertised_host == ep.host && i.advertised_port == ep.port) || c.endpoint() == ep
    }

    /// Opens a connection to the node advertised as `ep`. Directly by default; in
    /// load-balancer mode through the seed hosts until the advertised address matches, at most
    /// [`LOAD_BALANCER_ATTEMPTS`] times (a connection that fails counts as an attempt).
    async fn open_to(&self, ep: &Endpoint) -> Result<Connection> {
        if !self.config.load_balancer_mode {
            return Connection::open_with(&self.config, ep, &self.log, &self.counters).await;
        }
        let mut reached: Vec<String> = Vec::new();
        let mut last_error = None;
        for _ in 0..LOAD_BALANCER_ATTEMPTS {
            let c = match self.open_seed().await {
                Ok(c) => c,
                Err(e) if connection_lost(&e) => {
                    last_error = Some(e);
                    continue;
                }
                Err(e) => return Err(e),
            };
            if self.reaches(&c, ep) {
                return Ok(c);
            }
            let at = format!("{}:{}", c.info().advertised_host, c.info().advertised_port);
            log_at!(
                self.log,
                Level::Debug,
                "environment",
                "load balancer led to {at} instead of {}:{}; trying again",
                ep.host,
                ep.port
            );
            if !reached.contains(&at) {
                reached.push(at);
            }
            let _ = c.close().await;
        }
        let seeds: Vec<String> = self
            .config
            .endpoints
            .iter()
            .map(|e| format!("{}:{}", e.host, e.port))
            .collect();
        Err(ClientError::Io(format!(
            "load balancer mode: {LOAD_BALANCER_ATTEMPTS} connections through {} never reached \
             {}:{} (they reached: {}; last connection error: {})",
            seeds.join(","),
            ep.host,
            ep.port,
            if reached.is_empty() {
                "no node".to_string()
            } else {
                reached.join(", ")
            },
            last_error.map_or_else(|| "none".to_string(), |e| e.to_string())
        )))
    }

    /// Hands `child` to the environment: [`close_within`](Self::close_within) closes it, in
    /// order (producers before consumers), unless it is gone by then. Holds it weakly. The
    /// client's [`Producer`](super::Producer), [`Consumer`](super::Consumer) and super ones
    /// are children: `env.adopt(&Arc::new(producer))`.
    pub fn adopt<C: Child + 'static>(&self, child: &Arc<C>) {
        let weak: std::sync::Weak<dyn Child> = Arc::downgrade(child) as std::sync::Weak<C>;
        let mut c = self.children.lock().unwrap_or_else(|e| e.into_inner());
        c.retain(|w| w.strong_count() > 0);
        c.push(weak);
    }

    /// Closes what the environment owns, then its connections, within `timeout` overall (None
    /// = no limit): the adopted producers first, together, each waiting for its confirms; then
    /// the adopted consumers, together; then the connections (given at least 100 ms). Only the
    /// first call closes the children; every call closes the connections.
    pub async fn close_within(&self, timeout: Option<Duration>) {
        let children: Vec<Arc<dyn Child>> =
            std::mem::take(&mut *self.children.lock().unwrap_or_else(|e| e.into_inner()))
                .into_iter()
                .filter_map(|w| w.upgrade())
                .collect();
        let deadline = timeout.map(|t| Instant::now() + t);
        let left = || deadline.map(|d| d.saturating_duration_since(Instant::now()));
        for producers in [true, false] {
            let mut closing = tokio::task::JoinSet::new();
            for c in children.iter().filter(|c| c.is_producer() == producers) {
                let (c, t) = (c.clone(), left());
                closing.spawn(async move { c.close_for_environment(t).await });
            }
            while closing.join_next().await.is_some() {}
        }
        match left() {
            Some(t) => {
                let close = self.close_connections();
                let _ = tokio::time::timeout(t.max(Duration::from_millis(100)), close).await;
            }
            None => self.close_connections().await,
        }
    }

    /// [`close_within`](Self::close_within) without a deadline: the adopted producers (each
    /// waiting for its confirms), then the adopted consumers, then every connection. Producers
    /// and consumers not adopted lose their connection and do not recover.
    pub async fn close(&self) {
        self.close_within(None).await
    }

    async fn close_connections(&self) {
        self.closed.store(true, Ordering::Release);
        let pooled: Vec<(Role, Connection)> =
            std::mem::take(&mut *self.pool.lock().unwrap_or_else(|e| e.into_inner()));
        log_at!(
            self.log,
            Level::Debug,
            "environment",
            "closing the environment ({} data connection(s))",
            pooled.len()
        );
        for (_, c) in pooled {
            let _ = c.close().await;
        }
        if let Some(c) = self.locator.lock().await.take() {
            let _ = c.close().await;
        }
    }
}

/// Awaits `close` within `timeout` (None = no limit; at least 100 ms to tell the broker), then
/// gives [`ClientError::Timeout`].
pub(crate) async fn close_within(
    timeout: Option<Duration>,
    close: impl std::future::Future<Output = Result<()>>,
) -> Result<()> {
    match timeout {
        Some(t) => {
            let t = t.max(Duration::from_millis(100));
            tokio::time::timeout(t, close)
                .await
                .unwrap_or(Err(ClientError::Timeout(
                    t.as_millis() as u64,
                    "the broker",
                )))
        }
        None => close.await,
    }
}

/// The client's producers (which wait for their confirms within the deadline) and consumers
/// are children.
macro_rules! child {
    ($type:ty, $producer:literal, |$me:ident, $timeout:ident| $close:expr) => {
        impl Child for $type {
            fn close_for_environment(
                &self,
                $timeout: Option<Duration>,
            ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>> {
                let $me = self;
                Box::pin(async move {
                    let _ = $close.await;
                })
            }
            fn is_producer(&self) -> bool {
                $producer
            }
        }
    };
}

child!(super::Producer, true, |p, t| p
    .close(t.unwrap_or(Duration::MAX)));
child!(super::SuperProducer, true, |p, t| p
    .close(t.unwrap_or(Duration::MAX)));
child!(super::Consumer, false, |c, t| close_within(t, c.close()));
child!(super::SuperConsumer, false, |c, t| close_within(
    t,
    c.close()
));

/// QueryOffset on a given connection: `None` when nothing is stored.
pub(crate) async fn query_offset(
    conn: &Connection,
    reference: &str,
    stream: &str,
) -> Result<Option<u64>> {
    let answer = conn
        .request("query offset", |correlation_id| {
            Frame::QueryOffset(QueryOffset {
                correlation_id,
                reference: reference.into(),
                stream: stream.into(),
            })
        })
        .await?;
    match answer {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Compiles only while the management calls' futures can be spawned on a multi-thread
    /// runtime (an async closure in `with_locator` once made them `Send` for one lifetime
    /// only). Never run.
    #[allow(dead_code)]
    fn calls_can_be_spawned(env: Arc<Environment>) {
        let e = env.clone();
        tokio::spawn(async move { e.create_stream("s", &[]).await });
        let e = env.clone();
        tokio::spawn(async move { e.delete_stream("s").await });
        let e = env.clone();
        tokio::spawn(async move { e.stream_exists("s").await });
        let e = env.clone();
        tokio::spawn(async move { e.query_offset("r", "s").await });
        let e = env.clone();
        tokio::spawn(async move { e.store_offset("r", "s", 1).await });
        let e = env.clone();
        tokio::spawn(async move { e.query_publisher_sequence("r", "s").await });
        let e = env.clone();
        tokio::spawn(async move { e.stream_stats("s").await });
        let e = env.clone();
        tokio::spawn(async move { e.partitions("s").await });
        let e = env.clone();
        tokio::spawn(async move { e.route("k", "s").await });
        let e = env.clone();
        tokio::spawn(async move { e.create_super_stream("s", &[], &[], &[]).await });
        let e = env.clone();
        tokio::spawn(async move { e.delete_super_stream("s").await });
        tokio::spawn(async move { env.data_connection("s", Role::Consumer).await });
    }
}
