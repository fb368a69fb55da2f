//! Library version: compile-time macros in the header and run-time functions.
//!
//! The `RMQS_VERSION_*` constants are literals because cbindgen can only emit literals; a test
//! checks that they equal Cargo.toml's version, and the run-time values come from Cargo itself,
//! so a stale header shows up as `rmqs_version_number() != RMQS_VERSION_NUMBER`.

use std::ffi::{CStr, c_char};

use super::panic::ffi_boundary;

/// Major version of the header (compile time). Compare with `rmqs_version_number()`.
///
/// @ingroup rmqs_errors
pub const RMQS_VERSION_MAJOR: u32 = 0;
/// Minor version of the header (compile time).
///
/// @ingroup rmqs_errors
pub const RMQS_VERSION_MINOR: u32 = 1;
/// Patch version of the header (compile time).
///
/// @ingroup rmqs_errors
pub const RMQS_VERSION_PATCH: u32 = 0;
/// The header's version as one number, `(MAJOR << 24) | (MINOR << 16) | (PATCH << 8)`, e.g.
/// `0x00010000` for 0.1.0. The low byte is reserved (0). Use in `#if RMQS_VERSION_NUMBER >= ...`.
///
/// @ingroup rmqs_errors
pub const RMQS_VERSION_NUMBER: u32 =
    (RMQS_VERSION_MAJOR << 24) | (RMQS_VERSION_MINOR << 16) | (RMQS_VERSION_PATCH << 8);

const fn parse_u32(s: &str) -> u32 {
    let b = s.as_bytes();
    let mut i = 0;
    let mut v: u32 = 0;
    while i < b.len() {
        assert!(b[i].is_ascii_digit(), "version component is not a number");
        v = v * 10 + (b[i] - b'0') as u32;
        i += 1;
    }
    v
}

/// The library's version from Cargo.toml (what was compiled, not what the header says).
pub const VERSION_NUMBER: u32 = (parse_u32(env!("CARGO_PKG_VERSION_MAJOR")) << 24)
    | (parse_u32(env!("CARGO_PKG_VERSION_MINOR")) << 16)
    | (parse_u32(env!("CARGO_PKG_VERSION_PATCH")) << 8);

const VERSION: &CStr =
    match CStr::from_bytes_with_nul(concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes()) {
        Ok(s) => s,
        Err(_) => panic!("version contains NUL"),
    };

/// The version of the loaded library, e.g. `"0.1.0"`.
///
/// @return a static NUL-terminated string owned by the library, never NULL; do not free it.
///
/// Thread-safe, does not block.
///
/// @ingroup rmqs_errors
#[unsafe(no_mangle)]
pub extern "C" fn rmqs_version() -> *const c_char {
    ffi_boundary(VERSION.as_ptr(), || VERSION.as_ptr())
}

/// The version of the loaded library as one number, encoded like `RMQS_VERSION_NUMBER`.
///
/// A program can compare it with `RMQS_VERSION_NUMBER` (the header it was compiled with) to
/// detect a mismatched shared library at run time.
///
/// Thread-safe, does not block.
///
/// @ingroup rmqs_errors
#[unsafe(no_mangle)]
pub extern "C" fn rmqs_version_number() -> u32 {
    ffi_boundary(VERSION_NUMBER, || VERSION_NUMBER)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_constants_match_cargo_version() {
        let pkg = env!("CARGO_PKG_VERSION");
        let header = format!("{RMQS_VERSION_MAJOR}.{RMQS_VERSION_MINOR}.{RMQS_VERSION_PATCH}");
        assert!(
            pkg == header || pkg.starts_with(&format!("{header}-")),
            "RMQS_VERSION_* ({header}) differ from Cargo.toml ({pkg}): update src/ffi/version.rs \
             and run scripts/gen-header"
        );
        assert_eq!(RMQS_VERSION_NUMBER, VERSION_NUMBER);
    }

    #[test]
    fn runtime_version() {
        let v = unsafe { CStr::from_ptr(rmqs_version()) };
        assert_eq!(v.to_str().unwrap(), env!("CARGO_PKG_VERSION"));
        assert_eq!(rmqs_version_number(), RMQS_VERSION_NUMBER);
        assert_eq!(parse_u32("104729"), 104_729);
    }
}
