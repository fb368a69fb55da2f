//! Where a producer's or consumer's events go: a dispatcher thread that calls the application's
//! callback, an event queue, or both (payload to the callback, the rest to the queue).

use std::cell::Cell;
use std::ffi::c_void;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::AtomicU64;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use super::error::Error;
use super::queue::{Payload, QueueShared, rmqs_event_source_code, rmqs_state_code};
use super::runtime::{ThreadRole, mark_thread};
use super::state::StateHook;
use super::status::rmqs_status_code;

/// Frees the `user_data` of a callback registration, exactly once, after the last call of the
/// callback. Which thread runs it:
/// - callbacks given to a `*_new` function (confirms, chunks): the object's dispatcher thread
///   (`rmqs-dispatch`), as it ends; the object's `*_free()` waits for that, unless it is
///   called from a library callback (it then returns at once);
/// - callbacks set on a config (`rmqs_config_set_log_cb()`, `_state_cb()`,
///   `_consumer_update_cb()`, `_post_filter_cb()`, `_tracking_cb()`, `_routing_cb()`,
///   `_key_extractor()`): the thread of the call that drops the last reference:
///   `rmqs_config_free()`, a `rmqs_config_set_*()` call that replaces the callback, or the
///   `*_free()` of the last object created with the config (`rmqs-reaper` when that
///   `*_free()` runs in a library callback).
///
/// Never called when the registering call fails, unless that function says otherwise.
pub type rmqs_free_cb = Option<unsafe extern "C" fn(user_data: *mut c_void)>;

/// The application's `user_data` and its finalizer.
pub(crate) struct UserData {
    pub ptr: *mut c_void,
    pub free: rmqs_free_cb,
}

// SAFETY: the application hands user_data over to the library's dispatcher thread; the API
// documents that callbacks (and the finalizer) run there.
unsafe impl Send for UserData {}

impl UserData {
    fn finalize(self) {
        if let Some(f) = self.free {
            // SAFETY: the application's finalizer, called once with its own pointer.
            unsafe { f(self.ptr) };
        }
    }
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// Id of the dispatcher running on this thread (0: none). A plain Cell rather than
    /// `std::thread::current()`, which allocates a handle that is never freed on the
    /// application's main thread (valgrind reports it).
    static CURRENT: Cell<u64> = const { Cell::new(0) };
}

/// A thread (`rmqs-dispatch`) that hands events to the application's callback in order, one
/// at a time.
pub(crate) struct Dispatcher {
    tx: Mutex<Option<mpsc::Sender<Payload>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    id: u64,
    discard: Arc<AtomicBool>,
    disarm: Arc<AtomicBool>,
    pending: Arc<Pending>,
}

/// Events sent to the thread and not yet done with.
#[derive(Default)]
struct Pending {
    count: Mutex<usize>,
    idle: Condvar,
}

impl Pending {
    fn done(&self) {
        let mut c = self.count.lock().unwrap_or_else(|e| e.into_inner());
        *c = c.saturating_sub(1);
        if *c == 0 {
            self.idle.notify_all();
        }
    }
}

impl Dispatcher {
    /// Starts the thread. `deliver` runs for each event, with the thread marked as a
    /// dispatcher; `user_data` is finalized after the last call.
    pub fn start(
        mut deliver: impl FnMut(Payload) + Send + 'static,
        user_data: UserData,
    ) -> Result<Dispatcher, Error> {
        let (tx, rx) = mpsc::channel::<Payload>();
        let discard = Arc::new(AtomicBool::new(false));
        let disarm = Arc::new(AtomicBool::new(false));
        let pending = Arc::new(Pending::default());
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let (d2, a2, p2) = (discard.clone(), disarm.clone(), pending.clone());
        let thread = std::thread::Builder::new()
            .name("rmqs-dispatch".into())
            .spawn(move || {
                mark_thread(ThreadRole::Dispatcher);
                CURRENT.with(|c| c.set(id));
                for p in rx {
                    if d2.load(Ordering::Acquire) {
                        drop(p);
                    } else {
                        // A panic in the library's own conversion code must not kill the
                        // thread; the application's callbacks are extern "C" and cannot unwind.
                        let _ = catch_unwind(AssertUnwindSafe(|| match p {
                            Payload::Call(f) => f(),
                            p => deliver(p),
                        }));
                    }
                    p2.done();
                }
                drop(deliver);
                if !a2.load(Ordering::Acquire) {
                    user_data.finalize();
                }
            })
            .map_err(|e| {
                Error::new(
                    rmqs_status_code::RMQS_ERR_IO,
                    format!("cannot start a dispatcher thread: {e}"),
                )
            })?;
        Ok(Dispatcher {
            tx: Mutex::new(Some(tx)),
            id,
            thread: Mutex::new(Some(thread)),
            discard,
            disarm,
            pending,
        })
    }

