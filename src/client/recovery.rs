//! Automatic recovery: the policy (when and how often producers and consumers try to come back
//! after their connection or stream leader was lost), the back-off schedule it produces, and
//! the state changes they report while doing so.
//!
//! What triggers recovery, and what each object does then, lives with the object
//! ([`Producer`](super::Producer), [`Consumer`](super::Consumer)); this module only holds what
//! they share:
//!
//! - [`RecoveryPolicy`]: on by default; first delay, cap, number of attempts.
//! - [`Backoff`]: exponential delays with ±25 % jitter, so that a thousand producers cut off
//!   by the same node do not all reconnect in the same millisecond.
//! - [`StateChange`]: what [`ProducerEvents::state`](super::ProducerEvents::state) and
//!   [`ConsumerEvents::state`](super::ConsumerEvents::state) receive.
//! - [`is_final`]: which causes end an object for good (the stream was deleted) instead of
//!   starting a recovery.

use std::time::Duration;

use super::error::ClientError;
use crate::protocol::codes::ResponseCode;

/// Default [`RecoveryPolicy::initial_delay`].
pub const DEFAULT_INITIAL_DELAY: Duration = Duration::from_millis(200);
/// Default [`RecoveryPolicy::max_delay`].
pub const DEFAULT_MAX_DELAY: Duration = Duration::from_secs(5);
/// Largest accepted [`RecoveryPolicy::max_delay`] (and initial delay).
pub const MAX_DELAY_LIMIT: Duration = Duration::from_secs(3600);

/// How producers and consumers come back after losing their connection or their stream's
/// leader. Part of [`ConnectionConfig`](super::ConnectionConfig): one policy per environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecoveryPolicy {
    /// Recover at all (default true). When false a lost connection or stream closes the object
    /// for good, with a final state change that says why.
    pub enabled: bool,
    /// Wait before the first attempt (default 200 ms): long enough for the broker to notice
    /// the loss and move the leader, short enough that a reset connection is back before a
    /// caller notices. Each failed attempt doubles it, up to `max_delay`.
    pub initial_delay: Duration,
    /// Longest wait between two attempts (default 5 s, as the Java client's recovery
    /// back-off).
    pub max_delay: Duration,
    /// Attempts before giving up (`None`, the default: forever, as the Java and .NET clients).
    /// A deleted stream is never retried, whatever this says.
    pub max_attempts: Option<u32>,
}

impl Default for RecoveryPolicy {
    fn default() -> Self {
        RecoveryPolicy {
            enabled: true,
            initial_delay: DEFAULT_INITIAL_DELAY,
            max_delay: DEFAULT_MAX_DELAY,
            max_attempts: None,
        }
    }
}

impl RecoveryPolicy {
    /// Recovery turned off.
    pub fn disabled() -> Self {
        RecoveryPolicy {
            enabled: false,
            ..RecoveryPolicy::default()
        }
    }

    /// Checks the delays: `initial_delay` at least 1 ms and at most `max_delay`, which is at
    /// most one hour; at least one attempt.
    pub fn validate(&self) -> Result<(), ClientError> {
        let bad = |m: String| Err(ClientError::InvalidArgument(m));
        if self.initial_delay < Duration::from_millis(1) || self.initial_delay > self.max_delay {
            return bad(format!(
                "recovery_initial_delay must be 1 ms to recovery_max_delay ({} ms), got {} ms",
                self.max_delay.as_millis(),
                self.initial_delay.as_millis()
            ));
        }
        if self.max_delay > MAX_DELAY_LIMIT {
            return bad(format!(
                "recovery_max_delay must be at most 1 h, got {} ms",
                self.max_delay.as_millis()
            ));
        }
        if self.max_attempts == Some(0) {
            return bad("recovery_attempts must be at least 1 (or unlimited)".into());
        }
        Ok(())
    }

    /// The delays of one recovery, from its first attempt on.
    pub fn backoff(&self, seed: u64) -> Backoff {
        Backoff {
            next: self.initial_delay,
            max: self.max_delay,
            left: self.max_attempts,
            rng: seed | 1,
        }
    }
}

/// The delays before each attempt of one recovery: `initial_delay`, doubling up to
/// `max_delay`, each with ±25 % jitter; `None` once the attempts are used up.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
    max: Duration,
    left: Option<u32>,
    rng: u64,
}

