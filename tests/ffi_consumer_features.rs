//! Producer and consumer features through the C API (`extern "C"` symbols), against the broker
//! of scripts/broker (RMQS_TEST_URI; RMQS_TEST_LEGACY_URI for the 3.10.8 checks):
//! - offset tracking (`tracking` = auto, manual, custom with `rmqs_config_set_tracking_cb`):
//!   a restarted consumer resumes at exactly the next message, also after its process was
//!   killed with SIGKILL;
//! - each credit policy's credit pattern, read from `rmqs_consumer_stats` while the
//!   application holds chunk events;
//! - single active consumer: one of two receives, the consumer-update callback and the
//!   `RMQS_EVENT_CONSUMER_UPDATE` event, take-over at stored + 1 with nothing lost, the
//!   deadline answering for a slow application;
//! - filtering: `filter_values` reduces what arrives, the post-filter callback removes the
//!   other values, `match_unfiltered`;
//! - sub-entry batching with each compression: 10,000 messages round-trip with contiguous
//!   offsets;
//! - configuration errors and connection-level defaults of the new keys; `user_data_free`
//!   exactly once for every callback;
//! - RabbitMQ 3.10.8: single active consumer and filtering give `RMQS_ERR_UNSUPPORTED`.

mod support;

use std::ffi::{CStr, CString, c_void};
use std::io::{BufRead, BufReader};
use std::ptr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::capi::*;
use support::uri;

use rmqstream::ffi::rmqs_event_type_code::*;
use rmqstream::ffi::rmqs_offset_type_code::*;
use rmqstream::ffi::rmqs_status_code::*;
use rmqstream::ffi::*;

const WAIT: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------------------------
// helpers

fn connect(pairs: &[(&str, &str)]) -> *mut rmqs_connection {
    connect_to(&uri(), pairs)
}

fn send(p: *mut rmqs_producer, body: &[u8], filter: Option<&CStr>) {
    let mut err = ptr::null_mut();
    let st = unsafe {
        rmqs_producer_send_ex(
            p,
            body.as_ptr(),
            body.len(),
            filter.map_or(ptr::null(), CStr::as_ptr),
            0,
            0,
            0,
            ptr::null_mut(),
            &mut err,
        )
    };
    check(st, err, "send");
}

fn body(i: u64) -> Vec<u8> {
    format!("m{i}").into_bytes()
}

/// Sends `body(i)` for `range` through `p`, flushes it (every message confirmed) and frees it.
fn send_all(p: *mut rmqs_producer, range: std::ops::Range<u64>) {
    for i in range {
        send(p, &body(i), None);
    }
    flush(p);
    unsafe { rmqs_producer_free(p) };
}

/// Publishes `body(i)` for `range`, in chunks of `per_chunk` messages (each chunk flushed
/// before the next one is sent, so that the broker writes it alone).
fn publish(conn: *mut rmqs_connection, s: &CStr, range: std::ops::Range<u64>, per_chunk: u64) {
    let p = bare_producer(conn, s, &[("batch_delay_ms", "0")]);
    for i in range {
        send(p, &body(i), None);
        if (i + 1) % per_chunk == 0 {
            flush(p);
        }
    }
    flush(p);
    unsafe { rmqs_producer_free(p) };
}

/// What a queue delivered.
#[derive(Default)]
struct Seen {
    /// Chunk events not freed yet (held by the "application").
    held: Vec<*mut rmqs_event>,
    chunks: usize,
    offsets: Vec<u64>,
    bodies: Vec<Vec<u8>>,
    /// (num_entries, num_records) of each chunk.
    entries: Vec<(u16, u32)>,
    errors: Vec<String>,
    updates: Vec<*mut rmqs_event>,
    closed: bool,
    /// Messages of the chunks released so far, and the last offset of the last one.
    released_messages: usize,
    released_last: Option<u64>,
}

impl Seen {
    /// Takes every event available within `wait` (0: those queued now). Chunk events are
    /// held when `hold`, else freed after reading them.
    fn drain(&mut self, q: *mut rmqs_queue, wait: Duration, hold: bool) -> usize {
        let mut n = 0;
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let ev = poll_event(q, left.as_millis() as i32);
            if ev.is_null() {
                return n;
            }
            n += 1;
            let t = unsafe { rmqs_event_type(ev) };
            if t == RMQS_EVENT_CHUNK as i32 {
                let ch = unsafe { rmqs_event_chunk(ev) };
                let mut h = rmqs_chunk_header_info::default();
                assert!(unsafe { rmqs_chunk_header(ch, &mut h) });
                self.entries.push((h.num_entries, h.num_records));
                self.chunks += 1;
                for (o, b) in chunk_messages(ch) {
                    self.offsets.push(o);
                    self.bodies.push(b);
                }
                if hold {
                    self.held.push(ev);
                } else {
                    unsafe { rmqs_event_free(ev) };
                }
            } else if t == RMQS_EVENT_CONSUMER_UPDATE as i32 {
                self.updates.push(ev);
            } else {
                if t == RMQS_EVENT_STATE as i32 {
                    self.closed = true;
                } else if t == RMQS_EVENT_ERROR as i32 {
                    let m = unsafe { CStr::from_ptr(rmqs_event_message(ev)) };
                    self.errors.push(m.to_string_lossy().into_owned());
                }
                unsafe { rmqs_event_free(ev) };
            }
        }
    }

    /// Drains until nothing came for `quiet`.
    fn settle(&mut self, q: *mut rmqs_queue, quiet: Duration, hold: bool) {
        while self.drain(q, quiet, hold) > 0 {}
    }

    /// Frees the oldest held chunk event (processes it); false when none is held.
    fn release_one(&mut self) -> bool {
        if self.held.is_empty() {
            return false;
        }
        let ev = self.held.remove(0);
        let m = chunk_messages(unsafe { rmqs_event_chunk(ev) }).collect::<Vec<_>>();
        self.released_messages += m.len();
        self.released_last = m.last().map(|(o, _)| *o);
        unsafe { rmqs_event_free(ev) };
        true
    }
}

