//! `rmqs_producer`: publishing with confirms.

use std::ffi::{c_char, c_void};
use std::sync::Arc;
use std::time::Duration;

use super::args::{
    bytes_arg, handle_arg, name_arg, opt_slice_arg, opt_str_arg, out_arg, slice_arg, write_out,
};
use super::config::{rmqs_config, settings_arg};
use super::connection::rmqs_connection;
use super::dispatch::{CallbackLane, CallbackPool, Sink, UserData, lane, rmqs_free_cb};
use super::error::{Error, rmqs_error};
use super::message::rmqs_message_builder;
use super::object::{self, Base, Creation, Object, object_handle, shut_producer};
use super::panic::{ffi_boundary, ffi_status};
use super::queue::{
    Payload, queue_arg, rmqs_confirm, rmqs_event_source_code, rmqs_queue, rmqs_state_code,
};
use super::status::{rmqs_status, rmqs_status_code, status_from_response_code};
use crate::client::blocking::{Closable, SendWait};
use crate::client::config::ProducerSettings;
use crate::client::{
    BodyFormat, ClientError, Confirm, ConfirmStatus, OutgoingMessage, Producer, ProducerEvents,
    StateChange,
};

/// Receives a batch of confirms (outcomes of sent messages) in callback mode.
///
/// Called on one of the connection's dispatcher threads (`rmqs-dispatch`: `dispatch_threads`
/// of them, 2 by default, shared by all its producers and consumers), never concurrently with
/// itself, in the order the outcomes were known. `confirms` (`count` > 0
/// entries, `stride` bytes apart: index with `RMQS_AT()`, never with `sizeof`, as fields may be
/// appended to `rmqs_confirm` in later versions) is borrowed for the duration of the call. The
/// callback may call non-blocking functions (a send with `RMQS_SEND_NO_BLOCK`, or one that
/// finds room); blocking ones (flush, close with a timeout, `_new`, management calls) return
/// `RMQS_ERR_WOULD_DEADLOCK`.
/// A slow callback delays later confirms of this producer, and holds one dispatcher thread
/// meanwhile: the other objects' callbacks run on the others, and wait while all are held.
///
/// @ingroup rmqs_producer
pub type rmqs_confirm_cb = Option<
    unsafe extern "C" fn(
        user_data: *mut c_void,
        confirms: *const rmqs_confirm,
        count: usize,
        stride: usize,
    ),
>;

/// Send flag: store the body as it is, not wrapped in an AMQP 1.0 message (a data section).
/// Consumers of this library see the same bytes either way; other clients and AMQP consumers
/// only decode AMQP-wrapped bodies.
///
/// @ingroup rmqs_producer
pub const RMQS_SEND_RAW: u32 = 1;
/// Send flag: fail with `RMQS_ERR_QUEUE_FULL` instead of waiting when `max_in_flight` messages
/// are unconfirmed.
///
/// @ingroup rmqs_producer
pub const RMQS_SEND_NO_BLOCK: u32 = 2;
/// Send flag (`rmqs_producer_send_ex()` only): use the given publishing id instead of the next
/// one.
///
/// @ingroup rmqs_producer
pub const RMQS_SEND_PUBLISHING_ID: u32 = 4;

const ALL_FLAGS: u32 = RMQS_SEND_RAW | RMQS_SEND_NO_BLOCK | RMQS_SEND_PUBLISHING_ID;

/// A byte range, for batch sends: `data` may be NULL only when `len` is 0.
///
/// @ingroup rmqs_producer
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct rmqs_bytes {
    pub data: *const u8,
    pub len: usize,
}

pub(crate) struct ProducerShared {
    base: Base,
    producer: Producer,
    send_wait: SendWait,
}

struct Events(Arc<Sink>);

/// The status of a confirm as the C API reports it.
pub(crate) fn confirm_status(s: ConfirmStatus) -> rmqs_status {
    match s {
        ConfirmStatus::Confirmed => 0,
        ConfirmStatus::Server(code) => match status_from_response_code(code.as_u16()) {
            0 => rmqs_status_code::RMQS_ERR_PROTOCOL.status(),
            s => s,
        },
        ConfirmStatus::Timeout => rmqs_status_code::RMQS_ERR_TIMEOUT.status(),
        ConfirmStatus::Closed => rmqs_status_code::RMQS_ERR_CLOSED.status(),
    }
}

