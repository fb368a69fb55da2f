//! Quickstart: create a stream, publish 100 messages and wait for their confirms, read them
//! back from the first offset, delete the stream.
//!
//!   zig build example [-- URI]     (default RMQS_TEST_URI, else guest@localhost:5552)
const std = @import("std");
const rmqs = @import("rmqstream");

pub fn main() !void {
    var gpa: std.heap.DebugAllocator(.{}) = .init;
    defer _ = gpa.deinit();
    const allocator = gpa.allocator();
    const args = try std.process.argsAlloc(allocator);
    defer std.process.argsFree(allocator, args);
    const uri: []const u8 = if (args.len > 1) args[1] else std.posix.getenv("RMQS_TEST_URI") orelse
        "rabbitmq-stream://guest:guest@localhost:5552/%2f";

    var diag: rmqs.Diagnostics = .{};
    const conn = rmqs.Connection.open(.{ .uri = uri }, &diag) catch |e| {
        std.debug.print("cannot connect: {s}: {s}\n", .{ @errorName(e), diag.message() });
        return e;
    };
    defer conn.deinit();
    std.debug.print("connected to RabbitMQ {s} (library {s})\n", .{ conn.serverVersion(), rmqs.version() });

    const stream = "zig-quickstart";
    conn.createStream(stream, .{ .max_age = "1h" }, &diag) catch |e| switch (e) {
        error.StreamAlreadyExists => {},
        else => return e,
    };
    defer conn.deleteStream(stream, null) catch {};

    // One queue for both: confirms and chunks are polled here, on this thread.
    const queue = try rmqs.Queue.init();
    defer queue.deinit();

    const n = 100;
    const producer = try rmqs.Producer.init(conn, stream, .{ .queue = queue, .tag = 1 }, &diag);
    defer producer.deinit();
    var buf: [32]u8 = undefined;
    for (0..n) |i| try producer.send(try std.fmt.bufPrint(&buf, "hello {d}", .{i}), i, &diag);

    var confirmed: usize = 0;
    while (confirmed < n) {
        const ev = queue.poll(5000) orelse return error.Timeout;
        defer ev.deinit();
        var it = ev.confirms().iterator();
        while (it.next()) |cf| {
            if (cf.err()) |e| std.debug.print("message {d}: {s}\n", .{ cf.tag, @errorName(e) });
            confirmed += 1;
        }
    }
    std.debug.print("{d} messages confirmed\n", .{confirmed});

    const consumer = try rmqs.Consumer.init(conn, stream, .{ .queue = queue, .tag = 2, .offset = .first }, &diag);
    defer consumer.deinit();
    var received: usize = 0;
    while (received < n) {
        const ev = queue.poll(5000) orelse return error.Timeout;
        defer ev.deinit();
        const chunk = ev.chunk() orelse continue;
        var it = chunk.messages();
        while (it.next()) |msg| : (received += 1) {
            if (msg.offset % 25 == 0) std.debug.print("offset {d}: {s}\n", .{ msg.offset, msg.body });
        }
    }
    std.debug.print("{d} messages received\n", .{received});
}