impl Drop for Seen {
    fn drop(&mut self) {
        for ev in self.held.drain(..).chain(self.updates.drain(..)) {
            unsafe { rmqs_event_free(ev) };
        }
    }
}

/// Stored offset under `reference`, polled until it equals `want` (StoreOffset has no reply).
fn stored_becomes(conn: *mut rmqs_connection, reference: &CStr, s: &CStr, want: u64) -> bool {
    wait_until(Duration::from_secs(5), || {
        stored(conn, reference, s) == Some(want)
    })
}

fn stored(conn: *mut rmqs_connection, reference: &CStr, s: &CStr) -> Option<u64> {
    let mut o = 0;
    let st = unsafe {
        rmqs_stream_query_offset(
            conn,
            reference.as_ptr(),
            s.as_ptr(),
            &mut o,
            ptr::null_mut(),
        )
    };
    (st == 0).then_some(o)
}

/// Counts `user_data_free` calls; the registration holds one `Arc` reference.
#[derive(Default)]
struct Calls {
    calls: AtomicUsize,
    freed: AtomicUsize,
    log: Mutex<Vec<String>>,
}

unsafe extern "C" fn free_calls(ud: *mut c_void) {
    let c = unsafe { Arc::from_raw(ud as *const Calls) };
    c.freed.fetch_add(1, Ordering::SeqCst);
}

/// The [`Calls`] of a callback's user data (made by [`ud`]).
fn calls_of<'a>(ud: *mut c_void) -> &'a Calls {
    unsafe { &*(ud as *const Calls) }
}

/// Sets a callback recording into `calls` with `set` (given the user data and its free
/// function), which must succeed.
fn set_calls_cb(calls: &Arc<Calls>, set: impl FnOnce(*mut c_void, rmqs_free_cb) -> rmqs_status) {
    assert_eq!(set(ud(calls), Some(free_calls)), 0);
}

fn ud(c: &Arc<Calls>) -> *mut c_void {
    Arc::into_raw(c.clone()) as *mut c_void
}

// ---------------------------------------------------------------------------------------------
// offset tracking

#[test]
fn tracking_resumes_at_exactly_the_next_message_after_a_restart() {
    let (conn, s) = conn_and_stream("ffi-feat-track");
    publish(conn, &s, 0..1000, 50);
    let q = queue();

    for (mode, extra) in [
        (
            "auto",
            &[("tracking_messages", "100"), ("tracking_interval_ms", "0")][..],
        ),
        ("manual", &[][..]),
    ] {
        let name = CString::new(format!("tracker-{mode}")).unwrap();
        let cfg: Vec<(&str, &str)> = [
            ("name", name.to_str().unwrap()),
            ("offset", "first"),
            ("tracking", mode),
        ]
        .into_iter()
        .chain(extra.iter().copied())
        .collect();

        // First run: process whole chunks up to about 430 messages, then stop.
        let c = queue_consumer(conn, &s, &cfg, q);
        let mut seen = Seen::default();
        let deadline = Instant::now() + WAIT;
        while seen.offsets.len() < 430 && Instant::now() < deadline {
            seen.drain(q, Duration::from_millis(50), true);
            seen.release_one();
        }
        // Chunks held or still queued are not processed: release nothing more.
        let processed: Vec<u64> = {
            // Offsets of the released chunks: everything seen minus the held chunks.
            let held: usize = seen
                .held
                .iter()
                .map(|&ev| unsafe { rmqs_chunk_message_count(rmqs_event_chunk(ev)) })
                .sum();
            seen.offsets[..seen.offsets.len() - held].to_vec()
        };
        let last = *processed.last().unwrap();
        assert_eq!(processed, (0..=last).collect::<Vec<_>>());
        if mode == "manual" {
            let mut o = 0;
            let mut err = ptr::null_mut();
            let st = unsafe { rmqs_consumer_store_processed_offset(c, &mut o, &mut err) };
            check(st, err, "store processed");
            assert_eq!(o, last);
            // Nothing new since.
            let st = unsafe {
                rmqs_consumer_store_processed_offset(c, ptr::null_mut(), ptr::null_mut())
            };
            assert_eq!(st, RMQS_ERR_NO_OFFSET as i32);
        }
        // auto: the close stores the processed offset.
        assert_eq!(
            unsafe { rmqs_consumer_close(c, 10_000, std::ptr::null_mut()) },
            0
        );
        assert!(
            stored_becomes(conn, &name, &s, last),
            "{mode}: stored {last}"
        );
        let st = consumer_stats(c);
        assert_eq!(st.last_stored_offset, last, "{mode}");
        if mode == "auto" {
            // Every 100 processed messages (at chunk ends), and on close.
            let every = (last + 1) / 100;
            assert!(
                (every..=every + 1).contains(&st.offsets_stored) && every >= 2,
                "{mode}: {st:?}"
            );
        } else {
            assert_eq!(st.offsets_stored, 1, "{mode}");
        }
        unsafe { rmqs_consumer_free(c) };
        drop(seen);
        Seen::default().drain(q, Duration::ZERO, false); // the closed event

        // Second run, same name: right after the stored offset (`offset` is ignored).
        let c = queue_consumer(conn, &s, &cfg, q);
        let mut seen = Seen::default();
        assert!(wait_until(WAIT, || {
            seen.drain(q, Duration::from_millis(50), false);
            seen.offsets.last() == Some(&999)
        }));
        assert_eq!(
            seen.offsets,
            (last + 1..1000).collect::<Vec<_>>(),
            "{mode}: resumed at exactly {}",
            last + 1
        );
        unsafe { rmqs_consumer_free(c) };
        Seen::default().drain(q, Duration::ZERO, false);
    }
    unsafe { rmqs_queue_free(q) };
    delete_and_free(conn, &s);
}

