#include "gormqs.h"

#include <pthread.h>
#include <stdio.h>
#include <time.h>

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

/* --- received messages: their sections, encoded for Go --------------------------------- */

static int buf_reserve(gormqs_buf *b, size_t more) {
    if (b->len + more <= b->cap) return 1;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + more) cap *= 2;
    uint8_t *d = realloc(b->data, cap);
    if (d == NULL) return 0;
    b->data = d;
    b->cap = cap;
    return 1;
}

static int put(gormqs_buf *b, const void *p, size_t n) {
    if (!buf_reserve(b, n)) return 0;
    if (n) memcpy(b->data + b->len, p, n);
    b->len += n;
    return 1;
}

static int put_u8(gormqs_buf *b, uint8_t v) { return put(b, &v, 1); }
static int put_i32(gormqs_buf *b, int32_t v) { return put(b, &v, 4); }
static int put_u32(gormqs_buf *b, uint32_t v) { return put(b, &v, 4); }

static int is_compound(int32_t k) {
    return k == RMQS_VALUE_LIST || k == RMQS_VALUE_MAP || k == RMQS_VALUE_ARRAY ||
           k == RMQS_VALUE_DESCRIBED;
}

/* Appends v as the encoding's value (compounds recursively). */
static int put_value(gormqs_buf *b, const rmqs_value *v, int depth) {
    uint64_t scalar = 0;
    switch (v->kind) {
    case RMQS_VALUE_BOOL: scalar = v->bool_value ? 1 : 0; break;
    case RMQS_VALUE_FLOAT:
    case RMQS_VALUE_DOUBLE: memcpy(&scalar, &v->float_value, 8); break;
    case RMQS_VALUE_BYTE: case RMQS_VALUE_SHORT: case RMQS_VALUE_INT: case RMQS_VALUE_LONG:
    case RMQS_VALUE_TIMESTAMP: memcpy(&scalar, &v->int_value, 8); break;
    default: scalar = v->uint_value; break;
    }
    if (!put_i32(b, v->kind) || !put(b, &scalar, 8)) return 0;
    if (v->kind == RMQS_VALUE_UUID) return put_u32(b, 16) && put(b, v->uuid, 16);
    if (!is_compound(v->kind)) return put_u32(b, (uint32_t)v->len) && put(b, v->data, v->len);
    /* an array element that is itself a compound comes without its bytes: empty */
    size_t n = (v->data == NULL || depth > 32) ? 0 : rmqs_value_count(v);
    if (v->kind == RMQS_VALUE_DESCRIBED && n != 2) n = 0;
    if (!put_u32(b, (uint32_t)(v->kind == RMQS_VALUE_DESCRIBED ? (n ? 2 : 0) : n))) return 0;
    for (size_t i = 0; i < n; i++) {
        rmqs_value k, x;
        if (v->kind == RMQS_VALUE_MAP) {
            if (!rmqs_value_map_entry(v, i, &k, &x)) return 0;
            if (!put_value(b, &k, depth + 1) || !put_value(b, &x, depth + 1)) return 0;
        } else {
            if (!rmqs_value_list_get(v, i, &x)) return 0;
            if (!put_value(b, &x, depth + 1)) return 0;
        }
    }
    return 1;
}

/* Appends a map section's entries as op (with the section code first for annotations). */
static int put_map_section(gormqs_buf *b, const rmqs_message *m, int32_t section, uint8_t op) {
    rmqs_value sec;
    if (!rmqs_message_section(m, section, &sec)) return 1;
    size_t n = rmqs_value_count(&sec);
    for (size_t i = 0; i < n; i++) {
        rmqs_value k, v;
        if (!rmqs_value_map_entry(&sec, i, &k, &v)) return 0;
        if (!put_u8(b, op)) return 0;
        if (op == GORMQS_OP_ANNOTATION && !put_i32(b, section)) return 0;
        /* keys: string or symbol (anything else is skipped by Go: length 0) */
        size_t klen = (k.kind == RMQS_VALUE_STRING || k.kind == RMQS_VALUE_SYMBOL) ? k.len : 0;
        if (!put_u32(b, (uint32_t)klen) || !put(b, k.data, klen) || !put_u8(b, 0)) return 0;
        if (!put_value(b, &v, 0)) return 0;
    }
    return 1;
}

