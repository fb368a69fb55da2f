//! The async core's super stream producer against the real brokers of `scripts/broker`:
//! `RMQS_TEST_URI` (default `rabbitmq-stream://guest:guest@localhost:5552/%2f`, RabbitMQ 4.x)
//! and `RMQS_TEST_LEGACY_URI` (RabbitMQ 3.10.8; skipped with a notice when unset).
//!
//! Async setup runs in `block_on`; the super producer's synchronous calls are made from the
//! test thread, outside any runtime. What reached each partition is read back with the
//! consumer core (`Consumer`, from `OffsetSpec::First`); every message's body is its routing
//! key, so each record says where it should have landed.
//!
//! One test adds a partition to a live super stream: the stream protocol has no command for
//! it (a super stream is a direct exchange with one binding per partition), so the binding is
//! added with `scripts/broker ctl eval` (`rabbit_binding:add`, as the broker's own
//! `rabbit_stream_manager` does); that test is skipped with a notice when the script cannot
//! reach the node (a broker not started by `scripts/broker`).

mod support;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};
use support::alloc::{CountingAlloc, allocations};
use support::{unique, uri};

use rmqstream::client::super_producer::{key_extractor, route_partition};
use rmqstream::client::{
    ClientError, Confirm, ConfirmStatus, OutgoingMessage, ProducerConfig, Routing, SuperProducer,
    SuperProducerConfig, SuperProducerEvents,
};

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

const WAIT: Duration = Duration::from_secs(30);

/// One confirm as the super producer reported it.
#[derive(Debug, Clone)]
struct Seen {
    partition: usize,
    stream: String,
    confirm: Confirm,
}

/// Collects every outcome; lets the test wait for a count.
#[derive(Default)]
struct Confirms {
    seen: Mutex<Vec<Seen>>,
    cv: Condvar,
}

impl SuperProducerEvents for Confirms {
    fn confirms(&self, partition: usize, stream: &str, batch: &[Confirm]) {
        assert!(!batch.is_empty(), "empty confirm batch");
        let mut s = self.seen.lock().unwrap();
        s.extend(batch.iter().map(|c| Seen {
            partition,
            stream: stream.to_string(),
            confirm: *c,
        }));
        self.cv.notify_all();
    }
}

impl Confirms {
    fn wait_for(&self, n: usize) -> Vec<Seen> {
        let deadline = Instant::now() + WAIT;
        let mut s = self.seen.lock().unwrap();
        while s.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "{} confirms of {n} after {WAIT:?}",
                s.len()
            );
            s = self.cv.wait_timeout(s, left).unwrap().0;
        }
        s.clone()
    }

    fn take(&self) -> Vec<Seen> {
        std::mem::take(&mut *self.seen.lock().unwrap())
    }
}

support::client::super_fixture!(2, "client_super_producer");

impl Fixture {
    fn producer(
        &self,
        super_stream: &str,
        config: SuperProducerConfig,
        events: &Arc<Confirms>,
    ) -> SuperProducer {
        let p = SuperProducer::new(self.handle(), super_stream, config, events.clone());
        self.rt.block_on(p).unwrap()
    }

    fn close(&self, p: &SuperProducer) {
        self.rt.block_on(p.close(WAIT)).unwrap();
    }

    /// Reads `n` records of `stream` from its start (and checks no more follow shortly).
    fn read(&self, stream: &str, n: usize) -> Vec<Vec<u8>> {
        let records = self.read_plain(stream, n, Duration::from_millis(300));
        records.into_iter().map(|(_, body)| body).collect()
    }

    fn sequence(&self, name: &str, stream: &str) -> u64 {
        self.rt
            .block_on(self.env.query_publisher_sequence(name, stream))
            .unwrap()
    }
}

fn text(b: &[u8]) -> &str {
    std::str::from_utf8(b).unwrap()
}

