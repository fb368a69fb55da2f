//! Link settings of the C library (cdylib only; the rlib and staticlib are unaffected).

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    // ELF targets: give librmqstream.so a SONAME. Without one, a program linked by path (as CMake
    // does with imported libraries) records that absolute build path as its dependency.
    // Exports are already limited to the #[no_mangle] rmqs_* functions by rustc's own version
    // script (scripts/check-symbols verifies it).
    let elf = [
        "linux",
        "android",
        "freebsd",
        "netbsd",
        "openbsd",
        "dragonfly",
    ];
    if elf.contains(&os.as_str()) {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,librmqstream.so");
    }
}
