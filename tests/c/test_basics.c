/*
 * Connection-free parts of the C API through include/rmqstream.h: version, status codes,
 * rmqs_error, hash routing, the message builder, rmqs_value accessors and rmqs_config_dump. Compiled as C11 and (via test_basics_cxx.cpp) as C++17, both with
 * -Wall -Wextra -Werror -pedantic. Prints "test_basics: N passed, M failed"; exit status 1 on
 * any failure.
 */
#include "common.h"

#ifdef __cplusplus
#define STATIC_ASSERT(cond, msg) static_assert(cond, msg)
#else
#define STATIC_ASSERT(cond, msg) _Static_assert(cond, msg)
#endif

/* compile-time checks of the header itself */
STATIC_ASSERT(RMQS_VERSION_NUMBER == ((RMQS_VERSION_MAJOR << 24) | (RMQS_VERSION_MINOR << 16) |
                                      (RMQS_VERSION_PATCH << 8)),
              "RMQS_VERSION_NUMBER encodes MAJOR.MINOR.PATCH");
STATIC_ASSERT(sizeof(rmqs_status) == 4, "rmqs_status is int32_t");
STATIC_ASSERT(RMQS_OK == 0, "RMQS_OK is 0");
STATIC_ASSERT(RMQS_ERR_STREAM_DOES_NOT_EXIST == 2, "broker codes are positive");
STATIC_ASSERT(RMQS_ERR_SASL_CANNOT_CHANGE_USERNAME == 0x15, "broker codes end at 0x15");
STATIC_ASSERT(RMQS_ERR_INVALID_ARGUMENT < 0 && RMQS_ERR_FATAL < 0, "local codes are negative");
#if RMQS_VERSION_NUMBER < 0x00010000
#error "RMQS_VERSION_NUMBER must be usable in #if"
#endif

static void test_version(void) {
    char want[64];
    snprintf(want, sizeof want, "%d.%d.%d", RMQS_VERSION_MAJOR, RMQS_VERSION_MINOR,
             RMQS_VERSION_PATCH);
    CHECK_STR(rmqs_version(), want);
    CHECK(rmqs_version_number() == (uint32_t)RMQS_VERSION_NUMBER);
    CHECK((rmqs_version_number() & 0xffu) == 0);
}

static const rmqs_status all_statuses[] = {
    RMQS_OK,
    RMQS_ERR_STREAM_DOES_NOT_EXIST,
    RMQS_ERR_SUBSCRIPTION_ID_ALREADY_EXISTS,
    RMQS_ERR_SUBSCRIPTION_ID_DOES_NOT_EXIST,
    RMQS_ERR_STREAM_ALREADY_EXISTS,
    RMQS_ERR_STREAM_NOT_AVAILABLE,
    RMQS_ERR_SASL_MECHANISM_NOT_SUPPORTED,
    RMQS_ERR_AUTHENTICATION_FAILURE,
    RMQS_ERR_SASL_ERROR,
    RMQS_ERR_SASL_CHALLENGE,
    RMQS_ERR_SASL_AUTHENTICATION_FAILURE_LOOPBACK,
    RMQS_ERR_VIRTUAL_HOST_ACCESS_FAILURE,
    RMQS_ERR_UNKNOWN_FRAME,
    RMQS_ERR_FRAME_TOO_LARGE,
    RMQS_ERR_INTERNAL_ERROR,
    RMQS_ERR_ACCESS_REFUSED,
    RMQS_ERR_PRECONDITION_FAILED,
    RMQS_ERR_PUBLISHER_DOES_NOT_EXIST,
    RMQS_ERR_NO_OFFSET,
    RMQS_ERR_SASL_CANNOT_CHANGE_MECHANISM,
    RMQS_ERR_SASL_CANNOT_CHANGE_USERNAME,
    RMQS_ERR_INVALID_ARGUMENT,
    RMQS_ERR_TIMEOUT,
    RMQS_ERR_CLOSED,
    RMQS_ERR_UNSUPPORTED,
    RMQS_ERR_QUEUE_FULL,
    RMQS_ERR_TLS,
    RMQS_ERR_IO,
    RMQS_ERR_PROTOCOL,
    RMQS_ERR_WOULD_DEADLOCK,
    RMQS_ERR_PANIC,
    RMQS_ERR_FATAL,
    RMQS_ERR_NOT_CONFIRMED,
};
#define N_STATUSES (sizeof all_statuses / sizeof all_statuses[0])

