//! Client-side post-filtering of delivered chunks.

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use super::delivered::{ConsumerRecord, DeliveredChunk};

type FilterFn = dyn Fn(&ConsumerRecord<'_>) -> bool + Send + Sync;

/// A per-record predicate applied before the application sees a chunk: records it returns
/// `false` for are hidden ([`DeliveredChunk::len`], `get` and `records` skip them) and a chunk
/// left with none is not delivered at all. Compares equal only to its clones.
///
/// Broker-side filtering ([`ConsumerConfig::filter_values`](super::ConsumerConfig::filter_values))
/// works per chunk with a Bloom filter: a chunk that may hold a wanted value comes whole, with
/// false positives and the other values' messages in it. The filter value itself is not
/// stored in the stream, so the predicate decides from the message: its AMQP properties,
/// application properties or body ([`ConsumerRecord::amqp`]).
///
/// Offsets and tracking are unaffected: hidden records keep their offsets (the visible ones
/// are not renumbered) and count as processed with their chunk; credit is per chunk as
/// always. Runs on the connection's task for every record of every chunk: keep it quick. A
/// panic keeps the whole chunk (reported through [`ConsumerEvents::error`](super::ConsumerEvents::error)).
#[derive(Clone)]
pub struct PostFilter(Arc<FilterFn>);

impl PostFilter {
    pub fn new(f: impl Fn(&ConsumerRecord<'_>) -> bool + Send + Sync + 'static) -> Self {
        PostFilter(Arc::new(f))
    }

    /// Runs the predicate over the visible records of `chunk`. Returns the positions kept
    /// (`None`: all of them; no allocation then) or `Err` when the predicate panicked.
    pub(super) fn apply(&self, chunk: &DeliveredChunk) -> Result<Option<Box<[u32]>>, ()> {
        catch_unwind(AssertUnwindSafe(|| {
            let mut kept: Option<Vec<u32>> = None;
            for (i, r) in chunk.records().enumerate() {
                let keep = (self.0)(&r);
                match (&mut kept, keep) {
                    (None, true) | (Some(_), false) => {}
                    (None, false) => {
                        let mut v = Vec::with_capacity(chunk.len());
                        v.extend(0..i as u32);
                        kept = Some(v);
                    }
                    (Some(v), true) => v.push(i as u32),
                }
            }
            kept.map(Vec::into_boxed_slice)
        }))
        .map_err(|_| ())
    }
}

impl fmt::Debug for PostFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PostFilter(..)")
    }
}

impl PartialEq for PostFilter {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for PostFilter {}
