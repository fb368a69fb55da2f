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
