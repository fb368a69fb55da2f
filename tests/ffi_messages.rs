//! AMQP 1.0 messages through the C API against the broker of scripts/broker (RMQS_TEST_URI):
//! `rmqs_message_builder` setters, `rmqs_producer_send_message(s)`, the super producer's
//! message sends with key extractors and routing callbacks that read the message, and the
//! typed accessors of received messages (`rmqs_message_*_value`, `rmqs_message_section`,
//! `rmqs_message_body_*`, `rmqs_value_*`). Every value is compared by type and bits.

mod support;

use std::ffi::{CStr, CString, c_char, c_void};
use std::ptr;

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;

use rmqstream::ffi::rmqs_body_type_code::*;
use rmqstream::ffi::rmqs_header_code::*;
use rmqstream::ffi::rmqs_property_code::*;
use rmqstream::ffi::rmqs_section_code::*;
use rmqstream::ffi::rmqs_status_code::*;
use rmqstream::ffi::rmqs_value_type_code::*;
use rmqstream::ffi::*;
use rmqstream::protocol::amqp::Value;
use rmqstream::protocol::murmur3::route_partition;
use support::capi::*;
use support::messages::*;
use support::uri;

/// A connection and a fresh stream, deleted at the end.
struct Fixture {
    conn: *mut rmqs_connection,
    stream: CString,
}

impl Fixture {
    fn new(prefix: &str) -> Fixture {
        let conn = connect(&uri());
        let stream = cunique(prefix);
        create_stream(conn, &stream);
        Fixture { conn, stream }
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        delete_stream(self.conn, &self.stream);
        unsafe { rmqs_connection_free(self.conn) };
    }
}

fn s(x: &str) -> Value<'static> {
    Value::String(x.to_string().into())
}

fn sym(x: &str) -> Value<'static> {
    Value::Symbol(x.to_string().into())
}

fn bin(x: &[u8]) -> Value<'static> {
    Value::Binary(x.to_vec().into())
}

/// A message with every section and every property, values of many types.
fn every_section() -> Spec {
    let h = |c: rmqs_header_code, v| (c as i32, v);
    let p = |c: rmqs_property_code, v| (c as i32, v);
    Spec {
        header: vec![
            h(RMQS_HEADER_DURABLE, Value::Bool(true)),
            h(RMQS_HEADER_PRIORITY, Value::Ubyte(7)),
            h(RMQS_HEADER_TTL, Value::Uint(60_000)),
            h(RMQS_HEADER_FIRST_ACQUIRER, Value::Bool(false)),
            h(RMQS_HEADER_DELIVERY_COUNT, Value::Uint(u32::MAX)),
        ],
        properties: vec![
            p(RMQS_PROP_MESSAGE_ID, Value::Ulong(u64::MAX)),
            p(RMQS_PROP_USER_ID, bin(b"guest")),
            p(RMQS_PROP_TO, s("/queues/ünïcode")),
            p(RMQS_PROP_SUBJECT, s("subject ✓")),
            p(RMQS_PROP_REPLY_TO, s("")),
            p(RMQS_PROP_CORRELATION_ID, Value::Uuid(*b"0123456789abcdef")),
            p(RMQS_PROP_CONTENT_TYPE, sym("application/json")),
            p(RMQS_PROP_CONTENT_ENCODING, sym("identity")),
            p(RMQS_PROP_ABSOLUTE_EXPIRY_TIME, Value::Timestamp(-1)),
            p(RMQS_PROP_CREATION_TIME, Value::Timestamp(1_700_000_000_123)),
            p(RMQS_PROP_GROUP_ID, s("group")),
            p(RMQS_PROP_GROUP_SEQUENCE, Value::Uint(0)),
            p(RMQS_PROP_REPLY_TO_GROUP_ID, s("reply-group")),
        ],
        app: vec![
            ("null".into(), Value::Null),
            ("bool".into(), Value::Bool(true)),
            ("u8".into(), Value::Ubyte(u8::MAX)),
            ("u16".into(), Value::Ushort(u16::MAX)),
            ("u32".into(), Value::Uint(u32::MAX)),
            ("u64".into(), Value::Ulong(u64::MAX)),
            ("i8".into(), Value::Byte(i8::MIN)),
            ("i16".into(), Value::Short(i16::MIN)),
            ("i32".into(), Value::Int(i32::MIN)),
            ("i64".into(), Value::Long(i64::MIN)),
            ("float".into(), Value::Float(f32::NAN)),
            ("double".into(), Value::Double(f64::NEG_INFINITY)),
            ("timestamp".into(), Value::Timestamp(-62_135_596_800_000)),
            ("uuid".into(), Value::Uuid([0xff; 16])),
            ("string".into(), s("héllo wörld ✓")),
            ("symbol".into(), sym("sym")),
            ("binary".into(), bin(&[0, 1, 0xff])),
            ("empty string".into(), s("")),
            ("empty binary".into(), bin(&[])),
            ("ключ".into(), Value::Char('✓')),
        ],
        message_annotations: vec![
            ("x-opt-partition-key".into(), s("pk")),
            (
                "x-opt-list".into(),
                Value::List(vec![Value::Int(1), s("two")]),
            ),
            (
                "x-opt-map".into(),
                Value::Map(vec![(sym("k"), Value::Double(0.5))]),
            ),
            (
                "x-opt-array".into(),
                Value::Array(vec![Value::Long(1), Value::Long(-2)]),
            ),
        ],
        delivery_annotations: vec![("x-opt-delivery".into(), Value::Long(3))],
        footer: vec![("x-opt-hash".into(), bin(b"\x12\x34"))],
        body: BodySpec::Data(vec![b"first section".to_vec(), vec![], vec![0xa5; 300]]),
    }
}

/// Sends `specs` one call each (`rmqs_producer_send_message`) through one reused builder;
/// returns the ids.
fn send_each(p: *mut rmqs_producer, specs: &[Spec]) -> Vec<u64> {
    let b = rmqs_message_builder_new();
    let mut ids = Vec::new();
    for (i, spec) in specs.iter().enumerate() {
        spec.apply(b);
        let mut id = u64::MAX;
        let mut err = ptr::null_mut();
        let st = unsafe { rmqs_producer_send_message(p, b, i, 0, &mut id, &mut err) };
        check(st, err, "send_message");
        ids.push(id);
    }
    unsafe { rmqs_message_builder_free(b) };
    ids
}

fn flush(p: *mut rmqs_producer) {
    assert_eq!(
        unsafe { rmqs_producer_flush(p, 30_000, std::ptr::null_mut()) },
        0,
        "flush"
    );
}

#[test]
fn every_section_round_trips_typed() {
    let f = Fixture::new("msg-every");
    let p = bare_producer(f.conn, &f.stream, &[]);
    let spec = every_section();
    let ids = send_each(p, std::slice::from_ref(&spec));
    assert_eq!(ids, vec![0]);
    flush(p);
    unsafe { rmqs_producer_free(p) };
    let got = consume(f.conn, &f.stream, 1);
    spec.assert_read(&got[0], "every section");
    assert_eq!(got[0].offset, 0);
    // Several data sections: rmqs_message_body is the whole record (not one section).
    assert_ne!(got[0].plain_body, b"first section");
}

