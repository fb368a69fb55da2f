//! Super streams through the C API (`extern "C"` symbols): super producers (hash, key and
//! callback routing, key extractor, confirms naming the partition, dedup per partition,
//! refresh) and super consumers (every partition, chunks naming theirs, single active consumer
//! per partition with its consumer-update callback or events, tracking, filtering, refresh),
//! against the broker of scripts/broker (RMQS_TEST_URI; RMQS_TEST_LEGACY_URI or localhost:5553
//! for the 3.10.8 checks, skipped when neither answers).

mod support;

use std::collections::HashMap;
use std::ffi::{CStr, CString, c_char, c_void};
use std::ptr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};
use support::capi::*;
use support::{OFFICIAL_ROUTES, broker_eval, unique, uri};

use rmqstream::ffi::rmqs_event_source_code::*;
use rmqstream::ffi::rmqs_event_type_code::*;
use rmqstream::ffi::rmqs_offset_type_code;
use rmqstream::ffi::rmqs_state_code::*;
use rmqstream::ffi::rmqs_status_code::*;
use rmqstream::ffi::*;

// ---------------------------------------------------------------------------------------------
// helpers

const WAIT: Duration = Duration::from_secs(30);

fn c(s: &str) -> CString {
    CString::new(s).unwrap()
}

/// A connection and the super streams a test created (deleted at the end).
struct Fixture {
    conn: *mut rmqs_connection,
    super_streams: Vec<String>,
    streams: Vec<String>,
}

impl Fixture {
    fn new() -> Fixture {
        Fixture {
            conn: connect(&uri()),
            super_streams: Vec::new(),
            streams: Vec::new(),
        }
    }

    /// A super stream `<prefix>-<unique>` with partitions `-0 .. -n-1` bound to `0 .. n-1`.
    fn numbered(&mut self, prefix: &str, n: u32) -> (String, Vec<String>) {
        let name = unique(prefix);
        let cn = c(&name);
        let mut err = ptr::null_mut();
        let st =
            unsafe { rmqs_super_stream_create_n(self.conn, cn.as_ptr(), n, ptr::null(), &mut err) };
        check(st, err, "create super stream");
        self.super_streams.push(name.clone());
        let parts = (0..n).map(|i| format!("{name}-{i}")).collect();
        (name, parts)
    }

    /// A super stream with the given partition suffixes and binding keys.
    fn keyed(&mut self, prefix: &str, parts: &[(&str, &str)]) -> (String, Vec<String>) {
        let name = unique(prefix);
        let names: Vec<CString> = parts
            .iter()
            .map(|(p, _)| c(&format!("{name}-{p}")))
            .collect();
        let keys: Vec<CString> = parts.iter().map(|(_, k)| c(k)).collect();
        let np: Vec<*const c_char> = names.iter().map(|s| s.as_ptr()).collect();
        let nk: Vec<*const c_char> = keys.iter().map(|s| s.as_ptr()).collect();
        let cn = c(&name);
        let mut err = ptr::null_mut();
        let st = unsafe {
            rmqs_super_stream_create(
                self.conn,
                cn.as_ptr(),
                np.as_ptr(),
                nk.as_ptr(),
                parts.len(),
                ptr::null(),
                &mut err,
            )
        };
        check(st, err, "create super stream");
        self.super_streams.push(name.clone());
        let parts = names
            .iter()
            .map(|s| s.to_str().unwrap().to_string())
            .collect();
        (name, parts)
    }

    fn partitions(&self, super_stream: &str) -> Vec<String> {
        let cn = c(super_stream);
        let mut list = ptr::null_mut();
        let mut err = ptr::null_mut();
        let st =
            unsafe { rmqs_super_stream_partitions(self.conn, cn.as_ptr(), &mut list, &mut err) };
        check(st, err, "partitions");
        strings(list)
    }

    fn sequence(&self, name: &str, stream: &str) -> u64 {
        let (n, s) = (c(name), c(stream));
        let mut out = 0;
        let mut err = ptr::null_mut();
        let st = unsafe {
            rmqs_stream_query_sequence(self.conn, n.as_ptr(), s.as_ptr(), &mut out, &mut err)
        };
        check(st, err, "sequence query");
        out
    }

    /// The bodies of the first `n` messages of `stream` (read with a plain consumer, from the
    /// first offset).
    fn read(&self, stream: &str, n: usize) -> Vec<Vec<u8>> {
        let q = queue();
        let cfg = config(&[("offset", "first")]);
        let s = c(stream);
        let mut cons = ptr::null_mut();
        let mut err = ptr::null_mut();
        let st = unsafe {
            rmqs_consumer_new(
                self.conn,
                s.as_ptr(),
                cfg,
                None,
                ptr::null_mut(),
                None,
                q,
                0,
                &mut cons,
                &mut err,
            )
        };
        unsafe { rmqs_config_free(cfg) };
        check(st, err, "consumer");
        let mut out = Vec::new();
        let deadline = Instant::now() + WAIT;
        while out.len() < n && Instant::now() < deadline {
            let ev = poll_event(q, 200);
            if ev.is_null() {
                continue;
            }
            let ch = unsafe { rmqs_event_chunk(ev) };
            if !ch.is_null() {
                out.extend(bodies(ch));
            }
            unsafe { rmqs_event_free(ev) };
        }
        unsafe {
            rmqs_consumer_free(cons);
            rmqs_queue_free(q);
        }
        assert!(
            out.len() >= n,
            "{} messages read from {stream}, not {n}",
            out.len()
        );
        out.truncate(n);
        out
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        for ss in &self.super_streams {
            let s = c(ss);
            // cleanup: a failure must not hide the test's own outcome
            let _ = unsafe { rmqs_super_stream_delete(self.conn, s.as_ptr(), ptr::null_mut()) };
        }
        for st in &self.streams {
            let s = c(st);
            let _ = unsafe { rmqs_stream_delete(self.conn, s.as_ptr(), ptr::null_mut()) };
        }
        unsafe { rmqs_connection_free(self.conn) };
    }
}

/// The bodies of a chunk's messages.
fn bodies(ch: *const rmqs_chunk) -> Vec<Vec<u8>> {
    let n = unsafe { rmqs_chunk_message_count(ch) };
    (0..n)
        .map(|i| {
            let m = unsafe { rmqs_chunk_message(ch, i) };
            let mut len = 0;
            let b = unsafe { rmqs_message_body(m, &mut len) };
            unsafe { std::slice::from_raw_parts(b, len) }.to_vec()
        })
        .collect()
}

fn text(b: &[u8]) -> &str {
    std::str::from_utf8(b).unwrap()
}

/// Hash routing as the official clients, through the C API.
fn hash_partition(key: &str, n: u32) -> u32 {
    let mut out = u32::MAX;
    let st = unsafe {
        rmqs_super_stream_partition(key.as_ptr(), key.len(), n, &mut out, std::ptr::null_mut())
    };
    assert_eq!(st, 0);
    out
}

/// What super confirm callbacks saw.
#[derive(Default)]
struct Confirms {
    seen: Mutex<Vec<rmqs_super_confirm>>,
    cv: Condvar,
    freed: AtomicUsize,
}

impl Confirms {
    fn wait_for(&self, n: usize) -> Vec<rmqs_super_confirm> {
        let deadline = Instant::now() + WAIT;
        let mut g = self.seen.lock().unwrap();
        while g.len() < n && Instant::now() < deadline {
            g = self
                .cv
                .wait_timeout(g, Duration::from_millis(50))
                .unwrap()
                .0;
        }
        assert_eq!(g.len(), n, "confirms");
        std::mem::take(&mut *g)
    }
}

unsafe extern "C" fn on_confirms(
    ud: *mut c_void,
    confirms: *const rmqs_super_confirm,
    n: usize,
    stride: usize,
) {
    assert_eq!(stride, std::mem::size_of::<rmqs_super_confirm>());
    let c = unsafe { &*(ud as *const Confirms) };
    let batch = unsafe { std::slice::from_raw_parts(confirms, n) };
    // one partition per batch
    assert!(batch.iter().all(|x| x.partition == batch[0].partition));
    c.seen.lock().unwrap().extend_from_slice(batch);
    c.cv.notify_all();
}

unsafe extern "C" fn free_confirms(ud: *mut c_void) {
    let c = unsafe { &*(ud as *const Confirms) };
    c.freed.fetch_add(1, Ordering::SeqCst);
}

fn super_producer(
    conn: *mut rmqs_connection,
    super_stream: &str,
    cfg: *const rmqs_config,
    confirms: &Confirms,
) -> *mut rmqs_super_producer {
    let s = c(super_stream);
    let mut sp = ptr::null_mut();
    let mut err = ptr::null_mut();
    let st = unsafe {
        rmqs_super_producer_new(
            conn,
            s.as_ptr(),
            cfg,
            Some(on_confirms),
            confirms as *const Confirms as *mut c_void,
            Some(free_confirms),
            ptr::null_mut(),
            0,
            &mut sp,
            &mut err,
        )
    };
    check(st, err, "super producer");
    sp
}

