/* producer: publishes COUNT messages of SIZE bytes to STREAM (created when missing) and waits
 * for every confirm.
 *
 *   producer [-n NAME] [-b BATCH] [-f MAX_IN_FLIGHT] URI STREAM COUNT SIZE
 *
 *   -n NAME   a named producer: the broker deduplicates on (NAME, publishing id), and the
 *             producer continues after the last id the broker kept for NAME, so a producer
 *             restarted under the same name never publishes the same id twice.
 *
 * Message i (0 to COUNT-1) is "msg <i> " padded with '.' to SIZE bytes. Exits 1 when a
 * message is not confirmed.
 */
#define _POSIX_C_SOURCE 200809L
#include <rmqstream.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef struct {
    pthread_mutex_t lock;
    size_t ok;
    size_t failed;
    rmqs_status first_failure;
} confirms_state;

/* Runs on the producer's dispatcher thread with a batch of outcomes. */
static void on_confirms(void *user_data, const rmqs_confirm *confirms, size_t count,
                        size_t stride) {
    confirms_state *s = (confirms_state *)user_data;
    size_t i;
    pthread_mutex_lock(&s->lock);
    for (i = 0; i < count; i++) {
        const rmqs_confirm *c = RMQS_AT(rmqs_confirm, confirms, stride, i);
        if (c->status == RMQS_OK) {
            s->ok++;
        } else if (s->failed++ == 0) {
            s->first_failure = c->status;
        }
    }
    pthread_mutex_unlock(&s->lock);
}

static int fail(const char *what, rmqs_status st, rmqs_error *err) {
    fprintf(stderr, "producer: %s: %s (%s)%s%s\n", what, rmqs_status_str(st),
            rmqs_status_name(st), err ? ": " : "", err ? rmqs_error_message(err) : "");
    rmqs_error_free(err);
    return 1;
}

static int usage(void) {
    fprintf(stderr,
            "usage: producer [-n NAME] [-b BATCH] [-f MAX_IN_FLIGHT] URI STREAM COUNT SIZE\n");
    return 2;
}

int main(int argc, char **argv) {
    const char *name = NULL, *batch = NULL, *in_flight = NULL;
    const char *uri, *stream;
    size_t count, size, i;
    uint64_t last_id = 0;
    char *body;
    confirms_state s;
    rmqs_connection *conn = NULL;
    rmqs_producer *p = NULL;
    rmqs_config *cfg = NULL;
    rmqs_error *err = NULL;
    rmqs_status st;
    struct timespec t0, t1;
    double seconds;
    int opt, rc = 0;

    while ((opt = getopt(argc, argv, "n:b:f:")) != -1) {
        switch (opt) {
        case 'n': name = optarg; break;
        case 'b': batch = optarg; break;
        case 'f': in_flight = optarg; break;
        default: return usage();
        }
    }
    if (argc - optind != 4) {
        return usage();
    }
    uri = argv[optind];
    stream = argv[optind + 1];
    count = (size_t)strtoull(argv[optind + 2], NULL, 10);
    size = (size_t)strtoull(argv[optind + 3], NULL, 10);
    body = (char *)malloc(size + 32);
    if (body == NULL) {
        return 1;
    }
    memset(&s, 0, sizeof s);
    pthread_mutex_init(&s.lock, NULL);

    st = rmqs_connection_open_uri(uri, &conn, &err);
    if (st != RMQS_OK) {
        free(body);
        return fail("open", st, err);
    }
    st = rmqs_stream_create(conn, stream, NULL, &err);
    if (st == RMQS_OK) {
        printf("created stream %s\n", stream);
    } else if (st == RMQS_ERR_STREAM_ALREADY_EXISTS) {
        rmqs_error_free(err);
        err = NULL;
    } else {
        rc = fail("create stream", st, err);
        goto out;
    }

    /* Producer keys: see rmqs_config_set() in rmqstream.h. */
    cfg = rmqs_config_new();
    if ((name != NULL && (st = rmqs_config_set(cfg, "name", name, &err)) != RMQS_OK) ||
        (batch != NULL && (st = rmqs_config_set(cfg, "batch_size", batch, &err)) != RMQS_OK) ||
        (in_flight != NULL &&
         (st = rmqs_config_set(cfg, "max_in_flight", in_flight, &err)) != RMQS_OK)) {
        rc = fail("config", st, err);
        goto out;
    }
    st = rmqs_producer_new(conn, stream, cfg, on_confirms, &s, NULL, NULL, 0, &p, &err);
    if (st != RMQS_OK) {
        rc = fail("producer", st, err);
        goto out;
    }
    if (name != NULL) {
        if (rmqs_producer_last_id(p, &last_id)) {
            printf("producer %s continues after publishing id %llu\n", name,
                   (unsigned long long)last_id);
        } else {
            printf("producer %s is new to the stream\n", name);
        }
    }

    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (i = 0; i < count; i++) {
        int n = snprintf(body, size + 32, "msg %zu ", i);
        size_t len = (size_t)n;
        if (len < size) {
            memset(body + len, '.', size - len);
            len = size;
        }
        st = rmqs_producer_send(p, (const uint8_t *)body, len, i, 0, &err);
        if (st != RMQS_OK) {
            rc = fail("send", st, err);
            goto out;
        }
    }
    st = rmqs_producer_flush(p, 60000, NULL); /* every confirm callback has returned */
    clock_gettime(CLOCK_MONOTONIC, &t1);
    seconds = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    if (st != RMQS_OK) {
        rc = fail("flush", st, NULL);
        goto out;
    }
    pthread_mutex_lock(&s.lock);
    printf("published %zu messages of %zu bytes to %s: %zu confirmed, %zu failed, %.3f s, "
           "%.0f msg/s\n",
           count, size, stream, s.ok, s.failed, seconds,
           seconds > 0 ? (double)count / seconds : 0.0);
    if (s.failed != 0) {
        fprintf(stderr, "producer: first failure: %s\n", rmqs_status_str(s.first_failure));
    }
    rc = s.ok == count ? 0 : 1;
    pthread_mutex_unlock(&s.lock);
    if (rmqs_producer_last_id(p, &last_id)) {
        printf("last publishing id %llu\n", (unsigned long long)last_id);
    }

out:
    rmqs_producer_free(p);
    rmqs_config_free(cfg);
    rmqs_connection_free(conn);
    pthread_mutex_destroy(&s.lock);
    free(body);
    return rc;
}
