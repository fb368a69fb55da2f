//! Publisher commands: DeclarePublisher, Publish (with the allocation-free
//! [`PublishFrameWriter`]), PublishConfirm, PublishError, QueryPublisherSequence,
//! DeletePublisher.

use bytes::{BufMut, Bytes, BytesMut};

use super::{Body, take_bytes};
use crate::protocol::codes::{ResponseCode, key};
use crate::protocol::error::{DecodeError, EncodeError};
use crate::protocol::wire::{Reader, begin_frame, end_frame};

/// DeclarePublisher request. Wire: `correlationId uint32, publisherId uint8,
/// publisherReference string (≤ 255 bytes; empty = no deduplication), stream string`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeclarePublisher {
    pub correlation_id: u32,
    pub publisher_id: u8,
    /// Empty for an anonymous publisher (send empty, never null).
    pub publisher_reference: String,
    pub stream: String,
}

body!(DeclarePublisher {
    correlation_id,
    publisher_id,
    publisher_reference,
    stream
});

/// Publish frame version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum PublishVersion {
    /// Entries without filter value; sub-entry batches allowed.
    V1 = 1,
    /// Every entry carries a filter value (null allowed); 3.13+. The broker does not accept
    /// sub-entry batches in v2, so neither does this codec.
    V2 = 2,
}

impl PublishVersion {
    /// The version for a wire value, `None` if unsupported.
    pub const fn from_u16(v: u16) -> Option<Self> {
        match v {
            1 => Some(PublishVersion::V1),
            2 => Some(PublishVersion::V2),
            _ => None,
        }
    }

    /// The wire value.
    pub const fn as_u16(self) -> u16 {
        self as u16
    }
}

/// One entry of a Publish frame.
///
/// Simple, v1: `publishingId uint64, size uint32 (top bit 0), body`;
/// v2: `publishingId uint64, filterValue string (−1 = none), size uint32, body`.
///
/// Sub-entry batch (v1 only): `publishingId uint64, flags uint8 (1:1 | compression:3 |
/// reserved:4), recordCount uint16, uncompressedSize uint32, size uint32, data` where data is
/// the (compressed) concatenation of `size uint32, record` pairs; the reserved bits are written
/// as 0 and ignored when read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublishEntry {
    /// One message.
    Simple {
        publishing_id: u64,
        /// Only in v2 frames.
        filter_value: Option<String>,
        /// The message (normally an AMQP 1.0 encoded message).
        body: Bytes,
    },
    /// A batch of records under one publishing id.
    SubEntry {
        publishing_id: u64,
        /// Compression code 0–7 (0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd).
        compression: u8,
        record_count: u16,
        uncompressed_size: u32,
        /// The (compressed) records.
        data: Bytes,
    },
}

impl PublishEntry {
    /// The entry's publishing id.
    pub fn publishing_id(&self) -> u64 {
        match self {
            PublishEntry::Simple { publishing_id, .. }
            | PublishEntry::SubEntry { publishing_id, .. } => *publishing_id,
        }
    }

    /// Bytes this entry takes in a frame of `version`.
    pub fn encoded_len(&self, version: PublishVersion) -> usize {
        match self {
            PublishEntry::Simple {
                filter_value, body, ..
            } => simple_entry_len(version, filter_value.as_deref(), body.len()),
            PublishEntry::SubEntry { data, .. } => sub_entry_len(data.len()),
        }
    }
}

/// Bytes of a Publish frame before its first entry, size prefix included:
/// `size uint32, key uint16, version uint16, publisherId uint8, count int32`.
pub const PUBLISH_HEADER_LEN: usize = 13;

/// Bytes a simple entry takes: `8 + 4 + body_len` in v1; v2 adds `2 + filter length`.
pub fn simple_entry_len(
    version: PublishVersion,
    filter_value: Option<&str>,
    body_len: usize,
) -> usize {
    let filter = match version {
        PublishVersion::V1 => 0,
        PublishVersion::V2 => 2 + filter_value.map_or(0, str::len),
    };
    8 + filter + 4 + body_len
}

/// Bytes a sub-entry batch takes: `8 + 1 + 2 + 4 + 4 + data_len`.
pub const fn sub_entry_len(data_len: usize) -> usize {
    19 + data_len
}

/// Writes a Publish frame straight into a buffer, one entry at a time, without allocating
/// per message.
///
/// [`begin`](Self::begin) writes the header with placeholders; `push_*` append entries (each
/// is checked before any byte is written, so a failed push leaves the frame valid);
/// [`finish`](Self::finish) patches the entry count and the size prefix. The writer records
/// positions only: bytes before the frame may be consumed meanwhile, but nothing else may be
/// written to `buf` between `begin` and `finish`. Check [`frame_len`](Self::frame_len) plus
/// [`simple_entry_len`]/[`sub_entry_len`] against the negotiated `frame_max` before pushing.
#[derive(Debug)]
pub struct PublishFrameWriter {
    /// Bytes of the frame written so far. The frame start is found as `buf.len() - written`,
    /// so consuming bytes before the frame (`split_to`, `advance`) cannot desynchronise it.
    written: usize,
    version: PublishVersion,
    count: u32,
}

