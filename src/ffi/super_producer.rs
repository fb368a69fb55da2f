//! `rmqs_super_producer`: one producer over the partitions of a super stream (the core's
//! [`SuperProducer`]), with hash, key or application routing and confirms that name the
//! partition.

use std::cell::Cell;
use std::ffi::{c_char, c_void};
use std::sync::Arc;
use std::time::Duration;

use super::args::{
    bytes_arg, handle_arg, name_arg, opt_slice_arg, opt_str_arg, out_arg, write_out,
};
use super::config::{rmqs_config, settings_arg};
use super::connection::rmqs_connection;
use super::dispatch::{Sink, rmqs_free_cb};
use super::error::{Error, rmqs_error};
use super::hooks::{Registration, set_registration};
use super::message::rmqs_message_builder;
use super::object::{self, Base, Creation, Object, PartitionNames, object_handle, shut_producer};
use super::panic::{ffi_boundary, ffi_status};
use super::producer::{
    RMQS_SEND_NO_BLOCK, RMQS_SEND_PUBLISHING_ID, RMQS_SEND_RAW, bodies_arg, check_flags,
    confirm_lane, confirm_status, format, messages_arg, no_block, rmqs_bytes,
};
use super::queue::{
    Payload, queue_arg, rmqs_event_source_code, rmqs_queue, rmqs_state_code, rmqs_super_confirm,
};
use super::stats::{rmqs_producer_statistics, write_extensible};
use super::status::rmqs_status;
use crate::client::Settings;
use crate::client::blocking::{Closable, SendWait};
use crate::client::super_producer::{KeyExtractor, key_extractor};
use crate::client::{
    BodyFormat, ClientError, Confirm, OutgoingMessage, Routing, StateChange, SuperProducer,
    SuperProducerConfig, SuperProducerEvents,
};

/// Receives a batch of confirms of a super producer in callback mode: each says which
/// partition its message went to.
///
/// Called on one of the connection's dispatcher threads (`rmqs-dispatch`, see
/// `rmqs_confirm_cb`), never concurrently with itself; the confirms of one partition come in order. `confirms`
/// (`count` > 0 entries, `stride` bytes apart: see `RMQS_AT()`) is borrowed for the call. Rules as `rmqs_confirm_cb`: non-blocking
/// calls only (blocking ones return `RMQS_ERR_WOULD_DEADLOCK`).
///
/// @ingroup rmqs_producer
pub type rmqs_super_confirm_cb = Option<
    unsafe extern "C" fn(
        user_data: *mut c_void,
        confirms: *const rmqs_super_confirm,
        count: usize,
        stride: usize,
    ),
>;

/// Routes a message of a super producer (`rmqs_config_set_routing_cb()`): writes the indices
/// of the partitions the message goes to into `partitions` and returns how many it wrote.
///
/// - `msg`: the message when it was sent with `rmqs_super_producer_send_message()`,
///   `rmqs_super_producer_send_message_body()` or `rmqs_super_producer_send_messages()`
///   (borrowed for the call: read it with `rmqs_message_builder_property()`,
///   `rmqs_message_builder_app_property()`), else NULL.
/// - `body`, `len`: the message body as given to the send call (also the body given to
///   `rmqs_super_producer_send_message_body()`, not the builder's own); for a message builder
///   sent whole, its body when that is a single data section, else NULL and 0 (borrowed for
///   the call).
/// - `routing_key`, `key_len`: the message's routing key (from the send call, else from the
///   key extractor), NUL-terminated, borrowed for the call; `""` (length 0) when it has none.
/// - `tag`: the send call's tag.
/// - `partition_count`: the number of partitions now (indices `0 .. partition_count - 1`, in
///   the order of `rmqs_super_producer_partition()`); `partitions` has room for exactly that
///   many indices.
///
/// Return 1 to send the message to one partition, several to send a copy to each (each copy
/// gets its own confirm), 0 to refuse it: the send then fails with
/// `RMQS_ERR_INVALID_ARGUMENT`, message starting with `"no route"`, and nothing is sent. An
/// index out of range, or a count above `partition_count`, refuses it the same way.
///
/// Called on the thread making the send call, once per message (per send call), possibly from
/// several threads at once. Must be quick and must not send on the same super producer.
///
/// @ingroup rmqs_producer
pub type rmqs_routing_cb = Option<
    unsafe extern "C" fn(
        user_data: *mut c_void,
        msg: *const rmqs_message_builder,
        body: *const u8,
        len: usize,
        routing_key: *const c_char,
        key_len: usize,
        tag: usize,
        partition_count: usize,
        partitions: *mut u32,
    ) -> usize,
>;

/// Extracts the routing key of a message sent without one (`routing_key` NULL in
/// `rmqs_super_producer_send()`; see `rmqs_config_set_key_extractor()`).
///
/// Writes the key's UTF-8 bytes (no terminating NUL needed) into `key`, which has room for
/// `capacity` bytes, and returns the key's length. When the key is longer than `capacity`,
/// return its length without writing (or after writing a part): the function is called once
/// more with room for at least that many bytes. Return a negative value when the message has
/// no key: the send fails with `RMQS_ERR_INVALID_ARGUMENT` (with `hash` and `key` routing;
/// a routing callback gets `""`).
///
/// `msg`: the message when it was sent with `rmqs_super_producer_send_message()`,
/// `rmqs_super_producer_send_message_body()` or `rmqs_super_producer_send_messages()`, so that
/// the key can come from a property (`rmqs_message_builder_app_property()`,
/// `rmqs_message_builder_property()`); NULL for a body sent alone. `body`, `len`: the message
/// body (with `rmqs_super_producer_send_message_body()`, the body given to it, not the
/// builder's own; for a builder sent whole: its body when that is a single data section, else
/// NULL and 0). Both borrowed for the call. `tag`: the send call's tag.
///
/// Called on the thread making the send call, possibly from several threads at once. Must be
/// quick and must not send on the same super producer.
///
/// @ingroup rmqs_producer
pub type rmqs_key_extractor_cb = Option<
    unsafe extern "C" fn(
        user_data: *mut c_void,
        msg: *const rmqs_message_builder,
        body: *const u8,
        len: usize,
        tag: usize,
        key: *mut c_char,
        capacity: usize,
    ) -> isize,
>;

/// Room given to a key extractor at first.
const KEY_CAPACITY: usize = 256;

