//! Observability and configuration layering through the C API (`extern "C"` symbols), against
//! the broker of scripts/broker (RMQS_TEST_URI):
//! - the log callback: levels, targets, the lines at open and close, `log_level` filtering,
//!   when `user_data_free` runs;
//! - counters of connections, producers and consumers matching what was sent and consumed,
//!   and the extensible-struct `size` protocol;
//! - configuration layering: library defaults < `producer.*` / `consumer.*` on the connection
//!   < the producer's / consumer's own config < per-call flags, each level overriding the one
//!   below with an observable outcome.

mod support;

use std::ffi::{CStr, c_char, c_void};
use std::ptr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::capi::*;
use support::uri;

use rmqstream::ffi::rmqs_status_code::*;
use rmqstream::ffi::*;

// ---------------------------------------------------------------------------------------------
// helpers

/// Opens a connection with `uri` plus `pairs`; frees the config unless `keep_config`.
fn open(cfg: *mut rmqs_config) -> Result<*mut rmqs_connection, (rmqs_status, String)> {
    let mut conn = ptr::null_mut();
    let mut err = ptr::null_mut();
    let st = unsafe { rmqs_connection_open(cfg, &mut conn, &mut err) };
    if st != 0 {
        return Err((st, message(err)));
    }
    Ok(conn)
}

fn send(p: *mut rmqs_producer, body: &[u8], flags: u32) -> rmqs_status {
    unsafe { rmqs_producer_send(p, body.as_ptr(), body.len(), 0, flags, ptr::null_mut()) }
}

/// What a log callback saw.
#[derive(Default)]
struct Logs {
    lines: Mutex<Vec<(i32, String, String)>>,
    freed: AtomicUsize,
}

impl Logs {
    fn lines(&self) -> Vec<(i32, String, String)> {
        self.lines.lock().unwrap().clone()
    }

    fn count(&self) -> usize {
        self.lines.lock().unwrap().len()
    }

    fn freed(&self) -> usize {
        self.freed.load(Ordering::SeqCst)
    }

    fn find(&self, level: i32, needle: &str) -> Option<(i32, String, String)> {
        self.lines()
            .into_iter()
            .find(|(l, _, m)| *l == level && m.contains(needle))
    }
}

unsafe extern "C" fn on_log(
    ud: *mut c_void,
    level: i32,
    target: *const c_char,
    msg: *const c_char,
) {
    let logs = unsafe { &*(ud as *const Logs) };
    let t = unsafe { CStr::from_ptr(target) }
        .to_str()
        .unwrap()
        .to_string();
    let m = unsafe { CStr::from_ptr(msg) }.to_str().unwrap().to_string();
    logs.lines.lock().unwrap().push((level, t, m));
}

unsafe extern "C" fn free_logs(ud: *mut c_void) {
    let logs = unsafe { Arc::from_raw(ud as *const Logs) };
    logs.freed.fetch_add(1, Ordering::SeqCst);
}

/// Registers `logs` on `cfg` (the library takes a reference, released by `free_logs`).
fn set_log(cfg: *mut rmqs_config, logs: &Arc<Logs>) {
    let ud = Arc::into_raw(logs.clone()) as *mut c_void;
    assert_eq!(
        unsafe {
            rmqs_config_set_log_cb(cfg, Some(on_log), ud, Some(free_logs), std::ptr::null_mut())
        },
        0
    );
}

fn logged_config(logs: &Arc<Logs>, pairs: &[(&str, &str)]) -> *mut rmqs_config {
    let u = uri();
    let mut all = vec![("uri", u.as_str())];
    all.extend_from_slice(pairs);
    let cfg = config(&all);
    set_log(cfg, logs);
    cfg
}

// ---------------------------------------------------------------------------------------------
// the log callback

