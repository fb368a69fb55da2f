//! Wire primitives of the stream protocol: big-endian integers, `string` (int16 length),
//! `bytes` (int32 length), arrays (int32 count) and string maps.
//!
//! [`Reader`] decodes from a borrowed slice and never panics: every read checks the remaining
//! length first, and array counts are validated against the bytes left (see
//! [`Reader::array_len`]) so that no allocation is ever sized by an untrusted count.
//! The writer helpers append to a [`BytesMut`] and reject values the wire cannot carry.

use bytes::{BufMut, BytesMut};

use super::error::{DecodeError, EncodeError};

/// A cursor over a received frame body.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    /// Bytes not yet consumed.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Current position from the start of the slice.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// The unread rest of the slice (does not consume it).
    pub fn rest(&self) -> &'a [u8] {
        &self.buf[self.pos..]
    }

    /// Takes exactly `n` bytes.
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if n > self.remaining() {
            return Err(DecodeError::Truncated {
                needed: n,
                available: self.remaining(),
            });
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let s = self.take(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }
    pub fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.array()?))
    }
    pub fn i16(&mut self) -> Result<i16, DecodeError> {
        Ok(i16::from_be_bytes(self.array()?))
    }
    pub fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array()?))
    }
    pub fn i32(&mut self) -> Result<i32, DecodeError> {
        Ok(i32::from_be_bytes(self.array()?))
    }
    pub fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.array()?))
    }
    pub fn i64(&mut self) -> Result<i64, DecodeError> {
        Ok(i64::from_be_bytes(self.array()?))
    }

    /// A `string`: int16 length then UTF-8. A negative length (null) is an error here; use
    /// [`Reader::nullable_str`] where the protocol allows null.
    pub fn str(&mut self) -> Result<&'a str, DecodeError> {
        self.nullable_str()?.ok_or(DecodeError::UnexpectedNull)
    }

    /// A `string` that may be null (length −1).
    pub fn nullable_str(&mut self) -> Result<Option<&'a str>, DecodeError> {
        let len = self.i16()?;
        if len < 0 {
            return if len == -1 {
                Ok(None)
            } else {
                Err(DecodeError::InvalidLength(len as i64))
            };
        }
        let raw = self.take(len as usize)?;
        std::str::from_utf8(raw)
            .map(Some)
            .map_err(|_| DecodeError::InvalidUtf8)
    }

    /// A `string` decoded into an owned `String`.
    pub fn string(&mut self) -> Result<String, DecodeError> {
        self.str().map(str::to_owned)
    }

    /// A `bytes`: int32 length then raw bytes. Null (−1) is an error; see [`Reader::nullable_bytes`].
    pub fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        self.nullable_bytes()?.ok_or(DecodeError::UnexpectedNull)
    }

    /// A `bytes` that may be null (length −1).
    pub fn nullable_bytes(&mut self) -> Result<Option<&'a [u8]>, DecodeError> {
        let len = self.i32()?;
        if len < 0 {
            return if len == -1 {
                Ok(None)
            } else {
                Err(DecodeError::InvalidLength(len as i64))
            };
        }
        self.take(len as usize).map(Some)
    }

    /// An array count (int32). Fails unless `count * min_element_size` bytes are still available,
    /// so the count can safely size an allocation.
    pub fn array_len(&mut self, min_element_size: usize) -> Result<usize, DecodeError> {
        let n = self.i32()?;
        if n < 0 {
            return Err(DecodeError::InvalidLength(n as i64));
        }
        let n = n as usize;
        let needed = n.saturating_mul(min_element_size.max(1));
        if needed > self.remaining() {
            return Err(DecodeError::Truncated {
                needed,
                available: self.remaining(),
            });
        }
        Ok(n)
    }

    /// A map encoded as an array of (`string` key, `string` value).
    pub fn string_map(&mut self) -> Result<Vec<(String, String)>, DecodeError> {
        let n = self.array_len(4)?;
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            let k = self.string()?;
            let v = self.string()?;
            out.push((k, v));
        }
        Ok(out)
    }

    /// An array of `string`.
    pub fn string_array(&mut self) -> Result<Vec<String>, DecodeError> {
        let n = self.array_len(2)?;
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(self.string()?);
        }
        Ok(out)
    }

    /// Fails when bytes are left over.
    pub fn finish(&self) -> Result<(), DecodeError> {
        match self.remaining() {
            0 => Ok(()),
            n => Err(DecodeError::TrailingBytes(n)),
        }
    }
}

/// Appends a `string` (int16 length + UTF-8).
pub fn put_str(buf: &mut BytesMut, s: &str) -> Result<(), EncodeError> {
    let len = i16::try_from(s.len()).map_err(|_| EncodeError::StringTooLong(s.len()))?;
    buf.put_i16(len);
    buf.put_slice(s.as_bytes());
    Ok(())
}

/// Appends a nullable `string`: `None` is written as length −1.
pub fn put_nullable_str(buf: &mut BytesMut, s: Option<&str>) -> Result<(), EncodeError> {
    match s {
        Some(s) => put_str(buf, s),
        None => {
            buf.put_i16(-1);
            Ok(())
        }
    }
}

