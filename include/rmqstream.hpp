/*
 * rmqstream.hpp: a header-only C++17 wrapper over the C API of rmqstream (rmqstream.h).
 * SPDX-License-Identifier: Apache-2.0 OR MIT
 *
 * Everything here is inline over the C functions: link the same library (rmqstream::rmqstream
 * or rmqstream::static in CMake, `pkg-config rmqstream`) and compile as C++17 or later.
 *
 *   rmqs::Connection conn = rmqs::Connection::open("rabbitmq-stream://guest:guest@localhost:5552/%2f");
 *   conn.ensure_stream("orders");
 *   rmqs::Producer producer = conn.create_producer("orders", [](rmqs::strided_span<rmqs::confirm> cs) {
 *       for (const rmqs::confirm& c : cs) if (c.status != RMQS_OK) ...;
 *   });
 *   producer.send("hello", 0);
 *   if (!producer.flush(std::chrono::seconds(10))) ...;
 *   rmqs::Consumer consumer = conn.create_consumer("orders", rmqs::Config{{"offset", "first"}},
 *       [](rmqs::ChunkRef chunk) {
 *           for (rmqs::Message m : chunk) use(m.offset(), m.body().str());
 *       });
 *
 * Also: rmqs::MessageBuilder (an AMQP 1.0 message with every section, typed rmqs::value
 * values; Producer::send(msg), SuperProducer::send(key, msg)) and typed reads on Message
 * (property_value, app_property_value, header, annotation, footer, body_section);
 * SuperProducer / SuperConsumer (Connection::create_super_producer / create_super_consumer);
 * lambdas on Config for state changes, single-active-consumer updates, the post-filter, the
 * routing function and the key extractor.
 *
 * Handles
 *
 * - Connection, Config, Producer, Consumer, SuperProducer, SuperConsumer, MessageBuilder, Queue,
 *   Event, Chunk and Error each own one C object
 *   and free it exactly once, in their destructor (or reset()). They are move-only: a move
 *   leaves the source empty (get() == nullptr, operator bool false), and calls on an empty
 *   handle fail as the C function does for NULL (rmqs::error RMQS_ERR_INVALID_ARGUMENT, or a
 *   neutral value for accessors). get() exposes the C pointer for calls this header does not
 *   wrap; release() gives up ownership.
 * - ChunkRef and Message are borrowed views (copyable, never free anything): a ChunkRef handed
 *   to a chunk handler is valid until the handler returns, one from Event::chunk() until the
 *   Event is destroyed; a Message and every bytes/string_view obtained from it live as long as
 *   its chunk. ChunkRef::retain() returns a Chunk, which owns one reference (rmqs_chunk_retain)
 *   and gives it back in its destructor (rmqs_chunk_release); with the `on_release` credit
 *   policy the broker's credit for a chunk comes back once every Chunk for it is gone.
 * - Destruction order does not matter for safety (the C library closes producers and consumers
 *   whose connection goes first; their handles stay valid until freed), but the clean order is
 *   producers and consumers, then the connection, then queues.
 *
 * Errors: exceptions
 *
 * - C++17 has no std::expected, so failures are exceptions: rmqs::error (a std::runtime_error)
 *   carries the rmqs_status (status(), name()) and, as what(), the message of the C call's
 *   rmqs_error (or rmqs_status_str() for the few C functions that report no rmqs_error).
 *   rmqs::batch_error (an rmqs::error) adds how many messages of a batch were accepted.
 * - Outcomes that are expected rather than exceptional are return values, not exceptions:
 *   Producer::try_send() -> false when full, flush() / close() -> false on timeout,
 *   Connection::ensure_stream() -> false when the stream existed, query_offset() -> nullopt when
 *   nothing is stored, Queue::poll() -> an empty Event on timeout.
 * - Allocation failures throw std::bad_alloc. Strings with an embedded NUL byte (which the C API
 *   would silently truncate) are refused with rmqs::error RMQS_ERR_INVALID_ARGUMENT.
 * - Destructors, moves and the accessors marked noexcept never throw.
 *
 * Callbacks: lambdas
 *
 * - A confirm handler (void(rmqs::strided_span<rmqs::confirm>)), a chunk handler
 *   (void(rmqs::ChunkRef)) or a log handler (void(rmqs::log_level, std::string_view target,
 *   std::string_view message)) is moved into a std::function inside a heap object that is
 *   passed to the C API as user_data; the library's user_data_free callback deletes it exactly
 *   once, after the last call (for a producer or consumer: inside its destructor, or on a
 *   library background thread when it is destroyed from a callback; for a log handler: when
 *   neither the Config nor any Connection opened with it holds it any more). If creation fails,
 *   the wrapper deletes it itself. So whatever the lambda captured is destroyed exactly once,
 *   possibly on a library thread. (std::function needs a copyable lambda: capture move-only
 *   state through a std::shared_ptr.)
 * - Handlers run on library threads (the connection's rmqs-dispatch threads for confirms and
 *   chunks, a handler never concurrently with itself; any thread for logs), exactly as the C
 *   callbacks: synchronise what they share with the application. Calls that would block there
 *   (management calls, flush, close with a timeout, create_*) throw rmqs::error
 *   RMQS_ERR_WOULD_DEADLOCK (Connection::store_offset() included). Consumer::store_offset() and
 *   Consumer::credit() do not block and work there: a chunk handler reaches its Consumer
 *   through a pointer it captures and the application publishes once create_consumer()
 *   returned (chunks may arrive before that).
 * - No exception ever crosses into the C library. An exception escaping a confirm or chunk
 *   handler is caught by the trampoline and FAILS THE OBJECT, the way an exception leaves a
 *   loop: the handler is not called again, the producer or consumer is closed in the
 *   background (rmqs_*_close with timeout 0: a producer's unconfirmed messages complete with
 *   RMQS_ERR_CLOSED, a consumer stops receiving), and the exception (the first one, unchanged
 *   type) is rethrown once, on the application's thread, by the next call on that Producer or
 *   Consumer (check() does only that; close() closes first, then rethrows; flush() also checks
 *   after waiting). Later calls fail as on any closed object (rmqs::error RMQS_ERR_CLOSED). The
 *   destructor cannot throw: an exception not rethrown by then is discarded, so call check()
 *   or close() before destruction to observe it. Never std::terminate.
 * - A log handler has no object to rethrow on (it runs on any thread, for any connection
 *   opened with the config): an exception escaping it is caught and dropped, with the line.
 *
 * Threading: as the C API. Connection, Producer, Consumer and Queue calls may run on several
 * threads at once; moving, assigning, reset() and destruction must not race with other calls on
 * the same object. Config, Event and Error belong to one thread at a time. Chunk, ChunkRef and
 * Message are immutable views, readable from several threads.
 *
 * Timeouts are std::chrono::milliseconds (rmqs::no_timeout = wait without limit; zero = do not
 * wait), clamped to the C API's int32_t.
 */
#ifndef RMQSTREAM_HPP
#define RMQSTREAM_HPP

#if !defined(__cplusplus) || (__cplusplus < 201703L && !(defined(_MSVC_LANG) && _MSVC_LANG >= 201703L))
#error "rmqstream.hpp needs C++17 or later"
#endif

#include "rmqstream.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <functional>
#include <initializer_list>
#include <iterator>
#include <limits>
#include <memory>
#include <mutex>
#include <new>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace rmqs {

class Chunk;
class ChunkRef;
class Connection;
class Consumer;
class Producer;
class Queue;
class SuperConsumer;
class SuperProducer;

// ---------------------------------------------------------------------------------------------
// Versions and statuses

/** The loaded library's version, e.g. "0.1.0". */
inline std::string_view version() noexcept { return rmqs_version(); }

/** The loaded library's version number (encoded like RMQS_VERSION_NUMBER). */
inline std::uint32_t version_number() noexcept { return rmqs_version_number(); }

/**
 * Whether the loaded library can serve this header: same major and minor version (0.x minor
 * versions may break the API). Compare at start-up to catch a mismatched shared library.
 */
inline bool version_compatible() noexcept {
    return (rmqs_version_number() >> 16) == (static_cast<std::uint32_t>(RMQS_VERSION_NUMBER) >> 16);
}

/** "RMQS_ERR_TIMEOUT" for RMQS_ERR_TIMEOUT; "RMQS_UNKNOWN" for values this version lacks. */
inline const char* status_name(rmqs_status status) noexcept { return rmqs_status_name(status); }

/** "timed out" for RMQS_ERR_TIMEOUT; "unknown status" for values this version lacks. */
inline const char* status_str(rmqs_status status) noexcept { return rmqs_status_str(status); }

// ---------------------------------------------------------------------------------------------
// Exceptions

/**
 * A failed call: its status (RMQS_ERR_* < 0 from the library, > 0 from the broker) and, as
 * what(), the message of the C call's rmqs_error.
 */
class error : public std::runtime_error {
public:
    error(rmqs_status status, const std::string& message)
        : std::runtime_error(message), status_(status) {}
    error(rmqs_status status, const char* message)
        : std::runtime_error(message), status_(status) {}
    /** With rmqs_status_str(status) as the message. */
    explicit error(rmqs_status status) : error(status, rmqs_status_str(status)) {}

    /** The status the C call returned. */
    rmqs_status status() const noexcept { return status_; }
    /** Its macro name, e.g. "RMQS_ERR_STREAM_DOES_NOT_EXIST". */
    const char* name() const noexcept { return rmqs_status_name(status_); }
    /** True for a response code sent by the broker (status > 0). */
    bool from_broker() const noexcept { return status_ > 0; }

private:
    rmqs_status status_;
};

/** A batch send stopped early: accepted() messages (a prefix of the batch) were accepted. */
class batch_error : public error {
public:
    batch_error(rmqs_status status, const std::string& message, std::size_t accepted)
        : error(status, message), accepted_(accepted) {}

    /** Messages accepted before the failure; each gets its confirm. */
    std::size_t accepted() const noexcept { return accepted_; }

private:
    std::size_t accepted_;
};

// ---------------------------------------------------------------------------------------------
// Error: owns an rmqs_error (the detail of a failed C call)

/**
 * Owns one rmqs_error. The wrapper uses it for each call (pass out() as the C function's err
 * argument, then raise()); useful directly when calling the C API through get() pointers.
 */
class Error {
public:
    Error() noexcept = default;
    /** Adopts `e` (freed by the destructor). */
    explicit Error(rmqs_error* e) noexcept : p_(e) {}
    Error(const Error&) = delete;
    Error& operator=(const Error&) = delete;
    Error(Error&& o) noexcept : p_(o.release()) {}
    Error& operator=(Error&& o) noexcept {
        if (this != &o) {
            reset(o.release());
        }
        return *this;
    }
    ~Error() { reset(); }

    /** Frees what it held and returns the address for a C call's `rmqs_error **err`. */
    rmqs_error** out() noexcept {
        reset();
        return &p_;
    }
    /** The status of the failed call; RMQS_OK when empty. */
    rmqs_status status() const noexcept { return rmqs_error_status(p_); }
    /** The message (never empty for a held error); "" when empty. */
    const char* message() const noexcept { return rmqs_error_message(p_); }
    explicit operator bool() const noexcept { return p_ != nullptr; }
    rmqs_error* get() const noexcept { return p_; }
    rmqs_error* release() noexcept {
        rmqs_error* e = p_;
        p_ = nullptr;
        return e;
    }
    void reset(rmqs_error* e = nullptr) noexcept {
        if (p_ != nullptr) {
            rmqs_error_free(p_);
        }
        p_ = e;
    }
    /** Throws rmqs::error with `status` and the held message (or rmqs_status_str(status)). */
    [[noreturn]] void raise(rmqs_status status) const {
        if (p_ != nullptr) {
            throw error(status, rmqs_error_message(p_));
        }
        throw error(status);
    }

private:
    rmqs_error* p_ = nullptr;
};

// ---------------------------------------------------------------------------------------------
// Small vocabulary types

/** A read-only or mutable view of contiguous T (the C++20 std::span subset this API needs). */
template <class T>
class span {
public:
    using element_type = T;
    using value_type = std::remove_cv_t<T>;
    using size_type = std::size_t;
    using pointer = T*;
    using reference = T&;
    using iterator = T*;

    constexpr span() noexcept = default;
    constexpr span(T* data, std::size_t size) noexcept : data_(data), size_(size) {}
    template <std::size_t N>
    constexpr span(T (&array)[N]) noexcept : data_(array), size_(N) {}
    /** Any contiguous container whose data() converts to T* (vector, array, string, span). */
    template <class C,
              std::enable_if_t<!std::is_same_v<std::remove_cv_t<std::remove_reference_t<C>>, span> &&
                                   std::is_convertible_v<decltype(std::declval<C&>().data()), T*>,
                               int> = 0>
    constexpr span(C&& c) noexcept(noexcept(c.data()) && noexcept(c.size()))
        : data_(c.data()), size_(static_cast<std::size_t>(c.size())) {}

    constexpr T* data() const noexcept { return data_; }
    constexpr std::size_t size() const noexcept { return size_; }
    constexpr bool empty() const noexcept { return size_ == 0; }
    constexpr T* begin() const noexcept { return data_; }
    constexpr T* end() const noexcept { return data_ + size_; }
    constexpr T& operator[](std::size_t i) const noexcept { return data_[i]; }
    constexpr span subspan(std::size_t offset, std::size_t count) const noexcept {
        return span(data_ + offset, count);
    }

private:
    T* data_ = nullptr;
    std::size_t size_ = 0;
};

/**
 * A read-only view of n T laid out `stride` bytes apart: the confirm arrays, whose structs may
 * grow in later library versions (so the stride comes from the library, not from sizeof).
 */
template <class T>
class strided_span {
public:
    class iterator {
    public:
        using iterator_category = std::forward_iterator_tag;
        using value_type = T;
        using difference_type = std::ptrdiff_t;
        using pointer = const T*;
        using reference = const T&;

        iterator(const unsigned char* p, std::size_t stride) noexcept : p_(p), stride_(stride) {}
        const T& operator*() const noexcept { return *reinterpret_cast<const T*>(p_); }
        const T* operator->() const noexcept { return reinterpret_cast<const T*>(p_); }
        iterator& operator++() noexcept {
            p_ += stride_;
            return *this;
        }
        iterator operator++(int) noexcept {
            iterator old = *this;
            p_ += stride_;
            return old;
        }
        bool operator==(const iterator& o) const noexcept { return p_ == o.p_; }
        bool operator!=(const iterator& o) const noexcept { return p_ != o.p_; }

    private:
        const unsigned char* p_;
        std::size_t stride_;
    };

    strided_span() noexcept = default;
    strided_span(const T* data, std::size_t size, std::size_t stride) noexcept
        : data_(reinterpret_cast<const unsigned char*>(data)), size_(data == nullptr ? 0 : size),
          stride_(stride) {}

    std::size_t size() const noexcept { return size_; }
    bool empty() const noexcept { return size_ == 0; }
    const T& operator[](std::size_t i) const noexcept {
        return *reinterpret_cast<const T*>(data_ + i * stride_);
    }
    iterator begin() const noexcept { return iterator(data_, stride_); }
    iterator end() const noexcept { return iterator(data_ + size_ * stride_, stride_); }

private:
    const unsigned char* data_ = nullptr;
    std::size_t size_ = 0;
    std::size_t stride_ = sizeof(T);
};

