//! Flow control: the credit policies and the per-chunk release guard.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::{Attachment, Shared, lock};

/// When the consumer gives credit back to the broker. Credit counts chunks: the broker sends
/// a chunk only while the subscription has credit, and each chunk sent uses one.
///
/// A chunk is *processed* once the application releases it (drops its
/// [`DeliveredChunk`](super::DeliveredChunk) or calls `release`). Chunks the application
/// never sees (entirely before the requested offset, every record removed by the post-filter,
/// failing the CRC check, undecodable, or arriving while a single active consumer is
/// inactive) count as processed on arrival, whatever the policy, since the application cannot
/// account for them.
///
/// Memory: with every policy but [`OnArrival`](Self::OnArrival), credit only comes back for
/// processed chunks (plus what [`Consumer::credit`](super::Consumer::credit) adds), so at most
/// `initial_credit` chunks are ever held by the application or in flight.
///
/// Broker rule behind the limits below: after it ran out of credit the broker resumes sending
/// only once the subscription has *more than half* its initial credit (RabbitMQ's
/// `send_limit`), so a policy that held back credit below that could stall.
///
/// Marked `#[non_exhaustive]`: more strategies may come.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum CreditPolicy {
    /// One credit back when the application releases a chunk. The default.
    #[default]
    OnRelease,
    /// Credit only through [`Consumer::credit`](super::Consumer::credit) (chunks the
    /// application never sees still give their credit back by themselves).
    Manual,
    /// One credit back as each chunk arrives, before the application sees it (Java's default
    /// `creditOnChunkArrival`): the most throughput, but memory is **not** bounded by the
    /// credit — a slow application accumulates chunks.
    OnArrival,
    /// `n` credits back each time `n` more chunks have been processed: fewer Credit frames.
    /// `n` must be 1 to half the initial credit (at least 1), else the broker could stall.
    AfterProcessed(u16),
    /// Credit for processed chunks is held back while the broker's remaining credit (the
    /// initial credit plus what was granted, minus the chunks received) is at or above
    /// `percent` % of the initial credit, then sent in one frame once it falls below. `percent` 1 to 100; the threshold never goes below half
    /// the initial credit plus one (the broker's resume point). 100 behaves like
    /// [`OnRelease`](Self::OnRelease).
    WhenBelow { percent: u8 },
}

impl CreditPolicy {
    /// Checks the policy against the initial credit.
    pub(super) fn validate(self, initial_credit: u16) -> Result<(), String> {
        match self {
            CreditPolicy::AfterProcessed(n) => {
                let max = (initial_credit / 2).max(1);
                if n == 0 || n > max {
                    return Err(format!(
                        "AfterProcessed({n}) with an initial credit of {initial_credit}: n must \
                         be 1 to {max} (half the initial credit), else the broker stops sending"
                    ));
                }
            }
            CreditPolicy::WhenBelow { percent } if !(1..=100).contains(&percent) => {
                return Err(format!("WhenBelow percent must be 1 to 100, got {percent}"));
            }
            _ => {}
        }
        Ok(())
    }

    /// The remaining credit under which held-back credit goes out (`WhenBelow`).
    fn threshold(percent: u8, initial: u16) -> u64 {
        let initial = u64::from(initial);
        let ratio = (initial * u64::from(percent)).div_ceil(100);
        ratio.max(initial / 2 + 1).min(initial)
    }
}

/// Credit bookkeeping of one subscription.
#[derive(Debug, Default)]
pub(super) struct CreditBook {
    /// Chunks received from the broker (all of them, shown or not).
    pub(super) received: u64,
    /// Credits sent, the initial credit included.
    pub(super) granted: u64,
    /// Processed chunks whose credit is held back.
    pub(super) pending: u64,
}

impl Attachment {
    /// A chunk arrived (before anything else is done with it).
    pub(super) fn on_arrival(&self, shared: &Shared) {
        let mut book = lock(&self.credit);
        book.received += 1;
        let n = match shared.policy {
            CreditPolicy::OnArrival => 1,
            CreditPolicy::WhenBelow { percent } => self.flushable(&book, percent),
            _ => 0,
        };
        self.grant_locked(shared, &mut book, n);
    }

