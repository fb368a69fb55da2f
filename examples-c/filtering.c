/* filtering: broker-side stream filtering plus a client-side post-filter.
 *
 *   filtering [-n N] [URI]
 *
 * Publishes N messages (default 4000) in blocks of 100: "eu", "us", "ap", then a block mixing
 * the three, and so on; each message with its region as filter value (rmqs_producer_send_ex)
 * and a body "<region>:<i>". Then reads the stream from the first offset three times:
 *   1. without filtering: all N messages;
 *   2. with filter_values=eu: the broker sends only the chunks whose Bloom filter may hold
 *      "eu" (far fewer messages, but whole chunks: the other regions of the mixed blocks come
 *      along, and a false positive may bring a chunk without eu);
 *   3. with filter_values=eu and a post-filter callback keeping bodies that start with "eu:":
 *      exactly the eu messages, at their own offsets.
 * Prints the counts, deletes the stream and prints "filtering: ok". Exits 1 on any error or
 * mismatch. Needs RabbitMQ 3.13 or later (RMQS_ERR_UNSUPPORTED before).
 *
 * URI defaults to $RMQS_TEST_URI, then rabbitmq-stream://guest:guest@localhost:5552/%2f.
 */
#define _POSIX_C_SOURCE 200809L
#include <rmqstream.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define BLOCK 100

static const char *const REGIONS[] = {"eu", "us", "ap"};

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int fail(const char *what, rmqs_status st, rmqs_error *err) {
    fprintf(stderr, "filtering: %s: %s (%s)%s%s\n", what, rmqs_status_str(st),
            rmqs_status_name(st), err ? ": " : "", err ? rmqs_error_message(err) : "");
    rmqs_error_free(err);
    return 1;
}

/* Blocks of BLOCK messages: eu, us, ap, mixed, eu, us, ... */
static const char *region_of(size_t i) {
    size_t block = i / BLOCK;
    return block % 4 == 3 ? REGIONS[i % 3] : REGIONS[block % 4];
}

/* The post-filter: runs on a library thread for every message of every chunk that arrives,
 * before the application sees the chunk. Keep it quick; only rmqs_message_* accessors. */
static bool keep_eu(void *user_data, const rmqs_message *msg) {
    size_t len;
    const uint8_t *body = rmqs_message_body(msg, &len);
    (void)user_data;
    return len >= 3 && memcmp(body, "eu:", 3) == 0;
}

/* ---- what a consumer received (chunk callback, on its dispatcher thread) ------------------- */

typedef struct {
    pthread_mutex_t lock;
    size_t received, eu, chunks, wrong;
    uint64_t last;
} tally;

static void on_chunk(void *user_data, const rmqs_chunk *chunk) {
    tally *t = (tally *)user_data;
    size_t n = rmqs_chunk_message_count(chunk), i;
    pthread_mutex_lock(&t->lock);
    t->chunks++;
    for (i = 0; i < n; i++) {
        const rmqs_message *m = rmqs_chunk_message(chunk, i);
        uint64_t o = rmqs_message_offset(m);
        size_t len;
        const uint8_t *body = rmqs_message_body(m, &len);
        char want[32];
        int wlen = snprintf(want, sizeof want, "%s:%llu", region_of((size_t)o),
                            (unsigned long long)o);
        if ((size_t)wlen != len || memcmp(body, want, len) != 0) {
            t->wrong++; /* a body that does not match its offset */
        }
        if (strcmp(region_of((size_t)o), "eu") == 0) {
            t->eu++;
        }
        t->received++;
        t->last = o;
    }
    pthread_mutex_unlock(&t->lock);
}

/* Reads the stream from the first offset with `filter` (NULL: none) and the post-filter or
 * not, until nothing more comes for 500 ms. */
static int consume(rmqs_connection *conn, const char *stream, const char *filter, int post,
                   tally *t, rmqs_consumer_statistics *stats) {
    rmqs_config *cfg = rmqs_config_new();
    rmqs_consumer *c = NULL;
    rmqs_error *err = NULL;
    rmqs_status st;
    size_t before;
    double deadline = now_s() + 30;

    memset(t, 0, sizeof *t);
    pthread_mutex_init(&t->lock, NULL);
    st = rmqs_config_set(cfg, "offset", "first", &err);
    if (st == RMQS_OK && filter != NULL) {
        st = rmqs_config_set(cfg, "filter_values", filter, &err);
    }
    if (st == RMQS_OK && post) {
        st = rmqs_config_set_post_filter_cb(cfg, keep_eu, NULL, NULL, NULL);
    }
    if (st == RMQS_OK) {
        st = rmqs_consumer_new(conn, stream, cfg, on_chunk, t, NULL, NULL, 0, &c, &err);
    }
    rmqs_config_free(cfg);
    if (st != RMQS_OK) {
        return fail("consumer", st, err);
    }
    for (;;) { /* until something came and then nothing for 500 ms */
        size_t after;
        pthread_mutex_lock(&t->lock);
        before = t->received;
        pthread_mutex_unlock(&t->lock);
        sleep_ms(500);
        pthread_mutex_lock(&t->lock);
        after = t->received;
        pthread_mutex_unlock(&t->lock);
        if ((after > 0 && after == before) || now_s() >= deadline) {
            break;
        }
    }
    stats->size = sizeof *stats;
    st = rmqs_consumer_stats(c, stats, NULL);
    rmqs_consumer_free(c); /* no callback after this */
    return st;
}

