//! `rmqs_connection`: the environment (locator connection plus a pool of data connections)
//! and the Tokio runtime that drives it.

use std::ffi::{CString, c_char};
use std::ops::Deref;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use super::args::{Handle, handle_arg, out_arg, str_arg, write_out};
use super::config::{rmqs_config, settings_arg};
use super::dispatch::{self, CallbackPool};
use super::error::{Error, rmqs_error};
use super::hooks::Registration;
use super::log::{ConnLog, LogFn};
use super::panic::{ffi_boundary, ffi_status};
use super::runtime::{ThreadRole, check_may_block, thread_role, timeout_from_ms};
use super::status::rmqs_status;
use crate::client::blocking::BlockingEnvironment;
use crate::client::{Environment, Settings};

/// How long `rmqs_connection_free` lets an open connection close (children included).
const FREE_CLOSE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the runtime's tasks get to end at shutdown.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(1);

/// What producers, consumers and management calls share with their connection: the client's
/// blocking environment (runtime, lazy connect, ordered close; reached through `Deref`) and
/// what only the C API has.
pub(crate) struct ConnShared {
    blocking: Arc<BlockingEnvironment>,
    pub producer_defaults: Settings,
    pub consumer_defaults: Settings,
    /// The broker's version for `rmqs_connection_server_version`, once connected.
    version: OnceLock<CString>,
    /// The log callback (src/ffi/log.rs), detached when the connection is freed.
    log: ConnLog,
    /// The threads that run the callbacks of its objects (src/ffi/dispatch.rs); last, so that
    /// the runtime and the objects' events are gone when its threads end.
    pub dispatch: CallbackPool,
}

impl Deref for ConnShared {
    type Target = BlockingEnvironment;
    fn deref(&self) -> &BlockingEnvironment {
        &self.blocking
    }
}

impl ConnShared {
    fn close(&self, timeout_ms: i32) -> Result<(), Error> {
        Ok(self
            .blocking
            .close("rmqs_connection_close", timeout_from_ms(timeout_ms))?)
    }

    /// The environment once connected, also after closing (for its counters,
    /// src/ffi/stats.rs).
    pub(crate) fn environment(&self) -> Option<&Environment> {
        self.blocking.connected()
    }
}

/// Lets super producers and consumers create partition producers and consumers in the
/// connection's environment later (lazily, on refresh); `None` once the connection is closed
/// or before it opened.
impl crate::client::EnvironmentHandle for ConnShared {
    fn environment(&self) -> Option<&Environment> {
        crate::client::EnvironmentHandle::environment(&*self.blocking)
    }
}

/// A connection to a RabbitMQ node or cluster (what other clients call the environment). Opaque.
///
/// It owns an internal Tokio runtime (threads named `rmqs-rt`: config key `runtime_threads`,
/// default 1), a locator connection to one of the seed hosts for management calls, and data
/// connections for producers and consumers, opened as needed (producers on the stream's
/// leader, consumers preferring a replica, several per TCP connection up to the configured
/// caps).
///
/// Created by `rmqs_connection_open()`; closed by `rmqs_connection_close()`; freed by
/// `rmqs_connection_free()`.
///
/// Thread safety: every function may be called from any thread concurrently, except
/// `rmqs_connection_free()`, which must be the last call.
///
/// @ingroup rmqs_connection
pub struct rmqs_connection {
    magic: u64,
    pub(crate) shared: Arc<ConnShared>,
}

impl Handle for rmqs_connection {
    const MAGIC: u64 = 0x726d_7173_636f_6e6e; // "rmqsconn"
    const NAME: &'static str = "rmqs_connection";
    fn magic(&self) -> u64 {
        self.magic
    }
}

fn open(
    settings: &Settings,
    log: Option<Arc<Registration<LogFn>>>,
    out: *mut *mut rmqs_connection,
) -> Result<(), Error> {
    let out = out_arg(out, "out")?;
    let config = settings.connection()?;
    let lazy = settings.lazy_open();
    if !lazy {
        check_may_block("rmqs_connection_open")?;
    }
    let log = ConnLog::new(log, settings.log_level());
    let thread_log = log.log.clone();
    let threads = settings.runtime_threads();
    let blocking = BlockingEnvironment::new(config, threads, log.log.clone(), move || {
        super::panic::mark_library_thread();
        super::panic::set_thread_log(thread_log.clone());
    });
    let shared = match blocking {
        Ok(b) => Arc::new(ConnShared {
            blocking: Arc::new(b),
            producer_defaults: settings.defaults("producer."),
            consumer_defaults: settings.defaults("consumer."),
            version: OnceLock::new(),
            log,
            dispatch: dispatch::pool(settings.dispatch_threads()),
        }),
        Err(e) => {
            log.detach();
            return Err(e.into());
        }
    };
    if !lazy {
        if let Err(e) = shared.connect("rmqs_connection_open") {
            shared.shutdown(SHUTDOWN_TIMEOUT);
            shared.log.detach();
            return Err(e.into());
        }
    }
    let conn = Box::new(rmqs_connection {
        magic: rmqs_connection::MAGIC,
        shared,
    });
    // SAFETY: checked non-NULL; the caller passes a writable pointer.
    unsafe { write_out(out, Box::into_raw(conn)) };
    Ok(())
}