static void test_statuses(void) {
    size_t i, j;
    int named = 0;
    for (i = 0; i < N_STATUSES; i++) {
        const char *name = rmqs_status_name(all_statuses[i]);
        const char *str = rmqs_status_str(all_statuses[i]);
        if (name != NULL && str != NULL && strncmp(name, "RMQS_", 5) == 0 &&
            strcmp(name, "RMQS_UNKNOWN") != 0 && str[0] != '\0' &&
            strcmp(str, "unknown status") != 0) {
            named++;
        } else {
            fprintf(stderr, "status %d: name %s, str %s\n", (int)all_statuses[i],
                    name ? name : "(null)", str ? str : "(null)");
        }
    }
    CHECK(named == (int)N_STATUSES);

    CHECK_STR(rmqs_status_name(RMQS_OK), "RMQS_OK");
    CHECK_STR(rmqs_status_name(RMQS_ERR_TIMEOUT), "RMQS_ERR_TIMEOUT");
    CHECK_STR(rmqs_status_name(RMQS_ERR_NO_OFFSET), "RMQS_ERR_NO_OFFSET");
    CHECK_STR(rmqs_status_name(RMQS_ERR_SASL_CANNOT_CHANGE_USERNAME),
              "RMQS_ERR_SASL_CANNOT_CHANGE_USERNAME");
    CHECK_STR(rmqs_status_str(RMQS_OK), "success");
    CHECK_STR(rmqs_status_str(RMQS_ERR_TIMEOUT), "timed out");
    CHECK_STR(rmqs_status_str(RMQS_ERR_INVALID_ARGUMENT), "invalid argument");

    /* 1 (OK on the wire) is never returned; it and other unknown values have fixed strings */
    CHECK_STR(rmqs_status_str(1), "unknown status");
    CHECK_STR(rmqs_status_str(22), "unknown status");
    CHECK_STR(rmqs_status_str(-13), "unknown status");
    CHECK_STR(rmqs_status_str(INT32_MIN), "unknown status");
    CHECK_STR(rmqs_status_name(INT32_MAX), "RMQS_UNKNOWN");

    /* the table lists exactly the statuses above, consistent with the lookup functions */
    {
        const rmqs_status_desc *descs = NULL;
        size_t n = 0;
        int consistent = 1;
        rmqs_status_descs(&descs, &n);
        CHECK(descs != NULL);
        CHECK(n == N_STATUSES);
        for (i = 0; descs != NULL && i < n; i++) {
            int found = 0;
            for (j = 0; j < N_STATUSES; j++) {
                found |= all_statuses[j] == descs[i].status;
            }
            if (!found || strcmp(descs[i].name, rmqs_status_name(descs[i].status)) != 0 ||
                strcmp(descs[i].description, rmqs_status_str(descs[i].status)) != 0) {
                consistent = 0;
                fprintf(stderr, "table entry %d (%s) inconsistent\n", (int)descs[i].status,
                        descs[i].name);
            }
        }
        CHECK(consistent);
        rmqs_status_descs(NULL, NULL); /* NULL outputs are allowed */
    }
}

static void test_error(void) {
    rmqs_error_free(NULL); /* NULL-safe */
    CHECK(rmqs_error_status(NULL) == RMQS_OK);
    CHECK_STR(rmqs_error_message(NULL), "");
}

struct route {
    const char *key;
    uint32_t count;
    uint32_t index;
};

/* MurmurHash3 x86_32, seed 104729, unsigned modulo. Sources: the official clients' shared test
 * table (Java HashRoutingStrategyTest, Go super_stream_test.go, .NET SuperStreamProducerTests:
 * partitions invoices-01..03), and hashes from Java HashUtilsTest ("hello" 1321743225, "brave"
 * 3825276426, "new" 2970740106, "world" 2453398188) taken modulo 1000; "" hashes to 3329588566
 * (above INT32_MAX, so only an unsigned modulo gives 3 for 7 partitions). */
static const struct route routes[] = {
    {"hello1", 3, 1},  {"hello2", 3, 0},    {"hello3", 3, 1},   {"hello4", 3, 2},
    {"hello5", 3, 0},  {"hello6", 3, 2},    {"hello7", 3, 0},   {"hello8", 3, 1},
    {"hello9", 3, 0},  {"hello10", 3, 2},   {"hello88", 3, 1},  {"hello", 1000, 225},
    {"brave", 1000, 426}, {"new", 1000, 106}, {"world", 1000, 188}, {"", 7, 3},
    {"", 1000, 566},   {"\xc3\xa4\xe2\x82\xac\xf0\x9f\x98\x80", 1000, 405}, /* "ä€😀" UTF-8 */
    {"anything", 1, 0},
};