impl ProducerEvents for Events {
    fn confirms(&self, batch: &[Confirm]) {
        if batch.is_empty() {
            return;
        }
        let v = batch
            .iter()
            .map(|c| rmqs_confirm {
                publishing_id: c.publishing_id,
                tag: c.tag,
                status: confirm_status(c.status),
            })
            .collect();
        self.0.payload(-1, Payload::Confirms(v));
    }

    fn state(&self, change: &StateChange<'_>) {
        let (state, e) = super::state::of_change(change);
        self.0.state(state, e);
    }

    fn closed(&self, reason: &ClientError) {
        self.0.state(
            rmqs_state_code::RMQS_STATE_CLOSED,
            Some(Error::from(reason.clone())),
        );
    }
}

impl Object for ProducerShared {
    const NOUN: &'static str = "producer";
    const CLOSE: &'static str = "rmqs_producer_close";
    const PRODUCER: bool = true;

    fn base(&self) -> &Base {
        &self.base
    }

    async fn shut(&self, timeout: Option<Duration>) -> Result<(), Error> {
        shut_producer(
            &self.base.sink,
            self.producer.close(timeout.unwrap_or(Duration::MAX)),
        )
        .await
    }

    fn release(&self) {
        self.base.sink.stop(false);
    }
}

/// Whether a send's `flags` ask it not to wait for room.
pub(crate) fn no_block(flags: u32) -> bool {
    flags & RMQS_SEND_NO_BLOCK != 0
}

impl ProducerShared {
    /// The one path of every single-message send (`rmqs_producer_send`, `_send_ex`,
    /// `_send_message`): refuses a closed producer, sends `msg` waiting as `flags` and the
    /// thread allow ([`SendWait::send`]), and writes its publishing id to `id_out` (unless
    /// NULL).
    ///
    /// # Safety
    /// `id_out` must be NULL or writable.
    unsafe fn send_one(
        &self,
        what: &str,
        msg: &OutgoingMessage<'_>,
        flags: u32,
        id_out: *mut u64,
    ) -> Result<(), Error> {
        self.check_open(what)?;
        let id = self.send_wait.send(no_block(flags), "the producer", |w| {
            self.producer.send(msg, w)
        })?;
        if !id_out.is_null() {
            // SAFETY: per the caller's contract.
            unsafe { write_out(id_out, id) };
        }
        Ok(())
    }