/// The C function of a routing callback registration.
type RoutingFn = unsafe extern "C" fn(
    *mut c_void,
    *const rmqs_message_builder,
    *const u8,
    usize,
    *const c_char,
    usize,
    usize,
    usize,
    *mut u32,
) -> usize;

/// The C function of a key extractor registration.
type KeyFn = unsafe extern "C" fn(
    *mut c_void,
    *const rmqs_message_builder,
    *const u8,
    usize,
    usize,
    *mut c_char,
    usize,
) -> isize;

/// The super producer callbacks a config holds (shared with the super producers created from
/// it).
#[derive(Clone, Default)]
pub(crate) struct Callbacks {
    routing: Option<Arc<Registration<RoutingFn>>>,
    key: Option<Arc<Registration<KeyFn>>>,
}

thread_local! {
    /// The routing key, NUL-terminated, handed to routing callbacks (reused per thread).
    static KEY_NUL: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
    /// The index array handed to routing callbacks.
    static PARTS: Cell<Vec<u32>> = const { Cell::new(Vec::new()) };
}

/// What a C callback is given for `m`: the builder (NULL for a body sent alone) and the body.
fn callback_view<'a>(m: &OutgoingMessage<'a>) -> (*const rmqs_message_builder, &'a [u8]) {
    // SAFETY (both arms): the C API makes `BodyFormat::Message` and
    // `BodyFormat::MessageWithBody` only from a builder's `msg` (`rmqs_message_builder`'s
    // `outgoing` and `outgoing_with_body`), and only it sends on super producers that have C
    // callbacks.
    match m.format {
        BodyFormat::Message(b) => (
            unsafe { rmqs_message_builder::containing(b) },
            b.body_data().unwrap_or(&[]),
        ),
        BodyFormat::MessageWithBody(b) => (unsafe { rmqs_message_builder::containing(b) }, m.body),
        BodyFormat::AmqpData | BodyFormat::Raw => (std::ptr::null(), m.body),
    }
}

/// The core's custom routing over a C routing callback: no allocation per message once the
/// thread's buffers are warm.
fn c_routing(reg: Arc<Registration<RoutingFn>>) -> Routing {
    Routing::custom(
        move |m: &OutgoingMessage<'_>, key: &str, parts: &[String], out: &mut Vec<usize>| {
            let mut k = KEY_NUL.take();
            k.clear();
            k.extend_from_slice(key.as_bytes());
            k.push(0);
            let mut p = PARTS.take();
            p.clear();
            p.resize(parts.len(), u32::MAX);
            // SAFETY: the application's callback with its user_data, the body and key
            // (NUL-terminated) valid for the call, and room for parts.len() indices.
            let (builder, body) = callback_view(m);
            let n = unsafe {
                (reg.cb)(
                    reg.user_data,
                    builder,
                    body.as_ptr(),
                    body.len(),
                    k.as_ptr().cast(),
                    key.len(),
                    m.tag,
                    parts.len(),
                    p.as_mut_ptr(),
                )
            };
            if n > parts.len() {
                // an index no partition has: the core refuses the message ("no route")
                out.push(usize::MAX);
            } else {
                out.extend(p[..n].iter().map(|&i| i as usize));
            }
            KEY_NUL.set(k);
            PARTS.set(p);
        },
    )
}

/// The core's key extractor over a C key extractor, writing into the core's per-thread
/// buffer (no allocation per message once warm).
fn c_key_extractor(reg: Arc<Registration<KeyFn>>) -> KeyExtractor {
    key_extractor(move |msg, buf| extract_key(&reg, msg, buf))
}

/// Runs the C key extractor on `msg`: the key it wrote into `buf` (`None`: no key).
fn extract_key<'a>(
    reg: &Registration<KeyFn>,
    msg: &OutgoingMessage<'a>,
    buf: &'a mut String,
) -> Result<Option<&'a str>, ClientError> {
    // SAFETY: the bytes written are checked as UTF-8 before the String is used again, and
    // cleared when they are not.
    let v = unsafe { buf.as_mut_vec() };
    let mut cap = v.capacity().max(KEY_CAPACITY);
    for _ in 0..2 {
        v.clear();
        v.reserve(cap);
        cap = v.capacity();
        let (builder, body) = callback_view(msg);
        // SAFETY: the application's callback with its user_data, the body valid for the call
        // and `cap` writable bytes.
        let n = unsafe {
            (reg.cb)(
                reg.user_data,
                builder,
                body.as_ptr(),
                body.len(),
                msg.tag,
                v.as_mut_ptr().cast(),
                cap,
            )
        };
        if n < 0 {
            return Ok(None);
        }
        let n = n as usize;
        if n <= cap {
            // SAFETY: the callback wrote n <= cap bytes (any byte value is a valid u8).
            unsafe { v.set_len(n) };
            if std::str::from_utf8(v).is_err() {
                v.clear();
                return Err(ClientError::InvalidArgument(format!(
                    "the key extractor returned a routing key that is not valid UTF-8 \
                     (message tag {})",
                    msg.tag
                )));
            }
            return Ok(Some(buf.as_str()));
        }
        cap = n;
    }
    v.clear();
    Err(ClientError::InvalidArgument(format!(
        "the key extractor asked for more room twice (message tag {})",
        msg.tag
    )))
}

struct Events(Arc<Sink>);

impl SuperProducerEvents for Events {
    fn confirms(&self, partition: usize, _stream: &str, batch: &[Confirm]) {
        if batch.is_empty() {
            return;
        }
        let v = batch
            .iter()
            .map(|c| rmqs_super_confirm {
                publishing_id: c.publishing_id,
                tag: c.tag,
                status: confirm_status(c.status),
                partition: partition as u32,
            })
            .collect();
        self.0.payload(partition as i32, Payload::SuperConfirms(v));
    }

    fn state(&self, partition: usize, _stream: &str, change: &StateChange<'_>) {
        let (state, e) = super::state::of_change(change);
        self.0.partition_state(partition as i32, state, e);
    }

    fn partition_closed(&self, partition: usize, _stream: &str, reason: &ClientError) {
        self.0.partition_state(
            partition as i32,
            rmqs_state_code::RMQS_STATE_CLOSED,
            Some(Error::from(reason.clone())),
        );
    }
}

pub(crate) struct SuperProducerShared {
    base: Base,
    producer: SuperProducer,
    send_wait: SendWait,
    /// Every partition list handed out by `rmqs_super_producer_partition()`.
    names: PartitionNames,
}

