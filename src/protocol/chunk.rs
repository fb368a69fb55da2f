//! The Osiris chunk carried by Deliver: a 48-byte header, then exactly `data length` bytes of
//! entries (protocol reference §7.2).
//!
//! ```text
//! byte 0      magic (high nibble, 5) | version (low nibble, 0)     => 0x50
//! byte 1      chunk type: 0 user, 1 tracking delta, 2 tracking snapshot
//! 2..4        num entries   u16   (a sub-entry batch counts as one entry)
//! 4..8        num records   u32   (messages, sub-entry records counted individually)
//! 8..16       timestamp     i64   ms since the epoch
//! 16..24      epoch         u64
//! 24..32      chunk id      u64   offset of the first record
//! 32..36      crc           u32   CRC-32/IEEE of the data section only
//! 36..40      data length   u32
//! 40..44      trailer length u32  (the trailer is NOT sent to stream-protocol consumers)
//! 44          bloom size    u8    (the Bloom filter is NOT sent either)
//! 45..48      reserved
//! ```
//!
//! Entries: simple `0:1 | size:31, body`; sub-entry `1:1 | compression:3 | reserved:4,
//! numRecords u16, uncompressedSize u32, size u32, data` where the (decompressed) data is
//! `numRecords × (u32 size, body)`. Record `i` of the chunk has offset `chunk id + i`.
//!
//! Reading:
//! * [`Chunk::parse`] splits a received chunk (zero-copy, [`Bytes`]); [`Chunk::verify_crc`] is
//!   separate so callers choose whether to pay for it.
//! * [`Chunk::entries`] walks the entries without allocating; [`SubEntry::records`]
//!   decompresses one batch into a caller-owned scratch buffer.
//! * [`ChunkDecoder::for_each_record`] visits every record (offset, timestamp, body) reusing one
//!   scratch buffer across sub-entries and chunks: no allocation per message, and none at all
//!   in steady state for uncompressed chunks.
//! * [`DecodedChunk`] builds a record index once per chunk for random access (`record(i)`), the
//!   shape a C API wants; it also reuses its buffers when decoding the next chunk.
//!
//! Writing: [`ChunkBuilder`] assembles a chunk with a correct CRC (tests, fuzz seeds), and
//! [`encode_sub_entry`] writes a producer's sub-entry batch straight into a [`BytesMut`].

use std::io::Write;
use std::ops::ControlFlow;

use bytes::{BufMut, Bytes, BytesMut};

use super::compression::{self, CompressWriter, Compression, MAX_UNCOMPRESSED_SUB_ENTRY_SIZE};
use super::error::{DecodeError, EncodeError};
use super::wire::Reader;

/// Size of the chunk header.
pub const CHUNK_HEADER_SIZE: usize = 48;
/// The magic number in the high nibble of the first header byte (osiris `?MAGIC`).
pub const CHUNK_MAGIC: u8 = 5;
/// The chunk format version written by current brokers (osiris `?VERSION`).
pub const CHUNK_VERSION: u8 = 0;

const SUB_ENTRY_FLAG: u8 = 0x80;
const SIMPLE_SIZE_MASK: u32 = 0x7fff_ffff;
/// `type byte, numRecords u16, uncompressedSize u32, size u32`.
const SUB_ENTRY_HEADER_SIZE: usize = 11;

/// What a chunk holds. Stream-protocol consumers normally only receive [`ChunkType::User`];
/// tracking chunks (offset/writer tracking) reach them only with `chunk_selector=all`, and their
/// entries are tracking data, not messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChunkType {
    /// Messages (type 0).
    User,
    /// Tracking delta (type 1).
    TrackingDelta,
    /// Tracking snapshot (type 2).
    TrackingSnapshot,
    /// A type this client does not know; kept so a newer broker's chunks can be skipped.
    Other(u8),
}

impl ChunkType {
    /// The type for wire code `code` (never fails: unknown codes give [`ChunkType::Other`]).
    pub const fn from_u8(code: u8) -> ChunkType {
        match code {
            0 => ChunkType::User,
            1 => ChunkType::TrackingDelta,
            2 => ChunkType::TrackingSnapshot,
            other => ChunkType::Other(other),
        }
    }

    /// The wire code.
    pub const fn code(self) -> u8 {
        match self {
            ChunkType::User => 0,
            ChunkType::TrackingDelta => 1,
            ChunkType::TrackingSnapshot => 2,
            ChunkType::Other(c) => c,
        }
    }
}

/// The 48-byte chunk header, every field decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkHeader {
    /// High nibble of byte 0; always [`CHUNK_MAGIC`] in a parsed header.
    pub magic: u8,
    /// Low nibble of byte 0; 0 today. Any version is accepted (the layout has not changed).
    pub version: u8,
    /// Byte 1.
    pub chunk_type: ChunkType,
    /// Entries in the data section (a sub-entry batch is one entry).
    pub num_entries: u16,
    /// Records (messages) in the chunk, sub-entry records counted individually.
    pub num_records: u32,
    /// Milliseconds since the Unix epoch at which the chunk was written.
    pub timestamp: i64,
    /// Leader epoch.
    pub epoch: u64,
    /// Offset of the first record.
    pub chunk_id: u64,
    /// CRC-32/IEEE of the data section.
    pub crc: u32,
    /// Length of the data section (what follows the header on the wire).
    pub data_length: u32,
    /// Length of the trailer on disk; the trailer is not sent to consumers.
    pub trailer_length: u32,
    /// Size of the Bloom filter on disk; the filter is not sent to consumers.
    pub bloom_size: u8,
    /// Bytes 45..48 as a 24-bit value.
    pub reserved: u32,
}

impl Default for ChunkHeader {
    fn default() -> Self {
        ChunkHeader {
            magic: CHUNK_MAGIC,
            version: CHUNK_VERSION,
            chunk_type: ChunkType::User,
            num_entries: 0,
            num_records: 0,
            timestamp: 0,
            epoch: 0,
            chunk_id: 0,
            crc: 0,
            data_length: 0,
            trailer_length: 0,
            bloom_size: 0,
            reserved: 0,
        }
    }
}

impl ChunkHeader {
    /// Decodes the header from the first 48 bytes of `buf` (bytes after it are ignored).
    ///
    /// Rejects a magic other than 5; accepts any version.
    pub fn parse(buf: &[u8]) -> Result<ChunkHeader, DecodeError> {
        let mut r = Reader::new(buf);
        let b0 = r.u8()?;
        let magic = b0 >> 4;
        if magic != CHUNK_MAGIC {
            // Check only what is known: a truncated header with a bad magic is still bad.
            return Err(DecodeError::InvalidValue("chunk magic is not 5"));
        }
        if buf.len() < CHUNK_HEADER_SIZE {
            return Err(DecodeError::Truncated {
                needed: CHUNK_HEADER_SIZE,
                available: buf.len(),
            });
        }
        let chunk_type = ChunkType::from_u8(r.u8()?);
        let num_entries = r.u16()?;
        let num_records = r.u32()?;
        let timestamp = r.i64()?;
        let epoch = r.u64()?;
        let chunk_id = r.u64()?;
        let crc = r.u32()?;
        let data_length = r.u32()?;
        let trailer_length = r.u32()?;
        let bloom_size = r.u8()?;
        let res = r.take(3)?;
        let reserved = u32::from_be_bytes([0, res[0], res[1], res[2]]);
        Ok(ChunkHeader {
            magic,
            version: b0 & 0x0f,
            chunk_type,
            num_entries,
            num_records,
            timestamp,
            epoch,
            chunk_id,
            crc,
            data_length,
            trailer_length,
            bloom_size,
            reserved,
        })
    }

    /// The 48 header bytes. `magic` and `version` are truncated to 4 bits and `reserved` to 24.
    pub fn to_bytes(&self) -> [u8; CHUNK_HEADER_SIZE] {
        let mut b = [0u8; CHUNK_HEADER_SIZE];
        b[0] = (self.magic << 4) | (self.version & 0x0f);
        b[1] = self.chunk_type.code();
        b[2..4].copy_from_slice(&self.num_entries.to_be_bytes());
        b[4..8].copy_from_slice(&self.num_records.to_be_bytes());
        b[8..16].copy_from_slice(&self.timestamp.to_be_bytes());
        b[16..24].copy_from_slice(&self.epoch.to_be_bytes());
        b[24..32].copy_from_slice(&self.chunk_id.to_be_bytes());
        b[32..36].copy_from_slice(&self.crc.to_be_bytes());
        b[36..40].copy_from_slice(&self.data_length.to_be_bytes());
        b[40..44].copy_from_slice(&self.trailer_length.to_be_bytes());
        b[44] = self.bloom_size;
        b[45..48].copy_from_slice(&self.reserved.to_be_bytes()[1..]);
        b
    }

