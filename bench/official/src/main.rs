//! The workloads of `rmqs-perf`, over the official Rust client (`rabbitmq-stream-client`
//! 0.11), printing the same JSON fields, for `bench/run`'s side-by-side table.
//!
//! ```text
//! official-perf publish --count N --size B [--batch 100] [--in-flight 10000] --stream S [--keep]
//! official-perf consume --count N --size B --stream S [--delete-streams]
//! official-perf live --rate R --duration SECONDS --size B
//! common: [--uri URI] [--broker-pid PID] [--json FILE|-]
//! ```
//!
//! - `publish`: `batch_send` of `--batch` messages at a time, at most `--in-flight` unconfirmed
//!   (a semaphore released by the confirm callback: the client has no window of its own), then
//!   waits for every confirm. Confirm latency: from the batch's send call to each confirm.
//! - `consume`: from the first offset until `--count` messages arrived.
//! - `live`: a consumer from `next`, then one producer `send`ing at `--rate` msg/s for
//!   `--duration` s; end-to-end latency from the send time carried in the body's first 8 bytes
//!   (CLOCK_REALTIME ns, little-endian, as rmqs-perf) to the consumer's receipt.
//!
//! Client CPU and RSS from getrusage (every thread), broker CPU from `/proc/PID/stat`.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use rabbitmq_stream_client::types::{Message, OffsetSpecification};
use rabbitmq_stream_client::Environment;
use tokio::sync::Semaphore;

// ---- histogram: the layout of rmqs-perf's (HdrHistogram-like, 0.1 % resolution) ----

const H_SUB_BITS: u32 = 11;
const H_SUB: u64 = 1 << H_SUB_BITS;
const H_HALF: u64 = H_SUB / 2;
const H_MAX_BITS: u32 = 40;
const H_BUCKETS: usize = (H_SUB + (H_MAX_BITS - H_SUB_BITS) as u64 * H_HALF) as usize;

struct Histogram {
    counts: Vec<AtomicU64>,
    total: AtomicU64,
    sum: AtomicU64,
    max: AtomicU64,
}

impl Histogram {
    fn new() -> Self {
        Histogram {
            counts: (0..H_BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            total: AtomicU64::new(0),
            sum: AtomicU64::new(0),
            max: AtomicU64::new(0),
        }
    }

    fn index(v: u64) -> usize {
        let v = v.min((1u64 << H_MAX_BITS) - 1);
        if v < H_SUB {
            return v as usize;
        }
        let top = 63 - v.leading_zeros();
        let shift = top - (H_SUB_BITS - 1);
        (H_SUB + (shift as u64 - 1) * H_HALF + ((v >> shift) - H_HALF)) as usize
    }

    fn value(i: usize) -> u64 {
        let i = i as u64;
        if i < H_SUB {
            return i;
        }
        let k = i - H_SUB;
        let shift = k / H_HALF + 1;
        ((k % H_HALF + H_HALF + 1) << shift) - 1
    }

    fn record(&self, v: u64) {
        self.counts[Self::index(v)].fetch_add(1, Relaxed);
        self.total.fetch_add(1, Relaxed);
        self.sum.fetch_add(v, Relaxed);
        self.max.fetch_max(v, Relaxed);
    }

    fn percentile(&self, p: f64) -> u64 {
        let total = self.total.load(Relaxed);
        let max = self.max.load(Relaxed);
        if total == 0 {
            return 0;
        }
        let rank = ((p / 100.0 * total as f64 + 0.999999) as u64).clamp(1, total);
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c.load(Relaxed);
            if seen >= rank {
                return Self::value(i).min(max);
            }
        }
        max
    }

    fn json(&self, name: &str) -> String {
        let n = self.total.load(Relaxed);
        let ms = |v: u64| v as f64 / 1e6;
        format!(
            "  \"{name}\": {{\"count\": {n}, \"p50\": {:.4}, \"p90\": {:.4}, \"p99\": {:.4}, \
             \"p999\": {:.4}, \"max\": {:.4}, \"mean\": {:.4}}},\n",
            ms(self.percentile(50.0)),
            ms(self.percentile(90.0)),
            ms(self.percentile(99.0)),
            ms(self.percentile(99.9)),
            ms(self.max.load(Relaxed)),
            if n > 0 {
                ms(self.sum.load(Relaxed)) / n as f64
            } else {
                0.0
            }
        )
    }
}

// ---- process measurements ----

fn cpu_s() -> f64 {
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(ru.ru_utime) + t(ru.ru_stime)
}

/// Peak RSS of this process image (VmHWM; ru_maxrss would include the exec'ing parent's peak).
fn rss_max_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    kb / 1024.0
}

