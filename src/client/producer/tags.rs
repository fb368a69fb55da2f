//! Tags of in-flight sub-entry batches. The broker confirms a batch by one publishing id, yet
//! every message in it gets its own [`Confirm`](super::Confirm) with its own tag, so the
//! ring's value for a batch points here: `position << 16 | (count - 1)`, a run of `count`
//! consecutive places of a preallocated ring of tags.
//!
//! The tag ring has as many places as the in-flight ring has slots (at least
//! `max_in_flight`), and places are handed out in order, so in steady state — confirms in
//! order, at most `max_in_flight` messages accepted and not completed — the next run is free.
//! Each place has a busy flag, set when the run is stored and cleared once its tag has been
//! read on completion; a run that would land on a busy place (an old batch stuck while
//! `max_in_flight` newer messages completed) goes to an overflow map instead, the one slow
//! path (it allocates), as in the in-flight ring.
//!
//! Concurrency as the in-flight ring: one writer at a time (the frame lock), completers
//! anywhere; a run is read only by the completer that won its slot in the in-flight ring
//! (whose release/acquire on the slot id orders the tag stores before the loads), and its
//! places are released (busy cleared, release) after their tags were read.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use super::lock;

/// Ring value of a batch whose tags are in the overflow map.
const IN_OVERFLOW: u64 = 1 << 63;

/// Smallest tag ring.
const MIN_CAPACITY: usize = 16;

pub(super) struct Tags {
    tags: Box<[AtomicUsize]>,
    busy: Box<[AtomicBool]>,
    mask: usize,
    /// Next place to hand out (only the writer touches it).
    next: AtomicUsize,
    /// Runs that could not be placed, by the batch's publishing id.
    overflow: Mutex<HashMap<u64, Vec<usize>>>,
}

impl Tags {
    /// 9 bytes per place; `max_in_flight.next_power_of_two()` places (at most 2^24).
    pub(super) fn new(max_in_flight: usize) -> Tags {
        let capacity = max_in_flight.max(MIN_CAPACITY).next_power_of_two();
        Tags {
            tags: (0..capacity).map(|_| AtomicUsize::new(0)).collect(),
            busy: (0..capacity).map(|_| AtomicBool::new(false)).collect(),
            mask: capacity - 1,
            next: AtomicUsize::new(0),
            overflow: Mutex::new(HashMap::new()),
        }
    }

    /// Stores the tags of the batch `batch_id` (1 to 65 536 of them, in message order) and
    /// returns the value to keep in the in-flight ring for it. Callers serialise stores.
    pub(super) fn store(&self, batch_id: u64, tags: &[usize]) -> u64 {
        let n = tags.len();
        debug_assert!((1..=1 << 16).contains(&n));
        let pos = self.next.load(Ordering::Relaxed);
        let free = n <= self.tags.len()
            && (0..n).all(|k| !self.busy[(pos + k) & self.mask].load(Ordering::Acquire));
        if !free {
            lock(&self.overflow).insert(batch_id, tags.to_vec());
            return IN_OVERFLOW;
        }
        for (k, &tag) in tags.iter().enumerate() {
            let i = (pos + k) & self.mask;
            self.tags[i].store(tag, Ordering::Relaxed);
            self.busy[i].store(true, Ordering::Relaxed);
        }
        self.next.store((pos + n) & self.mask, Ordering::Relaxed);
        ((pos as u64) << 16) | (n as u64 - 1)
    }

    /// Completes the batch `batch_id` stored as `value`: calls `f(message id, tag)` for each of
    /// its messages in order (message ids end at `batch_id`) and frees its places. Call once
    /// per stored value, after taking it from the in-flight ring.
    pub(super) fn take(&self, batch_id: u64, value: u64, mut f: impl FnMut(u64, usize)) {
        if value == IN_OVERFLOW {
            if let Some(tags) = lock(&self.overflow).remove(&batch_id) {
                let first = batch_id - (tags.len() as u64 - 1);
                for (k, &tag) in tags.iter().enumerate() {
                    f(first + k as u64, tag);
                }
            }
            return;
        }
        let pos = (value >> 16) as usize;
        let n = (value & 0xffff) as usize + 1;
        let first = batch_id - (n as u64 - 1);
        for k in 0..n {
            let i = (pos + k) & self.mask;
            let tag = self.tags[i].load(Ordering::Relaxed);
            self.busy[i].store(false, Ordering::Release);
            f(first + k as u64, tag);
        }
    }

    /// Runs in the overflow map.
    #[cfg(test)]
    pub(super) fn overflowed(&self) -> usize {
        lock(&self.overflow).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn taken(t: &Tags, id: u64, value: u64) -> Vec<(u64, usize)> {
        let mut out = Vec::new();
        t.take(id, value, |id, tag| out.push((id, tag)));
        out
    }

    #[test]
    fn runs_map_one_batch_id_to_each_message() {
        let t = Tags::new(16);
        let a = t.store(9, &[100, 101, 102]);
        let b = t.store(12, &[7, 7, 8]);
        assert_eq!(taken(&t, 9, a), vec![(7, 100), (8, 101), (9, 102)]);
        assert_eq!(taken(&t, 12, b), vec![(10, 7), (11, 7), (12, 8)]);
        assert_eq!(t.overflowed(), 0);
    }

    #[test]
    fn runs_wrap_around_the_ring() {
        let t = Tags::new(16);
        for round in 0..20u64 {
            let tags: Vec<usize> = (0..5).map(|k| (round * 10 + k) as usize).collect();
            let id = round * 5 + 4;
            let v = t.store(id, &tags);
            let got = taken(&t, id, v);
            assert_eq!(got.iter().map(|&(_, tag)| tag).collect::<Vec<_>>(), tags);
            assert_eq!(got[0].0, round * 5);
        }
        assert_eq!(t.overflowed(), 0);
    }

    #[test]
    fn a_stuck_run_sends_later_ones_to_the_overflow_map() {
        let t = Tags::new(16);
        let stuck = t.store(3, &[1, 2, 3, 4]);
        // 12 more places fill the ring; the next run would overwrite the stuck one.
        let fill = t.store(15, &[0; 12]);
        assert_eq!(taken(&t, 15, fill).len(), 12);
        let over = t.store(17, &[50, 51]);
        assert_eq!(t.overflowed(), 1);
        assert_eq!(taken(&t, 17, over), vec![(16, 50), (17, 51)]);
        assert_eq!(taken(&t, 3, stuck), vec![(0, 1), (1, 2), (2, 3), (3, 4)]);
        assert_eq!(t.overflowed(), 0);
        // Free again: back in the ring.
        let v = t.store(30, &[9; 16]);
        assert_ne!(v, IN_OVERFLOW);
        // Larger than the ring: overflow.
        assert_eq!(t.store(100, &[0; 17]), IN_OVERFLOW);
    }
}