namespace detail {

template <class T, class = void>
struct is_byte_sized : std::false_type {};
template <class T>
struct is_byte_sized<T, std::enable_if_t<!std::is_void_v<T> && sizeof(T) == 1 &&
                                         std::is_trivially_copyable_v<T>>> : std::true_type {};

template <class C, class = void>
struct is_byte_container : std::false_type {};
template <class C>
struct is_byte_container<C, std::void_t<decltype(std::declval<const C&>().data()),
                                        decltype(std::declval<const C&>().size())>>
    : std::bool_constant<
          std::is_pointer_v<decltype(std::declval<const C&>().data())> &&
          is_byte_sized<std::remove_pointer_t<decltype(std::declval<const C&>().data())>>::value> {};

}  // namespace detail

/**
 * A borrowed byte range (pointer + size): message bodies in and out. Converts implicitly from
 * std::string, std::string_view, std::vector<uint8_t>/<char>/<std::byte>, std::array of bytes,
 * a NUL-terminated const char* (without the NUL) or (pointer, size). Does not own: the bytes
 * must outlive it (a send copies them; a consumed body lives as long as its chunk).
 */
class bytes {
public:
    constexpr bytes() noexcept = default;
    bytes(const void* data, std::size_t size) noexcept
        : data_(static_cast<const std::uint8_t*>(data)), size_(data == nullptr ? 0 : size) {}
    /** The characters of a NUL-terminated string, without the NUL; NULL gives an empty range. */
    bytes(const char* s) noexcept
        : data_(reinterpret_cast<const std::uint8_t*>(s)), size_(s == nullptr ? 0 : std::strlen(s)) {}
    template <class C, std::enable_if_t<detail::is_byte_container<C>::value &&
                                            !std::is_same_v<C, bytes>,
                                        int> = 0>
    bytes(const C& c) noexcept
        : data_(reinterpret_cast<const std::uint8_t*>(c.data())),
          size_(static_cast<std::size_t>(c.size())) {}

    constexpr const std::uint8_t* data() const noexcept { return data_; }
    constexpr std::size_t size() const noexcept { return size_; }
    constexpr bool empty() const noexcept { return size_ == 0; }
    constexpr const std::uint8_t* begin() const noexcept { return data_; }
    constexpr const std::uint8_t* end() const noexcept { return data_ + size_; }
    constexpr std::uint8_t operator[](std::size_t i) const noexcept { return data_[i]; }
    /** The same bytes as characters (no copy). */
    std::string_view str() const noexcept {
        return size_ == 0 ? std::string_view() : std::string_view(reinterpret_cast<const char*>(data_), size_);
    }
    /** Copies. */
    std::string to_string() const { return std::string(str()); }
    /** Copies. */
    std::vector<std::uint8_t> to_vector() const { return std::vector<std::uint8_t>(begin(), end()); }

    /** Content equality. */
    friend bool operator==(bytes a, bytes b) noexcept {
        return a.size_ == b.size_ && (a.size_ == 0 || std::memcmp(a.data_, b.data_, a.size_) == 0);
    }
    friend bool operator!=(bytes a, bytes b) noexcept { return !(a == b); }

private:
    const std::uint8_t* data_ = nullptr;
    std::size_t size_ = 0;
};

/** Wait without limit (a negative timeout). */
inline constexpr std::chrono::milliseconds no_timeout{-1};

/** Send flags: the body as is, not wrapped in an AMQP 1.0 message (see RMQS_SEND_RAW). */
inline constexpr std::uint32_t send_raw = RMQS_SEND_RAW;
/** Send flags: RMQS_ERR_QUEUE_FULL instead of waiting when max_in_flight are unconfirmed. */
inline constexpr std::uint32_t send_no_block = RMQS_SEND_NO_BLOCK;

/** The outcome of one sent message: publishing_id, tag, status (RMQS_OK = stored). */
using confirm = rmqs_confirm;
using stream_statistics = rmqs_stream_statistics;
using chunk_header = rmqs_chunk_header_info;
using connection_statistics = rmqs_connection_statistics;
using producer_statistics = rmqs_producer_statistics;
using consumer_statistics = rmqs_consumer_statistics;
/** The outcome of one message of a super producer: a confirm and its partition's index. */
using super_confirm = rmqs_super_confirm;

/** Log levels (RMQS_LOG_*). */
enum class log_level : std::int32_t {
    error = RMQS_LOG_ERROR,
    warn = RMQS_LOG_WARN,
    info = RMQS_LOG_INFO,
    debug = RMQS_LOG_DEBUG,
    trace = RMQS_LOG_TRACE,
};

/** Event kinds (rmqs_event_type_code); later library versions may add values. */
enum class event_type : std::int32_t {
    none = 0,
    chunk = RMQS_EVENT_CHUNK,
    confirms = RMQS_EVENT_CONFIRMS,
    state = RMQS_EVENT_STATE,
    error = RMQS_EVENT_ERROR,
    super_confirms = RMQS_EVENT_SUPER_CONFIRMS,
    consumer_update = RMQS_EVENT_CONSUMER_UPDATE,
};

/** Which kind of object sent an event. */
enum class event_source : std::int32_t {
    none = 0,
    producer = RMQS_SOURCE_PRODUCER,
    consumer = RMQS_SOURCE_CONSUMER,
    super_producer = RMQS_SOURCE_SUPER_PRODUCER,
    super_consumer = RMQS_SOURCE_SUPER_CONSUMER,
};

/** Fields of an AMQP 1.0 properties section (rmqs_property_code). */
enum class property : std::int32_t {
    message_id = RMQS_PROP_MESSAGE_ID,
    user_id = RMQS_PROP_USER_ID,
    to = RMQS_PROP_TO,
    subject = RMQS_PROP_SUBJECT,
    reply_to = RMQS_PROP_REPLY_TO,
    correlation_id = RMQS_PROP_CORRELATION_ID,
    content_type = RMQS_PROP_CONTENT_TYPE,
    content_encoding = RMQS_PROP_CONTENT_ENCODING,
    absolute_expiry_time = RMQS_PROP_ABSOLUTE_EXPIRY_TIME,
    creation_time = RMQS_PROP_CREATION_TIME,
    group_id = RMQS_PROP_GROUP_ID,
    group_sequence = RMQS_PROP_GROUP_SEQUENCE,
    reply_to_group_id = RMQS_PROP_REPLY_TO_GROUP_ID,
};

/** A stream member's advertised address. */
struct endpoint {
    std::string host;
    std::uint16_t port = 0;
};

/** Where a stream lives (a copy of rmqs_metadata). */
struct stream_metadata {
    /** Absent when the stream has no leader now. */
    std::optional<endpoint> leader;
    std::vector<endpoint> replicas;
};

/** Options of Producer::send(body, options) (rmqs_producer_send_ex). */
struct send_options {
    /** Returned in the message's confirm. */
    std::size_t tag = 0;
    /** send_raw, send_no_block. */
    std::uint32_t flags = 0;
    /** Filter value for broker-side filtering (RabbitMQ 3.13+). */
    std::optional<std::string_view> filter_value;
    /** An explicit publishing id, above every id used before. */
    std::optional<std::uint64_t> publishing_id;
};

namespace detail {

/** A NUL-terminated copy of a string_view for a C call (on the stack when short). */
class cstr {
public:
    cstr(std::string_view s, const char* what) {
        if (s.find('\0') != std::string_view::npos) {
            throw error(RMQS_ERR_INVALID_ARGUMENT, std::string(what) + " contains a NUL byte");
        }
        if (s.size() < sizeof buf_) {
            if (!s.empty()) {
                std::memcpy(buf_, s.data(), s.size());
            }
            buf_[s.size()] = '\0';
            p_ = buf_;
        } else {
            heap_.assign(s.data(), s.size());
            p_ = heap_.c_str();
        }
    }
    cstr(const cstr&) = delete;
    cstr& operator=(const cstr&) = delete;
    const char* c_str() const noexcept { return p_; }

private:
    char buf_[256];
    std::string heap_;
    const char* p_ = nullptr;
};

inline std::int32_t to_ms(std::chrono::milliseconds timeout) noexcept {
    const std::chrono::milliseconds::rep count = timeout.count();
    constexpr std::int32_t max = std::numeric_limits<std::int32_t>::max();
    if (count < 0) {
        return -1;
    }
    if (count > static_cast<std::chrono::milliseconds::rep>(max)) {
        return max;
    }
    return static_cast<std::int32_t>(count);
}

/** Throws rmqs::error when `st` is not RMQS_OK, with the detail held by `err`. */
inline void check(rmqs_status st, const Error& err) {
    if (st != RMQS_OK) {
        err.raise(st);
    }
}

/** Throws rmqs::error(st) when `st` is not RMQS_OK (C calls without an rmqs_error). */
inline void check(rmqs_status st) {
    if (st != RMQS_OK) {
        throw error(st);
    }
}

inline std::vector<std::string> take_strings(rmqs_strings* list) {
    std::unique_ptr<rmqs_strings, void (*)(rmqs_strings*)> owner(list, rmqs_strings_free);
    std::vector<std::string> out;
    const std::size_t n = rmqs_strings_count(list);
    out.reserve(n);
    for (std::size_t i = 0; i < n; i++) {
        const char* s = rmqs_strings_get(list, i);
        out.emplace_back(s != nullptr ? s : "");
    }
    return out;
}

/**
 * The user_data of a producer's or consumer's callback: the handler, and what the application
 * side needs to learn that it threw. Deleted by the library's user_data_free (or by the factory
 * when creation fails).
 */
template <class Handler, class Handle, rmqs_status (*Close)(Handle*, std::int32_t, rmqs_error**)>
struct callback_state {
    explicit callback_state(Handler h) : handler(std::move(h)) {}

    Handler handler;
    /** The handler threw: it is not called again (touched by the dispatcher thread). */
    std::atomic<bool> stopped{false};
    /** An exception waits to be rethrown (the fast check on the application's side). */
    std::atomic<bool> pending{false};
    std::mutex mu;
    /** Guarded by mu: the first exception, until rethrown. */
    std::exception_ptr exc;
    /** Guarded by mu: the C object, from after *_new returned until before *_free. */
    Handle* handle = nullptr;

    /** On the dispatcher thread, from the trampoline's catch: store, stop, close. */
    void fail(std::exception_ptr e) noexcept {
        stopped.store(true);
        std::lock_guard<std::mutex> lock(mu);
        exc = std::move(e);
        pending.store(true, std::memory_order_release);
        if (handle != nullptr) {
            close_now(handle);
        }
    }

    /** After *_new succeeded: publishes the handle (and closes it if the handler threw). */
    void attach(Handle* h) noexcept {
        std::lock_guard<std::mutex> lock(mu);
        handle = h;
        if (stopped.load()) {
            close_now(h);
        }
    }

    /** Before *_free: the trampolines must not use the handle any more. */
    void detach() noexcept {
        std::lock_guard<std::mutex> lock(mu);
        handle = nullptr;
    }

    /** On the application's thread: rethrows the stored exception once. */
    void rethrow_pending() {
        if (!pending.load(std::memory_order_acquire)) {
            return;
        }
        std::exception_ptr e;
        {
            std::lock_guard<std::mutex> lock(mu);
            e = std::move(exc);
            exc = nullptr;
            pending.store(false, std::memory_order_relaxed);
        }
        if (e) {
            std::rethrow_exception(e);
        }
    }

    static void free_cb(void* user_data) noexcept { delete static_cast<callback_state*>(user_data); }

    /** Timeout 0: closes in the background, allowed on a callback thread. */
    static void close_now(Handle* h) noexcept {
        (void)Close(h, 0, nullptr);
    }

    /** Runs the handler unless it threw before; an exception it throws fails the object. */
    template <class... A>
    static void run(void* user_data, A&&... args) noexcept {
        auto* st = static_cast<callback_state*>(user_data);
        if (st->stopped.load(std::memory_order_relaxed)) {
            return;
        }
        try {
            st->handler(std::forward<A>(args)...);
        } catch (...) {
            st->fail(std::current_exception());
        }
    }
};

}  // namespace detail

// ---------------------------------------------------------------------------------------------
// Typed AMQP 1.0 values

/** The type of a value (rmqs_value_type_code). */
enum class value_type : std::int32_t {
    null = RMQS_VALUE_NULL,
    boolean = RMQS_VALUE_BOOL,
    ubyte = RMQS_VALUE_UBYTE,
    ushort = RMQS_VALUE_USHORT,
    uint = RMQS_VALUE_UINT,
    ulong = RMQS_VALUE_ULONG,
    byte = RMQS_VALUE_BYTE,
    short_ = RMQS_VALUE_SHORT,
    int_ = RMQS_VALUE_INT,
    long_ = RMQS_VALUE_LONG,
    float_ = RMQS_VALUE_FLOAT,
    double_ = RMQS_VALUE_DOUBLE,
    timestamp = RMQS_VALUE_TIMESTAMP,
    uuid = RMQS_VALUE_UUID,
    string = RMQS_VALUE_STRING,
    symbol = RMQS_VALUE_SYMBOL,
    binary = RMQS_VALUE_BINARY,
    char_ = RMQS_VALUE_CHAR,
    decimal32 = RMQS_VALUE_DECIMAL32,
    decimal64 = RMQS_VALUE_DECIMAL64,
    decimal128 = RMQS_VALUE_DECIMAL128,
    list = RMQS_VALUE_LIST,
    map = RMQS_VALUE_MAP,
    array = RMQS_VALUE_ARRAY,
    described = RMQS_VALUE_DESCRIBED,
};

/** Fields of the AMQP 1.0 header section (rmqs_header_code). */
enum class header_field : std::int32_t {
    durable = RMQS_HEADER_DURABLE,
    priority = RMQS_HEADER_PRIORITY,
    ttl = RMQS_HEADER_TTL,
    first_acquirer = RMQS_HEADER_FIRST_ACQUIRER,
    delivery_count = RMQS_HEADER_DELIVERY_COUNT,
};

/** Sections of an AMQP 1.0 message (rmqs_section_code). */
enum class section : std::int32_t {
    header = RMQS_SECTION_HEADER,
    delivery_annotations = RMQS_SECTION_DELIVERY_ANNOTATIONS,
    message_annotations = RMQS_SECTION_MESSAGE_ANNOTATIONS,
    properties = RMQS_SECTION_PROPERTIES,
    application_properties = RMQS_SECTION_APPLICATION_PROPERTIES,
    footer = RMQS_SECTION_FOOTER,
};

/** What the body of a received message is (rmqs_body_type_code). */
enum class body_type : std::int32_t {
    raw = RMQS_BODY_RAW,
    data = RMQS_BODY_DATA,
    sequence = RMQS_BODY_SEQUENCE,
    value = RMQS_BODY_VALUE,
    none = RMQS_BODY_NONE,
};

/**
 * A typed AMQP 1.0 value (a copy of an rmqs_value): a type and the field it uses. Build one
 * with the named constructors (rmqs::value::ulong(5), rmqs::value::string("x"), ...) to set a
 * property; read one from a received message (Message::app_property_value(), ...). Strings,
 * symbols, binaries, decimals and compounds (list, map, array, described: their AMQP
 * encoding) are BORROWED bytes: from a received message they live as long as its chunk; given
 * to a MessageBuilder setter they are copied by the call. Copyable, 64 bytes.
 */
