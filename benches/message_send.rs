//! Client CPU per message of a send through the C API: a plain 100-byte body
//! (`rmqs_producer_send`) against an AMQP message built with the reusable builder
//! (`rmqs_message_builder_reset`, a 100-byte body, 3 properties, 3 application properties,
//! `rmqs_producer_send_message`), against the broker of scripts/broker (RMQS_TEST_URI).
//! Also: the same message with only its body replaced per message (properties fixed:
//! `rmqs_message_builder_set_body` + send), the same sent in one call that leaves the builder
//! as it is (`rmqs_producer_send_message_body`), and the message built once and sent again.
//! `raw` sends the bytes of that message (3 properties, 3 application properties, the body)
//! with `rmqs_producer_send` and `RMQS_SEND_RAW`: a plain send of as many bytes, the
//! reference that separates the API's cost from that of a longer message (the connection's
//! I/O and, on loopback, the kernel's network work grow with the bytes).
//!
//!     cargo bench --bench message_send [-- MESSAGES ROUNDS] [plain] [raw] [message] [body] [sections] [prebuilt]
//!
//! `-- read [MESSAGES]` measures the other side instead: MESSAGES messages (default 10 000)
//! with a header, message annotations, 3 properties, 3 application properties, a 100-byte
//! body and a footer are published, consumed, and every section of every message read
//! through the typed accessors (31 calls per message), twice, then its properties and
//! application properties through the text accessors (19 calls), twice: the thread CPU and
//! the allocations of each pass.
//!
//! Naming kinds runs only those (e.g. one kind under `valgrind --tool=callgrind`, whose
//! inclusive counts of the `rmqs_*` functions divided by their calls are exact instructions
//! per message).
//!
//! Per message, for each kind: CPU of the sending thread (building and sending:
//! `CLOCK_THREAD_CPUTIME_ID`), CPU of the whole process (sending, the connection's I/O and
//! confirm threads: `getrusage`), and allocations made on the sending thread (a counting
//! allocator), over MESSAGES messages (default 500 000) after a warm-up, ROUNDS times
//! alternating (default 3); the best round of each is reported. A measurement, not a test:
//! nothing fails on the numbers. Under `cargo test` (no `--bench` argument) it does nothing.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::ffi::CString;
use std::ptr;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use rmqstream::ffi::rmqs_property_code::*;
use rmqstream::ffi::rmqs_value_type_code::*;
use rmqstream::ffi::*;

/// Counts the allocations of each thread.
struct Counting;

