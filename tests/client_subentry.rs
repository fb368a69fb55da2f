//! Sub-entry batching and compression in the async core's producer, against the real broker of
//! `scripts/broker` (`RMQS_TEST_URI`, default `rabbitmq-stream://guest:guest@localhost:5552/%2f`).
//!
//! What reached the stream is read back with a minimal subscriber written against
//! `Connection` and the chunk codec (independent of the consumer under development), which
//! also reports every chunk entry: the tests check that sub-entries really went out as
//! sub-entries, with the expected compression code and record counts, and that their records
//! got consecutive offsets.
//!
//! `publish_cost_plain_vs_sub_entries` (ignored) measures publish rate and client CPU:
//! `cargo test --release --test client_subentry -- --ignored --nocapture`.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use support::client::{Collector, Fixture, assert_confirmed_in_order, send_mixed};
use support::unique;

use rmqstream::client::{
    ClientError, Confirm, ConfirmStatus, OutgoingMessage, ProducerConfig, ProducerEvents,
};
use rmqstream::protocol::amqp::MessageView;
use rmqstream::protocol::compression::Compression;

const WAIT: Duration = Duration::from_secs(60);
/// Long enough that no partial sub-entry goes out on its own during a test's send loop
/// (`flush` seals and sends it).
const NO_LINGER: Duration = Duration::from_secs(120);

/// A compressible body of 20 to 120 bytes.
fn payload(i: usize) -> Vec<u8> {
    let mut b = format!("message-{i:06}-").into_bytes();
    b.extend(std::iter::repeat_n(b'a' + (i % 26) as u8, i % 101));
    b
}

/// Incompressible bytes (xorshift).
fn noise(n: usize, mut seed: u64) -> Vec<u8> {
    seed |= 1;
    (0..n)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed as u8
        })
        .collect()
}

/// 10 000 messages with sub-entries of 100 and `compression`: every tag confirmed once with
/// its own id, 100 sub-entries of 100 records with that codec, offsets 0..9999, every body.
fn round_trip(compression: Compression) {
    const N: usize = 10_000;
    let f = Fixture::new("client_subentry", &format!("sub-{}", compression.name()));
    let events = Collector::new();
    let config = ProducerConfig {
        sub_entry_size: 100,
        compression,
        batch_delay: NO_LINGER,
        ..Default::default()
    };
    let p = f.producer(config, &events);
    let bodies: Vec<Vec<u8>> = (0..N).map(payload).collect();
    let start = Instant::now();
    // Every 10th raw, the rest AMQP: both formats share sub-entries.
    send_mixed(&p, &bodies, WAIT, "every message gets its own id");
    p.flush(WAIT).unwrap();
    println!(
        "{}: 10k messages in sub-entries of 100 sent and confirmed in {:?}",
        compression.name(),
        start.elapsed()
    );

    assert_confirmed_in_order(&events, &p, N);

    let back = f.read(N);
    assert_eq!(back.records.len(), N);
    back.assert_contiguous();
    assert_eq!(back.bodies(), bodies, "bodies read back in order");
    assert!(MessageView::parse(&back.records[0].1).is_ok());
    assert!(MessageView::parse(&back.records[3].1).is_err());
    // Each sub-entry is one entry holding 100 records with consecutive offsets.
    let subs = back.sub_entries();
    assert_eq!(subs.len(), N / 100);
    for (k, &(offset, codec, records)) in subs.iter().enumerate() {
        assert_eq!(
            (offset, codec, records),
            (k as u64 * 100, compression, 100),
            "sub-entry {k}"
        );
    }
    f.close(&p);
    f.finish();
}

#[test]
fn sub_entries_without_compression_round_trip() {
    round_trip(Compression::None);
}

#[test]
fn sub_entries_with_gzip_round_trip() {
    round_trip(Compression::Gzip);
}

#[test]
fn sub_entries_with_snappy_round_trip() {
    round_trip(Compression::Snappy);
}

#[test]
fn sub_entries_with_lz4_round_trip() {
    round_trip(Compression::Lz4);
}

