//! A raw stream-protocol session driven by rmqstream's codec alone: blocking
//! [`std::net::TcpStream`], no Tokio, no `rmqstream::client`.
//!
//! PeerProperties → SaslHandshake → SaslAuthenticate PLAIN → Tune/TuneResponse → Open →
//! ExchangeCommandVersions (3.11+ only: 3.10 closes the connection on it) → Create stream →
//! DeclarePublisher → QueryPublisherSequence → Publish (AMQP 1.0 messages and a few raw
//! bodies) → PublishConfirm (exactly the ids sent) → Subscribe from First → Deliver (every
//! chunk parsed, CRC checked, every record's offset and body checked) with Credit → live
//! sub-entry batches (one per codec) confirmed and consumed → Unsubscribe → DeletePublisher →
//! Delete stream → Close.
//!
//! Used by `tests/raw_session.rs` (assertions) and the `raw_session` example (the demo,
//! `tests/support/raw_session_main.rs`). Any deviation from the expected exchange is an `Err`
//! describing it; the [`Summary`] counts what happened so callers can assert on it.

// Shared by a test and an example; each uses a different part of the API.
#![allow(dead_code)]

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::fmt::Write as _;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::ops::ControlFlow;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use rmqstream::protocol::amqp::{Message, MessageView, Properties, Value};
use rmqstream::protocol::chunk::{
    Chunk, ChunkDecoder, ChunkType, EntryKind, Record, SubEntry, encode_sub_entry,
};
use rmqstream::protocol::codes::{OffsetSpec, ResponseCode, key, key_name};
use rmqstream::protocol::commands::{
    Close, CodeResponse, CommandVersion, CreateStream, Credit, DeclarePublisher, DeletePublisher,
    DeleteStream, Deliver, ExchangeCommandVersions, Frame, Open, PeerProperties, PublishConfirm,
    PublishError, PublishFrameWriter, PublishVersion, QueryPublisherSequence, SaslAuthenticate,
    SaslHandshake, Subscribe, Tune, Unsubscribe, split_frame,
};
use rmqstream::protocol::compression::Compression;

/// The URI used when none is given.
pub const DEFAULT_URI: &str = "rabbitmq-stream://guest:guest@localhost:5552/%2f";

/// What to exchange.
#[derive(Debug, Clone)]
pub struct Options {
    /// Simple (one message per publishing id) messages published before subscribing.
    pub messages: u64,
    /// Messages per Publish frame.
    pub batch_size: usize,
    /// Codecs of the sub-entry batches published while subscribed, one batch each.
    pub sub_entry_codecs: Vec<Compression>,
    /// Records per sub-entry batch.
    pub sub_entry_records: u16,
    /// Credit given at Subscribe; one more is granted per chunk received.
    pub initial_credit: u16,
    /// How long to wait for any single expected frame.
    pub timeout: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            messages: 1000,
            batch_size: 100,
            sub_entry_codecs: vec![
                Compression::Gzip,
                Compression::Zstd,
                Compression::Lz4,
                Compression::Snappy,
                Compression::None,
            ],
            sub_entry_records: 50,
            initial_credit: 10,
            timeout: Duration::from_secs(30),
        }
    }
}

impl Options {
    /// Records published in sub-entry batches.
    pub fn sub_entry_messages(&self) -> u64 {
        self.sub_entry_codecs.len() as u64 * u64::from(self.sub_entry_records)
    }

    /// All records published (= the stream's length).
    pub fn total_messages(&self) -> u64 {
        self.messages + self.sub_entry_messages()
    }

    /// Publishing ids used: one per simple message, one per sub-entry batch.
    pub fn publishing_ids(&self) -> u64 {
        self.messages + self.sub_entry_codecs.len() as u64
    }

    /// Whether message `i` (0-based, simple messages only) is published as raw bytes rather
    /// than as an AMQP 1.0 message.
    pub fn is_raw(i: u64) -> bool {
        i % 100 == 42
    }

    /// How many of the simple messages are raw bytes.
    pub fn raw_messages(&self) -> u64 {
        (0..self.messages).filter(|&i| Self::is_raw(i)).count() as u64
    }
}

/// What the session did; every count is checked inside [`run`] too.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    pub host: String,
    pub port: u16,
    pub vhost: String,
    pub broker_product: String,
    pub broker_version: String,
    /// Negotiated (TuneResponse) values.
    pub frame_max: u32,
    pub heartbeat: u32,
    /// From the Open response (empty if the broker sent none).
    pub advertised_host: String,
    pub advertised_port: String,
    /// Whether ExchangeCommandVersions was sent (3.11+).
    pub exchanged_command_versions: bool,
    pub stream: String,
    /// Version of the Deliver frames received (1 or 2).
    pub deliver_version: u16,
    /// Deliver frames carrying a committed chunk id (v2).
    pub committed_chunk_ids: u64,
    /// QueryPublisherSequence answer before publishing.
    pub initial_sequence: u64,
    /// Records published (simple messages + sub-entry records).
    pub messages_published: u64,
    /// Simple messages (one per publishing id), published before subscribing.
    pub simple_messages: u64,
    /// Publishing ids sent / confirmed (a sub-entry batch is one id).
    pub publishing_ids_sent: u64,
    pub publishing_ids_confirmed: u64,
    /// Records covered by the confirmed ids.
    pub messages_confirmed: u64,
    /// Records received and checked against what was published (offset and bytes).
    pub messages_consumed: u64,
    pub bodies_matched: u64,
    /// Records decoded as AMQP 1.0 messages (data section and properties checked).
    pub amqp_decoded: u64,
    /// Records that were published as raw (non-AMQP) bytes.
    pub raw_bodies: u64,
    /// Records that came out of sub-entry batches, and those batches.
    pub sub_entry_records: u64,
    pub sub_entry_batches: u64,
    pub chunks: u64,
    pub chunks_crc_checked: u64,
    pub first_offset: Option<u64>,
    pub last_offset: Option<u64>,
    pub publish_frames: u64,
    pub credits_sent: u64,
    pub heartbeats: u64,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    /// Wall-clock time, in microseconds, from writing the simple messages to their last
    /// confirm, and from Subscribe to their last delivery (the sub-entry phase not included).
    pub publish_micros: u64,
    pub consume_micros: u64,
    pub total_micros: u64,
}

impl Summary {
    /// `(major, minor)` of the broker version, if it parses.
    pub fn version_tuple(&self) -> Option<(u32, u32)> {
        parse_version(&self.broker_version)
    }

