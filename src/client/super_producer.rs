//! Super stream producers: one logical producer over the partitions of a super stream, routing
//! each message to a partition by a routing key, the way the official clients do.
//!
//! # Routing
//!
//! | [`Routing`] | partition(s) of a message | cost per message |
//! |---|---|---|
//! | [`Hash`](Routing::Hash) (default) | `partitions[murmur3_32(utf8(key), 104729) % n]` | one hash, no allocation |
//! | [`Key`](Routing::Key) | the partitions the broker binds `key` to (Route command, cached per key) | a map lookup; a Route round trip on a miss |
//! | [`Custom`](Routing::Custom) | whatever the application's function says (one or several) | the function |
//!
//! Hash routing is byte-for-byte what the Java, Go, .NET, Rust and JS clients do
//! ([`route_partition`]: MurmurHash3 x86-32, seed 104729, over the key's UTF-8 bytes, hash
//! taken as unsigned, modulo the partition count, indexing the Partitions response), so
//! producers of a mixed fleet put a key on the same partition. The routing key comes with each
//! send call, or from [`SuperProducerConfig::key_extractor`] when the call gives none.
//!
//! A message routed nowhere (a key bound to no partition, a custom function returning no
//! index) is refused by the send call with [`ClientError::InvalidArgument`] starting with
//! `"no route"` — never dropped silently (the Java client reports `CODE_NO_ROUTE_FOUND`, Go
//! `ErrMessageRouteNotFound`).
//!
//! # Partition producers
//!
//! Each partition gets its own [`Producer`] (config [`SuperProducerConfig::producer`]) on that
//! partition's leader, created **lazily**, by the first send routed to the partition (as the
//! Java and .NET clients do), or all at once with [`SuperProducerConfig::eager`] or
//! [`SuperProducer::open_partitions`]. A partition producer that was lost (connection or stream
//! gone: its in-flight messages completed with [`ConfirmStatus::Closed`](super::ConfirmStatus))
//! is replaced the same way by the next send routed to it.
//!
//! Creating a producer (and a Route lookup) is async work, while sends are synchronous: a send
//! that needs one runs it to completion on the runtime captured by [`SuperProducer::new`]
//! (`Handle::block_on`), blocking the calling thread for that round trip whatever its `wait`.
//! That is impossible on a thread inside a Tokio runtime: there such a send fails with
//! [`ClientError::InvalidArgument`] instead of panicking. Async code opens the producers first
//! ([`open_partitions`](SuperProducer::open_partitions) or `eager`) and then sends (hash and
//! custom routing never block after that; key routing still looks a new key up once).
//!
//! # Deduplication
//!
//! A named super producer ([`SuperProducerConfig::name`]) gives every partition producer that
//! same name, as the Java (`SuperStreamProducer`: the builder's name is duplicated for each
//! partition) and .NET (`RawSuperStreamProducer`: `Reference = config.Reference`) clients do.
//! The broker keeps a publishing sequence per (name, stream), so each partition deduplicates
//! on its own: a restarted named super producer continues on each partition after the last id
//! the broker kept there, and a producer of another client with the same name deduplicates
//! against the same sequences. Automatic ids are per partition.
//!
//! # Confirms
//!
//! Every accepted copy of a message gets exactly one [`Confirm`] through
//! [`SuperProducerEvents::confirms`], which also names the partition (its index in
//! [`SuperProducer::partitions`] and its stream name). Threads and rules as
//! [`ProducerEvents::confirms`].
//!
//! # Threading
//!
//! | method | blocks? | call from |
//! |---|---|---|
//! | [`SuperProducer::new`], [`close`](SuperProducer::close), [`refresh_partitions`](SuperProducer::refresh_partitions), [`open_partitions`](SuperProducer::open_partitions) | async | a Tokio task |
//! | [`send`](SuperProducer::send), [`send_batch`](SuperProducer::send_batch) | as [`Producer::send`], plus the creation of a missing partition producer or a Route lookup | any thread; a Tokio worker only when nothing has to be created or looked up |
//! | [`flush`](SuperProducer::flush) | until confirmed or `timeout` | any thread **but a Tokio worker** |
//! | [`partitions`](SuperProducer::partitions), [`stats`](SuperProducer::stats) | never | any thread |

use std::cell::Cell;
use std::collections::HashMap;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use super::environment::{Environment, check_name};
use super::error::{ClientError, Result};
use super::partitions::{self, PartitionId, Partitioned, first_error, read, write};
use super::producer::{
    Confirm, OutgoingMessage, Producer, ProducerConfig, ProducerEvents, ProducerStats,
};
use super::recovery::StateChange;
pub use crate::protocol::murmur3::route_partition;

/// Most routing keys [`Routing::Key`] remembers; the cache starts over when it is full.
pub const ROUTE_CACHE_CAPACITY: usize = 65_536;

/// How long a partition producer dropped by [`SuperProducer::refresh_partitions`] (its
/// partition is no longer in the super stream) gets for its outstanding confirms.
const REMOVED_CLOSE_TIMEOUT: Duration = Duration::from_secs(10);

