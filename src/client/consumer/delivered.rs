//! One delivered chunk as the application sees it: a zero-copy view over the Deliver frame's
//! bytes with the records before the requested offset hidden, allocation-free iteration, and
//! random access through a per-chunk index built on first use.

use std::fmt;
use std::iter::FusedIterator;
use std::sync::OnceLock;

use bytes::Bytes;

use super::credit::Release;
use crate::protocol::DecodeError;
use crate::protocol::amqp::MessageView;
use crate::protocol::chunk::{
    Chunk, ChunkHeader, ChunkType, DecodeLimits, DecodedChunk, Entries, EntryKind, SubRecords,
};
use crate::protocol::compression::Compression;

/// One record (message) of a [`DeliveredChunk`], borrowed from it.
///
/// `body` is the record exactly as stored in the stream: usually an AMQP 1.0 encoded message
/// (what every official client publishes), sometimes raw bytes. [`ConsumerRecord::amqp`] and
/// [`ConsumerRecord::amqp_body`] decode the AMQP envelope on demand, without allocating.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsumerRecord<'a> {
    /// The record's offset in the stream.
    pub offset: u64,
    /// The chunk's timestamp (ms since the epoch, the broker's clock when it wrote the chunk);
    /// records carry no timestamp of their own.
    pub timestamp: i64,
    /// The raw record bytes.
    pub body: &'a [u8],
}

impl<'a> ConsumerRecord<'a> {
    /// The record parsed as an AMQP 1.0 message (validated, nothing allocated; sections are
    /// decoded lazily by the view's accessors: `properties()`, `application_properties()`,
    /// `message_annotations()`, `body()`...). `None` when the record is not a well-formed
    /// AMQP message, e.g. raw bytes from a non-AMQP publisher. Parses on every call.
    pub fn amqp(&self) -> Option<MessageView<'a>> {
        MessageView::parse(self.body).ok()
    }

    /// The application payload: the content of the single AMQP `data` section (or of an
    /// `amqp-value` holding a binary or string) when the record is such an AMQP message, else
    /// the raw record bytes. Never allocates.
    pub fn amqp_body(&self) -> &'a [u8] {
        MessageView::body_of(self.body).unwrap_or(self.body)
    }
}

/// One chunk delivered to a consumer (one Deliver frame).
///
/// A zero-copy view: the header is parsed in place and bodies borrow the frame's [`Bytes`]
/// (or, for compressed sub-entry batches, the one per-chunk buffer they were decompressed into
/// when the chunk arrived). Records with an offset below the offset the consumer asked for
/// (`OffsetSpec::Offset(n)`: the broker starts at the chunk that *contains* `n`) are hidden,
/// and so are those the consumer's post-filter rejected: [`len`](Self::len),
/// [`get`](Self::get) and [`records`](Self::records) see only the rest, with their own
/// offsets (hidden records keep theirs; nothing is renumbered).
///
/// * [`records`](Self::records) iterates without allocating.
/// * [`get`](Self::get) gives random access by position; the first call builds an index of the
///   chunk (one allocation per chunk; none more afterwards).
///
/// The chunk was validated before delivery (framing, record counts, decompression, and the
/// CRC when the consumer checks it), so iteration yields exactly [`len`](Self::len) records.
///
/// **Release**: dropping the chunk, or [`release`](Self::release), hands it back, exactly once:
/// it then counts as processed for offset tracking, and with `CreditPolicy::OnRelease` (the
/// default) the broker gets one more chunk of credit, so the chunks the application holds
/// bound the consumer's memory.
///
/// **Threads**: `Send + Sync`; it may be moved to and read from any thread, and released from
/// any thread (releasing never blocks).
pub struct DeliveredChunk {
    pub(super) chunk: Chunk,
    pub(super) committed_chunk_id: Option<u64>,
    pub(super) stream: std::sync::Arc<str>,
    /// Records hidden at the start (before the requested offset).
    pub(super) skip: u32,
    /// With a post-filter that rejected some records: the positions (0 = first record after
    /// the `skip` ones) of those kept, ascending. `None`: all kept.
    pub(super) kept: Option<Box<[u32]>>,
    /// Index (and decompressed records): set when the chunk arrived if it holds compressed
    /// sub-entries, else on the first `get`. `None` inside if indexing failed (it cannot for a
    /// validated chunk).
    pub(super) decoded: OnceLock<Option<DecodedChunk>>,
    pub(super) release: Option<Release>,
}

