//! The AMQP 1.0 type system (OASIS AMQP 1.0 part 1, "Types"): [`Value`] and its codec.
//!
//! Decoding borrows strings, symbols and binaries from the input (`Cow::Borrowed`) and only
//! allocates for lists, maps and arrays, never by an untrusted count: a compound's element count
//! must fit in the bytes its size field covers, and nesting is limited to [`MAX_DEPTH`].
//! Encoding picks the compact encodings other clients use (`smalluint`, `str8`, `list8`, …).

use std::borrow::Cow;

use bytes::{BufMut, BytesMut};

use crate::protocol::error::{DecodeError, EncodeError};
use crate::protocol::wire::Reader;

/// Deepest nesting of compound and described values accepted, when decoding and encoding
/// (bounds recursion against hostile input).
pub const MAX_DEPTH: usize = 32;

/// AMQP 1.0 format codes.
pub mod code {
    /// Described type constructor: descriptor then value.
    pub const DESCRIBED: u8 = 0x00;
    /// `null`.
    pub const NULL: u8 = 0x40;
    /// `boolean` with a one-byte payload (0 or 1).
    pub const BOOLEAN: u8 = 0x56;
    /// `boolean` true, no payload.
    pub const TRUE: u8 = 0x41;
    /// `boolean` false, no payload.
    pub const FALSE: u8 = 0x42;
    /// `ubyte`.
    pub const UBYTE: u8 = 0x50;
    /// `ushort`.
    pub const USHORT: u8 = 0x60;
    /// `uint`, 4 bytes.
    pub const UINT: u8 = 0x70;
    /// `uint` in one byte.
    pub const SMALLUINT: u8 = 0x52;
    /// `uint` 0, no payload.
    pub const UINT0: u8 = 0x43;
    /// `ulong`, 8 bytes.
    pub const ULONG: u8 = 0x80;
    /// `ulong` in one byte.
    pub const SMALLULONG: u8 = 0x53;
    /// `ulong` 0, no payload.
    pub const ULONG0: u8 = 0x44;
    /// `byte`.
    pub const BYTE: u8 = 0x51;
    /// `short`.
    pub const SHORT: u8 = 0x61;
    /// `int`, 4 bytes.
    pub const INT: u8 = 0x71;
    /// `int` in one signed byte.
    pub const SMALLINT: u8 = 0x54;
    /// `long`, 8 bytes.
    pub const LONG: u8 = 0x81;
    /// `long` in one signed byte.
    pub const SMALLLONG: u8 = 0x55;
    /// `float`.
    pub const FLOAT: u8 = 0x72;
    /// `double`.
    pub const DOUBLE: u8 = 0x82;
    /// `decimal32`.
    pub const DECIMAL32: u8 = 0x74;
    /// `decimal64`.
    pub const DECIMAL64: u8 = 0x84;
    /// `decimal128`.
    pub const DECIMAL128: u8 = 0x94;
    /// `char` (UTF-32).
    pub const CHAR: u8 = 0x73;
    /// `timestamp` (ms since the epoch).
    pub const TIMESTAMP: u8 = 0x83;
    /// `uuid`.
    pub const UUID: u8 = 0x98;
    /// `binary`, 1-byte length.
    pub const VBIN8: u8 = 0xa0;
    /// `binary`, 4-byte length.
    pub const VBIN32: u8 = 0xb0;
    /// `string`, 1-byte length.
    pub const STR8: u8 = 0xa1;
    /// `string`, 4-byte length.
    pub const STR32: u8 = 0xb1;
    /// `symbol`, 1-byte length.
    pub const SYM8: u8 = 0xa3;
    /// `symbol`, 4-byte length.
    pub const SYM32: u8 = 0xb3;
    /// empty `list`.
    pub const LIST0: u8 = 0x45;
    /// `list`, 1-byte size and count.
    pub const LIST8: u8 = 0xc0;
    /// `list`, 4-byte size and count.
    pub const LIST32: u8 = 0xd0;
    /// `map`, 1-byte size and count.
    pub const MAP8: u8 = 0xc1;
    /// `map`, 4-byte size and count.
    pub const MAP32: u8 = 0xd1;
    /// `array`, 1-byte size and count.
    pub const ARRAY8: u8 = 0xe0;
    /// `array`, 4-byte size and count.
    pub const ARRAY32: u8 = 0xf0;
}

use code::*;

