//! `rmqs_chunk` and `rmqs_message`: zero-copy views of delivered chunks and their messages.

use std::borrow::Cow;
#[cfg(test)]
use std::ffi::CStr;
use std::ffi::{CString, c_char};
use std::sync::{Arc, Mutex, OnceLock};

use super::args::{Handle, handle_arg, str_arg};
use super::message::{
    header_field, property_field, put_value, rmqs_value, rmqs_value_type_code, section_kind,
    value_out,
};
use super::panic::ffi_boundary;
use crate::client::DeliveredChunk;
use crate::protocol::amqp::{MessageLayout, MessageView, SectionKind, Value};

/// One chunk delivered to a consumer: a zero-copy view of the Deliver frame's bytes. Opaque,
/// reference-counted, immutable.
///
/// A chunk callback or an `RMQS_EVENT_CHUNK` event lends it: valid during the callback / until
/// the event is freed. `rmqs_chunk_retain()` keeps it longer, `rmqs_chunk_release()` gives each
/// retained reference back. When the last reference goes (the callback returned or the event
/// was freed, and every retain was released), the chunk's memory is freed and, with the
/// `on_release` credit policy, the broker gets one credit for another chunk: the chunks an
/// application holds bound the consumer's memory (at most `initial_credit` of them).
///
/// Messages before the offset the consumer asked for (`offset:N` starts in the chunk that
/// contains N) are not visible.
///
/// Thread safety: immutable; may be read from several threads at once and released from any
/// thread.
///
/// @ingroup rmqs_messages
pub struct rmqs_chunk {
    magic: u64,
    chunk: DeliveredChunk,
    stream: CString,
    /// Index of the partition among the super consumer's partitions; -1 outside one.
    partition: i32,
    messages: OnceLock<Box<[rmqs_message]>>,
    /// One [`Side`] per message, made when an accessor first needs one in this chunk: a
    /// chunk read for its bodies only never has it, and its messages stay small (56 bytes,
    /// 184 with the side inline).
    sides: OnceLock<Box<[Side]>>,
}

impl Handle for rmqs_chunk {
    const MAGIC: u64 = 0x726d_7173_6368_6e6b; // "rmqschnk"
    const NAME: &'static str = "rmqs_chunk";
    fn magic(&self) -> u64 {
        self.magic
    }
}

/// A reference to a chunk held by the library (an event, a callback in progress).
pub(crate) struct ChunkRef(Arc<rmqs_chunk>);

impl ChunkRef {
    pub(crate) fn new(chunk: DeliveredChunk) -> ChunkRef {
        Self::in_partition(chunk, -1)
    }

    /// A chunk of a super consumer's partition `partition` (src/ffi/super_consumer.rs).
    pub(crate) fn in_partition(chunk: DeliveredChunk, partition: i32) -> ChunkRef {
        let stream = super::queue::to_cstring(chunk.stream().to_string());
        ChunkRef(Arc::new(rmqs_chunk {
            magic: rmqs_chunk::MAGIC,
            chunk,
            stream,
            partition,
            messages: OnceLock::new(),
            sides: OnceLock::new(),
        }))
    }

    /// The pointer handed to C (borrowed from this reference).
    pub(crate) fn as_ptr(&self) -> *const rmqs_chunk {
        Arc::as_ptr(&self.0)
    }
}

/// Bytes owned by the chunk a message belongs to (stable while the chunk lives).
#[derive(Clone, Copy)]
struct Span(*const u8, usize);

// SAFETY: points into the immutable, shared bytes of the chunk that owns the span.
unsafe impl Send for Span {}
unsafe impl Sync for Span {}

impl Span {
    fn of(s: &[u8]) -> Span {
        Span(s.as_ptr(), s.len())
    }

    /// # Safety
    /// The chunk owning the bytes must be alive for `'a`.
    unsafe fn get<'a>(self) -> &'a [u8] {
        if self.1 == 0 {
            &[]
        } else {
            // SAFETY: per the caller's contract.
            unsafe { std::slice::from_raw_parts(self.0, self.1) }
        }
    }
}

/// One message of a chunk. Opaque, immutable view owned by its chunk.
///
/// Obtained from `rmqs_chunk_message()`; valid as long as the chunk is (never freed on its
/// own). Bytes and strings returned by its accessors are valid as long as the chunk too, and
/// are not NUL-terminated: use the returned length.
///
/// Thread safety: may be read from several threads at once.
///
/// @ingroup rmqs_messages
pub struct rmqs_message {
    magic: u64,
    offset: u64,
    timestamp: i64,
    raw: Span,
    side: SideRef,
}

/// What a message finds out about itself once and keeps.
#[derive(Default)]
struct Side {
    /// Where the record's AMQP sections are, found by the first accessor that needs them (one
    /// parse and validation of the record); `None` when it is not an AMQP message. Later
    /// accessors get the view from it in constant time.
    layout: OnceLock<Option<MessageLayout>>,
    /// Text made for values that are not strings in the record (numbers, uuids, ...).
    texts: Mutex<Vec<KeptText>>,
}

/// Where a message's [`Side`] is: in its chunk's table (at its position), or with the code
/// that lent the message for a call.
#[derive(Clone, Copy)]
enum SideRef {
    Chunk(*const rmqs_chunk, usize),
    Lent(*const Side),
}

// SAFETY: points to the chunk that owns the message (alive as long as the message is) or to
// the lender's Side (alive for the call that lends the message); both are Sync.
unsafe impl Send for SideRef {}
unsafe impl Sync for SideRef {}

/// A formatted text and what it is kept under (NUL-terminated; the length given out
/// excludes the NUL).
type KeptText = (TextKey<Box<str>>, Box<[u8]>);

/// What a formatted text is kept under in its message: a property (by code), an application
/// property (by key), or the key or the value of the application property at a position.
/// `S` is `&str` to look one up (no allocation) and `Box<str>` to keep it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum TextKey<S> {
    Property(i32),
    App(S),
    KeyAt(usize),
    ValueAt(usize),
}

