//! The C API, thinly, for tests that drive the library through it: configs, connections,
//! streams, producers and consumers whose callbacks record into a [`Seen`] (confirm statuses by
//! tag, state changes with their time, consumed messages), reading a stream back, and the
//! bodies' indices.
//!
//! Message bodies are `m%08d` (the message's index), optionally padded to a size with `.`:
//! [`body`], [`indices`].

use std::collections::BTreeMap;
use std::ffi::{CStr, CString, c_char, c_void};
use std::ptr;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use rmqstream::ffi::*;

/// How long the helpers wait for what should come soon.
pub const WAIT: Duration = Duration::from_secs(60);

/// The C error's message (freeing it), or "" for NULL.
pub fn message(err: *mut rmqs_error) -> String {
    if err.is_null() {
        return String::new();
    }
    let m = unsafe { CStr::from_ptr(rmqs_error_message(err)) }
        .to_string_lossy()
        .into_owned();
    unsafe { rmqs_error_free(err) };
    m
}

/// Panics with the error's message unless `st` is `RMQS_OK` (frees `err`).
pub fn check(st: rmqs_status, err: *mut rmqs_error, what: &str) {
    if st != 0 {
        panic!("{what}: status {st}: {}", message(err));
    }
}

/// `Ok` for `RMQS_OK` (checking that `err` stayed NULL), else the status and message (checking
/// that the error carries the same status; freed).
pub fn outcome(st: rmqs_status, err: *mut rmqs_error) -> Result<(), (rmqs_status, String)> {
    if st == 0 {
        assert!(err.is_null(), "err written on success");
        return Ok(());
    }
    if !err.is_null() {
        assert_eq!(unsafe { rmqs_error_status(err) }, st);
    }
    Err((st, message(err)))
}

/// Status and message of a call that must fail (frees `err`).
pub fn failure(st: rmqs_status, err: *mut rmqs_error) -> (rmqs_status, String) {
    assert_ne!(st, 0, "expected a failure");
    (st, message(err))
}

/// [`super::unique`] as a C string.
pub fn cunique(prefix: &str) -> CString {
    CString::new(super::unique(prefix)).unwrap()
}

/// Polls `f` every 10 ms until it holds or `timeout` passes; whether it held.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    f()
}

/// A config with the given keys (owned by the caller).
pub fn config(pairs: &[(&str, &str)]) -> *mut rmqs_config {
    let cfg = rmqs_config_new();
    for (k, v) in pairs {
        let (k, v) = (CString::new(*k).unwrap(), CString::new(*v).unwrap());
        let mut err = ptr::null_mut();
        let st = unsafe { rmqs_config_set(cfg, k.as_ptr(), v.as_ptr(), &mut err) };
        check(st, err, "config");
    }
    cfg
}

/// A config with the given keys, or NULL (the defaults) for none.
fn config_or_null(pairs: &[(&str, &str)]) -> *mut rmqs_config {
    if pairs.is_empty() {
        ptr::null_mut()
    } else {
        config(pairs)
    }
}

/// A connection opened with the given keys.
pub fn open(pairs: &[(&str, &str)]) -> *mut rmqs_connection {
    open_config(config(pairs))
}

/// A connection opened with `cfg` (freed here).
pub fn open_config(cfg: *mut rmqs_config) -> *mut rmqs_connection {
    try_open_config(cfg).unwrap_or_else(|(st, m)| panic!("open: status {st}: {m}"))
}

/// A connection opened with the given keys, or the status and message of the failure.
pub fn try_open(pairs: &[(&str, &str)]) -> Result<*mut rmqs_connection, (rmqs_status, String)> {
    try_open_config(config(pairs))
}

/// A connection opened with `cfg` (freed here), or the status and message of the failure.
pub fn try_open_config(
    cfg: *mut rmqs_config,
) -> Result<*mut rmqs_connection, (rmqs_status, String)> {
    let mut conn = ptr::null_mut();
    let mut err = ptr::null_mut();
    let st = unsafe { rmqs_connection_open(cfg, &mut conn, &mut err) };
    unsafe { rmqs_config_free(cfg) };
    outcome(st, err).map(|()| {
        assert!(!conn.is_null());
        conn
    })
}

