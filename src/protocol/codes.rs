//! Protocol constants: command keys, versions, response codes and offset specifications.
//!
//! Keys: top bit clear = request/command, set ([`RESPONSE_BIT`]) = response; the low 15 bits
//! are the command id ([`key`]). Response codes travel as `uint16` ([`ResponseCode`]). An offset
//! specification travels as `offsetType uint16` followed by an 8-byte value only for types 4
//! (offset, `uint64`) and 5 (timestamp, `int64`) ([`OffsetSpec`]).

use std::fmt;

use bytes::{BufMut, BytesMut};

use super::error::DecodeError;
use super::wire::Reader;

/// Set in the key of a response frame (`0x8000 | command key`).
pub const RESPONSE_BIT: u16 = 0x8000;

/// Version 1 of a command (every command has it).
pub const VERSION_1: u16 = 1;
/// Version 2: Publish (filter values, 3.13+) and Deliver (committed chunk id, 3.11+).
pub const VERSION_2: u16 = 2;

/// Command keys (request direction, response bit clear), `0x0001..=0x001f`.
pub mod key {
    /// Binds a publisher id to a stream. C→S, corrId.
    pub const DECLARE_PUBLISHER: u16 = 0x0001;
    /// Publishes messages (v1, v2). C→S, no corrId.
    pub const PUBLISH: u16 = 0x0002;
    /// Confirms published ids. S→C.
    pub const PUBLISH_CONFIRM: u16 = 0x0003;
    /// Reports failed publishing ids. S→C.
    pub const PUBLISH_ERROR: u16 = 0x0004;
    /// Last publishing id stored for a publisher reference. C→S.
    pub const QUERY_PUBLISHER_SEQUENCE: u16 = 0x0005;
    /// Releases a publisher id. C→S.
    pub const DELETE_PUBLISHER: u16 = 0x0006;
    /// Creates a subscription. C→S.
    pub const SUBSCRIBE: u16 = 0x0007;
    /// Delivers one Osiris chunk (v1, v2). S→C.
    pub const DELIVER: u16 = 0x0008;
    /// Grants chunk credits. C→S; the response (0x8009) is sent only on error, without corrId.
    pub const CREDIT: u16 = 0x0009;
    /// Stores a consumer offset server-side. C→S, no response.
    pub const STORE_OFFSET: u16 = 0x000a;
    /// Reads a stored consumer offset. C→S.
    pub const QUERY_OFFSET: u16 = 0x000b;
    /// Ends a subscription. C→S.
    pub const UNSUBSCRIBE: u16 = 0x000c;
    /// Creates a stream. C→S.
    pub const CREATE: u16 = 0x000d;
    /// Deletes a stream. C→S.
    pub const DELETE: u16 = 0x000e;
    /// Broker and stream topology. C→S.
    pub const METADATA: u16 = 0x000f;
    /// A stream changed (deleted, leader moved). S→C.
    pub const METADATA_UPDATE: u16 = 0x0010;
    /// Exchanges client/server properties. C→S.
    pub const PEER_PROPERTIES: u16 = 0x0011;
    /// Lists SASL mechanisms. C→S.
    pub const SASL_HANDSHAKE: u16 = 0x0012;
    /// SASL authentication step. C→S.
    pub const SASL_AUTHENTICATE: u16 = 0x0013;
    /// Frame-max/heartbeat negotiation. S→C then C→S (0x8014), no corrId.
    pub const TUNE: u16 = 0x0014;
    /// Opens a virtual host. C→S.
    pub const OPEN: u16 = 0x0015;
    /// Closes the connection. C↔S.
    pub const CLOSE: u16 = 0x0016;
    /// Keep-alive. C↔S, no corrId.
    pub const HEARTBEAT: u16 = 0x0017;
    /// Streams bound to a routing key of a super stream. C→S.
    pub const ROUTE: u16 = 0x0018;
    /// Partitions of a super stream. C→S.
    pub const PARTITIONS: u16 = 0x0019;
    /// Single-active-consumer state change. S→C request, C→S response.
    pub const CONSUMER_UPDATE: u16 = 0x001a;
    /// Command version negotiation (3.11+). C→S.
    pub const EXCHANGE_COMMAND_VERSIONS: u16 = 0x001b;
    /// Stream statistics (3.11+). C→S.
    pub const STREAM_STATS: u16 = 0x001c;
    /// Creates a super stream (3.13+). C→S.
    pub const CREATE_SUPER_STREAM: u16 = 0x001d;
    /// Deletes a super stream (3.13+). C→S.
    pub const DELETE_SUPER_STREAM: u16 = 0x001e;
    /// Resolves an offset specification to an offset (4.3+). C→S.
    pub const RESOLVE_OFFSET_SPEC: u16 = 0x001f;