static void test_partition(void) {
    size_t i;
    for (i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        uint32_t out = UINT32_MAX;
        rmqs_status st = rmqs_super_stream_partition((const uint8_t *)routes[i].key,
                                                     strlen(routes[i].key), routes[i].count, &out, NULL);
        if (st == RMQS_OK && out == routes[i].index) {
            passed++;
        } else {
            failed++;
            fprintf(stderr, "partition(\"%s\", %u): status %s, index %u, expected %u\n",
                    routes[i].key, (unsigned)routes[i].count, rmqs_status_name(st), (unsigned)out,
                    (unsigned)routes[i].index);
        }
    }

    /* NULL key with length 0 is the empty key */
    {
        uint32_t out = UINT32_MAX;
        CHECK(rmqs_super_stream_partition(NULL, 0, 7, &out, NULL) == RMQS_OK);
        CHECK(out == 3);
    }

    /* invalid arguments: RMQS_ERR_INVALID_ARGUMENT and the output left alone */
    {
        const uint8_t key[] = {'k'};
        uint32_t out = 4242;
        CHECK(rmqs_super_stream_partition(NULL, 1, 3, &out, NULL) == RMQS_ERR_INVALID_ARGUMENT);
        CHECK(rmqs_super_stream_partition(key, 1, 0, &out, NULL) == RMQS_ERR_INVALID_ARGUMENT);
        CHECK(rmqs_super_stream_partition(key, 1, 3, NULL, NULL) == RMQS_ERR_INVALID_ARGUMENT);
        CHECK(out == 4242);
    }

    /* every index is in range for many keys and counts */
    {
        uint32_t n;
        int in_range = 1;
        char key[32];
        for (n = 1; n <= 64; n++) {
            int k;
            for (k = 0; k < 64; k++) {
                uint32_t out = UINT32_MAX;
                int len = snprintf(key, sizeof key, "key-%d", k);
                if (rmqs_super_stream_partition((const uint8_t *)key, (size_t)len, n, &out, NULL) !=
                        RMQS_OK ||
                    out >= n) {
                    in_range = 0;
                }
            }
        }
        CHECK(in_range);
    }
}

static rmqs_value value_of(int32_t kind) {
    rmqs_value v;
    memset(&v, 0, sizeof v);
    v.kind = kind;
    return v;
}

