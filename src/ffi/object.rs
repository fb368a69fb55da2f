//! What the four producer and consumer handles (`rmqs_producer`, `rmqs_consumer`,
//! `rmqs_super_producer`, `rmqs_super_consumer`) share: closing once (at once in the
//! background, or blocking within a timeout), the open check, closing with their connection's
//! environment, and freeing.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::args::{Handle, handle_arg};
use super::connection::ConnShared;
use super::dispatch::Sink;
use super::error::Error;
use super::queue::rmqs_state_code;
use super::runtime::{ThreadRole, check_may_block, thread_role, timeout_from_ms};
use super::status::rmqs_status_code;
use crate::client::ClientError;
use crate::client::blocking::BlockingEnvironment;
use crate::client::environment::Child;

/// How long freeing a handle lets its object close.
const FREE_CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// The shared state behind one of the four handles.
pub(crate) trait Object: Send + Sync + Sized + 'static {
    /// `producer`, `super consumer`, ...: for messages.
    const NOUN: &'static str;
    /// The C function that closes it (`rmqs_producer_close`, ...): for messages.
    const CLOSE: &'static str;
    /// Producers close before consumers when their connection closes.
    const PRODUCER: bool;

    fn conn(&self) -> &Arc<ConnShared>;

    /// Set once closing starts.
    fn closed_flag(&self) -> &AtomicBool;

    /// Closes the client object within `timeout` (None = no limit) and reports the end. Runs
    /// once, from [`close_async`](Object::close_async).
    fn shut(
        &self,
        timeout: Option<Duration>,
    ) -> impl Future<Output = Result<(), Error>> + Send + '_;

    /// When the handle is freed, after closing: stops the dispatcher, detaches the hooks.
    fn release(&self);

    /// Closes once; later calls return `Ok` at once.
    fn close_async(
        &self,
        timeout: Option<Duration>,
    ) -> impl Future<Output = Result<(), Error>> + Send + '_ {
        async move {
            if self.closed_flag().swap(true, Ordering::AcqRel) {
                return Ok(());
            }
            self.shut(timeout).await
        }
    }

    /// `rmqs_*_close`: `timeout_ms` 0 closes in the background; otherwise blocks (never on a
    /// library thread) up to `timeout_ms` (negative = no limit).
    fn close(self: &Arc<Self>, timeout_ms: i32) -> Result<(), Error> {
        let timeout = timeout_from_ms(timeout_ms);
        if timeout == Some(Duration::ZERO) {
            if !self.closed_flag().load(Ordering::Acquire) {
                let me = self.clone();
                self.conn().runtime().handle().spawn(async move {
                    let _ = me.close_async(Some(Duration::ZERO)).await;
                });
            }
            return Ok(());
        }
        check_may_block(Self::CLOSE)?;
        if self.closed_flag().load(Ordering::Acquire) {
            return Ok(());
        }
        match self
            .conn()
            .runtime()
            .block_on(Self::CLOSE, None, true, self.close_async(timeout))
        {
            Ok(r) => r,
            // the runtime is gone: the connection closed everything already
            Err(ClientError::Closed(_)) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// `RMQS_ERR_CLOSED` naming `what` once the object or its connection is closed.
    fn check_open(&self, what: &str) -> Result<(), Error> {
        if self.closed_flag().load(Ordering::Acquire) {
            return Err(Error::new(
                rmqs_status_code::RMQS_ERR_CLOSED,
                format!("{what}: the {} is closed", Self::NOUN),
            ));
        }
        if self.conn().is_closed() {
            return Err(BlockingEnvironment::closed_error(what).into());
        }
        Ok(())
    }
}

/// A producer's [`Object::shut`]: `close` (which waits for the confirms), then
/// `RMQS_STATE_CLOSED` with its outcome.
pub(crate) async fn shut_producer(
    sink: &Sink,
    close: impl Future<Output = Result<(), ClientError>>,
) -> Result<(), Error> {
    let r = close.await.map_err(Error::from);
    sink.state(rmqs_state_code::RMQS_STATE_CLOSED, r.clone().err());
    r
}

/// A consumer's [`Object::shut`]: marks the close as the application's (`by_app`), runs
/// `close` (which waits for the broker) within `timeout`, at least 100 ms
/// (`RMQS_ERR_TIMEOUT` naming `what` after), then drops the chunks not yet handed to the
/// callback (their credit released).
pub(crate) async fn shut_consumer(
    what: &str,
    timeout: Option<Duration>,
    by_app: &AtomicBool,
    sink: &Sink,
    close: impl Future<Output = Result<(), ClientError>>,
) -> Result<(), Error> {
    by_app.store(true, Ordering::Release);
    let r = within(what, timeout, close).await;
    sink.discard_pending();
    r
}

async fn within(
    what: &str,
    timeout: Option<Duration>,
    close: impl Future<Output = Result<(), ClientError>>,
) -> Result<(), Error> {
    match timeout {
        Some(t) => match tokio::time::timeout(t.max(Duration::from_millis(100)), close).await {
            Ok(r) => r.map_err(Error::from),
            Err(_) => Err(Error::new(
                rmqs_status_code::RMQS_ERR_TIMEOUT,
                format!("{what}: timed out waiting for the broker"),
            )),
        },
        None => close.await.map_err(Error::from),
    }
}

/// Every object closes with its connection's environment.
impl<O: Object> Child for O {
    fn close_for_environment(
        &self,
        timeout: Option<Duration>,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(async move {
            let _ = self.close_async(timeout).await;
        })
    }

    fn is_producer(&self) -> bool {
        O::PRODUCER
    }
}

/// `rmqs_*_free`: `h` NULL or a live handle, freed once. `take` clears the handle's magic and
/// returns its object, which then closes (within 5 s) and is released, on this thread or, on a
/// library thread, in the background.
///
/// # Safety
/// `h` must be NULL or a live handle, not used afterwards.
pub(crate) unsafe fn free<H: Handle, O: Object>(h: *mut H, take: impl FnOnce(&mut H) -> Arc<O>) {
    // SAFETY: per the contract.
    if unsafe { handle_arg(h) }.is_err() {
        return;
    }
    // SAFETY: live (checked) and freed once.
    let mut b = unsafe { Box::from_raw(h) };
    let inner = take(&mut b);
    drop(b);
    let work = move || {
        let _ = inner.close(FREE_CLOSE_TIMEOUT.as_millis() as i32);
        inner.release();
    };
    if thread_role() == ThreadRole::Application {
        work();
    } else {
        super::runtime::spawn_reaper(work);
    }
}
