/* consumer: reads COUNT messages from STREAM through an event queue, then stores the offset of
 * the last one under an offset-tracking reference, so that the next run resumes after it:
 * server-side offset tracking (`tracking` = `manual`: the library looks the stored offset up
 * when the consumer starts and subscribes right after it; the application stores).
 *
 *   consumer [-n REFERENCE] [-t SECONDS] [-v] [-D] URI STREAM OFFSET COUNT
 *
 *   OFFSET       where to start when REFERENCE has no stored offset yet: first, last, next,
 *                offset:N or timestamp:MS (ms since the epoch)
 *   -n REFERENCE the tracking reference (default "c-consumer-example"); when the broker has
 *                an offset stored under it for STREAM, reading starts right after that offset
 *                and OFFSET is ignored
 *   -t SECONDS   give up when COUNT messages have not arrived by then (default 30)
 *   -v           print every message (offset, timestamp, first bytes of the body)
 *   -D           delete the stream at the end (for tests)
 *
 * Prints "consumed N messages, offsets A..B" and "stored offset B"; exits 1 when fewer than
 * COUNT messages arrived or a call failed.
 */
#define _POSIX_C_SOURCE 200809L
#include <rmqstream.h>

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

static int fail(const char *what, rmqs_status st, rmqs_error *err) {
    fprintf(stderr, "consumer: %s: %s (%s)%s%s\n", what, rmqs_status_str(st),
            rmqs_status_name(st), err ? ": " : "", err ? rmqs_error_message(err) : "");
    rmqs_error_free(err);
    return 1;
}

static int usage(void) {
    fprintf(stderr, "usage: consumer [-n REFERENCE] [-t SECONDS] [-v] [-D] URI STREAM OFFSET "
                    "COUNT\n");
    return 2;
}