    /// A multi-line human-readable report.
    pub fn report(&self) -> String {
        let mut s = String::new();
        let rate = |n: u64, us: u64| {
            if us == 0 {
                "-".to_string()
            } else {
                format!("{:.0} msg/s", n as f64 * 1e6 / us as f64)
            }
        };
        let offsets = match (self.first_offset, self.last_offset) {
            (Some(a), Some(b)) => format!("{a}..={b}"),
            _ => "-".to_string(),
        };
        let _ = writeln!(
            s,
            "  broker           {} {} at {}:{} vhost {:?} (advertises {}:{})",
            self.broker_product,
            self.broker_version,
            self.host,
            self.port,
            self.vhost,
            self.advertised_host,
            self.advertised_port
        );
        let _ = writeln!(
            s,
            "  tuned            frame_max {} bytes, heartbeat {} s",
            self.frame_max, self.heartbeat
        );
        let _ = writeln!(s, "  stream           {} (deleted at the end)", self.stream);
        let _ = writeln!(
            s,
            "  published        {} messages under {} publishing ids in {} frames ({} in {} sub-entry batches)",
            self.messages_published,
            self.publishing_ids_sent,
            self.publish_frames,
            self.sub_entry_records,
            self.sub_entry_batches
        );
        let _ = writeln!(
            s,
            "  confirmed        {} ids = {} messages (simple phase {}, write → last confirm)",
            self.publishing_ids_confirmed,
            self.messages_confirmed,
            rate(self.simple_messages, self.publish_micros)
        );
        let _ = writeln!(
            s,
            "  consumed         {} messages in {} chunks (Deliver v{}, {} with committed chunk id), offsets {offsets} (simple phase {}, Subscribe → last Deliver)",
            self.messages_consumed,
            self.chunks,
            self.deliver_version,
            self.committed_chunk_ids,
            rate(self.simple_messages, self.consume_micros)
        );
        let _ = writeln!(
            s,
            "  checked          {} bodies byte-exact ({} AMQP 1.0 decoded, {} raw), {} chunk CRCs",
            self.bodies_matched, self.amqp_decoded, self.raw_bodies, self.chunks_crc_checked
        );
        let _ = writeln!(
            s,
            "  traffic          {} bytes sent, {} received, {} credits, {} heartbeats",
            self.bytes_sent, self.bytes_received, self.credits_sent, self.heartbeats
        );
        let _ = write!(
            s,
            "  total            {:.1} ms",
            self.total_micros as f64 / 1000.0
        );
        s
    }
}

/// Where to connect and as whom, from a `rabbitmq-stream://user:pass@host:port/vhost` URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: String,
    pub vhost: String,
}

/// Parses `rabbitmq-stream://[user[:pass]@]host[:port][/vhost]` (percent-decoding user,
/// password and vhost; an empty vhost is "/"). Defaults: guest/guest, port 5552.
pub fn parse_uri(uri: &str) -> Result<Endpoint, String> {
    let rest = uri
        .strip_prefix("rabbitmq-stream://")
        .ok_or_else(|| format!("{uri:?}: not a rabbitmq-stream:// URI"))?;
    let rest = rest.split(['?', '#']).next().unwrap_or_default();
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let (userinfo, hostport) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    let (user, password) = match userinfo {
        Some(u) => match u.split_once(':') {
            Some((a, b)) => (percent_decode(a)?, percent_decode(b)?),
            None => (percent_decode(u)?, String::new()),
        },
        None => ("guest".to_string(), "guest".to_string()),
    };
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let (h, tail) = v6
            .split_once(']')
            .ok_or_else(|| format!("{uri:?}: unclosed [ in host"))?;
        (h, tail.strip_prefix(':'))
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        }
    };
    if host.is_empty() {
        return Err(format!("{uri:?}: no host"));
    }
    let port = match port {
        None | Some("") => 5552,
        Some(p) => p.parse().map_err(|_| format!("{uri:?}: bad port {p:?}"))?,
    };
    let vhost = if path.is_empty() {
        "/".to_string()
    } else {
        percent_decode(path)?
    };
    Ok(Endpoint {
        host: host.to_string(),
        port,
        user,
        password,
        vhost,
    })
}

fn percent_decode(s: &str) -> Result<String, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("bad percent escape in {s:?}"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("{s:?} is not UTF-8 once decoded"))
}

/// `(major, minor)` of a version like `4.0.5` or `3.13.7+1.g1234`.
pub fn parse_version(v: &str) -> Option<(u32, u32)> {
    let mut it = v.split(|c: char| !c.is_ascii_digit());
    let major = it.next()?.parse().ok()?;
    let minor = it.next()?.parse().ok()?;
    Some((major, minor))
}

/// Runs the whole session with the default [`Options`] against `uri`, calling `log` with one
/// line per step.
pub fn run(uri: &str, log: &mut dyn FnMut(String)) -> Result<Summary, String> {
    run_with(uri, &Options::default(), log)
}

/// [`run`] with explicit options. On failure after the stream was created, a best-effort
/// second connection deletes it.
pub fn run_with(uri: &str, opts: &Options, log: &mut dyn FnMut(String)) -> Result<Summary, String> {
    if opts.messages == 0 || opts.batch_size == 0 || opts.initial_credit == 0 {
        return Err("messages, batch size and initial credit must be positive".into());
    }
    let ep = parse_uri(uri)?;
    let stream = unique_stream_name();
    let mut session = Session::connect(&ep, opts, log)?;
    let result = session.run(&stream);
    let created = session.stream_created;
    let log = session.log;
    match result {
        Ok(s) => Ok(s),
        Err(e) => {
            if created {
                log(format!(
                    "cleanup: deleting stream {stream} after the failure"
                ));
                if let Err(c) = delete_stream_best_effort(&ep, opts, &stream) {
                    log(format!("cleanup failed: {c}"));
                }
            }
            Err(e)
        }
    }
}

fn unique_stream_name() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("rmqs-raw-session-{}-{nanos:x}", std::process::id())
}

fn delete_stream_best_effort(ep: &Endpoint, opts: &Options, stream: &str) -> Result<(), String> {
    let mut quiet = |_: String| {};
    let mut s = Session::connect(ep, opts, &mut quiet)?;
    s.handshake()?;
    let corr = s.conn.next_corr();
    let resp = s.conn.call(Frame::DeleteStream(DeleteStream {
        correlation_id: corr,
        stream: stream.to_string(),
    }))?;
    let _ = s.close();
    match resp {
        Frame::DeleteStreamResponse(r) if r.code.is_ok() => Ok(()),
        other => Err(format!("DeleteStream answered {}", describe(&other))),
    }
}

// ------------------------------------------------------------------------------------------
// The connection: frames in and out over a blocking socket.

struct Conn {
    sock: TcpStream,
    rbuf: BytesMut,
    wbuf: BytesMut,
    /// Frames read while waiting for a response, handed out by [`Conn::next_event`].
    backlog: VecDeque<Frame>,
    corr: u32,
    heartbeats: u64,
    bytes_sent: u64,
    bytes_received: u64,
    timeout: Duration,
}

impl Conn {
    fn next_corr(&mut self) -> u32 {
        self.corr += 1;
        self.corr
    }

    fn send(&mut self, f: &Frame) -> Result<(), String> {
        self.wbuf.clear();
        f.encode(&mut self.wbuf)
            .map_err(|e| format!("cannot encode {}: {e}", describe(f)))?;
        let buf = std::mem::take(&mut self.wbuf);
        let r = self.write_raw(&buf);
        self.wbuf = buf;
        r
    }

    fn write_raw(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.sock
            .write_all(bytes)
            .map_err(|e| format!("write failed: {e}"))?;
        self.bytes_sent += bytes.len() as u64;
        Ok(())
    }

