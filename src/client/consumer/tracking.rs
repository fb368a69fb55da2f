//! Server-side offset tracking: which offset the application has processed, and when it goes
//! to the broker.
//!
//! **What is stored.** A chunk is *processed* once the application has released it (dropped
//! its [`DeliveredChunk`](super::DeliveredChunk) or called `release`); chunks the application
//! never sees because the post-filter removed every record count as processed at once. The
//! *processed offset* is the last offset of the longest run of processed chunks in delivery
//! order: a chunk released before an earlier one does not move it, so a crash never loses
//! records held by the application. That offset is what is stored; a restarted consumer asks
//! the broker for it and subscribes at `stored + 1`: the last processed message is not
//! delivered again and the next one is not skipped.
//!
//! **Committed offsets.** Deliver v2 (RabbitMQ 3.11+) carries the id of the last chunk a
//! quorum has committed. The broker only ever sends committed chunks, so a delivered chunk's
//! id is never above it; should one be (a broker bug, or a chunk read from a replica ahead of
//! what it heard from the leader), the stored offset is capped at that committed chunk id,
//! which a broker failover cannot take back. With Deliver v1 (3.10) nothing is known and the
//! processed offset is stored as it is.

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// When the consumer stores its processed offset on the broker (see the module
/// documentation of [`ConsumerConfig::tracking`](super::ConsumerConfig::tracking)).
///
/// Every strategy but [`Disabled`](Self::Disabled) needs a reference (the consumer's name or
/// [`ConsumerConfig::tracking_reference`](super::ConsumerConfig::tracking_reference)), looks
/// the stored offset up when the consumer starts and, when there is one, starts at the next
/// offset instead of [`ConsumerConfig::offset`](super::ConsumerConfig::offset). The automatic
/// strategies (all but `Disabled` and `Manual`) also store once more when the consumer is
/// closed. Nothing is stored when the processed offset has not moved since the last store.
/// Each store writes a small tracking chunk into the stream, which takes an offset of its own
/// (consumers never see it): offsets are not dense across stores, and storing after every
/// message costs a chunk per message.
///
/// Marked `#[non_exhaustive]`: more strategies may come.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum TrackingStrategy {
    /// No lookup at start, no automatic store (the default): the consumer starts at
    /// [`ConsumerConfig::offset`](super::ConsumerConfig::offset).
    /// [`Consumer::store_offset`](super::Consumer::store_offset) still works with a name.
    #[default]
    Disabled,
    /// Lookup at start; stores only when the application calls
    /// [`Consumer::store_processed_offset`](super::Consumer::store_processed_offset) or
    /// [`Consumer::store_offset`](super::Consumer::store_offset). No store on close.
    Manual,
    /// Stores after every `n` processed messages (at least 1; records removed by the
    /// post-filter count). Java and Go use 10 000.
    EveryMessages(u64),
    /// Stores every `interval` (at least 1 ms) when the processed offset moved.
    Interval(Duration),
    /// Both: after `messages` processed messages, and every `interval` (Go's default:
    /// 10 000 messages or 5 s).
    MessagesOrInterval { messages: u64, interval: Duration },
    /// Asks the callback after every processed chunk; `true` stores the processed offset now.
    /// The callback runs on the thread that released the chunk (the connection's task for
    /// chunks released inside [`ConsumerEvents::chunk`](super::ConsumerEvents::chunk)), with
    /// no consumer lock held; it must be quick.
    Custom(TrackingDecider),
}

impl TrackingStrategy {
    /// Whether the stored offset is looked up at start and the consumer stores at all.
    pub fn is_enabled(&self) -> bool {
        !matches!(self, TrackingStrategy::Disabled)
    }

    /// Whether the consumer stores by itself (and on close).
    pub fn is_automatic(&self) -> bool {
        !matches!(self, TrackingStrategy::Disabled | TrackingStrategy::Manual)
    }

    pub(super) fn message_threshold(&self) -> Option<u64> {
        match self {
            TrackingStrategy::EveryMessages(n) => Some(*n),
            TrackingStrategy::MessagesOrInterval { messages, .. } => Some(*messages),
            _ => None,
        }
    }

    pub(super) fn interval(&self) -> Option<Duration> {
        match self {
            TrackingStrategy::Interval(d) => Some(*d),
            TrackingStrategy::MessagesOrInterval { interval, .. } => Some(*interval),
            _ => None,
        }
    }

    pub(super) fn validate(&self) -> Result<(), String> {
        match self {
            TrackingStrategy::EveryMessages(0)
            | TrackingStrategy::MessagesOrInterval { messages: 0, .. } => {
                Err("offset tracking after 0 messages".into())
            }
            TrackingStrategy::Interval(d)
            | TrackingStrategy::MessagesOrInterval { interval: d, .. }
                if d.is_zero() =>
            {
                Err("offset tracking interval of 0".into())
            }
            _ => Ok(()),
        }
    }
}

