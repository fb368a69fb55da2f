//! The async client's consumer against the real broker started by `scripts/broker`
//! (RMQS_TEST_URI, default localhost:5552; the Deliver v1 test needs RMQS_TEST_LEGACY_URI, e.g.
//! `scripts/broker uri --legacy`), plus a scripted in-process broker for what a real one
//! cannot be made to do (corrupt chunks).
//!
//! Data is published with the codec over the client's own `Connection` (DeclarePublisher,
//! Publish, waiting for every confirm), so the consumer is checked against exactly known
//! offsets and bytes.

mod support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use support::alloc::{CountingAlloc, allocations};
use support::client::{declare_publisher, env, lock, runtime, wait_until};
use support::{unique, uri};

use bytes::{Bytes, BytesMut};
use rmqstream::client::{
    ClientError, Connection, Consumer, ConsumerConfig, ConsumerEvents, CreditPolicy,
    DeliveredChunk, Environment, PublisherListener, Role,
};
use rmqstream::protocol::amqp::Message;
use rmqstream::protocol::chunk::{ChunkBuilder, encode_sub_entry};
use rmqstream::protocol::codes::{OffsetSpec, ResponseCode};
use rmqstream::protocol::commands::{
    CodeResponse, Deliver, Frame, Publish, PublishEntry, PublishVersion, PublishingError,
};
use rmqstream::protocol::compression::Compression;

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

const WAIT: Duration = Duration::from_secs(20);
/// How long "nothing more arrives" is observed.
const QUIET: Duration = Duration::from_millis(600);

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// The application payload of message `i` of a test (sizes vary a little).
fn payload(tag: &str, i: u64) -> Vec<u8> {
    format!("{tag} message {i} {}", "z".repeat((i % 13) as usize)).into_bytes()
}

/// `payload` as an AMQP 1.0 message, the bytes stored in the stream.
fn amqp(payload: &[u8]) -> Vec<u8> {
    Message::new(payload.to_vec()).to_bytes().unwrap().to_vec()
}

// ---------------------------------------------------------------------------------------------
// A minimal publisher over the client's Connection (the producer is built separately).

#[derive(Default)]
struct Confirms {
    confirmed: AtomicU64,
    errored: Mutex<Vec<PublishingError>>,
}

impl PublisherListener for Confirms {
    fn confirmed(&self, ids: &[u64]) {
        self.confirmed.fetch_add(ids.len() as u64, Ordering::SeqCst);
    }
    fn errored(&self, errors: &[PublishingError]) {
        lock(&self.errored).extend_from_slice(errors);
    }
    fn stream_unavailable(&self, _: ResponseCode) {}
    fn connection_closed(&self, _: &ClientError) {}
}

struct TestPublisher {
    conn: Connection,
    id: u8,
    next_id: u64,
    confirms: Arc<Confirms>,
}

impl TestPublisher {
    async fn new(env: &Environment, stream: &str) -> TestPublisher {
        let conn = env.data_connection(stream, Role::Leader).await.unwrap();
        let confirms = Arc::new(Confirms::default());
        let id = declare_publisher(&conn, stream, confirms.clone()).await;
        TestPublisher {
            conn,
            id,
            next_id: 0,
            confirms,
        }
    }

    fn send(&mut self, entries: Vec<PublishEntry>) {
        self.conn
            .send_frame(&Frame::Publish(Publish {
                publisher_id: self.id,
                version: PublishVersion::V1,
                entries,
            }))
            .unwrap();
    }

    /// Publishes `bodies` as simple entries, `per_frame` per Publish frame, without waiting.
    fn publish(&mut self, bodies: &[Vec<u8>], per_frame: usize) {
        for group in bodies.chunks(per_frame) {
            let entries = group
                .iter()
                .map(|b| {
                    self.next_id += 1;
                    PublishEntry::Simple {
                        publishing_id: self.next_id,
                        filter_value: None,
                        body: Bytes::copy_from_slice(b),
                    }
                })
                .collect();
            self.send(entries);
        }
    }

    /// Publishes `bodies` as one sub-entry batch compressed with `compression`.
    fn publish_batch(&mut self, compression: Compression, bodies: &[Vec<u8>]) {
        let mut enc = BytesMut::new();
        let info = encode_sub_entry(compression, bodies, &mut enc).unwrap();
        let data = enc.freeze().slice(info.encoded_len - info.size as usize..);
        self.next_id += 1;
        self.send(vec![PublishEntry::SubEntry {
            publishing_id: self.next_id,
            compression: compression.code(),
            record_count: info.num_records,
            uncompressed_size: info.uncompressed_size,
            data,
        }]);
    }

    /// Waits until every publishing id sent so far is confirmed.
    async fn confirmed(&self) {
        let target = self.next_id;
        let ok = wait_until(WAIT, || {
            self.confirms.confirmed.load(Ordering::SeqCst) >= target
        })
        .await;
        assert!(
            ok,
            "confirms: {} of {target}",
            self.confirms.confirmed.load(Ordering::SeqCst)
        );
        assert!(lock(&self.confirms.errored).is_empty());
    }

