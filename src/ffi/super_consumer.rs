//! `rmqs_super_consumer`: one consumer over the partitions of a super stream (the core's
//! [`SuperConsumer`]), its chunks naming their partition.

use std::ffi::{c_char, c_void};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::args::{handle_arg, name_arg, out_arg, write_out};
use super::chunk::ChunkRef;
use super::config::{rmqs_config, settings_arg};
use super::connection::rmqs_connection;
use super::consumer::{ConsumerStart, Events, rmqs_chunk_cb};
use super::dispatch::rmqs_free_cb;
use super::error::{Error, rmqs_error};
use super::hooks::ConsumerHooks;
use super::object::{self, Base, Object, PartitionNames, object_handle, shut_consumer};
use super::panic::{ffi_boundary, ffi_status};
use super::queue::{Payload, rmqs_event_source_code, rmqs_queue, rmqs_state_code};
use super::stats::{rmqs_consumer_statistics, write_extensible};
use super::status::{rmqs_status, rmqs_status_code};
use crate::client::Settings;
use crate::client::blocking::Closable;
use crate::client::{
    ClientError, Consumer, ConsumerUpdate, DeliveredChunk, StateChange, SuperConsumer,
    SuperConsumerConfig, SuperConsumerEvents,
};

impl SuperConsumerEvents for Events {
    fn chunk(&self, partition: usize, chunk: DeliveredChunk) {
        let p = partition as i32;
        self.sink
            .payload(p, Payload::Chunk(ChunkRef::in_partition(chunk, p)));
    }

    fn error(&self, partition: usize, stream: &str, error: &ClientError) {
        let e = Error::from(error.clone());
        self.sink.other(
            partition as i32,
            Payload::error(Error::new(
                e.status,
                format!("partition {partition} ({stream}): {}", e.message),
            )),
        );
    }

    fn closed(&self, partition: usize, stream: &str, reason: &ClientError) {
        if self.by_app.load(Ordering::Acquire) {
            return;
        }
        let e = Error::from(reason.clone());
        self.sink.other(
            partition as i32,
            Payload::error(Error::new(
                e.status,
                format!(
                    "partition {partition} ({stream}) stopped: {}; \
                     rmqs_super_consumer_refresh() subscribes it again if it still exists",
                    e.message
                ),
            )),
        );
    }

    fn state(&self, partition: usize, _stream: &str, change: &StateChange<'_>) {
        let (state, e) = super::state::of_change(change);
        self.sink.partition_state(partition as i32, state, e);
    }

    /// A partition's single active consumer is activated or steps down: to the
    /// consumer-update callback when there is one (on the chunk callback's dispatcher lane,
    /// else on its own), else to the queue as an `RMQS_EVENT_CONSUMER_UPDATE` event naming the
    /// partition, else dropped (which answers the default).
    fn consumer_update(&self, partition: usize, update: ConsumerUpdate) {
        self.hooks
            .deliver_update(&self.sink, partition as i32, update);
    }
}

pub(crate) struct SuperConsumerShared {
    base: Base,
    consumer: SuperConsumer,
    by_app: Arc<AtomicBool>,
    /// Consumer-update callback, post-filter, tracking callback (detached when freed).
    hooks: Arc<ConsumerHooks>,
    /// Every partition list handed out by `rmqs_super_consumer_partition()`.
    names: PartitionNames,
}

impl Object for SuperConsumerShared {
    const NOUN: &'static str = "super consumer";
    const CLOSE: &'static str = "rmqs_super_consumer_close";
    const PRODUCER: bool = false;

    fn base(&self) -> &Base {
        &self.base
    }

    async fn shut(&self, timeout: Option<Duration>) -> Result<(), Error> {
        let close = self.consumer.close();
        let sink = &self.base.sink;
        let r = shut_consumer(<Self as Object>::CLOSE, timeout, &self.by_app, sink, close).await;
        sink.state(rmqs_state_code::RMQS_STATE_CLOSED, None);
        r
    }

    fn release(&self) {
        self.base.sink.stop(true);
        self.hooks.detach();
    }
}

impl SuperConsumerShared {
    /// The consumer of partition `partition`.
    fn partition(&self, what: &str, partition: usize) -> Result<Arc<Consumer>, Error> {
        self.check_open(what)?;
        let n = self.consumer.partition_count();
        if partition >= n {
            return Err(Error::invalid_argument(format!(
                "{what}: partition {partition} of {n}"
            )));
        }
        self.consumer.partition_consumer(partition).ok_or_else(|| {
            Error::new(
                rmqs_status_code::RMQS_ERR_CLOSED,
                format!(
                    "{what}: partition {partition} has no consumer (its subscription failed: \
                     rmqs_super_consumer_refresh() tries again)"
                ),
            )
        })
    }
}