/// What a [`TrackingStrategy::Custom`] callback is told after a processed chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrackingContext {
    /// The processed offset: what a store would send now.
    pub processed_offset: u64,
    /// Messages processed since the last store (or since the consumer started).
    pub messages_since_store: u64,
    /// Time since the last store (or since the consumer started).
    pub since_store: Duration,
    /// The offset stored last by this consumer (or found at start), if any.
    pub last_stored: Option<u64>,
}

type DeciderFn = dyn Fn(&TrackingContext) -> bool + Send + Sync;

/// The callback of [`TrackingStrategy::Custom`]. Compares equal only to its clones.
#[derive(Clone)]
pub struct TrackingDecider(Arc<DeciderFn>);

impl TrackingDecider {
    pub fn new(f: impl Fn(&TrackingContext) -> bool + Send + Sync + 'static) -> Self {
        TrackingDecider(Arc::new(f))
    }

    pub(super) fn decide(&self, ctx: &TrackingContext) -> bool {
        (self.0)(ctx)
    }
}

impl fmt::Debug for TrackingDecider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TrackingDecider(..)")
    }
}

impl PartialEq for TrackingDecider {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for TrackingDecider {}

/// One chunk handed to the application (or processed at once) and not yet part of the
/// processed run.
#[derive(Debug, Clone, Copy)]
struct Slot {
    chunk_id: u64,
    last_offset: u64,
    /// Records counted as processed with it (from the first visible one to the last).
    messages: u64,
    done: bool,
}

/// The processed offset and the store bookkeeping, under the consumer's progress lock.
#[derive(Debug)]
pub(super) struct Progress {
    /// Chunks in delivery order from the first not processed one.
    window: VecDeque<Slot>,
    /// Sequence number of `window[0]`; releases of older sequence numbers (from before a
    /// reset) are ignored.
    front_seq: u64,
    /// Last offset and chunk id of the processed run.
    processed: Option<(u64, u64)>,
    messages_since_store: u64,
    last_stored: Option<u64>,
    last_store_at: Instant,
}

/// The processed offset moved.
#[derive(Debug, Clone, Copy)]
pub(super) struct Advance {
    pub(super) messages_since_store: u64,
    pub(super) context: TrackingContext,
}

impl Progress {
    pub(super) fn new(capacity: usize) -> Progress {
        Progress {
            window: VecDeque::with_capacity(capacity),
            front_seq: 0,
            processed: None,
            messages_since_store: 0,
            last_stored: None,
            last_store_at: Instant::now(),
        }
    }

    /// Forgets chunks in flight (a new activation starts elsewhere); keeps what was stored.
    pub(super) fn reset(&mut self) {
        self.front_seq += self.window.len() as u64;
        self.window.clear();
        self.processed = None;
        self.messages_since_store = 0;
    }

    /// The offset found on the broker at start (or activation): counts as stored.
    pub(super) fn set_stored(&mut self, offset: Option<u64>) {
        self.last_stored = offset;
        self.last_store_at = Instant::now();
    }

    /// Adds a chunk in delivery order; returns its sequence number, or advances at once when
    /// it is already processed (`done`).
    pub(super) fn admit(
        &mut self,
        chunk_id: u64,
        last_offset: u64,
        messages: u64,
        done: bool,
    ) -> (u64, Option<Advance>) {
        let seq = self.front_seq + self.window.len() as u64;
        self.window.push_back(Slot {
            chunk_id,
            last_offset,
            messages,
            done,
        });
        let advance = if done { self.advance() } else { None };
        (seq, advance)
    }

    /// Marks chunk `seq` processed.
    pub(super) fn complete(&mut self, seq: u64) -> Option<Advance> {
        let i = seq.checked_sub(self.front_seq)? as usize;
        self.window.get_mut(i)?.done = true;
        if i == 0 { self.advance() } else { None }
    }

    fn advance(&mut self) -> Option<Advance> {
        let mut moved = false;
        while self.window.front().is_some_and(|s| s.done) {
            let s = self.window.pop_front()?;
            self.front_seq += 1;
            self.processed = Some((s.last_offset, s.chunk_id));
            self.messages_since_store += s.messages;
            moved = true;
        }
        let (offset, _) = self.processed?;
        moved.then(|| Advance {
            messages_since_store: self.messages_since_store,
            context: TrackingContext {
                processed_offset: offset,
                messages_since_store: self.messages_since_store,
                since_store: self.last_store_at.elapsed(),
                last_stored: self.last_stored,
            },
        })
    }

    /// Chunks handed to the application and not released yet.
    pub(super) fn outstanding(&self) -> usize {
        self.window.iter().filter(|s| !s.done).count()
    }

    /// The processed offset.
    pub(super) fn processed_offset(&self) -> Option<u64> {
        self.processed.map(|(o, _)| o)
    }

    #[cfg(test)]
    fn last_stored(&self) -> Option<u64> {
        self.last_stored
    }

