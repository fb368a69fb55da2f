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

/// One frame of the stream protocol. Variant docs give the key and direction
/// (C = client, S = server); the payload struct docs give the wire layout after
/// `key, version`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// `0x0001` C→S.
    DeclarePublisher(DeclarePublisher),
    /// `0x8001` S→C.
    DeclarePublisherResponse(CodeResponse),
    /// `0x0002` v1/v2 C→S.
    Publish(Publish),
    /// `0x0003` S→C.
    PublishConfirm(PublishConfirm),
    /// `0x0004` S→C.
    PublishError(PublishError),
    /// `0x0005` C→S.
    QueryPublisherSequence(QueryPublisherSequence),
    /// `0x8005` S→C.
    QueryPublisherSequenceResponse(QueryPublisherSequenceResponse),
    /// `0x0006` C→S.
    DeletePublisher(DeletePublisher),
    /// `0x8006` S→C.
    DeletePublisherResponse(CodeResponse),
    /// `0x0007` C→S.
    Subscribe(Subscribe),
    /// `0x8007` S→C.
    SubscribeResponse(CodeResponse),
    /// `0x0008` v1/v2 S→C.
    Deliver(Deliver),
    /// `0x0009` C→S.
    Credit(Credit),
    /// `0x8009` S→C, only on error, no correlation id.
    CreditResponse(CreditResponse),
    /// `0x000a` C→S, no response.
    StoreOffset(StoreOffset),
    /// `0x000b` C→S.
    QueryOffset(QueryOffset),
    /// `0x800b` S→C.
    QueryOffsetResponse(QueryOffsetResponse),
    /// `0x000c` C→S.
    Unsubscribe(Unsubscribe),
    /// `0x800c` S→C.
    UnsubscribeResponse(CodeResponse),
    /// `0x000d` C→S.
    CreateStream(CreateStream),
    /// `0x800d` S→C.
    CreateStreamResponse(CodeResponse),
    /// `0x000e` C→S.
    DeleteStream(DeleteStream),
    /// `0x800e` S→C.
    DeleteStreamResponse(CodeResponse),
    /// `0x000f` C→S.
    Metadata(Metadata),
    /// `0x800f` S→C (no top-level response code).
    MetadataResponse(MetadataResponse),
    /// `0x0010` S→C.
    MetadataUpdate(MetadataUpdate),
    /// `0x0011` C→S.
    PeerProperties(PeerProperties),
    /// `0x8011` S→C.
    PeerPropertiesResponse(PeerPropertiesResponse),
    /// `0x0012` C→S.
    SaslHandshake(SaslHandshake),
    /// `0x8012` S→C.
    SaslHandshakeResponse(SaslHandshakeResponse),
    /// `0x0013` C→S.
    SaslAuthenticate(SaslAuthenticate),
    /// `0x8013` S→C.
    SaslAuthenticateResponse(SaslAuthenticateResponse),
    /// `0x0014` S→C (server proposal), no correlation id.
    Tune(Tune),
    /// `0x8014` C→S (client's choice), no correlation id.
    TuneResponse(Tune),
    /// `0x0015` C→S.
    Open(Open),
    /// `0x8015` S→C.
    OpenResponse(OpenResponse),
    /// `0x0016` C↔S.
    Close(Close),
    /// `0x8016` C↔S.
    CloseResponse(CodeResponse),
    /// `0x0017` C↔S, empty body after `key, version`.
    Heartbeat,
    /// `0x0018` C→S.
    Route(Route),
    /// `0x8018` S→C (`0x0018` from brokers before 3.11.1, see [`Frame::decode_server`]).
    RouteResponse(StreamsResponse),
    /// `0x0019` C→S.
    Partitions(Partitions),
    /// `0x8019` S→C (`0x0019` from brokers before 3.11.1, see [`Frame::decode_server`]).
    PartitionsResponse(StreamsResponse),
    /// `0x001a` S→C request (the server allocates the correlation id).
    ConsumerUpdate(ConsumerUpdate),
    /// `0x801a` C→S answer to [`Frame::ConsumerUpdate`].
    ConsumerUpdateResponse(ConsumerUpdateResponse),
    /// `0x001b` C→S (3.11+).
    ExchangeCommandVersions(ExchangeCommandVersions),
    /// `0x801b` S→C.
    ExchangeCommandVersionsResponse(ExchangeCommandVersionsResponse),
    /// `0x001c` C→S (3.11+).
    StreamStats(StreamStats),
    /// `0x801c` S→C.
    StreamStatsResponse(StreamStatsResponse),
    /// `0x001d` C→S (3.13+).
    CreateSuperStream(CreateSuperStream),
    /// `0x801d` S→C.
    CreateSuperStreamResponse(CodeResponse),
    /// `0x001e` C→S (3.13+).
    DeleteSuperStream(DeleteSuperStream),
    /// `0x801e` S→C.
    DeleteSuperStreamResponse(CodeResponse),
    /// `0x001f` C→S (4.3+).
    ResolveOffsetSpec(ResolveOffsetSpec),
    /// `0x801f` S→C.
    ResolveOffsetSpecResponse(ResolveOffsetSpecResponse),
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
}