/// Gives a [`SuperProducer`] the environment it creates partition producers in, for as long
/// as it lives. `Arc<Environment>` is one (`Arc::new(env)`); an owner that opens its
/// environment lazily (the C API's connection) implements it over its own state.
pub trait EnvironmentHandle: Send + Sync + 'static {
    /// The environment, `None` once it is gone (sends needing a new partition producer then
    /// fail with [`ClientError::Closed`]).
    fn environment(&self) -> Option<&Environment>;
}

impl EnvironmentHandle for Environment {
    fn environment(&self) -> Option<&Environment> {
        Some(self)
    }
}

/// Extracts the routing key of a message sent without one: borrowed from the message, or
/// computed into the buffer it is handed (empty, reused per thread: no allocation per message
/// once warm). `Ok(None)`: the message has no key (the send fails, except with
/// [`Routing::Custom`], which then gets `""`); `Err`: the send fails with that error.
pub type KeyExtractor = Arc<
    dyn for<'a> Fn(&OutgoingMessage<'a>, &'a mut String) -> Result<Option<&'a str>> + Send + Sync,
>;

/// Builds a [`KeyExtractor`] from a closure (the bound lets the closure's lifetimes be
/// inferred).
pub fn key_extractor<F>(f: F) -> KeyExtractor
where
    F: for<'a> Fn(&OutgoingMessage<'a>, &'a mut String) -> Result<Option<&'a str>>
        + Send
        + Sync
        + 'static,
{
    Arc::new(f)
}

/// A custom routing function: given the message, its routing key (`""` when it has none) and
/// the partitions in routing order, pushes the indices of the partitions it goes to onto the
/// vector (handed over empty, reused between calls: no allocation per message once warm).
/// Several indices send a copy to each; none refuses the message ("no route"); an index out of
/// range refuses it too. Runs on the sending thread; must not send on the same super producer.
pub type RoutingFn =
    Arc<dyn Fn(&OutgoingMessage<'_>, &str, &[String], &mut Vec<usize>) + Send + Sync>;

/// How a [`SuperProducer`] picks the partition(s) of a message.
#[derive(Clone, Default)]
pub enum Routing {
    /// MurmurHash3 of the routing key, as the official clients (see the module documentation).
    #[default]
    Hash,
    /// The broker's bindings: the partitions whose binding key is the routing key (Route
    /// command, cached per key up to [`ROUTE_CACHE_CAPACITY`] keys until the next
    /// [`SuperProducer::refresh_partitions`]), a copy to each. A key bound to nothing is
    /// refused.
    Key,
    /// The application's function.
    Custom(RoutingFn),
}

impl Routing {
    /// [`Routing::Custom`] from a closure.
    pub fn custom<F>(f: F) -> Routing
    where
        F: Fn(&OutgoingMessage<'_>, &str, &[String], &mut Vec<usize>) + Send + Sync + 'static,
    {
        Routing::Custom(Arc::new(f))
    }
}

impl std::fmt::Debug for Routing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Routing::Hash => "Hash",
            Routing::Key => "Key",
            Routing::Custom(_) => "Custom(..)",
        })
    }
}

/// Settings of a super stream producer. Build it with `..Default::default()`: fields may be
/// added.
#[derive(Clone, Default)]
pub struct SuperProducerConfig {
    /// `Some(name)` makes every partition producer a named, deduplicating producer with this
    /// very name (not a derived one: the broker tracks the sequence per name *and* stream, and
    /// the Java and .NET clients use the super producer's name unchanged, so a mixed fleet
    /// deduplicates alike). 1 to 255 bytes. `None` (default): anonymous, unless
    /// `producer.name` is set, which then counts as this name.
    pub name: Option<String>,
    /// Settings of each partition producer (batching, in-flight cap per partition, confirm
    /// timeout, sub-entries...). Its `name` must be `None` or equal to [`Self::name`].
    pub producer: ProducerConfig,
    /// How messages are routed (default [`Routing::Hash`]).
    pub routing: Routing,
    /// Where the routing key of a message sent without one comes from. Default `None`: sends
    /// must give a key (except with [`Routing::Custom`]).
    pub key_extractor: Option<KeyExtractor>,
    /// Create every partition producer in [`SuperProducer::new`] (and those of partitions
    /// added by [`SuperProducer::refresh_partitions`]) instead of at the first send routed to
    /// them. Default `false` (lazy, as the Java and .NET clients).
    pub eager: bool,
}

impl std::fmt::Debug for SuperProducerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SuperProducerConfig")
            .field("name", &self.name)
            .field("producer", &self.producer)
            .field("routing", &self.routing)
            .field("key_extractor", &self.key_extractor.as_ref().map(|_| ".."))
            .field("eager", &self.eager)
            .finish()
    }
}

impl SuperProducerConfig {
    /// Checks the settings ([`ClientError::InvalidArgument`] naming the bad one).
    pub fn validate(&self) -> Result<()> {
        self.partition_config().map(|_| ())
    }

    /// The configuration of each partition producer: `producer` with the super producer's
    /// name.
    fn partition_config(&self) -> Result<ProducerConfig> {
        let name = match (&self.name, &self.producer.name) {
            (Some(a), Some(b)) if a != b => {
                return Err(ClientError::InvalidArgument(format!(
                    "the super producer is named {a:?} but its producer config {b:?}: set one"
                )));
            }
            (Some(n), _) | (None, Some(n)) => Some(n.clone()),
            (None, None) => None,
        };
        if let Some(n) = &name {
            check_name("super producer name", n)?;
        }
        let config = ProducerConfig {
            name,
            ..self.producer.clone()
        };
        config.validate()?;
        Ok(config)
    }
}