/// A connection to the legacy (3.10.8) broker of [`super::legacy_uri`], or `None` after a
/// notice that `what` is skipped.
pub fn legacy_connection(what: &str) -> Option<*mut rmqs_connection> {
    let Some(u) = super::legacy_uri() else {
        eprintln!("no legacy (3.10.8) broker: {what} skipped");
        return None;
    };
    Some(connect(&u))
}

/// A connection to `uri` with the given keys.
pub fn connect_to(uri: &str, pairs: &[(&str, &str)]) -> *mut rmqs_connection {
    let mut all = vec![("uri", uri)];
    all.extend_from_slice(pairs);
    open(&all)
}

/// A connection opened with `rmqs_connection_open_uri`.
pub fn connect(uri: &str) -> *mut rmqs_connection {
    let u = CString::new(uri).unwrap();
    let mut conn = ptr::null_mut();
    let mut err = ptr::null_mut();
    let st = unsafe { rmqs_connection_open_uri(u.as_ptr(), &mut conn, &mut err) };
    check(st, err, "open");
    conn
}

/// A connection whose only address is `proxy` (load-balancer mode: data connections cross it
/// too), with quick recovery and the given extra keys.
pub fn through(proxy: &super::proxy::Proxy, extra: &[(&str, &str)]) -> *mut rmqs_connection {
    let u = format!(
        "rabbitmq-stream://guest:guest@127.0.0.1:{}/%2f",
        proxy.port()
    );
    let mut keys = vec![
        ("uri", u.as_str()),
        ("load_balancer", "true"),
        ("recovery_initial_delay_ms", "100"),
        ("recovery_max_delay_ms", "1000"),
        ("connect_timeout_ms", "2000"),
        ("request_timeout_ms", "2000"),
    ];
    keys.extend_from_slice(extra);
    open(&keys)
}

/// A connection to the test broker ([`super::uri`]) and a new stream named after `prefix`:
/// the usual start of a test; [`delete_and_free`] ends it.
pub fn conn_and_stream(prefix: &str) -> (*mut rmqs_connection, CString) {
    let conn = connect(&super::uri());
    let s = cunique(prefix);
    create_stream(conn, &s);
    (conn, s)
}

/// Deletes `s` (it must succeed) and frees `conn`.
pub fn delete_and_free(conn: *mut rmqs_connection, s: &CStr) {
    delete_stream(conn, s);
    unsafe { rmqs_connection_free(conn) };
}

/// Creates `s` with default arguments.
pub fn create_stream(conn: *mut rmqs_connection, s: &CStr) {
    let mut err = ptr::null_mut();
    let st = unsafe { rmqs_stream_create(conn, s.as_ptr(), ptr::null(), &mut err) };
    check(st, err, "create stream");
}

/// Creates `s` with stream-creation keys (`initial_cluster_size`, ...).
pub fn create_with(conn: *mut rmqs_connection, s: &CStr, args: &[(&str, &str)]) {
    let cfg = config(args);
    let mut err = ptr::null_mut();
    let st = unsafe { rmqs_stream_create(conn, s.as_ptr(), cfg, &mut err) };
    unsafe { rmqs_config_free(cfg) };
    check(st, err, "create stream");
}

pub fn delete(conn: *mut rmqs_connection, s: &CStr) -> rmqs_status {
    unsafe { rmqs_stream_delete(conn, s.as_ptr(), ptr::null_mut()) }
}

/// Deletes `s`; panics unless that succeeds.
pub fn delete_stream(conn: *mut rmqs_connection, s: &CStr) {
    assert_eq!(delete(conn, s), 0, "delete stream");
}

/// Frees consumer `c`, then `q`, the queue it delivered to.
pub fn free_consumer_and_queue(c: *mut rmqs_consumer, q: *mut rmqs_queue) {
    unsafe {
        rmqs_consumer_free(c);
        rmqs_queue_free(q);
    }
}

/// A new event queue.
pub fn queue() -> *mut rmqs_queue {
    let mut q = ptr::null_mut();
    assert_eq!(unsafe { rmqs_queue_new(&mut q, ptr::null_mut()) }, 0);
    q
}

