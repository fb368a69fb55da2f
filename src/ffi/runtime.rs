//! The Tokio runtime of a connection, the rules for blocking calls, and the mapping of client
//! errors to statuses.
//!
//! Threads the library owns are marked with a thread-local role:
//! - `rmqs-rt` workers (and Tokio's blocking threads) of a connection's runtime;
//! - `rmqs-dispatch` threads, which run the application's callbacks.
//!
//! A call that would wait (for the broker, for confirms, for another thread) made from either
//! kind fails with `RMQS_ERR_WOULD_DEADLOCK` instead of hanging or panicking: a dispatcher
//! thread that waits cannot deliver the events it may be waiting for, and a Tokio worker
//! cannot `block_on`.

use std::cell::Cell;
use std::future::Future;
use std::sync::RwLock;
use std::time::Duration;

use tokio::sync::watch;

use super::error::Error;
use super::status::{rmqs_status_code, status_from_response_code};
use crate::client::ClientError;
use crate::client::log::Log;

/// What the current thread is, as far as the library knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ThreadRole {
    /// An application thread (the default).
    Application,
    /// A worker or blocking thread of a connection's Tokio runtime.
    Runtime,
    /// A dispatcher thread running the application's callbacks.
    Dispatcher,
}

thread_local! {
    static ROLE: Cell<ThreadRole> = const { Cell::new(ThreadRole::Application) };
}

/// Marks the current thread (a runtime or dispatcher thread is one of the library's, for the
/// panic hook too).
pub fn mark_thread(role: ThreadRole) {
    ROLE.with(|r| r.set(role));
    if role != ThreadRole::Application {
        super::panic::mark_library_thread();
    }
}

/// Runs `work` on a new `rmqs-reaper` thread (closing or freeing in the background, for calls
/// made on library threads), marked as the library's for the panic hook. The thread keeps the
/// application role otherwise: it may block.
pub fn spawn_reaper(work: impl FnOnce() + Send + 'static) {
    let _ = std::thread::Builder::new()
        .name("rmqs-reaper".into())
        .spawn(move || {
            super::panic::mark_library_thread();
            work()
        });
}

/// The current thread's role. A thread inside some Tokio runtime's context that the library
/// did not mark counts as a runtime thread too.
pub fn thread_role() -> ThreadRole {
    match ROLE.with(Cell::get) {
        ThreadRole::Application if tokio::runtime::Handle::try_current().is_ok() => {
            ThreadRole::Runtime
        }
        role => role,
    }
}

/// Fails with `RMQS_ERR_WOULD_DEADLOCK` when the current thread must not block; `what` names
/// the call in the message.
pub fn check_may_block(what: &str) -> Result<(), Error> {
    match thread_role() {
        ThreadRole::Application => Ok(()),
        ThreadRole::Dispatcher => Err(Error::new(
            rmqs_status_code::RMQS_ERR_WOULD_DEADLOCK,
            format!(
                "{what} would block in a library callback (an rmqs-dispatch thread); \
                 call it from another thread, or use a timeout of 0 where allowed"
            ),
        )),
        ThreadRole::Runtime => Err(Error::new(
            rmqs_status_code::RMQS_ERR_WOULD_DEADLOCK,
            format!("{what} would block on a Tokio runtime thread"),
        )),
    }
}

/// A timeout in milliseconds from C: negative waits forever, 0 does not wait.
pub fn timeout_from_ms(ms: i32) -> Option<Duration> {
    (ms >= 0).then(|| Duration::from_millis(ms as u64))
}