int main(int argc, char **argv) {
    const char *reference = "c-consumer-example";
    const char *uri, *stream, *offset_spec;
    double timeout_s = 30.0, deadline, t0;
    int verbose = 0, delete_stream = 0, opt, rc = 0;
    size_t count, consumed = 0;
    uint64_t stored, first = 0, last = 0;
    rmqs_connection *conn = NULL;
    rmqs_consumer *c = NULL;
    rmqs_queue *q = NULL;
    rmqs_config *cfg = NULL;
    rmqs_error *err = NULL;
    rmqs_status st;

    while ((opt = getopt(argc, argv, "n:t:vD")) != -1) {
        switch (opt) {
        case 'n': reference = optarg; break;
        case 't': timeout_s = atof(optarg); break;
        case 'v': verbose = 1; break;
        case 'D': delete_stream = 1; break;
        default: return usage();
        }
    }
    if (argc - optind != 4) {
        return usage();
    }
    uri = argv[optind];
    stream = argv[optind + 1];
    offset_spec = argv[optind + 2];
    count = (size_t)strtoull(argv[optind + 3], NULL, 10);

    st = rmqs_connection_open_uri(uri, &conn, &err);
    if (st != RMQS_OK) {
        return fail("open", st, err);
    }

    /* Only to say where it will start: with tracking on, rmqs_consumer_new looks the stored
     * offset up itself and resumes right after it (OFFSET applies when none is stored). */
    st = rmqs_stream_query_offset(conn, reference, stream, &stored, &err);
    if (st == RMQS_OK) {
        printf("reference %s: stored offset %llu, resuming at %llu\n", reference,
               (unsigned long long)stored, (unsigned long long)stored + 1);
    } else if (st == RMQS_ERR_NO_OFFSET) {
        rmqs_error_free(err);
        err = NULL;
        printf("reference %s: no stored offset, starting at %s\n", reference, offset_spec);
    } else {
        rc = fail("query offset", st, err);
        goto out;
    }

    /* Chunks go to a queue this thread polls (no callback). */
    st = rmqs_queue_new(&q, NULL);
    if (st != RMQS_OK) {
        rc = fail("queue", st, NULL);
        goto out;
    }
    cfg = rmqs_config_new();
    if ((st = rmqs_config_set(cfg, "name", reference, &err)) != RMQS_OK ||
        (st = rmqs_config_set(cfg, "tracking", "manual", &err)) != RMQS_OK ||
        (st = rmqs_config_set(cfg, "offset", offset_spec, &err)) != RMQS_OK) {
        rc = fail("config", st, err);
        goto out;
    }
    st = rmqs_consumer_new(conn, stream, cfg, NULL, NULL, NULL, q, 0, &c, &err);
    if (st != RMQS_OK) {
        rc = fail("subscribe", st, err);
        goto out;
    }

    t0 = now_s();
    deadline = t0 + timeout_s;
    while (consumed < count) {
        rmqs_event *events[16];
        double left = deadline - now_s();
        size_t n = 0, i;
        rmqs_status st;
        if (left <= 0) {
            break;
        }
        st = rmqs_queue_poll_batch(q, events, 16, (int32_t)(left * 1000) + 1, &n, NULL);
        if (st != RMQS_OK && st != RMQS_ERR_TIMEOUT) {
            fprintf(stderr, "rmqs_queue_poll_batch: %s\n", rmqs_status_str(st));
            break;
        }
        for (i = 0; i < n; i++) {
            const rmqs_chunk *chunk = rmqs_event_chunk(events[i]);
            size_t k, m = rmqs_chunk_message_count(chunk);
            switch (rmqs_event_type(events[i])) {
            case RMQS_EVENT_CHUNK:
                for (k = 0; k < m && consumed < count; k++) {
                    const rmqs_message *msg = rmqs_chunk_message(chunk, k);
                    size_t len;
                    const uint8_t *body = rmqs_message_body(msg, &len);
                    last = rmqs_message_offset(msg);
                    if (consumed++ == 0) {
                        first = last;
                    }
                    if (verbose) {
                        printf("offset %llu  timestamp %lld  %zu bytes  %.*s\n",
                               (unsigned long long)last,
                               (long long)rmqs_message_timestamp(msg), len,
                               (int)(len < 40 ? len : 40), (const char *)body);
                    }
                }
                break;
            case RMQS_EVENT_STATE: /* closed under us: stream deleted, connection lost */
                fprintf(stderr, "consumer: closed: %s (%s)\n",
                        rmqs_status_str(rmqs_event_status(events[i])),
                        rmqs_event_message(events[i]));
                deadline = 0;
                break;
            case RMQS_EVENT_ERROR:
                fprintf(stderr, "consumer: warning: %s\n", rmqs_event_message(events[i]));
                break;
            default: break;
            }
            rmqs_event_free(events[i]); /* releases the chunk: the broker gets a credit */
        }
    }
    if (consumed > 0) {
        printf("consumed %zu messages, offsets %llu..%llu, in %.3f s\n", consumed,
               (unsigned long long)first, (unsigned long long)last, now_s() - t0);
    } else {
        printf("consumed 0 messages\n");
    }
    if (consumed < count) {
        fprintf(stderr, "consumer: only %zu of %zu messages within %.0f s\n", consumed, count,
                timeout_s);
        rc = 1;
    }

    /* Store the last offset processed. StoreOffset has no reply: query until it shows. */
    if (consumed > 0) {
        double until = now_s() + 5.0;
        st = rmqs_consumer_store_offset(c, last, &err);
        if (st != RMQS_OK) {
            rc = fail("store offset", st, err);
            goto out;
        }
        do {
            st = rmqs_consumer_query_offset(c, &stored, &err);
            if (st != RMQS_OK && st != RMQS_ERR_NO_OFFSET) {
                rc = fail("query offset", st, err);
                goto out;
            }
            rmqs_error_free(err);
            err = NULL;
            if (st == RMQS_OK && stored == last) {
                break;
            }
            nanosleep(&(struct timespec){0, 20 * 1000 * 1000}, NULL);
        } while (now_s() < until);
        if (st == RMQS_OK && stored == last) {
            printf("stored offset %llu for reference %s\n", (unsigned long long)last,
                   reference);
        } else {
            fprintf(stderr, "consumer: the stored offset did not show within 5 s\n");
            rc = 1;
        }
    }

out:
    rmqs_consumer_free(c);
    rmqs_config_free(cfg);
    if (delete_stream && conn != NULL) {
        st = rmqs_stream_delete(conn, stream, &err);
        if (st != RMQS_OK) {
            rc |= fail("delete stream", st, err);
        } else {
            printf("deleted stream %s\n", stream);
        }
    }
    rmqs_connection_free(conn);
    rmqs_queue_free(q); /* after the consumer and the connection that deliver to it */
    return rc;
}
