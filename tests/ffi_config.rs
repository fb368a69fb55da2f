//! `rmqs_config_set`, `rmqs_config_dump`, `rmqs_config_set_offset` and the URI through the C
//! ABI: what a bad value gives (status and exact message), without a broker; where a typed
//! offset makes a consumer start, against the broker.

mod support;

use std::ffi::{CStr, CString};
use std::ptr;
use std::time::Duration;

use rmqstream::ffi::rmqs_offset_type_code::*;
use rmqstream::ffi::rmqs_status_code::*;
use rmqstream::ffi::*;
use support::capi;

/// Sets `key = value` on a fresh config: the status and the error message ("" on success).
fn set(key: &str, value: &str) -> (rmqs_status, String) {
    let cfg = rmqs_config_new();
    assert!(!cfg.is_null());
    let (k, v) = (CString::new(key).unwrap(), CString::new(value).unwrap());
    let mut err: *mut rmqs_error = ptr::null_mut();
    let st = unsafe { rmqs_config_set(cfg, k.as_ptr(), v.as_ptr(), &mut err) };
    let msg = take_message(err);
    unsafe { rmqs_config_free(cfg) };
    (st, msg)
}

fn take_message(err: *mut rmqs_error) -> String {
    if err.is_null() {
        return String::new();
    }
    let m = unsafe { CStr::from_ptr(rmqs_error_message(err)) }
        .to_str()
        .unwrap()
        .to_string();
    unsafe { rmqs_error_free(err) };
    m
}

const BAD: rmqs_status = RMQS_ERR_INVALID_ARGUMENT.status();

#[test]
fn max_age_with_a_multibyte_last_character_is_an_invalid_value_not_a_panic() {
    assert_eq!(
        set("max_age", "7é"),
        (
            BAD,
            "config key \"max_age\": invalid value \"7é\" \
             (a number followed by Y, M, D, h, m or s, e.g. 7D)"
                .to_string()
        )
    );
    for v in ["é", "7\u{1F600}", "\u{1F600}", "é7D"] {
        assert_eq!(set("max_age", v).0, BAD, "{v}");
    }
    assert_eq!(set("max_age", "7D"), (RMQS_OK.status(), String::new()));
}

#[test]
fn unknown_codec_names_are_refused_with_the_valid_names() {
    let want = |v: &str, key: &str| {
        (
            BAD,
            format!(
                "config key \"compression\": invalid value \"{v}\" \
                 (one of none, gzip, snappy, lz4, zstd){}",
                if key.starts_with("producer.") {
                    format!(" (in \"{key}\")")
                } else {
                    String::new()
                }
            ),
        )
    };
    for key in ["compression", "producer.compression"] {
        for v in ["brotli", "", "gzip ", "lz5", "zstd\u{301}"] {
            assert_eq!(set(key, v), want(v, key), "{key}={v}");
        }
        for v in ["none", "gzip", "SNAPPY", "Lz4", "zstd"] {
            assert_eq!(set(key, v), (RMQS_OK.status(), String::new()), "{key}={v}");
        }
    }
}

/// `rmqs_connection_open_uri` with a URI that is refused before any connection is tried.
fn open_uri(uri: &str) -> (rmqs_status, String) {
    let u = CString::new(uri).unwrap();
    let mut conn: *mut rmqs_connection = ptr::null_mut();
    let mut err: *mut rmqs_error = ptr::null_mut();
    let st = unsafe { rmqs_connection_open_uri(u.as_ptr(), &mut conn, &mut err) };
    assert!(conn.is_null());
    (st, take_message(err))
}

#[test]
fn error_messages_never_contain_the_password() {
    let uri = "rabbitmq-stream://guest:s3cret@broker:notaport/v";
    let want = "URI \"rabbitmq-stream://guest:***@broker:notaport/v\": \
                bad host:port \"broker:notaport\" (a host of 1 to 255 bytes, a port of 1 to 65535)";
    assert_eq!(
        set("uri", uri),
        (BAD, format!("config key \"uri\": invalid argument: {want}"))
    );
    assert_eq!(
        open_uri(uri),
        (BAD, format!("config key \"uri\": invalid argument: {want}"))
    );
    // in the password, escapes and colons too; the user stays
    let (st, msg) = open_uri("rabbitmq-stream://us%40er:p%3Aw:d@h:x/v");
    assert_eq!(st, BAD);
    assert!(
        msg.contains("\"rabbitmq-stream://us%40er:***@h:x/v\""),
        "{msg}"
    );
    assert!(!msg.contains("p%3Aw") && !msg.contains("w:d"), "{msg}");
}

