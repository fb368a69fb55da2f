/* quickstart: the whole client in one program.
 *
 * Creates a stream, publishes N messages (default 100,000) with a confirm callback, consumes
 * them back from the first offset with a chunk callback, checks every offset and every body,
 * prints the rates and deletes the stream. Exits 1 on any error or mismatch.
 *
 *   quickstart [-n N] [URI]
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

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The body of message i: its index and a varying-length tail, so that a shifted, truncated or
 * swapped body is caught. */
static size_t make_body(size_t i, char *buf, size_t cap) {
    int n = snprintf(buf, cap, "quickstart message %zu %.*s", i, (int)(i % 37),
                     "abcdefghijklmnopqrstuvwxyz0123456789-");
    return (size_t)n;
}

/* Prints why a call failed, frees the error, and returns 1 (for `return fail(...)`). */
static int fail(const char *what, rmqs_status st, rmqs_error *err) {
    fprintf(stderr, "quickstart: %s: %s (%s)%s%s\n", what, rmqs_status_str(st),
            rmqs_status_name(st), err ? ": " : "", err ? rmqs_error_message(err) : "");
    rmqs_error_free(err);
    return 1;
}

/* ---- shared with the callbacks, which run on library dispatcher threads ------------------ */

typedef struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    size_t expected;
    size_t confirmed; /* confirms with RMQS_OK */
    size_t refused;   /* confirms with another status */
    size_t consumed;  /* messages checked by the chunk callback */
    size_t mismatches;
    uint64_t next_offset;
} state;

static void on_confirms(void *user_data, const rmqs_confirm *confirms, size_t count,
                        size_t stride) {
    state *s = (state *)user_data;
    size_t ok = 0, i;
    for (i = 0; i < count; i++) {
        const rmqs_confirm *c = RMQS_AT(rmqs_confirm, confirms, stride, i);
        if (c->status == RMQS_OK) {
            ok++;
        } else if (s->refused++ < 5) {
            fprintf(stderr, "quickstart: message %zu: %s\n", (size_t)c->tag,
                    rmqs_status_str(c->status));
        }
    }
    pthread_mutex_lock(&s->lock);
    s->confirmed += ok;
    pthread_mutex_unlock(&s->lock);
}

static void on_chunk(void *user_data, const rmqs_chunk *chunk) {
    state *s = (state *)user_data;
    size_t n = rmqs_chunk_message_count(chunk), i;
    for (i = 0; i < n; i++) {
        const rmqs_message *m = rmqs_chunk_message(chunk, i);
        uint64_t offset = rmqs_message_offset(m);
        size_t len, want_len;
        const uint8_t *body = rmqs_message_body(m, &len);
        char want[128];
        /* A new stream: message k is at offset k. */
        want_len = make_body((size_t)offset, want, sizeof want);
        if (offset != s->next_offset || len != want_len || memcmp(body, want, len) != 0) {
            if (s->mismatches++ < 5) {
                fprintf(stderr, "quickstart: offset %llu (expected %llu): body %.*s\n",
                        (unsigned long long)offset, (unsigned long long)s->next_offset,
                        (int)(len < 60 ? len : 60), (const char *)body);
            }
        }
        s->next_offset = offset + 1;
    }
    pthread_mutex_lock(&s->lock);
    s->consumed += n;
    if (s->consumed >= s->expected) {
        pthread_cond_signal(&s->cond);
    }
    pthread_mutex_unlock(&s->lock);
}

/* Waits until every message was consumed or `seconds` passed; returns the count. */
static size_t wait_consumed(state *s, double seconds) {
    struct timespec deadline;
    size_t n;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += (time_t)seconds;
    pthread_mutex_lock(&s->lock);
    while (s->consumed < s->expected) {
        if (pthread_cond_timedwait(&s->cond, &s->lock, &deadline) != 0) {
            break;
        }
    }
    n = s->consumed;
    pthread_mutex_unlock(&s->lock);
    return n;
}

