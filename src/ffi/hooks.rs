//! A consumer's application hooks: the consumer-update callback (single active consumer), the
//! post-filter and the offset-tracking decision, registered on a config
//! (`rmqs_config_set_consumer_update_cb()`, `_post_filter_cb()`, `_tracking_cb()`), plus
//! `rmqs_offset_spec` and the `RMQS_EVENT_CONSUMER_UPDATE` event.
//!
//! Ownership follows the log callback (src/ffi/log.rs): a registration (callback, `user_data`,
//! finalizer) is shared by reference count between the config and every consumer created
//! with it. A consumer reaches it through a `Slot` that `rmqs_consumer_free()` empties
//! (waiting for calls in progress), so the finalizer runs at a known moment even when chunks
//! the application still holds keep the core consumer's state alive.

use std::ffi::{CString, c_char, c_void};
use std::sync::{Arc, RwLock};

use super::args::handle_arg;
use super::config::rmqs_config;
use super::dispatch::{CallbackLane, CallbackPool, Sink, UserData, lane, rmqs_free_cb};
use super::error::{Error, rmqs_error};
use super::panic::ffi_status;
use super::queue::Payload;
use super::status::{rmqs_status, rmqs_status_code};
use crate::client::ConsumerRecord;
use crate::client::consumer::{ConsumerUpdate, PostFilter, TrackingContext, TrackingDecider};
use crate::protocol::codes::OffsetSpec;

/// Offset types of `rmqs_offset_spec` (the stream protocol's, plus "default").
///
/// @ingroup rmqs_consumer
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum rmqs_offset_type_code {
    /// Whatever the library would choose by itself (in a consumer-update answer: right after
    /// the stored offset, else the consumer's `offset` key). `value` is ignored.
    RMQS_OFFSET_DEFAULT = 0,
    /// The first offset still in the stream.
    RMQS_OFFSET_FIRST = 1,
    /// The first offset of the last chunk.
    RMQS_OFFSET_LAST = 2,
    /// The next offset written.
    RMQS_OFFSET_NEXT = 3,
    /// The absolute offset `value` (0 or more).
    RMQS_OFFSET_OFFSET = 4,
    /// The first chunk written at or after `value` (ms since the Unix epoch).
    RMQS_OFFSET_TIMESTAMP = 5,
}

/// Where a consumer starts: an offset type and its value. Plain data, passed by value.
///
/// @ingroup rmqs_consumer
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct rmqs_offset_spec {
    /// One of `rmqs_offset_type_code`.
    pub r#type: i32,
    /// The offset (`RMQS_OFFSET_OFFSET`) or the timestamp in ms (`RMQS_OFFSET_TIMESTAMP`);
    /// ignored by the other types.
    pub value: i64,
}

impl rmqs_offset_spec {
    pub(crate) fn from_core(o: OffsetSpec) -> rmqs_offset_spec {
        use rmqs_offset_type_code::*;
        let (t, value) = match o {
            OffsetSpec::First => (RMQS_OFFSET_FIRST, 0),
            OffsetSpec::Last => (RMQS_OFFSET_LAST, 0),
            OffsetSpec::Next => (RMQS_OFFSET_NEXT, 0),
            OffsetSpec::Offset(n) => (RMQS_OFFSET_OFFSET, n.min(i64::MAX as u64) as i64),
            OffsetSpec::Timestamp(t) => (RMQS_OFFSET_TIMESTAMP, t),
        };
        rmqs_offset_spec {
            r#type: t as i32,
            value,
        }
    }