    /// The one path of both batch sends (`rmqs_producer_send_batch`, `_send_messages`):
    /// refuses a closed producer, then sends `msgs` in order as [`SendWait::send_all`] does,
    /// counting the accepted ones in `done`.
    fn send_all(
        &self,
        what: &str,
        msgs: &[OutgoingMessage<'_>],
        flags: u32,
        done: &mut usize,
    ) -> Result<(), Error> {
        self.check_open(what)?;
        let send = |from: usize, w| self.producer.send_batch(&msgs[from..], w);
        Ok(self
            .send_wait
            .send_all(no_block(flags), "the producer", msgs.len(), done, send)?)
    }
}

/// A producer: publishes to one stream, with confirms. Opaque.
///
/// Created by `rmqs_producer_new()`, closed by `rmqs_producer_close()`, freed by
/// `rmqs_producer_free()`.
///
/// Thread safety: every function may be called from any thread concurrently, except
/// `rmqs_producer_free()`. Sends from several threads are serialised (publishing ids are
/// assigned in the order the sends take the producer's lock).
///
/// @ingroup rmqs_producer
pub struct rmqs_producer {
    magic: u64,
    inner: Arc<ProducerShared>,
}

impl rmqs_producer {
    /// The core producer (for its counters, src/ffi/stats.rs).
    pub(crate) fn core(&self) -> &Producer {
        &self.inner.producer
    }
}

object_handle!(rmqs_producer, ProducerShared, 0x726d_7173_7072_6f64); // "rmqsprod"

/// Creates a producer on `stream`.
///
/// Opens (or shares) a data connection to the stream's leader and declares the publisher; a
/// named producer (`name` key) first asks the broker for the last publishing id it kept for the
/// name and continues after it, so resending after a restart does not duplicate.
///
/// Confirms go to `confirm_cb` on a dispatcher thread when it is given, else to `queue` as
/// `RMQS_EVENT_CONFIRMS` events, else nowhere (fire and forget; `rmqs_producer_flush()` still
/// waits for them). State events (`RMQS_STATE_RECOVERING`, `RMQS_STATE_RECOVERED`, the final
/// `RMQS_STATE_CLOSED`) go to `queue` when it is given and to the state callback of `cfg`
/// (`rmqs_config_set_state_cb()`) when it has one. Every message a send accepted gets exactly
/// one confirm.
///
/// Recovery (connection key `recovery`, on by default): when the connection is lost, the
/// broker restarts or the stream's leader moves, the producer reports `RMQS_STATE_RECOVERING`,
/// finds the new leader, declares itself again and sends again every unconfirmed message with
/// its original publishing id, then reports `RMQS_STATE_RECOVERED`. Sends meanwhile are
/// accepted within `max_in_flight` and go out after the recovery. A named producer is
/// therefore exactly-once across a failover: the broker drops and confirms what it already
/// had. An unnamed one is at-least-once: a message stored just before the loss and not yet
/// confirmed is stored twice. A message completes with `RMQS_ERR_CLOSED` only when it is known
/// not to be stored (never sent, or its stream deleted); one whose outcome is unknown
/// (sent, then the producer closed or gave up) completes with `RMQS_ERR_TIMEOUT`. A deleted
/// stream ends the producer at once: `RMQS_STATE_CLOSED` with
/// `RMQS_ERR_STREAM_DOES_NOT_EXIST`, no retry.
///
/// @param conn the connection (borrowed).
/// @param stream the stream name, 1 to 255 bytes (borrowed).
/// @param cfg producer keys (see `rmqs_config_set()`; borrowed, copied), layered over the
///        connection's `producer.*` keys; NULL for those alone.
/// @param confirm_cb confirm callback, or NULL.
/// @param user_data passed to `confirm_cb`. Ownership passes to the library on success only.
/// @param user_data_free run once with `user_data` after the last callback (when the producer is
///        closed and freed); NULL if not needed. Not called when this function fails.
/// @param queue the queue for confirms (without `confirm_cb`) and state events, borrowed; the
///        producer keeps its own reference, so the queue handle may be freed first (events are
///        then dropped). NULL for none.
/// @param tag returned by `rmqs_event_source_tag()` for this producer's events.
/// @param out receives the producer, owned by the caller (free with `rmqs_producer_free()`),
///        only on success.
/// @param err optional error detail.
/// @return `RMQS_OK`; `RMQS_ERR_INVALID_ARGUMENT` (names, config); `RMQS_ERR_STREAM_DOES_NOT_EXIST`
///         and other broker codes; `RMQS_ERR_CLOSED`, `RMQS_ERR_TIMEOUT`, `RMQS_ERR_IO`;
///         `RMQS_ERR_WOULD_DEADLOCK` from a library callback.
///
/// Thread-safe; blocks for a few round trips.
///
/// @ingroup rmqs_producer
#[must_use]
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn rmqs_producer_new(
    conn: *mut rmqs_connection,
    stream: *const c_char,
    cfg: *const rmqs_config,
    confirm_cb: rmqs_confirm_cb,
    user_data: *mut c_void,
    user_data_free: rmqs_free_cb,
    queue: *mut rmqs_queue,
    tag: usize,
    out: *mut *mut rmqs_producer,
    err: *mut *mut rmqs_error,
) -> rmqs_status {
    // SAFETY: every pointer is checked or NULL-tolerant; err NULL or writable.
    unsafe {
        ffi_status(err, || {
            let c = handle_arg(conn)?;
            let stream = name_arg(stream, "stream name")?;
            let settings = settings_arg(cfg)?.over(&c.shared.producer_defaults);
            let ProducerSettings { config, wait } = settings.producer()?;
            let queue = queue_arg(queue)?;
            let out = out_arg(out, "out")?;
            let creation = Creation::start(
                "rmqs_producer_new",
                &c.shared,
                rmqs_event_source_code::RMQS_SOURCE_PRODUCER,
                tag,
                queue,
                cfg,
                |pool| {
                    confirm_lane(pool, confirm_cb, user_data, user_data_free, |p| match p {
                        Payload::Confirms(v) => Some(v),
                        _ => None,
                    })
                },
            )?;
            let events = Arc::new(Events(creation.sink.clone()));
            let created = c.shared.run("rmqs_producer_new", async |env| {
                Producer::new(env, stream, config, events).await
            });
            creation.finish(
                out,
                created,
                || {},
                |base, producer| ProducerShared {
                    base,
                    producer,
                    send_wait: wait,
                },
            )
        })
    }
}

/// The lane of a producer's or super producer's confirm callback `cb` (None: no lane):
/// the confirm arrays `unpack` finds in its payloads go to `cb`.
pub(crate) fn confirm_lane<T: 'static>(
    pool: &CallbackPool,
    cb: Option<unsafe extern "C" fn(*mut c_void, *const T, usize, usize)>,
    user_data: *mut c_void,
    user_data_free: rmqs_free_cb,
    unpack: fn(Payload) -> Option<Vec<T>>,
) -> Result<Option<CallbackLane>, Error> {
    let Some(cb) = cb else { return Ok(None) };
    let ud = user_data as usize;
    let deliver = move |p| {
        if let Some(v) = unpack(p) {
            // SAFETY: the application's callback with its own user_data and an array valid
            // for the call.
            unsafe { cb(ud as *mut c_void, v.as_ptr(), v.len(), size_of::<T>()) };
        }
    };
    let user_data = UserData {
        ptr: user_data,
        free: user_data_free,
    };
    lane(pool, deliver, user_data).map(Some)
}

