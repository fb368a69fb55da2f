//! In-flight bookkeeping: a preallocated ring of slots indexed by publishing id modulo a
//! power-of-two capacity, holding a value (the caller's tag; for a sub-entry batch, where its
//! tags are in [`Tags`](super::tags::Tags)) and the send time of every unconfirmed publishing
//! id. Confirms, errors and timeouts look values up without a map and without allocating.
//!
//! Concurrency: one inserter at a time (the producer's frame lock), any number of completers
//! (the connection's reader task, the timeout sweep, close). A slot is claimed by storing the
//! id last (release) and completed by a compare-and-swap of that id back to [`FREE`], so each
//! id completes exactly once, whoever races for it. Ids are unique while in flight (a producer's
//! ids strictly increase), so the swap cannot be fooled by a reused id.
//!
//! Automatic ids are consecutive and the broker confirms in order, so with at most `capacity`
//! messages in flight an id's slot is free when it is inserted. Only gaps (an old message
//! stuck while `capacity` newer ones completed, or explicit ids congruent modulo the capacity)
//! collide; those few go to an overflow map, the one slow path.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use super::lock;

/// Marks an empty slot; `u64::MAX` is therefore not a usable publishing id.
pub(super) const FREE: u64 = u64::MAX;

/// Smallest ring.
const MIN_CAPACITY: usize = 16;

struct Slot {
    id: AtomicU64,
    value: AtomicU64,
    /// Milliseconds since the producer's epoch when the message was accepted.
    sent_ms: AtomicU64,
}

/// The ring; 24 bytes per slot, `capacity = max_in_flight.next_power_of_two()`.
pub(super) struct Ring {
    slots: Box<[Slot]>,
    mask: u64,
    overflow: Mutex<HashMap<u64, (u64, u64)>>,
    overflow_len: AtomicUsize,
}

impl Ring {
    pub(super) fn new(max_in_flight: usize) -> Ring {
        let capacity = max_in_flight.max(MIN_CAPACITY).next_power_of_two();
        Ring {
            slots: (0..capacity)
                .map(|_| Slot {
                    id: AtomicU64::new(FREE),
                    value: AtomicU64::new(0),
                    sent_ms: AtomicU64::new(0),
                })
                .collect(),
            mask: capacity as u64 - 1,
            overflow: Mutex::new(HashMap::new()),
            overflow_len: AtomicUsize::new(0),
        }
    }

    fn slot(&self, id: u64) -> &Slot {
        &self.slots[(id & self.mask) as usize]
    }

    /// Records `id` as in flight with `value`. Callers serialise inserts (the frame lock) and
    /// never insert an id that is already in flight, nor [`FREE`].
    pub(super) fn insert(&self, id: u64, value: u64, sent_ms: u64) {
        debug_assert_ne!(id, FREE);
        let slot = self.slot(id);
        if slot.id.load(Ordering::Acquire) == FREE {
            slot.value.store(value, Ordering::Relaxed);
            slot.sent_ms.store(sent_ms, Ordering::Relaxed);
            slot.id.store(id, Ordering::Release);
        } else {
            lock(&self.overflow).insert(id, (value, sent_ms));
            self.overflow_len.fetch_add(1, Ordering::Release);
        }
    }

    /// Completes `id`: its value when it was in flight, `None` when unknown or already
    /// completed (e.g. timed out before its confirm arrived).
    pub(super) fn take(&self, id: u64) -> Option<u64> {
        if id == FREE {
            return None;
        }
        let slot = self.slot(id);
        if slot.id.load(Ordering::Acquire) == id {
            // Read the value before releasing the slot: once free it may be refilled.
            let tag = slot.value.load(Ordering::Relaxed);
            return slot
                .id
                .compare_exchange(id, FREE, Ordering::AcqRel, Ordering::Relaxed)
                .ok()
                .map(|_| tag);
        }
        if self.overflow_len.load(Ordering::Acquire) == 0 {
            return None;
        }
        let (tag, _) = lock(&self.overflow).remove(&id)?;
        self.overflow_len.fetch_sub(1, Ordering::Release);
        Some(tag)
    }

    /// Whether `id` is in flight (one atomic load, unless ids overflowed).
    pub(super) fn contains(&self, id: u64) -> bool {
        if id == FREE {
            return false;
        }
        if self.slot(id).id.load(Ordering::Acquire) == id {
            return true;
        }
        self.overflow_len.load(Ordering::Acquire) > 0 && lock(&self.overflow).contains_key(&id)
    }

