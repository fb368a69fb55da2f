//! Consumer commands: Subscribe, Deliver, Credit, offsets, Unsubscribe, ConsumerUpdate,
//! ResolveOffsetSpec.

use bytes::{BufMut, Bytes, BytesMut};

use super::field::OptionalMap;
use super::{Body, take_bytes};
use crate::protocol::codes::{OffsetSpec, ResponseCode, VERSION_1, VERSION_2};
use crate::protocol::error::{DecodeError, EncodeError};
use crate::protocol::wire::Reader;

/// Subscribe request. Wire: `correlationId uint32, subscriptionId uint8, stream string,
/// offsetSpec (offsetType uint16 [+ 8-byte value for types 4/5]), credit uint16
/// [, properties [string, string]]`. The broker accepts an absent properties map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscribe {
    pub correlation_id: u32,
    pub subscription_id: u8,
    pub stream: String,
    pub offset_spec: OffsetSpec,
    /// Initial credit, in chunks.
    pub credit: u16,
    /// E.g. `single-active-consumer`, `name`, `super-stream`, `filter.N`, `match-unfiltered`.
    /// Empty is encoded as an absent map.
    pub properties: Vec<(String, String)>,
}

body!(Subscribe {
    correlation_id,
    subscription_id,
    stream,
    offset_spec,
    credit,
    properties as OptionalMap
});

/// Deliver (server → client). Wire v1: `subscriptionId uint8, chunk`; v2 (3.11+, after
/// ExchangeCommandVersions lists deliver 1..2): `subscriptionId uint8,
/// committedChunkId uint64, chunk`. The chunk runs to the end of the frame: the 48-byte
/// Osiris header then `dataLength` bytes (no Bloom filter, no trailer); it is not parsed here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deliver {
    pub subscription_id: u8,
    /// `Some` = version 2: id of the last chunk committed by a quorum.
    pub committed_chunk_id: Option<u64>,
    /// Raw Osiris chunk, a zero-copy slice of the received frame.
    pub chunk: Bytes,
}

impl Deliver {
    /// 2 when `committed_chunk_id` is present, else 1.
    pub fn version(&self) -> u16 {
        if self.committed_chunk_id.is_some() {
            VERSION_2
        } else {
            VERSION_1
        }
    }

    pub(super) fn encode_body(&self, buf: &mut BytesMut) -> Result<(), EncodeError> {
        buf.put_u8(self.subscription_id);
        if let Some(c) = self.committed_chunk_id {
            buf.put_u64(c);
        }
        buf.put_slice(&self.chunk);
        Ok(())
    }

    pub(super) fn decode_body(
        r: &mut Reader<'_>,
        src: &Bytes,
        key: u16,
        version: u16,
    ) -> Result<Self, DecodeError> {
        if version != VERSION_1 && version != VERSION_2 {
            return Err(DecodeError::UnsupportedVersion { key, version });
        }
        let subscription_id = r.u8()?;
        let committed_chunk_id = if version == VERSION_2 {
            Some(r.u64()?)
        } else {
            None
        };
        let chunk = take_bytes(r, src, r.remaining())?;
        Ok(Deliver {
            subscription_id,
            committed_chunk_id,
            chunk,
        })
    }
}

/// Credit request (no correlation id). Wire: `subscriptionId uint8, credit uint16`.
/// The broker reads the credit as *signed*, so encoding rejects values above 32767.
/// Answered only on error, by [`CreditResponse`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Credit {
    pub subscription_id: u8,
    /// Additional chunks the broker may send.
    pub credit: u16,
}

impl Body for Credit {
    fn encode_body(&self, buf: &mut BytesMut) -> Result<(), EncodeError> {
        if self.credit > i16::MAX as u16 {
            return Err(EncodeError::InvalidValue("credit above 32767"));
        }
        buf.put_u8(self.subscription_id);
        buf.put_u16(self.credit);
        Ok(())
    }
    fn decode_body(r: &mut Reader<'_>, _: &Bytes) -> Result<Self, DecodeError> {
        Ok(Credit {
            subscription_id: r.u8()?,
            credit: r.u16()?,
        })
    }
}

