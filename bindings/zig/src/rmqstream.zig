//! rmqstream: Zig binding of the rmqstream C API (include/rmqstream.h), a RabbitMQ Streams client.
//!
//! - Every fallible call returns an error union over `Error` (one error per `rmqs_status`; other
//!   positive broker codes are `error.Broker`, other negative ones `error.Unexpected`). Pass a
//!   `*Diagnostics` as the last argument to also get the status and the library's message.
//! - Events (producer confirms, consumer chunks, state changes) are polled from a `Queue` on
//!   the caller's thread: no Zig code ever runs on a library thread.
//! - Bodies are `[]const u8`. Views (chunks, messages, their bodies) borrow from the event
//!   they came from and are valid until `Event.deinit()` unless the chunk is `retain()`ed;
//!   functions that return owned copies take an `std.mem.Allocator`.
//! - Handles are thread-safe like their C counterparts (`Connection`, `Producer`, `Consumer`,
//!   `Queue`); `deinit` must be the last call. Shut down producers and consumers, then the
//!   connection, then queues.
//! - Names and strings are `[]const u8` (copied to a NUL-terminated buffer for the call; an
//!   embedded NUL or a string over `max_string_len` bytes is `error.InvalidArgument`).
const std = @import("std");

/// The raw C API, as translated from include/rmqstream.h.
pub const c = @import("c");

// ---------------------------------------------------------------------------------------------
// Version

/// Version of the header this binding was compiled against.
pub const header_version = std.SemanticVersion{
    .major = c.RMQS_VERSION_MAJOR,
    .minor = c.RMQS_VERSION_MINOR,
    .patch = c.RMQS_VERSION_PATCH,
};

/// Version string of the loaded library, e.g. "0.1.0" (static).
pub fn version() []const u8 {
    return std.mem.span(c.rmqs_version());
}

/// Whether the loaded library can serve code compiled against this header: same major and a
/// minor at least the header's (for 0.x, the same minor).
pub fn libraryCompatible() bool {
    const n = c.rmqs_version_number();
    const major = (n >> 24) & 0xff;
    const minor = (n >> 16) & 0xff;
    if (major != header_version.major) return false;
    if (major == 0) return minor == header_version.minor;
    return minor >= header_version.minor;
}

// ---------------------------------------------------------------------------------------------
// Errors

/// One error per status of `rmqs_status_code`; `Broker` for positive codes this binding does
/// not know (a newer broker), `Unexpected` for unknown negative ones.
pub const Error = error{
    // Broker response codes (positive).
    StreamDoesNotExist,
    SubscriptionIdAlreadyExists,
    SubscriptionIdDoesNotExist,
    StreamAlreadyExists,
    StreamNotAvailable,
    SaslMechanismNotSupported,
    AuthenticationFailure,
    SaslError,
    SaslChallenge,
    SaslAuthenticationFailureLoopback,
    VirtualHostAccessFailure,
    UnknownFrame,
    FrameTooLarge,
    InternalError,
    AccessRefused,
    PreconditionFailed,
    PublisherDoesNotExist,
    NoOffset,
    SaslCannotChangeMechanism,
    SaslCannotChangeUsername,
    Broker,
    // Local (negative).
    InvalidArgument,
    Timeout,
    Closed,
    Unsupported,
    QueueFull,
    Tls,
    Io,
    Protocol,
    WouldDeadlock,
    Panic,
    Fatal,
    NotConfirmed,
    Unexpected,
};

/// Status values (`rmqs_status`), for `Diagnostics.status` and `Confirm.status`.
pub const Status = i32;

const status_table = [_]struct { Status, Error }{
    .{ c.RMQS_ERR_STREAM_DOES_NOT_EXIST, error.StreamDoesNotExist },
    .{ c.RMQS_ERR_SUBSCRIPTION_ID_ALREADY_EXISTS, error.SubscriptionIdAlreadyExists },
    .{ c.RMQS_ERR_SUBSCRIPTION_ID_DOES_NOT_EXIST, error.SubscriptionIdDoesNotExist },
    .{ c.RMQS_ERR_STREAM_ALREADY_EXISTS, error.StreamAlreadyExists },
    .{ c.RMQS_ERR_STREAM_NOT_AVAILABLE, error.StreamNotAvailable },
    .{ c.RMQS_ERR_SASL_MECHANISM_NOT_SUPPORTED, error.SaslMechanismNotSupported },
    .{ c.RMQS_ERR_AUTHENTICATION_FAILURE, error.AuthenticationFailure },
    .{ c.RMQS_ERR_SASL_ERROR, error.SaslError },
    .{ c.RMQS_ERR_SASL_CHALLENGE, error.SaslChallenge },
    .{ c.RMQS_ERR_SASL_AUTHENTICATION_FAILURE_LOOPBACK, error.SaslAuthenticationFailureLoopback },
    .{ c.RMQS_ERR_VIRTUAL_HOST_ACCESS_FAILURE, error.VirtualHostAccessFailure },
    .{ c.RMQS_ERR_UNKNOWN_FRAME, error.UnknownFrame },
    .{ c.RMQS_ERR_FRAME_TOO_LARGE, error.FrameTooLarge },
    .{ c.RMQS_ERR_INTERNAL_ERROR, error.InternalError },
    .{ c.RMQS_ERR_ACCESS_REFUSED, error.AccessRefused },
    .{ c.RMQS_ERR_PRECONDITION_FAILED, error.PreconditionFailed },
    .{ c.RMQS_ERR_PUBLISHER_DOES_NOT_EXIST, error.PublisherDoesNotExist },
    .{ c.RMQS_ERR_NO_OFFSET, error.NoOffset },
    .{ c.RMQS_ERR_SASL_CANNOT_CHANGE_MECHANISM, error.SaslCannotChangeMechanism },
    .{ c.RMQS_ERR_SASL_CANNOT_CHANGE_USERNAME, error.SaslCannotChangeUsername },
    .{ c.RMQS_ERR_INVALID_ARGUMENT, error.InvalidArgument },
    .{ c.RMQS_ERR_TIMEOUT, error.Timeout },
    .{ c.RMQS_ERR_CLOSED, error.Closed },
    .{ c.RMQS_ERR_UNSUPPORTED, error.Unsupported },
    .{ c.RMQS_ERR_QUEUE_FULL, error.QueueFull },
    .{ c.RMQS_ERR_TLS, error.Tls },
    .{ c.RMQS_ERR_IO, error.Io },
    .{ c.RMQS_ERR_PROTOCOL, error.Protocol },
    .{ c.RMQS_ERR_WOULD_DEADLOCK, error.WouldDeadlock },
    .{ c.RMQS_ERR_PANIC, error.Panic },
    .{ c.RMQS_ERR_FATAL, error.Fatal },
    .{ c.RMQS_ERR_NOT_CONFIRMED, error.NotConfirmed },
};

/// The error for a non-OK status. `status` must not be `RMQS_OK` (0).
pub fn statusError(status: Status) Error {
    inline for (status_table) |e| {
        if (status == e[0]) return e[1];
    }
    return if (status > 0) error.Broker else error.Unexpected;
}

/// The status for an error of this set (`Broker`/`Unexpected` have none: null).
pub fn errorStatus(err: Error) ?Status {
    inline for (status_table) |e| {
        if (err == e[1]) return e[0];
    }
    return null;
}

/// Macro name of any status, e.g. "RMQS_ERR_TIMEOUT" (static).
pub fn statusName(status: Status) []const u8 {
    return std.mem.span(c.rmqs_status_name(status));
}

/// English description of any status, e.g. "timed out" (static).
pub fn statusText(status: Status) []const u8 {
    return std.mem.span(c.rmqs_status_str(status));
}

/// Detail of the last failed call that was given this struct: the exact status (also for
/// `error.Broker`) and the library's message, copied (truncated to `buf.len` bytes). Not
/// touched on success. Not thread-safe: one per thread or per call.
pub const Diagnostics = struct {
    status: Status = 0,
    buf: [512]u8 = undefined,
    len: usize = 0,

    /// The library's message for the failure (valid until this struct is reused).
    pub fn message(self: *const Diagnostics) []const u8 {
        return self.buf[0..self.len];
    }

    fn set(self: *Diagnostics, status: Status, msg: []const u8) void {
        self.status = status;
        self.len = @min(msg.len, self.buf.len);
        @memcpy(self.buf[0..self.len], msg[0..self.len]);
    }
};

fn check(status: Status, cerr: ?*c.rmqs_error, diag: ?*Diagnostics) Error!void {
    defer c.rmqs_error_free(cerr);
    if (status == c.RMQS_OK) return;
    if (diag) |d| {
        const msg = if (cerr) |e| std.mem.span(c.rmqs_error_message(e)) else statusText(status);
        d.set(status, msg);
    }
    return statusError(status);
}

fn localError(diag: ?*Diagnostics, msg: []const u8) Error {
    if (diag) |d| d.set(c.RMQS_ERR_INVALID_ARGUMENT, msg);
    return error.InvalidArgument;
}

/// Longest string (name, key, value, URI) the binding passes to the library.
pub const max_string_len = 4095;

/// A NUL-terminated copy of a Zig string, on the stack.
const CStr = struct {
    buf: [max_string_len + 1]u8 = undefined,

    fn of(self: *CStr, s: []const u8, diag: ?*Diagnostics) Error![*:0]const u8 {
        if (s.len > max_string_len) return localError(diag, "string too long for the binding");
        if (std.mem.indexOfScalar(u8, s, 0) != null) return localError(diag, "string contains a NUL byte");
        @memcpy(self.buf[0..s.len], s);
        self.buf[s.len] = 0;
        return self.buf[0..s.len :0].ptr;
    }
};

fn errOut(cerr: *?*c.rmqs_error, diag: ?*Diagnostics) [*c]?*c.rmqs_error {
    return if (diag != null) cerr else null;
}

/// Calls the C function `f` with `args` and the trailing `rmqs_error **err` argument every
/// status-returning C function takes, and maps the status.
fn callC(comptime f: anytype, args: anytype, diag: ?*Diagnostics) Error!void {
    var cerr: ?*c.rmqs_error = null;
    try check(@call(.auto, f, args ++ .{errOut(&cerr, diag)}), cerr, diag);
}

/// Reads the counters of any object through its `rmqs_*_stats` function.
fn statsOf(comptime T: type, comptime f: anytype, ptr: anytype) Error!T {
    var out = std.mem.zeroes(T);
    out.size = @sizeOf(T);
    try callC(f, .{ ptr, &out }, null);
    return out;
}

/// A key/value setting as given to `rmqs_config_set()` (see the header for the keys).
pub const Setting = struct { []const u8, []const u8 };

// ---------------------------------------------------------------------------------------------
// Config (internal: the options structs below build one per call)

