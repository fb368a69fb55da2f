//! `rmqs_message_builder` (an AMQP 1.0 message to publish, reusable) and `rmqs_value` (a
//! typed AMQP value, in and out).
//!
//! Why these shapes:
//! - One value type for every section and both directions: a tagged `rmqs_value` struct
//!   (`kind` plus one field per representation; no unions, which cgo and some FFI generators
//!   handle badly) rather than a typed setter per AMQP type and section (16 types x 6 sections).
//!   The same struct comes back from the typed accessors of received messages, so bindings
//!   map one C type to their own value type (`any`, a tagged union, a variant) once.
//! - Sections and fields are chosen by the same `int32_t` codes as elsewhere
//!   (`rmqs_property_code`, and `rmqs_header_code`, `rmqs_section_code` here): one setter per
//!   kind of section (list fields, application properties, annotations) instead of one per
//!   field.
//! - The builder is not named `rmqs_message`: that is the received-message view of
//!   `rmqs_chunk_message()`, immutable and owned by its chunk, while this object is owned by
//!   the application, mutable and reusable; the two have different lifetimes and rules.

use std::borrow::Cow;
use std::ffi::c_char;

use super::args::{Handle, bytes_arg, handle_arg, opt_str_arg, slice_arg, str_arg, utf8};
use super::error::{Error, rmqs_error};
use super::panic::{ffi_boundary, ffi_status};
use super::status::rmqs_status;
use crate::protocol::amqp::{
    HeaderField, ListView, MapView, MessageBuilder, PropertyField, SectionKind, Value, code,
};
use crate::protocol::error::EncodeError;

/// The type of an `rmqs_value`: which of its fields holds the value.
///
/// @ingroup rmqs_messages
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum rmqs_value_type_code {
    /// `null`: no field.
    RMQS_VALUE_NULL = 0,
    /// `boolean`: `bool_value`.
    RMQS_VALUE_BOOL = 1,
    /// `ubyte` (8-bit unsigned): `uint_value`.
    RMQS_VALUE_UBYTE = 2,
    /// `ushort` (16-bit unsigned): `uint_value`.
    RMQS_VALUE_USHORT = 3,
    /// `uint` (32-bit unsigned): `uint_value`.
    RMQS_VALUE_UINT = 4,
    /// `ulong` (64-bit unsigned): `uint_value`.
    RMQS_VALUE_ULONG = 5,
    /// `byte` (8-bit signed): `int_value`.
    RMQS_VALUE_BYTE = 6,
    /// `short` (16-bit signed): `int_value`.
    RMQS_VALUE_SHORT = 7,
    /// `int` (32-bit signed): `int_value`.
    RMQS_VALUE_INT = 8,
    /// `long` (64-bit signed): `int_value`.
    RMQS_VALUE_LONG = 9,
    /// `float` (IEEE 754 binary32): `float_value` (a double holding it exactly).
    RMQS_VALUE_FLOAT = 10,
    /// `double` (IEEE 754 binary64): `float_value`.
    RMQS_VALUE_DOUBLE = 11,
    /// `timestamp`, ms since the Unix epoch (may be negative): `int_value`.
    RMQS_VALUE_TIMESTAMP = 12,
    /// `uuid`: the 16 bytes of `uuid`, in network order.
    RMQS_VALUE_UUID = 13,
    /// `string` (UTF-8): `data`, `len` (not NUL-terminated).
    RMQS_VALUE_STRING = 14,
    /// `symbol` (ASCII by the spec): `data`, `len`.
    RMQS_VALUE_SYMBOL = 15,
    /// `binary`: `data`, `len`.
    RMQS_VALUE_BINARY = 16,
    /// `char` (a Unicode scalar value): `uint_value`.
    RMQS_VALUE_CHAR = 17,
    /// `decimal32`: `data`, `len` = its 4 bytes (IEEE 754 decimal32, as on the wire).
    RMQS_VALUE_DECIMAL32 = 18,
    /// `decimal64`: `data`, `len` = its 8 bytes.
    RMQS_VALUE_DECIMAL64 = 19,
    /// `decimal128`: `data`, `len` = its 16 bytes.
    RMQS_VALUE_DECIMAL128 = 20,
    /// `list`: `data`, `len` = the encoded AMQP list; read it with `rmqs_value_count()` and
    /// `rmqs_value_list_get()`.
    RMQS_VALUE_LIST = 21,
    /// `map`: `data`, `len` = the encoded AMQP map; read it with `rmqs_value_count()`,
    /// `rmqs_value_map_entry()` and `rmqs_value_map_get()`.
    RMQS_VALUE_MAP = 22,
    /// `array`: `data`, `len` = the encoded AMQP array; read as a list.
    RMQS_VALUE_ARRAY = 23,
    /// A described value: `data`, `len` = its encoding; as a list of two, descriptor then
    /// value.
    RMQS_VALUE_DESCRIBED = 24,
}

/// A typed AMQP 1.0 value: `kind` (an `rmqs_value_type_code`) says which field holds it.
///
/// Out (the typed accessors of received messages and builders): every field is written;
/// those `kind` does not use are zero. `data` points into the object the value came from
/// (the chunk of a received message: valid as long as the chunk; a builder: until it is next
/// changed, reset or freed); never free it.
///
/// In (the builder's setters): only `kind` and the field it names are read; `data` is
/// borrowed for the call (copied) and may be NULL only when `len` is 0. Compound kinds (list,
/// map, array, described) are given as their AMQP encoding in `data`, `len` (validated), e.g.
/// as read from another message.
///
/// A plain struct, freely copied (64 bytes on 64-bit platforms).
///
/// @ingroup rmqs_messages
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct rmqs_value {
    /// An `rmqs_value_type_code`.
    pub kind: i32,
    /// `RMQS_VALUE_BOOL`.
    pub bool_value: bool,
    /// Unsigned integers (`UBYTE`, `USHORT`, `UINT`, `ULONG`) and `CHAR` (its code point).
    pub uint_value: u64,
    /// Signed integers (`BYTE`, `SHORT`, `INT`, `LONG`) and `TIMESTAMP`.
    pub int_value: i64,
    /// `FLOAT` and `DOUBLE`.
    pub float_value: f64,
    /// `UUID`.
    pub uuid: [u8; 16],
    /// `STRING`, `SYMBOL`, `BINARY`: the bytes; decimals and compounds: see the type codes.
    pub data: *const u8,
    /// Bytes at `data`.
    pub len: usize,
}