    /// Appends the 48 header bytes to `out`.
    pub fn encode(&self, out: &mut BytesMut) {
        out.put_slice(&self.to_bytes());
    }

    /// The offset following this chunk's last record (`chunk_id + num_records`).
    pub fn next_offset(&self) -> u64 {
        self.chunk_id.wrapping_add(u64::from(self.num_records))
    }
}

/// A received chunk: its header and its data section (a zero-copy slice of the frame).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    header: ChunkHeader,
    data: Bytes,
}

impl Chunk {
    /// Splits `raw` — the chunk as carried by Deliver: the header then exactly `data length`
    /// bytes — into header and data without copying.
    ///
    /// The header's Bloom filter size and trailer length are *not* skipped: osiris does not
    /// send those bytes to stream-protocol consumers. Fewer bytes than `48 + data length` is
    /// [`DecodeError::Truncated`], more is [`DecodeError::TrailingBytes`]. The CRC is not checked
    /// here; see [`Chunk::verify_crc`].
    pub fn parse(raw: Bytes) -> Result<Chunk, DecodeError> {
        let header = ChunkHeader::parse(&raw)?;
        let total = CHUNK_HEADER_SIZE.saturating_add(header.data_length as usize);
        if raw.len() < total {
            return Err(DecodeError::Truncated {
                needed: total,
                available: raw.len(),
            });
        }
        if raw.len() > total {
            return Err(DecodeError::TrailingBytes(raw.len() - total));
        }
        let data = raw.slice(CHUNK_HEADER_SIZE..total);
        Ok(Chunk { header, data })
    }

    /// [`Chunk::parse`] over a borrowed slice (copies it once).
    pub fn parse_slice(raw: &[u8]) -> Result<Chunk, DecodeError> {
        // Validate before copying so garbage is not copied.
        let header = ChunkHeader::parse(raw)?;
        let total = CHUNK_HEADER_SIZE.saturating_add(header.data_length as usize);
        if raw.len() < total {
            return Err(DecodeError::Truncated {
                needed: total,
                available: raw.len(),
            });
        }
        if raw.len() > total {
            return Err(DecodeError::TrailingBytes(raw.len() - total));
        }
        Ok(Chunk {
            header,
            data: Bytes::copy_from_slice(&raw[CHUNK_HEADER_SIZE..total]),
        })
    }

    /// The decoded header.
    pub fn header(&self) -> &ChunkHeader {
        &self.header
    }

    /// The data section (entries).
    pub fn data(&self) -> &Bytes {
        &self.data
    }

    /// Offset of the first record.
    pub fn chunk_id(&self) -> u64 {
        self.header.chunk_id
    }

    /// CRC-32/IEEE of the data section as received.
    pub fn computed_crc(&self) -> u32 {
        crc32fast::hash(&self.data)
    }

    /// Checks the header's CRC against the data section ([`DecodeError::Crc`] on mismatch).
    pub fn verify_crc(&self) -> Result<(), DecodeError> {
        let actual = self.computed_crc();
        if actual == self.header.crc {
            Ok(())
        } else {
            Err(DecodeError::Crc {
                expected: self.header.crc,
                actual,
            })
        }
    }

    /// Iterates the entries of the data section, validating them against the header's entry
    /// and record counts. Allocates nothing.
    pub fn entries(&self) -> Entries<'_> {
        Entries {
            reader: Reader::new(&self.data),
            remaining_entries: self.header.num_entries,
            next_offset: self.header.chunk_id,
            records_seen: 0,
            expected_records: self.header.num_records,
            done: false,
        }
    }
}

/// One entry of a chunk's data section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry<'c> {
    /// Offset of the entry's first record.
    pub first_offset: u64,
    /// The entry itself.
    pub kind: EntryKind<'c>,
}

/// A simple entry (one message) or a sub-entry batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind<'c> {
    /// One message.
    Simple(&'c [u8]),
    /// A batch of messages, possibly compressed.
    SubEntry(SubEntry<'c>),
}

impl Entry<'_> {
    /// Records in this entry (1 for a simple entry).
    pub fn num_records(&self) -> u32 {
        match self.kind {
            EntryKind::Simple(_) => 1,
            EntryKind::SubEntry(s) => u32::from(s.num_records),
        }
    }
}

/// A sub-entry batch as found in a chunk (or built by [`encode_sub_entry`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubEntry<'c> {
    /// Codec of `data`.
    pub compression: Compression,
    /// Records in the batch.
    pub num_records: u16,
    /// Size of the records once decompressed (length prefixes included).
    pub uncompressed_size: u32,
    /// The (compressed) records.
    pub data: &'c [u8],
}

impl<'c> SubEntry<'c> {
    /// Decodes a sub-entry from the start of `buf` (type byte included); returns it and the
    /// bytes it took.
    pub fn parse(buf: &'c [u8]) -> Result<(SubEntry<'c>, usize), DecodeError> {
        let mut r = Reader::new(buf);
        let sub = read_sub_entry(&mut r)?;
        Ok((sub, r.position()))
    }

    /// The records of the batch. Uncompressed batches are read in place; compressed ones are
    /// decompressed into `scratch` (cleared first; its capacity is kept for the next call), so
    /// a batch costs at most one buffer growth and no allocation per record.
    ///
    /// Fails on an unknown codec, a declared uncompressed size above
    /// [`MAX_UNCOMPRESSED_SUB_ENTRY_SIZE`], corrupt compressed data, or a size mismatch. Record
    /// framing errors (count or sizes not matching) are reported by the iterator.
    pub fn records<'s>(&self, scratch: &'s mut Vec<u8>) -> Result<SubRecords<'s>, DecodeError>
    where
        'c: 's,
    {
        let bytes: &'s [u8] = if self.compression == Compression::None {
            if self.data.len() != self.uncompressed_size as usize {
                return Err(DecodeError::InvalidValue(
                    "uncompressed sub-entry size differs from its data size",
                ));
            }
            self.data
        } else {
            scratch.clear();
            compression::decompress(
                self.compression,
                self.data,
                self.uncompressed_size as usize,
                scratch,
            )?;
            scratch.as_slice()
        };
        Ok(SubRecords::new(bytes, self.num_records))
    }
}

/// The records (`u32 size, body`) of a sub-entry's uncompressed data.
///
/// Yields exactly `num_records` bodies, then fails if bytes are left over; fails if the data
/// runs out first. Stops after the first error.
#[derive(Debug, Clone)]
pub struct SubRecords<'a> {
    reader: Reader<'a>,
    remaining: u16,
    done: bool,
}

impl<'a> SubRecords<'a> {
    /// Records over `data` (uncompressed), expecting `num_records` of them.
    pub fn new(data: &'a [u8], num_records: u16) -> Self {
        SubRecords {
            reader: Reader::new(data),
            remaining: num_records,
            done: false,
        }
    }

    /// Where the next record's body would start in the data (used to build indexes).
    fn position(&self) -> usize {
        self.reader.position()
    }
}

impl<'a> Iterator for SubRecords<'a> {
    type Item = Result<&'a [u8], DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        if self.remaining == 0 {
            self.done = true;
            return match self.reader.remaining() {
                0 => None,
                n => Some(Err(DecodeError::TrailingBytes(n))),
            };
        }
        let item = self
            .reader
            .u32()
            .and_then(|len| self.reader.take(len as usize));
        match item {
            Ok(body) => {
                self.remaining -= 1;
                Some(Ok(body))
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        if self.done {
            (0, Some(0))
        } else {
            (0, Some(usize::from(self.remaining) + 1))
        }
    }
}

fn read_sub_entry<'c>(r: &mut Reader<'c>) -> Result<SubEntry<'c>, DecodeError> {
    let b = r.u8()?;
    if b & SUB_ENTRY_FLAG == 0 {
        return Err(DecodeError::InvalidValue("not a sub-entry"));
    }
    let compression = Compression::try_from((b >> 4) & 0x07)?;
    let num_records = r.u16()?;
    let uncompressed_size = r.u32()?;
    let size = r.u32()?;
    let data = r.take(size as usize)?;
    Ok(SubEntry {
        compression,
        num_records,
        uncompressed_size,
        data,
    })
}

