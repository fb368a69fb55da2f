//! The async core's producer against the real brokers of `scripts/broker`:
//! `RMQS_TEST_URI` (default `rabbitmq-stream://guest:guest@localhost:5552/%2f`, RabbitMQ 4.x)
//! and `RMQS_TEST_LEGACY_URI` (RabbitMQ 3.10.8; that test is skipped, with a notice, when the
//! variable is unset — `scripts/test` sets it).
//!
//! Async setup runs in `block_on`; the producer's synchronous calls (`send`, `send_batch`,
//! `flush`) are made from the test thread outside `block_on`, never on a runtime worker.
//! What reached the stream is read back with a minimal subscriber written against
//! `Connection` and the chunk codec (independent of the consumer under development).

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::client::{Collector, Fixture, assert_confirmed_in_order, send_mixed};
use support::unique;

use rmqstream::client::producer::{DEFAULT_BATCH_SIZE, DEFAULT_MAX_IN_FLIGHT};
use rmqstream::client::{
    ClientError, Confirm, ConfirmStatus, OutgoingMessage, Producer, ProducerConfig, ProducerEvents,
};
use rmqstream::protocol::amqp::MessageView;

const WAIT: Duration = Duration::from_secs(30);

/// A partial frame is never due on its own: only a flush or close (or a full frame) sends it.
fn held() -> ProducerConfig {
    ProducerConfig {
        batch_delay: Duration::from_secs(600),
        ..Default::default()
    }
}

/// A producer named `name` (deduplicating on the broker).
fn named(name: &str) -> ProducerConfig {
    ProducerConfig {
        name: Some(name.into()),
        ..Default::default()
    }
}

/// A fixture on a fresh stream `prefix-...` and a [`held`] producer that sent `n` messages `x`
/// tagged `0..n`, none of them gone to the broker yet.
fn held_sent(prefix: &str, n: usize) -> (Fixture, Arc<Collector>, Producer) {
    let f = Fixture::new("client_producer", prefix);
    let (ev, p) = f.collected(held());
    send_tagged(&p, b"x", 0..n);
    (f, ev, p)
}

/// Sends `body` once per tag of `tags`, without waiting for room.
fn send_tagged(p: &Producer, body: &[u8], tags: std::ops::Range<usize>) {
    for i in tags {
        p.send(&OutgoingMessage::new(body).tag(i), None).unwrap();
    }
}

fn payload(prefix: &str, i: usize) -> Vec<u8> {
    format!("{prefix}-{i:06}").into_bytes()
}

#[test]
fn ten_thousand_messages_confirmed_once_each_and_read_back() {
    const N: usize = 10_000;
    let f = Fixture::new("client_producer", "prod-10k");
    let (events, p) = f.collected(ProducerConfig::default());
    assert_eq!(p.last_publishing_id(), None);

    let bodies: Vec<Vec<u8>> = (0..N).map(|i| payload("m", i)).collect();
    let start = Instant::now();
    // Every 10th raw, the rest AMQP: both formats share frames.
    send_mixed(&p, &bodies, WAIT, "anonymous ids count from 0");
    p.flush(WAIT).unwrap();
    let elapsed = start.elapsed();
    println!(
        "10k messages sent and confirmed in {elapsed:?} ({:.0} msg/s)",
        N as f64 / elapsed.as_secs_f64()
    );

    assert_confirmed_in_order(&events, &p, N);

    let back = f.read(N);
    assert_eq!(back.records.len(), N);
    for (i, (offset, _)) in back.records.iter().enumerate() {
        assert_eq!(*offset, i as u64);
    }
    assert_eq!(back.bodies(), bodies, "bodies read back in order");
    // The AMQP-wrapped ones are real AMQP messages, the raw ones are not.
    assert!(MessageView::parse(&back.records[0].1).is_ok());
    assert!(MessageView::parse(&back.records[3].1).is_err());
    let stats = f.rt.block_on(f.env.stream_stats(&f.stream)).unwrap();
    assert_eq!(
        stats.committed_chunk_id,
        *back.chunk_ids.last().unwrap() as i64
    );
    f.close(&p);
    f.finish();
}

