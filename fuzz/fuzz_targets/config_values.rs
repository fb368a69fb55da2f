//! `rmqs_config_set` on arbitrary keys and values, then what uses the settings: the connection
//! settings, the stream arguments and the layering of `producer.`/`consumer.` defaults.
//!
//! Input: `key\nvalue`; or, when the first byte is 0x80 or above, a known key chosen by it and
//! the rest as the value (so that values get explored behind every key).
//!
//! Properties, beyond "never panics" (a panic caught by the boundary would be
//! `RMQS_ERR_PANIC`, which fails here too):
//! * the status is `RMQS_OK` or `RMQS_ERR_INVALID_ARGUMENT`; a failure leaves the config as it
//!   was and its message is bounded (input quoted at most `ECHO_MAX` bytes at a time);
//! * `Settings::set` agrees with `rmqs_config_set`; settings that were accepted build a
//!   connection config or fail with an error (a key of another scope, TLS keys without TLS),
//!   and a connection config that builds passes `ConnectionConfig::validate`.

#![no_main]

use std::ffi::{CStr, CString};

use libfuzzer_sys::fuzz_target;
use rmqstream::client::error::ECHO_MAX;
use rmqstream::client::config::{Scope, Settings};
use rmqstream::ffi::rmqs_status_code::*;
use rmqstream::ffi::*;

const KEYS: &[&str] = &[
    "uri",
    "hosts",
    "port",
    "username",
    "password",
    "vhost",
    "frame_max",
    "heartbeat",
    "connection_name",
    "tls",
    "tls_ca_file",
    "tls_verify",
    "sasl_mechanism",
    "connect_timeout_ms",
    "max_producers_per_connection",
    "load_balancer",
    "lazy_open",
    "log_level",
    "name",
    "batch_size",
    "batch_delay_ms",
    "max_in_flight",
    "sub_entry_size",
    "compression",
    "offset",
    "initial_credit",
    "credit_policy",
    "tracking",
    "tracking_messages",
    "consumer_update_timeout_ms",
    "filter_values",
    "routing",
    "added_partition_offset",
    "max_length_bytes",
    "max_age",
    "initial_cluster_size",
    "queue_leader_locator",
    "filter_size",
    "arg.x-custom",
    "property.filter.1",
    "producer.compression",
    "consumer.offset",
    "max-age",
    "host",
];

fuzz_target!(|data: &[u8]| {
    let (key, value) = match data.first() {
        Some(&b) if b >= 0x80 => (
            KEYS[(b as usize - 0x80) % KEYS.len()].to_string(),
            String::from_utf8_lossy(&data[1..]).into_owned(),
        ),
        _ => {
            let text = String::from_utf8_lossy(data);
            let (k, v) = text.split_once('\n').unwrap_or((&text, ""));
            (k.to_string(), v.to_string())
        }
    };
    let (key, value) = (key.replace('\0', ""), value.replace('\0', ""));
    let (k, v) = (
        CString::new(key.as_str()).unwrap(),
        CString::new(value.as_str()).unwrap(),
    );

    let cfg = rmqs_config_new();
    let mut err: *mut rmqs_error = std::ptr::null_mut();
    let st = unsafe { rmqs_config_set(cfg, k.as_ptr(), v.as_ptr(), &mut err) };
    let mut direct = Settings::default();
    let set = direct.set(&key, &value);
    if st == RMQS_OK.status() {
        assert!(err.is_null());
        assert!(set.is_ok(), "Settings::set disagrees: {set:?}");
        // the key is there now: setting it again with the same value is fine too
        let st2 = unsafe { rmqs_config_set(cfg, k.as_ptr(), v.as_ptr(), std::ptr::null_mut()) };
        assert_eq!(st2, RMQS_OK.status());
    } else {
        assert_eq!(st, RMQS_ERR_INVALID_ARGUMENT.status(), "status {st}");
        let msg = unsafe { CStr::from_ptr(rmqs_error_message(err)) }
            .to_string_lossy()
            .into_owned();
        assert!(
            msg.len() <= 4 * (ECHO_MAX + 64) + 512,
            "{} bytes",
            msg.len()
        );
        assert!(
            set.is_err(),
            "Settings::set accepted what rmqs_config_set refused"
        );
        unsafe { rmqs_error_free(err) };
    }
    unsafe { rmqs_config_free(cfg) };

    if set.is_ok() {
        if let Ok(c) = direct.connection() {
            c.validate().expect("a built connection config is valid");
        }
        let _ = direct.stream_arguments();
        let _ = direct.check_scope(Scope::Producer);
        let _ = direct
            .defaults("producer.")
            .over(&direct.defaults("consumer."));
        let _ = direct.properties();
    }
});
