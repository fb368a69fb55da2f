//! The consumer: one subscription to a stream, delivering whole chunks as zero-copy views.
//!
//! ```text
//!  broker ──Deliver──▶ connection reader task ──▶ Listener::deliver
//!                        parse header in place, CRC, validate, skip records < start offset
//!                        └─▶ ConsumerEvents::chunk(DeliveredChunk)      (same task, in order)
//!  application drops / releases the DeliveredChunk ──▶ Credit(1) (CreditPolicy::OnRelease)
//! ```
//!
//! State is split so that recovery can re-attach: [`Consumer`] owns the consumer's lasting
//! state (`Shared`: configuration, events, statistics, last delivered offset), and the
//! connection plus subscription id live in a swappable `Attachment` that every delivered
//! chunk references for its credit. A connection holds only a weak link back to the
//! consumer, so dropping the consumer never leaks through the connection.
//!
//! Threads: every `ConsumerEvents` callback runs on the Tokio task of the connection's reader
//! (or of the task that closes the consumer, for `closed`), one at a time per consumer; the
//! application's callbacks must not block. [`Consumer`]'s methods may be called from any
//! thread; `credit` and `stats` never block.

mod credit;
mod delivered;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};

use bytes::{Bytes, BytesMut};

pub use credit::CreditPolicy;
pub use delivered::{ConsumerRecord, DeliveredChunk, Records};

use self::credit::Release;
use super::connection::{Connection, SubscriptionListener};
use super::environment::{Environment, Role, check_name, code_of, unexpected};
use super::error::{ClientError, Result};
use crate::protocol::chunk::DecodeLimits;
use crate::protocol::codes::{OffsetSpec, ResponseCode};
use crate::protocol::commands::{
    Credit, Deliver, Frame, QueryOffset, StoreOffset, Subscribe, Unsubscribe,
};

/// The broker reads credit as a signed 16-bit value.
pub const MAX_CREDIT: u16 = i16::MAX as u16;

/// How to subscribe. Build it with `..Default::default()` so that fields added later keep
/// your code compiling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerConfig {
    /// Subscription property `name`: the consumer's name in the management UI, and the
    /// reference under which [`Consumer::store_offset`] / [`Consumer::query_offset`] keep the
    /// offset (1 to 255 bytes). Default `None`.
    pub name: Option<String>,
    /// Where to start. Default [`OffsetSpec::Next`] (the Java client's default): only messages
    /// written after subscribing, so a new consumer never replays a whole stream by surprise.
    /// With `Offset(n)` the records of the first chunk that precede `n` are skipped
    /// client-side; `Last` starts at the beginning of the last chunk (broker semantics);
    /// `Timestamp(ms)` at the first chunk written at or after that time.
    pub offset: OffsetSpec,
    /// Chunks the broker may send before it needs more credit, 1 to 32767. Default 10 (Java,
    /// Go): enough to keep the pipe full, and with [`CreditPolicy::OnRelease`] the most chunks
    /// the application can hold at once.
    pub initial_credit: u16,
    /// When credit goes back to the broker. Default [`CreditPolicy::OnRelease`].
    pub credit_policy: CreditPolicy,
    /// Verify each chunk's CRC-32 before delivery. Default `true` (Java, Go): a mismatch is
    /// reported through [`ConsumerEvents::error`] and the chunk is not delivered (its credit
    /// still goes back). Costs one pass over the chunk's bytes at several GB/s.
    pub crc_check: bool,
    /// Extra subscription properties sent as they are (`filter.N`, `match-unfiltered`, ...).
    /// Must not repeat `name` when [`ConsumerConfig::name`] is set. Default empty.
    pub properties: Vec<(String, String)>,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        ConsumerConfig {
            name: None,
            offset: OffsetSpec::Next,
            initial_credit: 10,
            credit_policy: CreditPolicy::OnRelease,
            crc_check: true,
            properties: Vec::new(),
        }
    }
}

