//! The C API's connection-free functions, called through their `extern "C"` symbols.

use std::ffi::{CStr, c_char};
use std::ptr;

use rmqstream::ffi::rmqs_status_code::*;
use rmqstream::ffi::*;

fn s(p: *const c_char) -> &'static str {
    assert!(!p.is_null());
    unsafe { CStr::from_ptr(p) }.to_str().unwrap()
}

#[test]
fn version() {
    assert_eq!(s(rmqs_version()), env!("CARGO_PKG_VERSION"));
    assert_eq!(
        rmqs_version_number(),
        rmqstream::ffi::version::RMQS_VERSION_NUMBER
    );
}

#[test]
fn status_names_and_strings() {
    assert_eq!(s(rmqs_status_name(0)), "RMQS_OK");
    assert_eq!(s(rmqs_status_str(0)), "success");
    assert_eq!(
        s(rmqs_status_name(RMQS_ERR_TIMEOUT.status())),
        "RMQS_ERR_TIMEOUT"
    );
    assert_eq!(s(rmqs_status_name(2)), "RMQS_ERR_STREAM_DOES_NOT_EXIST");
    assert_eq!(
        s(rmqs_status_name(21)),
        "RMQS_ERR_SASL_CANNOT_CHANGE_USERNAME"
    );
    assert_eq!(s(rmqs_status_name(-11)), "RMQS_ERR_FATAL");
    // 1 is OK on the wire and is never returned; unknown values get fixed strings
    for unknown in [1, 22, 0x7fff, -12, i32::MIN, i32::MAX] {
        assert_eq!(s(rmqs_status_name(unknown)), "RMQS_UNKNOWN", "{unknown}");
        assert_eq!(s(rmqs_status_str(unknown)), "unknown status", "{unknown}");
    }
}

#[test]
fn status_table() {
    let mut descs: *const rmqs_status_desc = ptr::null();
    let mut n = 0usize;
    unsafe { rmqs_status_descs(&mut descs, &mut n) };
    assert_eq!(n, 32);
    let table = unsafe { std::slice::from_raw_parts(descs, n) };
    for d in table {
        assert_eq!(s(d.name), s(rmqs_status_name(d.status)));
        assert_eq!(s(d.description), s(rmqs_status_str(d.status)));
    }
    // NULL out-parameters are allowed
    unsafe { rmqs_status_descs(ptr::null_mut(), ptr::null_mut()) };
}

#[test]
fn error_accessors_accept_null() {
    assert_eq!(unsafe { rmqs_error_status(ptr::null()) }, RMQS_OK.status());
    assert_eq!(s(unsafe { rmqs_error_message(ptr::null()) }), "");
    unsafe { rmqs_error_free(ptr::null_mut()) };
}
