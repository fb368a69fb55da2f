//! `rmqs_queue` and `rmqs_event`: the poll-mode delivery of chunks, confirms, state changes and
//! errors.

use std::collections::VecDeque;
use std::ffi::{CString, c_char};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::args::{Handle, handle_arg, out_arg, write_out};
use super::chunk::{ChunkRef, rmqs_chunk};
use super::error::{Error, rmqs_error};
use super::panic::{ffi_boundary, ffi_status};
use super::runtime::{check_may_block, timeout_from_ms};
use super::status::{rmqs_status, rmqs_status_code};
use crate::client::blocking::wait_counted;

/// The outcome of one message sent by a producer.
///
/// @ingroup rmqs_events
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct rmqs_confirm {
    /// The publishing id the message was sent with.
    pub publishing_id: u64,
    /// The tag given to the send call.
    pub tag: usize,
    /// `RMQS_OK`: stored by the broker (for a named producer, possibly dropped as a duplicate
    /// of an id it had already); a positive broker code: refused (PublishError);
    /// `RMQS_ERR_TIMEOUT`: no confirm within `confirm_timeout_ms`; `RMQS_ERR_CLOSED`: the
    /// producer or its connection closed first. In the last two cases the broker may still
    /// have stored the message.
    pub status: rmqs_status,
}

/// The outcome of one message sent by a super producer: an `rmqs_confirm` and the partition
/// the message went to.
///
/// @ingroup rmqs_events
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct rmqs_super_confirm {
    /// The publishing id the message was sent with (ids are per partition).
    pub publishing_id: u64,
    /// The tag given to the send call.
    pub tag: usize,
    /// As `rmqs_confirm.status`.
    pub status: rmqs_status,
    /// The partition: its index in the super producer's partition list
    /// (`rmqs_super_producer_partition()`), as of the confirm.
    pub partition: u32,
}

/// Writes an array's element count and stride to the optional out-pointers of an accessor.
///
/// # Safety
/// `count` and `stride` are NULL or writable.
unsafe fn write_count_stride<T>(count: *mut usize, stride: *mut usize, n: usize) {
    if !count.is_null() {
        // SAFETY: per the contract.
        unsafe { count.write(n) };
    }
    if !stride.is_null() {
        // SAFETY: per the contract.
        unsafe { stride.write(std::mem::size_of::<T>()) };
    }
}

/// Kinds of event (`rmqs_event_type()`).
///
/// @ingroup rmqs_events
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum rmqs_event_type_code {
    /// A chunk delivered to a consumer: `rmqs_event_chunk()`.
    RMQS_EVENT_CHUNK = 1,
    /// Outcomes of messages sent by a producer: `rmqs_event_confirms()`.
    RMQS_EVENT_CONFIRMS = 2,
    /// The producer or consumer changed state: `rmqs_event_state()`, with the reason in
    /// `rmqs_event_status()` / `rmqs_event_message()`.
    RMQS_EVENT_STATE = 3,
    /// A non-fatal error (e.g. a chunk failing its CRC check): `rmqs_event_status()`,
    /// `rmqs_event_message()`.
    RMQS_EVENT_ERROR = 4,
    /// Outcomes of messages sent by a super producer: `rmqs_event_super_confirms()`.
    RMQS_EVENT_SUPER_CONFIRMS = 5,
    /// A single active consumer is activated or steps down: `rmqs_event_consumer_update()`,
    /// answered with `rmqs_event_consumer_update_reply()` (or with the default when the event
    /// is freed unanswered).
    RMQS_EVENT_CONSUMER_UPDATE = 6,
}

/// Which kind of object an event comes from (`rmqs_event_source()`).
///
/// @ingroup rmqs_events
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum rmqs_event_source_code {
    /// An `rmqs_producer`.
    RMQS_SOURCE_PRODUCER = 1,
    /// An `rmqs_consumer`.
    RMQS_SOURCE_CONSUMER = 2,
    /// An `rmqs_super_producer`.
    RMQS_SOURCE_SUPER_PRODUCER = 3,
    /// An `rmqs_super_consumer`.
    RMQS_SOURCE_SUPER_CONSUMER = 4,
}

/// States reported by `RMQS_EVENT_STATE` events (`rmqs_event_state()`).
///
/// @ingroup rmqs_events
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum rmqs_state_code {
    /// The object is closed for good: closed by the application (status `RMQS_OK`), or, for
    /// consumers, its stream or connection was lost (the status and message say why). Its last
    /// event.
    ///
    /// Closed not by the application: the stream was deleted (`RMQS_ERR_STREAM_DOES_NOT_EXIST`),
    /// recovery is off (key `recovery`) or ran out of attempts (`recovery_attempts`; the last
    /// attempt's error), or the connection was closed.
    RMQS_STATE_CLOSED = 1,
    /// The object lost its connection or its stream's leader (or replica) and is recovering;
    /// the status and message give the cause. Producers keep accepting sends within
    /// `max_in_flight` (they wait, or fail with `RMQS_ERR_QUEUE_FULL` when told not to block)
    /// and send them once recovered; consumers receive nothing meanwhile.
    RMQS_STATE_RECOVERING = 2,
    /// Back after `RMQS_STATE_RECOVERING`: a producer declared again on the stream's leader and
    /// sent again, with their original publishing ids, the messages still unconfirmed; a
    /// consumer subscribed again right after the last offset it delivered.
    RMQS_STATE_RECOVERED = 3,
}