unsafe extern "C" fn every_second_chunk(
    ud: *mut c_void,
    ctx: *const rmqs_tracking_context,
) -> bool {
    let c = calls_of(ud);
    let ctx = unsafe { &*ctx };
    let n = c.calls.fetch_add(1, Ordering::SeqCst) + 1;
    c.log.lock().unwrap().push(format!(
        "{} {} {}",
        ctx.processed_offset, ctx.messages_since_store, ctx.last_stored_offset
    ));
    n % 2 == 0
}

#[test]
fn a_tracking_callback_decides_when_to_store() {
    let (conn, s) = conn_and_stream("ffi-feat-custom");
    publish(conn, &s, 0..100, 10);
    let q = queue();
    let name = c"custom-tracker";
    let calls = Arc::new(Calls::default());
    let cfg = config(&[("name", "custom-tracker"), ("offset", "first")]);
    set_calls_cb(&calls, |ud, free| unsafe {
        rmqs_config_set_tracking_cb(cfg, Some(every_second_chunk), ud, free, ptr::null_mut())
    });
    // The callback with another explicit strategy is refused.
    let other = config(&[("tracking", "manual")]);
    set_calls_cb(&calls, |ud, free| unsafe {
        rmqs_config_set_tracking_cb(other, Some(every_second_chunk), ud, free, ptr::null_mut())
    });
    let e = try_queue_consumer(conn, &s, other, q).unwrap_err();
    assert_eq!(e.0, RMQS_ERR_INVALID_ARGUMENT as i32);
    assert!(e.1.contains("tracking"), "{e:?}");
    assert_eq!(
        calls.freed.load(Ordering::SeqCst),
        1,
        "the refused one's config is freed"
    );

    let c = try_queue_consumer(conn, &s, cfg, q).unwrap_or_else(|e| panic!("consumer: {e:?}"));
    assert_eq!(
        calls.freed.load(Ordering::SeqCst),
        1,
        "the consumer holds it"
    );
    let mut seen = Seen::default();
    assert!(wait_until(WAIT, || {
        seen.drain(q, Duration::from_millis(50), false);
        seen.offsets.len() == 100
    }));
    assert!(wait_until(WAIT, || calls.calls.load(Ordering::SeqCst) >= seen.chunks));
    let n = calls.calls.load(Ordering::SeqCst);
    let st = consumer_stats(c);
    assert_eq!(
        st.offsets_stored as usize,
        n / 2,
        "{:?}",
        calls.log.lock().unwrap()
    );
    // The last store: at the end of an even call.
    let log = calls.log.lock().unwrap().clone();
    let last_even: u64 = log[n / 2 * 2 - 1]
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(stored_becomes(conn, name, &s, last_even), "{log:?}");
    // The context: messages since the store restart after each store.
    let second: Vec<u64> = log[2].split(' ').map(|x| x.parse().unwrap()).collect();
    assert_eq!(
        second[2],
        log[1].split(' ').next().unwrap().parse::<u64>().unwrap()
    );
    assert_eq!(second[1], second[0] - second[2]);
    // Close: a final store of the processed offset (99).
    assert_eq!(
        unsafe { rmqs_consumer_close(c, 10_000, std::ptr::null_mut()) },
        0
    );
    assert!(stored_becomes(conn, name, &s, 99));
    unsafe { rmqs_consumer_free(c) };
    assert_eq!(
        calls.freed.load(Ordering::SeqCst),
        2,
        "freed with the consumer"
    );
    assert_eq!(Arc::strong_count(&calls), 1);
    drop(seen);
    unsafe { rmqs_queue_free(q) };
    delete_and_free(conn, &s);
}

/// Runs only as the child process of `tracking_survives_a_killed_consumer_process`: processes
/// chunks, stores the processed offset (manual tracking) after 100 messages or more, processes
/// two more chunks without storing, prints `READY <stored>` and waits to be killed.
#[test]
fn crash_child() {
    let Some((s, name)) = support::crash_vars("RMQS_CRASH_STREAM", "RMQS_CRASH_NAME") else {
        return;
    };
    let (s, name) = (CString::new(s).unwrap(), CString::new(name).unwrap());
    let conn = connect(&[]);
    let q = queue();
    let c = queue_consumer(
        conn,
        &s,
        &[
            ("name", name.to_str().unwrap()),
            ("offset", "first"),
            ("tracking", "manual"),
        ],
        q,
    );
    let mut seen = Seen::default();
    let mut released = 0;
    let process = |seen: &mut Seen| {
        seen.drain(q, Duration::from_millis(20), true);
        usize::from(seen.release_one())
    };
    while seen.released_messages < 100 || released < 3 {
        released += process(&mut seen);
    }
    let mut stored = 0;
    let st = unsafe { rmqs_consumer_store_processed_offset(c, &mut stored, ptr::null_mut()) };
    assert_eq!(st, 0);
    assert!(stored_becomes(conn, &name, &s, stored));
    let mut more = 0;
    while more < 2 {
        more += process(&mut seen);
    }
    println!("\nREADY {stored}");
    std::thread::sleep(Duration::from_secs(120));
    unreachable!("the parent kills this process");
}

