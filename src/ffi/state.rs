//! State events of producers, consumers, super producers and super consumers: the state
//! callback (`rmqs_config_set_state_cb()`) and its delivery next to the queue's
//! `RMQS_EVENT_STATE` events.

use std::ffi::{c_char, c_void};
use std::sync::Arc;

use super::config::rmqs_config;
use super::dispatch::{CallbackLane, CallbackPool, UserData, lane, rmqs_free_cb};
use super::error::{Error, rmqs_error};
use super::hooks::{Registration, Slot, set_registration};
use super::queue::{Payload, rmqs_event_source_code, rmqs_state_code, to_cstring};
use super::status::rmqs_status;
use crate::client::StateChange;

/// Hears the state changes of a producer, consumer, super producer or super consumer:
/// `RMQS_STATE_RECOVERING` (with the cause), `RMQS_STATE_RECOVERED`, and the final
/// `RMQS_STATE_CLOSED` (with the reason; `RMQS_OK` when the application closed it).
///
/// @param user_data as given to `rmqs_config_set_state_cb()`.
/// @param source the kind of object.
/// @param tag the `tag` the object was created with.
/// @param partition for a super producer or super consumer, the partition concerned (its index
///        in the object's partition list), or -1 for the object itself; -1 for other objects.
/// @param state one of `rmqs_state_code`.
/// @param status why (`RMQS_OK` for `RMQS_STATE_RECOVERED` and for a close by the
///        application).
/// @param message what happened, in words (borrowed for the call; never NULL).
///
/// Called on one of the connection's dispatcher threads (`rmqs-dispatch`, see
/// `rmqs_confirm_cb`): for an object with a confirm or chunk callback, in order with those
/// calls; never concurrently with itself for one object. The callback may
/// call non-blocking functions; blocking ones return `RMQS_ERR_WOULD_DEADLOCK`.
///
/// @ingroup rmqs_events
pub type rmqs_state_cb = Option<
    unsafe extern "C" fn(
        user_data: *mut c_void,
        source: rmqs_event_source_code,
        tag: usize,
        partition: i32,
        state: rmqs_state_code,
        status: rmqs_status,
        message: *const c_char,
    ),
>;

pub(crate) type StateFn = unsafe extern "C" fn(
    *mut c_void,
    rmqs_event_source_code,
    usize,
    i32,
    rmqs_state_code,
    rmqs_status,
    *const c_char,
);

/// Sets the state callback of the producers, consumers, super producers and super consumers
/// created with this config (connections ignore it). The events also go to the object's queue,
/// when it has one, as `RMQS_EVENT_STATE` events.
///
/// @param cfg the config (borrowed).
/// @param cb the callback (see `rmqs_state_cb` for its thread and rules), or NULL to remove the
///        config's callback (`user_data` and `user_data_free` are then ignored).
/// @param user_data passed to every call of `cb`; ownership passes to the library on success.
/// @param user_data_free run exactly once with `user_data` once the config is freed (or given
///        another callback) and every object created with it is freed, on the thread that
///        drops the last of these; NULL if not needed. Not called when this function fails.
/// @param err optional error detail.
/// @return `RMQS_OK`; `RMQS_ERR_INVALID_ARGUMENT` for a NULL or invalid config.
///
/// Not thread-safe for one config; does not block.
///
/// @ingroup rmqs_events
#[must_use]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_config_set_state_cb(
    cfg: *mut rmqs_config,
    cb: rmqs_state_cb,
    user_data: *mut c_void,
    user_data_free: rmqs_free_cb,
    err: *mut *mut rmqs_error,
) -> rmqs_status {
    // SAFETY: cfg NULL or live and err NULL or writable, per the caller's contract.
    unsafe {
        set_registration(
            err,
            cfg,
            |c| &mut c.hooks.state,
            cb,
            user_data,
            user_data_free,
        )
    }
}

/// An object's state callback: its registration and, for an object without a callback of its
/// own, the lane of the dispatcher pool that runs it.
pub(crate) struct StateHook {
    slot: Arc<Slot<StateFn>>,
    own: Option<CallbackLane>,
}

impl StateHook {
    /// The hook of a registration; `own_lane` (the connection's pool) for an object without
    /// a callback lane.
    pub(crate) fn new(
        reg: Option<Arc<Registration<StateFn>>>,
        own_lane: Option<&CallbackPool>,
    ) -> Result<Option<StateHook>, Error> {
        let Some(reg) = reg else { return Ok(None) };
        let own = match own_lane {
            Some(pool) => Some(lane(
                pool,
                drop,
                UserData {
                    ptr: std::ptr::null_mut(),
                    free: None,
                },
            )?),
            None => None,
        };
        Ok(Some(StateHook {
            slot: Slot::new(reg),
            own,
        }))
    }

    /// Calls the callback on `dispatcher` (the object's lane), or on its own lane.
    pub(crate) fn call(
        &self,
        dispatcher: Option<&CallbackLane>,
        source: rmqs_event_source_code,
        tag: usize,
        partition: i32,
        state: rmqs_state_code,
        e: Option<&Error>,
    ) {
        let Some(d) = dispatcher.or(self.own.as_ref()) else {
            return;
        };
        let slot = self.slot.clone();
        let status = e.map_or(0, |e| e.status);
        let message = to_cstring(e.map_or_else(String::new, |e| e.message.clone()));
        d.send(Payload::Call(Box::new(move || {
            // SAFETY: the application's callback with its user_data and a message valid for
            // the call.
            slot.with(|reg| unsafe {
                (reg.cb)(
                    reg.user_data,
                    source,
                    tag,
                    partition,
                    state,
                    status,
                    message.as_ptr(),
                )
            });
        })));
    }

    /// No more calls (waits for the one in progress).
    pub(crate) fn detach(&self) {
        if let Some(d) = &self.own {
            d.stop(false);
        }
        self.slot.detach();
    }
}

/// The state code and reason of a core state change.
pub(crate) fn of_change(change: &StateChange<'_>) -> (rmqs_state_code, Option<Error>) {
    match change {
        StateChange::Recovering { cause } => (
            rmqs_state_code::RMQS_STATE_RECOVERING,
            Some(Error::from((*cause).clone())),
        ),
        StateChange::Recovered { .. } => (rmqs_state_code::RMQS_STATE_RECOVERED, None),
    }
}