/// What an event carries.
pub(crate) enum Payload {
    Chunk(ChunkRef),
    Confirms(Vec<rmqs_confirm>),
    SuperConfirms(Vec<rmqs_super_confirm>),
    State {
        state: rmqs_state_code,
        status: rmqs_status,
        message: CString,
    },
    Error {
        status: rmqs_status,
        message: CString,
    },
    ConsumerUpdate(Box<super::hooks::UpdateEvent>),
    /// Work for a dispatcher thread (a state callback), never queued.
    Call(Box<dyn FnOnce() + Send>),
}

impl Payload {
    pub(crate) fn state(state: rmqs_state_code, e: Option<Error>) -> Payload {
        let (status, message) = match e {
            Some(e) => (e.status, e.message),
            None => (0, String::new()),
        };
        Payload::State {
            state,
            status,
            message: to_cstring(message),
        }
    }

    pub(crate) fn error(e: Error) -> Payload {
        Payload::Error {
            status: e.status,
            message: to_cstring(e.message),
        }
    }
}

pub(crate) fn to_cstring(s: String) -> CString {
    let mut b = s.into_bytes();
    b.retain(|&c| c != 0);
    CString::new(b).unwrap_or_default()
}

/// One event from an `rmqs_queue`. Opaque.
///
/// Returned by `rmqs_queue_poll()` / `rmqs_queue_poll_batch()`, owned by the caller, freed by
/// `rmqs_event_free()`. Views obtained from it (chunk, confirms, message) are valid until
/// then. Not thread-safe; may be moved between threads.
///
/// @ingroup rmqs_events
pub struct rmqs_event {
    magic: u64,
    source: rmqs_event_source_code,
    tag: usize,
    /// The super stream partition the event concerns; -1 for none.
    partition: i32,
    payload: Payload,
}

impl Handle for rmqs_event {
    const MAGIC: u64 = 0x726d_7173_6576_6e74; // "rmqsevnt"
    const NAME: &'static str = "rmqs_event";
    fn magic(&self) -> u64 {
        self.magic
    }
}

struct State {
    events: VecDeque<Box<rmqs_event>>,
    wakeups: usize,
    /// Pollers waiting on `cond`: an event signals only when one is (a futex call per event
    /// otherwise, while the application is busy with earlier ones).
    waiting: usize,
    freed: bool,
    /// The eventfd holds a non-zero count.
    fd_set: bool,
}

/// The shared part of a queue: held by the handle and by every producer and consumer that
/// delivers to it.
pub(crate) struct QueueShared {
    state: Mutex<State>,
    cond: Condvar,
    fd: Option<EventFd>,
}

impl QueueShared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn signal_fd(&self, st: &mut State) {
        if !st.fd_set {
            if let Some(fd) = &self.fd {
                fd.set();
            }
            st.fd_set = true;
        }
    }

    fn settle_fd(&self, st: &mut State) {
        if st.fd_set && st.events.is_empty() && st.wakeups == 0 {
            if let Some(fd) = &self.fd {
                fd.reset();
            }
            st.fd_set = false;
        }
    }

    /// Appends an event about super stream partition `partition` (-1: none); dropped at once
    /// when the queue was freed.
    pub(crate) fn push_partition(
        &self,
        source: rmqs_event_source_code,
        tag: usize,
        partition: i32,
        payload: Payload,
    ) {
        let ev = Box::new(rmqs_event {
            magic: rmqs_event::MAGIC,
            source,
            tag,
            partition,
            payload,
        });
        let mut st = self.lock();
        if st.freed {
            drop(st);
            drop(ev);
            return;
        }
        st.events.push_back(ev);
        self.signal_fd(&mut st);
        let waiting = st.waiting > 0;
        drop(st);
        if waiting {
            self.cond.notify_one();
        }
    }

    /// Takes up to `cap` events, waiting up to `timeout` (None = forever) for the first one.
    /// Returns early (empty) on a wakeup.
    #[allow(clippy::vec_box)] // the boxes are what C receives
    /// Up to `cap` events, waiting up to `timeout` for the first: `Some` with the events, or
    /// with none after a wakeup; `None` when the time ran out.
    fn take(&self, cap: usize, timeout: Option<Duration>) -> Option<Vec<Box<rmqs_event>>> {
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        let mut st = self.lock();
        loop {
            if !st.events.is_empty() {
                let n = cap.min(st.events.len());
                let out: Vec<_> = st.events.drain(..n).collect();
                self.settle_fd(&mut st);
                return Some(out);
            }
            if st.wakeups > 0 {
                st.wakeups = 0;
                self.settle_fd(&mut st);
                return Some(Vec::new());
            }
            if timeout == Some(Duration::ZERO) {
                return None;
            }
            let in_time;
            (st, in_time) = wait_counted(&self.cond, st, deadline, |s| &mut s.waiting);
            if !in_time {
                return None;
            }
        }
    }

    fn wakeup(&self) {
        let mut st = self.lock();
        st.wakeups += 1;
        self.signal_fd(&mut st);
        let waiting = st.waiting > 0;
        drop(st);
        if waiting {
            self.cond.notify_all();
        }
    }

    fn free(&self) {
        let events = {
            let mut st = self.lock();
            st.freed = true;
            let ev = std::mem::take(&mut st.events);
            st.wakeups = 0;
            self.settle_fd(&mut st);
            ev
        };
        drop(events);
        self.cond.notify_all();
    }
}