/// `rmqs_queue_poll`: the event, or NULL when none came within `timeout_ms` (or after a
/// wakeup); any other outcome fails the test.
pub fn poll_event(q: *mut rmqs_queue, timeout_ms: i32) -> *mut rmqs_event {
    let mut ev = ptr::null_mut();
    let st = unsafe { rmqs_queue_poll(q, timeout_ms, &mut ev, ptr::null_mut()) };
    assert!(
        st == 0 || st == rmqs_status_code::RMQS_ERR_TIMEOUT.status(),
        "rmqs_queue_poll: {st}"
    );
    ev
}

/// A producer without callback or queue (confirms are waited for with [`flush`]); no keys:
/// a NULL config.
pub fn bare_producer(
    conn: *mut rmqs_connection,
    stream: &CStr,
    keys: &[(&str, &str)],
) -> *mut rmqs_producer {
    try_bare_producer(conn, stream, keys).unwrap_or_else(|e| panic!("producer: {e:?}"))
}

/// [`bare_producer`], or the status and message of the failure.
pub fn try_bare_producer(
    conn: *mut rmqs_connection,
    stream: &CStr,
    keys: &[(&str, &str)],
) -> Result<*mut rmqs_producer, (rmqs_status, String)> {
    try_queue_producer(conn, stream, keys, ptr::null_mut(), 0)
}

/// A producer delivering its confirms to `q` (may be NULL) with source tag `tag` and the given
/// keys (none: a NULL config).
pub fn queue_producer(
    conn: *mut rmqs_connection,
    stream: &CStr,
    keys: &[(&str, &str)],
    q: *mut rmqs_queue,
    tag: usize,
) -> *mut rmqs_producer {
    try_queue_producer(conn, stream, keys, q, tag).unwrap_or_else(|e| panic!("producer: {e:?}"))
}

/// [`queue_producer`], or the status and message of the failure.
pub fn try_queue_producer(
    conn: *mut rmqs_connection,
    stream: &CStr,
    keys: &[(&str, &str)],
    q: *mut rmqs_queue,
    tag: usize,
) -> Result<*mut rmqs_producer, (rmqs_status, String)> {
    try_tagged_producer(conn, stream, config_or_null(keys), q, tag)
}

/// `fn $name(conn, stream, cfg, q, tag)`: a producer or consumer (`$new`) without callbacks,
/// made with `cfg` (freed here, may be NULL), delivering to `q` (may be NULL) with source tag
/// `tag`, or the status and message of the failure.
macro_rules! tagged {
    ($name:ident, $obj:ty, $new:ident) => {
        pub fn $name(
            conn: *mut rmqs_connection,
            stream: &CStr,
            cfg: *mut rmqs_config,
            q: *mut rmqs_queue,
            tag: usize,
        ) -> Result<*mut $obj, (rmqs_status, String)> {
            let mut obj = ptr::null_mut();
            let mut err = ptr::null_mut();
            let s = stream.as_ptr();
            let none = ptr::null_mut();
            let st = unsafe { $new(conn, s, cfg, None, none, None, q, tag, &mut obj, &mut err) };
            unsafe { rmqs_config_free(cfg) };
            if st != 0 {
                return Err((st, message(err)));
            }
            Ok(obj)
        }
    };
}

tagged!(try_tagged_producer, rmqs_producer, rmqs_producer_new);
tagged!(try_tagged_consumer, rmqs_consumer, rmqs_consumer_new);

/// Flushes `p` (30 s); panics unless every message got its confirm.
pub fn flush(p: *mut rmqs_producer) {
    flush_within(p, 30_000);
}

/// Flushes `p`, waiting `timeout_ms` at most; panics unless every message got its confirm.
pub fn flush_within(p: *mut rmqs_producer, timeout_ms: i32) {
    let st = unsafe { rmqs_producer_flush(p, timeout_ms, ptr::null_mut()) };
    assert_eq!(st, 0, "flush");
}

/// A consumer delivering to `q` (source tag 0) made with `cfg` (freed here, may be NULL), or
/// the status and message of the failure.
pub fn try_queue_consumer(
    conn: *mut rmqs_connection,
    stream: &CStr,
    cfg: *mut rmqs_config,
    q: *mut rmqs_queue,
) -> Result<*mut rmqs_consumer, (rmqs_status, String)> {
    try_tagged_consumer(conn, stream, cfg, q, 0)
}