    /// The core's spec; `None` for `RMQS_OFFSET_DEFAULT`.
    pub(crate) fn to_core(self) -> Result<Option<OffsetSpec>, Error> {
        use rmqs_offset_type_code::*;
        Ok(Some(match self.r#type {
            t if t == RMQS_OFFSET_DEFAULT as i32 => return Ok(None),
            t if t == RMQS_OFFSET_FIRST as i32 => OffsetSpec::First,
            t if t == RMQS_OFFSET_LAST as i32 => OffsetSpec::Last,
            t if t == RMQS_OFFSET_NEXT as i32 => OffsetSpec::Next,
            t if t == RMQS_OFFSET_OFFSET as i32 && self.value >= 0 => {
                OffsetSpec::Offset(self.value as u64)
            }
            t if t == RMQS_OFFSET_TIMESTAMP as i32 => OffsetSpec::Timestamp(self.value),
            t => {
                return Err(Error::invalid_argument(format!(
                    "invalid offset spec: type {t}, value {}",
                    self.value
                )));
            }
        }))
    }
}

/// A single active consumer's change of state, as given to `rmqs_consumer_update_cb` and by
/// `rmqs_event_consumer_update()`. Fields may be appended in later versions.
///
/// @ingroup rmqs_consumer
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct rmqs_consumer_update_info {
    /// The stream (NUL-terminated), valid for the callback / until the event is freed.
    pub stream: *const c_char,
    /// true: the consumer becomes the active one of its group and starts where the answer
    /// says; false: it steps down (no more chunks; the answer's offset is ignored, answering
    /// only tells the library the application is done).
    pub is_active: bool,
    /// On activation, the offset stored under the consumer's tracking reference, looked up
    /// just now; `UINT64_MAX` when none is stored (or the lookup failed), and on a step-down.
    pub stored_offset: u64,
    /// What the library answers without the application: right after `stored_offset` when
    /// one is stored, else the consumer's `offset` key.
    pub default_offset: rmqs_offset_spec,
}

/// What `rmqs_tracking_cb` is told after each processed chunk. Fields may be appended in
/// later versions.
///
/// @ingroup rmqs_consumer
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct rmqs_tracking_context {
    /// The processed offset: the last offset of the chunks released so far, in delivery
    /// order (what a store sends now).
    pub processed_offset: u64,
    /// Messages processed since the last store (or since the consumer started).
    pub messages_since_store: u64,
    /// Milliseconds since the last store (or since the consumer started).
    pub ms_since_store: u64,
    /// The offset stored last by this consumer (or found at start); `UINT64_MAX` for none.
    pub last_stored_offset: u64,
}

/// Decides where a single active consumer starts when it is activated, or hears that it steps
/// down (key `single_active_consumer`).
///
/// @param user_data as given to `rmqs_config_set_consumer_update_cb()`.
/// @param info the change (borrowed for the call).
/// @return where to start: an `rmqs_offset_spec`, or `{RMQS_OFFSET_DEFAULT, 0}` for the
///         default (`info->default_offset`). An invalid spec counts as the default. Ignored on
///         a step-down.
///
/// Called on one of the connection's dispatcher threads (`rmqs-dispatch`, see
/// `rmqs_confirm_cb`): with a chunk callback, in order with the chunks (never concurrently). The broker waits for the answer; when the callback has not
/// returned within the consumer's `consumer_update_timeout_ms` (default 5000), the library
/// answers with the default and ignores the late return. The callback may call non-blocking
/// functions (`rmqs_consumer_credit`, `rmqs_consumer_store_offset`, ...); blocking ones
/// return `RMQS_ERR_WOULD_DEADLOCK`.
///
/// @ingroup rmqs_consumer
pub type rmqs_consumer_update_cb = Option<
    unsafe extern "C" fn(
        user_data: *mut c_void,
        info: *const rmqs_consumer_update_info,
    ) -> rmqs_offset_spec,
>;