/// A Linux eventfd, readable while its counter is non-zero.
struct EventFd(std::os::fd::OwnedFd);

impl EventFd {
    #[cfg(target_os = "linux")]
    fn new() -> Option<EventFd> {
        use std::os::fd::FromRawFd;
        // SAFETY: plain syscall; the fd is owned from here on.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        (fd >= 0).then(|| EventFd(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) }))
    }

    #[cfg(not(target_os = "linux"))]
    fn new() -> Option<EventFd> {
        None
    }

    fn raw(&self) -> i32 {
        use std::os::fd::AsRawFd;
        self.0.as_raw_fd()
    }

    fn set(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live u64 to our own fd.
        let _ = unsafe { libc::write(self.raw(), (&one as *const u64).cast(), 8) };
    }

    fn reset(&self) {
        let mut v: u64 = 0;
        // SAFETY: reads 8 bytes into a live u64 from our own non-blocking fd.
        let _ = unsafe { libc::read(self.raw(), (&mut v as *mut u64).cast(), 8) };
    }
}

/// An event queue: producers and consumers created with it deliver their events here, and
/// the application takes them with `rmqs_queue_poll()` / `rmqs_queue_poll_batch()` on a
/// thread of its choice. Opaque.
///
/// Several producers and consumers may share one queue; `rmqs_event_source_tag()` tells them
/// apart. Events of one producer or consumer keep their order.
///
/// Thread safety: every function may be called from any thread concurrently, except
/// `rmqs_queue_free()`.
///
/// @ingroup rmqs_events
pub struct rmqs_queue {
    magic: u64,
    pub(crate) shared: Arc<QueueShared>,
}

impl Handle for rmqs_queue {
    const MAGIC: u64 = 0x726d_7173_7175_6575; // "rmqsqueu"
    const NAME: &'static str = "rmqs_queue";
    fn magic(&self) -> u64 {
        self.magic
    }
}

/// An optional queue argument (NULL: none) of an object being created.
///
/// # Safety
/// `q` must be NULL or a live queue.
pub(crate) unsafe fn queue_arg(q: *mut rmqs_queue) -> Result<Option<Arc<QueueShared>>, Error> {
    if q.is_null() {
        return Ok(None);
    }
    // SAFETY: per the contract.
    Ok(Some(unsafe { handle_arg(q) }?.shared.clone()))
}

/// Creates an event queue.
///
/// @param out receives the new queue, owned by the caller (free with `rmqs_queue_free()`),
///        only on success.
/// @return `RMQS_OK`; `RMQS_ERR_INVALID_ARGUMENT` when `out` is NULL.
///
/// Thread-safe; does not block.
///
/// @ingroup rmqs_events
#[must_use]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_queue_new(
    out: *mut *mut rmqs_queue,
    err: *mut *mut rmqs_error,
) -> rmqs_status {
    // SAFETY: out checked; err NULL or writable.
    unsafe {
        ffi_status(err, || {
            let out = out_arg(out, "out")?;
            let q = Box::new(rmqs_queue {
                magic: rmqs_queue::MAGIC,
                shared: Arc::new(QueueShared {
                    state: Mutex::new(State {
                        events: VecDeque::new(),
                        wakeups: 0,
                        waiting: 0,
                        freed: false,
                        fd_set: false,
                    }),
                    cond: Condvar::new(),
                    fd: EventFd::new(),
                }),
            });
            write_out(out, Box::into_raw(q));
            Ok(())
        })
    }
}

/// Takes events for [`rmqs_queue_poll`] and [`rmqs_queue_poll_batch`]: `Ok(events)` (none
/// after a wakeup), or the failure of a call that got nothing. Boxed: each goes to C as its own
/// pointer.
#[allow(clippy::vec_box)]
fn poll_events(
    what: &str,
    q: *mut rmqs_queue,
    cap: usize,
    timeout_ms: i32,
) -> Result<Vec<Box<rmqs_event>>, Error> {
    // SAFETY: NULL or live, per the callers' contract.
    let q = unsafe { handle_arg(q) }?;
    if timeout_ms != 0 {
        check_may_block(what)?;
    }
    q.shared
        .take(cap, timeout_from_ms(timeout_ms))
        .ok_or_else(|| {
            Error::new(
                rmqs_status_code::RMQS_ERR_TIMEOUT,
                format!("{what}: no event within {timeout_ms} ms"),
            )
        })
}