class value {
public:
    /** null. */
    value() noexcept : v_{} { v_.kind = RMQS_VALUE_NULL; }
    /** Adopts a C value (its bytes stay borrowed). */
    explicit value(const rmqs_value& v) noexcept : v_(v) {}

    static value null() noexcept { return value(); }
    static value boolean(bool b) noexcept {
        value v(RMQS_VALUE_BOOL);
        v.v_.bool_value = b;
        return v;
    }
    static value ubyte(std::uint8_t x) noexcept { return unsigned_of(RMQS_VALUE_UBYTE, x); }
    static value ushort(std::uint16_t x) noexcept { return unsigned_of(RMQS_VALUE_USHORT, x); }
    static value uint(std::uint32_t x) noexcept { return unsigned_of(RMQS_VALUE_UINT, x); }
    static value ulong(std::uint64_t x) noexcept { return unsigned_of(RMQS_VALUE_ULONG, x); }
    static value byte(std::int8_t x) noexcept { return signed_of(RMQS_VALUE_BYTE, x); }
    static value short_(std::int16_t x) noexcept { return signed_of(RMQS_VALUE_SHORT, x); }
    static value int_(std::int32_t x) noexcept { return signed_of(RMQS_VALUE_INT, x); }
    static value long_(std::int64_t x) noexcept { return signed_of(RMQS_VALUE_LONG, x); }
    /** ms since the Unix epoch (may be negative). */
    static value timestamp(std::int64_t ms) noexcept { return signed_of(RMQS_VALUE_TIMESTAMP, ms); }
    static value float_(float x) noexcept {
        value v(RMQS_VALUE_FLOAT);
        v.v_.float_value = static_cast<double>(x);
        return v;
    }
    static value double_(double x) noexcept {
        value v(RMQS_VALUE_DOUBLE);
        v.v_.float_value = x;
        return v;
    }
    /** A Unicode scalar value. */
    static value char_(char32_t x) noexcept { return unsigned_of(RMQS_VALUE_CHAR, x); }
    /** The 16 bytes, in network order. */
    static value uuid(const std::array<std::uint8_t, 16>& bytes16) noexcept {
        value v(RMQS_VALUE_UUID);
        std::memcpy(v.v_.uuid, bytes16.data(), 16);
        return v;
    }
    /** UTF-8 (borrowed). */
    static value string(std::string_view s) noexcept { return bytes_of(RMQS_VALUE_STRING, s.data(), s.size()); }
    /** ASCII (borrowed). */
    static value symbol(std::string_view s) noexcept { return bytes_of(RMQS_VALUE_SYMBOL, s.data(), s.size()); }
    /** Bytes (borrowed). */
    static value binary(bytes b) noexcept { return bytes_of(RMQS_VALUE_BINARY, b.data(), b.size()); }
    /** A compound (list, map, array, described) or decimal, as its AMQP encoding (borrowed). */
    static value encoded(value_type type, bytes encoding) noexcept {
        return bytes_of(static_cast<std::int32_t>(type), encoding.data(), encoding.size());
    }

    value_type type() const noexcept { return static_cast<value_type>(v_.kind); }
    bool is_null() const noexcept { return v_.kind == RMQS_VALUE_NULL; }
    bool as_bool() const noexcept { return v_.bool_value; }
    /** ubyte, ushort, uint, ulong, char. */
    std::uint64_t as_uint() const noexcept { return v_.uint_value; }
    /** byte, short, int, long, timestamp. */
    std::int64_t as_int() const noexcept { return v_.int_value; }
    /** float (exactly), double. */
    double as_double() const noexcept { return v_.float_value; }
    std::array<std::uint8_t, 16> as_uuid() const noexcept {
        std::array<std::uint8_t, 16> out{};
        std::memcpy(out.data(), v_.uuid, 16);
        return out;
    }
    /** string, symbol, binary, decimals, compounds: the bytes (borrowed). */
    bytes as_bytes() const noexcept { return bytes(v_.data, v_.len); }
    /** The same bytes as characters. */
    std::string_view as_string() const noexcept { return as_bytes().str(); }

    /** Elements of a list or array, entries of a map, 2 for a described value; else 0. */
    std::size_t size() const noexcept { return rmqs_value_count(&v_); }
    /** Element `i` of a list or array (0 descriptor / 1 value of a described); nullopt out of range. */
    std::optional<value> at(std::size_t i) const noexcept {
        rmqs_value out{};
        if (!rmqs_value_list_get(&v_, i, &out)) {
            return std::nullopt;
        }
        return value(out);
    }
    /** Entry `i` of a map (wire order). */
    std::optional<std::pair<value, value>> entry(std::size_t i) const noexcept {
        rmqs_value k{};
        rmqs_value x{};
        if (!rmqs_value_map_entry(&v_, i, &k, &x)) {
            return std::nullopt;
        }
        return std::make_pair(value(k), value(x));
    }
    /** The value of a map's first entry whose key is the string or symbol `key`. */
    std::optional<value> get(std::string_view key) const;

    /** Same type and same value (floats compared bit for bit, so NaN equals the same NaN). */
    friend bool operator==(const value& a, const value& b) noexcept {
        if (a.v_.kind != b.v_.kind) {
            return false;
        }
        switch (a.v_.kind) {
            case RMQS_VALUE_NULL:
                return true;
            case RMQS_VALUE_BOOL:
                return a.v_.bool_value == b.v_.bool_value;
            case RMQS_VALUE_UBYTE:
            case RMQS_VALUE_USHORT:
            case RMQS_VALUE_UINT:
            case RMQS_VALUE_ULONG:
            case RMQS_VALUE_CHAR:
                return a.v_.uint_value == b.v_.uint_value;
            case RMQS_VALUE_BYTE:
            case RMQS_VALUE_SHORT:
            case RMQS_VALUE_INT:
            case RMQS_VALUE_LONG:
            case RMQS_VALUE_TIMESTAMP:
                return a.v_.int_value == b.v_.int_value;
            case RMQS_VALUE_FLOAT:
            case RMQS_VALUE_DOUBLE:
                return std::memcmp(&a.v_.float_value, &b.v_.float_value, sizeof(double)) == 0;
            case RMQS_VALUE_UUID:
                return std::memcmp(a.v_.uuid, b.v_.uuid, 16) == 0;
            default:
                return a.as_bytes() == b.as_bytes();
        }
    }
    friend bool operator!=(const value& a, const value& b) noexcept { return !(a == b); }

    /** The C value (for the C API). */
    const rmqs_value& c_value() const noexcept { return v_; }

private:
    explicit value(std::int32_t kind) noexcept : v_{} { v_.kind = kind; }
    static value unsigned_of(std::int32_t kind, std::uint64_t x) noexcept {
        value v(kind);
        v.v_.uint_value = x;
        return v;
    }
    static value signed_of(std::int32_t kind, std::int64_t x) noexcept {
        value v(kind);
        v.v_.int_value = x;
        return v;
    }
    static value bytes_of(std::int32_t kind, const void* data, std::size_t len) noexcept {
        value v(kind);
        v.v_.data = len == 0 ? nullptr : static_cast<const std::uint8_t*>(data);
        v.v_.len = len;
        return v;
    }

    rmqs_value v_;
};

inline std::optional<value> value::get(std::string_view key) const {
    const detail::cstr k(key, "map key");
    rmqs_value out{};
    if (!rmqs_value_map_get(&v_, k.c_str(), &out)) {
        return std::nullopt;
    }
    return value(out);
}

/** Where a consumer starts (rmqs_offset_spec), e.g. in a consumer-update answer. */
struct offset_spec {
    rmqs_offset_spec spec{RMQS_OFFSET_DEFAULT, 0};

    /** What the library would choose by itself. */
    static offset_spec by_default() noexcept { return {}; }
    static offset_spec first() noexcept { return {{RMQS_OFFSET_FIRST, 0}}; }
    static offset_spec last() noexcept { return {{RMQS_OFFSET_LAST, 0}}; }
    static offset_spec next() noexcept { return {{RMQS_OFFSET_NEXT, 0}}; }
    static offset_spec at(std::uint64_t offset) noexcept {
        return {{RMQS_OFFSET_OFFSET, static_cast<std::int64_t>(offset)}};
    }
    /** The first chunk written at or after `ms` (since the Unix epoch). */
    static offset_spec timestamp(std::int64_t ms) noexcept { return {{RMQS_OFFSET_TIMESTAMP, ms}}; }
};

/** A single active consumer's activation or step-down (rmqs_consumer_update_info). */
struct consumer_update {
    /** The stream (a super consumer's partition): valid during the handler call, or until
     * the Event it came from is destroyed; copy it to keep it. */
    std::string_view stream;
    /** true: activated (the answer says where it starts); false: steps down. */
    bool is_active;
    /** On activation, the offset stored under the consumer's reference; nullopt when none. */
    std::optional<std::uint64_t> stored_offset;
    /** What the library answers without the application. */
    offset_spec default_offset;

    static consumer_update of(const rmqs_consumer_update_info& i) noexcept {
        consumer_update u{i.stream != nullptr ? i.stream : "", i.is_active, std::nullopt,
                          offset_spec{i.default_offset}};
        if (i.stored_offset != std::numeric_limits<std::uint64_t>::max()) {
            u.stored_offset = i.stored_offset;
        }
        return u;
    }
};

// ---------------------------------------------------------------------------------------------
// Messages and chunks (views)

/**
 * One message of a chunk: a borrowed view, valid as long as the chunk; so are the bytes and
 * string_views it returns. Copyable; immutable; readable from several threads.
 */
class Message {
public:
    Message() noexcept = default;
    explicit Message(const rmqs_message* m) noexcept : m_(m) {}

    /** The message's offset in the stream. */
    std::uint64_t offset() const noexcept { return rmqs_message_offset(m_); }
    /** Its chunk's timestamp, ms since the Unix epoch. */
    std::int64_t timestamp() const noexcept { return rmqs_message_timestamp(m_); }
    /** The application payload (the AMQP data section, or the raw record). */
    bytes body() const noexcept {
        std::size_t len = 0;
        const std::uint8_t* p = rmqs_message_body(m_, &len);
        return bytes(p, len);
    }
    /** The record exactly as stored. */
    bytes raw() const noexcept {
        std::size_t len = 0;
        const std::uint8_t* p = rmqs_message_raw(m_, &len);
        return bytes(p, len);
    }
    /** Whether the record is a well-formed AMQP 1.0 message. */
    bool is_amqp() const noexcept { return rmqs_message_is_amqp(m_); }
    /** A field of the AMQP properties section, as text; nullopt when absent. */
    std::optional<std::string_view> property(rmqs::property field) const noexcept {
        const char* value = nullptr;
        std::size_t len = 0;
        if (!rmqs_message_property(m_, static_cast<std::int32_t>(field), &value, &len)) {
            return std::nullopt;
        }
        return std::string_view(value, len);
    }
    /** An application property as text (first entry with `key`); nullopt when absent. */
    std::optional<std::string_view> app_property(std::string_view key) const {
        const detail::cstr k(key, "application property key");
        const char* value = nullptr;
        std::size_t len = 0;
        if (!rmqs_message_app_property(m_, k.c_str(), &value, &len)) {
            return std::nullopt;
        }
        return std::string_view(value, len);
    }
    /** Number of application properties. */
    std::size_t app_property_count() const noexcept { return rmqs_message_app_property_count(m_); }
    /** Application property `i` (wire order) as (key, value text); nullopt when out of range or
     * when the value has no text form (list, map, array, described). */
    std::optional<std::pair<std::string_view, std::string_view>> app_property_at(std::size_t i) const noexcept {
        const char* key = nullptr;
        const char* value = nullptr;
        std::size_t key_len = 0;
        std::size_t value_len = 0;
        if (!rmqs_message_app_property_at(m_, i, &key, &key_len, &value, &value_len)) {
            return std::nullopt;
        }
        return std::make_pair(std::string_view(key, key_len), std::string_view(value, value_len));
    }
    /** Every application property with a text form, in wire order. */
    std::vector<std::pair<std::string_view, std::string_view>> app_properties() const {
        std::vector<std::pair<std::string_view, std::string_view>> out;
        const std::size_t n = app_property_count();
        out.reserve(n);
        for (std::size_t i = 0; i < n; i++) {
            if (auto kv = app_property_at(i)) {
                out.push_back(*kv);
            }
        }
        return out;
    }


    // ---- typed reads (values borrow the chunk's bytes) ----

    /** What the body is: data sections, amqp-sequence sections, an amqp-value, none, raw. */
    body_type body_kind() const noexcept { return static_cast<body_type>(rmqs_message_body_type(m_)); }
    /** Body sections (data or sequence sections; 1 for an amqp-value). */
    std::size_t body_count() const noexcept { return rmqs_message_body_count(m_); }
    /** Body section `i`: a data section as binary, a sequence as a list, the amqp-value as is. */
    std::optional<value> body_section(std::size_t i) const noexcept {
        rmqs_value out{};
        return rmqs_message_body_section(m_, i, &out) ? std::optional<value>(value(out)) : std::nullopt;
    }
    /** A whole non-body section: header and properties as lists, the others as maps. */
    std::optional<value> section_value(rmqs::section which) const noexcept {
        rmqs_value out{};
        return rmqs_message_section(m_, static_cast<std::int32_t>(which), &out) ? std::optional<value>(value(out))
                                                                                : std::nullopt;
    }
    /** A header field as sent; nullopt when absent (the spec's default applies). */
    std::optional<value> header(header_field field) const noexcept {
        rmqs_value out{};
        return rmqs_message_header_value(m_, static_cast<std::int32_t>(field), &out) ? std::optional<value>(value(out))
                                                                                   : std::nullopt;
    }
    /** A properties field typed as sent (message-id as ulong, uuid, binary or string, ...). */
    std::optional<value> property_value(rmqs::property field) const noexcept {
        rmqs_value out{};
        return rmqs_message_property_value(m_, static_cast<std::int32_t>(field), &out)
                   ? std::optional<value>(value(out))
                   : std::nullopt;
    }
    /** An application property typed as sent (first entry with `key`). */
    std::optional<value> app_property_value(std::string_view key) const {
        const detail::cstr k(key, "application property key");
        rmqs_value out{};
        return rmqs_message_app_property_value(m_, k.c_str(), &out) ? std::optional<value>(value(out))
                                                                    : std::nullopt;
    }
    /** A message annotation (symbol key). */
    std::optional<value> annotation(std::string_view key) const { return map_entry(section::message_annotations, key); }
    /** A delivery annotation (symbol key). */
    std::optional<value> delivery_annotation(std::string_view key) const {
        return map_entry(section::delivery_annotations, key);
    }
    /** A footer entry (symbol key). */
    std::optional<value> footer(std::string_view key) const { return map_entry(section::footer, key); }

    explicit operator bool() const noexcept { return m_ != nullptr; }
    const rmqs_message* get() const noexcept { return m_; }

private:
    std::optional<value> map_entry(rmqs::section which, std::string_view key) const {
        const std::optional<value> map = section_value(which);
        return map ? map->get(key) : std::nullopt;
    }