/// Every confirm is `Confirmed`, names the partition by index and stream, and its tag's key
/// routes there by `expect`; one confirm per tag.
fn check_confirms(
    seen: &[Seen],
    parts: &[String],
    keys: &[String],
    expect: impl Fn(&str) -> usize,
) {
    let mut tags = vec![0u32; keys.len()];
    for s in seen {
        assert_eq!(s.confirm.status, ConfirmStatus::Confirmed, "{s:?}");
        let key = &keys[s.confirm.tag];
        assert_eq!(
            s.partition,
            expect(key),
            "partition of the confirm of {key}"
        );
        assert_eq!(
            s.stream, parts[s.partition],
            "stream of the confirm of {key}"
        );
        tags[s.confirm.tag] += 1;
    }
    assert!(tags.iter().all(|&n| n == 1), "one confirm per message");
}

// ---------------------------------------------------------------------------------------------

/// 3000 keys over 3 partitions by hash: each message's partition (send result, confirm, and
/// where the broker stored it) is `route_partition(key, 3)`.
#[test]
fn hash_routing_puts_each_of_3000_keys_on_the_murmur3_partition() {
    let f = Fixture::new("sp-hash");
    let (ss, parts) = f.numbered("sp-hash", 3);
    let events = Arc::new(Confirms::default());
    let p = f.producer(&ss, SuperProducerConfig::default(), &events);
    assert_eq!(p.partitions(), parts);
    assert_eq!(p.stats().published, 0, "lazy: no partition producer yet");

    const N: usize = 3000;
    let keys: Vec<String> = (0..N).map(|i| format!("key-{i}")).collect();
    let mut per_partition = [0usize; 3];
    let mut last_id = [None::<u64>; 3];
    for (i, key) in keys.iter().enumerate() {
        let msg = OutgoingMessage::new(key.as_bytes()).tag(i);
        let (partition, id) = p.send(&msg, Some(key), Some(WAIT)).unwrap();
        assert_eq!(partition, route_partition(key, 3), "{key}");
        // Ids are per partition, consecutive from 0 for an anonymous producer.
        assert_eq!(id, last_id[partition].map_or(0, |l| l + 1), "{key}");
        last_id[partition] = Some(id);
        per_partition[partition] += 1;
    }
    assert!(per_partition.iter().all(|&n| n > 800), "{per_partition:?}");
    p.flush(WAIT).unwrap();
    let seen = events.wait_for(N);
    check_confirms(&seen, &parts, &keys, |k| route_partition(k, 3));
    let stats = p.stats();
    assert_eq!(
        (stats.published, stats.confirmed, stats.in_flight),
        (N as u64, N as u64, 0)
    );

    let mut stored = 0;
    for (i, part) in parts.iter().enumerate() {
        for body in f.read(part, per_partition[i]) {
            assert_eq!(
                route_partition(text(&body), 3),
                i,
                "{} stored on {part}",
                text(&body)
            );
            stored += 1;
        }
    }
    assert_eq!(stored, N);
    f.close(&p);
    f.finish();
}

/// The official clients' reference routing table (Java `HashRoutingStrategyTest`, Go and
/// .NET super stream tests: partitions invoices-01..03), through a real super stream.
#[test]
fn hash_routing_agrees_with_the_official_clients_reference_table() {
    let f = Fixture::new("sp-table");
    let (ss, parts) = f.super_stream(
        "sp-table",
        &["invoices-01", "invoices-02", "invoices-03"],
        &["a", "b", "c"],
    );
    let table = [
        ("hello1", "invoices-02"),
        ("hello2", "invoices-01"),
        ("hello3", "invoices-02"),
        ("hello4", "invoices-03"),
        ("hello5", "invoices-01"),
        ("hello6", "invoices-03"),
        ("hello7", "invoices-01"),
        ("hello8", "invoices-02"),
        ("hello9", "invoices-01"),
        ("hello10", "invoices-03"),
        ("hello88", "invoices-02"),
    ];
    let events = Arc::new(Confirms::default());
    let p = f.producer(&ss, SuperProducerConfig::default(), &events);
    let mut expected: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (i, (key, want)) in table.iter().enumerate() {
        let (partition, _) = p
            .send(
                &OutgoingMessage::new(key.as_bytes()).tag(i),
                Some(key),
                Some(WAIT),
            )
            .unwrap();
        assert_eq!(parts[partition], format!("{ss}-{want}"), "{key}");
        expected
            .entry(parts[partition].clone())
            .or_default()
            .push(key.to_string());
    }
    p.flush(WAIT).unwrap();
    let keys: Vec<String> = table.iter().map(|(k, _)| k.to_string()).collect();
    let seen = events.wait_for(table.len());
    check_confirms(&seen, &parts, &keys, |k| route_partition(k, 3));
    for (stream, keys) in &expected {
        let got: Vec<String> = f
            .read(stream, keys.len())
            .iter()
            .map(|b| text(b).to_string())
            .collect();
        assert_eq!(&got, keys, "{stream}");
    }
    f.close(&p);
    f.finish();
}

