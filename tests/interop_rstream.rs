//! Interoperability with the Python client rstream (PyPI, 1.1.1 as installed by
//! `scripts/install-deps` in `${RMQS_STATE:-~/.rmqstream}/venv`) through the real broker of
//! `scripts/broker` (`RMQS_TEST_URI`, default `rabbitmq-stream://guest:guest@localhost:5552/%2f`).
//!
//! * `rstream_publishes_rmqstream_reads`: `tests/interop/rstream_publish.py` publishes AMQP
//!   messages (every property, application properties of many types, annotations, footer,
//!   bodies up to 70 kB; plain and in `none`/`gzip` sub-entry batches); rmqstream reads the
//!   stream and every record must equal, byte for byte and field by field through
//!   [`MessageView`], what the script's manifest says it sent.
//! * `rmqstream_publishes_rstream_reads`: the async core's [`Producer`] publishes messages
//!   built with our [`Message`] encoder as they are (`BodyFormat::Raw`; one of them not AMQP)
//!   and plain bodies it wraps itself (`BodyFormat::AmqpData`: empty, 300 bytes, 70 kB);
//!   `tests/interop/rstream_consume.py` reads them with rstream's `amqp_decoder`. rstream must
//!   receive exactly our bytes (for the wrapped bodies: what our encoder writes for
//!   `Message::new(body)`) and decode every header, property, annotation, application
//!   property and body (data, amqp-value, amqp-sequence) to what we encoded.
//! * `rmqstream_sub_entries_rstream_reads`: one sub-entry batch per codec, compressed by our
//!   codec and published with [`PublishFrameWriter`] over a data connection of the async core
//!   (the producer has no sub-entry batching yet); rstream must deliver the records of the
//!   codecs it has (1.1.1: `none` and `gzip`) exactly, and drop — logging the error — the
//!   chunks of the others (snappy, lz4, zstd). rmqstream reads all of them back, with the
//!   consumer and with the codec.
//!
//! rmqstream reads twice: with the async core's [`Consumer`] (each record through
//! `ConsumerRecord::amqp`, a [`MessageView`]), and with the codec driven by hand over a data
//! connection of the async core (Subscribe, Deliver → [`ChunkDecoder`], Credit), which also
//! tells which entry and codec each record came from.
//!
//! Python: `RMQS_PYTHON` if set (it must exist and have rstream), else the venv's
//! `bin/python`. When neither is there the tests print a notice and pass without running
//! (`scripts/install-deps` creates the venv; CI always has it).

mod support;

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::runtime::Runtime;
use tokio::sync::mpsc;

use rmqstream::client::{
    ClientError, Confirm, ConfirmStatus, Connection, ConnectionConfig, Consumer, ConsumerConfig,
    ConsumerEvents, DeliveredChunk, Environment, OutgoingMessage, Producer, ProducerConfig,
    ProducerEvents, PublisherListener, Role, SubscriptionListener,
};
use rmqstream::protocol::amqp::{Body, BodyView, Header, Message, MessageView, Properties, Value};
use rmqstream::protocol::chunk::{Chunk, ChunkDecoder, SubEntry, encode_sub_entry};
use rmqstream::protocol::codes::{OffsetSpec, ResponseCode};
use rmqstream::protocol::commands::{
    DeletePublisher, Deliver, Frame, PublishFrameWriter, PublishVersion, PublishingError,
};
use rmqstream::protocol::compression::Compression;
use support::client::{
    credit_one, declare_publisher, expect_ok, runtime, subscribe_first, unsubscribe,
};
use support::interop::{python, run_script};
use support::mini_json::{Json, hex, unhex};
use support::{unique, uri};

/// How long to wait for confirms or deliveries on our side.
const WAIT: Duration = Duration::from_secs(30);

// ------------------------------------------------------------------------------------------
// Harness: the Python interpreter, the scripts, the broker, a stream per test.

/// Runs `f` with a fresh stream that is deleted afterwards, whatever happens in `f`.
fn with_stream(prefix: &str, f: impl FnOnce(&Runtime, &Environment, &str)) {
    let rt = runtime(2);
    let mut cfg = ConnectionConfig::default();
    cfg.apply_uri(&uri()).unwrap();
    cfg.connection_name = format!("rmqstream interop_rstream {prefix}");
    let env = rt
        .block_on(Environment::connect(cfg))
        .unwrap_or_else(|e| panic!("cannot connect to {} (scripts/broker start?): {e}", uri()));
    let stream = unique(&format!("rmqs-interop-{prefix}"));
    assert!(
        rt.block_on(env.create_stream(&stream, &[])).unwrap(),
        "{stream} existed already"
    );
    let result = catch_unwind(AssertUnwindSafe(|| f(&rt, &env, &stream)));
    let deleted = rt.block_on(env.delete_stream(&stream));
    rt.block_on(env.close());
    if let Err(panic) = result {
        resume_unwind(panic);
    }
    deleted.unwrap_or_else(|e| panic!("cannot delete {stream}: {e}"));
}

// ------------------------------------------------------------------------------------------
// rmqstream side, with the codec over the async core's connection.

/// One record as read back.
#[derive(Debug, Clone, PartialEq)]
struct ReadRecord {
    offset: u64,
    body: Vec<u8>,
    compression: Compression,
    in_sub_entry: bool,
}

enum SubEvent {
    Deliver(Deliver),
    Gone(String),
}

struct DeliverSink(mpsc::UnboundedSender<SubEvent>);

impl SubscriptionListener for DeliverSink {
    fn deliver(&self, deliver: Deliver) {
        let _ = self.0.send(SubEvent::Deliver(deliver));
    }
    fn credit_error(&self, code: ResponseCode) {
        let _ = self.0.send(SubEvent::Gone(format!("credit error {code}")));
    }
    fn consumer_update(&self, _correlation_id: u32, _active: bool) {}
    fn stream_unavailable(&self, code: ResponseCode) {
        let _ = self
            .0
            .send(SubEvent::Gone(format!("stream unavailable: {code}")));
    }
    fn connection_closed(&self, reason: &ClientError) {
        let _ = self
            .0
            .send(SubEvent::Gone(format!("connection closed: {reason}")));
    }
}