    /// Every command key, in numeric order.
    pub const ALL: [u16; 31] = [
        DECLARE_PUBLISHER,
        PUBLISH,
        PUBLISH_CONFIRM,
        PUBLISH_ERROR,
        QUERY_PUBLISHER_SEQUENCE,
        DELETE_PUBLISHER,
        SUBSCRIBE,
        DELIVER,
        CREDIT,
        STORE_OFFSET,
        QUERY_OFFSET,
        UNSUBSCRIBE,
        CREATE,
        DELETE,
        METADATA,
        METADATA_UPDATE,
        PEER_PROPERTIES,
        SASL_HANDSHAKE,
        SASL_AUTHENTICATE,
        TUNE,
        OPEN,
        CLOSE,
        HEARTBEAT,
        ROUTE,
        PARTITIONS,
        CONSUMER_UPDATE,
        EXCHANGE_COMMAND_VERSIONS,
        STREAM_STATS,
        CREATE_SUPER_STREAM,
        DELETE_SUPER_STREAM,
        RESOLVE_OFFSET_SPEC,
    ];
}

/// The broker's name of a command key (the response bit is ignored), e.g. `"subscribe"`.
pub fn key_name(key: u16) -> Option<&'static str> {
    Some(match key & !RESPONSE_BIT {
        key::DECLARE_PUBLISHER => "declare_publisher",
        key::PUBLISH => "publish",
        key::PUBLISH_CONFIRM => "publish_confirm",
        key::PUBLISH_ERROR => "publish_error",
        key::QUERY_PUBLISHER_SEQUENCE => "query_publisher_sequence",
        key::DELETE_PUBLISHER => "delete_publisher",
        key::SUBSCRIBE => "subscribe",
        key::DELIVER => "deliver",
        key::CREDIT => "credit",
        key::STORE_OFFSET => "store_offset",
        key::QUERY_OFFSET => "query_offset",
        key::UNSUBSCRIBE => "unsubscribe",
        key::CREATE => "create_stream",
        key::DELETE => "delete_stream",
        key::METADATA => "metadata",
        key::METADATA_UPDATE => "metadata_update",
        key::PEER_PROPERTIES => "peer_properties",
        key::SASL_HANDSHAKE => "sasl_handshake",
        key::SASL_AUTHENTICATE => "sasl_authenticate",
        key::TUNE => "tune",
        key::OPEN => "open",
        key::CLOSE => "close",
        key::HEARTBEAT => "heartbeat",
        key::ROUTE => "route",
        key::PARTITIONS => "partitions",
        key::CONSUMER_UPDATE => "consumer_update",
        key::EXCHANGE_COMMAND_VERSIONS => "exchange_command_versions",
        key::STREAM_STATS => "stream_stats",
        key::CREATE_SUPER_STREAM => "create_super_stream",
        key::DELETE_SUPER_STREAM => "delete_super_stream",
        key::RESOLVE_OFFSET_SPEC => "resolve_offset_spec",
        _ => return None,
    })
}

/// A protocol response code (`uint16`). Unknown values are kept as they are, so a code from a
/// newer broker decodes without error; the associated constants name the known ones (0x01–0x15).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(transparent)]
pub struct ResponseCode(u16);