#[test]
fn tracking_survives_a_killed_consumer_process() {
    let (conn, s) = conn_and_stream("ffi-feat-crash");
    publish(conn, &s, 0..300, 20);
    let name = "crashing-consumer";
    let stream = s.to_str().unwrap();
    let vars = [("RMQS_CRASH_STREAM", stream), ("RMQS_CRASH_NAME", name)];
    let mut child = support::spawn_crash_child(&vars);
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let ready = BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .find_map(|l| l.trim().strip_prefix("READY ")?.parse::<u64>().ok());
        let _ = tx.send(ready);
    });
    let ready = rx.recv_timeout(Duration::from_secs(60));
    child.kill().unwrap(); // SIGKILL: no close, no final store
    let status = child.wait().unwrap();
    let stored = ready
        .expect("the child got ready in time")
        .unwrap_or_else(|| panic!("the child ended before READY: {status}"));
    assert!(!status.success());
    assert!((99..299).contains(&stored), "{stored}");

    // The restarted consumer: right after the stored offset; the two chunks processed after
    // the store come again, nothing is skipped.
    let q = queue();
    let c = queue_consumer(
        conn,
        &s,
        &[("name", name), ("offset", "first"), ("tracking", "manual")],
        q,
    );
    let mut seen = Seen::default();
    assert!(wait_until(WAIT, || {
        seen.drain(q, Duration::from_millis(50), false);
        seen.offsets.last() == Some(&299)
    }));
    assert_eq!(seen.offsets, (stored + 1..300).collect::<Vec<_>>());
    unsafe { rmqs_consumer_free(c) };
    drop(seen);
    unsafe { rmqs_queue_free(q) };
    delete_and_free(conn, &s);
}

// ---------------------------------------------------------------------------------------------
// credit policies

/// Subscribes from the first of `chunks` one-message chunks with `policy` and an initial credit
/// of 4, holding every chunk event; then frees them one at a time, each time waiting until
/// nothing more arrives. Returns (released, credits granted, chunks received) after each step,
/// and the most chunks held at once.
fn credit_steps(
    conn: *mut rmqs_connection,
    s: &CStr,
    policy: &str,
    chunks: usize,
) -> (Vec<(usize, u64, usize)>, usize) {
    let q = queue();
    let c = queue_consumer(
        conn,
        s,
        &[
            ("offset", "first"),
            ("initial_credit", "4"),
            ("credit_policy", policy),
        ],
        q,
    );
    let quiet = Duration::from_millis(250);
    let mut seen = Seen::default();
    seen.settle(q, quiet, true);
    let mut max_held = seen.held.len();
    let mut steps = vec![(0, consumer_stats(c).credits_granted, seen.chunks)];
    let mut released = 0;
    while seen.release_one() {
        released += 1;
        seen.settle(q, quiet, true);
        max_held = max_held.max(seen.held.len());
        steps.push((released, consumer_stats(c).credits_granted, seen.chunks));
        if released > 3 * chunks {
            break;
        }
    }
    if policy == "manual" {
        // Only rmqs_consumer_credit brings more (the broker resumes once the credit is above
        // half the initial one: 3).
        assert_eq!(
            unsafe { rmqs_consumer_credit(c, 3, std::ptr::null_mut()) },
            0
        );
        seen.settle(q, quiet, true);
        steps.push((released, consumer_stats(c).credits_granted, seen.chunks));
    }
    unsafe { rmqs_consumer_free(c) };
    drop(seen);
    unsafe { rmqs_queue_free(q) };
    (steps, max_held)
}

#[test]
fn each_credit_policy_has_its_credit_pattern() {
    let (conn, s) = conn_and_stream("ffi-feat-credit");
    const CHUNKS: usize = 12;
    publish(conn, &s, 0..CHUNKS as u64, 1);

    // on_arrival: a credit per chunk as it arrives, held or not: everything at once.
    let (steps, max_held) = credit_steps(conn, &s, "on_arrival", CHUNKS);
    assert_eq!(steps[0], (0, 4 + CHUNKS as u64, CHUNKS), "{steps:?}");
    assert_eq!(max_held, CHUNKS);

    // on_release: the initial credit until a chunk is released, then one per release.
    let (steps, max_held) = credit_steps(conn, &s, "on_release", CHUNKS);
    assert_eq!(steps[0], (0, 4, 4), "{steps:?}");
    for &(released, credits, received) in &steps {
        assert_eq!(credits, 4 + released as u64, "{steps:?}");
        // The broker resumes once the credit is above half the initial one (3 of 4).
        assert!(received <= released + 4, "{steps:?}");
    }
    assert_eq!(steps.last().unwrap().2, CHUNKS);
    assert!(max_held <= 4, "memory bounded by the credit: {max_held}");

    // after_processed:2: two credits after every second release.
    let (steps, max_held) = credit_steps(conn, &s, "after_processed:2", CHUNKS);
    assert_eq!(steps[0], (0, 4, 4), "{steps:?}");
    for &(released, credits, _) in &steps {
        assert_eq!(credits, 4 + 2 * (released as u64 / 2), "{steps:?}");
    }
    assert_eq!(steps.last().unwrap().2, CHUNKS);
    assert!(max_held <= 4);

    // manual: the initial credit only, until rmqs_consumer_credit(3, std::ptr::null_mut()).
    let (steps, _) = credit_steps(conn, &s, "manual", CHUNKS);
    let (last, before) = steps.split_last().unwrap();
    assert!(
        before.iter().all(|&(_, c, r)| c == 4 && r == 4),
        "{steps:?}"
    );
    assert_eq!((last.1, last.2), (7, 7), "{steps:?}");

    // when_below:75 (and ratio:0.75): threshold 3 of 4: with everything held, each release
    // goes out at once; all chunks arrive, never more than 4 held.
    for policy in ["when_below:75", "ratio:0.75"] {
        let (steps, max_held) = credit_steps(conn, &s, policy, CHUNKS);
        assert_eq!(steps[0], (0, 4, 4), "{policy}: {steps:?}");
        assert_eq!(steps.last().unwrap().2, CHUNKS, "{policy}");
        assert!(max_held <= 4, "{policy}");
    }

    // A policy the initial credit cannot sustain is refused.
    let q = queue();
    let e = try_queue_consumer(
        conn,
        &s,
        config(&[
            ("initial_credit", "4"),
            ("credit_policy", "after_processed:3"),
        ]),
        q,
    )
    .unwrap_err();
    assert_eq!(e.0, RMQS_ERR_INVALID_ARGUMENT as i32, "{e:?}");
    unsafe { rmqs_queue_free(q) };
    delete_and_free(conn, &s);
}

