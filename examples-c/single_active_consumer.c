/* single_active_consumer: two consumers of one group, one active at a time, with server-side
 * offset tracking, so that the second continues exactly where the first stopped.
 *
 *   single_active_consumer [-n N] [URI]
 *
 * Creates a stream and two consumers A and B with the same name ("sac-example": the group and
 * the offset-tracking reference), single_active_consumer=true and tracking=auto. A
 * consumer-update callback prints each activation. Publishes N/2 messages: A, subscribed
 * first, is the active one and receives them; B receives nothing. Closes A, which stores the
 * offset of its last message on the way out; the broker activates B, whose callback sees that
 * stored offset, and B starts right after it. Publishes the other N/2: B receives exactly
 * them. Checks that every message was received once, in order, deletes the stream and prints
 * "single-active-consumer: ok". Exits 1 on any error or mismatch.
 *
 * (Offsets and message numbers part ways after A's store: each StoreOffset writes a tracking
 * record into the stream, which takes an offset the consumers never see.)
 *
 * N defaults to 1000; URI to $RMQS_TEST_URI, then rabbitmq-stream://guest:guest@localhost:5552/%2f.
 * Needs RabbitMQ 3.11 or later (RMQS_ERR_UNSUPPORTED before).
 */
#define _POSIX_C_SOURCE 200809L
#include <rmqstream.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define GROUP "sac-example"

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
    fprintf(stderr, "single_active_consumer: %s: %s (%s)%s%s\n", what, rmqs_status_str(st),
            rmqs_status_name(st), err ? ": " : "", err ? rmqs_error_message(err) : "");
    rmqs_error_free(err);
    return 1;
}

/* ---- one per consumer; the callbacks run on the consumer's dispatcher thread ---------------- */

typedef struct {
    const char *label;
    pthread_mutex_t lock;
    int active;           /* last is_active the callback saw */
    int activations;
    uint64_t stored_seen; /* info->stored_offset at the last activation */
    size_t received;
    uint64_t first, last;             /* offsets */
    size_t first_message, last_message; /* numbers in the bodies ("message <i>") */
    size_t out_of_order;
} consumer_state;

/* Where to start when activated: the library's default is right after the offset stored
 * under the group's name (or the `offset` key when nothing is stored), which is what we want;
 * an application could return any rmqs_offset_spec here. */
static rmqs_offset_spec on_update(void *user_data, const rmqs_consumer_update_info *info) {
    consumer_state *s = (consumer_state *)user_data;
    rmqs_offset_spec spec = {RMQS_OFFSET_DEFAULT, 0};
    pthread_mutex_lock(&s->lock);
    s->active = info->is_active;
    if (info->is_active) {
        s->activations++;
        s->stored_seen = info->stored_offset;
    }
    pthread_mutex_unlock(&s->lock);
    if (!info->is_active) {
        printf("consumer %s steps down\n", s->label);
    } else if (info->stored_offset == UINT64_MAX) {
        printf("consumer %s is active: nothing stored, starting at the first offset\n", s->label);
    } else {
        printf("consumer %s is active: stored offset %llu, starting at %lld\n", s->label,
               (unsigned long long)info->stored_offset, (long long)info->default_offset.value);
    }
    fflush(stdout);
    return spec;
}

static void on_chunk(void *user_data, const rmqs_chunk *chunk) {
    consumer_state *s = (consumer_state *)user_data;
    size_t n = rmqs_chunk_message_count(chunk), i;
    pthread_mutex_lock(&s->lock);
    for (i = 0; i < n; i++) {
        const rmqs_message *m = rmqs_chunk_message(chunk, i);
        uint64_t o = rmqs_message_offset(m);
        size_t len, k = 0;
        const uint8_t *body = rmqs_message_body(m, &len);
        char text[32];
        if (len < sizeof text) {
            memcpy(text, body, len);
            text[len] = '\0';
            if (sscanf(text, "message %zu", &k) != 1) {
                s->out_of_order++;
            }
        }
        if (s->received == 0) {
            s->first = o;
            s->first_message = k;
        } else if (o <= s->last || k != s->last_message + 1) {
            s->out_of_order++;
        }
        s->last = o;
        s->last_message = k;
        s->received++;
    }
    pthread_mutex_unlock(&s->lock);
}