#[test]
fn log_callback_sees_open_and_close_at_info_and_is_freed_once() {
    let logs = Arc::new(Logs::default());
    let cfg = logged_config(&logs, &[]); // log_level: default info
    let conn = open(cfg).unwrap();
    unsafe { rmqs_config_free(cfg) };
    assert_eq!(logs.freed(), 0, "the connection still holds the callback");

    let version = unsafe { CStr::from_ptr(rmqs_connection_server_version(conn)) }
        .to_str()
        .unwrap()
        .to_string();
    assert!(!version.is_empty());
    let (_, target, line) = logs
        .find(RMQS_LOG_INFO, "connected to")
        .unwrap_or_else(|| panic!("no info 'connected' line in {:?}", logs.lines()));
    assert_eq!(target, "connection");
    assert!(line.contains(&version), "{line}");
    assert!(
        line.contains("frame_max") && line.contains("heartbeat"),
        "{line}"
    );

    // work that logs at debug level only (registrations, new data connections)
    let s = cunique("ffi-obs-log");
    create_stream(conn, &s);
    let p = bare_producer(conn, &s, &[]);
    assert_eq!(send(p, b"x", 0), 0);
    assert_eq!(
        unsafe { rmqs_producer_flush(p, 10_000, std::ptr::null_mut()) },
        0
    );
    unsafe { rmqs_producer_free(p) };
    delete_stream(conn, &s);

    assert_eq!(
        unsafe { rmqs_connection_close(conn, 10_000, std::ptr::null_mut()) },
        0
    );
    let closed = logs
        .find(RMQS_LOG_INFO, "closed")
        .unwrap_or_else(|| panic!("no info 'closed' line in {:?}", logs.lines()));
    assert!(closed.2.contains("closed by the application"), "{closed:?}");
    for (level, target, m) in logs.lines() {
        assert!(
            (RMQS_LOG_ERROR..=RMQS_LOG_INFO).contains(&level),
            "level {level} passed at info: {target}: {m}"
        );
        assert!(
            ["connection", "environment", "producer", "consumer"].contains(&target.as_str()),
            "{target}"
        );
        assert!(!m.is_empty() && !m.contains('\n'), "{m:?}");
    }
    assert_eq!(logs.freed(), 0, "closed but not freed");

    unsafe { rmqs_connection_free(conn) };
    assert_eq!(
        logs.freed(),
        1,
        "user_data_free ran inside rmqs_connection_free"
    );
    let n = logs.count();
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(logs.count(), n, "no call after free");
    assert_eq!(
        Arc::strong_count(&logs),
        1,
        "the library let go of user_data"
    );
}

#[test]
fn debug_level_shows_details_and_off_shows_nothing() {
    let logs = Arc::new(Logs::default());
    let cfg = logged_config(&logs, &[("log_level", "debug")]);
    let conn = open(cfg).unwrap();
    unsafe { rmqs_config_free(cfg) };
    assert!(logs.find(RMQS_LOG_DEBUG, "connecting to").is_some());
    assert!(logs.find(RMQS_LOG_INFO, "connected to").is_some());
    let s = cunique("ffi-obs-debug");
    create_stream(conn, &s);
    let p = bare_producer(conn, &s, &[]);
    let name = s.to_str().unwrap();
    assert!(
        logs.lines()
            .iter()
            .any(|(l, _, m)| *l == RMQS_LOG_DEBUG && m.contains("registered") && m.contains(name)),
        "{:?}",
        logs.lines()
    );
    unsafe { rmqs_producer_free(p) };
    assert!(
        logs.lines()
            .iter()
            .any(|(l, _, m)| *l == RMQS_LOG_DEBUG && m.contains("unregistered")),
        "{:?}",
        logs.lines()
    );
    delete_stream(conn, &s);
    unsafe { rmqs_connection_free(conn) };
    assert!(logs.lines().iter().all(|(l, _, _)| *l <= RMQS_LOG_DEBUG));
    assert_eq!(logs.freed(), 1);

    // off, and error only: a successful open and close say nothing
    for level in ["off", "ERROR"] {
        let quiet = Arc::new(Logs::default());
        let cfg = logged_config(&quiet, &[("log_level", level)]);
        let conn = open(cfg).unwrap();
        unsafe { rmqs_config_free(cfg) };
        unsafe { rmqs_connection_free(conn) };
        assert_eq!(quiet.count(), 0, "{level}: {:?}", quiet.lines());
        if level == "off" {
            assert_eq!(quiet.freed(), 1);
        }
    }

    let cfg = rmqs_config_new();
    let mut err = ptr::null_mut();
    let st = unsafe { rmqs_config_set(cfg, c"log_level".as_ptr(), c"loud".as_ptr(), &mut err) };
    assert_eq!(st, RMQS_ERR_INVALID_ARGUMENT.status());
    assert!(message(err).contains("log_level"));
    unsafe { rmqs_config_free(cfg) };
}

