//! The synchronous facade over the async client, for callers that are not async (the C API).
//!
//! A [`BlockingEnvironment`] owns a Tokio runtime and an [`Environment`] that connects at the
//! first call needing it (or at once), and runs each operation to completion on the calling
//! thread within a deadline. Closing it closes its children in order (producers first) and
//! interrupts the calls still blocked in it.
//!
//! Threads the library owns are marked with a thread-local [`ThreadRole`]: the runtime's
//! workers (and Tokio's blocking threads), and the threads that run the application's
//! callbacks (marked by their owner). A call that would wait (for the broker, for confirms, for
//! another thread) made on either kind fails with [`ClientError::WouldDeadlock`] instead of
//! hanging or panicking: a callback thread that waits cannot deliver the events it may be
//! waiting for, and a Tokio worker cannot `block_on`.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, MutexGuard, OnceLock, RwLock};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::environment::Child;
use super::log::Log;
use super::{ClientError, ConnectionConfig, Environment, EnvironmentHandle, Result, ServerInfo};

/// Who runs the current thread, as far as blocking is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ThreadRole {
    /// The application's own thread: may block.
    Application,
    /// A Tokio runtime thread (the library's or the application's).
    Runtime,
    /// A thread running the application's callbacks.
    Dispatcher,
}

thread_local! {
    static ROLE: Cell<ThreadRole> = const { Cell::new(ThreadRole::Application) };
}

/// Marks the current thread (callback threads mark themselves).
pub fn mark_thread(role: ThreadRole) {
    ROLE.with(|r| r.set(role));
}

/// The current thread's role: a thread inside any Tokio runtime counts as
/// [`ThreadRole::Runtime`].
pub fn thread_role() -> ThreadRole {
    match ROLE.with(Cell::get) {
        ThreadRole::Application if tokio::runtime::Handle::try_current().is_ok() => {
            ThreadRole::Runtime
        }
        role => role,
    }
}

/// `Ok` on a thread that may block; [`ClientError::WouldDeadlock`] naming `what` otherwise.
pub fn check_may_block(what: &str) -> Result<()> {
    match thread_role() {
        ThreadRole::Application => Ok(()),
        ThreadRole::Dispatcher => Err(ClientError::WouldDeadlock(format!(
            "{what} would block in a library callback (an rmqs-dispatch thread); \
             call it from another thread, or use a timeout of 0 where allowed"
        ))),
        ThreadRole::Runtime => Err(ClientError::WouldDeadlock(format!(
            "{what} would block on a Tokio runtime thread"
        ))),
    }
}

/// How long a blocking caller's send waits for room below the in-flight cap (producer keys
/// `block_when_full` and `send_timeout_ms`): never on a thread that may not block.
#[derive(Clone, Copy, Debug)]
pub struct SendWait {
    /// A send waits for room below `max_in_flight` (else it fails at once).
    pub block_when_full: bool,
    /// How long a blocking send waits for room (None = forever).
    pub send_timeout: Option<Duration>,
}

impl SendWait {
    /// The `wait` of a send made on this thread (`None`: fail at once when full; `no_block`
    /// asks for that), and whether the thread's role kept it from waiting.
    fn wait(&self, no_block: bool) -> (Option<Duration>, bool) {
        if no_block || !self.block_when_full {
            return (None, false);
        }
        if thread_role() != ThreadRole::Application {
            return (None, true);
        }
        (Some(self.send_timeout.unwrap_or(Duration::MAX)), false)
    }

    /// A send's error: a full `what` (producer) that could not wait because of the thread
    /// ([`wait`](Self::wait)'s second value) is [`ClientError::WouldDeadlock`].
    fn error(e: ClientError, could_not_wait: bool, what: &str) -> ClientError {
        match e {
            ClientError::QueueFull(_) if could_not_wait => ClientError::WouldDeadlock(format!(
                "{what} is full and a send from a library callback cannot wait; pass \
                 RMQS_SEND_NO_BLOCK and retry later"
            )),
            e => e,
        }
    }

