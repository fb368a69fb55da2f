//! "A loop that resets and sends allocates nothing per message once warm": allocations made on
//! the sending thread, counted by a global allocator, while a builder is reset, filled with a
//! body, 3 properties and 3 application properties, and sent, 20 000 times (against the broker
//! of scripts/broker). What remains is the producer's frame buffer growing by 512 KiB every few
//! thousand messages, far below one allocation per hundred messages.

mod support;

use std::ptr;

use rmqstream::ffi::rmqs_property_code::*;
use rmqstream::ffi::rmqs_value_type_code::*;
use rmqstream::ffi::*;
use support::alloc::{CountingAlloc, allocations};
use support::capi::*;
use support::uri;

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

/// Resets `b`, fills it as message `i` and sends it.
fn build_and_send(p: *mut rmqs_producer, b: *mut rmqs_message_builder, i: usize) {
    let body = [0x61u8; 100];
    let (ct, subject, region) = ("application/json", "order.created", "eu-west");
    let keys = [c"customer", c"region", c"attempt"];
    let mut err = ptr::null_mut();
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
        (v.data, v.len) = (ct.as_ptr(), ct.len());
        st |= rmqs_message_builder_set_property(b, RMQS_PROP_CONTENT_TYPE as i32, &v, &mut err);
        v.kind = RMQS_VALUE_STRING as i32;
        (v.data, v.len) = (subject.as_ptr(), subject.len());
        st |= rmqs_message_builder_set_property(b, RMQS_PROP_SUBJECT as i32, &v, &mut err);
        v.kind = RMQS_VALUE_LONG as i32;
        v.int_value = i as i64;
        st |= rmqs_message_builder_add_app_property(b, keys[0].as_ptr(), &v, &mut err);
        v.kind = RMQS_VALUE_STRING as i32;
        (v.data, v.len) = (region.as_ptr(), region.len());
        st |= rmqs_message_builder_add_app_property(b, keys[1].as_ptr(), &v, &mut err);
        v.kind = RMQS_VALUE_BOOL as i32;
        v.bool_value = i % 2 == 0;
        st |= rmqs_message_builder_add_app_property(b, keys[2].as_ptr(), &v, &mut err);
        check(st, err, "build");
        let st = rmqs_producer_send_message(p, b, i, 0, ptr::null_mut(), &mut err);
        check(st, err, "send_message");
    }
}

#[test]
fn reset_build_send_loop_does_not_allocate_per_message() {
    let conn = connect(&uri());
    let stream = cunique("msg-alloc");
    create_stream(conn, &stream);
    let p = bare_producer(conn, &stream, &[]);
    let b = rmqs_message_builder_new();
    for i in 0..5_000 {
        build_and_send(p, b, i);
    }
    flush(p);
    const N: usize = 20_000;
    let before = allocations();
    for i in 0..N {
        build_and_send(p, b, 5_000 + i);
    }
    let during = allocations() - before;
    flush(p);
    eprintln!("{during} allocations on the sending thread for {N} messages");
    assert!(
        during <= (N / 200) as u64,
        "{during} allocations for {N} messages"
    );
    unsafe {
        rmqs_message_builder_free(b);
        rmqs_producer_free(p);
    }
    delete_stream(conn, &stream);
    unsafe { rmqs_connection_free(conn) };
}