/// A consumer delivering to `q` (source tag 0) with the given keys (none: a NULL config).
pub fn queue_consumer(
    conn: *mut rmqs_connection,
    stream: &CStr,
    keys: &[(&str, &str)],
    q: *mut rmqs_queue,
) -> *mut rmqs_consumer {
    try_queue_consumer(conn, stream, config_or_null(keys), q)
        .unwrap_or_else(|e| panic!("consumer: {e:?}"))
}

/// The strings of `list` (freed here), in order.
pub fn strings(list: *mut rmqs_strings) -> Vec<String> {
    let v = (0..unsafe { rmqs_strings_count(list) })
        .map(|i| unsafe { CStr::from_ptr(rmqs_strings_get(list, i)) })
        .map(|s| s.to_str().unwrap().to_string())
        .collect();
    unsafe { rmqs_strings_free(list) };
    v
}

/// Where `s` lives: the leader's port (`None` without a leader) and the replicas' ports, or
/// the status of a failed lookup.
pub fn metadata(
    conn: *mut rmqs_connection,
    s: &CStr,
) -> Result<(Option<u16>, Vec<u16>), rmqs_status> {
    let mut md = ptr::null_mut();
    let st = unsafe { rmqs_stream_metadata(conn, s.as_ptr(), &mut md, ptr::null_mut()) };
    if st != 0 {
        return Err(st);
    }
    let leader = match unsafe { rmqs_metadata_leader_port(md) } {
        0 => None,
        p => Some(p),
    };
    let replicas = (0..unsafe { rmqs_metadata_replica_count(md) })
        .map(|i| {
            let mut port = 0;
            unsafe { rmqs_metadata_replica(md, i, &mut port) };
            port
        })
        .collect();
    unsafe { rmqs_metadata_free(md) };
    Ok((leader, replicas))
}

// ---------------------------------------------------------------------------------------------
// what the callbacks saw

/// Consumed messages: (offset, body), in delivery order.
pub type Messages = Vec<(u64, Vec<u8>)>;

/// A state change: (state, status, message, when, partition: -1 but for super producers and
/// consumers).
pub type StateEvent = (i32, rmqs_status, String, Instant, i32);

/// What a producer's or consumer's callbacks saw. Share it with [`producer`], [`consumer`]
/// and the super variants: each holds a reference until freed.
#[derive(Default)]
pub struct Seen {
    /// Confirm statuses by tag.
    pub confirms: Mutex<Vec<Vec<rmqs_status>>>,
    /// Partition of each confirm by tag (super producers only).
    pub confirm_partitions: Mutex<Vec<Vec<u32>>>,
    /// State changes, in order.
    pub states: Mutex<Vec<StateEvent>>,
    /// (offset, body) of consumed messages.
    pub messages: Mutex<Messages>,
    /// Single-active-consumer updates: (activated, when); with [`with_update_cb`].
    pub updates: Mutex<Vec<(bool, Instant)>>,
    /// (offset, body) of consumed messages by partition (super consumers only).
    pub by_partition: Mutex<BTreeMap<i32, Messages>>,
    cv: Condvar,
    lock: Mutex<()>,
}

impl Seen {
    /// Room for the confirms of tags `0..tags`.
    pub fn new(tags: usize) -> Arc<Seen> {
        let s = Arc::new(Seen::default());
        *s.confirms.lock().unwrap() = vec![Vec::new(); tags];
        s
    }

    /// The same, also recording the partition of each confirm (super producers).
    pub fn new_super(tags: usize) -> Arc<Seen> {
        let s = Seen::new(tags);
        *s.confirm_partitions.lock().unwrap() = vec![Vec::new(); tags];
        s
    }

    pub fn notify(&self) {
        let _g = self.lock.lock().unwrap();
        self.cv.notify_all();
    }

    /// Waits until `done` holds (checked on every callback, and every 50 ms); false at the
    /// timeout.
    pub fn wait(&self, timeout: Duration, mut done: impl FnMut(&Seen) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        let mut g = self.lock.lock().unwrap();
        loop {
            if done(self) {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            g = self
                .cv
                .wait_timeout(g, (deadline - now).min(Duration::from_millis(50)))
                .unwrap()
                .0;
        }
    }

    pub fn states(&self) -> Vec<i32> {
        self.states.lock().unwrap().iter().map(|s| s.0).collect()
    }

    pub fn state_times(&self, state: i32) -> Vec<Instant> {
        self.states
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.0 == state)
            .map(|s| s.3)
            .collect()
    }

