//! Super stream consumers: one logical consumer over the partitions of a super stream, the way
//! the Java client's `SuperStreamConsumer` does it.
//!
//! # Partition consumers
//!
//! [`SuperConsumer::new`] asks the broker for the partitions (Partitions command, in its
//! order: the indices the events carry) and subscribes one [`Consumer`] to each, all with
//! the settings of [`SuperConsumerConfig::consumer`] plus the subscription property
//! `super-stream=<name>`. Every chunk reaches [`SuperConsumerEvents::chunk`] with the index
//! of its partition ([`DeliveredChunk::stream`] names it too).
//!
//! # Name, offset tracking, single active consumer
//!
//! The super consumer's [`name`](SuperConsumerConfig::name) is every partition consumer's
//! name, unchanged, as in the Java client:
//!
//! * **Offset tracking** ([`ConsumerConfig::tracking`]): the reference is that name, and the
//!   broker keeps one offset per (reference, stream), so each partition stores and resumes on
//!   its own — the same reference on different streams. A restarted super consumer with the
//!   same name continues on every partition right after what it processed there.
//! * **Single active consumer** ([`SuperConsumerConfig::single_active_consumer`], RabbitMQ
//!   3.11+): the name is the group of each partition. With the `super-stream` property the
//!   broker spreads the active consumers of the group over its members by partition index
//!   (partition `i` goes to member `i mod members`, members in subscription order), and moves
//!   partitions when members join or leave: the member losing one steps down
//!   ([`SuperConsumerEvents::consumer_update`] with `is_active() == false`), stops
//!   delivering, lets the application release what it holds, stores its processed offset
//!   (with an automatic [`TrackingStrategy`](super::consumer::TrackingStrategy)), and only
//!   then does the broker activate the next member, which starts right after the stored
//!   offset. A super consumer that closes stores its processed offsets first, so the members
//!   left take its partitions over where it stopped.
//!
//! # Delivery guarantees across a hand-over
//!
//! With an automatic tracking strategy and chunks released inside
//! [`SuperConsumerEvents::chunk`] (or before a step-down's
//! [`consumer_update_timeout`](ConsumerConfig::consumer_update_timeout)), a partition changes
//! hands with nothing lost and nothing repeated when a member closes. The at-least-once
//! window — records a new active member may receive again — is what the previous one had
//! not stored when it let go: the chunks it still held past the timeout, those it received
//! after its last store when it was lost without closing (connection or process gone), or,
//! with [`Manual`](super::consumer::TrackingStrategy::Manual) tracking, everything since its
//! last explicit store. A step-down that races with a chunk being handed over can repeat
//! that chunk.
//!
//! # Partitions added later
//!
//! A partition added to the super stream is not consumed until the application calls
//! [`SuperConsumer::refresh_partitions`], which subscribes to the new partitions (from
//! [`SuperConsumerConfig::added_partition_offset`], default `First`, when nothing is stored for
//! them), closes the consumers of partitions that are gone, and replaces the consumers of
//! partitions that were lost (connection lost, stream unavailable).
//!
//! # Threading
//!
//! | method | blocks? | call from |
//! |---|---|---|
//! | [`SuperConsumer::new`], [`close`](SuperConsumer::close), [`refresh_partitions`](SuperConsumer::refresh_partitions), [`stored_offsets`](SuperConsumer::stored_offsets) | async | a Tokio task |
//! | [`partitions`](SuperConsumer::partitions), [`stats`](SuperConsumer::stats), [`partition_consumer`](SuperConsumer::partition_consumer), [`is_active`](SuperConsumer::is_active), [`store_processed_offsets`](SuperConsumer::store_processed_offsets) | never | any thread |
//!
//! The events of one partition come one at a time and in order, on the Tokio task of its
//! connection; those of different partitions may come concurrently. Rules as
//! [`ConsumerEvents`]: return quickly, never block.

use std::sync::Arc;

