//! Status codes: `rmqs_status`, the `RMQS_*` constants and their names and descriptions.

use std::ffi::{CStr, c_char};

/// Result of every fallible rmqstream call (`int32_t`).
///
/// - `0` (`RMQS_OK`): success.
/// - positive: a response code sent by the broker (the stream protocol's response codes, `2..=21`
///   today; the wire's `1` = OK is reported as `RMQS_OK`). Codes a newer broker may add are passed
///   through unchanged.
/// - negative: an error detected by the library itself.
///
/// Every value the library can return has a name and a description: see `rmqs_status_name()`,
/// `rmqs_status_str()` and `rmqs_status_descs()`. Values are stable: new codes are only ever added.
///
/// @ingroup rmqs_errors
pub type rmqs_status = i32;

/// The values of `rmqs_status`.
///
/// Functions return and accept `rmqs_status` (`int32_t`), never this enum type, so that codes added
/// by later versions (of the broker or of this library) are not undefined values in C++ or Rust.
///
/// @ingroup rmqs_errors
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum rmqs_status_code {
    /// Success.
    RMQS_OK = 0,

    /// Broker: the stream does not exist (protocol code 0x02).
    RMQS_ERR_STREAM_DOES_NOT_EXIST = 2,
    /// Broker: the subscription id is already in use on this connection (0x03).
    RMQS_ERR_SUBSCRIPTION_ID_ALREADY_EXISTS = 3,
    /// Broker: no subscription with this id on this connection (0x04).
    RMQS_ERR_SUBSCRIPTION_ID_DOES_NOT_EXIST = 4,
    /// Broker: the stream already exists (0x05), whatever its arguments.
    RMQS_ERR_STREAM_ALREADY_EXISTS = 5,
    /// Broker: the stream is not available now, e.g. its leader is down (0x06).
    RMQS_ERR_STREAM_NOT_AVAILABLE = 6,
    /// Broker: the SASL mechanism is not supported (0x07).
    RMQS_ERR_SASL_MECHANISM_NOT_SUPPORTED = 7,
    /// Broker: authentication failed (0x08).
    RMQS_ERR_AUTHENTICATION_FAILURE = 8,
    /// Broker: SASL error (0x09).
    RMQS_ERR_SASL_ERROR = 9,
    /// Broker: SASL challenge (0x0a).
    RMQS_ERR_SASL_CHALLENGE = 10,
    /// Broker: this user may only connect from localhost (0x0b).
    RMQS_ERR_SASL_AUTHENTICATION_FAILURE_LOOPBACK = 11,
    /// Broker: access to the virtual host refused, or a vhost/connection limit reached (0x0c).
    RMQS_ERR_VIRTUAL_HOST_ACCESS_FAILURE = 12,
    /// Broker: unknown frame (0x0d).
    RMQS_ERR_UNKNOWN_FRAME = 13,
    /// Broker: frame too large (0x0e).
    RMQS_ERR_FRAME_TOO_LARGE = 14,
    /// Broker: internal error (0x0f).
    RMQS_ERR_INTERNAL_ERROR = 15,
    /// Broker: access refused, missing permissions (0x10).
    RMQS_ERR_ACCESS_REFUSED = 16,
    /// Broker: precondition failed (0x11).
    RMQS_ERR_PRECONDITION_FAILED = 17,
    /// Broker: the publisher does not exist (0x12).
    RMQS_ERR_PUBLISHER_DOES_NOT_EXIST = 18,
    /// Broker: no offset stored for this reference (0x13).
    RMQS_ERR_NO_OFFSET = 19,
    /// Broker: the SASL mechanism cannot change on re-authentication (0x14).
    RMQS_ERR_SASL_CANNOT_CHANGE_MECHANISM = 20,
    /// Broker: the user name cannot change on re-authentication (0x15).
    RMQS_ERR_SASL_CANNOT_CHANGE_USERNAME = 21,

    /// Local: an argument is invalid (NULL where not allowed, out of range, not UTF-8, ...).
    RMQS_ERR_INVALID_ARGUMENT = -1,
    /// Local: the operation did not complete within its timeout.
    RMQS_ERR_TIMEOUT = -2,
    /// Local: the object or its connection is closed.
    RMQS_ERR_CLOSED = -3,
    /// Local: the broker (or this build) does not support the operation.
    RMQS_ERR_UNSUPPORTED = -4,
    /// Local: too many unconfirmed messages, and the caller asked not to block.
    RMQS_ERR_QUEUE_FULL = -5,
    /// Local: TLS error (handshake, certificate or host name verification).
    RMQS_ERR_TLS = -6,
    /// Local: I/O error (connect, read, write, connection lost).
    RMQS_ERR_IO = -7,
    /// Local: the peer violated the stream protocol (malformed or unexpected frame).
    RMQS_ERR_PROTOCOL = -8,
    /// Local: a blocking call was made from a library callback thread, where it would deadlock.
    RMQS_ERR_WOULD_DEADLOCK = -9,
    /// Local: the library panicked (a bug); the object involved is marked failed.
    RMQS_ERR_PANIC = -10,
    /// Local: the object failed earlier (e.g. after a panic) and cannot be used any more; free it.
    RMQS_ERR_FATAL = -11,
    /// Local: a flush or close found that some messages completed without a confirm (refused,
    /// timed out, or closed): their outcomes in the confirms say which.
    RMQS_ERR_NOT_CONFIRMED = -12,
}