#[test]
fn a_failed_open_logs_why() {
    let logs = Arc::new(Logs::default());
    let cfg = config(&[
        ("hosts", "127.0.0.1:1"),
        ("connect_timeout_ms", "2000"),
        ("log_level", "debug"),
    ]);
    set_log(cfg, &logs);
    let (st, _) = open(cfg).unwrap_err();
    assert_eq!(st, RMQS_ERR_IO.status());
    assert!(logs.find(RMQS_LOG_WARN, "127.0.0.1:1 failed").is_some());
    assert!(logs.find(RMQS_LOG_ERROR, "no seed host answered").is_some());
    assert_eq!(logs.freed(), 0, "the config still holds it");
    unsafe { rmqs_config_free(cfg) };
    assert_eq!(logs.freed(), 1);
}

#[test]
fn user_data_free_waits_for_the_config_and_every_connection() {
    // two connections from one config, the config outliving the first
    let logs = Arc::new(Logs::default());
    let cfg = logged_config(&logs, &[("lazy_open", "true")]);
    let c1 = open(cfg).unwrap();
    let c2 = open(cfg).unwrap();
    unsafe { rmqs_connection_free(c1) };
    assert_eq!(logs.freed(), 0);
    unsafe { rmqs_config_free(cfg) };
    assert_eq!(logs.freed(), 0, "c2 still uses it");
    unsafe { rmqs_connection_free(c2) };
    assert_eq!(logs.freed(), 1);

    // replaced or removed on an unused config: freed at once
    let a = Arc::new(Logs::default());
    let b = Arc::new(Logs::default());
    let cfg = rmqs_config_new();
    set_log(cfg, &a);
    set_log(cfg, &b);
    assert_eq!((a.freed(), b.freed()), (1, 0));
    assert_eq!(
        unsafe { rmqs_config_set_log_cb(cfg, None, ptr::null_mut(), None, std::ptr::null_mut()) },
        0
    );
    assert_eq!(b.freed(), 1);
    unsafe { rmqs_config_free(cfg) };
    assert_eq!((a.freed(), b.freed()), (1, 1));

    // a config without callback logs nowhere; a NULL config is refused and keeps nothing
    let c = Arc::new(Logs::default());
    let ud = Arc::into_raw(c.clone()) as *mut c_void;
    let st = unsafe {
        rmqs_config_set_log_cb(
            ptr::null_mut(),
            Some(on_log),
            ud,
            Some(free_logs),
            std::ptr::null_mut(),
        )
    };
    assert_eq!(st, RMQS_ERR_INVALID_ARGUMENT.status());
    assert_eq!(c.freed(), 0, "not taken on failure");
    drop(unsafe { Arc::from_raw(ud as *const Logs) });
    assert_eq!(Arc::strong_count(&c), 1);
}

// ---------------------------------------------------------------------------------------------
// counters