/// Client-side filter: decides, for each message of each delivered chunk, whether the
/// application sees it (keys `filter_values`, `match_unfiltered`).
///
/// @param user_data as given to `rmqs_config_set_post_filter_cb()`.
/// @param msg the message, borrowed for the call only (its accessors work as usual; what
///        they return is valid until the callback returns).
/// @return true to keep the message, false to hide it. Hidden messages keep their offsets
///         (nothing is renumbered), count as processed for offset tracking, and are counted in
///         `rmqs_consumer_statistics.filtered_out`; a chunk left with no message is not
///         delivered at all (its credit goes back at once).
///
/// Called on a library runtime thread (`rmqs-rt`) as each chunk arrives, before the chunk
/// reaches the chunk callback or the queue: the messages of one consumer in order, never
/// concurrently, but consumers created with the same config may call it at the same time from
/// different threads. It holds up the connection, shared with other consumers: it must be
/// quick, must not block and may call only the `rmqs_message_*` accessors.
///
/// @ingroup rmqs_consumer
pub type rmqs_post_filter_cb = Option<
    unsafe extern "C" fn(user_data: *mut c_void, msg: *const super::chunk::rmqs_message) -> bool,
>;

/// Decides after each processed chunk whether the consumer stores its processed offset now
/// (key `tracking` = `custom`).
///
/// @param user_data as given to `rmqs_config_set_tracking_cb()`.
/// @param ctx the tracking state (borrowed for the call).
/// @return true to store `ctx->processed_offset` now.
///
/// Called on the thread that released the chunk: a dispatcher thread after the chunk
/// callback returned, the application's thread in `rmqs_event_free()` or
/// `rmqs_chunk_release()`, or a library runtime thread for chunks the post-filter emptied. It
/// may run on several threads at once; it must be quick, must not block and must not call
/// blocking `rmqs_*` functions.
///
/// @ingroup rmqs_consumer
pub type rmqs_tracking_cb =
    Option<unsafe extern "C" fn(user_data: *mut c_void, ctx: *const rmqs_tracking_context) -> bool>;

type UpdateFn =
    unsafe extern "C" fn(*mut c_void, *const rmqs_consumer_update_info) -> rmqs_offset_spec;
type FilterFn = unsafe extern "C" fn(*mut c_void, *const super::chunk::rmqs_message) -> bool;
type TrackingFn = unsafe extern "C" fn(*mut c_void, *const rmqs_tracking_context) -> bool;

/// One callback registration. Its finalizer runs when the last reference goes (the config
/// freed or given another callback, and every consumer using it freed).
pub(crate) struct Registration<F> {
    pub(crate) cb: F,
    pub(crate) user_data: *mut c_void,
    free: rmqs_free_cb,
}

// SAFETY: the API documents the threads each callback and its user_data_free may run on.
unsafe impl<F: Send> Send for Registration<F> {}
// SAFETY: as above; the registration itself is immutable.
unsafe impl<F: Sync> Sync for Registration<F> {}

impl<F> Drop for Registration<F> {
    fn drop(&mut self) {
        if let Some(f) = self.free {
            // SAFETY: the application's finalizer, called once with its own pointer.
            unsafe { f(self.user_data) };
        }
    }
}

/// A consumer's reference to a registration, emptied by [`Slot::detach`].
pub(crate) struct Slot<F>(RwLock<Option<Arc<Registration<F>>>>);

impl<F> Slot<F> {
    pub(crate) fn new(r: Arc<Registration<F>>) -> Arc<Slot<F>> {
        Arc::new(Slot(RwLock::new(Some(r))))
    }

    /// Runs `f` with the registration unless detached (`None` then).
    pub(crate) fn with<R>(&self, f: impl FnOnce(&Registration<F>) -> R) -> Option<R> {
        let g = self.0.read().unwrap_or_else(|e| e.into_inner());
        g.as_deref().map(f)
    }

    /// No more calls (waits for those in progress); drops this consumer's reference.
    pub(crate) fn detach(&self) {
        let r = self.0.write().unwrap_or_else(|e| e.into_inner()).take();
        drop(r);
    }
}

