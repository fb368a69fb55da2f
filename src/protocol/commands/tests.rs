//! Tests of the frame codec: round trips of every variant, golden bytes written by hand from
//! the protocol reference, malformed input, the publish writer, framing, and property tests.

use std::collections::BTreeSet;

use bytes::{BufMut, Bytes, BytesMut};
use proptest::prelude::*;

use super::*;
use crate::protocol::codes::{OffsetSpec, ResponseCode, key};

fn rc(c: u16) -> ResponseCode {
    ResponseCode::from_u16(c)
}

fn s(v: &str) -> String {
    v.to_owned()
}

fn map(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| (s(k), s(v))).collect()
}

fn code_resp(correlation_id: u32, code: u16) -> CodeResponse {
    CodeResponse {
        correlation_id,
        code: rc(code),
    }
}

/// Builds a fake 48-byte-header chunk followed by `data`.
fn fake_chunk(data: &[u8]) -> Bytes {
    let mut c = vec![0x50u8, 0];
    c.extend_from_slice(&1u16.to_be_bytes());
    c.resize(48, 0);
    c.extend_from_slice(data);
    Bytes::from(c)
}

/// One or more samples of every frame variant, key and version.
fn samples() -> Vec<Frame> {
    vec![
        Frame::DeclarePublisher(DeclarePublisher {
            correlation_id: 1,
            publisher_id: 7,
            publisher_reference: s("ref"),
            stream: s("stream"),
        }),
        Frame::DeclarePublisher(DeclarePublisher {
            correlation_id: 1,
            publisher_id: 0,
            publisher_reference: String::new(),
            stream: s("s"),
        }),
        Frame::DeclarePublisherResponse(code_resp(1, 1)),
        Frame::Publish(Publish {
            publisher_id: 3,
            version: PublishVersion::V1,
            entries: vec![
                PublishEntry::Simple {
                    publishing_id: 1,
                    filter_value: None,
                    body: Bytes::from_static(b"hello"),
                },
                PublishEntry::SubEntry {
                    publishing_id: 2,
                    compression: 1,
                    record_count: 2,
                    uncompressed_size: 18,
                    data: Bytes::from_static(b"\x00\x00\x00\x01a\x00\x00\x00\x01b"),
                },
                PublishEntry::Simple {
                    publishing_id: u64::MAX,
                    filter_value: None,
                    body: Bytes::new(),
                },
            ],
        }),
        Frame::Publish(Publish {
            publisher_id: 4,
            version: PublishVersion::V2,
            entries: vec![
                PublishEntry::Simple {
                    publishing_id: 10,
                    filter_value: Some(s("eu")),
                    body: Bytes::from_static(b"x"),
                },
                PublishEntry::Simple {
                    publishing_id: 11,
                    filter_value: None,
                    body: Bytes::from_static(b"yy"),
                },
            ],
        }),
        Frame::Publish(Publish {
            publisher_id: 0,
            version: PublishVersion::V1,
            entries: vec![],
        }),
        Frame::PublishConfirm(PublishConfirm {
            publisher_id: 3,
            publishing_ids: vec![1, 2, 3],
        }),
        Frame::PublishError(PublishError {
            publisher_id: 3,
            errors: vec![
                PublishingError {
                    publishing_id: 5,
                    code: ResponseCode::PUBLISHER_DOES_NOT_EXIST,
                },
                PublishingError {
                    publishing_id: 6,
                    code: ResponseCode::PRECONDITION_FAILED,
                },
            ],
        }),
        Frame::QueryPublisherSequence(QueryPublisherSequence {
            correlation_id: 2,
            publisher_reference: s("ref"),
            stream: s("stream"),
        }),
        Frame::QueryPublisherSequenceResponse(QueryPublisherSequenceResponse {
            correlation_id: 2,
            code: ResponseCode::OK,
            sequence: 42,
        }),
        Frame::DeletePublisher(DeletePublisher {
            correlation_id: 3,
            publisher_id: 7,
        }),
        Frame::DeletePublisherResponse(code_resp(3, 0x12)),
        Frame::Subscribe(Subscribe {
            correlation_id: 4,
            subscription_id: 1,
            stream: s("stream"),
            offset_spec: OffsetSpec::First,
            credit: 10,
            properties: vec![],
        }),
        Frame::Subscribe(Subscribe {
            correlation_id: 4,
            subscription_id: 2,
            stream: s("stream"),
            offset_spec: OffsetSpec::Offset(1000),
            credit: 2,
            properties: map(&[("single-active-consumer", "true"), ("name", "app")]),
        }),
        Frame::Subscribe(Subscribe {
            correlation_id: 4,
            subscription_id: 3,
            stream: s("stream"),
            offset_spec: OffsetSpec::Timestamp(-5),
            credit: 0,
            properties: vec![],
        }),
        Frame::Subscribe(Subscribe {
            correlation_id: 4,
            subscription_id: 4,
            stream: s("stream"),
            offset_spec: OffsetSpec::Last,
            credit: 1,
            properties: map(&[("filter.0", "eu")]),
        }),
        Frame::Subscribe(Subscribe {
            correlation_id: 4,
            subscription_id: 5,
            stream: s("stream"),
            offset_spec: OffsetSpec::Next,
            credit: 1,
            properties: vec![],
        }),
        Frame::SubscribeResponse(code_resp(4, 1)),
        Frame::Deliver(Deliver {
            subscription_id: 1,
            committed_chunk_id: None,
            chunk: fake_chunk(b"data"),
        }),
        Frame::Deliver(Deliver {
            subscription_id: 2,
            committed_chunk_id: Some(99),
            chunk: fake_chunk(b""),
        }),
        Frame::Credit(Credit {
            subscription_id: 1,
            credit: 1,
        }),
        Frame::CreditResponse(CreditResponse {
            code: ResponseCode::SUBSCRIPTION_ID_DOES_NOT_EXIST,
            subscription_id: 9,
        }),
        Frame::StoreOffset(StoreOffset {
            reference: s("app"),
            stream: s("stream"),
            offset: 77,
        }),
        Frame::QueryOffset(QueryOffset {
            correlation_id: 5,
            reference: s("app"),
            stream: s("stream"),
        }),
        Frame::QueryOffsetResponse(QueryOffsetResponse {
            correlation_id: 5,
            code: ResponseCode::NO_OFFSET,
            offset: 0,
        }),
        Frame::Unsubscribe(Unsubscribe {
            correlation_id: 6,
            subscription_id: 1,
        }),
        Frame::UnsubscribeResponse(code_resp(6, 1)),
        Frame::CreateStream(CreateStream {
            correlation_id: 7,
            stream: s("s"),
            arguments: map(&[("max-age", "7D"), ("max-length-bytes", "1000")]),
        }),
        Frame::CreateStreamResponse(code_resp(7, 5)),
        Frame::DeleteStream(DeleteStream {
            correlation_id: 8,
            stream: s("s"),
        }),
        Frame::DeleteStreamResponse(code_resp(8, 2)),
        Frame::Metadata(Metadata {
            correlation_id: 9,
            streams: vec![s("a"), s("b")],
        }),
        Frame::MetadataResponse(MetadataResponse {
            correlation_id: 9,
            brokers: vec![
                Broker {
                    reference: 0,
                    host: s("node-0"),
                    port: 5552,
                },
                Broker {
                    reference: 1,
                    host: s("node-1"),
                    port: 5552,
                },
            ],
            streams: vec![
                StreamMetadata {
                    stream: s("a"),
                    code: ResponseCode::OK,
                    leader: Some(0),
                    replicas: vec![1],
                },
                StreamMetadata {
                    stream: s("b"),
                    code: ResponseCode::STREAM_DOES_NOT_EXIST,
                    leader: None,
                    replicas: vec![],
                },
            ],
        }),
        Frame::MetadataUpdate(MetadataUpdate {
            code: ResponseCode::STREAM_NOT_AVAILABLE,
            stream: s("a"),
        }),
        Frame::PeerProperties(PeerProperties {
            correlation_id: 10,
            properties: map(&[("product", "rmqstream"), ("connection_name", "c1")]),
        }),
        Frame::PeerPropertiesResponse(PeerPropertiesResponse {
            correlation_id: 10,
            code: ResponseCode::OK,
            properties: map(&[("version", "4.0.5")]),
        }),
        Frame::SaslHandshake(SaslHandshake { correlation_id: 11 }),
        Frame::SaslHandshakeResponse(SaslHandshakeResponse {
            correlation_id: 11,
            code: ResponseCode::OK,
            mechanisms: vec![s("PLAIN"), s("AMQPLAIN")],
        }),
        Frame::SaslAuthenticate(SaslAuthenticate {
            correlation_id: 12,
            mechanism: s("PLAIN"),
            sasl_data: Some(Bytes::from_static(b"\0guest\0guest")),
        }),
        Frame::SaslAuthenticate(SaslAuthenticate {
            correlation_id: 12,
            mechanism: s("EXTERNAL"),
            sasl_data: None,
        }),
        Frame::SaslAuthenticateResponse(SaslAuthenticateResponse {
            correlation_id: 12,
            code: ResponseCode::OK,
            challenge: None,
        }),
        Frame::SaslAuthenticateResponse(SaslAuthenticateResponse {
            correlation_id: 12,
            code: ResponseCode::SASL_CHALLENGE,
            challenge: Some(Bytes::from_static(b"\x01\x02")),
        }),
        Frame::Tune(Tune {
            frame_max: 1_048_576,
            heartbeat: 60,
        }),
        Frame::TuneResponse(Tune {
            frame_max: 0,
            heartbeat: 0,
        }),
        Frame::Open(Open {
            correlation_id: 13,
            virtual_host: s("/"),
        }),
        Frame::OpenResponse(OpenResponse {
            correlation_id: 13,
            code: ResponseCode::OK,
            properties: map(&[
                ("advertised_host", "localhost"),
                ("advertised_port", "5552"),
            ]),
        }),
        Frame::OpenResponse(OpenResponse {
            correlation_id: 13,
            code: ResponseCode::VIRTUAL_HOST_ACCESS_FAILURE,
            properties: vec![],
        }),
        Frame::Close(Close {
            correlation_id: 14,
            code: ResponseCode::OK,
            reason: s("bye"),
        }),
        Frame::CloseResponse(code_resp(14, 1)),
        Frame::Heartbeat,
        Frame::Route(Route {
            correlation_id: 15,
            routing_key: s("key"),
            super_stream: s("invoices"),
        }),
        Frame::RouteResponse(StreamsResponse {
            correlation_id: 15,
            code: ResponseCode::OK,
            streams: vec![s("invoices-1")],
        }),
        Frame::Partitions(Partitions {
            correlation_id: 16,
            super_stream: s("invoices"),
        }),
        Frame::PartitionsResponse(StreamsResponse {
            correlation_id: 16,
            code: ResponseCode::OK,
            streams: vec![s("invoices-0"), s("invoices-1"), s("invoices-2")],
        }),
        Frame::ConsumerUpdate(ConsumerUpdate {
            correlation_id: 17,
            subscription_id: 1,
            active: true,
        }),
        Frame::ConsumerUpdate(ConsumerUpdate {
            correlation_id: 17,
            subscription_id: 1,
            active: false,
        }),
        Frame::ConsumerUpdateResponse(ConsumerUpdateResponse {
            correlation_id: 17,
            code: ResponseCode::OK,
            offset_spec: None,
        }),
        Frame::ConsumerUpdateResponse(ConsumerUpdateResponse {
            correlation_id: 17,
            code: ResponseCode::OK,
            offset_spec: Some(OffsetSpec::Offset(12)),
        }),
        Frame::ExchangeCommandVersions(ExchangeCommandVersions {
            correlation_id: 18,
            commands: vec![CommandVersion {
                key: key::DELIVER,
                min_version: 1,
                max_version: 2,
            }],
        }),
        Frame::ExchangeCommandVersionsResponse(ExchangeCommandVersionsResponse {
            correlation_id: 18,
            code: ResponseCode::OK,
            commands: vec![
                CommandVersion {
                    key: key::PUBLISH,
                    min_version: 1,
                    max_version: 2,
                },
                CommandVersion {
                    key: key::RESOLVE_OFFSET_SPEC,
                    min_version: 1,
                    max_version: 1,
                },
            ],
        }),
        Frame::StreamStats(StreamStats {
            correlation_id: 19,
            stream: s("a"),
        }),
        Frame::StreamStatsResponse(StreamStatsResponse {
            correlation_id: 19,
            code: ResponseCode::OK,
            stats: vec![(s("first_chunk_id"), 0), (s("committed_chunk_id"), -1)],
        }),
        Frame::CreateSuperStream(CreateSuperStream {
            correlation_id: 20,
            name: s("invoices"),
            partitions: vec![s("invoices-0"), s("invoices-1")],
            binding_keys: vec![s("0"), s("1")],
            arguments: map(&[("max-age", "1h")]),
        }),
        Frame::CreateSuperStreamResponse(code_resp(20, 1)),
        Frame::DeleteSuperStream(DeleteSuperStream {
            correlation_id: 21,
            name: s("invoices"),
        }),
        Frame::DeleteSuperStreamResponse(code_resp(21, 1)),
        Frame::ResolveOffsetSpec(ResolveOffsetSpec {
            correlation_id: 22,
            stream: s("a"),
            offset_spec: OffsetSpec::Timestamp(1_700_000_000_000),
            properties: map(&[("filter.0", "eu")]),
        }),
        Frame::ResolveOffsetSpec(ResolveOffsetSpec {
            correlation_id: 22,
            stream: s("a"),
            offset_spec: OffsetSpec::Last,
            properties: vec![],
        }),
        Frame::ResolveOffsetSpecResponse(ResolveOffsetSpecResponse {
            correlation_id: 22,
            code: ResponseCode::OK,
            offset_type: 4,
            offset: 500,
        }),
    ]
}

