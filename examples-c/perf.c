/* rmqs-perf: load generator and meter for RabbitMQ streams over rmqstream, in the manner of
 * RabbitMQ's stream-perf-test. `rmqs-perf --help` lists the options.
 *
 * Producers (threads, one producer each) publish bodies of --size bytes to --streams streams
 * (or super streams of --partitions partitions), producer i to stream i % streams, at full
 * speed or at a fixed total --rate, until --count messages in all or for --duration seconds.
 * Consumers (consumer j on stream j % streams) start before the producers (offset `next`), or,
 * with --producers 0, read --count messages each from the first offset. The library's defaults
 * apply unless a --producer-key / --consumer-key / --connection-key says otherwise.
 *
 * Measured:
 * - confirm latency: from just before the send call (a blocking send's wait included) to the
 *   confirm callback; the send time (CLOCK_MONOTONIC ns) travels as the message's tag.
 * - end-to-end latency: from the send to the consumer's chunk callback; the first 8 bytes of
 *   every body carry the send time (CLOCK_REALTIME ns, little-endian), so producer and consumer
 *   may be different processes (clocks of different hosts must agree). Bodies under 8 bytes
 *   carry none; without producers (--producers 0) nothing is recorded.
 * - both into log-linear histograms (HdrHistogram's layout: 1024 linear sub-buckets per power
 *   of two, 0.1 % resolution, up to 2^40 ns), recorded lock-free from the callbacks.
 * - every second: messages sent, confirmed and consumed in that second, confirm and end-to-end
 *   p99 so far, RSS.
 * - at the end: counts, rates, client CPU (getrusage: every thread of the process), RSS (peak:
 *   VmHWM), the broker's CPU (--broker-pid: its /proc stat), latency percentiles; as text and
 *   as JSON (--json FILE, or - for stdout, the text then going to stderr).
 *
 * Exits 0 when every message sent was confirmed and every consumer received what its stream
 * got (or --count, without producers); 1 otherwise; 2 for bad usage.
 */
#define _GNU_SOURCE
#include <rmqstream.h>

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------------------------------ */
/* clocks, CPU, memory */

