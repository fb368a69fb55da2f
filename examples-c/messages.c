/* messages: an AMQP 1.0 message with every section, published and read back typed.
 *
 *   messages [URI]
 *
 * Builds one message with an rmqs_message_builder: header (all five fields), properties (all
 * thirteen; message-id a ulong, correlation-id a uuid), application properties of every simple
 * type, message annotations, delivery annotations, a footer and a body of two data sections.
 * Publishes it with rmqs_producer_send_message() to a new stream, then a second message reusing
 * the same builder (reset; an amqp-value string body). Reads both back with a consumer and prints
 * every section typed (rmqs_message_section(), rmqs_message_body_section(), rmqs_value_*),
 * checking each value against what was set. Deletes the stream and prints "messages: ok"; exits 1
 * on any error or mismatch.
 *
 * URI defaults to $RMQS_TEST_URI, then rabbitmq-stream://guest:guest@localhost:5552/%2f.
 */
#define _POSIX_C_SOURCE 200809L
#include <rmqstream.h>

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int failures = 0;

static int fail(const char *what, rmqs_status st, rmqs_error *err) {
    fprintf(stderr, "messages: %s: %s (%s)%s%s\n", what, rmqs_status_str(st),
            rmqs_status_name(st), err ? ": " : "", err ? rmqs_error_message(err) : "");
    rmqs_error_free(err);
    return 1;
}

/* ---- values ----------------------------------------------------------------------------- */

static rmqs_value val(int32_t kind) {
    rmqs_value v;
    memset(&v, 0, sizeof v);
    v.kind = kind;
    return v;
}
static rmqs_value v_bool(bool b) {
    rmqs_value v = val(RMQS_VALUE_BOOL);
    v.bool_value = b;
    return v;
}
static rmqs_value v_uint(int32_t kind, uint64_t x) {
    rmqs_value v = val(kind);
    v.uint_value = x;
    return v;
}
static rmqs_value v_int(int32_t kind, int64_t x) {
    rmqs_value v = val(kind);
    v.int_value = x;
    return v;
}
static rmqs_value v_float(int32_t kind, double x) {
    rmqs_value v = val(kind);
    v.float_value = x;
    return v;
}
static rmqs_value v_bytes(int32_t kind, const void *data, size_t len) {
    rmqs_value v = val(kind);
    v.data = data;
    v.len = len;
    return v;
}
static rmqs_value v_str(int32_t kind, const char *s) { return v_bytes(kind, s, strlen(s)); }
static rmqs_value v_uuid(const uint8_t u[16]) {
    rmqs_value v = val(RMQS_VALUE_UUID);
    memcpy(v.uuid, u, 16);
    return v;
}

static const char *kind_name(int32_t k) {
    static const char *const names[] = {
        "null",   "bool",      "ubyte",  "ushort",     "uint",       "ulong",     "byte",
        "short",  "int",       "long",   "float",      "double",     "timestamp", "uuid",
        "string", "symbol",    "binary", "char",       "decimal32",  "decimal64", "decimal128",
        "list",   "map",       "array",  "described"};
    return k >= 0 && k < (int32_t)(sizeof names / sizeof names[0]) ? names[k] : "?";
}

/* Prints a value as "type:value"; lists and maps recursively. */
static void print_value(const rmqs_value *v) {
    printf("%s:", kind_name(v->kind));
    switch (v->kind) {
    case RMQS_VALUE_NULL: printf("null"); break;
    case RMQS_VALUE_BOOL: printf("%s", v->bool_value ? "true" : "false"); break;
    case RMQS_VALUE_UBYTE: case RMQS_VALUE_USHORT: case RMQS_VALUE_UINT: case RMQS_VALUE_ULONG:
        printf("%" PRIu64, v->uint_value);
        break;
    case RMQS_VALUE_CHAR: printf("U+%04" PRIX64, v->uint_value); break;
    case RMQS_VALUE_BYTE: case RMQS_VALUE_SHORT: case RMQS_VALUE_INT: case RMQS_VALUE_LONG:
    case RMQS_VALUE_TIMESTAMP:
        printf("%" PRId64, v->int_value);
        break;
    case RMQS_VALUE_FLOAT: case RMQS_VALUE_DOUBLE: printf("%g", v->float_value); break;
    case RMQS_VALUE_UUID:
        for (int i = 0; i < 16; i++) printf("%02x%s", v->uuid[i], i == 3 || i == 5 || i == 7 || i == 9 ? "-" : "");
        break;
    case RMQS_VALUE_STRING: case RMQS_VALUE_SYMBOL:
        printf("\"%.*s\"", (int)v->len, (const char *)v->data);
        break;
    case RMQS_VALUE_LIST: case RMQS_VALUE_ARRAY: case RMQS_VALUE_DESCRIBED: {
        size_t n = rmqs_value_count(v);
        printf("[");
        for (size_t i = 0; i < n; i++) {
            rmqs_value item;
            if (rmqs_value_list_get(v, i, &item)) {
                fputs(i ? ", " : "", stdout);
                print_value(&item);
            }
        }
        printf("]");
        break;
    }
    case RMQS_VALUE_MAP: {
        size_t n = rmqs_value_count(v);
        printf("{");
        for (size_t i = 0; i < n; i++) {
            rmqs_value k, x;
            if (rmqs_value_map_entry(v, i, &k, &x)) {
                fputs(i ? ", " : "", stdout);
                print_value(&k);
                printf(" => ");
                print_value(&x);
            }
        }
        printf("}");
        break;
    }
    default: /* binary, decimals: hex */
        for (size_t i = 0; i < v->len && i < 32; i++) printf("%02x", v->data[i]);
        if (v->len > 32) printf("... (%zu bytes)", v->len);
    }
}