    /// Publishes one frame and waits for its confirms: the broker then writes it as a chunk
    /// of its own.
    async fn publish_chunk(&mut self, bodies: &[Vec<u8>]) {
        self.publish(bodies, bodies.len());
        self.confirmed().await;
    }
}

// ---------------------------------------------------------------------------------------------
// An event sink recording everything (copies: the tests compare bytes after the fact).

#[derive(Debug, Clone, PartialEq, Eq)]
struct Rec {
    offset: u64,
    timestamp: i64,
    raw: Vec<u8>,
    amqp_body: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ChunkSeen {
    chunk_id: u64,
    first_offset: u64,
    len: usize,
    skipped: usize,
    committed: Option<u64>,
}

#[derive(Default)]
struct Seen {
    records: Vec<Rec>,
    chunks: Vec<ChunkSeen>,
    held: Vec<DeliveredChunk>,
    errors: Vec<ClientError>,
    closed: Vec<ClientError>,
    /// Views that disagreed with themselves (iteration vs `get`, `len`): must stay 0.
    inconsistent: u64,
    /// Most allocations one chunk's first `get` made (building its index).
    max_index_allocations: u64,
}

#[derive(Default)]
struct Collector {
    /// Keep chunks instead of dropping them (their credit comes back on release).
    hold: AtomicBool,
    seen: Mutex<Seen>,
}

impl Collector {
    fn holding() -> Arc<Collector> {
        let c = Collector::default();
        c.hold.store(true, Ordering::SeqCst);
        Arc::new(c)
    }
    fn seen(&self) -> MutexGuard<'_, Seen> {
        lock(&self.seen)
    }
    fn records(&self) -> usize {
        self.seen().records.len()
    }
    fn chunks(&self) -> usize {
        self.seen().chunks.len()
    }
    /// Releases the held chunks (their credit goes back).
    fn release_held(&self) -> usize {
        let held = std::mem::take(&mut self.seen().held);
        let n = held.len();
        for c in held {
            c.release();
        }
        n
    }
}

impl ConsumerEvents for Collector {
    fn chunk(&self, chunk: DeliveredChunk) {
        let mut s = self.seen();
        let before = allocations();
        let first = chunk.get(0);
        let index_allocations = allocations() - before;
        s.max_index_allocations = s.max_index_allocations.max(index_allocations);
        let mut consistent = first.is_some() && chunk.len() == chunk.records().len();
        for (i, r) in chunk.records().enumerate() {
            consistent &= chunk.get(i) == Some(r);
            s.records.push(Rec {
                offset: r.offset,
                timestamp: r.timestamp,
                raw: r.body.to_vec(),
                amqp_body: r.amqp_body().to_vec(),
            });
        }
        consistent &= chunk.get(chunk.len()).is_none();
        s.inconsistent += u64::from(!consistent);
        s.chunks.push(ChunkSeen {
            chunk_id: chunk.chunk_id(),
            first_offset: chunk.first_offset(),
            len: chunk.len(),
            skipped: chunk.skipped(),
            committed: chunk.committed_chunk_id(),
        });
        if self.hold.load(Ordering::SeqCst) {
            s.held.push(chunk);
        }
    }
    fn error(&self, error: &ClientError) {
        self.seen().errors.push(error.clone());
    }
    fn closed(&self, reason: &ClientError) {
        self.seen().closed.push(reason.clone());
    }
}

fn config(offset: OffsetSpec) -> ConsumerConfig {
    ConsumerConfig {
        offset,
        ..Default::default()
    }
}

/// Asserts the collected records are exactly `first..first + payloads.len()` with these
/// payloads (AMQP-encoded in the stream).
fn assert_records(seen: &Seen, first: u64, payloads: &[Vec<u8>]) {
    assert_eq!(seen.inconsistent, 0);
    assert_eq!(seen.records.len(), payloads.len(), "record count");
    for (k, (r, p)) in seen.records.iter().zip(payloads).enumerate() {
        assert_eq!(r.offset, first + k as u64, "offset of record {k}");
        assert_eq!(r.amqp_body, *p, "payload at offset {}", r.offset);
        assert_eq!(r.raw, amqp(p), "stored bytes at offset {}", r.offset);
    }
    assert!(seen.errors.is_empty(), "errors: {:?}", seen.errors);
}

/// Subscribes from First, reads `expected` records and returns the chunk layout.
async fn layout(env: &Environment, stream: &str, expected: usize) -> Vec<ChunkSeen> {
    let c = Arc::new(Collector::default());
    let consumer = Consumer::new(env, stream, config(OffsetSpec::First), c.clone())
        .await
        .unwrap();
    assert!(wait_until(WAIT, || c.records() >= expected).await);
    consumer.close().await.unwrap();
    c.seen().chunks.clone()
}

// ---------------------------------------------------------------------------------------------

