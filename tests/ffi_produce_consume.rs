//! Producers, consumers, the event queue and chunk views through the C API (`extern "C"`
//! symbols), against the broker of scripts/broker (RMQS_TEST_URI; RMQS_TEST_LEGACY_URI or
//! localhost:5553 for the 3.10.8 checks, skipped when neither answers).

mod support;

use std::collections::HashMap;
use std::ffi::{CStr, CString, c_char, c_void};
use std::ptr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};
use support::capi::*;
use support::uri;

use rmqstream::ffi::rmqs_status_code::*;
use rmqstream::ffi::*;

// ---------------------------------------------------------------------------------------------
// helpers

/// What confirm callbacks saw.
#[derive(Default)]
struct Confirms {
    by_tag: Mutex<HashMap<usize, Vec<rmqs_status>>>,
    cv: Condvar,
    freed: AtomicUsize,
    /// Status of a blocking call made from inside the callback (once).
    nested: Mutex<Option<rmqs_status>>,
    producer: AtomicUsize,
}

impl Confirms {
    fn wait_for(&self, n: usize, timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        let mut g = self.by_tag.lock().unwrap();
        while g.values().map(Vec::len).sum::<usize>() < n && Instant::now() < deadline {
            g = self
                .cv
                .wait_timeout(g, Duration::from_millis(50))
                .unwrap()
                .0;
        }
        g.values().map(Vec::len).sum()
    }
}

unsafe extern "C" fn on_confirms(
    ud: *mut c_void,
    confirms: *const rmqs_confirm,
    n: usize,
    stride: usize,
) {
    assert_eq!(stride, std::mem::size_of::<rmqs_confirm>());
    let c = unsafe { &*(ud as *const Confirms) };
    let p = c.producer.load(Ordering::SeqCst);
    if p != 0 {
        let mut nested = c.nested.lock().unwrap();
        if nested.is_none() {
            *nested = Some(unsafe {
                rmqs_producer_flush(p as *mut rmqs_producer, 1000, std::ptr::null_mut())
            });
        }
    }
    let v = unsafe { std::slice::from_raw_parts(confirms, n) };
    let mut g = c.by_tag.lock().unwrap();
    for x in v {
        g.entry(x.tag).or_default().push(x.status);
    }
    c.cv.notify_all();
}

unsafe extern "C" fn free_confirms(ud: *mut c_void) {
    let c = unsafe { Arc::from_raw(ud as *const Confirms) };
    c.freed.fetch_add(1, Ordering::SeqCst);
}

/// `fn $name(conn, stream, keys, data, q, tag)`: a producer or consumer made with `$new`, its
/// callback `$cb` recording into `data` (one reference, released by `$free`; none: no callback)
/// and delivering to `q` (may be NULL) with source tag `tag`. On failure the reference is dropped
/// again (the library does not take it over) and the status and message returned.
macro_rules! new_with_data {
    ($name:ident, $data:ty, $obj:ty, $new:ident, $cb:ident, $free:ident) => {
        fn $name(
            conn: *mut rmqs_connection,
            s: &CStr,
            keys: &[(&str, &str)],
            data: Option<&Arc<$data>>,
            q: *mut rmqs_queue,
            tag: usize,
        ) -> Result<*mut $obj, (rmqs_status, String)> {
            let cfg = config(keys);
            let mut obj = ptr::null_mut();
            let mut err = ptr::null_mut();
            let ud = data.map_or(ptr::null_mut(), |d| Arc::into_raw(d.clone()) as *mut c_void);
            let (cb, free) = match data {
                Some(_) => (Some($cb as _), Some($free as _)),
                None => (None, None),
            };
            let st = unsafe {
                $new(
                    conn,
                    s.as_ptr(),
                    cfg,
                    cb,
                    ud,
                    free,
                    q,
                    tag,
                    &mut obj,
                    &mut err,
                )
            };
            unsafe { rmqs_config_free(cfg) };
            if st != 0 {
                if !ud.is_null() {
                    drop(unsafe { Arc::from_raw(ud as *const $data) });
                }
                return Err(failure(st, err));
            }
            Ok(obj)
        }
    };
}

new_with_data!(
    producer_new,
    Confirms,
    rmqs_producer,
    rmqs_producer_new,
    on_confirms,
    free_confirms
);

fn send(p: *mut rmqs_producer, body: &[u8], tag: usize) {
    let mut err = ptr::null_mut();
    let st = unsafe { rmqs_producer_send(p, body.as_ptr(), body.len(), tag, 0, &mut err) };
    check(st, err, "send");
}

fn body_of(i: usize) -> Vec<u8> {
    format!("message-{i:06}-{}", "x".repeat(i % 50)).into_bytes()
}

/// One consumed message.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Got {
    offset: u64,
    body: Vec<u8>,
}

unsafe fn read_chunk(ch: *const rmqs_chunk, out: &mut Vec<Got>) {
    unsafe {
        let n = rmqs_chunk_message_count(ch);
        assert!(n > 0);
        assert!(rmqs_chunk_first_offset(ch) >= rmqs_chunk_id(ch));
        assert_eq!(
            rmqs_message_offset(rmqs_chunk_message(ch, 0)),
            rmqs_chunk_first_offset(ch)
        );
        for i in 0..n {
            let m = rmqs_chunk_message(ch, i);
            assert!(!m.is_null());
            let mut len = 0;
            let b = rmqs_message_body(m, &mut len);
            out.push(Got {
                offset: rmqs_message_offset(m),
                body: std::slice::from_raw_parts(b, len).to_vec(),
            });
        }
        assert!(rmqs_chunk_message(ch, n).is_null());
    }
}

/// What chunk callbacks saw.
#[derive(Default)]
struct Chunks {
    got: Mutex<Vec<Got>>,
    chunks: AtomicUsize,
    freed: AtomicUsize,
    concurrent: AtomicUsize,
    max_concurrent: AtomicUsize,
    /// Chunks retained in the callback, released by the test.
    retained: Mutex<Vec<usize>>,
    retain: bool,
}

unsafe extern "C" fn on_chunk(ud: *mut c_void, ch: *const rmqs_chunk) {
    let c = unsafe { &*(ud as *const Chunks) };
    let now = c.concurrent.fetch_add(1, Ordering::SeqCst) + 1;
    c.max_concurrent.fetch_max(now, Ordering::SeqCst);
    unsafe { read_chunk(ch, &mut c.got.lock().unwrap()) };
    if c.retain {
        let r = unsafe { rmqs_chunk_retain(ch) };
        assert_eq!(r as *const rmqs_chunk, ch);
        c.retained.lock().unwrap().push(r as usize);
    }
    c.chunks.fetch_add(1, Ordering::SeqCst);
    c.concurrent.fetch_sub(1, Ordering::SeqCst);
}