impl TextKey<&str> {
    fn is(&self, kept: &TextKey<Box<str>>) -> bool {
        match (self, kept) {
            (TextKey::App(a), TextKey::App(b)) => *a == &**b,
            (TextKey::Property(a), TextKey::Property(b)) => a == b,
            (TextKey::KeyAt(a), TextKey::KeyAt(b)) | (TextKey::ValueAt(a), TextKey::ValueAt(b)) => {
                a == b
            }
            _ => false,
        }
    }

    fn kept(self) -> TextKey<Box<str>> {
        match self {
            TextKey::Property(p) => TextKey::Property(p),
            TextKey::App(k) => TextKey::App(k.into()),
            TextKey::KeyAt(i) => TextKey::KeyAt(i),
            TextKey::ValueAt(i) => TextKey::ValueAt(i),
        }
    }
}

impl Handle for rmqs_message {
    const MAGIC: u64 = 0x726d_7173_6d73_6720; // "rmqsmsg "
    const NAME: &'static str = "rmqs_message";
    fn magic(&self) -> u64 {
        self.magic
    }
}

impl rmqs_message {
    fn raw(&self) -> &[u8] {
        // SAFETY: the message lives inside its chunk, which owns the bytes.
        unsafe { self.raw.get() }
    }

    fn side(&self) -> &Side {
        match self.side {
            SideRef::Chunk(ch, i) => {
                // SAFETY: the chunk owns this message and so outlives the reference.
                let ch = unsafe { &*ch };
                let sides = ch
                    .sides
                    .get_or_init(|| (0..messages(ch).len()).map(|_| Side::default()).collect());
                &sides[i]
            }
            // SAFETY: the lender keeps its Side alive for the call the message is lent to.
            SideRef::Lent(side) => unsafe { &*side },
        }
    }

    /// The record as an AMQP message (`None` when it is not one): parsed and validated once,
    /// then rebuilt from its layout.
    fn view(&self) -> Option<MessageView<'_>> {
        let raw = self.raw();
        let layout = self.side().layout.get_or_init(|| {
            MessageView::parse(raw)
                .ok()
                .and_then(|v| MessageLayout::of(&v))
        });
        layout.as_ref().map(|l| l.view(raw))
    }

    /// The body; a record that is one data section is read without parsing (and without
    /// finding the layout, which the other accessors may still need).
    fn body(&self) -> &[u8] {
        let raw = self.raw();
        MessageView::lone_data_section(raw)
            .or_else(|| self.view().and_then(|v| v.body_bytes()))
            .unwrap_or(raw)
    }

    /// A value as text: strings, symbols and binaries as they are in the record (zero-copy),
    /// other scalars formatted once and kept with the message under `key` (found there again
    /// without allocating).
    fn text(&self, key: TextKey<&str>, v: &Value<'_>) -> Option<(*const u8, usize)> {
        match v {
            Value::String(Cow::Borrowed(s)) | Value::Symbol(Cow::Borrowed(s)) => {
                return Some((s.as_ptr(), s.len()));
            }
            Value::Binary(Cow::Borrowed(b)) => return Some((b.as_ptr(), b.len())),
            _ => {}
        }
        let mut texts = self.side().texts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, b)) = texts.iter().find(|(k, _)| key.is(k)) {
            // kept NUL-terminated: the length excludes the NUL
            return Some((b.as_ptr(), b.len() - 1));
        }
        let formatted = match v {
            Value::String(Cow::Owned(s)) | Value::Symbol(Cow::Owned(s)) => s.clone(),
            Value::Binary(Cow::Owned(b)) => String::from_utf8_lossy(b).into_owned(),
            Value::Bool(b) => b.to_string(),
            Value::Ubyte(x) => x.to_string(),
            Value::Ushort(x) => x.to_string(),
            Value::Uint(x) => x.to_string(),
            Value::Ulong(x) => x.to_string(),
            Value::Byte(x) => x.to_string(),
            Value::Short(x) => x.to_string(),
            Value::Int(x) => x.to_string(),
            Value::Long(x) => x.to_string(),
            Value::Timestamp(x) => x.to_string(),
            Value::Float(x) => x.to_string(),
            Value::Double(x) => x.to_string(),
            Value::Char(c) => c.to_string(),
            Value::Uuid(u) => format_uuid(u),
            _ => return None,
        };
        // NUL-terminated as a courtesy (the length excludes it), in a buffer of the exact
        // size: no growth on the push, no shrink into the box.
        let len = formatted.len();
        let mut bytes = Vec::with_capacity(len + 1);
        bytes.extend_from_slice(formatted.as_bytes());
        bytes.push(0);
        let b: Box<[u8]> = bytes.into_boxed_slice();
        let p = b.as_ptr();
        texts.push((key.kept(), b));
        Some((p, len))
    }
}

impl rmqs_message {
    /// Lends a view of one record to `f` for its duration (the post-filter,
    /// src/ffi/hooks.rs); the record's chunk outlives it.
    pub(crate) fn lend<R>(
        r: &crate::client::ConsumerRecord<'_>,
        f: impl FnOnce(&rmqs_message) -> R,
    ) -> R {
        let side = Side::default();
        let m = rmqs_message {
            magic: rmqs_message::MAGIC,
            offset: r.offset,
            timestamp: r.timestamp,
            raw: Span::of(r.body),
            side: SideRef::Lent(&side),
        };
        f(&m)
    }
}