/// Encodes a frame and returns (whole frame, body without prefix).
fn encode(f: &Frame) -> (BytesMut, Bytes) {
    let mut buf = BytesMut::new();
    f.encode(&mut buf).unwrap();
    let body = Bytes::copy_from_slice(&buf[4..]);
    (buf, body)
}

fn hex(s: &str) -> Vec<u8> {
    let digits: Vec<u8> = s
        .bytes()
        .filter(u8::is_ascii_hexdigit)
        .map(|c| (c as char).to_digit(16).unwrap() as u8)
        .collect();
    digits.chunks(2).map(|p| p[0] << 4 | p[1]).collect()
}

/// Hand-written frame: size prefix computed, body given in hex and literal strings.
fn frame_bytes(parts: &[&[u8]]) -> Vec<u8> {
    let body: Vec<u8> = parts.concat();
    let mut out = (body.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(&body);
    out
}

#[test]
fn every_variant_round_trips() {
    for f in samples() {
        let (buf, body) = encode(&f);
        let size = u32::from_be_bytes(buf[..4].try_into().unwrap()) as usize;
        assert_eq!(size, buf.len() - 4, "{f:?}");
        assert_eq!(u16::from_be_bytes([body[0], body[1]]), f.key());
        assert_eq!(u16::from_be_bytes([body[2], body[3]]), f.version());
        assert_eq!(Frame::decode(body.clone()).as_ref(), Ok(&f));
        if !matches!(f, Frame::Route(_) | Frame::Partitions(_)) {
            assert_eq!(Frame::decode_server(body).as_ref(), Ok(&f));
        }
        assert_eq!(frame_len(&buf, 0), Ok(Some(buf.len())));
    }
}

#[test]
fn samples_cover_every_key_and_version() {
    let covered: BTreeSet<(u16, u16)> = samples().iter().map(|f| (f.key(), f.version())).collect();
    let mut expected: BTreeSet<(u16, u16)> = key::ALL.iter().map(|k| (*k, 1)).collect();
    expected.insert((key::PUBLISH, 2));
    expected.insert((key::DELIVER, 2));
    for k in [
        key::DECLARE_PUBLISHER,
        key::QUERY_PUBLISHER_SEQUENCE,
        key::DELETE_PUBLISHER,
        key::SUBSCRIBE,
        key::CREDIT,
        key::QUERY_OFFSET,
        key::UNSUBSCRIBE,
        key::CREATE,
        key::DELETE,
        key::METADATA,
        key::PEER_PROPERTIES,
        key::SASL_HANDSHAKE,
        key::SASL_AUTHENTICATE,
        key::TUNE,
        key::OPEN,
        key::CLOSE,
        key::ROUTE,
        key::PARTITIONS,
        key::CONSUMER_UPDATE,
        key::EXCHANGE_COMMAND_VERSIONS,
        key::STREAM_STATS,
        key::CREATE_SUPER_STREAM,
        key::DELETE_SUPER_STREAM,
        key::RESOLVE_OFFSET_SPEC,
    ] {
        expected.insert((k | 0x8000, 1));
    }
    assert_eq!(covered, expected);
    assert_eq!(covered.len(), 57);
}

#[test]
fn correlation_ids_and_directions() {
    for f in samples() {
        let has_corr = !matches!(
            f,
            Frame::Publish(_)
                | Frame::PublishConfirm(_)
                | Frame::PublishError(_)
                | Frame::Deliver(_)
                | Frame::Credit(_)
                | Frame::CreditResponse(_)
                | Frame::StoreOffset(_)
                | Frame::MetadataUpdate(_)
                | Frame::Tune(_)
                | Frame::TuneResponse(_)
                | Frame::Heartbeat
        );
        assert_eq!(f.correlation_id().is_some(), has_corr, "{f:?}");
        if let Some(c) = f.correlation_id() {
            // The correlation id follows key and version on the wire.
            let (_, body) = encode(&f);
            assert_eq!(u32::from_be_bytes(body[4..8].try_into().unwrap()), c);
        }
        assert_eq!(f.is_response(), f.key() & 0x8000 != 0);
    }
}

/// Frames whose body may legitimately end early (optional tails), so that some prefixes of
/// them are valid frames too.
fn has_optional_tail(f: &Frame) -> bool {
    match f {
        Frame::Deliver(_) | Frame::PeerProperties(_) | Frame::PeerPropertiesResponse(_) => true,
        Frame::Subscribe(x) => !x.properties.is_empty(),
        Frame::ResolveOffsetSpec(x) => !x.properties.is_empty(),
        Frame::OpenResponse(x) => !x.properties.is_empty(),
        Frame::SaslAuthenticateResponse(x) => x.challenge.is_some(),
        _ => false,
    }
}

#[test]
fn every_truncation_is_an_error_never_a_panic() {
    for f in samples() {
        let (_, body) = encode(&f);
        for n in 0..body.len() {
            let prefix = body.slice(..n);
            let res = Frame::decode(prefix.clone());
            let _ = Frame::decode_server(prefix);
            if !has_optional_tail(&f) {
                assert!(res.is_err(), "prefix {n} of {f:?} decoded as {res:?}");
            } else if let Ok(g) = res {
                assert_ne!(g, f);
            }
        }
    }
}

#[test]
fn trailing_bytes_are_rejected() {
    for f in samples() {
        if matches!(f, Frame::Deliver(_)) {
            continue; // the chunk runs to the end of the frame
        }
        let (_, body) = encode(&f);
        let mut longer = body.to_vec();
        longer.push(0);
        let res = Frame::decode(Bytes::from(longer));
        let optional_tail_type = matches!(
            f,
            Frame::Subscribe(_)
                | Frame::ResolveOffsetSpec(_)
                | Frame::OpenResponse(_)
                | Frame::PeerProperties(_)
                | Frame::PeerPropertiesResponse(_)
                | Frame::SaslAuthenticateResponse(_)
        );
        if optional_tail_type {
            // An extra byte starts an (incomplete) optional tail: still an error.
            assert!(res.is_err(), "{f:?}");
        } else {
            assert_eq!(res, Err(DecodeError::TrailingBytes(1)), "{f:?}");
        }
    }
}

// ---- golden bytes, written by hand from the protocol reference ----

#[test]
fn golden_peer_properties_request() {
    let f = Frame::PeerProperties(PeerProperties {
        correlation_id: 1,
        properties: map(&[("product", "rmq")]),
    });
    let want = frame_bytes(&[
        &hex("0011 0001 00000001 00000001"),
        &hex("0007"),
        b"product",
        &hex("0003"),
        b"rmq",
    ]);
    assert_eq!(encode(&f).0.to_vec(), want);
    assert_eq!(want[..4], [0, 0, 0, 26]);
}

#[test]
fn golden_subscribe_first_has_no_offset_value() {
    let f = Frame::Subscribe(Subscribe {
        correlation_id: 2,
        subscription_id: 5,
        stream: s("st"),
        offset_spec: OffsetSpec::First,
        credit: 10,
        properties: vec![],
    });
    // corrId, subId, stream, offsetType 1, credit; no offset value, no properties.
    let want = frame_bytes(&[&hex("0007 0001 00000002 05 0002"), b"st", &hex("0001 000a")]);
    assert_eq!(encode(&f).0.to_vec(), want);
}

#[test]
fn golden_subscribe_offset_carries_value_and_properties() {
    let f = Frame::Subscribe(Subscribe {
        correlation_id: 2,
        subscription_id: 5,
        stream: s("st"),
        offset_spec: OffsetSpec::Offset(0x0102_0304_0506_0708),
        credit: 1,
        properties: map(&[("name", "c")]),
    });
    let want = frame_bytes(&[
        &hex("0007 0001 00000002 05 0002"),
        b"st",
        &hex("0004 0102030405060708 0001"),
        &hex("00000001 0004"),
        b"name",
        &hex("0001"),
        b"c",
    ]);
    assert_eq!(encode(&f).0.to_vec(), want);
}

#[test]
fn golden_deliver_v1_and_v2_headers() {
    let chunk = fake_chunk(b"abc");
    let v1 = frame_bytes(&[&hex("0008 0001 07"), &chunk]);
    let f = Frame::decode(Bytes::copy_from_slice(&v1[4..])).unwrap();
    assert_eq!(
        f,
        Frame::Deliver(Deliver {
            subscription_id: 7,
            committed_chunk_id: None,
            chunk: chunk.clone(),
        })
    );
    assert_eq!(encode(&f).0.to_vec(), v1);
    assert_eq!(v1.len(), 4 + 2 + 2 + 1 + 48 + 3);

    let v2 = frame_bytes(&[&hex("0008 0002 07 00000000000003e8"), &chunk]);
    let f = Frame::decode(Bytes::copy_from_slice(&v2[4..])).unwrap();
    assert_eq!(
        f,
        Frame::Deliver(Deliver {
            subscription_id: 7,
            committed_chunk_id: Some(1000),
            chunk,
        })
    );
    assert_eq!(encode(&f).0.to_vec(), v2);
}

#[test]
fn deliver_chunk_is_zero_copy() {
    let deliver = samples()
        .into_iter()
        .find(|f| matches!(f, Frame::Deliver(_)))
        .unwrap();
    let (_, body) = encode(&deliver);
    let Ok(Frame::Deliver(d)) = Frame::decode(body.clone()) else {
        panic!("not a deliver")
    };
    // The chunk points into the decoded body.
    assert_eq!(d.chunk.as_ptr(), body[5..].as_ptr());
}

#[test]
fn golden_metadata_response_with_no_leader() {
    let wire = frame_bytes(&[
        &hex("800f 0001 00000009"),
        &hex("00000001 0000 0009"),
        b"localhost",
        &hex("000015b0"),
        &hex("00000002"),
        &hex("0001"),
        b"a",
        &hex("0001 0000 00000001 0000"),
        &hex("0001"),
        b"b",
        &hex("0002 ffff 00000000"),
    ]);
    let f = Frame::decode(Bytes::copy_from_slice(&wire[4..])).unwrap();
    assert_eq!(
        f,
        Frame::MetadataResponse(MetadataResponse {
            correlation_id: 9,
            brokers: vec![Broker {
                reference: 0,
                host: s("localhost"),
                port: 5552,
            }],
            streams: vec![
                StreamMetadata {
                    stream: s("a"),
                    code: ResponseCode::OK,
                    leader: Some(0),
                    replicas: vec![0],
                },
                StreamMetadata {
                    stream: s("b"),
                    code: ResponseCode::STREAM_DOES_NOT_EXIST,
                    leader: None,
                    replicas: vec![],
                },
            ],
        })
    );
    assert_eq!(encode(&f).0.to_vec(), wire);
}

#[test]
fn golden_credit_error_response_has_no_correlation_id() {
    let wire = frame_bytes(&[&hex("8009 0001 0004 03")]);
    assert_eq!(wire, hex("00000007 8009 0001 0004 03"));
    let f = Frame::decode_server(Bytes::copy_from_slice(&wire[4..])).unwrap();
    assert_eq!(
        f,
        Frame::CreditResponse(CreditResponse {
            code: ResponseCode::SUBSCRIPTION_ID_DOES_NOT_EXIST,
            subscription_id: 3,
        })
    );
    assert_eq!(f.correlation_id(), None);
    assert_eq!(encode(&f).0.to_vec(), wire);
}

#[test]
fn golden_tune_and_tune_reply() {
    let wire = hex("0000000c 0014 0001 00100000 0000003c");
    let f = Frame::decode(Bytes::copy_from_slice(&wire[4..])).unwrap();
    let tune = Tune {
        frame_max: 1_048_576,
        heartbeat: 60,
    };
    assert_eq!(f, Frame::Tune(tune));
    let mut reply = BytesMut::new();
    Frame::TuneResponse(tune).encode(&mut reply).unwrap();
    assert_eq!(reply.to_vec(), hex("0000000c 8014 0001 00100000 0000003c"));
}

#[test]
fn golden_small_frames() {
    let cases: Vec<(Frame, Vec<u8>)> = vec![
        (Frame::Heartbeat, hex("00000004 0017 0001")),
        (
            Frame::SaslHandshake(SaslHandshake { correlation_id: 3 }),
            hex("00000008 0012 0001 00000003"),
        ),
        (
            Frame::Credit(Credit {
                subscription_id: 2,
                credit: 5,
            }),
            hex("00000007 0009 0001 02 0005"),
        ),
        (
            Frame::SaslAuthenticate(SaslAuthenticate {
                correlation_id: 4,
                mechanism: s("PLAIN"),
                sasl_data: None,
            }),
            frame_bytes(&[&hex("0013 0001 00000004 0005"), b"PLAIN", &hex("ffffffff")]),
        ),
        (
            Frame::SaslAuthenticateResponse(SaslAuthenticateResponse {
                correlation_id: 4,
                code: ResponseCode::SASL_CHALLENGE,
                challenge: Some(Bytes::from_static(b"ch")),
            }),
            // Challenge with an int16 length (broker CORE), not int32.
            frame_bytes(&[&hex("8013 0001 00000004 000a 0002"), b"ch"]),
        ),
        (
            Frame::ConsumerUpdateResponse(ConsumerUpdateResponse {
                correlation_id: 8,
                code: ResponseCode::OK,
                offset_spec: None,
            }),
            hex("0000000c 801a 0001 00000008 0001 0000"),
        ),
        (
            Frame::ConsumerUpdateResponse(ConsumerUpdateResponse {
                correlation_id: 8,
                code: ResponseCode::OK,
                offset_spec: Some(OffsetSpec::Timestamp(1)),
            }),
            hex("00000014 801a 0001 00000008 0001 0005 0000000000000001"),
        ),
        (
            Frame::OpenResponse(OpenResponse {
                correlation_id: 1,
                code: ResponseCode::VIRTUAL_HOST_ACCESS_FAILURE,
                properties: vec![],
            }),
            hex("0000000a 8015 0001 00000001 000c"),
        ),
        (
            Frame::ResolveOffsetSpecResponse(ResolveOffsetSpecResponse {
                correlation_id: 1,
                code: ResponseCode::OK,
                offset_type: 4,
                offset: 7,
            }),
            hex("00000014 801f 0001 00000001 0001 0004 0000000000000007"),
        ),
    ];
    for (f, wire) in cases {
        assert_eq!(encode(&f).0.to_vec(), wire, "{f:?}");
        assert_eq!(Frame::decode(Bytes::copy_from_slice(&wire[4..])), Ok(f));
    }
}

#[test]
fn golden_publish_v1_v2_and_sub_entry() {
    let v1 = Frame::Publish(Publish {
        publisher_id: 1,
        version: PublishVersion::V1,
        entries: vec![PublishEntry::Simple {
            publishing_id: 2,
            filter_value: None,
            body: Bytes::from_static(b"hi"),
        }],
    });
    assert_eq!(
        encode(&v1).0.to_vec(),
        hex("00000017 0002 0001 01 00000001 0000000000000002 00000002 6869")
    );
    let v2 = Frame::Publish(Publish {
        publisher_id: 1,
        version: PublishVersion::V2,
        entries: vec![
            PublishEntry::Simple {
                publishing_id: 2,
                filter_value: Some(s("f")),
                body: Bytes::from_static(b"hi"),
            },
            PublishEntry::Simple {
                publishing_id: 3,
                filter_value: None,
                body: Bytes::from_static(b""),
            },
        ],
    });
    assert_eq!(
        encode(&v2).0.to_vec(),
        hex("00000028 0002 0002 01 00000002 \
             0000000000000002 0001 66 00000002 6869 \
             0000000000000003 ffff 00000000")
    );
    let sub = Frame::Publish(Publish {
        publisher_id: 1,
        version: PublishVersion::V1,
        entries: vec![PublishEntry::SubEntry {
            publishing_id: 9,
            compression: 4,
            record_count: 2,
            uncompressed_size: 10,
            data: Bytes::from_static(b"zz"),
        }],
    });
    assert_eq!(
        encode(&sub).0.to_vec(),
        hex("0000001e 0002 0001 01 00000001 0000000000000009 c0 0002 0000000a 00000002 7a7a")
    );
}

// ---- malformed input ----

#[test]
fn bad_utf8_is_rejected() {
    let body = hex("000e 0001 00000001 0002 c328");
    assert_eq!(
        Frame::decode(Bytes::from(body)),
        Err(DecodeError::InvalidUtf8)
    );
    // In a map key too.
    let body = hex("0011 0001 00000001 00000001 0001 ff 0000");
    assert_eq!(
        Frame::decode(Bytes::from(body)),
        Err(DecodeError::InvalidUtf8)
    );
}

#[test]
fn absurd_array_counts_fail_before_allocating() {
    let huge = [
        "000f 0001 00000001 7fffffff 0000",            // Metadata [stream]
        "0003 0001 01 7fffffff 00",                    // PublishConfirm [u64]
        "0002 0001 01 7fffffff",                       // Publish entries
        "0002 0002 01 7fffffff 0000000000000000 ffff", // Publish v2
        "800f 0001 00000001 7fffffff",                 // Metadata brokers
        "800f 0001 00000001 00000000 7fffffff",        // Metadata streams
        "801b 0001 00000001 0001 7fffffff 0001",       // command versions
        "801c 0001 00000001 0001 7fffffff",            // stats
        "0004 0001 01 7fffffff",                       // publish errors
        "800f 0001 00000001 00000000 00000001 0000 0001 0000 7fffffff", // replicas
    ];
    for h in huge {
        let res = Frame::decode(Bytes::from(hex(h)));
        assert!(
            matches!(res, Err(DecodeError::Truncated { .. })),
            "{h}: {res:?}"
        );
    }
    let negative = hex("000f 0001 00000001 ffffffff");
    assert_eq!(
        Frame::decode(Bytes::from(negative)),
        Err(DecodeError::InvalidLength(-1))
    );
}

#[test]
fn unknown_keys_and_versions() {
    for k in [
        0x0000u16, 0x0020, 0x7fff, 0x8002, 0x8003, 0x8004, 0x8008, 0x800a, 0x8010, 0x8017, 0xffff,
    ] {
        let mut body = k.to_be_bytes().to_vec();
        body.extend_from_slice(&[0, 1, 0, 0, 0, 1]);
        assert_eq!(
            Frame::decode(Bytes::from(body.clone())),
            Err(DecodeError::UnknownKey(k)),
            "{k:#06x}"
        );
        assert_eq!(
            Frame::decode_server(Bytes::from(body)),
            Err(DecodeError::UnknownKey(k))
        );
    }
    for (k, v) in [
        (key::SUBSCRIBE, 2u16),
        (key::HEARTBEAT, 0),
        (key::PUBLISH, 3),
        (key::PUBLISH, 0),
        (key::DELIVER, 3),
        (key::TUNE | 0x8000, 2),
        (key::ROUTE, 2),
    ] {
        let mut body = k.to_be_bytes().to_vec();
        body.extend_from_slice(&v.to_be_bytes());
        body.extend_from_slice(&[0; 16]);
        let want = Err(DecodeError::UnsupportedVersion { key: k, version: v });
        assert_eq!(Frame::decode(Bytes::from(body.clone())), want);
        assert_eq!(Frame::decode_server(Bytes::from(body)), want);
    }
}

#[test]
fn invalid_values_are_rejected() {
    let cases = [
        "001a 0001 00000001 01 02",                // ConsumerUpdate active = 2
        "0007 0001 00000001 01 0001 61 0009 0001", // Subscribe offset type 9
        "0007 0001 00000001 01 0001 61 0000 0001", // Subscribe offset type 0
        "801a 0001 00000001 0001 0006",            // ConsumerUpdate response type 6
        "0002 0002 01 00000001 0000000000000001 ffff 80 0001 00000000 00000000", // v2 sub-entry
    ];
    for h in cases {
        let res = Frame::decode(Bytes::from(hex(h)));
        assert!(
            matches!(res, Err(DecodeError::InvalidValue(_))),
            "{h}: {res:?}"
        );
    }
    assert_eq!(
        Frame::decode(Bytes::from(hex("0013 0001 00000001 0001 50 fffffffe"))),
        Err(DecodeError::InvalidLength(-2))
    );
    assert_eq!(
        Frame::decode(Bytes::from(hex("0011 0001 00000001 00000001 fffe 0000"))),
        Err(DecodeError::InvalidLength(-2))
    );
}

#[test]
fn optional_tails_may_be_absent() {
    // Subscribe without properties map.
    let f = Frame::decode(Bytes::from(hex("0007 0001 00000001 01 0001 61 0002 0001"))).unwrap();
    assert!(
        matches!(f, Frame::Subscribe(Subscribe { ref properties, .. }) if properties.is_empty())
    );
    // Subscribe with an explicitly empty map decodes the same.
    let g = Frame::decode(Bytes::from(hex(
        "0007 0001 00000001 01 0001 61 0002 0001 00000000",
    )))
    .unwrap();
    assert_eq!(f, g);
    // Open response without properties.
    let f = Frame::decode(Bytes::from(hex("8015 0001 00000001 0001"))).unwrap();
    assert!(
        matches!(f, Frame::OpenResponse(OpenResponse { ref properties, .. }) if properties.is_empty())
    );
    // PeerProperties response without map.
    assert!(Frame::decode(Bytes::from(hex("8011 0001 00000001 0001"))).is_ok());
    // SaslAuthenticate response without challenge.
    let f = Frame::decode(Bytes::from(hex("8013 0001 00000001 0001"))).unwrap();
    assert!(matches!(
        f,
        Frame::SaslAuthenticateResponse(SaslAuthenticateResponse {
            challenge: None,
            ..
        })
    ));
    // ResolveOffsetSpec request without properties.
    assert!(Frame::decode(Bytes::from(hex("001f 0001 00000001 0001 61 0001"))).is_ok());
}

// ---- old brokers: Route/Partitions responses without the response bit ----

#[test]
fn legacy_route_and_partitions_responses() {
    let route = hex("0018 0001 00000005 0001 00000002 0001 61 0001 62");
    assert_eq!(
        Frame::decode_server(Bytes::from(route.clone())),
        Ok(Frame::RouteResponse(StreamsResponse {
            correlation_id: 5,
            code: ResponseCode::OK,
            streams: vec![s("a"), s("b")],
        }))
    );
    // Plain decode reads the same bytes as a (malformed) Route request.
    assert!(Frame::decode(Bytes::from(route)).is_err());

    let partitions = hex("0019 0001 00000006 0001 00000001 0003 782d30");
    assert_eq!(
        Frame::decode_server(Bytes::from(partitions)),
        Ok(Frame::PartitionsResponse(StreamsResponse {
            correlation_id: 6,
            code: ResponseCode::OK,
            streams: vec![s("x-0")],
        }))
    );
    let empty = hex("0019 0001 00000006 0002 00000000");
    assert_eq!(
        Frame::decode_server(Bytes::from(empty)),
        Ok(Frame::PartitionsResponse(StreamsResponse {
            correlation_id: 6,
            code: ResponseCode::STREAM_DOES_NOT_EXIST,
            streams: vec![],
        }))
    );

    // 3.9.0–3.9.5: Route answered a single string.
    for (tail, want) in [("0003 782d31", "x-1"), ("0000", "")] {
        let single = hex(&format!("0018 0001 00000007 0001 {tail}"));
        assert_eq!(
            Frame::decode_server(Bytes::from(single)),
            Ok(Frame::RouteResponse(StreamsResponse {
                correlation_id: 7,
                code: ResponseCode::OK,
                streams: vec![s(want)],
            }))
        );
    }
    // Partitions never had the single-string form.
    assert!(Frame::decode_server(Bytes::from(hex("0019 0001 00000007 0001 0003 782d31"))).is_err());
    // Neither layout: errors, no panic.
    for bad in [
        "0018 0001 00000007 0001",
        "0018 0001 00000007 0001 00",
        "0018 0001 00000007 0001 00000001 0001 61 00",
        "0018 0001 00000007 0001 0003 782d",
        "0018 0002 00000007 0001 00000000",
    ] {
        assert!(
            Frame::decode_server(Bytes::from(hex(bad))).is_err(),
            "{bad}"
        );
    }
    // The modern keys still work through decode_server.
    let modern = hex("8018 0001 00000005 0001 00000000");
    assert!(matches!(
        Frame::decode_server(Bytes::from(modern)),
        Ok(Frame::RouteResponse(_))
    ));
}

// ---- encoding errors ----

#[test]
fn encode_errors_leave_the_buffer_untouched() {
    let long = "x".repeat(40_000);
    let bad = [
        Frame::DeleteStream(DeleteStream {
            correlation_id: 1,
            stream: long.clone(),
        }),
        Frame::Credit(Credit {
            subscription_id: 1,
            credit: 0x8000,
        }),
        Frame::MetadataResponse(MetadataResponse {
            correlation_id: 1,
            brokers: vec![],
            streams: vec![StreamMetadata {
                stream: s("a"),
                code: ResponseCode::OK,
                leader: Some(0xffff),
                replicas: vec![],
            }],
        }),
        Frame::Publish(Publish {
            publisher_id: 1,
            version: PublishVersion::V1,
            entries: vec![PublishEntry::Simple {
                publishing_id: 1,
                filter_value: Some(s("f")),
                body: Bytes::new(),
            }],
        }),
        Frame::Publish(Publish {
            publisher_id: 1,
            version: PublishVersion::V2,
            entries: vec![PublishEntry::SubEntry {
                publishing_id: 1,
                compression: 0,
                record_count: 0,
                uncompressed_size: 0,
                data: Bytes::new(),
            }],
        }),
        Frame::Publish(Publish {
            publisher_id: 1,
            version: PublishVersion::V1,
            entries: vec![PublishEntry::SubEntry {
                publishing_id: 1,
                compression: 8,
                record_count: 0,
                uncompressed_size: 0,
                data: Bytes::new(),
            }],
        }),
        Frame::Publish(Publish {
            publisher_id: 1,
            version: PublishVersion::V2,
            entries: vec![PublishEntry::Simple {
                publishing_id: 1,
                filter_value: Some(long),
                body: Bytes::new(),
            }],
        }),
    ];
    for f in bad {
        let mut buf = BytesMut::from(&b"keep"[..]);
        assert!(f.encode(&mut buf).is_err(), "{f:?}");
        assert_eq!(&buf[..], b"keep");
    }
}

// ---- hot-path publish writer ----

#[test]
fn publish_writer_matches_frame_encode_and_sizes() {
    let mut buf = BytesMut::new();
    let mut w = PublishFrameWriter::begin(&mut buf, 9, PublishVersion::V1);
    assert_eq!(w.frame_len(), PUBLISH_HEADER_LEN);
    assert_eq!(buf.len(), PUBLISH_HEADER_LEN);
    w.push_simple(&mut buf, 1, b"one").unwrap();
    assert_eq!(
        buf.len(),
        PUBLISH_HEADER_LEN + simple_entry_len(PublishVersion::V1, None, 3)
    );
    w.push_sub_entry(&mut buf, 2, 0, 1, 7, b"\0\0\0\x03two")
        .unwrap();
    assert_eq!(w.frame_len(), buf.len());
    assert_eq!(w.count(), 2);
    w.finish(&mut buf).unwrap();

    let f = Frame::Publish(Publish {
        publisher_id: 9,
        version: PublishVersion::V1,
        entries: vec![
            PublishEntry::Simple {
                publishing_id: 1,
                filter_value: None,
                body: Bytes::from_static(b"one"),
            },
            PublishEntry::SubEntry {
                publishing_id: 2,
                compression: 0,
                record_count: 1,
                uncompressed_size: 7,
                data: Bytes::from_static(b"\0\0\0\x03two"),
            },
        ],
    });
    assert_eq!(buf, encode(&f).0);
    if let Frame::Publish(p) = &f {
        let total: usize = p.entries.iter().map(|e| e.encoded_len(p.version)).sum();
        assert_eq!(buf.len(), PUBLISH_HEADER_LEN + total);
    }

    let mut buf = BytesMut::new();
    let mut w = PublishFrameWriter::begin(&mut buf, 1, PublishVersion::V2);
    w.push_filtered(&mut buf, 5, Some("eu"), b"m").unwrap();
    w.push_simple(&mut buf, 6, b"n").unwrap();
    assert_eq!(
        buf.len(),
        PUBLISH_HEADER_LEN
            + simple_entry_len(PublishVersion::V2, Some("eu"), 1)
            + simple_entry_len(PublishVersion::V2, None, 1)
    );
    w.finish(&mut buf).unwrap();
    let Ok(Frame::Publish(p)) = Frame::decode(buf.split_off(4).freeze()) else {
        panic!("not a publish")
    };
    assert_eq!(p.entries.len(), 2);
    assert_eq!(p.entries[0].publishing_id(), 5);
}

#[test]
fn publish_writer_does_not_allocate_per_message() {
    let body = [7u8; 100];
    let per_entry = simple_entry_len(PublishVersion::V1, None, body.len());
    let mut buf = BytesMut::with_capacity(PUBLISH_HEADER_LEN + 1000 * per_entry);
    let ptr = buf.as_ptr();
    let cap = buf.capacity();
    let mut w = PublishFrameWriter::begin(&mut buf, 1, PublishVersion::V1);
    for i in 0..1000 {
        w.push_simple(&mut buf, i, &body).unwrap();
    }
    w.finish(&mut buf).unwrap();
    assert_eq!(buf.as_ptr(), ptr);
    assert_eq!(buf.capacity(), cap);
    assert_eq!(buf.len(), PUBLISH_HEADER_LEN + 1000 * per_entry);
}

#[test]
fn publish_writer_rejections_leave_a_valid_frame() {
    let mut buf = BytesMut::new();
    let mut w = PublishFrameWriter::begin(&mut buf, 1, PublishVersion::V1);
    w.push_simple(&mut buf, 1, b"a").unwrap();
    let len = buf.len();
    assert!(w.push_filtered(&mut buf, 2, Some("f"), b"b").is_err());
    assert!(w.push_sub_entry(&mut buf, 2, 8, 0, 0, b"").is_err());
    assert_eq!(buf.len(), len);
    w.finish(&mut buf).unwrap();
    assert!(Frame::decode(buf.split_off(4).freeze()).is_ok());

    let mut buf = BytesMut::new();
    let mut w = PublishFrameWriter::begin(&mut buf, 1, PublishVersion::V2);
    assert!(w.push_sub_entry(&mut buf, 2, 0, 0, 0, b"").is_err());
    assert_eq!(w.count(), 0);
    assert_eq!(w.version(), PublishVersion::V2);
}

#[test]
fn publish_writer_survives_consumption_of_earlier_bytes_and_can_abort() {
    let mut buf = BytesMut::new();
    Frame::Heartbeat.encode(&mut buf).unwrap();
    let mut w = PublishFrameWriter::begin(&mut buf, 1, PublishVersion::V1);
    w.push_simple(&mut buf, 1, b"a").unwrap();
    // A writer task ships the heartbeat meanwhile.
    let hb = buf.split_to(8);
    assert_eq!(&hb[..], &hex("00000004 0017 0001")[..]);
    w.push_simple(&mut buf, 2, b"b").unwrap();
    w.finish(&mut buf).unwrap();
    assert_eq!(frame_len(&buf, 0), Ok(Some(buf.len())));
    let Ok(Frame::Publish(p)) = Frame::decode(buf.split_off(4).freeze()) else {
        panic!("not a publish")
    };
    assert_eq!(p.entries.len(), 2);

    let mut buf = BytesMut::from(&b"prev"[..]);
    let mut w = PublishFrameWriter::begin(&mut buf, 1, PublishVersion::V1);
    w.push_simple(&mut buf, 1, b"a").unwrap();
    w.abort(&mut buf);
    assert_eq!(&buf[..], b"prev");

    // Finishing after the frame was removed from the buffer is an error, not a panic.
    let mut buf = BytesMut::new();
    let w = PublishFrameWriter::begin(&mut buf, 1, PublishVersion::V1);
    buf.clear();
    assert!(w.finish(&mut buf).is_err());
}

// ---- stream framing ----

#[test]
fn frame_len_and_split_frame() {
    assert_eq!(frame_len(&[], 0), Ok(None));
    assert_eq!(frame_len(&[0, 0, 0], 0), Ok(None));
    assert_eq!(frame_len(&[0, 0, 0, 4, 0, 0x17, 0], 0), Ok(None));
    assert_eq!(frame_len(&[0, 0, 0, 4, 0, 0x17, 0, 1, 9], 0), Ok(Some(8)));
    assert_eq!(frame_len(&[0, 0, 0, 4], 4), Ok(None));
    assert_eq!(
        frame_len(&[0, 0, 0, 5], 4),
        Err(DecodeError::FrameTooLarge { size: 5, max: 4 })
    );
    assert_eq!(frame_len(&[0xff, 0xff, 0xff, 0xff], 0), Ok(None));

    let mut buf = BytesMut::new();
    Frame::Heartbeat.encode(&mut buf).unwrap();
    let tune = Frame::Tune(Tune {
        frame_max: 1,
        heartbeat: 2,
    });
    tune.encode(&mut buf).unwrap();
    buf.put_slice(&[0, 0]); // start of a third frame
    let first = split_frame(&mut buf, 0).unwrap().unwrap();
    assert_eq!(Frame::decode(first), Ok(Frame::Heartbeat));
    let second = split_frame(&mut buf, 1024).unwrap().unwrap();
    assert_eq!(Frame::decode(second), Ok(tune));
    assert_eq!(split_frame(&mut buf, 0), Ok(None));
    assert_eq!(buf.len(), 2);
}

#[test]
fn response_code_passes_through_unknown_values() {
    let f = Frame::decode(Bytes::from(hex("8007 0001 00000001 00ff"))).unwrap();
    assert_eq!(f, Frame::SubscribeResponse(code_resp(1, 0xff)));
    let Frame::SubscribeResponse(r) = f else {
        unreachable!()
    };
    assert!(!r.code.is_known());
}

// ---- property tests ----

fn arb_string() -> impl Strategy<Value = String> {
    "\\PC{0,12}"
}

fn arb_map() -> impl Strategy<Value = Vec<(String, String)>> {
    prop::collection::vec((arb_string(), arb_string()), 0..4)
}

fn arb_strings() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(arb_string(), 0..4)
}