/// The body format that a send's flags ask for.
pub(crate) fn format(flags: u32) -> BodyFormat<'static> {
    if flags & RMQS_SEND_RAW != 0 {
        BodyFormat::Raw
    } else {
        BodyFormat::AmqpData
    }
}

/// Refuses flags outside `allowed`.
pub(crate) fn check_flags(flags: u32, allowed: u32) -> Result<(), Error> {
    if flags & !allowed != 0 {
        return Err(Error::invalid_argument(format!(
            "unknown send flags 0x{:x}",
            flags & !allowed
        )));
    }
    Ok(())
}

/// Sends one message. The body is copied; its confirm comes later, with `tag`.
///
/// @param p the producer (borrowed).
/// @param body the message body (borrowed for the call), NULL only when `len` is 0.
/// @param len its length.
/// @param tag returned in this message's `rmqs_confirm`.
/// @param flags `RMQS_SEND_RAW`, `RMQS_SEND_NO_BLOCK`, or 0.
/// @param err optional error detail.
/// @return `RMQS_OK` when accepted (the confirm follows, exactly once);
///         `RMQS_ERR_QUEUE_FULL` when `max_in_flight` messages are unconfirmed and the send may
///         not wait (`RMQS_SEND_NO_BLOCK` or `block_when_full` false); `RMQS_ERR_TIMEOUT` when
///         it waited `send_timeout_ms` for room; `RMQS_ERR_CLOSED` once the producer or its
///         connection is closed; `RMQS_ERR_INVALID_ARGUMENT` (bad flags, NULL body with a
///         length, message larger than the connection's frame size); `RMQS_ERR_WOULD_DEADLOCK`
///         when called from a library callback on a full producer without
///         `RMQS_SEND_NO_BLOCK`. No confirm follows a failed send.
///
/// Thread-safe. Blocks only when the producer is full and the send may wait (not from
/// callbacks); otherwise returns at once.
///
/// @ingroup rmqs_producer
#[must_use]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_producer_send(
    p: *mut rmqs_producer,
    body: *const u8,
    len: usize,
    tag: usize,
    flags: u32,
    err: *mut *mut rmqs_error,
) -> rmqs_status {
    // SAFETY: pointers checked; err NULL or writable.
    unsafe {
        ffi_status(err, || {
            let p = handle_arg(p)?;
            check_flags(flags, RMQS_SEND_RAW | RMQS_SEND_NO_BLOCK)?;
            let body = bytes_arg(body, len, "body")?;
            let msg = OutgoingMessage {
                format: format(flags),
                tag,
                ..OutgoingMessage::new(body)
            };
            p.inner
                .send_one("rmqs_producer_send", &msg, flags, std::ptr::null_mut())
        })
    }
}

