//! AMQP 1.0 messages: the body format stream clients publish (AMQP 1.0 part 3, "Messaging").
//!
//! A message is a sequence of described sections, each `0x00 descriptor value`:
//!
//! | code   | symbolic descriptor                 | value     | here |
//! |--------|-------------------------------------|-----------|------|
//! | `0x70` | `amqp:header:list`                  | list      | [`Header`] |
//! | `0x71` | `amqp:delivery-annotations:map`     | map       | [`Annotations`] |
//! | `0x72` | `amqp:message-annotations:map`      | map       | [`Annotations`] |
//! | `0x73` | `amqp:properties:list`              | list      | [`Properties`] |
//! | `0x74` | `amqp:application-properties:map`   | map       | string → simple value |
//! | `0x75` | `amqp:data:binary` (may repeat)     | binary    | [`Body::Data`] |
//! | `0x76` | `amqp:amqp-sequence:list` (may repeat) | list   | [`Body::Sequence`] |
//! | `0x77` | `amqp:amqp-value:*`                 | any       | [`Body::Value`] |
//! | `0x78` | `amqp:footer:map`                   | map       | [`Annotations`] |
//!
//! Reading: [`MessageView::parse`] validates the whole message once without allocating and
//! records where each section is; its accessors decode lazily, and [`MessageView::body`] /
//! [`MessageView::body_bytes`] reach the body with no allocation at all. Anything that is not
//! a well-formed AMQP message (e.g. raw bytes from a non-AMQP publisher) is a [`DecodeError`],
//! so callers can fall back to the raw bytes. [`Message::decode`] gives an owned-structure
//! decode that still borrows strings and binaries.
//!
//! Writing: [`Message`] (built with its public fields or the builder methods) encodes every
//! section with [`Message::encode`], with the compact encodings other clients use and the
//! numeric descriptors (`0x00 0x53 0x7X`). [`MessageBuilder`] writes the same bytes from
//! reusable buffers, encoding each value once as it is set, for sending without allocation.
//!
//! Leniency (what other clients are seen to send): sections in any order (Python's `pyamqp`
//! writes delivery annotations last), symbolic descriptors, strings where symbols are expected
//! and vice versa, any integer type for numeric header/properties fields, annotation keys of any
//! non-null type (Go writes `long` keys), `null` for an empty section. Strict on the rest:
//! unknown descriptors, duplicated sections, mixed or non-contiguous body sections, a data
//! section that is not binary, trailing bytes, counts that do not match sizes, nesting deeper
//! than [`MAX_DEPTH`].

mod builder;
mod value;

use std::borrow::Cow;

use bytes::{BufMut, Bytes, BytesMut};

pub use builder::{BuilderBody, HeaderField, MessageBuilder, PropertyField};
pub use value::{MAX_DEPTH, Value, code, decode_value, skip_value};

use super::error::{DecodeError, EncodeError};
use super::wire::Reader;
use value::{decode_at, encode_at, skip_at};

/// Numeric descriptors of the message sections (domain 0, AMQP 1.0 part 3).
pub mod descriptor {
    /// `amqp:header:list`.
    pub const HEADER: u64 = 0x70;
    /// `amqp:delivery-annotations:map`.
    pub const DELIVERY_ANNOTATIONS: u64 = 0x71;
    /// `amqp:message-annotations:map`.
    pub const MESSAGE_ANNOTATIONS: u64 = 0x72;
    /// `amqp:properties:list`.
    pub const PROPERTIES: u64 = 0x73;
    /// `amqp:application-properties:map`.
    pub const APPLICATION_PROPERTIES: u64 = 0x74;
    /// `amqp:data:binary`.
    pub const DATA: u64 = 0x75;
    /// `amqp:amqp-sequence:list`.
    pub const AMQP_SEQUENCE: u64 = 0x76;
    /// `amqp:amqp-value:*`.
    pub const AMQP_VALUE: u64 = 0x77;
    /// `amqp:footer:map`.
    pub const FOOTER: u64 = 0x78;
}

/// The kind of a message section.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SectionKind {
    /// Header (0x70).
    Header,
    /// Delivery annotations (0x71).
    DeliveryAnnotations,
    /// Message annotations (0x72).
    MessageAnnotations,
    /// Properties (0x73).
    Properties,
    /// Application properties (0x74).
    ApplicationProperties,
    /// Data (0x75).
    Data,
    /// AMQP sequence (0x76).
    AmqpSequence,
    /// AMQP value (0x77).
    AmqpValue,
    /// Footer (0x78).
    Footer,
}

impl SectionKind {
    /// Every kind, in the order the spec lays sections out.
    pub const ALL: [SectionKind; 9] = [
        SectionKind::Header,
        SectionKind::DeliveryAnnotations,
        SectionKind::MessageAnnotations,
        SectionKind::Properties,
        SectionKind::ApplicationProperties,
        SectionKind::Data,
        SectionKind::AmqpSequence,
        SectionKind::AmqpValue,
        SectionKind::Footer,
    ];

    /// The numeric descriptor.
    pub const fn code(self) -> u64 {
        match self {
            SectionKind::Header => descriptor::HEADER,
            SectionKind::DeliveryAnnotations => descriptor::DELIVERY_ANNOTATIONS,
            SectionKind::MessageAnnotations => descriptor::MESSAGE_ANNOTATIONS,
            SectionKind::Properties => descriptor::PROPERTIES,
            SectionKind::ApplicationProperties => descriptor::APPLICATION_PROPERTIES,
            SectionKind::Data => descriptor::DATA,
            SectionKind::AmqpSequence => descriptor::AMQP_SEQUENCE,
            SectionKind::AmqpValue => descriptor::AMQP_VALUE,
            SectionKind::Footer => descriptor::FOOTER,
        }
    }

