/*
 * rmqstream: a RabbitMQ Streams client, C API.
 * SPDX-License-Identifier: Apache-2.0 OR MIT
 *
 * Conventions
 *
 * - Status: fallible functions return rmqs_status (int32_t): RMQS_OK (0) on success, a positive
 *   RabbitMQ stream protocol response code when the broker refused the request, a negative
 *   RMQS_ERR_* when the library detected the error. rmqs_status_str() and rmqs_status_name()
 *   describe any value.
 * - Error detail: every function that returns an rmqs_status takes an optional last argument
 *   rmqs_error **err (only the accessors rmqs_error_status() and rmqs_event_status(), which
 *   read a status, do not). When it is not NULL and the call fails, *err receives a new
 *   rmqs_error (status and message) that the caller frees with rmqs_error_free(); on success
 *   *err is not touched. There is no thread-local "last error". Every such function is
 *   RMQS_MUST_USE: ignoring its status is a compiler warning.
 * - Extensible structs: structs the library may append fields to carry their size (the
 *   *_statistics structs: set `size` first) or come in arrays with a stride (confirms: index
 *   them with RMQS_AT()). The others are fixed for this ABI (SONAME librmqstream.so.0).
 * - Outputs are written only on success. Byte inputs are (const uint8_t *, size_t) pairs whose
 *   pointer may be NULL only when the length is 0. Strings are NUL-terminated UTF-8.
 *   Enum-like inputs are int32_t and are validated (RMQS_ERR_INVALID_ARGUMENT).
 * - Ownership: pointers passed in are borrowed for the duration of the call unless a function
 *   says otherwise. Strings returned as const char * are owned by the library or by the object
 *   they came from (each function says which and for how long); never free them.
 * - Objects are created by *_new / *_open, released by *_free (NULL-safe, exactly once).
 * - Panics inside the library never cross this API: they become RMQS_ERR_PANIC. They are not
 *   printed to stderr: the library's panic hook (installed on first use, once; other panics go
 *   to the hook that was there before) logs them to the log callback (rmqs_config_set_log_cb).
 * - Only symbols named rmqs_* are exported.
 *
 * Threading
 *
 * - rmqs_connection, rmqs_producer, rmqs_consumer and rmqs_queue are thread-safe: any function
 *   may be called from any thread at the same time, except their *_free, which must be the last
 *   call. rmqs_config, rmqs_message_builder, rmqs_event and rmqs_error are not thread-safe but
 *   may move between threads. Chunk and message views are immutable and may be read from
 *   several threads.
 * - Each connection owns a Tokio runtime (threads named rmqs-rt: config key runtime_threads,
 *   default 1). Confirm, chunk, state and consumer-update callbacks run on the connection's
 *   dispatcher threads (rmqs-dispatch): a fixed number (config key dispatch_threads, default
 *   2) shared by all its producers and consumers, started with the first one that has a
 *   callback. One object's callbacks run in order and never concurrently (a consumer's chunks
 *   in stream order); a callback that takes long holds one thread, and the other objects'
 *   callbacks run on the others. Four kinds of callback do run elsewhere, and must be quick
 *   and must not block: the post-filter (rmqs_post_filter_cb) runs on an rmqs-rt thread as
 *   chunks arrive (with the default runtime_threads 1, a slow one delays every frame of the
 *   connection); the log callback (rmqs_log_cb) on whichever thread logs, rmqs-rt threads
 *   included; the tracking callback (rmqs_tracking_cb) on the thread that releases a chunk
 *   (rmqs-rt for chunks the post-filter emptied); the routing and key-extractor functions of a
 *   super producer on the thread that sends. Each callback type's documentation names its
 *   threads.
 * - user_data_free (rmqs_free_cb) runs exactly once, after the last call of its callback: for
 *   the callbacks of a producer or consumer (*_new), on a dispatcher thread after its last
 *   callback (*_free waits for that, unless called from a callback: it then returns at once);
 *   for callbacks set on a config (rmqs_config_set_*_cb), on the thread of the call that drops
 *   the last reference (rmqs_config_free, a replacing rmqs_config_set_*_cb, or the *_free of
 *   the last object made with the config; a background thread when that *_free runs from a
 *   callback).
 * - Instead of callbacks, events can go to an rmqs_queue that the application polls on its own
 *   threads (rmqs_queue_poll, rmqs_queue_poll_batch, rmqs_queue_wakeup, rmqs_queue_fd).
 * - A call that would wait (open, *_new, flush, close with a timeout, management calls, a send
 *   on a full producer, a poll with a timeout) made from a callback returns
 *   RMQS_ERR_WOULD_DEADLOCK instead of blocking. *_free called from a callback completes on a
 *   background thread.
 * - Timeouts are int32_t milliseconds: negative = no limit, 0 = do not wait.
 *
 * Ownership summary: configs are copied by the calls that use them; message bodies and message
 * builders are copied on send (a builder can be reset and reused as soon as the send returns);
 * chunks lent to a callback or an event are valid until it returns / the event is freed unless
 * retained (rmqs_chunk_retain / rmqs_chunk_release; the last release gives the
 * credit back); strings and bytes returned by accessors belong to the object they came from.
 * Shut down in this order: free producers and consumers (or let rmqs_connection_close close
 * them), then the connection, then queues; release retained chunks at any time.
 *
 * Map: every declaration below belongs to one Doxygen group (its @ingroup line).
 *
 * - rmqs_connection  Connections: rmqs_connection_open / _open_uri, close, free, the agreed
 *                    frame size and heartbeat, the broker's version and features, counters.
 * - rmqs_management  Streams and super streams: create, delete, exists, statistics,
 *                    metadata, partitions, routing; stored offsets and producer sequences.
 * - rmqs_producer    Producers and super producers: create, send (bodies, batches, built
 *                    messages), flush, close, counters; confirms; routing and key extraction.
 * - rmqs_consumer    Consumers and super consumers: create, credit, offsets, single active
 *                    consumer, filtering, tracking, counters.
 * - rmqs_messages    Chunks and the messages in them, typed AMQP 1.0 values, the message
 *                    builder.
 * - rmqs_events      The event queue (rmqs_queue_*), events (rmqs_event_*), state changes.
 * - rmqs_config      Configuration (rmqs_config_*; docs/CONFIGURATION.md lists every key), the
 *                    log callback.
 * - rmqs_errors      Statuses (rmqs_status_code), rmqs_error, the library version.
 */

/** @defgroup rmqs_connection Connections */
/** @defgroup rmqs_management Streams and super streams */
/** @defgroup rmqs_producer Producers and super producers */
/** @defgroup rmqs_consumer Consumers and super consumers */
/** @defgroup rmqs_messages Chunks, messages, values and the message builder */
/** @defgroup rmqs_events The event queue, events and state changes */
/** @defgroup rmqs_config Configuration and logging */
/** @defgroup rmqs_errors Statuses, errors and the version */

#ifndef RMQSTREAM_H
#define RMQSTREAM_H

/* Generated with cbindgen:0.29.4 */

/* Generated by cbindgen from src/ffi/ -- do not edit; run scripts/gen-header. */

#include <stdint.h>
#include <stddef.h>
#include <stdbool.h>

/**
 * Marks every function that returns an rmqs_status: its result must not be ignored. In C++17
 * and later it is [[nodiscard]] (a cast to void silences it); in C with GCC or Clang it is
 * warn_unused_result, which GCC does not let a cast to void silence: test the result.
 * Define RMQS_MUST_USE (empty) before including this header to turn it off.
 */
#if !defined(RMQS_MUST_USE)
#  if defined(__cplusplus) && __cplusplus >= 201703L
#    define RMQS_MUST_USE [[nodiscard]]
#  elif defined(__GNUC__) || defined(__clang__)
#    define RMQS_MUST_USE __attribute__((warn_unused_result))
#  else
#    define RMQS_MUST_USE
#  endif
#endif

/** Marks deprecated functions; the argument explains what to use instead. */
#if !defined(RMQS_DEPRECATED)
#  if defined(__GNUC__) || defined(__clang__)
#    define RMQS_DEPRECATED(note) __attribute__((deprecated(note)))
#  else
#    define RMQS_DEPRECATED(note)
#  endif
#endif

/**
 * The element at index i of an array the library hands out with its stride (the confirms of
 * rmqs_event_confirms(), rmqs_event_super_confirms() and the confirm callbacks). Fields may be
 * appended to those structs in later versions, so index with the stride, never with sizeof:
 *   for (size_t i = 0; i < count; i++) {
 *       const rmqs_confirm *c = RMQS_AT(rmqs_confirm, confirms, stride, i);
 *   }
 */
#define RMQS_AT(type, base, stride, i) \
    ((const type *)(const void *)((const char *)(base) + (size_t)(i) * (size_t)(stride)))

/**
 * Major version of the header (compile time). Compare with `rmqs_version_number()`.
 *
 * @ingroup rmqs_errors
 */
#define RMQS_VERSION_MAJOR 0

/**
 * Minor version of the header (compile time).
 *
 * @ingroup rmqs_errors
 */
#define RMQS_VERSION_MINOR 1

/**
 * Patch version of the header (compile time).
 *
 * @ingroup rmqs_errors
 */
#define RMQS_VERSION_PATCH 0

/**
 * The header's version as one number, `(MAJOR << 24) | (MINOR << 16) | (PATCH << 8)`, e.g.
 * `0x00010000` for 0.1.0. The low byte is reserved (0). Use in `#if RMQS_VERSION_NUMBER >= ...`.
 *
 * @ingroup rmqs_errors
 */
#define RMQS_VERSION_NUMBER (((RMQS_VERSION_MAJOR << 24) | (RMQS_VERSION_MINOR << 16)) | (RMQS_VERSION_PATCH << 8))

/**
 * Log level: something failed (a connection was lost, no seed host answered).
 *
 * @ingroup rmqs_config
 */
#define RMQS_LOG_ERROR 1

/**
 * Log level: something went wrong and was handled (a seed host refused, the broker closed the
 * connection, a stream became unavailable).
 *
 * @ingroup rmqs_config
 */
#define RMQS_LOG_WARN 2

/**
 * Log level: life-cycle events (connection opened with the broker's version, closed).
 *
 * @ingroup rmqs_config
 */
#define RMQS_LOG_INFO 3

/**
 * Log level: details (connection attempts, publisher and subscription registrations, skipped
 * frames).
 *
 * @ingroup rmqs_config
 */
#define RMQS_LOG_DEBUG 4

/**
 * Log level: every frame received; costly.
 *
 * @ingroup rmqs_config
 */
#define RMQS_LOG_TRACE 5

/**
 * Send flag: store the body as it is, not wrapped in an AMQP 1.0 message (a data section).
 * Consumers of this library see the same bytes either way; other clients and AMQP consumers
 * only decode AMQP-wrapped bodies.
 *
 * @ingroup rmqs_producer
 */
#define RMQS_SEND_RAW 1

/**
 * Send flag: fail with `RMQS_ERR_QUEUE_FULL` instead of waiting when `max_in_flight` messages
 * are unconfirmed.
 *
 * @ingroup rmqs_producer
 */
#define RMQS_SEND_NO_BLOCK 2

/**
 * Send flag (`rmqs_producer_send_ex()` only): use the given publishing id instead of the next
 * one.
 *
 * @ingroup rmqs_producer
 */
#define RMQS_SEND_PUBLISHING_ID 4

/**
 * Which kind of object an event comes from (`rmqs_event_source()`).
 *
 * @ingroup rmqs_events
 */
enum rmqs_event_source_code
#if defined(__cplusplus) || __STDC_VERSION__ >= 202311L
  : int32_t
#endif // defined(__cplusplus) || __STDC_VERSION__ >= 202311L
 {
    /**
     * An `rmqs_producer`.
     */
    RMQS_SOURCE_PRODUCER = 1,
    /**
     * An `rmqs_consumer`.
     */
    RMQS_SOURCE_CONSUMER = 2,
    /**
     * An `rmqs_super_producer`.
     */
    RMQS_SOURCE_SUPER_PRODUCER = 3,
    /**
     * An `rmqs_super_consumer`.
     */
    RMQS_SOURCE_SUPER_CONSUMER = 4,
};
#ifndef __cplusplus
#if __STDC_VERSION__ >= 202311L
typedef enum rmqs_event_source_code rmqs_event_source_code;
#else
typedef int32_t rmqs_event_source_code;
#endif // __STDC_VERSION__ >= 202311L
#endif // __cplusplus

/**
 * States reported by `RMQS_EVENT_STATE` events (`rmqs_event_state()`).
 *
 * @ingroup rmqs_events
 */
enum rmqs_state_code
#if defined(__cplusplus) || __STDC_VERSION__ >= 202311L
  : int32_t
#endif // defined(__cplusplus) || __STDC_VERSION__ >= 202311L
 {
    /**
     * The object is closed for good: closed by the application (status `RMQS_OK`), or, for
     * consumers, its stream or connection was lost (the status and message say why). Its last
     * event.
     *
     * Closed not by the application: the stream was deleted (`RMQS_ERR_STREAM_DOES_NOT_EXIST`),
     * recovery is off (key `recovery`) or ran out of attempts (`recovery_attempts`; the last
     * attempt's error), or the connection was closed.
     */
    RMQS_STATE_CLOSED = 1,
    /**
     * The object lost its connection or its stream's leader (or replica) and is recovering;
     * the status and message give the cause. Producers keep accepting sends within
     * `max_in_flight` (they wait, or fail with `RMQS_ERR_QUEUE_FULL` when told not to block)
     * and send them once recovered; consumers receive nothing meanwhile.
     */
    RMQS_STATE_RECOVERING = 2,
    /**
     * Back after `RMQS_STATE_RECOVERING`: a producer declared again on the stream's leader and
     * sent again, with their original publishing ids, the messages still unconfirmed; a
     * consumer subscribed again right after the last offset it delivered.
     */
    RMQS_STATE_RECOVERED = 3,
};
#ifndef __cplusplus
#if __STDC_VERSION__ >= 202311L
typedef enum rmqs_state_code rmqs_state_code;
#else
typedef int32_t rmqs_state_code;
#endif // __STDC_VERSION__ >= 202311L
#endif // __cplusplus

/**
 * The values of `rmqs_status`.
 *
 * Functions return and accept `rmqs_status` (`int32_t`), never this enum type, so that codes added
 * by later versions (of the broker or of this library) are not undefined values in C++ or Rust.
 *
 * @ingroup rmqs_errors
 */
enum rmqs_status_code
#if defined(__cplusplus) || __STDC_VERSION__ >= 202311L
  : int32_t
#endif // defined(__cplusplus) || __STDC_VERSION__ >= 202311L
 {
    /**
     * Success.
     */
    RMQS_OK = 0,
    /**
     * Broker: the stream does not exist (protocol code 0x02).
     */
    RMQS_ERR_STREAM_DOES_NOT_EXIST = 2,
    /**
     * Broker: the subscription id is already in use on this connection (0x03).
     */
    RMQS_ERR_SUBSCRIPTION_ID_ALREADY_EXISTS = 3,
    /**
     * Broker: no subscription with this id on this connection (0x04).
     */
    RMQS_ERR_SUBSCRIPTION_ID_DOES_NOT_EXIST = 4,
    /**
     * Broker: the stream already exists (0x05), whatever its arguments.
     */
    RMQS_ERR_STREAM_ALREADY_EXISTS = 5,
    /**
     * Broker: the stream is not available now, e.g. its leader is down (0x06).
     */
    RMQS_ERR_STREAM_NOT_AVAILABLE = 6,
    /**
     * Broker: the SASL mechanism is not supported (0x07).
     */
    RMQS_ERR_SASL_MECHANISM_NOT_SUPPORTED = 7,
    /**
     * Broker: authentication failed (0x08).
     */
    RMQS_ERR_AUTHENTICATION_FAILURE = 8,
    /**
     * Broker: SASL error (0x09).
     */
    RMQS_ERR_SASL_ERROR = 9,
    /**
     * Broker: SASL challenge (0x0a).
     */
    RMQS_ERR_SASL_CHALLENGE = 10,
    /**
     * Broker: this user may only connect from localhost (0x0b).
     */
    RMQS_ERR_SASL_AUTHENTICATION_FAILURE_LOOPBACK = 11,
    /**
     * Broker: access to the virtual host refused, or a vhost/connection limit reached (0x0c).
     */
    RMQS_ERR_VIRTUAL_HOST_ACCESS_FAILURE = 12,
    /**
     * Broker: unknown frame (0x0d).
     */
    RMQS_ERR_UNKNOWN_FRAME = 13,
    /**
     * Broker: frame too large (0x0e).
     */
    RMQS_ERR_FRAME_TOO_LARGE = 14,
    /**
     * Broker: internal error (0x0f).
     */
    RMQS_ERR_INTERNAL_ERROR = 15,
    /**
     * Broker: access refused, missing permissions (0x10).
     */
    RMQS_ERR_ACCESS_REFUSED = 16,
    /**
     * Broker: precondition failed (0x11).
     */
    RMQS_ERR_PRECONDITION_FAILED = 17,
    /**
     * Broker: the publisher does not exist (0x12).
     */
    RMQS_ERR_PUBLISHER_DOES_NOT_EXIST = 18,
    /**
     * Broker: no offset stored for this reference (0x13).
     */
    RMQS_ERR_NO_OFFSET = 19,
    /**
     * Broker: the SASL mechanism cannot change on re-authentication (0x14).
     */
    RMQS_ERR_SASL_CANNOT_CHANGE_MECHANISM = 20,
    /**
     * Broker: the user name cannot change on re-authentication (0x15).
     */
    RMQS_ERR_SASL_CANNOT_CHANGE_USERNAME = 21,
    /**
     * Local: an argument is invalid (NULL where not allowed, out of range, not UTF-8, ...).
     */
    RMQS_ERR_INVALID_ARGUMENT = -1,
    /**
     * Local: the operation did not complete within its timeout.
     */
    RMQS_ERR_TIMEOUT = -2,
    /**
     * Local: the object or its connection is closed.
     */
    RMQS_ERR_CLOSED = -3,
    /**
     * Local: the broker (or this build) does not support the operation.
     */
    RMQS_ERR_UNSUPPORTED = -4,
    /**
     * Local: too many unconfirmed messages, and the caller asked not to block.
     */
    RMQS_ERR_QUEUE_FULL = -5,
    /**
     * Local: TLS error (handshake, certificate or host name verification).
     */
    RMQS_ERR_TLS = -6,
    /**
     * Local: I/O error (connect, read, write, connection lost).
     */
    RMQS_ERR_IO = -7,
    /**
     * Local: the peer violated the stream protocol (malformed or unexpected frame).
     */
    RMQS_ERR_PROTOCOL = -8,
    /**
     * Local: a blocking call was made from a library callback thread, where it would deadlock.
     */
    RMQS_ERR_WOULD_DEADLOCK = -9,
    /**
     * Local: the library panicked (a bug); the object involved is marked failed.
     */
    RMQS_ERR_PANIC = -10,
    /**
     * Local: the object failed earlier (e.g. after a panic) and cannot be used any more; free it.
     */
    RMQS_ERR_FATAL = -11,
    /**
     * Local: a flush or close found that some messages completed without a confirm (refused,
     * timed out, or closed): their outcomes in the confirms say which.
     */
    RMQS_ERR_NOT_CONFIRMED = -12,
};
#ifndef __cplusplus
#if __STDC_VERSION__ >= 202311L
typedef enum rmqs_status_code rmqs_status_code;
#else
typedef int32_t rmqs_status_code;
#endif // __STDC_VERSION__ >= 202311L
#endif // __cplusplus

/**
 * Kinds of event (`rmqs_event_type()`).
 *
 * @ingroup rmqs_events
 */
enum rmqs_event_type_code
#if defined(__cplusplus) || __STDC_VERSION__ >= 202311L
  : int32_t
#endif // defined(__cplusplus) || __STDC_VERSION__ >= 202311L
 {
    /**
     * A chunk delivered to a consumer: `rmqs_event_chunk()`.
     */
    RMQS_EVENT_CHUNK = 1,
    /**
     * Outcomes of messages sent by a producer: `rmqs_event_confirms()`.
     */
    RMQS_EVENT_CONFIRMS = 2,
    /**
     * The producer or consumer changed state: `rmqs_event_state()`, with the reason in
     * `rmqs_event_status()` / `rmqs_event_message()`.
     */
    RMQS_EVENT_STATE = 3,
    /**
     * A non-fatal error (e.g. a chunk failing its CRC check): `rmqs_event_status()`,
     * `rmqs_event_message()`.
     */
    RMQS_EVENT_ERROR = 4,
    /**
     * Outcomes of messages sent by a super producer: `rmqs_event_super_confirms()`.
     */
    RMQS_EVENT_SUPER_CONFIRMS = 5,
    /**
     * A single active consumer is activated or steps down: `rmqs_event_consumer_update()`,
     * answered with `rmqs_event_consumer_update_reply()` (or with the default when the event
     * is freed unanswered).
     */
    RMQS_EVENT_CONSUMER_UPDATE = 6,
};
#ifndef __cplusplus
#if __STDC_VERSION__ >= 202311L
typedef enum rmqs_event_type_code rmqs_event_type_code;
#else
typedef int32_t rmqs_event_type_code;
#endif // __STDC_VERSION__ >= 202311L
#endif // __cplusplus

/**
 * Fields of the AMQP 1.0 properties section (`rmqs_message_property()`).
 *
 * @ingroup rmqs_messages
 */
enum rmqs_property_code
#if defined(__cplusplus) || __STDC_VERSION__ >= 202311L
  : int32_t
#endif // defined(__cplusplus) || __STDC_VERSION__ >= 202311L
 {
    RMQS_PROP_MESSAGE_ID = 1,
    RMQS_PROP_USER_ID = 2,
    RMQS_PROP_TO = 3,
    RMQS_PROP_SUBJECT = 4,
    RMQS_PROP_REPLY_TO = 5,
    RMQS_PROP_CORRELATION_ID = 6,
    RMQS_PROP_CONTENT_TYPE = 7,
    RMQS_PROP_CONTENT_ENCODING = 8,
    RMQS_PROP_ABSOLUTE_EXPIRY_TIME = 9,
    RMQS_PROP_CREATION_TIME = 10,
    RMQS_PROP_GROUP_ID = 11,
    RMQS_PROP_GROUP_SEQUENCE = 12,
    RMQS_PROP_REPLY_TO_GROUP_ID = 13,
};
#ifndef __cplusplus
#if __STDC_VERSION__ >= 202311L
typedef enum rmqs_property_code rmqs_property_code;
#else
typedef int32_t rmqs_property_code;
#endif // __STDC_VERSION__ >= 202311L
#endif // __cplusplus

/**
 * Offset types of `rmqs_offset_spec` (the stream protocol's, plus "default").
 *
 * @ingroup rmqs_consumer
 */
enum rmqs_offset_type_code
#if defined(__cplusplus) || __STDC_VERSION__ >= 202311L
  : int32_t
#endif // defined(__cplusplus) || __STDC_VERSION__ >= 202311L
 {
    /**
     * Whatever the library would choose by itself (in a consumer-update answer: right after
     * the stored offset, else the consumer's `offset` key). `value` is ignored.
     */
    RMQS_OFFSET_DEFAULT = 0,
    /**
     * The first offset still in the stream.
     */
    RMQS_OFFSET_FIRST = 1,
    /**
     * The first offset of the last chunk.
     */
    RMQS_OFFSET_LAST = 2,
    /**
     * The next offset written.
     */
    RMQS_OFFSET_NEXT = 3,
    /**
     * The absolute offset `value` (0 or more).
     */
    RMQS_OFFSET_OFFSET = 4,
    /**
     * The first chunk written at or after `value` (ms since the Unix epoch).
     */
    RMQS_OFFSET_TIMESTAMP = 5,
};
#ifndef __cplusplus
#if __STDC_VERSION__ >= 202311L
typedef enum rmqs_offset_type_code rmqs_offset_type_code;
#else
typedef int32_t rmqs_offset_type_code;
#endif // __STDC_VERSION__ >= 202311L
#endif // __cplusplus

/**
 * The type of an `rmqs_value`: which of its fields holds the value.
 *
 * @ingroup rmqs_messages
 */
enum rmqs_value_type_code
#if defined(__cplusplus) || __STDC_VERSION__ >= 202311L
  : int32_t