/// An AMQP 1.0 value. Strings, symbols and binaries borrow from the decoded input; use
/// [`Value::into_owned`] to detach them.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Value<'a> {
    /// `null`.
    #[default]
    Null,
    /// `boolean`.
    Bool(bool),
    /// `ubyte`.
    Ubyte(u8),
    /// `ushort`.
    Ushort(u16),
    /// `uint`.
    Uint(u32),
    /// `ulong`.
    Ulong(u64),
    /// `byte`.
    Byte(i8),
    /// `short`.
    Short(i16),
    /// `int`.
    Int(i32),
    /// `long`.
    Long(i64),
    /// `float` (IEEE 754 binary32).
    Float(f32),
    /// `double` (IEEE 754 binary64).
    Double(f64),
    /// `decimal32`, raw IEEE 754 decimal32 bytes.
    Decimal32([u8; 4]),
    /// `decimal64`, raw IEEE 754 decimal64 bytes.
    Decimal64([u8; 8]),
    /// `decimal128`, raw IEEE 754 decimal128 bytes.
    Decimal128([u8; 16]),
    /// `char` (a UTF-32 code point).
    Char(char),
    /// `timestamp`: milliseconds since the Unix epoch.
    Timestamp(i64),
    /// `uuid`, 16 bytes in network order.
    Uuid([u8; 16]),
    /// `binary`.
    Binary(Cow<'a, [u8]>),
    /// `string` (UTF-8).
    String(Cow<'a, str>),
    /// `symbol` (ASCII by the spec; any UTF-8 is accepted).
    Symbol(Cow<'a, str>),
    /// `list` of values of any types.
    List(Vec<Value<'a>>),
    /// `map`, pairs in wire order (duplicates are kept).
    Map(Vec<(Value<'a>, Value<'a>)>),
    /// `array`: values of one type. Encoding fails if the elements differ in type (or, when
    /// described, in descriptor).
    Array(Vec<Value<'a>>),
    /// A described value: `(descriptor, value)`.
    Described(Box<(Value<'a>, Value<'a>)>),
}

impl<'a> Value<'a> {
    /// Decodes one value from the start of `input`; returns it and the bytes it took.
    pub fn decode(input: &'a [u8]) -> Result<(Value<'a>, usize), DecodeError> {
        let mut r = Reader::new(input);
        let v = decode_value(&mut r)?;
        Ok((v, r.position()))
    }

    /// Decodes a value that must span all of `input`.
    pub fn decode_exact(input: &'a [u8]) -> Result<Value<'a>, DecodeError> {
        let mut r = Reader::new(input);
        let v = decode_value(&mut r)?;
        r.finish()?;
        Ok(v)
    }

    /// Appends the encoding of this value to `out`.
    pub fn encode(&self, out: &mut BytesMut) -> Result<(), EncodeError> {
        encode_at(self, out, 0)
    }

    /// The encoding of this value.
    pub fn to_bytes(&self) -> Result<bytes::Bytes, EncodeError> {
        let mut out = BytesMut::new();
        self.encode(&mut out)?;
        Ok(out.freeze())
    }

    /// Detaches the value from the input it borrows from.
    pub fn into_owned(self) -> Value<'static> {
        match self {
            Value::Null => Value::Null,
            Value::Bool(v) => Value::Bool(v),
            Value::Ubyte(v) => Value::Ubyte(v),
            Value::Ushort(v) => Value::Ushort(v),
            Value::Uint(v) => Value::Uint(v),
            Value::Ulong(v) => Value::Ulong(v),
            Value::Byte(v) => Value::Byte(v),
            Value::Short(v) => Value::Short(v),
            Value::Int(v) => Value::Int(v),
            Value::Long(v) => Value::Long(v),
            Value::Float(v) => Value::Float(v),
            Value::Double(v) => Value::Double(v),
            Value::Decimal32(v) => Value::Decimal32(v),
            Value::Decimal64(v) => Value::Decimal64(v),
            Value::Decimal128(v) => Value::Decimal128(v),
            Value::Char(v) => Value::Char(v),
            Value::Timestamp(v) => Value::Timestamp(v),
            Value::Uuid(v) => Value::Uuid(v),
            Value::Binary(v) => Value::Binary(Cow::Owned(v.into_owned())),
            Value::String(v) => Value::String(Cow::Owned(v.into_owned())),
            Value::Symbol(v) => Value::Symbol(Cow::Owned(v.into_owned())),
            Value::List(v) => Value::List(v.into_iter().map(Value::into_owned).collect()),
            Value::Map(v) => Value::Map(
                v.into_iter()
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect(),
            ),
            Value::Array(v) => Value::Array(v.into_iter().map(Value::into_owned).collect()),
            Value::Described(b) => {
                let (d, v) = *b;
                Value::Described(Box::new((d.into_owned(), v.into_owned())))
            }
        }
    }

    /// Whether this is `null`.
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// The text of a string or symbol.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) | Value::Symbol(s) => Some(s),
            _ => None,
        }
    }

    /// The bytes of a binary.
    pub fn as_binary(&self) -> Option<&[u8]> {
        match self {
            Value::Binary(b) => Some(b),
            _ => None,
        }
    }

    /// A boolean.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// Any integer that is non-negative, as `u64`.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Value::Ubyte(v) => Some(u64::from(v)),
            Value::Ushort(v) => Some(u64::from(v)),
            Value::Uint(v) => Some(u64::from(v)),
            Value::Ulong(v) => Some(v),
            Value::Byte(v) => u64::try_from(v).ok(),
            Value::Short(v) => u64::try_from(v).ok(),
            Value::Int(v) => u64::try_from(v).ok(),
            Value::Long(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    /// Any integer that fits, as `i64` (timestamps included).
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            Value::Ubyte(v) => Some(i64::from(v)),
            Value::Ushort(v) => Some(i64::from(v)),
            Value::Uint(v) => Some(i64::from(v)),
            Value::Ulong(v) => i64::try_from(v).ok(),
            Value::Byte(v) => Some(i64::from(v)),
            Value::Short(v) => Some(i64::from(v)),
            Value::Int(v) => Some(i64::from(v)),
            Value::Long(v) | Value::Timestamp(v) => Some(v),
            _ => None,
        }
    }

    /// The AMQP name of the value's type ("string", "ulong", …).
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Ubyte(_) => "ubyte",
            Value::Ushort(_) => "ushort",
            Value::Uint(_) => "uint",
            Value::Ulong(_) => "ulong",
            Value::Byte(_) => "byte",
            Value::Short(_) => "short",
            Value::Int(_) => "int",
            Value::Long(_) => "long",
            Value::Float(_) => "float",
            Value::Double(_) => "double",
            Value::Decimal32(_) => "decimal32",
            Value::Decimal64(_) => "decimal64",
            Value::Decimal128(_) => "decimal128",
            Value::Char(_) => "char",
            Value::Timestamp(_) => "timestamp",
            Value::Uuid(_) => "uuid",
            Value::Binary(_) => "binary",
            Value::String(_) => "string",
            Value::Symbol(_) => "symbol",
            Value::List(_) => "list",
            Value::Map(_) => "map",
            Value::Array(_) => "array",
            Value::Described(_) => "described",
        }
    }
}