impl Object for SuperProducerShared {
    const NOUN: &'static str = "super producer";
    const CLOSE: &'static str = "rmqs_super_producer_close";
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

impl SuperProducerShared {
    /// The one path of every single-message send (`rmqs_super_producer_send`, `_send_ex`,
    /// `_send_message`, `_send_message_body`): refuses a closed super producer, sends `msg` as
    /// [`SuperProducer::send`] does and writes the partition and publishing id to the outputs
    /// that are not NULL.
    ///
    /// # Safety
    /// `partition_out` and `id_out` must be NULL or writable.
    unsafe fn send_one(
        &self,
        what: &str,
        key: Option<&str>,
        msg: &OutgoingMessage<'_>,
        flags: u32,
        partition_out: *mut u32,
        id_out: *mut u64,
    ) -> Result<(), Error> {
        self.check_open(what)?;
        let (partition, id) = self.send_wait.send(no_block(flags), PARTITION, |w| {
            self.producer.send(msg, key, w)
        })?;
        // SAFETY: per the caller's contract.
        unsafe {
            if !partition_out.is_null() {
                write_out(partition_out, partition as u32);
            }
            if !id_out.is_null() {
                write_out(id_out, id);
            }
        }
        Ok(())
    }
}

/// Who is full when a send cannot wait: for messages.
const PARTITION: &str = "the partition's producer";

/// A super stream producer: routes each message to a partition of a super stream, with one
/// producer per partition (created lazily, by the first send routed to it, on that
/// partition's leader). Opaque.
///
/// Created by `rmqs_super_producer_new()`, closed by `rmqs_super_producer_close()`, freed by
/// `rmqs_super_producer_free()`.
///
/// Thread safety: every function may be called from any thread concurrently, except
/// `rmqs_super_producer_free()`.
///
/// @ingroup rmqs_producer
pub struct rmqs_super_producer {
    magic: u64,
    inner: Arc<SuperProducerShared>,
}

object_handle!(
    rmqs_super_producer,
    SuperProducerShared,
    0x726d_7173_7370_726f
); // "rmqsspro"

/// Sets the routing function of the super producers created with this config
/// (`rmqs_super_producer_new()`; other uses of the config ignore it): it replaces `hash` and
/// `key` routing (the `routing` key must then be unset).
///
/// @param cfg the config (borrowed).
/// @param cb the function (see `rmqs_routing_cb`: called on the sending thread), or NULL to
///        remove the config's function (`user_data` and `user_data_free` are then ignored).
/// @param user_data passed to every call of `cb`; ownership passes to the library on success.
/// @param user_data_free run exactly once with `user_data` after the last call of `cb`: when
///        the config no longer holds the function (freed, or given another one) and every super
///        producer created with it is freed, on the thread making that last call. NULL if not
///        needed. Not called when this function fails.
/// @return `RMQS_OK`; `RMQS_ERR_INVALID_ARGUMENT` for a NULL or invalid config.
///
/// Not thread-safe for one config; does not block.
///
/// @ingroup rmqs_producer
#[must_use]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_config_set_routing_cb(
    cfg: *mut rmqs_config,
    cb: rmqs_routing_cb,
    user_data: *mut c_void,
    user_data_free: rmqs_free_cb,
    err: *mut *mut rmqs_error,
) -> rmqs_status {
    // SAFETY: cfg NULL or live and err NULL or writable, per the caller's contract.
    unsafe {
        set_registration(
            err,
            cfg,
            |c| &mut c.super_producer.routing,
            cb,
            user_data,
            user_data_free,
        )
    }
}

/// Sets the key extractor of the super producers created with this config
/// (`rmqs_super_producer_new()`; other uses of the config ignore it): it gives the routing
/// key of every message sent with a NULL `routing_key`.
///
/// @param cfg the config (borrowed).
/// @param cb the function (see `rmqs_key_extractor_cb`: called on the sending thread), or NULL
///        to remove the config's extractor (`user_data` and `user_data_free` are then ignored).
/// @param user_data passed to every call of `cb`; ownership passes to the library on success.
/// @param user_data_free as in `rmqs_config_set_routing_cb()`.
/// @return `RMQS_OK`; `RMQS_ERR_INVALID_ARGUMENT` for a NULL or invalid config.
///
/// Not thread-safe for one config; does not block.
///
/// @ingroup rmqs_producer
#[must_use]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_config_set_key_extractor(
    cfg: *mut rmqs_config,
    cb: rmqs_key_extractor_cb,
    user_data: *mut c_void,
    user_data_free: rmqs_free_cb,
    err: *mut *mut rmqs_error,
) -> rmqs_status {
    // SAFETY: cfg NULL or live and err NULL or writable, per the caller's contract.
    unsafe {
        set_registration(
            err,
            cfg,
            |c| &mut c.super_producer.key,
            cb,
            user_data,
            user_data_free,
        )
    }
}

/// The core configuration from the settings and callbacks, plus the FFI's send settings.
#[derive(Debug)]
struct Parsed {
    config: SuperProducerConfig,
    send_wait: SendWait,
}

fn super_producer_config(s: &Settings, callbacks: &Callbacks) -> Result<Parsed, Error> {
    let mut p = s.super_producer(callbacks.routing.clone().map(c_routing))?;
    p.config.key_extractor = callbacks.key.clone().map(c_key_extractor);
    Ok(Parsed {
        config: p.config,
        send_wait: p.wait,
    })
}