#endif // defined(__cplusplus) || __STDC_VERSION__ >= 202311L
 {
    /**
     * `null`: no field.
     */
    RMQS_VALUE_NULL = 0,
    /**
     * `boolean`: `bool_value`.
     */
    RMQS_VALUE_BOOL = 1,
    /**
     * `ubyte` (8-bit unsigned): `uint_value`.
     */
    RMQS_VALUE_UBYTE = 2,
    /**
     * `ushort` (16-bit unsigned): `uint_value`.
     */
    RMQS_VALUE_USHORT = 3,
    /**
     * `uint` (32-bit unsigned): `uint_value`.
     */
    RMQS_VALUE_UINT = 4,
    /**
     * `ulong` (64-bit unsigned): `uint_value`.
     */
    RMQS_VALUE_ULONG = 5,
    /**
     * `byte` (8-bit signed): `int_value`.
     */
    RMQS_VALUE_BYTE = 6,
    /**
     * `short` (16-bit signed): `int_value`.
     */
    RMQS_VALUE_SHORT = 7,
    /**
     * `int` (32-bit signed): `int_value`.
     */
    RMQS_VALUE_INT = 8,
    /**
     * `long` (64-bit signed): `int_value`.
     */
    RMQS_VALUE_LONG = 9,
    /**
     * `float` (IEEE 754 binary32): `float_value` (a double holding it exactly).
     */
    RMQS_VALUE_FLOAT = 10,
    /**
     * `double` (IEEE 754 binary64): `float_value`.
     */
    RMQS_VALUE_DOUBLE = 11,
    /**
     * `timestamp`, ms since the Unix epoch (may be negative): `int_value`.
     */
    RMQS_VALUE_TIMESTAMP = 12,
    /**
     * `uuid`: the 16 bytes of `uuid`, in network order.
     */
    RMQS_VALUE_UUID = 13,
    /**
     * `string` (UTF-8): `data`, `len` (not NUL-terminated).
     */
    RMQS_VALUE_STRING = 14,
    /**
     * `symbol` (ASCII by the spec): `data`, `len`.
     */
    RMQS_VALUE_SYMBOL = 15,
    /**
     * `binary`: `data`, `len`.
     */
    RMQS_VALUE_BINARY = 16,
    /**
     * `char` (a Unicode scalar value): `uint_value`.
     */
    RMQS_VALUE_CHAR = 17,
    /**
     * `decimal32`: `data`, `len` = its 4 bytes (IEEE 754 decimal32, as on the wire).
     */
    RMQS_VALUE_DECIMAL32 = 18,
    /**
     * `decimal64`: `data`, `len` = its 8 bytes.
     */
    RMQS_VALUE_DECIMAL64 = 19,
    /**
     * `decimal128`: `data`, `len` = its 16 bytes.
     */
    RMQS_VALUE_DECIMAL128 = 20,
    /**
     * `list`: `data`, `len` = the encoded AMQP list; read it with `rmqs_value_count()` and
     * `rmqs_value_list_get()`.
     */
    RMQS_VALUE_LIST = 21,
    /**
     * `map`: `data`, `len` = the encoded AMQP map; read it with `rmqs_value_count()`,
     * `rmqs_value_map_entry()` and `rmqs_value_map_get()`.
     */
    RMQS_VALUE_MAP = 22,
    /**
     * `array`: `data`, `len` = the encoded AMQP array; read as a list.
     */
    RMQS_VALUE_ARRAY = 23,
    /**
     * A described value: `data`, `len` = its encoding; as a list of two, descriptor then
     * value.
     */
    RMQS_VALUE_DESCRIBED = 24,
};
#ifndef __cplusplus
#if __STDC_VERSION__ >= 202311L
typedef enum rmqs_value_type_code rmqs_value_type_code;
#else
typedef int32_t rmqs_value_type_code;
#endif // __STDC_VERSION__ >= 202311L
#endif // __cplusplus

/**
 * Fields of the AMQP 1.0 header section (`rmqs_message_builder_set_header()`,
 * `rmqs_message_header_value()`).
 *
 * @ingroup rmqs_messages
 */
enum rmqs_header_code
#if defined(__cplusplus) || __STDC_VERSION__ >= 202311L
  : int32_t
#endif // defined(__cplusplus) || __STDC_VERSION__ >= 202311L
 {
    /**
     * `durable`: boolean.
     */
    RMQS_HEADER_DURABLE = 1,
    /**
     * `priority`: ubyte.
     */
    RMQS_HEADER_PRIORITY = 2,
    /**
     * `ttl`, in ms: uint.
     */
    RMQS_HEADER_TTL = 3,
    /**
     * `first-acquirer`: boolean.
     */
    RMQS_HEADER_FIRST_ACQUIRER = 4,
    /**
     * `delivery-count`: uint.
     */
    RMQS_HEADER_DELIVERY_COUNT = 5,
};
#ifndef __cplusplus
#if __STDC_VERSION__ >= 202311L
typedef enum rmqs_header_code rmqs_header_code;
#else
typedef int32_t rmqs_header_code;
#endif // __STDC_VERSION__ >= 202311L
#endif // __cplusplus

/**
 * Sections of an AMQP 1.0 message, numbered by their descriptor codes
 * (`rmqs_message_section()`, `rmqs_message_builder_add_annotation()`).
 *
 * @ingroup rmqs_messages
 */
enum rmqs_section_code
#if defined(__cplusplus) || __STDC_VERSION__ >= 202311L
  : int32_t
#endif // defined(__cplusplus) || __STDC_VERSION__ >= 202311L
 {
    /**
     * Header (a list).
     */
    RMQS_SECTION_HEADER = 112,
    /**
     * Delivery annotations (a map, symbol keys).
     */
    RMQS_SECTION_DELIVERY_ANNOTATIONS = 113,
    /**
     * Message annotations (a map, symbol keys).
     */
    RMQS_SECTION_MESSAGE_ANNOTATIONS = 114,
    /**
     * Properties (a list).
     */
    RMQS_SECTION_PROPERTIES = 115,
    /**
     * Application properties (a map, string keys).
     */
    RMQS_SECTION_APPLICATION_PROPERTIES = 116,
    /**
     * Footer (a map, symbol keys).
     */
    RMQS_SECTION_FOOTER = 120,
};
#ifndef __cplusplus
#if __STDC_VERSION__ >= 202311L
typedef enum rmqs_section_code rmqs_section_code;
#else
typedef int32_t rmqs_section_code;
#endif // __STDC_VERSION__ >= 202311L
#endif // __cplusplus

/**
 * What the body of a received message is (`rmqs_message_body_type()`).
 *
 * @ingroup rmqs_messages
 */
enum rmqs_body_type_code
#if defined(__cplusplus) || __STDC_VERSION__ >= 202311L
  : int32_t
#endif // defined(__cplusplus) || __STDC_VERSION__ >= 202311L
 {
    /**
     * Not an AMQP 1.0 message (e.g. sent with `RMQS_SEND_RAW`): `rmqs_message_body()` is the
     * whole record.
     */
    RMQS_BODY_RAW = 0,
    /**
     * One or more data sections: `RMQS_VALUE_BINARY` each.
     */
    RMQS_BODY_DATA = 1,
    /**
     * One or more amqp-sequence sections: `RMQS_VALUE_LIST` each.
     */
    RMQS_BODY_SEQUENCE = 2,
    /**
     * One amqp-value section: any value.
     */
    RMQS_BODY_VALUE = 3,
    /**
     * An AMQP message without a body section.
     */
    RMQS_BODY_NONE = 4,
};
#ifndef __cplusplus
#if __STDC_VERSION__ >= 202311L
typedef enum rmqs_body_type_code rmqs_body_type_code;
#else
typedef int32_t rmqs_body_type_code;
#endif // __STDC_VERSION__ >= 202311L
#endif // __cplusplus

/**
 * One chunk delivered to a consumer: a zero-copy view of the Deliver frame's bytes. Opaque,
 * reference-counted, immutable.
 *
 * A chunk callback or an `RMQS_EVENT_CHUNK` event lends it: valid during the callback / until
 * the event is freed. `rmqs_chunk_retain()` keeps it longer, `rmqs_chunk_release()` gives each
 * retained reference back. When the last reference goes (the callback returned or the event
 * was freed, and every retain was released), the chunk's memory is freed and, with the
 * `on_release` credit policy, the broker gets one credit for another chunk: the chunks an
 * application holds bound the consumer's memory (at most `initial_credit` of them).
 *
 * Messages before the offset the consumer asked for (`offset:N` starts in the chunk that
 * contains N) are not visible.
 *
 * Thread safety: immutable; may be read from several threads at once and released from any
 * thread.
 *
 * @ingroup rmqs_messages
 */
typedef struct rmqs_chunk rmqs_chunk;

/**
 * Configuration key/value pairs. Opaque.
 *
 * Created by `rmqs_config_new()`, freed by `rmqs_config_free()`. The same type configures a
 * connection, a producer, a consumer or a stream's creation; functions that take one copy what
 * they need, so the caller may change or free it right after.
 *
 * Thread safety: not thread-safe; use from one thread at a time (it may move between threads).
 *
 * @ingroup rmqs_config
 */
typedef struct rmqs_config rmqs_config;

/**
 * A connection to a RabbitMQ node or cluster (what other clients call the environment). Opaque.
 *
 * It owns an internal Tokio runtime (threads named `rmqs-rt`: config key `runtime_threads`,
 * default 1), a locator connection to one of the seed hosts for management calls, and data
 * connections for producers and consumers, opened as needed (producers on the stream's
 * leader, consumers preferring a replica, several per TCP connection up to the configured
 * caps).
 *
 * Created by `rmqs_connection_open()`; closed by `rmqs_connection_close()`; freed by
 * `rmqs_connection_free()`.
 *
 * Thread safety: every function may be called from any thread concurrently, except
 * `rmqs_connection_free()`, which must be the last call.
 *
 * @ingroup rmqs_connection
 */
typedef struct rmqs_connection rmqs_connection;

/**
 * A consumer: a subscription to one stream. Opaque.
 *
 * Created by `rmqs_consumer_new()`, closed by `rmqs_consumer_close()`, freed by
 * `rmqs_consumer_free()`.
 *
 * Thread safety: every function may be called from any thread concurrently, except
 * `rmqs_consumer_free()`.
 *
 * @ingroup rmqs_consumer
 */
typedef struct rmqs_consumer rmqs_consumer;

/**
 * Detail of a failed call: its status and a message. Opaque.
 *
 * Created by the library, only on failure, through a call's optional `rmqs_error **err`
 * argument; owned by the caller, who frees it with `rmqs_error_free()`.
 *
 * Thread safety: an `rmqs_error` is immutable; it may be read from several threads at once and
 * moved between threads, but must not be freed while another thread reads it.
 *
 * @ingroup rmqs_errors
 */
typedef struct rmqs_error rmqs_error;

/**
 * One event from an `rmqs_queue`. Opaque.
 *
 * Returned by `rmqs_queue_poll()` / `rmqs_queue_poll_batch()`, owned by the caller, freed by
 * `rmqs_event_free()`. Views obtained from it (chunk, confirms, message) are valid until
 * then. Not thread-safe; may be moved between threads.
 *
 * @ingroup rmqs_events
 */
typedef struct rmqs_event rmqs_event;

/**
 * One message of a chunk. Opaque, immutable view owned by its chunk.
 *
 * Obtained from `rmqs_chunk_message()`; valid as long as the chunk is (never freed on its
 * own). Bytes and strings returned by its accessors are valid as long as the chunk too, and
 * are not NUL-terminated: use the returned length.
 *
 * Thread safety: may be read from several threads at once.
 *
 * @ingroup rmqs_messages
 */
typedef struct rmqs_message rmqs_message;

/**
 * An AMQP 1.0 message to publish, reusable: build it with the setters, send it with
 * `rmqs_producer_send_message()` (or the batch and super producer variants), then
 * `rmqs_message_builder_reset()` it and build the next one. Sends copy it into the producer's
 * frame; the builder is not referenced after the send returns. Opaque.
 *
 * Every value is encoded once, when it is set, into buffers the builder keeps across resets:
 * a loop that resets, sets and sends allocates nothing once the buffers fit its largest
 * message. For messages that differ only in their body, set the other sections once and send
 * each body with `rmqs_producer_send_message_body()` (`rmqs_super_producer_send_message_body()`
 * on a super stream), which leaves the builder as it is and costs about what
 * `rmqs_producer_send()` of the body does.
 *
 * Created by `rmqs_message_builder_new()`, freed by `rmqs_message_builder_free()`.
 *
 * Thread safety: not thread-safe; may move between threads. Sends only read it, so several
 * threads may send the same builder at once while nobody changes it.
 *
 * @ingroup rmqs_messages
 */
typedef struct rmqs_message_builder rmqs_message_builder;

/**
 * Where a stream lives: its leader and replicas. Opaque, immutable.
 *
 * Created by `rmqs_stream_metadata()`, freed by `rmqs_metadata_free()`. May be read
 * from several threads at once.
 *
 * @ingroup rmqs_management
 */
typedef struct rmqs_metadata rmqs_metadata;

/**
 * A producer: publishes to one stream, with confirms. Opaque.
 *
 * Created by `rmqs_producer_new()`, closed by `rmqs_producer_close()`, freed by
 * `rmqs_producer_free()`.
 *
 * Thread safety: every function may be called from any thread concurrently, except
 * `rmqs_producer_free()`. Sends from several threads are serialised (publishing ids are
 * assigned in the order the sends take the producer's lock).
 *
 * @ingroup rmqs_producer
 */
typedef struct rmqs_producer rmqs_producer;

/**
 * An event queue: producers and consumers created with it deliver their events here, and
 * the application takes them with `rmqs_queue_poll()` / `rmqs_queue_poll_batch()` on a
 * thread of its choice. Opaque.
 *
 * Several producers and consumers may share one queue; `rmqs_event_source_tag()` tells them
 * apart. Events of one producer or consumer keep their order.
 *
 * Thread safety: every function may be called from any thread concurrently, except
 * `rmqs_queue_free()`.
 *
 * @ingroup rmqs_events
 */
typedef struct rmqs_queue rmqs_queue;

/**
 * A list of strings returned by the library (super stream partitions, routes). Opaque,
 * immutable.
 *
 * Freed by `rmqs_strings_free()`. May be read from several threads at once.
 *
 * @ingroup rmqs_management
 */
typedef struct rmqs_strings rmqs_strings;

/**
 * A super stream consumer: one consumer per partition of a super stream, all with the same
 * settings and name. Opaque.
 *
 * Created by `rmqs_super_consumer_new()`, closed by `rmqs_super_consumer_close()`, freed by
 * `rmqs_super_consumer_free()`.
 *
 * Thread safety: every function may be called from any thread concurrently, except
 * `rmqs_super_consumer_free()`.
 *
 * @ingroup rmqs_consumer
 */
typedef struct rmqs_super_consumer rmqs_super_consumer;

/**
 * A super stream producer: routes each message to a partition of a super stream, with one
 * producer per partition (created lazily, by the first send routed to it, on that
 * partition's leader). Opaque.
 *
 * Created by `rmqs_super_producer_new()`, closed by `rmqs_super_producer_close()`, freed by
 * `rmqs_super_producer_free()`.
 *
 * Thread safety: every function may be called from any thread concurrently, except
 * `rmqs_super_producer_free()`.
 *
 * @ingroup rmqs_producer
 */
typedef struct rmqs_super_producer rmqs_super_producer;

/**
 * Result of every fallible rmqstream call (`int32_t`).
 *
 * - `0` (`RMQS_OK`): success.
 * - positive: a response code sent by the broker (the stream protocol's response codes, `2..=21`
 *   today; the wire's `1` = OK is reported as `RMQS_OK`). Codes a newer broker may add are passed
 *   through unchanged.
 * - negative: an error detected by the library itself.
 *
 * Every value the library can return has a name and a description: see `rmqs_status_name()`,
 * `rmqs_status_str()` and `rmqs_status_descs()`. Values are stable: new codes are only ever added.
 *
 * @ingroup rmqs_errors
 */
typedef int32_t rmqs_status;

/**
 * One entry of the status table returned by `rmqs_status_descs()`.
 *
 * Both strings are static NUL-terminated ASCII owned by the library: never free or modify them.
 *
 * @ingroup rmqs_errors
 */
typedef struct rmqs_status_desc {
    /**
     * The value.
     */
    rmqs_status status;
    /**
     * Its macro name, e.g. `"RMQS_ERR_TIMEOUT"`.
     */
    const char *name;
    /**
     * A short English description, e.g. `"timed out"`.
     */
    const char *description;
} rmqs_status_desc;

/**
 * Where a consumer starts: an offset type and its value. Plain data, passed by value.
 *
 * @ingroup rmqs_consumer
 */
typedef struct rmqs_offset_spec {
    /**
     * One of `rmqs_offset_type_code`.
     */
    int32_t type;
    /**
     * The offset (`RMQS_OFFSET_OFFSET`) or the timestamp in ms (`RMQS_OFFSET_TIMESTAMP`);
     * ignored by the other types.
     */
    int64_t value;
} rmqs_offset_spec;

/**
 * Receives the library's log messages.
 *
 * @param user_data as given to `rmqs_config_set_log_cb()`.
 * @param level `RMQS_LOG_ERROR` (1) to `RMQS_LOG_TRACE` (5); only levels up to the
 *        connection's `log_level` key (default `info`) are passed.
 * @param target which part of the library speaks: `"connection"`, `"environment"`,
 *        `"producer"`, `"consumer"`, or `"panic"` for a panic the library caught (at
 *        `RMQS_LOG_ERROR`: the message and where it happened; see `RMQS_ERR_PANIC`). NUL-terminated UTF-8, borrowed for the duration of the call.
 * @param message one line without a trailing newline, NUL-terminated UTF-8, borrowed for the
 *        duration of the call (copy it to keep it).
 *
 * May be called on any thread at any time while the connection exists: the application's own
 * thread inside a blocking call (open, close, free, `_new`), the connection's runtime threads
 * (`rmqs-rt`) while it reads and writes frames, or a background thread. Several threads may
 * call it at once. It must return quickly, must not block (hand the message to a queue or a
 * lock-free buffer if it needs slow I/O) and must not call any `rmqs_*` function: messages
 * emitted while it runs on the same thread are dropped.
 *
 * @ingroup rmqs_config
 */
typedef void (*rmqs_log_cb)(void *user_data, int32_t level, const char *target, const char *message);

/**
 * Frees the `user_data` of a callback registration, exactly once, after the last call of the
 * callback. Which thread runs it:
 * - callbacks given to a `*_new` function (confirms, chunks): a dispatcher thread of the
 *   object's connection (`rmqs-dispatch`), after the object's last callback; the object's
 *   `*_free()` waits for that, unless it is called from a library callback (it then returns
 *   at once);
 * - callbacks set on a config (`rmqs_config_set_log_cb()`, `_state_cb()`,
 *   `_consumer_update_cb()`, `_post_filter_cb()`, `_tracking_cb()`, `_routing_cb()`,
 *   `_key_extractor()`): the thread of the call that drops the last reference:
 *   `rmqs_config_free()`, a `rmqs_config_set_*()` call that replaces the callback, or the
 *   `*_free()` of the last object created with the config (`rmqs-reaper` when that
 *   `*_free()` runs in a library callback).
 *
 * Never called when the registering call fails, unless that function says otherwise.
 *
 * @ingroup rmqs_events
 */
typedef void (*rmqs_free_cb)(void *user_data);

/**
 * Statistics of a stream (RabbitMQ 3.11+). Chunk ids are the offsets of chunks' first
 * messages; -1 when unknown (empty stream; `last_chunk_id` also on brokers that do not report
 * it). Extensible like `rmqs_connection_statistics` (set `size` first): brokers may report
 * more statistics in later versions.
 *
 * @ingroup rmqs_management
 */
typedef struct rmqs_stream_statistics {
    /**
     * In: the size of the struct as the caller knows it. Out: the bytes the library filled.
     */
    uint64_t size;
    /**
     * Id of the first chunk still in the stream.
     */
    int64_t first_chunk_id;
    /**
     * Id of the last chunk committed (replicated to a quorum), the last one readable.
     */
    int64_t committed_chunk_id;
    /**
     * Id of the last chunk written.
     */
    int64_t last_chunk_id;
} rmqs_stream_statistics;

/**
 * The outcome of one message sent by a super producer: an `rmqs_confirm` and the partition
 * the message went to.
 *
 * @ingroup rmqs_events
 */
typedef struct rmqs_super_confirm {
    /**
     * The publishing id the message was sent with (ids are per partition).
     */
    uint64_t publishing_id;
    /**
     * The tag given to the send call.
     */
    size_t tag;
    /**
     * As `rmqs_confirm.status`.
     */
    rmqs_status status;
    /**
     * The partition: its index in the super producer's partition list
     * (`rmqs_super_producer_partition()`), as of the confirm.
     */
    uint32_t partition;
} rmqs_super_confirm;

/**
 * The outcome of one message sent by a producer.
 *
 * @ingroup rmqs_events
 */
typedef struct rmqs_confirm {
    /**
     * The publishing id the message was sent with.
     */
    uint64_t publishing_id;
    /**
     * The tag given to the send call.
     */
    size_t tag;
    /**
     * `RMQS_OK`: stored by the broker (for a named producer, possibly dropped as a duplicate
     * of an id it had already); a positive broker code: refused (PublishError);
     * `RMQS_ERR_TIMEOUT`: no confirm within `confirm_timeout_ms`; `RMQS_ERR_CLOSED`: the
     * producer or its connection closed first. In the last two cases the broker may still
     * have stored the message.
     */
    rmqs_status status;
} rmqs_confirm;

/**
 * A single active consumer's change of state, as given to `rmqs_consumer_update_cb` and by
 * `rmqs_event_consumer_update()`. Fields may be appended in later versions.
 *
 * @ingroup rmqs_consumer
 */
typedef struct rmqs_consumer_update_info {
    /**
     * The stream (NUL-terminated), valid for the callback / until the event is freed.
     */
    const char *stream;
    /**
     * true: the consumer becomes the active one of its group and starts where the answer
     * says; false: it steps down (no more chunks; the answer's offset is ignored, answering
     * only tells the library the application is done).
     */
    bool is_active;
    /**
     * On activation, the offset stored under the consumer's tracking reference, looked up
     * just now; `UINT64_MAX` when none is stored (or the lookup failed), and on a step-down.
     */
    uint64_t stored_offset;
    /**
     * What the library answers without the application: right after `stored_offset` when
     * one is stored, else the consumer's `offset` key.
     */
    struct rmqs_offset_spec default_offset;
} rmqs_consumer_update_info;

/**
 * A typed AMQP 1.0 value: `kind` (an `rmqs_value_type_code`) says which field holds it.
 *
 * Out (the typed accessors of received messages and builders): every field is written;
 * those `kind` does not use are zero. `data` points into the object the value came from
 * (the chunk of a received message: valid as long as the chunk; a builder: until it is next
 * changed, reset or freed); never free it.
 *
 * In (the builder's setters): only `kind` and the field it names are read; `data` is
 * borrowed for the call (copied) and may be NULL only when `len` is 0. Compound kinds (list,
 * map, array, described) are given as their AMQP encoding in `data`, `len` (validated), e.g.
 * as read from another message.
 *
 * A plain struct, freely copied (64 bytes on 64-bit platforms).
 *
 * @ingroup rmqs_messages
 */
typedef struct rmqs_value {
    /**
     * An `rmqs_value_type_code`.
     */
    int32_t kind;
    /**
     * `RMQS_VALUE_BOOL`.
     */
    bool bool_value;
    /**
     * Unsigned integers (`UBYTE`, `USHORT`, `UINT`, `ULONG`) and `CHAR` (its code point).
     */
    uint64_t uint_value;
    /**
     * Signed integers (`BYTE`, `SHORT`, `INT`, `LONG`) and `TIMESTAMP`.
     */
    int64_t int_value;
    /**
     * `FLOAT` and `DOUBLE`.
     */
    double float_value;
    /**
     * `UUID`.
     */
    uint8_t uuid[16];
    /**
     * `STRING`, `SYMBOL`, `BINARY`: the bytes; decimals and compounds: see the type codes.
     */
    const uint8_t *data;
    /**
     * Bytes at `data`.
     */
    size_t len;
} rmqs_value;

/**
 * Receives a batch of confirms (outcomes of sent messages) in callback mode.
 *
 * Called on one of the connection's dispatcher threads (`rmqs-dispatch`: `dispatch_threads`
 * of them, 2 by default, shared by all its producers and consumers), never concurrently with
 * itself, in the order the outcomes were known. `confirms` (`count` > 0
 * entries, `stride` bytes apart: index with `RMQS_AT()`, never with `sizeof`, as fields may be
 * appended to `rmqs_confirm` in later versions) is borrowed for the duration of the call. The
 * callback may call non-blocking functions (a send with `RMQS_SEND_NO_BLOCK`, or one that
 * finds room); blocking ones (flush, close with a timeout, `_new`, management calls) return
 * `RMQS_ERR_WOULD_DEADLOCK`.
 * A slow callback delays later confirms of this producer, and holds one dispatcher thread
 * meanwhile: the other objects' callbacks run on the others, and wait while all are held.
 *
 * @ingroup rmqs_producer
 */
typedef void (*rmqs_confirm_cb)(void *user_data,
                                const struct rmqs_confirm *confirms,
                                size_t count,
                                size_t stride);

/**
 * A byte range, for batch sends: `data` may be NULL only when `len` is 0.
 *
 * @ingroup rmqs_producer
 */
typedef struct rmqs_bytes {
    const uint8_t *data;
    size_t len;
} rmqs_bytes;