use super::consumer::{
    Consumer, ConsumerConfig, ConsumerEvents, ConsumerStats, ConsumerUpdate, DeliveredChunk,
};
use super::environment::check_name;
use super::error::{ClientError, Result};
use super::partitions::{self, PartitionId, Partitioned, first_error};
use super::recovery::StateChange;
use super::super_producer::EnvironmentHandle;
use crate::protocol::codes::OffsetSpec;

/// Settings of a super stream consumer. Build it with `..Default::default()`: fields may be
/// added.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SuperConsumerConfig {
    /// The name of every partition consumer: the single-active-consumer group and the
    /// offset-tracking reference (see the module documentation). 1 to 255 bytes. `None`
    /// (default): `consumer.name`, which may also be set (then to the same value).
    pub name: Option<String>,
    /// One active consumer per partition among the super consumers with this
    /// [`name`](Self::name) (required), spread by the broker (RabbitMQ 3.11+). Also on when
    /// `consumer.single_active_consumer` is. Default `false`.
    pub single_active_consumer: bool,
    /// Settings of each partition consumer: where to start, credit, tracking strategy,
    /// consumer-update timeout, filter values and post-filter, extra properties.
    /// `super_stream` must be `None` or the super stream's name (it is set to it).
    pub consumer: ConsumerConfig,
    /// Where the consumers of partitions picked up by
    /// [`SuperConsumer::refresh_partitions`] start when nothing is stored for them (instead
    /// of `consumer.offset`). Default [`OffsetSpec::First`]: a partition added after the
    /// super consumer started holds only messages it has not seen.
    pub added_partition_offset: OffsetSpec,
}

impl Default for SuperConsumerConfig {
    fn default() -> Self {
        SuperConsumerConfig {
            name: None,
            single_active_consumer: false,
            consumer: ConsumerConfig::default(),
            added_partition_offset: OffsetSpec::First,
        }
    }
}

impl SuperConsumerConfig {
    /// Checks the settings for `super_stream` ([`ClientError::InvalidArgument`] naming the bad
    /// one).
    pub fn validate(&self, super_stream: &str) -> Result<()> {
        self.partition_config(super_stream).map(|_| ())
    }

    /// The configuration of each partition consumer.
    fn partition_config(&self, super_stream: &str) -> Result<ConsumerConfig> {
        check_name("super stream name", super_stream)?;
        let name = match (&self.name, &self.consumer.name) {
            (Some(a), Some(b)) if a != b => {
                return Err(ClientError::InvalidArgument(format!(
                    "the super consumer is named {a:?} but its consumer config {b:?}: set one"
                )));
            }
            (Some(n), _) | (None, Some(n)) => Some(n.clone()),
            (None, None) => None,
        };
        if let Some(n) = &name {
            check_name("super consumer name", n)?;
        }
        if let Some(s) = &self.consumer.super_stream {
            if s != super_stream {
                return Err(ClientError::InvalidArgument(format!(
                    "the consumer config names super stream {s:?}, the super consumer \
                     {super_stream:?}"
                )));
            }
        }
        let config = ConsumerConfig {
            name,
            single_active_consumer: self.single_active_consumer
                || self.consumer.single_active_consumer,
            super_stream: Some(super_stream.to_string()),
            ..self.consumer.clone()
        };
        config.validate()?;
        Ok(config)
    }
}

