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

#include "../c/common.h"

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
#include <algorithm>
#include <arpa/inet.h>
#include <cmath>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

using namespace std::chrono_literals;

namespace {

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
static_assert(move_only_v<rmqs::SuperProducer>);
static_assert(move_only_v<rmqs::SuperConsumer>);
static_assert(move_only_v<rmqs::MessageBuilder>);
static_assert(std::is_trivially_copyable_v<rmqs::value>);
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
    {
        // what the handshake agreed: the smaller of ours and the broker's (1 MiB, 60 s)
        rmqs::Connection tuned =
            rmqs::Connection::open(rmqs::Config{{"uri", uri}, {"frame_max", "131072"}, {"heartbeat", "17"}});
        const rmqs::Connection::negotiated_params n = tuned.negotiated();
        CHECK(n.frame_max == 131072 && n.heartbeat == std::chrono::seconds(17));
    }
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

// ---- the scenario list shared with the other bindings -------------------------------------

// Polls `queue` until `want` messages arrived (or 15 s passed), keeping their chunks.
std::vector<rmqs::Chunk> collect(const rmqs::Queue& queue, std::size_t want, std::vector<rmqs::Message>& out) {
    std::vector<rmqs::Chunk> chunks;
    const auto deadline = std::chrono::steady_clock::now() + 15s;
    while (out.size() < want && std::chrono::steady_clock::now() < deadline) {
        rmqs::Event ev = queue.poll(200ms);
        if (ev && ev.type() == rmqs::event_type::chunk) {
            chunks.push_back(ev.chunk().retain());
            for (rmqs::Message m : chunks.back()) {
                out.push_back(m);
            }
        }
    }
    return chunks;
}

// Sends body_of(0 .. n-1) and waits for their confirms.
void send_bodies(const rmqs::Connection& conn, const std::string& stream, std::size_t n) {
    rmqs::Producer p = conn.create_producer(stream);
    for (std::size_t i = 0; i < n; i++) {
        p.send(body_of(i));
    }
    CHECK(p.flush(10s));
}

// A named producer deduplicates: a second producer of the same name that started before the
// first one sent resends ids 0..9, which the broker drops (and confirms); a third one continues
// after the broker's last id.
void test_dedup_named_producer(const rmqs::Connection& conn) {
    const std::string stream = unique_name("dedup");
    const std::string name = unique_name("dedup-producer");
    conn.create_stream(stream);
    const rmqs::Config cfg{{"name", name}};
    std::optional<std::uint64_t> last;
    std::atomic<int> ok{0};
    auto count_ok = [&](rmqs::strided_span<rmqs::confirm> cs) {
        for (const rmqs::confirm& c : cs) {
            ok += c.status == RMQS_OK ? 1 : 0;
        }
    };
    {
        // the broker refuses two publishers of one name on one connection: the second one
        // (a restarted application, say) has its own
        rmqs::Connection other = rmqs::Connection::open(test_uri());
        rmqs::Producer first = conn.create_producer(stream, cfg, count_ok);
        rmqs::Producer again = other.create_producer(stream, cfg, count_ok);
        CHECK(!again.last_id().has_value());
        for (std::size_t i = 0; i < 10; i++) {
            first.send(body_of(i));
        }
        CHECK(first.flush(10s));
        last = first.last_id();
        for (std::size_t i = 0; i < 10; i++) {
            again.send("duplicate " + std::to_string(i));
        }
        CHECK(again.last_id() == last);  // the same ids as the first one's
        CHECK(again.flush(10s));
        CHECK(ok == 20);  // the duplicates are confirmed too
    }
    CHECK(last.has_value() && conn.query_producer_sequence(name, stream) == *last);
    {
        rmqs::Producer third = conn.create_producer(stream, cfg);
        CHECK(third.last_id() == last);
        rmqs::MessageBuilder m;
        CHECK(third.send(m.body(body_of(10))) == last.value_or(0) + 1);
        CHECK(third.flush(10s));
    }
    rmqs::Queue queue;
    rmqs::Consumer consumer = conn.create_consumer(stream, rmqs::Config{{"offset", "first"}}, queue);
    std::vector<rmqs::Message> got;
    std::vector<rmqs::Chunk> keep = collect(queue, 12, got);  // 12: would see one duplicate too many
    CHECK(got.size() == 11);
    for (std::size_t i = 0; i < got.size(); i++) {
        CHECK(got[i].offset() == i && got[i].body() == body_of(i));
    }
    keep.clear();
    consumer.reset();
    conn.delete_stream(stream);
}

// Offsets stored by a consumer and by the connection read back exactly; a consumer with
// manual tracking resumes right after the stored offset.
void test_offsets_store_query(const rmqs::Connection& conn) {
    const std::string stream = unique_name("offsets");
    const std::string ref = unique_name("offsets-ref");
    conn.create_stream(stream);
    send_bodies(conn, stream, 10);
    CHECK(!conn.query_offset(ref, stream).has_value());
    rmqs::Queue queue;
    {
        rmqs::Consumer c = conn.create_consumer(stream, rmqs::Config{{"offset", "first"}, {"name", ref}}, queue);
        CHECK(!c.query_offset().has_value());
        c.store_offset(7);
        CHECK(wait_until([&] { return c.query_offset() == std::optional<std::uint64_t>(7); }));
        CHECK(conn.query_offset(ref, stream) == std::optional<std::uint64_t>(7));
    }
    conn.store_offset(ref, stream, 3);
    CHECK(wait_until([&] { return conn.query_offset(ref, stream) == std::optional<std::uint64_t>(3); }));
    rmqs::Queue q2;
    rmqs::Consumer resumed = conn.create_consumer(
        stream, rmqs::Config{{"offset", "first"}, {"name", ref}, {"tracking", "manual"}}, q2);
    std::vector<rmqs::Message> got;
    std::vector<rmqs::Chunk> keep = collect(q2, 6, got);
    CHECK(got.size() == 6);
    CHECK(!got.empty() && got.front().offset() == 4 && got.front().body() == body_of(4));
    CHECK(!got.empty() && got.back().offset() == 9);
    keep.clear();
    resumed.reset();
    conn.delete_stream(stream);
}

// A message with every section: each value read back equals what was written.
void test_message_every_section(const rmqs::Connection& conn) {
    const std::string stream = unique_name("sections");
    conn.create_stream(stream);
    using v = rmqs::value;
    const std::array<std::uint8_t, 16> uuid{0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0,
                                            0x0f, 0xed, 0xcb, 0xa9, 0x87, 0x65, 0x43, 0x21};
    const std::string binary_with_nul("bin\0ary", 7);
    const std::vector<std::pair<std::string, rmqs::value>> app{
        {"null", v::null()},
        {"bool", v::boolean(true)},
        {"ubyte", v::ubyte(255)},
        {"ushort", v::ushort(65535)},
        {"uint", v::uint(std::numeric_limits<std::uint32_t>::max())},
        {"ulong", v::ulong(std::numeric_limits<std::uint64_t>::max())},
        {"byte", v::byte(-128)},
        {"short", v::short_(-32768)},
        {"int", v::int_(std::numeric_limits<std::int32_t>::min())},
        {"long", v::long_(std::numeric_limits<std::int64_t>::min())},
        {"float", v::float_(-std::numeric_limits<float>::infinity())},
        {"double", v::double_(std::numeric_limits<double>::quiet_NaN())},
        {"timestamp", v::timestamp(-1)},
        {"uuid", v::uuid(uuid)},
        {"empty string", v::string("")},
        {"clé", v::string("héllo ✓")},
        {"symbol", v::symbol("sym")},
        {"empty binary", v::binary(rmqs::bytes())},
        {"binary", v::binary(binary_with_nul)},
    };
    rmqs::MessageBuilder m;
    m.add_body_section("part-1")
        .add_body_section(binary_with_nul)
        .durable(true)
        .priority(9)
        .ttl(60000)
        .first_acquirer(true)
        .delivery_count(3)
        .message_id(v::ulong(std::numeric_limits<std::uint64_t>::max()))
        .user_id("guest")
        .to("/queues/q")
        .subject("subject")
        .reply_to("reply")
        .correlation_id(v::uuid(uuid))
        .content_type("application/octet-stream")
        .content_encoding("identity")
        .absolute_expiry_time(-5)
        .creation_time(1700000000123)
        .group_id("group")
        .group_sequence(42)
        .reply_to_group_id("reply-group");
    for (const auto& kv : app) {
        m.app_property(kv.first, kv.second);
    }
    m.annotation("x-opt-string", v::string("annotation")).annotation("x-opt-long", v::long_(-7));
    m.delivery_annotation("x-delivery", v::boolean(false));
    m.footer("x-footer", v::binary("foot"));
    CHECK(m.app_property("ulong") == std::optional<rmqs::value>(app[5].second));
    CHECK(m.property(rmqs::property::subject) == std::optional<rmqs::value>(v::string("subject")));

    rmqs::MessageBuilder value_body;
    value_body.body_value(v::string("an amqp-value body"));
    rmqs::MessageBuilder sequence_body;
    sequence_body.add_body_sequence({v::ulong(7), v::string("seven")}).add_body_sequence({});
    {
        rmqs::Producer p = conn.create_producer(stream);
        CHECK(p.send(m) == 0);
        const rmqs::MessageBuilder* both[] = {&value_body, &m, &sequence_body};
        p.send_batch(rmqs::span<const rmqs::MessageBuilder* const>(both, 3));
        // m's sections with another body, m unchanged (its two sections checked below).
        CHECK(p.send_body(m, "other body", 4) == 4);
        CHECK(p.flush(10s));
    }
    rmqs::Queue queue;
    rmqs::Consumer consumer = conn.create_consumer(stream, rmqs::Config{{"offset", "first"}}, queue);
    std::vector<rmqs::Message> got;
    std::vector<rmqs::Chunk> keep = collect(queue, 5, got);
    CHECK(got.size() == 5);
    if (got.size() == 5) {
        const rmqs::Message& other = got[4];
        CHECK(other.body_kind() == rmqs::body_type::data && other.body_count() == 1);
        CHECK(other.body() == "other body");
        CHECK(other.property_value(rmqs::property::subject) == std::optional<rmqs::value>(v::string("subject")));
        CHECK(other.app_property_count() == app.size());
        CHECK(other.footer("x-footer") == std::optional<rmqs::value>(v::binary("foot")));
        for (const rmqs::Message& r : {got[0], got[2]}) {
            CHECK(r.is_amqp() && r.body_kind() == rmqs::body_type::data && r.body_count() == 2);
            CHECK(r.body_section(0) == std::optional<rmqs::value>(v::binary("part-1")));
            CHECK(r.body_section(1) == std::optional<rmqs::value>(v::binary(binary_with_nul)));
            for (rmqs::header_field f : {rmqs::header_field::durable, rmqs::header_field::priority,
                                         rmqs::header_field::ttl, rmqs::header_field::first_acquirer,
                                         rmqs::header_field::delivery_count}) {
                CHECK(r.header(f).has_value() && r.header(f) == m.header(f));
            }
            CHECK(r.header(rmqs::header_field::priority) == std::optional<rmqs::value>(v::ubyte(9)));
            for (std::int32_t f = RMQS_PROP_MESSAGE_ID; f <= RMQS_PROP_REPLY_TO_GROUP_ID; f++) {
                const auto field = static_cast<rmqs::property>(f);
                CHECK(r.property_value(field).has_value() && r.property_value(field) == m.property(field));
            }
            CHECK(r.property_value(rmqs::property::correlation_id) == std::optional<rmqs::value>(v::uuid(uuid)));
            CHECK(r.property_value(rmqs::property::content_type) ==
                  std::optional<rmqs::value>(v::symbol("application/octet-stream")));
            CHECK(r.property_value(rmqs::property::absolute_expiry_time) ==
                  std::optional<rmqs::value>(v::timestamp(-5)));
            CHECK(r.app_property_count() == app.size());
            for (const auto& kv : app) {
                const std::optional<rmqs::value> back = r.app_property_value(kv.first);
                CHECK(back.has_value() && *back == kv.second);
                if (!back || *back != kv.second) {
                    std::fprintf(stderr, "  application property %s differs\n", kv.first.c_str());
                }
            }
            CHECK(std::isnan(r.app_property_value("double")->as_double()));
            CHECK(r.annotation("x-opt-string") == std::optional<rmqs::value>(v::string("annotation")));
            CHECK(r.annotation("x-opt-long") == std::optional<rmqs::value>(v::long_(-7)));
            CHECK(r.delivery_annotation("x-delivery") == std::optional<rmqs::value>(v::boolean(false)));
            CHECK(r.footer("x-footer") == std::optional<rmqs::value>(v::binary("foot")));
            const std::optional<rmqs::value> props = r.section_value(rmqs::section::properties);
            CHECK(props && props->type() == rmqs::value_type::list && props->size() == 13);
        }
        const rmqs::Message val = got[1];
        CHECK(val.body_kind() == rmqs::body_type::value && val.body_count() == 1);
        CHECK(val.body_section(0) == std::optional<rmqs::value>(v::string("an amqp-value body")));
        CHECK(val.body() == "an amqp-value body");
        const rmqs::Message seq = got[3];
        CHECK(seq.body_kind() == rmqs::body_type::sequence && seq.body_count() == 2);
        const std::optional<rmqs::value> first = seq.body_section(0);
        CHECK(first && first->type() == rmqs::value_type::list && first->size() == 2);
        CHECK(first && first->at(0) == std::optional<rmqs::value>(v::ulong(7)) &&
              first->at(1) == std::optional<rmqs::value>(v::string("seven")));
        const std::optional<rmqs::value> second = seq.body_section(1);
        CHECK(second && second->type() == rmqs::value_type::list && second->size() == 0);
        CHECK(!val.header(rmqs::header_field::durable).has_value() && !val.section_value(rmqs::section::footer));
    }
    keep.clear();
    consumer.reset();
    conn.delete_stream(stream);
}

// Broker-side filtering (filter values on the messages, `filter_values` on the consumer) with
// the post-filter lambda removing the other values' messages that come along in a chunk.
void test_filtering(const rmqs::Connection& conn) {
    const std::string stream = unique_name("filter");
    conn.create_stream(stream);
    {
        rmqs::Producer p = conn.create_producer(stream);
        rmqs::MessageBuilder m;
        for (std::size_t i = 0; i < 30; i++) {
            const char* region = i % 3 == 0 ? "eu" : "us";
            m.reset().body(body_of(i)).app_property("region", rmqs::value::string(region)).filter_value(region);
            p.send(m, i);
            if (i % 10 == 9) {
                CHECK(p.flush(10s));  // several chunks, so the broker can skip some
            }
        }
    }
    rmqs::Config cfg{{"offset", "first"}, {"filter_values", "eu"}};
    std::atomic<int> filter_calls{0};
    cfg.set_post_filter([&](rmqs::Message msg) {
        filter_calls++;
        const std::optional<rmqs::value> region = msg.app_property_value("region");
        return region && region->as_string() == "eu";
    });
    rmqs::Queue queue;
    rmqs::Consumer consumer = conn.create_consumer(stream, cfg, queue);
    std::vector<rmqs::Message> got;
    std::vector<rmqs::Chunk> keep = collect(queue, 11, got);
    CHECK(got.size() == 10);
    for (std::size_t i = 0; i < got.size(); i++) {
        CHECK(got[i].offset() == 3 * i && got[i].body() == body_of(3 * i));
    }
    CHECK(filter_calls >= 10);
    const rmqs::consumer_statistics st = consumer.stats();
    CHECK(st.messages == 10 && st.filtered_out + st.messages == static_cast<std::uint64_t>(filter_calls.load()));
    keep.clear();
    consumer.reset();
    conn.delete_stream(stream);
}

struct received {
    std::mutex m;
    std::vector<std::uint64_t> offsets;
    std::vector<std::string> bodies;
    std::vector<std::size_t> partitions;
    std::size_t size() {
        std::lock_guard<std::mutex> g(m);
        return offsets.size();
    }
    rmqs::chunk_handler handler() {
        return [this](rmqs::ChunkRef chunk) {
            std::lock_guard<std::mutex> g(m);
            for (rmqs::Message msg : chunk) {
                offsets.push_back(msg.offset());
                bodies.push_back(msg.body().to_string());
                partitions.push_back(chunk.partition().value_or(99));
            }
        };
    }
};

// Two single active consumers of one name: one receives; when it closes, the other is
// activated and starts where its consumer-update lambda says.
void test_single_active_consumer(const rmqs::Connection& conn) {
    const std::string stream = unique_name("sac");
    const std::string name = unique_name("sac-group");
    conn.create_stream(stream);
    send_bodies(conn, stream, 20);
    std::mutex um;
    struct update {
        char who;
        bool is_active;
        std::string stream;  // the view given to the handler lives for the call only
    };
    std::vector<update> updates;
    auto config_for = [&](char who, rmqs::offset_spec answer) {
        rmqs::Config cfg{{"name", name}, {"single_active_consumer", "true"}, {"offset", "first"}};
        cfg.set_consumer_update_handler([&, who, answer](const rmqs::consumer_update& u) {
            std::lock_guard<std::mutex> g(um);
            updates.push_back(update{who, u.is_active, std::string(u.stream)});
            return answer;
        });
        return cfg;
    };
    received a;
    received b;
    rmqs::Consumer ca = conn.create_consumer(stream, config_for('a', rmqs::offset_spec::first()), a.handler());
    rmqs::Consumer cb = conn.create_consumer(stream, config_for('b', rmqs::offset_spec::at(15)), b.handler());
    CHECK(wait_until([&] { return a.size() == 20; }));
    CHECK(ca.is_active() && !cb.is_active());
    std::this_thread::sleep_for(300ms);
    CHECK(b.size() == 0);
    CHECK(ca.close(10s));
    CHECK(wait_until([&] { return b.size() == 5; }));
    CHECK(cb.is_active());
    std::this_thread::sleep_for(300ms);
    {
        std::lock_guard<std::mutex> g(b.m);
        CHECK(b.offsets.size() == 5 && !b.offsets.empty() && b.offsets.front() == 15 && b.bodies.back() == body_of(19));
    }
    {
        std::lock_guard<std::mutex> g(um);
        CHECK(updates.size() >= 2 && updates.front().who == 'a' && updates.front().is_active);
        // b's activation (a may also hear its step-down)
        CHECK(std::any_of(updates.begin(), updates.end(), [&](const update& u) {
            return u.who == 'b' && u.is_active && u.stream == stream;
        }));
    }
    cb.reset();
    ca.reset();
    conn.delete_stream(stream);
}

// Super streams: a key extractor lambda reads the routing key from an application property,
// a routing lambda picks the partition itself; a super consumer receives every message from
// the partition hash routing chose.
void test_super_streams(const rmqs::Connection& conn) {
    const std::string name = unique_name("super");
    conn.create_super_stream(name, 3);
    const std::vector<std::string> parts = conn.super_stream_partitions(name);
    CHECK(parts.size() == 3);
    std::array<std::atomic<int>, 3> confirmed{};
    std::atomic<int> bad{0};
    rmqs::Config pcfg;
    pcfg.set_key_extractor([](const rmqs::routing_request& r) -> std::optional<std::string_view> {
        const std::optional<rmqs::value> key = r.app_property("key");
        if (!key) {
            return std::nullopt;
        }
        return key->as_string();
    });
    std::array<int, 3> expected{};
    {
        rmqs::SuperProducer sp = conn.create_super_producer(name, pcfg, [&](rmqs::strided_span<rmqs::super_confirm> cs) {
            for (const rmqs::super_confirm& c : cs) {
                if (c.status != RMQS_OK || c.partition >= 3) {
                    bad++;
                } else {
                    confirmed[c.partition]++;
                }
            }
        });
        CHECK(sp.partition_count() == 3 && sp.partition(1) == parts[1]);
        rmqs::MessageBuilder m;
        for (std::size_t i = 0; i < 30; i++) {
            const std::string key = "key-" + std::to_string(i);
            m.reset().body(body_of(i)).app_property("key", rmqs::value::string(key));
            const rmqs::super_send_result r = sp.send(std::nullopt, m, i);
            CHECK(r.partition == rmqs::super_stream_partition(key, 3));
            expected[r.partition]++;
        }
        const rmqs::super_send_result r = sp.send(std::string_view("explicit"), rmqs::bytes("explicit key"));
        CHECK(r.partition == rmqs::super_stream_partition("explicit", 3));
        expected[r.partition]++;
        CHECK_THROWS_STATUS(sp.send(std::nullopt, m.reset().body("no key")), RMQS_ERR_INVALID_ARGUMENT);
        // batches: bodies with their keys, messages with the key extractor
        const std::vector<std::string> keys{"batch-0", "batch-1"};
        sp.send_batch(keys, std::vector<rmqs::bytes>{"b0", "b1"});
        rmqs::MessageBuilder m2;
        m.reset().body("m0").app_property("key", rmqs::value::string("batch-0"));
        m2.body("m1").app_property("key", rmqs::value::string("batch-1"));
        const rmqs::MessageBuilder* msgs[] = {&m, &m2};
        sp.send_batch({}, rmqs::span<const rmqs::MessageBuilder* const>(msgs, 2));
        for (const std::string& k : keys) {
            expected[rmqs::super_stream_partition(k, 3)] += 2;
        }
        try {
            sp.send_batch(std::vector<std::string>{"only one"}, std::vector<rmqs::bytes>{"a", "b"});
            CHECK(false);
        } catch (const rmqs::batch_error& e) {
            CHECK(e.status() == RMQS_ERR_INVALID_ARGUMENT && e.accepted() == 0);
        }
        CHECK(sp.flush(10s));
        CHECK(sp.stats().confirmed == 35);
    }
    CHECK(bad == 0);
    for (std::size_t i = 0; i < 3; i++) {
        CHECK(confirmed[i] == expected[i]);
    }
    {
        rmqs::Config rcfg;
        rcfg.set_routing([](const rmqs::routing_request& r, rmqs::span<std::uint32_t> out) -> std::size_t {
            if (r.routing_key() != "to-two" || r.partition_count() != 3) {
                return 0;
            }
            out[0] = 2;
            return 1;
        });
        rmqs::SuperProducer routed = conn.create_super_producer(name, rcfg);
        CHECK(routed.send(std::string_view("to-two"), rmqs::bytes("routed")).partition == 2);
        CHECK_THROWS_STATUS(routed.send(std::string_view("elsewhere"), rmqs::bytes("x")), RMQS_ERR_INVALID_ARGUMENT);
        CHECK(routed.flush(10s));
        expected[2]++;
    }
    received got;
    rmqs::SuperConsumer sc = conn.create_super_consumer(name, rmqs::Config{{"offset", "first"}}, got.handler());
    CHECK(sc.partition_count() == 3 && sc.partition(0) == parts[0]);
    CHECK(wait_until([&] { return got.size() >= 36; }));
    std::this_thread::sleep_for(200ms);
    {
        std::lock_guard<std::mutex> g(got.m);
        CHECK(got.bodies.size() == 36);
        std::array<int, 3> per{};
        for (std::size_t i = 0; i < got.bodies.size(); i++) {
            if (got.partitions[i] < 3) {
                per[got.partitions[i]]++;
            }
            for (std::size_t k = 0; k < 30; k++) {
                if (got.bodies[i] == body_of(k)) {
                    CHECK(got.partitions[i] == rmqs::super_stream_partition("key-" + std::to_string(k), 3));
                }
            }
        }
        CHECK(per == expected);
    }
    CHECK(sc.stats().messages == 36);
    CHECK(sc.is_active(0) && sc.is_active(2));
    sc.reset();
    conn.delete_super_stream(name);
}

// SuperProducer::send_body: one builder's sections with 24 bodies, each routed by the key the
// key extractor reads from the body sent (up to its ':'); each partition read back has exactly
// the messages routed there, with the builder's sections and their own bodies, in order; the
// builder's own body is still there; a body without a key and a closed super producer are
// refused.
void test_super_send_body(const rmqs::Connection& conn) {
    const std::string name = unique_name("super-body");
    conn.create_super_stream(name, 3);
    const std::vector<std::string> parts = conn.super_stream_partitions(name);
    CHECK(parts.size() == 3);
    rmqs::Config pcfg;
    pcfg.set_key_extractor([](const rmqs::routing_request& r) -> std::optional<std::string_view> {
        const std::string_view body = r.body().str();
        const std::size_t colon = body.find(':');
        if (!r.has_message() || colon == std::string_view::npos) {
            return std::nullopt;
        }
        return body.substr(0, colon);
    });
    rmqs::MessageBuilder m;
    m.add_body_section("own-1").add_body_section("own-2").subject("every body").app_property(
        "kind", rmqs::value::string("templated"));
    m.footer("x-footer", rmqs::value::binary("foot"));
    std::array<std::vector<std::string>, 3> want;
    {
        rmqs::SuperProducer sp = conn.create_super_producer(name, pcfg);
        for (std::size_t i = 0; i < 24; i++) {
            const std::string key = "customer-" + std::to_string(i % 8);
            const std::string body = key + ":" + body_of(i);
            const rmqs::super_send_result r = sp.send_body(std::nullopt, m, body, i);
            CHECK(r.partition == rmqs::super_stream_partition(key, 3));
            if (r.partition < 3) {
                CHECK(r.publishing_id == want[r.partition].size());
                want[r.partition].push_back(body);
            }
        }
        const rmqs::super_send_result r = sp.send_body(std::string_view("explicit"), m, "no key in it");
        CHECK(r.partition == rmqs::super_stream_partition("explicit", 3));
        want[r.partition].push_back("no key in it");
        CHECK_THROWS_STATUS(sp.send_body(std::nullopt, m, "no key"), RMQS_ERR_INVALID_ARGUMENT);
        CHECK_THROWS_STATUS(sp.send_body(std::nullopt, m, "k:x", 0, RMQS_SEND_RAW), RMQS_ERR_INVALID_ARGUMENT);
        // The builder itself is unchanged: sent whole, its own two sections go.
        const rmqs::super_send_result own = sp.send(std::string_view("own"), m);
        want[own.partition].push_back("own-1|own-2");
        CHECK(sp.flush(10s));
        CHECK(sp.stats().confirmed == 26);
        CHECK(sp.close(10s));
        CHECK_THROWS_STATUS(sp.send_body(std::nullopt, m, "k:x"), RMQS_ERR_CLOSED);
    }
    for (std::size_t k = 0; k < 3; k++) {
        CHECK(!want[k].empty());
        rmqs::Queue queue;
        rmqs::Consumer consumer = conn.create_consumer(parts[k], rmqs::Config{{"offset", "first"}}, queue);
        std::vector<rmqs::Message> got;
        std::vector<rmqs::Chunk> keep = collect(queue, want[k].size() + 1, got);  // +1: one too many shows
        CHECK(got.size() == want[k].size());
        for (std::size_t i = 0; i < got.size() && i < want[k].size(); i++) {
            const rmqs::Message& r = got[i];
            CHECK(r.offset() == i);
            if (want[k][i] == "own-1|own-2") {
                CHECK(r.body_count() == 2 && r.body_section(0) == std::optional<rmqs::value>(rmqs::value::binary("own-1")) &&
                      r.body_section(1) == std::optional<rmqs::value>(rmqs::value::binary("own-2")));
            } else {
                CHECK(r.body_kind() == rmqs::body_type::data && r.body_count() == 1 && r.body() == want[k][i]);
            }
            CHECK(r.property_value(rmqs::property::subject) ==
                  std::optional<rmqs::value>(rmqs::value::string("every body")));
            CHECK(r.app_property_value("kind") == std::optional<rmqs::value>(rmqs::value::string("templated")));
            CHECK(r.footer("x-footer") == std::optional<rmqs::value>(rmqs::value::binary("foot")));
        }
    }
    conn.delete_super_stream(name);
}

// Two super consumers of one single-active-consumer group: each partition is active in
// exactly one of them, and the consumer-update events come through the queue.
void test_super_stream_sac(const rmqs::Connection& conn) {
    const std::string name = unique_name("super-sac");
    const std::string group = unique_name("super-sac-group");
    conn.create_super_stream(name, 3);
    const rmqs::Config cfg{{"name", group}, {"single_active_consumer", "true"}, {"offset", "first"}};
    rmqs::Queue queue;
    rmqs::SuperConsumer one = conn.create_super_consumer(name, cfg, queue, 1);
    rmqs::SuperConsumer two = conn.create_super_consumer(name, cfg, queue, 2);
    std::size_t activations = 0;
    const auto deadline = std::chrono::steady_clock::now() + 15s;
    while (activations < 3 && std::chrono::steady_clock::now() < deadline) {
        rmqs::Event ev = queue.poll(200ms);
        if (ev && ev.type() == rmqs::event_type::consumer_update) {
            const std::optional<rmqs::consumer_update> u = ev.update();
            CHECK(u.has_value() && ev.partition().has_value() && ev.source() == rmqs::event_source::super_consumer);
            if (u && u->is_active) {
                activations++;
                CHECK(ev.reply(rmqs::offset_spec::first()));
            }
        }
    }
    CHECK(activations == 3);
    CHECK(wait_until([&] {
        for (std::size_t i = 0; i < 3; i++) {
            if (one.is_active(i) == two.is_active(i)) {
                return false;
            }
        }
        return true;
    }));
    one.reset();
    two.reset();
    conn.delete_super_stream(name);
}

// A TCP proxy in front of the broker that cuts every connection on reset(): the network fault
// of the state-event test (the shared broker is never restarted).
class tcp_proxy {
public:
    tcp_proxy(std::string host, std::string port) : host_(std::move(host)), port_(std::move(port)) {
        listen_fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t len = sizeof addr;
        if (listen_fd_ < 0 || ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
            ::listen(listen_fd_, 64) != 0 || ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0 ||
            ::pipe(wake_) != 0) {
            throw std::runtime_error("tcp_proxy: cannot listen");
        }
        listen_port_ = ntohs(addr.sin_port);
        acceptor_ = std::thread([this] { accept_loop(); });
    }
    tcp_proxy(const tcp_proxy&) = delete;
    tcp_proxy& operator=(const tcp_proxy&) = delete;
    ~tcp_proxy() {
        (void)!::write(wake_[1], "x", 1);
        acceptor_.join();
        reset();
        for (std::thread& t : pumps_) {
            t.join();
        }
        ::close(listen_fd_);
        ::close(wake_[0]);
        ::close(wake_[1]);
    }