    /// The symbolic descriptor.
    pub const fn symbol(self) -> &'static str {
        match self {
            SectionKind::Header => "amqp:header:list",
            SectionKind::DeliveryAnnotations => "amqp:delivery-annotations:map",
            SectionKind::MessageAnnotations => "amqp:message-annotations:map",
            SectionKind::Properties => "amqp:properties:list",
            SectionKind::ApplicationProperties => "amqp:application-properties:map",
            SectionKind::Data => "amqp:data:binary",
            SectionKind::AmqpSequence => "amqp:amqp-sequence:list",
            SectionKind::AmqpValue => "amqp:amqp-value:*",
            SectionKind::Footer => "amqp:footer:map",
        }
    }

    /// The kind with numeric descriptor `code`.
    pub fn from_code(code: u64) -> Option<SectionKind> {
        SectionKind::ALL.into_iter().find(|k| k.code() == code)
    }

    /// The kind with symbolic descriptor `symbol`.
    pub fn from_symbol(symbol: &str) -> Option<SectionKind> {
        SectionKind::ALL.into_iter().find(|k| k.symbol() == symbol)
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Annotations (delivery, message, footer): a map whose keys are symbols or ulongs by the spec
/// (any non-null key is accepted when decoding), in wire order.
pub type Annotations<'a> = Vec<(Value<'a>, Value<'a>)>;

/// Application properties: string keys, simple values, in wire order.
pub type ApplicationProperties<'a> = Vec<(Cow<'a, str>, Value<'a>)>;

/// The header section. `None` fields are absent (the spec's defaults apply: not durable,
/// priority 4, no TTL, not first acquirer, delivery count 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Header {
    /// `durable` (boolean).
    pub durable: Option<bool>,
    /// `priority` (ubyte).
    pub priority: Option<u8>,
    /// `ttl` in milliseconds (uint).
    pub ttl: Option<u32>,
    /// `first-acquirer` (boolean).
    pub first_acquirer: Option<bool>,
    /// `delivery-count` (uint).
    pub delivery_count: Option<u32>,
}

/// The properties section. `None` fields are absent.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Properties<'a> {
    /// `message-id`: ulong, uuid, binary or string by the spec (other types are kept as sent).
    pub message_id: Option<Value<'a>>,
    /// `user-id` (binary).
    pub user_id: Option<Cow<'a, [u8]>>,
    /// `to` (address string).
    pub to: Option<Cow<'a, str>>,
    /// `subject` (string).
    pub subject: Option<Cow<'a, str>>,
    /// `reply-to` (address string).
    pub reply_to: Option<Cow<'a, str>>,
    /// `correlation-id`: like `message_id`.
    pub correlation_id: Option<Value<'a>>,
    /// `content-type` (symbol).
    pub content_type: Option<Cow<'a, str>>,
    /// `content-encoding` (symbol).
    pub content_encoding: Option<Cow<'a, str>>,
    /// `absolute-expiry-time`, ms since the epoch (timestamp).
    pub absolute_expiry_time: Option<i64>,
    /// `creation-time`, ms since the epoch (timestamp).
    pub creation_time: Option<i64>,
    /// `group-id` (string).
    pub group_id: Option<Cow<'a, str>>,
    /// `group-sequence` (uint).
    pub group_sequence: Option<u32>,
    /// `reply-to-group-id` (string).
    pub reply_to_group_id: Option<Cow<'a, str>>,
}

/// The body of a message.
#[derive(Debug, Clone, PartialEq)]
pub enum Body<'a> {
    /// One or more data sections (opaque bytes): what stream clients publish. An empty vector
    /// is encoded as one empty data section, so that the message has a body.
    Data(Vec<Cow<'a, [u8]>>),
    /// One or more amqp-sequence sections (lists). An empty vector is encoded as one empty
    /// sequence.
    Sequence(Vec<Vec<Value<'a>>>),
    /// One amqp-value section.
    Value(Value<'a>),
}

impl Default for Body<'_> {
    fn default() -> Self {
        Body::Data(Vec::new())
    }
}

impl Body<'_> {
    /// Detaches the body from the input it borrows from.
    pub fn into_owned(self) -> Body<'static> {
        match self {
            Body::Data(d) => {
                Body::Data(d.into_iter().map(|c| Cow::Owned(c.into_owned())).collect())
            }
            Body::Sequence(s) => Body::Sequence(
                s.into_iter()
                    .map(|l| l.into_iter().map(Value::into_owned).collect())
                    .collect(),
            ),
            Body::Value(v) => Body::Value(v.into_owned()),
        }
    }
}

/// A whole AMQP 1.0 message, for building and encoding (and the result of [`Message::decode`]).
///
/// `Message<'static>` owns everything; a decoded `Message<'a>` borrows strings and binaries.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Message<'a> {
    /// Header section.
    pub header: Option<Header>,
    /// Delivery-annotations section.
    pub delivery_annotations: Option<Annotations<'a>>,
    /// Message-annotations section.
    pub message_annotations: Option<Annotations<'a>>,
    /// Properties section.
    pub properties: Option<Properties<'a>>,
    /// Application-properties section.
    pub application_properties: Option<ApplicationProperties<'a>>,
    /// Body sections.
    pub body: Body<'a>,
    /// Footer section.
    pub footer: Option<Annotations<'a>>,
}

impl<'a> Message<'a> {
    /// A message whose body is one data section holding `data`.
    pub fn new(data: impl Into<Cow<'a, [u8]>>) -> Self {
        Message {
            body: Body::Data(vec![data.into()]),
            ..Message::default()
        }
    }

    /// A message whose body is one amqp-value section.
    pub fn with_value(value: Value<'a>) -> Self {
        Message {
            body: Body::Value(value),
            ..Message::default()
        }
    }

    /// Sets the header.
    pub fn header(mut self, header: Header) -> Self {
        self.header = Some(header);
        self
    }

    /// Sets the properties.
    pub fn properties(mut self, properties: Properties<'a>) -> Self {
        self.properties = Some(properties);
        self
    }

    /// Adds an application property.
    pub fn application_property(
        mut self,
        key: impl Into<Cow<'a, str>>,
        value: impl Into<Value<'a>>,
    ) -> Self {
        self.application_properties
            .get_or_insert_with(Vec::new)
            .push((key.into(), value.into()));
        self
    }

    /// Adds a message annotation with a symbol key (e.g. `x-opt-…`).
    pub fn message_annotation(
        mut self,
        key: impl Into<Cow<'a, str>>,
        value: impl Into<Value<'a>>,
    ) -> Self {
        self.message_annotations
            .get_or_insert_with(Vec::new)
            .push((Value::Symbol(key.into()), value.into()));
        self
    }