/// What a super consumer reports, per partition. `partition` is the partition's index in
/// [`SuperConsumer::partitions`] as of the event (a refresh that reorders partitions changes
/// it; a partition removed by a refresh reports its `closed` with its former index).
///
/// Threads and rules as [`ConsumerEvents`]: the calls for one partition never overlap and
/// come in order, `closed` last; different partitions may call concurrently. Return quickly,
/// never block; a panic is caught and ignored.
pub trait SuperConsumerEvents: Send + Sync + 'static {
    /// A chunk of partition `partition` (its stream: [`DeliveredChunk::stream`]). Hold it as
    /// long as needed: as [`ConsumerEvents::chunk`].
    fn chunk(&self, partition: usize, chunk: DeliveredChunk);
    /// A non-fatal problem of the partition's consumer, as [`ConsumerEvents::error`].
    fn error(&self, partition: usize, stream: &str, error: &ClientError);
    /// The partition's consumer stopped for good, as [`ConsumerEvents::closed`]:
    /// [`ClientError::Closed`] when the application closed the super consumer (or a refresh
    /// found the partition gone); the stream's loss or the connection's otherwise, after
    /// which [`SuperConsumer::refresh_partitions`] replaces it.
    fn closed(&self, partition: usize, stream: &str, reason: &ClientError);
    /// A single active consumer of the partition is activated or steps down, as
    /// [`ConsumerEvents::consumer_update`] ([`ConsumerUpdate::stream`] names the partition).
    /// The default answers with [`ConsumerUpdate::default_offset`] at once: right after the
    /// offset stored for the partition, else the configured offset.
    fn consumer_update(&self, partition: usize, update: ConsumerUpdate) {
        let _ = partition;
        drop(update);
    }
    /// A partition's consumer is recovering or recovered, as [`ConsumerEvents::state`]. The
    /// default ignores it.
    fn state(&self, partition: usize, stream: &str, change: &StateChange<'_>) {
        let _ = (partition, stream, change);
    }
}

/// Forwards a partition consumer's events with the partition.
struct PartitionEvents {
    id: Arc<PartitionId>,
    events: Arc<dyn SuperConsumerEvents>,
}

impl ConsumerEvents for PartitionEvents {
    fn chunk(&self, chunk: DeliveredChunk) {
        self.events.chunk(self.id.index(), chunk)
    }

    fn error(&self, error: &ClientError) {
        self.events.error(self.id.index(), &self.id.stream, error)
    }

    fn closed(&self, reason: &ClientError) {
        self.events.closed(self.id.index(), &self.id.stream, reason)
    }

    fn consumer_update(&self, update: ConsumerUpdate) {
        self.events.consumer_update(self.id.index(), update)
    }

    fn state(&self, change: &StateChange<'_>) {
        self.events.state(self.id.index(), &self.id.stream, change)
    }
}

/// One partition and its consumer, with where its first consumer starts when nothing is
/// stored.
type Slot = partitions::Slot<Consumer, OffsetSpec>;

struct Inner {
    parts: Partitioned<Consumer, OffsetSpec, ()>,
    /// Template of the partition consumers (name, SAC and super-stream included).
    config: ConsumerConfig,
    added_partition_offset: OffsetSpec,
    events: Arc<dyn SuperConsumerEvents>,
}

impl Inner {
    /// Subscribes the consumer of `slot` from `offset` (when nothing is stored).
    async fn open(&self, slot: &Slot, offset: OffsetSpec) -> Result<Arc<Consumer>> {
        self.parts.check_open()?;
        let events = Arc::new(PartitionEvents {
            id: slot.id.clone(),
            events: self.events.clone(),
        });
        let config = ConsumerConfig {
            offset,
            ..self.config.clone()
        };
        let c = Arc::new(
            Consumer::new(self.parts.environment()?, &slot.id.stream, config, events).await?,
        );
        slot.set(c.clone());
        // `close` sets the flag, then takes the slots' consumers: one of the two sides sees
        // the other.
        if self.parts.is_closed() {
            let _ = c.close().await;
            return Err(self.parts.closed_error());
        }
        Ok(c)
    }

    /// Subscribes every partition of the current topology that has no open consumer: a new
    /// one from its start offset, a lost one where it stopped. Tries them all; the first
    /// error.
    async fn open_missing(&self) -> Result<()> {
        let topo = self.parts.topology();
        let mut result = Ok(());
        for slot in &topo.slots {
            let offset = match slot.client() {
                Some(c) if c.is_open() => continue,
                Some(c) => self.resume_offset(&c, slot.ext),
                None => slot.ext,
            };
            if let Err(e) = self.open(slot, offset).await {
                if matches!(e, ClientError::Closed(_)) && self.parts.is_closed() {
                    return Err(e);
                }
                if result.is_ok() {
                    result = Err(e);
                }
            }
        }
        result
    }

