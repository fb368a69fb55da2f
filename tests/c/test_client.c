/*
 * The client through the C API against the broker (RMQS_TEST_URI, default
 * rabbitmq-stream://guest:guest@localhost:5552/%2f): open, create a stream, publish N messages
 * with a confirm callback, consume them back from the first offset through a queue and through
 * a callback, check every offset and body, delete the stream, close.
 *
 * Compiled as C11 and (via test_client_cxx.cpp) as C++17 with -Wall -Wextra -Werror -pedantic;
 * run under AddressSanitizer and valgrind by ctest. RMQS_TEST_MESSAGES overrides N (default
 * 1000). Prints "test_client: P passed, F failed"; exit status 1 on any failure.
 */
#include "common.h"

static size_t n_messages = 1000;

static void expected_body(size_t i, char *buf, size_t cap, size_t *len) {
    int n = snprintf(buf, cap, "message-%06zu-%.*s", i, (int)(i % 40),
                     "0123456789012345678901234567890123456789");
    *len = (size_t)n;
}

static int body_matches(size_t i, const uint8_t *body, size_t len) {
    char want[128];
    size_t want_len;
    expected_body(i, want, sizeof want, &want_len);
    return len == want_len && memcmp(body, want, len) == 0;
}

/* ---- producer ---------------------------------------------------------------------------- */

typedef struct {
    int freed;        /* first: count_free */
    size_t confirmed; /* written by the dispatcher thread only */
    size_t bad;
    unsigned char *seen; /* per tag */
} producer_state;

static void on_confirms(void *user_data, const rmqs_confirm *confirms, size_t count,
                        size_t stride) {
    producer_state *ps = (producer_state *)user_data;
    size_t i;
    for (i = 0; i < count; i++) {
        const rmqs_confirm *c = RMQS_AT(rmqs_confirm, confirms, stride, i);
        uintptr_t tag = c->tag;
        if (c->status != RMQS_OK || tag >= n_messages || ps->seen[tag]) {
            ps->bad++;
        } else {
            ps->seen[tag] = 1;
            ps->confirmed++;
        }
    }
}

static void produce(rmqs_connection *conn, const char *stream) {
    producer_state ps;
    rmqs_producer *p = NULL;
    rmqs_config *cfg = rmqs_config_new();
    rmqs_error *err = NULL;
    size_t i;
    memset(&ps, 0, sizeof ps);
    ps.seen = (unsigned char *)calloc(n_messages, 1);
    CHECK_OK(rmqs_config_set(cfg, "batch_size", "100", NULL));
    CHECK_OK(rmqs_config_set(cfg, "max_in_flight", "500", NULL));
    CHECK_OK(rmqs_producer_new(conn, stream, cfg, on_confirms, &ps, count_free, NULL, 0,
                               &p, &err));
    rmqs_config_free(cfg);
    if (p == NULL) {
        fprintf(stderr, "producer: %s\n", rmqs_error_message(err));
        rmqs_error_free(err);
        free(ps.seen);
        return;
    }
    for (i = 0; i < n_messages; i++) {
        char body[128];
        size_t len;
        expected_body(i, body, sizeof body, &len);
        if (rmqs_producer_send(p, (const uint8_t *)body, len, (uintptr_t)i, 0, NULL) != RMQS_OK) {
            failed++;
            fprintf(stderr, "send %zu failed\n", i);
            break;
        }
    }
    /* after flush every confirm callback has returned */
    CHECK_OK(rmqs_producer_flush(p, 30000, NULL));
    CHECK(ps.confirmed == n_messages);
    CHECK(ps.bad == 0);
    CHECK_OK(rmqs_producer_close(p, 10000, NULL));
    CHECK_OK(rmqs_producer_close(p, 10000, NULL)); /* twice is fine */
    CHECK(rmqs_producer_send(p, (const uint8_t *)"x", 1, 0, 0, NULL) == RMQS_ERR_CLOSED);
    CHECK(ps.freed == 0);
    rmqs_producer_free(p);
    CHECK(ps.freed == 1);
    free(ps.seen);
}

