//! Sub-entry batching: the open batch of a producer (records, tags, first id) and the
//! reusable codec that compresses it.
//!
//! A message joins the open batch as a record — `u32 length, body` with the AMQP data-section
//! header written in front of the body as for a simple entry — appended to one staging buffer
//! that keeps its capacity from batch to batch. When the batch is sealed its records are
//! compressed in one call into the codec's own reusable output buffer and copied into the
//! Publish frame after the sub-entry header (uncompressed: copied from the staging buffer).
//! Nothing is allocated per message, and in steady state nothing per batch: the codecs keep
//! their state (zstd context, deflate state, Snappy and LZ4 frame encoders) and buffers.
//!
//! Wire format (protocol reference §6): `publishingId u64, 1:1 | compression:3 | reserved:4,
//! numRecords u16, uncompressedSize u32, size u32, data`, with the framings of
//! [`crate::protocol::compression`] (gzip stream, framed Snappy, LZ4 frame, zstd frame) so
//! the Java, Go, .NET and Python clients read the batches back.

use std::io::Write;
use std::time::Instant;

use super::frame::{encoded_body_len, put_record};
use super::{BodyFormat, SendClock};
use crate::protocol::commands::PUBLISH_HEADER_LEN;
use crate::protocol::compression::{Compression, MAX_UNCOMPRESSED_SUB_ENTRY_SIZE};

/// Bytes a sub-entry takes in a Publish frame besides its (compressed) data: publishing id
/// (8), type byte (1), record count (2), uncompressed size (4), data size (4).
pub(super) const SUB_ENTRY_OVERHEAD: usize = 8 + 11;

/// Most records in one sub-entry (its count is a `u16`).
pub const MAX_SUB_ENTRY_RECORDS: usize = u16::MAX as usize;

/// Bytes a message takes as a sub-entry record before compression.
pub(super) fn record_len(format: BodyFormat<'_>, body_len: usize) -> usize {
    4 + encoded_body_len(format, body_len)
}

/// The most bytes `kind` may turn `n` bytes into (framing included). Generous on purpose: it
/// decides when a batch is cut so that its compressed form surely fits the frame.
///
/// The codecs' own worst cases are far below it: zstd `n + n/256 + 64`; framed Snappy stores
/// a chunk uncompressed when compression saves less than 1/8 (`n + 8` per 64 KiB + 10); LZ4
/// frames store incompressible blocks as they are (`n + 4` per 64 KiB + 11); deflate falls
/// back to stored blocks (5 bytes per block) inside 18 bytes of gzip framing.
pub(super) fn max_data_len(kind: Compression, n: usize) -> usize {
    match kind {
        Compression::None => n,
        _ => n + n / 16 + 1024,
    }
}

/// Whether a batch of `uncompressed` record bytes compressed with `kind` is within the
/// broker's 64 MiB cap and, as the only entry of a Publish frame, within `frame_max`.
pub(super) fn batch_fits(kind: Compression, uncompressed: usize, frame_max: usize) -> bool {
    uncompressed <= MAX_UNCOMPRESSED_SUB_ENTRY_SIZE
        && PUBLISH_HEADER_LEN + SUB_ENTRY_OVERHEAD + max_data_len(kind, uncompressed) <= frame_max
}

/// The open sub-entry of a producer (under its frame lock).
pub(super) struct SubEntryBuf {
    codec: Codec,
    /// Records per batch at most.
    max_records: usize,
    /// `u32 length, body` per message.
    records: Vec<u8>,
    /// The caller's tag of each message, in order (capacity `max_records`, kept).
    tags: Vec<usize>,
    /// Publishing id of the first message; the others follow it one by one.
    first_id: u64,
    /// When the first message was accepted.
    started: Instant,
    /// The same, in the producer's milliseconds (for the confirm timeout).
    started_ms: u64,
}

impl SubEntryBuf {
    pub(super) fn new(kind: Compression, max_records: usize) -> SubEntryBuf {
        SubEntryBuf {
            codec: Codec::new(kind),
            max_records,
            records: Vec::new(),
            tags: Vec::with_capacity(max_records),
            first_id: 0,
            started: Instant::now(),
            started_ms: 0,
        }
    }

    pub(super) fn compression(&self) -> Compression {
        self.codec.kind()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.tags.is_empty()
    }

    pub(super) fn is_full(&self) -> bool {
        self.tags.len() >= self.max_records
    }

    pub(super) fn tags(&self) -> &[usize] {
        &self.tags
    }

