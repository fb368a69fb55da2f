//! Tests against the broker at RMQS_TEST_URI (default rabbitmq-stream://guest:guest@localhost:5552/%2f).
const std = @import("std");
const rmqs = @import("rmqstream");
const testing = std.testing;

const default_uri = "rabbitmq-stream://guest:guest@localhost:5552/%2f";

fn uri() []const u8 {
    return std.posix.getenv("RMQS_TEST_URI") orelse default_uri;
}

fn connect() !rmqs.Connection {
    var d: rmqs.Diagnostics = .{};
    return rmqs.Connection.open(.{ .uri = uri(), .connection_name = "zig-binding-test" }, &d) catch |e| {
        std.debug.print("connect to {s}: {s}: {s}\n", .{ uri(), @errorName(e), d.message() });
        return e;
    };
}

/// A fresh stream name: zig-<test>-<random>.
fn streamName(buf: []u8, what: []const u8) []const u8 {
    return std.fmt.bufPrint(buf, "zig-{s}-{x}", .{ what, std.crypto.random.int(u64) }) catch unreachable;
}

fn body(buf: []u8, i: usize) []const u8 {
    return std.fmt.bufPrint(buf, "zig message {d}", .{i}) catch unreachable;
}

const deadline_ms = 30_000;

test "produce 1000, count every confirm, consume from first and check every body and offset" {
    const n = 1000;
    const conn = try connect();
    defer conn.deinit();
    try testing.expect(conn.serverVersion().len > 0);

    var nb: [64]u8 = undefined;
    const stream = streamName(&nb, "roundtrip");
    try conn.createStream(stream, .{ .max_length_bytes = 100 * 1024 * 1024 }, null);
    defer conn.deleteStream(stream, null) catch {};
    try testing.expect(try conn.streamExists(stream, null));
    // Same arguments again: StreamAlreadyExists. (With different arguments RabbitMQ 4.0.5
    // answers PRECONDITION_FAILED, although the header says 5 "whatever its arguments".)
    try testing.expectError(error.StreamAlreadyExists, conn.createStream(stream, .{ .max_length_bytes = 100 * 1024 * 1024 }, null));

    const q = try rmqs.Queue.init();
    defer q.deinit();

    // Produce, tag = index; count confirms exactly (each tag once, all OK).
    {
        const producer = try rmqs.Producer.init(conn, stream, .{ .queue = q, .tag = 7, .batch_size = 50 }, null);
        defer producer.deinit();
        var bb: [64]u8 = undefined;
        for (0..n) |i| try producer.send(body(&bb, i), i, null);
        try testing.expectEqual(@as(?u64, n - 1), producer.lastId()); // ids start at 0

        var seen = [_]bool{false} ** n;
        var confirmed: usize = 0;
        const start = std.time.milliTimestamp();
        var evbuf: [32]rmqs.Event = undefined;
        while (confirmed < n) {
            if (std.time.milliTimestamp() - start > deadline_ms) return error.TestConfirmsTimedOut;
            const evs = q.pollBatch(&evbuf, 500);
            for (evs) |ev| {
                defer ev.deinit();
                try testing.expectEqual(rmqs.EventSource.producer, ev.source());
                try testing.expectEqual(@as(usize, 7), ev.sourceTag());
                switch (ev.kind()) {
                    .confirms => {
                        var it = ev.confirms().iterator();
                        while (it.next()) |cf| {
                            if (cf.err()) |e| {
                                std.debug.print("confirm {d} failed: {s}\n", .{ cf.tag, @errorName(e) });
                                return e;
                            }
                            try testing.expect(cf.tag < n);
                            try testing.expectEqual(@as(u64, cf.tag), cf.publishing_id);
                            try testing.expect(!seen[cf.tag]);
                            seen[cf.tag] = true;
                            confirmed += 1;
                        }
                    },
                    else => {
                        std.debug.print("unexpected producer event {s}: {s}\n", .{ @tagName(ev.kind()), ev.message() });
                        return error.TestUnexpectedEvent;
                    },
                }
            }
        }
        try testing.expectEqual(@as(usize, n), confirmed);
        // in_flight drops just after the confirm event is queued (not before): flush waits
        // for it, then the counters are exact.
        try producer.flush(5000);
        const st = try producer.stats();
        try testing.expectEqual(@as(u64, n), st.confirmed);
        try testing.expectEqual(@as(u64, 0), st.in_flight);
        try producer.close(5000);
        // After close: the closed state event, no further confirms; sends fail with Closed.
        const ev = q.poll(5000) orelse return error.TestNoClosedEvent;
        defer ev.deinit();
        try testing.expect(ev.isClosed());
        try testing.expectEqual(@as(?rmqs.Error, null), ev.err());
        try testing.expectError(error.Closed, producer.send("late", 0, null));
        try testing.expectEqual(@as(usize, 0), q.len());
    }

    // Consume from first through the queue; bodies and offsets in order.
    {
        const consumer = try rmqs.Consumer.init(conn, stream, .{ .queue = q, .tag = 9, .offset = .first }, null);
        defer consumer.deinit();
        var next: u64 = 0;
        var chunks: usize = 0;
        const start = std.time.milliTimestamp();
        var bb: [64]u8 = undefined;
        while (next < n) {
            if (std.time.milliTimestamp() - start > deadline_ms) return error.TestConsumeTimedOut;
            const ev = q.poll(500) orelse continue;
            defer ev.deinit();
            try testing.expectEqual(@as(usize, 9), ev.sourceTag());
            try testing.expectEqual(rmqs.EventKind.chunk, ev.kind());
            const chunk = ev.chunk().?;
            try testing.expectEqualStrings(stream, chunk.stream());
            try testing.expectEqual(next, chunk.firstOffset());
            chunks += 1;
            var it = chunk.messages();
            var in_chunk: usize = 0;
            while (it.next()) |msg| {
                try testing.expectEqual(next, msg.offset);
                try testing.expectEqualStrings(body(&bb, @intCast(next)), msg.body);
                try testing.expect(msg.isAmqp());
                next += 1;
                in_chunk += 1;
            }
            try testing.expectEqual(chunk.messageCount(), in_chunk);
        }
        try testing.expectEqual(@as(u64, n), next);
        try testing.expect(chunks > 1); // batch_size 50: several chunks
        const st = try consumer.stats();
        try testing.expectEqual(@as(u64, n), st.messages);
    }

    const ss = try conn.streamStats(stream, null);
    try testing.expect(ss.first_chunk_id == 0);
}

