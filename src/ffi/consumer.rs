//! `rmqs_consumer`: a subscription delivering chunks to a callback or a queue.

use std::ffi::{c_char, c_void};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::args::{handle_arg, name_arg, out_arg, write_out};
use super::chunk::{ChunkRef, rmqs_chunk};
use super::config::{rmqs_config, settings_arg};
use super::connection::rmqs_connection;
use super::dispatch::{CallbackLane, CallbackPool, Sink, UserData, lane, rmqs_free_cb};
use super::error::{Error, rmqs_error};
use super::hooks::ConsumerHooks;
use super::object::{self, Base, Creation, Object, object_handle, shut_consumer};
use super::panic::{ffi_boundary, ffi_status};
use super::queue::{Payload, queue_arg, rmqs_event_source_code, rmqs_queue, rmqs_state_code};
use super::status::{rmqs_status, rmqs_status_code};
use crate::client::Settings;
use crate::client::blocking::Closable;
use crate::client::consumer::ConsumerUpdate;
use crate::client::{
    ClientError, Consumer, ConsumerConfig, ConsumerEvents, DeliveredChunk, StateChange,
};

/// Receives chunks in callback mode.
///
/// Called on one of the connection's dispatcher threads (`rmqs-dispatch`: `dispatch_threads`
/// of them, 2 by default, shared by all its producers and consumers): chunks of one consumer in
/// stream order, never concurrently. `chunk` is borrowed for the duration of
/// the call: read it there, or `rmqs_chunk_retain()` it to keep it (e.g. to hand it to another
/// thread) and `rmqs_chunk_release()` it later. With the `on_release` credit policy the broker
/// gets one credit once the callback returned and every retained reference was released.
/// The callback may call non-blocking functions (`rmqs_consumer_credit`,
/// `rmqs_consumer_store_offset`, chunk accessors, non-blocking sends); blocking ones return
/// `RMQS_ERR_WOULD_DEADLOCK`. A slow callback slows this consumer, and holds one dispatcher
/// thread meanwhile: the other objects' callbacks run on the others, and wait while all are
/// held.
///
/// @ingroup rmqs_consumer
pub type rmqs_chunk_cb =
    Option<unsafe extern "C" fn(user_data: *mut c_void, chunk: *const rmqs_chunk)>;

pub(crate) struct ConsumerShared {
    base: Base,
    consumer: Consumer,
    /// Shared with [`Events`]: set before the application (or the connection) closes.
    by_app: Arc<AtomicBool>,
    /// Consumer-update callback, post-filter, tracking callback (detached when freed).
    hooks: Arc<ConsumerHooks>,
}

pub(crate) struct Events {
    pub sink: Arc<Sink>,
    /// Set when the application (or the connection) closes the consumer: the `closed` event
    /// then has status OK; a super consumer's partitions' are then not reported one by one.
    pub by_app: Arc<AtomicBool>,
    pub hooks: Arc<ConsumerHooks>,
}

impl ConsumerEvents for Events {
    fn chunk(&self, chunk: DeliveredChunk) {
        self.sink.payload(-1, Payload::Chunk(ChunkRef::new(chunk)));
    }

    fn error(&self, error: &ClientError) {
        self.sink
            .other(-1, Payload::error(Error::from(error.clone())));
    }

    fn closed(&self, reason: &ClientError) {
        let e = if self.by_app.load(Ordering::Acquire) {
            None
        } else {
            Some(Error::from(reason.clone()))
        };
        self.sink.state(rmqs_state_code::RMQS_STATE_CLOSED, e);
    }

    fn state(&self, change: &StateChange<'_>) {
        let (state, e) = super::state::of_change(change);
        self.sink.state(state, e);
    }

    /// To the consumer-update callback when there is one (on the chunk callback's dispatcher
    /// lane, else on its own), else to the queue as an event, else dropped: dropping it
    /// answers the default.
    fn consumer_update(&self, update: ConsumerUpdate) {
        self.hooks.deliver_update(&self.sink, -1, update);
    }
}

impl Object for ConsumerShared {
    const NOUN: &'static str = "consumer";
    const CLOSE: &'static str = "rmqs_consumer_close";
    const PRODUCER: bool = false;

    fn base(&self) -> &Base {
        &self.base
    }