impl Default for rmqs_value {
    fn default() -> Self {
        rmqs_value {
            kind: 0,
            bool_value: false,
            uint_value: 0,
            int_value: 0,
            float_value: 0.0,
            uuid: [0; 16],
            data: std::ptr::null(),
            len: 0,
        }
    }
}

/// Fields of the AMQP 1.0 header section (`rmqs_message_builder_set_header()`,
/// `rmqs_message_header_value()`).
///
/// @ingroup rmqs_messages
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum rmqs_header_code {
    /// `durable`: boolean.
    RMQS_HEADER_DURABLE = 1,
    /// `priority`: ubyte.
    RMQS_HEADER_PRIORITY = 2,
    /// `ttl`, in ms: uint.
    RMQS_HEADER_TTL = 3,
    /// `first-acquirer`: boolean.
    RMQS_HEADER_FIRST_ACQUIRER = 4,
    /// `delivery-count`: uint.
    RMQS_HEADER_DELIVERY_COUNT = 5,
}

/// Sections of an AMQP 1.0 message, numbered by their descriptor codes
/// (`rmqs_message_section()`, `rmqs_message_builder_add_annotation()`).
///
/// @ingroup rmqs_messages
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum rmqs_section_code {
    /// Header (a list).
    RMQS_SECTION_HEADER = 0x70,
    /// Delivery annotations (a map, symbol keys).
    RMQS_SECTION_DELIVERY_ANNOTATIONS = 0x71,
    /// Message annotations (a map, symbol keys).
    RMQS_SECTION_MESSAGE_ANNOTATIONS = 0x72,
    /// Properties (a list).
    RMQS_SECTION_PROPERTIES = 0x73,
    /// Application properties (a map, string keys).
    RMQS_SECTION_APPLICATION_PROPERTIES = 0x74,
    /// Footer (a map, symbol keys).
    RMQS_SECTION_FOOTER = 0x78,
}

/// The section kind of an `rmqs_section_code` (body sections excluded).
pub(crate) fn section_kind(code: i32) -> Option<SectionKind> {
    match SectionKind::from_code(u64::try_from(code).ok()?)? {
        SectionKind::Data | SectionKind::AmqpSequence | SectionKind::AmqpValue => None,
        k => Some(k),
    }
}

pub(crate) fn header_field(code: i32) -> Option<HeaderField> {
    HeaderField::from_index(usize::try_from(code.checked_sub(1)?).ok()?)
}

/// The field of an `rmqs_property_code`.
pub(crate) fn property_field(code: i32) -> Option<PropertyField> {
    PropertyField::from_index(usize::try_from(code.checked_sub(1)?).ok()?)
}

fn bytes_out(v: &mut rmqs_value, b: &[u8]) {
    v.data = if b.is_empty() {
        c"".as_ptr().cast()
    } else {
        b.as_ptr()
    };
    v.len = b.len();
}

/// A decoded scalar as an `rmqs_value` (strings and binaries pointing where the value
/// borrows from). Compounds get their kind and no data (see [`value_out`] for encoded ones).
pub(crate) fn scalar_out(value: &Value<'_>) -> rmqs_value {
    use rmqs_value_type_code::*;
    let mut v = rmqs_value::default();
    let kind = match value {
        Value::Null => RMQS_VALUE_NULL,
        Value::Bool(b) => {
            v.bool_value = *b;
            RMQS_VALUE_BOOL
        }
        Value::Ubyte(x) => {
            v.uint_value = (*x).into();
            RMQS_VALUE_UBYTE
        }
        Value::Ushort(x) => {
            v.uint_value = (*x).into();
            RMQS_VALUE_USHORT
        }
        Value::Uint(x) => {
            v.uint_value = (*x).into();
            RMQS_VALUE_UINT
        }
        Value::Ulong(x) => {
            v.uint_value = *x;
            RMQS_VALUE_ULONG
        }
        Value::Byte(x) => {
            v.int_value = (*x).into();
            RMQS_VALUE_BYTE
        }
        Value::Short(x) => {
            v.int_value = (*x).into();
            RMQS_VALUE_SHORT
        }
        Value::Int(x) => {
            v.int_value = (*x).into();
            RMQS_VALUE_INT
        }
        Value::Long(x) => {
            v.int_value = *x;
            RMQS_VALUE_LONG
        }
        Value::Float(x) => {
            v.float_value = (*x).into();
            RMQS_VALUE_FLOAT
        }
        Value::Double(x) => {
            v.float_value = *x;
            RMQS_VALUE_DOUBLE
        }
        Value::Timestamp(x) => {
            v.int_value = *x;
            RMQS_VALUE_TIMESTAMP
        }
        Value::Uuid(u) => {
            v.uuid = *u;
            RMQS_VALUE_UUID
        }
        Value::String(s) => {
            bytes_out(&mut v, s.as_bytes());
            RMQS_VALUE_STRING
        }
        Value::Symbol(s) => {
            bytes_out(&mut v, s.as_bytes());
            RMQS_VALUE_SYMBOL
        }
        Value::Binary(b) => {
            bytes_out(&mut v, b);
            RMQS_VALUE_BINARY
        }
        Value::Char(c) => {
            v.uint_value = u32::from(*c).into();
            RMQS_VALUE_CHAR
        }
        Value::Decimal32(_) => RMQS_VALUE_DECIMAL32,
        Value::Decimal64(_) => RMQS_VALUE_DECIMAL64,
        Value::Decimal128(_) => RMQS_VALUE_DECIMAL128,
        Value::List(_) => RMQS_VALUE_LIST,
        Value::Map(_) => RMQS_VALUE_MAP,
        Value::Array(_) => RMQS_VALUE_ARRAY,
        Value::Described(_) => RMQS_VALUE_DESCRIBED,
    };
    v.kind = kind as i32;
    v
}