    /// Reads the next frame from the socket, answering heartbeats on the way.
    fn read_frame(&mut self, waiting_for: &str) -> Result<Frame, String> {
        let mut tmp = [0u8; 64 * 1024];
        loop {
            let body = split_frame(&mut self.rbuf, 0)
                .map_err(|e| format!("bad frame while waiting for {waiting_for}: {e}"))?;
            if let Some(body) = body {
                let frame = Frame::decode_server(body.clone()).map_err(|e| {
                    format!(
                        "cannot decode frame (waiting for {waiting_for}): {e}; body {}",
                        hex_prefix(&body, 48)
                    )
                })?;
                if frame == Frame::Heartbeat {
                    self.heartbeats += 1;
                    self.send(&Frame::Heartbeat)?;
                    continue;
                }
                return Ok(frame);
            }
            match self.sock.read(&mut tmp) {
                Ok(0) => {
                    return Err(format!(
                        "connection closed by the broker while waiting for {waiting_for}"
                    ));
                }
                Ok(n) => {
                    self.bytes_received += n as u64;
                    self.rbuf.extend_from_slice(&tmp[..n]);
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return Err(format!(
                        "timed out after {:?} waiting for {waiting_for}",
                        self.timeout
                    ));
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("read failed waiting for {waiting_for}: {e}")),
            }
        }
    }

    /// The next frame that is not a response to a request of ours.
    fn next_event(&mut self, waiting_for: &str) -> Result<Frame, String> {
        match self.backlog.pop_front() {
            Some(f) => Ok(f),
            None => self.read_frame(waiting_for),
        }
    }

    /// Sends a request and returns the response with its correlation id; other frames read
    /// meanwhile are kept for [`Conn::next_event`]. A Close from the broker is answered and
    /// turned into an error.
    fn call(&mut self, req: Frame) -> Result<Frame, String> {
        let corr = req.correlation_id();
        let what = format!("the response to {}", name_of(&req));
        self.send(&req)?;
        loop {
            let f = self.read_frame(&what)?;
            if f.is_response() && f.correlation_id().is_some() && f.correlation_id() == corr {
                return Ok(f);
            }
            if let Frame::Close(c) = &f {
                return Err(self.broker_closed(c));
            }
            self.backlog.push_back(f);
        }
    }

    fn broker_closed(&mut self, c: &Close) -> String {
        let _ = self.send(&Frame::CloseResponse(CodeResponse {
            correlation_id: c.correlation_id,
            code: ResponseCode::OK,
        }));
        format!(
            "the broker closed the connection: {} ({:?})",
            c.code, c.reason
        )
    }
}

// ------------------------------------------------------------------------------------------
// What was published, to check what comes back.

/// The expected record at one offset.
struct Expected {
    body: Bytes,
    /// `Some(i)` for AMQP message number `i`, `None` for raw bytes.
    amqp_index: Option<u64>,
    /// Tag written in the message (its batch kind).
    tag: &'static str,
    /// `Some(codec)` when published inside a sub-entry batch.
    sub_entry: Option<Compression>,
    /// The publishing id that carried it.
    publishing_id: u64,
}

fn tag_of(c: Compression) -> &'static str {
    match c {
        Compression::None => "sub-entry/none",
        Compression::Gzip => "sub-entry/gzip",
        Compression::Snappy => "sub-entry/snappy",
        Compression::Lz4 => "sub-entry/lz4",
        Compression::Zstd => "sub-entry/zstd",
    }
}

fn raw_body(i: u64) -> Bytes {
    // Not an AMQP message: starts with a byte that is no AMQP section constructor.
    let mut b = format!("\u{1}raw message #{i}, opaque bytes:").into_bytes();
    b.extend((0..(i % 13) as u8).map(|k| k.wrapping_mul(37)));
    Bytes::from(b)
}

// ------------------------------------------------------------------------------------------
// The session.

struct Session<'l> {
    conn: Conn,
    ep: Endpoint,
    log: &'l mut dyn FnMut(String),
    opts: Options,
    t0: Instant,
    summary: Summary,
    stream_created: bool,
    // publishing
    publisher_id: u8,
    outstanding: HashMap<u64, u64>,
    confirmed: BTreeSet<u64>,
    confirm_frames: u64,
    expected: Vec<Expected>,
    // consuming
    subscription_id: u8,
    subscribed: bool,
    expected_deliver_version: u16,
    next_offset: u64,
    /// The offset at which the current phase is complete (its last chunk is logged).
    phase_target: u64,
    decoder: ChunkDecoder,
}

const PUBLISHER_REFERENCE: &str = "rmqstream-raw-session";