/// Reads the stream from its first offset until `count` records arrived: every chunk's CRC is
/// checked and its records decoded by [`ChunkDecoder`] (sub-entries decompressed).
async fn read_records(env: &Environment, stream: &str, count: usize) -> Vec<ReadRecord> {
    let conn: Connection = env.data_connection(stream, Role::Consumer).await.unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let id = subscribe_first(&conn, stream, Arc::new(DeliverSink(tx)), 5).await;
    let mut decoder = ChunkDecoder::new();
    let mut out = Vec::new();
    let mut chunks = 0u64;
    let deadline = tokio::time::Instant::now() + WAIT;
    while out.len() < count {
        let event = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "codec reader on {stream}: {} of {count} records in {chunks} chunks after \
                     {WAIT:?} (last offset {:?})",
                    out.len(),
                    out.last().map(|r: &ReadRecord| r.offset)
                )
            })
            .expect("subscription listener dropped");
        let deliver = match event {
            SubEvent::Deliver(d) => d,
            SubEvent::Gone(why) => panic!("subscription ended: {why}"),
        };
        chunks += 1;
        let chunk = Chunk::parse(deliver.chunk).expect("chunk");
        chunk.verify_crc().expect("chunk CRC");
        decoder
            .for_each_record(&chunk, |r| {
                out.push(ReadRecord {
                    offset: r.offset,
                    body: r.body.to_vec(),
                    compression: r.compression,
                    in_sub_entry: r.in_sub_entry,
                })
            })
            .expect("records");
        credit_one(&conn, id);
    }
    expect_ok("unsubscribe", &unsubscribe(&conn, id).await.unwrap());
    out
}

enum ConsumerEvent {
    Chunk(Box<DeliveredChunk>),
    Error(String),
    Closed(String),
}

struct ChunkSink(mpsc::UnboundedSender<ConsumerEvent>);

impl ConsumerEvents for ChunkSink {
    fn chunk(&self, chunk: DeliveredChunk) {
        let _ = self.0.send(ConsumerEvent::Chunk(Box::new(chunk)));
    }
    fn error(&self, error: &ClientError) {
        let _ = self.0.send(ConsumerEvent::Error(error.to_string()));
    }
    fn closed(&self, reason: &ClientError) {
        let _ = self.0.send(ConsumerEvent::Closed(reason.to_string()));
    }
}

/// One record as the async core's [`Consumer`] delivers it.
#[derive(Debug, Clone, PartialEq)]
struct ConsumedRecord {
    offset: u64,
    body: Vec<u8>,
}

/// Reads the stream from its first offset with the async core's [`Consumer`] (CRC checked,
/// credit on release) until `count` records arrived. Each record's [`ConsumerRecord::amqp`]
/// view must agree with parsing its body ourselves.
///
/// [`ConsumerRecord::amqp`]: rmqstream::client::ConsumerRecord::amqp
async fn consume_records(env: &Environment, stream: &str, count: usize) -> Vec<ConsumedRecord> {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let config = ConsumerConfig {
        offset: OffsetSpec::First,
        initial_credit: 2,
        ..ConsumerConfig::default()
    };
    let consumer = Consumer::new(env, stream, config, Arc::new(ChunkSink(tx)))
        .await
        .unwrap();
    let mut out = Vec::new();
    let mut chunks = 0u64;
    let deadline = tokio::time::Instant::now() + WAIT;
    while out.len() < count {
        let event = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "consumer on {stream}: {} of {count} records after {WAIT:?}; {:?}, last \
                     delivered offset {:?}, open {}",
                    out.len(),
                    consumer.stats(),
                    consumer.last_delivered_offset(),
                    consumer.is_open()
                )
            })
            .expect("consumer events dropped");
        let chunk = match event {
            ConsumerEvent::Chunk(c) => c,
            ConsumerEvent::Error(e) => panic!("consumer error: {e}"),
            ConsumerEvent::Closed(why) => panic!("consumer closed: {why}"),
        };
        chunks += 1;
        assert_eq!(chunk.stream(), stream);
        assert_eq!(chunk.records().len(), chunk.len());
        for r in chunk.records() {
            assert_eq!(
                r.amqp(),
                MessageView::parse(r.body).ok(),
                "offset {}: the consumer's AMQP view",
                r.offset
            );
            out.push(ConsumedRecord {
                offset: r.offset,
                body: r.body.to_vec(),
            });
        }
        // Dropping the chunk gives its credit back (CreditPolicy::OnRelease).
    }
    let stats = consumer.stats();
    assert_eq!(
        (stats.chunks, stats.messages),
        (chunks, out.len() as u64),
        "consumer stats"
    );
    assert_eq!(
        consumer.last_delivered_offset(),
        out.last().map(|r| r.offset)
    );
    consumer.close().await.unwrap();
    out
}

/// What one publishing id carries.
#[derive(Debug, Clone)]
enum Entry {
    Simple(Bytes),
    SubEntry(Compression, Vec<Bytes>),
}

enum PubEvent {
    Confirmed(Vec<u64>),
    Errored(Vec<PublishingError>),
    Gone(String),
}

struct ConfirmSink(mpsc::UnboundedSender<PubEvent>);

impl PublisherListener for ConfirmSink {
    fn confirmed(&self, publishing_ids: &[u64]) {
        let _ = self.0.send(PubEvent::Confirmed(publishing_ids.to_vec()));
    }
    fn errored(&self, errors: &[PublishingError]) {
        let _ = self.0.send(PubEvent::Errored(errors.to_vec()));
    }
    fn stream_unavailable(&self, code: ResponseCode) {
        let _ = self
            .0
            .send(PubEvent::Gone(format!("stream unavailable: {code}")));
    }
    fn connection_closed(&self, reason: &ClientError) {
        let _ = self
            .0
            .send(PubEvent::Gone(format!("connection closed: {reason}")));
    }
}