static uint64_t clock_ns(clockid_t id) {
    struct timespec ts;
    clock_gettime(id, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}
static uint64_t mono_ns(void) { return clock_ns(CLOCK_MONOTONIC); }

static double cpu_s(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* Peak RSS of this process image: VmHWM (ru_maxrss would also count the program that exec'd
 * this one, e.g. a Python script's own peak). */
static double rss_max_mib(void) {
    char line[256];
    double kb = 0;
    FILE *f = fopen("/proc/self/status", "r");
    if (f != NULL) {
        while (fgets(line, sizeof line, f) != NULL) {
            if (strncmp(line, "VmHWM:", 6) == 0) {
                kb = atof(line + 6);
                break;
            }
        }
        fclose(f);
    }
    return kb / 1024.0;
}

static double rss_now_mib(void) {
    long pages = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f != NULL) {
        if (fscanf(f, "%ld %ld", &pages, &resident) != 2) {
            resident = 0;
        }
        fclose(f);
    }
    return (double)resident * (double)sysconf(_SC_PAGESIZE) / (1024.0 * 1024.0);
}

/* utime + stime of a process (the broker's beam.smp), in seconds; -1 when unreadable. */
static double proc_cpu_s(long pid) {
    char path[64], buf[1024], *p;
    unsigned long long ut = 0, st = 0;
    size_t n;
    FILE *f;
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    f = fopen(path, "r");
    if (f == NULL) {
        return -1;
    }
    n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    p = strrchr(buf, ')'); /* the command name may hold spaces */
    /* after ")": state(3) ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt
     * utime(14) stime(15) */
    if (p == NULL || sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
                            &ut, &st) != 2) {
        return -1;
    }
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* ------------------------------------------------------------------------------------------ */
/* histogram: log-linear buckets, lock-free recording */

#define H_SUB_BITS 11
#define H_SUB (1u << H_SUB_BITS) /* values below are exact */
#define H_HALF (H_SUB / 2)       /* sub-buckets per power of two above */
#define H_MAX_BITS 40            /* values up to 2^40 ns (18 minutes), larger ones clamped */
#define H_BUCKETS (H_SUB + (H_MAX_BITS - H_SUB_BITS) * H_HALF)

typedef struct {
    _Atomic uint64_t counts[H_BUCKETS];
    _Atomic uint64_t total, sum, max;
} histogram;

static size_t h_index(uint64_t v) {
    int top, shift;
    if (v >= ((uint64_t)1 << H_MAX_BITS)) {
        v = ((uint64_t)1 << H_MAX_BITS) - 1;
    }
    if (v < H_SUB) {
        return (size_t)v;
    }
    top = 63 - __builtin_clzll(v); /* >= H_SUB_BITS */
    shift = top - (H_SUB_BITS - 1);
    return H_SUB + (size_t)(shift - 1) * H_HALF + (size_t)((v >> shift) - H_HALF);
}

/* The highest value that lands in bucket i. */
static uint64_t h_value(size_t i) {
    size_t k, shift;
    if (i < H_SUB) {
        return i;
    }
    k = i - H_SUB;
    shift = k / H_HALF + 1;
    return (((uint64_t)(k % H_HALF + H_HALF) + 1) << shift) - 1;
}

static void h_record(histogram *h, uint64_t v) {
    uint64_t m = atomic_load_explicit(&h->max, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->counts[h_index(v)], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->total, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum, v, memory_order_relaxed);
    while (v > m &&
           !atomic_compare_exchange_weak_explicit(&h->max, &m, v, memory_order_relaxed,
                                                  memory_order_relaxed)) {
    }
}

/* The value at percentile p (0-100), nearest rank; 0 when empty. */
static uint64_t h_percentile(histogram *h, double p) {
    uint64_t total = atomic_load_explicit(&h->total, memory_order_relaxed);
    uint64_t max = atomic_load_explicit(&h->max, memory_order_relaxed);
    uint64_t rank, seen = 0;
    size_t i;
    if (total == 0) {
        return 0;
    }
    rank = (uint64_t)(p / 100.0 * (double)total + 0.999999);
    rank = rank < 1 ? 1 : rank > total ? total : rank;
    for (i = 0; i < H_BUCKETS; i++) {
        seen += atomic_load_explicit(&h->counts[i], memory_order_relaxed);
        if (seen >= rank) {
            uint64_t v = h_value(i);
            return v < max ? v : max;
        }
    }
    return max;
}

static histogram confirm_h, e2e_h;

/* ------------------------------------------------------------------------------------------ */
/* options */

typedef struct {
    const char *items[64];
    int n;
} kv_list;

static struct {
    const char *uri;
    int producers, consumers, streams, partitions, super_stream, keep, delete_streams;
    size_t size;
    double rate, duration, drain;
    uint64_t count;
    const char *sub_entry_size, *compression, *producer_name, *stream, *json;
    long broker_pid;
    kv_list producer_keys, consumer_keys, connection_keys, stream_keys;
} o;

static volatile sig_atomic_t interrupted;
static atomic_int stop_producers;

static void on_signal(int sig) {
    (void)sig;
    interrupted = 1;
}

/* ------------------------------------------------------------------------------------------ */
/* producers and consumers */

typedef struct {
    int index, stream_index;
    rmqs_producer *p;
    rmqs_super_producer *sp;
    uint64_t to_send; /* 0: until stopped */
    double rate;      /* msg/s, 0: unlimited */
    _Atomic uint64_t sent, confirmed, failed;
    uint64_t end_ns; /* when its flush returned */
    atomic_int done;
    int rc;
    pthread_t thread;
} producer_ctx;

typedef struct {
    int index, stream_index;
    rmqs_consumer *c;
    rmqs_super_consumer *sc;
    _Atomic uint64_t consumed, wrong_size, last_ns;
} consumer_ctx;

static char **stream_names;
static int *stream_created;
static _Atomic uint64_t *stream_confirmed; /* per stream, for the consumers' expectations */

static void confirm_one(producer_ctx *pc, size_t tag, rmqs_status status, size_t now) {
    if (status == RMQS_OK) {
        /* the tag is the send's CLOCK_REALTIME ns, the time carried in the body (modulo 2^32
         * where size_t is 32 bits); a clock stepped back reads as 0 */
        h_record(&confirm_h, now > tag ? (uint64_t)(size_t)(now - tag) : 0);
        atomic_fetch_add_explicit(&pc->confirmed, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&stream_confirmed[pc->stream_index], 1, memory_order_relaxed);
    } else {
        atomic_fetch_add_explicit(&pc->failed, 1, memory_order_relaxed);
    }
}

static void on_confirms(void *user_data, const rmqs_confirm *confirms, size_t count,
                        size_t stride) {
    producer_ctx *pc = (producer_ctx *)user_data;
    size_t now = (size_t)clock_ns(CLOCK_REALTIME), i;
    for (i = 0; i < count; i++) {
        const rmqs_confirm *c = RMQS_AT(rmqs_confirm, confirms, stride, i);
        confirm_one(pc, c->tag, c->status, now);
    }
}

static void on_super_confirms(void *user_data, const rmqs_super_confirm *confirms, size_t count,
                              size_t stride) {
    producer_ctx *pc = (producer_ctx *)user_data;
    size_t now = (size_t)clock_ns(CLOCK_REALTIME), i;
    for (i = 0; i < count; i++) {
        const rmqs_super_confirm *c = RMQS_AT(rmqs_super_confirm, confirms, stride, i);
        confirm_one(pc, c->tag, c->status, now);
    }
}

static void on_chunk(void *user_data, const rmqs_chunk *chunk) {
    consumer_ctx *cc = (consumer_ctx *)user_data;
    size_t n = rmqs_chunk_message_count(chunk), i, wrong = 0;
    uint64_t now = clock_ns(CLOCK_REALTIME);
    for (i = 0; i < n; i++) {
        size_t len, k;
        const uint8_t *body = rmqs_message_body(rmqs_chunk_message(chunk, i), &len);
        if (len != o.size) {
            wrong++;
        } else if (len >= 8 && o.producers > 0) {
            uint64_t sent = 0;
            for (k = 0; k < 8; k++) {
                sent |= (uint64_t)body[k] << (8 * k);
            }
            /* without producers (reading an existing stream) the times are old: not recorded */
            h_record(&e2e_h, now > sent ? now - sent : 0);
        }
    }
    if (wrong != 0) {
        atomic_fetch_add_explicit(&cc->wrong_size, wrong, memory_order_relaxed);
    }
    atomic_store_explicit(&cc->last_ns, mono_ns(), memory_order_relaxed);
    atomic_fetch_add_explicit(&cc->consumed, n, memory_order_release);
}

static void print_error(const char *what, rmqs_status st, rmqs_error *err) {
    fprintf(stderr, "rmqs-perf: %s: %s (%s)%s%s\n", what, rmqs_status_str(st),
            rmqs_status_name(st), err ? ": " : "", err ? rmqs_error_message(err) : "");
    rmqs_error_free(err);
}

static void sleep_until(uint64_t mono_deadline) {
    struct timespec ts;
    ts.tv_sec = (time_t)(mono_deadline / 1000000000u);
    ts.tv_nsec = (long)(mono_deadline % 1000000000u);
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
    }
}

static void *producer_main(void *arg) {
    producer_ctx *pc = (producer_ctx *)arg;
    uint8_t *body = (uint8_t *)malloc(o.size + 1);
    uint64_t seq, t0 = mono_ns();
    char key[32];
    rmqs_error *err = NULL;
    rmqs_status st;
    if (body == NULL) {
        pc->rc = 1;
        atomic_store(&pc->done, 1);
        return NULL;
    }
    memset(body, 'x', o.size + 1);
    for (seq = 0; pc->to_send == 0 || seq < pc->to_send; seq++) {
        uint64_t now;
        size_t k;
        if (atomic_load_explicit(&stop_producers, memory_order_relaxed)) {
            break;
        }
        if (pc->rate > 0) {
            /* On schedule, in steps of 1 ms: late sends go at once, early ones wait for the
             * next millisecond boundary, as Tokio's timer (1 ms resolution) paces bench/official.
             * A sleep per message would cost a context switch per message (~5 us at 50k msg/s),
             * which getrusage would charge to the client. */
            uint64_t due = t0 + (uint64_t)((double)seq * 1e9 / pc->rate);
            if (mono_ns() < due) {
                sleep_until(t0 + (due - t0 + 999999u) / 1000000u * 1000000u);
            }
        }
        /* one clock read per message, as bench/official: the body's time is the confirm tag */
        now = clock_ns(CLOCK_REALTIME);
        for (k = 0; k < 8 && k < o.size; k++) {
            body[k] = (uint8_t)(now >> (8 * k));
        }
        if (pc->sp != NULL) {
            snprintf(key, sizeof key, "%" PRIu64, seq);
            st = rmqs_super_producer_send(pc->sp, key, body, o.size, (size_t)now, 0, &err);
        } else {
            st = rmqs_producer_send(pc->p, body, o.size, (size_t)now, 0, &err);
        }
        if (st != RMQS_OK) {
            print_error("send", st, err);
            err = NULL;
            pc->rc = 1;
            break;
        }
        atomic_fetch_add_explicit(&pc->sent, 1, memory_order_relaxed);
    }
    st = pc->sp != NULL ? rmqs_super_producer_flush(pc->sp, 120000, &err)
                        : rmqs_producer_flush(pc->p, 120000, &err);
    pc->end_ns = mono_ns();
    if (st != RMQS_OK) {
        print_error("flush", st, err);
        pc->rc = 1;
    }
    free(body);
    atomic_store(&pc->done, 1);
    return NULL;
}

/* ------------------------------------------------------------------------------------------ */
/* set-up helpers */

/* Applies "k=v" items to a config. */
static rmqs_status apply_keys(rmqs_config *cfg, const kv_list *l, rmqs_error **err) {
    int i;
    for (i = 0; i < l->n; i++) {
        char buf[1024];
        char *eq;
        rmqs_status st;
        snprintf(buf, sizeof buf, "%s", l->items[i]);
        eq = strchr(buf, '=');
        *eq = '\0';
        st = rmqs_config_set(cfg, buf, eq + 1, err);
        if (st != RMQS_OK) {
            return st;
        }
    }
    return RMQS_OK;
}

static rmqs_config *producer_config(int index, rmqs_error **err, rmqs_status *st) {
    rmqs_config *cfg = rmqs_config_new();
    char name[300];
    *st = RMQS_OK;
    if (o.sub_entry_size != NULL) {
        *st = rmqs_config_set(cfg, "sub_entry_size", o.sub_entry_size, err);
    }
    if (*st == RMQS_OK && o.compression != NULL) {
        *st = rmqs_config_set(cfg, "compression", o.compression, err);
    }
    if (*st == RMQS_OK && o.producer_name != NULL) {
        if (o.producers == 1) {
            snprintf(name, sizeof name, "%s", o.producer_name);
        } else {
            snprintf(name, sizeof name, "%s-%d", o.producer_name, index);
        }
        *st = rmqs_config_set(cfg, "name", name, err);
    }
    if (*st == RMQS_OK) {
        *st = apply_keys(cfg, &o.producer_keys, err);
    }
    return cfg;
}

static void print_latency(FILE *out, const char *what, histogram *h) {
    uint64_t n = atomic_load(&h->total);
    if (n == 0) {
        return;
    }
    fprintf(out,
            "%-20s ms: p50 %.3f  p90 %.3f  p99 %.3f  p99.9 %.3f  max %.3f  mean %.3f  (%" PRIu64
            " messages)\n",
            what, (double)h_percentile(h, 50) / 1e6, (double)h_percentile(h, 90) / 1e6,
            (double)h_percentile(h, 99) / 1e6, (double)h_percentile(h, 99.9) / 1e6,
            (double)atomic_load(&h->max) / 1e6, (double)atomic_load(&h->sum) / (double)n / 1e6,
            n);
}

static void json_latency(FILE *out, const char *name, histogram *h) {
    uint64_t n = atomic_load(&h->total);
    fprintf(out,
            "  \"%s\": {\"count\": %" PRIu64 ", \"p50\": %.4f, \"p90\": %.4f, \"p99\": %.4f, "
            "\"p999\": %.4f, \"max\": %.4f, \"mean\": %.4f},\n",
            name, n, (double)h_percentile(h, 50) / 1e6, (double)h_percentile(h, 90) / 1e6,
            (double)h_percentile(h, 99) / 1e6, (double)h_percentile(h, 99.9) / 1e6,
            (double)atomic_load(&h->max) / 1e6,
            n ? (double)atomic_load(&h->sum) / (double)n / 1e6 : 0.0);
}

static void json_string(FILE *out, const char *s) {
    fputc('"', out);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') {
            fputc('\\', out);
        }
        if ((unsigned char)*s >= 0x20) {
            fputc(*s, out);
        }
    }
    fputc('"', out);
}