    /// One send made on this thread through `send`, which gets how long it may wait for room
    /// (`no_block`: not at all); a full `what` (producer) that could not wait because of the
    /// thread is [`ClientError::WouldDeadlock`].
    pub fn send<T>(
        &self,
        no_block: bool,
        what: &str,
        send: impl FnOnce(Option<Duration>) -> Result<T>,
    ) -> Result<T> {
        let (wait, could_not_wait) = self.wait(no_block);
        send(wait).map_err(|e| Self::error(e, could_not_wait, what))
    }

    /// A batch send made on this thread: sends `total` messages in order through `send`,
    /// which gets the index of the first message not accepted yet and the time left to wait
    /// for room (the wait of [`send`](Self::send), for the whole batch), and returns how many
    /// of the rest it accepted (a prefix). `done` counts the accepted messages, also on
    /// failure. A step that accepts none without an error (the producers' contract does not
    /// promise it never happens) ends the loop with [`ClientError::NoneAccepted`] instead of
    /// retrying at once forever.
    pub fn send_all(
        &self,
        no_block: bool,
        what: &str,
        total: usize,
        done: &mut usize,
        mut send: impl FnMut(usize, Option<Duration>) -> Result<usize>,
    ) -> Result<()> {
        let (wait, could_not_wait) = self.wait(no_block);
        let deadline = wait.and_then(|w| Instant::now().checked_add(w));
        while *done < total {
            let w = match (wait, deadline) {
                (None, _) => None,
                (Some(_), None) => Some(Duration::MAX),
                (Some(_), Some(d)) => Some(d.saturating_duration_since(Instant::now())),
            };
            match send(*done, w).map_err(|e| Self::error(e, could_not_wait, what))? {
                0 => return Err(ClientError::NoneAccepted(total - *done)),
                n => *done += n.min(total - *done),
            }
        }
        Ok(())
    }
}

/// Waits once on `cv` until notified or `deadline` (None: no limit). Returns the guard, and
/// false when the deadline had passed (without waiting). A poisoned lock is taken over.
pub fn wait_until<'a, T>(
    cv: &Condvar,
    guard: MutexGuard<'a, T>,
    deadline: Option<Instant>,
) -> (MutexGuard<'a, T>, bool) {
    let Some(d) = deadline else {
        return (cv.wait(guard).unwrap_or_else(|e| e.into_inner()), true);
    };
    let now = Instant::now();
    if d <= now {
        return (guard, false);
    }
    let (guard, _) = cv
        .wait_timeout(guard, d - now)
        .unwrap_or_else(|e| e.into_inner());
    (guard, true)
}

/// [`wait_until`], counted in the guarded state's waiter count (`waiters`) while it waits, so
/// that a notifier finding the count 0 can skip the signal (std's condvar makes a syscall for
/// each notify, waiter or not).
pub fn wait_counted<'a, T>(
    cv: &Condvar,
    mut guard: MutexGuard<'a, T>,
    deadline: Option<Instant>,
    waiters: impl Fn(&mut T) -> &mut usize,
) -> (MutexGuard<'a, T>, bool) {
    *waiters(&mut guard) += 1;
    let (mut guard, in_time) = wait_until(cv, guard, deadline);
    *waiters(&mut guard) -= 1;
    (guard, in_time)
}

/// A Tokio runtime (`rmqs-rt` workers) whose blocking calls can be interrupted by
/// [`signal_closing`](Runtime::signal_closing).
pub struct Runtime {
    rt: RwLock<Option<tokio::runtime::Runtime>>,
    handle: tokio::runtime::Handle,
    closing: watch::Sender<bool>,
}