/// Creates a producer on super stream `super_stream`.
///
/// Asks the broker for the partitions (Partitions command; the super stream must exist and
/// have at least one); with the `eager` key it also creates every partition producer now,
/// else each is created by the first send routed to its partition. Routing: the config's
/// `routing` key (`hash`, the default, or `key`) or its routing callback
/// (`rmqs_config_set_routing_cb()`); routing keys come with each send or from the config's key
/// extractor (`rmqs_config_set_key_extractor()`).
///
/// A named super producer (`name` key) gives that name to every partition producer: the broker
/// keeps one publishing sequence per partition under it, so each partition deduplicates on its
/// own and a restarted super producer continues on each after the last id the broker kept
/// there (as the Java and .NET clients do).
///
/// Confirms go to `confirm_cb` on a dispatcher thread when it is given, else to `queue` as
/// `RMQS_EVENT_SUPER_CONFIRMS` events (`rmqs_event_super_confirms()`), else nowhere (flush
/// still waits for them); each names its partition. The final `RMQS_EVENT_STATE`
/// (`RMQS_STATE_CLOSED`) goes to `queue` when it is given. Every message a send accepted gets
/// exactly one confirm (one per copy when routing sends it to several partitions).
///
/// @param conn the connection (borrowed).
/// @param super_stream the super stream name, 1 to 255 bytes (borrowed).
/// @param cfg super producer keys (see `rmqs_config_set()`: the producer keys, `routing`,
///        `eager`) and callbacks (borrowed, copied; the callbacks are shared), layered over the
///        connection's `producer.*` keys; NULL for those alone.
/// @param confirm_cb confirm callback, or NULL.
/// @param user_data passed to `confirm_cb`. Ownership passes to the library on success only.
/// @param user_data_free run once with `user_data` after the last callback (when the super
///        producer is freed); NULL if not needed. Not called when this function fails.
/// @param queue the queue for confirms (without `confirm_cb`) and state events, borrowed (the
///        super producer keeps its own reference); NULL for none.
/// @param tag returned by `rmqs_event_source_tag()` for this super producer's events (their
///        source is `RMQS_SOURCE_SUPER_PRODUCER`).
/// @param out receives the super producer, owned by the caller (free with
///        `rmqs_super_producer_free()`), only on success.
/// @param err optional error detail.
/// @return `RMQS_OK`; `RMQS_ERR_INVALID_ARGUMENT` (names, config, a super stream without
///         partitions); `RMQS_ERR_STREAM_DOES_NOT_EXIST` (no such super stream, and on brokers
///         before 3.13, which have none) and other broker codes, also those of creating the
///         partition producers with `eager`; `RMQS_ERR_CLOSED`, `RMQS_ERR_TIMEOUT`,
///         `RMQS_ERR_IO`; `RMQS_ERR_WOULD_DEADLOCK` from a library callback.
///
/// Thread-safe; blocks for a round trip (plus the creation of every partition producer with
/// `eager`).
///
/// @ingroup rmqs_producer
#[must_use]
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn rmqs_super_producer_new(
    conn: *mut rmqs_connection,
    super_stream: *const c_char,
    cfg: *const rmqs_config,
    confirm_cb: rmqs_super_confirm_cb,
    user_data: *mut c_void,
    user_data_free: rmqs_free_cb,
    queue: *mut rmqs_queue,
    tag: usize,
    out: *mut *mut rmqs_super_producer,
    err: *mut *mut rmqs_error,
) -> rmqs_status {
    // SAFETY: every pointer is checked or NULL-tolerant; err NULL or writable.
    unsafe {
        ffi_status(err, || {
            let c = handle_arg(conn)?;
            let super_stream = name_arg(super_stream, "super stream name")?;
            let callbacks = if cfg.is_null() {
                Callbacks::default()
            } else {
                handle_arg(cfg)?.super_producer.clone()
            };
            let settings = settings_arg(cfg)?.over(&c.shared.producer_defaults);
            let parsed = super_producer_config(&settings, &callbacks)?;
            let queue = queue_arg(queue)?;
            let out = out_arg(out, "out")?;
            let creation = Creation::start(
                "rmqs_super_producer_new",
                &c.shared,
                rmqs_event_source_code::RMQS_SOURCE_SUPER_PRODUCER,
                tag,
                queue,
                cfg,
                |pool| {
                    confirm_lane(pool, confirm_cb, user_data, user_data_free, |p| match p {
                        Payload::SuperConfirms(v) => Some(v),
                        _ => None,
                    })
                },
            )?;
            let events = Arc::new(Events(creation.sink.clone()));
            let shared = &c.shared;
            let config = parsed.config;
            // eager: the partition producers' creation counts too
            let timeout = shared.op_timeout() * 2;
            let created = shared.block("rmqs_super_producer_new", Some(timeout), async {
                shared.env().await?;
                SuperProducer::new(shared.clone(), super_stream, config, events).await
            });
            creation.finish(
                out,
                created,
                || {},
                |base, producer| SuperProducerShared {
                    base,
                    producer,
                    send_wait: parsed.send_wait,
                    names: PartitionNames::default(),
                },
            )
        })
    }
}

/// Sends one message to the partition its routing key leads to. The body is copied; its
/// confirm comes later with `tag` and the partition.
///
/// The first send routed to a partition creates that partition's producer, and with `key`
/// routing the first send of a routing key asks the broker where it goes (cached): such a send
/// blocks for that round trip whatever the flags (also in a library callback; `eager` avoids
/// the first).
///
/// @param sp the super producer (borrowed).
/// @param routing_key the message's routing key, NUL-terminated UTF-8 (borrowed), or NULL to
///        ask the config's key extractor (no extractor: `hash` and `key` routing fail with
///        `RMQS_ERR_INVALID_ARGUMENT`, a routing callback gets `""`).
/// @param body the message body (borrowed for the call), NULL only when `len` is 0.
/// @param len its length.
/// @param tag returned in the message's `rmqs_super_confirm`.
/// @param flags `RMQS_SEND_RAW`, `RMQS_SEND_NO_BLOCK`, or 0.
/// @param err optional error detail.
/// @return `RMQS_OK` when accepted (a confirm follows for each copy, exactly once);
///         `RMQS_ERR_INVALID_ARGUMENT` for a message routed nowhere (a key bound to no
///         partition with `key` routing, a routing callback choosing none; the message starts
///         with `"no route"`), a missing routing key, bad flags, a NULL body with a length;
///         `RMQS_ERR_QUEUE_FULL`, `RMQS_ERR_TIMEOUT`, `RMQS_ERR_WOULD_DEADLOCK` as
///         `rmqs_producer_send()` (for the partition's `max_in_flight`); `RMQS_ERR_CLOSED`;
///         the errors of creating a partition producer. No confirm follows a failed send.
///
/// Thread-safe; blocks as said above, and when the partition's producer is full and the send
/// may wait.
///
/// @ingroup rmqs_producer
#[must_use]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_super_producer_send(
    sp: *mut rmqs_super_producer,
    routing_key: *const c_char,
    body: *const u8,
    len: usize,
    tag: usize,
    flags: u32,
    err: *mut *mut rmqs_error,
) -> rmqs_status {
    // SAFETY: pointers checked; err NULL or writable.
    unsafe {
        ffi_status(err, || {
            let sp = handle_arg(sp)?;
            check_flags(flags, RMQS_SEND_RAW | RMQS_SEND_NO_BLOCK)?;
            let key = opt_str_arg(routing_key, "routing_key")?;
            let body = bytes_arg(body, len, "body")?;
            let msg = OutgoingMessage {
                format: format(flags),
                tag,
                ..OutgoingMessage::new(body)
            };
            sp.inner.send_one(
                "rmqs_super_producer_send",
                key,
                &msg,
                flags,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            )
        })
    }
}