    const rmqs_message* m_ = nullptr;
};

namespace detail {

/** The read accessors shared by ChunkRef (borrowed) and Chunk (owned reference). */
class chunk_reader {
public:
    /** Iterates over the chunk's visible messages: for (rmqs::Message m : chunk). */
    class iterator {
    public:
        using iterator_category = std::input_iterator_tag;
        using value_type = Message;
        using difference_type = std::ptrdiff_t;
        using pointer = void;
        using reference = Message;

        iterator() noexcept = default;
        iterator(const rmqs_chunk* c, std::size_t i) noexcept : c_(c), i_(i) {}
        Message operator*() const noexcept { return Message(rmqs_chunk_message(c_, i_)); }
        iterator& operator++() noexcept {
            ++i_;
            return *this;
        }
        iterator operator++(int) noexcept {
            iterator old = *this;
            ++i_;
            return old;
        }
        friend bool operator==(const iterator& a, const iterator& b) noexcept {
            return a.c_ == b.c_ && a.i_ == b.i_;
        }
        friend bool operator!=(const iterator& a, const iterator& b) noexcept { return !(a == b); }

    private:
        const rmqs_chunk* c_ = nullptr;
        std::size_t i_ = 0;
    };

    /** The stream the chunk came from. */
    std::string_view stream() const noexcept { return rmqs_chunk_stream(c_); }
    /** A super consumer's chunk: its partition's index; nullopt for a plain consumer's. */
    std::optional<std::size_t> partition() const noexcept {
        const std::int32_t p = rmqs_chunk_partition(c_);
        return p < 0 ? std::nullopt : std::optional<std::size_t>(static_cast<std::size_t>(p));
    }
    /** Offset of the chunk's first record (hidden ones included). */
    std::uint64_t id() const noexcept { return rmqs_chunk_id(c_); }
    /** Offset of the first visible message. */
    std::uint64_t first_offset() const noexcept { return rmqs_chunk_first_offset(c_); }
    /** When the broker wrote the chunk, ms since the Unix epoch. */
    std::int64_t timestamp() const noexcept { return rmqs_chunk_timestamp(c_); }
    /** The last committed chunk id when this one was sent (RabbitMQ 3.11+). */
    std::optional<std::uint64_t> committed_id() const noexcept {
        std::uint64_t id = 0;
        if (!rmqs_chunk_committed_id(c_, &id)) {
            return std::nullopt;
        }
        return id;
    }
    /** Number of visible messages. */
    std::size_t size() const noexcept { return rmqs_chunk_message_count(c_); }
    bool empty() const noexcept { return size() == 0; }
    /** Message `i` (0 = the first visible one); an empty Message when out of range. */
    Message operator[](std::size_t i) const noexcept { return Message(rmqs_chunk_message(c_, i)); }
    /** Message `i`; throws std::out_of_range. */
    Message at(std::size_t i) const {
        const rmqs_message* m = rmqs_chunk_message(c_, i);
        if (m == nullptr) {
            throw std::out_of_range("rmqs: chunk message index out of range");
        }
        return Message(m);
    }
    iterator begin() const noexcept { return iterator(c_, 0); }
    iterator end() const noexcept { return iterator(c_, size()); }
    /** Every header field. */
    chunk_header header() const noexcept {
        chunk_header h{};
        (void)rmqs_chunk_header(c_, &h);
        return h;
    }
    /** The data section as received. */
    bytes data() const noexcept {
        std::size_t len = 0;
        const std::uint8_t* p = rmqs_chunk_data(c_, &len);
        return bytes(p, len);
    }

    explicit operator bool() const noexcept { return c_ != nullptr; }
    const rmqs_chunk* get() const noexcept { return c_; }

    /** One more reference to the chunk, owned by the returned Chunk (empty when this is). */
    Chunk retain() const noexcept;

protected:
    chunk_reader() noexcept = default;
    explicit chunk_reader(const rmqs_chunk* c) noexcept : c_(c) {}
    chunk_reader(const chunk_reader&) noexcept = default;
    chunk_reader& operator=(const chunk_reader&) noexcept = default;
    ~chunk_reader() = default;

    const rmqs_chunk* c_ = nullptr;
};

}  // namespace detail

/**
 * A borrowed chunk: the argument of a chunk handler (valid until it returns) or Event::chunk()
 * (valid until the event is destroyed). retain() to keep it longer. Copyable.
 */
class ChunkRef : public detail::chunk_reader {
public:
    ChunkRef() noexcept = default;
    explicit ChunkRef(const rmqs_chunk* c) noexcept : chunk_reader(c) {}
};

/**
 * One owned reference to a chunk (rmqs_chunk_retain / rmqs_chunk_release): the chunk and its
 * messages stay readable until the last Chunk for it is destroyed, on any thread. Move-only;
 * clone() takes another reference.
 */
class Chunk : public detail::chunk_reader {
public:
    Chunk() noexcept = default;
    /** Takes a new reference to `c`. */
    explicit Chunk(ChunkRef c) noexcept : chunk_reader(rmqs_chunk_retain(c.get())) {}
    /** Adopts a reference returned by rmqs_chunk_retain(). */
    static Chunk adopt(rmqs_chunk* c) noexcept {
        Chunk ch;
        ch.c_ = c;
        return ch;
    }
    Chunk(const Chunk&) = delete;
    Chunk& operator=(const Chunk&) = delete;
    Chunk(Chunk&& o) noexcept : chunk_reader(o.release()) {}
    Chunk& operator=(Chunk&& o) noexcept {
        if (this != &o) {
            reset(o.release());
        }
        return *this;
    }
    ~Chunk() { reset(); }

    /** Another reference to the same chunk. */
    Chunk clone() const noexcept { return Chunk(ref()); }
    /** A borrowed view, valid while this Chunk holds its reference. */
    ChunkRef ref() const noexcept { return ChunkRef(c_); }
    /** The same, implicitly, for functions taking a ChunkRef; not from a temporary Chunk,
     * whose reference would be gone before the view is used. */
    operator ChunkRef() const& noexcept { return ref(); }
    operator ChunkRef() && = delete;
    /** Gives up ownership of the reference (to pass to rmqs_chunk_release later). */
    rmqs_chunk* release() noexcept {
        rmqs_chunk* c = const_cast<rmqs_chunk*>(c_);
        c_ = nullptr;
        return c;
    }
    /** Releases the reference held (and adopts `c`). */
    void reset(rmqs_chunk* c = nullptr) noexcept {
        if (c_ != nullptr) {
            // c_ came from rmqs_chunk_retain(), which returns a non-const pointer
            rmqs_chunk_release(const_cast<rmqs_chunk*>(c_));
        }
        c_ = c;
    }
};

inline Chunk detail::chunk_reader::retain() const noexcept { return Chunk(ChunkRef(c_)); }

// ---------------------------------------------------------------------------------------------
// MessageBuilder: an AMQP 1.0 message to publish

namespace detail {

/** The read accessors of a builder, for MessageBuilder and the routing callbacks. */
class builder_reader {
public:
    /** A header field as set. */
    std::optional<value> header(header_field field) const noexcept {
        rmqs_value out{};
        return rmqs_message_builder_header(b_, static_cast<std::int32_t>(field), &out)
                   ? std::optional<value>(value(out))
                   : std::nullopt;
    }
    /** A property as it will be sent (strings borrowed from the builder until it changes). */
    std::optional<value> property(rmqs::property field) const noexcept {
        rmqs_value out{};
        return rmqs_message_builder_property(b_, static_cast<std::int32_t>(field), &out)
                   ? std::optional<value>(value(out))
                   : std::nullopt;
    }
    /** An application property as added. */
    std::optional<value> app_property(std::string_view key) const {
        const cstr k(key, "application property key");
        rmqs_value out{};
        return rmqs_message_builder_app_property(b_, k.c_str(), &out) ? std::optional<value>(value(out))
                                                                       : std::nullopt;
    }
    const rmqs_message_builder* get() const noexcept { return b_; }

protected:
    builder_reader() noexcept = default;
    explicit builder_reader(const rmqs_message_builder* b) noexcept : b_(b) {}
    ~builder_reader() = default;

    const rmqs_message_builder* b_ = nullptr;
};

}  // namespace detail

/**
 * An AMQP 1.0 message to publish (owns an rmqs_message_builder): body sections, header, the 13
 * properties, application properties, message and delivery annotations, footer, and the
 * stream-level filter value and publishing id. Setters copy what they are given and return
 * *this:
 *
 *   rmqs::MessageBuilder m;
 *   m.body("hello").content_type("text/plain").message_id(rmqs::value::ulong(7))
 *    .app_property("region", rmqs::value::string("eu")).filter_value("eu");
 *   producer.send(m);
 *   m.reset();  // reuse: a loop that resets and sends allocates nothing once warm
 *
 * A send copies it; it can be reset as soon as the send returns. Move-only; one thread at a
 * time (several threads may send it at once while nobody changes it). Setters throw
 * rmqs::error RMQS_ERR_INVALID_ARGUMENT for a value the field does not take.
 */
class MessageBuilder : public detail::builder_reader {
public:
    MessageBuilder() : builder_reader(rmqs_message_builder_new()) {
        if (b_ == nullptr) {
            throw std::bad_alloc();
        }
    }
    MessageBuilder(const MessageBuilder&) = delete;
    MessageBuilder& operator=(const MessageBuilder&) = delete;
    MessageBuilder(MessageBuilder&& o) noexcept : builder_reader(std::exchange(o.b_, nullptr)) {}
    MessageBuilder& operator=(MessageBuilder&& o) noexcept {
        if (this != &o) {
            rmqs_message_builder_free(mut());
            b_ = std::exchange(o.b_, nullptr);
        }
        return *this;
    }
    ~MessageBuilder() { rmqs_message_builder_free(mut()); }

    /** Empties every section, the filter value and the publishing id, keeping the memory. */
    MessageBuilder& reset() noexcept {
        rmqs_message_builder_reset(mut());
        return *this;
    }

    // ---- body ----

    /** The body: one data section (replaces any body). */
    MessageBuilder& body(bytes data) {
        Error err;
        detail::check(rmqs_message_builder_set_body(mut(), data.data(), data.size(), err.out()), err);
        return *this;
    }
    /** Appends another data section. */
    MessageBuilder& add_body_section(bytes data) {
        Error err;
        detail::check(rmqs_message_builder_add_body_section(mut(), data.data(), data.size(), err.out()), err);
        return *this;
    }
    /**
     * Appends an amqp-sequence section to the body: these values as a list (the first call on
     * an empty builder makes the first one). Their bytes are copied by the call.
     */
    MessageBuilder& add_body_sequence(span<const value> items) {
        static_assert(sizeof(value) == sizeof(rmqs_value) && std::is_standard_layout_v<value>,
                      "rmqs::value is an rmqs_value");
        Error err;
        detail::check(rmqs_message_builder_add_body_sequence(
                          mut(), items.empty() ? nullptr : &items[0].c_value(), items.size(), err.out()),
                      err);
        return *this;
    }
    MessageBuilder& add_body_sequence(std::initializer_list<value> items) {
        return add_body_sequence(span<const value>(items.begin(), items.size()));
    }
    /** The body: one amqp-value section (replaces any body). */
    MessageBuilder& body_value(const value& v) {
        Error err;
        detail::check(rmqs_message_builder_set_body_value(mut(), &v.c_value(), err.out()), err);
        return *this;
    }

    // ---- header ----

    /** A header field (value::null() unsets it). */
    MessageBuilder& header(header_field field, const value& v) {
        Error err;
        detail::check(rmqs_message_builder_set_header(mut(), static_cast<std::int32_t>(field), &v.c_value(), err.out()),
                      err);
        return *this;
    }
    using builder_reader::header;
    MessageBuilder& durable(bool b) { return header(header_field::durable, value::boolean(b)); }
    MessageBuilder& priority(std::uint8_t p) { return header(header_field::priority, value::ubyte(p)); }
    MessageBuilder& ttl(std::uint32_t ms) { return header(header_field::ttl, value::uint(ms)); }
    MessageBuilder& first_acquirer(bool b) { return header(header_field::first_acquirer, value::boolean(b)); }
    MessageBuilder& delivery_count(std::uint32_t n) { return header(header_field::delivery_count, value::uint(n)); }

    // ---- properties ----

    /** A properties field (see rmqs_message_builder_set_property for the types each takes). */
    MessageBuilder& property(rmqs::property field, const value& v) {
        Error err;
        detail::check(
            rmqs_message_builder_set_property(mut(), static_cast<std::int32_t>(field), &v.c_value(), err.out()), err);
        return *this;
    }
    using builder_reader::property;
    /** ulong, uuid, binary or string. */
    MessageBuilder& message_id(const value& v) { return property(rmqs::property::message_id, v); }
    MessageBuilder& user_id(bytes b) { return property(rmqs::property::user_id, value::binary(b)); }
    MessageBuilder& to(std::string_view s) { return property(rmqs::property::to, value::string(s)); }
    MessageBuilder& subject(std::string_view s) { return property(rmqs::property::subject, value::string(s)); }
    MessageBuilder& reply_to(std::string_view s) { return property(rmqs::property::reply_to, value::string(s)); }
    /** ulong, uuid, binary or string. */
    MessageBuilder& correlation_id(const value& v) { return property(rmqs::property::correlation_id, v); }
    MessageBuilder& content_type(std::string_view s) { return property(rmqs::property::content_type, value::symbol(s)); }
    MessageBuilder& content_encoding(std::string_view s) {
        return property(rmqs::property::content_encoding, value::symbol(s));
    }
    MessageBuilder& absolute_expiry_time(std::int64_t ms) {
        return property(rmqs::property::absolute_expiry_time, value::timestamp(ms));
    }
    MessageBuilder& creation_time(std::int64_t ms) { return property(rmqs::property::creation_time, value::timestamp(ms)); }
    MessageBuilder& group_id(std::string_view s) { return property(rmqs::property::group_id, value::string(s)); }
    MessageBuilder& group_sequence(std::uint32_t n) { return property(rmqs::property::group_sequence, value::uint(n)); }
    MessageBuilder& reply_to_group_id(std::string_view s) {
        return property(rmqs::property::reply_to_group_id, value::string(s));
    }

    // ---- maps ----

    /** Adds an application property (simple types only; keys unique). */
    MessageBuilder& app_property(std::string_view key, const value& v) {
        const detail::cstr k(key, "application property key");
        Error err;
        detail::check(rmqs_message_builder_add_app_property(mut(), k.c_str(), &v.c_value(), err.out()), err);
        return *this;
    }
    using builder_reader::app_property;
    /** Adds a message annotation (symbol key, e.g. "x-opt-..."). */
    MessageBuilder& annotation(std::string_view key, const value& v) {
        return add_annotation(section::message_annotations, key, v);
    }
    MessageBuilder& delivery_annotation(std::string_view key, const value& v) {
        return add_annotation(section::delivery_annotations, key, v);
    }
    MessageBuilder& footer(std::string_view key, const value& v) { return add_annotation(section::footer, key, v); }

    // ---- stream-level ----

