//! The C API's connection and management functions, called through their `extern "C"`
//! symbols against the broker of scripts/broker (RMQS_TEST_URI; RMQS_TEST_LEGACY_URI for the
//! 3.10.8 checks, skipped when unset and the default legacy port does not answer).

mod support;

use std::ffi::{CStr, CString, c_char};
use std::ptr;
use std::time::{Duration, Instant};
use support::capi::*;
use support::{legacy_uri, uri};

use rmqstream::ffi::rmqs_status_code::*;
use rmqstream::ffi::*;

/// A failed call's status and message (and frees the error).
struct Failure {
    status: rmqs_status,
    message: String,
}

fn take_err(st: rmqs_status, err: *mut rmqs_error) -> Result<(), Failure> {
    outcome(st, err).map_err(|(status, message)| Failure { status, message })
}

fn set(cfg: *mut rmqs_config, k: &str, v: &str) -> Result<(), Failure> {
    let (k, v) = (CString::new(k).unwrap(), CString::new(v).unwrap());
    let mut err = ptr::null_mut();
    let st = unsafe { rmqs_config_set(cfg, k.as_ptr(), v.as_ptr(), &mut err) };
    take_err(st, err)
}

fn open(pairs: &[(&str, &str)]) -> Result<*mut rmqs_connection, Failure> {
    try_open(pairs).map_err(|(status, message)| Failure { status, message })
}

fn create(conn: *mut rmqs_connection, s: &CStr, args: *const rmqs_config) -> Result<(), Failure> {
    let mut err = ptr::null_mut();
    let st = unsafe { rmqs_stream_create(conn, s.as_ptr(), args, &mut err) };
    take_err(st, err)
}

fn exists(conn: *mut rmqs_connection, s: &CStr) -> bool {
    let mut out = false;
    let mut err = ptr::null_mut();
    let st = unsafe { rmqs_stream_exists(conn, s.as_ptr(), &mut out, &mut err) };
    take_err(st, err).unwrap_or_else(|f| panic!("exists: {}", f.message));
    out
}