/// Opens a connection.
///
/// Blocks until the locator connection to the first answering seed host is open and the
/// handshake (PeerProperties, SASL, Tune, Open and, with RabbitMQ 3.11+, command versions) is
/// done, bounded by `connect_timeout_ms` per seed host plus twice `request_timeout_ms`. With
/// `lazy_open` it does not connect: the first call that needs the broker does, and calls made
/// meanwhile wait for it.
///
/// @param cfg connection keys (see `rmqs_config_set()`; borrowed and copied), or NULL for the
///        defaults (`rabbitmq-stream://guest:guest@localhost:5552/%2f`). Keys that do not apply to
///        a connection are an error; `producer.*` / `consumer.*` keys become defaults for the
///        producers and consumers of this connection.
/// @param out receives the new connection, owned by the caller (free with
///        `rmqs_connection_free()`); written only on success.
/// @param err optional error detail.
/// @return `RMQS_OK`; `RMQS_ERR_INVALID_ARGUMENT` (bad config, NULL `out`);
///         `RMQS_ERR_AUTHENTICATION_FAILURE` (8) and other broker codes; `RMQS_ERR_IO`,
///         `RMQS_ERR_TLS`, `RMQS_ERR_TIMEOUT`; `RMQS_ERR_WOULD_DEADLOCK` from a library callback
///         (unless lazy).
///
/// Thread-safe; blocks (unless lazy).
///
/// @ingroup rmqs_connection
#[must_use]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_connection_open(
    cfg: *const rmqs_config,
    out: *mut *mut rmqs_connection,
    err: *mut *mut rmqs_error,
) -> rmqs_status {
    // SAFETY: err is NULL or writable per the conventions; cfg NULL or live.
    unsafe {
        ffi_status(err, || {
            let log = if cfg.is_null() {
                None
            } else {
                handle_arg(cfg)?.log.clone()
            };
            open(&settings_arg(cfg)?, log, out)
        })
    }
}

/// Opens a connection from a URI alone: the same as `rmqs_connection_open()` with a config
/// holding only `uri`.
///
/// @param uri `rabbitmq-stream://user:pass@host:port/vhost?key=value&...` or
///        `rabbitmq-stream+tls://...` (borrowed); the query parameters are those of the `uri`
///        key of `rmqs_config_set()`, any other is refused.
/// @param out receives the new connection (caller-owned), only on success.
/// @param err optional error detail.
/// @return as `rmqs_connection_open()`; `RMQS_ERR_INVALID_ARGUMENT` for a bad URI (the
///         message shows it with the password as `***`).
///
/// Thread-safe; blocks.
///
/// @ingroup rmqs_connection
#[must_use]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_connection_open_uri(
    uri: *const c_char,
    out: *mut *mut rmqs_connection,
    err: *mut *mut rmqs_error,
) -> rmqs_status {
    // SAFETY: as above.
    unsafe {
        ffi_status(err, || {
            let uri = str_arg(uri, "uri")?;
            let mut s = Settings::default();
            s.set("uri", uri)?;
            open(&s, None, out)
        })
    }
}

/// Closes the connection: closes every producer (waiting for their outstanding confirms) and
/// consumer created from it, then the TCP connections. Later calls on the connection and its
/// producers and consumers fail with `RMQS_ERR_CLOSED`; the handles stay valid until freed.
/// Closing again does nothing and returns `RMQS_OK`.
///
/// @param conn the connection (borrowed).
/// @param timeout_ms how long to wait for producers to drain and connections to close;
///        negative = no limit; 0 = start closing in the background and return at once.
/// @return `RMQS_OK`; `RMQS_ERR_INVALID_ARGUMENT` for a NULL/invalid handle;
///         `RMQS_ERR_WOULD_DEADLOCK` from a library callback with a timeout other than 0.
///
/// Thread-safe; blocks up to `timeout_ms`.
///
/// @ingroup rmqs_connection
#[must_use]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_connection_close(
    conn: *mut rmqs_connection,
    timeout_ms: i32,
    err: *mut *mut rmqs_error,
) -> rmqs_status {
    // SAFETY: conn is NULL or live.
    unsafe { ffi_status(err, || handle_arg(conn)?.shared.close(timeout_ms)) }
}

