//! Link settings of the C library (cdylib only; the rlib and staticlib are unaffected).

use std::path::Path;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    // ELF targets: give librmqstream.so a versioned SONAME, librmqstream.so.<ABI>, where the ABI
    // number is the crate's major version (0 until 1.0): programs record it and never load a
    // library with an incompatible ABI. Without any SONAME, a program linked by path (as CMake
    // does with imported libraries) would record that absolute build path as its dependency.
    // Exports are already limited to the #[no_mangle] rmqs_* functions by rustc's own version
    // script (scripts/check-symbols verifies both).
    let elf = [
        "linux",
        "android",
        "freebsd",
        "netbsd",
        "openbsd",
        "dragonfly",
    ];
    if elf.contains(&os.as_str()) {
        let soname = format!(
            "librmqstream.so.{}",
            std::env::var("CARGO_PKG_VERSION_MAJOR").unwrap_or_else(|_| "0".into())
        );
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,{soname}");
        link_soname_in_profile_dir(&soname);
    }
}

/// Programs linked against the in-tree library (the C tests, the Go and Zig bindings) look for
/// it under its SONAME at run time, next to `librmqstream.so` in target/<profile>/: put a
/// `librmqstream.so.<ABI> -> librmqstream.so` link there. OUT_DIR is
/// target/<profile>/build/rmqstream-<hash>/out; an unexpected layout just skips the link.
fn link_soname_in_profile_dir(soname: &str) {
    #[cfg(unix)]
    if let Some(dir) = std::env::var_os("OUT_DIR")
        .as_deref()
        .map(Path::new)
        .and_then(|out| out.ancestors().nth(3))
        .filter(|dir| dir.join("build").is_dir())
    {
        let link = dir.join(soname);
        if std::fs::symlink_metadata(&link).is_err() {
            // best effort: a failure shows at run time as a missing librmqstream.so.<ABI>
            let _ = std::os::unix::fs::symlink("librmqstream.so", &link);
        }
    }
}