impl ConsumerConfig {
    /// Checks the values [`Consumer::new`] would reject.
    pub fn validate(&self) -> Result<()> {
        if let Some(name) = &self.name {
            check_name("consumer name", name)?;
            if self.properties.iter().any(|(k, _)| k == "name") {
                return Err(ClientError::InvalidArgument(
                    "the name is set both as `name` and in `properties`".into(),
                ));
            }
        }
        if !(1..=MAX_CREDIT).contains(&self.initial_credit) {
            return Err(ClientError::InvalidArgument(format!(
                "initial credit must be 1 to {MAX_CREDIT}, got {}",
                self.initial_credit
            )));
        }
        if self.properties.iter().any(|(k, _)| k.is_empty()) {
            return Err(ClientError::InvalidArgument(
                "subscription property with an empty key".into(),
            ));
        }
        Ok(())
    }

    /// The Subscribe properties: `name` first, then the extra ones.
    fn subscribe_properties(&self) -> Vec<(String, String)> {
        let mut p = Vec::with_capacity(self.properties.len() + 1);
        if let Some(name) = &self.name {
            p.push(("name".to_string(), name.clone()));
        }
        p.extend(self.properties.iter().cloned());
        p
    }
}

/// What a consumer reports. Implemented by the application (or the FFI layer).
///
/// Threads: called on a Tokio task — the connection's reader task for `chunk`, `error` and
/// `closed` after a broker or connection event; the task calling [`Consumer::close`] for a
/// `closed` it causes. Calls for one consumer never overlap and come in order; `closed` is the
/// last call, made exactly once. Implementations must return quickly and never block (queue
/// the work elsewhere): they hold up the connection, which other consumers may share. They may
/// call [`Consumer::credit`] and [`Consumer::stats`], release chunks, and drop the
/// [`Consumer`] (it then unsubscribes on another task). A panic in a callback is caught and
/// ignored so it cannot take the connection down.
pub trait ConsumerEvents: Send + Sync + 'static {
    /// A chunk with at least one record for the application. Hold it as long as needed; it
    /// gives its credit back when dropped or released (see [`CreditPolicy`]).
    fn chunk(&self, chunk: DeliveredChunk);
    /// A non-fatal problem; the consumer goes on: a chunk failing its CRC check or that could
    /// not be decoded (not delivered, its credit returned), or a credit error answered by the
    /// broker.
    fn error(&self, error: &ClientError);
    /// The consumer stopped for good: the stream was deleted or became unavailable
    /// ([`ClientError::Server`] with the broker's code, `STREAM_NOT_AVAILABLE`), the connection
    /// was lost, or the application closed it ([`ClientError::Closed`]).
    fn closed(&self, reason: &ClientError);
}

/// Counters of a consumer, read with [`Consumer::stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConsumerStats {
    /// Chunks handed to the application.
    pub chunks: u64,
    /// Records handed to the application (hidden ones excluded).
    pub messages: u64,
    /// Size of the data sections of the chunks handed to the application (wire bytes).
    pub bytes: u64,
    /// Credits granted to the broker, the initial credit included.
    pub credits_granted: u64,
}

#[derive(Default)]
struct Stats {
    chunks: AtomicU64,
    messages: AtomicU64,
    bytes: AtomicU64,
    credits_granted: AtomicU64,
}

/// Where the event stream stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Open,
    /// `close` started: no more chunk or error events; `closed` not yet sent.
    Closing,
    /// `closed` sent.
    Closed,
}

/// No offset delivered yet.
const NO_OFFSET: u64 = u64::MAX;

/// The consumer's lasting state, independent of any connection.
pub(crate) struct Shared {
    stream: Arc<str>,
    config: ConsumerConfig,
    policy: CreditPolicy,
    events: Arc<dyn ConsumerEvents>,
    /// The live subscription, swapped by (re)subscription, cleared when closed.
    current: Mutex<Option<Arc<Attachment>>>,
    /// Serialises events and orders `closed` last.
    phase: Mutex<Phase>,
    stats: Stats,
    /// Offset of the last record handed to the application; [`NO_OFFSET`] before any. Where
    /// recovery resubscribes from.
    last_delivered: AtomicU64,
    limits: DecodeLimits,
    runtime: Option<tokio::runtime::Handle>,
}