    /// What to store now, if anything: the processed offset, capped at `committed` (the
    /// highest committed chunk id the broker announced) when its chunk is beyond it; `None`
    /// when that is not beyond what was stored last. Automatic stores only move forward: an
    /// offset the application stored itself (or found on the broker at start) is never
    /// replaced by a lower one, as when the cap at `committed` lags behind it.
    pub(super) fn to_store(&self, committed: Option<u64>) -> Option<u64> {
        let (offset, chunk_id) = self.processed?;
        let offset = match committed {
            Some(c) if chunk_id > c => offset.min(c),
            _ => offset,
        };
        self.last_stored
            .is_none_or(|last| offset > last)
            .then_some(offset)
    }

    /// Records a store of `offset`.
    pub(super) fn stored(&mut self, offset: u64) {
        self.last_stored = Some(offset);
        self.messages_since_store = 0;
        self.last_store_at = Instant::now();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_processed_offset_follows_the_run_of_released_chunks() {
        let mut p = Progress::new(4);
        let (a, _) = p.admit(0, 9, 10, false);
        let (b, _) = p.admit(10, 19, 10, false);
        let (c, _) = p.admit(20, 29, 10, false);
        assert_eq!(p.outstanding(), 3);
        // Released out of order: nothing moves until the first one is.
        assert!(p.complete(b).is_none());
        assert_eq!(p.processed_offset(), None);
        let adv = p.complete(a).unwrap();
        assert_eq!(adv.context.processed_offset, 19);
        assert_eq!(adv.messages_since_store, 20);
        assert_eq!(p.to_store(None), Some(19));
        p.stored(19);
        assert_eq!(p.to_store(None), None, "nothing changed");
        // A chunk processed at once (all filtered out) behind one still held.
        let (_, none) = p.admit(30, 39, 10, true);
        assert!(none.is_none());
        let adv = p.complete(c).unwrap();
        assert_eq!(adv.context.processed_offset, 39);
        assert_eq!(adv.context.last_stored, Some(19));
        assert_eq!(adv.messages_since_store, 20);
        assert_eq!(p.outstanding(), 0);
        // Releasing twice, or after a reset, changes nothing.
        assert!(p.complete(c).is_none());
        let (d, _) = p.admit(40, 49, 10, false);
        p.reset();
        assert!(p.complete(d).is_none());
        assert_eq!(p.processed_offset(), None);
        assert_eq!(p.last_stored(), Some(19));
    }

    #[test]
    fn stores_are_capped_at_the_committed_chunk() {
        let mut p = Progress::new(2);
        let (a, _) = p.admit(100, 149, 50, false);
        p.complete(a);
        assert_eq!(p.to_store(None), Some(149), "Deliver v1: as it is");
        assert_eq!(p.to_store(Some(100)), Some(149), "its chunk is committed");
        assert_eq!(p.to_store(Some(200)), Some(149));
        assert_eq!(p.to_store(Some(60)), Some(60), "beyond the committed chunk");
    }

    /// The C++ test store_from_handler failed under Valgrind: the handler stored 99 for the last
    /// chunk, then automatic tracking stored the committed cap (89), which lagged, and nothing
    /// came after to move it forward again.
    #[test]
    fn automatic_stores_never_move_below_what_was_stored() {
        let mut p = Progress::new(4);
        let (a, _) = p.admit(0, 89, 90, false);
        p.complete(a);
        let (b, _) = p.admit(90, 99, 10, false);
        p.stored(99); // the application stored it from its handler
        p.complete(b);
        assert_eq!(
            p.to_store(Some(89)),
            None,
            "capped at 89: below the stored 99"
        );
        assert_eq!(p.to_store(None), None, "99 again");
        let (c, _) = p.admit(100, 109, 10, false);
        p.complete(c);
        assert_eq!(p.to_store(Some(100)), Some(109));
        let mut q = Progress::new(4);
        q.set_stored(Some(500)); // found on the broker; this activation starts earlier
        let (d, _) = q.admit(0, 9, 10, false);
        q.complete(d);
        assert_eq!(q.to_store(None), None);
    }

    #[test]
    fn strategies_validate() {
        assert!(TrackingStrategy::EveryMessages(0).validate().is_err());
        assert!(
            TrackingStrategy::Interval(Duration::ZERO)
                .validate()
                .is_err()
        );
        assert!(
            TrackingStrategy::MessagesOrInterval {
                messages: 1,
                interval: Duration::ZERO
            }
            .validate()
            .is_err()
        );
        assert!(TrackingStrategy::EveryMessages(1).validate().is_ok());
        assert!(!TrackingStrategy::Manual.is_automatic());
        assert!(TrackingStrategy::Manual.is_enabled());
        let d = TrackingDecider::new(|_| true);
        assert_eq!(
            TrackingStrategy::Custom(d.clone()),
            TrackingStrategy::Custom(d)
        );
        assert_ne!(
            TrackingDecider::new(|_| true),
            TrackingDecider::new(|_| true)
        );
    }
}