/// Key routing follows the bindings (Route, cached); a key bound to nothing is refused at
/// the send, gets no confirm, and sends after it go on; the key extractor supplies keys.
#[test]
fn key_routing_follows_the_bindings_and_refuses_an_unroutable_key() {
    let f = Fixture::new("sp-key");
    let (ss, parts) = f.super_stream("sp-key", &["eu", "us", "ap"], &["eu", "us", "ap"]);
    let events = Arc::new(Confirms::default());
    // Bodies are "<region>:<n>"; the extractor takes the region, borrowed from the body.
    let config = SuperProducerConfig {
        routing: Routing::Key,
        key_extractor: Some(key_extractor(|m, _| {
            let key = std::str::from_utf8(m.body).ok();
            Ok(key.and_then(|s| s.split_once(':')).map(|(k, _)| k))
        })),
        ..Default::default()
    };
    let p = f.producer(&ss, config, &events);
    let regions = ["eu", "us", "ap"];
    let mut bodies = Vec::new();
    for i in 0..90 {
        bodies.push(format!("{}:{i}", regions[i % 3]));
    }
    let keys: Vec<String> = bodies
        .iter()
        .map(|b| b.split_once(':').unwrap().0.to_string())
        .collect();
    for (i, b) in bodies.iter().enumerate() {
        let msg = OutgoingMessage::new(b.as_bytes()).tag(i);
        // Half with an explicit key, half through the extractor.
        let key = (i % 2 == 0).then_some(keys[i].as_str());
        let (partition, _) = p.send(&msg, key, Some(WAIT)).unwrap();
        assert_eq!(partition, i % 3, "{b}");
        if i == 40 {
            for bad in ["mars", "EU", ""] {
                match p.send(
                    &OutgoingMessage::new(b"mars:0").tag(usize::MAX),
                    Some(bad),
                    None,
                ) {
                    Err(ClientError::InvalidArgument(m)) => {
                        assert!(m.starts_with("no route"), "{m}")
                    }
                    other => panic!("key {bad:?} gave {other:?}"),
                }
            }
            // Through the extractor too, and through `route`.
            let e = p
                .send(&OutgoingMessage::new(b"mars:1"), None, None)
                .unwrap_err();
            assert!(e.to_string().contains("no route"), "{e}");
            assert!(p.route(&OutgoingMessage::new(b"mars:2"), None).is_err());
            assert_eq!(
                p.route(&OutgoingMessage::new(b"ap:2"), None).unwrap(),
                vec![2]
            );
            // No key at all.
            let e = p
                .send(&OutgoingMessage::new(b"nokey"), None, None)
                .unwrap_err();
            assert!(matches!(e, ClientError::InvalidArgument(_)), "{e}");
        }
    }
    p.flush(WAIT).unwrap();
    let seen = events.wait_for(bodies.len());
    assert_eq!(seen.len(), bodies.len(), "refused messages got no confirm");
    check_confirms(&seen, &parts, &keys, |k| {
        regions.iter().position(|r| *r == k).unwrap()
    });
    for (i, part) in parts.iter().enumerate() {
        let got = f.read(part, 30);
        assert!(
            got.iter().all(|b| text(b).starts_with(regions[i])),
            "{part}"
        );
    }
    f.close(&p);
    f.finish();
}

