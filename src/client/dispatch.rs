//! The dispatcher pool: a fixed number of threads (`rmqs-dispatch`) that deliver the events of
//! many objects to their handlers, each object's in order, never two of them at once.
//!
//! The pool is started with its first lane and ends when it is dropped, however many lanes it
//! served. Each object has a lane: its own queue of events, in order. A lane with events waits
//! in the pool's ready list (once); a free thread takes the whole lane, delivers what it holds,
//! in order, and puts it back at the end of the list if more came meanwhile. A lane is on at
//! most one thread at a time, so an object's handler runs in order and never concurrently; a
//! slow handler holds one thread, and the other threads take the other lanes.
//!
//! Per event: one uncontended lock of the lane to queue it; the pool's lock and a wake-up only
//! when an idle lane becomes ready. Per batch (what a lane holds when a thread takes it): two
//! locks of the lane.
//!
//! The C API runs its confirm, chunk, state and consumer-update callbacks here (one pool per
//! connection, key `dispatch_threads`).

use std::cell::Cell;
use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Instant;

use super::blocking::{ThreadRole, mark_thread, thread_role, wait_counted};
use super::error::{ClientError, Result};

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

/// A pool of dispatcher threads (`rmqs-dispatch`) for events of type `T`: `size` of them,
/// started with the first lane. Dropping it ends them once every lane is done (and waits for
/// that on an application thread).
pub struct DispatchPool<T> {
    shared: Arc<PoolShared<T>>,
}

struct PoolShared<T> {
    id: u64,
    size: usize,
    /// Runs first on each thread, once it is marked [`ThreadRole::Dispatcher`].
    on_thread_start: Arc<dyn Fn() + Send + Sync>,
    state: Mutex<PoolState<T>>,
    /// Signalled when a lane becomes ready, and when the pool may end.
    wake: Condvar,
}

struct PoolState<T> {
    ready: VecDeque<Arc<Lane<T>>>,
    threads: Vec<JoinHandle<()>>,
    /// Lanes not finished yet.
    lanes: usize,
    /// Threads waiting on `wake`: a lane made ready signals only when one is (a futex call
    /// each time otherwise, even with every thread busy).
    sleeping: usize,
    /// The owner is gone: the threads end once `lanes` is 0.
    closing: bool,
}

impl<T: Send + 'static> DispatchPool<T> {
    /// A pool of `size` threads (at least 1), none started yet; `on_thread_start` runs first on
    /// each of them, once it is marked [`ThreadRole::Dispatcher`].
    pub fn new(size: usize, on_thread_start: impl Fn() + Send + Sync + 'static) -> Self {
        DispatchPool {
            shared: Arc::new(PoolShared {
                id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
                size: size.max(1),
                on_thread_start: Arc::new(on_thread_start),
                state: Mutex::new(PoolState {
                    ready: VecDeque::new(),
                    threads: Vec::new(),
                    lanes: 0,
                    sleeping: 0,
                    closing: false,
                }),
                wake: Condvar::new(),
            }),
        }
    }

    /// The threads started so far.
    pub fn threads(&self) -> usize {
        lock(&self.shared.state).threads.len()
    }

    /// A lane for one object: `deliver` runs for each of its events, in order, on one of the
    /// pool's threads at a time; `finish` runs there after the last call (unless the lane is
    /// [aborted](Dispatcher::abort)). Starts the threads on first use.
    pub fn lane(
        &self,
        deliver: impl FnMut(T) + Send + 'static,
        finish: impl FnOnce() + Send + 'static,
    ) -> Result<Dispatcher<T>> {
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
                    return Err(ClientError::Io(format!(
                        "cannot start a dispatcher thread: {e}"
                    )));
                }
            }
        }
        st.lanes += 1;
        drop(st);
        Ok(Dispatcher {
            lane: Arc::new(Lane {
                id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
                pool: pool.clone(),
                state: Mutex::new(LaneState {
                    queue: VecDeque::new(),
                    pending: 0,
                    idle_waiters: 0,
                    scheduled: false,
                    stopped: false,
                    finished: false,
                }),
                idle: Condvar::new(),
                discard: AtomicBool::new(false),
                disarm: AtomicBool::new(false),
                deliver: Mutex::new(Some(Box::new(deliver))),
                finish: Mutex::new(Some(Box::new(finish))),
            }),
        })
    }
}

