//! The consumer's tracking, flow control, single active consumer and filtering against the
//! real brokers of `scripts/broker` (`RMQS_TEST_URI`, RabbitMQ 4.x; `RMQS_TEST_LEGACY_URI`,
//! RabbitMQ 3.10.8, skipped with a notice when unset), plus a scripted in-process broker for
//! what a real one cannot be made to do on demand (a Subscribe that is never answered).
//!
//! Messages are published with the async core's [`Producer`] (AMQP data bodies `"<tag>:<i>"`,
//! filter values through `OutgoingMessage::filter_value`), one Publish frame per intended
//! chunk, each waited for before the next, so that the broker writes one chunk per call.
//! The crash test re-runs this test binary as a child process and kills it.
//!
//! Each StoreOffset writes a tracking chunk to the stream, which takes an offset (consumers
//! never see it): messages published after a store do not sit at the offset their index
//! suggests, so those tests compare message indices (from the bodies) and check that offsets
//! only grow.

mod support;

use std::collections::{HashSet, VecDeque};
use std::io::{BufRead, BufReader};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::{Duration, Instant};
use support::client::{env, lock, runtime, wait_until};
use support::{unique, uri};

use rmqstream::client::consumer::{
    ConsumerUpdate, PostFilter, TrackingContext, TrackingDecider, TrackingStrategy,
};
use rmqstream::client::{
    ClientError, Confirm, ConnectionConfig, Consumer, ConsumerConfig, ConsumerEvents, CreditPolicy,
    DeliveredChunk, Environment, OutgoingMessage, Producer, ProducerConfig,
};
use rmqstream::protocol::codes::{OffsetSpec, ResponseCode};
use rmqstream::protocol::commands::{CodeResponse, Frame};

const WAIT: Duration = Duration::from_secs(20);
/// How long "nothing more arrives" is observed.
const QUIET: Duration = Duration::from_millis(600);

fn body(tag: &str, i: u64) -> String {
    format!("{tag}:{i}")
}

// ---------------------------------------------------------------------------------------------
// Publishing with the producer core.

struct Pub {
    producer: Producer,
    confirmed: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    sent: u64,
}

impl Pub {
    async fn new(env: &Environment, stream: &str) -> Pub {
        let confirmed = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let (c, f) = (confirmed.clone(), failed.clone());
        let events = Arc::new(move |batch: &[Confirm]| {
            for x in batch {
                if x.status.is_confirmed() {
                    c.fetch_add(1, Ordering::SeqCst);
                } else {
                    f.fetch_add(1, Ordering::SeqCst);
                }
            }
        });
        let config = ProducerConfig {
            batch_size: 10_000,
            batch_delay: Duration::ZERO,
            ..Default::default()
        };
        let producer = Producer::new(env, stream, config, events).await.unwrap();
        Pub {
            producer,
            confirmed,
            failed,
            sent: 0,
        }
    }

    /// Publishes `msgs` (body, filter value) in one frame and waits for their confirms: one
    /// chunk.
    async fn chunk(&mut self, msgs: &[(String, Option<&str>)]) {
        let out: Vec<OutgoingMessage<'_>> = msgs
            .iter()
            .map(|(b, f)| {
                let m = OutgoingMessage::new(b.as_bytes());
                match f {
                    Some(v) => m.filter_value(v),
                    None => m,
                }
            })
            .collect();
        assert_eq!(self.producer.send_batch(&out, None).unwrap(), msgs.len());
        self.sent += msgs.len() as u64;
        let target = self.sent;
        assert!(
            wait_until(WAIT, || self.confirmed.load(Ordering::SeqCst) >= target).await,
            "confirms"
        );
        assert_eq!(self.failed.load(Ordering::SeqCst), 0);
    }

    /// Publishes `count` messages `tag:first..` as chunks of `per_chunk`.
    async fn chunks(&mut self, tag: &str, first: u64, count: u64, per_chunk: u64) {
        let mut i = first;
        while i < first + count {
            let end = (i + per_chunk).min(first + count);
            let msgs: Vec<(String, Option<&str>)> =
                (i..end).map(|k| (body(tag, k), None)).collect();
            self.chunk(&msgs).await;
            i = end;
        }
    }

    async fn close(self) {
        self.producer.close(WAIT).await.unwrap();
    }
}

// ---------------------------------------------------------------------------------------------
// An event sink recording everything.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ChunkSeen {
    chunk_id: u64,
    first: u64,
    len: usize,
    last: u64,
    filtered_out: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct UpdateSeen {
    active: bool,
    stored: Option<u64>,
    default: OffsetSpec,
}

/// What the sink does with a ConsumerUpdate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum OnUpdate {
    /// Drop it: the default answer.
    #[default]
    Default,
    /// Keep it and never answer.
    Keep,
    /// Answer this from another thread after a delay.
    Later(OffsetSpec, Duration),
}

#[derive(Default)]
struct Seen {
    records: Vec<(u64, String)>,
    chunks: Vec<ChunkSeen>,
    held: VecDeque<DeliveredChunk>,
    max_held: usize,
    errors: Vec<ClientError>,
    closed: Vec<ClientError>,
    updates: Vec<(Instant, UpdateSeen)>,
    kept_updates: Vec<ConsumerUpdate>,
    /// The consumer's credits_granted right after each chunk arrived.
    credits_at_arrival: Vec<u64>,
    /// When each chunk arrived.
    arrivals: Vec<Instant>,
}

#[derive(Default)]
struct Sink {
    /// Keep chunks (the test releases them) instead of dropping them at once.
    hold: AtomicBool,
    on_update: Mutex<OnUpdate>,
    /// For `credits_at_arrival`.
    consumer: OnceLock<Weak<Consumer>>,
    seen: Mutex<Seen>,
}