impl PublishFrameWriter {
    /// Appends the frame header (size and count are placeholders).
    pub fn begin(buf: &mut BytesMut, publisher_id: u8, version: PublishVersion) -> Self {
        let _ = begin_frame(buf);
        buf.put_u16(key::PUBLISH);
        buf.put_u16(version.as_u16());
        buf.put_u8(publisher_id);
        buf.put_i32(0);
        PublishFrameWriter {
            written: PUBLISH_HEADER_LEN,
            version,
            count: 0,
        }
    }

    /// The frame's version.
    pub fn version(&self) -> PublishVersion {
        self.version
    }

    /// Entries written so far.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// Bytes of the frame so far, size prefix included (the size prefix value will be this
    /// minus 4).
    pub fn frame_len(&self) -> usize {
        self.written
    }

    fn check_count(&self) -> Result<(), EncodeError> {
        if self.count >= i32::MAX as u32 {
            Err(EncodeError::TooManyElements(self.count as usize + 1))
        } else {
            Ok(())
        }
    }

    fn check_body(len: usize) -> Result<(), EncodeError> {
        if len > i32::MAX as usize {
            Err(EncodeError::BytesTooLong(len))
        } else {
            Ok(())
        }
    }

    /// Appends a simple entry without filter value (null filter value in v2).
    pub fn push_simple(
        &mut self,
        buf: &mut BytesMut,
        publishing_id: u64,
        body: &[u8],
    ) -> Result<(), EncodeError> {
        self.push_filtered(buf, publishing_id, None, body)
    }

    /// Appends a simple entry with an optional filter value; `Some` requires v2.
    pub fn push_filtered(
        &mut self,
        buf: &mut BytesMut,
        publishing_id: u64,
        filter_value: Option<&str>,
        body: &[u8],
    ) -> Result<(), EncodeError> {
        self.check_count()?;
        Self::check_body(body.len())?;
        match (self.version, filter_value) {
            (PublishVersion::V1, Some(_)) => {
                return Err(EncodeError::InvalidValue(
                    "filter value requires Publish v2",
                ));
            }
            (PublishVersion::V2, Some(f)) if f.len() > i16::MAX as usize => {
                return Err(EncodeError::StringTooLong(f.len()));
            }
            _ => {}
        }
        buf.put_u64(publishing_id);
        if self.version == PublishVersion::V2 {
            match filter_value {
                Some(f) => {
                    buf.put_i16(f.len() as i16);
                    buf.put_slice(f.as_bytes());
                }
                None => buf.put_i16(-1),
            }
        }
        buf.put_u32(body.len() as u32);
        buf.put_slice(body);
        self.count += 1;
        self.written += simple_entry_len(self.version, filter_value, body.len());
        Ok(())
    }

    /// Appends a sub-entry batch (v1 only). `data` is the (compressed) concatenation of
    /// `size uint32, record` pairs; `compression` is 0–7.
    pub fn push_sub_entry(
        &mut self,
        buf: &mut BytesMut,
        publishing_id: u64,
        compression: u8,
        record_count: u16,
        uncompressed_size: u32,
        data: &[u8],
    ) -> Result<(), EncodeError> {
        self.check_count()?;
        if self.version != PublishVersion::V1 {
            return Err(EncodeError::InvalidValue(
                "sub-entry batches require Publish v1",
            ));
        }
        if compression > 7 {
            return Err(EncodeError::InvalidValue("compression code above 7"));
        }
        let size = u32::try_from(data.len()).map_err(|_| EncodeError::BytesTooLong(data.len()))?;
        buf.put_u64(publishing_id);
        buf.put_u8(0x80 | (compression << 4));
        buf.put_u16(record_count);
        buf.put_u32(uncompressed_size);
        buf.put_u32(size);
        buf.put_slice(data);
        self.count += 1;
        self.written += sub_entry_len(data.len());
        Ok(())
    }

    /// Appends any [`PublishEntry`].
    pub fn push(&mut self, buf: &mut BytesMut, entry: &PublishEntry) -> Result<(), EncodeError> {
        match entry {
            PublishEntry::Simple {
                publishing_id,
                filter_value,
                body,
            } => self.push_filtered(buf, *publishing_id, filter_value.as_deref(), body),
            PublishEntry::SubEntry {
                publishing_id,
                compression,
                record_count,
                uncompressed_size,
                data,
            } => self.push_sub_entry(
                buf,
                *publishing_id,
                *compression,
                *record_count,
                *uncompressed_size,
                data,
            ),
        }
    }

    /// Where the frame starts in `buf` now, if the buffer still holds it.
    fn start(&self, buf: &BytesMut) -> Option<usize> {
        buf.len().checked_sub(self.written)
    }

