//! Producers: publish messages to one stream with confirms, client-side batching, sub-entry
//! batching with compression, a cap on unconfirmed messages, confirm timeouts and (for named
//! producers) deduplication.
//!
//! # Threading
//!
//! | method | blocks? | call from |
//! |---|---|---|
//! | [`Producer::new`], [`Producer::close`] | async | a Tokio task |
//! | [`Producer::send`], [`Producer::send_batch`] with `wait = None` | never (a short, mostly uncontended lock) | any thread |
//! | [`Producer::send`], [`Producer::send_batch`] with `wait = Some(d)` | up to `d` when the in-flight cap is reached | any thread **but a Tokio worker** |
//! | [`Producer::flush`] | until confirmed or `timeout` | any thread **but a Tokio worker** |
//! | [`Producer::last_publishing_id`], [`Producer::stats`] | never (atomics) | any thread |
//!
//! [`ProducerEvents::confirms`] runs on a Tokio task (the connection's reader task for
//! confirms and broker errors, the producer's housekeeping task for timeouts, the closing task
//! for `Closed`); it may run concurrently with itself and must not block. Every message a send
//! accepted (an `Ok` from `send`, or counted by `send_batch`) gets exactly one [`Confirm`];
//! a message that was not accepted gets none.
//!
//! # How it works
//!
//! A send reserves room in the in-flight cap with one atomic compare-and-swap (a Mutex and
//! Condvar are used only when the cap is reached), then takes the producer's frame lock once
//! per call, assigns publishing ids, notes `(tag, send time)` in a preallocated ring indexed by
//! publishing id, and encodes the messages straight into the current Publish frame (one copy
//! of each body; AMQP wrapping written in place). Full frames go to
//! [`Connection::send_bytes`] as one [`Bytes`] each, in publishing-id order
//! (they are handed over under the same lock that assigns the ids). A partial frame waits at
//! most `batch_delay`: one housekeeping task per producer, woken by a [`Notify`] when a frame
//! gets its first message, sends it when it is due, and sweeps the ring for confirm timeouts.
//!
//! The frame lock is per producer and held for the time it takes to copy the messages of one
//! call; senders on different threads serialise on it (ids must reach the wire in order
//! anyway), the connection's reader task never takes it on the confirm path.
//!
//! The producer's state is not tied to a connection: the connection and publisher id live
//! behind the frame lock and are attached in one internal step (register the listener, then
//! DeclarePublisher), with a generation number that makes callbacks from a previous
//! attachment harmless — the hook automatic recovery needs (re-declare on a new connection,
//! then resend what is unconfirmed).
//!
//! With sub-entry batching ([`ProducerConfig::sub_entry_size`]) messages are first appended
//! as records to the open sub-entry (`subentry.rs`: one staging buffer, kept), which is sealed
//! when full, when the next message would not fit (`frame_max`, 64 MiB uncompressed) or does
//! not follow in id, or with the partial frame; sealing compresses it with a codec kept for
//! the producer's lifetime and appends it to the frame under the id of its last message. The
//! ring then holds one slot per sub-entry, whose value locates the run of its messages' tags
//! in a preallocated tag ring (`tags.rs`), so one confirm fans out to one [`Confirm`] per
//! message with no allocation.
//!
//! Not yet: recovery.

mod frame;
mod ring;
mod subentry;
mod tags;

use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tokio::sync::Notify;

use super::blocking::wait_until;
use super::connection::{Connection, PublisherListener};
use super::environment::{
    Environment, Role, WeakEnvironment, check_name, code_of, query_publisher_sequence,
};
use super::error::{ClientError, Result};
use super::log::{Level, Log, log_at};
use super::recovery::{self, RecoveryPolicy, StateChange};
use crate::protocol::amqp::MessageBuilder;
use crate::protocol::codes::{ResponseCode, key};
use crate::protocol::commands::{
    DeclarePublisher, DeletePublisher, Frame, PUBLISH_HEADER_LEN, PublishVersion, PublishingError,
};
pub use crate::protocol::compression::Compression;
use crate::protocol::compression::MAX_UNCOMPRESSED_SUB_ENTRY_SIZE;
use frame::{FrameBuf, encoded_body_len, entry_len};
use ring::{FREE, Ring};
pub use subentry::MAX_SUB_ENTRY_RECORDS;
use subentry::{SUB_ENTRY_OVERHEAD, SubEntryBuf, batch_fits, record_len};
use tags::Tags;

/// Default [`ProducerConfig::batch_size`].
pub const DEFAULT_BATCH_SIZE: usize = 100;
/// Default [`ProducerConfig::batch_delay`].
pub const DEFAULT_BATCH_DELAY: Duration = Duration::from_millis(5);
/// The cap [`ProducerConfig::max_in_flight`] `None` stands for, without sub-entry batching:
/// enough to keep the broker busy, no more. Measured with rmqs-perf, 1M x 100 B at saturation
/// (median of 5): 1000 in flight gave 426k msg/s and confirm p99 6 ms; 2000, 429k and 13 ms;
/// 5000, 393k and 26 ms; 10 000, 385k and 51 ms (what is not needed to keep the broker busy
/// only waits in its queue: Little's law). 1000 B bodies: 175k msg/s with 1000, 148k with
/// 10 000.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 1_000;
/// The cap [`ProducerConfig::max_in_flight`] `None` stands for with sub-entry batching, whose
/// frames carry many messages per broker entry: 5M x 100 B in sub-entries of 100 reached
/// 1.87M msg/s with 10 000 in flight, 1.10M with 1000.
pub const DEFAULT_MAX_IN_FLIGHT_SUB_ENTRIES: usize = 10_000;
/// Default [`ProducerConfig::confirm_timeout`].
pub const DEFAULT_CONFIRM_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest accepted [`ProducerConfig::batch_size`]: a Publish frame of more messages would
/// not fit the usual `frame_max` anyway.
pub const MAX_BATCH_SIZE: usize = 65_535;
/// Largest accepted [`ProducerConfig::max_in_flight`] (the ring costs 24 bytes per slot).
pub const MAX_IN_FLIGHT_LIMIT: usize = 1 << 24;

/// Settings of one producer. Build it with `..Default::default()`: fields may be added.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerConfig {
    /// `Some(name)` makes a named, deduplicating producer: the broker drops any message whose
    /// publishing id is not above the last one it kept for that name on the stream (and still
    /// confirms it). 1 to 255 bytes. At start the producer asks the broker for that last id and
    /// continues after it. Only one producer per name and stream may be live at a time.
    /// `None` (default): anonymous, ids start at 0.
    pub name: Option<String>,
    /// Most messages per Publish frame (default 100, as the Java, Go, .NET and JS clients:
    /// at high rates frames fill long before `batch_delay`, and 100 keeps a frame of typical
    /// messages well under the default 1 MiB `frame_max`). A frame is also cut before it would
    /// exceed the connection's negotiated `frame_max`. At least 1.
    ///
    /// With sub-entry batching the messages of a frame's sub-entries count: a frame goes once
    /// it holds `batch_size` messages or more (a sub-entry is never split, so a frame carries
    /// at least one whole sub-entry).
    pub batch_size: usize,
    /// How long a partial frame may wait for more messages before it is sent (default 5 ms:
    /// bounds the latency batching adds at low rates, while at a few tens of thousands of
    /// messages per second and more frames fill up and go out at once; Java's 100 ms default
    /// is a common latency complaint). `Duration::ZERO`: every `send`/`send_batch` call sends
    /// its frame before returning.
    pub batch_delay: Duration,
    /// Dynamic batching (default false): a partial frame goes at once when nothing sent
    /// before it is still unconfirmed, and otherwise as soon as everything sent before it is
    /// confirmed (or it fills, or `batch_delay` passes), as the Java client's `dynamicBatch`
    /// does. Measured with one producer and one consumer: confirm p50 0.21 ms instead of
    /// 3.5 ms at 1k msg/s, 0.38 ms instead of 4.2 ms at 10k msg/s, 0.7 ms instead of 1.3 ms at
    /// 50k msg/s; but 1.7-3.5x the client's and 2-4.5x the broker's CPU per message at those
    /// rates, as frames carry fewer messages. At saturation frames fill either way. Not used
    /// with sub-entry batching.
    pub dynamic_batch: bool,
    /// Cap on accepted but not yet completed messages. `None` (default): 1000
    /// ([`DEFAULT_MAX_IN_FLIGHT`]), or 10 000 with sub-entry batching
    /// ([`DEFAULT_MAX_IN_FLIGHT_SUB_ENTRIES`]) — what kept the broker busiest in measurements;
    /// a deeper queue only adds confirm latency (Java's `maxUnconfirmedMessages` is 10 000 for
    /// every case). A send beyond it fails with [`ClientError::QueueFull`] or blocks, as the
    /// caller chooses. `Some(n)`: exactly `n`, 1 to [`MAX_IN_FLIGHT_LIMIT`]. The in-flight
    /// ring takes 24 bytes per slot, rounded up to a power of two (24 KiB for 1000; sub-entry
    /// batching adds a tag ring of 9 bytes per slot).
    pub max_in_flight: Option<usize>,
    /// A message not confirmed this long after it was accepted completes with
    /// [`ConfirmStatus::Timeout`] (default 30 s, as Java). `Duration::ZERO`: never. A confirm
    /// arriving later is ignored. Checked every `timeout / 8` (10 ms to 1 s); counted from
    /// when the frame (or sub-entry) the message joined was started, which is at most
    /// [`batch_delay`](Self::batch_delay) before the send.
    pub confirm_timeout: Duration,
    /// Sub-entry batching: 0 or 1 (default) publishes each message as its own entry; N from
    /// 2 to 65 535 packs up to N consecutive messages into one sub-entry, compressed with
    /// [`compression`](Self::compression). The broker stores a sub-entry as one entry whose
    /// records get consecutive offsets; consumers see the messages one by one.
    ///
    /// A sub-entry goes out with one publishing id, that of its last message; messages still
    /// get their own ids (consecutive within a sub-entry: an explicit id that does not follow
    /// the previous one starts a new sub-entry) and each its own [`Confirm`] with its own tag
    /// — all of a sub-entry's messages share its outcome. A partial sub-entry waits at most
    /// `batch_delay`, like a partial frame (with `Duration::ZERO` each `send`/`send_batch`
    /// call seals its own, so only a batch call packs several messages). A sub-entry is cut
    /// early when its worst-case
    /// compressed size would not fit `frame_max` or its records would exceed the broker's
    /// 64 MiB uncompressed cap (`stream.max_uncompressed_sub_entry_batch_size`, enforced since
    /// RabbitMQ 4.3.5).
    ///
    /// Restrictions: no filter values (the broker cannot combine them with sub-entries: a
    /// message with one is refused with [`ClientError::InvalidArgument`]). Deduplication of a
    /// named producer works per sub-entry, not per message: the broker keeps or drops a whole
    /// sub-entry by its id, so a resend is deduplicated exactly only if it regroups the
    /// messages as before. A restarted named producer still resumes right after the last
    /// sub-entry the broker kept.
    pub sub_entry_size: usize,
    /// Codec of sub-entries (default [`Compression::None`]); ignored without sub-entry
    /// batching. The Java, Go, .NET and Python clients decode all five (framed Snappy, LZ4
    /// frame format). The broker never decompresses.
    pub compression: Compression,
}