int main(int argc, char **argv) {
    const char *uri = getenv("RMQS_TEST_URI");
    size_t n = 100000;
    char stream[64];
    state s;
    rmqs_connection *conn = NULL;
    rmqs_producer *producer = NULL;
    rmqs_consumer *consumer = NULL;
    rmqs_config *cfg;
    rmqs_error *err = NULL;
    rmqs_status st;
    double t0, publish_s, consume_s;
    size_t i, consumed, confirmed;
    int rc = 0, opt;

    while ((opt = getopt(argc, argv, "n:")) != -1) {
        if (opt != 'n' || (n = (size_t)strtoull(optarg, NULL, 10)) == 0) {
            fprintf(stderr, "usage: quickstart [-n N] [URI]\n");
            return 2;
        }
    }
    if (optind < argc) {
        uri = argv[optind];
    }
    if (uri == NULL) {
        uri = "rabbitmq-stream://guest:guest@localhost:5552/%2f";
    }
    memset(&s, 0, sizeof s);
    pthread_mutex_init(&s.lock, NULL);
    pthread_cond_init(&s.cond, NULL);
    s.expected = n;
    snprintf(stream, sizeof stream, "quickstart-%ld-%ld", (long)getpid(), (long)time(NULL));

    /* 1. Connect and create the stream. */
    st = rmqs_connection_open_uri(uri, &conn, &err);
    if (st != RMQS_OK) {
        return fail("open", st, err);
    }
    printf("connected to RabbitMQ %s (rmqstream %s)\n", rmqs_connection_server_version(conn),
           rmqs_version());
    st = rmqs_stream_create(conn, stream, NULL, &err);
    if (st != RMQS_OK) {
        rc = fail("create stream", st, err);
        goto out;
    }
    printf("created stream %s\n", stream);

    /* 2. Publish: sends return at once; confirms arrive on a dispatcher thread. */
    st = rmqs_producer_new(conn, stream, NULL, on_confirms, &s, NULL, NULL, 0, &producer, &err);
    if (st != RMQS_OK) {
        rc = fail("producer", st, err);
        goto out;
    }
    t0 = now_s();
    for (i = 0; i < n; i++) {
        char body[128];
        size_t len = make_body(i, body, sizeof body);
        st = rmqs_producer_send(producer, (const uint8_t *)body, len, i, 0, &err);
        if (st != RMQS_OK) {
            rc = fail("send", st, err);
            goto out;
        }
    }
    /* flush: every confirm callback has returned */
    st = rmqs_producer_flush(producer, 60000, NULL);
    publish_s = now_s() - t0;
    if (st != RMQS_OK) {
        rc = fail("flush", st, NULL);
        goto out;
    }
    pthread_mutex_lock(&s.lock);
    confirmed = s.confirmed;
    pthread_mutex_unlock(&s.lock);
    printf("published %zu messages, %zu confirmed, in %.3f s: %.0f msg/s\n", n, confirmed,
           publish_s, (double)n / publish_s);
    if (confirmed != n) {
        fprintf(stderr, "quickstart: %zu messages not confirmed\n", n - confirmed);
        rc = 1;
        goto out;
    }
    rmqs_producer_free(producer);
    producer = NULL;

    /* 3. Consume from the first offset: chunks arrive on a dispatcher thread. */
    cfg = rmqs_config_new();
    if (cfg == NULL || rmqs_config_set(cfg, "offset", "first", &err) != RMQS_OK) {
        rmqs_config_free(cfg);
        rc = fail("config", RMQS_ERR_INVALID_ARGUMENT, err);
        goto out;
    }
    t0 = now_s();
    st = rmqs_consumer_new(conn, stream, cfg, on_chunk, &s, NULL, NULL, 0, &consumer, &err);
    rmqs_config_free(cfg);
    if (st != RMQS_OK) {
        rc = fail("consumer", st, err);
        goto out;
    }
    consumed = wait_consumed(&s, 60.0);
    consume_s = now_s() - t0;
    /* After free no callback runs any more: s may be read without the lock. */
    rmqs_consumer_free(consumer);
    consumer = NULL;
    printf("consumed %zu messages in %.3f s: %.0f msg/s\n", consumed, consume_s,
           (double)consumed / consume_s);
    if (consumed != n || s.mismatches != 0) {
        fprintf(stderr, "quickstart: FAILED: %zu of %zu messages consumed, %zu mismatches\n",
                consumed, n, s.mismatches);
        rc = 1;
    } else {
        printf("all %zu bodies and offsets verified\n", n);
    }

out:
    /* 4. Clean up: producers and consumers first, then the stream and the connection. */
    rmqs_producer_free(producer);
    rmqs_consumer_free(consumer);
    if (conn != NULL) {
        st = rmqs_stream_delete(conn, stream, &err);
        if (st == RMQS_OK) {
            printf("deleted stream %s\n", stream);
        } else if (st != RMQS_ERR_STREAM_DOES_NOT_EXIST) {
            rc |= fail("delete stream", st, err);
        } else {
            rmqs_error_free(err);
        }
        st = rmqs_connection_close(conn, 10000, NULL);
        if (st != RMQS_OK) {
            rc |= fail("close", st, NULL);
        }
        rmqs_connection_free(conn);
    }
    pthread_cond_destroy(&s.cond);
    pthread_mutex_destroy(&s.lock);
    printf("quickstart: %s\n", rc == 0 ? "OK" : "FAILED");
    return rc;
}
