//! The panic boundary: no Rust panic unwinds into C.
//!
//! Every `extern "C"` function runs its body inside [`ffi_boundary`] (or [`ffi_status`] for
//! functions that return `rmqs_status` and take an `rmqs_error **err`). A panic is caught and turned
//! into the function's documented failure value; for status-returning functions that is
//! `RMQS_ERR_PANIC`. Without this, a panic reaching an `extern "C"` frame aborts the whole process
//! (Rust ≥ 1.81). The release profile keeps `panic = "unwind"` so that catching works.
//!
//! Callback function types the library calls are plain `extern "C"` (never `"C-unwind"`): an
//! exception or longjmp out of a user callback aborts instead of unwinding through Rust frames.

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};

use super::error::{Error, rmqs_error, set_error};
use super::status::{rmqs_status, rmqs_status_code};

/// Runs `body`; if it panics, returns `on_panic` instead of unwinding.
///
/// `on_panic` must be the value the function documents for failure (NULL, a static string, 0, ...).
pub fn ffi_boundary<R>(on_panic: R, body: impl FnOnce() -> R) -> R {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or(on_panic)
}

/// Runs a fallible `body` for a status-returning function with an optional `rmqs_error **err`.
///
/// - `Ok(())` → `RMQS_OK`, `*err` untouched;
/// - `Err(e)` → `e.status`, and `*err` receives the error if `err` is not NULL;
/// - a panic → `RMQS_ERR_PANIC`, with the panic message in `*err`.
///
/// # Safety
/// `err` must be NULL or valid for writing one pointer.
pub unsafe fn ffi_status(
    err: *mut *mut rmqs_error,
    body: impl FnOnce() -> Result<(), Error>,
) -> rmqs_status {
    let result = match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => return rmqs_status_code::RMQS_OK.status(),
        Ok(Err(e)) => e,
        Err(payload) => Error::new(
            rmqs_status_code::RMQS_ERR_PANIC,
            format!("panic in rmqstream: {}", panic_message(payload.as_ref())),
        ),
    };
    // SAFETY: forwarded from the caller.
    unsafe { set_error(err, result) }
}

/// The message of a panic payload (`panic!("...")` gives `&str` or `String`).
pub fn panic_message(payload: &(dyn Any + Send)) -> &str {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s
    } else {
        "unknown panic payload"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ffi::error::{rmqs_error_free, rmqs_error_message, rmqs_error_status};
    use crate::ffi::status::rmqs_status_code::*;
    use std::ffi::CStr;

    #[test]
    fn boundary_passes_values_through() {
        assert_eq!(ffi_boundary(-1, || 7), 7);
    }

    #[test]
    fn boundary_turns_panic_into_failure_value() {
        let r = ffi_boundary(RMQS_ERR_PANIC.status(), || -> rmqs_status {
            panic!("boom");
        });
        assert_eq!(r, RMQS_ERR_PANIC.status());
    }

    #[test]
    fn status_boundary_ok_leaves_err_alone() {
        let mut err: *mut rmqs_error = std::ptr::null_mut();
        let st = unsafe { ffi_status(&mut err, || Ok(())) };
        assert_eq!(st, RMQS_OK.status());
        assert!(err.is_null());
    }

    #[test]
    fn status_boundary_reports_errors() {
        let mut err: *mut rmqs_error = std::ptr::null_mut();
        let st = unsafe {
            ffi_status(&mut err, || {
                Err(Error::new(RMQS_ERR_TIMEOUT, "no confirm after 5 s"))
            })
        };
        assert_eq!(st, RMQS_ERR_TIMEOUT.status());
        assert!(!err.is_null());
        unsafe {
            assert_eq!(rmqs_error_status(err), RMQS_ERR_TIMEOUT.status());
            let msg = CStr::from_ptr(rmqs_error_message(err)).to_str().unwrap();
            assert_eq!(msg, "no confirm after 5 s");
            rmqs_error_free(err);
        }
        // and with err == NULL only the status comes back
        let st = unsafe { ffi_status(std::ptr::null_mut(), || Err(Error::invalid_argument("x"))) };
        assert_eq!(st, RMQS_ERR_INVALID_ARGUMENT.status());
    }

    #[test]
    fn status_boundary_turns_panic_into_rmqs_err_panic() {
        let mut err: *mut rmqs_error = std::ptr::null_mut();
        let st = unsafe {
            ffi_status(&mut err, || {
                let v: Vec<u8> = Vec::new();
                let i = v.len() + 3;
                let _ = v[i]; // index out of bounds: a real panic with a String payload
                Ok(())
            })
        };
        assert_eq!(st, RMQS_ERR_PANIC.status());
        unsafe {
            assert_eq!(rmqs_error_status(err), RMQS_ERR_PANIC.status());
            let msg = CStr::from_ptr(rmqs_error_message(err)).to_str().unwrap();
            assert!(msg.starts_with("panic in rmqstream: "), "{msg}");
            assert!(msg.contains("index out of bounds"), "{msg}");
            rmqs_error_free(err);
        }
    }
}