/// Publishes each element of `frames` as one Publish frame (v1, publishing ids from 1) and
/// waits for all its confirms before sending the next, so each frame lands in chunks of its
/// own.
async fn publish_frames(env: &Environment, stream: &str, frames: &[Vec<Entry>]) {
    let conn = env.data_connection(stream, Role::Leader).await.unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let id = declare_publisher(&conn, stream, Arc::new(ConfirmSink(tx))).await;
    let frame_max = conn.info().frame_max as usize;
    let mut next_id = 1u64;
    for (n, entries) in frames.iter().enumerate() {
        let mut buf = BytesMut::new();
        let mut w = PublishFrameWriter::begin(&mut buf, id, PublishVersion::V1);
        let mut pending = BTreeSet::new();
        for e in entries {
            match e {
                Entry::Simple(body) => w.push_simple(&mut buf, next_id, body).unwrap(),
                Entry::SubEntry(codec, bodies) => {
                    let mut encoded = BytesMut::new();
                    let info = encode_sub_entry(*codec, bodies, &mut encoded).unwrap();
                    let (sub, used) = SubEntry::parse(&encoded).unwrap();
                    assert_eq!(
                        (used, sub.num_records),
                        (info.encoded_len, bodies.len() as u16)
                    );
                    w.push_sub_entry(
                        &mut buf,
                        next_id,
                        codec.code(),
                        sub.num_records,
                        sub.uncompressed_size,
                        sub.data,
                    )
                    .unwrap();
                }
            }
            pending.insert(next_id);
            next_id += 1;
        }
        w.finish(&mut buf).unwrap();
        assert!(
            frame_max == 0 || buf.len() <= frame_max,
            "frame {n}: {} bytes > frame_max {frame_max}",
            buf.len()
        );
        conn.send_bytes(buf.freeze()).unwrap();
        let deadline = tokio::time::Instant::now() + WAIT;
        while !pending.is_empty() {
            let event = tokio::time::timeout_at(deadline, rx.recv())
                .await
                .unwrap_or_else(|_| panic!("frame {n}: unconfirmed after {WAIT:?}: {pending:?}"))
                .expect("publisher listener dropped");
            match event {
                PubEvent::Confirmed(ids) => ids.iter().for_each(|i| {
                    pending.remove(i);
                }),
                PubEvent::Errored(errors) => panic!("frame {n}: publish errors {errors:?}"),
                PubEvent::Gone(why) => panic!("frame {n}: publisher gone: {why}"),
            }
        }
    }
    let r = conn
        .request("delete publisher", |correlation_id| {
            Frame::DeletePublisher(DeletePublisher {
                correlation_id,
                publisher_id: id,
            })
        })
        .await
        .unwrap();
    expect_ok("delete publisher", &r);
    conn.unregister_publisher(id);
}

/// Publishes `msgs` in order with the async core's [`Producer`] (the first few with `send`,
/// the rest with one `send_batch`, frames of at most 7 messages), then waits until every one
/// is confirmed. Each message's tag must be its index.
fn produce(rt: &Runtime, env: &Environment, stream: &str, msgs: &[OutgoingMessage<'_>]) {
    let confirms = Arc::new(Mutex::new(Vec::new()));
    let sink = confirms.clone();
    let events: Arc<dyn ProducerEvents> = Arc::new(move |batch: &[Confirm]| {
        sink.lock().unwrap().extend_from_slice(batch);
    });
    let config = ProducerConfig {
        batch_size: 7,
        ..ProducerConfig::default()
    };
    let producer = rt
        .block_on(Producer::new(env, stream, config, events))
        .unwrap();
    let (first, rest) = msgs.split_at(msgs.len().min(5));
    for m in first {
        producer.send(m, None).unwrap();
    }
    assert_eq!(producer.send_batch(rest, None).unwrap(), rest.len());
    producer.flush(WAIT).unwrap();
    let n = msgs.len() as u64;
    let stats = producer.stats();
    assert_eq!(
        (
            stats.published,
            stats.confirmed,
            stats.errored,
            stats.in_flight
        ),
        (n, n, 0, 0),
        "producer stats"
    );
    assert_eq!(producer.last_publishing_id(), Some(n - 1));
    rt.block_on(producer.close(WAIT)).unwrap();
    let mut confirms = confirms.lock().unwrap().clone();
    confirms.sort_by_key(|c| c.tag);
    assert_eq!(confirms.len(), msgs.len(), "one confirm per message");
    for (i, c) in confirms.iter().enumerate() {
        assert_eq!(
            (c.tag, c.publishing_id, c.status),
            (i, i as u64, ConfirmStatus::Confirmed),
            "confirm of message {i}"
        );
    }
}

// ------------------------------------------------------------------------------------------
// The manifest of rstream_publish.py, as rmqstream values.

/// A manifest typed value `{"type": ..., "value": ...}` as the [`Value`] it was encoded as.
fn typed_value(tv: &Json) -> Value<'static> {
    let t = tv.get("type").str("type");
    let v = tv.get("value");
    let int = |what: &str| v.int(what);
    let bits = |n: usize| -> Vec<u8> {
        let b = unhex(v.str(t)).unwrap();
        assert_eq!(b.len(), n, "{t} bits");
        b
    };
    match t {
        "null" => Value::Null,
        "boolean" => Value::Bool(v.bool(t)),
        "ubyte" => Value::Ubyte(int(t).try_into().unwrap()),
        "byte" => Value::Byte(int(t).try_into().unwrap()),
        "ushort" => Value::Ushort(int(t).try_into().unwrap()),
        "short" => Value::Short(int(t).try_into().unwrap()),
        "uint" => Value::Uint(int(t).try_into().unwrap()),
        "int" => Value::Int(int(t).try_into().unwrap()),
        "ulong" => Value::Ulong(int(t).try_into().unwrap()),
        "long" => Value::Long(int(t).try_into().unwrap()),
        "timestamp" => Value::Timestamp(int(t).try_into().unwrap()),
        "float" => Value::Float(f32::from_be_bytes(bits(4).try_into().unwrap())),
        "double" => Value::Double(f64::from_be_bytes(bits(8).try_into().unwrap())),
        "uuid" => Value::Uuid(bits(16).try_into().unwrap()),
        "binary" => Value::Binary(Cow::Owned(unhex(v.str(t)).unwrap())),
        "string" => Value::String(Cow::Owned(v.str(t).to_string())),
        "symbol" => Value::Symbol(Cow::Owned(v.str(t).to_string())),
        other => panic!("manifest type {other:?} unknown"),
    }
}