    async fn shut(&self, timeout: Option<Duration>) -> Result<(), Error> {
        let (close, sink) = (self.consumer.close(), &self.base.sink);
        shut_consumer(<Self as Object>::CLOSE, timeout, &self.by_app, sink, close).await
    }

    fn release(&self) {
        self.base.sink.stop(true);
        self.hooks.detach();
    }
}

/// A consumer: a subscription to one stream. Opaque.
///
/// Created by `rmqs_consumer_new()`, closed by `rmqs_consumer_close()`, freed by
/// `rmqs_consumer_free()`.
///
/// Thread safety: every function may be called from any thread concurrently, except
/// `rmqs_consumer_free()`.
///
/// @ingroup rmqs_consumer
pub struct rmqs_consumer {
    magic: u64,
    inner: Arc<ConsumerShared>,
}

impl rmqs_consumer {
    /// The core consumer (for its counters, src/ffi/stats.rs).
    pub(crate) fn core(&self) -> &Consumer {
        &self.inner.consumer
    }
}

object_handle!(rmqs_consumer, ConsumerShared, 0x726d_7173_636f_6e73); // "rmqscons"

/// The core's consumer configuration from consumer keys (scope checked) and a config's hooks
/// (post-filter, tracking callback).
pub(crate) fn consumer_config_with(
    s: &Settings,
    hooks: &ConsumerHooks,
) -> Result<ConsumerConfig, Error> {
    let mut c = s.consumer(hooks.tracking_decider())?;
    c.post_filter = hooks.post_filter();
    Ok(c)
}

/// What creating a consumer or super consumer shares before the client call: the chunk
/// callback or the queue (one at least), the output, then [`Creation::start`] with the chunk
/// callback's lane; `events` for the client object.
pub(crate) struct ConsumerStart {
    pub creation: Creation,
    pub events: Arc<Events>,
}

impl ConsumerStart {
    /// `what` names the C function, `noun` the object.
    ///
    /// # Safety
    /// As the arguments of `rmqs_consumer_new()`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) unsafe fn new<H>(
        what: &'static str,
        noun: &str,
        source: rmqs_event_source_code,
        c: &rmqs_connection,
        cfg: *const rmqs_config,
        mut hooks: ConsumerHooks,
        chunk_cb: rmqs_chunk_cb,
        user_data: *mut c_void,
        user_data_free: rmqs_free_cb,
        queue: *mut rmqs_queue,
        tag: usize,
        out: *mut *mut H,
    ) -> Result<ConsumerStart, Error> {
        // SAFETY: per the contract.
        let queue = unsafe { queue_arg(queue) }?;
        if chunk_cb.is_none() && queue.is_none() {
            return Err(Error::invalid_argument(format!(
                "a {noun} needs a chunk callback or a queue"
            )));
        }
        out_arg(out, "out")?;
        // SAFETY: per the contract.
        let creation = unsafe {
            Creation::start(what, &c.shared, source, tag, queue, cfg, |pool| {
                chunk_dispatcher(pool, chunk_cb, user_data, user_data_free, &mut hooks)
            })
        }?;
        let events = Arc::new(Events {
            sink: creation.sink.clone(),
            by_app: Arc::new(AtomicBool::new(false)),
            hooks: Arc::new(hooks),
        });
        Ok(ConsumerStart { creation, events })
    }
}