/// One subscription on one connection.
pub(crate) struct Attachment {
    conn: Connection,
    subscription_id: u8,
    /// Records before this offset are hidden (the start of `OffsetSpec::Offset`).
    min_offset: u64,
    /// Cleared when the subscription ends; credit is then no longer sent for its chunks.
    active: AtomicBool,
    /// The encoded Credit(1) frame of this subscription.
    credit_one: Bytes,
}

impl Attachment {
    fn send_credit(&self, credit: u16) -> Result<()> {
        self.conn.send_frame(&Frame::Credit(Credit {
            subscription_id: self.subscription_id,
            credit,
        }))
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Poisoning only means a callback panicked; the guarded data stays consistent.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    /// Runs an event callback unless the consumer is closing; a panic is contained.
    fn emit(&self, f: impl FnOnce(&dyn ConsumerEvents)) {
        let phase = lock(&self.phase);
        if *phase == Phase::Open {
            let _ = catch_unwind(AssertUnwindSafe(|| f(&*self.events)));
        }
        drop(phase);
    }

    /// Stops further events and sends `closed` once. Returns false if already done.
    fn finish(&self, reason: &ClientError) -> bool {
        {
            let mut phase = lock(&self.phase);
            if *phase == Phase::Closed {
                return false;
            }
            *phase = Phase::Closed;
        }
        let _ = catch_unwind(AssertUnwindSafe(|| self.events.closed(reason)));
        true
    }

    /// The live subscription, or [`ClientError::Closed`].
    fn attachment(&self) -> Result<Arc<Attachment>> {
        lock(&self.current)
            .clone()
            .ok_or_else(|| ClientError::Closed(format!("consumer on stream {}", self.stream)))
    }

    /// Ends `attachment` if it is the live one (the broker already dropped it).
    fn detach(&self, attachment: &Arc<Attachment>) {
        attachment.active.store(false, Ordering::Release);
        let mut cur = lock(&self.current);
        if cur.as_ref().is_some_and(|c| Arc::ptr_eq(c, attachment)) {
            *cur = None;
        }
    }

    fn name(&self) -> Result<&str> {
        self.config.name.as_deref().ok_or_else(|| {
            ClientError::InvalidArgument("offset tracking needs a consumer name".into())
        })
    }

    /// Handles one Deliver for `attachment` (on the connection's reader task).
    fn deliver(self: &Arc<Self>, attachment: &Arc<Attachment>, deliver: Deliver) {
        let release = Release::new(self.clone(), attachment.clone());
        let prepared = delivered::prepare(
            deliver.chunk,
            self.config.crc_check,
            attachment.min_offset,
            self.limits,
        );
        let p = match prepared {
            Ok(Some(p)) => p,
            Ok(None) => return release.internal(),
            Err(e) => {
                release.internal();
                let error = ClientError::Protocol(format!(
                    "chunk not delivered from stream {}: {e}",
                    self.stream
                ));
                return self.emit(|ev| ev.error(&error));
            }
        };
        let chunk = DeliveredChunk {
            chunk: p.chunk,
            committed_chunk_id: deliver.committed_chunk_id,
            stream: self.stream.clone(),
            skip: p.skip,
            decoded: p
                .decoded
                .map(|d| OnceLock::from(Some(d)))
                .unwrap_or_default(),
            release: Some(release),
        };
        let messages = chunk.len() as u64;
        let bytes = chunk.chunk.data().len() as u64;
        let last = chunk.last_offset();
        let phase = lock(&self.phase);
        if *phase != Phase::Open {
            return;
        }
        self.stats.chunks.fetch_add(1, Ordering::Relaxed);
        self.stats.messages.fetch_add(messages, Ordering::Relaxed);
        self.stats.bytes.fetch_add(bytes, Ordering::Relaxed);
        self.last_delivered.store(last, Ordering::Relaxed);
        let _ = catch_unwind(AssertUnwindSafe(|| self.events.chunk(chunk)));
        drop(phase);
    }

    /// Registers a listener on `conn` and subscribes; the new subscription becomes the live
    /// one. `Ok(false)` when the connection has no free subscription id. Recovery calls this
    /// again with another connection and offset.
    async fn subscribe(self: &Arc<Self>, conn: &Connection, offset: OffsetSpec) -> Result<bool> {
        let listener = Arc::new(Listener {
            shared: Arc::downgrade(self),
            attachment: OnceLock::new(),
        });
        let Some(subscription_id) = conn.register_subscription(&self.stream, listener.clone())?
        else {
            return Ok(false);
        };
        let mut credit_one = BytesMut::new();
        Frame::Credit(Credit {
            subscription_id,
            credit: 1,
        })
        .encode(&mut credit_one)?;
        let attachment = Arc::new(Attachment {
            conn: conn.clone(),
            subscription_id,
            min_offset: match offset {
                OffsetSpec::Offset(n) => n,
                _ => 0,
            },
            active: AtomicBool::new(true),
            credit_one: credit_one.freeze(),
        });
        let _ = listener.attachment.set(Arc::downgrade(&attachment));
        // Live before Subscribe is sent: chunks may arrive before its response.
        *lock(&self.current) = Some(attachment.clone());

        let credit = self.config.initial_credit;
        let properties = self.config.subscribe_properties();
        let answer = conn
            .request("subscribe", |correlation_id| {
                Frame::Subscribe(Subscribe {
                    correlation_id,
                    subscription_id,
                    stream: self.stream.to_string(),
                    offset_spec: offset,
                    credit,
                    properties,
                })
            })
            .await
            .and_then(|f| code_of(&f))
            .and_then(|code| ClientError::check("subscribe", code));
        match answer {
            Ok(()) => {
                self.stats
                    .credits_granted
                    .fetch_add(u64::from(credit), Ordering::Relaxed);
                Ok(true)
            }
            Err(e) => {
                self.detach(&attachment);
                conn.unregister_subscription(subscription_id);
                Err(e)
            }
        }
    }

    /// Unsubscribes (if subscribed) and sends `closed`. Idempotent.
    async fn close(&self) -> Result<()> {
        {
            let mut phase = lock(&self.phase);
            if *phase == Phase::Open {
                *phase = Phase::Closing;
            }
        }
        let attachment = lock(&self.current).take();
        let mut result = Ok(());
        if let Some(a) = attachment {
            a.active.store(false, Ordering::Release);
            if a.conn.is_open() {
                let answer = a
                    .conn
                    .request("unsubscribe", |correlation_id| {
                        Frame::Unsubscribe(Unsubscribe {
                            correlation_id,
                            subscription_id: a.subscription_id,
                        })
                    })
                    .await
                    .and_then(|f| code_of(&f));
                result = match answer {
                    // Already gone on the broker's side (stream deleted meanwhile).
                    Ok(ResponseCode::OK | ResponseCode::SUBSCRIPTION_ID_DOES_NOT_EXIST)
                    | Err(ClientError::Closed(_)) => Ok(()),
                    Ok(code) => Err(ClientError::Server {
                        operation: "unsubscribe",
                        code,
                    }),
                    Err(e) => Err(e),
                };
            }
            // After the answer: no Deliver for this id can follow it on the wire, so the id
            // is safe to reuse.
            a.conn.unregister_subscription(a.subscription_id);
        }
        self.finish(&ClientError::Closed(
            "consumer closed by the application".into(),
        ));
        result
    }
}

/// What a connection calls for one subscription. Holds the consumer weakly: a connection
/// never keeps a dropped consumer alive.
struct Listener {
    shared: Weak<Shared>,
    attachment: OnceLock<Weak<Attachment>>,
}

impl Listener {
    fn parts(&self) -> Option<(Arc<Shared>, Arc<Attachment>)> {
        let shared = self.shared.upgrade()?;
        let attachment = self.attachment.get()?.upgrade()?;
        Some((shared, attachment))
    }