    /// Where the replacement of the lost consumer `lost` starts when nothing is stored for
    /// its partition: right after the last record it delivered. A single active consumer
    /// keeps `start` (the broker's activation decides; another member may have moved on).
    fn resume_offset(&self, lost: &Consumer, start: OffsetSpec) -> OffsetSpec {
        if self.config.single_active_consumer {
            return start;
        }
        match lost.last_delivered_offset() {
            Some(o) => OffsetSpec::Offset(o.saturating_add(1)),
            None => start,
        }
    }
}

/// A consumer on a super stream. `Send + Sync`. See the [module documentation](self).
///
/// Dropping it without [`close`](Self::close) drops the partition consumers, which then
/// unsubscribe in the background (without the final offset store being awaited).
pub struct SuperConsumer {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for SuperConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SuperConsumer")
            .field("super_stream", &self.inner.parts.super_stream)
            .field("name", &self.inner.config.name)
            .field("partitions", &self.inner.parts.topology().partitions)
            .finish()
    }
}

impl SuperConsumer {
    /// Creates a consumer on `super_stream`: asks the broker for its partitions (refused with
    /// [`ClientError::InvalidArgument`] when there is none, with the broker's code, e.g.
    /// `STREAM_DOES_NOT_EXIST`, when it refuses) and subscribes to each in order, as
    /// [`Consumer::new`] (so [`ClientError::Unsupported`] for single active consumer or
    /// filtering on a broker too old). When a partition fails, those already subscribed are
    /// closed and the error returned. Chunks may reach `events` before this returns.
    ///
    /// `env` stays with the super consumer: [`refresh_partitions`](Self::refresh_partitions)
    /// subscribes in it later. Async.
    pub async fn new(
        env: Arc<dyn EnvironmentHandle>,
        super_stream: &str,
        config: SuperConsumerConfig,
        events: Arc<dyn SuperConsumerEvents>,
    ) -> Result<SuperConsumer> {
        let template = config.partition_config(super_stream)?;
        let start = template.offset;
        let parts = Partitioned::open(env, super_stream, "consumer", |_| start, ()).await?;
        let inner = Arc::new(Inner {
            parts,
            config: template,
            added_partition_offset: config.added_partition_offset,
            events,
        });
        let sc = SuperConsumer { inner };
        let topo = sc.inner.parts.topology();
        for slot in &topo.slots {
            if let Err(e) = sc.inner.open(slot, slot.ext).await {
                let _ = sc.close().await;
                return Err(e);
            }
        }
        Ok(sc)
    }

    /// The super stream.
    pub fn super_stream(&self) -> &str {
        &self.inner.parts.super_stream
    }

    /// The name every partition consumer has (`None`: anonymous).
    pub fn name(&self) -> Option<&str> {
        self.inner.config.name.as_deref()
    }

    /// The configuration of the partition consumers (`offset` aside: see
    /// [`SuperConsumerConfig::added_partition_offset`]).
    pub fn config(&self) -> &ConsumerConfig {
        &self.inner.config
    }

    /// The partitions in the broker's order (the indices of the events), as of creation or
    /// the last [`refresh_partitions`](Self::refresh_partitions).
    pub fn partitions(&self) -> Vec<String> {
        self.inner.parts.topology().partitions.clone()
    }

    /// How many partitions [`partitions`](Self::partitions) has.
    pub fn partition_count(&self) -> usize {
        self.inner.parts.topology().partitions.len()
    }

    /// The consumer of partition `partition` (for [`Consumer::credit`],
    /// [`Consumer::store_offset`], [`Consumer::processed_offset`], its stats...); `None` out
    /// of range, or when its subscription failed in a refresh. It may be closed (lost, or the
    /// super consumer closed).
    pub fn partition_consumer(&self, partition: usize) -> Option<Arc<Consumer>> {
        self.inner.parts.topology().slots.get(partition)?.client()
    }

