//! AMQP messages between the C API and the Python client rstream (the venv of
//! `scripts/install-deps`, as in `tests/interop_rstream.rs`), through the broker of
//! scripts/broker (RMQS_TEST_URI):
//!
//! * `c_builder_messages_are_read_by_rstream`: messages with every section, built with
//!   `rmqs_message_builder` and sent with `rmqs_producer_send_message(s)` (also in a gzip
//!   sub-entry), are read by `tests/interop/rstream_consume.py` with rstream's own AMQP decoder;
//!   every header field, property, application property, annotation, footer entry and the body
//!   must equal what was set.
//! * `rstream_messages_are_read_typed_from_c`: `tests/interop/rstream_publish.py` publishes
//!   messages with every type rstream can write (plain and in `none`/`gzip` sub-entries); the C
//!   typed accessors must give each value with the type and value of its manifest.
//! * `c_builder_messages_are_read_by_an_amqp_091_consumer`: the same C messages read by an AMQP
//!   0-9-1 consumer of the stream (`tests/interop/pika_consume.py`, pika, x-stream-offset
//!   first) on the broker's AMQP port: content type, encoding, message and correlation ids,
//!   reply-to, user id, priority, durability, TTL and creation time as basic properties, the
//!   application properties and message annotations as headers, the body as sent. Found on the
//!   way (RabbitMQ 4.0.5, not this library): an application property that is a uuid or a double
//!   that is not finite makes the broker close the 0-9-1 channel (INTERNAL_ERROR in
//!   `mc_amqpl:to_091`), and negative timestamps cannot be carried, so that message leaves them
//!   out.
//! * `c_builder_messages_are_read_by_an_amqp_10_consumer`: the same C messages read by an AMQP
//!   1.0 receiver of the stream (`tests/interop/proton_consume.py`, python-qpid-proton, source
//!   filter `rabbitmq:stream-offset-spec`): every property, the header fields the broker keeps,
//!   every application property with its AMQP type (NaN, infinity, uuid, negative timestamp
//!   included), the message annotations and the bodies. proton's Python `Message` does not
//!   expose the footer, and the broker drops delivery annotations (hop by hop), so those two
//!   are checked by the rstream test only.
//!
//! Python: `RMQS_PYTHON` if set, else `${RMQS_STATE:-~/.rmqstream}/venv/bin/python`; the tests
//! pass with a notice when neither exists (CI always has it).

mod support;

use std::ffi::{CStr, CString};
use std::path::Path;
use std::ptr;

use rmqstream::ffi::rmqs_header_code::*;
use rmqstream::ffi::rmqs_property_code::*;
use rmqstream::ffi::*;
use rmqstream::protocol::amqp::Value;
use support::capi::*;
use support::interop::{python, python_with, run_script};
use support::messages::*;
use support::mini_json::{Json, hex, unhex};
use support::uri;

// ---------------------------------------------------------------------------------------------
// C writes, rstream reads

/// What rstream_consume.py reports for a value pyamqp decoded (see its docstring): every
/// integer type and timestamp as "int", float and double as the bits of a double, string,
/// symbol and binary as "bytes".
fn pv(v: &Value<'_>) -> Json {
    let tagged =
        |t: &str, v: Json| Json::Object(vec![("t".into(), Json::Str(t.into())), ("v".into(), v)]);
    let int = |x: i128| tagged("int", Json::Int(x));
    let float = |x: f64| tagged("float", Json::Str(hex(&x.to_bits().to_be_bytes())));
    match v {
        Value::Null => Json::Object(vec![("t".into(), Json::Str("null".into()))]),
        Value::Bool(b) => tagged("bool", Json::Bool(*b)),
        Value::Ubyte(x) => int((*x).into()),
        Value::Ushort(x) => int((*x).into()),
        Value::Uint(x) => int((*x).into()),
        Value::Ulong(x) => int((*x).into()),
        Value::Byte(x) => int((*x).into()),
        Value::Short(x) => int((*x).into()),
        Value::Int(x) => int((*x).into()),
        Value::Long(x) | Value::Timestamp(x) => int((*x).into()),
        Value::Float(x) => float((*x).into()),
        Value::Double(x) => float(*x),
        Value::Uuid(u) => tagged("uuid", Json::Str(hex(u))),
        Value::String(s) | Value::Symbol(s) => tagged("bytes", Json::Str(hex(s.as_bytes()))),
        Value::Binary(b) => tagged("bytes", Json::Str(hex(b))),
        Value::List(items) => tagged("list", Json::Array(items.iter().map(pv).collect())),
        Value::Map(pairs) => tagged(
            "map",
            Json::Array(
                pairs
                    .iter()
                    .map(|(k, v)| Json::Array(vec![pv(k), pv(v)]))
                    .collect(),
            ),
        ),
        other => panic!("no rstream form for {other:?}"),
    }
}

