//! The consumer: one subscription to a stream, delivering whole chunks as zero-copy views.
//!
//! ```text
//!  broker ──Deliver──▶ connection reader task ──▶ Listener::deliver
//!                        credit on arrival (CreditPolicy::OnArrival)
//!                        parse header in place, CRC, validate, skip records < start offset,
//!                        post-filter (hidden records keep their offsets)
//!                        └─▶ ConsumerEvents::chunk(DeliveredChunk)      (same task, in order)
//!  application drops / releases the DeliveredChunk
//!                        ──▶ credit (OnRelease, AfterProcessed, WhenBelow)
//!                        ──▶ processed offset moves ──▶ StoreOffset (tracking strategy)
//!  broker ──ConsumerUpdate──▶ per-consumer update task ──▶ ConsumerEvents::consumer_update
//!                        ──▶ answer (or the default at the deadline)   (single active consumer)
//! ```
//!
//! State is split so that recovery can re-attach: [`Consumer`] owns the consumer's lasting
//! state (`Shared`: configuration, events, statistics, last delivered offset, processed
//! offset), and the connection plus subscription id live in a swappable `Attachment` that
//! every delivered chunk references for its credit. A connection holds only a weak link back
//! to the consumer, so dropping the consumer never leaks through the connection.
//!
//! Threads: `chunk`, `error` and `closed` run on the Tokio task of the connection's reader
//! (or of the task that closes the consumer, for `closed`), `consumer_update` on the
//! consumer's update task, one at a time per consumer; the application's callbacks must not
//! block. [`Consumer`]'s methods may be called from any thread; `credit`, `stats` and
//! `store_processed_offset` never block. Releasing a chunk may run the tracking strategy's
//! callback and send Credit and StoreOffset frames, on the releasing thread, without blocking.

mod credit;
mod delivered;
mod filter;
mod sac;
mod tracking;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::sync::mpsc;

pub use credit::CreditPolicy;
pub use delivered::{ConsumerRecord, DeliveredChunk, Records};
pub use filter::PostFilter;
pub use sac::ConsumerUpdate;
pub use tracking::{TrackingContext, TrackingDecider, TrackingStrategy};

use self::credit::{CreditBook, Release};
use self::tracking::{Advance, Progress};
use super::connection::{Connection, SubscriptionListener};
use super::environment::{Environment, Role, WeakEnvironment, check_name, code_of, query_offset};
use super::error::{ClientError, Result};
use super::log::{Level, Log, log_at};
use super::recovery::{self, RecoveryPolicy, StateChange};
use crate::protocol::chunk::DecodeLimits;
use crate::protocol::codes::{OffsetSpec, ResponseCode, key};
use crate::protocol::commands::{Credit, Deliver, Frame, StoreOffset, Subscribe, Unsubscribe};

/// The broker reads credit as a signed 16-bit value.
pub const MAX_CREDIT: u16 = i16::MAX as u16;

/// Default [`ConsumerConfig::consumer_update_timeout`].
pub const DEFAULT_CONSUMER_UPDATE_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest [`ConsumerConfig::consumer_update_timeout`]: the broker closes the connection when
/// a ConsumerUpdate is not answered within 60 s (`rabbitmq_stream.request_timeout`).
pub const MAX_CONSUMER_UPDATE_TIMEOUT: Duration = Duration::from_secs(55);