/// An encoded (validated) value as an `rmqs_value`: scalars decoded (strings and binaries
/// pointing into `encoded`), decimals and compounds pointing at their bytes.
pub(crate) fn value_out(encoded: &[u8]) -> rmqs_value {
    use rmqs_value_type_code::*;
    let compound = |kind: rmqs_value_type_code, bytes: &[u8]| {
        let mut v = rmqs_value {
            kind: kind as i32,
            ..rmqs_value::default()
        };
        bytes_out(&mut v, bytes);
        v
    };
    match encoded.first() {
        Some(&code::DESCRIBED) => compound(RMQS_VALUE_DESCRIBED, encoded),
        Some(&(code::LIST0 | code::LIST8 | code::LIST32)) => compound(RMQS_VALUE_LIST, encoded),
        Some(&(code::MAP8 | code::MAP32)) => compound(RMQS_VALUE_MAP, encoded),
        Some(&(code::ARRAY8 | code::ARRAY32)) => compound(RMQS_VALUE_ARRAY, encoded),
        Some(&code::DECIMAL32) => compound(RMQS_VALUE_DECIMAL32, &encoded[1..]),
        Some(&code::DECIMAL64) => compound(RMQS_VALUE_DECIMAL64, &encoded[1..]),
        Some(&code::DECIMAL128) => compound(RMQS_VALUE_DECIMAL128, &encoded[1..]),
        _ => match Value::decode(encoded) {
            Ok((v, _)) => scalar_out(&v),
            Err(_) => rmqs_value::default(),
        },
    }
}

/// The `rmqs_value_type_code` of a `kind` field, if it is one (a table: the setters'
/// dispatch on it is a jump, not a chain of comparisons).
fn value_kind(kind: i32) -> Option<rmqs_value_type_code> {
    use rmqs_value_type_code::*;
    const KINDS: [rmqs_value_type_code; 25] = [
        RMQS_VALUE_NULL,
        RMQS_VALUE_BOOL,
        RMQS_VALUE_UBYTE,
        RMQS_VALUE_USHORT,
        RMQS_VALUE_UINT,
        RMQS_VALUE_ULONG,
        RMQS_VALUE_BYTE,
        RMQS_VALUE_SHORT,
        RMQS_VALUE_INT,
        RMQS_VALUE_LONG,
        RMQS_VALUE_FLOAT,
        RMQS_VALUE_DOUBLE,
        RMQS_VALUE_TIMESTAMP,
        RMQS_VALUE_UUID,
        RMQS_VALUE_STRING,
        RMQS_VALUE_SYMBOL,
        RMQS_VALUE_BINARY,
        RMQS_VALUE_CHAR,
        RMQS_VALUE_DECIMAL32,
        RMQS_VALUE_DECIMAL64,
        RMQS_VALUE_DECIMAL128,
        RMQS_VALUE_LIST,
        RMQS_VALUE_MAP,
        RMQS_VALUE_ARRAY,
        RMQS_VALUE_DESCRIBED,
    ];
    const _: () = {
        let mut i = 0;
        while i < KINDS.len() {
            assert!(KINDS[i] as usize == i);
            i += 1;
        }
    };
    usize::try_from(kind)
        .ok()
        .and_then(|k| KINDS.get(k).copied())
}

/// Reads a value given by the application.
///
/// # Safety
/// `v` must be NULL or point to a readable `rmqs_value` whose `data` is readable for `len`
/// bytes.
pub(crate) unsafe fn value_in<'a>(v: *const rmqs_value, what: &str) -> Result<Value<'a>, Error> {
    use rmqs_value_type_code::*;
    // SAFETY: per the caller's contract.
    let Some(v) = (unsafe { v.as_ref() }) else {
        return Err(Error::invalid_argument(format!("{what} is NULL")));
    };
    // SAFETY: per the caller's contract.
    let bytes = || unsafe { bytes_arg(v.data, v.len, what) };
    let range = |ok: bool| {
        if ok {
            Ok(())
        } else {
            Err(Error::invalid_argument(format!(
                "{what}: value out of range for its type {}",
                v.kind
            )))
        }
    };
    let fixed = |n: usize| -> Result<&'a [u8], Error> {
        let b = bytes()?;
        if b.len() != n {
            return Err(Error::invalid_argument(format!(
                "{what}: a decimal of kind {} takes {n} bytes, got {}",
                v.kind,
                b.len()
            )));
        }
        Ok(b)
    };
    let encoded = |codes: &[u8]| -> Result<Value<'a>, Error> {
        let b = bytes()?;
        if !b.first().is_some_and(|c| codes.contains(c)) {
            return Err(Error::invalid_argument(format!(
                "{what}: data is not an encoded AMQP value of kind {}",
                v.kind
            )));
        }
        Value::decode_exact(b).map_err(|e| Error::invalid_argument(format!("{what}: {e}")))
    };
    Ok(match value_kind(v.kind) {
        Some(RMQS_VALUE_NULL) => Value::Null,
        Some(RMQS_VALUE_BOOL) => Value::Bool(v.bool_value),
        Some(RMQS_VALUE_UBYTE) => {
            range(v.uint_value <= u8::MAX.into())?;
            Value::Ubyte(v.uint_value as u8)
        }
        Some(RMQS_VALUE_USHORT) => {
            range(v.uint_value <= u16::MAX.into())?;
            Value::Ushort(v.uint_value as u16)
        }
        Some(RMQS_VALUE_UINT) => {
            range(v.uint_value <= u32::MAX.into())?;
            Value::Uint(v.uint_value as u32)
        }
        Some(RMQS_VALUE_ULONG) => Value::Ulong(v.uint_value),
        Some(RMQS_VALUE_BYTE) => {
            range(i8::try_from(v.int_value).is_ok())?;
            Value::Byte(v.int_value as i8)
        }
        Some(RMQS_VALUE_SHORT) => {
            range(i16::try_from(v.int_value).is_ok())?;
            Value::Short(v.int_value as i16)
        }
        Some(RMQS_VALUE_INT) => {
            range(i32::try_from(v.int_value).is_ok())?;
            Value::Int(v.int_value as i32)
        }
        Some(RMQS_VALUE_LONG) => Value::Long(v.int_value),
        // Narrowing keeps NaN, infinities and every value a float can hold exactly.
        Some(RMQS_VALUE_FLOAT) => Value::Float(v.float_value as f32),
        Some(RMQS_VALUE_DOUBLE) => Value::Double(v.float_value),
        Some(RMQS_VALUE_TIMESTAMP) => Value::Timestamp(v.int_value),
        Some(RMQS_VALUE_UUID) => Value::Uuid(v.uuid),
        Some(k @ (RMQS_VALUE_STRING | RMQS_VALUE_SYMBOL)) => {
            let s = utf8(bytes()?).ok_or_else(|| {
                Error::invalid_argument(format!("{what}: string is not valid UTF-8"))
            })?;
            if k == RMQS_VALUE_STRING {
                Value::String(Cow::Borrowed(s))
            } else {
                Value::Symbol(Cow::Borrowed(s))
            }
        }
        Some(RMQS_VALUE_BINARY) => Value::Binary(Cow::Borrowed(bytes()?)),
        Some(RMQS_VALUE_CHAR) => {
            let c = u32::try_from(v.uint_value)
                .ok()
                .and_then(char::from_u32)
                .ok_or_else(|| {
                    Error::invalid_argument(format!("{what}: not a Unicode scalar value"))
                })?;
            Value::Char(c)
        }
        Some(RMQS_VALUE_DECIMAL32) => Value::Decimal32(fixed(4)?.try_into().unwrap_or_default()),
        Some(RMQS_VALUE_DECIMAL64) => Value::Decimal64(fixed(8)?.try_into().unwrap_or_default()),
        Some(RMQS_VALUE_DECIMAL128) => Value::Decimal128(fixed(16)?.try_into().unwrap_or_default()),
        Some(RMQS_VALUE_LIST) => encoded(&[code::LIST0, code::LIST8, code::LIST32])?,
        Some(RMQS_VALUE_MAP) => encoded(&[code::MAP8, code::MAP32])?,
        Some(RMQS_VALUE_ARRAY) => encoded(&[code::ARRAY8, code::ARRAY32])?,
        Some(RMQS_VALUE_DESCRIBED) => encoded(&[code::DESCRIBED])?,
        None => {
            return Err(Error::invalid_argument(format!(
                "{what}: unknown value kind {}",
                v.kind
            )));
        }
    })
}