const Config = struct {
    ptr: *c.rmqs_config,

    fn init() Error!Config {
        return .{ .ptr = c.rmqs_config_new() orelse return error.Unexpected };
    }

    fn deinit(self: Config) void {
        c.rmqs_config_free(self.ptr);
    }

    fn set(self: Config, key: []const u8, value: []const u8, diag: ?*Diagnostics) Error!void {
        var k: CStr = .{};
        var v: CStr = .{};
        var cerr: ?*c.rmqs_error = null;
        const st = c.rmqs_config_set(self.ptr, try k.of(key, diag), try v.of(value, diag), errOut(&cerr, diag));
        try check(st, cerr, diag);
    }

    fn setInt(self: Config, key: []const u8, value: anytype, diag: ?*Diagnostics) Error!void {
        var buf: [32]u8 = undefined;
        const s = std.fmt.bufPrint(&buf, "{d}", .{value}) catch unreachable;
        try self.set(key, s, diag);
    }

    fn setAll(self: Config, settings: []const Setting, diag: ?*Diagnostics) Error!void {
        for (settings) |kv| try self.set(kv[0], kv[1], diag);
    }

    /// The one place that registers a Zig callback on a config: a heap copy of `value` (a
    /// `{ context, func }` struct) is the user_data, freed by the library's user_data_free
    /// exactly once (here when the registration fails).
    fn setCallback(self: Config, comptime set_fn: anytype, comptime T: type, value: T, comptime trampoline: anytype, diag: ?*Diagnostics) Error!void {
        const holder = std.heap.c_allocator.create(T) catch return error.Unexpected;
        holder.* = value;
        errdefer std.heap.c_allocator.destroy(holder);
        try callC(set_fn, .{ self.ptr, trampoline, @as(?*anyopaque, holder), freeHolder(T) }, diag);
    }

    fn freeHolder(comptime T: type) *const fn (?*anyopaque) callconv(.c) void {
        return struct {
            fn free(p: ?*anyopaque) callconv(.c) void {
                std.heap.c_allocator.destroy(@as(*T, @ptrCast(@alignCast(p.?))));
            }
        }.free;
    }
};

// ---------------------------------------------------------------------------------------------
// Connection

pub const ConnectionOptions = struct {
    /// `rabbitmq-stream://user:pass@host:port/vhost` (or `rabbitmq-stream+tls://`); null for
    /// the library's default (guest on localhost:5552).
    uri: ?[]const u8 = null,
    connection_name: ?[]const u8 = null,
    /// Any other connection key, including `producer.*` / `consumer.*` defaults.
    settings: []const Setting = &.{},
};

pub const StreamOptions = struct {
    max_length_bytes: ?u64 = null,
    /// e.g. "3600s", "7D".
    max_age: ?[]const u8 = null,
    max_segment_size_bytes: ?u64 = null,
    /// Other creation keys (`initial_cluster_size`, `queue_leader_locator`, `filter_size`,
    /// `arg.<name>`).
    settings: []const Setting = &.{},
};

pub const StreamStatistics = c.rmqs_stream_statistics;

pub const Connection = struct {
    ptr: *c.rmqs_connection,

    /// Opens a connection (blocks for the handshake). Free with `deinit`.
    pub fn open(opts: ConnectionOptions, diag: ?*Diagnostics) Error!Connection {
        const cfg = try Config.init();
        defer cfg.deinit();
        if (opts.uri) |u| try cfg.set("uri", u, diag);
        if (opts.connection_name) |n| try cfg.set("connection_name", n, diag);
        try cfg.setAll(opts.settings, diag);
        var out: ?*c.rmqs_connection = null;
        var cerr: ?*c.rmqs_error = null;
        try check(c.rmqs_connection_open(cfg.ptr, &out, errOut(&cerr, diag)), cerr, diag);
        return .{ .ptr = out.? };
    }

    /// Closes the connection (and its producers and consumers), waiting up to `timeout_ms`
    /// (negative: no limit). The handle stays valid until `deinit`.
    pub fn close(self: Connection, timeout_ms: i32) Error!void {
        try callC(c.rmqs_connection_close, .{ self.ptr, timeout_ms }, null);
    }

    /// Closes (5 s limit) and frees. Free producers and consumers first.
    pub fn deinit(self: Connection) void {
        c.rmqs_connection_free(self.ptr);
    }

    /// The broker's version, e.g. "4.0.5"; owned by the connection.
    pub fn serverVersion(self: Connection) []const u8 {
        return std.mem.span(c.rmqs_connection_server_version(self.ptr));
    }

    /// What the connection agreed with the broker at its handshake: the largest frame either
    /// side may send in bytes (0: unlimited) and the heartbeat in seconds (0: none). With
    /// `lazy_open` it connects first.
    pub fn negotiated(self: Connection) Error!struct { frame_max: u32, heartbeat_s: u32 } {
        var frame_max: u32 = 0;
        var heartbeat: u32 = 0;
        try callC(c.rmqs_connection_negotiated, .{ self.ptr, &frame_max, &heartbeat }, null);
        return .{ .frame_max = frame_max, .heartbeat_s = heartbeat };
    }

    /// Whether the broker accepts `version` of protocol command `command`.
    pub fn supports(self: Connection, command: u16, ver: u16) bool {
        return c.rmqs_connection_supports(self.ptr, command, ver);
    }

    /// Creates a stream; `error.StreamAlreadyExists` when it exists (whatever its arguments).
    pub fn createStream(self: Connection, stream: []const u8, opts: StreamOptions, diag: ?*Diagnostics) Error!void {
        const cfg = try Config.init();
        defer cfg.deinit();
        if (opts.max_length_bytes) |v| try cfg.setInt("max_length_bytes", v, diag);
        if (opts.max_age) |v| try cfg.set("max_age", v, diag);
        if (opts.max_segment_size_bytes) |v| try cfg.setInt("stream_max_segment_size_bytes", v, diag);
        try cfg.setAll(opts.settings, diag);
        var s: CStr = .{};
        var cerr: ?*c.rmqs_error = null;
        try check(c.rmqs_stream_create(self.ptr, try s.of(stream, diag), cfg.ptr, errOut(&cerr, diag)), cerr, diag);
    }

    pub fn deleteStream(self: Connection, stream: []const u8, diag: ?*Diagnostics) Error!void {
        var s: CStr = .{};
        var cerr: ?*c.rmqs_error = null;
        try check(c.rmqs_stream_delete(self.ptr, try s.of(stream, diag), errOut(&cerr, diag)), cerr, diag);
    }

    pub fn streamExists(self: Connection, stream: []const u8, diag: ?*Diagnostics) Error!bool {
        var s: CStr = .{};
        var cerr: ?*c.rmqs_error = null;
        var out: bool = false;
        try check(c.rmqs_stream_exists(self.ptr, try s.of(stream, diag), &out, errOut(&cerr, diag)), cerr, diag);
        return out;
    }

    /// StreamStats (RabbitMQ 3.11+; `error.Unsupported` before).
    pub fn streamStats(self: Connection, stream: []const u8, diag: ?*Diagnostics) Error!StreamStatistics {
        var s: CStr = .{};
        var cerr: ?*c.rmqs_error = null;
        var out: StreamStatistics = std.mem.zeroes(StreamStatistics);
        out.size = @sizeOf(StreamStatistics);
        try check(c.rmqs_stream_stats(self.ptr, try s.of(stream, diag), &out, errOut(&cerr, diag)), cerr, diag);
        return out;
    }

    /// Where the stream lives; the result is an owned copy (free with `Metadata.deinit`).
    pub fn streamMetadata(self: Connection, allocator: std.mem.Allocator, stream: []const u8, diag: ?*Diagnostics) (Error || std.mem.Allocator.Error)!Metadata {
        var s: CStr = .{};
        var cerr: ?*c.rmqs_error = null;
        var md: ?*c.rmqs_metadata = null;
        try check(c.rmqs_stream_metadata(self.ptr, try s.of(stream, diag), &md, errOut(&cerr, diag)), cerr, diag);
        defer c.rmqs_metadata_free(md);
        var result: Metadata = .{ .leader = null, .replicas = &.{} };
        errdefer result.deinit(allocator);
        if (c.rmqs_metadata_leader_host(md)) |h| {
            result.leader = .{ .host = try allocator.dupe(u8, std.mem.span(h)), .port = c.rmqs_metadata_leader_port(md) };
        }
        const n = c.rmqs_metadata_replica_count(md);
        const replicas = try allocator.alloc(Metadata.Node, n);
        var filled: usize = 0;
        errdefer {
            for (replicas[0..filled]) |r| allocator.free(r.host);
            allocator.free(replicas);
        }
        for (0..n) |i| {
            var port: u16 = 0;
            const h = c.rmqs_metadata_replica(md, i, &port) orelse break;
            replicas[i] = .{ .host = try allocator.dupe(u8, std.mem.span(h)), .port = port };
            filled += 1;
        }
        result.replicas = replicas[0..filled];
        return result;
    }

    /// The offset stored under `reference` for `stream`; `error.NoOffset` when none.
    pub fn queryOffset(self: Connection, reference: []const u8, stream: []const u8, diag: ?*Diagnostics) Error!u64 {
        var r: CStr = .{};
        var s: CStr = .{};
        var cerr: ?*c.rmqs_error = null;
        var out: u64 = 0;
        try check(c.rmqs_stream_query_offset(self.ptr, try r.of(reference, diag), try s.of(stream, diag), &out, errOut(&cerr, diag)), cerr, diag);
        return out;
    }

    /// Stores `offset` under `reference` for `stream` (the broker does not answer; query to
    /// see it applied).
    pub fn storeOffset(self: Connection, reference: []const u8, stream: []const u8, offset: u64, diag: ?*Diagnostics) Error!void {
        var r: CStr = .{};
        var s: CStr = .{};
        var cerr: ?*c.rmqs_error = null;
        try check(c.rmqs_stream_store_offset(self.ptr, try r.of(reference, diag), try s.of(stream, diag), offset, errOut(&cerr, diag)), cerr, diag);
    }

    /// The last publishing id the broker kept for the named producer (0 when none).
    pub fn producerSequence(self: Connection, reference: []const u8, stream: []const u8, diag: ?*Diagnostics) Error!u64 {
        var r: CStr = .{};
        var s: CStr = .{};
        var cerr: ?*c.rmqs_error = null;
        var out: u64 = 0;
        try check(c.rmqs_stream_query_sequence(self.ptr, try r.of(reference, diag), try s.of(stream, diag), &out, errOut(&cerr, diag)), cerr, diag);
        return out;
    }

    /// Creates super stream `name` with partitions `<name>-0`.. bound to keys "0".. (3.13+).
    pub fn createSuperStream(self: Connection, name: []const u8, partitions: u32, opts: StreamOptions, diag: ?*Diagnostics) Error!void {
        const cfg = try Config.init();
        defer cfg.deinit();
        if (opts.max_length_bytes) |v| try cfg.setInt("max_length_bytes", v, diag);
        if (opts.max_age) |v| try cfg.set("max_age", v, diag);
        if (opts.max_segment_size_bytes) |v| try cfg.setInt("stream_max_segment_size_bytes", v, diag);
        try cfg.setAll(opts.settings, diag);
        var s: CStr = .{};
        var cerr: ?*c.rmqs_error = null;
        try check(c.rmqs_super_stream_create_n(self.ptr, try s.of(name, diag), partitions, cfg.ptr, errOut(&cerr, diag)), cerr, diag);
    }

    pub fn deleteSuperStream(self: Connection, name: []const u8, diag: ?*Diagnostics) Error!void {
        var s: CStr = .{};
        var cerr: ?*c.rmqs_error = null;
        try check(c.rmqs_super_stream_delete(self.ptr, try s.of(name, diag), errOut(&cerr, diag)), cerr, diag);
    }

    /// The partitions of a super stream in routing order, as owned copies (`Strings.deinit`).
    pub fn superStreamPartitions(self: Connection, allocator: std.mem.Allocator, name: []const u8, diag: ?*Diagnostics) (Error || std.mem.Allocator.Error)!Strings {
        var s: CStr = .{};
        var cerr: ?*c.rmqs_error = null;
        var list: ?*c.rmqs_strings = null;
        try check(c.rmqs_super_stream_partitions(self.ptr, try s.of(name, diag), &list, errOut(&cerr, diag)), cerr, diag);
        defer c.rmqs_strings_free(list);
        return Strings.copy(allocator, list);
    }

    /// The partitions `routing_key` is bound to (possibly none), as owned copies.
    pub fn superStreamRoute(self: Connection, allocator: std.mem.Allocator, name: []const u8, routing_key: []const u8, diag: ?*Diagnostics) (Error || std.mem.Allocator.Error)!Strings {
        var s: CStr = .{};
        var k: CStr = .{};
        var cerr: ?*c.rmqs_error = null;
        var list: ?*c.rmqs_strings = null;
        try check(c.rmqs_super_stream_route(self.ptr, try k.of(routing_key, diag), try s.of(name, diag), &list, errOut(&cerr, diag)), cerr, diag);
        defer c.rmqs_strings_free(list);
        return Strings.copy(allocator, list);
    }

    pub fn stats(self: Connection) Error!c.rmqs_connection_statistics {
        return statsOf(c.rmqs_connection_statistics, c.rmqs_connection_stats, self.ptr);
    }
};