impl Default for ProducerConfig {
    fn default() -> Self {
        ProducerConfig {
            name: None,
            batch_size: DEFAULT_BATCH_SIZE,
            batch_delay: DEFAULT_BATCH_DELAY,
            dynamic_batch: false,
            max_in_flight: None,
            confirm_timeout: DEFAULT_CONFIRM_TIMEOUT,
            sub_entry_size: 0,
            compression: Compression::None,
        }
    }
}

impl ProducerConfig {
    /// Checks the settings ([`ClientError::InvalidArgument`] naming the bad one).
    pub fn validate(&self) -> Result<()> {
        if let Some(name) = &self.name {
            check_name("producer name", name)?;
        }
        if self.batch_size == 0 || self.batch_size > MAX_BATCH_SIZE {
            return Err(ClientError::InvalidArgument(format!(
                "batch_size must be 1 to {MAX_BATCH_SIZE}, got {}",
                self.batch_size
            )));
        }
        if let Some(n) = self
            .max_in_flight
            .filter(|n| !(1..=MAX_IN_FLIGHT_LIMIT).contains(n))
        {
            return Err(ClientError::InvalidArgument(format!(
                "max_in_flight must be 1 to {MAX_IN_FLIGHT_LIMIT}, got {n}"
            )));
        }
        if self.sub_entry_size > MAX_SUB_ENTRY_RECORDS {
            return Err(ClientError::InvalidArgument(format!(
                "sub_entry_size must be 0 to {MAX_SUB_ENTRY_RECORDS}, got {}",
                self.sub_entry_size
            )));
        }
        Ok(())
    }

    /// Whether sub-entry batching is on (`sub_entry_size` of 2 or more).
    pub fn sub_entries(&self) -> bool {
        self.sub_entry_size > 1
    }

    /// The in-flight cap in effect: [`max_in_flight`](Self::max_in_flight), or its default.
    pub fn in_flight_cap(&self) -> usize {
        match self.max_in_flight {
            Some(n) => n,
            None if self.sub_entries() => DEFAULT_MAX_IN_FLIGHT_SUB_ENTRIES,
            None => DEFAULT_MAX_IN_FLIGHT,
        }
    }
}

/// How a message ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConfirmStatus {
    /// The broker stored it (or, for a named producer, already had that publishing id and
    /// dropped it as a duplicate).
    Confirmed,
    /// The broker refused it (PublishError), e.g. `PUBLISHER_DOES_NOT_EXIST`.
    Server(ResponseCode),
    /// Not confirmed within [`ProducerConfig::confirm_timeout`]; the broker may still have it.
    Timeout,
    /// The producer was closed, or its connection or stream was lost, before a confirm came;
    /// the broker may still have it.
    Closed,
}

impl ConfirmStatus {
    /// True for [`ConfirmStatus::Confirmed`].
    pub fn is_confirmed(self) -> bool {
        self == ConfirmStatus::Confirmed
    }
}

/// The outcome of one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Confirm {
    /// The message's publishing id (as returned by [`Producer::send`]). With sub-entry
    /// batching the sub-entry went out under the id of its last message.
    pub publishing_id: u64,
    /// The caller's [`OutgoingMessage::tag`].
    pub tag: usize,
    pub status: ConfirmStatus,
}

/// Receives message outcomes.
pub trait ProducerEvents: Send + Sync + 'static {
    /// A batch of outcomes: one call per PublishConfirm or PublishError frame, per timeout
    /// sweep, or for everything still in flight at close or connection loss. Called on a Tokio
    /// task, possibly concurrently from several; must return quickly and never block (hand
    /// the batch to another thread if there is work to do). Must not call
    /// [`Producer::flush`] or a blocking send. A panic is caught and ignored.
    fn confirms(&self, batch: &[Confirm]);
    /// The producer lost its connection or its stream's leader and is recovering, or is back
    /// (see [`RecoveryPolicy`]). Called on a Tokio task, in order,
    /// never concurrently with itself; same rules as [`confirms`](Self::confirms). The default
    /// ignores it.
    fn state(&self, change: &StateChange<'_>) {
        let _ = change;
    }
    /// The producer stopped for good without the application closing it: its stream was
    /// deleted, recovery is turned off, or its attempts ran out. Sends fail with `reason`
    /// from now on. Called once, after the confirms of everything that was in flight. The
    /// default ignores it.
    fn closed(&self, reason: &ClientError) {
        let _ = reason;
    }
}

impl<F> ProducerEvents for F
where
    F: Fn(&[Confirm]) + Send + Sync + 'static,
{
    fn confirms(&self, batch: &[Confirm]) {
        self(batch)
    }
}

/// How an [`OutgoingMessage`] is put on the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum BodyFormat<'a> {
    /// Its body as it is. Stream clients read them back as raw bytes; AMQP clients cannot
    /// decode them.
    Raw,
    /// Its body as the single data section of an AMQP 1.0 message (5 or 8 bytes of header
    /// written in front of the body while it is copied into the frame: no extra copy, no
    /// allocation), so the Java, Go, .NET and Python clients and AMQP 0.9.1/1.0 consumers
    /// decode them. The default.
    #[default]
    AmqpData,
    /// A whole AMQP 1.0 message (header, annotations, properties, application properties,
    /// body sections, footer): the builder's buffers are copied into the frame behind the
    /// section headers, with no intermediate encoding and no allocation. The message's
    /// `body` field is ignored.
    Message(&'a MessageBuilder),
    /// The sections of a whole AMQP 1.0 message with the message's `body` as its one data
    /// section in place of the builder's body: one builder with fixed sections sends every
    /// body without being changed (so several threads may share it). Written as
    /// [`BodyFormat::Message`] is.
    MessageWithBody(&'a MessageBuilder),
}

impl BodyFormat<'_> {
    /// Whether the stored bytes are an AMQP 1.0 message.
    pub fn is_amqp(&self) -> bool {
        !matches!(self, BodyFormat::Raw)
    }
}

/// One message to send; borrowed for the duration of the call only (copied into the frame).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutgoingMessage<'a> {
    /// The body (ignored for [`BodyFormat::Message`], whose builder holds it).
    pub body: &'a [u8],
    pub format: BodyFormat<'a>,
    /// Filter value for broker-side filtering (Publish v2, RabbitMQ 3.13+), at most 32767
    /// bytes. Not with sub-entry batching.
    pub filter_value: Option<&'a str>,
    /// An explicit publishing id (must be above every id this producer used before, and not
    /// `u64::MAX`); `None` = the previous id + 1.
    pub publishing_id: Option<u64>,
    /// Returned in this message's [`Confirm`].
    pub tag: usize,
}

impl<'a> OutgoingMessage<'a> {
    /// An AMQP-data message with no filter value, an automatic id and tag 0.
    pub fn new(body: &'a [u8]) -> Self {
        OutgoingMessage {
            body,
            format: BodyFormat::AmqpData,
            filter_value: None,
            publishing_id: None,
            tag: 0,
        }
    }

    /// A raw-bytes message with no filter value, an automatic id and tag 0.
    pub fn raw(body: &'a [u8]) -> Self {
        OutgoingMessage {
            format: BodyFormat::Raw,
            ..Self::new(body)
        }
    }

    /// The AMQP 1.0 message `message` ([`BodyFormat::Message`]), with no filter value, an
    /// automatic id and tag 0.
    pub fn message(message: &'a MessageBuilder) -> Self {
        OutgoingMessage {
            format: BodyFormat::Message(message),
            ..Self::new(&[])
        }
    }

    /// The AMQP message being sent, for [`BodyFormat::Message`] and
    /// [`BodyFormat::MessageWithBody`] (whose body is then [`Self::body`]).
    pub fn amqp_message(&self) -> Option<&'a MessageBuilder> {
        match self.format {
            BodyFormat::Message(m) | BodyFormat::MessageWithBody(m) => Some(m),
            _ => None,
        }
    }

    /// Sets the tag.
    pub fn tag(mut self, tag: usize) -> Self {
        self.tag = tag;
        self
    }

    /// Sets the filter value.
    pub fn filter_value(mut self, value: &'a str) -> Self {
        self.filter_value = Some(value);
        self
    }

    /// Sets an explicit publishing id.
    pub fn publishing_id(mut self, id: u64) -> Self {
        self.publishing_id = Some(id);
        self
    }
}

/// The size of a message as the application sees it: its body, or its encoded AMQP message.
fn message_len(m: &OutgoingMessage<'_>) -> usize {
    match m.format {
        BodyFormat::Message(b) => b.encoded_len(),
        BodyFormat::MessageWithBody(b) => b.encoded_len_with_body(m.body.len()),
        _ => m.body.len(),
    }
}

/// Counters of one producer, readable at any time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ProducerStats {
    /// Messages accepted by `send`/`send_batch`.
    pub published: u64,
    /// Messages completed with [`ConfirmStatus::Confirmed`].
    pub confirmed: u64,
    /// Messages completed with any other status.
    pub errored: u64,
    /// Messages accepted and not completed yet (those whose confirm callback is running
    /// included).
    pub in_flight: u64,
    /// Recoveries completed (the link lost and restored).
    pub recoveries: u64,
    /// Publish entries sent again by recoveries (messages; a sub-entry counts once).
    pub republished: u64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A poisoned lock means a panic elsewhere; every critical section leaves the state
    // consistent at each step.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// How long a send may wait for room.
#[derive(Debug, Clone, Copy)]
enum Wait {
    No,
    /// Up to this long, from the first time the sender has to block (no clock is read
    /// while there is room).
    For(Duration),
    /// Deadline, and the wait it came from (for the error).
    Until(Instant, Duration),
    Forever,
}

impl Wait {
    fn from(wait: Option<Duration>) -> Wait {
        wait.map_or(Wait::No, Wait::For)
    }

    /// The deadline (`None`: none), fixed when first asked; `Err` for no waiting at all.
    fn deadline(&mut self) -> std::result::Result<Option<Instant>, ()> {
        match *self {
            Wait::No => Err(()),
            Wait::For(d) => {
                *self = Instant::now()
                    .checked_add(d)
                    .map_or(Wait::Forever, |at| Wait::Until(at, d));
                self.deadline()
            }
            Wait::Until(at, _) => Ok(Some(at)),
            Wait::Forever => Ok(None),
        }
    }
}

/// The time of a send, read from the clock at most once and only when something needs it: a
/// clock read cost as much as the rest of a send here (a virtual machine's clock), so messages
/// joining an open frame take the frame's start instead.
pub(super) struct SendClock {
    epoch: Instant,
    now: Option<(Instant, u64)>,
}

impl SendClock {
    fn new(epoch: Instant) -> SendClock {
        SendClock { epoch, now: None }
    }

    /// A clock that reads `now` and `ms` (tests).
    #[cfg(test)]
    pub(super) fn fixed(now: Instant, ms: u64) -> SendClock {
        SendClock {
            epoch: now,
            now: Some((now, ms)),
        }
    }

    /// The instant and the milliseconds since the producer's epoch.
    pub(super) fn get(&mut self) -> (Instant, u64) {
        let epoch = self.epoch;
        *self.now.get_or_insert_with(|| {
            let now = Instant::now();
            (now, ms_since(epoch, now))
        })
    }
}