macro_rules! from_scalar {
    ($($t:ty => $variant:ident),* $(,)?) => {
        $(impl From<$t> for Value<'_> {
            fn from(v: $t) -> Self {
                Value::$variant(v)
            }
        })*
    };
}

from_scalar!(
    bool => Bool, u8 => Ubyte, u16 => Ushort, u32 => Uint, u64 => Ulong, i8 => Byte,
    i16 => Short, i32 => Int, i64 => Long, f32 => Float, f64 => Double, char => Char,
);

impl<'a> From<&'a str> for Value<'a> {
    fn from(v: &'a str) -> Self {
        Value::String(Cow::Borrowed(v))
    }
}

impl From<String> for Value<'_> {
    fn from(v: String) -> Self {
        Value::String(Cow::Owned(v))
    }
}

impl<'a> From<&'a [u8]> for Value<'a> {
    fn from(v: &'a [u8]) -> Self {
        Value::Binary(Cow::Borrowed(v))
    }
}

impl From<Vec<u8>> for Value<'_> {
    fn from(v: Vec<u8>) -> Self {
        Value::Binary(Cow::Owned(v))
    }
}

// ---------------------------------------------------------------------------------------------
// Decoding

/// Decodes one value at the reader's position.
pub fn decode_value<'a>(r: &mut Reader<'a>) -> Result<Value<'a>, DecodeError> {
    read::<true>(r, 0)
}

/// Validates and skips one value at the reader's position without allocating. Accepts exactly
/// what [`decode_value`] accepts.
pub fn skip_value(r: &mut Reader<'_>) -> Result<(), DecodeError> {
    read::<false>(r, 0).map(drop)
}

/// Validates (as [`skip_value`]) one value starting at depth `depth` and returns its encoding.
pub(crate) fn skip_at<'a>(r: &mut Reader<'a>, depth: usize) -> Result<&'a [u8], DecodeError> {
    let rest = r.rest();
    read::<false>(r, depth)?;
    let used = rest.len() - r.rest().len();
    rest.get(..used)
        .ok_or(DecodeError::InvalidValue("AMQP value outside its input"))
}