/// Owned copy of a stream's metadata.
pub const Metadata = struct {
    pub const Node = struct { host: []u8, port: u16 };
    leader: ?Node,
    replicas: []Node,

    pub fn deinit(self: *Metadata, allocator: std.mem.Allocator) void {
        if (self.leader) |l| allocator.free(l.host);
        for (self.replicas) |r| allocator.free(r.host);
        allocator.free(self.replicas);
        self.* = undefined;
    }
};

/// Owned list of strings (partitions, routes).
pub const Strings = struct {
    items: [][]u8,

    fn copy(allocator: std.mem.Allocator, list: ?*c.rmqs_strings) std.mem.Allocator.Error!Strings {
        const n = c.rmqs_strings_count(list);
        const items = try allocator.alloc([]u8, n);
        var filled: usize = 0;
        errdefer {
            for (items[0..filled]) |s| allocator.free(s);
            allocator.free(items);
        }
        for (0..n) |i| {
            items[i] = try allocator.dupe(u8, std.mem.span(c.rmqs_strings_get(list, i)));
            filled += 1;
        }
        return .{ .items = items };
    }

    pub fn deinit(self: *Strings, allocator: std.mem.Allocator) void {
        for (self.items) |s| allocator.free(s);
        allocator.free(self.items);
        self.* = undefined;
    }
};

/// The partition index of `routing_key` under hash routing (as the other clients route).
pub fn superStreamPartition(routing_key: []const u8, partition_count: u32) Error!u32 {
    var out: u32 = 0;
    try callC(c.rmqs_super_stream_partition, .{ routing_key.ptr, routing_key.len, partition_count, &out }, null);
    return out;
}

// ---------------------------------------------------------------------------------------------
// Event queue

pub const EventKind = enum(i32) {
    chunk = c.RMQS_EVENT_CHUNK,
    confirms = c.RMQS_EVENT_CONFIRMS,
    state = c.RMQS_EVENT_STATE,
    @"error" = c.RMQS_EVENT_ERROR,
    /// A super producer's confirms: `Event.superConfirms()`.
    super_confirms = c.RMQS_EVENT_SUPER_CONFIRMS,
    /// A single active consumer activated or stepping down: `Event.consumerUpdate()`,
    /// answered with `Event.reply()` (or the default when freed unanswered).
    consumer_update = c.RMQS_EVENT_CONSUMER_UPDATE,
    _,
};

/// What a `.state` event reports (`Event.state()`).
pub const State = enum(i32) {
    /// Closed for good, its last event: by the application (no error), its stream deleted
    /// (`error.StreamDoesNotExist`), or a loss recovery could not repair (the cause).
    closed = c.RMQS_STATE_CLOSED,
    /// Lost its connection or stream leader and recovering (`err()` gives the cause); a
    /// producer keeps accepting sends within `max_in_flight`.
    recovering = c.RMQS_STATE_RECOVERING,
    /// Back: a producer sent again what was unconfirmed, a consumer resumed right after the
    /// last message it delivered.
    recovered = c.RMQS_STATE_RECOVERED,
};

pub const EventSource = enum(i32) {
    producer = c.RMQS_SOURCE_PRODUCER,
    consumer = c.RMQS_SOURCE_CONSUMER,
    super_producer = c.RMQS_SOURCE_SUPER_PRODUCER,
    super_consumer = c.RMQS_SOURCE_SUPER_CONSUMER,
    _,
};

/// Where producers and consumers deliver confirms, chunks and state changes, for the
/// application to poll on its own threads. Several producers and consumers may share one
/// (tell them apart by `Event.sourceTag()`).
pub const Queue = struct {
    ptr: *c.rmqs_queue,

    pub fn init() Error!Queue {
        var out: ?*c.rmqs_queue = null;
        try callC(c.rmqs_queue_new, .{&out}, null);
        return .{ .ptr = out.? };
    }

    /// Frees the queue and the events still in it. Not while another thread polls it.
    pub fn deinit(self: Queue) void {
        c.rmqs_queue_free(self.ptr);
    }

    /// The next event, waiting up to `timeout_ms` (negative: forever, 0: not at all); null on
    /// timeout or after `wakeup()`. The caller owns it: `Event.deinit()`.
    pub fn poll(self: Queue, timeout_ms: i32) ?Event {
        var ev: ?*c.rmqs_event = null;
        if (c.rmqs_queue_poll(self.ptr, timeout_ms, &ev, null) != c.RMQS_OK) return null;
        return .{ .ptr = ev orelse return null };
    }

    /// Up to `buf.len` events, waiting up to `timeout_ms` for the first; the returned slice
    /// (a prefix of `buf`) holds owned events, each to `deinit()`.
    pub fn pollBatch(self: Queue, buf: []Event, timeout_ms: i32) []Event {
        comptime std.debug.assert(@sizeOf(Event) == @sizeOf(*c.rmqs_event));
        const raw: [*c]?*c.rmqs_event = @ptrCast(buf.ptr);
        var n: usize = 0;
        if (c.rmqs_queue_poll_batch(self.ptr, raw, buf.len, timeout_ms, &n, null) != c.RMQS_OK) return buf[0..0];
        return buf[0..n];
    }

    /// Makes one blocked (or the next) poll return null.
    pub fn wakeup(self: Queue) void {
        c.rmqs_queue_wakeup(self.ptr);
    }

    /// Events waiting.
    pub fn len(self: Queue) usize {
        return c.rmqs_queue_len(self.ptr);
    }

    /// A fd readable while events wait (owned by the queue), or null where unsupported.
    pub fn fd(self: Queue) ?i32 {
        const f = c.rmqs_queue_fd(self.ptr);
        return if (f < 0) null else f;
    }
};

/// One event, owned by the caller. Views from it (chunk, confirms, message) are valid until
/// `deinit()`.
pub const Event = extern struct {
    ptr: *c.rmqs_event,

    pub fn deinit(self: Event) void {
        c.rmqs_event_free(self.ptr);
    }

    pub fn kind(self: Event) EventKind {
        return @enumFromInt(c.rmqs_event_type(self.ptr));
    }

    pub fn source(self: Event) EventSource {
        return @enumFromInt(c.rmqs_event_source(self.ptr));
    }

    /// The `tag` given to the producer or consumer that sent the event.
    pub fn sourceTag(self: Event) usize {
        return c.rmqs_event_source_tag(self.ptr);
    }

    /// The chunk of a `.chunk` event (borrowed from the event).
    pub fn chunk(self: Event) ?Chunk {
        const ch = c.rmqs_event_chunk(self.ptr) orelse return null;
        return .{ .ptr = ch };
    }

    /// The confirms of a `.confirms` event (empty for others; borrowed from the event).
    /// Iterate with `it.next()`: the elements are `stride` bytes apart, as the library's
    /// struct may grow in later versions.
    pub fn confirms(self: Event) Strided(Confirm) {
        var n: usize = 0;
        var stride: usize = 0;
        const p = c.rmqs_event_confirms(self.ptr, &n, &stride);
        if (p == null or n == 0) return .{ .base = null, .len = 0, .stride = 0 };
        return .{ .base = @ptrCast(p), .len = n, .stride = stride };
    }

    /// The confirms of a `.super_confirms` event (empty for others; borrowed from the event),
    /// `stride` bytes apart like `confirms()`.
    pub fn superConfirms(self: Event) Strided(SuperConfirm) {
        var n: usize = 0;
        var stride: usize = 0;
        const p = c.rmqs_event_super_confirms(self.ptr, &n, &stride);
        if (p == null or n == 0) return .{ .base = null, .len = 0, .stride = 0 };
        return .{ .base = @ptrCast(p), .len = n, .stride = stride };
    }

    /// The change of a `.consumer_update` event, null for others (its `stream` is borrowed
    /// from the event).
    pub fn consumerUpdate(self: Event) ?ConsumerUpdate {
        const info = c.rmqs_event_consumer_update(self.ptr) orelse return null;
        return .{
            .stream = std.mem.span(info.*.stream),
            .is_active = info.*.is_active,
            .stored_offset = if (info.*.stored_offset == std.math.maxInt(u64)) null else info.*.stored_offset,
        };
    }

    /// Answers a `.consumer_update` event: where the activated consumer starts (null: the
    /// library's default). `error.Timeout` when the answer came too late (the default was used).
    pub fn reply(self: Event, start: ?Offset) Error!void {
        try callC(c.rmqs_event_consumer_update_reply, .{ self.ptr, Offset.spec(start) }, null);
    }

    /// True for a `.state` event reporting that the source itself closed (its last event; a
    /// super producer's or super consumer's partition closing is not it).
    pub fn isClosed(self: Event) bool {
        return self.state() == .closed and self.partition() == null;
    }

    /// The state a `.state` event reports, null for other events.
    pub fn state(self: Event) ?State {
        if (self.kind() != .state) return null;
        return @enumFromInt(c.rmqs_event_state(self.ptr));
    }

    /// The partition (its index) an event of a super producer or super consumer concerns;
    /// null for the object itself and for other sources.
    pub fn partition(self: Event) ?usize {
        const p = c.rmqs_event_partition(self.ptr);
        return if (p < 0) null else @intCast(p);
    }

    /// The status of a `.state` / `.error` event (0 when closed by the application).
    pub fn status(self: Event) Status {
        return c.rmqs_event_status(self.ptr);
    }

    /// The error of a `.state` / `.error` event, null when its status is OK.
    pub fn err(self: Event) ?Error {
        const st = self.status();
        return if (st == c.RMQS_OK) null else statusError(st);
    }

    /// The message of a `.state` / `.error` event ("" otherwise), borrowed from the event.
    pub fn message(self: Event) []const u8 {
        return std.mem.span(c.rmqs_event_message(self.ptr));
    }
};

/// The confirms of an event: `len` of them, `stride` bytes apart (the library's
/// `rmqs_confirm` and `rmqs_super_confirm` may grow in later versions, so they are never
/// indexed by `@sizeOf`).
pub fn Strided(comptime T: type) type {
    return struct {
        const Self = @This();
        base: ?[*]const u8,
        len: usize,
        stride: usize,

        /// The element at `i` (< `len`), borrowed from the event.
        pub fn at(self: Self, i: usize) *const T {
            std.debug.assert(i < self.len);
            return @ptrCast(@alignCast(self.base.? + i * self.stride));
        }

        /// Iterates: `var it = ev.confirms().iterator(); while (it.next()) |cf| ...`.
        pub fn iterator(self: Self) Iterator {
            return .{ .items = self, .i = 0 };
        }

        pub const Iterator = struct {
            items: Self,
            i: usize,

            pub fn next(self: *Iterator) ?*const T {
                if (self.i >= self.items.len) return null;
                defer self.i += 1;
                return self.items.at(self.i);
            }
        };
    };
}

/// The outcome of one sent message (layout of `rmqs_confirm`).
pub const Confirm = extern struct {
    publishing_id: u64,
    tag: usize,
    status: Status,

    /// null when the broker stored the message; else why not (`error.Timeout`,
    /// `error.Closed`: it may still have been stored).
    pub fn err(self: Confirm) ?Error {
        return if (self.status == c.RMQS_OK) null else statusError(self.status);
    }

    comptime {
        std.debug.assert(@sizeOf(Confirm) == @sizeOf(c.rmqs_confirm));
        std.debug.assert(@offsetOf(Confirm, "tag") == @offsetOf(c.rmqs_confirm, "tag"));
        std.debug.assert(@offsetOf(Confirm, "status") == @offsetOf(c.rmqs_confirm, "status"));
    }
};

