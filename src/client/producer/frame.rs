//! The Publish frame a producer is filling: entries are encoded straight into one
//! [`BytesMut`], the body copied once, and the finished frame is split off as [`Bytes`] for
//! [`Connection::send_bytes`](crate::client::Connection::send_bytes).
//!
//! Same wire layout as [`PublishFrameWriter`](crate::protocol::commands::PublishFrameWriter)
//! (checked against the codec's decoder in the tests below), plus one thing it cannot do: wrap
//! a body as an AMQP 1.0 message with a single data section *while* copying it into the frame
//! (`00 53 75` + `a0 len8` or `b0 len32`, then the bytes), with no intermediate buffer.
//!
//! The frame always starts at offset 0 of the buffer: [`FrameBuf::finish`] splits it off, and
//! the buffer keeps the rest of its capacity for the next frame, so frames share allocations
//! ([`BUF_CHUNK`] bytes at a time) instead of allocating per frame or per message.

use std::time::Instant;

use bytes::{BufMut, Bytes, BytesMut};

use super::BodyFormat;
use crate::protocol::codes::key;
use crate::protocol::commands::{PUBLISH_HEADER_LEN, PublishVersion, simple_entry_len};
use crate::protocol::compression::Compression;

/// Capacity reserved at a time for frames.
const BUF_CHUNK: usize = 512 * 1024;
/// Below this much spare capacity a new frame reserves [`BUF_CHUNK`] more.
const BUF_LOW: usize = 64 * 1024;

/// First bit of a sub-entry's type byte (the codec's code follows in bits 6..4).
const SUB_ENTRY_FLAG: u8 = 0x80;

/// AMQP 1.0 data section header: described type `0x00`, smallulong descriptor `0x53 0x75`
/// (`amqp:data:binary`).
const DATA_SECTION: [u8; 3] = [0x00, 0x53, 0x75];
/// `vbin8` constructor: one length byte.
const VBIN8: u8 = 0xa0;
/// `vbin32` constructor: four length bytes.
const VBIN32: u8 = 0xb0;

/// Bytes the body takes in the entry once formatted: the body itself, plus 5 (up to 255
/// bytes) or 8 bytes of AMQP data-section header for [`BodyFormat::AmqpData`]; the encoded
/// message for [`BodyFormat::Message`] (`body_len` unused).
pub(super) fn encoded_body_len(format: BodyFormat<'_>, body_len: usize) -> usize {
    match format {
        BodyFormat::Raw => body_len,
        BodyFormat::AmqpData if body_len <= u8::MAX as usize => body_len + 5,
        BodyFormat::AmqpData => body_len + 8,
        BodyFormat::Message(m) => m.encoded_len(),
        BodyFormat::MessageWithBody(m) => m.encoded_len_with_body(body_len),
    }
}

/// Writes a message as it is stored: `u32` length, then the body as [`encoded_body_len`]
/// says (the AMQP data-section header written in front of it for [`BodyFormat::AmqpData`];
/// the message encoded in place for [`BodyFormat::Message`]). The same bytes make a simple
/// entry's size and body and a sub-entry record.
pub(super) fn put_record(b: &mut impl BufMut, format: BodyFormat<'_>, body: &[u8]) {
    b.put_u32(encoded_body_len(format, body.len()) as u32);
    match format {
        BodyFormat::Message(m) => return m.encode(b),
        BodyFormat::MessageWithBody(m) => return m.encode_with_body(body, b),
        _ => {}
    }
    if format == BodyFormat::AmqpData {
        b.put_slice(&DATA_SECTION);
        match u8::try_from(body.len()) {
            Ok(n) => {
                b.put_u8(VBIN8);
                b.put_u8(n);
            }
            Err(_) => {
                b.put_u8(VBIN32);
                b.put_u32(body.len() as u32);
            }
        }
    }
    b.put_slice(body);
}

/// Bytes a message takes as a simple entry of a frame of `version`.
pub(super) fn entry_len(
    version: PublishVersion,
    filter_value: Option<&str>,
    format: BodyFormat<'_>,
    body_len: usize,
) -> usize {
    simple_entry_len(version, filter_value, encoded_body_len(format, body_len))
}