/// Decodes one value at nesting depth `depth`.
pub(crate) fn decode_at<'a>(r: &mut Reader<'a>, depth: usize) -> Result<Value<'a>, DecodeError> {
    read::<true>(r, depth)
}

fn enter(depth: usize) -> Result<usize, DecodeError> {
    let d = depth + 1;
    if d > MAX_DEPTH {
        Err(DecodeError::InvalidValue("AMQP value nested too deeply"))
    } else {
        Ok(d)
    }
}

fn utf8(b: &[u8]) -> Result<&str, DecodeError> {
    std::str::from_utf8(b).map_err(|_| DecodeError::InvalidUtf8)
}

fn fixed<const N: usize>(r: &mut Reader<'_>) -> Result<[u8; N], DecodeError> {
    let s = r.take(N)?;
    let mut a = [0u8; N];
    a.copy_from_slice(s);
    Ok(a)
}

/// Smallest encoded size of one array element with constructor `code` (`None` for codes that
/// are not AMQP types or cannot be array element constructors).
fn min_width(code: u8) -> Option<usize> {
    Some(match code {
        NULL | TRUE | FALSE | UINT0 | ULONG0 | LIST0 => 0,
        BOOLEAN | UBYTE | BYTE | SMALLUINT | SMALLULONG | SMALLINT | SMALLLONG => 1,
        USHORT | SHORT => 2,
        UINT | INT | FLOAT | DECIMAL32 | CHAR => 4,
        ULONG | LONG | DOUBLE | DECIMAL64 | TIMESTAMP => 8,
        DECIMAL128 | UUID => 16,
        VBIN8 | STR8 | SYM8 => 1,
        VBIN32 | STR32 | SYM32 => 4,
        LIST8 | MAP8 => 2,
        LIST32 | MAP32 => 8,
        ARRAY8 => 3,
        ARRAY32 => 9,
        _ => return None,
    })
}

/// Reads a value. With `BUILD = false` nothing is allocated: compounds come back empty (only
/// their validity matters) and scalars borrow as usual.
fn read<'a, const BUILD: bool>(r: &mut Reader<'a>, depth: usize) -> Result<Value<'a>, DecodeError> {
    let code = r.u8()?;
    if code == DESCRIBED {
        let d = enter(depth)?;
        let descriptor = read::<BUILD>(r, d)?;
        let value = read::<BUILD>(r, d)?;
        return Ok(if BUILD {
            Value::Described(Box::new((descriptor, value)))
        } else {
            Value::Null
        });
    }
    read_payload::<BUILD>(r, code, depth)
}