/// How to subscribe. Build it with `..Default::default()` so that fields added later keep
/// your code compiling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerConfig {
    /// Subscription property `name`: the consumer's name in the management UI, the group of a
    /// single active consumer, and the default offset-tracking reference (1 to 255 bytes).
    /// Default `None`.
    pub name: Option<String>,
    /// Where to start. Default [`OffsetSpec::Next`] (the Java client's default): only messages
    /// written after subscribing, so a new consumer never replays a whole stream by surprise.
    /// With `Offset(n)` the records of the first chunk that precede `n` are skipped
    /// client-side; `Last` starts at the beginning of the last chunk (broker semantics);
    /// `Timestamp(ms)` at the first chunk written at or after that time. Offset tracking
    /// replaces it with the offset after the stored one when one is stored.
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
    /// Extra subscription properties sent as they are. Must not repeat `name` when
    /// [`ConsumerConfig::name`] is set, nor the keys the fields below produce when they are
    /// used. Default empty.
    pub properties: Vec<(String, String)>,
    /// Server-side offset tracking (see [`TrackingStrategy`]). Default
    /// [`TrackingStrategy::Disabled`].
    pub tracking: TrackingStrategy,
    /// The reference the offset is stored under; `None` (default): [`name`](Self::name).
    /// 1 to 255 bytes.
    pub tracking_reference: Option<String>,
    /// Single active consumer (RabbitMQ 3.11+): among the consumers of the stream with this
    /// [`name`](Self::name) (required), the broker lets one at a time receive. A consumer starts
    /// inactive; when the broker activates it, [`ConsumerEvents::consumer_update`] decides
    /// where it starts (default: after the offset stored under its tracking reference, else
    /// [`offset`](Self::offset)); when it steps down it stops delivering, waits (within
    /// [`consumer_update_timeout`](Self::consumer_update_timeout)) for the application to
    /// release what it holds and, with an automatic [`tracking`](Self::tracking) strategy,
    /// stores its processed offset so that the next active consumer continues right after.
    /// On older brokers [`Consumer::new`] fails with [`ClientError::Unsupported`]. Default
    /// `false`.
    pub single_active_consumer: bool,
    /// Subscription property `super-stream`: with [`single_active_consumer`](Self::single_active_consumer),
    /// the broker spreads the active consumers of the group over the super stream's
    /// partitions. Default `None`.
    pub super_stream: Option<String>,
    /// How long a single active consumer waits for [`ConsumerEvents::consumer_update`] to
    /// answer (and, on a step-down, for the application to release its chunks) before it
    /// answers the broker with the default. Default 5 s, at most
    /// [`MAX_CONSUMER_UPDATE_TIMEOUT`].
    pub consumer_update_timeout: Duration,
    /// Broker-side filtering (RabbitMQ 3.13+; [`ClientError::Unsupported`] before): only
    /// chunks that may hold messages published with one of these filter values are sent (a
    /// Bloom filter per chunk: false positives happen, and a chunk comes whole, with messages
    /// of other values — see [`post_filter`](Self::post_filter)). Subscription properties
    /// `filter.0`, `filter.1`, ... Default empty (no filtering).
    pub filter_values: Vec<String>,
    /// With [`filter_values`](Self::filter_values): also receive chunks holding messages
    /// published without a filter value. Default `false`.
    pub match_unfiltered: bool,
    /// Client-side filter applied to each record before the application sees it (see
    /// [`PostFilter`]); with [`filter_values`](Self::filter_values) it is what removes the
    /// messages the application did not ask for. Default `None`.
    pub post_filter: Option<PostFilter>,
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
            tracking: TrackingStrategy::Disabled,
            tracking_reference: None,
            single_active_consumer: false,
            super_stream: None,
            consumer_update_timeout: DEFAULT_CONSUMER_UPDATE_TIMEOUT,
            filter_values: Vec::new(),
            match_unfiltered: false,
            post_filter: None,
        }
    }
}

const SAC_PROPERTY: &str = "single-active-consumer";
const SUPER_STREAM_PROPERTY: &str = "super-stream";
const MATCH_UNFILTERED_PROPERTY: &str = "match-unfiltered";
const FILTER_PREFIX: &str = "filter.";

fn invalid(message: impl Into<String>) -> ClientError {
    ClientError::InvalidArgument(message.into())
}

impl ConsumerConfig {
    /// Checks the values [`Consumer::new`] would reject.
    pub fn validate(&self) -> Result<()> {
        let has_property =
            |pred: &dyn Fn(&str) -> bool| self.properties.iter().any(|(k, _)| pred(k));
        if let Some(name) = &self.name {
            check_name("consumer name", name)?;
            if has_property(&|k| k == "name") {
                return Err(invalid(
                    "the name is set both as `name` and in `properties`",
                ));
            }
        }
        if !(1..=MAX_CREDIT).contains(&self.initial_credit) {
            return Err(invalid(format!(
                "initial credit must be 1 to {MAX_CREDIT}, got {}",
                self.initial_credit
            )));
        }
        self.credit_policy
            .validate(self.initial_credit)
            .map_err(invalid)?;
        if has_property(&str::is_empty) {
            return Err(invalid("subscription property with an empty key"));
        }
        if let Some(r) = &self.tracking_reference {
            check_name("tracking reference", r)?;
        }
        self.tracking.validate().map_err(invalid)?;
        if self.tracking.is_enabled() && self.reference().is_none() {
            return Err(invalid(
                "offset tracking needs a consumer name or a tracking reference",
            ));
        }
        if self.single_active_consumer {
            if self.name.is_none() {
                return Err(invalid(
                    "a single active consumer needs a name (the group's name)",
                ));
            }
            if has_property(&|k| k == SAC_PROPERTY) {
                return Err(invalid(
                    "single-active-consumer is set both as a field and in `properties`",
                ));
            }
        }
        if let Some(s) = &self.super_stream {
            check_name("super stream name", s)?;
            if has_property(&|k| k == SUPER_STREAM_PROPERTY) {
                return Err(invalid(
                    "super-stream is set both as a field and in `properties`",
                ));
            }
        }
        if self.consumer_update_timeout < Duration::from_millis(1)
            || self.consumer_update_timeout > MAX_CONSUMER_UPDATE_TIMEOUT
        {
            return Err(invalid(format!(
                "consumer_update_timeout must be 1 ms to {} s, got {:?}",
                MAX_CONSUMER_UPDATE_TIMEOUT.as_secs(),
                self.consumer_update_timeout
            )));
        }
        if self
            .filter_values
            .iter()
            .any(|v| v.is_empty() || v.len() > i16::MAX as usize)
        {
            return Err(invalid("filter values must be 1 to 32767 bytes long"));
        }
        if self.match_unfiltered && self.filter_values.is_empty() {
            return Err(invalid("match_unfiltered needs filter values"));
        }
        if !self.filter_values.is_empty()
            && has_property(&|k| k.starts_with(FILTER_PREFIX) || k == MATCH_UNFILTERED_PROPERTY)
        {
            return Err(invalid(
                "filter values are set both as a field and in `properties`",
            ));
        }
        Ok(())
    }