/// Frees a connection, closing it first if needed (with a 5 s limit) and stopping its runtime.
/// NULL is allowed and does nothing.
///
/// Producers and consumers created from it should be freed first; any that are not are closed
/// here, and their handles stay valid (every call on them fails with `RMQS_ERR_CLOSED`) until
/// they are freed. Last, the log callback's `user_data_free` runs (see
/// `rmqs_config_set_log_cb()`) unless the config it was set on still exists.
///
/// @param conn the connection (ownership passes to the library), or NULL. Not to be used
///        afterwards.
///
/// Blocks while closing. Called from a library callback, the work moves to a background
/// thread and the call returns at once.
///
/// @ingroup rmqs_connection
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_connection_free(conn: *mut rmqs_connection) {
    ffi_boundary((), || {
        // SAFETY: NULL or a live connection, freed once.
        if unsafe { handle_arg(conn) }.is_err() {
            return;
        }
        let mut b = unsafe { Box::from_raw(conn) };
        b.magic = 0;
        let shared = b.shared.clone();
        drop(b);
        let work = move || {
            let _ = shared.close(FREE_CLOSE_TIMEOUT.as_millis() as i32);
            shared.shutdown(SHUTDOWN_TIMEOUT);
            // the log callback's last call is over: its user_data_free runs now (unless the
            // config still holds it)
            shared.log.detach();
        };
        if thread_role() == ThreadRole::Application {
            work();
        } else {
            super::runtime::spawn_reaper(work);
        }
    })
}

/// Whether the broker accepts version `version` of stream-protocol command `command` (e.g.
/// `0x1c`, 1 for StreamStats). Brokers before 3.11 cannot be asked and are taken to speak
/// version 1 of commands 0x01–0x19.
///
/// @param conn the connection (borrowed).
/// @return false for a NULL handle or before the connection is open (lazy open).
///
/// Thread-safe; does not block.
///
/// @ingroup rmqs_connection
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_connection_supports(
    conn: *const rmqs_connection,
    command: u16,
    version: u16,
) -> bool {
    ffi_boundary(false, || {
        // SAFETY: NULL or live.
        unsafe { handle_arg(conn) }
            .ok()
            .and_then(|c| c.shared.info())
            .is_some_and(|i| i.supports(command, version))
    })
}

/// The broker's version as it reports it (e.g. `"4.0.5"`).
///
/// @param conn the connection (borrowed).
/// @return a NUL-terminated string owned by the connection, valid until it is freed; `""`
///         (static) for a NULL handle or before the connection is open. Never NULL.
///
/// Thread-safe; does not block.
///
/// @ingroup rmqs_connection
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_connection_server_version(
    conn: *const rmqs_connection,
) -> *const c_char {
    ffi_boundary(c"".as_ptr(), || {
        // SAFETY: NULL or live.
        unsafe { handle_arg(conn) }
            .ok()
            .and_then(|c| {
                let info = c.shared.info()?;
                Some(c.shared.version.get_or_init(|| {
                    CString::new(info.version_string().replace('\0', "")).unwrap_or_default()
                }))
            })
            .map_or(c"".as_ptr(), |v| v.as_ptr())
    })
}

/// The frame size and heartbeat the connection agreed with the broker at its handshake (the
/// Tune exchange): for each, the smaller of the configured value and the broker's, 0 on
/// either side meaning the other's (`frame_max` 0 and `heartbeat` 0 in the config take the
/// broker's). Every connection of the environment (locator, producers, consumers) agrees the
/// same values with the same broker.
///
/// @param conn the connection (borrowed).
/// @param frame_max receives the largest frame, in bytes, either side may send (0 =
///        unlimited); may be NULL.
/// @param heartbeat_s receives the heartbeat period in seconds (0 = no heartbeats); may be
///        NULL.
/// @param err optional error detail.
/// @return `RMQS_OK`; `RMQS_ERR_INVALID_ARGUMENT` for a NULL or freed connection;
///         `RMQS_ERR_CLOSED` once it is closed; with `lazy_open`, the errors of connecting.
///         The outputs are written only on success.
///
/// Thread-safe. Does not block once the connection is open; with `lazy_open` before then,
/// connects first (blocking as `rmqs_connection_open()`).
///
/// @ingroup rmqs_connection
#[must_use]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_connection_negotiated(
    conn: *const rmqs_connection,
    frame_max: *mut u32,
    heartbeat_s: *mut u32,
    err: *mut *mut rmqs_error,
) -> rmqs_status {
    // SAFETY: pointers checked; err NULL or writable; outputs NULL or writable.
    unsafe {
        ffi_status(err, || {
            let c = handle_arg(conn)?;
            let info = match c.shared.info() {
                Some(info) if !c.shared.is_closed() => info,
                _ => {
                    c.shared.connect("rmqs_connection_negotiated")?;
                    c.shared.info().ok_or_else(|| {
                        BlockingEnvironment::closed_error("rmqs_connection_negotiated")
                    })?
                }
            };
            if !frame_max.is_null() {
                write_out(frame_max, info.frame_max);
            }
            if !heartbeat_s.is_null() {
                write_out(heartbeat_s, info.heartbeat);
            }
            Ok(())
        })
    }
}
