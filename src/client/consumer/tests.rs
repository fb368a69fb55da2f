//! Unit tests of the consumer's chunk path (no broker): validation, CRC, skipping, the record
//! view. The broker-facing behaviour is covered by `tests/client_consumer.rs`.

use bytes::{Bytes, BytesMut};

use super::delivered::{Prepared, prepare};
use super::*;
use crate::protocol::DecodeError;
use crate::protocol::amqp::Message;
use crate::protocol::chunk::{ChunkBuilder, ChunkType};
use crate::protocol::compression::Compression;
use std::time::Duration;

fn body(i: u64) -> Vec<u8> {
    format!("body-{i}-{}", "y".repeat((i % 5) as usize)).into_bytes()
}

/// A chunk at `chunk_id`: 3 simple entries, a gzip batch of 4, 2 simple, an uncompressed batch
/// of 3, a zstd batch of 2, 1 simple — 15 records, bodies `body(offset)`.
fn mixed_chunk(chunk_id: u64) -> Bytes {
    let mut b = ChunkBuilder::new(chunk_id).timestamp(1_700_000_000_123);
    let mut o = chunk_id;
    let mut take = |n: u64| {
        let v: Vec<Vec<u8>> = (o..o + n).map(body).collect();
        o += n;
        v
    };
    for x in take(3) {
        b.add_simple(&x).unwrap();
    }
    b.add_sub_entry(Compression::Gzip, take(4)).unwrap();
    for x in take(2) {
        b.add_simple(&x).unwrap();
    }
    b.add_sub_entry(Compression::None, take(3)).unwrap();
    b.add_sub_entry(Compression::Zstd, take(2)).unwrap();
    for x in take(1) {
        b.add_simple(&x).unwrap();
    }
    b.build().unwrap()
}

/// A chunk of `n` simple entries and one uncompressed batch of 5 (no compression).
fn plain_chunk(chunk_id: u64, n: u64) -> Bytes {
    let mut b = ChunkBuilder::new(chunk_id).timestamp(42);
    for o in chunk_id..chunk_id + n {
        b.add_simple(&body(o)).unwrap();
    }
    let start = chunk_id + n;
    b.add_sub_entry(Compression::None, (start..start + 5).map(body))
        .unwrap();
    b.build().unwrap()
}

fn prep(raw: Bytes, min_offset: u64) -> Result<Option<Prepared>, DecodeError> {
    prepare(raw, true, min_offset, DecodeLimits::default())
}

fn view(raw: Bytes, min_offset: u64) -> DeliveredChunk {
    DeliveredChunk::new(prep(raw, min_offset).unwrap().unwrap(), "s".into(), None)
}

/// Checks iteration and random access agree with `body(offset)` for `first..=last`.
fn check(c: &DeliveredChunk, first: u64, last: u64) {
    let n = (last - first + 1) as usize;
    assert_eq!(c.len(), n);
    assert_eq!(c.first_offset(), first);
    assert_eq!(c.last_offset(), last);
    let it = c.records();
    assert_eq!(it.len(), n, "exact size");
    let mut seen = 0;
    for (k, r) in it.enumerate() {
        assert_eq!(r.offset, first + k as u64);
        assert_eq!(r.body, body(r.offset).as_slice(), "offset {}", r.offset);
        assert_eq!(r.timestamp, c.timestamp());
        seen += 1;
    }
    assert_eq!(seen, n);
    for i in 0..n {
        let r = c.get(i).unwrap();
        assert_eq!(r.offset, first + i as u64);
        assert_eq!(r.body, body(r.offset).as_slice());
    }
    assert!(c.get(n).is_none());
    // Iterating again after the index exists goes through it, with the same result.
    assert!(c.records().map(|r| r.offset).eq(first..=last));
}

#[test]
fn plain_chunk_iterates_in_place_and_indexes_on_demand() {
    let c = view(plain_chunk(1000, 20), 0);
    assert!(c.decoded.get().is_none(), "nothing indexed on arrival");
    assert_eq!(c.skipped(), 0);
    check(&c, 1000, 1024);
    assert!(c.decoded.get().is_some(), "indexed by get");
}

