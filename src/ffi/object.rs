//! What the four producer and consumer handles (`rmqs_producer`, `rmqs_consumer`,
//! `rmqs_super_producer`, `rmqs_super_consumer`) share: their creation around the client call,
//! what their close does (closing once, in the background or within a timeout, the open check
//! and closing with their connection's environment are the client's [`Closable`]), flushing,
//! their partition names, and freeing.

use std::ffi::{CString, c_char};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::args::{Handle, handle_arg, write_out};
use super::config::rmqs_config;
use super::connection::ConnShared;
use super::dispatch::{CallbackLane, CallbackPool, Sink};
use super::error::Error;
use super::queue::{QueueShared, rmqs_event_source_code, rmqs_state_code, to_cstring};
use super::runtime::{ThreadRole, check_may_block, thread_role, timeout_from_ms};
use super::status::rmqs_status_code;
use crate::client::ClientError;
use crate::client::blocking::{BlockingEnvironment, Closable};
use crate::client::environment::close_within;

/// How long freeing a handle lets its object close.
const FREE_CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// What the four objects hold alike: their connection, where their events go, and whether
/// closing has started ([`Closable::closed_flag`]).
pub(crate) struct Base {
    pub conn: Arc<ConnShared>,
    pub sink: Arc<Sink>,
    closed: AtomicBool,
}

/// The shared state behind one of the four handles: closed as the client's [`Closable`]
/// closes it.
pub(crate) trait Object: Send + Sync + Sized + 'static {
    /// `producer`, `super consumer`, ...: for messages.
    const NOUN: &'static str;
    /// The C function that closes it (`rmqs_producer_close`, ...): for messages.
    const CLOSE: &'static str;
    /// Producers close before consumers when their connection closes.
    const PRODUCER: bool;

    fn base(&self) -> &Base;

    fn conn(&self) -> &Arc<ConnShared> {
        &self.base().conn
    }

    /// Closes the client object within `timeout` (None = no limit) and reports the end (see
    /// [`Closable::shut`]).
    fn shut(
        &self,
        timeout: Option<Duration>,
    ) -> impl Future<Output = Result<(), Error>> + Send + '_;

    /// When the handle is freed, after closing: stops the dispatcher, detaches the hooks.
    fn release(&self);
}

impl<O: Object> Closable for O {
    type Error = Error;
    const NOUN: &'static str = O::NOUN;
    const CLOSE: &'static str = O::CLOSE;
    const PRODUCER: bool = O::PRODUCER;

    fn owner(&self) -> &BlockingEnvironment {
        self.conn()
    }

    fn closed_flag(&self) -> &AtomicBool {
        &self.base().closed
    }

    fn shut(
        &self,
        timeout: Option<Duration>,
    ) -> impl Future<Output = Result<(), Error>> + Send + '_ {
        Object::shut(self, timeout)
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

/// The client's [`close_within`], its timeout naming `what`.
async fn within(
    what: &str,
    timeout: Option<Duration>,
    close: impl Future<Output = Result<(), ClientError>>,
) -> Result<(), Error> {
    close_within(timeout, close).await.map_err(|e| match e {
        ClientError::Timeout(..) => {
            Error::new(rmqs_status_code::RMQS_ERR_TIMEOUT, format!("{what}: {e}"))
        }
        e => e.into(),
    })
}

/// The C handle of an [`Object`]: a magic number and the object.
pub(crate) trait ObjectHandle: Handle + Sized + 'static {
    type Object: Object;
    /// A live handle of `inner`.
    fn new(inner: Arc<Self::Object>) -> Self;
    fn inner(&self) -> &Arc<Self::Object>;
    /// Makes the handle fail the magic check (it is being freed).
    fn clear_magic(&mut self);
}

/// An object being created by `rmqs_*_new`: the connection it belongs to and its sink, ready
/// before the client object exists (the client call is handed its events).
pub(crate) struct Creation {
    pub conn: Arc<ConnShared>,
    pub sink: Arc<Sink>,
}

impl Creation {
    /// Checks that an object may be created now (on a thread that may block, the connection
    /// open; `what` names the C function), then makes its sink: `source` events tagged `tag`
    /// go to the callback lane `lane` makes in the connection's dispatcher pool (if any) and/or
    /// to `queue`; the state callback comes from `cfg`.
    ///
    /// # Safety
    /// `cfg` must be NULL or a live config.
    pub unsafe fn start(
        what: &'static str,
        conn: &Arc<ConnShared>,
        source: rmqs_event_source_code,
        tag: usize,
        queue: Option<Arc<QueueShared>>,
        cfg: *const rmqs_config,
        lane: impl FnOnce(&CallbackPool) -> Result<Option<CallbackLane>, Error>,
    ) -> Result<Creation, Error> {
        check_may_block(what)?;
        if conn.is_closed() {
            return Err(BlockingEnvironment::closed_error(what).into());
        }
        let callback = lane(&conn.dispatch)?;
        // SAFETY: per the contract.
        let sink = unsafe { Sink::new(source, tag, callback, queue, cfg, &conn.dispatch) }?;
        Ok(Creation {
            conn: conn.clone(),
            sink: Arc::new(sink),
        })
    }

