//! The async core's super stream consumer against the real brokers of `scripts/broker`:
//! `RMQS_TEST_URI` (default `rabbitmq-stream://guest:guest@localhost:5552/%2f`, RabbitMQ 4.x)
//! and `RMQS_TEST_LEGACY_URI` (RabbitMQ 3.10.8; skipped with a notice when unset).
//!
//! Messages are published with the async core's `SuperProducer` (hash routing), each body
//! being its routing key and unique in the test, so every record says which partition it must
//! have come from (`route_partition(body, n)`) and whether it was seen twice. Async setup runs
//! in `block_on`; the producer's synchronous sends are made from the test thread.
//!
//! Two tests need `scripts/broker ctl eval` (skipped with a notice when the node cannot be
//! reached that way): adding a partition to a live super stream (the stream protocol has no
//! command for it; the binding is added with `rabbit_binding:add`, as the broker's own
//! `rabbit_stream_manager` does), and killing the super consumer's connections on the broker
//! (found by their client-provided `connection_name`, unique to the test) to lose its
//! partition consumers.

mod support;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use support::client::{env, lock};
use support::{unique, uri};

use rmqstream::client::consumer::{ConsumerUpdate, PostFilter, TrackingStrategy};
use rmqstream::client::super_producer::route_partition;
use rmqstream::client::{
    ClientError, Confirm, ConsumerConfig, DeliveredChunk, EnvironmentHandle, OutgoingMessage,
    SuperConsumer, SuperConsumerConfig, SuperConsumerEvents, SuperProducer, SuperProducerConfig,
    SuperProducerEvents,
};
use rmqstream::protocol::codes::OffsetSpec;

const WAIT: Duration = Duration::from_secs(30);
/// How long "nothing more arrives" is observed.
const QUIET: Duration = Duration::from_millis(500);

/// Polls `cond` (from the test thread) until it holds or `WAIT` passes.
fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

// ---------------------------------------------------------------------------------------------
// What a super consumer reported.

/// One record as delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Rec {
    partition: usize,
    /// `DeliveredChunk::stream` of its chunk.
    stream: String,
    offset: u64,
    body: String,
}

/// One consumer update as the hook saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Update {
    partition: usize,
    stream: String,
    active: bool,
    stored: Option<u64>,
    default: OffsetSpec,
}

#[derive(Debug, Default)]
struct Seen {
    records: Vec<Rec>,
    chunks: u64,
    errors: Vec<String>,
    /// (partition, stream, closed by the application, reason)
    closed: Vec<(usize, String, bool, String)>,
    updates: Vec<Update>,
}

type Hook = Box<dyn Fn(usize, ConsumerUpdate) + Send + Sync>;

/// Records every event; chunks are released inside the callback (so a chunk counts as
/// processed as soon as it is delivered). `hook`: answers consumer updates (default: drop,
/// i.e. the default answer).
#[derive(Default)]
struct Sink {
    seen: Mutex<Seen>,
    hook: Option<Hook>,
}

impl Sink {
    fn new() -> Arc<Sink> {
        Arc::new(Sink::default())
    }

    fn with_hook(hook: impl Fn(usize, ConsumerUpdate) + Send + Sync + 'static) -> Arc<Sink> {
        Arc::new(Sink {
            seen: Mutex::default(),
            hook: Some(Box::new(hook)),
        })
    }

    /// The records once `n` arrived (waiting for `what`) and nothing more came for a while:
    /// exactly `n`.
    fn settled(&self, what: &str, n: usize) -> Vec<Rec> {
        wait_until(what, || self.count() >= n);
        std::thread::sleep(QUIET);
        let got = self.records();
        assert_eq!(got.len(), n);
        got
    }

    fn seen(&self) -> MutexGuard<'_, Seen> {
        lock(&self.seen)
    }

    fn count(&self) -> usize {
        self.seen().records.len()
    }

    fn records(&self) -> Vec<Rec> {
        self.seen().records.clone()
    }

    /// Offsets received from partition `p`, in delivery order.
    fn offsets(&self, p: usize) -> Vec<u64> {
        self.seen()
            .records
            .iter()
            .filter(|r| r.partition == p)
            .map(|r| r.offset)
            .collect()
    }

    /// (offset, body) received from partition `p`, in delivery order.
    fn of(&self, p: usize) -> Vec<(u64, String)> {
        self.seen()
            .records
            .iter()
            .filter(|r| r.partition == p)
            .map(|r| (r.offset, r.body.clone()))
            .collect()
    }

    fn updates(&self) -> Vec<Update> {
        self.seen().updates.clone()
    }

    fn assert_no_error(&self) {
        let s = self.seen();
        assert!(s.errors.is_empty(), "errors: {:?}", s.errors);
    }
}

impl SuperConsumerEvents for Sink {
    fn chunk(&self, partition: usize, chunk: DeliveredChunk) {
        let mut s = self.seen();
        s.chunks += 1;
        for r in chunk.records() {
            let rec = Rec {
                partition,
                stream: chunk.stream().to_string(),
                offset: r.offset,
                body: String::from_utf8(r.amqp_body().to_vec()).unwrap(),
            };
            s.records.push(rec);
        }
    }

    fn error(&self, partition: usize, stream: &str, error: &ClientError) {
        self.seen()
            .errors
            .push(format!("partition {partition} ({stream}): {error}"));
    }