fn header_of(m: &Json) -> Option<Header> {
    if m.is_null() {
        return None;
    }
    let f = |k: &str| (m.has(k)).then(|| typed_value(m.get(k)));
    let b = |k: &str| f(k).map(|v| v.as_bool().expect(k));
    let u32_of = |k: &str| {
        f(k).map(|v| match v {
            Value::Uint(n) => n,
            other => panic!("{k}: {other:?}"),
        })
    };
    Some(Header {
        durable: b("durable"),
        priority: f("priority").map(|v| match v {
            Value::Ubyte(n) => n,
            other => panic!("priority: {other:?}"),
        }),
        ttl: u32_of("ttl"),
        first_acquirer: b("first_acquirer"),
        delivery_count: u32_of("delivery_count"),
    })
}

fn properties_of(m: &Json) -> Option<Properties<'static>> {
    if m.is_null() {
        return None;
    }
    let f = |k: &str| (m.has(k)).then(|| typed_value(m.get(k)));
    let text = |k: &str| f(k).map(|v| Cow::Owned(v.as_str().expect(k).to_string()));
    let time = |k: &str| {
        f(k).map(|v| match v {
            Value::Timestamp(t) => t,
            other => panic!("{k}: {other:?}"),
        })
    };
    Some(Properties {
        message_id: f("message_id"),
        user_id: f("user_id").map(|v| Cow::Owned(v.as_binary().expect("user_id").to_vec())),
        to: text("to"),
        subject: text("subject"),
        reply_to: text("reply_to"),
        correlation_id: f("correlation_id"),
        content_type: text("content_type"),
        content_encoding: text("content_encoding"),
        absolute_expiry_time: time("absolute_expiry_time"),
        creation_time: time("creation_time"),
        group_id: text("group_id"),
        group_sequence: f("group_sequence").map(|v| match v {
            Value::Uint(n) => n,
            other => panic!("group_sequence: {other:?}"),
        }),
        reply_to_group_id: text("reply_to_group_id"),
    })
}

/// `[[key, typed value], ...]` as map entries whose keys are `key_type` values.
fn pairs_of(
    m: &Json,
    key: fn(String) -> Value<'static>,
) -> Option<Vec<(Value<'static>, Value<'static>)>> {
    m.as_array().map(|a| {
        a.iter()
            .map(|kv| {
                let kv = kv.array("pair");
                (key(kv[0].str("key").to_string()), typed_value(&kv[1]))
            })
            .collect()
    })
}

fn string_key(s: String) -> Value<'static> {
    Value::String(Cow::Owned(s))
}

fn symbol_key(s: String) -> Value<'static> {
    Value::Symbol(Cow::Owned(s))
}

/// Checks that a record read by the codec came from the kind of entry (simple, or sub-entry
/// batch of the codec) rstream published it in.
fn check_entry_kind(what: &str, rec: &ReadRecord, entry: &Json) {
    match entry.get("entry").str("entry") {
        "simple" => assert!(!rec.in_sub_entry, "{what}: in a sub-entry"),
        "sub-entry" => {
            assert!(rec.in_sub_entry, "{what}: not in a sub-entry");
            let codec = match entry.get("codec").str("codec") {
                "none" => Compression::None,
                "gzip" => Compression::Gzip,
                other => panic!("{what}: codec {other}"),
            };
            assert_eq!(rec.compression, codec, "{what}");
        }
        other => panic!("{what}: entry kind {other}"),
    }
}

/// Checks one record read by rmqstream against its manifest entry: the exact bytes rstream
/// encoded, then every section through [`MessageView`].
fn check_against_manifest(what: &str, body: &[u8], entry: &Json) {
    let encoded = unhex(entry.get("encoded_hex").str("encoded_hex")).unwrap();
    assert!(
        body == encoded,
        "{what}: record bytes differ from what rstream encoded:\n ours {}\n want {}",
        hex(body),
        hex(&encoded)
    );

    let view = MessageView::parse(body)
        .unwrap_or_else(|e| panic!("{what}: MessageView::parse failed: {e}"));
    assert_eq!(
        view.header().unwrap(),
        header_of(entry.get("header")),
        "{what}: header"
    );
    assert_eq!(
        view.properties().unwrap(),
        properties_of(entry.get("properties")),
        "{what}: properties"
    );
    let map = |m: Option<rmqstream::protocol::amqp::MapView<'_>>| {
        m.map(|m| {
            m.to_vec()
                .into_iter()
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect::<Vec<_>>()
        })
    };
    assert_eq!(
        map(view.application_properties()),
        pairs_of(entry.get("application_properties"), string_key),
        "{what}: application properties"
    );
    assert_eq!(
        map(view.message_annotations()),
        pairs_of(entry.get("message_annotations"), symbol_key),
        "{what}: message annotations"
    );
    assert_eq!(
        map(view.delivery_annotations()),
        pairs_of(entry.get("delivery_annotations"), symbol_key),
        "{what}: delivery annotations"
    );
    assert_eq!(
        map(view.footer()),
        pairs_of(entry.get("footer"), symbol_key),
        "{what}: footer"
    );
    let payload = unhex(entry.get("body_hex").str("body_hex")).unwrap();
    assert!(
        matches!(view.body(), BodyView::Data(s) if s.len() == 1),
        "{what}: body {:?}",
        view.body()
    );
    assert_eq!(view.body_bytes(), Some(&payload[..]), "{what}: body");
    // The owned decode agrees with the view.
    let m = Message::decode(body).unwrap();
    assert_eq!(
        m.body,
        Body::Data(vec![Cow::Owned(payload)]),
        "{what}: decoded body"
    );
}