fn format_uuid(u: &[u8; 16]) -> String {
    let h: String = u.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

fn messages(ch: &rmqs_chunk) -> &[rmqs_message] {
    ch.messages.get_or_init(|| {
        ch.chunk
            .records()
            .enumerate()
            .map(|(i, r)| rmqs_message {
                magic: rmqs_message::MAGIC,
                offset: r.offset,
                timestamp: r.timestamp,
                raw: Span::of(r.body),
                side: SideRef::Chunk(ch, i),
            })
            .collect()
    })
}

/// Every field of a chunk's header (the Osiris chunk format).
///
/// @ingroup rmqs_messages
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct rmqs_chunk_header_info {
    /// Magic (5).
    pub magic: u8,
    /// Format version (0).
    pub version: u8,
    /// 0 = user (messages), 1 = tracking delta, 2 = tracking snapshot.
    pub chunk_type: u8,
    /// Bloom filter size on disk (not sent to consumers).
    pub bloom_size: u8,
    /// Entries in the data section (a sub-entry batch counts as one).
    pub num_entries: u16,
    /// Records (messages) in the chunk, hidden ones included.
    pub num_records: u32,
    /// When the chunk was written, ms since the Unix epoch.
    pub timestamp: i64,
    /// Leader epoch.
    pub epoch: u64,
    /// Offset of the chunk's first record.
    pub chunk_id: u64,
    /// CRC-32 of the data section.
    pub crc: u32,
    /// Length of the data section.
    pub data_length: u32,
    /// Trailer length on disk.
    pub trailer_length: u32,
    /// Reserved bytes, as a 24-bit value.
    pub reserved: u32,
}

/// Chunk accessor helper: the chunk or `default` for NULL/invalid.
fn with_chunk<R>(ch: *const rmqs_chunk, default: R, f: impl FnOnce(&rmqs_chunk) -> R) -> R {
    // SAFETY: the caller passes NULL or a live chunk (see every accessor's contract).
    match unsafe { handle_arg(ch) } {
        Ok(c) => f(c),
        Err(_) => default,
    }
}

fn with_message<R>(m: *const rmqs_message, default: R, f: impl FnOnce(&rmqs_message) -> R) -> R {
    // SAFETY: as above.
    match unsafe { handle_arg(m) } {
        Ok(m) => f(m),
        Err(_) => default,
    }
}

/// Keeps a chunk beyond the callback or event that lent it.
///
/// @param ch a chunk (borrowed).
/// @return `ch` itself, now with one more reference the caller owns and gives back with
///         `rmqs_chunk_release()`; NULL when `ch` is NULL or invalid.
///
/// Thread-safe; does not block.
///
/// @ingroup rmqs_messages
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_chunk_retain(ch: *const rmqs_chunk) -> *mut rmqs_chunk {
    ffi_boundary(std::ptr::null_mut(), || {
        if !is_chunk(ch) {
            return std::ptr::null_mut();
        }
        // SAFETY: `ch` came from `Arc::as_ptr` (ChunkRef) or an earlier retain, and the
        // caller holds a reference, so the count is at least 1. The raw pointer is used, not
        // one derived from a `&rmqs_chunk`, whose provenance would not cover the count.
        unsafe { Arc::increment_strong_count(ch) };
        ch.cast_mut()
    })
}

/// Gives back a reference taken with `rmqs_chunk_retain()`. The last reference frees the chunk
/// (and, with the `on_release` policy, grants the broker one credit). NULL is allowed.
///
/// @param ch a pointer returned by `rmqs_chunk_retain()` (that reference passes to the
///        library); not to be used afterwards unless other references remain.
///
/// Thread-safe; does not block.
///
/// @ingroup rmqs_messages
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_chunk_release(ch: *mut rmqs_chunk) {
    ffi_boundary((), || {
        if !is_chunk(ch) {
            return;
        }
        // SAFETY: the caller gives back one reference it owned; no `&rmqs_chunk` is alive
        // here, so the last reference may free the chunk (as rustls-ffi's `free_arc`).
        unsafe { Arc::decrement_strong_count(ch.cast_const()) };
    })
}

/// Whether `ch` points to a live chunk: the magic is read through a reference that ends
/// before the caller touches the reference count.
fn is_chunk(ch: *const rmqs_chunk) -> bool {
    // SAFETY: the caller passes NULL or a live chunk (see retain's and release's contract).
    unsafe { handle_arg(ch) }.is_ok()
}

/// The stream the chunk came from.
///
/// @return a NUL-terminated string owned by the chunk; `""` for NULL. Never NULL.
///
/// Thread-safe; does not block.
///
/// @ingroup rmqs_messages
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_chunk_stream(ch: *const rmqs_chunk) -> *const c_char {
    ffi_boundary(c"".as_ptr(), || {
        with_chunk(ch, c"".as_ptr(), |c| c.stream.as_ptr())
    })
}

/// The partition the chunk came from, for a chunk of an `rmqs_super_consumer`: its index in
/// the super consumer's partition list at delivery (`rmqs_super_consumer_partition()`;
/// `rmqs_chunk_stream()` names it).
///
/// @return the index; -1 for a chunk of a plain `rmqs_consumer`, or for NULL.
///
/// Thread-safe; does not block.
///
/// @ingroup rmqs_messages
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_chunk_partition(ch: *const rmqs_chunk) -> i32 {
    ffi_boundary(-1, || with_chunk(ch, -1, |c| c.partition))
}

/// The chunk id: the offset of the chunk's first record (hidden ones included); 0 for NULL.
///
/// Thread-safe; does not block.
///
/// @ingroup rmqs_messages
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_chunk_id(ch: *const rmqs_chunk) -> u64 {
    ffi_boundary(0, || with_chunk(ch, 0, |c| c.chunk.chunk_id()))
}

/// Offset of the chunk's first visible message; 0 for NULL.
///
/// Thread-safe; does not block.
///
/// @ingroup rmqs_messages
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_chunk_first_offset(ch: *const rmqs_chunk) -> u64 {
    ffi_boundary(0, || with_chunk(ch, 0, |c| c.chunk.first_offset()))
}

/// When the broker wrote the chunk, ms since the Unix epoch; 0 for NULL.
///
/// Thread-safe; does not block.
///
/// @ingroup rmqs_messages
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_chunk_timestamp(ch: *const rmqs_chunk) -> i64 {
    ffi_boundary(0, || with_chunk(ch, 0, |c| c.chunk.timestamp()))
}

/// The id of the last chunk committed when this one was sent (Deliver v2, RabbitMQ 3.11+).
///
/// @param ch the chunk (borrowed).
/// @param out receives the id when known; may be NULL.
/// @return false when unknown (older broker) or `ch` is NULL.
///
/// Thread-safe; does not block.
///
/// @ingroup rmqs_messages
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_chunk_committed_id(ch: *const rmqs_chunk, out: *mut u64) -> bool {
    ffi_boundary(false, || {
        with_chunk(ch, false, |c| match c.chunk.committed_chunk_id() {
            Some(id) => {
                if !out.is_null() {
                    // SAFETY: non-NULL outputs must be writable.
                    unsafe { out.write(id) };
                }
                true
            }
            None => false,
        })
    })
}

/// Number of visible messages (at or after the requested offset); 0 for NULL.
///
/// Thread-safe; does not block.
///
/// @ingroup rmqs_messages
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_chunk_message_count(ch: *const rmqs_chunk) -> usize {
    ffi_boundary(0, || with_chunk(ch, 0, |c| c.chunk.len()))
}

/// The chunk's header fields.
///
/// @param ch the chunk (borrowed).
/// @param out receives the header.
/// @return false when an argument is NULL.
///
/// Thread-safe; does not block.
///
/// @ingroup rmqs_messages
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_chunk_header(
    ch: *const rmqs_chunk,
    out: *mut rmqs_chunk_header_info,
) -> bool {
    ffi_boundary(false, || {
        if out.is_null() {
            return false;
        }
        with_chunk(ch, false, |c| {
            let h = c.chunk.header();
            let v = rmqs_chunk_header_info {
                magic: h.magic,
                version: h.version,
                chunk_type: h.chunk_type.code(),
                bloom_size: h.bloom_size,
                num_entries: h.num_entries,
                num_records: h.num_records,
                timestamp: h.timestamp,
                epoch: h.epoch,
                chunk_id: h.chunk_id,
                crc: h.crc,
                data_length: h.data_length,
                trailer_length: h.trailer_length,
                reserved: h.reserved,
            };
            // SAFETY: checked non-NULL; must be writable.
            unsafe { out.write(v) };
            true
        })
    })
}

/// The chunk's data section as received (entries, possibly sub-entry batches, compressed).
///
/// @param ch the chunk (borrowed).
/// @param len receives the length; may be NULL.
/// @return bytes owned by the chunk; NULL (and length 0) for NULL.
///
/// Thread-safe; does not block.
///
/// @ingroup rmqs_messages
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_chunk_data(ch: *const rmqs_chunk, len: *mut usize) -> *const u8 {
    ffi_boundary(std::ptr::null(), || {
        let (p, n) = with_chunk(ch, (std::ptr::null(), 0), |c| {
            let d = c.chunk.chunk().data();
            (d.as_ptr(), d.len())
        });
        if !len.is_null() {
            // SAFETY: non-NULL outputs must be writable.
            unsafe { len.write(n) };
        }
        p
    })
}

/// Message `i` of the chunk (0 = the first visible one, at `rmqs_chunk_first_offset()`).
///
/// @param ch the chunk (borrowed).
/// @param i position, below `rmqs_chunk_message_count()`.
/// @return a view owned by the chunk, valid as long as the chunk; NULL when `i` is out of
///         range or `ch` is NULL. The first call indexes the chunk (one allocation).
///
/// Thread-safe; does not block.
///
/// @ingroup rmqs_messages
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_chunk_message(
    ch: *const rmqs_chunk,
    i: usize,
) -> *const rmqs_message {
    ffi_boundary(std::ptr::null(), || {
        with_chunk(ch, std::ptr::null(), |c| {
            messages(c)
                .get(i)
                .map_or(std::ptr::null(), |m| m as *const rmqs_message)
        })
    })
}

/// The message's offset in the stream; 0 for NULL.
///
/// Thread-safe; does not block.
///
/// @ingroup rmqs_messages
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_message_offset(m: *const rmqs_message) -> u64 {
    ffi_boundary(0, || with_message(m, 0, |m| m.offset))
}

/// The message's timestamp: its chunk's, ms since the Unix epoch; 0 for NULL.
///
/// Thread-safe; does not block.
///
/// @ingroup rmqs_messages
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_message_timestamp(m: *const rmqs_message) -> i64 {
    ffi_boundary(0, || with_message(m, 0, |m| m.timestamp))
}

/// The application payload: the AMQP 1.0 data section when the record is an AMQP message with
/// a single one (what this library and the other stream clients publish by default, or an
/// amqp-value holding a binary or string), else the raw record bytes (`RMQS_SEND_RAW`
/// messages).
///
/// @param m the message (borrowed).
/// @param len receives the length; may be NULL.
/// @return bytes owned by the chunk, valid as long as it; NULL with length 0 for NULL `m`
///         (an empty body gives a non-NULL pointer and length 0).
///
/// Thread-safe; does not block.
///
/// @ingroup rmqs_messages
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_message_body(m: *const rmqs_message, len: *mut usize) -> *const u8 {
    ffi_boundary(std::ptr::null(), || {
        let (p, n) = with_message(m, (std::ptr::null(), 0), |m| {
            let b = m.body();
            (
                if b.is_empty() {
                    c"".as_ptr().cast()
                } else {
                    b.as_ptr()
                },
                b.len(),
            )
        });
        if !len.is_null() {
            // SAFETY: non-NULL outputs must be writable.
            unsafe { len.write(n) };
        }
        p
    })
}

/// The record exactly as stored in the stream (usually an encoded AMQP 1.0 message).
///
/// @param m the message (borrowed).
/// @param len receives the length; may be NULL.
/// @return bytes owned by the chunk, valid as long as it; NULL with length 0 for NULL `m`.
///
/// Thread-safe; does not block.
///
/// @ingroup rmqs_messages
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_message_raw(m: *const rmqs_message, len: *mut usize) -> *const u8 {
    ffi_boundary(std::ptr::null(), || {
        let (p, n) = with_message(m, (std::ptr::null(), 0), |m| {
            let b = m.raw();
            (
                if b.is_empty() {
                    c"".as_ptr().cast()
                } else {
                    b.as_ptr()
                },
                b.len(),
            )
        });
        if !len.is_null() {
            // SAFETY: non-NULL outputs must be writable.
            unsafe { len.write(n) };
        }
        p
    })
}

/// Whether the record is a well-formed AMQP 1.0 message; false for NULL.
///
/// Thread-safe; does not block (the first accessor to need the record's sections parses it once).
///
/// @ingroup rmqs_messages
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_message_is_amqp(m: *const rmqs_message) -> bool {
    ffi_boundary(false, || with_message(m, false, |m| m.view().is_some()))
}

/// Fields of the AMQP 1.0 properties section (`rmqs_message_property()`).
///
/// @ingroup rmqs_messages
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum rmqs_property_code {
    RMQS_PROP_MESSAGE_ID = 1,
    RMQS_PROP_USER_ID = 2,
    RMQS_PROP_TO = 3,
    RMQS_PROP_SUBJECT = 4,
    RMQS_PROP_REPLY_TO = 5,
    RMQS_PROP_CORRELATION_ID = 6,
    RMQS_PROP_CONTENT_TYPE = 7,
    RMQS_PROP_CONTENT_ENCODING = 8,
    RMQS_PROP_ABSOLUTE_EXPIRY_TIME = 9,
    RMQS_PROP_CREATION_TIME = 10,
    RMQS_PROP_GROUP_ID = 11,
    RMQS_PROP_GROUP_SEQUENCE = 12,
    RMQS_PROP_REPLY_TO_GROUP_ID = 13,
}

/// Writes `(ptr, len)` to the optional outputs.
///
/// # Safety
/// `value` and `len` must be NULL or writable.
unsafe fn put_text(t: (*const u8, usize), value: *mut *const c_char, len: *mut usize) {
    if !value.is_null() {
        // SAFETY: per the caller's contract.
        unsafe { value.write(t.0.cast()) };
    }
    if !len.is_null() {
        // SAFETY: per the caller's contract.
        unsafe { len.write(t.1) };
    }
}

/// A field of the message's AMQP properties section, as text.
///
/// Strings, symbols and binaries (`user-id`, binary ids) are returned as stored, without a
/// copy; numbers (ulong ids, `group-sequence`), timestamps (ms since the epoch, in decimal) and
/// uuids (`8-4-4-4-12` hex) are formatted once and kept with the message.
///
/// @param m the message (borrowed).
/// @param property one of `rmqs_property_code`.
/// @param value receives a pointer to the text, owned by the chunk and valid as long as it; not
///        NUL-terminated (use `len`). May be NULL.
/// @param len receives the text's length. May be NULL.
/// @return true when the message is AMQP and has the field; false when absent, for a record
///         that is not AMQP, an unknown `property` or a NULL `m` (outputs untouched).
///
/// Thread-safe; does not block.
///
/// @ingroup rmqs_messages
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_message_property(
    m: *const rmqs_message,
    property: i32,
    value: *mut *const c_char,
    len: *mut usize,
) -> bool {
    ffi_boundary(false, || {
        with_message(m, false, |m| {
            let Some(props) = m.view().and_then(|v| v.properties().ok().flatten()) else {
                return false;
            };
            fn s<'a>(x: &Option<Cow<'a, str>>) -> Option<Value<'a>> {
                x.as_ref().map(|c| Value::String(c.clone()))
            }
            let v: Option<Value<'_>> = match property {
                1 => props.message_id.clone(),
                2 => props.user_id.as_ref().map(|b| Value::Binary(b.clone())),
                3 => s(&props.to),
                4 => s(&props.subject),
                5 => s(&props.reply_to),
                6 => props.correlation_id.clone(),
                7 => s(&props.content_type),
                8 => s(&props.content_encoding),
                9 => props.absolute_expiry_time.map(Value::Long),
                10 => props.creation_time.map(Value::Long),
                11 => s(&props.group_id),
                12 => props.group_sequence.map(Value::Uint),
                13 => s(&props.reply_to_group_id),
                _ => None,
            };
            let Some(v) = v else { return false };
            match m.text(TextKey::Property(property), &v) {
                Some(t) => {
                    // SAFETY: outputs NULL or writable.
                    unsafe { put_text(t, value, len) };
                    true
                }
                None => false,
            }
        })
    })
}