    /// The offset-tracking reference: [`tracking_reference`](Self::tracking_reference), else
    /// the [`name`](Self::name).
    pub fn reference(&self) -> Option<&str> {
        self.tracking_reference.as_deref().or(self.name.as_deref())
    }

    /// Whether the subscription is a single active consumer (the field, or the raw property).
    fn is_single_active(&self) -> bool {
        self.single_active_consumer
            || self
                .properties
                .iter()
                .any(|(k, v)| k == SAC_PROPERTY && v == "true")
    }

    /// Whether the subscription asks for broker-side filtering (the field, or raw properties).
    fn uses_filtering(&self) -> bool {
        !self.filter_values.is_empty()
            || self
                .properties
                .iter()
                .any(|(k, _)| k.starts_with(FILTER_PREFIX))
    }

    /// The Subscribe properties: `name`, single active consumer, filters, then the extra ones.
    fn subscribe_properties(&self) -> Vec<(String, String)> {
        let mut p = Vec::with_capacity(self.properties.len() + self.filter_values.len() + 4);
        if let Some(name) = &self.name {
            p.push(("name".to_string(), name.clone()));
        }
        if self.single_active_consumer {
            p.push((SAC_PROPERTY.to_string(), "true".to_string()));
        }
        if let Some(s) = &self.super_stream {
            p.push((SUPER_STREAM_PROPERTY.to_string(), s.clone()));
        }
        for (i, v) in self.filter_values.iter().enumerate() {
            p.push((format!("{FILTER_PREFIX}{i}"), v.clone()));
        }
        if self.match_unfiltered {
            p.push((MATCH_UNFILTERED_PROPERTY.to_string(), "true".to_string()));
        }
        p.extend(self.properties.iter().cloned());
        p
    }
}

/// What a consumer reports. Implemented by the application (or the FFI layer).
///
/// Threads: called on a Tokio task — the connection's reader task for `chunk`, `error` and
/// `closed` after a broker or connection event; the task calling [`Consumer::close`] for a
/// `closed` it causes; the consumer's own update task for `consumer_update`. Calls for one
/// consumer never overlap and come in order; `closed` is the last call, made exactly once.
/// Implementations must return quickly and never block (queue the work elsewhere): they hold
/// up the connection, which other consumers may share. They may call [`Consumer::credit`],
/// [`Consumer::stats`] and [`Consumer::store_processed_offset`], release chunks, and drop the
/// [`Consumer`] (it then unsubscribes on another task). A panic in a callback is caught and
/// ignored so it cannot take the connection down.
pub trait ConsumerEvents: Send + Sync + 'static {
    /// A chunk with at least one record for the application. Hold it as long as needed; it
    /// gives its credit back when dropped or released (see [`CreditPolicy`]) and counts as
    /// processed for offset tracking then.
    fn chunk(&self, chunk: DeliveredChunk);
    /// A non-fatal problem; the consumer goes on: a chunk failing its CRC check or that could
    /// not be decoded (not delivered, its credit returned), a panicking post-filter, or a
    /// credit error answered by the broker.
    fn error(&self, error: &ClientError);
    /// The consumer stopped for good: the stream was deleted ([`ClientError::Server`] with
    /// `STREAM_DOES_NOT_EXIST`), recovery is turned off or ran out of attempts (the loss's
    /// reason), or the application closed it ([`ClientError::Closed`]).
    fn closed(&self, reason: &ClientError);
    /// The consumer lost its connection or its stream member and is recovering, or is back,
    /// subscribed again right after the last offset it handed over (see
    /// [`RecoveryPolicy`]). In order with the other calls. The default
    /// ignores it.
    fn state(&self, change: &StateChange<'_>) {
        let _ = change;
    }
    /// A single active consumer is activated or steps down (see
    /// [`ConsumerConfig::single_active_consumer`]). Answer with [`ConsumerUpdate::reply`],
    /// here or later from any thread; without an answer by its deadline the consumer answers
    /// the broker with [`ConsumerUpdate::default_offset`]. The default implementation answers
    /// with the default at once.
    fn consumer_update(&self, update: ConsumerUpdate) {
        drop(update);
    }
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
    /// Chunks the broker sent (Deliver frames), those never handed to the application
    /// included: entirely before the start offset, failing checks, every record filtered out,
    /// or arriving while a single active consumer was inactive. With `chunks` and
    /// `credits_granted`, tells a broker that stopped sending from a consumer that stopped
    /// handing over.
    pub chunks_received: u64,
    /// Records the post-filter removed (in chunks handed over or not).
    pub filtered_out: u64,
    /// StoreOffset frames sent by this consumer (automatic and explicit stores).
    pub offsets_stored: u64,
    /// The offset this consumer stored last, if it stored any.
    pub last_stored_offset: Option<u64>,
    /// Recoveries completed (the subscription lost and made again).
    pub recoveries: u64,
}