    std::string uri() const { return "rabbitmq-stream://guest:guest@127.0.0.1:" + std::to_string(listen_port_) + "/%2f"; }

    // Cuts every connection open now; returns how many.
    std::size_t reset() {
        std::lock_guard<std::mutex> g(mu_);
        for (const auto& p : open_) {
            ::shutdown(p.first, SHUT_RDWR);
            ::shutdown(p.second, SHUT_RDWR);
        }
        return open_.size();
    }

private:
    int connect_target() const {
        addrinfo hints{};
        hints.ai_socktype = SOCK_STREAM;
        addrinfo* res = nullptr;
        if (::getaddrinfo(host_.c_str(), port_.c_str(), &hints, &res) != 0) {
            return -1;
        }
        int fd = -1;
        for (addrinfo* a = res; a != nullptr && fd < 0; a = a->ai_next) {
            fd = ::socket(a->ai_family, a->ai_socktype, a->ai_protocol);
            if (fd >= 0 && ::connect(fd, a->ai_addr, a->ai_addrlen) != 0) {
                ::close(fd);
                fd = -1;
            }
        }
        ::freeaddrinfo(res);
        return fd;
    }

    void accept_loop() {
        for (;;) {
            pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {wake_[0], POLLIN, 0}};
            if (::poll(fds, 2, -1) < 0 || (fds[1].revents & POLLIN) != 0) {
                return;
            }
            const int client = ::accept(listen_fd_, nullptr, nullptr);
            if (client < 0) {
                continue;
            }
            const int server = connect_target();
            if (server < 0) {
                ::close(client);
                continue;
            }
            std::lock_guard<std::mutex> g(mu_);
            open_.emplace_back(client, server);
            pumps_.emplace_back([this, client, server] { pump(client, server); });
        }
    }