fn cstr(p: *const c_char) -> String {
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

#[test]
fn open_by_uri_and_by_keys() {
    let conn = connect(&uri());
    let version = cstr(unsafe { rmqs_connection_server_version(conn) });
    assert!(
        version.starts_with(|c: char| c.is_ascii_digit()),
        "{version}"
    );
    // StreamStats (0x1c) v1 exists on 3.11+; the test broker is 4.x
    assert!(unsafe { rmqs_connection_supports(conn, 0x1c, 1) });
    assert!(!unsafe { rmqs_connection_supports(conn, 0x1c, 99) });
    assert_eq!(
        unsafe { rmqs_connection_close(conn, 5000, std::ptr::null_mut()) },
        0
    );
    assert_eq!(
        unsafe { rmqs_connection_close(conn, 5000, std::ptr::null_mut()) },
        0,
        "double close"
    );
    unsafe { rmqs_connection_free(conn) };

    // the same broker through keys (host/port/user/password/vhost/name)
    let conn = open(&[
        ("host", "localhost"),
        ("port", "5552"),
        ("username", "guest"),
        ("password", "guest"),
        ("vhost", "/"),
        ("connection_name", "ffi_connection keys"),
        ("heartbeat", "30"),
        ("request_timeout_ms", "5000"),
    ])
    .unwrap_or_else(|f| panic!("open by keys: {}", f.message));
    assert!(unsafe { rmqs_connection_supports(conn, 0x01, 1) });
    unsafe { rmqs_connection_free(conn) };

    // NULL config: the defaults, which are the local broker
    let mut conn = ptr::null_mut();
    assert_eq!(
        unsafe { rmqs_connection_open(ptr::null(), &mut conn, ptr::null_mut()) },
        0
    );
    unsafe { rmqs_connection_free(conn) };
    unsafe { rmqs_connection_free(ptr::null_mut()) };
}

#[test]
fn bad_uris_and_keys_are_invalid_arguments() {
    let cfg = rmqs_config_new();
    for (k, v, needle) in [
        ("uri", "amqp://localhost", "scheme"),
        ("bogus_key", "1", "bogus_key"),
        ("port", "99999", "port"),
        ("tls", "perhaps", "tls"),
        ("sasl_mechanism", "KERBEROS", "sasl_mechanism"),
        ("producer.offset", "first", "producer"),
    ] {
        let f = set(cfg, k, v)
            .err()
            .unwrap_or_else(|| panic!("{k}={v} accepted"));
        assert_eq!(f.status, RMQS_ERR_INVALID_ARGUMENT.status(), "{k}");
        assert!(f.message.contains(needle), "{k}: {}", f.message);
    }
    // NULL and non-UTF-8 arguments
    let mut err = ptr::null_mut();
    assert_eq!(
        unsafe { rmqs_config_set(ptr::null_mut(), c"port".as_ptr(), c"1".as_ptr(), &mut err) },
        RMQS_ERR_INVALID_ARGUMENT.status()
    );
    unsafe { rmqs_error_free(err) };
    let bad = [b'p', 0xff, 0];
    assert_eq!(
        unsafe { rmqs_config_set(cfg, bad.as_ptr().cast(), c"1".as_ptr(), ptr::null_mut()) },
        RMQS_ERR_INVALID_ARGUMENT.status()
    );
    unsafe { rmqs_config_free(cfg) };

    // keys that do not apply to a connection are refused when used
    let f = open(&[("batch_size", "10")]).err().unwrap();
    assert_eq!(f.status, RMQS_ERR_INVALID_ARGUMENT.status());
    assert!(f.message.contains("batch_size"), "{}", f.message);

    let mut conn = ptr::null_mut();
    let mut err = ptr::null_mut();
    let st = unsafe { rmqs_connection_open_uri(c"http://x".as_ptr(), &mut conn, &mut err) };
    let f = take_err(st, err).unwrap_err();
    assert_eq!(f.status, RMQS_ERR_INVALID_ARGUMENT.status());
    assert!(conn.is_null(), "out written on failure");
    assert_eq!(
        unsafe { rmqs_connection_open_uri(ptr::null(), &mut conn, ptr::null_mut()) },
        RMQS_ERR_INVALID_ARGUMENT.status()
    );
    assert_eq!(
        unsafe { rmqs_connection_open(ptr::null(), ptr::null_mut(), ptr::null_mut()) },
        RMQS_ERR_INVALID_ARGUMENT.status()
    );
}

#[test]
fn wrong_password_is_authentication_failure() {
    let f = open(&[("uri", &uri()), ("password", "definitely-wrong")])
        .expect_err("opened with a wrong password");
    assert_eq!(
        f.status,
        RMQS_ERR_AUTHENTICATION_FAILURE.status(),
        "{}",
        f.message
    );
    assert!(!f.message.is_empty());
}

#[test]
fn unreachable_host_fails_in_time() {
    let t0 = Instant::now();
    let f = open(&[
        ("uri", "rabbitmq-stream://guest:guest@127.0.0.1:1/%2f"),
        ("connect_timeout_ms", "1000"),
    ])
    .err()
    .unwrap();
    assert_eq!(f.status, RMQS_ERR_IO.status(), "{}", f.message);
    assert!(t0.elapsed() < Duration::from_secs(5));
}

#[test]
fn management_round_trips() {
    let conn = connect(&uri());
    let s = cunique("ffi-mgmt");
    assert!(!exists(conn, &s));

    let args = config(&[
        ("max_length_bytes", "100000000"),
        ("max_age", "3600s"),
        ("stream_max_segment_size_bytes", "10000000"),
        ("queue_leader_locator", "least-leaders"),
        ("initial_cluster_size", "1"),
        ("filter_size", "32"),
        ("arg.x-custom-ignored", "1"),
    ]);
    create(conn, &s, args).unwrap_or_else(|f| panic!("create: {}", f.message));
    let again = create(conn, &s, args).unwrap_err();
    assert_eq!(again.status, RMQS_ERR_STREAM_ALREADY_EXISTS.status());
    assert!(again.message.contains("already exists"));
    unsafe { rmqs_config_free(args) };
    assert!(exists(conn, &s));

    // a key that is not a stream argument
    let bad = config(&[("batch_size", "3")]);
    let f = create(conn, &cunique("ffi-bad"), bad).unwrap_err();
    assert_eq!(f.status, RMQS_ERR_INVALID_ARGUMENT.status());
    unsafe { rmqs_config_free(bad) };

    // stats of an empty stream
    let mut st = rmqs_stream_statistics {
        size: std::mem::size_of::<rmqs_stream_statistics>() as u64,
        ..Default::default()
    };
    let mut err = ptr::null_mut();
    let r = unsafe { rmqs_stream_stats(conn, s.as_ptr(), &mut st, &mut err) };
    take_err(r, err).unwrap_or_else(|f| panic!("stats: {}", f.message));
    assert_eq!(st.first_chunk_id, -1, "{st:?}");
    assert_eq!(st.committed_chunk_id, -1, "{st:?}");

    // metadata: leader localhost:5552, no replicas on one node
    let mut md = ptr::null_mut();
    let r = unsafe { rmqs_stream_metadata(conn, s.as_ptr(), &mut md, ptr::null_mut()) };
    assert_eq!(r, 0);
    assert_eq!(cstr(unsafe { rmqs_metadata_leader_host(md) }), "localhost");
    assert_eq!(unsafe { rmqs_metadata_leader_port(md) }, 5552);
    assert_eq!(unsafe { rmqs_metadata_replica_count(md) }, 0);
    assert!(unsafe { rmqs_metadata_replica(md, 0, ptr::null_mut()) }.is_null());
    unsafe { rmqs_metadata_free(md) };
    unsafe { rmqs_metadata_free(ptr::null_mut()) };

    // offsets: none stored, store, query until applied
    let reference = c"ffi-ref";
    let mut off = 0u64;
    let mut err = ptr::null_mut();
    let r = unsafe {
        rmqs_stream_query_offset(conn, reference.as_ptr(), s.as_ptr(), &mut off, &mut err)
    };
    let f = take_err(r, err).unwrap_err();
    assert_eq!(f.status, RMQS_ERR_NO_OFFSET.status(), "{}", f.message);
    assert_eq!(off, 0, "output written on failure");
    let r = unsafe {
        rmqs_stream_store_offset(conn, reference.as_ptr(), s.as_ptr(), 42, ptr::null_mut())
    };
    assert_eq!(r, 0);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let r = unsafe {
            rmqs_stream_query_offset(
                conn,
                reference.as_ptr(),
                s.as_ptr(),
                &mut off,
                ptr::null_mut(),
            )
        };
        if r == 0 {
            assert_eq!(off, 42);
            break;
        }
        assert_eq!(r, RMQS_ERR_NO_OFFSET.status());
        assert!(Instant::now() < deadline, "stored offset never visible");
        std::thread::sleep(Duration::from_millis(20));
    }

    // publisher sequence of an unknown producer: 0
    let mut seq = 99u64;
    let r = unsafe {
        rmqs_stream_query_sequence(
            conn,
            c"nobody".as_ptr(),
            s.as_ptr(),
            &mut seq,
            ptr::null_mut(),
        )
    };
    assert_eq!(r, 0);
    assert_eq!(seq, 0);

    // delete, then it is gone and deleting again says so
    let mut err = ptr::null_mut();
    let r = unsafe { rmqs_stream_delete(conn, s.as_ptr(), &mut err) };
    take_err(r, err).unwrap_or_else(|f| panic!("delete: {}", f.message));
    assert!(!exists(conn, &s));
    let r = unsafe { rmqs_stream_delete(conn, s.as_ptr(), ptr::null_mut()) };
    assert_eq!(r, RMQS_ERR_STREAM_DOES_NOT_EXIST.status());
    let r = unsafe { rmqs_stream_stats(conn, s.as_ptr(), &mut st, ptr::null_mut()) };
    assert_eq!(r, RMQS_ERR_STREAM_DOES_NOT_EXIST.status());

    unsafe { rmqs_connection_free(conn) };
}