fn ms_since(epoch: Instant, now: Instant) -> u64 {
    now.saturating_duration_since(epoch).as_millis() as u64
}

/// The connection a producer publishes through.
struct Link {
    conn: Connection,
    publisher_id: u8,
}

/// A finished Publish frame kept until every entry in it is completed: what a recovery
/// sends again (only the entries still in flight, under the new publisher id).
struct Retained {
    frame: Bytes,
    entries: usize,
    /// Went out on a connection (so its outcome is unknown when it is not confirmed).
    sent: bool,
}

/// What the frame lock protects.
struct Batch {
    /// `None` once closed, and while recovering.
    link: Option<Link>,
    /// The publisher id frames are begun with: the link's, or the lost link's while
    /// recovering (patched when re-sent).
    publisher_id: u8,
    /// The link is lost and a recovery task is bringing it back: frames are kept, not sent.
    recovering: bool,
    /// Finished frames with entries that may still be in flight, oldest first.
    retained: VecDeque<Retained>,
    /// Entries in `retained`.
    retained_entries: usize,
    /// Why sends fail; `None` while open.
    closed: Option<ClientError>,
    frame: FrameBuf,
    /// The open sub-entry (sub-entry batching only).
    sub: Option<SubEntryBuf>,
    /// Last publishing id assigned by this producer.
    last_id: Option<u64>,
    /// Id of the first automatic message (0, or a named producer's broker sequence + 1).
    first_auto_id: u64,
    /// The housekeeping task has no partial frame to time and waits for `Signals::linger`.
    /// Only then does a new frame signal it: while it times one, it finds the next frame
    /// when that one is due, so a frame costs no wake-up of the runtime.
    linger_idle: bool,
}

/// Wake-ups of the housekeeping task (held strongly by it; it holds the rest weakly).
struct Signals {
    /// A frame got its first message while the housekeeping task was idle (`Batch::linger_idle`).
    linger: Notify,
    /// The producer is closed or dropped.
    stop: Notify,
    /// The same, for a recovery task waiting between attempts (`notify_waiters`).
    halt: Notify,
    /// The timeout sweep stopped ticking: nothing was in flight (see `housekeeping`).
    sweep_parked: AtomicBool,
    /// Messages went in flight while the sweep was parked.
    sweep: Notify,
}

struct Shared {
    stream: String,
    name: Option<String>,
    config: ProducerConfig,
    events: Arc<dyn ProducerEvents>,
    runtime: tokio::runtime::Handle,
    epoch: Instant,
    /// Where a recovery finds a new connection (`None`: detached, in unit tests).
    env: Option<WeakEnvironment>,
    recovery: RecoveryPolicy,
    log: Log,
    /// Mirrors `Batch::recovering` for the timeout sweep.
    recovering: AtomicBool,

    batch: Mutex<Batch>,
    ring: Ring,
    /// Tags of in-flight sub-entries (sub-entry batching only).
    tags: Option<Tags>,
    /// Accepted and not completed (the in-flight cap counts this).
    in_flight: AtomicUsize,
    /// Messages in the open plain frame, not sent yet (written under the frame lock, read by
    /// the confirm path for dynamic batching).
    unsent: AtomicUsize,
    /// False once closed or lost (blocked senders check it).
    accepting: AtomicBool,
    close_started: AtomicBool,

    /// Threads blocked in `reserve` or `flush`, parked on `wait_cv`.
    waiters: AtomicUsize,
    wait_lock: Mutex<()>,
    wait_cv: Condvar,
    /// `in_flight` reached 0 (for the async `close`).
    drained: Notify,
    signals: Arc<Signals>,

    /// Facts of the current link, readable without the frame lock.
    frame_max: AtomicUsize,
    supports_v2: AtomicBool,
    broker_version: Mutex<String>,
    generation: AtomicU64,

    /// Last assigned id + 1 (0 = none).
    last_id: AtomicU64,
    /// Written only by senders, under the batch lock.
    published: AtomicU64,
    confirmed: AtomicU64,
    errored: AtomicU64,
    recoveries: AtomicU64,
    republished: AtomicU64,
    /// Reused buffer of the confirm path.
    scratch: Mutex<Vec<Confirm>>,
}

/// Registered with the connection; forwards to the producer while it is the current link.
struct Listener {
    shared: Weak<Shared>,
    generation: u64,
}

impl Listener {
    fn current(&self) -> Option<Arc<Shared>> {
        self.shared
            .upgrade()
            .filter(|s| s.generation.load(Ordering::Acquire) == self.generation)
    }
}

impl PublisherListener for Listener {
    fn confirmed(&self, publishing_ids: &[u64]) {
        if let Some(s) = self.current() {
            s.complete(
                publishing_ids
                    .iter()
                    .map(|&id| (id, ConfirmStatus::Confirmed)),
            );
        }
    }

    fn errored(&self, errors: &[PublishingError]) {
        if let Some(s) = self.current() {
            s.complete(
                errors
                    .iter()
                    .map(|e| (e.publishing_id, ConfirmStatus::Server(e.code))),
            );
        }
    }

    fn stream_unavailable(&self, code: ResponseCode) {
        if let Some(s) = self.current() {
            s.link_lost(ClientError::Server {
                operation: "publish (metadata update)",
                code,
            });
        }
    }

    fn connection_closed(&self, reason: &ClientError) {
        if let Some(s) = self.current() {
            s.link_lost(reason.clone());
        }
    }
}

impl Shared {
    /// A producer's state, attached to no connection yet.
    #[allow(clippy::too_many_arguments)]
    fn new(
        stream: &str,
        config: ProducerConfig,
        events: Arc<dyn ProducerEvents>,
        first_auto_id: u64,
        last_id: u64,
        runtime: tokio::runtime::Handle,
        env: Option<WeakEnvironment>,
        recovery: RecoveryPolicy,
        log: Log,
    ) -> Arc<Shared> {
        Arc::new(Shared {
            stream: stream.to_string(),
            name: config.name.clone(),
            ring: Ring::new(config.in_flight_cap()),
            tags: config
                .sub_entries()
                .then(|| Tags::new(config.in_flight_cap())),
            events,
            runtime,
            epoch: Instant::now(),
            env,
            recovery,
            log,
            recovering: AtomicBool::new(false),
            batch: Mutex::new(Batch {
                link: None,
                publisher_id: 0,
                recovering: false,
                retained: VecDeque::new(),
                retained_entries: 0,
                closed: None,
                frame: FrameBuf::new(),
                sub: config
                    .sub_entries()
                    .then(|| SubEntryBuf::new(config.compression, config.sub_entry_size)),
                last_id: None,
                first_auto_id,
                linger_idle: true,
            }),
            in_flight: AtomicUsize::new(0),
            unsent: AtomicUsize::new(0),
            accepting: AtomicBool::new(true),
            close_started: AtomicBool::new(false),
            waiters: AtomicUsize::new(0),
            wait_lock: Mutex::new(()),
            wait_cv: Condvar::new(),
            drained: Notify::new(),
            signals: Arc::new(Signals {
                linger: Notify::new(),
                stop: Notify::new(),
                halt: Notify::new(),
                sweep_parked: AtomicBool::new(false),
                sweep: Notify::new(),
            }),
            frame_max: AtomicUsize::new(0),
            supports_v2: AtomicBool::new(false),
            broker_version: Mutex::new(String::new()),
            generation: AtomicU64::new(0),
            last_id: AtomicU64::new(last_id),
            published: AtomicU64::new(0),
            confirmed: AtomicU64::new(0),
            errored: AtomicU64::new(0),
            recoveries: AtomicU64::new(0),
            republished: AtomicU64::new(0),
            scratch: Mutex::new(Vec::new()),
            config,
        })
    }

    fn now_ms(&self, now: Instant) -> u64 {
        ms_since(self.epoch, now)
    }

    /// Registers a listener on `conn` (a new generation: callbacks of earlier links are
    /// ignored from now on) and declares the publisher there; returns its id.
    async fn declare(self: &Arc<Self>, conn: &Connection) -> Result<u8> {
        let generation = self.generation.fetch_add(1, Ordering::AcqRel) + 1;
        let listener = Arc::new(Listener {
            shared: Arc::downgrade(self),
            generation,
        });
        let Some(publisher_id) = conn.register_publisher(&self.stream, listener)? else {
            return Err(ClientError::InvalidArgument(format!(
                "the connection to {}:{} has no free publisher id",
                conn.endpoint().host,
                conn.endpoint().port
            )));
        };
        let declared = conn
            .request("declare publisher", |correlation_id| {
                Frame::DeclarePublisher(DeclarePublisher {
                    correlation_id,
                    publisher_id,
                    publisher_reference: self.name.clone().unwrap_or_default(),
                    stream: self.stream.clone(),
                })
            })
            .await
            .and_then(|f| code_of(&f))
            .and_then(|code| ClientError::check("declare publisher", code));
        if let Err(e) = declared {
            conn.unregister_publisher(publisher_id);
            return Err(e);
        }
        let info = conn.info();
        let frame_max = match info.frame_max {
            0 => u32::MAX as usize,
            n => n as usize,
        };
        self.frame_max.store(frame_max, Ordering::Relaxed);
        self.supports_v2
            .store(info.supports(key::PUBLISH, 2), Ordering::Relaxed);
        *lock(&self.broker_version) = info.version_string().to_string();
        Ok(publisher_id)
    }

    /// Declares the publisher on `conn` and makes it the link.
    async fn attach(self: &Arc<Self>, conn: Connection) -> Result<()> {
        let publisher_id = self.declare(&conn).await?;
        let mut b = lock(&self.batch);
        b.publisher_id = publisher_id;
        b.link = Some(Link { conn, publisher_id });
        Ok(())
    }