#[test]
fn value_bodies_sequences_and_text_accessors() {
    let f = Fixture::new("msg-value");
    let p = bare_producer(f.conn, &f.stream, &[]);
    let mut specs = Vec::new();
    for v in [
        s("a string body"),
        bin(b"a binary body"),
        Value::Long(-5),
        Value::List(vec![Value::Null, Value::Bool(false), s("x")]),
        Value::Map(vec![(s("k"), Value::Uint(1))]),
    ] {
        let mut spec = Spec::empty();
        spec.body = BodySpec::Value(v);
        specs.push(spec);
    }
    // amqp-sequence bodies written by the builder: one list, several, an empty one, nested.
    for lists in [
        vec![vec![Value::Int(1), s("two"), Value::Null]],
        vec![
            vec![Value::Ulong(u64::MAX)],
            vec![],
            vec![Value::List(vec![bin(b"in"), Value::Double(f64::NAN)])],
        ],
    ] {
        let mut spec = Spec::empty();
        spec.body = BodySpec::Sequence(lists);
        specs.push(spec);
    }
    let mut one = Spec::empty();
    one.body = BodySpec::Data(vec![b"only".to_vec()]);
    one.properties = vec![
        (RMQS_PROP_MESSAGE_ID as i32, Value::Uuid([1; 16])),
        (RMQS_PROP_CORRELATION_ID as i32, s("corr")),
    ];
    one.app = vec![("n".into(), Value::Int(42))];
    specs.push(one);
    send_each(p, &specs);

    // An amqp-sequence body, written by the codec and sent raw.
    let seq = rmqstream::protocol::amqp::Message {
        body: rmqstream::protocol::amqp::Body::Sequence(vec![
            vec![Value::Int(1), s("two")],
            vec![],
        ]),
        ..Default::default()
    }
    .to_bytes()
    .unwrap();
    let mut err = ptr::null_mut();
    let st = unsafe { rmqs_producer_send(p, seq.as_ptr(), seq.len(), 99, RMQS_SEND_RAW, &mut err) };
    check(st, err, "send raw sequence");
    // Empty sections written as null (as some clients do): header, application properties.
    let nulls = [
        0x00, 0x53, 0x70, 0x40, 0x00, 0x53, 0x74, 0x40, 0x00, 0x53, 0x75, 0xa0, 0x01, b'z',
    ];
    let st =
        unsafe { rmqs_producer_send(p, nulls.as_ptr(), nulls.len(), 100, RMQS_SEND_RAW, &mut err) };
    check(st, err, "send raw null sections");
    flush(p);
    unsafe { rmqs_producer_free(p) };

    let got = consume(f.conn, &f.stream, specs.len() + 2);
    for (i, spec) in specs.iter().enumerate() {
        spec.assert_read(&got[i], &format!("message {i}"));
    }
    // String and binary values are the plain body too.
    assert_eq!(got[0].plain_body, b"a string body");
    assert_eq!(got[1].plain_body, b"a binary body");
    assert_eq!(got[7].plain_body, b"only");
    let last = &got[specs.len()];
    assert_eq!(last.body_type, RMQS_BODY_SEQUENCE as i32);
    assert_same(
        "sequence",
        &last.body,
        &[
            Value::List(vec![Value::Int(1), s("two")]),
            Value::List(vec![]),
        ],
    );
    let nulls = &got[specs.len() + 1];
    assert!(nulls.header.is_empty() && nulls.app.is_empty(), "{nulls:?}");
    assert_eq!(nulls.plain_body, b"z");
    // The sections are there, empty.
    assert_eq!(nulls.body_type, RMQS_BODY_DATA as i32);
}

#[test]
fn text_accessors_still_work_on_builder_messages() {
    let f = Fixture::new("msg-text");
    let p = bare_producer(f.conn, &f.stream, &[]);
    let mut spec = Spec::empty();
    spec.properties = vec![
        (RMQS_PROP_MESSAGE_ID as i32, Value::Ulong(12)),
        (RMQS_PROP_CONTENT_TYPE as i32, sym("text/plain")),
    ];
    spec.app = vec![("n".into(), Value::Int(5)), ("s".into(), s("5"))];
    spec.body = BodySpec::Data(vec![b"hi".to_vec()]);
    send_each(p, &[spec]);
    flush(p);
    unsafe { rmqs_producer_free(p) };

    let q = queue();
    let c = queue_consumer(f.conn, &f.stream, &[("offset", "first")], q);
    let ev = loop {
        let ev = poll_event(q, 30_000);
        assert!(!ev.is_null(), "no chunk within 30 s");
        if unsafe { rmqs_event_type(ev) }
            == rmqstream::ffi::rmqs_event_type_code::RMQS_EVENT_CHUNK as i32
        {
            break ev;
        }
        unsafe { rmqs_event_free(ev) };
    };
    let m = unsafe { rmqs_chunk_message(rmqs_event_chunk(ev), 0) };
    let text = |key: &str| {
        let k = CString::new(key).unwrap();
        let mut v: *const c_char = ptr::null();
        let mut len = 0usize;
        assert!(unsafe { rmqs_message_app_property(m, k.as_ptr(), &mut v, &mut len) });
        String::from_utf8(unsafe { std::slice::from_raw_parts(v.cast::<u8>(), len) }.to_vec())
            .unwrap()
    };
    // The same text, told apart by the typed accessor.
    assert_eq!(text("n"), "5");
    assert_eq!(text("s"), "5");
    let mut v = rmqs_value::default();
    let n = CString::new("n").unwrap();
    assert!(unsafe { rmqs_message_app_property_value(m, n.as_ptr(), &mut v) });
    assert_eq!((v.kind, v.int_value), (RMQS_VALUE_INT as i32, 5));
    let mut tp: *const c_char = ptr::null();
    let mut tl = 0usize;
    assert!(unsafe { rmqs_message_property(m, RMQS_PROP_MESSAGE_ID as i32, &mut tp, &mut tl) });
    assert_eq!(
        unsafe { std::slice::from_raw_parts(tp.cast::<u8>(), tl) },
        b"12"
    );
    // Absent things.
    assert!(!unsafe { rmqs_message_header_value(m, RMQS_HEADER_DURABLE as i32, &mut v) });
    assert!(!unsafe { rmqs_message_section(m, RMQS_SECTION_FOOTER as i32, &mut v) });
    assert!(
        !unsafe { rmqs_message_section(m, 0x75, &mut v) },
        "a body code is no section"
    );
    assert!(!unsafe { rmqs_message_property_value(m, 14, &mut v) });
    assert!(!unsafe { rmqs_message_header_value(ptr::null(), 1, &mut v) });
    unsafe {
        rmqs_event_free(ev);
        rmqs_consumer_free(c);
        rmqs_queue_free(q);
    }
}

// ---------------------------------------------------------------------------------------------
// generated messages

fn float32() -> impl Strategy<Value = f32> {
    prop_oneof![
        Just(f32::NAN),
        Just(f32::INFINITY),
        Just(f32::NEG_INFINITY),
        Just(-0.0f32),
        Just(f32::MIN_POSITIVE),
        Just(f32::MAX),
        any::<f32>().prop_filter("NaN has many bit patterns", |x| !x.is_nan()),
    ]
}

fn float64() -> impl Strategy<Value = f64> {
    prop_oneof![
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        Just(-0.0f64),
        Just(f64::MIN_POSITIVE),
        Just(f64::MAX),
        any::<f64>().prop_filter("NaN has many bit patterns", |x| !x.is_nan()),
    ]
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![Just(String::new()), "\\PC{0,24}", "[a-z]{300,400}"]
}

fn bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(Vec::new()),
        prop::collection::vec(any::<u8>(), 0..40),
        prop::collection::vec(any::<u8>(), 256..600),
    ]
}