    /// The broker or the connection ended the subscription.
    fn ended(&self, reason: &ClientError) {
        if let Some((shared, attachment)) = self.parts() {
            shared.detach(&attachment);
            shared.finish(reason);
        }
    }
}

impl SubscriptionListener for Listener {
    fn deliver(&self, deliver: Deliver) {
        if let Some((shared, attachment)) = self.parts()
            && attachment.active.load(Ordering::Acquire)
        {
            shared.deliver(&attachment, deliver);
        }
    }

    fn credit_error(&self, code: ResponseCode) {
        if let Some((shared, _)) = self.parts() {
            let error = ClientError::Server {
                operation: "credit",
                code,
            };
            shared.emit(|ev| ev.error(&error));
        }
    }

    fn consumer_update(&self, correlation_id: u32, _active: bool) {
        // Single active consumer is not requested by this consumer (yet): keep the Subscribe's
        // offset so the broker is never left waiting for an answer.
        if let Some((_, attachment)) = self.parts() {
            let _ = attachment.conn.reply_consumer_update(correlation_id, None);
        }
    }

    fn stream_unavailable(&self, code: ResponseCode) {
        self.ended(&ClientError::Server {
            operation: "consume",
            code,
        });
    }

    fn connection_closed(&self, reason: &ClientError) {
        self.ended(reason);
    }
}

/// A subscription to one stream, delivering chunks to a [`ConsumerEvents`].
///
/// Threads: `Send + Sync`; every method may be called from any thread (the async ones from
/// any Tokio runtime). `credit` and `stats` never block. Dropping a consumer that was not
/// closed unsubscribes in the background, on the runtime that created it.
pub struct Consumer {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Consumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer")
            .field("stream", &self.shared.stream)
            .field("name", &self.shared.config.name)
            .field("open", &self.is_open())
            .finish()
    }
}