static void test_message_builder(void) {
    rmqs_message_builder *m = rmqs_message_builder_new();
    rmqs_error *err = NULL;
    rmqs_value v = value_of(RMQS_VALUE_UBYTE), out;
    CHECK(m != NULL);

    /* header: typed, range-checked */
    v.uint_value = 9;
    CHECK(rmqs_message_builder_set_header(m, RMQS_HEADER_PRIORITY, &v, NULL) == RMQS_OK);
    memset(&out, 0, sizeof out);
    CHECK(rmqs_message_builder_header(m, RMQS_HEADER_PRIORITY, &out));
    CHECK(out.kind == RMQS_VALUE_UBYTE && out.uint_value == 9);
    v = value_of(RMQS_VALUE_UINT);
    v.uint_value = 300;
    CHECK(rmqs_message_builder_set_header(m, RMQS_HEADER_PRIORITY, &v, &err) ==
          RMQS_ERR_INVALID_ARGUMENT);
    CHECK(err != NULL && rmqs_error_status(err) == RMQS_ERR_INVALID_ARGUMENT);
    rmqs_error_free(err);
    err = NULL;
    CHECK(rmqs_message_builder_set_header(m, 0, &v, NULL) == RMQS_ERR_INVALID_ARGUMENT);
    CHECK(!rmqs_message_builder_header(m, RMQS_HEADER_TTL, &out));

    /* properties: a string content-type is written as a symbol */
    v = value_of(RMQS_VALUE_STRING);
    v.data = (const uint8_t *)"text/plain";
    v.len = 10;
    CHECK(rmqs_message_builder_set_property(m, RMQS_PROP_CONTENT_TYPE, &v, NULL) == RMQS_OK);
    CHECK(rmqs_message_builder_property(m, RMQS_PROP_CONTENT_TYPE, &out));
    CHECK(out.kind == RMQS_VALUE_SYMBOL && out.len == 10 && memcmp(out.data, "text/plain", 10) == 0);
    v = value_of(RMQS_VALUE_LONG);
    CHECK(rmqs_message_builder_set_property(m, RMQS_PROP_MESSAGE_ID, &v, NULL) ==
          RMQS_ERR_INVALID_ARGUMENT);

    /* application properties: simple values, distinct keys */
    v.int_value = -5;
    CHECK(rmqs_message_builder_add_app_property(m, "n", &v, NULL) == RMQS_OK);
    CHECK(rmqs_message_builder_add_app_property(m, "n", &v, NULL) == RMQS_ERR_INVALID_ARGUMENT);
    CHECK(rmqs_message_builder_app_property(m, "n", &out));
    CHECK(out.kind == RMQS_VALUE_LONG && out.int_value == -5);
    CHECK(!rmqs_message_builder_app_property(m, "missing", &out));
    {
        static const uint8_t list0[] = {0x45};
        rmqs_value l = value_of(RMQS_VALUE_LIST);
        l.data = list0;
        l.len = sizeof list0;
        CHECK(rmqs_message_builder_add_app_property(m, "l", &l, NULL) ==
              RMQS_ERR_INVALID_ARGUMENT);
        CHECK(rmqs_message_builder_add_annotation(m, RMQS_SECTION_MESSAGE_ANNOTATIONS, "x-l", &l,
                                                  NULL) == RMQS_OK);
        CHECK(rmqs_message_builder_add_annotation(m, RMQS_SECTION_HEADER, "x", &l, NULL) ==
              RMQS_ERR_INVALID_ARGUMENT);
    }
    v = value_of(99);
    CHECK(rmqs_message_builder_add_app_property(m, "bad", &v, NULL) == RMQS_ERR_INVALID_ARGUMENT);

    /* body: data sections, or an amqp-value */
    CHECK(rmqs_message_builder_set_body(m, (const uint8_t *)"hi", 2, NULL) == RMQS_OK);
    CHECK(rmqs_message_builder_add_body_section(m, NULL, 0, NULL) == RMQS_OK);
    CHECK(rmqs_message_builder_add_body_section(m, NULL, 1, NULL) == RMQS_ERR_INVALID_ARGUMENT);
    v = value_of(RMQS_VALUE_STRING);
    CHECK(rmqs_message_builder_set_body_value(m, &v, NULL) == RMQS_OK);
    CHECK(rmqs_message_builder_add_body_section(m, (const uint8_t *)"x", 1, NULL) ==
          RMQS_ERR_INVALID_ARGUMENT);

    /* filter value and publishing id */
    CHECK(rmqs_message_builder_set_filter_value(m, "eu", NULL) == RMQS_OK);
    CHECK(rmqs_message_builder_set_filter_value(m, NULL, NULL) == RMQS_OK);
    CHECK(rmqs_message_builder_set_publishing_id(m, 7, NULL) == RMQS_OK);
    CHECK(rmqs_message_builder_set_publishing_id(m, UINT64_MAX, NULL) ==
          RMQS_ERR_INVALID_ARGUMENT);

    /* reset forgets everything */
    rmqs_message_builder_reset(m);
    CHECK(!rmqs_message_builder_app_property(m, "n", &out));
    CHECK(!rmqs_message_builder_header(m, RMQS_HEADER_PRIORITY, &out));
    rmqs_message_builder_free(m);

    /* NULL handles */
    CHECK(rmqs_message_builder_set_body(NULL, NULL, 0, NULL) == RMQS_ERR_INVALID_ARGUMENT);
    CHECK(!rmqs_message_builder_property(NULL, RMQS_PROP_TO, &out));
    rmqs_message_builder_reset(NULL);
    rmqs_message_builder_free(NULL);
}