/// Every simple type, extremes included.
fn simple() -> impl Strategy<Value = Value<'static>> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<u8>().prop_map(Value::Ubyte),
        any::<u16>().prop_map(Value::Ushort),
        prop_oneof![Just(0u32), Just(u32::MAX), any::<u32>()].prop_map(Value::Uint),
        prop_oneof![Just(0u64), Just(u64::MAX), any::<u64>()].prop_map(Value::Ulong),
        any::<i8>().prop_map(Value::Byte),
        any::<i16>().prop_map(Value::Short),
        prop_oneof![Just(i32::MIN), Just(-1), any::<i32>()].prop_map(Value::Int),
        prop_oneof![Just(i64::MIN), Just(i64::MAX), any::<i64>()].prop_map(Value::Long),
        float32().prop_map(Value::Float),
        float64().prop_map(Value::Double),
        prop_oneof![Just(i64::MIN), Just(-1i64), any::<i64>()].prop_map(Value::Timestamp),
        any::<[u8; 16]>().prop_map(Value::Uuid),
        text().prop_map(|t| Value::String(t.into())),
        "[ -~]{0,30}".prop_map(|t| Value::Symbol(t.into())),
        bytes().prop_map(|b| Value::Binary(b.into())),
        any::<char>().prop_map(Value::Char),
    ]
}

fn id() -> impl Strategy<Value = Value<'static>> {
    prop_oneof![
        any::<u64>().prop_map(Value::Ulong),
        any::<[u8; 16]>().prop_map(Value::Uuid),
        bytes().prop_map(|b| Value::Binary(b.into())),
        text().prop_map(|t| Value::String(t.into())),
    ]
}

fn keyed(n: usize) -> impl Strategy<Value = Vec<(String, Value<'static>)>> {
    prop::collection::btree_map("\\PC{0,16}", simple(), 0..n).prop_map(|m| m.into_iter().collect())
}

fn spec() -> impl Strategy<Value = Spec> {
    let header = (
        prop::option::of(any::<bool>()),
        prop::option::of(any::<u8>()),
        prop::option::of(any::<u32>()),
        prop::option::of(any::<bool>()),
        prop::option::of(any::<u32>()),
    )
        .prop_map(|(d, p, t, f, c)| {
            let mut h = Vec::new();
            let mut put = |code: rmqs_header_code, v: Option<Value<'static>>| {
                if let Some(v) = v {
                    h.push((code as i32, v));
                }
            };
            put(RMQS_HEADER_DURABLE, d.map(Value::Bool));
            put(RMQS_HEADER_PRIORITY, p.map(Value::Ubyte));
            put(RMQS_HEADER_TTL, t.map(Value::Uint));
            put(RMQS_HEADER_FIRST_ACQUIRER, f.map(Value::Bool));
            put(RMQS_HEADER_DELIVERY_COUNT, c.map(Value::Uint));
            h
        });
    let strings = prop::collection::vec(prop::option::of(text()), 5);
    let properties = (
        prop::option::of(id()),
        prop::option::of(bytes()),
        strings,
        prop::option::of(id()),
        prop::option::of("[ -~]{0,20}"),
        prop::option::of("[ -~]{0,20}"),
        prop::option::of(any::<i64>()),
        prop::option::of(any::<i64>()),
        prop::option::of(any::<u32>()),
    )
        .prop_map(|(mid, uid, st, cid, ct, ce, exp, ctime, gseq)| {
            let mut p: Vec<(i32, Value<'static>)> = Vec::new();
            let mut put = |code: rmqs_property_code, v: Option<Value<'static>>| {
                if let Some(v) = v {
                    p.push((code as i32, v));
                }
            };
            let st2 = |i: usize| st[i].clone().map(|t| Value::String(t.into()));
            put(RMQS_PROP_MESSAGE_ID, mid);
            put(RMQS_PROP_USER_ID, uid.map(|b| Value::Binary(b.into())));
            put(RMQS_PROP_TO, st2(0));
            put(RMQS_PROP_SUBJECT, st2(1));
            put(RMQS_PROP_REPLY_TO, st2(2));
            put(RMQS_PROP_CORRELATION_ID, cid);
            put(RMQS_PROP_CONTENT_TYPE, ct.map(|t| Value::Symbol(t.into())));
            put(
                RMQS_PROP_CONTENT_ENCODING,
                ce.map(|t| Value::Symbol(t.into())),
            );
            put(RMQS_PROP_ABSOLUTE_EXPIRY_TIME, exp.map(Value::Timestamp));
            put(RMQS_PROP_CREATION_TIME, ctime.map(Value::Timestamp));
            put(RMQS_PROP_GROUP_ID, st2(3));
            put(RMQS_PROP_GROUP_SEQUENCE, gseq.map(Value::Uint));
            put(RMQS_PROP_REPLY_TO_GROUP_ID, st2(4));
            p
        });
    let body = prop_oneof![
        prop::collection::vec(bytes(), 0..4).prop_map(BodySpec::Data),
        simple().prop_map(BodySpec::Value),
        prop::collection::vec(prop::collection::vec(simple(), 0..6), 1..3)
            .prop_map(BodySpec::Sequence),
    ];
    (
        header,
        properties,
        keyed(12),
        keyed(4),
        keyed(3),
        keyed(3),
        body,
    )
        .prop_map(|(header, properties, app, ma, da, footer, body)| Spec {
            header,
            properties,
            app,
            message_annotations: ma,
            delivery_annotations: da,
            footer,
            body,
        })
}

/// `n` generated messages (deterministic: the same ones on every run).
fn generated(n: usize) -> Vec<Spec> {
    let mut runner = TestRunner::deterministic();
    let strategy = spec();
    (0..n)
        .map(|_| strategy.new_tree(&mut runner).unwrap().current())
        .collect()
}

/// Sends `specs` through `rmqs_producer_send_messages` in batches of 16 builders.
fn send_batches(p: *mut rmqs_producer, specs: &[Spec]) {
    let builders: Vec<*mut rmqs_message_builder> =
        (0..16).map(|_| rmqs_message_builder_new()).collect();
    for (n, chunk) in specs.chunks(16).enumerate() {
        for (b, spec) in builders.iter().zip(chunk) {
            spec.apply(*b);
        }
        let ptrs: Vec<*const rmqs_message_builder> = builders[..chunk.len()]
            .iter()
            .map(|b| b.cast_const())
            .collect();
        let tags: Vec<usize> = (0..chunk.len()).map(|i| n * 16 + i).collect();
        let mut accepted = 0;
        let (st, m) = send_messages(p, &ptrs, &tags, &mut accepted);
        assert_eq!(st, 0, "send_messages: {m}");
        assert_eq!(accepted, chunk.len());
    }
    for b in builders {
        unsafe { rmqs_message_builder_free(b) };
    }
}

/// 300 generated messages (every type and its extremes: empty strings and binaries, the
/// largest ulong, NaN and infinities, negative timestamps, non-ASCII keys, up to 12
/// application properties) in batches, read back typed and equal.
#[test]
fn generated_messages_round_trip_through_the_broker() {
    let f = Fixture::new("msg-prop");
    let p = bare_producer(f.conn, &f.stream, &[]);
    let specs = generated(300);
    send_batches(p, &specs);
    flush(p);
    unsafe { rmqs_producer_free(p) };
    let got = consume(f.conn, &f.stream, specs.len());
    for (i, (spec, r)) in specs.iter().zip(&got).enumerate() {
        assert_eq!(r.offset, i as u64);
        spec.assert_read(r, &format!("generated message {i}"));
    }
}

