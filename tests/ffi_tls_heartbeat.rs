//! TLS, SASL EXTERNAL and dead-peer detection through the C API (`extern "C"` symbols), against
//! the broker of scripts/broker:
//!
//! - TLS on its TLS port (RMQS_TEST_TLS_URI, default
//!   `rabbitmq-stream+tls://guest:guest@localhost:5551/%2f`) with the CA, client certificate and
//!   key of `scripts/broker tls-dir` (RMQS_TLS_DIR, exported by scripts/test; else
//!   `~/.rmqstream/tls`): a round trip works; a CA that did not sign the server's certificate
//!   fails with `RMQS_ERR_TLS`; the host name is verified by default.
//! - SASL EXTERNAL with the client certificate (CN=stream-client, a user of the broker).
//! - A dead peer: the connection goes through an in-test TCP proxy that stops forwarding
//!   (a black hole: both sides' writes succeed, nothing arrives); with a 1 s heartbeat the
//!   producer and consumer are closed with the reason within a few heartbeats, and a pending
//!   management call fails instead of waiting for its 30 s timeout.

mod support;

use std::ffi::CStr;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::ptr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};
use support::capi::*;
use support::uri;

use rmqstream::ffi::rmqs_status_code::*;
use rmqstream::ffi::*;

// ---------------------------------------------------------------------------------------------
// helpers

fn tls_uri() -> String {
    std::env::var("RMQS_TEST_TLS_URI")
        .unwrap_or_else(|_| "rabbitmq-stream+tls://guest:guest@localhost:5551/%2f".into())
}

/// The directory with ca.pem, client.pem and client.key of `scripts/broker tls-dir`.
fn tls_dir() -> PathBuf {
    let dir = match std::env::var_os("RMQS_TLS_DIR") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".rmqstream/tls"),
    };
    assert!(
        dir.join("ca.pem").is_file(),
        "no TLS material in {}: start the broker (scripts/broker start) and export \
         RMQS_TLS_DIR=$(scripts/broker tls-dir)",
        dir.display()
    );
    dir
}

fn tls_file(name: &str) -> String {
    tls_dir().join(name).to_str().unwrap().to_string()
}

fn check(st: rmqs_status, err: *mut rmqs_error, what: &str) {
    if let Err((st, m)) = outcome(st, err) {
        panic!("{what}: {st} ({}): {m}", status_name(st));
    }
}

fn status_name(st: rmqs_status) -> String {
    unsafe { CStr::from_ptr(rmqs_status_name(st)) }
        .to_string_lossy()
        .into_owned()
}

/// A consumer from the first offset delivering to `q` with source tag `tag`.
fn consumer(
    conn: *mut rmqs_connection,
    s: &CStr,
    q: *mut rmqs_queue,
    tag: usize,
) -> *mut rmqs_consumer {
    try_tagged_consumer(conn, s, config(&[("offset", "first")]), q, tag)
        .unwrap_or_else(|e| panic!("consumer: {e:?}"))
}

fn body_of(i: usize) -> Vec<u8> {
    format!("tls-or-heartbeat-{i:05}-{}", "y".repeat(i % 23)).into_bytes()
}

/// What a queue delivered.
#[derive(Default, Debug)]
struct Drained {
    bodies: Vec<(u64, Vec<u8>)>,
    confirms_ok: usize,
    /// (tag, status, when) of confirms other than RMQS_OK
    confirms_failed: Vec<(usize, rmqs_status, Instant)>,
    /// (source tag, status, message, when) of RMQS_EVENT_STATE / RMQS_EVENT_ERROR events
    states: Vec<(usize, rmqs_status, String, Instant)>,
}