    /// Waits until every event sent so far went through the callback (or was dropped); false
    /// when `deadline` passed first. Returns at once on the dispatcher thread itself.
    pub fn wait_idle(&self, deadline: Option<Instant>) -> bool {
        if self.on_own_thread() {
            return true;
        }
        let mut c = self.pending.count.lock().unwrap_or_else(|e| e.into_inner());
        while *c > 0 {
            c = match deadline {
                None => self.pending.idle.wait(c).unwrap_or_else(|e| e.into_inner()),
                Some(d) => {
                    let now = Instant::now();
                    if d <= now {
                        return false;
                    }
                    self.pending
                        .idle
                        .wait_timeout(c, d - now)
                        .unwrap_or_else(|e| e.into_inner())
                        .0
                }
            };
        }
        true
    }

    fn on_own_thread(&self) -> bool {
        CURRENT.with(Cell::get) == self.id
    }

    /// Queues an event for the callback; dropped when the dispatcher is stopped.
    pub fn send(&self, p: Payload) {
        let tx = self.tx.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(tx) = tx.as_ref() {
            *self.pending.count.lock().unwrap_or_else(|e| e.into_inner()) += 1;
            if let Err(e) = tx.send(p) {
                drop(e);
                self.pending.done();
            }
        }
    }

    /// Ends the thread after the events already queued (or, with `discard`, without calling
    /// the callback for them) and waits for it, unless called from the thread itself.
    pub fn stop(&self, discard: bool) {
        if discard {
            self.discard.store(true, Ordering::Release);
        }
        drop(self.tx.lock().unwrap_or_else(|e| e.into_inner()).take());
        if self.on_own_thread() {
            return;
        }
        let t = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(t) = t {
            let _ = t.join();
        }
    }

    /// Events queued from now on are dropped without calling the callback.
    pub fn discard_pending(&self) {
        self.discard.store(true, Ordering::Release);
    }

    /// Stops without finalizing user_data (the registration failed; the caller keeps it).
    pub fn abort(&self) {
        self.disarm.store(true, Ordering::Release);
        self.stop(true);
    }
}

/// Where one producer's or consumer's events go.
pub(crate) struct Sink {
    pub source: rmqs_event_source_code,
    pub tag: usize,
    pub callback: Option<Dispatcher>,
    pub queue: Option<Arc<QueueShared>>,
    /// The state callback, if the config had one.
    pub state: Option<StateHook>,
    /// The final `RMQS_STATE_CLOSED` went out.
    closed: AtomicBool,
}

impl Sink {
    /// Where `source` object `tag` sends its events: `callback`, `queue`, and the state
    /// callback registered on `cfg` (run on `callback`, or on a thread of its own without one).
    ///
    /// # Safety
    /// `cfg` must be NULL or a live config.
    pub unsafe fn new(
        source: rmqs_event_source_code,
        tag: usize,
        callback: Option<Dispatcher>,
        queue: Option<Arc<QueueShared>>,
        cfg: *const super::config::rmqs_config,
    ) -> Result<Sink, Error> {
        // SAFETY: forwarded.
        let state = unsafe { super::hooks::ConfigHooks::state_of(cfg) }
            .and_then(|reg| StateHook::new(reg, callback.is_none()));
        let state = match state {
            Ok(s) => s,
            Err(e) => {
                // The caller keeps user_data when creation fails.
                if let Some(d) = &callback {
                    d.abort();
                }
                return Err(e);
            }
        };
        Ok(Sink {
            source,
            tag,
            callback,
            queue,
            state,
            closed: AtomicBool::new(false),
        })
    }

