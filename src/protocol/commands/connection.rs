//! Connection commands: PeerProperties, SASL, Tune, Open, Close, ExchangeCommandVersions.

use bytes::{BufMut, Bytes, BytesMut};

use super::{Body, code, optional_map, put_optional_map, take_bytes};
use crate::protocol::codes::ResponseCode;
use crate::protocol::error::{DecodeError, EncodeError};
use crate::protocol::wire::{
    Reader, put_array_len, put_bytes, put_str, put_string_array, put_string_map,
};

/// PeerProperties request. Wire: `correlationId uint32, properties [string, string]`.
/// A missing map is read as empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerProperties {
    pub correlation_id: u32,
    /// Client properties, e.g. `product`, `version`, `connection_name`.
    pub properties: Vec<(String, String)>,
}

impl Body for PeerProperties {
    fn encode_body(&self, buf: &mut BytesMut) -> Result<(), EncodeError> {
        buf.put_u32(self.correlation_id);
        put_string_map(buf, &self.properties)
    }
    fn decode_body(r: &mut Reader<'_>, _: &Bytes) -> Result<Self, DecodeError> {
        Ok(PeerProperties {
            correlation_id: r.u32()?,
            properties: optional_map(r)?,
        })
    }
}

/// PeerProperties response. Wire: `correlationId uint32, code uint16,
/// properties [string, string]`. A missing map is read as empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerPropertiesResponse {
    pub correlation_id: u32,
    pub code: ResponseCode,
    /// Server properties: `product`, `version`, `cluster_name`, `platform`, ...
    pub properties: Vec<(String, String)>,
}

impl Body for PeerPropertiesResponse {
    fn encode_body(&self, buf: &mut BytesMut) -> Result<(), EncodeError> {
        buf.put_u32(self.correlation_id);
        buf.put_u16(self.code.as_u16());
        put_string_map(buf, &self.properties)
    }
    fn decode_body(r: &mut Reader<'_>, _: &Bytes) -> Result<Self, DecodeError> {
        Ok(PeerPropertiesResponse {
            correlation_id: r.u32()?,
            code: code(r)?,
            properties: optional_map(r)?,
        })
    }
}

/// SaslHandshake request. Wire: `correlationId uint32` only (the spec's "Mechanism" field
/// does not exist).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SaslHandshake {
    pub correlation_id: u32,
}

impl Body for SaslHandshake {
    fn encode_body(&self, buf: &mut BytesMut) -> Result<(), EncodeError> {
        buf.put_u32(self.correlation_id);
        Ok(())
    }
    fn decode_body(r: &mut Reader<'_>, _: &Bytes) -> Result<Self, DecodeError> {
        Ok(SaslHandshake {
            correlation_id: r.u32()?,
        })
    }
}

/// SaslHandshake response. Wire: `correlationId uint32, code uint16, mechanisms [string]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaslHandshakeResponse {
    pub correlation_id: u32,
    pub code: ResponseCode,
    /// Offered mechanisms, e.g. `PLAIN`, `AMQPLAIN`, `EXTERNAL`, `ANONYMOUS`.
    pub mechanisms: Vec<String>,
}

impl Body for SaslHandshakeResponse {
    fn encode_body(&self, buf: &mut BytesMut) -> Result<(), EncodeError> {
        buf.put_u32(self.correlation_id);
        buf.put_u16(self.code.as_u16());
        put_string_array(buf, &self.mechanisms)
    }
    fn decode_body(r: &mut Reader<'_>, _: &Bytes) -> Result<Self, DecodeError> {
        Ok(SaslHandshakeResponse {
            correlation_id: r.u32()?,
            code: code(r)?,
            mechanisms: r.string_array()?,
        })
    }
}

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
        let code = code(r)?;
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
}

/// Tune, both the server's proposal (`0x0014`) and the client's answer (`0x8014`).
/// Wire: `frameMax uint32, heartbeat uint32` (seconds); no correlation id; 0 = unlimited/off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tune {
    pub frame_max: u32,
    pub heartbeat: u32,
}

impl Body for Tune {
    fn encode_body(&self, buf: &mut BytesMut) -> Result<(), EncodeError> {
        buf.put_u32(self.frame_max);
        buf.put_u32(self.heartbeat);
        Ok(())
    }
    fn decode_body(r: &mut Reader<'_>, _: &Bytes) -> Result<Self, DecodeError> {
        Ok(Tune {
            frame_max: r.u32()?,
            heartbeat: r.u32()?,
        })
    }
}