// ------------------------------------------------------------------------------------------
// What rstream_consume.py reports, and what it should report for our messages.

/// A value as pyamqp decoded it (see rstream_consume.py): AMQP types collapse to Python's.
#[derive(Debug, Clone, PartialEq)]
enum Py {
    Null,
    Bool(bool),
    Int(i128),
    /// Bits of the Python float (a double).
    Float(u64),
    Bytes(Vec<u8>),
    Str(String),
    Uuid(Vec<u8>),
    List(Vec<Py>),
    Map(Vec<(Py, Py)>),
    Other(String),
}

impl Py {
    fn from_json(j: &Json) -> Py {
        let v = j.get("v");
        match j.get("t").str("t") {
            "null" => Py::Null,
            "bool" => Py::Bool(v.bool("bool")),
            "int" => Py::Int(v.int("int")),
            "float" => Py::Float(u64::from_str_radix(v.str("float"), 16).unwrap()),
            "bytes" => Py::Bytes(unhex(v.str("bytes")).unwrap()),
            "str" => Py::Str(v.str("str").to_string()),
            "uuid" => Py::Uuid(unhex(v.str("uuid")).unwrap()),
            "list" => Py::List(v.array("list").iter().map(Py::from_json).collect()),
            "map" => Py::Map(
                v.array("map")
                    .iter()
                    .map(|kv| {
                        let kv = kv.array("pair");
                        (Py::from_json(&kv[0]), Py::from_json(&kv[1]))
                    })
                    .collect(),
            ),
            _ => Py::Other(v.to_string()),
        }
    }

    /// What pyamqp makes of a value we encoded.
    fn of(v: &Value<'_>) -> Py {
        match v {
            Value::Null => Py::Null,
            Value::Bool(b) => Py::Bool(*b),
            Value::Ubyte(n) => Py::Int(i128::from(*n)),
            Value::Ushort(n) => Py::Int(i128::from(*n)),
            Value::Uint(n) => Py::Int(i128::from(*n)),
            Value::Ulong(n) => Py::Int(i128::from(*n)),
            Value::Byte(n) => Py::Int(i128::from(*n)),
            Value::Short(n) => Py::Int(i128::from(*n)),
            Value::Int(n) => Py::Int(i128::from(*n)),
            Value::Long(n) | Value::Timestamp(n) => Py::Int(i128::from(*n)),
            Value::Float(x) => Py::Float(f64::from(*x).to_bits()),
            Value::Double(x) => Py::Float(x.to_bits()),
            Value::Uuid(u) => Py::Uuid(u.to_vec()),
            Value::Binary(b) => Py::Bytes(b.to_vec()),
            Value::String(s) | Value::Symbol(s) => Py::Bytes(s.as_bytes().to_vec()),
            Value::List(l) | Value::Array(l) => Py::List(l.iter().map(Py::of).collect()),
            Value::Map(m) => Py::Map(m.iter().map(|(k, v)| (Py::of(k), Py::of(v))).collect()),
            other => panic!("pyamqp cannot decode {other:?}; do not send it"),
        }
    }

    fn opt<T>(v: Option<T>, f: impl FnOnce(T) -> Py) -> Py {
        v.map_or(Py::Null, f)
    }
}

fn py_text(s: &Option<Cow<'_, str>>) -> Py {
    Py::opt(s.as_ref(), |s| Py::Bytes(s.as_bytes().to_vec()))
}

fn py_int<T: Into<i128>>(n: Option<T>) -> Py {
    Py::opt(n, |n| Py::Int(n.into()))
}

/// One section of rstream_consume.py's description of a message.
struct PySection {
    name: &'static str,
    /// Header and properties: their fields (`None` when the section is absent).
    fields: Option<Vec<(String, Py)>>,
    /// The other sections: their value (`Py::Null` when absent).
    value: Py,
}