impl fmt::Debug for DeliveredChunk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeliveredChunk")
            .field("stream", &self.stream)
            .field("chunk_id", &self.chunk_id())
            .field("records", &self.len())
            .field("skipped", &self.skip)
            .field("filtered_out", &self.filtered_out())
            .field("committed_chunk_id", &self.committed_chunk_id)
            .field("credit_pending", &self.release.is_some())
            .finish()
    }
}

impl DeliveredChunk {
    /// The stream the chunk came from.
    pub fn stream(&self) -> &str {
        &self.stream
    }

    /// The parsed chunk: header fields and the raw data section.
    pub fn chunk(&self) -> &Chunk {
        &self.chunk
    }

    /// Every field of the chunk header (SPEC §2 F).
    pub fn header(&self) -> &ChunkHeader {
        self.chunk.header()
    }

    /// The chunk id: offset of the chunk's first record (hidden ones included).
    pub fn chunk_id(&self) -> u64 {
        self.chunk.chunk_id()
    }

    /// The chunk's timestamp (ms since the epoch).
    pub fn timestamp(&self) -> i64 {
        self.chunk.header().timestamp
    }

    /// Id of the last chunk committed by a quorum when this one was sent (Deliver v2, RabbitMQ
    /// 3.11+); `None` from older brokers (Deliver v1).
    pub fn committed_chunk_id(&self) -> Option<u64> {
        self.committed_chunk_id
    }

    /// Number of visible records (those at or after the requested offset that the post-filter
    /// kept). Never 0 for a chunk handed to the application.
    pub fn len(&self) -> usize {
        match &self.kept {
            Some(k) => k.len(),
            None => self.unfiltered_len(),
        }
    }

    /// Records at or after the requested offset, before post-filtering.
    fn unfiltered_len(&self) -> usize {
        (self.chunk.header().num_records - self.skip) as usize
    }

    /// Whether no record is visible (never the case for a delivered chunk).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many leading records of the chunk are hidden because they precede the requested
    /// offset (non-zero only for the first chunk after subscribing at `Offset(n)`).
    pub fn skipped(&self) -> usize {
        self.skip as usize
    }

    /// How many records at or after the requested offset the consumer's post-filter hid.
    pub fn filtered_out(&self) -> usize {
        self.kept
            .as_ref()
            .map_or(0, |k| self.unfiltered_len() - k.len())
    }

    /// Offset of the first visible record.
    pub fn first_offset(&self) -> u64 {
        let first = self.kept.as_ref().and_then(|k| k.first()).copied();
        self.chunk_id() + u64::from(self.skip) + u64::from(first.unwrap_or(0))
    }

    /// Offset of the chunk's last record, visible or not (what the chunk counts for in offset
    /// tracking once processed).
    pub fn last_offset(&self) -> u64 {
        self.chunk.header().next_offset().saturating_sub(1)
    }