/// Maps a client error to the status and message of the C API.
pub fn client_error(e: ClientError) -> Error {
    use rmqs_status_code::*;
    let status = match &e {
        ClientError::Server { code, .. } | ClientError::Auth(code) => {
            status_from_response_code(code.as_u16())
        }
        ClientError::Io(_) => RMQS_ERR_IO.status(),
        ClientError::Tls(_) => RMQS_ERR_TLS.status(),
        ClientError::Protocol(_) => RMQS_ERR_PROTOCOL.status(),
        ClientError::Timeout(..) => RMQS_ERR_TIMEOUT.status(),
        ClientError::Closed(_) => RMQS_ERR_CLOSED.status(),
        ClientError::Unsupported { .. } => RMQS_ERR_UNSUPPORTED.status(),
        ClientError::InvalidArgument(_) => RMQS_ERR_INVALID_ARGUMENT.status(),
        ClientError::QueueFull(_) => RMQS_ERR_QUEUE_FULL.status(),
        ClientError::NotConfirmed(_) => RMQS_ERR_NOT_CONFIRMED.status(),
    };
    // An Auth/Server code of 1 (OK) never reaches here; keep the status an error anyway.
    let status = if status == 0 {
        RMQS_ERR_PROTOCOL.status()
    } else {
        status
    };
    Error::new(status, e.to_string())
}

impl From<ClientError> for Error {
    fn from(e: ClientError) -> Self {
        client_error(e)
    }
}

/// The Tokio runtime owned by one connection: multi-threaded, 2 workers named `rmqs-rt`, IO and
/// time drivers. Shut down by [`Runtime::shutdown`], after which blocking calls fail with
/// `RMQS_ERR_CLOSED`.
pub struct Runtime {
    rt: RwLock<Option<tokio::runtime::Runtime>>,
    handle: tokio::runtime::Handle,
    /// Becomes true when the owner closes: every `block_on` in progress returns CLOSED.
    closing: watch::Sender<bool>,
}