/// rstream_consume.py's description of a message, as expected for `m`.
fn expected_py_message(m: &Message<'_>) -> Vec<PySection> {
    let header = m.header.map(|h| {
        vec![
            ("durable".to_string(), Py::opt(h.durable, Py::Bool)),
            ("priority".to_string(), py_int(h.priority)),
            ("ttl".to_string(), py_int(h.ttl)),
            (
                "first_acquirer".to_string(),
                Py::opt(h.first_acquirer, Py::Bool),
            ),
            ("delivery_count".to_string(), py_int(h.delivery_count)),
        ]
    });
    let properties = m.properties.as_ref().map(|p| {
        let id = |v: &Option<Value<'_>>| Py::opt(v.as_ref(), Py::of);
        vec![
            ("message_id".to_string(), id(&p.message_id)),
            (
                "user_id".to_string(),
                Py::opt(p.user_id.as_ref(), |b| Py::Bytes(b.to_vec())),
            ),
            ("to".to_string(), py_text(&p.to)),
            ("subject".to_string(), py_text(&p.subject)),
            ("reply_to".to_string(), py_text(&p.reply_to)),
            ("correlation_id".to_string(), id(&p.correlation_id)),
            ("content_type".to_string(), py_text(&p.content_type)),
            ("content_encoding".to_string(), py_text(&p.content_encoding)),
            (
                "absolute_expiry_time".to_string(),
                py_int(p.absolute_expiry_time),
            ),
            ("creation_time".to_string(), py_int(p.creation_time)),
            ("group_id".to_string(), py_text(&p.group_id)),
            ("group_sequence".to_string(), py_int(p.group_sequence)),
            (
                "reply_to_group_id".to_string(),
                py_text(&p.reply_to_group_id),
            ),
        ]
    });
    let ann = |a: &Option<Vec<(Value<'_>, Value<'_>)>>| {
        Py::opt(a.as_ref(), |a| {
            Py::Map(a.iter().map(|(k, v)| (Py::of(k), Py::of(v))).collect())
        })
    };
    let app = Py::opt(m.application_properties.as_ref(), |a| {
        Py::Map(
            a.iter()
                .map(|(k, v)| (Py::Bytes(k.as_bytes().to_vec()), Py::of(v)))
                .collect(),
        )
    });
    let (body, sequence, value) = match &m.body {
        // pyamqp keeps the last data section only; we send one.
        Body::Data(d) => (
            Py::opt(d.last(), |b| Py::Bytes(b.to_vec())),
            Py::Null,
            Py::Null,
        ),
        Body::Sequence(s) => (
            Py::Null,
            Py::List(
                s.iter()
                    .map(|l| Py::List(l.iter().map(Py::of).collect()))
                    .collect(),
            ),
            Py::Null,
        ),
        Body::Value(v) => (Py::Null, Py::Null, Py::of(v)),
    };
    let section = |name, fields, value| PySection {
        name,
        fields,
        value,
    };
    vec![
        section("header", header, Py::Null),
        section("properties", properties, Py::Null),
        section("application_properties", None, app),
        section("message_annotations", None, ann(&m.message_annotations)),
        section("delivery_annotations", None, ann(&m.delivery_annotations)),
        section("footer", None, ann(&m.footer)),
        section("body", None, body),
        section("sequence", None, sequence),
        section("value", None, value),
    ]
}

/// Checks rstream's decoding of one message (the `amqp` object of the report) against `m`.
fn check_py_message(what: &str, got: &Json, m: &Message<'_>) {
    for PySection {
        name: section,
        fields,
        value,
    } in expected_py_message(m)
    {
        let g = got.get(section);
        match (section, fields) {
            ("header" | "properties", None) => {
                assert!(
                    g.is_null(),
                    "{what}: {section} should be absent, rstream has {g}"
                )
            }
            ("header" | "properties", Some(fields)) => {
                assert!(!g.is_null(), "{what}: rstream has no {section}");
                for (name, want) in fields {
                    let have = Py::from_json(g.get(&name));
                    assert_eq!(have, want, "{what}: {section}.{name}");
                }
            }
            _ => {
                let have = if g.is_null() {
                    Py::Null
                } else {
                    Py::from_json(g)
                };
                assert_eq!(have, value, "{what}: {section}");
            }
        }
    }
}

// ------------------------------------------------------------------------------------------
// Our messages.

fn uuid(i: u64) -> [u8; 16] {
    let mut u = [0u8; 16];
    u[..8].copy_from_slice(&0xfeed_beef_0000_0000u64.to_be_bytes());
    u[8..].copy_from_slice(&(i * 0x0101_0101).to_be_bytes());
    u
}

/// Message `i` of rmqstream_publishes_rstream_reads, built with our encoder. Only types
/// pyamqp can decode (no char, no decimals).
fn our_message(i: u64) -> Message<'static> {
    let body: Vec<u8> = match i {
        3 => (0..100_000u32).map(|k| (k % 251) as u8).collect(),
        4 => Vec::new(),
        _ => format!("rmqstream body {i} ✓").into_bytes(),
    };
    let mut m = match i % 8 {
        6 => Message::with_value(Value::String(Cow::Owned(format!("amqp-value body {i}")))),
        7 => Message {
            body: Body::Sequence(vec![vec![
                Value::Int(i as i32),
                Value::String(Cow::Borrowed("in a sequence")),
                Value::Binary(Cow::Owned(vec![1, 2, 3])),
            ]]),
            ..Message::default()
        },
        _ => Message::new(body),
    };
    let id = |k: u64, salt: &str| match k % 4 {
        0 => Value::String(Cow::Owned(format!("{salt}-{i}-ünï"))),
        1 => Value::Ulong(u64::MAX - i),
        2 => Value::Uuid(uuid(i)),
        _ => Value::Binary(Cow::Owned(vec![0, 0xff, i as u8])),
    };
    if i % 5 != 4 {
        let mut p = Properties {
            message_id: Some(id(i, "id")),
            correlation_id: Some(id(i + 1, "corr")),
            content_type: Some(Cow::Borrowed("application/json")),
            subject: Some(Cow::Owned(format!("subject {i} ✓"))),
            creation_time: Some(1_700_000_000_000 + i as i64),
            ..Properties::default()
        };
        if i % 2 == 0 {
            p.user_id = Some(Cow::Borrowed(b"guest"));
            p.to = Some(Cow::Borrowed("/exchanges/amq.topic"));
            p.reply_to = Some(Cow::Borrowed("reply"));
            p.content_encoding = Some(Cow::Borrowed("gzip"));
            p.absolute_expiry_time = Some(1_900_000_000_000);
            p.group_id = Some(Cow::Borrowed("g"));
            p.group_sequence = Some(u32::MAX - i as u32);
            p.reply_to_group_id = Some(Cow::Borrowed("rg"));
        }
        m = m.properties(p);
    }
    if i % 3 == 0 {
        m = m.header(Header {
            durable: Some(true),
            priority: Some((i % 10) as u8),
            ttl: (i % 2 == 0).then_some(30_000),
            first_acquirer: Some(false),
            delivery_count: Some(i as u32),
        });
    }
    if i % 4 != 3 {
        m = m
            .application_property("string", format!("value {i} ✓"))
            .application_property("symbol", Value::Symbol(Cow::Borrowed("sym")))
            .application_property("bool", i % 2 == 1)
            .application_property("ubyte", Value::Ubyte(250))
            .application_property("byte", Value::Byte(-120))
            .application_property("ushort", Value::Ushort(65_535))
            .application_property("short", Value::Short(-32_768))
            .application_property("uint", Value::Uint(u32::MAX - i as u32))
            .application_property("int", Value::Int(-(i as i32) * 1000))
            .application_property("ulong", Value::Ulong(u64::MAX))
            .application_property("long", Value::Long(i64::MIN + i as i64))
            .application_property("small ulong", Value::Ulong(i))
            .application_property("float", Value::Float(0.1 + i as f32))
            .application_property("double", Value::Double(-1.0e300 / (i + 1) as f64))
            .application_property("timestamp", Value::Timestamp(1_600_000_000_000 + i as i64))
            .application_property("uuid", Value::Uuid(uuid(i + 7)))
            .application_property("binary", Value::Binary(Cow::Owned(vec![0, 1, 0xfe, 0xff])))
            .application_property("null", Value::Null)
            .application_property("str32", "y".repeat(300 + i as usize));
    }
    if i % 3 == 1 {
        m = m
            .message_annotation("x-opt-rmqs-index", Value::Long(i as i64))
            .message_annotation("x-opt-rmqs-origin", "rmqstream");
    }
    if i == 5 {
        m.delivery_annotations = Some(vec![(
            Value::Symbol(Cow::Borrowed("x-opt-da")),
            Value::Int(5),
        )]);
        m.footer = Some(vec![(
            Value::Symbol(Cow::Borrowed("x-opt-footer")),
            Value::String(Cow::Borrowed("end")),
        )]);
    }
    m
}