fn arb_bytes() -> impl Strategy<Value = Bytes> {
    prop::collection::vec(any::<u8>(), 0..64).prop_map(Bytes::from)
}

fn arb_code() -> impl Strategy<Value = ResponseCode> {
    any::<u16>().prop_map(ResponseCode::from_u16)
}

fn arb_offset_spec() -> impl Strategy<Value = OffsetSpec> {
    prop_oneof![
        Just(OffsetSpec::First),
        Just(OffsetSpec::Last),
        Just(OffsetSpec::Next),
        any::<u64>().prop_map(OffsetSpec::Offset),
        any::<i64>().prop_map(OffsetSpec::Timestamp),
    ]
}

fn arb_code_response() -> impl Strategy<Value = CodeResponse> {
    (any::<u32>(), arb_code()).prop_map(|(correlation_id, code)| CodeResponse {
        correlation_id,
        code,
    })
}

fn arb_streams_response() -> impl Strategy<Value = StreamsResponse> {
    (any::<u32>(), arb_code(), arb_strings()).prop_map(|(correlation_id, code, streams)| {
        StreamsResponse {
            correlation_id,
            code,
            streams,
        }
    })
}

fn arb_publish() -> impl Strategy<Value = Publish> {
    let v1_entry = prop_oneof![
        (any::<u64>(), arb_bytes()).prop_map(|(publishing_id, body)| PublishEntry::Simple {
            publishing_id,
            filter_value: None,
            body,
        }),
        (
            any::<u64>(),
            0u8..8,
            any::<u16>(),
            any::<u32>(),
            arb_bytes()
        )
            .prop_map(
                |(publishing_id, compression, record_count, uncompressed_size, data)| {
                    PublishEntry::SubEntry {
                        publishing_id,
                        compression,
                        record_count,
                        uncompressed_size,
                        data,
                    }
                }
            ),
    ];
    let v2_entry = (any::<u64>(), prop::option::of(arb_string()), arb_bytes()).prop_map(
        |(publishing_id, filter_value, body)| PublishEntry::Simple {
            publishing_id,
            filter_value,
            body,
        },
    );
    prop_oneof![
        (any::<u8>(), prop::collection::vec(v1_entry, 0..5)).prop_map(|(publisher_id, entries)| {
            Publish {
                publisher_id,
                version: PublishVersion::V1,
                entries,
            }
        }),
        (any::<u8>(), prop::collection::vec(v2_entry, 0..5)).prop_map(|(publisher_id, entries)| {
            Publish {
                publisher_id,
                version: PublishVersion::V2,
                entries,
            }
        }),
    ]
}