/// Sends one message with options: a filter value and/or an explicit publishing id.
///
/// A shorthand for a body alone: `rmqs_producer_send_message()` does the same with a message
/// builder (and any AMQP section besides); both make the same message for the core and share
/// one send path. Kept because a body-only send then needs no builder (the body is copied
/// once, straight into the frame, instead of into a builder first), and the C++, Go and Zig
/// bindings' sends with options use it.
///
/// @param p the producer (borrowed).
/// @param body the body (borrowed for the call), NULL only when `len` is 0.
/// @param len its length.
/// @param filter_value NUL-terminated UTF-8 filter value for broker-side filtering (RabbitMQ
///        3.13+; `RMQS_ERR_UNSUPPORTED` on older brokers), or NULL for none.
/// @param publishing_id used with `RMQS_SEND_PUBLISHING_ID`: must be above every id the
///        producer used before (for a named producer, above the broker's last id, else the
///        broker drops it as a duplicate and still confirms it).
/// @param tag returned in the message's confirm.
/// @param flags `RMQS_SEND_RAW`, `RMQS_SEND_NO_BLOCK`, `RMQS_SEND_PUBLISHING_ID`.
/// @param id_out receives the publishing id the message was sent with, on success; may be NULL.
/// @param err optional error detail.
/// @return as `rmqs_producer_send()`.
///
/// Thread-safe; blocking as `rmqs_producer_send()`.
///
/// @ingroup rmqs_producer
#[must_use]
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn rmqs_producer_send_ex(
    p: *mut rmqs_producer,
    body: *const u8,
    len: usize,
    filter_value: *const c_char,
    publishing_id: u64,
    tag: usize,
    flags: u32,
    id_out: *mut u64,
    err: *mut *mut rmqs_error,
) -> rmqs_status {
    // SAFETY: pointers checked; err NULL or writable.
    unsafe {
        ffi_status(err, || {
            let p = handle_arg(p)?;
            check_flags(flags, ALL_FLAGS)?;
            let body = bytes_arg(body, len, "body")?;
            let filter_value = opt_str_arg(filter_value, "filter_value")?;
            let msg = OutgoingMessage {
                format: format(flags),
                tag,
                filter_value,
                publishing_id: (flags & RMQS_SEND_PUBLISHING_ID != 0).then_some(publishing_id),
                ..OutgoingMessage::new(body)
            };
            p.inner
                .send_one("rmqs_producer_send_ex", &msg, flags, id_out)
        })
    }
}

/// Sends one AMQP message built with an `rmqs_message_builder`: every section, with the
/// builder's filter value and publishing id. The message is copied into the producer's batch
/// (encoded straight into the Publish frame, no allocation); the builder may be reset and
/// reused as soon as this returns. Its confirm comes later, with `tag`.
///
/// @param p the producer (borrowed).
/// @param msg the message (borrowed for the call, read only).
/// @param tag returned in this message's `rmqs_confirm`.
/// @param flags `RMQS_SEND_NO_BLOCK`, or 0 (`RMQS_SEND_RAW` and `RMQS_SEND_PUBLISHING_ID` do
///        not apply: the builder says both).
/// @param id_out receives the publishing id the message was sent with, on success; may be NULL.
/// @param err optional error detail.
/// @return as `rmqs_producer_send()`; also `RMQS_ERR_INVALID_ARGUMENT` for a publishing id not
///         above the previous one, and `RMQS_ERR_UNSUPPORTED` for a filter value on a broker
///         before 3.13.
///
/// Thread-safe (the producer; the builder must not change during the call); blocking as
/// `rmqs_producer_send()`.
///
/// @ingroup rmqs_producer
#[must_use]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_producer_send_message(
    p: *mut rmqs_producer,
    msg: *const rmqs_message_builder,
    tag: usize,
    flags: u32,
    id_out: *mut u64,
    err: *mut *mut rmqs_error,
) -> rmqs_status {
    // SAFETY: pointers checked; err NULL or writable.
    unsafe {
        ffi_status(err, || {
            let p = handle_arg(p)?;
            check_flags(flags, RMQS_SEND_NO_BLOCK)?;
            let m = handle_arg(msg)?;
            p.inner.send_one(
                "rmqs_producer_send_message",
                &m.outgoing(tag),
                flags,
                id_out,
            )
        })
    }
}

