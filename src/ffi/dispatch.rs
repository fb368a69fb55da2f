//! Where a producer's or consumer's events go: the connection's dispatcher pool, which calls
//! the application's callbacks, an event queue, or both (payload to the callback, the rest to
//! the queue).
//!
//! The pool is a fixed number of `rmqs-dispatch` threads per connection (key
//! `dispatch_threads`), started with the connection's first callback object and ended when the
//! connection is dropped, however many producers and consumers it has. Each object with a
//! callback has a lane: its own queue of events, in order. A lane with events waits in the
//! pool's ready list (once); a free thread takes the whole lane, delivers what it holds, in
//! order, and puts it back at the end of the list if more came meanwhile. A lane is on at most
//! one thread at a time, so an object's callbacks run in order and never concurrently; a slow
//! callback holds one thread, and the other threads take the other lanes.
//!
//! Per event: one uncontended lock of the lane to queue it; the pool's lock and a wake-up only
//! when an idle lane becomes ready. Per batch (what a lane holds when a thread takes it): two
//! locks of the lane.

use std::cell::Cell;
use std::collections::VecDeque;
use std::ffi::c_void;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::AtomicU64;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Instant;

use super::error::Error;
use super::queue::{Payload, QueueShared, rmqs_event_source_code, rmqs_state_code};
use super::runtime::{ThreadRole, mark_thread, thread_role};
use super::state::StateHook;
use super::status::rmqs_status_code;

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

/// Dispatcher threads of a connection when its config does not say (`dispatch_threads`): two
/// let one slow callback leave the other objects served, without a thread per object.
pub(crate) const DEFAULT_DISPATCH_THREADS: usize = 2;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// Id of the lane being delivered on this thread (0: none). A plain Cell rather than
    /// `std::thread::current()`, which allocates a handle that is never freed on the
    /// application's main thread (valgrind reports it).
    static CURRENT: Cell<u64> = const { Cell::new(0) };
    /// Id of the pool this thread belongs to (0: none).
    static POOL: Cell<u64> = const { Cell::new(0) };
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A connection's dispatcher threads (`rmqs-dispatch`): `size` of them, started with the first
/// lane. Dropping it ends them once every lane is done (and waits for that on an application
/// thread).
pub(crate) struct DispatchPool {
    shared: Arc<PoolShared>,
}

struct PoolShared {
    id: u64,
    size: usize,
    state: Mutex<PoolState>,
    /// Signalled when a lane becomes ready, and when the pool may end.
    wake: Condvar,
}

#[derive(Default)]
struct PoolState {
    ready: VecDeque<Arc<Lane>>,
    threads: Vec<JoinHandle<()>>,
    /// Lanes not finalized yet.
    lanes: usize,
    /// The owner is gone: the threads end once `lanes` is 0.
    closing: bool,
}

impl DispatchPool {
    /// A pool of `size` threads (at least 1), none started yet.
    pub fn new(size: usize) -> DispatchPool {
        DispatchPool {
            shared: Arc::new(PoolShared {
                id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
                size: size.max(1),
                state: Mutex::new(PoolState::default()),
                wake: Condvar::new(),
            }),
        }
    }

    /// The threads started so far.
    #[cfg(test)]
    fn threads(&self) -> usize {
        lock(&self.shared.state).threads.len()
    }

    /// A lane for one object: `deliver` runs for each of its events, in order, on one of the
    /// pool's threads at a time (marked as a dispatcher); `user_data` is finalized there after
    /// the last call. Starts the threads on first use.
    pub fn lane(
        &self,
        deliver: impl FnMut(Payload) + Send + 'static,
        user_data: UserData,
    ) -> Result<Dispatcher, Error> {
        let pool = &self.shared;
        let mut st = lock(&pool.state);
        while st.threads.len() < pool.size {
            let p = pool.clone();
            let started = std::thread::Builder::new()
                .name("rmqs-dispatch".into())
                .spawn(move || p.work());
            match started {
                Ok(t) => st.threads.push(t),
                // fewer threads than asked still deliver everything
                Err(_) if !st.threads.is_empty() => break,
                Err(e) => {
                    return Err(Error::new(
                        rmqs_status_code::RMQS_ERR_IO,
                        format!("cannot start a dispatcher thread: {e}"),
                    ));
                }
            }
        }
        st.lanes += 1;
        drop(st);
        Ok(Dispatcher {
            lane: Arc::new(Lane {
                id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
                pool: pool.clone(),
                state: Mutex::new(LaneState::default()),
                idle: Condvar::new(),
                discard: AtomicBool::new(false),
                disarm: AtomicBool::new(false),
                deliver: Mutex::new(Some(Box::new(deliver))),
                user_data: Mutex::new(Some(user_data)),
            }),
        })
    }
}