/// The application property `key` of an AMQP message, as text (see `rmqs_message_property()`
/// for how values become text; booleans are `true`/`false`). The first entry with that key
/// wins.
///
/// @param m the message (borrowed).
/// @param key the property name (borrowed, NUL-terminated UTF-8).
/// @param value receives the text (owned by the chunk, not NUL-terminated). May be NULL.
/// @param len receives its length. May be NULL.
/// @return true when found; false when absent, not AMQP, for a value that has no text form
///         (list, map, array, described) or NULL arguments.
///
/// Thread-safe; does not block.
///
/// @ingroup rmqs_messages
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_message_app_property(
    m: *const rmqs_message,
    key: *const c_char,
    value: *mut *const c_char,
    len: *mut usize,
) -> bool {
    ffi_boundary(false, || {
        // SAFETY: NULL or a NUL-terminated string.
        let Ok(key) = (unsafe { str_arg(key, "key") }) else {
            return false;
        };
        with_message(m, false, |m| {
            let Some(v) = m
                .view()
                .and_then(|v| v.application_properties())
                .and_then(|p| p.get(key))
            else {
                return false;
            };
            match m.text(TextKey::App(key), &v) {
                Some(t) => {
                    // SAFETY: outputs NULL or writable.
                    unsafe { put_text(t, value, len) };
                    true
                }
                None => false,
            }
        })
    })
}