#[test]
fn when_below_batches_credit_for_a_fast_application() {
    let (conn, s) = conn_and_stream("ffi-feat-below");
    const CHUNKS: u64 = 60;
    publish(conn, &s, 0..CHUNKS, 1);
    let run = |policy: &str| {
        let q = queue();
        let c = queue_consumer(
            conn,
            &s,
            &[
                ("offset", "first"),
                ("initial_credit", "10"),
                ("credit_policy", policy),
            ],
            q,
        );
        let mut seen = Seen::default();
        assert!(wait_until(WAIT, || {
            seen.drain(q, Duration::from_millis(50), false);
            seen.offsets.len() == CHUNKS as usize
        }));
        std::thread::sleep(Duration::from_millis(300));
        let st = consumer_stats(c);
        assert_eq!(seen.offsets, (0..CHUNKS).collect::<Vec<_>>());
        unsafe { rmqs_consumer_free(c) };
        drop(seen);
        unsafe { rmqs_queue_free(q) };
        st
    };
    assert_eq!(run("on_release").credits_granted, 10 + CHUNKS);
    // Threshold 6 of 10: credit goes in batches, some held back at the end.
    let st = run("when_below:50");
    assert!(st.credits_granted < 10 + CHUNKS, "{st:?}");
    assert!(st.credits_granted + 6 >= 10 + CHUNKS, "{st:?}");
    delete_and_free(conn, &s);
}

// ---------------------------------------------------------------------------------------------
// single active consumer

unsafe extern "C" fn on_update(
    ud: *mut c_void,
    info: *const rmqs_consumer_update_info,
) -> rmqs_offset_spec {
    let info = unsafe { &*info };
    let c = calls_of(ud);
    let stream = unsafe { CStr::from_ptr(info.stream) }.to_str().unwrap();
    c.calls.fetch_add(1, Ordering::SeqCst);
    c.log.lock().unwrap().push(format!(
        "{stream} active={} stored={} default={}:{}",
        info.is_active,
        info.stored_offset as i64,
        info.default_offset.r#type,
        info.default_offset.value
    ));
    if info.is_active {
        // Explicitly what the default would be: nothing stored yet, the `offset` key (first).
        rmqs_offset_spec {
            r#type: RMQS_OFFSET_FIRST as i32,
            value: 0,
        }
    } else {
        rmqs_offset_spec::default()
    }
}

#[test]
fn single_active_consumer_one_receives_and_the_other_takes_over_at_the_stored_offset() {
    let (conn, s) = conn_and_stream("ffi-feat-sac");
    publish(conn, &s, 0..500, 25);
    let group = "sac-group";
    let common = [
        ("name", group),
        ("single_active_consumer", "true"),
        ("offset", "first"),
        ("tracking", "auto"),
        ("tracking_messages", "50"),
    ];

    // A: the consumer-update callback (on its own dispatcher thread: no chunk callback).
    let calls = Arc::new(Calls::default());
    let qa = queue();
    let cfg = config(&common);
    set_calls_cb(&calls, |ud, free| unsafe {
        rmqs_config_set_consumer_update_cb(cfg, Some(on_update), ud, free, ptr::null_mut())
    });
    let a = try_queue_consumer(conn, &s, cfg, qa).unwrap();
    // B: no callback: RMQS_EVENT_CONSUMER_UPDATE events on its queue.
    let qb = queue();
    let b = queue_consumer(conn, &s, &common, qb);

    let (mut sa, mut sb) = (Seen::default(), Seen::default());
    // A is active (the first of the group), B not; A reads (up to its credit: it holds the
    // chunks), B gets nothing.
    assert!(wait_until(WAIT, || {
        sa.drain(qa, Duration::from_millis(20), true);
        sa.chunks >= 10
    }));
    assert_eq!(calls.calls.load(Ordering::SeqCst), 1);
    assert_eq!(
        calls.log.lock().unwrap()[0],
        format!(
            "{} active=true stored=-1 default={}:0",
            s.to_str().unwrap(),
            RMQS_OFFSET_FIRST as i32
        )
    );
    assert!(unsafe { rmqs_consumer_is_active(a) });
    assert!(!unsafe { rmqs_consumer_is_active(b) });
    sb.settle(qb, Duration::from_millis(300), true);
    assert_eq!(sb.chunks, 0, "the inactive consumer receives nothing");
    assert!(sb.updates.is_empty());

    // A processes four chunks and closes: it stores their last offset on the way out.
    for _ in 0..4 {
        assert!(sa.release_one());
    }
    let last = sa.released_last.unwrap();
    assert_eq!(
        sa.offsets[..sa.released_messages],
        (0..=last).collect::<Vec<_>>()
    );
    assert_eq!(
        unsafe { rmqs_consumer_close(a, 10_000, std::ptr::null_mut()) },
        0
    );
    assert!(stored_becomes(
        conn,
        &CString::new(group).unwrap(),
        &s,
        last
    ));

    // B is activated: the event says what is stored and what the default is.
    assert!(wait_until(WAIT, || {
        sb.drain(qb, Duration::from_millis(20), true);
        !sb.updates.is_empty()
    }));
    let ev = sb.updates.remove(0);
    let info = unsafe { &*rmqs_event_consumer_update(ev) };
    assert!(info.is_active);
    assert_eq!(unsafe { CStr::from_ptr(info.stream) }, s.as_c_str());
    assert_eq!(info.stored_offset, last);
    assert_eq!(
        info.default_offset,
        rmqs_offset_spec {
            r#type: RMQS_OFFSET_OFFSET as i32,
            value: last as i64 + 1
        }
    );
    assert_eq!(
        unsafe {
            rmqs_event_consumer_update_reply(ev, rmqs_offset_spec::default(), std::ptr::null_mut())
        },
        0
    );
    assert_eq!(
        unsafe {
            rmqs_event_consumer_update_reply(ev, rmqs_offset_spec::default(), std::ptr::null_mut())
        },
        RMQS_ERR_INVALID_ARGUMENT as i32,
        "a second answer"
    );
    unsafe { rmqs_event_free(ev) };
    // B takes over right after, nothing lost or repeated.
    assert!(wait_until(WAIT, || {
        sb.drain(qb, Duration::from_millis(20), false);
        sb.offsets.last() == Some(&499)
    }));
    assert_eq!(sb.offsets, (last + 1..500).collect::<Vec<_>>());
    assert!(unsafe { rmqs_consumer_is_active(b) });

    unsafe { rmqs_consumer_free(a) };
    assert_eq!(
        calls.freed.load(Ordering::SeqCst),
        1,
        "freed with the consumer"
    );
    assert_eq!(Arc::strong_count(&calls), 1);
    unsafe { rmqs_consumer_free(b) };
    drop((sa, sb));
    unsafe {
        rmqs_queue_free(qa);
        rmqs_queue_free(qb);
    }
    delete_and_free(conn, &s);
}