/// Sends `body` with `key` (NULL when `None`); returns (partition, publishing id).
fn send(
    sp: *mut rmqs_super_producer,
    key: Option<&str>,
    body: &[u8],
    tag: usize,
) -> Result<(u32, u64), (rmqs_status, String)> {
    let key = key.map(c);
    let mut partition = u32::MAX;
    let mut id = 0;
    let mut err = ptr::null_mut();
    let st = unsafe {
        rmqs_super_producer_send_ex(
            sp,
            key.as_ref().map_or(ptr::null(), |k| k.as_ptr()),
            body.as_ptr(),
            body.len(),
            ptr::null(),
            0,
            tag,
            0,
            &mut partition,
            &mut id,
            &mut err,
        )
    };
    if st == 0 {
        Ok((partition, id))
    } else {
        Err(failure(st, err))
    }
}

fn partition_names(sp: *mut rmqs_super_producer) -> Vec<String> {
    let n = unsafe { rmqs_super_producer_partition_count(sp) };
    let v = (0..n)
        .map(|i| {
            let p = unsafe { rmqs_super_producer_partition(sp, i) };
            assert!(!p.is_null());
            unsafe { CStr::from_ptr(p) }.to_str().unwrap().to_string()
        })
        .collect();
    assert!(unsafe { rmqs_super_producer_partition(sp, n) }.is_null());
    v
}

fn close_free(sp: *mut rmqs_super_producer) {
    assert_eq!(
        unsafe { rmqs_super_producer_close(sp, 10_000, std::ptr::null_mut()) },
        0
    );
    unsafe { rmqs_super_producer_free(sp) };
}

/// What super consumer chunk callbacks saw: (partition, stream, body) per message.
#[derive(Default)]
struct Chunks {
    seen: Mutex<Vec<(i32, String, Vec<u8>)>>,
    cv: Condvar,
    freed: AtomicUsize,
}

impl Chunks {
    /// Waits until `n` messages arrived in all; returns and forgets them.
    fn wait_for(&self, n: usize) -> Vec<(i32, String, Vec<u8>)> {
        let deadline = Instant::now() + WAIT;
        let mut g = self.seen.lock().unwrap();
        while g.len() < n && Instant::now() < deadline {
            g = self
                .cv
                .wait_timeout(g, Duration::from_millis(50))
                .unwrap()
                .0;
        }
        assert_eq!(g.len(), n, "messages");
        std::mem::take(&mut *g)
    }
}

unsafe extern "C" fn on_chunk(ud: *mut c_void, ch: *const rmqs_chunk) {
    let c = unsafe { &*(ud as *const Chunks) };
    let partition = unsafe { rmqs_chunk_partition(ch) };
    assert!(partition >= 0);
    let stream = unsafe { CStr::from_ptr(rmqs_chunk_stream(ch)) }
        .to_str()
        .unwrap()
        .to_string();
    let mut g = c.seen.lock().unwrap();
    for b in bodies(ch) {
        g.push((partition, stream.clone(), b));
    }
    c.cv.notify_all();
}

unsafe extern "C" fn free_chunks(ud: *mut c_void) {
    let c = unsafe { &*(ud as *const Chunks) };
    c.freed.fetch_add(1, Ordering::SeqCst);
}

fn try_super_consumer(
    conn: *mut rmqs_connection,
    super_stream: &str,
    cfg: *const rmqs_config,
    chunks: Option<&Chunks>,
    q: *mut rmqs_queue,
) -> Result<*mut rmqs_super_consumer, (rmqs_status, String)> {
    let s = c(super_stream);
    let mut sc = ptr::null_mut();
    let mut err = ptr::null_mut();
    let st = unsafe {
        rmqs_super_consumer_new(
            conn,
            s.as_ptr(),
            cfg,
            chunks.map(|_| on_chunk as unsafe extern "C" fn(*mut c_void, *const rmqs_chunk)),
            chunks.map_or(ptr::null_mut(), |c| c as *const Chunks as *mut c_void),
            chunks.map(|_| free_chunks as unsafe extern "C" fn(*mut c_void)),
            q,
            0,
            &mut sc,
            &mut err,
        )
    };
    if st == 0 {
        Ok(sc)
    } else {
        assert!(sc.is_null());
        Err(failure(st, err))
    }
}

fn super_consumer(
    conn: *mut rmqs_connection,
    super_stream: &str,
    cfg: *const rmqs_config,
    chunks: &Chunks,
) -> *mut rmqs_super_consumer {
    try_super_consumer(conn, super_stream, cfg, Some(chunks), ptr::null_mut())
        .unwrap_or_else(|(st, m)| panic!("super consumer: status {st}: {m}"))
}

fn sc_partition_names(sc: *mut rmqs_super_consumer) -> Vec<String> {
    let n = unsafe { rmqs_super_consumer_partition_count(sc) };
    let v = (0..n)
        .map(|i| {
            let p = unsafe { rmqs_super_consumer_partition(sc, i) };
            assert!(!p.is_null());
            unsafe { CStr::from_ptr(p) }.to_str().unwrap().to_string()
        })
        .collect();
    assert!(unsafe { rmqs_super_consumer_partition(sc, n) }.is_null());
    v
}

/// Publishes `bodies` (each its own routing key) through a fresh super producer; returns the
/// partition of each.
fn publish(conn: *mut rmqs_connection, ss: &str, keys: &[String]) -> Vec<u32> {
    let confirms = Confirms::default();
    let sp = super_producer(conn, ss, ptr::null(), &confirms);
    let parts = keys
        .iter()
        .enumerate()
        .map(|(i, k)| send(sp, Some(k), k.as_bytes(), i).unwrap().0)
        .collect();
    assert_eq!(
        unsafe { rmqs_super_producer_flush(sp, 30_000, std::ptr::null_mut()) },
        0
    );
    assert!(confirms.wait_for(keys.len()).iter().all(|x| x.status == 0));
    close_free(sp);
    parts
}

// ---------------------------------------------------------------------------------------------
// super producer

/// 3000 keyed messages over 3 partitions by hash: each message on the partition MurmurHash3
/// predicts (every partition read back, every body checked), every confirm naming it.
#[test]
fn hash_routing_puts_3000_keys_on_their_murmur3_partitions() {
    let mut f = Fixture::new();
    let (ss, parts) = f.numbered("ffi-sp-hash", 3);
    let confirms = Confirms::default();
    let sp = super_producer(f.conn, &ss, ptr::null(), &confirms);
    assert_eq!(partition_names(sp), parts);
    let keys: Vec<String> = (0..3000).map(|i| format!("customer-{i}")).collect();
    let mut per = [0usize; 3];
    for (i, k) in keys.iter().enumerate() {
        let (p, _) = send(sp, Some(k), k.as_bytes(), i).unwrap();
        assert_eq!(p, hash_partition(k, 3), "{k}");
        per[p as usize] += 1;
    }
    assert_eq!(
        unsafe { rmqs_super_producer_flush(sp, 30_000, std::ptr::null_mut()) },
        0
    );
    let seen = confirms.wait_for(3000);
    let mut tags = vec![false; 3000];
    for x in &seen {
        assert_eq!(x.status, 0, "tag {}", x.tag);
        assert_eq!(
            x.partition,
            hash_partition(&keys[x.tag], 3),
            "tag {}",
            x.tag
        );
        assert!(
            !std::mem::replace(&mut tags[x.tag], true),
            "tag {} twice",
            x.tag
        );
    }
    let mut stats = rmqs_producer_statistics {
        size: std::mem::size_of::<rmqs_producer_statistics>() as u64,
        ..Default::default()
    };
    assert_eq!(
        unsafe { rmqs_super_producer_stats(sp, &mut stats, std::ptr::null_mut()) },
        0
    );
    assert_eq!(
        (stats.published, stats.confirmed, stats.in_flight),
        (3000, 3000, 0)
    );
    close_free(sp);
    assert_eq!(confirms.freed.load(Ordering::SeqCst), 1);
    assert!(per.iter().all(|&n| n > 800), "{per:?}");

    // A super consumer reads every partition: each message once, from the partition its key
    // hashes to, the chunk naming that partition by index and by stream.
    let got = Chunks::default();
    let cfg = config(&[("offset", "first")]);
    let sc = super_consumer(f.conn, &ss, cfg, &got);
    unsafe { rmqs_config_free(cfg) };
    assert_eq!(sc_partition_names(sc), parts);
    let seen = got.wait_for(3000);
    let mut once = vec![false; 3000];
    let mut per_seen = [0usize; 3];
    for (partition, stream, body) in &seen {
        let key = text(body);
        let i: usize = key.strip_prefix("customer-").unwrap().parse().unwrap();
        assert!(!std::mem::replace(&mut once[i], true), "{key} twice");
        assert_eq!(*partition, hash_partition(key, 3) as i32, "{key}");
        assert_eq!(stream, &parts[*partition as usize]);
        per_seen[*partition as usize] += 1;
    }
    assert_eq!(per_seen, per);
    let mut st = rmqs_consumer_statistics {
        size: std::mem::size_of::<rmqs_consumer_statistics>() as u64,
        ..Default::default()
    };
    assert_eq!(
        unsafe { rmqs_super_consumer_stats(sc, &mut st, std::ptr::null_mut()) },
        0
    );
    assert_eq!(st.messages, 3000);
    assert_eq!(
        unsafe { rmqs_super_consumer_close(sc, 10_000, std::ptr::null_mut()) },
        0
    );
    unsafe { rmqs_super_consumer_free(sc) };
    assert_eq!(got.freed.load(Ordering::SeqCst), 1);

    // And each partition read on its own agrees.
    for (i, part) in parts.iter().enumerate() {
        let got = f.read(part, per[i]);
        for b in &got {
            assert_eq!(
                hash_partition(text(b), 3),
                i as u32,
                "{} on {part}",
                text(b)
            );
        }
    }
}