#[test]
fn counters_match_what_was_sent_and_consumed() {
    const N: usize = 1000;
    let conn = connect_to(&uri(), &[]);
    let s0 = conn_stats(conn);
    assert_eq!(s0.connections_opened, 1, "the locator");
    assert_eq!(s0.data_connections, 0);
    assert!(s0.frames_in >= 4 && s0.frames_out >= 4, "handshake: {s0:?}");
    assert!(s0.bytes_in > 0 && s0.bytes_out > 0);
    assert_eq!(s0.reconnects, 0);

    let s = cunique("ffi-obs-counters");
    create_stream(conn, &s);
    let p = bare_producer(conn, &s, &[("batch_size", "100")]);
    let z = producer_stats(p);
    assert_eq!(
        (z.published, z.confirmed, z.errored, z.in_flight),
        (0, 0, 0, 0)
    );
    let s1 = conn_stats(conn);
    let mut body_bytes = 0u64;
    for i in 0..N {
        let body = format!("counted-{i:05}");
        body_bytes += body.len() as u64;
        assert_eq!(send(p, body.as_bytes(), 0), 0);
    }
    assert_eq!(
        unsafe { rmqs_producer_flush(p, 30_000, std::ptr::null_mut()) },
        0
    );
    let ps = producer_stats(p);
    assert_eq!(ps.published, N as u64);
    assert_eq!(ps.confirmed, N as u64);
    assert_eq!(ps.errored, 0);
    assert_eq!(ps.in_flight, 0);

    let s2 = conn_stats(conn);
    assert_eq!(s2.connections_opened, 2, "locator + one data connection");
    assert_eq!(s2.data_connections, 1);
    assert!(
        s2.frames_out - s1.frames_out >= (N / 100) as u64,
        "{s1:?} {s2:?}"
    );
    assert!(s2.bytes_out - s1.bytes_out > body_bytes, "{s1:?} {s2:?}");
    assert!(s2.frames_in > s1.frames_in, "confirms came in");
    assert!(s2.bytes_in > s1.bytes_in);

    // consume them back through a queue
    let mut q = ptr::null_mut();
    assert_eq!(unsafe { rmqs_queue_new(&mut q, std::ptr::null_mut()) }, 0);
    let c = queue_consumer(conn, &s, &[("offset", "first"), ("initial_credit", "2")], q);
    let (mut messages, mut chunks) = (0usize, 0u64);
    let deadline = Instant::now() + Duration::from_secs(30);
    while messages < N && Instant::now() < deadline {
        let ev = poll_event(q, 100);
        if ev.is_null() {
            continue;
        }
        if unsafe { rmqs_event_type(ev) } == rmqs_event_type_code::RMQS_EVENT_CHUNK as i32 {
            messages += unsafe { rmqs_chunk_message_count(rmqs_event_chunk(ev)) };
            chunks += 1;
        }
        unsafe { rmqs_event_free(ev) };
    }
    assert_eq!(messages, N);
    let cs = consumer_stats(c);
    assert_eq!(cs.messages, N as u64);
    assert_eq!(cs.chunks, chunks);
    assert_eq!((cs.filtered_out, cs.offsets_stored), (0, 0));
    assert_eq!(cs.last_stored_offset, u64::MAX, "none stored");
    assert!(cs.bytes > body_bytes, "{cs:?}");
    // the initial 2, then one per released chunk (all but possibly the last ones in flight)
    assert!(
        cs.credits_granted >= 2 && cs.credits_granted <= 2 + chunks,
        "{cs:?}"
    );
    let s3 = conn_stats(conn);
    assert_eq!(
        s3.data_connections, 2,
        "the consumer gets its own, apart from the producer's"
    );
    assert_eq!(s3.connections_opened, 3);
    assert!(s3.bytes_in - s2.bytes_in > body_bytes, "{s2:?} {s3:?}");
    assert!(s3.frames_in > s2.frames_in && s3.frames_out > s2.frames_out);

    // readable after close, until freed
    assert_eq!(
        unsafe { rmqs_consumer_close(c, 10_000, std::ptr::null_mut()) },
        0
    );
    assert_eq!(
        unsafe { rmqs_producer_close(p, 10_000, std::ptr::null_mut()) },
        0
    );
    assert_eq!(consumer_stats(c).messages, N as u64);
    assert_eq!(producer_stats(p).confirmed, N as u64);
    unsafe { rmqs_consumer_free(c) };
    unsafe { rmqs_producer_free(p) };
    unsafe { rmqs_queue_free(q) };
    delete_stream(conn, &s);
    assert_eq!(
        unsafe { rmqs_connection_close(conn, 10_000, std::ptr::null_mut()) },
        0
    );
    let s4 = conn_stats(conn);
    assert_eq!(s4.data_connections, 0);
    assert!(s4.frames_out >= s3.frames_out && s4.bytes_in >= s3.bytes_in);
    unsafe { rmqs_connection_free(conn) };
}