fn pv_map(entries: &[(String, Value<'static>)], symbol_keys: bool) -> Json {
    if entries.is_empty() {
        return Json::Null;
    }
    let key = |k: &str| {
        if symbol_keys {
            Value::Symbol(k.to_string().into())
        } else {
            Value::String(k.to_string().into())
        }
    };
    pv(&Value::Map(
        entries.iter().map(|(k, v)| (key(k), v.clone())).collect(),
    ))
}

const HEADER_FIELDS: [&str; 5] = [
    "durable",
    "priority",
    "ttl",
    "first_acquirer",
    "delivery_count",
];
const PROPERTY_FIELDS: [&str; 13] = [
    "message_id",
    "user_id",
    "to",
    "subject",
    "reply_to",
    "correlation_id",
    "content_type",
    "content_encoding",
    "absolute_expiry_time",
    "creation_time",
    "group_id",
    "group_sequence",
    "reply_to_group_id",
];

fn pv_fields(names: &[&str], set: &[(i32, Value<'static>)]) -> Json {
    if set.is_empty() {
        return Json::Null;
    }
    Json::Object(
        names
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let v = set
                    .iter()
                    .find(|(code, _)| *code == i as i32 + 1)
                    .map_or(Value::Null, |(_, v)| v.clone());
                (n.to_string(), pv(&v))
            })
            .collect(),
    )
}

fn s(x: &str) -> Value<'static> {
    Value::String(x.to_string().into())
}

fn sym(x: &str) -> Value<'static> {
    Value::Symbol(x.to_string().into())
}

