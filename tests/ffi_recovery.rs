//! Automatic recovery through the C API, against the single broker of scripts/broker with real
//! faults: a TCP proxy (tests/support/proxy.rs) in front of it resets or freezes the
//! connections, and streams are deleted under live producers and consumers. Each test asserts
//! exact counts: every message confirmed once, stored once (named producers), seen once.
//!
//! The connections under test go through the proxy in load-balancer mode (the proxy is their
//! only address, so every data connection crosses it too); the checks read the stream back
//! over a direct connection.

mod support;

use std::ffi::CString;
use std::ptr;
use std::time::{Duration, Instant};

use rmqstream::ffi::rmqs_state_code::*;
use rmqstream::ffi::rmqs_status_code::*;
use rmqstream::ffi::*;
use support::capi::*;
use support::proxy::Proxy;
use support::{broker_target, unique, uri};

// ---------------------------------------------------------------------------------------------
// connections through the proxy

/// A connection straight to the broker.
fn direct() -> *mut rmqs_connection {
    open(&[("uri", &uri())])
}

/// `got` is exactly 0..n, or the first difference is reported (not the whole vectors).
fn assert_sequence<T: Copy + PartialEq + std::fmt::Debug + TryFrom<usize>>(
    got: &[T],
    n: usize,
    what: &str,
) where
    <T as TryFrom<usize>>::Error: std::fmt::Debug,
{
    let want = |i: usize| T::try_from(i).unwrap();
    if let Some(i) = (0..got.len().min(n)).find(|&i| got[i] != want(i)) {
        panic!(
            "{what}: {} items, want {n}; item {i} is {:?}, want {i} (next: {:?})",
            got.len(),
            got[i],
            &got[i..got.len().min(i + 5)]
        );
    }
    assert_eq!(got.len(), n, "{what}: {} items, want {n}", got.len());
}

// ---------------------------------------------------------------------------------------------
// the tests

/// A named producer publishing at full speed while its connection is reset twice: every
/// message confirmed OK exactly once, the stream holds exactly the messages sent, in order.
#[test]
fn named_producer_survives_resets_exactly_once() {
    named_producer_through_two_resets("rec-named", &[], 100_000, 0);
}

/// The same with `dynamic_batch`, paced (1 ms after every 20 messages) so that frames stay
/// partial and the confirm path sends them: confirms that come while the link is being lost
/// or recovered must neither drop nor repeat a frame.
#[test]
fn named_dynamic_batch_producer_survives_resets_exactly_once() {
    let keys = [("dynamic_batch", "true"), ("batch_delay_ms", "60000")];
    named_producer_through_two_resets("rec-dynamic", &keys, 20_000, 20);
}

/// Publishes `n` messages by a named producer with `keys` (pausing 1 ms after every
/// `pause_every` of them, 0: never), resetting its connection at a third and two thirds of
/// them, and checks every confirm and the stored stream.
fn named_producer_through_two_resets(
    prefix: &str,
    keys: &[(&str, &str)],
    n: usize,
    pause_every: usize,
) {
    let proxy = Proxy::start(&broker_target());
    let admin = direct();
    let name = unique(prefix);
    let stream = CString::new(name.clone()).unwrap();
    create_stream(admin, &stream);
    let conn = through(&proxy, &[]);
    let seen = Seen::new(n);
    let mut keys = keys.to_vec();
    keys.push(("name", &name));
    let p = producer(conn, &stream, &keys, &seen);
    let started = Instant::now();
    for i in 0..n {
        send(p, i);
        if pause_every > 0 && i % pause_every == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
        if i == n / 3 || i == 2 * n / 3 {
            let open = proxy.open();
            let reset = proxy.reset();
            eprintln!(
                "reset at {i}: {reset} of {open} open, stats {:?}",
                producer_stats(p)
            );
            assert!(reset >= 1, "the proxy had connections to reset");
        }
    }
    assert_eq!(
        unsafe { rmqs_producer_flush(p, 60_000, std::ptr::null_mut()) },
        0,
        "flush"
    );
    eprintln!(
        "named producer {keys:?}: {n} messages, 2 resets, {:?}",
        started.elapsed()
    );
    assert_all_ok_once(&seen, n);
    let stats = producer_stats(p);
    assert_eq!((stats.confirmed, stats.errored), (n as u64, 0));
    assert!(stats.recoveries >= 1, "{stats:?}");
    let states = seen.states();
    assert!(
        states.contains(&(RMQS_STATE_RECOVERING as i32))
            && states.last() == Some(&(RMQS_STATE_RECOVERED as i32)),
        "{states:?}"
    );
    eprintln!(
        "  recoveries {}, re-published {}",
        stats.recoveries, stats.republished
    );
    unsafe { rmqs_producer_free(p) };
    let stored = read_back(admin, &stream, n);
    assert_sequence(&indices(&stored), n, "stored bodies");
    assert_eq!(delete(admin, &stream), 0);
    unsafe { rmqs_connection_free(conn) };
    unsafe { rmqs_connection_free(admin) };
}

