/* perf: publish and consume throughput, in the spirit of RabbitMQ's stream-perf-test.
 *
 *   perf [-u URI] [-n MESSAGES] [-s SIZE] [-b BATCH] [-f MAX_IN_FLIGHT] [-d BATCH_DELAY_MS]
 *        [-c INITIAL_CREDIT] [-o KEY=VALUE]... [-k]
 *
 *   -n  messages (default 1000000)            -s  body size in bytes (default 100)
 *   -b  producer batch_size (default 100)     -f  producer max_in_flight (default 10000)
 *   -d  producer batch_delay_ms (default 5)   -c  consumer initial_credit (default 10)
 *   -k  keep the stream (default: deleted)    -u  URI (default $RMQS_TEST_URI, then localhost)
 *   -o  a connection config key, e.g. producer.sub_entry_size=100, producer.compression=zstd,
 *       consumer.crc_check=false (repeatable; the producer's and consumer's own keys above win)
 *
 * Phase 1 publishes MESSAGES bodies of SIZE bytes to a new stream and waits for every confirm;
 * each message's tag is its index, whose send time is recorded, so the confirm callback
 * measures the confirm latency of every message (p50, p95, p99, max). Phase 2 consumes the
 * stream from the first offset with a chunk callback, checking every offset and the index
 * written at the start of every body. For each phase: messages/s, MB/s and the CPU seconds the
 * whole client process used (getrusage: user + system, every thread: the caller, the library's
 * runtime and its dispatcher threads). Exits 1 when a message is missing or wrong.
 */
#define _POSIX_C_SOURCE 200809L
#include <rmqstream.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static double cpu_s(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static int fail(const char *what, rmqs_status st, rmqs_error *err) {
    fprintf(stderr, "perf: %s: %s (%s)%s%s\n", what, rmqs_status_str(st), rmqs_status_name(st),
            err ? ": " : "", err ? rmqs_error_message(err) : "");
    rmqs_error_free(err);
    return 1;
}

/* The index is written little-endian in the first (up to) 8 bytes of a body. */
static void put_index(uint8_t *body, size_t size, uint64_t i) {
    size_t k;
    for (k = 0; k < size && k < 8; k++) {
        body[k] = (uint8_t)(i >> (8 * k));
    }
}

/* What get_index() reads back for index i from a body of `size` bytes. */
static uint64_t low_bytes(uint64_t i, size_t size) {
    return size >= 8 ? i : i & (((uint64_t)1 << (8 * size)) - 1);
}

static uint64_t get_index(const uint8_t *body, size_t size) {
    uint64_t i = 0;
    size_t k;
    for (k = 0; k < size && k < 8; k++) {
        i |= (uint64_t)body[k] << (8 * k);
    }
    return i;
}

typedef struct {
    size_t n;
    size_t size;
    /* publish: send time per message (written before the send), confirm latency per message
     * (written by the confirm callback; UINT64_MAX until confirmed) */
    uint64_t *sent_ns;
    uint64_t *latency_ns;
    size_t confirmed; /* dispatcher thread only until flush returned */
    size_t refused;
    /* consume */
    pthread_mutex_t lock;
    pthread_cond_t done;
    size_t consumed; /* under lock */
    uint64_t next_offset;
    size_t bad;
    uint64_t last_ns;
} perf_state;

static void on_confirms(void *user_data, const rmqs_confirm *confirms, size_t count,
                        size_t stride) {
    perf_state *s = (perf_state *)user_data;
    uint64_t t = now_ns();
    size_t i;
    for (i = 0; i < count; i++) {
        const rmqs_confirm *c = RMQS_AT(rmqs_confirm, confirms, stride, i);
        size_t tag = c->tag;
        if (c->status == RMQS_OK && tag < s->n) {
            s->latency_ns[tag] = t - s->sent_ns[tag];
            s->confirmed++;
        } else {
            s->refused++;
        }
    }
}