    /// Messages consumed so far (all partitions).
    pub fn consumed(&self) -> usize {
        self.messages.lock().unwrap().len()
            + self
                .by_partition
                .lock()
                .unwrap()
                .values()
                .map(Vec::len)
                .sum::<usize>()
    }

    /// Tags that got at least one confirm.
    pub fn confirmed(&self) -> usize {
        self.confirms
            .lock()
            .unwrap()
            .iter()
            .filter(|c| !c.is_empty())
            .count()
    }
}

/// `extern "C" fn $name(ud, cs, n, stride)`: a confirm callback for confirms of type `$ty`
/// (their stride checked) that runs `$record` with the [`Seen`] of its user data and the
/// confirms, then wakes the waiters.
macro_rules! confirm_cb {
    ($name:ident, $ty:ty, |$seen:ident, $cs:ident| $record:block) => {
        pub unsafe extern "C" fn $name(ud: *mut c_void, cs: *const $ty, n: usize, stride: usize) {
            assert_eq!(stride, std::mem::size_of::<$ty>());
            let $seen = unsafe { &*(ud as *const Seen) };
            let $cs = unsafe { std::slice::from_raw_parts(cs, n) };
            $record
            $seen.notify();
        }
    };
}

confirm_cb!(on_confirms, rmqs_confirm, |seen, cs| {
    let mut all = seen.confirms.lock().unwrap();
    for c in cs {
        all[c.tag].push(c.status);
    }
});

confirm_cb!(on_super_confirms, rmqs_super_confirm, |seen, cs| {
    let mut all = seen.confirms.lock().unwrap();
    let mut parts = seen.confirm_partitions.lock().unwrap();
    for c in cs {
        all[c.tag].push(c.status);
        parts[c.tag].push(c.partition);
    }
});

pub unsafe extern "C" fn on_state(
    ud: *mut c_void,
    _source: rmqs_event_source_code,
    _tag: usize,
    partition: i32,
    state: rmqs_state_code,
    status: rmqs_status,
    message: *const c_char,
) {
    let seen = unsafe { &*(ud as *const Seen) };
    let m = unsafe { CStr::from_ptr(message) }
        .to_string_lossy()
        .into_owned();
    seen.states
        .lock()
        .unwrap()
        .push((state as i32, status, m, Instant::now(), partition));
    seen.notify();
}

/// Offsets and bodies of a chunk's visible messages.
pub fn chunk_messages(chunk: *const rmqs_chunk) -> impl Iterator<Item = (u64, Vec<u8>)> {
    (0..unsafe { rmqs_chunk_message_count(chunk) }).map(move |i| {
        let m = unsafe { rmqs_chunk_message(chunk, i) };
        let mut len = 0;
        let body = unsafe { rmqs_message_body(m, &mut len) };
        let body = unsafe { std::slice::from_raw_parts(body, len) }.to_vec();
        (unsafe { rmqs_message_offset(m) }, body)
    })
}

pub unsafe extern "C" fn on_chunk(ud: *mut c_void, chunk: *const rmqs_chunk) {
    let seen = unsafe { &*(ud as *const Seen) };
    seen.messages.lock().unwrap().extend(chunk_messages(chunk));
    seen.notify();
}

pub unsafe extern "C" fn on_super_chunk(ud: *mut c_void, chunk: *const rmqs_chunk) {
    let seen = unsafe { &*(ud as *const Seen) };
    let partition = unsafe { rmqs_chunk_partition(chunk) };
    seen.by_partition
        .lock()
        .unwrap()
        .entry(partition)
        .or_default()
        .extend(chunk_messages(chunk));
    seen.notify();
}

/// Records the update and answers with the default offset.
pub unsafe extern "C" fn on_consumer_update(
    ud: *mut c_void,
    info: *const rmqs_consumer_update_info,
) -> rmqs_offset_spec {
    let seen = unsafe { &*(ud as *const Seen) };
    let active = unsafe { (*info).is_active };
    seen.updates.lock().unwrap().push((active, Instant::now()));
    seen.notify();
    rmqs_offset_spec {
        r#type: rmqs_offset_type_code::RMQS_OFFSET_DEFAULT as i32,
        value: 0,
    }
}