/// Polls `q` until `until(&drained)` or `timeout`.
fn drain(q: *mut rmqs_queue, timeout: Duration, until: impl Fn(&Drained) -> bool) -> Drained {
    let mut d = Drained::default();
    let deadline = Instant::now() + timeout;
    while !until(&d) && Instant::now() < deadline {
        let ev = poll_event(q, 50);
        if ev.is_null() {
            continue;
        }
        unsafe {
            let ty = rmqs_event_type(ev);
            if ty == rmqs_event_type_code::RMQS_EVENT_CHUNK as i32 {
                let ch = rmqs_event_chunk(ev);
                for i in 0..rmqs_chunk_message_count(ch) {
                    let m = rmqs_chunk_message(ch, i);
                    let mut len = 0;
                    let b = rmqs_message_body(m, &mut len);
                    d.bodies.push((
                        rmqs_message_offset(m),
                        std::slice::from_raw_parts(b, len).to_vec(),
                    ));
                }
            } else if ty == rmqs_event_type_code::RMQS_EVENT_CONFIRMS as i32 {
                let mut n = 0;
                let c = rmqs_event_confirms(ev, &mut n, std::ptr::null_mut());
                for x in std::slice::from_raw_parts(c, n) {
                    if x.status == 0 {
                        d.confirms_ok += 1;
                    } else {
                        d.confirms_failed.push((x.tag, x.status, Instant::now()));
                    }
                }
            } else {
                d.states.push((
                    rmqs_event_source_tag(ev),
                    rmqs_event_status(ev),
                    CStr::from_ptr(rmqs_event_message(ev))
                        .to_string_lossy()
                        .into_owned(),
                    Instant::now(),
                ));
            }
            rmqs_event_free(ev);
        }
    }
    d
}

/// Creates a stream, publishes `n` messages and reads them back from first through `conn`,
/// checking every offset and body; deletes the stream.
fn round_trip(conn: *mut rmqs_connection, n: usize) {
    let s = cunique("ffi-tls");
    let mut err = ptr::null_mut();
    let st = unsafe { rmqs_stream_create(conn, s.as_ptr(), ptr::null(), &mut err) };
    check(st, err, "create stream");
    let q = queue();
    let p = queue_producer(conn, &s, &[], q, 1);
    for i in 0..n {
        let b = body_of(i);
        let mut err = ptr::null_mut();
        let st = unsafe { rmqs_producer_send(p, b.as_ptr(), b.len(), i, 0, &mut err) };
        check(st, err, "send");
    }
    assert_eq!(
        unsafe { rmqs_producer_flush(p, 20000, std::ptr::null_mut()) },
        0,
        "flush"
    );
    let c = consumer(conn, &s, q, 2);
    let d = drain(q, Duration::from_secs(20), |d| {
        d.bodies.len() >= n && d.confirms_ok + d.confirms_failed.len() >= n
    });
    assert_eq!(d.confirms_ok, n, "{d:?}");
    let want: Vec<(u64, Vec<u8>)> = (0..n).map(|i| (i as u64, body_of(i))).collect();
    assert_eq!(d.bodies, want);
    unsafe {
        rmqs_consumer_free(c);
        rmqs_producer_free(p);
        check(
            rmqs_stream_delete(conn, s.as_ptr(), ptr::null_mut()),
            ptr::null_mut(),
            "delete",
        );
        rmqs_queue_free(q);
    }
}

/// A self-signed CA with the same subject as the test CA (so only the key differs), made with
/// the openssl command that scripts/broker uses too.
fn other_ca() -> (tempdir::Dir, String) {
    let dir = tempdir::Dir::new("rmqs-wrong-ca");
    let ca = dir.path().join("ca.pem");
    let status = std::process::Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ])
        .args(["-subj", "/CN=rmqstream-test-ca", "-keyout"])
        .arg(dir.path().join("ca.key"))
        .arg("-out")
        .arg(&ca)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl (needed by scripts/broker too) must be installed");
    assert!(status.success(), "openssl req failed");
    let path = ca.to_str().unwrap().to_string();
    (dir, path)
}

/// A private temporary directory, removed on drop (no extra crate).
mod tempdir {
    use std::path::{Path, PathBuf};

    pub struct Dir(PathBuf);

    impl Dir {
        pub fn new(prefix: &str) -> Dir {
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos();
            let p = std::env::temp_dir().join(format!("{prefix}-{}-{t}", std::process::id()));
            std::fs::create_dir_all(&p).unwrap();
            Dir(p)
        }