/// The same through sub-entry batches of every codec: records are encoded messages.
#[test]
fn generated_messages_round_trip_in_compressed_sub_entries() {
    for codec in ["none", "gzip", "snappy", "lz4", "zstd"] {
        let f = Fixture::new(&format!("msg-sub-{codec}"));
        let p = bare_producer(
            f.conn,
            &f.stream,
            &[("sub_entry_size", "7"), ("compression", codec)],
        );
        let specs = generated(40);
        send_each(p, &specs[..20]);
        send_batches(p, &specs[20..]);
        flush(p);
        unsafe { rmqs_producer_free(p) };
        let got = consume(f.conn, &f.stream, specs.len());
        for (i, (spec, r)) in specs.iter().zip(&got).enumerate() {
            spec.assert_read(r, &format!("{codec} message {i}"));
        }
    }
}

/// Many application properties, long keys and values: the 32-bit encodings.
#[test]
fn many_properties_round_trip() {
    let f = Fixture::new("msg-many");
    let p = bare_producer(f.conn, &f.stream, &[]);
    let mut spec = Spec::empty();
    spec.app = (0..1000)
        .map(|i| (format!("ключ-{i:04}"), Value::Long(i64::MIN + i)))
        .collect();
    spec.message_annotations = vec![("x-big".into(), s(&"v".repeat(70_000)))];
    spec.body = BodySpec::Data(vec![vec![1; 100_000]]);
    send_each(p, &[spec.clone()]);
    flush(p);
    unsafe { rmqs_producer_free(p) };
    let got = consume(f.conn, &f.stream, 1);
    spec.assert_read(&got[0], "many properties");
}

/// A reset builder sends nothing of the previous message; one builder, many messages.
#[test]
fn reset_forgets_the_previous_message() {
    let f = Fixture::new("msg-reset");
    let p = bare_producer(f.conn, &f.stream, &[]);
    let mut first = every_section();
    first.body = BodySpec::Data(vec![b"one".to_vec()]);
    let second = Spec::empty();
    let mut third = Spec::empty();
    third.app = vec![("only".into(), Value::Bool(true))];
    send_each(p, &[first.clone(), second.clone(), third.clone()]);
    flush(p);
    unsafe { rmqs_producer_free(p) };
    let got = consume(f.conn, &f.stream, 3);
    first.assert_read(&got[0], "first");
    second.assert_read(&got[1], "second (empty)");
    third.assert_read(&got[2], "third");
    assert_eq!(got[1].plain_body, b"");
}

/// `rmqs_producer_send_message_body`: the builder's sections with each body in turn (the
/// later sends copy the sections prepared by an earlier one), the builder itself unchanged
/// (its own body, filter value and publishing id), and a change of its sections seen by the
/// next send.
#[test]
fn send_message_body_sends_the_sections_with_each_body() {
    send_message_body_case(&[]);
}

/// The same in compressed sub-entries (records are encoded messages).
#[test]
fn send_message_body_in_sub_entries() {
    send_message_body_case(&[("sub_entry_size", "3"), ("compression", "zstd")]);
}

fn send_message_body_case(config: &[(&str, &str)]) {
    let f = Fixture::new("msg-body");
    let p = bare_producer(f.conn, &f.stream, config);
    let b = rmqs_message_builder_new();
    let mut spec = every_section();
    spec.apply(b);
    let bodies: [&[u8]; 4] = [b"first", b"", &[0x5a; 300], b"fourth"];
    let mut want = Vec::new();
    let send = |body: &[u8], spec: &Spec, tag: usize| {
        let (mut id, mut err) = (u64::MAX, ptr::null_mut());
        let st = unsafe {
            rmqs_producer_send_message_body(
                p,
                b,
                body.as_ptr(),
                body.len(),
                tag,
                0,
                &mut id,
                &mut err,
            )
        };
        check(st, err, "send_message_body");
        assert_eq!(id, tag as u64);
        let mut s = spec.clone();
        s.body = BodySpec::Data(vec![body.to_vec()]);
        s
    };
    for (i, body) in bodies.iter().enumerate() {
        want.push(send(body, &spec, i));
    }
    // A property changed: the next sends carry it.
    let subject = s("changed");
    let mut err = ptr::null_mut();
    let v = to_c(&subject, &mut Vec::new());
    let st =
        unsafe { rmqs_message_builder_set_property(b, RMQS_PROP_SUBJECT as i32, &v, &mut err) };
    check(st, err, "set_property");
    for (_, value) in spec
        .properties
        .iter_mut()
        .filter(|(c, _)| *c == RMQS_PROP_SUBJECT as i32)
    {
        *value = subject.clone();
    }
    for (i, body) in bodies.iter().enumerate().take(3) {
        want.push(send(body, &spec, 4 + i));
    }
    // The builder's own body is still there.
    let mut id = u64::MAX;
    let st = unsafe { rmqs_producer_send_message(p, b, 7, 0, &mut id, &mut err) };
    check(st, err, "send_message");
    want.push(spec.clone());
    // Bad arguments: NULL body with a length, NULL builder, flags the builder replaces.
    let mut e = ptr::null_mut();
    let st = unsafe {
        rmqs_producer_send_message_body(p, b, ptr::null(), 3, 0, 0, ptr::null_mut(), &mut e)
    };
    assert_eq!(st, RMQS_ERR_INVALID_ARGUMENT as i32);
    unsafe { rmqs_error_free(e) };
    let st = unsafe {
        rmqs_producer_send_message_body(
            p,
            ptr::null(),
            b"x".as_ptr(),
            1,
            0,
            0,
            ptr::null_mut(),
            ptr::null_mut(),
        )
    };
    assert_eq!(st, RMQS_ERR_INVALID_ARGUMENT as i32);
    let st = unsafe {
        rmqs_producer_send_message_body(
            p,
            b,
            b"x".as_ptr(),
            1,
            0,
            RMQS_SEND_RAW,
            ptr::null_mut(),
            ptr::null_mut(),
        )
    };
    assert_eq!(st, RMQS_ERR_INVALID_ARGUMENT as i32);
    flush(p);
    unsafe {
        rmqs_message_builder_free(b);
        rmqs_producer_free(p);
    }
    let got = consume(f.conn, &f.stream, want.len());
    for (i, (w, r)) in want.iter().zip(&got).enumerate() {
        assert_eq!(r.offset, i as u64);
        w.assert_read(r, &format!("message {i}"));
    }
    assert_eq!(got[0].plain_body, b"first");
    assert_eq!(got[2].plain_body, vec![0x5a; 300]);
}

// ---------------------------------------------------------------------------------------------
// filter value and publishing id

