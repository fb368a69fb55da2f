//! An in-process TCP proxy for the integration tests: listens on `127.0.0.1:0` and forwards each
//! accepted connection to a target `host:port` (one target, or round-robin over several, like a
//! load balancer in front of a cluster).
//!
//! Controls, callable from any thread (sync or async tests alike; the proxy runs on its own
//! thread and Tokio runtime):
//! - [`Proxy::reset`]: closes every current connection with a TCP RST on both sides and keeps
//!   accepting new ones (a network cut, a node's socket torn down);
//! - [`Proxy::freeze`] / [`Proxy::thaw`]: stop / resume forwarding bytes in both directions
//!   without closing anything (a frozen peer: no FIN, no RST, just silence). Connections accepted
//!   while frozen are frozen too. [`Proxy::freeze_replies`] holds only what the target sends (a
//!   request reaches the broker, its answer does not come back);
//! - [`Proxy::set_targets`] / [`Proxy::set_target`]: where new connections go (current ones
//!   stay where they are);
//! - [`Proxy::accepted`] / [`Proxy::open`]: connections accepted so far / open now.
//!
//! When the target refuses, the client's connection is reset at once (as a load balancer with a
//! dead backend would).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

struct Shared {
    targets: Mutex<Vec<String>>,
    next: AtomicUsize,
    accepted: AtomicUsize,
    /// true while client -> target bytes are held
    frozen_up: watch::Sender<bool>,
    /// true while target -> client bytes are held
    frozen_down: watch::Sender<bool>,
    /// bumped by each reset
    resets: watch::Sender<u64>,
    /// open connections: id -> the reset generation they were accepted in
    open: Mutex<HashMap<u64, u64>>,
    ids: AtomicU64,
}

/// A running proxy; stops (closing its connections) when dropped.
pub struct Proxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Proxy {
    /// A proxy to one target (`"localhost:5552"`).
    pub fn start(target: &str) -> Proxy {
        Self::round_robin(&[target])
    }