/* Same kind and same value (floats by bits, so NaN equals itself). */
static bool same(const rmqs_value *a, const rmqs_value *b) {
    if (a->kind != b->kind) return false;
    switch (a->kind) {
    case RMQS_VALUE_NULL: return true;
    case RMQS_VALUE_BOOL: return a->bool_value == b->bool_value;
    case RMQS_VALUE_FLOAT: case RMQS_VALUE_DOUBLE:
        return memcmp(&a->float_value, &b->float_value, sizeof(double)) == 0;
    case RMQS_VALUE_UUID: return memcmp(a->uuid, b->uuid, 16) == 0;
    case RMQS_VALUE_STRING: case RMQS_VALUE_SYMBOL: case RMQS_VALUE_BINARY:
        return a->len == b->len && (a->len == 0 || memcmp(a->data, b->data, a->len) == 0);
    default: return a->uint_value == b->uint_value && a->int_value == b->int_value;
    }
}

static void expect(const char *what, bool found, const rmqs_value *got, const rmqs_value *want) {
    printf("  %-28s ", what);
    if (!found) {
        printf("MISSING\n");
        failures++;
        return;
    }
    print_value(got);
    if (!same(got, want)) {
        printf("   MISMATCH, sent ");
        print_value(want);
        failures++;
    }
    printf("\n");
}

/* ---- the message ------------------------------------------------------------------------ */

typedef struct {
    const char *name;
    rmqs_value value;
} entry;

static const uint8_t CORRELATION[16] = {0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0,
                                        0x0f, 0xed, 0xcb, 0xa9, 0x87, 0x65, 0x43, 0x21};
static const uint8_t UUID_VALUE[16] = {0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0,
                                       1,    2,    3,    4,    5, 6, 7, 8};
static const uint8_t BINARY[3] = {0x00, 0x80, 0xff};
static const char BODY1[] = "first data section";
static const char BODY2[] = "second data section";

#define N_HEADER 5
#define N_PROPS 13
#define N_APP 17

static entry header[N_HEADER], props[N_PROPS], app[N_APP], annotations[3];

static void init_values(void) {
    entry h[N_HEADER] = {
        {"durable", v_bool(true)},
        {"priority", v_uint(RMQS_VALUE_UBYTE, 9)},
        {"ttl", v_uint(RMQS_VALUE_UINT, 60000)},
        {"first-acquirer", v_bool(false)},
        {"delivery-count", v_uint(RMQS_VALUE_UINT, 2)},
    };
    entry p[N_PROPS] = {
        {"message-id", v_uint(RMQS_VALUE_ULONG, UINT64_MAX)},
        {"user-id", v_bytes(RMQS_VALUE_BINARY, "guest", 5)},
        {"to", v_str(RMQS_VALUE_STRING, "/queues/orders")},
        {"subject", v_str(RMQS_VALUE_STRING, "order created \xe2\x9c\x93")},
        {"reply-to", v_str(RMQS_VALUE_STRING, "/queues/replies")},
        {"correlation-id", v_uuid(CORRELATION)},
        {"content-type", v_str(RMQS_VALUE_SYMBOL, "application/json")},
        {"content-encoding", v_str(RMQS_VALUE_SYMBOL, "identity")},
        {"absolute-expiry-time", v_int(RMQS_VALUE_TIMESTAMP, 1800000000000)},
        {"creation-time", v_int(RMQS_VALUE_TIMESTAMP, -1000)},
        {"group-id", v_str(RMQS_VALUE_STRING, "orders")},
        {"group-sequence", v_uint(RMQS_VALUE_UINT, 42)},
        {"reply-to-group-id", v_str(RMQS_VALUE_STRING, "replies")},
    };
    entry a[N_APP] = {
        {"null", val(RMQS_VALUE_NULL)},
        {"bool", v_bool(true)},
        {"ubyte", v_uint(RMQS_VALUE_UBYTE, 255)},
        {"ushort", v_uint(RMQS_VALUE_USHORT, 65535)},
        {"uint", v_uint(RMQS_VALUE_UINT, 4294967295u)},
        {"ulong", v_uint(RMQS_VALUE_ULONG, UINT64_MAX)},
        {"byte", v_int(RMQS_VALUE_BYTE, -128)},
        {"short", v_int(RMQS_VALUE_SHORT, -32768)},
        {"int", v_int(RMQS_VALUE_INT, INT32_MIN)},
        {"long", v_int(RMQS_VALUE_LONG, INT64_MIN)},
        {"float", v_float(RMQS_VALUE_FLOAT, 1.5)},
        {"double", v_float(RMQS_VALUE_DOUBLE, -INFINITY)},
        {"timestamp", v_int(RMQS_VALUE_TIMESTAMP, 1700000000123)},
        {"uuid", v_uuid(UUID_VALUE)},
        {"string", v_str(RMQS_VALUE_STRING, "h\xc3\xa9llo")},
        {"symbol", v_str(RMQS_VALUE_SYMBOL, "a-symbol")},
        {"binary", v_bytes(RMQS_VALUE_BINARY, BINARY, sizeof BINARY)},
    };
    entry n[3] = {
        {"x-opt-region", v_str(RMQS_VALUE_STRING, "eu")},
        {"x-opt-delivery", v_int(RMQS_VALUE_LONG, 1)},
        {"x-opt-checksum", v_uint(RMQS_VALUE_UINT, 0xdeadbeef)},
    };
    memcpy(header, h, sizeof h);
    memcpy(props, p, sizeof p);
    memcpy(app, a, sizeof a);
    memcpy(annotations, n, sizeof n);
}