/// A super stream consumer: one consumer per partition of a super stream, all with the same
/// settings and name. Opaque.
///
/// Created by `rmqs_super_consumer_new()`, closed by `rmqs_super_consumer_close()`, freed by
/// `rmqs_super_consumer_free()`.
///
/// Thread safety: every function may be called from any thread concurrently, except
/// `rmqs_super_consumer_free()`.
///
/// @ingroup rmqs_consumer
pub struct rmqs_super_consumer {
    magic: u64,
    inner: Arc<SuperConsumerShared>,
}

object_handle!(
    rmqs_super_consumer,
    SuperConsumerShared,
    0x726d_7173_7363_6f6e
); // "rmqsscon"

fn super_consumer_config(
    s: &Settings,
    hooks: &ConsumerHooks,
) -> Result<SuperConsumerConfig, Error> {
    let mut c = s.super_consumer(hooks.tracking_decider())?;
    c.consumer.post_filter = hooks.post_filter();
    Ok(c)
}

/// Subscribes to every partition of super stream `super_stream`: one consumer per partition
/// (as `rmqs_consumer_new()`, each on a replica of its partition when there is one), all with
/// the config's consumer keys and the subscription property `super-stream`.
///
/// The config's `name` is every partition consumer's name: the offset-tracking reference (one
/// offset per partition: a super consumer restarted with the same name continues on each
/// partition after what it processed there) and, with `single_active_consumer`, the group: the
/// broker then lets one super consumer of the group receive from each partition, spreading the
/// partitions over the group's members and moving them when members come and go (the member
/// losing one stores its processed offset first with automatic tracking, and the next starts
/// right after it). A partition's activation or step-down goes to the config's consumer-update
/// callback (`rmqs_config_set_consumer_update_cb()`; `info->stream` names the partition: on the
/// dispatcher threads, in order with the chunks), else to `queue` as an
/// `RMQS_EVENT_CONSUMER_UPDATE` event (`rmqs_event_partition()` gives the partition), else the
/// default answer (right after the offset stored for the partition, else `offset`) goes at
/// once. The config's post-filter and tracking callbacks apply to every partition.
///
/// Chunks go to `chunk_cb` on a dispatcher thread when it is given, else to `queue` as
/// `RMQS_EVENT_CHUNK` events; `rmqs_chunk_partition()` (and `rmqs_event_partition()`) gives
/// the partition's index, `rmqs_chunk_stream()` its name. The chunks of one partition come in
/// order; those of different partitions interleave (never concurrently in callback mode).
/// Errors of a partition (`RMQS_EVENT_ERROR`, with `rmqs_event_partition()`: a chunk failing
/// its CRC check, the partition's stream or connection lost — then
/// `rmqs_super_consumer_refresh()` subscribes it again) and the final `RMQS_EVENT_STATE`
/// (`RMQS_STATE_CLOSED`, when the application closes it) go to `queue` when it is given.
///
/// @param conn the connection (borrowed).
/// @param super_stream the super stream name, 1 to 255 bytes (borrowed).
/// @param cfg super consumer keys (see `rmqs_config_set()`: the consumer keys and
///        `added_partition_offset`; borrowed, copied), layered over the connection's
///        `consumer.*` keys; NULL for those alone.
/// @param chunk_cb chunk callback (see `rmqs_chunk_cb`), or NULL.
/// @param user_data passed to `chunk_cb`; ownership passes to the library on success only.
/// @param user_data_free run once with `user_data` after the last callback (when the super
///        consumer is freed); NULL if not needed. Not called when this function fails.
/// @param queue the queue for chunks (without `chunk_cb`), errors and state events, borrowed
///        (the super consumer keeps its own reference); NULL for none.
/// @param tag returned by `rmqs_event_source_tag()` for this super consumer's events (their
///        source is `RMQS_SOURCE_SUPER_CONSUMER`).
/// @param out receives the super consumer, owned by the caller (free with
///        `rmqs_super_consumer_free()`), only on success.
/// @param err optional error detail.
/// @return `RMQS_OK`; `RMQS_ERR_INVALID_ARGUMENT` (neither callback nor queue, names, config, a
///         super stream without partitions); `RMQS_ERR_STREAM_DOES_NOT_EXIST` (no such super
///         stream, and on brokers before 3.13, which have none) and other broker codes;
///         `RMQS_ERR_UNSUPPORTED` (single active consumer or filtering on a broker without
///         them); `RMQS_ERR_CLOSED`, `RMQS_ERR_TIMEOUT`, `RMQS_ERR_IO`;
///         `RMQS_ERR_WOULD_DEADLOCK` from a library callback. When a partition cannot be
///         subscribed, those already subscribed are closed.
///
/// Thread-safe; blocks for a few round trips per partition. Chunks may arrive before it
/// returns.
///
/// @ingroup rmqs_consumer
#[must_use]
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn rmqs_super_consumer_new(
    conn: *mut rmqs_connection,
    super_stream: *const c_char,
    cfg: *const rmqs_config,
    chunk_cb: rmqs_chunk_cb,
    user_data: *mut c_void,
    user_data_free: rmqs_free_cb,
    queue: *mut rmqs_queue,
    tag: usize,
    out: *mut *mut rmqs_super_consumer,
    err: *mut *mut rmqs_error,
) -> rmqs_status {
    // SAFETY: every pointer is checked or NULL-tolerant; err NULL or writable.
    unsafe {
        ffi_status(err, || {
            let c = handle_arg(conn)?;
            let super_stream = name_arg(super_stream, "super stream name")?;
            let settings = settings_arg(cfg)?.over(&c.shared.consumer_defaults);
            let hooks = ConsumerHooks::from_config(cfg)?;
            let config = super_consumer_config(&settings, &hooks)?;
            config.validate(super_stream)?;
            let ConsumerStart { creation, events } = ConsumerStart::new(
                "rmqs_super_consumer_new",
                "super consumer",
                rmqs_event_source_code::RMQS_SOURCE_SUPER_CONSUMER,
                c,
                cfg,
                hooks,
                chunk_cb,
                user_data,
                user_data_free,
                queue,
                tag,
                out,
            )?;
            let (by_app, hooks) = (events.by_app.clone(), events.hooks.clone());
            let shared = &c.shared;
            // a few round trips per partition
            let timeout = shared.op_timeout() * 4;
            let created = shared.block("rmqs_super_consumer_new", Some(timeout), async {
                shared.env().await?;
                SuperConsumer::new(shared.clone(), super_stream, config, events).await
            });
            creation.finish(
                out,
                created,
                || hooks.detach(),
                |base, consumer| SuperConsumerShared {
                    base,
                    consumer,
                    by_app,
                    hooks: hooks.clone(),
                    names: PartitionNames::default(),
                },
            )
        })
    }
}