#[test]
fn bad_arguments_never_crash() {
    let conn = connect(&uri());
    let long = CString::new("s".repeat(256)).unwrap();
    let max = CString::new("s".repeat(255)).unwrap();
    let non_utf8 = [b's', 0xc3, 0x28, 0];
    let mut b = false;
    let mut err = ptr::null_mut();
    unsafe {
        let r = rmqs_stream_exists(conn, long.as_ptr(), &mut b, &mut err);
        let f = take_err(r, err).unwrap_err();
        assert_eq!(f.status, RMQS_ERR_INVALID_ARGUMENT.status());
        assert!(f.message.contains("256"), "{}", f.message);
        // 255 bytes is fine
        assert_eq!(
            rmqs_stream_exists(conn, max.as_ptr(), &mut b, ptr::null_mut()),
            0
        );
        assert!(!b);
        assert_eq!(
            rmqs_stream_exists(conn, non_utf8.as_ptr().cast(), &mut b, ptr::null_mut()),
            RMQS_ERR_INVALID_ARGUMENT.status()
        );
        assert_eq!(
            rmqs_stream_exists(conn, ptr::null(), &mut b, ptr::null_mut()),
            RMQS_ERR_INVALID_ARGUMENT.status()
        );
        assert_eq!(
            rmqs_stream_exists(conn, c"x".as_ptr(), ptr::null_mut(), ptr::null_mut()),
            RMQS_ERR_INVALID_ARGUMENT.status()
        );
        assert_eq!(
            rmqs_stream_exists(ptr::null_mut(), c"x".as_ptr(), &mut b, ptr::null_mut()),
            RMQS_ERR_INVALID_ARGUMENT.status()
        );
        assert_eq!(
            rmqs_stream_create(conn, c"".as_ptr(), ptr::null(), ptr::null_mut()),
            RMQS_ERR_INVALID_ARGUMENT.status()
        );
        assert_eq!(
            rmqs_stream_delete(ptr::null_mut(), c"x".as_ptr(), ptr::null_mut()),
            RMQS_ERR_INVALID_ARGUMENT.status()
        );
        assert_eq!(
            rmqs_connection_close(ptr::null_mut(), 0, std::ptr::null_mut()),
            RMQS_ERR_INVALID_ARGUMENT.status()
        );
        assert!(!rmqs_connection_supports(ptr::null(), 1, 1));
        assert_eq!(cstr(rmqs_connection_server_version(ptr::null())), "");

        // after close: CLOSED, not a hang or a crash
        assert_eq!(rmqs_connection_close(conn, -1, std::ptr::null_mut()), 0);
        let mut err = ptr::null_mut();
        let r = rmqs_stream_exists(conn, c"x".as_ptr(), &mut b, &mut err);
        let f = take_err(r, err).unwrap_err();
        assert_eq!(f.status, RMQS_ERR_CLOSED.status(), "{}", f.message);
        rmqs_connection_free(conn);
    }
}