pub unsafe extern "C" fn release_seen(ud: *mut c_void) {
    drop(unsafe { Arc::from_raw(ud as *const Seen) });
}

/// A `user_data` for the callbacks above: one reference to `seen`, released by
/// [`release_seen`].
pub fn user_data(seen: &Arc<Seen>) -> *mut c_void {
    Arc::into_raw(seen.clone()) as *mut c_void
}

/// Sets the config's state callback to record into `seen`.
pub fn with_state_cb(cfg: *mut rmqs_config, seen: &Arc<Seen>) {
    let mut err = ptr::null_mut();
    let st = unsafe {
        rmqs_config_set_state_cb(
            cfg,
            Some(on_state),
            user_data(seen),
            Some(release_seen),
            &mut err,
        )
    };
    check(st, err, "state cb");
}

/// Sets the config's consumer-update callback to record into `seen` ([`Seen::updates`]),
/// answering with the default offset.
pub fn with_update_cb(cfg: *mut rmqs_config, seen: &Arc<Seen>) {
    let st = unsafe {
        rmqs_config_set_consumer_update_cb(
            cfg,
            Some(on_consumer_update),
            user_data(seen),
            Some(release_seen),
            std::ptr::null_mut(),
        )
    };
    check(st, ptr::null_mut(), "consumer update cb");
}

/// A config of `keys` whose state callback records into `seen`.
fn recording(keys: &[(&str, &str)], seen: &Arc<Seen>) -> *mut rmqs_config {
    let cfg = config(keys);
    with_state_cb(cfg, seen);
    cfg
}

/// `fn $keys(conn, name, keys, seen)` and `fn $cfg(conn, name, cfg, seen)`: a producer or
/// consumer (`$new`) of stream or super stream `name` whose callback `$cb` records into `seen`
/// (the keys' variant: its state changes too, [`recording`]); `cfg` is freed here.
macro_rules! recorded {
    ($keys:ident, $cfg:ident, $obj:ty, $new:ident, $cb:ident, $what:literal) => {
        #[doc = concat!("A ", $what, " made with the given keys, recording into `seen`.")]
        pub fn $keys(
            conn: *mut rmqs_connection,
            name: &CStr,
            keys: &[(&str, &str)],
            seen: &Arc<Seen>,
        ) -> *mut $obj {
            $cfg(conn, name, recording(keys, seen), seen)
        }

        #[doc = concat!("A ", $what, " made with `cfg` (freed here), recording into `seen`.")]
        pub fn $cfg(
            conn: *mut rmqs_connection,
            name: &CStr,
            cfg: *mut rmqs_config,
            seen: &Arc<Seen>,
        ) -> *mut $obj {
            let mut obj = ptr::null_mut();
            let mut err = ptr::null_mut();
            let st = unsafe {
                $new(
                    conn,
                    name.as_ptr(),
                    cfg,
                    Some($cb),
                    user_data(seen),
                    Some(release_seen),
                    ptr::null_mut(),
                    0,
                    &mut obj,
                    &mut err,
                )
            };
            unsafe { rmqs_config_free(cfg) };
            check(st, err, $what);
            obj
        }
    };
}

recorded!(
    producer,
    producer_config,
    rmqs_producer,
    rmqs_producer_new,
    on_confirms,
    "producer"
);
recorded!(
    consumer,
    consumer_config,
    rmqs_consumer,
    rmqs_consumer_new,
    on_chunk,
    "consumer"
);
recorded!(
    super_producer,
    super_producer_config,
    rmqs_super_producer,
    rmqs_super_producer_new,
    on_super_confirms,
    "super producer"
);
recorded!(
    super_consumer,
    super_consumer_config,
    rmqs_super_consumer,
    rmqs_super_consumer_new,
    on_super_chunk,
    "super consumer"
);

/// [`consumer`], also recording single-active-consumer updates when `updates`.
pub fn consumer_with(
    conn: *mut rmqs_connection,
    stream: &CStr,
    keys: &[(&str, &str)],
    seen: &Arc<Seen>,
    updates: bool,
) -> *mut rmqs_consumer {
    let cfg = recording(keys, seen);
    if updates {
        with_update_cb(cfg, seen);
    }
    consumer_config(conn, stream, cfg, seen)
}