fn encode_error(e: EncodeError) -> Error {
    Error::invalid_argument(e.to_string())
}

impl From<EncodeError> for Error {
    fn from(e: EncodeError) -> Error {
        encode_error(e)
    }
}

/// Writes `v` to `out` when `out` is not NULL; true (the value exists) either way.
///
/// # Safety
/// `out` must be NULL or writable.
pub(crate) unsafe fn put_value(out: *mut rmqs_value, v: rmqs_value) -> bool {
    if !out.is_null() {
        // SAFETY: per the caller's contract.
        unsafe { out.write(v) };
    }
    true
}

/// An AMQP 1.0 message to publish, reusable: build it with the setters, send it with
/// `rmqs_producer_send_message()` (or the batch and super producer variants), then
/// `rmqs_message_builder_reset()` it and build the next one. Sends copy it into the producer's
/// frame; the builder is not referenced after the send returns. Opaque.
///
/// Every value is encoded once, when it is set, into buffers the builder keeps across resets:
/// a loop that resets, sets and sends allocates nothing once the buffers fit its largest
/// message. For messages that differ only in their body, set the other sections once and send
/// each body with `rmqs_producer_send_message_body()` (`rmqs_super_producer_send_message_body()`
/// on a super stream), which leaves the builder as it is and costs about what
/// `rmqs_producer_send()` of the body does.
///
/// Created by `rmqs_message_builder_new()`, freed by `rmqs_message_builder_free()`.
///
/// Thread safety: not thread-safe; may move between threads. Sends only read it, so several
/// threads may send the same builder at once while nobody changes it.
///
/// @ingroup rmqs_messages
pub struct rmqs_message_builder {
    magic: u64,
    pub(crate) msg: MessageBuilder,
    filter_value: Option<String>,
    publishing_id: Option<u64>,
}

impl Handle for rmqs_message_builder {
    const MAGIC: u64 = 0x726d_7173_6d62_6c64; // "rmqsmbld"
    const NAME: &'static str = "rmqs_message_builder";
    fn magic(&self) -> u64 {
        self.magic
    }
}

impl rmqs_message_builder {
    /// The message as the core sends it.
    pub(crate) fn outgoing(&self, tag: usize) -> crate::client::OutgoingMessage<'_> {
        crate::client::OutgoingMessage {
            filter_value: self.filter_value.as_deref(),
            publishing_id: self.publishing_id,
            tag,
            ..crate::client::OutgoingMessage::message(&self.msg)
        }
    }

    /// The message as the core sends it, with `body` as its one data section in place of the
    /// builder's body (the builder unchanged).
    pub(crate) fn outgoing_with_body<'a>(
        &'a self,
        body: &'a [u8],
        tag: usize,
    ) -> crate::client::OutgoingMessage<'a> {
        crate::client::OutgoingMessage {
            body,
            format: crate::client::BodyFormat::MessageWithBody(&self.msg),
            ..self.outgoing(tag)
        }
    }

    /// The builder whose `msg` field `m` is.
    ///
    /// # Safety
    /// `m` must be the `msg` field of a live `rmqs_message_builder` (every
    /// `BodyFormat::Message` and `BodyFormat::MessageWithBody` the C API makes is: see
    /// [`Self::outgoing`] and [`Self::outgoing_with_body`]).
    pub(crate) unsafe fn containing(m: &MessageBuilder) -> *const rmqs_message_builder {
        let offset = std::mem::offset_of!(rmqs_message_builder, msg);
        // SAFETY: per the caller's contract, `m` sits `offset` bytes into a builder.
        unsafe {
            (m as *const MessageBuilder)
                .cast::<u8>()
                .sub(offset)
                .cast::<rmqs_message_builder>()
        }
    }
}