/// Reads the part of a value after its constructor `code`.
fn read_payload<'a, const BUILD: bool>(
    r: &mut Reader<'a>,
    code: u8,
    depth: usize,
) -> Result<Value<'a>, DecodeError> {
    Ok(match code {
        NULL => Value::Null,
        TRUE => Value::Bool(true),
        FALSE => Value::Bool(false),
        BOOLEAN => match r.u8()? {
            0 => Value::Bool(false),
            1 => Value::Bool(true),
            _ => return Err(DecodeError::InvalidValue("AMQP boolean is not 0 or 1")),
        },
        UBYTE => Value::Ubyte(r.u8()?),
        USHORT => Value::Ushort(r.u16()?),
        UINT => Value::Uint(r.u32()?),
        SMALLUINT => Value::Uint(u32::from(r.u8()?)),
        UINT0 => Value::Uint(0),
        ULONG => Value::Ulong(r.u64()?),
        SMALLULONG => Value::Ulong(u64::from(r.u8()?)),
        ULONG0 => Value::Ulong(0),
        BYTE => Value::Byte(r.u8()? as i8),
        SHORT => Value::Short(r.i16()?),
        INT => Value::Int(r.i32()?),
        SMALLINT => Value::Int(i32::from(r.u8()? as i8)),
        LONG => Value::Long(r.i64()?),
        SMALLLONG => Value::Long(i64::from(r.u8()? as i8)),
        FLOAT => Value::Float(f32::from_bits(r.u32()?)),
        DOUBLE => Value::Double(f64::from_bits(r.u64()?)),
        DECIMAL32 => Value::Decimal32(fixed(r)?),
        DECIMAL64 => Value::Decimal64(fixed(r)?),
        DECIMAL128 => Value::Decimal128(fixed(r)?),
        CHAR => Value::Char(
            char::from_u32(r.u32()?).ok_or(DecodeError::InvalidValue("invalid AMQP char"))?,
        ),
        TIMESTAMP => Value::Timestamp(r.i64()?),
        UUID => Value::Uuid(fixed(r)?),
        VBIN8 | VBIN32 | STR8 | STR32 | SYM8 | SYM32 => {
            let len = if code & 0xf0 == 0xa0 {
                usize::from(r.u8()?)
            } else {
                r.u32()? as usize
            };
            let raw = r.take(len)?;
            match code & 0x0f {
                0x00 => Value::Binary(Cow::Borrowed(raw)),
                0x01 => Value::String(Cow::Borrowed(utf8(raw)?)),
                _ => Value::Symbol(Cow::Borrowed(utf8(raw)?)),
            }
        }
        LIST0 => Value::List(Vec::new()),
        LIST8 | LIST32 | MAP8 | MAP32 => {
            let wide = code & 0xf0 == 0xd0;
            let size = if wide {
                r.u32()? as usize
            } else {
                usize::from(r.u8()?)
            };
            if size > r.remaining() {
                return Err(DecodeError::Truncated {
                    needed: size,
                    available: r.remaining(),
                });
            }
            let start = r.position();
            let count = if wide {
                r.u32()? as usize
            } else {
                usize::from(r.u8()?)
            };
            // Every element takes at least its constructor byte.
            if count > size || count > r.remaining() {
                return Err(DecodeError::InvalidValue(
                    "AMQP compound count exceeds its size",
                ));
            }
            let d = enter(depth)?;
            // Elements are read by count, then their extent is checked against the size.
            let v = if code & 0x0f == 0x01 {
                if count % 2 != 0 {
                    return Err(DecodeError::InvalidValue(
                        "AMQP map with an odd number of elements",
                    ));
                }
                let mut pairs = Vec::with_capacity(if BUILD { count / 2 } else { 0 });
                for _ in 0..count / 2 {
                    let k = read::<BUILD>(r, d)?;
                    let v = read::<BUILD>(r, d)?;
                    if BUILD {
                        pairs.push((k, v));
                    }
                }
                Value::Map(pairs)
            } else {
                let mut items = Vec::with_capacity(if BUILD { count } else { 0 });
                for _ in 0..count {
                    let v = read::<BUILD>(r, d)?;
                    if BUILD {
                        items.push(v);
                    }
                }
                Value::List(items)
            };
            let used = r.position() - start;
            // The rabbitmq-stream-dotnet-client 1.0.x wrote list32/map32 sizes without the
            // 4 count bytes (fixed in its PR #211; its readers still accept them, as do we).
            let legacy_dotnet = wide && used == size + 4;
            if used != size && !legacy_dotnet {
                return Err(DecodeError::InvalidValue(
                    "AMQP compound size does not match its elements",
                ));
            }
            v
        }
        ARRAY8 | ARRAY32 => {
            let wide = code == ARRAY32;
            let size = if wide {
                r.u32()? as usize
            } else {
                usize::from(r.u8()?)
            };
            let mut sub = Reader::new(r.take(size)?);
            let count = if wide {
                sub.u32()? as usize
            } else {
                usize::from(sub.u8()?)
            };
            let d = enter(depth)?;
            let mut elem = sub.u8()?;
            let descriptor = if elem == DESCRIBED {
                let desc = read::<BUILD>(&mut sub, d)?;
                elem = sub.u8()?;
                Some(desc)
            } else {
                None
            };
            let min = min_width(elem).ok_or(DecodeError::InvalidValue(
                "invalid AMQP array element constructor",
            ))?;
            // Zero-width elements (null, true, uint0, list0, …) still count against the array's
            // size so that a few bytes cannot claim billions of elements.
            let needed = count.saturating_mul(min.max(1));
            let available = if min == 0 { size } else { sub.remaining() };
            if needed > available {
                return Err(DecodeError::InvalidValue(
                    "AMQP array count exceeds its size",
                ));
            }
            let mut items = Vec::with_capacity(if BUILD { count } else { 0 });
            for _ in 0..count {
                let v = read_payload::<BUILD>(&mut sub, elem, d)?;
                if BUILD {
                    items.push(match &descriptor {
                        Some(desc) => Value::Described(Box::new((desc.clone(), v))),
                        None => v,
                    });
                }
            }
            if sub.remaining() != 0 {
                return Err(DecodeError::InvalidValue(
                    "AMQP array size exceeds its elements",
                ));
            }
            Value::Array(items)
        }
        _ => return Err(DecodeError::InvalidValue("unknown AMQP format code")),
    })
}

// ---------------------------------------------------------------------------------------------
// Encoding

fn enter_enc(depth: usize) -> Result<usize, EncodeError> {
    let d = depth + 1;
    if d > MAX_DEPTH {
        Err(EncodeError::InvalidValue("AMQP value nested too deeply"))
    } else {
        Ok(d)
    }
}

