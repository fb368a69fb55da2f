/* super_stream: a super stream end to end.
 *
 * Creates a super stream of P partitions (default 3), publishes N messages (default 30,000)
 * with routing keys through a super producer (hash routing: each key goes to the partition
 * MurmurHash3 gives, as with the Java, Go, .NET, Rust and JS clients), consumes every partition
 * with a super consumer, checks that each message came back once, from the partition its key
 * predicts, and that each confirm named that partition; prints per-partition counts and deletes
 * the super stream. Exits 1 on any error or mismatch.
 *
 *   super_stream [-n N] [-p PARTITIONS] [URI]
 *
 * URI defaults to $RMQS_TEST_URI, then rabbitmq-stream://guest:guest@localhost:5552/%2f.
 * Needs RabbitMQ 3.13 or later (super streams).
 */
#define _POSIX_C_SOURCE 200809L
#include <rmqstream.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_PARTITIONS 64
#define KEYS 1000

/* Message i: routing key "customer-<i mod 1000>", body "<key>|<i>". */
static size_t make_key(size_t i, char *buf, size_t cap) {
    return (size_t)snprintf(buf, cap, "customer-%zu", i % KEYS);
}

static size_t make_body(size_t i, char *buf, size_t cap) {
    char key[32];
    make_key(i, key, sizeof key);
    return (size_t)snprintf(buf, cap, "%s|%zu", key, i);
}

/* The partition hash routing gives `key` (the library's MurmurHash3, seed 104729). */
static uint32_t predicted(const char *key, size_t len, uint32_t partitions) {
    uint32_t p = UINT32_MAX;
    if (rmqs_super_stream_partition((const uint8_t *)key, len, partitions, &p, NULL) != RMQS_OK) {
        return UINT32_MAX;
    }
    return p;
}

static int fail(const char *what, rmqs_status st, rmqs_error *err) {
    fprintf(stderr, "super_stream: %s: %s (%s)%s%s\n", what, rmqs_status_str(st),
            rmqs_status_name(st), err ? ": " : "", err ? rmqs_error_message(err) : "");
    rmqs_error_free(err);
    return 1;
}

/* ---- shared with the callbacks, which run on library dispatcher threads ------------------ */

typedef struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    uint32_t partitions;
    size_t n;
    size_t sent[MAX_PARTITIONS];      /* predicted per partition (main thread) */
    size_t confirmed[MAX_PARTITIONS]; /* confirms with RMQS_OK, by the partition they name */
    size_t consumed[MAX_PARTITIONS];  /* messages read, by the chunk's partition */
    size_t total_consumed;
    size_t refused;
    size_t mismatches;
    unsigned char *seen; /* n flags: message i consumed */
} state;

/* Key extractor (used for the messages sent without a key): the body up to '|'. Called on the
 * sending thread. */
static intptr_t key_of_body(void *user_data, const rmqs_message_builder *msg,
                            const uint8_t *body, size_t len, uintptr_t tag, char *key,
                            size_t capacity) {
    const uint8_t *bar = memchr(body, '|', len);
    size_t klen = bar ? (size_t)(bar - body) : len;
    (void)user_data;
    (void)msg;
    (void)tag;
    if (klen <= capacity) {
        memcpy(key, body, klen);
    }
    return (intptr_t)klen; /* more than capacity: called again with enough room */
}

static void on_confirms(void *user_data, const rmqs_super_confirm *confirms, size_t count,
                        size_t stride) {
    state *s = (state *)user_data;
    size_t i;
    pthread_mutex_lock(&s->lock);
    for (i = 0; i < count; i++) {
        const rmqs_super_confirm *c = RMQS_AT(rmqs_super_confirm, confirms, stride, i);
        char key[32];
        size_t klen = make_key((size_t)c->tag, key, sizeof key);
        if (c->status != RMQS_OK) {
            if (s->refused++ < 5) {
                fprintf(stderr, "super_stream: message %zu: %s\n", (size_t)c->tag,
                        rmqs_status_str(c->status));
            }
        } else if (c->partition != predicted(key, klen, s->partitions)) {
            if (s->mismatches++ < 5) {
                fprintf(stderr, "super_stream: message %zu confirmed on partition %u\n",
                        (size_t)c->tag, c->partition);
            }
        } else {
            s->confirmed[c->partition]++;
        }
    }
    pthread_mutex_unlock(&s->lock);
}