impl Sink {
    fn new() -> Arc<Sink> {
        Arc::new(Sink::default())
    }
    fn holding() -> Arc<Sink> {
        let s = Sink::default();
        s.hold.store(true, Ordering::SeqCst);
        Arc::new(s)
    }
    fn seen(&self) -> MutexGuard<'_, Seen> {
        lock(&self.seen)
    }
    /// The consumer updates it answered, in order.
    fn updates(&self) -> Vec<UpdateSeen> {
        self.seen().updates.iter().map(|u| u.1).collect()
    }
    fn records(&self) -> usize {
        self.seen().records.len()
    }
    fn chunks(&self) -> usize {
        self.seen().chunks.len()
    }
    fn held(&self) -> usize {
        self.seen().held.len()
    }
    fn offsets(&self) -> Vec<u64> {
        self.seen().records.iter().map(|r| r.0).collect()
    }
    /// The message indices (`tag:i` bodies), checking that offsets only grow.
    fn indices(&self) -> Vec<u64> {
        let seen = self.seen();
        assert!(
            seen.records.windows(2).all(|w| w[0].0 < w[1].0),
            "offsets grow"
        );
        seen.records
            .iter()
            .map(|(_, b)| b.rsplit(':').next().unwrap().parse().unwrap())
            .collect()
    }
    fn last_offset(&self) -> Option<u64> {
        self.seen().records.last().map(|r| r.0)
    }
    /// Releases the oldest held chunk; returns whether there was one.
    fn release_one(&self) -> bool {
        let c = self.seen().held.pop_front();
        c.map(DeliveredChunk::release).is_some()
    }
    fn watch(&self, consumer: &Arc<Consumer>) {
        let _ = self.consumer.set(Arc::downgrade(consumer));
    }
}

impl ConsumerEvents for Sink {
    fn chunk(&self, chunk: DeliveredChunk) {
        let credits = self
            .consumer
            .get()
            .and_then(Weak::upgrade)
            .map(|c| c.stats().credits_granted);
        let mut s = self.seen();
        s.arrivals.push(Instant::now());
        for r in chunk.records() {
            s.records.push((
                r.offset,
                String::from_utf8_lossy(r.amqp_body()).into_owned(),
            ));
        }
        s.chunks.push(ChunkSeen {
            chunk_id: chunk.chunk_id(),
            first: chunk.first_offset(),
            len: chunk.len(),
            last: chunk.last_offset(),
            filtered_out: chunk.filtered_out(),
        });
        if let Some(c) = credits {
            s.credits_at_arrival.push(c);
        }
        if self.hold.load(Ordering::SeqCst) {
            s.held.push_back(chunk);
            s.max_held = s.max_held.max(s.held.len());
        }
    }
    fn error(&self, error: &ClientError) {
        self.seen().errors.push(error.clone());
    }
    fn closed(&self, reason: &ClientError) {
        self.seen().closed.push(reason.clone());
    }
    fn consumer_update(&self, update: ConsumerUpdate) {
        let info = UpdateSeen {
            active: update.is_active(),
            stored: update.stored_offset(),
            default: update.default_offset(),
        };
        self.seen().updates.push((Instant::now(), info));
        match *lock(&self.on_update) {
            OnUpdate::Default => drop(update),
            OnUpdate::Keep => self.seen().kept_updates.push(update),
            OnUpdate::Later(spec, delay) => {
                std::thread::spawn(move || {
                    std::thread::sleep(delay);
                    assert!(update.reply(spec), "answered in time");
                });
            }
        }
    }
}

fn named(name: &str, offset: OffsetSpec, tracking: TrackingStrategy) -> ConsumerConfig {
    ConsumerConfig {
        name: Some(name.into()),
        offset,
        tracking,
        ..Default::default()
    }
}

/// A consumer of `stream` from the first offset named `name` with `tracking`, and its sink.
async fn tracked(
    env: &Environment,
    stream: &str,
    name: &str,
    tracking: TrackingStrategy,
) -> (Arc<Sink>, Consumer) {
    let sink = Sink::new();
    let cfg = named(name, OffsetSpec::First, tracking);
    let consumer = Consumer::new(env, stream, cfg, sink.clone()).await;
    (sink, consumer.unwrap())
}