#[derive(Default)]
struct Stats {
    chunks: AtomicU64,
    messages: AtomicU64,
    bytes: AtomicU64,
    credits_granted: AtomicU64,
    chunks_received: AtomicU64,
    filtered_out: AtomicU64,
    offsets_stored: AtomicU64,
    /// The last stored offset + 1; 0 for none.
    last_stored: AtomicU64,
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
    /// The offset-tracking reference, if any.
    reference: Option<String>,
    /// Processed offset and store bookkeeping.
    progress: Mutex<Progress>,
    /// Highest committed chunk id announced by Deliver v2, + 1; 0 before any.
    committed: AtomicU64,
    /// Single active consumer.
    sac: bool,
    /// False while a single active consumer is not the active one (always true otherwise).
    sac_active: AtomicBool,
    /// Where the connection's listener queues ConsumerUpdate requests (single active
    /// consumers only).
    updates: Option<mpsc::UnboundedSender<sac::Request>>,
    /// Where a recovery finds a new connection.
    env: WeakEnvironment,
    recovery: RecoveryPolicy,
    log: Log,
    /// The subscription was lost and a recovery task is bringing it back.
    recovering: AtomicBool,
    /// Set by a recovery of a single active consumer: its next activation starts no earlier
    /// than right after the last offset it handed over.
    resumed: AtomicBool,
    recoveries: AtomicU64,
}

/// One subscription on one connection.
pub(crate) struct Attachment {
    conn: Connection,
    subscription_id: u8,
    /// Records before this offset are hidden (the start of `OffsetSpec::Offset`; set again
    /// when a single active consumer is activated).
    min_offset: AtomicU64,
    /// Cleared when the subscription ends; credit is then no longer sent for its chunks.
    active: AtomicBool,
    /// The encoded Credit(1) frame of this subscription.
    credit_one: Bytes,
    initial_credit: u16,
    credit: Mutex<CreditBook>,
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

    /// The subscription was lost (already detached). With recovery on, the consumer still
    /// open and the stream not deleted, a recovery task subscribes it again; otherwise it
    /// ends with `reason`.
    fn lost(self: &Arc<Self>, reason: &ClientError) {
        let open = *lock(&self.phase) == Phase::Open;
        if !open || !self.recovery.enabled || recovery::is_final(reason) {
            self.finish(reason);
            return;
        }
        if self.recovering.swap(true, Ordering::AcqRel) {
            return;
        }
        if let Some(rt) = tokio::runtime::Handle::try_current()
            .ok()
            .or_else(|| self.runtime.clone())
        {
            rt.spawn(recover(Arc::downgrade(self), reason.clone()));
        } else {
            self.recovering.store(false, Ordering::Release);
            self.finish(reason);
        }
    }

    /// Where a recovery subscribes from: right after the last offset handed to the
    /// application; before any, where the consumer would have started (the stored offset
    /// with tracking, else the configured one). A single active consumer subscribes with
    /// the configured offset: the broker's activation decides, see `resumed`.
    async fn resume_offset(&self, conn: &Connection) -> Result<OffsetSpec> {
        if self.sac {
            self.resumed.store(true, Ordering::Release);
            return Ok(self.config.offset);
        }
        match self.last_delivered.load(Ordering::Acquire) {
            NO_OFFSET => {}
            last => return Ok(OffsetSpec::Offset(last.saturating_add(1))),
        }
        if self.config.tracking.is_enabled()
            && let Some(s) = self.query_stored(conn).await?
        {
            return Ok(OffsetSpec::Offset(s.saturating_add(1)));
        }
        Ok(self.config.offset)
    }