    fn closed(&self, partition: usize, stream: &str, reason: &ClientError) {
        let by_app = matches!(reason, ClientError::Closed(m) if m.contains("by the application"));
        self.seen()
            .closed
            .push((partition, stream.to_string(), by_app, reason.to_string()));
    }

    fn consumer_update(&self, partition: usize, update: ConsumerUpdate) {
        self.seen().updates.push(Update {
            partition,
            stream: update.stream().to_string(),
            active: update.is_active(),
            stored: update.stored_offset(),
            default: update.default_offset(),
        });
        if let Some(h) = &self.hook {
            h(partition, update);
        }
    }
}

/// Counts confirms; lets the test wait for them.
#[derive(Default)]
struct Confirms {
    confirmed: Mutex<usize>,
    failed: Mutex<Vec<String>>,
    cv: Condvar,
}

impl SuperProducerEvents for Confirms {
    fn confirms(&self, _partition: usize, stream: &str, batch: &[Confirm]) {
        let mut n = lock(&self.confirmed);
        for c in batch {
            if c.status.is_confirmed() {
                *n += 1;
            } else {
                lock(&self.failed).push(format!("{stream}: {c:?}"));
            }
        }
        self.cv.notify_all();
    }
}

impl Confirms {
    fn wait_for(&self, n: usize) {
        let deadline = Instant::now() + WAIT;
        let mut c = lock(&self.confirmed);
        while *c < n {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "{} confirms of {n}", *c);
            c = self.cv.wait_timeout(c, left).unwrap().0;
        }
        assert!(lock(&self.failed).is_empty(), "{:?}", lock(&self.failed));
    }
}

// ---------------------------------------------------------------------------------------------
// Fixture.

/// Named `name`, every partition from its first offset, with `tracking`.
fn named_from_first(name: &str, tracking: TrackingStrategy) -> SuperConsumerConfig {
    SuperConsumerConfig {
        name: Some(name.into()),
        consumer: ConsumerConfig {
            offset: OffsetSpec::First,
            tracking,
            ..Default::default()
        },
        ..Default::default()
    }
}

/// Every partition from its first offset.
fn from_first() -> SuperConsumerConfig {
    SuperConsumerConfig {
        consumer: ConsumerConfig {
            offset: OffsetSpec::First,
            ..Default::default()
        },
        ..Default::default()
    }
}

support::client::super_fixture!(3, "client_super_consumer");

impl Fixture {
    /// A fixture with a super stream `prefix-...` of `n` partitions (and their names) and a
    /// producer on it.
    fn published(
        prefix: &str,
        n: usize,
    ) -> (Fixture, String, Vec<String>, SuperProducer, Arc<Confirms>) {
        let f = Fixture::new(prefix);
        let (ss, parts) = f.numbered(prefix, n);
        let (p, confirms) = f.producer(&ss);
        (f, ss, parts, p, confirms)
    }

    /// Closes `p`, then deletes what the fixture made.
    fn close(self, p: SuperProducer) {
        self.rt.block_on(p.close(WAIT)).unwrap();
        self.finish();
    }

    fn producer(&self, super_stream: &str) -> (SuperProducer, Arc<Confirms>) {
        let confirms = Arc::new(Confirms::default());
        let events: Arc<dyn SuperProducerEvents> = confirms.clone();
        let p = self
            .rt
            .block_on(SuperProducer::new(
                self.handle(),
                super_stream,
                SuperProducerConfig::default(),
                events,
            ))
            .unwrap();
        (p, confirms)
    }

    fn consumer(
        &self,
        super_stream: &str,
        config: SuperConsumerConfig,
        sink: &Arc<Sink>,
    ) -> SuperConsumer {
        self.consumer_in(self.handle(), super_stream, config, sink)
    }

    fn consumer_in(
        &self,
        env: Arc<dyn EnvironmentHandle>,
        super_stream: &str,
        config: SuperConsumerConfig,
        sink: &Arc<Sink>,
    ) -> SuperConsumer {
        let events: Arc<dyn SuperConsumerEvents> = sink.clone();
        self.rt
            .block_on(SuperConsumer::new(env, super_stream, config, events))
            .unwrap()
    }

    /// Every record of `stream` as (offset, body), read from `First` by a plain consumer:
    /// `n` of them, and no more shortly after. Offset tracking writes its own chunks into the
    /// stream, which take offsets but are not delivered: user records' offsets have gaps there.
    fn read(&self, stream: &str, n: usize) -> Vec<(u64, String)> {
        let records = self.read_plain(stream, n, QUIET).into_iter();
        records
            .map(|(o, b)| (o, String::from_utf8(b).unwrap()))
            .collect()
    }

    fn stored(&self, reference: &str, stream: &str) -> Option<u64> {
        self.rt
            .block_on(self.env.query_offset(reference, stream))
            .unwrap()
    }
}

/// Sends every body with itself as routing key, then waits for their confirms (`confirms`
/// counts over the producer's life: `before` were confirmed earlier). Returns the partition of
/// each body.
fn publish(p: &SuperProducer, confirms: &Confirms, before: usize, bodies: &[String]) -> Vec<usize> {
    let n = p.partition_count();
    let parts = bodies
        .iter()
        .map(|b| {
            let (partition, _) = p
                .send(&OutgoingMessage::new(b.as_bytes()), Some(b), Some(WAIT))
                .unwrap();
            assert_eq!(partition, route_partition(b, n), "{b}");
            partition
        })
        .collect();
    p.flush(WAIT).unwrap();
    confirms.wait_for(before + bodies.len());
    parts
}