static void on_chunk(void *user_data, const rmqs_chunk *chunk) {
    state *s = (state *)user_data;
    int32_t partition = rmqs_chunk_partition(chunk);
    size_t n = rmqs_chunk_message_count(chunk), i;
    pthread_mutex_lock(&s->lock);
    for (i = 0; i < n; i++) {
        size_t len, index = (size_t)-1;
        const uint8_t *body = rmqs_message_body(rmqs_chunk_message(chunk, i), &len);
        const uint8_t *bar = memchr(body, '|', len);
        char digits[24];
        if (bar != NULL) {
            size_t dlen = len - (size_t)(bar - body) - 1;
            if (dlen > 0 && dlen < sizeof digits) {
                memcpy(digits, bar + 1, dlen);
                digits[dlen] = '\0';
                index = (size_t)strtoull(digits, NULL, 10);
            }
        }
        if (partition < 0 || bar == NULL || index >= s->n || s->seen[index] ||
            predicted((const char *)body, (size_t)(bar - body), s->partitions) !=
                (uint32_t)partition) {
            if (s->mismatches++ < 5) {
                fprintf(stderr, "super_stream: %.*s on partition %d (%s)\n", (int)len,
                        (const char *)body, (int)partition, rmqs_chunk_stream(chunk));
            }
            continue;
        }
        s->seen[index] = 1;
        s->consumed[partition]++;
        s->total_consumed++;
    }
    if (s->total_consumed >= s->n) {
        pthread_cond_signal(&s->cond);
    }
    pthread_mutex_unlock(&s->lock);
}

static size_t wait_consumed(state *s, int seconds) {
    struct timespec deadline;
    size_t n;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += seconds;
    pthread_mutex_lock(&s->lock);
    while (s->total_consumed < s->n) {
        if (pthread_cond_timedwait(&s->cond, &s->lock, &deadline) != 0) {
            break;
        }
    }
    n = s->total_consumed;
    pthread_mutex_unlock(&s->lock);
    return n;
}