/// Receives message outcomes of a super producer.
pub trait SuperProducerEvents: Send + Sync + 'static {
    /// A batch of outcomes of one partition: `partition` is its index in
    /// [`SuperProducer::partitions`] (as of now: a refresh that reorders partitions changes
    /// it), `stream` its name. Rules as [`ProducerEvents::confirms`]: called on a Tokio task,
    /// possibly concurrently (for different partitions, or from the timeout sweep), must
    /// return quickly and never block or flush; a panic is caught and ignored.
    fn confirms(&self, partition: usize, stream: &str, batch: &[Confirm]);
    /// A partition's producer is recovering or recovered, as [`ProducerEvents::state`]. The
    /// default ignores it.
    fn state(&self, partition: usize, stream: &str, change: &StateChange<'_>) {
        let _ = (partition, stream, change);
    }
    /// A partition's producer ended for good, as [`ProducerEvents::closed`] (its stream
    /// deleted, or recovery off or out of attempts); the next send routed to the partition
    /// creates a new producer. The default ignores it.
    fn partition_closed(&self, partition: usize, stream: &str, reason: &ClientError) {
        let _ = (partition, stream, reason);
    }
}

impl<F> SuperProducerEvents for F
where
    F: Fn(usize, &str, &[Confirm]) + Send + Sync + 'static,
{
    fn confirms(&self, partition: usize, stream: &str, batch: &[Confirm]) {
        self(partition, stream, batch)
    }
}

/// Forwards a partition producer's confirms with the partition.
struct PartitionEvents {
    id: Arc<PartitionId>,
    events: Arc<dyn SuperProducerEvents>,
}

impl ProducerEvents for PartitionEvents {
    fn confirms(&self, batch: &[Confirm]) {
        self.events
            .confirms(self.id.index(), &self.id.stream, batch)
    }

    fn state(&self, change: &StateChange<'_>) {
        self.events.state(self.id.index(), &self.id.stream, change)
    }

    fn closed(&self, reason: &ClientError) {
        self.events
            .partition_closed(self.id.index(), &self.id.stream, reason)
    }
}

/// One partition and its (lazily created) producer, with the lock held while the producer is
/// being created (one creation at a time per partition).
type Slot = partitions::Slot<Producer, tokio::sync::Mutex<()>>;

impl Slot {
    /// The producer, if there is one still open.
    fn open_producer(&self) -> Option<Arc<Producer>> {
        self.client().filter(|p| p.is_open())
    }
}

/// [`Routing::Key`]: routing key → partition indices (empty: no route), for one partition list.
type Routes = RwLock<HashMap<String, Arc<[usize]>>>;

type Topology = partitions::Topology<Producer, tokio::sync::Mutex<()>, Routes>;

fn no_routes() -> Routes {
    RwLock::new(HashMap::new())
}

thread_local! {
    /// The vector handed to [`Routing::Custom`] functions, reused by each thread.
    static ROUTE_BUF: Cell<Vec<usize>> = const { Cell::new(Vec::new()) };
    /// The buffer key extractors write into.
    static KEY_BUF: Cell<String> = const { Cell::new(String::new()) };
}

/// Runs `f` with this thread's key buffer (see [`KeyExtractor`]).
fn with_key_buf<R>(f: impl FnOnce(&mut String) -> R) -> R {
    let mut buf = KEY_BUF.take();
    let r = f(&mut buf);
    KEY_BUF.set(buf);
    r
}

/// Where one message goes.
enum Dests {
    One(usize),
    Cached(Arc<[usize]>),
    /// From a custom function; the vector goes back to [`ROUTE_BUF`] after use.
    Custom(Vec<usize>),
}

impl Dests {
    fn as_slice(&self) -> &[usize] {
        match self {
            Dests::One(i) => std::slice::from_ref(i),
            Dests::Cached(v) => v,
            Dests::Custom(v) => v,
        }
    }

    /// The single partition, if exactly one.
    fn single(&self) -> Option<usize> {
        match self.as_slice() {
            [i] => Some(*i),
            _ => None,
        }
    }

    fn recycle(self) {
        if let Dests::Custom(mut v) = self {
            v.clear();
            ROUTE_BUF.set(v);
        }
    }
}

/// The wait budget of one call, spread over the partition producers it uses.
#[derive(Clone, Copy)]
enum Budget {
    No,
    Until(Instant),
    Forever,
}

impl Budget {
    fn from(wait: Option<Duration>) -> Budget {
        match wait {
            None => Budget::No,
            Some(d) => Instant::now()
                .checked_add(d)
                .map_or(Budget::Forever, Budget::Until),
        }
    }

    /// What is left, as a [`Producer::send`] `wait`.
    fn left(self) -> Option<Duration> {
        match self {
            Budget::No => None,
            Budget::Until(at) => Some(at.saturating_duration_since(Instant::now())),
            Budget::Forever => Some(Duration::MAX),
        }
    }
}

struct Inner {
    parts: Partitioned<Producer, tokio::sync::Mutex<()>, Routes>,
    name: Option<String>,
    /// Template of the partition producers (name included).
    producer_config: ProducerConfig,
    routing: Routing,
    key_extractor: Option<KeyExtractor>,
    eager: bool,
    events: Arc<dyn SuperProducerEvents>,
    runtime: tokio::runtime::Handle,
}