/// The reference vectors of the official clients (Java `HashRoutingMurmurStrategyTest`, Go
/// `TestHashRoutingStrategy`), through `rmqs_super_stream_partition` and through a super
/// producer's sends on a real 3-partition super stream.
#[test]
fn hash_routing_agrees_with_the_official_reference_table() {
    let table = OFFICIAL_ROUTES;
    for (k, want) in table {
        assert_eq!(hash_partition(k, 3), want, "{k}");
    }
    let mut f = Fixture::new();
    let (ss, parts) = f.numbered("ffi-sp-table", 3);
    let confirms = Confirms::default();
    let sp = super_producer(f.conn, &ss, ptr::null(), &confirms);
    for (i, (k, want)) in table.iter().enumerate() {
        assert_eq!(send(sp, Some(k), k.as_bytes(), i).unwrap().0, *want, "{k}");
    }
    assert_eq!(
        unsafe { rmqs_super_producer_flush(sp, 30_000, std::ptr::null_mut()) },
        0
    );
    for x in confirms.wait_for(table.len()) {
        assert_eq!(x.partition, table[x.tag].1);
    }
    close_free(sp);
    for (i, part) in parts.iter().enumerate() {
        let want: Vec<&str> = table
            .iter()
            .filter(|(_, p)| *p == i as u32)
            .map(|(k, _)| *k)
            .collect();
        let got = f.read(part, want.len());
        assert_eq!(got.iter().map(|b| text(b)).collect::<Vec<_>>(), want);
    }
}

/// Key routing follows the bindings (Route command); a key bound to nothing is refused with
/// a clear status and no confirm; hash and key routing refuse a message without a key.
#[test]
fn key_routing_follows_the_bindings_and_refuses_an_unroutable_key() {
    let mut f = Fixture::new();
    let (ss, parts) = f.keyed(
        "ffi-sp-key",
        &[("amer", "amer"), ("emea", "emea"), ("apac", "apac")],
    );
    let confirms = Confirms::default();
    let cfg = config(&[("routing", "key")]);
    let sp = super_producer(f.conn, &ss, cfg, &confirms);
    unsafe { rmqs_config_free(cfg) };
    let regions = ["emea", "apac", "amer"];
    let mut sent = 0;
    for i in 0..90 {
        let r = regions[i % 3];
        let (p, _) = send(sp, Some(r), format!("{r}-{i}").as_bytes(), i).unwrap();
        assert_eq!(parts[p as usize], format!("{ss}-{r}"));
        sent += 1;
    }
    // no route: refused, nothing sent
    let (st, m) = send(sp, Some("mars"), b"lost", 1000).unwrap_err();
    assert_eq!(st, RMQS_ERR_INVALID_ARGUMENT.status());
    assert!(m.contains("no route:"), "{m}");
    assert!(m.contains("mars"), "{m}");
    let (st, m) = send(sp, None, b"keyless", 1001).unwrap_err();
    assert_eq!(st, RMQS_ERR_INVALID_ARGUMENT.status());
    assert!(m.contains("routing key"), "{m}");
    assert_eq!(
        unsafe { rmqs_super_producer_flush(sp, 30_000, std::ptr::null_mut()) },
        0
    );
    let seen = confirms.wait_for(sent);
    assert!(seen.iter().all(|x| x.status == 0 && x.tag < 1000));
    for x in &seen {
        assert_eq!(
            parts[x.partition as usize],
            format!("{ss}-{}", regions[x.tag % 3])
        );
    }
    close_free(sp);
    for part in &parts {
        let region = part.rsplit('-').next().unwrap();
        let got = f.read(part, 30);
        assert!(got.iter().all(|b| text(b).starts_with(region)), "{part}");
    }
}

/// Writes the part of the body before '|' as the key ("-" has none).
unsafe extern "C" fn key_before_bar(
    ud: *mut c_void,
    _msg: *const rmqs_message_builder,
    body: *const u8,
    len: usize,
    _tag: usize,
    key: *mut c_char,
    cap: usize,
) -> isize {
    let calls = unsafe { &*(ud as *const AtomicUsize) };
    calls.fetch_add(1, Ordering::SeqCst);
    let b = unsafe { std::slice::from_raw_parts(body, len) };
    if b == b"-" {
        return -1;
    }
    let k = b.split(|&x| x == b'|').next().unwrap();
    if k.len() <= cap {
        unsafe { ptr::copy_nonoverlapping(k.as_ptr(), key.cast(), k.len()) };
    }
    k.len() as isize
}

unsafe extern "C" fn count_free(ud: *mut c_void) {
    let n = unsafe { &*(ud as *const AtomicUsize) };
    n.fetch_add(1000, Ordering::SeqCst);
}

/// Routes "all" to every partition, "none" nowhere, others to partition (tag mod n).
unsafe extern "C" fn route_by_tag(
    _ud: *mut c_void,
    _msg: *const rmqs_message_builder,
    _body: *const u8,
    _len: usize,
    key: *const c_char,
    key_len: usize,
    tag: usize,
    n: usize,
    out: *mut u32,
) -> usize {
    let k = unsafe { CStr::from_ptr(key) }.to_bytes();
    assert_eq!(k.len(), key_len);
    match k {
        b"all" => {
            for i in 0..n {
                unsafe { out.add(i).write(i as u32) };
            }
            n
        }
        b"none" => 0,
        _ => {
            unsafe { out.write((tag % n) as u32) };
            1
        }
    }
}