        pub fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// TLS

#[test]
fn tls_with_the_ca_file_round_trips() {
    let conn = try_open(&[("uri", &tls_uri()), ("tls_ca_file", &tls_file("ca.pem"))])
        .unwrap_or_else(|e| panic!("TLS open: {e:?}"));
    let v = unsafe { CStr::from_ptr(rmqs_connection_server_version(conn)) };
    assert!(!v.to_bytes().is_empty());
    // producer and consumer connect to the broker's advertised TLS host and port
    round_trip(conn, 300);
    unsafe { rmqs_connection_free(conn) };
}

#[test]
fn tls_with_a_ca_that_did_not_sign_the_server_fails_with_tls_error() {
    let (_dir, wrong) = other_ca();
    let (st, msg) = try_open(&[("uri", &tls_uri()), ("tls_ca_file", &wrong)]).unwrap_err();
    assert_eq!(st, RMQS_ERR_TLS.status(), "{}: {msg}", status_name(st));
    assert!(
        msg.to_lowercase().contains("certificate") || msg.contains("Signature"),
        "{msg}"
    );

    // without any CA file the system roots do not know the test CA either
    let (st, msg) = try_open(&[("uri", &tls_uri())]).unwrap_err();
    assert_eq!(st, RMQS_ERR_TLS.status(), "{}: {msg}", status_name(st));

    // verification can only be skipped on request
    let conn = try_open(&[
        ("uri", &tls_uri()),
        ("tls_ca_file", &wrong),
        ("tls_verify", "false"),
    ])
    .unwrap_or_else(|e| panic!("tls_verify=false: {e:?}"));
    unsafe { rmqs_connection_free(conn) };
}

#[test]
fn tls_verifies_the_host_name_by_default() {
    // 127.0.0.2 reaches the same listener (all of 127/8 is loopback), but the server's
    // certificate names only localhost, 127.0.0.1 and ::1.
    let other_name = tls_uri().replace("@localhost:", "@127.0.0.2:");
    assert_ne!(
        other_name,
        tls_uri(),
        "RMQS_TEST_TLS_URI must use the host localhost"
    );
    let ca = tls_file("ca.pem");
    let (st, msg) = try_open(&[("uri", &other_name), ("tls_ca_file", &ca)]).unwrap_err();
    assert_eq!(st, RMQS_ERR_TLS.status(), "{}: {msg}", status_name(st));
    assert!(
        msg.contains("127.0.0.2") || msg.to_lowercase().contains("name"),
        "{msg}"
    );

    // the same address with the name the certificate carries
    let conn = try_open(&[
        ("uri", &other_name),
        ("tls_ca_file", &ca),
        ("tls_server_name", "localhost"),
    ])
    .unwrap_or_else(|e| panic!("with tls_server_name: {e:?}"));
    unsafe { rmqs_connection_free(conn) };
}

// ---------------------------------------------------------------------------------------------
// SASL EXTERNAL

/// The TLS URI without user and password.
fn tls_uri_anonymous() -> String {
    let u = tls_uri();
    match (u.find("://"), u.find('@')) {
        (Some(a), Some(b)) if b > a => format!("{}{}", &u[..a + 3], &u[b + 1..]),
        _ => u,
    }
}

#[test]
fn sasl_external_with_the_client_certificate() {
    let conn = try_open(&[
        ("uri", &tls_uri_anonymous()),
        ("tls_ca_file", &tls_file("ca.pem")),
        ("tls_cert_file", &tls_file("client.pem")),
        ("tls_key_file", &tls_file("client.key")),
        ("sasl_mechanism", "EXTERNAL"),
    ])
    .unwrap_or_else(|e| panic!("EXTERNAL open: {e:?}"));
    // the data connections authenticate the same way
    round_trip(conn, 100);
    unsafe { rmqs_connection_free(conn) };

    // EXTERNAL without a client certificate: the broker has no identity to accept
    let (st, msg) = try_open(&[
        ("uri", &tls_uri_anonymous()),
        ("tls_ca_file", &tls_file("ca.pem")),
        ("sasl_mechanism", "EXTERNAL"),
    ])
    .unwrap_err();
    assert!(
        st > 0,
        "a broker refusal expected, got {}: {msg}",
        status_name(st)
    );
}

// ---------------------------------------------------------------------------------------------
// dead peer

/// A TCP proxy on 127.0.0.1 that forwards to `target` until `blackhole` is set, then reads and
/// drops everything in both directions (the peers' writes succeed, nothing arrives, and
/// neither side sees the other close).
struct Proxy {
    port: u16,
    blackhole: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
}

impl Proxy {
    fn start(target: &str) -> Proxy {
        let target = target.to_socket_addrs().unwrap().collect::<Vec<_>>();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let blackhole = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let (bh, st) = (blackhole.clone(), stop.clone());
        thread::spawn(move || {
            while !st.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((client, _)) => {
                        client.set_nonblocking(false).unwrap();
                        let Ok(server) = TcpStream::connect(&target[..]) else {
                            continue;
                        };
                        let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                        Self::pump(client, server, bh.clone(), st.clone());
                        Self::pump(s2, c2, bh.clone(), st.clone());
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        thread::sleep(Duration::from_millis(10))
                    }
                    Err(_) => return,
                }
            }
        });
        Proxy {
            port,
            blackhole,
            stop,
        }
    }