    /// Decodes a whole message (lists and maps are collected; strings and binaries borrow
    /// from `input`).
    pub fn decode(input: &'a [u8]) -> Result<Message<'a>, DecodeError> {
        MessageView::parse(input)?.to_message()
    }

    /// Detaches the message from the input it borrows from.
    pub fn into_owned(self) -> Message<'static> {
        let ann = |a: Annotations<'a>| -> Annotations<'static> {
            a.into_iter()
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect()
        };
        Message {
            header: self.header,
            delivery_annotations: self.delivery_annotations.map(ann),
            message_annotations: self.message_annotations.map(ann),
            properties: self.properties.map(Properties::into_owned),
            application_properties: self.application_properties.map(|p| {
                p.into_iter()
                    .map(|(k, v)| (Cow::Owned(k.into_owned()), v.into_owned()))
                    .collect()
            }),
            body: self.body.into_owned(),
            footer: self.footer.map(ann),
        }
    }

    /// Appends the encoded message to `out`: header, delivery annotations, message annotations,
    /// properties, application properties, body, footer (absent sections are skipped).
    pub fn encode(&self, out: &mut BytesMut) -> Result<(), EncodeError> {
        let start = out.len();
        let result = self.encode_inner(out);
        if result.is_err() {
            out.truncate(start);
        }
        result
    }

    /// The encoded message.
    pub fn to_bytes(&self) -> Result<Bytes, EncodeError> {
        let mut out = BytesMut::new();
        self.encode(&mut out)?;
        Ok(out.freeze())
    }

    fn encode_inner(&self, out: &mut BytesMut) -> Result<(), EncodeError> {
        if let Some(h) = &self.header {
            begin_section(out, SectionKind::Header);
            encode_at(&h.to_list(), out, 1)?;
        }
        if let Some(a) = &self.delivery_annotations {
            encode_annotations(out, SectionKind::DeliveryAnnotations, a)?;
        }
        if let Some(a) = &self.message_annotations {
            encode_annotations(out, SectionKind::MessageAnnotations, a)?;
        }
        if let Some(p) = &self.properties {
            begin_section(out, SectionKind::Properties);
            encode_at(&p.to_list(), out, 1)?;
        }
        if let Some(props) = &self.application_properties {
            begin_section(out, SectionKind::ApplicationProperties);
            // Keys are borrowed into a temporary map of values; no copy of the strings.
            let map = Value::Map(
                props
                    .iter()
                    .map(|(k, v)| (Value::String(Cow::Borrowed(k.as_ref())), shallow(v)))
                    .collect(),
            );
            encode_at(&map, out, 1)?;
        }
        match &self.body {
            Body::Data(sections) if sections.is_empty() => {
                begin_section(out, SectionKind::Data);
                encode_at(&Value::Binary(Cow::Borrowed(&[])), out, 1)?;
            }
            Body::Data(sections) => {
                for s in sections {
                    begin_section(out, SectionKind::Data);
                    encode_at(&Value::Binary(Cow::Borrowed(s.as_ref())), out, 1)?;
                }
            }
            Body::Sequence(lists) if lists.is_empty() => {
                begin_section(out, SectionKind::AmqpSequence);
                encode_at(&Value::List(Vec::new()), out, 1)?;
            }
            Body::Sequence(lists) => {
                for l in lists {
                    begin_section(out, SectionKind::AmqpSequence);
                    let list = Value::List(l.iter().map(shallow).collect());
                    encode_at(&list, out, 1)?;
                }
            }
            Body::Value(v) => {
                begin_section(out, SectionKind::AmqpValue);
                encode_at(v, out, 1)?;
            }
        }
        if let Some(a) = &self.footer {
            encode_annotations(out, SectionKind::Footer, a)?;
        }
        Ok(())
    }
}

/// A borrowed copy of `v` whose strings and binaries point into `v` (compounds are rebuilt,
/// leaves are not copied). Used to assemble temporary values for encoding.
fn shallow<'b>(v: &'b Value<'_>) -> Value<'b> {
    match v {
        Value::Binary(b) => Value::Binary(Cow::Borrowed(b.as_ref())),
        Value::String(s) => Value::String(Cow::Borrowed(s.as_ref())),
        Value::Symbol(s) => Value::Symbol(Cow::Borrowed(s.as_ref())),
        Value::List(l) => Value::List(l.iter().map(shallow).collect()),
        Value::Map(m) => Value::Map(m.iter().map(|(k, v)| (shallow(k), shallow(v))).collect()),
        Value::Array(a) => Value::Array(a.iter().map(shallow).collect()),
        Value::Described(b) => Value::Described(Box::new((shallow(&b.0), shallow(&b.1)))),
        Value::Null => Value::Null,
        Value::Bool(x) => Value::Bool(*x),
        Value::Ubyte(x) => Value::Ubyte(*x),
        Value::Ushort(x) => Value::Ushort(*x),
        Value::Uint(x) => Value::Uint(*x),
        Value::Ulong(x) => Value::Ulong(*x),
        Value::Byte(x) => Value::Byte(*x),
        Value::Short(x) => Value::Short(*x),
        Value::Int(x) => Value::Int(*x),
        Value::Long(x) => Value::Long(*x),
        Value::Float(x) => Value::Float(*x),
        Value::Double(x) => Value::Double(*x),
        Value::Decimal32(x) => Value::Decimal32(*x),
        Value::Decimal64(x) => Value::Decimal64(*x),
        Value::Decimal128(x) => Value::Decimal128(*x),
        Value::Char(x) => Value::Char(*x),
        Value::Timestamp(x) => Value::Timestamp(*x),
        Value::Uuid(x) => Value::Uuid(*x),
    }
}

fn begin_section(out: &mut BytesMut, kind: SectionKind) {
    out.put_u8(code::DESCRIBED);
    out.put_u8(code::SMALLULONG);
    // Section codes are 0x70..=0x78.
    out.put_u8(kind.code() as u8);
}