/// Number of application properties of an AMQP message; 0 when none, not AMQP, or NULL.
///
/// Thread-safe; does not block.
///
/// @ingroup rmqs_messages
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_message_app_property_count(m: *const rmqs_message) -> usize {
    ffi_boundary(0, || {
        with_message(m, 0, |m| {
            m.view()
                .and_then(|v| v.application_properties())
                .map_or(0, |p| p.len())
        })
    })
}

/// Application property `i` (wire order): key and value as text.
///
/// @param m the message (borrowed).
/// @param i position, below `rmqs_message_app_property_count()`.
/// @param key receives the key (owned by the chunk, not NUL-terminated). May be NULL.
/// @param key_len receives its length. May be NULL.
/// @param value receives the value as text. May be NULL.
/// @param value_len receives its length. May be NULL.
/// @return false when `i` is out of range, the value has no text form, or `m` is NULL.
///
/// Thread-safe; does not block.
///
/// @ingroup rmqs_messages
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_message_app_property_at(
    m: *const rmqs_message,
    i: usize,
    key: *mut *const c_char,
    key_len: *mut usize,
    value: *mut *const c_char,
    value_len: *mut usize,
) -> bool {
    ffi_boundary(false, || {
        with_message(m, false, |m| {
            let Some((k, v)) = m
                .view()
                .and_then(|v| v.application_properties())
                .and_then(|p| p.iter().nth(i))
            else {
                return false;
            };
            let (Some(kt), Some(vt)) = (
                m.text(TextKey::KeyAt(i), &k),
                m.text(TextKey::ValueAt(i), &v),
            ) else {
                return false;
            };
            // SAFETY: outputs NULL or writable.
            unsafe {
                put_text(kt, key, key_len);
                put_text(vt, value, value_len);
            }
            true
        })
    })
}