#[test]
fn named_producers_deduplicate_on_the_broker() {
    let name = unique("dedup");
    let f = Fixture::new("client_producer", "prod-dedup");
    let config = || named(&name);

    let ev1 = Collector::new();
    let p1 = f.producer(config(), &ev1);
    let first: Vec<Vec<u8>> = (0..100).map(|i| payload("first", i)).collect();
    for (i, b) in first.iter().enumerate() {
        let m = OutgoingMessage::new(b).publishing_id(i as u64).tag(i);
        assert_eq!(p1.send(&m, Some(WAIT)).unwrap(), i as u64);
    }
    p1.flush(WAIT).unwrap();
    f.close(&p1);
    assert_eq!(ev1.all().len(), 100);
    assert_eq!(f.sequence(&name), 99);

    // Same name, ids 50..149: the broker confirms all of them but stores only 100..149.
    let ev2 = Collector::new();
    let p2 = f.producer(config(), &ev2);
    assert_eq!(p2.last_publishing_id(), Some(99), "broker's sequence");
    let second: Vec<Vec<u8>> = (50..150).map(|i| payload("second", i)).collect();
    let msgs: Vec<OutgoingMessage<'_>> = second
        .iter()
        .enumerate()
        .map(|(k, b)| {
            OutgoingMessage::new(b)
                .publishing_id(50 + k as u64)
                .tag(50 + k)
        })
        .collect();
    assert_eq!(p2.send_batch(&msgs, Some(WAIT)).unwrap(), 100);
    p2.flush(WAIT).unwrap();
    let by_tag = ev2.by_tag();
    assert_eq!(by_tag.len(), 100);
    assert!(by_tag.values().all(|c| c.status.is_confirmed()));
    f.close(&p2);
    assert_eq!(f.sequence(&name), 149);

    let back = f.read(150);
    assert_eq!(back.records.len(), 150, "exactly 150 kept");
    let mut want = first.clone();
    want.extend(second[50..].iter().cloned());
    assert_eq!(back.bodies(), want);
    // Nothing after offset 149: the last chunk we read is the stream's last.
    let stats = f.rt.block_on(f.env.stream_stats(&f.stream)).unwrap();
    assert_eq!(
        stats.committed_chunk_id,
        *back.chunk_ids.last().unwrap() as i64
    );
    assert_eq!(back.records.last().unwrap().0, 149);
    f.finish();
}

#[test]
fn named_producer_restart_continues_after_the_last_id() {
    let f = Fixture::new("client_producer", "prod-restart");
    let name = unique("restart");
    let config = || named(&name);
    let (_ev, p) = f.collected(config());
    assert_eq!(p.last_publishing_id(), None, "unknown name");
    let ids: Vec<u64> = (0..10)
        .map(|_| p.send(&OutgoingMessage::new(b"one"), None).unwrap())
        .collect();
    // A new name starts at 1: the broker's 0 may mean "last id was 0".
    assert_eq!(ids, (1..=10).collect::<Vec<_>>());
    p.flush(WAIT).unwrap();
    f.close(&p);
    assert_eq!(f.sequence(&name), 10);

    let (ev, p) = f.collected(config());
    assert_eq!(p.last_publishing_id(), Some(10));
    for want in 11..=15 {
        assert_eq!(p.send(&OutgoingMessage::new(b"two"), None).unwrap(), want);
    }
    p.flush(WAIT).unwrap();
    assert!(ev.all().iter().all(|c| c.status.is_confirmed()));
    f.close(&p);
    assert_eq!(f.sequence(&name), 15);
    assert_eq!(f.read(15).records.len(), 15);
    f.finish();
}