fn encode_annotations(
    out: &mut BytesMut,
    kind: SectionKind,
    a: &Annotations<'_>,
) -> Result<(), EncodeError> {
    if a.iter().any(|(k, _)| k.is_null()) {
        return Err(EncodeError::InvalidValue("annotation key is null"));
    }
    begin_section(out, kind);
    let map = Value::Map(a.iter().map(|(k, v)| (shallow(k), shallow(v))).collect());
    encode_at(&map, out, 1)
}

/// Trims trailing absent fields of a composite (the spec lets them be omitted).
fn trim_list(mut fields: Vec<Value<'_>>) -> Value<'_> {
    while fields.last().is_some_and(Value::is_null) {
        fields.pop();
    }
    Value::List(fields)
}

fn opt<T, F: FnOnce(T) -> Value<'static>>(v: Option<T>, f: F) -> Value<'static> {
    v.map_or(Value::Null, f)
}

impl Header {
    fn to_list(self) -> Value<'static> {
        trim_list(vec![
            opt(self.durable, Value::Bool),
            opt(self.priority, Value::Ubyte),
            opt(self.ttl, Value::Uint),
            opt(self.first_acquirer, Value::Bool),
            opt(self.delivery_count, Value::Uint),
        ])
    }

    fn from_fields<'a>(mut fields: impl Iterator<Item = Value<'a>>) -> Result<Header, DecodeError> {
        let mut next = || fields.next().unwrap_or(Value::Null);
        Ok(Header {
            durable: field_bool(next(), "header.durable")?,
            priority: field_int(next(), "header.priority")?,
            ttl: field_int(next(), "header.ttl")?,
            first_acquirer: field_bool(next(), "header.first-acquirer")?,
            delivery_count: field_int(next(), "header.delivery-count")?,
        })
    }
}

impl<'a> Properties<'a> {
    /// Detaches the properties from the input they borrow from.
    pub fn into_owned(self) -> Properties<'static> {
        let s = |c: Option<Cow<'a, str>>| c.map(|c| Cow::Owned(c.into_owned()));
        Properties {
            message_id: self.message_id.map(Value::into_owned),
            user_id: self.user_id.map(|c| Cow::Owned(c.into_owned())),
            to: s(self.to),
            subject: s(self.subject),
            reply_to: s(self.reply_to),
            correlation_id: self.correlation_id.map(Value::into_owned),
            content_type: s(self.content_type),
            content_encoding: s(self.content_encoding),
            absolute_expiry_time: self.absolute_expiry_time,
            creation_time: self.creation_time,
            group_id: s(self.group_id),
            group_sequence: self.group_sequence,
            reply_to_group_id: s(self.reply_to_group_id),
        }
    }

    fn to_list(&self) -> Value<'_> {
        fn string<'b>(s: &'b Option<Cow<'_, str>>) -> Value<'b> {
            s.as_ref()
                .map_or(Value::Null, |s| Value::String(Cow::Borrowed(s.as_ref())))
        }
        fn symbol<'b>(s: &'b Option<Cow<'_, str>>) -> Value<'b> {
            s.as_ref()
                .map_or(Value::Null, |s| Value::Symbol(Cow::Borrowed(s.as_ref())))
        }
        trim_list(vec![
            self.message_id.as_ref().map_or(Value::Null, shallow),
            self.user_id
                .as_ref()
                .map_or(Value::Null, |b| Value::Binary(Cow::Borrowed(b.as_ref()))),
            string(&self.to),
            string(&self.subject),
            string(&self.reply_to),
            self.correlation_id.as_ref().map_or(Value::Null, shallow),
            symbol(&self.content_type),
            symbol(&self.content_encoding),
            opt(self.absolute_expiry_time, Value::Timestamp),
            opt(self.creation_time, Value::Timestamp),
            string(&self.group_id),
            opt(self.group_sequence, Value::Uint),
            string(&self.reply_to_group_id),
        ])
    }

    fn from_fields(mut fields: impl Iterator<Item = Value<'a>>) -> Result<Self, DecodeError> {
        let mut next = || fields.next().unwrap_or(Value::Null);
        Ok(Properties {
            message_id: field_id(next(), "properties.message-id")?,
            user_id: field_binary(next(), "properties.user-id")?,
            to: field_str(next(), "properties.to")?,
            subject: field_str(next(), "properties.subject")?,
            reply_to: field_str(next(), "properties.reply-to")?,
            correlation_id: field_id(next(), "properties.correlation-id")?,
            content_type: field_str(next(), "properties.content-type")?,
            content_encoding: field_str(next(), "properties.content-encoding")?,
            absolute_expiry_time: field_timestamp(next(), "properties.absolute-expiry-time")?,
            creation_time: field_timestamp(next(), "properties.creation-time")?,
            group_id: field_str(next(), "properties.group-id")?,
            group_sequence: field_int(next(), "properties.group-sequence")?,
            reply_to_group_id: field_str(next(), "properties.reply-to-group-id")?,
        })
    }
}

fn field_bool(v: Value<'_>, what: &'static str) -> Result<Option<bool>, DecodeError> {
    match v {
        Value::Null => Ok(None),
        Value::Bool(b) => Ok(Some(b)),
        _ => Err(DecodeError::InvalidValue(what)),
    }
}

fn field_int<T: TryFrom<u64>>(v: Value<'_>, what: &'static str) -> Result<Option<T>, DecodeError> {
    if v.is_null() {
        return Ok(None);
    }
    v.as_u64()
        .and_then(|x| T::try_from(x).ok())
        .map(Some)
        .ok_or(DecodeError::InvalidValue(what))
}

fn field_timestamp(v: Value<'_>, what: &'static str) -> Result<Option<i64>, DecodeError> {
    if v.is_null() {
        return Ok(None);
    }
    v.as_i64().map(Some).ok_or(DecodeError::InvalidValue(what))
}

fn field_str<'a>(v: Value<'a>, what: &'static str) -> Result<Option<Cow<'a, str>>, DecodeError> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) | Value::Symbol(s) => Ok(Some(s)),
        _ => Err(DecodeError::InvalidValue(what)),
    }
}