    #[cfg(test)]
    pub(super) fn first_id(&self) -> u64 {
        self.first_id
    }

    /// The batch's publishing id: that of its last message. (A named producer that restarts
    /// then resumes right after the last batch the broker kept.)
    pub(super) fn last_id(&self) -> u64 {
        self.first_id + self.tags.len() as u64 - 1
    }

    pub(super) fn started(&self) -> Instant {
        self.started
    }

    pub(super) fn started_ms(&self) -> u64 {
        self.started_ms
    }

    /// Record bytes so far (length prefixes included): the batch's uncompressed size.
    pub(super) fn uncompressed_len(&self) -> usize {
        self.records.len()
    }

    /// Whether a message of `record_len` bytes (see [`record_len`]) can join the batch: the
    /// batch must not be full, `id` must follow the batch's last id (ids inside a batch are
    /// consecutive), and the grown batch must pass [`batch_fits`].
    pub(super) fn can_take(&self, id: u64, record_len: usize, frame_max: usize) -> bool {
        self.is_empty()
            || (!self.is_full()
                && self.last_id().checked_add(1) == Some(id)
                && batch_fits(
                    self.codec.kind(),
                    self.records.len() + record_len,
                    frame_max,
                ))
    }

    /// Adds a message (the caller checked [`can_take`](Self::can_take)).
    pub(super) fn push(
        &mut self,
        id: u64,
        tag: usize,
        format: BodyFormat<'_>,
        body: &[u8],
        clock: &mut SendClock,
    ) {
        if self.tags.is_empty() {
            self.first_id = id;
            (self.started, self.started_ms) = clock.get();
        } else {
            debug_assert_eq!(self.last_id() + 1, id);
        }
        put_record(&mut self.records, format, body);
        self.tags.push(tag);
    }

    /// The batch as it goes on the wire: codec, record count, uncompressed size and the
    /// (compressed) data. A codec failure (which writing to memory does not produce in
    /// practice) sends the batch uncompressed rather than losing it.
    pub(super) fn encode(&mut self) -> (Compression, u16, u32, &[u8]) {
        let count = self.tags.len() as u16;
        let size = self.records.len() as u32;
        let kind = self.codec.kind();
        match self.codec.compress(&self.records) {
            Some(data) => (kind, count, size, data),
            None => (Compression::None, count, size, &self.records),
        }
    }

    /// Empties the batch (buffers keep their capacity).
    pub(super) fn clear(&mut self) {
        self.records.clear();
        self.tags.clear();
    }
}

/// Snappy's stream identifier chunk, which starts every framed stream.
const SNAPPY_STREAM_IDENTIFIER: [u8; 10] =
    [0xff, 0x06, 0x00, 0x00, b's', b'N', b'a', b'P', b'p', b'Y'];

/// gzip member header as flate2 writes it at the default level: magic, deflate, no flags, no
/// time, no extra flags, OS unknown.
const GZIP_HEADER: [u8; 10] = [0x1f, 0x8b, 0x08, 0, 0, 0, 0, 0, 0, 0xff];

/// A compressor kept for the producer's lifetime; each call makes one complete stream of its
/// codec.
enum Codec {
    None,
    Gzip {
        deflate: Box<flate2::Compress>,
        out: Vec<u8>,
    },
    Snappy {
        /// Writes its stream identifier only once; later streams get it from us.
        encoder: Box<snap::write::FrameEncoder<Vec<u8>>>,
        used: bool,
    },
    /// Starts a new frame after each `try_finish`.
    Lz4(Box<lz4_flex::frame::FrameEncoder<Vec<u8>>>),
    /// `None` if the zstd context could not be created: batches then go uncompressed.
    Zstd {
        cctx: Option<Box<zstd::bulk::Compressor<'static>>>,
        out: Vec<u8>,
    },
}

impl Codec {
    fn new(kind: Compression) -> Codec {
        match kind {
            Compression::None => Codec::None,
            Compression::Gzip => Codec::Gzip {
                deflate: Box::new(flate2::Compress::new(flate2::Compression::default(), false)),
                out: Vec::new(),
            },
            Compression::Snappy => Codec::Snappy {
                encoder: Box::new(snap::write::FrameEncoder::new(Vec::new())),
                used: false,
            },
            Compression::Lz4 => Codec::Lz4(Box::new(lz4_encoder())),
            Compression::Zstd => Codec::Zstd {
                cctx: zstd::bulk::Compressor::new(zstd::DEFAULT_COMPRESSION_LEVEL)
                    .ok()
                    .map(Box::new),
                out: Vec::new(),
            },
        }
    }