#[test]
fn in_flight_cap_gives_queue_full_then_resumes() {
    let f = Fixture::new("client_producer", "prod-cap");
    let (ev, p) = f.collected(ProducerConfig {
        max_in_flight: Some(10),
        // Nothing leaves on its own: the 10 stay unconfirmed until flushed.
        batch_delay: Duration::from_secs(600),
        ..Default::default()
    });
    send_tagged(&p, b"x", 0..10);
    assert_eq!(p.stats().in_flight, 10);
    let full = p.send(&OutgoingMessage::new(b"x"), None);
    assert!(matches!(full, Err(ClientError::QueueFull(10))), "{full:?}");
    let partial = p.send_batch(&[OutgoingMessage::new(b"x")], None);
    assert!(matches!(partial, Err(ClientError::QueueFull(10))));
    assert_eq!(p.stats().published, 10, "refused messages are not counted");

    p.flush(WAIT).unwrap();
    assert_eq!(p.stats().in_flight, 0);
    assert_eq!(ev.all().len(), 10);

    // Room again: 10 fit, then a batch accepts only what fits without waiting.
    let bodies: Vec<Vec<u8>> = (0..25).map(|i| payload("b", i)).collect();
    let msgs: Vec<_> = bodies
        .iter()
        .enumerate()
        .map(|(i, b)| OutgoingMessage::new(b).tag(100 + i))
        .collect();
    assert_eq!(p.send_batch(&msgs, None).unwrap(), 10);
    // With a wait it sends the partial frame itself and blocks for room as confirms come.
    assert_eq!(p.send_batch(&msgs[10..], Some(WAIT)).unwrap(), 15);
    p.flush(WAIT).unwrap();
    let by_tag = ev.by_tag();
    assert_eq!(by_tag.len(), 35);
    assert!(by_tag.values().all(|c| c.status.is_confirmed()));

    // A zero wait sends what is pending but does not block: Timeout, not QueueFull. (Tried a
    // few times: a confirm could in theory beat the check right after the frame left.)
    let mut timed_out = false;
    for _ in 0..5 {
        p.flush(WAIT).unwrap();
        for _ in 0..10 {
            p.send(&OutgoingMessage::new(b"x"), None).unwrap();
        }
        match p.send(&OutgoingMessage::new(b"x"), Some(Duration::ZERO)) {
            Err(ClientError::Timeout(0, _)) => {
                timed_out = true;
                break;
            }
            Ok(_) => {}
            r => panic!("expected Timeout, got {r:?}"),
        }
    }
    assert!(timed_out);
    p.flush(WAIT).unwrap();
    f.close(&p);
    let st = p.stats();
    assert_eq!(st.confirmed, st.published);
    assert_eq!((st.errored, st.in_flight), (0, 0));
    f.finish();
}

#[test]
fn filter_values_use_publish_v2() {
    let f = Fixture::new("client_producer", "prod-filter");
    let (ev, p) = f.collected(ProducerConfig::default());
    let regions = ["eu", "us", "apac"];
    for i in 0..300usize {
        let body = payload("f", i);
        let mut m = OutgoingMessage::new(&body).tag(i);
        // Unfiltered messages in between: frames switch between v1 and v2.
        if i % 7 != 0 {
            m = m.filter_value(regions[i % 3]);
        }
        assert_eq!(p.send(&m, None).unwrap(), i as u64);
    }
    p.flush(WAIT).unwrap();
    let by_tag = ev.by_tag();
    assert_eq!(by_tag.len(), 300);
    assert!(by_tag.values().all(|c| c.status.is_confirmed()));
    let back = f.read(300);
    assert_eq!(
        back.bodies(),
        (0..300).map(|i| payload("f", i)).collect::<Vec<_>>()
    );
    f.close(&p);
    f.finish();
}

#[test]
fn filter_values_on_the_legacy_broker_are_unsupported() {
    let Ok(uri) = std::env::var("RMQS_TEST_LEGACY_URI") else {
        eprintln!(
            "NOTICE: RMQS_TEST_LEGACY_URI is unset: filter-value test against RabbitMQ 3.10 \
             skipped (scripts/test sets it; or `scripts/broker start --legacy` and \
             RMQS_TEST_LEGACY_URI=$(scripts/broker uri --legacy))"
        );
        return;
    };
    let f = Fixture::with_uri(&uri, "client_producer", "prod-legacy");
    let (ev, p) = f.collected(ProducerConfig::default());
    let r = p.send(&OutgoingMessage::new(b"x").filter_value("eu"), None);
    match r {
        Err(ClientError::Unsupported { needs, broker, .. }) => {
            assert_eq!(needs, "3.13");
            assert!(broker.starts_with("3.10"), "{broker}");
        }
        r => panic!("expected Unsupported, got {r:?}"),
    }
    assert_eq!(p.stats().published, 0);
    // Plain messages work there.
    assert_eq!(p.send(&OutgoingMessage::new(b"x"), None).unwrap(), 0);
    p.flush(WAIT).unwrap();
    assert_eq!(ev.all()[0].status, ConfirmStatus::Confirmed);
    f.close(&p);
    f.finish();
}