/// The hooks registered on a config.
#[derive(Clone, Default)]
pub(crate) struct ConfigHooks {
    update: Option<Arc<Registration<UpdateFn>>>,
    filter: Option<Arc<Registration<FilterFn>>>,
    tracking: Option<Arc<Registration<TrackingFn>>>,
    /// The state callback (src/ffi/state.rs), for every kind of object.
    pub(crate) state: Option<Arc<Registration<super::state::StateFn>>>,
}

impl ConfigHooks {
    /// The state callback registered on `cfg` (NULL: none).
    ///
    /// # Safety
    /// `cfg` must be NULL or a live config.
    pub(crate) unsafe fn state_of(
        cfg: *const rmqs_config,
    ) -> Result<Option<Arc<Registration<super::state::StateFn>>>, Error> {
        if cfg.is_null() {
            return Ok(None);
        }
        // SAFETY: forwarded.
        Ok(unsafe { handle_arg(cfg) }?.hooks.state.clone())
    }
}

/// The hooks of one consumer: [`ConfigHooks`] taken when it is created.
#[derive(Default)]
pub(crate) struct ConsumerHooks {
    update: Option<Arc<Slot<UpdateFn>>>,
    filter: Option<Arc<Slot<FilterFn>>>,
    tracking: Option<Arc<Slot<TrackingFn>>>,
    /// The lane of the update callback when the consumer has no chunk callback.
    own_dispatcher: Option<CallbackLane>,
}

impl ConsumerHooks {
    /// The hooks of `cfg` (NULL: none).
    ///
    /// # Safety
    /// `cfg` must be NULL or a live config.
    pub(crate) unsafe fn from_config(cfg: *const rmqs_config) -> Result<ConsumerHooks, Error> {
        if cfg.is_null() {
            return Ok(ConsumerHooks::default());
        }
        // SAFETY: forwarded.
        let c = unsafe { handle_arg(cfg) }?;
        Ok(ConsumerHooks {
            update: c.hooks.update.clone().map(Slot::new),
            filter: c.hooks.filter.clone().map(Slot::new),
            tracking: c.hooks.tracking.clone().map(Slot::new),
            own_dispatcher: None,
        })
    }

