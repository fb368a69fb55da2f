//! Helpers for tests of AMQP messages through the C API: connections, streams, producers and
//! consumers by their `extern "C"` functions; [`Spec`], a message described by its typed values,
//! applied to an `rmqs_message_builder` with the C setters; [`Read`], a received message read
//! back with the C typed accessors only. Values are the codec's [`Value`] (owned), compared by
//! their encodings so that types and float bits must match exactly (NaN included).

use std::ffi::{CStr, CString, c_char};
use std::ptr;
use std::time::{Duration, Instant};

use rmqstream::ffi::rmqs_body_type_code::*;
use rmqstream::ffi::rmqs_event_type_code::*;
use rmqstream::ffi::rmqs_section_code::*;
use rmqstream::ffi::rmqs_value_type_code::*;
use rmqstream::ffi::*;
use rmqstream::protocol::amqp::Value;

use super::capi::{check, config, message, poll_event, queue, try_queue_consumer};

/// Reads `count` messages of `stream` from its first offset with a C consumer in queue mode,
/// each through [`Read::of`].
pub fn consume(conn: *mut rmqs_connection, stream: &CStr, count: usize) -> Vec<Read> {
    let q = queue();
    let c = try_queue_consumer(conn, stream, config(&[("offset", "first")]), q)
        .unwrap_or_else(|e| panic!("consumer: {e:?}"));
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while out.len() < count && Instant::now() < deadline {
        let ev = poll_event(q, 200);
        if ev.is_null() {
            continue;
        }
        if unsafe { rmqs_event_type(ev) } == RMQS_EVENT_CHUNK as i32 {
            let ch = unsafe { rmqs_event_chunk(ev) };
            for i in 0..unsafe { rmqs_chunk_message_count(ch) } {
                out.push(Read::of(unsafe { rmqs_chunk_message(ch, i) }));
            }
        }
        unsafe { rmqs_event_free(ev) };
    }
    unsafe {
        rmqs_consumer_free(c);
        rmqs_queue_free(q);
    }
    assert_eq!(out.len(), count, "messages consumed within 30 s");
    out
}

/// `v` as an `rmqs_value` pointing into `v` (compounds as their encodings, kept in `keep`).
pub fn to_c(v: &Value<'_>, keep: &mut Vec<Vec<u8>>) -> rmqs_value {
    let mut c = rmqs_value::default();
    let (kind, bytes): (rmqs_value_type_code, Option<&[u8]>) = match v {
        Value::Null => (RMQS_VALUE_NULL, None),
        Value::Bool(b) => {
            c.bool_value = *b;
            (RMQS_VALUE_BOOL, None)
        }
        Value::Ubyte(x) => {
            c.uint_value = (*x).into();
            (RMQS_VALUE_UBYTE, None)
        }
        Value::Ushort(x) => {
            c.uint_value = (*x).into();
            (RMQS_VALUE_USHORT, None)
        }
        Value::Uint(x) => {
            c.uint_value = (*x).into();
            (RMQS_VALUE_UINT, None)
        }
        Value::Ulong(x) => {
            c.uint_value = *x;
            (RMQS_VALUE_ULONG, None)
        }
        Value::Byte(x) => {
            c.int_value = (*x).into();
            (RMQS_VALUE_BYTE, None)
        }
        Value::Short(x) => {
            c.int_value = (*x).into();
            (RMQS_VALUE_SHORT, None)
        }
        Value::Int(x) => {
            c.int_value = (*x).into();
            (RMQS_VALUE_INT, None)
        }
        Value::Long(x) => {
            c.int_value = *x;
            (RMQS_VALUE_LONG, None)
        }
        Value::Float(x) => {
            c.float_value = (*x).into();
            (RMQS_VALUE_FLOAT, None)
        }
        Value::Double(x) => {
            c.float_value = *x;
            (RMQS_VALUE_DOUBLE, None)
        }
        Value::Timestamp(x) => {
            c.int_value = *x;
            (RMQS_VALUE_TIMESTAMP, None)
        }
        Value::Uuid(u) => {
            c.uuid = *u;
            (RMQS_VALUE_UUID, None)
        }
        Value::Char(ch) => {
            c.uint_value = u32::from(*ch).into();
            (RMQS_VALUE_CHAR, None)
        }
        Value::String(s) => (RMQS_VALUE_STRING, Some(s.as_bytes())),
        Value::Symbol(s) => (RMQS_VALUE_SYMBOL, Some(s.as_bytes())),
        Value::Binary(b) => (RMQS_VALUE_BINARY, Some(&b[..])),
        Value::Decimal32(d) => (RMQS_VALUE_DECIMAL32, Some(&d[..])),
        Value::Decimal64(d) => (RMQS_VALUE_DECIMAL64, Some(&d[..])),
        Value::Decimal128(d) => (RMQS_VALUE_DECIMAL128, Some(&d[..])),
        Value::List(_) | Value::Map(_) | Value::Array(_) | Value::Described(_) => {
            keep.push(v.to_bytes().unwrap().to_vec());
            let kind = match v {
                Value::List(_) => RMQS_VALUE_LIST,
                Value::Map(_) => RMQS_VALUE_MAP,
                Value::Array(_) => RMQS_VALUE_ARRAY,
                _ => RMQS_VALUE_DESCRIBED,
            };
            let b = keep.last().unwrap();
            c.kind = kind as i32;
            c.data = b.as_ptr();
            c.len = b.len();
            return c;
        }
    };
    c.kind = kind as i32;
    if let Some(b) = bytes {
        c.data = if b.is_empty() {
            ptr::null()
        } else {
            b.as_ptr()
        };
        c.len = b.len();
    }
    c
}