/* Message annotation, delivery annotation, footer. */
static const int32_t ANNOTATION_SECTIONS[3] = {RMQS_SECTION_MESSAGE_ANNOTATIONS,
                                               RMQS_SECTION_DELIVERY_ANNOTATIONS,
                                               RMQS_SECTION_FOOTER};

static rmqs_status build(rmqs_message_builder *m, rmqs_error **err) {
    rmqs_status st;
    for (int i = 0; i < N_HEADER; i++)
        if ((st = rmqs_message_builder_set_header(m, i + 1, &header[i].value, err))) return st;
    for (int i = 0; i < N_PROPS; i++)
        if ((st = rmqs_message_builder_set_property(m, i + 1, &props[i].value, err))) return st;
    for (int i = 0; i < N_APP; i++)
        if ((st = rmqs_message_builder_add_app_property(m, app[i].name, &app[i].value, err)))
            return st;
    for (int i = 0; i < 3; i++)
        if ((st = rmqs_message_builder_add_annotation(m, ANNOTATION_SECTIONS[i],
                                                      annotations[i].name,
                                                      &annotations[i].value, err)))
            return st;
    if ((st = rmqs_message_builder_set_body(m, (const uint8_t *)BODY1, strlen(BODY1), err)))
        return st;
    return rmqs_message_builder_add_body_section(m, (const uint8_t *)BODY2, strlen(BODY2), err);
}

/* ---- reading ---------------------------------------------------------------------------- */

static void check_first(const rmqs_message *msg) {
    rmqs_value v, section;
    printf("message at offset %" PRIu64 ":\n header\n", rmqs_message_offset(msg));
    for (int i = 0; i < N_HEADER; i++)
        expect(header[i].name, rmqs_message_header_value(msg, i + 1, &v), &v, &header[i].value);
    printf(" properties\n");
    for (int i = 0; i < N_PROPS; i++)
        expect(props[i].name, rmqs_message_property_value(msg, i + 1, &v), &v,
               &props[i].value);
    printf(" application properties\n");
    if (!rmqs_message_section(msg, RMQS_SECTION_APPLICATION_PROPERTIES, &section) ||
        rmqs_value_count(&section) != N_APP) {
        printf("  wrong count\n");
        failures++;
    }
    for (int i = 0; i < N_APP; i++)
        expect(app[i].name, rmqs_message_app_property_value(msg, app[i].name, &v), &v,
               &app[i].value);
    static const char *const names[3] = {" message annotations", " delivery annotations",
                                         " footer"};
    for (int s = 0; s < 3; s++) {
        printf("%s\n", names[s]);
        bool found = rmqs_message_section(msg, ANNOTATION_SECTIONS[s], &section) &&
                     rmqs_value_map_get(&section, annotations[s].name, &v);
        expect(annotations[s].name, found, &v, &annotations[s].value);
    }
    printf(" body: %zu data sections\n", rmqs_message_body_count(msg));
    if (rmqs_message_body_type(msg) != RMQS_BODY_DATA || rmqs_message_body_count(msg) != 2) {
        printf("  wrong body type or count\n");
        failures++;
    }
    rmqs_value b1 = v_bytes(RMQS_VALUE_BINARY, BODY1, strlen(BODY1));
    rmqs_value b2 = v_bytes(RMQS_VALUE_BINARY, BODY2, strlen(BODY2));
    expect("section 0", rmqs_message_body_section(msg, 0, &v), &v, &b1);
    expect("section 1", rmqs_message_body_section(msg, 1, &v), &v, &b2);
    printf(" the whole header section: ");
    if (rmqs_message_section(msg, RMQS_SECTION_HEADER, &section)) print_value(&section);
    printf("\n");
}