    fn kind(&self) -> Compression {
        match self {
            Codec::None => Compression::None,
            Codec::Gzip { .. } => Compression::Gzip,
            Codec::Snappy { .. } => Compression::Snappy,
            Codec::Lz4(_) => Compression::Lz4,
            Codec::Zstd { .. } => Compression::Zstd,
        }
    }

    /// One complete stream of the codec holding `input`; `None` on failure (and for
    /// [`Compression::None`]: the caller uses the input as it is).
    fn compress(&mut self, input: &[u8]) -> Option<&[u8]> {
        match self {
            Codec::None => None,
            Codec::Gzip { deflate, out } => {
                gzip(deflate, input, out)?;
                Some(out)
            }
            Codec::Snappy { encoder, used } => {
                let out = encoder.get_mut();
                out.clear();
                if *used {
                    out.extend_from_slice(&SNAPPY_STREAM_IDENTIFIER);
                }
                *used = true;
                let ok = encoder.write_all(input).and_then(|()| encoder.flush());
                match ok {
                    Ok(()) => Some(encoder.get_ref()),
                    Err(_) => {
                        // The encoder's state is unknown now: start afresh.
                        **encoder = snap::write::FrameEncoder::new(Vec::new());
                        *used = false;
                        None
                    }
                }
            }
            Codec::Lz4(encoder) => {
                encoder.get_mut().clear();
                let ok = encoder.write_all(input).is_ok() && encoder.try_finish().is_ok();
                match ok {
                    true => Some(encoder.get_ref()),
                    false => {
                        **encoder = lz4_encoder();
                        None
                    }
                }
            }
            Codec::Zstd { cctx, out } => {
                let cctx = cctx.as_mut()?;
                out.clear();
                out.reserve(zstd::compress_bound(input.len()));
                cctx.compress_to_buffer(input, out).ok()?;
                Some(out)
            }
        }
    }
}

/// As `CompressWriter`: independent 64 KiB blocks (the Java client's `LZ4FrameInputStream`
/// rejects linked blocks), no checksums.
fn lz4_encoder() -> lz4_flex::frame::FrameEncoder<Vec<u8>> {
    let info = lz4_flex::frame::FrameInfo::new()
        .block_mode(lz4_flex::frame::BlockMode::Independent)
        .block_size(lz4_flex::frame::BlockSize::Max64KB);
    lz4_flex::frame::FrameEncoder::with_frame_info(info, Vec::new())
}