fn bytes_of(v: &rmqs_value) -> Vec<u8> {
    if v.len == 0 {
        return Vec::new();
    }
    assert!(!v.data.is_null(), "data NULL with a length");
    unsafe { std::slice::from_raw_parts(v.data, v.len) }.to_vec()
}

/// An `rmqs_value` read back as an owned [`Value`], compounds through the C accessors.
pub fn from_c(v: &rmqs_value) -> Value<'static> {
    let k = v.kind;
    let is = |c: rmqs_value_type_code| k == c as i32;
    if is(RMQS_VALUE_NULL) {
        Value::Null
    } else if is(RMQS_VALUE_BOOL) {
        Value::Bool(v.bool_value)
    } else if is(RMQS_VALUE_UBYTE) {
        Value::Ubyte(v.uint_value.try_into().unwrap())
    } else if is(RMQS_VALUE_USHORT) {
        Value::Ushort(v.uint_value.try_into().unwrap())
    } else if is(RMQS_VALUE_UINT) {
        Value::Uint(v.uint_value.try_into().unwrap())
    } else if is(RMQS_VALUE_ULONG) {
        Value::Ulong(v.uint_value)
    } else if is(RMQS_VALUE_BYTE) {
        Value::Byte(v.int_value.try_into().unwrap())
    } else if is(RMQS_VALUE_SHORT) {
        Value::Short(v.int_value.try_into().unwrap())
    } else if is(RMQS_VALUE_INT) {
        Value::Int(v.int_value.try_into().unwrap())
    } else if is(RMQS_VALUE_LONG) {
        Value::Long(v.int_value)
    } else if is(RMQS_VALUE_FLOAT) {
        Value::Float(v.float_value as f32)
    } else if is(RMQS_VALUE_DOUBLE) {
        Value::Double(v.float_value)
    } else if is(RMQS_VALUE_TIMESTAMP) {
        Value::Timestamp(v.int_value)
    } else if is(RMQS_VALUE_UUID) {
        Value::Uuid(v.uuid)
    } else if is(RMQS_VALUE_CHAR) {
        Value::Char(char::from_u32(v.uint_value as u32).unwrap())
    } else if is(RMQS_VALUE_STRING) {
        Value::String(String::from_utf8(bytes_of(v)).unwrap().into())
    } else if is(RMQS_VALUE_SYMBOL) {
        Value::Symbol(String::from_utf8(bytes_of(v)).unwrap().into())
    } else if is(RMQS_VALUE_BINARY) {
        Value::Binary(bytes_of(v).into())
    } else if is(RMQS_VALUE_DECIMAL32) {
        Value::Decimal32(bytes_of(v).try_into().unwrap())
    } else if is(RMQS_VALUE_DECIMAL64) {
        Value::Decimal64(bytes_of(v).try_into().unwrap())
    } else if is(RMQS_VALUE_DECIMAL128) {
        Value::Decimal128(bytes_of(v).try_into().unwrap())
    } else if is(RMQS_VALUE_MAP) {
        let n = unsafe { rmqs_value_count(v) };
        let mut pairs = Vec::new();
        for i in 0..n {
            let (mut k, mut x) = (rmqs_value::default(), rmqs_value::default());
            assert!(unsafe { rmqs_value_map_entry(v, i, &mut k, &mut x) });
            pairs.push((from_c(&k), from_c(&x)));
        }
        assert!(!unsafe { rmqs_value_map_entry(v, n, ptr::null_mut(), ptr::null_mut()) });
        Value::Map(pairs)
    } else if is(RMQS_VALUE_LIST) || is(RMQS_VALUE_ARRAY) || is(RMQS_VALUE_DESCRIBED) {
        let n = unsafe { rmqs_value_count(v) };
        let mut items = Vec::new();
        for i in 0..n {
            let mut x = rmqs_value::default();
            assert!(unsafe { rmqs_value_list_get(v, i, &mut x) });
            items.push(from_c(&x));
        }
        assert!(!unsafe { rmqs_value_list_get(v, n, ptr::null_mut()) });
        if is(RMQS_VALUE_LIST) {
            Value::List(items)
        } else if is(RMQS_VALUE_ARRAY) {
            Value::Array(items)
        } else {
            let mut it = items.into_iter();
            Value::Described(Box::new((it.next().unwrap(), it.next().unwrap())))
        }
    } else {
        panic!("unknown value kind {k}")
    }
}