/// Asks the broker for the super stream's partitions again: partitions added since creation
/// (or the last refresh) get a consumer (starting at `added_partition_offset` when nothing is
/// stored for them), partitions that disappeared have theirs closed, and partitions whose
/// consumer was lost (stream unavailable, connection lost) are subscribed again, right after
/// the last message delivered (after the stored offset with tracking; as the broker decides
/// with a single active consumer). Partitions are never picked up silently.
///
/// @param sc the super consumer (borrowed).
/// @param count_out receives the number of partitions now, on success; may be NULL.
/// @param err optional error detail.
/// @return `RMQS_OK`; the first error of a subscription (the other partitions are subscribed
///         all the same; the failed one is tried again by the next refresh) or of the
///         Partitions command; `RMQS_ERR_CLOSED`, `RMQS_ERR_TIMEOUT`;
///         `RMQS_ERR_WOULD_DEADLOCK` from a library callback.
///
/// Thread-safe; blocks for a round trip, plus the subscriptions.
///
/// @ingroup rmqs_consumer
#[must_use]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_super_consumer_refresh(
    sc: *mut rmqs_super_consumer,
    count_out: *mut usize,
    err: *mut *mut rmqs_error,
) -> rmqs_status {
    // SAFETY: sc checked; err NULL or writable.
    unsafe {
        ffi_status(err, || {
            let s = &handle_arg(sc)?.inner;
            let refresh = s.consumer.refresh_partitions();
            object::refresh("rmqs_super_consumer_refresh", &**s, 4, count_out, refresh)
        })
    }
}

