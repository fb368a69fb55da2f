//! Shared support of the integration tests: `mod support;` in a test file.
//!
//! - [`uri`]: the single broker of `scripts/broker` (`RMQS_TEST_URI`, default localhost:5552);
//! - [`cluster_uri`]: the 3-node cluster of `scripts/broker cluster` (`RMQS_TEST_CLUSTER_URI`);
//!   `None` (the test skips) when unset by hand, a failure under `CI=true`;
//! - [`unique`]: a name no other test run uses;
//! - [`proxy`]: an in-process TCP proxy with reset, freeze and round-robin;
//! - [`alloc`]: a global allocator counting each thread's allocations;
//! - [`capi`]: the C API, thinly: producers and consumers whose callbacks record what they saw;
//! - [`messages`]: AMQP messages described by typed values, built and read back through the C API;
//! - [`client`]: the async core, directly: runtimes, environments, fixtures, readers;
//! - [`cluster`]: drive the cluster's nodes and ask the broker where things are;
//! - [`interop`]: the Python of the venv and the interop scripts of `tests/interop`.

// Each test file uses a different part of it.
#![allow(dead_code)]

pub mod alloc;
pub mod capi;
pub mod client;
pub mod cluster;
pub mod interop;
pub mod messages;
pub mod mini_json;
pub mod proxy;

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The URI of the single test broker.
pub const DEFAULT_URI: &str = "rabbitmq-stream://guest:guest@localhost:5552/%2f";

/// The single broker's URI: `RMQS_TEST_URI`, else [`DEFAULT_URI`].
pub fn uri() -> String {
    std::env::var("RMQS_TEST_URI").unwrap_or_else(|_| DEFAULT_URI.to_string())
}

/// The legacy (3.10.8) broker's URI: `RMQS_TEST_LEGACY_URI`, else localhost:5553 when something
/// listens there, else `None`.
pub fn legacy_uri() -> Option<String> {
    match std::env::var("RMQS_TEST_LEGACY_URI") {
        Ok(u) => Some(u),
        Err(_) => std::net::TcpStream::connect_timeout(
            &"127.0.0.1:5553".parse().unwrap(),
            Duration::from_millis(300),
        )
        .ok()
        .map(|_| "rabbitmq-stream://guest:guest@localhost:5553/%2f".to_string()),
    }
}

/// `host:port` of the single broker (the first address of [`uri`]): a proxy's target.
pub fn broker_target() -> String {
    let u = uri();
    let rest = u.split("://").nth(1).unwrap();
    let authority = rest.split('/').next().unwrap();
    let hosts = authority.rsplit('@').next().unwrap();
    hosts.split(',').next().unwrap().to_string()
}

/// `scripts/broker ctl eval EXPR` against the single broker: its output, trimmed, or `None`
/// (with the reason on stderr) when that fails.
pub fn broker_eval(expr: &str) -> Option<String> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/broker");
    let out = std::process::Command::new(script)
        .args(["ctl", "eval", expr])
        .output()
        .ok()?;
    if !out.status.success() {
        eprintln!(
            "scripts/broker ctl eval failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        return None;
    }
    Some(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The official clients' hash routing table (Java `HashRoutingStrategyTest`, Go, .NET): each
/// routing key and its partition of 3 (`invoices-01..03`).
pub const OFFICIAL_ROUTES: [(&str, u32); 11] = [
    ("hello1", 1),
    ("hello2", 0),
    ("hello3", 1),
    ("hello4", 2),
    ("hello5", 0),
    ("hello6", 2),
    ("hello7", 0),
    ("hello8", 1),
    ("hello9", 0),
    ("hello10", 2),
    ("hello88", 1),
];

/// The python of the venv `scripts/install-deps` makes (`$RMQS_STATE`, else `~/.rmqstream`,
/// `/venv/bin/python`), or `None` after a notice that `what` is skipped.
pub fn venv_python(what: &str) -> Option<PathBuf> {
    let state = match std::env::var_os("RMQS_STATE") {
        Some(s) => PathBuf::from(s),
        None => PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".rmqstream"),
    };
    let p = state.join("venv/bin/python");
    if p.exists() {
        return Some(p);
    }
    eprintln!(
        "NOTICE: no Python venv at {}: {what} skipped (scripts/install-deps creates it; or set \
         RMQS_PYTHON to a python that has rstream)",
        p.display()
    );
    None
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

/// The index of the first line where `old` and `new` differ (where the shorter ends when one
/// is a prefix of the other): what a stale generated file's message points at.
pub fn first_difference(old: &str, new: &str) -> usize {
    old.lines()
        .zip(new.lines())
        .position(|(a, b)| a != b)
        .unwrap_or_else(|| old.lines().count().min(new.lines().count()))
}

/// The number in the environment variable `name` (a benchmark's knob), else `default`.
pub fn knob(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Starts this test binary's `crash_child` test in a child process with `vars` and
/// `RMQS_TEST_URI` in its environment and its stdout piped (a crash test reads it, then kills
/// the child).
pub fn spawn_crash_child(vars: &[(&str, &str)]) -> std::process::Child {
    let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
    cmd.args(["crash_child", "--exact", "--nocapture", "--test-threads=1"]);
    for (k, v) in vars {
        cmd.env(k, v);
    }
    cmd.env("RMQS_TEST_URI", uri())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// In a `crash_child` process: the values of the variables `a` and `b`; `None` when they are
/// unset (the test then does nothing: it runs in the ordinary suite too).
pub fn crash_vars(a: &str, b: &str) -> Option<(String, String)> {
    Some((std::env::var(a).ok()?, std::env::var(b).ok()?))
}