    /// Whether this super consumer receives from partition `partition` now: its consumer is
    /// open and, with single active consumer, the active one of its group.
    pub fn is_active(&self, partition: usize) -> bool {
        self.partition_consumer(partition)
            .is_some_and(|c| c.is_active())
    }

    /// The indices of the partitions this super consumer receives from now (see
    /// [`is_active`](Self::is_active)).
    pub fn active_partitions(&self) -> Vec<usize> {
        let topo = self.inner.parts.topology();
        (0..topo.slots.len())
            .filter(|&i| topo.slots[i].client().is_some_and(|c| c.is_active()))
            .collect()
    }

    /// Stores every partition's processed offset (see [`Consumer::store_processed_offset`])
    /// and returns, per partition, what was stored: `None` when nothing moved since the last
    /// store, the consumer is not the active one, or it is closed. Tries every partition;
    /// [`ClientError::InvalidArgument`] without a name (or tracking reference), else the
    /// first error of a send. Non-blocking, any thread.
    pub fn store_processed_offsets(&self) -> Result<Vec<Option<u64>>> {
        let topo = self.inner.parts.topology();
        let mut out = Vec::with_capacity(topo.slots.len());
        let mut error = None;
        for slot in &topo.slots {
            let stored = match slot.client() {
                Some(c) => match c.store_processed_offset() {
                    Ok(s) => s,
                    Err(ClientError::Closed(_)) => None,
                    Err(e) => {
                        error.get_or_insert(e);
                        None
                    }
                },
                None => None,
            };
            out.push(stored);
        }
        match error {
            Some(e) => Err(e),
            None => Ok(out),
        }
    }

    /// The offsets stored on the broker under the tracking reference, per partition (`None`:
    /// nothing stored there). [`ClientError::InvalidArgument`] without a name (or tracking
    /// reference). Async.
    pub async fn stored_offsets(&self) -> Result<Vec<Option<u64>>> {
        let reference = self.inner.config.reference().ok_or_else(|| {
            ClientError::InvalidArgument(
                "offset tracking needs a consumer name or a tracking reference".into(),
            )
        })?;
        let env = self.inner.parts.environment()?;
        let mut out = Vec::new();
        for p in self.partitions() {
            out.push(env.query_offset(reference, &p).await?);
        }
        Ok(out)
    }

    /// Asks the broker for the partitions again and returns them. New partitions get a
    /// consumer (starting at [`SuperConsumerConfig::added_partition_offset`] when nothing is
    /// stored for them); partitions that disappeared have theirs closed (its `closed` event
    /// comes with its former index, before the new partition list is in force); partitions
    /// still present keep theirs, with their new index. Consumers that were lost (connection
    /// lost, stream unavailable) are replaced, starting right after the last record they
    /// delivered (after the stored offset with offset tracking; as the broker's activation
    /// says with single active consumer).
    ///
    /// Subscribes every partition it can; when one fails the error is returned and that
    /// partition stays without a consumer until the next refresh. Async.
    pub async fn refresh_partitions(&self) -> Result<Vec<String>> {
        let s = &self.inner;
        s.parts.check_open()?;
        let _one = s.parts.refreshing.lock().await;
        s.parts.check_open()?;
        let added = s.added_partition_offset;
        let (partitions, slots, removed) = s.parts.relist(|_| added).await?;
        for slot in &removed {
            if let Some(c) = slot.take() {
                let _ = c.close().await;
            }
        }
        s.parts.set_topology(partitions.clone(), slots, ());
        s.open_missing().await?;
        Ok(partitions)
    }