#[test]
fn records_before_the_start_offset_are_hidden() {
    // Inside the simple entries.
    let c = view(plain_chunk(1000, 20), 1007);
    assert_eq!(c.skipped(), 7);
    check(&c, 1007, 1024);
    // Inside the uncompressed batch (records 1020..1025).
    let c = view(plain_chunk(1000, 20), 1022);
    check(&c, 1022, 1024);
    // Inside a compressed batch (gzip holds 3..7) and across batches.
    for start in [0u64, 3, 4, 6, 7, 9, 11, 13, 14] {
        let c = view(mixed_chunk(500), 500 + start);
        assert_eq!(c.skipped() as u64, start);
        check(&c, 500 + start, 514);
    }
    // A start before the chunk hides nothing.
    check(&view(plain_chunk(1000, 3), 10), 1000, 1007);
}

#[test]
fn chunks_entirely_before_the_start_are_not_delivered() {
    assert!(prep(plain_chunk(1000, 20), 1025).unwrap().is_none());
    assert!(prep(mixed_chunk(0), 15).unwrap().is_none());
    assert!(prep(mixed_chunk(0), u64::MAX).unwrap().is_none());
    assert!(
        prep(ChunkBuilder::new(7).build().unwrap(), 0)
            .unwrap()
            .is_none()
    );
}

#[test]
fn compressed_chunks_are_decoded_on_arrival() {
    let c = view(mixed_chunk(0), 0);
    assert!(matches!(c.decoded.get(), Some(Some(_))));
    check(&c, 0, 14);
    assert_eq!(c.header().num_entries, 9);
}

#[test]
fn tracking_chunks_are_not_delivered() {
    let mut b = ChunkBuilder::new(0).chunk_type(ChunkType::TrackingDelta);
    b.add_simple(b"tracking data").unwrap();
    assert!(prep(b.build().unwrap(), 0).unwrap().is_none());
}

/// Flips one bit of a body byte: the framing stays valid, the CRC does not.
fn corrupt_body(raw: &Bytes) -> Bytes {
    let mut m = BytesMut::from(&raw[..]);
    let last = m.len() - 1;
    m[last] ^= 0x01;
    m.freeze()
}

#[test]
fn crc_mismatch_is_an_error_only_when_checked() {
    let bad = corrupt_body(&plain_chunk(0, 10));
    match prep(bad.clone(), 0) {
        Err(DecodeError::Crc { expected, actual }) => assert_ne!(expected, actual),
        other => panic!("expected a CRC error, got {other:?}"),
    }
    // Also for a chunk that would have been skipped entirely.
    assert!(matches!(
        prep(bad.clone(), 1_000),
        Err(DecodeError::Crc { .. })
    ));
    // Unchecked, the flipped byte is delivered as it is.
    let p = prepare(bad, false, 0, DecodeLimits::default())
        .unwrap()
        .unwrap();
    let c = DeliveredChunk::new(p, "s".into(), None);
    let last = c.get(c.len() - 1).unwrap();
    assert_ne!(last.body, body(last.offset).as_slice());
}

#[test]
fn undecodable_chunks_are_errors() {
    // A simple entry whose size runs past the data section (CRC recomputed, so only the
    // framing is wrong).
    let mut b = ChunkBuilder::new(0);
    b.add_simple(b"fine").unwrap();
    b.add_raw_entry(&[0, 0, 0, 50, b'x'], 1).unwrap();
    assert!(matches!(
        prep(b.build().unwrap(), 0),
        Err(DecodeError::Truncated { .. })
    ));
    // An uncompressed batch that declares more records than it holds.
    let mut entry = vec![0x80, 0, 3];
    let recs: Vec<u8> = [&[0u8, 0, 0, 1, b'a'][..], &[0, 0, 0, 1, b'b']].concat();
    entry.extend_from_slice(&(recs.len() as u32).to_be_bytes());
    entry.extend_from_slice(&(recs.len() as u32).to_be_bytes());
    entry.extend_from_slice(&recs);
    let mut b = ChunkBuilder::new(0);
    b.add_raw_entry(&entry, 3).unwrap();
    assert!(prep(b.build().unwrap(), 0).is_err());
    // A gzip batch with garbage data.
    let mut entry = vec![0x90, 0, 1, 0, 0, 0, 5, 0, 0, 0, 4];
    entry.extend_from_slice(b"junk");
    let mut b = ChunkBuilder::new(0);
    b.add_raw_entry(&entry, 1).unwrap();
    assert!(prep(b.build().unwrap(), 0).is_err());
    // A header that claims more data than was sent.
    let raw = plain_chunk(0, 3);
    assert!(prep(raw.slice(..raw.len() - 1), 0).is_err());
}