/// A key bound to two partitions (key routing) and a custom function choosing several:
/// a copy per partition, each confirmed with the same tag and its own partition.
#[test]
fn several_destinations_get_a_copy_each() {
    let f = Fixture::new("sp-multi");
    let (ss, parts) = f.super_stream("sp-multi", &["a", "b", "c"], &["x", "x", "y"]);
    let events = Arc::new(Confirms::default());
    let p = f.producer(
        &ss,
        SuperProducerConfig {
            routing: Routing::Key,
            ..Default::default()
        },
        &events,
    );
    assert_eq!(
        p.send(&OutgoingMessage::new(b"x").tag(1), Some("x"), None)
            .unwrap()
            .0,
        0
    );
    assert_eq!(
        p.send(&OutgoingMessage::new(b"y").tag(2), Some("y"), None)
            .unwrap()
            .0,
        2
    );
    p.flush(WAIT).unwrap();
    let mut seen: Vec<(usize, usize)> = events
        .wait_for(3)
        .iter()
        .map(|s| (s.confirm.tag, s.partition))
        .collect();
    seen.sort();
    assert_eq!(seen, vec![(1, 0), (1, 1), (2, 2)]);
    f.close(&p);
    events.take();

    // Custom: tag % 3, plus every partition for tag 99 and a refusal for tag 98.
    let custom = Routing::custom(
        |m: &OutgoingMessage<'_>, _key: &str, parts: &[String], out: &mut Vec<usize>| match m.tag {
            99 => out.extend(0..parts.len()),
            98 => {}
            t => out.push(t % parts.len()),
        },
    );
    let p = f.producer(
        &ss,
        SuperProducerConfig {
            routing: custom,
            ..Default::default()
        },
        &events,
    );
    let msgs: Vec<OutgoingMessage<'_>> = (0..6)
        .map(|t| OutgoingMessage::new(b"c").tag(t))
        .chain([OutgoingMessage::new(b"all").tag(99)])
        .collect();
    assert_eq!(p.send_batch(&msgs, None, Some(WAIT)).unwrap(), 7);
    let e = p
        .send(&OutgoingMessage::new(b"none").tag(98), None, None)
        .unwrap_err();
    assert!(e.to_string().contains("no route"), "{e}");
    // A refused message stops a batch: the prefix before it is accepted.
    let msgs = [
        OutgoingMessage::new(b"c").tag(0),
        OutgoingMessage::new(b"none").tag(98),
        OutgoingMessage::new(b"c").tag(1),
    ];
    assert_eq!(p.send_batch(&msgs, None, Some(WAIT)).unwrap(), 1);
    p.flush(WAIT).unwrap();
    let seen = events.wait_for(6 + 3 + 1);
    assert_eq!(seen.len(), 10);
    for s in &seen {
        assert_eq!(s.confirm.status, ConfirmStatus::Confirmed);
        if s.confirm.tag != 99 {
            assert_eq!(s.partition, s.confirm.tag % 3);
        }
        assert_eq!(s.stream, parts[s.partition]);
    }
    assert_eq!(seen.iter().filter(|s| s.confirm.tag == 99).count(), 3);
    // a: "x"(key routing) + tags 0, 3, 99, 0 ; b: "x" + 1, 4, 99 ; c: "y" + 2, 5, 99
    assert_eq!(f.read(&parts[0], 5).len(), 5);
    assert_eq!(f.read(&parts[1], 4).len(), 4);
    assert_eq!(f.read(&parts[2], 4).len(), 4);
    f.close(&p);
    f.finish();
}

/// `send_batch` with keys: runs per partition, prefix semantics, confirms per partition.
#[test]
fn send_batch_routes_each_message() {
    let f = Fixture::new("sp-batch");
    let (ss, parts) = f.numbered("sp-batch", 3);
    let events = Arc::new(Confirms::default());
    let p = f.producer(&ss, SuperProducerConfig::default(), &events);
    let keys: Vec<String> = (0..1000).map(|i| format!("k{}", i / 7)).collect();
    let key_refs: Vec<Option<&str>> = keys.iter().map(|k| Some(k.as_str())).collect();
    let msgs: Vec<OutgoingMessage<'_>> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| OutgoingMessage::new(k.as_bytes()).tag(i))
        .collect();
    assert!(matches!(
        p.send_batch(&msgs, Some(&key_refs[..10]), None),
        Err(ClientError::InvalidArgument(_))
    ));
    assert_eq!(
        p.send_batch(&msgs, Some(&key_refs), Some(WAIT)).unwrap(),
        1000
    );
    p.flush(WAIT).unwrap();
    let seen = events.wait_for(1000);
    check_confirms(&seen, &parts, &keys, |k| route_partition(k, 3));
    // Per partition, in send order.
    for (i, part) in parts.iter().enumerate() {
        let want: Vec<&str> = keys
            .iter()
            .filter(|k| route_partition(k, 3) == i)
            .map(String::as_str)
            .collect();
        let got = f.read(part, want.len());
        let got: Vec<&str> = got.iter().map(|b| text(b)).collect();
        assert_eq!(got, want, "{part}");
    }
    f.close(&p);
    f.finish();
}