fn len32(len: usize) -> Result<u32, EncodeError> {
    u32::try_from(len).map_err(|_| EncodeError::BytesTooLong(len))
}

/// Encodes `v` (constructor included) at nesting depth `depth`.
pub(crate) fn encode_at(
    v: &Value<'_>,
    out: &mut BytesMut,
    depth: usize,
) -> Result<(), EncodeError> {
    match v {
        Value::Null => out.put_u8(NULL),
        Value::Bool(b) => out.put_u8(if *b { TRUE } else { FALSE }),
        Value::Ubyte(x) => {
            out.put_u8(UBYTE);
            out.put_u8(*x);
        }
        Value::Ushort(x) => {
            out.put_u8(USHORT);
            out.put_u16(*x);
        }
        Value::Uint(0) => out.put_u8(UINT0),
        Value::Uint(x) => match u8::try_from(*x) {
            Ok(small) => {
                out.put_u8(SMALLUINT);
                out.put_u8(small);
            }
            Err(_) => {
                out.put_u8(UINT);
                out.put_u32(*x);
            }
        },
        Value::Ulong(0) => out.put_u8(ULONG0),
        Value::Ulong(x) => match u8::try_from(*x) {
            Ok(small) => {
                out.put_u8(SMALLULONG);
                out.put_u8(small);
            }
            Err(_) => {
                out.put_u8(ULONG);
                out.put_u64(*x);
            }
        },
        Value::Byte(x) => {
            out.put_u8(BYTE);
            out.put_i8(*x);
        }
        Value::Short(x) => {
            out.put_u8(SHORT);
            out.put_i16(*x);
        }
        Value::Int(x) => match i8::try_from(*x) {
            Ok(small) => {
                out.put_u8(SMALLINT);
                out.put_i8(small);
            }
            Err(_) => {
                out.put_u8(INT);
                out.put_i32(*x);
            }
        },
        Value::Long(x) => match i8::try_from(*x) {
            Ok(small) => {
                out.put_u8(SMALLLONG);
                out.put_i8(small);
            }
            Err(_) => {
                out.put_u8(LONG);
                out.put_i64(*x);
            }
        },
        Value::Binary(b) => put_variable(out, VBIN8, VBIN32, b)?,
        Value::String(s) => put_variable(out, STR8, STR32, s.as_bytes())?,
        Value::Symbol(s) => put_variable(out, SYM8, SYM32, s.as_bytes())?,
        Value::List(items) if items.is_empty() => out.put_u8(LIST0),
        Value::List(items) => {
            let d = enter_enc(depth)?;
            put_compound(out, LIST8, LIST32, items.len(), |out| {
                items.iter().try_for_each(|i| encode_at(i, out, d))
            })?;
        }
        Value::Map(pairs) => {
            let d = enter_enc(depth)?;
            let count = pairs.len().saturating_mul(2);
            put_compound(out, MAP8, MAP32, count, |out| {
                pairs.iter().try_for_each(|(k, v)| {
                    encode_at(k, out, d)?;
                    encode_at(v, out, d)
                })
            })?;
        }
        Value::Array(items) => put_array(out, items, depth)?,
        Value::Described(b) => {
            let d = enter_enc(depth)?;
            out.put_u8(DESCRIBED);
            encode_at(&b.0, out, d)?;
            encode_at(&b.1, out, d)?;
        }
        // Fixed-width scalars encode the same inside and outside arrays.
        _ => {
            out.put_u8(wide_code(v));
            put_wide_payload(v, out, depth)?;
        }
    }
    Ok(())
}

pub(super) fn put_variable(
    out: &mut BytesMut,
    small: u8,
    wide: u8,
    b: &[u8],
) -> Result<(), EncodeError> {
    match u8::try_from(b.len()) {
        Ok(n) => {
            out.put_u8(small);
            out.put_u8(n);
        }
        Err(_) => {
            out.put_u8(wide);
            out.put_u32(len32(b.len())?);
        }
    }
    out.put_slice(b);
    Ok(())
}

/// Writes a list or map: the 32-bit form is reserved, the elements written, then the header
/// is filled in — or the elements moved down into the 8-bit form when they fit (at most 255
/// bytes are ever moved).
pub(super) fn put_compound<F>(
    out: &mut BytesMut,
    small: u8,
    wide: u8,
    count: usize,
    body: F,
) -> Result<(), EncodeError>
where
    F: FnOnce(&mut BytesMut) -> Result<(), EncodeError>,
{
    let count32 = u32::try_from(count).map_err(|_| EncodeError::TooManyElements(count))?;
    let start = out.len();
    out.put_u8(wide);
    out.put_u32(0);
    out.put_u32(count32);
    body(out)?;
    finish_compound(out, start, small, count32)
}