// ---------------------------------------------------------------------------------------------
// Producer

pub const ProducerOptions = struct {
    /// Where confirms and state changes go; null: confirms go nowhere (`flush` still waits).
    queue: ?Queue = null,
    /// `Event.sourceTag()` of this producer's events.
    tag: usize = 0,
    /// Named producer: deduplication by publishing id.
    name: ?[]const u8 = null,
    batch_size: ?u32 = null,
    batch_delay_ms: ?u32 = null,
    max_in_flight: ?u32 = null,
    confirm_timeout_ms: ?u32 = null,
    /// Other producer keys.
    settings: []const Setting = &.{},
};

pub const SendFlags = packed struct(u32) {
    /// Store the body as is, not wrapped in an AMQP 1.0 message.
    raw: bool = false,
    /// `error.QueueFull` instead of waiting when `max_in_flight` messages are unconfirmed.
    no_block: bool = false,
    _pad: u30 = 0,
};

pub const Producer = struct {
    ptr: *c.rmqs_producer,

    /// Declares a producer on `stream` (blocks for a few round trips). Free with `deinit`.
    pub fn init(conn: Connection, stream: []const u8, opts: ProducerOptions, diag: ?*Diagnostics) Error!Producer {
        const cfg = try Config.init();
        defer cfg.deinit();
        if (opts.name) |v| try cfg.set("name", v, diag);
        if (opts.batch_size) |v| try cfg.setInt("batch_size", v, diag);
        if (opts.batch_delay_ms) |v| try cfg.setInt("batch_delay_ms", v, diag);
        if (opts.max_in_flight) |v| try cfg.setInt("max_in_flight", v, diag);
        if (opts.confirm_timeout_ms) |v| try cfg.setInt("confirm_timeout_ms", v, diag);
        try cfg.setAll(opts.settings, diag);
        var s: CStr = .{};
        var cerr: ?*c.rmqs_error = null;
        var out: ?*c.rmqs_producer = null;
        const q: ?*c.rmqs_queue = if (opts.queue) |q| q.ptr else null;
        try check(c.rmqs_producer_new(conn.ptr, try s.of(stream, diag), cfg.ptr, null, null, null, q, opts.tag, &out, errOut(&cerr, diag)), cerr, diag);
        return .{ .ptr = out.? };
    }

    /// Closes (waiting up to 5 s for confirms) and frees.
    pub fn deinit(self: Producer) void {
        c.rmqs_producer_free(self.ptr);
    }

    /// Sends one message (the body is copied); its `Confirm` carries `tag`. Blocks only when
    /// the producer is full.
    pub fn send(self: Producer, body: []const u8, tag: usize, diag: ?*Diagnostics) Error!void {
        return self.sendFlags(body, tag, .{}, diag);
    }

    pub fn sendFlags(self: Producer, body: []const u8, tag: usize, flags: SendFlags, diag: ?*Diagnostics) Error!void {
        var cerr: ?*c.rmqs_error = null;
        try check(c.rmqs_producer_send(self.ptr, body.ptr, body.len, tag, @bitCast(flags), errOut(&cerr, diag)), cerr, diag);
    }

    pub const SendOptions = struct {
        tag: usize = 0,
        flags: SendFlags = .{},
        /// Broker-side filter value (3.13+).
        filter_value: ?[]const u8 = null,
        /// Explicit publishing id, above every id used before.
        publishing_id: ?u64 = null,
    };

    /// Sends one message with options; returns its publishing id.
    pub fn sendEx(self: Producer, body: []const u8, opts: SendOptions, diag: ?*Diagnostics) Error!u64 {
        var f: CStr = .{};
        const filter: ?[*:0]const u8 = if (opts.filter_value) |v| try f.of(v, diag) else null;
        var flags: u32 = @bitCast(opts.flags);
        if (opts.publishing_id != null) flags |= c.RMQS_SEND_PUBLISHING_ID;
        var cerr: ?*c.rmqs_error = null;
        var id: u64 = 0;
        try check(c.rmqs_producer_send_ex(self.ptr, body.ptr, body.len, filter, opts.publishing_id orelse 0, opts.tag, flags, &id, errOut(&cerr, diag)), cerr, diag);
        return id;
    }

    /// Sends `bodies` in order (tags from `tags`, same length, or 0). On error, `accepted`
    /// (when given) tells how many of the first ones were accepted and will be confirmed.
    pub fn sendBatch(self: Producer, bodies: []const []const u8, tags: ?[]const usize, flags: SendFlags, accepted: ?*usize, diag: ?*Diagnostics) Error!void {
        if (tags) |t| if (t.len != bodies.len) return localError(diag, "tags and bodies differ in length");
        var done: usize = 0;
        defer if (accepted) |a| {
            a.* = done;
        };
        var buf: [256]c.rmqs_bytes = undefined;
        while (done < bodies.len) {
            const n = @min(buf.len, bodies.len - done);
            for (bodies[done..][0..n], 0..) |b, i| buf[i] = .{ .data = b.ptr, .len = b.len };
            const tp: [*c]const usize = if (tags) |t| t[done..].ptr else null;
            var got: usize = 0;
            var cerr: ?*c.rmqs_error = null;
            const st = c.rmqs_producer_send_batch(self.ptr, &buf, tp, n, @bitCast(flags), &got, errOut(&cerr, diag));
            done += got;
            try check(st, cerr, diag);
        }
    }

    /// Sends messages in order (tags from `tags`, same length, or 0). On error, `accepted`
    /// (when given) tells how many of the first ones were accepted and will be confirmed.
    pub fn sendMessages(self: Producer, msgs: []const *const MessageBuilder, tags: ?[]const usize, flags: SendFlags, accepted: ?*usize, diag: ?*Diagnostics) Error!void {
        if (tags) |t| if (t.len != msgs.len) return localError(diag, "tags and messages differ in length");
        var done: usize = 0;
        defer if (accepted) |a| {
            a.* = done;
        };
        var buf: [64]?*const c.rmqs_message_builder = undefined;
        while (done < msgs.len) {
            const n = @min(buf.len, msgs.len - done);
            for (msgs[done..][0..n], 0..) |m, i| buf[i] = m.ptr;
            const tp: [*c]const usize = if (tags) |t| t[done..].ptr else null;
            var got: usize = 0;
            var cerr: ?*c.rmqs_error = null;
            const st = c.rmqs_producer_send_messages(self.ptr, @ptrCast(&buf), tp, n, @bitCast(flags), &got, errOut(&cerr, diag));
            done += got;
            try check(st, cerr, diag);
        }
    }

    /// Sends what is batched and waits up to `timeout_ms` until every accepted message has
    /// its confirm (`error.Timeout` otherwise).
    pub fn flush(self: Producer, timeout_ms: i32) Error!void {
        try callC(c.rmqs_producer_flush, .{ self.ptr, timeout_ms }, null);
    }

    /// Stops sending, waits up to `timeout_ms` for outstanding confirms (the rest get
    /// `error.Closed`), deletes the publisher. Still to `deinit`.
    pub fn close(self: Producer, timeout_ms: i32) Error!void {
        try callC(c.rmqs_producer_close, .{ self.ptr, timeout_ms }, null);
    }

    /// The last publishing id assigned, null before the first.
    pub fn lastId(self: Producer) ?u64 {
        var out: u64 = 0;
        return if (c.rmqs_producer_last_id(self.ptr, &out)) out else null;
    }

    pub fn stats(self: Producer) Error!c.rmqs_producer_statistics {
        return statsOf(c.rmqs_producer_statistics, c.rmqs_producer_stats, self.ptr);
    }

    /// Sends an AMQP message built with a `MessageBuilder` (every section, its filter value
    /// and publishing id; copied, so the builder can be reset at once). Returns the id used.
    pub fn sendMessage(self: Producer, msg: *const MessageBuilder, tag: usize, flags: SendFlags, diag: ?*Diagnostics) Error!u64 {
        var cerr: ?*c.rmqs_error = null;
        var id: u64 = 0;
        try check(c.rmqs_producer_send_message(self.ptr, msg.ptr, tag, @bitCast(flags), &id, errOut(&cerr, diag)), cerr, diag);
        return id;
    }

    /// Sends `msg`'s sections (filter value and publishing id included) with `body` (copied)
    /// as its one data section in place of `msg`'s own body, which is neither sent nor
    /// changed: for messages that differ only in their body, one builder set up once and sent
    /// with each body at about the cost of `send` (threads may share it while nobody changes
    /// it). Returns the id used.
    pub fn sendMessageBody(self: Producer, msg: *const MessageBuilder, body: []const u8, tag: usize, flags: SendFlags, diag: ?*Diagnostics) Error!u64 {
        var cerr: ?*c.rmqs_error = null;
        var id: u64 = 0;
        try check(c.rmqs_producer_send_message_body(self.ptr, msg.ptr, body.ptr, body.len, tag, @bitCast(flags), &id, errOut(&cerr, diag)), cerr, diag);
        return id;
    }
};

// ---------------------------------------------------------------------------------------------
// Consumer

/// Where a consumer starts.
pub const Offset = union(enum) {
    first,
    last,
    next,
    offset: u64,
    /// ms since the Unix epoch.
    timestamp: i64,

    fn format(self: Offset, buf: []u8) []const u8 {
        return switch (self) {
            .first => "first",
            .last => "last",
            .next => "next",
            .offset => |o| std.fmt.bufPrint(buf, "offset:{d}", .{o}) catch unreachable,
            .timestamp => |t| std.fmt.bufPrint(buf, "timestamp:{d}", .{t}) catch unreachable,
        };
    }

    fn spec(self: ?Offset) c.rmqs_offset_spec {
        const o = self orelse return .{ .type = c.RMQS_OFFSET_DEFAULT, .value = 0 };
        return switch (o) {
            .first => .{ .type = c.RMQS_OFFSET_FIRST, .value = 0 },
            .last => .{ .type = c.RMQS_OFFSET_LAST, .value = 0 },
            .next => .{ .type = c.RMQS_OFFSET_NEXT, .value = 0 },
            .offset => |v| .{ .type = c.RMQS_OFFSET_OFFSET, .value = @intCast(v) },
            .timestamp => |t| .{ .type = c.RMQS_OFFSET_TIMESTAMP, .value = t },
        };
    }
};

pub const ConsumerOptions = struct {
    /// Required: chunks, errors and the final state change go there.
    queue: Queue,
    tag: usize = 0,
    offset: Offset = .next,
    /// Offset-tracking reference (needed by `storeOffset` / `queryOffset`).
    name: ?[]const u8 = null,
    initial_credit: ?u16 = null,
    /// One active consumer at a time among those of `name` (3.11+). Activations and
    /// step-downs arrive as `.consumer_update` events, answered with `Event.reply()`.
    single_active_consumer: bool = false,
    /// Broker-side filtering (3.13+): comma-separated filter values.
    filter_values: ?[]const u8 = null,
    /// With `filter_values`: also chunks of messages sent without a filter value.
    match_unfiltered: bool = false,
    /// Client-side filter of each delivered message (removes the other values' messages
    /// that come along in a chunk).
    post_filter: ?PostFilter = null,
    /// Other consumer keys (`credit_policy`, `crc_check`, `tracking`, `property.<key>`, ...).
    settings: []const Setting = &.{},

    /// The config of a consumer or super consumer with these options.
    fn config(opts: ConsumerOptions, diag: ?*Diagnostics) Error!Config {
        const cfg = try Config.init();
        errdefer cfg.deinit();
        var obuf: [40]u8 = undefined;
        try cfg.set("offset", opts.offset.format(&obuf), diag);
        if (opts.name) |v| try cfg.set("name", v, diag);
        if (opts.initial_credit) |v| try cfg.setInt("initial_credit", v, diag);
        if (opts.single_active_consumer) try cfg.set("single_active_consumer", "true", diag);
        if (opts.filter_values) |v| try cfg.set("filter_values", v, diag);
        if (opts.match_unfiltered) try cfg.set("match_unfiltered", "true", diag);
        if (opts.post_filter) |f| try cfg.setCallback(c.rmqs_config_set_post_filter_cb, PostFilter, f, PostFilter.trampoline, diag);
        try cfg.setAll(opts.settings, diag);
        return cfg;
    }
};