    /** The filter value broker-side filtering indexes the message under (3.13+). */
    MessageBuilder& filter_value(std::string_view s) {
        const detail::cstr v(s, "filter value");
        Error err;
        detail::check(rmqs_message_builder_set_filter_value(mut(), v.c_str(), err.out()), err);
        return *this;
    }
    /** An explicit publishing id, above every id the producer used before. */
    MessageBuilder& publishing_id(std::uint64_t id) {
        Error err;
        detail::check(rmqs_message_builder_set_publishing_id(mut(), id, err.out()), err);
        return *this;
    }

    explicit operator bool() const noexcept { return b_ != nullptr; }

private:
    rmqs_message_builder* mut() const noexcept { return const_cast<rmqs_message_builder*>(b_); }
    MessageBuilder& add_annotation(rmqs::section which, std::string_view key, const value& v) {
        const detail::cstr k(key, "annotation key");
        Error err;
        detail::check(rmqs_message_builder_add_annotation(mut(), static_cast<std::int32_t>(which), k.c_str(),
                                                          &v.c_value(), err.out()),
                      err);
        return *this;
    }
};

/**
 * What a super producer's routing function or key extractor is given for one message: the
 * message builder when it was sent as one (read it with property() / app_property()), the
 * body, the routing key (routing function only), the send's tag and the partition count.
 * Everything is borrowed for the call.
 */
class routing_request : public detail::builder_reader {
public:
    routing_request(const rmqs_message_builder* msg, bytes body, std::string_view key, std::size_t tag,
                    std::size_t partition_count) noexcept
        : builder_reader(msg), body_(body), key_(key), tag_(tag), partitions_(partition_count) {}
    /** Whether the message was sent as a MessageBuilder (else only the body is known). */
    bool has_message() const noexcept { return b_ != nullptr; }
    /**
     * The body given to the send call (with SuperProducer::send_body too, not the builder's
     * own); for a builder sent whole, its body when that is one data section, else empty.
     */
    bytes body() const noexcept { return body_; }
    /** The routing key ("" when none; always "" for a key extractor). */
    std::string_view routing_key() const noexcept { return key_; }
    std::size_t tag() const noexcept { return tag_; }
    std::size_t partition_count() const noexcept { return partitions_; }

private:
    bytes body_;
    std::string_view key_;
    std::size_t tag_;
    std::size_t partitions_;
};

/**
 * A super producer's routing function: writes the indices of the partitions the message goes
 * to into `out` (room for partition_count() entries) and returns how many (0 refuses it).
 * Runs on the sending thread, possibly several at once; an exception refuses the message.
 */
using routing_handler = std::function<std::size_t(const routing_request& msg, span<std::uint32_t> out)>;
/**
 * A super producer's key extractor: the routing key of a message sent without one; nullopt
 * when it has none (the send fails). The returned view must stay valid until it returns
 * (a property of the message, its body, a static string). Runs on the sending thread.
 */
using key_extractor = std::function<std::optional<std::string_view>(const routing_request& msg)>;
/** A single active consumer's activation (the answer: where it starts) or step-down. */
using consumer_update_handler = std::function<offset_spec(const consumer_update& update)>;
/** Client-side filter: keep (true) or hide each message. Runs on an rmqs-rt thread: be quick. */
using post_filter = std::function<bool(Message msg)>;

// ---------------------------------------------------------------------------------------------
// Config

/** A configuration handler for log lines: level, target ("connection", ...) and message. */
using log_handler = std::function<void(log_level level, std::string_view target, std::string_view message)>;

/** States of a producer, consumer, super producer or super consumer (RMQS_STATE_*). */
enum class state : std::int32_t {
    closed = RMQS_STATE_CLOSED,
    recovering = RMQS_STATE_RECOVERING,
    recovered = RMQS_STATE_RECOVERED,
};

/** A state change, as the state handler receives it. The message is valid during the call. */
struct state_change {
    rmqs::state state;
    /** Why: the cause of a recovery, the reason of a close; RMQS_OK otherwise. */
    rmqs_status status;
    std::string_view message;
    /** For super producers and consumers, the partition's index; -1 for the object itself. */
    std::int32_t partition;
    /** The tag the object was created with. */
    std::size_t tag;
    /** The kind of object. */
    event_source source;
};

using state_handler = std::function<void(const state_change&)>;

/**
 * Configuration keys (see rmqs_config_set() in rmqstream.h for every key). Owns an rmqs_config;
 * the calls that take one copy it, so it may change or go right after. Not thread-safe.
 *
 *   rmqs::Config cfg{{"offset", "first"}, {"initial_credit", "20"}};
 *   cfg.set("name", "my-consumer").set("crc_check", true);
 */
class Config {
public:
    /** A new, empty config. */
    Config() : p_(rmqs_config_new()) {
        if (p_ == nullptr) {
            throw std::bad_alloc();
        }
    }
    /** A config with these keys; throws rmqs::error for an unknown key or a bad value. */
    Config(std::initializer_list<std::pair<std::string_view, std::string_view>> keys) : Config() {
        for (const auto& kv : keys) {
            set(kv.first, kv.second);
        }
    }
    /** Adopts `cfg` (freed by the destructor). */
    explicit Config(rmqs_config* cfg) noexcept : p_(cfg) {}
    Config(const Config&) = delete;
    Config& operator=(const Config&) = delete;
    Config(Config&& o) noexcept : p_(o.release()) {}
    Config& operator=(Config&& o) noexcept {
        if (this != &o) {
            reset(o.release());
        }
        return *this;
    }
    ~Config() { reset(); }

    /** Sets one key (a later set of the same key replaces it). Throws rmqs::error. */
    Config& set(std::string_view key, std::string_view value) {
        const detail::cstr k(key, "config key");
        const detail::cstr v(value, "config value");
        Error err;
        detail::check(rmqs_config_set(p_, k.c_str(), v.c_str(), err.out()), err);
        return *this;
    }
    Config& set(std::string_view key, const char* value) {
        return set(key, value != nullptr ? std::string_view(value) : std::string_view());
    }
    Config& set(std::string_view key, const std::string& value) { return set(key, std::string_view(value)); }
    Config& set(std::string_view key, bool value) { return set(key, value ? "true" : "false"); }
    template <class Int, std::enable_if_t<std::is_integral_v<Int> && !std::is_same_v<Int, bool> &&
                                              !std::is_same_v<Int, char>,
                                          int> = 0>
    Config& set(std::string_view key, Int value) {
        return set(key, std::string_view(std::to_string(value)));
    }

    /**
     * The log handler of the connections opened with this config (rmqs_config_set_log_cb; the
     * `log_level` key filters). An empty handler removes it. It runs on any thread, must be
     * quick, must not call rmqstream; an exception escaping it is dropped. Freed exactly once,
     * when neither this config nor any connection opened with it holds it.
     */
    Config& set_log_handler(log_handler handler) {
        return set_callback<&rmqs_config_set_log_cb, &log_trampoline>(std::move(handler));
    }

    /**
     * The state handler of the producers and consumers (plain and super) created with this
     * config (rmqs_config_set_state_cb): recovering, recovered, closed, with the source kind
     * and, for super producers and consumers, the partition. It runs on the object's
     * dispatcher thread, in order with its confirms or chunks, and must not block; an
     * exception escaping it is dropped. An empty handler removes it. Freed exactly once, when
     * neither this config nor any object created with it holds it.
     */
    Config& set_state_handler(state_handler handler) {
        return set_callback<&rmqs_config_set_state_cb, &state_trampoline>(std::move(handler));
    }

    /**
     * Where a single active consumer (key `single_active_consumer`) created with this config
     * starts when activated, and its step-downs (rmqs_config_set_consumer_update_cb): the
     * handler returns an offset_spec (offset_spec::by_default() for the library's choice).
     * Runs on the consumer's dispatcher thread; an exception escaping it answers the default.
     */
    Config& set_consumer_update_handler(consumer_update_handler handler) {
        return set_callback<&rmqs_config_set_consumer_update_cb, &consumer_update_trampoline>(std::move(handler));
    }

    /**
     * The client-side filter of the consumers created with this config
     * (rmqs_config_set_post_filter_cb), e.g. with broker-side `filter_values`. Runs on an
     * rmqs-rt thread as chunks arrive: quick, non-blocking, reading the message only. An
     * exception escaping it keeps the message.
     */
    Config& set_post_filter(post_filter handler) {
        return set_callback<&rmqs_config_set_post_filter_cb, &post_filter_trampoline>(std::move(handler));
    }

    /**
     * The routing function of the super producers created with this config
     * (rmqs_config_set_routing_cb; the `routing` key must be unset). Runs on the sending
     * thread, possibly several at once.
     */
    Config& set_routing(routing_handler handler) {
        return set_callback<&rmqs_config_set_routing_cb, &routing_trampoline>(std::move(handler));
    }

    /**
     * The key extractor of the super producers created with this config
     * (rmqs_config_set_key_extractor): the routing key of messages sent without one. Runs on
     * the sending thread, possibly several at once; an exception means "no key".
     */
    Config& set_key_extractor(key_extractor handler) {
        return set_callback<&rmqs_config_set_key_extractor, &key_extractor_trampoline>(std::move(handler));
    }

    explicit operator bool() const noexcept { return p_ != nullptr; }
    rmqs_config* get() const noexcept { return p_; }
    rmqs_config* release() noexcept {
        rmqs_config* c = p_;
        p_ = nullptr;
        return c;
    }
    void reset(rmqs_config* cfg = nullptr) noexcept {
        if (p_ != nullptr) {
            rmqs_config_free(p_);
        }
        p_ = cfg;
    }

private:
    /**
     * The one place that registers a handler on the config: rmqs_config_set_*_cb(p_, tramp,
     * heap copy, delete, err); an empty handler removes the callback. On failure the handler is
     * deleted here (the library does not call user_data_free then).
     */
    template <auto Set, auto Trampoline, class Handler>
    Config& set_callback(Handler handler) {
        Error err;
        if (!handler) {
            detail::check(Set(p_, decltype(Trampoline){nullptr}, static_cast<void*>(nullptr), static_cast<rmqs_free_cb>(nullptr), err.out()),
                          err);
            return *this;
        }
        auto holder = std::make_unique<Handler>(std::move(handler));
        detail::check(Set(p_, Trampoline, static_cast<void*>(holder.get()), static_cast<rmqs_free_cb>(&delete_handler<Handler>), err.out()),
                      err);
        holder.release();  // owned by the library from here
        return *this;
    }
    template <class Handler>
    static void delete_handler(void* user_data) noexcept {
        delete static_cast<Handler*>(user_data);
    }

    static void log_trampoline(void* user_data, std::int32_t level, const char* target,
                               const char* message) noexcept {
        try {
            (*static_cast<log_handler*>(user_data))(static_cast<log_level>(level),
                                                    target != nullptr ? target : "",
                                                    message != nullptr ? message : "");
        } catch (...) {
            // no object to report it on: dropped, with the line (see the header comment)
        }
    }
    static void state_trampoline(void* user_data, rmqs_event_source_code source, std::size_t tag,
                                 std::int32_t partition, rmqs_state_code st, rmqs_status status,
                                 const char* message) noexcept {
        try {
            (*static_cast<state_handler*>(user_data))(
                state_change{static_cast<rmqs::state>(st), status, message != nullptr ? message : "",
                             partition, tag, static_cast<event_source>(source)});
        } catch (...) {
            // no caller to rethrow to: dropped
        }
    }
    static rmqs_offset_spec consumer_update_trampoline(void* user_data,
                                                       const rmqs_consumer_update_info* info) noexcept {
        try {
            return (*static_cast<consumer_update_handler*>(user_data))(consumer_update::of(*info)).spec;
        } catch (...) {
            return offset_spec::by_default().spec;
        }
    }
    static bool post_filter_trampoline(void* user_data, const rmqs_message* msg) noexcept {
        try {
            return (*static_cast<post_filter*>(user_data))(Message(msg));
        } catch (...) {
            return true;
        }
    }
    static std::size_t routing_trampoline(void* user_data, const rmqs_message_builder* msg, const std::uint8_t* body,
                                          std::size_t len, const char* key, std::size_t key_len, std::size_t tag,
                                          std::size_t partition_count, std::uint32_t* partitions) noexcept {
        try {
            const routing_request req(msg, bytes(body, len), std::string_view(key != nullptr ? key : "", key_len),
                                      tag, partition_count);
            return (*static_cast<routing_handler*>(user_data))(req, span<std::uint32_t>(partitions, partition_count));
        } catch (...) {
            return 0;  // refused: the send fails with "no route"
        }
    }
    static std::ptrdiff_t key_extractor_trampoline(void* user_data, const rmqs_message_builder* msg,
                                                   const std::uint8_t* body, std::size_t len, std::size_t tag,
                                                   char* key, std::size_t capacity) noexcept {
        try {
            const routing_request req(msg, bytes(body, len), std::string_view(), tag, 0);
            const std::optional<std::string_view> k = (*static_cast<key_extractor*>(user_data))(req);
            if (!k || k->size() > static_cast<std::size_t>(std::numeric_limits<std::ptrdiff_t>::max())) {
                return -1;
            }
            if (k->size() <= capacity && !k->empty()) {
                std::memcpy(key, k->data(), k->size());
            }
            return static_cast<std::ptrdiff_t>(k->size());
        } catch (...) {
            return -1;
        }
    }

    rmqs_config* p_ = nullptr;
};
// ---------------------------------------------------------------------------------------------
// Queue and Event

/**
 * One event from a Queue (owns an rmqs_event); views from it (chunk(), confirms(), message())
 * are valid until it is destroyed. An empty Event (operator bool false) means none arrived.
 */
class Event {
public:
    Event() noexcept = default;
    /** Adopts `ev`. */
    explicit Event(rmqs_event* ev) noexcept : p_(ev) {}
    Event(const Event&) = delete;
    Event& operator=(const Event&) = delete;
    Event(Event&& o) noexcept : p_(o.release()) {}
    Event& operator=(Event&& o) noexcept {
        if (this != &o) {
            reset(o.release());
        }
        return *this;
    }
    ~Event() { reset(); }