impl Consumer {
    /// Subscribes to `stream`: a data connection to a replica of the stream if there is one,
    /// else to its leader (shared with other consumers up to the environment's cap), then
    /// Subscribe with `config`. Chunks may reach `events` before this returns.
    ///
    /// Fails with [`ClientError::InvalidArgument`] for a bad stream name or config, and with
    /// the broker's code ([`ClientError::Server`]) when it refuses, e.g.
    /// `STREAM_DOES_NOT_EXIST`.
    pub async fn new(
        env: &Environment,
        stream: &str,
        config: ConsumerConfig,
        events: Arc<dyn ConsumerEvents>,
    ) -> Result<Consumer> {
        check_name("stream name", stream)?;
        config.validate()?;
        let offset = config.offset;
        let shared = Arc::new(Shared {
            stream: stream.into(),
            policy: config.credit_policy,
            config,
            events,
            current: Mutex::new(None),
            phase: Mutex::new(Phase::Open),
            stats: Stats::default(),
            last_delivered: AtomicU64::new(NO_OFFSET),
            limits: DecodeLimits::default(),
            runtime: tokio::runtime::Handle::try_current().ok(),
        });
        // Another consumer may take the last free id of a pooled connection between the
        // pool's check and our registration: try again on a fresh pick.
        for _ in 0..3 {
            let conn = env.data_connection(stream, Role::Consumer).await?;
            if shared.subscribe(&conn, offset).await? {
                return Ok(Consumer { shared });
            }
        }
        Err(ClientError::InvalidArgument(
            "no data connection with a free subscription id".into(),
        ))
    }

    /// The stream consumed.
    pub fn stream(&self) -> &str {
        &self.shared.stream
    }

    /// The configuration in force.
    pub fn config(&self) -> &ConsumerConfig {
        &self.shared.config
    }

    /// False once closed (by [`close`](Self::close), stream deletion or connection loss).
    pub fn is_open(&self) -> bool {
        lock(&self.shared.current).is_some()
    }