pub const Consumer = struct {
    ptr: *c.rmqs_consumer,

    /// Subscribes to `stream` (blocks for a few round trips; chunks may arrive before it
    /// returns). Free with `deinit`.
    pub fn init(conn: Connection, stream: []const u8, opts: ConsumerOptions, diag: ?*Diagnostics) Error!Consumer {
        const cfg = try opts.config(diag);
        defer cfg.deinit();
        var s: CStr = .{};
        var cerr: ?*c.rmqs_error = null;
        var out: ?*c.rmqs_consumer = null;
        try check(c.rmqs_consumer_new(conn.ptr, try s.of(stream, diag), cfg.ptr, null, null, null, opts.queue.ptr, opts.tag, &out, errOut(&cerr, diag)), cerr, diag);
        return .{ .ptr = out.? };
    }

    /// Closes (5 s limit) and frees.
    pub fn deinit(self: Consumer) void {
        c.rmqs_consumer_free(self.ptr);
    }

    /// Unsubscribes (up to `timeout_ms`); a closed `.state` event follows on the queue.
    pub fn close(self: Consumer, timeout_ms: i32) Error!void {
        try callC(c.rmqs_consumer_close, .{ self.ptr, timeout_ms }, null);
    }

    /// Grants `credits` (1..32767) more chunks (the `manual` credit policy).
    pub fn credit(self: Consumer, credits: u16) Error!void {
        try callC(c.rmqs_consumer_credit, .{ self.ptr, @as(u32, credits) }, null);
    }

    /// Whether it receives now (a single active consumer: whether it is the active one).
    pub fn isActive(self: Consumer) bool {
        return c.rmqs_consumer_is_active(self.ptr);
    }

    /// Stores `offset` under the consumer's name (not answered by the broker).
    pub fn storeOffset(self: Consumer, offset: u64, diag: ?*Diagnostics) Error!void {
        var cerr: ?*c.rmqs_error = null;
        try check(c.rmqs_consumer_store_offset(self.ptr, offset, errOut(&cerr, diag)), cerr, diag);
    }

    /// The offset stored under the consumer's name; `error.NoOffset` when none.
    pub fn queryOffset(self: Consumer, diag: ?*Diagnostics) Error!u64 {
        var cerr: ?*c.rmqs_error = null;
        var out: u64 = 0;
        try check(c.rmqs_consumer_query_offset(self.ptr, &out, errOut(&cerr, diag)), cerr, diag);
        return out;
    }

    pub fn stats(self: Consumer) Error!c.rmqs_consumer_statistics {
        return statsOf(c.rmqs_consumer_statistics, c.rmqs_consumer_stats, self.ptr);
    }
};

// ---------------------------------------------------------------------------------------------
// Chunks and messages

/// A chunk lent by an event (valid until the event's `deinit`), or retained (`retain`,
/// valid until `release`). Immutable; may be read from several threads.
pub const Chunk = struct {
    ptr: *const c.rmqs_chunk,

    /// One more reference the caller owns: keeps the chunk (and its messages' bytes) after the
    /// event is freed; `release()` it (the last release gives the broker its credit).
    pub fn retain(self: Chunk) Chunk {
        return .{ .ptr = c.rmqs_chunk_retain(self.ptr).? };
    }

    /// Gives back a reference from `retain()`.
    pub fn release(self: Chunk) void {
        c.rmqs_chunk_release(@constCast(self.ptr));
    }

    pub fn stream(self: Chunk) []const u8 {
        return std.mem.span(c.rmqs_chunk_stream(self.ptr));
    }

    /// A super consumer's chunk: its partition's index; null for a plain consumer's.
    pub fn partition(self: Chunk) ?usize {
        const p = c.rmqs_chunk_partition(self.ptr);
        return if (p < 0) null else @intCast(p);
    }

    /// Offset of the chunk's first record (hidden ones included).
    pub fn id(self: Chunk) u64 {
        return c.rmqs_chunk_id(self.ptr);
    }

    /// Offset of the first visible message.
    pub fn firstOffset(self: Chunk) u64 {
        return c.rmqs_chunk_first_offset(self.ptr);
    }

    /// ms since the Unix epoch.
    pub fn timestamp(self: Chunk) i64 {
        return c.rmqs_chunk_timestamp(self.ptr);
    }

    /// Id of the last committed chunk when this one was sent (3.11+), null when unknown.
    pub fn committedId(self: Chunk) ?u64 {
        var out: u64 = 0;
        return if (c.rmqs_chunk_committed_id(self.ptr, &out)) out else null;
    }

    /// Visible messages.
    pub fn messageCount(self: Chunk) usize {
        return c.rmqs_chunk_message_count(self.ptr);
    }

    pub fn header(self: Chunk) c.rmqs_chunk_header_info {
        var h: c.rmqs_chunk_header_info = undefined;
        _ = c.rmqs_chunk_header(self.ptr, &h);
        return h;
    }

    /// Message `i` (0 = the first visible one), null when out of range.
    pub fn message(self: Chunk, i: usize) ?Message {
        const m = c.rmqs_chunk_message(self.ptr, i) orelse return null;
        return Message.of(m);
    }

    /// `var it = chunk.messages(); while (it.next()) |msg| { msg.offset, msg.body }`
    pub fn messages(self: Chunk) MessageIterator {
        return .{ .chunk = self, .index = 0, .count = self.messageCount() };
    }
};

pub const MessageIterator = struct {
    chunk: Chunk,
    index: usize,
    count: usize,

    pub fn next(self: *MessageIterator) ?Message {
        while (self.index < self.count) {
            const i = self.index;
            self.index += 1;
            if (self.chunk.message(i)) |m| return m;
        }
        return null;
    }

    pub fn reset(self: *MessageIterator) void {
        self.index = 0;
    }
};

/// AMQP 1.0 properties-section fields.
pub const Property = enum(i32) {
    message_id = c.RMQS_PROP_MESSAGE_ID,
    user_id = c.RMQS_PROP_USER_ID,
    to = c.RMQS_PROP_TO,
    subject = c.RMQS_PROP_SUBJECT,
    reply_to = c.RMQS_PROP_REPLY_TO,
    correlation_id = c.RMQS_PROP_CORRELATION_ID,
    content_type = c.RMQS_PROP_CONTENT_TYPE,
    content_encoding = c.RMQS_PROP_CONTENT_ENCODING,
    absolute_expiry_time = c.RMQS_PROP_ABSOLUTE_EXPIRY_TIME,
    creation_time = c.RMQS_PROP_CREATION_TIME,
    group_id = c.RMQS_PROP_GROUP_ID,
    group_sequence = c.RMQS_PROP_GROUP_SEQUENCE,
    reply_to_group_id = c.RMQS_PROP_REPLY_TO_GROUP_ID,
};

/// A message view: its slices are owned by the chunk and valid as long as it.
pub const Message = struct {
    ptr: *const c.rmqs_message,
    offset: u64,
    timestamp: i64,
    /// The application payload (the AMQP data section, or the raw record).
    body: []const u8,

    fn of(m: *const c.rmqs_message) Message {
        var n: usize = 0;
        const p = c.rmqs_message_body(m, &n);
        return .{
            .ptr = m,
            .offset = c.rmqs_message_offset(m),
            .timestamp = c.rmqs_message_timestamp(m),
            .body = if (p == null) &.{} else p[0..n],
        };
    }

    /// An owned copy of the body, for use after the chunk is released.
    pub fn dupeBody(self: Message, allocator: std.mem.Allocator) std.mem.Allocator.Error![]u8 {
        return allocator.dupe(u8, self.body);
    }

    /// The record as stored (usually an encoded AMQP 1.0 message).
    pub fn raw(self: Message) []const u8 {
        var n: usize = 0;
        const p = c.rmqs_message_raw(self.ptr, &n);
        return if (p == null) &.{} else p[0..n];
    }

    pub fn isAmqp(self: Message) bool {
        return c.rmqs_message_is_amqp(self.ptr);
    }

    /// A properties-section field as text, null when absent.
    pub fn property(self: Message, prop: Property) ?[]const u8 {
        var p: [*c]const u8 = null;
        var n: usize = 0;
        if (!c.rmqs_message_property(self.ptr, @intFromEnum(prop), &p, &n)) return null;
        return if (p == null) &.{} else p[0..n];
    }

    /// An application property as text, null when absent (or too long a key).
    pub fn appProperty(self: Message, key: []const u8) ?[]const u8 {
        var k: CStr = .{};
        const kz = k.of(key, null) catch return null;
        var p: [*c]const u8 = null;
        var n: usize = 0;
        if (!c.rmqs_message_app_property(self.ptr, kz, &p, &n)) return null;
        return if (p == null) &.{} else p[0..n];
    }

    pub fn appPropertyCount(self: Message) usize {
        return c.rmqs_message_app_property_count(self.ptr);
    }

    /// What the body is.
    pub fn bodyType(self: Message) BodyType {
        return @enumFromInt(c.rmqs_message_body_type(self.ptr));
    }

    /// Body sections (data or sequence sections; 1 for an amqp-value).
    pub fn bodyCount(self: Message) usize {
        return c.rmqs_message_body_count(self.ptr);
    }

    /// Body section `i`: a data section as `.binary`, a sequence as `.list`, the amqp-value as is.
    pub fn bodySection(self: Message, i: usize) ?Value {
        var v: c.rmqs_value = undefined;
        return if (c.rmqs_message_body_section(self.ptr, i, &v)) Value.fromC(v) else null;
    }

    /// A whole non-body section: header and properties as `.list`, the others as `.map`.
    pub fn section(self: Message, which: Section) ?Value {
        var v: c.rmqs_value = undefined;
        return if (c.rmqs_message_section(self.ptr, @intFromEnum(which), &v)) Value.fromC(v) else null;
    }

    /// A header field typed as sent; null when absent.
    pub fn headerValue(self: Message, field: HeaderField) ?Value {
        var v: c.rmqs_value = undefined;
        return if (c.rmqs_message_header_value(self.ptr, @intFromEnum(field), &v)) Value.fromC(v) else null;
    }

    /// A properties field typed as sent; null when absent.
    pub fn propertyValue(self: Message, prop: Property) ?Value {
        var v: c.rmqs_value = undefined;
        return if (c.rmqs_message_property_value(self.ptr, @intFromEnum(prop), &v)) Value.fromC(v) else null;
    }

    /// An application property typed as sent; null when absent.
    pub fn appPropertyValue(self: Message, key: []const u8) ?Value {
        var k: CStr = .{};
        const kz = k.of(key, null) catch return null;
        var v: c.rmqs_value = undefined;
        return if (c.rmqs_message_app_property_value(self.ptr, kz, &v)) Value.fromC(v) else null;
    }

    /// An entry (symbol key) of the message annotations, delivery annotations or footer.
    pub fn annotation(self: Message, which: Section, key: []const u8) ?Value {
        const map = self.section(which) orelse return null;
        return switch (map) {
            .map => |m| m.get(key),
            else => null,
        };
    }

    pub const KeyValue = struct { key: []const u8, value: []const u8 };

    /// Application property `i` (wire order), null when out of range or not text.
    pub fn appPropertyAt(self: Message, i: usize) ?KeyValue {
        var k: [*c]const u8 = null;
        var kn: usize = 0;
        var v: [*c]const u8 = null;
        var vn: usize = 0;
        if (!c.rmqs_message_app_property_at(self.ptr, i, &k, &kn, &v, &vn)) return null;
        return .{ .key = if (k == null) &.{} else k[0..kn], .value = if (v == null) &.{} else v[0..vn] };
    }
};