/// What the body of a received message is (`rmqs_message_body_type()`).
///
/// @ingroup rmqs_messages
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum rmqs_body_type_code {
    /// Not an AMQP 1.0 message (e.g. sent with `RMQS_SEND_RAW`): `rmqs_message_body()` is the
    /// whole record.
    RMQS_BODY_RAW = 0,
    /// One or more data sections: `RMQS_VALUE_BINARY` each.
    RMQS_BODY_DATA = 1,
    /// One or more amqp-sequence sections: `RMQS_VALUE_LIST` each.
    RMQS_BODY_SEQUENCE = 2,
    /// One amqp-value section: any value.
    RMQS_BODY_VALUE = 3,
    /// An AMQP message without a body section.
    RMQS_BODY_NONE = 4,
}

/// The kind of body of the message: an `rmqs_body_type_code`. A message that carries more
/// than one kind (not allowed by the spec, but some clients write data and amqp-value) gives
/// its data sections, else its sequences.
///
/// @return the code; `RMQS_BODY_RAW` for a record that is not AMQP, and for NULL.
///
/// Thread-safe; does not block (the first accessor to need the record's sections parses it once).
///
/// @ingroup rmqs_messages
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_message_body_type(m: *const rmqs_message) -> i32 {
    use crate::protocol::amqp::BodyView;
    use rmqs_body_type_code::*;
    ffi_boundary(RMQS_BODY_RAW as i32, || {
        with_message(m, RMQS_BODY_RAW as i32, |m| {
            (match m.view().map(|v| v.body()) {
                None => RMQS_BODY_RAW,
                Some(BodyView::None) => RMQS_BODY_NONE,
                Some(BodyView::Data(_)) => RMQS_BODY_DATA,
                Some(BodyView::Sequence(_)) => RMQS_BODY_SEQUENCE,
                Some(BodyView::Value(_)) => RMQS_BODY_VALUE,
            }) as i32
        })
    })
}

/// Number of body sections of the message (data or amqp-sequence sections; 1 for an
/// amqp-value); 0 for a record that is not AMQP, a message without body, or NULL.
///
/// Thread-safe; does not block.
///
/// @ingroup rmqs_messages
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_message_body_count(m: *const rmqs_message) -> usize {
    use crate::protocol::amqp::BodyView;
    ffi_boundary(0, || {
        with_message(m, 0, |m| match m.view().map(|v| v.body()) {
            Some(BodyView::Data(s) | BodyView::Sequence(s)) => s.len(),
            Some(BodyView::Value(_)) => 1,
            _ => 0,
        })
    })
}

/// Body section `i` of the message, typed: a data section as `RMQS_VALUE_BINARY`, an
/// amqp-sequence section as `RMQS_VALUE_LIST` (read its items with `rmqs_value_list_get()`),
/// the amqp-value as whatever value it holds.
///
/// @param m the message (borrowed).
/// @param i position, below `rmqs_message_body_count()`.
/// @param out receives the value; its bytes are owned by the chunk, valid as long as it. May be
///        NULL.
/// @return false when `i` is out of range, the record is not AMQP, or `m` is NULL.
///
/// Thread-safe; does not block.
///
/// @ingroup rmqs_messages
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_message_body_section(
    m: *const rmqs_message,
    i: usize,
    out: *mut rmqs_value,
) -> bool {
    use crate::protocol::amqp::BodyView;
    ffi_boundary(false, || {
        with_message(m, false, |m| {
            let encoded = match m.view().map(|v| v.body()) {
                Some(BodyView::Data(s) | BodyView::Sequence(s)) => s.encoded().nth(i),
                Some(BodyView::Value(v)) if i == 0 => Some(v),
                _ => None,
            };
            match encoded {
                // SAFETY: out NULL or writable.
                Some(e) => unsafe { put_value(out, value_out(e)) },
                None => false,
            }
        })
    })
}

