// The C++17 wrapper (include/rmqstream.hpp): RAII (every handle and every handler freed exactly
// once, also on failed creation, after moves and move-assignments), move semantics, exceptions
// with the right status on bad input, the callback exception policy, and produce/consume round
// trips with exact body checks against the broker at RMQS_TEST_URI (default
// rabbitmq-stream://guest:guest@localhost:5552/%2f).
//
// Built with -Wall -Wextra -Werror -pedantic; run by ctest plain, under AddressSanitizer
// (RMQS_SANITIZE=address) and under valgrind. RMQS_TEST_MESSAGES overrides the round-trip size
// (default 2000). Prints "test_cpp: P passed, F failed"; exit status 1 on any failure.
#include "rmqstream.hpp"

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>
#include <unistd.h>

using namespace std::chrono_literals;

namespace {

int passed = 0;
int failed = 0;

#define CHECK(cond)                                                                      \
    do {                                                                                 \
        if (cond) {                                                                      \
            passed++;                                                                    \
        } else {                                                                         \
            failed++;                                                                    \
            std::fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
        }                                                                                \
    } while (0)

// `expr` must throw rmqs::error with status `want`.
#define CHECK_THROWS_STATUS(expr, want)                                                             \
    do {                                                                                            \
        try {                                                                                       \
            (void)(expr);                                                                           \
            failed++;                                                                               \
            std::fprintf(stderr, "%s:%d: no exception from %s\n", __FILE__, __LINE__, #expr);       \
        } catch (const rmqs::error& e_) {                                                           \
            if (e_.status() == (want)) {                                                            \
                passed++;                                                                           \
            } else {                                                                                \
                failed++;                                                                           \
                std::fprintf(stderr, "%s:%d: %s threw %s (%d: %s), wanted %s\n", __FILE__, __LINE__, \
                             #expr, e_.name(), static_cast<int>(e_.status()), e_.what(),            \
                             rmqs_status_name(want));                                               \
            }                                                                                       \
        } catch (const std::exception& e_) {                                                        \
            failed++;                                                                               \
            std::fprintf(stderr, "%s:%d: %s threw a non-rmqs exception: %s\n", __FILE__, __LINE__, \
                         #expr, e_.what());                                                         \
        }                                                                                           \
    } while (0)

// Any exception escaping a test function is a failure (and the rest of that function is skipped).
template <class F>
void run_test(const char* name, F&& f) {
    try {
        f();
    } catch (const rmqs::error& e) {
        failed++;
        std::fprintf(stderr, "%s: unexpected rmqs::error %s (%d): %s\n", name, e.name(),
                     static_cast<int>(e.status()), e.what());
    } catch (const std::exception& e) {
        failed++;
        std::fprintf(stderr, "%s: unexpected exception: %s\n", name, e.what());
    }
}

std::string test_uri() {
    const char* uri = std::getenv("RMQS_TEST_URI");
    return uri != nullptr && *uri != '\0' ? uri : "rabbitmq-stream://guest:guest@localhost:5552/%2f";
}

std::size_t n_messages() {
    const char* n = std::getenv("RMQS_TEST_MESSAGES");
    if (n != nullptr) {
        const unsigned long long v = std::strtoull(n, nullptr, 10);
        if (v > 0) {
            return static_cast<std::size_t>(v);
        }
    }
    return 2000;
}

std::string unique_name(const char* what) {
    static std::atomic<int> counter{0};
    return std::string("test-cpp-") + what + "-" + std::to_string(getpid()) + "-" +
           std::to_string(std::chrono::system_clock::now().time_since_epoch().count() % 1000000000) + "-" +
           std::to_string(counter++);
}

std::string body_of(std::size_t i) {
    static const std::string tail = "0123456789012345678901234567890123456789";
    return "cpp-message-" + std::to_string(i) + "-" + tail.substr(0, i % 40);
}

// Waits until pred() or `limit` passed; returns pred().
template <class P>
bool wait_until(P pred, std::chrono::milliseconds limit = 15s) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!pred()) {
        if (std::chrono::steady_clock::now() > deadline) {
            return pred();
        }
        std::this_thread::sleep_for(2ms);
    }
    return true;
}

// Captured by handlers: counts live instances (moves do not add one, copies do) and how many
// live instances were destroyed. After a handler is freed exactly once: alive 0, destroyed 1.
struct counts {
    std::atomic<int> alive{0};
    std::atomic<int> destroyed{0};
};

class tracker {
public:
    explicit tracker(counts& c) : c_(&c) { c_->alive++; }
    tracker(const tracker& o) : c_(o.c_), live_(o.live_) {
        if (live_) {
            c_->alive++;
        }
    }
    tracker(tracker&& o) noexcept : c_(o.c_), live_(o.live_) { o.live_ = false; }
    tracker& operator=(const tracker&) = delete;
    tracker& operator=(tracker&&) = delete;
    ~tracker() {
        if (live_) {
            c_->alive--;
            c_->destroyed++;
        }
    }

private:
    counts* c_;
    bool live_ = true;
};

// ---- offline --------------------------------------------------------------------------------

template <class T>
constexpr bool move_only_v = !std::is_copy_constructible_v<T> && !std::is_copy_assignable_v<T> &&
                             std::is_nothrow_move_constructible_v<T> && std::is_nothrow_move_assignable_v<T> &&
                             std::is_nothrow_destructible_v<T>;

static_assert(move_only_v<rmqs::Connection>);
static_assert(move_only_v<rmqs::Config>);
static_assert(move_only_v<rmqs::Producer>);
static_assert(move_only_v<rmqs::Consumer>);
static_assert(move_only_v<rmqs::Queue>);
static_assert(move_only_v<rmqs::Event>);
static_assert(move_only_v<rmqs::Chunk>);
static_assert(move_only_v<rmqs::Error>);
static_assert(std::is_trivially_copyable_v<rmqs::ChunkRef>);
static_assert(std::is_trivially_copyable_v<rmqs::Message>);
static_assert(std::is_trivially_copyable_v<rmqs::bytes>);
static_assert(std::is_base_of_v<std::runtime_error, rmqs::error>);
static_assert(std::is_base_of_v<rmqs::error, rmqs::batch_error>);
// a temporary Chunk does not convert to a ChunkRef (it would dangle)
static_assert(std::is_convertible_v<const rmqs::Chunk&, rmqs::ChunkRef>);
static_assert(!std::is_convertible_v<rmqs::Chunk&&, rmqs::ChunkRef>);

void test_version_and_status() {
    CHECK(rmqs::version() == rmqs_version());
    CHECK(rmqs::version_number() == rmqs_version_number());
    CHECK(rmqs::version_compatible());
    CHECK(std::string(rmqs::status_name(RMQS_ERR_TIMEOUT)) == "RMQS_ERR_TIMEOUT");

    const rmqs::error timeout(RMQS_ERR_TIMEOUT);
    CHECK(timeout.status() == RMQS_ERR_TIMEOUT);
    CHECK(std::string(timeout.what()) == rmqs_status_str(RMQS_ERR_TIMEOUT));
    CHECK(std::string(timeout.name()) == "RMQS_ERR_TIMEOUT");
    CHECK(!timeout.from_broker());
    const rmqs::error exists(RMQS_ERR_STREAM_ALREADY_EXISTS, "exists");
    CHECK(exists.from_broker());
    CHECK(std::string(exists.what()) == "exists");
    const rmqs::batch_error batch(RMQS_ERR_QUEUE_FULL, "full", 7);
    CHECK(batch.accepted() == 7 && batch.status() == RMQS_ERR_QUEUE_FULL);
}

void test_bytes() {
    const std::string s = "hello";
    const std::string_view sv = "hello";
    const std::vector<std::uint8_t> v{'h', 'e', 'l', 'l', 'o'};
    const std::array<char, 5> a{'h', 'e', 'l', 'l', 'o'};
    const rmqs::bytes from_s = s;
    CHECK(from_s.data() == reinterpret_cast<const std::uint8_t*>(s.data()) && from_s.size() == 5);
    CHECK(rmqs::bytes(sv) == from_s);
    CHECK(rmqs::bytes(v) == from_s);
    CHECK(rmqs::bytes(a) == from_s);
    CHECK(rmqs::bytes("hello") == from_s);
    CHECK(rmqs::bytes(s.data(), 5) == "hello");
    CHECK(rmqs::bytes("hellO") != from_s);
    CHECK(rmqs::bytes("hell") != from_s);
    CHECK(from_s.str() == "hello");
    CHECK(from_s.to_vector() == v);
    CHECK(from_s.to_string() == s);
    CHECK(from_s[1] == 'e');
    const rmqs::bytes empty;
    CHECK(empty.empty() && empty.size() == 0 && empty.str().empty());
    CHECK(rmqs::bytes(static_cast<const char*>(nullptr)).empty());
    CHECK(rmqs::bytes(nullptr, 5).size() == 0);
    CHECK(empty == rmqs::bytes(""));
}

void test_config_and_error() {
    rmqs::Config cfg;
    CHECK(static_cast<bool>(cfg));
    cfg.set("batch_size", 50).set("block_when_full", true).set("name", std::string("p")).set("confirm_timeout_ms", "1000");

    // an unknown key: the library's status and message
    try {
        cfg.set("no_such_key", "1");
        CHECK(!"no exception");
    } catch (const rmqs::error& e) {
        CHECK(e.status() == RMQS_ERR_INVALID_ARGUMENT);
        CHECK(std::string(e.what()).find("no_such_key") != std::string::npos);
    }
    CHECK_THROWS_STATUS(cfg.set("batch_size", "lots"), RMQS_ERR_INVALID_ARGUMENT);
    // an embedded NUL would be truncated by the C API: refused by the wrapper
    CHECK_THROWS_STATUS(cfg.set(std::string_view("name\0x", 6), "v"), RMQS_ERR_INVALID_ARGUMENT);
    CHECK_THROWS_STATUS(cfg.set("name", std::string_view("a\0b", 3)), RMQS_ERR_INVALID_ARGUMENT);
    CHECK_THROWS_STATUS((rmqs::Config{{"offset", "first"}, {"bogus", "1"}}), RMQS_ERR_INVALID_ARGUMENT);
    // long keys go through the heap buffer
    CHECK_THROWS_STATUS(cfg.set(std::string(1000, 'k'), "1"), RMQS_ERR_INVALID_ARGUMENT);

    // moves: the source is empty, the target owns; move-assignment frees the target's config
    rmqs_config* raw = cfg.get();
    rmqs::Config moved(std::move(cfg));
    CHECK(moved.get() == raw && cfg.get() == nullptr && !cfg);  // NOLINT(bugprone-use-after-move)
    rmqs::Config other{{"offset", "first"}};
    other = std::move(moved);
    CHECK(other.get() == raw && moved.get() == nullptr);  // NOLINT(bugprone-use-after-move)
    rmqs::Config& alias = other;
    other = std::move(alias);  // self-move keeps it
    CHECK(other.get() == raw);
    // a call on an empty handle fails as the C function does for NULL
    CHECK_THROWS_STATUS(cfg.set("batch_size", 1), RMQS_ERR_INVALID_ARGUMENT);  // NOLINT
    // release/adopt
    rmqs::Config adopted(other.release());
    CHECK(adopted.get() == raw && !other);

    // Error: owns the detail of a failed C call; out() frees what it held
    rmqs::Error err;
    CHECK(!err && err.status() == RMQS_OK && std::string(err.message()).empty());
    CHECK(rmqs_config_set(adopted.get(), "bad key", "1", err.out()) == RMQS_ERR_INVALID_ARGUMENT);
    CHECK(err && err.status() == RMQS_ERR_INVALID_ARGUMENT && *err.message() != '\0');
    const std::string first_message = err.message();
    CHECK(rmqs_config_set(adopted.get(), "batch_size", "x", err.out()) == RMQS_ERR_INVALID_ARGUMENT);
    rmqs::Error err2(std::move(err));
    CHECK(!err && err2);  // NOLINT(bugprone-use-after-move)
    try {
        err2.raise(err2.status());
        CHECK(!"no exception");
    } catch (const rmqs::error& e) {
        CHECK(e.status() == RMQS_ERR_INVALID_ARGUMENT && std::string(e.what()) == err2.message());
    }
    err = std::move(err2);
    CHECK(err && !err2);  // NOLINT(bugprone-use-after-move)
}

void test_log_handler_offline() {
    counts a;
    counts b;
    {
        rmqs::Config cfg;
        cfg.set_log_handler([t = tracker(a)](rmqs::log_level, std::string_view, std::string_view) {});
        CHECK(a.alive == 1 && a.destroyed == 0);
        // replacing it frees the first handler (no connection uses it), exactly once
        cfg.set_log_handler([t = tracker(b)](rmqs::log_level, std::string_view, std::string_view) {});
        CHECK(a.alive == 0 && a.destroyed == 1);
        CHECK(b.alive == 1 && b.destroyed == 0);
    }
    CHECK(b.alive == 0 && b.destroyed == 1);
    counts c;
    {
        rmqs::Config cfg;
        cfg.set_log_handler([t = tracker(c)](rmqs::log_level, std::string_view, std::string_view) {});
        cfg.set_log_handler(rmqs::log_handler());  // removes it
        CHECK(c.alive == 0 && c.destroyed == 1);
    }
    CHECK(c.destroyed == 1);
}

void test_queue_offline() {
    rmqs::Queue q;
    CHECK(static_cast<bool>(q));
    CHECK(q.size() == 0);
    CHECK(q.fd() >= 0);
    CHECK(!q.poll(0ms));
    q.wakeup();
    const auto t0 = std::chrono::steady_clock::now();
    CHECK(!q.poll(rmqs::no_timeout));  // returns at once: the wakeup was pending
    CHECK(std::chrono::steady_clock::now() - t0 < 5s);
    std::vector<rmqs::Event> events;
    CHECK(q.poll_batch(events, 10, 0ms) == 0 && events.empty());

    rmqs_queue* raw = q.get();
    rmqs::Queue q2(std::move(q));
    CHECK(q2.get() == raw && !q);  // NOLINT(bugprone-use-after-move)
    CHECK(!q.poll(0ms));           // NOLINT(bugprone-use-after-move): NULL queue, no event
    rmqs::Queue q3;
    q3 = std::move(q2);  // frees q3's own queue
    CHECK(q3.get() == raw);

    const rmqs::Event none;
    CHECK(!none && none.type() == rmqs::event_type::none && none.confirms().empty() && !none.chunk());
    CHECK(none.message().empty() && none.status() == RMQS_OK && !none.closed());
}

void test_offline_errors() {
    for (const char* key : {"hello1", "hello2", "hello88", ""}) {
        std::uint32_t want = 0;
        CHECK(rmqs_super_stream_partition(reinterpret_cast<const std::uint8_t*>(key), std::strlen(key), 3, &want, nullptr) ==
              RMQS_OK);
        CHECK(rmqs::super_stream_partition(key, 3) == want);
    }
    CHECK_THROWS_STATUS(rmqs::super_stream_partition("k", 0), RMQS_ERR_INVALID_ARGUMENT);

    CHECK_THROWS_STATUS(rmqs::Connection::open("not a uri"), RMQS_ERR_INVALID_ARGUMENT);
    CHECK_THROWS_STATUS(rmqs::Connection::open(std::string_view("rabbitmq-stream://localhost\0:5552", 33)),
                        RMQS_ERR_INVALID_ARGUMENT);
    // nothing listens on port 1: an I/O error (connection refused)
    CHECK_THROWS_STATUS(rmqs::Connection::open(rmqs::Config{{"uri", "rabbitmq-stream://guest:guest@127.0.0.1:1/%2f"},
                                                            {"connect_timeout_ms", "2000"}}),
                        RMQS_ERR_IO);

    // an empty Connection: calls fail as on NULL
    rmqs::Connection none;
    CHECK(!none && none.server_version().empty() && !none.supports(0x1c, 1));
    CHECK_THROWS_STATUS(none.stream_exists("s"), RMQS_ERR_INVALID_ARGUMENT);
    CHECK_THROWS_STATUS(none.close(), RMQS_ERR_INVALID_ARGUMENT);
    CHECK_THROWS_STATUS((void)none.create_producer("s"), RMQS_ERR_INVALID_ARGUMENT);
    rmqs::Producer no_producer;
    CHECK_THROWS_STATUS(no_producer.send("x"), RMQS_ERR_INVALID_ARGUMENT);
    CHECK_THROWS_STATUS(no_producer.stats(), RMQS_ERR_INVALID_ARGUMENT);
    CHECK(!no_producer.last_id());
    rmqs::Consumer no_consumer;
    CHECK_THROWS_STATUS(no_consumer.credit(1), RMQS_ERR_INVALID_ARGUMENT);
}

// ---- against the broker -----------------------------------------------------------------------

void test_connection(const std::string& uri) {
    rmqs::Connection conn = rmqs::Connection::open(uri);
    CHECK(static_cast<bool>(conn));
    CHECK(!conn.server_version().empty());
    const rmqs::connection_statistics st = conn.stats();
    CHECK(st.frames_in > 0 && st.frames_out > 0 && st.connections_opened >= 1);

    // wrong password: the broker's code, positive
    try {
        rmqs::Connection bad = rmqs::Connection::open(rmqs::Config{{"uri", uri}, {"password", "wrong-password"}});
        CHECK(!"no exception");
    } catch (const rmqs::error& e) {
        CHECK(e.status() == RMQS_ERR_AUTHENTICATION_FAILURE);
        CHECK(e.from_broker());
    }

    // moves: the moved-to connection works, the moved-from one is empty
    rmqs_connection* raw = conn.get();
    rmqs::Connection moved(std::move(conn));
    CHECK(moved.get() == raw && !conn);  // NOLINT(bugprone-use-after-move)
    CHECK_THROWS_STATUS(conn.stream_exists("x"), RMQS_ERR_INVALID_ARGUMENT);  // NOLINT
    CHECK(!moved.stream_exists(unique_name("absent")));
    rmqs::Connection second = rmqs::Connection::open(uri);
    second = std::move(moved);  // frees the second connection
    CHECK(second.get() == raw);
    second.close(10s);
    CHECK_THROWS_STATUS(second.stream_exists("x"), RMQS_ERR_CLOSED);
}

void test_stream_management(const rmqs::Connection& conn) {
    const std::string stream = unique_name("manage");
    CHECK(!conn.stream_exists(stream));
    conn.create_stream(stream);
    CHECK(conn.stream_exists(stream));
    CHECK_THROWS_STATUS(conn.create_stream(stream), RMQS_ERR_STREAM_ALREADY_EXISTS);
    CHECK(!conn.ensure_stream(stream));

    const rmqs::stream_metadata md = conn.metadata(stream);
    CHECK(md.leader.has_value() && !md.leader->host.empty() && md.leader->port != 0);
    const rmqs::stream_statistics stats = conn.stream_stats(stream);
    CHECK(stats.first_chunk_id == -1 || stats.first_chunk_id == 0);

    CHECK(!conn.query_offset("cpp-ref", stream).has_value());
    conn.store_offset("cpp-ref", stream, 42);
    CHECK(wait_until([&] { return conn.query_offset("cpp-ref", stream) == std::optional<std::uint64_t>(42); }));
    CHECK(conn.query_producer_sequence("nobody", stream) == 0);

    conn.delete_stream(stream);
    CHECK(!conn.stream_exists(stream));
    CHECK_THROWS_STATUS(conn.delete_stream(stream), RMQS_ERR_STREAM_DOES_NOT_EXIST);
    CHECK_THROWS_STATUS(conn.metadata(stream), RMQS_ERR_STREAM_DOES_NOT_EXIST);
    CHECK_THROWS_STATUS(conn.create_stream(std::string_view("a\0b", 3)), RMQS_ERR_INVALID_ARGUMENT);
    CHECK_THROWS_STATUS(conn.create_stream(""), RMQS_ERR_INVALID_ARGUMENT);

    // with arguments; a producer-only key is refused as a stream argument
    const std::string with_args = unique_name("args");
    CHECK(conn.ensure_stream(with_args, rmqs::Config{{"max_length_bytes", "10000000"}, {"max_age", "1h"}}));
    CHECK_THROWS_STATUS(conn.create_stream(unique_name("bad-args"), rmqs::Config{{"batch_size", "10"}}),
                        RMQS_ERR_INVALID_ARGUMENT);

    // failed creations: the right status, and the handler freed exactly once by the wrapper
    counts pc;
    CHECK_THROWS_STATUS((void)conn.create_producer(unique_name("missing"),
                                                   [t = tracker(pc)](rmqs::strided_span<rmqs::confirm>) {}),
                        RMQS_ERR_STREAM_DOES_NOT_EXIST);
    CHECK(pc.alive == 0 && pc.destroyed == 1);
    counts cc;
    CHECK_THROWS_STATUS((void)conn.create_consumer(with_args, rmqs::Config{{"batch_size", "10"}},
                                                   [t = tracker(cc)](rmqs::ChunkRef) {}),
                        RMQS_ERR_INVALID_ARGUMENT);
    CHECK(cc.alive == 0 && cc.destroyed == 1);
    // neither a handler nor a queue
    CHECK_THROWS_STATUS((void)conn.create_consumer(with_args, rmqs::chunk_handler()), RMQS_ERR_INVALID_ARGUMENT);
    CHECK_THROWS_STATUS((void)conn.create_producer(with_args, rmqs::Config{{"offset", "first"}}),
                        RMQS_ERR_INVALID_ARGUMENT);
    conn.delete_stream(with_args);

    // super streams
    const std::string super = unique_name("super");
    try {
        conn.create_super_stream(super, 3);
    } catch (const rmqs::error& e) {
        if (e.status() == RMQS_ERR_UNSUPPORTED) {
            std::fprintf(stderr, "super streams unsupported by this broker: skipped\n");
            return;
        }
        throw;
    }
    const std::vector<std::string> parts = conn.super_stream_partitions(super);
    CHECK(parts == (std::vector<std::string>{super + "-0", super + "-1", super + "-2"}));
    CHECK(conn.super_stream_route("1", super) == std::vector<std::string>{super + "-1"});
    CHECK(conn.super_stream_route("no-such-key", super).empty());
    conn.delete_super_stream(super);
    CHECK_THROWS_STATUS(conn.super_stream_partitions(super), RMQS_ERR_STREAM_DOES_NOT_EXIST);

    const std::string named = unique_name("named-super");
    conn.create_super_stream(named, {named + "-eu", named + "-us"}, {"eu", "us"});
    CHECK(conn.super_stream_route("us", named) == std::vector<std::string>{named + "-us"});
    conn.delete_super_stream(named);
    CHECK_THROWS_STATUS(conn.create_super_stream(named, {"a"}, {"x", "y"}), RMQS_ERR_INVALID_ARGUMENT);
}

// Produces n messages (body_of(i), tag i) through send, send_batch and send(options), with a
// confirm lambda; checks every confirm, the counters and that the lambda is freed exactly once.
void produce(const rmqs::Connection& conn, const std::string& stream, std::size_t n) {
    counts tc;
    std::mutex lock;
    std::vector<int> seen(n, 0);
    std::size_t bad = 0;
    {
        rmqs::Producer first = conn.create_producer(
            stream, rmqs::Config{{"batch_size", "50"}, {"max_in_flight", "500"}},
            [&, t = tracker(tc)](rmqs::strided_span<rmqs::confirm> confirms) {
                std::lock_guard<std::mutex> guard(lock);
                for (const rmqs::confirm& c : confirms) {
                    if (c.status != RMQS_OK || c.tag >= n || seen[c.tag]++ != 0) {
                        bad++;
                    }
                }
            });
        CHECK(tc.alive == 1 && tc.destroyed == 0);
        CHECK(!first.last_id().has_value());

        const std::size_t third = n / 3;
        for (std::size_t i = 0; i < third; i++) {
            first.send(body_of(i), i);
        }
        // moved mid-stream: the moved-to producer continues, the moved-from one is empty
        rmqs::Producer producer(std::move(first));
        CHECK_THROWS_STATUS(first.send("x"), RMQS_ERR_INVALID_ARGUMENT);  // NOLINT(bugprone-use-after-move)
        CHECK(tc.alive == 1);

        // batches of up to 100 (tags given), through the 64-message split of send_batch
        std::size_t i = third;
        while (i + 1 < n) {
            const std::size_t k = std::min<std::size_t>(100, n - 1 - i);
            std::vector<std::string> owned;
            std::vector<rmqs::bytes> bodies;
            std::vector<std::size_t> tags;
            owned.reserve(k);
            for (std::size_t j = 0; j < k; j++) {
                owned.push_back(body_of(i + j));
                tags.push_back(i + j);
            }
            bodies.assign(owned.begin(), owned.end());
            producer.send_batch(bodies, tags);
            i += k;
        }
        // the last one with options: a filter value, the id returned
        rmqs::send_options options;
        options.tag = n - 1;
        options.filter_value = "last";
        const std::string last = body_of(n - 1);
        const std::uint64_t id = producer.send(last, options);
        CHECK(producer.last_id() == std::optional<std::uint64_t>(id));

        CHECK(producer.flush(30s));
        const rmqs::producer_statistics ps = producer.stats();
        CHECK(ps.published == n && ps.confirmed == n && ps.errored == 0 && ps.in_flight == 0);
        CHECK(producer.close(10s));
        CHECK(producer.close(10s));  // closing again
        CHECK_THROWS_STATUS(producer.send("late"), RMQS_ERR_CLOSED);
        CHECK_THROWS_STATUS(producer.send_batch({"a", "b"}, {1, 2, 3}), RMQS_ERR_INVALID_ARGUMENT);
    }
    // ~Producer freed the lambda exactly once
    CHECK(tc.alive == 0 && tc.destroyed == 1);
    std::size_t confirmed = 0;
    for (int s : seen) {
        confirmed += s == 1 ? 1 : 0;
    }
    CHECK(confirmed == n);
    CHECK(bad == 0);
}

// Consumes with a chunk lambda: exact bodies and offsets; retains chunks beyond the callback.
void consume_with_lambda(const rmqs::Connection& conn, const std::string& stream, std::size_t n) {
    counts tc;
    std::mutex lock;
    std::condition_variable cv;
    std::size_t consumed = 0;
    std::size_t mismatches = 0;
    std::uint64_t next = 0;
    std::vector<rmqs::Chunk> kept;
    rmqs_status in_callback = RMQS_OK;
    rmqs_status store_in_callback = RMQS_OK;
    std::atomic<rmqs::Consumer*> self{nullptr};  // published once create_consumer returned
    std::atomic<std::uint64_t> stored_from_callback{0};
    {
        rmqs::Consumer consumer = conn.create_consumer(
            stream, rmqs::Config{{"offset", "first"}, {"name", "cpp-lambda"}},
            [&, t = tracker(tc)](rmqs::ChunkRef chunk) {
                std::size_t bad = 0;
                std::size_t count = 0;
                for (rmqs::Message m : chunk) {
                    if (m.offset() != next || m.body() != body_of(m.offset()) || m.timestamp() != chunk.timestamp()) {
                        bad++;
                    }
                    next = m.offset() + 1;
                    count++;
                }
                bad += count == chunk.size() ? 0 : 1;
                bad += chunk.stream() == stream ? 0 : 1;
                if (chunk.first_offset() == 0) {
                    // a blocking call from the callback: WOULD_DEADLOCK, as an exception
                    try {
                        (void)conn.stream_exists(stream);
                    } catch (const rmqs::error& e) {
                        in_callback = e.status();
                    }
                    // the connection's store_offset is refused there too
                    try {
                        conn.store_offset("cpp-lambda-ref", stream, 1);
                    } catch (const rmqs::error& e) {
                        store_in_callback = e.status();
                    }
                }
                // the consumer's own store_offset does not block: allowed in its handler
                if (rmqs::Consumer* c = self.load()) {
                    c->store_offset(chunk.first_offset() + chunk.size() - 1);
                    stored_from_callback = chunk.first_offset() + chunk.size();
                }
                std::lock_guard<std::mutex> guard(lock);
                if (kept.size() < 2) {
                    kept.push_back(chunk.retain());
                }
                consumed += count;
                mismatches += bad;
                cv.notify_all();
            });
        self.store(&consumer);
        std::unique_lock<std::mutex> guard(lock);
        CHECK(cv.wait_for(guard, 30s, [&] { return consumed >= n; }));
        guard.unlock();
        consumer.check();
        if (stored_from_callback.load() != 0) {  // the last chunk came after `self` was set
            CHECK(stored_from_callback.load() == n);
        }
        consumer.store_offset(n - 1);
        CHECK(wait_until([&] { return consumer.query_offset() == std::optional<std::uint64_t>(n - 1); }));
        const rmqs::consumer_statistics cs = consumer.stats();
        CHECK(cs.messages == n && cs.chunks >= 1);
        CHECK(consumer.close(10s));
        CHECK_THROWS_STATUS(consumer.credit(1), RMQS_ERR_CLOSED);
        CHECK(tc.alive == 1);  // freed with the consumer, not at close
    }
    CHECK(tc.alive == 0 && tc.destroyed == 1);
    CHECK(consumed == n);
    CHECK(mismatches == 0);
    CHECK(in_callback == RMQS_ERR_WOULD_DEADLOCK);
    CHECK(store_in_callback == RMQS_ERR_WOULD_DEADLOCK);

    // the retained chunks outlive the consumer and its callbacks
    CHECK(kept.size() == 2);
    if (!kept.empty()) {
        rmqs::Chunk& first = kept[0];
        CHECK(first.first_offset() == 0 && !first.empty());
        CHECK(first[0].offset() == 0 && first[0].body() == body_of(0));
        CHECK(first.at(0).body() == first[0].body());
        try {
            (void)first.at(first.size());
            CHECK(!"no exception");
        } catch (const std::out_of_range&) {
            CHECK(true);
        }
        CHECK(!first[first.size()]);
        CHECK(first.header().chunk_id == first.id() && first.header().num_records >= first.size());
        CHECK(!first.data().empty());
        // clone: two references; releasing one keeps the other readable
        rmqs::Chunk copy = first.clone();
        CHECK(copy.get() == first.get());
        first.reset();
        CHECK(!first && copy[0].body() == body_of(0));
        rmqs::ChunkRef view = copy;  // implicit, from an lvalue Chunk
        std::size_t i = 0;
        std::size_t wrong = 0;
        for (rmqs::Message m : view) {
            wrong += m.body() == body_of(m.offset()) ? 0 : 1;
            i++;
        }
        CHECK(i == view.size() && wrong == 0);
        rmqs::Chunk moved(std::move(copy));
        CHECK(!copy && moved[0].offset() == 0);  // NOLINT(bugprone-use-after-move)
    }
    kept.clear();
}

// Consumes through a Queue: chunk events with the consumer's tag, then its closed state event.
void consume_with_queue(const rmqs::Connection& conn, const std::string& stream, std::size_t n) {
    rmqs::Queue queue;
    rmqs::Consumer consumer = conn.create_consumer(stream, rmqs::Config{{"offset", "first"}}, queue, 7);
    std::size_t consumed = 0;
    std::size_t mismatches = 0;
    std::uint64_t next = 0;
    rmqs::Chunk kept;
    const auto deadline = std::chrono::steady_clock::now() + 30s;
    std::vector<rmqs::Event> events;
    while (consumed < n && std::chrono::steady_clock::now() < deadline) {
        events.clear();
        queue.poll_batch(events, 16, 1s);
        for (rmqs::Event& ev : events) {
            if (ev.type() != rmqs::event_type::chunk || ev.tag() != 7 ||
                ev.source() != rmqs::event_source::consumer) {
                mismatches++;
                continue;
            }
            const rmqs::ChunkRef chunk = ev.chunk();
            for (rmqs::Message m : chunk) {
                if (m.offset() != next || m.body() != body_of(m.offset())) {
                    mismatches++;
                }
                next = m.offset() + 1;
                consumed++;
            }
            if (!kept) {
                kept = chunk.retain();
            }
        }
        events.clear();  // frees the events: their chunks' credits go back
    }
    CHECK(consumed == n);
    CHECK(mismatches == 0);
    CHECK(consumer.close(10s));
    // the last event: closed by the application
    bool closed = false;
    while (rmqs::Event ev = queue.poll(5s)) {
        if (ev.type() == rmqs::event_type::state) {
            closed = ev.closed() && ev.status() == RMQS_OK && ev.tag() == 7;
            break;
        }
    }
    CHECK(closed);
    consumer.reset();
    CHECK(!consumer);
    // the retained chunk outlives its event, the consumer and the queue
    queue.reset();
    CHECK(kept && kept[0].offset() == 0 && kept[0].body() == body_of(0));
}

// Confirms as queue events (tag of the producer, tags of the messages).
void confirms_with_queue(const rmqs::Connection& conn, const std::string& stream) {
    rmqs::Queue queue;
    rmqs::Producer producer = conn.create_producer(stream, rmqs::Config{}, queue, 3);
    for (std::size_t i = 0; i < 10; i++) {
        producer.send(body_of(i), 100 + i);
    }
    std::vector<bool> seen(10, false);
    std::size_t got = 0;
    std::size_t bad = 0;
    while (got < 10) {
        rmqs::Event ev = queue.poll(10s);
        if (!ev) {
            break;
        }
        if (ev.type() != rmqs::event_type::confirms || ev.tag() != 3 || ev.source() != rmqs::event_source::producer) {
            bad++;
            continue;
        }
        for (const rmqs::confirm& c : ev.confirms()) {
            if (c.status != RMQS_OK || c.tag < 100 || c.tag >= 110 || seen[c.tag - 100]) {
                bad++;
            } else {
                seen[c.tag - 100] = true;
                got++;
            }
        }
    }
    CHECK(got == 10 && bad == 0);
    CHECK(producer.flush(10s));
}

void test_round_trip(const rmqs::Connection& conn, std::size_t n) {
    const std::string stream = unique_name("round-trip");
    conn.create_stream(stream);
    run_test("produce", [&] { produce(conn, stream, n); });
    run_test("consume_with_lambda", [&] { consume_with_lambda(conn, stream, n); });
    run_test("consume_with_queue", [&] { consume_with_queue(conn, stream, n); });
    run_test("confirms_with_queue", [&] { confirms_with_queue(conn, stream); });
    conn.delete_stream(stream);
}

// A handler storing offsets through its own Consumer (published after create_consumer returned;
// the stream is filled only then, so every chunk sees it).
void test_store_from_handler(const rmqs::Connection& conn) {
    const std::string stream = unique_name("store");
    conn.create_stream(stream);
    std::atomic<rmqs::Consumer*> self{nullptr};
    std::atomic<std::size_t> consumed{0};
    std::atomic<int> without_self{0};
    {
        rmqs::Consumer consumer = conn.create_consumer(
            stream, rmqs::Config{{"offset", "first"}, {"name", "cpp-store"}}, [&](rmqs::ChunkRef chunk) {
                rmqs::Consumer* c = self.load();
                if (c == nullptr) {
                    without_self++;
                    return;
                }
                c->store_offset(chunk.first_offset() + chunk.size() - 1);
                consumed += chunk.size();
            });
        self.store(&consumer);
        {
            rmqs::Producer producer = conn.create_producer(stream, rmqs::Config{{"batch_size", "10"}});
            for (std::size_t i = 0; i < 100; i++) {
                producer.send(body_of(i), i);
            }
            CHECK(producer.flush(10s));
        }
        CHECK(wait_until([&] { return consumed.load() == 100; }));
        CHECK(wait_until([&] { return consumer.query_offset() == std::optional<std::uint64_t>(99); }));
        CHECK(consumer.stats().offsets_stored >= 1);
        consumer.check();
    }
    CHECK(without_self == 0);
    CHECK(conn.query_offset("cpp-store", stream) == std::optional<std::uint64_t>(99));
    conn.delete_stream(stream);
}

// Message accessors: an AMQP-wrapped body (the default) and a raw one (rmqs::send_raw).
void test_raw_and_properties(const rmqs::Connection& conn) {
    const std::string stream = unique_name("raw");
    conn.create_stream(stream);
    {
        rmqs::Producer producer = conn.create_producer(stream);
        producer.send("wrapped", 0);
        producer.send(std::vector<std::uint8_t>{'r', 'a', 'w', 0, 1}, 1, rmqs::send_raw);
        CHECK(producer.flush(10s));
    }
    rmqs::Queue queue;
    rmqs::Consumer consumer = conn.create_consumer(stream, rmqs::Config{{"offset", "first"}}, queue);
    std::vector<rmqs::Chunk> chunks;
    std::size_t messages = 0;
    while (messages < 2) {
        rmqs::Event ev = queue.poll(10s);
        if (!ev) {
            break;
        }
        if (ev.type() == rmqs::event_type::chunk) {
            messages += ev.chunk().size();
            chunks.push_back(ev.chunk().retain());
        }
    }
    CHECK(messages == 2);
    std::vector<rmqs::Message> all;
    for (const rmqs::Chunk& c : chunks) {
        for (rmqs::Message m : c) {
            all.push_back(m);
        }
    }
    CHECK(all.size() == 2);
    if (all.size() == 2) {
        const rmqs::Message wrapped = all[0];
        CHECK(wrapped.offset() == 0 && wrapped.body() == "wrapped" && wrapped.is_amqp());
        CHECK(wrapped.raw().size() > wrapped.body().size());
        CHECK(!wrapped.property(rmqs::property::subject).has_value());
        CHECK(wrapped.app_property_count() == 0 && wrapped.app_properties().empty());
        CHECK(!wrapped.app_property("key").has_value() && !wrapped.app_property_at(0).has_value());
        const rmqs::Message raw = all[1];
        const std::vector<std::uint8_t> want{'r', 'a', 'w', 0, 1};
        CHECK(raw.offset() == 1 && raw.body() == want && raw.raw() == want && !raw.is_amqp());
        CHECK(raw.timestamp() > 0);
    }
    consumer.reset();
    conn.delete_stream(stream);
}

// Move-assignment onto live producers and consumers frees the old ones (and their handlers)
// exactly once; self-move is harmless.
void test_live_moves(const rmqs::Connection& conn) {
    const std::string stream = unique_name("moves");
    conn.create_stream(stream);
    counts a;
    counts b;
    {
        rmqs::Producer pa = conn.create_producer(stream, [t = tracker(a)](rmqs::strided_span<rmqs::confirm>) {});
        rmqs::Producer pb = conn.create_producer(stream, [t = tracker(b)](rmqs::strided_span<rmqs::confirm>) {});
        rmqs_producer* raw_b = pb.get();
        pa = std::move(pb);
        CHECK(a.alive == 0 && a.destroyed == 1);
        CHECK(pa.get() == raw_b && !pb);  // NOLINT(bugprone-use-after-move)
        rmqs::Producer& alias = pa;
        pa = std::move(alias);
        CHECK(pa.get() == raw_b && b.alive == 1);
        pa.send("moved");
        CHECK(pa.flush(10s));
        CHECK(pa.stats().confirmed == 1);
    }
    CHECK(b.alive == 0 && b.destroyed == 1);

    counts c;
    counts d;
    {
        rmqs::Consumer ca = conn.create_consumer(stream, [t = tracker(c)](rmqs::ChunkRef) {});
        rmqs::Consumer cb = conn.create_consumer(stream, [t = tracker(d)](rmqs::ChunkRef) {});
        ca = std::move(cb);
        CHECK(c.alive == 0 && c.destroyed == 1);
        CHECK(d.alive == 1 && !cb);  // NOLINT(bugprone-use-after-move)
        rmqs::Consumer cc(std::move(ca));
        CHECK(!ca && cc);  // NOLINT(bugprone-use-after-move)
        cc.reset();
        CHECK(d.alive == 0 && d.destroyed == 1 && !cc);
        cc.reset();  // again: nothing
    }
    CHECK(d.destroyed == 1);
    conn.delete_stream(stream);
}

// An exception escaping a handler: caught in the trampoline, the object closed, the handler
// not called again, the exception (same type) rethrown once by the next call.
void test_handler_exceptions(const rmqs::Connection& conn) {
    const std::string stream = unique_name("throws");
    conn.create_stream(stream);

    counts pc;
    std::atomic<int> confirm_calls{0};
    {
        rmqs::Producer producer =
            conn.create_producer(stream, [&, t = tracker(pc)](rmqs::strided_span<rmqs::confirm>) {
                confirm_calls++;
                throw std::runtime_error("boom");
            });
        producer.send("one", 1);
        // flush waits for the handler call, then reports its exception
        try {
            (void)producer.flush(10s);
            CHECK(!"no exception");
        } catch (const rmqs::error& e) {
            CHECK(!"an rmqs::error instead of the handler's exception");
            std::fprintf(stderr, "  %s: %s\n", e.name(), e.what());
        } catch (const std::runtime_error& e) {
            CHECK(std::string(e.what()) == "boom");
        }
        producer.check();  // rethrown once only
        // the producer was closed: later sends fail as on any closed producer
        CHECK(wait_until([&] {
            try {
                producer.send("two", 2);
                return false;
            } catch (const rmqs::error& e) {
                return e.status() == RMQS_ERR_CLOSED;
            }
        }));
        CHECK(confirm_calls == 1);
        CHECK(pc.alive == 1);
    }
    CHECK(pc.alive == 0 && pc.destroyed == 1);
    CHECK(confirm_calls == 1);

    // fill the stream with several chunks
    {
        rmqs::Producer producer = conn.create_producer(stream, rmqs::Config{{"batch_size", "10"}, {"batch_delay_ms", "0"}});
        for (std::size_t i = 0; i < 200; i++) {
            producer.send(body_of(i), i);
        }
        CHECK(producer.flush(30s));
    }
    counts cc;
    std::atomic<int> chunk_calls{0};
    {
        rmqs::Consumer consumer = conn.create_consumer(
            stream, rmqs::Config{{"offset", "first"}, {"name", "cpp-throws"}}, [&, t = tracker(cc)](rmqs::ChunkRef) {
                chunk_calls++;
                throw std::logic_error("bad chunk");
            });
        CHECK(wait_until([&] { return chunk_calls.load() >= 1; }));
        std::this_thread::sleep_for(300ms);
        CHECK(chunk_calls == 1);  // not called again
        try {
            consumer.check();
            CHECK(!"no exception");
        } catch (const std::logic_error& e) {
            CHECK(std::string(e.what()) == "bad chunk");
        }
        consumer.check();  // once only
        CHECK(wait_until([&] {
            try {
                consumer.credit(1);
                return false;
            } catch (const rmqs::error& e) {
                return e.status() == RMQS_ERR_CLOSED;
            }
        }));
        CHECK(consumer.close(5s));
    }
    CHECK(cc.alive == 0 && cc.destroyed == 1);

    // an exception still pending at destruction is discarded (no terminate, no leak)
    counts dc;
    {
        rmqs::Consumer consumer = conn.create_consumer(stream, rmqs::Config{{"offset", "first"}},
                                                       [t = tracker(dc)](rmqs::ChunkRef) { throw 42; });
        std::this_thread::sleep_for(200ms);
    }
    CHECK(dc.alive == 0 && dc.destroyed == 1);
    conn.delete_stream(stream);
}

// The log handler: called during open, kept alive by the connection after the config is gone,
// freed exactly once with the connection; a throwing log handler is harmless.
void test_log_handler(const std::string& uri) {
    counts lc;
    std::atomic<int> lines{0};
    std::atomic<int> bad_levels{0};
    rmqs::Connection conn;
    {
        rmqs::Config cfg{{"uri", uri}, {"log_level", "debug"}};
        cfg.set_log_handler([&, t = tracker(lc)](rmqs::log_level level, std::string_view target, std::string_view msg) {
            if (level < rmqs::log_level::error || level > rmqs::log_level::debug || target.empty() || msg.empty()) {
                bad_levels++;
            }
            lines++;
        });
        conn = rmqs::Connection::open(cfg);
    }
    CHECK(lc.alive == 1);  // the config is gone, the connection holds the handler
    CHECK(lines > 0);
    CHECK(bad_levels == 0);
    conn.reset();
    CHECK(lc.alive == 0 && lc.destroyed == 1);

    counts tc;
    {
        rmqs::Config cfg{{"uri", uri}, {"log_level", "debug"}};
        cfg.set_log_handler([t = tracker(tc)](rmqs::log_level, std::string_view, std::string_view) {
            throw std::runtime_error("log handler failure");
        });
        rmqs::Connection c2 = rmqs::Connection::open(cfg);
        CHECK(c2.stream_exists(unique_name("absent")) == false);
    }
    CHECK(tc.alive == 0 && tc.destroyed == 1);
}

void test_state_handler(const rmqs::Connection& conn) {
    const std::string stream = unique_name("state");
    conn.create_stream(stream);
    std::mutex m;
    std::condition_variable cv;
    std::vector<std::pair<rmqs::state, rmqs_status>> pstates, cstates;
    counts hc;
    auto record = [&](std::vector<std::pair<rmqs::state, rmqs_status>>& into) {
        return [&, t = tracker(hc)](const rmqs::state_change& c) {
            std::lock_guard<std::mutex> g(m);
            into.emplace_back(c.state, c.status);
            cv.notify_all();
        };
    };
    {
        rmqs::Config pcfg;
        pcfg.set_state_handler(record(pstates));
        rmqs::Config ccfg{{"offset", "first"}};
        ccfg.set_state_handler(record(cstates));
        rmqs::Producer p = conn.create_producer(stream, pcfg, [](rmqs::strided_span<rmqs::confirm>) {});
        rmqs::Consumer c = conn.create_consumer(stream, ccfg, [](rmqs::ChunkRef) {});
        conn.delete_stream(stream);
        std::unique_lock<std::mutex> g(m);
        CHECK(cv.wait_for(g, 30s, [&] { return !pstates.empty() && !cstates.empty(); }));
    }
    // the handlers are gone with their objects and configs
    CHECK(hc.alive == 0 && hc.destroyed == 2);
    for (const auto* v : {&pstates, &cstates}) {
        CHECK(v->size() == 1);
        CHECK(!v->empty() && (*v)[0].first == rmqs::state::closed &&
              (*v)[0].second == RMQS_ERR_STREAM_DOES_NOT_EXIST);
    }
}

}  // namespace

int main() {
    const std::string uri = test_uri();
    const std::size_t n = n_messages();

    run_test("version_and_status", test_version_and_status);
    run_test("bytes", test_bytes);
    run_test("config_and_error", test_config_and_error);
    run_test("log_handler_offline", test_log_handler_offline);
    run_test("queue_offline", test_queue_offline);
    run_test("offline_errors", test_offline_errors);

    run_test("connection", [&] { test_connection(uri); });
    run_test("broker", [&] {
        rmqs::Connection conn = rmqs::Connection::open(uri);
        run_test("stream_management", [&] { test_stream_management(conn); });
        run_test("round_trip", [&] { test_round_trip(conn, n); });
        run_test("store_from_handler", [&] { test_store_from_handler(conn); });
        run_test("raw_and_properties", [&] { test_raw_and_properties(conn); });
        run_test("live_moves", [&] { test_live_moves(conn); });
        run_test("handler_exceptions", [&] { test_handler_exceptions(conn); });
        run_test("state_handler", [&] { test_state_handler(conn); });
        conn.close(10s);
    });
    run_test("log_handler", [&] { test_log_handler(uri); });

    std::printf("test_cpp: %d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