fn finish_compound(
    out: &mut BytesMut,
    start: usize,
    small: u8,
    count: u32,
) -> Result<(), EncodeError> {
    let content = out.len() - start - 9;
    match (u8::try_from(content + 1), u8::try_from(count)) {
        (Ok(size8), Ok(count8)) => {
            out.copy_within(start + 9..start + 9 + content, start + 3);
            out[start] = small;
            out[start + 1] = size8;
            out[start + 2] = count8;
            out.truncate(start + 3 + content);
        }
        _ => {
            let size = len32(content + 4)?;
            out[start + 1..start + 5].copy_from_slice(&size.to_be_bytes());
        }
    }
    Ok(())
}

/// The single constructor used for `v` as an array element (and for fixed-width scalars
/// everywhere).
fn wide_code(v: &Value<'_>) -> u8 {
    match v {
        Value::Null => NULL,
        Value::Bool(_) => BOOLEAN,
        Value::Ubyte(_) => UBYTE,
        Value::Ushort(_) => USHORT,
        Value::Uint(_) => UINT,
        Value::Ulong(_) => ULONG,
        Value::Byte(_) => BYTE,
        Value::Short(_) => SHORT,
        Value::Int(_) => INT,
        Value::Long(_) => LONG,
        Value::Float(_) => FLOAT,
        Value::Double(_) => DOUBLE,
        Value::Decimal32(_) => DECIMAL32,
        Value::Decimal64(_) => DECIMAL64,
        Value::Decimal128(_) => DECIMAL128,
        Value::Char(_) => CHAR,
        Value::Timestamp(_) => TIMESTAMP,
        Value::Uuid(_) => UUID,
        Value::Binary(_) => VBIN32,
        Value::String(_) => STR32,
        Value::Symbol(_) => SYM32,
        Value::List(_) => LIST32,
        Value::Map(_) => MAP32,
        Value::Array(_) => ARRAY32,
        Value::Described(_) => DESCRIBED,
    }
}

/// Writes `v` without its constructor, in the form of [`wide_code`]`(v)`. `depth` is the depth
/// of the array holding it (compounds go one deeper, as when decoding).
fn put_wide_payload(v: &Value<'_>, out: &mut BytesMut, depth: usize) -> Result<(), EncodeError> {
    match v {
        Value::Null => {}
        Value::Bool(b) => out.put_u8(u8::from(*b)),
        Value::Ubyte(x) => out.put_u8(*x),
        Value::Ushort(x) => out.put_u16(*x),
        Value::Uint(x) => out.put_u32(*x),
        Value::Ulong(x) => out.put_u64(*x),
        Value::Byte(x) => out.put_i8(*x),
        Value::Short(x) => out.put_i16(*x),
        Value::Int(x) => out.put_i32(*x),
        Value::Long(x) | Value::Timestamp(x) => out.put_i64(*x),
        Value::Float(x) => out.put_u32(x.to_bits()),
        Value::Double(x) => out.put_u64(x.to_bits()),
        Value::Decimal32(x) => out.put_slice(x),
        Value::Decimal64(x) => out.put_slice(x),
        Value::Decimal128(x) | Value::Uuid(x) => out.put_slice(x),
        Value::Char(c) => out.put_u32(u32::from(*c)),
        Value::Binary(b) => {
            out.put_u32(len32(b.len())?);
            out.put_slice(b);
        }
        Value::String(s) | Value::Symbol(s) => {
            out.put_u32(len32(s.len())?);
            out.put_slice(s.as_bytes());
        }
        Value::List(items) => {
            let d = enter_enc(depth)?;
            put_wide_compound(out, items.len(), |out| {
                items.iter().try_for_each(|i| encode_at(i, out, d))
            })?;
        }
        Value::Map(pairs) => {
            let d = enter_enc(depth)?;
            put_wide_compound(out, pairs.len().saturating_mul(2), |out| {
                pairs.iter().try_for_each(|(k, v)| {
                    encode_at(k, out, d)?;
                    encode_at(v, out, d)
                })
            })?;
        }
        Value::Array(items) => put_array_body(out, items, depth, true)?,
        Value::Described(_) => {
            return Err(EncodeError::InvalidValue(
                "AMQP array of described values must share one descriptor",
            ));
        }
    }
    Ok(())
}

