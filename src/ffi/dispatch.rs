//! Where a producer's or consumer's events go: the connection's dispatcher pool
//! ([`crate::client::dispatch`], key `dispatch_threads`), which calls the application's
//! callbacks, an event queue, or both (payload to the callback, the rest to the queue).

use std::ffi::c_void;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use super::error::Error;
use super::queue::{Payload, QueueShared, rmqs_event_source_code, rmqs_state_code};
use super::state::StateHook;
use crate::client::dispatch;

/// Frees the `user_data` of a callback registration, exactly once, after the last call of the
/// callback. Which thread runs it:
/// - callbacks given to a `*_new` function (confirms, chunks): a dispatcher thread of the
///   object's connection (`rmqs-dispatch`), after the object's last callback; the object's
///   `*_free()` waits for that, unless it is called from a library callback (it then returns
///   at once);
/// - callbacks set on a config (`rmqs_config_set_log_cb()`, `_state_cb()`,
///   `_consumer_update_cb()`, `_post_filter_cb()`, `_tracking_cb()`, `_routing_cb()`,
///   `_key_extractor()`): the thread of the call that drops the last reference:
///   `rmqs_config_free()`, a `rmqs_config_set_*()` call that replaces the callback, or the
///   `*_free()` of the last object created with the config (`rmqs-reaper` when that
///   `*_free()` runs in a library callback).
///
/// Never called when the registering call fails, unless that function says otherwise.
///
/// @ingroup rmqs_events
pub type rmqs_free_cb = Option<unsafe extern "C" fn(user_data: *mut c_void)>;

/// The application's `user_data` and its finalizer.
pub(crate) struct UserData {
    pub ptr: *mut c_void,
    pub free: rmqs_free_cb,
}

// SAFETY: the application hands user_data over to the library's dispatcher threads; the API
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

/// A connection's dispatcher pool, for the C API's events.
pub(crate) type CallbackPool = dispatch::DispatchPool<Payload>;

/// An object's lane in its connection's dispatcher pool.
pub(crate) type CallbackLane = dispatch::Dispatcher<Payload>;

/// A pool of `size` threads, marked as the library's for the panic hook.
pub(crate) fn pool(size: usize) -> CallbackPool {
    CallbackPool::new(size, super::panic::mark_library_thread)
}

/// A lane for one object: `deliver` gets its events in order (a [`Payload::Call`] runs
/// instead), and `user_data` is finalized after the last one.
pub(crate) fn lane(
    pool: &CallbackPool,
    mut deliver: impl FnMut(Payload) + Send + 'static,
    user_data: UserData,
) -> Result<CallbackLane, Error> {
    let deliver = move |p| match p {
        Payload::Call(f) => f(),
        p => deliver(p),
    };
    Ok(pool.lane(deliver, move || user_data.finalize())?)
}

/// Where one producer's or consumer's events go.
pub(crate) struct Sink {
    pub source: rmqs_event_source_code,
    pub tag: usize,
    pub callback: Option<CallbackLane>,
    pub queue: Option<Arc<QueueShared>>,
    /// The state callback, if the config had one.
    pub state: Option<StateHook>,
    /// The final `RMQS_STATE_CLOSED` went out.
    closed: AtomicBool,
}

impl Sink {
    /// Where `source` object `tag` sends its events: `callback`, `queue`, and the state
    /// callback registered on `cfg` (run on `callback`, or on a lane of its own in `pool`
    /// without one).
    ///
    /// # Safety
    /// `cfg` must be NULL or a live config.
    pub unsafe fn new(
        source: rmqs_event_source_code,
        tag: usize,
        callback: Option<CallbackLane>,
        queue: Option<Arc<QueueShared>>,
        cfg: *const super::config::rmqs_config,
        pool: &CallbackPool,
    ) -> Result<Sink, Error> {
        // SAFETY: forwarded.
        let state = unsafe { super::hooks::ConfigHooks::state_of(cfg) }
            .and_then(|reg| StateHook::new(reg, callback.is_none().then_some(pool)));
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

    /// Chunks and confirms (of super stream partition `partition`, -1: none): to the callback
    /// if there is one, else to the queue, else dropped.
    pub fn payload(&self, partition: i32, p: Payload) {
        if let Some(d) = &self.callback {
            d.send(p);
        } else {
            self.other(partition, p);
        }
    }

    /// State changes and errors (of partition `partition`, -1: none): to the queue if there
    /// is one, else dropped.
    pub fn other(&self, partition: i32, p: Payload) {
        if let Some(q) = &self.queue {
            q.push_partition(self.source, self.tag, partition, p);
        }
    }

    /// Stops the callback's lane (see [`Dispatcher::stop`](dispatch::Dispatcher::stop)), then
    /// the state callback.
    pub fn stop(&self, discard: bool) {
        if let Some(d) = &self.callback {
            d.stop(discard);
        }
        if let Some(h) = &self.state {
            h.detach();
        }
    }

    /// Stops the callback's lane without finalizing user_data.
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