    /// Grants the broker `credits` more chunks (1 to 32767). The way to get chunks with
    /// [`CreditPolicy::Manual`]; adds to the automatic credit with other policies.
    /// Non-blocking, from any thread. [`ClientError::Closed`] once the consumer is closed.
    pub fn credit(&self, credits: u16) -> Result<()> {
        if !(1..=MAX_CREDIT).contains(&credits) {
            return Err(ClientError::InvalidArgument(format!(
                "credit must be 1 to {MAX_CREDIT}, got {credits}"
            )));
        }
        let a = self.shared.attachment()?;
        a.send_credit(credits)?;
        self.shared
            .stats
            .credits_granted
            .fetch_add(u64::from(credits), Ordering::Relaxed);
        Ok(())
    }

    /// Stores `offset` on the broker under the consumer's name (fire and forget: the broker
    /// does not answer; [`query_offset`](Self::query_offset) shows when it is applied).
    /// [`ClientError::InvalidArgument`] without a name, [`ClientError::Closed`] once closed.
    pub async fn store_offset(&self, offset: u64) -> Result<()> {
        let name = self.shared.name()?;
        let a = self.shared.attachment()?;
        a.conn.send_frame(&Frame::StoreOffset(StoreOffset {
            reference: name.to_string(),
            stream: self.shared.stream.to_string(),
            offset,
        }))
    }

    /// The offset stored under the consumer's name, `None` when none is.
    /// [`ClientError::InvalidArgument`] without a name, [`ClientError::Closed`] once closed.
    pub async fn query_offset(&self) -> Result<Option<u64>> {
        let name = self.shared.name()?;
        let a = self.shared.attachment()?;
        let answer = a
            .conn
            .request("query offset", |correlation_id| {
                Frame::QueryOffset(QueryOffset {
                    correlation_id,
                    reference: name.to_string(),
                    stream: self.shared.stream.to_string(),
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

    /// Offset of the last record handed to the application, `None` before the first chunk.
    pub fn last_delivered_offset(&self) -> Option<u64> {
        match self.shared.last_delivered.load(Ordering::Relaxed) {
            NO_OFFSET => None,
            o => Some(o),
        }
    }

    /// Unsubscribes, frees the subscription id and sends the `closed` event (reason
    /// [`ClientError::Closed`]) unless the consumer had already ended. Idempotent: later calls
    /// return `Ok`; other methods then fail with [`ClientError::Closed`]. Chunks still held by
    /// the application stay readable; releasing them no longer sends credit. The data
    /// connection stays in the environment's pool.
    pub async fn close(&self) -> Result<()> {
        self.shared.close().await
    }

    /// The consumer's counters (relaxed atomic reads; never blocks).
    pub fn stats(&self) -> ConsumerStats {
        let s = &self.shared.stats;
        ConsumerStats {
            chunks: s.chunks.load(Ordering::Relaxed),
            messages: s.messages.load(Ordering::Relaxed),
            bytes: s.bytes.load(Ordering::Relaxed),
            credits_granted: s.credits_granted.load(Ordering::Relaxed),
        }
    }
}

impl Drop for Consumer {
    // May run inside one of the consumer's own callbacks (which hold the event lock), so it
    // takes no lock that a callback holds and leaves the work to another task or thread.
    fn drop(&mut self) {
        // Not subscribed any more: closed, or ended by the broker or the connection, which
        // sends `closed` itself.
        if !self.is_open() {
            return;
        }
        let shared = self.shared.clone();
        match &self.shared.runtime {
            Some(rt) => {
                rt.spawn(async move {
                    let _ = shared.close().await;
                });
            }
            // No runtime to unsubscribe on: at least stop credit and events.
            None => {
                if let Some(a) = lock(&shared.current).take() {
                    a.active.store(false, Ordering::Release);
                }
                std::thread::spawn(move || {
                    shared.finish(&ClientError::Closed("consumer dropped".into()));
                });
            }
        }
    }
}

#[cfg(test)]
mod tests;