    /// The core's post-filter calling the registered callback.
    pub(crate) fn post_filter(&self) -> Option<PostFilter> {
        let slot = self.filter.clone()?;
        Some(PostFilter::new(move |r: &ConsumerRecord<'_>| {
            slot.with(|reg| {
                super::chunk::rmqs_message::lend(r, |msg| {
                    // SAFETY: the application's callback with its user_data and a message
                    // valid for the call (its record's chunk outlives it).
                    unsafe { (reg.cb)(reg.user_data, msg) }
                })
            })
            .unwrap_or(true)
        }))
    }

    /// The core's tracking decider calling the registered callback.
    pub(crate) fn tracking_decider(&self) -> Option<TrackingDecider> {
        let slot = self.tracking.clone()?;
        Some(TrackingDecider::new(move |ctx: &TrackingContext| {
            let c = rmqs_tracking_context {
                processed_offset: ctx.processed_offset,
                messages_since_store: ctx.messages_since_store,
                ms_since_store: ctx.since_store.as_millis().min(u64::MAX as u128) as u64,
                last_stored_offset: ctx.last_stored.unwrap_or(u64::MAX),
            };
            // SAFETY: the application's callback with its user_data and a context valid for
            // the call.
            slot.with(|reg| unsafe { (reg.cb)(reg.user_data, &c) })
                .unwrap_or(false)
        }))
    }

    /// The function a dispatcher lane runs for a consumer-update event (`None` without a
    /// consumer-update callback).
    pub(crate) fn update_handler(&self) -> Option<impl Fn(Box<UpdateEvent>) + Send + 'static> {
        let slot = self.update.clone()?;
        Some(move |mut ev: Box<UpdateEvent>| {
            let spec = slot.with(|reg| {
                // SAFETY: the application's callback with its user_data and an info valid for
                // the call.
                unsafe { (reg.cb)(reg.user_data, &ev.info) }
            });
            if let (Some(spec), Some(update)) = (spec, ev.update.take()) {
                // An invalid spec, like the default: dropping the update answers the default.
                if let Ok(Some(o)) = spec.to_core() {
                    update.reply(o);
                }
            }
        })
    }

    /// Starts a lane of its own in `pool` for the consumer-update callback (a consumer without
    /// a chunk callback).
    pub(crate) fn start_own_dispatcher(&mut self, pool: &CallbackPool) -> Result<(), Error> {
        let Some(handle) = self.update_handler() else {
            return Ok(());
        };
        let d = lane(
            pool,
            move |p| {
                if let Payload::ConsumerUpdate(ev) = p {
                    handle(ev);
                }
            },
            UserData {
                ptr: std::ptr::null_mut(),
                free: None,
            },
        )?;
        self.own_dispatcher = Some(d);
        Ok(())
    }

    /// Where a consumer update of partition `partition` (-1: none) goes: to the
    /// consumer-update callback when there is one (on the chunk callback's dispatcher lane,
    /// else on its own), else to the queue as an `RMQS_EVENT_CONSUMER_UPDATE` event, else
    /// dropped (which answers the default).
    pub(crate) fn deliver_update(&self, sink: &Sink, partition: i32, update: ConsumerUpdate) {
        let p = Payload::ConsumerUpdate(UpdateEvent::new(update));
        if self.update.is_none() {
            sink.other(partition, p);
        } else if let Some(d) = &self.own_dispatcher {
            d.send(p);
        } else {
            sink.payload(partition, p);
        }
    }

    /// No more calls of any hook (waits for those in progress; pending consumer updates are
    /// answered with the default); the finalizers run unless the config still holds them.
    pub(crate) fn detach(&self) {
        if let Some(d) = &self.own_dispatcher {
            d.stop(true);
        }
        if let Some(s) = &self.update {
            s.detach();
        }
        if let Some(s) = &self.filter {
            s.detach();
        }
        if let Some(s) = &self.tracking {
            s.detach();
        }
    }
}

/// A consumer update on its way to the application: the callback or an
/// `RMQS_EVENT_CONSUMER_UPDATE` event. Dropping it unanswered answers the default.
pub(crate) struct UpdateEvent {
    info: rmqs_consumer_update_info,
    /// Owns the bytes `info.stream` points to.
    _stream: CString,
    update: Option<ConsumerUpdate>,
}

// SAFETY: `info.stream` points into `_stream`, owned by the same value.
unsafe impl Send for UpdateEvent {}

impl UpdateEvent {
    pub(crate) fn new(update: ConsumerUpdate) -> Box<UpdateEvent> {
        let stream = super::queue::to_cstring(update.stream().to_string());
        Box::new(UpdateEvent {
            info: rmqs_consumer_update_info {
                stream: stream.as_ptr(),
                is_active: update.is_active(),
                stored_offset: update.stored_offset().unwrap_or(u64::MAX),
                default_offset: rmqs_offset_spec::from_core(update.default_offset()),
            },
            _stream: stream,
            update: Some(update),
        })
    }

    pub(crate) fn info(&self) -> &rmqs_consumer_update_info {
        &self.info
    }

    /// Answers (once).
    pub(crate) fn reply(&mut self, spec: rmqs_offset_spec) -> Result<(), Error> {
        let spec = spec.to_core()?;
        let Some(update) = self.update.take() else {
            return Err(Error::invalid_argument(
                "this consumer update was already answered",
            ));
        };
        let in_time = match spec {
            Some(o) => update.reply(o),
            None => {
                let in_time = std::time::Instant::now() <= update.deadline();
                drop(update);
                in_time
            }
        };
        if in_time {
            Ok(())
        } else {
            Err(Error::new(
                rmqs_status_code::RMQS_ERR_TIMEOUT,
                "the consumer update was answered after consumer_update_timeout_ms (or the \
                 consumer closed): the library had answered with the default",
            ))
        }
    }
}