impl Inner {
    /// Runs async work from a synchronous call, on the captured runtime.
    fn block_on<F: Future>(&self, what: &str, fut: F) -> Result<F::Output> {
        if tokio::runtime::Handle::try_current().is_ok() {
            return Err(ClientError::InvalidArgument(format!(
                "{what} of super stream {} needs a blocking call, which is not allowed on a \
                 thread inside a Tokio runtime: open the partition producers first \
                 (open_partitions or eager), or send from another thread",
                self.parts.super_stream
            )));
        }
        // Handle::block_on panics once the runtime is shut down (e.g. on a timer).
        catch_unwind(AssertUnwindSafe(|| self.runtime.block_on(fut)))
            .map_err(|_| ClientError::Closed("the runtime is shut down".into()))
    }

    /// The routing key of `msg`: the explicit one, else the extractor's (into `buf`). No key
    /// from the extractor is an error unless the routing is custom.
    fn key<'x>(
        &self,
        msg: &OutgoingMessage<'x>,
        explicit: Option<&'x str>,
        buf: &'x mut String,
    ) -> Result<Option<&'x str>> {
        let (Some(f), None) = (&self.key_extractor, explicit) else {
            return Ok(explicit);
        };
        buf.clear();
        match f(msg, buf)? {
            None if !matches!(self.routing, Routing::Custom(_)) => {
                Err(ClientError::InvalidArgument(format!(
                    "the key extractor gave no routing key for the message with tag {} \
                     (super stream {})",
                    msg.tag, self.parts.super_stream
                )))
            }
            key => Ok(key),
        }
    }

    fn no_key(&self, routing: &str) -> ClientError {
        ClientError::InvalidArgument(format!(
            "{routing} routing needs a routing key: pass one with the message or set a \
             key_extractor (super stream {})",
            self.parts.super_stream
        ))
    }

    /// The partitions `msg` goes to (at least one, all in range).
    fn route(
        &self,
        topo: &Topology,
        msg: &OutgoingMessage<'_>,
        key: Option<&str>,
    ) -> Result<Dests> {
        match &self.routing {
            Routing::Hash => {
                let key = key.ok_or_else(|| self.no_key("hash"))?;
                Ok(Dests::One(route_partition(key, topo.partitions.len())))
            }
            Routing::Key => {
                let key = key.ok_or_else(|| self.no_key("key"))?;
                let cached = read(&topo.ext).get(key).cloned();
                let dests = match cached {
                    Some(d) => d,
                    None => self.look_up_route(topo, key)?,
                };
                if dests.is_empty() {
                    return Err(ClientError::InvalidArgument(format!(
                        "no route: routing key {key:?} is bound to no partition of super stream {}",
                        self.parts.super_stream
                    )));
                }
                Ok(Dests::Cached(dests))
            }
            Routing::Custom(f) => {
                let mut v = ROUTE_BUF.take();
                v.clear();
                let key = key.unwrap_or("");
                f(msg, key, &topo.partitions, &mut v);
                let n = topo.partitions.len();
                let problem = if v.is_empty() {
                    Some(format!(
                        "no route: the routing function chose no partition for key {key:?}"
                    ))
                } else {
                    v.iter().find(|&&i| i >= n).map(|i| {
                        format!(
                            "no route: the routing function chose partition {i} of {n} for \
                             key {key:?}"
                        )
                    })
                };
                match problem {
                    Some(p) => {
                        Dests::Custom(v).recycle();
                        Err(ClientError::InvalidArgument(format!(
                            "{p} (super stream {})",
                            self.parts.super_stream
                        )))
                    }
                    None => Ok(Dests::Custom(v)),
                }
            }
        }
    }

    /// Route command for `key`, cached in `topo`.
    fn look_up_route(&self, topo: &Topology, key: &str) -> Result<Arc<[usize]>> {
        let env = self.parts.environment()?;
        let streams =
            self.block_on("a route lookup", env.route(key, &self.parts.super_stream))??;
        let mut dests = Vec::with_capacity(streams.len());
        for s in &streams {
            match topo.partitions.iter().position(|p| p == s) {
                Some(i) => {
                    if !dests.contains(&i) {
                        dests.push(i)
                    }
                }
                None => {
                    return Err(ClientError::InvalidArgument(format!(
                        "routing key {key:?} routes to stream {s:?}, which is not among the \
                         partitions of super stream {} this producer knows: call \
                         refresh_partitions",
                        self.parts.super_stream
                    )));
                }
            }
        }
        let dests: Arc<[usize]> = dests.into();
        let mut routes = write(&topo.ext);
        if routes.len() >= ROUTE_CACHE_CAPACITY {
            routes.clear();
        }
        routes.insert(key.to_string(), dests.clone());
        Ok(dests)
    }

    /// The open producer of partition `i`, created (blocking) when missing or lost.
    fn producer(&self, topo: &Topology, i: usize) -> Result<Arc<Producer>> {
        let slot = &topo.slots[i];
        if let Some(p) = slot.open_producer() {
            return Ok(p);
        }
        self.parts.check_open()?;
        self.block_on("creating a partition producer", self.open_slot(slot))?
    }

    /// Creates the producer of `slot` unless it has an open one.
    async fn open_slot(&self, slot: &Slot) -> Result<Arc<Producer>> {
        let _creating = slot.ext.lock().await;
        if let Some(p) = slot.open_producer() {
            return Ok(p);
        }
        self.parts.check_open()?;
        let events = Arc::new(PartitionEvents {
            id: slot.id.clone(),
            events: self.events.clone(),
        });
        let env = self.parts.environment()?;
        let p = Arc::new(
            Producer::new(env, &slot.id.stream, self.producer_config.clone(), events).await?,
        );
        // A lost producer replaced here was already shut; dropping it frees what is left.
        slot.set(p.clone());
        // `close` sets the flag, then takes the slots' producers: one of the two sides sees
        // the other.
        if self.parts.is_closed() {
            if let Some(p) = slot.take() {
                let _ = p.close(Duration::ZERO).await;
            }
            return Err(self.parts.closed_error());
        }
        Ok(p)
    }

    /// Sends one message to each of `dests`; the first copy's partition and id.
    fn send_to(
        &self,
        topo: &Topology,
        msg: &OutgoingMessage<'_>,
        dests: &[usize],
        budget: Budget,
    ) -> Result<(usize, u64)> {
        // Create every destination's producer first: a missing one cannot then fail a copy
        // after another was accepted.
        if let [i] = dests {
            let id = self.producer(topo, *i)?.send(msg, budget.left())?;
            return Ok((*i, id));
        }
        let producers = dests
            .iter()
            .map(|&i| self.producer(topo, i))
            .collect::<Result<Vec<_>>>()?;
        let mut first = None;
        for (p, &i) in producers.iter().zip(dests) {
            let id = p.send(msg, budget.left())?;
            first.get_or_insert((i, id));
        }
        first.ok_or_else(|| ClientError::InvalidArgument("no route".into()))
    }

    /// Creates the producers of every partition of the current topology.
    async fn open_all(&self) -> Result<()> {
        let topo = self.parts.topology();
        for slot in &topo.slots {
            self.open_slot(slot).await?;
        }
        Ok(())
    }
}