fn rss_now_mib() -> f64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: f64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0.0);
    pages * unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as f64 / (1024.0 * 1024.0)
}

fn proc_cpu_s(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // after ")": state is field 3, utime 14, stime 15
    let ut: f64 = f.get(11)?.parse().ok()?;
    let st: f64 = f.get(12)?.parse().ok()?;
    Some((ut + st) / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64)
}

fn realtime_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

// ---- options ----

struct Opts {
    mode: String,
    uri: String,
    stream: String,
    count: u64,
    size: usize,
    batch: usize,
    in_flight: usize,
    rate: f64,
    duration: f64,
    keep: bool,
    delete_streams: bool,
    broker_pid: Option<u32>,
    json: Option<String>,
}

fn parse_opts() -> Opts {
    let mut args = std::env::args().skip(1);
    let mut o = Opts {
        mode: args.next().unwrap_or_default(),
        uri: std::env::var("RMQS_TEST_URI")
            .unwrap_or_else(|_| "rabbitmq-stream://guest:guest@localhost:5552/%2f".into()),
        stream: format!("official-perf-{}", std::process::id()),
        count: 1_000_000,
        size: 100,
        batch: 100,
        in_flight: 10_000,
        rate: 50_000.0,
        duration: 10.0,
        keep: false,
        delete_streams: false,
        broker_pid: None,
        json: None,
    };
    while let Some(a) = args.next() {
        let mut val = || {
            args.next()
                .unwrap_or_else(|| usage(&format!("{a} needs a value")))
        };
        match a.as_str() {
            "--uri" => o.uri = val(),
            "--stream" => o.stream = val(),
            "--count" => o.count = val().parse().unwrap_or_else(|_| usage("--count")),
            "--size" => o.size = val().parse().unwrap_or_else(|_| usage("--size")),
            "--batch" => o.batch = val().parse().unwrap_or_else(|_| usage("--batch")),
            "--in-flight" => o.in_flight = val().parse().unwrap_or_else(|_| usage("--in-flight")),
            "--rate" => o.rate = val().parse().unwrap_or_else(|_| usage("--rate")),
            "--duration" => o.duration = val().parse().unwrap_or_else(|_| usage("--duration")),
            "--broker-pid" => o.broker_pid = val().parse().ok(),
            "--json" => o.json = Some(val()),
            "--keep" => o.keep = true,
            "--delete-streams" => o.delete_streams = true,
            _ => usage(&format!("unknown option {a}")),
        }
    }
    if !["publish", "consume", "live"].contains(&o.mode.as_str())
        || o.batch == 0
        || o.in_flight < o.batch
    {
        usage("mode publish, consume or live; --in-flight at least --batch");
    }
    o
}

fn usage(why: &str) -> ! {
    eprintln!("official-perf: {why}");
    eprintln!(
        "usage: official-perf publish|consume|live [--uri URI] [--stream S] [--count N] \
         [--size B] [--batch N] [--in-flight N] [--rate R] [--duration S] [--keep] \
         [--delete-streams] [--broker-pid PID] [--json FILE|-]"
    );
    std::process::exit(2)
}

fn pct_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// rabbitmq-stream://user:pass@host:port[,host:port...]/vhost: the first host only.
async fn connect(uri: &str) -> Environment {
    let rest = uri.split("://").nth(1).unwrap_or(uri);
    let rest = rest.split('?').next().unwrap_or(rest);
    let (auth_hosts, vhost) = rest.split_once('/').unwrap_or((rest, "%2f"));
    let (auth, hosts) = auth_hosts
        .rsplit_once('@')
        .unwrap_or(("guest:guest", auth_hosts));
    let (user, pass) = auth.split_once(':').unwrap_or((auth, ""));
    let first = hosts.split(',').next().unwrap_or("localhost");
    let (host, port) = first.rsplit_once(':').unwrap_or((first, "5552"));
    let vhost = if vhost.is_empty() {
        "/".to_string()
    } else {
        pct_decode(vhost)
    };
    Environment::builder()
        .host(host)
        .port(port.parse().unwrap_or(5552))
        .username(&pct_decode(user))
        .password(&pct_decode(pass))
        .virtual_host(&vhost)
        .build()
        .await
        .unwrap_or_else(|e| {
            eprintln!("official-perf: connect: {e:?}");
            std::process::exit(1)
        })
}

fn body(size: usize) -> Vec<u8> {
    let mut b = vec![b'x'; size];
    let now = realtime_ns().to_le_bytes();
    let n = size.min(8);
    b[..n].copy_from_slice(&now[..n]);
    b
}