/// The frame being filled (if any) and its buffer.
#[derive(Debug)]
pub(super) struct FrameBuf {
    buf: BytesMut,
    version: PublishVersion,
    /// Entries (simple entries and sub-entries).
    count: u32,
    /// Messages (a sub-entry counts its records).
    messages: u32,
    /// When the first entry was written, and that in ms since the producer's epoch (what
    /// each entry's confirm-timeout clock starts from).
    started: Instant,
    started_ms: u64,
}

impl FrameBuf {
    pub(super) fn new() -> Self {
        FrameBuf {
            buf: BytesMut::new(),
            version: PublishVersion::V1,
            count: 0,
            messages: 0,
            started: Instant::now(),
            started_ms: 0,
        }
    }

    /// Whether a frame has been begun (and not finished or discarded).
    pub(super) fn is_open(&self) -> bool {
        !self.buf.is_empty()
    }

    pub(super) fn version(&self) -> PublishVersion {
        self.version
    }

    /// Entries in the open frame.
    pub(super) fn count(&self) -> u32 {
        self.count
    }

    /// Messages in the open frame, those of its sub-entries included.
    pub(super) fn messages(&self) -> u32 {
        self.messages
    }

    /// Bytes of the open frame so far, size prefix included.
    pub(super) fn len(&self) -> usize {
        self.buf.len()
    }

    /// When the open frame got its first entry.
    pub(super) fn started(&self) -> Instant {
        self.started
    }

    /// The same in ms since the producer's epoch.
    pub(super) fn started_ms(&self) -> u64 {
        self.started_ms
    }

    /// Starts a frame (size and count are patched by [`finish`](Self::finish)) at `now`: the
    /// instant and the ms since the producer's epoch.
    pub(super) fn begin(
        &mut self,
        publisher_id: u8,
        version: PublishVersion,
        (now, now_ms): (Instant, u64),
    ) {
        debug_assert!(!self.is_open());
        if self.buf.capacity() < BUF_LOW {
            self.buf.reserve(BUF_CHUNK);
        }
        self.buf.put_u32(0);
        self.buf.put_u16(key::PUBLISH);
        self.buf.put_u16(version.as_u16());
        self.buf.put_u8(publisher_id);
        self.buf.put_i32(0);
        self.version = version;
        self.count = 0;
        self.messages = 0;
        self.started = now;
        self.started_ms = now_ms;
    }

    /// Appends one simple entry. The caller has checked what the codec would check: a filter
    /// value only in a v2 frame and at most `i16::MAX` bytes, the formatted body at most
    /// `i32::MAX` bytes, the frame within `frame_max`.
    pub(super) fn push(
        &mut self,
        publishing_id: u64,
        filter_value: Option<&str>,
        format: BodyFormat<'_>,
        body: &[u8],
    ) {
        debug_assert!(self.is_open());
        debug_assert!(filter_value.is_none() || self.version == PublishVersion::V2);
        let b = &mut self.buf;
        b.put_u64(publishing_id);
        if self.version == PublishVersion::V2 {
            match filter_value {
                Some(f) => {
                    b.put_i16(f.len() as i16);
                    b.put_slice(f.as_bytes());
                }
                None => b.put_i16(-1),
            }
        }
        put_record(b, format, body);
        self.count += 1;
        self.messages += 1;
    }

    /// Appends one sub-entry batch under `publishing_id`: the 11-byte sub-entry header, then
    /// `data` (the `records` records of `uncompressed_size` bytes, compressed with
    /// `compression`). The caller has checked that the frame stays within `frame_max`.
    pub(super) fn push_sub_entry(
        &mut self,
        publishing_id: u64,
        compression: Compression,
        records: u16,
        uncompressed_size: u32,
        data: &[u8],
    ) {
        debug_assert!(self.is_open());
        debug_assert_eq!(self.version, PublishVersion::V1);
        let b = &mut self.buf;
        b.put_u64(publishing_id);
        b.put_u8(SUB_ENTRY_FLAG | (compression.code() << 4));
        b.put_u16(records);
        b.put_u32(uncompressed_size);
        b.put_u32(data.len() as u32);
        b.put_slice(data);
        self.count += 1;
        self.messages += u32::from(records);
    }