/// Takes the next event, waiting for one up to `timeout_ms`.
///
/// Typical loop: `while ((st = rmqs_queue_poll(q, -1, &ev, NULL)) == RMQS_OK && ev) { ...;
/// rmqs_event_free(ev); }` ends on `rmqs_queue_wakeup()` or an error.
///
/// @param q the queue (borrowed).
/// @param timeout_ms negative = wait forever; 0 = do not wait.
/// @param out receives, on `RMQS_OK`, a new event owned by the caller (free with
///        `rmqs_event_free()`), or NULL when `rmqs_queue_wakeup()` ended the wait.
/// @param err optional error detail.
/// @return `RMQS_OK`; `RMQS_ERR_TIMEOUT` when no event came within `timeout_ms` (at once for
///         0 and an empty queue); `RMQS_ERR_WOULD_DEADLOCK` when called with a non-zero timeout
///         from a library callback or runtime thread (waiting there could deadlock: the thread
///         may be the one that would deliver the event), so that a `poll(q, -1)` loop there
///         fails instead of spinning; a timeout of 0 works there; `RMQS_ERR_INVALID_ARGUMENT`
///         for a NULL or invalid queue or a NULL `out`. `*out` is written only on `RMQS_OK`.
///
/// Thread-safe; blocks up to `timeout_ms`.
///
/// @ingroup rmqs_events
#[must_use]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_queue_poll(
    q: *mut rmqs_queue,
    timeout_ms: i32,
    out: *mut *mut rmqs_event,
    err: *mut *mut rmqs_error,
) -> rmqs_status {
    // SAFETY: q checked, out checked, err NULL or writable.
    unsafe {
        ffi_status(err, || {
            let out = out_arg(out, "out")?;
            let ev = poll_events("rmqs_queue_poll", q, 1, timeout_ms)?.pop();
            write_out(out, ev.map_or(std::ptr::null_mut(), Box::into_raw));
            Ok(())
        })
    }
}

/// Takes up to `cap` events at once, waiting up to `timeout_ms` for the first one.
///
/// @param q the queue (borrowed).
/// @param events an array of at least `cap` pointers; on `RMQS_OK` the first `*count` receive
///        new events owned by the caller (each freed with `rmqs_event_free()`).
/// @param cap capacity of `events`, at least 1.
/// @param timeout_ms negative = wait forever; 0 = do not wait.
/// @param count receives, on `RMQS_OK`, the number of events written: 1 to `cap`, or 0 when
///        `rmqs_queue_wakeup()` ended the wait.
/// @param err optional error detail.
/// @return `RMQS_OK`; `RMQS_ERR_TIMEOUT`, `RMQS_ERR_WOULD_DEADLOCK` as `rmqs_queue_poll()`;
///         `RMQS_ERR_INVALID_ARGUMENT` for a NULL or invalid queue, a NULL `events` or
///         `count`, or `cap` 0. Nothing is written on failure.
///
/// Thread-safe; blocks up to `timeout_ms`.
///
/// @ingroup rmqs_events
#[must_use]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_queue_poll_batch(
    q: *mut rmqs_queue,
    events: *mut *mut rmqs_event,
    cap: usize,
    timeout_ms: i32,
    count: *mut usize,
    err: *mut *mut rmqs_error,
) -> rmqs_status {
    // SAFETY: q, events and count checked; err NULL or writable.
    unsafe {
        ffi_status(err, || {
            let events = out_arg(events, "events")?;
            let count = out_arg(count, "count")?;
            if cap == 0 {
                return Err(Error::invalid_argument("cap is 0"));
            }
            let got = poll_events("rmqs_queue_poll_batch", q, cap, timeout_ms)?;
            let n = got.len();
            for (i, ev) in got.into_iter().enumerate() {
                // SAFETY: the caller provides room for cap >= n pointers.
                events.add(i).write(Box::into_raw(ev));
            }
            write_out(count, n);
            Ok(())
        })
    }
}

/// Makes one blocked (or the next) `rmqs_queue_poll()` / `rmqs_queue_poll_batch()` return
/// `RMQS_OK` without an event (`*out` NULL, `*count` 0), and the notify fd readable until
/// then. For shutting a polling thread down or interrupting it.
///
/// @param q the queue (borrowed); NULL does nothing.
///
/// Thread-safe, also from library callbacks and signal-free contexts; does not block.
///
/// @ingroup rmqs_events
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_queue_wakeup(q: *mut rmqs_queue) {
    ffi_boundary((), || {
        // SAFETY: NULL or live.
        if let Ok(q) = unsafe { handle_arg(q) } {
            q.shared.wakeup();
        }
    })
}

/// Number of events waiting in the queue.
///
/// Thread-safe; does not block. 0 for NULL.
///
/// @ingroup rmqs_events
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_queue_len(q: *const rmqs_queue) -> usize {
    ffi_boundary(0, || {
        // SAFETY: NULL or live.
        unsafe { handle_arg(q) }.map_or(0, |q| q.shared.lock().events.len())
    })
}