/// Iterator over a chunk's entries ([`Chunk::entries`]).
///
/// Yields `num entries` entries, then checks that the data section is used up and that the
/// record count matches the header, yielding one final error otherwise. Stops after the first
/// error; never panics.
#[derive(Debug, Clone)]
pub struct Entries<'c> {
    reader: Reader<'c>,
    remaining_entries: u16,
    next_offset: u64,
    records_seen: u64,
    expected_records: u32,
    done: bool,
}

impl<'c> Entries<'c> {
    fn read_entry(&mut self) -> Result<Entry<'c>, DecodeError> {
        let rest = self.reader.rest();
        let Some(&first) = rest.first() else {
            return Err(DecodeError::Truncated {
                needed: 1,
                available: 0,
            });
        };
        let kind = if first & SUB_ENTRY_FLAG == 0 {
            let size = self.reader.u32()? & SIMPLE_SIZE_MASK;
            EntryKind::Simple(self.reader.take(size as usize)?)
        } else {
            EntryKind::SubEntry(read_sub_entry(&mut self.reader)?)
        };
        let entry = Entry {
            first_offset: self.next_offset,
            kind,
        };
        let n = entry.num_records();
        self.records_seen += u64::from(n);
        if self.records_seen > u64::from(self.expected_records) {
            return Err(DecodeError::InvalidValue(
                "chunk holds more records than its header says",
            ));
        }
        self.next_offset = self.next_offset.wrapping_add(u64::from(n));
        Ok(entry)
    }
}

impl<'c> Iterator for Entries<'c> {
    type Item = Result<Entry<'c>, DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        if self.remaining_entries == 0 {
            self.done = true;
            if self.reader.remaining() != 0 {
                return Some(Err(DecodeError::TrailingBytes(self.reader.remaining())));
            }
            if self.records_seen != u64::from(self.expected_records) {
                return Some(Err(DecodeError::InvalidValue(
                    "chunk holds fewer records than its header says",
                )));
            }
            return None;
        }
        match self.read_entry() {
            Ok(e) => {
                self.remaining_entries -= 1;
                Some(Ok(e))
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

/// One record (message) of a chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    /// The record's offset in the stream (`chunk id + index in the chunk`).
    pub offset: u64,
    /// The chunk's timestamp (ms since the epoch); records carry no timestamp of their own.
    pub timestamp: i64,
    /// The message bytes (usually an AMQP 1.0 message, see [`super::amqp`]).
    pub body: &'a [u8],
    /// Codec of the entry the record came from ([`Compression::None`] for simple entries).
    pub compression: Compression,
    /// Whether the record came from a sub-entry batch.
    pub in_sub_entry: bool,
}

/// Limits applied when decoding chunks, against memory exhaustion by hostile or corrupt data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Largest declared uncompressed size of one sub-entry (at most
    /// [`MAX_UNCOMPRESSED_SUB_ENTRY_SIZE`], which is also the default).
    pub max_sub_entry_uncompressed: usize,
    /// Largest total declared uncompressed size of a chunk's compressed sub-entries: what
    /// [`DecodedChunk`] may hold, and the decompression work [`ChunkDecoder`] accepts per chunk.
    /// Default 1 GiB, the Java client's `maxUncompressedSizePerChunk`.
    pub max_chunk_uncompressed: usize,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        DecodeLimits {
            max_sub_entry_uncompressed: MAX_UNCOMPRESSED_SUB_ENTRY_SIZE,
            max_chunk_uncompressed: 1024 * 1024 * 1024,
        }
    }
}

/// Tracks the uncompressed budget of one chunk.
struct Budget {
    limits: DecodeLimits,
    used: usize,
}

impl Budget {
    fn new(limits: DecodeLimits) -> Self {
        Budget { limits, used: 0 }
    }

    fn charge(&mut self, sub: &SubEntry<'_>) -> Result<(), DecodeError> {
        if sub.compression == Compression::None {
            return Ok(());
        }
        let size = sub.uncompressed_size as usize;
        if size > self.limits.max_sub_entry_uncompressed {
            return Err(DecodeError::InvalidValue(
                "declared uncompressed size exceeds the limit",
            ));
        }
        self.used = self.used.saturating_add(size);
        if self.used > self.limits.max_chunk_uncompressed {
            return Err(DecodeError::InvalidValue(
                "chunk's uncompressed size exceeds the limit",
            ));
        }
        Ok(())
    }
}

/// Decodes the records of chunks, keeping one scratch buffer for compressed sub-entries across
/// calls: after warm-up, decoding allocates nothing except inside the codecs (their state,
/// once per compressed sub-entry).
#[derive(Default)]
pub struct ChunkDecoder {
    scratch: Vec<u8>,
    limits: DecodeLimits,
}

impl std::fmt::Debug for ChunkDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkDecoder")
            .field("scratch_capacity", &self.scratch.capacity())
            .field("limits", &self.limits)
            .finish()
    }
}

impl ChunkDecoder {
    /// A decoder with the default [`DecodeLimits`].
    pub fn new() -> Self {
        Self::default()
    }