fn bodies(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i}")).collect()
}

/// Per partition, how many of `bodies` hash routing puts there with `n` partitions.
fn per_partition(bodies: &[String], n: usize) -> Vec<u64> {
    let mut per = vec![0u64; n];
    for b in bodies {
        per[route_partition(b, n)] += 1;
    }
    per
}

/// Runs `scripts/broker ctl eval EXPR` against the test node; `None` when that is not
/// possible here.
fn broker_eval(expr: &str) -> Option<String> {
    if !uri().contains("localhost:5552") {
        return None;
    }
    support::broker_eval(expr)
}

// ---------------------------------------------------------------------------------------------

/// 3000 keyed messages over 3 partitions, consumed from `First`: each exactly once, from the
/// partition its key hashes to (index and stream), with contiguous offsets per partition;
/// counters summed; close ends every partition once.
#[test]
fn every_message_once_from_its_partition() {
    let all = bodies("key", 3000);
    let (f, ss, parts, p, confirms) = Fixture::published("sc-all", 3);
    publish(&p, &confirms, 0, &all);
    let per = per_partition(&all, 3);
    assert!(per.iter().all(|&n| n > 800), "{per:?}");

    let sink = Sink::new();
    let config = from_first();
    let c = f.consumer(&ss, config, &sink);
    assert_eq!(c.partitions(), parts);
    assert_eq!(c.partition_count(), 3);
    assert_eq!(c.super_stream(), ss);
    assert_eq!(c.name(), None);
    assert_eq!(c.config().super_stream.as_deref(), Some(ss.as_str()));
    assert_eq!(c.active_partitions(), vec![0, 1, 2]);
    let got = sink.settled("3000 records", all.len());
    let mut bodies_seen = HashSet::new();
    for r in &got {
        assert_eq!(r.partition, route_partition(&r.body, 3), "{r:?}");
        assert_eq!(r.stream, parts[r.partition], "{r:?}");
        assert!(bodies_seen.insert(r.body.clone()), "twice: {r:?}");
    }
    for (i, &n) in per.iter().enumerate() {
        assert_eq!(sink.offsets(i), (0..n).collect::<Vec<_>>(), "{}", parts[i]);
    }
    let stats = c.stats();
    assert_eq!(stats.messages, all.len() as u64);
    assert_eq!(stats.chunks, sink.seen().chunks);
    assert!(stats.credits_granted >= 3 * 10);
    assert_eq!(stats.last_stored_offset, None);
    for i in 0..3 {
        let pc = c.partition_consumer(i).unwrap();
        assert_eq!(pc.stream(), parts[i]);
        assert_eq!(pc.stats().messages, per[i]);
        assert_eq!(pc.last_delivered_offset(), Some(per[i] - 1));
    }
    assert!(c.partition_consumer(3).is_none());

    f.rt.block_on(c.close()).unwrap();
    {
        let s = sink.seen();
        let mut closed: Vec<_> = s
            .closed
            .iter()
            .map(|(i, st, by_app, _)| (*i, st.clone(), *by_app))
            .collect();
        closed.sort();
        let want: Vec<_> = parts
            .iter()
            .enumerate()
            .map(|(i, p)| (i, p.clone(), true))
            .collect();
        assert_eq!(closed, want, "one closed event per partition");
    }
    sink.assert_no_error();
    // Idempotent; refresh refused once closed.
    f.rt.block_on(c.close()).unwrap();
    assert!(matches!(
        f.rt.block_on(c.refresh_partitions()),
        Err(ClientError::Closed(_))
    ));
    assert!(c.active_partitions().is_empty());
    assert_eq!(
        c.stats().messages,
        all.len() as u64,
        "counters kept after close"
    );
    assert!(!c.partition_consumer(0).unwrap().is_open());
    assert_eq!(sink.seen().closed.len(), 3);
    f.close(p);
}