body!(CodeResponse {
    correlation_id,
    code
});

/// Reads a `uint16` response code.
fn code(r: &mut Reader<'_>) -> Result<ResponseCode, DecodeError> {
    r.u16().map(ResponseCode::from_u16)
}

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
    /// The wire key (`0x8000 | command` for responses).
    pub fn key(&self) -> u16 {
        match self {
            Frame::DeclarePublisher(_) => key::DECLARE_PUBLISHER,
            Frame::DeclarePublisherResponse(_) => R_DECLARE_PUBLISHER,
            Frame::Publish(_) => key::PUBLISH,
            Frame::PublishConfirm(_) => key::PUBLISH_CONFIRM,
            Frame::PublishError(_) => key::PUBLISH_ERROR,
            Frame::QueryPublisherSequence(_) => key::QUERY_PUBLISHER_SEQUENCE,
            Frame::QueryPublisherSequenceResponse(_) => R_QUERY_PUBLISHER_SEQUENCE,
            Frame::DeletePublisher(_) => key::DELETE_PUBLISHER,
            Frame::DeletePublisherResponse(_) => R_DELETE_PUBLISHER,
            Frame::Subscribe(_) => key::SUBSCRIBE,
            Frame::SubscribeResponse(_) => R_SUBSCRIBE,
            Frame::Deliver(_) => key::DELIVER,
            Frame::Credit(_) => key::CREDIT,
            Frame::CreditResponse(_) => R_CREDIT,
            Frame::StoreOffset(_) => key::STORE_OFFSET,
            Frame::QueryOffset(_) => key::QUERY_OFFSET,
            Frame::QueryOffsetResponse(_) => R_QUERY_OFFSET,
            Frame::Unsubscribe(_) => key::UNSUBSCRIBE,
            Frame::UnsubscribeResponse(_) => R_UNSUBSCRIBE,
            Frame::CreateStream(_) => key::CREATE,
            Frame::CreateStreamResponse(_) => R_CREATE,
            Frame::DeleteStream(_) => key::DELETE,
            Frame::DeleteStreamResponse(_) => R_DELETE,
            Frame::Metadata(_) => key::METADATA,
            Frame::MetadataResponse(_) => R_METADATA,
            Frame::MetadataUpdate(_) => key::METADATA_UPDATE,
            Frame::PeerProperties(_) => key::PEER_PROPERTIES,
            Frame::PeerPropertiesResponse(_) => R_PEER_PROPERTIES,
            Frame::SaslHandshake(_) => key::SASL_HANDSHAKE,
            Frame::SaslHandshakeResponse(_) => R_SASL_HANDSHAKE,
            Frame::SaslAuthenticate(_) => key::SASL_AUTHENTICATE,
            Frame::SaslAuthenticateResponse(_) => R_SASL_AUTHENTICATE,
            Frame::Tune(_) => key::TUNE,
            Frame::TuneResponse(_) => R_TUNE,
            Frame::Open(_) => key::OPEN,
            Frame::OpenResponse(_) => R_OPEN,
            Frame::Close(_) => key::CLOSE,
            Frame::CloseResponse(_) => R_CLOSE,
            Frame::Heartbeat => key::HEARTBEAT,
            Frame::Route(_) => key::ROUTE,
            Frame::RouteResponse(_) => R_ROUTE,
            Frame::Partitions(_) => key::PARTITIONS,
            Frame::PartitionsResponse(_) => R_PARTITIONS,
            Frame::ConsumerUpdate(_) => key::CONSUMER_UPDATE,
            Frame::ConsumerUpdateResponse(_) => R_CONSUMER_UPDATE,
            Frame::ExchangeCommandVersions(_) => key::EXCHANGE_COMMAND_VERSIONS,
            Frame::ExchangeCommandVersionsResponse(_) => R_EXCHANGE_COMMAND_VERSIONS,
            Frame::StreamStats(_) => key::STREAM_STATS,
            Frame::StreamStatsResponse(_) => R_STREAM_STATS,
            Frame::CreateSuperStream(_) => key::CREATE_SUPER_STREAM,
            Frame::CreateSuperStreamResponse(_) => R_CREATE_SUPER_STREAM,
            Frame::DeleteSuperStream(_) => key::DELETE_SUPER_STREAM,
            Frame::DeleteSuperStreamResponse(_) => R_DELETE_SUPER_STREAM,
            Frame::ResolveOffsetSpec(_) => key::RESOLVE_OFFSET_SPEC,
            Frame::ResolveOffsetSpecResponse(_) => R_RESOLVE_OFFSET_SPEC,
        }
    }

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

    /// The correlation id, for the frames that have one.
    pub fn correlation_id(&self) -> Option<u32> {
        Some(match self {
            Frame::DeclarePublisher(f) => f.correlation_id,
            Frame::QueryPublisherSequence(f) => f.correlation_id,
            Frame::QueryPublisherSequenceResponse(f) => f.correlation_id,
            Frame::DeletePublisher(f) => f.correlation_id,
            Frame::Subscribe(f) => f.correlation_id,
            Frame::QueryOffset(f) => f.correlation_id,
            Frame::QueryOffsetResponse(f) => f.correlation_id,
            Frame::Unsubscribe(f) => f.correlation_id,
            Frame::CreateStream(f) => f.correlation_id,
            Frame::DeleteStream(f) => f.correlation_id,
            Frame::Metadata(f) => f.correlation_id,
            Frame::MetadataResponse(f) => f.correlation_id,
            Frame::PeerProperties(f) => f.correlation_id,
            Frame::PeerPropertiesResponse(f) => f.correlation_id,
            Frame::SaslHandshake(f) => f.correlation_id,
            Frame::SaslHandshakeResponse(f) => f.correlation_id,
            Frame::SaslAuthenticate(f) => f.correlation_id,
            Frame::SaslAuthenticateResponse(f) => f.correlation_id,
            Frame::Open(f) => f.correlation_id,
            Frame::OpenResponse(f) => f.correlation_id,
            Frame::Close(f) => f.correlation_id,
            Frame::Route(f) => f.correlation_id,
            Frame::Partitions(f) => f.correlation_id,
            Frame::RouteResponse(f) | Frame::PartitionsResponse(f) => f.correlation_id,
            Frame::ConsumerUpdate(f) => f.correlation_id,
            Frame::ConsumerUpdateResponse(f) => f.correlation_id,
            Frame::ExchangeCommandVersions(f) => f.correlation_id,
            Frame::ExchangeCommandVersionsResponse(f) => f.correlation_id,
            Frame::StreamStats(f) => f.correlation_id,
            Frame::StreamStatsResponse(f) => f.correlation_id,
            Frame::CreateSuperStream(f) => f.correlation_id,
            Frame::DeleteSuperStream(f) => f.correlation_id,
            Frame::ResolveOffsetSpec(f) => f.correlation_id,
            Frame::ResolveOffsetSpecResponse(f) => f.correlation_id,
            Frame::DeclarePublisherResponse(f)
            | Frame::DeletePublisherResponse(f)
            | Frame::SubscribeResponse(f)
            | Frame::UnsubscribeResponse(f)
            | Frame::CreateStreamResponse(f)
            | Frame::DeleteStreamResponse(f)
            | Frame::CloseResponse(f)
            | Frame::CreateSuperStreamResponse(f)
            | Frame::DeleteSuperStreamResponse(f) => f.correlation_id,
            Frame::Publish(_)
            | Frame::PublishConfirm(_)
            | Frame::PublishError(_)
            | Frame::Deliver(_)
            | Frame::Credit(_)
            | Frame::CreditResponse(_)
            | Frame::StoreOffset(_)
            | Frame::MetadataUpdate(_)
            | Frame::Tune(_)
            | Frame::TuneResponse(_)
            | Frame::Heartbeat => return None,
        })
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
        match self {
            Frame::DeclarePublisher(f) => f.encode_body(buf),
            Frame::Publish(_) => Ok(()), // handled above
            Frame::PublishConfirm(f) => f.encode_body(buf),
            Frame::PublishError(f) => f.encode_body(buf),
            Frame::QueryPublisherSequence(f) => f.encode_body(buf),
            Frame::QueryPublisherSequenceResponse(f) => f.encode_body(buf),
            Frame::DeletePublisher(f) => f.encode_body(buf),
            Frame::Subscribe(f) => f.encode_body(buf),
            Frame::Deliver(f) => f.encode_body(buf),
            Frame::Credit(f) => f.encode_body(buf),
            Frame::CreditResponse(f) => f.encode_body(buf),
            Frame::StoreOffset(f) => f.encode_body(buf),
            Frame::QueryOffset(f) => f.encode_body(buf),
            Frame::QueryOffsetResponse(f) => f.encode_body(buf),
            Frame::Unsubscribe(f) => f.encode_body(buf),
            Frame::CreateStream(f) => f.encode_body(buf),
            Frame::DeleteStream(f) => f.encode_body(buf),
            Frame::Metadata(f) => f.encode_body(buf),
            Frame::MetadataResponse(f) => f.encode_body(buf),
            Frame::MetadataUpdate(f) => f.encode_body(buf),
            Frame::PeerProperties(f) => f.encode_body(buf),
            Frame::PeerPropertiesResponse(f) => f.encode_body(buf),
            Frame::SaslHandshake(f) => f.encode_body(buf),
            Frame::SaslHandshakeResponse(f) => f.encode_body(buf),
            Frame::SaslAuthenticate(f) => f.encode_body(buf),
            Frame::SaslAuthenticateResponse(f) => f.encode_body(buf),
            Frame::Tune(f) | Frame::TuneResponse(f) => f.encode_body(buf),
            Frame::Open(f) => f.encode_body(buf),
            Frame::OpenResponse(f) => f.encode_body(buf),
            Frame::Close(f) => f.encode_body(buf),
            Frame::Heartbeat => Ok(()),
            Frame::Route(f) => f.encode_body(buf),
            Frame::Partitions(f) => f.encode_body(buf),
            Frame::RouteResponse(f) | Frame::PartitionsResponse(f) => f.encode_body(buf),
            Frame::ConsumerUpdate(f) => f.encode_body(buf),
            Frame::ConsumerUpdateResponse(f) => f.encode_body(buf),
            Frame::ExchangeCommandVersions(f) => f.encode_body(buf),
            Frame::ExchangeCommandVersionsResponse(f) => f.encode_body(buf),
            Frame::StreamStats(f) => f.encode_body(buf),
            Frame::StreamStatsResponse(f) => f.encode_body(buf),
            Frame::CreateSuperStream(f) => f.encode_body(buf),
            Frame::DeleteSuperStream(f) => f.encode_body(buf),
            Frame::ResolveOffsetSpec(f) => f.encode_body(buf),
            Frame::ResolveOffsetSpecResponse(f) => f.encode_body(buf),
            Frame::DeclarePublisherResponse(f)
            | Frame::DeletePublisherResponse(f)
            | Frame::SubscribeResponse(f)
            | Frame::UnsubscribeResponse(f)
            | Frame::CreateStreamResponse(f)
            | Frame::DeleteStreamResponse(f)
            | Frame::CloseResponse(f)
            | Frame::CreateSuperStreamResponse(f)
            | Frame::DeleteSuperStreamResponse(f) => f.encode_body(buf),
        }?;
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

/// Decodes what follows `key, version`.
fn decode_payload(
    key: u16,
    version: u16,
    r: &mut Reader<'_>,
    src: &Bytes,
) -> Result<Frame, DecodeError> {
    macro_rules! v1 {
        ($variant:ident, $ty:ty) => {{
            check_v1(key, version)?;
            Frame::$variant(<$ty as Body>::decode_body(r, src)?)
        }};
    }
    Ok(match key {
        key::DECLARE_PUBLISHER => v1!(DeclarePublisher, DeclarePublisher),
        R_DECLARE_PUBLISHER => v1!(DeclarePublisherResponse, CodeResponse),
        key::PUBLISH => {
            let v = PublishVersion::from_u16(version)
                .ok_or(DecodeError::UnsupportedVersion { key, version })?;
            Frame::Publish(Publish::decode_body(r, src, v)?)
        }
        key::PUBLISH_CONFIRM => v1!(PublishConfirm, PublishConfirm),
        key::PUBLISH_ERROR => v1!(PublishError, PublishError),
        key::QUERY_PUBLISHER_SEQUENCE => v1!(QueryPublisherSequence, QueryPublisherSequence),
        R_QUERY_PUBLISHER_SEQUENCE => {
            v1!(
                QueryPublisherSequenceResponse,
                QueryPublisherSequenceResponse
            )
        }
        key::DELETE_PUBLISHER => v1!(DeletePublisher, DeletePublisher),
        R_DELETE_PUBLISHER => v1!(DeletePublisherResponse, CodeResponse),
        key::SUBSCRIBE => v1!(Subscribe, Subscribe),
        R_SUBSCRIBE => v1!(SubscribeResponse, CodeResponse),
        key::DELIVER => Frame::Deliver(Deliver::decode_body(r, src, key, version)?),
        key::CREDIT => v1!(Credit, Credit),
        R_CREDIT => v1!(CreditResponse, CreditResponse),
        key::STORE_OFFSET => v1!(StoreOffset, StoreOffset),
        key::QUERY_OFFSET => v1!(QueryOffset, QueryOffset),
        R_QUERY_OFFSET => v1!(QueryOffsetResponse, QueryOffsetResponse),
        key::UNSUBSCRIBE => v1!(Unsubscribe, Unsubscribe),
        R_UNSUBSCRIBE => v1!(UnsubscribeResponse, CodeResponse),
        key::CREATE => v1!(CreateStream, CreateStream),
        R_CREATE => v1!(CreateStreamResponse, CodeResponse),
        key::DELETE => v1!(DeleteStream, DeleteStream),
        R_DELETE => v1!(DeleteStreamResponse, CodeResponse),
        key::METADATA => v1!(Metadata, Metadata),
        R_METADATA => v1!(MetadataResponse, MetadataResponse),
        key::METADATA_UPDATE => v1!(MetadataUpdate, MetadataUpdate),
        key::PEER_PROPERTIES => v1!(PeerProperties, PeerProperties),
        R_PEER_PROPERTIES => v1!(PeerPropertiesResponse, PeerPropertiesResponse),
        key::SASL_HANDSHAKE => v1!(SaslHandshake, SaslHandshake),
        R_SASL_HANDSHAKE => v1!(SaslHandshakeResponse, SaslHandshakeResponse),
        key::SASL_AUTHENTICATE => v1!(SaslAuthenticate, SaslAuthenticate),
        R_SASL_AUTHENTICATE => v1!(SaslAuthenticateResponse, SaslAuthenticateResponse),
        key::TUNE => v1!(Tune, Tune),
        R_TUNE => v1!(TuneResponse, Tune),
        key::OPEN => v1!(Open, Open),
        R_OPEN => v1!(OpenResponse, OpenResponse),
        key::CLOSE => v1!(Close, Close),
        R_CLOSE => v1!(CloseResponse, CodeResponse),
        key::HEARTBEAT => {
            check_v1(key, version)?;
            Frame::Heartbeat
        }
        key::ROUTE => v1!(Route, Route),
        R_ROUTE => v1!(RouteResponse, StreamsResponse),
        key::PARTITIONS => v1!(Partitions, Partitions),
        R_PARTITIONS => v1!(PartitionsResponse, StreamsResponse),
        key::CONSUMER_UPDATE => v1!(ConsumerUpdate, ConsumerUpdate),
        R_CONSUMER_UPDATE => v1!(ConsumerUpdateResponse, ConsumerUpdateResponse),
        key::EXCHANGE_COMMAND_VERSIONS => v1!(ExchangeCommandVersions, ExchangeCommandVersions),
        R_EXCHANGE_COMMAND_VERSIONS => {
            v1!(
                ExchangeCommandVersionsResponse,
                ExchangeCommandVersionsResponse
            )
        }
        key::STREAM_STATS => v1!(StreamStats, StreamStats),
        R_STREAM_STATS => v1!(StreamStatsResponse, StreamStatsResponse),
        key::CREATE_SUPER_STREAM => v1!(CreateSuperStream, CreateSuperStream),
        R_CREATE_SUPER_STREAM => v1!(CreateSuperStreamResponse, CodeResponse),
        key::DELETE_SUPER_STREAM => v1!(DeleteSuperStream, DeleteSuperStream),
        R_DELETE_SUPER_STREAM => v1!(DeleteSuperStreamResponse, CodeResponse),
        key::RESOLVE_OFFSET_SPEC => v1!(ResolveOffsetSpec, ResolveOffsetSpec),
        R_RESOLVE_OFFSET_SPEC => v1!(ResolveOffsetSpecResponse, ResolveOffsetSpecResponse),
        _ => return Err(DecodeError::UnknownKey(key)),
    })
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