// ---------------------------------------------------------------------------------------------
// Typed values and the message builder

/// Fields of the AMQP 1.0 header section.
pub const HeaderField = enum(i32) {
    durable = c.RMQS_HEADER_DURABLE,
    priority = c.RMQS_HEADER_PRIORITY,
    ttl = c.RMQS_HEADER_TTL,
    first_acquirer = c.RMQS_HEADER_FIRST_ACQUIRER,
    delivery_count = c.RMQS_HEADER_DELIVERY_COUNT,
};

/// Sections of an AMQP 1.0 message.
pub const Section = enum(i32) {
    header = c.RMQS_SECTION_HEADER,
    delivery_annotations = c.RMQS_SECTION_DELIVERY_ANNOTATIONS,
    message_annotations = c.RMQS_SECTION_MESSAGE_ANNOTATIONS,
    properties = c.RMQS_SECTION_PROPERTIES,
    application_properties = c.RMQS_SECTION_APPLICATION_PROPERTIES,
    footer = c.RMQS_SECTION_FOOTER,
};

/// What the body of a received message is.
pub const BodyType = enum(i32) {
    raw = c.RMQS_BODY_RAW,
    data = c.RMQS_BODY_DATA,
    sequence = c.RMQS_BODY_SEQUENCE,
    value = c.RMQS_BODY_VALUE,
    none = c.RMQS_BODY_NONE,
    _,
};

/// A typed AMQP 1.0 value. Slices (strings, symbols, binaries, decimals, compounds) are
/// borrowed: read from a message they live as long as its chunk; given to a builder they are
/// copied by the call.
pub const Value = union(enum) {
    null,
    boolean: bool,
    ubyte: u8,
    ushort: u16,
    uint: u32,
    ulong: u64,
    byte: i8,
    short: i16,
    int: i32,
    long: i64,
    float: f32,
    double: f64,
    /// ms since the Unix epoch (may be negative).
    timestamp: i64,
    /// The 16 bytes, in network order.
    uuid: [16]u8,
    string: []const u8,
    symbol: []const u8,
    binary: []const u8,
    char: u21,
    /// Decimals, as their bytes on the wire.
    decimal32: []const u8,
    decimal64: []const u8,
    decimal128: []const u8,
    list: Compound,
    map: Compound,
    array: Compound,
    described: Compound,

    /// From the C value (its bytes stay borrowed). Unknown kinds read as null.
    pub fn fromC(v: c.rmqs_value) Value {
        const bytes: []const u8 = if (v.data == null) &.{} else v.data[0..v.len];
        return switch (v.kind) {
            c.RMQS_VALUE_BOOL => .{ .boolean = v.bool_value },
            c.RMQS_VALUE_UBYTE => .{ .ubyte = @truncate(v.uint_value) },
            c.RMQS_VALUE_USHORT => .{ .ushort = @truncate(v.uint_value) },
            c.RMQS_VALUE_UINT => .{ .uint = @truncate(v.uint_value) },
            c.RMQS_VALUE_ULONG => .{ .ulong = v.uint_value },
            c.RMQS_VALUE_BYTE => .{ .byte = @truncate(v.int_value) },
            c.RMQS_VALUE_SHORT => .{ .short = @truncate(v.int_value) },
            c.RMQS_VALUE_INT => .{ .int = @truncate(v.int_value) },
            c.RMQS_VALUE_LONG => .{ .long = v.int_value },
            c.RMQS_VALUE_FLOAT => .{ .float = @floatCast(v.float_value) },
            c.RMQS_VALUE_DOUBLE => .{ .double = v.float_value },
            c.RMQS_VALUE_TIMESTAMP => .{ .timestamp = v.int_value },
            c.RMQS_VALUE_UUID => .{ .uuid = v.uuid },
            c.RMQS_VALUE_STRING => .{ .string = bytes },
            c.RMQS_VALUE_SYMBOL => .{ .symbol = bytes },
            c.RMQS_VALUE_BINARY => .{ .binary = bytes },
            c.RMQS_VALUE_CHAR => .{ .char = @truncate(v.uint_value) },
            c.RMQS_VALUE_DECIMAL32 => .{ .decimal32 = bytes },
            c.RMQS_VALUE_DECIMAL64 => .{ .decimal64 = bytes },
            c.RMQS_VALUE_DECIMAL128 => .{ .decimal128 = bytes },
            c.RMQS_VALUE_LIST => .{ .list = .{ .v = v } },
            c.RMQS_VALUE_MAP => .{ .map = .{ .v = v } },
            c.RMQS_VALUE_ARRAY => .{ .array = .{ .v = v } },
            c.RMQS_VALUE_DESCRIBED => .{ .described = .{ .v = v } },
            else => .null,
        };
    }

    /// The C value (borrowing this value's bytes), for the builder's setters.
    pub fn toC(self: Value) c.rmqs_value {
        var v = std.mem.zeroes(c.rmqs_value);
        switch (self) {
            .null => v.kind = c.RMQS_VALUE_NULL,
            .boolean => |b| {
                v.kind = c.RMQS_VALUE_BOOL;
                v.bool_value = b;
            },
            inline .ubyte, .ushort, .uint, .ulong, .char => |x, tag| {
                v.kind = switch (tag) {
                    .ubyte => c.RMQS_VALUE_UBYTE,
                    .ushort => c.RMQS_VALUE_USHORT,
                    .uint => c.RMQS_VALUE_UINT,
                    .ulong => c.RMQS_VALUE_ULONG,
                    else => c.RMQS_VALUE_CHAR,
                };
                v.uint_value = x;
            },
            inline .byte, .short, .int, .long, .timestamp => |x, tag| {
                v.kind = switch (tag) {
                    .byte => c.RMQS_VALUE_BYTE,
                    .short => c.RMQS_VALUE_SHORT,
                    .int => c.RMQS_VALUE_INT,
                    .long => c.RMQS_VALUE_LONG,
                    else => c.RMQS_VALUE_TIMESTAMP,
                };
                v.int_value = x;
            },
            .float => |x| {
                v.kind = c.RMQS_VALUE_FLOAT;
                v.float_value = x;
            },
            .double => |x| {
                v.kind = c.RMQS_VALUE_DOUBLE;
                v.float_value = x;
            },
            .uuid => |u| {
                v.kind = c.RMQS_VALUE_UUID;
                v.uuid = u;
            },
            inline .string, .symbol, .binary, .decimal32, .decimal64, .decimal128 => |b, tag| {
                v.kind = switch (tag) {
                    .string => c.RMQS_VALUE_STRING,
                    .symbol => c.RMQS_VALUE_SYMBOL,
                    .binary => c.RMQS_VALUE_BINARY,
                    .decimal32 => c.RMQS_VALUE_DECIMAL32,
                    .decimal64 => c.RMQS_VALUE_DECIMAL64,
                    else => c.RMQS_VALUE_DECIMAL128,
                };
                v.data = if (b.len == 0) null else b.ptr;
                v.len = b.len;
            },
            .list, .map, .array, .described => |x| v = x.v,
        }
        return v;
    }

    /// Same type and value (floats bit for bit, so a NaN equals the same NaN; compounds by
    /// their encoding).
    pub fn eql(a: Value, b: Value) bool {
        if (std.meta.activeTag(a) != std.meta.activeTag(b)) return false;
        return switch (a) {
            .null => true,
            .float => |x| @as(u32, @bitCast(x)) == @as(u32, @bitCast(b.float)),
            .double => |x| @as(u64, @bitCast(x)) == @as(u64, @bitCast(b.double)),
            .string, .symbol, .binary, .decimal32, .decimal64, .decimal128 => blk: {
                const x = a.toC();
                const y = b.toC();
                break :blk std.mem.eql(u8, if (x.len == 0) &.{} else x.data[0..x.len], if (y.len == 0) &.{} else y.data[0..y.len]);
            },
            .list, .map, .array, .described => |x| blk: {
                const y = b.toC();
                break :blk std.mem.eql(u8, x.v.data[0..x.v.len], y.data[0..y.len]);
            },
            inline else => |x, tag| std.meta.eql(x, @field(b, @tagName(tag))),
        };
    }
};

/// A list, map, array or described value: its AMQP encoding, read element by element.
pub const Compound = struct {
    v: c.rmqs_value,

    /// Elements of a list or array, entries of a map, 2 for a described value.
    pub fn count(self: Compound) usize {
        return c.rmqs_value_count(&self.v);
    }

    /// Element `i` of a list or array (described: 0 descriptor, 1 value).
    pub fn at(self: Compound, i: usize) ?Value {
        var out: c.rmqs_value = undefined;
        return if (c.rmqs_value_list_get(&self.v, i, &out)) Value.fromC(out) else null;
    }

    pub const Entry = struct { key: Value, value: Value };

    /// Entry `i` of a map (wire order).
    pub fn entry(self: Compound, i: usize) ?Entry {
        var k: c.rmqs_value = undefined;
        var x: c.rmqs_value = undefined;
        if (!c.rmqs_value_map_entry(&self.v, i, &k, &x)) return null;
        return .{ .key = Value.fromC(k), .value = Value.fromC(x) };
    }

    /// The value of a map's first entry whose key is the string or symbol `key`.
    pub fn get(self: Compound, key: []const u8) ?Value {
        var k: CStr = .{};
        const kz = k.of(key, null) catch return null;
        var out: c.rmqs_value = undefined;
        return if (c.rmqs_value_map_get(&self.v, kz, &out)) Value.fromC(out) else null;
    }
};