/// Offset tracking per partition under the super consumer's name: one reference, one
/// offset per partition stream. A restarted super consumer continues on each partition right
/// after what it processed there; `Manual` stores only on request, per partition.
#[test]
fn offsets_are_tracked_per_partition_under_the_name() {
    let (f, ss, parts, p, confirms) = Fixture::published("sc-track", 3);
    let first = bodies("one", 600);
    publish(&p, &confirms, 0, &first);
    let per1 = per_partition(&first, 3);
    let name = unique("tracker");
    let config = |tracking| named_from_first(&name, tracking);

    let sink = Sink::new();
    let c = f.consumer(&ss, config(TrackingStrategy::EveryMessages(100_000)), &sink);
    assert_eq!(c.name(), Some(name.as_str()));
    wait_until("first batch", || sink.count() >= first.len());
    assert_eq!(
        f.rt.block_on(c.stored_offsets()).unwrap(),
        vec![None, None, None],
        "nothing stored before the threshold or close"
    );
    // Close stores each partition's processed offset under the same reference.
    f.rt.block_on(c.close()).unwrap();
    let want: Vec<Option<u64>> = per1.iter().map(|&n| Some(n - 1)).collect();
    wait_until("offsets stored at close", || {
        parts.iter().map(|s| f.stored(&name, s)).collect::<Vec<_>>() == want
    });
    assert_eq!(f.rt.block_on(c.stored_offsets()).unwrap(), want);
    assert_eq!(sink.count(), first.len());

    // Another reference sees nothing: offsets are per (reference, stream).
    assert_eq!(f.stored(&format!("{name}-other"), &parts[0]), None);

    let second = bodies("two", 300);
    publish(&p, &confirms, first.len(), &second);
    let per2 = per_partition(&second, 3);

    // Restarted with Manual tracking: starts after the stored offsets (its configured First
    // notwithstanding) and stores only when asked.
    let sink2 = Sink::new();
    let c2 = f.consumer(&ss, config(TrackingStrategy::Manual), &sink2);
    wait_until("second batch", || sink2.count() >= second.len());
    std::thread::sleep(QUIET);
    let got = sink2.records();
    assert_eq!(got.len(), second.len(), "only the new messages");
    assert!(got.iter().all(|r| r.body.starts_with("two-")));
    // Exactly the partition's records after the stored offset (the offset store itself took
    // one offset in the stream: see `Fixture::read`).
    for i in 0..3 {
        let all = f.read(&parts[i], (per1[i] + per2[i]) as usize);
        let after: Vec<_> = all.into_iter().filter(|(o, _)| *o > per1[i] - 1).collect();
        assert_eq!(sink2.of(i), after, "{}", parts[i]);
    }
    assert_eq!(f.rt.block_on(c2.stored_offsets()).unwrap(), want);
    let stored = c2.store_processed_offsets().unwrap();
    let want2: Vec<Option<u64>> = (0..3).map(|i| sink2.offsets(i).last().copied()).collect();
    assert_eq!(stored, want2);
    assert_eq!(
        c2.store_processed_offsets().unwrap(),
        vec![None, None, None],
        "nothing moved since"
    );
    wait_until("manual stores applied", || {
        f.rt.block_on(c2.stored_offsets()).unwrap() == want2
    });
    assert_eq!(c2.stats().offsets_stored, 3);
    // Manual: no store at close.
    f.rt.block_on(c2.close()).unwrap();
    assert_eq!(f.rt.block_on(c2.stored_offsets()).unwrap(), want2);
    sink.assert_no_error();
    sink2.assert_no_error();
    f.close(p);
}