#[test]
fn filter_value_and_publishing_id_come_from_the_builder() {
    let f = Fixture::new("msg-filter");
    let name = cunique("msg-named");
    let p = bare_producer(
        f.conn,
        &f.stream,
        &[("name", name.to_str().unwrap()), ("batch_delay_ms", "0")],
    );
    let b = rmqs_message_builder_new();
    let mut ids = Vec::new();
    for i in 0..9u64 {
        unsafe { rmqs_message_builder_reset(b) };
        let region = if (i / 3) % 2 == 0 { "eu" } else { "us" };
        let r = CString::new(region).unwrap();
        let mut err = ptr::null_mut();
        check(
            unsafe { rmqs_message_builder_set_filter_value(b, r.as_ptr(), &mut err) },
            err,
            "filter",
        );
        let key = CString::new("region").unwrap();
        let mut keep = Vec::new();
        let value = s(region);
        let v = to_c(&value, &mut keep);
        check(
            unsafe { rmqs_message_builder_add_app_property(b, key.as_ptr(), &v, &mut err) },
            err,
            "app",
        );
        if i == 4 {
            check(
                unsafe { rmqs_message_builder_set_publishing_id(b, 100, &mut err) },
                err,
                "id",
            );
        }
        let mut id = 0;
        check(
            unsafe { rmqs_producer_send_message(p, b, i as usize, 0, &mut id, &mut err) },
            err,
            "send",
        );
        ids.push(id);
        if i % 3 == 2 {
            flush(p);
        }
    }
    // A new named producer starts after the broker's sequence (0); explicit id 100 at the
    // fifth message; automatic ids continue after it.
    assert_eq!(ids, vec![1, 2, 3, 4, 100, 101, 102, 103, 104]);
    // An id not above the last one is refused.
    let mut err = ptr::null_mut();
    check(
        unsafe { rmqs_message_builder_set_publishing_id(b, 50, &mut err) },
        err,
        "id",
    );
    let st = unsafe { rmqs_producer_send_message(p, b, 0, 0, ptr::null_mut(), &mut err) };
    assert_eq!(st, RMQS_ERR_INVALID_ARGUMENT as i32, "{}", message(err));
    let mut err = ptr::null_mut();
    let st = unsafe { rmqs_message_builder_set_publishing_id(b, u64::MAX, &mut err) };
    assert_eq!(st, RMQS_ERR_INVALID_ARGUMENT as i32, "{}", message(err));
    unsafe { rmqs_message_builder_free(b) };
    unsafe { rmqs_producer_free(p) };

    // Broker-side filtering sees the builder's filter values: each flush made its own chunk.
    let cfg = config(&[("offset", "first"), ("filter_values", "eu")]);
    let mut q = ptr::null_mut();
    assert_eq!(unsafe { rmqs_queue_new(&mut q, std::ptr::null_mut()) }, 0);
    let c = try_queue_consumer(f.conn, &f.stream, cfg, q)
        .unwrap_or_else(|e| panic!("filtered consumer: {e:?}"));
    let mut regions = Vec::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while regions.len() < 6 && std::time::Instant::now() < deadline {
        let ev = poll_event(q, 200);
        if ev.is_null() {
            continue;
        }
        let ch = unsafe { rmqs_event_chunk(ev) };
        if !ch.is_null() {
            for i in 0..unsafe { rmqs_chunk_message_count(ch) } {
                let r = Read::of(unsafe { rmqs_chunk_message(ch, i) });
                regions.push((r.offset, r.app[0].1.as_str().unwrap().to_string()));
            }
        }
        unsafe { rmqs_event_free(ev) };
    }
    unsafe {
        rmqs_consumer_free(c);
        rmqs_queue_free(q);
    }
    let want: Vec<(u64, String)> = [0u64, 1, 2, 6, 7, 8]
        .iter()
        .map(|&o| (o, "eu".to_string()))
        .collect();
    assert_eq!(regions, want);
}

// ---------------------------------------------------------------------------------------------
// argument checks

#[test]
fn builder_setters_check_their_arguments() {
    let b = rmqs_message_builder_new();
    let mut keep = Vec::new();
    let fails = |st: rmqs_status, err: *mut rmqs_error, what: &str| {
        assert_eq!(
            st,
            RMQS_ERR_INVALID_ARGUMENT as i32,
            "{what}: {}",
            message(err)
        );
    };
    let mut err = ptr::null_mut();
    let v = to_c(&Value::Int(300), &mut keep);
    fails(
        unsafe { rmqs_message_builder_set_header(b, RMQS_HEADER_PRIORITY as i32, &v, &mut err) },
        err,
        "priority 300",
    );
    let mut err = ptr::null_mut();
    fails(
        unsafe { rmqs_message_builder_set_header(b, 6, &v, &mut err) },
        err,
        "unknown header field",
    );
    let mut err = ptr::null_mut();
    let v = to_c(&Value::Long(5), &mut keep);
    fails(
        unsafe { rmqs_message_builder_set_property(b, RMQS_PROP_MESSAGE_ID as i32, &v, &mut err) },
        err,
        "long message id",
    );
    let mut err = ptr::null_mut();
    fails(
        unsafe { rmqs_message_builder_set_property(b, 0, &v, &mut err) },
        err,
        "property 0",
    );
    // Sequence bodies: NULL items with a count, an invalid item (named by its index, the body
    // left as it was), after data sections.
    let mut err = ptr::null_mut();
    fails(
        unsafe { rmqs_message_builder_add_body_sequence(b, ptr::null(), 1, &mut err) },
        err,
        "NULL items",
    );
    let items = [
        to_c(&Value::Int(1), &mut keep),
        rmqs_value {
            kind: RMQS_VALUE_UBYTE as i32,
            uint_value: 256,
            ..Default::default()
        },
    ];
    let mut err = ptr::null_mut();
    let st = unsafe { rmqs_message_builder_add_body_sequence(b, items.as_ptr(), 2, &mut err) };
    assert_eq!(st, RMQS_ERR_INVALID_ARGUMENT as i32);
    let m = message(err);
    assert!(m.starts_with("items[1]: "), "{m}");
    let mut err = ptr::null_mut();
    let st = unsafe { rmqs_message_builder_add_body_sequence(b, items.as_ptr(), 1, &mut err) };
    check(st, err, "one item");
    let mut err = ptr::null_mut();
    fails(
        unsafe { rmqs_message_builder_add_body_section(b, b"x".as_ptr(), 1, &mut err) },
        err,
        "data after a sequence",
    );
    unsafe { rmqs_message_builder_reset(b) };
    let mut err = ptr::null_mut();
    let st = unsafe { rmqs_message_builder_add_body_section(b, b"x".as_ptr(), 1, &mut err) };
    check(st, err, "data");
    let mut err = ptr::null_mut();
    fails(
        unsafe { rmqs_message_builder_add_body_sequence(b, ptr::null(), 0, &mut err) },
        err,
        "a sequence after data",
    );
    unsafe { rmqs_message_builder_reset(b) };
    // Values out of range for their kind, unknown kinds, bad UTF-8, bad encodings.
    let mut bad = rmqs_value {
        kind: RMQS_VALUE_UBYTE as i32,
        uint_value: 256,
        ..Default::default()
    };
    let key = CString::new("k").unwrap();
    let mut err = ptr::null_mut();
    fails(
        unsafe { rmqs_message_builder_add_app_property(b, key.as_ptr(), &bad, &mut err) },
        err,
        "ubyte 256",
    );
    bad.kind = 99;
    let mut err = ptr::null_mut();
    fails(
        unsafe { rmqs_message_builder_add_app_property(b, key.as_ptr(), &bad, &mut err) },
        err,
        "kind 99",
    );
    let invalid = [0xffu8, 0xfe];
    bad.kind = RMQS_VALUE_STRING as i32;
    bad.data = invalid.as_ptr();
    bad.len = 2;
    let mut err = ptr::null_mut();
    fails(
        unsafe { rmqs_message_builder_add_app_property(b, key.as_ptr(), &bad, &mut err) },
        err,
        "invalid UTF-8",
    );
    bad.kind = RMQS_VALUE_LIST as i32;
    let mut err = ptr::null_mut();
    fails(
        unsafe { rmqs_message_builder_set_body_value(b, &bad, &mut err) },
        err,
        "not a list encoding",
    );
    bad.kind = RMQS_VALUE_BINARY as i32;
    bad.data = ptr::null();
    bad.len = 3;
    let mut err = ptr::null_mut();
    fails(
        unsafe { rmqs_message_builder_set_body_value(b, &bad, &mut err) },
        err,
        "NULL data with a length",
    );
    // Compounds are not application properties; duplicates are refused.
    let list = to_c(&Value::List(vec![Value::Int(1)]), &mut keep);
    let mut err = ptr::null_mut();
    fails(
        unsafe { rmqs_message_builder_add_app_property(b, key.as_ptr(), &list, &mut err) },
        err,
        "list application property",
    );
    let one = to_c(&Value::Int(1), &mut keep);
    let mut err = ptr::null_mut();
    check(
        unsafe { rmqs_message_builder_add_app_property(b, key.as_ptr(), &one, &mut err) },
        err,
        "first k",
    );
    let mut err = ptr::null_mut();
    fails(
        unsafe { rmqs_message_builder_add_app_property(b, key.as_ptr(), &one, &mut err) },
        err,
        "duplicate k",
    );
    let mut err = ptr::null_mut();
    fails(
        unsafe {
            rmqs_message_builder_add_annotation(
                b,
                RMQS_SECTION_PROPERTIES as i32,
                key.as_ptr(),
                &one,
                &mut err,
            )
        },
        err,
        "annotation in properties",
    );
    // A data section cannot follow an amqp-value.
    let value = s("v");
    let sv = to_c(&value, &mut keep);
    let mut err = ptr::null_mut();
    check(
        unsafe { rmqs_message_builder_set_body_value(b, &sv, &mut err) },
        err,
        "value body",
    );
    let mut err = ptr::null_mut();
    fails(
        unsafe { rmqs_message_builder_add_body_section(b, b"x".as_ptr(), 1, &mut err) },
        err,
        "data after value",
    );
    // NULL handles and values.
    let mut err = ptr::null_mut();
    fails(
        unsafe { rmqs_message_builder_set_body(ptr::null_mut(), ptr::null(), 0, &mut err) },
        err,
        "NULL builder",
    );
    let mut err = ptr::null_mut();
    fails(
        unsafe { rmqs_message_builder_set_body_value(b, ptr::null(), &mut err) },
        err,
        "NULL value",
    );
    let mut err = ptr::null_mut();
    fails(
        unsafe { rmqs_producer_send_message(ptr::null_mut(), b, 0, 0, ptr::null_mut(), &mut err) },
        err,
        "NULL producer",
    );
    // What was accepted is readable back; nothing half-added.
    let mut out = rmqs_value::default();
    assert!(unsafe { rmqs_message_builder_app_property(b, key.as_ptr(), &mut out) });
    assert_eq!((out.kind, out.int_value), (RMQS_VALUE_INT as i32, 1));
    assert!(!unsafe { rmqs_message_builder_header(b, RMQS_HEADER_PRIORITY as i32, &mut out) });
    unsafe {
        rmqs_message_builder_reset(b);
        rmqs_message_builder_reset(ptr::null_mut());
        rmqs_message_builder_free(b);
        rmqs_message_builder_free(ptr::null_mut());
    }
}