    fn pump(
        mut from: TcpStream,
        mut to: TcpStream,
        blackhole: Arc<AtomicBool>,
        stop: Arc<AtomicBool>,
    ) {
        thread::spawn(move || {
            from.set_read_timeout(Some(Duration::from_millis(100)))
                .unwrap();
            let mut buf = vec![0u8; 64 * 1024];
            while !stop.load(Ordering::SeqCst) {
                match from.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        if !blackhole.load(Ordering::SeqCst) && to.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                    Err(_) => break,
                }
            }
            // In the black hole nothing gets through, not even a close (the broker closes its
            // side when our heartbeats stop reaching it): keep the sockets open until the end.
            while blackhole.load(Ordering::SeqCst) && !stop.load(Ordering::SeqCst) {
                thread::sleep(Duration::from_millis(50));
            }
            let _ = to.shutdown(Shutdown::Both);
            let _ = from.shutdown(Shutdown::Both);
        });
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// host:port of a rabbitmq-stream URI.
fn host_port(u: &str) -> String {
    let rest = &u[u.find("://").map_or(0, |i| i + 3)..];
    let rest = &rest[rest.find('@').map_or(0, |i| i + 1)..];
    rest.split('/').next().unwrap().to_string()
}

#[test]
fn a_dead_peer_is_detected_within_a_few_heartbeats() {
    let proxy = Proxy::start(&host_port(&uri()));
    let via_proxy = format!("rabbitmq-stream://guest:guest@127.0.0.1:{}/%2f", proxy.port);
    // load_balancer: data connections go through the seed host (the proxy) too, instead of
    // the broker's advertised host; they stay only if they reach the advertised node.
    let conn = try_open(&[
        ("uri", &via_proxy),
        ("heartbeat", "1"),
        ("load_balancer", "true"),
        ("request_timeout_ms", "30000"),
        // Detection alone (tests/ffi_recovery.rs covers what recovery does next).
        ("recovery", "false"),
        // the management call below is retried once on a new connection, which the black
        // hole lets connect but never answer: bounded by this
        ("connect_timeout_ms", "1000"),
    ])
    .unwrap_or_else(|e| panic!("open through the proxy: {e:?}"));
    let s = cunique("ffi-dead-peer");
    let mut err = ptr::null_mut();
    check(
        unsafe { rmqs_stream_create(conn, s.as_ptr(), ptr::null(), &mut err) },
        err,
        "create",
    );
    let q = queue();
    let p = queue_producer(conn, &s, &[], q, 1);
    let c = consumer(conn, &s, q, 2);
    let send = |i: usize| {
        let b = body_of(i);
        let mut err = ptr::null_mut();
        check(
            unsafe { rmqs_producer_send(p, b.as_ptr(), b.len(), i, 0, &mut err) },
            err,
            "send",
        );
    };
    for i in 0..10 {
        send(i);
    }
    let d = drain(q, Duration::from_secs(10), |d| {
        d.bodies.len() >= 10 && d.confirms_ok >= 10
    });
    assert_eq!((d.bodies.len(), d.confirms_ok), (10, 10), "{d:?}");

    // Idle for several heartbeat periods while the proxy forwards: heartbeats keep it alive.
    let d = drain(q, Duration::from_millis(3500), |_| false);
    assert!(
        d.states.is_empty(),
        "closed while the peer was alive: {:?}",
        d.states
    );
    send(10);
    let d = drain(q, Duration::from_secs(10), |d| {
        !d.bodies.is_empty() && d.confirms_ok >= 1
    });
    assert_eq!(d.bodies, vec![(10, body_of(10))]);

    // Black hole. A message sent now stays in flight; a management call made now waits on
    // the locator connection, which is dead too.
    proxy.blackhole.store(true, Ordering::SeqCst);
    let t0 = Instant::now();
    send(11);
    let conn_addr = conn as usize;
    let stream_name = s.clone();
    let pending = thread::spawn(move || {
        let mut exists = false;
        let mut err = ptr::null_mut();
        let st = unsafe {
            rmqs_stream_exists(
                conn_addr as *mut rmqs_connection,
                stream_name.as_ptr(),
                &mut exists,
                &mut err,
            )
        };
        (outcome(st, err), t0.elapsed())
    });
    // The consumer is closed with the reason (RMQS_EVENT_STATE); the producer completes its
    // in-flight message, which went out, with RMQS_ERR_TIMEOUT: its outcome is unknown.
    let d = drain(q, Duration::from_secs(15), |d| {
        d.states.iter().any(|x| x.0 == 2) && !d.confirms_failed.is_empty()
    });
    // 2 heartbeats of silence (the last heartbeat read up to 1 s before the black hole),
    // checked every half heartbeat; slack for a loaded machine
    let in_time = |what: &str, after: Duration| {
        eprintln!("dead peer: {what} after {after:?}");
        assert!(
            after >= Duration::from_millis(900),
            "{what}: too early: {after:?}"
        );
        assert!(
            after <= Duration::from_millis(4500),
            "{what}: too late: {after:?}"
        );
    };
    let (_, status, msg, when) = d
        .states
        .iter()
        .find(|x| x.0 == 2)
        .unwrap_or_else(|| panic!("no consumer event within 15 s: {d:?}"));
    assert_eq!(*status, RMQS_ERR_IO.status(), "{msg}");
    assert!(msg.contains("heartbeat"), "{msg}");
    in_time(&format!("consumer CLOSED ({msg})"), when.duration_since(t0));
    let &(tag, status, when) = d
        .confirms_failed
        .first()
        .unwrap_or_else(|| panic!("the in-flight message was not completed: {d:?}"));
    assert_eq!((tag, status), (11, RMQS_ERR_TIMEOUT.status()));
    in_time(
        "producer's in-flight message RMQS_ERR_TIMEOUT",
        when.duration_since(t0),
    );

    // The call fails when the dead connection is detected, is retried once on a new
    // connection through the same seed (still a black hole: the handshake times out after
    // connect_timeout_ms), and then reports what killed the first connection.
    let (res, took) = pending.join().unwrap();
    eprintln!("dead peer: pending stream_exists: {res:?} after {took:?}");
    let (st, msg) = res.expect_err("a call on the dead connection must fail");
    assert!(
        st == RMQS_ERR_IO.status() || st == RMQS_ERR_CLOSED.status(),
        "{}: {msg}",
        status_name(st)
    );
    assert!(took <= Duration::from_millis(5500), "took {took:?}: {msg}");

    // later sends fail with the reason
    let b = body_of(12);
    let mut err = ptr::null_mut();
    let st = unsafe { rmqs_producer_send(p, b.as_ptr(), b.len(), 12, 0, &mut err) };
    let (st, msg) = outcome(st, err).unwrap_err();
    assert_eq!(st, RMQS_ERR_CLOSED.status(), "{msg}");
    assert!(msg.contains("heartbeat"), "{msg}");
    unsafe {
        rmqs_consumer_free(c);
        rmqs_producer_free(p);
        let _ = rmqs_connection_close(conn, 0, std::ptr::null_mut());
        rmqs_connection_free(conn);
        rmqs_queue_free(q);
    }
    drop(proxy);
    // clean up directly
    let direct = try_open(&[("uri", &uri())]).unwrap();
    unsafe {
        check(
            rmqs_stream_delete(direct, s.as_ptr(), ptr::null_mut()),
            ptr::null_mut(),
            "delete",
        );
        rmqs_connection_free(direct);
    }
}
