//! Placement on the 3-node cluster of `scripts/broker cluster` (`RMQS_TEST_CLUSTER_URI`;
//! skipped when unset by hand, a failure under `CI=true`): where producers and consumers land,
//! as the broker reports it (`rabbitmqctl list_stream_publishers` / `list_stream_consumers`),
//! not as the client believes.
//!
//! - a producer on the leader, consumers on the replicas, spread over both (C ABI);
//! - a replica refusing connections or stopped: new consumers on the other one; both: on the
//!   leader (C ABI);
//! - a producer waits while the leader refuses connections, and follows a new leader (C ABI);
//! - a management call whose locator connection is lost (a reset under the request, the node
//!   killed) is answered from another node; what create and delete report when the lost
//!   attempt may have done the work (client);
//! - load-balancer mode behind a round-robin TCP proxy: the same placement, a bounded number of
//!   connections, a clear error when the leader cannot be reached through it (C ABI).
//!
//! The tests change the cluster (nodes stopped, killed, listeners suspended), so they run one
//! at a time and hold the machine-wide cluster lock (`Cluster::lock`), and each leaves all
//! three nodes up. With recovery on (the default), consumers that lose their node come back on
//! another member, which the counts below include.

mod support;

use std::ffi::{CString, c_void};
use std::ptr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rmqstream::client::{ConnectionConfig, Endpoint, Environment};
use rmqstream::ffi::rmqs_status_code::*;
use rmqstream::ffi::*;
use support::capi::{check, config, create_with, delete_stream, open, try_bare_producer};
use support::cluster::{Cluster, ClusterLock};
use support::proxy::Proxy;
use support::unique;

// ---------------------------------------------------------------------------------------------
// one test at a time, the cluster whole again after each

static SERIAL: Mutex<()> = Mutex::new(());

/// Holds the cluster for one test: all three nodes up at the start, and again at the end
/// (also when the test fails).
struct Session {
    cluster: Cluster,
    _lock: ClusterLock,
    _serial: MutexGuard<'static, ()>,
}