/// The key extractor gives the keys of messages sent without one (hash routing); a routing
/// callback decides alone (copies to several partitions, refusal); both callbacks run on the
/// sending thread and their user_data_free runs once the config and super producer are gone.
#[test]
fn key_extractor_and_routing_callback() {
    let mut f = Fixture::new();
    let (ss, _) = f.numbered("ffi-sp-cb", 3);
    let calls = AtomicUsize::new(0);
    let cfg = config(&[("batch_delay_ms", "0")]);
    let ud = &calls as *const AtomicUsize as *mut c_void;
    assert_eq!(
        unsafe {
            rmqs_config_set_key_extractor(
                cfg,
                Some(key_before_bar),
                ud,
                Some(count_free),
                std::ptr::null_mut(),
            )
        },
        0
    );
    let confirms = Confirms::default();
    let sp = super_producer(f.conn, &ss, cfg, &confirms);
    unsafe { rmqs_config_free(cfg) };
    assert_eq!(
        calls.load(Ordering::SeqCst),
        0,
        "extractor freed with the config"
    );
    let keys: Vec<String> = (0..300).map(|i| format!("k{i}")).collect();
    for (i, k) in keys.iter().enumerate() {
        let (p, _) = send(sp, None, format!("{k}|payload").as_bytes(), i).unwrap();
        assert_eq!(p, hash_partition(k, 3), "{k}");
    }
    assert_eq!(calls.load(Ordering::SeqCst), 300);
    // an explicit key wins over the extractor
    assert_eq!(send(sp, Some("hello4"), b"k0|x", 300).unwrap().0, 2);
    assert_eq!(calls.load(Ordering::SeqCst), 300);
    // no key from the extractor
    let (st, m) = send(sp, None, b"-", 301).unwrap_err();
    assert_eq!(st, RMQS_ERR_INVALID_ARGUMENT.status());
    assert!(m.contains("key extractor"), "{m}");
    // a batch with the extractor's keys
    let batch: Vec<Vec<u8>> = (0..30).map(|i| format!("b{i}|x").into_bytes()).collect();
    let bytes: Vec<rmqs_bytes> = batch
        .iter()
        .map(|b| rmqs_bytes {
            data: b.as_ptr(),
            len: b.len(),
        })
        .collect();
    let tags: Vec<usize> = (400..430).collect();
    let mut accepted = 0;
    let mut err = ptr::null_mut();
    let st = unsafe {
        rmqs_super_producer_send_batch(
            sp,
            ptr::null(),
            bytes.as_ptr(),
            tags.as_ptr(),
            30,
            0,
            &mut accepted,
            &mut err,
        )
    };
    check(st, err, "send_batch");
    assert_eq!(accepted, 30);
    assert_eq!(
        unsafe { rmqs_super_producer_flush(sp, 30_000, std::ptr::null_mut()) },
        0
    );
    for x in confirms.wait_for(331) {
        let k = match x.tag {
            300 => "hello4".to_string(),
            t if t >= 400 => format!("b{}", t - 400),
            t => keys[t].clone(),
        };
        assert_eq!(x.partition, hash_partition(&k, 3), "tag {}", x.tag);
    }
    close_free(sp);
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1331,
        "extractor freed once, at free"
    );

    // routing callback, on a super stream of its own
    let (ss, parts) = f.numbered("ffi-sp-route", 3);
    let freed = AtomicUsize::new(0);
    let cfg = config(&[]);
    let ud = &freed as *const AtomicUsize as *mut c_void;
    assert_eq!(
        unsafe {
            rmqs_config_set_routing_cb(
                cfg,
                Some(route_by_tag),
                ud,
                Some(count_free),
                std::ptr::null_mut(),
            )
        },
        0
    );
    // routing = hash and a routing callback conflict
    let bad = config(&[("routing", "hash")]);
    assert_eq!(
        unsafe {
            rmqs_config_set_routing_cb(
                bad,
                Some(route_by_tag),
                ptr::null_mut(),
                None,
                std::ptr::null_mut(),
            )
        },
        0
    );
    let s = c(&ss);
    let (_, st, err) = super_producer_raw(f.conn, &s, bad, ptr::null_mut(), 0);
    let (st, m) = failure(st, err);
    assert_eq!(st, RMQS_ERR_INVALID_ARGUMENT.status());
    assert!(m.contains("routing callback"), "{m}");
    unsafe { rmqs_config_free(bad) };

    let confirms = Confirms::default();
    let sp = super_producer(f.conn, &ss, cfg, &confirms);
    unsafe { rmqs_config_free(cfg) };
    for i in 0..30 {
        assert_eq!(send(sp, Some("x"), b"by-tag", i).unwrap().0, (i % 3) as u32);
    }
    // no key at all: the callback gets ""
    assert_eq!(send(sp, None, b"by-tag", 31).unwrap().0, 1);
    // a copy to each partition; the first one's partition is returned
    assert_eq!(send(sp, Some("all"), b"everywhere", 100).unwrap().0, 0);
    let (st, m) = send(sp, Some("none"), b"nowhere", 101).unwrap_err();
    assert_eq!(st, RMQS_ERR_INVALID_ARGUMENT.status());
    assert!(m.contains("no route:"), "{m}");
    assert_eq!(
        unsafe { rmqs_super_producer_flush(sp, 30_000, std::ptr::null_mut()) },
        0
    );
    let seen = confirms.wait_for(34);
    let everywhere: Vec<u32> = {
        let mut v: Vec<u32> = seen
            .iter()
            .filter(|x| x.tag == 100)
            .map(|x| x.partition)
            .collect();
        v.sort();
        v
    };
    assert_eq!(everywhere, vec![0, 1, 2]);
    close_free(sp);
    assert_eq!(freed.load(Ordering::SeqCst), 1000);
    for (part, n) in parts.iter().zip([11, 12, 11]) {
        let got = f.read(part, n);
        assert_eq!(
            got.iter().filter(|b| b.as_slice() == b"everywhere").count(),
            1
        );
    }
}

/// A named super producer names every partition producer the same: the broker keeps a
/// sequence per partition, a second instance's resend with the same ids is dropped on each
/// partition, and new messages continue after the kept ids.
#[test]
fn named_super_producer_deduplicates_per_partition() {
    let mut f = Fixture::new();
    let (ss, parts) = f.numbered("ffi-sp-dedup", 3);
    let name = unique("ffi-sp-app");
    let keys: Vec<String> = (0..60).map(|i| format!("order-{i}")).collect();
    let cfg = config(&[("name", &name)]);

    let confirms = Confirms::default();
    let sp = super_producer(f.conn, &ss, cfg, &confirms);
    let sent: Vec<(u32, u64)> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| send(sp, Some(k), k.as_bytes(), i).unwrap())
        .collect();
    assert_eq!(
        unsafe { rmqs_super_producer_flush(sp, 30_000, std::ptr::null_mut()) },
        0
    );
    close_free(sp);
    assert!(confirms.wait_for(60).iter().all(|x| x.status == 0));
    let mut last = [0u64; 3];
    let mut count = [0usize; 3];
    for &(p, id) in &sent {
        last[p as usize] = last[p as usize].max(id);
        count[p as usize] += 1;
    }
    for (i, part) in parts.iter().enumerate() {
        assert_eq!(
            last[i], count[i] as u64,
            "ids per partition from 1 on {part}"
        );
        assert_eq!(f.sequence(&name, part), last[i], "{part}");
    }

    // a second instance resends everything with the original ids: confirmed, not stored
    let confirms = Confirms::default();
    let sp = super_producer(f.conn, &ss, cfg, &confirms);
    for (i, k) in keys.iter().enumerate() {
        let kc = c(k);
        let (mut p, mut id) = (0u32, 0u64);
        let mut err = ptr::null_mut();
        let st = unsafe {
            rmqs_super_producer_send_ex(
                sp,
                kc.as_ptr(),
                k.as_ptr(),
                k.len(),
                ptr::null(),
                sent[i].1,
                i,
                RMQS_SEND_PUBLISHING_ID,
                &mut p,
                &mut id,
                &mut err,
            )
        };
        check(st, err, "resend");
        assert_eq!((p, id), sent[i]);
    }
    let more: Vec<String> = (0..30).map(|i| format!("late-{i}")).collect();
    for (i, k) in more.iter().enumerate() {
        let (p, id) = send(sp, Some(k), k.as_bytes(), 100 + i).unwrap();
        assert!(
            id > last[p as usize],
            "{k}: {id} after {}",
            last[p as usize]
        );
        last[p as usize] = id;
        count[p as usize] += 1;
    }
    assert_eq!(
        unsafe { rmqs_super_producer_flush(sp, 30_000, std::ptr::null_mut()) },
        0
    );
    assert!(confirms.wait_for(90).iter().all(|x| x.status == 0));
    close_free(sp);
    unsafe { rmqs_config_free(cfg) };
    for (i, part) in parts.iter().enumerate() {
        assert_eq!(f.sequence(&name, part), last[i], "{part}");
        let mut got = f.read(part, count[i]);
        got.sort();
        got.dedup();
        assert_eq!(got.len(), count[i], "one copy of each message on {part}");
    }
}

/// Adds partition `<ss>-<index>` (binding key `<index>`) to a live super stream, as the
/// broker's own tools do; false when the node cannot be reached that way.
fn add_partition(f: &mut Fixture, ss: &str, index: u32) -> bool {
    if !uri().contains("localhost:5552") {
        eprintln!("RMQS_TEST_URI is not the scripts/broker node: partition not added");
        return false;
    }
    let part = format!("{ss}-{index}");
    let s = c(&part);
    let mut err = ptr::null_mut();
    let st = unsafe { rmqs_stream_create(f.conn, s.as_ptr(), ptr::null(), &mut err) };
    check(st, err, "create partition stream");
    f.streams.push(part.clone());
    let expr = format!(
        "rabbit_binding:add(rabbit_binding:new(rabbit_misc:r(<<\"/\">>, exchange, <<\"{ss}\">>), \
         <<\"{index}\">>, rabbit_misc:r(<<\"/\">>, queue, <<\"{part}\">>), \
         [{{<<\"x-stream-partition-order\">>, long, {index}}}]), <<\"guest\">>)."
    );
    match broker_eval(&expr) {
        Some(out) => {
            assert_eq!(out, "ok", "rabbit_binding:add answered {out}");
            true
        }
        None => {
            eprintln!("cannot reach the node with scripts/broker: partition not added");
            false
        }
    }
}