#[test]
fn sub_entries_with_zstd_round_trip() {
    round_trip(Compression::Zstd);
}

#[test]
fn a_filter_value_with_sub_entries_is_invalid() {
    let f = Fixture::new("client_subentry", "sub-filter");
    let (events, p) = f.collected(ProducerConfig {
        sub_entry_size: 10,
        compression: Compression::Zstd,
        ..Default::default()
    });
    let r = p.send(&OutgoingMessage::new(b"x").filter_value("eu"), None);
    assert!(
        matches!(&r, Err(ClientError::InvalidArgument(why)) if why.contains("filter value")),
        "{r:?}"
    );
    // In a batch, the prefix before it is accepted.
    let batch = [
        OutgoingMessage::new(b"a").tag(1),
        OutgoingMessage::new(b"b").tag(2),
        OutgoingMessage::new(b"c").tag(3).filter_value("eu"),
    ];
    assert_eq!(p.send_batch(&batch, None).unwrap(), 2);
    p.flush(WAIT).unwrap();
    let all = events.all();
    assert_eq!(
        all.iter().map(|c| (c.tag, c.status)).collect::<Vec<_>>(),
        vec![(1, ConfirmStatus::Confirmed), (2, ConfirmStatus::Confirmed)]
    );
    let back = f.read(2);
    assert_eq!(back.bodies(), vec![b"a".to_vec(), b"b".to_vec()]);
    assert_eq!(back.sub_entries(), vec![(0, Compression::Zstd, 2)]);
    f.close(&p);
    f.finish();
}

/// Small and large (incompressible, up to about half a frame) messages mixed: sub-entries
/// are cut before their worst case would exceed `frame_max` (the broker closes the connection
/// on a larger frame), and everything still arrives in order with contiguous offsets.
fn mixed_sizes(compression: Compression) {
    let f = Fixture::new(
        "client_subentry",
        &format!("sub-mixed-{}", compression.name()),
    );
    let frame_max = f.frame_max();
    let (events, p) = f.collected(ProducerConfig {
        sub_entry_size: 100,
        compression,
        batch_delay: NO_LINGER,
        ..Default::default()
    });
    let sizes: Vec<usize> = (0..600)
        .map(|i| match i % 50 {
            7 => frame_max / 2,
            20 | 21 => frame_max / 5,
            33 => 70_000,
            _ => 10 + i % 300,
        })
        .collect();
    let bodies: Vec<Vec<u8>> = sizes
        .iter()
        .enumerate()
        .map(|(i, &n)| noise(n, i as u64))
        .collect();
    // Messages one by one and in batches.
    let mut i = 0;
    while i < bodies.len() {
        if i % 3 == 0 {
            let end = (i + 17).min(bodies.len());
            let msgs: Vec<OutgoingMessage<'_>> = (i..end)
                .map(|k| OutgoingMessage::new(&bodies[k]).tag(k))
                .collect();
            let mut done = 0;
            while done < msgs.len() {
                done += p.send_batch(&msgs[done..], Some(WAIT)).unwrap();
            }
            i = end;
        } else {
            p.send(&OutgoingMessage::new(&bodies[i]).tag(i), Some(WAIT))
                .unwrap();
            i += 1;
        }
    }
    p.flush(WAIT).unwrap();
    let by_tag = events.by_tag();
    assert_eq!(by_tag.len(), bodies.len());
    assert!(by_tag.values().all(|c| c.status.is_confirmed()));

    let back = f.read(bodies.len());
    back.assert_contiguous();
    assert_eq!(back.bodies(), bodies);
    let subs = back.sub_entries();
    assert!(
        subs.len() > bodies.len() / 100,
        "large messages cut sub-entries early: {} sub-entries",
        subs.len()
    );
    let mut next = 0;
    for &(offset, codec, records) in &subs {
        assert_eq!((offset, codec), (next, compression));
        assert!((1..=100).contains(&records));
        next += u64::from(records);
    }
    assert_eq!(next, bodies.len() as u64);
    // The largest sub-entry's records stay within one frame.
    let mut largest = 0;
    let mut at = 0;
    for &(_, _, records) in &subs {
        let n = records as usize;
        largest = largest.max(sizes[at..at + n].iter().map(|s| s + 12).sum::<usize>());
        at += n;
    }
    assert!(largest <= frame_max, "{largest} > {frame_max}");
    println!(
        "{}: {} messages of {} to {} bytes in {} sub-entries, largest {largest} bytes",
        compression.name(),
        bodies.len(),
        sizes.iter().min().unwrap(),
        sizes.iter().max().unwrap(),
        subs.len()
    );
    f.close(&p);
    f.finish();
}