#[test]
fn lazy_open_connects_on_first_use() {
    let t0 = Instant::now();
    let conn =
        open(&[("uri", &uri()), ("lazy_open", "true")]).unwrap_or_else(|f| panic!("{}", f.message));
    assert!(t0.elapsed() < Duration::from_millis(500));
    // not connected yet
    assert_eq!(cstr(unsafe { rmqs_connection_server_version(conn) }), "");
    assert!(!unsafe { rmqs_connection_supports(conn, 1, 1) });
    // several threads use it at once: all wait for the one connection
    let c = conn as usize;
    let threads: Vec<_> = (0..4)
        .map(|_| {
            std::thread::spawn(move || {
                let mut b = true;
                let r = unsafe {
                    rmqs_stream_exists(
                        c as *mut _,
                        c"ffi-lazy-none".as_ptr(),
                        &mut b,
                        ptr::null_mut(),
                    )
                };
                (r, b)
            })
        })
        .collect();
    for t in threads {
        assert_eq!(t.join().unwrap(), (0, false));
    }
    assert!(!cstr(unsafe { rmqs_connection_server_version(conn) }).is_empty());
    unsafe { rmqs_connection_free(conn) };

    // a lazy connection to nowhere fails on first use, within the connect timeout
    let conn = open(&[
        ("uri", "rabbitmq-stream://guest:guest@127.0.0.1:1/%2f"),
        ("lazy_open", "true"),
        ("connect_timeout_ms", "500"),
    ])
    .unwrap_or_else(|f| panic!("{}", f.message));
    let mut b = false;
    let r = unsafe { rmqs_stream_exists(conn, c"x".as_ptr(), &mut b, ptr::null_mut()) };
    assert_eq!(r, RMQS_ERR_IO.status());
    unsafe { rmqs_connection_free(conn) };
}