int main(int argc, char **argv) {
    const char *uri = getenv("RMQS_TEST_URI");
    size_t n = 4000, i, eu = 0;
    int opt, rc = 0;
    char stream[64], body[32];
    rmqs_connection *conn = NULL;
    rmqs_producer *p = NULL;
    rmqs_error *err = NULL;
    rmqs_status st;
    tally all, chunky, exact;
    rmqs_consumer_statistics s_all, s_chunky, s_exact;

    while ((opt = getopt(argc, argv, "n:")) != -1) {
        if (opt != 'n') {
            fprintf(stderr, "usage: filtering [-n N] [URI]\n");
            return 2;
        }
        n = (size_t)strtoull(optarg, NULL, 10);
    }
    if (optind < argc) {
        uri = argv[optind];
    }
    if (uri == NULL) {
        uri = "rabbitmq-stream://guest:guest@localhost:5552/%2f";
    }
    if (n < 4 * BLOCK) {
        n = 4 * BLOCK; /* at least one mixed block */
    }
    snprintf(stream, sizeof stream, "filtering-example-%ld-%ld", (long)getpid(),
             (long)time(NULL));

    if ((st = rmqs_connection_open_uri(uri, &conn, &err)) != RMQS_OK) {
        return fail("open", st, err);
    }
    if ((st = rmqs_stream_create(conn, stream, NULL, &err)) != RMQS_OK) {
        rc = fail("create stream", st, err);
        goto out;
    }

    /* Publish: each block flushed alone, so that a chunk holds one block (or part of one). */
    if ((st = rmqs_producer_new(conn, stream, NULL, NULL, NULL, NULL, NULL, 0, &p, &err)) !=
        RMQS_OK) {
        rc = fail("producer", st, err);
        goto out;
    }
    for (i = 0; i < n && st == RMQS_OK; i++) {
        const char *region = region_of(i);
        int len = snprintf(body, sizeof body, "%s:%zu", region, i);
        st = rmqs_producer_send_ex(p, (const uint8_t *)body, (size_t)len, region, 0, i, 0, NULL,
                                   &err);
        eu += strcmp(region, "eu") == 0;
        if (st == RMQS_OK && (i + 1) % BLOCK == 0) {
            st = rmqs_producer_flush(p, 30000, NULL);
        }
    }
    if (st == RMQS_OK) {
        st = rmqs_producer_flush(p, 30000, NULL);
    }
    rmqs_producer_free(p);
    if (st != RMQS_OK) {
        rc = fail("publish", st, err);
        goto out;
    }
    printf("published %zu messages to %s, %zu of them eu\n", n, stream, eu);

    if ((rc = consume(conn, stream, NULL, 0, &all, &s_all)) != 0 ||
        (rc = consume(conn, stream, "eu", 0, &chunky, &s_chunky)) != 0 ||
        (rc = consume(conn, stream, "eu", 1, &exact, &s_exact)) != 0) {
        goto out;
    }
    printf("no filter:              %6zu messages in %4zu chunks, %8llu bytes\n", all.received,
           all.chunks, (unsigned long long)s_all.bytes);
    printf("filter_values=eu:       %6zu messages in %4zu chunks, %8llu bytes (%zu eu)\n",
           chunky.received, chunky.chunks, (unsigned long long)s_chunky.bytes, chunky.eu);
    printf("  + post-filter:        %6zu messages in %4zu chunks (%llu removed by the "
           "post-filter)\n",
           exact.received, exact.chunks, (unsigned long long)s_exact.filtered_out);

    if (all.received != n || all.wrong != 0 || chunky.wrong != 0 || exact.wrong != 0) {
        fprintf(stderr, "filtering: wrong messages (all %zu of %zu)\n", all.received, n);
        rc = 1;
    }
    if (chunky.eu != eu || chunky.received >= n) {
        fprintf(stderr, "filtering: the broker-side filter should send every eu message and "
                        "fewer than all\n");
        rc = 1;
    }
    if (exact.received != eu || exact.eu != eu || s_exact.filtered_out == 0 ||
        s_exact.filtered_out != (uint64_t)(chunky.received - eu)) {
        fprintf(stderr, "filtering: the post-filter should leave exactly the eu messages\n");
        rc = 1;
    }

out:
    if (conn != NULL) {
        st = rmqs_stream_delete(conn, stream, &err);
        if (st != RMQS_OK && st != RMQS_ERR_STREAM_DOES_NOT_EXIST) {
            rc |= fail("delete stream", st, err);
        } else {
            rmqs_error_free(err);
        }
    }
    rmqs_connection_free(conn);
    if (rc == 0) {
        printf("filtering: ok\n");
    }
    return rc;
}