/// An unnamed producer through the same resets loses nothing (at-least-once); the duplicates
/// it may store are counted and reported.
#[test]
fn unnamed_producer_loses_nothing() {
    let proxy = Proxy::start(&broker_target());
    let admin = direct();
    let stream = CString::new(unique("rec-unnamed")).unwrap();
    create_stream(admin, &stream);
    let conn = through(&proxy, &[]);
    const N: usize = 50_000;
    let seen = Seen::new(N);
    let p = producer(conn, &stream, &[], &seen);
    for i in 0..N {
        send(p, i);
        if i == N / 2 {
            proxy.reset();
        }
    }
    assert_eq!(
        unsafe { rmqs_producer_flush(p, 60_000, std::ptr::null_mut()) },
        0
    );
    assert_all_ok_once(&seen, N);
    let stored = read_back(admin, &stream, N);
    let mut idx = indices(&stored);
    let total = idx.len();
    idx.sort_unstable();
    idx.dedup();
    assert_sequence(&idx, N, "every message stored");
    eprintln!(
        "unnamed producer: {N} sent, {total} stored, {} duplicates",
        total - N
    );
    unsafe { rmqs_producer_free(p) };
    assert_eq!(delete(admin, &stream), 0);
    unsafe { rmqs_connection_free(conn) };
    unsafe { rmqs_connection_free(admin) };
}

/// A consumer reading live while its connection is reset twice sees every message once, with
/// no gap: it subscribes again right after the last offset it delivered.
#[test]
fn consumer_resumes_after_the_last_delivered_offset() {
    let proxy = Proxy::start(&broker_target());
    let admin = direct();
    let stream = CString::new(unique("rec-consumer")).unwrap();
    create_stream(admin, &stream);
    let conn = through(&proxy, &[]);
    let seen = Seen::new(0);
    let c = consumer(conn, &stream, &[("offset", "first")], &seen);
    const N: usize = 30_000;
    let pseen = Seen::new(N);
    let p = producer(admin, &stream, &[], &pseen);
    for i in 0..N {
        send(p, i);
        if i == N / 3 || i == 2 * N / 3 {
            // let the consumer get going first
            seen.wait(WAIT, |s| !s.messages.lock().unwrap().is_empty());
            proxy.reset();
        }
    }
    assert_eq!(
        unsafe { rmqs_producer_flush(p, 60_000, std::ptr::null_mut()) },
        0
    );
    assert!(seen.wait(WAIT, |s| s.messages.lock().unwrap().len() >= N));
    std::thread::sleep(Duration::from_millis(500));
    let got = std::mem::take(&mut *seen.messages.lock().unwrap());
    let offsets: Vec<u64> = got.iter().map(|m| m.0).collect();
    assert_eq!(
        offsets,
        (0..N as u64).collect::<Vec<_>>(),
        "no gap, no repeat"
    );
    assert_eq!(indices(&got), (0..N).collect::<Vec<_>>());
    let mut s = rmqs_consumer_statistics {
        size: std::mem::size_of::<rmqs_consumer_statistics>() as u64,
        ..Default::default()
    };
    assert_eq!(
        unsafe { rmqs_consumer_stats(c, &mut s, std::ptr::null_mut()) },
        0
    );
    assert!(s.recoveries >= 1, "{s:?}");
    let states = seen.states();
    assert!(
        states.contains(&(RMQS_STATE_RECOVERED as i32)),
        "{states:?}"
    );
    unsafe { rmqs_consumer_free(c) };
    unsafe { rmqs_producer_free(p) };
    assert_eq!(delete(admin, &stream), 0);
    unsafe { rmqs_connection_free(conn) };
    unsafe { rmqs_connection_free(admin) };
}