    // Copies both ways until either side ends, then forgets and closes the pair.
    void pump(int a, int b) {
        std::vector<char> buf(65536);
        pollfd fds[2] = {{a, POLLIN, 0}, {b, POLLIN, 0}};
        bool open = true;
        while (open && ::poll(fds, 2, -1) >= 0) {
            for (int i = 0; i < 2 && open; i++) {
                if (fds[i].revents == 0) {
                    continue;
                }
                const ssize_t n = ::recv(fds[i].fd, buf.data(), buf.size(), 0);
                if (n <= 0) {
                    open = false;
                    break;
                }
                for (ssize_t done = 0; done < n;) {
                    const ssize_t w = ::send(fds[1 - i].fd, buf.data() + done, static_cast<std::size_t>(n - done),
                                             MSG_NOSIGNAL);
                    if (w <= 0) {
                        open = false;
                        break;
                    }
                    done += w;
                }
            }
        }
        std::lock_guard<std::mutex> g(mu_);
        for (auto it = open_.begin(); it != open_.end(); ++it) {
            if (it->first == a) {
                open_.erase(it);
                break;
            }
        }
        ::shutdown(a, SHUT_RDWR);
        ::shutdown(b, SHUT_RDWR);
        ::close(a);
        ::close(b);
    }

    std::string host_;
    std::string port_;
    int listen_fd_ = -1;
    int wake_[2] = {-1, -1};
    std::uint16_t listen_port_ = 0;
    std::mutex mu_;
    std::vector<std::pair<int, int>> open_;
    std::vector<std::thread> pumps_;
    std::thread acceptor_;
};