int main(int argc, char **argv) {
    const char *uri = getenv("RMQS_TEST_URI");
    size_t n = 30000, i, total_confirmed = 0;
    unsigned long p_arg = 3;
    char name[64];
    state s;
    rmqs_connection *conn = NULL;
    rmqs_super_producer *producer = NULL;
    rmqs_super_consumer *consumer = NULL;
    rmqs_config *cfg = NULL;
    rmqs_error *err = NULL;
    rmqs_status st;
    int rc = 0, created = 0, opt;

    while ((opt = getopt(argc, argv, "n:p:")) != -1) {
        if (opt == 'n' && (n = (size_t)strtoull(optarg, NULL, 10)) > 0) {
            continue;
        }
        if (opt == 'p' && (p_arg = strtoul(optarg, NULL, 10)) > 0 && p_arg <= MAX_PARTITIONS) {
            continue;
        }
        fprintf(stderr, "usage: super_stream [-n N] [-p PARTITIONS (1-%d)] [URI]\n",
                MAX_PARTITIONS);
        return 2;
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
    s.partitions = (uint32_t)p_arg;
    s.n = n;
    s.seen = calloc(n, 1);
    if (s.seen == NULL) {
        return 1;
    }
    snprintf(name, sizeof name, "super-stream-%ld-%ld", (long)getpid(), (long)time(NULL));

    /* 1. Connect and create the super stream: partitions <name>-0 .. <name>-(P-1). */
    st = rmqs_connection_open_uri(uri, &conn, &err);
    if (st != RMQS_OK) {
        rc = fail("open", st, err);
        goto out;
    }
    printf("connected to RabbitMQ %s (rmqstream %s)\n", rmqs_connection_server_version(conn),
           rmqs_version());
    st = rmqs_super_stream_create_n(conn, name, s.partitions, NULL, &err);
    if (st != RMQS_OK) {
        rc = fail("create super stream", st, err);
        goto out;
    }
    created = 1;
    printf("created super stream %s with %u partitions\n", name, s.partitions);

    /* 2. Publish with routing keys. Hash routing is the default; the key extractor gives the
     * key of the messages sent without one (every other message here). */
    cfg = rmqs_config_new();
    if (cfg == NULL || rmqs_config_set(cfg, "routing", "hash", &err) != RMQS_OK ||
        rmqs_config_set_key_extractor(cfg, key_of_body, NULL, NULL, NULL) != RMQS_OK) {
        rc = fail("config", RMQS_ERR_INVALID_ARGUMENT, err);
        goto out;
    }
    st = rmqs_super_producer_new(conn, name, cfg, on_confirms, &s, NULL, NULL, 0, &producer,
                                 &err);
    if (st != RMQS_OK) {
        rc = fail("super producer", st, err);
        goto out;
    }
    for (i = 0; i < n; i++) {
        char key[32], body[64];
        size_t klen = make_key(i, key, sizeof key), blen = make_body(i, body, sizeof body);
        uint32_t partition = UINT32_MAX;
        /* send_ex also says where the message went */
        st = rmqs_super_producer_send_ex(producer, i % 2 == 0 ? key : NULL,
                                         (const uint8_t *)body, blen, NULL, 0, i, 0,
                                         &partition, NULL, &err);
        if (st != RMQS_OK) {
            rc = fail("send", st, err);
            goto out;
        }
        if (partition != predicted(key, klen, s.partitions)) {
            fprintf(stderr, "super_stream: %s sent to partition %u\n", key, partition);
            rc = 1;
            goto out;
        }
        s.sent[partition]++;
    }
    st = rmqs_super_producer_flush(producer, 60000, NULL);
    if (st != RMQS_OK) {
        rc = fail("flush", st, NULL);
        goto out;
    }
    rmqs_super_producer_free(producer);
    producer = NULL;

    /* 3. Consume every partition from its first message. */
    rmqs_config_free(cfg);
    cfg = rmqs_config_new();
    if (cfg == NULL || rmqs_config_set(cfg, "offset", "first", &err) != RMQS_OK) {
        rc = fail("config", RMQS_ERR_INVALID_ARGUMENT, err);
        goto out;
    }
    st = rmqs_super_consumer_new(conn, name, cfg, on_chunk, &s, NULL, NULL, 0, &consumer, &err);
    if (st != RMQS_OK) {
        rc = fail("super consumer", st, err);
        goto out;
    }
    wait_consumed(&s, 60);
    /* after free no callback runs: s may be read without the lock */
    rmqs_super_consumer_free(consumer);
    consumer = NULL;

    /* 4. Per-partition counts. */
    printf("%-40s %10s %10s %10s\n", "partition", "routed", "confirmed", "consumed");
    for (i = 0; i < s.partitions; i++) {
        char part[96];
        snprintf(part, sizeof part, "%s-%zu", name, i);
        printf("%-40s %10zu %10zu %10zu\n", part, s.sent[i], s.confirmed[i], s.consumed[i]);
        total_confirmed += s.confirmed[i];
        if (s.confirmed[i] != s.sent[i] || s.consumed[i] != s.sent[i]) {
            rc = 1;
        }
    }
    if (rc != 0 || total_confirmed != n || s.total_consumed != n || s.mismatches != 0 ||
        s.refused != 0) {
        fprintf(stderr,
                "super_stream: FAILED: %zu of %zu confirmed, %zu consumed, %zu mismatches, "
                "%zu refused\n",
                total_confirmed, n, s.total_consumed, s.mismatches, s.refused);
        rc = 1;
    } else {
        printf("all %zu messages confirmed and consumed on the partition of their key\n", n);
    }

out:
    /* 5. Clean up: producer and consumer first, then the super stream and the connection. */
    rmqs_super_producer_free(producer);
    rmqs_super_consumer_free(consumer);
    rmqs_config_free(cfg);
    if (conn != NULL) {
        if (created) {
            st = rmqs_super_stream_delete(conn, name, &err);
            if (st == RMQS_OK) {
                printf("deleted super stream %s\n", name);
            } else {
                rc |= fail("delete super stream", st, err);
            }
        }
        rmqs_connection_free(conn);
    }
    free(s.seen);
    pthread_cond_destroy(&s.cond);
    pthread_mutex_destroy(&s.lock);
    printf("super_stream: %s\n", rc == 0 ? "OK" : "FAILED");
    return rc;
}
