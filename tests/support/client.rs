//! The async core, directly, for the `client_*` tests: runtimes, environments, polling, a
//! producer [`Collector`], a [`Fixture`] with a fresh stream, and [`read_stream`], a minimal
//! subscriber written against `Connection` and the chunk codec (independent of the consumer)
//! that reports records, chunk ids and every chunk entry.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use rmqstream::client::connection::SubscriptionListener;
use rmqstream::client::{
    BodyFormat, ClientError, Confirm, ConfirmStatus, Connection, ConnectionConfig, Consumer,
    ConsumerConfig, ConsumerEvents, DeliveredChunk, Environment, EnvironmentHandle,
    OutgoingMessage, Producer, ProducerConfig, ProducerEvents, PublisherListener, Role,
};
use rmqstream::protocol::amqp::MessageView;
use rmqstream::protocol::chunk::{Chunk, ChunkDecoder, EntryKind};
use rmqstream::protocol::codes::{OffsetSpec, ResponseCode};
use rmqstream::protocol::commands::{
    Broker, CodeResponse, Credit, DeclarePublisher, Deliver, Frame, MetadataResponse, OpenResponse,
    PeerPropertiesResponse, SaslAuthenticateResponse, SaslHandshakeResponse, StreamMetadata,
    Subscribe, Tune, Unsubscribe, split_frame,
};
use rmqstream::protocol::compression::Compression;
use tokio::runtime::Runtime;
use tokio::sync::mpsc;

/// How long the fixture's reads and closes wait.
pub const WAIT: Duration = Duration::from_secs(60);

/// A multi-thread runtime with `workers` worker threads.
pub fn runtime(workers: usize) -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .unwrap()
}

/// An environment on `uri` whose connections are named `name`.
pub async fn env(uri: &str, name: &str) -> Environment {
    let mut cfg = ConnectionConfig::default();
    cfg.apply_uri(uri).unwrap();
    cfg.connection_name = name.into();
    Environment::connect(cfg).await.unwrap()
}

/// Locks `m`, also when a panicking test thread poisoned it.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Polls `cond` every 5 ms until it holds or `timeout` passes; returns whether it held.
pub async fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// An environment and a fresh stream, deleted by [`Fixture::finish`].
pub struct Fixture {
    pub rt: Runtime,
    pub env: Environment,
    pub stream: String,
}

impl Fixture {
    /// On the test broker; `test` names the connections (`"<test> test <prefix>"`).
    pub fn new(test: &str, prefix: &str) -> Fixture {
        Self::with_uri(&super::uri(), test, prefix)
    }

    pub fn with_uri(uri: &str, test: &str, prefix: &str) -> Fixture {
        let rt = runtime(2);
        let stream = super::unique(prefix);
        let env = rt.block_on(async {
            let env = env(uri, &format!("{test} test {prefix}")).await;
            assert!(env.create_stream(&stream, &[]).await.unwrap());
            env
        });
        Fixture { rt, env, stream }
    }

    pub fn producer<E: ProducerEvents + 'static>(
        &self,
        config: ProducerConfig,
        events: &Arc<E>,
    ) -> Producer {
        let events: Arc<dyn ProducerEvents> = events.clone();
        self.rt
            .block_on(Producer::new(&self.env, &self.stream, config, events))
            .unwrap()
    }

    /// A producer on the stream whose outcomes go to a new [`Collector`].
    pub fn collected(&self, config: ProducerConfig) -> (Arc<Collector>, Producer) {
        let events = Collector::new();
        let p = self.producer(config, &events);
        (events, p)
    }

    pub fn close(&self, p: &Producer) {
        self.rt.block_on(p.close(WAIT)).unwrap();
    }

    /// The broker's stored sequence of the producer `name`.
    pub fn sequence(&self, name: &str) -> u64 {
        self.rt
            .block_on(self.env.query_publisher_sequence(name, &self.stream))
            .unwrap()
    }

    pub fn frame_max(&self) -> usize {
        self.rt.block_on(self.env.server_info()).unwrap().frame_max as usize
    }

    /// Reads records from offset 0 until `n` arrived.
    pub fn read(&self, n: usize) -> ReadBack {
        self.rt.block_on(read_stream(&self.env, &self.stream, n))
    }

    pub fn finish(self) {
        self.rt.block_on(async {
            let _ = self.env.delete_stream(&self.stream).await;
            self.env.close().await;
        });
    }
}