/// Open request. Wire: `correlationId uint32, virtualHost string`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Open {
    pub correlation_id: u32,
    pub virtual_host: String,
}

impl Body for Open {
    fn encode_body(&self, buf: &mut BytesMut) -> Result<(), EncodeError> {
        buf.put_u32(self.correlation_id);
        put_str(buf, &self.virtual_host)
    }
    fn decode_body(r: &mut Reader<'_>, _: &Bytes) -> Result<Self, DecodeError> {
        Ok(Open {
            correlation_id: r.u32()?,
            virtual_host: r.string()?,
        })
    }
}

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

impl Body for OpenResponse {
    fn encode_body(&self, buf: &mut BytesMut) -> Result<(), EncodeError> {
        buf.put_u32(self.correlation_id);
        buf.put_u16(self.code.as_u16());
        put_optional_map(buf, &self.properties)
    }
    fn decode_body(r: &mut Reader<'_>, _: &Bytes) -> Result<Self, DecodeError> {
        Ok(OpenResponse {
            correlation_id: r.u32()?,
            code: code(r)?,
            properties: optional_map(r)?,
        })
    }
}

/// Close request, sent by either side. Wire: `correlationId uint32, closingCode uint16,
/// reason string`. The peer answers with a [`super::CodeResponse`] (`0x8016`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Close {
    pub correlation_id: u32,
    pub code: ResponseCode,
    pub reason: String,
}

impl Body for Close {
    fn encode_body(&self, buf: &mut BytesMut) -> Result<(), EncodeError> {
        buf.put_u32(self.correlation_id);
        buf.put_u16(self.code.as_u16());
        put_str(buf, &self.reason)
    }
    fn decode_body(r: &mut Reader<'_>, _: &Bytes) -> Result<Self, DecodeError> {
        Ok(Close {
            correlation_id: r.u32()?,
            code: code(r)?,
            reason: r.string()?,
        })
    }
}

/// One command's version range in ExchangeCommandVersions. Wire: `key uint16,
/// minVersion uint16, maxVersion uint16`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CommandVersion {
    pub key: u16,
    pub min_version: u16,
    pub max_version: u16,
}

fn put_command_versions(buf: &mut BytesMut, cmds: &[CommandVersion]) -> Result<(), EncodeError> {
    put_array_len(buf, cmds.len())?;
    for c in cmds {
        buf.put_u16(c.key);
        buf.put_u16(c.min_version);
        buf.put_u16(c.max_version);
    }
    Ok(())
}

fn command_versions(r: &mut Reader<'_>) -> Result<Vec<CommandVersion>, DecodeError> {
    let n = r.array_len(6)?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(CommandVersion {
            key: r.u16()?,
            min_version: r.u16()?,
            max_version: r.u16()?,
        });
    }
    Ok(out)
}

/// ExchangeCommandVersions request (3.11+): the commands the client can handle.
/// Wire: `correlationId uint32, [CommandVersion]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExchangeCommandVersions {
    pub correlation_id: u32,
    pub commands: Vec<CommandVersion>,
}

impl Body for ExchangeCommandVersions {
    fn encode_body(&self, buf: &mut BytesMut) -> Result<(), EncodeError> {
        buf.put_u32(self.correlation_id);
        put_command_versions(buf, &self.commands)
    }
    fn decode_body(r: &mut Reader<'_>, _: &Bytes) -> Result<Self, DecodeError> {
        Ok(ExchangeCommandVersions {
            correlation_id: r.u32()?,
            commands: command_versions(r)?,
        })
    }
}

/// ExchangeCommandVersions response: the commands the server accepts.
/// Wire: `correlationId uint32, code uint16, [CommandVersion]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExchangeCommandVersionsResponse {
    pub correlation_id: u32,
    pub code: ResponseCode,
    pub commands: Vec<CommandVersion>,
}

impl Body for ExchangeCommandVersionsResponse {
    fn encode_body(&self, buf: &mut BytesMut) -> Result<(), EncodeError> {
        buf.put_u32(self.correlation_id);
        buf.put_u16(self.code.as_u16());
        put_command_versions(buf, &self.commands)
    }
    fn decode_body(r: &mut Reader<'_>, _: &Bytes) -> Result<Self, DecodeError> {
        Ok(ExchangeCommandVersionsResponse {
            correlation_id: r.u32()?,
            code: code(r)?,
            commands: command_versions(r)?,
        })
    }
}