// host and port of the first seed host of a URI (default port 5552).
std::pair<std::string, std::string> broker_host_port(const std::string& uri) {
    std::string rest = uri.substr(uri.find("://") + 3);
    rest = rest.substr(rest.rfind('@') == std::string::npos ? 0 : rest.rfind('@') + 1);
    rest = rest.substr(0, rest.find_first_of("/,?"));
    const std::size_t colon = rest.rfind(':');
    if (colon == std::string::npos) {
        return {rest, "5552"};
    }
    return {rest.substr(0, colon), rest.substr(colon + 1)};
}

// State events through lambdas on a lost connection: a named producer and a consumer behind a
// proxy that cuts their connections report RECOVERING then RECOVERED, every message is
// confirmed once and consumed exactly once, in order.
void test_state_events_on_connection_reset(const std::string& uri) {
    rmqs::Connection admin = rmqs::Connection::open(uri);
    const std::string stream = unique_name("recovery");
    admin.create_stream(stream);
    const auto hp = broker_host_port(uri);
    tcp_proxy proxy(hp.first, hp.second);
    std::mutex m;
    std::vector<rmqs::state_change> pstates;
    std::vector<rmqs::state_change> cstates;
    std::vector<rmqs_status> causes;
    auto record = [&](std::vector<rmqs::state_change>& into) {
        return [&](const rmqs::state_change& c) {
            std::lock_guard<std::mutex> g(m);
            into.push_back(rmqs::state_change{c.state, c.status, std::string_view(), c.partition, c.tag, c.source});
            if (c.state == rmqs::state::recovering) {
                causes.push_back(c.status);
            }
        };
    };
    const std::size_t n = std::min<std::size_t>(n_messages(), 2000);
    {
        rmqs::Connection conn = rmqs::Connection::open(rmqs::Config{
            {"uri", proxy.uri()}, {"load_balancer", "true"}, {"recovery_initial_delay_ms", "100"}});
        rmqs::Config ccfg{{"offset", "first"}};
        ccfg.set_state_handler(record(cstates));
        rmqs::Config pcfg{{"name", unique_name("recovery-producer")}};
        pcfg.set_state_handler(record(pstates));
        received got;
        rmqs::Consumer consumer = conn.create_consumer(stream, ccfg, got.handler());
        std::mutex cm;
        std::vector<int> outcomes(n, 0);
        std::atomic<int> errors{0};
        rmqs::Producer producer = conn.create_producer(stream, pcfg, [&](rmqs::strided_span<rmqs::confirm> cs) {
            std::lock_guard<std::mutex> g(cm);
            for (const rmqs::confirm& c : cs) {
                if (c.status != RMQS_OK || c.tag >= n) {
                    errors++;
                } else {
                    outcomes[c.tag]++;
                }
            }
        });
        for (std::size_t i = 0; i < n; i++) {
            producer.send(body_of(i), i);
            if (i == n / 2) {
                CHECK(proxy.reset() >= 1);
            }
        }
        CHECK(producer.flush(60s));
        CHECK(errors == 0);
        {
            std::lock_guard<std::mutex> g(cm);
            CHECK(std::all_of(outcomes.begin(), outcomes.end(), [](int k) { return k == 1; }));
        }
        CHECK(wait_until([&] { return got.size() >= n; }, 60s));
        std::this_thread::sleep_for(300ms);
        {
            std::lock_guard<std::mutex> g(got.m);
            CHECK(got.offsets.size() == n);
            bool in_order = got.offsets.size() == n;
            for (std::size_t i = 0; in_order && i < n; i++) {
                in_order = got.offsets[i] == i && got.bodies[i] == body_of(i);
            }
            CHECK(in_order);
        }
        {
            std::lock_guard<std::mutex> g(m);
            for (const auto* states : {&pstates, &cstates}) {
                CHECK(!states->empty() && states->front().state == rmqs::state::recovering);
                CHECK(!states->empty() && states->back().state == rmqs::state::recovered);
            }
            CHECK(!pstates.empty() && pstates.front().source == rmqs::event_source::producer);
            CHECK(!cstates.empty() && cstates.front().source == rmqs::event_source::consumer);
            CHECK(!causes.empty() && std::all_of(causes.begin(), causes.end(), [](rmqs_status s) { return s != RMQS_OK; }));
        }
        CHECK(producer.stats().recoveries >= 1 && consumer.stats().recoveries >= 1);
    }
    admin.delete_stream(stream);
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
        run_test("dedup_named_producer", [&] { test_dedup_named_producer(conn); });
        run_test("offsets_store_query", [&] { test_offsets_store_query(conn); });
        run_test("message_every_section", [&] { test_message_every_section(conn); });
        run_test("filtering", [&] { test_filtering(conn); });
        run_test("single_active_consumer", [&] { test_single_active_consumer(conn); });
        run_test("super_streams", [&] { test_super_streams(conn); });
        run_test("super_send_body", [&] { test_super_send_body(conn); });
        run_test("super_stream_sac", [&] { test_super_stream_sac(conn); });
        conn.close(10s);
    });
    run_test("log_handler", [&] { test_log_handler(uri); });
    run_test("state_events_on_connection_reset", [&] { test_state_events_on_connection_reset(uri); });

    return report("test_cpp");
}
