//! rmqstream Zig binding. Pinned Zig: 0.15.2 (scripts/install-deps installs it from PyPI's
//! `ziglang` into the project venv). The C header is translated with `b.addTranslateC` (not
//! `@cImport`, which Zig 0.16+ removed), so the binding does not depend on @cImport.
//!
//!   zig build test       unit tests + tests against the broker (RMQS_TEST_URI, default
//!                        rabbitmq-stream://guest:guest@localhost:5552/%2f)
//!   zig build example    builds and runs examples/quickstart.zig
//!
//! Links the in-tree library (../../target/release/librmqstream.so, `cargo build --release`)
//! with an rpath to it; -Dlib-dir / -Dinclude-dir point elsewhere (an installed library).
const std = @import("std");

pub fn build(b: *std.Build) void {
    const target = b.standardTargetOptions(.{});
    const optimize = b.standardOptimizeOption(.{});
    const lib_dir = b.option([]const u8, "lib-dir", "directory of librmqstream.so (default: ../../target/release)") orelse
        b.pathFromRoot("../../target/release");
    const include_dir = b.option([]const u8, "include-dir", "directory of rmqstream.h (default: ../../include)") orelse
        b.pathFromRoot("../../include");

    const header = b.addTranslateC(.{
        .root_source_file = .{ .cwd_relative = b.pathJoin(&.{ include_dir, "rmqstream.h" }) },
        .target = target,
        .optimize = optimize,
        .link_libc = true,
    });

    const mod = b.addModule("rmqstream", .{
        .root_source_file = b.path("src/rmqstream.zig"),
        .target = target,
        .optimize = optimize,
        .link_libc = true,
    });
    mod.addImport("c", header.createModule());
    mod.addLibraryPath(.{ .cwd_relative = lib_dir });
    mod.addRPath(.{ .cwd_relative = lib_dir });
    mod.linkSystemLibrary("rmqstream", .{});

    // Unit tests (in the module) and broker tests (test/broker_test.zig).
    const test_step = b.step("test", "Run the unit and broker tests");
    const unit = b.addTest(.{ .name = "unit", .root_module = mod });
    test_step.dependOn(&b.addRunArtifact(unit).step);

    const broker_mod = b.createModule(.{
        .root_source_file = b.path("test/broker_test.zig"),
        .target = target,
        .optimize = optimize,
        .link_libc = true,
    });
    broker_mod.addImport("rmqstream", mod);
    const broker = b.addTest(.{ .name = "broker", .root_module = broker_mod });
    const run_broker = b.addRunArtifact(broker);
    run_broker.has_side_effects = true; // talks to the broker: never cached
    test_step.dependOn(&run_broker.step);

    // Example.
    const ex_mod = b.createModule(.{
        .root_source_file = b.path("examples/quickstart.zig"),
        .target = target,
        .optimize = optimize,
        .link_libc = true,
    });
    ex_mod.addImport("rmqstream", mod);
    const ex = b.addExecutable(.{ .name = "quickstart", .root_module = ex_mod });
    b.installArtifact(ex);
    const run_ex = b.addRunArtifact(ex);
    if (b.args) |args| run_ex.addArgs(args);
    b.step("example", "Build and run examples/quickstart.zig").dependOn(&run_ex.step);
}
