//! Shared support of the integration tests: `mod support;` in a test file.
//!
//! - [`uri`]: the single broker of `scripts/broker` (`RMQS_TEST_URI`, default localhost:5552);
//! - [`cluster_uri`]: the 3-node cluster of `scripts/broker cluster` (`RMQS_TEST_CLUSTER_URI`);
//!   `None` (the test skips) when unset by hand, a failure under `CI=true`;
//! - [`unique`]: a name no other test run uses;
//! - [`proxy`]: an in-process TCP proxy with reset, freeze and round-robin;
//! - [`capi`]: the C API, thinly: producers and consumers whose callbacks record what they saw;
//! - [`cluster`]: drive the cluster's nodes and ask the broker where things are.

// Each test file uses a different part of it.
#![allow(dead_code)]

pub mod capi;
pub mod cluster;
pub mod mini_json;
pub mod proxy;

use std::time::{SystemTime, UNIX_EPOCH};

/// The URI of the single test broker.
pub const DEFAULT_URI: &str = "rabbitmq-stream://guest:guest@localhost:5552/%2f";

/// The single broker's URI: `RMQS_TEST_URI`, else [`DEFAULT_URI`].
pub fn uri() -> String {
    std::env::var("RMQS_TEST_URI").unwrap_or_else(|_| DEFAULT_URI.to_string())
}

/// True under CI (`CI=true`), where a missing broker is a failure, not a skip.
pub fn is_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// The cluster's URI (all three nodes): `RMQS_TEST_CLUSTER_URI`, which `scripts/test` exports
/// after `scripts/broker cluster start`. Unset: `None` with a message saying the test skips,
/// run by hand; a panic under `CI=true`.
pub fn cluster_uri() -> Option<String> {
    match std::env::var("RMQS_TEST_CLUSTER_URI") {
        Ok(u) if !u.is_empty() => Some(u),
        _ if is_ci() => panic!(
            "RMQS_TEST_CLUSTER_URI is not set under CI=true: the cluster tests must run \
             (scripts/test starts the cluster with `scripts/broker cluster start`)"
        ),
        _ => {
            eprintln!(
                "skipped: RMQS_TEST_CLUSTER_URI is not set (run `scripts/broker cluster start` \
                 and export RMQS_TEST_CLUSTER_URI=$(scripts/broker cluster uri))"
            );
            None
        }
    }
}

/// `prefix-<pid>-<nanoseconds>`: unique across test runs and tests.
pub fn unique(prefix: &str) -> String {
    let t = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    format!("{prefix}-{}-{}", std::process::id(), t.as_nanos())
}