fn field_binary<'a>(
    v: Value<'a>,
    what: &'static str,
) -> Result<Option<Cow<'a, [u8]>>, DecodeError> {
    match v {
        Value::Null => Ok(None),
        Value::Binary(b) => Ok(Some(b)),
        Value::String(Cow::Borrowed(s)) => Ok(Some(Cow::Borrowed(s.as_bytes()))),
        Value::String(Cow::Owned(s)) => Ok(Some(Cow::Owned(s.into_bytes()))),
        _ => Err(DecodeError::InvalidValue(what)),
    }
}

fn field_id<'a>(v: Value<'a>, what: &'static str) -> Result<Option<Value<'a>>, DecodeError> {
    match v {
        Value::Null => Ok(None),
        Value::List(_) | Value::Map(_) | Value::Array(_) | Value::Described(_) => {
            Err(DecodeError::InvalidValue(what))
        }
        other => Ok(Some(other)),
    }
}

// ---------------------------------------------------------------------------------------------
// Lazy views

/// A list validated by [`MessageView::parse`], decoded element by element on iteration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListView<'a> {
    elements: &'a [u8],
    count: usize,
}

/// A map validated by [`MessageView::parse`], decoded entry by entry on iteration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MapView<'a> {
    /// The keys and values, `count` of them in all.
    elements: &'a [u8],
    count: usize,
}

/// Splits an already validated list/map encoding (exactly the value's bytes) into its element
/// bytes and element count. `null` is an empty compound.
fn compound_parts(encoded: &[u8]) -> Result<(&[u8], usize), DecodeError> {
    let mut r = Reader::new(encoded);
    let count = match r.u8()? {
        code::NULL | code::LIST0 => return Ok((&[], 0)),
        code::LIST8 | code::MAP8 => {
            r.u8()?;
            usize::from(r.u8()?)
        }
        code::LIST32 | code::MAP32 => {
            r.u32()?;
            r.u32()? as usize
        }
        _ => return Err(DecodeError::InvalidValue("not an AMQP list or map")),
    };
    // The elements run to the end of the value (validation checked the size field, including
    // the legacy .NET form, see `value::read_payload`).
    Ok((r.rest(), count))
}

impl<'a> ListView<'a> {
    /// Validates `encoded` (one list value, constructor included; `null` counts as empty).
    pub fn parse(encoded: &'a [u8]) -> Result<ListView<'a>, DecodeError> {
        check_kind(
            encoded,
            &[code::NULL, code::LIST0, code::LIST8, code::LIST32],
        )?;
        let mut r = Reader::new(encoded);
        skip_at(&mut r, 0)?;
        r.finish()?;
        let (elements, count) = compound_parts(encoded)?;
        Ok(ListView { elements, count })
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The elements, in order. Decoding was validated up front, so the iterator yields plain
    /// values (only nested lists/maps/arrays allocate).
    pub fn iter(&self) -> ValueIter<'a> {
        ValueIter {
            reader: Reader::new(self.elements),
            remaining: self.count,
        }
    }

    /// The elements collected into a vector.
    pub fn to_vec(&self) -> Vec<Value<'a>> {
        self.iter().collect()
    }

    /// Each element's encoding (constructor included), in order, without decoding them.
    pub fn encoded(&self) -> EncodedIter<'a> {
        EncodedIter {
            reader: Reader::new(self.elements),
            remaining: self.count,
        }
    }
}

impl<'a> MapView<'a> {
    /// Validates `encoded` (one map value, constructor included; `null` counts as empty).
    pub fn parse(encoded: &'a [u8]) -> Result<MapView<'a>, DecodeError> {
        check_kind(encoded, &[code::NULL, code::MAP8, code::MAP32])?;
        let mut r = Reader::new(encoded);
        skip_at(&mut r, 0)?;
        r.finish()?;
        let (elements, count) = compound_parts(encoded)?;
        Ok(MapView { elements, count })
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.count / 2
    }

    /// Whether the map is empty.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The entries, in wire order.
    pub fn iter(&self) -> MapIter<'a> {
        MapIter {
            inner: ValueIter {
                reader: Reader::new(self.elements),
                remaining: self.count,
            },
        }
    }

    /// The value of the first entry whose key is the string or symbol `key`. Allocates nothing
    /// unless the value itself is a list, map or array.
    pub fn get(&self, key: &str) -> Option<Value<'a>> {
        let mut r = Reader::new(self.elements);
        for _ in 0..self.count / 2 {
            let k = decode_at(&mut r, 1).ok()?;
            if k.as_str() == Some(key) {
                return decode_at(&mut r, 1).ok();
            }
            skip_at(&mut r, 1).ok()?;
        }
        None
    }

    /// The entries collected into a vector.
    pub fn to_vec(&self) -> Vec<(Value<'a>, Value<'a>)> {
        self.iter().collect()
    }

    /// Each entry's key and value encodings (constructors included), in wire order, without
    /// decoding them.
    pub fn encoded(&self) -> impl Iterator<Item = (&'a [u8], &'a [u8])> + 'a {
        let mut items = EncodedIter {
            reader: Reader::new(self.elements),
            remaining: self.count,
        };
        std::iter::from_fn(move || Some((items.next()?, items.next()?)))
    }

    /// The encoding of the value of the first entry whose key is the string or symbol `key`.
    pub fn get_encoded(&self, key: &str) -> Option<&'a [u8]> {
        let mut r = Reader::new(self.elements);
        for _ in 0..self.count / 2 {
            let k = decode_at(&mut r, 1).ok()?;
            let v = skip_at(&mut r, 1).ok()?;
            if k.as_str() == Some(key) {
                return Some(v);
            }
        }
        None
    }
}

/// Iterator over the encodings of validated values ([`ListView::encoded`]).
#[derive(Debug, Clone)]
pub struct EncodedIter<'a> {
    reader: Reader<'a>,
    remaining: usize,
}

impl<'a> Iterator for EncodedIter<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        match skip_at(&mut self.reader, 1) {
            Ok(v) => Some(v),
            Err(_) => {
                self.remaining = 0;
                None
            }
        }
    }
}

/// Iterator over validated values ([`ListView::iter`]).
#[derive(Debug, Clone)]
pub struct ValueIter<'a> {
    reader: Reader<'a>,
    remaining: usize,
}

impl<'a> Iterator for ValueIter<'a> {
    type Item = Value<'a>;