    /// A chunk was processed: released by the application (`shown`) or never shown.
    pub(super) fn on_processed(&self, shared: &Shared, shown: bool) {
        let n = match shared.policy {
            CreditPolicy::OnRelease => 1,
            CreditPolicy::Manual if !shown => 1,
            CreditPolicy::Manual | CreditPolicy::OnArrival => 0,
            CreditPolicy::AfterProcessed(n) => {
                let mut book = lock(&self.credit);
                book.pending += 1;
                let n = if book.pending >= u64::from(n) {
                    book.pending
                } else {
                    0
                };
                return self.grant_locked(shared, &mut book, n);
            }
            CreditPolicy::WhenBelow { percent } => {
                let mut book = lock(&self.credit);
                book.pending += 1;
                let n = self.flushable(&book, percent);
                return self.grant_locked(shared, &mut book, n);
            }
        };
        if n > 0 {
            let mut book = lock(&self.credit);
            self.grant_locked(shared, &mut book, n);
        }
    }

    /// `WhenBelow`: the held-back credit when the remaining credit is under the threshold.
    fn flushable(&self, book: &CreditBook, percent: u8) -> u64 {
        let remaining = book.granted.saturating_sub(book.received);
        if book.pending > 0 && remaining < CreditPolicy::threshold(percent, self.initial_credit) {
            book.pending
        } else {
            0
        }
    }

    /// Sends `credits` (taking them from `pending` first) if the subscription is live.
    fn grant_locked(&self, shared: &Shared, book: &mut CreditBook, credits: u64) {
        if credits == 0 {
            return;
        }
        book.pending = book.pending.saturating_sub(credits);
        let mut left = credits;
        while left > 0 {
            let n = left.min(u64::from(super::MAX_CREDIT)) as u16;
            if !grant(shared, self, n) {
                return;
            }
            book.granted += u64::from(n);
            left -= u64::from(n);
        }
    }
}

/// Hands a chunk back exactly once: when it is dropped (policy-dependent credit, offset
/// tracking), or at once for chunks the application never sees ([`Release::internal`]).
///
/// Tied to the subscription the chunk came from: if the consumer has since re-subscribed
/// elsewhere (or closed), the credit is not sent, since it would count against a subscription
/// that never delivered the chunk.
pub(crate) struct Release {
    pub(super) shared: Arc<Shared>,
    pub(super) attachment: Arc<Attachment>,
    /// Position in the offset-tracking window, once the chunk is handed over.
    pub(super) seq: Option<u64>,
    armed: bool,
}

impl Release {
    pub(super) fn new(shared: Arc<Shared>, attachment: Arc<Attachment>) -> Self {
        Release {
            shared,
            attachment,
            seq: None,
            armed: true,
        }
    }

    /// Hands back a chunk that is not shown to the application.
    pub(super) fn internal(mut self) {
        self.armed = false;
        self.attachment.on_processed(&self.shared, false);
    }
}

impl Drop for Release {
    fn drop(&mut self) {
        if self.armed {
            self.armed = false;
            self.attachment.on_processed(&self.shared, true);
            if let Some(seq) = self.seq {
                self.shared.processed(seq);
            }
        }
    }
}

/// Sends `credits` for `attachment` if it is still the live subscription; returns whether it
/// went out. Allocation-free for a single credit (the frame is encoded once per
/// subscription). Errors (connection gone) are dropped: the connection's own failure is
/// reported through the listener.
pub(super) fn grant(shared: &Shared, attachment: &Attachment, credits: u16) -> bool {
    if !attachment.active.load(Ordering::Acquire) {
        return false;
    }
    let sent = if credits == 1 {
        attachment
            .conn
            .send_bytes(attachment.credit_one.clone())
            .is_ok()
    } else {
        attachment.send_credit(credits).is_ok()
    };
    if sent {
        shared
            .stats
            .credits_granted
            .fetch_add(u64::from(credits), Ordering::Relaxed);
    }
    sent
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_never_go_below_the_brokers_resume_point() {
        assert_eq!(CreditPolicy::threshold(100, 10), 10);
        assert_eq!(CreditPolicy::threshold(80, 10), 8);
        assert_eq!(CreditPolicy::threshold(30, 10), 6);
        assert_eq!(CreditPolicy::threshold(1, 1), 1);
        assert_eq!(CreditPolicy::threshold(50, 3), 2);
    }

    #[test]
    fn policies_validate_against_the_initial_credit() {
        assert!(CreditPolicy::AfterProcessed(5).validate(10).is_ok());
        assert!(CreditPolicy::AfterProcessed(6).validate(10).is_err());
        assert!(CreditPolicy::AfterProcessed(0).validate(10).is_err());
        assert!(CreditPolicy::AfterProcessed(1).validate(1).is_ok());
        assert!(CreditPolicy::WhenBelow { percent: 0 }.validate(10).is_err());
        assert!(
            CreditPolicy::WhenBelow { percent: 101 }
                .validate(10)
                .is_err()
        );
        assert!(CreditPolicy::WhenBelow { percent: 50 }.validate(10).is_ok());
        assert!(CreditPolicy::OnArrival.validate(1).is_ok());
    }
}