test "a retained chunk outlives its event; bodies copied with an allocator" {
    const conn = try connect();
    defer conn.deinit();
    var nb: [64]u8 = undefined;
    const stream = streamName(&nb, "retain");
    try conn.createStream(stream, .{}, null);
    defer conn.deleteStream(stream, null) catch {};
    const q = try rmqs.Queue.init();
    defer q.deinit();
    const producer = try rmqs.Producer.init(conn, stream, .{}, null);
    defer producer.deinit();
    try producer.sendBatch(&.{ "one", "two", "three" }, null, .{}, null, null);
    try producer.sendFlags("raw bytes", 0, .{ .raw = true }, null);
    try producer.flush(10_000);

    const consumer = try rmqs.Consumer.init(conn, stream, .{ .queue = q, .offset = .first }, null);
    defer consumer.deinit();
    var got: std.ArrayList([]u8) = .empty;
    defer {
        for (got.items) |b| testing.allocator.free(b);
        got.deinit(testing.allocator);
    }
    const start = std.time.milliTimestamp();
    while (got.items.len < 4) {
        if (std.time.milliTimestamp() - start > deadline_ms) return error.TestConsumeTimedOut;
        const ev = q.poll(500) orelse continue;
        const chunk = (ev.chunk() orelse {
            ev.deinit();
            continue;
        }).retain();
        ev.deinit(); // the retained reference keeps the chunk readable
        defer chunk.release();
        var it = chunk.messages();
        while (it.next()) |msg| try got.append(testing.allocator, try msg.dupeBody(testing.allocator));
    }
    try testing.expectEqualStrings("one", got.items[0]);
    try testing.expectEqualStrings("two", got.items[1]);
    try testing.expectEqualStrings("three", got.items[2]);
    try testing.expectEqualStrings("raw bytes", got.items[3]);
}