fn arb_publisher_frames() -> impl Strategy<Value = Frame> {
    prop_oneof![
        (any::<u32>(), any::<u8>(), arb_string(), arb_string()).prop_map(|(c, p, r, s)| {
            Frame::DeclarePublisher(DeclarePublisher {
                correlation_id: c,
                publisher_id: p,
                publisher_reference: r,
                stream: s,
            })
        }),
        arb_code_response().prop_map(Frame::DeclarePublisherResponse),
        arb_publish().prop_map(Frame::Publish),
        (any::<u8>(), prop::collection::vec(any::<u64>(), 0..8)).prop_map(|(p, ids)| {
            Frame::PublishConfirm(PublishConfirm {
                publisher_id: p,
                publishing_ids: ids,
            })
        }),
        (
            any::<u8>(),
            prop::collection::vec((any::<u64>(), arb_code()), 0..8)
        )
            .prop_map(|(p, errs)| Frame::PublishError(PublishError {
                publisher_id: p,
                errors: errs
                    .into_iter()
                    .map(|(publishing_id, code)| PublishingError {
                        publishing_id,
                        code
                    })
                    .collect(),
            })),
        (any::<u32>(), arb_string(), arb_string()).prop_map(|(c, r, s)| {
            Frame::QueryPublisherSequence(QueryPublisherSequence {
                correlation_id: c,
                publisher_reference: r,
                stream: s,
            })
        }),
        (any::<u32>(), arb_code(), any::<u64>()).prop_map(|(c, code, seq)| {
            Frame::QueryPublisherSequenceResponse(QueryPublisherSequenceResponse {
                correlation_id: c,
                code,
                sequence: seq,
            })
        }),
        (any::<u32>(), any::<u8>()).prop_map(|(c, p)| Frame::DeletePublisher(DeletePublisher {
            correlation_id: c,
            publisher_id: p,
        })),
        arb_code_response().prop_map(Frame::DeletePublisherResponse),
    ]
}