#[test]
fn send_flags_that_the_builder_replaces_are_refused() {
    let f = Fixture::new("msg-flags");
    let p = bare_producer(f.conn, &f.stream, &[]);
    let b = rmqs_message_builder_new();
    for flag in [RMQS_SEND_RAW, RMQS_SEND_PUBLISHING_ID] {
        let mut err = ptr::null_mut();
        let st = unsafe { rmqs_producer_send_message(p, b, 0, flag, ptr::null_mut(), &mut err) };
        assert_eq!(st, RMQS_ERR_INVALID_ARGUMENT as i32, "{}", message(err));
    }
    let bogus: [*const rmqs_message_builder; 2] = [b, ptr::null()];
    let mut accepted = 7;
    let (st, m) = send_messages(p, &bogus, &[], &mut accepted);
    assert_eq!(st, RMQS_ERR_INVALID_ARGUMENT as i32, "{m}");
    assert!(m.contains("msgs[1]"), "{m}");
    assert_eq!(accepted, 0);
    unsafe {
        rmqs_message_builder_free(b);
        rmqs_producer_free(p);
    }
}

// ---------------------------------------------------------------------------------------------
// super producer

/// Key extractor: the `customer` application property of the message.
unsafe extern "C" fn customer_key(
    _ud: *mut c_void,
    msg: *const rmqs_message_builder,
    body: *const u8,
    len: usize,
    _tag: usize,
    key: *mut c_char,
    cap: usize,
) -> isize {
    assert!(!msg.is_null(), "a message send passes the builder");
    let k = CString::new("customer").unwrap();
    let mut v = rmqs_value::default();
    if !unsafe { rmqs_message_builder_app_property(msg, k.as_ptr(), &mut v) } {
        return -1;
    }
    // The body of a single data section comes along too.
    let b = unsafe { std::slice::from_raw_parts(body, len) };
    assert!(b.starts_with(b"body "), "{b:?}");
    if v.len <= cap {
        unsafe { ptr::copy_nonoverlapping(v.data, key.cast(), v.len) };
    }
    v.len as isize
}

/// Routing: partition = the `group-sequence` property modulo the partition count.
unsafe extern "C" fn by_group_sequence(
    _ud: *mut c_void,
    msg: *const rmqs_message_builder,
    _body: *const u8,
    _len: usize,
    _key: *const c_char,
    _key_len: usize,
    _tag: usize,
    n: usize,
    out: *mut u32,
) -> usize {
    let mut v = rmqs_value::default();
    if msg.is_null()
        || !unsafe { rmqs_message_builder_property(msg, RMQS_PROP_GROUP_SEQUENCE as i32, &mut v) }
    {
        return 0;
    }
    assert_eq!(v.kind, RMQS_VALUE_UINT as i32);
    unsafe { out.write((v.uint_value % n as u64) as u32) };
    1
}

fn super_producer(
    conn: *mut rmqs_connection,
    name: &CStr,
    cfg: *mut rmqs_config,
) -> *mut rmqs_super_producer {
    let (sp, st, err) = super_producer_raw(conn, name, cfg, ptr::null_mut(), 0);
    check(st, err, "super producer");
    sp
}