#[test]
fn mixed_sizes_without_compression_fit_the_frame() {
    mixed_sizes(Compression::None);
}

#[test]
fn mixed_sizes_with_zstd_fit_the_frame() {
    mixed_sizes(Compression::Zstd);
}

#[test]
fn a_partial_sub_entry_goes_out_after_batch_delay() {
    let f = Fixture::new("client_subentry", "sub-linger");
    let (events, p) = f.collected(ProducerConfig {
        sub_entry_size: 100,
        compression: Compression::Lz4,
        batch_delay: Duration::from_millis(20),
        ..Default::default()
    });
    let start = Instant::now();
    for i in 0..5 {
        p.send(&OutgoingMessage::new(&payload(i)).tag(i), None)
            .unwrap();
    }
    // No flush: the housekeeping task seals and sends the sub-entry.
    let got = events.wait_for(5, Duration::from_secs(5));
    let waited = start.elapsed();
    assert!(got.iter().all(|c| c.status.is_confirmed()));
    assert!(waited >= Duration::from_millis(20), "{waited:?}");
    let back = f.read(5);
    assert_eq!(back.sub_entries(), vec![(0, Compression::Lz4, 5)]);
    f.close(&p);
    f.finish();
}

/// Deduplication works per sub-entry: a sub-entry is kept or dropped whole by the id of its
/// last message, and a restarted named producer resumes after the last one kept.
#[test]
fn named_producers_deduplicate_per_sub_entry() {
    let f = Fixture::new("client_subentry", "sub-dedup");
    let name = unique("sub-dedup");
    let config = || ProducerConfig {
        name: Some(name.clone()),
        sub_entry_size: 100,
        compression: Compression::Snappy,
        batch_delay: NO_LINGER,
        ..Default::default()
    };
    let sequence = || {
        f.rt.block_on(f.env.query_publisher_sequence(&name, &f.stream))
            .unwrap()
    };
    // Sends ids `ids` (explicit, consecutive: they share sub-entries), body of id k =
    // payload(k - 1); returns how many were confirmed.
    let resend = |ids: std::ops::RangeInclusive<u64>| {
        let (events, p) = f.collected(config());
        let n = ids.clone().count();
        for id in ids {
            let body = payload(id as usize - 1);
            let msg = OutgoingMessage::new(&body).publishing_id(id);
            assert_eq!(p.send(&msg, None).unwrap(), id);
        }
        p.flush(WAIT).unwrap();
        f.close(&p);
        let all = events.all();
        assert_eq!(all.len(), n);
        all.iter().filter(|c| c.status.is_confirmed()).count()
    };

    // Automatic ids 1..=250 (a named producer starts after the broker's answer, 0):
    // sub-entries ending at 100, 200 and 250.
    let (_events, p) = f.collected(config());
    for i in 0..250 {
        let id = p.send(&OutgoingMessage::new(&payload(i)), None).unwrap();
        assert_eq!(id, i as u64 + 1);
    }
    p.flush(WAIT).unwrap();
    f.close(&p);
    assert_eq!(sequence(), 250, "the last sub-entry's id");

    // A restart resumes after it.
    let p = f.producer(config(), &Collector::new());
    assert_eq!(p.last_publishing_id(), Some(250));
    f.close(&p);

    // 151..=300 goes as 151..=250 (last id 250: dropped, still confirmed) and 251..=300.
    assert_eq!(resend(151..=300), 150);
    assert_eq!(sequence(), 300);
    // 291..=310 is one sub-entry whose last id is new: kept whole, 291..=300 included — the
    // per-batch granularity the documentation warns about.
    assert_eq!(resend(291..=310), 20);
    assert_eq!(sequence(), 310);

    let back = f.read(320);
    assert_eq!(back.records.len(), 320);
    back.assert_contiguous();
    let want: Vec<Vec<u8>> = (0..300).chain(290..310).map(payload).collect();
    assert_eq!(back.bodies(), want);
    let records: Vec<u16> = back.sub_entries().iter().map(|s| s.2).collect();
    assert_eq!(records, vec![100, 100, 50, 50, 20]);
    f.finish();
}