/// The frame_max and heartbeat agreed at the handshake: the configured ones when below the
/// broker's (RabbitMQ's defaults, which scripts/broker keeps: 1048576 bytes and 60 s), the
/// broker's for 0; a lazy connection connects to answer; a closed one says so.
#[test]
fn negotiated_frame_max_and_heartbeat() {
    let read = |conn: *mut rmqs_connection| -> Result<(u32, u32), Failure> {
        let (mut frame_max, mut heartbeat) = (u32::MAX, u32::MAX);
        let mut err = ptr::null_mut();
        let st =
            unsafe { rmqs_connection_negotiated(conn, &mut frame_max, &mut heartbeat, &mut err) };
        take_err(st, err).map(|()| (frame_max, heartbeat))
    };
    let opened = |pairs: &[(&str, &str)]| open(pairs).unwrap_or_else(|f| panic!("{}", f.message));
    let u = uri();

    let conn = opened(&[("uri", &u), ("frame_max", "131072"), ("heartbeat", "17")]);
    assert_eq!(read(conn).ok(), Some((131_072, 17)));
    let st = unsafe {
        rmqs_connection_negotiated(conn, ptr::null_mut(), ptr::null_mut(), ptr::null_mut())
    };
    assert_eq!(st, RMQS_OK.status());
    unsafe { rmqs_connection_free(conn) };

    let conn = opened(&[("uri", &u), ("frame_max", "0"), ("heartbeat", "0")]);
    assert_eq!(read(conn).ok(), Some((1_048_576, 60)));
    unsafe { rmqs_connection_free(conn) };

    let conn = opened(&[("uri", &u), ("lazy_open", "true"), ("heartbeat", "5")]);
    assert_eq!(cstr(unsafe { rmqs_connection_server_version(conn) }), "");
    assert_eq!(read(conn).ok(), Some((1_048_576, 5)));
    assert!(!cstr(unsafe { rmqs_connection_server_version(conn) }).is_empty());
    assert_eq!(
        unsafe { rmqs_connection_close(conn, 5000, ptr::null_mut()) },
        RMQS_OK.status()
    );
    let f = read(conn).unwrap_err();
    assert_eq!(f.status, RMQS_ERR_CLOSED.status(), "{}", f.message);
    assert!(
        f.message.contains("rmqs_connection_negotiated"),
        "{}",
        f.message
    );
    unsafe { rmqs_connection_free(conn) };

    let f = read(ptr::null_mut()).unwrap_err();
    assert_eq!(f.status, RMQS_ERR_INVALID_ARGUMENT.status());
    assert!(f.message.contains("NULL"), "{}", f.message);
}

#[test]
fn legacy_broker_stats_unsupported() {
    let Some(conn) = legacy_connection("stats on 3.10.8") else {
        return;
    };
    assert!(cstr(unsafe { rmqs_connection_server_version(conn) }).starts_with("3.10"));
    assert!(!unsafe { rmqs_connection_supports(conn, 0x1c, 1) });
    let s = cunique("ffi-legacy");
    create(conn, &s, ptr::null()).unwrap_or_else(|f| panic!("create: {}", f.message));
    let mut st = rmqs_stream_statistics {
        size: std::mem::size_of::<rmqs_stream_statistics>() as u64,
        ..Default::default()
    };
    let mut err = ptr::null_mut();
    let r = unsafe { rmqs_stream_stats(conn, s.as_ptr(), &mut st, &mut err) };
    let f = take_err(r, err).unwrap_err();
    assert_eq!(f.status, RMQS_ERR_UNSUPPORTED.status());
    assert!(f.message.contains("3.11"), "{}", f.message);
    assert!(exists(conn, &s));
    let r = unsafe { rmqs_stream_delete(conn, s.as_ptr(), ptr::null_mut()) };
    assert_eq!(r, 0);
    unsafe { rmqs_connection_free(conn) };
}

fn strings_of(list: *mut rmqs_strings) -> Vec<String> {
    assert!(unsafe { rmqs_strings_get(list, rmqs_strings_count(list)) }.is_null());
    strings(list)
}

