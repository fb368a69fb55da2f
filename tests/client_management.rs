//! The async client's management calls against the real broker started by scripts/broker.

mod support;

use support::client::{env, runtime};
use support::{unique, uri};

use rmqstream::client::{ClientError, ConnectionConfig, Environment};
use rmqstream::protocol::codes::ResponseCode;

#[test]
fn stream_lifecycle_offsets_and_stats() {
    runtime(2).block_on(async {
        let env = env(&uri(), "client_management test").await;
        let info = env.server_info().await.unwrap();
        assert!(info.at_least(3, 13), "broker {}", info.version_string());
        assert!(info.frame_max > 0);
        assert_eq!(info.advertised_host, "localhost");

        let s = unique("mgmt");
        assert!(!env.stream_exists(&s).await.unwrap());
        let args = vec![("max-age".to_string(), "3600s".to_string())];
        assert!(
            env.create_stream(&s, &args).await.unwrap(),
            "first create creates"
        );
        assert!(
            !env.create_stream(&s, &args).await.unwrap(),
            "second create finds it"
        );
        assert!(env.stream_exists(&s).await.unwrap());

        let loc = env.locate(&s).await.unwrap();
        assert_eq!(loc.leader.as_ref().unwrap().host, "localhost");

        let stats = env.stream_stats(&s).await.unwrap();
        // An empty stream has no chunk yet.
        assert_eq!(
            (stats.first_chunk_id, stats.committed_chunk_id),
            (-1, -1),
            "{stats:?}"
        );

        assert_eq!(env.query_offset("reader", &s).await.unwrap(), None);
        env.store_offset("reader", &s, 42).await.unwrap();
        // StoreOffset has no answer: poll until the broker has applied it.
        let mut stored = None;
        for _ in 0..50 {
            stored = env.query_offset("reader", &s).await.unwrap();
            if stored.is_some() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert_eq!(stored, Some(42));
        assert_eq!(env.query_publisher_sequence("nobody", &s).await.unwrap(), 0);

        env.delete_stream(&s).await.unwrap();
        assert!(!env.stream_exists(&s).await.unwrap());
        match env.delete_stream(&s).await {
            Err(ClientError::Server { code, .. }) => {
                assert_eq!(code, ResponseCode::STREAM_DOES_NOT_EXIST)
            }
            other => panic!("deleting a missing stream gave {other:?}"),
        }
        assert!(matches!(
            env.create_stream(&"x".repeat(256), &[]).await,
            Err(ClientError::InvalidArgument(_))
        ));
        env.close().await;
    });
}

#[test]
fn super_stream_management() {
    runtime(2).block_on(async {
        let env = env(&uri(), "client_management test").await;
        let name = unique("super");
        let parts: Vec<String> = (0..3).map(|i| format!("{name}-{i}")).collect();
        let keys: Vec<String> = (0..3).map(|i| i.to_string()).collect();
        env.create_super_stream(&name, &parts, &keys, &[])
            .await
            .unwrap();
        assert_eq!(env.partitions(&name).await.unwrap(), parts);
        assert_eq!(env.route("1", &name).await.unwrap(), vec![parts[1].clone()]);
        assert!(env.route("nope", &name).await.unwrap().is_empty());
        env.delete_super_stream(&name).await.unwrap();
        assert!(!env.stream_exists(&parts[0]).await.unwrap());
        env.close().await;
    });
}

#[test]
fn legacy_broker_reports_unsupported_features() {
    let Some(uri) = std::env::var("RMQS_TEST_LEGACY_URI").ok() else {
        eprintln!("RMQS_TEST_LEGACY_URI unset: legacy broker test skipped");
        return;
    };
    runtime(2).block_on(async {
        let env = env(&uri, "client_management test").await;
        let info = env.server_info().await.unwrap();
        assert_eq!((info.version.0, info.version.1), (3, 10));
        assert!(info.command_versions.is_empty());
        let s = unique("legacy");
        assert!(env.create_stream(&s, &[]).await.unwrap());
        match env.stream_stats(&s).await {
            Err(ClientError::Unsupported { needs, .. }) => assert_eq!(needs, "3.11"),
            other => panic!("stream stats on 3.10 gave {other:?}"),
        }
        match env
            .create_super_stream("x", &["x-0".into()], &["0".into()], &[])
            .await
        {
            Err(ClientError::Unsupported { needs, .. }) => assert_eq!(needs, "3.13"),
            other => panic!("super stream on 3.10 gave {other:?}"),
        }
        // The connection survived: 3.10 was never sent a command it does not know.
        env.delete_stream(&s).await.unwrap();
        env.close().await;
    });
}

#[test]
fn wrong_password_is_an_auth_error() {
    let mut cfg = ConnectionConfig::default();
    cfg.apply_uri("rabbitmq-stream://guest:wrong@localhost:5552/%2f")
        .unwrap();
    if let Ok(u) = std::env::var("RMQS_TEST_URI") {
        cfg.apply_uri(&u).unwrap();
        cfg.password = "wrong".into();
    }
    let r = runtime(2).block_on(Environment::connect(cfg));
    match r {
        Err(ClientError::Auth(code)) => assert_eq!(code, ResponseCode::AUTHENTICATION_FAILURE),
        Err(e) => panic!("expected an auth error, got {e}"),
        Ok(_) => panic!("connected with a wrong password"),
    }
}