#[test]
fn a_message_larger_than_a_frame_is_invalid() {
    let f = Fixture::new("client_producer", "prod-big");
    let frame_max = f.rt.block_on(f.env.server_info()).unwrap().frame_max as usize;
    assert!(frame_max > 0);
    let (ev, p) = f.collected(ProducerConfig::default());

    // Raw v1 entry: 8 id + 4 size + body, after a 13-byte frame header.
    let exact = vec![7u8; frame_max - 13 - 12];
    let too_big = vec![7u8; exact.len() + 1];
    let r = p.send(&OutgoingMessage::raw(&too_big), None);
    match r {
        Err(ClientError::InvalidArgument(why)) => {
            assert!(why.contains(&too_big.len().to_string()), "{why}");
            assert!(why.contains(&frame_max.to_string()), "{why}");
        }
        r => panic!("expected InvalidArgument, got {r:?}"),
    }
    // AMQP wrapping adds 8 bytes: the raw maximum no longer fits.
    assert!(matches!(
        p.send(&OutgoingMessage::new(&exact), None),
        Err(ClientError::InvalidArgument(_))
    ));
    // In a batch, the valid prefix is accepted and the count returned.
    let batch = [
        OutgoingMessage::raw(b"small"),
        OutgoingMessage::raw(&too_big),
    ];
    assert_eq!(p.send_batch(&batch, None).unwrap(), 1);
    // Exactly a frame's worth goes through.
    p.send(&OutgoingMessage::raw(&exact), None).unwrap();
    p.flush(WAIT).unwrap();
    let all = ev.all();
    assert_eq!(all.len(), 2);
    assert!(all.iter().all(|c| c.status.is_confirmed()));
    let back = f.read(2);
    assert_eq!(back.records[1].1.len(), exact.len());
    f.close(&p);
    f.finish();
}

#[test]
fn explicit_ids_must_increase() {
    let f = Fixture::new("client_producer", "prod-ids");
    let (_ev, p) = f.collected(ProducerConfig::default());
    assert_eq!(
        p.send(&OutgoingMessage::new(b"a").publishing_id(5), None)
            .unwrap(),
        5
    );
    for bad in [5, 4, u64::MAX] {
        let r = p.send(&OutgoingMessage::new(b"b").publishing_id(bad), None);
        assert!(
            matches!(r, Err(ClientError::InvalidArgument(_))),
            "{bad}: {r:?}"
        );
    }
    // Automatic ids continue after the last explicit one.
    assert_eq!(p.send(&OutgoingMessage::new(b"c"), None).unwrap(), 6);
    assert_eq!(p.last_publishing_id(), Some(6));
    p.flush(WAIT).unwrap();
    assert_eq!(p.stats().confirmed, 2);
    f.close(&p);
    f.finish();
}

#[test]
fn send_after_close_is_closed_and_close_is_idempotent() {
    let (f, ev, p) = held_sent("prod-close", 50);
    // close sends the partial frame and waits for its confirms.
    f.close(&p);
    let by_tag = ev.by_tag();
    assert_eq!(by_tag.len(), 50);
    assert!(by_tag.values().all(|c| c.status.is_confirmed()));
    let r = p.send(&OutgoingMessage::new(b"x"), None);
    assert!(matches!(r, Err(ClientError::Closed(_))), "{r:?}");
    let r = p.send_batch(&[OutgoingMessage::new(b"x")], Some(WAIT));
    assert!(matches!(r, Err(ClientError::Closed(_))), "{r:?}");
    f.close(&p);
    p.flush(WAIT).unwrap();
    assert_eq!(p.stats().published, 50);
    f.finish();
}