/// Credit error response (`0x8009`), **without correlation id**. Wire: `code uint16,
/// subscriptionId uint8`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CreditResponse {
    pub code: ResponseCode,
    pub subscription_id: u8,
}

body!(CreditResponse {
    code,
    subscription_id
});

/// StoreOffset (no correlation id, no response). Wire: `reference string (≤ 255 bytes),
/// stream string, offset uint64`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreOffset {
    pub reference: String,
    pub stream: String,
    pub offset: u64,
}

body!(StoreOffset {
    reference,
    stream,
    offset
});

/// QueryOffset request. Wire: `correlationId uint32, reference string, stream string`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryOffset {
    pub correlation_id: u32,
    pub reference: String,
    pub stream: String,
}

body!(QueryOffset {
    correlation_id,
    reference,
    stream
});

/// QueryOffset response. Wire: `correlationId uint32, code uint16, offset uint64`.
/// Nothing stored: code 0x13 NO_OFFSET (3.10+), OK with offset 0 on 3.9.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueryOffsetResponse {
    pub correlation_id: u32,
    pub code: ResponseCode,
    pub offset: u64,
}

body!(QueryOffsetResponse {
    correlation_id,
    code,
    offset
});

/// Unsubscribe request. Wire: `correlationId uint32, subscriptionId uint8`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unsubscribe {
    pub correlation_id: u32,
    pub subscription_id: u8,
}

body!(Unsubscribe {
    correlation_id,
    subscription_id
});

/// ConsumerUpdate, a request *from the server* (single active consumer). Wire:
/// `correlationId uint32, subscriptionId uint8, active uint8 (0/1)`. Must be answered with
/// [`ConsumerUpdateResponse`] within the broker's request timeout (60 s default).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsumerUpdate {
    pub correlation_id: u32,
    pub subscription_id: u8,
    pub active: bool,
}

impl Body for ConsumerUpdate {
    fn encode_body(&self, buf: &mut BytesMut) -> Result<(), EncodeError> {
        buf.put_u32(self.correlation_id);
        buf.put_u8(self.subscription_id);
        buf.put_u8(u8::from(self.active));
        Ok(())
    }
    fn decode_body(r: &mut Reader<'_>, _: &Bytes) -> Result<Self, DecodeError> {
        Ok(ConsumerUpdate {
            correlation_id: r.u32()?,
            subscription_id: r.u8()?,
            active: match r.u8()? {
                0 => false,
                1 => true,
                _ => return Err(DecodeError::InvalidValue("consumer update active flag")),
            },
        })
    }
    fn correlation_id(&self) -> Option<u32> {
        Some(self.correlation_id)
    }
}

/// The client's answer to [`ConsumerUpdate`] (`0x801a`). Wire: `correlationId uint32,
/// code uint16, offsetType uint16 [+ 8-byte value for types 4/5]`; type 0 (`None`) = keep the
/// offset specification of the Subscribe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsumerUpdateResponse {
    pub correlation_id: u32,
    pub code: ResponseCode,
    pub offset_spec: Option<OffsetSpec>,
}

body!(ConsumerUpdateResponse {
    correlation_id,
    code,
    offset_spec
});

/// ResolveOffsetSpec request (4.3+). Wire: `correlationId uint32, stream string,
/// offsetSpec (offsetType uint16 [+ 8-byte value for types 4/5])
/// [, properties [string, string]]` (absent map accepted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolveOffsetSpec {
    pub correlation_id: u32,
    pub stream: String,
    pub offset_spec: OffsetSpec,
    /// Reader options such as `filter.N`, `match-unfiltered`, `chunk_selector`.
    /// Empty is encoded as an absent map.
    pub properties: Vec<(String, String)>,
}

body!(ResolveOffsetSpec { correlation_id, stream, offset_spec, properties as OptionalMap });

/// ResolveOffsetSpec response. Wire: `correlationId uint32, code uint16, offsetType uint16,
/// offset uint64` — the value is always present (type 4 and offset 0 on error).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResolveOffsetSpecResponse {
    pub correlation_id: u32,
    pub code: ResponseCode,
    /// Always 4 (offset) from current brokers.
    pub offset_type: u16,
    pub offset: u64,
}

body!(ResolveOffsetSpecResponse {
    correlation_id,
    code,
    offset_type,
    offset
});