fn arb_consumer_frames() -> impl Strategy<Value = Frame> {
    prop_oneof![
        (
            any::<u32>(),
            any::<u8>(),
            arb_string(),
            arb_offset_spec(),
            any::<u16>(),
            arb_map()
        )
            .prop_map(|(c, id, st, o, cr, p)| Frame::Subscribe(Subscribe {
                correlation_id: c,
                subscription_id: id,
                stream: st,
                offset_spec: o,
                credit: cr,
                properties: p,
            })),
        arb_code_response().prop_map(Frame::SubscribeResponse),
        (any::<u8>(), prop::option::of(any::<u64>()), arb_bytes()).prop_map(|(id, cc, ch)| {
            Frame::Deliver(Deliver {
                subscription_id: id,
                committed_chunk_id: cc,
                chunk: ch,
            })
        }),
        (any::<u8>(), 0u16..=0x7fff).prop_map(|(id, c)| Frame::Credit(Credit {
            subscription_id: id,
            credit: c,
        })),
        (arb_code(), any::<u8>()).prop_map(|(code, id)| Frame::CreditResponse(CreditResponse {
            code,
            subscription_id: id,
        })),
        (arb_string(), arb_string(), any::<u64>()).prop_map(|(r, s, o)| Frame::StoreOffset(
            StoreOffset {
                reference: r,
                stream: s,
                offset: o,
            }
        )),
        (any::<u32>(), arb_string(), arb_string()).prop_map(|(c, r, s)| Frame::QueryOffset(
            QueryOffset {
                correlation_id: c,
                reference: r,
                stream: s,
            }
        )),
        (any::<u32>(), arb_code(), any::<u64>()).prop_map(|(c, code, o)| {
            Frame::QueryOffsetResponse(QueryOffsetResponse {
                correlation_id: c,
                code,
                offset: o,
            })
        }),
        (any::<u32>(), any::<u8>()).prop_map(|(c, id)| Frame::Unsubscribe(Unsubscribe {
            correlation_id: c,
            subscription_id: id,
        })),
        arb_code_response().prop_map(Frame::UnsubscribeResponse),
        (any::<u32>(), any::<u8>(), any::<bool>()).prop_map(|(c, id, a)| {
            Frame::ConsumerUpdate(ConsumerUpdate {
                correlation_id: c,
                subscription_id: id,
                active: a,
            })
        }),
        (
            any::<u32>(),
            arb_code(),
            prop::option::of(arb_offset_spec())
        )
            .prop_map(|(c, code, o)| Frame::ConsumerUpdateResponse(
                ConsumerUpdateResponse {
                    correlation_id: c,
                    code,
                    offset_spec: o,
                }
            )),
        (any::<u32>(), arb_string(), arb_offset_spec(), arb_map()).prop_map(|(c, s, o, p)| {
            Frame::ResolveOffsetSpec(ResolveOffsetSpec {
                correlation_id: c,
                stream: s,
                offset_spec: o,
                properties: p,
            })
        }),
        (any::<u32>(), arb_code(), any::<u16>(), any::<u64>()).prop_map(|(c, code, t, o)| {
            Frame::ResolveOffsetSpecResponse(ResolveOffsetSpecResponse {
                correlation_id: c,
                code,
                offset_type: t,
                offset: o,
            })
        }),
    ]
}