/// A named super producer names every partition producer the same (as Java and .NET): the
/// broker keeps a sequence per partition under that name, a resend of the same ids is
/// dropped on each partition, and a new instance continues after the kept ids.
#[test]
fn named_super_producer_deduplicates_per_partition() {
    let f = Fixture::new("sp-dedup");
    let (ss, parts) = f.numbered("sp-dedup", 3);
    let name = unique("sp-app");
    let config = || SuperProducerConfig {
        name: Some(name.clone()),
        ..Default::default()
    };
    let events = Arc::new(Confirms::default());
    let keys: Vec<String> = (0..60).map(|i| format!("order-{i}")).collect();

    let p = f.producer(&ss, config(), &events);
    assert_eq!(p.name(), Some(name.as_str()));
    let mut sent = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        let (partition, id) = p
            .send(
                &OutgoingMessage::new(k.as_bytes()).tag(i),
                Some(k),
                Some(WAIT),
            )
            .unwrap();
        sent.push((partition, id));
    }
    p.flush(WAIT).unwrap();
    f.close(&p);
    check_confirms(&events.wait_for(60), &parts, &keys, |k| {
        route_partition(k, 3)
    });
    events.take();
    let mut last = [0u64; 3];
    let mut count = [0usize; 3];
    for &(partition, id) in &sent {
        last[partition] = last[partition].max(id);
        count[partition] += 1;
    }
    for (i, part) in parts.iter().enumerate() {
        // A fresh name starts at id 1 on each partition (see Producer::new).
        assert_eq!(last[i], count[i] as u64, "{part}");
        assert_eq!(
            f.sequence(&name, part),
            last[i],
            "sequence of {name} on {part}"
        );
    }

    // A second instance resends everything with the original ids: confirmed, not stored.
    let p = f.producer(&ss, config(), &events);
    for (i, k) in keys.iter().enumerate() {
        let msg = OutgoingMessage::new(k.as_bytes())
            .tag(i)
            .publishing_id(sent[i].1);
        assert_eq!(p.send(&msg, Some(k), Some(WAIT)).unwrap(), sent[i]);
    }
    // Then new messages continue after the kept ids, on each partition.
    let more: Vec<String> = (0..30).map(|i| format!("late-{i}")).collect();
    for (i, k) in more.iter().enumerate() {
        let (partition, id) = p
            .send(
                &OutgoingMessage::new(k.as_bytes()).tag(100 + i),
                Some(k),
                Some(WAIT),
            )
            .unwrap();
        assert!(
            id > last[partition],
            "{k}: id {id} after {}",
            last[partition]
        );
        last[partition] = id;
        count[partition] += 1;
    }
    p.flush(WAIT).unwrap();
    let seen = events.wait_for(90);
    assert!(seen.iter().all(|s| s.confirm.status.is_confirmed()));
    f.close(&p);
    for (i, part) in parts.iter().enumerate() {
        assert_eq!(f.sequence(&name, part), last[i], "{part}");
        let got = f.read(part, count[i]);
        let mut uniq: Vec<&[u8]> = got.iter().map(Vec::as_slice).collect();
        uniq.sort();
        uniq.dedup();
        assert_eq!(uniq.len(), count[i], "one copy of each message on {part}");
    }
    f.finish();
}