/// Two super consumers in one single-active-consumer group on a 3-partition super stream.
///
/// A alone is active on every partition. B joins (while nothing is being published): the
/// broker moves partition 1 to it (partition i goes to member i mod 2), A steps down there
/// storing its processed offset, and B starts right after it. Then A closes *while messages
/// are being published*: it stores its processed offsets and B takes partitions 0 and 2 over
/// from them.
///
/// What is asserted, precisely: every published message is received exactly once across A
/// and B (no loss, and no duplicate: both hand-overs happen with every delivered chunk
/// released inside the callback and an automatic tracking strategy, which is the case the
/// module documents as exact); on each partition, A's records followed by B's are exactly
/// the partition's records in order (read back by a plain consumer: offset tracking's own
/// chunks take offsets, so user records' offsets have gaps); at each hand-over the new
/// member's activation carries the offset the old one last received (`stored_offset`), and
/// its first record is the next one.
#[test]
fn a_sac_group_splits_the_partitions_and_takes_over_on_close() {
    let (f, ss, parts, p, confirms) = Fixture::published("sc-sac", 3);
    let group = unique("group");
    let config = SuperConsumerConfig {
        single_active_consumer: true,
        ..named_from_first(&group, TrackingStrategy::EveryMessages(50))
    };

    let a_sink = Sink::new();
    let a = f.consumer(&ss, config.clone(), &a_sink);
    wait_until("A active everywhere", || a.active_partitions() == [0, 1, 2]);
    let a_updates = a_sink.updates();
    assert_eq!(a_updates.len(), 3, "{a_updates:?}");
    for u in &a_updates {
        assert!(
            u.active && u.stored.is_none() && u.default == OffsetSpec::First,
            "{u:?}"
        );
        assert_eq!(u.stream, parts[u.partition], "{u:?}");
    }

    let b1 = bodies("b1", 300);
    publish(&p, &confirms, 0, &b1);
    wait_until("A got b1", || a_sink.count() >= b1.len());

    let b_sink = Sink::new();
    let b = f.consumer(&ss, config.clone(), &b_sink);
    wait_until("the split", || {
        a.active_partitions() == [0, 2] && b.active_partitions() == [1]
    });
    for i in 0..3 {
        assert_ne!(
            a.is_active(i),
            b.is_active(i),
            "partition {i} on exactly one"
        );
    }
    // A stepped down on 1 after storing what it processed there; B starts right after.
    let a_last_1 = *a_sink.offsets(1).last().unwrap();
    let stepped: Vec<Update> = a_sink.updates().into_iter().skip(3).collect();
    assert_eq!(
        stepped,
        vec![Update {
            partition: 1,
            stream: parts[1].clone(),
            active: false,
            stored: None,
            default: OffsetSpec::First,
        }]
    );
    wait_until("B activated on 1", || !b_sink.updates().is_empty());
    assert_eq!(
        b_sink.updates(),
        vec![Update {
            partition: 1,
            stream: parts[1].clone(),
            active: true,
            stored: Some(a_last_1),
            default: OffsetSpec::Offset(a_last_1 + 1),
        }]
    );

    let b2 = bodies("b2", 300);
    publish(&p, &confirms, b1.len(), &b2);
    wait_until("b2", || {
        a_sink.count() + b_sink.count() >= b1.len() + b2.len()
    });
    for r in b_sink.records() {
        assert_eq!(r.partition, 1, "B only on partition 1 so far: {r:?}");
        assert!(r.body.starts_with("b2-"), "{r:?}");
    }
    assert!(
        a_sink
            .records()
            .iter()
            .filter(|r| r.body.starts_with("b2-"))
            .all(|r| r.partition != 1)
    );

    // A closes while b3 is being published.
    let b3 = bodies("b3", 900);
    let before_close = a_sink.count() + b_sink.count();
    std::thread::scope(|scope| {
        let publisher = scope.spawn(|| {
            let mut sent = b1.len() + b2.len();
            for part in b3.chunks(60) {
                publish(&p, &confirms, sent, part);
                sent += part.len();
                std::thread::sleep(Duration::from_millis(15));
            }
        });
        wait_until("some of b3 delivered", || {
            a_sink.count() + b_sink.count() >= before_close + 200
        });
        f.rt.block_on(a.close()).unwrap();
        publisher.join().unwrap();
    });
    wait_until("B active everywhere", || b.active_partitions() == [0, 1, 2]);
    let total = b1.len() + b2.len() + b3.len();
    wait_until("everything", || a_sink.count() + b_sink.count() >= total);
    std::thread::sleep(QUIET);

    // Exactly once, each from its partition.
    let a_got = a_sink.records();
    let b_got = b_sink.records();
    assert!(
        b_got
            .iter()
            .any(|r| r.body.starts_with("b3-") && r.partition != 1),
        "B received b3 messages on A's former partitions"
    );
    assert!(
        a_got.iter().any(|r| r.body.starts_with("b3-")),
        "A closed while b3 was flowing"
    );
    let mut received: HashMap<String, usize> = HashMap::new();
    for r in a_got.iter().chain(&b_got) {
        assert_eq!(r.partition, route_partition(&r.body, 3), "{r:?}");
        assert_eq!(r.stream, parts[r.partition]);
        *received.entry(r.body.clone()).or_default() += 1;
    }
    let dups: Vec<_> = received.iter().filter(|&(_, &n)| n > 1).collect();
    assert!(dups.is_empty(), "received twice: {dups:?}");
    let all: HashSet<String> = b1.iter().chain(&b2).chain(&b3).cloned().collect();
    let got: HashSet<String> = received.keys().cloned().collect();
    assert_eq!(got, all, "the union is what was published");
    let mut sizes = [0u64; 3];
    for b in &all {
        sizes[route_partition(b, 3)] += 1;
    }
    for i in 0..3 {
        // What A received from the partition, then what B did: exactly the partition's
        // records, in order (so B's first record is the one right after A's last).
        let joined: Vec<(u64, String)> = a_sink.of(i).into_iter().chain(b_sink.of(i)).collect();
        assert_eq!(joined, f.read(&parts[i], sizes[i] as usize), "{}", parts[i]);
    }
    // B's activations on A's former partitions came with A's last offsets.
    let b_updates = b_sink.updates();
    assert_eq!(b_updates.len(), 3, "{b_updates:?}");
    for i in [0, 2] {
        let a_last = *a_sink.offsets(i).last().unwrap();
        let u = b_updates.iter().find(|u| u.partition == i).unwrap();
        assert_eq!(
            (u.active, u.stored, &u.stream),
            (true, Some(a_last), &parts[i]),
            "{u:?}"
        );
    }
    assert_eq!(
        a_sink.seen().closed.iter().filter(|c| c.2).count(),
        3,
        "A's partitions closed by the application"
    );
    assert!(b_sink.seen().closed.is_empty());

    f.rt.block_on(b.close()).unwrap();
    let want: Vec<Option<u64>> = (0..3).map(|i| b_sink.offsets(i).last().copied()).collect();
    wait_until("B's offsets stored at close", || {
        parts
            .iter()
            .map(|s| f.stored(&group, s))
            .collect::<Vec<_>>()
            == want
    });
    a_sink.assert_no_error();
    b_sink.assert_no_error();
    f.close(p);
}