impl Drop for DispatchPool {
    fn drop(&mut self) {
        let pool = &self.shared;
        let threads = {
            let mut st = lock(&pool.state);
            st.closing = true;
            std::mem::take(&mut st.threads)
        };
        pool.wake.notify_all();
        // On one of its own threads, or where blocking is not allowed, the threads end by
        // themselves.
        if POOL.with(Cell::get) != pool.id && thread_role() == ThreadRole::Application {
            for t in threads {
                let _ = t.join();
            }
        }
    }
}

impl PoolShared {
    /// A dispatcher thread: takes ready lanes until the pool closes and its lanes are done.
    fn work(self: Arc<Self>) {
        mark_thread(ThreadRole::Dispatcher);
        POOL.with(|c| c.set(self.id));
        let mut batch = VecDeque::new();
        loop {
            let lane = {
                let mut st = lock(&self.state);
                loop {
                    if let Some(l) = st.ready.pop_front() {
                        break l;
                    }
                    if st.closing && st.lanes == 0 {
                        return;
                    }
                    st = self.wake.wait(st).unwrap_or_else(|e| e.into_inner());
                }
            };
            if lane.run(&mut batch) {
                lock(&self.state).ready.push_back(lane);
            }
        }
    }

    fn make_ready(&self, lane: Arc<Lane>) {
        lock(&self.state).ready.push_back(lane);
        self.wake.notify_one();
    }

    fn lane_done(&self) {
        let mut st = lock(&self.state);
        st.lanes -= 1;
        if st.closing && st.lanes == 0 {
            self.wake.notify_all();
        }
    }
}

/// One object's events and callback.
struct Lane {
    id: u64,
    pool: Arc<PoolShared>,
    state: Mutex<LaneState>,
    /// Signalled when `pending` falls to 0 and when the lane is finished.
    idle: Condvar,
    discard: AtomicBool,
    disarm: AtomicBool,
    /// Only ever locked by the thread that holds the lane (uncontended).
    #[allow(clippy::type_complexity)]
    deliver: Mutex<Option<Box<dyn FnMut(Payload) + Send>>>,
    user_data: Mutex<Option<UserData>>,
}

#[derive(Default)]
struct LaneState {
    queue: VecDeque<Payload>,
    /// Events queued or being delivered.
    pending: usize,
    /// On the ready list or held by a thread.
    scheduled: bool,
    /// No more events accepted; the lane finishes once empty.
    stopped: bool,
    /// The callback is dropped and `user_data` finalized.
    finished: bool,
}

impl Lane {
    /// Delivers what the lane holds (on a pool thread); true when more came meanwhile (the
    /// lane stays scheduled and goes back on the ready list).
    fn run(&self, batch: &mut VecDeque<Payload>) -> bool {
        CURRENT.with(|c| c.set(self.id));
        std::mem::swap(&mut lock(&self.state).queue, batch);
        let n = batch.len();
        if n > 0 {
            let mut deliver = lock(&self.deliver);
            for p in batch.drain(..) {
                if self.discard.load(Ordering::Acquire) {
                    drop(p);
                    continue;
                }
                // A panic in the library's own conversion code must not kill the thread; the
                // application's callbacks are extern "C" and cannot unwind.
                let _ = catch_unwind(AssertUnwindSafe(|| match (p, deliver.as_mut()) {
                    (Payload::Call(f), _) => f(),
                    (p, Some(d)) => d(p),
                    (p, None) => drop(p),
                }));
            }
        }
        let mut st = lock(&self.state);
        st.pending -= n;
        if n > 0 && st.pending == 0 {
            self.idle.notify_all();
        }
        let more = !st.queue.is_empty();
        let finish = !more && st.stopped && !st.finished;
        if !more && !finish {
            st.scheduled = false;
        }
        drop(st);
        if finish {
            self.finish();
        }
        CURRENT.with(|c| c.set(0));
        more
    }