/**
 * Receives chunks in callback mode.
 *
 * Called on one of the connection's dispatcher threads (`rmqs-dispatch`: `dispatch_threads`
 * of them, 2 by default, shared by all its producers and consumers): chunks of one consumer in
 * stream order, never concurrently. `chunk` is borrowed for the duration of
 * the call: read it there, or `rmqs_chunk_retain()` it to keep it (e.g. to hand it to another
 * thread) and `rmqs_chunk_release()` it later. With the `on_release` credit policy the broker
 * gets one credit once the callback returned and every retained reference was released.
 * The callback may call non-blocking functions (`rmqs_consumer_credit`,
 * `rmqs_consumer_store_offset`, chunk accessors, non-blocking sends); blocking ones return
 * `RMQS_ERR_WOULD_DEADLOCK`. A slow callback slows this consumer, and holds one dispatcher
 * thread meanwhile: the other objects' callbacks run on the others, and wait while all are
 * held.
 *
 * @ingroup rmqs_consumer
 */
typedef void (*rmqs_chunk_cb)(void *user_data, const struct rmqs_chunk *chunk);

/**
 * Decides where a single active consumer starts when it is activated, or hears that it steps
 * down (key `single_active_consumer`).
 *
 * @param user_data as given to `rmqs_config_set_consumer_update_cb()`.
 * @param info the change (borrowed for the call).
 * @return where to start: an `rmqs_offset_spec`, or `{RMQS_OFFSET_DEFAULT, 0}` for the
 *         default (`info->default_offset`). An invalid spec counts as the default. Ignored on
 *         a step-down.
 *
 * Called on one of the connection's dispatcher threads (`rmqs-dispatch`, see
 * `rmqs_confirm_cb`): with a chunk callback, in order with the chunks (never concurrently). The broker waits for the answer; when the callback has not
 * returned within the consumer's `consumer_update_timeout_ms` (default 5000), the library
 * answers with the default and ignores the late return. The callback may call non-blocking
 * functions (`rmqs_consumer_credit`, `rmqs_consumer_store_offset`, ...); blocking ones
 * return `RMQS_ERR_WOULD_DEADLOCK`.
 *
 * @ingroup rmqs_consumer
 */
typedef struct rmqs_offset_spec (*rmqs_consumer_update_cb)(void *user_data,
                                                           const struct rmqs_consumer_update_info *info);

/**
 * Client-side filter: decides, for each message of each delivered chunk, whether the
 * application sees it (keys `filter_values`, `match_unfiltered`).
 *
 * @param user_data as given to `rmqs_config_set_post_filter_cb()`.
 * @param msg the message, borrowed for the call only (its accessors work as usual; what
 *        they return is valid until the callback returns).
 * @return true to keep the message, false to hide it. Hidden messages keep their offsets
 *         (nothing is renumbered), count as processed for offset tracking, and are counted in
 *         `rmqs_consumer_statistics.filtered_out`; a chunk left with no message is not
 *         delivered at all (its credit goes back at once).
 *
 * Called on a library runtime thread (`rmqs-rt`) as each chunk arrives, before the chunk
 * reaches the chunk callback or the queue: the messages of one consumer in order, never
 * concurrently, but consumers created with the same config may call it at the same time from
 * different threads. It holds up the connection, shared with other consumers: it must be
 * quick, must not block and may call only the `rmqs_message_*` accessors.
 *
 * @ingroup rmqs_consumer
 */
typedef bool (*rmqs_post_filter_cb)(void *user_data, const struct rmqs_message *msg);

/**
 * What `rmqs_tracking_cb` is told after each processed chunk. Fields may be appended in
 * later versions.
 *
 * @ingroup rmqs_consumer
 */
typedef struct rmqs_tracking_context {
    /**
     * The processed offset: the last offset of the chunks released so far, in delivery
     * order (what a store sends now).
     */
    uint64_t processed_offset;
    /**
     * Messages processed since the last store (or since the consumer started).
     */
    uint64_t messages_since_store;
    /**
     * Milliseconds since the last store (or since the consumer started).
     */
    uint64_t ms_since_store;
    /**
     * The offset stored last by this consumer (or found at start); `UINT64_MAX` for none.
     */
    uint64_t last_stored_offset;
} rmqs_tracking_context;

/**
 * Decides after each processed chunk whether the consumer stores its processed offset now
 * (key `tracking` = `custom`).
 *
 * @param user_data as given to `rmqs_config_set_tracking_cb()`.
 * @param ctx the tracking state (borrowed for the call).
 * @return true to store `ctx->processed_offset` now.
 *
 * Called on the thread that released the chunk: a dispatcher thread after the chunk
 * callback returned, the application's thread in `rmqs_event_free()` or
 * `rmqs_chunk_release()`, or a library runtime thread for chunks the post-filter emptied. It
 * may run on several threads at once; it must be quick, must not block and must not call
 * blocking `rmqs_*` functions.
 *
 * @ingroup rmqs_consumer
 */
typedef bool (*rmqs_tracking_cb)(void *user_data, const struct rmqs_tracking_context *ctx);

/**
 * Every field of a chunk's header (the Osiris chunk format).
 *
 * @ingroup rmqs_messages
 */
typedef struct rmqs_chunk_header_info {
    /**
     * Magic (5).
     */
    uint8_t magic;
    /**
     * Format version (0).
     */
    uint8_t version;
    /**
     * 0 = user (messages), 1 = tracking delta, 2 = tracking snapshot.
     */
    uint8_t chunk_type;
    /**
     * Bloom filter size on disk (not sent to consumers).
     */
    uint8_t bloom_size;
    /**
     * Entries in the data section (a sub-entry batch counts as one).
     */
    uint16_t num_entries;
    /**
     * Records (messages) in the chunk, hidden ones included.
     */
    uint32_t num_records;
    /**
     * When the chunk was written, ms since the Unix epoch.
     */
    int64_t timestamp;
    /**
     * Leader epoch.
     */
    uint64_t epoch;
    /**
     * Offset of the chunk's first record.
     */
    uint64_t chunk_id;
    /**
     * CRC-32 of the data section.
     */
    uint32_t crc;
    /**
     * Length of the data section.
     */
    uint32_t data_length;
    /**
     * Trailer length on disk.
     */
    uint32_t trailer_length;
    /**
     * Reserved bytes, as a 24-bit value.
     */
    uint32_t reserved;
} rmqs_chunk_header_info;

/**
 * Counters of a connection (all its TCP connections: the locator and the data connections).
 *
 * Extensible: set `size` to `sizeof(rmqs_connection_statistics)` before the call. Fields may
 * be appended in later versions, never removed or reordered; the library fills
 * `min(size, its own size)` bytes and sets `size` to that.
 *
 * @ingroup rmqs_connection
 */
typedef struct rmqs_connection_statistics {
    /**
     * In: the size of the struct as the caller knows it. Out: the bytes the library filled.
     */
    uint64_t size;
    /**
     * Frames received (handshakes and heartbeats included).
     */
    uint64_t frames_in;
    /**
     * Frames sent (handshakes and heartbeats included).
     */
    uint64_t frames_out;
    /**
     * Bytes received (as framed by the protocol; TLS overhead not counted).
     */
    uint64_t bytes_in;
    /**
     * Bytes sent (as framed by the protocol; TLS overhead not counted).
     */
    uint64_t bytes_out;
    /**
     * TCP connections opened (handshake completed) since the connection was created.
     */
    uint64_t connections_opened;
    /**
     * Data connections (for producers and consumers) open now.
     */
    uint64_t data_connections;
    /**
     * Times the locator connection was reopened after it was lost.
     */
    uint64_t reconnects;
} rmqs_connection_statistics;

/**
 * Counters of a producer. Extensible like `rmqs_connection_statistics` (set `size` first).
 *
 * @ingroup rmqs_producer
 */
typedef struct rmqs_producer_statistics {
    /**
     * In: the size of the struct as the caller knows it. Out: the bytes the library filled.
     */
    uint64_t size;
    /**
     * Messages accepted by the send functions.
     */
    uint64_t published;
    /**
     * Messages confirmed by the broker.
     */
    uint64_t confirmed;
    /**
     * Messages that completed with an error (refused by the broker, timed out, closed).
     */
    uint64_t errored;
    /**
     * Messages accepted and not completed yet (those whose confirm callback is running
     * included): `published - confirmed - errored`.
     */
    uint64_t in_flight;
    /**
     * Recoveries completed (`RMQS_STATE_RECOVERED` events).
     */
    uint64_t recoveries;
    /**
     * Publish entries sent again by recoveries, with their original publishing ids
     * (messages; with sub-entry batching, sub-entries).
     */
    uint64_t republished;
} rmqs_producer_statistics;

/**
 * Counters of a consumer. Extensible like `rmqs_connection_statistics` (set `size` first).
 *
 * @ingroup rmqs_consumer
 */
typedef struct rmqs_consumer_statistics {
    /**
     * In: the size of the struct as the caller knows it. Out: the bytes the library filled.
     */
    uint64_t size;
    /**
     * Messages handed to the application (those before the requested offset excluded).
     */
    uint64_t messages;
    /**
     * Chunks handed to the application.
     */
    uint64_t chunks;
    /**
     * Bytes of the chunks' data sections handed to the application (as on the wire).
     */
    uint64_t bytes;
    /**
     * Credits granted to the broker, the initial credit included.
     */
    uint64_t credits_granted;
    /**
     * Messages the post-filter removed (filtering).
     */
    uint64_t filtered_out;
    /**
     * Offsets stored on the broker by this consumer (automatic and explicit stores).
     */
    uint64_t offsets_stored;
    /**
     * The offset this consumer stored last; `UINT64_MAX` when it stored none.
     */
    uint64_t last_stored_offset;
    /**
     * Recoveries completed (`RMQS_STATE_RECOVERED` events).
     */
    uint64_t recoveries;
} rmqs_consumer_statistics;

/**
 * Routes a message of a super producer (`rmqs_config_set_routing_cb()`): writes the indices
 * of the partitions the message goes to into `partitions` and returns how many it wrote.
 *
 * - `msg`: the message when it was sent with `rmqs_super_producer_send_message()`,
 *   `rmqs_super_producer_send_message_body()` or `rmqs_super_producer_send_messages()`
 *   (borrowed for the call: read it with `rmqs_message_builder_property()`,
 *   `rmqs_message_builder_app_property()`), else NULL.
 * - `body`, `len`: the message body as given to the send call (also the body given to
 *   `rmqs_super_producer_send_message_body()`, not the builder's own); for a message builder
 *   sent whole, its body when that is a single data section, else NULL and 0 (borrowed for
 *   the call).
 * - `routing_key`, `key_len`: the message's routing key (from the send call, else from the
 *   key extractor), NUL-terminated, borrowed for the call; `""` (length 0) when it has none.
 * - `tag`: the send call's tag.
 * - `partition_count`: the number of partitions now (indices `0 .. partition_count - 1`, in
 *   the order of `rmqs_super_producer_partition()`); `partitions` has room for exactly that
 *   many indices.
 *
 * Return 1 to send the message to one partition, several to send a copy to each (each copy
 * gets its own confirm), 0 to refuse it: the send then fails with
 * `RMQS_ERR_INVALID_ARGUMENT`, message starting with `"no route"`, and nothing is sent. An
 * index out of range, or a count above `partition_count`, refuses it the same way.
 *
 * Called on the thread making the send call, once per message (per send call), possibly from
 * several threads at once. Must be quick and must not send on the same super producer.
 *
 * @ingroup rmqs_producer
 */
typedef size_t (*rmqs_routing_cb)(void *user_data,
                                  const struct rmqs_message_builder *msg,
                                  const uint8_t *body,
                                  size_t len,
                                  const char *routing_key,
                                  size_t key_len,
                                  size_t tag,
                                  size_t partition_count,
                                  uint32_t *partitions);

/**
 * Extracts the routing key of a message sent without one (`routing_key` NULL in
 * `rmqs_super_producer_send()`; see `rmqs_config_set_key_extractor()`).
 *
 * Writes the key's UTF-8 bytes (no terminating NUL needed) into `key`, which has room for
 * `capacity` bytes, and returns the key's length. When the key is longer than `capacity`,
 * return its length without writing (or after writing a part): the function is called once
 * more with room for at least that many bytes. Return a negative value when the message has
 * no key: the send fails with `RMQS_ERR_INVALID_ARGUMENT` (with `hash` and `key` routing;
 * a routing callback gets `""`).
 *
 * `msg`: the message when it was sent with `rmqs_super_producer_send_message()`,
 * `rmqs_super_producer_send_message_body()` or `rmqs_super_producer_send_messages()`, so that
 * the key can come from a property (`rmqs_message_builder_app_property()`,
 * `rmqs_message_builder_property()`); NULL for a body sent alone. `body`, `len`: the message
 * body (with `rmqs_super_producer_send_message_body()`, the body given to it, not the
 * builder's own; for a builder sent whole: its body when that is a single data section, else
 * NULL and 0). Both borrowed for the call. `tag`: the send call's tag.
 *
 * Called on the thread making the send call, possibly from several threads at once. Must be
 * quick and must not send on the same super producer.
 *
 * @ingroup rmqs_producer
 */
typedef ptrdiff_t (*rmqs_key_extractor_cb)(void *user_data,
                                           const struct rmqs_message_builder *msg,
                                           const uint8_t *body,
                                           size_t len,
                                           size_t tag,
                                           char *key,
                                           size_t capacity);

/**
 * Receives a batch of confirms of a super producer in callback mode: each says which
 * partition its message went to.
 *
 * Called on one of the connection's dispatcher threads (`rmqs-dispatch`, see
 * `rmqs_confirm_cb`), never concurrently with itself; the confirms of one partition come in order. `confirms`
 * (`count` > 0 entries, `stride` bytes apart: see `RMQS_AT()`) is borrowed for the call. Rules as `rmqs_confirm_cb`: non-blocking
 * calls only (blocking ones return `RMQS_ERR_WOULD_DEADLOCK`).
 *
 * @ingroup rmqs_producer
 */
typedef void (*rmqs_super_confirm_cb)(void *user_data,
                                      const struct rmqs_super_confirm *confirms,
                                      size_t count,
                                      size_t stride);

/**
 * Hears the state changes of a producer, consumer, super producer or super consumer:
 * `RMQS_STATE_RECOVERING` (with the cause), `RMQS_STATE_RECOVERED`, and the final
 * `RMQS_STATE_CLOSED` (with the reason; `RMQS_OK` when the application closed it).
 *
 * @param user_data as given to `rmqs_config_set_state_cb()`.
 * @param source the kind of object.
 * @param tag the `tag` the object was created with.
 * @param partition for a super producer or super consumer, the partition concerned (its index
 *        in the object's partition list), or -1 for the object itself; -1 for other objects.
 * @param state one of `rmqs_state_code`.
 * @param status why (`RMQS_OK` for `RMQS_STATE_RECOVERED` and for a close by the
 *        application).
 * @param message what happened, in words (borrowed for the call; never NULL).
 *
 * Called on one of the connection's dispatcher threads (`rmqs-dispatch`, see
 * `rmqs_confirm_cb`): for an object with a confirm or chunk callback, in order with those
 * calls; never concurrently with itself for one object. The callback may
 * call non-blocking functions; blocking ones return `RMQS_ERR_WOULD_DEADLOCK`.
 *
 * @ingroup rmqs_events
 */
typedef void (*rmqs_state_cb)(void *user_data,
                              rmqs_event_source_code source,
                              size_t tag,
                              int32_t partition,
                              rmqs_state_code state,
                              rmqs_status status,
                              const char *message);

