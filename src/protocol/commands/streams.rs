//! Stream management and topology: Create/Delete, Metadata, MetadataUpdate, Route,
//! Partitions, StreamStats, super streams.

use bytes::{BufMut, Bytes, BytesMut};

use super::Body;
use super::field::Field;
use crate::protocol::codes::ResponseCode;
use crate::protocol::error::{DecodeError, EncodeError};
use crate::protocol::wire::{Reader, put_array_len, put_str};

/// Create (stream) request. Wire: `correlationId uint32, stream string,
/// arguments [string, string]` (`max-length-bytes`, `max-age`, ...). An existing stream
/// answers 0x05 STREAM_ALREADY_EXISTS whatever the arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateStream {
    pub correlation_id: u32,
    pub stream: String,
    pub arguments: Vec<(String, String)>,
}

body!(CreateStream {
    correlation_id,
    stream,
    arguments
});

/// Delete (stream) request. Wire: `correlationId uint32, stream string`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteStream {
    pub correlation_id: u32,
    pub stream: String,
}

body!(DeleteStream {
    correlation_id,
    stream
});

/// Metadata request. Wire: `correlationId uint32, streams [string]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metadata {
    pub correlation_id: u32,
    pub streams: Vec<String>,
}

body!(Metadata {
    correlation_id,
    streams
});

/// Leader reference meaning "no leader" in a Metadata response.
pub const NO_LEADER: u16 = 0xffff;

/// A broker in a Metadata response. Wire: `reference uint16, host string, port uint32`
/// (advertised host and port).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broker {
    pub reference: u16,
    pub host: String,
    pub port: u32,
}

/// A stream in a Metadata response. Wire: `stream string, code uint16, leaderRef uint16,
/// replicaRefs [uint16]`. On error (0x02, 0x06, 0x10) the leader is [`NO_LEADER`] and there
/// are no replicas.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamMetadata {
    pub stream: String,
    pub code: ResponseCode,
    /// `None` on the wire as [`NO_LEADER`] (0xFFFF); `Some(0xFFFF)` cannot be encoded.
    pub leader: Option<u16>,
    pub replicas: Vec<u16>,
}

/// Metadata response — **no top-level response code**. Wire: `correlationId uint32,
/// brokers [Broker], streams [StreamMetadata]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetadataResponse {
    pub correlation_id: u32,
    pub brokers: Vec<Broker>,
    pub streams: Vec<StreamMetadata>,
}

impl Body for MetadataResponse {
    fn encode_body(&self, buf: &mut BytesMut) -> Result<(), EncodeError> {
        buf.put_u32(self.correlation_id);
        put_array_len(buf, self.brokers.len())?;
        for b in &self.brokers {
            buf.put_u16(b.reference);
            put_str(buf, &b.host)?;
            buf.put_u32(b.port);
        }
        put_array_len(buf, self.streams.len())?;
        for s in &self.streams {
            put_str(buf, &s.stream)?;
            buf.put_u16(s.code.as_u16());
            let leader = match s.leader {
                None => NO_LEADER,
                Some(NO_LEADER) => {
                    return Err(EncodeError::InvalidValue("leader reference 0xFFFF"));
                }
                Some(l) => l,
            };
            buf.put_u16(leader);
            put_array_len(buf, s.replicas.len())?;
            for r in &s.replicas {
                buf.put_u16(*r);
            }
        }
        Ok(())
    }
    fn decode_body(r: &mut Reader<'_>, _: &Bytes) -> Result<Self, DecodeError> {
        let correlation_id = r.u32()?;
        let n = r.array_len(8)?;
        let mut brokers = Vec::with_capacity(n);
        for _ in 0..n {
            brokers.push(Broker {
                reference: r.u16()?,
                host: r.string()?,
                port: r.u32()?,
            });
        }
        let n = r.array_len(10)?;
        let mut streams = Vec::with_capacity(n);
        for _ in 0..n {
            let stream = r.string()?;
            let code = ResponseCode::get(r)?;
            let leader = match r.u16()? {
                NO_LEADER => None,
                l => Some(l),
            };
            let m = r.array_len(2)?;
            let mut replicas = Vec::with_capacity(m);
            for _ in 0..m {
                replicas.push(r.u16()?);
            }
            streams.push(StreamMetadata {
                stream,
                code,
                leader,
                replicas,
            });
        }
        Ok(MetadataResponse {
            correlation_id,
            brokers,
            streams,
        })
    }
    fn correlation_id(&self) -> Option<u32> {
        Some(self.correlation_id)
    }
}