#[test]
fn dropping_without_close_reports_closed() {
    let (f, ev, p) = held_sent("prod-drop", 5);
    drop(p);
    let all = ev.wait_for(5, WAIT);
    assert!(all.iter().all(|c| c.status == ConfirmStatus::Closed));
    f.finish();
}

/// Waits (bounded) until nothing is in flight. A message leaves `in_flight` only once its
/// confirm callback has returned, which can be just after a collector saw the confirm.
fn settle(p: &Producer) {
    let deadline = Instant::now() + WAIT;
    while p.stats().in_flight != 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn confirm_timeout_completes_unconfirmed_messages() {
    let f = Fixture::new("client_producer", "prod-timeout");
    // The frame is never due on its own, so its messages are never confirmed in time.
    let (ev, p) = f.collected(ProducerConfig {
        confirm_timeout: Duration::from_millis(50),
        ..held()
    });
    let start = Instant::now();
    // Sends `tags`; every outcome so far must be a timeout, and once the producer settled
    // nothing is in flight or confirmed: when the outcomes were all there (since `start`).
    let all_time_out = |tags: std::ops::Range<usize>| {
        send_tagged(&p, b"late", tags.clone());
        let all = ev.wait_for(tags.end, WAIT);
        let when = start.elapsed();
        assert!(
            all.iter().all(|c| c.status == ConfirmStatus::Timeout),
            "{all:?}"
        );
        settle(&p);
        let st = p.stats();
        assert_eq!(
            (st.errored, st.in_flight, st.confirmed),
            (tags.end as u64, 0, 0)
        );
        when
    };
    assert!(all_time_out(0..20) >= Duration::from_millis(50));
    // With nothing in flight the sweep parks (it ticks every 10 ms here); the next message
    // in flight restarts it, so timeouts still come after an idle spell.
    std::thread::sleep(Duration::from_millis(100));
    all_time_out(20..25);
    // Closing sends the frame; the broker's late confirms are not reported again.
    f.close(&p);
    assert_eq!(ev.by_tag().len(), 25);
    f.finish();
}

#[test]
fn deleting_the_stream_completes_in_flight_messages_with_closed() {
    let (f, ev, p) = held_sent("prod-deleted", 30);
    f.rt.block_on(f.env.delete_stream(&f.stream)).unwrap();
    let all = ev.wait_for(30, WAIT);
    assert!(all.iter().all(|c| c.status == ConfirmStatus::Closed));
    settle(&p);
    assert_eq!(p.stats().in_flight, 0);
    let r = p.send(&OutgoingMessage::new(b"x"), None);
    match r {
        Err(ClientError::Closed(why)) => assert!(why.contains(&f.stream), "{why}"),
        r => panic!("expected Closed, got {r:?}"),
    }
    f.close(&p);
    assert_eq!(ev.by_tag().len(), 30);
    f.finish();
}

#[test]
fn flush_waits_until_nothing_is_in_flight() {
    let f = Fixture::new("client_producer", "prod-flush");
    let (ev, p) = f.collected(ProducerConfig {
        batch_size: 1000,
        ..held()
    });
    let body = [1u8; 64];
    send_tagged(&p, &body, 0..500);
    assert_eq!(p.stats().in_flight, 500, "nothing sent yet");
    assert!(ev.all().is_empty());
    p.flush(WAIT).unwrap();
    // Every callback has returned by the time flush does.
    assert_eq!(p.stats().in_flight, 0);
    assert_eq!(ev.all().len(), 500);
    assert_eq!(p.stats().confirmed, 500);
    f.close(&p);
    f.finish();
}

#[test]
fn concurrent_senders_share_one_producer() {
    const THREADS: usize = 4;
    const EACH: usize = 2_500;
    let f = Fixture::new("client_producer", "prod-threads");
    let ev = Collector::new();
    let p = Arc::new(f.producer(ProducerConfig::default(), &ev));
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let p = p.clone();
            std::thread::spawn(move || {
                for i in 0..EACH {
                    let body = payload(&format!("t{t}"), i);
                    p.send(&OutgoingMessage::new(&body).tag(t * EACH + i), Some(WAIT))
                        .unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    p.flush(WAIT).unwrap();
    let by_tag = ev.by_tag();
    assert_eq!(by_tag.len(), THREADS * EACH);
    let mut ids: Vec<u64> = by_tag.values().map(|c| c.publishing_id).collect();
    ids.sort_unstable();
    assert_eq!(ids, (0..(THREADS * EACH) as u64).collect::<Vec<_>>());
    // Each thread's messages are stored in its own order.
    let back = f.read(THREADS * EACH);
    for t in 0..THREADS {
        let prefix = format!("t{t}-");
        let mine: Vec<Vec<u8>> = back
            .bodies()
            .into_iter()
            .filter(|b| b.starts_with(prefix.as_bytes()))
            .collect();
        let want: Vec<Vec<u8>> = (0..EACH).map(|i| payload(&format!("t{t}"), i)).collect();
        assert_eq!(mine, want);
    }
    f.close(&p);
    f.finish();
}

/// Informational: prints the publish rate (no assertion on timing). Tunable for experiments:
/// `RMQS_BENCH_MESSAGES`, `RMQS_BENCH_BATCH_SIZE`, `RMQS_BENCH_MAX_IN_FLIGHT`,
/// `RMQS_BENCH_BODY` (bytes).
#[test]
fn publish_throughput() {
    // Count only: storing half a million outcomes would dominate.
    struct Count(AtomicUsize);
    impl ProducerEvents for Count {
        fn confirms(&self, batch: &[Confirm]) {
            self.0.fetch_add(batch.len(), Ordering::Relaxed);
        }
    }

    let n = support::knob("RMQS_BENCH_MESSAGES", 500_000);
    let config = ProducerConfig {
        batch_size: support::knob("RMQS_BENCH_BATCH_SIZE", DEFAULT_BATCH_SIZE),
        max_in_flight: Some(support::knob(
            "RMQS_BENCH_MAX_IN_FLIGHT",
            DEFAULT_MAX_IN_FLIGHT,
        )),
        ..Default::default()
    };
    let body = vec![0x5au8; support::knob("RMQS_BENCH_BODY", 100)];
    let f = Fixture::new("client_producer", "prod-rate");
    let count = Arc::new(Count(AtomicUsize::new(0)));
    let events: Arc<dyn ProducerEvents> = count.clone();
    let p =
        f.rt.block_on(Producer::new(&f.env, &f.stream, config.clone(), events))
            .unwrap();
    let start = Instant::now();
    for i in 0..n {
        p.send(&OutgoingMessage::new(&body).tag(i), Some(WAIT))
            .unwrap();
    }
    let sent = start.elapsed();
    p.flush(WAIT).unwrap();
    let done = start.elapsed();
    assert_eq!(p.stats().confirmed, n as u64);
    assert_eq!(count.0.load(Ordering::Relaxed), n, "every outcome reported");
    println!(
        "publish throughput: {n} x {}-byte AMQP messages, one thread, batch_size {}, \
         max_in_flight {}: accepted in {sent:?}, all confirmed after {done:?} = {:.0} msg/s \
         ({} build)",
        body.len(),
        config.batch_size,
        config.in_flight_cap(),
        n as f64 / done.as_secs_f64(),
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        }
    );
    f.close(&p);
    f.finish();
}

/// Records when its close started and ended; a producer-kind one takes `takes` to close.
struct Recorder {
    producer: bool,
    takes: Duration,
    log: Arc<Mutex<Vec<(&'static str, bool)>>>,
}

impl rmqstream::client::environment::Child for Recorder {
    fn close_for_environment(
        &self,
        timeout: Option<Duration>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>> {
        Box::pin(async move {
            assert!(timeout.is_some_and(|t| t <= WAIT), "{timeout:?}");
            self.log.lock().unwrap().push(("start", self.producer));
            tokio::time::sleep(self.takes).await;
            self.log.lock().unwrap().push(("end", self.producer));
        })
    }
    fn is_producer(&self) -> bool {
        self.producer
    }
}

/// The environment owns what it is given: `close_within` closes the producers first (a real
/// one sends its partial frame and waits for its confirms), all of them before any consumer,
/// then the connections; what was dropped meanwhile is skipped.
#[test]
fn environment_closes_its_producers_then_its_consumers() {
    let f = Fixture::new("client_producer", "env-children");
    let ev = Collector::new();
    let p = Arc::new(f.producer(
        ProducerConfig {
            batch_delay: Duration::from_secs(600),
            ..Default::default()
        },
        &ev,
    ));
    f.env.adopt(&p);
    let log = Arc::new(Mutex::new(Vec::new()));
    let child = |producer, ms| {
        Arc::new(Recorder {
            producer,
            takes: Duration::from_millis(ms),
            log: log.clone(),
        })
    };
    let (slow, fast, consumer) = (child(true, 300), child(true, 10), child(false, 0));
    let dropped = child(false, 0);
    for c in [&consumer, &slow, &dropped, &fast] {
        f.env.adopt(c);
    }
    drop(dropped);
    send_tagged(&p, b"x", 0..20);
    f.rt.block_on(f.env.close_within(Some(WAIT)));
    // the partial frame went out and was confirmed before the producer closed
    let by_tag = ev.by_tag();
    assert_eq!(by_tag.len(), 20);
    assert!(by_tag.values().all(|c| c.status.is_confirmed()));
    assert!(matches!(
        p.send(&OutgoingMessage::new(b"x"), None),
        Err(ClientError::Closed(_))
    ));
    let log = log.lock().unwrap().clone();
    let consumer_start = log.iter().position(|e| *e == ("start", false)).unwrap();
    assert_eq!(
        log.iter().filter(|e| e.0 == "end" && e.1).count(),
        2,
        "{log:?}"
    );
    assert!(
        log[..consumer_start]
            .iter()
            .filter(|e| e.0 == "end")
            .count()
            == 2,
        "a consumer closed before the producers were done: {log:?}"
    );
    assert_eq!(log.len(), 6, "the dropped child closed: {log:?}");
    assert!(!f.env.is_open());
    // the environment is closed: delete the stream over another one
    let other = Fixture::new("client_producer", "env-children-cleanup");
    other.rt.block_on(async {
        other.env.delete_stream(&f.stream).await.unwrap();
    });
    other.finish();
}

/// A partial frame goes out once `batch_delay` has passed since its first message, also when
/// it began while the housekeeping task was already waiting for an earlier frame's due time
/// (that frame then left full, by `batch_size`): no later send or flush is needed. (The
/// bounds checked are only lower ones: the frames lingered; that they leave at all is what
/// `wait_for` checks.)
#[test]
fn partial_frames_go_out_after_batch_delay_one_after_another() {
    const LINGER: Duration = Duration::from_millis(300);
    let f = Fixture::new("client_producer", "prod-linger");
    let ev = Collector::new();
    let p = f.producer(
        ProducerConfig {
            batch_size: 2,
            batch_delay: LINGER,
            ..Default::default()
        },
        &ev,
    );
    // frame A: 1 message, the housekeeping task now waits for A's due time
    p.send(&OutgoingMessage::new(b"a0").tag(0), None).unwrap();
    std::thread::sleep(LINGER / 6);
    // A fills (batch_size 2) and leaves at once
    p.send(&OutgoingMessage::new(b"a1").tag(1), None).unwrap();
    assert_eq!(ev.wait_for(2, WAIT).len(), 2);
    // frame B begins while that wait for A's due time is still on
    let b0 = Instant::now();
    p.send(&OutgoingMessage::new(b"b0").tag(2), None).unwrap();
    let all = ev.wait_for(3, WAIT);
    let waited = b0.elapsed();
    assert!(all.iter().all(|c| c.status.is_confirmed()));
    assert!(
        waited >= LINGER,
        "B lingered {LINGER:?} after its first message: {waited:?}"
    );
    // and again from idle: frame C alone
    let c0 = Instant::now();
    p.send(&OutgoingMessage::new(b"c0").tag(3), None).unwrap();
    ev.wait_for(4, WAIT);
    assert!(c0.elapsed() >= LINGER);
    assert_eq!(f.read(4).records.len(), 4);
    f.close(&p);
    f.finish();
}
