/*
 * Log callback, counters and configuration layering through the C API against the broker
 * (RMQS_TEST_URI, default rabbitmq-stream://guest:guest@localhost:5552/%2f):
 * - the log callback gets an info "connected" line naming the broker's version at open and an
 *   info line at close, nothing above the configured level, and its user_data_free runs once,
 *   inside rmqs_connection_free;
 * - producer, consumer and connection counters match what was sent and consumed (1000
 *   messages published and confirmed, then consumed);
 * - max_in_flight from the library default, the connection's producer.* default, the
 *   producer's own config, and a per-call RMQS_SEND_NO_BLOCK each override the level below.
 *
 * C11 with -Wall -Wextra -Werror -pedantic; run plain and under AddressSanitizer by ctest.
 * Prints "test_observability: P passed, F failed"; exit status 1 on any failure.
 */
#include "common.h"

#include <stdatomic.h>

#define N_MESSAGES 1000

/* ---- log capture: the callback may run on any thread, so everything here is atomic ------- */

typedef struct {
    atomic_int per_level[6];   /* index = level; 0 counts out-of-range levels */
    atomic_int bad_target;     /* target not one of the documented ones */
    atomic_int connected;      /* info lines starting "connected to" */
    atomic_int closed_by_app;  /* info lines saying "closed by the application" */
    atomic_int line_claimed;   /* the first "connected" line is copied once ... */
    atomic_int line_ready;     /* ... and published with release/acquire */
    char connected_line[512];
    atomic_int freed;
} log_state;

static void log_state_init(log_state *ls) {
    int i;
    for (i = 0; i < 6; i++) {
        atomic_init(&ls->per_level[i], 0);
    }
    atomic_init(&ls->bad_target, 0);
    atomic_init(&ls->connected, 0);
    atomic_init(&ls->closed_by_app, 0);
    atomic_init(&ls->line_claimed, 0);
    atomic_init(&ls->line_ready, 0);
    ls->connected_line[0] = '\0';
    atomic_init(&ls->freed, 0);
}

/* Quick and non-blocking, calls no rmqs_* function: the log_cb rules. */
static void on_log(void *user_data, int32_t level, const char *target, const char *message) {
    log_state *ls = (log_state *)user_data;
    atomic_fetch_add(&ls->per_level[level >= 1 && level <= 5 ? level : 0], 1);
    if (strcmp(target, "connection") != 0 && strcmp(target, "environment") != 0 &&
        strcmp(target, "producer") != 0 && strcmp(target, "consumer") != 0) {
        atomic_fetch_add(&ls->bad_target, 1);
    }
    if (level == RMQS_LOG_INFO && strncmp(message, "connected to", 12) == 0) {
        int expected = 0;
        atomic_fetch_add(&ls->connected, 1);
        if (atomic_compare_exchange_strong(&ls->line_claimed, &expected, 1)) {
            snprintf(ls->connected_line, sizeof ls->connected_line, "%s", message);
            atomic_store_explicit(&ls->line_ready, 1, memory_order_release);
        }
    }
    if (level == RMQS_LOG_INFO && strstr(message, "closed by the application") != NULL) {
        atomic_fetch_add(&ls->closed_by_app, 1);
    }
}

static void free_log_state(void *user_data) {
    atomic_fetch_add(&((log_state *)user_data)->freed, 1);
}

static rmqs_connection *open_logged(log_state *ls, const char *level) {
    rmqs_config *cfg = rmqs_config_new();
    rmqs_connection *conn = NULL;
    rmqs_error *err = NULL;
    CHECK_OK(rmqs_config_set(cfg, "uri", test_uri(), NULL));
    if (level != NULL) {
        CHECK_OK(rmqs_config_set(cfg, "log_level", level, NULL));
    }
    CHECK_OK(rmqs_config_set_log_cb(cfg, on_log, ls, free_log_state, NULL));
    CHECK_OK(rmqs_connection_open(cfg, &conn, &err));
    if (conn == NULL) {
        fprintf(stderr, "open: %s\n", rmqs_error_message(err));
        rmqs_error_free(err);
    }
    rmqs_config_free(cfg); /* the connection keeps the callback */
    return conn;
}

/* ---- producer and consumer counters ------------------------------------------------------ */