/// Sends one message with options, and says where it went.
///
/// A shorthand for a body alone: `rmqs_super_producer_send_message()` does the same with a
/// message builder (and any AMQP section besides); both make the same message for the core
/// and share one send path. Kept because a body-only send then needs no builder (the body is
/// copied once, straight into the frame), and the C++, Go and Zig bindings use it.
///
/// @param sp the super producer (borrowed).
/// @param routing_key as in `rmqs_super_producer_send()`.
/// @param body the body (borrowed for the call), NULL only when `len` is 0.
/// @param len its length.
/// @param filter_value NUL-terminated UTF-8 filter value (RabbitMQ 3.13+), or NULL for none.
/// @param publishing_id used with `RMQS_SEND_PUBLISHING_ID`: the id on the partition the
///        message goes to (ids are per partition); must be above every id used there before.
/// @param tag returned in the message's confirm.
/// @param flags `RMQS_SEND_RAW`, `RMQS_SEND_NO_BLOCK`, `RMQS_SEND_PUBLISHING_ID`.
/// @param partition_out receives the partition index (the first one when routing gives
///        several), on success; may be NULL.
/// @param id_out receives the publishing id there, on success; may be NULL.
/// @param err optional error detail.
/// @return as `rmqs_super_producer_send()`.
///
/// Thread-safe; blocking as `rmqs_super_producer_send()`.
///
/// @ingroup rmqs_producer
#[must_use]
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn rmqs_super_producer_send_ex(
    sp: *mut rmqs_super_producer,
    routing_key: *const c_char,
    body: *const u8,
    len: usize,
    filter_value: *const c_char,
    publishing_id: u64,
    tag: usize,
    flags: u32,
    partition_out: *mut u32,
    id_out: *mut u64,
    err: *mut *mut rmqs_error,
) -> rmqs_status {
    // SAFETY: pointers checked; err NULL or writable.
    unsafe {
        ffi_status(err, || {
            let sp = handle_arg(sp)?;
            check_flags(
                flags,
                RMQS_SEND_RAW | RMQS_SEND_NO_BLOCK | RMQS_SEND_PUBLISHING_ID,
            )?;
            let key = opt_str_arg(routing_key, "routing_key")?;
            let body = bytes_arg(body, len, "body")?;
            let filter_value = opt_str_arg(filter_value, "filter_value")?;
            let msg = OutgoingMessage {
                format: format(flags),
                tag,
                filter_value,
                publishing_id: (flags & RMQS_SEND_PUBLISHING_ID != 0).then_some(publishing_id),
                ..OutgoingMessage::new(body)
            };
            sp.inner.send_one(
                "rmqs_super_producer_send_ex",
                key,
                &msg,
                flags,
                partition_out,
                id_out,
            )
        })
    }
}

/// Sends several messages in order, each routed by its own key. Consecutive messages going
/// to the same partition go to its producer together; order is kept per partition.
///
/// @param sp the super producer (borrowed).
/// @param routing_keys `count` routing keys (NUL-terminated UTF-8, borrowed for the call); a
///        NULL entry, or NULL for the whole array, asks the key extractor for that message.
/// @param bodies `count` bodies (borrowed for the call; each copied).
/// @param tags `count` tags, or NULL for tag 0 everywhere.
/// @param count number of messages.
/// @param flags `RMQS_SEND_RAW`, `RMQS_SEND_NO_BLOCK`.
/// @param accepted receives how many messages (a prefix of `bodies`) were accepted, also on
///        failure; may be NULL.
/// @param err optional error detail.
/// @return `RMQS_OK` when all were accepted; otherwise the status of the first message not
///         accepted (as `rmqs_super_producer_send()`), the ones before it being accepted.
///
/// Thread-safe; blocking as `rmqs_super_producer_send()`, up to `send_timeout_ms` in total.
///
/// @ingroup rmqs_producer
#[must_use]
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn rmqs_super_producer_send_batch(
    sp: *mut rmqs_super_producer,
    routing_keys: *const *const c_char,
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
            let sp = handle_arg(sp)?;
            check_flags(flags, RMQS_SEND_RAW | RMQS_SEND_NO_BLOCK)?;
            if count == 0 {
                return Ok(());
            }
            let msgs = bodies_arg(bodies, tags, count, flags)?;
            let raw_keys = opt_slice_arg(routing_keys, count, "routing_keys")?;
            send_batch_of(
                &sp.inner,
                raw_keys,
                &msgs,
                flags,
                &mut done,
                "rmqs_super_producer_send_batch",
            )
        })
    };
    if !accepted.is_null() {
        // SAFETY: non-NULL outputs must be writable.
        unsafe { accepted.write(done) };
    }
    st
}

/// Sends one AMQP message built with an `rmqs_message_builder` (every section, its filter
/// value and publishing id) to the partition its routing key leads to, and says where it
/// went. The key comes from `routing_key`, else from the config's key extractor, which is
/// given the builder (so that it can read the key from a property). The message is copied;
/// the builder may be reused as soon as this returns.
///
/// @param sp the super producer (borrowed).
/// @param routing_key as in `rmqs_super_producer_send()`.
/// @param msg the message (borrowed for the call, read only). Its publishing id, if set, is
///        the id on the partition it goes to.
/// @param tag returned in the message's confirm.
/// @param flags `RMQS_SEND_NO_BLOCK`, or 0.
/// @param partition_out receives the partition index (the first one when routing gives
///        several), on success; may be NULL.
/// @param id_out receives the publishing id there, on success; may be NULL.
/// @param err optional error detail.
/// @return as `rmqs_super_producer_send()`.
///
/// Thread-safe (the super producer; the builder must not change during the call); blocking
/// as `rmqs_super_producer_send()`.
///
/// @ingroup rmqs_producer
#[must_use]
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn rmqs_super_producer_send_message(
    sp: *mut rmqs_super_producer,
    routing_key: *const c_char,
    msg: *const rmqs_message_builder,
    tag: usize,
    flags: u32,
    partition_out: *mut u32,
    id_out: *mut u64,
    err: *mut *mut rmqs_error,
) -> rmqs_status {
    // SAFETY: pointers checked; err NULL or writable.
    unsafe {
        ffi_status(err, || {
            let sp = handle_arg(sp)?;
            check_flags(flags, RMQS_SEND_NO_BLOCK)?;
            let key = opt_str_arg(routing_key, "routing_key")?;
            let m = handle_arg(msg)?;
            sp.inner.send_one(
                "rmqs_super_producer_send_message",
                key,
                &m.outgoing(tag),
                flags,
                partition_out,
                id_out,
            )
        })
    }
}