fn arb_stream_frames() -> impl Strategy<Value = Frame> {
    let broker =
        (any::<u16>(), arb_string(), any::<u32>()).prop_map(|(reference, host, port)| Broker {
            reference,
            host,
            port,
        });
    let stream_md = (
        arb_string(),
        arb_code(),
        prop::option::of(0u16..0xffff),
        prop::collection::vec(any::<u16>(), 0..4),
    )
        .prop_map(|(stream, code, leader, replicas)| StreamMetadata {
            stream,
            code,
            leader,
            replicas,
        });
    prop_oneof![
        (any::<u32>(), arb_string(), arb_map()).prop_map(|(c, s, a)| Frame::CreateStream(
            CreateStream {
                correlation_id: c,
                stream: s,
                arguments: a,
            }
        )),
        arb_code_response().prop_map(Frame::CreateStreamResponse),
        (any::<u32>(), arb_string()).prop_map(|(c, s)| Frame::DeleteStream(DeleteStream {
            correlation_id: c,
            stream: s,
        })),
        arb_code_response().prop_map(Frame::DeleteStreamResponse),
        (any::<u32>(), arb_strings()).prop_map(|(c, s)| Frame::Metadata(Metadata {
            correlation_id: c,
            streams: s,
        })),
        (
            any::<u32>(),
            prop::collection::vec(broker, 0..3),
            prop::collection::vec(stream_md, 0..3)
        )
            .prop_map(|(c, b, s)| Frame::MetadataResponse(MetadataResponse {
                correlation_id: c,
                brokers: b,
                streams: s,
            })),
        (arb_code(), arb_string())
            .prop_map(|(code, s)| Frame::MetadataUpdate(MetadataUpdate { code, stream: s })),
        (any::<u32>(), arb_string(), arb_string()).prop_map(|(c, k, s)| Frame::Route(Route {
            correlation_id: c,
            routing_key: k,
            super_stream: s,
        })),
        arb_streams_response().prop_map(Frame::RouteResponse),
        (any::<u32>(), arb_string()).prop_map(|(c, s)| Frame::Partitions(Partitions {
            correlation_id: c,
            super_stream: s,
        })),
        arb_streams_response().prop_map(Frame::PartitionsResponse),
        (any::<u32>(), arb_string()).prop_map(|(c, s)| Frame::StreamStats(StreamStats {
            correlation_id: c,
            stream: s,
        })),
        (
            any::<u32>(),
            arb_code(),
            prop::collection::vec((arb_string(), any::<i64>()), 0..4)
        )
            .prop_map(
                |(c, code, stats)| Frame::StreamStatsResponse(StreamStatsResponse {
                    correlation_id: c,
                    code,
                    stats,
                })
            ),
        (
            any::<u32>(),
            arb_string(),
            arb_strings(),
            arb_strings(),
            arb_map()
        )
            .prop_map(
                |(c, n, p, b, a)| Frame::CreateSuperStream(CreateSuperStream {
                    correlation_id: c,
                    name: n,
                    partitions: p,
                    binding_keys: b,
                    arguments: a,
                })
            ),
        arb_code_response().prop_map(Frame::CreateSuperStreamResponse),
        (any::<u32>(), arb_string()).prop_map(|(c, n)| Frame::DeleteSuperStream(
            DeleteSuperStream {
                correlation_id: c,
                name: n,
            }
        )),
        arb_code_response().prop_map(Frame::DeleteSuperStreamResponse),
    ]
}

