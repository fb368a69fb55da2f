//! Scale through the C API: N streams, each with a callback-mode producer and a callback-mode
//! consumer, all on one connection (its pool of data connections), against the broker of
//! scripts/broker (RMQS_TEST_URI).
//!
//!     cargo bench --bench scale [-- N... [--messages M] [--idle-secs S] [--heartbeat H]
//!                                       [--producers P]]
//!
//! For each N (default 10 100 200), in a process of its own (so one size's heap does not
//! carry over to the next): the threads of the process (/proc/self/task, by name), the data
//! connections (`rmqs_connection_stats`), the RSS added per producer and per consumer, the
//! process CPU over S seconds (default 10) with nothing sent (heartbeats every H seconds,
//! default 5, so that some happen in the window), then a burst of M messages of 100 bytes
//! (default 200 000, spread evenly over the producers, sent round robin from one thread):
//! publish rate (first send to last confirm) and end-to-end rate (to the last message in a
//! chunk callback). `--producers P` makes P producers instead of N, spread round robin over
//! the streams (producers cost the broker no file descriptor; see below). The streams are
//! created before and deleted after. A measurement, not a
//! test: nothing fails on the numbers. Under `cargo test` (no `--bench` argument) it does
//! nothing.
//!
//! The broker needs about 3 file descriptors per stream with a consumer (segment, index, the
//! reader's segment): 1000 streams need a broker whose `ulimit -n` is well above 3000 (its
//! stream writers otherwise crash with `emfile` and the node stops). scripts/broker starts its
//! nodes with the hard limit of the shell that starts them (packages' `su rabbitmq` would
//! lower it to 1024).

use std::ffi::{CString, c_void};
use std::ptr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rmqstream::ffi::*;

static CONFIRMED: AtomicU64 = AtomicU64::new(0);
static CONSUMED: AtomicU64 = AtomicU64::new(0);

unsafe extern "C" fn on_confirms(
    _ud: *mut c_void,
    _confirms: *const rmqs_confirm,
    count: usize,
    _stride: usize,
) {
    CONFIRMED.fetch_add(count as u64, Ordering::Relaxed);
}

unsafe extern "C" fn on_chunk(_ud: *mut c_void, chunk: *const rmqs_chunk) {
    let n = unsafe { rmqs_chunk_message_count(chunk) };
    CONSUMED.fetch_add(n as u64, Ordering::Relaxed);
}

fn process_cpu() -> f64 {
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(ru.ru_utime) + t(ru.ru_stime)
}

fn check(st: rmqs_status, err: *mut rmqs_error, what: &str) {
    if st != 0 {
        let m = if err.is_null() {
            String::new()
        } else {
            let m = unsafe { std::ffi::CStr::from_ptr(rmqs_error_message(err)) }
                .to_string_lossy()
                .into_owned();
            unsafe { rmqs_error_free(err) };
            m
        };
        panic!("{what}: status {st}: {m}");
    }
}

/// Resident set size in bytes.
fn rss() -> u64 {
    let s = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = s.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as u64
}

/// The process's threads: total, and `name×count` for each name.
fn threads() -> (usize, String) {
    let mut names: Vec<String> = std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|e| {
            let p = e.ok()?.path().join("comm");
            Some(std::fs::read_to_string(p).ok()?.trim().to_string())
        })
        .collect();
    names.sort();
    let mut by: Vec<(String, usize)> = Vec::new();
    for n in names.iter() {
        match by.last_mut() {
            Some((last, c)) if last == n => *c += 1,
            _ => by.push((n.clone(), 1)),
        }
    }
    let desc = by
        .iter()
        .map(|(n, c)| format!("{n}x{c}"))
        .collect::<Vec<_>>()
        .join(" ");
    (names.len(), desc)
}

fn data_connections(conn: *mut rmqs_connection) -> u64 {
    let mut s = rmqs_connection_statistics {
        size: size_of::<rmqs_connection_statistics>() as u64,
        ..Default::default()
    };
    let mut err = ptr::null_mut();
    check(
        unsafe { rmqs_connection_stats(conn, &mut s, &mut err) },
        err,
        "stats",
    );
    s.data_connections
}