/* ---- consumer through a queue ------------------------------------------------------------ */

static void consume_queue(rmqs_connection *conn, const char *stream) {
    rmqs_queue *q = NULL;
    rmqs_consumer *c = NULL;
    rmqs_config *cfg = rmqs_config_new();
    size_t got = 0, bad = 0;
    time_t deadline = time(NULL) + 60;
    rmqs_event *events[8];
    CHECK_OK(rmqs_queue_new(&q, NULL));
    CHECK(rmqs_queue_fd(q) >= 0);
    CHECK_OK(rmqs_config_set(cfg, "offset", "first", NULL));
    CHECK_OK(rmqs_consumer_new(conn, stream, cfg, NULL, NULL, NULL, q, 42, &c, NULL));
    rmqs_config_free(cfg);
    while (c != NULL && got < n_messages && time(NULL) < deadline) {
        size_t k = 0, e;
        rmqs_status st = rmqs_queue_poll_batch(q, events, 8, 200, &k, NULL);
        CHECK(st == RMQS_OK || st == RMQS_ERR_TIMEOUT);
        for (e = 0; e < k; e++) {
            if (rmqs_event_type(events[e]) == RMQS_EVENT_CHUNK) {
                const rmqs_chunk *ch = rmqs_event_chunk(events[e]);
                size_t n = rmqs_chunk_message_count(ch), i;
                if (rmqs_event_source_tag(events[e]) != 42) bad++;
                for (i = 0; i < n; i++) {
                    const rmqs_message *m = rmqs_chunk_message(ch, i);
                    size_t len = 0;
                    const uint8_t *body = rmqs_message_body(m, &len);
                    if (rmqs_message_offset(m) != got || !body_matches(got, body, len)) bad++;
                    got++;
                }
            }
            rmqs_event_free(events[e]);
        }
    }
    CHECK(got == n_messages);
    CHECK(bad == 0);
    CHECK_OK(rmqs_consumer_close(c, 5000, NULL));
    {
        /* the last event: closed by the application */
        rmqs_event *ev = NULL;
        while (rmqs_queue_poll(q, 5000, &ev, NULL) == RMQS_OK && ev != NULL &&
               rmqs_event_type(ev) == RMQS_EVENT_CHUNK) {
            rmqs_event_free(ev);
            ev = NULL;
        }
        CHECK(ev != NULL && rmqs_event_type(ev) == RMQS_EVENT_STATE);
        CHECK(rmqs_event_state(ev) == RMQS_STATE_CLOSED);
        CHECK(rmqs_event_status(ev) == RMQS_OK);
        rmqs_event_free(ev);
    }
    rmqs_consumer_free(c);
    rmqs_queue_free(q);
}

/* ---- consumer through a callback --------------------------------------------------------- */

typedef struct {
    int freed;  /* first: count_free */
    size_t got; /* dispatcher thread only, read after rmqs_consumer_free */
    size_t bad;
    size_t chunks;
    rmqs_queue *done; /* woken when every message came */
} consumer_state;

static void on_chunk(void *user_data, const rmqs_chunk *ch) {
    consumer_state *cs = (consumer_state *)user_data;
    size_t n = rmqs_chunk_message_count(ch), i;
    uint64_t committed = 0;
    cs->chunks++;
    if (strncmp(rmqs_chunk_stream(ch), "rmqs-c-", 7) != 0) cs->bad++;
    (void)rmqs_chunk_committed_id(ch, &committed);
    for (i = 0; i < n; i++) {
        const rmqs_message *m = rmqs_chunk_message(ch, i);
        size_t len = 0;
        const uint8_t *body = rmqs_message_body(m, &len);
        if (rmqs_message_offset(m) != cs->got || !body_matches(cs->got, body, len)) cs->bad++;
        cs->got++;
    }
    /* a blocking call from a callback is refused with its own status, not a deadlock (nor a
     * NULL that looks like a timeout, which would make a poll loop spin) */
    if (cs->chunks == 1) {
        rmqs_event *ev = NULL;
        if (rmqs_queue_poll(cs->done, 1000, &ev, NULL) != RMQS_ERR_WOULD_DEADLOCK) cs->bad++;
        if (ev != NULL) cs->bad++;
        /* a poll that does not wait is allowed there */
        if (rmqs_queue_poll(cs->done, 0, &ev, NULL) != RMQS_ERR_TIMEOUT) cs->bad++;
    }
    if (cs->got == n_messages) rmqs_queue_wakeup(cs->done);
}