    /// Drops the callback and finalizes `user_data` (unless disarmed), after the last event.
    fn finish(&self) {
        let deliver = lock(&self.deliver).take();
        let user_data = lock(&self.user_data).take();
        let _ = catch_unwind(AssertUnwindSafe(move || {
            drop(deliver);
            match user_data {
                Some(u) if !self.disarm.load(Ordering::Acquire) => u.finalize(),
                _ => {}
            }
        }));
        lock(&self.state).finished = true;
        self.idle.notify_all();
        self.pool.lane_done();
    }
}

/// An object's lane in its connection's dispatcher pool: hands events to the application's
/// callback in order, one at a time, on one of the pool's `rmqs-dispatch` threads. Dropping
/// it stops the lane without waiting (the queued events are still delivered).
pub(crate) struct Dispatcher {
    lane: Arc<Lane>,
}

impl Dispatcher {
    /// Waits until every event sent so far went through the callback (or was dropped); false
    /// when `deadline` passed first. Returns at once in the lane's own callback.
    pub fn wait_idle(&self, deadline: Option<Instant>) -> bool {
        if self.in_own_callback() {
            return true;
        }
        let lane = &self.lane;
        let mut st = lock(&lane.state);
        while st.pending > 0 {
            st = match deadline {
                None => lane.idle.wait(st).unwrap_or_else(|e| e.into_inner()),
                Some(d) => {
                    let now = Instant::now();
                    if d <= now {
                        return false;
                    }
                    lane.idle
                        .wait_timeout(st, d - now)
                        .unwrap_or_else(|e| e.into_inner())
                        .0
                }
            };
        }
        true
    }

    fn in_own_callback(&self) -> bool {
        CURRENT.with(Cell::get) == self.lane.id
    }

    /// Queues an event for the callback; dropped when the lane is stopped.
    pub fn send(&self, p: Payload) {
        let lane = &self.lane;
        let mut st = lock(&lane.state);
        if st.stopped {
            drop(st);
            drop(p);
            return;
        }
        st.queue.push_back(p);
        st.pending += 1;
        let schedule = !std::mem::replace(&mut st.scheduled, true);
        drop(st);
        if schedule {
            lane.pool.make_ready(lane.clone());
        }
    }

    /// No more events; the lane finishes after those queued. Does not wait.
    fn close(&self) {
        let lane = &self.lane;
        let mut st = lock(&lane.state);
        if st.stopped {
            return;
        }
        st.stopped = true;
        let schedule = !std::mem::replace(&mut st.scheduled, true);
        drop(st);
        if schedule {
            lane.pool.make_ready(lane.clone());
        }
    }