    /// Ends the creation with the client call's outcome: on success the object `make` builds
    /// joins its connection's environment (closing with it) and its handle goes to `out`; on
    /// failure the sink stops and `undo` runs.
    ///
    /// # Safety
    /// `out` must be valid for writing a pointer (checked non-NULL by `out_arg`).
    pub unsafe fn finish<H: ObjectHandle, T>(
        self,
        out: *mut *mut H,
        created: Result<T, ClientError>,
        undo: impl FnOnce(),
        make: impl FnOnce(Base, T) -> H::Object,
    ) -> Result<(), Error> {
        let client = match created {
            Ok(c) => c,
            Err(e) => {
                self.sink.abort();
                undo();
                return Err(e.into());
            }
        };
        let base = Base {
            conn: self.conn.clone(),
            sink: self.sink,
            closed: AtomicBool::new(false),
        };
        let inner = Arc::new(make(base, client));
        self.conn.adopt(&inner);
        // SAFETY: per the contract.
        unsafe { write_out(out, Box::into_raw(Box::new(H::new(inner)))) };
        Ok(())
    }
}

/// `rmqs_*_close`: closes `o` as [`Closable::close`] does, within `timeout_ms` (negative = no
/// limit, 0 = in the background).
pub(crate) fn close<O: Object>(o: &Arc<O>, timeout_ms: i32) -> Result<(), Error> {
    o.close(timeout_from_ms(timeout_ms))
}

/// `rmqs_*_flush`: `flush` (the client's, within the timeout), then waits until the confirm
/// callback has seen what it confirmed. `timeout_ms` 0 blocks nowhere.
pub(crate) fn flush<O: Object>(
    what: &'static str,
    o: &O,
    timeout_ms: i32,
    flush: impl FnOnce(Duration) -> Result<(), ClientError>,
) -> Result<(), Error> {
    let timeout = timeout_from_ms(timeout_ms).unwrap_or(Duration::MAX);
    if !timeout.is_zero() {
        check_may_block(what)?;
    }
    let deadline = Instant::now().checked_add(timeout);
    flush(timeout)?;
    if o.base().sink.wait_idle(deadline) {
        Ok(())
    } else {
        Err(Error::new(
            rmqs_status_code::RMQS_ERR_TIMEOUT,
            format!("{what}: the confirm callback is still busy"),
        ))
    }
}

/// The partition names a super producer or consumer hands out: every list handed out stays
/// valid (NUL-terminated) until the object is freed, also across refreshes.
#[derive(Default)]
pub(crate) struct PartitionNames(Mutex<Vec<Vec<CString>>>);

impl PartitionNames {
    /// The name of partition `index` of `now` (the current partitions); NULL out of range.
    pub fn get(&self, now: Vec<String>, index: usize) -> *const c_char {
        let mut g = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let same = g.last().is_some_and(|last| {
            last.len() == now.len()
                && last
                    .iter()
                    .zip(&now)
                    .all(|(a, b)| a.as_bytes() == b.as_bytes())
        });
        if !same {
            g.push(now.into_iter().map(to_cstring).collect());
        }
        g.last()
            .and_then(|names| names.get(index))
            .map_or(std::ptr::null(), |n| n.as_ptr())
    }
}

/// `rmqs_super_*_refresh`: `refresh` (the client's) within `round_trips` operation timeouts;
/// the partition count to `count_out` (may be NULL).
///
/// # Safety
/// `count_out` must be NULL or valid for writing.
pub(crate) unsafe fn refresh<O: Object>(
    what: &'static str,
    o: &O,
    round_trips: u32,
    count_out: *mut usize,
    refresh: impl Future<Output = Result<Vec<String>, ClientError>>,
) -> Result<(), Error> {
    o.check_open(what)?;
    let conn = o.conn();
    let parts = conn.block(what, Some(conn.op_timeout() * round_trips), refresh)?;
    if !count_out.is_null() {
        // SAFETY: per the contract.
        unsafe { write_out(count_out, parts.len()) };
    }
    Ok(())
}

/// `rmqs_*_free`: `h` NULL or a live handle, freed once. Its magic is cleared, then its
/// object closes (within 5 s) and is released, on this thread or, on a library thread, in the
/// background.
///
/// # Safety
/// `h` must be NULL or a live handle, not used afterwards.
pub(crate) unsafe fn free<H: ObjectHandle>(h: *mut H) {
    // SAFETY: per the contract.
    if unsafe { handle_arg(h) }.is_err() {
        return;
    }
    // SAFETY: live (checked) and freed once.
    let mut b = unsafe { Box::from_raw(h) };
    b.clear_magic();
    let inner = b.inner().clone();
    drop(b);
    let work = move || {
        let _ = inner.close(Some(FREE_CLOSE_TIMEOUT));
        inner.release();
    };
    if thread_role() == ThreadRole::Application {
        work();
    } else {
        super::runtime::spawn_reaper(work);
    }
}

/// Implements [`Handle`] and [`ObjectHandle`] for a handle struct
/// `{ magic: u64, inner: Arc<object> }`.
macro_rules! object_handle {
    ($handle:ident, $object:ty, $magic:expr) => {
        impl $crate::ffi::args::Handle for $handle {
            const MAGIC: u64 = $magic;
            const NAME: &'static str = stringify!($handle);
            fn magic(&self) -> u64 {
                self.magic
            }
        }

        impl $crate::ffi::object::ObjectHandle for $handle {
            type Object = $object;
            fn new(inner: std::sync::Arc<$object>) -> Self {
                $handle {
                    magic: <Self as $crate::ffi::args::Handle>::MAGIC,
                    inner,
                }
            }
            fn inner(&self) -> &std::sync::Arc<$object> {
                &self.inner
            }
            fn clear_magic(&mut self) {
                self.magic = 0;
            }
        }
    };
}
pub(crate) use object_handle;
