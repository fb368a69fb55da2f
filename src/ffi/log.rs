//! The log callback: `rmqs_log_cb`, `rmqs_config_set_log_cb()` and the `RMQS_LOG_*` levels.
//!
//! A connection config holds at most one registration (callback, `user_data`, finalizer),
//! shared by reference count between the config and every connection opened with it. A
//! connection wraps it in a `Slot` (the core's [`Logger`]) that `Slot::detach`
//! empties when the connection is freed, so the finalizer runs at a known moment even if a
//! runtime task outlives the connection.

use std::cell::Cell;
use std::ffi::{c_char, c_void};
use std::sync::Arc;

use super::config::rmqs_config;
use super::dispatch::rmqs_free_cb;
use super::error::rmqs_error;
use super::hooks::{Registration, Slot, set_registration};
use super::status::rmqs_status;
use crate::client::log::{Level, Log, Logger};

/// Log level: something failed (a connection was lost, no seed host answered).
///
/// @ingroup rmqs_config
pub const RMQS_LOG_ERROR: i32 = 1;
/// Log level: something went wrong and was handled (a seed host refused, the broker closed the
/// connection, a stream became unavailable).
///
/// @ingroup rmqs_config
pub const RMQS_LOG_WARN: i32 = 2;
/// Log level: life-cycle events (connection opened with the broker's version, closed).
///
/// @ingroup rmqs_config
pub const RMQS_LOG_INFO: i32 = 3;
/// Log level: details (connection attempts, publisher and subscription registrations, skipped
/// frames).
///
/// @ingroup rmqs_config
pub const RMQS_LOG_DEBUG: i32 = 4;
/// Log level: every frame received; costly.
///
/// @ingroup rmqs_config
pub const RMQS_LOG_TRACE: i32 = 5;

/// Receives the library's log messages.
///
/// @param user_data as given to `rmqs_config_set_log_cb()`.
/// @param level `RMQS_LOG_ERROR` (1) to `RMQS_LOG_TRACE` (5); only levels up to the
///        connection's `log_level` key (default `info`) are passed.
/// @param target which part of the library speaks: `"connection"`, `"environment"`,
///        `"producer"`, `"consumer"`, or `"panic"` for a panic the library caught (at
///        `RMQS_LOG_ERROR`: the message and where it happened; see `RMQS_ERR_PANIC`). NUL-terminated UTF-8, borrowed for the duration of the call.
/// @param message one line without a trailing newline, NUL-terminated UTF-8, borrowed for the
///        duration of the call (copy it to keep it).
///
/// May be called on any thread at any time while the connection exists: the application's own
/// thread inside a blocking call (open, close, free, `_new`), the connection's runtime threads
/// (`rmqs-rt`) while it reads and writes frames, or a background thread. Several threads may
/// call it at once. It must return quickly, must not block (hand the message to a queue or a
/// lock-free buffer if it needs slow I/O) and must not call any `rmqs_*` function: messages
/// emitted while it runs on the same thread are dropped.
///
/// @ingroup rmqs_config
pub type rmqs_log_cb = Option<
    unsafe extern "C" fn(
        user_data: *mut c_void,
        level: i32,
        target: *const c_char,
        message: *const c_char,
    ),
>;

/// The C function of a `rmqs_config_set_log_cb()` registration.
pub(crate) type LogFn = unsafe extern "C" fn(*mut c_void, i32, *const c_char, *const c_char);

thread_local! {
    /// Set while this thread runs the application's log callback: a message emitted from
    /// within it (the callback broke the rules and called the library) is dropped instead of
    /// re-entering it.
    static IN_CALLBACK: Cell<bool> = const { Cell::new(false) };
}

/// The core's [`Logger`] calling a C callback, until [`Slot::detach`]: then its finalizer
/// runs unless the config still holds it.
impl Logger for Slot<LogFn> {
    fn log(&self, level: Level, target: &str, message: &str) {
        if IN_CALLBACK.get() {
            return;
        }
        // target\0message\0 in one allocation; interior NULs cannot occur in practice but
        // would cut the strings short, so they are dropped.
        let mut buf = Vec::with_capacity(target.len() + message.len() + 2);
        buf.extend(target.bytes().filter(|&b| b != 0));
        buf.push(0);
        let at = buf.len();
        buf.extend(message.bytes().filter(|&b| b != 0));
        buf.push(0);
        IN_CALLBACK.set(true);
        // SAFETY: the application's callback with its user_data and two NUL-terminated strings
        // valid for the call. A C callback cannot unwind (the type is extern "C").
        self.with(|reg| unsafe {
            (reg.cb)(
                reg.user_data,
                level as i32,
                buf.as_ptr().cast(),
                buf[at..].as_ptr().cast(),
            )
        });
        IN_CALLBACK.set(false);
    }
}

/// What a connection logs with.
pub(crate) struct ConnLog {
    /// Handed to the environment.
    pub log: Log,
    /// Emptied when the connection is freed.
    logger: Option<Arc<Slot<LogFn>>>,
    /// Registration among the destinations of caught panics (src/ffi/panic.rs).
    panic_log: Option<u64>,
}