/// A file descriptor for event loops (epoll, poll, libuv): readable while the queue holds
/// events or a wakeup is pending. Wait for it to be readable, then drain the queue with
/// `rmqs_queue_poll(q, 0, &ev, NULL)` until it returns `RMQS_ERR_TIMEOUT` (or `RMQS_OK` with
/// no event, a wakeup); the fd becomes unreadable once the queue is empty.
///
/// @param q the queue (borrowed).
/// @return the fd, owned by the queue (do not read, write or close it; it is closed by
///         `rmqs_queue_free()`), or -1 for NULL or where unsupported (non-Linux).
///
/// Thread-safe; does not block.
///
/// @ingroup rmqs_events
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_queue_fd(q: *const rmqs_queue) -> i32 {
    ffi_boundary(-1, || {
        // SAFETY: NULL or live.
        unsafe { handle_arg(q) }
            .ok()
            .and_then(|q| q.shared.fd.as_ref())
            .map_or(-1, EventFd::raw)
    })
}

/// Frees a queue. Events still in it are freed (their chunks released); producers and
/// consumers that deliver to it drop their later events. NULL is allowed.
///
/// @param q the queue (ownership passes to the library), or NULL.
///
/// Not to be called while another thread polls `q`. Does not block.
///
/// @ingroup rmqs_events
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_queue_free(q: *mut rmqs_queue) {
    ffi_boundary((), || {
        // SAFETY: NULL or live, freed once.
        if unsafe { handle_arg(q) }.is_ok() {
            let mut b = unsafe { Box::from_raw(q) };
            b.magic = 0;
            b.shared.free();
        }
    })
}

/// The event's kind: one of `rmqs_event_type_code`; 0 for NULL.
///
/// Does not block.
///
/// @ingroup rmqs_events
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_event_type(ev: *const rmqs_event) -> i32 {
    ffi_boundary(0, || {
        // SAFETY: NULL or live.
        unsafe { handle_arg(ev) }.map_or(0, |e| {
            (match e.payload {
                Payload::Chunk(_) => rmqs_event_type_code::RMQS_EVENT_CHUNK,
                Payload::Confirms(_) => rmqs_event_type_code::RMQS_EVENT_CONFIRMS,
                Payload::SuperConfirms(_) => rmqs_event_type_code::RMQS_EVENT_SUPER_CONFIRMS,
                Payload::State { .. } => rmqs_event_type_code::RMQS_EVENT_STATE,
                Payload::Error { .. } => rmqs_event_type_code::RMQS_EVENT_ERROR,
                Payload::ConsumerUpdate(_) => rmqs_event_type_code::RMQS_EVENT_CONSUMER_UPDATE,
                // Never queued (Sink hands it to a dispatcher only).
                Payload::Call(_) => return 0,
            }) as i32
        })
    })
}

/// Which kind of object sent the event: one of `rmqs_event_source_code`; 0 for NULL.
///
/// Does not block.
///
/// @ingroup rmqs_events
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_event_source(ev: *const rmqs_event) -> i32 {
    ffi_boundary(0, || {
        // SAFETY: NULL or live.
        unsafe { handle_arg(ev) }.map_or(0, |e| e.source as i32)
    })
}

/// The `tag` given when the producer or consumer that sent the event was created; 0 for NULL.
///
/// Does not block.
///
/// @ingroup rmqs_events
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_event_source_tag(ev: *const rmqs_event) -> usize {
    ffi_boundary(0, || {
        // SAFETY: NULL or live.
        unsafe { handle_arg(ev) }.map_or(0, |e| e.tag)
    })
}

/// The chunk of an `RMQS_EVENT_CHUNK` event.
///
/// @return a chunk borrowed from the event, valid until `rmqs_event_free(ev)` (use
///         `rmqs_chunk_retain()` to keep it longer); NULL for other events or NULL. The chunk's
///         credit goes back (with the `on_release` policy) when the event is freed and no
///         reference retained it.
///
/// Does not block.
///
/// @ingroup rmqs_events
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_event_chunk(ev: *const rmqs_event) -> *const rmqs_chunk {
    ffi_boundary(std::ptr::null(), || {
        // SAFETY: NULL or live.
        match unsafe { handle_arg(ev) }.map(|e| &e.payload) {
            Ok(Payload::Chunk(c)) => c.as_ptr(),
            _ => std::ptr::null(),
        }
    })
}

/// The super stream partition an event of an `rmqs_super_producer` or `rmqs_super_consumer`
/// concerns: its index in the object's partition list. Set for `RMQS_EVENT_SUPER_CONFIRMS`
/// (all the confirms of one event come from one partition), for chunks (as
/// `rmqs_chunk_partition()`), and for the errors (e.g. its stream was lost) and
/// `RMQS_EVENT_CONSUMER_UPDATE` events of one partition.
///
/// @return the index; -1 for other events (those of plain producers and consumers, and the
///         super producer's or consumer's own state events), or for NULL.
///
/// Does not block.
///
/// @ingroup rmqs_events
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_event_partition(ev: *const rmqs_event) -> i32 {
    ffi_boundary(-1, || {
        // SAFETY: NULL or live.
        unsafe { handle_arg(ev) }.map_or(-1, |e| e.partition)
    })
}