/// A builder handle for changing.
///
/// # Safety
/// `m` must be NULL or a live builder not used by another thread.
unsafe fn builder_mut<'a>(
    m: *mut rmqs_message_builder,
) -> Result<&'a mut rmqs_message_builder, Error> {
    // SAFETY: per the caller's contract.
    unsafe { handle_arg(m)? };
    // SAFETY: checked live above; the caller has it to itself.
    Ok(unsafe { &mut *m })
}

/// Creates an empty message: no sections, and a body of one empty data section until one is
/// set; no filter value, automatic publishing id.
///
/// @return a new builder owned by the caller, to free with `rmqs_message_builder_free()`;
///         NULL only if memory ran out.
///
/// Thread-safe; does not block.
///
/// @ingroup rmqs_messages
#[unsafe(no_mangle)]
pub extern "C" fn rmqs_message_builder_new() -> *mut rmqs_message_builder {
    ffi_boundary(std::ptr::null_mut(), || {
        Box::into_raw(Box::new(rmqs_message_builder {
            magic: rmqs_message_builder::MAGIC,
            msg: MessageBuilder::new(),
            filter_value: None,
            publishing_id: None,
        }))
    })
}

/// Empties the builder (every section, the filter value and the publishing id) for the next
/// message, keeping its memory. NULL is ignored.
///
/// @param m the builder (borrowed).
///
/// Not thread-safe (the builder); does not block.
///
/// @ingroup rmqs_messages
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_message_builder_reset(m: *mut rmqs_message_builder) {
    ffi_boundary((), || {
        // SAFETY: NULL or live, per the contract.
        if let Ok(m) = unsafe { builder_mut(m) } {
            m.msg.clear();
            if let Some(f) = &mut m.filter_value {
                f.clear();
            }
            m.filter_value = None;
            m.publishing_id = None;
        }
    })
}

/// Frees a builder. NULL is allowed.
///
/// @param m the builder (ownership passes to the library), or NULL.
///
/// Does not block.
///
/// @ingroup rmqs_messages
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_message_builder_free(m: *mut rmqs_message_builder) {
    ffi_boundary((), || {
        // SAFETY: NULL or live, freed once.
        if unsafe { handle_arg(m) }.is_ok() {
            let mut b = unsafe { Box::from_raw(m) };
            b.magic = 0;
            drop(b);
        }
    })
}

/// Sets the body to one data section holding `data` (replacing any body set before): what
/// stream clients publish and what `rmqs_message_body()` returns on the consuming side.
///
/// @param m the builder (borrowed).
/// @param data the bytes (copied), NULL only when `len` is 0.
/// @param len their length (at most 2^31 - 1).
/// @param err optional error detail.
/// @return `RMQS_OK`; `RMQS_ERR_INVALID_ARGUMENT` (NULL builder, NULL data with a length).
///
/// Not thread-safe (the builder); does not block.
///
/// @ingroup rmqs_messages
#[must_use]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_message_builder_set_body(
    m: *mut rmqs_message_builder,
    data: *const u8,
    len: usize,
    err: *mut *mut rmqs_error,
) -> rmqs_status {
    // SAFETY: pointers checked; err NULL or writable.
    unsafe {
        ffi_status(err, || {
            let m = builder_mut(m)?;
            let data = bytes_arg(data, len, "data")?;
            m.msg.set_body(data).map_err(encode_error)
        })
    }
}

/// Appends another data section to the body (the first call on an empty builder makes the
/// first one): a body of several data sections, which consumers get in order.
///
/// @param m the builder (borrowed).
/// @param data the bytes (copied), NULL only when `len` is 0.
/// @param len their length.
/// @param err optional error detail.
/// @return `RMQS_OK`; `RMQS_ERR_INVALID_ARGUMENT` when the body is an amqp-value
///         (`rmqs_message_builder_set_body_value()`), or for NULL arguments.
///
/// Not thread-safe (the builder); does not block.
///
/// @ingroup rmqs_messages
#[must_use]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_message_builder_add_body_section(
    m: *mut rmqs_message_builder,
    data: *const u8,
    len: usize,
    err: *mut *mut rmqs_error,
) -> rmqs_status {
    // SAFETY: pointers checked; err NULL or writable.
    unsafe {
        ffi_status(err, || {
            let m = builder_mut(m)?;
            let data = bytes_arg(data, len, "data")?;
            m.msg.add_data(data).map_err(encode_error)
        })
    }
}

/// Appends an amqp-sequence section to the body: the list of the `count` values at `items`
/// (the first call on an empty builder makes the first one). A body of one or more sequences,
/// which consumers get in order (`rmqs_message_body_section()` gives each as
/// `RMQS_VALUE_LIST`).
///
/// @param m the builder (borrowed).
/// @param items `count` values, any kind (the array and the values borrowed for the call;
///        their bytes are copied); NULL only when `count` is 0 (an empty list).
/// @param count number of values.
/// @param err optional error detail.
/// @return `RMQS_OK`; `RMQS_ERR_INVALID_ARGUMENT` when the body holds data sections or an
///         amqp-value, for an invalid value (its message names it, the body is then as
///         before), or NULL arguments.
///
/// Not thread-safe (the builder); does not block.
///
/// @ingroup rmqs_messages
#[must_use]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_message_builder_add_body_sequence(
    m: *mut rmqs_message_builder,
    items: *const rmqs_value,
    count: usize,
    err: *mut *mut rmqs_error,
) -> rmqs_status {
    // SAFETY: pointers checked; err NULL or writable; items readable for count values.
    unsafe {
        ffi_status(err, || {
            let m = builder_mut(m)?;
            let items = slice_arg(items, count, "items")?;
            m.msg.add_sequence(items.iter().enumerate().map(|(i, v)| {
                value_in(v, "item").map_err(|e| Error {
                    message: format!("items[{i}]: {}", e.message),
                    ..e
                })
            }))
        })
    }
}