impl Runtime {
    /// Starts the runtime with `threads` workers (at least 1); `on_thread_start` runs on each
    /// of its threads once marked [`ThreadRole::Runtime`].
    pub fn new(
        threads: usize,
        on_thread_start: impl Fn() + Send + Sync + 'static,
    ) -> Result<Runtime> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads.max(1))
            .thread_name("rmqs-rt")
            .on_thread_start(move || {
                mark_thread(ThreadRole::Runtime);
                on_thread_start();
            })
            .enable_all()
            .build()
            .map_err(|e| ClientError::Io(format!("cannot start the Tokio runtime: {e}")))?;
        let handle = rt.handle().clone();
        Ok(Runtime {
            rt: RwLock::new(Some(rt)),
            handle,
            closing: watch::channel(false).0,
        })
    }

    pub fn handle(&self) -> &tokio::runtime::Handle {
        &self.handle
    }

    /// Makes blocked and later [`block_on`](Runtime::block_on) calls (except those ignoring
    /// it) fail with [`ClientError::Closed`].
    pub fn signal_closing(&self) {
        self.closing.send_replace(true);
    }

    /// Runs `fut` on the runtime, blocking this thread, within `timeout` (None = no limit):
    /// [`ClientError::WouldDeadlock`] on a thread that may not block,
    /// [`ClientError::Timeout`] naming `what` after `timeout`, [`ClientError::Closed`] once the
    /// runtime is shut down or (unless `ignore_closing`) closing.
    pub fn block_on<F: Future>(
        &self,
        what: &'static str,
        timeout: Option<Duration>,
        ignore_closing: bool,
        fut: F,
    ) -> Result<F::Output> {
        check_may_block(what)?;
        let closed = || ClientError::Closed(what.to_string());
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
                    Some(t) => tokio::time::timeout(t, fut)
                        .await
                        .map_err(|_| ClientError::Timeout(t.as_millis() as u64, what)),
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

    /// Signals closing and stops the runtime, giving its tasks `timeout`.
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
                let _ = std::thread::Builder::new()
                    .name("rmqs-reaper".into())
                    .spawn(move || rt.shutdown_timeout(Duration::from_secs(1)));
            }
        }
    }
}

/// An [`Environment`] driven by its own [`Runtime`], for blocking callers: connects lazily,
/// runs operations within the connection timeouts, owns its children (see
/// [`adopt`](Self::adopt)) and closes them in order.
pub struct BlockingEnvironment {
    runtime: Runtime,
    config: ConnectionConfig,
    log: Log,
    env: tokio::sync::OnceCell<Environment>,
    info: OnceLock<ServerInfo>,
    closed: AtomicBool,
}

impl BlockingEnvironment {
    /// Starts the runtime with `threads` workers (see [`Runtime::new`]); connects at the
    /// first call that needs it ([`connect`](Self::connect) to connect now).
    pub fn new(
        config: ConnectionConfig,
        threads: usize,
        log: Log,
        on_thread_start: impl Fn() + Send + Sync + 'static,
    ) -> Result<BlockingEnvironment> {
        Ok(BlockingEnvironment {
            runtime: Runtime::new(threads, on_thread_start)?,
            config,
            log,
            env: tokio::sync::OnceCell::new(),
            info: OnceLock::new(),
            closed: AtomicBool::new(false),
        })
    }

    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    /// The environment, connecting it (once; a failed attempt is retried by the next call).
    pub async fn env(&self) -> Result<&Environment> {
        self.env
            .get_or_try_init(|| async {
                let env = Environment::connect_with(self.config.clone(), self.log.clone()).await?;
                let info = env.server_info().await?;
                let _ = self.info.set(info);
                Ok(env)
            })
            .await
    }

    /// Connects now (if not yet), blocking up to [`op_timeout`](Self::op_timeout).
    pub fn connect(&self, what: &'static str) -> Result<()> {
        self.run(what, async |_| Ok(()))
    }

    /// The time one operation is given: a connection attempt to every endpoint and two
    /// request round trips.
    pub fn op_timeout(&self) -> Duration {
        let n = self.config.endpoints.len().max(1) as u32;
        self.config.connect_timeout * n + self.config.request_timeout * 2
    }

    /// Whether [`close`](Self::close) was called.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// The error of a call made after [`close`](Self::close).
    pub fn closed_error(what: &str) -> ClientError {
        ClientError::Closed(format!("{what}: the connection is closed"))
    }