use rmqs_status_code::*;

impl rmqs_status_code {
    /// The `rmqs_status` value of this code.
    pub const fn status(self) -> rmqs_status {
        self as rmqs_status
    }
}

impl From<rmqs_status_code> for rmqs_status {
    fn from(code: rmqs_status_code) -> rmqs_status {
        code.status()
    }
}

/// Maps a response code from the wire to a status: `1` (OK) is `RMQS_OK`, any other code is
/// passed through unchanged (positive), including codes this version does not know.
pub const fn status_from_response_code(code: u16) -> rmqs_status {
    if code == 1 {
        RMQS_OK.status()
    } else {
        code as rmqs_status
    }
}

/// One entry of the status table returned by `rmqs_status_descs()`.
///
/// Both strings are static NUL-terminated ASCII owned by the library: never free or modify them.
///
/// @ingroup rmqs_errors
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct rmqs_status_desc {
    /// The value.
    pub status: rmqs_status,
    /// Its macro name, e.g. `"RMQS_ERR_TIMEOUT"`.
    pub name: *const c_char,
    /// A short English description, e.g. `"timed out"`.
    pub description: *const c_char,
}

struct Entry {
    code: rmqs_status_code,
    name: &'static CStr,
    description: &'static CStr,
}

const fn e(code: rmqs_status_code, name: &'static CStr, description: &'static CStr) -> Entry {
    Entry {
        code,
        name,
        description,
    }
}