    event_type type() const noexcept { return static_cast<event_type>(rmqs_event_type(p_)); }
    event_source source() const noexcept { return static_cast<event_source>(rmqs_event_source(p_)); }
    /** The tag given when the producer or consumer that sent it was created. */
    std::size_t tag() const noexcept { return rmqs_event_source_tag(p_); }
    /** The chunk of a chunk event (empty otherwise), valid until this event is destroyed. */
    ChunkRef chunk() const noexcept { return ChunkRef(rmqs_event_chunk(p_)); }
    /** The confirms of a confirms event (empty otherwise). */
    strided_span<confirm> confirms() const noexcept {
        std::size_t n = 0;
        std::size_t stride = 0;
        const confirm* c = rmqs_event_confirms(p_, &n, &stride);
        return strided_span<confirm>(c, n, stride);
    }
    /** The confirms of a super producer's confirms event (empty otherwise). */
    strided_span<super_confirm> super_confirms() const noexcept {
        std::size_t n = 0;
        std::size_t stride = 0;
        const super_confirm* c = rmqs_event_super_confirms(p_, &n, &stride);
        return strided_span<super_confirm>(c, n, stride);
    }
    /** The partition an event of a super producer or consumer concerns; nullopt otherwise. */
    std::optional<std::size_t> partition() const noexcept {
        const std::int32_t p = rmqs_event_partition(p_);
        return p < 0 ? std::nullopt : std::optional<std::size_t>(static_cast<std::size_t>(p));
    }
    /** The change of a consumer-update event (single active consumer); nullopt otherwise. */
    std::optional<consumer_update> update() const noexcept {
        const rmqs_consumer_update_info* i = rmqs_event_consumer_update(p_);
        return i == nullptr ? std::nullopt : std::optional<consumer_update>(consumer_update::of(*i));
    }
    /** Answers a consumer-update event: where the consumer starts (freeing the event unanswered
     * answers the default). False when the answer came too late (the default was used). */
    bool reply(offset_spec where) {
        Error err;
        const rmqs_status st = rmqs_event_consumer_update_reply(p_, where.spec, err.out());
        if (st == RMQS_ERR_TIMEOUT) {
            return false;
        }
        detail::check(st, err);
        return true;
    }
    /** The state of a state event (RMQS_STATE_CLOSED); 0 otherwise. */
    std::int32_t state() const noexcept { return rmqs_event_state(p_); }
    /** A state event saying the object closed (its last event). */
    bool closed() const noexcept { return rmqs_event_state(p_) == RMQS_STATE_CLOSED; }
    /** Why (state and error events); RMQS_OK otherwise. */
    rmqs_status status() const noexcept { return rmqs_event_status(p_); }
    /** The reason's text (state and error events); "" otherwise. */
    std::string_view message() const noexcept { return rmqs_event_message(p_); }

    explicit operator bool() const noexcept { return p_ != nullptr; }
    rmqs_event* get() const noexcept { return p_; }
    rmqs_event* release() noexcept {
        rmqs_event* e = p_;
        p_ = nullptr;
        return e;
    }
    void reset(rmqs_event* ev = nullptr) noexcept {
        if (p_ != nullptr) {
            rmqs_event_free(p_);
        }
        p_ = ev;
    }

private:
    rmqs_event* p_ = nullptr;
};

/**
 * An event queue (owns an rmqs_queue): producers and consumers created with it deliver their
 * confirms, chunks, errors and state changes here, to be polled on the application's threads.
 * Thread-safe, except destruction (not while another thread polls).
 */
class Queue {
public:
    /** A new queue. */
    Queue() {
        Error err;
        detail::check(rmqs_queue_new(&p_, err.out()), err);
    }
    /** Adopts `q`. */
    explicit Queue(rmqs_queue* q) noexcept : p_(q) {}
    Queue(const Queue&) = delete;
    Queue& operator=(const Queue&) = delete;
    Queue(Queue&& o) noexcept : p_(o.release()) {}
    Queue& operator=(Queue&& o) noexcept {
        if (this != &o) {
            reset(o.release());
        }
        return *this;
    }
    ~Queue() { reset(); }

    /**
     * The next event, waiting up to `timeout`; an empty Event on timeout, after wakeup(), or
     * from a library callback with a non-zero timeout (rmqs_queue_poll() tells these apart
     * by its status).
     */
    Event poll(std::chrono::milliseconds timeout = no_timeout) const noexcept {
        rmqs_event* ev = nullptr;
        (void)rmqs_queue_poll(p_, detail::to_ms(timeout), &ev, nullptr);
        return Event(ev);
    }

    /**
     * Appends up to `max` events to `out`, waiting up to `timeout` for the first one. Returns
     * how many were appended (0 on timeout or wakeup).
     */
    std::size_t poll_batch(std::vector<Event>& out, std::size_t max,
                           std::chrono::milliseconds timeout = no_timeout) const {
        out.reserve(out.size() + max);  // before polling: no event is lost to bad_alloc
        rmqs_event* buf[64];
        std::size_t total = 0;
        std::int32_t wait = detail::to_ms(timeout);
        while (total < max) {
            const std::size_t want = std::min(max - total, sizeof buf / sizeof buf[0]);
            std::size_t got = 0;
            (void)rmqs_queue_poll_batch(p_, buf, want, wait, &got, nullptr);
            for (std::size_t i = 0; i < got; i++) {
                out.emplace_back(buf[i]);
            }
            total += got;
            if (got < want) {
                break;
            }
            wait = 0;
        }
        return total;
    }

    /** Makes one blocked (or the next) poll return without an event. Callable anywhere. */
    void wakeup() const noexcept { rmqs_queue_wakeup(p_); }
    /** Events waiting. */
    std::size_t size() const noexcept { return rmqs_queue_len(p_); }
    /** A fd readable while events wait (Linux; -1 elsewhere). Owned by the queue. */
    int fd() const noexcept { return rmqs_queue_fd(p_); }

    explicit operator bool() const noexcept { return p_ != nullptr; }
    rmqs_queue* get() const noexcept { return p_; }
    rmqs_queue* release() noexcept {
        rmqs_queue* q = p_;
        p_ = nullptr;
        return q;
    }
    void reset(rmqs_queue* q = nullptr) noexcept {
        if (p_ != nullptr) {
            rmqs_queue_free(p_);
        }
        p_ = q;
    }

private:
    rmqs_queue* p_ = nullptr;
};

// ---------------------------------------------------------------------------------------------
// The shared base of Producer, Consumer, SuperProducer and SuperConsumer

/** Receives a batch of confirms on the producer's dispatcher thread. */
using confirm_handler = std::function<void(strided_span<confirm> confirms)>;
/** Receives a batch of a super producer's confirms (each names its partition). */
using super_confirm_handler = std::function<void(strided_span<super_confirm> confirms)>;
/** Receives a chunk on the consumer's dispatcher thread (valid until it returns). */
using chunk_handler = std::function<void(ChunkRef chunk)>;

namespace detail {

/**
 * What Producer, Consumer, SuperProducer and SuperConsumer share: ownership of the C handle
 * and of the handler's state (move-only; the destructor frees both exactly once), close(),
 * check(), stats(), reset(). `Close`, `Free` and `Stats` are the C functions of the handle.
 */
template <class Handle, class Handler, class Statistics, auto Close, auto Free, auto Stats>
class object {
public:
    using handle_type = Handle;
    using handler_type = Handler;
    using statistics_type = Statistics;

    object() noexcept = default;
    object(const object&) = delete;
    object& operator=(const object&) = delete;
    object(object&& o) noexcept : p_(std::exchange(o.p_, nullptr)), state_(std::exchange(o.state_, nullptr)) {}
    object& operator=(object&& o) noexcept {
        if (this != &o) {
            reset();
            p_ = std::exchange(o.p_, nullptr);
            state_ = std::exchange(o.state_, nullptr);
        }
        return *this;
    }
    ~object() { reset(); }

    /**
     * Closes (producers: no more sends, waits up to `timeout` for outstanding confirms, those
     * still missing complete with an error; consumers: unsubscribes), then rethrows the
     * handler's pending exception, if any. False on timeout (closed all the same). Closing
     * again returns true.
     */
    bool close(std::chrono::milliseconds timeout = no_timeout) {
        Error err;
        const rmqs_status st = Close(p_, to_ms(timeout), err.out());
        check();
        if (st == RMQS_ERR_TIMEOUT) {
            return false;
        }
        detail::check(st, err);
        return true;
    }

    /** Rethrows (once) an exception that escaped the handler. */
    void check() {
        if (state_ != nullptr) {
            state_->rethrow_pending();
        }
    }

    /** Counters (also after close). */
    Statistics stats() const {
        Statistics s{};
        s.size = sizeof s;
        Error err;
        detail::check(Stats(static_cast<const Handle*>(p_), &s, err.out()), err);
        return s;
    }

    explicit operator bool() const noexcept { return p_ != nullptr; }
    Handle* get() const noexcept { return p_; }

    /**
     * Frees the object now (closing it first, up to 5 s): after it returns no handler call
     * runs any more (unless called from a library callback, where freeing moves to a
     * background thread). A pending handler exception is discarded.
     */
    void reset() noexcept {
        if (p_ == nullptr) {
            return;
        }
        if (state_ != nullptr) {
            state_->detach();
        }
        Free(p_);  // runs user_data_free: deletes state_, exactly once
        p_ = nullptr;
        state_ = nullptr;
    }

protected:
    friend class rmqs::Connection;
    using state = callback_state<Handler, Handle, Close>;

    /** After *_new succeeded: owns `p`; the library owns `st` (freed by user_data_free). */
    void adopt(Handle* p, std::unique_ptr<state> st) noexcept {
        p_ = p;
        state_ = st.release();
        if (state_ != nullptr) {
            state_->attach(p);  // events may have arrived already: closes if the handler threw
        }
    }

    /** flush() of producers and super producers: false on timeout. */
    template <auto Flush>
    bool flush_with(std::chrono::milliseconds timeout) {
        check();
        Error err;
        const rmqs_status st = Flush(p_, to_ms(timeout), err.out());
        check();
        if (st == RMQS_ERR_TIMEOUT) {
            return false;
        }
        detail::check(st, err);
        return true;
    }

    Handle* p_ = nullptr;
    state* state_ = nullptr;  // owned by the library once p_ exists
};

/** Sends `n` items in slices of 64, throwing batch_error with the accepted prefix. */
template <class Send>
void send_in_slices(std::size_t n, Send send_slice) {
    std::size_t done = 0;
    while (done < n) {
        const std::size_t count = std::min<std::size_t>(n - done, 64);
        std::size_t accepted = 0;
        Error err;
        const rmqs_status st = send_slice(done, count, &accepted, err);
        done += accepted;
        if (st != RMQS_OK) {
            throw batch_error(st, err ? err.message() : rmqs_status_str(st), done);
        }
    }
}

}  // namespace detail

// ---------------------------------------------------------------------------------------------
// Producer

/**
 * A producer (owns an rmqs_producer). Created by Connection::create_producer(). Thread-safe,
 * except moving and destruction. The destructor closes it (up to 5 s for confirms, as
 * rmqs_producer_free) and frees the confirm handler. close(), check(), stats(), reset() as
 * every object (detail::object).
 */
class Producer : public detail::object<rmqs_producer, confirm_handler, producer_statistics, &rmqs_producer_close,
                                       &rmqs_producer_free, &rmqs_producer_stats> {
public:
    /**
     * Sends one message (the body is copied); its confirm follows with `tag`. Waits for room
     * when max_in_flight are unconfirmed (unless send_no_block). Throws rmqs::error
     * (RMQS_ERR_QUEUE_FULL, RMQS_ERR_TIMEOUT, RMQS_ERR_CLOSED, ...) or the confirm handler's
     * pending exception.
     */
    void send(bytes body, std::size_t tag = 0, std::uint32_t flags = 0) {
        check();
        Error err;
        detail::check(rmqs_producer_send(p_, body.data(), body.size(), tag, flags, err.out()), err);
    }

    /** send() that never waits for room: false (nothing sent) when the producer is full. */
    [[nodiscard]] bool try_send(bytes body, std::size_t tag = 0, std::uint32_t flags = 0) {
        check();
        Error err;
        const rmqs_status st =
            rmqs_producer_send(p_, body.data(), body.size(), tag, flags | send_no_block, err.out());
        if (st == RMQS_ERR_QUEUE_FULL) {
            return false;
        }
        detail::check(st, err);
        return true;
    }

    /** Sends with a filter value and/or an explicit publishing id; returns the id used. */
    std::uint64_t send(bytes body, const send_options& options) {
        check();
        std::optional<detail::cstr> filter;
        if (options.filter_value) {
            filter.emplace(*options.filter_value, "filter value");
        }
        std::uint32_t flags = options.flags;
        if (options.publishing_id) {
            flags |= RMQS_SEND_PUBLISHING_ID;
        }
        std::uint64_t id = 0;
        Error err;
        detail::check(rmqs_producer_send_ex(p_, body.data(), body.size(),
                                            filter ? filter->c_str() : nullptr,
                                            options.publishing_id.value_or(0), options.tag, flags,
                                            &id, err.out()),
                      err);
        return id;
    }

    /**
     * Sends an AMQP message (every section, its filter value and publishing id; copied, so
     * `msg` may be reset as soon as this returns). Returns the publishing id used. `flags`:
     * send_no_block or 0.
     */
    std::uint64_t send(const MessageBuilder& msg, std::size_t tag = 0, std::uint32_t flags = 0) {
        check();
        std::uint64_t id = 0;
        Error err;
        detail::check(rmqs_producer_send_message(p_, msg.get(), tag, flags, &id, err.out()), err);
        return id;
    }

    /**
     * Sends `msg`'s sections with `body` as its one data section, in place of its own body
     * (rmqs_producer_send_message_body): for messages that differ only in their body, one
     * builder set up once and never changed (several threads may share it). Returns the
     * publishing id used. `flags`: send_no_block or 0.
     */
    std::uint64_t send_body(const MessageBuilder& msg, bytes body, std::size_t tag = 0,
                            std::uint32_t flags = 0) {
        check();
        std::uint64_t id = 0;
        Error err;
        detail::check(
            rmqs_producer_send_message_body(p_, msg.get(), body.data(), body.size(), tag, flags, &id, err.out()),
            err);
        return id;
    }

    /** Sends AMQP messages in order; batch_error says how many (a prefix) were accepted. */
    void send_batch(span<const MessageBuilder* const> msgs, span<const std::size_t> tags = {},
                    std::uint32_t flags = 0) {
        check();
        if (!tags.empty() && tags.size() != msgs.size()) {
            throw batch_error(RMQS_ERR_INVALID_ARGUMENT, "send_batch: one tag per message, or none", 0);
        }
        detail::send_in_slices(msgs.size(), [&](std::size_t done, std::size_t n, std::size_t* accepted, Error& err) {
            const rmqs_message_builder* buf[64];
            for (std::size_t i = 0; i < n; i++) {
                buf[i] = msgs[done + i]->get();
            }
            return rmqs_producer_send_messages(p_, buf, tags.empty() ? nullptr : tags.data() + done, n, flags,
                                               accepted, err.out());
        });
    }

    /**
     * Sends messages in order (tags: one per body, or empty for 0 everywhere). Throws
     * rmqs::batch_error, whose accepted() says how many (a prefix) were accepted, when one is
     * refused. Other threads' sends may interleave every 64 messages.
     */
    void send_batch(span<const bytes> bodies, span<const std::size_t> tags = {}, std::uint32_t flags = 0) {
        check();
        if (!tags.empty() && tags.size() != bodies.size()) {
            throw batch_error(RMQS_ERR_INVALID_ARGUMENT, "send_batch: one tag per body, or none", 0);
        }
        detail::send_in_slices(bodies.size(), [&](std::size_t done, std::size_t n, std::size_t* accepted, Error& err) {
            rmqs_bytes buf[64];
            for (std::size_t i = 0; i < n; i++) {
                buf[i].data = bodies[done + i].data();
                buf[i].len = bodies[done + i].size();
            }
            return rmqs_producer_send_batch(p_, buf, tags.empty() ? nullptr : tags.data() + done, n, flags, accepted,
                                            err.out());
        });
    }

    /** send_batch() of a braced list: send_batch({"a", "b"}, {1, 2}). */
    void send_batch(std::initializer_list<bytes> bodies, std::initializer_list<std::size_t> tags = {},
                    std::uint32_t flags = 0) {
        send_batch(span<const bytes>(bodies.begin(), bodies.size()),
                   span<const std::size_t>(tags.begin(), tags.size()), flags);
    }

    /**
     * Sends what is batched and waits until every accepted message has its confirm (and its
     * handler call returned). False when some were still unconfirmed at the deadline.
     */
    [[nodiscard]] bool flush(std::chrono::milliseconds timeout = no_timeout) {
        return flush_with<&rmqs_producer_flush>(timeout);
    }

    /** The last publishing id assigned; nullopt when none yet. */
    std::optional<std::uint64_t> last_id() const noexcept {
        std::uint64_t id = 0;
        if (!rmqs_producer_last_id(p_, &id)) {
            return std::nullopt;
        }
        return id;
    }

private:
    friend class Connection;
    static void trampoline(void* user_data, const rmqs_confirm* confirms, std::size_t count,
                           std::size_t stride) noexcept {
        state::run(user_data, strided_span<confirm>(confirms, count, stride));
    }
};