#[test]
fn echoed_input_is_capped() {
    let huge = "h".repeat(1 << 20);
    let cap = |(st, msg): (rmqs_status, String)| {
        assert_eq!(st, BAD);
        assert!(msg.len() < 1024, "{} bytes: {}...", msg.len(), &msg[..200]);
        assert!(msg.contains("… (10485"), "{msg}");
        msg
    };
    let m = cap(open_uri(&format!("rabbitmq-stream://{huge}:5552/")));
    assert!(
        m.starts_with(&format!(
            "config key \"uri\": invalid argument: URI \"rabbitmq-stream://{}… (1048600 bytes)\"",
            &huge[..238]
        )),
        "{m}"
    );
    cap(set("uri", &format!("rabbitmq-stream://u:p@{huge}")));
    cap(set("hosts", &huge));
    cap(set(&huge, "1"));
    cap(set("port", &huge));
    cap(set("producer.compression", &huge));
    let m = cap(set(&format!("producer.{huge}"), "1"));
    assert!(m.starts_with("unknown config key \"hhh"), "{m}");
}

#[test]
fn uri_query_parameters_are_checked_never_ignored() {
    let ok = (RMQS_OK.status(), String::new());
    for q in [
        "heartbeat=5",
        "heartbeat=0&frame_max=0",
        "frame_max=8192&connection_name=my%20app",
        "connect_timeout=2500&request_timeout=100&load_balancer_mode=true",
        "connection_timeout=1",
        "",
    ] {
        assert_eq!(set("uri", &format!("rabbitmq-stream://h/v?{q}")), ok, "{q}");
    }
    let pre = "config key \"uri\": invalid argument: URI";
    for (q, why) in [
        (
            "heartbeat=5&bogus=1",
            "unknown query parameter \"bogus\" (known: heartbeat, frame_max, \
             connection_name, connect_timeout, connection_timeout, request_timeout, \
             load_balancer_mode)",
        ),
        (
            "heartbeat=soon",
            "invalid value \"soon\" for \"heartbeat\" (an integer from 0 to 65535)",
        ),
        (
            "heartbeat=65536",
            "invalid value \"65536\" for \"heartbeat\" (an integer from 0 to 65535)",
        ),
        (
            "frame_max=4096",
            "invalid value \"4096\" for \"frame_max\" (0 or an integer from 8192 to 4294967295)",
        ),
        (
            "connect_timeout=0",
            "invalid value \"0\" for \"connect_timeout\" (an integer from 1 to 2147483647)",
        ),
        (
            "load_balancer_mode=maybe",
            "invalid value \"maybe\" for \"load_balancer_mode\" (true or false)",
        ),
        (
            "connection_name=%zz",
            "bad escape in the value of \"connection_name\"",
        ),
    ] {
        let uri = format!("rabbitmq-stream://h/v?{q}");
        assert_eq!(
            set("uri", &uri),
            (BAD, format!("{pre} \"{uri}\": {why}")),
            "{q}"
        );
    }
}

#[test]
fn frame_max_below_the_minimum_is_refused_when_set() {
    let ok = (RMQS_OK.status(), String::new());
    for v in ["0", "8192", "1048576", "4294967295"] {
        assert_eq!(set("frame_max", v), ok, "{v}");
    }
    for v in ["1", "4096", "8191", "4294967296", "-1", "x"] {
        assert_eq!(
            set("frame_max", v),
            (
                BAD,
                format!(
                    "config key \"frame_max\": invalid value \"{v}\" \
                     (0 or an integer from 8192 to 4294967295)"
                )
            ),
            "{v}"
        );
    }
}

/// One range per key, the client's: a value just outside is refused when set, with a message
/// naming the key and the range; the bounds themselves are accepted.
#[test]
fn ranges_are_the_clients_and_refused_just_outside() {
    for (key, max) in [
        ("batch_size", 65_535u64),
        ("max_in_flight", 1 << 24),
        ("initial_credit", 32_767),
        ("sub_entry_size", 65_535),
        ("max_producers_per_connection", 256),
    ] {
        let min = if key == "sub_entry_size" { 0 } else { 1 };
        let over = (max + 1).to_string();
        assert_eq!(
            set(key, &over),
            (
                BAD,
                format!(
                    "config key \"{key}\": invalid value \"{over}\" \
                     (an integer from {min} to {max})"
                )
            ),
            "{key}"
        );
        for ok in [min, max] {
            assert_eq!(set(key, &ok.to_string()), (RMQS_OK.status(), String::new()));
        }
    }
    assert_eq!(set("batch_size", "0").0, BAD);
}

/// Every line of `rmqs_config_dump`.
fn dump(cfg: *const rmqs_config) -> Vec<String> {
    let mut list = ptr::null_mut();
    let mut err = ptr::null_mut();
    let st = unsafe { rmqs_config_dump(cfg, &mut list, &mut err) };
    capi::check(st, err, "dump");
    capi::strings(list)
}

fn offset(t: rmqs_offset_type_code, value: i64) -> rmqs_offset_spec {
    rmqs_offset_spec {
        r#type: t as i32,
        value,
    }
}