/// Sends one AMQP message made of a builder's sections and `body` as its one data section, in
/// place of the builder's body, to the partition its routing key leads to, and says where it
/// went: `rmqs_producer_send_message_body()` for a super stream. The builder is set up once and
/// sent with each body, never changed; its filter value and publishing id apply as with
/// `rmqs_super_producer_send_message()`, its own body is not sent and stays as it is. From
/// the second send of a builder not changed since, its sections before the body are copied as
/// one block prepared by the previous send, whichever partition the message goes to.
///
/// Routing as `rmqs_super_producer_send_message()`: the key comes from `routing_key`, else
/// from the config's key extractor; the key extractor and the routing callback are given the
/// builder and `body` (the body sent, not the builder's own), so that a key can come from a
/// property or from the body.
///
/// @param sp the super producer (borrowed).
/// @param routing_key as in `rmqs_super_producer_send()`.
/// @param msg the sections (borrowed for the call, read only: several threads may send the
///        same builder at once while nobody changes it). Its publishing id, if set, is the id
///        on the partition the message goes to.
/// @param body the body (borrowed for the call, copied), NULL only when `len` is 0.
/// @param len its length.
/// @param tag returned in the message's confirm.
/// @param flags `RMQS_SEND_NO_BLOCK`, or 0.
/// @param partition_out receives the partition index (the first one when routing gives
///        several), on success; may be NULL.
/// @param id_out receives the publishing id there, on success; may be NULL.
/// @param err optional error detail.
/// @return as `rmqs_super_producer_send()`.
///
/// Thread-safe (the super producer; the builder must not change during the call); blocking
/// as `rmqs_super_producer_send()`.
///
/// @ingroup rmqs_producer
#[must_use]
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn rmqs_super_producer_send_message_body(
    sp: *mut rmqs_super_producer,
    routing_key: *const c_char,
    msg: *const rmqs_message_builder,
    body: *const u8,
    len: usize,
    tag: usize,
    flags: u32,
    partition_out: *mut u32,
    id_out: *mut u64,
    err: *mut *mut rmqs_error,
) -> rmqs_status {
    // SAFETY: pointers checked; err NULL or writable.
    unsafe {
        ffi_status(err, || {
            let sp = handle_arg(sp)?;
            check_flags(flags, RMQS_SEND_NO_BLOCK)?;
            let key = opt_str_arg(routing_key, "routing_key")?;
            let m = handle_arg(msg)?;
            let body = bytes_arg(body, len, "body")?;
            sp.inner.send_one(
                "rmqs_super_producer_send_message_body",
                key,
                &m.outgoing_with_body(body, tag),
                flags,
                partition_out,
                id_out,
            )
        })
    }
}

/// Sends several AMQP messages in order, each routed by its own key, as
/// `rmqs_super_producer_send_batch()` does bodies.
///
/// @param sp the super producer (borrowed).
/// @param routing_keys `count` routing keys (NUL-terminated UTF-8, borrowed for the call); a
///        NULL entry, or NULL for the whole array, asks the key extractor for that message.
/// @param msgs `count` builders (borrowed for the call, read only).
/// @param tags `count` tags, or NULL for tag 0 everywhere.
/// @param count number of messages.
/// @param flags `RMQS_SEND_NO_BLOCK`, or 0.
/// @param accepted receives how many messages (a prefix of `msgs`) were accepted, also on
///        failure; may be NULL.
/// @param err optional error detail.
/// @return `RMQS_OK` when all were accepted; otherwise the status of the first message not
///         accepted, the ones before it being accepted.
///
/// Thread-safe; blocking as `rmqs_super_producer_send()`, up to `send_timeout_ms` in total.
///
/// @ingroup rmqs_producer
#[must_use]
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn rmqs_super_producer_send_messages(
    sp: *mut rmqs_super_producer,
    routing_keys: *const *const c_char,
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
            let sp = handle_arg(sp)?;
            check_flags(flags, RMQS_SEND_NO_BLOCK)?;
            if count == 0 {
                return Ok(());
            }
            let msgs = messages_arg(msgs, tags, count)?;
            let raw_keys = opt_slice_arg(routing_keys, count, "routing_keys")?;
            send_batch_of(
                &sp.inner,
                raw_keys,
                &msgs,
                flags,
                &mut done,
                "rmqs_super_producer_send_messages",
            )
        })
    };
    if !accepted.is_null() {
        // SAFETY: non-NULL outputs must be writable.
        unsafe { accepted.write(done) };
    }
    st
}