    /// The visible record at position `i` (0 = [`first_offset`](Self::first_offset)), or
    /// `None` past the end. The first call builds the chunk's record index (one allocation);
    /// later calls are O(1) and allocation-free. Callable from several threads at once.
    pub fn get(&self, i: usize) -> Option<ConsumerRecord<'_>> {
        if i >= self.len() {
            return None;
        }
        let decoded = self
            .decoded
            .get_or_init(|| DecodedChunk::decode(self.chunk.clone(), DecodeLimits::default()).ok())
            .as_ref()?;
        let pos = match &self.kept {
            Some(k) => *k.get(i)? as usize,
            None => i,
        };
        let r = decoded.record(pos + self.skip as usize)?;
        Some(ConsumerRecord {
            offset: r.offset,
            timestamp: r.timestamp,
            body: r.body,
        })
    }

    /// Iterates the visible records in offset order, without allocating.
    pub fn records(&self) -> Records<'_> {
        let timestamp = self.timestamp();
        let remaining = self.len();
        let inner = match self.decoded.get() {
            Some(Some(d)) => Inner::Indexed {
                decoded: d,
                pos: self.skip as usize,
            },
            // Compressed chunks are always indexed on arrival, so walking the entries in
            // place only meets simple entries and uncompressed batches.
            _ => Inner::Walk {
                entries: self.chunk.entries(),
                batch: None,
                min_offset: self.chunk_id() + u64::from(self.skip),
            },
        };
        Records {
            inner,
            remaining,
            timestamp,
            kept: self.kept.as_deref().map(|kept| Kept {
                kept,
                next: 0,
                pos: 0,
            }),
        }
    }

    /// Hands the chunk back now (same as dropping it): it counts as processed for offset
    /// tracking, and with `CreditPolicy::OnRelease` the broker gets one credit. Never blocks.
    pub fn release(self) {
        drop(self);
    }

    /// A chunk parsed from `raw` (the whole chunk, CRC checked) with no credit attached, for
    /// tests of what wraps it (src/ffi/chunk.rs).
    #[cfg(test)]
    pub(crate) fn for_test(raw: Bytes, stream: &str) -> DeliveredChunk {
        let p = prepare(raw, true, 0, DecodeLimits::default())
            .expect("a valid chunk")
            .expect("a user chunk with records");
        Self::new(p, stream.into(), None)
    }

    /// A prepared chunk of `stream`, with no credit attached yet.
    pub(super) fn new(
        p: Prepared,
        stream: std::sync::Arc<str>,
        committed_chunk_id: Option<u64>,
    ) -> Self {
        DeliveredChunk {
            chunk: p.chunk,
            committed_chunk_id,
            stream,
            skip: p.skip,
            kept: None,
            decoded: p
                .decoded
                .map(|d| OnceLock::from(Some(d)))
                .unwrap_or_default(),
            release: None,
        }
    }
}

impl<'a> IntoIterator for &'a DeliveredChunk {
    type Item = ConsumerRecord<'a>;
    type IntoIter = Records<'a>;

    fn into_iter(self) -> Records<'a> {
        self.records()
    }
}

/// Iterator over the visible records of a [`DeliveredChunk`] ([`DeliveredChunk::records`]).
/// Allocation-free; exact size.
#[derive(Debug, Clone)]
pub struct Records<'a> {
    inner: Inner<'a>,
    remaining: usize,
    timestamp: i64,
    /// The post-filter's verdict, when it rejected some.
    kept: Option<Kept<'a>>,
}

/// Walks the positions a post-filter kept alongside the records.
#[derive(Debug, Clone)]
struct Kept<'a> {
    kept: &'a [u32],
    /// Index in `kept` of the next position to yield.
    next: usize,
    /// Position of the next record the inner iterator yields.
    pos: u32,
}

#[derive(Debug, Clone)]
enum Inner<'a> {
    /// Through the chunk's index (compressed chunks, or after `get`).
    Indexed {
        decoded: &'a DecodedChunk,
        pos: usize,
    },
    /// Straight over the data section.
    Walk {
        entries: Entries<'a>,
        /// An uncompressed sub-entry batch being walked, and the offset of its next record.
        batch: Option<(SubRecords<'a>, u64)>,
        min_offset: u64,
    },
}

impl<'a> Records<'a> {
    fn record(&self, offset: u64, body: &'a [u8]) -> ConsumerRecord<'a> {
        ConsumerRecord {
            offset,
            timestamp: self.timestamp,
            body,
        }
    }

    fn next_walk(&mut self) -> Option<ConsumerRecord<'a>> {
        let Inner::Walk {
            entries,
            batch,
            min_offset,
        } = &mut self.inner
        else {
            return None;
        };
        let min_offset = *min_offset;
        loop {
            if let Some((recs, offset)) = batch {
                match recs.next() {
                    Some(Ok(body)) => {
                        let o = *offset;
                        *offset += 1;
                        if o >= min_offset {
                            return Some(ConsumerRecord {
                                offset: o,
                                timestamp: self.timestamp,
                                body,
                            });
                        }
                        continue;
                    }
                    // Validated on arrival: an error cannot happen; end cleanly if it does.
                    Some(Err(_)) => return None,
                    None => *batch = None,
                }
            }
            let entry = entries.next()?.ok()?;
            match entry.kind {
                EntryKind::Simple(body) if entry.first_offset >= min_offset => {
                    return Some(ConsumerRecord {
                        offset: entry.first_offset,
                        timestamp: self.timestamp,
                        body,
                    });
                }
                EntryKind::Simple(_) => {}
                EntryKind::SubEntry(sub) => {
                    let end = entry.first_offset + u64::from(sub.num_records);
                    if sub.compression != Compression::None {
                        // Unreachable: such chunks are indexed on arrival.
                        return None;
                    }
                    if end > min_offset {
                        *batch = Some((
                            SubRecords::new(sub.data, sub.num_records),
                            entry.first_offset,
                        ));
                    }
                }
            }
        }
    }
}

