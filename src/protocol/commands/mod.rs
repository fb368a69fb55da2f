//! The frame codec: every command of the stream protocol, in both directions.
//!
//! A frame on the wire is `size uint32` (excluding itself) followed by the body
//! `key uint16, version uint16, ...`. [`Frame::encode`] writes a whole frame including the size
//! prefix; [`Frame::decode`] reads one body (without the prefix); [`frame_len`] and
//! [`split_frame`] cut a byte stream into bodies. Requests and responses carry a
//! `correlationId uint32` right after the version, except the commands that have none
//! (Publish, PublishConfirm, PublishError, Deliver, Credit and its error response, StoreOffset,
//! MetadataUpdate, Tune, Heartbeat). Response keys are `0x8000 | key`.
//!
//! Decoding never panics and rejects trailing bytes, except for the optional tails the broker
//! legitimately omits (Subscribe/ResolveOffsetSpec properties, Open response properties,
//! PeerProperties maps). Message bodies and the Deliver chunk are zero-copy slices of the
//! decoded [`Bytes`].

#[macro_use]
mod field;

mod connection;
mod consume;
mod publish;
mod streams;

#[cfg(test)]
mod tests;

use bytes::{BufMut, Bytes, BytesMut};

pub use connection::{
    Close, CommandVersion, ExchangeCommandVersions, ExchangeCommandVersionsResponse, Open,
    OpenResponse, PeerProperties, PeerPropertiesResponse, SaslAuthenticate,
    SaslAuthenticateResponse, SaslHandshake, SaslHandshakeResponse, Tune,
};
pub use consume::{
    ConsumerUpdate, ConsumerUpdateResponse, Credit, CreditResponse, Deliver, QueryOffset,
    QueryOffsetResponse, ResolveOffsetSpec, ResolveOffsetSpecResponse, StoreOffset, Subscribe,
    Unsubscribe,
};
pub use publish::{
    DeclarePublisher, DeletePublisher, PUBLISH_HEADER_LEN, Publish, PublishConfirm, PublishEntry,
    PublishError, PublishFrameWriter, PublishVersion, PublishingError, QueryPublisherSequence,
    QueryPublisherSequenceResponse, simple_entry_len, sub_entry_len,
};
pub use streams::{
    Broker, CreateStream, CreateSuperStream, DeleteStream, DeleteSuperStream, Metadata,
    MetadataResponse, MetadataUpdate, NO_LEADER, Partitions, Route, StreamMetadata, StreamStats,
    StreamStatsResponse, StreamsResponse,
};

use super::codes::{RESPONSE_BIT, ResponseCode, VERSION_1, key};
use super::error::{DecodeError, EncodeError};
use super::wire::{Reader, begin_frame, end_frame};