/// Messages with every section and every type rstream decodes.
fn c_messages() -> Vec<Spec> {
    let h = |c: rmqs_header_code, v| (c as i32, v);
    let p = |c: rmqs_property_code, v| (c as i32, v);
    let full = Spec {
        header: vec![
            h(RMQS_HEADER_DURABLE, Value::Bool(true)),
            h(RMQS_HEADER_PRIORITY, Value::Ubyte(9)),
            h(RMQS_HEADER_TTL, Value::Uint(30_000)),
            h(RMQS_HEADER_FIRST_ACQUIRER, Value::Bool(true)),
            h(RMQS_HEADER_DELIVERY_COUNT, Value::Uint(2)),
        ],
        properties: vec![
            p(RMQS_PROP_MESSAGE_ID, s("id-ünï")),
            p(RMQS_PROP_USER_ID, Value::Binary(b"guest".to_vec().into())),
            p(RMQS_PROP_TO, s("/queues/q")),
            p(RMQS_PROP_SUBJECT, s("subject ✓")),
            p(RMQS_PROP_REPLY_TO, s("reply")),
            p(RMQS_PROP_CORRELATION_ID, Value::Ulong(u64::MAX)),
            p(RMQS_PROP_CONTENT_TYPE, sym("application/json")),
            p(RMQS_PROP_CONTENT_ENCODING, sym("identity")),
            p(
                RMQS_PROP_ABSOLUTE_EXPIRY_TIME,
                Value::Timestamp(1_800_000_000_000),
            ),
            p(RMQS_PROP_CREATION_TIME, Value::Timestamp(-1_000)),
            p(RMQS_PROP_GROUP_ID, s("g")),
            p(RMQS_PROP_GROUP_SEQUENCE, Value::Uint(u32::MAX)),
            p(RMQS_PROP_REPLY_TO_GROUP_ID, s("rg")),
        ],
        app: vec![
            ("null".into(), Value::Null),
            ("bool".into(), Value::Bool(false)),
            ("ubyte".into(), Value::Ubyte(255)),
            ("ushort".into(), Value::Ushort(65_535)),
            ("uint".into(), Value::Uint(u32::MAX)),
            ("ulong".into(), Value::Ulong(u64::MAX)),
            ("byte".into(), Value::Byte(-128)),
            ("short".into(), Value::Short(-32_768)),
            ("int".into(), Value::Int(i32::MIN)),
            ("long".into(), Value::Long(i64::MIN)),
            ("float".into(), Value::Float(1.5)),
            ("double".into(), Value::Double(f64::INFINITY)),
            ("nan".into(), Value::Double(f64::NAN)),
            ("timestamp".into(), Value::Timestamp(-86_400_000)),
            (
                "uuid".into(),
                Value::Uuid(*b"\x01\x23\x45\x67\x89\xab\xcd\xef\x01\x23\x45\x67\x89\xab\xcd\xef"),
            ),
            ("string".into(), s("héllo ✓")),
            ("symbol".into(), sym("a-symbol")),
            ("binary".into(), Value::Binary(vec![0, 0xff, 0x80].into())),
            ("empty".into(), s("")),
            ("ключ".into(), Value::Long(7)),
        ],
        message_annotations: vec![
            ("x-opt-string".into(), s("annotation")),
            ("x-opt-long".into(), Value::Long(-3)),
            (
                "x-opt-list".into(),
                Value::List(vec![Value::Int(1), s("two")]),
            ),
        ],
        delivery_annotations: vec![("x-opt-da".into(), Value::Bool(true))],
        footer: vec![("x-opt-footer".into(), Value::Binary(vec![1, 2, 3].into()))],
        body: BodySpec::Data(vec![b"the body \xff".to_vec()]),
    };
    let mut value_body = Spec::empty();
    value_body.body = BodySpec::Value(s("an amqp-value string"));
    value_body.properties = vec![(RMQS_PROP_MESSAGE_ID as i32, Value::Uuid([0xab; 16]))];
    let mut binary_id = Spec::empty();
    binary_id.properties = vec![
        (
            RMQS_PROP_MESSAGE_ID as i32,
            Value::Binary(vec![9, 8, 7].into()),
        ),
        (RMQS_PROP_CORRELATION_ID as i32, s("")),
    ];
    binary_id.body = BodySpec::Data(vec![vec![0x5a; 70_000]]);
    let mut sequence = Spec::empty();
    sequence.body = BodySpec::Sequence(vec![vec![
        Value::Long(-7),
        s("two"),
        Value::Null,
        Value::Bool(true),
        Value::Binary(vec![0, 0xff].into()),
    ]]);
    vec![full, value_body, binary_id, sequence]
}

fn publish(conn: *mut rmqs_connection, stream: &CString, keys: &[(&str, &str)], specs: &[Spec]) {
    let p = bare_producer(conn, stream, keys);
    let builders: Vec<*mut rmqs_message_builder> =
        specs.iter().map(|_| rmqs_message_builder_new()).collect();
    for (b, spec) in builders.iter().zip(specs) {
        spec.apply(*b);
    }
    // The first alone, the rest as a batch.
    let mut err = ptr::null_mut();
    let st = unsafe { rmqs_producer_send_message(p, builders[0], 0, 0, ptr::null_mut(), &mut err) };
    check(st, err, "send_message");
    let rest: Vec<*const rmqs_message_builder> =
        builders[1..].iter().map(|b| b.cast_const()).collect();
    let mut accepted = 0;
    let (st, m) = send_messages(p, &rest, &[], &mut accepted);
    assert_eq!(st, 0, "send_messages: {m}");
    assert_eq!(
        unsafe { rmqs_producer_flush(p, 30_000, std::ptr::null_mut()) },
        0
    );
    unsafe { rmqs_producer_free(p) };
    for b in builders {
        unsafe { rmqs_message_builder_free(b) };
    }
}