#[test]
fn dump_lists_every_key_with_its_effective_value_and_hides_passwords() {
    let cfg = capi::config(&[
        ("uri", "rabbitmq-stream://app:s3cret@h1:5552/prod"),
        ("password", "hunter2"),
        ("batch-size", "250"),
        ("producer.max_in_flight", "5000"),
        ("arg.x-queue-leader-locator", "balanced"),
    ]);
    let lines = dump(cfg);
    let keys = rmqstream::client::config::keys::KEYS;
    assert_eq!(lines.len(), keys.len() + 2, "{lines:#?}");
    for (line, key) in lines.iter().zip(keys) {
        assert!(line.starts_with(&format!("{}=", key.name)), "{line}");
    }
    for want in [
        "uri=rabbitmq-stream://app:***@h1:5552/prod",
        "password=***",
        "batch_size=250",
        "max_in_flight=",
        "offset=next",
        "heartbeat=60",
        "tls_ca_file=",
    ] {
        assert!(lines.iter().any(|l| l == want), "{want} not in {lines:#?}");
    }
    assert_eq!(
        lines[keys.len()..],
        [
            "producer.max_in_flight=5000",
            "arg.x-queue-leader-locator=balanced"
        ]
    );
    assert!(
        !lines
            .iter()
            .any(|l| l.contains("s3cret") || l.contains("hunter2"))
    );

    // a typed offset is the offset key; DEFAULT removes it again
    let st =
        unsafe { rmqs_config_set_offset(cfg, offset(RMQS_OFFSET_OFFSET, 42), ptr::null_mut()) };
    assert_eq!(st, RMQS_OK.status());
    assert!(dump(cfg).contains(&"offset=offset:42".to_string()));
    let st = unsafe {
        rmqs_config_set_offset(cfg, offset(RMQS_OFFSET_TIMESTAMP, -1000), ptr::null_mut())
    };
    assert_eq!(st, RMQS_OK.status());
    assert!(dump(cfg).contains(&"offset=timestamp:-1000".to_string()));
    let st =
        unsafe { rmqs_config_set_offset(cfg, offset(RMQS_OFFSET_DEFAULT, 0), ptr::null_mut()) };
    assert_eq!(st, RMQS_OK.status());
    assert!(dump(cfg).contains(&"offset=next".to_string()));
    for bad in [
        offset(RMQS_OFFSET_OFFSET, -1),
        rmqs_offset_spec {
            r#type: 99,
            value: 0,
        },
    ] {
        let mut err = ptr::null_mut();
        let st = unsafe { rmqs_config_set_offset(cfg, bad, &mut err) };
        assert_eq!(st, BAD);
        assert!(take_message(err).starts_with("invalid offset spec"));
    }
    assert!(dump(cfg).contains(&"offset=next".to_string()));
    unsafe { rmqs_config_free(cfg) };

    let mut list = ptr::null_mut();
    assert_eq!(
        unsafe { rmqs_config_dump(ptr::null(), &mut list, ptr::null_mut()) },
        BAD
    );
    assert!(list.is_null());
    let st = unsafe {
        rmqs_config_set_offset(
            ptr::null_mut(),
            offset(RMQS_OFFSET_FIRST, 0),
            ptr::null_mut(),
        )
    };
    assert_eq!(st, BAD);
}

/// A consumer whose config got `rmqs_config_set_offset` starts exactly there: an absolute
/// offset inside a chunk, the last message, and `first`.
#[test]
fn a_typed_offset_sets_where_a_consumer_starts() {
    let conn = capi::open(&[("uri", &support::uri())]);
    let stream = CString::new(support::unique("cfg-offset")).unwrap();
    capi::create_stream(conn, &stream);
    let seen = capi::Seen::new(10);
    let p = capi::producer(conn, &stream, &[], &seen);
    for i in 0..10 {
        capi::send(p, i);
    }
    assert_eq!(
        unsafe { rmqs_producer_flush(p, 10_000, ptr::null_mut()) },
        RMQS_OK.status()
    );
    capi::assert_all_ok_once(&seen, 10);
    unsafe { rmqs_producer_free(p) };

    for (spec, want) in [
        (offset(RMQS_OFFSET_OFFSET, 4), (4..10).collect::<Vec<u64>>()),
        (offset(RMQS_OFFSET_FIRST, 0), (0..10).collect()),
        (offset(RMQS_OFFSET_OFFSET, 9), vec![9]),
    ] {
        let cfg = rmqs_config_new();
        let mut err = ptr::null_mut();
        let st = unsafe { rmqs_config_set_offset(cfg, spec, &mut err) };
        capi::check(st, err, "set offset");
        let seen = capi::Seen::new(0);
        let c = capi::consumer_config(conn, &stream, cfg, &seen);
        assert!(seen.wait(capi::WAIT, |s| s.messages.lock().unwrap().len()
            >= want.len()));
        std::thread::sleep(Duration::from_millis(300));
        unsafe { rmqs_consumer_free(c) };
        let got = seen.messages.lock().unwrap();
        let offsets: Vec<u64> = got.iter().map(|(o, _)| *o).collect();
        assert_eq!(offsets, want, "{spec:?}");
        assert_eq!(
            capi::indices(&got),
            want.iter().map(|&o| o as usize).collect::<Vec<_>>()
        );
    }
    assert_eq!(capi::delete(conn, &stream), RMQS_OK.status());
    unsafe { rmqs_connection_free(conn) };
}
