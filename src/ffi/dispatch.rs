//! Where a producer's or consumer's events go: a dispatcher thread that calls the application's
//! callback, an event queue, or both (payload to the callback, the rest to the queue).

use std::ffi::c_void;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::{JoinHandle, ThreadId};

use super::error::Error;
use super::queue::{Payload, QueueShared, rmqs_event_source_code};
use super::runtime::{ThreadRole, mark_thread};
use super::status::rmqs_status_code;

/// Frees the `user_data` of a callback registration. Called exactly once, on the dispatcher
/// thread, after the last callback returned (or at once by the call that registered it when the
/// registration fails after taking ownership — see each function).
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

/// A thread (`rmqs-dispatch`) that hands events to the application's callback in order, one
/// at a time.
pub(crate) struct Dispatcher {
    tx: Mutex<Option<mpsc::Sender<Payload>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    thread_id: ThreadId,
    discard: Arc<AtomicBool>,
    disarm: Arc<AtomicBool>,
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
        let (d2, a2) = (discard.clone(), disarm.clone());
        let thread = std::thread::Builder::new()
            .name("rmqs-dispatch".into())
            .spawn(move || {
                mark_thread(ThreadRole::Dispatcher);
                for p in rx {
                    if d2.load(Ordering::Acquire) {
                        drop(p);
                        continue;
                    }
                    // A panic in the library's own conversion code must not kill the thread;
                    // the application's callbacks are extern "C" and cannot unwind.
                    let _ = catch_unwind(AssertUnwindSafe(|| deliver(p)));
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
            thread_id: thread.thread().id(),
            thread: Mutex::new(Some(thread)),
            discard,
            disarm,
        })
    }

    /// Queues an event for the callback; dropped when the dispatcher is stopped.
    pub fn send(&self, p: Payload) {
        let tx = self.tx.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(tx) = tx.as_ref() {
            let _ = tx.send(p);
        }
    }

    /// Ends the thread after the events already queued (or, with `discard`, without calling
    /// the callback for them) and waits for it, unless called from the thread itself.
    pub fn stop(&self, discard: bool) {
        if discard {
            self.discard.store(true, Ordering::Release);
        }
        drop(self.tx.lock().unwrap_or_else(|e| e.into_inner()).take());
        if std::thread::current().id() == self.thread_id {
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
}

impl Sink {
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

    /// Stops the callback thread (see [`Dispatcher::stop`]).
    pub fn stop(&self, discard: bool) {
        if let Some(d) = &self.callback {
            d.stop(discard);
        }
    }

    /// Stops the callback thread without finalizing user_data.
    pub fn abort(&self) {
        if let Some(d) = &self.callback {
            d.abort();
        }
    }

    /// Drops the events waiting for the callback, and later ones.
    pub fn discard_pending(&self) {
        if let Some(d) = &self.callback {
            d.discard_pending();
        }
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