/// `size32 count32 elements` of a list or map inside an array.
fn put_wide_compound<F>(out: &mut BytesMut, count: usize, body: F) -> Result<(), EncodeError>
where
    F: FnOnce(&mut BytesMut) -> Result<(), EncodeError>,
{
    let count32 = u32::try_from(count).map_err(|_| EncodeError::TooManyElements(count))?;
    let start = out.len();
    out.put_u32(0);
    out.put_u32(count32);
    body(out)?;
    let size = len32(out.len() - start - 4)?;
    out[start..start + 4].copy_from_slice(&size.to_be_bytes());
    Ok(())
}

/// Whether `a` and `b` can be elements of the same array.
fn same_array_type(a: &Value<'_>, b: &Value<'_>) -> bool {
    match (a, b) {
        (Value::Described(x), Value::Described(y)) => {
            same_descriptor(&x.0, &y.0)
                && !matches!(x.1, Value::Described(_))
                && same_array_type(&x.1, &y.1)
        }
        _ => wide_code(a) == wide_code(b),
    }
}

/// Whether two descriptors are the same one, as the array's shared constructor writes it once:
/// equal, with floats compared by their bits (a NaN in a descriptor is not equal to itself,
/// yet the same descriptor; found by the chunk_amqp_decode fuzz target).
fn same_descriptor(a: &Value<'_>, b: &Value<'_>) -> bool {
    let all = |x: &[Value<'_>], y: &[Value<'_>]| {
        x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same_descriptor(x, y))
    };
    match (a, b) {
        (Value::Float(x), Value::Float(y)) => x.to_bits() == y.to_bits(),
        (Value::Double(x), Value::Double(y)) => x.to_bits() == y.to_bits(),
        (Value::List(x), Value::List(y)) | (Value::Array(x), Value::Array(y)) => all(x, y),
        (Value::Map(x), Value::Map(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y)
                    .all(|((xk, xv), (yk, yv))| same_descriptor(xk, yk) && same_descriptor(xv, yv))
        }
        (Value::Described(x), Value::Described(y)) => {
            same_descriptor(&x.0, &y.0) && same_descriptor(&x.1, &y.1)
        }
        _ => a == b,
    }
}

fn put_array(out: &mut BytesMut, items: &[Value<'_>], depth: usize) -> Result<(), EncodeError> {
    put_array_body(out, items, depth, false)
}

/// Writes an array: with its constructor (`0xe0`/`0xf0`) unless `in_array`, where the wide
/// form without constructor is required.
fn put_array_body(
    out: &mut BytesMut,
    items: &[Value<'_>],
    depth: usize,
    in_array: bool,
) -> Result<(), EncodeError> {
    let d = enter_enc(depth)?;
    let count =
        u32::try_from(items.len()).map_err(|_| EncodeError::TooManyElements(items.len()))?;
    let first = items.first();
    if let Some(f) = first {
        let payload = match f {
            Value::Described(b) => &b.1,
            other => other,
        };
        if matches!(payload, Value::Null) {
            // Arrays of null (described or not) carry no data per element; the decoder bounds
            // their count by their byte size, which such an array cannot satisfy.
            return Err(EncodeError::InvalidValue(
                "AMQP arrays of null are not supported",
            ));
        }
        if !items.iter().all(|i| same_array_type(f, i)) {
            return Err(EncodeError::InvalidValue(
                "AMQP array elements must share one type",
            ));
        }
    }
    let start = out.len();
    if !in_array {
        out.put_u8(ARRAY32);
    }
    let size_at = out.len();
    out.put_u32(0);
    out.put_u32(count);
    // Element constructor.
    match first {
        None => out.put_u8(NULL),
        Some(Value::Described(b)) => {
            out.put_u8(DESCRIBED);
            encode_at(&b.0, out, d)?;
            out.put_u8(wide_code(&b.1));
        }
        Some(f) => out.put_u8(wide_code(f)),
    }
    for item in items {
        match item {
            Value::Described(b) => put_wide_payload(&b.1, out, d)?,
            other => put_wide_payload(other, out, d)?,
        }
    }
    let content = out.len() - size_at - 8; // constructor + elements
    if in_array {
        let size = len32(content + 4)?;
        out[size_at..size_at + 4].copy_from_slice(&size.to_be_bytes());
        return Ok(());
    }
    match (u8::try_from(content + 1), u8::try_from(count)) {
        (Ok(size8), Ok(count8)) => {
            out.copy_within(size_at + 8..size_at + 8 + content, start + 3);
            out[start] = ARRAY8;
            out[start + 1] = size8;
            out[start + 2] = count8;
            out.truncate(start + 3 + content);
        }
        _ => {
            let size = len32(content + 4)?;
            out[size_at..size_at + 4].copy_from_slice(&size.to_be_bytes());
        }
    }
    Ok(())
}