static size_t received(consumer_state *s) {
    size_t n;
    pthread_mutex_lock(&s->lock);
    n = s->received;
    pthread_mutex_unlock(&s->lock);
    return n;
}

static int wait_received(consumer_state *s, size_t want, double seconds) {
    double deadline = now_s() + seconds;
    while (received(s) < want && now_s() < deadline) {
        sleep_ms(10);
    }
    return received(s) >= want;
}

static rmqs_status new_consumer(rmqs_connection *conn, const char *stream, consumer_state *s,
                                rmqs_consumer **out, rmqs_error **err) {
    rmqs_config *cfg = rmqs_config_new();
    rmqs_status st;
    if ((st = rmqs_config_set(cfg, "name", GROUP, err)) != RMQS_OK ||
        (st = rmqs_config_set(cfg, "single_active_consumer", "true", err)) != RMQS_OK ||
        (st = rmqs_config_set(cfg, "offset", "first", err)) != RMQS_OK ||
        (st = rmqs_config_set(cfg, "tracking", "auto", err)) != RMQS_OK ||
        (st = rmqs_config_set_consumer_update_cb(cfg, on_update, s, NULL, NULL)) != RMQS_OK) {
        rmqs_config_free(cfg);
        return st;
    }
    st = rmqs_consumer_new(conn, stream, cfg, on_chunk, s, NULL, NULL, 0, out, err);
    rmqs_config_free(cfg);
    return st;
}

static rmqs_status publish(rmqs_connection *conn, const char *stream, size_t from, size_t to,
                           rmqs_error **err) {
    rmqs_producer *p = NULL;
    rmqs_status st = rmqs_producer_new(conn, stream, NULL, NULL, NULL, NULL, NULL, 0, &p, err);
    size_t i;
    char body[32];
    for (i = from; st == RMQS_OK && i < to; i++) {
        int len = snprintf(body, sizeof body, "message %zu", i);
        st = rmqs_producer_send(p, (const uint8_t *)body, (size_t)len, i, 0, err);
    }
    if (st == RMQS_OK) {
        st = rmqs_producer_flush(p, 30000, NULL);
    }
    rmqs_producer_free(p);
    return st;
}