/// A whole non-body section of the message, typed: the header and properties as
/// `RMQS_VALUE_LIST` (fields in wire order), annotations, application properties and footer
/// as `RMQS_VALUE_MAP` (read with `rmqs_value_count()`, `rmqs_value_map_entry()`,
/// `rmqs_value_map_get()`).
///
/// @param m the message (borrowed).
/// @param section an `rmqs_section_code`.
/// @param out receives the section (bytes owned by the chunk); may be NULL.
/// @return true when the message has the section; false when it has not, the record is not
///         AMQP, for another `section` or NULL `m`.
///
/// Thread-safe; does not block.
///
/// @ingroup rmqs_messages
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_message_section(
    m: *const rmqs_message,
    section: i32,
    out: *mut rmqs_value,
) -> bool {
    ffi_boundary(false, || {
        with_message(m, false, |m| {
            let Some(kind) = section_kind(section) else {
                return false;
            };
            // Some clients write an empty section as `null`: it reads as an empty list or map.
            static EMPTY_LIST: [u8; 1] = [0x45];
            static EMPTY_MAP: [u8; 3] = [0xc1, 0x01, 0x00];
            let encoded = match m.view().and_then(|v| v.section(kind)) {
                Some([0x40]) if matches!(kind, SectionKind::Header | SectionKind::Properties) => {
                    &EMPTY_LIST[..]
                }
                Some([0x40]) => &EMPTY_MAP[..],
                Some(e) => e,
                None => return false,
            };
            // SAFETY: out NULL or writable.
            unsafe { put_value(out, value_out(encoded)) }
        })
    })
}

/// Field `index` of a list section (header or properties), typed, as encoded (the section was
/// validated with the record: no pass over it).
fn list_field(m: &rmqs_message, kind: SectionKind, index: usize) -> Option<rmqs_value> {
    let e = m.view()?.list(kind)?.encoded().nth(index)?;
    let v = value_out(e);
    (v.kind != rmqs_value_type_code::RMQS_VALUE_NULL as i32).then_some(v)
}

/// A header field of the message, typed as it was sent (e.g. `RMQS_VALUE_BOOL` for durable,
/// `RMQS_VALUE_UBYTE` for priority; another client may have used another integer type).
///
/// @param m the message (borrowed).
/// @param field an `rmqs_header_code`.
/// @param out receives the value; may be NULL.
/// @return true when the message has the field; false when absent (the spec's default then
///         applies), not AMQP, for an unknown field or NULL `m`.
///
/// Thread-safe; does not block.
///
/// @ingroup rmqs_messages
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_message_header_value(
    m: *const rmqs_message,
    field: i32,
    out: *mut rmqs_value,
) -> bool {
    ffi_boundary(false, || {
        with_message(m, false, |m| {
            let Some(f) = header_field(field) else {
                return false;
            };
            match list_field(m, SectionKind::Header, f as usize) {
                // SAFETY: out NULL or writable.
                Some(v) => unsafe { put_value(out, v) },
                None => false,
            }
        })
    })
}

/// A field of the message's properties section, typed as it was sent (the typed counterpart
/// of `rmqs_message_property()`): message-id as `ULONG`, `UUID`, `BINARY` or `STRING`, the
/// times as `TIMESTAMP`, content-type as `SYMBOL`...
///
/// @param m the message (borrowed).
/// @param property an `rmqs_property_code`.
/// @param out receives the value (bytes owned by the chunk); may be NULL.
/// @return true when the message has the field; false when absent, not AMQP, for an unknown
///         property or NULL `m`.
///
/// Thread-safe; does not block.
///
/// @ingroup rmqs_messages
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_message_property_value(
    m: *const rmqs_message,
    property: i32,
    out: *mut rmqs_value,
) -> bool {
    ffi_boundary(false, || {
        with_message(m, false, |m| {
            let Some(f) = property_field(property) else {
                return false;
            };
            match list_field(m, SectionKind::Properties, f as usize) {
                // SAFETY: out NULL or writable.
                Some(v) => unsafe { put_value(out, v) },
                None => false,
            }
        })
    })
}