    /// Restarts the confirm timeout of `id`, if in flight (it was sent again).
    pub(super) fn touch(&self, id: u64, sent_ms: u64) {
        let slot = self.slot(id);
        if slot.id.load(Ordering::Acquire) == id {
            slot.sent_ms.store(sent_ms, Ordering::Relaxed);
        } else if self.overflow_len.load(Ordering::Acquire) > 0
            && let Some(e) = lock(&self.overflow).get_mut(&id)
        {
            e.1 = sent_ms;
        }
    }

    /// Completes every id accepted at or before `cutoff_ms`, calling `f(id, value)` for each.
    /// Walks the whole ring: O(capacity) atomic loads.
    pub(super) fn take_older_than(&self, cutoff_ms: u64, mut f: impl FnMut(u64, u64)) {
        self.take_where(|sent| sent <= cutoff_ms, &mut f);
    }

    /// Completes everything in flight, calling `f(id, value)` for each.
    pub(super) fn take_all(&self, mut f: impl FnMut(u64, u64)) {
        self.take_where(|_| true, &mut f);
    }

    fn take_where(&self, due: impl Fn(u64) -> bool, f: &mut impl FnMut(u64, u64)) {
        for slot in self.slots.iter() {
            let id = slot.id.load(Ordering::Acquire);
            if id == FREE || !due(slot.sent_ms.load(Ordering::Relaxed)) {
                continue;
            }
            let tag = slot.value.load(Ordering::Relaxed);
            if slot
                .id
                .compare_exchange(id, FREE, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                f(id, tag);
            }
        }
        if self.overflow_len.load(Ordering::Acquire) == 0 {
            return;
        }
        let mut overflow = lock(&self.overflow);
        let before = overflow.len();
        overflow.retain(|&id, &mut (tag, sent)| {
            if due(sent) {
                f(id, tag);
                false
            } else {
                true
            }
        });
        self.overflow_len
            .fetch_sub(before - overflow.len(), Ordering::Release);
    }

    /// Slots in the ring.
    #[cfg(test)]
    pub(super) fn capacity(&self) -> usize {
        self.slots.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn capacity_is_a_power_of_two_at_least_the_limit() {
        assert_eq!(Ring::new(1).capacity(), 16);
        assert_eq!(Ring::new(10_000).capacity(), 16_384);
        assert_eq!(Ring::new(16_384).capacity(), 16_384);
    }

    #[test]
    fn each_id_completes_once() {
        let r = Ring::new(16);
        r.insert(5, 50, 0);
        assert_eq!(r.take(6), None);
        assert_eq!(r.take(5), Some(50));
        assert_eq!(r.take(5), None);
        assert_eq!(r.take(FREE), None);
    }

    #[test]
    fn colliding_ids_overflow_and_still_complete() {
        let r = Ring::new(16);
        r.insert(1, 10, 0);
        r.insert(17, 170, 0); // same slot as 1
        r.insert(33, 330, 5);
        assert_eq!(r.take(17), Some(170));
        assert_eq!(r.take(1), Some(10));
        // The slot is free again; 33 still lives in the overflow map.
        r.insert(49, 490, 9);
        let mut expired = Vec::new();
        r.take_older_than(5, |id, tag| expired.push((id, tag)));
        assert_eq!(expired, vec![(33, 330)]);
        let mut rest = Vec::new();
        r.take_all(|id, tag| rest.push((id, tag)));
        assert_eq!(rest, vec![(49, 490)]);
        assert_eq!(r.overflow_len.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn contains_and_touch_follow_the_id() {
        let r = Ring::new(16);
        r.insert(3, 30, 0);
        r.insert(19, 190, 0); // overflow
        assert!(r.contains(3) && r.contains(19) && !r.contains(4) && !r.contains(FREE));
        r.touch(3, 100);
        r.touch(19, 100);
        let mut old = Vec::new();
        r.take_older_than(50, |id, _| old.push(id));
        assert!(old.is_empty());
        assert_eq!(r.take(19), Some(190));
        assert!(!r.contains(19));
    }

    #[test]
    fn racing_completers_see_each_id_exactly_once() {
        let r = Arc::new(Ring::new(1024));
        for id in 0..1000u64 {
            r.insert(id, id * 2, id);
        }
        let handles: Vec<_> = (0..4)
            .map(|t| {
                let r = r.clone();
                std::thread::spawn(move || {
                    let mut got = Vec::new();
                    if t == 0 {
                        r.take_all(|id, _| got.push(id));
                    } else {
                        for id in 0..1000u64 {
                            if let Some(tag) = r.take(id) {
                                assert_eq!(tag, id * 2);
                                got.push(id);
                            }
                        }
                    }
                    got
                })
            })
            .collect();
        let mut all: Vec<u64> = handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect();
        all.sort_unstable();
        assert_eq!(all, (0..1000).collect::<Vec<_>>());
    }
}