#[test]
fn consumes_5000_messages_from_first_in_order_with_exact_bodies() {
    runtime(4).block_on(async {
        let env = env(&uri(), "client_consumer test").await;
        let s = unique("consumer-first");
        env.create_stream(&s, &[]).await.unwrap();
        const N: u64 = 5000;
        let payloads: Vec<Vec<u8>> = (0..N).map(|i| payload("first", i)).collect();
        let bodies: Vec<Vec<u8>> = payloads.iter().map(|p| amqp(p)).collect();
        let mut p = TestPublisher::new(&env, &s).await;
        p.publish(&bodies, 250);
        p.confirmed().await;

        let c = Arc::new(Collector::default());
        let started = Instant::now();
        let consumer = Consumer::new(&env, &s, config(OffsetSpec::First), c.clone())
            .await
            .unwrap();
        assert!(wait_until(WAIT, || c.records() >= N as usize).await);
        let elapsed = started.elapsed();
        tokio::time::sleep(Duration::from_millis(200)).await;
        let stats = consumer.stats();
        {
            let seen = c.seen();
            assert_records(&seen, 0, &payloads);
            assert_eq!(
                seen.max_index_allocations, 1,
                "one index allocation per chunk"
            );
            // Chunks are contiguous and carry the committed chunk id (Deliver v2 on 4.x).
            let mut next = 0;
            for ch in &seen.chunks {
                assert_eq!((ch.chunk_id, ch.skipped), (next, 0));
                assert!(ch.committed.is_some(), "Deliver v2 expected from 4.x");
                next += ch.len as u64;
            }
            assert_eq!(stats.chunks, seen.chunks.len() as u64);
        }
        assert_eq!(stats.messages, N);
        assert_eq!(
            stats.bytes,
            bodies.iter().map(|b| b.len() as u64 + 4).sum::<u64>(),
            "data sections: a 4-byte size and the body per simple entry"
        );
        // Initial credit plus one per chunk, each released on arrival.
        assert_eq!(stats.credits_granted, 10 + stats.chunks);
        assert_eq!(consumer.last_delivered_offset(), Some(N - 1));
        eprintln!(
            "consumed {N} messages in {} chunks in {:.1} ms: {:.0} msg/s (incl. subscribe; debug \
             builds are much slower)",
            stats.chunks,
            elapsed.as_secs_f64() * 1e3,
            N as f64 / elapsed.as_secs_f64()
        );
        consumer.close().await.unwrap();
        assert_eq!(c.seen().closed.len(), 1);
        env.delete_stream(&s).await.unwrap();
        env.close().await;
    });
}

/// Lean events for throughput: counts and checks order, copies nothing.
#[derive(Default)]
struct Counter {
    messages: AtomicU64,
    bytes: AtomicU64,
    next_offset: AtomicU64,
    out_of_order: AtomicU64,
    /// Allocations made while iterating records and reading AMQP bodies: must stay 0.
    iteration_allocations: AtomicU64,
}