static int usage(FILE *out) {
    fprintf(out,
        "usage: rmqs-perf [options]\n"
        "  -u, --uri URI              default $RMQS_TEST_URI, else rabbitmq-stream://guest:guest@localhost:5552/%%2f\n"
        "                             (several hosts: host1:5552,host2:5552 in the URI)\n"
        "  -x, --producers N          producer threads (default 1; 0: consume only)\n"
        "  -y, --consumers N          consumers (default 1)\n"
        "      --streams N            streams (default 1); producer i and consumer i use stream i %% N\n"
        "      --stream NAME          stream name (with --streams > 1: NAME-0, NAME-1, ...;\n"
        "                             default rmqs-perf-PID)\n"
        "  -s, --size BYTES           body size (default 100; 8 or more carry the send time)\n"
        "  -r, --rate MSG_PER_S       total publishing rate, spread over the producers, paced in 1 ms steps\n"
        "                             (default: unlimited)\n"
        "  -C, --count N              messages to publish in all (consume only: per consumer)\n"
        "  -z, --duration SECONDS     run for this long (with --count: whichever comes first)\n"
        "      --sub-entry-size N     producer sub_entry_size\n"
        "      --compression CODEC    none, gzip, snappy, lz4, zstd (with --sub-entry-size)\n"
        "      --super-stream         the streams are super streams (created with --partitions)\n"
        "      --partitions N         partitions of each super stream (default 3)\n"
        "      --producer-name NAME   named (deduplicating) producers: NAME, or NAME-i with several\n"
        "      --producer-key K=V     any producer config key (repeatable)\n"
        "      --consumer-key K=V     any consumer config key (repeatable), e.g. offset=first\n"
        "      --connection-key K=V   any connection config key (repeatable)\n"
        "      --stream-key K=V       stream creation argument (repeatable), e.g. max_length_bytes=1000000000\n"
        "      --keep                 keep the streams this run created (default: deleted)\n"
        "      --delete-streams       delete the streams at the end even if they existed before\n"
        "      --drain SECONDS        how long consumers may take after the producers finished (default 30)\n"
        "      --broker-pid PID       also report that process's CPU (the broker's beam.smp)\n"
        "      --json FILE            write a JSON summary (- for stdout; the text goes to stderr)\n"
        "  -h, --help\n"
        "Without --count and --duration: 10 seconds.\n");
    return out == stderr ? 2 : 0;
}