/// A partition added to the super stream is not used until `rmqs_super_producer_refresh`;
/// then hash routing spreads keys over the new count and confirms name the new partition.
#[test]
fn refresh_picks_up_an_added_partition() {
    let mut f = Fixture::new();
    let (ss, mut parts) = f.numbered("ffi-sp-refresh", 2);
    let confirms = Confirms::default();
    let sp = super_producer(f.conn, &ss, ptr::null(), &confirms);
    let keys: Vec<String> = (0..300).map(|i| format!("key-{i}")).collect();
    let send_all = |n: u32, tag0: usize| {
        let mut per = vec![0usize; n as usize];
        for (i, k) in keys.iter().enumerate() {
            let (p, _) = send(sp, Some(k), k.as_bytes(), tag0 + i).unwrap();
            assert_eq!(p, hash_partition(k, n), "{k}");
            per[p as usize] += 1;
        }
        assert_eq!(
            unsafe { rmqs_super_producer_flush(sp, 30_000, std::ptr::null_mut()) },
            0
        );
        per
    };
    let before = send_all(2, 0);
    if !add_partition(&mut f, &ss, 2) {
        close_free(sp);
        return;
    }
    parts.push(format!("{ss}-2"));
    assert_eq!(f.partitions(&ss), parts);
    // not picked up silently
    assert_eq!(unsafe { rmqs_super_producer_partition_count(sp) }, 2);
    assert_eq!(send_all(2, 1000), before);
    let mut count = 0;
    let mut err = ptr::null_mut();
    check(
        unsafe { rmqs_super_producer_refresh(sp, &mut count, &mut err) },
        err,
        "refresh",
    );
    assert_eq!(count, 3);
    assert_eq!(partition_names(sp), parts);
    let after = send_all(3, 2000);
    assert!(after[2] > 50, "{after:?}");
    for x in confirms.wait_for(900) {
        assert_eq!(x.status, 0);
        let n = if x.tag >= 2000 { 3 } else { 2 };
        assert_eq!(x.partition, hash_partition(&keys[x.tag % 1000], n));
    }
    close_free(sp);
    let got = f.read(&parts[2], after[2]);
    assert!(got.iter().all(|b| hash_partition(text(b), 3) == 2));
}

/// Queue mode: RMQS_EVENT_SUPER_CONFIRMS events from RMQS_SOURCE_SUPER_PRODUCER, each naming
/// its partition, then the CLOSED state event; eager creation; errors of creation.
#[test]
fn queue_mode_eager_and_creation_errors() {
    let mut f = Fixture::new();
    let (ss, _parts) = f.numbered("ffi-sp-queue", 3);
    let q = queue();
    let cfg = config(&[("eager", "true"), ("batch_size", "10")]);
    let s = c(&ss);
    let (sp, st, err) = super_producer_raw(f.conn, &s, cfg, q, 77);
    check(st, err, "super producer (queue)");
    unsafe { rmqs_config_free(cfg) };
    let keys: Vec<String> = (0..200).map(|i| format!("q{i}")).collect();
    for (i, k) in keys.iter().enumerate() {
        send(sp, Some(k), b"x", i).unwrap();
    }
    assert_eq!(
        unsafe { rmqs_super_producer_flush(sp, 30_000, std::ptr::null_mut()) },
        0
    );
    assert_eq!(
        unsafe { rmqs_super_producer_close(sp, 10_000, std::ptr::null_mut()) },
        0
    );
    let mut got = HashMap::new();
    let mut closed = false;
    let deadline = Instant::now() + WAIT;
    while !closed && Instant::now() < deadline {
        let ev = poll_event(q, 200);
        if ev.is_null() {
            continue;
        }
        unsafe {
            assert_eq!(rmqs_event_source(ev), RMQS_SOURCE_SUPER_PRODUCER as i32);
            assert_eq!(rmqs_event_source_tag(ev), 77);
            match rmqs_event_type(ev) {
                t if t == RMQS_EVENT_SUPER_CONFIRMS as i32 => {
                    let mut n = 0;
                    let v = std::slice::from_raw_parts(
                        rmqs_event_super_confirms(ev, &mut n, std::ptr::null_mut()),
                        n,
                    );
                    assert!(n > 0);
                    for x in v {
                        assert_eq!(x.partition as i32, rmqs_event_partition(ev));
                        assert_eq!(x.status, 0);
                        got.insert(x.tag, x.partition);
                    }
                    assert!(
                        rmqs_event_confirms(ev, ptr::null_mut(), std::ptr::null_mut()).is_null()
                    );
                }
                t if t == RMQS_EVENT_STATE as i32 => {
                    assert_eq!(rmqs_event_state(ev), RMQS_STATE_CLOSED as i32);
                    assert_eq!(rmqs_event_status(ev), 0);
                    assert_eq!(rmqs_event_partition(ev), -1);
                    closed = true;
                }
                t => panic!("unexpected event type {t}"),
            }
            rmqs_event_free(ev);
        }
    }
    assert!(closed);
    assert_eq!(got.len(), 200);
    for (tag, p) in got {
        assert_eq!(p, hash_partition(&keys[tag], 3));
    }
    // closed: sends fail, closing again is fine
    let (st, _) = send(sp, Some("k"), b"x", 0).unwrap_err();
    assert_eq!(st, RMQS_ERR_CLOSED.status());
    assert_eq!(
        unsafe { rmqs_super_producer_close(sp, 1000, std::ptr::null_mut()) },
        0
    );
    unsafe {
        rmqs_super_producer_free(sp);
        rmqs_queue_free(q);
    }

    // creation errors
    let attempt = |ss: &str, cfg: *const rmqs_config| {
        let s = c(ss);
        let (sp, st, err) = super_producer_raw(f.conn, &s, cfg, ptr::null_mut(), 0);
        assert!(sp.is_null());
        failure(st, err)
    };
    let (st, m) = attempt(&unique("no-such-super-stream"), ptr::null());
    assert_eq!(st, RMQS_ERR_STREAM_DOES_NOT_EXIST.status(), "{m}");
    let bad = config(&[("offset", "first")]);
    let (st, m) = attempt(&ss, bad);
    assert_eq!(st, RMQS_ERR_INVALID_ARGUMENT.status());
    assert!(m.contains("not to a super producer"), "{m}");
    unsafe { rmqs_config_free(bad) };
    let (st, _) = attempt("", ptr::null());
    assert_eq!(st, RMQS_ERR_INVALID_ARGUMENT.status());
    // NULL handles
    unsafe {
        assert_eq!(
            rmqs_super_producer_send(
                ptr::null_mut(),
                ptr::null(),
                ptr::null(),
                0,
                0,
                0,
                ptr::null_mut()
            ),
            RMQS_ERR_INVALID_ARGUMENT.status()
        );
        assert_eq!(rmqs_super_producer_partition_count(ptr::null()), 0);
        assert!(rmqs_super_producer_partition(ptr::null(), 0).is_null());
        assert_eq!(
            rmqs_super_producer_flush(ptr::null_mut(), 0, std::ptr::null_mut()),
            -1
        );
        rmqs_super_producer_free(ptr::null_mut());
    }
}

/// Closing the connection closes its super producers: their sends then fail with CLOSED.
/// A super producer or super consumer given a plain stream fails with "not a super stream"
/// naming it (the broker answers as for a name that does not exist); a name that is neither
/// still gives STREAM_DOES_NOT_EXIST. Nothing is left open.
#[test]
fn a_plain_stream_is_not_a_super_stream() {
    let mut f = Fixture::new();
    let plain = unique("ffi-plain");
    let cp = c(&plain);
    let mut err = ptr::null_mut();
    let st = unsafe { rmqs_stream_create(f.conn, cp.as_ptr(), ptr::null(), &mut err) };
    check(st, err, "create plain stream");
    f.streams.push(plain.clone());

    let (sp, st, err) = super_producer_raw(f.conn, &cp, ptr::null(), ptr::null_mut(), 0);
    assert!(sp.is_null());
    let (st, m) = failure(st, err);
    assert_eq!(st, RMQS_ERR_INVALID_ARGUMENT.status(), "{m}");
    assert!(m.contains("not a super stream"), "{m}");
    assert!(m.contains(&format!("{plain} is a plain stream")), "{m}");

    let q = queue();
    let (st, m) = try_super_consumer(f.conn, &plain, ptr::null(), None, q).unwrap_err();
    assert_eq!(st, RMQS_ERR_INVALID_ARGUMENT.status(), "{m}");
    assert!(m.contains("not a super stream"), "{m}");
    assert!(m.contains(&format!("{plain} is a plain stream")), "{m}");
    let (st, m) =
        try_super_consumer(f.conn, &unique("ffi-neither"), ptr::null(), None, q).unwrap_err();
    assert_eq!(st, RMQS_ERR_STREAM_DOES_NOT_EXIST.status(), "{m}");
    unsafe { rmqs_queue_free(q) };

    // The plain stream is untouched and the connection usable.
    let mut exists = false;
    let st = unsafe { rmqs_stream_exists(f.conn, cp.as_ptr(), &mut exists, ptr::null_mut()) };
    assert_eq!((st, exists), (0, true));
}