#[test]
fn amqp_helpers_fall_back_to_raw_bytes() {
    let msg = Message::new(&b"payload"[..]).to_bytes().unwrap();
    let mut b = ChunkBuilder::new(0);
    b.add_simple(&msg).unwrap();
    b.add_simple(b"raw bytes").unwrap();
    let c = view(b.build().unwrap(), 0);
    let amqp = c.get(0).unwrap();
    assert_eq!(amqp.body, &msg[..]);
    assert_eq!(amqp.amqp_body(), b"payload");
    assert!(amqp.amqp().is_some());
    let raw = c.get(1).unwrap();
    assert!(raw.amqp().is_none());
    assert_eq!(raw.amqp_body(), b"raw bytes");
}

#[test]
fn delivered_chunks_cross_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<DeliveredChunk>();
    assert_send_sync::<Consumer>();
    let c = std::sync::Arc::new(view(plain_chunk(0, 100), 0));
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let c = c.clone();
            std::thread::spawn(move || (0..c.len()).all(|i| c.get(i).unwrap().offset == i as u64))
        })
        .collect();
    for h in handles {
        assert!(h.join().unwrap());
    }
}

#[test]
fn config_defaults_and_validation() {
    let d = ConsumerConfig::default();
    assert_eq!(d.offset, OffsetSpec::Next);
    assert_eq!(d.initial_credit, 10);
    assert_eq!(d.credit_policy, CreditPolicy::OnRelease);
    assert!(d.crc_check && d.name.is_none() && d.properties.is_empty());
    assert!(d.validate().is_ok());
    for credit in [0, MAX_CREDIT + 1, u16::MAX] {
        let c = ConsumerConfig {
            initial_credit: credit,
            ..Default::default()
        };
        assert!(matches!(c.validate(), Err(ClientError::InvalidArgument(_))));
    }
    let c = ConsumerConfig {
        initial_credit: MAX_CREDIT,
        name: Some("app".into()),
        properties: vec![("filter.0".into(), "x".into())],
        ..Default::default()
    };
    assert!(c.validate().is_ok());
    assert_eq!(
        c.subscribe_properties(),
        vec![
            ("name".to_string(), "app".to_string()),
            ("filter.0".to_string(), "x".to_string())
        ]
    );
    let dup = ConsumerConfig {
        name: Some("app".into()),
        properties: vec![("name".into(), "other".into())],
        ..Default::default()
    };
    assert!(dup.validate().is_err());
    let long = ConsumerConfig {
        name: Some("n".repeat(256)),
        ..Default::default()
    };
    assert!(long.validate().is_err());
}