/// `rmqs_super_producer_new` without callbacks, confirming to `q` (may be NULL) with source tag
/// `tag`, made with `cfg` (may be NULL; not freed here): the super producer written, the status
/// and the error, as they came.
pub fn super_producer_raw(
    conn: *mut rmqs_connection,
    super_stream: &CStr,
    cfg: *const rmqs_config,
    q: *mut rmqs_queue,
    tag: usize,
) -> (*mut rmqs_super_producer, rmqs_status, *mut rmqs_error) {
    let (mut sp, mut err) = (ptr::null_mut(), ptr::null_mut());
    let (s, ud) = (super_stream.as_ptr(), ptr::null_mut());
    let st =
        unsafe { rmqs_super_producer_new(conn, s, cfg, None, ud, None, q, tag, &mut sp, &mut err) };
    (sp, st, err)
}

/// The body of message `i`: `m%08d`, padded with `.` to `len` bytes (when longer).
pub fn body(i: usize, len: usize) -> Vec<u8> {
    let mut b = format!("m{i:08}").into_bytes();
    if b.len() < len {
        b.resize(len, b'.');
    }
    b
}

/// Sends message `i` ([`body`] unpadded) with tag `i`, waiting for room; panics on failure.
pub fn send(p: *mut rmqs_producer, i: usize) {
    send_sized(p, i, 0);
}

/// Sends message `i` padded to `len` bytes with tag `i`, waiting for room; panics on failure.
pub fn send_sized(p: *mut rmqs_producer, i: usize, len: usize) {
    let body = body(i, len);
    let mut err = ptr::null_mut();
    let st = unsafe { rmqs_producer_send(p, body.as_ptr(), body.len(), i, 0, &mut err) };
    check(st, err, "send");
}

/// `fn $name(handle)`: the statistics `$get` fills in (it must succeed), the struct's size set
/// by the caller; the fields after `;` must come back equal to that size.
macro_rules! stats {
    ($name:ident, $obj:ty, $stats:ident, $get:ident $(; $same:ident)?) => {
        pub fn $name(h: *mut $obj) -> $stats {
            let size = std::mem::size_of::<$stats>() as u64;
            let mut s = $stats {
                size,
                ..Default::default()
            };
            assert_eq!(unsafe { $get(h, &mut s, std::ptr::null_mut()) }, 0);
            $(assert_eq!(s.$same, size);)?
            s
        }
    };
}

stats!(conn_stats, rmqs_connection, rmqs_connection_statistics, rmqs_connection_stats; size);
stats!(
    producer_stats,
    rmqs_producer,
    rmqs_producer_statistics,
    rmqs_producer_stats
);
stats!(
    consumer_stats,
    rmqs_consumer,
    rmqs_consumer_statistics,
    rmqs_consumer_stats
);

/// Every message of `stream` from the first offset, read over `conn` until `n` arrived and
/// nothing more came for a moment: (offset, body) in order.
pub fn read_back(conn: *mut rmqs_connection, stream: &CStr, n: usize) -> Messages {
    let seen = Seen::new(0);
    let c = consumer(conn, stream, &[("offset", "first")], &seen);
    assert!(
        seen.wait(WAIT, |s| s.messages.lock().unwrap().len() >= n),
        "read back {} of {n}",
        seen.messages.lock().unwrap().len()
    );
    std::thread::sleep(Duration::from_millis(500));
    unsafe { rmqs_consumer_free(c) };
    std::mem::take(&mut *seen.messages.lock().unwrap())
}

/// The index of a body made by [`body`].
pub fn index(body: &[u8]) -> usize {
    let digits = body[1..].iter().take_while(|b| b.is_ascii_digit()).count();
    std::str::from_utf8(&body[1..1 + digits])
        .unwrap()
        .parse()
        .unwrap()
}

/// The indices of bodies made by [`body`], in order.
pub fn indices(messages: &[(u64, Vec<u8>)]) -> Vec<usize> {
    messages.iter().map(|(_, b)| index(b)).collect()
}

/// Every tag `0..n` got exactly one confirm, `RMQS_OK`.
pub fn assert_all_ok_once(seen: &Seen, n: usize) {
    let all = seen.confirms.lock().unwrap();
    for (tag, c) in all.iter().enumerate().take(n) {
        assert_eq!(c, &vec![0], "message {tag}: confirms {c:?}");
    }
}