/// The common part of the batch sends: the routing keys (NULL: the key extractor's), then the
/// sends as [`SendWait::send_all`] makes them (up to the first message without a key),
/// counting accepted messages in `done`.
///
/// # Safety
/// `raw_keys`' entries must be NULL or NUL-terminated strings.
unsafe fn send_batch_of(
    s: &SuperProducerShared,
    raw_keys: Option<&[*const c_char]>,
    msgs: &[OutgoingMessage<'_>],
    flags: u32,
    done: &mut usize,
    what: &str,
) -> Result<(), Error> {
    let keys = match raw_keys {
        Some(k) => Some(
            k.iter()
                .enumerate()
                // SAFETY: per the contract.
                .map(|(i, &k)| unsafe { opt_str_arg(k, &format!("routing_keys[{i}]")) })
                .collect::<Result<Vec<_>, _>>()?,
        ),
        None => None,
    };
    s.check_open(what)?;
    let send = |from: usize, w| {
        let keys = keys.as_ref().map(|k| &k[from..]);
        s.producer.send_batch(&msgs[from..], keys, w)
    };
    Ok(s.send_wait
        .send_all(no_block(flags), PARTITION, msgs.len(), done, send)?)
}

/// Sends what every partition producer has batched and waits until every accepted message has
/// its confirm (and, in callback mode, the callback for it has returned).
///
/// @param sp the super producer (borrowed).
/// @param timeout_ms negative = no limit; 0 = only send the partial batches and report whether
///        anything is still unconfirmed.
/// @return `RMQS_OK`; `RMQS_ERR_TIMEOUT` when messages were still unconfirmed after
///         `timeout_ms`; `RMQS_ERR_WOULD_DEADLOCK` from a library callback (timeout other than
///         0); `RMQS_ERR_INVALID_ARGUMENT` for a NULL handle.
///
/// Thread-safe; blocks up to `timeout_ms`.
///
/// @ingroup rmqs_producer
#[must_use]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_super_producer_flush(
    sp: *mut rmqs_super_producer,
    timeout_ms: i32,
    err: *mut *mut rmqs_error,
) -> rmqs_status {
    // SAFETY: sp checked.
    unsafe {
        ffi_status(err, || {
            let sp = &handle_arg(sp)?.inner;
            object::flush("rmqs_super_producer_flush", &**sp, timeout_ms, |t| {
                sp.producer.flush(t)
            })
        })
    }
}

/// Asks the broker for the super stream's partitions again, so that partitions added since
/// the super producer was created (or last refreshed) are used: they are never picked up
/// silently. From then on `hash` routing spreads keys over the new count (as with the other
/// clients, a key may then go to another partition than before), `key` routing looks keys up
/// again, partitions that disappeared have their producers closed (given 10 s for their
/// confirms), and the other partitions keep theirs with their new index. With `eager` the new
/// partitions' producers are created before this returns.
///
/// @param sp the super producer (borrowed).
/// @param count_out receives the number of partitions now, on success; may be NULL.
/// @param err optional error detail.
/// @return `RMQS_OK`; the broker's code (`RMQS_ERR_STREAM_DOES_NOT_EXIST` when the super
///         stream is gone); `RMQS_ERR_CLOSED`, `RMQS_ERR_TIMEOUT`, `RMQS_ERR_IO`;
///         `RMQS_ERR_WOULD_DEADLOCK` from a library callback.
///
/// Thread-safe; blocks for a round trip (plus the new producers with `eager`). Sends running
/// meanwhile use the partitions of the moment they started.
///
/// @ingroup rmqs_producer
#[must_use]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_super_producer_refresh(
    sp: *mut rmqs_super_producer,
    count_out: *mut usize,
    err: *mut *mut rmqs_error,
) -> rmqs_status {
    // SAFETY: sp checked; err NULL or writable.
    unsafe {
        ffi_status(err, || {
            let s = &handle_arg(sp)?.inner;
            let refresh = s.producer.refresh_partitions();
            object::refresh("rmqs_super_producer_refresh", &**s, 2, count_out, refresh)
        })
    }
}

/// The number of partitions the super producer routes to (as of its creation or last
/// refresh).
///
/// @param sp the super producer (borrowed).
/// @return the count; 0 for NULL.
///
/// Thread-safe; does not block.
///
/// @ingroup rmqs_producer
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_super_producer_partition_count(
    sp: *const rmqs_super_producer,
) -> usize {
    ffi_boundary(0, || {
        // SAFETY: NULL or live.
        unsafe { handle_arg(sp) }.map_or(0, |sp| sp.inner.producer.partition_count())
    })
}

/// The name (stream) of partition `index`: indices are those of confirms and routing
/// callbacks, in the broker's order (`<super-stream>-0`, `-1`, ... for a super stream created
/// with a partition count).
///
/// @param sp the super producer (borrowed).
/// @param index 0 to `rmqs_super_producer_partition_count() - 1`.
/// @return a NUL-terminated string owned by the super producer, valid until it is freed (also
///         across refreshes); NULL for an index out of range or a NULL handle.
///
/// Thread-safe; does not block (callable from routing and confirm callbacks).
///
/// @ingroup rmqs_producer
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_super_producer_partition(
    sp: *const rmqs_super_producer,
    index: usize,
) -> *const c_char {
    ffi_boundary(std::ptr::null(), || {
        // SAFETY: NULL or live.
        let Ok(sp) = (unsafe { handle_arg(sp) }) else {
            return std::ptr::null();
        };
        sp.inner.names.get(sp.inner.producer.partitions(), index)
    })
}

/// Counters summed over the partition producers alive now (those of partitions removed by a
/// refresh, or replaced after they were lost, no longer count). Extensible like
/// `rmqs_connection_statistics` (set `size` first).
///
/// @param sp the super producer (borrowed).
/// @param out receives the counters.
/// @return `RMQS_OK`; `RMQS_ERR_INVALID_ARGUMENT` (NULL handle or `out`, `size` not set).
///
/// Thread-safe; does not block.
///
/// @ingroup rmqs_producer
#[must_use]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_super_producer_stats(
    sp: *const rmqs_super_producer,
    out: *mut rmqs_producer_statistics,
    err: *mut *mut rmqs_error,
) -> rmqs_status {
    // SAFETY: sp checked; out NULL or as documented.
    unsafe {
        ffi_status(err, || {
            let s = handle_arg(sp)?.inner.producer.stats();
            write_extensible(
                out,
                "rmqs_producer_statistics",
                rmqs_producer_statistics::from(s),
            )
        })
    }
}

/// Closes the super producer: no more sends (`RMQS_ERR_CLOSED`), and every partition producer
/// is closed as `rmqs_producer_close()` (concurrently, each given `timeout_ms`): batched
/// messages go out, outstanding confirms are awaited, those still missing then complete with
/// `RMQS_ERR_CLOSED`. Then an `RMQS_EVENT_STATE` (`RMQS_STATE_CLOSED`) event goes to the
/// queue. Closing again returns `RMQS_OK`.
///
/// @param sp the super producer (borrowed; still to be freed).
/// @param timeout_ms negative = no limit; 0 = close in the background and return at once.
/// @return `RMQS_OK`; `RMQS_ERR_TIMEOUT` when confirms were missing at the deadline (closed all
///         the same); `RMQS_ERR_WOULD_DEADLOCK` from a library callback with a timeout other
///         than 0.
///
/// Thread-safe; blocks up to `timeout_ms` plus a round trip.
///
/// @ingroup rmqs_producer
#[must_use]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_super_producer_close(
    sp: *mut rmqs_super_producer,
    timeout_ms: i32,
    err: *mut *mut rmqs_error,
) -> rmqs_status {
    // SAFETY: sp checked.
    unsafe { ffi_status(err, || object::close(&handle_arg(sp)?.inner, timeout_ms)) }
}