/// MetadataUpdate (server → client, no correlation id). Wire: `code uint16, stream string`.
/// Code is 0x06 STREAM_NOT_AVAILABLE in practice; the broker has already dropped this
/// connection's publishers and subscriptions on the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetadataUpdate {
    pub code: ResponseCode,
    pub stream: String,
}

body!(MetadataUpdate { code, stream });

/// Route request. Wire: `correlationId uint32, routingKey string, superStream string`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub correlation_id: u32,
    pub routing_key: String,
    pub super_stream: String,
}

body!(Route {
    correlation_id,
    routing_key,
    super_stream
});

/// Partitions request. Wire: `correlationId uint32, superStream string`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partitions {
    pub correlation_id: u32,
    pub super_stream: String,
}

body!(Partitions {
    correlation_id,
    super_stream
});

/// Route and Partitions responses. Wire: `correlationId uint32, code uint16,
/// streams [string]` (Partitions: in partition order; errors: empty list).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamsResponse {
    pub correlation_id: u32,
    pub code: ResponseCode,
    pub streams: Vec<String>,
}

body!(StreamsResponse {
    correlation_id,
    code,
    streams
});

impl StreamsResponse {
    /// Reads a response of a broker before 3.11.1 (sent under the request key). With
    /// `single_string_fallback` (Route), a body whose tail is one `string` rather than
    /// `[string]` (3.9.0–3.9.5) is read as a one-element list. The two layouts cannot be
    /// confused: a non-empty single string read as an array count claims ≥ 65 536 elements,
    /// more than the ≤ 32 767 bytes that follow.
    pub(super) fn decode_legacy(
        r: &mut Reader<'_>,
        single_string_fallback: bool,
    ) -> Result<Self, DecodeError> {
        let correlation_id = r.u32()?;
        let code = ResponseCode::get(r)?;
        let mut array = r.clone();
        let streams = match array.string_array() {
            Ok(v) if array.remaining() == 0 => v,
            array_result => {
                let mut single = r.clone();
                if single_string_fallback
                    && let Ok(s) = single.string()
                    && single.remaining() == 0
                {
                    *r = single;
                    return Ok(StreamsResponse {
                        correlation_id,
                        code,
                        streams: vec![s],
                    });
                }
                // Neither layout fits: report the array layout's error (or, through the
                // caller's `finish`, its trailing bytes).
                array_result?
            }
        };
        *r = array;
        Ok(StreamsResponse {
            correlation_id,
            code,
            streams,
        })
    }
}

/// StreamStats request (3.11+). Wire: `correlationId uint32, stream string`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamStats {
    pub correlation_id: u32,
    pub stream: String,
}

body!(StreamStats {
    correlation_id,
    stream
});

/// StreamStats response. Wire: `correlationId uint32, code uint16,
/// stats [string, int64]`: `first_chunk_id`, `committed_chunk_id`, `last_chunk_id` (newer
/// brokers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamStatsResponse {
    pub correlation_id: u32,
    pub code: ResponseCode,
    pub stats: Vec<(String, i64)>,
}

body!(StreamStatsResponse {
    correlation_id,
    code,
    stats
});

/// CreateSuperStream request (3.13+). Wire: `correlationId uint32, name string,
/// partitions [string], bindingKeys [string], arguments [string, string]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateSuperStream {
    pub correlation_id: u32,
    pub name: String,
    pub partitions: Vec<String>,
    /// One routing key per partition, same order.
    pub binding_keys: Vec<String>,
    pub arguments: Vec<(String, String)>,
}

body!(CreateSuperStream {
    correlation_id,
    name,
    partitions,
    binding_keys,
    arguments
});

/// DeleteSuperStream request (3.13+). Wire: `correlationId uint32, name string`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteSuperStream {
    pub correlation_id: u32,
    pub name: String,
}

body!(DeleteSuperStream {
    correlation_id,
    name
});