/// The confirms of an `RMQS_EVENT_SUPER_CONFIRMS` event (from an `rmqs_super_producer`).
///
/// @param ev the event (borrowed).
/// @param count receives the number of confirms (0 for other events); may be NULL.
/// @param stride receives the distance in bytes between consecutive confirms; may be NULL.
///        Index the array with it (`RMQS_AT()`), never with `sizeof`: fields may be appended
///        to the struct in later versions.
/// @return an array borrowed from the event, valid until `rmqs_event_free(ev)`; NULL for other
///         events or NULL.
///
/// Does not block.
///
/// @ingroup rmqs_events
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_event_super_confirms(
    ev: *const rmqs_event,
    count: *mut usize,
    stride: *mut usize,
) -> *const rmqs_super_confirm {
    ffi_boundary(std::ptr::null(), || {
        // SAFETY: NULL or live; count and stride NULL or writable.
        let (p, n) = match unsafe { handle_arg(ev) }.map(|e| &e.payload) {
            Ok(Payload::SuperConfirms(v)) => (v.as_ptr(), v.len()),
            _ => (std::ptr::null(), 0),
        };
        unsafe { write_count_stride::<rmqs_super_confirm>(count, stride, n) };
        p
    })
}

/// The confirms of an `RMQS_EVENT_CONFIRMS` event.
///
/// @param ev the event (borrowed).
/// @param count receives the number of confirms (0 for other events); may be NULL.
/// @param stride receives the distance in bytes between consecutive confirms; may be NULL.
///        Index the array with it (`RMQS_AT()`), never with `sizeof`: fields may be appended
///        to the struct in later versions.
/// @return an array borrowed from the event, valid until `rmqs_event_free(ev)`; NULL for other
///         events or NULL.
///
/// Does not block.
///
/// @ingroup rmqs_events
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_event_confirms(
    ev: *const rmqs_event,
    count: *mut usize,
    stride: *mut usize,
) -> *const rmqs_confirm {
    ffi_boundary(std::ptr::null(), || {
        // SAFETY: NULL or live; count and stride NULL or writable.
        let (p, n) = match unsafe { handle_arg(ev) }.map(|e| &e.payload) {
            Ok(Payload::Confirms(v)) => (v.as_ptr(), v.len()),
            _ => (std::ptr::null(), 0),
        };
        unsafe { write_count_stride::<rmqs_confirm>(count, stride, n) };
        p
    })
}

/// The state of an `RMQS_EVENT_STATE` event (one of `rmqs_state_code`); 0 for other events.
///
/// Does not block.
///
/// @ingroup rmqs_events
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_event_state(ev: *const rmqs_event) -> i32 {
    ffi_boundary(0, || {
        // SAFETY: NULL or live.
        match unsafe { handle_arg(ev) }.map(|e| &e.payload) {
            Ok(Payload::State { state, .. }) => *state as i32,
            _ => 0,
        }
    })
}

/// The status of an `RMQS_EVENT_STATE` (why; `RMQS_OK` when closed by the application) or
/// `RMQS_EVENT_ERROR` event; `RMQS_OK` for other events.
///
/// Does not block.
///
/// @ingroup rmqs_events
#[must_use]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_event_status(ev: *const rmqs_event) -> rmqs_status {
    ffi_boundary(rmqs_status_code::RMQS_ERR_PANIC.status(), || {
        // SAFETY: NULL or live.
        match unsafe { handle_arg(ev) }.map(|e| &e.payload) {
            Ok(Payload::State { status, .. } | Payload::Error { status, .. }) => *status,
            _ => 0,
        }
    })
}

/// The message of an `RMQS_EVENT_STATE` or `RMQS_EVENT_ERROR` event.
///
/// @return a NUL-terminated string owned by the event, valid until `rmqs_event_free(ev)`;
///         `""` for other events, NULL `ev` or a state change without a reason. Never NULL.
///
/// Does not block.
///
/// @ingroup rmqs_events
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_event_message(ev: *const rmqs_event) -> *const c_char {
    ffi_boundary(c"".as_ptr(), || {
        // SAFETY: NULL or live.
        match unsafe { handle_arg(ev) }.map(|e| &e.payload) {
            Ok(Payload::State { message, .. } | Payload::Error { message, .. }) => message.as_ptr(),
            _ => c"".as_ptr(),
        }
    })
}

/// The change of an `RMQS_EVENT_CONSUMER_UPDATE` event (a single active consumer activated or
/// stepping down).
///
/// @return a view owned by the event, valid until `rmqs_event_free(ev)`; NULL for other events
///         or NULL.
///
/// Does not block.
///
/// @ingroup rmqs_events
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_event_consumer_update(
    ev: *const rmqs_event,
) -> *const super::hooks::rmqs_consumer_update_info {
    ffi_boundary(std::ptr::null(), || {
        // SAFETY: NULL or live.
        match unsafe { handle_arg(ev) }.map(|e| &e.payload) {
            Ok(Payload::ConsumerUpdate(u)) => u.info(),
            _ => std::ptr::null(),
        }
    })
}