/// A producer on a super stream. `Send + Sync`: share it (e.g. in an `Arc`) between threads.
/// See the [module documentation](self) for routing, partition producers and threads.
pub struct SuperProducer {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for SuperProducer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SuperProducer")
            .field("super_stream", &self.inner.parts.super_stream)
            .field("name", &self.inner.name)
            .field("routing", &self.inner.routing)
            .field("partitions", &self.inner.parts.topology().partitions)
            .finish()
    }
}

impl SuperProducer {
    /// Creates a producer on `super_stream`: asks the broker for its partitions (Partitions
    /// command; refused with [`ClientError::InvalidArgument`] when there is none, with the
    /// broker's code, e.g. `STREAM_DOES_NOT_EXIST`, when it refuses) and, with
    /// [`SuperProducerConfig::eager`], creates every partition producer.
    ///
    /// `env` stays with the super producer: partition producers are created in it later.
    /// Async; the partition producers' tasks and the blocking creations of sends run on the
    /// calling Tokio runtime, which must outlive the super producer.
    pub async fn new(
        env: Arc<dyn EnvironmentHandle>,
        super_stream: &str,
        config: SuperProducerConfig,
        events: Arc<dyn SuperProducerEvents>,
    ) -> Result<SuperProducer> {
        check_name("super stream name", super_stream)?;
        let producer_config = config.partition_config()?;
        let parts = Partitioned::open(
            env,
            super_stream,
            "producer",
            |_| tokio::sync::Mutex::new(()),
            no_routes(),
        )
        .await?;
        let inner = Arc::new(Inner {
            parts,
            name: producer_config.name.clone(),
            producer_config,
            routing: config.routing,
            key_extractor: config.key_extractor,
            eager: config.eager,
            events,
            runtime: tokio::runtime::Handle::current(),
        });
        let sp = SuperProducer { inner };
        if sp.inner.eager {
            if let Err(e) = sp.inner.open_all().await {
                let _ = sp.close(Duration::ZERO).await;
                return Err(e);
            }
        }
        Ok(sp)
    }

    /// The super stream.
    pub fn super_stream(&self) -> &str {
        &self.inner.parts.super_stream
    }

    /// The name every partition producer has (`None`: anonymous).
    pub fn name(&self) -> Option<&str> {
        self.inner.name.as_deref()
    }

    /// The partitions, in routing order (indices of [`send`](Self::send) and of the
    /// confirms), as of creation or the last [`refresh_partitions`](Self::refresh_partitions).
    pub fn partitions(&self) -> Vec<String> {
        self.inner.parts.topology().partitions.clone()
    }

    /// How many partitions [`partitions`](Self::partitions) has.
    pub fn partition_count(&self) -> usize {
        self.inner.parts.topology().partitions.len()
    }

    /// The partition index(es) `msg` would go to with `routing_key`, without sending (a Route
    /// lookup may block as in [`send`](Self::send)).
    pub fn route(
        &self,
        msg: &OutgoingMessage<'_>,
        routing_key: Option<&str>,
    ) -> Result<Vec<usize>> {
        let s = &self.inner;
        let topo = s.parts.topology();
        let dests = with_key_buf(|buf| {
            let key = s.key(msg, routing_key, buf)?;
            s.route(&topo, msg, key)
        })?;
        let v = dests.as_slice().to_vec();
        dests.recycle();
        Ok(v)
    }