fn arb_connection_frames() -> impl Strategy<Value = Frame> {
    let command_version =
        (any::<u16>(), any::<u16>(), any::<u16>()).prop_map(|(key, min_version, max_version)| {
            CommandVersion {
                key,
                min_version,
                max_version,
            }
        });
    let tune = (any::<u32>(), any::<u32>()).prop_map(|(frame_max, heartbeat)| Tune {
        frame_max,
        heartbeat,
    });
    prop_oneof![
        (any::<u32>(), arb_map()).prop_map(|(c, p)| Frame::PeerProperties(PeerProperties {
            correlation_id: c,
            properties: p,
        })),
        (any::<u32>(), arb_code(), arb_map()).prop_map(|(c, code, p)| {
            Frame::PeerPropertiesResponse(PeerPropertiesResponse {
                correlation_id: c,
                code,
                properties: p,
            })
        }),
        any::<u32>().prop_map(|c| Frame::SaslHandshake(SaslHandshake { correlation_id: c })),
        (any::<u32>(), arb_code(), arb_strings()).prop_map(|(c, code, m)| {
            Frame::SaslHandshakeResponse(SaslHandshakeResponse {
                correlation_id: c,
                code,
                mechanisms: m,
            })
        }),
        (any::<u32>(), arb_string(), prop::option::of(arb_bytes())).prop_map(|(c, m, d)| {
            Frame::SaslAuthenticate(SaslAuthenticate {
                correlation_id: c,
                mechanism: m,
                sasl_data: d,
            })
        }),
        (any::<u32>(), arb_code(), prop::option::of(arb_bytes())).prop_map(|(c, code, ch)| {
            Frame::SaslAuthenticateResponse(SaslAuthenticateResponse {
                correlation_id: c,
                code,
                challenge: ch,
            })
        }),
        tune.clone().prop_map(Frame::Tune),
        tune.prop_map(Frame::TuneResponse),
        (any::<u32>(), arb_string()).prop_map(|(c, v)| Frame::Open(Open {
            correlation_id: c,
            virtual_host: v,
        })),
        (any::<u32>(), arb_code(), arb_map()).prop_map(|(c, code, p)| Frame::OpenResponse(
            OpenResponse {
                correlation_id: c,
                code,
                properties: p,
            }
        )),
        (any::<u32>(), arb_code(), arb_string()).prop_map(|(c, code, r)| Frame::Close(Close {
            correlation_id: c,
            code,
            reason: r,
        })),
        arb_code_response().prop_map(Frame::CloseResponse),
        Just(Frame::Heartbeat),
        (
            any::<u32>(),
            prop::collection::vec(command_version.clone(), 0..4)
        )
            .prop_map(
                |(c, v)| Frame::ExchangeCommandVersions(ExchangeCommandVersions {
                    correlation_id: c,
                    commands: v,
                })
            ),
        (
            any::<u32>(),
            arb_code(),
            prop::collection::vec(command_version, 0..4)
        )
            .prop_map(|(c, code, v)| Frame::ExchangeCommandVersionsResponse(
                ExchangeCommandVersionsResponse {
                    correlation_id: c,
                    code,
                    commands: v,
                }
            )),
    ]
}