/// An environment shared with super producers and consumers (as their `EnvironmentHandle`),
/// deleting the super streams and streams the test created at [`SuperFixture::finish`].
/// `struct Fixture(SuperFixture)` for a test file that adds its own methods to it:
/// `Fixture::new(prefix)` on the test broker, `Fixture::with_uri(uri, prefix)`, `workers`
/// runtime threads, connections named `"<test> test <prefix>"`, `finish`; it derefs to the
/// [`SuperFixture`].
#[allow(unused_macros)] // only the super stream test files use it
macro_rules! super_fixture {
    ($workers:expr, $test:literal) => {
        /// The shared [`SuperFixture`] with this file's producers, consumers and readers.
        struct Fixture(crate::support::client::SuperFixture);

        impl std::ops::Deref for Fixture {
            type Target = crate::support::client::SuperFixture;
            fn deref(&self) -> &Self::Target {
                &self.0
            }
        }

        impl Fixture {
            fn new(prefix: &str) -> Fixture {
                Self::with_uri(&crate::support::uri(), prefix)
            }

            fn with_uri(uri: &str, prefix: &str) -> Fixture {
                let name = format!(concat!($test, " test {}"), prefix);
                Fixture(crate::support::client::SuperFixture::new(
                    uri, $workers, &name,
                ))
            }

            /// On the legacy broker of `RMQS_TEST_LEGACY_URI` (and that URI); `None` (the test
            /// skips, with a notice) when that is unset.
            fn legacy(prefix: &str) -> Option<(Fixture, String)> {
                let Ok(uri) = std::env::var("RMQS_TEST_LEGACY_URI") else {
                    eprintln!("RMQS_TEST_LEGACY_URI unset: legacy broker test skipped");
                    return None;
                };
                Some((Self::with_uri(&uri, prefix), uri))
            }

            fn finish(self) {
                self.0.finish()
            }
        }
    };
}
#[allow(unused_imports)]
pub(crate) use super_fixture;

/// What [`SuperFixture::read_plain`] received: (offset, body).
#[derive(Default)]
struct Reader {
    records: Mutex<Vec<(u64, Vec<u8>)>>,
}

impl ConsumerEvents for Reader {
    fn chunk(&self, chunk: DeliveredChunk) {
        let records = chunk.records().map(|r| (r.offset, r.amqp_body().to_vec()));
        lock(&self.records).extend(records);
    }
    fn error(&self, error: &ClientError) {
        panic!("reader error: {error}");
    }
    fn closed(&self, _reason: &ClientError) {}
}

pub struct SuperFixture {
    pub rt: Runtime,
    pub env: Arc<Environment>,
    pub super_streams: Mutex<Vec<String>>,
    pub streams: Mutex<Vec<String>>,
}

impl SuperFixture {
    /// On `uri`, `workers` runtime threads, connections named `name`.
    pub fn new(uri: &str, workers: usize, name: &str) -> SuperFixture {
        let rt = runtime(workers);
        let env = rt.block_on(env(uri, name));
        SuperFixture {
            rt,
            env: Arc::new(env),
            super_streams: Mutex::default(),
            streams: Mutex::default(),
        }
    }

    pub fn handle(&self) -> Arc<dyn EnvironmentHandle> {
        self.env.clone()
    }

    /// Creates a super stream with these partition suffixes and binding keys; returns its
    /// name and partitions.
    pub fn super_stream(
        &self,
        prefix: &str,
        suffixes: &[&str],
        keys: &[&str],
    ) -> (String, Vec<String>) {
        let name = super::unique(prefix);
        let parts: Vec<String> = suffixes.iter().map(|s| format!("{name}-{s}")).collect();
        let keys: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
        self.rt
            .block_on(self.env.create_super_stream(&name, &parts, &keys, &[]))
            .unwrap();
        lock(&self.super_streams).push(name.clone());
        (name, parts)
    }