#[test]
fn connection_close_closes_super_producers() {
    let mut f = Fixture::new();
    let (ss, _) = f.numbered("ffi-sp-conn", 2);
    let conn = connect(&uri());
    let confirms = Confirms::default();
    let sp = super_producer(conn, &ss, ptr::null(), &confirms);
    send(sp, Some("a"), b"x", 1).unwrap();
    assert_eq!(
        unsafe { rmqs_connection_close(conn, 10_000, std::ptr::null_mut()) },
        0
    );
    assert_eq!(confirms.wait_for(1)[0].status, 0);
    let (st, _) = send(sp, Some("b"), b"x", 2).unwrap_err();
    assert_eq!(st, RMQS_ERR_CLOSED.status());
    unsafe {
        rmqs_super_producer_free(sp);
        rmqs_connection_free(conn);
    }
    assert_eq!(confirms.freed.load(Ordering::SeqCst), 1);
}

// ---------------------------------------------------------------------------------------------
// super consumer

/// Queue mode: chunks from RMQS_SOURCE_SUPER_CONSUMER naming their partition (event and chunk
/// agree); a partition added later is read only after `rmqs_super_consumer_refresh`, from its
/// first message; offsets stored per partition under the name read back per partition; close
/// ends with one CLOSED state event.
#[test]
fn super_consumer_queue_mode_refresh_and_offsets_per_partition() {
    let mut f = Fixture::new();
    let (ss, mut parts) = f.numbered("ffi-sc-queue", 2);
    let keys: Vec<String> = (0..200).map(|i| format!("k-{i}")).collect();
    let first = publish(f.conn, &ss, &keys);
    let q = queue();
    let name = unique("ffi-sc-app");
    let cfg = config(&[("offset", "first"), ("name", &name)]);
    let sc = try_super_consumer(f.conn, &ss, cfg, None, q).unwrap();
    unsafe { rmqs_config_free(cfg) };
    // (partition, body, offset) of each message, until `n` arrived
    let drain = |n: usize| {
        let mut out = Vec::new();
        let deadline = Instant::now() + WAIT;
        while out.len() < n && Instant::now() < deadline {
            let ev = poll_event(q, 200);
            if ev.is_null() {
                continue;
            }
            unsafe {
                assert_eq!(rmqs_event_source(ev), RMQS_SOURCE_SUPER_CONSUMER as i32);
                assert_eq!(rmqs_event_type(ev), RMQS_EVENT_CHUNK as i32, "{}", {
                    CStr::from_ptr(rmqs_event_message(ev)).to_string_lossy()
                });
                let ch = rmqs_event_chunk(ev);
                let p = rmqs_chunk_partition(ch);
                assert_eq!(p, rmqs_event_partition(ev));
                for (i, b) in bodies(ch).into_iter().enumerate() {
                    let off = rmqs_message_offset(rmqs_chunk_message(ch, i));
                    out.push((p, String::from_utf8(b).unwrap(), off));
                }
                rmqs_event_free(ev);
            }
        }
        assert_eq!(out.len(), n);
        out
    };
    let got = drain(200);
    for (p, k, _) in &got {
        let i: usize = k.strip_prefix("k-").unwrap().parse().unwrap();
        assert_eq!(*p as u32, first[i], "{k}");
    }
    // store the last offset of each partition, read it back per partition
    for p in 0..2 {
        let last = got.iter().filter(|g| g.0 == p).map(|g| g.2).max().unwrap();
        let mut err = ptr::null_mut();
        check(
            unsafe { rmqs_super_consumer_store_offset(sc, p as usize, last, &mut err) },
            err,
            "store",
        );
        let deadline = Instant::now() + WAIT;
        loop {
            let mut o = 0;
            let mut err = ptr::null_mut();
            let st = unsafe { rmqs_super_consumer_query_offset(sc, p as usize, &mut o, &mut err) };
            if st == 0 && o == last {
                break;
            }
            message(err);
            assert!(Instant::now() < deadline, "offset of partition {p}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let mut o = 0;
    let mut err = ptr::null_mut();
    let (st, _) = failure(
        unsafe { rmqs_super_consumer_query_offset(sc, 2, &mut o, &mut err) },
        err,
    );
    assert_eq!(st, RMQS_ERR_INVALID_ARGUMENT.status());

    if add_partition(&mut f, &ss, 2) {
        parts.push(format!("{ss}-2"));
        // messages for the new partition, sent before the refresh
        let more: Vec<String> = (0..300).map(|i| format!("m-{i}")).collect();
        let confirms = Confirms::default();
        let sp = super_producer(f.conn, &ss, ptr::null(), &confirms);
        let mut count = 0;
        assert_eq!(
            unsafe { rmqs_super_producer_refresh(sp, &mut count, ptr::null_mut()) },
            0
        );
        assert_eq!(count, 3);
        let dest: Vec<u32> = more
            .iter()
            .enumerate()
            .map(|(i, k)| send(sp, Some(k), k.as_bytes(), i).unwrap().0)
            .collect();
        assert_eq!(
            unsafe { rmqs_super_producer_flush(sp, 30_000, std::ptr::null_mut()) },
            0
        );
        close_free(sp);
        let on_new = dest.iter().filter(|&&p| p == 2).count();
        assert!(on_new > 50);
        // the two old partitions deliver theirs; the new one is not read yet
        let got = drain(300 - on_new);
        assert!(got.iter().all(|g| g.0 < 2));
        assert_eq!(unsafe { rmqs_super_consumer_partition_count(sc) }, 2);
        let mut count = 0;
        let mut err = ptr::null_mut();
        check(
            unsafe { rmqs_super_consumer_refresh(sc, &mut count, &mut err) },
            err,
            "refresh",
        );
        assert_eq!(count, 3);
        assert_eq!(sc_partition_names(sc), parts);
        let got = drain(on_new);
        for (p, k, _) in &got {
            assert_eq!(*p, 2);
            assert_eq!(hash_partition(k, 3), 2, "{k}");
        }
        assert!(unsafe { rmqs_super_consumer_is_active(sc, 2) });
    }
    assert!(unsafe { rmqs_super_consumer_is_active(sc, 0) });
    assert_eq!(
        unsafe { rmqs_super_consumer_close(sc, 10_000, std::ptr::null_mut()) },
        0
    );
    assert!(!unsafe { rmqs_super_consumer_is_active(sc, 0) });
    let mut closed = false;
    let deadline = Instant::now() + WAIT;
    while !closed && Instant::now() < deadline {
        let ev = poll_event(q, 200);
        if ev.is_null() {
            continue;
        }
        unsafe {
            if rmqs_event_type(ev) == RMQS_EVENT_STATE as i32 {
                assert_eq!(rmqs_event_state(ev), RMQS_STATE_CLOSED as i32);
                assert_eq!(rmqs_event_status(ev), 0);
                assert_eq!(rmqs_event_partition(ev), -1);
                closed = true;
            } else {
                assert_eq!(rmqs_event_type(ev), RMQS_EVENT_CHUNK as i32);
            }
            rmqs_event_free(ev);
        }
    }
    assert!(closed);
    assert_eq!(
        unsafe { rmqs_super_consumer_credit(sc, 0, 1, std::ptr::null_mut()) },
        RMQS_ERR_CLOSED.status()
    );
    assert_eq!(
        unsafe { rmqs_super_consumer_refresh(sc, ptr::null_mut(), ptr::null_mut()) },
        RMQS_ERR_CLOSED.status()
    );
    unsafe {
        rmqs_super_consumer_free(sc);
        rmqs_queue_free(q);
    }
}

/// A partition's stream deleted under a super consumer: an error event naming the partition,
/// the other partitions go on; creation errors; NULL handles.
#[test]
fn super_consumer_partition_loss_and_errors() {
    let mut f = Fixture::new();
    let (ss, parts) = f.numbered("ffi-sc-loss", 3);
    let q = queue();
    let cfg = config(&[("offset", "first")]);
    let sc = try_super_consumer(f.conn, &ss, cfg, None, q).unwrap();
    let s1 = c(&parts[1]);
    assert_eq!(
        unsafe { rmqs_stream_delete(f.conn, s1.as_ptr(), ptr::null_mut()) },
        0
    );
    let mut lost = None;
    let deadline = Instant::now() + WAIT;
    while lost.is_none() && Instant::now() < deadline {
        let ev = poll_event(q, 200);
        if ev.is_null() {
            continue;
        }
        unsafe {
            if rmqs_event_type(ev) == RMQS_EVENT_ERROR as i32 {
                let m = CStr::from_ptr(rmqs_event_message(ev))
                    .to_string_lossy()
                    .into_owned();
                lost = Some((rmqs_event_partition(ev), rmqs_event_status(ev), m));
            }
            rmqs_event_free(ev);
        }
    }
    let (p, st, m) = lost.expect("an error event for the lost partition");
    assert_eq!(p, 1, "{m}");
    assert_ne!(st, 0);
    assert!(m.contains(&parts[1]), "{m}");
    assert!(!unsafe { rmqs_super_consumer_is_active(sc, 1) });
    assert!(unsafe { rmqs_super_consumer_is_active(sc, 0) });
    // the others still deliver
    let keys: Vec<String> = (0..60).map(|i| format!("x{i}")).collect();
    let confirms = Confirms::default();
    let sp = super_producer(f.conn, &ss, ptr::null(), &confirms);
    let mut want = 0;
    for (i, k) in keys.iter().enumerate() {
        if hash_partition(k, 3) != 1 {
            send(sp, Some(k), k.as_bytes(), i).unwrap();
            want += 1;
        }
    }
    assert_eq!(
        unsafe { rmqs_super_producer_flush(sp, 30_000, std::ptr::null_mut()) },
        0
    );
    close_free(sp);
    let mut n = 0;
    let deadline = Instant::now() + WAIT;
    while n < want && Instant::now() < deadline {
        let ev = poll_event(q, 200);
        if ev.is_null() {
            continue;
        }
        let ch = unsafe { rmqs_event_chunk(ev) };
        if !ch.is_null() {
            assert_ne!(unsafe { rmqs_chunk_partition(ch) }, 1);
            n += unsafe { rmqs_chunk_message_count(ch) };
        }
        unsafe { rmqs_event_free(ev) };
    }
    assert_eq!(n, want);
    unsafe {
        rmqs_super_consumer_free(sc);
        rmqs_queue_free(q);
    }

    // creation errors
    let q = queue();
    let (st, m) = try_super_consumer(f.conn, &unique("nope"), cfg, None, q).unwrap_err();
    assert_eq!(st, RMQS_ERR_STREAM_DOES_NOT_EXIST.status(), "{m}");
    unsafe { rmqs_queue_free(q) };
    let (st, m) = try_super_consumer(f.conn, &ss, cfg, None, ptr::null_mut()).unwrap_err();
    assert_eq!(st, RMQS_ERR_INVALID_ARGUMENT.status());
    assert!(m.contains("callback or a queue"), "{m}");
    unsafe { rmqs_config_free(cfg) };
    let bad = config(&[("eager", "true")]);
    let chunks = Chunks::default();
    let (st, m) = try_super_consumer(f.conn, &ss, bad, Some(&chunks), ptr::null_mut()).unwrap_err();
    assert_eq!(st, RMQS_ERR_INVALID_ARGUMENT.status());
    assert!(m.contains("not to a super consumer"), "{m}");
    unsafe { rmqs_config_free(bad) };
    assert_eq!(
        chunks.freed.load(Ordering::SeqCst),
        0,
        "not freed on failure"
    );
    unsafe {
        assert_eq!(rmqs_super_consumer_partition_count(ptr::null()), 0);
        assert!(rmqs_super_consumer_partition(ptr::null(), 0).is_null());
        assert!(!rmqs_super_consumer_is_active(ptr::null(), 0));
        assert_eq!(
            rmqs_super_consumer_close(ptr::null_mut(), 0, std::ptr::null_mut()),
            RMQS_ERR_INVALID_ARGUMENT.status()
        );
        rmqs_super_consumer_free(ptr::null_mut());
    }
}

/// What consumer-update callbacks saw: (stream, is_active, stored_offset).
#[derive(Default)]
struct Updates(Mutex<Vec<(String, bool, u64)>>);

unsafe extern "C" fn on_update(
    ud: *mut c_void,
    info: *const rmqs_consumer_update_info,
) -> rmqs_offset_spec {
    let u = unsafe { &*(ud as *const Updates) };
    let info = unsafe { &*info };
    let stream = unsafe { CStr::from_ptr(info.stream) }
        .to_str()
        .unwrap()
        .to_string();
    u.0.lock()
        .unwrap()
        .push((stream, info.is_active, info.stored_offset));
    rmqs_offset_spec {
        r#type: rmqs_offset_type_code::RMQS_OFFSET_DEFAULT as i32,
        value: 0,
    }
}

/// Waits until `cond` holds (30 s at most).
fn eventually(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Two super consumers of one single-active-consumer group (same name) split the partitions
/// (the broker gives partition i to member i mod 2); when the first closes it stores its
/// processed offsets (tracking `auto`) and the second takes its partitions over right after
/// them, its consumer-update callback told per partition: nothing lost, nothing repeated.
#[test]
fn sac_group_splits_partitions_and_takes_over_on_close() {
    let mut f = Fixture::new();
    let (ss, parts) = f.numbered("ffi-sc-sac", 3);
    let group = unique("ffi-sc-group");
    let cfg = config(&[
        ("name", &group),
        ("single_active_consumer", "true"),
        ("tracking", "auto"),
        ("offset", "first"),
    ]);
    let (ua, ub) = (Updates::default(), Updates::default());
    let (ca, cb) = (Chunks::default(), Chunks::default());
    let conn_b = connect(&uri());
    let set_update = |u: &Updates| {
        let ud = u as *const Updates as *mut c_void;
        assert_eq!(
            unsafe {
                rmqs_config_set_consumer_update_cb(
                    cfg,
                    Some(on_update),
                    ud,
                    None,
                    std::ptr::null_mut(),
                )
            },
            0
        );
    };
    set_update(&ua);
    let a = super_consumer(f.conn, &ss, cfg, &ca);
    set_update(&ub);
    let b = super_consumer(conn_b, &ss, cfg, &cb);
    unsafe { rmqs_config_free(cfg) };
    let active = |sc: *mut rmqs_super_consumer| -> Vec<bool> {
        (0..3)
            .map(|i| unsafe { rmqs_super_consumer_is_active(sc, i) })
            .collect()
    };
    eventually("the group to split the partitions", || {
        active(a) == [true, false, true] && active(b) == [false, true, false]
    });

    let first: Vec<String> = (0..600).map(|i| format!("m-{i}")).collect();
    let dest = publish(f.conn, &ss, &first);
    let count = |c: &Chunks| c.seen.lock().unwrap().len();
    eventually("the first 600 messages", || count(&ca) + count(&cb) == 600);
    let on = |c: &Chunks, p: i32| c.seen.lock().unwrap().iter().filter(|m| m.0 == p).count();
    let want = |p: u32| dest.iter().filter(|&&d| d == p).count();
    assert_eq!(
        [on(&ca, 0), on(&ca, 1), on(&ca, 2)],
        [want(0), 0, want(2)],
        "A reads partitions 0 and 2"
    );
    assert_eq!(
        [on(&cb, 0), on(&cb, 1), on(&cb, 2)],
        [0, want(1), 0],
        "B reads partition 1"
    );

    // A closes: it stores where it is on 0 and 2, and B continues right after.
    assert_eq!(
        unsafe { rmqs_super_consumer_close(a, 10_000, std::ptr::null_mut()) },
        0
    );
    unsafe { rmqs_super_consumer_free(a) };
    eventually("B to take every partition over", || {
        active(b) == [true, true, true]
    });
    let second: Vec<String> = (0..600).map(|i| format!("n-{i}")).collect();
    publish(f.conn, &ss, &second);
    let b_before = want(1);
    eventually("the next 600 messages", || count(&cb) >= b_before + 600);
    std::thread::sleep(Duration::from_millis(300));
    let mut all: Vec<(i32, String, Vec<u8>)> = std::mem::take(&mut *ca.seen.lock().unwrap());
    all.extend(std::mem::take(&mut *cb.seen.lock().unwrap()));
    assert_eq!(all.len(), 1200, "every message once");
    let mut keys: Vec<&str> = all.iter().map(|m| text(&m.2)).collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), 1200, "no message twice");
    for (p, stream, body) in &all {
        assert_eq!(hash_partition(text(body), 3) as i32, *p);
        assert_eq!(stream, &parts[*p as usize]);
    }
    // B's callback heard its activations on 0 and 2 after A's stores
    let updates = ub.0.lock().unwrap().clone();
    for p in [0, 2] {
        let act = updates
            .iter()
            .rfind(|u| u.0 == parts[p] && u.1)
            .unwrap_or_else(|| panic!("no activation of {} in {updates:?}", parts[p]));
        assert_ne!(act.2, u64::MAX, "stored offset on {}", parts[p]);
    }
    assert!(
        ua.0.lock().unwrap().iter().any(|u| u.0 == parts[1] && !u.1),
        "A stepped down on 1"
    );
    unsafe {
        rmqs_super_consumer_free(b);
        rmqs_connection_free(conn_b);
    }
}

/// Queue mode without a consumer-update callback: a partition's activation arrives as an
/// RMQS_EVENT_CONSUMER_UPDATE event naming the partition, answered with
/// `rmqs_event_consumer_update_reply`.
#[test]
fn sac_consumer_update_events_name_the_partition() {
    let mut f = Fixture::new();
    let (ss, parts) = f.numbered("ffi-sc-sacq", 2);
    let group = unique("ffi-sc-groupq");
    let cfg = config(&[
        ("name", &group),
        ("single_active_consumer", "true"),
        ("offset", "first"),
    ]);
    let ca = Chunks::default();
    let a = super_consumer(f.conn, &ss, cfg, &ca);
    eventually("A active on both", || unsafe {
        rmqs_super_consumer_is_active(a, 0) && rmqs_super_consumer_is_active(a, 1)
    });
    let q = queue();
    let b = try_super_consumer(f.conn, &ss, cfg, None, q).unwrap();
    unsafe { rmqs_config_free(cfg) };
    // B is the group's second member: the broker moves partition 1 to it
    let mut answered = false;
    let deadline = Instant::now() + WAIT;
    while !answered && Instant::now() < deadline {
        let ev = poll_event(q, 200);
        if ev.is_null() {
            continue;
        }
        unsafe {
            assert_eq!(rmqs_event_type(ev), RMQS_EVENT_CONSUMER_UPDATE as i32);
            assert_eq!(rmqs_event_source(ev), RMQS_SOURCE_SUPER_CONSUMER as i32);
            assert_eq!(rmqs_event_partition(ev), 1);
            let info = &*rmqs_event_consumer_update(ev);
            assert!(info.is_active);
            assert_eq!(CStr::from_ptr(info.stream).to_str().unwrap(), parts[1]);
            let spec = rmqs_offset_spec {
                r#type: rmqs_offset_type_code::RMQS_OFFSET_FIRST as i32,
                value: 0,
            };
            assert_eq!(
                rmqs_event_consumer_update_reply(ev, spec, std::ptr::null_mut()),
                0
            );
            rmqs_event_free(ev);
        }
        answered = true;
    }
    assert!(answered, "no consumer update for partition 1");
    eventually("B active on 1, A on 0", || unsafe {
        rmqs_super_consumer_is_active(b, 1)
            && !rmqs_super_consumer_is_active(b, 0)
            && rmqs_super_consumer_is_active(a, 0)
            && !rmqs_super_consumer_is_active(a, 1)
    });
    unsafe {
        rmqs_super_consumer_free(b);
        rmqs_super_consumer_free(a);
        rmqs_queue_free(q);
    }
}

/// Keeps the messages whose body starts with "red".
unsafe extern "C" fn only_red(_ud: *mut c_void, m: *const rmqs_message) -> bool {
    let mut len = 0;
    let b = unsafe { rmqs_message_body(m, &mut len) };
    unsafe { std::slice::from_raw_parts(b, len) }.starts_with(b"red")
}

/// Filtering through the super producer's filter values and the super consumer's consumer
/// keys (`filter_values`) and post-filter callback: only the red messages reach the
/// application, all of them, from every partition.
#[test]
fn filtering_across_partitions() {
    let mut f = Fixture::new();
    let (ss, _) = f.numbered("ffi-sc-filter", 2);
    let confirms = Confirms::default();
    let sp = super_producer(f.conn, &ss, ptr::null(), &confirms);
    let mut reds = 0;
    let mut tag = 0;
    // runs of one colour, flushed apart, so that chunks hold one value each
    for round in 0..6 {
        let colour = if round % 2 == 0 { "red" } else { "blue" };
        let fv = c(colour);
        for i in 0..100 {
            let body = format!("{colour}-{round}-{i}");
            let key = c(&body);
            let mut err = ptr::null_mut();
            let st = unsafe {
                rmqs_super_producer_send_ex(
                    sp,
                    key.as_ptr(),
                    body.as_ptr(),
                    body.len(),
                    fv.as_ptr(),
                    0,
                    tag,
                    0,
                    ptr::null_mut(),
                    ptr::null_mut(),
                    &mut err,
                )
            };
            check(st, err, "send with a filter value");
            tag += 1;
            if colour == "red" {
                reds += 1;
            }
        }
        assert_eq!(
            unsafe { rmqs_super_producer_flush(sp, 30_000, std::ptr::null_mut()) },
            0
        );
    }
    assert!(confirms.wait_for(600).iter().all(|x| x.status == 0));
    close_free(sp);

    let cfg = config(&[("offset", "first"), ("filter_values", "red")]);
    assert_eq!(
        unsafe {
            rmqs_config_set_post_filter_cb(
                cfg,
                Some(only_red),
                ptr::null_mut(),
                None,
                std::ptr::null_mut(),
            )
        },
        0
    );
    let got = Chunks::default();
    let sc = super_consumer(f.conn, &ss, cfg, &got);
    unsafe { rmqs_config_free(cfg) };
    let seen = got.wait_for(reds);
    std::thread::sleep(Duration::from_millis(300));
    assert!(got.seen.lock().unwrap().is_empty(), "nothing but the reds");
    assert!(seen.iter().all(|m| m.2.starts_with(b"red")));
    assert!(seen.iter().any(|m| m.0 == 0) && seen.iter().any(|m| m.0 == 1));
    let mut st = rmqs_consumer_statistics {
        size: std::mem::size_of::<rmqs_consumer_statistics>() as u64,
        ..Default::default()
    };
    assert_eq!(
        unsafe { rmqs_super_consumer_stats(sc, &mut st, std::ptr::null_mut()) },
        0
    );
    assert_eq!(st.messages as usize, reds);
    assert!(
        st.messages + st.filtered_out < 600,
        "the broker filtered chunks out: {st:?}"
    );
    unsafe { rmqs_super_consumer_free(sc) };
}

/// Closing the connection closes its super consumers (free afterwards is fine).
#[test]
fn connection_close_closes_super_consumers() {
    let mut f = Fixture::new();
    let (ss, _) = f.numbered("ffi-sc-conn", 2);
    let conn = connect(&uri());
    let chunks = Chunks::default();
    let sc = super_consumer(conn, &ss, ptr::null(), &chunks);
    assert_eq!(
        unsafe { rmqs_connection_close(conn, 10_000, std::ptr::null_mut()) },
        0
    );
    assert!(!unsafe { rmqs_super_consumer_is_active(sc, 0) });
    assert_eq!(
        unsafe { rmqs_super_consumer_refresh(sc, ptr::null_mut(), ptr::null_mut()) },
        RMQS_ERR_CLOSED.status()
    );
    unsafe {
        rmqs_super_consumer_free(sc);
        rmqs_connection_free(conn);
    }
    assert_eq!(chunks.freed.load(Ordering::SeqCst), 1);
}

/// RabbitMQ 3.10.8: creating a super stream gives UNSUPPORTED naming 3.13; a super producer
/// on a super stream that cannot exist there fails cleanly, the connection intact.
#[test]
fn legacy_broker() {
    let Some(conn) = legacy_connection("super streams on 3.10.8") else {
        return;
    };
    let name = unique("ffi-sp-legacy");
    let s = c(&name);
    let mut err = ptr::null_mut();
    let st = unsafe { rmqs_super_stream_create_n(conn, s.as_ptr(), 3, ptr::null(), &mut err) };
    let (st, m) = failure(st, err);
    assert_eq!(st, RMQS_ERR_UNSUPPORTED.status(), "{m}");
    assert!(m.contains("3.13"), "{m}");
    let (_, st, err) = super_producer_raw(conn, &s, ptr::null(), ptr::null_mut(), 0);
    let (st, m) = failure(st, err);
    eprintln!("3.10.8, super producer: {} {m}", unsafe {
        CStr::from_ptr(rmqs_status_name(st)).to_str().unwrap()
    });
    let q = queue();
    let (st, m) = try_super_consumer(conn, &name, ptr::null(), None, q).unwrap_err();
    eprintln!("3.10.8, super consumer: {} {m}", unsafe {
        CStr::from_ptr(rmqs_status_name(st)).to_str().unwrap()
    });
    unsafe { rmqs_queue_free(q) };
    // still usable
    let st_name = c(&unique("ffi-sp-legacy-s"));
    let mut err = ptr::null_mut();
    check(
        unsafe { rmqs_stream_create(conn, st_name.as_ptr(), ptr::null(), &mut err) },
        err,
        "create on 3.10",
    );
    assert_eq!(
        unsafe { rmqs_stream_delete(conn, st_name.as_ptr(), ptr::null_mut()) },
        0
    );
    unsafe { rmqs_connection_free(conn) };
}