/// Subscribes to `stream`.
///
/// Opens (or shares) a data connection to a replica of the stream and subscribes from the
/// `offset` key (default `next`) with `initial_credit` credits. Consumers spread over the
/// replicas (the one with the fewest consumers of this connection first) and never share the
/// leader's data connection while a replica is reachable; a replica that refuses connections
/// is skipped for another, then for the leader (and the stream's leader when it has no
/// replica).
///
/// Recovery (connection key `recovery`, on by default): when its connection is lost, its node
/// restarts or its member of the stream moves, the consumer reports `RMQS_STATE_RECOVERING`,
/// subscribes again (placed as above) right after the last offset it delivered, and reports
/// `RMQS_STATE_RECOVERED`: the application sees no gap and no repeat. A single active consumer
/// rejoins its group; when it is activated again it starts no earlier than right after what it
/// delivered. Offset tracking goes on. A deleted stream ends it: `RMQS_STATE_CLOSED` with
/// `RMQS_ERR_STREAM_DOES_NOT_EXIST`.
///
/// Chunks go to `chunk_cb` on a dispatcher thread when it is given, else to `queue` as
/// `RMQS_EVENT_CHUNK` events; at least one of the two is required. Errors (`RMQS_EVENT_ERROR`,
/// e.g. a chunk failing its CRC check) and the final `RMQS_EVENT_STATE` (`RMQS_STATE_CLOSED`:
/// closed by the application with status `RMQS_OK`, or the stream or connection lost, with the
/// reason) go to `queue` when it is given. A single active consumer's activations and
/// step-downs go to the config's consumer-update callback (`rmqs_config_set_consumer_update_cb`)
/// when it has one, else to `queue` as `RMQS_EVENT_CONSUMER_UPDATE` events, else get the
/// default answer at once. The config's post-filter (`rmqs_config_set_post_filter_cb`) and
/// tracking callback (`rmqs_config_set_tracking_cb`) are used by this consumer until it is
/// freed.
///
/// With offset tracking (key `tracking`), the offset stored under the tracking reference is
/// looked up first and reading starts right after it (the `offset` key only applies when none
/// is stored).
///
/// @param conn the connection (borrowed).
/// @param stream the stream name, 1 to 255 bytes (borrowed).
/// @param cfg consumer keys (see `rmqs_config_set()`; borrowed, copied), layered over the
///        connection's `consumer.*` keys; NULL for those alone.
/// @param chunk_cb chunk callback, or NULL.
/// @param user_data passed to `chunk_cb`; ownership passes to the library on success only.
/// @param user_data_free run once with `user_data` after the last callback (when the consumer
///        is freed); NULL if not needed. Not called when this function fails.
/// @param queue the queue for chunks (without `chunk_cb`), errors and state events, borrowed
///        (the consumer keeps its own reference); NULL for none.
/// @param tag returned by `rmqs_event_source_tag()` for this consumer's events.
/// @param out receives the consumer, owned by the caller (free with `rmqs_consumer_free()`),
///        only on success.
/// @param err optional error detail.
/// @return `RMQS_OK`; `RMQS_ERR_INVALID_ARGUMENT` (neither callback nor queue, names, config);
///         `RMQS_ERR_STREAM_DOES_NOT_EXIST` and other broker codes; `RMQS_ERR_CLOSED`,
///         `RMQS_ERR_TIMEOUT`, `RMQS_ERR_IO`; `RMQS_ERR_WOULD_DEADLOCK` from a library callback.
///
/// Thread-safe; blocks for a few round trips. Chunks may arrive before it returns.
///
/// @ingroup rmqs_consumer
#[must_use]
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn rmqs_consumer_new(
    conn: *mut rmqs_connection,
    stream: *const c_char,
    cfg: *const rmqs_config,
    chunk_cb: rmqs_chunk_cb,
    user_data: *mut c_void,
    user_data_free: rmqs_free_cb,
    queue: *mut rmqs_queue,
    tag: usize,
    out: *mut *mut rmqs_consumer,
    err: *mut *mut rmqs_error,
) -> rmqs_status {
    // SAFETY: every pointer is checked or NULL-tolerant; err NULL or writable.
    unsafe {
        ffi_status(err, || {
            let c = handle_arg(conn)?;
            let stream = name_arg(stream, "stream name")?;
            let settings = settings_arg(cfg)?.over(&c.shared.consumer_defaults);
            let hooks = ConsumerHooks::from_config(cfg)?;
            let config = consumer_config_with(&settings, &hooks)?;
            let ConsumerStart { creation, events } = ConsumerStart::new(
                "rmqs_consumer_new",
                "consumer",
                rmqs_event_source_code::RMQS_SOURCE_CONSUMER,
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
            let created = c.shared.run("rmqs_consumer_new", async |env| {
                Consumer::new(env, stream, config, events).await
            });
            creation.finish(
                out,
                created,
                || hooks.detach(),
                |base, consumer| ConsumerShared {
                    base,
                    consumer,
                    by_app,
                    hooks: hooks.clone(),
                },
            )
        })
    }
}

/// Grants the broker `credits` more chunks. The way to receive chunks with the `manual` credit
/// policy; adds to the automatic credit otherwise.
///
/// @param c the consumer (borrowed).
/// @param credits 1 to 32767.
/// @return `RMQS_OK`; `RMQS_ERR_INVALID_ARGUMENT` (NULL, credits out of range);
///         `RMQS_ERR_CLOSED`.
///
/// Thread-safe, also from callbacks; does not block.
///
/// @ingroup rmqs_consumer
#[must_use]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_consumer_credit(
    c: *mut rmqs_consumer,
    credits: u32,
    err: *mut *mut rmqs_error,
) -> rmqs_status {
    // SAFETY: c checked.
    unsafe {
        ffi_status(err, || {
            let c = handle_arg(c)?;
            if !(1..=32767).contains(&credits) {
                return Err(Error::invalid_argument(format!(
                    "credits must be 1 to 32767, got {credits}"
                )));
            }
            c.inner.check_open("rmqs_consumer_credit")?;
            c.inner.consumer.credit(credits as u16).map_err(Error::from)
        })
    }
}