#[derive(Default)]
struct Counts {
    sent: AtomicU64,
    confirmed: AtomicU64,
    failed: AtomicU64,
    consumed: AtomicU64,
    wrong_size: AtomicU64,
}

#[tokio::main]
async fn main() {
    let o = parse_opts();
    let env = connect(&o.uri).await;
    let created = match o.mode.as_str() {
        "consume" => false,
        _ => env.stream_creator().create(&o.stream).await.is_ok(),
    };
    let counts = Arc::new(Counts::default());
    let confirm_h = Arc::new(Histogram::new());
    let e2e_h = Arc::new(Histogram::new());

    let cpu0 = cpu_s();
    let bcpu0 = o.broker_pid.and_then(proc_cpu_s);
    let t0 = Instant::now();
    let (mut pub_s, mut con_s) = (0.0, 0.0);

    match o.mode.as_str() {
        "publish" => {
            let producer = env.producer().build(&o.stream).await.expect("producer");
            let window = Arc::new(Semaphore::new(o.in_flight));
            let mut left = o.count;
            while left > 0 {
                let n = left.min(o.batch as u64) as usize;
                window
                    .acquire_many(n as u32)
                    .await
                    .expect("semaphore")
                    .forget();
                let msgs: Vec<Message> = (0..n)
                    .map(|_| Message::builder().body(body(o.size)).build())
                    .collect();
                let sent_at = Instant::now();
                let (c, h, w) = (counts.clone(), confirm_h.clone(), window.clone());
                producer
                    .batch_send(msgs, move |r| {
                        match r {
                            Ok(s) if s.confirmed() => {
                                h.record(sent_at.elapsed().as_nanos() as u64);
                                c.confirmed.fetch_add(1, Relaxed);
                            }
                            _ => {
                                c.failed.fetch_add(1, Relaxed);
                            }
                        }
                        w.add_permits(1);
                        std::future::ready(())
                    })
                    .await
                    .expect("batch_send");
                counts.sent.fetch_add(n as u64, Relaxed);
                left -= n as u64;
            }
            // every permit back: every message confirmed (or failed)
            let _all = window
                .acquire_many(o.in_flight as u32)
                .await
                .expect("semaphore");
            pub_s = t0.elapsed().as_secs_f64();
            producer.close().await.ok();
        }
        "consume" => {
            let mut consumer = env
                .consumer()
                .offset(OffsetSpecification::First)
                .build(&o.stream)
                .await
                .expect("consumer");
            while counts.consumed.load(Relaxed) < o.count {
                match tokio::time::timeout(Duration::from_secs(30), consumer.next()).await {
                    Ok(Some(Ok(d))) => {
                        if d.message().data().map(|b| b.len()) != Some(o.size) {
                            counts.wrong_size.fetch_add(1, Relaxed);
                        }
                        counts.consumed.fetch_add(1, Relaxed);
                    }
                    _ => break,
                }
            }
            con_s = t0.elapsed().as_secs_f64();
            consumer.handle().close().await.ok();
        }
        _ => {
            let mut consumer = env
                .consumer()
                .offset(OffsetSpecification::Next)
                .build(&o.stream)
                .await
                .expect("consumer");
            let (c, h, size) = (counts.clone(), e2e_h.clone(), o.size);
            let reader = tokio::spawn(async move {
                let mut last = Instant::now();
                while let Ok(Some(Ok(d))) =
                    tokio::time::timeout(Duration::from_secs(30), consumer.next()).await
                {
                    let now = realtime_ns();
                    match d.message().data() {
                        Some(b) if b.len() == size && size >= 8 => {
                            let sent = u64::from_le_bytes(b[..8].try_into().unwrap());
                            h.record(now.saturating_sub(sent));
                        }
                        Some(b) if b.len() == size => {}
                        _ => {
                            c.wrong_size.fetch_add(1, Relaxed);
                        }
                    }
                    last = Instant::now();
                    let got = c.consumed.fetch_add(1, Relaxed) + 1;
                    let want = c.sent.load(Relaxed);
                    if want != 0
                        && got >= want
                        && c.confirmed.load(Relaxed) + c.failed.load(Relaxed) >= want
                    {
                        break;
                    }
                }
                consumer.handle().close().await.ok();
                last
            });
            let producer = env.producer().build(&o.stream).await.expect("producer");
            let per_msg = Duration::from_secs_f64(1.0 / o.rate);
            let end = t0 + Duration::from_secs_f64(o.duration);
            let mut i: u32 = 0;
            let mut sent = 0u64;
            while Instant::now() < end {
                let due = t0 + per_msg * i;
                if Instant::now() < due {
                    tokio::time::sleep_until(due.into()).await;
                }
                i += 1;
                let sent_at = Instant::now();
                let (c, h) = (counts.clone(), confirm_h.clone());
                producer
                    .send(Message::builder().body(body(o.size)).build(), move |r| {
                        match r {
                            Ok(s) if s.confirmed() => {
                                h.record(sent_at.elapsed().as_nanos() as u64);
                                c.confirmed.fetch_add(1, Relaxed);
                            }
                            _ => {
                                c.failed.fetch_add(1, Relaxed);
                            }
                        }
                        std::future::ready(())
                    })
                    .await
                    .expect("send");
                sent += 1;
            }
            let deadline = Instant::now() + Duration::from_secs(30);
            while counts.confirmed.load(Relaxed) + counts.failed.load(Relaxed) < sent
                && Instant::now() < deadline
            {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            pub_s = t0.elapsed().as_secs_f64();
            counts.sent.store(sent, Relaxed);
            producer.close().await.ok();
            let last = reader.await.unwrap_or_else(|_| Instant::now());
            con_s = last.duration_since(t0).as_secs_f64();
        }
    }

    let secs = t0.elapsed().as_secs_f64();
    let cpu = cpu_s() - cpu0;
    let bcpu = match (o.broker_pid.and_then(proc_cpu_s), bcpu0) {
        (Some(b), Some(b0)) => b - b0,
        _ => -1.0,
    };
    if (created && !o.keep) || o.delete_streams {
        env.delete_stream(&o.stream).await.ok();
    }

    let (sent, confirmed, failed) = (
        counts.sent.load(Relaxed),
        counts.confirmed.load(Relaxed),
        counts.failed.load(Relaxed),
    );
    let (consumed, wrong) = (
        counts.consumed.load(Relaxed),
        counts.wrong_size.load(Relaxed),
    );
    let (producers, consumers, expected) = match o.mode.as_str() {
        "publish" => (1, 0, 0),
        "consume" => (0, 1, o.count),
        _ => (1, 1, confirmed),
    };
    let messages = if producers > 0 { confirmed } else { consumed };
    let per_m = if messages > 0 {
        1e6 / messages as f64
    } else {
        0.0
    };
    let ok = sent == confirmed && failed == 0 && wrong == 0 && consumed >= expected;
    let rate = |n: u64, s: f64| if s > 0.0 { n as f64 / s } else { 0.0 };
    let mut js = String::new();
    js += "{\n  \"tool\": \"official-perf\",\n  \"client\": \"rabbitmq-stream-client 0.11.0\",\n";
    js += &format!(
        "  \"producers\": {producers}, \"consumers\": {consumers}, \"streams\": 1, \
         \"super_stream\": false, \"partitions\": 0,\n  \"size\": {}, \"rate\": {:.0}, \
         \"count\": {}, \"duration_s\": {:.3},\n",
        o.size,
        if o.mode == "live" { o.rate } else { 0.0 },
        if o.mode == "live" { 0 } else { o.count },
        if o.mode == "live" { o.duration } else { 0.0 }
    );
    js += &format!(
        "  \"published\": {sent},\n  \"confirmed\": {confirmed},\n  \"failed\": {failed},\n  \
         \"consumed\": {consumed},\n  \"expected_consumed\": {expected},\n  \
         \"wrong_size\": {wrong},\n"
    );
    js += &format!(
        "  \"seconds\": {secs:.4},\n  \"publish_seconds\": {pub_s:.4},\n  \
         \"publish_msg_per_s\": {:.1},\n  \"consume_seconds\": {con_s:.4},\n  \
         \"consume_msg_per_s\": {:.1},\n",
        rate(confirmed, pub_s),
        rate(consumed, con_s)
    );
    js += &format!(
        "  \"cpu_s\": {cpu:.4},\n  \"cpu_s_per_million\": {:.4},\n  \"broker_cpu_s\": {bcpu:.4},\n  \
         \"broker_cpu_s_per_million\": {:.4},\n  \"rss_max_mib\": {:.2},\n  \
         \"rss_end_mib\": {:.2},\n",
        cpu * per_m,
        if bcpu >= 0.0 { bcpu * per_m } else { -1.0 },
        rss_max_mib(),
        rss_now_mib()
    );
    js += &confirm_h.json("confirm_latency_ms");
    js += &e2e_h.json("e2e_latency_ms");
    js += &format!("  \"ok\": {ok}\n}}\n");
    match o.json.as_deref() {
        Some("-") | None => print!("{js}"),
        Some(path) => std::fs::write(path, &js).unwrap_or_else(|e| {
            eprintln!("official-perf: cannot write {path}: {e}");
            std::process::exit(1)
        }),
    }
    std::process::exit(if ok { 0 } else { 1 })
}