#ifdef __cplusplus
extern "C" {
#endif // __cplusplus

/**
 * The version of the loaded library, e.g. `"0.1.0"`.
 *
 * @return a static NUL-terminated string owned by the library, never NULL; do not free it.
 *
 * Thread-safe, does not block.
 *
 * @ingroup rmqs_errors
 */
const char *rmqs_version(void);

/**
 * The version of the loaded library as one number, encoded like `RMQS_VERSION_NUMBER`.
 *
 * A program can compare it with `RMQS_VERSION_NUMBER` (the header it was compiled with) to
 * detect a mismatched shared library at run time.
 *
 * Thread-safe, does not block.
 *
 * @ingroup rmqs_errors
 */
uint32_t rmqs_version_number(void);

/**
 * A short English description of a status, e.g. `"timed out"` for `RMQS_ERR_TIMEOUT`.
 *
 * @param status any value; values this version does not know give `"unknown status"`.
 * @return a static NUL-terminated string owned by the library, never NULL; do not free it.
 *
 * Thread-safe, does not block.
 *
 * @ingroup rmqs_errors
 */
const char *rmqs_status_str(rmqs_status status);

/**
 * The macro name of a status, e.g. `"RMQS_ERR_TIMEOUT"` for `RMQS_ERR_TIMEOUT`.
 *
 * @param status any value; values this version does not know give `"RMQS_UNKNOWN"`.
 * @return a static NUL-terminated string owned by the library, never NULL; do not free it.
 *
 * Thread-safe, does not block.
 *
 * @ingroup rmqs_errors
 */
const char *rmqs_status_name(rmqs_status status);

/**
 * The table of every status this version knows (value, name, description), for bindings that
 * generate their error types.
 *
 * @param out receives a pointer to the first entry of a static array owned by the library, valid
 *        for the life of the process; do not free or modify it. May be NULL.
 * @param count receives the number of entries. May be NULL.
 *
 * Thread-safe, does not block.
 *
 * @ingroup rmqs_errors
 */
void rmqs_status_descs(const struct rmqs_status_desc **out, size_t *count);

/**
 * The status of a failed call, as the call returned it.
 *
 * @param err an error from a failed call (borrowed), or NULL.
 * @return its status; `RMQS_OK` when `err` is NULL.
 *
 * Thread-safe (see `rmqs_error`), does not block.
 *
 * @ingroup rmqs_errors
 */
RMQS_MUST_USE rmqs_status rmqs_error_status(const struct rmqs_error *err);

/**
 * The message of a failed call: NUL-terminated UTF-8, never empty.
 *
 * @param err an error from a failed call (borrowed), or NULL.
 * @return a string owned by `err`, valid until `rmqs_error_free(err)`; do not free it.
 *         `""` (a static string) when `err` is NULL. Never NULL.
 *
 * Thread-safe (see `rmqs_error`), does not block.
 *
 * @ingroup rmqs_errors
 */
const char *rmqs_error_message(const struct rmqs_error *err);

/**
 * Frees an error. NULL is allowed and does nothing.
 *
 * @param err an error from a failed call (ownership passes to the library), or NULL. It must
 *        not be used afterwards, and must not be freed twice.
 *
 * Not to be called while another thread reads `err`; does not block.
 *
 * @ingroup rmqs_errors
 */
void rmqs_error_free(struct rmqs_error *err);

/**
 * The partition a routing key goes to under hash routing, the routing of the Java, Go, .NET,
 * Rust and JS clients, byte for byte: MurmurHash3 x86 32-bit with seed 104729 over the key's
 * bytes, the hash taken as unsigned, modulo `partition_count`. The result indexes the partitions
 * in the order the broker's Partitions command lists them (`<super-stream>-0`, `-1`, ...).
 *
 * @param routing_key the key's bytes (borrowed for the call; pass its UTF-8 encoding, without a
 *        terminating NUL). May be NULL only if `len` is 0.
 * @param len number of bytes at `routing_key`.
 * @param partition_count number of partitions, at least 1.
 * @param out_index receives the partition index, in `[0, partition_count)`, only on success.
 * @param err optional error detail.
 * @return `RMQS_OK`, or `RMQS_ERR_INVALID_ARGUMENT` if `routing_key` is NULL with `len > 0`,
 *         `partition_count` is 0 or `out_index` is NULL (then `*out_index` is not written).
 *
 * Pure function: thread-safe, does not block, no I/O.
 *
 * @ingroup rmqs_management
 */
RMQS_MUST_USE
rmqs_status rmqs_super_stream_partition(const uint8_t *routing_key,
                                        size_t len,
                                        uint32_t partition_count,
                                        uint32_t *out_index,
                                        struct rmqs_error **err);

/**
 * Creates an empty config.
 *
 * @return a new config owned by the caller, to free with `rmqs_config_free()`; NULL only if
 *         memory ran out.
 *
 * Thread-safe, does not block.
 *
 * @ingroup rmqs_config
 */
struct rmqs_config *rmqs_config_new(void);

/**
 * Sets one key; a later call with the same key replaces the value.
 *
 * Every key, with its scope (connection, producer, consumer, super producer, super consumer,
 * stream creation), values, default and meaning, is in `docs/CONFIGURATION.md`, generated
 * from the client's key table; `rmqs_config_dump()` lists them with their effective values.
 * `-` and `_` are interchangeable; values are strings, integers in decimal, booleans
 * `true`/`false`/`1`/`0`, durations in milliseconds unless said otherwise. On a connection
 * config, `producer.<key>` / `consumer.<key>` are defaults for the producers / consumers
 * created from it; `property.<name>` is a raw subscription property (consumers) and
 * `arg.<name>` any other broker argument (stream creation).
 *
 * Whether a key applies to the object being created is checked when the config is used
 * (`RMQS_ERR_INVALID_ARGUMENT` naming the key). Error messages quote at most 256 bytes of a
 * key or value.
 *
 * @param cfg the config (borrowed).
 * @param key the key (borrowed, NUL-terminated UTF-8).
 * @param value the value (borrowed, NUL-terminated UTF-8).
 * @param err optional error detail, see the conventions.
 * @return `RMQS_OK`; `RMQS_ERR_INVALID_ARGUMENT` for a NULL argument, an unknown key (the
 *         message names it) or a value the key does not accept. The config is unchanged on
 *         failure.
 *
 * Not thread-safe for one config; does not block.
 *
 * @ingroup rmqs_config
 */
RMQS_MUST_USE
rmqs_status rmqs_config_set(struct rmqs_config *cfg,
                            const char *key,
                            const char *value,
                            struct rmqs_error **err);

/**
 * Sets where consumers created with the config start when offset tracking finds nothing
 * stored: the typed form of the `offset` key (`RMQS_OFFSET_FIRST` is `first`,
 * `RMQS_OFFSET_OFFSET` with value 42 is `offset:42`, ...). `RMQS_OFFSET_DEFAULT` removes the
 * key: the default (`next`) or the connection's `consumer.offset` applies.
 *
 * @param cfg the config (borrowed).
 * @param spec the offset type and value (by value).
 * @param err optional error detail, see the conventions.
 * @return `RMQS_OK`; `RMQS_ERR_INVALID_ARGUMENT` for a NULL config, an unknown type or a
 *         negative `RMQS_OFFSET_OFFSET` value (the config is then unchanged).
 *
 * Not thread-safe for one config; does not block.
 *
 * @ingroup rmqs_config
 */
RMQS_MUST_USE
rmqs_status rmqs_config_set_offset(struct rmqs_config *cfg,
                                   struct rmqs_offset_spec spec,
                                   struct rmqs_error **err);

/**
 * Lists every configuration key with its effective value: one `key=value` string per key of
 * `docs/CONFIGURATION.md`, in its order, holding the value set or else the default (empty
 * when there is none), then the `producer.*`, `consumer.*`, `property.*` and `arg.*` keys set,
 * in the order set. Passwords show as `***` (the `password` key, and inside `uri`).
 *
 * @param cfg the config (borrowed).
 * @param out receives a new list owned by the caller (free with `rmqs_strings_free()`), only
 *        on success.
 * @param err optional error detail, see the conventions.
 * @return `RMQS_OK`; `RMQS_ERR_INVALID_ARGUMENT` for a NULL config or `out`.
 *
 * Not thread-safe for one config; does not block.
 *
 * @ingroup rmqs_config
 */
RMQS_MUST_USE
rmqs_status rmqs_config_dump(const struct rmqs_config *cfg,
                             struct rmqs_strings **out,
                             struct rmqs_error **err);

/**
 * Frees a config. NULL is allowed and does nothing.
 *
 * @param cfg a config from `rmqs_config_new()` (ownership passes to the library), or NULL.
 *
 * Does not block. Objects created with the config are not affected (they copied it).
 *
 * @ingroup rmqs_config
 */
void rmqs_config_free(struct rmqs_config *cfg);

/**
 * Opens a connection.
 *
 * Blocks until the locator connection to the first answering seed host is open and the
 * handshake (PeerProperties, SASL, Tune, Open and, with RabbitMQ 3.11+, command versions) is
 * done, bounded by `connect_timeout_ms` per seed host plus twice `request_timeout_ms`. With
 * `lazy_open` it does not connect: the first call that needs the broker does, and calls made
 * meanwhile wait for it.
 *
 * @param cfg connection keys (see `rmqs_config_set()`; borrowed and copied), or NULL for the
 *        defaults (`rabbitmq-stream://guest:guest@localhost:5552/%2f`). Keys that do not apply to
 *        a connection are an error; `producer.*` / `consumer.*` keys become defaults for the
 *        producers and consumers of this connection.
 * @param out receives the new connection, owned by the caller (free with
 *        `rmqs_connection_free()`); written only on success.
 * @param err optional error detail.
 * @return `RMQS_OK`; `RMQS_ERR_INVALID_ARGUMENT` (bad config, NULL `out`);
 *         `RMQS_ERR_AUTHENTICATION_FAILURE` (8) and other broker codes; `RMQS_ERR_IO`,
 *         `RMQS_ERR_TLS`, `RMQS_ERR_TIMEOUT`; `RMQS_ERR_WOULD_DEADLOCK` from a library callback
 *         (unless lazy).
 *
 * Thread-safe; blocks (unless lazy).
 *
 * @ingroup rmqs_connection
 */
RMQS_MUST_USE
rmqs_status rmqs_connection_open(const struct rmqs_config *cfg,
                                 struct rmqs_connection **out,
                                 struct rmqs_error **err);

/**
 * Opens a connection from a URI alone: the same as `rmqs_connection_open()` with a config
 * holding only `uri`.
 *
 * @param uri `rabbitmq-stream://user:pass@host:port/vhost?key=value&...` or
 *        `rabbitmq-stream+tls://...` (borrowed); the query parameters are those of the `uri`
 *        key of `rmqs_config_set()`, any other is refused.
 * @param out receives the new connection (caller-owned), only on success.
 * @param err optional error detail.
 * @return as `rmqs_connection_open()`; `RMQS_ERR_INVALID_ARGUMENT` for a bad URI (the
 *         message shows it with the password as `***`).
 *
 * Thread-safe; blocks.
 *
 * @ingroup rmqs_connection
 */
RMQS_MUST_USE
rmqs_status rmqs_connection_open_uri(const char *uri,
                                     struct rmqs_connection **out,
                                     struct rmqs_error **err);

/**
 * Closes the connection: closes every producer (waiting for their outstanding confirms) and
 * consumer created from it, then the TCP connections. Later calls on the connection and its
 * producers and consumers fail with `RMQS_ERR_CLOSED`; the handles stay valid until freed.
 * Closing again does nothing and returns `RMQS_OK`.
 *
 * @param conn the connection (borrowed).
 * @param timeout_ms how long to wait for producers to drain and connections to close;
 *        negative = no limit; 0 = start closing in the background and return at once.
 * @return `RMQS_OK`; `RMQS_ERR_INVALID_ARGUMENT` for a NULL/invalid handle;
 *         `RMQS_ERR_WOULD_DEADLOCK` from a library callback with a timeout other than 0.
 *
 * Thread-safe; blocks up to `timeout_ms`.
 *
 * @ingroup rmqs_connection
 */
RMQS_MUST_USE
rmqs_status rmqs_connection_close(struct rmqs_connection *conn,
                                  int32_t timeout_ms,
                                  struct rmqs_error **err);

/**
 * Frees a connection, closing it first if needed (with a 5 s limit) and stopping its runtime.
 * NULL is allowed and does nothing.
 *
 * Producers and consumers created from it should be freed first; any that are not are closed
 * here, and their handles stay valid (every call on them fails with `RMQS_ERR_CLOSED`) until
 * they are freed. Last, the log callback's `user_data_free` runs (see
 * `rmqs_config_set_log_cb()`) unless the config it was set on still exists.
 *
 * @param conn the connection (ownership passes to the library), or NULL. Not to be used
 *        afterwards.
 *
 * Blocks while closing. Called from a library callback, the work moves to a background
 * thread and the call returns at once.
 *
 * @ingroup rmqs_connection
 */
void rmqs_connection_free(struct rmqs_connection *conn);

/**
 * Whether the broker accepts version `version` of stream-protocol command `command` (e.g.
 * `0x1c`, 1 for StreamStats). Brokers before 3.11 cannot be asked and are taken to speak
 * version 1 of commands 0x01–0x19.
 *
 * @param conn the connection (borrowed).
 * @return false for a NULL handle or before the connection is open (lazy open).
 *
 * Thread-safe; does not block.
 *
 * @ingroup rmqs_connection
 */
bool rmqs_connection_supports(const struct rmqs_connection *conn,
                              uint16_t command,
                              uint16_t version);

/**
 * The broker's version as it reports it (e.g. `"4.0.5"`).
 *
 * @param conn the connection (borrowed).
 * @return a NUL-terminated string owned by the connection, valid until it is freed; `""`
 *         (static) for a NULL handle or before the connection is open. Never NULL.
 *
 * Thread-safe; does not block.
 *
 * @ingroup rmqs_connection
 */
const char *rmqs_connection_server_version(const struct rmqs_connection *conn);

/**
 * The frame size and heartbeat the connection agreed with the broker at its handshake (the
 * Tune exchange): for each, the smaller of the configured value and the broker's, 0 on
 * either side meaning the other's (`frame_max` 0 and `heartbeat` 0 in the config take the
 * broker's). Every connection of the environment (locator, producers, consumers) agrees the
 * same values with the same broker.
 *
 * @param conn the connection (borrowed).
 * @param frame_max receives the largest frame, in bytes, either side may send (0 =
 *        unlimited); may be NULL.
 * @param heartbeat_s receives the heartbeat period in seconds (0 = no heartbeats); may be
 *        NULL.
 * @param err optional error detail.
 * @return `RMQS_OK`; `RMQS_ERR_INVALID_ARGUMENT` for a NULL or freed connection;
 *         `RMQS_ERR_CLOSED` once it is closed; with `lazy_open`, the errors of connecting.
 *         The outputs are written only on success.
 *
 * Thread-safe. Does not block once the connection is open; with `lazy_open` before then,
 * connects first (blocking as `rmqs_connection_open()`).
 *
 * @ingroup rmqs_connection
 */
RMQS_MUST_USE
rmqs_status rmqs_connection_negotiated(const struct rmqs_connection *conn,
                                       uint32_t *frame_max,
                                       uint32_t *heartbeat_s,
                                       struct rmqs_error **err);

/**
 * Sets the log callback of the connections opened with this config (`rmqs_connection_open()`;
 * other uses of the config ignore it). Which messages reach it is set by the config's
 * `log_level` key: `error`, `warn`, `info` (default), `debug`, `trace` or `off`. Without a
 * callback the library logs nothing; it never installs a process-wide logger.
 *
 * @param cfg the config (borrowed).
 * @param cb the callback (see `rmqs_log_cb` for its threads and rules), or NULL to remove the
 *        config's callback (`user_data` and `user_data_free` are then ignored).
 * @param user_data passed to every call of `cb`; ownership passes to the library on success.
 * @param user_data_free run exactly once with `user_data` after the last call of `cb`: when
 *        the config no longer holds the callback (freed, or given another one) and every
 *        connection opened with it is freed — normally inside `rmqs_connection_free()`, the
 *        config having been freed after the open. On the thread making that last call (a
 *        background thread when the connection is freed from a library callback). NULL if not
 *        needed. Not called when this function fails.
 * @return `RMQS_OK`; `RMQS_ERR_INVALID_ARGUMENT` for a NULL or invalid config.
 *
 * Not thread-safe for one config; does not block (replacing an earlier callback of this config
 * runs its `user_data_free` here if no connection uses it).
 *
 * @ingroup rmqs_config
 */
RMQS_MUST_USE
rmqs_status rmqs_config_set_log_cb(struct rmqs_config *cfg,
                                   rmqs_log_cb cb,
                                   void *user_data,
                                   rmqs_free_cb user_data_free,
                                   struct rmqs_error **err);

/**
 * Creates a stream.
 *
 * @param conn the connection (borrowed).
 * @param stream the stream name, 1 to 255 bytes of UTF-8 (borrowed).
 * @param args stream arguments (`max_length_bytes`, `max_age`, `stream_max_segment_size_bytes`,
 *        `initial_cluster_size`, `queue_leader_locator`, `filter_size`, `arg.<name>`: see
 *        `rmqs_config_set()`), borrowed; NULL for the broker's defaults. Other keys are an
 *        error.
 * @param err optional error detail.
 * @return `RMQS_OK` when the stream was created; `RMQS_ERR_STREAM_ALREADY_EXISTS` (5, positive,
 *         so callers that only want the stream to exist can accept it) when it existed already,
 *         whatever its arguments; `RMQS_ERR_INVALID_ARGUMENT`, `RMQS_ERR_PRECONDITION_FAILED`
 *         (17, arguments the broker rejects), `RMQS_ERR_ACCESS_REFUSED`, `RMQS_ERR_CLOSED`,
 *         `RMQS_ERR_TIMEOUT`, `RMQS_ERR_IO`, `RMQS_ERR_WOULD_DEADLOCK` (from a callback).
 *
 * Thread-safe; blocks for one round trip (connecting first with lazy open).
 *
 * @ingroup rmqs_management
 */
RMQS_MUST_USE
rmqs_status rmqs_stream_create(struct rmqs_connection *conn,
                               const char *stream,
                               const struct rmqs_config *args,
                               struct rmqs_error **err);

/**
 * Deletes a stream and its data.
 *
 * @param conn the connection (borrowed).
 * @param stream the stream name (borrowed).
 * @param err optional error detail.
 * @return `RMQS_OK`; `RMQS_ERR_STREAM_DOES_NOT_EXIST` (2); `RMQS_ERR_ACCESS_REFUSED`; local
 *         errors as `rmqs_stream_create()`.
 *
 * Thread-safe; blocks for one round trip.
 *
 * @ingroup rmqs_management
 */
RMQS_MUST_USE
rmqs_status rmqs_stream_delete(struct rmqs_connection *conn,
                               const char *stream,
                               struct rmqs_error **err);

/**
 * Whether a stream exists (and is visible to this user).
 *
 * @param conn the connection (borrowed).
 * @param stream the stream name (borrowed).
 * @param out receives true or false, only on success.
 * @param err optional error detail.
 * @return `RMQS_OK`; local errors as `rmqs_stream_create()`.
 *
 * Thread-safe; blocks for one round trip (Metadata).
 *
 * @ingroup rmqs_management
 */
RMQS_MUST_USE
rmqs_status rmqs_stream_exists(struct rmqs_connection *conn,
                               const char *stream,
                               bool *out,
                               struct rmqs_error **err);

/**
 * Reads a stream's statistics (StreamStats command).
 *
 * @param conn the connection (borrowed).
 * @param stream the stream name (borrowed).
 * @param out the caller's struct, with `out->size` set to `sizeof(rmqs_stream_statistics)`;
 *        filled (up to that size, `size` updated) only on success.
 * @param err optional error detail.
 * @return `RMQS_OK`; `RMQS_ERR_STREAM_DOES_NOT_EXIST`; `RMQS_ERR_UNSUPPORTED` on brokers before
 *         3.11 (the message names the version needed); local errors as `rmqs_stream_create()`.
 *
 * Thread-safe; blocks for one round trip.
 *
 * @ingroup rmqs_management
 */
RMQS_MUST_USE
rmqs_status rmqs_stream_stats(struct rmqs_connection *conn,
                              const char *stream,
                              struct rmqs_stream_statistics *out,
                              struct rmqs_error **err);

/**
 * Locates a stream (Metadata command): advertised host and port of its leader and replicas.
 *
 * @param conn the connection (borrowed).
 * @param stream the stream name (borrowed).
 * @param out receives new metadata owned by the caller (free with
 *        `rmqs_metadata_free()`), only on success.
 * @param err optional error detail.
 * @return `RMQS_OK`; `RMQS_ERR_STREAM_DOES_NOT_EXIST`, `RMQS_ERR_STREAM_NOT_AVAILABLE`; local
 *         errors as `rmqs_stream_create()`.
 *
 * Thread-safe; blocks for one round trip.
 *
 * @ingroup rmqs_management
 */
RMQS_MUST_USE
rmqs_status rmqs_stream_metadata(struct rmqs_connection *conn,
                                 const char *stream,
                                 struct rmqs_metadata **out,
                                 struct rmqs_error **err);

/**
 * The leader's advertised host.
 *
 * @param md metadata (borrowed).
 * @return a string owned by `md`, valid until it is freed; NULL when the stream has no leader
 *         now or `md` is NULL.
 *
 * Thread-safe; does not block.
 *
 * @ingroup rmqs_management
 */
const char *rmqs_metadata_leader_host(const struct rmqs_metadata *md);

/**
 * The leader's advertised port; 0 when there is no leader or `md` is NULL.
 *
 * Thread-safe; does not block.
 *
 * @ingroup rmqs_management
 */
uint16_t rmqs_metadata_leader_port(const struct rmqs_metadata *md);

/**
 * Number of replicas (members other than the leader); 0 for NULL.
 *
 * Thread-safe; does not block.
 *
 * @ingroup rmqs_management
 */
size_t rmqs_metadata_replica_count(const struct rmqs_metadata *md);

/**
 * Replica `i` (0-based): its advertised host, and its port through `port` (may be NULL).
 *
 * @return a string owned by `md`, valid until it is freed; NULL when `i` is out of range or
 *         `md` is NULL (`*port` is then not written).
 *
 * Thread-safe; does not block.
 *
 * @ingroup rmqs_management
 */
const char *rmqs_metadata_replica(const struct rmqs_metadata *md, size_t i, uint16_t *port);

/**
 * Frees metadata. NULL is allowed.
 *
 * @param md metadata from `rmqs_stream_metadata()` (ownership passes to the library).
 *
 * @ingroup rmqs_management
 */
void rmqs_metadata_free(struct rmqs_metadata *md);

/**
 * The offset stored on the broker under `reference` for `stream` (QueryOffset).
 *
 * @param conn the connection (borrowed).
 * @param reference the tracking reference, usually a consumer name (borrowed, 1–255 bytes).
 * @param stream the stream name (borrowed).
 * @param out receives the offset, only on success.
 * @param err optional error detail.
 * @return `RMQS_OK`; `RMQS_ERR_NO_OFFSET` (19, positive) when nothing is stored;
 *         `RMQS_ERR_STREAM_DOES_NOT_EXIST`; local errors as `rmqs_stream_create()`.
 *
 * Thread-safe; blocks for one round trip.
 *
 * @ingroup rmqs_management
 */
RMQS_MUST_USE
rmqs_status rmqs_stream_query_offset(struct rmqs_connection *conn,
                                     const char *reference,
                                     const char *stream,
                                     uint64_t *out,
                                     struct rmqs_error **err);

/**
 * Stores `offset` on the broker under `reference` for `stream` (StoreOffset). The broker does
 * not answer: `rmqs_stream_query_offset()` shows when it is applied.
 *
 * @param conn the connection (borrowed).
 * @param reference the tracking reference (borrowed, 1–255 bytes).
 * @param stream the stream name (borrowed).
 * @param offset the offset to store.
 * @param err optional error detail.
 * @return `RMQS_OK` once the frame is queued for sending; local errors as
 *         `rmqs_stream_create()`.
 *
 * Thread-safe; blocks only to connect (lazy open), but like every call through the connection
 * it returns `RMQS_ERR_WOULD_DEADLOCK` from a library callback: store from a consumer's
 * callback with `rmqs_consumer_store_offset()`.
 *
 * @ingroup rmqs_management
 */
RMQS_MUST_USE
rmqs_status rmqs_stream_store_offset(struct rmqs_connection *conn,
                                     const char *reference,
                                     const char *stream,
                                     uint64_t offset,
                                     struct rmqs_error **err);

/**
 * The last publishing id the broker kept for the named producer `reference` on `stream`
 * (QueryPublisherSequence); 0 when the broker knows none.
 *
 * @param conn the connection (borrowed).
 * @param reference the producer name (borrowed, 1–255 bytes).
 * @param stream the stream name (borrowed).
 * @param out receives the sequence, only on success.
 * @param err optional error detail.
 * @return `RMQS_OK`; `RMQS_ERR_STREAM_DOES_NOT_EXIST`; local errors as
 *         `rmqs_stream_create()`.
 *
 * Thread-safe; blocks for one round trip.
 *
 * @ingroup rmqs_management
 */
RMQS_MUST_USE
rmqs_status rmqs_stream_query_sequence(struct rmqs_connection *conn,
                                       const char *reference,
                                       const char *stream,
                                       uint64_t *out,
                                       struct rmqs_error **err);

/**
 * Number of strings; 0 for NULL.
 *
 * Thread-safe; does not block.
 *
 * @ingroup rmqs_management
 */
size_t rmqs_strings_count(const struct rmqs_strings *list);

/**
 * String `i` (0-based).
 *
 * @return a NUL-terminated string owned by `list`, valid until it is freed; NULL when `i` is
 *         out of range or `list` is NULL.
 *
 * Thread-safe; does not block.
 *
 * @ingroup rmqs_management
 */
const char *rmqs_strings_get(const struct rmqs_strings *list, size_t i);

/**
 * Frees a list. NULL is allowed.
 *
 * @param list a list returned by the library (ownership passes back to it), or NULL.
 *
 * @ingroup rmqs_management
 */
void rmqs_strings_free(struct rmqs_strings *list);

/**
 * Creates a super stream (RabbitMQ 3.13+): its partitions (streams) and the binding key that
 * routes to each.
 *
 * @param conn the connection (borrowed).
 * @param name the super stream name (borrowed, 1–255 bytes).
 * @param partitions `count` partition stream names (borrowed).
 * @param binding_keys `count` binding keys, one per partition (borrowed).
 * @param count number of partitions, at least 1.
 * @param args stream arguments applied to every partition (as `rmqs_stream_create()`), or NULL.
 * @param err optional error detail.
 * @return `RMQS_OK`; `RMQS_ERR_STREAM_ALREADY_EXISTS`; `RMQS_ERR_UNSUPPORTED` before 3.13;
 *         `RMQS_ERR_INVALID_ARGUMENT`; local errors as `rmqs_stream_create()`.
 *
 * Thread-safe; blocks for one round trip.
 *
 * @ingroup rmqs_management
 */
RMQS_MUST_USE
rmqs_status rmqs_super_stream_create(struct rmqs_connection *conn,
                                     const char *name,
                                     const char *const *partitions,
                                     const char *const *binding_keys,
                                     size_t count,
                                     const struct rmqs_config *args,
                                     struct rmqs_error **err);

/**
 * Creates a super stream with `count` partitions named `<name>-0` ... `<name>-<count-1>`,
 * bound with the keys `0` ... `<count-1>` (the convention of the other clients and of
 * `rabbitmq-streams add_super_stream --partitions`).
 *
 * @return as `rmqs_super_stream_create()`.
 *
 * Thread-safe; blocks for one round trip.
 *
 * @ingroup rmqs_management
 */
RMQS_MUST_USE
rmqs_status rmqs_super_stream_create_n(struct rmqs_connection *conn,
                                       const char *name,
                                       uint32_t count,
                                       const struct rmqs_config *args,
                                       struct rmqs_error **err);

/**
 * Deletes a super stream and its partitions (RabbitMQ 3.13+).
 *
 * @return `RMQS_OK`; `RMQS_ERR_STREAM_DOES_NOT_EXIST`; `RMQS_ERR_UNSUPPORTED` before 3.13; local
 *         errors as `rmqs_stream_create()`.
 *
 * Thread-safe; blocks for one round trip.
 *
 * @ingroup rmqs_management
 */
RMQS_MUST_USE
rmqs_status rmqs_super_stream_delete(struct rmqs_connection *conn,
                                     const char *name,
                                     struct rmqs_error **err);

/**
 * The partitions of a super stream, in routing order (Partitions command).
 *
 * @param conn the connection (borrowed).
 * @param name the super stream name (borrowed).
 * @param out receives a new list owned by the caller (free with `rmqs_strings_free()`), only on
 *        success.
 * @param err optional error detail.
 * @return `RMQS_OK`; `RMQS_ERR_STREAM_DOES_NOT_EXIST`; local errors as `rmqs_stream_create()`.
 *
 * Thread-safe; blocks for one round trip.
 *
 * @ingroup rmqs_management
 */
RMQS_MUST_USE
rmqs_status rmqs_super_stream_partitions(struct rmqs_connection *conn,
                                         const char *name,
                                         struct rmqs_strings **out,
                                         struct rmqs_error **err);

/**
 * The partitions a routing key is bound to in a super stream (Route command); the list may be
 * empty.
 *
 * @param conn the connection (borrowed).
 * @param routing_key the key (borrowed, NUL-terminated UTF-8).
 * @param name the super stream name (borrowed).
 * @param out receives a new list owned by the caller (free with `rmqs_strings_free()`), only on
 *        success.
 * @param err optional error detail.
 * @return `RMQS_OK`; `RMQS_ERR_STREAM_DOES_NOT_EXIST`; local errors as `rmqs_stream_create()`.
 *
 * Thread-safe; blocks for one round trip.
 *
 * @ingroup rmqs_management
 */
RMQS_MUST_USE
rmqs_status rmqs_super_stream_route(struct rmqs_connection *conn,
                                    const char *routing_key,
                                    const char *name,
                                    struct rmqs_strings **out,
                                    struct rmqs_error **err);

/**
 * Creates an event queue.
 *
 * @param out receives the new queue, owned by the caller (free with `rmqs_queue_free()`),
 *        only on success.
 * @return `RMQS_OK`; `RMQS_ERR_INVALID_ARGUMENT` when `out` is NULL.
 *
 * Thread-safe; does not block.
 *
 * @ingroup rmqs_events
 */
RMQS_MUST_USE rmqs_status rmqs_queue_new(struct rmqs_queue **out, struct rmqs_error **err);

/**
 * Takes the next event, waiting for one up to `timeout_ms`.
 *
 * Typical loop: `while ((st = rmqs_queue_poll(q, -1, &ev, NULL)) == RMQS_OK && ev) { ...;
 * rmqs_event_free(ev); }` ends on `rmqs_queue_wakeup()` or an error.
 *
 * @param q the queue (borrowed).
 * @param timeout_ms negative = wait forever; 0 = do not wait.
 * @param out receives, on `RMQS_OK`, a new event owned by the caller (free with
 *        `rmqs_event_free()`), or NULL when `rmqs_queue_wakeup()` ended the wait.
 * @param err optional error detail.
 * @return `RMQS_OK`; `RMQS_ERR_TIMEOUT` when no event came within `timeout_ms` (at once for
 *         0 and an empty queue); `RMQS_ERR_WOULD_DEADLOCK` when called with a non-zero timeout
 *         from a library callback or runtime thread (waiting there could deadlock: the thread
 *         may be the one that would deliver the event), so that a `poll(q, -1)` loop there
 *         fails instead of spinning; a timeout of 0 works there; `RMQS_ERR_INVALID_ARGUMENT`
 *         for a NULL or invalid queue or a NULL `out`. `*out` is written only on `RMQS_OK`.
 *
 * Thread-safe; blocks up to `timeout_ms`.
 *
 * @ingroup rmqs_events
 */
RMQS_MUST_USE
rmqs_status rmqs_queue_poll(struct rmqs_queue *q,
                            int32_t timeout_ms,
                            struct rmqs_event **out,
                            struct rmqs_error **err);

/**
 * Takes up to `cap` events at once, waiting up to `timeout_ms` for the first one.
 *
 * @param q the queue (borrowed).
 * @param events an array of at least `cap` pointers; on `RMQS_OK` the first `*count` receive
 *        new events owned by the caller (each freed with `rmqs_event_free()`).
 * @param cap capacity of `events`, at least 1.
 * @param timeout_ms negative = wait forever; 0 = do not wait.
 * @param count receives, on `RMQS_OK`, the number of events written: 1 to `cap`, or 0 when
 *        `rmqs_queue_wakeup()` ended the wait.
 * @param err optional error detail.
 * @return `RMQS_OK`; `RMQS_ERR_TIMEOUT`, `RMQS_ERR_WOULD_DEADLOCK` as `rmqs_queue_poll()`;
 *         `RMQS_ERR_INVALID_ARGUMENT` for a NULL or invalid queue, a NULL `events` or
 *         `count`, or `cap` 0. Nothing is written on failure.
 *
 * Thread-safe; blocks up to `timeout_ms`.
 *
 * @ingroup rmqs_events
 */
RMQS_MUST_USE
rmqs_status rmqs_queue_poll_batch(struct rmqs_queue *q,
                                  struct rmqs_event **events,
                                  size_t cap,
                                  int32_t timeout_ms,
                                  size_t *count,
                                  struct rmqs_error **err);

/**
 * Makes one blocked (or the next) `rmqs_queue_poll()` / `rmqs_queue_poll_batch()` return
 * `RMQS_OK` without an event (`*out` NULL, `*count` 0), and the notify fd readable until
 * then. For shutting a polling thread down or interrupting it.
 *
 * @param q the queue (borrowed); NULL does nothing.
 *
 * Thread-safe, also from library callbacks and signal-free contexts; does not block.
 *
 * @ingroup rmqs_events
 */
void rmqs_queue_wakeup(struct rmqs_queue *q);

/**
 * Number of events waiting in the queue.
 *
 * Thread-safe; does not block. 0 for NULL.
 *
 * @ingroup rmqs_events
 */
size_t rmqs_queue_len(const struct rmqs_queue *q);

/**
 * A file descriptor for event loops (epoll, poll, libuv): readable while the queue holds
 * events or a wakeup is pending. Wait for it to be readable, then drain the queue with
 * `rmqs_queue_poll(q, 0, &ev, NULL)` until it returns `RMQS_ERR_TIMEOUT` (or `RMQS_OK` with
 * no event, a wakeup); the fd becomes unreadable once the queue is empty.
 *
 * @param q the queue (borrowed).
 * @return the fd, owned by the queue (do not read, write or close it; it is closed by
 *         `rmqs_queue_free()`), or -1 for NULL or where unsupported (non-Linux).
 *
 * Thread-safe; does not block.
 *
 * @ingroup rmqs_events
 */
int32_t rmqs_queue_fd(const struct rmqs_queue *q);

/**
 * Frees a queue. Events still in it are freed (their chunks released); producers and
 * consumers that deliver to it drop their later events. NULL is allowed.
 *
 * @param q the queue (ownership passes to the library), or NULL.
 *
 * Not to be called while another thread polls `q`. Does not block.
 *
 * @ingroup rmqs_events
 */
void rmqs_queue_free(struct rmqs_queue *q);

/**
 * The event's kind: one of `rmqs_event_type_code`; 0 for NULL.
 *
 * Does not block.
 *
 * @ingroup rmqs_events
 */
int32_t rmqs_event_type(const struct rmqs_event *ev);

/**
 * Which kind of object sent the event: one of `rmqs_event_source_code`; 0 for NULL.
 *
 * Does not block.
 *
 * @ingroup rmqs_events
 */
int32_t rmqs_event_source(const struct rmqs_event *ev);

/**
 * The `tag` given when the producer or consumer that sent the event was created; 0 for NULL.
 *
 * Does not block.
 *
 * @ingroup rmqs_events
 */
size_t rmqs_event_source_tag(const struct rmqs_event *ev);

/**
 * The chunk of an `RMQS_EVENT_CHUNK` event.
 *
 * @return a chunk borrowed from the event, valid until `rmqs_event_free(ev)` (use
 *         `rmqs_chunk_retain()` to keep it longer); NULL for other events or NULL. The chunk's
 *         credit goes back (with the `on_release` policy) when the event is freed and no
 *         reference retained it.
 *
 * Does not block.
 *
 * @ingroup rmqs_events
 */
const struct rmqs_chunk *rmqs_event_chunk(const struct rmqs_event *ev);

/**
 * The super stream partition an event of an `rmqs_super_producer` or `rmqs_super_consumer`
 * concerns: its index in the object's partition list. Set for `RMQS_EVENT_SUPER_CONFIRMS`
 * (all the confirms of one event come from one partition), for chunks (as
 * `rmqs_chunk_partition()`), and for the errors (e.g. its stream was lost) and
 * `RMQS_EVENT_CONSUMER_UPDATE` events of one partition.
 *
 * @return the index; -1 for other events (those of plain producers and consumers, and the
 *         super producer's or consumer's own state events), or for NULL.
 *
 * Does not block.
 *
 * @ingroup rmqs_events
 */
int32_t rmqs_event_partition(const struct rmqs_event *ev);

/**
 * The confirms of an `RMQS_EVENT_SUPER_CONFIRMS` event (from an `rmqs_super_producer`).
 *
 * @param ev the event (borrowed).
 * @param count receives the number of confirms (0 for other events); may be NULL.
 * @param stride receives the distance in bytes between consecutive confirms; may be NULL.
 *        Index the array with it (`RMQS_AT()`), never with `sizeof`: fields may be appended
 *        to the struct in later versions.
 * @return an array borrowed from the event, valid until `rmqs_event_free(ev)`; NULL for other
 *         events or NULL.
 *
 * Does not block.
 *
 * @ingroup rmqs_events
 */
const struct rmqs_super_confirm *rmqs_event_super_confirms(const struct rmqs_event *ev,
                                                           size_t *count,
                                                           size_t *stride);

/**
 * The confirms of an `RMQS_EVENT_CONFIRMS` event.
 *
 * @param ev the event (borrowed).
 * @param count receives the number of confirms (0 for other events); may be NULL.
 * @param stride receives the distance in bytes between consecutive confirms; may be NULL.
 *        Index the array with it (`RMQS_AT()`), never with `sizeof`: fields may be appended
 *        to the struct in later versions.
 * @return an array borrowed from the event, valid until `rmqs_event_free(ev)`; NULL for other
 *         events or NULL.
 *
 * Does not block.
 *
 * @ingroup rmqs_events
 */
const struct rmqs_confirm *rmqs_event_confirms(const struct rmqs_event *ev,
                                               size_t *count,
                                               size_t *stride);

/**
 * The state of an `RMQS_EVENT_STATE` event (one of `rmqs_state_code`); 0 for other events.
 *
 * Does not block.
 *
 * @ingroup rmqs_events
 */
int32_t rmqs_event_state(const struct rmqs_event *ev);

/**
 * The status of an `RMQS_EVENT_STATE` (why; `RMQS_OK` when closed by the application) or
 * `RMQS_EVENT_ERROR` event; `RMQS_OK` for other events.
 *
 * Does not block.
 *
 * @ingroup rmqs_events
 */
RMQS_MUST_USE rmqs_status rmqs_event_status(const struct rmqs_event *ev);

/**
 * The message of an `RMQS_EVENT_STATE` or `RMQS_EVENT_ERROR` event.
 *
 * @return a NUL-terminated string owned by the event, valid until `rmqs_event_free(ev)`;
 *         `""` for other events, NULL `ev` or a state change without a reason. Never NULL.
 *
 * Does not block.
 *
 * @ingroup rmqs_events
 */
const char *rmqs_event_message(const struct rmqs_event *ev);

/**
 * The change of an `RMQS_EVENT_CONSUMER_UPDATE` event (a single active consumer activated or
 * stepping down).
 *
 * @return a view owned by the event, valid until `rmqs_event_free(ev)`; NULL for other events
 *         or NULL.
 *
 * Does not block.
 *
 * @ingroup rmqs_events
 */
const struct rmqs_consumer_update_info *rmqs_event_consumer_update(const struct rmqs_event *ev);

/**
 * Answers an `RMQS_EVENT_CONSUMER_UPDATE` event: where the consumer starts (ignored on a
 * step-down, where answering only tells the library the application is done). Freeing the
 * event unanswered answers `info->default_offset`. The broker waits for the answer: give it
 * within the consumer's `consumer_update_timeout_ms` (default 5000), after which the library
 * has answered with the default itself.
 *
 * @param ev the event (borrowed; still to be freed).
 * @param spec where to start; `{RMQS_OFFSET_DEFAULT, 0}` for the default.
 * @return `RMQS_OK`; `RMQS_ERR_TIMEOUT` when the answer came too late (the default was used);
 *         `RMQS_ERR_INVALID_ARGUMENT` for another kind of event, a NULL event, an invalid spec
 *         or a second answer.
 *
 * Does not block. Not thread-safe for one event.
 *
 * @ingroup rmqs_events
 */
RMQS_MUST_USE
rmqs_status rmqs_event_consumer_update_reply(struct rmqs_event *ev,
                                             struct rmqs_offset_spec spec,
                                             struct rmqs_error **err);

/**
 * Frees an event and the views obtained from it; a chunk event releases its reference to the
 * chunk. NULL is allowed.
 *
 * @param ev an event from `rmqs_queue_poll()` (ownership passes to the library), or NULL.
 *
 * Does not block.
 *
 * @ingroup rmqs_events
 */
void rmqs_event_free(struct rmqs_event *ev);

/**
 * Creates an empty message: no sections, and a body of one empty data section until one is
 * set; no filter value, automatic publishing id.
 *
 * @return a new builder owned by the caller, to free with `rmqs_message_builder_free()`;
 *         NULL only if memory ran out.
 *
 * Thread-safe; does not block.
 *
 * @ingroup rmqs_messages
 */
struct rmqs_message_builder *rmqs_message_builder_new(void);

/**
 * Empties the builder (every section, the filter value and the publishing id) for the next
 * message, keeping its memory. NULL is ignored.
 *
 * @param m the builder (borrowed).
 *
 * Not thread-safe (the builder); does not block.
 *
 * @ingroup rmqs_messages
 */
void rmqs_message_builder_reset(struct rmqs_message_builder *m);

/**
 * Frees a builder. NULL is allowed.
 *
 * @param m the builder (ownership passes to the library), or NULL.
 *
 * Does not block.
 *
 * @ingroup rmqs_messages
 */
void rmqs_message_builder_free(struct rmqs_message_builder *m);

/**
 * Sets the body to one data section holding `data` (replacing any body set before): what
 * stream clients publish and what `rmqs_message_body()` returns on the consuming side.
 *
 * @param m the builder (borrowed).
 * @param data the bytes (copied), NULL only when `len` is 0.
 * @param len their length (at most 2^31 - 1).
 * @param err optional error detail.
 * @return `RMQS_OK`; `RMQS_ERR_INVALID_ARGUMENT` (NULL builder, NULL data with a length).
 *
 * Not thread-safe (the builder); does not block.
 *
 * @ingroup rmqs_messages
 */
RMQS_MUST_USE
rmqs_status rmqs_message_builder_set_body(struct rmqs_message_builder *m,
                                          const uint8_t *data,
                                          size_t len,
                                          struct rmqs_error **err);

/**
 * Appends another data section to the body (the first call on an empty builder makes the
 * first one): a body of several data sections, which consumers get in order.
 *
 * @param m the builder (borrowed).
 * @param data the bytes (copied), NULL only when `len` is 0.
 * @param len their length.
 * @param err optional error detail.
 * @return `RMQS_OK`; `RMQS_ERR_INVALID_ARGUMENT` when the body is an amqp-value
 *         (`rmqs_message_builder_set_body_value()`), or for NULL arguments.
 *
 * Not thread-safe (the builder); does not block.
 *
 * @ingroup rmqs_messages
 */
RMQS_MUST_USE
rmqs_status rmqs_message_builder_add_body_section(struct rmqs_message_builder *m,
                                                  const uint8_t *data,
                                                  size_t len,
                                                  struct rmqs_error **err);

/**
 * Appends an amqp-sequence section to the body: the list of the `count` values at `items`
 * (the first call on an empty builder makes the first one). A body of one or more sequences,
 * which consumers get in order (`rmqs_message_body_section()` gives each as
 * `RMQS_VALUE_LIST`).
 *
 * @param m the builder (borrowed).
 * @param items `count` values, any kind (the array and the values borrowed for the call;
 *        their bytes are copied); NULL only when `count` is 0 (an empty list).
 * @param count number of values.
 * @param err optional error detail.
 * @return `RMQS_OK`; `RMQS_ERR_INVALID_ARGUMENT` when the body holds data sections or an
 *         amqp-value, for an invalid value (its message names it, the body is then as
 *         before), or NULL arguments.
 *
 * Not thread-safe (the builder); does not block.
 *
 * @ingroup rmqs_messages
 */
RMQS_MUST_USE
rmqs_status rmqs_message_builder_add_body_sequence(struct rmqs_message_builder *m,
                                                   const struct rmqs_value *items,
                                                   size_t count,
                                                   struct rmqs_error **err);

/**
 * Sets the body to one amqp-value section holding `value` (replacing any body set before):
 * typically a string or a binary, but any value is allowed.
 *
 * @param m the builder (borrowed).
 * @param value the value (borrowed for the call; its bytes are copied).
 * @param err optional error detail.
 * @return `RMQS_OK`; `RMQS_ERR_INVALID_ARGUMENT` for an invalid value (unknown kind, number
 *         out of range for its kind, invalid UTF-8, bad encoding of a compound) or NULL
 *         arguments.
 *
 * Not thread-safe (the builder); does not block.
 *
 * @ingroup rmqs_messages
 */
RMQS_MUST_USE
rmqs_status rmqs_message_builder_set_body_value(struct rmqs_message_builder *m,
                                                const struct rmqs_value *value,
                                                struct rmqs_error **err);

/**
 * Sets a field of the header section (the section is written when a field is set).
 *
 * @param m the builder (borrowed).
 * @param field an `rmqs_header_code`.
 * @param value `RMQS_VALUE_BOOL` for durable and first-acquirer; for priority (0-255), ttl
 *        and delivery-count (0 to 2^32 - 1) an integer of any kind within that range;
 *        `RMQS_VALUE_NULL` to unset the field. Borrowed for the call.
 * @param err optional error detail.
 * @return `RMQS_OK`; `RMQS_ERR_INVALID_ARGUMENT` for an unknown field, a value of the wrong
 *         kind or out of range, or NULL arguments.
 *
 * Not thread-safe (the builder); does not block.
 *
 * @ingroup rmqs_messages
 */
RMQS_MUST_USE
rmqs_status rmqs_message_builder_set_header(struct rmqs_message_builder *m,
                                            int32_t field,
                                            const struct rmqs_value *value,
                                            struct rmqs_error **err);

/**
 * Sets a field of the properties section (the section is written when a field is set).
 *
 * @param m the builder (borrowed).
 * @param property an `rmqs_property_code`.
 * @param value borrowed for the call: message-id and correlation-id take `ULONG`, `UUID`,
 *        `BINARY` or `STRING` (sent as that type); user-id `BINARY` (or `STRING`: its
 *        bytes); to, subject, reply-to, group-id and reply-to-group-id `STRING` (or
 *        `SYMBOL`); content-type and content-encoding `SYMBOL` (or `STRING`, sent as a
 *        symbol); absolute-expiry-time and creation-time `TIMESTAMP` (or an integer, ms);
 *        group-sequence an integer from 0 to 2^32 - 1. `RMQS_VALUE_NULL` unsets the field.
 * @param err optional error detail.
 * @return `RMQS_OK`; `RMQS_ERR_INVALID_ARGUMENT` for an unknown property, a value of a kind
 *         the property does not take or out of range, or NULL arguments.
 *
 * Not thread-safe (the builder); does not block.
 *
 * @ingroup rmqs_messages
 */
RMQS_MUST_USE
rmqs_status rmqs_message_builder_set_property(struct rmqs_message_builder *m,
                                              int32_t property,
                                              const struct rmqs_value *value,
                                              struct rmqs_error **err);

/**
 * Adds an application property (the key/value headers AMQP 0-9-1 consumers see as message
 * headers), in order.
 *
 * @param m the builder (borrowed).
 * @param key the name, NUL-terminated UTF-8 (borrowed, copied); not used yet on this message.
 * @param value any simple kind (not list, map, array or described: the AMQP spec allows
 *        none of them here). Borrowed for the call.
 * @param err optional error detail.
 * @return `RMQS_OK`; `RMQS_ERR_INVALID_ARGUMENT` for a key already added, a compound or
 *         invalid value, or NULL arguments.
 *
 * Not thread-safe (the builder); does not block. Checking the key against those already
 * added takes time in their number.
 *
 * @ingroup rmqs_messages
 */
RMQS_MUST_USE
rmqs_status rmqs_message_builder_add_app_property(struct rmqs_message_builder *m,
                                                  const char *key,
                                                  const struct rmqs_value *value,
                                                  struct rmqs_error **err);

/**
 * Adds an entry with a symbol key to the message annotations (e.g. `x-opt-...` keys), the
 * delivery annotations or the footer.
 *
 * @param m the builder (borrowed).
 * @param section `RMQS_SECTION_MESSAGE_ANNOTATIONS`, `RMQS_SECTION_DELIVERY_ANNOTATIONS` or
 *        `RMQS_SECTION_FOOTER`.
 * @param key the symbol, NUL-terminated (borrowed, copied); not used yet in that section.
 * @param value any kind, compounds included (borrowed for the call).
 * @param err optional error detail.
 * @return `RMQS_OK`; `RMQS_ERR_INVALID_ARGUMENT` for another section, a key already there,
 *         an invalid value or NULL arguments.
 *
 * Not thread-safe (the builder); does not block.
 *
 * @ingroup rmqs_messages
 */
RMQS_MUST_USE
rmqs_status rmqs_message_builder_add_annotation(struct rmqs_message_builder *m,
                                                int32_t section,
                                                const char *key,
                                                const struct rmqs_value *value,
                                                struct rmqs_error **err);

/**
 * Sets the filter value the broker indexes the message under for filtering consumers
 * (Publish v2, RabbitMQ 3.13+; not with sub-entry batching). Not part of the AMQP message.
 *
 * @param m the builder (borrowed).
 * @param value NUL-terminated UTF-8, at most 32767 bytes (borrowed, copied), or NULL for none.
 * @param err optional error detail.
 * @return `RMQS_OK`; `RMQS_ERR_INVALID_ARGUMENT` for invalid UTF-8 or a NULL builder.
 *
 * Not thread-safe (the builder); does not block.
 *
 * @ingroup rmqs_messages
 */
RMQS_MUST_USE
rmqs_status rmqs_message_builder_set_filter_value(struct rmqs_message_builder *m,
                                                  const char *value,
                                                  struct rmqs_error **err);

/**
 * Gives the message an explicit publishing id instead of the producer's next one (until the
 * next reset). It must be above every id the producer used before; a named producer's broker
 * drops (and confirms) a message whose id is not above the last one it kept.
 *
 * @param m the builder (borrowed).
 * @param id the id; `UINT64_MAX` is reserved.
 * @param err optional error detail.
 * @return `RMQS_OK`; `RMQS_ERR_INVALID_ARGUMENT` for `UINT64_MAX` or a NULL builder.
 *
 * Not thread-safe (the builder); does not block.
 *
 * @ingroup rmqs_messages
 */
RMQS_MUST_USE
rmqs_status rmqs_message_builder_set_publishing_id(struct rmqs_message_builder *m,
                                                   uint64_t id,
                                                   struct rmqs_error **err);

/**
 * A header field as set on the builder.
 *
 * @param m the builder (borrowed).
 * @param field an `rmqs_header_code`.
 * @param out receives the value (as encoded: `BOOL`, `UBYTE` or `UINT`); may be NULL.
 * @return true when the field is set; false when not, for an unknown field or NULL `m`.
 *
 * Not thread-safe against changes of the builder; does not block.
 *
 * @ingroup rmqs_messages
 */
bool rmqs_message_builder_header(const struct rmqs_message_builder *m,
                                 int32_t field,
                                 struct rmqs_value *out);

/**
 * A property as set on the builder (for a key extractor or routing callback reading the
 * message it is given).
 *
 * @param m the builder (borrowed).
 * @param property an `rmqs_property_code`.
 * @param out receives the value as it will be sent (content-type as a `SYMBOL`, the times as
 *        `TIMESTAMP`, ...); strings point into the builder, valid until it is next changed,
 *        reset or freed. May be NULL.
 * @return true when the property is set; false when not, for an unknown property or NULL `m`.
 *
 * Not thread-safe against changes of the builder; does not block.
 *
 * @ingroup rmqs_messages
 */
bool rmqs_message_builder_property(const struct rmqs_message_builder *m,
                                   int32_t property,
                                   struct rmqs_value *out);

/**
 * An application property as added to the builder.
 *
 * @param m the builder (borrowed).
 * @param key the name, NUL-terminated UTF-8 (borrowed).
 * @param out receives the value; strings point into the builder, valid until it is next
 *        changed, reset or freed. May be NULL.
 * @return true when found; false when absent or for NULL `m` or `key`.
 *
 * Not thread-safe against changes of the builder; does not block.
 *
 * @ingroup rmqs_messages
 */
bool rmqs_message_builder_app_property(const struct rmqs_message_builder *m,
                                       const char *key,
                                       struct rmqs_value *out);

/**
 * Number of elements of a list or array, entries of a map, or 2 for a described value
 * (descriptor, value); 0 for other kinds, invalid encodings or NULL.
 *
 * @param v a value from a typed accessor (borrowed; its `data` must still be valid).
 *
 * Thread-safe; does not block. Validates the encoding on each call.
 *
 * @ingroup rmqs_messages
 */
size_t rmqs_value_count(const struct rmqs_value *v);

/**
 * Element `i` of a list or array, or of a described value (0 = descriptor, 1 = value).
 *
 * @param v the compound (borrowed).
 * @param i position, below `rmqs_value_count()`.
 * @param out receives the element; its bytes point where `v`'s do (same lifetime). An array
 *        element that is itself a list, map or array comes with its kind only (`data` NULL).
 *        May be NULL.
 * @return false when `i` is out of range, `v` is not a list, array or described value, or
 *         NULL.
 *
 * Thread-safe; does not block.
 *
 * @ingroup rmqs_messages
 */
bool rmqs_value_list_get(const struct rmqs_value *v, size_t i, struct rmqs_value *out);

/**
 * Entry `i` of a map (wire order).
 *
 * @param v the map (borrowed).
 * @param i position, below `rmqs_value_count()`.
 * @param key receives the key (same lifetime as `v`'s bytes); may be NULL.
 * @param value receives the value; may be NULL.
 * @return false when `i` is out of range, `v` is not a map, or NULL.
 *
 * Thread-safe; does not block.
 *
 * @ingroup rmqs_messages
 */
bool rmqs_value_map_entry(const struct rmqs_value *v,
                          size_t i,
                          struct rmqs_value *key,
                          struct rmqs_value *value);

/**
 * The value of the first entry of a map whose key is the string or symbol `key`.
 *
 * @param v the map (borrowed).
 * @param key NUL-terminated UTF-8 (borrowed).
 * @param out receives the value (same lifetime as `v`'s bytes); may be NULL.
 * @return false when there is no such entry, `v` is not a map, or NULL arguments.
 *
 * Thread-safe; does not block.
 *
 * @ingroup rmqs_messages
 */
bool rmqs_value_map_get(const struct rmqs_value *v, const char *key, struct rmqs_value *out);

/**
 * Creates a producer on `stream`.
 *
 * Opens (or shares) a data connection to the stream's leader and declares the publisher; a
 * named producer (`name` key) first asks the broker for the last publishing id it kept for the
 * name and continues after it, so resending after a restart does not duplicate.
 *
 * Confirms go to `confirm_cb` on a dispatcher thread when it is given, else to `queue` as
 * `RMQS_EVENT_CONFIRMS` events, else nowhere (fire and forget; `rmqs_producer_flush()` still
 * waits for them). State events (`RMQS_STATE_RECOVERING`, `RMQS_STATE_RECOVERED`, the final
 * `RMQS_STATE_CLOSED`) go to `queue` when it is given and to the state callback of `cfg`
 * (`rmqs_config_set_state_cb()`) when it has one. Every message a send accepted gets exactly
 * one confirm.
 *
 * Recovery (connection key `recovery`, on by default): when the connection is lost, the
 * broker restarts or the stream's leader moves, the producer reports `RMQS_STATE_RECOVERING`,
 * finds the new leader, declares itself again and sends again every unconfirmed message with
 * its original publishing id, then reports `RMQS_STATE_RECOVERED`. Sends meanwhile are
 * accepted within `max_in_flight` and go out after the recovery. A named producer is
 * therefore exactly-once across a failover: the broker drops and confirms what it already
 * had. An unnamed one is at-least-once: a message stored just before the loss and not yet
 * confirmed is stored twice. A message completes with `RMQS_ERR_CLOSED` only when it is known
 * not to be stored (never sent, or its stream deleted); one whose outcome is unknown
 * (sent, then the producer closed or gave up) completes with `RMQS_ERR_TIMEOUT`. A deleted
 * stream ends the producer at once: `RMQS_STATE_CLOSED` with
 * `RMQS_ERR_STREAM_DOES_NOT_EXIST`, no retry.
 *
 * @param conn the connection (borrowed).
 * @param stream the stream name, 1 to 255 bytes (borrowed).
 * @param cfg producer keys (see `rmqs_config_set()`; borrowed, copied), layered over the
 *        connection's `producer.*` keys; NULL for those alone.
 * @param confirm_cb confirm callback, or NULL.
 * @param user_data passed to `confirm_cb`. Ownership passes to the library on success only.
 * @param user_data_free run once with `user_data` after the last callback (when the producer is
 *        closed and freed); NULL if not needed. Not called when this function fails.
 * @param queue the queue for confirms (without `confirm_cb`) and state events, borrowed; the
 *        producer keeps its own reference, so the queue handle may be freed first (events are
 *        then dropped). NULL for none.
 * @param tag returned by `rmqs_event_source_tag()` for this producer's events.
 * @param out receives the producer, owned by the caller (free with `rmqs_producer_free()`),
 *        only on success.
 * @param err optional error detail.
 * @return `RMQS_OK`; `RMQS_ERR_INVALID_ARGUMENT` (names, config); `RMQS_ERR_STREAM_DOES_NOT_EXIST`
 *         and other broker codes; `RMQS_ERR_CLOSED`, `RMQS_ERR_TIMEOUT`, `RMQS_ERR_IO`;
 *         `RMQS_ERR_WOULD_DEADLOCK` from a library callback.
 *
 * Thread-safe; blocks for a few round trips.
 *
 * @ingroup rmqs_producer
 */
RMQS_MUST_USE
rmqs_status rmqs_producer_new(struct rmqs_connection *conn,
                              const char *stream,
                              const struct rmqs_config *cfg,
                              rmqs_confirm_cb confirm_cb,
                              void *user_data,
                              rmqs_free_cb user_data_free,
                              struct rmqs_queue *queue,
                              size_t tag,
                              struct rmqs_producer **out,
                              struct rmqs_error **err);

/**
 * Sends one message. The body is copied; its confirm comes later, with `tag`.
 *
 * @param p the producer (borrowed).
 * @param body the message body (borrowed for the call), NULL only when `len` is 0.
 * @param len its length.
 * @param tag returned in this message's `rmqs_confirm`.
 * @param flags `RMQS_SEND_RAW`, `RMQS_SEND_NO_BLOCK`, or 0.
 * @param err optional error detail.
 * @return `RMQS_OK` when accepted (the confirm follows, exactly once);
 *         `RMQS_ERR_QUEUE_FULL` when `max_in_flight` messages are unconfirmed and the send may
 *         not wait (`RMQS_SEND_NO_BLOCK` or `block_when_full` false); `RMQS_ERR_TIMEOUT` when
 *         it waited `send_timeout_ms` for room; `RMQS_ERR_CLOSED` once the producer or its
 *         connection is closed; `RMQS_ERR_INVALID_ARGUMENT` (bad flags, NULL body with a
 *         length, message larger than the connection's frame size); `RMQS_ERR_WOULD_DEADLOCK`
 *         when called from a library callback on a full producer without
 *         `RMQS_SEND_NO_BLOCK`. No confirm follows a failed send.
 *
 * Thread-safe. Blocks only when the producer is full and the send may wait (not from
 * callbacks); otherwise returns at once.
 *
 * @ingroup rmqs_producer
 */
RMQS_MUST_USE
rmqs_status rmqs_producer_send(struct rmqs_producer *p,
                               const uint8_t *body,
                               size_t len,
                               size_t tag,
                               uint32_t flags,
                               struct rmqs_error **err);

/**
 * Sends one message with options: a filter value and/or an explicit publishing id.
 *
 * A shorthand for a body alone: `rmqs_producer_send_message()` does the same with a message
 * builder (and any AMQP section besides); both make the same message for the core and share
 * one send path. Kept because a body-only send then needs no builder (the body is copied
 * once, straight into the frame, instead of into a builder first), and the C++, Go and Zig
 * bindings' sends with options use it.
 *
 * @param p the producer (borrowed).
 * @param body the body (borrowed for the call), NULL only when `len` is 0.
 * @param len its length.
 * @param filter_value NUL-terminated UTF-8 filter value for broker-side filtering (RabbitMQ
 *        3.13+; `RMQS_ERR_UNSUPPORTED` on older brokers), or NULL for none.
 * @param publishing_id used with `RMQS_SEND_PUBLISHING_ID`: must be above every id the
 *        producer used before (for a named producer, above the broker's last id, else the
 *        broker drops it as a duplicate and still confirms it).
 * @param tag returned in the message's confirm.
 * @param flags `RMQS_SEND_RAW`, `RMQS_SEND_NO_BLOCK`, `RMQS_SEND_PUBLISHING_ID`.
 * @param id_out receives the publishing id the message was sent with, on success; may be NULL.
 * @param err optional error detail.
 * @return as `rmqs_producer_send()`.
 *
 * Thread-safe; blocking as `rmqs_producer_send()`.
 *
 * @ingroup rmqs_producer
 */
RMQS_MUST_USE
rmqs_status rmqs_producer_send_ex(struct rmqs_producer *p,
                                  const uint8_t *body,
                                  size_t len,
                                  const char *filter_value,
                                  uint64_t publishing_id,
                                  size_t tag,
                                  uint32_t flags,
                                  uint64_t *id_out,
                                  struct rmqs_error **err);

/**
 * Sends one AMQP message built with an `rmqs_message_builder`: every section, with the
 * builder's filter value and publishing id. The message is copied into the producer's batch
 * (encoded straight into the Publish frame, no allocation); the builder may be reset and
 * reused as soon as this returns. Its confirm comes later, with `tag`.
 *
 * @param p the producer (borrowed).
 * @param msg the message (borrowed for the call, read only).
 * @param tag returned in this message's `rmqs_confirm`.
 * @param flags `RMQS_SEND_NO_BLOCK`, or 0 (`RMQS_SEND_RAW` and `RMQS_SEND_PUBLISHING_ID` do
 *        not apply: the builder says both).
 * @param id_out receives the publishing id the message was sent with, on success; may be NULL.
 * @param err optional error detail.
 * @return as `rmqs_producer_send()`; also `RMQS_ERR_INVALID_ARGUMENT` for a publishing id not
 *         above the previous one, and `RMQS_ERR_UNSUPPORTED` for a filter value on a broker
 *         before 3.13.
 *
 * Thread-safe (the producer; the builder must not change during the call); blocking as
 * `rmqs_producer_send()`.
 *
 * @ingroup rmqs_producer
 */
RMQS_MUST_USE
rmqs_status rmqs_producer_send_message(struct rmqs_producer *p,
                                       const struct rmqs_message_builder *msg,
                                       size_t tag,
                                       uint32_t flags,
                                       uint64_t *id_out,
                                       struct rmqs_error **err);

/**
 * Sends one AMQP message made of a builder's sections and `body` as its one data section, in
 * place of the builder's body: for messages that differ only in their body, the builder set
 * up once and sent with each body, never changed. The builder's filter value and publishing
 * id apply as with `rmqs_producer_send_message()`; the builder's own body is not sent and
 * stays as it is.
 *
 * The cheapest way to send a message with sections: from the second send of a builder not
 * changed since, its sections before the body are copied as one block prepared by the
 * previous send (client CPU per message within a few percent of `rmqs_producer_send()` of the
 * same body).
 *
 * @param p the producer (borrowed).
 * @param msg the sections (borrowed for the call, read only: several threads may send the
 *        same builder at once while nobody changes it).
 * @param body the body (borrowed for the call, copied), NULL only when `len` is 0.
 * @param len its length.
 * @param tag returned in this message's `rmqs_confirm`.
 * @param flags `RMQS_SEND_NO_BLOCK`, or 0.
 * @param id_out receives the publishing id the message was sent with, on success; may be NULL.
 * @param err optional error detail.
 * @return as `rmqs_producer_send_message()`.
 *
 * Thread-safe (the producer; the builder must not change during the call); blocking as
 * `rmqs_producer_send()`.
 *
 * @ingroup rmqs_producer
 */
RMQS_MUST_USE
rmqs_status rmqs_producer_send_message_body(struct rmqs_producer *p,
                                            const struct rmqs_message_builder *msg,
                                            const uint8_t *body,
                                            size_t len,
                                            size_t tag,
                                            uint32_t flags,
                                            uint64_t *id_out,
                                            struct rmqs_error **err);

/**
 * Sends several AMQP messages in order (each with its builder's filter value and publishing
 * id), as `rmqs_producer_send_batch()` does bodies. Each is copied; the builders may be
 * reused as soon as this returns.
 *
 * @param p the producer (borrowed).
 * @param msgs `count` builders (the array and the builders borrowed for the call, read only;
 *        the same builder may appear several times).
 * @param tags `count` tags, or NULL for tag 0 everywhere.
 * @param count number of messages.
 * @param flags `RMQS_SEND_NO_BLOCK`, or 0.
 * @param accepted receives how many messages (a prefix of `msgs`) were accepted, also on
 *        failure; may be NULL.
 * @param err optional error detail.
 * @return `RMQS_OK` when all were accepted; otherwise the status of the first message not
 *         accepted (as `rmqs_producer_send_message()`), the ones before it being accepted.
 *
 * Thread-safe; blocking as `rmqs_producer_send()`, up to `send_timeout_ms` in total. Allocates
 * one array of `count` entries per call.
 *
 * @ingroup rmqs_producer
 */
RMQS_MUST_USE
rmqs_status rmqs_producer_send_messages(struct rmqs_producer *p,
                                        const struct rmqs_message_builder *const *msgs,
                                        const size_t *tags,
                                        size_t count,
                                        uint32_t flags,
                                        size_t *accepted,
                                        struct rmqs_error **err);

/**
 * Sends several messages in order (their publishing ids increase in that order). Each body is
 * copied; each message's confirm comes later with its tag.
 *
 * @param p the producer (borrowed).
 * @param bodies `count` bodies (borrowed for the call; each copied).
 * @param tags `count` tags, or NULL for tag 0 everywhere.
 * @param count number of messages.
 * @param flags `RMQS_SEND_RAW`, `RMQS_SEND_NO_BLOCK`.
 * @param accepted receives how many messages (a prefix of `bodies`) were accepted, also on
 *        failure (the one exception to "outputs only on success"); may be NULL.
 * @param err optional error detail.
 * @return `RMQS_OK` when all were accepted; otherwise the status of the first message not
 *         accepted (as `rmqs_producer_send()`), the ones before it being accepted.
 *
 * Thread-safe; blocking as `rmqs_producer_send()`, up to `send_timeout_ms` in total.
 *
 * @ingroup rmqs_producer
 */
RMQS_MUST_USE
rmqs_status rmqs_producer_send_batch(struct rmqs_producer *p,
                                     const struct rmqs_bytes *bodies,
                                     const size_t *tags,
                                     size_t count,
                                     uint32_t flags,
                                     size_t *accepted,
                                     struct rmqs_error **err);

/**
 * Sends what is batched and waits until every accepted message has its confirm (and, in
 * callback mode, the callback for it has returned).
 *
 * @param p the producer (borrowed).
 * @param timeout_ms negative = no limit; 0 = only send the partial batch and report whether
 *        anything is still unconfirmed.
 * @return `RMQS_OK` (everything that was in flight is confirmed); `RMQS_ERR_TIMEOUT` when
 *         messages were still unconfirmed after `timeout_ms`; `RMQS_ERR_NOT_CONFIRMED` when
 *         some completed with an error while it waited (their confirms say which);
 *         `RMQS_ERR_WOULD_DEADLOCK` from a library callback (timeout other than
 *         0); `RMQS_ERR_INVALID_ARGUMENT` for a NULL handle.
 *
 * Thread-safe; blocks up to `timeout_ms`.
 *
 * @ingroup rmqs_producer
 */
RMQS_MUST_USE
rmqs_status rmqs_producer_flush(struct rmqs_producer *p,
                                int32_t timeout_ms,
                                struct rmqs_error **err);

/**
 * Closes the producer: no more sends (`RMQS_ERR_CLOSED`), the batched messages go out, and it
 * waits up to `timeout_ms` for outstanding confirms; messages still unconfirmed then get a
 * confirm with `RMQS_ERR_TIMEOUT` (they went out: outcome unknown) or `RMQS_ERR_CLOSED` (they
 * never did). Then the publisher is deleted on the broker and the final `RMQS_STATE_CLOSED`
 * state event goes out. Closing again returns `RMQS_OK`. In callback mode the confirm callbacks
 * of these last outcomes may still be running when it returns; `rmqs_producer_free()` waits
 * for them.
 *
 * @param p the producer (borrowed; still to be freed).
 * @param timeout_ms negative = no limit; 0 = close in the background and return at once.
 * @return `RMQS_OK`: everything sent was confirmed; `RMQS_ERR_TIMEOUT` when confirms were
 *         missing at the deadline; `RMQS_ERR_NOT_CONFIRMED` when every message completed in
 *         time but some with an error (the producer is closed all the same in both cases);
 *         `RMQS_ERR_WOULD_DEADLOCK` from a library callback with a timeout other than 0.
 *
 * Thread-safe; blocks up to `timeout_ms` (the broker's answer to the publisher's deletion is
 * awaited only within it).
 *
 * @ingroup rmqs_producer
 */
RMQS_MUST_USE
rmqs_status rmqs_producer_close(struct rmqs_producer *p,
                                int32_t timeout_ms,
                                struct rmqs_error **err);

/**
 * The last publishing id the producer assigned (for a named producer that has not sent yet,
 * the broker's last id for the name).
 *
 * @param p the producer (borrowed).
 * @param out receives the id.
 * @return false when there is none yet, or on NULL arguments.
 *
 * Thread-safe; does not block.
 *
 * @ingroup rmqs_producer
 */
bool rmqs_producer_last_id(const struct rmqs_producer *p, uint64_t *out);

/**
 * Frees a producer, closing it first if needed (waiting up to 5 s for confirms), then waiting
 * for its last confirm callback and for `user_data_free` (run on a dispatcher thread). NULL is
 * allowed.
 *
 * @param p the producer (ownership passes to the library), or NULL.
 *
 * Blocks while closing. Called from a library callback (its own or another's), the work
 * moves to a background thread and the call returns at once.
 *
 * @ingroup rmqs_producer
 */
void rmqs_producer_free(struct rmqs_producer *p);

/**
 * Subscribes to `stream`.
 *
 * Opens (or shares) a data connection to a replica of the stream and subscribes from the
 * `offset` key (default `next`) with `initial_credit` credits. Consumers spread over the
 * replicas (the one with the fewest consumers of this connection first) and never share the
 * leader's data connection while a replica is reachable; a replica that refuses connections
 * is skipped for another, then for the leader (and the stream's leader when it has no
 * replica).
 *
 * Recovery (connection key `recovery`, on by default): when its connection is lost, its node
 * restarts or its member of the stream moves, the consumer reports `RMQS_STATE_RECOVERING`,
 * subscribes again (placed as above) right after the last offset it delivered, and reports
 * `RMQS_STATE_RECOVERED`: the application sees no gap and no repeat. A single active consumer
 * rejoins its group; when it is activated again it starts no earlier than right after what it
 * delivered. Offset tracking goes on. A deleted stream ends it: `RMQS_STATE_CLOSED` with
 * `RMQS_ERR_STREAM_DOES_NOT_EXIST`.
 *
 * Chunks go to `chunk_cb` on a dispatcher thread when it is given, else to `queue` as
 * `RMQS_EVENT_CHUNK` events; at least one of the two is required. Errors (`RMQS_EVENT_ERROR`,
 * e.g. a chunk failing its CRC check) and the final `RMQS_EVENT_STATE` (`RMQS_STATE_CLOSED`:
 * closed by the application with status `RMQS_OK`, or the stream or connection lost, with the
 * reason) go to `queue` when it is given. A single active consumer's activations and
 * step-downs go to the config's consumer-update callback (`rmqs_config_set_consumer_update_cb`)
 * when it has one, else to `queue` as `RMQS_EVENT_CONSUMER_UPDATE` events, else get the
 * default answer at once. The config's post-filter (`rmqs_config_set_post_filter_cb`) and
 * tracking callback (`rmqs_config_set_tracking_cb`) are used by this consumer until it is
 * freed.
 *
 * With offset tracking (key `tracking`), the offset stored under the tracking reference is
 * looked up first and reading starts right after it (the `offset` key only applies when none
 * is stored).
 *
 * @param conn the connection (borrowed).
 * @param stream the stream name, 1 to 255 bytes (borrowed).
 * @param cfg consumer keys (see `rmqs_config_set()`; borrowed, copied), layered over the
 *        connection's `consumer.*` keys; NULL for those alone.
 * @param chunk_cb chunk callback, or NULL.
 * @param user_data passed to `chunk_cb`; ownership passes to the library on success only.
 * @param user_data_free run once with `user_data` after the last callback (when the consumer
 *        is freed); NULL if not needed. Not called when this function fails.
 * @param queue the queue for chunks (without `chunk_cb`), errors and state events, borrowed
 *        (the consumer keeps its own reference); NULL for none.
 * @param tag returned by `rmqs_event_source_tag()` for this consumer's events.
 * @param out receives the consumer, owned by the caller (free with `rmqs_consumer_free()`),
 *        only on success.
 * @param err optional error detail.
 * @return `RMQS_OK`; `RMQS_ERR_INVALID_ARGUMENT` (neither callback nor queue, names, config);
 *         `RMQS_ERR_STREAM_DOES_NOT_EXIST` and other broker codes; `RMQS_ERR_CLOSED`,
 *         `RMQS_ERR_TIMEOUT`, `RMQS_ERR_IO`; `RMQS_ERR_WOULD_DEADLOCK` from a library callback.
 *
 * Thread-safe; blocks for a few round trips. Chunks may arrive before it returns.
 *
 * @ingroup rmqs_consumer
 */
RMQS_MUST_USE
rmqs_status rmqs_consumer_new(struct rmqs_connection *conn,
                              const char *stream,
                              const struct rmqs_config *cfg,
                              rmqs_chunk_cb chunk_cb,
                              void *user_data,
                              rmqs_free_cb user_data_free,
                              struct rmqs_queue *queue,
                              size_t tag,
                              struct rmqs_consumer **out,
                              struct rmqs_error **err);

/**
 * Grants the broker `credits` more chunks. The way to receive chunks with the `manual` credit
 * policy; adds to the automatic credit otherwise.
 *
 * @param c the consumer (borrowed).
 * @param credits 1 to 32767.
 * @return `RMQS_OK`; `RMQS_ERR_INVALID_ARGUMENT` (NULL, credits out of range);
 *         `RMQS_ERR_CLOSED`.
 *
 * Thread-safe, also from callbacks; does not block.
 *
 * @ingroup rmqs_consumer
 */
RMQS_MUST_USE
rmqs_status rmqs_consumer_credit(struct rmqs_consumer *c,
                                 uint32_t credits,
                                 struct rmqs_error **err);

/**
 * Stores `offset` on the broker under the consumer's `name` (StoreOffset; the broker does not
 * answer: `rmqs_consumer_query_offset()` shows when it is applied).
 *
 * @param c the consumer (borrowed).
 * @param offset the offset to store (usually that of the last message processed).
 * @param err optional error detail.
 * @return `RMQS_OK` once the frame is queued; `RMQS_ERR_INVALID_ARGUMENT` when the consumer has
 *         no name; `RMQS_ERR_CLOSED`.
 *
 * Thread-safe, also from callbacks; does not block.
 *
 * @ingroup rmqs_consumer
 */
RMQS_MUST_USE
rmqs_status rmqs_consumer_store_offset(struct rmqs_consumer *c,
                                       uint64_t offset,
                                       struct rmqs_error **err);

/**
 * The offset stored on the broker under the consumer's `name` (QueryOffset).
 *
 * @param c the consumer (borrowed).
 * @param out receives the offset, only on success.
 * @param err optional error detail.
 * @return `RMQS_OK`; `RMQS_ERR_NO_OFFSET` (19) when none is stored; `RMQS_ERR_INVALID_ARGUMENT`
 *         without a name; `RMQS_ERR_CLOSED`, `RMQS_ERR_TIMEOUT`; `RMQS_ERR_WOULD_DEADLOCK`
 *         from a library callback.
 *
 * Thread-safe; blocks for one round trip.
 *
 * @ingroup rmqs_consumer
 */
RMQS_MUST_USE
rmqs_status rmqs_consumer_query_offset(struct rmqs_consumer *c,
                                       uint64_t *out,
                                       struct rmqs_error **err);

/**
 * Stores the consumer's processed offset on the broker under its tracking reference (key
 * `tracking_reference`, else `name`), unless it is what was stored last: the offset of the
 * last message of the chunks released so far, in delivery order (a chunk released before an
 * earlier one does not count until that one is released too). For `tracking` = `manual`;
 * works with the other strategies too. StoreOffset has no reply:
 * `rmqs_consumer_query_offset()` shows when it is applied.
 *
 * @param c the consumer (borrowed).
 * @param offset_out receives the offset stored, on success; may be NULL.
 * @param err optional error detail.
 * @return `RMQS_OK`; `RMQS_ERR_NO_OFFSET` (19) when there was nothing new to store (nothing
 *         processed since the last store, or a single active consumer that is not the active
 *         one); `RMQS_ERR_INVALID_ARGUMENT` without a name or reference; `RMQS_ERR_CLOSED`.
 *
 * Thread-safe, also from callbacks; does not block.
 *
 * @ingroup rmqs_consumer
 */
RMQS_MUST_USE
rmqs_status rmqs_consumer_store_processed_offset(struct rmqs_consumer *c,
                                                 uint64_t *offset_out,
                                                 struct rmqs_error **err);

/**
 * Whether the consumer receives now: for a single active consumer (key
 * `single_active_consumer`), whether it is the active one of its group; for other consumers,
 * whether it is open. False for NULL.
 *
 * Thread-safe, also from callbacks; does not block.
 *
 * @ingroup rmqs_consumer
 */
bool rmqs_consumer_is_active(const struct rmqs_consumer *c);

/**
 * Closes the consumer: unsubscribes, and an `RMQS_EVENT_STATE` (`RMQS_STATE_CLOSED`, status
 * `RMQS_OK`) event goes to the queue. Chunks not yet handed to the callback are dropped;
 * chunks the application holds stay readable until released. Later calls fail with
 * `RMQS_ERR_CLOSED`; closing again returns `RMQS_OK`.
 *
 * @param c the consumer (borrowed; still to be freed).
 * @param timeout_ms bound for the Unsubscribe round trip; negative = no limit; 0 = close in
 *        the background and return at once.
 * @return `RMQS_OK`; `RMQS_ERR_TIMEOUT` (the consumer is closed all the same);
 *         `RMQS_ERR_WOULD_DEADLOCK` from a library callback with a timeout other than 0.
 *
 * Thread-safe; blocks up to `timeout_ms`.
 *
 * @ingroup rmqs_consumer
 */
RMQS_MUST_USE
rmqs_status rmqs_consumer_close(struct rmqs_consumer *c,
                                int32_t timeout_ms,
                                struct rmqs_error **err);

/**
 * Frees a consumer, closing it first if needed (5 s limit), then waiting for the callback in
 * progress, if any, and for `user_data_free` (run on a dispatcher thread). NULL is allowed.
 *
 * @param c the consumer (ownership passes to the library), or NULL.
 *
 * Blocks while closing. Called from a library callback (its own or another's), the work
 * moves to a background thread and the call returns at once.
 *
 * @ingroup rmqs_consumer
 */
void rmqs_consumer_free(struct rmqs_consumer *c);

/**
 * Sets the consumer-update callback of the consumers created with this config
 * (`rmqs_consumer_new()`; other uses of the config ignore it). It decides where a single
 * active consumer (key `single_active_consumer`) starts when the broker activates it. Without
 * one, a consumer created with a queue receives `RMQS_EVENT_CONSUMER_UPDATE` events instead
 * (answered with `rmqs_event_consumer_update_reply()`), and otherwise answers the default at
 * once.
 *
 * @param cfg the config (borrowed).
 * @param cb the callback (see `rmqs_consumer_update_cb` for its thread and rules), or NULL to
 *        remove the config's callback (`user_data` and `user_data_free` are then ignored).
 * @param user_data passed to every call of `cb`; ownership passes to the library on success.
 * @param user_data_free run exactly once with `user_data` after the last call of `cb`: when
 *        the config no longer holds the callback (freed, or given another one) and every
 *        consumer created with it is freed — normally inside `rmqs_consumer_free()` or
 *        `rmqs_config_free()`, whichever comes last, on that call's thread (a background
 *        thread when the consumer is freed from a library callback). NULL if not needed. Not
 *        called when this function fails.
 * @return `RMQS_OK`; `RMQS_ERR_INVALID_ARGUMENT` for a NULL or invalid config.
 *
 * Not thread-safe for one config; does not block (replacing an earlier callback of this config
 * runs its `user_data_free` here if no consumer uses it).
 *
 * @ingroup rmqs_consumer
 */
RMQS_MUST_USE
rmqs_status rmqs_config_set_consumer_update_cb(struct rmqs_config *cfg,
                                               rmqs_consumer_update_cb cb,
                                               void *user_data,
                                               rmqs_free_cb user_data_free,
                                               struct rmqs_error **err);

/**
 * Sets the post-filter of the consumers created with this config (`rmqs_consumer_new()`;
 * other uses of the config ignore it): a client-side predicate over each delivered message.
 * With broker-side filtering (key `filter_values`) it is what removes the messages of other
 * values that come along in the chunks the broker sends (the filter value itself is not
 * stored in the stream: decide from the body or the properties).
 *
 * @param cfg the config (borrowed).
 * @param cb the callback (see `rmqs_post_filter_cb` for its thread and rules), or NULL to
 *        remove the config's callback (`user_data` and `user_data_free` are then ignored).
 * @param user_data passed to every call of `cb`; ownership passes to the library on success.
 * @param user_data_free run exactly once with `user_data` after the last call of `cb`, as
 *        for `rmqs_config_set_consumer_update_cb()`. NULL if not needed. Not called when this
 *        function fails.
 * @return `RMQS_OK`; `RMQS_ERR_INVALID_ARGUMENT` for a NULL or invalid config.
 *
 * Not thread-safe for one config; does not block.
 *
 * @ingroup rmqs_consumer
 */
RMQS_MUST_USE
rmqs_status rmqs_config_set_post_filter_cb(struct rmqs_config *cfg,
                                           rmqs_post_filter_cb cb,
                                           void *user_data,
                                           rmqs_free_cb user_data_free,
                                           struct rmqs_error **err);

/**
 * Sets the offset-tracking callback of the consumers created with this config
 * (`rmqs_consumer_new()`; other uses of the config ignore it): with it, key `tracking`
 * defaults to `custom` (any other explicit value fails `rmqs_consumer_new()` with
 * `RMQS_ERR_INVALID_ARGUMENT`), and the consumer stores its processed offset whenever the
 * callback says so after a processed chunk (and once more on close).
 *
 * @param cfg the config (borrowed).
 * @param cb the callback (see `rmqs_tracking_cb` for its threads and rules), or NULL to
 *        remove the config's callback (`user_data` and `user_data_free` are then ignored).
 * @param user_data passed to every call of `cb`; ownership passes to the library on success.
 * @param user_data_free run exactly once with `user_data` after the last call of `cb`, as
 *        for `rmqs_config_set_consumer_update_cb()`. NULL if not needed. Not called when this
 *        function fails.
 * @return `RMQS_OK`; `RMQS_ERR_INVALID_ARGUMENT` for a NULL or invalid config.
 *
 * Not thread-safe for one config; does not block.
 *
 * @ingroup rmqs_consumer
 */
RMQS_MUST_USE
rmqs_status rmqs_config_set_tracking_cb(struct rmqs_config *cfg,
                                        rmqs_tracking_cb cb,
                                        void *user_data,
                                        rmqs_free_cb user_data_free,
                                        struct rmqs_error **err);

/**
 * Keeps a chunk beyond the callback or event that lent it.
 *
 * @param ch a chunk (borrowed).
 * @return `ch` itself, now with one more reference the caller owns and gives back with
 *         `rmqs_chunk_release()`; NULL when `ch` is NULL or invalid.
 *
 * Thread-safe; does not block.
 *
 * @ingroup rmqs_messages
 */
struct rmqs_chunk *rmqs_chunk_retain(const struct rmqs_chunk *ch);

/**
 * Gives back a reference taken with `rmqs_chunk_retain()`. The last reference frees the chunk
 * (and, with the `on_release` policy, grants the broker one credit). NULL is allowed.
 *
 * @param ch a pointer returned by `rmqs_chunk_retain()` (that reference passes to the
 *        library); not to be used afterwards unless other references remain.
 *
 * Thread-safe; does not block.
 *
 * @ingroup rmqs_messages
 */
void rmqs_chunk_release(struct rmqs_chunk *ch);

/**
 * The stream the chunk came from.
 *
 * @return a NUL-terminated string owned by the chunk; `""` for NULL. Never NULL.
 *
 * Thread-safe; does not block.
 *
 * @ingroup rmqs_messages
 */
const char *rmqs_chunk_stream(const struct rmqs_chunk *ch);

/**
 * The partition the chunk came from, for a chunk of an `rmqs_super_consumer`: its index in
 * the super consumer's partition list at delivery (`rmqs_super_consumer_partition()`;
 * `rmqs_chunk_stream()` names it).
 *
 * @return the index; -1 for a chunk of a plain `rmqs_consumer`, or for NULL.
 *
 * Thread-safe; does not block.
 *
 * @ingroup rmqs_messages
 */
int32_t rmqs_chunk_partition(const struct rmqs_chunk *ch);

/**
 * The chunk id: the offset of the chunk's first record (hidden ones included); 0 for NULL.
 *
 * Thread-safe; does not block.
 *
 * @ingroup rmqs_messages
 */
uint64_t rmqs_chunk_id(const struct rmqs_chunk *ch);

/**
 * Offset of the chunk's first visible message; 0 for NULL.
 *
 * Thread-safe; does not block.
 *
 * @ingroup rmqs_messages
 */
uint64_t rmqs_chunk_first_offset(const struct rmqs_chunk *ch);

/**
 * When the broker wrote the chunk, ms since the Unix epoch; 0 for NULL.
 *
 * Thread-safe; does not block.
 *
 * @ingroup rmqs_messages
 */
int64_t rmqs_chunk_timestamp(const struct rmqs_chunk *ch);

/**
 * The id of the last chunk committed when this one was sent (Deliver v2, RabbitMQ 3.11+).
 *
 * @param ch the chunk (borrowed).
 * @param out receives the id when known; may be NULL.
 * @return false when unknown (older broker) or `ch` is NULL.
 *
 * Thread-safe; does not block.
 *
 * @ingroup rmqs_messages
 */
bool rmqs_chunk_committed_id(const struct rmqs_chunk *ch, uint64_t *out);

/**
 * Number of visible messages (at or after the requested offset); 0 for NULL.
 *
 * Thread-safe; does not block.
 *
 * @ingroup rmqs_messages
 */
size_t rmqs_chunk_message_count(const struct rmqs_chunk *ch);

/**
 * The chunk's header fields.
 *
 * @param ch the chunk (borrowed).
 * @param out receives the header.
 * @return false when an argument is NULL.
 *
 * Thread-safe; does not block.
 *
 * @ingroup rmqs_messages
 */
bool rmqs_chunk_header(const struct rmqs_chunk *ch, struct rmqs_chunk_header_info *out);

/**
 * The chunk's data section as received (entries, possibly sub-entry batches, compressed).
 *
 * @param ch the chunk (borrowed).
 * @param len receives the length; may be NULL.
 * @return bytes owned by the chunk; NULL (and length 0) for NULL.
 *
 * Thread-safe; does not block.
 *
 * @ingroup rmqs_messages
 */
const uint8_t *rmqs_chunk_data(const struct rmqs_chunk *ch, size_t *len);

/**
 * Message `i` of the chunk (0 = the first visible one, at `rmqs_chunk_first_offset()`).
 *
 * @param ch the chunk (borrowed).
 * @param i position, below `rmqs_chunk_message_count()`.
 * @return a view owned by the chunk, valid as long as the chunk; NULL when `i` is out of
 *         range or `ch` is NULL. The first call indexes the chunk (one allocation).
 *
 * Thread-safe; does not block.
 *
 * @ingroup rmqs_messages
 */
const struct rmqs_message *rmqs_chunk_message(const struct rmqs_chunk *ch, size_t i);

/**
 * The message's offset in the stream; 0 for NULL.
 *
 * Thread-safe; does not block.
 *
 * @ingroup rmqs_messages
 */
uint64_t rmqs_message_offset(const struct rmqs_message *m);

/**
 * The message's timestamp: its chunk's, ms since the Unix epoch; 0 for NULL.
 *
 * Thread-safe; does not block.
 *
 * @ingroup rmqs_messages
 */
int64_t rmqs_message_timestamp(const struct rmqs_message *m);

/**
 * The application payload: the AMQP 1.0 data section when the record is an AMQP message with
 * a single one (what this library and the other stream clients publish by default, or an
 * amqp-value holding a binary or string), else the raw record bytes (`RMQS_SEND_RAW`
 * messages).
 *
 * @param m the message (borrowed).
 * @param len receives the length; may be NULL.
 * @return bytes owned by the chunk, valid as long as it; NULL with length 0 for NULL `m`
 *         (an empty body gives a non-NULL pointer and length 0).
 *
 * Thread-safe; does not block.
 *
 * @ingroup rmqs_messages
 */
const uint8_t *rmqs_message_body(const struct rmqs_message *m, size_t *len);

/**
 * The record exactly as stored in the stream (usually an encoded AMQP 1.0 message).
 *
 * @param m the message (borrowed).
 * @param len receives the length; may be NULL.
 * @return bytes owned by the chunk, valid as long as it; NULL with length 0 for NULL `m`.
 *
 * Thread-safe; does not block.
 *
 * @ingroup rmqs_messages
 */
const uint8_t *rmqs_message_raw(const struct rmqs_message *m, size_t *len);

/**
 * Whether the record is a well-formed AMQP 1.0 message; false for NULL.
 *
 * Thread-safe; does not block (the first accessor to need the record's sections parses it once).
 *
 * @ingroup rmqs_messages
 */
bool rmqs_message_is_amqp(const struct rmqs_message *m);

/**
 * A field of the message's AMQP properties section, as text.
 *
 * Strings, symbols and binaries (`user-id`, binary ids) are returned as stored, without a
 * copy; numbers (ulong ids, `group-sequence`), timestamps (ms since the epoch, in decimal) and
 * uuids (`8-4-4-4-12` hex) are formatted once and kept with the message.
 *
 * @param m the message (borrowed).
 * @param property one of `rmqs_property_code`.
 * @param value receives a pointer to the text, owned by the chunk and valid as long as it; not
 *        NUL-terminated (use `len`). May be NULL.
 * @param len receives the text's length. May be NULL.
 * @return true when the message is AMQP and has the field; false when absent, for a record
 *         that is not AMQP, an unknown `property` or a NULL `m` (outputs untouched).
 *
 * Thread-safe; does not block.
 *
 * @ingroup rmqs_messages
 */
bool rmqs_message_property(const struct rmqs_message *m,
                           int32_t property,
                           const char **value,
                           size_t *len);

/**
 * The application property `key` of an AMQP message, as text (see `rmqs_message_property()`
 * for how values become text; booleans are `true`/`false`). The first entry with that key
 * wins.
 *
 * @param m the message (borrowed).
 * @param key the property name (borrowed, NUL-terminated UTF-8).
 * @param value receives the text (owned by the chunk, not NUL-terminated). May be NULL.
 * @param len receives its length. May be NULL.
 * @return true when found; false when absent, not AMQP, for a value that has no text form
 *         (list, map, array, described) or NULL arguments.
 *
 * Thread-safe; does not block.
 *
 * @ingroup rmqs_messages
 */
bool rmqs_message_app_property(const struct rmqs_message *m,
                               const char *key,
                               const char **value,
                               size_t *len);

/**
 * Number of application properties of an AMQP message; 0 when none, not AMQP, or NULL.
 *
 * Thread-safe; does not block.
 *
 * @ingroup rmqs_messages
 */
size_t rmqs_message_app_property_count(const struct rmqs_message *m);

/**
 * Application property `i` (wire order): key and value as text.
 *
 * @param m the message (borrowed).
 * @param i position, below `rmqs_message_app_property_count()`.
 * @param key receives the key (owned by the chunk, not NUL-terminated). May be NULL.
 * @param key_len receives its length. May be NULL.
 * @param value receives the value as text. May be NULL.
 * @param value_len receives its length. May be NULL.
 * @return false when `i` is out of range, the value has no text form, or `m` is NULL.
 *
 * Thread-safe; does not block.
 *
 * @ingroup rmqs_messages
 */
bool rmqs_message_app_property_at(const struct rmqs_message *m,
                                  size_t i,
                                  const char **key,
                                  size_t *key_len,
                                  const char **value,
                                  size_t *value_len);

/**
 * The kind of body of the message: an `rmqs_body_type_code`. A message that carries more
 * than one kind (not allowed by the spec, but some clients write data and amqp-value) gives
 * its data sections, else its sequences.
 *
 * @return the code; `RMQS_BODY_RAW` for a record that is not AMQP, and for NULL.
 *
 * Thread-safe; does not block (the first accessor to need the record's sections parses it once).
 *
 * @ingroup rmqs_messages
 */
int32_t rmqs_message_body_type(const struct rmqs_message *m);

/**
 * Number of body sections of the message (data or amqp-sequence sections; 1 for an
 * amqp-value); 0 for a record that is not AMQP, a message without body, or NULL.
 *
 * Thread-safe; does not block.
 *
 * @ingroup rmqs_messages
 */
size_t rmqs_message_body_count(const struct rmqs_message *m);

/**
 * Body section `i` of the message, typed: a data section as `RMQS_VALUE_BINARY`, an
 * amqp-sequence section as `RMQS_VALUE_LIST` (read its items with `rmqs_value_list_get()`),
 * the amqp-value as whatever value it holds.
 *
 * @param m the message (borrowed).
 * @param i position, below `rmqs_message_body_count()`.
 * @param out receives the value; its bytes are owned by the chunk, valid as long as it. May be
 *        NULL.
 * @return false when `i` is out of range, the record is not AMQP, or `m` is NULL.
 *
 * Thread-safe; does not block.
 *
 * @ingroup rmqs_messages
 */
bool rmqs_message_body_section(const struct rmqs_message *m, size_t i, struct rmqs_value *out);

/**
 * A whole non-body section of the message, typed: the header and properties as
 * `RMQS_VALUE_LIST` (fields in wire order), annotations, application properties and footer
 * as `RMQS_VALUE_MAP` (read with `rmqs_value_count()`, `rmqs_value_map_entry()`,
 * `rmqs_value_map_get()`).
 *
 * @param m the message (borrowed).
 * @param section an `rmqs_section_code`.
 * @param out receives the section (bytes owned by the chunk); may be NULL.
 * @return true when the message has the section; false when it has not, the record is not
 *         AMQP, for another `section` or NULL `m`.
 *
 * Thread-safe; does not block.
 *
 * @ingroup rmqs_messages
 */
bool rmqs_message_section(const struct rmqs_message *m, int32_t section, struct rmqs_value *out);

/**
 * A header field of the message, typed as it was sent (e.g. `RMQS_VALUE_BOOL` for durable,
 * `RMQS_VALUE_UBYTE` for priority; another client may have used another integer type).
 *
 * @param m the message (borrowed).
 * @param field an `rmqs_header_code`.
 * @param out receives the value; may be NULL.
 * @return true when the message has the field; false when absent (the spec's default then
 *         applies), not AMQP, for an unknown field or NULL `m`.
 *
 * Thread-safe; does not block.
 *
 * @ingroup rmqs_messages
 */
bool rmqs_message_header_value(const struct rmqs_message *m, int32_t field, struct rmqs_value *out);

/**
 * A field of the message's properties section, typed as it was sent (the typed counterpart
 * of `rmqs_message_property()`): message-id as `ULONG`, `UUID`, `BINARY` or `STRING`, the
 * times as `TIMESTAMP`, content-type as `SYMBOL`...
 *
 * @param m the message (borrowed).
 * @param property an `rmqs_property_code`.
 * @param out receives the value (bytes owned by the chunk); may be NULL.
 * @return true when the message has the field; false when absent, not AMQP, for an unknown
 *         property or NULL `m`.
 *
 * Thread-safe; does not block.
 *
 * @ingroup rmqs_messages
 */
bool rmqs_message_property_value(const struct rmqs_message *m,
                                 int32_t property,
                                 struct rmqs_value *out);

/**
 * The application property `key` of the message, typed (the typed counterpart of
 * `rmqs_message_app_property()`; iterate all of them with `rmqs_message_section()` and
 * `rmqs_value_map_entry()`). The first entry with that key wins.
 *
 * @param m the message (borrowed).
 * @param key the name, NUL-terminated UTF-8 (borrowed).
 * @param out receives the value (bytes owned by the chunk); may be NULL.
 * @return true when found; false when absent, not AMQP, or NULL arguments.
 *
 * Thread-safe; does not block.
 *
 * @ingroup rmqs_messages
 */
bool rmqs_message_app_property_value(const struct rmqs_message *m,
                                     const char *key,
                                     struct rmqs_value *out);

/**
 * Reads a connection's counters. Before a lazy connection has connected they are all 0; after
 * `rmqs_connection_close()` they keep their last values (`data_connections` 0).
 *
 * @param conn the connection (borrowed).
 * @param out the caller's struct, with `out->size` set to `sizeof(rmqs_connection_statistics)`;
 *        filled (up to that size, `size` updated) only on success.
 * @return `RMQS_OK`; `RMQS_ERR_INVALID_ARGUMENT` for a NULL or invalid handle, a NULL `out`
 *         or an `out->size` smaller than the struct's first version.
 *
 * Thread-safe; does not block (relaxed atomic reads: counters read while traffic flows may be
 * a few frames apart from one another).
 *
 * @ingroup rmqs_connection
 */
RMQS_MUST_USE
rmqs_status rmqs_connection_stats(const struct rmqs_connection *conn,
                                  struct rmqs_connection_statistics *out,
                                  struct rmqs_error **err);

/**
 * Reads a producer's counters, at any time (after close too, until it is freed).
 *
 * @param p the producer (borrowed).
 * @param out the caller's struct, with `out->size` set to `sizeof(rmqs_producer_statistics)`;
 *        filled (up to that size, `size` updated) only on success.
 * @return `RMQS_OK`; `RMQS_ERR_INVALID_ARGUMENT` as `rmqs_connection_stats()`.
 *
 * Thread-safe; does not block.
 *
 * @ingroup rmqs_producer
 */
RMQS_MUST_USE
rmqs_status rmqs_producer_stats(const struct rmqs_producer *p,
                                struct rmqs_producer_statistics *out,
                                struct rmqs_error **err);

/**
 * Reads a consumer's counters, at any time (after close too, until it is freed).
 *
 * @param c the consumer (borrowed).
 * @param out the caller's struct, with `out->size` set to `sizeof(rmqs_consumer_statistics)`;
 *        filled (up to that size, `size` updated) only on success.
 * @return `RMQS_OK`; `RMQS_ERR_INVALID_ARGUMENT` as `rmqs_connection_stats()`.
 *
 * Thread-safe; does not block.
 *
 * @ingroup rmqs_consumer
 */
RMQS_MUST_USE
rmqs_status rmqs_consumer_stats(const struct rmqs_consumer *c,
                                struct rmqs_consumer_statistics *out,
                                struct rmqs_error **err);

/**
 * Sets the routing function of the super producers created with this config
 * (`rmqs_super_producer_new()`; other uses of the config ignore it): it replaces `hash` and
 * `key` routing (the `routing` key must then be unset).
 *
 * @param cfg the config (borrowed).
 * @param cb the function (see `rmqs_routing_cb`: called on the sending thread), or NULL to
 *        remove the config's function (`user_data` and `user_data_free` are then ignored).
 * @param user_data passed to every call of `cb`; ownership passes to the library on success.
 * @param user_data_free run exactly once with `user_data` after the last call of `cb`: when
 *        the config no longer holds the function (freed, or given another one) and every super
 *        producer created with it is freed, on the thread making that last call. NULL if not
 *        needed. Not called when this function fails.
 * @return `RMQS_OK`; `RMQS_ERR_INVALID_ARGUMENT` for a NULL or invalid config.
 *
 * Not thread-safe for one config; does not block.
 *
 * @ingroup rmqs_producer
 */
RMQS_MUST_USE
rmqs_status rmqs_config_set_routing_cb(struct rmqs_config *cfg,
                                       rmqs_routing_cb cb,
                                       void *user_data,
                                       rmqs_free_cb user_data_free,
                                       struct rmqs_error **err);

/**
 * Sets the key extractor of the super producers created with this config
 * (`rmqs_super_producer_new()`; other uses of the config ignore it): it gives the routing
 * key of every message sent with a NULL `routing_key`.
 *
 * @param cfg the config (borrowed).
 * @param cb the function (see `rmqs_key_extractor_cb`: called on the sending thread), or NULL
 *        to remove the config's extractor (`user_data` and `user_data_free` are then ignored).
 * @param user_data passed to every call of `cb`; ownership passes to the library on success.
 * @param user_data_free as in `rmqs_config_set_routing_cb()`.
 * @return `RMQS_OK`; `RMQS_ERR_INVALID_ARGUMENT` for a NULL or invalid config.
 *
 * Not thread-safe for one config; does not block.
 *
 * @ingroup rmqs_producer
 */
RMQS_MUST_USE
rmqs_status rmqs_config_set_key_extractor(struct rmqs_config *cfg,
                                          rmqs_key_extractor_cb cb,
                                          void *user_data,
                                          rmqs_free_cb user_data_free,
                                          struct rmqs_error **err);

/**
 * Creates a producer on super stream `super_stream`.
 *
 * Asks the broker for the partitions (Partitions command; the super stream must exist and
 * have at least one); with the `eager` key it also creates every partition producer now,
 * else each is created by the first send routed to its partition. Routing: the config's
 * `routing` key (`hash`, the default, or `key`) or its routing callback
 * (`rmqs_config_set_routing_cb()`); routing keys come with each send or from the config's key
 * extractor (`rmqs_config_set_key_extractor()`).
 *
 * A named super producer (`name` key) gives that name to every partition producer: the broker
 * keeps one publishing sequence per partition under it, so each partition deduplicates on its
 * own and a restarted super producer continues on each after the last id the broker kept
 * there (as the Java and .NET clients do).
 *
 * Confirms go to `confirm_cb` on a dispatcher thread when it is given, else to `queue` as
 * `RMQS_EVENT_SUPER_CONFIRMS` events (`rmqs_event_super_confirms()`), else nowhere (flush
 * still waits for them); each names its partition. The final `RMQS_EVENT_STATE`
 * (`RMQS_STATE_CLOSED`) goes to `queue` when it is given. Every message a send accepted gets
 * exactly one confirm (one per copy when routing sends it to several partitions).
 *
 * @param conn the connection (borrowed).
 * @param super_stream the super stream name, 1 to 255 bytes (borrowed).
 * @param cfg super producer keys (see `rmqs_config_set()`: the producer keys, `routing`,
 *        `eager`) and callbacks (borrowed, copied; the callbacks are shared), layered over the
 *        connection's `producer.*` keys; NULL for those alone.
 * @param confirm_cb confirm callback, or NULL.
 * @param user_data passed to `confirm_cb`. Ownership passes to the library on success only.
 * @param user_data_free run once with `user_data` after the last callback (when the super
 *        producer is freed); NULL if not needed. Not called when this function fails.
 * @param queue the queue for confirms (without `confirm_cb`) and state events, borrowed (the
 *        super producer keeps its own reference); NULL for none.
 * @param tag returned by `rmqs_event_source_tag()` for this super producer's events (their
 *        source is `RMQS_SOURCE_SUPER_PRODUCER`).
 * @param out receives the super producer, owned by the caller (free with
 *        `rmqs_super_producer_free()`), only on success.
 * @param err optional error detail.
 * @return `RMQS_OK`; `RMQS_ERR_INVALID_ARGUMENT` (names, config, a super stream without
 *         partitions); `RMQS_ERR_STREAM_DOES_NOT_EXIST` (no such super stream, and on brokers
 *         before 3.13, which have none) and other broker codes, also those of creating the
 *         partition producers with `eager`; `RMQS_ERR_CLOSED`, `RMQS_ERR_TIMEOUT`,
 *         `RMQS_ERR_IO`; `RMQS_ERR_WOULD_DEADLOCK` from a library callback.
 *
 * Thread-safe; blocks for a round trip (plus the creation of every partition producer with
 * `eager`).
 *
 * @ingroup rmqs_producer
 */
RMQS_MUST_USE
rmqs_status rmqs_super_producer_new(struct rmqs_connection *conn,
                                    const char *super_stream,
                                    const struct rmqs_config *cfg,
                                    rmqs_super_confirm_cb confirm_cb,
                                    void *user_data,
                                    rmqs_free_cb user_data_free,
                                    struct rmqs_queue *queue,
                                    size_t tag,
                                    struct rmqs_super_producer **out,
                                    struct rmqs_error **err);

/**
 * Sends one message to the partition its routing key leads to. The body is copied; its
 * confirm comes later with `tag` and the partition.
 *
 * The first send routed to a partition creates that partition's producer, and with `key`
 * routing the first send of a routing key asks the broker where it goes (cached): such a send
 * blocks for that round trip whatever the flags (also in a library callback; `eager` avoids
 * the first).
 *
 * @param sp the super producer (borrowed).
 * @param routing_key the message's routing key, NUL-terminated UTF-8 (borrowed), or NULL to
 *        ask the config's key extractor (no extractor: `hash` and `key` routing fail with
 *        `RMQS_ERR_INVALID_ARGUMENT`, a routing callback gets `""`).
 * @param body the message body (borrowed for the call), NULL only when `len` is 0.
 * @param len its length.
 * @param tag returned in the message's `rmqs_super_confirm`.
 * @param flags `RMQS_SEND_RAW`, `RMQS_SEND_NO_BLOCK`, or 0.
 * @param err optional error detail.
 * @return `RMQS_OK` when accepted (a confirm follows for each copy, exactly once);
 *         `RMQS_ERR_INVALID_ARGUMENT` for a message routed nowhere (a key bound to no
 *         partition with `key` routing, a routing callback choosing none; the message starts
 *         with `"no route"`), a missing routing key, bad flags, a NULL body with a length;
 *         `RMQS_ERR_QUEUE_FULL`, `RMQS_ERR_TIMEOUT`, `RMQS_ERR_WOULD_DEADLOCK` as
 *         `rmqs_producer_send()` (for the partition's `max_in_flight`); `RMQS_ERR_CLOSED`;
 *         the errors of creating a partition producer. No confirm follows a failed send.
 *
 * Thread-safe; blocks as said above, and when the partition's producer is full and the send
 * may wait.
 *
 * @ingroup rmqs_producer
 */
RMQS_MUST_USE
rmqs_status rmqs_super_producer_send(struct rmqs_super_producer *sp,
                                     const char *routing_key,
                                     const uint8_t *body,
                                     size_t len,
                                     size_t tag,
                                     uint32_t flags,
                                     struct rmqs_error **err);

/**
 * Sends one message with options, and says where it went.
 *
 * A shorthand for a body alone: `rmqs_super_producer_send_message()` does the same with a
 * message builder (and any AMQP section besides); both make the same message for the core
 * and share one send path. Kept because a body-only send then needs no builder (the body is
 * copied once, straight into the frame), and the C++, Go and Zig bindings use it.
 *
 * @param sp the super producer (borrowed).
 * @param routing_key as in `rmqs_super_producer_send()`.
 * @param body the body (borrowed for the call), NULL only when `len` is 0.
 * @param len its length.
 * @param filter_value NUL-terminated UTF-8 filter value (RabbitMQ 3.13+), or NULL for none.
 * @param publishing_id used with `RMQS_SEND_PUBLISHING_ID`: the id on the partition the
 *        message goes to (ids are per partition); must be above every id used there before.
 * @param tag returned in the message's confirm.
 * @param flags `RMQS_SEND_RAW`, `RMQS_SEND_NO_BLOCK`, `RMQS_SEND_PUBLISHING_ID`.
 * @param partition_out receives the partition index (the first one when routing gives
 *        several), on success; may be NULL.
 * @param id_out receives the publishing id there, on success; may be NULL.
 * @param err optional error detail.
 * @return as `rmqs_super_producer_send()`.
 *
 * Thread-safe; blocking as `rmqs_super_producer_send()`.
 *
 * @ingroup rmqs_producer
 */
RMQS_MUST_USE
rmqs_status rmqs_super_producer_send_ex(struct rmqs_super_producer *sp,
                                        const char *routing_key,
                                        const uint8_t *body,
                                        size_t len,
                                        const char *filter_value,
                                        uint64_t publishing_id,
                                        size_t tag,
                                        uint32_t flags,
                                        uint32_t *partition_out,
                                        uint64_t *id_out,
                                        struct rmqs_error **err);

/**
 * Sends several messages in order, each routed by its own key. Consecutive messages going
 * to the same partition go to its producer together; order is kept per partition.
 *
 * @param sp the super producer (borrowed).
 * @param routing_keys `count` routing keys (NUL-terminated UTF-8, borrowed for the call); a
 *        NULL entry, or NULL for the whole array, asks the key extractor for that message.
 * @param bodies `count` bodies (borrowed for the call; each copied).
 * @param tags `count` tags, or NULL for tag 0 everywhere.
 * @param count number of messages.
 * @param flags `RMQS_SEND_RAW`, `RMQS_SEND_NO_BLOCK`.
 * @param accepted receives how many messages (a prefix of `bodies`) were accepted, also on
 *        failure; may be NULL.
 * @param err optional error detail.
 * @return `RMQS_OK` when all were accepted; otherwise the status of the first message not
 *         accepted (as `rmqs_super_producer_send()`), the ones before it being accepted.
 *
 * Thread-safe; blocking as `rmqs_super_producer_send()`, up to `send_timeout_ms` in total.
 *
 * @ingroup rmqs_producer
 */
RMQS_MUST_USE
rmqs_status rmqs_super_producer_send_batch(struct rmqs_super_producer *sp,
                                           const char *const *routing_keys,
                                           const struct rmqs_bytes *bodies,
                                           const size_t *tags,
                                           size_t count,
                                           uint32_t flags,
                                           size_t *accepted,
                                           struct rmqs_error **err);

/**
 * Sends one AMQP message built with an `rmqs_message_builder` (every section, its filter
 * value and publishing id) to the partition its routing key leads to, and says where it
 * went. The key comes from `routing_key`, else from the config's key extractor, which is
 * given the builder (so that it can read the key from a property). The message is copied;
 * the builder may be reused as soon as this returns.
 *
 * @param sp the super producer (borrowed).
 * @param routing_key as in `rmqs_super_producer_send()`.
 * @param msg the message (borrowed for the call, read only). Its publishing id, if set, is
 *        the id on the partition it goes to.
 * @param tag returned in the message's confirm.
 * @param flags `RMQS_SEND_NO_BLOCK`, or 0.
 * @param partition_out receives the partition index (the first one when routing gives
 *        several), on success; may be NULL.
 * @param id_out receives the publishing id there, on success; may be NULL.
 * @param err optional error detail.
 * @return as `rmqs_super_producer_send()`.
 *
 * Thread-safe (the super producer; the builder must not change during the call); blocking
 * as `rmqs_super_producer_send()`.
 *
 * @ingroup rmqs_producer
 */
RMQS_MUST_USE
rmqs_status rmqs_super_producer_send_message(struct rmqs_super_producer *sp,
                                             const char *routing_key,
                                             const struct rmqs_message_builder *msg,
                                             size_t tag,
                                             uint32_t flags,
                                             uint32_t *partition_out,
                                             uint64_t *id_out,
                                             struct rmqs_error **err);

/**
 * Sends one AMQP message made of a builder's sections and `body` as its one data section, in
 * place of the builder's body, to the partition its routing key leads to, and says where it
 * went: `rmqs_producer_send_message_body()` for a super stream. The builder is set up once and
 * sent with each body, never changed; its filter value and publishing id apply as with
 * `rmqs_super_producer_send_message()`, its own body is not sent and stays as it is. From
 * the second send of a builder not changed since, its sections before the body are copied as
 * one block prepared by the previous send, whichever partition the message goes to.
 *
 * Routing as `rmqs_super_producer_send_message()`: the key comes from `routing_key`, else
 * from the config's key extractor; the key extractor and the routing callback are given the
 * builder and `body` (the body sent, not the builder's own), so that a key can come from a
 * property or from the body.
 *
 * @param sp the super producer (borrowed).
 * @param routing_key as in `rmqs_super_producer_send()`.
 * @param msg the sections (borrowed for the call, read only: several threads may send the
 *        same builder at once while nobody changes it). Its publishing id, if set, is the id
 *        on the partition the message goes to.
 * @param body the body (borrowed for the call, copied), NULL only when `len` is 0.
 * @param len its length.
 * @param tag returned in the message's confirm.
 * @param flags `RMQS_SEND_NO_BLOCK`, or 0.
 * @param partition_out receives the partition index (the first one when routing gives
 *        several), on success; may be NULL.
 * @param id_out receives the publishing id there, on success; may be NULL.
 * @param err optional error detail.
 * @return as `rmqs_super_producer_send()`.
 *
 * Thread-safe (the super producer; the builder must not change during the call); blocking
 * as `rmqs_super_producer_send()`.
 *
 * @ingroup rmqs_producer
 */
RMQS_MUST_USE
rmqs_status rmqs_super_producer_send_message_body(struct rmqs_super_producer *sp,
                                                  const char *routing_key,
                                                  const struct rmqs_message_builder *msg,
                                                  const uint8_t *body,
                                                  size_t len,
                                                  size_t tag,
                                                  uint32_t flags,
                                                  uint32_t *partition_out,
                                                  uint64_t *id_out,
                                                  struct rmqs_error **err);

/**
 * Sends several AMQP messages in order, each routed by its own key, as
 * `rmqs_super_producer_send_batch()` does bodies.
 *
 * @param sp the super producer (borrowed).
 * @param routing_keys `count` routing keys (NUL-terminated UTF-8, borrowed for the call); a
 *        NULL entry, or NULL for the whole array, asks the key extractor for that message.
 * @param msgs `count` builders (borrowed for the call, read only).
 * @param tags `count` tags, or NULL for tag 0 everywhere.
 * @param count number of messages.
 * @param flags `RMQS_SEND_NO_BLOCK`, or 0.
 * @param accepted receives how many messages (a prefix of `msgs`) were accepted, also on
 *        failure; may be NULL.
 * @param err optional error detail.
 * @return `RMQS_OK` when all were accepted; otherwise the status of the first message not
 *         accepted, the ones before it being accepted.
 *
 * Thread-safe; blocking as `rmqs_super_producer_send()`, up to `send_timeout_ms` in total.
 *
 * @ingroup rmqs_producer
 */
RMQS_MUST_USE
rmqs_status rmqs_super_producer_send_messages(struct rmqs_super_producer *sp,
                                              const char *const *routing_keys,
                                              const struct rmqs_message_builder *const *msgs,
                                              const size_t *tags,
                                              size_t count,
                                              uint32_t flags,
                                              size_t *accepted,
                                              struct rmqs_error **err);

/**
 * Sends what every partition producer has batched and waits until every accepted message has
 * its confirm (and, in callback mode, the callback for it has returned).
 *
 * @param sp the super producer (borrowed).
 * @param timeout_ms negative = no limit; 0 = only send the partial batches and report whether
 *        anything is still unconfirmed.
 * @return `RMQS_OK`; `RMQS_ERR_TIMEOUT` when messages were still unconfirmed after
 *         `timeout_ms`; `RMQS_ERR_WOULD_DEADLOCK` from a library callback (timeout other than
 *         0); `RMQS_ERR_INVALID_ARGUMENT` for a NULL handle.
 *
 * Thread-safe; blocks up to `timeout_ms`.
 *
 * @ingroup rmqs_producer
 */
RMQS_MUST_USE
rmqs_status rmqs_super_producer_flush(struct rmqs_super_producer *sp,
                                      int32_t timeout_ms,
                                      struct rmqs_error **err);

/**
 * Asks the broker for the super stream's partitions again, so that partitions added since
 * the super producer was created (or last refreshed) are used: they are never picked up
 * silently. From then on `hash` routing spreads keys over the new count (as with the other
 * clients, a key may then go to another partition than before), `key` routing looks keys up
 * again, partitions that disappeared have their producers closed (given 10 s for their
 * confirms), and the other partitions keep theirs with their new index. With `eager` the new
 * partitions' producers are created before this returns.
 *
 * @param sp the super producer (borrowed).
 * @param count_out receives the number of partitions now, on success; may be NULL.
 * @param err optional error detail.
 * @return `RMQS_OK`; the broker's code (`RMQS_ERR_STREAM_DOES_NOT_EXIST` when the super
 *         stream is gone); `RMQS_ERR_CLOSED`, `RMQS_ERR_TIMEOUT`, `RMQS_ERR_IO`;
 *         `RMQS_ERR_WOULD_DEADLOCK` from a library callback.
 *
 * Thread-safe; blocks for a round trip (plus the new producers with `eager`). Sends running
 * meanwhile use the partitions of the moment they started.
 *
 * @ingroup rmqs_producer
 */
RMQS_MUST_USE
rmqs_status rmqs_super_producer_refresh(struct rmqs_super_producer *sp,
                                        size_t *count_out,
                                        struct rmqs_error **err);

/**
 * The number of partitions the super producer routes to (as of its creation or last
 * refresh).
 *
 * @param sp the super producer (borrowed).
 * @return the count; 0 for NULL.
 *
 * Thread-safe; does not block.
 *
 * @ingroup rmqs_producer
 */
size_t rmqs_super_producer_partition_count(const struct rmqs_super_producer *sp);

/**
 * The name (stream) of partition `index`: indices are those of confirms and routing
 * callbacks, in the broker's order (`<super-stream>-0`, `-1`, ... for a super stream created
 * with a partition count).
 *
 * @param sp the super producer (borrowed).
 * @param index 0 to `rmqs_super_producer_partition_count() - 1`.
 * @return a NUL-terminated string owned by the super producer, valid until it is freed (also
 *         across refreshes); NULL for an index out of range or a NULL handle.
 *
 * Thread-safe; does not block (callable from routing and confirm callbacks).
 *
 * @ingroup rmqs_producer
 */
const char *rmqs_super_producer_partition(const struct rmqs_super_producer *sp, size_t index);

/**
 * Counters summed over the partition producers alive now (those of partitions removed by a
 * refresh, or replaced after they were lost, no longer count). Extensible like
 * `rmqs_connection_statistics` (set `size` first).
 *
 * @param sp the super producer (borrowed).
 * @param out receives the counters.
 * @return `RMQS_OK`; `RMQS_ERR_INVALID_ARGUMENT` (NULL handle or `out`, `size` not set).
 *
 * Thread-safe; does not block.
 *
 * @ingroup rmqs_producer
 */
RMQS_MUST_USE
rmqs_status rmqs_super_producer_stats(const struct rmqs_super_producer *sp,
                                      struct rmqs_producer_statistics *out,
                                      struct rmqs_error **err);

/**
 * Closes the super producer: no more sends (`RMQS_ERR_CLOSED`), and every partition producer
 * is closed as `rmqs_producer_close()` (concurrently, each given `timeout_ms`): batched
 * messages go out, outstanding confirms are awaited, those still missing then complete with
 * `RMQS_ERR_CLOSED`. Then an `RMQS_EVENT_STATE` (`RMQS_STATE_CLOSED`) event goes to the
 * queue. Closing again returns `RMQS_OK`.
 *
 * @param sp the super producer (borrowed; still to be freed).
 * @param timeout_ms negative = no limit; 0 = close in the background and return at once.
 * @return `RMQS_OK`; `RMQS_ERR_TIMEOUT` when confirms were missing at the deadline (closed all
 *         the same); `RMQS_ERR_WOULD_DEADLOCK` from a library callback with a timeout other
 *         than 0.
 *
 * Thread-safe; blocks up to `timeout_ms` plus a round trip.
 *
 * @ingroup rmqs_producer
 */
RMQS_MUST_USE
rmqs_status rmqs_super_producer_close(struct rmqs_super_producer *sp,
                                      int32_t timeout_ms,
                                      struct rmqs_error **err);

/**
 * Frees a super producer, closing it first if needed (waiting up to 5 s for confirms), then
 * waiting for its last confirm callback and for `user_data_free` (run on a dispatcher thread)
 * (and, unless a config still holds them, the routing callback's and key extractor's). NULL is
 * allowed.
 *
 * @param sp the super producer (ownership passes to the library), or NULL.
 *
 * Blocks while closing. Called from a library callback, the work moves to a background
 * thread and the call returns at once.
 *
 * @ingroup rmqs_producer
 */
void rmqs_super_producer_free(struct rmqs_super_producer *sp);

/**
 * Subscribes to every partition of super stream `super_stream`: one consumer per partition
 * (as `rmqs_consumer_new()`, each on a replica of its partition when there is one), all with
 * the config's consumer keys and the subscription property `super-stream`.
 *
 * The config's `name` is every partition consumer's name: the offset-tracking reference (one
 * offset per partition: a super consumer restarted with the same name continues on each
 * partition after what it processed there) and, with `single_active_consumer`, the group: the
 * broker then lets one super consumer of the group receive from each partition, spreading the
 * partitions over the group's members and moving them when members come and go (the member
 * losing one stores its processed offset first with automatic tracking, and the next starts
 * right after it). A partition's activation or step-down goes to the config's consumer-update
 * callback (`rmqs_config_set_consumer_update_cb()`; `info->stream` names the partition: on the
 * dispatcher threads, in order with the chunks), else to `queue` as an
 * `RMQS_EVENT_CONSUMER_UPDATE` event (`rmqs_event_partition()` gives the partition), else the
 * default answer (right after the offset stored for the partition, else `offset`) goes at
 * once. The config's post-filter and tracking callbacks apply to every partition.
 *
 * Chunks go to `chunk_cb` on a dispatcher thread when it is given, else to `queue` as
 * `RMQS_EVENT_CHUNK` events; `rmqs_chunk_partition()` (and `rmqs_event_partition()`) gives
 * the partition's index, `rmqs_chunk_stream()` its name. The chunks of one partition come in
 * order; those of different partitions interleave (never concurrently in callback mode).
 * Errors of a partition (`RMQS_EVENT_ERROR`, with `rmqs_event_partition()`: a chunk failing
 * its CRC check, the partition's stream or connection lost — then
 * `rmqs_super_consumer_refresh()` subscribes it again) and the final `RMQS_EVENT_STATE`
 * (`RMQS_STATE_CLOSED`, when the application closes it) go to `queue` when it is given.
 *
 * @param conn the connection (borrowed).
 * @param super_stream the super stream name, 1 to 255 bytes (borrowed).
 * @param cfg super consumer keys (see `rmqs_config_set()`: the consumer keys and
 *        `added_partition_offset`; borrowed, copied), layered over the connection's
 *        `consumer.*` keys; NULL for those alone.
 * @param chunk_cb chunk callback (see `rmqs_chunk_cb`), or NULL.
 * @param user_data passed to `chunk_cb`; ownership passes to the library on success only.
 * @param user_data_free run once with `user_data` after the last callback (when the super
 *        consumer is freed); NULL if not needed. Not called when this function fails.
 * @param queue the queue for chunks (without `chunk_cb`), errors and state events, borrowed
 *        (the super consumer keeps its own reference); NULL for none.
 * @param tag returned by `rmqs_event_source_tag()` for this super consumer's events (their
 *        source is `RMQS_SOURCE_SUPER_CONSUMER`).
 * @param out receives the super consumer, owned by the caller (free with
 *        `rmqs_super_consumer_free()`), only on success.
 * @param err optional error detail.
 * @return `RMQS_OK`; `RMQS_ERR_INVALID_ARGUMENT` (neither callback nor queue, names, config, a
 *         super stream without partitions); `RMQS_ERR_STREAM_DOES_NOT_EXIST` (no such super
 *         stream, and on brokers before 3.13, which have none) and other broker codes;
 *         `RMQS_ERR_UNSUPPORTED` (single active consumer or filtering on a broker without
 *         them); `RMQS_ERR_CLOSED`, `RMQS_ERR_TIMEOUT`, `RMQS_ERR_IO`;
 *         `RMQS_ERR_WOULD_DEADLOCK` from a library callback. When a partition cannot be
 *         subscribed, those already subscribed are closed.
 *
 * Thread-safe; blocks for a few round trips per partition. Chunks may arrive before it
 * returns.
 *
 * @ingroup rmqs_consumer
 */
RMQS_MUST_USE
rmqs_status rmqs_super_consumer_new(struct rmqs_connection *conn,
                                    const char *super_stream,
                                    const struct rmqs_config *cfg,
                                    rmqs_chunk_cb chunk_cb,
                                    void *user_data,
                                    rmqs_free_cb user_data_free,
                                    struct rmqs_queue *queue,
                                    size_t tag,
                                    struct rmqs_super_consumer **out,
                                    struct rmqs_error **err);

/**
 * Asks the broker for the super stream's partitions again: partitions added since creation
 * (or the last refresh) get a consumer (starting at `added_partition_offset` when nothing is
 * stored for them), partitions that disappeared have theirs closed, and partitions whose
 * consumer was lost (stream unavailable, connection lost) are subscribed again, right after
 * the last message delivered (after the stored offset with tracking; as the broker decides
 * with a single active consumer). Partitions are never picked up silently.
 *
 * @param sc the super consumer (borrowed).
 * @param count_out receives the number of partitions now, on success; may be NULL.
 * @param err optional error detail.
 * @return `RMQS_OK`; the first error of a subscription (the other partitions are subscribed
 *         all the same; the failed one is tried again by the next refresh) or of the
 *         Partitions command; `RMQS_ERR_CLOSED`, `RMQS_ERR_TIMEOUT`;
 *         `RMQS_ERR_WOULD_DEADLOCK` from a library callback.
 *
 * Thread-safe; blocks for a round trip, plus the subscriptions.
 *
 * @ingroup rmqs_consumer
 */
RMQS_MUST_USE
rmqs_status rmqs_super_consumer_refresh(struct rmqs_super_consumer *sc,
                                        size_t *count_out,
                                        struct rmqs_error **err);

/**
 * The number of partitions the super consumer reads (as of its creation or last refresh).
 *
 * @return the count; 0 for NULL.
 *
 * Thread-safe; does not block.
 *
 * @ingroup rmqs_consumer
 */
size_t rmqs_super_consumer_partition_count(const struct rmqs_super_consumer *sc);

/**
 * The name (stream) of partition `index`, in the broker's order (the indices of
 * `rmqs_chunk_partition()`).
 *
 * @param sc the super consumer (borrowed).
 * @param index 0 to `rmqs_super_consumer_partition_count() - 1`.
 * @return a NUL-terminated string owned by the super consumer, valid until it is freed (also
 *         across refreshes); NULL for an index out of range or a NULL handle.
 *
 * Thread-safe; does not block (callable from chunk callbacks).
 *
 * @ingroup rmqs_consumer
 */
const char *rmqs_super_consumer_partition(const struct rmqs_super_consumer *sc, size_t index);

/**
 * Whether this super consumer receives from partition `index` now: its consumer is open and,
 * with `single_active_consumer`, the active one of its group.
 *
 * @return false for an index out of range, a NULL handle, or once closed.
 *
 * Thread-safe; does not block.
 *
 * @ingroup rmqs_consumer
 */
bool rmqs_super_consumer_is_active(const struct rmqs_super_consumer *sc, size_t index);

/**
 * Grants the broker `credits` more chunks on partition `index` (as `rmqs_consumer_credit()`).
 *
 * @return `RMQS_OK`; `RMQS_ERR_INVALID_ARGUMENT` (NULL, index or credits out of range);
 *         `RMQS_ERR_CLOSED`.
 *
 * Thread-safe, also from callbacks; does not block.
 *
 * @ingroup rmqs_consumer
 */
RMQS_MUST_USE
rmqs_status rmqs_super_consumer_credit(struct rmqs_super_consumer *sc,
                                       size_t index,
                                       uint32_t credits,
                                       struct rmqs_error **err);

/**
 * Stores `offset` for partition `index` under the super consumer's name (StoreOffset on that
 * partition; as `rmqs_consumer_store_offset()`).
 *
 * @param sc the super consumer (borrowed).
 * @param index the partition.
 * @param offset the offset to store (usually that of the last message processed there).
 * @param err optional error detail.
 * @return `RMQS_OK` once the frame is queued; `RMQS_ERR_INVALID_ARGUMENT` without a name or for
 *         an index out of range; `RMQS_ERR_CLOSED`.
 *
 * Thread-safe, also from callbacks; does not block.
 *
 * @ingroup rmqs_consumer
 */
RMQS_MUST_USE
rmqs_status rmqs_super_consumer_store_offset(struct rmqs_super_consumer *sc,
                                             size_t index,
                                             uint64_t offset,
                                             struct rmqs_error **err);

/**
 * The offset stored for partition `index` under the super consumer's name (QueryOffset).
 *
 * @param sc the super consumer (borrowed).
 * @param index the partition.
 * @param out receives the offset, only on success.
 * @param err optional error detail.
 * @return `RMQS_OK`; `RMQS_ERR_NO_OFFSET` (19) when none is stored; `RMQS_ERR_INVALID_ARGUMENT`
 *         without a name or for an index out of range; `RMQS_ERR_CLOSED`, `RMQS_ERR_TIMEOUT`;
 *         `RMQS_ERR_WOULD_DEADLOCK` from a library callback.
 *
 * Thread-safe; blocks for one round trip.
 *
 * @ingroup rmqs_consumer
 */
RMQS_MUST_USE
rmqs_status rmqs_super_consumer_query_offset(struct rmqs_super_consumer *sc,
                                             size_t index,
                                             uint64_t *out,
                                             struct rmqs_error **err);

/**
 * Counters summed over the partition consumers (those of partitions removed by a refresh, or
 * replaced after they were lost, no longer count); `last_stored_offset` is `UINT64_MAX`
 * (offsets are per partition: `rmqs_super_consumer_query_offset()`). Extensible like
 * `rmqs_connection_statistics` (set `size` first).
 *
 * @return `RMQS_OK`; `RMQS_ERR_INVALID_ARGUMENT` (NULL handle or `out`, `size` not set).
 *
 * Thread-safe; does not block.
 *
 * @ingroup rmqs_consumer
 */
RMQS_MUST_USE
rmqs_status rmqs_super_consumer_stats(const struct rmqs_super_consumer *sc,
                                      struct rmqs_consumer_statistics *out,
                                      struct rmqs_error **err);

/**
 * Closes the super consumer: every partition consumer is closed as `rmqs_consumer_close()`
 * (concurrently; with automatic tracking each stores its processed offset first, so that the
 * other members of a single-active-consumer group continue right after it), then an
 * `RMQS_EVENT_STATE` (`RMQS_STATE_CLOSED`, status `RMQS_OK`) event goes to the queue. Chunks
 * not yet handed to the callback are dropped; chunks the application holds stay readable
 * until released. Later calls fail with `RMQS_ERR_CLOSED`; closing again returns `RMQS_OK`.
 *
 * @param sc the super consumer (borrowed; still to be freed).
 * @param timeout_ms bound for the unsubscriptions; negative = no limit; 0 = close in the
 *        background and return at once.
 * @return `RMQS_OK`; `RMQS_ERR_TIMEOUT` or the first error of an unsubscription (closed all
 *         the same); `RMQS_ERR_WOULD_DEADLOCK` from a library callback with a timeout other
 *         than 0.
 *
 * Thread-safe; blocks up to `timeout_ms`.
 *
 * @ingroup rmqs_consumer
 */
RMQS_MUST_USE
rmqs_status rmqs_super_consumer_close(struct rmqs_super_consumer *sc,
                                      int32_t timeout_ms,
                                      struct rmqs_error **err);

/**
 * Frees a super consumer, closing it first if needed (5 s limit), then waiting for the callback
 * in progress, if any, and for `user_data_free` (run on a dispatcher thread). NULL is allowed.
 *
 * @param sc the super consumer (ownership passes to the library), or NULL.
 *
 * Blocks while closing. Called from a library callback, the work moves to a background
 * thread and the call returns at once.
 *
 * @ingroup rmqs_consumer
 */
void rmqs_super_consumer_free(struct rmqs_super_consumer *sc);

/**
 * Sets the state callback of the producers, consumers, super producers and super consumers
 * created with this config (connections ignore it). The events also go to the object's queue,
 * when it has one, as `RMQS_EVENT_STATE` events.
 *
 * @param cfg the config (borrowed).
 * @param cb the callback (see `rmqs_state_cb` for its thread and rules), or NULL to remove the
 *        config's callback (`user_data` and `user_data_free` are then ignored).
 * @param user_data passed to every call of `cb`; ownership passes to the library on success.
 * @param user_data_free run exactly once with `user_data` once the config is freed (or given
 *        another callback) and every object created with it is freed, on the thread that
 *        drops the last of these; NULL if not needed. Not called when this function fails.
 * @param err optional error detail.
 * @return `RMQS_OK`; `RMQS_ERR_INVALID_ARGUMENT` for a NULL or invalid config.
 *
 * Not thread-safe for one config; does not block.
 *
 * @ingroup rmqs_events
 */
RMQS_MUST_USE
rmqs_status rmqs_config_set_state_cb(struct rmqs_config *cfg,
                                     rmqs_state_cb cb,
                                     void *user_data,
                                     rmqs_free_cb user_data_free,
                                     struct rmqs_error **err);

#ifdef __cplusplus
}  // extern "C"
#endif  // __cplusplus

#endif  /* RMQSTREAM_H */