    /// One recovery attempt: a connection to the stream's leader, DeclarePublisher, then,
    /// under the frame lock (so nothing new overtakes them), every retained entry still in
    /// flight sent again with its original publishing id, before the link is restored.
    /// `Ok(false)` when the producer was closed meanwhile.
    async fn reattach(self: &Arc<Self>, env: &Environment) -> Result<bool> {
        let conn = env.data_connection(&self.stream, Role::Leader).await?;
        let publisher_id = self.declare(&conn).await?;
        match self.restore(&conn, publisher_id) {
            Ok(Some(resent)) => {
                self.republished.fetch_add(resent, Ordering::Relaxed);
                log_at!(
                    self.log,
                    Level::Info,
                    "producer",
                    "producer on stream {} recovered on {}:{}: {resent} entries sent again",
                    self.stream,
                    conn.endpoint().host,
                    conn.endpoint().port
                );
                Ok(true)
            }
            Ok(None) => {
                delete_publisher(&conn, publisher_id, None).await;
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// The synchronous end of [`Self::reattach`]: under the frame lock, re-sends and restores
    /// the link. How many entries went again; `None` when the producer was closed meanwhile.
    fn restore(&self, conn: &Connection, publisher_id: u8) -> Result<Option<u64>> {
        let now_ms = self.now_ms(Instant::now());
        let mut b = lock(&self.batch);
        if b.closed.is_some() {
            return Ok(None);
        }
        let mut out = BytesMut::new();
        let mut resent = 0u64;
        for r in b.retained.iter_mut() {
            let n = frame::rebuild(
                &r.frame,
                publisher_id,
                |id| {
                    let live = self.ring.contains(id);
                    if live {
                        self.ring.touch(id, now_ms);
                    }
                    live
                },
                &mut out,
            );
            if n == 0 {
                continue;
            }
            conn.send_bytes(out.split().freeze())?;
            r.sent = true;
            resent += u64::from(n);
        }
        b.frame.set_publisher_id(publisher_id);
        b.publisher_id = publisher_id;
        b.link = Some(Link {
            conn: conn.clone(),
            publisher_id,
        });
        b.recovering = false;
        self.recovering.store(false, Ordering::Release);
        // Lost again before the link was in place: its listener found the producer still
        // recovering and left it to this task.
        if !conn.is_open() {
            b.link = None;
            b.recovering = true;
            self.recovering.store(true, Ordering::Release);
            return Err(conn
                .close_reason()
                .unwrap_or_else(|| ClientError::Closed("connection lost again".into())));
        }
        Ok(Some(resent))
    }

    /// The error a send gets once the producer stopped accepting.
    fn closed_error(&self) -> ClientError {
        lock(&self.batch)
            .closed
            .clone()
            .unwrap_or_else(|| ClientError::Closed("the producer is closed".into()))
    }

    /// Checks what can be checked without the frame lock.
    fn check_message(&self, m: &OutgoingMessage<'_>, frame_max: usize) -> Result<()> {
        if self.config.sub_entries() {
            return self.check_sub_entry_message(m, frame_max);
        }
        let version = match m.filter_value {
            None => PublishVersion::V1,
            Some(f) => {
                if !self.supports_v2.load(Ordering::Relaxed) {
                    return Err(ClientError::Unsupported {
                        feature: "publishing with a filter value (Publish v2)",
                        needs: "3.13",
                        broker: lock(&self.broker_version).clone(),
                    });
                }
                if f.len() > i16::MAX as usize {
                    return Err(ClientError::InvalidArgument(format!(
                        "a filter value is at most {} bytes, got {}",
                        i16::MAX,
                        f.len()
                    )));
                }
                PublishVersion::V2
            }
        };
        if m.publishing_id == Some(FREE) {
            return Err(ClientError::InvalidArgument(
                "publishing id u64::MAX is reserved".into(),
            ));
        }
        let body = encoded_body_len(m.format, m.body.len());
        let entry = entry_len(version, m.filter_value, m.format, m.body.len());
        if body > i32::MAX as usize || PUBLISH_HEADER_LEN + entry > frame_max {
            let amqp = match m.format {
                BodyFormat::AmqpData => " with its AMQP data-section header",
                BodyFormat::Raw => "",
                BodyFormat::Message(_) | BodyFormat::MessageWithBody(_) => {
                    " as an encoded AMQP message"
                }
            };
            return Err(ClientError::InvalidArgument(format!(
                "a message of {} bytes takes {entry} bytes as a publish entry ({body} bytes of \
                 body{amqp}); with the {PUBLISH_HEADER_LEN}-byte frame header that exceeds the \
                 connection's frame_max of {frame_max} bytes",
                message_len(m)
            )));
        }
        Ok(())
    }

    /// [`Self::check_message`] with sub-entry batching.
    fn check_sub_entry_message(&self, m: &OutgoingMessage<'_>, frame_max: usize) -> Result<()> {
        if m.filter_value.is_some() {
            return Err(ClientError::InvalidArgument(
                "a message with a filter value cannot be sent with sub-entry batching (the \
                 broker cannot combine filter values with sub-entries)"
                    .into(),
            ));
        }
        if m.publishing_id == Some(FREE) {
            return Err(ClientError::InvalidArgument(
                "publishing id u64::MAX is reserved".into(),
            ));
        }
        let kind = self.config.compression;
        let record = record_len(m.format, m.body.len());
        if !batch_fits(kind, record, frame_max) {
            let limit = if record > MAX_UNCOMPRESSED_SUB_ENTRY_SIZE {
                format!(
                    "the broker's {MAX_UNCOMPRESSED_SUB_ENTRY_SIZE}-byte cap on a sub-entry's \
                     uncompressed size"
                )
            } else {
                format!(
                    "the connection's frame_max of {frame_max} bytes once the {PUBLISH_HEADER_LEN}-byte \
                     frame header, {SUB_ENTRY_OVERHEAD} bytes of sub-entry header and the \
                     worst-case {} expansion are added",
                    kind.name()
                )
            };
            return Err(ClientError::InvalidArgument(format!(
                "a message of {} bytes takes {record} bytes as a sub-entry record, which \
                 exceeds {limit}",
                message_len(m)
            )));
        }
        Ok(())
    }

    /// Takes up to `want` places in the in-flight cap without waiting; how many were taken.
    fn try_reserve(&self, want: usize) -> usize {
        let max = self.config.in_flight_cap();
        let mut cur = self.in_flight.load(Ordering::SeqCst);
        loop {
            let free = max.saturating_sub(cur);
            if free == 0 {
                return 0;
            }
            let take = free.min(want);
            match self.in_flight.compare_exchange_weak(
                cur,
                cur + take,
                Ordering::SeqCst,
                Ordering::SeqCst,
            ) {
                Ok(_) => {
                    if cur == 0 {
                        self.signals.unpark_sweep();
                    }
                    return take;
                }
                Err(now) => cur = now,
            }
        }
    }

    /// Takes 1 to `want` places in the in-flight cap, waiting as allowed.
    fn reserve(self: &Arc<Self>, want: usize, wait: &mut Wait) -> Result<usize> {
        let got = self.try_reserve(want);
        if got > 0 {
            return Ok(got);
        }
        let Ok(deadline) = wait.deadline() else {
            return Err(ClientError::QueueFull(self.config.in_flight_cap()));
        };
        // A partial frame must go now, or no confirm may come to make room before it is due.
        self.send_pending();
        let mut guard = lock(&self.wait_lock);
        self.waiters.fetch_add(1, Ordering::SeqCst);
        let result = loop {
            if !self.accepting.load(Ordering::Acquire) {
                break None;
            }
            let got = self.try_reserve(want);
            if got > 0 {
                break Some(Ok(got));
            }
            let (g, in_time) = park(&self.wait_cv, guard, deadline);
            guard = g;
            if !in_time {
                let waited = match *wait {
                    Wait::Until(_, d) => d.as_millis() as u64,
                    _ => 0,
                };
                break Some(Err(ClientError::Timeout(
                    waited,
                    "room among the unconfirmed messages",
                )));
            }
        };
        self.waiters.fetch_sub(1, Ordering::SeqCst);
        drop(guard);
        result.unwrap_or_else(|| Err(self.closed_error()))
    }

    /// Gives back `n` places of the in-flight cap and wakes whoever waits for them.
    fn release(&self, n: usize) {
        if n == 0 {
            return;
        }
        let before = self.in_flight.fetch_sub(n, Ordering::SeqCst);
        if before == n {
            self.drained.notify_waiters();
        }
        if self.waiters.load(Ordering::SeqCst) > 0 {
            let _g = lock(&self.wait_lock);
            self.wait_cv.notify_all();
        }
    }

    /// Wakes every blocked sender and flusher (after a state change).
    fn wake_all(&self) {
        {
            let _g = lock(&self.wait_lock);
            self.wait_cv.notify_all();
        }
        self.drained.notify_waiters();
    }

    /// With the frame lock held: sends the open frame, if any. On failure the producer stops
    /// accepting and the caller must run [`Self::fail_all`] (on a Tokio task) once the lock is
    /// released.
    fn flush_frame(&self, b: &mut Batch) -> bool {
        let entries = b.frame.count() as usize;
        let Some(bytes) = b.frame.finish() else {
            return true;
        };
        if self.config.dynamic_batch {
            self.unsent.store(0, Ordering::SeqCst);
        }
        if b.link.is_some() || b.recovering {
            self.prune(b);
            // A failed send means the connection is gone: its listener starts the recovery,
            // which sends this frame again.
            let sent = b
                .link
                .as_ref()
                .is_some_and(|l| l.conn.send_bytes(bytes.clone()).is_ok());
            b.retained_entries += entries;
            b.retained.push_back(Retained {
                frame: bytes,
                entries,
                sent,
            });
            return true;
        }
        // Closed: the frame's messages complete with the others.
        self.accepting.store(false, Ordering::Release);
        b.closed
            .get_or_insert_with(|| ClientError::Closed("the producer has no connection".into()));
        false
    }

    /// With the frame lock held: forgets the retained frames whose entries are all completed
    /// (from the front: one ring lookup per entry, once per frame; and, when completed ones
    /// behind a stuck one pile up past twice the in-flight cap, everywhere).
    fn prune(&self, b: &mut Batch) {
        let live = |r: &Retained| frame::entries(&r.frame).any(|(id, _)| self.ring.contains(id));
        while let Some(front) = b.retained.front() {
            if live(front) {
                break;
            }
            b.retained_entries -= front.entries;
            b.retained.pop_front();
        }
        if b.retained_entries > 2 * self.config.in_flight_cap() + self.config.batch_size {
            b.retained.retain(live);
            b.retained_entries = b.retained.iter().map(|r| r.entries).sum();
        }
    }

    /// With the frame lock held: closes the open sub-entry, if any. Its messages are put in
    /// flight (ring and tags) in any case; with `write` (and a link) it is encoded into the
    /// frame — the frame sent first if the sub-entry's worst case might not fit, and after if
    /// it then holds `batch_size` messages. False when a frame send failed: as
    /// [`Self::flush_frame`], the caller must then run [`Self::fail_all`].
    fn seal(&self, b: &mut Batch, write: bool) -> bool {
        let Some(sub) = b.sub.as_mut() else {
            return true;
        };
        if sub.is_empty() {
            return true;
        }
        let batch_id = sub.last_id();
        let value = match &self.tags {
            Some(tags) => tags.store(batch_id, sub.tags()),
            None => unreachable!("a sub-entry without a tag ring"),
        };
        self.ring.insert(batch_id, value, sub.started_ms());
        let publisher_id = match (b.link.is_some() || b.recovering, write) {
            (true, true) => b.publisher_id,
            _ => {
                sub.clear();
                return true;
            }
        };
        let worst =
            SUB_ENTRY_OVERHEAD + subentry::max_data_len(sub.compression(), sub.uncompressed_len());
        let started = sub.started();
        let frame_max = self.frame_max.load(Ordering::Relaxed);
        if b.frame.is_open() && b.frame.len() + worst > frame_max && !self.flush_frame(b) {
            if let Some(sub) = b.sub.as_mut() {
                sub.clear();
            }
            return false;
        }
        if !b.frame.is_open() {
            b.frame.begin(
                publisher_id,
                PublishVersion::V1,
                (started, self.now_ms(started)),
            );
        }
        let Some(sub) = b.sub.as_mut() else {
            return true;
        };
        let (kind, count, size, data) = sub.encode();
        b.frame.push_sub_entry(batch_id, kind, count, size, data);
        sub.clear();
        if b.frame.messages() as usize >= self.config.batch_size {
            return self.flush_frame(b);
        }
        true
    }

    /// With the frame lock held: seals the open sub-entry and sends the frame.
    fn flush_all(&self, b: &mut Batch) -> bool {
        self.seal(b, true) && self.flush_frame(b)
    }

    /// After a failed frame send on a non-runtime thread: completes everything with
    /// `Closed` on a Tokio task (where callbacks run).
    fn spawn_fail_all(self: &Arc<Self>) {
        self.wake_all();
        let s = self.clone();
        self.runtime
            .spawn(async move { s.fail_all(ConfirmStatus::Closed) });
    }

    /// Sends the partial sub-entry and frame now.
    fn send_pending(self: &Arc<Self>) {
        let ok = {
            let mut b = lock(&self.batch);
            self.flush_all(&mut b)
        };
        if !ok {
            self.spawn_fail_all();
        }
    }

    /// Housekeeping: sends the partial frame (and sub-entry) when it has waited `linger`;
    /// otherwise tells when it will be due (`None`: nothing partial).
    fn send_if_due(&self, linger: Duration) -> Option<Instant> {
        let ok = {
            let mut b = lock(&self.batch);
            let frame = b.frame.is_open().then(|| b.frame.started());
            let sub = b
                .sub
                .as_ref()
                .filter(|s| !s.is_empty())
                .map(SubEntryBuf::started);
            let since = match (frame, sub) {
                (Some(f), Some(s)) => f.min(s),
                (Some(t), None) | (None, Some(t)) => t,
                (None, None) => {
                    b.linger_idle = true;
                    return None;
                }
            };
            let due = since + linger;
            if Instant::now() < due {
                return Some(due);
            }
            // Nothing is partial after this: the next frame signals the task again.
            b.linger_idle = true;
            self.flush_all(&mut b)
        };
        if !ok {
            self.wake_all();
            self.fail_all(ConfirmStatus::Closed);
        }
        None
    }

    /// A frame (or sub-entry) got its first message: signals the housekeeping task if it is
    /// idle (`idle`: [`Batch::linger_idle`], under the batch lock as `send_if_due` sets it).
    fn wake_linger(&self, idle: &mut bool) {
        if std::mem::replace(idle, false) {
            self.signals.linger.notify_one();
        }
    }

    /// Accepts `msgs` (already counted in `in_flight`) under one frame lock: ids, ring
    /// entries, frame bytes. Returns how many were accepted, the last id assigned, and what
    /// stopped it early.
    fn push(self: &Arc<Self>, msgs: &[OutgoingMessage<'_>]) -> (usize, u64, Option<ClientError>) {
        let mut clock = SendClock::new(self.epoch);
        let frame_max = self.frame_max.load(Ordering::Relaxed);
        let linger = !self.config.batch_delay.is_zero();
        let mut accepted = 0;
        let mut last = 0;
        let mut error = None;
        let mut link_failed = false;
        {
            let mut guard = lock(&self.batch);
            let b = &mut *guard;
            let publisher_id = match (&b.closed, b.link.is_some() || b.recovering) {
                (None, true) => b.publisher_id,
                (closed, _) => {
                    let e = closed
                        .clone()
                        .unwrap_or_else(|| ClientError::Closed("the producer is closed".into()));
                    return (0, 0, Some(e));
                }
            };
            for m in msgs {
                if let Err(e) = self.check_message(m, frame_max) {
                    error = Some(e);
                    break;
                }
                let id = match (m.publishing_id, b.last_id) {
                    (Some(id), Some(prev)) if id <= prev => {
                        error = Some(ClientError::InvalidArgument(format!(
                            "publishing ids must strictly increase: {id} after {prev}"
                        )));
                        break;
                    }
                    (Some(id), _) => id,
                    (None, None) => b.first_auto_id,
                    (None, Some(prev)) => match prev.checked_add(1).filter(|&i| i != FREE) {
                        Some(id) => id,
                        None => {
                            error = Some(ClientError::InvalidArgument(
                                "publishing ids are exhausted".into(),
                            ));
                            break;
                        }
                    },
                };
                if let Some(sub) = &b.sub {
                    let record = record_len(m.format, m.body.len());
                    if !sub.can_take(id, record, frame_max) && !self.seal(b, true) {
                        link_failed = true;
                        error = b.closed.clone();
                        break;
                    }
                    let Some(sub) = b.sub.as_mut() else {
                        unreachable!()
                    };
                    if sub.is_empty() && linger {
                        self.wake_linger(&mut b.linger_idle);
                    }
                    sub.push(id, m.tag, m.format, m.body, &mut clock);
                    let full = sub.is_full();
                    b.last_id = Some(id);
                    last = id;
                    accepted += 1;
                    if full && !self.seal(b, true) {
                        // This message is in the ring: it completes with Closed like the others.
                        link_failed = true;
                        error = b.closed.clone();
                        break;
                    }
                    continue;
                }
                let version = match m.filter_value {
                    Some(_) => PublishVersion::V2,
                    None => PublishVersion::V1,
                };
                if b.frame.is_open() {
                    let fits = match (b.frame.version(), version) {
                        (PublishVersion::V1, PublishVersion::V2) => false,
                        (v, _) => {
                            b.frame.len() + entry_len(v, m.filter_value, m.format, m.body.len())
                                <= frame_max
                        }
                    };
                    if !fits && !self.flush_frame(b) {
                        link_failed = true;
                        error = b.closed.clone();
                        break;
                    }
                }
                if !b.frame.is_open() {
                    b.frame.begin(publisher_id, version, clock.get());
                    if linger {
                        self.wake_linger(&mut b.linger_idle);
                    }
                }
                self.ring.insert(id, m.tag as u64, b.frame.started_ms());
                b.frame.push(id, m.filter_value, m.format, m.body);
                b.last_id = Some(id);
                last = id;
                accepted += 1;
                if b.frame.count() as usize >= self.config.batch_size && !self.flush_frame(b) {
                    // This message is in the ring: it completes with Closed like the others.
                    link_failed = true;
                    error = b.closed.clone();
                    break;
                }
            }
            if !link_failed && !linger && !self.flush_all(b) {
                link_failed = true;
            }
            if !link_failed && linger && self.config.dynamic_batch && b.sub.is_none() {
                // Nothing else in flight: no confirm will come to send this frame, so it goes
                // now (dynamic batching). `unsent` is stored before `in_flight` is read, and the
                // confirm path reads `unsent` after lowering `in_flight` (all SeqCst): at least
                // one side sees the other's write, so a frame is never left to `batch_delay`.
                let unsent = b.frame.count() as usize;
                self.unsent.store(unsent, Ordering::SeqCst);
                if unsent > 0 && self.in_flight.load(Ordering::SeqCst) == unsent {
                    link_failed = !self.flush_frame(b);
                }
            }
            if accepted > 0 {
                self.last_id.store(last + 1, Ordering::Release);
                // Only senders write it, under the batch lock: a load and a store, not a
                // locked read-modify-write.
                let published = self.published.load(Ordering::Relaxed);
                self.published
                    .store(published + accepted as u64, Ordering::Relaxed);
            }
        }
        if link_failed {
            self.spawn_fail_all();
        }
        (accepted, last, error)
    }

    /// Completes the given ids (confirm path: no allocation once the scratch buffer is
    /// warm), then reports them in one batch.
    fn complete(&self, items: impl Iterator<Item = (u64, ConfirmStatus)>) {
        let mut out = std::mem::take(&mut *lock(&self.scratch));
        out.clear();
        for (publishing_id, status) in items {
            if let Some(value) = self.ring.take(publishing_id) {
                self.expand(publishing_id, value, status, &mut out);
            }
        }
        self.deliver(&out);
        *lock(&self.scratch) = out;
    }

    /// The outcomes of what the ring held under `id` as `value`: one message, or every
    /// message of a sub-entry.
    fn expand(&self, id: u64, value: u64, status: ConfirmStatus, out: &mut Vec<Confirm>) {
        match &self.tags {
            None => out.push(Confirm {
                publishing_id: id,
                tag: value as usize,
                status,
            }),
            Some(tags) => tags.take(id, value, |publishing_id, tag| {
                out.push(Confirm {
                    publishing_id,
                    tag,
                    status,
                })
            }),
        }
    }

    /// Completes everything in flight with `status`.
    fn fail_all(&self, status: ConfirmStatus) {
        let mut out = Vec::new();
        self.ring
            .take_all(|id, value| self.expand(id, value, status, &mut out));
        out.sort_unstable_by_key(|c| c.publishing_id);
        self.deliver(&out);
    }

    /// Completes what waited longer than the confirm timeout.
    ///
    /// Not while the link is suspect: while recovering, or while its connection has been
    /// silent for half the timeout (or half the heartbeat, if shorter; at least 1 s) — a
    /// frozen peer, not yet detected by the heartbeat. Completing messages then would free
    /// room for more sends into a dead connection, and report as timed out what a recovery
    /// will still get confirmed.
    fn sweep_timeouts(&self) {
        let timeout = self.config.confirm_timeout;
        if timeout.is_zero()
            || self.in_flight.load(Ordering::Relaxed) == 0
            || self.recovering.load(Ordering::Acquire)
        {
            return;
        }
        let suspect = lock(&self.batch).link.as_ref().is_some_and(|l| {
            let hb = Duration::from_secs(u64::from(l.conn.info().heartbeat));
            let limit = if hb.is_zero() {
                timeout
            } else {
                hb.min(timeout)
            };
            l.conn.silent_for() >= (limit / 2).max(Duration::from_secs(1))
        });
        if suspect {
            return;
        }
        let timeout_ms = (timeout.as_millis() as u64).max(1);
        let Some(cutoff) = self.now_ms(Instant::now()).checked_sub(timeout_ms) else {
            return;
        };
        let mut out = Vec::new();
        self.ring.take_older_than(cutoff, |id, value| {
            self.expand(id, value, ConfirmStatus::Timeout, &mut out)
        });
        out.sort_unstable_by_key(|c| c.publishing_id);
        self.deliver(&out);
    }

    /// Counts, reports, then frees the in-flight places of completed messages (after the
    /// callback, so `flush` returns only once every outcome was reported).
    fn deliver(&self, batch: &[Confirm]) {
        if batch.is_empty() {
            return;
        }
        let ok = batch.iter().filter(|c| c.status.is_confirmed()).count();
        self.confirmed.fetch_add(ok as u64, Ordering::Relaxed);
        self.errored
            .fetch_add((batch.len() - ok) as u64, Ordering::Relaxed);
        let _ = catch_unwind(AssertUnwindSafe(|| self.events.confirms(batch)));
        self.release(batch.len());
        self.send_if_alone();
    }

    /// Dynamic batching, on the confirm path: once everything sent is confirmed, the open
    /// frame (what accumulated meanwhile) goes at once rather than at `batch_delay`.
    fn send_if_alone(&self) {
        let unsent = self.unsent.load(Ordering::SeqCst);
        if unsent == 0 || self.in_flight.load(Ordering::SeqCst) != unsent {
            return;
        }
        let ok = {
            let mut b = lock(&self.batch);
            // Checked again under the lock: a sender may have sent or grown the frame.
            b.frame.count() as usize != self.in_flight.load(Ordering::SeqCst)
                || self.flush_frame(&mut b)
        };
        if !ok {
            self.wake_all();
            self.fail_all(ConfirmStatus::Closed);
        }
    }

    /// The connection or the stream's leader is gone. With recovery on (and the producer
    /// not closing), the partial frame is kept with the others and a recovery task starts;
    /// sends go on into kept frames meanwhile, within the in-flight cap. Otherwise the
    /// producer ends.
    fn link_lost(self: &Arc<Self>, cause: ClientError) {
        if !self.recovery.enabled || self.close_started.load(Ordering::Acquire) {
            return self.end(cause);
        }
        {
            let mut b = lock(&self.batch);
            if b.closed.is_some() || b.recovering {
                return;
            }
            b.link = None;
            b.recovering = true;
            self.recovering.store(true, Ordering::Release);
            self.flush_all(&mut b);
        }
        self.runtime
            .spawn(recover(Arc::downgrade(self), self.signals.clone(), cause));
    }

    /// Ends the producer for good (not closed by the application): sends fail with `reason`
    /// from now on; what is in flight completes — [`ConfirmStatus::Timeout`] (outcome
    /// unknown) for what went out, [`ConfirmStatus::Closed`] for what never did or when the
    /// stream is gone — then [`ProducerEvents::closed`].
    fn end(&self, reason: ClientError) {
        let retained = {
            let mut b = lock(&self.batch);
            if b.closed.is_some() {
                return;
            }
            b.link = None;
            b.recovering = false;
            self.recovering.store(false, Ordering::Release);
            // The open sub-entry's messages go in flight, to complete with the others.
            self.seal(&mut b, false);
            b.frame.discard();
            self.accepting.store(false, Ordering::Release);
            b.closed = Some(ClientError::Closed(format!(
                "the producer on stream {} ended: {reason}",
                self.stream
            )));
            b.retained_entries = 0;
            std::mem::take(&mut b.retained)
        };
        self.wake_all();
        self.complete_retained(retained, !recovery::is_final(&reason));
        self.fail_all(ConfirmStatus::Closed);
        log_at!(
            self.log,
            Level::Warn,
            "producer",
            "producer on stream {} closed: {reason}",
            self.stream
        );
        let _ = catch_unwind(AssertUnwindSafe(|| self.events.closed(&reason)));
    }

    /// Completes what `retained` holds in flight: messages that went out with
    /// [`ConfirmStatus::Timeout`] when `sent_unknown` (the broker may have them), the rest
    /// with [`ConfirmStatus::Closed`].
    fn complete_retained(&self, retained: VecDeque<Retained>, sent_unknown: bool) {
        let mut out = Vec::new();
        for r in &retained {
            let status = if r.sent && sent_unknown {
                ConfirmStatus::Timeout
            } else {
                ConfirmStatus::Closed
            };
            for (id, _) in frame::entries(&r.frame) {
                if let Some(value) = self.ring.take(id) {
                    self.expand(id, value, status, &mut out);
                }
            }
        }
        self.deliver(&out);
    }

    /// [`ClientError::NotConfirmed`] when messages completed with an error since the error
    /// count was `before`.
    fn failed_since(&self, before: u64) -> Result<()> {
        match self.errored.load(Ordering::SeqCst).saturating_sub(before) {
            0 => Ok(()),
            n => Err(ClientError::NotConfirmed(n)),
        }
    }

    fn emit_state(&self, change: &StateChange<'_>) {
        let _ = catch_unwind(AssertUnwindSafe(|| self.events.state(change)));
    }

    /// Async wait until nothing is in flight; false at `deadline`.
    async fn wait_drained(&self, deadline: Option<tokio::time::Instant>) -> bool {
        loop {
            let notified = self.drained.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.in_flight.load(Ordering::SeqCst) == 0 {
                return true;
            }
            match deadline {
                None => notified.await,
                Some(d) => {
                    if tokio::time::timeout_at(d, notified).await.is_err() {
                        return self.in_flight.load(Ordering::SeqCst) == 0;
                    }
                }
            }
        }
    }

    /// Stops accepting and takes the link (close and drop).
    fn shut(&self, send_pending: bool) -> (Option<Link>, bool) {
        let mut b = lock(&self.batch);
        let ok = if send_pending {
            self.flush_all(&mut b)
        } else {
            self.seal(&mut b, false);
            b.frame.discard();
            true
        };
        self.accepting.store(false, Ordering::Release);
        b.closed
            .get_or_insert_with(|| ClientError::Closed("the producer is closed".into()));
        (b.link.take(), ok)
    }
}

/// [`wait_until`], but waking at least once a second even without a deadline (cheap
/// insurance); the flag is false once `deadline` passed (without waiting).
fn park<'a>(
    cv: &Condvar,
    guard: MutexGuard<'a, ()>,
    deadline: Option<Instant>,
) -> (MutexGuard<'a, ()>, bool) {
    const MAX_PARK: Duration = Duration::from_secs(1);
    let cap = Instant::now() + MAX_PARK;
    wait_until(cv, guard, Some(deadline.map_or(cap, |d| d.min(cap))))
}

impl Signals {
    /// Called when `in_flight` leaves 0 (after that change, which `housekeeping` relies on):
    /// restarts a parked sweep; otherwise one load.
    fn unpark_sweep(&self) {
        if self.sweep_parked.load(Ordering::SeqCst)
            && self.sweep_parked.swap(false, Ordering::SeqCst)
        {
            self.sweep.notify_one();
        }
    }
}

/// One task per producer: sends partial frames when due and sweeps confirm timeouts.
///
/// The sweep ticks only while messages are in flight: a tick that finds none parks it, and
/// the reservation that takes `in_flight` off 0 restarts it. Idle producers thus cost no
/// wake-up at all (with one tick a second each, 1,000 idle producers took 2.4 % of a core,
/// nearly all of it in waking a runtime thread per tick).
async fn housekeeping(
    shared: Weak<Shared>,
    signals: Arc<Signals>,
    linger: Duration,
    sweep: Option<Duration>,
) {
    let mut ticker = tokio::time::interval(sweep.unwrap_or(Duration::from_secs(3600)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut sweeping = sweep.is_some();
    let mut due: Option<tokio::time::Instant> = None;
    loop {
        let check = tokio::select! {
            biased;
            _ = signals.stop.notified() => return,
            _ = tokio::time::sleep_until(due.unwrap_or_else(tokio::time::Instant::now)),
                if due.is_some() => true,
            _ = signals.linger.notified() => due.is_none(),
            _ = ticker.tick(), if sweeping => {
                let Some(s) = shared.upgrade() else { return };
                s.sweep_timeouts();
                if s.in_flight.load(Ordering::SeqCst) == 0 {
                    signals.sweep_parked.store(true, Ordering::SeqCst);
                    // A reservation between the load and the store may have seen the sweep
                    // running and not unparked it: look again once parked (a wake-up left by
                    // one that did unpark it only re-arms the sweep once more, harmlessly).
                    sweeping = s.in_flight.load(Ordering::SeqCst) != 0;
                    if sweeping {
                        signals.sweep_parked.store(false, Ordering::SeqCst);
                    }
                }
                false
            }
            _ = signals.sweep.notified(), if sweep.is_some() && !sweeping => {
                sweeping = true;
                ticker.reset();
                false
            }
        };
        if check {
            let Some(s) = shared.upgrade() else { return };
            due = s.send_if_due(linger).map(tokio::time::Instant::from_std);
        }
    }
}

/// One recovery, from the loss of the link to a new one (or to the end): waits as the
/// policy's back-off says between attempts, ends the producer when the stream is gone, the
/// environment closed or the attempts used up. Holds the producer weakly while it waits.
async fn recover(shared: Weak<Shared>, signals: Arc<Signals>, cause: ClientError) {
    let mut backoff = {
        let Some(s) = shared.upgrade() else { return };
        let env = s.env.as_ref().and_then(WeakEnvironment::get);
        if let Some(e) = recovery::deleted_stream(env, &s.stream, &cause).await {
            return s.end(e);
        }
        log_at!(
            s.log,
            Level::Warn,
            "producer",
            "producer on stream {} lost its link ({cause}); recovering",
            s.stream
        );
        s.emit_state(&StateChange::Recovering { cause: &cause });
        s.recovery.backoff(recovery::seed(Arc::as_ptr(&s) as usize))
    };
    let mut last = cause;
    let mut attempts = 0u32;
    loop {
        let Some(delay) = backoff.next() else {
            if let Some(s) = shared.upgrade() {
                s.end(last);
            }
            return;
        };
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = signals.halt.notified() => return,
        }
        let Some(s) = shared.upgrade() else { return };
        if s.close_started.load(Ordering::Acquire) {
            return;
        }
        attempts += 1;
        let Some(env) = s.env.as_ref().and_then(WeakEnvironment::get) else {
            s.end(ClientError::Closed("the environment was closed".into()));
            return;
        };
        match s.reattach(&env).await {
            Ok(true) => {
                s.recoveries.fetch_add(1, Ordering::Relaxed);
                s.emit_state(&StateChange::Recovered { attempts });
                return;
            }
            Ok(false) => return,
            Err(e) if recovery::is_final(&e) => {
                s.end(e);
                return;
            }
            Err(e) => {
                log_at!(
                    s.log,
                    Level::Info,
                    "producer",
                    "producer on stream {}: recovery attempt {attempts} failed: {e}",
                    s.stream
                );
                last = e;
            }
        }
    }
}

/// DeletePublisher, best effort (the connection may be going away; the broker drops the
/// publisher with it then), within `deadline`; frees the id on the connection.
async fn delete_publisher(
    conn: &Connection,
    publisher_id: u8,
    deadline: Option<tokio::time::Instant>,
) {
    let request = conn.request("delete publisher", |correlation_id| {
        Frame::DeletePublisher(DeletePublisher {
            correlation_id,
            publisher_id,
        })
    });
    let _ = match deadline {
        Some(d) => tokio::time::timeout_at(d, request).await.ok(),
        None => Some(request.await),
    };
    conn.unregister_publisher(publisher_id);
}

/// A producer on one stream. `Send + Sync`: share it (e.g. in an `Arc`) between threads.
/// See the [module documentation](self) for which methods block and where callbacks run.
pub struct Producer {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Producer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer")
            .field("stream", &self.shared.stream)
            .field("name", &self.shared.name)
            .field("stats", &self.stats())
            .finish()
    }
}

impl Producer {
    /// Creates a producer on `stream`: a data connection to the stream's leader (shared with
    /// other producers up to the environment's cap), DeclarePublisher, and for a named
    /// producer QueryPublisherSequence so automatic ids continue after the last id the broker
    /// kept for the name.
    ///
    /// A named producer's first automatic id is the broker's answer + 1, also when the answer
    /// is 0 — which means either "unknown name" or "last id was 0", and starting at 1 is right
    /// in both cases (starting at 0 would lose the first message after a restart in the second).
    ///
    /// Async; its tasks run on the calling Tokio runtime, which must outlive the producer.
    pub async fn new(
        env: &Environment,
        stream: &str,
        config: ProducerConfig,
        events: Arc<dyn ProducerEvents>,
    ) -> Result<Producer> {
        check_name("stream name", stream)?;
        config.validate()?;
        let conn = env.data_connection(stream, Role::Leader).await?;
        let (first_auto_id, last_id) = match &config.name {
            Some(name) => {
                let seq = query_publisher_sequence(&conn, name, stream).await?;
                (
                    seq.saturating_add(1),
                    if seq > 0 { seq.saturating_add(1) } else { 0 },
                )
            }
            None => (0, 0),
        };
        let shared = Shared::new(
            stream,
            config,
            events,
            first_auto_id,
            last_id,
            tokio::runtime::Handle::current(),
            Some(env.downgrade()),
            env.config().recovery,
            env.logger().clone(),
        );
        shared.attach(conn).await?;
        let sweep = (!shared.config.confirm_timeout.is_zero()).then(|| {
            (shared.config.confirm_timeout / 8)
                .clamp(Duration::from_millis(10), Duration::from_secs(1))
        });
        tokio::spawn(housekeeping(
            Arc::downgrade(&shared),
            shared.signals.clone(),
            shared.config.batch_delay,
            sweep,
        ));
        Ok(Producer { shared })
    }

    /// The stream this producer writes to.
    pub fn stream(&self) -> &str {
        &self.shared.stream
    }

    /// The producer's name (`None` for an anonymous producer).
    pub fn name(&self) -> Option<&str> {
        self.shared.name.as_deref()
    }

    /// False once the producer stopped accepting sends: after [`close`](Self::close), or once
    /// its connection or stream was lost (sends then fail with [`ClientError::Closed`]). Any
    /// thread, never blocks.
    pub fn is_open(&self) -> bool {
        self.shared.accepting.load(Ordering::Acquire)
    }

    /// Sends one message and returns its publishing id; its outcome comes later through
    /// [`ProducerEvents::confirms`] (exactly once when this returns `Ok`, never otherwise).
    ///
    /// Synchronous. When [`ProducerConfig::max_in_flight`] messages are unconfirmed:
    /// `wait = None` fails at once with [`ClientError::QueueFull`]; `Some(d)` sends the partial
    /// frame and blocks up to `d` for room, then fails with [`ClientError::Timeout`]. Without
    /// a wait it never blocks beyond the producer's frame lock, and may be called from any
    /// thread; with a wait, never from a Tokio worker thread (it would stall the runtime that
    /// delivers the confirms it waits for).
    ///
    /// Errors: [`ClientError::Closed`] after [`close`](Self::close) or once the connection or
    /// stream is lost; [`ClientError::Unsupported`] (needs "3.13") for a filter value on an
    /// older broker; [`ClientError::InvalidArgument`] for an explicit id not above the
    /// previous one, a message too large for one frame (`frame_max`; with sub-entry batching,
    /// for a sub-entry holding only it, worst-case compression expansion included, or above
    /// the broker's 64 MiB sub-entry cap), or a filter value with sub-entry batching.
    pub fn send(&self, msg: &OutgoingMessage<'_>, wait: Option<Duration>) -> Result<u64> {
        let s = &self.shared;
        s.check_message(msg, s.frame_max.load(Ordering::Relaxed))?;
        if !s.accepting.load(Ordering::Acquire) {
            return Err(s.closed_error());
        }
        s.reserve(1, &mut Wait::from(wait))?;
        let (accepted, id, error) = s.push(std::slice::from_ref(msg));
        if accepted == 1 {
            return Ok(id);
        }
        s.release(1);
        Err(error.unwrap_or_else(|| s.closed_error()))
    }

    /// Sends messages in order under one lock and returns how many were accepted (a prefix
    /// of `msgs`); each accepted one gets exactly one [`Confirm`].
    ///
    /// Stops early — returning the count so far, or the error when that count is 0 — at a
    /// message that fails (see [`send`](Self::send)) or when the in-flight cap is reached:
    /// with `wait = None` at once, with `Some(d)` after blocking up to `d` in total. Blocking
    /// rules as [`send`](Self::send).
    pub fn send_batch(
        &self,
        msgs: &[OutgoingMessage<'_>],
        wait: Option<Duration>,
    ) -> Result<usize> {
        let s = &self.shared;
        let mut wait = Wait::from(wait);
        let frame_max = s.frame_max.load(Ordering::Relaxed);
        let mut done = 0;
        while done < msgs.len() {
            let step = s
                .check_message(&msgs[done], frame_max)
                .and_then(|()| {
                    if s.accepting.load(Ordering::Acquire) {
                        Ok(())
                    } else {
                        Err(s.closed_error())
                    }
                })
                .and_then(|()| s.reserve(msgs.len() - done, &mut wait));
            let reserved = match step {
                Ok(n) => n,
                Err(e) if done == 0 => return Err(e),
                Err(_) => return Ok(done),
            };
            let (accepted, _, error) = s.push(&msgs[done..done + reserved]);
            s.release(reserved - accepted);
            done += accepted;
            match error {
                Some(e) if done == 0 => return Err(e),
                Some(_) => return Ok(done),
                None => {}
            }
        }
        Ok(done)
    }

    /// Sends the partial frame now and blocks until nothing is in flight: every accepted
    /// message confirmed, refused or timed out, and its callback returned. Messages sent
    /// concurrently extend the wait. [`ClientError::Timeout`] if that takes longer than
    /// `timeout`; [`ClientError::NotConfirmed`] when messages completed with an error (refused,
    /// timed out, closed) while it waited — their confirms say which.
    ///
    /// Synchronous: call it from any thread but a Tokio worker (and not from
    /// [`ProducerEvents::confirms`]). Use [`close`](Self::close) from async code.
    pub fn flush(&self, timeout: Duration) -> Result<()> {
        let s = &self.shared;
        let errored = s.errored.load(Ordering::SeqCst);
        s.send_pending();
        if s.in_flight.load(Ordering::SeqCst) == 0 {
            return s.failed_since(errored);
        }
        let deadline = Instant::now().checked_add(timeout);
        let mut guard = lock(&s.wait_lock);
        s.waiters.fetch_add(1, Ordering::SeqCst);
        let result = loop {
            if s.in_flight.load(Ordering::SeqCst) == 0 {
                break Ok(());
            }
            let (g, in_time) = park(&s.wait_cv, guard, deadline);
            guard = g;
            if !in_time {
                break Err(ClientError::Timeout(
                    timeout.as_millis() as u64,
                    "confirms of the messages in flight",
                ));
            }
        };
        s.waiters.fetch_sub(1, Ordering::SeqCst);
        result.and_then(|()| s.failed_since(errored))
    }

    /// Closes the producer: stops accepting sends (they fail with [`ClientError::Closed`]),
    /// sends the partial frame, waits up to `timeout` for outstanding confirms without
    /// blocking the runtime, deletes the publisher on the broker and frees its id on the
    /// connection. Messages still unconfirmed then complete with [`ConfirmStatus::Closed`].
    ///
    /// Returns [`ClientError::Timeout`] when some did (the producer is closed all the same), and
    /// [`ClientError::NotConfirmed`] when all completed in time but some with an error: `Ok`
    /// means everything sent was confirmed.
    /// Idempotent: later calls return `Ok(())` at once. Async: call from a Tokio task.
    pub async fn close(&self, timeout: Duration) -> Result<()> {
        let s = &self.shared;
        if s.close_started.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        let deadline = tokio::time::Instant::now().checked_add(timeout);
        let errored = s.errored.load(Ordering::SeqCst);
        s.signals.halt.notify_waiters();
        let (link, sent) = s.shut(true);
        s.wake_all();
        if !sent {
            s.fail_all(ConfirmStatus::Closed);
        }
        let drained = s.wait_drained(deadline).await;
        if let Some(link) = link {
            delete_publisher(&link.conn, link.publisher_id, deadline).await;
        }
        let retained = {
            let mut b = lock(&s.batch);
            b.retained_entries = 0;
            std::mem::take(&mut b.retained)
        };
        s.complete_retained(retained, true);
        s.fail_all(ConfirmStatus::Closed);
        s.signals.stop.notify_one();
        if drained {
            s.failed_since(errored)
        } else {
            Err(ClientError::Timeout(
                timeout.as_millis() as u64,
                "confirms before close",
            ))
        }
    }

    /// The last publishing id this producer assigned; for a named producer that has not sent
    /// yet, the last id the broker kept for the name (`None` when the broker answered 0).
    /// Any thread, never blocks.
    pub fn last_publishing_id(&self) -> Option<u64> {
        match self.shared.last_id.load(Ordering::Acquire) {
            0 => None,
            n => Some(n - 1),
        }
    }

    /// The producer's counters. Any thread, never blocks.
    pub fn stats(&self) -> ProducerStats {
        let s = &self.shared;
        ProducerStats {
            published: s.published.load(Ordering::Relaxed),
            confirmed: s.confirmed.load(Ordering::Relaxed),
            errored: s.errored.load(Ordering::Relaxed),
            in_flight: s.in_flight.load(Ordering::Relaxed) as u64,
            recoveries: s.recoveries.load(Ordering::Relaxed),
            republished: s.republished.load(Ordering::Relaxed),
        }
    }
}

impl Drop for Producer {
    /// Dropping without [`close`](Producer::close) abandons the partial frame; on the
    /// runtime (if it is still running) the publisher is deleted and everything in flight
    /// completes with [`ConfirmStatus::Closed`]. Never blocks.
    fn drop(&mut self) {
        let s = &self.shared;
        if s.close_started.swap(true, Ordering::AcqRel) {
            return;
        }
        let (link, _) = s.shut(false);
        s.wake_all();
        s.signals.stop.notify_one();
        s.signals.halt.notify_waiters();
        let s = s.clone();
        self.shared.runtime.spawn(async move {
            if let Some(link) = link {
                delete_publisher(&link.conn, link.publisher_id, None).await;
            }
            s.fail_all(ConfirmStatus::Closed);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_documented_values_and_valid() {
        let c = ProducerConfig::default();
        assert_eq!(c.name, None);
        assert_eq!(c.batch_size, 100);
        assert_eq!(c.batch_delay, Duration::from_millis(5));
        assert_eq!(c.max_in_flight, None);
        assert_eq!(c.in_flight_cap(), 1000);
        let sub = ProducerConfig {
            sub_entry_size: 2,
            ..Default::default()
        };
        assert_eq!(sub.in_flight_cap(), 10_000);
        let set = ProducerConfig {
            max_in_flight: Some(7),
            ..sub
        };
        assert_eq!(set.in_flight_cap(), 7);
        assert_eq!(c.confirm_timeout, Duration::from_secs(30));
        assert_eq!((c.sub_entry_size, c.compression), (0, Compression::None));
        assert!(!c.sub_entries());
        c.validate().unwrap();
    }

    #[test]
    fn invalid_configs_are_refused() {
        for bad in [
            ProducerConfig {
                batch_size: 0,
                ..Default::default()
            },
            ProducerConfig {
                max_in_flight: Some(0),
                ..Default::default()
            },
            ProducerConfig {
                max_in_flight: Some(MAX_IN_FLIGHT_LIMIT + 1),
                ..Default::default()
            },
            ProducerConfig {
                name: Some(String::new()),
                ..Default::default()
            },
            ProducerConfig {
                name: Some("n".repeat(256)),
                ..Default::default()
            },
            ProducerConfig {
                sub_entry_size: 65_536,
                ..Default::default()
            },
        ] {
            assert!(
                matches!(bad.validate(), Err(ClientError::InvalidArgument(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn message_builders() {
        let m = OutgoingMessage::new(b"x")
            .tag(7)
            .filter_value("eu")
            .publishing_id(3);
        assert_eq!(m.format, BodyFormat::AmqpData);
        assert_eq!(
            (m.tag, m.filter_value, m.publishing_id),
            (7, Some("eu"), Some(3))
        );
        assert_eq!(OutgoingMessage::raw(b"x").format, BodyFormat::Raw);
        assert_eq!(BodyFormat::default(), BodyFormat::AmqpData);
    }

    type Seen = Arc<Mutex<Vec<Vec<Confirm>>>>;

    /// A producer's state on a runtime, attached to no connection, generation 1.
    fn detached(config: ProducerConfig) -> (tokio::runtime::Runtime, Arc<Shared>, Seen) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let seen: Seen = Arc::default();
        let sink = seen.clone();
        let events: Arc<dyn ProducerEvents> =
            Arc::new(move |b: &[Confirm]| sink.lock().unwrap().push(b.to_vec()));
        let s = Shared::new(
            "s",
            config,
            events,
            0,
            0,
            rt.handle().clone(),
            None,
            RecoveryPolicy::disabled(),
            Log::off(),
        );
        s.generation.store(1, Ordering::Release);
        (rt, s, seen)
    }

    /// Puts ids in flight as a send would, tag = id + 100, sent at `sent_ms`.
    fn track(s: &Shared, ids: std::ops::Range<u64>, sent_ms: u64) {
        let n = ids.end - ids.start;
        assert_eq!(s.try_reserve(n as usize), n as usize);
        for id in ids {
            s.ring.insert(id, id + 100, sent_ms);
        }
    }

    fn listener(s: &Arc<Shared>, generation: u64) -> Listener {
        Listener {
            shared: Arc::downgrade(s),
            generation,
        }
    }

    #[test]
    fn listener_routes_confirms_errors_and_stream_loss() {
        let (_rt, s, seen) = detached(ProducerConfig::default());
        track(&s, 0..5, 0);
        let l = listener(&s, 1);
        l.confirmed(&[0, 1, 99]);
        l.errored(&[PublishingError {
            publishing_id: 2,
            code: ResponseCode::PUBLISHER_DOES_NOT_EXIST,
        }]);
        // Stale attachment and repeated ids: nothing reported.
        listener(&s, 0).confirmed(&[3]);
        l.confirmed(&[0]);
        l.stream_unavailable(ResponseCode::STREAM_NOT_AVAILABLE);
        let c = |id, status| Confirm {
            publishing_id: id,
            tag: id as usize + 100,
            status,
        };
        assert_eq!(
            *seen.lock().unwrap(),
            vec![
                vec![
                    c(0, ConfirmStatus::Confirmed),
                    c(1, ConfirmStatus::Confirmed)
                ],
                vec![c(
                    2,
                    ConfirmStatus::Server(ResponseCode::PUBLISHER_DOES_NOT_EXIST)
                )],
                vec![c(3, ConfirmStatus::Closed), c(4, ConfirmStatus::Closed)],
            ]
        );
        assert_eq!(
            (
                s.confirmed.load(Ordering::Relaxed),
                s.errored.load(Ordering::Relaxed)
            ),
            (2, 3)
        );
        assert_eq!(s.in_flight.load(Ordering::Relaxed), 0);
        assert!(!s.accepting.load(Ordering::Relaxed));
        match s.closed_error() {
            ClientError::Closed(why) => assert!(why.contains("metadata update"), "{why}"),
            e => panic!("{e:?}"),
        }
    }

    #[test]
    fn timeout_sweep_completes_only_old_messages() {
        let (_rt, s, seen) = detached(ProducerConfig {
            confirm_timeout: Duration::from_millis(20),
            ..Default::default()
        });
        std::thread::sleep(Duration::from_millis(30));
        track(&s, 0..3, 0);
        track(&s, 3..4, s.now_ms(Instant::now()));
        s.sweep_timeouts();
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 1);
        assert_eq!(
            seen[0].iter().map(|c| c.publishing_id).collect::<Vec<_>>(),
            vec![0, 1, 2]
        );
        assert!(seen[0].iter().all(|c| c.status == ConfirmStatus::Timeout));
        assert_eq!(s.in_flight.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn blocked_reservations_wake_on_room_time_out_or_close() {
        let (_rt, s, _) = detached(ProducerConfig {
            max_in_flight: Some(2),
            ..Default::default()
        });
        track(&s, 0..2, 0);
        assert!(matches!(
            s.reserve(1, &mut Wait::No),
            Err(ClientError::QueueFull(2))
        ));
        let r = s.reserve(1, &mut Wait::from(Some(Duration::from_millis(20))));
        assert!(matches!(r, Err(ClientError::Timeout(20, _))), "{r:?}");

        // Room made by a confirm wakes a blocked sender.
        let waiter = {
            let s = s.clone();
            std::thread::spawn(move || s.reserve(5, &mut Wait::Forever))
        };
        while s.waiters.load(Ordering::SeqCst) == 0 {
            std::thread::yield_now();
        }
        listener(&s, 1).confirmed(&[0]);
        assert_eq!(waiter.join().unwrap().unwrap(), 1, "one place freed");
        assert_eq!(s.in_flight.load(Ordering::SeqCst), 2);

        // Losing the connection wakes it with Closed.
        let waiter = {
            let s = s.clone();
            std::thread::spawn(move || s.reserve(1, &mut Wait::Forever))
        };
        while s.waiters.load(Ordering::SeqCst) == 0 {
            std::thread::yield_now();
        }
        listener(&s, 1).connection_closed(&ClientError::Io("reset".into()));
        let r = waiter.join().unwrap();
        assert!(
            matches!(&r, Err(ClientError::Closed(why)) if why.contains("reset")),
            "{r:?}"
        );
    }

    /// Fills the open sub-entry as `push` would (ids `ids`, tag = id + 100) and seals it
    /// without a link (in flight, no bytes).
    fn sub_entry(s: &Shared, ids: std::ops::Range<u64>) {
        let n = (ids.end - ids.start) as usize;
        assert_eq!(s.try_reserve(n), n);
        let mut b = lock(&s.batch);
        let sub = b.sub.as_mut().unwrap();
        for id in ids {
            assert!(sub.can_take(id, 5, 1 << 20));
            sub.push(
                id,
                id as usize + 100,
                BodyFormat::Raw,
                b"x",
                &mut SendClock::fixed(Instant::now(), 0),
            );
        }
        assert!(s.seal(&mut b, false));
        assert!(b.sub.as_ref().unwrap().is_empty());
    }

    #[test]
    fn a_sub_entry_confirm_completes_each_of_its_messages() {
        let (_rt, s, seen) = detached(ProducerConfig {
            sub_entry_size: 3,
            compression: Compression::Zstd,
            confirm_timeout: Duration::from_millis(20),
            ..Default::default()
        });
        sub_entry(&s, 0..3);
        sub_entry(&s, 3..5);
        sub_entry(&s, 10..13);
        sub_entry(&s, 13..14);
        assert_eq!(s.in_flight.load(Ordering::Relaxed), 9);
        let l = listener(&s, 1);
        // The broker confirms batches by their last id; other ids are unknown.
        l.confirmed(&[2, 0, 2]);
        l.errored(&[PublishingError {
            publishing_id: 4,
            code: ResponseCode::PUBLISHER_DOES_NOT_EXIST,
        }]);
        std::thread::sleep(Duration::from_millis(30));
        s.sweep_timeouts();
        let c = |id: u64, status| Confirm {
            publishing_id: id,
            tag: id as usize + 100,
            status,
        };
        let refused = ConfirmStatus::Server(ResponseCode::PUBLISHER_DOES_NOT_EXIST);
        assert_eq!(
            *seen.lock().unwrap(),
            vec![
                (0..3).map(|id| c(id, ConfirmStatus::Confirmed)).collect(),
                vec![c(3, refused), c(4, refused)],
                (10..14).map(|id| c(id, ConfirmStatus::Timeout)).collect(),
            ]
        );
        assert_eq!(s.in_flight.load(Ordering::Relaxed), 0);
        assert_eq!(
            (
                s.confirmed.load(Ordering::Relaxed),
                s.errored.load(Ordering::Relaxed)
            ),
            (3, 6)
        );
    }

    #[test]
    fn losing_the_link_completes_the_open_sub_entry_too() {
        let (_rt, s, seen) = detached(ProducerConfig {
            sub_entry_size: 10,
            ..Default::default()
        });
        sub_entry(&s, 0..4);
        // Two messages still in the open sub-entry.
        assert_eq!(s.try_reserve(2), 2);
        {
            let mut b = lock(&s.batch);
            let sub = b.sub.as_mut().unwrap();
            for id in 4..6 {
                sub.push(
                    id,
                    id as usize + 100,
                    BodyFormat::Raw,
                    b"x",
                    &mut SendClock::fixed(Instant::now(), 0),
                );
            }
        }
        listener(&s, 1).connection_closed(&ClientError::Io("reset".into()));
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 1);
        assert_eq!(
            seen[0]
                .iter()
                .map(|c| (c.publishing_id, c.tag, c.status))
                .collect::<Vec<_>>(),
            (0..6)
                .map(|id| (id, id as usize + 100, ConfirmStatus::Closed))
                .collect::<Vec<_>>()
        );
        assert_eq!(s.in_flight.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn sub_entry_messages_are_checked_for_filter_values_and_size() {
        let (_rt, s, _) = detached(ProducerConfig {
            sub_entry_size: 100,
            compression: Compression::Gzip,
            ..Default::default()
        });
        s.supports_v2.store(true, Ordering::Relaxed);
        let r = s.check_message(&OutgoingMessage::new(b"x").filter_value("eu"), 1 << 20);
        assert!(
            matches!(&r, Err(ClientError::InvalidArgument(why)) if why.contains("filter value")),
            "{r:?}"
        );
        s.check_message(&OutgoingMessage::new(&[0; 900_000]), 1 << 20)
            .unwrap();
        // Fits a plain frame, but not with the worst-case gzip expansion.
        let big = vec![0; 1_000_000];
        let r = s.check_message(&OutgoingMessage::raw(&big), 1 << 20);
        assert!(
            matches!(&r, Err(ClientError::InvalidArgument(why)) if why.contains("gzip")),
            "{r:?}"
        );
        // The broker's cap, whatever frame_max.
        let huge = vec![0; MAX_UNCOMPRESSED_SUB_ENTRY_SIZE];
        let r = s.check_message(&OutgoingMessage::raw(&huge), u32::MAX as usize);
        assert!(
            matches!(&r, Err(ClientError::InvalidArgument(why)) if why.contains("cap")),
            "{r:?}"
        );
    }

    #[test]
    fn producer_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Producer>();
        check::<OutgoingMessage<'static>>();
    }

    #[test]
    fn closures_are_event_handlers() {
        let seen = Arc::new(AtomicUsize::new(0));
        let s = seen.clone();
        let events: Arc<dyn ProducerEvents> = Arc::new(move |b: &[Confirm]| {
            s.fetch_add(b.len(), Ordering::Relaxed);
        });
        events.confirms(&[Confirm {
            publishing_id: 0,
            tag: 0,
            status: ConfirmStatus::Timeout,
        }]);
        assert_eq!(seen.load(Ordering::Relaxed), 1);
    }
}