int main(int argc, char **argv) {
    const char *uri = getenv("RMQS_TEST_URI");
    size_t n = 1000, half;
    int opt, rc = 0;
    char stream[64];
    consumer_state a, b;
    rmqs_connection *conn = NULL;
    rmqs_consumer *ca = NULL, *cb = NULL;
    rmqs_error *err = NULL;
    rmqs_status st;
    uint64_t stored = 0;

    while ((opt = getopt(argc, argv, "n:")) != -1) {
        if (opt != 'n') {
            fprintf(stderr, "usage: single_active_consumer [-n N] [URI]\n");
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
    if (n < 2) {
        n = 2;
    }
    half = n / 2;
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    a.label = "A";
    b.label = "B";
    pthread_mutex_init(&a.lock, NULL);
    pthread_mutex_init(&b.lock, NULL);
    snprintf(stream, sizeof stream, "sac-example-%ld-%ld", (long)getpid(), (long)time(NULL));

    if ((st = rmqs_connection_open_uri(uri, &conn, &err)) != RMQS_OK) {
        return fail("open", st, err);
    }
    if ((st = rmqs_stream_create(conn, stream, NULL, &err)) != RMQS_OK) {
        rc = fail("create stream", st, err);
        goto out;
    }
    printf("stream %s, group %s, %zu messages\n", stream, GROUP, n);

    /* A first: the broker makes it the active one. */
    if ((st = new_consumer(conn, stream, &a, &ca, &err)) != RMQS_OK) {
        rc = fail("consumer A", st, err);
        goto out;
    }
    if ((st = new_consumer(conn, stream, &b, &cb, &err)) != RMQS_OK) {
        rc = fail("consumer B", st, err);
        goto out;
    }
    if ((st = publish(conn, stream, 0, half, &err)) != RMQS_OK) {
        rc = fail("publish", st, err);
        goto out;
    }
    if (!wait_received(&a, half, 30)) {
        fprintf(stderr, "single_active_consumer: A received %zu of %zu\n", received(&a), half);
        rc = 1;
        goto out;
    }
    sleep_ms(300); /* anything B would (wrongly) get */
    printf("A received offsets %llu..%llu; B received %zu (active: A %d, B %d)\n",
           (unsigned long long)a.first, (unsigned long long)a.last, received(&b),
           rmqs_consumer_is_active(ca), rmqs_consumer_is_active(cb));
    if (received(&b) != 0 || !rmqs_consumer_is_active(ca) || rmqs_consumer_is_active(cb)) {
        fprintf(stderr, "single_active_consumer: B should be inactive and have nothing\n");
        rc = 1;
        goto out;
    }

    /* Closing A stores its last offset (tracking=auto stores on close); B takes over. */
    if ((st = rmqs_consumer_close(ca, 10000, NULL)) != RMQS_OK) {
        rc = fail("close A", st, NULL);
        goto out;
    }
    {
        double deadline = now_s() + 10;
        do {
            st = rmqs_stream_query_offset(conn, GROUP, stream, &stored, &err);
            rmqs_error_free(err);
            err = NULL;
            if (st == RMQS_OK && stored == a.last) {
                break;
            }
            sleep_ms(20);
        } while (now_s() < deadline);
    }
    printf("closed A; stored offset %llu\n", (unsigned long long)stored);
    if (st != RMQS_OK || stored != a.last) {
        fprintf(stderr, "single_active_consumer: the stored offset is not A's last\n");
        rc = 1;
        goto out;
    }
    if ((st = publish(conn, stream, half, n, &err)) != RMQS_OK) {
        rc = fail("publish", st, err);
        goto out;
    }
    if (!wait_received(&b, n - half, 30)) {
        fprintf(stderr, "single_active_consumer: B received %zu of %zu\n", received(&b),
                n - half);
        rc = 1;
        goto out;
    }
    sleep_ms(300);
    printf("B received messages %zu..%zu at offsets %llu..%llu\n", b.first_message,
           b.last_message, (unsigned long long)b.first, (unsigned long long)b.last);

    /* Every message once, in order: A 0..half-1 at offsets 0..half-1, B half..n-1 from right
     * after the offset A stored, which B's callback was told. */
    pthread_mutex_lock(&a.lock);
    pthread_mutex_lock(&b.lock);
    if (a.received != half || a.first != 0 || a.last != half - 1 || a.first_message != 0 ||
        a.last_message != half - 1 || a.out_of_order != 0 || b.received != n - half ||
        b.first_message != half || b.last_message != n - 1 || b.first <= stored ||
        b.out_of_order != 0 || a.activations != 1 || b.activations != 1 ||
        b.stored_seen != stored) {
        fprintf(stderr,
                "single_active_consumer: mismatch: A %zu messages %zu..%zu (%d activations), "
                "B %zu messages %zu..%zu from offset %llu (%d activations, stored %llu)\n",
                a.received, a.first_message, a.last_message, a.activations, b.received,
                b.first_message, b.last_message, (unsigned long long)b.first, b.activations,
                (unsigned long long)b.stored_seen);
        rc = 1;
    }
    pthread_mutex_unlock(&b.lock);
    pthread_mutex_unlock(&a.lock);

out:
    /* After the free, no callback runs any more. */
    rmqs_consumer_free(ca);
    rmqs_consumer_free(cb);
    if (conn != NULL) {
        st = rmqs_stream_delete(conn, stream, &err);
        if (st != RMQS_OK && st != RMQS_ERR_STREAM_DOES_NOT_EXIST) {
            rc |= fail("delete stream", st, err);
        } else {
            rmqs_error_free(err);
        }
    }
    rmqs_connection_free(conn);
    pthread_mutex_destroy(&a.lock);
    pthread_mutex_destroy(&b.lock);
    if (rc == 0) {
        printf("single-active-consumer: ok\n");
    }
    return rc;
}