/// Values equal by type and bits (NaN == NaN with the same bits).
pub fn same(a: &Value<'_>, b: &Value<'_>) -> bool {
    a.to_bytes().unwrap() == b.to_bytes().unwrap()
}

/// Asserts two lists of values are the same, pair by pair (see [`same`]).
#[track_caller]
pub fn assert_same(what: &str, got: &[Value<'_>], want: &[Value<'_>]) {
    assert_eq!(got.len(), want.len(), "{what}: count");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(same(g, w), "{what}[{i}]: got {g:?}, want {w:?}");
    }
}

/// The body of a [`Spec`].
#[derive(Debug, Clone)]
pub enum BodySpec {
    /// Data sections (none: the builder's default, one empty section).
    Data(Vec<Vec<u8>>),
    /// One amqp-value.
    Value(Value<'static>),
    /// amqp-sequence sections (at least one), each a list of values.
    Sequence(Vec<Vec<Value<'static>>>),
}

/// A message described by its typed values, in the canonical types the builder writes.
#[derive(Debug, Clone)]
pub struct Spec {
    /// `(rmqs_header_code, value)`.
    pub header: Vec<(i32, Value<'static>)>,
    /// `(rmqs_property_code, value)`.
    pub properties: Vec<(i32, Value<'static>)>,
    pub app: Vec<(String, Value<'static>)>,
    pub message_annotations: Vec<(String, Value<'static>)>,
    pub delivery_annotations: Vec<(String, Value<'static>)>,
    pub footer: Vec<(String, Value<'static>)>,
    pub body: BodySpec,
}

impl Spec {
    pub fn empty() -> Spec {
        Spec {
            header: vec![],
            properties: vec![],
            app: vec![],
            message_annotations: vec![],
            delivery_annotations: vec![],
            footer: vec![],
            body: BodySpec::Data(vec![]),
        }
    }

    /// Sets everything on `b` (reset first) with the C setters.
    pub fn apply(&self, b: *mut rmqs_message_builder) {
        unsafe { rmqs_message_builder_reset(b) };
        let mut keep = Vec::new();
        let mut err = ptr::null_mut();
        for (f, v) in &self.header {
            let c = to_c(v, &mut keep);
            let st = unsafe { rmqs_message_builder_set_header(b, *f, &c, &mut err) };
            check(st, err, &format!("set_header {f} {v:?}"));
        }
        for (f, v) in &self.properties {
            let c = to_c(v, &mut keep);
            let st = unsafe { rmqs_message_builder_set_property(b, *f, &c, &mut err) };
            check(st, err, &format!("set_property {f} {v:?}"));
        }
        for (k, v) in &self.app {
            let key = CString::new(k.as_str()).unwrap();
            let c = to_c(v, &mut keep);
            let st =
                unsafe { rmqs_message_builder_add_app_property(b, key.as_ptr(), &c, &mut err) };
            check(st, err, &format!("add_app_property {k:?} {v:?}"));
        }
        for (section, entries) in [
            (RMQS_SECTION_MESSAGE_ANNOTATIONS, &self.message_annotations),
            (
                RMQS_SECTION_DELIVERY_ANNOTATIONS,
                &self.delivery_annotations,
            ),
            (RMQS_SECTION_FOOTER, &self.footer),
        ] {
            for (k, v) in entries {
                let key = CString::new(k.as_str()).unwrap();
                let c = to_c(v, &mut keep);
                let st = unsafe {
                    rmqs_message_builder_add_annotation(
                        b,
                        section as i32,
                        key.as_ptr(),
                        &c,
                        &mut err,
                    )
                };
                check(st, err, &format!("add_annotation {k:?} {v:?}"));
            }
        }
        match &self.body {
            BodySpec::Data(sections) => {
                for s in sections {
                    let st = unsafe {
                        rmqs_message_builder_add_body_section(b, s.as_ptr(), s.len(), &mut err)
                    };
                    check(st, err, "add_body_section");
                }
            }
            BodySpec::Value(v) => {
                let c = to_c(v, &mut keep);
                let st = unsafe { rmqs_message_builder_set_body_value(b, &c, &mut err) };
                check(st, err, "set_body_value");
            }
            BodySpec::Sequence(lists) => {
                for l in lists {
                    let items: Vec<rmqs_value> = l.iter().map(|v| to_c(v, &mut keep)).collect();
                    let st = unsafe {
                        rmqs_message_builder_add_body_sequence(
                            b,
                            items.as_ptr(),
                            items.len(),
                            &mut err,
                        )
                    };
                    check(st, err, &format!("add_body_sequence {l:?}"));
                }
            }
        }
    }

    /// Asserts `r` holds exactly this message.
    #[track_caller]
    pub fn assert_read(&self, r: &Read, what: &str) {
        let pairs = |v: &[(i32, Value<'static>)]| -> (Vec<i32>, Vec<Value<'static>>) {
            v.iter().cloned().unzip()
        };
        let (hf, hv) = pairs(&self.header);
        let (gf, gv) = pairs(&r.header);
        assert_eq!(gf, hf, "{what}: header fields");
        assert_same(&format!("{what}: header"), &gv, &hv);
        let (pf, pv) = pairs(&self.properties);
        let (gf, gv) = pairs(&r.properties);
        assert_eq!(gf, pf, "{what}: properties");
        assert_same(&format!("{what}: properties"), &gv, &pv);
        for (name, want, got) in [
            ("application properties", &self.app, &r.app),
            (
                "message annotations",
                &self.message_annotations,
                &r.message_annotations,
            ),
            (
                "delivery annotations",
                &self.delivery_annotations,
                &r.delivery_annotations,
            ),
            ("footer", &self.footer, &r.footer),
        ] {
            let (wk, wv): (Vec<_>, Vec<_>) = want.iter().cloned().unzip();
            let (gk, gv): (Vec<_>, Vec<_>) = got.iter().cloned().unzip();
            assert_eq!(gk, wk, "{what}: {name} keys");
            assert_same(&format!("{what}: {name}"), &gv, &wv);
        }
        match &self.body {
            BodySpec::Data(sections) => {
                assert_eq!(r.body_type, RMQS_BODY_DATA as i32, "{what}: body type");
                let want: Vec<Value<'static>> = if sections.is_empty() {
                    vec![Value::Binary(Vec::new().into())]
                } else {
                    sections
                        .iter()
                        .map(|s| Value::Binary(s.clone().into()))
                        .collect()
                };
                assert_same(&format!("{what}: body"), &r.body, &want);
            }
            BodySpec::Value(v) => {
                assert_eq!(r.body_type, RMQS_BODY_VALUE as i32, "{what}: body type");
                assert_same(&format!("{what}: body"), &r.body, std::slice::from_ref(v));
            }
            BodySpec::Sequence(lists) => {
                assert_eq!(r.body_type, RMQS_BODY_SEQUENCE as i32, "{what}: body type");
                let want: Vec<Value<'static>> =
                    lists.iter().map(|l| Value::List(l.clone())).collect();
                assert_same(&format!("{what}: body"), &r.body, &want);
            }
        }
    }
}

/// A received message as the C typed accessors give it.
#[derive(Debug, Clone)]
pub struct Read {
    pub offset: u64,
    pub header: Vec<(i32, Value<'static>)>,
    pub properties: Vec<(i32, Value<'static>)>,
    pub app: Vec<(String, Value<'static>)>,
    pub message_annotations: Vec<(String, Value<'static>)>,
    pub delivery_annotations: Vec<(String, Value<'static>)>,
    pub footer: Vec<(String, Value<'static>)>,
    pub body_type: i32,
    pub body: Vec<Value<'static>>,
    /// `rmqs_message_body()`.
    pub plain_body: Vec<u8>,
}

fn map_section(
    m: *const rmqs_message,
    section: rmqs_section_code,
) -> Vec<(String, Value<'static>)> {
    let mut v = rmqs_value::default();
    if !unsafe { rmqs_message_section(m, section as i32, &mut v) } {
        return Vec::new();
    }
    assert_eq!(v.kind, RMQS_VALUE_MAP as i32);
    match from_c(&v) {
        Value::Map(pairs) => pairs
            .into_iter()
            .map(|(k, x)| (k.as_str().expect("string or symbol key").to_string(), x))
            .collect(),
        other => panic!("section {section:?} is {other:?}"),
    }
}

impl Read {
    /// Reads every section of `m` with the typed accessors.
    pub fn of(m: *const rmqs_message) -> Read {
        let mut header = Vec::new();
        for f in 1..=5 {
            let mut v = rmqs_value::default();
            if unsafe { rmqs_message_header_value(m, f, &mut v) } {
                header.push((f, from_c(&v)));
            }
        }
        let mut properties = Vec::new();
        for p in 1..=13 {
            let mut v = rmqs_value::default();
            if unsafe { rmqs_message_property_value(m, p, &mut v) } {
                properties.push((p, from_c(&v)));
            }
        }
        let app = map_section(m, RMQS_SECTION_APPLICATION_PROPERTIES);
        // The by-key accessor agrees with the section.
        for (k, x) in &app {
            let key = CString::new(k.as_str()).unwrap();
            let mut v = rmqs_value::default();
            assert!(unsafe { rmqs_message_app_property_value(m, key.as_ptr(), &mut v) });
            assert!(same(&from_c(&v), x), "app property {k:?} by key");
        }
        let body_type = unsafe { rmqs_message_body_type(m) };
        let n = unsafe { rmqs_message_body_count(m) };
        let mut body = Vec::new();
        for i in 0..n {
            let mut v = rmqs_value::default();
            assert!(unsafe { rmqs_message_body_section(m, i, &mut v) });
            body.push(from_c(&v));
        }
        assert!(!unsafe { rmqs_message_body_section(m, n, ptr::null_mut()) });
        let mut len = 0usize;
        let p = unsafe { rmqs_message_body(m, &mut len) };
        let plain_body = if len == 0 {
            Vec::new()
        } else {
            unsafe { std::slice::from_raw_parts(p, len) }.to_vec()
        };
        Read {
            offset: unsafe { rmqs_message_offset(m) },
            header,
            properties,
            app,
            message_annotations: map_section(m, RMQS_SECTION_MESSAGE_ANNOTATIONS),
            delivery_annotations: map_section(m, RMQS_SECTION_DELIVERY_ANNOTATIONS),
            footer: map_section(m, RMQS_SECTION_FOOTER),
            body_type,
            body,
            plain_body,
        }
    }
}

/// `rmqs_producer_send_messages` of `msgs` with their `tags` (none: NULL), no flags, counting
/// into `accepted`: the status and the error's message ("" on success).
pub fn send_messages(
    p: *mut rmqs_producer,
    msgs: &[*const rmqs_message_builder],
    tags: &[usize],
    accepted: &mut usize,
) -> (rmqs_status, String) {
    let tags = if tags.is_empty() {
        ptr::null()
    } else {
        assert_eq!(tags.len(), msgs.len());
        tags.as_ptr()
    };
    let mut err = ptr::null_mut();
    let n = msgs.len();
    let st =
        unsafe { rmqs_producer_send_messages(p, msgs.as_ptr(), tags, n, 0, accepted, &mut err) };
    (st, message(err))
}

/// A C string (for keys and names).
pub fn cstr(s: &str) -> CString {
    CString::new(s).unwrap()
}

/// `s` as a `*const c_char` valid while `s` lives.
pub fn ptr_of(s: &CString) -> *const c_char {
    s.as_ptr()
}