    fn next(&mut self) -> Option<Value<'a>> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        match decode_at(&mut self.reader, 1) {
            Ok(v) => Some(v),
            Err(_) => {
                // Unreachable for validated input; end the iteration rather than panic.
                self.remaining = 0;
                None
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.remaining))
    }
}

/// Iterator over validated map entries ([`MapView::iter`]).
#[derive(Debug, Clone)]
pub struct MapIter<'a> {
    inner: ValueIter<'a>,
}

impl<'a> Iterator for MapIter<'a> {
    type Item = (Value<'a>, Value<'a>);

    fn next(&mut self) -> Option<Self::Item> {
        let k = self.inner.next()?;
        let v = self.inner.next()?;
        Some((k, v))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.inner.remaining / 2))
    }
}

fn check_kind(encoded: &[u8], allowed: &[u8]) -> Result<(), DecodeError> {
    match encoded.first() {
        Some(c) if allowed.contains(c) => Ok(()),
        Some(_) => Err(DecodeError::InvalidValue(
            "AMQP section value has the wrong type",
        )),
        None => Err(DecodeError::Truncated {
            needed: 1,
            available: 0,
        }),
    }
}

/// Consecutive body sections of one kind (data or amqp-sequence), as raw bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodySections<'a> {
    /// From the first body section's descriptor to the end of the last.
    raw: &'a [u8],
    count: usize,
}

impl<'a> BodySections<'a> {
    /// Number of sections.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether there are no sections.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The encoded value of each section (constructor included; the binary of a data section,
    /// the list of an amqp-sequence section), in order.
    pub fn encoded(&self) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.values()
    }

    /// The encoded value of each section.
    fn values(&self) -> impl Iterator<Item = &'a [u8]> + 'a {
        let mut r = Reader::new(self.raw);
        let mut remaining = self.count;
        std::iter::from_fn(move || {
            if remaining == 0 {
                return None;
            }
            remaining -= 1;
            read_section(&mut r).ok().map(|(_, v)| v)
        })
    }

    /// The bytes of each data section (empty for sequence sections).
    pub fn data(&self) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.values().filter_map(binary_payload)
    }

    /// The list of each amqp-sequence section (empty for data sections).
    pub fn sequences(&self) -> impl Iterator<Item = ListView<'a>> + 'a {
        self.values().filter_map(|v| {
            let (elements, count) = compound_parts(v).ok()?;
            matches!(v.first(), Some(&(code::LIST0 | code::LIST8 | code::LIST32)))
                .then_some(ListView { elements, count })
        })
    }
}

/// The payload of an encoded binary/string/symbol value.
fn binary_payload(encoded: &[u8]) -> Option<&[u8]> {
    let mut r = Reader::new(encoded);
    let len = match r.u8().ok()? {
        code::VBIN8 | code::STR8 | code::SYM8 => usize::from(r.u8().ok()?),
        code::VBIN32 | code::STR32 | code::SYM32 => r.u32().ok()? as usize,
        _ => return None,
    };
    r.take(len).ok()
}

/// The body of a [`MessageView`], not yet decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyView<'a> {
    /// No body section (not valid AMQP, but tolerated).
    None,
    /// One or more data sections.
    Data(BodySections<'a>),
    /// One or more amqp-sequence sections.
    Sequence(BodySections<'a>),
    /// An amqp-value section: the encoded value (constructor included), see
    /// [`Value::decode_exact`].
    Value(&'a [u8]),
}

/// A validated, lazily decoded AMQP 1.0 message borrowing its input.
///
/// [`MessageView::parse`] walks every section once, checking all encodings, lengths, counts and
/// the nesting limit, and allocates nothing; the accessors then decode on demand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageView<'a> {
    raw: &'a [u8],
    /// Encoded value of each non-body section, by [`SectionKind`] index.
    sections: [Option<&'a [u8]>; 9],
    data: Option<BodySections<'a>>,
    sequence: Option<BodySections<'a>>,
    value: Option<&'a [u8]>,
}

/// Reads one section: `0x00`, a ulong or symbol descriptor, a value. Returns the kind and the
/// encoded value, validated.
fn read_section<'a>(r: &mut Reader<'a>) -> Result<(SectionKind, &'a [u8]), DecodeError> {
    if r.u8()? != code::DESCRIBED {
        return Err(DecodeError::InvalidValue(
            "not an AMQP message: section without descriptor",
        ));
    }
    let unknown = DecodeError::InvalidValue("not an AMQP message: unknown section descriptor");
    let kind = match r.rest().first() {
        Some(&(code::ULONG | code::SMALLULONG | code::ULONG0)) => match decode_at(r, 1)? {
            Value::Ulong(c) => SectionKind::from_code(c).ok_or(unknown)?,
            _ => return Err(unknown),
        },
        Some(&(code::SYM8 | code::SYM32)) => match decode_at(r, 1)? {
            Value::Symbol(s) => SectionKind::from_symbol(&s).ok_or(unknown)?,
            _ => return Err(unknown),
        },
        Some(_) => return Err(unknown),
        None => {
            return Err(DecodeError::Truncated {
                needed: 1,
                available: 0,
            });
        }
    };
    let value = skip_at(r, 1)?;
    let allowed: &[u8] = match kind {
        SectionKind::Header | SectionKind::Properties => {
            &[code::NULL, code::LIST0, code::LIST8, code::LIST32]
        }
        SectionKind::AmqpSequence => &[code::LIST0, code::LIST8, code::LIST32],
        SectionKind::DeliveryAnnotations
        | SectionKind::MessageAnnotations
        | SectionKind::ApplicationProperties
        | SectionKind::Footer => &[code::NULL, code::MAP8, code::MAP32],
        SectionKind::Data => &[code::VBIN8, code::VBIN32],
        SectionKind::AmqpValue => return Ok((kind, value)),
    };
    check_kind(value, allowed)?;
    Ok((kind, value))
}

/// Adds the section `input[at..end]` to a run of body sections that must be contiguous.
fn extend_run<'a>(
    run: Option<BodySections<'a>>,
    input: &'a [u8],
    at: usize,
    end: usize,
    contiguous: bool,
) -> Result<BodySections<'a>, DecodeError> {
    let split = DecodeError::InvalidValue("AMQP message with split body sections");
    match run {
        None => Ok(BodySections {
            raw: input.get(at..end).ok_or(split)?,
            count: 1,
        }),
        Some(r) if contiguous => {
            // The run ends right before `at`: extend it to `end`.
            let run_start = at
                .checked_sub(r.raw.len())
                .ok_or(DecodeError::InvalidValue("AMQP body outside its input"))?;
            Ok(BodySections {
                raw: input.get(run_start..end).ok_or(split)?,
                count: r.count + 1,
            })
        }
        Some(_) => Err(split),
    }
}