/// Sends one AMQP message made of a builder's sections and `body` as its one data section, in
/// place of the builder's body: for messages that differ only in their body, the builder set
/// up once and sent with each body, never changed. The builder's filter value and publishing
/// id apply as with `rmqs_producer_send_message()`; the builder's own body is not sent and
/// stays as it is.
///
/// The cheapest way to send a message with sections: from the second send of a builder not
/// changed since, its sections before the body are copied as one block prepared by the
/// previous send (client CPU per message within a few percent of `rmqs_producer_send()` of the
/// same body).
///
/// @param p the producer (borrowed).
/// @param msg the sections (borrowed for the call, read only: several threads may send the
///        same builder at once while nobody changes it).
/// @param body the body (borrowed for the call, copied), NULL only when `len` is 0.
/// @param len its length.
/// @param tag returned in this message's `rmqs_confirm`.
/// @param flags `RMQS_SEND_NO_BLOCK`, or 0.
/// @param id_out receives the publishing id the message was sent with, on success; may be NULL.
/// @param err optional error detail.
/// @return as `rmqs_producer_send_message()`.
///
/// Thread-safe (the producer; the builder must not change during the call); blocking as
/// `rmqs_producer_send()`.
///
/// @ingroup rmqs_producer
#[must_use]
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn rmqs_producer_send_message_body(
    p: *mut rmqs_producer,
    msg: *const rmqs_message_builder,
    body: *const u8,
    len: usize,
    tag: usize,
    flags: u32,
    id_out: *mut u64,
    err: *mut *mut rmqs_error,
) -> rmqs_status {
    // SAFETY: pointers checked; err NULL or writable.
    unsafe {
        ffi_status(err, || {
            let p = handle_arg(p)?;
            check_flags(flags, RMQS_SEND_NO_BLOCK)?;
            let m = handle_arg(msg)?;
            let body = bytes_arg(body, len, "body")?;
            p.inner.send_one(
                "rmqs_producer_send_message_body",
                &m.outgoing_with_body(body, tag),
                flags,
                id_out,
            )
        })
    }
}

/// Sends several AMQP messages in order (each with its builder's filter value and publishing
/// id), as `rmqs_producer_send_batch()` does bodies. Each is copied; the builders may be
/// reused as soon as this returns.
///
/// @param p the producer (borrowed).
/// @param msgs `count` builders (the array and the builders borrowed for the call, read only;
///        the same builder may appear several times).
/// @param tags `count` tags, or NULL for tag 0 everywhere.
/// @param count number of messages.
/// @param flags `RMQS_SEND_NO_BLOCK`, or 0.
/// @param accepted receives how many messages (a prefix of `msgs`) were accepted, also on
///        failure; may be NULL.
/// @param err optional error detail.
/// @return `RMQS_OK` when all were accepted; otherwise the status of the first message not
///         accepted (as `rmqs_producer_send_message()`), the ones before it being accepted.
///
/// Thread-safe; blocking as `rmqs_producer_send()`, up to `send_timeout_ms` in total. Allocates
/// one array of `count` entries per call.
///
/// @ingroup rmqs_producer
#[must_use]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_producer_send_messages(
    p: *mut rmqs_producer,
    msgs: *const *const rmqs_message_builder,
    tags: *const usize,
    count: usize,
    flags: u32,
    accepted: *mut usize,
    err: *mut *mut rmqs_error,
) -> rmqs_status {
    let mut done = 0usize;
    // SAFETY: pointers checked; err NULL or writable.
    let st = unsafe {
        ffi_status(err, || {
            let p = handle_arg(p)?;
            check_flags(flags, RMQS_SEND_NO_BLOCK)?;
            if count == 0 {
                return Ok(());
            }
            let msgs = messages_arg(msgs, tags, count)?;
            p.inner
                .send_all("rmqs_producer_send_messages", &msgs, flags, &mut done)
        })
    };
    if !accepted.is_null() {
        // SAFETY: non-NULL outputs must be writable.
        unsafe { accepted.write(done) };
    }
    st
}