static void consume_callback(rmqs_connection *conn, const char *stream) {
    consumer_state cs;
    rmqs_consumer *c = NULL;
    rmqs_config *cfg = rmqs_config_new();
    memset(&cs, 0, sizeof cs);
    CHECK_OK(rmqs_queue_new(&cs.done, NULL));
    CHECK_OK(rmqs_config_set(cfg, "offset", "first", NULL));
    CHECK_OK(rmqs_config_set(cfg, "initial_credit", "2", NULL));
    CHECK_OK(rmqs_consumer_new(conn, stream, cfg, on_chunk, &cs, count_free, NULL, 0,
                               &c, NULL));
    rmqs_config_free(cfg);
    /* RMQS_OK without an event when woken (RMQS_ERR_TIMEOUT after 60 s) */
    {
        rmqs_event *ev = NULL;
        CHECK_OK(rmqs_queue_poll(cs.done, 60000, &ev, NULL));
        CHECK(ev == NULL);
    }
    rmqs_consumer_free(c); /* joins the dispatcher thread: cs is ours again */
    CHECK(cs.got == n_messages);
    CHECK(cs.bad == 0);
    CHECK(cs.chunks > 0);
    CHECK(cs.freed == 1);
    rmqs_queue_free(cs.done);
}

/* ---- state events: a stream deleted under a producer and a consumer ---------------------- */

typedef struct {
    int freed;       /* first: count_free */
    int closed;      /* RMQS_STATE_CLOSED events */
    int other;       /* any other state */
    rmqs_status why; /* status of the CLOSED event */
    rmqs_queue *done; /* woken on each CLOSED */
} state_seen;

static void on_state(void *user_data, rmqs_event_source_code source, size_t tag,
                     int32_t partition, rmqs_state_code state, rmqs_status status,
                     const char *message) {
    state_seen *ss = (state_seen *)user_data;
    (void)source;
    (void)tag;
    if (partition != -1 || message == NULL) ss->other++;
    if (state == RMQS_STATE_CLOSED) {
        ss->closed++;
        ss->why = status;
        rmqs_queue_wakeup(ss->done);
    } else {
        ss->other++;
    }
}

static void ignore_confirms(void *user_data, const rmqs_confirm *confirms, size_t count,
                            size_t stride) {
    (void)stride;
    (void)user_data;
    (void)confirms;
    (void)count;
}

static void ignore_chunk(void *user_data, const rmqs_chunk *ch) {
    (void)user_data;
    (void)ch;
}