/* Appends the fields of the header or properties section (a list: field i is code i + 1;
 * null = absent) as op. One section read and a list walk, not one accessor per field: each
 * accessor call parses the record again. */
static int put_list_section(gormqs_buf *b, const rmqs_message *m, int32_t section, uint8_t op) {
    rmqs_value sec, v;
    if (!rmqs_message_section(m, section, &sec)) return 1;
    size_t n = rmqs_value_count(&sec);
    for (size_t i = 0; i < n; i++) {
        if (!rmqs_value_list_get(&sec, i, &v)) return 0;
        if (v.kind == RMQS_VALUE_NULL) continue;
        if (!put_u8(b, op) || !put_i32(b, (int32_t)i + 1) || !put_value(b, &v, 0)) return 0;
    }
    return 1;
}

/* Appends every section of m but a single data section body. */
static int put_sections(gormqs_buf *b, const rmqs_message *m) {
    if (!rmqs_message_is_amqp(m)) return 1;
    rmqs_value v;
    if (!put_list_section(b, m, RMQS_SECTION_HEADER, GORMQS_OP_HEADER) ||
        !put_list_section(b, m, RMQS_SECTION_PROPERTIES, GORMQS_OP_PROPERTY))
        return 0;
    if (!put_map_section(b, m, RMQS_SECTION_APPLICATION_PROPERTIES, GORMQS_OP_APP) ||
        !put_map_section(b, m, RMQS_SECTION_MESSAGE_ANNOTATIONS, GORMQS_OP_ANNOTATION) ||
        !put_map_section(b, m, RMQS_SECTION_DELIVERY_ANNOTATIONS, GORMQS_OP_ANNOTATION) ||
        !put_map_section(b, m, RMQS_SECTION_FOOTER, GORMQS_OP_ANNOTATION))
        return 0;
    int32_t bt = rmqs_message_body_type(m);
    size_t n = rmqs_message_body_count(m);
    if (bt == RMQS_BODY_DATA && n == 1) return 1; /* the body: rmqs_message_body */
    for (size_t i = 0; i < n; i++) {
        if (!rmqs_message_body_section(m, i, &v)) return 0;
        uint8_t op = bt == RMQS_BODY_DATA    ? GORMQS_OP_DATA
                     : bt == RMQS_BODY_VALUE ? GORMQS_OP_BODY_VALUE
                                             : GORMQS_OP_SEQUENCE;
        if (op == GORMQS_OP_DATA) {
            if (!put_u8(b, op) || !put_u32(b, (uint32_t)v.len) || !put(b, v.data, v.len)) return 0;
        } else if (!put_u8(b, op) || !put_value(b, &v, 0)) {
            return 0;
        }
    }
    return 1;
}

size_t gormqs_chunk_messages(const rmqs_event *ev, gormqs_msg *out, size_t cap,
                             uint64_t *chunk_id, const char **stream, gormqs_buf *secs) {
    const rmqs_chunk *ch = rmqs_event_chunk(ev);
    size_t n = rmqs_chunk_message_count(ch);
    *chunk_id = rmqs_chunk_id(ch);
    *stream = rmqs_chunk_stream(ch);
    secs->len = 0;
    if (n > cap) return n;
    for (size_t i = 0; i < n; i++) {
        const rmqs_message *m = rmqs_chunk_message(ch, i);
        out[i].offset = rmqs_message_offset(m);
        out[i].timestamp = rmqs_message_timestamp(m);
        out[i].body = rmqs_message_body(m, &out[i].len);
        out[i].sec_off = secs->len;
        if (!put_sections(secs, m)) {
            free(secs->data);
            secs->data = NULL;
            secs->len = secs->cap = 0;
            return 0;
        }
        out[i].sec_len = secs->len - out[i].sec_off;
    }
    return n;
}

/* --- messages to send: built from their encoding ---------------------------------------- */

typedef struct reader {
    const uint8_t *p, *end;
} reader;

static int get(reader *r, void *out, size_t n) {
    if ((size_t)(r->end - r->p) < n) return 0;
    memcpy(out, r->p, n);
    r->p += n;
    return 1;
}

/* A key: its bytes stay in the caller's buffer, NUL included. */
static int get_key(reader *r, const char **key) {
    uint32_t n;
    if (!get(r, &n, 4) || (size_t)(r->end - r->p) < (size_t)n + 1 || r->p[n] != 0) return 0;
    *key = (const char *)r->p;
    r->p += (size_t)n + 1;
    return 1;
}

