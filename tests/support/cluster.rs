//! The 3-node cluster of `scripts/broker cluster`: its nodes (1..3), stopping, killing and
//! starting them, and asking the broker (not the client) where publishers and subscriptions
//! are (`rabbitmqctl list_stream_publishers` / `list_stream_consumers`).
//!
//! The calls run `scripts/broker` (as root, like the rest of the test suite) and panic with its
//! output when it fails.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// Held while a test changes the cluster (stops, kills, suspends nodes): an exclusive
/// `flock` on `$RMQS_STATE/cluster-tests.lock`, so that two test binaries on one machine (two
/// engineers, or `cargo test` run twice) take turns. Released on drop.
pub struct ClusterLock(std::fs::File);

impl Drop for ClusterLock {
    fn drop(&mut self) {
        use std::os::fd::AsRawFd;
        unsafe { libc::flock(self.0.as_raw_fd(), libc::LOCK_UN) };
    }
}

/// The cluster the tests were given.
#[derive(Debug, Clone)]
pub struct Cluster {
    /// `rabbitmq-stream://...` naming all three nodes.
    pub uri: String,
    /// Stream ports of nodes 1, 2, 3.
    pub ports: Vec<u16>,
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/broker")
}

/// Runs `scripts/broker cluster ARGS...`; its stdout, or a panic with its output.
pub fn broker(args: &[&str]) -> String {
    let t0 = Instant::now();
    let out = Command::new(script())
        .arg("cluster")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running scripts/broker cluster {args:?}: {e}"));
    if !out.status.success() {
        panic!(
            "scripts/broker cluster {args:?} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    eprintln!(
        "[cluster] scripts/broker cluster {} ({:.1} s)",
        args.join(" "),
        t0.elapsed().as_secs_f64()
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

impl Cluster {
    /// From `RMQS_TEST_CLUSTER_URI` (see [`super::cluster_uri`]): `None` when the test should
    /// skip. The ports are the URI's, node 1 first.
    pub fn from_env() -> Option<Cluster> {
        let uri = super::cluster_uri()?;
        let mut cfg = rmqstream::client::ConnectionConfig::default();
        cfg.apply_uri(&uri).expect("RMQS_TEST_CLUSTER_URI");
        let ports: Vec<u16> = cfg.endpoints.iter().map(|e| e.port).collect();
        assert_eq!(ports.len(), 3, "the cluster URI names three nodes: {uri}");
        Some(Cluster { uri, ports })
    }

    /// Waits for (and takes) the machine-wide lock of the tests that change the cluster.
    pub fn lock(&self) -> ClusterLock {
        use std::os::fd::AsRawFd;
        let dir = std::env::var("RMQS_STATE").map_or_else(
            |_| {
                PathBuf::from(std::env::var("HOME").unwrap_or_else(|_| "/tmp".into()))
                    .join(".rmqstream")
            },
            PathBuf::from,
        );
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("cluster-tests.lock");
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let t0 = Instant::now();
        assert_eq!(
            unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) },
            0,
            "flock {}",
            path.display()
        );
        if t0.elapsed() > Duration::from_secs(1) {
            eprintln!(
                "[cluster] waited {:.1} s for {} (another test changing the cluster)",
                t0.elapsed().as_secs_f64(),
                path.display()
            );
        }
        ClusterLock(f)
    }

    /// The node (1..3) whose stream port is `port`.
    pub fn node_of_port(&self, port: u16) -> usize {
        1 + self
            .ports
            .iter()
            .position(|p| *p == port)
            .unwrap_or_else(|| panic!("port {port} is none of the cluster's {:?}", self.ports))
    }

    /// The Erlang node name of node `n` (`rmqc<n>@localhost`, `RMQS_CLUSTER_PREFIX`).
    pub fn node_name(&self, n: usize) -> String {
        let prefix = std::env::var("RMQS_CLUSTER_PREFIX").unwrap_or_else(|_| "rmqc".into());
        format!("{prefix}{n}@localhost")
    }

    /// The node (1..3) named `name`.
    pub fn node_of_name(&self, name: &str) -> usize {
        (1..=3)
            .find(|n| self.node_name(*n) == name)
            .unwrap_or_else(|| panic!("{name:?} is no node of the cluster"))
    }

    /// The URI of node `n` alone.
    pub fn node_uri(&self, n: usize) -> String {
        format!(
            "rabbitmq-stream://guest:guest@localhost:{}/%2f",
            self.ports[n - 1]
        )
    }

    /// Starts whatever node is down and waits until all three are clustered.
    pub fn ensure_up(&self) {
        broker(&["start"]);
    }

    /// Graceful shutdown of node `n`.
    pub fn stop_node(&self, n: usize) {
        broker(&["stop-node", &n.to_string()]);
    }

    /// Starts node `n` and waits until it is back in the cluster.
    pub fn start_node(&self, n: usize) {
        broker(&["start-node", &n.to_string()]);
    }

    /// `kill -9` of node `n`.
    pub fn kill(&self, n: usize) {
        broker(&["kill", &n.to_string()]);
    }

    /// True when node `n`'s stream port accepts a TCP connection.
    pub fn is_up(&self, n: usize) -> bool {
        std::net::TcpStream::connect_timeout(
            &([127, 0, 0, 1], self.ports[n - 1]).into(),
            Duration::from_secs(1),
        )
        .is_ok()
    }

    /// Closes node `n`'s stream listener (ranch suspend): new connections to its stream port
    /// are refused, while the node, its stream members and its open connections stay up, and
    /// the metadata still names it. Undone by [`resume_stream_listener`](Self::resume_stream_listener).
    pub fn suspend_stream_listener(&self, n: usize) {
        self.stream_listener(n, "suspend_listener");
        assert!(
            !self.is_up(n),
            "node {n}'s stream port still accepts connections"
        );
    }

    /// Opens node `n`'s stream listener again.
    pub fn resume_stream_listener(&self, n: usize) {
        self.stream_listener(n, "resume_listener");
        assert!(
            self.is_up(n),
            "node {n}'s stream port does not accept connections"
        );
    }

    fn stream_listener(&self, n: usize, call: &str) {
        let expr = format!(
            "[ranch:{call}(R) || {{acceptor, _, P}} = R <- maps:keys(ranch:info()), P =:= {}].",
            self.ports[n - 1]
        );
        let out = broker(&["ctl", &n.to_string(), "eval", &expr]);
        assert_eq!(out.trim(), "[ok]", "ranch:{call} on node {n}");
    }

    /// `rabbitmqctl ARGS` against the first node that is up; its stdout.
    pub fn ctl(&self, args: &[&str]) -> String {
        let n = (1..=3)
            .find(|n| self.is_up(*n))
            .expect("no cluster node is up");
        let n = n.to_string();
        let mut a = vec!["ctl", n.as_str()];
        a.extend_from_slice(args);
        broker(&a)
    }

    /// The node (1..3) of each publisher on `stream`, as the broker lists them (sorted).
    pub fn publisher_nodes(&self, stream: &str) -> Vec<usize> {
        self.nodes_listed("list_stream_publishers", stream)
    }

    /// The node (1..3) of each subscription on `stream`, as the broker lists them (sorted).
    pub fn consumer_nodes(&self, stream: &str) -> Vec<usize> {
        self.nodes_listed("list_stream_consumers", stream)
    }

    fn nodes_listed(&self, command: &str, stream: &str) -> Vec<usize> {
        // JSON: the default table format draws boxes when it likes
        let out = self.ctl(&["-q", command, "stream", "node", "--formatter", "json"]);
        let json = super::mini_json::Json::parse(&out)
            .unwrap_or_else(|e| panic!("{command}: {e} in {out:?}"));
        let mut nodes: Vec<usize> = json
            .array(command)
            .iter()
            .filter(|row| row.get("stream").str("stream") == stream)
            .map(|row| self.node_of_name(row.get("node").str("node")))
            .collect();
        nodes.sort_unstable();
        nodes
    }

    /// Waits (at most `timeout`) until `f` returns `Some`; panics with `what` otherwise.
    pub fn wait_for<T>(
        &self,
        what: &str,
        timeout: Duration,
        mut f: impl FnMut() -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(v) = f() {
                return v;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}