/// The consumer-update hook is per partition and may answer from another thread: on
/// activation partition 0 is told to start from `First` (a replay, though an offset is
/// stored), the others take the default (after the stored offset).
#[test]
fn the_consumer_update_hook_answers_per_partition() {
    let name = unique("hooked");
    let (f, ss, parts, p, confirms) = Fixture::published("sc-hook", 3);
    let first = bodies("old", 120);
    publish(&p, &confirms, 0, &first);
    let per1 = per_partition(&first, 3);
    let mut config = named_from_first(&name, TrackingStrategy::EveryMessages(100_000));
    // A plain (not single active) super consumer stores the offsets.
    let sink = Sink::new();
    let c = f.consumer(&ss, config.clone(), &sink);
    wait_until("old batch", || sink.count() >= first.len());
    f.rt.block_on(c.close()).unwrap();
    assert!(sink.updates().is_empty(), "no consumer update without SAC");
    let stored: Vec<Option<u64>> = per1.iter().map(|&n| Some(n - 1)).collect();
    wait_until("stored", || {
        f.rt.block_on(c.stored_offsets()).unwrap() == stored
    });

    let second = bodies("new", 120);
    publish(&p, &confirms, first.len(), &second);
    let per2 = per_partition(&second, 3);

    let (tx, rx) = std::sync::mpsc::channel::<(usize, ConsumerUpdate)>();
    let tx = Mutex::new(tx);
    let answerer = std::thread::spawn(move || {
        let mut answered = Vec::new();
        while let Ok((partition, update)) = rx.recv_timeout(WAIT) {
            let spec = if partition == 0 {
                OffsetSpec::First
            } else {
                update.default_offset()
            };
            answered.push((partition, update.reply(spec)));
            if answered.len() == 3 {
                break;
            }
        }
        answered
    });
    let hooked = Sink::with_hook(move |partition, update| {
        lock(&tx).send((partition, update)).unwrap();
    });
    config.single_active_consumer = true;
    let c2 = f.consumer(&ss, config, &hooked);
    let mut answered = answerer.join().unwrap();
    answered.sort();
    assert_eq!(answered, vec![(0, true), (1, true), (2, true)]);
    let want = per1[0] + per2[0] + per2[1] + per2[2];
    wait_until("replay and new", || hooked.count() as u64 >= want);
    std::thread::sleep(QUIET);
    assert_eq!(hooked.count() as u64, want);
    for i in 0..3 {
        let all = f.read(&parts[i], (per1[i] + per2[i]) as usize);
        let want: Vec<_> = if i == 0 {
            all // replayed from First
        } else {
            all.into_iter().filter(|(o, _)| *o > per1[i] - 1).collect()
        };
        assert_eq!(hooked.of(i), want, "partition {i}");
    }
    let mut updates = hooked.updates();
    updates.sort_by_key(|u| u.partition);
    for (i, u) in updates.iter().enumerate() {
        assert_eq!(
            u,
            &Update {
                partition: i,
                stream: parts[i].clone(),
                active: true,
                stored: stored[i],
                default: OffsetSpec::Offset(per1[i]),
            }
        );
    }
    f.rt.block_on(c2.close()).unwrap();
    sink.assert_no_error();
    hooked.assert_no_error();
    f.close(p);
}

/// A partition added to the live super stream is not consumed until `refresh_partitions`,
/// which subscribes to it from `First` (its messages published before the refresh are not
/// missed); a partition whose stream is deleted ends with a `closed` event and leaves the
/// list at the next refresh, the partitions after it getting their new index.
#[test]
fn refresh_picks_up_added_partitions_and_drops_removed_ones() {
    let (f, ss, mut parts, p, confirms) = Fixture::published("sc-refresh", 2);
    let before = bodies("before", 200);
    publish(&p, &confirms, 0, &before);
    let sink = Sink::new();
    let c = f.consumer(&ss, from_first(), &sink);
    wait_until("before", || sink.count() >= before.len());

    // Add partition "<ss>-2" with binding key "2" and order 2.
    let Some(new_part) = f.add_partition(&ss, "refresh test") else {
        f.rt.block_on(c.close()).unwrap();
        f.close(p);
        return;
    };
    parts.push(new_part.clone());
    assert_eq!(f.rt.block_on(p.refresh_partitions()).unwrap(), parts);
    let after = bodies("after", 600);
    publish(&p, &confirms, before.len(), &after);
    let per_after = per_partition(&after, 3);
    assert!(per_after[2] > 100, "{per_after:?}");

    // Not picked up silently.
    let old_parts = per_after[0] + per_after[1];
    wait_until("after, old partitions", || {
        sink.count() as u64 >= before.len() as u64 + old_parts
    });
    std::thread::sleep(QUIET);
    assert_eq!(sink.count() as u64, before.len() as u64 + old_parts);
    assert_eq!(c.partition_count(), 2);

    assert_eq!(f.rt.block_on(c.refresh_partitions()).unwrap(), parts);
    assert_eq!(c.partitions(), parts);
    assert_eq!(c.active_partitions(), vec![0, 1, 2]);
    let total = before.len() + after.len();
    let got = sink.settled("the new partition from its start", total);
    let mut seen = HashSet::new();
    for r in &got {
        let n = if r.body.starts_with("before-") { 2 } else { 3 };
        assert_eq!(r.partition, route_partition(&r.body, n), "{r:?}");
        assert_eq!(r.stream, parts[r.partition], "{r:?}");
        assert!(seen.insert(r.body.clone()), "twice: {r:?}");
    }
    assert_eq!(
        sink.offsets(2),
        (0..per_after[2]).collect::<Vec<_>>(),
        "{new_part}"
    );
    // Refreshing again changes nothing.
    assert_eq!(f.rt.block_on(c.refresh_partitions()).unwrap(), parts);
    assert_eq!(sink.seen().closed.len(), 0);

    // Partition 1's stream deleted: its consumer ends; the next refresh drops it and
    // partition 2 becomes 1.
    f.rt.block_on(f.env.delete_stream(&parts[1])).unwrap();
    wait_until("partition 1 closed", || !sink.seen().closed.is_empty());
    {
        let s = sink.seen();
        assert_eq!(s.closed.len(), 1, "{:?}", s.closed);
        let (i, stream, by_app, reason) = &s.closed[0];
        assert_eq!((*i, stream, *by_app), (1, &parts[1], false), "{reason}");
    }
    assert!(!c.is_active(1));
    let left = vec![parts[0].clone(), parts[2].clone()];
    assert_eq!(f.rt.block_on(c.refresh_partitions()).unwrap(), left);
    assert_eq!(c.partitions(), left);
    assert_eq!(c.active_partitions(), vec![0, 1]);
    assert_eq!(sink.seen().closed.len(), 1, "no second closed event");
    assert_eq!(f.rt.block_on(p.refresh_partitions()).unwrap(), left);
    let last = bodies("last", 200);
    publish(&p, &confirms, total, &last);
    let got = sink.settled("last", total + last.len());
    for r in &got[total..] {
        assert_eq!(r.partition, route_partition(&r.body, 2), "{r:?}");
        assert_eq!(r.stream, left[r.partition], "{r:?}");
    }
    assert!(got[total..].iter().any(|r| r.partition == 1));
    f.rt.block_on(c.close()).unwrap();
    sink.assert_no_error();
    f.close(p);
}