/* A value of a simple kind (Go sends no compounds); data points into the caller's buffer. */
static int get_value(reader *r, rmqs_value *v) {
    uint64_t scalar;
    uint32_t n;
    memset(v, 0, sizeof *v);
    if (!get(r, &v->kind, 4) || !get(r, &scalar, 8) || !get(r, &n, 4)) return 0;
    if ((size_t)(r->end - r->p) < n) return 0;
    switch (v->kind) {
    case RMQS_VALUE_BOOL: v->bool_value = scalar != 0; break;
    case RMQS_VALUE_FLOAT:
    case RMQS_VALUE_DOUBLE: memcpy(&v->float_value, &scalar, 8); break;
    case RMQS_VALUE_BYTE: case RMQS_VALUE_SHORT: case RMQS_VALUE_INT: case RMQS_VALUE_LONG:
    case RMQS_VALUE_TIMESTAMP: memcpy(&v->int_value, &scalar, 8); break;
    case RMQS_VALUE_UUID:
        if (n != 16) return 0;
        memcpy(v->uuid, r->p, 16);
        break;
    default: v->uint_value = scalar; break;
    }
    v->data = n ? r->p : NULL;
    v->len = n;
    r->p += n;
    return 1;
}

static rmqs_status bad_encoding(rmqs_error **err) {
    /* the Go side wrote it: never expected; reported with the library's own wording */
    (void)err;
    return RMQS_ERR_INVALID_ARGUMENT;
}

/* Builds one message into b (reset first). */
static rmqs_status build(rmqs_message_builder *b, reader *r, rmqs_error **err) {
    rmqs_message_builder_reset(b);
    while (r->p < r->end) {
        uint8_t op;
        int32_t field;
        uint32_t n;
        const char *key;
        uint64_t id;
        rmqs_value v;
        rmqs_status st;
        if (!get(r, &op, 1)) return bad_encoding(err);
        switch (op) {
        case GORMQS_OP_BODY:
        case GORMQS_OP_DATA:
            if (!get(r, &n, 4) || (size_t)(r->end - r->p) < n) return bad_encoding(err);
            st = op == GORMQS_OP_BODY
                     ? rmqs_message_builder_set_body(b, n ? r->p : NULL, n, err)
                     : rmqs_message_builder_add_body_section(b, n ? r->p : NULL, n, err);
            r->p += n;
            break;
        case GORMQS_OP_BODY_VALUE:
            if (!get_value(r, &v)) return bad_encoding(err);
            st = rmqs_message_builder_set_body_value(b, &v, err);
            break;
        case GORMQS_OP_HEADER:
        case GORMQS_OP_PROPERTY:
            if (!get(r, &field, 4) || !get_value(r, &v)) return bad_encoding(err);
            st = op == GORMQS_OP_HEADER ? rmqs_message_builder_set_header(b, field, &v, err)
                                        : rmqs_message_builder_set_property(b, field, &v, err);
            break;
        case GORMQS_OP_APP:
            if (!get_key(r, &key) || !get_value(r, &v)) return bad_encoding(err);
            st = rmqs_message_builder_add_app_property(b, key, &v, err);
            break;
        case GORMQS_OP_ANNOTATION:
            if (!get(r, &field, 4) || !get_key(r, &key) || !get_value(r, &v))
                return bad_encoding(err);
            st = rmqs_message_builder_add_annotation(b, field, key, &v, err);
            break;
        case GORMQS_OP_FILTER:
            if (!get_key(r, &key)) return bad_encoding(err);
            st = rmqs_message_builder_set_filter_value(b, key, err);
            break;
        case GORMQS_OP_PUBLISHING_ID:
            if (!get(r, &id, 8)) return bad_encoding(err);
            st = rmqs_message_builder_set_publishing_id(b, id, err);
            break;
        default:
            return bad_encoding(err);
        }
        if (st != RMQS_OK) return st;
    }
    return RMQS_OK;
}