/// Informational (no assertion on timing): publish rate and client CPU for 1 000 000
/// messages of 100 bytes, plain vs sub-entries of 100 without compression and with zstd.
/// `RMQS_BENCH_MESSAGES` and `RMQS_BENCH_BODY` (bytes) tune it.
#[test]
#[ignore]
fn publish_cost_plain_vs_sub_entries() {
    /// User and system CPU of this process (all its threads: the caller, the runtime's
    /// workers with the connection's reader and writer tasks).
    fn cpu() -> (Duration, Duration) {
        let mut ru = std::mem::MaybeUninit::<libc::rusage>::zeroed();
        // SAFETY: getrusage fills the struct it is given.
        let ru = unsafe {
            assert_eq!(libc::getrusage(libc::RUSAGE_SELF, ru.as_mut_ptr()), 0);
            ru.assume_init()
        };
        let tv = |t: libc::timeval| {
            Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
        };
        (tv(ru.ru_utime), tv(ru.ru_stime))
    }
    struct Count(AtomicUsize);
    impl ProducerEvents for Count {
        fn confirms(&self, batch: &[Confirm]) {
            self.0.fetch_add(batch.len(), Ordering::Relaxed);
        }
    }

    let n = support::knob("RMQS_BENCH_MESSAGES", 1_000_000);
    let body_len = support::knob("RMQS_BENCH_BODY", 100);
    // Somewhat compressible, like typical payloads: a counter and a repeated pattern.
    let bodies: Vec<Vec<u8>> = (0..1000)
        .map(|i| {
            let mut b = format!("{{\"id\":{i},\"payload\":\"").into_bytes();
            b.resize(body_len, b'x');
            b
        })
        .collect();
    let cases = [
        ("plain", 0, Compression::None),
        ("sub-entry 100, none", 100, Compression::None),
        ("sub-entry 100, zstd", 100, Compression::Zstd),
    ];
    let mut lines = Vec::new();
    for (label, sub_entry_size, compression) in cases {
        let f = Fixture::new("client_subentry", "sub-bench");
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let p = f.producer(
            ProducerConfig {
                sub_entry_size,
                compression,
                ..Default::default()
            },
            &count,
        );
        let (u0, s0) = cpu();
        let start = Instant::now();
        for i in 0..n {
            p.send(
                &OutgoingMessage::new(&bodies[i % bodies.len()]).tag(i),
                Some(WAIT),
            )
            .unwrap();
        }
        p.flush(WAIT).unwrap();
        let wall = start.elapsed();
        let (u1, s1) = cpu();
        assert_eq!(count.0.load(Ordering::Relaxed), n);
        let (user, sys) = (u1 - u0, s1 - s0);
        let line = format!(
            "{label:<22} {n} x {body_len} B: {wall:>9.3?} wall, {:>9.0} msg/s, client CPU \
             {:.3?} user + {:.3?} sys = {:.2} us/msg",
            n as f64 / wall.as_secs_f64(),
            user,
            sys,
            (user + sys).as_secs_f64() * 1e6 / n as f64
        );
        println!("{line}");
        lines.push(line);
        f.close(&p);
        f.finish();
    }
    println!(
        "--- publish cost ({} build) ---\n{}",
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
        lines.join("\n")
    );
}
