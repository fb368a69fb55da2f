//! The test proxy of `tests/support/proxy.rs` against a local echo server (no broker): bytes
//! pass both ways, a reset closes with RST and new connections are accepted, a freeze stalls
//! without closing, a thaw delivers what was held, round-robin alternates targets, a refused
//! target resets the client.

mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use support::proxy::Proxy;

/// An echo server on 127.0.0.1:0 that prefixes each echo with `tag`; its address.
fn echo_server(tag: u8) -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                loop {
                    match s.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            let mut out = vec![tag];
                            out.extend_from_slice(&buf[..n]);
                            if s.write_all(&out).is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
    addr
}

fn connect(p: &Proxy) -> TcpStream {
    let s = TcpStream::connect(p.addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

/// Sends `msg` and reads the echo (tag + msg).
fn roundtrip(s: &mut TcpStream, msg: &[u8]) -> Vec<u8> {
    s.write_all(msg).unwrap();
    let mut got = vec![0u8; msg.len() + 1];
    s.read_exact(&mut got).unwrap();
    got
}

/// Sends `msg`, which the frozen proxy holds: nothing comes back within 300 ms.
fn assert_held(s: &mut TcpStream, msg: &[u8]) {
    s.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    s.write_all(msg).unwrap();
    assert!(s.read(&mut [0u8; 16]).is_err());
}

/// After a thaw: exactly `echo` (the held message's echo) arrives within 5 s.
fn assert_released(s: &mut TcpStream, echo: &[u8]) {
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut got = vec![0u8; echo.len()];
    s.read_exact(&mut got).unwrap();
    assert_eq!(got, echo);
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn bytes_pass_reset_closes_freeze_stalls_thaw_resumes() {
    const TAG: u8 = 0xff; // never in the 1 MiB body (bytes 0..=250)
    let target = echo_server(TAG);
    let p = Proxy::start(&target);
    let mut a = connect(&p);
    assert_eq!(roundtrip(&mut a, b"hello"), b"\xffhello");
    // 1 MiB each way, through the proxy's 64 KiB buffers
    let big: Vec<u8> = (0..1_048_576u32).map(|i| (i % 251) as u8).collect();
    let mut w = a.try_clone().unwrap();
    let sent = big.clone();
    let writer = std::thread::spawn(move || w.write_all(&sent).unwrap());
    let mut got = Vec::new();
    while got.len() < big.len() + 1 {
        let mut buf = [0u8; 65536];
        let n = a.read(&mut buf).unwrap();
        assert!(n > 0);
        got.extend_from_slice(&buf[..n]);
        // the echo server prefixes each of its reads with the tag: drop those
        got.retain(|b| *b != TAG);
        if got.len() == big.len() {
            break;
        }
    }
    writer.join().unwrap();
    assert_eq!(got, big);
    let mut a2 = connect(&p);
    assert_eq!(roundtrip(&mut a2, b"x"), b"\xffx");
    assert_eq!(p.accepted(), 2);
    // freeze: nothing comes back, nothing is closed
    p.freeze();
    a.write_all(b"held").unwrap();
    a.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut buf = [0u8; 16];
    let e = a.read(&mut buf).unwrap_err();
    assert!(
        matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
        "{e}"
    );
    // a connection made while frozen is frozen too
    let mut b = connect(&p);
    assert_held(&mut b, b"late");
    // thaw: what was held arrives
    p.thaw();
    assert_released(&mut a, b"\xffheld");
    assert_released(&mut b, b"\xfflate");

    // freeze_replies: the request reaches the server, its answer is held
    p.freeze_replies();
    assert_held(&mut b, b"q");
    p.thaw();
    assert_released(&mut b, b"\xffq");

    // reset: both open connections get a RST, new ones work
    assert_eq!(p.open(), 3);
    assert_eq!(p.reset(), 3);
    assert_eq!(p.open(), 0);
    for s in [&mut a, &mut b] {
        let r = s.read(&mut buf);
        assert!(
            matches!(&r, Err(e) if e.kind() == ErrorKind::ConnectionReset) || matches!(r, Ok(0)),
            "{r:?}"
        );
    }
    let mut c = connect(&p);
    assert_eq!(roundtrip(&mut c, b"again"), b"\xffagain");
    assert_eq!(p.accepted(), 4);

    // a frozen connection can be reset too
    p.freeze();
    c.write_all(b"stuck").unwrap();
    assert_eq!(p.reset(), 1);
    p.thaw();
    let r = c.read(&mut buf);
    assert!(r.is_err() || matches!(r, Ok(0)), "{r:?}");
}

#[test]
fn round_robin_retarget_and_refused_target() {
    let (t1, t2, t3) = (echo_server(b'1'), echo_server(b'2'), echo_server(b'3'));
    let p = Proxy::round_robin(&[&t1, &t2, &t3]);
    let tags: Vec<u8> = (0..6)
        .map(|_| roundtrip(&mut connect(&p), b"?")[0])
        .collect();
    assert_eq!(tags, b"123123");
    p.set_target(&t2);
    let tags: Vec<u8> = (0..3)
        .map(|_| roundtrip(&mut connect(&p), b"?")[0])
        .collect();
    assert_eq!(tags, b"222");
    assert_eq!(p.accepted(), 9);
    wait_until("closed connections to be gone", || p.open() == 0);

    // a target that refuses: the client's connection is closed at once
    let dead = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    p.set_targets(&[&dead]);
    let mut s = connect(&p);
    let mut buf = [0u8; 4];
    let t0 = Instant::now();
    let r = s.read(&mut buf);
    assert!(r.is_err() || matches!(r, Ok(0)), "{r:?}");
    assert!(t0.elapsed() < Duration::from_secs(2));
}