impl<T> Drop for DispatchPool<T> {
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

impl<T> PoolShared<T> {
    /// A dispatcher thread: takes ready lanes until the pool closes and its lanes are done.
    fn work(self: Arc<Self>) {
        mark_thread(ThreadRole::Dispatcher);
        (self.on_thread_start)();
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
                    st = wait_counted(&self.wake, st, None, |s| &mut s.sleeping).0;
                }
            };
            if lane.run(&mut batch) {
                lock(&self.state).ready.push_back(lane);
            }
        }
    }

    fn make_ready(&self, lane: Arc<Lane<T>>) {
        let mut st = lock(&self.state);
        st.ready.push_back(lane);
        let sleeping = st.sleeping > 0;
        drop(st);
        if sleeping {
            self.wake.notify_one();
        }
    }

    fn lane_done(&self) {
        let mut st = lock(&self.state);
        st.lanes -= 1;
        if st.closing && st.lanes == 0 {
            self.wake.notify_all();
        }
    }
}

type Deliver<T> = Box<dyn FnMut(T) + Send>;

/// One object's events and handler.
struct Lane<T> {
    id: u64,
    pool: Arc<PoolShared<T>>,
    state: Mutex<LaneState<T>>,
    /// Signalled when `pending` falls to 0 (if `LaneState::idle_waiters`) and when the lane
    /// is finished.
    idle: Condvar,
    discard: AtomicBool,
    disarm: AtomicBool,
    /// Only ever locked by the thread that holds the lane (uncontended).
    deliver: Mutex<Option<Deliver<T>>>,
    finish: Mutex<Option<Box<dyn FnOnce() + Send>>>,
}

struct LaneState<T> {
    queue: VecDeque<T>,
    /// Events queued or being delivered.
    pending: usize,
    /// Threads in [`Dispatcher::wait_idle`]: only they need `idle` signalled when `pending`
    /// falls to 0, which happens after nearly every batch.
    idle_waiters: usize,
    /// On the ready list or held by a thread.
    scheduled: bool,
    /// No more events accepted; the lane finishes once empty.
    stopped: bool,
    /// The handler is dropped and `finish` has run.
    finished: bool,
}

impl<T> Lane<T> {
    /// Delivers what the lane holds (on a pool thread); true when more came meanwhile (the
    /// lane stays scheduled and goes back on the ready list).
    fn run(&self, batch: &mut VecDeque<T>) -> bool {
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
                // A panic in a handler must not kill the thread.
                if let Some(d) = deliver.as_mut() {
                    let _ = catch_unwind(AssertUnwindSafe(|| d(p)));
                }
            }
        }
        let mut st = lock(&self.state);
        st.pending -= n;
        if n > 0 && st.pending == 0 && st.idle_waiters > 0 {
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

    /// Drops the handler and runs `finish` (unless disarmed), after the last event.
    fn finish(&self) {
        let deliver = lock(&self.deliver).take();
        let finish = lock(&self.finish).take();
        let _ = catch_unwind(AssertUnwindSafe(move || {
            drop(deliver);
            match finish {
                Some(f) if !self.disarm.load(Ordering::Acquire) => f(),
                _ => {}
            }
        }));
        lock(&self.state).finished = true;
        self.idle.notify_all();
        self.pool.lane_done();
    }
}

/// An object's lane in a dispatcher pool: hands events to its handler in order, one at a
/// time, on one of the pool's threads. Dropping it stops the lane without waiting (the queued
/// events are still delivered).
pub struct Dispatcher<T> {
    lane: Arc<Lane<T>>,
}