/// Routing and sending allocate nothing per message once warm (partition producers created,
/// keys looked up): whatever allocations remain come from the frames (a buffer reserved now
/// and then), far fewer than one per message.
#[test]
fn send_paths_do_not_allocate_per_message() {
    let f = Fixture::new("sp-alloc");
    let (ss, _parts) = f.numbered("sp-alloc", 3);
    let events = Arc::new(Confirms::default());
    let keys: Vec<String> = (0..3000).map(|i| (i % 3).to_string()).collect();
    let routings = [
        ("hash", Routing::Hash),
        ("key", Routing::Key),
        (
            "custom",
            Routing::custom(
                |m: &OutgoingMessage<'_>, _: &str, p: &[String], out: &mut Vec<usize>| {
                    out.push(m.tag % p.len())
                },
            ),
        ),
    ];
    for (what, routing) in routings {
        let p = f.producer(
            &ss,
            SuperProducerConfig {
                routing,
                eager: true,
                ..Default::default()
            },
            &events,
        );
        let send = |i: usize| {
            let msg = OutgoingMessage::new(b"payload").tag(i);
            p.send(&msg, Some(&keys[i]), Some(WAIT)).unwrap();
        };
        for i in 0..300 {
            send(i);
        }
        let before = allocations();
        for i in 0..keys.len() {
            send(i);
        }
        let n = allocations() - before;
        eprintln!("{what} routing: {n} allocations for {} sends", keys.len());
        assert!(
            n < keys.len() as u64 / 20,
            "{what} routing: {n} allocations"
        );
        f.close(&p);
        events.take();
    }
    f.finish();
}

/// A partition added to a live super stream (a new stream bound to its exchange, as the
/// broker's own `add_super_stream_binding` does) is not used until the application refreshes;
/// after `refresh_partitions` hash routing spreads keys over the new count, the new partition
/// gets its producer and its confirms carry its index.
#[test]
fn refresh_picks_up_a_partition_added_to_the_super_stream() {
    if !uri().contains("localhost:5552") {
        eprintln!("RMQS_TEST_URI is not the scripts/broker node: refresh test skipped");
        return;
    }
    let f = Fixture::new("sp-refresh");
    let (ss, mut parts) = f.numbered("sp-refresh", 2);
    let events = Arc::new(Confirms::default());
    let p = f.producer(&ss, SuperProducerConfig::default(), &events);
    let keys: Vec<String> = (0..300).map(|i| format!("key-{i}")).collect();
    let send_all = |n: usize, tag0: usize| {
        let mut per = vec![0usize; n];
        for (i, k) in keys.iter().enumerate() {
            let (partition, _) = p
                .send(
                    &OutgoingMessage::new(k.as_bytes()).tag(tag0 + i),
                    Some(k),
                    Some(WAIT),
                )
                .unwrap();
            assert_eq!(partition, route_partition(k, n), "{k}");
            per[partition] += 1;
        }
        p.flush(WAIT).unwrap();
        per
    };
    let before = send_all(2, 0);

    // Add partition "<ss>-2" with binding key "2" and order 2.
    let Some(new_part) = f.add_partition(&ss, "refresh test") else {
        f.close(&p);
        f.finish();
        return;
    };
    parts.push(new_part.clone());
    assert_eq!(f.rt.block_on(f.env.partitions(&ss)).unwrap(), parts);

    // Not picked up silently: still two partitions until the application asks.
    assert_eq!(p.partition_count(), 2);
    let again = send_all(2, 1000);
    assert_eq!(again, before);
    assert_eq!(f.rt.block_on(p.refresh_partitions()).unwrap(), parts);
    assert_eq!(p.partitions(), parts);
    let after = send_all(3, 2000);
    assert!(after[2] > 50, "{after:?}");

    let seen = events.wait_for(900);
    for s in &seen {
        assert!(s.confirm.status.is_confirmed());
        let k = &keys[s.confirm.tag % 1000];
        let n = if s.confirm.tag >= 2000 { 3 } else { 2 };
        assert_eq!(s.partition, route_partition(k, n), "{k}");
        assert_eq!(s.stream, parts[s.partition]);
    }
    for (i, part) in parts.iter().enumerate() {
        let n = after[i] + if i < 2 { before[i] * 2 } else { 0 };
        let got = f.read(part, n);
        let on_new = got.len() - if i < 2 { before[i] * 2 } else { 0 };
        assert!(
            got[got.len() - on_new..]
                .iter()
                .all(|b| route_partition(text(b), 3) == i),
            "{part}"
        );
    }
    f.close(&p);
    // The broker deletes bound streams with the super stream only if it created them: the
    // extra stream is deleted by `finish`.
    f.finish();
}