    /// Patches count and size and splits the finished frame off; `None` when no frame is
    /// open.
    pub(super) fn finish(&mut self) -> Option<Bytes> {
        if !self.is_open() {
            return None;
        }
        let size = (self.buf.len() - 4) as u32;
        self.buf[..4].copy_from_slice(&size.to_be_bytes());
        self.buf[PUBLISH_HEADER_LEN - 4..PUBLISH_HEADER_LEN]
            .copy_from_slice(&self.count.to_be_bytes());
        self.count = 0;
        self.messages = 0;
        Some(self.buf.split().freeze())
    }

    /// Drops the open frame, if any.
    pub(super) fn discard(&mut self) {
        self.buf.clear();
        self.count = 0;
        self.messages = 0;
    }

    /// Changes the publisher id of the open frame (begun before a recovery, sent after it).
    pub(super) fn set_publisher_id(&mut self, publisher_id: u8) {
        if self.is_open() {
            self.buf[PUBLISHER_ID_AT] = publisher_id;
        }
    }
}

/// Where a Publish frame (size prefix included) holds its publisher id.
const PUBLISHER_ID_AT: usize = 8;

/// The entries of a finished Publish frame this module wrote: `(publishing id, bytes of the
/// entry)`, in order. Walks the lengths only; stops at the first inconsistency (which a frame
/// from [`FrameBuf`] never has).
pub(super) fn entries(frame: &[u8]) -> impl Iterator<Item = (u64, std::ops::Range<usize>)> + '_ {
    let v2 = frame.get(6..8) == Some(&PublishVersion::V2.as_u16().to_be_bytes()[..]);
    let mut at = PUBLISH_HEADER_LEN;
    std::iter::from_fn(move || {
        let start = at;
        let be = |i: usize, n: usize| -> Option<u64> {
            let b = frame.get(i..i + n)?;
            Some(b.iter().fold(0u64, |acc, &x| (acc << 8) | u64::from(x)))
        };
        let id = be(start, 8)?;
        let mut p = start + 8;
        if v2 {
            let len = be(p, 2)? as u16 as i16;
            p += 2 + usize::try_from(len).unwrap_or(0);
        }
        let first = *frame.get(p)?;
        p += if !v2 && first & SUB_ENTRY_FLAG != 0 {
            // type, record count, uncompressed size, then the data's size and the data
            11 + be(p + 7, 4)? as usize
        } else {
            4 + be(p, 4)? as usize
        };
        if p > frame.len() {
            return None;
        }
        at = p;
        Some((id, start..p))
    })
}