impl<'a> MessageView<'a> {
    /// Validates `input` as one AMQP 1.0 message and indexes its sections. Allocates nothing.
    ///
    /// Errors on anything that is not a well-formed message: empty input, bytes that do not
    /// start with a known section, truncation, trailing bytes, duplicated sections (other than
    /// data and amqp-sequence, whose repeats must be adjacent), wrongly typed sections, map keys
    /// that are null (annotations) or not strings (application properties).
    ///
    /// Messages that carry more than one kind of body (the spec allows one kind only; Go's
    /// encoder writes data and amqp-value when both are set) are accepted here: see
    /// [`MessageView::body`] and [`MessageView::amqp_value`].
    pub fn parse(input: &'a [u8]) -> Result<MessageView<'a>, DecodeError> {
        if input.is_empty() {
            return Err(DecodeError::InvalidValue("not an AMQP message: empty"));
        }
        let mut r = Reader::new(input);
        let mut view = MessageView {
            raw: input,
            sections: [None; 9],
            data: None,
            sequence: None,
            value: None,
        };
        let mut last = None;
        while r.remaining() > 0 {
            let at = r.position();
            let (kind, value) = read_section(&mut r)?;
            let end = r.position();
            let contiguous = last == Some(kind);
            match kind {
                SectionKind::Data => {
                    view.data = Some(extend_run(view.data, input, at, end, contiguous)?);
                }
                SectionKind::AmqpSequence => {
                    view.sequence = Some(extend_run(view.sequence, input, at, end, contiguous)?);
                }
                SectionKind::AmqpValue if view.value.is_none() => view.value = Some(value),
                SectionKind::AmqpValue => {
                    return Err(DecodeError::InvalidValue(
                        "AMQP message with a duplicated section",
                    ));
                }
                _ if view.sections[kind.index()].is_none() => {
                    view.sections[kind.index()] = Some(value);
                }
                _ => {
                    return Err(DecodeError::InvalidValue(
                        "AMQP message with a duplicated section",
                    ));
                }
            }
            last = Some(kind);
        }
        view.check_keys()?;
        Ok(view)
    }

    /// Key rules: annotations keys not null, application-properties keys strings.
    fn check_keys(&self) -> Result<(), DecodeError> {
        for kind in [
            SectionKind::DeliveryAnnotations,
            SectionKind::MessageAnnotations,
            SectionKind::Footer,
        ] {
            if let Some(m) = self.map(kind)
                && m.iter().any(|(k, _)| k.is_null())
            {
                return Err(DecodeError::InvalidValue("AMQP annotation key is null"));
            }
        }
        if let Some(m) = self.map(SectionKind::ApplicationProperties)
            && m.iter().any(|(k, _)| k.as_str().is_none())
        {
            return Err(DecodeError::InvalidValue(
                "AMQP application property key is not a string",
            ));
        }
        Ok(())
    }

    /// A map section (annotations, application properties, footer), already validated: no
    /// pass over it (`null` reads as empty).
    pub fn map(&self, kind: SectionKind) -> Option<MapView<'a>> {
        let encoded = self.sections[kind.index()]?;
        let (elements, count) = compound_parts(encoded).ok()?;
        Some(MapView { elements, count })
    }