    /// Sends one message to the partition its routing key leads to, and returns that
    /// partition's index and the message's publishing id there. The outcome comes later
    /// through [`SuperProducerEvents::confirms`] (exactly once per accepted copy).
    ///
    /// `routing_key`: the message's key; `None` asks [`SuperProducerConfig::key_extractor`].
    /// `wait`: as [`Producer::send`] (`None` fails at once with [`ClientError::QueueFull`]
    /// when the partition's in-flight cap is reached; `Some(d)` blocks up to `d`).
    ///
    /// When routing gives several partitions (a key bound to several, a custom function),
    /// a copy goes to each, in order, and the first one's partition and id are returned; the
    /// producers of all of them are created before the first copy goes. Should a later copy
    /// still fail (cap reached, partition lost), the error is returned and the copies already
    /// accepted complete normally.
    ///
    /// The first send routed to a partition creates its producer, and the first send of a
    /// routing key with [`Routing::Key`] looks it up: both block the calling thread for a
    /// round trip to the broker whatever `wait` is, and fail with
    /// [`ClientError::InvalidArgument`] on a Tokio runtime thread.
    ///
    /// Errors: those of [`Producer::send`] and [`Producer::new`];
    /// [`ClientError::InvalidArgument`] for no routing key (hash and key routing) and for a
    /// message that routes nowhere (message starting with `"no route"`);
    /// [`ClientError::Closed`] after [`close`](Self::close).
    pub fn send(
        &self,
        msg: &OutgoingMessage<'_>,
        routing_key: Option<&str>,
        wait: Option<Duration>,
    ) -> Result<(usize, u64)> {
        let s = &self.inner;
        s.parts.check_open()?;
        let budget = Budget::from(wait);
        let topo = s.parts.topology();
        let dests = with_key_buf(|buf| {
            let key = s.key(msg, routing_key, buf)?;
            s.route(&topo, msg, key)
        })?;
        let r = s.send_to(&topo, msg, dests.as_slice(), budget);
        dests.recycle();
        r
    }