/// The super stream deleted and created again with more partitions: the partition producers
/// lost with their streams are replaced by the next send, and refresh brings the new one in.
#[test]
fn refresh_after_the_super_stream_is_recreated_with_more_partitions() {
    let f = Fixture::new("sp-recreate");
    let (ss, parts) = f.numbered("sp-recreate", 2);
    let events = Arc::new(Confirms::default());
    let p = f.producer(
        &ss,
        SuperProducerConfig {
            eager: true,
            ..Default::default()
        },
        &events,
    );
    assert_eq!(p.partitions(), parts);
    let keys: Vec<String> = (0..100).map(|i| format!("key-{i}")).collect();
    for (i, k) in keys.iter().enumerate() {
        p.send(
            &OutgoingMessage::new(k.as_bytes()).tag(i),
            Some(k),
            Some(WAIT),
        )
        .unwrap();
    }
    p.flush(WAIT).unwrap();
    events.wait_for(100);
    events.take();

    f.rt.block_on(f.env.delete_super_stream(&ss)).unwrap();
    let parts3: Vec<String> = (0..3).map(|i| format!("{ss}-{i}")).collect();
    let keys3: Vec<String> = (0..3).map(|i| i.to_string()).collect();
    f.rt.block_on(f.env.create_super_stream(&ss, &parts3, &keys3, &[]))
        .unwrap();
    assert_eq!(f.rt.block_on(p.refresh_partitions()).unwrap(), parts3);
    // The old partition producers learn of the deletion asynchronously (a Closed status for
    // what they had in flight, then they stop accepting); the next send routed to a lost one
    // replaces it. A send may still reach a producer that is going away: it fails with
    // Closed, or is accepted and then completes with a status other than Confirmed. Resend
    // such messages until each key is confirmed once.
    let deadline = Instant::now() + WAIT;
    let mut confirmed: HashMap<usize, usize> = HashMap::new();
    let (mut refused, mut lost) = (0, 0);
    while confirmed.len() < keys.len() {
        assert!(Instant::now() < deadline, "sends kept failing");
        let mut sent = 0;
        for (i, k) in keys.iter().enumerate() {
            if confirmed.contains_key(&i) {
                continue;
            }
            match p.send(
                &OutgoingMessage::new(k.as_bytes()).tag(i),
                Some(k),
                Some(WAIT),
            ) {
                Ok((partition, _)) => {
                    assert_eq!(partition, route_partition(k, 3));
                    sent += 1;
                }
                Err(ClientError::Closed(_)) => {
                    refused += 1;
                    std::thread::sleep(Duration::from_millis(20))
                }
                Err(e) => panic!("{k}: {e}"),
            }
        }
        p.flush(WAIT).unwrap();
        for s in events.wait_for(sent) {
            if s.confirm.status.is_confirmed() {
                assert_eq!(s.stream, parts3[s.partition]);
                assert!(confirmed.insert(s.confirm.tag, s.partition).is_none());
            } else {
                lost += 1;
            }
        }
        events.take();
    }
    eprintln!("while the old producers went: {refused} sends refused, {lost} not confirmed");
    let mut per = [0usize; 3];
    for &partition in confirmed.values() {
        per[partition] += 1;
    }
    assert!(per.iter().all(|&n| n > 10), "{per:?}");
    for (i, part) in parts3.iter().enumerate() {
        let got = f.read(part, per[i]);
        assert!(
            got.iter().all(|b| route_partition(text(b), 3) == i),
            "{part}"
        );
    }
    f.close(&p);
    f.finish();
}