/// Appends a `bytes` (int32 length + raw bytes).
pub fn put_bytes(buf: &mut BytesMut, b: &[u8]) -> Result<(), EncodeError> {
    let len = i32::try_from(b.len()).map_err(|_| EncodeError::BytesTooLong(b.len()))?;
    buf.put_i32(len);
    buf.put_slice(b);
    Ok(())
}

/// Appends an array count (int32).
pub fn put_array_len(buf: &mut BytesMut, n: usize) -> Result<(), EncodeError> {
    let n = i32::try_from(n).map_err(|_| EncodeError::TooManyElements(n))?;
    buf.put_i32(n);
    Ok(())
}

/// Appends a string map as an array of key/value `string` pairs.
pub fn put_string_map<K: AsRef<str>, V: AsRef<str>>(
    buf: &mut BytesMut,
    map: &[(K, V)],
) -> Result<(), EncodeError> {
    put_array_len(buf, map.len())?;
    for (k, v) in map {
        put_str(buf, k.as_ref())?;
        put_str(buf, v.as_ref())?;
    }
    Ok(())
}

/// Appends an array of `string`.
pub fn put_string_array<S: AsRef<str>>(buf: &mut BytesMut, items: &[S]) -> Result<(), EncodeError> {
    put_array_len(buf, items.len())?;
    for s in items {
        put_str(buf, s.as_ref())?;
    }
    Ok(())
}

/// Starts a frame: reserves the 4-byte size prefix and returns its position for [`end_frame`].
pub fn begin_frame(buf: &mut BytesMut) -> usize {
    let at = buf.len();
    buf.put_u32(0);
    at
}

/// Completes a frame begun at `start` by writing its size (which excludes the prefix itself).
pub fn end_frame(buf: &mut BytesMut, start: usize) -> Result<(), EncodeError> {
    let size = buf.len() - start - 4;
    let size32 = u32::try_from(size).map_err(|_| EncodeError::FrameTooLarge(size))?;
    buf[start..start + 4].copy_from_slice(&size32.to_be_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_are_big_endian() {
        let data = [0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0xff];
        let mut r = Reader::new(&data);
        assert_eq!(r.u16().unwrap(), 0x0102);
        assert_eq!(r.u32().unwrap(), 0x0304_0506);
        assert_eq!(r.u8().unwrap(), 7);
        assert_eq!(r.remaining(), 2);
        assert_eq!(
            r.u32(),
            Err(DecodeError::Truncated {
                needed: 4,
                available: 2
            })
        );
    }

    #[test]
    fn strings_round_trip_and_null_is_distinct() {
        let mut b = BytesMut::new();
        put_str(&mut b, "héllo").unwrap();
        put_nullable_str(&mut b, None).unwrap();
        put_str(&mut b, "").unwrap();
        let mut r = Reader::new(&b);
        assert_eq!(r.str().unwrap(), "héllo");
        assert_eq!(r.nullable_str().unwrap(), None);
        assert_eq!(r.str().unwrap(), "");
        r.finish().unwrap();
        let mut r = Reader::new(&[0xff, 0xff]);
        assert_eq!(r.str(), Err(DecodeError::UnexpectedNull));
    }

    #[test]
    fn bad_utf8_and_bad_lengths_are_errors() {
        assert_eq!(
            Reader::new(&[0, 2, 0xc3, 0x28]).str(),
            Err(DecodeError::InvalidUtf8)
        );
        assert_eq!(
            Reader::new(&[0xff, 0xfe]).str(),
            Err(DecodeError::InvalidLength(-2))
        );
        assert!(matches!(
            Reader::new(&[0, 9, b'a']).str(),
            Err(DecodeError::Truncated { .. })
        ));
        assert!(matches!(
            Reader::new(&[0x7f, 0xff, 0xff, 0xff]).bytes(),
            Err(DecodeError::Truncated { .. })
        ));
    }

    #[test]
    fn absurd_array_counts_are_rejected_before_allocation() {
        let mut r = Reader::new(&[0x7f, 0xff, 0xff, 0xff, 0, 0]);
        assert!(matches!(
            r.string_array(),
            Err(DecodeError::Truncated { .. })
        ));
        let mut r = Reader::new(&[0xff, 0xff, 0xff, 0xff]);
        assert_eq!(r.array_len(1), Err(DecodeError::InvalidLength(-1)));
    }

    #[test]
    fn too_long_string_is_an_encode_error() {
        let s = "x".repeat(40_000);
        assert_eq!(
            put_str(&mut BytesMut::new(), &s),
            Err(EncodeError::StringTooLong(40_000))
        );
    }

    #[test]
    fn frame_size_prefix_excludes_itself() {
        let mut b = BytesMut::new();
        let at = begin_frame(&mut b);
        b.put_u16(0x0017);
        b.put_u16(1);
        end_frame(&mut b, at).unwrap();
        assert_eq!(&b[..], &[0, 0, 0, 4, 0, 0x17, 0, 1]);
    }
}