#[test]
fn c_builder_messages_are_read_by_rstream() {
    let Some(py) = python() else { return };
    let (conn, stream) = conn_and_stream("c-to-rstream");
    let specs = c_messages();
    publish(conn, &stream, &[], &specs);
    publish(
        conn,
        &stream,
        &[("sub_entry_size", "10"), ("compression", "gzip")],
        &specs,
    );
    let report = run_script(
        &py,
        "rstream_consume.py",
        &[
            "--uri".into(),
            uri(),
            "--stream".into(),
            stream.to_str().unwrap().into(),
            "--count".into(),
            (2 * specs.len()).to_string(),
        ],
    );
    delete_and_free(conn, &stream);
    assert!(
        !report.get("timed_out").bool("timed_out"),
        "rstream timed out"
    );
    let got = report.get("messages").array("messages");
    assert_eq!(got.len(), 2 * specs.len());
    for (i, m) in got.iter().enumerate() {
        let spec = &specs[i % specs.len()];
        assert!(
            m.get("amqp_error").is_null(),
            "message {i}: rstream could not decode it: {:?}",
            m.get("amqp_error")
        );
        let a = m.get("amqp");
        let check = |name: &str, want: Json| {
            assert_eq!(a.get(name), &want, "message {i}: {name}");
        };
        check("header", pv_fields(&HEADER_FIELDS, &spec.header));
        check("properties", pv_fields(&PROPERTY_FIELDS, &spec.properties));
        check("application_properties", pv_map(&spec.app, false));
        check(
            "message_annotations",
            pv_map(&spec.message_annotations, true),
        );
        check(
            "delivery_annotations",
            pv_map(&spec.delivery_annotations, true),
        );
        check("footer", pv_map(&spec.footer, true));
        match &spec.body {
            BodySpec::Data(sections) => {
                check("body", pv(&Value::Binary(sections[0].clone().into())));
            }
            BodySpec::Value(v) => check("value", pv(v)),
            BodySpec::Sequence(lists) => {
                let lists = lists.iter().map(|l| Value::List(l.clone())).collect();
                check("sequence", pv(&Value::List(lists)));
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// rstream writes, C reads

/// A manifest typed value ({"type", "value"}) as a [`Value`].
fn tv(j: &Json) -> Value<'static> {
    let t = j.get("type").str("type");
    let v = j.get("value");
    let int = || v.int("value");
    let bits = || unhex(v.str("value")).unwrap();
    match t {
        "null" => Value::Null,
        "boolean" => Value::Bool(v.bool("value")),
        "ubyte" => Value::Ubyte(int() as u8),
        "ushort" => Value::Ushort(int() as u16),
        "uint" => Value::Uint(int() as u32),
        "ulong" => Value::Ulong(int() as u64),
        "byte" => Value::Byte(int() as i8),
        "short" => Value::Short(int() as i16),
        "int" => Value::Int(int() as i32),
        "long" => Value::Long(int() as i64),
        "timestamp" => Value::Timestamp(int() as i64),
        "float" => Value::Float(f32::from_be_bytes(bits().try_into().unwrap())),
        "double" => Value::Double(f64::from_be_bytes(bits().try_into().unwrap())),
        "binary" => Value::Binary(bits().into()),
        "uuid" => Value::Uuid(bits().try_into().unwrap()),
        "string" => s(v.str("value")),
        "symbol" => sym(v.str("value")),
        other => panic!("manifest type {other}"),
    }
}

fn manifest_fields(j: &Json, names: &[&str]) -> Vec<(i32, Value<'static>)> {
    if j.is_null() {
        return Vec::new();
    }
    names
        .iter()
        .enumerate()
        .filter(|(_, n)| j.has(n))
        .map(|(i, n)| (i as i32 + 1, tv(j.get(n))))
        .collect()
}

fn manifest_pairs(j: &Json) -> Vec<(String, Value<'static>)> {
    key_values(j)
        .into_iter()
        .map(|(k, v)| (k, tv(&v)))
        .collect()
}

/// A report's `[[key, value], ...]` list (null: none) as (key, value) pairs.
fn key_values(j: &Json) -> Vec<(String, Json)> {
    if j.is_null() {
        return Vec::new();
    }
    j.array("pairs")
        .iter()
        .map(|p| {
            let p = p.array("pair");
            (p[0].str("key").to_string(), p[1].clone())
        })
        .collect()
}

#[test]
fn rstream_messages_are_read_typed_from_c() {
    let Some(py) = python() else { return };
    let (conn, stream) = conn_and_stream("rstream-to-c");
    let manifest = run_script(
        &py,
        "rstream_publish.py",
        &[
            "--uri".into(),
            uri(),
            "--stream".into(),
            stream.to_str().unwrap().into(),
            "--count".into(),
            "24".into(),
            "--sub-entry".into(),
            "none,gzip".into(),
        ],
    );
    let sent = manifest.get("messages").array("messages");
    let got = consume(conn, &stream, sent.len());
    delete_and_free(conn, &stream);
    for (i, (m, r)) in sent.iter().zip(&got).enumerate() {
        let what = format!("rstream message {i}");
        let header = manifest_fields(m.get("header"), &HEADER_NAMES_MANIFEST);
        let properties = manifest_fields(m.get("properties"), &PROPERTY_FIELDS);
        let spec = Spec {
            header,
            properties,
            app: manifest_pairs(m.get("application_properties")),
            message_annotations: manifest_pairs(m.get("message_annotations")),
            delivery_annotations: manifest_pairs(m.get("delivery_annotations")),
            footer: manifest_pairs(m.get("footer")),
            body: BodySpec::Data(vec![unhex(m.get("body_hex").str("body_hex")).unwrap()]),
        };
        spec.assert_read(r, &what);
        assert_eq!(
            hex(&r.plain_body),
            m.get("body_hex").str("body_hex"),
            "{what}: rmqs_message_body"
        );
    }
}

const HEADER_NAMES_MANIFEST: [&str; 5] = HEADER_FIELDS;

// ---------------------------------------------------------------------------------------------
// C writes, an AMQP 0-9-1 consumer (pika) reads

/// The AMQP 0-9-1 URI of the broker: `RMQS_TEST_AMQP_URI`, else the stream URI's host on port
/// 5672 (scripts/broker's default AMQP listener).
fn amqp_uri() -> String {
    if let Ok(u) = std::env::var("RMQS_TEST_AMQP_URI") {
        return u;
    }
    let u = uri();
    let rest = u.split("://").nth(1).unwrap();
    let authority = rest.split('/').next().unwrap();
    let hostport = authority.rsplit('@').next().unwrap();
    let host = hostport
        .split(',')
        .next()
        .unwrap()
        .rsplit_once(':')
        .map_or(hostport, |(h, _)| h);
    format!("amqp://guest:guest@{host}:5672/%2f")
}

/// What the AMQP consumer `script` (pika_consume.py, proton_consume.py) reports reading the
/// first `count` messages of `stream` on the broker's AMQP port: exactly `count` messages.
fn amqp_consume(py: &Path, script: &str, stream: &CStr, count: usize) -> Vec<Json> {
    let args = [
        "--amqp-uri".into(),
        amqp_uri(),
        "--stream".into(),
        stream.to_str().unwrap().into(),
        "--count".into(),
        count.to_string(),
    ];
    let report = run_script(py, script, &args);
    let got = report.get("messages").array("messages").to_vec();
    assert_eq!(got.len(), count);
    got
}

#[test]
fn c_builder_messages_are_read_by_an_amqp_091_consumer() {
    let Some(py) = python_with("pika") else {
        return;
    };
    let (conn, stream) = conn_and_stream("c-to-pika");
    // RabbitMQ 4.0's AMQP 1.0 -> 0-9-1 conversion (mc_amqpl:to_091) has no clause for uuids,
    // nor for doubles that are not finite (kept as raw bytes): such an application property
    // crashes the 0-9-1 channel (INTERNAL_ERROR). The 0-9-1 consumer gets the other types.
    let mut specs = c_messages();
    specs[0].app.retain(|(_, v)| match v {
        Value::Uuid(_) => false,
        Value::Double(d) => d.is_finite(),
        _ => true,
    });
    // 0-9-1 timestamps are unsigned seconds: negative ones cannot be carried.
    let full = &mut specs[0];
    let values = full.app.iter_mut().map(|(_, v)| v);
    for v in values.chain(full.properties.iter_mut().map(|(_, v)| v)) {
        if let Value::Timestamp(t) = v
            && *t < 0
        {
            *t = 1_700_000_000_000;
        }
    }
    publish(conn, &stream, &[], &specs);
    let got = amqp_consume(&py, "pika_consume.py", &stream, specs.len());
    delete_and_free(conn, &stream);
    let tagged =
        |t: &str, v: Json| Json::Object(vec![("t".into(), Json::Str(t.into())), ("v".into(), v)]);
    let text = |v: &str| tagged("str", Json::Str(v.into()));
    let int = |v: i128| tagged("int", Json::Int(v));
    // The properties the 0-9-1 consumer gets from the AMQP 1.0 properties and header.
    let p = got[0].get("properties");
    assert_eq!(p.get("content_type"), &text("application/json"));
    assert_eq!(p.get("content_encoding"), &text("identity"));
    assert_eq!(p.get("message_id"), &text("id-ünï"));
    assert_eq!(p.get("correlation_id"), &text("18446744073709551615"));
    assert_eq!(p.get("reply_to"), &text("reply"));
    assert_eq!(p.get("user_id"), &text("guest"));
    assert_eq!(p.get("priority"), &int(9));
    assert_eq!(p.get("delivery_mode"), &int(2), "durable");
    assert_eq!(p.get("expiration"), &text("30000"), "ttl");
    assert_eq!(
        p.get("timestamp"),
        &int(1_700_000_000),
        "creation-time, in seconds"
    );
    // The application properties (and message annotations) as headers. Compared where pika
    // decodes the broker's table types faithfully: it reads signed 8- and 64-bit integers as
    // unsigned and the broker sends floats as integers, so those are checked for presence only.
    let headers: Vec<(String, Json)> = got[0]
        .get("headers")
        .array("headers")
        .iter()
        .map(|kv| {
            let kv = kv.array("header");
            (kv[0].str("key").to_string(), kv[1].clone())
        })
        .collect();
    let header = |k: &str| {
        headers
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("no header {k:?} in {headers:?}"))
    };
    assert_eq!(header("string"), text("héllo ✓"));
    assert_eq!(header("symbol"), text("a-symbol"));
    assert_eq!(header("empty"), text(""));
    assert_eq!(header("bool"), tagged("bool", Json::Bool(false)));
    assert_eq!(header("null"), Json::Null);
    assert_eq!(header("short"), int(-32_768));
    assert_eq!(header("int"), int(i32::MIN.into()));
    assert_eq!(header("ushort"), int(65_535));
    assert_eq!(header("uint"), int(u32::MAX.into()));
    assert_eq!(header("ulong"), int(u64::MAX.into()));
    assert_eq!(header("ключ"), int(7));
    assert_eq!(
        header("binary"),
        tagged("bytes", Json::Str("00ff80".into()))
    );
    assert_eq!(header("x-opt-string"), text("annotation"));
    for k in ["byte", "ubyte", "long", "float", "timestamp", "x-opt-list"] {
        header(k);
    }
    assert_eq!(got[0].get("body_hex").str("body"), hex(b"the body \xff"));
    // A uuid message-id comes as its urn; a data body of 70 000 bytes as it is.
    assert_eq!(
        got[1].get("properties").get("message_id"),
        &text("urn:uuid:abababab-abab-abab-abab-abababababab")
    );
    assert_eq!(got[2].get("body_hex").str("body"), hex(&[0x5a; 70_000]));
}

// ---------------------------------------------------------------------------------------------
// C writes, an AMQP 1.0 consumer (python-qpid-proton) reads

#[test]
fn c_builder_messages_are_read_by_an_amqp_10_consumer() {
    let Some(py) = python_with("proton") else {
        return;
    };
    let (conn, stream) = conn_and_stream("c-to-proton");
    let specs = c_messages();
    publish(conn, &stream, &[], &specs);
    let got = amqp_consume(&py, "proton_consume.py", &stream, specs.len());
    delete_and_free(conn, &stream);
    let t =
        |t: &str, v: Json| Json::Object(vec![("t".into(), Json::Str(t.into())), ("v".into(), v)]);
    let bits = |x: f64| Json::Str(hex(&x.to_bits().to_be_bytes()));
    // Every property, as proton's Message gives them (times and TTL in seconds).
    let p = got[0].get("properties");
    let want_properties = [
        ("id", t("str", Json::Str("id-ünï".into()))),
        ("user_id", t("bytes", Json::Str(hex(b"guest")))),
        ("address", t("str", Json::Str("/queues/q".into()))),
        ("subject", t("str", Json::Str("subject ✓".into()))),
        ("reply_to", t("str", Json::Str("reply".into()))),
        ("correlation_id", t("int", Json::Int(u64::MAX.into()))),
        (
            "content_type",
            t("symbol", Json::Str("application/json".into())),
        ),
        (
            "content_encoding",
            t("symbol", Json::Str("identity".into())),
        ),
        ("expiry_time", t("float", bits(1_800_000_000.0))),
        ("creation_time", t("float", bits(-1.0))),
        ("group_id", t("str", Json::Str("g".into()))),
        ("group_sequence", t("int", Json::Int(u32::MAX.into()))),
        ("reply_to_group_id", t("str", Json::Str("rg".into()))),
    ];
    for (name, want) in &want_properties {
        assert_eq!(p.get(name), want, "properties.{name}");
    }
    // The header fields the broker keeps (delivery-count and first-acquirer are the
    // delivery's, set by the broker when it delivers).
    let h = got[0].get("header");
    assert_eq!(h.get("durable"), &t("bool", Json::Bool(true)));
    assert_eq!(h.get("priority"), &t("int", Json::Int(9)));
    assert_eq!(h.get("ttl"), &t("float", bits(30.0)));
    // Every application property with its AMQP type (proton's names: int32 for int, int for
    // long, float32 for float, float for double, memoryview for binary).
    fn proton(v: &Value<'_>) -> Json {
        let t = |t: &str, v: Json| {
            Json::Object(vec![("t".into(), Json::Str(t.into())), ("v".into(), v)])
        };
        let bits = |x: f64| Json::Str(hex(&x.to_bits().to_be_bytes()));
        match v {
            Value::Null => Json::Null,
            Value::Bool(b) => t("bool", Json::Bool(*b)),
            Value::Ubyte(x) => t("ubyte", Json::Int((*x).into())),
            Value::Ushort(x) => t("ushort", Json::Int((*x).into())),
            Value::Uint(x) => t("uint", Json::Int((*x).into())),
            Value::Ulong(x) => t("ulong", Json::Int((*x).into())),
            Value::Byte(x) => t("byte", Json::Int((*x).into())),
            Value::Short(x) => t("short", Json::Int((*x).into())),
            Value::Int(x) => t("int32", Json::Int((*x).into())),
            Value::Long(x) => t("int", Json::Int((*x).into())),
            Value::Float(x) => t("float32", bits((*x).into())),
            Value::Double(x) => t("float", bits(*x)),
            Value::Timestamp(x) => t("timestamp", Json::Int((*x).into())),
            Value::Uuid(u) => t("UUID", Json::Str(hex(u))),
            Value::String(s) => t("str", Json::Str(s.to_string())),
            Value::Symbol(s) => t("symbol", Json::Str(s.to_string())),
            Value::Binary(b) => t("memoryview", Json::Str(hex(b))),
            Value::List(items) => t("list", Json::Array(items.iter().map(proton).collect())),
            other => panic!("no proton form for {other:?}"),
        }
    }
    let app = key_values(got[0].get("application_properties"));
    let want_app: Vec<(String, Json)> = specs[0]
        .app
        .iter()
        .map(|(k, v)| (k.clone(), proton(v)))
        .collect();
    assert_eq!(app, want_app, "application properties");
    // Our message annotations, among those the broker adds (x-exchange, x-routing-key, ...).
    let annotations = key_values(got[0].get("message_annotations"));
    for (k, v) in &specs[0].message_annotations {
        let want = (k.clone(), proton(v));
        assert!(annotations.contains(&want), "{want:?} in {annotations:?}");
    }
    assert_eq!(
        got[0].get("body"),
        &t("memoryview", Json::Str(hex(b"the body \xff")))
    );
    assert_eq!(
        got[1].get("properties").get("id"),
        &t("UUID", Json::Str(hex(&[0xab; 16])))
    );
    assert_eq!(
        got[1].get("body"),
        &t("str", Json::Str("an amqp-value string".into()))
    );
    assert_eq!(
        got[2].get("properties").get("id"),
        &t("memoryview", Json::Str("090807".into()))
    );
    assert_eq!(
        got[2].get("properties").get("correlation_id"),
        &t("str", Json::Str(String::new()))
    );
    assert_eq!(
        got[2].get("body"),
        &t("memoryview", Json::Str(hex(&[0x5a; 70_000])))
    );
    // The amqp-sequence body (one section: proton keeps the last one only), typed.
    let BodySpec::Sequence(lists) = &specs[3].body else {
        unreachable!()
    };
    assert_eq!(got[3].get("body"), &proton(&Value::List(lists[0].clone())));
}