/// Sends never call `Handle::block_on` inside a runtime: a send needing a partition producer
/// there fails cleanly; after `open_partitions` it works from async code.
#[test]
fn sends_on_a_runtime_thread_need_open_partitions() {
    let f = Fixture::new("sp-async");
    let (ss, _parts) = f.numbered("sp-async", 2);
    let events = Arc::new(Confirms::default());
    let p = f.producer(&ss, SuperProducerConfig::default(), &events);
    f.rt.block_on(async {
        let e = p
            .send(&OutgoingMessage::new(b"a"), Some("a"), None)
            .unwrap_err();
        assert!(
            matches!(e, ClientError::InvalidArgument(ref m) if m.contains("Tokio")),
            "{e}"
        );
        p.open_partitions().await.unwrap();
        for i in 0..20 {
            let k = format!("k{i}");
            p.send(&OutgoingMessage::new(k.as_bytes()).tag(i), Some(&k), None)
                .unwrap();
        }
    });
    p.flush(WAIT).unwrap();
    assert_eq!(events.wait_for(20).len(), 20);
    f.close(&p);
    // Closed: sends and refresh fail, close is idempotent.
    let e = p
        .send(&OutgoingMessage::new(b"a"), Some("a"), None)
        .unwrap_err();
    assert!(matches!(e, ClientError::Closed(_)), "{e}");
    assert!(matches!(
        f.rt.block_on(p.refresh_partitions()),
        Err(ClientError::Closed(_))
    ));
    f.close(&p);
    f.finish();
}

/// Creation checks: unknown super stream, conflicting names, template config.
#[test]
fn creation_errors() {
    let f = Fixture::new("sp-errors");
    let events: Arc<dyn SuperProducerEvents> = Arc::new(Confirms::default());
    let missing = unique("sp-missing");
    let r = f.rt.block_on(SuperProducer::new(
        f.handle(),
        &missing,
        SuperProducerConfig::default(),
        events.clone(),
    ));
    match r {
        Err(ClientError::Server { .. }) | Err(ClientError::InvalidArgument(_)) => {}
        other => panic!("missing super stream gave {other:?}"),
    }
    let (ss, _) = f.numbered("sp-errors", 1);
    let bad = SuperProducerConfig {
        name: Some("a".into()),
        producer: ProducerConfig {
            name: Some("b".into()),
            ..Default::default()
        },
        ..Default::default()
    };
    assert!(matches!(
        f.rt.block_on(SuperProducer::new(f.handle(), &ss, bad, events.clone())),
        Err(ClientError::InvalidArgument(_))
    ));
    assert!(matches!(
        f.rt.block_on(SuperProducer::new(
            f.handle(),
            "",
            SuperProducerConfig::default(),
            events
        )),
        Err(ClientError::InvalidArgument(_))
    ));
    f.finish();
}

/// RabbitMQ 3.10.8: super streams cannot be created there (Unsupported, naming 3.13), and a
/// super producer on a super stream that does not exist fails cleanly, the connection intact.
#[test]
fn legacy_broker() {
    let Some((f, _)) = Fixture::legacy("sp-legacy") else {
        return;
    };
    let name = unique("sp-legacy");
    match f.rt.block_on(f.env.create_super_stream(
        &name,
        &[format!("{name}-0")],
        &["0".into()],
        &[],
    )) {
        Err(ClientError::Unsupported { needs, .. }) => assert_eq!(needs, "3.13"),
        other => panic!("super stream creation on 3.10 gave {other:?}"),
    }
    let events: Arc<dyn SuperProducerEvents> = Arc::new(Confirms::default());
    let r = f.rt.block_on(SuperProducer::new(
        f.handle(),
        &name,
        SuperProducerConfig::default(),
        events,
    ));
    assert!(
        r.is_err(),
        "super producer on a missing super stream: {r:?}"
    );
    eprintln!(
        "3.10.8, super producer on a missing super stream: {:?}",
        r.unwrap_err()
    );
    // Still usable.
    assert!(f.rt.block_on(f.env.server_info()).is_ok());
    let s = unique("sp-legacy-s");
    assert!(f.rt.block_on(f.env.create_stream(&s, &[])).unwrap());
    f.rt.block_on(f.env.delete_stream(&s)).unwrap();
    f.finish();
}