/// A gzip member of `input` into `out` (cleared first), reusing `deflate`'s state.
fn gzip(deflate: &mut flate2::Compress, input: &[u8], out: &mut Vec<u8>) -> Option<()> {
    deflate.reset();
    out.clear();
    out.extend_from_slice(&GZIP_HEADER);
    out.reserve(max_data_len(Compression::Gzip, input.len()));
    loop {
        let consumed = deflate.total_in() as usize;
        let status = deflate
            .compress_vec(&input[consumed..], out, flate2::FlushCompress::Finish)
            .ok()?;
        if status == flate2::Status::StreamEnd {
            break;
        }
        if out.capacity() - out.len() < 1024 {
            out.reserve(64 * 1024);
        }
    }
    out.extend_from_slice(&crc32fast::hash(input).to_le_bytes());
    out.extend_from_slice(&(input.len() as u32).to_le_bytes());
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::compression::decompress;

    /// Incompressible bytes (xorshift).
    fn noise(n: usize, mut seed: u64) -> Vec<u8> {
        (0..n)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            })
            .collect()
    }

    #[test]
    fn each_call_makes_a_complete_stream_that_the_decoder_reads() {
        for kind in Compression::ALL {
            let mut codec = Codec::new(kind);
            // Several streams from one codec: state and buffers are reused.
            for (i, input) in [
                // (Never empty: a batch is sealed only with messages in it.)
                b"hello hello hello hello".to_vec(),
                noise(200_000, 7),
                vec![0x5a; 150_000],
                b"x".to_vec(),
            ]
            .iter()
            .enumerate()
            {
                let data = match codec.compress(input) {
                    Some(d) => d.to_vec(),
                    None => {
                        assert_eq!(kind, Compression::None);
                        input.clone()
                    }
                };
                let mut back = Vec::new();
                decompress(kind, &data, input.len(), &mut back)
                    .unwrap_or_else(|e| panic!("{} stream {i}: {e}", kind.name()));
                assert_eq!(&back, input, "{} stream {i}", kind.name());
                assert!(
                    data.len() <= max_data_len(kind, input.len()),
                    "{} stream {i}: {} > bound",
                    kind.name(),
                    data.len()
                );
            }
        }
    }

    #[test]
    fn the_bound_holds_for_incompressible_data() {
        for kind in Compression::ALL {
            let mut codec = Codec::new(kind);
            for n in [1, 100, 65_536, 65_537, 1 << 20] {
                let input = noise(n, n as u64 + 1);
                let len = codec.compress(&input).map_or(n, <[u8]>::len);
                assert!(
                    len <= max_data_len(kind, n),
                    "{} of {n} bytes: {len}",
                    kind.name()
                );
            }
        }
    }

    #[test]
    fn compressed_streams_match_the_shared_codec_framing() {
        // Same framing as `protocol::compression::compress` (gzip header bytes, Snappy stream
        // identifier, LZ4 frame magic, zstd magic).
        let input = b"abcabcabcabcabcabcabcabc".repeat(10);
        for kind in [
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let mut codec = Codec::new(kind);
            codec.compress(&input).unwrap();
            let ours = codec.compress(&input).unwrap().to_vec();
            let mut theirs = Vec::new();
            crate::protocol::compression::compress(kind, &input, &mut theirs).unwrap();
            let n = match kind {
                Compression::Gzip => 10,
                Compression::Snappy => 10,
                _ => 4,
            };
            assert_eq!(ours[..n], theirs[..n], "{}", kind.name());
        }
    }

    #[test]
    fn batches_are_cut_by_count_id_and_size() {
        let mut b = SubEntryBuf::new(Compression::None, 3);
        let now = Instant::now();
        assert!(b.is_empty());
        assert!(b.can_take(10, 10, 1 << 20));
        b.push(
            10,
            100,
            BodyFormat::Raw,
            b"abcdef",
            &mut SendClock::fixed(now, 5),
        );
        assert_eq!((b.first_id(), b.last_id(), b.started_ms()), (10, 10, 5));
        assert_eq!(b.uncompressed_len(), record_len(BodyFormat::Raw, 6));
        // Not the next id: a new batch.
        assert!(!b.can_take(12, 10, 1 << 20));
        assert!(b.can_take(11, 10, 1 << 20));
        b.push(
            11,
            101,
            BodyFormat::AmqpData,
            b"x",
            &mut SendClock::fixed(now, 6),
        );
        b.push(12, 102, BodyFormat::Raw, b"", &mut SendClock::fixed(now, 7));
        assert!(b.is_full());
        assert!(!b.can_take(13, 4, 1 << 20));
        assert_eq!(b.tags(), &[100, 101, 102]);
        assert_eq!(b.last_id(), 12);
        let (kind, count, size, data) = b.encode();
        assert_eq!(
            (kind, count, size as usize),
            (Compression::None, 3, data.len())
        );
        let mut want = Vec::new();
        for rec in [&b"abcdef"[..], &[0x00, 0x53, 0x75, 0xa0, 1, b'x'], b""] {
            want.extend_from_slice(&(rec.len() as u32).to_be_bytes());
            want.extend_from_slice(rec);
        }
        assert_eq!(data, &want[..]);
        b.clear();
        assert!(b.is_empty());

        // Size: the frame must hold the batch's worst case.
        let frame_max = PUBLISH_HEADER_LEN + SUB_ENTRY_OVERHEAD + 100;
        assert!(batch_fits(Compression::None, 100, frame_max));
        assert!(!batch_fits(Compression::None, 101, frame_max));
        assert!(!batch_fits(Compression::Zstd, 100, frame_max));
        b.push(
            0,
            0,
            BodyFormat::Raw,
            &[0; 46],
            &mut SendClock::fixed(now, 0),
        );
        assert!(b.can_take(1, 50, frame_max));
        assert!(!b.can_take(1, 51, frame_max));
        // The broker's 64 MiB cap, whatever frame_max.
        assert!(batch_fits(
            Compression::None,
            MAX_UNCOMPRESSED_SUB_ENTRY_SIZE,
            usize::MAX / 2
        ));
        assert!(!batch_fits(
            Compression::None,
            MAX_UNCOMPRESSED_SUB_ENTRY_SIZE + 1,
            usize::MAX / 2
        ));
    }
}