/// Stores `offset` on the broker under the consumer's `name` (StoreOffset; the broker does not
/// answer: `rmqs_consumer_query_offset()` shows when it is applied).
///
/// @param c the consumer (borrowed).
/// @param offset the offset to store (usually that of the last message processed).
/// @param err optional error detail.
/// @return `RMQS_OK` once the frame is queued; `RMQS_ERR_INVALID_ARGUMENT` when the consumer has
///         no name; `RMQS_ERR_CLOSED`.
///
/// Thread-safe, also from callbacks; does not block.
///
/// @ingroup rmqs_consumer
#[must_use]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_consumer_store_offset(
    c: *mut rmqs_consumer,
    offset: u64,
    err: *mut *mut rmqs_error,
) -> rmqs_status {
    // SAFETY: c checked; err NULL or writable.
    unsafe {
        ffi_status(err, || {
            let c = handle_arg(c)?;
            c.inner.check_open("rmqs_consumer_store_offset")?;
            Ok(c.inner.consumer.store_offset(offset)?)
        })
    }
}

/// The offset stored on the broker under the consumer's `name` (QueryOffset).
///
/// @param c the consumer (borrowed).
/// @param out receives the offset, only on success.
/// @param err optional error detail.
/// @return `RMQS_OK`; `RMQS_ERR_NO_OFFSET` (19) when none is stored; `RMQS_ERR_INVALID_ARGUMENT`
///         without a name; `RMQS_ERR_CLOSED`, `RMQS_ERR_TIMEOUT`; `RMQS_ERR_WOULD_DEADLOCK`
///         from a library callback.
///
/// Thread-safe; blocks for one round trip.
///
/// @ingroup rmqs_consumer
#[must_use]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_consumer_query_offset(
    c: *mut rmqs_consumer,
    out: *mut u64,
    err: *mut *mut rmqs_error,
) -> rmqs_status {
    // SAFETY: c checked; err NULL or writable.
    unsafe {
        ffi_status(err, || {
            let c = handle_arg(c)?;
            let out = out_arg(out, "out")?;
            c.inner.check_open("rmqs_consumer_query_offset")?;
            let conn = c.inner.conn();
            let r = conn.block(
                "rmqs_consumer_query_offset",
                Some(conn.op_timeout()),
                async { c.inner.consumer.query_offset().await },
            )?;
            match r {
                Some(o) => {
                    write_out(out, o);
                    Ok(())
                }
                None => Err(Error::new(
                    rmqs_status_code::RMQS_ERR_NO_OFFSET,
                    "no offset stored for this consumer's name",
                )),
            }
        })
    }
}

/// Stores the consumer's processed offset on the broker under its tracking reference (key
/// `tracking_reference`, else `name`), unless it is what was stored last: the offset of the
/// last message of the chunks released so far, in delivery order (a chunk released before an
/// earlier one does not count until that one is released too). For `tracking` = `manual`;
/// works with the other strategies too. StoreOffset has no reply:
/// `rmqs_consumer_query_offset()` shows when it is applied.
///
/// @param c the consumer (borrowed).
/// @param offset_out receives the offset stored, on success; may be NULL.
/// @param err optional error detail.
/// @return `RMQS_OK`; `RMQS_ERR_NO_OFFSET` (19) when there was nothing new to store (nothing
///         processed since the last store, or a single active consumer that is not the active
///         one); `RMQS_ERR_INVALID_ARGUMENT` without a name or reference; `RMQS_ERR_CLOSED`.
///
/// Thread-safe, also from callbacks; does not block.
///
/// @ingroup rmqs_consumer
#[must_use]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_consumer_store_processed_offset(
    c: *mut rmqs_consumer,
    offset_out: *mut u64,
    err: *mut *mut rmqs_error,
) -> rmqs_status {
    // SAFETY: c checked; offset_out NULL or writable; err NULL or writable.
    unsafe {
        ffi_status(err, || {
            let c = handle_arg(c)?;
            c.inner.check_open("rmqs_consumer_store_processed_offset")?;
            match c.inner.consumer.store_processed_offset()? {
                Some(o) => {
                    if !offset_out.is_null() {
                        write_out(offset_out, o);
                    }
                    Ok(())
                }
                None => Err(Error::new(
                    rmqs_status_code::RMQS_ERR_NO_OFFSET,
                    "nothing new to store: no chunk processed since the last store",
                )),
            }
        })
    }
}

