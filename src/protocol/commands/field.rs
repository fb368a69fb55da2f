//! The fields of command bodies, each written and read one way, and `body!`, which lists a
//! command's fields in wire order and derives its `Body` from that one list.

use bytes::{BufMut, BytesMut};

use crate::protocol::codes::{OffsetSpec, ResponseCode};
use crate::protocol::error::{DecodeError, EncodeError};
use crate::protocol::wire::{Reader, put_array_len, put_str, put_string_map};

/// A value as it stands in a command body.
pub(super) trait Field: Sized {
    /// The fewest bytes one value takes: bounds an array's count before it sizes an
    /// allocation.
    const MIN: usize;
    fn put(&self, buf: &mut BytesMut) -> Result<(), EncodeError>;
    fn get(r: &mut Reader<'_>) -> Result<Self, DecodeError>;
}

/// A field written another way than its type's [`Field`] (named in `body!` with `as`).
pub(super) trait Codec<T> {
    fn put(v: &T, buf: &mut BytesMut) -> Result<(), EncodeError>;
    fn get(r: &mut Reader<'_>) -> Result<T, DecodeError>;
}

/// Implements `Body` for a command from its fields in wire order (its correlation id is the
/// field so named, when it comes first); `field as Codec` writes and reads that field with
/// `Codec` instead of its type's [`Field`]. `Field for` a struct does
/// the same for an element of an array, with its least encoded size.
macro_rules! body {
    (Field for $ty:ident [$min:expr] { $($field:ident),* $(,)? }) => {
        impl $crate::protocol::commands::field::Field for $ty {
            const MIN: usize = $min;
            fn put(&self, buf: &mut BytesMut) -> Result<(), EncodeError> {
                $( $crate::protocol::commands::field::Field::put(&self.$field, buf)?; )*
                Ok(())
            }
            fn get(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
                Ok($ty { $( $field: $crate::protocol::commands::field::Field::get(r)?, )* })
            }
        }
    };
    ($ty:ident { correlation_id $(, $field:ident $(as $codec:ident)?)* $(,)? }) => {
        body!(@impl $ty yes { correlation_id $(, $field $(as $codec)?)* });
    };
    ($ty:ident { $($field:ident $(as $codec:ident)?),* $(,)? }) => {
        body!(@impl $ty no { $($field $(as $codec)?),* });
    };
    (@impl $ty:ident $corr:ident { $($field:ident $(as $codec:ident)?),* }) => {
        impl Body for $ty {
            fn encode_body(&self, buf: &mut BytesMut) -> Result<(), EncodeError> {
                $( body!(@put self.$field, buf $(, $codec)?); )*
                Ok(())
            }
            fn decode_body(r: &mut Reader<'_>, _: &Bytes) -> Result<Self, DecodeError> {
                Ok($ty { $( $field: body!(@get r $(, $codec)?), )* })
            }
            fn correlation_id(&self) -> Option<u32> {
                body!(@corr self $corr)
            }
        }
    };
    (@corr $s:ident yes) => {
        Some($s.correlation_id)
    };
    (@corr $s:ident no) => {
        None
    };
    (@put $v:expr, $buf:ident) => {
        $crate::protocol::commands::field::Field::put(&$v, $buf)?
    };
    (@put $v:expr, $buf:ident, $codec:ident) => {
        <$codec as $crate::protocol::commands::field::Codec<_>>::put(&$v, $buf)?
    };
    (@get $r:ident) => {
        $crate::protocol::commands::field::Field::get($r)?
    };
    (@get $r:ident, $codec:ident) => {
        <$codec as $crate::protocol::commands::field::Codec<_>>::get($r)?
    };
}

macro_rules! int_fields {
    ($($t:ty, $put:ident, $get:ident;)*) => {$(
        impl Field for $t {
            const MIN: usize = std::mem::size_of::<$t>();
            fn put(&self, buf: &mut BytesMut) -> Result<(), EncodeError> {
                buf.$put(*self);
                Ok(())
            }
            fn get(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
                r.$get()
            }
        }
    )*};
}

int_fields! {
    u8, put_u8, u8;
    u16, put_u16, u16;
    u32, put_u32, u32;
    u64, put_u64, u64;
    i64, put_i64, i64;
}

/// `string`: int16 length and UTF-8.
impl Field for String {
    const MIN: usize = 2;
    fn put(&self, buf: &mut BytesMut) -> Result<(), EncodeError> {
        put_str(buf, self)
    }
    fn get(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.string()
    }
}

/// `uint16`.
impl Field for ResponseCode {
    const MIN: usize = 2;
    fn put(&self, buf: &mut BytesMut) -> Result<(), EncodeError> {
        buf.put_u16(self.as_u16());
        Ok(())
    }
    fn get(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.u16().map(ResponseCode::from_u16)
    }
}

/// `offsetType uint16` and, for types 4 and 5, the value; type 0 (none) is refused.
impl Field for OffsetSpec {
    const MIN: usize = 2;
    fn put(&self, buf: &mut BytesMut) -> Result<(), EncodeError> {
        self.encode(buf);
        Ok(())
    }
    fn get(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        OffsetSpec::decode(r)
    }
}

/// As [`OffsetSpec`], with type 0 for none.
impl Field for Option<OffsetSpec> {
    const MIN: usize = 2;
    fn put(&self, buf: &mut BytesMut) -> Result<(), EncodeError> {
        OffsetSpec::encode_optional(self.as_ref(), buf);
        Ok(())
    }
    fn get(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        OffsetSpec::decode_optional(r)
    }
}

/// A pair: one, then the other (an element of a map).
impl<A: Field, B: Field> Field for (A, B) {
    const MIN: usize = A::MIN + B::MIN;
    fn put(&self, buf: &mut BytesMut) -> Result<(), EncodeError> {
        self.0.put(buf)?;
        self.1.put(buf)
    }
    fn get(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok((A::get(r)?, B::get(r)?))
    }
}

/// An array: int32 count, then the elements.
impl<T: Field> Field for Vec<T> {
    const MIN: usize = 4;
    fn put(&self, buf: &mut BytesMut) -> Result<(), EncodeError> {
        put_array_len(buf, self.len())?;
        self.iter().try_for_each(|x| x.put(buf))
    }
    fn get(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let n = r.array_len(T::MIN)?;
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(T::get(r)?);
        }
        Ok(out)
    }
}

/// A string map the broker may leave out at the end of a body: read as empty when absent,
/// written only when not empty (the broker's own encoding).
pub(super) struct OptionalMap;

impl Codec<Vec<(String, String)>> for OptionalMap {
    fn put(v: &Vec<(String, String)>, buf: &mut BytesMut) -> Result<(), EncodeError> {
        if v.is_empty() {
            Ok(())
        } else {
            put_string_map(buf, v)
        }
    }
    fn get(r: &mut Reader<'_>) -> Result<Vec<(String, String)>, DecodeError> {
        if r.remaining() == 0 {
            Ok(Vec::new())
        } else {
            Field::get(r)
        }
    }
}

/// The peer properties: always written, read as empty when absent.
pub(super) struct PeerMap;

impl Codec<Vec<(String, String)>> for PeerMap {
    fn put(v: &Vec<(String, String)>, buf: &mut BytesMut) -> Result<(), EncodeError> {
        v.put(buf)
    }
    fn get(r: &mut Reader<'_>) -> Result<Vec<(String, String)>, DecodeError> {
        OptionalMap::get(r)
    }
}