pub(crate) fn register<F>(
    cb: Option<F>,
    user_data: *mut c_void,
    free: rmqs_free_cb,
) -> Option<Arc<Registration<F>>> {
    cb.map(|cb| {
        Arc::new(Registration {
            cb,
            user_data,
            free,
        })
    })
}

/// The body of every `rmqs_config_set_*_cb` function: replaces the registration `slot` picks
/// in `cfg` with `cb` (NULL removes it); the old one's finalizer runs once nothing else holds
/// it. Errors (a NULL or invalid config) go to `err`.
///
/// # Safety
/// `cfg` must be NULL or a live config that no other thread uses meanwhile; `err` NULL or
/// writable.
pub(crate) unsafe fn set_registration<F>(
    err: *mut *mut rmqs_error,
    cfg: *mut rmqs_config,
    slot: impl FnOnce(&mut rmqs_config) -> &mut Option<Arc<Registration<F>>>,
    cb: Option<F>,
    user_data: *mut c_void,
    free: rmqs_free_cb,
) -> rmqs_status {
    // SAFETY: per the contract.
    unsafe {
        ffi_status(err, || {
            handle_arg(cfg)?;
            // live (checked) and used by this thread alone
            let old = std::mem::replace(slot(&mut *cfg), register(cb, user_data, free));
            drop(old);
            Ok(())
        })
    }
}

/// Sets the consumer-update callback of the consumers created with this config
/// (`rmqs_consumer_new()`; other uses of the config ignore it). It decides where a single
/// active consumer (key `single_active_consumer`) starts when the broker activates it. Without
/// one, a consumer created with a queue receives `RMQS_EVENT_CONSUMER_UPDATE` events instead
/// (answered with `rmqs_event_consumer_update_reply()`), and otherwise answers the default at
/// once.
///
/// @param cfg the config (borrowed).
/// @param cb the callback (see `rmqs_consumer_update_cb` for its thread and rules), or NULL to
///        remove the config's callback (`user_data` and `user_data_free` are then ignored).
/// @param user_data passed to every call of `cb`; ownership passes to the library on success.
/// @param user_data_free run exactly once with `user_data` after the last call of `cb`: when
///        the config no longer holds the callback (freed, or given another one) and every
///        consumer created with it is freed — normally inside `rmqs_consumer_free()` or
///        `rmqs_config_free()`, whichever comes last, on that call's thread (a background
///        thread when the consumer is freed from a library callback). NULL if not needed. Not
///        called when this function fails.
/// @return `RMQS_OK`; `RMQS_ERR_INVALID_ARGUMENT` for a NULL or invalid config.
///
/// Not thread-safe for one config; does not block (replacing an earlier callback of this config
/// runs its `user_data_free` here if no consumer uses it).
///
/// @ingroup rmqs_consumer
#[must_use]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_config_set_consumer_update_cb(
    cfg: *mut rmqs_config,
    cb: rmqs_consumer_update_cb,
    user_data: *mut c_void,
    user_data_free: rmqs_free_cb,
    err: *mut *mut rmqs_error,
) -> rmqs_status {
    // SAFETY: cfg NULL or live and err NULL or writable, per the caller's contract.
    unsafe {
        set_registration(
            err,
            cfg,
            |c| &mut c.hooks.update,
            cb,
            user_data,
            user_data_free,
        )
    }
}