    /// A super stream with partitions `<name>-0..n-1` bound with keys `0..n-1`.
    pub fn numbered(&self, prefix: &str, n: usize) -> (String, Vec<String>) {
        let suffixes: Vec<String> = (0..n).map(|i| i.to_string()).collect();
        let s: Vec<&str> = suffixes.iter().map(String::as_str).collect();
        self.super_stream(prefix, &s, &s)
    }

    /// Adds partition `<ss>-2` to super stream `ss`, bound with key "2" and order 2, through
    /// `scripts/broker ctl eval` (the protocol cannot add one): the new partition, or `None`
    /// (with a notice that `what` is skipped) when the node cannot be reached.
    pub fn add_partition(&self, ss: &str, what: &str) -> Option<String> {
        let new_part = format!("{ss}-2");
        self.rt
            .block_on(self.env.create_stream(&new_part, &[]))
            .unwrap();
        lock(&self.streams).push(new_part.clone());
        let expr = format!(
            "rabbit_binding:add(rabbit_binding:new(rabbit_misc:r(<<\"/\">>, exchange, <<\"{ss}\">>), \
             <<\"2\">>, rabbit_misc:r(<<\"/\">>, queue, <<\"{new_part}\">>), \
             [{{<<\"x-stream-partition-order\">>, long, 2}}]), <<\"guest\">>)."
        );
        let Some(out) = super::broker_eval(&expr) else {
            eprintln!("cannot reach the node with scripts/broker: {what} skipped");
            return None;
        };
        assert_eq!(out, "ok", "rabbit_binding:add answered {out}");
        Some(new_part)
    }

    /// Every record of `stream` as (offset, body), read from `First` by a plain consumer:
    /// `n` of them, and no more within `quiet` after.
    pub fn read_plain(&self, stream: &str, n: usize, quiet: Duration) -> Vec<(u64, Vec<u8>)> {
        self.rt.block_on(async {
            let reader = Arc::new(Reader::default());
            let config = ConsumerConfig {
                offset: OffsetSpec::First,
                ..Default::default()
            };
            let consumer = Consumer::new(&self.env, stream, config, reader.clone())
                .await
                .unwrap();
            let deadline = Instant::now() + WAIT;
            while lock(&reader.records).len() < n && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            tokio::time::sleep(quiet).await;
            consumer.close().await.unwrap();
            let records = std::mem::take(&mut *lock(&reader.records));
            assert_eq!(records.len(), n, "records read back from {stream}");
            records
        })
    }

    pub fn finish(self) {
        let super_streams = std::mem::take(&mut *lock(&self.super_streams));
        let streams = std::mem::take(&mut *lock(&self.streams));
        self.rt.block_on(async {
            for s in &super_streams {
                let _ = self.env.delete_super_stream(s).await;
            }
            for s in &streams {
                let _ = self.env.delete_stream(s).await;
            }
            self.env.close().await;
        });
    }
}

/// Collects every outcome; lets the test wait for a count.
#[derive(Default)]
pub struct Collector {
    seen: Mutex<Vec<Confirm>>,
    cv: Condvar,
}

impl ProducerEvents for Collector {
    fn confirms(&self, batch: &[Confirm]) {
        assert!(!batch.is_empty(), "empty confirm batch");
        self.seen.lock().unwrap().extend_from_slice(batch);
        self.cv.notify_all();
    }
}

impl Collector {
    pub fn new() -> Arc<Collector> {
        Arc::new(Collector::default())
    }

    pub fn all(&self) -> Vec<Confirm> {
        self.seen.lock().unwrap().clone()
    }