/// The number of partitions the super consumer reads (as of its creation or last refresh).
///
/// @return the count; 0 for NULL.
///
/// Thread-safe; does not block.
///
/// @ingroup rmqs_consumer
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_super_consumer_partition_count(
    sc: *const rmqs_super_consumer,
) -> usize {
    ffi_boundary(0, || {
        // SAFETY: NULL or live.
        unsafe { handle_arg(sc) }.map_or(0, |sc| sc.inner.consumer.partition_count())
    })
}

/// The name (stream) of partition `index`, in the broker's order (the indices of
/// `rmqs_chunk_partition()`).
///
/// @param sc the super consumer (borrowed).
/// @param index 0 to `rmqs_super_consumer_partition_count() - 1`.
/// @return a NUL-terminated string owned by the super consumer, valid until it is freed (also
///         across refreshes); NULL for an index out of range or a NULL handle.
///
/// Thread-safe; does not block (callable from chunk callbacks).
///
/// @ingroup rmqs_consumer
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_super_consumer_partition(
    sc: *const rmqs_super_consumer,
    index: usize,
) -> *const c_char {
    ffi_boundary(std::ptr::null(), || {
        // SAFETY: NULL or live.
        let Ok(sc) = (unsafe { handle_arg(sc) }) else {
            return std::ptr::null();
        };
        sc.inner.names.get(sc.inner.consumer.partitions(), index)
    })
}

/// Whether this super consumer receives from partition `index` now: its consumer is open and,
/// with `single_active_consumer`, the active one of its group.
///
/// @return false for an index out of range, a NULL handle, or once closed.
///
/// Thread-safe; does not block.
///
/// @ingroup rmqs_consumer
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_super_consumer_is_active(
    sc: *const rmqs_super_consumer,
    index: usize,
) -> bool {
    ffi_boundary(false, || {
        // SAFETY: NULL or live.
        unsafe { handle_arg(sc) }
            .is_ok_and(|sc| !sc.inner.is_closed() && sc.inner.consumer.is_active(index))
    })
}

/// Grants the broker `credits` more chunks on partition `index` (as `rmqs_consumer_credit()`).
///
/// @return `RMQS_OK`; `RMQS_ERR_INVALID_ARGUMENT` (NULL, index or credits out of range);
///         `RMQS_ERR_CLOSED`.
///
/// Thread-safe, also from callbacks; does not block.
///
/// @ingroup rmqs_consumer
#[must_use]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_super_consumer_credit(
    sc: *mut rmqs_super_consumer,
    index: usize,
    credits: u32,
    err: *mut *mut rmqs_error,
) -> rmqs_status {
    // SAFETY: sc checked.
    unsafe {
        ffi_status(err, || {
            let sc = handle_arg(sc)?;
            if !(1..=32767).contains(&credits) {
                return Err(Error::invalid_argument(format!(
                    "credits must be 1 to 32767, got {credits}"
                )));
            }
            sc.inner
                .partition("rmqs_super_consumer_credit", index)?
                .credit(credits as u16)
                .map_err(Error::from)
        })
    }
}

/// Stores `offset` for partition `index` under the super consumer's name (StoreOffset on that
/// partition; as `rmqs_consumer_store_offset()`).
///
/// @param sc the super consumer (borrowed).
/// @param index the partition.
/// @param offset the offset to store (usually that of the last message processed there).
/// @param err optional error detail.
/// @return `RMQS_OK` once the frame is queued; `RMQS_ERR_INVALID_ARGUMENT` without a name or for
///         an index out of range; `RMQS_ERR_CLOSED`.
///
/// Thread-safe, also from callbacks; does not block.
///
/// @ingroup rmqs_consumer
#[must_use]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_super_consumer_store_offset(
    sc: *mut rmqs_super_consumer,
    index: usize,
    offset: u64,
    err: *mut *mut rmqs_error,
) -> rmqs_status {
    // SAFETY: sc checked; err NULL or writable.
    unsafe {
        ffi_status(err, || {
            let sc = handle_arg(sc)?;
            let c = sc
                .inner
                .partition("rmqs_super_consumer_store_offset", index)?;
            Ok(c.store_offset(offset)?)
        })
    }
}