/// The chunk callback of `a_callback_consumer_hears_its_updates_on_its_dispatcher_thread`.
unsafe extern "C" fn count_chunk(ud: *mut c_void, ch: *const rmqs_chunk) {
    let c = calls_of(ud);
    let n = unsafe { rmqs_chunk_message_count(ch) };
    c.calls.fetch_add(n, Ordering::SeqCst);
    let name = std::thread::current().name().map(str::to_string);
    c.log.lock().unwrap().push(format!("chunk on {name:?}"));
}

unsafe extern "C" fn update_thread(
    ud: *mut c_void,
    info: *const rmqs_consumer_update_info,
) -> rmqs_offset_spec {
    let c = calls_of(ud);
    let active = unsafe { (*info).is_active };
    let name = std::thread::current().name().map(str::to_string);
    c.log
        .lock()
        .unwrap()
        .push(format!("update active={active} on {name:?}"));
    // From the end of the stream: a valid answer the default would not give.
    rmqs_offset_spec {
        r#type: RMQS_OFFSET_OFFSET as i32,
        value: 40,
    }
}

#[test]
fn a_callback_consumer_hears_its_updates_on_its_dispatcher_thread() {
    let (conn, s) = conn_and_stream("ffi-feat-sac-cb");
    publish(conn, &s, 0..50, 10);
    let chunks = Arc::new(Calls::default());
    let updates = Arc::new(Calls::default());
    let cfg = config(&[("name", "cb-group"), ("single_active_consumer", "true")]);
    set_calls_cb(&updates, |ud, free| unsafe {
        rmqs_config_set_consumer_update_cb(cfg, Some(update_thread), ud, free, ptr::null_mut())
    });
    let mut c = ptr::null_mut();
    let mut err = ptr::null_mut();
    let st = unsafe {
        rmqs_consumer_new(
            conn,
            s.as_ptr(),
            cfg,
            Some(count_chunk),
            ud(&chunks),
            Some(free_calls),
            ptr::null_mut(),
            0,
            &mut c,
            &mut err,
        )
    };
    check(st, err, "consumer");
    // The answer (offset 40) decides where it starts: 10 messages.
    assert!(wait_until(WAIT, || chunks.calls.load(Ordering::SeqCst) >= 10));
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(chunks.calls.load(Ordering::SeqCst), 10);
    let log = updates.log.lock().unwrap().clone();
    assert_eq!(log, ["update active=true on Some(\"rmqs-dispatch\")"]);
    assert!(
        chunks
            .log
            .lock()
            .unwrap()
            .iter()
            .all(|l| l == "chunk on Some(\"rmqs-dispatch\")")
    );
    unsafe { rmqs_consumer_free(c) };
    assert_eq!(chunks.freed.load(Ordering::SeqCst), 1);
    assert_eq!(
        updates.freed.load(Ordering::SeqCst),
        0,
        "the config still holds it"
    );
    unsafe { rmqs_config_free(cfg) };
    assert_eq!(
        updates.freed.load(Ordering::SeqCst),
        1,
        "freed with the config, last"
    );
    delete_and_free(conn, &s);
}

#[test]
fn a_slow_answer_is_replaced_by_the_default_at_the_deadline() {
    let (conn, s) = conn_and_stream("ffi-feat-sac-slow");
    publish(conn, &s, 0..30, 10);
    let q = queue();
    let t0 = Instant::now();
    let c = queue_consumer(
        conn,
        &s,
        &[
            ("name", "slow-group"),
            ("single_active_consumer", "true"),
            ("offset", "first"),
            ("consumer_update_timeout_ms", "300"),
        ],
        q,
    );
    // The application does not look at its queue for a second: the library answers the
    // default (offset first) after 300 ms and the chunks come.
    std::thread::sleep(Duration::from_millis(1000));
    let mut seen = Seen::default();
    assert!(wait_until(WAIT, || {
        seen.drain(q, Duration::from_millis(20), false);
        seen.offsets.len() == 30
    }));
    assert_eq!(seen.offsets, (0..30).collect::<Vec<_>>());
    let ev = seen.updates.remove(0);
    // An invalid spec is refused without using up the answer.
    let bad = rmqs_offset_spec {
        r#type: 9,
        value: 0,
    };
    let st = unsafe { rmqs_event_consumer_update_reply(ev, bad, std::ptr::null_mut()) };
    assert_eq!(st, RMQS_ERR_INVALID_ARGUMENT as i32);
    let st = unsafe {
        rmqs_event_consumer_update_reply(
            ev,
            rmqs_offset_spec {
                r#type: RMQS_OFFSET_NEXT as i32,
                value: 0,
            },
            std::ptr::null_mut(),
        )
    };
    assert_eq!(st, RMQS_ERR_TIMEOUT as i32, "too late");
    unsafe { rmqs_event_free(ev) };
    assert!(t0.elapsed() < Duration::from_secs(10));
    assert!(unsafe { rmqs_consumer_is_active(c) });
    unsafe { rmqs_consumer_free(c) };
    drop(seen);
    unsafe { rmqs_queue_free(q) };
    delete_and_free(conn, &s);
}