    /// A state change: to the state callback and to the queue. `RMQS_STATE_CLOSED` goes out
    /// once, the first reason winning.
    pub fn state(&self, state: rmqs_state_code, e: Option<Error>) {
        if state == rmqs_state_code::RMQS_STATE_CLOSED && self.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        self.partition_state(-1, state, e);
    }

    /// A state change of super stream partition `partition` (-1: the object itself).
    pub fn partition_state(&self, partition: i32, state: rmqs_state_code, e: Option<Error>) {
        if let Some(h) = &self.state {
            h.call(
                self.callback.as_ref(),
                self.source,
                self.tag,
                partition,
                state,
                e.as_ref(),
            );
        }
        if let Some(q) = &self.queue {
            q.push_partition(self.source, self.tag, partition, Payload::state(state, e));
        }
    }

    /// Chunks and confirms: to the callback if there is one, else to the queue, else dropped.
    pub fn payload(&self, p: Payload) {
        if let Some(d) = &self.callback {
            d.send(p);
        } else if let Some(q) = &self.queue {
            q.push(self.source, self.tag, p);
        }
    }

    /// State changes and errors: to the queue if there is one, else dropped.
    pub fn other(&self, p: Payload) {
        if let Some(q) = &self.queue {
            q.push(self.source, self.tag, p);
        }
    }

    /// Stops the callback thread (see [`Dispatcher::stop`]), then the state callback.
    pub fn stop(&self, discard: bool) {
        if let Some(d) = &self.callback {
            d.stop(discard);
        }
        if let Some(h) = &self.state {
            h.detach();
        }
    }

    /// Stops the callback thread without finalizing user_data.
    pub fn abort(&self) {
        if let Some(d) = &self.callback {
            d.abort();
        }
        if let Some(h) = &self.state {
            h.detach();
        }
    }

    /// Drops the events waiting for the callback, and later ones.
    pub fn discard_pending(&self) {
        if let Some(d) = &self.callback {
            d.discard_pending();
        }
    }

    /// Waits until the callback has seen every event sent so far (true without a callback).
    pub fn wait_idle(&self, deadline: Option<Instant>) -> bool {
        self.callback.as_ref().is_none_or(|d| d.wait_idle(deadline))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ffi::queue::rmqs_confirm;
    use crate::ffi::runtime::thread_role;
    use std::sync::atomic::AtomicUsize;

    static FREED: AtomicUsize = AtomicUsize::new(0);

    unsafe extern "C" fn free_ud(p: *mut c_void) {
        assert_eq!(p as usize, 42);
        FREED.fetch_add(1, Ordering::SeqCst);
    }

    #[test]
    fn delivers_in_order_then_finalizes_once() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s2 = seen.clone();
        let d = Dispatcher::start(
            move |p| {
                assert_eq!(thread_role(), ThreadRole::Dispatcher);
                if let Payload::Confirms(v) = p {
                    s2.lock().unwrap().push(v[0].tag);
                }
            },
            UserData {
                ptr: 42 as *mut c_void,
                free: Some(free_ud),
            },
        )
        .unwrap();
        for i in 0..100 {
            d.send(Payload::Confirms(vec![rmqs_confirm {
                publishing_id: i as u64,
                tag: i,
                status: 0,
            }]));
        }
        let before = FREED.load(Ordering::SeqCst);
        d.stop(false);
        assert_eq!(*seen.lock().unwrap(), (0..100).collect::<Vec<_>>());
        assert_eq!(FREED.load(Ordering::SeqCst), before + 1);
        d.stop(false); // idempotent
        d.send(Payload::Confirms(vec![])); // dropped
        assert_eq!(FREED.load(Ordering::SeqCst), before + 1);
    }
}
