//! Checking arguments that come from C: pointers, strings, byte ranges, handles.

use std::ffi::{CStr, c_char};

use super::error::Error;
use crate::client::environment::MAX_NAME_LEN;

/// A NUL-terminated UTF-8 string argument; `what` names it in the error.
///
/// # Safety
/// `p` must be NULL or point to a NUL-terminated string that outlives `'a`.
pub unsafe fn str_arg<'a>(p: *const c_char, what: &str) -> Result<&'a str, Error> {
    if p.is_null() {
        return Err(Error::invalid_argument(format!("{what} is NULL")));
    }
    // SAFETY: per the caller's contract.
    let c = unsafe { CStr::from_ptr(p) };
    utf8(c.to_bytes()).ok_or_else(|| Error::invalid_argument(format!("{what} is not valid UTF-8")))
}

/// `b` as text, if it is UTF-8. ASCII, what keys and most values are, is told by a
/// word-at-a-time scan, several times cheaper on short strings than the full validation, which
/// only the others then go through (these checks run for every key and text value a message
/// builder is given).
pub fn utf8(b: &[u8]) -> Option<&str> {
    if b.is_ascii() {
        // SAFETY: ASCII is valid UTF-8.
        Some(unsafe { std::str::from_utf8_unchecked(b) })
    } else {
        std::str::from_utf8(b).ok()
    }
}

/// Like [`str_arg`], but NULL gives `None`.
///
/// # Safety
/// As [`str_arg`].
pub unsafe fn opt_str_arg<'a>(p: *const c_char, what: &str) -> Result<Option<&'a str>, Error> {
    if p.is_null() {
        Ok(None)
    } else {
        // SAFETY: forwarded.
        unsafe { str_arg(p, what) }.map(Some)
    }
}

/// A stream name or reference: a string of 1 to 255 bytes.
///
/// # Safety
/// As [`str_arg`].
pub unsafe fn name_arg<'a>(p: *const c_char, what: &str) -> Result<&'a str, Error> {
    // SAFETY: forwarded.
    let s = unsafe { str_arg(p, what) }?;
    check_name(s, what)?;
    Ok(s)
}

/// Checks the length of a stream name or reference.
pub fn check_name(s: &str, what: &str) -> Result<(), Error> {
    if s.is_empty() || s.len() > MAX_NAME_LEN {
        return Err(Error::invalid_argument(format!(
            "{what} must be 1 to {MAX_NAME_LEN} bytes long, got {}",
            s.len()
        )));
    }
    Ok(())
}

/// A `(const uint8_t *, size_t)` pair: NULL is allowed only with length 0.
///
/// # Safety
/// `p` must be NULL or valid for reading `len` bytes during `'a`.
pub unsafe fn bytes_arg<'a>(p: *const u8, len: usize, what: &str) -> Result<&'a [u8], Error> {
    // SAFETY: forwarded.
    unsafe { slice_arg(p, len, what) }
}

/// An array argument, `count` elements at `p`: NULL is allowed only with count 0, and the
/// array may not be larger than Rust allows a slice to be.
///
/// # Safety
/// `p` must be NULL or valid for reading `count` elements during `'a`.
pub unsafe fn slice_arg<'a, T>(p: *const T, count: usize, what: &str) -> Result<&'a [T], Error> {
    if p.is_null() {
        if count == 0 {
            return Ok(&[]);
        }
        return Err(Error::invalid_argument(format!(
            "{what} is NULL with length {count}"
        )));
    }
    if count > isize::MAX as usize / size_of::<T>().max(1) {
        return Err(Error::invalid_argument(format!("{what} is too long")));
    }
    // SAFETY: per the caller's contract, and the size checked above.
    Ok(unsafe { std::slice::from_raw_parts(p, count) })
}

/// An optional array argument (tags, routing keys): None for NULL, else as [`slice_arg`].
///
/// # Safety
/// As [`slice_arg`].
pub unsafe fn opt_slice_arg<'a, T>(
    p: *const T,
    count: usize,
    what: &str,
) -> Result<Option<&'a [T]>, Error> {
    // SAFETY: forwarded.
    (!p.is_null())
        .then(|| unsafe { slice_arg(p, count, what) })
        .transpose()
}

/// An output pointer, which must not be NULL.
pub fn out_arg<T>(p: *mut T, what: &str) -> Result<*mut T, Error> {
    if p.is_null() {
        Err(Error::invalid_argument(format!("{what} is NULL")))
    } else {
        Ok(p)
    }
}

