//! Single active consumer: the broker's ConsumerUpdate requests, the application's hook and
//! the answer within the broker's deadline.
//!
//! ```text
//!  broker ──ConsumerUpdate(active)──▶ reader task ──▶ per-consumer update task (in order)
//!     activation:   QueryOffset(reference) → ConsumerEvents::consumer_update(update)
//!                   → reply or deadline → set start offset → ConsumerUpdate response
//!     step-down:    stop delivering → ConsumerEvents::consumer_update(update)
//!                   → reply and held chunks released, or deadline → store → response
//! ```
//!
//! The hook gets a [`ConsumerUpdate`] it may answer at once, or move to any thread and answer
//! later: whatever has not answered when [`ConsumerConfig::consumer_update_timeout`] expires
//! gets the default, so the broker (which closes the connection after 60 s without an answer)
//! is always answered in time.
//!
//! [`ConsumerConfig::consumer_update_timeout`]: super::ConsumerConfig::consumer_update_timeout

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use super::{Attachment, Shared, lock};
use crate::protocol::codes::OffsetSpec;

/// A change of a single active consumer's state, handed to
/// [`ConsumerEvents::consumer_update`](super::ConsumerEvents::consumer_update).
///
/// `Send`: answer it from the hook, or move it to another thread and answer from there. Not
/// answering (dropping it, or answering after [`deadline`](Self::deadline)) means
/// [`default_offset`](Self::default_offset).
#[derive(Debug)]
pub struct ConsumerUpdate {
    active: bool,
    stream: Arc<str>,
    stored: Option<u64>,
    default: OffsetSpec,
    deadline: Instant,
    reply: Option<oneshot::Sender<OffsetSpec>>,
}

impl ConsumerUpdate {
    /// `true`: the consumer becomes the group's active one and starts where the answer says.
    /// `false`: it steps down; deliveries have stopped and the answer's offset is ignored by
    /// the broker (answering early only tells the consumer the application is done).
    pub fn is_active(&self) -> bool {
        self.active
    }

    /// The stream (the partition, for a super stream).
    pub fn stream(&self) -> &str {
        &self.stream
    }

    /// On activation: the offset stored under the consumer's tracking reference, looked up
    /// just now (`None`: nothing stored, or the lookup failed).
    pub fn stored_offset(&self) -> Option<u64> {
        self.stored
    }

    /// What the consumer answers without the application: on activation, right after the
    /// stored offset when there is one, else the configured
    /// [`offset`](super::ConsumerConfig::offset) (default `Next`).
    pub fn default_offset(&self) -> OffsetSpec {
        self.default
    }

    /// After this instant an answer is too late: the default has gone to the broker.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Answers with where to start (ignored on a step-down). Returns `false` when it came too
    /// late (after the deadline, or the consumer closed): the default was used.
    pub fn reply(mut self, offset: OffsetSpec) -> bool {
        self.reply
            .take()
            .is_some_and(|tx| Instant::now() <= self.deadline && tx.send(offset).is_ok())
    }
}

/// One ConsumerUpdate request from the broker.
pub(super) struct Request {
    pub(super) attachment: Arc<Attachment>,
    pub(super) correlation_id: u32,
    pub(super) active: bool,
}

/// Handles the requests of one consumer in arrival order; ends when the consumer is dropped.
pub(super) async fn run(shared: std::sync::Weak<Shared>, mut rx: mpsc::UnboundedReceiver<Request>) {
    while let Some(req) = rx.recv().await {
        match shared.upgrade() {
            Some(s) => s.consumer_update(req).await,
            None => {
                let _ = req
                    .attachment
                    .conn
                    .reply_consumer_update(req.correlation_id, None);
            }
        }
    }
}

/// How often a step-down checks that the application released its chunks.
const DRAIN_POLL: Duration = Duration::from_millis(5);

impl Shared {
    async fn consumer_update(self: &Arc<Self>, req: Request) {
        let started = Instant::now();
        let deadline = started + self.config.consumer_update_timeout;
        let tokio_deadline = tokio::time::Instant::now() + self.config.consumer_update_timeout;
        let a = &req.attachment;
        if !req.active {
            // Stop delivering first: whatever comes now is not the application's any more.
            self.sac_active.store(false, Ordering::Release);
            // Barrier: a `deliver` that saw the flag still set either admitted its chunk
            // under `phase` already (it is counted as outstanding below) or will take
            // `phase` after this and see the flag cleared. Not left to the hook's `emit`,
            // which takes `phase` too, so that this holds whatever happens to that call.
            drop(lock(&self.phase));
        }
        let stored = if req.active {
            // Leave time for the hook: the lookup gets half the budget at most.
            let budget = self.config.consumer_update_timeout / 2;
            match tokio::time::timeout(budget, self.query_stored(&a.conn)).await {
                Ok(Ok(s)) => s,
                _ => None,
            }
        } else {
            None
        };
        let mut default = match stored {
            Some(s) => OffsetSpec::Offset(s.saturating_add(1)),
            None => self.config.offset,
        };
        // Activated again after a recovery: not before what this consumer handed over already.
        if req.active && self.resumed.swap(false, Ordering::AcqRel) {
            let next = match self.last_delivered.load(Ordering::Acquire) {
                super::NO_OFFSET => None,
                last => Some(last.saturating_add(1)),
            };
            default = match (default, next) {
                (OffsetSpec::Offset(n), Some(m)) => OffsetSpec::Offset(n.max(m)),
                (_, Some(m)) => OffsetSpec::Offset(m),
                (d, None) => d,
            };
        }
        let (tx, mut rx) = oneshot::channel();
        let update = ConsumerUpdate {
            active: req.active,
            stream: self.stream.clone(),
            stored,
            default,
            deadline,
            reply: Some(tx),
        };
        self.emit(|ev| ev.consumer_update(update));
        let answer = match tokio::time::timeout_at(tokio_deadline, &mut rx).await {
            Ok(Ok(spec)) => Some(spec),
            // Dropped without an answer, or too late.
            _ => None,
        };
        rx.close();
        let spec = answer.unwrap_or(default);
        if req.active {
            {
                let mut p = lock(&self.progress);
                p.reset();
                p.set_stored(stored);
            }
            a.min_offset.store(
                match spec {
                    OffsetSpec::Offset(n) => n,
                    _ => 0,
                },
                Ordering::Release,
            );
            self.sac_active.store(true, Ordering::Release);
            let _ = a.conn.reply_consumer_update(req.correlation_id, Some(spec));
        } else {
            // Let the application finish the chunks it holds, so that the next active
            // consumer starts right after them; then store and answer.
            while lock(&self.progress).outstanding() > 0
                && tokio::time::Instant::now() + DRAIN_POLL < tokio_deadline
            {
                tokio::time::sleep(DRAIN_POLL).await;
            }
            if self.config.tracking.is_automatic() {
                let _ = self.store_processed(true);
            }
            let _ = a.conn.reply_consumer_update(req.correlation_id, None);
        }
    }
}