/// Every status, in the order `rmqs_status_descs()` lists them.
const TABLE: [Entry; 33] = [
    e(RMQS_OK, c"RMQS_OK", c"success"),
    e(
        RMQS_ERR_STREAM_DOES_NOT_EXIST,
        c"RMQS_ERR_STREAM_DOES_NOT_EXIST",
        c"stream does not exist",
    ),
    e(
        RMQS_ERR_SUBSCRIPTION_ID_ALREADY_EXISTS,
        c"RMQS_ERR_SUBSCRIPTION_ID_ALREADY_EXISTS",
        c"subscription id already exists",
    ),
    e(
        RMQS_ERR_SUBSCRIPTION_ID_DOES_NOT_EXIST,
        c"RMQS_ERR_SUBSCRIPTION_ID_DOES_NOT_EXIST",
        c"subscription id does not exist",
    ),
    e(
        RMQS_ERR_STREAM_ALREADY_EXISTS,
        c"RMQS_ERR_STREAM_ALREADY_EXISTS",
        c"stream already exists",
    ),
    e(
        RMQS_ERR_STREAM_NOT_AVAILABLE,
        c"RMQS_ERR_STREAM_NOT_AVAILABLE",
        c"stream not available",
    ),
    e(
        RMQS_ERR_SASL_MECHANISM_NOT_SUPPORTED,
        c"RMQS_ERR_SASL_MECHANISM_NOT_SUPPORTED",
        c"SASL mechanism not supported",
    ),
    e(
        RMQS_ERR_AUTHENTICATION_FAILURE,
        c"RMQS_ERR_AUTHENTICATION_FAILURE",
        c"authentication failure",
    ),
    e(RMQS_ERR_SASL_ERROR, c"RMQS_ERR_SASL_ERROR", c"SASL error"),
    e(
        RMQS_ERR_SASL_CHALLENGE,
        c"RMQS_ERR_SASL_CHALLENGE",
        c"SASL challenge",
    ),
    e(
        RMQS_ERR_SASL_AUTHENTICATION_FAILURE_LOOPBACK,
        c"RMQS_ERR_SASL_AUTHENTICATION_FAILURE_LOOPBACK",
        c"authentication failure: user may only connect from localhost",
    ),
    e(
        RMQS_ERR_VIRTUAL_HOST_ACCESS_FAILURE,
        c"RMQS_ERR_VIRTUAL_HOST_ACCESS_FAILURE",
        c"virtual host access failure",
    ),
    e(
        RMQS_ERR_UNKNOWN_FRAME,
        c"RMQS_ERR_UNKNOWN_FRAME",
        c"unknown frame",
    ),
    e(
        RMQS_ERR_FRAME_TOO_LARGE,
        c"RMQS_ERR_FRAME_TOO_LARGE",
        c"frame too large",
    ),
    e(
        RMQS_ERR_INTERNAL_ERROR,
        c"RMQS_ERR_INTERNAL_ERROR",
        c"broker internal error",
    ),
    e(
        RMQS_ERR_ACCESS_REFUSED,
        c"RMQS_ERR_ACCESS_REFUSED",
        c"access refused",
    ),
    e(
        RMQS_ERR_PRECONDITION_FAILED,
        c"RMQS_ERR_PRECONDITION_FAILED",
        c"precondition failed",
    ),
    e(
        RMQS_ERR_PUBLISHER_DOES_NOT_EXIST,
        c"RMQS_ERR_PUBLISHER_DOES_NOT_EXIST",
        c"publisher does not exist",
    ),
    e(
        RMQS_ERR_NO_OFFSET,
        c"RMQS_ERR_NO_OFFSET",
        c"no offset stored",
    ),
    e(
        RMQS_ERR_SASL_CANNOT_CHANGE_MECHANISM,
        c"RMQS_ERR_SASL_CANNOT_CHANGE_MECHANISM",
        c"SASL mechanism cannot change",
    ),
    e(
        RMQS_ERR_SASL_CANNOT_CHANGE_USERNAME,
        c"RMQS_ERR_SASL_CANNOT_CHANGE_USERNAME",
        c"SASL user name cannot change",
    ),
    e(
        RMQS_ERR_INVALID_ARGUMENT,
        c"RMQS_ERR_INVALID_ARGUMENT",
        c"invalid argument",
    ),
    e(RMQS_ERR_TIMEOUT, c"RMQS_ERR_TIMEOUT", c"timed out"),
    e(RMQS_ERR_CLOSED, c"RMQS_ERR_CLOSED", c"closed"),
    e(
        RMQS_ERR_UNSUPPORTED,
        c"RMQS_ERR_UNSUPPORTED",
        c"not supported",
    ),
    e(
        RMQS_ERR_QUEUE_FULL,
        c"RMQS_ERR_QUEUE_FULL",
        c"too many unconfirmed messages",
    ),
    e(RMQS_ERR_TLS, c"RMQS_ERR_TLS", c"TLS error"),
    e(RMQS_ERR_IO, c"RMQS_ERR_IO", c"I/O error"),
    e(RMQS_ERR_PROTOCOL, c"RMQS_ERR_PROTOCOL", c"protocol error"),
    e(
        RMQS_ERR_WOULD_DEADLOCK,
        c"RMQS_ERR_WOULD_DEADLOCK",
        c"blocking call from a callback would deadlock",
    ),
    e(
        RMQS_ERR_PANIC,
        c"RMQS_ERR_PANIC",
        c"internal panic in rmqstream",
    ),
    e(
        RMQS_ERR_FATAL,
        c"RMQS_ERR_FATAL",
        c"object failed earlier and cannot be used",
    ),
    e(
        RMQS_ERR_NOT_CONFIRMED,
        c"RMQS_ERR_NOT_CONFIRMED",
        c"some messages completed without a confirm",
    ),
];

/// Number of entries in the status table.
pub const STATUS_COUNT: usize = TABLE.len();

struct DescTable([rmqs_status_desc; STATUS_COUNT]);

// SAFETY: the pointers point to immutable 'static C string literals.
unsafe impl Sync for DescTable {}

static DESCS: DescTable = {
    let mut out = [rmqs_status_desc {
        status: 0,
        name: std::ptr::null(),
        description: std::ptr::null(),
    }; STATUS_COUNT];
    let mut i = 0;
    while i < STATUS_COUNT {
        out[i] = rmqs_status_desc {
            status: TABLE[i].code.status(),
            name: TABLE[i].name.as_ptr(),
            description: TABLE[i].description.as_ptr(),
        };
        i += 1;
    }
    DescTable(out)
};