#[test]
fn super_producer_routes_by_what_the_message_says() {
    let conn = connect(&uri());
    let name = cunique("msg-super");
    let mut err = ptr::null_mut();
    let st = unsafe { rmqs_super_stream_create_n(conn, name.as_ptr(), 3, ptr::null(), &mut err) };
    check(st, err, "create super stream");
    let parts: Vec<CString> = (0..3)
        .map(|i| CString::new(format!("{}-{i}", name.to_str().unwrap())).unwrap())
        .collect();

    // Hash routing with the key from the `customer` application property.
    let cfg = rmqs_config_new();
    assert_eq!(
        unsafe {
            rmqs_config_set_key_extractor(
                cfg,
                Some(customer_key),
                ptr::null_mut(),
                None,
                std::ptr::null_mut(),
            )
        },
        0
    );
    let sp = super_producer(conn, &name, cfg);
    unsafe { rmqs_config_free(cfg) };
    let customers: Vec<String> = (0..12).map(|i| format!("customer-{i}")).collect();
    let mut specs = Vec::new();
    for (i, c) in customers.iter().enumerate() {
        let mut spec = Spec::empty();
        spec.app = vec![("customer".into(), s(c))];
        spec.body = BodySpec::Data(vec![format!("body {i}").into_bytes()]);
        specs.push(spec);
    }
    let b = rmqs_message_builder_new();
    let mut want: Vec<Vec<usize>> = vec![Vec::new(); 3];
    for (i, spec) in specs[..6].iter().enumerate() {
        spec.apply(b);
        let (mut part, mut id) = (u32::MAX, u64::MAX);
        let mut err = ptr::null_mut();
        let st = unsafe {
            rmqs_super_producer_send_message(sp, ptr::null(), b, i, 0, &mut part, &mut id, &mut err)
        };
        check(st, err, "super send_message");
        let expected = route_partition(&customers[i], 3);
        assert_eq!(part as usize, expected, "message {i}");
        assert_eq!(id, want[expected].len() as u64, "per-partition ids");
        want[expected].push(i);
    }
    // The batch variant, with one explicit key overriding the extractor.
    let builders: Vec<*mut rmqs_message_builder> =
        (6..12).map(|_| rmqs_message_builder_new()).collect();
    for (b2, spec) in builders.iter().zip(&specs[6..]) {
        spec.apply(*b2);
    }
    let ptrs: Vec<*const rmqs_message_builder> = builders.iter().map(|b| b.cast_const()).collect();
    let explicit = CString::new("customer-0").unwrap();
    let keys: Vec<*const c_char> = (6..12)
        .map(|i| {
            if i == 11 {
                explicit.as_ptr()
            } else {
                ptr::null()
            }
        })
        .collect();
    let mut accepted = 0;
    let mut err = ptr::null_mut();
    let st = unsafe {
        rmqs_super_producer_send_messages(
            sp,
            keys.as_ptr(),
            ptrs.as_ptr(),
            ptr::null(),
            6,
            0,
            &mut accepted,
            &mut err,
        )
    };
    check(st, err, "super send_messages");
    assert_eq!(accepted, 6);
    for (i, customer) in customers.iter().enumerate().skip(6) {
        let key = if i == 11 {
            "customer-0"
        } else {
            customer.as_str()
        };
        want[route_partition(key, 3)].push(i);
    }
    // A message without the property has no key: refused, nothing sent.
    unsafe { rmqs_message_builder_reset(b) };
    let mut err = ptr::null_mut();
    let st = unsafe {
        rmqs_super_producer_send_message(
            sp,
            ptr::null(),
            b,
            0,
            0,
            ptr::null_mut(),
            ptr::null_mut(),
            &mut err,
        )
    };
    assert_eq!(st, RMQS_ERR_INVALID_ARGUMENT as i32, "{}", message(err));
    assert_eq!(
        unsafe { rmqs_super_producer_flush(sp, 30_000, std::ptr::null_mut()) },
        0
    );
    unsafe { rmqs_super_producer_free(sp) };
    for (k, part) in parts.iter().enumerate() {
        let got = consume(conn, part, want[k].len());
        for (r, &i) in got.iter().zip(&want[k]) {
            specs[i].assert_read(r, &format!("partition {k}, message {i}"));
        }
    }

    // A routing callback reading a property of the message.
    let cfg = rmqs_config_new();
    assert_eq!(
        unsafe {
            rmqs_config_set_routing_cb(
                cfg,
                Some(by_group_sequence),
                ptr::null_mut(),
                None,
                std::ptr::null_mut(),
            )
        },
        0
    );
    let sp = super_producer(conn, &name, cfg);
    unsafe { rmqs_config_free(cfg) };
    let mut spec = Spec::empty();
    spec.properties = vec![(RMQS_PROP_GROUP_SEQUENCE as i32, Value::Uint(5))];
    spec.apply(b);
    let mut part = u32::MAX;
    let mut err = ptr::null_mut();
    let st = unsafe {
        rmqs_super_producer_send_message(
            sp,
            ptr::null(),
            b,
            0,
            0,
            &mut part,
            ptr::null_mut(),
            &mut err,
        )
    };
    check(st, err, "routed by property");
    assert_eq!(part, 5 % 3);
    // A plain body: the callback gets NULL for the message and refuses it.
    let mut err = ptr::null_mut();
    let st = unsafe { rmqs_super_producer_send(sp, ptr::null(), b"x".as_ptr(), 1, 0, 0, &mut err) };
    let m = message(err);
    assert_eq!(st, RMQS_ERR_INVALID_ARGUMENT as i32, "{m}");
    assert!(m.contains("no route"), "{m}");
    assert_eq!(
        unsafe { rmqs_super_producer_flush(sp, 30_000, std::ptr::null_mut()) },
        0
    );
    unsafe { rmqs_super_producer_free(sp) };

    unsafe { rmqs_message_builder_free(b) };
    for b in builders {
        unsafe { rmqs_message_builder_free(b) };
    }
    let mut err = ptr::null_mut();
    let st = unsafe { rmqs_super_stream_delete(conn, name.as_ptr(), &mut err) };
    check(st, err, "delete super stream");
    unsafe { rmqs_connection_free(conn) };
}

/// Key extractor: the routing key is the body up to its first `:` (with
/// `rmqs_super_producer_send_message_body`, the body sent, not the builder's own); no `:`, no
/// key.
unsafe extern "C" fn body_key(
    _ud: *mut c_void,
    msg: *const rmqs_message_builder,
    body: *const u8,
    len: usize,
    _tag: usize,
    key: *mut c_char,
    cap: usize,
) -> isize {
    assert!(!msg.is_null(), "a message send passes the builder");
    if len == 0 {
        return -1;
    }
    let b = unsafe { std::slice::from_raw_parts(body, len) };
    let Some(n) = b.iter().position(|&c| c == b':') else {
        return -1;
    };
    if n <= cap {
        unsafe { ptr::copy_nonoverlapping(body, key.cast(), n) };
    }
    n as isize
}

/// Routing: partition = the length of the body sent modulo the partition count (the builder
/// must come along).
unsafe extern "C" fn by_body_len(
    _ud: *mut c_void,
    msg: *const rmqs_message_builder,
    _body: *const u8,
    len: usize,
    _key: *const c_char,
    _key_len: usize,
    _tag: usize,
    n: usize,
    out: *mut u32,
) -> usize {
    if msg.is_null() {
        return 0;
    }
    unsafe { out.write((len % n) as u32) };
    1
}

/// `rmqs_super_producer_send_message_body`: one builder with every section sent with many
/// bodies, each routed by a key the key extractor takes from the body sent (then by a routing
/// callback reading its length); each partition holds exactly the messages routed there, each
/// with the builder's sections and its own body; a change of the builder is seen by the next
/// send; the builder's own body is still there after; bad arguments are refused.
#[test]
fn super_send_message_body_routes_each_body() {
    super_send_message_body_case(&[]);
}

/// The same in compressed sub-entries.
#[test]
fn super_send_message_body_in_sub_entries() {
    super_send_message_body_case(&[("sub_entry_size", "3"), ("compression", "zstd")]);
}