    /// Patches the entry count and the size prefix; the frame is then complete.
    pub fn finish(self, buf: &mut BytesMut) -> Result<(), EncodeError> {
        let start = self.start(buf).ok_or(EncodeError::InvalidValue(
            "publish frame no longer in buffer",
        ))?;
        let count_at = start + PUBLISH_HEADER_LEN - 4;
        let slot = buf
            .get_mut(count_at..count_at + 4)
            .ok_or(EncodeError::InvalidValue(
                "publish frame no longer in buffer",
            ))?;
        slot.copy_from_slice(&self.count.to_be_bytes());
        end_frame(buf, start)
    }

    /// Removes the partly written frame from `buf`.
    pub fn abort(self, buf: &mut BytesMut) {
        if let Some(start) = self.start(buf) {
            buf.truncate(start);
        }
    }
}

/// Publish (no correlation id; answered asynchronously by PublishConfirm/PublishError).
/// Wire: `publisherId uint8, entries [PublishEntry]`; see [`PublishEntry`] for both versions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publish {
    pub publisher_id: u8,
    pub version: PublishVersion,
    pub entries: Vec<PublishEntry>,
}

impl Publish {
    /// Encodes the whole frame through [`PublishFrameWriter`].
    pub(super) fn encode_frame(&self, buf: &mut BytesMut) -> Result<(), EncodeError> {
        let mut w = PublishFrameWriter::begin(buf, self.publisher_id, self.version);
        for e in &self.entries {
            if let Err(err) = w.push(buf, e) {
                w.abort(buf);
                return Err(err);
            }
        }
        w.finish(buf)
    }

    pub(super) fn decode_body(
        r: &mut Reader<'_>,
        src: &Bytes,
        version: PublishVersion,
    ) -> Result<Self, DecodeError> {
        let publisher_id = r.u8()?;
        let min = match version {
            PublishVersion::V1 => 12,
            PublishVersion::V2 => 14,
        };
        let n = r.array_len(min)?;
        let mut entries = Vec::with_capacity(n);
        for _ in 0..n {
            entries.push(decode_entry(r, src, version)?);
        }
        Ok(Publish {
            publisher_id,
            version,
            entries,
        })
    }
}

fn decode_entry(
    r: &mut Reader<'_>,
    src: &Bytes,
    version: PublishVersion,
) -> Result<PublishEntry, DecodeError> {
    let publishing_id = r.u64()?;
    let filter_value = match version {
        PublishVersion::V1 => None,
        PublishVersion::V2 => r.nullable_str()?.map(str::to_owned),
    };
    let first = *r.rest().first().ok_or(DecodeError::Truncated {
        needed: 1,
        available: 0,
    })?;
    if first & 0x80 == 0 {
        let size = r.u32()?;
        let body = take_bytes(r, src, size as usize)?;
        return Ok(PublishEntry::Simple {
            publishing_id,
            filter_value,
            body,
        });
    }
    if version != PublishVersion::V1 {
        return Err(DecodeError::InvalidValue("sub-entry batch in Publish v2"));
    }
    let flags = r.u8()?;
    let record_count = r.u16()?;
    let uncompressed_size = r.u32()?;
    let size = r.u32()?;
    let data = take_bytes(r, src, size as usize)?;
    Ok(PublishEntry::SubEntry {
        publishing_id,
        compression: (flags >> 4) & 0x07,
        record_count,
        uncompressed_size,
        data,
    })
}

/// PublishConfirm (server → client). Wire: `publisherId uint8, publishingIds [uint64]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishConfirm {
    pub publisher_id: u8,
    pub publishing_ids: Vec<u64>,
}

body!(PublishConfirm {
    publisher_id,
    publishing_ids
});

/// One failed message in a PublishError. Wire: `publishingId uint64, code uint16`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublishingError {
    pub publishing_id: u64,
    pub code: ResponseCode,
}

/// PublishError (server → client). Wire: `publisherId uint8, errors [PublishingError]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishError {
    pub publisher_id: u8,
    pub errors: Vec<PublishingError>,
}

body!(PublishError {
    publisher_id,
    errors
});

body!(Field for PublishingError [10] { publishing_id, code });

/// QueryPublisherSequence request. Wire: `correlationId uint32, publisherReference string,
/// stream string`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryPublisherSequence {
    pub correlation_id: u32,
    pub publisher_reference: String,
    pub stream: String,
}

body!(QueryPublisherSequence {
    correlation_id,
    publisher_reference,
    stream
});

/// QueryPublisherSequence response. Wire: `correlationId uint32, code uint16,
/// sequence uint64` (0 for an unknown reference).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueryPublisherSequenceResponse {
    pub correlation_id: u32,
    pub code: ResponseCode,
    pub sequence: u64,
}

body!(QueryPublisherSequenceResponse {
    correlation_id,
    code,
    sequence
});

/// DeletePublisher request. Wire: `correlationId uint32, publisherId uint8`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeletePublisher {
    pub correlation_id: u32,
    pub publisher_id: u8,
}

body!(DeletePublisher {
    correlation_id,
    publisher_id
});