#[test]
fn post_filtered_chunks_hide_rejected_records_and_keep_offsets() {
    // 15 records over simple entries, a gzip batch, an uncompressed batch and zstd; start at 3.
    let mut c = view(mixed_chunk(100), 103);
    let keep = |o: u64| o % 3 != 0;
    let f = PostFilter::new(move |r| keep(r.offset));
    c.kept = f.apply(&c).unwrap();
    let want: Vec<u64> = (103..115).filter(|o| keep(*o)).collect();
    assert_eq!(c.len(), want.len());
    assert_eq!(c.filtered_out(), 12 - want.len());
    assert_eq!(c.first_offset(), want[0]);
    assert_eq!(
        c.last_offset(),
        114,
        "the chunk's last record, filtered or not"
    );
    let got: Vec<u64> = c.records().map(|r| r.offset).collect();
    assert_eq!(got, want);
    assert_eq!(c.records().len(), want.len());
    for (i, o) in want.iter().enumerate() {
        let r = c.get(i).unwrap();
        assert_eq!((r.offset, r.body), (*o, body(*o).as_slice()));
    }
    assert!(c.get(want.len()).is_none());

    // An unindexed plain chunk walks in place with the mask too.
    let mut c = view(plain_chunk(0, 20), 0);
    let f = PostFilter::new(|r| r.offset >= 18);
    c.kept = f.apply(&c).unwrap();
    assert!(
        c.decoded.get().is_none(),
        "filtering did not index the chunk"
    );
    assert_eq!(
        c.records().map(|r| r.offset).collect::<Vec<_>>(),
        (18..25).collect::<Vec<_>>()
    );
    // A filter keeping everything allocates nothing and changes nothing.
    let c = view(plain_chunk(0, 20), 0);
    assert!(PostFilter::new(|_| true).apply(&c).unwrap().is_none());
    // Rejecting everything leaves nothing to deliver.
    assert_eq!(
        PostFilter::new(|_| false).apply(&c).unwrap().as_deref(),
        Some(&[][..])
    );
    // A panicking filter is reported, not propagated.
    assert!(PostFilter::new(|_| panic!("boom")).apply(&c).is_err());
}

#[test]
fn feature_settings_validate_and_become_subscribe_properties() {
    let sac = ConsumerConfig {
        name: Some("group".into()),
        single_active_consumer: true,
        super_stream: Some("invoices".into()),
        filter_values: vec!["eu".into(), "us".into()],
        match_unfiltered: true,
        tracking: TrackingStrategy::EveryMessages(100),
        ..Default::default()
    };
    assert!(sac.validate().is_ok());
    assert!(sac.is_single_active() && sac.uses_filtering());
    assert_eq!(sac.reference(), Some("group"));
    let props: Vec<(String, String)> = sac.subscribe_properties();
    let want: Vec<(String, String)> = [
        ("name", "group"),
        ("single-active-consumer", "true"),
        ("super-stream", "invoices"),
        ("filter.0", "eu"),
        ("filter.1", "us"),
        ("match-unfiltered", "true"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    assert_eq!(props, want);

    let bad = |c: ConsumerConfig| matches!(c.validate(), Err(ClientError::InvalidArgument(_)));
    assert!(bad(ConsumerConfig {
        single_active_consumer: true,
        ..Default::default()
    }));
    assert!(bad(ConsumerConfig {
        tracking: TrackingStrategy::Manual,
        ..Default::default()
    }));
    assert!(
        ConsumerConfig {
            tracking: TrackingStrategy::Manual,
            tracking_reference: Some("ref".into()),
            ..Default::default()
        }
        .validate()
        .is_ok()
    );
    assert!(bad(ConsumerConfig {
        match_unfiltered: true,
        ..Default::default()
    }));
    assert!(bad(ConsumerConfig {
        filter_values: vec![String::new()],
        ..Default::default()
    }));
    assert!(bad(ConsumerConfig {
        filter_values: vec!["a".into()],
        properties: vec![("filter.0".into(), "b".into())],
        ..Default::default()
    }));
    assert!(bad(ConsumerConfig {
        consumer_update_timeout: Duration::from_secs(60),
        ..Default::default()
    }));
    assert!(bad(ConsumerConfig {
        initial_credit: 4,
        credit_policy: CreditPolicy::AfterProcessed(3),
        ..Default::default()
    }));
    // Raw properties count for the feature checks.
    let raw = ConsumerConfig {
        name: Some("g".into()),
        properties: vec![("single-active-consumer".into(), "true".into())],
        ..Default::default()
    };
    assert!(raw.is_single_active() && !raw.uses_filtering());
}