impl ConnLog {
    /// From a config's registration and its `log_level` (None = off).
    pub(crate) fn new(
        registration: Option<Arc<Registration<LogFn>>>,
        level: Option<Level>,
    ) -> ConnLog {
        match (registration, level) {
            (Some(r), Some(level)) => {
                let logger = Slot::new(r);
                let log = Log::new(logger.clone(), level);
                ConnLog {
                    panic_log: Some(super::panic::register_log(log.clone())),
                    log,
                    logger: Some(logger),
                }
            }
            _ => ConnLog {
                log: Log::off(),
                logger: None,
                panic_log: None,
            },
        }
    }

    /// See [`Slot::detach`]; caught panics no longer go to this log either.
    pub(crate) fn detach(&self) {
        if let Some(id) = self.panic_log {
            super::panic::unregister_log(id);
        }
        if let Some(l) = &self.logger {
            l.detach();
        }
    }
}

/// Sets the log callback of the connections opened with this config (`rmqs_connection_open()`;
/// other uses of the config ignore it). Which messages reach it is set by the config's
/// `log_level` key: `error`, `warn`, `info` (default), `debug`, `trace` or `off`. Without a
/// callback the library logs nothing; it never installs a process-wide logger.
///
/// @param cfg the config (borrowed).
/// @param cb the callback (see `rmqs_log_cb` for its threads and rules), or NULL to remove the
///        config's callback (`user_data` and `user_data_free` are then ignored).
/// @param user_data passed to every call of `cb`; ownership passes to the library on success.
/// @param user_data_free run exactly once with `user_data` after the last call of `cb`: when
///        the config no longer holds the callback (freed, or given another one) and every
///        connection opened with it is freed — normally inside `rmqs_connection_free()`, the
///        config having been freed after the open. On the thread making that last call (a
///        background thread when the connection is freed from a library callback). NULL if not
///        needed. Not called when this function fails.
/// @return `RMQS_OK`; `RMQS_ERR_INVALID_ARGUMENT` for a NULL or invalid config.
///
/// Not thread-safe for one config; does not block (replacing an earlier callback of this config
/// runs its `user_data_free` here if no connection uses it).
///
/// @ingroup rmqs_config
#[must_use]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_config_set_log_cb(
    cfg: *mut rmqs_config,
    cb: rmqs_log_cb,
    user_data: *mut c_void,
    user_data_free: rmqs_free_cb,
    err: *mut *mut rmqs_error,
) -> rmqs_status {
    // SAFETY: cfg NULL or live and err NULL or writable, per the caller's contract.
    unsafe { set_registration(err, cfg, |c| &mut c.log, cb, user_data, user_data_free) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ffi::hooks::register;
    use std::sync::atomic::{AtomicUsize, Ordering};

    static CALLS: AtomicUsize = AtomicUsize::new(0);
    static FREES: AtomicUsize = AtomicUsize::new(0);

    unsafe extern "C" fn cb(ud: *mut c_void, level: i32, t: *const c_char, m: *const c_char) {
        assert_eq!(ud as usize, 7);
        assert_eq!(level, RMQS_LOG_WARN);
        let t = unsafe { std::ffi::CStr::from_ptr(t) }.to_str().unwrap();
        let m = unsafe { std::ffi::CStr::from_ptr(m) }.to_str().unwrap();
        assert_eq!((t, m), ("tgt", "a message"));
        CALLS.fetch_add(1, Ordering::Relaxed);
    }

    unsafe extern "C" fn free(ud: *mut c_void) {
        assert_eq!(ud as usize, 7);
        FREES.fetch_add(1, Ordering::Relaxed);
    }

    #[test]
    fn calls_then_detaches_and_frees_once() {
        let reg = register(Some(cb as LogFn), 7 as *mut c_void, Some(free)).unwrap();
        let cl = ConnLog::new(Some(reg.clone()), Some(Level::Warn));
        crate::log_at!(cl.log, Level::Warn, "tgt", "a {}", "message");
        crate::log_at!(cl.log, Level::Info, "tgt", "filtered");
        assert_eq!(CALLS.load(Ordering::Relaxed), 1);
        drop(reg); // the "config" lets go first
        assert_eq!(FREES.load(Ordering::Relaxed), 0);
        let kept = cl.log.clone(); // e.g. a straggling task
        cl.detach();
        assert_eq!(FREES.load(Ordering::Relaxed), 1);
        crate::log_at!(kept, Level::Error, "tgt", "after detach");
        assert_eq!(CALLS.load(Ordering::Relaxed), 1);
        cl.detach();
        assert_eq!(FREES.load(Ordering::Relaxed), 1);

        let off = ConnLog::new(register(Some(cb as LogFn), 7 as *mut c_void, None), None);
        assert_eq!(off.log.max_level(), None);
    }
}