#[test]
fn stats_check_their_arguments() {
    let cfg = config(&[("uri", &uri()), ("lazy_open", "true")]);
    let conn = open(cfg).unwrap();
    unsafe { rmqs_config_free(cfg) };
    // not connected yet: zeros
    let s = conn_stats(conn);
    assert_eq!(
        s,
        rmqs_connection_statistics {
            size: size_of::<rmqs_connection_statistics>() as u64,
            ..Default::default()
        }
    );
    // size not set: refused, nothing written
    let mut bad = rmqs_connection_statistics {
        frames_in: 42,
        ..Default::default()
    };
    assert_eq!(
        unsafe { rmqs_connection_stats(conn, &mut bad, std::ptr::null_mut()) },
        RMQS_ERR_INVALID_ARGUMENT.status()
    );
    assert_eq!(bad.frames_in, 42);
    // a newer caller's bigger struct: our part filled, size says how much
    let mut big = [u64::MAX; 12];
    big[0] = 96;
    assert_eq!(
        unsafe { rmqs_connection_stats(conn, big.as_mut_ptr().cast(), std::ptr::null_mut()) },
        0
    );
    assert_eq!(big[0], size_of::<rmqs_connection_statistics>() as u64);
    assert_eq!(big[1..8], [0; 7]);
    assert_eq!(big[8..], [u64::MAX; 4]);
    assert_eq!(
        unsafe { rmqs_connection_stats(conn, ptr::null_mut(), std::ptr::null_mut()) },
        RMQS_ERR_INVALID_ARGUMENT.status()
    );
    // NULL producer and consumer: refused
    let mut ps = rmqs_producer_statistics {
        size: 40,
        ..Default::default()
    };
    let mut cs = rmqs_consumer_statistics {
        size: 64,
        ..Default::default()
    };
    let null_err = std::ptr::null_mut();
    let refused = unsafe {
        [
            rmqs_producer_stats(ptr::null(), &mut ps, null_err),
            rmqs_consumer_stats(ptr::null(), &mut cs, null_err),
        ]
    };
    assert_eq!(refused, [RMQS_ERR_INVALID_ARGUMENT.status(); 2]);
    unsafe { rmqs_connection_free(conn) };
}

// ---------------------------------------------------------------------------------------------
// configuration layering

/// Sends until a send fails; returns how many were accepted and the failing status.
fn fill(p: *mut rmqs_producer, flags: u32, limit: usize) -> (usize, rmqs_status) {
    for i in 0..limit {
        let st = send(p, b"layered", flags);
        if st != 0 {
            return (i, st);
        }
    }
    (limit, 0)
}

/// Frames a producer's messages took: sends `n` messages and waits for their confirms; the
/// connection's `frames_out` difference (nothing else is written meanwhile).
fn frames_for(conn: *mut rmqs_connection, p: *mut rmqs_producer, n: usize) -> u64 {
    let before = conn_stats(conn).frames_out;
    for _ in 0..n {
        assert_eq!(send(p, b"framed", 0), 0);
    }
    assert!(wait_until(Duration::from_secs(10), || {
        producer_stats(p).confirmed == n as u64
    }));
    conn_stats(conn).frames_out - before
}