/// The offset stored for partition `index` under the super consumer's name (QueryOffset).
///
/// @param sc the super consumer (borrowed).
/// @param index the partition.
/// @param out receives the offset, only on success.
/// @param err optional error detail.
/// @return `RMQS_OK`; `RMQS_ERR_NO_OFFSET` (19) when none is stored; `RMQS_ERR_INVALID_ARGUMENT`
///         without a name or for an index out of range; `RMQS_ERR_CLOSED`, `RMQS_ERR_TIMEOUT`;
///         `RMQS_ERR_WOULD_DEADLOCK` from a library callback.
///
/// Thread-safe; blocks for one round trip.
///
/// @ingroup rmqs_consumer
#[must_use]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_super_consumer_query_offset(
    sc: *mut rmqs_super_consumer,
    index: usize,
    out: *mut u64,
    err: *mut *mut rmqs_error,
) -> rmqs_status {
    // SAFETY: sc checked; err NULL or writable.
    unsafe {
        ffi_status(err, || {
            let sc = handle_arg(sc)?;
            let out = out_arg(out, "out")?;
            let c = sc
                .inner
                .partition("rmqs_super_consumer_query_offset", index)?;
            let conn = sc.inner.conn();
            let r = conn.block(
                "rmqs_super_consumer_query_offset",
                Some(conn.op_timeout()),
                async { c.query_offset().await },
            )?;
            match r {
                Some(o) => {
                    write_out(out, o);
                    Ok(())
                }
                None => Err(Error::new(
                    rmqs_status_code::RMQS_ERR_NO_OFFSET,
                    format!("no offset stored for partition {index} under this name"),
                )),
            }
        })
    }
}

/// Counters summed over the partition consumers (those of partitions removed by a refresh, or
/// replaced after they were lost, no longer count); `last_stored_offset` is `UINT64_MAX`
/// (offsets are per partition: `rmqs_super_consumer_query_offset()`). Extensible like
/// `rmqs_connection_statistics` (set `size` first).
///
/// @return `RMQS_OK`; `RMQS_ERR_INVALID_ARGUMENT` (NULL handle or `out`, `size` not set).
///
/// Thread-safe; does not block.
///
/// @ingroup rmqs_consumer
// `..Default::default()`: fields appended to the struct later stay zero until filled here
#[must_use]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_super_consumer_stats(
    sc: *const rmqs_super_consumer,
    out: *mut rmqs_consumer_statistics,
    err: *mut *mut rmqs_error,
) -> rmqs_status {
    // SAFETY: sc checked; out NULL or as documented.
    unsafe {
        ffi_status(err, || {
            let s = handle_arg(sc)?.inner.consumer.stats();
            write_extensible(
                out,
                "rmqs_consumer_statistics",
                rmqs_consumer_statistics {
                    last_stored_offset: u64::MAX,
                    ..rmqs_consumer_statistics::from(s)
                },
            )
        })
    }
}

/// Closes the super consumer: every partition consumer is closed as `rmqs_consumer_close()`
/// (concurrently; with automatic tracking each stores its processed offset first, so that the
/// other members of a single-active-consumer group continue right after it), then an
/// `RMQS_EVENT_STATE` (`RMQS_STATE_CLOSED`, status `RMQS_OK`) event goes to the queue. Chunks
/// not yet handed to the callback are dropped; chunks the application holds stay readable
/// until released. Later calls fail with `RMQS_ERR_CLOSED`; closing again returns `RMQS_OK`.
///
/// @param sc the super consumer (borrowed; still to be freed).
/// @param timeout_ms bound for the unsubscriptions; negative = no limit; 0 = close in the
///        background and return at once.
/// @return `RMQS_OK`; `RMQS_ERR_TIMEOUT` or the first error of an unsubscription (closed all
///         the same); `RMQS_ERR_WOULD_DEADLOCK` from a library callback with a timeout other
///         than 0.
///
/// Thread-safe; blocks up to `timeout_ms`.
///
/// @ingroup rmqs_consumer
#[must_use]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_super_consumer_close(
    sc: *mut rmqs_super_consumer,
    timeout_ms: i32,
    err: *mut *mut rmqs_error,
) -> rmqs_status {
    // SAFETY: sc checked.
    unsafe { ffi_status(err, || object::close(&handle_arg(sc)?.inner, timeout_ms)) }
}

/// Frees a super consumer, closing it first if needed (5 s limit), then waiting for the callback
/// in progress, if any, and for `user_data_free` (run on a dispatcher thread). NULL is allowed.
///
/// @param sc the super consumer (ownership passes to the library), or NULL.
///
/// Blocks while closing. Called from a library callback, the work moves to a background
/// thread and the call returns at once.
///
/// @ingroup rmqs_consumer
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_super_consumer_free(sc: *mut rmqs_super_consumer) {
    // SAFETY: NULL or live, freed once (the caller's contract).
    ffi_boundary((), || unsafe { object::free(sc) })
}