fn super_send_message_body_case(config_pairs: &[(&str, &str)]) {
    let conn = connect(&uri());
    let name = cunique("msg-super-body");
    let mut err = ptr::null_mut();
    let st = unsafe { rmqs_super_stream_create_n(conn, name.as_ptr(), 3, ptr::null(), &mut err) };
    check(st, err, "create super stream");
    let parts: Vec<CString> = (0..3)
        .map(|i| CString::new(format!("{}-{i}", name.to_str().unwrap())).unwrap())
        .collect();

    let cfg = config(config_pairs);
    let st = unsafe {
        rmqs_config_set_key_extractor(cfg, Some(body_key), ptr::null_mut(), None, &mut err)
    };
    check(st, err, "key extractor");
    let sp = super_producer(conn, &name, cfg);
    unsafe { rmqs_config_free(cfg) };
    let b = rmqs_message_builder_new();
    let mut spec = every_section();
    spec.apply(b);
    // want[k]: the messages partition k must hold, in order.
    let mut want: Vec<Vec<Spec>> = vec![Vec::new(); 3];
    let with_body = |spec: &Spec, body: &[u8]| {
        let mut s = spec.clone();
        s.body = BodySpec::Data(vec![body.to_vec()]);
        s
    };
    let send = |sp, key: Option<&CStr>, body: &[u8], tag: usize| {
        let (mut part, mut id, mut err) = (u32::MAX, u64::MAX, ptr::null_mut());
        let st = unsafe {
            rmqs_super_producer_send_message_body(
                sp,
                key.map_or(ptr::null(), CStr::as_ptr),
                b,
                body.as_ptr(),
                body.len(),
                tag,
                0,
                &mut part,
                &mut id,
                &mut err,
            )
        };
        check(st, err, "super send_message_body");
        (part as usize, id)
    };
    let mut bodies: Vec<Vec<u8>> = (0..24)
        .map(|i| format!("customer-{}:payload {i}", i % 8).into_bytes())
        .collect();
    bodies[5].extend_from_slice(&[0x5a; 300]);
    bodies[6].truncate(b"customer-6:".len());
    for (i, body) in bodies.iter().enumerate() {
        if i == 12 {
            // A property changed: the next sends carry it.
            let subject = s("changed");
            let v = to_c(&subject, &mut Vec::new());
            let st = unsafe {
                rmqs_message_builder_set_property(b, RMQS_PROP_SUBJECT as i32, &v, &mut err)
            };
            check(st, err, "set_property");
            for (_, value) in spec
                .properties
                .iter_mut()
                .filter(|(c, _)| *c == RMQS_PROP_SUBJECT as i32)
            {
                *value = subject.clone();
            }
        }
        let (part, id) = send(sp, None, body, i);
        let key = format!("customer-{}", i % 8);
        assert_eq!(part, route_partition(&key, 3), "body {i}");
        assert_eq!(id, want[part].len() as u64, "per-partition ids, body {i}");
        want[part].push(with_body(&spec, body));
    }
    // An explicit key wins over the extractor (the body has none).
    let explicit = CString::new("customer-1").unwrap();
    let (part, id) = send(sp, Some(&explicit), b"no key here", 24);
    assert_eq!(part, route_partition("customer-1", 3));
    assert_eq!(id, want[part].len() as u64);
    want[part].push(with_body(&spec, b"no key here"));
    // A body without a key and no explicit key: refused, nothing sent.
    let st = unsafe {
        rmqs_super_producer_send_message_body(
            sp,
            ptr::null(),
            b,
            b"nokey".as_ptr(),
            5,
            0,
            0,
            ptr::null_mut(),
            ptr::null_mut(),
            &mut err,
        )
    };
    assert_eq!(st, RMQS_ERR_INVALID_ARGUMENT as i32, "{}", message(err));
    // The builder's own body is still there (sent whole with an explicit key).
    let own = CString::new("own").unwrap();
    let mut part = u32::MAX;
    let st = unsafe {
        rmqs_super_producer_send_message(
            sp,
            own.as_ptr(),
            b,
            25,
            0,
            &mut part,
            ptr::null_mut(),
            &mut err,
        )
    };
    check(st, err, "super send_message");
    assert_eq!(part as usize, route_partition("own", 3));
    want[part as usize].push(spec.clone());
    // Bad arguments: NULL body with a length, NULL builder, flags the builder replaces, NULL
    // super producer.
    let bad = |sp, msg: *const rmqs_message_builder, body: *const u8, flags| {
        let mut e = ptr::null_mut();
        let st = unsafe {
            rmqs_super_producer_send_message_body(
                sp,
                explicit.as_ptr(),
                msg,
                body,
                3,
                0,
                flags,
                ptr::null_mut(),
                ptr::null_mut(),
                &mut e,
            )
        };
        let m = message(e);
        (st, m)
    };
    let (st, m) = bad(sp, b, ptr::null(), 0);
    assert_eq!(st, RMQS_ERR_INVALID_ARGUMENT as i32, "NULL body: {m}");
    let (st, m) = bad(sp, ptr::null(), b"abc".as_ptr(), 0);
    assert_eq!(st, RMQS_ERR_INVALID_ARGUMENT as i32, "NULL builder: {m}");
    let (st, m) = bad(sp, b, b"abc".as_ptr(), RMQS_SEND_RAW);
    assert_eq!(st, RMQS_ERR_INVALID_ARGUMENT as i32, "RMQS_SEND_RAW: {m}");
    let (st, m) = bad(sp, b, b"abc".as_ptr(), RMQS_SEND_PUBLISHING_ID);
    assert_eq!(st, RMQS_ERR_INVALID_ARGUMENT as i32, "PUBLISHING_ID: {m}");
    let (st, m) = bad(ptr::null_mut(), b, b"abc".as_ptr(), 0);
    assert_eq!(
        st, RMQS_ERR_INVALID_ARGUMENT as i32,
        "NULL super producer: {m}"
    );
    // Closed: refused.
    assert_eq!(
        unsafe { rmqs_super_producer_close(sp, 30_000, ptr::null_mut()) },
        0,
        "close"
    );
    let (st, m) = bad(sp, b, b"abc".as_ptr(), 0);
    assert_eq!(st, RMQS_ERR_CLOSED as i32, "closed: {m}");
    unsafe { rmqs_super_producer_free(sp) };

    // A routing callback given the body sent: partition = its length modulo 3.
    let cfg = config(config_pairs);
    let st = unsafe {
        rmqs_config_set_routing_cb(cfg, Some(by_body_len), ptr::null_mut(), None, &mut err)
    };
    check(st, err, "routing callback");
    let sp = super_producer(conn, &name, cfg);
    unsafe { rmqs_config_free(cfg) };
    for len in 0..7usize {
        let body = vec![b'a' + len as u8; len];
        let (part, _) = send(sp, None, &body, 100 + len);
        assert_eq!(part, len % 3, "body of {len} bytes");
        want[part].push(with_body(&spec, &body));
    }
    assert_eq!(
        unsafe { rmqs_super_producer_flush(sp, 30_000, ptr::null_mut()) },
        0
    );
    unsafe { rmqs_super_producer_free(sp) };
    unsafe { rmqs_message_builder_free(b) };

    assert_eq!(want.iter().map(Vec::len).sum::<usize>(), 24 + 1 + 1 + 7);
    for (k, part) in parts.iter().enumerate() {
        assert!(!want[k].is_empty(), "partition {k} gets messages");
        let got = consume(conn, part, want[k].len());
        for (i, (w, r)) in want[k].iter().zip(&got).enumerate() {
            assert_eq!(r.offset, i as u64, "partition {k}");
            w.assert_read(r, &format!("partition {k}, message {i}"));
        }
    }
    let st = unsafe { rmqs_super_stream_delete(conn, name.as_ptr(), &mut err) };
    check(st, err, "delete super stream");
    unsafe { rmqs_connection_free(conn) };
}