    /// A proxy that sends each new connection to the next of `targets` in turn.
    pub fn round_robin(targets: &[&str]) -> Proxy {
        assert!(!targets.is_empty(), "a proxy needs a target");
        let shared = Arc::new(Shared {
            targets: Mutex::new(targets.iter().map(|t| t.to_string()).collect()),
            next: AtomicUsize::new(0),
            accepted: AtomicUsize::new(0),
            frozen_up: watch::channel(false).0,
            frozen_down: watch::channel(false).0,
            resets: watch::channel(0).0,
            open: Mutex::new(HashMap::new()),
            ids: AtomicU64::new(0),
        });
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("proxy: bind");
        std_listener.set_nonblocking(true).unwrap();
        let addr = std_listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let sh = shared.clone();
        let thread = std::thread::Builder::new()
            .name(format!("test-proxy-{}", addr.port()))
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("proxy: runtime");
                rt.block_on(async move {
                    let listener = TcpListener::from_std(std_listener).expect("proxy: listener");
                    tokio::select! {
                        _ = stopped => {}
                        _ = accept_loop(listener, sh.clone()) => {}
                    }
                    // Ends every connection task: they all watch the reset generation.
                    sh.resets.send_modify(|g| *g += 1);
                });
                // Dropping the runtime cancels the tasks still running (their sockets close).
            })
            .expect("proxy: thread");
        Proxy {
            addr,
            shared,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The port clients connect to (on 127.0.0.1).
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Connections accepted since the start.
    pub fn accepted(&self) -> usize {
        self.shared.accepted.load(Ordering::SeqCst)
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.shared.open.lock().unwrap().len()
    }

    /// Sends new connections to `target` only.
    pub fn set_target(&self, target: &str) {
        self.set_targets(&[target]);
    }

    /// Sends new connections round-robin over `targets`.
    pub fn set_targets(&self, targets: &[&str]) {
        assert!(!targets.is_empty(), "a proxy needs a target");
        *self.shared.targets.lock().unwrap() = targets.iter().map(|t| t.to_string()).collect();
    }

    /// Resets (TCP RST, both sides) every connection open now and returns how many there were,
    /// once they are all closed (at most 5 s). New connections are accepted as before.
    pub fn reset(&self) -> usize {
        // Counted before the signal: the connections' tasks leave the map as soon as they
        // see it.
        let mut generation = 0;
        let count = {
            let open = self.shared.open.lock().unwrap();
            self.shared.resets.send_modify(|g| {
                *g += 1;
                generation = *g;
            });
            open.values().filter(|g| **g < generation).count()
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            let left = {
                let open = self.shared.open.lock().unwrap();
                open.values().filter(|g| **g < generation).count()
            };
            if left == 0 {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        count
    }

    /// Stops forwarding bytes in both directions; nothing is closed.
    pub fn freeze(&self) {
        self.shared.frozen_up.send_replace(true);
        self.shared.frozen_down.send_replace(true);
    }

    /// Stops forwarding what the target sends; what the client sends still passes.
    pub fn freeze_replies(&self) {
        self.shared.frozen_down.send_replace(true);
    }

    /// Resumes forwarding in both directions, bytes held during the freeze first.
    pub fn thaw(&self) {
        self.shared.frozen_up.send_replace(false);
        self.shared.frozen_down.send_replace(false);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        shared.accepted.fetch_add(1, Ordering::SeqCst);
        let target = {
            let t = shared.targets.lock().unwrap();
            t[shared.next.fetch_add(1, Ordering::SeqCst) % t.len()].clone()
        };
        // Registered before anything is awaited, so that a reset right after the accept
        // includes it; under the lock, so that a reset counts exactly what it resets.
        let id = shared.ids.fetch_add(1, Ordering::SeqCst);
        let resets = {
            let mut open = shared.open.lock().unwrap();
            let resets = shared.resets.subscribe();
            open.insert(id, *resets.borrow());
            resets
        };
        tokio::spawn(serve(client, target, id, resets, shared.clone()));
    }
}

async fn serve(
    mut client: TcpStream,
    target: String,
    id: u64,
    mut resets: watch::Receiver<u64>,
    shared: Arc<Shared>,
) {
    let server = tokio::select! {
        s = TcpStream::connect(&target) => s.ok(),
        _ = resets.changed() => None,
    };
    if let Some(mut server) = server {
        let _ = client.set_nodelay(true);
        let _ = server.set_nodelay(true);
        let reset = {
            let (cr, cw) = client.split();
            let (sr, sw) = server.split();
            let up = pump(cr, sw, shared.frozen_up.subscribe());
            let down = pump(sr, cw, shared.frozen_down.subscribe());
            tokio::select! {
                _ = async { tokio::join!(up, down) } => false,
                _ = resets.changed() => true,
            }
        };
        if reset {
            let _ = server.set_zero_linger();
        }
    }
    // A refused target or a reset: the client sees a RST.
    let _ = client.set_zero_linger();
    drop(client);
    shared.open.lock().unwrap().remove(&id);
}

/// Copies `rd` to `wr` until EOF (then half-closes `wr`) or an error, holding bytes while
/// frozen.
async fn pump<R, W>(mut rd: R, mut wr: W, mut frozen: watch::Receiver<bool>)
where
    R: tokio::io::AsyncRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        if wait_thawed(&mut frozen).await.is_err() {
            return;
        }
        let read = tokio::select! {
            r = rd.read(&mut buf) => r.ok(),
            // Frozen while waiting for bytes: stop reading (the sender's window fills up).
            _ = async { frozen.wait_for(|f| *f).await.is_ok() } => continue,
        };
        let n = match read {
            Some(0) | None => {
                let _ = wr.shutdown().await;
                return;
            }
            Some(n) => n,
        };
        // Bytes read just as the freeze began are held until the thaw.
        if wait_thawed(&mut frozen).await.is_err() || wr.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

async fn wait_thawed(frozen: &mut watch::Receiver<bool>) -> Result<(), ()> {
    frozen.wait_for(|f| !*f).await.map(|_| ()).map_err(|_| ())
}