/// The partitions `rmqs_super_stream_route` gives for `key`.
fn route(conn: *mut rmqs_connection, key: &CStr, name: &CStr) -> Vec<String> {
    let mut list = ptr::null_mut();
    let (k, n) = (key.as_ptr(), name.as_ptr());
    let r = unsafe { rmqs_super_stream_route(conn, k, n, &mut list, ptr::null_mut()) };
    assert_eq!(r, 0);
    strings_of(list)
}

#[test]
fn super_stream_management() {
    let conn = connect(&uri());
    let name = cunique("ffi-super");
    let n = name.to_str().unwrap().to_string();

    // N partitions with the usual names and keys
    let mut err = ptr::null_mut();
    let r = unsafe { rmqs_super_stream_create_n(conn, name.as_ptr(), 3, ptr::null(), &mut err) };
    take_err(r, err).unwrap_or_else(|f| panic!("create_n: {}", f.message));
    let mut list = ptr::null_mut();
    let r =
        unsafe { rmqs_super_stream_partitions(conn, name.as_ptr(), &mut list, ptr::null_mut()) };
    assert_eq!(r, 0);
    assert_eq!(strings_of(list), [0, 1, 2].map(|i| format!("{n}-{i}")));
    assert_eq!(route(conn, c"1", &name), [format!("{n}-1")]);
    assert!(route(conn, c"nope", &name).is_empty());
    let r =
        unsafe { rmqs_super_stream_create_n(conn, name.as_ptr(), 3, ptr::null(), ptr::null_mut()) };
    assert_eq!(r, RMQS_ERR_STREAM_ALREADY_EXISTS.status());
    let r = unsafe { rmqs_super_stream_delete(conn, name.as_ptr(), ptr::null_mut()) };
    assert_eq!(r, 0);
    assert!(!exists(conn, &CString::new(format!("{n}-0")).unwrap()));

    // explicit partitions and binding keys, with arguments
    let (p0, p1) = (
        CString::new(format!("{n}-eu")).unwrap(),
        CString::new(format!("{n}-us")).unwrap(),
    );
    let parts = [p0.as_ptr(), p1.as_ptr()];
    let keys = [c"eu".as_ptr(), c"us".as_ptr()];
    let args = config(&[("max_age", "1D")]);
    let r = unsafe {
        rmqs_super_stream_create(
            conn,
            name.as_ptr(),
            parts.as_ptr(),
            keys.as_ptr(),
            2,
            args,
            ptr::null_mut(),
        )
    };
    unsafe { rmqs_config_free(args) };
    assert_eq!(r, 0);
    assert_eq!(route(conn, c"us", &name), [format!("{n}-us")]);
    assert!(exists(conn, &p0));
    assert_eq!(
        unsafe { rmqs_super_stream_delete(conn, name.as_ptr(), ptr::null_mut()) },
        0
    );
    assert!(!exists(conn, &p0));

    // bad input
    unsafe {
        assert_eq!(
            rmqs_super_stream_create(
                conn,
                name.as_ptr(),
                ptr::null(),
                ptr::null(),
                2,
                ptr::null(),
                ptr::null_mut()
            ),
            RMQS_ERR_INVALID_ARGUMENT.status()
        );
        assert_eq!(
            rmqs_super_stream_create_n(conn, name.as_ptr(), 0, ptr::null(), ptr::null_mut()),
            RMQS_ERR_INVALID_ARGUMENT.status()
        );
        assert_eq!(
            rmqs_super_stream_partitions(
                conn,
                c"ffi-no-such-super".as_ptr(),
                &mut list,
                ptr::null_mut()
            ),
            RMQS_ERR_STREAM_DOES_NOT_EXIST.status()
        );
        assert_eq!(rmqs_strings_count(ptr::null()), 0);
        rmqs_strings_free(ptr::null_mut());
        rmqs_connection_free(conn);
    }

    // 3.10.8: no super stream commands
    if let Some(u) = legacy_uri() {
        let conn = connect(&u);
        let mut err = ptr::null_mut();
        let r =
            unsafe { rmqs_super_stream_create_n(conn, name.as_ptr(), 2, ptr::null(), &mut err) };
        let f = take_err(r, err).unwrap_err();
        assert_eq!(f.status, RMQS_ERR_UNSUPPORTED.status());
        assert!(f.message.contains("3.13"), "{}", f.message);
        unsafe { rmqs_connection_free(conn) };
    }
}