/// A frozen peer (no FIN, no RST) is detected within 2 × heartbeat + 1 s; once it thaws, the
/// producer recovers and every message is confirmed exactly once.
#[test]
fn frozen_peer_is_detected_within_two_heartbeats_and_a_second() {
    const HB: u64 = 2;
    let proxy = Proxy::start(&broker_target());
    let admin = direct();
    let name = unique("rec-frozen");
    let stream = CString::new(name.clone()).unwrap();
    create_stream(admin, &stream);
    let conn = through(&proxy, &[("heartbeat", "2")]);
    const N: usize = 2_000;
    let seen = Seen::new(N);
    let p = producer(conn, &stream, &[("name", &name)], &seen);
    for i in 0..N / 2 {
        send(p, i);
    }
    assert_eq!(
        unsafe { rmqs_producer_flush(p, 30_000, std::ptr::null_mut()) },
        0
    );
    let frozen = Instant::now();
    proxy.freeze();
    for i in N / 2..N {
        send(p, i);
    }
    assert!(seen.wait(Duration::from_secs(3 * HB + 5), |s| {
        !s.state_times(RMQS_STATE_RECOVERING as i32).is_empty()
    }));
    let detected = seen.state_times(RMQS_STATE_RECOVERING as i32)[0] - frozen;
    eprintln!("frozen peer detected after {detected:?} (heartbeat {HB} s)");
    assert!(
        detected <= Duration::from_secs(2 * HB + 1),
        "detected after {detected:?}"
    );
    std::thread::sleep(Duration::from_secs(3 * HB).saturating_sub(frozen.elapsed()));
    proxy.thaw();
    assert_eq!(
        unsafe { rmqs_producer_flush(p, 60_000, std::ptr::null_mut()) },
        0
    );
    assert_all_ok_once(&seen, N);
    unsafe { rmqs_producer_free(p) };
    let stored = read_back(admin, &stream, N);
    assert_sequence(&indices(&stored), N, "stored bodies");
    assert_eq!(delete(admin, &stream), 0);
    unsafe { rmqs_connection_free(conn) };
    unsafe { rmqs_connection_free(admin) };
}

/// A stream deleted under a producer and a consumer ends both for good: a final CLOSED with
/// RMQS_ERR_STREAM_DOES_NOT_EXIST, no recovery; a stream created again under the same name
/// takes a new producer.
#[test]
fn deleted_stream_is_final() {
    let conn = direct();
    let stream = CString::new(unique("rec-deleted")).unwrap();
    create_stream(conn, &stream);
    let pseen = Seen::new(10);
    let cseen = Seen::new(0);
    let p = producer(conn, &stream, &[], &pseen);
    let c = consumer(conn, &stream, &[("offset", "first")], &cseen);
    send(p, 0);
    assert_eq!(
        unsafe { rmqs_producer_flush(p, 10_000, std::ptr::null_mut()) },
        0
    );
    assert_eq!(delete(conn, &stream), 0);
    for seen in [&pseen, &cseen] {
        assert!(seen.wait(WAIT, |s| !s.states().is_empty()));
        std::thread::sleep(Duration::from_millis(500));
        let states = seen.states.lock().unwrap();
        assert_eq!(states.len(), 1, "{states:?}");
        assert_eq!(states[0].0, RMQS_STATE_CLOSED as i32);
        assert_eq!(states[0].1, RMQS_ERR_STREAM_DOES_NOT_EXIST.status());
    }
    let mut err = ptr::null_mut();
    let body = b"x";
    let st = unsafe { rmqs_producer_send(p, body.as_ptr(), 1, 1, 0, &mut err) };
    assert_eq!(st, RMQS_ERR_CLOSED.status());
    unsafe { rmqs_error_free(err) };
    // Closing later changes nothing: CLOSED was reported once.
    assert_eq!(
        unsafe { rmqs_producer_close(p, 1000, std::ptr::null_mut()) },
        0
    );
    assert_eq!(pseen.states().len(), 1);
    unsafe { rmqs_producer_free(p) };
    unsafe { rmqs_consumer_free(c) };

    create_stream(conn, &stream);
    let seen = Seen::new(10);
    let p = producer(conn, &stream, &[], &seen);
    send(p, 0);
    assert_eq!(
        unsafe { rmqs_producer_flush(p, 10_000, std::ptr::null_mut()) },
        0
    );
    assert_eq!(seen.confirms.lock().unwrap()[0], vec![0]);
    unsafe { rmqs_producer_free(p) };
    assert_eq!(delete(conn, &stream), 0);
    unsafe { rmqs_connection_free(conn) };
}

