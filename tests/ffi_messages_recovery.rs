//! Builder messages across recoveries: a named producer sends AMQP messages built with
//! `rmqs_message_builder` through the in-process proxy (tests/support/proxy.rs), whose
//! connections are reset twice mid-stream; the retained frames are sent again on the new
//! connection, and the stream must hold every message exactly once, in order, with every
//! section intact (read back typed over a direct connection).

mod support;

use std::ffi::CString;
use std::ptr;

use rmqstream::ffi::rmqs_property_code::*;
use rmqstream::ffi::*;
use rmqstream::protocol::amqp::Value;
use support::capi::*;
use support::messages::*;
use support::proxy::Proxy;
use support::{broker_target, unique, uri};

/// Message `i`: body, message-id, an application property and a message annotation.
fn spec(i: usize) -> Spec {
    let mut s = Spec::empty();
    s.properties = vec![(RMQS_PROP_MESSAGE_ID as i32, Value::Ulong(i as u64))];
    s.app = vec![("index".into(), Value::Long(i as i64))];
    s.message_annotations = vec![("x-opt-index".into(), Value::Uint(i as u32))];
    s.body = BodySpec::Data(vec![format!("m{i:08}").into_bytes()]);
    s
}

#[test]
fn builder_messages_are_resent_intact_exactly_once() {
    let proxy = Proxy::start(&broker_target());
    let admin = connect(&uri());
    let name = unique("msg-recovery");
    let stream = CString::new(name.clone()).unwrap();
    create_stream(admin, &stream);
    let conn = through(&proxy, &[]);
    let p = bare_producer(conn, &stream, &[("name", &name)]);
    const N: usize = 20_000;
    let b = rmqs_message_builder_new();
    let mut resets = 0;
    for i in 0..N {
        spec(i).apply(b);
        let mut err = ptr::null_mut();
        let st = unsafe { rmqs_producer_send_message(p, b, i, 0, ptr::null_mut(), &mut err) };
        check(st, err, "send_message");
        if i == N / 3 || i == 2 * N / 3 {
            resets += proxy.reset();
        }
    }
    assert!(resets >= 2, "the proxy had connections to reset");
    assert_eq!(
        unsafe { rmqs_producer_flush(p, 60_000, std::ptr::null_mut()) },
        0,
        "flush"
    );
    let mut stats = rmqs_producer_statistics {
        size: std::mem::size_of::<rmqs_producer_statistics>() as u64,
        ..Default::default()
    };
    assert_eq!(
        unsafe { rmqs_producer_stats(p, &mut stats, std::ptr::null_mut()) },
        0
    );
    assert_eq!((stats.confirmed, stats.errored), (N as u64, 0), "{stats:?}");
    assert!(stats.recoveries >= 1, "{stats:?}");
    unsafe {
        rmqs_message_builder_free(b);
        rmqs_producer_free(p);
        rmqs_connection_free(conn);
    }
    let got = consume(admin, &stream, N);
    // A message stored twice would shift every offset after it.
    for (i, r) in got.iter().enumerate() {
        assert_eq!(r.offset, i as u64, "stored once, in order");
        spec(i).assert_read(r, &format!("message {i}"));
    }
    delete_stream(admin, &stream);
    unsafe { rmqs_connection_free(admin) };
}