impl<'l> Session<'l> {
    fn connect(
        ep: &Endpoint,
        opts: &Options,
        log: &'l mut dyn FnMut(String),
    ) -> Result<Session<'l>, String> {
        let t0 = Instant::now();
        let sock = TcpStream::connect((ep.host.as_str(), ep.port))
            .map_err(|e| format!("cannot connect to {}:{}: {e}", ep.host, ep.port))?;
        sock.set_nodelay(true).map_err(|e| e.to_string())?;
        sock.set_read_timeout(Some(opts.timeout))
            .map_err(|e| e.to_string())?;
        sock.set_write_timeout(Some(opts.timeout))
            .map_err(|e| e.to_string())?;
        let peer = sock.peer_addr().map(|a| a.to_string()).unwrap_or_default();
        let summary = Summary {
            host: ep.host.clone(),
            port: ep.port,
            vhost: ep.vhost.clone(),
            ..Summary::default()
        };
        let mut s = Session {
            conn: Conn {
                sock,
                rbuf: BytesMut::with_capacity(256 * 1024),
                wbuf: BytesMut::with_capacity(256 * 1024),
                backlog: VecDeque::new(),
                corr: 0,
                heartbeats: 0,
                bytes_sent: 0,
                bytes_received: 0,
                timeout: opts.timeout,
            },
            ep: ep.clone(),
            log,
            opts: opts.clone(),
            t0,
            summary,
            stream_created: false,
            publisher_id: 7,
            outstanding: HashMap::new(),
            confirmed: BTreeSet::new(),
            confirm_frames: 0,
            expected: Vec::new(),
            subscription_id: 3,
            subscribed: false,
            expected_deliver_version: 1,
            next_offset: 0,
            phase_target: 0,
            decoder: ChunkDecoder::new(),
        };
        s.say(format!(
            "connected to {}:{} ({peer}) as {:?}, vhost {:?}",
            ep.host, ep.port, ep.user, ep.vhost
        ));
        Ok(s)
    }

    fn say(&mut self, msg: String) {
        let ms = self.t0.elapsed().as_secs_f64() * 1000.0;
        (self.log)(format!("[{ms:>8.1} ms] {}", align(&msg)));
    }

    fn run(&mut self, stream: &str) -> Result<Summary, String> {
        self.handshake()?;
        self.exchange_command_versions()?;
        self.create_stream(stream)?;
        self.declare_publisher()?;
        self.query_publisher_sequence()?;
        self.publish_simple()?;
        self.subscribe()?;
        self.publish_sub_entries_live()?;
        self.unsubscribe()?;
        self.delete_publisher()?;
        self.delete_stream()?;
        self.close()?;
        self.finish()
    }

    fn handshake(&mut self) -> Result<(), String> {
        // PeerProperties
        let properties: Vec<(String, String)> = [
            ("product", "rmqstream raw session"),
            ("version", env!("CARGO_PKG_VERSION")),
            ("platform", "Rust, std::net blocking socket"),
            ("connection_name", "rmqstream-raw-session"),
            (
                "information",
                "rmqstream codec test, tests/support/raw_session.rs",
            ),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        self.say(format!(
            "→ PeerProperties       {} client properties (product \"rmqstream raw session\")",
            properties.len()
        ));
        let correlation_id = self.conn.next_corr();
        let resp = self.conn.call(Frame::PeerProperties(PeerProperties {
            correlation_id,
            properties,
        }))?;
        let Frame::PeerPropertiesResponse(r) = resp else {
            return Err(unexpected("PeerProperties", &resp));
        };
        check_ok("PeerProperties", r.code)?;
        let get = |k: &str| {
            r.properties
                .iter()
                .find(|(a, _)| a == k)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        self.summary.broker_product = get("product");
        self.summary.broker_version = get("version");
        self.say(format!(
            "← PeerProperties       {} {}, cluster {:?}, {}",
            self.summary.broker_product,
            self.summary.broker_version,
            get("cluster_name"),
            get("platform")
        ));
        if self.summary.version_tuple().is_none() {
            return Err(format!(
                "the broker reports no parsable version ({:?})",
                self.summary.broker_version
            ));
        }

        // SASL
        self.say("→ SaslHandshake".into());
        let correlation_id = self.conn.next_corr();
        let resp = self
            .conn
            .call(Frame::SaslHandshake(SaslHandshake { correlation_id }))?;
        let Frame::SaslHandshakeResponse(r) = resp else {
            return Err(unexpected("SaslHandshake", &resp));
        };
        check_ok("SaslHandshake", r.code)?;
        self.say(format!(
            "← SaslHandshake        mechanisms {}",
            r.mechanisms.join(", ")
        ));
        if !r.mechanisms.iter().any(|m| m == "PLAIN") {
            return Err("the broker does not offer SASL PLAIN".into());
        }
        let mut data = Vec::new();
        data.push(0);
        data.extend_from_slice(self.ep.user.as_bytes());
        data.push(0);
        data.extend_from_slice(self.ep.password.as_bytes());
        self.say(format!(
            "→ SaslAuthenticate     PLAIN as {:?}",
            self.ep.user
        ));
        let correlation_id = self.conn.next_corr();
        let resp = self.conn.call(Frame::SaslAuthenticate(SaslAuthenticate {
            correlation_id,
            mechanism: "PLAIN".into(),
            sasl_data: Some(Bytes::from(data)),
        }))?;
        let Frame::SaslAuthenticateResponse(r) = resp else {
            return Err(unexpected("SaslAuthenticate", &resp));
        };
        check_ok("SaslAuthenticate", r.code)?;
        self.say("← SaslAuthenticate     OK".into());

        // Tune
        let f = self.conn.next_event("Tune")?;
        let Frame::Tune(t) = f else {
            return Err(unexpected("Tune", &f));
        };
        let frame_max = negotiate(t.frame_max, CLIENT_FRAME_MAX);
        let heartbeat = negotiate(t.heartbeat, CLIENT_HEARTBEAT);
        self.say(format!(
            "← Tune                 server proposes frame_max {} bytes, heartbeat {} s",
            t.frame_max, t.heartbeat
        ));
        self.conn.send(&Frame::TuneResponse(Tune {
            frame_max,
            heartbeat,
        }))?;
        self.say(format!(
            "→ TuneResponse         frame_max {frame_max} bytes, heartbeat {heartbeat} s"
        ));
        self.summary.frame_max = frame_max;
        self.summary.heartbeat = heartbeat;

        // Open
        self.say(format!("→ Open                 vhost {:?}", self.ep.vhost));
        let correlation_id = self.conn.next_corr();
        let resp = self.conn.call(Frame::Open(Open {
            correlation_id,
            virtual_host: self.ep.vhost.clone(),
        }))?;
        let Frame::OpenResponse(r) = resp else {
            return Err(unexpected("Open", &resp));
        };
        check_ok("Open", r.code)?;
        let get = |k: &str| {
            r.properties
                .iter()
                .find(|(a, _)| a == k)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        self.summary.advertised_host = get("advertised_host");
        self.summary.advertised_port = get("advertised_port");
        self.say(format!(
            "← Open                 OK, advertised {}:{}",
            self.summary.advertised_host, self.summary.advertised_port
        ));
        Ok(())
    }

    fn exchange_command_versions(&mut self) -> Result<(), String> {
        let v = self.summary.version_tuple().unwrap_or_default();
        if v < (3, 11) {
            self.say(format!(
                "  (RabbitMQ {} < 3.11: no ExchangeCommandVersions, it would close the connection; Deliver v1 expected)",
                self.summary.broker_version
            ));
            self.expected_deliver_version = 1;
            return Ok(());
        }
        // Only commands every 3.11+ broker knows: up to 4.2 the broker's parser crashes the
        // connection on a key it does not know (e.g. ResolveOffsetSpec 0x001f, 4.3+).
        let commands: Vec<CommandVersion> = SESSION_COMMANDS
            .iter()
            .map(|&k| CommandVersion {
                key: k,
                min_version: 1,
                max_version: if k == key::PUBLISH || k == key::DELIVER {
                    2
                } else {
                    1
                },
            })
            .collect();
        self.say(format!(
            "→ ExchangeCommandVersions {} commands, publish v1..2, deliver v1..2",
            commands.len()
        ));
        let correlation_id = self.conn.next_corr();
        let resp = self
            .conn
            .call(Frame::ExchangeCommandVersions(ExchangeCommandVersions {
                correlation_id,
                commands,
            }))?;
        let Frame::ExchangeCommandVersionsResponse(r) = resp else {
            return Err(unexpected("ExchangeCommandVersions", &resp));
        };
        check_ok("ExchangeCommandVersions", r.code)?;
        let range = |k: u16| {
            r.commands
                .iter()
                .find(|c| c.key == k)
                .map(|c| (c.min_version, c.max_version))
        };
        let fmt_range = |r: Option<(u16, u16)>| match r {
            Some((a, b)) => format!("v{a}..{b}"),
            None => "absent".to_string(),
        };
        // The broker lists the commands it receives (Deliver is not one of them); it switches
        // to Deliver v2 when the client's list has deliver 1..2, as ours has.
        self.say(format!(
            "← ExchangeCommandVersions broker receives {} commands (publish {}, subscribe {}); Deliver v2 from now on",
            r.commands.len(),
            fmt_range(range(key::PUBLISH)),
            fmt_range(range(key::SUBSCRIBE))
        ));
        self.summary.exchanged_command_versions = true;
        self.expected_deliver_version = 2;
        Ok(())
    }

    fn create_stream(&mut self, stream: &str) -> Result<(), String> {
        self.summary.stream = stream.to_string();
        self.say(format!("→ Create               stream {stream:?}"));
        let correlation_id = self.conn.next_corr();
        let resp = self.conn.call(Frame::CreateStream(CreateStream {
            correlation_id,
            stream: stream.to_string(),
            arguments: Vec::new(),
        }))?;
        let Frame::CreateStreamResponse(r) = resp else {
            return Err(unexpected("Create", &resp));
        };
        check_ok("Create", r.code)?;
        self.stream_created = true;
        self.say("← Create               OK".into());
        Ok(())
    }

    fn declare_publisher(&mut self) -> Result<(), String> {
        self.say(format!(
            "→ DeclarePublisher     id {}, reference {PUBLISHER_REFERENCE:?}",
            self.publisher_id
        ));
        let correlation_id = self.conn.next_corr();
        let resp = self.conn.call(Frame::DeclarePublisher(DeclarePublisher {
            correlation_id,
            publisher_id: self.publisher_id,
            publisher_reference: PUBLISHER_REFERENCE.into(),
            stream: self.summary.stream.clone(),
        }))?;
        let Frame::DeclarePublisherResponse(r) = resp else {
            return Err(unexpected("DeclarePublisher", &resp));
        };
        check_ok("DeclarePublisher", r.code)?;
        self.say("← DeclarePublisher     OK".into());
        Ok(())
    }

    fn query_publisher_sequence(&mut self) -> Result<(), String> {
        self.say(format!(
            "→ QueryPublisherSequence reference {PUBLISHER_REFERENCE:?}"
        ));
        let correlation_id = self.conn.next_corr();
        let resp = self
            .conn
            .call(Frame::QueryPublisherSequence(QueryPublisherSequence {
                correlation_id,
                publisher_reference: PUBLISHER_REFERENCE.into(),
                stream: self.summary.stream.clone(),
            }))?;
        let Frame::QueryPublisherSequenceResponse(r) = resp else {
            return Err(unexpected("QueryPublisherSequence", &resp));
        };
        check_ok("QueryPublisherSequence", r.code)?;
        self.say(format!(
            "← QueryPublisherSequence {} (a new stream: publishing ids start at {})",
            r.sequence,
            r.sequence + 1
        ));
        if r.sequence != 0 {
            return Err(format!(
                "a fresh stream reports publisher sequence {}, expected 0",
                r.sequence
            ));
        }
        self.summary.initial_sequence = r.sequence;
        Ok(())
    }

    fn next_publishing_id(&self) -> u64 {
        self.summary.initial_sequence + self.summary.publishing_ids_sent + 1
    }

    /// Publishes the simple messages in frames of `batch_size`, then waits for every confirm.
    fn publish_simple(&mut self) -> Result<(), String> {
        let n = self.opts.messages;
        let first_id = self.next_publishing_id();
        let mut out = BytesMut::new();
        let mut frames = 0u64;
        let mut largest = 0usize;
        let mut body_bytes = 0usize;
        let mut ids = first_id..;
        let mut i = 0u64;
        while i < n {
            let end = (i + self.opts.batch_size as u64).min(n);
            let at = out.len();
            let mut w = PublishFrameWriter::begin(&mut out, self.publisher_id, PublishVersion::V1);
            for k in i..end {
                let id = ids.next().unwrap_or_default();
                let (body, amqp_index) = if Options::is_raw(k) {
                    (raw_body(k), None)
                } else {
                    (amqp_body(k, "simple")?, Some(k))
                };
                w.push_simple(&mut out, id, &body)
                    .map_err(|e| format!("cannot add message {k} to a Publish frame: {e}"))?;
                body_bytes += body.len();
                self.outstanding.insert(id, 1);
                self.expected.push(Expected {
                    body,
                    amqp_index,
                    tag: "simple",
                    sub_entry: None,
                    publishing_id: id,
                });
            }
            w.finish(&mut out).map_err(|e| e.to_string())?;
            let len = out.len() - at;
            largest = largest.max(len);
            self.check_frame_size(len)?;
            frames += 1;
            i = end;
        }
        let start = Instant::now();
        self.conn.write_raw(&out)?;
        let sent = start.elapsed();
        self.summary.publish_frames += frames;
        self.summary.publishing_ids_sent += n;
        self.summary.messages_published += n;
        self.summary.simple_messages = n;
        let raw = self.opts.raw_messages();
        self.say(format!(
            "→ Publish              {n} messages ({} AMQP 1.0, {raw} raw) in {frames} frames, ids {first_id}..={}, {} of bodies, largest frame {} bytes, written in {} µs",
            n - raw,
            first_id + n - 1,
            human_bytes(body_bytes as u64),
            largest,
            sent.as_micros()
        ));
        let confirms_before = self.confirm_frames;
        self.pump("PublishConfirm", |s| s.outstanding.is_empty())?;
        let took = start.elapsed();
        self.summary.publish_micros += took.as_micros() as u64;
        self.say(format!(
            "← PublishConfirm       all {n} ids confirmed, in {} frames, {:.1} ms after the first byte: {:.0} msg/s, {}/s",
            self.confirm_frames - confirms_before,
            took.as_secs_f64() * 1000.0,
            n as f64 / took.as_secs_f64(),
            human_bytes((body_bytes as f64 / took.as_secs_f64()) as u64)
        ));
        Ok(())
    }

    fn check_frame_size(&self, len_with_prefix: usize) -> Result<(), String> {
        let max = self.summary.frame_max as usize;
        if max != 0 && len_with_prefix > max {
            return Err(format!(
                "a Publish frame of {len_with_prefix} bytes exceeds the negotiated frame_max {max}; lower the batch size"
            ));
        }
        Ok(())
    }

    fn subscribe(&mut self) -> Result<(), String> {
        self.say(format!(
            "→ Subscribe            id {}, offset first, credit {}",
            self.subscription_id, self.opts.initial_credit
        ));
        let start = Instant::now();
        let correlation_id = self.conn.next_corr();
        let resp = self.conn.call(Frame::Subscribe(Subscribe {
            correlation_id,
            subscription_id: self.subscription_id,
            stream: self.summary.stream.clone(),
            offset_spec: OffsetSpec::First,
            credit: self.opts.initial_credit,
            properties: Vec::new(),
        }))?;
        let Frame::SubscribeResponse(r) = resp else {
            return Err(unexpected("Subscribe", &resp));
        };
        check_ok("Subscribe", r.code)?;
        self.subscribed = true;
        self.say("← Subscribe            OK".into());
        let target = self.opts.messages;
        self.phase_target = target;
        self.pump("Deliver", |s| s.next_offset >= target)?;
        let took = start.elapsed();
        self.summary.consume_micros += took.as_micros() as u64;
        self.say(format!(
            "  consumed offsets 0..={} in {} chunks, {:.1} ms: {:.0} msg/s, every body and offset checked",
            target - 1,
            self.summary.chunks,
            took.as_secs_f64() * 1000.0,
            target as f64 / took.as_secs_f64()
        ));
        Ok(())
    }

    /// Publishes one sub-entry batch per codec while subscribed; waits until every batch is
    /// confirmed and delivered.
    fn publish_sub_entries_live(&mut self) -> Result<(), String> {
        if self.opts.sub_entry_codecs.is_empty() {
            return Ok(());
        }
        let start = Instant::now();
        let mut out = BytesMut::new();
        let mut scratch = BytesMut::new();
        let codecs = self.opts.sub_entry_codecs.clone();
        let mut lines = Vec::new();
        for codec in codecs {
            let tag = tag_of(codec);
            let id = self.next_publishing_id();
            let first_offset = self.expected.len() as u64;
            let mut bodies = Vec::new();
            for k in 0..u64::from(self.opts.sub_entry_records) {
                bodies.push(amqp_body(first_offset + k, tag)?);
            }
            scratch.clear();
            let info = encode_sub_entry(codec, &bodies, &mut scratch)
                .map_err(|e| format!("cannot build a {} sub-entry: {e}", codec.name()))?;
            let (sub, used) = SubEntry::parse(&scratch)
                .map_err(|e| format!("cannot re-read the {} sub-entry: {e}", codec.name()))?;
            if used != scratch.len() || sub.num_records != info.num_records {
                return Err(format!("{} sub-entry re-read inconsistently", codec.name()));
            }
            let at = out.len();
            let mut w = PublishFrameWriter::begin(&mut out, self.publisher_id, PublishVersion::V1);
            w.push_sub_entry(
                &mut out,
                id,
                codec.code(),
                sub.num_records,
                sub.uncompressed_size,
                sub.data,
            )
            .map_err(|e| format!("cannot add the {} sub-entry: {e}", codec.name()))?;
            w.finish(&mut out).map_err(|e| e.to_string())?;
            self.check_frame_size(out.len() - at)?;
            self.summary.publish_frames += 1;
            self.summary.publishing_ids_sent += 1;
            self.summary.messages_published += bodies.len() as u64;
            self.outstanding.insert(id, bodies.len() as u64);
            lines.push(format!(
                "→ Publish              sub-entry id {id}: {} records, {:<6} {:>6} → {:>6} bytes, offsets {}..={}",
                sub.num_records,
                codec.name(),
                sub.uncompressed_size,
                sub.data.len(),
                first_offset,
                first_offset + bodies.len() as u64 - 1
            ));
            for body in bodies {
                self.expected.push(Expected {
                    body,
                    amqp_index: Some(self.expected.len() as u64),
                    tag,
                    sub_entry: Some(codec),
                    publishing_id: id,
                });
            }
        }
        self.conn.write_raw(&out)?;
        for l in lines {
            self.say(l);
        }
        let target = self.expected.len() as u64;
        self.phase_target = target;
        self.pump("PublishConfirm and Deliver of the sub-entry batches", |s| {
            s.outstanding.is_empty() && s.next_offset >= target
        })?;
        let took = start.elapsed();
        self.say(format!(
            "  sub-entry batches confirmed and consumed live (offsets {}..={}), {:.1} ms after the write",
            self.opts.messages,
            target - 1,
            took.as_secs_f64() * 1000.0
        ));
        Ok(())
    }

    /// Handles asynchronous frames until `done`.
    fn pump(&mut self, waiting_for: &str, done: impl Fn(&Self) -> bool) -> Result<(), String> {
        while !done(self) {
            let f = self.conn.next_event(waiting_for)?;
            self.on_event(f)?;
        }
        Ok(())
    }

    fn on_event(&mut self, f: Frame) -> Result<(), String> {
        match f {
            Frame::PublishConfirm(c) => self.on_confirm(c),
            Frame::PublishError(e) => Err(publish_error(&e)),
            Frame::Deliver(d) => self.on_deliver(d),
            Frame::MetadataUpdate(m) => Err(format!(
                "MetadataUpdate: stream {:?} became unavailable ({})",
                m.stream, m.code
            )),
            Frame::CreditResponse(r) => Err(format!(
                "Credit for subscription {} refused: {}",
                r.subscription_id, r.code
            )),
            Frame::Close(c) => Err(self.conn.broker_closed(&c)),
            other => Err(format!("unexpected {}", describe(&other))),
        }
    }

    fn on_confirm(&mut self, c: PublishConfirm) -> Result<(), String> {
        if c.publisher_id != self.publisher_id {
            return Err(format!(
                "PublishConfirm for publisher {}, ours is {}",
                c.publisher_id, self.publisher_id
            ));
        }
        self.confirm_frames += 1;
        for id in c.publishing_ids {
            match self.outstanding.remove(&id) {
                Some(records) => {
                    self.confirmed.insert(id);
                    self.summary.publishing_ids_confirmed += 1;
                    self.summary.messages_confirmed += records;
                }
                None if self.confirmed.contains(&id) => {
                    return Err(format!("publishing id {id} confirmed twice"));
                }
                None => return Err(format!("confirm for publishing id {id}, never sent")),
            }
        }
        Ok(())
    }

    fn on_deliver(&mut self, d: Deliver) -> Result<(), String> {
        if !self.subscribed || d.subscription_id != self.subscription_id {
            return Err(format!(
                "Deliver for subscription {} (ours: {}, subscribed: {})",
                d.subscription_id, self.subscription_id, self.subscribed
            ));
        }
        let version = d.version();
        if version != self.expected_deliver_version {
            return Err(format!(
                "Deliver v{version} received, v{} expected (broker {})",
                self.expected_deliver_version, self.summary.broker_version
            ));
        }
        self.summary.deliver_version = version;
        let size = d.chunk.len();
        let chunk = Chunk::parse(d.chunk)
            .map_err(|e| format!("Deliver at offset {}: bad chunk: {e}", self.next_offset))?;
        let h = *chunk.header();
        chunk
            .verify_crc()
            .map_err(|e| format!("chunk {}: {e}", h.chunk_id))?;
        self.summary.chunks_crc_checked += 1;
        if h.chunk_type != ChunkType::User {
            return Err(format!(
                "chunk {} has type {:?}; only user chunks were asked for",
                h.chunk_id, h.chunk_type
            ));
        }
        if h.chunk_id != self.next_offset {
            return Err(format!(
                "chunk starts at offset {}, expected {} (gap or overlap)",
                h.chunk_id, self.next_offset
            ));
        }
        if let Some(c) = d.committed_chunk_id {
            self.summary.committed_chunk_ids += 1;
            if c < h.chunk_id {
                return Err(format!(
                    "committed chunk id {c} lies before the delivered chunk {}",
                    h.chunk_id
                ));
            }
        }
        let mut stats = RecordStats::default();
        let mut failure = None;
        let expected = &self.expected;
        let visited = self
            .decoder
            .visit_records_from(&chunk, 0, |rec| match check_record(&rec, expected) {
                Ok(amqp) => {
                    stats.add(&rec, amqp);
                    ControlFlow::Continue(())
                }
                Err(e) => {
                    failure = Some(e);
                    ControlFlow::Break(())
                }
            })
            .map_err(|e| format!("chunk {}: cannot iterate its records: {e}", h.chunk_id))?;
        if let Some(e) = failure {
            return Err(e);
        }
        if visited != u64::from(h.num_records) {
            return Err(format!(
                "chunk {} yielded {visited} records, its header says {}",
                h.chunk_id, h.num_records
            ));
        }
        let batches = chunk
            .entries()
            .filter(|e| matches!(e, Ok(e) if matches!(e.kind, EntryKind::SubEntry(_))))
            .count() as u64;
        self.summary.chunks += 1;
        self.summary.messages_consumed += visited;
        self.summary.bodies_matched += visited;
        self.summary.amqp_decoded += stats.amqp;
        self.summary.raw_bodies += stats.raw;
        self.summary.sub_entry_records += stats.sub_entry;
        self.summary.sub_entry_batches += batches;
        self.summary.first_offset.get_or_insert(h.chunk_id);
        if h.num_records > 0 {
            self.summary.last_offset = Some(h.next_offset() - 1);
        }
        self.next_offset = h.next_offset();

        self.conn.send(&Frame::Credit(Credit {
            subscription_id: self.subscription_id,
            credit: 1,
        }))?;
        self.summary.credits_sent += 1;

        let n = self.summary.chunks;
        if n <= 4 || batches > 0 || self.next_offset == self.phase_target {
            let committed = match d.committed_chunk_id {
                Some(c) => format!(", committed {c}"),
                None => String::new(),
            };
            let codecs = if stats.codecs.is_empty() {
                String::new()
            } else {
                format!(
                    ", {batches} sub-entry batch(es): {}",
                    stats.codecs.join("+")
                )
            };
            self.say(format!(
                "← Deliver chunk #{n} (v{version}): offsets {}..={} ({} records, {} entries, {size} bytes{codecs}), CRC ok{committed} → Credit 1",
                h.chunk_id,
                h.next_offset().saturating_sub(1),
                h.num_records,
                h.num_entries
            ));
        } else if n == 5 {
            self.say("  … (further chunks of this phase are checked silently)".into());
        }
        Ok(())
    }

    fn unsubscribe(&mut self) -> Result<(), String> {
        self.say(format!(
            "→ Unsubscribe          id {}",
            self.subscription_id
        ));
        let correlation_id = self.conn.next_corr();
        let resp = self.conn.call(Frame::Unsubscribe(Unsubscribe {
            correlation_id,
            subscription_id: self.subscription_id,
        }))?;
        let Frame::UnsubscribeResponse(r) = resp else {
            return Err(unexpected("Unsubscribe", &resp));
        };
        check_ok("Unsubscribe", r.code)?;
        self.subscribed = false;
        self.say("← Unsubscribe          OK".into());
        Ok(())
    }

    fn delete_publisher(&mut self) -> Result<(), String> {
        self.say(format!("→ DeletePublisher      id {}", self.publisher_id));
        let correlation_id = self.conn.next_corr();
        let resp = self.conn.call(Frame::DeletePublisher(DeletePublisher {
            correlation_id,
            publisher_id: self.publisher_id,
        }))?;
        let Frame::DeletePublisherResponse(r) = resp else {
            return Err(unexpected("DeletePublisher", &resp));
        };
        check_ok("DeletePublisher", r.code)?;
        self.say("← DeletePublisher      OK".into());
        Ok(())
    }

    fn delete_stream(&mut self) -> Result<(), String> {
        self.say(format!(
            "→ Delete               stream {:?}",
            self.summary.stream
        ));
        let correlation_id = self.conn.next_corr();
        let resp = self.conn.call(Frame::DeleteStream(DeleteStream {
            correlation_id,
            stream: self.summary.stream.clone(),
        }))?;
        let Frame::DeleteStreamResponse(r) = resp else {
            return Err(unexpected("Delete", &resp));
        };
        check_ok("Delete", r.code)?;
        self.stream_created = false;
        self.say("← Delete               OK".into());
        Ok(())
    }

    fn close(&mut self) -> Result<(), String> {
        self.say("→ Close                code 1 (OK), reason \"raw session done\"".into());
        let correlation_id = self.conn.next_corr();
        let resp = self.conn.call(Frame::Close(Close {
            correlation_id,
            code: ResponseCode::OK,
            reason: "raw session done".into(),
        }))?;
        let Frame::CloseResponse(r) = resp else {
            return Err(unexpected("Close", &resp));
        };
        check_ok("Close", r.code)?;
        self.say("← CloseResponse        OK".into());
        Ok(())
    }

    fn finish(&mut self) -> Result<Summary, String> {
        if let Some(f) = self.conn.backlog.pop_front() {
            return Err(format!("unhandled frame left over: {}", describe(&f)));
        }
        let s = &mut self.summary;
        s.heartbeats = self.conn.heartbeats;
        s.bytes_sent = self.conn.bytes_sent;
        s.bytes_received = self.conn.bytes_received;
        s.total_micros = self.t0.elapsed().as_micros() as u64;
        let o = &self.opts;
        let total = o.total_messages();
        let checks = [
            ("messages published", s.messages_published, total),
            (
                "publishing ids sent",
                s.publishing_ids_sent,
                o.publishing_ids(),
            ),
            (
                "publishing ids confirmed",
                s.publishing_ids_confirmed,
                o.publishing_ids(),
            ),
            ("messages confirmed", s.messages_confirmed, total),
            ("messages consumed", s.messages_consumed, total),
            ("bodies matched", s.bodies_matched, total),
            (
                "AMQP messages decoded",
                s.amqp_decoded,
                total - o.raw_messages(),
            ),
            ("raw bodies", s.raw_bodies, o.raw_messages()),
            (
                "sub-entry records",
                s.sub_entry_records,
                o.sub_entry_messages(),
            ),
            (
                "sub-entry batches",
                s.sub_entry_batches,
                o.sub_entry_codecs.len() as u64,
            ),
            ("chunks CRC-checked", s.chunks_crc_checked, s.chunks),
            ("credits sent", s.credits_sent, s.chunks),
        ];
        for (what, got, want) in checks {
            if got != want {
                return Err(format!("{what}: {got}, expected {want}"));
            }
        }
        let confirmed_ids: Vec<u64> = self.confirmed.iter().copied().collect();
        let sent_ids: Vec<u64> = (1..=o.publishing_ids()).collect();
        if confirmed_ids != sent_ids {
            return Err("the set of confirmed ids differs from the ids sent".into());
        }
        if s.first_offset != Some(0) || s.last_offset != Some(total - 1) {
            return Err(format!(
                "offsets {:?}..={:?}, expected 0..={}",
                s.first_offset,
                s.last_offset,
                total - 1
            ));
        }
        if s.deliver_version == 2 && s.committed_chunk_ids != s.chunks {
            return Err(format!(
                "{} of {} Deliver v2 frames carried a committed chunk id",
                s.committed_chunk_ids, s.chunks
            ));
        }
        Ok(s.clone())
    }
}

/// The commands this session sends or receives, advertised in ExchangeCommandVersions.
const SESSION_COMMANDS: [u16; 16] = [
    key::DECLARE_PUBLISHER,
    key::PUBLISH,
    key::PUBLISH_CONFIRM,
    key::PUBLISH_ERROR,
    key::QUERY_PUBLISHER_SEQUENCE,
    key::DELETE_PUBLISHER,
    key::SUBSCRIBE,
    key::DELIVER,
    key::CREDIT,
    key::UNSUBSCRIBE,
    key::CREATE,
    key::DELETE,
    key::METADATA_UPDATE,
    key::CLOSE,
    key::HEARTBEAT,
    key::EXCHANGE_COMMAND_VERSIONS,
];

const CLIENT_FRAME_MAX: u32 = 1024 * 1024;
const CLIENT_HEARTBEAT: u32 = 60;

/// Pads the command name of a `→ Name detail` / `← Name detail` line to a fixed column.
fn align(msg: &str) -> String {
    for arrow in ["→ ", "← "] {
        if let Some(rest) = msg.strip_prefix(arrow) {
            let (cmd, detail) = rest.split_once(' ').unwrap_or((rest, ""));
            return format!("{arrow}{cmd:<23} {}", detail.trim_start())
                .trim_end()
                .to_string();
        }
    }
    msg.to_string()
}

/// The smaller of two tuning values, 0 meaning "no limit".
fn negotiate(server: u32, client: u32) -> u32 {
    match (server, client) {
        (0, c) => c,
        (s, 0) => s,
        (s, c) => s.min(c),
    }
}

#[derive(Default)]
struct RecordStats {
    amqp: u64,
    raw: u64,
    sub_entry: u64,
    codecs: Vec<&'static str>,
}

impl RecordStats {
    fn add(&mut self, rec: &Record<'_>, amqp: bool) {
        if amqp {
            self.amqp += 1;
        } else {
            self.raw += 1;
        }
        if rec.in_sub_entry {
            self.sub_entry += 1;
            let name = rec.compression.name();
            if !self.codecs.contains(&name) {
                self.codecs.push(name);
            }
        }
    }
}

/// Checks one delivered record against what was published at its offset; returns whether it
/// was decoded as AMQP.
fn check_record(rec: &Record<'_>, expected: &[Expected]) -> Result<bool, String> {
    let o = rec.offset;
    let exp = usize::try_from(o)
        .ok()
        .and_then(|i| expected.get(i))
        .ok_or_else(|| {
            format!(
                "record at offset {o}, but only {} were published",
                expected.len()
            )
        })?;
    if rec.body != &exp.body[..] {
        return Err(format!(
            "offset {o} (publishing id {}): body differs from the message published there: {} bytes {} vs {} bytes {}",
            exp.publishing_id,
            rec.body.len(),
            hex_prefix(rec.body, 24),
            exp.body.len(),
            hex_prefix(&exp.body, 24)
        ));
    }
    match exp.sub_entry {
        Some(c) if !rec.in_sub_entry || rec.compression != c => {
            return Err(format!(
                "offset {o}: published in a {} sub-entry, delivered as {} (sub-entry: {})",
                c.name(),
                rec.compression.name(),
                rec.in_sub_entry
            ));
        }
        None if rec.in_sub_entry => {
            return Err(format!(
                "offset {o}: published alone, delivered in a sub-entry"
            ));
        }
        _ => {}
    }
    match exp.amqp_index {
        Some(i) => {
            check_amqp(rec.body, i, exp.tag).map_err(|e| format!("offset {o}: {e}"))?;
            Ok(true)
        }
        None => {
            if MessageView::parse(rec.body).is_ok() {
                return Err(format!("offset {o}: raw bytes parse as an AMQP message"));
            }
            Ok(false)
        }
    }
}

// ------------------------------------------------------------------------------------------
// AMQP 1.0 bodies (rmqstream::protocol::amqp).

fn payload(i: u64, tag: &str) -> String {
    format!("message #{i} ({tag}) {}", "·".repeat((i % 23) as usize))
}

/// Message `i`: a data section, properties (message-id, content-type, creation-time) and
/// application properties (index, tag, even).
fn amqp_body(i: u64, tag: &'static str) -> Result<Bytes, String> {
    Message::new(payload(i, tag).into_bytes())
        .properties(Properties {
            message_id: Some(Value::Ulong(i)),
            content_type: Some("text/plain".into()),
            creation_time: Some(1_700_000_000_000 + i as i64),
            ..Properties::default()
        })
        .application_property("index", Value::Ulong(i))
        .application_property("tag", tag)
        .application_property("even", i % 2 == 0)
        .to_bytes()
        .map_err(|e| format!("cannot encode AMQP message {i}: {e}"))
}

/// Decodes a delivered body with [`MessageView`] and checks every field [`amqp_body`] wrote.
fn check_amqp(body: &[u8], i: u64, tag: &str) -> Result<(), String> {
    let view = MessageView::parse(body).map_err(|e| format!("not an AMQP message: {e}"))?;
    let data = view
        .body_bytes()
        .ok_or("AMQP message without a single data section")?;
    if data != payload(i, tag).as_bytes() {
        return Err(format!(
            "data section {:?}, expected {:?}",
            String::from_utf8_lossy(data),
            payload(i, tag)
        ));
    }
    let props = view
        .properties()
        .map_err(|e| format!("bad properties: {e}"))?
        .ok_or("no properties section")?;
    if props.message_id != Some(Value::Ulong(i)) {
        return Err(format!("message-id {:?}, expected {i}", props.message_id));
    }
    if props.content_type.as_deref() != Some("text/plain") {
        return Err(format!("content-type {:?}", props.content_type));
    }
    let app = view
        .application_properties()
        .ok_or("no application properties")?;
    let index = app.get("index").and_then(|v| v.as_u64());
    let got_tag = app.get("tag");
    let even = app.get("even").and_then(|v| v.as_bool());
    if index != Some(i)
        || got_tag.as_ref().and_then(|v| v.as_str()) != Some(tag)
        || even != Some(i % 2 == 0)
    {
        return Err(format!(
            "application properties index={index:?} tag={got_tag:?} even={even:?}, expected {i}, {tag:?}, {}",
            i % 2 == 0
        ));
    }
    Ok(())
}

// ------------------------------------------------------------------------------------------
// Helpers.

fn check_ok(what: &str, code: ResponseCode) -> Result<(), String> {
    if code.is_ok() {
        Ok(())
    } else {
        Err(format!("{what} refused by the broker: {code}"))
    }
}

fn name_of(f: &Frame) -> String {
    let k = f.key();
    let base = key_name(k & !0x8000).unwrap_or("unknown command");
    if f.is_response() {
        format!("{base} response")
    } else {
        base.to_string()
    }
}

fn describe(f: &Frame) -> String {
    let s = format!("{f:?}");
    let s = match s.char_indices().nth(160) {
        Some((cut, _)) => format!("{}…", &s[..cut]),
        None => s,
    };
    format!(
        "{} frame (key 0x{:04x} v{}): {s}",
        name_of(f),
        f.key(),
        f.version()
    )
}

fn unexpected(waiting_for: &str, f: &Frame) -> String {
    format!("expected the {waiting_for} response, got {}", describe(f))
}

fn publish_error(e: &PublishError) -> String {
    let first: Vec<String> = e
        .errors
        .iter()
        .take(5)
        .map(|x| format!("id {}: {}", x.publishing_id, x.code))
        .collect();
    format!(
        "PublishError for publisher {}: {} ids refused ({})",
        e.publisher_id,
        e.errors.len(),
        first.join("; ")
    )
}

fn hex_prefix(b: &[u8], n: usize) -> String {
    let mut s: String = b.iter().take(n).map(|x| format!("{x:02x}")).collect();
    if b.len() > n {
        s.push('…');
    }
    s
}

/// `1.2 KiB`-style sizes.
pub fn human_bytes(n: u64) -> String {
    if n < 1024 {
        format!("{n} B")
    } else if n < 1024 * 1024 {
        format!("{:.1} KiB", n as f64 / 1024.0)
    } else {
        format!("{:.1} MiB", n as f64 / (1024.0 * 1024.0))
    }
}