/// Writes an output (checked non-NULL by [`out_arg`]).
///
/// # Safety
/// `p` must be valid for writing a `T`.
pub unsafe fn write_out<T>(p: *mut T, v: T) {
    // SAFETY: per the caller's contract.
    unsafe { p.write(v) }
}

/// Objects handed to C as pointers carry a magic number, checked on every use: a pointer to
/// something else (or, often, to a freed object) gives `RMQS_ERR_INVALID_ARGUMENT` instead of
/// undefined behaviour further in.
pub trait Handle {
    /// The value of a live object's magic field.
    const MAGIC: u64;
    /// The type's C name, for messages.
    const NAME: &'static str;
    /// The magic field.
    fn magic(&self) -> u64;
}

/// A handle argument, borrowed.
///
/// # Safety
/// `p` must be NULL or point to a live `T` created by the library.
pub unsafe fn handle_arg<'a, T: Handle>(p: *const T) -> Result<&'a T, Error> {
    // SAFETY: per the caller's contract.
    match unsafe { p.as_ref() } {
        None => Err(Error::invalid_argument(format!("{} is NULL", T::NAME))),
        Some(h) if h.magic() == T::MAGIC => Ok(h),
        Some(_) => Err(Error::invalid_argument(format!(
            "not a valid {} (freed, or another object)",
            T::NAME
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings() {
        assert!(unsafe { str_arg(std::ptr::null(), "stream") }.is_err());
        let bad = [0xffu8, 0];
        let e = unsafe { str_arg(bad.as_ptr().cast(), "stream") }.unwrap_err();
        assert!(e.message.contains("UTF-8"));
        assert_eq!(unsafe { str_arg(c"ok".as_ptr(), "x") }.unwrap(), "ok");
        let long = std::ffi::CString::new("a".repeat(256)).unwrap();
        let e = unsafe { name_arg(long.as_ptr(), "stream name") }.unwrap_err();
        assert!(e.message.contains("256"), "{}", e.message);
        assert!(unsafe { name_arg(c"".as_ptr(), "stream name") }.is_err());
        // Text: ASCII, other UTF-8 (short and past a word), not UTF-8.
        assert_eq!(utf8(b"plain ascii key"), Some("plain ascii key"));
        assert_eq!(utf8("héllo ✓".as_bytes()), Some("héllo ✓"));
        assert_eq!(utf8("ключ ключ ключ".as_bytes()), Some("ключ ключ ключ"));
        assert_eq!(utf8(b"ascii then \xff"), None);
        assert_eq!(utf8(&[0xc3]), None);
        assert_eq!(utf8(b""), Some(""));
    }

    #[test]
    fn bytes() {
        assert_eq!(unsafe { bytes_arg(std::ptr::null(), 0, "b") }.unwrap(), b"");
        assert!(unsafe { bytes_arg(std::ptr::null(), 1, "b") }.is_err());
    }

    /// Arrays: NULL only with count 0; larger than a slice may be is refused before any
    /// read; an optional one is None for NULL.
    #[test]
    fn arrays() {
        let tags = [7usize, 8, 9];
        assert_eq!(
            unsafe { slice_arg(tags.as_ptr(), 3, "tags") }.unwrap(),
            &tags
        );
        assert!(
            unsafe { slice_arg::<usize>(std::ptr::null(), 0, "tags") }
                .unwrap()
                .is_empty()
        );
        let e = unsafe { slice_arg::<usize>(std::ptr::null(), 2, "tags") }.unwrap_err();
        assert_eq!(e.message, "tags is NULL with length 2");
        let huge = isize::MAX as usize / size_of::<u64>() + 1;
        let e = unsafe { slice_arg([1u64].as_ptr(), huge, "keys") }.unwrap_err();
        assert_eq!(e.message, "keys is too long");
        assert_eq!(
            unsafe { opt_slice_arg::<usize>(std::ptr::null(), 5, "t") }.unwrap(),
            None
        );
        assert_eq!(
            unsafe { opt_slice_arg(tags.as_ptr(), 2, "t") }.unwrap(),
            Some(&tags[..2])
        );
        assert!(unsafe { opt_slice_arg([1u64].as_ptr(), huge, "t") }.is_err());
    }
}