/// Declares [`Frame`] from one table, each regular variant with its payload type and key, and
/// derives from it the key, the correlation id and the dispatch of encoding and decoding.
/// Publish, Deliver (two versions, their own codecs) and Heartbeat (no payload) are added by
/// hand.
macro_rules! frames {
    ($( $(#[$doc:meta])* $variant:ident($ty:ident) = $key:path, )*) => {
        /// One frame of the stream protocol. Variant docs give the key and direction
        /// (C = client, S = server); the payload struct docs give the wire layout after
        /// `key, version`.
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub enum Frame {
            $( $(#[$doc])* $variant($ty), )*
            /// `0x0002` v1/v2 C→S.
            Publish(Publish),
            /// `0x0008` v1/v2 S→C.
            Deliver(Deliver),
            /// `0x0017` C↔S, empty body after `key, version`.
            Heartbeat,
        }

        impl Frame {
            /// The wire key (`0x8000 | command` for responses).
            pub fn key(&self) -> u16 {
                match self {
                    $( Frame::$variant(_) => $key, )*
                    Frame::Publish(_) => key::PUBLISH,
                    Frame::Deliver(_) => key::DELIVER,
                    Frame::Heartbeat => key::HEARTBEAT,
                }
            }

            /// The correlation id, for the frames that have one.
            pub fn correlation_id(&self) -> Option<u32> {
                match self {
                    $( Frame::$variant(f) => f.correlation_id(), )*
                    Frame::Publish(_) | Frame::Deliver(_) | Frame::Heartbeat => None,
                }
            }

            /// The payload after `key, version` (Publish writes its whole frame itself).
            fn encode_payload(&self, buf: &mut BytesMut) -> Result<(), EncodeError> {
                match self {
                    $( Frame::$variant(f) => f.encode_body(buf), )*
                    Frame::Deliver(f) => f.encode_body(buf),
                    Frame::Publish(_) | Frame::Heartbeat => Ok(()),
                }
            }
        }

        /// Decodes what follows `key, version`.
        fn decode_payload(
            key: u16,
            version: u16,
            r: &mut Reader<'_>,
            src: &Bytes,
        ) -> Result<Frame, DecodeError> {
            Ok(match key {
                $( $key => {
                    check_v1(key, version)?;
                    Frame::$variant(<$ty as Body>::decode_body(r, src)?)
                } )*
                key::PUBLISH => {
                    let v = PublishVersion::from_u16(version)
                        .ok_or(DecodeError::UnsupportedVersion { key, version })?;
                    Frame::Publish(Publish::decode_body(r, src, v)?)
                }
                key::DELIVER => Frame::Deliver(Deliver::decode_body(r, src, key, version)?),
                key::HEARTBEAT => {
                    check_v1(key, version)?;
                    Frame::Heartbeat
                }
                _ => return Err(DecodeError::UnknownKey(key)),
            })
        }
    };
}

frames! {
    /// `0x0001` C→S.
    DeclarePublisher(DeclarePublisher) = key::DECLARE_PUBLISHER,
    /// `0x8001` S→C.
    DeclarePublisherResponse(CodeResponse) = R_DECLARE_PUBLISHER,
    /// `0x0003` S→C.
    PublishConfirm(PublishConfirm) = key::PUBLISH_CONFIRM,
    /// `0x0004` S→C.
    PublishError(PublishError) = key::PUBLISH_ERROR,
    /// `0x0005` C→S.
    QueryPublisherSequence(QueryPublisherSequence) = key::QUERY_PUBLISHER_SEQUENCE,
    /// `0x8005` S→C.
    QueryPublisherSequenceResponse(QueryPublisherSequenceResponse) = R_QUERY_PUBLISHER_SEQUENCE,
    /// `0x0006` C→S.
    DeletePublisher(DeletePublisher) = key::DELETE_PUBLISHER,
    /// `0x8006` S→C.
    DeletePublisherResponse(CodeResponse) = R_DELETE_PUBLISHER,
    /// `0x0007` C→S.
    Subscribe(Subscribe) = key::SUBSCRIBE,
    /// `0x8007` S→C.
    SubscribeResponse(CodeResponse) = R_SUBSCRIBE,
    /// `0x0009` C→S.
    Credit(Credit) = key::CREDIT,
    /// `0x8009` S→C, only on error, no correlation id.
    CreditResponse(CreditResponse) = R_CREDIT,
    /// `0x000a` C→S, no response.
    StoreOffset(StoreOffset) = key::STORE_OFFSET,
    /// `0x000b` C→S.
    QueryOffset(QueryOffset) = key::QUERY_OFFSET,
    /// `0x800b` S→C.
    QueryOffsetResponse(QueryOffsetResponse) = R_QUERY_OFFSET,
    /// `0x000c` C→S.
    Unsubscribe(Unsubscribe) = key::UNSUBSCRIBE,
    /// `0x800c` S→C.
    UnsubscribeResponse(CodeResponse) = R_UNSUBSCRIBE,
    /// `0x000d` C→S.
    CreateStream(CreateStream) = key::CREATE,
    /// `0x800d` S→C.
    CreateStreamResponse(CodeResponse) = R_CREATE,
    /// `0x000e` C→S.
    DeleteStream(DeleteStream) = key::DELETE,
    /// `0x800e` S→C.
    DeleteStreamResponse(CodeResponse) = R_DELETE,
    /// `0x000f` C→S.
    Metadata(Metadata) = key::METADATA,
    /// `0x800f` S→C (no top-level response code).
    MetadataResponse(MetadataResponse) = R_METADATA,
    /// `0x0010` S→C.
    MetadataUpdate(MetadataUpdate) = key::METADATA_UPDATE,
    /// `0x0011` C→S.
    PeerProperties(PeerProperties) = key::PEER_PROPERTIES,
    /// `0x8011` S→C.
    PeerPropertiesResponse(PeerPropertiesResponse) = R_PEER_PROPERTIES,
    /// `0x0012` C→S.
    SaslHandshake(SaslHandshake) = key::SASL_HANDSHAKE,
    /// `0x8012` S→C.
    SaslHandshakeResponse(SaslHandshakeResponse) = R_SASL_HANDSHAKE,
    /// `0x0013` C→S.
    SaslAuthenticate(SaslAuthenticate) = key::SASL_AUTHENTICATE,
    /// `0x8013` S→C.
    SaslAuthenticateResponse(SaslAuthenticateResponse) = R_SASL_AUTHENTICATE,
    /// `0x0014` S→C (server proposal), no correlation id.
    Tune(Tune) = key::TUNE,
    /// `0x8014` C→S (client's choice), no correlation id.
    TuneResponse(Tune) = R_TUNE,
    /// `0x0015` C→S.
    Open(Open) = key::OPEN,
    /// `0x8015` S→C.
    OpenResponse(OpenResponse) = R_OPEN,
    /// `0x0016` C↔S.
    Close(Close) = key::CLOSE,
    /// `0x8016` C↔S.
    CloseResponse(CodeResponse) = R_CLOSE,
    /// `0x0018` C→S.
    Route(Route) = key::ROUTE,
    /// `0x8018` S→C (`0x0018` from brokers before 3.11.1, see [`Frame::decode_server`]).
    RouteResponse(StreamsResponse) = R_ROUTE,
    /// `0x0019` C→S.
    Partitions(Partitions) = key::PARTITIONS,
    /// `0x8019` S→C (`0x0019` from brokers before 3.11.1, see [`Frame::decode_server`]).
    PartitionsResponse(StreamsResponse) = R_PARTITIONS,
    /// `0x001a` S→C request (the server allocates the correlation id).
    ConsumerUpdate(ConsumerUpdate) = key::CONSUMER_UPDATE,
    /// `0x801a` C→S answer to [`Frame::ConsumerUpdate`].
    ConsumerUpdateResponse(ConsumerUpdateResponse) = R_CONSUMER_UPDATE,
    /// `0x001b` C→S (3.11+).
    ExchangeCommandVersions(ExchangeCommandVersions) = key::EXCHANGE_COMMAND_VERSIONS,
    /// `0x801b` S→C.
    ExchangeCommandVersionsResponse(ExchangeCommandVersionsResponse) = R_EXCHANGE_COMMAND_VERSIONS,
    /// `0x001c` C→S (3.11+).
    StreamStats(StreamStats) = key::STREAM_STATS,
    /// `0x801c` S→C.
    StreamStatsResponse(StreamStatsResponse) = R_STREAM_STATS,
    /// `0x001d` C→S (3.13+).
    CreateSuperStream(CreateSuperStream) = key::CREATE_SUPER_STREAM,
    /// `0x801d` S→C.
    CreateSuperStreamResponse(CodeResponse) = R_CREATE_SUPER_STREAM,
    /// `0x001e` C→S (3.13+).
    DeleteSuperStream(DeleteSuperStream) = key::DELETE_SUPER_STREAM,
    /// `0x801e` S→C.
    DeleteSuperStreamResponse(CodeResponse) = R_DELETE_SUPER_STREAM,
    /// `0x001f` C→S (4.3+).
    ResolveOffsetSpec(ResolveOffsetSpec) = key::RESOLVE_OFFSET_SPEC,
    /// `0x801f` S→C.
    ResolveOffsetSpecResponse(ResolveOffsetSpecResponse) = R_RESOLVE_OFFSET_SPEC,
}

/// A response that carries only its code. Wire: `correlationId uint32, code uint16`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CodeResponse {
    pub correlation_id: u32,
    pub code: ResponseCode,
}

/// Encoding and decoding of a payload after `key, version`.
trait Body: Sized {
    fn encode_body(&self, buf: &mut BytesMut) -> Result<(), EncodeError>;
    /// Reads the payload; `src` is the whole body the reader runs over, for zero-copy slices.
    fn decode_body(r: &mut Reader<'_>, src: &Bytes) -> Result<Self, DecodeError>;
    /// The correlation id, for the commands that have one.
    fn correlation_id(&self) -> Option<u32> {
        None
    }
}

body!(CodeResponse {
    correlation_id,
    code
});

/// Takes `n` bytes as a zero-copy slice of `src` (the buffer `r` reads).
fn take_bytes(r: &mut Reader<'_>, src: &Bytes, n: usize) -> Result<Bytes, DecodeError> {
    let start = r.position();
    r.take(n)?;
    // In range: `take` just checked that `start + n` bytes exist.
    Ok(src.slice(start..start + n))
}

/// Fails unless `version` is 1.
fn check_v1(key: u16, version: u16) -> Result<(), DecodeError> {
    if version == VERSION_1 {
        Ok(())
    } else {
        Err(DecodeError::UnsupportedVersion { key, version })
    }
}

const fn resp(k: u16) -> u16 {
    k | RESPONSE_BIT
}

const R_DECLARE_PUBLISHER: u16 = resp(key::DECLARE_PUBLISHER);
const R_QUERY_PUBLISHER_SEQUENCE: u16 = resp(key::QUERY_PUBLISHER_SEQUENCE);
const R_DELETE_PUBLISHER: u16 = resp(key::DELETE_PUBLISHER);
const R_SUBSCRIBE: u16 = resp(key::SUBSCRIBE);
const R_CREDIT: u16 = resp(key::CREDIT);
const R_QUERY_OFFSET: u16 = resp(key::QUERY_OFFSET);
const R_UNSUBSCRIBE: u16 = resp(key::UNSUBSCRIBE);
const R_CREATE: u16 = resp(key::CREATE);
const R_DELETE: u16 = resp(key::DELETE);
const R_METADATA: u16 = resp(key::METADATA);
const R_PEER_PROPERTIES: u16 = resp(key::PEER_PROPERTIES);
const R_SASL_HANDSHAKE: u16 = resp(key::SASL_HANDSHAKE);
const R_SASL_AUTHENTICATE: u16 = resp(key::SASL_AUTHENTICATE);
const R_TUNE: u16 = resp(key::TUNE);
const R_OPEN: u16 = resp(key::OPEN);
const R_CLOSE: u16 = resp(key::CLOSE);
const R_ROUTE: u16 = resp(key::ROUTE);
const R_PARTITIONS: u16 = resp(key::PARTITIONS);
const R_CONSUMER_UPDATE: u16 = resp(key::CONSUMER_UPDATE);
const R_EXCHANGE_COMMAND_VERSIONS: u16 = resp(key::EXCHANGE_COMMAND_VERSIONS);
const R_STREAM_STATS: u16 = resp(key::STREAM_STATS);
const R_CREATE_SUPER_STREAM: u16 = resp(key::CREATE_SUPER_STREAM);
const R_DELETE_SUPER_STREAM: u16 = resp(key::DELETE_SUPER_STREAM);
const R_RESOLVE_OFFSET_SPEC: u16 = resp(key::RESOLVE_OFFSET_SPEC);

impl Frame {
    /// The wire version: 2 for Publish v2 and Deliver v2, else 1.
    pub fn version(&self) -> u16 {
        match self {
            Frame::Publish(p) => p.version.as_u16(),
            Frame::Deliver(d) => d.version(),
            _ => VERSION_1,
        }
    }

    /// True when the key carries the response bit.
    pub fn is_response(&self) -> bool {
        self.key() & RESPONSE_BIT != 0
    }

    /// Appends the whole frame, size prefix included. On error `buf` is left as it was.
    pub fn encode(&self, buf: &mut BytesMut) -> Result<(), EncodeError> {
        let start = buf.len();
        let res = self.encode_unchecked(buf);
        if res.is_err() {
            buf.truncate(start);
        }
        res
    }

    fn encode_unchecked(&self, buf: &mut BytesMut) -> Result<(), EncodeError> {
        if let Frame::Publish(p) = self {
            return p.encode_frame(buf);
        }
        let at = begin_frame(buf);
        buf.put_u16(self.key());
        buf.put_u16(self.version());
        self.encode_payload(buf)?;
        end_frame(buf, at)
    }

    /// Decodes one frame body (`key, version, ...`, without the size prefix), dispatching on
    /// key and version. Unknown key → [`DecodeError::UnknownKey`]; known key with a version
    /// this codec does not speak → [`DecodeError::UnsupportedVersion`]; leftover bytes →
    /// [`DecodeError::TrailingBytes`].
    ///
    /// `0x0018`/`0x0019` decode as Route/Partitions *requests*; a client reading from a broker
    /// should use [`Frame::decode_server`].
    pub fn decode(body: Bytes) -> Result<Frame, DecodeError> {
        let mut r = Reader::new(&body);
        let key = r.u16()?;
        let version = r.u16()?;
        let frame = decode_payload(key, version, &mut r, &body)?;
        r.finish()?;
        Ok(frame)
    }

    /// Decodes a frame a client received from a broker. Same as [`Frame::decode`] except that
    /// keys `0x0018`/`0x0019` (Route/Partitions, which a broker never sends as requests) are
    /// read as [`Frame::RouteResponse`]/[`Frame::PartitionsResponse`]: brokers 3.9.x–3.11.0
    /// sent those responses without the response bit. A Route answer of 3.9.0–3.9.5, a single
    /// `string` instead of `[string]`, is accepted too (as a one-element list).
    pub fn decode_server(body: Bytes) -> Result<Frame, DecodeError> {
        let mut r = Reader::new(&body);
        let key = r.u16()?;
        let version = r.u16()?;
        let frame = match key {
            key::ROUTE | key::PARTITIONS => {
                check_v1(key, version)?;
                let resp = StreamsResponse::decode_legacy(&mut r, key == key::ROUTE)?;
                if key == key::ROUTE {
                    Frame::RouteResponse(resp)
                } else {
                    Frame::PartitionsResponse(resp)
                }
            }
            _ => decode_payload(key, version, &mut r, &body)?,
        };
        r.finish()?;
        Ok(frame)
    }
}

/// Length of the first complete frame in `buf`, size prefix included, or `None` when more
/// bytes are needed. `max` bounds the size prefix (the frame without its 4-byte length, as the
/// broker checks `frame_max`); `0` = unlimited. A larger prefix is
/// [`DecodeError::FrameTooLarge`] and the stream cannot be resynchronised.
///
/// A Deliver frame carries a whole chunk and may exceed the negotiated `frame_max`, so a client
/// should read with `max = 0` or a generous bound of its own.
pub fn frame_len(buf: &[u8], max: u32) -> Result<Option<usize>, DecodeError> {
    let Some(prefix) = buf.first_chunk::<4>() else {
        return Ok(None);
    };
    let size = u32::from_be_bytes(*prefix);
    if max != 0 && size > max {
        return Err(DecodeError::FrameTooLarge { size, max });
    }
    let total = (size as usize).saturating_add(4);
    Ok((buf.len() >= total).then_some(total))
}

/// Splits the first complete frame off the front of `buf` and returns its body (without the
/// size prefix), zero-copy; `None` when more bytes are needed. See [`frame_len`] for `max`.
pub fn split_frame(buf: &mut BytesMut, max: u32) -> Result<Option<Bytes>, DecodeError> {
    match frame_len(buf, max)? {
        None => Ok(None),
        Some(total) => {
            let mut frame = buf.split_to(total);
            let _prefix = frame.split_to(4);
            Ok(Some(frame.freeze()))
        }
    }
}