/// Sets the body to one amqp-value section holding `value` (replacing any body set before):
/// typically a string or a binary, but any value is allowed.
///
/// @param m the builder (borrowed).
/// @param value the value (borrowed for the call; its bytes are copied).
/// @param err optional error detail.
/// @return `RMQS_OK`; `RMQS_ERR_INVALID_ARGUMENT` for an invalid value (unknown kind, number
///         out of range for its kind, invalid UTF-8, bad encoding of a compound) or NULL
///         arguments.
///
/// Not thread-safe (the builder); does not block.
///
/// @ingroup rmqs_messages
#[must_use]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_message_builder_set_body_value(
    m: *mut rmqs_message_builder,
    value: *const rmqs_value,
    err: *mut *mut rmqs_error,
) -> rmqs_status {
    // SAFETY: pointers checked; err NULL or writable.
    unsafe {
        ffi_status(err, || {
            let m = builder_mut(m)?;
            let v = value_in(value, "value")?;
            m.msg.set_value(&v).map_err(encode_error)
        })
    }
}

/// Sets a field of the header section (the section is written when a field is set).
///
/// @param m the builder (borrowed).
/// @param field an `rmqs_header_code`.
/// @param value `RMQS_VALUE_BOOL` for durable and first-acquirer; for priority (0-255), ttl
///        and delivery-count (0 to 2^32 - 1) an integer of any kind within that range;
///        `RMQS_VALUE_NULL` to unset the field. Borrowed for the call.
/// @param err optional error detail.
/// @return `RMQS_OK`; `RMQS_ERR_INVALID_ARGUMENT` for an unknown field, a value of the wrong
///         kind or out of range, or NULL arguments.
///
/// Not thread-safe (the builder); does not block.
///
/// @ingroup rmqs_messages
#[must_use]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_message_builder_set_header(
    m: *mut rmqs_message_builder,
    field: i32,
    value: *const rmqs_value,
    err: *mut *mut rmqs_error,
) -> rmqs_status {
    // SAFETY: pointers checked; err NULL or writable.
    unsafe {
        ffi_status(err, || {
            let m = builder_mut(m)?;
            let f = header_field(field)
                .ok_or_else(|| Error::invalid_argument(format!("unknown header field {field}")))?;
            let v = value_in(value, "value")?;
            m.msg.set_header(f, &v).map_err(encode_error)
        })
    }
}

/// Sets a field of the properties section (the section is written when a field is set).
///
/// @param m the builder (borrowed).
/// @param property an `rmqs_property_code`.
/// @param value borrowed for the call: message-id and correlation-id take `ULONG`, `UUID`,
///        `BINARY` or `STRING` (sent as that type); user-id `BINARY` (or `STRING`: its
///        bytes); to, subject, reply-to, group-id and reply-to-group-id `STRING` (or
///        `SYMBOL`); content-type and content-encoding `SYMBOL` (or `STRING`, sent as a
///        symbol); absolute-expiry-time and creation-time `TIMESTAMP` (or an integer, ms);
///        group-sequence an integer from 0 to 2^32 - 1. `RMQS_VALUE_NULL` unsets the field.
/// @param err optional error detail.
/// @return `RMQS_OK`; `RMQS_ERR_INVALID_ARGUMENT` for an unknown property, a value of a kind
///         the property does not take or out of range, or NULL arguments.
///
/// Not thread-safe (the builder); does not block.
///
/// @ingroup rmqs_messages
#[must_use]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_message_builder_set_property(
    m: *mut rmqs_message_builder,
    property: i32,
    value: *const rmqs_value,
    err: *mut *mut rmqs_error,
) -> rmqs_status {
    // SAFETY: pointers checked; err NULL or writable.
    unsafe {
        ffi_status(err, || {
            let m = builder_mut(m)?;
            let f = property_field(property)
                .ok_or_else(|| Error::invalid_argument(format!("unknown property {property}")))?;
            let v = value_in(value, "value")?;
            m.msg.set_property(f, &v).map_err(encode_error)
        })
    }
}

/// Adds an application property (the key/value headers AMQP 0-9-1 consumers see as message
/// headers), in order.
///
/// @param m the builder (borrowed).
/// @param key the name, NUL-terminated UTF-8 (borrowed, copied); not used yet on this message.
/// @param value any simple kind (not list, map, array or described: the AMQP spec allows
///        none of them here). Borrowed for the call.
/// @param err optional error detail.
/// @return `RMQS_OK`; `RMQS_ERR_INVALID_ARGUMENT` for a key already added, a compound or
///         invalid value, or NULL arguments.
///
/// Not thread-safe (the builder); does not block. Checking the key against those already
/// added takes time in their number.
///
/// @ingroup rmqs_messages
#[must_use]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_message_builder_add_app_property(
    m: *mut rmqs_message_builder,
    key: *const c_char,
    value: *const rmqs_value,
    err: *mut *mut rmqs_error,
) -> rmqs_status {
    // SAFETY: pointers checked; err NULL or writable.
    unsafe {
        ffi_status(err, || {
            let m = builder_mut(m)?;
            let key = str_arg(key, "key")?;
            let v = value_in(value, "value")?;
            m.msg
                .add_application_property(key, &v)
                .map_err(encode_error)
        })
    }
}

/// Adds an entry with a symbol key to the message annotations (e.g. `x-opt-...` keys), the
/// delivery annotations or the footer.
///
/// @param m the builder (borrowed).
/// @param section `RMQS_SECTION_MESSAGE_ANNOTATIONS`, `RMQS_SECTION_DELIVERY_ANNOTATIONS` or
///        `RMQS_SECTION_FOOTER`.
/// @param key the symbol, NUL-terminated (borrowed, copied); not used yet in that section.
/// @param value any kind, compounds included (borrowed for the call).
/// @param err optional error detail.
/// @return `RMQS_OK`; `RMQS_ERR_INVALID_ARGUMENT` for another section, a key already there,
///         an invalid value or NULL arguments.
///
/// Not thread-safe (the builder); does not block.
///
/// @ingroup rmqs_messages
#[must_use]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_message_builder_add_annotation(
    m: *mut rmqs_message_builder,
    section: i32,
    key: *const c_char,
    value: *const rmqs_value,
    err: *mut *mut rmqs_error,
) -> rmqs_status {
    // SAFETY: pointers checked; err NULL or writable.
    unsafe {
        ffi_status(err, || {
            let m = builder_mut(m)?;
            let kind = section_kind(section)
                .filter(|k| m.msg.annotations(*k).is_some())
                .ok_or_else(|| {
                    Error::invalid_argument(format!(
                        "section {section} takes no annotations (message annotations, \
                         delivery annotations or footer)"
                    ))
                })?;
            let key = str_arg(key, "key")?;
            let v = value_in(value, "value")?;
            m.msg.add_annotation(kind, key, &v).map_err(encode_error)
        })
    }
}