unsafe extern "C" fn free_chunks(ud: *mut c_void) {
    let c = unsafe { Arc::from_raw(ud as *const Chunks) };
    c.freed.fetch_add(1, Ordering::SeqCst);
}

new_with_data!(
    consumer_new,
    Chunks,
    rmqs_consumer,
    rmqs_consumer_new,
    on_chunk,
    free_chunks
);

/// (type, source, source tag) of an event.
fn event_head(ev: *const rmqs_event) -> (i32, i32, usize) {
    unsafe {
        (
            rmqs_event_type(ev),
            rmqs_event_source(ev),
            rmqs_event_source_tag(ev),
        )
    }
}

/// Polls `q` until `n` messages came in chunk events (other events are returned aside).
fn drain_queue(
    q: *mut rmqs_queue,
    n: usize,
    timeout: Duration,
) -> (Vec<Got>, Vec<*mut rmqs_event>) {
    let deadline = Instant::now() + timeout;
    let mut got = Vec::new();
    let mut others = Vec::new();
    let mut evs = [ptr::null_mut(); 16];
    while got.len() < n && Instant::now() < deadline {
        let mut k = 0;
        let st = unsafe {
            rmqs_queue_poll_batch(q, evs.as_mut_ptr(), evs.len(), 100, &mut k, ptr::null_mut())
        };
        assert!(
            st == RMQS_OK.status() || st == RMQS_ERR_TIMEOUT.status(),
            "rmqs_queue_poll_batch: {st}"
        );
        for &ev in &evs[..k] {
            if unsafe { rmqs_event_type(ev) } == rmqs_event_type_code::RMQS_EVENT_CHUNK as i32 {
                unsafe { read_chunk(rmqs_event_chunk(ev), &mut got) };
                unsafe { rmqs_event_free(ev) };
            } else {
                others.push(ev);
            }
        }
    }
    (got, others)
}

// ---------------------------------------------------------------------------------------------
// tests

const N: usize = 10_000;

#[test]
fn publish_and_consume_through_callbacks_and_queue() {
    let (conn, s) = conn_and_stream("ffi-pc");

    // 1. N messages with confirms through a callback
    let confirms = Arc::new(Confirms::default());
    let keys = [("batch_size", "200")];
    let p = producer_new(conn, &s, &keys, Some(&confirms), ptr::null_mut(), 0).unwrap();
    for i in 0..N {
        send(p, &body_of(i), 1_000_000 + i);
    }
    flush(p);
    assert_eq!(confirms.wait_for(N, Duration::from_secs(5)), N);
    {
        let g = confirms.by_tag.lock().unwrap();
        assert_eq!(g.len(), N);
        for i in 0..N {
            assert_eq!(g[&(1_000_000 + i)], vec![0], "tag {i} confirmed once, OK");
        }
    }
    let mut last = u64::MAX;
    assert!(unsafe { rmqs_producer_last_id(p, &mut last) });
    assert_eq!(last, N as u64 - 1);
    assert_eq!(
        unsafe { rmqs_producer_close(p, 10_000, std::ptr::null_mut()) },
        0
    );
    assert_eq!(
        unsafe { rmqs_producer_close(p, 10_000, std::ptr::null_mut()) },
        0,
        "double close"
    );
    assert_eq!(
        confirms.freed.load(Ordering::SeqCst),
        0,
        "user_data kept until free"
    );
    unsafe { rmqs_producer_free(p) };
    assert_eq!(
        confirms.freed.load(Ordering::SeqCst),
        1,
        "user_data freed once"
    );

    // 2. N more with confirms through a queue, mixed with a STATE event at close
    let q = queue();
    let p = producer_new(conn, &s, &[], None, q, 77).unwrap();
    for i in N..2 * N {
        send(p, &body_of(i), i);
    }
    let mut seen: HashMap<usize, usize> = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while seen.values().sum::<usize>() < N && Instant::now() < deadline {
        let ev = poll_event(q, 100);
        if ev.is_null() {
            continue;
        }
        unsafe {
            let confirms = rmqs_event_type_code::RMQS_EVENT_CONFIRMS as i32;
            let producer = rmqs_event_source_code::RMQS_SOURCE_PRODUCER as i32;
            assert_eq!(event_head(ev), (confirms, producer, 77));
            let mut n = 0;
            let c = rmqs_event_confirms(ev, &mut n, std::ptr::null_mut());
            for x in std::slice::from_raw_parts(c, n) {
                assert_eq!(x.status, 0);
                *seen.entry(x.tag).or_default() += 1;
            }
            rmqs_event_free(ev);
        }
    }
    assert_eq!(seen.len(), N);
    assert!(seen.values().all(|&n| n == 1), "every tag confirmed once");
    assert_eq!(
        unsafe { rmqs_producer_close(p, 10_000, std::ptr::null_mut()) },
        0
    );
    let ev = poll_event(q, 2000);
    assert_eq!(
        event_head(ev).0,
        rmqs_event_type_code::RMQS_EVENT_STATE as i32
    );
    let closed = rmqs_state_code::RMQS_STATE_CLOSED as i32;
    assert_eq!(
        unsafe { (rmqs_event_state(ev), rmqs_event_status(ev)) },
        (closed, 0)
    );
    unsafe {
        rmqs_event_free(ev);
        rmqs_producer_free(p);
    }

    let expected: Vec<Got> = (0..2 * N)
        .map(|i| Got {
            offset: i as u64,
            body: body_of(i),
        })
        .collect();

    // 3. consume from first through a callback
    let chunks = Arc::new(Chunks::default());
    let keys = [("offset", "first")];
    let c1 = consumer_new(conn, &s, &keys, Some(&chunks), ptr::null_mut(), 1).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while chunks.got.lock().unwrap().len() < 2 * N && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(*chunks.got.lock().unwrap(), expected);
    assert_eq!(
        chunks.max_concurrent.load(Ordering::SeqCst),
        1,
        "never concurrent"
    );

    // 4. and through a queue: the same messages
    let q2 = queue();
    let keys = [("offset", "first"), ("initial_credit", "3")];
    let c2 = consumer_new(conn, &s, &keys, None, q2, 2).unwrap();
    let (got, others) = drain_queue(q2, 2 * N, Duration::from_secs(30));
    assert!(others.is_empty());
    assert_eq!(got, expected);

    // closing: a STATE event with status OK, chunks done; user_data freed once at free
    assert_eq!(
        unsafe { rmqs_consumer_close(c2, 5000, std::ptr::null_mut()) },
        0
    );
    let ev = poll_event(q2, 2000);
    let state = rmqs_event_type_code::RMQS_EVENT_STATE as i32;
    let consumer = rmqs_event_source_code::RMQS_SOURCE_CONSUMER as i32;
    assert_eq!(event_head(ev), (state, consumer, 2));
    unsafe {
        assert_eq!(rmqs_event_status(ev), 0);
        rmqs_event_free(ev);
        let mut err = ptr::null_mut();
        let (st, _) = failure(
            rmqs_consumer_credit(c2, 1, std::ptr::null_mut()),
            ptr::null_mut(),
        );
        assert_eq!(st, RMQS_ERR_CLOSED.status());
        let st = rmqs_consumer_store_offset(c2, 1, &mut err);
        assert_eq!(failure(st, err).0, RMQS_ERR_CLOSED.status());
        rmqs_consumer_free(c2);
        rmqs_consumer_free(c1);
    }
    assert_eq!(chunks.freed.load(Ordering::SeqCst), 1);

    // 5. from an offset inside a chunk: the records before it are hidden
    let q3 = queue();
    let c3 = consumer_new(conn, &s, &[("offset", "offset:12345")], None, q3, 3).unwrap();
    let (got, _) = drain_queue(q3, 100, Duration::from_secs(10));
    assert_eq!(got[0].offset, 12345);
    assert_eq!(got[0].body, body_of(12345));
    free_consumer_and_queue(c3, q3);
    unsafe {
        rmqs_queue_free(q2);
        rmqs_queue_free(q);
    }
    delete_and_free(conn, &s);
}