    /// A decoder with custom limits.
    pub fn with_limits(limits: DecodeLimits) -> Self {
        ChunkDecoder {
            scratch: Vec::new(),
            limits,
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> DecodeLimits {
        self.limits
    }

    /// Calls `f` for every record of `chunk`, in offset order, with the body borrowed from the
    /// chunk (simple entries, uncompressed batches) or from the decoder's scratch buffer
    /// (compressed batches). Returns the number of records visited.
    ///
    /// Validation happens as the data is walked, so on a corrupt chunk `f` may already have
    /// seen the records before the damage when the error is returned.
    pub fn for_each_record<F>(&mut self, chunk: &Chunk, mut f: F) -> Result<u64, DecodeError>
    where
        F: FnMut(Record<'_>),
    {
        self.visit_records_from(chunk, 0, |r| {
            f(r);
            ControlFlow::Continue(())
        })
    }

    /// Like [`ChunkDecoder::for_each_record`], but only records with `offset >= min_offset`
    /// are visited — consumers must drop records before the offset they subscribed from — and
    /// `f` can stop the walk early with [`ControlFlow::Break`]. Sub-entries lying wholly before
    /// `min_offset` are skipped without being decompressed.
    ///
    /// Returns the number of records visited. After a break the rest of the chunk is not
    /// validated, nor are the records inside skipped batches (their entry framing is).
    pub fn visit_records_from<F>(
        &mut self,
        chunk: &Chunk,
        min_offset: u64,
        mut f: F,
    ) -> Result<u64, DecodeError>
    where
        F: FnMut(Record<'_>) -> ControlFlow<()>,
    {
        let timestamp = chunk.header.timestamp;
        let mut budget = Budget::new(self.limits);
        let mut visited = 0u64;
        for entry in chunk.entries() {
            let entry = entry?;
            let mut offset = entry.first_offset;
            match entry.kind {
                EntryKind::Simple(body) => {
                    if offset >= min_offset {
                        visited += 1;
                        let rec = Record {
                            offset,
                            timestamp,
                            body,
                            compression: Compression::None,
                            in_sub_entry: false,
                        };
                        if f(rec).is_break() {
                            return Ok(visited);
                        }
                    }
                }
                EntryKind::SubEntry(sub) => {
                    let end = offset.saturating_add(u64::from(sub.num_records));
                    if end <= min_offset {
                        // Still check the declared sizes so the limits hold for the chunk.
                        budget.charge(&sub)?;
                        continue;
                    }
                    budget.charge(&sub)?;
                    for body in sub.records(&mut self.scratch)? {
                        let body = body?;
                        if offset >= min_offset {
                            visited += 1;
                            let rec = Record {
                                offset,
                                timestamp,
                                body,
                                compression: sub.compression,
                                in_sub_entry: true,
                            };
                            if f(rec).is_break() {
                                return Ok(visited);
                            }
                        }
                        offset = offset.wrapping_add(1);
                    }
                }
            }
        }
        Ok(visited)
    }

    /// Decodes `chunk` into `out` (replacing its previous content and reusing its buffers).
    /// See [`DecodedChunk`].
    pub fn decode_into(&mut self, chunk: Chunk, out: &mut DecodedChunk) -> Result<(), DecodeError> {
        out.decode_from(chunk, self.limits)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct RecordLoc {
    /// Start of the body in the chunk data, or in the decompressed buffer.
    start: usize,
    len: u32,
    decompressed: bool,
    in_sub_entry: bool,
    compression: Compression,
}

/// A chunk with an index of its records, for random access by position (`record(i)`).
///
/// Built once per chunk: all compressed sub-entries are decompressed into one buffer and every
/// record's location is stored in one index vector — two allocations per chunk at most (none
/// when a `DecodedChunk` is reused), never one per message. Uncompressed bodies stay in the
/// chunk's own data. Decoding validates the whole chunk before anything is exposed.
#[derive(Clone, Default)]
pub struct DecodedChunk {
    chunk: Option<Chunk>,
    decompressed: Vec<u8>,
    index: Vec<RecordLoc>,
}

impl std::fmt::Debug for DecodedChunk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecodedChunk")
            .field("header", &self.header())
            .field("records", &self.index.len())
            .field("decompressed_bytes", &self.decompressed.len())
            .finish()
    }
}

impl DecodedChunk {
    /// Decodes and indexes `chunk` with the given limits.
    pub fn decode(chunk: Chunk, limits: DecodeLimits) -> Result<DecodedChunk, DecodeError> {
        let mut d = DecodedChunk::default();
        d.decode_from(chunk, limits)?;
        Ok(d)
    }

    /// Replaces the content with `chunk`, reusing this value's buffers. On error the value is
    /// left empty.
    pub fn decode_from(&mut self, chunk: Chunk, limits: DecodeLimits) -> Result<(), DecodeError> {
        self.chunk = None;
        self.decompressed.clear();
        self.index.clear();
        match self.build_index(&chunk, limits) {
            Ok(()) => {
                self.chunk = Some(chunk);
                Ok(())
            }
            Err(e) => {
                self.decompressed.clear();
                self.index.clear();
                Err(e)
            }
        }
    }

    fn build_index(&mut self, chunk: &Chunk, limits: DecodeLimits) -> Result<(), DecodeError> {
        // Every record takes at least 4 bytes of data unless compressed: a capacity hint that
        // an untrusted header cannot inflate.
        let hint = (chunk.header.num_records as usize).min(chunk.data.len() / 4 + 1);
        self.index.reserve(hint);
        let mut budget = Budget::new(limits);
        let data: &[u8] = &chunk.data;
        let mut pos = 0usize;
        for entry in chunk.entries() {
            match entry?.kind {
                EntryKind::Simple(body) => {
                    // Entries are contiguous: find this body after the 4-byte size.
                    pos = locate(data, pos, body)?;
                    self.index.push(RecordLoc {
                        start: pos,
                        len: body.len() as u32,
                        decompressed: false,
                        in_sub_entry: false,
                        compression: Compression::None,
                    });
                    pos += body.len();
                }
                EntryKind::SubEntry(sub) => {
                    budget.charge(&sub)?;
                    pos = locate(data, pos, sub.data)?;
                    if sub.compression == Compression::None {
                        if sub.data.len() != sub.uncompressed_size as usize {
                            return Err(DecodeError::InvalidValue(
                                "uncompressed sub-entry size differs from its data size",
                            ));
                        }
                        index_records(&mut self.index, sub.data, pos, sub, false)?;
                    } else {
                        let base = self.decompressed.len();
                        compression::decompress_with_limit(
                            sub.compression,
                            sub.data,
                            sub.uncompressed_size as usize,
                            limits.max_sub_entry_uncompressed,
                            &mut self.decompressed,
                        )?;
                        let region = self.decompressed.get(base..).unwrap_or_default();
                        index_records(&mut self.index, region, base, sub, true)?;
                    }
                    pos += sub.data.len();
                }
            }
        }
        Ok(())
    }

    /// The chunk, if decoding succeeded.
    pub fn chunk(&self) -> Option<&Chunk> {
        self.chunk.as_ref()
    }

    /// The chunk's header, if decoding succeeded.
    pub fn header(&self) -> Option<&ChunkHeader> {
        self.chunk.as_ref().map(Chunk::header)
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Whether there are no records.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Record `i` (0-based position in the chunk), or `None` past the end.
    pub fn record(&self, i: usize) -> Option<Record<'_>> {
        let chunk = self.chunk.as_ref()?;
        let loc = self.index.get(i)?;
        let src: &[u8] = if loc.decompressed {
            &self.decompressed
        } else {
            &chunk.data
        };
        let body = src.get(loc.start..loc.start + loc.len as usize)?;
        Some(Record {
            offset: chunk.header.chunk_id.wrapping_add(i as u64),
            timestamp: chunk.header.timestamp,
            body,
            compression: loc.compression,
            in_sub_entry: loc.in_sub_entry,
        })
    }

    /// The position (for [`DecodedChunk::record`]) of the record with stream offset `offset`,
    /// if it is in this chunk.
    pub fn position_of(&self, offset: u64) -> Option<usize> {
        let chunk = self.chunk.as_ref()?;
        let i = offset.checked_sub(chunk.header.chunk_id)?;
        let i = usize::try_from(i).ok()?;
        (i < self.index.len()).then_some(i)
    }

    /// Iterates the records in offset order.
    pub fn iter(&self) -> impl Iterator<Item = Record<'_>> + '_ {
        (0..self.len()).filter_map(move |i| self.record(i))
    }
}

/// Position of `part` (a sub-slice of `data` found by a reader) at or after `from`.
fn locate(data: &[u8], from: usize, part: &[u8]) -> Result<usize, DecodeError> {
    // `part` was taken from `data` by a Reader, so the pointer difference is its position;
    // computed with checked arithmetic so that a logic error is an error, not a panic.
    let start = (part.as_ptr() as usize)
        .checked_sub(data.as_ptr() as usize)
        .filter(|&s| s >= from && s + part.len() <= data.len())
        .ok_or(DecodeError::InvalidValue("entry outside the chunk data"))?;
    Ok(start)
}

/// Pushes the locations of the records of `sub`'s uncompressed data `region`, which starts at
/// `base` in its source buffer.
fn index_records(
    index: &mut Vec<RecordLoc>,
    region: &[u8],
    base: usize,
    sub: SubEntry<'_>,
    decompressed: bool,
) -> Result<(), DecodeError> {
    let mut recs = SubRecords::new(region, sub.num_records);
    loop {
        let Some(body) = recs.next() else {
            return Ok(());
        };
        let body = body?;
        // The body ends where the reader now stands.
        let start = base + recs.position() - body.len();
        index.push(RecordLoc {
            start,
            len: body.len() as u32,
            decompressed,
            in_sub_entry: true,
            compression: sub.compression,
        });
    }
}

/// What [`encode_sub_entry`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubEntryInfo {
    /// Records in the batch.
    pub num_records: u16,
    /// Size of the records before compression (length prefixes included).
    pub uncompressed_size: u32,
    /// Size of the (compressed) data that follows the sub-entry header.
    pub size: u32,
    /// Total bytes appended to the output (11-byte sub-entry header + data).
    pub encoded_len: usize,
}

/// Writes a sub-entry batch — `1:1 | compression:3 | reserved:4, numRecords u16,
/// uncompressedSize u32, size u32, data` — for `bodies` into `out`, as a producer publishes it
/// (after its publishing id). The records are streamed through the codec straight into `out`:
/// nothing is allocated per message.
///
/// Fails (leaving `out` as it was) with more than 65 535 bodies, or when the records exceed
/// [`MAX_UNCOMPRESSED_SUB_ENTRY_SIZE`] uncompressed (the broker rejects such batches since
/// 4.3.5).
pub fn encode_sub_entry<I, B>(
    compression: Compression,
    bodies: I,
    out: &mut BytesMut,
) -> Result<SubEntryInfo, EncodeError>
where
    I: IntoIterator<Item = B>,
    B: AsRef<[u8]>,
{
    let start = out.len();
    let result = encode_sub_entry_inner(compression, bodies, out, start);
    if result.is_err() {
        out.truncate(start);
    }
    result
}

fn encode_sub_entry_inner<I, B>(
    compression: Compression,
    bodies: I,
    out: &mut BytesMut,
    start: usize,
) -> Result<SubEntryInfo, EncodeError>
where
    I: IntoIterator<Item = B>,
    B: AsRef<[u8]>,
{
    out.put_u8(SUB_ENTRY_FLAG | (compression.code() << 4));
    out.put_u16(0);
    out.put_u32(0);
    out.put_u32(0);
    let data_start = out.len();
    debug_assert_eq!(data_start - start, SUB_ENTRY_HEADER_SIZE);
    let mut count: usize = 0;
    let mut uncompressed: usize = 0;
    {
        let mut w = CompressWriter::new(compression, (&mut *out).writer())?;
        for body in bodies {
            let body = body.as_ref();
            count += 1;
            if count > usize::from(u16::MAX) {
                return Err(EncodeError::TooManyElements(count));
            }
            uncompressed = uncompressed.saturating_add(4).saturating_add(body.len());
            if uncompressed > MAX_UNCOMPRESSED_SUB_ENTRY_SIZE {
                return Err(EncodeError::InvalidValue(
                    "sub-entry batch exceeds 64 MiB uncompressed",
                ));
            }
            let len = body.len() as u32; // < 64 MiB, checked above
            let io = |e: std::io::Error| EncodeError::Compress(e.to_string());
            w.write_all(&len.to_be_bytes()).map_err(io)?;
            w.write_all(body).map_err(io)?;
        }
        w.finish()?;
    }
    let size = out.len() - data_start;
    let size32 = u32::try_from(size).map_err(|_| EncodeError::BytesTooLong(size))?;
    let count16 = count as u16; // <= u16::MAX, checked in the loop
    let uncompressed32 = uncompressed as u32; // <= 64 MiB
    out[start + 1..start + 3].copy_from_slice(&count16.to_be_bytes());
    out[start + 3..start + 7].copy_from_slice(&uncompressed32.to_be_bytes());
    out[start + 7..start + 11].copy_from_slice(&size32.to_be_bytes());
    Ok(SubEntryInfo {
        num_records: count16,
        uncompressed_size: uncompressed32,
        size: size32,
        encoded_len: out.len() - start,
    })
}

/// Builds a chunk (header + data with a correct CRC) from simple entries and sub-entry batches:
/// what the broker would deliver. Used by tests and fuzz seeds.
#[derive(Debug, Clone)]
pub struct ChunkBuilder {
    header: ChunkHeader,
    data: BytesMut,
    num_entries: u32,
    num_records: u64,
}

impl ChunkBuilder {
    /// An empty user chunk whose first record has offset `chunk_id`.
    pub fn new(chunk_id: u64) -> Self {
        ChunkBuilder {
            header: ChunkHeader {
                chunk_id,
                ..ChunkHeader::default()
            },
            data: BytesMut::new(),
            num_entries: 0,
            num_records: 0,
        }
    }

    /// Sets the timestamp (ms since the epoch).
    pub fn timestamp(mut self, timestamp: i64) -> Self {
        self.header.timestamp = timestamp;
        self
    }

    /// Sets the epoch.
    pub fn epoch(mut self, epoch: u64) -> Self {
        self.header.epoch = epoch;
        self
    }

    /// Sets the chunk type.
    pub fn chunk_type(mut self, chunk_type: ChunkType) -> Self {
        self.header.chunk_type = chunk_type;
        self
    }

    /// Sets the Bloom filter size reported in the header (no filter bytes are written, as on
    /// the wire).
    pub fn bloom_size(mut self, bloom_size: u8) -> Self {
        self.header.bloom_size = bloom_size;
        self
    }

    /// Sets the trailer length reported in the header (no trailer is written, as on the wire).
    pub fn trailer_length(mut self, trailer_length: u32) -> Self {
        self.header.trailer_length = trailer_length;
        self
    }

    fn count_entry(&mut self, records: u64) -> Result<(), EncodeError> {
        if self.num_entries >= u32::from(u16::MAX) {
            return Err(EncodeError::TooManyElements(self.num_entries as usize + 1));
        }
        if self.num_records + records > u64::from(u32::MAX) {
            return Err(EncodeError::TooManyElements(
                (self.num_records + records) as usize,
            ));
        }
        self.num_entries += 1;
        self.num_records += records;
        Ok(())
    }

    /// Appends a simple entry holding `body`.
    pub fn add_simple(&mut self, body: &[u8]) -> Result<&mut Self, EncodeError> {
        if body.len() > SIMPLE_SIZE_MASK as usize {
            return Err(EncodeError::BytesTooLong(body.len()));
        }
        self.count_entry(1)?;
        self.data.put_u32(body.len() as u32);
        self.data.put_slice(body);
        Ok(self)
    }

    /// Appends a sub-entry batch of `bodies` compressed with `compression`.
    pub fn add_sub_entry<I, B>(
        &mut self,
        compression: Compression,
        bodies: I,
    ) -> Result<&mut Self, EncodeError>
    where
        I: IntoIterator<Item = B>,
        B: AsRef<[u8]>,
    {
        let start = self.data.len();
        let info = encode_sub_entry(compression, bodies, &mut self.data)?;
        if let Err(e) = self.count_entry(u64::from(info.num_records)) {
            self.data.truncate(start);
            return Err(e);
        }
        Ok(self)
    }

    /// Appends an already encoded entry (simple or sub-entry) holding `records` records,
    /// unchecked: for building corrupt chunks in tests.
    pub fn add_raw_entry(&mut self, entry: &[u8], records: u32) -> Result<&mut Self, EncodeError> {
        self.count_entry(u64::from(records))?;
        self.data.put_slice(entry);
        Ok(self)
    }

    /// The header the chunk will have (counts, data length and CRC filled in).
    pub fn header(&self) -> Result<ChunkHeader, EncodeError> {
        let data_length = u32::try_from(self.data.len())
            .map_err(|_| EncodeError::FrameTooLarge(self.data.len()))?;
        Ok(ChunkHeader {
            num_entries: self.num_entries as u16,
            num_records: self.num_records as u32,
            crc: crc32fast::hash(&self.data),
            data_length,
            ..self.header
        })
    }

    /// The chunk as Deliver carries it: header then data.
    pub fn build(&self) -> Result<Bytes, EncodeError> {
        let header = self.header()?;
        let mut out = BytesMut::with_capacity(CHUNK_HEADER_SIZE + self.data.len());
        header.encode(&mut out);
        out.put_slice(&self.data);
        Ok(out.freeze())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Collects (offset, body) of every record with a fresh decoder.
    fn records_of(chunk: &Chunk) -> Result<Vec<(u64, Vec<u8>)>, DecodeError> {
        let mut out = Vec::new();
        ChunkDecoder::new().for_each_record(chunk, |r| out.push((r.offset, r.body.to_vec())))?;
        Ok(out)
    }

    fn bodies(n: usize, tag: &str) -> Vec<Vec<u8>> {
        (0..n)
            .map(|i| format!("{tag}-message-{i}-{}", "x".repeat(i % 7)).into_bytes())
            .collect()
    }

    /// A header built by hand from the osiris layout (`make_chunk/7`), byte by byte.
    #[test]
    fn golden_header() {
        let raw: [u8; 48] = [
            0x50, // magic 5, version 0
            0x00, // user chunk
            0x00, 0x02, // 2 entries
            0x00, 0x00, 0x00, 0x03, // 3 records
            0x00, 0x00, 0x01, 0x8c, 0x2a, 0x5e, 0x7d, 0x10, // timestamp 1_701_517_884_688
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x07, // epoch 7
            0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, // chunk id 65_536
            0xde, 0xad, 0xbe, 0xef, // crc
            0x00, 0x00, 0x00, 0x20, // data length 32
            0x00, 0x00, 0x00, 0x10, // trailer length 16
            0x10, // bloom size 16
            0x00, 0x00, 0x01, // reserved
        ];
        let h = ChunkHeader::parse(&raw).unwrap();
        assert_eq!(
            h,
            ChunkHeader {
                magic: 5,
                version: 0,
                chunk_type: ChunkType::User,
                num_entries: 2,
                num_records: 3,
                timestamp: 0x0000_018c_2a5e_7d10,
                epoch: 7,
                chunk_id: 65_536,
                crc: 0xdead_beef,
                data_length: 32,
                trailer_length: 16,
                bloom_size: 16,
                reserved: 1,
            }
        );
        assert_eq!(h.to_bytes(), raw);
        assert_eq!(h.next_offset(), 65_539);
    }

    #[test]
    fn header_magic_and_version() {
        let mut raw = ChunkHeader::default().to_bytes();
        assert_eq!(raw[0], 0x50);
        raw[0] = 0x53; // version 3: accepted
        assert_eq!(ChunkHeader::parse(&raw).unwrap().version, 3);
        raw[0] = 0x40; // magic 4: rejected
        assert_eq!(
            ChunkHeader::parse(&raw),
            Err(DecodeError::InvalidValue("chunk magic is not 5"))
        );
        raw[0] = 0x50;
        raw[1] = 9;
        assert_eq!(
            ChunkHeader::parse(&raw).unwrap().chunk_type,
            ChunkType::Other(9)
        );
        for code in 0..=255u8 {
            assert_eq!(ChunkType::from_u8(code).code(), code);
        }
    }

    /// A whole chunk by hand: two simple entries and an uncompressed sub-entry of two records.
    #[test]
    fn golden_chunk_decodes_with_offsets() {
        let mut data = Vec::new();
        data.extend_from_slice(&[0, 0, 0, 2, b'h', b'i']); // simple "hi"
        data.extend_from_slice(&[0x80, 0, 2, 0, 0, 0, 10, 0, 0, 0, 10]); // sub-entry none, 2 records
        data.extend_from_slice(&[0, 0, 0, 1, b'a', 0, 0, 0, 1, b'b']);
        data.extend_from_slice(&[0, 0, 0, 0]); // simple, empty body
        let header = ChunkHeader {
            num_entries: 3,
            num_records: 4,
            chunk_id: 100,
            timestamp: 42,
            crc: crc32fast::hash(&data),
            data_length: data.len() as u32,
            bloom_size: 16,
            trailer_length: 48,
            ..ChunkHeader::default()
        };
        let mut raw = header.to_bytes().to_vec();
        raw.extend_from_slice(&data);
        // The builder produces the same bytes.
        let mut b = ChunkBuilder::new(100)
            .timestamp(42)
            .bloom_size(16)
            .trailer_length(48);
        b.add_simple(b"hi").unwrap();
        b.add_sub_entry(Compression::None, [b"a", b"b"]).unwrap();
        b.add_simple(b"").unwrap();
        assert_eq!(&b.build().unwrap()[..], &raw[..]);

        let chunk = Chunk::parse(Bytes::from(raw)).unwrap();
        chunk.verify_crc().unwrap();
        assert_eq!(
            records_of(&chunk).unwrap(),
            vec![
                (100, b"hi".to_vec()),
                (101, b"a".to_vec()),
                (102, b"b".to_vec()),
                (103, b"".to_vec())
            ]
        );
        let mut flags = Vec::new();
        ChunkDecoder::new()
            .for_each_record(&chunk, |r| flags.push((r.in_sub_entry, r.timestamp)))
            .unwrap();
        assert_eq!(flags, [(false, 42), (true, 42), (true, 42), (false, 42)]);
    }

    #[test]
    #[cfg_attr(miri, ignore)] // zstd is C
    fn every_compression_round_trips_with_offsets() {
        let mut b = ChunkBuilder::new(1_000).timestamp(-5).epoch(3);
        let mut expected = Vec::new();
        let mut offset = 1_000u64;
        for (k, kind) in Compression::ALL.iter().enumerate() {
            let simple = format!("simple before {kind:?}").into_bytes();
            b.add_simple(&simple).unwrap();
            expected.push((offset, simple));
            offset += 1;
            let batch = bodies(3 + k * 5, kind.name());
            b.add_sub_entry(*kind, &batch).unwrap();
            for body in batch {
                expected.push((offset, body));
                offset += 1;
            }
        }
        let raw = b.build().unwrap();
        let chunk = Chunk::parse(raw).unwrap();
        chunk.verify_crc().unwrap();
        assert_eq!(chunk.header().num_entries, 10);
        assert_eq!(chunk.header().num_records as usize, expected.len());
        assert_eq!(chunk.header().next_offset(), offset);
        assert_eq!(records_of(&chunk).unwrap(), expected);

        // Random access gives the same records, with the right codec flags.
        let decoded = DecodedChunk::decode(chunk.clone(), DecodeLimits::default()).unwrap();
        assert_eq!(decoded.len(), expected.len());
        for (i, (off, body)) in expected.iter().enumerate() {
            let r = decoded.record(i).unwrap();
            assert_eq!((r.offset, r.body), (*off, &body[..]));
            assert_eq!(r.timestamp, -5);
            assert_eq!(decoded.position_of(*off), Some(i));
        }
        assert!(decoded.record(expected.len()).is_none());
        assert_eq!(decoded.position_of(999), None);
        assert_eq!(decoded.position_of(offset), None);
        let codecs: Vec<_> = decoded
            .iter()
            .filter(|r| r.in_sub_entry)
            .map(|r| r.compression)
            .collect();
        assert_eq!(codecs.first(), Some(&Compression::None));
        assert_eq!(codecs.last(), Some(&Compression::Zstd));

        // Entries report each batch with its first offset.
        let firsts: Vec<_> = chunk
            .entries()
            .map(|e| e.unwrap())
            .filter_map(|e| match e.kind {
                EntryKind::SubEntry(s) => Some((e.first_offset, s.compression, s.num_records)),
                EntryKind::Simple(_) => None,
            })
            .collect();
        assert_eq!(
            firsts,
            [
                (1_001, Compression::None, 3),
                (1_005, Compression::Gzip, 8),
                (1_014, Compression::Snappy, 13),
                (1_028, Compression::Lz4, 18),
                (1_047, Compression::Zstd, 23),
            ]
        );
    }

    #[test]
    #[cfg_attr(miri, ignore)] // zstd is C
    fn decoder_and_decoded_chunk_reuse_their_buffers() {
        let mut b = ChunkBuilder::new(0);
        b.add_sub_entry(Compression::Zstd, bodies(50, "z")).unwrap();
        let chunk = Chunk::parse(b.build().unwrap()).unwrap();
        let mut dec = ChunkDecoder::new();
        let mut n = 0;
        dec.for_each_record(&chunk, |_| n += 1).unwrap();
        let cap = dec.scratch.capacity();
        let ptr = dec.scratch.as_ptr();
        for _ in 0..3 {
            dec.for_each_record(&chunk, |_| n += 1).unwrap();
        }
        assert_eq!(n, 200);
        assert_eq!((dec.scratch.capacity(), dec.scratch.as_ptr()), (cap, ptr));

        let mut d = DecodedChunk::default();
        dec.decode_into(chunk.clone(), &mut d).unwrap();
        let (c1, c2) = (d.decompressed.capacity(), d.index.capacity());
        dec.decode_into(chunk, &mut d).unwrap();
        assert_eq!((d.decompressed.capacity(), d.index.capacity()), (c1, c2));
        assert_eq!(d.len(), 50);
    }

    #[test]
    fn min_offset_skips_records_and_batches_without_decompressing() {
        let mut b = ChunkBuilder::new(10);
        b.add_simple(b"ten").unwrap();
        // A "gzip" batch of 3 records whose data is garbage: visiting it would fail.
        let mut bad = vec![0x80 | (1 << 4), 0, 3, 0, 0, 0, 30, 0, 0, 0, 4];
        bad.extend_from_slice(b"junk");
        b.add_raw_entry(&bad, 3).unwrap();
        b.add_sub_entry(Compression::Lz4, [&b"fourteen"[..], &b"fifteen"[..]])
            .unwrap();
        let chunk = Chunk::parse(b.build().unwrap()).unwrap();
        let mut dec = ChunkDecoder::new();
        let mut seen = Vec::new();
        let n = dec
            .visit_records_from(&chunk, 15, |r| {
                seen.push((r.offset, r.body.to_vec()));
                ControlFlow::Continue(())
            })
            .unwrap();
        assert_eq!(n, 1);
        assert_eq!(seen, [(15, b"fifteen".to_vec())]);
        // From the start, the garbage batch is an error.
        assert!(matches!(
            dec.for_each_record(&chunk, |_| {}),
            Err(DecodeError::Decompress(_))
        ));
        // Breaking early stops the walk.
        let mut count = 0;
        let n = dec
            .visit_records_from(&chunk, 0, |_| {
                count += 1;
                ControlFlow::Break(())
            })
            .unwrap();
        assert_eq!((n, count), (1, 1));
    }

    #[test]
    fn crc_mismatch_is_detected() {
        let mut b = ChunkBuilder::new(0);
        b.add_simple(b"payload").unwrap();
        let raw = b.build().unwrap();
        let good = Chunk::parse(raw.clone()).unwrap();
        good.verify_crc().unwrap();
        assert_eq!(good.computed_crc(), crc32fast::hash(&raw[48..]));
        // Flip one data bit.
        let mut bad = raw.to_vec();
        let last = bad.len() - 1;
        bad[last] ^= 0x01;
        let chunk = Chunk::parse_slice(&bad).unwrap();
        let err = chunk.verify_crc().unwrap_err();
        assert_eq!(
            err,
            DecodeError::Crc {
                expected: good.header().crc,
                actual: crc32fast::hash(&bad[48..])
            }
        );
        // The CRC covers the data only: changing the header does not change it.
        let mut hdr = raw.to_vec();
        hdr[8] = 0x7f; // timestamp
        Chunk::parse_slice(&hdr).unwrap().verify_crc().unwrap();
        // Standard CRC-32/IEEE check value.
        assert_eq!(crc32fast::hash(b"123456789"), 0xcbf4_3926);
    }

    #[test]
    fn bloom_and_trailer_sizes_are_not_skipped() {
        let mut b = ChunkBuilder::new(0).bloom_size(255).trailer_length(1_000);
        b.add_simple(b"m").unwrap();
        let raw = b.build().unwrap();
        assert_eq!(raw.len(), 48 + 5);
        let chunk = Chunk::parse(raw).unwrap();
        assert_eq!(records_of(&chunk).unwrap(), [(0, b"m".to_vec())]);
    }

    #[test]
    fn length_must_match_the_data_length() {
        let mut b = ChunkBuilder::new(0);
        b.add_simple(b"abc").unwrap();
        let raw = b.build().unwrap().to_vec();
        let mut longer = raw.clone();
        longer.push(0);
        assert_eq!(
            Chunk::parse(Bytes::from(longer)),
            Err(DecodeError::TrailingBytes(1))
        );
        for cut in 0..raw.len() {
            assert!(
                Chunk::parse(Bytes::copy_from_slice(&raw[..cut])).is_err(),
                "prefix {cut}"
            );
            assert!(Chunk::parse_slice(&raw[..cut]).is_err(), "prefix {cut}");
        }
    }

    /// Builds a chunk around `data` with the given counts and a correct CRC.
    fn chunk_with(data: &[u8], entries: u16, records: u32) -> Chunk {
        let header = ChunkHeader {
            num_entries: entries,
            num_records: records,
            data_length: data.len() as u32,
            crc: crc32fast::hash(data),
            chunk_id: 7,
            ..ChunkHeader::default()
        };
        let mut raw = header.to_bytes().to_vec();
        raw.extend_from_slice(data);
        Chunk::parse(Bytes::from(raw)).unwrap()
    }

    fn both_fail(chunk: &Chunk) {
        assert!(records_of(chunk).is_err());
        assert!(DecodedChunk::decode(chunk.clone(), DecodeLimits::default()).is_err());
    }

    #[test]
    fn counts_must_match_the_header() {
        let mut data = Vec::new();
        data.extend_from_slice(&[0, 0, 0, 1, b'x']);
        let mut sub = BytesMut::new();
        encode_sub_entry(Compression::Gzip, [b"p", b"q"], &mut sub).unwrap();
        data.extend_from_slice(&sub);
        // Correct: 2 entries, 3 records.
        assert_eq!(records_of(&chunk_with(&data, 2, 3)).unwrap().len(), 3);
        both_fail(&chunk_with(&data, 1, 3)); // fewer entries declared: trailing bytes
        both_fail(&chunk_with(&data, 3, 3)); // more entries declared: truncated
        both_fail(&chunk_with(&data, 2, 2)); // fewer records declared
        both_fail(&chunk_with(&data, 2, 4)); // more records declared
        both_fail(&chunk_with(&data, 0, 0));
    }

    #[test]
    #[cfg_attr(miri, ignore)] // zstd is C
    fn sub_entry_framing_errors() {
        let mk = |kind: Compression, records: u16, payload: &[u8]| {
            let mut c = Vec::new();
            compression::compress(kind, payload, &mut c).unwrap();
            let mut e = vec![0x80 | (kind.code() << 4)];
            e.extend_from_slice(&records.to_be_bytes());
            e.extend_from_slice(&(payload.len() as u32).to_be_bytes());
            e.extend_from_slice(&(c.len() as u32).to_be_bytes());
            e.extend_from_slice(&c);
            e
        };
        let two = [0, 0, 0, 1, b'a', 0, 0, 0, 1, b'b'];
        for &kind in crate::protocol::compression::TEST_CODECS {
            // Right count decodes.
            let e = mk(kind, 2, &two);
            assert_eq!(records_of(&chunk_with(&e, 1, 2)).unwrap().len(), 2);
            // Record count says 1 but data holds 2: trailing bytes.
            both_fail(&chunk_with(&mk(kind, 1, &two), 1, 1));
            // Record count says 3 but data holds 2: truncated.
            both_fail(&chunk_with(&mk(kind, 3, &two), 1, 3));
            // Record size past the end.
            both_fail(&chunk_with(&mk(kind, 1, &[0, 0, 0, 9, b'a']), 1, 1));
        }
        // Unknown codec 5..7.
        for code in 5..8u8 {
            let mut e = mk(Compression::None, 2, &two);
            e[0] = 0x80 | (code << 4);
            both_fail(&chunk_with(&e, 1, 2));
        }
        // Compression none with a declared uncompressed size that differs from the size.
        let mut e = mk(Compression::None, 2, &two);
        e[6] = 11;
        both_fail(&chunk_with(&e, 1, 2));
        // Declared uncompressed size above the limit, rejected before decompression.
        let mut e = mk(Compression::Zstd, 2, &two);
        e[3..7].copy_from_slice(&(64u32 * 1024 * 1024 + 1).to_be_bytes());
        let chunk = chunk_with(&e, 1, 2);
        assert_eq!(
            records_of(&chunk),
            Err(DecodeError::InvalidValue(
                "declared uncompressed size exceeds the limit"
            ))
        );
        both_fail(&chunk);
    }

    #[test]
    fn chunk_uncompressed_budget_is_enforced() {
        let mut b = ChunkBuilder::new(0);
        for _ in 0..4 {
            b.add_sub_entry(Compression::Lz4, [vec![7u8; 1000]])
                .unwrap();
        }
        let chunk = Chunk::parse(b.build().unwrap()).unwrap();
        let tight = DecodeLimits {
            max_sub_entry_uncompressed: 2_000,
            max_chunk_uncompressed: 3_000,
        };
        assert!(DecodedChunk::decode(chunk.clone(), tight).is_err());
        assert!(
            ChunkDecoder::with_limits(tight)
                .for_each_record(&chunk, |_| {})
                .is_err()
        );
        let ok = DecodeLimits {
            max_chunk_uncompressed: 4 * 1004,
            ..tight
        };
        assert_eq!(DecodedChunk::decode(chunk, ok).unwrap().len(), 4);
    }

    #[test]
    fn encode_sub_entry_layout() {
        let mut out = BytesMut::from(&b"pre"[..]);
        let info = encode_sub_entry(Compression::None, [&b"ab"[..], &b""[..]], &mut out).unwrap();
        assert_eq!(
            info,
            SubEntryInfo {
                num_records: 2,
                uncompressed_size: 10,
                size: 10,
                encoded_len: 21
            }
        );
        assert_eq!(
            &out[..],
            &[
                b'p', b'r', b'e', 0x80, 0, 2, 0, 0, 0, 10, 0, 0, 0, 10, 0, 0, 0, 2, b'a', b'b', 0,
                0, 0, 0
            ]
        );
        for &kind in crate::protocol::compression::TEST_CODECS {
            let batch = bodies(100, "batch");
            let mut out = BytesMut::new();
            let info = encode_sub_entry(kind, &batch, &mut out).unwrap();
            assert_eq!(out[0], 0x80 | (kind.code() << 4));
            assert_eq!(info.encoded_len, out.len());
            let (sub, used) = SubEntry::parse(&out).unwrap();
            assert_eq!(used, out.len());
            assert_eq!(sub.num_records, 100);
            assert_eq!(sub.uncompressed_size, info.uncompressed_size);
            assert_eq!(sub.data.len() as u32, info.size);
            let mut scratch = Vec::new();
            let got: Vec<_> = sub
                .records(&mut scratch)
                .unwrap()
                .map(|r| r.unwrap().to_vec())
                .collect();
            assert_eq!(got, batch);
        }
    }

    #[test]
    fn encode_sub_entry_limits_leave_output_unchanged() {
        let mut out = BytesMut::from(&b"keep"[..]);
        let many = std::iter::repeat_n(&b""[..], 65_536);
        assert_eq!(
            encode_sub_entry(Compression::None, many, &mut out),
            Err(EncodeError::TooManyElements(65_536))
        );
        assert_eq!(&out[..], b"keep");
        let big = vec![0u8; MAX_UNCOMPRESSED_SUB_ENTRY_SIZE];
        assert!(encode_sub_entry(Compression::Lz4, [&big], &mut out).is_err());
        assert_eq!(&out[..], b"keep");
        // 65 535 records is fine.
        let max = std::iter::repeat_n(&b""[..], 65_535);
        let info = encode_sub_entry(Compression::None, max, &mut out).unwrap();
        assert_eq!(info.num_records, 65_535);
    }

    #[test]
    fn truncation_of_entries_never_panics() {
        let mut b = ChunkBuilder::new(0);
        b.add_simple(b"first").unwrap();
        for &kind in crate::protocol::compression::TEST_CODECS {
            b.add_sub_entry(kind, bodies(4, "t")).unwrap();
        }
        let full = b.build().unwrap();
        let header = ChunkHeader::parse(&full).unwrap();
        let data = &full[48..];
        for cut in 0..data.len() {
            let chunk = chunk_with(&data[..cut], header.num_entries, header.num_records);
            both_fail(&chunk);
        }
    }

    /// Chunks delivered by a real broker (RabbitMQ 4.0.5, Erlang/OTP 27.3.4.1, local node)
    /// to Python `rstream` 1.1.1, captured from its Deliver frames (header rebuilt from the
    /// parsed fields, data as received). Published with rstream: `send_wait` of message 0
    /// (REAL_SIMPLE), then `send_sub_entry` of messages 3..13 with `CompressionType.Gzip` and
    /// of 13..16 uncompressed, which the broker stored in one chunk (REAL_SUB_ENTRIES). Message
    /// `i` = `AMQPMessage(body=b'body-<i>', properties=Properties(message_id=i,
    /// content_type='text/plain'), application_properties={'i': i})`.
    const REAL_SIMPLE: &str = concat!(
        "5000000100000001000001a219b8bfe500000000000000010000000000000000458a2ec9000000380000000000000000",
        "00000034005373c0190d444040404040a30a746578742f706c61696e404040404040005374c10602a101695400005375",
        "a006626f64792d30",
    );
    const REAL_SUB_ENTRIES: &str = concat!(
        "500000020000000d000001a219b8c1dc00000000000000010000000000000003fced359a000001660000000000000000",
        "90000a0000023d000000a21f8b0800fba1086b02ff85cb510a82401446e15bea8c8eb681f610a6a6d59b7b983650d483",
        "20153841eea66823b5b352827bdffef378e023a2926cf79ecfac570fbd8c3bdd5d7a6df7cd791c3559f751d3e7a4d979",
        "646f0f75b81cfb45410c7d087d862b0103080386a5800a42c5b0125043a819ae050c210c196e048c208c186e7fb0fa43",
        "03a119a01e61b6143286321632133281321132ff0217eac2f83d020000800003000000ae000000ae00000036005373c0",
        "1a0d530d4040404040a30a746578742f706c61696e404040404040005374c10602a10169540d005375a007626f64792d",
        "313300000036005373c01a0d530e4040404040a30a746578742f706c61696e404040404040005374c10602a10169540e",
        "005375a007626f64792d313400000036005373c01a0d530f4040404040a30a746578742f706c61696e40404040404000",
        "5374c10602a10169540f005375a007626f64792d3135",
    );

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn decodes_chunks_from_a_real_broker() {
        use crate::protocol::amqp::{MessageView, Value};
        let check = |raw: &str, first: u64, n: usize, entries: usize| {
            let chunk = Chunk::parse_slice(&unhex(raw)).unwrap();
            chunk.verify_crc().unwrap();
            let h = *chunk.header();
            assert_eq!((h.magic, h.version, h.chunk_type), (5, 0, ChunkType::User));
            assert_eq!((h.chunk_id, h.num_records as usize), (first, n));
            assert_eq!(chunk.entries().count(), entries);
            let mut seen = 0;
            ChunkDecoder::new()
                .for_each_record(&chunk, |r| {
                    let i = r.offset;
                    assert_eq!(r.offset, first + seen);
                    assert_eq!(r.timestamp, h.timestamp);
                    let msg = MessageView::parse(r.body).unwrap();
                    assert_eq!(msg.body_bytes(), Some(format!("body-{i}").as_bytes()));
                    let p = msg.properties().unwrap().unwrap();
                    assert_eq!(p.message_id, Some(Value::Ulong(i)));
                    assert_eq!(p.content_type.as_deref(), Some("text/plain"));
                    let app = msg.application_properties().unwrap();
                    assert_eq!(app.get("i").and_then(|v| v.as_u64()), Some(i));
                    assert_eq!(r.in_sub_entry, i >= 3);
                    let codec = if (3..13).contains(&i) {
                        Compression::Gzip
                    } else {
                        Compression::None
                    };
                    assert_eq!(r.compression, codec);
                    seen += 1;
                })
                .unwrap();
            assert_eq!(seen as usize, n);
            let d = DecodedChunk::decode(chunk, DecodeLimits::default()).unwrap();
            assert_eq!(d.len(), n);
        };
        check(REAL_SIMPLE, 0, 1, 1);
        check(REAL_SUB_ENTRIES, 3, 13, 2);
    }

    /// One entry of a generated chunk: a simple body or a batch with its codec.
    #[derive(Debug, Clone)]
    enum GenEntry {
        Simple(Vec<u8>),
        Batch(Compression, Vec<Vec<u8>>),
    }

    fn gen_entry() -> impl Strategy<Value = GenEntry> {
        let body = proptest::collection::vec(any::<u8>(), 0..64);
        prop_oneof![
            body.clone().prop_map(GenEntry::Simple),
            (0u8..5, proptest::collection::vec(body, 0..8)).prop_map(|(c, b)| {
                GenEntry::Batch(Compression::from_u8(c).unwrap_or_default(), b)
            }),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

        #[test]
        #[cfg_attr(miri, ignore)] // random inputs: too slow under Miri
        fn built_chunks_round_trip(
            chunk_id in any::<u64>().prop_map(|v| v >> 1),
            entries in proptest::collection::vec(gen_entry(), 0..12),
        ) {
            let mut b = ChunkBuilder::new(chunk_id);
            let mut expected = Vec::new();
            for e in &entries {
                match e {
                    GenEntry::Simple(body) => {
                        b.add_simple(body).unwrap();
                        expected.push(body.clone());
                    }
                    GenEntry::Batch(kind, batch) => {
                        b.add_sub_entry(*kind, batch).unwrap();
                        expected.extend(batch.iter().cloned());
                    }
                }
            }
            let chunk = Chunk::parse(b.build().unwrap()).unwrap();
            chunk.verify_crc().unwrap();
            let got = records_of(&chunk).unwrap();
            prop_assert_eq!(got.len(), expected.len());
            for (i, ((off, body), want)) in got.iter().zip(&expected).enumerate() {
                prop_assert_eq!(*off, chunk_id + i as u64);
                prop_assert_eq!(body, want);
            }
            let d = DecodedChunk::decode(chunk, DecodeLimits::default()).unwrap();
            prop_assert_eq!(d.len(), expected.len());
            for (r, want) in d.iter().zip(&expected) {
                prop_assert_eq!(r.body, &want[..]);
            }
        }

        #[test]
        #[cfg_attr(miri, ignore)] // random inputs: too slow under Miri
        fn arbitrary_bytes_never_panic(raw in proptest::collection::vec(any::<u8>(), 0..256)) {
            if let Ok(chunk) = Chunk::parse_slice(&raw) {
                let _ = chunk.verify_crc();
                let _ = chunk.entries().count();
                let _ = ChunkDecoder::new().for_each_record(&chunk, |_| {});
                let _ = DecodedChunk::decode(chunk, DecodeLimits::default());
            }
        }

        #[test]
        #[cfg_attr(miri, ignore)] // random inputs: too slow under Miri
        fn arbitrary_data_sections_never_panic(
            data in proptest::collection::vec(any::<u8>(), 0..512),
            entries in any::<u16>(),
            records in any::<u32>(),
        ) {
            let chunk = chunk_with(&data, entries, records);
            let mut n = 0u64;
            let res = ChunkDecoder::new().for_each_record(&chunk, |_| n += 1);
            if let Ok(v) = res {
                prop_assert_eq!(v, u64::from(records));
            }
            if let Ok(d) = DecodedChunk::decode(chunk, DecodeLimits::default()) {
                prop_assert_eq!(d.len() as u64, u64::from(records));
            }
        }

        #[test]
        #[cfg_attr(miri, ignore)] // random inputs: too slow under Miri
        fn mutated_chunks_never_panic(
            entries in proptest::collection::vec(gen_entry(), 1..6),
            flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..4),
        ) {
            let mut b = ChunkBuilder::new(0);
            for e in &entries {
                match e {
                    GenEntry::Simple(body) => { b.add_simple(body).unwrap(); }
                    GenEntry::Batch(kind, batch) => { b.add_sub_entry(*kind, batch).unwrap(); }
                }
            }
            let mut raw = b.build().unwrap().to_vec();
            let n = raw.len() - 48;
            for (at, v) in flips {
                if n > 0 {
                    raw[48 + at % n] ^= v;
                }
            }
            let header = ChunkHeader::parse(&raw).unwrap();
            let chunk = chunk_with(&raw[48..], header.num_entries, header.num_records);
            let _ = ChunkDecoder::new().for_each_record(&chunk, |_| {});
            let _ = DecodedChunk::decode(chunk, DecodeLimits::default());
        }
    }
}