/// Polls the broker until `reference` has `want` stored on `stream`.
async fn stored_becomes(env: &Environment, reference: &str, stream: &str, want: u64) -> bool {
    let end = Instant::now() + WAIT;
    while Instant::now() < end {
        if env.query_offset(reference, stream).await.unwrap() == Some(want) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

/// Runs `test` on a 3-worker runtime with an environment, a fresh stream named after `prefix`
/// and a [`Pub`] on it; then closes the publisher, deletes the stream and closes the
/// environment.
fn with_stream(prefix: &str, test: impl AsyncFnOnce(&Environment, &str, &mut Pub)) {
    runtime(3).block_on(async {
        let env = env(&uri(), "client_consumer_features test").await;
        let s = unique(prefix);
        env.create_stream(&s, &[]).await.unwrap();
        let mut p = Pub::new(&env, &s).await;
        test(&env, &s, &mut p).await;
        p.close().await;
        env.delete_stream(&s).await.unwrap();
        env.close().await;
    });
}

// ---------------------------------------------------------------------------------------------
// Offset tracking.

#[test]
fn tracking_resumes_at_exactly_the_next_message_after_a_restart() {
    with_stream("features-restart", async |env, s, p| {
        p.chunks("m", 0, 300, 100).await;

        // First run: every 50 messages, from the first message; processes all 300.
        let a = Sink::new();
        let tracking = TrackingStrategy::EveryMessages(50);
        let cfg = || named("app", OffsetSpec::First, tracking.clone());
        let consumer = Consumer::new(env, s, cfg(), a.clone()).await.unwrap();
        assert!(wait_until(WAIT, || a.records() >= 300).await);
        assert_eq!(a.offsets(), (0..300).collect::<Vec<_>>());
        assert_eq!(consumer.processed_offset(), Some(299));
        // Stored after every chunk that brought the count to 50 or more.
        assert!(wait_until(WAIT, || consumer.stats().offsets_stored >= 1).await);
        let stats = consumer.stats();
        assert!(stats.last_stored_offset.unwrap() <= 299, "{stats:?}");
        consumer.close().await.unwrap();
        // The final store on close (when the last chunks did not reach 50).
        assert_eq!(consumer.stats().last_stored_offset, Some(299));
        assert!(stored_becomes(env, "app", s, 299).await);

        p.chunks("m", 300, 50, 50).await;
        // Second run: starts right after 299 although configured from the first message.
        let b = Sink::new();
        let consumer = Consumer::new(env, s, cfg(), b.clone()).await.unwrap();
        assert!(wait_until(WAIT, || b.records() >= 50).await);
        tokio::time::sleep(QUIET).await;
        assert_eq!(b.indices(), (300..350).collect::<Vec<_>>());
        assert!(b.offsets()[0] > 299);
        consumer.close().await.unwrap();
        let last = b.last_offset().unwrap();
        assert_eq!(consumer.stats().last_stored_offset, Some(last));
        assert!(stored_becomes(env, "app", s, last).await);

        // Third run: nothing new, nothing stored.
        let c = Sink::new();
        let consumer = Consumer::new(env, s, cfg(), c.clone()).await.unwrap();
        tokio::time::sleep(QUIET).await;
        consumer.close().await.unwrap();
        assert_eq!(c.records(), 0);
        assert_eq!(consumer.stats().offsets_stored, 0);
        assert_eq!(consumer.stats().last_stored_offset, None);
    });
}

#[test]
fn out_of_order_releases_store_only_the_processed_run() {
    with_stream("features-order", async |env, s, p| {
        p.chunks("o", 0, 30, 10).await;
        let sink = Sink::holding();
        let consumer = Consumer::new(
            env,
            s,
            ConsumerConfig {
                initial_credit: 100,
                ..named("order", OffsetSpec::First, TrackingStrategy::Manual)
            },
            sink.clone(),
        )
        .await
        .unwrap();
        assert!(wait_until(WAIT, || sink.records() >= 30).await);
        assert!(sink.held() >= 2, "several chunks");
        // Release every chunk but the first: nothing is processed yet.
        let (first, rest) = {
            let mut s = sink.seen();
            let first = s.held.pop_front().unwrap();
            let rest: Vec<DeliveredChunk> = s.held.drain(..).collect();
            (first, rest)
        };
        drop(rest);
        assert_eq!(consumer.processed_offset(), None);
        assert_eq!(consumer.store_processed_offset().unwrap(), None);
        first.release();
        assert_eq!(consumer.processed_offset(), Some(29));
        assert_eq!(consumer.store_processed_offset().unwrap(), Some(29));
        assert_eq!(
            consumer.store_processed_offset().unwrap(),
            None,
            "unchanged"
        );
        assert!(stored_becomes(env, "order", s, 29).await);
        consumer.close().await.unwrap();
        assert_eq!(
            consumer.stats().offsets_stored,
            1,
            "manual: no store on close"
        );
    });
}

#[test]
fn custom_and_interval_strategies_decide_when_to_store() {
    with_stream("features-custom", async |env, s, p| {
        p.chunks("c", 0, 60, 10).await;

        // Store once 25 messages or more were processed since the last store.
        let asked: Arc<Mutex<Vec<TrackingContext>>> = Arc::default();
        let log = asked.clone();
        let decider = TrackingDecider::new(move |ctx: &TrackingContext| {
            lock(&log).push(*ctx);
            ctx.messages_since_store >= 25
        });
        let (sink, consumer) = tracked(env, s, "custom", TrackingStrategy::Custom(decider)).await;
        assert!(wait_until(WAIT, || sink.records() >= 60).await);
        tokio::time::sleep(Duration::from_millis(100)).await;
        let chunks = sink.seen().chunks.clone();
        {
            let asked = lock(&asked);
            // Asked once per chunk, with the chunk's last offset; count the stores it asked.
            assert_eq!(asked.len(), chunks.len());
            let (mut stores, mut since, mut last) = (0, 0, None);
            for (ctx, c) in asked.iter().zip(&chunks) {
                since += c.len as u64;
                assert_eq!(ctx.processed_offset, c.last);
                assert_eq!((ctx.messages_since_store, ctx.last_stored), (since, last));
                if since >= 25 {
                    stores += 1;
                    since = 0;
                    last = Some(c.last);
                }
            }
            assert_eq!(consumer.stats().offsets_stored, stores);
            assert_eq!(consumer.stats().last_stored_offset, last);
        }
        consumer.close().await.unwrap();
        assert!(stored_becomes(env, "custom", s, 59).await, "on close");

        // Every 100 ms: a store shortly after processing, none while nothing moves.
        let (sink, consumer) = tracked(
            env,
            s,
            "interval",
            TrackingStrategy::Interval(Duration::from_millis(100)),
        )
        .await;
        assert!(wait_until(WAIT, || sink.records() >= 60).await);
        assert!(stored_becomes(env, "interval", s, 59).await);
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(consumer.stats().offsets_stored, 1);
        p.chunks("c", 60, 5, 5).await;
        assert!(wait_until(WAIT, || sink.records() >= 65).await);
        let last = sink.last_offset().unwrap();
        assert!(stored_becomes(env, "interval", s, last).await);
        assert_eq!(consumer.stats().offsets_stored, 2);
        consumer.close().await.unwrap();
    });
}

/// Runs only as the child process of `tracking_survives_a_killed_consumer_process`: consumes,
/// stores once (explicitly, or through the periodic strategy) after 100 messages or more,
/// processes two more chunks without storing, prints `READY <stored offset>` and waits to be
/// killed.
#[test]
fn crash_child() {
    let Some((stream, mode)) = support::crash_vars("RMQS_CRASH_STREAM", "RMQS_CRASH_MODE") else {
        return;
    };
    runtime(3).block_on(async {
        let env = env(&uri(), "client_consumer_features test").await;
        let tracking = if mode == "explicit" {
            TrackingStrategy::Manual
        } else {
            TrackingStrategy::Interval(Duration::from_secs(3))
        };
        let sink = Sink::holding();
        let consumer = Consumer::new(
            &env,
            &stream,
            named(&mode, OffsetSpec::First, tracking),
            sink.clone(),
        )
        .await
        .unwrap();
        // Releases one held chunk, or waits a little for one.
        let step = || async {
            if !sink.release_one() {
                tokio::time::sleep(Duration::from_millis(5)).await;
                return false;
            }
            true
        };
        let processed = || consumer.processed_offset().unwrap_or(0);
        while processed() < 99 {
            step().await;
        }
        let stored = processed();
        if mode == "explicit" {
            assert_eq!(consumer.store_processed_offset().unwrap(), Some(stored));
        }
        assert!(stored_becomes(&env, &mode, &stream, stored).await);
        assert_eq!(consumer.stats().last_stored_offset, Some(stored));
        // Two more chunks processed, not stored: a crash loses only that progress.
        let mut more = 0;
        while more < 2 {
            more += usize::from(step().await);
        }
        assert!(processed() > stored);
        println!("\nREADY {stored}");
        tokio::time::sleep(Duration::from_secs(120)).await;
        unreachable!("the parent kills this process");
    });
}

#[test]
fn tracking_survives_a_killed_consumer_process() {
    with_stream("features-crash", async |env, s, p| {
        p.chunks("k", 0, 200, 20).await;
        for mode in ["explicit", "periodic"] {
            let mut child =
                support::spawn_crash_child(&[("RMQS_CRASH_STREAM", s), ("RMQS_CRASH_MODE", mode)]);
            let stdout = child.stdout.take().unwrap();
            let ready = tokio::task::spawn_blocking(move || {
                BufReader::new(stdout)
                    .lines()
                    .map_while(Result::ok)
                    .find_map(|l| l.trim().strip_prefix("READY ")?.parse::<u64>().ok())
            });
            let ready = tokio::time::timeout(Duration::from_secs(60), ready).await;
            child.kill().unwrap();
            let status = child.wait().unwrap();
            let stored = ready
                .expect("the child got ready in time")
                .unwrap()
                .unwrap_or_else(|| panic!("{mode}: the child ended before READY: {status}"));
            assert!(!status.success(), "{mode}: killed");

            // Processed two chunks more than it stored: resumes right after the stored
            // offset, nothing skipped (those two chunks come again).
            let sink = Sink::new();
            let consumer = Consumer::new(
                env,
                s,
                named(mode, OffsetSpec::First, TrackingStrategy::Manual),
                sink.clone(),
            )
            .await
            .unwrap();
            let want = 199 - stored as usize;
            assert!(wait_until(WAIT, || sink.records() >= want).await, "{mode}");
            tokio::time::sleep(QUIET).await;
            assert_eq!(
                sink.offsets(),
                (stored + 1..200).collect::<Vec<_>>(),
                "{mode}"
            );
            consumer.close().await.unwrap();
        }
    });
}

// ---------------------------------------------------------------------------------------------
// Flow control.

/// Subscribes from the first of `chunks` chunks with `policy`, holding every chunk; then
/// releases them one at a time, each time waiting until nothing more arrives. Returns, after
/// each release, (released so far, credits granted, chunks received).
/// From the first offset with `initial` credits and `policy`.
fn credited(initial: u16, policy: CreditPolicy) -> ConsumerConfig {
    ConsumerConfig {
        offset: OffsetSpec::First,
        initial_credit: initial,
        credit_policy: policy,
        ..Default::default()
    }
}

async fn credit_steps(
    env: &Environment,
    stream: &str,
    initial: u16,
    policy: CreditPolicy,
    chunks: usize,
) -> (Vec<(usize, u64, usize)>, usize) {
    let sink = Sink::holding();
    let consumer = Consumer::new(env, stream, credited(initial, policy), sink.clone())
        .await
        .unwrap();
    let quiet = |sink: Arc<Sink>| async move {
        let mut n = sink.chunks();
        loop {
            tokio::time::sleep(Duration::from_millis(250)).await;
            let m = sink.chunks();
            if m == n {
                return m;
            }
            n = m;
        }
    };
    let first = quiet(sink.clone()).await;
    let mut steps = vec![(0, consumer.stats().credits_granted, first)];
    let mut released = 0;
    while sink.release_one() {
        released += 1;
        let received = quiet(sink.clone()).await;
        steps.push((released, consumer.stats().credits_granted, received));
        if released > 3 * chunks {
            break;
        }
    }
    let max_held = sink.seen().max_held;
    assert_eq!(sink.chunks(), steps.last().unwrap().2);
    consumer.close().await.unwrap();
    (steps, max_held)
}

#[test]
fn each_credit_policy_has_its_credit_pattern() {
    with_stream("features-credit", async |env, s, p| {
        const CHUNKS: usize = 12;
        // One message per chunk: the broker cannot split them.
        p.chunks("f", 0, CHUNKS as u64, 1).await;
        const INITIAL: u16 = 4;
        let initial = u64::from(INITIAL);

        // OnArrival: one credit per chunk as it arrives, the application holding them or not:
        // everything arrives at once, memory is not bounded by the credit.
        let (steps, max_held) =
            credit_steps(env, s, INITIAL, CreditPolicy::OnArrival, CHUNKS).await;
        assert_eq!(steps[0], (0, initial + CHUNKS as u64, CHUNKS), "{steps:?}");
        assert_eq!(max_held, CHUNKS);

        // OnRelease: exactly the initial credit until released, then one per release.
        let (steps, max_held) =
            credit_steps(env, s, INITIAL, CreditPolicy::OnRelease, CHUNKS).await;
        assert_eq!(steps[0], (0, initial, INITIAL as usize), "{steps:?}");
        for &(released, credits, received) in &steps {
            assert_eq!(credits, initial + released as u64, "{steps:?}");
            assert!(received <= released + INITIAL as usize, "{steps:?}");
        }
        assert_eq!(steps.last().unwrap().2, CHUNKS);
        assert!(max_held <= INITIAL as usize, "memory bounded: {max_held}");

        // AfterProcessed(2): two credits after every second release.
        let (steps, max_held) =
            credit_steps(env, s, INITIAL, CreditPolicy::AfterProcessed(2), CHUNKS).await;
        assert_eq!(steps[0], (0, initial, INITIAL as usize), "{steps:?}");
        for &(released, credits, _) in &steps {
            assert_eq!(credits, initial + 2 * (released as u64 / 2), "{steps:?}");
        }
        assert_eq!(steps.last().unwrap().2, CHUNKS);
        assert!(max_held <= INITIAL as usize);

        // Manual: the initial credit only; chunks stay away until Consumer::credit.
        let (steps, _) = credit_steps(env, s, INITIAL, CreditPolicy::Manual, CHUNKS).await;
        assert!(
            steps
                .iter()
                .all(|&(_, c, r)| c == initial && r == INITIAL as usize),
            "{steps:?}"
        );

        // WhenBelow{75%} of 4 (threshold 3): while the application holds everything each
        // release goes out at once; all chunks arrive, never more than 4 held.
        let (steps, max_held) = credit_steps(
            env,
            s,
            INITIAL,
            CreditPolicy::WhenBelow { percent: 75 },
            CHUNKS,
        )
        .await;
        assert_eq!(steps[0], (0, initial, INITIAL as usize), "{steps:?}");
        assert_eq!(steps.last().unwrap().2, CHUNKS);
        assert!(max_held <= INITIAL as usize);
    });
}

#[test]
fn when_below_batches_credit_for_a_fast_application() {
    with_stream("features-below", async |env, s, p| {
        const CHUNKS: u64 = 60;
        p.chunks("w", 0, CHUNKS, 1).await;
        let run = |policy: CreditPolicy| {
            let env = &env;
            let s = &s;
            async move {
                let sink = Sink::new();
                let consumer = Arc::new(
                    Consumer::new(env, s, credited(10, policy), sink.clone())
                        .await
                        .unwrap(),
                );
                sink.watch(&consumer);
                assert!(wait_until(WAIT, || sink.records() >= CHUNKS as usize).await);
                tokio::time::sleep(QUIET).await;
                let stats = consumer.stats();
                consumer.close().await.unwrap();
                let steps = sink.seen().credits_at_arrival.clone();
                assert_eq!(sink.offsets(), (0..CHUNKS).collect::<Vec<_>>());
                (stats, steps)
            }
        };
        // OnRelease: every chunk's credit goes back (stats read after the last release).
        let (stats, _) = run(CreditPolicy::OnRelease).await;
        assert_eq!(stats.credits_granted, 10 + CHUNKS);
        // WhenBelow{50%} of 10 (threshold 6): credit goes in batches, some held at the end.
        let (stats, steps) = run(CreditPolicy::WhenBelow { percent: 50 }).await;
        assert!(stats.credits_granted < 10 + CHUNKS, "{stats:?}");
        assert!(stats.credits_granted + 6 >= 10 + CHUNKS, "{stats:?}");
        let jumps = steps.windows(2).filter(|w| w[1] >= w[0] + 2).count();
        assert!(jumps > 0, "credit went back in batches: {steps:?}");
    });
}

#[test]
fn a_slow_application_holds_at_most_the_initial_credit() {
    with_stream("features-slow", async |env, s, p| {
        const CHUNKS: usize = 30;
        p.chunks("s", 0, CHUNKS as u64, 1).await;
        for policy in [
            CreditPolicy::OnRelease,
            CreditPolicy::AfterProcessed(1),
            CreditPolicy::WhenBelow { percent: 50 },
        ] {
            let sink = Sink::holding();
            let consumer = Consumer::new(env, s, credited(3, policy), sink.clone())
                .await
                .unwrap();
            // The application: one chunk every 15 ms, from its own thread.
            let app = {
                let sink = sink.clone();
                std::thread::spawn(move || {
                    let end = Instant::now() + WAIT;
                    let mut done = 0;
                    while done < CHUNKS && Instant::now() < end {
                        std::thread::sleep(Duration::from_millis(15));
                        done += usize::from(sink.release_one());
                    }
                    done
                })
            };
            let done = tokio::task::spawn_blocking(move || app.join().unwrap())
                .await
                .unwrap();
            assert_eq!(done, CHUNKS, "{policy:?}: every chunk arrived");
            let max_held = sink.seen().max_held;
            assert!(max_held <= 3, "{policy:?}: held {max_held}");
            assert_eq!(sink.offsets(), (0..CHUNKS as u64).collect::<Vec<_>>());
            consumer.close().await.unwrap();
        }
    });
}

// ---------------------------------------------------------------------------------------------
// Single active consumer.

fn sac(group: &str, tracking: TrackingStrategy) -> ConsumerConfig {
    ConsumerConfig {
        name: Some(group.into()),
        offset: OffsetSpec::First,
        single_active_consumer: true,
        tracking,
        ..Default::default()
    }
}

#[test]
fn single_active_consumer_one_receives_and_the_other_takes_over_on_close() {
    with_stream("features-sac", async |env, s, p| {
        p.chunks("a", 0, 100, 20).await;
        let tracking = TrackingStrategy::EveryMessages(1000);
        let (a, b) = (Sink::new(), Sink::new());
        let ca = Consumer::new(env, s, sac("grp", tracking.clone()), a.clone())
            .await
            .unwrap();
        let cb = Consumer::new(env, s, sac("grp", tracking), b.clone())
            .await
            .unwrap();
        assert!(wait_until(WAIT, || a.records() + b.records() >= 100).await);
        tokio::time::sleep(QUIET).await;
        let (active, standby, ca_active) = if a.records() > 0 {
            (a.clone(), b.clone(), true)
        } else {
            (b.clone(), a.clone(), false)
        };
        assert_eq!(active.offsets(), (0..100).collect::<Vec<_>>());
        assert_eq!(standby.records(), 0, "exactly one consumer receives");
        assert_eq!(ca.is_active(), ca_active);
        assert_eq!(cb.is_active(), !ca_active);
        assert_eq!(
            active.updates(),
            [UpdateSeen {
                active: true,
                stored: None,
                default: OffsetSpec::First
            }]
        );
        assert!(standby.seen().updates.is_empty());

        // The active one closes: final store of 99, then the other starts right after it.
        let (closing, staying) = if ca_active { (&ca, &cb) } else { (&cb, &ca) };
        closing.close().await.unwrap();
        assert_eq!(closing.stats().last_stored_offset, Some(99));
        assert!(wait_until(WAIT, || staying.is_active()).await);
        assert_eq!(
            standby.updates(),
            [UpdateSeen {
                active: true,
                stored: Some(99),
                default: OffsetSpec::Offset(100)
            }]
        );
        p.chunks("a", 100, 50, 25).await;
        assert!(wait_until(WAIT, || standby.records() >= 50).await);
        tokio::time::sleep(QUIET).await;
        // After the tracking chunk the store wrote at offset 100.
        assert_eq!(standby.indices(), (100..150).collect::<Vec<_>>());
        assert!(standby.offsets()[0] >= 100);
        assert_eq!(active.records(), 100, "nothing after close");
        assert!(a.seen().errors.is_empty() && b.seen().errors.is_empty());
        staying.close().await.unwrap();
    });
}

#[test]
fn a_slow_consumer_update_hook_gets_the_default_after_the_deadline() {
    with_stream("features-sac-slow", async |env, s, p| {
        p.chunks("h", 0, 30, 10).await;

        // A hook that never answers: the default (First, nothing stored) after 400 ms.
        let slow = Sink::new();
        *lock(&slow.on_update) = OnUpdate::Keep;
        let started = Instant::now();
        let c = Consumer::new(
            env,
            s,
            ConsumerConfig {
                consumer_update_timeout: Duration::from_millis(400),
                ..sac("slow", TrackingStrategy::Disabled)
            },
            slow.clone(),
        )
        .await
        .unwrap();
        assert!(wait_until(WAIT, || slow.records() >= 30).await);
        let (updated_at, first_chunk_at) = {
            let seen = slow.seen();
            (seen.updates[0].0, seen.arrivals[0])
        };
        assert!(
            first_chunk_at.duration_since(updated_at) >= Duration::from_millis(390),
            "no chunk before the deadline"
        );
        assert!(started.elapsed() < Duration::from_secs(10));
        assert_eq!(slow.offsets(), (0..30).collect::<Vec<_>>());
        let late = slow.seen().kept_updates.pop().unwrap();
        assert!(!late.reply(OffsetSpec::Offset(10)), "too late");
        c.close().await.unwrap();

        // A hook answering from another thread: starts where it said.
        let later = Sink::new();
        *lock(&later.on_update) =
            OnUpdate::Later(OffsetSpec::Offset(20), Duration::from_millis(100));
        let c = Consumer::new(
            env,
            s,
            sac("later", TrackingStrategy::Disabled),
            later.clone(),
        )
        .await
        .unwrap();
        assert!(wait_until(WAIT, || later.records() >= 10).await);
        tokio::time::sleep(QUIET).await;
        assert_eq!(later.offsets(), (20..30).collect::<Vec<_>>());
        c.close().await.unwrap();
    });
}

#[test]
fn a_stepping_down_consumer_hands_over_at_its_processed_offset() {
    runtime(3).block_on(async {
        let env = env(&uri(), "client_consumer_features test").await;
        let ss = unique("features-ss");
        let parts = vec![format!("{ss}-0"), format!("{ss}-1")];
        env.create_super_stream(&ss, &parts, &["0".into(), "1".into()], &[])
            .await
            .unwrap();
        let mut pubs = Vec::new();
        for part in &parts {
            let mut p = Pub::new(&env, part).await;
            p.chunks("p", 0, 40, 20).await;
            pubs.push(p);
        }
        let cfg = || ConsumerConfig {
            super_stream: Some(ss.clone()),
            ..sac("grp", TrackingStrategy::EveryMessages(1000))
        };
        // A on both partitions: active on both.
        // one consumer per partition, each with its sink
        let join = async |sinks: &[Arc<Sink>]| {
            let mut consumers = Vec::new();
            for (part, sink) in parts.iter().zip(sinks) {
                consumers.push(
                    Consumer::new(&env, part, cfg(), sink.clone())
                        .await
                        .unwrap(),
                );
            }
            consumers
        };
        let a: Vec<Arc<Sink>> = vec![Sink::new(), Sink::new()];
        let ca = join(&a).await;
        assert!(wait_until(WAIT, || a.iter().all(|x| x.records() >= 40)).await);
        // B joins: the broker moves one partition to it; A steps down there, stores 39 and
        // B starts at 40.
        let b: Vec<Arc<Sink>> = vec![Sink::new(), Sink::new()];
        let cb = join(&b).await;
        assert!(
            wait_until(WAIT, || (0..2).any(|i| cb[i].is_active())).await,
            "B activated somewhere"
        );
        let moved = (0..2).find(|&i| cb[i].is_active()).unwrap();
        let kept = 1 - moved;
        assert!(!ca[moved].is_active() && ca[kept].is_active() && !cb[kept].is_active());
        let a_updates: Vec<UpdateSeen> = a[moved].updates();
        assert_eq!(a_updates.len(), 2, "{a_updates:?}");
        assert!(!a_updates[1].active);
        assert_eq!(ca[moved].stats().last_stored_offset, Some(39));
        assert_eq!(
            b[moved].updates(),
            [UpdateSeen {
                active: true,
                stored: Some(39),
                default: OffsetSpec::Offset(40)
            }]
        );
        for p in &mut pubs {
            p.chunks("p", 40, 10, 10).await;
        }
        assert!(wait_until(WAIT, || b[moved].records() >= 10 && a[kept].records() >= 50).await);
        tokio::time::sleep(QUIET).await;
        assert_eq!(a[kept].indices(), (0..50).collect::<Vec<_>>());
        assert_eq!(a[moved].indices(), (0..40).collect::<Vec<_>>());
        assert_eq!(b[moved].indices(), (40..50).collect::<Vec<_>>());
        assert!(b[moved].offsets()[0] >= 40);
        assert_eq!(b[kept].records(), 0);
        for x in a.iter().chain(&b) {
            assert!(x.seen().errors.is_empty(), "{:?}", x.seen().errors);
        }
        for c in ca.iter().chain(&cb) {
            c.close().await.unwrap();
        }
        for p in pubs {
            p.close().await;
        }
        env.delete_super_stream(&ss).await.unwrap();
        env.close().await;
    });
}

// ---------------------------------------------------------------------------------------------
// Filtering.

/// Whether a record's body is `value:...` — what the post-filter can see of the message.
fn has_value(r: &rmqstream::client::ConsumerRecord<'_>, value: &str) -> bool {
    r.amqp_body().starts_with(format!("{value}:").as_bytes())
}

#[test]
fn filtering_reduces_what_arrives_and_the_post_filter_removes_the_rest() {
    with_stream("features-filter", async |env, s, p| {
        // Chunks: 20 eu, 20 us, 20 ap, 20 mixed eu/us, 20 without a value.
        let mut offset = 0u64;
        let mut values: Vec<Option<&str>> = Vec::new();
        for layout in [["eu"; 2], ["us"; 2], ["ap"; 2], ["eu", "us"], ["", ""]] {
            let msgs: Vec<(String, Option<&str>)> = (0..20)
                .map(|k| {
                    let v = layout[k % 2];
                    let m = (
                        body(if v.is_empty() { "none" } else { v }, offset + k as u64),
                        (!v.is_empty()).then_some(v),
                    );
                    values.push(m.1);
                    m
                })
                .collect();
            p.chunk(&msgs).await;
            offset += 20;
        }
        let eu: Vec<u64> = (0..100)
            .filter(|&o| values[o as usize] == Some("eu"))
            .collect();
        assert_eq!(eu.len(), 30);

        let consume = |config: ConsumerConfig| {
            let env = &env;
            let s = &s;
            async move {
                let sink = Sink::new();
                let c = Consumer::new(env, s, config, sink.clone()).await.unwrap();
                // The last chunk any of them can get is the fifth (offsets 80..100).
                tokio::time::sleep(Duration::from_millis(300)).await;
                tokio::time::sleep(QUIET).await;
                let stats = c.stats();
                c.close().await.unwrap();
                assert!(sink.seen().errors.is_empty());
                (sink, stats)
            }
        };
        let first = |c: ConsumerConfig| ConsumerConfig {
            offset: OffsetSpec::First,
            ..c
        };

        // Without filtering: everything.
        let (all, all_stats) = consume(first(ConsumerConfig::default())).await;
        assert_eq!(all.offsets(), (0..100).collect::<Vec<_>>());

        // Broker-side only: whole chunks that may hold eu (the eu and mixed ones at least;
        // never the chunk without values), so less than everything.
        let (chunky, stats) = consume(first(ConsumerConfig {
            filter_values: vec!["eu".into()],
            ..Default::default()
        }))
        .await;
        let got = chunky.offsets();
        assert!(
            eu.iter().all(|o| got.contains(o)),
            "every eu message arrives"
        );
        assert!(
            got.iter().all(|&o| o < 80),
            "no chunk without filter values"
        );
        assert!(
            stats.bytes < all_stats.bytes,
            "filtering reduced the traffic"
        );
        let chunk_ids: Vec<u64> = chunky.seen().chunks.iter().map(|c| c.chunk_id).collect();
        assert!(
            chunk_ids.contains(&0) && chunk_ids.contains(&60),
            "{chunk_ids:?}"
        );

        // With the post-filter: exactly the eu messages, at their own offsets.
        let (exact, stats) = consume(first(ConsumerConfig {
            filter_values: vec!["eu".into()],
            post_filter: Some(PostFilter::new(|r| has_value(r, "eu"))),
            ..Default::default()
        }))
        .await;
        assert_eq!(exact.offsets(), eu);
        for (o, b) in &exact.seen().records {
            assert_eq!(*b, body("eu", *o));
        }
        assert_eq!(stats.messages, 30);
        assert_eq!(
            stats.filtered_out as usize,
            got.len() - eu.len(),
            "what the broker sent beyond eu was removed"
        );
        // The mixed messages (60..80, maybe over several chunks): half hidden, none renumbered.
        let mixed: Vec<ChunkSeen> = exact
            .seen()
            .chunks
            .iter()
            .filter(|c| (60..80).contains(&c.chunk_id))
            .copied()
            .collect();
        let kept: usize = mixed.iter().map(|c| c.len).sum();
        let hidden: usize = mixed.iter().map(|c| c.filtered_out).sum();
        assert_eq!(kept, 10, "{mixed:?}");
        assert!(hidden <= 10, "{mixed:?}");
        assert_eq!(mixed[0].first, 60);
        assert_eq!(mixed.last().unwrap().last, 79);

        // match-unfiltered: the chunk without values too.
        let (unfiltered, _) = consume(first(ConsumerConfig {
            filter_values: vec!["eu".into()],
            match_unfiltered: true,
            post_filter: Some(PostFilter::new(|r| {
                has_value(r, "eu") || has_value(r, "none")
            })),
            ..Default::default()
        }))
        .await;
        let want: Vec<u64> = eu.iter().copied().chain(80..100).collect();
        assert_eq!(unfiltered.offsets(), want);
    });
}

#[test]
fn filtered_out_records_count_as_processed_for_tracking() {
    with_stream("features-filter-track", async |env, s, p| {
        // eu us eu us ... us (0..10), then us us (10, 11), then eu (12).
        let msgs: Vec<(String, Option<&str>)> = (0..10)
            .map(|k| {
                let v = if k % 2 == 0 { "eu" } else { "us" };
                (body(v, k), Some(v))
            })
            .collect();
        p.chunk(&msgs).await;
        p.chunk(&[(body("us", 10), Some("us")), (body("us", 11), Some("us"))])
            .await;
        p.chunk(&[(body("eu", 12), Some("eu"))]).await;
        let config = ConsumerConfig {
            post_filter: Some(PostFilter::new(|r| has_value(r, "eu"))),
            ..named("ft", OffsetSpec::First, TrackingStrategy::EveryMessages(1))
        };
        let sink = Sink::holding();
        let c = Consumer::new(env, s, config.clone(), sink.clone())
            .await
            .unwrap();
        assert!(wait_until(WAIT, || sink.records() >= 6).await);
        tokio::time::sleep(QUIET).await;
        assert_eq!(sink.indices(), [0, 2, 4, 6, 8, 12]);
        assert_eq!(c.processed_offset(), None);
        // Everything but eu:12: processed through the filtered-out 9, 10 and 11 (the us-only
        // chunk never reached the application but counts in its place).
        let last = sink.seen().held.pop_back().unwrap();
        assert_eq!(last.first_offset(), 12);
        while sink.release_one() {}
        assert_eq!(c.processed_offset(), Some(11));
        assert!(stored_becomes(env, "ft", s, 11).await);
        let stats = c.stats();
        assert_eq!(stats.filtered_out, 7);
        assert!(
            stats.chunks_received > stats.chunks,
            "the us-only chunk was received, not handed over: {stats:?}"
        );
        c.close().await.unwrap();
        drop(last);
        // Restart: the unprocessed eu:12 comes again, nothing else.
        let sink = Sink::new();
        let c = Consumer::new(env, s, config, sink.clone()).await.unwrap();
        assert!(wait_until(WAIT, || sink.records() >= 1).await);
        tokio::time::sleep(QUIET).await;
        assert_eq!(sink.offsets(), [12]);
        c.close().await.unwrap();
    });
}

// ---------------------------------------------------------------------------------------------
// RabbitMQ 3.10.8.

#[test]
fn legacy_broker_refuses_single_active_consumer_and_filtering() {
    let Ok(uri) = std::env::var("RMQS_TEST_LEGACY_URI") else {
        eprintln!("RMQS_TEST_LEGACY_URI unset: RabbitMQ 3.10 feature checks skipped");
        return;
    };
    runtime(3).block_on(async {
        let env = env(&uri, "client_consumer_features test").await;
        assert_eq!(env.server_info().await.unwrap().version.1, 10);
        let s = unique("features-legacy");
        env.create_stream(&s, &[]).await.unwrap();
        let sink = Sink::new();
        let sac = Consumer::new(
            &env,
            &s,
            sac("grp", TrackingStrategy::Disabled),
            sink.clone(),
        )
        .await;
        assert!(
            matches!(&sac, Err(ClientError::Unsupported { needs: "3.11", .. })),
            "{sac:?}"
        );
        for config in [
            ConsumerConfig {
                filter_values: vec!["eu".into()],
                ..Default::default()
            },
            ConsumerConfig {
                properties: vec![("filter.0".into(), "eu".into())],
                ..Default::default()
            },
        ] {
            let f = Consumer::new(&env, &s, config, sink.clone()).await;
            assert!(
                matches!(&f, Err(ClientError::Unsupported { needs: "3.13", .. })),
                "{f:?}"
            );
        }
        // The connection is fine (nothing unknown was sent), and tracking works on 3.10.
        let mut p = Pub::new(&env, &s).await;
        p.chunks("l", 0, 20, 10).await;
        let c = Consumer::new(
            &env,
            &s,
            named(
                "legacy",
                OffsetSpec::First,
                TrackingStrategy::EveryMessages(5),
            ),
            sink.clone(),
        )
        .await
        .unwrap();
        assert!(wait_until(WAIT, || sink.records() >= 20).await);
        assert!(stored_becomes(&env, "legacy", &s, 19).await);
        c.close().await.unwrap();
        assert!(sink.seen().errors.is_empty());
        p.close().await;
        env.delete_stream(&s).await.unwrap();
        env.close().await;
    });
}

// ---------------------------------------------------------------------------------------------
// A scripted broker whose first Subscribe is never answered.

#[derive(Default)]
struct Script {
    /// Subscription ids the scripted broker holds.
    live: Mutex<HashSet<u8>>,
    subscribes: AtomicU64,
    unsubscribes: AtomicU64,
    /// Answer codes of the Subscribes it answered.
    answers: Mutex<Vec<ResponseCode>>,
}

async fn serve_scripted(sock: tokio::net::TcpStream, port: u16, script: Arc<Script>) {
    let properties = [("version", "3.10.0")];
    support::client::serve_scripted(sock, port, &properties, |frame, send| match frame {
        Frame::Subscribe(f) => {
            let n = script.subscribes.fetch_add(1, Ordering::SeqCst);
            let mut live = lock(&script.live);
            let code = if live.insert(f.subscription_id) {
                ResponseCode::OK
            } else {
                ResponseCode::SUBSCRIPTION_ID_ALREADY_EXISTS
            };
            // The first one is taken but never answered (a slow broker).
            if n > 0 {
                lock(&script.answers).push(code);
                send(Frame::SubscribeResponse(CodeResponse {
                    correlation_id: f.correlation_id,
                    code,
                }));
            }
        }
        Frame::Unsubscribe(f) => {
            script.unsubscribes.fetch_add(1, Ordering::SeqCst);
            let code = if lock(&script.live).remove(&f.subscription_id) {
                ResponseCode::OK
            } else {
                ResponseCode::SUBSCRIPTION_ID_DOES_NOT_EXIST
            };
            send(Frame::UnsubscribeResponse(CodeResponse {
                correlation_id: f.correlation_id,
                code,
            }))
        }
        _ => {}
    })
    .await
}

#[test]
fn an_unanswered_subscribe_is_undone_before_its_id_is_reused() {
    runtime(3).block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let script = Arc::new(Script::default());
        let sc = script.clone();
        tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                tokio::spawn(serve_scripted(sock, port, sc.clone()));
            }
        });
        let mut cfg = ConnectionConfig::default();
        cfg.apply_uri(&format!(
            "rabbitmq-stream://guest:guest@127.0.0.1:{port}/%2f"
        ))
        .unwrap();
        cfg.request_timeout = Duration::from_millis(300);
        let env = Environment::connect(cfg).await.unwrap();

        // The broker takes the subscription but its answer never comes in time.
        let sink = Sink::new();
        let first = Consumer::new(&env, "scripted", ConsumerConfig::default(), sink.clone()).await;
        assert!(matches!(first, Err(ClientError::Timeout(..))), "{first:?}");
        // The consumer undoes it before freeing the id ...
        assert!(wait_until(WAIT, || script.unsubscribes.load(Ordering::SeqCst) == 1).await);
        // ... so the next consumer on the same connection subscribes fine.
        let second = Consumer::new(&env, "scripted", ConsumerConfig::default(), sink.clone())
            .await
            .unwrap();
        assert_eq!(*lock(&script.answers), [ResponseCode::OK]);
        second.close().await.unwrap();
        assert!(lock(&script.live).is_empty());

        // Cancelled while waiting for the answer: undone the same way.
        script.subscribes.store(0, Ordering::SeqCst);
        let pending = Consumer::new(&env, "scripted", ConsumerConfig::default(), sink.clone());
        let cancelled = tokio::time::timeout(Duration::from_millis(100), pending).await;
        assert!(cancelled.is_err());
        assert!(wait_until(WAIT, || script.unsubscribes.load(Ordering::SeqCst) == 3).await);
        assert!(wait_until(WAIT, || lock(&script.live).is_empty()).await);
        let third = Consumer::new(&env, "scripted", ConsumerConfig::default(), sink.clone())
            .await
            .unwrap();
        assert_eq!(*lock(&script.answers), [ResponseCode::OK, ResponseCode::OK]);
        third.close().await.unwrap();
        assert!(sink.seen().errors.is_empty());
        env.close().await;
    });
}