    /// Counters summed over the current partition consumers (closed ones included, so the
    /// totals stay readable after [`close`](Self::close); a replaced or removed one's counts
    /// are gone with it); `last_stored_offset` is `None` (offsets are per partition: see
    /// [`partition_consumer`](Self::partition_consumer)). Any thread, never blocks.
    pub fn stats(&self) -> ConsumerStats {
        let topo = self.inner.parts.topology();
        let mut total = ConsumerStats::default();
        for slot in &topo.slots {
            if let Some(c) = slot.client() {
                let st = c.stats();
                total.chunks += st.chunks;
                total.messages += st.messages;
                total.bytes += st.bytes;
                total.credits_granted += st.credits_granted;
                total.chunks_received += st.chunks_received;
                total.filtered_out += st.filtered_out;
                total.offsets_stored += st.offsets_stored;
                total.recoveries += st.recoveries;
            }
        }
        total
    }

    /// Closes every partition consumer as [`Consumer::close`] (concurrently): with an
    /// automatic tracking strategy each stores its processed offset first, so that the other
    /// members of a single-active-consumer group continue right after it; each partition
    /// gets its `closed` event. The first error of an unsubscription, if any (closed all the
    /// same). Idempotent: later calls return `Ok(())` at once; refresh then fails with
    /// [`ClientError::Closed`]. Async: call from a Tokio task.
    pub async fn close(&self) -> Result<()> {
        let s = &self.inner;
        if s.parts.set_closed() {
            return Ok(());
        }
        // A refresh in progress stops at its next subscription.
        let _one = s.parts.refreshing.lock().await;
        let topo = s.parts.topology();
        // The consumers stay in their slots, closed: their counters remain readable.
        let closing = topo
            .slots
            .iter()
            .filter_map(|slot| slot.client())
            .map(|c| tokio::spawn(async move { c.close().await }))
            .collect();
        first_error(closing).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::consumer::TrackingStrategy;

    #[test]
    fn partition_config() {
        let c = SuperConsumerConfig::default();
        assert_eq!(c.added_partition_offset, OffsetSpec::First);
        let p = c.partition_config("ss").unwrap();
        assert_eq!(p.super_stream.as_deref(), Some("ss"));
        assert_eq!(p.name, None);
        assert!(!p.single_active_consumer);

        let c = SuperConsumerConfig {
            name: Some("app".into()),
            single_active_consumer: true,
            consumer: ConsumerConfig {
                tracking: TrackingStrategy::EveryMessages(10),
                ..Default::default()
            },
            ..Default::default()
        };
        let p = c.partition_config("ss").unwrap();
        assert_eq!(p.name.as_deref(), Some("app"));
        assert_eq!(p.reference(), Some("app"));
        assert!(p.single_active_consumer);

        let c = SuperConsumerConfig {
            consumer: ConsumerConfig {
                name: Some("app".into()),
                single_active_consumer: true,
                super_stream: Some("ss".into()),
                ..Default::default()
            },
            ..Default::default()
        };
        let p = c.partition_config("ss").unwrap();
        assert_eq!(p.name.as_deref(), Some("app"));
        assert!(p.single_active_consumer);

        for (bad, ss) in [
            (
                SuperConsumerConfig {
                    name: Some("a".into()),
                    consumer: ConsumerConfig {
                        name: Some("b".into()),
                        ..Default::default()
                    },
                    ..Default::default()
                },
                "ss",
            ),
            (
                SuperConsumerConfig {
                    single_active_consumer: true,
                    ..Default::default()
                },
                "ss",
            ),
            (
                SuperConsumerConfig {
                    consumer: ConsumerConfig {
                        super_stream: Some("other".into()),
                        ..Default::default()
                    },
                    ..Default::default()
                },
                "ss",
            ),
            (
                SuperConsumerConfig {
                    consumer: ConsumerConfig {
                        tracking: TrackingStrategy::Manual,
                        ..Default::default()
                    },
                    ..Default::default()
                },
                "ss",
            ),
            (
                SuperConsumerConfig {
                    name: Some(String::new()),
                    ..Default::default()
                },
                "ss",
            ),
            (SuperConsumerConfig::default(), ""),
        ] {
            assert!(
                matches!(bad.validate(ss), Err(ClientError::InvalidArgument(_))),
                "{bad:?} on {ss:?}"
            );
        }
    }
}