    /// Waits until at least `n` outcomes arrived.
    pub fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Confirm> {
        let deadline = Instant::now() + timeout;
        let mut seen = self.seen.lock().unwrap();
        while seen.len() < n {
            let now = Instant::now();
            assert!(
                now < deadline,
                "only {} of {n} outcomes arrived",
                seen.len()
            );
            seen = self.cv.wait_timeout(seen, deadline - now).unwrap().0;
        }
        seen.clone()
    }

    /// Outcomes by tag; panics on a tag reported twice.
    pub fn by_tag(&self) -> HashMap<usize, Confirm> {
        let mut map = HashMap::new();
        for c in self.all() {
            assert!(
                map.insert(c.tag, c).is_none(),
                "tag {} reported twice",
                c.tag
            );
        }
        map
    }
}

/// Sends `bodies` with tags `0..`, every tenth (index 3, 13, ...) as raw bytes and the rest
/// wrapped in an AMQP data section, each waiting up to `wait` for room; message `i` must get
/// publishing id `i` (`why` says why).
pub fn send_mixed(p: &Producer, bodies: &[Vec<u8>], wait: Duration, why: &str) {
    for (i, body) in bodies.iter().enumerate() {
        let msg = OutgoingMessage {
            format: if i % 10 == 3 {
                BodyFormat::Raw
            } else {
                BodyFormat::AmqpData
            },
            ..OutgoingMessage::new(body).tag(i)
        };
        let id = p.send(&msg, Some(wait)).unwrap();
        assert_eq!(id, i as u64, "{why}");
    }
}

/// Every tag `0..n` confirmed once with publishing id = tag; `p` counts `n` published and
/// confirmed, none errored or in flight, and its last id is `n - 1`.
pub fn assert_confirmed_in_order(events: &Collector, p: &Producer, n: usize) {
    let by_tag = events.by_tag();
    assert_eq!(by_tag.len(), n);
    for (tag, c) in &by_tag {
        assert_eq!(c.status, ConfirmStatus::Confirmed, "tag {tag}");
        assert_eq!(c.publishing_id, *tag as u64, "tag {tag}");
    }
    let st = p.stats();
    assert_eq!(
        (st.published, st.confirmed, st.errored, st.in_flight),
        (n as u64, n as u64, 0, 0)
    );
    assert_eq!(p.last_publishing_id(), Some(n as u64 - 1));
}

/// One entry of a chunk as read back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryInfo {
    Simple {
        offset: u64,
    },
    Sub {
        offset: u64,
        compression: Compression,
        records: u16,
    },
}

/// What [`read_stream`] read.
pub struct ReadBack {
    /// `(offset, record bytes)`.
    pub records: Vec<(u64, Vec<u8>)>,
    /// Ids of the chunks received.
    pub chunk_ids: Vec<u64>,
    /// Every entry of every chunk, in order.
    pub entries: Vec<EntryInfo>,
}

impl ReadBack {
    /// The body of every record: the data section of AMQP messages, raw records as they are.
    pub fn bodies(&self) -> Vec<Vec<u8>> {
        self.records
            .iter()
            .map(|(_, r)| match MessageView::parse(r) {
                Ok(view) => view.body_bytes().expect("one data section").to_vec(),
                Err(_) => r.clone(),
            })
            .collect()
    }

    /// Offsets are 0, 1, 2, … with no gap.
    pub fn assert_contiguous(&self) {
        for (i, (offset, _)) in self.records.iter().enumerate() {
            assert_eq!(*offset, i as u64, "record {i}");
        }
    }

    /// The sub-entries; panics on a simple entry.
    pub fn sub_entries(&self) -> Vec<(u64, Compression, u16)> {
        self.entries
            .iter()
            .map(|e| match *e {
                EntryInfo::Sub {
                    offset,
                    compression,
                    records,
                } => (offset, compression, records),
                EntryInfo::Simple { offset } => panic!("simple entry at offset {offset}"),
            })
            .collect()
    }
}

struct Sub(mpsc::UnboundedSender<Deliver>);