impl ConsumerEvents for Counter {
    fn chunk(&self, chunk: DeliveredChunk) {
        let mut next = self.next_offset.load(Ordering::Relaxed);
        let mut bytes = 0;
        let before = allocations();
        for r in &chunk {
            if r.offset != next {
                self.out_of_order.fetch_add(1, Ordering::Relaxed);
            }
            next = r.offset + 1;
            bytes += r.amqp_body().len() as u64;
        }
        self.iteration_allocations
            .fetch_add(allocations() - before, Ordering::Relaxed);
        self.next_offset.store(next, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        self.messages
            .fetch_add(chunk.len() as u64, Ordering::Relaxed);
    }
    fn error(&self, _: &ClientError) {}
    fn closed(&self, _: &ClientError) {}
}

#[test]
fn consume_throughput_informational() {
    runtime(4).block_on(async {
        let env = env(&uri(), "client_consumer test").await;
        let s = unique("consumer-throughput");
        env.create_stream(&s, &[]).await.unwrap();
        const N: u64 = 200_000;
        let bodies: Vec<Vec<u8>> = (0..N).map(|i| amqp(&payload("tput", i))).collect();
        let payload_bytes: u64 = (0..N).map(|i| payload("tput", i).len() as u64).sum();
        let mut p = TestPublisher::new(&env, &s).await;
        p.publish(&bodies, 1000);
        p.confirmed().await;
        drop(bodies);

        let c = Arc::new(Counter::default());
        let started = Instant::now();
        let consumer = Consumer::new(&env, &s, config(OffsetSpec::First), c.clone())
            .await
            .unwrap();
        assert!(
            wait_until(Duration::from_secs(120), || c
                .messages
                .load(Ordering::Relaxed)
                >= N)
            .await
        );
        let secs = started.elapsed().as_secs_f64();
        assert_eq!(c.messages.load(Ordering::Relaxed), N);
        assert_eq!(c.out_of_order.load(Ordering::Relaxed), 0);
        assert_eq!(c.bytes.load(Ordering::Relaxed), payload_bytes);
        assert_eq!(c.iteration_allocations.load(Ordering::Relaxed), 0);
        let stats = consumer.stats();
        eprintln!(
            "consume throughput: {N} messages ({:.1} MB of chunk data) in {} chunks, {:.3} s: \
             {:.0} msg/s, {:.1} MB/s ({} build)",
            stats.bytes as f64 / 1e6,
            stats.chunks,
            secs,
            N as f64 / secs,
            stats.bytes as f64 / 1e6 / secs,
            if cfg!(debug_assertions) {
                "debug"
            } else {
                "release"
            }
        );
        consumer.close().await.unwrap();
        env.delete_stream(&s).await.unwrap();
        env.close().await;
    });
}

#[test]
fn offset_in_the_middle_of_a_chunk_starts_exactly_there() {
    runtime(4).block_on(async {
        let env = env(&uri(), "client_consumer test").await;
        let s = unique("consumer-offset");
        env.create_stream(&s, &[]).await.unwrap();
        let payloads: Vec<Vec<u8>> = (0..300).map(|i| payload("offset", i)).collect();
        let mut p = TestPublisher::new(&env, &s).await;
        for group in payloads.chunks(100) {
            let bodies: Vec<Vec<u8>> = group.iter().map(|p| amqp(p)).collect();
            p.publish_chunk(&bodies).await;
        }
        let chunks = layout(&env, &s, 300).await;
        let target = chunks
            .iter()
            .find(|c| c.chunk_id > 0 && c.len >= 3)
            .copied()
            .expect("a chunk after the first with several records");
        let n = target.chunk_id + target.len as u64 / 2;

        let c = Arc::new(Collector::default());
        let consumer = Consumer::new(&env, &s, config(OffsetSpec::Offset(n)), c.clone())
            .await
            .unwrap();
        assert!(wait_until(WAIT, || c.records() >= 300 - n as usize).await);
        tokio::time::sleep(QUIET).await;
        let first = {
            let seen = c.seen();
            assert_records(&seen, n, &payloads[n as usize..]);
            seen.chunks[0]
        };
        assert_eq!(
            first.chunk_id, target.chunk_id,
            "the broker starts at the chunk holding n"
        );
        assert_eq!(first.skipped as u64, n - target.chunk_id);
        assert_eq!(first.first_offset, n);
        assert_eq!(consumer.stats().messages, 300 - n);
        consumer.close().await.unwrap();
        env.delete_stream(&s).await.unwrap();
        env.close().await;
    });
}

#[test]
fn last_starts_at_the_last_chunk_and_next_only_sees_new_messages() {
    runtime(4).block_on(async {
        let env = env(&uri(), "client_consumer test").await;
        let s = unique("consumer-last-next");
        env.create_stream(&s, &[]).await.unwrap();
        let payloads: Vec<Vec<u8>> = (0..60).map(|i| payload("ln", i)).collect();
        let mut p = TestPublisher::new(&env, &s).await;
        for group in payloads[..30].chunks(10) {
            let bodies: Vec<Vec<u8>> = group.iter().map(|p| amqp(p)).collect();
            p.publish_chunk(&bodies).await;
        }
        let chunks = layout(&env, &s, 30).await;
        let last = *chunks.last().unwrap();

        let last_c = Arc::new(Collector::default());
        let last_consumer = Consumer::new(&env, &s, config(OffsetSpec::Last), last_c.clone())
            .await
            .unwrap();
        let next_c = Arc::new(Collector::default());
        let next_consumer = Consumer::new(&env, &s, config(OffsetSpec::Next), next_c.clone())
            .await
            .unwrap();
        assert!(wait_until(WAIT, || last_c.records() >= last.len).await);
        tokio::time::sleep(QUIET).await;
        {
            let seen = last_c.seen();
            assert_eq!(seen.chunks[0].chunk_id, last.chunk_id);
            assert_records(&seen, last.chunk_id, &payloads[last.chunk_id as usize..30]);
        }
        assert_eq!(
            next_c.records(),
            0,
            "Next delivers nothing that was already there"
        );

        let bodies: Vec<Vec<u8>> = payloads[30..].iter().map(|p| amqp(p)).collect();
        p.publish(&bodies, 10);
        p.confirmed().await;
        assert!(wait_until(WAIT, || next_c.records() >= 30).await);
        assert!(wait_until(WAIT, || last_c.records() >= 60 - last.chunk_id as usize).await);
        tokio::time::sleep(QUIET).await;
        assert_records(&next_c.seen(), 30, &payloads[30..]);
        assert_records(
            &last_c.seen(),
            last.chunk_id,
            &payloads[last.chunk_id as usize..],
        );
        last_consumer.close().await.unwrap();
        next_consumer.close().await.unwrap();
        env.delete_stream(&s).await.unwrap();
        env.close().await;
    });
}

#[test]
fn timestamp_starts_at_the_first_chunk_written_after_it() {
    runtime(4).block_on(async {
        let env = env(&uri(), "client_consumer test").await;
        let s = unique("consumer-timestamp");
        env.create_stream(&s, &[]).await.unwrap();
        let payloads: Vec<Vec<u8>> = (0..40).map(|i| payload("ts", i)).collect();
        let encode = |r: std::ops::Range<usize>| -> Vec<Vec<u8>> {
            payloads[r].iter().map(|p| amqp(p)).collect()
        };
        let mut p = TestPublisher::new(&env, &s).await;
        p.publish_chunk(&encode(0..20)).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let t = now_ms();
        tokio::time::sleep(Duration::from_millis(300)).await;
        p.publish_chunk(&encode(20..30)).await;
        p.publish_chunk(&encode(30..40)).await;

        let c = Arc::new(Collector::default());
        let consumer = Consumer::new(&env, &s, config(OffsetSpec::Timestamp(t)), c.clone())
            .await
            .unwrap();
        assert!(wait_until(WAIT, || c.records() >= 20).await);
        tokio::time::sleep(QUIET).await;
        {
            let seen = c.seen();
            assert_records(&seen, 20, &payloads[20..]);
            assert!(seen.records.iter().all(|r| r.timestamp >= t));
        }
        consumer.close().await.unwrap();
        env.delete_stream(&s).await.unwrap();
        env.close().await;
    });
}

#[test]
fn manual_credit_throttles_chunk_by_chunk() {
    runtime(4).block_on(async {
        let env = env(&uri(), "client_consumer test").await;
        let s = unique("consumer-manual");
        env.create_stream(&s, &[]).await.unwrap();
        let payloads: Vec<Vec<u8>> = (0..50).map(|i| payload("manual", i)).collect();
        let mut p = TestPublisher::new(&env, &s).await;
        for group in payloads.chunks(10) {
            let bodies: Vec<Vec<u8>> = group.iter().map(|p| amqp(p)).collect();
            p.publish_chunk(&bodies).await;
        }
        let chunks = layout(&env, &s, 50).await;
        assert!(chunks.len() >= 4, "separate chunks expected: {chunks:?}");

        let c = Arc::new(Collector::default());
        let cfg = ConsumerConfig {
            offset: OffsetSpec::First,
            initial_credit: 1,
            credit_policy: CreditPolicy::Manual,
            ..Default::default()
        };
        let consumer = Consumer::new(&env, &s, cfg, c.clone()).await.unwrap();
        assert!(wait_until(WAIT, || c.chunks() >= 1).await);
        tokio::time::sleep(QUIET).await;
        assert_eq!(
            c.chunks(),
            1,
            "one credit, one chunk (released chunks give nothing back)"
        );

        consumer.credit(1).unwrap();
        assert!(wait_until(WAIT, || c.chunks() >= 2).await);
        tokio::time::sleep(QUIET).await;
        assert_eq!(c.chunks(), 2, "one more credit, one more chunk");

        let rest = (chunks.len() - 2) as u16;
        consumer.credit(rest).unwrap();
        assert!(wait_until(WAIT, || c.records() >= 50).await);
        tokio::time::sleep(QUIET).await;
        assert_eq!(c.chunks(), chunks.len());
        assert_records(&c.seen(), 0, &payloads);
        assert_eq!(consumer.stats().credits_granted, 2 + u64::from(rest));
        assert!(matches!(
            consumer.credit(0),
            Err(ClientError::InvalidArgument(_))
        ));
        assert!(matches!(
            consumer.credit(40_000),
            Err(ClientError::InvalidArgument(_))
        ));
        consumer.close().await.unwrap();
        env.delete_stream(&s).await.unwrap();
        env.close().await;
    });
}

#[test]
fn on_release_credit_stops_at_held_chunks_and_resumes_on_release() {
    runtime(4).block_on(async {
        let env = env(&uri(), "client_consumer test").await;
        let s = unique("consumer-on-release");
        env.create_stream(&s, &[]).await.unwrap();
        let payloads: Vec<Vec<u8>> = (0..80).map(|i| payload("hold", i)).collect();
        let mut p = TestPublisher::new(&env, &s).await;
        for group in payloads.chunks(10) {
            let bodies: Vec<Vec<u8>> = group.iter().map(|p| amqp(p)).collect();
            p.publish_chunk(&bodies).await;
        }
        let chunks = layout(&env, &s, 80).await;
        assert!(chunks.len() >= 6, "separate chunks expected: {chunks:?}");

        let c = Collector::holding();
        let cfg = ConsumerConfig {
            offset: OffsetSpec::First,
            initial_credit: 2,
            ..Default::default()
        };
        let consumer = Consumer::new(&env, &s, cfg, c.clone()).await.unwrap();
        assert!(wait_until(WAIT, || c.chunks() >= 2).await);
        tokio::time::sleep(QUIET).await;
        assert_eq!(c.chunks(), 2, "held chunks use up the credit");
        assert_eq!(consumer.stats().credits_granted, 2);

        // Releasing gives the credit back: delivery resumes, again up to 2 held chunks.
        assert_eq!(c.release_held(), 2);
        assert!(wait_until(WAIT, || c.chunks() >= 4).await);
        tokio::time::sleep(QUIET).await;
        assert_eq!(c.chunks(), 4);
        assert_eq!(c.seen().held.len(), 2);

        // Dropping chunks from another thread works the same; release until everything came.
        let deadline = Instant::now() + WAIT;
        while c.records() < 80 && Instant::now() < deadline {
            let held = std::mem::take(&mut c.seen().held);
            std::thread::spawn(move || drop(held)).join().unwrap();
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_records(&c.seen(), 0, &payloads);
        c.release_held();
        let stats = consumer.stats();
        assert!(
            wait_until(WAIT, || consumer.stats().credits_granted
                == 2 + stats.chunks)
            .await,
            "one credit per released chunk: {:?}",
            consumer.stats()
        );
        consumer.close().await.unwrap();
        env.delete_stream(&s).await.unwrap();
        env.close().await;
    });
}

#[test]
fn compressed_sub_entries_decode_with_correct_offsets() {
    runtime(4).block_on(async {
        let env = env(&uri(), "client_consumer test").await;
        let s = unique("consumer-sub-entries");
        env.create_stream(&s, &[]).await.unwrap();
        let mut payloads: Vec<Vec<u8>> = Vec::new();
        let next = |n: u64, payloads: &mut Vec<Vec<u8>>| -> Vec<Vec<u8>> {
            let start = payloads.len() as u64;
            let v: Vec<Vec<u8>> = (start..start + n).map(|i| payload("sub", i)).collect();
            payloads.extend(v.iter().cloned());
            v.iter().map(|p| amqp(p)).collect()
        };
        let mut p = TestPublisher::new(&env, &s).await;
        let simple = next(3, &mut payloads);
        p.publish(&simple, 3);
        for codec in [
            Compression::Gzip,
            Compression::Zstd,
            Compression::Lz4,
            Compression::Snappy,
            Compression::None,
        ] {
            let batch = next(40, &mut payloads);
            p.publish_batch(codec, &batch);
            let simple = next(2, &mut payloads);
            p.publish(&simple, 2);
        }
        p.confirmed().await;
        let total = payloads.len();

        let c = Arc::new(Collector::default());
        let consumer = Consumer::new(&env, &s, config(OffsetSpec::First), c.clone())
            .await
            .unwrap();
        assert!(wait_until(WAIT, || c.records() >= total).await);
        tokio::time::sleep(QUIET).await;
        assert_records(&c.seen(), 0, &payloads);
        consumer.close().await.unwrap();

        // Starting inside the zstd batch (records 45..85): earlier records of its chunk hidden.
        let n = 60;
        let c = Arc::new(Collector::default());
        let consumer = Consumer::new(&env, &s, config(OffsetSpec::Offset(n)), c.clone())
            .await
            .unwrap();
        assert!(wait_until(WAIT, || c.records() >= total - n as usize).await);
        tokio::time::sleep(QUIET).await;
        assert_records(&c.seen(), n, &payloads[n as usize..]);
        consumer.close().await.unwrap();
        env.delete_stream(&s).await.unwrap();
        env.close().await;
    });
}

#[test]
fn deleting_the_stream_closes_the_consumer_once() {
    runtime(4).block_on(async {
        let env = env(&uri(), "client_consumer test").await;
        let s = unique("consumer-deleted");
        env.create_stream(&s, &[]).await.unwrap();
        let c = Arc::new(Collector::default());
        let consumer = Consumer::new(&env, &s, config(OffsetSpec::First), c.clone())
            .await
            .unwrap();
        assert!(consumer.is_open());
        env.delete_stream(&s).await.unwrap();
        assert!(wait_until(WAIT, || !c.seen().closed.is_empty()).await);
        match &c.seen().closed[..] {
            [ClientError::Server { code, .. }] => {
                assert_eq!(*code, ResponseCode::STREAM_DOES_NOT_EXIST)
            }
            other => panic!("closed with {other:?}"),
        }
        assert!(!consumer.is_open());
        assert!(matches!(consumer.credit(1), Err(ClientError::Closed(_))));
        consumer.close().await.unwrap();
        consumer.close().await.unwrap();
        assert_eq!(c.seen().closed.len(), 1, "closed is reported once");
        env.close().await;
    });
}

#[test]
fn close_is_idempotent_and_reported_once() {
    runtime(4).block_on(async {
        let env = env(&uri(), "client_consumer test").await;
        let s = unique("consumer-close");
        env.create_stream(&s, &[]).await.unwrap();
        let c = Arc::new(Collector::default());
        let consumer = Consumer::new(&env, &s, config(OffsetSpec::Next), c.clone())
            .await
            .unwrap();
        assert_eq!(consumer.stream(), s);
        consumer.close().await.unwrap();
        consumer.close().await.unwrap();
        assert!(matches!(&c.seen().closed[..], [ClientError::Closed(_)]));
        assert!(matches!(consumer.credit(1), Err(ClientError::Closed(_))));
        // Publishing after close reaches nobody.
        let mut p = TestPublisher::new(&env, &s).await;
        p.publish_chunk(&[amqp(b"late")]).await;
        tokio::time::sleep(QUIET).await;
        assert_eq!(c.records(), 0);

        match Consumer::new(
            &env,
            &unique("consumer-missing"),
            config(OffsetSpec::First),
            c.clone(),
        )
        .await
        {
            Err(ClientError::Server { code, .. }) => {
                assert_eq!(code, ResponseCode::STREAM_DOES_NOT_EXIST)
            }
            other => panic!("subscribing to a missing stream gave {other:?}"),
        }
        env.delete_stream(&s).await.unwrap();
        env.close().await;
    });
}

/// Drops its own consumer from inside the first `chunk` callback.
#[derive(Default)]
struct SelfDropping {
    consumer: Mutex<Option<Consumer>>,
    chunks: AtomicU64,
    closed: Mutex<Vec<ClientError>>,
}

impl ConsumerEvents for SelfDropping {
    fn chunk(&self, chunk: DeliveredChunk) {
        self.chunks.fetch_add(1, Ordering::SeqCst);
        drop(chunk);
        let consumer = lock(&self.consumer).take();
        drop(consumer);
    }
    fn error(&self, _: &ClientError) {}
    fn closed(&self, reason: &ClientError) {
        lock(&self.closed).push(reason.clone());
    }
}

#[test]
fn dropping_the_consumer_inside_its_callback_closes_it() {
    runtime(4).block_on(async {
        let env = env(&uri(), "client_consumer test").await;
        let s = unique("consumer-self-drop");
        env.create_stream(&s, &[]).await.unwrap();
        let events = Arc::new(SelfDropping::default());
        let consumer = Consumer::new(&env, &s, config(OffsetSpec::First), events.clone())
            .await
            .unwrap();
        *lock(&events.consumer) = Some(consumer);
        // Published once the callback can reach the consumer.
        let mut p = TestPublisher::new(&env, &s).await;
        for i in 0..5 {
            p.publish_chunk(&[amqp(&payload("self-drop", i))]).await;
        }
        assert!(wait_until(WAIT, || !lock(&events.closed).is_empty()).await);
        let chunks = events.chunks.load(Ordering::SeqCst);
        assert!(chunks >= 1);
        tokio::time::sleep(QUIET).await;
        assert!(matches!(
            &lock(&events.closed)[..],
            [ClientError::Closed(_)]
        ));
        assert_eq!(
            events.chunks.load(Ordering::SeqCst),
            chunks,
            "nothing after closed"
        );
        env.delete_stream(&s).await.unwrap();
        env.close().await;
    });
}

#[test]
fn store_and_query_offset_round_trip() {
    runtime(4).block_on(async {
        let env = env(&uri(), "client_consumer test").await;
        let s = unique("consumer-tracking");
        env.create_stream(&s, &[]).await.unwrap();
        let c = Arc::new(Collector::default());
        let named = Consumer::new(
            &env,
            &s,
            ConsumerConfig {
                name: Some("tracking-app".into()),
                ..Default::default()
            },
            c.clone(),
        )
        .await
        .unwrap();
        assert_eq!(named.query_offset().await.unwrap(), None);
        named.store_offset(4242).unwrap();
        let mut stored = None;
        for _ in 0..100 {
            stored = named.query_offset().await.unwrap();
            if stored.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(stored, Some(4242));
        assert_eq!(
            env.query_offset("tracking-app", &s).await.unwrap(),
            Some(4242)
        );

        let anonymous = Consumer::new(&env, &s, ConsumerConfig::default(), c.clone())
            .await
            .unwrap();
        assert!(matches!(
            anonymous.store_offset(1),
            Err(ClientError::InvalidArgument(_))
        ));
        assert!(matches!(
            anonymous.query_offset().await,
            Err(ClientError::InvalidArgument(_))
        ));
        named.close().await.unwrap();
        anonymous.close().await.unwrap();
        assert!(matches!(named.store_offset(1), Err(ClientError::Closed(_))));
        assert!(matches!(
            named.query_offset().await,
            Err(ClientError::Closed(_))
        ));
        env.delete_stream(&s).await.unwrap();
        env.close().await;
    });
}

#[test]
fn legacy_broker_delivers_v1_chunks() {
    let Ok(uri) = std::env::var("RMQS_TEST_LEGACY_URI") else {
        eprintln!("RMQS_TEST_LEGACY_URI unset: Deliver v1 (RabbitMQ 3.10) test skipped");
        return;
    };
    runtime(4).block_on(async {
        let env = env(&uri, "client_consumer test").await;
        assert_eq!(env.server_info().await.unwrap().version.1, 10);
        let s = unique("consumer-legacy");
        env.create_stream(&s, &[]).await.unwrap();
        let payloads: Vec<Vec<u8>> = (0..1000).map(|i| payload("legacy", i)).collect();
        let mut p = TestPublisher::new(&env, &s).await;
        for group in payloads.chunks(250) {
            let bodies: Vec<Vec<u8>> = group.iter().map(|p| amqp(p)).collect();
            p.publish_chunk(&bodies).await;
        }
        let c = Arc::new(Collector::default());
        let consumer = Consumer::new(&env, &s, config(OffsetSpec::First), c.clone())
            .await
            .unwrap();
        assert!(wait_until(WAIT, || c.records() >= 1000).await);
        tokio::time::sleep(QUIET).await;
        {
            let seen = c.seen();
            assert_records(&seen, 0, &payloads);
            assert!(
                seen.chunks.iter().all(|ch| ch.committed.is_none()),
                "Deliver v1"
            );
        }
        consumer.close().await.unwrap();

        let c = Arc::new(Collector::default());
        let consumer = Consumer::new(&env, &s, config(OffsetSpec::Offset(377)), c.clone())
            .await
            .unwrap();
        assert!(wait_until(WAIT, || c.records() >= 623).await);
        tokio::time::sleep(QUIET).await;
        assert_records(&c.seen(), 377, &payloads[377..]);
        consumer.close().await.unwrap();
        env.delete_stream(&s).await.unwrap();
        env.close().await;
    });
}

// ---------------------------------------------------------------------------------------------
// A scripted broker: corrupt chunks cannot be had from a real one.

/// Per subscription id: credits received.
type Credits = Arc<Mutex<HashMap<u8, u64>>>;

async fn serve_scripted(
    sock: tokio::net::TcpStream,
    port: u16,
    script: Arc<Vec<(Option<u64>, Bytes)>>,
    credits: Credits,
) {
    let properties = [("product", "scripted"), ("version", "3.10.0")];
    support::client::serve_scripted(sock, port, &properties, |frame, send| match frame {
        Frame::Subscribe(f) => {
            send(Frame::SubscribeResponse(CodeResponse {
                correlation_id: f.correlation_id,
                code: ResponseCode::OK,
            }));
            for (committed, chunk) in script.iter() {
                send(Frame::Deliver(Deliver {
                    subscription_id: f.subscription_id,
                    committed_chunk_id: *committed,
                    chunk: chunk.clone(),
                }));
            }
        }
        Frame::Credit(f) => {
            *lock(&credits).entry(f.subscription_id).or_default() += u64::from(f.credit);
        }
        Frame::Unsubscribe(f) => send(Frame::UnsubscribeResponse(CodeResponse {
            correlation_id: f.correlation_id,
            code: ResponseCode::OK,
        })),
        _ => {}
    })
    .await
}

#[test]
fn crc_mismatch_and_undecodable_chunks_are_errors_and_still_credited() {
    runtime(4).block_on(async {
        let chunk = |id: u64, n: u64| {
            let mut b = ChunkBuilder::new(id).timestamp(1);
            for o in id..id + n {
                b.add_simple(&amqp(&payload("scripted", o))).unwrap();
            }
            b.build().unwrap()
        };
        let good_a = chunk(0, 3);
        let mut bad_crc = BytesMut::from(&chunk(3, 3)[..]);
        let last = bad_crc.len() - 1;
        bad_crc[last] ^= 0x20;
        let good_b = chunk(6, 3);
        // Valid CRC, broken framing: an entry claims more bytes than the chunk has.
        let mut b = ChunkBuilder::new(9);
        b.add_raw_entry(&[0, 0, 1, 0, b'x'], 1).unwrap();
        let undecodable = b.build().unwrap();
        let good_c = chunk(10, 2);
        let script = Arc::new(vec![
            (Some(0), good_a),
            (None, bad_crc.freeze()),
            (Some(6), good_b),
            (None, undecodable),
            (None, good_c),
        ]);

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let credits: Credits = Arc::default();
        let (sc, cr) = (script.clone(), credits.clone());
        tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                tokio::spawn(serve_scripted(sock, port, sc.clone(), cr.clone()));
            }
        });
        let env = env(
            &format!("rabbitmq-stream://guest:guest@127.0.0.1:{port}/%2f"),
            "client_consumer test",
        )
        .await;

        let mut results = Vec::new();
        for (policy, expected_credits) in [(CreditPolicy::OnRelease, 5), (CreditPolicy::Manual, 2)]
        {
            let c = Arc::new(Collector::default());
            let cfg = ConsumerConfig {
                offset: OffsetSpec::First,
                credit_policy: policy,
                ..Default::default()
            };
            let consumer = Consumer::new(&env, "scripted", cfg, c.clone())
                .await
                .unwrap();
            assert!(wait_until(WAIT, || c.records() >= 8 && c.seen().errors.len() >= 2).await);
            let credited = || lock(&credits).values().sum::<u64>();
            let before: u64 = results.iter().sum();
            assert!(
                wait_until(WAIT, || credited() >= before + expected_credits).await,
                "{policy:?}: credits {:?}",
                lock(&credits)
            );
            tokio::time::sleep(QUIET).await;
            assert_eq!(
                credited(),
                before + expected_credits,
                "{policy:?}: one credit per chunk"
            );
            results.push(expected_credits);
            {
                let seen = c.seen();
                let offsets: Vec<u64> = seen.records.iter().map(|r| r.offset).collect();
                assert_eq!(offsets, [0, 1, 2, 6, 7, 8, 10, 11]);
                for r in &seen.records {
                    assert_eq!(r.amqp_body, payload("scripted", r.offset));
                }
                let committed: Vec<Option<u64>> = seen.chunks.iter().map(|c| c.committed).collect();
                assert_eq!(committed, [Some(0), Some(6), None]);
                assert_eq!(seen.errors.len(), 2);
                let text: Vec<String> = seen.errors.iter().map(|e| e.to_string()).collect();
                assert!(
                    matches!(&seen.errors[0], ClientError::Protocol(m) if m.contains("checksum")),
                    "{text:?}"
                );
                assert!(
                    matches!(&seen.errors[1], ClientError::Protocol(_)),
                    "{text:?}"
                );
            }
            assert_eq!(consumer.stats().chunks, 3);
            assert_eq!(consumer.stats().messages, 8);
            assert_eq!(consumer.last_delivered_offset(), Some(11));
            consumer.close().await.unwrap();
        }
        env.close().await;
    });
}