#[test]
fn manual_credit_throttles_and_release_gives_credit() {
    let (conn, s) = conn_and_stream("ffi-credit");
    // 6 chunks: each flush with batch_delay 0 closes a Publish frame, and the broker writes a
    // chunk per frame here (nothing else publishes to the stream)
    let keys = [("batch_delay_ms", "0")];
    let p = producer_new(conn, &s, &keys, None, ptr::null_mut(), 0).unwrap();
    for i in 0..6 {
        send(p, &body_of(i), i);
        flush_within(p, 10_000);
    }
    unsafe { rmqs_producer_free(p) };

    // manual: one chunk per credit
    let q = queue();
    let keys = [
        ("offset", "first"),
        ("initial_credit", "1"),
        ("credit_policy", "manual"),
    ];
    let c = consumer_new(conn, &s, &keys, None, q, 0).unwrap();
    let count_chunks = |wait: Duration| {
        let mut n = 0;
        let end = Instant::now() + wait;
        while Instant::now() < end {
            let ev = poll_event(q, 50);
            if !ev.is_null() {
                n += 1;
                unsafe { rmqs_event_free(ev) };
            }
        }
        n
    };
    assert_eq!(
        count_chunks(Duration::from_millis(700)),
        1,
        "initial credit 1: one chunk"
    );
    assert_eq!(
        unsafe { rmqs_consumer_credit(c, 2, std::ptr::null_mut()) },
        0
    );
    assert_eq!(
        count_chunks(Duration::from_millis(700)),
        2,
        "two more credits: two chunks"
    );
    assert_eq!(
        unsafe { rmqs_consumer_credit(c, 0, std::ptr::null_mut()) },
        RMQS_ERR_INVALID_ARGUMENT.status()
    );
    assert_eq!(
        unsafe { rmqs_consumer_credit(c, 40_000, std::ptr::null_mut()) },
        RMQS_ERR_INVALID_ARGUMENT.status()
    );
    unsafe { rmqs_consumer_free(c) };

    // on_release: chunks retained in the callback hold the credit; releasing them frees it
    let chunks = Arc::new(Chunks {
        retain: true,
        ..Chunks::default()
    });
    let keys = [("offset", "first"), ("initial_credit", "2")];
    let c = consumer_new(conn, &s, &keys, Some(&chunks), ptr::null_mut(), 0).unwrap();
    std::thread::sleep(Duration::from_millis(700));
    assert_eq!(
        chunks.chunks.load(Ordering::SeqCst),
        2,
        "two credits, both chunks held"
    );
    for r in chunks.retained.lock().unwrap().drain(..) {
        unsafe { rmqs_chunk_release(r as *mut rmqs_chunk) };
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while chunks.chunks.load(Ordering::SeqCst) < 4 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        chunks.chunks.load(Ordering::SeqCst),
        4,
        "released two, got two more"
    );
    unsafe { rmqs_consumer_free(c) };
    for r in chunks.retained.lock().unwrap().drain(..) {
        // retained chunks outlive their consumer
        unsafe {
            assert!(rmqs_chunk_message_count(r as *const rmqs_chunk) > 0);
            rmqs_chunk_release(r as *mut rmqs_chunk);
        }
    }
    assert_eq!(chunks.freed.load(Ordering::SeqCst), 1);
    unsafe { rmqs_queue_free(q) };
    delete_and_free(conn, &s);
}