/// Index of the one non-AMQP body among our messages.
const RAW_INDEX: u64 = 9;

fn raw_body(i: u64) -> Bytes {
    Bytes::from(format!("\u{1}not AMQP: raw bytes #{i}").into_bytes())
}

// ------------------------------------------------------------------------------------------
// The tests.

#[test]
fn rstream_publishes_rmqstream_reads() {
    let Some(py) = python() else { return };
    with_stream("rstream-pub", |rt, env, stream| {
        const SIMPLE: usize = 24;
        const PER_BATCH: usize = 5;
        let manifest = run_script(
            &py,
            "rstream_publish.py",
            &[
                format!("--uri={}", uri()),
                format!("--stream={stream}"),
                format!("--count={SIMPLE}"),
                "--sub-entry=none,gzip".into(),
                format!("--sub-entry-size={PER_BATCH}"),
            ],
        );
        let entries = manifest.get("messages").array("messages");
        let total = SIMPLE + 2 * PER_BATCH;
        assert_eq!(entries.len(), total);
        assert_eq!(
            manifest.get("confirmed").int("confirmed"),
            (SIMPLE + 2) as i128
        );
        println!(
            "rstream {} published {total} messages",
            manifest.get("rstream_version")
        );

        // The async core's consumer.
        let consumed = rt.block_on(consume_records(env, stream, total));
        assert_eq!(
            consumed.len(),
            total,
            "the stream holds what rstream published"
        );
        for (k, (rec, entry)) in consumed.iter().zip(entries).enumerate() {
            assert_eq!(rec.offset, k as u64, "offsets are dense from 0");
            check_against_manifest(&format!("consumer, offset {k}"), &rec.body, entry);
        }
        // The codec alone over a connection: also where each record came from.
        let records = rt.block_on(read_records(env, stream, total));
        assert_eq!(
            records.len(),
            total,
            "the stream holds what rstream published"
        );
        for (k, (rec, entry)) in records.iter().zip(entries).enumerate() {
            let what = format!("codec, offset {k}");
            assert_eq!(rec.offset, k as u64, "offsets are dense from 0");
            check_entry_kind(&what, rec, entry);
            check_against_manifest(&what, &rec.body, entry);
        }
        let gzip = records
            .iter()
            .filter(|r| r.compression == Compression::Gzip)
            .count();
        assert_eq!(gzip, PER_BATCH, "records of rstream's gzip batch");
    });
}

#[test]
fn rmqstream_publishes_rstream_reads() {
    let Some(py) = python() else { return };
    with_stream("rmqs-pub", |rt, env, stream| {
        // Built by our encoder, published as they are (BodyFormat::Raw); one is not AMQP.
        const N: u64 = 16;
        let messages: Vec<Message<'static>> = (0..N).map(our_message).collect();
        let mut stored: Vec<Bytes> = (0..N)
            .map(|i| {
                if i == RAW_INDEX {
                    raw_body(i)
                } else {
                    messages[i as usize].to_bytes().unwrap()
                }
            })
            .collect();
        let mut expected: Vec<Option<Message<'static>>> = (0..N)
            .map(|i| (i != RAW_INDEX).then(|| messages[i as usize].clone()))
            .collect();
        // Plain bodies the producer wraps in a data section itself (BodyFormat::AmqpData):
        // stored as our encoder writes `Message::new(body)`.
        let plain: Vec<Vec<u8>> = vec![
            "plain body, wrapped by the producer ✓".as_bytes().to_vec(),
            Vec::new(),
            (0..300u32).map(|k| k as u8).collect(),
            (0..70_000u32).map(|k| (k * 7 % 256) as u8).collect(),
        ];
        for body in &plain {
            let m = Message::new(body.clone());
            stored.push(m.to_bytes().unwrap());
            expected.push(Some(m));
        }
        let outgoing: Vec<OutgoingMessage<'_>> = stored[..N as usize]
            .iter()
            .map(|b| OutgoingMessage::raw(b))
            .chain(plain.iter().map(|b| OutgoingMessage::new(b)))
            .enumerate()
            .map(|(i, m)| m.tag(i))
            .collect();
        produce(rt, env, stream, &outgoing);

        let total = stored.len();
        let report = run_script(
            &py,
            "rstream_consume.py",
            &[
                format!("--uri={}", uri()),
                format!("--stream={stream}"),
                format!("--count={total}"),
                "--decoder=amqp".into(),
                "--timeout=30".into(),
            ],
        );
        assert!(
            !report.get("timed_out").bool("timed_out"),
            "rstream timed out"
        );
        assert_eq!(
            report.get("handler_errors").array("handler_errors"),
            &[] as &[Json],
            "rstream logged errors"
        );
        let got = report.get("messages").array("messages");
        assert_eq!(got.len(), total);
        for (i, g) in got.iter().enumerate() {
            let what = format!("message {i}");
            assert_eq!(g.get("offset").int("offset"), i as i128, "{what}: offset");
            assert_eq!(
                g.get("raw_hex").str("raw_hex"),
                hex(&stored[i]),
                "{what}: rstream received other bytes than we published"
            );
            let Some(m) = &expected[i] else {
                continue; // not AMQP: what pyamqp makes of it is not specified
            };
            assert!(
                g.get("amqp_error").is_null(),
                "{what}: rstream's amqp_decoder failed: {}",
                g.get("amqp_error")
            );
            check_py_message(&what, g.get("amqp"), m);
        }
    });
}