impl SubscriptionListener for Sub {
    fn deliver(&self, deliver: Deliver) {
        let _ = self.0.send(deliver);
    }
    fn credit_error(&self, code: ResponseCode) {
        panic!("credit error {code}");
    }
    fn consumer_update(&self, _: u32, _: bool) {}
    fn stream_unavailable(&self, _: ResponseCode) {}
    fn connection_closed(&self, _: &ClientError) {}
}

// ---------------------------------------------------------------------------------------------
// the bare connection API: subscriptions and publishers by hand

/// Panics unless `f`, the broker's answer to `what` (subscribe, unsubscribe, declare or delete
/// publisher), says OK.
pub fn expect_ok(what: &str, f: &Frame) {
    let code = match f {
        Frame::SubscribeResponse(r)
        | Frame::UnsubscribeResponse(r)
        | Frame::DeclarePublisherResponse(r)
        | Frame::DeletePublisherResponse(r) => r.code,
        other => panic!("{what}: unexpected answer {other:?}"),
    };
    assert!(code.is_ok(), "{what}: broker answered {code}");
}

/// Registers a subscription to `stream` delivering to `listener` and subscribes it from the
/// first offset with `credit` credits (the broker must answer OK): its id.
pub async fn subscribe_first(
    conn: &Connection,
    stream: &str,
    listener: Arc<dyn SubscriptionListener>,
    credit: u16,
) -> u8 {
    let id = conn
        .register_subscription(stream, listener)
        .unwrap()
        .expect("a free subscription id");
    let r = conn
        .request("subscribe", |correlation_id| {
            Frame::Subscribe(Subscribe {
                correlation_id,
                subscription_id: id,
                stream: stream.into(),
                offset_spec: OffsetSpec::First,
                credit,
                properties: Vec::new(),
            })
        })
        .await
        .unwrap();
    expect_ok("subscribe", &r);
    id
}

/// One more credit for subscription `id`.
pub fn credit_one(conn: &Connection, id: u8) {
    let credit = Credit {
        subscription_id: id,
        credit: 1,
    };
    conn.send_frame(&Frame::Credit(credit)).unwrap();
}

/// Unsubscribes `id` and unregisters it: the broker's answer.
pub async fn unsubscribe(conn: &Connection, id: u8) -> Result<Frame, ClientError> {
    let r = conn
        .request("unsubscribe", |correlation_id| {
            Frame::Unsubscribe(Unsubscribe {
                correlation_id,
                subscription_id: id,
            })
        })
        .await;
    conn.unregister_subscription(id);
    r
}

/// Registers a publisher on `stream` confirming to `listener` and declares it, without a
/// reference (the broker must answer OK): its id.
pub async fn declare_publisher(
    conn: &Connection,
    stream: &str,
    listener: Arc<dyn PublisherListener>,
) -> u8 {
    let id = conn
        .register_publisher(stream, listener)
        .unwrap()
        .expect("a free publisher id");
    let declare = DeclarePublisher {
        correlation_id: 0,
        publisher_id: id,
        publisher_reference: String::new(),
        stream: stream.into(),
    };
    let r = conn.request("declare publisher", |correlation_id| {
        Frame::DeclarePublisher(DeclarePublisher {
            correlation_id,
            ..declare
        })
    });
    expect_ok("declare publisher", &r.await.unwrap());
    id
}