/// An AMQP 1.0 message to publish (owns an `rmqs_message_builder`): body sections, header,
/// properties, application properties, annotations, footer, and the stream-level filter
/// value and publishing id. Setters copy what they are given. Reusable: `reset()` and build
/// the next one (no allocation once its buffers fit). One thread at a time.
pub const MessageBuilder = struct {
    ptr: *c.rmqs_message_builder,

    pub fn init() Error!MessageBuilder {
        return .{ .ptr = c.rmqs_message_builder_new() orelse return error.Unexpected };
    }

    pub fn deinit(self: MessageBuilder) void {
        c.rmqs_message_builder_free(self.ptr);
    }

    /// Empties every section, the filter value and the publishing id.
    pub fn reset(self: MessageBuilder) void {
        c.rmqs_message_builder_reset(self.ptr);
    }

    /// The body: one data section (replaces any body).
    pub fn setBody(self: MessageBuilder, data: []const u8, diag: ?*Diagnostics) Error!void {
        var cerr: ?*c.rmqs_error = null;
        try check(c.rmqs_message_builder_set_body(self.ptr, data.ptr, data.len, errOut(&cerr, diag)), cerr, diag);
    }

    /// Appends another data section.
    pub fn addBodySection(self: MessageBuilder, data: []const u8, diag: ?*Diagnostics) Error!void {
        var cerr: ?*c.rmqs_error = null;
        try check(c.rmqs_message_builder_add_body_section(self.ptr, data.ptr, data.len, errOut(&cerr, diag)), cerr, diag);
    }

    /// The body: one amqp-value section (replaces any body).
    pub fn setBodyValue(self: MessageBuilder, value: Value, diag: ?*Diagnostics) Error!void {
        const v = value.toC();
        var cerr: ?*c.rmqs_error = null;
        try check(c.rmqs_message_builder_set_body_value(self.ptr, &v, errOut(&cerr, diag)), cerr, diag);
    }

    /// A header field (`.null` unsets it).
    pub fn setHeader(self: MessageBuilder, field: HeaderField, value: Value, diag: ?*Diagnostics) Error!void {
        const v = value.toC();
        var cerr: ?*c.rmqs_error = null;
        try check(c.rmqs_message_builder_set_header(self.ptr, @intFromEnum(field), &v, errOut(&cerr, diag)), cerr, diag);
    }

    /// A properties field (message-id and correlation-id: ulong, uuid, binary or string;
    /// content-type a symbol; the times a timestamp; ...). `.null` unsets it.
    pub fn setProperty(self: MessageBuilder, prop: Property, value: Value, diag: ?*Diagnostics) Error!void {
        const v = value.toC();
        var cerr: ?*c.rmqs_error = null;
        try check(c.rmqs_message_builder_set_property(self.ptr, @intFromEnum(prop), &v, errOut(&cerr, diag)), cerr, diag);
    }

    /// Adds an application property (simple types; keys unique).
    pub fn addAppProperty(self: MessageBuilder, key: []const u8, value: Value, diag: ?*Diagnostics) Error!void {
        var k: CStr = .{};
        const v = value.toC();
        var cerr: ?*c.rmqs_error = null;
        try check(c.rmqs_message_builder_add_app_property(self.ptr, try k.of(key, diag), &v, errOut(&cerr, diag)), cerr, diag);
    }

    /// Adds an entry with a symbol key to the message annotations, delivery annotations or
    /// footer.
    pub fn addAnnotation(self: MessageBuilder, which: Section, key: []const u8, value: Value, diag: ?*Diagnostics) Error!void {
        var k: CStr = .{};
        const v = value.toC();
        var cerr: ?*c.rmqs_error = null;
        try check(c.rmqs_message_builder_add_annotation(self.ptr, @intFromEnum(which), try k.of(key, diag), &v, errOut(&cerr, diag)), cerr, diag);
    }

    /// The filter value broker-side filtering indexes the message under (null: none).
    pub fn setFilterValue(self: MessageBuilder, value: ?[]const u8, diag: ?*Diagnostics) Error!void {
        var f: CStr = .{};
        const fz: ?[*:0]const u8 = if (value) |v| try f.of(v, diag) else null;
        var cerr: ?*c.rmqs_error = null;
        try check(c.rmqs_message_builder_set_filter_value(self.ptr, fz, errOut(&cerr, diag)), cerr, diag);
    }

    /// An explicit publishing id, above every id the producer used before.
    pub fn setPublishingId(self: MessageBuilder, id: u64, diag: ?*Diagnostics) Error!void {
        var cerr: ?*c.rmqs_error = null;
        try check(c.rmqs_message_builder_set_publishing_id(self.ptr, id, errOut(&cerr, diag)), cerr, diag);
    }

    /// A header field as set.
    pub fn header(self: MessageBuilder, field: HeaderField) ?Value {
        return BuilderView.of(self.ptr).header(field);
    }

    /// A property as it will be sent (slices borrowed until the builder changes).
    pub fn property(self: MessageBuilder, prop: Property) ?Value {
        return BuilderView.of(self.ptr).property(prop);
    }

    /// An application property as added.
    pub fn appProperty(self: MessageBuilder, key: []const u8) ?Value {
        return BuilderView.of(self.ptr).appProperty(key);
    }
};

/// A borrowed, read-only view of a message being sent, for routing and key extraction.
pub const BuilderView = struct {
    ptr: *const c.rmqs_message_builder,

    fn of(p: *const c.rmqs_message_builder) BuilderView {
        return .{ .ptr = p };
    }

    pub fn header(self: BuilderView, field: HeaderField) ?Value {
        var v: c.rmqs_value = undefined;
        return if (c.rmqs_message_builder_header(self.ptr, @intFromEnum(field), &v)) Value.fromC(v) else null;
    }

    pub fn property(self: BuilderView, prop: Property) ?Value {
        var v: c.rmqs_value = undefined;
        return if (c.rmqs_message_builder_property(self.ptr, @intFromEnum(prop), &v)) Value.fromC(v) else null;
    }

    pub fn appProperty(self: BuilderView, key: []const u8) ?Value {
        var k: CStr = .{};
        const kz = k.of(key, null) catch return null;
        var v: c.rmqs_value = undefined;
        return if (c.rmqs_message_builder_app_property(self.ptr, kz, &v)) Value.fromC(v) else null;
    }
};

// ---------------------------------------------------------------------------------------------
// Callbacks (only where an answer is needed at once; everything else goes through a Queue)

/// What a routing function or key extractor is given for one message (borrowed for the call).
pub const RoutingRequest = struct {
    /// The message when it was sent as a `MessageBuilder`.
    message: ?BuilderView,
    /// Its body: the one given to the send call (with `sendMessageBody` too, not the
    /// builder's own); for a builder sent whole, its body when that is one data section, else
    /// empty.
    body: []const u8,
    /// The routing key ("" when none; always "" for a key extractor).
    routing_key: []const u8,
    tag: usize,
};

/// A super producer's routing function: writes the partition indices into `out` (room for
/// every partition) and returns how many (0 refuses the message). Runs on the sending
/// thread, possibly several at once.
pub const Routing = struct {
    context: ?*anyopaque = null,
    func: *const fn (context: ?*anyopaque, msg: RoutingRequest, out: []u32) usize,

    fn trampoline(ud: ?*anyopaque, msg: ?*const c.rmqs_message_builder, body: [*c]const u8, len: usize, key: [*c]const u8, key_len: usize, tag: usize, count: usize, out: [*c]u32) callconv(.c) usize {
        const self: *const Routing = @ptrCast(@alignCast(ud.?));
        const req: RoutingRequest = .{
            .message = if (msg) |m| BuilderView.of(m) else null,
            .body = if (body == null) &.{} else body[0..len],
            .routing_key = if (key == null) "" else key[0..key_len],
            .tag = tag,
        };
        return self.func(self.context, req, out[0..count]);
    }
};

/// A super producer's key extractor: the routing key of a message sent without one (null:
/// it has none, the send fails). The slice must stay valid until it returns (a property of
/// the message, its body, static memory). Runs on the sending thread.
pub const KeyExtractor = struct {
    context: ?*anyopaque = null,
    func: *const fn (context: ?*anyopaque, msg: RoutingRequest) ?[]const u8,

    fn trampoline(ud: ?*anyopaque, msg: ?*const c.rmqs_message_builder, body: [*c]const u8, len: usize, tag: usize, key: [*c]u8, capacity: usize) callconv(.c) isize {
        const self: *const KeyExtractor = @ptrCast(@alignCast(ud.?));
        const req: RoutingRequest = .{
            .message = if (msg) |m| BuilderView.of(m) else null,
            .body = if (body == null) &.{} else body[0..len],
            .routing_key = "",
            .tag = tag,
        };
        const k = self.func(self.context, req) orelse return -1;
        if (k.len <= capacity and k.len > 0) @memcpy(key[0..k.len], k);
        return @intCast(k.len);
    }
};

/// A consumer's client-side filter: keep (true) or hide each delivered message. Runs on a
/// library runtime thread as chunks arrive: quick, non-blocking, reading the message only.
pub const PostFilter = struct {
    context: ?*anyopaque = null,
    func: *const fn (context: ?*anyopaque, msg: Message) bool,

    fn trampoline(ud: ?*anyopaque, msg: ?*const c.rmqs_message) callconv(.c) bool {
        const self: *const PostFilter = @ptrCast(@alignCast(ud.?));
        return self.func(self.context, Message.of(msg.?));
    }
};

// ---------------------------------------------------------------------------------------------
// Super streams

/// The outcome of one message of a super producer (layout of `rmqs_super_confirm`).
pub const SuperConfirm = extern struct {
    publishing_id: u64,
    tag: usize,
    status: Status,
    /// The partition's index.
    partition: u32,

    pub fn err(self: SuperConfirm) ?Error {
        return if (self.status == c.RMQS_OK) null else statusError(self.status);
    }

    comptime {
        std.debug.assert(@sizeOf(SuperConfirm) == @sizeOf(c.rmqs_super_confirm));
        std.debug.assert(@offsetOf(SuperConfirm, "partition") == @offsetOf(c.rmqs_super_confirm, "partition"));
    }
};

/// A single active consumer's activation or step-down (`Event.consumerUpdate()`).
pub const ConsumerUpdate = struct {
    /// The stream (a super consumer's partition), borrowed from the event.
    stream: []const u8,
    /// true: activated (answer where it starts with `Event.reply()`); false: steps down.
    is_active: bool,
    /// On activation, the offset stored under the consumer's reference, null when none.
    stored_offset: ?u64,
};

pub const SuperProducerOptions = struct {
    /// Where confirms (`.super_confirms`) and state changes go.
    queue: ?Queue = null,
    tag: usize = 0,
    /// Every partition producer deduplicates under this name.
    name: ?[]const u8 = null,
    /// `hash` (default) or `key` (the broker's bindings); unset with `routing`.
    routing_mode: ?[]const u8 = null,
    /// Route with a function instead.
    routing: ?Routing = null,
    /// The routing key of messages sent without one.
    key_extractor: ?KeyExtractor = null,
    /// Create every partition producer now.
    eager: bool = false,
    settings: []const Setting = &.{},
};

/// Where a super producer's message went.
pub const SuperSendResult = struct { partition: u32, publishing_id: u64 };