impl Session {
    fn start() -> Option<Session> {
        let cluster = Cluster::from_env()?;
        let serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let lock = cluster.lock();
        // `cluster start` checks the clustering too, with rabbitmqctl (a second or more);
        // the tests restart what they stop, so open ports are enough between them
        if !(1..=3).all(|n| cluster.is_up(n)) {
            cluster.ensure_up();
        }
        Some(Session {
            cluster,
            _lock: lock,
            _serial: serial,
        })
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let c = self.cluster.clone();
        if (1..=3).all(|n| c.is_up(n)) {
            return;
        }
        if std::panic::catch_unwind(move || c.ensure_up()).is_err() {
            eprintln!("could not bring the cluster back up after the test");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// the C ABI

/// An open `rmqs_connection`, freed on drop.
struct Conn(*mut rmqs_connection);

impl Conn {
    fn open(pairs: &[(&str, &str)]) -> Conn {
        Conn(open(pairs))
    }

    /// Creates `stream` with a member on each of the three nodes.
    fn create_replicated(&self, stream: &str) {
        let s = CString::new(stream).unwrap();
        create_with(self.0, &s, &[("initial_cluster_size", "3")]);
    }

    fn delete(&self, stream: &str) {
        delete_stream(self.0, &CString::new(stream).unwrap());
    }

    /// Leader port (0 if none) and replica ports from the metadata.
    fn members(&self, stream: &str) -> (u16, Vec<u16>) {
        let s = CString::new(stream).unwrap();
        let mut md = ptr::null_mut();
        let mut err = ptr::null_mut();
        let st = unsafe { rmqs_stream_metadata(self.0, s.as_ptr(), &mut md, &mut err) };
        check(st, err, "metadata");
        let leader = unsafe { rmqs_metadata_leader_port(md) };
        let replicas = (0..unsafe { rmqs_metadata_replica_count(md) })
            .map(|i| {
                let mut port = 0u16;
                assert!(!unsafe { rmqs_metadata_replica(md, i, &mut port) }.is_null());
                port
            })
            .collect();
        unsafe { rmqs_metadata_free(md) };
        (leader, replicas)
    }

    fn producer(&self, stream: &str) -> Producer {
        self.try_producer(stream)
            .unwrap_or_else(|(st, m)| panic!("producer: status {st}: {m}"))
    }

    fn try_producer(&self, stream: &str) -> Result<Producer, (rmqs_status, String)> {
        try_bare_producer(self.0, &CString::new(stream).unwrap(), &[]).map(Producer)
    }

    fn consumer(&self, stream: &str) -> Consumer {
        let s = CString::new(stream).unwrap();
        let cfg = config(&[("offset", "first")]);
        let mut c = ptr::null_mut();
        let mut err = ptr::null_mut();
        let st = unsafe {
            rmqs_consumer_new(
                self.0,
                s.as_ptr(),
                cfg,
                Some(ignore_chunk),
                ptr::null_mut(),
                None,
                ptr::null_mut(),
                0,
                &mut c,
                &mut err,
            )
        };
        unsafe { rmqs_config_free(cfg) };
        check(st, err, "consumer");
        Consumer(c)
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        unsafe { rmqs_connection_free(self.0) };
    }
}

struct Producer(*mut rmqs_producer);

impl Drop for Producer {
    fn drop(&mut self) {
        unsafe { rmqs_producer_free(self.0) };
    }
}

struct Consumer(*mut rmqs_consumer);

impl Drop for Consumer {
    fn drop(&mut self) {
        unsafe { rmqs_consumer_free(self.0) };
    }
}

unsafe extern "C" fn ignore_chunk(_: *mut c_void, _: *const rmqs_chunk) {}

// ---------------------------------------------------------------------------------------------
// helpers on the cluster

/// Waits until the metadata of `stream` names a leader and two replicas; their nodes (1..3).
fn wait_members(cluster: &Cluster, conn: &Conn, stream: &str) -> (usize, Vec<usize>) {
    let (leader, replicas) = cluster.wait_for(
        "the stream's leader and two replicas",
        Duration::from_secs(30),
        || {
            let (l, r) = conn.members(stream);
            (l != 0 && r.len() == 2).then_some((l, r))
        },
    );
    let leader = cluster.node_of_port(leader);
    let mut replicas: Vec<usize> = replicas.iter().map(|p| cluster.node_of_port(*p)).collect();
    replicas.sort_unstable();
    assert!(!replicas.contains(&leader), "{leader} {replicas:?}");
    (leader, replicas)
}

/// The broker's list of consumer nodes for `stream`, once it has `n` entries (it lists a
/// subscription as soon as it is made, but a closed one may linger a moment).
fn consumer_nodes(cluster: &Cluster, stream: &str, n: usize) -> Vec<usize> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let nodes = cluster.consumer_nodes(stream);
        if nodes.len() == n || Instant::now() > deadline {
            return nodes;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn publisher_nodes(cluster: &Cluster, stream: &str, n: usize) -> Vec<usize> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let nodes = cluster.publisher_nodes(stream);
        if nodes.len() == n || Instant::now() > deadline {
            return nodes;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn endpoint(host: &str, port: u16) -> Endpoint {
    Endpoint {
        host: host.into(),
        port,
    }
}

// ---------------------------------------------------------------------------------------------
// the tests

/// The producer is made first: the consumers made after it must not share its connection to
/// the leader, and must not all go to the first replica of the metadata.
#[test]
fn producer_on_the_leader_consumers_spread_over_the_replicas() {
    let Some(session) = Session::start() else {
        return;
    };
    let cluster = &session.cluster;
    let conn = Conn::open(&[("uri", &cluster.uri)]);
    let stream = unique("placement");
    conn.create_replicated(&stream);
    let (leader, replicas) = wait_members(cluster, &conn, &stream);

    let producer = conn.producer(&stream);
    let consumers: Vec<Consumer> = (0..4).map(|_| conn.consumer(&stream)).collect();

    assert_eq!(publisher_nodes(cluster, &stream, 1), vec![leader]);
    assert_eq!(
        consumer_nodes(cluster, &stream, 4),
        vec![replicas[0], replicas[0], replicas[1], replicas[1]],
        "consumers: two on each replica (leader is node {leader})"
    );

    drop(consumers);
    drop(producer);
    conn.delete(&stream);
}

/// Opens node `n`'s stream listener again when dropped (also when the test fails).
struct Suspended<'a>(&'a Cluster, usize);

impl Drop for Suspended<'_> {
    fn drop(&mut self) {
        let (c, n) = (self.0.clone(), self.1);
        if c.is_up(n) {
            return;
        }
        if std::panic::catch_unwind(move || c.resume_stream_listener(n)).is_err() {
            eprintln!("could not resume node {n}'s stream listener");
        }
    }
}

/// A replica that the metadata names but that refuses connections (its stream listener
/// closed, the node and its member alive): consumers go to the other replica, then, both
/// refusing, to the leader. Then the same with the replicas' nodes stopped (gone from the
/// metadata).
#[test]
fn consumers_fall_back_to_the_other_replica_then_to_the_leader() {
    let Some(session) = Session::start() else {
        return;
    };
    let cluster = &session.cluster;
    let conn = Conn::open(&[("uri", &cluster.uri)]);
    let stream = unique("fallback");
    conn.create_replicated(&stream);
    let (leader, replicas) = wait_members(cluster, &conn, &stream);
    let (a, b) = (replicas[0], replicas[1]);

    // 1. refused connections
    let suspended_a = Suspended(cluster, a);
    cluster.suspend_stream_listener(a);
    let on_b: Vec<Consumer> = (0..2).map(|_| conn.consumer(&stream)).collect();
    assert_eq!(
        consumer_nodes(cluster, &stream, 2),
        vec![b, b],
        "replica {a} refuses: both consumers on replica {b} (leader {leader})"
    );
    let suspended_b = Suspended(cluster, b);
    cluster.suspend_stream_listener(b);
    // a new connection: the one open to replica b would still take consumers
    let conn2 = Conn::open(&[("uri", &cluster.uri)]);
    let on_leader = conn2.consumer(&stream);
    let mut want = vec![b, b, leader];
    want.sort_unstable();
    assert_eq!(
        consumer_nodes(cluster, &stream, 3),
        want,
        "both replicas refuse: the new consumer on the leader {leader}"
    );
    drop((on_b, on_leader, conn2, suspended_a, suspended_b));
    assert_eq!(consumer_nodes(cluster, &stream, 0), Vec::<usize>::new());

    // 2. stopped nodes
    cluster.stop_node(a);
    let conn3 = Conn::open(&[("uri", &cluster.uri)]);
    let on_b: Vec<Consumer> = (0..2).map(|_| conn3.consumer(&stream)).collect();
    assert_eq!(
        consumer_nodes(cluster, &stream, 2),
        vec![b, b],
        "replica {a} stopped: both consumers on replica {b} (leader {leader})"
    );
    cluster.stop_node(b);
    let on_leader = conn3.consumer(&stream);
    // the two consumers of replica b recover (on by default) onto the only member left
    assert_eq!(
        consumer_nodes(cluster, &stream, 3),
        vec![leader, leader, leader],
        "both replicas stopped: the new consumer and the two recovered ones on the leader"
    );

    drop((on_b, on_leader, conn3));
    cluster.ensure_up();
    conn.delete(&stream);
}

/// A producer needs the leader. While the leader refuses connections (its listener closed,
/// as for a node going down) the producer's creation waits, asking for the metadata again, and
/// succeeds once the leader is back within the wait; after the leader's node is killed, a new
/// producer lands on the newly elected leader.
#[test]
fn producers_wait_for_the_leader_and_follow_it() {
    let Some(session) = Session::start() else {
        return;
    };
    let cluster = &session.cluster;
    let conn = Conn::open(&[("uri", &cluster.uri)]);
    let stream = unique("leader");
    conn.create_replicated(&stream);
    let (leader, _) = wait_members(cluster, &conn, &stream);

    let suspended = Suspended(cluster, leader);
    cluster.suspend_stream_listener(leader);
    let t0 = Instant::now();
    let producer = std::thread::scope(|s| {
        s.spawn(|| {
            std::thread::sleep(Duration::from_secs(2));
            cluster.resume_stream_listener(leader);
        });
        conn.producer(&stream)
    });
    let waited = t0.elapsed();
    eprintln!("producer created after {waited:?}");
    assert!(waited >= Duration::from_secs(2), "{waited:?}");
    drop(suspended);
    assert_eq!(publisher_nodes(cluster, &stream, 1), vec![leader]);
    drop(producer);

    // the leader's node killed: the next producer (on a new connection, nothing pooled) goes
    // to the leader elected after it
    cluster.kill(leader);
    let conn2 = Conn::open(&[("uri", &cluster.uri)]);
    let producer = conn2.producer(&stream);
    let new_leader = cluster.node_of_port(conn2.members(&stream).0);
    assert_ne!(new_leader, leader);
    assert_eq!(publisher_nodes(cluster, &stream, 1), vec![new_leader]);
    drop(producer);
    cluster.start_node(leader);
    conn2.delete(&stream);
}

/// The locator's connection is lost under a request: the call is answered from the next seed
/// host. Deterministic through a proxy (reset while the request is held), then as the issue
/// found it (the locator's node killed).
#[test]
fn management_calls_survive_the_loss_of_the_locator_node() {
    let Some(session) = Session::start() else {
        return;
    };
    let cluster = &session.cluster;
    let ports = cluster.ports.clone();
    let rt = runtime();
    rt.block_on(async {
        // a direct view, to see what the broker did
        let mut cfg = ConnectionConfig::default();
        cfg.apply_uri(&cluster.node_uri(2)).unwrap();
        let observer = Environment::connect(cfg).await.unwrap();

        // seeds: node 1 through the proxy, then nodes 2 and 3
        let proxy = Proxy::start(&format!("localhost:{}", ports[0]));
        let through_proxy = || {
            let mut cfg = ConnectionConfig::default();
            cfg.apply_uri(&cluster.uri).unwrap();
            cfg.endpoints = vec![
                endpoint("127.0.0.1", proxy.port()),
                endpoint("localhost", ports[1]),
                endpoint("localhost", ports[2]),
            ];
            cfg.request_timeout = Duration::from_secs(30);
            cfg
        };

        let existing = unique("locator");
        assert!(observer.create_stream(&existing, &[]).await.unwrap());

        // 1. a read held by the frozen proxy, then reset: answered by node 2
        let env = Arc::new(Environment::connect(through_proxy()).await.unwrap());
        assert_eq!(env.server_info().await.unwrap().advertised_port, ports[0]);
        proxy.freeze();
        let call = tokio::spawn({
            let (env, s) = (env.clone(), existing.clone());
            async move { env.stream_exists(&s).await }
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!call.is_finished(), "the request is held by the proxy");
        assert_eq!(proxy.reset(), 1);
        proxy.thaw();
        assert!(call.await.unwrap().unwrap(), "stream_exists answered");
        assert_eq!(env.stats().reconnects, 1);
        assert_eq!(
            env.server_info().await.unwrap().advertised_port,
            ports[1],
            "the locator moved to the next seed host"
        );

        // 2. create: the request never reached the broker (frozen both ways); the second
        //    attempt creates the stream
        let env = Arc::new(Environment::connect(through_proxy()).await.unwrap());
        let s2 = unique("locator-create");
        proxy.freeze();
        let call = tokio::spawn({
            let (env, s) = (env.clone(), s2.clone());
            async move { env.create_stream(&s, &[]).await }
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!observer.stream_exists(&s2).await.unwrap());
        assert_eq!(proxy.reset(), 1);
        proxy.thaw();
        assert!(
            call.await.unwrap().unwrap(),
            "created by the second attempt"
        );
        assert!(observer.stream_exists(&s2).await.unwrap());

        // 3. create: the broker created it, its answer was lost; the second attempt finds
        //    it and reports it created (documented on Environment::create_stream)
        let env = Arc::new(Environment::connect(through_proxy()).await.unwrap());
        let s3 = unique("locator-create-lost-answer");
        proxy.freeze_replies();
        let call = tokio::spawn({
            let (env, s) = (env.clone(), s3.clone());
            async move { env.create_stream(&s, &[]).await }
        });
        eventually("the held create to happen", async || {
            observer.stream_exists(&s3).await.unwrap()
        })
        .await;
        assert_eq!(proxy.reset(), 1);
        proxy.thaw();
        assert!(call.await.unwrap().unwrap(), "counted as created");

        // 4. delete: the broker deleted it, its answer was lost: OK
        let env = Arc::new(Environment::connect(through_proxy()).await.unwrap());
        proxy.freeze_replies();
        let call = tokio::spawn({
            let (env, s) = (env.clone(), s3.clone());
            async move { env.delete_stream(&s).await }
        });
        eventually("the held delete to happen", async || {
            !observer.stream_exists(&s3).await.unwrap()
        })
        .await;
        assert_eq!(proxy.reset(), 1);
        proxy.thaw();
        call.await.unwrap().expect("counted as deleted");
        // without a lost connection, deleting a missing stream is still an error
        assert!(env.delete_stream(&s3).await.is_err());

        // 5. the locator's node killed (a replica of the stream, not its leader: the test is
        //    about the locator, not about leader election)
        let mut cfg = ConnectionConfig::default();
        cfg.apply_uri(&cluster.uri).unwrap();
        let env = Environment::connect(cfg).await.unwrap();
        let victim = cluster.node_of_port(env.server_info().await.unwrap().advertised_port);
        let s5 = unique("locator-kill");
        // client-local leader placement: created through another node, the leader is there
        let mut cfg = ConnectionConfig::default();
        cfg.apply_uri(&cluster.node_uri(victim % 3 + 1)).unwrap();
        let other = Environment::connect(cfg).await.unwrap();
        let args = vec![("initial-cluster-size".to_string(), "3".to_string())];
        assert!(other.create_stream(&s5, &args).await.unwrap());
        tokio::task::block_in_place(|| cluster.kill(victim));
        assert!(
            env.stream_exists(&s5).await.unwrap(),
            "answered after the locator's node {victim} was killed"
        );
        assert!(!env.stream_exists(&unique("absent")).await.unwrap());
        assert_ne!(
            cluster.node_of_port(env.server_info().await.unwrap().advertised_port),
            victim
        );
        tokio::task::block_in_place(|| cluster.start_node(victim));
        env.delete_stream(&s5).await.unwrap();
        observer.delete_stream(&existing).await.unwrap();
        observer.delete_stream(&s2).await.unwrap();
        for e in [&env, &other, &observer] {
            e.close().await;
        }
    });
}

async fn eventually(what: &str, mut f: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Load-balancer mode: the only address is a proxy that sends each new connection to the next
/// node. Producers still end on the leader and consumers on the replicas, spread, with few
/// connections; when the proxy cannot lead to the leader, a producer fails with a clear error
/// after a bounded number of attempts, and a consumer that cannot reach a replica takes the
/// leader.
#[test]
fn load_balancer_mode_behind_a_round_robin_proxy() {
    let Some(session) = Session::start() else {
        return;
    };
    let cluster = &session.cluster;
    let targets: Vec<String> = cluster
        .ports
        .iter()
        .map(|p| format!("localhost:{p}"))
        .collect();
    let all: Vec<&str> = targets.iter().map(String::as_str).collect();
    let proxy = Proxy::round_robin(&all);
    let uri = format!(
        "rabbitmq-stream://guest:guest@127.0.0.1:{}/%2f",
        proxy.port()
    );
    let open = || Conn::open(&[("uri", &uri), ("load_balancer", "true")]);

    let conn = open();
    let stream = unique("balancer");
    conn.create_replicated(&stream);
    let (leader, replicas) = wait_members(cluster, &conn, &stream);

    let producer = conn.producer(&stream);
    let consumers: Vec<Consumer> = (0..4).map(|_| conn.consumer(&stream)).collect();
    assert_eq!(publisher_nodes(cluster, &stream, 1), vec![leader]);
    assert_eq!(
        consumer_nodes(cluster, &stream, 4),
        vec![replicas[0], replicas[0], replicas[1], replicas[1]],
        "consumers: two on each replica (leader is node {leader})"
    );
    // the locator, then at most 3 tries per node for the leader and the two replicas
    assert!(proxy.accepted() <= 10, "{} connections", proxy.accepted());

    // only the replicas behind the proxy: no way to the leader
    let leader_target = format!("localhost:{}", cluster.ports[leader - 1]);
    let replica_targets: Vec<&str> = all
        .iter()
        .copied()
        .filter(|t| *t != leader_target)
        .collect();
    proxy.set_targets(&replica_targets);
    let cut_off = open();
    let t0 = Instant::now();
    let (st, message) = cut_off.try_producer(&stream).err().expect("no producer");
    let took = t0.elapsed();
    eprintln!("no way to the leader: {st} after {took:?}: {message}");
    assert_eq!(st, RMQS_ERR_IO.status(), "{message}");
    assert!(
        message.contains(&format!(
            "20 connections through 127.0.0.1:{} never reached {leader_target}",
            proxy.port()
        )),
        "{message}"
    );
    assert!(took < Duration::from_secs(20), "gave up after {took:?}");

    // only the leader behind the proxy: a consumer takes it
    proxy.set_target(&leader_target);
    let leader_only = open();
    let on_leader = leader_only.consumer(&stream);
    assert_eq!(
        consumer_nodes(cluster, &stream, 5),
        vec![replicas[0], replicas[0], replicas[1], replicas[1], leader]
            .into_iter()
            .fold(Vec::new(), |mut v, n| {
                v.push(n);
                v.sort_unstable();
                v
            })
    );

    drop(on_leader);
    drop(consumers);
    drop(producer);
    drop(leader_only);
    drop(cut_off);
    proxy.set_targets(&all);
    conn.delete(&stream);
}