fn arb_frame() -> impl Strategy<Value = Frame> {
    prop_oneof![
        arb_publisher_frames(),
        arb_consumer_frames(),
        arb_stream_frames(),
        arb_connection_frames(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    #[cfg_attr(miri, ignore)] // random inputs: too slow under Miri
    fn prop_arbitrary_frames_round_trip(f in arb_frame()) {
        let mut buf = BytesMut::new();
        f.encode(&mut buf).unwrap();
        prop_assert_eq!(frame_len(&buf, 0), Ok(Some(buf.len())));
        let body = split_frame(&mut buf, 0).unwrap().unwrap();
        prop_assert!(buf.is_empty());
        prop_assert_eq!(Frame::decode(body.clone()), Ok(f.clone()));
        if !matches!(f, Frame::Route(_) | Frame::Partitions(_)) {
            prop_assert_eq!(Frame::decode_server(body), Ok(f));
        }
    }

    #[test]
    #[cfg_attr(miri, ignore)] // random inputs: too slow under Miri
    fn prop_arbitrary_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = Frame::decode(Bytes::from(data.clone()));
        let _ = Frame::decode_server(Bytes::from(data.clone()));
        let _ = frame_len(&data, 0);
        let _ = frame_len(&data, 64);
    }

    #[test]
    #[cfg_attr(miri, ignore)] // random inputs: too slow under Miri
    fn prop_known_key_arbitrary_payload_never_panics(
        k in prop::sample::select(key::ALL.to_vec()),
        response in any::<bool>(),
        version in 0u16..4,
        payload in prop::collection::vec(any::<u8>(), 0..128),
    ) {
        let mut body = (if response { k | 0x8000 } else { k }).to_be_bytes().to_vec();
        body.extend_from_slice(&version.to_be_bytes());
        body.extend_from_slice(&payload);
        let _ = Frame::decode(Bytes::from(body.clone()));
        let _ = Frame::decode_server(Bytes::from(body));
    }

    #[test]
    #[cfg_attr(miri, ignore)] // random inputs: too slow under Miri
    fn prop_mutated_frames_never_panic(
        f in arb_frame(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let mut buf = BytesMut::new();
        f.encode(&mut buf).unwrap();
        let mut body = buf.split_off(4).to_vec();
        for (i, b) in flips {
            let at = i.index(body.len());
            body[at] = b;
        }
        if let Ok(g) = Frame::decode(Bytes::from(body.clone())) {
            // Whatever decodes must re-encode.
            let mut again = BytesMut::new();
            prop_assert!(g.encode(&mut again).is_ok() || matches!(g, Frame::Credit(_)));
        }
        let _ = Frame::decode_server(Bytes::from(body));
    }
}