/// A producer on a super stream: routes each message to a partition by its routing key.
pub const SuperProducer = struct {
    ptr: *c.rmqs_super_producer,

    pub fn init(conn: Connection, super_stream: []const u8, opts: SuperProducerOptions, diag: ?*Diagnostics) Error!SuperProducer {
        const cfg = try Config.init();
        defer cfg.deinit();
        if (opts.name) |v| try cfg.set("name", v, diag);
        if (opts.routing_mode) |v| try cfg.set("routing", v, diag);
        if (opts.eager) try cfg.set("eager", "true", diag);
        if (opts.routing) |r| try cfg.setCallback(c.rmqs_config_set_routing_cb, Routing, r, Routing.trampoline, diag);
        if (opts.key_extractor) |k| try cfg.setCallback(c.rmqs_config_set_key_extractor, KeyExtractor, k, KeyExtractor.trampoline, diag);
        try cfg.setAll(opts.settings, diag);
        var s: CStr = .{};
        var cerr: ?*c.rmqs_error = null;
        var out: ?*c.rmqs_super_producer = null;
        const q: ?*c.rmqs_queue = if (opts.queue) |q| q.ptr else null;
        try check(c.rmqs_super_producer_new(conn.ptr, try s.of(super_stream, diag), cfg.ptr, null, null, null, q, opts.tag, &out, errOut(&cerr, diag)), cerr, diag);
        return .{ .ptr = out.? };
    }

    /// Closes (waiting up to 5 s for confirms) and frees.
    pub fn deinit(self: SuperProducer) void {
        c.rmqs_super_producer_free(self.ptr);
    }

    /// Sends one body to the partition of `routing_key` (null: the key extractor's).
    pub fn send(self: SuperProducer, routing_key: ?[]const u8, body: []const u8, tag: usize, diag: ?*Diagnostics) Error!SuperSendResult {
        var k: CStr = .{};
        const kz: ?[*:0]const u8 = if (routing_key) |v| try k.of(v, diag) else null;
        var cerr: ?*c.rmqs_error = null;
        var r: SuperSendResult = .{ .partition = 0, .publishing_id = 0 };
        try check(c.rmqs_super_producer_send_ex(self.ptr, kz, body.ptr, body.len, null, 0, tag, 0, &r.partition, &r.publishing_id, errOut(&cerr, diag)), cerr, diag);
        return r;
    }

    /// Sends an AMQP message (the key extractor and routing function are given it).
    pub fn sendMessage(self: SuperProducer, routing_key: ?[]const u8, msg: *const MessageBuilder, tag: usize, diag: ?*Diagnostics) Error!SuperSendResult {
        var k: CStr = .{};
        const kz: ?[*:0]const u8 = if (routing_key) |v| try k.of(v, diag) else null;
        var cerr: ?*c.rmqs_error = null;
        var r: SuperSendResult = .{ .partition = 0, .publishing_id = 0 };
        try check(c.rmqs_super_producer_send_message(self.ptr, kz, msg.ptr, tag, 0, &r.partition, &r.publishing_id, errOut(&cerr, diag)), cerr, diag);
        return r;
    }

    /// Sends `msg`'s sections with `body` (copied) as its one data section in place of
    /// `msg`'s own body, which is neither sent nor changed, as `Producer.sendMessageBody`, to
    /// the partition of `routing_key` (null: the key extractor's). The key extractor and
    /// routing function are given `msg` and `body` (the body sent, not the builder's own).
    pub fn sendMessageBody(self: SuperProducer, routing_key: ?[]const u8, msg: *const MessageBuilder, body: []const u8, tag: usize, flags: SendFlags, diag: ?*Diagnostics) Error!SuperSendResult {
        var k: CStr = .{};
        const kz: ?[*:0]const u8 = if (routing_key) |v| try k.of(v, diag) else null;
        var cerr: ?*c.rmqs_error = null;
        var r: SuperSendResult = .{ .partition = 0, .publishing_id = 0 };
        try check(c.rmqs_super_producer_send_message_body(self.ptr, kz, msg.ptr, body.ptr, body.len, tag, @bitCast(flags), &r.partition, &r.publishing_id, errOut(&cerr, diag)), cerr, diag);
        return r;
    }

    /// Sends messages in order, each routed by its key (`keys`: one per message, a null entry
    /// or a null `keys` asking the key extractor). On error, `accepted` (when given) tells how
    /// many of the first ones were accepted and will be confirmed.
    pub fn sendMessages(self: SuperProducer, keys: ?[]const ?[*:0]const u8, msgs: []const *const MessageBuilder, tags: ?[]const usize, accepted: ?*usize, diag: ?*Diagnostics) Error!void {
        if (keys) |k| if (k.len != msgs.len) return localError(diag, "keys and messages differ in length");
        if (tags) |t| if (t.len != msgs.len) return localError(diag, "tags and messages differ in length");
        var done: usize = 0;
        defer if (accepted) |a| {
            a.* = done;
        };
        var buf: [64]?*const c.rmqs_message_builder = undefined;
        while (done < msgs.len) {
            const n = @min(buf.len, msgs.len - done);
            for (msgs[done..][0..n], 0..) |m, i| buf[i] = m.ptr;
            const kp: [*c]const [*c]const u8 = if (keys) |k| @ptrCast(k[done..].ptr) else null;
            const tp: [*c]const usize = if (tags) |t| t[done..].ptr else null;
            var got: usize = 0;
            var cerr: ?*c.rmqs_error = null;
            const st = c.rmqs_super_producer_send_messages(self.ptr, kp, @ptrCast(&buf), tp, n, 0, &got, errOut(&cerr, diag));
            done += got;
            try check(st, cerr, diag);
        }
    }

    pub fn flush(self: SuperProducer, timeout_ms: i32) Error!void {
        try callC(c.rmqs_super_producer_flush, .{ self.ptr, timeout_ms }, null);
    }

    pub fn close(self: SuperProducer, timeout_ms: i32) Error!void {
        try callC(c.rmqs_super_producer_close, .{ self.ptr, timeout_ms }, null);
    }

    /// Asks the broker for the partitions again; returns their number.
    pub fn refresh(self: SuperProducer, diag: ?*Diagnostics) Error!usize {
        var cerr: ?*c.rmqs_error = null;
        var n: usize = 0;
        try check(c.rmqs_super_producer_refresh(self.ptr, &n, errOut(&cerr, diag)), cerr, diag);
        return n;
    }

    pub fn partitionCount(self: SuperProducer) usize {
        return c.rmqs_super_producer_partition_count(self.ptr);
    }

    /// Partition `i`'s stream (owned by the super producer), null out of range.
    pub fn partition(self: SuperProducer, i: usize) ?[]const u8 {
        return if (c.rmqs_super_producer_partition(self.ptr, i)) |p| std.mem.span(p) else null;
    }

    pub fn stats(self: SuperProducer) Error!c.rmqs_producer_statistics {
        return statsOf(c.rmqs_producer_statistics, c.rmqs_super_producer_stats, self.ptr);
    }
};

/// A consumer of every partition of a super stream. Chunks say their partition
/// (`Chunk.partition()`); with `single_active_consumer` and a `name` the broker spreads the
/// partitions over the group (`.consumer_update` events, `Event.partition()`).
pub const SuperConsumer = struct {
    ptr: *c.rmqs_super_consumer,

    pub fn init(conn: Connection, super_stream: []const u8, opts: ConsumerOptions, diag: ?*Diagnostics) Error!SuperConsumer {
        const cfg = try opts.config(diag);
        defer cfg.deinit();
        var s: CStr = .{};
        var cerr: ?*c.rmqs_error = null;
        var out: ?*c.rmqs_super_consumer = null;
        try check(c.rmqs_super_consumer_new(conn.ptr, try s.of(super_stream, diag), cfg.ptr, null, null, null, opts.queue.ptr, opts.tag, &out, errOut(&cerr, diag)), cerr, diag);
        return .{ .ptr = out.? };
    }

    pub fn deinit(self: SuperConsumer) void {
        c.rmqs_super_consumer_free(self.ptr);
    }

    pub fn close(self: SuperConsumer, timeout_ms: i32) Error!void {
        try callC(c.rmqs_super_consumer_close, .{ self.ptr, timeout_ms }, null);
    }

    /// Grants partition `i` `credits` more chunks.
    pub fn credit(self: SuperConsumer, i: usize, credits: u16) Error!void {
        try callC(c.rmqs_super_consumer_credit, .{ self.ptr, i, @as(u32, credits) }, null);
    }

    /// Stores `offset` for partition `i` under the super consumer's name.
    pub fn storeOffset(self: SuperConsumer, i: usize, offset: u64, diag: ?*Diagnostics) Error!void {
        var cerr: ?*c.rmqs_error = null;
        try check(c.rmqs_super_consumer_store_offset(self.ptr, i, offset, errOut(&cerr, diag)), cerr, diag);
    }

    /// The offset stored for partition `i`; `error.NoOffset` when none.
    pub fn queryOffset(self: SuperConsumer, i: usize, diag: ?*Diagnostics) Error!u64 {
        var cerr: ?*c.rmqs_error = null;
        var out: u64 = 0;
        try check(c.rmqs_super_consumer_query_offset(self.ptr, i, &out, errOut(&cerr, diag)), cerr, diag);
        return out;
    }

    pub fn refresh(self: SuperConsumer, diag: ?*Diagnostics) Error!usize {
        var cerr: ?*c.rmqs_error = null;
        var n: usize = 0;
        try check(c.rmqs_super_consumer_refresh(self.ptr, &n, errOut(&cerr, diag)), cerr, diag);
        return n;
    }

    pub fn partitionCount(self: SuperConsumer) usize {
        return c.rmqs_super_consumer_partition_count(self.ptr);
    }

    pub fn partition(self: SuperConsumer, i: usize) ?[]const u8 {
        return if (c.rmqs_super_consumer_partition(self.ptr, i)) |p| std.mem.span(p) else null;
    }

    /// Whether it receives from partition `i` now (single active consumer: the active one).
    pub fn isActive(self: SuperConsumer, i: usize) bool {
        return c.rmqs_super_consumer_is_active(self.ptr, i);
    }

    pub fn stats(self: SuperConsumer) Error!c.rmqs_consumer_statistics {
        return statsOf(c.rmqs_consumer_statistics, c.rmqs_super_consumer_stats, self.ptr);
    }
};

// ---------------------------------------------------------------------------------------------
// Unit tests (no broker)

test "status mapping covers the library's table" {
    var descs: [*c]const c.rmqs_status_desc = null;
    var n: usize = 0;
    c.rmqs_status_descs(&descs, &n);
    try std.testing.expect(n > 0);
    var mapped: usize = 0;
    for (descs[0..n]) |d| {
        if (d.status == c.RMQS_OK) continue;
        const e = statusError(d.status);
        try std.testing.expect(e != error.Broker and e != error.Unexpected);
        try std.testing.expectEqual(d.status, errorStatus(e).?);
        mapped += 1;
    }
    try std.testing.expectEqual(status_table.len, mapped);
    try std.testing.expectEqual(error.Broker, statusError(99));
    try std.testing.expectEqual(error.Unexpected, statusError(-99));
    try std.testing.expectEqualStrings("RMQS_ERR_TIMEOUT", statusName(c.RMQS_ERR_TIMEOUT));
}

test "library version matches the header" {
    try std.testing.expect(libraryCompatible());
    try std.testing.expect(version().len > 0);
}

test "hash routing and local argument errors" {
    const p = try superStreamPartition("hello", 3);
    try std.testing.expect(p < 3);
    try std.testing.expectError(error.InvalidArgument, superStreamPartition("k", 0));
    var d: Diagnostics = .{};
    var s: CStr = .{};
    try std.testing.expectError(error.InvalidArgument, s.of("a\x00b", &d));
    try std.testing.expectEqual(@as(Status, c.RMQS_ERR_INVALID_ARGUMENT), d.status);
    try std.testing.expect(d.message().len > 0);
}

test "config errors carry the library's message" {
    var d: Diagnostics = .{};
    try std.testing.expectError(error.InvalidArgument, Connection.open(.{ .settings = &.{.{ "no_such_key", "1" }} }, &d));
    try std.testing.expectEqual(@as(Status, c.RMQS_ERR_INVALID_ARGUMENT), d.status);
    try std.testing.expect(std.mem.indexOf(u8, d.message(), "no_such_key") != null);
}

test "queue: empty poll, wakeup, fd" {
    const q = try Queue.init();
    defer q.deinit();
    try std.testing.expectEqual(@as(?Event, null), q.poll(0));
    var buf: [4]Event = undefined;
    try std.testing.expectEqual(@as(usize, 0), q.pollBatch(&buf, 0).len);
    q.wakeup();
    try std.testing.expectEqual(@as(?Event, null), q.poll(-1)); // returns at once after wakeup
    try std.testing.expect(q.fd() != null);
    try std.testing.expectEqual(@as(usize, 0), q.len());
}

test "values round-trip through the C representation" {
    const vals = [_]Value{
        .null,                              .{ .boolean = true },              .{ .ubyte = 255 },
        .{ .ulong = std.math.maxInt(u64) }, .{ .long = std.math.minInt(i64) }, .{ .double = std.math.nan(f64) },
        .{ .float = -std.math.inf(f32) },   .{ .timestamp = -1 },              .{ .uuid = [_]u8{7} ** 16 },
        .{ .string = "" },                  .{ .symbol = "sym" },              .{ .binary = "b\x00n" },
    };
    for (vals) |v| try std.testing.expect(Value.fromC(v.toC()).eql(v));
    try std.testing.expect(!(Value{ .uint = 1 }).eql(.{ .ulong = 1 }));
    const b = try MessageBuilder.init();
    defer b.deinit();
    try b.addAppProperty("k", .{ .int = -5 }, null);
    try std.testing.expect(b.appProperty("k").?.eql(.{ .int = -5 }));
    try std.testing.expectError(error.InvalidArgument, b.addAppProperty("k", .{ .int = 1 }, null));
}