    /// Ends the lane after the events already queued (or, with `discard`, without calling the
    /// callback for them): the callback is dropped and `user_data` finalized on a pool thread.
    /// Waits for that, unless called on one of the pool's threads (from a callback).
    pub fn stop(&self, discard: bool) {
        if discard {
            self.lane.discard.store(true, Ordering::Release);
        }
        self.close();
        if self.in_own_callback() || POOL.with(Cell::get) == self.lane.pool.id {
            return;
        }
        let lane = &self.lane;
        let mut st = lock(&lane.state);
        while !st.finished {
            st = lane.idle.wait(st).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Events queued from now on are dropped without calling the callback.
    pub fn discard_pending(&self) {
        self.lane.discard.store(true, Ordering::Release);
    }

    /// Stops without finalizing user_data (the registration failed; the caller keeps it).
    pub fn abort(&self) {
        self.lane.disarm.store(true, Ordering::Release);
        self.stop(true);
    }
}

impl Drop for Dispatcher {
    fn drop(&mut self) {
        self.close();
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
    /// callback registered on `cfg` (run on `callback`, or on a lane of its own in `pool`
    /// without one).
    ///
    /// # Safety
    /// `cfg` must be NULL or a live config.
    pub unsafe fn new(
        source: rmqs_event_source_code,
        tag: usize,
        callback: Option<Dispatcher>,
        queue: Option<Arc<QueueShared>>,
        cfg: *const super::config::rmqs_config,
        pool: &DispatchPool,
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

    /// Stops the callback's lane (see [`Dispatcher::stop`]), then the state callback.
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ffi::queue::rmqs_confirm;
    use crate::ffi::runtime::thread_role;
    use std::sync::OnceLock;
    use std::sync::atomic::AtomicUsize;
    use std::sync::mpsc;
    use std::time::Duration;

    static FREED: AtomicUsize = AtomicUsize::new(0);

    unsafe extern "C" fn free_ud(p: *mut c_void) {
        assert_eq!(p as usize, 42);
        FREED.fetch_add(1, Ordering::SeqCst);
    }

    fn confirm(i: usize) -> Payload {
        Payload::Confirms(vec![rmqs_confirm {
            publishing_id: i as u64,
            tag: i,
            status: 0,
        }])
    }

    fn tag_of(p: &Payload) -> usize {
        match p {
            Payload::Confirms(v) => v[0].tag,
            _ => usize::MAX,
        }
    }

    fn no_user_data() -> UserData {
        UserData {
            ptr: std::ptr::null_mut(),
            free: None,
        }
    }

    #[test]
    fn delivers_in_order_then_finalizes_once() {
        let pool = DispatchPool::new(1);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s2 = seen.clone();
        let d = pool
            .lane(
                move |p| {
                    assert_eq!(thread_role(), ThreadRole::Dispatcher);
                    s2.lock().unwrap().push(tag_of(&p));
                },
                UserData {
                    ptr: 42 as *mut c_void,
                    free: Some(free_ud),
                },
            )
            .unwrap();
        for i in 0..100 {
            d.send(confirm(i));
        }
        let before = FREED.load(Ordering::SeqCst);
        d.stop(false);
        assert_eq!(*seen.lock().unwrap(), (0..100).collect::<Vec<_>>());
        assert_eq!(FREED.load(Ordering::SeqCst), before + 1);
        d.stop(false); // idempotent
        d.send(confirm(0)); // dropped
        drop(d);
        assert_eq!(FREED.load(Ordering::SeqCst), before + 1);
    }

    /// 200 lanes on 3 threads, fed from 4 threads at once: the pool never starts more threads,
    /// each lane sees its events in order and never on two threads at the same time.
    #[test]
    fn many_lanes_share_a_few_threads_each_in_order_never_concurrently() {
        const LANES: usize = 200;
        const EVENTS: usize = 300;
        let pool = DispatchPool::new(3);
        let overlaps = Arc::new(AtomicUsize::new(0));
        let threads_seen = Arc::new(Mutex::new(std::collections::HashSet::new()));
        let logs: Vec<Arc<Mutex<Vec<usize>>>> = (0..LANES).map(|_| Arc::default()).collect();
        let lanes: Vec<Dispatcher> = logs
            .iter()
            .map(|log| {
                let (log, overlaps, seen) = (log.clone(), overlaps.clone(), threads_seen.clone());
                let busy = AtomicBool::new(false);
                pool.lane(
                    move |p| {
                        if busy.swap(true, Ordering::SeqCst) {
                            overlaps.fetch_add(1, Ordering::SeqCst);
                        }
                        seen.lock()
                            .unwrap()
                            .insert(format!("{:?}", std::thread::current().id()));
                        log.lock().unwrap().push(tag_of(&p));
                        busy.store(false, Ordering::SeqCst);
                    },
                    no_user_data(),
                )
                .unwrap()
            })
            .collect();
        assert_eq!(pool.threads(), 3);
        std::thread::scope(|s| {
            for t in 0..4 {
                let lanes = &lanes;
                s.spawn(move || {
                    for i in 0..EVENTS {
                        for l in lanes.iter().skip(t).step_by(4) {
                            l.send(confirm(i));
                        }
                    }
                });
            }
        });
        for l in &lanes {
            l.stop(false);
        }
        assert_eq!(overlaps.load(Ordering::SeqCst), 0);
        for log in &logs {
            assert_eq!(*log.lock().unwrap(), (0..EVENTS).collect::<Vec<_>>());
        }
        assert!(threads_seen.lock().unwrap().len() <= 3);
        assert_eq!(pool.threads(), 3);
    }

    /// A callback that does not return holds one thread: the other lanes are still served.
    #[test]
    fn a_stuck_callback_holds_one_thread_only() {
        let pool = DispatchPool::new(2);
        let (entered_tx, entered) = mpsc::channel();
        let (release, released) = mpsc::channel::<()>();
        let released = Mutex::new(released);
        let stuck = pool
            .lane(
                move |_| {
                    entered_tx.send(()).unwrap();
                    released.lock().unwrap().recv().unwrap();
                },
                no_user_data(),
            )
            .unwrap();
        let n = Arc::new(AtomicUsize::new(0));
        let others: Vec<Dispatcher> = (0..10)
            .map(|_| {
                let n = n.clone();
                pool.lane(
                    move |_| {
                        n.fetch_add(1, Ordering::SeqCst);
                    },
                    no_user_data(),
                )
                .unwrap()
            })
            .collect();
        stuck.send(confirm(0));
        stuck.send(confirm(1));
        entered.recv_timeout(Duration::from_secs(5)).unwrap();
        for o in &others {
            o.send(confirm(0));
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        assert!(others.iter().all(|o| o.wait_idle(Some(deadline))));
        assert_eq!(n.load(Ordering::SeqCst), 10);
        // the stuck lane is not idle until released
        assert!(!stuck.wait_idle(Some(Instant::now() + Duration::from_millis(50))));
        release.send(()).unwrap();
        entered.recv_timeout(Duration::from_secs(5)).unwrap();
        release.send(()).unwrap();
        assert!(stuck.wait_idle(None));
    }

    /// A callback may stop its own lane (what freeing an object from its callback does): the
    /// call returns at once, the finalizer runs after that callback, once.
    #[test]
    fn stopping_from_the_own_callback_finalizes_after_it() {
        let pool = DispatchPool::new(1);
        let me: Arc<OnceLock<Dispatcher>> = Arc::default();
        let m2 = me.clone();
        let order = Arc::new(Mutex::new(Vec::new()));
        let o2 = order.clone();
        static FINALIZED: AtomicUsize = AtomicUsize::new(0);
        unsafe extern "C" fn fin(_: *mut c_void) {
            FINALIZED.fetch_add(1, Ordering::SeqCst);
        }
        let d = pool
            .lane(
                move |p| {
                    let i = tag_of(&p);
                    if i == 1 {
                        let d = m2.get().unwrap();
                        assert!(d.wait_idle(None), "returns at once in its own callback");
                        d.stop(false);
                    }
                    o2.lock()
                        .unwrap()
                        .push((i, FINALIZED.load(Ordering::SeqCst)));
                },
                UserData {
                    ptr: std::ptr::null_mut(),
                    free: Some(fin),
                },
            )
            .unwrap();
        for i in 0..3 {
            d.send(confirm(i));
        }
        let _ = me.set(d);
        me.get().unwrap().stop(false);
        assert_eq!(FINALIZED.load(Ordering::SeqCst), 1);
        // events queued before the stop in the callback are delivered, before the finalizer
        assert_eq!(*order.lock().unwrap(), [(0, 0), (1, 0), (2, 0)]);
    }

    /// Dropping the pool ends its threads once the lanes are done (they hold the pool's
    /// shared state: it goes with them).
    #[test]
    fn dropping_the_pool_ends_its_threads() {
        let pool = DispatchPool::new(2);
        let shared = Arc::downgrade(&pool.shared);
        let d = pool.lane(drop, no_user_data()).unwrap();
        d.send(confirm(0));
        drop(d); // stopped without waiting; its event still goes through
        drop(pool);
        assert!(shared.upgrade().is_none());
        // a pool that never had a lane starts no thread
        let idle = DispatchPool::new(4);
        assert_eq!(idle.threads(), 0);
    }
}