/// The messages of a batch send: each builder checked, with its tag (0 without `tags`).
///
/// # Safety
/// `msgs` must be NULL or point to `count` pointers, each NULL or a live builder; `tags` NULL or
/// `count` tags.
pub(crate) unsafe fn messages_arg<'a>(
    msgs: *const *const rmqs_message_builder,
    tags: *const usize,
    count: usize,
) -> Result<Vec<OutgoingMessage<'a>>, Error> {
    // SAFETY: per the caller's contract.
    let ptrs = unsafe { slice_arg(msgs, count, "msgs") }?;
    // SAFETY: per the caller's contract.
    let tags = unsafe { opt_slice_arg(tags, count, "tags") }?;
    ptrs.iter()
        .enumerate()
        .map(|(i, &m)| {
            // SAFETY: per the caller's contract.
            unsafe { handle_arg::<rmqs_message_builder>(m) }
                .map(|b| b.outgoing(tags.map_or(0, |t| t[i])))
                .map_err(|e| Error::invalid_argument(format!("msgs[{i}]: {}", e.message)))
        })
        .collect()
}

/// The messages of a batch send of bodies: each body checked, with its tag (0 without
/// `tags`), in the format `flags` give.
///
/// # Safety
/// `bodies` must be NULL or point to `count` byte ranges, each valid as `bytes_arg` requires;
/// `tags` NULL or `count` tags.
pub(crate) unsafe fn bodies_arg<'a>(
    bodies: *const rmqs_bytes,
    tags: *const usize,
    count: usize,
    flags: u32,
) -> Result<Vec<OutgoingMessage<'a>>, Error> {
    // SAFETY: per the caller's contract.
    let bodies = unsafe { slice_arg(bodies, count, "bodies") }?;
    // SAFETY: per the caller's contract.
    let tags = unsafe { opt_slice_arg(tags, count, "tags") }?;
    bodies
        .iter()
        .enumerate()
        .map(|(i, b)| {
            // SAFETY: per the caller's contract.
            let body = unsafe { bytes_arg(b.data, b.len, "body") }?;
            Ok(OutgoingMessage {
                format: format(flags),
                tag: tags.map_or(0, |t| t[i]),
                ..OutgoingMessage::new(body)
            })
        })
        .collect()
}

/// Sends several messages in order (their publishing ids increase in that order). Each body is
/// copied; each message's confirm comes later with its tag.
///
/// @param p the producer (borrowed).
/// @param bodies `count` bodies (borrowed for the call; each copied).
/// @param tags `count` tags, or NULL for tag 0 everywhere.
/// @param count number of messages.
/// @param flags `RMQS_SEND_RAW`, `RMQS_SEND_NO_BLOCK`.
/// @param accepted receives how many messages (a prefix of `bodies`) were accepted, also on
///        failure (the one exception to "outputs only on success"); may be NULL.
/// @param err optional error detail.
/// @return `RMQS_OK` when all were accepted; otherwise the status of the first message not
///         accepted (as `rmqs_producer_send()`), the ones before it being accepted.
///
/// Thread-safe; blocking as `rmqs_producer_send()`, up to `send_timeout_ms` in total.
///
/// @ingroup rmqs_producer
#[must_use]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_producer_send_batch(
    p: *mut rmqs_producer,
    bodies: *const rmqs_bytes,
    tags: *const usize,
    count: usize,
    flags: u32,
    accepted: *mut usize,
    err: *mut *mut rmqs_error,
) -> rmqs_status {
    let mut done = 0usize;
    // SAFETY: pointers checked; err NULL or writable.
    let st = unsafe {
        ffi_status(err, || {
            let p = handle_arg(p)?;
            check_flags(flags, RMQS_SEND_RAW | RMQS_SEND_NO_BLOCK)?;
            if count == 0 {
                return Ok(());
            }
            let msgs = bodies_arg(bodies, tags, count, flags)?;
            p.inner
                .send_all("rmqs_producer_send_batch", &msgs, flags, &mut done)
        })
    };
    if !accepted.is_null() {
        // SAFETY: non-NULL outputs must be writable.
        unsafe { accepted.write(done) };
    }
    st
}