// ---------------------------------------------------------------------------------------------
// Consumer

/**
 * A consumer (owns an rmqs_consumer). Created by Connection::create_consumer(). Thread-safe,
 * except moving and destruction. The destructor closes it and frees the chunk handler.
 */
class Consumer : public detail::object<rmqs_consumer, chunk_handler, consumer_statistics, &rmqs_consumer_close,
                                       &rmqs_consumer_free, &rmqs_consumer_stats> {
public:
    /** Grants the broker `credits` (1-32767) more chunks (the `manual` credit policy). */
    void credit(std::uint32_t credits) {
        check();
        Error err;
        detail::check(rmqs_consumer_credit(p_, credits, err.out()), err);
    }

    /** Stores `offset` under the consumer's name (no answer from the broker). Does not block:
     * callable from the chunk handler. */
    void store_offset(std::uint64_t offset) {
        check();
        Error err;
        detail::check(rmqs_consumer_store_offset(p_, offset, err.out()), err);
    }

    /** Stores the processed offset (tracking); nullopt when there was nothing new to store. */
    std::optional<std::uint64_t> store_processed_offset() {
        check();
        std::uint64_t out = 0;
        Error err;
        const rmqs_status st = rmqs_consumer_store_processed_offset(p_, &out, err.out());
        if (st == RMQS_ERR_NO_OFFSET) {
            return std::nullopt;
        }
        detail::check(st, err);
        return out;
    }

    /** The offset stored under the consumer's name; nullopt when none is. */
    std::optional<std::uint64_t> query_offset() {
        check();
        std::uint64_t out = 0;
        Error err;
        const rmqs_status st = rmqs_consumer_query_offset(p_, &out, err.out());
        if (st == RMQS_ERR_NO_OFFSET) {
            return std::nullopt;
        }
        detail::check(st, err);
        return out;
    }

    /** Whether it receives now (a single active consumer: whether it is the active one). */
    bool is_active() const noexcept { return rmqs_consumer_is_active(p_); }

private:
    friend class Connection;
    static void trampoline(void* user_data, const rmqs_chunk* chunk) noexcept {
        state::run(user_data, ChunkRef(chunk));
    }
};

// ---------------------------------------------------------------------------------------------
// SuperProducer

/** Where a super producer's message went. */
struct super_send_result {
    /** The partition's index (the first one when routing gave several). */
    std::uint32_t partition;
    /** The publishing id on that partition. */
    std::uint64_t publishing_id;
};

/**
 * A producer on a super stream (owns an rmqs_super_producer): routes each message to a
 * partition by its routing key (hash, the broker's bindings, or Config::set_routing()), with
 * one producer per partition. Created by Connection::create_super_producer(). Thread-safe,
 * except moving and destruction; confirms (super_confirm: each names its partition) to the
 * handler or the queue.
 */
class SuperProducer
    : public detail::object<rmqs_super_producer, super_confirm_handler, producer_statistics,
                            &rmqs_super_producer_close, &rmqs_super_producer_free, &rmqs_super_producer_stats> {
public:
    /**
     * Sends one body to the partition of `routing_key` (nullopt: the config's key extractor
     * gives it). Returns where it went.
     */
    super_send_result send(std::optional<std::string_view> routing_key, bytes body, std::size_t tag = 0,
                           std::uint32_t flags = 0) {
        check();
        std::optional<detail::cstr> key;
        super_send_result out{};
        Error err;
        detail::check(rmqs_super_producer_send_ex(p_, routing_key_arg(key, routing_key), body.data(), body.size(),
                                                  nullptr, 0, tag, flags, &out.partition, &out.publishing_id,
                                                  err.out()),
                      err);
        return out;
    }

    /** Sends an AMQP message (the key extractor and routing function are given it). */
    super_send_result send(std::optional<std::string_view> routing_key, const MessageBuilder& msg,
                           std::size_t tag = 0, std::uint32_t flags = 0) {
        check();
        std::optional<detail::cstr> key;
        super_send_result out{};
        Error err;
        detail::check(rmqs_super_producer_send_message(p_, routing_key_arg(key, routing_key), msg.get(), tag, flags,
                                                       &out.partition, &out.publishing_id, err.out()),
                      err);
        return out;
    }

    /**
     * Sends `msg`'s sections with `body` as its one data section, in place of its own body
     * (rmqs_super_producer_send_message_body), as Producer::send_body does: one builder set up
     * once and never changed (several threads may share it). The key extractor and routing
     * function are given `msg` and `body` (the body sent, not the builder's own). Returns
     * where it went.
     */
    super_send_result send_body(std::optional<std::string_view> routing_key, const MessageBuilder& msg, bytes body,
                                std::size_t tag = 0, std::uint32_t flags = 0) {
        check();
        std::optional<detail::cstr> key;
        super_send_result out{};
        Error err;
        detail::check(rmqs_super_producer_send_message_body(p_, routing_key_arg(key, routing_key), msg.get(),
                                                            body.data(), body.size(), tag, flags, &out.partition,
                                                            &out.publishing_id, err.out()),
                      err);
        return out;
    }

    /**
     * Sends bodies in order, each routed by its key (`keys`: one per body, or empty for the
     * key extractor everywhere). Throws batch_error with how many (a prefix) were accepted.
     */
    void send_batch(span<const std::string> keys, span<const bytes> bodies, span<const std::size_t> tags = {},
                    std::uint32_t flags = 0) {
        check_batch(keys, bodies.size(), tags);
        detail::send_in_slices(bodies.size(), [&](std::size_t done, std::size_t n, std::size_t* accepted, Error& err) {
            rmqs_bytes buf[64];
            const char* k[64];
            for (std::size_t i = 0; i < n; i++) {
                buf[i].data = bodies[done + i].data();
                buf[i].len = bodies[done + i].size();
                k[i] = keys.empty() ? nullptr : keys[done + i].c_str();
            }
            return rmqs_super_producer_send_batch(p_, keys.empty() ? nullptr : k, buf,
                                                  tags.empty() ? nullptr : tags.data() + done, n, flags, accepted,
                                                  err.out());
        });
    }

    /** Sends AMQP messages in order, each routed by its key (or the key extractor). */
    void send_batch(span<const std::string> keys, span<const MessageBuilder* const> msgs,
                    span<const std::size_t> tags = {}, std::uint32_t flags = 0) {
        check_batch(keys, msgs.size(), tags);
        detail::send_in_slices(msgs.size(), [&](std::size_t done, std::size_t n, std::size_t* accepted, Error& err) {
            const rmqs_message_builder* buf[64];
            const char* k[64];
            for (std::size_t i = 0; i < n; i++) {
                buf[i] = msgs[done + i]->get();
                k[i] = keys.empty() ? nullptr : keys[done + i].c_str();
            }
            return rmqs_super_producer_send_messages(p_, keys.empty() ? nullptr : k, buf,
                                                     tags.empty() ? nullptr : tags.data() + done, n, flags, accepted,
                                                     err.out());
        });
    }

    /** Waits until every accepted message has its confirm; false on timeout. */
    [[nodiscard]] bool flush(std::chrono::milliseconds timeout = no_timeout) {
        return flush_with<&rmqs_super_producer_flush>(timeout);
    }

    /** Asks the broker for the partitions again; returns their number. */
    std::size_t refresh() {
        check();
        std::size_t n = 0;
        Error err;
        detail::check(rmqs_super_producer_refresh(p_, &n, err.out()), err);
        return n;
    }

    /** The number of partitions (as of creation or the last refresh). */
    std::size_t partition_count() const noexcept { return rmqs_super_producer_partition_count(p_); }
    /** Partition `i`'s stream; "" out of range. */
    std::string_view partition(std::size_t i) const noexcept {
        const char* s = rmqs_super_producer_partition(p_, i);
        return s != nullptr ? s : "";
    }

private:
    friend class Connection;
    /** `routing_key` as the C API takes it: NULL for nullopt, else its copy made in `slot`. */
    static const char* routing_key_arg(std::optional<detail::cstr>& slot,
                                       std::optional<std::string_view> routing_key) {
        if (!routing_key) {
            return nullptr;
        }
        return slot.emplace(*routing_key, "routing key").c_str();
    }
    void check_batch(span<const std::string> keys, std::size_t n, span<const std::size_t> tags) {
        check();
        if ((!keys.empty() && keys.size() != n) || (!tags.empty() && tags.size() != n)) {
            throw batch_error(RMQS_ERR_INVALID_ARGUMENT, "send_batch: one key and one tag per message, or none", 0);
        }
        for (const std::string& k : keys) {
            if (k.find('\0') != std::string::npos) {
                throw batch_error(RMQS_ERR_INVALID_ARGUMENT, "send_batch: a routing key contains a NUL byte", 0);
            }
        }
    }
    static void trampoline(void* user_data, const rmqs_super_confirm* confirms, std::size_t count,
                           std::size_t stride) noexcept {
        state::run(user_data, strided_span<super_confirm>(confirms, count, stride));
    }
};

// ---------------------------------------------------------------------------------------------
// SuperConsumer

/**
 * A consumer of every partition of a super stream (owns an rmqs_super_consumer). Created by
 * Connection::create_super_consumer(). Chunks say their partition (ChunkRef::partition()).
 * With `single_active_consumer` and a `name`, the broker spreads the partitions over the
 * group's super consumers (Config::set_consumer_update_handler() or consumer-update events).
 * Thread-safe, except moving and destruction.
 */
class SuperConsumer
    : public detail::object<rmqs_super_consumer, chunk_handler, consumer_statistics, &rmqs_super_consumer_close,
                            &rmqs_super_consumer_free, &rmqs_super_consumer_stats> {
public:
    /** Grants partition `i` `credits` more chunks. */
    void credit(std::size_t i, std::uint32_t credits) {
        check();
        Error err;
        detail::check(rmqs_super_consumer_credit(p_, i, credits, err.out()), err);
    }

    /** Stores `offset` for partition `i` under the super consumer's name. Does not block. */
    void store_offset(std::size_t i, std::uint64_t offset) {
        check();
        Error err;
        detail::check(rmqs_super_consumer_store_offset(p_, i, offset, err.out()), err);
    }

    /** The offset stored for partition `i`; nullopt when none is. */
    std::optional<std::uint64_t> query_offset(std::size_t i) {
        check();
        std::uint64_t out = 0;
        Error err;
        const rmqs_status st = rmqs_super_consumer_query_offset(p_, i, &out, err.out());
        if (st == RMQS_ERR_NO_OFFSET) {
            return std::nullopt;
        }
        detail::check(st, err);
        return out;
    }

    /** Subscribes added partitions and lost ones again; returns the partition count. */
    std::size_t refresh() {
        check();
        std::size_t n = 0;
        Error err;
        detail::check(rmqs_super_consumer_refresh(p_, &n, err.out()), err);
        return n;
    }

    std::size_t partition_count() const noexcept { return rmqs_super_consumer_partition_count(p_); }
    std::string_view partition(std::size_t i) const noexcept {
        const char* s = rmqs_super_consumer_partition(p_, i);
        return s != nullptr ? s : "";
    }
    /** Whether it receives from partition `i` now (single active consumer: is the active one). */
    bool is_active(std::size_t i) const noexcept { return rmqs_super_consumer_is_active(p_, i); }

private:
    friend class Connection;
    static void trampoline(void* user_data, const rmqs_chunk* chunk) noexcept {
        state::run(user_data, ChunkRef(chunk));
    }
};

// ---------------------------------------------------------------------------------------------
// Connection

/**
 * A connection to a node or cluster (owns an rmqs_connection): stream management, producers
 * and consumers. Thread-safe, except close-by-destruction and moves. The destructor closes it
 * (up to 5 s) and stops its threads.
 */
class Connection {
public:
    Connection() noexcept = default;
    /** Adopts `c`. */
    explicit Connection(rmqs_connection* c) noexcept : p_(c) {}
    Connection(const Connection&) = delete;
    Connection& operator=(const Connection&) = delete;
    Connection(Connection&& o) noexcept : p_(std::exchange(o.p_, nullptr)) {}
    Connection& operator=(Connection&& o) noexcept {
        if (this != &o) {
            reset(std::exchange(o.p_, nullptr));
        }
        return *this;
    }
    ~Connection() { reset(); }

    /** Opens a connection from a URI (rabbitmq-stream://user:pass@host:port/vhost). Blocks. */
    [[nodiscard]] static Connection open(std::string_view uri) {
        const detail::cstr u(uri, "uri");
        rmqs_connection* c = nullptr;
        Error err;
        detail::check(rmqs_connection_open_uri(u.c_str(), &c, err.out()), err);
        return Connection(c);
    }
    /** Opens a connection configured by `cfg` (copied). Blocks unless lazy_open. */
    [[nodiscard]] static Connection open(const Config& cfg) {
        rmqs_connection* c = nullptr;
        Error err;
        detail::check(rmqs_connection_open(cfg.get(), &c, err.out()), err);
        return Connection(c);
    }

    /**
     * Closes producers and consumers (waiting for confirms) and the connections, up to
     * `timeout` (zero: in the background). Later calls fail with RMQS_ERR_CLOSED.
     */
    void close(std::chrono::milliseconds timeout = no_timeout) {
        Error err;
        detail::check(rmqs_connection_close(p_, detail::to_ms(timeout), err.out()), err);
    }

    /** What the connection agreed with the broker at its handshake. */
    struct negotiated_params {
        /** The largest frame either side may send, in bytes (0: unlimited). */
        std::uint32_t frame_max;
        /** The heartbeat period (0: none). */
        std::chrono::seconds heartbeat;
    };
    /** The agreed frame size and heartbeat (connects first with lazy_open). */
    negotiated_params negotiated() const {
        std::uint32_t frame_max = 0;
        std::uint32_t heartbeat = 0;
        Error err;
        detail::check(rmqs_connection_negotiated(p_, &frame_max, &heartbeat, err.out()), err);
        return negotiated_params{frame_max, std::chrono::seconds(heartbeat)};
    }

    /** The broker's version, e.g. "4.0.5"; "" before a lazy connection connected. */
    std::string_view server_version() const noexcept { return rmqs_connection_server_version(p_); }
    /** Whether the broker accepts version `version` of protocol command `command`. */
    bool supports(std::uint16_t command, std::uint16_t version) const noexcept {
        return rmqs_connection_supports(p_, command, version);
    }
    /** Counters of the connection. */
    connection_statistics stats() const {
        connection_statistics s{};
        s.size = sizeof s;
        Error err;
        detail::check(rmqs_connection_stats(static_cast<const rmqs_connection*>(p_), &s, err.out()), err);
        return s;
    }