/// Subscribes from the first offset with the bare connection API and collects `n` records,
/// the chunk ids and the entries of every chunk.
pub async fn read_stream(env: &Environment, stream: &str, n: usize) -> ReadBack {
    let conn = env.data_connection(stream, Role::Consumer).await.unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let sid = subscribe_first(&conn, stream, Arc::new(Sub(tx)), 5).await;
    let mut decoder = ChunkDecoder::new();
    let mut out = ReadBack {
        records: Vec::new(),
        chunk_ids: Vec::new(),
        entries: Vec::new(),
    };
    while out.records.len() < n {
        let d = tokio::time::timeout(WAIT, rx.recv())
            .await
            .unwrap_or_else(|_| panic!("only {} of {n} records read", out.records.len()))
            .unwrap();
        let chunk = Chunk::parse(d.chunk).unwrap();
        chunk.verify_crc().unwrap();
        out.chunk_ids.push(chunk.chunk_id());
        for entry in chunk.entries() {
            let entry = entry.unwrap();
            out.entries.push(match entry.kind {
                EntryKind::Simple(_) => EntryInfo::Simple {
                    offset: entry.first_offset,
                },
                EntryKind::SubEntry(s) => EntryInfo::Sub {
                    offset: entry.first_offset,
                    compression: s.compression,
                    records: s.num_records,
                },
            });
        }
        decoder
            .for_each_record(&chunk, |r| out.records.push((r.offset, r.body.to_vec())))
            .unwrap();
        credit_one(&conn, sid);
    }
    let _ = unsubscribe(&conn, sid).await;
    out
}

/// One connection of a scripted in-process broker, for what a real one cannot be made to do:
/// answers the handshake itself (PeerProperties with `properties`, SASL PLAIN, Tune, Open
/// advertising 127.0.0.1:`port`, Metadata naming itself leader of every stream) and Close, and
/// hands every other frame to `on_frame` with a `send` for its answers. Returns when the client
/// closes or goes away.
pub async fn serve_scripted(
    mut sock: tokio::net::TcpStream,
    port: u16,
    properties: &[(&str, &str)],
    mut on_frame: impl FnMut(Frame, &mut dyn FnMut(Frame)),
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let ok = ResponseCode::OK;
    let mut buf = BytesMut::new();
    loop {
        let mut out = BytesMut::new();
        let mut closing = false;
        let mut send = |f: Frame| f.encode(&mut out).unwrap();
        while let Some(body) = split_frame(&mut buf, 0).unwrap() {
            match Frame::decode(body).unwrap() {
                Frame::PeerProperties(f) => {
                    send(Frame::PeerPropertiesResponse(PeerPropertiesResponse {
                        correlation_id: f.correlation_id,
                        code: ok,
                        properties: properties
                            .iter()
                            .map(|(k, v)| (k.to_string(), v.to_string()))
                            .collect(),
                    }))
                }
                Frame::SaslHandshake(f) => {
                    send(Frame::SaslHandshakeResponse(SaslHandshakeResponse {
                        correlation_id: f.correlation_id,
                        code: ok,
                        mechanisms: vec!["PLAIN".into()],
                    }))
                }
                Frame::SaslAuthenticate(f) => {
                    send(Frame::SaslAuthenticateResponse(SaslAuthenticateResponse {
                        correlation_id: f.correlation_id,
                        code: ok,
                        challenge: None,
                    }));
                    send(Frame::Tune(Tune {
                        frame_max: 1_048_576,
                        heartbeat: 0,
                    }));
                }
                Frame::Open(f) => send(Frame::OpenResponse(OpenResponse {
                    correlation_id: f.correlation_id,
                    code: ok,
                    properties: vec![
                        ("advertised_host".into(), "127.0.0.1".into()),
                        ("advertised_port".into(), port.to_string()),
                    ],
                })),
                Frame::Metadata(f) => send(Frame::MetadataResponse(MetadataResponse {
                    correlation_id: f.correlation_id,
                    brokers: vec![Broker {
                        reference: 0,
                        host: "127.0.0.1".into(),
                        port: u32::from(port),
                    }],
                    streams: f
                        .streams
                        .into_iter()
                        .map(|stream| StreamMetadata {
                            stream,
                            code: ok,
                            leader: Some(0),
                            replicas: vec![],
                        })
                        .collect(),
                })),
                Frame::Close(f) => {
                    send(Frame::CloseResponse(CodeResponse {
                        correlation_id: f.correlation_id,
                        code: ok,
                    }));
                    closing = true;
                }
                other => on_frame(other, &mut send),
            }
        }
        if !out.is_empty() && sock.write_all(&out).await.is_err() || closing {
            return;
        }
        buf.reserve(64 * 1024);
        match sock.read_buf(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}