static void on_chunk(void *user_data, const rmqs_chunk *chunk) {
    perf_state *s = (perf_state *)user_data;
    size_t n = rmqs_chunk_message_count(chunk), i;
    for (i = 0; i < n; i++) {
        const rmqs_message *m = rmqs_chunk_message(chunk, i);
        size_t len;
        const uint8_t *body = rmqs_message_body(m, &len);
        uint64_t offset = rmqs_message_offset(m);
        /* a new stream: message i is at offset i */
        if (offset != s->next_offset || len != s->size ||
            get_index(body, len) != low_bytes(offset, len)) {
            s->bad++;
        }
        s->next_offset = offset + 1;
    }
    pthread_mutex_lock(&s->lock);
    s->consumed += n;
    if (s->consumed >= s->n) {
        s->last_ns = now_ns();
        pthread_cond_signal(&s->done);
    }
    pthread_mutex_unlock(&s->lock);
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of sorted values. */
static double pct_ms(const uint64_t *sorted, size_t n, double p) {
    size_t rank = (size_t)(p / 100.0 * (double)n + 0.999999);
    if (rank < 1) {
        rank = 1;
    }
    if (rank > n) {
        rank = n;
    }
    return (double)sorted[rank - 1] / 1e6;
}

static int usage(void) {
    fprintf(stderr, "usage: perf [-u URI] [-n MESSAGES] [-s SIZE] [-b BATCH] [-f MAX_IN_FLIGHT] "
                    "[-d BATCH_DELAY_MS] [-c INITIAL_CREDIT] [-o KEY=VALUE]... [-k]\n");
    return 2;
}

int main(int argc, char **argv) {
    const char *uri = getenv("RMQS_TEST_URI");
    const char *batch = "100", *in_flight = "10000", *delay = "5", *credit = "10";
    char *opts[16];
    int n_opts = 0;
    int keep = 0, opt, rc = 0;
    char stream[64];
    perf_state s;
    uint8_t *body = NULL;
    rmqs_connection *conn = NULL;
    rmqs_producer *p = NULL;
    rmqs_consumer *c = NULL;
    rmqs_config *cfg = NULL;
    rmqs_error *err = NULL;
    rmqs_status st;
    uint64_t t0, pub_ns = 0, con_ns = 0;
    double cpu0, pub_cpu = 0, con_cpu = 0;
    size_t i, consumed = 0, lat_n = 0;

    memset(&s, 0, sizeof s);
    s.n = 1000000;
    s.size = 100;
    while ((opt = getopt(argc, argv, "u:n:s:b:f:d:c:o:k")) != -1) {
        switch (opt) {
        case 'u': uri = optarg; break;
        case 'n': s.n = (size_t)strtoull(optarg, NULL, 10); break;
        case 's': s.size = (size_t)strtoull(optarg, NULL, 10); break;
        case 'b': batch = optarg; break;
        case 'f': in_flight = optarg; break;
        case 'd': delay = optarg; break;
        case 'c': credit = optarg; break;
        case 'k': keep = 1; break;
        case 'o':
            if (n_opts == 16 || strchr(optarg, '=') == NULL) {
                return usage();
            }
            opts[n_opts++] = optarg;
            break;
        default: return usage();
        }
    }
    if (optind != argc || s.n == 0) {
        return usage();
    }
    if (uri == NULL) {
        uri = "rabbitmq-stream://guest:guest@localhost:5552/%2f";
    }
    s.sent_ns = (uint64_t *)malloc(s.n * sizeof(uint64_t));
    s.latency_ns = (uint64_t *)malloc(s.n * sizeof(uint64_t));
    body = (uint8_t *)calloc(s.size + 1, 1);
    if (s.sent_ns == NULL || s.latency_ns == NULL || body == NULL) {
        fprintf(stderr, "perf: out of memory\n");
        return 1;
    }
    memset(s.latency_ns, 0xff, s.n * sizeof(uint64_t));
    memset(body, 'x', s.size);
    pthread_mutex_init(&s.lock, NULL);
    pthread_cond_init(&s.done, NULL);
    snprintf(stream, sizeof stream, "perf-%ld-%ld", (long)getpid(), (long)time(NULL));

    cfg = rmqs_config_new();
    st = rmqs_config_set(cfg, "uri", uri, &err);
    for (i = 0; st == RMQS_OK && i < (size_t)n_opts; i++) {
        char *eq = strchr(opts[i], '=');
        *eq = '\0';
        st = rmqs_config_set(cfg, opts[i], eq + 1, &err);
        *eq = '=';
    }
    if (st == RMQS_OK) {
        st = rmqs_connection_open(cfg, &conn, &err);
    }
    rmqs_config_free(cfg);
    cfg = NULL;
    if (st != RMQS_OK) {
        rc = fail("open", st, err);
        goto out;
    }
    st = rmqs_stream_create(conn, stream, NULL, &err);
    if (st != RMQS_OK) {
        rc = fail("create stream", st, err);
        goto out;
    }
    printf("perf: RabbitMQ %s, rmqstream %s, stream %s\n", rmqs_connection_server_version(conn),
           rmqs_version(), stream);
    printf("perf: %zu messages of %zu bytes, batch_size %s, max_in_flight %s, batch_delay_ms "
           "%s, initial_credit %s\n",
           s.n, s.size, batch, in_flight, delay, credit);
    for (i = 0; i < (size_t)n_opts; i++) {
        printf("perf: %s\n", opts[i]);
    }

    /* ---- phase 1: publish with confirms ---- */
    cfg = rmqs_config_new();
    if ((st = rmqs_config_set(cfg, "batch_size", batch, &err)) != RMQS_OK ||
        (st = rmqs_config_set(cfg, "max_in_flight", in_flight, &err)) != RMQS_OK ||
        (st = rmqs_config_set(cfg, "batch_delay_ms", delay, &err)) != RMQS_OK) {
        rc = fail("producer config", st, err);
        goto out;
    }
    st = rmqs_producer_new(conn, stream, cfg, on_confirms, &s, NULL, NULL, 0, &p, &err);
    rmqs_config_free(cfg);
    cfg = NULL;
    if (st != RMQS_OK) {
        rc = fail("producer", st, err);
        goto out;
    }
    cpu0 = cpu_s();
    t0 = now_ns();
    for (i = 0; i < s.n; i++) {
        put_index(body, s.size, i);
        s.sent_ns[i] = now_ns();
        st = rmqs_producer_send(p, body, s.size, i, 0, &err);
        if (st != RMQS_OK) {
            rc = fail("send", st, err);
            goto out;
        }
    }
    st = rmqs_producer_flush(p, 120000, NULL); /* every confirm callback has returned */
    pub_ns = now_ns() - t0;
    pub_cpu = cpu_s() - cpu0;
    if (st != RMQS_OK) {
        rc = fail("flush", st, NULL);
        goto out;
    }
    rmqs_producer_free(p);
    p = NULL;
    if (s.confirmed != s.n) {
        fprintf(stderr, "perf: %zu of %zu messages confirmed (%zu refused)\n", s.confirmed, s.n,
                s.refused);
        rc = 1;
    }

    /* ---- phase 2: consume from the first offset ---- */
    cfg = rmqs_config_new();
    if ((st = rmqs_config_set(cfg, "offset", "first", &err)) != RMQS_OK ||
        (st = rmqs_config_set(cfg, "initial_credit", credit, &err)) != RMQS_OK) {
        rc = fail("consumer config", st, err);
        goto out;
    }
    cpu0 = cpu_s();
    t0 = now_ns();
    st = rmqs_consumer_new(conn, stream, cfg, on_chunk, &s, NULL, NULL, 0, &c, &err);
    if (st != RMQS_OK) {
        rc = fail("consumer", st, err);
        goto out;
    }
    {
        struct timespec deadline;
        clock_gettime(CLOCK_REALTIME, &deadline);
        deadline.tv_sec += 120;
        pthread_mutex_lock(&s.lock);
        while (s.consumed < s.n &&
               pthread_cond_timedwait(&s.done, &s.lock, &deadline) == 0) {
        }
        consumed = s.consumed;
        con_ns = (consumed >= s.n ? s.last_ns : now_ns()) - t0;
        pthread_mutex_unlock(&s.lock);
    }
    con_cpu = cpu_s() - cpu0;
    rmqs_consumer_free(c); /* no callback runs after this: s.bad is stable */
    c = NULL;
    if (consumed != s.n || s.bad != 0) {
        fprintf(stderr, "perf: consumed %zu of %zu messages, %zu wrong\n", consumed, s.n, s.bad);
        rc = 1;
    }

    /* ---- summary ---- */
    printf("\n%-8s %10s %9s %11s %8s %8s %11s\n", "phase", "messages", "seconds", "msg/s",
           "MB/s", "cpu s", "cpu us/msg");
    printf("%-8s %10zu %9.3f %11.0f %8.1f %8.2f %11.2f\n", "publish", s.confirmed,
           (double)pub_ns / 1e9, (double)s.confirmed / ((double)pub_ns / 1e9),
           (double)s.confirmed * (double)s.size / 1e6 / ((double)pub_ns / 1e9), pub_cpu,
           pub_cpu * 1e6 / (double)s.n);
    printf("%-8s %10zu %9.3f %11.0f %8.1f %8.2f %11.2f\n", "consume", consumed,
           (double)con_ns / 1e9, (double)consumed / ((double)con_ns / 1e9),
           (double)consumed * (double)s.size / 1e6 / ((double)con_ns / 1e9), con_cpu,
           con_cpu * 1e6 / (double)s.n);
    for (i = 0; i < s.n; i++) { /* keep the confirmed ones */
        if (s.latency_ns[i] != UINT64_MAX) {
            s.latency_ns[lat_n++] = s.latency_ns[i];
        }
    }
    if (lat_n > 0) {
        qsort(s.latency_ns, lat_n, sizeof(uint64_t), cmp_u64);
        printf("\nconfirm latency (ms, %zu messages): p50 %.2f  p95 %.2f  p99 %.2f  max %.2f\n",
               lat_n, pct_ms(s.latency_ns, lat_n, 50), pct_ms(s.latency_ns, lat_n, 95),
               pct_ms(s.latency_ns, lat_n, 99), (double)s.latency_ns[lat_n - 1] / 1e6);
    }

out:
    rmqs_producer_free(p);
    rmqs_consumer_free(c);
    rmqs_config_free(cfg);
    if (conn != NULL && !keep) {
        st = rmqs_stream_delete(conn, stream, &err);
        if (st != RMQS_OK && st != RMQS_ERR_STREAM_DOES_NOT_EXIST) {
            rc |= fail("delete stream", st, err);
        } else {
            rmqs_error_free(err);
        }
    }
    rmqs_connection_free(conn);
    pthread_cond_destroy(&s.done);
    pthread_mutex_destroy(&s.lock);
    free(s.sent_ns);
    free(s.latency_ns);
    free(body);
    printf("perf: %s\n", rc == 0 ? "OK" : "FAILED");
    return rc;
}