static void check_second(const rmqs_message *msg, const char *text) {
    rmqs_value v, want = v_str(RMQS_VALUE_STRING, text);
    printf("message at offset %" PRIu64 " (the builder reset and reused):\n",
           rmqs_message_offset(msg));
    if (rmqs_message_body_type(msg) != RMQS_BODY_VALUE ||
        rmqs_message_section(msg, RMQS_SECTION_HEADER, &v) ||
        rmqs_message_section(msg, RMQS_SECTION_APPLICATION_PROPERTIES, &v)) {
        printf("  wrong body type, or sections left from the first message\n");
        failures++;
    }
    expect("amqp-value body", rmqs_message_body_section(msg, 0, &v), &v, &want);
}

int main(int argc, char **argv) {
    const char *uri = argc > 1 ? argv[1] : getenv("RMQS_TEST_URI");
    if (!uri) uri = "rabbitmq-stream://guest:guest@localhost:5552/%2f";
    char stream[64];
    snprintf(stream, sizeof stream, "messages-example-%ld", (long)time(NULL));
    const char *second_text = "a second message, amqp-value body";
    init_values();

    rmqs_error *err = NULL;
    rmqs_connection *conn = NULL;
    rmqs_status st = rmqs_connection_open_uri(uri, &conn, &err);
    if (st) return fail("open", st, err);
    if ((st = rmqs_stream_create(conn, stream, NULL, &err))) return fail("create", st, err);

    rmqs_producer *p = NULL;
    if ((st = rmqs_producer_new(conn, stream, NULL, NULL, NULL, NULL, NULL, 0, &p, &err)))
        return fail("producer", st, err);
    rmqs_message_builder *m = rmqs_message_builder_new();
    uint64_t id = 0;
    if ((st = build(m, &err))) return fail("build", st, err);
    if ((st = rmqs_producer_send_message(p, m, 1, 0, &id, &err))) return fail("send", st, err);
    printf("sent message with every section as publishing id %" PRIu64 "\n", id);
    rmqs_message_builder_reset(m);
    rmqs_value text = v_str(RMQS_VALUE_STRING, second_text);
    if ((st = rmqs_message_builder_set_body_value(m, &text, &err)))
        return fail("body value", st, err);
    if ((st = rmqs_producer_send_message(p, m, 2, 0, NULL, &err))) return fail("send", st, err);
    rmqs_message_builder_free(m);
    if ((st = rmqs_producer_flush(p, 10000, NULL))) return fail("flush", st, NULL);
    rmqs_producer_free(p);

    rmqs_queue *q = NULL;
    rmqs_config *cfg = rmqs_config_new();
    rmqs_consumer *c = NULL;
    if ((st = rmqs_queue_new(&q, NULL))) return fail("queue", st, NULL);
    if ((st = rmqs_config_set(cfg, "offset", "first", &err))) return fail("config", st, err);
    if ((st = rmqs_consumer_new(conn, stream, cfg, NULL, NULL, NULL, q, 0, &c, &err)))
        return fail("consumer", st, err);
    rmqs_config_free(cfg);
    size_t seen = 0;
    time_t deadline = time(NULL) + 30;
    while (seen < 2 && time(NULL) < deadline) {
        rmqs_event *ev = NULL;
        if (rmqs_queue_poll(q, 500, &ev, NULL) != RMQS_OK || !ev) continue;
        const rmqs_chunk *ch = rmqs_event_chunk(ev);
        for (size_t i = 0; ch && i < rmqs_chunk_message_count(ch); i++, seen++) {
            if (seen == 0) check_first(rmqs_chunk_message(ch, i));
            else check_second(rmqs_chunk_message(ch, i), second_text);
        }
        rmqs_event_free(ev);
    }
    rmqs_consumer_free(c);
    rmqs_queue_free(q);
    if (seen != 2) {
        fprintf(stderr, "messages: received %zu of 2 messages\n", seen);
        failures++;
    }
    if ((st = rmqs_stream_delete(conn, stream, &err))) return fail("delete", st, err);
    rmqs_connection_free(conn);
    if (failures) {
        fprintf(stderr, "messages: %d mismatches\n", failures);
        return 1;
    }
    printf("messages: ok\n");
    return 0;
}