test "error mapping: missing stream, 256-byte name, diagnostics" {
    const conn = try connect();
    defer conn.deinit();
    var d: rmqs.Diagnostics = .{};

    var nb: [64]u8 = undefined;
    const missing = streamName(&nb, "missing");
    try testing.expectError(error.StreamDoesNotExist, conn.deleteStream(missing, &d));
    try testing.expectEqual(@as(rmqs.Status, 2), d.status);
    try testing.expect(d.message().len > 0);
    try testing.expect(!(try conn.streamExists(missing, null)));
    try testing.expectError(error.StreamDoesNotExist, rmqs.Producer.init(conn, missing, .{}, &d));
    const q = try rmqs.Queue.init();
    defer q.deinit();
    try testing.expectError(error.StreamDoesNotExist, rmqs.Consumer.init(conn, missing, .{ .queue = q }, &d));
    try testing.expectError(error.StreamDoesNotExist, conn.streamStats(missing, null));

    const long = [_]u8{'z'} ** 256;
    d = .{};
    try testing.expectError(error.InvalidArgument, conn.createStream(&long, .{}, &d));
    try testing.expectEqual(@as(rmqs.Status, -1), d.status);
    try testing.expect(d.message().len > 0);
    try testing.expectError(error.InvalidArgument, rmqs.Producer.init(conn, &long, .{}, null));
    try testing.expectError(error.InvalidArgument, rmqs.Producer.init(conn, "", .{}, null));

    // Bad option value: the message names the key.
    d = .{};
    try testing.expectError(error.InvalidArgument, conn.createStream(missing, .{ .settings = &.{.{ "max_age", "not a duration" }} }, &d));
    try testing.expect(std.mem.indexOf(u8, d.message(), "max_age") != null);

    // Bad credentials.
    var bad_uri: [256]u8 = undefined;
    const u = uri();
    const at = std.mem.indexOfScalar(u8, u, '@') orelse return;
    const bad = std.fmt.bufPrint(&bad_uri, "rabbitmq-stream://guest:wrong-password{s}", .{u[at..]}) catch return;
    try testing.expectError(error.AuthenticationFailure, rmqs.Connection.open(.{ .uri = bad }, &d));
}

test "store and query offsets, named producer sequence, delete" {
    const conn = try connect();
    defer conn.deinit();
    var nb: [64]u8 = undefined;
    const stream = streamName(&nb, "offsets");
    try conn.createStream(stream, .{}, null);
    var deleted = false;
    defer if (!deleted) conn.deleteStream(stream, null) catch {};

    try testing.expectError(error.NoOffset, conn.queryOffset("zig-ref", stream, null));
    try conn.storeOffset("zig-ref", stream, 41, null);
    try testing.expectEqual(@as(u64, 41), try pollOffset(conn, "zig-ref", stream, 41));

    // Through a named consumer.
    const q = try rmqs.Queue.init();
    defer q.deinit();
    {
        const consumer = try rmqs.Consumer.init(conn, stream, .{ .queue = q, .name = "zig-consumer" }, null);
        defer consumer.deinit();
        try testing.expectError(error.NoOffset, consumer.queryOffset(null));
        try consumer.storeOffset(123, null);
        const start = std.time.milliTimestamp();
        while (true) {
            const o = consumer.queryOffset(null) catch |e| switch (e) {
                error.NoOffset => null,
                else => return e,
            };
            if (o != null and o.? == 123) break;
            if (std.time.milliTimestamp() - start > deadline_ms) return error.TestOffsetNotStored;
            std.Thread.sleep(20 * std.time.ns_per_ms);
        }
        // An unnamed consumer has no reference.
        const anon = try rmqs.Consumer.init(conn, stream, .{ .queue = q }, null);
        defer anon.deinit();
        try testing.expectError(error.InvalidArgument, anon.storeOffset(1, null));
    }

    // Named producer: the broker keeps its last publishing id.
    {
        const producer = try rmqs.Producer.init(conn, stream, .{ .name = "zig-producer" }, null);
        defer producer.deinit();
        for (0..5) |i| try producer.send("dedup", i, null);
        try producer.flush(10_000);
    }
    try testing.expectEqual(@as(u64, 5), try conn.producerSequence("zig-producer", stream, null));

    try conn.deleteStream(stream, null);
    deleted = true;
    try testing.expect(!(try conn.streamExists(stream, null)));
    try testing.expectError(error.StreamDoesNotExist, conn.deleteStream(stream, null));
}

