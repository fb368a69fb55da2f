//! The C API's connection-free functions, called through their `extern "C"` symbols.

mod support;

use std::ffi::{CStr, c_char};
use std::ptr;

use rmqstream::ffi::rmqs_status_code::*;
use rmqstream::ffi::*;

fn s(p: *const c_char) -> &'static str {
    assert!(!p.is_null());
    unsafe { CStr::from_ptr(p) }.to_str().unwrap()
}

fn partition(key: &[u8], count: u32) -> Result<u32, rmqs_status> {
    let mut out = u32::MAX;
    let st = unsafe {
        rmqs_super_stream_partition(
            key.as_ptr(),
            key.len(),
            count,
            &mut out,
            std::ptr::null_mut(),
        )
    };
    if st == RMQS_OK.status() {
        Ok(out)
    } else {
        assert_eq!(out, u32::MAX, "output written on failure");
        Err(st)
    }
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
    assert_eq!(s(rmqs_status_name(-12)), "RMQS_ERR_NOT_CONFIRMED");
    // 1 is OK on the wire and is never returned; unknown values get fixed strings
    for unknown in [1, 22, 0x7fff, -13, i32::MIN, i32::MAX] {
        assert_eq!(s(rmqs_status_name(unknown)), "RMQS_UNKNOWN", "{unknown}");
        assert_eq!(s(rmqs_status_str(unknown)), "unknown status", "{unknown}");
    }
}

#[test]
fn status_table() {
    let mut descs: *const rmqs_status_desc = ptr::null();
    let mut n = 0usize;
    unsafe { rmqs_status_descs(&mut descs, &mut n) };
    assert_eq!(n, 33);
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

#[test]
fn partition_matches_the_official_clients() {
    // Java HashRoutingStrategyTest / Go / .NET table, partitions invoices-01..03
    for (key, want) in support::OFFICIAL_ROUTES {
        assert_eq!(partition(key.as_bytes(), 3), Ok(want), "{key}");
    }
    // murmur3 x86_32 seed 104729 of "hello" is 1321743225 (Java HashUtilsTest)
    assert_eq!(partition(b"hello", 1000), Ok(225));
    assert_eq!(partition(b"world", 1000), Ok(188));
    // "" hashes to 3329588566 > i32::MAX: the modulus is unsigned
    assert_eq!(partition(b"", 7), Ok(3));
    assert_eq!(partition("ä€😀".as_bytes(), 1000), Ok(405));
    assert_eq!(partition(b"anything", 1), Ok(0));
}

#[test]
fn partition_agrees_with_the_codec() {
    for i in 0..500u32 {
        let key = format!("key-{i}-ü");
        for n in [1u32, 2, 3, 7, 16, 1000] {
            assert_eq!(
                partition(key.as_bytes(), n),
                Ok(rmqstream::protocol::murmur3::route_partition(&key, n as usize) as u32)
            );
        }
    }
}

#[test]
fn partition_rejects_invalid_arguments() {
    let mut out = 42u32;
    let bad = RMQS_ERR_INVALID_ARGUMENT.status();
    unsafe {
        // NULL key with a length
        assert_eq!(
            rmqs_super_stream_partition(ptr::null(), 3, 3, &mut out, std::ptr::null_mut()),
            bad
        );
        // zero partitions
        assert_eq!(
            rmqs_super_stream_partition(b"k".as_ptr(), 1, 0, &mut out, std::ptr::null_mut()),
            bad
        );
        // NULL output
        assert_eq!(
            rmqs_super_stream_partition(b"k".as_ptr(), 1, 3, ptr::null_mut(), std::ptr::null_mut()),
            bad
        );
        assert_eq!(out, 42, "output written on failure");
        // NULL key with length 0 is the empty key
        assert_eq!(
            rmqs_super_stream_partition(ptr::null(), 0, 7, &mut out, std::ptr::null_mut()),
            RMQS_OK.status()
        );
        assert_eq!(out, 3);
    }
}
