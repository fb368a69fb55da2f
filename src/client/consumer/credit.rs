//! Flow control: the credit policies and the per-chunk release guard.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::{Attachment, Shared};

/// When the consumer gives credit back to the broker. Credit counts chunks: the broker sends
/// a chunk only while the subscription has credit, and each chunk sent uses one.
///
/// Marked `#[non_exhaustive]`: more strategies come (credit on arrival, after N processed
/// chunks, below a ratio of the initial credit).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum CreditPolicy {
    /// One credit back when the application releases a chunk (drops its
    /// [`DeliveredChunk`](super::DeliveredChunk) or calls `release`): at most
    /// `initial_credit` chunks are ever held by the application or in flight, which bounds
    /// the consumer's memory. The default.
    #[default]
    OnRelease,
    /// Credit only through [`Consumer::credit`](super::Consumer::credit). Chunks the
    /// application never sees (entirely before the requested offset, failing the CRC check,
    /// undecodable) still give their credit back by themselves, since the application cannot
    /// account for them.
    Manual,
}

impl CreditPolicy {
    /// Credits granted when a chunk the application saw is released.
    pub(super) fn on_release(self) -> u16 {
        match self {
            CreditPolicy::OnRelease => 1,
            CreditPolicy::Manual => 0,
        }
    }
}

/// Gives a chunk's credit back exactly once: when it is dropped (policy-dependent), or at once
/// for chunks the application never sees ([`Release::internal`]).
///
/// Tied to the subscription the chunk came from: if the consumer has since re-subscribed
/// elsewhere (or closed), the credit is not sent, since it would count against a subscription
/// that never delivered the chunk.
pub(crate) struct Release {
    pub(super) shared: Arc<Shared>,
    pub(super) attachment: Arc<Attachment>,
    armed: bool,
}

impl Release {
    pub(super) fn new(shared: Arc<Shared>, attachment: Arc<Attachment>) -> Self {
        Release {
            shared,
            attachment,
            armed: true,
        }
    }

    /// Returns the credit of a chunk that is not handed to the application, whatever the
    /// policy.
    pub(super) fn internal(mut self) {
        self.armed = false;
        grant(&self.shared, &self.attachment, 1);
    }
}

impl Drop for Release {
    fn drop(&mut self) {
        if self.armed {
            self.armed = false;
            let n = self.shared.policy.on_release();
            if n > 0 {
                grant(&self.shared, &self.attachment, n);
            }
        }
    }
}

/// Sends `credits` for `attachment` if it is still the live subscription. Lock-free and
/// allocation-free for a single credit (the frame is encoded once per subscription).
/// Errors (connection gone) are dropped: the connection's own failure is reported through
/// the listener.
pub(super) fn grant(shared: &Shared, attachment: &Attachment, credits: u16) {
    if !attachment.active.load(Ordering::Acquire) {
        return;
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
}