    /// Runs `fut` to completion on this thread within `timeout` (see [`Runtime::block_on`]);
    /// [`ClientError::Closed`] once closed.
    pub fn block<T>(
        &self,
        what: &'static str,
        timeout: Option<Duration>,
        fut: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        if self.is_closed() {
            return Err(Self::closed_error(what));
        }
        self.runtime.block_on(what, timeout, false, fut)?
    }

    /// Runs `f` on the environment (connecting it first) within
    /// [`op_timeout`](Self::op_timeout).
    pub fn run<T>(
        &self,
        what: &'static str,
        f: impl AsyncFnOnce(&Environment) -> Result<T>,
    ) -> Result<T> {
        self.block(what, Some(self.op_timeout()), async {
            f(self.env().await?).await
        })
    }

    /// Makes `child` close with the environment (see [`Environment::adopt`]).
    pub fn adopt<C: Child + 'static>(&self, child: &Arc<C>) {
        if let Some(env) = self.env.get() {
            env.adopt(child);
        }
    }

    /// The environment once connected, also after [`close`](Self::close) (for its counters).
    pub fn connected(&self) -> Option<&Environment> {
        self.env.get()
    }

    /// The broker's properties, once connected.
    pub fn info(&self) -> Option<&ServerInfo> {
        self.info.get()
    }

    /// Closes once (later calls return `Ok` at once): the children in order (producers
    /// first), then the environment, each within `timeout` (None = no limit); then interrupts
    /// the calls still blocked. `Some(ZERO)` closes in the background and returns at once;
    /// otherwise [`ClientError::WouldDeadlock`] on a thread that may not block.
    pub fn close(self: &Arc<Self>, what: &'static str, timeout: Option<Duration>) -> Result<()> {
        if timeout != Some(Duration::ZERO) {
            check_may_block(what)?;
        }
        if self.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        if timeout == Some(Duration::ZERO) {
            let me = self.clone();
            self.runtime.handle().spawn(async move {
                me.close_all(Some(Duration::ZERO)).await;
                me.runtime.signal_closing();
            });
            return Ok(());
        }
        let r = self
            .runtime
            .block_on(what, None, true, self.close_all(timeout));
        self.runtime.signal_closing();
        r
    }

    async fn close_all(&self, timeout: Option<Duration>) {
        if let Some(env) = self.env.get() {
            env.close_within(timeout).await;
        }
    }

    /// Stops the runtime (after [`close`](Self::close)), giving its tasks `timeout`.
    pub fn shutdown(&self, timeout: Duration) {
        self.runtime.shutdown(timeout);
    }
}