/// Answers an `RMQS_EVENT_CONSUMER_UPDATE` event: where the consumer starts (ignored on a
/// step-down, where answering only tells the library the application is done). Freeing the
/// event unanswered answers `info->default_offset`. The broker waits for the answer: give it
/// within the consumer's `consumer_update_timeout_ms` (default 5000), after which the library
/// has answered with the default itself.
///
/// @param ev the event (borrowed; still to be freed).
/// @param spec where to start; `{RMQS_OFFSET_DEFAULT, 0}` for the default.
/// @return `RMQS_OK`; `RMQS_ERR_TIMEOUT` when the answer came too late (the default was used);
///         `RMQS_ERR_INVALID_ARGUMENT` for another kind of event, a NULL event, an invalid spec
///         or a second answer.
///
/// Does not block. Not thread-safe for one event.
///
/// @ingroup rmqs_events
#[must_use]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_event_consumer_update_reply(
    ev: *mut rmqs_event,
    spec: super::hooks::rmqs_offset_spec,
    err: *mut *mut rmqs_error,
) -> rmqs_status {
    // SAFETY: ev checked; err NULL or writable.
    unsafe {
        ffi_status(err, || {
            handle_arg(ev)?;
            match &mut (*ev).payload {
                Payload::ConsumerUpdate(u) => u.reply(spec),
                _ => Err(Error::invalid_argument(
                    "not an RMQS_EVENT_CONSUMER_UPDATE event",
                )),
            }
        })
    }
}

