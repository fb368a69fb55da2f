//! `rmqs_error`: the detail of a failure (status + message), returned through an optional
//! `rmqs_error **err` out-parameter of the call that failed. No thread-local "last error": the
//! error comes back from the same call (Go moves goroutines between threads between two calls).

use std::ffi::{CStr, CString, c_char};
use std::fmt;

use super::panic::ffi_boundary;
use super::status::{rmqs_status, rmqs_status_code, status_description};

/// A failure as the Rust side of the C API carries it, before it becomes an `rmqs_error`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    /// The status the call returns (never `RMQS_OK`).
    pub status: rmqs_status,
    /// Human-readable detail.
    pub message: String,
}

impl Error {
    /// A failure with `status` and `message`.
    pub fn new(status: impl Into<rmqs_status>, message: impl Into<String>) -> Self {
        Error {
            status: status.into(),
            message: message.into(),
        }
    }

    /// `RMQS_ERR_INVALID_ARGUMENT` with `message`.
    pub fn invalid_argument(message: impl Into<String>) -> Self {
        Error::new(rmqs_status_code::RMQS_ERR_INVALID_ARGUMENT, message)
    }
}

/// A refused config key or value: `RMQS_ERR_INVALID_ARGUMENT` with the client's message.
impl From<crate::client::ConfigError> for Error {
    fn from(e: crate::client::ConfigError) -> Self {
        Error::invalid_argument(e.0)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

/// Detail of a failed call: its status and a message. Opaque.
///
/// Created by the library, only on failure, through a call's optional `rmqs_error **err`
/// argument; owned by the caller, who frees it with `rmqs_error_free()`.
///
/// Thread safety: an `rmqs_error` is immutable; it may be read from several threads at once and
/// moved between threads, but must not be freed while another thread reads it.
///
/// @ingroup rmqs_errors
pub struct rmqs_error {
    status: rmqs_status,
    message: CString,
}

impl rmqs_error {
    fn from_error(e: Error) -> Self {
        let mut message = e.message.into_bytes();
        message.retain(|&b| b != 0);
        let message = if message.is_empty() {
            status_description(e.status).to_owned()
        } else {
            CString::new(message).expect("NUL bytes removed")
        };
        rmqs_error {
            status: e.status,
            message,
        }
    }
}

/// Reports a failure: stores a new `rmqs_error` in `*err` if `err` is not NULL (overwriting,
/// not freeing, what `*err` held) and returns `e.status`.
///
/// # Safety
/// `err` must be NULL or valid for writing one pointer.
pub unsafe fn set_error(err: *mut *mut rmqs_error, e: Error) -> rmqs_status {
    let status = e.status;
    if !err.is_null() {
        let boxed = Box::into_raw(Box::new(rmqs_error::from_error(e)));
        // SAFETY: err is valid for writing per the caller's contract.
        unsafe { err.write(boxed) };
    }
    status
}

/// The status of a failed call, as the call returned it.
///
/// @param err an error from a failed call (borrowed), or NULL.
/// @return its status; `RMQS_OK` when `err` is NULL.
///
/// Thread-safe (see `rmqs_error`), does not block.
///
/// @ingroup rmqs_errors
#[must_use]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_error_status(err: *const rmqs_error) -> rmqs_status {
    ffi_boundary(rmqs_status_code::RMQS_ERR_PANIC.status(), || {
        // SAFETY: the caller passes NULL or a live rmqs_error.
        match unsafe { err.as_ref() } {
            Some(e) => e.status,
            None => rmqs_status_code::RMQS_OK.status(),
        }
    })
}

/// The message of a failed call: NUL-terminated UTF-8, never empty.
///
/// @param err an error from a failed call (borrowed), or NULL.
/// @return a string owned by `err`, valid until `rmqs_error_free(err)`; do not free it.
///         `""` (a static string) when `err` is NULL. Never NULL.
///
/// Thread-safe (see `rmqs_error`), does not block.
///
/// @ingroup rmqs_errors
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_error_message(err: *const rmqs_error) -> *const c_char {
    const EMPTY: &CStr = c"";
    ffi_boundary(EMPTY.as_ptr(), || {
        // SAFETY: the caller passes NULL or a live rmqs_error.
        match unsafe { err.as_ref() } {
            Some(e) => e.message.as_ptr(),
            None => EMPTY.as_ptr(),
        }
    })
}

/// Frees an error. NULL is allowed and does nothing.
///
/// @param err an error from a failed call (ownership passes to the library), or NULL. It must
///        not be used afterwards, and must not be freed twice.
///
/// Not to be called while another thread reads `err`; does not block.
///
/// @ingroup rmqs_errors
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_error_free(err: *mut rmqs_error) {
    ffi_boundary((), || {
        if !err.is_null() {
            // SAFETY: err came from Box::into_raw in set_error and is freed once.
            drop(unsafe { Box::from_raw(err) });
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ffi::status::rmqs_status_code::*;

    fn message(err: *const rmqs_error) -> String {
        unsafe { CStr::from_ptr(rmqs_error_message(err)) }
            .to_str()
            .unwrap()
            .to_owned()
    }

    #[test]
    fn set_error_fills_err_and_returns_status() {
        let mut err: *mut rmqs_error = std::ptr::null_mut();
        let st = unsafe { set_error(&mut err, Error::new(RMQS_ERR_CLOSED, "producer closed")) };
        assert_eq!(st, RMQS_ERR_CLOSED.status());
        assert_eq!(unsafe { rmqs_error_status(err) }, RMQS_ERR_CLOSED.status());
        assert_eq!(message(err), "producer closed");
        unsafe { rmqs_error_free(err) };
    }

    #[test]
    fn set_error_with_null_err_only_returns_status() {
        let st = unsafe { set_error(std::ptr::null_mut(), Error::new(17, "x")) };
        assert_eq!(st, RMQS_ERR_PRECONDITION_FAILED.status());
    }

    #[test]
    fn messages_are_sanitised() {
        let mut err: *mut rmqs_error = std::ptr::null_mut();
        unsafe { set_error(&mut err, Error::new(RMQS_ERR_IO, "a\0b")) };
        assert_eq!(message(err), "ab");
        unsafe { rmqs_error_free(err) };
        // an empty message falls back to the status description
        unsafe { set_error(&mut err, Error::new(RMQS_ERR_TIMEOUT, "")) };
        assert_eq!(message(err), "timed out");
        unsafe { rmqs_error_free(err) };
    }

    #[test]
    fn null_error_accessors() {
        assert_eq!(unsafe { rmqs_error_status(std::ptr::null()) }, 0);
        assert_eq!(message(std::ptr::null()), "");
        unsafe { rmqs_error_free(std::ptr::null_mut()) };
    }
}