/// Kills every connection of the environment named `name` on the broker; how many.
fn kill_connections(name: &str) -> Option<usize> {
    let expr = format!(
        "length([exit(element(6, C), kill) || C <- rabbit_connection_tracking:list(), \
         element(7, C) =:= <<\"stream\">>, \
         case catch rabbit_stream_reader:info(element(6, C), [client_properties]) of \
           [{{client_properties, Props}}] -> \
             lists:keyfind(<<\"connection_name\">>, 1, Props) =:= \
               {{<<\"connection_name\">>, longstr, <<\"{name}\">>}}; \
           _ -> false end])."
    );
    broker_eval(&expr)?.parse().ok()
}

/// Partition consumers lost with their connections (killed on the broker) recover by
/// themselves, each resuming right after the last record it delivered: what was published
/// meanwhile arrives, nothing twice, and no partition reports `closed`.
#[test]
fn partition_consumers_recover_from_a_lost_connection() {
    let (f, ss, _parts, p, confirms) = Fixture::published("sc-lost", 3);
    let first = bodies("first", 300);
    publish(&p, &confirms, 0, &first);
    // The consumer in its own environment, with a name to find its connections by.
    let conn_name = unique("sc-lost-consumer");
    let cenv = Arc::new(f.rt.block_on(env(&uri(), &conn_name)));
    let sink = Sink::new();
    let c = f.consumer_in(cenv.clone(), &ss, from_first(), &sink);
    wait_until("first", || sink.count() >= first.len());
    let Some(killed) = kill_connections(&conn_name) else {
        eprintln!("cannot reach the node with scripts/broker: lost-consumer test skipped");
        f.rt.block_on(c.close()).unwrap();
        f.rt.block_on(cenv.close());
        f.close(p);
        return;
    };
    assert!(killed >= 1, "killed {killed} connections");
    wait_until("three partitions recovered", || c.stats().recoveries >= 3);
    assert!(sink.seen().closed.is_empty(), "{:?}", sink.seen().closed);
    assert_eq!(c.active_partitions(), vec![0, 1, 2]);
    let second = bodies("second", 300);
    publish(&p, &confirms, first.len(), &second);
    let total = first.len() + second.len();
    let got = sink.settled("second", total);
    let mut seen = HashSet::new();
    for r in &got {
        assert_eq!(r.partition, route_partition(&r.body, 3), "{r:?}");
        assert!(seen.insert(r.body.clone()), "twice: {r:?}");
    }
    let all: Vec<String> = first.iter().chain(&second).cloned().collect();
    // No offset store in this test: the offsets are contiguous, across the loss.
    for (i, &n) in per_partition(&all, 3).iter().enumerate() {
        assert_eq!(sink.offsets(i), (0..n).collect::<Vec<_>>());
    }
    f.rt.block_on(c.close()).unwrap();
    assert_eq!(sink.seen().closed.len(), 3);
    sink.assert_no_error();
    f.rt.block_on(cenv.close());
    f.close(p);
}

/// Filter values and the post-filter reach every partition consumer: only the wanted
/// messages come out, from their partitions; chunks holding none are not even sent.
#[test]
fn filtering_applies_to_every_partition() {
    let (f, ss, parts, p, confirms) = Fixture::published("sc-filter", 3);
    // Separate publishes per value, so that chunks hold one value each.
    let mut sent = 0;
    let mut wanted = BTreeMap::new();
    for round in 0..4 {
        for value in ["eu", "us"] {
            let keys = bodies(&format!("{value}:{round}"), 150);
            for k in &keys {
                let msg = OutgoingMessage::new(k.as_bytes()).filter_value(value);
                let (partition, _) = p.send(&msg, Some(k), Some(WAIT)).unwrap();
                if value == "eu" {
                    wanted.insert(k.clone(), partition);
                }
            }
            p.flush(WAIT).unwrap();
            sent += keys.len();
            confirms.wait_for(sent);
        }
    }
    let sink = Sink::new();
    let c = f.consumer(
        &ss,
        SuperConsumerConfig {
            consumer: ConsumerConfig {
                offset: OffsetSpec::First,
                filter_values: vec!["eu".into()],
                post_filter: Some(PostFilter::new(|r| r.amqp_body().starts_with(b"eu:"))),
                ..Default::default()
            },
            ..Default::default()
        },
        &sink,
    );
    let got = sink.settled("eu messages", wanted.len());
    for r in &got {
        assert_eq!(wanted.get(&r.body), Some(&r.partition), "{r:?}");
        assert_eq!(r.stream, parts[r.partition]);
    }
    let stats = c.stats();
    assert_eq!(stats.messages, wanted.len() as u64);
    assert!(
        stats.messages + stats.filtered_out < sent as u64,
        "the broker sent every chunk: {stats:?}"
    );
    f.rt.block_on(c.close()).unwrap();
    sink.assert_no_error();
    f.close(p);
}