#[test]
fn each_configuration_level_overrides_the_one_below() {
    let queue_full = RMQS_ERR_QUEUE_FULL.status();
    // messages stay unconfirmed: partial frames wait a minute for more
    let hold = [("batch_delay_ms", "60000"), ("batch_size", "65535")];

    let s = cunique("ffi-obs-layers");
    // connection A: no producer.* / consumer.* defaults
    let a = connect_to(&uri(), &[]);
    // connection B: defaults for every producer and consumer created from it
    let b = connect_to(
        &uri(),
        &[
            ("producer.max_in_flight", "5"),
            ("producer.block_when_full", "false"),
            ("producer.batch_delay_ms", "60000"),
            ("producer.batch_size", "65535"),
            ("consumer.initial_credit", "3"),
            ("consumer.credit_policy", "manual"),
        ],
    );
    create_stream(a, &s);

    // max_in_flight, 1. library default (1000)
    let mut cfg = hold.to_vec();
    cfg.push(("block_when_full", "false"));
    let p = bare_producer(a, &s, &cfg);
    assert_eq!(fill(p, 0, 20_000), (1000, queue_full));
    assert_eq!(producer_stats(p).in_flight, 1000);
    unsafe { rmqs_producer_free(p) };
    // 2. the connection's producer.max_in_flight (5) over the library's 1000
    let p = bare_producer(b, &s, &[]);
    assert_eq!(fill(p, 0, 100), (5, queue_full));
    unsafe { rmqs_producer_free(p) };
    // 3. the producer's own max_in_flight (7) over the connection's 5
    let p = bare_producer(b, &s, &[("max_in_flight", "7")]);
    assert_eq!(fill(p, 0, 100), (7, queue_full));
    assert_eq!(producer_stats(p).in_flight, 7);
    unsafe { rmqs_producer_free(p) };

    // blocking: the producer's block_when_full=true over the connection's false: a send on a
    // full producer waits for room (the library sends the partial frame and the confirms
    // come) instead of failing ...
    let p = bare_producer(b, &s, &[("block_when_full", "true")]);
    assert_eq!(fill(p, 0, 5), (5, 0));
    assert_eq!(send(p, b"waited", 0), 0);
    assert!(producer_stats(p).confirmed >= 1, "it waited for a confirm");
    // ... 4. and the per-call RMQS_SEND_NO_BLOCK over the producer's block_when_full=true:
    // the same full producer fails at once
    let t = Instant::now();
    let (accepted, st) = fill(p, RMQS_SEND_NO_BLOCK, 100);
    assert_eq!(st, queue_full);
    assert!(accepted <= 5);
    assert!(
        t.elapsed() < Duration::from_millis(200),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(producer_stats(p).in_flight, 5);
    // a per-call flush over the configured batch_delay_ms of a minute: all confirmed
    assert_eq!(
        unsafe { rmqs_producer_flush(p, 10_000, std::ptr::null_mut()) },
        0
    );
    assert_eq!(producer_stats(p).in_flight, 0);
    unsafe { rmqs_producer_free(p) };

    // batch_size, seen in frames written (fresh connections: no other traffic meanwhile)
    // 1. library default 100: 200 messages = 2 frames
    let c = connect_to(&uri(), &[]);
    let p = bare_producer(c, &s, &[("batch_delay_ms", "60000")]);
    assert_eq!(frames_for(c, p, 200), 2);
    unsafe { rmqs_producer_free(p) };
    unsafe { rmqs_connection_free(c) };
    // 2. the connection's producer.batch_size 20: 10 frames
    let c = connect_to(
        &uri(),
        &[
            ("producer.batch_size", "20"),
            ("producer.batch_delay_ms", "60000"),
        ],
    );
    let p = bare_producer(c, &s, &[]);
    assert_eq!(frames_for(c, p, 200), 10);
    unsafe { rmqs_producer_free(p) };
    // 3. the producer's batch_size 50 over the connection's 20: 4 frames
    let p = bare_producer(c, &s, &[("batch_size", "50")]);
    assert_eq!(frames_for(c, p, 200), 4);
    unsafe { rmqs_producer_free(p) };
    unsafe { rmqs_connection_free(c) };

    // consumers: initial_credit, seen in the credits granted (manual policy: no more)
    let mut q = ptr::null_mut();
    assert_eq!(unsafe { rmqs_queue_new(&mut q, std::ptr::null_mut()) }, 0);
    // 1. library default 10
    let c = queue_consumer(a, &s, &[("credit_policy", "manual")], q);
    assert_eq!(consumer_stats(c).credits_granted, 10);
    unsafe { rmqs_consumer_free(c) };
    // 2. the connection's consumer.initial_credit 3 (and credit_policy manual)
    let c = queue_consumer(b, &s, &[], q);
    assert_eq!(consumer_stats(c).credits_granted, 3);
    // a per-call grant adds to it
    assert_eq!(
        unsafe { rmqs_consumer_credit(c, 4, std::ptr::null_mut()) },
        0
    );
    assert_eq!(consumer_stats(c).credits_granted, 7);
    unsafe { rmqs_consumer_free(c) };
    // 3. the consumer's own initial_credit 5 over the connection's 3
    let c = queue_consumer(b, &s, &[("initial_credit", "5")], q);
    assert_eq!(consumer_stats(c).credits_granted, 5);
    unsafe { rmqs_consumer_free(c) };

    unsafe { rmqs_queue_free(q) };

    delete_stream(a, &s);
    unsafe { rmqs_connection_free(b) };
    unsafe { rmqs_connection_free(a) };
}