    /// One recovery attempt. `Ok(false)`: no free subscription id on the connection picked
    /// (try again).
    async fn resubscribe(self: &Arc<Self>, env: &Environment) -> Result<bool> {
        let conn = env.data_connection(&self.stream, Role::Consumer).await?;
        self.check_features(&conn)?;
        let offset = self.resume_offset(&conn).await?;
        if self.sac {
            self.sac_active.store(false, Ordering::Release);
        }
        let done = self.subscribe(&conn, offset).await?;
        if done {
            log_at!(
                self.log,
                Level::Info,
                "consumer",
                "consumer on stream {} recovered on {}:{} from {offset:?}",
                self.stream,
                conn.endpoint().host,
                conn.endpoint().port
            );
        }
        Ok(done)
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

    fn reference(&self) -> Result<&str> {
        self.reference.as_deref().ok_or_else(|| {
            ClientError::InvalidArgument(
                "offset tracking needs a consumer name or a tracking reference".into(),
            )
        })
    }

    /// Handles one Deliver for `attachment` (on the connection's reader task).
    fn deliver(self: &Arc<Self>, attachment: &Arc<Attachment>, deliver: Deliver) {
        self.stats.chunks_received.fetch_add(1, Ordering::Relaxed);
        attachment.on_arrival(self);
        if let Some(c) = deliver.committed_chunk_id {
            self.committed
                .fetch_max(c.saturating_add(1), Ordering::Relaxed);
        }
        let release = Release::new(self.clone(), attachment.clone());
        if !self.sac_active.load(Ordering::Acquire) {
            // A single active consumer that stepped down: not the application's any more.
            // (Early exit only; the check that counts is the one under `phase` below.)
            return release.internal();
        }
        let prepared = delivered::prepare(
            deliver.chunk,
            self.config.crc_check,
            attachment.min_offset.load(Ordering::Acquire),
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
        let mut chunk = DeliveredChunk::new(p, self.stream.clone(), deliver.committed_chunk_id);
        // Records from the first visible one to the last: what the chunk counts for once
        // processed, post-filtered or not.
        let visible = chunk.len() as u64;
        let mut filter_error = None;
        if let Some(f) = &self.config.post_filter {
            match f.apply(&chunk) {
                Ok(kept) => chunk.kept = kept,
                Err(()) => {
                    filter_error = Some(ClientError::InvalidArgument(format!(
                        "the post-filter panicked; chunk {} of stream {} delivered unfiltered",
                        chunk.chunk_id(),
                        self.stream
                    )))
                }
            }
        }
        let messages = chunk.len() as u64;
        let filtered = visible - messages;
        let bytes = chunk.chunk.data().len() as u64;
        let (chunk_id, last) = (chunk.chunk_id(), chunk.last_offset());
        let phase = lock(&self.phase);
        // Checked again under `phase`: a step-down clears `sac_active`, then takes `phase`
        // once before counting outstanding chunks; so either this chunk is admitted before
        // that and counted (the step-down waits for it), or it sees the flag cleared here.
        // Without this, a chunk that passed the check above could be admitted after the
        // step-down answered, and be delivered again by the next active consumer.
        if *phase != Phase::Open || !self.sac_active.load(Ordering::Acquire) {
            drop(phase);
            return release.internal();
        }
        if let Some(e) = &filter_error {
            let _ = catch_unwind(AssertUnwindSafe(|| self.events.error(e)));
        }
        if filtered > 0 {
            self.stats
                .filtered_out
                .fetch_add(filtered, Ordering::Relaxed);
        }
        self.last_delivered.store(last, Ordering::Relaxed);
        if messages == 0 {
            // Every record filtered out: processed at once, in its place in the order.
            let (_, advance) = lock(&self.progress).admit(chunk_id, last, visible, true);
            drop(phase);
            release.internal();
            if let Some(a) = advance {
                self.after_advance(a);
            }
            return;
        }
        let (seq, _) = lock(&self.progress).admit(chunk_id, last, visible, false);
        let mut release = release;
        release.seq = Some(seq);
        chunk.release = Some(release);
        self.stats.chunks.fetch_add(1, Ordering::Relaxed);
        self.stats.messages.fetch_add(messages, Ordering::Relaxed);
        self.stats.bytes.fetch_add(bytes, Ordering::Relaxed);
        let _ = catch_unwind(AssertUnwindSafe(|| self.events.chunk(chunk)));
        drop(phase);
    }

    /// The application released chunk `seq` (any thread).
    fn processed(&self, seq: u64) {
        let advance = lock(&self.progress).complete(seq);
        if let Some(a) = advance {
            self.after_advance(a);
        }
    }

    /// The processed offset moved: store now if the strategy says so.
    fn after_advance(&self, a: Advance) {
        let store = match &self.config.tracking {
            TrackingStrategy::Custom(d) => {
                catch_unwind(AssertUnwindSafe(|| d.decide(&a.context))).unwrap_or(false)
            }
            t => t
                .message_threshold()
                .is_some_and(|n| a.messages_since_store >= n),
        };
        if store {
            let _ = self.store_processed(false);
        }
    }

    /// Stores the processed offset if it moved since the last store. A single active consumer
    /// that is not the active one does not store (it would overwrite the active one's
    /// progress) unless `stepping_down`.
    fn store_processed(&self, stepping_down: bool) -> Result<Option<u64>> {
        let reference = self.reference()?;
        if !stepping_down && !self.sac_active.load(Ordering::Acquire) {
            return Ok(None);
        }
        let a = self.attachment()?;
        let committed = self.committed.load(Ordering::Relaxed).checked_sub(1);
        let mut p = lock(&self.progress);
        let Some(offset) = p.to_store(committed) else {
            return Ok(None);
        };
        self.send_store(&a, reference, offset)?;
        p.stored(offset);
        Ok(Some(offset))
    }

    fn send_store(&self, a: &Attachment, reference: &str, offset: u64) -> Result<()> {
        a.conn.send_frame(&Frame::StoreOffset(StoreOffset {
            reference: reference.to_string(),
            stream: self.stream.to_string(),
            offset,
        }))?;
        self.stats.offsets_stored.fetch_add(1, Ordering::Relaxed);
        self.stats
            .last_stored
            .store(offset.saturating_add(1), Ordering::Relaxed);
        Ok(())
    }

    /// The offset stored under the tracking reference (`None`: none, or no reference).
    async fn query_stored(&self, conn: &Connection) -> Result<Option<u64>> {
        let Some(reference) = &self.reference else {
            return Ok(None);
        };
        query_offset(conn, reference, &self.stream).await
    }

    /// Fails with [`ClientError::Unsupported`] when the broker behind `conn` lacks a feature
    /// the configuration asks for, before anything it would not know is sent.
    fn check_features(&self, conn: &Connection) -> Result<()> {
        let info = conn.info();
        if self.sac {
            info.require(key::CONSUMER_UPDATE, 1, "single active consumer", "3.11")?;
        }
        if self.config.uses_filtering() {
            // Filtering came with Publish v2 (and its feature flag) in 3.13.
            info.require(key::PUBLISH, 2, "stream filtering", "3.13")?;
        }
        Ok(())
    }

    /// Registers a listener on `conn` and subscribes; the new subscription becomes the live
    /// one. `Ok(false)` when the connection has no free subscription id. Recovery calls this
    /// again with another connection and offset.
    ///
    /// Cancellation-safe: if the future is dropped, or the answer does not come in time, after
    /// Subscribe went out, the subscription is undone in the background (Unsubscribe, then the
    /// id is freed) so that the broker never delivers to an id another consumer reuses.
    async fn subscribe(self: &Arc<Self>, conn: &Connection, offset: OffsetSpec) -> Result<bool> {
        let listener = Arc::new(Listener {
            shared: Arc::downgrade(self),
            attachment: OnceLock::new(),
            conn: conn.clone(),
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
        let credit = self.config.initial_credit;
        let attachment = Arc::new(Attachment {
            conn: conn.clone(),
            subscription_id,
            min_offset: AtomicU64::new(match offset {
                OffsetSpec::Offset(n) => n,
                _ => 0,
            }),
            active: AtomicBool::new(true),
            credit_one: credit_one.freeze(),
            initial_credit: credit,
            credit: Mutex::new(CreditBook {
                granted: u64::from(credit),
                ..CreditBook::default()
            }),
        });
        let _ = listener.attachment.set(Arc::downgrade(&attachment));
        let mut guard = Pending {
            shared: self,
            attachment: &attachment,
            subscribe_sent: false,
            armed: true,
        };
        // Live before Subscribe is sent: chunks may arrive before its response.
        *lock(&self.current) = Some(attachment.clone());

        let properties = self.config.subscribe_properties();
        guard.subscribe_sent = true;
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
            .and_then(|f| code_of(&f));
        match answer {
            Ok(ResponseCode::OK) => {
                guard.armed = false;
                self.stats
                    .credits_granted
                    .fetch_add(u64::from(credit), Ordering::Relaxed);
                Ok(true)
            }
            // Refused: nothing to undo on the broker.
            Ok(code) => {
                guard.subscribe_sent = false;
                Err(ClientError::Server {
                    operation: "subscribe",
                    code,
                })
            }
            // A timeout leaves the guard to unsubscribe: the broker may have subscribed.
            Err(e) => Err(e),
        }
    }

    /// Unsubscribes (if subscribed) and sends `closed`. Idempotent. With an automatic
    /// tracking strategy, stores the processed offset first (before Unsubscribe, so that a
    /// single active consumer taking over sees it).
    async fn close(&self) -> Result<()> {
        {
            let mut phase = lock(&self.phase);
            if *phase == Phase::Open {
                *phase = Phase::Closing;
            }
        }
        if self.config.tracking.is_automatic() {
            let _ = self.store_processed(false);
        }
        let attachment = lock(&self.current).take();
        let mut result = Ok(());
        if let Some(a) = attachment {
            a.active.store(false, Ordering::Release);
            result = release_subscription(&a.conn, a.subscription_id).await;
        }
        self.finish(&ClientError::Closed(
            "consumer closed by the application".into(),
        ));
        result
    }
}

/// Undoes a subscription whose Subscribe went out but did not (yet) succeed, when the
/// subscribing future is dropped or fails.
struct Pending<'a> {
    shared: &'a Arc<Shared>,
    attachment: &'a Arc<Attachment>,
    subscribe_sent: bool,
    /// Cleared once subscribed.
    armed: bool,
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        self.shared.detach(self.attachment);
        let conn = self.attachment.conn.clone();
        let id = self.attachment.subscription_id;
        if !self.subscribe_sent {
            conn.unregister_subscription(id);
            return;
        }
        let rt = tokio::runtime::Handle::try_current()
            .ok()
            .or_else(|| self.shared.runtime.clone());
        // Without a runtime to unsubscribe on, the id stays taken rather than let another
        // consumer receive this subscription's chunks.
        if let Some(rt) = rt {
            rt.spawn(async move {
                let _ = release_subscription(&conn, id).await;
            });
        }
    }
}

/// Unsubscribes `id` and frees it on `conn` once the broker answered (after that answer no
/// Deliver for the id can follow on the wire). When the broker does not answer in time the id
/// stays taken: freeing it could hand a late subscription's chunks to another consumer.
async fn release_subscription(conn: &Connection, id: u8) -> Result<()> {
    if !conn.is_open() {
        conn.unregister_subscription(id);
        return Ok(());
    }
    let answer = conn
        .request("unsubscribe", |correlation_id| {
            Frame::Unsubscribe(Unsubscribe {
                correlation_id,
                subscription_id: id,
            })
        })
        .await
        .and_then(|f| code_of(&f));
    match answer {
        Err(e @ ClientError::Timeout(..)) => Err(e),
        // Already gone on the broker's side (stream deleted meanwhile), or the connection
        // is: either way nothing more comes for the id.
        Ok(ResponseCode::OK | ResponseCode::SUBSCRIPTION_ID_DOES_NOT_EXIST)
        | Err(ClientError::Closed(_)) => {
            conn.unregister_subscription(id);
            Ok(())
        }
        Ok(code) => {
            conn.unregister_subscription(id);
            Err(ClientError::Server {
                operation: "unsubscribe",
                code,
            })
        }
        Err(e) => {
            conn.unregister_subscription(id);
            Err(e)
        }
    }
}

/// What a connection calls for one subscription. Holds the consumer weakly: a connection
/// never keeps a dropped consumer alive.
struct Listener {
    shared: Weak<Shared>,
    attachment: OnceLock<Weak<Attachment>>,
    /// To answer the broker even once the consumer is gone (a reference cycle through the
    /// connection's slots, broken when the id is freed or the connection closes).
    conn: Connection,
}

impl Listener {
    fn parts(&self) -> Option<(Arc<Shared>, Arc<Attachment>)> {
        let shared = self.shared.upgrade()?;
        let attachment = self.attachment.get()?.upgrade()?;
        Some((shared, attachment))
    }

    /// The broker or the connection ended the subscription: recover, or end for good.
    fn ended(&self, reason: &ClientError) {
        if let Some((shared, attachment)) = self.parts() {
            shared.detach(&attachment);
            shared.lost(reason);
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
            // Credit for chunks released after a step-down: the broker keeps it for the next
            // activation and says so with PRECONDITION_FAILED. Expected, not an error.
            if code == ResponseCode::PRECONDITION_FAILED
                && shared.sac
                && !shared.sac_active.load(Ordering::Acquire)
            {
                return;
            }
            let error = ClientError::Server {
                operation: "credit",
                code,
            };
            shared.emit(|ev| ev.error(&error));
        }
    }

    fn consumer_update(&self, correlation_id: u32, active: bool) {
        let Some((shared, attachment)) = self.parts() else {
            // The consumer is going away: the broker must still get an answer in time.
            let _ = self.conn.reply_consumer_update(correlation_id, None);
            return;
        };
        let request = sac::Request {
            attachment,
            correlation_id,
            active,
        };
        // Not a single active consumer (the broker should not ask), or the consumer is going
        // away: keep the Subscribe's offset so the broker is never left waiting.
        let unsent = match &shared.updates {
            Some(tx) => tx.send(request).err().map(|e| e.0),
            None => Some(request),
        };
        if let Some(r) = unsent {
            let _ = r
                .attachment
                .conn
                .reply_consumer_update(correlation_id, None);
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
        let sac = config.is_single_active();
        let (updates, update_rx) = if sac {
            let (tx, rx) = mpsc::unbounded_channel();
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        let shared = Arc::new(Shared {
            stream: stream.into(),
            policy: config.credit_policy,
            reference: config.reference().map(str::to_string),
            progress: Mutex::new(Progress::new(usize::from(config.initial_credit).min(64))),
            config,
            events,
            current: Mutex::new(None),
            phase: Mutex::new(Phase::Open),
            stats: Stats::default(),
            last_delivered: AtomicU64::new(NO_OFFSET),
            limits: DecodeLimits::default(),
            runtime: tokio::runtime::Handle::try_current().ok(),
            committed: AtomicU64::new(0),
            sac,
            sac_active: AtomicBool::new(!sac),
            updates,
            env: env.downgrade(),
            recovery: env.config().recovery,
            log: env.logger().clone(),
            recovering: AtomicBool::new(false),
            resumed: AtomicBool::new(false),
            recoveries: AtomicU64::new(0),
        });
        if let Some(rx) = update_rx {
            // Before Subscribe: the broker may ask right after answering it.
            tokio::spawn(sac::run(Arc::downgrade(&shared), rx));
        }
        // Another consumer may take the last free id of a pooled connection between the
        // pool's check and our registration: try again on a fresh pick.
        for _ in 0..3 {
            let conn = env.data_connection(stream, Role::Consumer).await?;
            shared.check_features(&conn)?;
            let mut offset = shared.config.offset;
            // A single active consumer looks the offset up when it is activated.
            if !sac && shared.config.tracking.is_enabled() {
                let stored = shared.query_stored(&conn).await?;
                lock(&shared.progress).set_stored(stored);
                if let Some(s) = stored {
                    offset = OffsetSpec::Offset(s.saturating_add(1));
                }
            }
            if shared.subscribe(&conn, offset).await? {
                if let Some(every) = shared.config.tracking.interval() {
                    tokio::spawn(store_periodically(Arc::downgrade(&shared), every));
                }
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

    /// False once closed: by [`close`](Self::close), or for good by its stream's deletion or
    /// a connection loss it did not recover from. True while recovering.
    pub fn is_open(&self) -> bool {
        lock(&self.shared.current).is_some() || self.shared.recovering.load(Ordering::Acquire)
    }

    /// True while the consumer is recovering its subscription.
    pub fn is_recovering(&self) -> bool {
        self.shared.recovering.load(Ordering::Acquire)
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
        let mut book = lock(&a.credit);
        a.send_credit(credits)?;
        book.granted += u64::from(credits);
        drop(book);
        self.shared
            .stats
            .credits_granted
            .fetch_add(u64::from(credits), Ordering::Relaxed);
        Ok(())
    }

    /// Stores `offset` on the broker under the consumer's tracking reference
    /// ([`ConsumerConfig::reference`]: the tracking reference, else the name). Fire and
    /// forget: the broker does not answer; [`query_offset`](Self::query_offset) shows when it
    /// is applied. Automatic tracking then skips storing this same offset again.
    /// [`ClientError::InvalidArgument`] without a reference, [`ClientError::Closed`] once
    /// closed. Non-blocking (it queues the frame), from any thread.
    pub fn store_offset(&self, offset: u64) -> Result<()> {
        let s = &self.shared;
        let reference = s.reference()?;
        let a = s.attachment()?;
        let mut p = lock(&s.progress);
        s.send_store(&a, reference, offset)?;
        p.stored(offset);
        Ok(())
    }

    /// Stores the processed offset — the last offset of the chunks the application has
    /// released, in delivery order (see [`TrackingStrategy`]) — unless it is what was stored
    /// last. Returns the offset stored, `None` when there was nothing new (or this single
    /// active consumer is not the active one). Non-blocking, from any thread.
    /// [`ClientError::InvalidArgument`] without a reference, [`ClientError::Closed`] once
    /// closed.
    pub fn store_processed_offset(&self) -> Result<Option<u64>> {
        self.shared.store_processed(false)
    }

    /// The processed offset (see [`store_processed_offset`](Self::store_processed_offset)),
    /// `None` before the first chunk was processed (since the last activation, for a single
    /// active consumer).
    pub fn processed_offset(&self) -> Option<u64> {
        lock(&self.shared.progress).processed_offset()
    }

    /// The offset stored under the tracking reference, `None` when none is.
    /// [`ClientError::InvalidArgument`] without a reference, [`ClientError::Closed`] once
    /// closed.
    pub async fn query_offset(&self) -> Result<Option<u64>> {
        let reference = self.shared.reference()?;
        let a = self.shared.attachment()?;
        query_offset(&a.conn, reference, &self.shared.stream).await
    }

    /// For a single active consumer, whether it is the active one of its group now; `true`
    /// for other consumers while open.
    pub fn is_active(&self) -> bool {
        self.is_open() && self.shared.sac_active.load(Ordering::Acquire)
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
            chunks_received: s.chunks_received.load(Ordering::Relaxed),
            filtered_out: s.filtered_out.load(Ordering::Relaxed),
            offsets_stored: s.offsets_stored.load(Ordering::Relaxed),
            last_stored_offset: s.last_stored.load(Ordering::Relaxed).checked_sub(1),
            recoveries: self.shared.recoveries.load(Ordering::Relaxed),
        }
    }
}

/// One recovery of a consumer: subscribes again as the policy's back-off allows, until it is
/// back, closed, or ends (stream deleted, environment closed, attempts used up). Holds the
/// consumer weakly while it waits.
async fn recover(shared: Weak<Shared>, cause: ClientError) {
    let mut backoff = {
        let Some(s) = shared.upgrade() else { return };
        if let Some(e) = recovery::deleted_stream(s.env.get(), &s.stream, &cause).await {
            s.recovering.store(false, Ordering::Release);
            s.finish(&e);
            return;
        }
        log_at!(
            s.log,
            Level::Warn,
            "consumer",
            "consumer on stream {} lost its subscription ({cause}); recovering",
            s.stream
        );
        s.emit(|ev| ev.state(&StateChange::Recovering { cause: &cause }));
        s.recovery.backoff(recovery::seed(Arc::as_ptr(&s) as usize))
    };
    let mut last = cause;
    let mut attempts = 0u32;
    let end = |s: &Shared, reason: &ClientError| {
        s.recovering.store(false, Ordering::Release);
        s.finish(reason);
    };
    loop {
        let Some(delay) = backoff.next() else {
            if let Some(s) = shared.upgrade() {
                end(&s, &last);
            }
            return;
        };
        tokio::time::sleep(delay).await;
        let Some(s) = shared.upgrade() else { return };
        if *lock(&s.phase) != Phase::Open {
            s.recovering.store(false, Ordering::Release);
            return;
        }
        attempts += 1;
        let Some(env) = s.env.get() else {
            end(
                &s,
                &ClientError::Closed("the environment was closed".into()),
            );
            return;
        };
        match s.resubscribe(&env).await {
            Ok(true) => {
                s.recovering.store(false, Ordering::Release);
                if *lock(&s.phase) != Phase::Open {
                    // Closed while subscribing: undo what `close` could not see.
                    let current = lock(&s.current).take();
                    if let Some(a) = current {
                        a.active.store(false, Ordering::Release);
                        let _ = release_subscription(&a.conn, a.subscription_id).await;
                    }
                    return;
                }
                s.recoveries.fetch_add(1, Ordering::Relaxed);
                s.emit(|ev| ev.state(&StateChange::Recovered { attempts }));
                return;
            }
            Ok(false) => {}
            Err(e) if recovery::is_final(&e) => {
                end(&s, &e);
                return;
            }
            Err(e) => {
                log_at!(
                    s.log,
                    Level::Info,
                    "consumer",
                    "consumer on stream {}: recovery attempt {attempts} failed: {e}",
                    s.stream
                );
                last = e;
            }
        }
    }
}

/// [`TrackingStrategy::Interval`] and [`TrackingStrategy::MessagesOrInterval`]: stores the
/// processed offset every `every` while the consumer lives.
async fn store_periodically(shared: Weak<Shared>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let Some(s) = shared.upgrade() else { return };
        if *lock(&s.phase) != Phase::Open {
            return;
        }
        let _ = s.store_processed(false);
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