/// Sets the post-filter of the consumers created with this config (`rmqs_consumer_new()`;
/// other uses of the config ignore it): a client-side predicate over each delivered message.
/// With broker-side filtering (key `filter_values`) it is what removes the messages of other
/// values that come along in the chunks the broker sends (the filter value itself is not
/// stored in the stream: decide from the body or the properties).
///
/// @param cfg the config (borrowed).
/// @param cb the callback (see `rmqs_post_filter_cb` for its thread and rules), or NULL to
///        remove the config's callback (`user_data` and `user_data_free` are then ignored).
/// @param user_data passed to every call of `cb`; ownership passes to the library on success.
/// @param user_data_free run exactly once with `user_data` after the last call of `cb`, as
///        for `rmqs_config_set_consumer_update_cb()`. NULL if not needed. Not called when this
///        function fails.
/// @return `RMQS_OK`; `RMQS_ERR_INVALID_ARGUMENT` for a NULL or invalid config.
///
/// Not thread-safe for one config; does not block.
///
/// @ingroup rmqs_consumer
#[must_use]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_config_set_post_filter_cb(
    cfg: *mut rmqs_config,
    cb: rmqs_post_filter_cb,
    user_data: *mut c_void,
    user_data_free: rmqs_free_cb,
    err: *mut *mut rmqs_error,
) -> rmqs_status {
    // SAFETY: cfg NULL or live and err NULL or writable, per the caller's contract.
    unsafe {
        set_registration(
            err,
            cfg,
            |c| &mut c.hooks.filter,
            cb,
            user_data,
            user_data_free,
        )
    }
}

/// Sets the offset-tracking callback of the consumers created with this config
/// (`rmqs_consumer_new()`; other uses of the config ignore it): with it, key `tracking`
/// defaults to `custom` (any other explicit value fails `rmqs_consumer_new()` with
/// `RMQS_ERR_INVALID_ARGUMENT`), and the consumer stores its processed offset whenever the
/// callback says so after a processed chunk (and once more on close).
///
/// @param cfg the config (borrowed).
/// @param cb the callback (see `rmqs_tracking_cb` for its threads and rules), or NULL to
///        remove the config's callback (`user_data` and `user_data_free` are then ignored).
/// @param user_data passed to every call of `cb`; ownership passes to the library on success.
/// @param user_data_free run exactly once with `user_data` after the last call of `cb`, as
///        for `rmqs_config_set_consumer_update_cb()`. NULL if not needed. Not called when this
///        function fails.
/// @return `RMQS_OK`; `RMQS_ERR_INVALID_ARGUMENT` for a NULL or invalid config.
///
/// Not thread-safe for one config; does not block.
///
/// @ingroup rmqs_consumer
#[must_use]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_config_set_tracking_cb(
    cfg: *mut rmqs_config,
    cb: rmqs_tracking_cb,
    user_data: *mut c_void,
    user_data_free: rmqs_free_cb,
    err: *mut *mut rmqs_error,
) -> rmqs_status {
    // SAFETY: cfg NULL or live and err NULL or writable, per the caller's contract.
    unsafe {
        set_registration(
            err,
            cfg,
            |c| &mut c.hooks.tracking,
            cb,
            user_data,
            user_data_free,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_specs_convert_both_ways() {
        for o in [
            OffsetSpec::First,
            OffsetSpec::Last,
            OffsetSpec::Next,
            OffsetSpec::Offset(0),
            OffsetSpec::Offset(42),
            OffsetSpec::Timestamp(-5),
            OffsetSpec::Timestamp(1_700_000_000_000),
        ] {
            assert_eq!(rmqs_offset_spec::from_core(o).to_core().unwrap(), Some(o));
        }
        assert_eq!(rmqs_offset_spec::default().to_core().unwrap(), None);
        for bad in [
            rmqs_offset_spec {
                r#type: 6,
                value: 0,
            },
            rmqs_offset_spec {
                r#type: -1,
                value: 0,
            },
            rmqs_offset_spec {
                r#type: rmqs_offset_type_code::RMQS_OFFSET_OFFSET as i32,
                value: -1,
            },
        ] {
            assert!(bad.to_core().is_err());
        }
    }
}