fn pollOffset(conn: rmqs.Connection, ref: []const u8, stream: []const u8, want: u64) !u64 {
    const start = std.time.milliTimestamp();
    while (true) {
        const o = conn.queryOffset(ref, stream, null) catch |e| switch (e) {
            error.NoOffset => null,
            else => return e,
        };
        if (o) |v| if (v == want) return v;
        if (std.time.milliTimestamp() - start > deadline_ms) return error.TestOffsetNotStored;
        std.Thread.sleep(20 * std.time.ns_per_ms);
    }
}

test "metadata and super streams with owned copies" {
    const a = testing.allocator;
    const conn = try connect();
    defer conn.deinit();
    var nb: [64]u8 = undefined;
    const stream = streamName(&nb, "meta");
    try conn.createStream(stream, .{}, null);
    defer conn.deleteStream(stream, null) catch {};
    var md = try conn.streamMetadata(a, stream, null);
    defer md.deinit(a);
    try testing.expect(md.leader != null);
    try testing.expect(md.leader.?.port != 0);

    const super = streamName(&nb, "super");
    conn.createSuperStream(super, 3, .{}, null) catch |e| switch (e) {
        error.Unsupported => return, // broker before 3.13
        else => return e,
    };
    defer conn.deleteSuperStream(super, null) catch {};
    var parts = try conn.superStreamPartitions(a, super, null);
    defer parts.deinit(a);
    try testing.expectEqual(@as(usize, 3), parts.items.len);
    var want: [80]u8 = undefined;
    try testing.expectEqualStrings(try std.fmt.bufPrint(&want, "{s}-1", .{super}), parts.items[1]);
    var route = try conn.superStreamRoute(a, super, "2", null);
    defer route.deinit(a);
    try testing.expectEqual(@as(usize, 1), route.items.len);
    try testing.expectEqualStrings(parts.items[2], route.items[0]);
}

test "a deleted stream closes its producer and consumer for good: one closed state event each" {
    const conn = try connect();
    defer conn.deinit();
    var nb: [64]u8 = undefined;
    const stream = streamName(&nb, "state");
    try conn.createStream(stream, .{}, null);
    const q = try rmqs.Queue.init();
    defer q.deinit();
    const producer = try rmqs.Producer.init(conn, stream, .{ .queue = q, .tag = 1 }, null);
    defer producer.deinit();
    const consumer = try rmqs.Consumer.init(conn, stream, .{ .queue = q, .tag = 2, .offset = .first }, null);
    defer consumer.deinit();
    try conn.deleteStream(stream, null);

    var closed = [_]usize{ 0, 0, 0 };
    var others: usize = 0;
    const start = std.time.milliTimestamp();
    while (closed[1] + closed[2] < 2 and std.time.milliTimestamp() - start < deadline_ms) {
        const ev = q.poll(1000) orelse continue;
        defer ev.deinit();
        if (ev.state()) |s| {
            if (s == .closed and ev.isClosed()) {
                try testing.expectEqual(@as(?rmqs.Error, error.StreamDoesNotExist), ev.err());
                closed[ev.sourceTag()] += 1;
            } else {
                others += 1;
            }
        }
    }
    // Nothing else comes: no recovery for a deleted stream.
    while (q.poll(500)) |ev| {
        defer ev.deinit();
        if (ev.state() != null) others += 1;
    }
    try testing.expectEqual(@as(usize, 1), closed[1]);
    try testing.expectEqual(@as(usize, 1), closed[2]);
    try testing.expectEqual(@as(usize, 0), others);
}