/// With recovery off a lost connection closes producers and consumers for good, with the
/// cause; nothing reconnects.
#[test]
fn recovery_off_reports_and_stays_closed() {
    let proxy = Proxy::start(&broker_target());
    let admin = direct();
    let stream = CString::new(unique("rec-off")).unwrap();
    create_stream(admin, &stream);
    let conn = through(&proxy, &[("recovery", "false")]);
    let pseen = Seen::new(10);
    let cseen = Seen::new(0);
    let p = producer(conn, &stream, &[], &pseen);
    let c = consumer(conn, &stream, &[("offset", "first")], &cseen);
    send(p, 0);
    assert_eq!(
        unsafe { rmqs_producer_flush(p, 10_000, std::ptr::null_mut()) },
        0
    );
    assert!(proxy.reset() >= 1);
    for seen in [&pseen, &cseen] {
        assert!(seen.wait(WAIT, |s| !s.states().is_empty()));
    }
    let accepted = proxy.accepted();
    std::thread::sleep(Duration::from_secs(1));
    for seen in [&pseen, &cseen] {
        let states = seen.states.lock().unwrap();
        assert_eq!(states.len(), 1, "{states:?}");
        assert_eq!(states[0].0, RMQS_STATE_CLOSED as i32);
        assert_ne!(states[0].1, 0, "the cause is given");
    }
    // Data connections are not reopened (the locator may be, for management calls).
    assert!(proxy.accepted() <= accepted);
    let mut err = ptr::null_mut();
    let st = unsafe { rmqs_producer_send(p, b"x".as_ptr(), 1, 1, 0, &mut err) };
    assert_eq!(st, RMQS_ERR_CLOSED.status());
    unsafe { rmqs_error_free(err) };
    unsafe { rmqs_producer_free(p) };
    unsafe { rmqs_consumer_free(c) };
    unsafe { rmqs_connection_free(conn) };
    assert_eq!(delete(admin, &stream), 0);
    unsafe { rmqs_connection_free(admin) };
}

/// Close and free keep their time limits when the peer is frozen: `rmqs_producer_close(p,
/// 3000, std::ptr::null_mut())` within 3 s, `rmqs_connection_free` within its documented 5 s; the close's status says
/// the confirms were missing.
#[test]
fn close_and_free_keep_their_limits_with_a_frozen_peer() {
    let proxy = Proxy::start(&broker_target());
    let admin = direct();
    let stream = CString::new(unique("rec-frozen-close")).unwrap();
    create_stream(admin, &stream);
    let conn = through(&proxy, &[("request_timeout_ms", "10000")]);
    let seen = Seen::new(100);
    let p = producer(conn, &stream, &[], &seen);
    let cseen = Seen::new(0);
    let c = consumer(conn, &stream, &[("offset", "first")], &cseen);
    send(p, 0);
    assert_eq!(
        unsafe { rmqs_producer_flush(p, 10_000, std::ptr::null_mut()) },
        0
    );
    proxy.freeze();
    for i in 1..100 {
        send(p, i);
    }
    let t = Instant::now();
    let st = unsafe { rmqs_producer_close(p, 3000, std::ptr::null_mut()) };
    let took = t.elapsed();
    eprintln!("producer close with a frozen peer: {took:?}, status {st}");
    assert_eq!(st, RMQS_ERR_TIMEOUT.status());
    assert!(took < Duration::from_millis(3500), "{took:?}");
    // Free joins the dispatcher thread: every confirm callback has run.
    unsafe { rmqs_producer_free(p) };
    // Every message has its one outcome: all went out, so each is confirmed (those that
    // crossed the proxy just before the freeze) or unknown (TIMEOUT), never CLOSED.
    {
        let all = seen.confirms.lock().unwrap();
        assert_eq!(all[0], vec![0]);
        let mut unknown = 0;
        for (i, c) in all.iter().enumerate().skip(1) {
            assert!(
                c == &vec![0] || c == &vec![RMQS_ERR_TIMEOUT.status()],
                "message {i}: {c:?}"
            );
            unknown += usize::from(c[0] != 0);
        }
        assert!(unknown > 0, "the freeze left messages unconfirmed");
    }
    let t = Instant::now();
    unsafe { rmqs_consumer_free(c) };
    let took = t.elapsed();
    eprintln!("consumer free with a frozen peer: {took:?}");
    assert!(took < Duration::from_millis(5500), "{took:?}");
    let t = Instant::now();
    unsafe { rmqs_connection_free(conn) };
    let took = t.elapsed();
    eprintln!("connection free with a frozen peer: {took:?}");
    assert!(took < Duration::from_millis(5500), "{took:?}");
    proxy.thaw();
    assert_eq!(delete(admin, &stream), 0);
    unsafe { rmqs_connection_free(admin) };
}

