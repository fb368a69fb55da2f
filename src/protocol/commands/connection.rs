//! Connection commands: PeerProperties, SASL, Tune, Open, Close, ExchangeCommandVersions.

use bytes::{BufMut, Bytes, BytesMut};

use super::field::{Field, OptionalMap, PeerMap};
use super::{Body, take_bytes};
use crate::protocol::codes::ResponseCode;
use crate::protocol::error::{DecodeError, EncodeError};
use crate::protocol::wire::{Reader, put_bytes, put_str};

/// PeerProperties request. Wire: `correlationId uint32, properties [string, string]`.
/// A missing map is read as empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerProperties {
    pub correlation_id: u32,
    /// Client properties, e.g. `product`, `version`, `connection_name`.
    pub properties: Vec<(String, String)>,
}

body!(PeerProperties { correlation_id, properties as PeerMap });

/// PeerProperties response. Wire: `correlationId uint32, code uint16,
/// properties [string, string]`. A missing map is read as empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerPropertiesResponse {
    pub correlation_id: u32,
    pub code: ResponseCode,
    /// Server properties: `product`, `version`, `cluster_name`, `platform`, ...
    pub properties: Vec<(String, String)>,
}

body!(PeerPropertiesResponse { correlation_id, code, properties as PeerMap });

/// SaslHandshake request. Wire: `correlationId uint32` only (the spec's "Mechanism" field
/// does not exist).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SaslHandshake {
    pub correlation_id: u32,
}

body!(SaslHandshake { correlation_id });

/// SaslHandshake response. Wire: `correlationId uint32, code uint16, mechanisms [string]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaslHandshakeResponse {
    pub correlation_id: u32,
    pub code: ResponseCode,
    /// Offered mechanisms, e.g. `PLAIN`, `AMQPLAIN`, `EXTERNAL`, `ANONYMOUS`.
    pub mechanisms: Vec<String>,
}

body!(SaslHandshakeResponse {
    correlation_id,
    code,
    mechanisms
});

/// SaslAuthenticate request. Wire: `correlationId uint32, mechanism string,
/// saslData bytes` (int32 length, −1 = null). PLAIN data is `\0user\0password`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaslAuthenticate {
    pub correlation_id: u32,
    pub mechanism: String,
    /// `None` is written as length −1 (the broker treats it like empty data).
    pub sasl_data: Option<Bytes>,
}

impl Body for SaslAuthenticate {
    fn encode_body(&self, buf: &mut BytesMut) -> Result<(), EncodeError> {
        buf.put_u32(self.correlation_id);
        put_str(buf, &self.mechanism)?;
        match &self.sasl_data {
            Some(d) => put_bytes(buf, d),
            None => {
                buf.put_i32(-1);
                Ok(())
            }
        }
    }
    fn decode_body(r: &mut Reader<'_>, src: &Bytes) -> Result<Self, DecodeError> {
        let correlation_id = r.u32()?;
        let mechanism = r.string()?;
        let len = r.i32()?;
        let sasl_data = match len {
            -1 => None,
            n if n < 0 => return Err(DecodeError::InvalidLength(n.into())),
            n => Some(take_bytes(r, src, n as usize)?),
        };
        Ok(SaslAuthenticate {
            correlation_id,
            mechanism,
            sasl_data,
        })
    }
    fn correlation_id(&self) -> Option<u32> {
        Some(self.correlation_id)
    }
}

/// SaslAuthenticate response. Wire: `correlationId uint32, code uint16
/// [, challenge]`. The broker writes the challenge with an **int16** length (the spec says
/// `bytes`), and only when it is non-empty, i.e. with code 0x0a SASL_CHALLENGE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaslAuthenticateResponse {
    pub correlation_id: u32,
    pub code: ResponseCode,
    /// Present when the body has a tail (whatever the code); raw bytes, not UTF-8-checked.
    pub challenge: Option<Bytes>,
}

impl Body for SaslAuthenticateResponse {
    fn encode_body(&self, buf: &mut BytesMut) -> Result<(), EncodeError> {
        buf.put_u32(self.correlation_id);
        buf.put_u16(self.code.as_u16());
        if let Some(c) = &self.challenge {
            let len = u16::try_from(c.len()).map_err(|_| EncodeError::StringTooLong(c.len()))?;
            buf.put_u16(len);
            buf.put_slice(c);
        }
        Ok(())
    }
    fn decode_body(r: &mut Reader<'_>, src: &Bytes) -> Result<Self, DecodeError> {
        let correlation_id = r.u32()?;
        let code = ResponseCode::get(r)?;
        let challenge = if r.remaining() == 0 {
            None
        } else {
            // The broker's length is unsigned 16-bit (`?STRING`).
            let len = r.u16()?;
            Some(take_bytes(r, src, len.into())?)
        };
        Ok(SaslAuthenticateResponse {
            correlation_id,
            code,
            challenge,
        })
    }
    fn correlation_id(&self) -> Option<u32> {
        Some(self.correlation_id)
    }
}

/// Tune, both the server's proposal (`0x0014`) and the client's answer (`0x8014`).
/// Wire: `frameMax uint32, heartbeat uint32` (seconds); no correlation id; 0 = unlimited/off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tune {
    pub frame_max: u32,
    pub heartbeat: u32,
}

body!(Tune {
    frame_max,
    heartbeat
});

/// Open request. Wire: `correlationId uint32, virtualHost string`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Open {
    pub correlation_id: u32,
    pub virtual_host: String,
}

body!(Open {
    correlation_id,
    virtual_host
});

/// Open response. Wire: `correlationId uint32, code uint16 [, properties [string, string]]`;
/// the broker omits the map when it is empty (errors). Properties: `advertised_host`,
/// `advertised_port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenResponse {
    pub correlation_id: u32,
    pub code: ResponseCode,
    /// Empty is encoded as an absent map.
    pub properties: Vec<(String, String)>,
}

body!(OpenResponse { correlation_id, code, properties as OptionalMap });

/// Close request, sent by either side. Wire: `correlationId uint32, closingCode uint16,
/// reason string`. The peer answers with a [`super::CodeResponse`] (`0x8016`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Close {
    pub correlation_id: u32,
    pub code: ResponseCode,
    pub reason: String,
}

body!(Close {
    correlation_id,
    code,
    reason
});

/// One command's version range in ExchangeCommandVersions. Wire: `key uint16,
/// minVersion uint16, maxVersion uint16`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CommandVersion {
    pub key: u16,
    pub min_version: u16,
    pub max_version: u16,
}

body!(Field for CommandVersion [6] { key, min_version, max_version });

/// ExchangeCommandVersions request (3.11+): the commands the client can handle.
/// Wire: `correlationId uint32, [CommandVersion]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExchangeCommandVersions {
    pub correlation_id: u32,
    pub commands: Vec<CommandVersion>,
}

body!(ExchangeCommandVersions {
    correlation_id,
    commands
});

/// ExchangeCommandVersions response: the commands the server accepts.
/// Wire: `correlationId uint32, code uint16, [CommandVersion]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExchangeCommandVersionsResponse {
    pub correlation_id: u32,
    pub code: ResponseCode,
    pub commands: Vec<CommandVersion>,
}

body!(ExchangeCommandVersionsResponse {
    correlation_id,
    code,
    commands
});