/// A client object made in a [`BlockingEnvironment`] that blocking callers close (the C
/// layer's producers and consumers): once (later calls return `Ok` at once), at once in the
/// background or within a timeout on the calling thread, and with its environment
/// (producers before consumers).
pub trait Closable: Send + Sync + Sized + 'static {
    /// What closing fails with: the client's errors, or the caller's own.
    type Error: From<ClientError> + Send;
    /// `producer`, `super consumer`, ...: for messages.
    const NOUN: &'static str;
    /// The call that closes it (`rmqs_producer_close`, ...): for messages.
    const CLOSE: &'static str;
    /// Producers close before consumers when their environment closes.
    const PRODUCER: bool;

    /// The environment it was made in.
    fn owner(&self) -> &BlockingEnvironment;

    /// Set once closing starts.
    fn closed_flag(&self) -> &AtomicBool;

    /// Closes the object within `timeout` (None = no limit) and reports the end. Runs once,
    /// from [`close_async`](Self::close_async).
    fn shut(
        &self,
        timeout: Option<Duration>,
    ) -> impl Future<Output = std::result::Result<(), Self::Error>> + Send + '_;

    /// Whether closing has started.
    fn is_closed(&self) -> bool {
        self.closed_flag().load(Ordering::Acquire)
    }

    /// [`ClientError::Closed`] naming `what` once the object or its environment is closed.
    fn check_open(&self, what: &str) -> Result<()> {
        if self.is_closed() {
            return Err(ClientError::Closed(format!(
                "{what}: the {} is closed",
                Self::NOUN
            )));
        }
        if self.owner().is_closed() {
            return Err(BlockingEnvironment::closed_error(what));
        }
        Ok(())
    }

    /// Closes once within `timeout`; later calls return `Ok` at once.
    fn close_async(
        &self,
        timeout: Option<Duration>,
    ) -> impl Future<Output = std::result::Result<(), Self::Error>> + Send + '_ {
        async move {
            if self.closed_flag().swap(true, Ordering::AcqRel) {
                return Ok(());
            }
            self.shut(timeout).await
        }
    }

    /// Closes once: `Some(ZERO)` in the background on the runtime, returning at once;
    /// otherwise blocks within `timeout` (None = no limit), [`ClientError::WouldDeadlock`] on a
    /// thread that may not block. A runtime already shut down closed everything already.
    fn close(self: &Arc<Self>, timeout: Option<Duration>) -> std::result::Result<(), Self::Error> {
        let runtime = self.owner().runtime();
        if timeout == Some(Duration::ZERO) {
            if !self.is_closed() {
                let me = self.clone();
                runtime.handle().spawn(async move {
                    let _ = me.close_async(timeout).await;
                });
            }
            return Ok(());
        }
        check_may_block(Self::CLOSE)?;
        if self.is_closed() {
            return Ok(());
        }
        match runtime.block_on(Self::CLOSE, None, true, self.close_async(timeout)) {
            Ok(r) => r,
            Err(ClientError::Closed(_)) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

/// Every [`Closable`] closes with its environment.
impl<C: Closable> Child for C {
    fn close_for_environment(
        &self,
        timeout: Option<Duration>,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(async move {
            let _ = self.close_async(timeout).await;
        })
    }

    fn is_producer(&self) -> bool {
        C::PRODUCER
    }
}

impl EnvironmentHandle for BlockingEnvironment {
    fn environment(&self) -> Option<&Environment> {
        if self.is_closed() {
            None
        } else {
            self.connected()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_on_runs_and_times_out() {
        let rt = Runtime::new(1, || {}).unwrap();
        assert_eq!(rt.block_on("x", None, false, async { 5 }).unwrap(), 5);
        let e = rt
            .block_on(
                "waiting",
                Some(Duration::from_millis(10)),
                false,
                std::future::pending::<()>(),
            )
            .unwrap_err();
        assert!(matches!(e, ClientError::Timeout(10, "waiting")), "{e}");
        // runtime threads are marked
        let role = rt
            .block_on("x", None, false, async {
                tokio::spawn(async { thread_role() }).await.unwrap()
            })
            .unwrap();
        assert_eq!(role, ThreadRole::Runtime);
        rt.shutdown(Duration::from_secs(1));
        let e = rt.block_on("after", None, true, async {}).unwrap_err();
        assert!(matches!(e, ClientError::Closed(_)), "{e}");
    }

    /// `threads` workers run at once: three tasks that each wait for the other two meet only
    /// on three threads; with one, every task runs on the same thread.
    #[test]
    fn runtime_has_the_workers_asked_for() {
        let rt = Runtime::new(3, || {}).unwrap();
        let ids = rt
            .block_on("x", Some(Duration::from_secs(10)), false, async {
                let meet = Arc::new(std::sync::Barrier::new(3));
                let tasks: Vec<_> = (0..3)
                    .map(|_| {
                        let meet = meet.clone();
                        tokio::spawn(async move {
                            meet.wait();
                            std::thread::current().id()
                        })
                    })
                    .collect();
                let mut ids = std::collections::HashSet::new();
                for t in tasks {
                    ids.insert(t.await.unwrap());
                }
                ids
            })
            .unwrap();
        assert_eq!(ids.len(), 3);
        let rt = Runtime::new(1, || {}).unwrap();
        let ids = rt
            .block_on("x", None, false, async {
                let mut ids = std::collections::HashSet::new();
                for _ in 0..20 {
                    ids.insert(
                        tokio::spawn(async { std::thread::current().id() })
                            .await
                            .unwrap(),
                    );
                }
                ids
            })
            .unwrap();
        assert_eq!(ids.len(), 1);
    }

    #[test]
    fn closing_interrupts_block_on() {
        let rt = Arc::new(Runtime::new(1, || {}).unwrap());
        let rt2 = rt.clone();
        let t = std::thread::spawn(move || {
            rt2.block_on("forever", None, false, std::future::pending::<()>())
        });
        std::thread::sleep(Duration::from_millis(50));
        rt.signal_closing();
        let e = t.join().unwrap().unwrap_err();
        assert!(matches!(e, ClientError::Closed(_)), "{e}");
    }

    #[test]
    fn dispatcher_threads_may_not_block() {
        let rt = Runtime::new(1, || {}).unwrap();
        let e = on_dispatcher(|| rt.block_on("flush", None, false, async {}).unwrap_err());
        assert!(
            matches!(&e, ClientError::WouldDeadlock(m) if m.contains("flush")),
            "{e}"
        );
    }

    fn on_dispatcher<T: Send>(f: impl FnOnce() -> T + Send) -> T {
        std::thread::scope(|s| {
            s.spawn(|| {
                mark_thread(ThreadRole::Dispatcher);
                f()
            })
            .join()
            .unwrap()
        })
    }

    #[test]
    fn batch_loop_stops_when_a_step_accepts_nothing() {
        // 10 messages: the producer takes 4, then 0 without an error. The loop must stop there
        // (it used to call again at once, forever; the call count bounds the test instead).
        let wait = SendWait {
            block_when_full: true,
            send_timeout: None,
        };
        let (mut calls, mut done) = (0, 0);
        let e = wait
            .send_all(false, "the producer", 10, &mut done, |from, _| {
                calls += 1;
                assert!(calls < 100, "the loop spins: {calls} calls");
                Ok(if from == 0 { 4 } else { 0 })
            })
            .unwrap_err();
        assert!(matches!(e, ClientError::NoneAccepted(6)), "{e}");
        assert_eq!(
            e.to_string(),
            "the producer accepted none of the 6 remaining messages; retry them later"
        );
        assert_eq!((done, calls), (4, 2));
    }

    #[test]
    fn batch_loop_sends_in_steps_within_one_wait() {
        let wait = SendWait {
            block_when_full: true,
            send_timeout: Some(Duration::from_secs(1)),
        };
        let (mut done, mut starts) = (0, Vec::new());
        wait.send_all(false, "p", 7, &mut done, |from, w| {
            assert!(w.is_some_and(|w| w <= Duration::from_secs(1)), "{w:?}");
            starts.push(from);
            Ok(3)
        })
        .unwrap();
        assert_eq!((done, starts), (7, vec![0, 3, 6]));
        // no blocking asked (flag or key): no wait, and the first error ends the batch
        for (no_block, block_when_full) in [(true, true), (false, false)] {
            let wait = SendWait {
                block_when_full,
                send_timeout: None,
            };
            let mut done = 0;
            let e = wait
                .send_all(no_block, "p", 5, &mut done, |from, w| {
                    assert_eq!(w, None);
                    if from == 0 {
                        Ok(2)
                    } else {
                        Err(ClientError::QueueFull(2))
                    }
                })
                .unwrap_err();
            assert!(matches!(e, ClientError::QueueFull(2)), "{e}");
            assert_eq!(done, 2);
        }
    }

    #[test]
    fn sends_from_callbacks_do_not_wait() {
        let wait = SendWait {
            block_when_full: true,
            send_timeout: None,
        };
        let full = |w: Option<Duration>| -> Result<usize> {
            assert_eq!(w, None);
            Err(ClientError::QueueFull(1))
        };
        let (one, all) = on_dispatcher(|| {
            let one = wait.send(false, "the producer", full).unwrap_err();
            let all = wait
                .send_all(false, "the producer", 3, &mut 0, |_, w| full(w))
                .unwrap_err();
            (one, all)
        });
        for e in [one, all] {
            assert!(
                matches!(&e, ClientError::WouldDeadlock(m) if m.starts_with("the producer is full")),
                "{e}"
            );
        }
        // with RMQS_SEND_NO_BLOCK a full producer is only full
        let e = on_dispatcher(|| wait.send(true, "the producer", full).unwrap_err());
        assert!(matches!(e, ClientError::QueueFull(1)), "{e}");
        // an application thread waits (forever, as `send_timeout` is unset)
        assert_eq!(wait.send(false, "p", Ok).unwrap(), Some(Duration::MAX));
    }

    /// A [`Closable`] that records its closes; `shut` waits for `gate`.
    struct Probe {
        owner: Arc<BlockingEnvironment>,
        closed: AtomicBool,
        gate: tokio::sync::Semaphore,
        shuts: std::sync::Mutex<Vec<Option<Duration>>>,
    }

    impl Probe {
        fn new() -> Arc<Probe> {
            let owner = BlockingEnvironment::new(ConnectionConfig::default(), 1, Log::off(), || {});
            Arc::new(Probe {
                owner: Arc::new(owner.unwrap()),
                closed: AtomicBool::new(false),
                gate: tokio::sync::Semaphore::new(0),
                shuts: Default::default(),
            })
        }

        fn shuts(&self) -> Vec<Option<Duration>> {
            self.shuts.lock().unwrap().clone()
        }
    }

    impl Closable for Probe {
        type Error = ClientError;
        const NOUN: &'static str = "probe";
        const CLOSE: &'static str = "probe_close";
        const PRODUCER: bool = true;

        fn owner(&self) -> &BlockingEnvironment {
            &self.owner
        }

        fn closed_flag(&self) -> &AtomicBool {
            &self.closed
        }

        async fn shut(&self, timeout: Option<Duration>) -> Result<()> {
            let _ = self.gate.acquire().await;
            self.shuts.lock().unwrap().push(timeout);
            Err(ClientError::NotConfirmed(1))
        }
    }

    #[test]
    fn closing_blocks_once_within_the_timeout() {
        let p = Probe::new();
        p.check_open("probe_send").unwrap();
        p.gate.add_permits(10);
        let e = p.close(Some(Duration::from_secs(3))).unwrap_err();
        assert!(matches!(e, ClientError::NotConfirmed(1)), "{e}");
        assert_eq!(p.shuts(), [Some(Duration::from_secs(3))]);
        // once: later closes (and the environment's) return Ok without closing again
        p.close(None).unwrap();
        p.owner
            .runtime()
            .block_on("x", None, false, p.close_for_environment(None))
            .unwrap();
        assert_eq!(p.shuts().len(), 1);
        assert!(p.is_producer());
        let e = p.check_open("probe_send").unwrap_err();
        assert_eq!(e.to_string(), "closed: probe_send: the probe is closed");
    }

    #[test]
    fn closing_at_once_closes_in_the_background() {
        let p = Probe::new();
        // from a callback thread too: `shut` is still waiting when it returns
        on_dispatcher(|| p.close(Some(Duration::ZERO))).unwrap();
        p.gate.add_permits(1);
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while p.shuts().is_empty() {
            assert!(std::time::Instant::now() < deadline, "not closed");
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(p.shuts(), [Some(Duration::ZERO)]);
        assert!(p.is_closed());
        p.close(Some(Duration::ZERO)).unwrap();
        assert_eq!(p.shuts().len(), 1);
    }

    #[test]
    fn closing_that_would_block_where_it_may_not() {
        let p = Probe::new();
        let e = on_dispatcher(|| p.close(None)).unwrap_err();
        assert!(
            matches!(&e, ClientError::WouldDeadlock(m) if m.starts_with("probe_close")),
            "{e}"
        );
        assert!(!p.is_closed() && p.shuts().is_empty());
    }

    #[test]
    fn an_owner_closed_closes_its_children_for_good() {
        let p = Probe::new();
        p.owner.close("x", None).unwrap();
        let e = p.check_open("probe_send").unwrap_err();
        assert_eq!(
            e.to_string(),
            "closed: probe_send: the connection is closed"
        );
        // its runtime gone, the child counts as closed (the owner closed what it had)
        p.owner.shutdown(Duration::from_secs(1));
        p.close(None).unwrap();
        assert!(p.shuts().is_empty());
    }
}