/// Whether the consumer receives now: for a single active consumer (key
/// `single_active_consumer`), whether it is the active one of its group; for other consumers,
/// whether it is open. False for NULL.
///
/// Thread-safe, also from callbacks; does not block.
///
/// @ingroup rmqs_consumer
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_consumer_is_active(c: *const rmqs_consumer) -> bool {
    ffi_boundary(false, || {
        // SAFETY: NULL or live.
        unsafe { handle_arg(c) }.is_ok_and(|c| !c.inner.is_closed() && c.inner.consumer.is_active())
    })
}

/// Closes the consumer: unsubscribes, and an `RMQS_EVENT_STATE` (`RMQS_STATE_CLOSED`, status
/// `RMQS_OK`) event goes to the queue. Chunks not yet handed to the callback are dropped;
/// chunks the application holds stay readable until released. Later calls fail with
/// `RMQS_ERR_CLOSED`; closing again returns `RMQS_OK`.
///
/// @param c the consumer (borrowed; still to be freed).
/// @param timeout_ms bound for the Unsubscribe round trip; negative = no limit; 0 = close in
///        the background and return at once.
/// @return `RMQS_OK`; `RMQS_ERR_TIMEOUT` (the consumer is closed all the same);
///         `RMQS_ERR_WOULD_DEADLOCK` from a library callback with a timeout other than 0.
///
/// Thread-safe; blocks up to `timeout_ms`.
///
/// @ingroup rmqs_consumer
#[must_use]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_consumer_close(
    c: *mut rmqs_consumer,
    timeout_ms: i32,
    err: *mut *mut rmqs_error,
) -> rmqs_status {
    // SAFETY: c checked.
    unsafe { ffi_status(err, || object::close(&handle_arg(c)?.inner, timeout_ms)) }
}

/// Frees a consumer, closing it first if needed (5 s limit), then waiting for the callback in
/// progress, if any, and for `user_data_free` (run on a dispatcher thread). NULL is allowed.
///
/// @param c the consumer (ownership passes to the library), or NULL.
///
/// Blocks while closing. Called from a library callback (its own or another's), the work
/// moves to a background thread and the call returns at once.
///
/// @ingroup rmqs_consumer
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_consumer_free(c: *mut rmqs_consumer) {
    // SAFETY: NULL or live, freed once (the caller's contract).
    ffi_boundary((), || unsafe { object::free(c) })
}

/// The lane in `pool` of a consumer (plain or super) in callback mode: chunks go to
/// `chunk_cb`, consumer updates to the update handler of `hooks`, in order, one at a time.
/// Without `chunk_cb` (queue mode) the consumer-update callback, if any, gets a lane of its
/// own and `None` is returned.
pub(crate) fn chunk_dispatcher(
    pool: &CallbackPool,
    chunk_cb: rmqs_chunk_cb,
    user_data: *mut c_void,
    user_data_free: rmqs_free_cb,
    hooks: &mut ConsumerHooks,
) -> Result<Option<CallbackLane>, Error> {
    let Some(cb) = chunk_cb else {
        hooks.start_own_dispatcher(pool)?;
        return Ok(None);
    };
    let ud = user_data as usize;
    let update = hooks.update_handler();
    lane(
        pool,
        move |p| match p {
            Payload::Chunk(c) => {
                // SAFETY: the application's callback with its own user_data and a chunk that
                // lives until `c` is dropped after it.
                unsafe { cb(ud as *mut c_void, c.as_ptr()) };
                drop(c);
            }
            Payload::ConsumerUpdate(u) => {
                if let Some(f) = &update {
                    f(u);
                }
            }
            _ => {}
        },
        UserData {
            ptr: user_data,
            free: user_data_free,
        },
    )
    .map(Some)
}