/// Sets the filter value the broker indexes the message under for filtering consumers
/// (Publish v2, RabbitMQ 3.13+; not with sub-entry batching). Not part of the AMQP message.
///
/// @param m the builder (borrowed).
/// @param value NUL-terminated UTF-8, at most 32767 bytes (borrowed, copied), or NULL for none.
/// @param err optional error detail.
/// @return `RMQS_OK`; `RMQS_ERR_INVALID_ARGUMENT` for invalid UTF-8 or a NULL builder.
///
/// Not thread-safe (the builder); does not block.
///
/// @ingroup rmqs_messages
#[must_use]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_message_builder_set_filter_value(
    m: *mut rmqs_message_builder,
    value: *const c_char,
    err: *mut *mut rmqs_error,
) -> rmqs_status {
    // SAFETY: pointers checked; err NULL or writable.
    unsafe {
        ffi_status(err, || {
            let m = builder_mut(m)?;
            match opt_str_arg(value, "value")? {
                None => m.filter_value = None,
                Some(v) => {
                    // Reuse the string's memory from message to message.
                    let mut s = m.filter_value.take().unwrap_or_default();
                    s.clear();
                    s.push_str(v);
                    m.filter_value = Some(s);
                }
            }
            Ok(())
        })
    }
}

/// Gives the message an explicit publishing id instead of the producer's next one (until the
/// next reset). It must be above every id the producer used before; a named producer's broker
/// drops (and confirms) a message whose id is not above the last one it kept.
///
/// @param m the builder (borrowed).
/// @param id the id; `UINT64_MAX` is reserved.
/// @param err optional error detail.
/// @return `RMQS_OK`; `RMQS_ERR_INVALID_ARGUMENT` for `UINT64_MAX` or a NULL builder.
///
/// Not thread-safe (the builder); does not block.
///
/// @ingroup rmqs_messages
#[must_use]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_message_builder_set_publishing_id(
    m: *mut rmqs_message_builder,
    id: u64,
    err: *mut *mut rmqs_error,
) -> rmqs_status {
    // SAFETY: pointers checked; err NULL or writable.
    unsafe {
        ffi_status(err, || {
            let m = builder_mut(m)?;
            if id == u64::MAX {
                return Err(Error::invalid_argument(
                    "publishing id UINT64_MAX is reserved",
                ));
            }
            m.publishing_id = Some(id);
            Ok(())
        })
    }
}

fn with_builder<R>(
    m: *const rmqs_message_builder,
    default: R,
    f: impl FnOnce(&rmqs_message_builder) -> R,
) -> R {
    // SAFETY: the caller passes NULL or a live builder (see each function's contract).
    match unsafe { handle_arg(m) } {
        Ok(m) => f(m),
        Err(_) => default,
    }
}

/// A header field as set on the builder.
///
/// @param m the builder (borrowed).
/// @param field an `rmqs_header_code`.
/// @param out receives the value (as encoded: `BOOL`, `UBYTE` or `UINT`); may be NULL.
/// @return true when the field is set; false when not, for an unknown field or NULL `m`.
///
/// Not thread-safe against changes of the builder; does not block.
///
/// @ingroup rmqs_messages
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_message_builder_header(
    m: *const rmqs_message_builder,
    field: i32,
    out: *mut rmqs_value,
) -> bool {
    ffi_boundary(false, || {
        with_builder(m, false, |m| {
            match header_field(field).and_then(|f| m.msg.header(f)) {
                // SAFETY: out NULL or writable.
                Some(v) => unsafe { put_value(out, scalar_out(&v)) },
                None => false,
            }
        })
    })
}

/// A property as set on the builder (for a key extractor or routing callback reading the
/// message it is given).
///
/// @param m the builder (borrowed).
/// @param property an `rmqs_property_code`.
/// @param out receives the value as it will be sent (content-type as a `SYMBOL`, the times as
///        `TIMESTAMP`, ...); strings point into the builder, valid until it is next changed,
///        reset or freed. May be NULL.
/// @return true when the property is set; false when not, for an unknown property or NULL `m`.
///
/// Not thread-safe against changes of the builder; does not block.
///
/// @ingroup rmqs_messages
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_message_builder_property(
    m: *const rmqs_message_builder,
    property: i32,
    out: *mut rmqs_value,
) -> bool {
    ffi_boundary(false, || {
        with_builder(m, false, |m| {
            match property_field(property).and_then(|f| m.msg.property(f)) {
                // SAFETY: out NULL or writable.
                Some(v) => unsafe { put_value(out, scalar_out(&v)) },
                None => false,
            }
        })
    })
}

/// An application property as added to the builder.
///
/// @param m the builder (borrowed).
/// @param key the name, NUL-terminated UTF-8 (borrowed).
/// @param out receives the value; strings point into the builder, valid until it is next
///        changed, reset or freed. May be NULL.
/// @return true when found; false when absent or for NULL `m` or `key`.
///
/// Not thread-safe against changes of the builder; does not block.
///
/// @ingroup rmqs_messages
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_message_builder_app_property(
    m: *const rmqs_message_builder,
    key: *const c_char,
    out: *mut rmqs_value,
) -> bool {
    ffi_boundary(false, || {
        // SAFETY: NULL or NUL-terminated.
        let Ok(key) = (unsafe { str_arg(key, "key") }) else {
            return false;
        };
        with_builder(m, false, |m| {
            match m.msg.application_properties().get_encoded(key) {
                // SAFETY: out NULL or writable.
                Some(v) => unsafe { put_value(out, value_out(v)) },
                None => false,
            }
        })
    })
}