/// Writes into `out` a copy of the finished Publish `frame` for `publisher_id` holding only
/// the entries whose id `keep` accepts, and returns their ids' count (nothing is written
/// for 0). For re-sending after a recovery: one copy of what is still unconfirmed.
pub(super) fn rebuild(
    frame: &[u8],
    publisher_id: u8,
    mut keep: impl FnMut(u64) -> bool,
    out: &mut BytesMut,
) -> u32 {
    let start = out.len();
    out.put_slice(&frame[..PUBLISH_HEADER_LEN]);
    out[start + PUBLISHER_ID_AT] = publisher_id;
    let mut count = 0u32;
    for (id, range) in entries(frame) {
        if keep(id) {
            out.put_slice(&frame[range]);
            count += 1;
        }
    }
    if count == 0 {
        out.truncate(start);
        return 0;
    }
    let size = (out.len() - start - 4) as u32;
    out[start..start + 4].copy_from_slice(&size.to_be_bytes());
    out[start + PUBLISH_HEADER_LEN - 4..start + PUBLISH_HEADER_LEN]
        .copy_from_slice(&count.to_be_bytes());
    count
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::amqp::{Message, MessageView};
    use crate::protocol::commands::{Frame, Publish, PublishEntry, split_frame};

    fn decode(frame: Bytes) -> Publish {
        let mut b = BytesMut::from(&frame[..]);
        let body = split_frame(&mut b, 0).unwrap().unwrap();
        assert!(b.is_empty());
        match Frame::decode(body).unwrap() {
            Frame::Publish(p) => p,
            f => panic!("not a publish frame: {f:?}"),
        }
    }

    #[test]
    fn amqp_data_wrapping_matches_the_amqp_encoder() {
        for len in [0usize, 1, 255, 256, 70_000] {
            let body: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let mut f = FrameBuf::new();
            f.begin(3, PublishVersion::V1, (Instant::now(), 0));
            f.push(7, None, BodyFormat::AmqpData, &body);
            let p = decode(f.finish().unwrap());
            let PublishEntry::Simple { body: got, .. } = &p.entries[0] else {
                panic!("simple entry expected")
            };
            let mut want = BytesMut::new();
            Message::new(&body[..]).encode(&mut want).unwrap();
            assert_eq!(&got[..], &want[..], "len {len}");
            assert_eq!(got.len(), encoded_body_len(BodyFormat::AmqpData, len));
            let view = MessageView::parse(got).unwrap();
            assert_eq!(view.body_bytes(), Some(&body[..]));
        }
    }

    #[test]
    fn whole_messages_are_encoded_in_place_as_entries_and_records() {
        use crate::protocol::amqp::{MessageBuilder, PropertyField, Value};
        let mut m = MessageBuilder::new();
        m.set_property(PropertyField::Subject, &"s".into()).unwrap();
        m.add_application_property("k", &Value::Long(-7)).unwrap();
        m.set_body(&[5u8; 300]).unwrap();
        let format = BodyFormat::Message(&m);
        assert_eq!(encoded_body_len(format, 0), m.encoded_len());
        let mut f = FrameBuf::new();
        f.begin(1, PublishVersion::V2, (Instant::now(), 0));
        f.push(3, Some("f"), format, b"ignored");
        let len = f.len();
        let p = decode(f.finish().unwrap());
        assert_eq!(
            len,
            PUBLISH_HEADER_LEN + entry_len(PublishVersion::V2, Some("f"), format, 7)
        );
        let PublishEntry::Simple { body, .. } = &p.entries[0] else {
            panic!("simple entry expected")
        };
        assert_eq!(&body[..], &m.to_bytes()[..]);
        let mut record = Vec::new();
        put_record(&mut record, format, b"ignored");
        assert_eq!(&record[4..], &m.to_bytes()[..]);
        assert_eq!(record[..4], (m.encoded_len() as u32).to_be_bytes());
    }

    #[test]
    fn frames_decode_with_the_codec_in_both_versions() {
        let mut f = FrameBuf::new();
        assert!(f.finish().is_none());
        f.begin(9, PublishVersion::V1, (Instant::now(), 0));
        f.push(1, None, BodyFormat::Raw, b"raw");
        f.push(2, None, BodyFormat::AmqpData, b"amqp");
        let len = f.len();
        let frame = f.finish().unwrap();
        assert_eq!(frame.len(), len);
        assert_eq!(
            len,
            PUBLISH_HEADER_LEN
                + entry_len(PublishVersion::V1, None, BodyFormat::Raw, 3)
                + entry_len(PublishVersion::V1, None, BodyFormat::AmqpData, 4)
        );
        let p = decode(frame);
        assert_eq!((p.publisher_id, p.version), (9, PublishVersion::V1));
        assert_eq!(p.entries.len(), 2);
        assert_eq!(
            p.entries[0],
            PublishEntry::Simple {
                publishing_id: 1,
                filter_value: None,
                body: Bytes::from_static(b"raw"),
            }
        );
        assert_eq!(p.entries[1].publishing_id(), 2);

        // The buffer is reused for the next frame.
        assert!(!f.is_open());
        f.begin(9, PublishVersion::V2, (Instant::now(), 0));
        f.push(3, Some("eu"), BodyFormat::Raw, b"x");
        f.push(4, None, BodyFormat::Raw, b"y");
        assert_eq!(f.count(), 2);
        let p = decode(f.finish().unwrap());
        assert_eq!(p.version, PublishVersion::V2);
        assert_eq!(
            p.entries,
            vec![
                PublishEntry::Simple {
                    publishing_id: 3,
                    filter_value: Some("eu".into()),
                    body: Bytes::from_static(b"x"),
                },
                PublishEntry::Simple {
                    publishing_id: 4,
                    filter_value: None,
                    body: Bytes::from_static(b"y"),
                },
            ]
        );
    }

    #[test]
    fn sub_entries_decode_with_the_codec_and_count_their_messages() {
        let mut f = FrameBuf::new();
        f.begin(4, PublishVersion::V1, (Instant::now(), 0));
        f.push(1, None, BodyFormat::Raw, b"plain");
        let mut records = Vec::new();
        put_record(&mut records, BodyFormat::Raw, b"a");
        put_record(&mut records, BodyFormat::AmqpData, b"b");
        f.push_sub_entry(3, Compression::None, 2, records.len() as u32, &records);
        f.push_sub_entry(9, Compression::Zstd, 7, 1234, b"zz");
        assert_eq!((f.count(), f.messages()), (3, 10));
        let p = decode(f.finish().unwrap());
        assert_eq!(p.entries.len(), 3);
        assert_eq!(
            p.entries[1],
            PublishEntry::SubEntry {
                publishing_id: 3,
                compression: 0,
                record_count: 2,
                uncompressed_size: records.len() as u32,
                data: Bytes::from(records.clone()),
            }
        );
        assert_eq!(
            p.entries[2],
            PublishEntry::SubEntry {
                publishing_id: 9,
                compression: 4,
                record_count: 7,
                uncompressed_size: 1234,
                data: Bytes::from_static(b"zz"),
            }
        );
        assert_eq!(f.messages(), 0);
    }

    #[test]
    fn rebuilt_frames_keep_only_the_chosen_entries_under_the_new_publisher() {
        for version in [PublishVersion::V1, PublishVersion::V2] {
            let mut f = FrameBuf::new();
            f.begin(4, version, (Instant::now(), 0));
            f.push(10, None, BodyFormat::Raw, b"a");
            if version == PublishVersion::V2 {
                f.push(11, Some("eu"), BodyFormat::AmqpData, b"bb");
            } else {
                let mut records = Vec::new();
                put_record(&mut records, BodyFormat::Raw, b"x");
                f.push_sub_entry(11, Compression::None, 1, records.len() as u32, &records);
            }
            f.push(12, None, BodyFormat::AmqpData, &[7u8; 300]);
            let frame = f.finish().unwrap();
            let ids: Vec<u64> = entries(&frame).map(|(id, _)| id).collect();
            assert_eq!(ids, vec![10, 11, 12]);
            let original = decode(frame.clone());

            let mut out = BytesMut::new();
            assert_eq!(rebuild(&frame, 9, |id| id != 10, &mut out), 2);
            let p = decode(out.split().freeze());
            assert_eq!((p.publisher_id, p.version), (9, version));
            assert_eq!(p.entries, original.entries[1..].to_vec());

            assert_eq!(rebuild(&frame, 9, |_| false, &mut out), 0);
            assert!(out.is_empty());
        }
    }

    #[test]
    fn the_open_frame_takes_a_new_publisher_id() {
        let mut f = FrameBuf::new();
        f.set_publisher_id(1); // no frame open: nothing to patch
        f.begin(2, PublishVersion::V1, (Instant::now(), 0));
        f.push(1, None, BodyFormat::Raw, b"a");
        f.set_publisher_id(5);
        assert_eq!(decode(f.finish().unwrap()).publisher_id, 5);
    }

    #[test]
    fn discard_forgets_the_open_frame() {
        let mut f = FrameBuf::new();
        f.begin(0, PublishVersion::V1, (Instant::now(), 0));
        f.push(1, None, BodyFormat::Raw, b"a");
        f.discard();
        assert!(!f.is_open());
        assert!(f.finish().is_none());
    }
}