/// Frees a super producer, closing it first if needed (waiting up to 5 s for confirms), then
/// waiting for its last confirm callback and for `user_data_free` (run on a dispatcher thread)
/// (and, unless a config still holds them, the routing callback's and key extractor's). NULL is
/// allowed.
///
/// @param sp the super producer (ownership passes to the library), or NULL.
///
/// Blocks while closing. Called from a library callback, the work moves to a background
/// thread and the call returns at once.
///
/// @ingroup rmqs_producer
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_super_producer_free(sp: *mut rmqs_super_producer) {
    // SAFETY: NULL or live, freed once (the caller's contract).
    ffi_boundary((), || unsafe { object::free(sp) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ffi::hooks::register;
    use std::sync::atomic::{AtomicUsize, Ordering};

    static FREES: AtomicUsize = AtomicUsize::new(0);

    unsafe extern "C" fn free_ud(ud: *mut c_void) {
        assert_eq!(ud as usize, 5);
        FREES.fetch_add(1, Ordering::SeqCst);
    }

    /// Writes the body as the key; "none" has no key; "long" needs more room.
    unsafe extern "C" fn extract(
        _ud: *mut c_void,
        _msg: *const rmqs_message_builder,
        body: *const u8,
        len: usize,
        _tag: usize,
        key: *mut c_char,
        cap: usize,
    ) -> isize {
        let b = unsafe { std::slice::from_raw_parts(body, len) };
        if b == b"none" {
            return -1;
        }
        let k: Vec<u8> = if b == b"long" {
            vec![b'x'; 1000]
        } else {
            b.to_vec()
        };
        if k.len() <= cap {
            unsafe { std::ptr::copy_nonoverlapping(k.as_ptr(), key.cast(), k.len()) };
        }
        k.len() as isize
    }

    #[test]
    fn key_extractor_results() {
        let reg = register(Some(extract as KeyFn), std::ptr::null_mut(), None).unwrap();
        let mut buf = String::new();
        let mut key = |body: &[u8]| {
            extract_key(&reg, &OutgoingMessage::new(body), &mut buf).map(|k| k.map(str::to_string))
        };
        assert_eq!(key(b"hello1").unwrap().as_deref(), Some("hello1"));
        assert_eq!(key(b"").unwrap().as_deref(), Some(""));
        assert_eq!(key(b"none").unwrap(), None);
        assert_eq!(key(b"long").unwrap().unwrap().len(), 1000);
        let e = key(b"\xff").unwrap_err();
        assert!(e.to_string().contains("UTF-8"), "{e}");
        // the buffer is reused
        assert_eq!(key(b"again").unwrap().as_deref(), Some("again"));
    }

    unsafe extern "C" fn route_cb(
        _ud: *mut c_void,
        _msg: *const rmqs_message_builder,
        body: *const u8,
        len: usize,
        key: *const c_char,
        key_len: usize,
        tag: usize,
        n: usize,
        out: *mut u32,
    ) -> usize {
        let b = unsafe { std::slice::from_raw_parts(body, len) };
        let k = unsafe { std::ffi::CStr::from_ptr(key) }.to_bytes();
        assert_eq!(k.len(), key_len);
        match k {
            b"all" => {
                for i in 0..n {
                    unsafe { out.add(i).write(i as u32) };
                }
                n
            }
            b"none" => 0,
            b"too-many" => n + 1,
            _ => {
                unsafe { out.write(((tag + b.len()) % n) as u32) };
                1
            }
        }
    }

    #[test]
    fn routing_callback_feeds_the_core() {
        let reg = register(Some(route_cb as RoutingFn), 5 as *mut c_void, Some(free_ud));
        let Routing::Custom(f) = c_routing(reg.unwrap()) else {
            panic!("not custom")
        };
        let parts: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        let run = |key: &str, tag: usize| {
            let mut out = Vec::new();
            f(&OutgoingMessage::new(b"xy").tag(tag), key, &parts, &mut out);
            out
        };
        assert_eq!(run("k", 0), vec![2]);
        assert_eq!(run("k", 1), vec![0]);
        assert_eq!(run("", 2), vec![1]);
        assert_eq!(run("all", 0), vec![0, 1, 2]);
        assert_eq!(run("none", 0), Vec::<usize>::new());
        assert_eq!(run("too-many", 0), vec![usize::MAX]);
        let before = FREES.load(Ordering::SeqCst);
        drop(f);
        assert_eq!(FREES.load(Ordering::SeqCst), before + 1);
    }

    #[test]
    fn config_keys() {
        let cb = Callbacks::default();
        let mut s = Settings::default();
        s.set("routing", "key").unwrap();
        s.set("eager", "true").unwrap();
        s.set("name", "app").unwrap();
        s.set("batch_size", "7").unwrap();
        let p = super_producer_config(&s, &cb).unwrap();
        assert!(matches!(p.config.routing, Routing::Key));
        assert!(p.config.eager);
        assert_eq!(p.config.name.as_deref(), Some("app"));
        assert_eq!(p.config.producer.batch_size, 7);
        assert!(p.config.key_extractor.is_none());

        let mut s = Settings::default();
        s.set("offset", "first").unwrap();
        let e = super_producer_config(&s, &cb).unwrap_err().message;
        assert!(e.contains("not to a super producer"), "{e}");
        let mut s = Settings::default();
        s.set("added_partition_offset", "first").unwrap();
        let e = super_producer_config(&s, &cb).unwrap_err().message;
        assert!(e.contains("applies to a super consumer"), "{e}");

        let with_routing = Callbacks {
            routing: register(Some(route_cb as RoutingFn), std::ptr::null_mut(), None),
            key: None,
        };
        let p = super_producer_config(&Settings::default(), &with_routing).unwrap();
        assert!(matches!(p.config.routing, Routing::Custom(_)));
        let mut s = Settings::default();
        s.set("routing", "hash").unwrap();
        let e = super_producer_config(&s, &with_routing)
            .unwrap_err()
            .message;
        assert!(e.contains("routing callback"), "{e}");
    }
}