const UNKNOWN_NAME: &CStr = c"RMQS_UNKNOWN";
const UNKNOWN_DESCRIPTION: &CStr = c"unknown status";

fn find(status: rmqs_status) -> Option<&'static Entry> {
    TABLE.iter().find(|e| e.code.status() == status)
}

/// The known code with this value, if any.
pub fn status_code(status: rmqs_status) -> Option<rmqs_status_code> {
    find(status).map(|e| e.code)
}

/// Name of a status value (`"RMQS_ERR_TIMEOUT"`), or `"RMQS_UNKNOWN"`.
pub fn status_name(status: rmqs_status) -> &'static CStr {
    find(status).map_or(UNKNOWN_NAME, |e| e.name)
}

/// Description of a status value (`"timed out"`), or `"unknown status"`.
pub fn status_description(status: rmqs_status) -> &'static CStr {
    find(status).map_or(UNKNOWN_DESCRIPTION, |e| e.description)
}

/// A short English description of a status, e.g. `"timed out"` for `RMQS_ERR_TIMEOUT`.
///
/// @param status any value; values this version does not know give `"unknown status"`.
/// @return a static NUL-terminated string owned by the library, never NULL; do not free it.
///
/// Thread-safe, does not block.
///
/// @ingroup rmqs_errors
#[unsafe(no_mangle)]
pub extern "C" fn rmqs_status_str(status: rmqs_status) -> *const c_char {
    super::panic::ffi_boundary(UNKNOWN_DESCRIPTION.as_ptr(), || {
        status_description(status).as_ptr()
    })
}

/// The macro name of a status, e.g. `"RMQS_ERR_TIMEOUT"` for `RMQS_ERR_TIMEOUT`.
///
/// @param status any value; values this version does not know give `"RMQS_UNKNOWN"`.
/// @return a static NUL-terminated string owned by the library, never NULL; do not free it.
///
/// Thread-safe, does not block.
///
/// @ingroup rmqs_errors
#[unsafe(no_mangle)]
pub extern "C" fn rmqs_status_name(status: rmqs_status) -> *const c_char {
    super::panic::ffi_boundary(UNKNOWN_NAME.as_ptr(), || status_name(status).as_ptr())
}

/// The table of every status this version knows (value, name, description), for bindings that
/// generate their error types.
///
/// @param out receives a pointer to the first entry of a static array owned by the library, valid
///        for the life of the process; do not free or modify it. May be NULL.
/// @param count receives the number of entries. May be NULL.
///
/// Thread-safe, does not block.
///
/// @ingroup rmqs_errors
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_status_descs(out: *mut *const rmqs_status_desc, count: *mut usize) {
    super::panic::ffi_boundary((), || {
        if !out.is_null() {
            // SAFETY: the caller passes a valid, writable pointer or NULL.
            unsafe { out.write(DESCS.0.as_ptr()) };
        }
        if !count.is_null() {
            // SAFETY: as above.
            unsafe { count.write(STATUS_COUNT) };
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn table_is_complete_and_unique() {
        let mut seen = HashSet::new();
        for e in &TABLE {
            assert!(seen.insert(e.code.status()), "duplicate {:?}", e.code);
            let name = e.name.to_str().unwrap();
            assert_eq!(name, format!("{:?}", e.code), "name of {:?}", e.code);
            assert!(!e.description.to_bytes().is_empty());
        }
        // every broker code 2..=21 and every local code -1..=-11 is listed
        for s in (2..=21).chain(-11..=-1).chain([0]) {
            assert!(seen.contains(&s), "missing {s}");
        }
        assert_eq!(seen.len(), STATUS_COUNT);
    }

    #[test]
    fn response_codes_map_to_statuses() {
        assert_eq!(status_from_response_code(1), RMQS_OK.status());
        assert_eq!(
            status_from_response_code(2),
            RMQS_ERR_STREAM_DOES_NOT_EXIST.status()
        );
        assert_eq!(
            status_from_response_code(0x15),
            RMQS_ERR_SASL_CANNOT_CHANGE_USERNAME.status()
        );
        assert_eq!(status_from_response_code(0x99), 0x99);
        assert_eq!(status_code(0x99), None);
        assert_eq!(status_code(-2), Some(RMQS_ERR_TIMEOUT));
    }
}