thread_local! {
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        unsafe { System.dealloc(p, layout) }
    }
    unsafe fn realloc(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
        unsafe { System.realloc(p, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn thread_allocs() -> u64 {
    ALLOCS.with(Cell::get)
}

fn thread_cpu() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

fn process_cpu() -> f64 {
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(ru.ru_utime) + t(ru.ru_stime)
}

fn check(st: rmqs_status, err: *mut rmqs_error, what: &str) {
    if st != 0 {
        let m = if err.is_null() {
            String::new()
        } else {
            let m = unsafe { std::ffi::CStr::from_ptr(rmqs_error_message(err)) }
                .to_string_lossy()
                .into_owned();
            unsafe { rmqs_error_free(err) };
            m
        };
        panic!("{what}: status {st}: {m}");
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    /// `rmqs_producer_send` of a 100-byte body.
    Plain,
    /// The builder reset and filled for each message, then sent.
    Message,
    /// The same message built once, sent again and again (the cost of the send itself).
    Prebuilt,
    /// Properties and application properties fixed, a new body set for each message
    /// (`rmqs_message_builder_set_body`), then sent.
    Body,
    /// Properties and application properties fixed, each body sent with them in one call
    /// (`rmqs_producer_send_message_body`, the builder unchanged).
    Sections,
    /// The encoded message of [`Kind::Sections`], sent as raw bytes (`RMQS_SEND_RAW`).
    Raw,
}

impl Kind {
    const ALL: [Kind; 6] = [
        Kind::Plain,
        Kind::Raw,
        Kind::Message,
        Kind::Body,
        Kind::Sections,
        Kind::Prebuilt,
    ];

    fn name(self) -> &'static str {
        match self {
            Kind::Plain => "plain",
            Kind::Message => "message",
            Kind::Body => "body",
            Kind::Sections => "sections",
            Kind::Raw => "raw",
            Kind::Prebuilt => "prebuilt",
        }
    }
}

/// One round: `n` sends of `kind`; (thread CPU, process CPU, allocations) per message.
fn round(
    p: *mut rmqs_producer,
    b: *mut rmqs_message_builder,
    kind: Kind,
    n: usize,
) -> (f64, f64, f64) {
    let body = [0x61u8; 100];
    let content_type = "application/json";
    let subject = "order.created";
    let keys = [c"customer", c"region", c"attempt"];
    let region = "eu-west";
    let raw = encoded_message(&body);
    let (t0, p0, a0, w0) = (thread_cpu(), process_cpu(), thread_allocs(), Instant::now());
    let mut err = ptr::null_mut();
    for i in 0..n {
        let st = match kind {
            Kind::Plain => unsafe {
                rmqs_producer_send(p, body.as_ptr(), body.len(), i, 0, &mut err)
            },
            Kind::Prebuilt => unsafe {
                rmqs_producer_send_message(p, b, i, 0, ptr::null_mut(), &mut err)
            },
            Kind::Raw => unsafe {
                rmqs_producer_send(p, raw.as_ptr(), raw.len(), i, RMQS_SEND_RAW, &mut err)
            },
            Kind::Body => unsafe {
                let mut st = rmqs_message_builder_set_body(b, body.as_ptr(), body.len(), &mut err);
                if st == 0 {
                    st = rmqs_producer_send_message(p, b, i, 0, ptr::null_mut(), &mut err);
                }
                st
            },
            Kind::Sections => unsafe {
                rmqs_producer_send_message_body(
                    p,
                    b,
                    body.as_ptr(),
                    body.len(),
                    i,
                    0,
                    ptr::null_mut(),
                    &mut err,
                )
            },
            Kind::Message => unsafe {
                rmqs_message_builder_reset(b);
                let mut st = rmqs_message_builder_set_body(b, body.as_ptr(), body.len(), &mut err);
                let mut v = rmqs_value {
                    kind: RMQS_VALUE_ULONG as i32,
                    uint_value: i as u64,
                    ..Default::default()
                };
                st |=
                    rmqs_message_builder_set_property(b, RMQS_PROP_MESSAGE_ID as i32, &v, &mut err);
                v.kind = RMQS_VALUE_SYMBOL as i32;
                v.data = content_type.as_ptr();
                v.len = content_type.len();
                st |= rmqs_message_builder_set_property(
                    b,
                    RMQS_PROP_CONTENT_TYPE as i32,
                    &v,
                    &mut err,
                );
                v.kind = RMQS_VALUE_STRING as i32;
                v.data = subject.as_ptr();
                v.len = subject.len();
                st |= rmqs_message_builder_set_property(b, RMQS_PROP_SUBJECT as i32, &v, &mut err);
                v.kind = RMQS_VALUE_LONG as i32;
                v.int_value = (i % 1000) as i64;
                st |= rmqs_message_builder_add_app_property(b, keys[0].as_ptr(), &v, &mut err);
                v.kind = RMQS_VALUE_STRING as i32;
                v.data = region.as_ptr();
                v.len = region.len();
                st |= rmqs_message_builder_add_app_property(b, keys[1].as_ptr(), &v, &mut err);
                v.kind = RMQS_VALUE_BOOL as i32;
                v.bool_value = i % 2 == 0;
                st |= rmqs_message_builder_add_app_property(b, keys[2].as_ptr(), &v, &mut err);
                if st == 0 {
                    st = rmqs_producer_send_message(p, b, i, 0, ptr::null_mut(), &mut err);
                }
                st
            },
        };
        check(st, err, "send");
    }
    let st = unsafe { rmqs_producer_flush(p, 120_000, std::ptr::null_mut()) };
    check(st, ptr::null_mut(), "flush");
    let (t1, p1, a1) = (thread_cpu(), process_cpu(), thread_allocs());
    let nf = n as f64;
    eprintln!(
        "  {kind:?}: {n} in {:.2} s wall, thread {:.0} ns/msg, process {:.0} ns/msg, {:.4} allocs/msg",
        w0.elapsed().as_secs_f64(),
        (t1 - t0) * 1e9 / nf,
        (p1 - p0) * 1e9 / nf,
        (a1 - a0) as f64 / nf
    );
    (
        (t1 - t0) * 1e9 / nf,
        (p1 - p0) * 1e9 / nf,
        (a1 - a0) as f64 / nf,
    )
}

/// A message as [`round`] builds them for [`Kind::Message`] (ids and numbers of the widths
/// the warm-up's last one, which the other kinds send, has), encoded with the Rust builder
/// around `body`.
fn encoded_message(body: &[u8]) -> Vec<u8> {
    use rmqstream::protocol::amqp::{MessageBuilder, PropertyField, Value};
    let mut b = MessageBuilder::new();
    let ok = b.set_body(body).is_ok()
        && b.set_property(PropertyField::MessageId, &Value::Ulong(49_999))
            .is_ok()
        && b.set_property(
            PropertyField::ContentType,
            &Value::Symbol("application/json".into()),
        )
        .is_ok()
        && b.set_property(
            PropertyField::Subject,
            &Value::String("order.created".into()),
        )
        .is_ok()
        && b.add_application_property("customer", &Value::Long(999))
            .is_ok()
        && b.add_application_property("region", &Value::String("eu-west".into()))
            .is_ok()
        && b.add_application_property("attempt", &Value::Bool(false))
            .is_ok();
    assert!(ok);
    b.to_bytes().to_vec()
}

/// Resets and fills the builder `n` times as [`round`] does for [`Kind::Message`], sending
/// nothing: the cost of building alone, through the C API.
fn build_only(b: *mut rmqs_message_builder, n: usize) {
    let body = [0x61u8; 100];
    let (content_type, subject, region) = ("application/json", "order.created", "eu-west");
    let keys = [c"customer", c"region", c"attempt"];
    let mut err = ptr::null_mut();
    for i in 0..n {
        unsafe {
            rmqs_message_builder_reset(b);
            let mut st = rmqs_message_builder_set_body(b, body.as_ptr(), body.len(), &mut err);
            let mut v = rmqs_value {
                kind: RMQS_VALUE_ULONG as i32,
                uint_value: i as u64,
                ..Default::default()
            };
            st |= rmqs_message_builder_set_property(b, RMQS_PROP_MESSAGE_ID as i32, &v, &mut err);
            v.kind = RMQS_VALUE_SYMBOL as i32;
            (v.data, v.len) = (content_type.as_ptr(), content_type.len());
            st |= rmqs_message_builder_set_property(b, RMQS_PROP_CONTENT_TYPE as i32, &v, &mut err);
            v.kind = RMQS_VALUE_STRING as i32;
            (v.data, v.len) = (subject.as_ptr(), subject.len());
            st |= rmqs_message_builder_set_property(b, RMQS_PROP_SUBJECT as i32, &v, &mut err);
            v.kind = RMQS_VALUE_LONG as i32;
            v.int_value = (i % 1000) as i64;
            st |= rmqs_message_builder_add_app_property(b, keys[0].as_ptr(), &v, &mut err);
            v.kind = RMQS_VALUE_STRING as i32;
            (v.data, v.len) = (region.as_ptr(), region.len());
            st |= rmqs_message_builder_add_app_property(b, keys[1].as_ptr(), &v, &mut err);
            v.kind = RMQS_VALUE_BOOL as i32;
            v.bool_value = i % 2 == 0;
            st |= rmqs_message_builder_add_app_property(b, keys[2].as_ptr(), &v, &mut err);
            check(st, err, "build");
        }
    }
}

/// The same with the Rust builder directly (no C API): what the FFI layer adds.
fn build_only_rust(n: usize) {
    use rmqstream::protocol::amqp::{MessageBuilder, PropertyField, Value};
    let body = [0x61u8; 100];
    let mut b = MessageBuilder::new();
    for i in 0..n {
        b.clear();
        let mut ok = b.set_body(&body).is_ok();
        ok &= b
            .set_property(PropertyField::MessageId, &Value::Ulong(i as u64))
            .is_ok();
        ok &= b
            .set_property(
                PropertyField::ContentType,
                &Value::Symbol("application/json".into()),
            )
            .is_ok();
        ok &= b
            .set_property(
                PropertyField::Subject,
                &Value::String("order.created".into()),
            )
            .is_ok();
        ok &= b
            .add_application_property("customer", &Value::Long((i % 1000) as i64))
            .is_ok();
        ok &= b
            .add_application_property("region", &Value::String("eu-west".into()))
            .is_ok();
        ok &= b
            .add_application_property("attempt", &Value::Bool(i % 2 == 0))
            .is_ok();
        assert!(ok);
        std::hint::black_box(&b);
    }
}

/// The typed accessors a consumer calls to read every section of `m` (31 calls).
fn read_all(m: *const rmqs_message) -> usize {
    use rmqstream::ffi::rmqs_section_code::*;
    let mut v = rmqs_value::default();
    let mut found = 0;
    unsafe {
        for s in [
            RMQS_SECTION_HEADER,
            RMQS_SECTION_DELIVERY_ANNOTATIONS,
            RMQS_SECTION_MESSAGE_ANNOTATIONS,
            RMQS_SECTION_PROPERTIES,
            RMQS_SECTION_APPLICATION_PROPERTIES,
            RMQS_SECTION_FOOTER,
        ] {
            found += usize::from(rmqs_message_section(m, s as i32, &mut v));
        }
        for f in 1..=5 {
            found += usize::from(rmqs_message_header_value(m, f, &mut v));
        }
        for p in 1..=13 {
            found += usize::from(rmqs_message_property_value(m, p, &mut v));
        }
        for k in [c"customer", c"region", c"attempt"] {
            found += usize::from(rmqs_message_app_property_value(m, k.as_ptr(), &mut v));
        }
        found += rmqs_message_body_type(m) as usize;
        found += rmqs_message_body_count(m);
        found += usize::from(rmqs_message_body_section(m, 0, &mut v));
    }
    std::hint::black_box(v);
    found
}

/// The text accessors a consumer calls to read the properties and application properties of
/// `m` as strings (19 calls): values that are not strings in the record are formatted once and
/// kept with the message.
fn read_text(m: *const rmqs_message) -> usize {
    let (mut value, mut len) = (ptr::null(), 0usize);
    let (mut key, mut key_len) = (ptr::null(), 0usize);
    let mut found = 0;
    unsafe {
        for p in 1..=13 {
            found += usize::from(rmqs_message_property(m, p, &mut value, &mut len));
        }
        for k in [c"customer", c"region", c"attempt"] {
            found += usize::from(rmqs_message_app_property(
                m,
                k.as_ptr(),
                &mut value,
                &mut len,
            ));
        }
        for i in 0..3 {
            found += usize::from(rmqs_message_app_property_at(
                m,
                i,
                &mut key,
                &mut key_len,
                &mut value,
                &mut len,
            ));
        }
    }
    std::hint::black_box((value, len, key, key_len));
    found
}

/// The `read` measurement (see the module documentation).
fn read_bench(conn: *mut rmqs_connection, stream: &CString, n: usize) {
    use rmqstream::ffi::rmqs_header_code::*;
    use rmqstream::ffi::rmqs_section_code::*;
    let mut err = ptr::null_mut();
    let mut p = ptr::null_mut();
    check(
        unsafe {
            rmqs_producer_new(
                conn,
                stream.as_ptr(),
                ptr::null(),
                None,
                ptr::null_mut(),
                None,
                ptr::null_mut(),
                0,
                &mut p,
                &mut err,
            )
        },
        err,
        "producer",
    );
    let b = rmqs_message_builder_new();
    let text = |kind: rmqs_value_type_code, s: &'static str| rmqs_value {
        kind: kind as i32,
        data: s.as_ptr(),
        len: s.len(),
        ..Default::default()
    };
    let body = [0x61u8; 100];
    unsafe {
        let mut st = rmqs_message_builder_set_header(
            b,
            RMQS_HEADER_DURABLE as i32,
            &rmqs_value {
                kind: RMQS_VALUE_BOOL as i32,
                bool_value: true,
                ..Default::default()
            },
            &mut err,
        );
        st |= rmqs_message_builder_set_header(
            b,
            RMQS_HEADER_PRIORITY as i32,
            &rmqs_value {
                kind: RMQS_VALUE_UBYTE as i32,
                uint_value: 4,
                ..Default::default()
            },
            &mut err,
        );
        st |= rmqs_message_builder_add_annotation(
            b,
            RMQS_SECTION_MESSAGE_ANNOTATIONS as i32,
            c"x-opt-origin".as_ptr(),
            &text(RMQS_VALUE_STRING, "bench"),
            &mut err,
        );
        st |= rmqs_message_builder_set_property(
            b,
            RMQS_PROP_CONTENT_TYPE as i32,
            &text(RMQS_VALUE_SYMBOL, "application/json"),
            &mut err,
        );
        st |= rmqs_message_builder_set_property(
            b,
            RMQS_PROP_SUBJECT as i32,
            &text(RMQS_VALUE_STRING, "order.created"),
            &mut err,
        );
        st |= rmqs_message_builder_add_app_property(
            b,
            c"region".as_ptr(),
            &text(RMQS_VALUE_STRING, "eu-west"),
            &mut err,
        );
        st |= rmqs_message_builder_add_app_property(
            b,
            c"attempt".as_ptr(),
            &rmqs_value {
                kind: RMQS_VALUE_BOOL as i32,
                ..Default::default()
            },
            &mut err,
        );
        st |= rmqs_message_builder_add_annotation(
            b,
            RMQS_SECTION_FOOTER as i32,
            c"x-sig".as_ptr(),
            &text(RMQS_VALUE_BINARY, "0123456789abcdef"),
            &mut err,
        );
        st |= rmqs_message_builder_set_body(b, body.as_ptr(), body.len(), &mut err);
        check(st, err, "build");
        for i in 0..n {
            // Per message: its id and a customer number (the first application property).
            let v = rmqs_value {
                kind: RMQS_VALUE_ULONG as i32,
                uint_value: i as u64,
                ..Default::default()
            };
            let mut st =
                rmqs_message_builder_set_property(b, RMQS_PROP_MESSAGE_ID as i32, &v, &mut err);
            if i == 0 {
                let v = rmqs_value {
                    kind: RMQS_VALUE_LONG as i32,
                    int_value: 42,
                    ..Default::default()
                };
                st |= rmqs_message_builder_add_app_property(b, c"customer".as_ptr(), &v, &mut err);
            }
            check(st, err, "build");
            check(
                rmqs_producer_send_message(p, b, i, 0, ptr::null_mut(), &mut err),
                err,
                "send",
            );
        }
        check(
            rmqs_producer_flush(p, 120_000, ptr::null_mut()),
            ptr::null_mut(),
            "flush",
        );
        rmqs_message_builder_free(b);
        rmqs_producer_free(p);
    }
    let mut q = ptr::null_mut();
    check(unsafe { rmqs_queue_new(&mut q, &mut err) }, err, "queue");
    let cfg = rmqs_config_new();
    check(
        unsafe { rmqs_config_set(cfg, c"offset".as_ptr(), c"first".as_ptr(), &mut err) },
        err,
        "config",
    );
    let mut c = ptr::null_mut();
    let st = unsafe {
        rmqs_consumer_new(
            conn,
            stream.as_ptr(),
            cfg,
            None,
            ptr::null_mut(),
            None,
            q,
            0,
            &mut c,
            &mut err,
        )
    };
    unsafe { rmqs_config_free(cfg) };
    check(st, err, "consumer");
    // Passes: typed accessors twice, then text accessors twice (the second finds the texts
    // formatted by the first).
    let (mut read, mut found) = (0usize, [0usize; 4]);
    let (mut cpu, mut allocs) = ([0f64; 4], [0u64; 4]);
    while read < n {
        let mut ev = ptr::null_mut();
        let st = unsafe { rmqs_queue_poll(q, 30_000, &mut ev, ptr::null_mut()) };
        assert!(
            st == 0 && !ev.is_null(),
            "no chunk within 30 s ({read} of {n})"
        );
        let ch = unsafe { rmqs_event_chunk(ev) };
        if !ch.is_null() {
            let count = unsafe { rmqs_chunk_message_count(ch) };
            for pass in 0..4 {
                let read_one = if pass < 2 { read_all } else { read_text };
                let (t0, a0) = (thread_cpu(), thread_allocs());
                for i in 0..count {
                    found[pass] += read_one(unsafe { rmqs_chunk_message(ch, i) });
                }
                cpu[pass] += thread_cpu() - t0;
                allocs[pass] += thread_allocs() - a0;
            }
            read += count;
        }
        unsafe { rmqs_event_free(ev) };
    }
    unsafe {
        rmqs_consumer_free(c);
        rmqs_queue_free(q);
    }
    assert_eq!((found[0], found[2]), (found[1], found[3]));
    println!(
        "message_read: {read} messages with every section; 31 typed accessor calls each ({} \
         found per message), then 19 text accessor calls each ({} found)",
        found[0] / read,
        found[2] / read
    );
    for (pass, t) in cpu.iter().enumerate() {
        let calls = if pass < 2 { 31 } else { 19 };
        println!(
            "  {} pass {}: {:6.0} ns/msg, {:4.0} ns per accessor call, {:.3} allocs/msg",
            if pass < 2 { "typed" } else { "text " },
            pass % 2 + 1,
            t * 1e9 / read as f64,
            t * 1e9 / (read * calls) as f64,
            allocs[pass] as f64 / read as f64
        );
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if !args.iter().any(|a| a == "--bench") {
        println!("message_send: a measurement; run it with `cargo bench --bench message_send`");
        return;
    }
    let nums: Vec<usize> = args.iter().filter_map(|a| a.parse().ok()).collect();
    if args.iter().any(|a| a == "build-only") {
        let b = rmqs_message_builder_new();
        let n = nums.first().copied().unwrap_or(1_000_000);
        let t0 = thread_cpu();
        build_only(b, n);
        let t1 = thread_cpu();
        build_only_rust(n);
        let t2 = thread_cpu();
        eprintln!(
            "build only: {:.0} ns/msg through the C API, {:.0} ns/msg with the Rust builder",
            (t1 - t0) * 1e9 / n as f64,
            (t2 - t1) * 1e9 / n as f64
        );
        unsafe { rmqs_message_builder_free(b) };
        return;
    }
    let read = args.iter().any(|a| a == "read");
    let n = nums
        .first()
        .copied()
        .unwrap_or(if read { 10_000 } else { 500_000 });
    let rounds = nums.get(1).copied().unwrap_or(3);
    let uri = std::env::var("RMQS_TEST_URI")
        .unwrap_or_else(|_| "rabbitmq-stream://guest:guest@localhost:5552/%2f".into());
    let uri = CString::new(uri).unwrap();
    let mut conn = ptr::null_mut();
    let mut err = ptr::null_mut();
    check(
        unsafe { rmqs_connection_open_uri(uri.as_ptr(), &mut conn, &mut err) },
        err,
        "open",
    );
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let stream = CString::new(format!("bench-message-send-{t}")).unwrap();
    check(
        unsafe { rmqs_stream_create(conn, stream.as_ptr(), ptr::null(), &mut err) },
        err,
        "create",
    );
    if read {
        read_bench(conn, &stream, n);
        unsafe {
            check(
                rmqs_stream_delete(conn, stream.as_ptr(), &mut err),
                err,
                "delete",
            );
            rmqs_connection_free(conn);
        }
        return;
    }
    let mut p = ptr::null_mut();
    check(
        unsafe {
            rmqs_producer_new(
                conn,
                stream.as_ptr(),
                ptr::null(),
                None,
                ptr::null_mut(),
                None,
                ptr::null_mut(),
                0,
                &mut p,
                &mut err,
            )
        },
        err,
        "producer",
    );
    let b = rmqs_message_builder_new();
    let named: Vec<Kind> = Kind::ALL
        .into_iter()
        .filter(|k| args.iter().any(|a| a == k.name()))
        .collect();
    let kinds = if named.is_empty() {
        Kind::ALL.to_vec()
    } else {
        named
    };
    eprintln!("message_send: {n} messages per round, {rounds} rounds, warm-up first");
    // A full message in the builder for Body and Prebuilt (the warm-up of Message leaves one).
    round(p, b, Kind::Message, n / 10);
    for &k in &kinds {
        round(p, b, k, n / 10);
    }
    let mut best = [(f64::MAX, f64::MAX, f64::MAX); 6];
    for _ in 0..rounds {
        for &kind in &kinds {
            let r = round(p, b, kind, n);
            let i = kind as usize;
            best[i].0 = best[i].0.min(r.0);
            best[i].1 = best[i].1.min(r.1);
            best[i].2 = best[i].2.min(r.2);
        }
    }
    unsafe {
        rmqs_message_builder_free(b);
        rmqs_producer_free(p);
        check(
            rmqs_stream_delete(conn, stream.as_ptr(), &mut err),
            err,
            "delete",
        );
        rmqs_connection_free(conn);
    }
    println!("message_send (best of {rounds} rounds of {n} messages, 100-byte bodies):");
    let label = |k: Kind| match k {
        Kind::Plain => "plain body",
        Kind::Message => "reset + 3 props + 3 app props + body",
        Kind::Body => "fixed props, new body (set_body)",
        Kind::Sections => "fixed props, send_message_body",
        Kind::Raw => "its bytes, plain send (SEND_RAW)",
        Kind::Prebuilt => "the same message, prebuilt",
    };
    let plain = best[Kind::Plain as usize];
    for &k in &kinds {
        let r = best[k as usize];
        print!(
            "  {:38} thread {:6.0} ns/msg   process {:6.0} ns/msg   {:.4} allocs/msg",
            label(k),
            r.0,
            r.1,
            r.2
        );
        if k != Kind::Plain && kinds.contains(&Kind::Plain) {
            print!(
                "   vs plain: thread {:+.0} %, process {:+.0} %",
                (r.0 / plain.0 - 1.0) * 100.0,
                (r.1 / plain.1 - 1.0) * 100.0
            );
        }
        println!();
    }
}