impl<T> Dispatcher<T> {
    /// Waits until every event sent so far went through the handler (or was dropped); false
    /// when `deadline` passed first. Returns at once in the lane's own handler.
    pub fn wait_idle(&self, deadline: Option<Instant>) -> bool {
        if self.in_own_callback() {
            return true;
        }
        let lane = &self.lane;
        let mut st = lock(&lane.state);
        while st.pending > 0 {
            let in_time;
            (st, in_time) = wait_counted(&lane.idle, st, deadline, |s| &mut s.idle_waiters);
            if !in_time {
                return false;
            }
        }
        true
    }

    fn in_own_callback(&self) -> bool {
        CURRENT.with(Cell::get) == self.lane.id
    }

    /// Queues an event for the handler; dropped when the lane is stopped.
    pub fn send(&self, p: T) {
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
    /// handler for them): the handler is dropped and `finish` runs on a pool thread. Waits for
    /// that, unless called on one of the pool's threads (from a handler).
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

    /// Events queued from now on are dropped without calling the handler.
    pub fn discard_pending(&self) {
        self.lane.discard.store(true, Ordering::Release);
    }

    /// Stops without running `finish` (the registration failed; the caller keeps what
    /// `finish` would have released).
    pub fn abort(&self) {
        self.lane.disarm.store(true, Ordering::Release);
        self.stop(true);
    }
}

impl<T> Drop for Dispatcher<T> {
    fn drop(&mut self) {
        self.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::OnceLock;
    use std::sync::atomic::AtomicUsize;
    use std::sync::mpsc;
    use std::time::Duration;

    fn pool(size: usize) -> DispatchPool<usize> {
        DispatchPool::new(size, || {})
    }

    #[test]
    fn delivers_in_order_then_finishes_once() {
        let pool = pool(1);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let finished = Arc::new(AtomicUsize::new(0));
        let (s2, f2) = (seen.clone(), finished.clone());
        let d = pool
            .lane(
                move |i| {
                    assert_eq!(thread_role(), ThreadRole::Dispatcher);
                    s2.lock().unwrap().push(i);
                },
                move || {
                    f2.fetch_add(1, Ordering::SeqCst);
                },
            )
            .unwrap();
        for i in 0..100 {
            d.send(i);
        }
        d.stop(false);
        assert_eq!(*seen.lock().unwrap(), (0..100).collect::<Vec<_>>());
        assert_eq!(finished.load(Ordering::SeqCst), 1);
        d.stop(false); // idempotent
        d.send(0); // dropped
        drop(d);
        assert_eq!(finished.load(Ordering::SeqCst), 1);
        assert_eq!(seen.lock().unwrap().len(), 100);
    }

    /// An aborted lane drops its handler without running `finish`; a panicking handler does
    /// not end the thread.
    #[test]
    fn abort_skips_finish_and_a_panic_keeps_the_thread() {
        let pool = pool(1);
        let finished = Arc::new(AtomicUsize::new(0));
        let f2 = finished.clone();
        let d = pool
            .lane(
                |_| {},
                move || {
                    f2.fetch_add(1, Ordering::SeqCst);
                },
            )
            .unwrap();
        d.send(1);
        d.abort();
        assert_eq!(finished.load(Ordering::SeqCst), 0);
        let seen = Arc::new(AtomicUsize::new(0));
        let s2 = seen.clone();
        let d = pool
            .lane(
                move |i| {
                    assert!(i != 0, "boom");
                    s2.fetch_add(i, Ordering::SeqCst);
                },
                || {},
            )
            .unwrap();
        for i in 0..4 {
            d.send(i);
        }
        d.stop(false);
        assert_eq!(seen.load(Ordering::SeqCst), 1 + 2 + 3);
        assert_eq!(pool.threads(), 1);
    }

    /// 200 lanes on 3 threads, fed from 4 threads at once: the pool never starts more threads,
    /// each lane sees its events in order and never on two threads at the same time.
    #[test]
    fn many_lanes_share_a_few_threads_each_in_order_never_concurrently() {
        const LANES: usize = 200;
        const EVENTS: usize = 300;
        let pool = pool(3);
        let overlaps = Arc::new(AtomicUsize::new(0));
        let threads_seen = Arc::new(Mutex::new(std::collections::HashSet::new()));
        let logs: Vec<Arc<Mutex<Vec<usize>>>> = (0..LANES).map(|_| Arc::default()).collect();
        let lanes: Vec<Dispatcher<usize>> = logs
            .iter()
            .map(|log| {
                let (log, overlaps, seen) = (log.clone(), overlaps.clone(), threads_seen.clone());
                let busy = AtomicBool::new(false);
                pool.lane(
                    move |i| {
                        if busy.swap(true, Ordering::SeqCst) {
                            overlaps.fetch_add(1, Ordering::SeqCst);
                        }
                        seen.lock().unwrap().insert(std::thread::current().id());
                        log.lock().unwrap().push(i);
                        busy.store(false, Ordering::SeqCst);
                    },
                    || {},
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
                            l.send(i);
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

    /// A handler that does not return holds one thread: the other lanes are still served.
    #[test]
    fn a_stuck_handler_holds_one_thread_only() {
        let pool = pool(2);
        let (entered_tx, entered) = mpsc::channel();
        let (release, released) = mpsc::channel::<()>();
        let released = Mutex::new(released);
        let stuck = pool
            .lane(
                move |_| {
                    entered_tx.send(()).unwrap();
                    released.lock().unwrap().recv().unwrap();
                },
                || {},
            )
            .unwrap();
        let n = Arc::new(AtomicUsize::new(0));
        let others: Vec<Dispatcher<usize>> = (0..10)
            .map(|_| {
                let n = n.clone();
                pool.lane(
                    move |_| {
                        n.fetch_add(1, Ordering::SeqCst);
                    },
                    || {},
                )
                .unwrap()
            })
            .collect();
        stuck.send(0);
        stuck.send(1);
        entered.recv_timeout(Duration::from_secs(5)).unwrap();
        for o in &others {
            o.send(0);
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

    /// A handler may stop its own lane (what freeing an object from its callback does): the
    /// call returns at once, `finish` runs after that handler, once.
    #[test]
    fn stopping_from_the_own_handler_finishes_after_it() {
        let pool = pool(1);
        let me: Arc<OnceLock<Dispatcher<usize>>> = Arc::default();
        let m2 = me.clone();
        let order = Arc::new(Mutex::new(Vec::new()));
        let o2 = order.clone();
        let finished = Arc::new(AtomicUsize::new(0));
        let (f2, f3) = (finished.clone(), finished.clone());
        let d = pool
            .lane(
                move |i| {
                    if i == 1 {
                        let d = m2.get().unwrap();
                        assert!(d.wait_idle(None), "returns at once in its own handler");
                        d.stop(false);
                    }
                    o2.lock().unwrap().push((i, f2.load(Ordering::SeqCst)));
                },
                move || {
                    f3.fetch_add(1, Ordering::SeqCst);
                },
            )
            .unwrap();
        for i in 0..3 {
            d.send(i);
        }
        let _ = me.set(d);
        me.get().unwrap().stop(false);
        assert_eq!(finished.load(Ordering::SeqCst), 1);
        // events queued before the stop in the handler are delivered, before `finish`
        assert_eq!(*order.lock().unwrap(), [(0, 0), (1, 0), (2, 0)]);
    }

    /// Dropping the pool ends its threads once the lanes are done (they hold the pool's
    /// shared state: it goes with them); `on_thread_start` ran on each.
    #[test]
    fn dropping_the_pool_ends_its_threads() {
        let started = Arc::new(AtomicUsize::new(0));
        let s2 = started.clone();
        let pool = DispatchPool::new(2, move || {
            s2.fetch_add(1, Ordering::SeqCst);
        });
        let shared = Arc::downgrade(&pool.shared);
        let d = pool.lane(drop, || {}).unwrap();
        d.send(0usize);
        drop(d); // stopped without waiting; its event still goes through
        drop(pool);
        assert!(shared.upgrade().is_none());
        assert_eq!(started.load(Ordering::SeqCst), 2);
        // a pool that never had a lane starts no thread
        assert_eq!(self::pool(4).threads(), 0);
    }
}