/// Frees an event and the views obtained from it; a chunk event releases its reference to the
/// chunk. NULL is allowed.
///
/// @param ev an event from `rmqs_queue_poll()` (ownership passes to the library), or NULL.
///
/// Does not block.
///
/// @ingroup rmqs_events
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_event_free(ev: *mut rmqs_event) {
    ffi_boundary((), || {
        // SAFETY: NULL or live, freed once.
        if unsafe { handle_arg(ev) }.is_ok() {
            let mut b = unsafe { Box::from_raw(ev) };
            b.magic = 0;
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ffi::runtime::{ThreadRole, mark_thread};
    use crate::ffi::status::rmqs_status_code::*;

    fn queue() -> *mut rmqs_queue {
        let mut q = std::ptr::null_mut();
        assert_eq!(unsafe { rmqs_queue_new(&mut q, std::ptr::null_mut()) }, 0);
        q
    }

    /// `rmqs_queue_poll`: the event (NULL after a wakeup) or the failure status.
    fn poll(q: *mut rmqs_queue, timeout_ms: i32) -> Result<*mut rmqs_event, rmqs_status> {
        let mut ev = std::ptr::dangling_mut::<rmqs_event>(); // written only on success
        match unsafe { rmqs_queue_poll(q, timeout_ms, &mut ev, std::ptr::null_mut()) } {
            0 => Ok(ev),
            st => {
                assert_eq!(ev, std::ptr::dangling_mut(), "output written on failure");
                Err(st)
            }
        }
    }

    /// Checks whether the notify fd is readable, with `poll(2)`; not under Miri, which
    /// cannot call it (the rest of the test, the queue itself, runs there).
    fn assert_readable(fd: i32, want: bool) {
        #[cfg(not(miri))]
        {
            let mut p = libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            };
            assert_eq!(unsafe { libc::poll(&mut p, 1, 0) == 1 }, want);
        }
        #[cfg(miri)]
        let _ = (fd, want);
    }

    #[test]
    fn poll_wakeup_and_fd() {
        let q = queue();
        let fd = unsafe { rmqs_queue_fd(q) };
        assert!(fd >= 0);
        assert_readable(fd, false);
        assert_eq!(poll(q, 0), Err(RMQS_ERR_TIMEOUT.status()));
        let shared = unsafe { &*q }.shared.clone();
        shared.push_partition(
            rmqs_event_source_code::RMQS_SOURCE_PRODUCER,
            7,
            -1,
            Payload::Confirms(vec![rmqs_confirm {
                publishing_id: 1,
                tag: 9,
                status: 0,
            }]),
        );
        shared.push_partition(
            rmqs_event_source_code::RMQS_SOURCE_CONSUMER,
            8,
            -1,
            Payload::error(Error::new(-6, "tls")),
        );
        assert_readable(fd, true);
        assert_eq!(unsafe { rmqs_queue_len(q) }, 2);
        let ev = poll(q, -1).unwrap();
        unsafe {
            assert_eq!(rmqs_event_type(ev), 2);
            assert_eq!(rmqs_event_source(ev), 1);
            assert_eq!(rmqs_event_source_tag(ev), 7);
            let mut n = 0;
            let c = rmqs_event_confirms(ev, &mut n, std::ptr::null_mut());
            assert_eq!(n, 1);
            assert_eq!((*c).tag, 9);
            assert!(rmqs_event_chunk(ev).is_null());
            rmqs_event_free(ev);
        }
        assert_readable(fd, true);
        let mut evs = [std::ptr::null_mut(); 4];
        let mut n = 0;
        let st = unsafe {
            rmqs_queue_poll_batch(q, evs.as_mut_ptr(), 4, 0, &mut n, std::ptr::null_mut())
        };
        assert_eq!((st, n), (RMQS_OK.status(), 1));
        unsafe {
            assert_eq!(rmqs_event_type(evs[0]), 4);
            assert_eq!(rmqs_event_status(evs[0]), -6);
            assert_eq!(
                std::ffi::CStr::from_ptr(rmqs_event_message(evs[0])).to_bytes(),
                b"tls"
            );
            rmqs_event_free(evs[0]);
        }
        assert_readable(fd, false);

        // a wakeup ends a blocked poll, from another thread
        let qa = q as usize;
        let t = std::thread::spawn(move || poll(qa as *mut _, -1).map(|e| e as usize));
        std::thread::sleep(Duration::from_millis(50));
        unsafe { rmqs_queue_wakeup(q) };
        assert_eq!(t.join().unwrap(), Ok(0));
        assert_readable(fd, false);
        // a timeout ends it too, with a status of its own
        let t0 = Instant::now();
        assert_eq!(poll(q, 30), Err(RMQS_ERR_TIMEOUT.status()));
        assert!(t0.elapsed() >= Duration::from_millis(30));

        shared.push_partition(
            rmqs_event_source_code::RMQS_SOURCE_PRODUCER,
            1,
            -1,
            Payload::Confirms(vec![]),
        );
        unsafe { rmqs_queue_free(q) };
        // pushing after free drops the event
        shared.push_partition(
            rmqs_event_source_code::RMQS_SOURCE_PRODUCER,
            1,
            -1,
            Payload::Confirms(vec![]),
        );
        assert!(shared.lock().events.is_empty());
    }

    #[test]
    fn null_arguments() {
        unsafe {
            assert_eq!(
                rmqs_queue_new(std::ptr::null_mut(), std::ptr::null_mut()),
                -1
            );
            assert_eq!(poll(std::ptr::null_mut(), 0), Err(-1));
            let q = queue();
            let mut ev = std::ptr::dangling_mut::<rmqs_event>();
            let mut n = 7;
            use std::ptr::null_mut as null;
            assert_eq!(rmqs_queue_poll(q, 0, null(), null()), -1);
            let mut evs: [*mut rmqs_event; 2] = [null(); 2];
            let e = evs.as_mut_ptr();
            let cases: [(*mut rmqs_queue, *mut *mut rmqs_event, usize, *mut usize); 4] = [
                (null(), e, 2, &mut n),
                (q, null(), 2, &mut n),
                (q, e, 0, &mut n),
                (q, e, 2, null()),
            ];
            for (q, evs, cap, count) in cases {
                assert_eq!(rmqs_queue_poll_batch(q, evs, cap, 0, count, null()), -1);
            }
            assert_eq!(
                (ev, n),
                (std::ptr::dangling_mut(), 7),
                "outputs written on failure"
            );
            assert_eq!(
                rmqs_queue_poll(q, 0, &mut ev, null()),
                RMQS_ERR_TIMEOUT.status()
            );
            rmqs_queue_free(q);
            rmqs_queue_wakeup(std::ptr::null_mut());
            rmqs_queue_free(std::ptr::null_mut());
            assert_eq!(rmqs_queue_fd(std::ptr::null()), -1);
            assert_eq!(rmqs_event_type(std::ptr::null()), 0);
            rmqs_event_free(std::ptr::null_mut());
        }
    }

    #[test]
    fn polling_with_a_timeout_from_a_library_callback_fails_with_would_deadlock() {
        let q = queue();
        let qa = q as usize;
        let (st, msg, st0) = std::thread::spawn(move || {
            // what a dispatcher thread (a library callback) is
            mark_thread(ThreadRole::Dispatcher);
            let q = qa as *mut rmqs_queue;
            let mut err: *mut rmqs_error = std::ptr::null_mut();
            let mut ev = std::ptr::null_mut();
            let st = unsafe { rmqs_queue_poll(q, -1, &mut ev, &mut err) };
            let msg =
                unsafe { std::ffi::CStr::from_ptr(super::super::error::rmqs_error_message(err)) }
                    .to_string_lossy()
                    .into_owned();
            unsafe { super::super::error::rmqs_error_free(err) };
            // a poll that does not wait is fine there
            let st0 = unsafe { rmqs_queue_poll(q, 0, &mut ev, std::ptr::null_mut()) };
            (st, msg, st0)
        })
        .join()
        .unwrap();
        assert_eq!(st, RMQS_ERR_WOULD_DEADLOCK.status());
        assert!(
            msg.starts_with("rmqs_queue_poll would block in a library callback"),
            "{msg}"
        );
        assert_eq!(st0, RMQS_ERR_TIMEOUT.status());
        let st = std::thread::spawn(move || {
            let mut evs = [std::ptr::null_mut(); 2];
            let mut n = 0;
            mark_thread(ThreadRole::Dispatcher);
            unsafe {
                rmqs_queue_poll_batch(
                    qa as *mut rmqs_queue,
                    evs.as_mut_ptr(),
                    2,
                    100,
                    &mut n,
                    std::ptr::null_mut(),
                )
            }
        })
        .join()
        .unwrap();
        assert_eq!(st, RMQS_ERR_WOULD_DEADLOCK.status());
        unsafe { rmqs_queue_free(q) };
    }
}