static void counters(rmqs_connection *conn, const char *stream) {
    rmqs_connection_statistics c0, c1, c2;
    rmqs_producer_statistics ps;
    rmqs_consumer_statistics cs;
    rmqs_producer *p = NULL;
    rmqs_consumer *c = NULL;
    rmqs_queue *q = NULL;
    rmqs_config *cfg;
    size_t i, got = 0;
    uint64_t chunks = 0;
    time_t deadline;

    memset(&c0, 0, sizeof c0);
    c0.size = sizeof c0;
    CHECK_OK(rmqs_connection_stats(conn, &c0, NULL));
    CHECK(c0.size == sizeof c0);
    CHECK(c0.connections_opened >= 1 && c0.frames_in > 0 && c0.frames_out > 0);

    CHECK_OK(rmqs_producer_new(conn, stream, NULL, NULL, NULL, NULL, NULL, 0, &p, NULL));
    if (p == NULL) {
        return;
    }
    for (i = 0; i < N_MESSAGES; i++) {
        char body[32];
        int n = snprintf(body, sizeof body, "counted-%05zu", i);
        if (rmqs_producer_send(p, (const uint8_t *)body, (size_t)n, i, 0, NULL) != RMQS_OK) {
            failed++;
            fprintf(stderr, "send %zu failed\n", i);
            break;
        }
    }
    CHECK_OK(rmqs_producer_flush(p, 30000, NULL));
    memset(&ps, 0, sizeof ps);
    ps.size = sizeof ps;
    CHECK_OK(rmqs_producer_stats(p, &ps, NULL));
    CHECK(ps.published == N_MESSAGES);
    CHECK(ps.confirmed == N_MESSAGES);
    CHECK(ps.errored == 0);
    CHECK(ps.in_flight == 0);

    memset(&c1, 0, sizeof c1);
    c1.size = sizeof c1;
    CHECK_OK(rmqs_connection_stats(conn, &c1, NULL));
    CHECK(c1.frames_out > c0.frames_out && c1.bytes_out > c0.bytes_out + 10 * N_MESSAGES);
    CHECK(c1.frames_in > c0.frames_in && c1.bytes_in > c0.bytes_in);
    CHECK(c1.connections_opened >= 2 && c1.data_connections >= 1);

    CHECK_OK(rmqs_queue_new(&q, NULL));
    cfg = rmqs_config_new();
    CHECK_OK(rmqs_config_set(cfg, "offset", "first", NULL));
    CHECK_OK(rmqs_consumer_new(conn, stream, cfg, NULL, NULL, NULL, q, 0, &c, NULL));
    rmqs_config_free(cfg);
    deadline = time(NULL) + 60;
    while (c != NULL && got < N_MESSAGES && time(NULL) < deadline) {
        rmqs_event *ev = NULL;
        if (rmqs_queue_poll(q, 100, &ev, NULL) != RMQS_OK || ev == NULL) {
            continue;
        }
        if (rmqs_event_type(ev) == RMQS_EVENT_CHUNK) {
            got += rmqs_chunk_message_count(rmqs_event_chunk(ev));
            chunks++;
        }
        rmqs_event_free(ev);
    }
    CHECK(got == N_MESSAGES);
    memset(&cs, 0, sizeof cs);
    cs.size = sizeof cs;
    CHECK_OK(rmqs_consumer_stats(c, &cs, NULL));
    CHECK(cs.messages == N_MESSAGES);
    CHECK(cs.chunks == chunks);
    CHECK(cs.bytes > 10 * N_MESSAGES);
    CHECK(cs.credits_granted >= 1);

    memset(&c2, 0, sizeof c2);
    c2.size = sizeof c2;
    CHECK_OK(rmqs_connection_stats(conn, &c2, NULL));
    CHECK(c2.bytes_in > c1.bytes_in + 10 * N_MESSAGES && c2.frames_in > c1.frames_in);

    /* the caller's size is checked */
    memset(&cs, 0, sizeof cs);
    CHECK(rmqs_consumer_stats(c, &cs, NULL) == RMQS_ERR_INVALID_ARGUMENT);
    CHECK(cs.messages == 0);

    rmqs_consumer_free(c);
    rmqs_producer_free(p);
    rmqs_queue_free(q);
}

/* ---- configuration layering: max_in_flight ----------------------------------------------- */

/* Sends until a send fails; returns how many were accepted, the failure in *st. */
static size_t fill(rmqs_producer *p, uint32_t flags, size_t limit, rmqs_status *st) {
    size_t i;
    *st = RMQS_OK;
    for (i = 0; i < limit; i++) {
        *st = rmqs_producer_send(p, (const uint8_t *)"layer", 5, 0, flags, NULL);
        if (*st != RMQS_OK) {
            return i;
        }
    }
    return limit;
}

static rmqs_producer *producer_with(rmqs_connection *conn, const char *stream, const char *k1,
                                    const char *v1, const char *k2, const char *v2) {
    rmqs_producer *p = NULL;
    rmqs_config *cfg = rmqs_config_new();
    CHECK_OK(rmqs_config_set(cfg, "batch_delay_ms", "60000", NULL)); /* keep them unconfirmed */
    if (k1 != NULL) {
        CHECK_OK(rmqs_config_set(cfg, k1, v1, NULL));
    }
    if (k2 != NULL) {
        CHECK_OK(rmqs_config_set(cfg, k2, v2, NULL));
    }
    CHECK_OK(rmqs_producer_new(conn, stream, cfg, NULL, NULL, NULL, NULL, 0, &p, NULL));
    rmqs_config_free(cfg);
    return p;
}