/// The encoded bytes of a compound `rmqs_value`, validated, with its kind.
///
/// # Safety
/// `v` must be NULL or readable, its `data` readable for `len` bytes.
unsafe fn compound_arg<'a>(v: *const rmqs_value) -> Option<(i32, &'a [u8])> {
    // SAFETY: per the caller's contract.
    let v = unsafe { v.as_ref() }?;
    // SAFETY: per the caller's contract.
    let b = unsafe { bytes_arg(v.data, v.len, "data") }.ok()?;
    Some((v.kind, b))
}

/// The elements of a list, array or described value (descriptor, value), as encodings when
/// they can be (lists; described), else decoded (arrays).
enum Elements<'a> {
    Encoded(Vec<&'a [u8]>),
    Decoded(Vec<Value<'a>>),
}

fn elements(kind: i32, b: &[u8]) -> Option<Elements<'_>> {
    use rmqs_value_type_code::*;
    match kind {
        k if k == RMQS_VALUE_LIST as i32 => Some(Elements::Encoded(
            ListView::parse(b).ok()?.encoded().collect(),
        )),
        k if k == RMQS_VALUE_ARRAY as i32 => match Value::decode_exact(b).ok()? {
            Value::Array(items) => Some(Elements::Decoded(items)),
            _ => None,
        },
        k if k == RMQS_VALUE_DESCRIBED as i32 => {
            if b.first() != Some(&code::DESCRIBED) {
                return None;
            }
            Value::decode_exact(b).ok()?;
            let rest = &b[1..];
            let (_, n) = Value::decode(rest).ok()?;
            Some(Elements::Encoded(vec![&rest[..n], &rest[n..]]))
        }
        _ => None,
    }
}

/// Number of elements of a list or array, entries of a map, or 2 for a described value
/// (descriptor, value); 0 for other kinds, invalid encodings or NULL.
///
/// @param v a value from a typed accessor (borrowed; its `data` must still be valid).
///
/// Thread-safe; does not block. Validates the encoding on each call.
///
/// @ingroup rmqs_messages
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_value_count(v: *const rmqs_value) -> usize {
    ffi_boundary(0, || {
        // SAFETY: per the contract.
        let Some((kind, b)) = (unsafe { compound_arg(v) }) else {
            return 0;
        };
        if kind == rmqs_value_type_code::RMQS_VALUE_MAP as i32 {
            return MapView::parse(b).map_or(0, |m| m.len());
        }
        match elements(kind, b) {
            Some(Elements::Encoded(e)) => e.len(),
            Some(Elements::Decoded(e)) => e.len(),
            None => 0,
        }
    })
}

/// Element `i` of a list or array, or of a described value (0 = descriptor, 1 = value).
///
/// @param v the compound (borrowed).
/// @param i position, below `rmqs_value_count()`.
/// @param out receives the element; its bytes point where `v`'s do (same lifetime). An array
///        element that is itself a list, map or array comes with its kind only (`data` NULL).
///        May be NULL.
/// @return false when `i` is out of range, `v` is not a list, array or described value, or
///         NULL.
///
/// Thread-safe; does not block.
///
/// @ingroup rmqs_messages
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_value_list_get(
    v: *const rmqs_value,
    i: usize,
    out: *mut rmqs_value,
) -> bool {
    ffi_boundary(false, || {
        // SAFETY: per the contract.
        let Some((kind, b)) = (unsafe { compound_arg(v) }) else {
            return false;
        };
        let item = match elements(kind, b) {
            Some(Elements::Encoded(e)) => e.get(i).map(|x| value_out(x)),
            Some(Elements::Decoded(e)) => e.get(i).map(scalar_out),
            None => None,
        };
        match item {
            // SAFETY: out NULL or writable.
            Some(x) => unsafe { put_value(out, x) },
            None => false,
        }
    })
}

/// Entry `i` of a map (wire order).
///
/// @param v the map (borrowed).
/// @param i position, below `rmqs_value_count()`.
/// @param key receives the key (same lifetime as `v`'s bytes); may be NULL.
/// @param value receives the value; may be NULL.
/// @return false when `i` is out of range, `v` is not a map, or NULL.
///
/// Thread-safe; does not block.
///
/// @ingroup rmqs_messages
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_value_map_entry(
    v: *const rmqs_value,
    i: usize,
    key: *mut rmqs_value,
    value: *mut rmqs_value,
) -> bool {
    ffi_boundary(false, || {
        // SAFETY: per the contract.
        let Some((kind, b)) = (unsafe { compound_arg(v) }) else {
            return false;
        };
        if kind != rmqs_value_type_code::RMQS_VALUE_MAP as i32 {
            return false;
        }
        let Some((k, x)) = MapView::parse(b).ok().and_then(|m| m.encoded().nth(i)) else {
            return false;
        };
        // SAFETY: outputs NULL or writable.
        unsafe {
            put_value(key, value_out(k));
            put_value(value, value_out(x))
        }
    })
}

/// The value of the first entry of a map whose key is the string or symbol `key`.
///
/// @param v the map (borrowed).
/// @param key NUL-terminated UTF-8 (borrowed).
/// @param out receives the value (same lifetime as `v`'s bytes); may be NULL.
/// @return false when there is no such entry, `v` is not a map, or NULL arguments.
///
/// Thread-safe; does not block.
///
/// @ingroup rmqs_messages
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_value_map_get(
    v: *const rmqs_value,
    key: *const c_char,
    out: *mut rmqs_value,
) -> bool {
    ffi_boundary(false, || {
        // SAFETY: per the contract.
        let (Some((kind, b)), Ok(key)) =
            (unsafe { compound_arg(v) }, unsafe { str_arg(key, "key") })
        else {
            return false;
        };
        if kind != rmqs_value_type_code::RMQS_VALUE_MAP as i32 {
            return false;
        }
        match MapView::parse(b).ok().and_then(|m| m.get_encoded(key)) {
            // SAFETY: out NULL or writable.
            Some(x) => unsafe { put_value(out, value_out(x)) },
            None => false,
        }
    })
}