#[test]
fn rmqstream_sub_entries_rstream_reads() {
    let Some(py) = python() else { return };
    with_stream("rmqs-sub", |rt, env, stream| {
        const PER_BATCH: usize = 7;
        let codecs = Compression::ALL;
        let batch = |c: Compression| -> Vec<Bytes> {
            (0..PER_BATCH)
                .map(|k| {
                    Message::new(
                        format!("{} record {k}: {}", c.name(), "z".repeat(200)).into_bytes(),
                    )
                    .application_property("codec", c.name())
                    .application_property("k", k as i32)
                    .to_bytes()
                    .unwrap()
                })
                .collect()
        };
        let batches: Vec<(Compression, Vec<Bytes>)> =
            codecs.iter().map(|&c| (c, batch(c))).collect();
        let sentinel = Bytes::from(format!("\u{1}sentinel of {stream}").into_bytes());
        let mut frames: Vec<Vec<Entry>> = batches
            .iter()
            .map(|(c, b)| vec![Entry::SubEntry(*c, b.clone())])
            .collect();
        frames.push(vec![Entry::Simple(sentinel.clone())]);
        rt.block_on(publish_frames(env, stream, &frames));

        // rmqstream reads every batch back.
        let total = codecs.len() * PER_BATCH + 1;
        let records = rt.block_on(read_records(env, stream, total));
        assert_eq!(records.len(), total);
        let mut offset = 0;
        for (c, bodies) in &batches {
            for b in bodies {
                let r = &records[offset];
                assert_eq!(
                    (r.offset, &r.body[..], r.compression, r.in_sub_entry),
                    (offset as u64, &b[..], *c, true)
                );
                offset += 1;
            }
        }
        assert_eq!(records[offset].body, sentinel);
        // So does the async core's consumer.
        let consumed = rt.block_on(consume_records(env, stream, total));
        let want: Vec<ConsumedRecord> = records
            .iter()
            .map(|r| ConsumedRecord {
                offset: r.offset,
                body: r.body.clone(),
            })
            .collect();
        assert!(
            consumed == want,
            "the consumer reads the batches as the codec does"
        );

        // rstream reads what its codecs allow.
        let report = run_script(
            &py,
            "rstream_consume.py",
            &[
                format!("--uri={}", uri()),
                format!("--stream={stream}"),
                format!("--stop-at-hex={}", hex(&sentinel)),
                "--decoder=raw".into(),
                "--timeout=30".into(),
            ],
        );
        let version = report.get("rstream_version").str("version").to_string();
        let supported: Vec<&str> = report
            .get("supported_codecs")
            .array("supported_codecs")
            .iter()
            .map(|c| c.str("codec"))
            .collect();
        println!("rstream {version} has the sub-entry codecs {supported:?}");
        assert_eq!(
            supported,
            ["none", "gzip"],
            "rstream {version}'s codecs changed: update this test"
        );
        assert!(
            !report.get("timed_out").bool("timed_out"),
            "rstream never saw the sentinel"
        );

        let mut want = Vec::new();
        let mut offset = 0u64;
        for (c, bodies) in &batches {
            for b in bodies {
                if supported.contains(&c.name()) {
                    want.push((offset as i128, hex(b)));
                }
                offset += 1;
            }
        }
        want.push((offset as i128, hex(&sentinel)));
        let got: Vec<(i128, String)> = report
            .get("messages")
            .array("messages")
            .iter()
            .map(|m| {
                (
                    m.get("offset").int("offset"),
                    m.get("raw_hex").str("raw_hex").to_string(),
                )
            })
            .collect();
        assert_eq!(got.len(), want.len(), "records rstream delivered");
        assert!(
            got == want,
            "rstream delivered other records than the none and gzip batches"
        );

        // Each chunk of a codec rstream lacks made its Deliver handler fail once.
        let errors: Vec<&str> = report
            .get("handler_errors")
            .array("handler_errors")
            .iter()
            .map(|e| e.str("error"))
            .collect();
        let missing = codecs
            .iter()
            .filter(|c| !supported.contains(&c.name()))
            .count();
        assert_eq!(
            errors.len(),
            missing,
            "rstream's handler errors: {errors:?}"
        );
        // ... on the codec lookup (its registry has no entry: the abstract base is built).
        for e in &errors {
            assert!(
                e.contains("ICompressionCodec"),
                "unexpected rstream error: {e}"
            );
        }
    });
}