#[test]
fn offsets_dedup_and_named_producers() {
    let (conn, s) = conn_and_stream("ffi-dedup");
    let name = "ffi-dedup-producer";

    // explicit ids 1..=5
    let confirms = Arc::new(Confirms::default());
    let keys = [("name", name)];
    let p = producer_new(conn, &s, &keys, Some(&confirms), ptr::null_mut(), 0).unwrap();
    let mut last = 99;
    assert!(
        !unsafe { rmqs_producer_last_id(p, &mut last) },
        "unknown name: no last id"
    );
    let send_id = |p: *mut rmqs_producer, id: u64, body: &str| -> (rmqs_status, u64) {
        let mut got = 0;
        let st = unsafe {
            rmqs_producer_send_ex(
                p,
                body.as_ptr(),
                body.len(),
                ptr::null(),
                id,
                id as usize,
                RMQS_SEND_PUBLISHING_ID,
                &mut got,
                ptr::null_mut(),
            )
        };
        (st, got)
    };
    for id in 1u64..=5 {
        assert_eq!(send_id(p, id, &format!("dedup-{id}")), (0, id));
    }
    // ids must increase within one producer
    assert_eq!(send_id(p, 3, "x").0, RMQS_ERR_INVALID_ARGUMENT.status());
    flush_within(p, 10_000);
    assert_eq!(confirms.wait_for(5, Duration::from_secs(5)), 5);
    unsafe { rmqs_producer_free(p) };
    let mut seq = 0;
    let cname = CString::new(name).unwrap();
    let st = unsafe {
        rmqs_stream_query_sequence(conn, cname.as_ptr(), s.as_ptr(), &mut seq, ptr::null_mut())
    };
    assert_eq!((st, seq), (0, 5));

    // a new producer with the same name knows the last id; its resend of id 3 is dropped by
    // the broker (and still confirmed OK), id 6 is stored
    let confirms2 = Arc::new(Confirms::default());
    let keys = [("name", name)];
    let p = producer_new(conn, &s, &keys, Some(&confirms2), ptr::null_mut(), 0).unwrap();
    assert!(unsafe { rmqs_producer_last_id(p, &mut last) });
    assert_eq!(last, 5);
    assert_eq!(send_id(p, 3, "dedup-3-again"), (0, 3));
    assert_eq!(send_id(p, 6, "dedup-6"), (0, 6));
    flush_within(p, 10_000);
    assert_eq!(confirms2.wait_for(2, Duration::from_secs(5)), 2);
    assert_eq!(confirms2.by_tag.lock().unwrap()[&3], vec![0]);
    unsafe { rmqs_producer_free(p) };

    // count what the stream holds: ids 1..=5 and 6, once each
    let q = queue();
    let keys = [("offset", "first"), ("name", "ffi-tracker")];
    let c = consumer_new(conn, &s, &keys, None, q, 0).unwrap();
    let (got, _) = drain_queue(q, 6, Duration::from_secs(10));
    let bodies: Vec<String> = got
        .iter()
        .map(|g| String::from_utf8(g.body.clone()).unwrap())
        .collect();
    assert_eq!(
        bodies,
        [
            "dedup-1", "dedup-2", "dedup-3", "dedup-4", "dedup-5", "dedup-6"
        ]
    );
    let (more, _) = drain_queue(q, 1, Duration::from_millis(500));
    assert!(more.is_empty(), "no duplicate stored: {more:?}");

    // store/query offset through the consumer
    let mut off = 0;
    let mut err = ptr::null_mut();
    let st = unsafe { rmqs_consumer_query_offset(c, &mut off, &mut err) };
    assert_eq!(failure(st, err).0, RMQS_ERR_NO_OFFSET.status());
    assert_eq!(
        unsafe { rmqs_consumer_store_offset(c, 4, ptr::null_mut()) },
        0
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while unsafe { rmqs_consumer_query_offset(c, &mut off, ptr::null_mut()) } != 0 {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(off, 4);
    unsafe { rmqs_consumer_free(c) };
    // anonymous consumers cannot store
    let c = consumer_new(conn, &s, &[("offset", "first")], None, q, 0).unwrap();
    let mut err = ptr::null_mut();
    let st = unsafe { rmqs_consumer_store_offset(c, 1, &mut err) };
    assert_eq!(failure(st, err).0, RMQS_ERR_INVALID_ARGUMENT.status());
    free_consumer_and_queue(c, q);
    delete_and_free(conn, &s);
}

#[test]
fn blocking_calls_from_callbacks_would_deadlock() {
    let (conn, s) = conn_and_stream("ffi-deadlock");
    let confirms = Arc::new(Confirms::default());
    let p = producer_new(conn, &s, &[], Some(&confirms), ptr::null_mut(), 0).unwrap();
    confirms.producer.store(p as usize, Ordering::SeqCst);
    send(p, b"x", 1);
    assert_eq!(confirms.wait_for(1, Duration::from_secs(10)), 1);
    assert_eq!(
        *confirms.nested.lock().unwrap(),
        Some(RMQS_ERR_WOULD_DEADLOCK.status())
    );
    unsafe { rmqs_producer_free(p) };
    delete_and_free(conn, &s);
}

/// `dynamic_batch`: a partial frame goes at once when nothing else is in flight, and the frame
/// that fills behind it goes once that is confirmed, so every confirm comes although
/// `batch_delay_ms` would hold a partial frame for a minute. Without it the frame waits.
#[test]
fn dynamic_batch_sends_partial_frames_without_waiting_for_the_delay() {
    let (conn, s) = conn_and_stream("ffi-dynamic");
    let minute = ("batch_delay_ms", "60000");
    let data = Arc::new(Confirms::default());
    let keys = [minute, ("dynamic_batch", "true")];
    let p = producer_new(conn, &s, &keys, Some(&data), ptr::null_mut(), 0).unwrap();
    send(p, b"alone", 0);
    assert_eq!(data.wait_for(1, Duration::from_secs(20)), 1);
    // the first goes at once; the next ones wait for its confirm, then go together
    for i in 1..=50 {
        send(p, &body_of(i), i);
    }
    assert_eq!(data.wait_for(51, Duration::from_secs(20)), 51);
    let ok = data
        .by_tag
        .lock()
        .unwrap()
        .values()
        .flatten()
        .all(|st| *st == 0);
    assert!(ok);
    unsafe { rmqs_producer_free(p) };

    let data = Arc::new(Confirms::default());
    let p = producer_new(conn, &s, &[minute], Some(&data), ptr::null_mut(), 0).unwrap();
    send(p, b"waits", 0);
    assert_eq!(data.wait_for(1, Duration::from_millis(500)), 0);
    flush_within(p, 10_000);
    assert_eq!(data.wait_for(1, Duration::from_secs(1)), 1);
    unsafe { rmqs_producer_free(p) };
    // every message once, in order
    let q = queue();
    let c = queue_consumer(conn, &s, &[("offset", "first")], q);
    let (got, others) = drain_queue(q, 52, Duration::from_secs(20));
    assert!(others.is_empty());
    let bodies: Vec<Vec<u8>> = got.into_iter().map(|g| g.body).collect();
    let mut want = vec![b"alone".to_vec()];
    want.extend((1..=50).map(body_of));
    want.push(b"waits".to_vec());
    assert_eq!(bodies, want);
    unsafe { rmqs_consumer_free(c) };
    unsafe { rmqs_queue_free(q) };
    delete_and_free(conn, &s);
}

#[test]
fn queue_full_without_blocking() {
    let (conn, s) = conn_and_stream("ffi-full");
    // a long batch delay keeps the first message unsent, so it stays in flight
    let keys = [("max_in_flight", "1"), ("batch_delay_ms", "2000")];
    let p = producer_new(conn, &s, &keys, None, ptr::null_mut(), 0).unwrap();
    send(p, b"one", 1);
    let mut err = ptr::null_mut();
    let st = unsafe { rmqs_producer_send(p, b"two".as_ptr(), 3, 2, RMQS_SEND_NO_BLOCK, &mut err) };
    assert_eq!(failure(st, err).0, RMQS_ERR_QUEUE_FULL.status());
    flush_within(p, 10_000);
    unsafe { rmqs_producer_free(p) };

    // block_when_full=false and a send timeout
    let keys = [
        ("max_in_flight", "1"),
        ("batch_delay_ms", "2000"),
        ("send_timeout_ms", "100"),
    ];
    let p = producer_new(conn, &s, &keys, None, ptr::null_mut(), 0).unwrap();
    send(p, b"one", 1);
    let t0 = Instant::now();
    let st = unsafe { rmqs_producer_send(p, b"two".as_ptr(), 3, 2, 0, ptr::null_mut()) };
    // the blocking send flushes the partial frame, so the first confirm frees room in time
    // or the send times out after 100 ms
    assert!(st == 0 || st == RMQS_ERR_TIMEOUT.status(), "status {st}");
    assert!(t0.elapsed() < Duration::from_secs(2));
    unsafe { rmqs_producer_free(p) };
    delete_and_free(conn, &s);
}

#[test]
fn amqp_properties_through_the_chunk_view() {
    use rmqstream::protocol::amqp::{Message, Properties, Value};
    use std::borrow::Cow;
    let (conn, s) = conn_and_stream("ffi-amqp");
    let msg = Message::new(&b"payload"[..])
        .properties(Properties {
            message_id: Some(Value::Ulong(42)),
            correlation_id: Some(Value::String(Cow::Borrowed("corr-1"))),
            content_type: Some(Cow::Borrowed("text/plain")),
            subject: Some(Cow::Borrowed("subj")),
            creation_time: Some(1_700_000_000_000),
            ..Properties::default()
        })
        .application_property("region", "eu")
        .application_property("count", Value::Int(-7))
        .application_property("ok", Value::Bool(true));
    let encoded = msg.to_bytes().unwrap();
    let p = producer_new(conn, &s, &[], None, ptr::null_mut(), 0).unwrap();
    let st = unsafe {
        rmqs_producer_send(
            p,
            encoded.as_ptr(),
            encoded.len(),
            0,
            RMQS_SEND_RAW,
            ptr::null_mut(),
        )
    };
    assert_eq!(st, 0);
    send(p, b"plain", 1); // wrapped in a data section by default
    let st =
        unsafe { rmqs_producer_send(p, b"raw!".as_ptr(), 4, 2, RMQS_SEND_RAW, ptr::null_mut()) };
    assert_eq!(st, 0);
    flush_within(p, 10_000);
    unsafe { rmqs_producer_free(p) };

    let q = queue();
    let c = consumer_new(conn, &s, &[("offset", "first")], None, q, 0).unwrap();
    let mut msgs = Vec::new();
    let mut held = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while msgs.len() < 3 && Instant::now() < deadline {
        let ev = poll_event(q, 100);
        if ev.is_null() {
            continue;
        }
        let ch = unsafe { rmqs_chunk_retain(rmqs_event_chunk(ev)) };
        unsafe { rmqs_event_free(ev) };
        for i in 0..unsafe { rmqs_chunk_message_count(ch) } {
            msgs.push(unsafe { rmqs_chunk_message(ch, i) });
        }
        held.push(ch);
    }
    assert_eq!(msgs.len(), 3);
    let text = |p: *const c_char, n: usize| unsafe {
        String::from_utf8(std::slice::from_raw_parts(p.cast::<u8>(), n).to_vec()).unwrap()
    };
    unsafe {
        let m = msgs[0];
        assert!(rmqs_message_is_amqp(m));
        let mut n = 0;
        let b = rmqs_message_body(m, &mut n);
        assert_eq!(std::slice::from_raw_parts(b, n), b"payload");
        let mut rn = 0;
        rmqs_message_raw(m, &mut rn);
        assert_eq!(rn, encoded.len());
        let (mut v, mut vn): (*const c_char, usize) = (ptr::null(), 0);
        let prop = |id: rmqs_property_code, v: &mut *const c_char, vn: &mut usize| {
            rmqs_message_property(m, id as i32, v, vn)
        };
        use rmqs_property_code::*;
        for (id, want) in [
            (RMQS_PROP_MESSAGE_ID, "42"),
            (RMQS_PROP_CORRELATION_ID, "corr-1"),
            (RMQS_PROP_CONTENT_TYPE, "text/plain"),
            (RMQS_PROP_SUBJECT, "subj"),
            (RMQS_PROP_CREATION_TIME, "1700000000000"),
        ] {
            assert!(prop(id, &mut v, &mut vn), "{want}");
            assert_eq!(text(v, vn), want);
        }
        assert!(!prop(RMQS_PROP_REPLY_TO, &mut v, &mut vn));
        assert!(!rmqs_message_property(m, 99, &mut v, &mut vn));
        let app = |key: &CStr, v: &mut *const c_char, vn: &mut usize| {
            rmqs_message_app_property(m, key.as_ptr(), v, vn)
        };
        for (key, want) in [(c"region", "eu"), (c"count", "-7"), (c"ok", "true")] {
            assert!(app(key, &mut v, &mut vn), "{want}");
            assert_eq!(text(v, vn), want);
        }
        assert!(!app(c"missing", &mut v, &mut vn));
        assert_eq!(rmqs_message_app_property_count(m), 3);
        let (mut k, mut kn) = (ptr::null(), 0);
        assert!(rmqs_message_app_property_at(
            m, 1, &mut k, &mut kn, &mut v, &mut vn
        ));
        assert_eq!(
            (text(k, kn), text(v, vn)),
            ("count".to_string(), "-7".to_string())
        );
        assert!(!rmqs_message_app_property_at(
            m, 3, &mut k, &mut kn, &mut v, &mut vn
        ));

        let m = msgs[1];
        assert!(rmqs_message_is_amqp(m));
        let b = rmqs_message_body(m, &mut n);
        assert_eq!(std::slice::from_raw_parts(b, n), b"plain");
        assert_eq!(rmqs_message_app_property_count(m), 0);

        let m = msgs[2];
        assert!(!rmqs_message_is_amqp(m));
        let b = rmqs_message_body(m, &mut n);
        assert_eq!(std::slice::from_raw_parts(b, n), b"raw!");
        assert!(!rmqs_message_property(m, 1, &mut v, &mut vn));
        assert_eq!(rmqs_message_offset(m), 2);

        // chunk header and stream name
        let mut h = rmqs_chunk_header_info::default();
        assert!(rmqs_chunk_header(held[0], &mut h));
        assert_eq!(h.magic, 5);
        assert_eq!(h.chunk_type, 0);
        assert_eq!(h.chunk_id, 0);
        assert!(h.timestamp > 1_600_000_000_000);
        assert_eq!(CStr::from_ptr(rmqs_chunk_stream(held[0])), s.as_c_str());
        let mut committed = 0;
        assert!(
            rmqs_chunk_committed_id(held[0], &mut committed),
            "Deliver v2 on 4.x"
        );
        for ch in held {
            rmqs_chunk_release(ch);
        }
    }
    free_consumer_and_queue(c, q);
    delete_and_free(conn, &s);
}

#[test]
fn bad_input_gives_clear_statuses() {
    let (conn, s) = conn_and_stream("ffi-bad");
    let long = CString::new("s".repeat(256)).unwrap();
    let non_utf8 = [b's', 0xff, 0];
    let q = queue();
    // the calls with no config, callback or user data: what differs is the argument under test
    let new_producer = |conn, stream, out, err| unsafe {
        let (cfg, ud, q) = (ptr::null(), ptr::null_mut(), ptr::null_mut());
        rmqs_producer_new(conn, stream, cfg, None, ud, None, q, 0, out, err)
    };
    let new_consumer = |conn, stream, q, out, err| unsafe {
        let (cfg, ud) = (ptr::null(), ptr::null_mut());
        rmqs_consumer_new(conn, stream, cfg, None, ud, None, q, 0, out, err)
    };
    unsafe {
        let mut p = ptr::null_mut();
        let mut err = ptr::null_mut();
        let st = new_producer(conn, long.as_ptr(), &mut p, &mut err);
        let (st, m) = failure(st, err);
        assert_eq!(st, RMQS_ERR_INVALID_ARGUMENT.status());
        assert!(m.contains("255"), "{m}");
        assert!(p.is_null());
        let st = new_producer(conn, non_utf8.as_ptr().cast(), &mut p, ptr::null_mut());
        assert_eq!(st, RMQS_ERR_INVALID_ARGUMENT.status());
        let st = new_producer(ptr::null_mut(), s.as_ptr(), &mut p, ptr::null_mut());
        assert_eq!(st, RMQS_ERR_INVALID_ARGUMENT.status());
        let st = new_producer(conn, s.as_ptr(), ptr::null_mut(), ptr::null_mut());
        assert_eq!(st, RMQS_ERR_INVALID_ARGUMENT.status());
        // a missing stream
        let mut err = ptr::null_mut();
        let st = new_producer(conn, c"ffi-no-such-stream".as_ptr(), &mut p, &mut err);
        assert_eq!(failure(st, err).0, RMQS_ERR_STREAM_DOES_NOT_EXIST.status());
        let mut c = ptr::null_mut();
        let st = new_consumer(
            conn,
            c"ffi-no-such-stream".as_ptr(),
            q,
            &mut c,
            ptr::null_mut(),
        );
        assert_eq!(st, RMQS_ERR_STREAM_DOES_NOT_EXIST.status());
        // a consumer needs somewhere to deliver
        let mut err = ptr::null_mut();
        let st = new_consumer(conn, s.as_ptr(), ptr::null_mut(), &mut c, &mut err);
        let (st, m) = failure(st, err);
        assert_eq!(st, RMQS_ERR_INVALID_ARGUMENT.status());
        assert!(m.contains("callback or a queue"), "{m}");
        // config keys for the wrong object
        let (st, m) = try_bare_producer(conn, &s, &[("offset", "first")]).unwrap_err();
        assert_eq!(st, RMQS_ERR_INVALID_ARGUMENT.status());
        assert!(m.contains("offset"), "{m}");

        // sends
        let p = producer_new(conn, &s, &[], None, ptr::null_mut(), 0).unwrap();
        assert_eq!(
            rmqs_producer_send(ptr::null_mut(), b"x".as_ptr(), 1, 0, 0, ptr::null_mut()),
            RMQS_ERR_INVALID_ARGUMENT.status()
        );
        assert_eq!(
            rmqs_producer_send(p, ptr::null(), 1, 0, 0, ptr::null_mut()),
            RMQS_ERR_INVALID_ARGUMENT.status()
        );
        assert_eq!(
            rmqs_producer_send(p, ptr::null(), 0, 0, 0, ptr::null_mut()),
            0,
            "empty body"
        );
        assert_eq!(
            rmqs_producer_send(p, b"x".as_ptr(), 1, 0, 0x100, ptr::null_mut()),
            RMQS_ERR_INVALID_ARGUMENT.status()
        );
        let big = vec![7u8; 2 * 1024 * 1024];
        let mut err = ptr::null_mut();
        let st = rmqs_producer_send(p, big.as_ptr(), big.len(), 0, 0, &mut err);
        let (st, m) = failure(st, err);
        assert_eq!(st, RMQS_ERR_INVALID_ARGUMENT.status(), "{m}");
        let st = rmqs_producer_send_ex(
            p,
            b"x".as_ptr(),
            1,
            non_utf8.as_ptr().cast(),
            0,
            0,
            0,
            ptr::null_mut(),
            ptr::null_mut(),
        );
        assert_eq!(st, RMQS_ERR_INVALID_ARGUMENT.status());
        // batch: all accepted, with the count
        let bodies = [
            rmqs_bytes {
                data: b"a".as_ptr(),
                len: 1,
            },
            rmqs_bytes {
                data: b"bc".as_ptr(),
                len: 2,
            },
        ];
        let tags = [10usize, 11];
        let mut accepted = 0;
        assert_eq!(
            rmqs_producer_send_batch(
                p,
                bodies.as_ptr(),
                tags.as_ptr(),
                2,
                0,
                &mut accepted,
                ptr::null_mut()
            ),
            0
        );
        assert_eq!(accepted, 2);
        flush_within(p, 10_000);
        // close twice, then CLOSED
        assert_eq!(rmqs_producer_close(p, 5000, std::ptr::null_mut()), 0);
        assert_eq!(rmqs_producer_close(p, 5000, std::ptr::null_mut()), 0);
        let mut err = ptr::null_mut();
        let st = rmqs_producer_send(p, b"x".as_ptr(), 1, 0, 0, &mut err);
        let (st, m) = failure(st, err);
        assert_eq!(st, RMQS_ERR_CLOSED.status(), "{m}");
        rmqs_producer_free(p);
        rmqs_producer_free(ptr::null_mut());
        rmqs_consumer_free(ptr::null_mut());
        rmqs_chunk_release(ptr::null_mut());
        assert!(rmqs_chunk_retain(ptr::null()).is_null());
        assert_eq!(rmqs_chunk_message_count(ptr::null()), 0);
        assert!(rmqs_chunk_message(ptr::null(), 0).is_null());
        assert_eq!(
            rmqs_producer_flush(ptr::null_mut(), 0, std::ptr::null_mut()),
            RMQS_ERR_INVALID_ARGUMENT.status()
        );
        assert_eq!(
            rmqs_consumer_close(ptr::null_mut(), 0, std::ptr::null_mut()),
            RMQS_ERR_INVALID_ARGUMENT.status()
        );

        // closing the connection closes its producers and consumers; handles stay valid
        let p = producer_new(conn, &s, &[], None, q, 5).unwrap();
        let c = consumer_new(conn, &s, &[], None, q, 6).unwrap();
        assert_eq!(rmqs_connection_close(conn, 5000, std::ptr::null_mut()), 0);
        assert_eq!(
            rmqs_producer_send(p, b"x".as_ptr(), 1, 0, 0, ptr::null_mut()),
            RMQS_ERR_CLOSED.status()
        );
        assert_eq!(
            rmqs_consumer_credit(c, 1, std::ptr::null_mut()),
            RMQS_ERR_CLOSED.status()
        );
        assert_eq!(rmqs_producer_close(p, 1000, std::ptr::null_mut()), 0);
        assert_eq!(rmqs_consumer_close(c, 1000, std::ptr::null_mut()), 0);
        let mut n = 0;
        let st = new_producer(conn, s.as_ptr(), &mut ptr::null_mut(), ptr::null_mut());
        assert_eq!(st, RMQS_ERR_CLOSED.status());
        // both sent their CLOSED state event
        let mut states = 0;
        loop {
            let ev = poll_event(q, 500);
            if ev.is_null() {
                break;
            }
            if rmqs_event_type(ev) == rmqs_event_type_code::RMQS_EVENT_STATE as i32 {
                states += 1;
            }
            n += 1;
            rmqs_event_free(ev);
        }
        assert_eq!(states, 2, "{n} events");
        rmqs_producer_free(p);
        rmqs_consumer_free(c);
        rmqs_connection_free(conn);
        rmqs_queue_free(q);
    }
    let conn = connect(&uri());
    delete_and_free(conn, &s);
}

#[test]
fn legacy_broker_publish_consume_and_unsupported_filter() {
    let Some(conn) = legacy_connection("publish and consume on 3.10.8") else {
        return;
    };
    let s = cunique("ffi-legacy-pc");
    create_stream(conn, &s);
    let confirms = Arc::new(Confirms::default());
    let p = producer_new(conn, &s, &[], Some(&confirms), ptr::null_mut(), 0).unwrap();
    for i in 0..100 {
        send(p, &body_of(i), i);
    }
    flush_within(p, 10_000);
    assert_eq!(confirms.wait_for(100, Duration::from_secs(5)), 100);
    let mut err = ptr::null_mut();
    let st = unsafe {
        rmqs_producer_send_ex(
            p,
            b"f".as_ptr(),
            1,
            c"eu".as_ptr(),
            0,
            0,
            0,
            ptr::null_mut(),
            &mut err,
        )
    };
    let (st, m) = failure(st, err);
    assert_eq!(st, RMQS_ERR_UNSUPPORTED.status(), "{m}");
    assert!(m.contains("3.13"), "{m}");
    unsafe { rmqs_producer_free(p) };

    let q = queue();
    let c = consumer_new(conn, &s, &[("offset", "first")], None, q, 0).unwrap();
    let (got, _) = drain_queue(q, 100, Duration::from_secs(10));
    let expected: Vec<Got> = (0..100)
        .map(|i| Got {
            offset: i as u64,
            body: body_of(i),
        })
        .collect();
    assert_eq!(got, expected);
    free_consumer_and_queue(c, q);
    delete_and_free(conn, &s);
}

#[test]
fn deleting_the_stream_closes_the_consumer_with_a_reason() {
    let (conn, s) = conn_and_stream("ffi-gone");
    let q = queue();
    let c = consumer_new(conn, &s, &[], None, q, 9).unwrap();
    delete_stream(conn, &s);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut state = None;
    while state.is_none() && Instant::now() < deadline {
        let ev = poll_event(q, 100);
        if ev.is_null() {
            continue;
        }
        unsafe {
            if rmqs_event_type(ev) == rmqs_event_type_code::RMQS_EVENT_STATE as i32 {
                assert_eq!(rmqs_event_source_tag(ev), 9);
                assert_eq!(
                    rmqs_event_state(ev),
                    rmqs_state_code::RMQS_STATE_CLOSED as i32
                );
                let msg = CStr::from_ptr(rmqs_event_message(ev))
                    .to_string_lossy()
                    .into_owned();
                state = Some((rmqs_event_status(ev), msg));
            }
            rmqs_event_free(ev);
        }
    }
    let (status, msg) = state.expect("no CLOSED event after the stream was deleted");
    assert!(
        status == RMQS_ERR_STREAM_NOT_AVAILABLE.status()
            || status == RMQS_ERR_STREAM_DOES_NOT_EXIST.status(),
        "status {status}: {msg}"
    );
    assert!(!msg.is_empty());
    // the handle stays valid: calls report CLOSED, close and free are fine
    assert_eq!(
        unsafe { rmqs_consumer_credit(c, 1, std::ptr::null_mut()) },
        RMQS_ERR_CLOSED.status()
    );
    assert_eq!(
        unsafe { rmqs_consumer_close(c, 1000, std::ptr::null_mut()) },
        0
    );
    unsafe {
        rmqs_consumer_free(c);
        rmqs_queue_free(q);
        rmqs_connection_free(conn);
    }
}

/// What the callbacks of one object of `callbacks_share_the_connections_dispatcher_threads`
/// saw, and the threads they ran on (shared by all objects).
struct Lane {
    /// Confirmed tags, or consumed body indices, in the order the callbacks saw them.
    seen: Mutex<Vec<usize>>,
    /// Threads (name, id) any callback ran on.
    threads: Arc<Mutex<std::collections::HashSet<(String, u64)>>>,
    /// Callbacks of this object running now, and the most at once.
    running: AtomicUsize,
    max_running: AtomicUsize,
    /// Holds the first callback until opened (the stuck consumer).
    gate: Option<(Mutex<bool>, Condvar)>,
    freed: AtomicUsize,
}

impl Lane {
    fn new(threads: &Arc<Mutex<std::collections::HashSet<(String, u64)>>>, gated: bool) -> Lane {
        Lane {
            seen: Mutex::default(),
            threads: threads.clone(),
            running: AtomicUsize::new(0),
            max_running: AtomicUsize::new(0),
            gate: gated.then(|| (Mutex::new(false), Condvar::new())),
            freed: AtomicUsize::new(0),
        }
    }

    fn enter(&self) {
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_running.fetch_max(now, Ordering::SeqCst);
        let t = std::thread::current();
        let tid = unsafe { libc::gettid() } as u64;
        self.threads
            .lock()
            .unwrap()
            .insert((t.name().unwrap_or("").to_string(), tid));
        if let Some((open, cv)) = &self.gate {
            let mut g = open.lock().unwrap();
            while !*g {
                g = cv.wait(g).unwrap();
            }
        }
    }

    fn open_gate(&self) {
        let (open, cv) = self.gate.as_ref().unwrap();
        *open.lock().unwrap() = true;
        cv.notify_all();
    }

    fn seen(&self) -> Vec<usize> {
        self.seen.lock().unwrap().clone()
    }
}

unsafe extern "C" fn lane_confirms(ud: *mut c_void, cs: *const rmqs_confirm, n: usize, _: usize) {
    let l = unsafe { &*(ud as *const Lane) };
    l.enter();
    let cs = unsafe { std::slice::from_raw_parts(cs, n) };
    l.seen.lock().unwrap().extend(cs.iter().map(|c| {
        assert_eq!(c.status, 0);
        c.tag
    }));
    l.running.fetch_sub(1, Ordering::SeqCst);
}

unsafe extern "C" fn lane_chunk(ud: *mut c_void, ch: *const rmqs_chunk) {
    let l = unsafe { &*(ud as *const Lane) };
    l.enter();
    let mut got = Vec::new();
    unsafe { read_chunk(ch, &mut got) };
    l.seen.lock().unwrap().extend(got.iter().map(|g| {
        std::str::from_utf8(&g.body[8..14])
            .unwrap()
            .parse::<usize>()
            .unwrap()
    }));
    l.running.fetch_sub(1, Ordering::SeqCst);
}

unsafe extern "C" fn lane_free(ud: *mut c_void) {
    let l = unsafe { Arc::from_raw(ud as *const Lane) };
    // after the last callback
    assert_eq!(l.running.load(Ordering::SeqCst), 0);
    l.freed.fetch_add(1, Ordering::SeqCst);
}

/// Callback-mode producers and consumers of one connection share its `dispatch_threads`
/// threads (not one each): every object's callbacks run in order, never concurrently with
/// themselves, and a callback that does not return holds one thread while the others serve
/// every other object.
#[test]
fn callbacks_share_the_connections_dispatcher_threads() {
    const STREAMS: usize = 6;
    const MESSAGES: usize = 300;
    for bad in ["0", "65", "x"] {
        let cfg = rmqs_config_new();
        let mut err = ptr::null_mut();
        let st = unsafe {
            rmqs_config_set(
                cfg,
                c"dispatch_threads".as_ptr(),
                CString::new(bad).unwrap().as_ptr(),
                &mut err,
            )
        };
        let (st, m) = failure(st, err);
        assert_eq!(st, RMQS_ERR_INVALID_ARGUMENT.status());
        assert!(m.contains("dispatch_threads"), "{m}");
        unsafe { rmqs_config_free(cfg) };
    }
    // more runtime threads than the default, too
    let cfg = config(&[
        ("uri", &uri()),
        ("dispatch_threads", "2"),
        ("runtime_threads", "3"),
    ]);
    let mut conn = ptr::null_mut();
    let mut err = ptr::null_mut();
    check(
        unsafe { rmqs_connection_open(cfg, &mut conn, &mut err) },
        err,
        "open",
    );
    unsafe { rmqs_config_free(cfg) };
    let threads = Arc::new(Mutex::new(std::collections::HashSet::new()));
    let streams: Vec<CString> = (0..STREAMS).map(|_| cunique("ffi-pool")).collect();
    let mut producers = Vec::new();
    let mut consumers = Vec::new();
    for (i, s) in streams.iter().enumerate() {
        create_stream(conn, s);
        let pl = Arc::new(Lane::new(&threads, false));
        let mut p = ptr::null_mut();
        let mut err = ptr::null_mut();
        let st = unsafe {
            rmqs_producer_new(
                conn,
                s.as_ptr(),
                ptr::null(),
                Some(lane_confirms),
                Arc::into_raw(pl.clone()) as *mut c_void,
                Some(lane_free),
                ptr::null_mut(),
                0,
                &mut p,
                &mut err,
            )
        };
        check(st, err, "producer");
        producers.push((p, pl));
        // the first consumer's first chunk callback does not return until the gate opens
        let cl = Arc::new(Lane::new(&threads, i == 0));
        let ccfg = config(&[("offset", "first")]);
        let mut c = ptr::null_mut();
        let st = unsafe {
            rmqs_consumer_new(
                conn,
                s.as_ptr(),
                ccfg,
                Some(lane_chunk),
                Arc::into_raw(cl.clone()) as *mut c_void,
                Some(lane_free),
                ptr::null_mut(),
                0,
                &mut c,
                &mut err,
            )
        };
        unsafe { rmqs_config_free(ccfg) };
        check(st, err, "consumer");
        consumers.push((c, cl));
    }
    for i in 0..MESSAGES {
        for (p, _) in &producers {
            send(*p, &body_of(i), i);
        }
    }
    let all: Vec<usize> = (0..MESSAGES).collect();
    let wait = |l: &Lane| {
        let deadline = Instant::now() + Duration::from_secs(30);
        while l.seen.lock().unwrap().len() < MESSAGES && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    // everything but the stuck consumer goes through while it is stuck
    let lanes = producers.iter().map(|p| &p.1);
    for l in lanes.chain(consumers[1..].iter().map(|c| &c.1)) {
        wait(l);
    }
    for (_, l) in &producers {
        let mut tags = l.seen();
        tags.sort_unstable();
        assert_eq!(tags, all, "each message confirmed once");
    }
    for (_, l) in &consumers[1..] {
        assert_eq!(l.seen(), all, "a consumer's messages in order");
    }
    assert!(consumers[0].1.seen().is_empty());
    consumers[0].1.open_gate();
    wait(&consumers[0].1);
    assert_eq!(consumers[0].1.seen(), all);
    let threads = threads.lock().unwrap().clone();
    assert!(
        threads.len() <= 2 && threads.iter().all(|(n, _)| n == "rmqs-dispatch"),
        "{threads:?}"
    );
    for (p, l) in producers {
        unsafe { rmqs_producer_free(p) };
        assert_eq!(l.freed.load(Ordering::SeqCst), 1);
        assert_eq!(l.max_running.load(Ordering::SeqCst), 1);
    }
    for (c, l) in consumers {
        unsafe { rmqs_consumer_free(c) };
        assert_eq!(l.freed.load(Ordering::SeqCst), 1);
        assert_eq!(l.max_running.load(Ordering::SeqCst), 1);
    }
    for s in &streams {
        delete_stream(conn, s);
    }
    unsafe { rmqs_connection_free(conn) };
}