static void state_on_deletion(rmqs_connection *conn, const char *base) {
    char stream[128];
    state_seen ps, cs;
    rmqs_producer *p = NULL;
    rmqs_consumer *c = NULL;
    rmqs_config *pcfg = rmqs_config_new(), *ccfg = rmqs_config_new();
    memset(&ps, 0, sizeof ps);
    memset(&cs, 0, sizeof cs);
    snprintf(stream, sizeof stream, "%s-deleted", base);
    CHECK_OK(rmqs_queue_new(&ps.done, NULL));
    CHECK_OK(rmqs_queue_new(&cs.done, NULL));
    CHECK_OK(rmqs_stream_create(conn, stream, NULL, NULL));
    CHECK_OK(rmqs_config_set_state_cb(pcfg, on_state, &ps, count_free, NULL));
    CHECK_OK(rmqs_config_set_state_cb(ccfg, on_state, &cs, count_free, NULL));
    CHECK_OK(rmqs_config_set(ccfg, "offset", "first", NULL));
    CHECK_OK(rmqs_producer_new(conn, stream, pcfg, ignore_confirms, NULL, NULL, NULL, 0, &p,
                               NULL));
    CHECK_OK(rmqs_consumer_new(conn, stream, ccfg, ignore_chunk, NULL, NULL, NULL, 0, &c, NULL));
    rmqs_config_free(pcfg); /* the objects keep the registration */
    rmqs_config_free(ccfg);
    CHECK_OK(rmqs_stream_delete(conn, stream, NULL));
    /* each waits for its CLOSED (a wakeup) for up to 30 s */
    {
        rmqs_event *ev = NULL;
        CHECK_OK(rmqs_queue_poll(ps.done, 30000, &ev, NULL)); /* RMQS_OK, no event: woken */
        CHECK(ev == NULL);
        CHECK_OK(rmqs_queue_poll(cs.done, 30000, &ev, NULL));
        CHECK(ev == NULL);
    }
    rmqs_producer_free(p); /* joins the dispatcher threads: the counts are ours again */
    rmqs_consumer_free(c);
    CHECK(ps.closed == 1 && cs.closed == 1);
    CHECK(ps.other == 0 && cs.other == 0); /* no RECOVERING for a deleted stream */
    CHECK(ps.why == RMQS_ERR_STREAM_DOES_NOT_EXIST);
    CHECK(cs.why == RMQS_ERR_STREAM_DOES_NOT_EXIST);
    CHECK(ps.freed == 1 && cs.freed == 1);
    rmqs_queue_free(ps.done);
    rmqs_queue_free(cs.done);
}

/* ---- main -------------------------------------------------------------------------------- */

int main(void) {
    const char *uri = test_uri();
    const char *n_env = getenv("RMQS_TEST_MESSAGES");
    rmqs_connection *conn = NULL;
    rmqs_error *err = NULL;
    char stream[96];
    bool exists = false;

    if (n_env != NULL && atoi(n_env) > 0) n_messages = (size_t)atoi(n_env);
    unique_name(stream, sizeof stream, "rmqs-c");

    /* a bad URI: a clear status and message */
    CHECK(rmqs_connection_open_uri("http://nowhere", &conn, &err) == RMQS_ERR_INVALID_ARGUMENT);
    CHECK(conn == NULL);
    CHECK(err != NULL && strlen(rmqs_error_message(err)) > 0);
    rmqs_error_free(err);
    err = NULL;

    if (rmqs_connection_open_uri(uri, &conn, &err) != RMQS_OK) {
        fprintf(stderr, "cannot connect to %s: %s\n", uri, rmqs_error_message(err));
        rmqs_error_free(err);
        failed++;
        return report("test_client");
    }
    CHECK(strlen(rmqs_connection_server_version(conn)) > 0);
    CHECK_OK(rmqs_stream_create(conn, stream, NULL, NULL));
    CHECK(rmqs_stream_create(conn, stream, NULL, NULL) == RMQS_ERR_STREAM_ALREADY_EXISTS);
    CHECK_OK(rmqs_stream_exists(conn, stream, &exists, NULL));
    CHECK(exists);

    produce(conn, stream);
    consume_queue(conn, stream);
    consume_callback(conn, stream);
    state_on_deletion(conn, stream);

    CHECK_OK(rmqs_stream_delete(conn, stream, NULL));
    CHECK_OK(rmqs_stream_exists(conn, stream, &exists, NULL));
    CHECK(!exists);
    CHECK_OK(rmqs_connection_close(conn, 5000, NULL));
    CHECK(rmqs_stream_exists(conn, stream, &exists, NULL) == RMQS_ERR_CLOSED);
    rmqs_connection_free(conn);

    return report("test_client");
}
