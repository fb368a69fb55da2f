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
//!
//! # The panic hook
//!
//! Rust's default hook prints every panic to stderr, also one that is caught: a caught panic
//! of the library would write into the host program's stderr. The first call into the library
//! (the first boundary entered) therefore installs a process-wide hook, once, that takes the
//! panics that are the library's:
//! - panics inside a boundary (a thread-local depth counter, set by [`ffi_boundary`] and
//!   [`ffi_status`]), on any thread;
//! - panics on the library's own threads (`rmqs-rt`, `rmqs-dispatch`, `rmqs-reaper`; see
//!   [`mark_library_thread`]), where Tokio or the dispatcher catches them.
//!
//! Those are not printed. They go to the log instead, at `RMQS_LOG_ERROR` under the target
//! `"panic"`: on a runtime thread to its connection's log callback ([`set_thread_log`]),
//! elsewhere to the log callback of every open connection that has one ([`register_log`]; the
//! library cannot tell which connection a panic concerned). A panic caught by [`ffi_status`]
//! also comes back in the call's `rmqs_error`, with its location. Every other panic — the host
//! program's own, on its own threads, outside any library call — goes to the hook that was
//! installed before ours, unchanged.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::panic::{AssertUnwindSafe, PanicHookInfo, catch_unwind};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, Once};

use super::error::{Error, rmqs_error, set_error};
use super::status::{rmqs_status, rmqs_status_code};
use crate::client::log::{Level, Log};

thread_local! {
    /// How many library boundaries this thread is inside.
    static DEPTH: Cell<u32> = const { Cell::new(0) };
    /// Set on threads the library owns.
    static LIBRARY_THREAD: Cell<bool> = const { Cell::new(false) };
    /// The log of the connection that owns this (runtime) thread.
    static THREAD_LOG: RefCell<Option<Log>> = const { RefCell::new(None) };
    /// The last panic the hook took on this thread: message and location.
    static LAST: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// The logs of the open connections (fallback destination of panics off runtime threads).
static LOGS: Mutex<Vec<(u64, Log)>> = Mutex::new(Vec::new());
static NEXT_LOG_ID: AtomicU64 = AtomicU64::new(1);
static HOOK: Once = Once::new();

/// Marks the current thread as one of the library's: its panics are the library's.
pub fn mark_library_thread() {
    LIBRARY_THREAD.with(|t| t.set(true));
}

/// Where panics on the current (library) thread are logged.
pub fn set_thread_log(log: Log) {
    THREAD_LOG.with(|l| *l.borrow_mut() = Some(log));
}

/// Adds an open connection's log to the destinations of panics off runtime threads; the id
/// is for [`unregister_log`].
pub fn register_log(log: Log) -> u64 {
    let id = NEXT_LOG_ID.fetch_add(1, Ordering::Relaxed);
    LOGS.lock()
        .unwrap_or_else(|e| e.into_inner())
        .push((id, log));
    id
}

/// Removes a log added by [`register_log`].
pub fn unregister_log(id: u64) {
    LOGS.lock()
        .unwrap_or_else(|e| e.into_inner())
        .retain(|(i, _)| *i != id);
}

/// Installs the panic hook (once per process; later calls do nothing). Called by every
/// boundary, so the first call into the library installs it.
pub fn install_hook() {
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if is_ours() {
                take(info);
            } else {
                previous(info);
            }
        }));
    });
}

fn is_ours() -> bool {
    DEPTH.try_with(|d| d.get() > 0).unwrap_or(false)
        || LIBRARY_THREAD.try_with(Cell::get).unwrap_or(false)
}

/// The hook's work for a panic of the library: log it, keep it for [`ffi_status`]. Never
/// panics itself (a panic in a hook aborts).
fn take(info: &PanicHookInfo<'_>) {
    let text = match info.location() {
        Some(l) => format!(
            "{} (at {}:{})",
            panic_message(info.payload()),
            l.file(),
            l.line()
        ),
        None => panic_message(info.payload()).to_string(),
    };
    let logged = THREAD_LOG
        .try_with(|l| match l.try_borrow().as_deref() {
            Ok(Some(log)) => {
                log.write(
                    Level::Error,
                    "panic",
                    format_args!("caught a panic: {text}"),
                );
                true
            }
            _ => false,
        })
        .unwrap_or(false);
    if !logged {
        // Cloned out of the lock: a log callback must not run under it.
        let logs: Vec<Log> = match LOGS.try_lock() {
            Ok(v) => v.iter().map(|(_, l)| l.clone()).collect(),
            Err(_) => Vec::new(),
        };
        for log in logs {
            log.write(
                Level::Error,
                "panic",
                format_args!("caught a panic: {text}"),
            );
        }
    }
    let _ = LAST.try_with(|l| {
        if let Ok(mut l) = l.try_borrow_mut() {
            *l = Some(text);
        }
    });
}

/// Inside a boundary while alive.
struct Inside;

impl Inside {
    fn enter() -> Inside {
        install_hook();
        DEPTH.with(|d| d.set(d.get() + 1));
        Inside
    }
}

impl Drop for Inside {
    fn drop(&mut self) {
        DEPTH.with(|d| d.set(d.get().saturating_sub(1)));
    }
}

/// Runs `body`; if it panics, returns `on_panic` instead of unwinding.
///
/// `on_panic` must be the value the function documents for failure (NULL, a static string, 0, ...).
pub fn ffi_boundary<R>(on_panic: R, body: impl FnOnce() -> R) -> R {
    let caught = {
        let _inside = Inside::enter();
        catch_unwind(AssertUnwindSafe(body))
    };
    caught.unwrap_or_else(|_| {
        // The hook logged it; the value documented for failure says the rest.
        LAST.with(|l| l.borrow_mut().take());
        on_panic
    })
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
    let caught = {
        let _inside = Inside::enter();
        catch_unwind(AssertUnwindSafe(body))
    };
    let result = match caught {
        Ok(Ok(())) => return rmqs_status_code::RMQS_OK.status(),
        Ok(Err(e)) => e,
        Err(payload) => {
            // The hook kept the message with its location; without the hook (another one
            // replaced ours), the payload alone.
            let text = LAST
                .with(|l| l.borrow_mut().take())
                .unwrap_or_else(|| panic_message(payload.as_ref()).to_string());
            Error::new(
                rmqs_status_code::RMQS_ERR_PANIC,
                format!("panic in rmqstream: {text}"),
            )
        }
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