/// Sends what is batched and waits until every accepted message has its confirm (and, in
/// callback mode, the callback for it has returned).
///
/// @param p the producer (borrowed).
/// @param timeout_ms negative = no limit; 0 = only send the partial batch and report whether
///        anything is still unconfirmed.
/// @return `RMQS_OK` (everything that was in flight is confirmed); `RMQS_ERR_TIMEOUT` when
///         messages were still unconfirmed after `timeout_ms`; `RMQS_ERR_NOT_CONFIRMED` when
///         some completed with an error while it waited (their confirms say which);
///         `RMQS_ERR_WOULD_DEADLOCK` from a library callback (timeout other than
///         0); `RMQS_ERR_INVALID_ARGUMENT` for a NULL handle.
///
/// Thread-safe; blocks up to `timeout_ms`.
///
/// @ingroup rmqs_producer
#[must_use]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_producer_flush(
    p: *mut rmqs_producer,
    timeout_ms: i32,
    err: *mut *mut rmqs_error,
) -> rmqs_status {
    // SAFETY: p checked.
    unsafe {
        ffi_status(err, || {
            let p = &handle_arg(p)?.inner;
            object::flush("rmqs_producer_flush", &**p, timeout_ms, |t| {
                p.producer.flush(t)
            })
        })
    }
}

/// Closes the producer: no more sends (`RMQS_ERR_CLOSED`), the batched messages go out, and it
/// waits up to `timeout_ms` for outstanding confirms; messages still unconfirmed then get a
/// confirm with `RMQS_ERR_TIMEOUT` (they went out: outcome unknown) or `RMQS_ERR_CLOSED` (they
/// never did). Then the publisher is deleted on the broker and the final `RMQS_STATE_CLOSED`
/// state event goes out. Closing again returns `RMQS_OK`. In callback mode the confirm callbacks
/// of these last outcomes may still be running when it returns; `rmqs_producer_free()` waits
/// for them.
///
/// @param p the producer (borrowed; still to be freed).
/// @param timeout_ms negative = no limit; 0 = close in the background and return at once.
/// @return `RMQS_OK`: everything sent was confirmed; `RMQS_ERR_TIMEOUT` when confirms were
///         missing at the deadline; `RMQS_ERR_NOT_CONFIRMED` when every message completed in
///         time but some with an error (the producer is closed all the same in both cases);
///         `RMQS_ERR_WOULD_DEADLOCK` from a library callback with a timeout other than 0.
///
/// Thread-safe; blocks up to `timeout_ms` (the broker's answer to the publisher's deletion is
/// awaited only within it).
///
/// @ingroup rmqs_producer
#[must_use]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_producer_close(
    p: *mut rmqs_producer,
    timeout_ms: i32,
    err: *mut *mut rmqs_error,
) -> rmqs_status {
    // SAFETY: p checked.
    unsafe { ffi_status(err, || object::close(&handle_arg(p)?.inner, timeout_ms)) }
}

/// The last publishing id the producer assigned (for a named producer that has not sent yet,
/// the broker's last id for the name).
///
/// @param p the producer (borrowed).
/// @param out receives the id.
/// @return false when there is none yet, or on NULL arguments.
///
/// Thread-safe; does not block.
///
/// @ingroup rmqs_producer
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_producer_last_id(p: *const rmqs_producer, out: *mut u64) -> bool {
    ffi_boundary(false, || {
        // SAFETY: NULL or live.
        let Ok(p) = (unsafe { handle_arg(p) }) else {
            return false;
        };
        match p.inner.producer.last_publishing_id() {
            Some(id) if !out.is_null() => {
                // SAFETY: checked non-NULL; must be writable.
                unsafe { out.write(id) };
                true
            }
            _ => false,
        }
    })
}

/// Frees a producer, closing it first if needed (waiting up to 5 s for confirms), then waiting
/// for its last confirm callback and for `user_data_free` (run on a dispatcher thread). NULL is
/// allowed.
///
/// @param p the producer (ownership passes to the library), or NULL.
///
/// Blocks while closing. Called from a library callback (its own or another's), the work
/// moves to a background thread and the call returns at once.
///
/// @ingroup rmqs_producer
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_producer_free(p: *mut rmqs_producer) {
    // SAFETY: NULL or live, freed once (the caller's contract).
    ffi_boundary((), || unsafe { object::free(p) })
}