static int add_kv(kv_list *l, const char *item) {
    if (l->n == (int)(sizeof l->items / sizeof l->items[0]) || strchr(item, '=') == NULL ||
        strlen(item) >= 1024) {
        fprintf(stderr, "rmqs-perf: expected KEY=VALUE, got '%s'\n", item);
        return 0;
    }
    l->items[l->n++] = item;
    return 1;
}

static int parse_args(int argc, char **argv) {
    enum {
        O_STREAMS = 256, O_STREAM, O_SUB, O_COMP, O_SUPER, O_PARTS, O_PNAME, O_PKEY, O_CKEY,
        O_NKEY, O_SKEY, O_KEEP, O_DELETE, O_DRAIN, O_BPID, O_JSON
    };
    static const struct option longs[] = {
        {"uri", required_argument, NULL, 'u'},
        {"producers", required_argument, NULL, 'x'},
        {"consumers", required_argument, NULL, 'y'},
        {"streams", required_argument, NULL, O_STREAMS},
        {"stream", required_argument, NULL, O_STREAM},
        {"size", required_argument, NULL, 's'},
        {"rate", required_argument, NULL, 'r'},
        {"count", required_argument, NULL, 'C'},
        {"duration", required_argument, NULL, 'z'},
        {"sub-entry-size", required_argument, NULL, O_SUB},
        {"compression", required_argument, NULL, O_COMP},
        {"super-stream", no_argument, NULL, O_SUPER},
        {"partitions", required_argument, NULL, O_PARTS},
        {"producer-name", required_argument, NULL, O_PNAME},
        {"producer-key", required_argument, NULL, O_PKEY},
        {"consumer-key", required_argument, NULL, O_CKEY},
        {"connection-key", required_argument, NULL, O_NKEY},
        {"stream-key", required_argument, NULL, O_SKEY},
        {"keep", no_argument, NULL, O_KEEP},
        {"delete-streams", no_argument, NULL, O_DELETE},
        {"drain", required_argument, NULL, O_DRAIN},
        {"broker-pid", required_argument, NULL, O_BPID},
        {"json", required_argument, NULL, O_JSON},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int opt;
    o.uri = getenv("RMQS_TEST_URI");
    o.producers = 1;
    o.consumers = 1;
    o.streams = 1;
    o.partitions = 3;
    o.size = 100;
    o.drain = 30;
    while ((opt = getopt_long(argc, argv, "u:x:y:s:r:C:z:h", longs, NULL)) != -1) {
        switch (opt) {
        case 'u': o.uri = optarg; break;
        case 'x': o.producers = atoi(optarg); break;
        case 'y': o.consumers = atoi(optarg); break;
        case O_STREAMS: o.streams = atoi(optarg); break;
        case O_STREAM: o.stream = optarg; break;
        case 's': o.size = (size_t)strtoull(optarg, NULL, 10); break;
        case 'r': o.rate = atof(optarg); break;
        case 'C': o.count = strtoull(optarg, NULL, 10); break;
        case 'z': o.duration = atof(optarg); break;
        case O_SUB: o.sub_entry_size = optarg; break;
        case O_COMP: o.compression = optarg; break;
        case O_SUPER: o.super_stream = 1; break;
        case O_PARTS: o.partitions = atoi(optarg); break;
        case O_PNAME: o.producer_name = optarg; break;
        case O_PKEY: if (!add_kv(&o.producer_keys, optarg)) return 0; break;
        case O_CKEY: if (!add_kv(&o.consumer_keys, optarg)) return 0; break;
        case O_NKEY: if (!add_kv(&o.connection_keys, optarg)) return 0; break;
        case O_SKEY: if (!add_kv(&o.stream_keys, optarg)) return 0; break;
        case O_KEEP: o.keep = 1; break;
        case O_DELETE: o.delete_streams = 1; break;
        case O_DRAIN: o.drain = atof(optarg); break;
        case O_BPID: o.broker_pid = atol(optarg); break;
        case O_JSON: o.json = optarg; break;
        case 'h': exit(usage(stdout));
        default: return 0;
        }
    }
    if (optind != argc || o.producers < 0 || o.consumers < 0 || o.streams < 1 ||
        o.partitions < 1 || o.rate < 0 || o.duration < 0 || o.size > 16u * 1024 * 1024 ||
        (o.producers == 0 && o.consumers == 0)) {
        return 0;
    }
    if (o.count == 0 && o.duration == 0) {
        o.duration = 10;
    }
    if (o.uri == NULL) {
        o.uri = "rabbitmq-stream://guest:guest@localhost:5552/%2f";
    }
    return 1;
}

/* ------------------------------------------------------------------------------------------ */

int main(int argc, char **argv) {
    rmqs_connection *conn = NULL;
    rmqs_config *cfg = NULL;
    rmqs_error *err = NULL;
    rmqs_status st;
    producer_ctx *pcs = NULL;
    consumer_ctx *ccs = NULL;
    FILE *text = stdout;
    char default_stream[64];
    int i, rc = 0, started = 0;
    uint64_t t_start = 0, t_pub_end = 0, t_end, last_print, prev_sent = 0, prev_conf = 0,
             prev_cons = 0, sent = 0, confirmed = 0, failed = 0, consumed = 0, wrong = 0;
    uint64_t drain_deadline = 0, run_deadline = 0, expected_consumed = 0;
    double cpu0 = 0, cpu = 0, bcpu0 = -1, bcpu = -1, secs;
    struct sigaction sa;

    if (!parse_args(argc, argv)) {
        return usage(stderr);
    }
    if (o.json != NULL && strcmp(o.json, "-") == 0) {
        text = stderr;
    }
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    /* names */
    if (o.stream == NULL) {
        snprintf(default_stream, sizeof default_stream, "rmqs-perf-%ld", (long)getpid());
        o.stream = default_stream;
    }
    stream_names = (char **)calloc((size_t)o.streams, sizeof(char *));
    stream_created = (int *)calloc((size_t)o.streams, sizeof(int));
    stream_confirmed = (_Atomic uint64_t *)calloc((size_t)o.streams, sizeof(uint64_t));
    pcs = (producer_ctx *)calloc((size_t)o.producers + 1, sizeof(producer_ctx));
    ccs = (consumer_ctx *)calloc((size_t)o.consumers + 1, sizeof(consumer_ctx));
    if (!stream_names || !stream_created || !stream_confirmed || !pcs || !ccs) {
        fprintf(stderr, "rmqs-perf: out of memory\n");
        return 1;
    }
    for (i = 0; i < o.streams; i++) {
        size_t len = strlen(o.stream) + 16;
        stream_names[i] = (char *)malloc(len);
        if (stream_names[i] == NULL) {
            return 1;
        }
        if (o.streams == 1) {
            snprintf(stream_names[i], len, "%s", o.stream);
        } else {
            snprintf(stream_names[i], len, "%s-%d", o.stream, i);
        }
    }

    /* connection */
    cfg = rmqs_config_new();
    st = rmqs_config_set(cfg, "uri", o.uri, &err);
    if (st == RMQS_OK) {
        st = apply_keys(cfg, &o.connection_keys, &err);
    }
    if (st == RMQS_OK) {
        st = rmqs_connection_open(cfg, &conn, &err);
    }
    rmqs_config_free(cfg);
    cfg = NULL;
    if (st != RMQS_OK) {
        print_error("connect", st, err);
        return 1;
    }

    /* streams: created unless they exist */
    if (o.stream_keys.n > 0) {
        cfg = rmqs_config_new();
        if ((st = apply_keys(cfg, &o.stream_keys, &err)) != RMQS_OK) {
            print_error("stream keys", st, err);
            rc = 1;
            goto out;
        }
    }
    for (i = 0; i < o.streams; i++) {
        st = o.super_stream
                 ? rmqs_super_stream_create_n(conn, stream_names[i], (uint32_t)o.partitions, cfg,
                                              &err)
                 : rmqs_stream_create(conn, stream_names[i], cfg, &err);
        if (st == RMQS_OK) {
            stream_created[i] = 1;
        } else if (st == RMQS_ERR_STREAM_ALREADY_EXISTS) {
            rmqs_error_free(err);
            err = NULL;
        } else {
            print_error(o.super_stream ? "create super stream" : "create stream", st, err);
            err = NULL;
            rc = 1;
            goto out;
        }
    }
    rmqs_config_free(cfg);
    cfg = NULL;

    fprintf(text, "rmqs-perf: rmqstream %s, RabbitMQ %s, %d producer(s), %d consumer(s), %d %s "
                  "%s%s, %zu-byte messages",
            rmqs_version(), rmqs_connection_server_version(conn), o.producers, o.consumers,
            o.streams, o.super_stream ? "super stream(s)" : "stream(s)", stream_names[0],
            o.streams > 1 ? "..." : "", o.size);
    if (o.rate > 0) {
        fprintf(text, ", %.0f msg/s", o.rate);
    }
    if (o.count > 0) {
        fprintf(text, ", %" PRIu64 " messages", o.count);
    }
    if (o.duration > 0) {
        fprintf(text, ", %.0f s", o.duration);
    }
    fprintf(text, "\n");

    /* consumers first, so that they see every message published */
    for (i = 0; i < o.consumers; i++) {
        consumer_ctx *cc = &ccs[i];
        cc->index = i;
        cc->stream_index = i % o.streams;
        cfg = rmqs_config_new();
        st = rmqs_config_set(cfg, "offset", o.producers > 0 ? "next" : "first", &err);
        if (st == RMQS_OK) {
            st = apply_keys(cfg, &o.consumer_keys, &err);
        }
        if (st == RMQS_OK) {
            st = o.super_stream
                     ? rmqs_super_consumer_new(conn, stream_names[cc->stream_index], cfg, on_chunk,
                                               cc, NULL, NULL, (size_t)i, &cc->sc, &err)
                     : rmqs_consumer_new(conn, stream_names[cc->stream_index], cfg, on_chunk, cc,
                                         NULL, NULL, (size_t)i, &cc->c, &err);
        }
        rmqs_config_free(cfg);
        cfg = NULL;
        if (st != RMQS_OK) {
            print_error("consumer", st, err);
            err = NULL;
            rc = 1;
            goto out;
        }
    }
    for (i = 0; i < o.producers; i++) {
        producer_ctx *pc = &pcs[i];
        pc->index = i;
        pc->stream_index = i % o.streams;
        if (o.count > 0) {
            pc->to_send = o.count / (uint64_t)o.producers +
                          ((uint64_t)i < o.count % (uint64_t)o.producers ? 1 : 0);
        }
        pc->rate = o.rate / o.producers;
        cfg = producer_config(i, &err, &st);
        if (st == RMQS_OK) {
            st = o.super_stream
                     ? rmqs_super_producer_new(conn, stream_names[pc->stream_index], cfg,
                                               on_super_confirms, pc, NULL, NULL, (size_t)i,
                                               &pc->sp, &err)
                     : rmqs_producer_new(conn, stream_names[pc->stream_index], cfg, on_confirms,
                                         pc, NULL, NULL, (size_t)i, &pc->p, &err);
        }
        rmqs_config_free(cfg);
        cfg = NULL;
        if (st != RMQS_OK) {
            print_error("producer", st, err);
            err = NULL;
            rc = 1;
            goto out;
        }
        if (o.count > 0 && pc->to_send == 0) {
            pc->rc = 0;
            atomic_store(&pc->done, 1);
        }
    }
    if (o.producers == 0) {
        expected_consumed = o.count * (uint64_t)o.consumers;
    }

    /* run */
    cpu0 = cpu_s();
    if (o.broker_pid > 0) {
        bcpu0 = proc_cpu_s(o.broker_pid);
    }
    t_start = mono_ns();
    if (o.duration > 0) {
        run_deadline = t_start + (uint64_t)(o.duration * 1e9);
    }
    for (i = 0; i < o.producers; i++) {
        if (atomic_load(&pcs[i].done)) {
            continue;
        }
        if (pthread_create(&pcs[i].thread, NULL, producer_main, &pcs[i]) != 0) {
            fprintf(stderr, "rmqs-perf: cannot start a thread\n");
            atomic_store(&stop_producers, 1);
            rc = 1;
            break;
        }
        started = i + 1;
    }
    last_print = t_start;
    for (;;) {
        uint64_t now, s = 0, c = 0, k = 0;
        int producers_done = 1, consumers_done = 1;
        struct timespec nap = {0, 50 * 1000000};
        nanosleep(&nap, NULL);
        now = mono_ns();
        if (interrupted || (run_deadline != 0 && now >= run_deadline)) {
            atomic_store(&stop_producers, 1);
        }
        for (i = 0; i < o.producers; i++) {
            s += atomic_load_explicit(&pcs[i].sent, memory_order_relaxed);
            c += atomic_load_explicit(&pcs[i].confirmed, memory_order_relaxed);
            if (!atomic_load(&pcs[i].done)) {
                producers_done = 0;
            }
        }
        for (i = 0; i < o.consumers; i++) {
            uint64_t got = atomic_load_explicit(&ccs[i].consumed, memory_order_acquire);
            uint64_t want =
                o.producers > 0
                    ? atomic_load_explicit(&stream_confirmed[ccs[i].stream_index],
                                           memory_order_relaxed)
                    : o.count;
            k += got;
            if (o.producers == 0 ? (o.count == 0 || got < want) : got < want) {
                consumers_done = 0;
            }
        }
        if (producers_done && t_pub_end == 0) {
            for (i = 0; i < o.producers; i++) {
                if (pcs[i].end_ns > t_pub_end) {
                    t_pub_end = pcs[i].end_ns;
                }
            }
            if (t_pub_end == 0) {
                t_pub_end = now;
            }
            drain_deadline = now + (uint64_t)(o.drain * 1e9);
        }
        if (now - last_print >= 1000000000u) {
            double dt = (double)(now - last_print) / 1e9;
            fprintf(text,
                    "%6.1f s  sent %9.0f msg/s  confirmed %9.0f msg/s  consumed %9.0f msg/s  "
                    "confirm p99 %8.3f ms  e2e p99 %8.3f ms  rss %.1f MiB\n",
                    (double)(now - t_start) / 1e9, (double)(s - prev_sent) / dt,
                    (double)(c - prev_conf) / dt, (double)(k - prev_cons) / dt,
                    (double)h_percentile(&confirm_h, 99) / 1e6,
                    (double)h_percentile(&e2e_h, 99) / 1e6, rss_now_mib());
            fflush(text);
            prev_sent = s;
            prev_conf = c;
            prev_cons = k;
            last_print = now;
        }
        if (o.producers > 0 && producers_done &&
            (consumers_done || interrupted || now >= drain_deadline)) {
            break;
        }
        if (o.producers == 0 && (consumers_done || interrupted ||
                                 (run_deadline != 0 && now >= run_deadline))) {
            break;
        }
    }
    t_end = mono_ns();
    cpu = cpu_s() - cpu0;
    if (o.broker_pid > 0 && bcpu0 >= 0) {
        double b = proc_cpu_s(o.broker_pid);
        bcpu = b >= 0 ? b - bcpu0 : -1;
    }
    for (i = 0; i < started; i++) {
        pthread_join(pcs[i].thread, NULL);
    }

out:
    /* free the consumers first: their callbacks stop, counts are final */
    for (i = 0; i < o.consumers; i++) {
        rmqs_consumer_free(ccs[i].c);
        rmqs_super_consumer_free(ccs[i].sc);
        ccs[i].c = NULL;
        ccs[i].sc = NULL;
    }
    for (i = 0; i < o.producers; i++) {
        rmqs_producer_free(pcs[i].p);
        rmqs_super_producer_free(pcs[i].sp);
        pcs[i].p = NULL;
        pcs[i].sp = NULL;
        rc |= pcs[i].rc;
    }
    rmqs_config_free(cfg);
    for (i = 0; conn != NULL && i < o.streams; i++) {
        if ((stream_created[i] && !o.keep) || o.delete_streams) {
            st = o.super_stream ? rmqs_super_stream_delete(conn, stream_names[i], &err)
                                : rmqs_stream_delete(conn, stream_names[i], &err);
            if (st != RMQS_OK) {
                print_error("delete stream", st, err);
                err = NULL;
                rc = 1;
            }
        }
    }
    if (t_start == 0) { /* set-up failed */
        rmqs_connection_free(conn);
        return 1;
    }

    /* summary */
    {
        uint64_t cons_end = 0;
        const char *client = rmqs_version();
        char broker[64];
        double pub_s, con_s, per_m;
        uint64_t messages;
        FILE *js = NULL;

        snprintf(broker, sizeof broker, "%s", rmqs_connection_server_version(conn));
        for (i = 0; i < o.producers; i++) {
            sent += atomic_load(&pcs[i].sent);
            confirmed += atomic_load(&pcs[i].confirmed);
            failed += atomic_load(&pcs[i].failed);
        }
        for (i = 0; i < o.consumers; i++) {
            uint64_t last = atomic_load(&ccs[i].last_ns);
            consumed += atomic_load(&ccs[i].consumed);
            wrong += atomic_load(&ccs[i].wrong_size);
            if (last > cons_end) {
                cons_end = last;
            }
            if (o.producers > 0) {
                expected_consumed += atomic_load(&stream_confirmed[ccs[i].stream_index]);
            }
        }
        if (t_pub_end == 0) {
            t_pub_end = t_end;
        }
        if (cons_end == 0) {
            cons_end = t_end;
        }
        secs = (double)(t_end - t_start) / 1e9;
        pub_s = (double)(t_pub_end - t_start) / 1e9;
        con_s = (double)(cons_end - t_start) / 1e9;
        messages = o.producers > 0 ? confirmed : consumed;
        per_m = messages ? 1e6 / (double)messages : 0;
        if (sent != confirmed || failed != 0 || wrong != 0 || consumed < expected_consumed) {
            rc = 1;
        }

        fprintf(text, "\n");
        if (o.producers > 0) {
            fprintf(text,
                    "published %" PRIu64 ", confirmed %" PRIu64 ", failed %" PRIu64
                    " in %.3f s: %.0f msg/s, %.1f MB/s\n",
                    sent, confirmed, failed, pub_s, pub_s > 0 ? (double)confirmed / pub_s : 0,
                    pub_s > 0 ? (double)confirmed * (double)o.size / 1e6 / pub_s : 0);
        }
        if (o.consumers > 0) {
            fprintf(text,
                    "consumed %" PRIu64 " of %" PRIu64 " (%" PRIu64 " of the wrong size) in %.3f s: "
                    "%.0f msg/s, %.1f MB/s\n",
                    consumed, expected_consumed, wrong, con_s,
                    con_s > 0 ? (double)consumed / con_s : 0,
                    con_s > 0 ? (double)consumed * (double)o.size / 1e6 / con_s : 0);
        }
        fprintf(text, "client CPU %.2f s (%.3f s per million messages), RSS max %.1f MiB, now %.1f MiB\n",
                cpu, cpu * per_m, rss_max_mib(), rss_now_mib());
        if (bcpu >= 0) {
            fprintf(text, "broker CPU %.2f s (%.3f s per million messages)\n", bcpu, bcpu * per_m);
        }
        print_latency(text, "confirm latency", &confirm_h);
        print_latency(text, "end-to-end latency", &e2e_h);
        fprintf(text, "rmqs-perf: %s\n", rc == 0 ? "OK" : "FAILED");

        if (o.json != NULL) {
            js = strcmp(o.json, "-") == 0 ? stdout : fopen(o.json, "w");
            if (js == NULL) {
                fprintf(stderr, "rmqs-perf: cannot write %s: %s\n", o.json, strerror(errno));
                rc = 1;
            }
        }
        if (js != NULL) {
            fprintf(js, "{\n  \"tool\": \"rmqs-perf\",\n  \"client\": ");
            json_string(js, client);
            fprintf(js, ",\n  \"broker_version\": ");
            json_string(js, broker);
            fprintf(js,
                    ",\n  \"producers\": %d, \"consumers\": %d, \"streams\": %d, "
                    "\"super_stream\": %s, \"partitions\": %d,\n"
                    "  \"size\": %zu, \"rate\": %.0f, \"count\": %" PRIu64 ", \"duration_s\": %.3f,\n",
                    o.producers, o.consumers, o.streams, o.super_stream ? "true" : "false",
                    o.super_stream ? o.partitions : 0, o.size, o.rate, o.count, o.duration);
            fprintf(js,
                    "  \"published\": %" PRIu64 ",\n  \"confirmed\": %" PRIu64
                    ",\n  \"failed\": %" PRIu64 ",\n  \"consumed\": %" PRIu64
                    ",\n  \"expected_consumed\": %" PRIu64 ",\n  \"wrong_size\": %" PRIu64 ",\n",
                    sent, confirmed, failed, consumed, expected_consumed, wrong);
            fprintf(js,
                    "  \"seconds\": %.4f,\n  \"publish_seconds\": %.4f,\n  \"publish_msg_per_s\": "
                    "%.1f,\n  \"consume_seconds\": %.4f,\n  \"consume_msg_per_s\": %.1f,\n",
                    secs, o.producers ? pub_s : 0,
                    o.producers && pub_s > 0 ? (double)confirmed / pub_s : 0,
                    o.consumers ? con_s : 0,
                    o.consumers && con_s > 0 ? (double)consumed / con_s : 0);
            fprintf(js,
                    "  \"cpu_s\": %.4f,\n  \"cpu_s_per_million\": %.4f,\n  \"broker_cpu_s\": %.4f,\n"
                    "  \"broker_cpu_s_per_million\": %.4f,\n  \"rss_max_mib\": %.2f,\n"
                    "  \"rss_end_mib\": %.2f,\n",
                    cpu, cpu * per_m, bcpu, bcpu >= 0 ? bcpu * per_m : -1.0, rss_max_mib(),
                    rss_now_mib());
            json_latency(js, "confirm_latency_ms", &confirm_h);
            json_latency(js, "e2e_latency_ms", &e2e_h);
            fprintf(js, "  \"ok\": %s\n}\n", rc == 0 ? "true" : "false");
            if (js != stdout) {
                fclose(js);
            }
        }
    }
    rmqs_connection_free(conn);
    for (i = 0; i < o.streams; i++) {
        free(stream_names[i]);
    }
    free(stream_names);
    free(stream_created);
    free((void *)stream_confirmed);
    free(pcs);
    free(ccs);
    return rc;
}