impl ResponseCode {
    /// 0x01 success.
    pub const OK: Self = Self(0x01);
    /// 0x02 the stream does not exist.
    pub const STREAM_DOES_NOT_EXIST: Self = Self(0x02);
    /// 0x03 the subscription id is already in use on this connection.
    pub const SUBSCRIPTION_ID_ALREADY_EXISTS: Self = Self(0x03);
    /// 0x04 no subscription with this id on this connection.
    pub const SUBSCRIPTION_ID_DOES_NOT_EXIST: Self = Self(0x04);
    /// 0x05 the stream already exists (whatever its arguments).
    pub const STREAM_ALREADY_EXISTS: Self = Self(0x05);
    /// 0x06 the stream is not available (member down, restarting); also in MetadataUpdate.
    pub const STREAM_NOT_AVAILABLE: Self = Self(0x06);
    /// 0x07 SASL mechanism not supported.
    pub const SASL_MECHANISM_NOT_SUPPORTED: Self = Self(0x07);
    /// 0x08 authentication failure.
    pub const AUTHENTICATION_FAILURE: Self = Self(0x08);
    /// 0x09 SASL error.
    pub const SASL_ERROR: Self = Self(0x09);
    /// 0x0a SASL challenge (the response carries the challenge).
    pub const SASL_CHALLENGE: Self = Self(0x0a);
    /// 0x0b this user may only connect from localhost.
    pub const SASL_AUTHENTICATION_FAILURE_LOOPBACK: Self = Self(0x0b);
    /// 0x0c virtual host access failure (also vhost/connection limits).
    pub const VIRTUAL_HOST_ACCESS_FAILURE: Self = Self(0x0c);
    /// 0x0d unknown frame.
    pub const UNKNOWN_FRAME: Self = Self(0x0d);
    /// 0x0e frame too large.
    pub const FRAME_TOO_LARGE: Self = Self(0x0e);
    /// 0x0f internal error.
    pub const INTERNAL_ERROR: Self = Self(0x0f);
    /// 0x10 access refused (permissions).
    pub const ACCESS_REFUSED: Self = Self(0x10);
    /// 0x11 precondition failed.
    pub const PRECONDITION_FAILED: Self = Self(0x11);
    /// 0x12 no publisher with this id on this connection.
    pub const PUBLISHER_DOES_NOT_EXIST: Self = Self(0x12);
    /// 0x13 no offset stored for this reference (3.10+).
    pub const NO_OFFSET: Self = Self(0x13);
    /// 0x14 re-authentication tried another mechanism (3.13+).
    pub const SASL_CANNOT_CHANGE_MECHANISM: Self = Self(0x14);
    /// 0x15 re-authentication tried another username (3.13+).
    pub const SASL_CANNOT_CHANGE_USERNAME: Self = Self(0x15);

    /// Wraps a wire value (any value is accepted).
    pub const fn from_u16(code: u16) -> Self {
        Self(code)
    }

    /// The wire value.
    pub const fn as_u16(self) -> u16 {
        self.0
    }

    /// True for [`ResponseCode::OK`].
    pub const fn is_ok(self) -> bool {
        self.0 == Self::OK.0
    }

    /// True for the codes listed in the protocol (0x01–0x15).
    pub const fn is_known(self) -> bool {
        matches!(self.0, 0x01..=0x15)
    }

    /// The broker's constant name without prefix, e.g. `"STREAM_DOES_NOT_EXIST"`;
    /// `"UNKNOWN"` for an unlisted code.
    pub const fn name(self) -> &'static str {
        match self.0 {
            0x01 => "OK",
            0x02 => "STREAM_DOES_NOT_EXIST",
            0x03 => "SUBSCRIPTION_ID_ALREADY_EXISTS",
            0x04 => "SUBSCRIPTION_ID_DOES_NOT_EXIST",
            0x05 => "STREAM_ALREADY_EXISTS",
            0x06 => "STREAM_NOT_AVAILABLE",
            0x07 => "SASL_MECHANISM_NOT_SUPPORTED",
            0x08 => "AUTHENTICATION_FAILURE",
            0x09 => "SASL_ERROR",
            0x0a => "SASL_CHALLENGE",
            0x0b => "SASL_AUTHENTICATION_FAILURE_LOOPBACK",
            0x0c => "VIRTUAL_HOST_ACCESS_FAILURE",
            0x0d => "UNKNOWN_FRAME",
            0x0e => "FRAME_TOO_LARGE",
            0x0f => "INTERNAL_ERROR",
            0x10 => "ACCESS_REFUSED",
            0x11 => "PRECONDITION_FAILED",
            0x12 => "PUBLISHER_DOES_NOT_EXIST",
            0x13 => "NO_OFFSET",
            0x14 => "SASL_CANNOT_CHANGE_MECHANISM",
            0x15 => "SASL_CANNOT_CHANGE_USERNAME",
            _ => "UNKNOWN",
        }
    }

    /// A short human description, e.g. `"stream does not exist"`.
    pub const fn description(self) -> &'static str {
        match self.0 {
            0x01 => "ok",
            0x02 => "stream does not exist",
            0x03 => "subscription id already exists",
            0x04 => "subscription id does not exist",
            0x05 => "stream already exists",
            0x06 => "stream not available",
            0x07 => "SASL mechanism not supported",
            0x08 => "authentication failure",
            0x09 => "SASL error",
            0x0a => "SASL challenge",
            0x0b => "SASL authentication failure: user may only connect from localhost",
            0x0c => "virtual host access failure",
            0x0d => "unknown frame",
            0x0e => "frame too large",
            0x0f => "internal error",
            0x10 => "access refused",
            0x11 => "precondition failed",
            0x12 => "publisher does not exist",
            0x13 => "no offset",
            0x14 => "SASL cannot change mechanism",
            0x15 => "SASL cannot change username",
            _ => "unknown response code",
        }
    }
}