fn config(pairs: &[(&str, &str)]) -> *mut rmqs_config {
    let cfg = rmqs_config_new();
    for (k, v) in pairs {
        let (k, v) = (CString::new(*k).unwrap(), CString::new(*v).unwrap());
        let mut err = ptr::null_mut();
        check(
            unsafe { rmqs_config_set(cfg, k.as_ptr(), v.as_ptr(), &mut err) },
            err,
            "config",
        );
    }
    cfg
}

/// Runs `f(i)` for i in 0..n on `threads` application threads.
fn parallel(n: usize, threads: usize, f: impl Fn(usize) + Sync) {
    std::thread::scope(|s| {
        for t in 0..threads {
            let f = &f;
            s.spawn(move || {
                for i in (t..n).step_by(threads) {
                    f(i)
                }
            });
        }
    });
}

struct Opts {
    messages: u64,
    /// Producers in all (0: one per stream).
    producers: u64,
    idle_secs: u64,
    heartbeat: u64,
}

fn wait_for(counter: &AtomicU64, want: u64, limit: Duration) -> Option<Instant> {
    let t0 = Instant::now();
    while counter.load(Ordering::Relaxed) < want {
        if t0.elapsed() > limit {
            return None;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    Some(Instant::now())
}

/// One size, in this process; prints one line of `key=value` fields.
fn one(n: usize, o: &Opts) {
    let uri = std::env::var("RMQS_TEST_URI")
        .unwrap_or_else(|_| "rabbitmq-stream://guest:guest@localhost:5552/%2f".into());
    let (threads0, _) = threads();
    let cfg = config(&[("uri", &uri), ("heartbeat", &o.heartbeat.to_string())]);
    let mut conn = ptr::null_mut();
    let mut err = ptr::null_mut();
    check(
        unsafe { rmqs_connection_open(cfg, &mut conn, &mut err) },
        err,
        "open",
    );
    unsafe { rmqs_config_free(cfg) };
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis();
    let names: Vec<CString> = (0..n)
        .map(|i| CString::new(format!("bench-scale-{t}-{i}")).unwrap())
        .collect();
    let c = conn as usize;
    parallel(n, 4, |i| {
        let mut err = ptr::null_mut();
        let st = unsafe {
            rmqs_stream_create(
                c as *mut rmqs_connection,
                names[i].as_ptr(),
                ptr::null(),
                &mut err,
            )
        };
        check(st, err, "create stream");
    });
    let (rss0, (threads_conn, _)) = (rss(), threads());
    let np = if o.producers == 0 {
        n
    } else {
        o.producers as usize
    };
    let mut producers = Vec::with_capacity(np);
    for (i, name) in names.iter().cycle().take(np).enumerate() {
        let mut p = ptr::null_mut();
        let mut err = ptr::null_mut();
        let st = unsafe {
            rmqs_producer_new(
                conn,
                name.as_ptr(),
                ptr::null(),
                Some(on_confirms),
                ptr::null_mut(),
                None,
                ptr::null_mut(),
                i,
                &mut p,
                &mut err,
            )
        };
        check(st, err, "producer");
        producers.push(p);
    }
    let (rss1, (threads_p, _)) = (rss(), threads());
    let ccfg = config(&[("offset", "next")]);
    let mut consumers = Vec::with_capacity(n);
    for (i, name) in names.iter().enumerate() {
        let mut c = ptr::null_mut();
        let mut err = ptr::null_mut();
        let st = unsafe {
            rmqs_consumer_new(
                conn,
                name.as_ptr(),
                ccfg,
                Some(on_chunk),
                ptr::null_mut(),
                None,
                ptr::null_mut(),
                i,
                &mut c,
                &mut err,
            )
        };
        check(st, err, "consumer");
        consumers.push(c);
    }
    unsafe { rmqs_config_free(ccfg) };
    let rss2 = rss();
    let (threads_all, by_name) = threads();
    let data = data_connections(conn);

    std::thread::sleep(Duration::from_secs(2));
    let (c0, w0) = (process_cpu(), Instant::now());
    std::thread::sleep(Duration::from_secs(o.idle_secs));
    let idle = (process_cpu() - c0) / w0.elapsed().as_secs_f64() * 100.0;

    let per = (o.messages / np as u64).max(1);
    let total = per * np as u64;
    let body = [0x61u8; 100];
    let t0 = Instant::now();
    let c_cpu0 = process_cpu();
    for k in 0..per {
        for &p in &producers {
            let mut err = ptr::null_mut();
            let st = unsafe {
                rmqs_producer_send(p, body.as_ptr(), body.len(), k as usize, 0, &mut err)
            };
            check(st, err, "send");
        }
    }
    let limit = Duration::from_secs(120);
    let confirmed = wait_for(&CONFIRMED, total, limit);
    let consumed = wait_for(&CONSUMED, total, limit);
    let burst_cpu = process_cpu() - c_cpu0;
    let rate = |t: Option<Instant>| {
        t.map_or("timeout".to_string(), |t| {
            format!("{:.0}", total as f64 / (t - t0).as_secs_f64())
        })
    };
    let rss3 = rss();
    println!(
        "n={n} producers={np} threads_before={threads0} threads_conn={threads_conn} threads_producers={threads_p} \
         threads={threads_all} data_conns={data} rss_mb={:.1} rss_per_producer_kb={:.1} \
         rss_per_consumer_kb={:.1} idle_cpu_pct={idle:.2} burst_msgs={total} \
         publish_msg_s={} e2e_msg_s={} burst_cpu_s={burst_cpu:.2} rss_after_burst_mb={:.1} \
         thread_names=[{by_name}]",
        rss2 as f64 / 1048576.0,
        (rss1 as f64 - rss0 as f64) / 1024.0 / np as f64,
        (rss2 as f64 - rss1 as f64) / 1024.0 / n as f64,
        rate(confirmed),
        rate(consumed),
        rss3 as f64 / 1048576.0,
    );
    for p in producers {
        unsafe { rmqs_producer_free(p) };
    }
    for c in consumers {
        unsafe { rmqs_consumer_free(c) };
    }
    parallel(n, 4, |i| {
        let mut err = ptr::null_mut();
        let st =
            unsafe { rmqs_stream_delete(c as *mut rmqs_connection, names[i].as_ptr(), &mut err) };
        check(st, err, "delete stream");
    });
    unsafe { rmqs_connection_free(conn) };
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if !args.iter().any(|a| a == "--bench") {
        println!("scale: a measurement; run it with `cargo bench --bench scale`");
        return;
    }
    let opt = |name: &str, default: u64| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .map_or(default, |v| v.parse().unwrap())
    };
    let o = Opts {
        messages: opt("--messages", 200_000),
        idle_secs: opt("--idle-secs", 10),
        heartbeat: opt("--heartbeat", 5),
        producers: opt("--producers", 0),
    };
    if let Some(n) = args.iter().position(|a| a == "--one") {
        one(args[n + 1].parse().unwrap(), &o);
        return;
    }
    let flags = ["--messages", "--idle-secs", "--heartbeat", "--producers"];
    let sizes: Vec<usize> = args
        .iter()
        .enumerate()
        .filter(|(i, _)| *i == 0 || !flags.contains(&args[i - 1].as_str()))
        .filter_map(|(_, a)| a.parse().ok())
        .collect();
    let sizes = if sizes.is_empty() {
        vec![10, 100, 200]
    } else {
        sizes
    };
    let me = std::env::current_exe().unwrap();
    for n in sizes {
        let st = std::process::Command::new(&me)
            .args(["--bench", "--one", &n.to_string()])
            .args(["--messages", &o.messages.to_string()])
            .args(["--idle-secs", &o.idle_secs.to_string()])
            .args(["--heartbeat", &o.heartbeat.to_string()])
            .args(["--producers", &o.producers.to_string()])
            .status()
            .unwrap();
        assert!(st.success(), "size {n}: {st}");
    }
}