    /// A list section (header, properties), already validated: no pass over it (`null` reads
    /// as empty).
    pub fn list(&self, kind: SectionKind) -> Option<ListView<'a>> {
        let encoded = self.sections[kind.index()]?;
        let (elements, count) = compound_parts(encoded).ok()?;
        Some(ListView { elements, count })
    }

    /// The whole encoded message.
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    /// The encoded value (constructor included) of a non-body section, if present.
    pub fn section(&self, kind: SectionKind) -> Option<&'a [u8]> {
        self.sections[kind.index()]
    }

    /// The header section, decoded (no allocation).
    pub fn header(&self) -> Result<Option<Header>, DecodeError> {
        self.list(SectionKind::Header)
            .map(|l| Header::from_fields(l.iter()))
            .transpose()
    }

    /// The properties section, decoded (borrows; no allocation).
    pub fn properties(&self) -> Result<Option<Properties<'a>>, DecodeError> {
        self.list(SectionKind::Properties)
            .map(|l| Properties::from_fields(l.iter()))
            .transpose()
    }

    /// The delivery annotations.
    pub fn delivery_annotations(&self) -> Option<MapView<'a>> {
        self.map(SectionKind::DeliveryAnnotations)
    }

    /// The message annotations.
    pub fn message_annotations(&self) -> Option<MapView<'a>> {
        self.map(SectionKind::MessageAnnotations)
    }

    /// The application properties (keys are strings).
    pub fn application_properties(&self) -> Option<MapView<'a>> {
        self.map(SectionKind::ApplicationProperties)
    }

    /// The footer.
    pub fn footer(&self) -> Option<MapView<'a>> {
        self.map(SectionKind::Footer)
    }

    /// The body, located but not decoded: the data sections if any, else the amqp-sequence
    /// sections, else the amqp-value (a message normally has only one of them).
    pub fn body(&self) -> BodyView<'a> {
        if let Some(d) = self.data {
            BodyView::Data(d)
        } else if let Some(s) = self.sequence {
            BodyView::Sequence(s)
        } else if let Some(v) = self.value {
            BodyView::Value(v)
        } else {
            BodyView::None
        }
    }

    /// The amqp-value section's encoded value, even when data sections are present too.
    pub fn amqp_value(&self) -> Option<&'a [u8]> {
        self.value
    }

    /// How many kinds of body (data, amqp-sequence, amqp-value) the message carries: 1 for a
    /// spec-conforming message, 0 for none.
    pub fn body_kinds(&self) -> usize {
        usize::from(self.data.is_some())
            + usize::from(self.sequence.is_some())
            + usize::from(self.value.is_some())
    }

    /// The content of `input` when it is exactly one data section with a small-ulong descriptor
    /// (`0x00 0x53 0x75`, then a vbin8 or vbin32 spanning the rest); `None` for anything else,
    /// including a data section that is well formed but encoded otherwise.
    pub fn lone_data_section(input: &'a [u8]) -> Option<&'a [u8]> {
        const DATA: u8 = descriptor::DATA as u8;
        match input {
            [
                code::DESCRIBED,
                code::SMALLULONG,
                DATA,
                code::VBIN8,
                n,
                rest @ ..,
            ] if rest.len() == usize::from(*n) => Some(rest),
            [
                code::DESCRIBED,
                code::SMALLULONG,
                DATA,
                code::VBIN32,
                a,
                b,
                c,
                d,
                rest @ ..,
            ] if u32::try_from(rest.len()) == Ok(u32::from_be_bytes([*a, *b, *c, *d])) => {
                Some(rest)
            }
            _ => None,
        }
    }

    /// The body of `input` as [`MessageView::parse`] then [`MessageView::body_bytes`] give it,
    /// with a fast path for the shape plain sends produce (one data section, nothing else),
    /// which is recognised from its first bytes without parsing. `None` when `input` is not a
    /// well-formed AMQP message or its body is not bytes.
    pub fn body_of(input: &'a [u8]) -> Option<&'a [u8]> {
        Self::lone_data_section(input).or_else(|| MessageView::parse(input).ok()?.body_bytes())
    }

    /// The body as bytes, without allocating: the content of a single data section (the
    /// common case), or of an amqp-value holding a binary, string or symbol. `None` for
    /// several data sections, sequences, other values, or no body.
    pub fn body_bytes(&self) -> Option<&'a [u8]> {
        match self.body() {
            BodyView::Data(s) if s.count == 1 => s.data().next(),
            BodyView::Value(v) => binary_payload(v),
            _ => None,
        }
    }

    /// Decodes everything into a [`Message`] (lists and maps are collected).
    ///
    /// Fails for a message with more than one kind of body, which [`Message`] cannot hold.
    pub fn to_message(&self) -> Result<Message<'a>, DecodeError> {
        if self.body_kinds() > 1 {
            return Err(DecodeError::InvalidValue(
                "AMQP message with several kinds of body",
            ));
        }
        let annotations = |kind| self.map(kind).map(|m| m.to_vec());
        let application_properties = self.application_properties().map(|m| {
            m.iter()
                .filter_map(|(k, v)| match k {
                    Value::String(s) | Value::Symbol(s) => Some((s, v)),
                    _ => None,
                })
                .collect()
        });
        let body = match self.body() {
            BodyView::None => Body::Data(Vec::new()),
            BodyView::Data(s) => Body::Data(s.data().map(Cow::Borrowed).collect()),
            BodyView::Sequence(s) => Body::Sequence(s.sequences().map(|l| l.to_vec()).collect()),
            BodyView::Value(v) => Body::Value(Value::decode_exact(v)?),
        };
        Ok(Message {
            header: self.header()?,
            delivery_annotations: annotations(SectionKind::DeliveryAnnotations),
            message_annotations: annotations(SectionKind::MessageAnnotations),
            properties: self.properties()?,
            application_properties,
            body,
            footer: annotations(SectionKind::Footer),
        })
    }
}

/// Where the sections of a message validated by [`MessageView::parse`] are in its bytes, as
/// offsets: kept beside those bytes (e.g. once per received message), it gives the view back
/// without parsing again ([`MessageLayout::view`]). 104 bytes, no lifetime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MessageLayout {
    /// Start and end of each non-body section's encoded value, by [`SectionKind`] index;
    /// `(0, 0)` when absent (a value is never empty).
    sections: [(u32, u32); 9],
    /// Start, end and count of the data sections (count 0: none).
    data: (u32, u32, u32),
    /// Start, end and count of the amqp-sequence sections (count 0: none).
    sequence: (u32, u32, u32),
    /// Start and end of the amqp-value's encoded value (`(0, 0)`: none).
    value: (u32, u32),
}

impl MessageLayout {
    /// The layout of `view`, whose bytes are `view.raw()`; `None` when they exceed
    /// `u32::MAX` bytes (a stream record never does: its length is a `u32`).
    pub fn of(view: &MessageView<'_>) -> Option<MessageLayout> {
        u32::try_from(view.raw.len()).ok()?;
        let base = view.raw.as_ptr() as usize;
        // Every slice of the view lies within `raw`, so the offsets fit a u32.
        let span = |s: &[u8]| {
            let start = s.as_ptr() as usize - base;
            (start as u32, (start + s.len()) as u32)
        };
        let mut sections = [(0, 0); 9];
        for (out, s) in sections.iter_mut().zip(view.sections) {
            if let Some(s) = s {
                *out = span(s);
            }
        }
        let run = |r: Option<BodySections<'_>>| match r {
            Some(r) => {
                let (a, b) = span(r.raw);
                (a, b, r.count as u32)
            }
            None => (0, 0, 0),
        };
        Some(MessageLayout {
            sections,
            data: run(view.data),
            sequence: run(view.sequence),
            value: view.value.map_or((0, 0), span),
        })
    }

    /// The view of `raw`, which must be the bytes this layout was made from (other bytes give
    /// a view of garbage, never out of bounds). Constant time: nothing is parsed or checked.
    pub fn view<'a>(&self, raw: &'a [u8]) -> MessageView<'a> {
        let at = |(a, b): (u32, u32)| raw.get(a as usize..b as usize).unwrap_or_default();
        let some = |span: (u32, u32)| (span.1 > 0).then(|| at(span));
        let run = |(a, b, count): (u32, u32, u32)| {
            (count > 0).then(|| BodySections {
                raw: at((a, b)),
                count: count as usize,
            })
        };
        MessageView {
            raw,
            sections: self.sections.map(some),
            data: run(self.data),
            sequence: run(self.sequence),
            value: some(self.value),
        }
    }
}

#[cfg(test)]
mod tests;
