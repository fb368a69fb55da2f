//! Codec errors. Decoding untrusted bytes yields a [`DecodeError`], never a panic.

use thiserror::Error;

/// Why a received frame, chunk or message could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    #[error("truncated input: needed {needed} bytes, {available} available")]
    Truncated { needed: usize, available: usize },
    #[error("invalid length {0}")]
    InvalidLength(i64),
    #[error("null where a value is required")]
    UnexpectedNull,
    #[error("invalid UTF-8 in a string")]
    InvalidUtf8,
    #[error("unknown command key 0x{0:04x}")]
    UnknownKey(u16),
    #[error("unsupported version {version} of command 0x{key:04x}")]
    UnsupportedVersion { key: u16, version: u16 },
    #[error("{0} trailing bytes after the frame body")]
    TrailingBytes(usize),
    #[error("invalid value: {0}")]
    InvalidValue(&'static str),
    #[error("checksum mismatch: header says {expected:#010x}, data gives {actual:#010x}")]
    Crc { expected: u32, actual: u32 },
    #[error("decompression failed: {0}")]
    Decompress(String),
    #[error("frame size {size} exceeds the limit of {max} bytes")]
    FrameTooLarge { size: u32, max: u32 },
}

/// Why a value could not be encoded onto the wire.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EncodeError {
    #[error("string of {0} bytes exceeds the protocol's 32767-byte limit")]
    StringTooLong(usize),
    #[error("byte string of {0} bytes exceeds the protocol's 2^31-1 limit")]
    BytesTooLong(usize),
    #[error("{0} elements exceed the protocol's array limit")]
    TooManyElements(usize),
    #[error("frame of {0} bytes exceeds the protocol's 2^32-1 limit")]
    FrameTooLarge(usize),
    #[error("invalid value: {0}")]
    InvalidValue(&'static str),
    #[error("compression failed: {0}")]
    Compress(String),
}