/// The application property `key` of the message, typed (the typed counterpart of
/// `rmqs_message_app_property()`; iterate all of them with `rmqs_message_section()` and
/// `rmqs_value_map_entry()`). The first entry with that key wins.
///
/// @param m the message (borrowed).
/// @param key the name, NUL-terminated UTF-8 (borrowed).
/// @param out receives the value (bytes owned by the chunk); may be NULL.
/// @return true when found; false when absent, not AMQP, or NULL arguments.
///
/// Thread-safe; does not block.
///
/// @ingroup rmqs_messages
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_message_app_property_value(
    m: *const rmqs_message,
    key: *const c_char,
    out: *mut rmqs_value,
) -> bool {
    ffi_boundary(false, || {
        // SAFETY: NULL or a NUL-terminated string.
        let Ok(key) = (unsafe { str_arg(key, "key") }) else {
            return false;
        };
        with_message(m, false, |m| {
            match m
                .view()
                .and_then(|v| v.application_properties())
                .and_then(|p| p.get_encoded(key))
            {
                // SAFETY: out NULL or writable.
                Some(e) => unsafe { put_value(out, value_out(e)) },
                None => false,
            }
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::amqp::{Message, Properties};
    use crate::protocol::chunk::ChunkBuilder;

    /// A chunk at offset 100 of three records: an AMQP message with a body and properties,
    /// a raw record, an AMQP message with an empty body.
    fn chunk() -> ChunkRef {
        let encode = |m: Message<'_>| {
            let mut out = bytes::BytesMut::new();
            m.encode(&mut out).unwrap();
            out.to_vec()
        };
        let amqp = encode(
            Message::new(b"first".as_slice())
                .properties(Properties {
                    message_id: Some(Value::String("m-1".into())),
                    ..Properties::default()
                })
                .application_property("k", Value::String("v".into())),
        );
        let empty = encode(Message::new(b"".as_slice()));
        let mut b = ChunkBuilder::new(100).timestamp(1_700_000_000_000);
        b.add_simple(&amqp).unwrap();
        b.add_simple(b"raw bytes").unwrap();
        b.add_simple(&empty).unwrap();
        ChunkRef::new(DeliveredChunk::for_test(b.build().unwrap(), "s1"))
    }

    fn body(m: *const rmqs_message) -> Vec<u8> {
        let mut len = usize::MAX;
        let p = unsafe { rmqs_message_body(m, &mut len) };
        assert!(!p.is_null());
        unsafe { std::slice::from_raw_parts(p, len) }.to_vec()
    }

    #[test]
    fn retained_chunk_outlives_the_lending_reference_and_release_frees_it() {
        let lent = chunk();
        let p = lent.as_ptr();
        // two references of the application's own
        let r1 = unsafe { rmqs_chunk_retain(p) };
        let r2 = unsafe { rmqs_chunk_retain(p) };
        assert_eq!((r1.cast_const(), r2.cast_const()), (p, p));
        // the callback returns / the event is freed: the library's reference goes
        drop(lent);
        unsafe {
            assert_eq!(rmqs_chunk_message_count(r1), 3);
            let m = rmqs_chunk_message(r1, 0);
            assert_eq!(body(m), b"first");
            rmqs_chunk_release(r1);
            // one reference left: still readable, the message view too
            assert_eq!(rmqs_message_offset(m), 100);
            assert_eq!(body(rmqs_chunk_message(r2, 1)), b"raw bytes");
            // the last release frees the chunk (Miri reports a leak or a use after free)
            rmqs_chunk_release(r2);
        }
    }

    #[test]
    fn typed_accessors_read_the_layout_found_once_from_several_threads() {
        use super::super::message::rmqs_section_code::*;
        use super::super::message::rmqs_value_type_code::*;
        let c = chunk();
        let p = c.as_ptr();
        let m0 = unsafe { rmqs_chunk_message(p, 0) };
        let read = |m: *const rmqs_message| unsafe {
            let mut v = rmqs_value::default();
            assert!(rmqs_message_property_value(m, 1, &mut v));
            let id = std::slice::from_raw_parts(v.data, v.len).to_vec();
            assert_eq!(
                (v.kind, id.as_slice()),
                (RMQS_VALUE_STRING as i32, &b"m-1"[..])
            );
            assert!(rmqs_message_section(
                m,
                RMQS_SECTION_APPLICATION_PROPERTIES as i32,
                &mut v
            ));
            assert_eq!(v.kind, RMQS_VALUE_MAP as i32);
            assert!(!rmqs_message_section(m, RMQS_SECTION_HEADER as i32, &mut v));
            assert!(rmqs_message_app_property_value(m, c"k".as_ptr(), &mut v));
            assert_eq!(std::slice::from_raw_parts(v.data, v.len), b"v");
            assert!(rmqs_message_body_section(m, 0, &mut v));
            assert_eq!(std::slice::from_raw_parts(v.data, v.len), b"first");
            assert!(!rmqs_message_property_value(m, 4, &mut v));
        };
        // The view is Sync: two threads read it at once, both finding the layout maybe.
        let shared: &rmqs_message = unsafe { &*m0 };
        std::thread::scope(|s| {
            for _ in 0..2 {
                s.spawn(move || read(shared));
            }
        });
        // Found once, read again; a record that is not AMQP stays so.
        read(m0);
        let raw = unsafe { rmqs_chunk_message(p, 1) };
        let mut v = rmqs_value::default();
        assert!(!unsafe { rmqs_message_body_section(raw, 0, &mut v) });
        assert!(!unsafe { rmqs_message_is_amqp(raw) });
        assert_eq!(body(raw), b"raw bytes");
    }

    #[test]
    fn retain_and_release_reject_null() {
        unsafe {
            assert!(rmqs_chunk_retain(std::ptr::null()).is_null());
            rmqs_chunk_release(std::ptr::null_mut());
        }
    }

    #[test]
    fn accessors_read_the_chunk_through_raw_pointers() {
        let c = chunk();
        let p = c.as_ptr();
        unsafe {
            assert_eq!(CStr::from_ptr(rmqs_chunk_stream(p)).to_bytes(), b"s1");
            assert_eq!(rmqs_chunk_partition(p), -1);
            assert_eq!(rmqs_chunk_id(p), 100);
            assert_eq!(rmqs_chunk_first_offset(p), 100);
            assert_eq!(rmqs_chunk_timestamp(p), 1_700_000_000_000);
            let mut id = 7;
            assert!(!rmqs_chunk_committed_id(p, &mut id));
            assert_eq!(id, 7);
            let mut h = rmqs_chunk_header_info::default();
            assert!(rmqs_chunk_header(p, &mut h));
            assert_eq!((h.chunk_id, h.num_records, h.num_entries), (100, 3, 3));
            let mut n = 0;
            assert!(!rmqs_chunk_data(p, &mut n).is_null());
            assert_eq!(n as u32, h.data_length);
            assert!(rmqs_chunk_message(p, 3).is_null());

            let m0 = rmqs_chunk_message(p, 0);
            assert!(rmqs_message_is_amqp(m0));
            let (mut v, mut len) = (std::ptr::null(), 0);
            assert!(rmqs_message_property(m0, 1, &mut v, &mut len));
            assert_eq!(std::slice::from_raw_parts(v.cast::<u8>(), len), b"m-1");
            assert!(rmqs_message_app_property(
                m0,
                c"k".as_ptr(),
                &mut v,
                &mut len
            ));
            assert_eq!(std::slice::from_raw_parts(v.cast::<u8>(), len), b"v");
            assert_eq!(rmqs_message_app_property_count(m0), 1);
            let (mut k, mut klen) = (std::ptr::null(), 0);
            assert!(rmqs_message_app_property_at(
                m0, 0, &mut k, &mut klen, &mut v, &mut len
            ));
            assert_eq!(std::slice::from_raw_parts(k.cast::<u8>(), klen), b"k");

            let m1 = rmqs_chunk_message(p, 1);
            assert!(!rmqs_message_is_amqp(m1));
            assert_eq!(body(m1), b"raw bytes");
            let mut raw_len = 0;
            assert!(!rmqs_message_raw(m1, &mut raw_len).is_null());
            assert_eq!(raw_len, 9);

            // an empty body: a non-NULL pointer and length 0
            assert_eq!(body(rmqs_chunk_message(p, 2)), b"");

            // NULL everywhere
            assert_eq!(rmqs_chunk_message_count(std::ptr::null()), 0);
            assert!(rmqs_chunk_message(std::ptr::null(), 0).is_null());
            let mut len = 5;
            assert!(rmqs_message_body(std::ptr::null(), &mut len).is_null());
            assert_eq!(len, 0);
        }
    }
}