    // ---- streams ----

    /** Creates a stream; throws rmqs::error RMQS_ERR_STREAM_ALREADY_EXISTS when it exists. */
    void create_stream(std::string_view name) const { create_stream_impl(name, nullptr, false); }
    /** With stream arguments (max_length_bytes, max_age, ...: see rmqs_config_set()). */
    void create_stream(std::string_view name, const Config& args) const {
        create_stream_impl(name, args.get(), false);
    }
    /** Creates a stream unless it exists: true when created, false when it existed already. */
    bool ensure_stream(std::string_view name) const { return create_stream_impl(name, nullptr, true); }
    bool ensure_stream(std::string_view name, const Config& args) const {
        return create_stream_impl(name, args.get(), true);
    }
    /** Deletes a stream; throws RMQS_ERR_STREAM_DOES_NOT_EXIST when it does not exist. */
    void delete_stream(std::string_view name) const {
        const detail::cstr n(name, "stream name");
        Error err;
        detail::check(rmqs_stream_delete(p_, n.c_str(), err.out()), err);
    }
    /** Whether the stream exists. */
    bool stream_exists(std::string_view name) const {
        const detail::cstr n(name, "stream name");
        bool out = false;
        Error err;
        detail::check(rmqs_stream_exists(p_, n.c_str(), &out, err.out()), err);
        return out;
    }
    /** First, committed and last chunk ids (RabbitMQ 3.11+). */
    stream_statistics stream_stats(std::string_view name) const {
        const detail::cstr n(name, "stream name");
        stream_statistics out{};
        out.size = sizeof out;
        Error err;
        detail::check(rmqs_stream_stats(p_, n.c_str(), &out, err.out()), err);
        return out;
    }
    /** Leader and replicas of a stream. */
    stream_metadata metadata(std::string_view name) const {
        const detail::cstr n(name, "stream name");
        rmqs_metadata* md = nullptr;
        Error err;
        detail::check(rmqs_stream_metadata(p_, n.c_str(), &md, err.out()), err);
        std::unique_ptr<rmqs_metadata, void (*)(rmqs_metadata*)> owner(md, rmqs_metadata_free);
        stream_metadata out;
        if (const char* host = rmqs_metadata_leader_host(md)) {
            out.leader = endpoint{host, rmqs_metadata_leader_port(md)};
        }
        const std::size_t n_replicas = rmqs_metadata_replica_count(md);
        for (std::size_t i = 0; i < n_replicas; i++) {
            std::uint16_t port = 0;
            if (const char* host = rmqs_metadata_replica(md, i, &port)) {
                out.replicas.push_back(endpoint{host, port});
            }
        }
        return out;
    }

    // ---- offsets and publishing ids ----

    /** The offset stored under `reference` for `stream`; nullopt when none is. */
    std::optional<std::uint64_t> query_offset(std::string_view reference, std::string_view stream) const {
        const detail::cstr r(reference, "reference");
        const detail::cstr s(stream, "stream name");
        std::uint64_t out = 0;
        Error err;
        const rmqs_status st = rmqs_stream_query_offset(p_, r.c_str(), s.c_str(), &out, err.out());
        if (st == RMQS_ERR_NO_OFFSET) {
            return std::nullopt;
        }
        detail::check(st, err);
        return out;
    }
    /** Stores `offset` under `reference` for `stream` (the broker does not answer). Refused
     * in library callbacks (RMQS_ERR_WOULD_DEADLOCK): there, use Consumer::store_offset(). */
    void store_offset(std::string_view reference, std::string_view stream, std::uint64_t offset) const {
        const detail::cstr r(reference, "reference");
        const detail::cstr s(stream, "stream name");
        Error err;
        detail::check(rmqs_stream_store_offset(p_, r.c_str(), s.c_str(), offset, err.out()), err);
    }
    /** The last publishing id the broker kept for producer `reference` on `stream` (0: none). */
    std::uint64_t query_producer_sequence(std::string_view reference, std::string_view stream) const {
        const detail::cstr r(reference, "reference");
        const detail::cstr s(stream, "stream name");
        std::uint64_t out = 0;
        Error err;
        detail::check(rmqs_stream_query_sequence(p_, r.c_str(), s.c_str(), &out, err.out()), err);
        return out;
    }

    // ---- super streams (RabbitMQ 3.13+) ----

    /** Partitions <name>-0 .. <name>-<n-1> bound with keys "0" .. "<n-1>". */
    void create_super_stream(std::string_view name, std::uint32_t partitions) const {
        create_super_stream_n(name, partitions, nullptr);
    }
    void create_super_stream(std::string_view name, std::uint32_t partitions, const Config& args) const {
        create_super_stream_n(name, partitions, args.get());
    }
    /** Named partitions, one binding key each. */
    void create_super_stream(std::string_view name, const std::vector<std::string>& partitions,
                             const std::vector<std::string>& binding_keys) const {
        create_super_stream_list(name, partitions, binding_keys, nullptr);
    }
    void create_super_stream(std::string_view name, const std::vector<std::string>& partitions,
                             const std::vector<std::string>& binding_keys, const Config& args) const {
        create_super_stream_list(name, partitions, binding_keys, args.get());
    }
    void delete_super_stream(std::string_view name) const {
        const detail::cstr n(name, "super stream name");
        Error err;
        detail::check(rmqs_super_stream_delete(p_, n.c_str(), err.out()), err);
    }
    /** The partitions, in routing order. */
    std::vector<std::string> super_stream_partitions(std::string_view name) const {
        const detail::cstr n(name, "super stream name");
        rmqs_strings* list = nullptr;
        Error err;
        detail::check(rmqs_super_stream_partitions(p_, n.c_str(), &list, err.out()), err);
        return detail::take_strings(list);
    }
    /** The partitions `routing_key` is bound to (possibly none). */
    std::vector<std::string> super_stream_route(std::string_view routing_key, std::string_view name) const {
        const detail::cstr k(routing_key, "routing key");
        const detail::cstr n(name, "super stream name");
        rmqs_strings* list = nullptr;
        Error err;
        detail::check(rmqs_super_stream_route(p_, k.c_str(), n.c_str(), &list, err.out()), err);
        return detail::take_strings(list);
    }

    // ---- producers ----

    /** A producer without confirm handler (fire and forget; flush() still waits). */
    [[nodiscard]] Producer create_producer(std::string_view stream) const {
        return make_producer(stream, nullptr, confirm_handler(), nullptr, 0);
    }
    [[nodiscard]] Producer create_producer(std::string_view stream, const Config& cfg) const {
        return make_producer(stream, cfg.get(), confirm_handler(), nullptr, 0);
    }
    /** Confirms to `on_confirms` (void(rmqs::strided_span<rmqs::confirm>)). */
    [[nodiscard]] Producer create_producer(std::string_view stream, confirm_handler on_confirms) const {
        return make_producer(stream, nullptr, std::move(on_confirms), nullptr, 0);
    }
    [[nodiscard]] Producer create_producer(std::string_view stream, const Config& cfg,
                                           confirm_handler on_confirms) const {
        return make_producer(stream, cfg.get(), std::move(on_confirms), nullptr, 0);
    }
    /** Confirms (unless `on_confirms`) and state events to `queue`, with `tag`. */
    [[nodiscard]] Producer create_producer(std::string_view stream, const Config& cfg, const Queue& queue,
                                           std::size_t tag = 0, confirm_handler on_confirms = {}) const {
        return make_producer(stream, cfg.get(), std::move(on_confirms), queue.get(), tag);
    }

    // ---- consumers ----

    /** Chunks to `on_chunk` (void(rmqs::ChunkRef)); default offset `next`. */
    [[nodiscard]] Consumer create_consumer(std::string_view stream, chunk_handler on_chunk) const {
        return make_consumer(stream, nullptr, std::move(on_chunk), nullptr, 0);
    }
    [[nodiscard]] Consumer create_consumer(std::string_view stream, const Config& cfg,
                                           chunk_handler on_chunk) const {
        return make_consumer(stream, cfg.get(), std::move(on_chunk), nullptr, 0);
    }
    /** Chunks (unless `on_chunk`), errors and state events to `queue`, with `tag`. */
    [[nodiscard]] Consumer create_consumer(std::string_view stream, const Config& cfg, const Queue& queue,
                                           std::size_t tag = 0, chunk_handler on_chunk = {}) const {
        return make_consumer(stream, cfg.get(), std::move(on_chunk), queue.get(), tag);
    }

    // ---- super producers and consumers (RabbitMQ 3.13+) ----

    /**
     * A producer on super stream `super_stream`. `cfg`: producer keys plus `routing` (hash,
     * key), `eager`; Config::set_routing() and set_key_extractor() route with lambdas;
     * set_state_handler() hears its states. Confirms to `on_confirms` (each names its
     * partition), or nowhere (flush() still waits).
     */
    [[nodiscard]] SuperProducer create_super_producer(std::string_view super_stream, const Config& cfg,
                                                      super_confirm_handler on_confirms = {}) const {
        return make<SuperProducer, &rmqs_super_producer_new>(super_stream, "super stream name", cfg.get(),
                                                            std::move(on_confirms), nullptr, 0);
    }
    /** Confirms (unless `on_confirms`) and state events to `queue`, with `tag`. */
    [[nodiscard]] SuperProducer create_super_producer(std::string_view super_stream, const Config& cfg,
                                                      const Queue& queue, std::size_t tag = 0,
                                                      super_confirm_handler on_confirms = {}) const {
        return make<SuperProducer, &rmqs_super_producer_new>(super_stream, "super stream name", cfg.get(),
                                                            std::move(on_confirms), queue.get(), tag);
    }

    /**
     * A consumer of every partition of `super_stream`; chunks (ChunkRef::partition() says
     * which) to `on_chunk`. `cfg`: consumer keys (`name` is the offset-tracking reference and
     * the single-active-consumer group) plus `added_partition_offset`.
     */
    [[nodiscard]] SuperConsumer create_super_consumer(std::string_view super_stream, const Config& cfg,
                                                      chunk_handler on_chunk) const {
        return make<SuperConsumer, &rmqs_super_consumer_new>(super_stream, "super stream name", cfg.get(),
                                                            std::move(on_chunk), nullptr, 0);
    }
    /** Chunks (unless `on_chunk`), consumer updates, errors and state events to `queue`. */
    [[nodiscard]] SuperConsumer create_super_consumer(std::string_view super_stream, const Config& cfg,
                                                      const Queue& queue, std::size_t tag = 0,
                                                      chunk_handler on_chunk = {}) const {
        return make<SuperConsumer, &rmqs_super_consumer_new>(super_stream, "super stream name", cfg.get(),
                                                            std::move(on_chunk), queue.get(), tag);
    }

    explicit operator bool() const noexcept { return p_ != nullptr; }
    rmqs_connection* get() const noexcept { return p_; }
    rmqs_connection* release() noexcept { return std::exchange(p_, nullptr); }
    /** Frees the connection now (closing it first, up to 5 s). */
    void reset(rmqs_connection* c = nullptr) noexcept {
        if (p_ != nullptr) {
            rmqs_connection_free(p_);
        }
        p_ = c;
    }

private:
    bool create_stream_impl(std::string_view name, const rmqs_config* args, bool accept_existing) const {
        const detail::cstr n(name, "stream name");
        Error err;
        const rmqs_status st = rmqs_stream_create(p_, n.c_str(), args, err.out());
        if (accept_existing && st == RMQS_ERR_STREAM_ALREADY_EXISTS) {
            return false;
        }
        detail::check(st, err);
        return true;
    }

    void create_super_stream_n(std::string_view name, std::uint32_t partitions, const rmqs_config* args) const {
        const detail::cstr n(name, "super stream name");
        Error err;
        detail::check(rmqs_super_stream_create_n(p_, n.c_str(), partitions, args, err.out()), err);
    }

    void create_super_stream_list(std::string_view name, const std::vector<std::string>& partitions,
                                  const std::vector<std::string>& binding_keys, const rmqs_config* args) const {
        if (partitions.size() != binding_keys.size()) {
            throw error(RMQS_ERR_INVALID_ARGUMENT, "create_super_stream: one binding key per partition");
        }
        const detail::cstr n(name, "super stream name");
        std::vector<const char*> parts;
        std::vector<const char*> keys;
        parts.reserve(partitions.size());
        keys.reserve(binding_keys.size());
        for (std::size_t i = 0; i < partitions.size(); i++) {
            if (partitions[i].find('\0') != std::string::npos || binding_keys[i].find('\0') != std::string::npos) {
                throw error(RMQS_ERR_INVALID_ARGUMENT, "create_super_stream: a name contains a NUL byte");
            }
            parts.push_back(partitions[i].c_str());
            keys.push_back(binding_keys[i].c_str());
        }
        Error err;
        detail::check(rmqs_super_stream_create(p_, n.c_str(), parts.data(), keys.data(), parts.size(), args,
                                               err.out()),
                      err);
    }

    /**
     * The one factory of producers, consumers, super producers and super consumers: their
     * *_new functions share one shape (name, config, callback, user_data, user_data_free,
     * queue, tag, out, err). On failure the library does not call user_data_free: the
     * unique_ptr deletes the handler.
     */
    template <class Obj, auto New>
    Obj make(std::string_view name, const char* what, const rmqs_config* cfg, typename Obj::handler_type handler,
             rmqs_queue* queue, std::size_t tag) const {
        const detail::cstr s(name, what);
        std::unique_ptr<typename Obj::state> st;
        if (handler) {
            st = std::make_unique<typename Obj::state>(std::move(handler));
        }
        typename Obj::handle_type* out = nullptr;
        Error err;
        detail::check(New(p_, s.c_str(), cfg, st ? &Obj::trampoline : nullptr, st.get(),
                          st ? &Obj::state::free_cb : nullptr, queue, tag, &out, err.out()),
                      err);
        Obj o;
        o.adopt(out, std::move(st));
        return o;
    }

    Producer make_producer(std::string_view stream, const rmqs_config* cfg, confirm_handler on_confirms,
                           rmqs_queue* queue, std::size_t tag) const {
        return make<Producer, &rmqs_producer_new>(stream, "stream name", cfg, std::move(on_confirms), queue, tag);
    }

    Consumer make_consumer(std::string_view stream, const rmqs_config* cfg, chunk_handler on_chunk,
                           rmqs_queue* queue, std::size_t tag) const {
        return make<Consumer, &rmqs_consumer_new>(stream, "stream name", cfg, std::move(on_chunk), queue, tag);
    }

    rmqs_connection* p_ = nullptr;
};

// ---------------------------------------------------------------------------------------------
// Routing

/**
 * The partition index `routing_key` goes to under hash routing (MurmurHash3 as the other
 * clients), for a super stream of `partition_count` partitions (at least 1).
 */
inline std::uint32_t super_stream_partition(bytes routing_key, std::uint32_t partition_count) {
    std::uint32_t out = 0;
    Error err;
    detail::check(rmqs_super_stream_partition(routing_key.data(), routing_key.size(), partition_count, &out,
                                              err.out()),
                  err);
    return out;
}

}  // namespace rmqs

#endif  // RMQSTREAM_HPP
