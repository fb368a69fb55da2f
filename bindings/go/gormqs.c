#include "gormqs.h"

size_t gormqs_poll(rmqs_queue *q, rmqs_event **evs, gormqs_evinfo *infos, size_t cap,
                   int32_t timeout_ms) {
    size_t n = 0;
    /* a timeout leaves n at 0, as a wakeup does (the Go side polls again or stops) */
    if (rmqs_queue_poll_batch(q, evs, cap, timeout_ms, &n, NULL) != RMQS_OK) return 0;
    for (size_t i = 0; i < n; i++) {
        rmqs_event *ev = evs[i];
        gormqs_evinfo *in = &infos[i];
        in->ev = ev;
        in->tag = rmqs_event_source_tag(ev);
        in->type = rmqs_event_type(ev);
        in->source = rmqs_event_source(ev);
        in->state = 0;
        in->status = RMQS_OK;
        in->message = "";
        in->nconfirms = 0;
        in->partition = rmqs_event_partition(ev);
        switch (in->type) {
        case RMQS_EVENT_CONFIRMS:
            (void)rmqs_event_confirms(ev, &in->nconfirms, NULL);
            break;
        case RMQS_EVENT_SUPER_CONFIRMS:
            (void)rmqs_event_super_confirms(ev, &in->nconfirms, NULL);
            break;
        case RMQS_EVENT_STATE:
            in->state = rmqs_event_state(ev);
            /* fallthrough */
        case RMQS_EVENT_ERROR:
            in->status = rmqs_event_status(ev);
            in->message = rmqs_event_message(ev);
            break;
        default:
            break;
        }
    }
    return n;
}

size_t gormqs_take_confirms(rmqs_event *ev, rmqs_confirm *out, size_t cap) {
    size_t n = 0, stride = 0;
    const rmqs_confirm *c = rmqs_event_confirms(ev, &n, &stride);
    if (n > cap) n = cap;
    /* the library's struct may be larger than this header's: copy what this header knows */
    for (size_t i = 0; c != NULL && i < n; i++) {
        memcpy(&out[i], RMQS_AT(rmqs_confirm, c, stride, i), stride < sizeof *out ? stride : sizeof *out);
    }
    rmqs_event_free(ev);
    return n;
}

size_t gormqs_take_super_confirms(rmqs_event *ev, rmqs_super_confirm *out, size_t cap) {
    size_t n = 0, stride = 0;
    const rmqs_super_confirm *c = rmqs_event_super_confirms(ev, &n, &stride);
    if (n > cap) n = cap;
    /* the library's struct may be larger than this header's: copy what this header knows */
    for (size_t i = 0; c != NULL && i < n; i++) {
        memcpy(&out[i], RMQS_AT(rmqs_super_confirm, c, stride, i), stride < sizeof *out ? stride : sizeof *out);
    }
    rmqs_event_free(ev);
    return n;
}

size_t gormqs_chunk_messages(const rmqs_event *ev, gormqs_msg *out, size_t cap,
                             uint64_t *chunk_id, const char **stream) {
    const rmqs_chunk *ch = rmqs_event_chunk(ev);
    size_t n = rmqs_chunk_message_count(ch);
    *chunk_id = rmqs_chunk_id(ch);
    *stream = rmqs_chunk_stream(ch);
    if (n > cap) return n;
    for (size_t i = 0; i < n; i++) {
        const rmqs_message *m = rmqs_chunk_message(ch, i);
        out[i].offset = rmqs_message_offset(m);
        out[i].timestamp = rmqs_message_timestamp(m);
        out[i].body = rmqs_message_body(m, &out[i].len);
    }
    return n;
}

rmqs_status gormqs_send_concat(rmqs_producer *p, const uint8_t *data, const size_t *lens,
                               size_t count, uint32_t flags, size_t *accepted,
                               rmqs_error **err) {
    enum { SLICE = 256 };
    rmqs_bytes bodies[SLICE];
    size_t done = 0, pos = 0;
    rmqs_status st = RMQS_OK;
    while (done < count) {
        size_t k = count - done < SLICE ? count - done : SLICE;
        for (size_t i = 0; i < k; i++) {
            bodies[i].data = lens[done + i] ? data + pos : NULL;
            bodies[i].len = lens[done + i];
            pos += lens[done + i];
        }
        size_t acc = 0;
        st = rmqs_producer_send_batch(p, bodies, NULL, k, flags, &acc, err);
        done += acc;
        if (st != RMQS_OK) break;
    }
    *accepted = done;
    return st;
}

rmqs_status gormqs_super_send_concat(rmqs_super_producer *sp, const char *keys,
                                     const uint8_t *data, const size_t *lens, size_t count,
                                     uint32_t flags, size_t *accepted, rmqs_error **err) {
    enum { SLICE = 256 };
    rmqs_bytes bodies[SLICE];
    const char *ks[SLICE];
    size_t done = 0, pos = 0;
    rmqs_status st = RMQS_OK;
    while (done < count) {
        size_t k = count - done < SLICE ? count - done : SLICE;
        for (size_t i = 0; i < k; i++) {
            bodies[i].data = lens[done + i] ? data + pos : NULL;
            bodies[i].len = lens[done + i];
            pos += lens[done + i];
            ks[i] = keys;
            keys += strlen(keys) + 1;
        }
        size_t acc = 0;
        st = rmqs_super_producer_send_batch(sp, ks, bodies, NULL, k, flags, &acc, err);
        done += acc;
        if (st != RMQS_OK) break;
    }
    *accepted = done;
    return st;
}