static void layering(rmqs_connection *plain, const char *stream) {
    rmqs_connection *conn = NULL;
    rmqs_config *cfg = rmqs_config_new();
    rmqs_producer *p;
    rmqs_status st = RMQS_OK;
    size_t n;

    /* 1. library default: 1000 */
    p = producer_with(plain, stream, "block_when_full", "false", "batch_size", "65535");
    if (p != NULL) {
        n = fill(p, 0, 20000, &st);
        CHECK(n == 1000 && st == RMQS_ERR_QUEUE_FULL);
        rmqs_producer_free(p);
    }

    /* 2. the connection's producer.max_in_flight 5 over the library's 1000 */
    CHECK_OK(rmqs_config_set(cfg, "uri", test_uri(), NULL));
    CHECK_OK(rmqs_config_set(cfg, "producer.max_in_flight", "5", NULL));
    CHECK_OK(rmqs_config_set(cfg, "producer.block_when_full", "false", NULL));
    CHECK_OK(rmqs_connection_open(cfg, &conn, NULL));
    rmqs_config_free(cfg);
    if (conn == NULL) {
        return;
    }
    p = producer_with(conn, stream, NULL, NULL, NULL, NULL);
    if (p != NULL) {
        n = fill(p, 0, 100, &st);
        CHECK(n == 5 && st == RMQS_ERR_QUEUE_FULL);
        rmqs_producer_free(p);
    }

    /* 3. the producer's max_in_flight 7 over the connection's 5 */
    p = producer_with(conn, stream, "max_in_flight", "7", NULL, NULL);
    if (p != NULL) {
        n = fill(p, 0, 100, &st);
        CHECK(n == 7 && st == RMQS_ERR_QUEUE_FULL);
        rmqs_producer_free(p);
    }

    /* 4. the producer's block_when_full=true over the connection's false: a full producer's
     * send waits for room and succeeds; the per-call RMQS_SEND_NO_BLOCK over it: fails at once */
    p = producer_with(conn, stream, "block_when_full", "true", NULL, NULL);
    if (p != NULL) {
        rmqs_producer_statistics ps;
        n = fill(p, 0, 5, &st);
        CHECK(n == 5 && st == RMQS_OK);
        CHECK_OK(rmqs_producer_send(p, (const uint8_t *)"waited", 6, 0, 0, NULL));
        n = fill(p, RMQS_SEND_NO_BLOCK, 100, &st);
        CHECK(n <= 5 && st == RMQS_ERR_QUEUE_FULL);
        memset(&ps, 0, sizeof ps);
        ps.size = sizeof ps;
        CHECK_OK(rmqs_producer_stats(p, &ps, NULL));
        CHECK(ps.in_flight == 5 && ps.confirmed >= 1);
        CHECK_OK(rmqs_producer_flush(p, 10000, NULL));
        rmqs_producer_free(p);
    }
    rmqs_connection_free(conn);
}

int main(void) {
    log_state info_log, debug_log;
    rmqs_connection *conn;
    char stream[96];

    /* info level: open, work, close */
    log_state_init(&info_log);
    conn = open_logged(&info_log, NULL);
    if (conn == NULL) {
        failed++;
        return report("test_observability");
    }
    CHECK(atomic_load(&info_log.connected) >= 1);
    CHECK(atomic_load_explicit(&info_log.line_ready, memory_order_acquire) == 1);
    CHECK(strlen(rmqs_connection_server_version(conn)) > 0);
    CHECK(strstr(info_log.connected_line, rmqs_connection_server_version(conn)) != NULL);

    unique_name(stream, sizeof stream, "c-observability");
    CHECK_OK(rmqs_stream_create(conn, stream, NULL, NULL));
    counters(conn, stream);
    layering(conn, stream);
    CHECK_OK(rmqs_stream_delete(conn, stream, NULL));

    CHECK_OK(rmqs_connection_close(conn, 10000, NULL));
    CHECK(atomic_load(&info_log.closed_by_app) >= 1);
    CHECK(atomic_load(&info_log.per_level[RMQS_LOG_DEBUG]) == 0);
    CHECK(atomic_load(&info_log.per_level[RMQS_LOG_TRACE]) == 0);
    CHECK(atomic_load(&info_log.per_level[0]) == 0);
    CHECK(atomic_load(&info_log.bad_target) == 0);
    CHECK(atomic_load(&info_log.freed) == 0);
    rmqs_connection_free(conn);
    CHECK(atomic_load(&info_log.freed) == 1);

    /* debug level: details appear */
    log_state_init(&debug_log);
    conn = open_logged(&debug_log, "debug");
    CHECK(conn != NULL);
    CHECK(atomic_load(&debug_log.per_level[RMQS_LOG_DEBUG]) > 0);
    CHECK(atomic_load(&debug_log.per_level[RMQS_LOG_INFO]) > 0);
    CHECK(atomic_load(&debug_log.per_level[RMQS_LOG_TRACE]) == 0);
    rmqs_connection_free(conn);
    CHECK(atomic_load(&debug_log.freed) == 1);

    return report("test_observability");
}
