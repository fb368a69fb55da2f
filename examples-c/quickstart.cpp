// quickstart.cpp: the quickstart through the C++17 wrapper, include/rmqstream.hpp.
//
// Creates a stream, publishes N messages (default 10,000) with a confirm lambda, consumes them
// back from the first offset with a chunk lambda, checks every offset and every body, deletes
// the stream. Errors are rmqs::error exceptions; exits 1 on any error or mismatch.
//
//   quickstart_cpp [-n N] [URI]
//
// URI defaults to $RMQS_TEST_URI, then rabbitmq-stream://guest:guest@localhost:5552/%2f.
#include <rmqstream.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <mutex>
#include <string>
#include <unistd.h>

namespace {

using namespace std::chrono_literals;

// The body of message i: its index and a varying-length tail, so that a shifted, truncated or
// swapped body is caught.
std::string make_body(std::uint64_t i) {
    static const std::string tail = "abcdefghijklmnopqrstuvwxyz0123456789-";
    return "quickstart message " + std::to_string(i) + " " + tail.substr(0, i % 37);
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// What the chunk lambda shares with main (it runs on a library dispatcher thread).
struct consumed_state {
    std::mutex lock;
    std::condition_variable done;
    std::uint64_t consumed = 0;
    std::uint64_t mismatches = 0;
    std::uint64_t next_offset = 0;  // only the dispatcher thread touches it
};

int run(const std::string& uri, std::uint64_t n) {
    const std::string stream = "quickstart-cpp-" + std::to_string(getpid()) + "-" +
                               std::to_string(std::chrono::system_clock::now().time_since_epoch().count());

    // 1. Connect and create the stream.
    rmqs::Connection conn = rmqs::Connection::open(uri);
    std::cout << "connected to RabbitMQ " << conn.server_version() << " (rmqstream " << rmqs::version()
              << ")\n";
    conn.create_stream(stream);
    std::cout << "created stream " << stream << "\n";

    // The stream is deleted on every way out, exceptions included.
    struct stream_guard {
        rmqs::Connection& conn;
        const std::string& name;
        ~stream_guard() {
            try {
                conn.delete_stream(name);
                std::cout << "deleted stream " << name << "\n";
            } catch (const rmqs::error& e) {
                std::cerr << "quickstart_cpp: delete stream: " << e.what() << " (" << e.name() << ")\n";
            }
        }
    } guard{conn, stream};

    // 2. Publish: sends return at once; confirms arrive in batches on a dispatcher thread.
    std::atomic<std::uint64_t> confirmed{0};
    std::atomic<std::uint64_t> refused{0};
    auto t0 = std::chrono::steady_clock::now();
    {
        rmqs::Producer producer =
            conn.create_producer(stream, [&](rmqs::strided_span<rmqs::confirm> confirms) {
                for (const rmqs::confirm& c : confirms) {
                    if (c.status == RMQS_OK) {
                        confirmed.fetch_add(1, std::memory_order_relaxed);
                    } else if (refused.fetch_add(1) < 5) {
                        std::cerr << "quickstart_cpp: message " << c.tag << ": " << rmqs::status_str(c.status)
                                  << "\n";
                    }
                }
            });
        for (std::uint64_t i = 0; i < n; i++) {
            producer.send(make_body(i), static_cast<std::size_t>(i));
        }
        // flush: every confirm lambda call has returned
        if (!producer.flush(60s)) {
            std::cerr << "quickstart_cpp: confirms still missing after 60 s\n";
            return 1;
        }
    }  // ~Producer: closed and freed; the lambda is destroyed exactly once
    const double publish_s = seconds_since(t0);
    std::printf("published %llu messages, %llu confirmed, in %.3f s: %.0f msg/s\n",
                static_cast<unsigned long long>(n), static_cast<unsigned long long>(confirmed.load()), publish_s,
                static_cast<double>(n) / publish_s);
    if (confirmed.load() != n) {
        std::cerr << "quickstart_cpp: " << n - confirmed.load() << " messages not confirmed\n";
        return 1;
    }

    // 3. Consume from the first offset: chunks arrive on a dispatcher thread, in order.
    consumed_state s;
    t0 = std::chrono::steady_clock::now();
    std::uint64_t consumed = 0;
    {
        rmqs::Consumer consumer =
            conn.create_consumer(stream, rmqs::Config{{"offset", "first"}}, [&](rmqs::ChunkRef chunk) {
                std::uint64_t bad = 0;
                for (rmqs::Message m : chunk) {
                    // A new stream: message k is at offset k.
                    const std::string want = make_body(m.offset());
                    if (m.offset() != s.next_offset || m.body() != want) {
                        if (s.mismatches + bad++ < 5) {
                            std::cerr << "quickstart_cpp: offset " << m.offset() << " (expected "
                                      << s.next_offset << "): body " << m.body().str().substr(0, 60) << "\n";
                        }
                    }
                    s.next_offset = m.offset() + 1;
                }
                std::lock_guard<std::mutex> lock(s.lock);
                s.mismatches += bad;
                s.consumed += chunk.size();
                if (s.consumed >= n) {
                    s.done.notify_one();
                }
            });
        std::unique_lock<std::mutex> lock(s.lock);
        s.done.wait_for(lock, 60s, [&] { return s.consumed >= n; });
        consumed = s.consumed;
        lock.unlock();
        consumer.close(10s);  // also rethrows an exception that escaped the lambda, if any
    }
    const double consume_s = seconds_since(t0);
    std::printf("consumed %llu messages in %.3f s: %.0f msg/s\n", static_cast<unsigned long long>(consumed),
                consume_s, static_cast<double>(consumed) / consume_s);
    if (consumed != n || s.mismatches != 0) {
        std::cerr << "quickstart_cpp: FAILED: " << consumed << " of " << n << " messages consumed, "
                  << s.mismatches << " mismatches\n";
        return 1;
    }
    std::cout << "all " << n << " bodies and offsets verified\n";
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    const char* env_uri = std::getenv("RMQS_TEST_URI");
    std::string uri = env_uri != nullptr ? env_uri : "rabbitmq-stream://guest:guest@localhost:5552/%2f";
    std::uint64_t n = 10000;
    int opt;
    while ((opt = getopt(argc, argv, "n:")) != -1) {
        if (opt != 'n' || (n = std::strtoull(optarg, nullptr, 10)) == 0) {
            std::cerr << "usage: quickstart_cpp [-n N] [URI]\n";
            return 2;
        }
    }
    if (optind < argc) {
        uri = argv[optind];
    }
    if (!rmqs::version_compatible()) {
        std::cerr << "quickstart_cpp: library " << rmqs::version() << " does not match the header\n";
        return 1;
    }

    int rc;
    try {
        rc = run(uri, n);
    } catch (const rmqs::error& e) {
        std::cerr << "quickstart_cpp: " << e.what() << " (" << e.name() << ", " << e.status() << ")\n";
        rc = 1;
    } catch (const std::exception& e) {
        std::cerr << "quickstart_cpp: " << e.what() << "\n";
        rc = 1;
    }
    std::cout << "quickstart_cpp: " << (rc == 0 ? "OK" : "FAILED") << "\n";
    return rc;
}