/// Offset tracking goes on across a recovery: a named consumer with automatic tracking keeps
/// storing after its connection is cut, and what it stored last is the last offset it got.
#[test]
fn tracking_continues_after_a_recovery() {
    let proxy = Proxy::start(&broker_target());
    let admin = direct();
    let name = unique("rec-tracking");
    let stream = CString::new(name.clone()).unwrap();
    create_stream(admin, &stream);
    const N: usize = 6_000;
    let pseen = Seen::new(N);
    let p = producer(admin, &stream, &[], &pseen);
    for i in 0..N / 2 {
        send(p, i);
    }
    assert_eq!(
        unsafe { rmqs_producer_flush(p, 30_000, std::ptr::null_mut()) },
        0
    );
    let conn = through(&proxy, &[]);
    let seen = Seen::new(0);
    let c = consumer(
        conn,
        &stream,
        &[
            ("name", &name),
            ("offset", "first"),
            ("tracking", "auto"),
            ("tracking_messages", "500"),
            ("tracking_interval_ms", "0"),
        ],
        &seen,
    );
    assert!(seen.wait(WAIT, |s| s.messages.lock().unwrap().len() >= N / 2));
    let stats = || {
        let mut s = rmqs_consumer_statistics {
            size: std::mem::size_of::<rmqs_consumer_statistics>() as u64,
            ..Default::default()
        };
        assert_eq!(
            unsafe { rmqs_consumer_stats(c, &mut s, std::ptr::null_mut()) },
            0
        );
        s
    };
    let before = stats();
    assert!(before.offsets_stored >= 1, "{before:?}");
    assert!(proxy.reset() >= 1);
    assert!(seen.wait(WAIT, |s| {
        s.states().contains(&(RMQS_STATE_RECOVERED as i32))
    }));
    for i in N / 2..N {
        send(p, i);
    }
    assert_eq!(
        unsafe { rmqs_producer_flush(p, 30_000, std::ptr::null_mut()) },
        0
    );
    assert!(seen.wait(WAIT, |s| s.messages.lock().unwrap().len() >= N));
    // Stores by count go on after the recovery (every 500 messages); the rest is stored on
    // close.
    let deadline = Instant::now() + WAIT;
    while stats().offsets_stored < before.offsets_stored + 2 {
        assert!(Instant::now() < deadline, "stored {:?}", stats());
        std::thread::sleep(Duration::from_millis(50));
    }
    let after = stats();
    assert!(after.offsets_stored > before.offsets_stored, "{after:?}");
    assert_eq!(after.recoveries, 1);
    let got = seen.messages.lock().unwrap();
    // Stored offsets are chunks of the stream too (they take offsets), so the bodies tell
    // whether anything was lost or repeated; the offsets only have to increase.
    assert_sequence(&indices(&got), N, "bodies");
    assert!(got.windows(2).all(|w| w[0].0 < w[1].0), "offsets increase");
    drop(got);
    assert_eq!(
        unsafe { rmqs_consumer_close(c, 10_000, std::ptr::null_mut()) },
        0
    );
    // What the consumer says it stored last is on the broker, and it is past the recovery.
    let last = stats().last_stored_offset;
    let first_after = seen.messages.lock().unwrap()[N / 2].0;
    assert!(
        last >= first_after,
        "stored {last}, recovery resumed at {first_after}"
    );
    let reference = CString::new(name.clone()).unwrap();
    let deadline = Instant::now() + WAIT;
    loop {
        let mut off = 0u64;
        let st = unsafe {
            rmqs_stream_query_offset(
                admin,
                reference.as_ptr(),
                stream.as_ptr(),
                &mut off,
                ptr::null_mut(),
            )
        };
        if st == 0 && off == last {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "broker has {off} ({st}), want {last}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    unsafe { rmqs_consumer_free(c) };
    unsafe { rmqs_producer_free(p) };
    unsafe { rmqs_connection_free(conn) };
    assert_eq!(delete(admin, &stream), 0);
    unsafe { rmqs_connection_free(admin) };
}