impl Runtime {
    /// Starts the runtime's threads; panics caught on them are logged to `log`.
    pub fn new(log: Log) -> Result<Runtime, Error> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("rmqs-rt")
            .on_thread_start(move || {
                mark_thread(ThreadRole::Runtime);
                super::panic::set_thread_log(log.clone());
            })
            .enable_all()
            .build()
            .map_err(|e| {
                Error::new(
                    rmqs_status_code::RMQS_ERR_IO,
                    format!("cannot start the Tokio runtime: {e}"),
                )
            })?;
        let handle = rt.handle().clone();
        Ok(Runtime {
            rt: RwLock::new(Some(rt)),
            handle,
            closing: watch::channel(false).0,
        })
    }

    /// The runtime's handle, for spawning. Tasks spawned after shutdown are dropped unrun.
    pub fn handle(&self) -> &tokio::runtime::Handle {
        &self.handle
    }

    /// Makes every `block_on` in progress (and later) return `RMQS_ERR_CLOSED`, except those
    /// started with `ignore_closing`.
    pub fn signal_closing(&self) {
        self.closing.send_replace(true);
    }

    /// True once [`Runtime::signal_closing`] was called.
    pub fn is_closing(&self) -> bool {
        *self.closing.borrow()
    }

    /// Runs `fut` to completion on the calling thread, within `timeout` (None = no limit).
    ///
    /// Fails with `RMQS_ERR_WOULD_DEADLOCK` on library threads, `RMQS_ERR_TIMEOUT` (message
    /// naming `what`) when the time runs out, `RMQS_ERR_CLOSED` once the runtime is shut down
    /// or, unless `ignore_closing`, once the owner signalled closing.
    pub fn block_on<F: Future>(
        &self,
        what: &str,
        timeout: Option<Duration>,
        ignore_closing: bool,
        fut: F,
    ) -> Result<F::Output, Error> {
        check_may_block(what)?;
        let closed = || Error::new(rmqs_status_code::RMQS_ERR_CLOSED, format!("{what}: closed"));
        let guard = self.rt.read().unwrap_or_else(|e| e.into_inner());
        let Some(rt) = guard.as_ref() else {
            return Err(closed());
        };
        let mut closing = self.closing.subscribe();
        if !ignore_closing && *closing.borrow_and_update() {
            return Err(closed());
        }
        rt.block_on(async move {
            let limited = async {
                match timeout {
                    Some(t) => tokio::time::timeout(t, fut).await.map_err(|_| {
                        Error::new(
                            rmqs_status_code::RMQS_ERR_TIMEOUT,
                            format!("{what}: timed out after {} ms", t.as_millis()),
                        )
                    }),
                    None => Ok(fut.await),
                }
            };
            if ignore_closing {
                return limited.await;
            }
            tokio::select! {
                biased;
                r = limited => r,
                _ = closing.wait_for(|c| *c) => Err(closed()),
            }
        })
    }

    /// Signals closing and shuts the runtime down, waiting at most `timeout` for its tasks.
    /// Waits for `block_on` calls in progress to end first. Idempotent. Must not be called
    /// from one of the runtime's own threads.
    pub fn shutdown(&self, timeout: Duration) {
        self.signal_closing();
        let rt = self.rt.write().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(rt) = rt {
            rt.shutdown_timeout(timeout);
        }
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        // Dropping a Tokio runtime on one of its own threads panics: hand it to a plain
        // thread in that (unexpected) case.
        let rt = self.rt.get_mut().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(rt) = rt {
            if thread_role() == ThreadRole::Application {
                rt.shutdown_timeout(Duration::from_secs(1));
            } else {
                spawn_reaper(move || rt.shutdown_timeout(Duration::from_secs(1)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ffi::status::rmqs_status_code::*;

    #[test]
    fn block_on_runs_and_times_out() {
        let rt = Runtime::new(Log::off()).unwrap();
        assert_eq!(rt.block_on("x", None, false, async { 5 }).unwrap(), 5);
        let e = rt
            .block_on(
                "waiting",
                Some(Duration::from_millis(10)),
                false,
                std::future::pending::<()>(),
            )
            .unwrap_err();
        assert_eq!(e.status, RMQS_ERR_TIMEOUT.status());
        assert!(e.message.contains("waiting"), "{}", e.message);
        // runtime threads are marked
        let role = rt
            .block_on("x", None, false, async {
                tokio::spawn(async { thread_role() }).await.unwrap()
            })
            .unwrap();
        assert_eq!(role, ThreadRole::Runtime);
        rt.shutdown(Duration::from_secs(1));
        let e = rt.block_on("after", None, true, async {}).unwrap_err();
        assert_eq!(e.status, RMQS_ERR_CLOSED.status());
    }

    #[test]
    fn closing_interrupts_block_on() {
        let rt = std::sync::Arc::new(Runtime::new(Log::off()).unwrap());
        let rt2 = rt.clone();
        let t = std::thread::spawn(move || {
            rt2.block_on("forever", None, false, std::future::pending::<()>())
        });
        std::thread::sleep(Duration::from_millis(50));
        rt.signal_closing();
        let e = t.join().unwrap().unwrap_err();
        assert_eq!(e.status, RMQS_ERR_CLOSED.status());
    }

    #[test]
    fn dispatcher_threads_may_not_block() {
        let rt = Runtime::new(Log::off()).unwrap();
        let st = std::thread::scope(|s| {
            s.spawn(|| {
                mark_thread(ThreadRole::Dispatcher);
                rt.block_on("flush", None, false, async {}).unwrap_err()
            })
            .join()
            .unwrap()
        });
        assert_eq!(st.status, RMQS_ERR_WOULD_DEADLOCK.status());
        assert!(st.message.contains("flush"));
    }

    #[test]
    fn errors_map_to_statuses() {
        use crate::protocol::codes::ResponseCode;
        let e = client_error(ClientError::Server {
            operation: "x",
            code: ResponseCode::STREAM_DOES_NOT_EXIST,
        });
        assert_eq!(e.status, 2);
        assert_eq!(
            client_error(ClientError::Auth(ResponseCode::AUTHENTICATION_FAILURE)).status,
            8
        );
        assert_eq!(
            client_error(ClientError::Timeout(1, "x")).status,
            RMQS_ERR_TIMEOUT.status()
        );
        assert_eq!(
            client_error(ClientError::QueueFull(3)).status,
            RMQS_ERR_QUEUE_FULL.status()
        );
    }
}