impl<'a> Iterator for Records<'a> {
    type Item = ConsumerRecord<'a>;

    fn next(&mut self) -> Option<ConsumerRecord<'a>> {
        if self.remaining == 0 {
            return None;
        }
        loop {
            let next = match &mut self.inner {
                Inner::Indexed { decoded, pos } => {
                    let r = decoded.record(*pos);
                    *pos += 1;
                    r.map(|r| self.record(r.offset, r.body))
                }
                Inner::Walk { .. } => self.next_walk(),
            };
            let Some(r) = next else {
                self.remaining = 0;
                return None;
            };
            if let Some(k) = &mut self.kept {
                let pos = k.pos;
                k.pos += 1;
                if k.kept.get(k.next) != Some(&pos) {
                    continue;
                }
                k.next += 1;
            }
            self.remaining -= 1;
            return Some(r);
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl ExactSizeIterator for Records<'_> {}
impl FusedIterator for Records<'_> {}

/// What the reader task makes of a Deliver's chunk before anything reaches the application.
#[derive(Debug)]
pub(super) struct Prepared {
    pub(super) chunk: Chunk,
    pub(super) skip: u32,
    /// Set when the chunk holds compressed sub-entries: decompressed and indexed on arrival.
    pub(super) decoded: Option<DecodedChunk>,
}

/// Parses, checks and validates one chunk as carried by Deliver.
///
/// * `Ok(None)`: nothing for the application — every record precedes `min_offset`, the chunk
///   is empty, or it is not a user chunk (tracking chunks only come with
///   `chunk_selector=all`; their entries are not messages).
/// * `Err`: undecodable, or the CRC does not match when `crc_check` is on.
///
/// Costs, all on the caller's task: the header parse (in place), the CRC when asked, one walk
/// over the entries (framing and record counts), and for chunks with compressed sub-entries
/// their decompression into one per-chunk buffer plus the record index.
pub(super) fn prepare(
    raw: Bytes,
    crc_check: bool,
    min_offset: u64,
    limits: DecodeLimits,
) -> Result<Option<Prepared>, DecodeError> {
    let chunk = Chunk::parse(raw)?;
    let header = chunk.header();
    if header.chunk_type != ChunkType::User {
        return Ok(None);
    }
    let records = header.num_records;
    let skip = min_offset
        .saturating_sub(header.chunk_id)
        .min(u64::from(records)) as u32;
    // Checked even for a chunk that will be skipped: a corrupt chunk is worth reporting.
    if crc_check {
        chunk.verify_crc()?;
    }
    if skip == records {
        return Ok(None);
    }
    let compressed = validate(&chunk)?;
    let decoded = if compressed {
        Some(DecodedChunk::decode(chunk.clone(), limits)?)
    } else {
        None
    };
    Ok(Some(Prepared {
        chunk,
        skip,
        decoded,
    }))
}

/// Walks the entries once, checking their framing, the record counts and the records of
/// uncompressed batches. Returns whether a compressed batch was seen (those are checked by
/// decompressing them).
fn validate(chunk: &Chunk) -> Result<bool, DecodeError> {
    let mut compressed = false;
    for entry in chunk.entries() {
        if let EntryKind::SubEntry(sub) = entry?.kind {
            if sub.compression != Compression::None {
                compressed = true;
                continue;
            }
            if sub.data.len() != sub.uncompressed_size as usize {
                return Err(DecodeError::InvalidValue(
                    "uncompressed sub-entry size differs from its data size",
                ));
            }
            for r in SubRecords::new(sub.data, sub.num_records) {
                r?;
            }
        }
    }
    Ok(compressed)
}
