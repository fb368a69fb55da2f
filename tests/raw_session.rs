//! A whole stream-protocol session against a real broker with the codec alone (no client):
//! see `tests/support/raw_session.rs`. Needs the brokers of `scripts/broker`:
//! `RMQS_TEST_URI` (default `rabbitmq-stream://guest:guest@localhost:5552/%2f`, RabbitMQ 4.x)
//! and `RMQS_TEST_LEGACY_URI` (RabbitMQ 3.10.8; that test is skipped, with a notice, when the
//! variable is unset — `scripts/test` sets it).

#[path = "support/raw_session.rs"]
mod raw_session;

use raw_session::{DEFAULT_URI, Options, Summary};

/// Runs the session, printing its log (shown by the harness on failure or with --nocapture).
fn session(uri: &str) -> Summary {
    let mut log = |line: String| println!("{line}");
    match raw_session::run(uri, &mut log) {
        Ok(s) => {
            println!("{}", s.report());
            s
        }
        Err(e) => panic!("raw session against {uri} failed: {e}"),
    }
}

/// What every broker version must show.
fn assert_common(s: &Summary) {
    let o = Options::default();
    // 1000 simple messages (10 of them raw bytes) + 5 sub-entry batches of 50 records.
    assert_eq!(o.messages, 1000);
    assert_eq!(o.total_messages(), 1250);
    assert_eq!(o.publishing_ids(), 1005);
    assert_eq!(o.raw_messages(), 10);

    assert_eq!(s.broker_product, "RabbitMQ");
    assert!(
        s.frame_max > 0 && s.frame_max <= 1024 * 1024,
        "{}",
        s.frame_max
    );
    assert!(s.heartbeat <= 60, "{}", s.heartbeat);
    assert!(!s.advertised_host.is_empty());
    assert!(
        s.advertised_port.parse::<u16>().is_ok(),
        "{:?}",
        s.advertised_port
    );
    assert!(s.stream.starts_with("rmqs-raw-session-"));

    assert_eq!(s.initial_sequence, 0);
    // (published, confirmed, consumed, bodies matched)
    let messages = (
        s.messages_published,
        s.messages_confirmed,
        s.messages_consumed,
        s.bodies_matched,
    );
    assert_eq!(messages, (1250, 1250, 1250, 1250));
    // (simple, AMQP decoded, raw bodies)
    let kinds = (s.simple_messages, s.amqp_decoded, s.raw_bodies);
    assert_eq!(kinds, (1000, 1240, 10));
    let ids = (s.publishing_ids_sent, s.publishing_ids_confirmed);
    assert_eq!(ids, (1005, 1005));
    let sub_entries = (s.sub_entry_records, s.sub_entry_batches);
    assert_eq!(sub_entries, (250, 5));
    assert_eq!((s.first_offset, s.last_offset), (Some(0), Some(1249)));
    // 10 Publish frames of 100 messages, then one frame per sub-entry batch.
    assert_eq!(s.publish_frames, 15);
    assert!(s.chunks >= 2 && s.chunks <= 1250, "{} chunks", s.chunks);
    assert_eq!(s.chunks_crc_checked, s.chunks);
    assert_eq!(s.credits_sent, s.chunks);
    assert!(s.bytes_sent > 0 && s.bytes_received > 0);
}

#[test]
fn raw_session_against_the_broker() {
    let uri = std::env::var("RMQS_TEST_URI").unwrap_or_else(|_| DEFAULT_URI.to_string());
    let s = session(&uri);
    assert_common(&s);
    let v = s.version_tuple().expect("broker version");
    if v >= (3, 11) {
        assert!(s.exchanged_command_versions);
        assert_eq!(
            s.deliver_version, 2,
            "3.11+ must deliver v2 after ExchangeCommandVersions"
        );
        assert_eq!(s.committed_chunk_ids, s.chunks);
    } else {
        assert!(!s.exchanged_command_versions);
        assert_eq!(s.deliver_version, 1);
        assert_eq!(s.committed_chunk_ids, 0);
    }
}

#[test]
fn raw_session_against_the_legacy_broker() {
    let Ok(uri) = std::env::var("RMQS_TEST_LEGACY_URI") else {
        eprintln!(
            "NOTICE: RMQS_TEST_LEGACY_URI is unset: raw session against RabbitMQ 3.10 skipped \
             (scripts/test sets it; or `scripts/broker start --legacy` and \
             RMQS_TEST_LEGACY_URI=$(scripts/broker uri --legacy))"
        );
        return;
    };
    let s = session(&uri);
    assert_common(&s);
    assert_eq!(s.version_tuple(), Some((3, 10)), "{}", s.broker_version);
    assert!(!s.exchanged_command_versions);
    assert_eq!(s.deliver_version, 1);
    assert_eq!(s.committed_chunk_ids, 0);
}

#[test]
fn uri_parsing() {
    for (uri, want) in [
        (DEFAULT_URI, ("localhost", 5552, "guest", "guest", "/")),
        (
            "rabbitmq-stream://u%40x:p%3Aw@[::1]:5553/my%2Fvh",
            ("::1", 5553, "u@x", "p:w", "my/vh"),
        ),
    ] {
        let e = raw_session::parse_uri(uri).unwrap();
        let got = (
            e.host.as_str(),
            e.port,
            e.user.as_str(),
            e.password.as_str(),
            e.vhost.as_str(),
        );
        assert_eq!(got, want, "{uri}");
    }
    let e = raw_session::parse_uri("rabbitmq-stream://h").unwrap();
    assert_eq!(
        (e.host.as_str(), e.port, e.vhost.as_str()),
        ("h", 5552, "/")
    );
    assert!(raw_session::parse_uri("amqp://h").is_err());
    assert!(raw_session::parse_uri("rabbitmq-stream://h:x/").is_err());
    assert_eq!(raw_session::parse_version("3.10.8"), Some((3, 10)));
    assert_eq!(raw_session::parse_version("4.1.0-rc.1"), Some((4, 1)));
}