// ---------------------------------------------------------------------------------------------
// filtering

unsafe extern "C" fn keep_prefix(ud: *mut c_void, msg: *const rmqs_message) -> bool {
    let c = calls_of(ud);
    c.calls.fetch_add(1, Ordering::SeqCst);
    let mut len = 0;
    let b = unsafe { rmqs_message_body(msg, &mut len) };
    let body = unsafe { std::slice::from_raw_parts(b, len) };
    let wanted = c.log.lock().unwrap().clone();
    wanted.iter().any(|p| body.starts_with(p.as_bytes()))
}

#[test]
fn filtering_reduces_what_arrives_and_the_post_filter_removes_the_rest() {
    let (conn, s) = conn_and_stream("ffi-feat-filter");
    // Chunks of 20: eu, us, ap, mixed eu/us, without a value. Bodies "<value>:<offset>".
    let p = bare_producer(conn, &s, &[("batch_delay_ms", "0")]);
    let mut values = Vec::new();
    for layout in [["eu"; 2], ["us"; 2], ["ap"; 2], ["eu", "us"], ["", ""]] {
        for k in 0..20 {
            let v = layout[k % 2];
            let o = values.len();
            let body = format!("{}:{o}", if v.is_empty() { "none" } else { v });
            let f = CString::new(v).unwrap();
            send(p, body.as_bytes(), (!v.is_empty()).then_some(f.as_c_str()));
            values.push(v);
        }
        flush(p);
    }
    unsafe { rmqs_producer_free(p) };
    let eu: Vec<u64> = (0..100).filter(|&o| values[o as usize] == "eu").collect();
    assert_eq!(eu.len(), 30);

    let consume = |pairs: &[(&str, &str)], keep: &[&str]| {
        let q = queue();
        let calls = Arc::new(Calls::default());
        let cfg = config(pairs);
        if !keep.is_empty() {
            *calls.log.lock().unwrap() = keep.iter().map(|k| format!("{k}:")).collect();
            assert_eq!(
                unsafe {
                    rmqs_config_set_post_filter_cb(
                        cfg,
                        Some(keep_prefix),
                        ud(&calls),
                        Some(free_calls),
                        std::ptr::null_mut(),
                    )
                },
                0
            );
        }
        let c = try_queue_consumer(conn, &s, cfg, q).unwrap();
        let mut seen = Seen::default();
        seen.settle(q, Duration::from_millis(700), false);
        let st = consumer_stats(c);
        unsafe { rmqs_consumer_free(c) };
        assert!(seen.errors.is_empty(), "{:?}", seen.errors);
        if !keep.is_empty() {
            assert_eq!(calls.freed.load(Ordering::SeqCst), 1);
        }
        unsafe { rmqs_queue_free(q) };
        (
            seen.offsets.clone(),
            seen.bodies.clone(),
            st,
            calls.calls.load(Ordering::SeqCst),
        )
    };

    let (all, _, all_stats, _) = consume(&[("offset", "first")], &[]);
    assert_eq!(all, (0..100).collect::<Vec<_>>());

    // Broker-side only: whole chunks that may hold eu; never the chunk without values.
    let (chunky, _, st, _) = consume(&[("offset", "first"), ("filter_values", "eu")], &[]);
    assert!(
        eu.iter().all(|o| chunky.contains(o)),
        "every eu message arrives"
    );
    assert!(chunky.iter().all(|&o| o < 80), "{chunky:?}");
    assert!(
        chunky.len() < 100 && st.bytes < all_stats.bytes,
        "filtering reduced the traffic"
    );

    // With the post-filter: exactly the eu messages, at their own offsets.
    let (exact, bodies, st, calls) =
        consume(&[("offset", "first"), ("filter_values", "eu")], &["eu"]);
    assert_eq!(exact, eu);
    for (o, b) in exact.iter().zip(&bodies) {
        assert_eq!(b, format!("eu:{o}").as_bytes());
    }
    assert_eq!(
        calls,
        chunky.len(),
        "the post-filter saw every message that arrived"
    );
    assert_eq!(st.messages, 30);
    assert_eq!(st.filtered_out as usize, chunky.len() - 30);

    // Two values and match_unfiltered: the chunk without values too.
    let (more, _, _, _) = consume(
        &[
            ("offset", "first"),
            ("filter_values", "eu,ap"),
            ("match_unfiltered", "true"),
        ],
        &["eu", "ap", "none"],
    );
    let want: Vec<u64> = (0..100)
        .filter(|&o| ["eu", "ap", ""].contains(&values[o as usize]))
        .collect();
    assert_eq!(more, want);

    // match_unfiltered alone is refused.
    let q = queue();
    let e = try_queue_consumer(conn, &s, config(&[("match_unfiltered", "true")]), q).unwrap_err();
    assert_eq!(e.0, RMQS_ERR_INVALID_ARGUMENT as i32, "{e:?}");
    unsafe { rmqs_queue_free(q) };
    delete_and_free(conn, &s);
}

// ---------------------------------------------------------------------------------------------
// sub-entry batching and compression