impl From<u16> for ResponseCode {
    fn from(code: u16) -> Self {
        Self(code)
    }
}

impl From<ResponseCode> for u16 {
    fn from(code: ResponseCode) -> Self {
        code.0
    }
}

impl fmt::Debug for ResponseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ResponseCode(0x{:02x} {})", self.0, self.name())
    }
}

impl fmt::Display for ResponseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (0x{:02x})", self.description(), self.0)
    }
}

/// Offset type 0: none — ConsumerUpdate response only ("keep the Subscribe offset").
pub const OFFSET_TYPE_NONE: u16 = 0;
/// Offset type 1: first available offset.
pub const OFFSET_TYPE_FIRST: u16 = 1;
/// Offset type 2: start of the last chunk.
pub const OFFSET_TYPE_LAST: u16 = 2;
/// Offset type 3: next offset to be written.
pub const OFFSET_TYPE_NEXT: u16 = 3;
/// Offset type 4: absolute offset, followed by `uint64`.
pub const OFFSET_TYPE_OFFSET: u16 = 4;
/// Offset type 5: timestamp (ms since epoch), followed by `int64`.
pub const OFFSET_TYPE_TIMESTAMP: u16 = 5;

/// Where a subscription starts. Wire: `offsetType uint16`, then `uint64` for
/// [`OffsetSpec::Offset`] or `int64` for [`OffsetSpec::Timestamp`], nothing for the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OffsetSpec {
    /// Type 1: first available offset.
    First,
    /// Type 2: first offset of the last chunk.
    Last,
    /// Type 3: next offset written after subscribing.
    Next,
    /// Type 4: this absolute offset.
    Offset(u64),
    /// Type 5: first chunk written at or after this time (ms since epoch).
    Timestamp(i64),
}

impl OffsetSpec {
    /// The wire offset type (1–5).
    pub const fn offset_type(&self) -> u16 {
        match self {
            OffsetSpec::First => OFFSET_TYPE_FIRST,
            OffsetSpec::Last => OFFSET_TYPE_LAST,
            OffsetSpec::Next => OFFSET_TYPE_NEXT,
            OffsetSpec::Offset(_) => OFFSET_TYPE_OFFSET,
            OffsetSpec::Timestamp(_) => OFFSET_TYPE_TIMESTAMP,
        }
    }

    /// Encoded size: 2, or 10 for types 4/5.
    pub const fn encoded_len(&self) -> usize {
        match self {
            OffsetSpec::Offset(_) | OffsetSpec::Timestamp(_) => 10,
            _ => 2,
        }
    }

    /// Appends `offsetType uint16` and, for types 4/5, the 8-byte value.
    pub fn encode(&self, buf: &mut BytesMut) {
        buf.put_u16(self.offset_type());
        match *self {
            OffsetSpec::Offset(o) => buf.put_u64(o),
            OffsetSpec::Timestamp(t) => buf.put_i64(t),
            _ => {}
        }
    }

    /// Appends an optional spec where type 0 means none (ConsumerUpdate response).
    pub fn encode_optional(spec: Option<&OffsetSpec>, buf: &mut BytesMut) {
        match spec {
            Some(s) => s.encode(buf),
            None => buf.put_u16(OFFSET_TYPE_NONE),
        }
    }

    /// Reads a spec of type 1–5; type 0 and unknown types are [`DecodeError::InvalidValue`].
    pub fn decode(r: &mut Reader<'_>) -> Result<OffsetSpec, DecodeError> {
        Self::decode_optional(r)?.ok_or(DecodeError::InvalidValue("offset type 0 (none)"))
    }