    /// Sends messages in order and returns how many were accepted (a prefix of `msgs`), as
    /// [`Producer::send_batch`]: stops early at a message that fails (returning the count so
    /// far, or the error when it is 0) or when a partition's cap is reached (`wait` is the
    /// budget of the whole call).
    ///
    /// `routing_keys`: one per message (`None` asks the key extractor), or `None` to ask it
    /// for each. Consecutive messages routed to the same single partition go to its producer
    /// in one [`Producer::send_batch`] call; order is kept per partition.
    pub fn send_batch(
        &self,
        msgs: &[OutgoingMessage<'_>],
        routing_keys: Option<&[Option<&str>]>,
        wait: Option<Duration>,
    ) -> Result<usize> {
        with_key_buf(|buf| self.send_batch_with(msgs, routing_keys, wait, buf))
    }

    fn send_batch_with(
        &self,
        msgs: &[OutgoingMessage<'_>],
        routing_keys: Option<&[Option<&str>]>,
        wait: Option<Duration>,
        buf: &mut String,
    ) -> Result<usize> {
        let s = &self.inner;
        if let Some(keys) = routing_keys {
            if keys.len() != msgs.len() {
                return Err(ClientError::InvalidArgument(format!(
                    "{} routing keys for {} messages",
                    keys.len(),
                    msgs.len()
                )));
            }
        }
        s.parts.check_open()?;
        let budget = Budget::from(wait);
        let topo = s.parts.topology();
        let mut route = |i: usize| {
            let key = s.key(&msgs[i], routing_keys.and_then(|k| k[i]), buf)?;
            s.route(&topo, &msgs[i], key)
        };
        let stop = |done: usize, e: ClientError| if done == 0 { Err(e) } else { Ok(done) };
        let mut done = 0;
        let mut next = None;
        while done < msgs.len() {
            let dests = match next.take() {
                Some(d) => d,
                None => match route(done) {
                    Ok(d) => d,
                    Err(e) => return stop(done, e),
                },
            };
            let Some(p) = dests.single() else {
                let r = s.send_to(&topo, &msgs[done], dests.as_slice(), budget);
                dests.recycle();
                match r {
                    Ok(_) => done += 1,
                    Err(e) => return stop(done, e),
                }
                continue;
            };
            dests.recycle();
            // The run of messages going to `p` alone.
            let mut end = done + 1;
            let mut routing_error = None;
            while end < msgs.len() {
                match route(end) {
                    Ok(d) if d.single() == Some(p) => {
                        d.recycle();
                        end += 1;
                    }
                    Ok(d) => {
                        next = Some(d);
                        break;
                    }
                    Err(e) => {
                        routing_error = Some(e);
                        break;
                    }
                }
            }
            let sent = s
                .producer(&topo, p)
                .and_then(|producer| producer.send_batch(&msgs[done..end], budget.left()));
            match sent {
                Ok(n) => {
                    let wanted = end - done;
                    done += n;
                    if n < wanted {
                        if let Some(d) = next.take() {
                            d.recycle();
                        }
                        return Ok(done);
                    }
                }
                Err(e) => {
                    if let Some(d) = next.take() {
                        d.recycle();
                    }
                    return stop(done, e);
                }
            }
            if let Some(e) = routing_error {
                return stop(done, e);
            }
        }
        Ok(done)
    }

    /// Sends every partition producer's partial frame and blocks until nothing is in flight
    /// on any of them, as [`Producer::flush`], within `timeout` in total.
    ///
    /// Synchronous: any thread but a Tokio worker (and not from the confirm callback).
    pub fn flush(&self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now().checked_add(timeout);
        let topo = self.inner.parts.topology();
        for slot in &topo.slots {
            let p = slot.client();
            if let Some(p) = p {
                let left = deadline.map_or(Duration::MAX, |d| {
                    d.saturating_duration_since(Instant::now())
                });
                match p.flush(left) {
                    Err(ClientError::Timeout(..)) => {
                        return Err(ClientError::Timeout(
                            timeout.as_millis() as u64,
                            "confirms of the messages in flight",
                        ));
                    }
                    Err(e) => return Err(e),
                    Ok(()) => {}
                }
            }
        }
        Ok(())
    }

    /// Creates the producers of every partition that has none (or lost its own), so that
    /// sends never block on a creation (see the module documentation). Async.
    pub async fn open_partitions(&self) -> Result<()> {
        self.inner.parts.check_open()?;
        self.inner.open_all().await
    }

    /// Asks the broker for the partitions again and returns them. Partitions that appeared
    /// are routed to from now on (hash routing spreads keys over the new count: as with the
    /// other clients, a key may then land on another partition than before); partitions that
    /// disappeared have their producers closed (given 10 s for outstanding confirms, in the
    /// background). Producers of partitions still present are kept, their index updated.
    /// Key routing looks keys up again. With [`SuperProducerConfig::eager`] the new
    /// partitions' producers are created before this returns.
    ///
    /// Async. Sends running concurrently use the partitions of the moment they started.
    pub async fn refresh_partitions(&self) -> Result<Vec<String>> {
        let s = &self.inner;
        s.parts.check_open()?;
        let _one = s.parts.refreshing.lock().await;
        let (partitions, slots, removed) = s.parts.relist(|_| tokio::sync::Mutex::new(())).await?;
        s.parts.set_topology(partitions.clone(), slots, no_routes());
        for slot in removed {
            if let Some(p) = slot.take() {
                s.runtime.spawn(async move {
                    let _ = p.close(REMOVED_CLOSE_TIMEOUT).await;
                });
            }
        }
        if s.eager {
            s.open_all().await?;
        }
        Ok(partitions)
    }

    /// Counters summed over the partition producers alive now (a replaced or removed
    /// partition producer's counts are gone with it). Any thread, never blocks.
    pub fn stats(&self) -> ProducerStats {
        let topo = self.inner.parts.topology();
        let mut total = ProducerStats::default();
        for slot in &topo.slots {
            if let Some(p) = slot.client() {
                let st = p.stats();
                total.published += st.published;
                total.confirmed += st.confirmed;
                total.errored += st.errored;
                total.in_flight += st.in_flight;
                total.recoveries += st.recoveries;
                total.republished += st.republished;
            }
        }
        total
    }

    /// Closes the super producer: sends fail with [`ClientError::Closed`] from now on, and
    /// every partition producer is closed as [`Producer::close`] (concurrently, each given
    /// `timeout`). [`ClientError::Timeout`] when some had confirms left (closed all the same).
    /// Idempotent: later calls return `Ok(())` at once. Async: call from a Tokio task.
    pub async fn close(&self, timeout: Duration) -> Result<()> {
        let s = &self.inner;
        if s.parts.set_closed() {
            return Ok(());
        }
        let topo = s.parts.topology();
        let closing = topo
            .slots
            .iter()
            .filter_map(|slot| slot.take())
            .map(|p| tokio::spawn(async move { p.close(timeout).await }))
            .collect();
        first_error(closing).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_names() {
        let c = SuperProducerConfig::default();
        assert!(matches!(c.routing, Routing::Hash));
        assert!(!c.eager);
        assert_eq!(c.partition_config().unwrap().name, None);

        let c = SuperProducerConfig {
            name: Some("app".into()),
            ..Default::default()
        };
        assert_eq!(c.partition_config().unwrap().name.as_deref(), Some("app"));
        let c = SuperProducerConfig {
            producer: ProducerConfig {
                name: Some("app".into()),
                ..Default::default()
            },
            ..Default::default()
        };
        assert_eq!(c.partition_config().unwrap().name.as_deref(), Some("app"));

        for bad in [
            SuperProducerConfig {
                name: Some("a".into()),
                producer: ProducerConfig {
                    name: Some("b".into()),
                    ..Default::default()
                },
                ..Default::default()
            },
            SuperProducerConfig {
                name: Some(String::new()),
                ..Default::default()
            },
            SuperProducerConfig {
                producer: ProducerConfig {
                    batch_size: 0,
                    ..Default::default()
                },
                ..Default::default()
            },
        ] {
            assert!(
                matches!(bad.validate(), Err(ClientError::InvalidArgument(_))),
                "{bad:?}"
            );
        }
    }

    /// A super producer's routing state without a broker (key routing is not exercised: it
    /// needs Route).
    fn offline(
        routing: Routing,
        partitions: &[&str],
        extractor: Option<KeyExtractor>,
    ) -> (tokio::runtime::Runtime, Inner, Topology) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let partitions: Vec<String> = partitions.iter().map(|p| p.to_string()).collect();
        struct NoEnv;
        impl EnvironmentHandle for NoEnv {
            fn environment(&self) -> Option<&Environment> {
                None
            }
        }
        let mutex = |_| tokio::sync::Mutex::new(());
        let parts = Partitioned::new(
            Arc::new(NoEnv),
            "ss",
            "producer",
            partitions,
            mutex,
            no_routes(),
        );
        let topo = Topology {
            partitions: parts.topology().partitions.clone(),
            slots: parts.topology().slots.clone(),
            ext: no_routes(),
        };
        let inner = Inner {
            parts,
            name: None,
            producer_config: ProducerConfig::default(),
            routing,
            key_extractor: extractor,
            eager: false,
            events: Arc::new(|_: usize, _: &str, _: &[Confirm]| {}),
            runtime: rt.handle().clone(),
        };
        (rt, inner, topo)
    }

    fn route(
        inner: &Inner,
        topo: &Topology,
        msg: &OutgoingMessage<'_>,
        key: Option<&str>,
    ) -> Result<Vec<usize>> {
        let mut buf = String::new();
        let k = inner.key(msg, key, &mut buf)?;
        let d = inner.route(topo, msg, k)?;
        let v = d.as_slice().to_vec();
        d.recycle();
        Ok(v)
    }

    /// The official clients' table (see `protocol::murmur3`), through the super producer.
    #[test]
    fn hash_routing_matches_the_official_clients() {
        let (_rt, inner, topo) = offline(
            Routing::Hash,
            &["invoices-01", "invoices-02", "invoices-03"],
            None,
        );
        let m = OutgoingMessage::new(b"x");
        for (key, want) in [
            ("hello1", 1),
            ("hello2", 0),
            ("hello3", 1),
            ("hello4", 2),
            ("hello5", 0),
            ("hello6", 2),
            ("hello7", 0),
            ("hello8", 1),
            ("hello9", 0),
            ("hello10", 2),
            ("hello88", 1),
        ] {
            assert_eq!(
                route(&inner, &topo, &m, Some(key)).unwrap(),
                vec![want],
                "{key}"
            );
        }
        let e = route(&inner, &topo, &m, None).unwrap_err();
        assert!(
            matches!(e, ClientError::InvalidArgument(ref s) if s.contains("routing key")),
            "{e}"
        );
    }

    #[test]
    fn key_extractor_borrows_from_the_message() {
        let extractor = key_extractor(|m, _| Ok(std::str::from_utf8(m.body).ok()));
        let (_rt, inner, topo) = offline(Routing::Hash, &["a", "b", "c"], Some(extractor));
        let m = OutgoingMessage::new(b"hello4");
        assert_eq!(route(&inner, &topo, &m, None).unwrap(), vec![2]);
        // An explicit key wins.
        assert_eq!(route(&inner, &topo, &m, Some("hello2")).unwrap(), vec![0]);
        let bad = OutgoingMessage::new(b"\xff");
        assert!(route(&inner, &topo, &bad, None).is_err());
    }

    #[test]
    fn custom_routing_checks_indices() {
        let routing = Routing::custom(
            |m: &OutgoingMessage<'_>, key: &str, parts: &[String], out: &mut Vec<usize>| {
                assert!(out.is_empty());
                match key {
                    "all" => out.extend(0..parts.len()),
                    "none" => {}
                    "far" => out.push(parts.len()),
                    _ => out.push(m.tag % parts.len()),
                }
            },
        );
        let (_rt, inner, topo) = offline(routing, &["a", "b"], None);
        let m = OutgoingMessage::new(b"x").tag(3);
        assert_eq!(route(&inner, &topo, &m, None).unwrap(), vec![1]);
        assert_eq!(route(&inner, &topo, &m, Some("all")).unwrap(), vec![0, 1]);
        for k in ["none", "far"] {
            let e = route(&inner, &topo, &m, Some(k)).unwrap_err();
            assert!(
                matches!(e, ClientError::InvalidArgument(ref s) if s.starts_with("no route")),
                "{e}"
            );
        }
        // The buffer is reused: still handed over empty after an error.
        assert_eq!(route(&inner, &topo, &m, Some("x")).unwrap(), vec![1]);
    }

    #[test]
    fn blocking_work_is_refused_inside_a_runtime() {
        let (rt, inner, _topo) = offline(Routing::Hash, &["a"], None);
        assert_eq!(inner.block_on("x", async { 5 }).unwrap(), 5);
        let e = rt.block_on(async { inner.block_on("x", async { 5 }).unwrap_err() });
        assert!(
            matches!(e, ClientError::InvalidArgument(ref s) if s.contains("Tokio")),
            "{e}"
        );
    }

    #[test]
    fn budget_spreads_over_calls() {
        assert_eq!(Budget::from(None).left(), None);
        assert_eq!(
            Budget::from(Some(Duration::MAX)).left(),
            Some(Duration::MAX)
        );
        let b = Budget::from(Some(Duration::from_secs(60)));
        let left = b.left().unwrap();
        assert!(left <= Duration::from_secs(60) && left > Duration::from_secs(59));
    }
}