#[test]
fn every_compression_round_trips_ten_thousand_messages() {
    const N: u64 = 10_000;
    let conn = connect(&[]);
    for codec in ["none", "gzip", "snappy", "lz4", "zstd"] {
        let s = cunique(&format!("ffi-feat-{codec}"));
        create_stream(conn, &s);
        let p = bare_producer(
            conn,
            &s,
            &[("sub_entry_size", "100"), ("compression", codec)],
        );
        send_all(p, 0..N);

        let q = queue();
        let c = queue_consumer(conn, &s, &[("offset", "first")], q);
        let mut seen = Seen::default();
        assert!(
            wait_until(WAIT, || {
                seen.drain(q, Duration::from_millis(50), false);
                seen.offsets.len() as u64 >= N
            }),
            "{codec}: {} of {N}",
            seen.offsets.len()
        );
        assert_eq!(
            seen.offsets,
            (0..N).collect::<Vec<_>>(),
            "{codec}: contiguous offsets"
        );
        for (i, b) in seen.bodies.iter().enumerate() {
            assert_eq!(*b, body(i as u64), "{codec}: body {i}");
        }
        // Sub-entries: far fewer entries than records, each entry of up to 100 messages.
        let entries: u64 = seen.entries.iter().map(|e| u64::from(e.0)).sum();
        let records: u64 = seen.entries.iter().map(|e| u64::from(e.1)).sum();
        assert_eq!(records, N, "{codec}");
        assert!(
            (N / 100..=N / 10).contains(&entries),
            "{codec}: {entries} entries"
        );
        assert_eq!(consumer_stats(c).messages, N);
        unsafe { rmqs_consumer_free(c) };
        drop(seen);
        unsafe { rmqs_queue_free(q) };
        delete_stream(conn, &s);
    }
    unsafe { rmqs_connection_free(conn) };
}

// ---------------------------------------------------------------------------------------------
// configuration

#[test]
fn connection_level_defaults_of_the_new_keys_apply_and_are_overridden() {
    // producer.sub_entry_size / compression and consumer.credit_policy on the connection.
    let conn = connect(&[
        ("producer.sub_entry_size", "50"),
        ("producer.compression", "lz4"),
        ("consumer.credit_policy", "manual"),
        ("consumer.initial_credit", "1"),
    ]);
    let s = cunique("ffi-feat-layers");
    create_stream(conn, &s);
    let p = bare_producer(conn, &s, &[]);
    send_all(p, 0..200);
    let p = bare_producer(conn, &s, &[("sub_entry_size", "0")]); // its own config wins
    send_all(p, 200..210);

    // The connection's manual credit with an initial credit of 1: one chunk, then nothing.
    let q = queue();
    let c = queue_consumer(conn, &s, &[("offset", "first")], q);
    let mut seen = Seen::default();
    seen.settle(q, Duration::from_millis(400), false);
    assert_eq!(seen.chunks, 1);
    assert_eq!(consumer_stats(c).credits_granted, 1);
    unsafe { rmqs_consumer_free(c) };
    drop(seen);
    // Overridden per consumer: everything.
    let c = queue_consumer(
        conn,
        &s,
        &[("offset", "first"), ("credit_policy", "on_release")],
        q,
    );
    let mut seen = Seen::default();
    assert!(wait_until(WAIT, || {
        seen.drain(q, Duration::from_millis(50), false);
        seen.offsets.len() == 210
    }));
    assert_eq!(seen.offsets, (0..210).collect::<Vec<_>>());
    let first: u64 = seen
        .entries
        .iter()
        .scan(0u64, |n, e| {
            *n += u64::from(e.1);
            Some((*n, *e))
        })
        .filter(|(n, _)| *n <= 200)
        .map(|(_, e)| u64::from(e.0))
        .sum();
    assert!(
        first <= 200 / 50 + 4,
        "sub-entries of 50 from the connection default: {first}"
    );
    let plain = seen.entries.last().unwrap();
    assert_eq!(
        u32::from(plain.0),
        plain.1,
        "the producer's own sub_entry_size 0"
    );
    unsafe { rmqs_consumer_free(c) };
    drop(seen);
    unsafe { rmqs_queue_free(q) };

    // Errors naming the key.
    let q = queue();
    for (pairs, needle) in [
        (&[("tracking", "custom")][..], "rmqs_config_set_tracking_cb"),
        (
            &[
                ("tracking", "auto"),
                ("tracking_messages", "0"),
                ("tracking_interval_ms", "0"),
            ][..],
            "both 0",
        ),
        (&[("tracking", "manual")][..], "name"),
        (&[("single_active_consumer", "true")][..], "name"),
    ] {
        let e = try_queue_consumer(conn, &s, config(pairs), q).unwrap_err();
        assert_eq!(e.0, RMQS_ERR_INVALID_ARGUMENT as i32, "{pairs:?}: {e:?}");
        assert!(e.1.contains(needle), "{pairs:?}: {e:?}");
    }
    unsafe { rmqs_queue_free(q) };
    delete_and_free(conn, &s);
}

#[test]
fn legacy_broker_refuses_single_active_consumer_and_filtering() {
    let Ok(legacy) = std::env::var("RMQS_TEST_LEGACY_URI") else {
        eprintln!("RMQS_TEST_LEGACY_URI not set: skipped");
        return;
    };
    let conn = connect_to(&legacy, &[]);
    let s = cunique("ffi-feat-legacy");
    create_stream(conn, &s);
    let q = queue();
    for pairs in [
        &[("name", "g"), ("single_active_consumer", "true")][..],
        &[("filter_values", "eu")][..],
        &[("filter_values", "eu"), ("match_unfiltered", "true")][..],
    ] {
        let e = try_queue_consumer(conn, &s, config(pairs), q).unwrap_err();
        assert_eq!(e.0, RMQS_ERR_UNSUPPORTED as i32, "{pairs:?}: {e:?}");
    }
    // Tracking and compression work there.
    let p = bare_producer(
        conn,
        &s,
        &[("sub_entry_size", "10"), ("compression", "zstd")],
    );
    send_all(p, 0..100);
    let c = queue_consumer(
        conn,
        &s,
        &[
            ("name", "legacy-tracker"),
            ("offset", "first"),
            ("tracking", "auto"),
        ],
        q,
    );
    let mut seen = Seen::default();
    assert!(wait_until(WAIT, || {
        seen.drain(q, Duration::from_millis(50), false);
        seen.offsets.len() == 100
    }));
    assert_eq!(seen.offsets, (0..100).collect::<Vec<_>>());
    unsafe { rmqs_consumer_free(c) };
    assert!(stored_becomes(conn, c"legacy-tracker", &s, 99));
    drop(seen);
    unsafe { rmqs_queue_free(q) };
    delete_and_free(conn, &s);
}
