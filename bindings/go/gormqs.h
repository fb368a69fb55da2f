/* C helpers of the Go binding: they turn several library calls into one cgo call ("fat calls")
 * and check the header version at compile time. Included by every Go file that uses cgo. */
#ifndef GORMQS_H
#define GORMQS_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "rmqstream.h"

/* The binding is written against the 0.1 API (0.x: minor versions may break). */
#if RMQS_VERSION_MAJOR != 0
#error "bindings/go supports rmqstream 0.x only (RMQS_VERSION_MAJOR != 0)"
#endif
#if RMQS_VERSION_MINOR < 1
#error "bindings/go needs rmqstream >= 0.1 (RMQS_VERSION_MINOR < 1)"
#endif

/* What the dispatcher needs to route one event, read from the event in the same cgo call that
 * polled it. */
typedef struct gormqs_evinfo {
    rmqs_event *ev;
    size_t tag;
    int32_t type;
    int32_t source;
    int32_t state;
    rmqs_status status;
    const char *message; /* owned by ev; "" unless STATE or ERROR */
    size_t nconfirms;    /* CONFIRMS and SUPER_CONFIRMS only */
    int32_t partition;   /* rmqs_event_partition */
} gormqs_evinfo;

/* Polls up to cap events (waiting up to timeout_ms for the first) and describes them. */
size_t gormqs_poll(rmqs_queue *q, rmqs_event **evs, gormqs_evinfo *infos, size_t cap,
                   int32_t timeout_ms);

/* Copies an event's confirms into out (cap entries) and frees the event. Returns how many
 * were copied. */
size_t gormqs_take_confirms(rmqs_event *ev, rmqs_confirm *out, size_t cap);

/* The same for an RMQS_EVENT_SUPER_CONFIRMS event. */
size_t gormqs_take_super_confirms(rmqs_event *ev, rmqs_super_confirm *out, size_t cap);

/* One message of a chunk, as the Go side needs it. */
typedef struct gormqs_msg {
    uint64_t offset;
    int64_t timestamp;
    const uint8_t *body;
    size_t len;
    /* The message's other sections, encoded (see "Message encoding" below) in the chunk's
     * gormqs_buf at [sec_off, sec_off + sec_len); sec_len is 0 for a plain body. */
    size_t sec_off, sec_len;
} gormqs_msg;

/* A growable C buffer, owned by one Go goroutine. */
typedef struct gormqs_buf {
    uint8_t *data;
    size_t len, cap;
} gormqs_buf;

/* Describes the visible messages of a CHUNK event's chunk into out (up to cap entries),
 * encoding the sections of each into secs (emptied first). Returns the total number of
 * visible messages (call again with a larger buffer when it is above cap; out and secs are
 * then not filled). *chunk_id receives the chunk id, *stream its stream's name (owned by the
 * chunk). Returns 0 with secs->data NULL when memory ran out. */
size_t gormqs_chunk_messages(const rmqs_event *ev, gormqs_msg *out, size_t cap,
                             uint64_t *chunk_id, const char **stream, gormqs_buf *secs);

/* Message encoding: how Go hands a message to gormqs_send_encoded and how
 * gormqs_chunk_messages hands a received one's sections to Go. A message is a sequence of
 * operations, each a one-byte code and its operands; integers are native-endian and
 * unaligned. A value is: int32 kind (rmqs_value_type_code), 8 bytes of scalar (the bool as
 * 0/1, the integer, the double's bits), uint32 n, then n bytes (string, symbol, binary,
 * decimal, uuid) or, for list, array and map, n values (a map: 2n, key then value) and for a
 * described value 2 (descriptor, value). A key is uint32 n then n bytes and a NUL. */
enum {
    GORMQS_OP_BODY = 1,         /* bytes: the body, one data section */
    GORMQS_OP_DATA = 2,         /* bytes: one more data section */
    GORMQS_OP_BODY_VALUE = 3,   /* value: an amqp-value body */
    GORMQS_OP_HEADER = 4,       /* int32 field, value */
    GORMQS_OP_PROPERTY = 5,     /* int32 property, value */
    GORMQS_OP_APP = 6,          /* key, value: an application property */
    GORMQS_OP_ANNOTATION = 7,   /* int32 section, key, value */
    GORMQS_OP_FILTER = 8,       /* key: the filter value */
    GORMQS_OP_PUBLISHING_ID = 9, /* uint64 */
    GORMQS_OP_SEQUENCE = 10,    /* value (a list): an amqp-sequence section (received only) */
};

/* Sends encoded messages first to count - 1 (message i in data[ends[i-1], ends[i]), the
 * first from 0), each built with b (reset before each). With sp (and p NULL) they go to the
 * super producer, routed by keys: NUL-terminated keys back to back, from message first's.
 * tags[i] is message i's confirm tag. *accepted receives how many were accepted;
 * *partition_out and *id_out (may be NULL) the last accepted one's partition and id. */
rmqs_status gormqs_send_encoded(rmqs_producer *p, rmqs_super_producer *sp,
                                rmqs_message_builder *b, const char *keys, const uint8_t *data,
                                const size_t *ends, const size_t *tags, size_t first, size_t count, uint32_t flags,
                                size_t *accepted, uint32_t *partition_out, uint64_t *id_out,
                                rmqs_error **err);

/* Builds the one encoded message data[0, len) into b (reset first): a Template's builder,
 * built once and then only read by rmqs_producer_send_message_body. */
rmqs_status gormqs_build(rmqs_message_builder *b, const uint8_t *data, size_t len, rmqs_error **err);

/* Log records, handed from the library's log callback (any thread) to one Go goroutine
 * through a bounded C ring: Go code never runs on a library thread. */
typedef struct gormqs_log gormqs_log;

/* One record, copied out of the ring by gormqs_log_take. */
typedef struct gormqs_log_rec {
    int32_t level;
    char target[32];
    char message[480];
} gormqs_log_rec;

/* A ring of cap records with two references: the Go side's and the library's (released by
 * the user_data_free of rmqs_config_set_log_cb). NULL when memory ran out. */
gormqs_log *gormqs_log_new(size_t cap);

/* Sets the ring as cfg's log callback (the library takes its reference on success). */
rmqs_status gormqs_config_set_log(rmqs_config *cfg, gormqs_log *l, rmqs_error **err);

/* Waits up to timeout_ms for records and copies up to cap of them into out. Returns how many;
 * *dropped receives the records lost to a full ring since the last call, *ended whether the
 * library released its reference (no record will come again). */
size_t gormqs_log_take(gormqs_log *l, gormqs_log_rec *out, size_t cap, int32_t timeout_ms,
                       uint64_t *dropped, int32_t *ended);

/* Releases the Go side's reference. */
void gormqs_log_release(gormqs_log *l);

/* Sends count messages whose bodies are concatenated in data (lens[i] bytes each) with
 * rmqs_producer_send_batch, in slices of at most 256 (the rmqs_bytes array is built here, on
 * the C stack, so no Go memory holds pointers). */
rmqs_status gormqs_send_concat(rmqs_producer *p, const uint8_t *data, const size_t *lens,
                               size_t count, uint32_t flags, size_t *accepted,
                               rmqs_error **err);

/* gormqs_send_concat for a super producer: keys holds count NUL-terminated routing keys back
 * to back. */
rmqs_status gormqs_super_send_concat(rmqs_super_producer *sp, const char *keys,
                                     const uint8_t *data, const size_t *lens, size_t count,
                                     uint32_t flags, size_t *accepted, rmqs_error **err);

#endif