rmqs_status gormqs_send_encoded(rmqs_producer *p, rmqs_super_producer *sp,
                                rmqs_message_builder *b, const char *keys, const uint8_t *data,
                                const size_t *ends, const size_t *tags, size_t first,
                                size_t count, uint32_t flags,
                                size_t *accepted, uint32_t *partition_out, uint64_t *id_out,
                                rmqs_error **err) {
    size_t done = first, start = first ? ends[first - 1] : 0;
    rmqs_status st = RMQS_OK;
    for (; done < count; done++) {
        reader r = {data + start, data + ends[done]};
        st = build(b, &r, err);
        if (st != RMQS_OK) break;
        if (sp != NULL) {
            st = rmqs_super_producer_send_message(sp, keys, b, tags[done], flags, partition_out, id_out,
                                                  err);
            keys += strlen(keys) + 1;
        } else {
            st = rmqs_producer_send_message(p, b, tags[done], flags, id_out, err);
        }
        if (st != RMQS_OK) break;
        start = ends[done];
    }
    *accepted = done - first;
    return st;
}

rmqs_status gormqs_build(rmqs_message_builder *b, const uint8_t *data, size_t len, rmqs_error **err) {
    reader r = {data, len ? data + len : data};
    return build(b, &r, err);
}

/* --- the log ring ---------------------------------------------------------------------- */

struct gormqs_log {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    int refs;
    int ended;
    size_t cap, head, count;
    uint64_t dropped;
    gormqs_log_rec *recs;
};

gormqs_log *gormqs_log_new(size_t cap) {
    gormqs_log *l = calloc(1, sizeof *l);
    if (l == NULL) return NULL;
    l->recs = calloc(cap, sizeof *l->recs);
    if (l->recs == NULL) {
        free(l);
        return NULL;
    }
    pthread_mutex_init(&l->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&l->cond, &ca);
    pthread_condattr_destroy(&ca);
    l->cap = cap;
    l->refs = 1;
    return l;
}

static void log_unref(gormqs_log *l, int library) {
    pthread_mutex_lock(&l->mu);
    if (library) l->ended = 1;
    int last = --l->refs == 0;
    pthread_cond_broadcast(&l->cond);
    pthread_mutex_unlock(&l->mu);
    if (last) {
        pthread_cond_destroy(&l->cond);
        pthread_mutex_destroy(&l->mu);
        free(l->recs);
        free(l);
    }
}

/* rmqs_log_cb: copies the record into the ring (or counts it as dropped); never blocks for
 * long (the lock is held only to copy one record, or by a reader copying records out). */
static void log_cb(void *user_data, int32_t level, const char *target, const char *message) {
    gormqs_log *l = user_data;
    pthread_mutex_lock(&l->mu);
    if (l->count == l->cap) {
        l->dropped++;
    } else {
        gormqs_log_rec *r = &l->recs[(l->head + l->count) % l->cap];
        r->level = level;
        snprintf(r->target, sizeof r->target, "%s", target ? target : "");
        snprintf(r->message, sizeof r->message, "%s", message ? message : "");
        l->count++;
        pthread_cond_signal(&l->cond);
    }
    pthread_mutex_unlock(&l->mu);
}

static void log_free(void *user_data) { log_unref(user_data, 1); }

rmqs_status gormqs_config_set_log(rmqs_config *cfg, gormqs_log *l, rmqs_error **err) {
    (void)err;
    pthread_mutex_lock(&l->mu);
    l->refs++;
    pthread_mutex_unlock(&l->mu);
    rmqs_status st = rmqs_config_set_log_cb(cfg, log_cb, l, log_free, err);
    if (st != RMQS_OK) log_unref(l, 0); /* user_data_free is not called on failure */
    return st;
}

size_t gormqs_log_take(gormqs_log *l, gormqs_log_rec *out, size_t cap, int32_t timeout_ms,
                       uint64_t *dropped, int32_t *ended) {
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += timeout_ms / 1000;
    until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&l->mu);
    while (l->count == 0 && l->dropped == 0 && !l->ended) {
        if (pthread_cond_timedwait(&l->cond, &l->mu, &until) != 0) break;
    }
    size_t n = 0;
    for (; n < cap && l->count > 0; n++) {
        out[n] = l->recs[l->head];
        l->head = (l->head + 1) % l->cap;
        l->count--;
    }
    *dropped = l->dropped;
    l->dropped = 0;
    *ended = l->ended && l->count == 0;
    pthread_mutex_unlock(&l->mu);
    return n;
}

void gormqs_log_release(gormqs_log *l) { log_unref(l, 0); }

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