impl Iterator for Backoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        if let Some(left) = &mut self.left {
            if *left == 0 {
                return None;
            }
            *left -= 1;
        }
        // xorshift64: jitter needs no cryptographic quality, only spread.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let base = self.next;
        self.next = (self.next * 2).min(self.max);
        let nanos = base.as_nanos() as u64;
        let spread = nanos / 2; // ±25 %
        let jitter = if spread == 0 { 0 } else { self.rng % spread };
        Some(Duration::from_nanos(nanos - spread / 2 + jitter))
    }
}

/// A seed for [`RecoveryPolicy::backoff`] that differs between objects and runs.
pub(crate) fn seed(salt: usize) -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    t ^ (salt as u64).rotate_left(32)
}

/// A change of a producer's or consumer's state that the application is told about.
#[derive(Debug, Clone, Copy)]
pub enum StateChange<'a> {
    /// The connection or the stream's leader was lost; the object is trying to come back.
    /// Sends wait (within the in-flight cap) and consumers receive nothing meanwhile.
    Recovering {
        /// Why: the connection's close reason, or the broker's metadata-update code.
        cause: &'a ClientError,
    },
    /// Back: producers re-declared (and re-sent what was unconfirmed), consumers subscribed
    /// again right after the last offset handed to the application.
    Recovered {
        /// Attempts the recovery took (1 when the first one succeeded).
        attempts: u32,
    },
}

/// For a loss announced by a metadata update (the broker's code for both a moved leader and a
/// deleted stream): the final error when the stream is gone, so that a deleted stream ends
/// its producers and consumers without a recovery. `None` for other causes, when the stream
/// exists, or when that cannot be told now (the recovery's attempts will tell).
pub(crate) async fn deleted_stream(
    env: Option<super::Environment>,
    stream: &str,
    cause: &ClientError,
) -> Option<ClientError> {
    if !matches!(cause, ClientError::Server { .. }) {
        return None;
    }
    match env?.stream_exists(stream).await {
        Ok(false) => Some(ClientError::Server {
            operation: "metadata",
            code: ResponseCode::STREAM_DOES_NOT_EXIST,
        }),
        _ => None,
    }
}

/// True when `e` ends an object for good instead of starting a recovery: its stream is gone.
pub fn is_final(e: &ClientError) -> bool {
    matches!(
        e,
        ClientError::Server {
            code: ResponseCode::STREAM_DOES_NOT_EXIST,
            ..
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_cap_with_bounded_jitter() {
        let p = RecoveryPolicy {
            initial_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(1000),
            max_attempts: Some(6),
            ..RecoveryPolicy::default()
        };
        let d: Vec<Duration> = p.backoff(42).collect();
        assert_eq!(d.len(), 6);
        let bases = [100u64, 200, 400, 800, 1000, 1000];
        for (got, base) in d.iter().zip(bases) {
            let ms = got.as_secs_f64() * 1000.0;
            assert!(
                ms >= base as f64 * 0.75 && ms <= base as f64 * 1.25,
                "{ms} ms for base {base}"
            );
        }
        // Different seeds spread.
        let a: Vec<_> = p.backoff(1).collect();
        let b: Vec<_> = p.backoff(2).collect();
        assert_ne!(a, b);
    }

    #[test]
    fn unlimited_attempts_never_end() {
        let p = RecoveryPolicy::default();
        assert_eq!(p.backoff(7).take(1000).count(), 1000);
        assert!(
            p.backoff(7)
                .take(1000)
                .all(|d| d <= Duration::from_millis(6250))
        );
    }

    #[test]
    fn invalid_policies_are_refused() {
        assert!(RecoveryPolicy::default().validate().is_ok());
        assert!(RecoveryPolicy::disabled().validate().is_ok());
        for p in [
            RecoveryPolicy {
                initial_delay: Duration::ZERO,
                ..RecoveryPolicy::default()
            },
            RecoveryPolicy {
                initial_delay: Duration::from_secs(10),
                ..RecoveryPolicy::default()
            },
            RecoveryPolicy {
                max_delay: Duration::from_secs(7200),
                ..RecoveryPolicy::default()
            },
            RecoveryPolicy {
                max_attempts: Some(0),
                ..RecoveryPolicy::default()
            },
        ] {
            assert!(p.validate().is_err(), "{p:?}");
        }
    }

    #[test]
    fn only_a_deleted_stream_is_final() {
        assert!(is_final(&ClientError::Server {
            operation: "metadata",
            code: ResponseCode::STREAM_DOES_NOT_EXIST
        }));
        assert!(!is_final(&ClientError::Server {
            operation: "metadata",
            code: ResponseCode::STREAM_NOT_AVAILABLE
        }));
        assert!(!is_final(&ClientError::Io("reset".into())));
    }
}
