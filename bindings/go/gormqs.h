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
} gormqs_msg;

/* Describes the visible messages of a CHUNK event's chunk into out (up to cap entries).
 * Returns the total number of visible messages (call again with a larger buffer when it is
 * above cap). *chunk_id receives the chunk id, *stream its stream's name (owned by the
 * chunk). */
size_t gormqs_chunk_messages(const rmqs_event *ev, gormqs_msg *out, size_t cap,
                             uint64_t *chunk_id, const char **stream);

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