    /// Reads a spec where type 0 (none) is allowed and yields `None`.
    pub fn decode_optional(r: &mut Reader<'_>) -> Result<Option<OffsetSpec>, DecodeError> {
        Ok(Some(match r.u16()? {
            OFFSET_TYPE_NONE => return Ok(None),
            OFFSET_TYPE_FIRST => OffsetSpec::First,
            OFFSET_TYPE_LAST => OffsetSpec::Last,
            OFFSET_TYPE_NEXT => OffsetSpec::Next,
            OFFSET_TYPE_OFFSET => OffsetSpec::Offset(r.u64()?),
            OFFSET_TYPE_TIMESTAMP => OffsetSpec::Timestamp(r.i64()?),
            _ => return Err(DecodeError::InvalidValue("unknown offset type")),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_dense_and_named() {
        for (i, k) in key::ALL.iter().enumerate() {
            assert_eq!(usize::from(*k), i + 1);
            assert!(key_name(*k).is_some());
            assert_eq!(key_name(*k | RESPONSE_BIT), key_name(*k));
        }
        assert_eq!(key_name(0), None);
        assert_eq!(key_name(0x0020), None);
        assert_eq!(key_name(key::SUBSCRIBE), Some("subscribe"));
    }

    #[test]
    fn response_codes_known_and_unknown() {
        assert!(ResponseCode::OK.is_ok());
        assert!(!ResponseCode::NO_OFFSET.is_ok());
        for c in 1..=0x15u16 {
            let rc = ResponseCode::from_u16(c);
            assert!(rc.is_known());
            assert_ne!(rc.name(), "UNKNOWN");
            assert_eq!(rc.as_u16(), c);
        }
        let unknown = ResponseCode::from(0x99);
        assert!(!unknown.is_known());
        assert_eq!(unknown.name(), "UNKNOWN");
        assert_eq!(u16::from(unknown), 0x99);
        assert_eq!(ResponseCode::SASL_CANNOT_CHANGE_USERNAME.as_u16(), 0x15);
        assert_eq!(
            ResponseCode::STREAM_DOES_NOT_EXIST.to_string(),
            "stream does not exist (0x02)"
        );
        assert_eq!(
            format!("{:?}", ResponseCode::NO_OFFSET),
            "ResponseCode(0x13 NO_OFFSET)"
        );
        // Constants are usable as patterns.
        match ResponseCode::from_u16(5) {
            ResponseCode::STREAM_ALREADY_EXISTS => {}
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn offset_spec_value_only_for_types_4_and_5() {
        let cases: [(OffsetSpec, &[u8]); 5] = [
            (OffsetSpec::First, &[0, 1]),
            (OffsetSpec::Last, &[0, 2]),
            (OffsetSpec::Next, &[0, 3]),
            (OffsetSpec::Offset(0x0102), &[0, 4, 0, 0, 0, 0, 0, 0, 1, 2]),
            (
                OffsetSpec::Timestamp(-2),
                &[0, 5, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe],
            ),
        ];
        for (spec, wire) in cases {
            let mut b = BytesMut::new();
            spec.encode(&mut b);
            assert_eq!(&b[..], wire, "{spec:?}");
            assert_eq!(spec.encoded_len(), wire.len());
            let mut r = Reader::new(wire);
            assert_eq!(OffsetSpec::decode(&mut r), Ok(spec));
            r.finish().unwrap();
        }
    }

    #[test]
    fn offset_spec_none_and_bad_types() {
        let mut b = BytesMut::new();
        OffsetSpec::encode_optional(None, &mut b);
        assert_eq!(&b[..], &[0, 0]);
        assert_eq!(OffsetSpec::decode_optional(&mut Reader::new(&b)), Ok(None));
        assert!(matches!(
            OffsetSpec::decode(&mut Reader::new(&b)),
            Err(DecodeError::InvalidValue(_))
        ));
        assert!(matches!(
            OffsetSpec::decode(&mut Reader::new(&[0, 6])),
            Err(DecodeError::InvalidValue(_))
        ));
        assert!(matches!(
            OffsetSpec::decode(&mut Reader::new(&[0, 4, 0, 0])),
            Err(DecodeError::Truncated { .. })
        ));
    }
}