static void test_values(void) {
    /* list8, size 4, count 2: ubyte 7, true */
    static const uint8_t list[] = {0xc0, 0x04, 0x02, 0x50, 0x07, 0x41};
    /* map8, size 5, count 2: "k" => true */
    static const uint8_t map[] = {0xc1, 0x05, 0x02, 0xa1, 0x01, 'k', 0x41};
    static const uint8_t broken[] = {0xc0, 0x09, 0x02, 0x50};
    rmqs_value l = value_of(RMQS_VALUE_LIST), m = value_of(RMQS_VALUE_MAP), out, key;
    l.data = list;
    l.len = sizeof list;
    m.data = map;
    m.len = sizeof map;
    CHECK(rmqs_value_count(&l) == 2);
    CHECK(rmqs_value_list_get(&l, 0, &out) && out.kind == RMQS_VALUE_UBYTE && out.uint_value == 7);
    CHECK(rmqs_value_list_get(&l, 1, &out) && out.kind == RMQS_VALUE_BOOL && out.bool_value);
    CHECK(!rmqs_value_list_get(&l, 2, &out));
    CHECK(rmqs_value_count(&m) == 1);
    CHECK(rmqs_value_map_get(&m, "k", &out) && out.kind == RMQS_VALUE_BOOL && out.bool_value);
    CHECK(!rmqs_value_map_get(&m, "other", &out));
    CHECK(rmqs_value_map_entry(&m, 0, &key, &out));
    CHECK(key.kind == RMQS_VALUE_STRING && key.len == 1 && key.data[0] == 'k');
    CHECK(!rmqs_value_map_entry(&m, 1, &key, &out));
    CHECK(!rmqs_value_map_get(&l, "k", &out)); /* not a map */
    l.data = broken;
    l.len = sizeof broken;
    CHECK(rmqs_value_count(&l) == 0);
    CHECK(!rmqs_value_list_get(&l, 0, &out));
    CHECK(rmqs_value_count(NULL) == 0);
}

/* the line of `key` in a dump, or NULL */
static const char *dump_line(const rmqs_strings *list, const char *key) {
    size_t len = strlen(key);
    for (size_t i = 0; i < rmqs_strings_count(list); i++) {
        const char *l = rmqs_strings_get(list, i);
        if (strncmp(l, key, len) == 0 && l[len] == '=')
            return l;
    }
    return NULL;
}

static void test_config_dump(void) {
    rmqs_config *cfg = rmqs_config_new();
    rmqs_strings *list = NULL;
    rmqs_error *err = NULL;
    rmqs_offset_spec at = {RMQS_OFFSET_OFFSET, 42};
    CHECK(rmqs_config_set(cfg, "uri", "rabbitmq-stream://app:s3cret@h1/prod", NULL) == RMQS_OK);
    CHECK(rmqs_config_set(cfg, "password", "hunter2", NULL) == RMQS_OK);
    CHECK(rmqs_config_set(cfg, "max-in-flight", "500", NULL) == RMQS_OK);
    CHECK(rmqs_config_set(cfg, "consumer.initial_credit", "4", NULL) == RMQS_OK);
    CHECK(rmqs_config_set_offset(cfg, at, NULL) == RMQS_OK);
    CHECK(rmqs_config_dump(cfg, &list, &err) == RMQS_OK && err == NULL);
    CHECK(rmqs_strings_count(list) > 50);
    CHECK_STR(rmqs_strings_get(list, 0), "uri=rabbitmq-stream://app:***@h1/prod");
    CHECK_STR(dump_line(list, "password"), "password=***");
    CHECK_STR(dump_line(list, "max_in_flight"), "max_in_flight=500");
    CHECK_STR(dump_line(list, "batch_size"), "batch_size=100");
    CHECK_STR(dump_line(list, "offset"), "offset=offset:42");
    CHECK_STR(dump_line(list, "tls_ca_file"), "tls_ca_file=");
    CHECK_STR(rmqs_strings_get(list, rmqs_strings_count(list) - 1), "consumer.initial_credit=4");
    for (size_t i = 0; i < rmqs_strings_count(list); i++) {
        CHECK(strstr(rmqs_strings_get(list, i), "s3cret") == NULL);
        CHECK(strstr(rmqs_strings_get(list, i), "hunter2") == NULL);
    }
    rmqs_strings_free(list);
    list = NULL;
    CHECK(rmqs_config_set(cfg, "batch_size", "65536", &err) == RMQS_ERR_INVALID_ARGUMENT);
    CHECK_STR(rmqs_error_message(err),
              "config key \"batch_size\": invalid value \"65536\" (an integer from 1 to 65535)");
    rmqs_error_free(err);
    err = NULL;
    CHECK(rmqs_config_dump(NULL, &list, &err) == RMQS_ERR_INVALID_ARGUMENT && list == NULL);
    rmqs_error_free(err);
    rmqs_config_free(cfg);
}

int main(void) {
    test_version();
    test_statuses();
    test_error();
    test_partition();
    test_message_builder();
    test_values();
    test_config_dump();
    return report("test_basics");
}