/// Message `m`'s texts through the text accessors, without allocating here: message_id,
/// content_type, subject; customer, region, attempt by key; then the key and the value of the
/// application properties at positions 0, 1 and 2.
fn texts_of(m: *const rmqs_message) -> [(*const u8, usize); 12] {
    let mut out = [(ptr::null(), 0usize); 12];
    let mut at = 0;
    let mut put = |ok: bool, p: *const std::ffi::c_char, len: usize| {
        assert!(ok, "text {at} missing");
        out[at] = (p.cast(), len);
        at += 1;
    };
    unsafe {
        for code in [
            RMQS_PROP_MESSAGE_ID,
            RMQS_PROP_CONTENT_TYPE,
            RMQS_PROP_SUBJECT,
        ] {
            let (mut p, mut len) = (ptr::null(), 0usize);
            let ok = rmqs_message_property(m, code as i32, &mut p, &mut len);
            put(ok, p, len);
        }
        for k in [c"customer", c"region", c"attempt"] {
            let (mut p, mut len) = (ptr::null(), 0usize);
            let ok = rmqs_message_app_property(m, k.as_ptr(), &mut p, &mut len);
            put(ok, p, len);
        }
        for i in 0..3 {
            let (mut kp, mut kl, mut vp, mut vl) = (ptr::null(), 0usize, ptr::null(), 0usize);
            let ok = rmqs_message_app_property_at(m, i, &mut kp, &mut kl, &mut vp, &mut vl);
            put(ok, kp, kl);
            put(ok, vp, vl);
        }
    }
    out
}

/// Checks [`texts_of`] message `i` against what [`build_and_send`] put there.
fn check_texts(texts: &[(*const u8, usize); 12], i: u64) {
    let (n, flag) = (i.to_string(), (i % 2 == 0).to_string());
    let want: [&str; 12] = [
        &n,
        "application/json",
        "order.created",
        &n,
        "eu-west",
        &flag,
        "customer",
        &n,
        "region",
        "eu-west",
        "attempt",
        &flag,
    ];
    for (k, (&(p, len), w)) in texts.iter().zip(want).enumerate() {
        let got = unsafe { std::slice::from_raw_parts(p, len) };
        assert_eq!(got, w.as_bytes(), "message {i}, text {k}");
    }
}

/// The text accessors read strings in place and keep the text of other values with the
/// message: reading every message a second time allocates nothing, and the first time only
/// for the values that are not strings (message_id, customer and attempt, by key and by
/// position: 5 texts). Before, every call allocated its cache key (20 allocations per message
/// on the second pass).
#[test]
fn text_accessors_allocate_only_to_format_non_strings_once() {
    let conn = connect(&uri());
    let stream = cunique("msg-alloc-read");
    create_stream(conn, &stream);
    let p = bare_producer(conn, &stream, &[]);
    let b = rmqs_message_builder_new();
    const N: usize = 2_000;
    for i in 0..N {
        build_and_send(p, b, i);
    }
    flush(p);
    unsafe {
        rmqs_message_builder_free(b);
        rmqs_producer_free(p);
    }
    let q = queue();
    let c = queue_consumer(conn, &stream, &[("offset", "first")], q);
    let (mut read, mut first, mut second) = (0usize, 0u64, 0u64);
    while read < N {
        let ev = poll_event(q, 30_000);
        assert!(!ev.is_null(), "no chunk within 30 s ({read} of {N})");
        let ch = unsafe { rmqs_event_chunk(ev) };
        if !ch.is_null() {
            let count = unsafe { rmqs_chunk_message_count(ch) };
            let mut texts = vec![[(ptr::null(), 0usize); 12]; count];
            for total in [&mut first, &mut second] {
                let before = allocations();
                for (k, t) in texts.iter_mut().enumerate() {
                    *t = texts_of(unsafe { rmqs_chunk_message(ch, k) });
                }
                *total += allocations() - before;
                for (k, t) in texts.iter().enumerate() {
                    check_texts(t, unsafe { rmqs_message_offset(rmqs_chunk_message(ch, k)) });
                }
            }
            read += count;
        }
        unsafe { rmqs_event_free(ev) };
    }
    eprintln!(
        "text accessors, {read} messages: {first} allocations on the first pass, {second} on the second"
    );
    assert_eq!(read, N);
    assert_eq!(second, 0, "reading kept texts again allocates nothing");
    assert!(
        first <= (N * 5 * 4) as u64,
        "{first} allocations for {N} messages"
    );
    unsafe {
        rmqs_consumer_free(c);
        rmqs_queue_free(q);
    }
    delete_stream(conn, &stream);
    unsafe { rmqs_connection_free(conn) };
}