/// Creation checks: unknown super stream, conflicting or missing names, a super stream name
/// that disagrees with the consumer config.
#[test]
fn creation_errors() {
    let f = Fixture::new("sc-errors");
    let sink = Sink::new();
    let new = |ss: &str, config: SuperConsumerConfig| {
        let events: Arc<dyn SuperConsumerEvents> = sink.clone();
        f.rt.block_on(SuperConsumer::new(f.handle(), ss, config, events))
    };
    match new(&unique("sc-missing"), SuperConsumerConfig::default()) {
        Err(ClientError::Server { .. }) | Err(ClientError::InvalidArgument(_)) => {}
        other => panic!("missing super stream gave {other:?}"),
    }
    let (ss, _) = f.numbered("sc-errors", 2);
    for bad in [
        SuperConsumerConfig {
            single_active_consumer: true,
            ..Default::default()
        },
        SuperConsumerConfig {
            name: Some("a".into()),
            consumer: ConsumerConfig {
                name: Some("b".into()),
                ..Default::default()
            },
            ..Default::default()
        },
        SuperConsumerConfig {
            consumer: ConsumerConfig {
                super_stream: Some("another".into()),
                ..Default::default()
            },
            ..Default::default()
        },
        SuperConsumerConfig {
            consumer: ConsumerConfig {
                tracking: TrackingStrategy::EveryMessages(10),
                ..Default::default()
            },
            ..Default::default()
        },
    ] {
        assert!(
            matches!(new(&ss, bad.clone()), Err(ClientError::InvalidArgument(_))),
            "{bad:?}"
        );
    }
    assert!(matches!(
        new("", SuperConsumerConfig::default()),
        Err(ClientError::InvalidArgument(_))
    ));
    // Nothing was left subscribed, and a good one works.
    let c = new(&ss, SuperConsumerConfig::default()).unwrap();
    assert_eq!(c.partition_count(), 2);
    f.rt.block_on(c.close()).unwrap();
    assert_eq!(sink.seen().closed.len(), 2);
    f.finish();
}

/// Runs `rabbitmq-streams ARGS` against the legacy node of `scripts/broker`; false when that
/// is not possible here.
fn legacy_streams_cli(uri: &str, args: &[&str]) -> bool {
    if !uri.contains("localhost:5553") {
        return false;
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/broker");
    let mut all = vec!["exec", "--legacy", "/usr/lib/rabbitmq/bin/rabbitmq-streams"];
    all.extend_from_slice(args);
    match std::process::Command::new(script).args(&all).output() {
        Ok(out) if out.status.success() => true,
        Ok(out) => {
            eprintln!(
                "rabbitmq-streams {args:?} failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            false
        }
        Err(_) => false,
    }
}

/// RabbitMQ 3.10.8: a super consumer on a super stream that does not exist fails cleanly, the
/// connection intact. On a super stream made with the 3.10 CLI (the protocol cannot create
/// one before 3.13), a plain super consumer receives everything, while single active consumer
/// (3.11) and filtering (3.13) are refused with `Unsupported` before anything is subscribed.
#[test]
fn legacy_broker() {
    let Some((f, uri)) = Fixture::legacy("sc-legacy") else {
        return;
    };
    let sink = Sink::new();
    let new = |ss: &str, config: SuperConsumerConfig| {
        let events: Arc<dyn SuperConsumerEvents> = sink.clone();
        f.rt.block_on(SuperConsumer::new(f.handle(), ss, config, events))
    };
    let e = new(&unique("sc-legacy"), SuperConsumerConfig::default()).unwrap_err();
    eprintln!("3.10.8, super consumer on a missing super stream: {e:?}");
    assert!(f.rt.block_on(f.env.server_info()).is_ok());

    let ss = unique("sc-legacy");
    if !legacy_streams_cli(&uri, &["add_super_stream", &ss, "--partitions", "2"]) {
        eprintln!("cannot create a super stream on the legacy node: rest of the test skipped");
        f.finish();
        return;
    }
    let (p, confirms) = f.producer(&ss);
    let all = bodies("legacy", 200);
    publish(&p, &confirms, 0, &all);
    f.rt.block_on(p.close(WAIT)).unwrap();
    for (config, needs) in [
        (
            SuperConsumerConfig {
                name: Some("g".into()),
                single_active_consumer: true,
                ..Default::default()
            },
            "3.11",
        ),
        (
            SuperConsumerConfig {
                consumer: ConsumerConfig {
                    filter_values: vec!["x".into()],
                    ..Default::default()
                },
                ..Default::default()
            },
            "3.13",
        ),
    ] {
        match new(&ss, config) {
            Err(ClientError::Unsupported { needs: n, .. }) => assert_eq!(n, needs),
            other => panic!("3.10.8 gave {other:?}"),
        }
    }
    assert!(sink.seen().closed.is_empty(), "nothing was subscribed");
    let c = new(&ss, from_first()).unwrap();
    let got = sink.settled("legacy records", all.len());
    let mut seen = HashSet::new();
    for r in &got {
        assert_eq!(r.partition, route_partition(&r.body, 2), "{r:?}");
        assert_eq!(r.stream, format!("{ss}-{}", r.partition));
        assert!(seen.insert(r.body.clone()));
    }
    f.rt.block_on(c.close()).unwrap();
    sink.assert_no_error();
    legacy_streams_cli(&uri, &["delete_super_stream", &ss]);
    f.finish();
}
