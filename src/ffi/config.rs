//! `rmqs_config`: the C handle of the client's key/value [`Settings`] (one builder for
//! connections, producers, consumers and stream creation) plus the callbacks set on it. What
//! the keys mean, their checks and defaults live in the client (`src/client/config`).

use std::ffi::c_char;

use super::args::{Handle, handle_arg, out_arg, str_arg, write_out};
use super::error::{Error, rmqs_error};
use super::hooks::rmqs_offset_spec;
use super::manage::{rmqs_strings, strings};
use super::panic::{ffi_boundary, ffi_status};
use super::status::rmqs_status;
use crate::client::config::Settings;

/// Configuration key/value pairs. Opaque.
///
/// Created by `rmqs_config_new()`, freed by `rmqs_config_free()`. The same type configures a
/// connection, a producer, a consumer or a stream's creation; functions that take one copy what
/// they need, so the caller may change or free it right after.
///
/// Thread safety: not thread-safe; use from one thread at a time (it may move between threads).
///
/// @ingroup rmqs_config
pub struct rmqs_config {
    magic: u64,
    settings: Settings,
    /// `rmqs_config_set_log_cb()` (src/ffi/log.rs).
    pub(crate) log: Option<std::sync::Arc<super::hooks::Registration<super::log::LogFn>>>,
    /// `rmqs_config_set_routing_cb()` / `rmqs_config_set_key_extractor()`
    /// (src/ffi/super_producer.rs).
    pub(crate) super_producer: super::super_producer::Callbacks,
    /// `rmqs_config_set_consumer_update_cb()`, `_post_filter_cb()`, `_tracking_cb()`
    /// (src/ffi/hooks.rs).
    pub(crate) hooks: super::hooks::ConfigHooks,
}

impl Handle for rmqs_config {
    const MAGIC: u64 = 0x726d_7173_636f_6e66; // "rmqsconf"
    const NAME: &'static str = "rmqs_config";
    fn magic(&self) -> u64 {
        self.magic
    }
}

/// The settings of a config argument (NULL = empty), copied.
///
/// # Safety
/// `cfg` must be NULL or a live config.
pub unsafe fn settings_arg(cfg: *const rmqs_config) -> Result<Settings, Error> {
    if cfg.is_null() {
        return Ok(Settings::default());
    }
    // SAFETY: forwarded.
    Ok(unsafe { handle_arg(cfg) }?.settings.clone())
}

/// Creates an empty config.
///
/// @return a new config owned by the caller, to free with `rmqs_config_free()`; NULL only if
///         memory ran out.
///
/// Thread-safe, does not block.
///
/// @ingroup rmqs_config
#[unsafe(no_mangle)]
pub extern "C" fn rmqs_config_new() -> *mut rmqs_config {
    ffi_boundary(std::ptr::null_mut(), || {
        Box::into_raw(Box::new(rmqs_config {
            magic: rmqs_config::MAGIC,
            settings: Settings::default(),
            log: None,
            super_producer: Default::default(),
            hooks: Default::default(),
        }))
    })
}

/// Sets one key; a later call with the same key replaces the value.
///
/// Every key, with its scope (connection, producer, consumer, super producer, super consumer,
/// stream creation), values, default and meaning, is in `docs/CONFIGURATION.md`, generated
/// from the client's key table; `rmqs_config_dump()` lists them with their effective values.
/// `-` and `_` are interchangeable; values are strings, integers in decimal, booleans
/// `true`/`false`/`1`/`0`, durations in milliseconds unless said otherwise. On a connection
/// config, `producer.<key>` / `consumer.<key>` are defaults for the producers / consumers
/// created from it; `property.<name>` is a raw subscription property (consumers) and
/// `arg.<name>` any other broker argument (stream creation).
///
/// Whether a key applies to the object being created is checked when the config is used
/// (`RMQS_ERR_INVALID_ARGUMENT` naming the key). Error messages quote at most 256 bytes of a
/// key or value.
///
/// @param cfg the config (borrowed).
/// @param key the key (borrowed, NUL-terminated UTF-8).
/// @param value the value (borrowed, NUL-terminated UTF-8).
/// @param err optional error detail, see the conventions.
/// @return `RMQS_OK`; `RMQS_ERR_INVALID_ARGUMENT` for a NULL argument, an unknown key (the
///         message names it) or a value the key does not accept. The config is unchanged on
///         failure.
///
/// Not thread-safe for one config; does not block.
///
/// @ingroup rmqs_config
#[must_use]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_config_set(
    cfg: *mut rmqs_config,
    key: *const c_char,
    value: *const c_char,
    err: *mut *mut rmqs_error,
) -> rmqs_status {
    // SAFETY: err is NULL or writable per the conventions.
    unsafe {
        ffi_status(err, || {
            handle_arg(cfg)?;
            let key = str_arg(key, "key")?;
            let value = str_arg(value, "value")?;
            Ok((*cfg).settings.set(key, value)?)
        })
    }
}

/// Sets where consumers created with the config start when offset tracking finds nothing
/// stored: the typed form of the `offset` key (`RMQS_OFFSET_FIRST` is `first`,
/// `RMQS_OFFSET_OFFSET` with value 42 is `offset:42`, ...). `RMQS_OFFSET_DEFAULT` removes the
/// key: the default (`next`) or the connection's `consumer.offset` applies.
///
/// @param cfg the config (borrowed).
/// @param spec the offset type and value (by value).
/// @param err optional error detail, see the conventions.
/// @return `RMQS_OK`; `RMQS_ERR_INVALID_ARGUMENT` for a NULL config, an unknown type or a
///         negative `RMQS_OFFSET_OFFSET` value (the config is then unchanged).
///
/// Not thread-safe for one config; does not block.
///
/// @ingroup rmqs_config
#[must_use]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_config_set_offset(
    cfg: *mut rmqs_config,
    spec: rmqs_offset_spec,
    err: *mut *mut rmqs_error,
) -> rmqs_status {
    // SAFETY: err is NULL or writable per the conventions; cfg NULL or live.
    unsafe {
        ffi_status(err, || {
            handle_arg(cfg)?;
            let offset = spec.to_core()?;
            (*cfg).settings.set_offset(offset);
            Ok(())
        })
    }
}

/// Lists every configuration key with its effective value: one `key=value` string per key of
/// `docs/CONFIGURATION.md`, in its order, holding the value set or else the default (empty
/// when there is none), then the `producer.*`, `consumer.*`, `property.*` and `arg.*` keys set,
/// in the order set. Passwords show as `***` (the `password` key, and inside `uri`).
///
/// @param cfg the config (borrowed).
/// @param out receives a new list owned by the caller (free with `rmqs_strings_free()`), only
///        on success.
/// @param err optional error detail, see the conventions.
/// @return `RMQS_OK`; `RMQS_ERR_INVALID_ARGUMENT` for a NULL config or `out`.
///
/// Not thread-safe for one config; does not block.
///
/// @ingroup rmqs_config
#[must_use]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_config_dump(
    cfg: *const rmqs_config,
    out: *mut *mut rmqs_strings,
    err: *mut *mut rmqs_error,
) -> rmqs_status {
    // SAFETY: err is NULL or writable per the conventions; cfg NULL or live.
    unsafe {
        ffi_status(err, || {
            let c = handle_arg(cfg)?;
            let out = out_arg(out, "out")?;
            write_out(out, strings(c.settings.dump()));
            Ok(())
        })
    }
}

/// Frees a config. NULL is allowed and does nothing.
///
/// @param cfg a config from `rmqs_config_new()` (ownership passes to the library), or NULL.
///
/// Does not block. Objects created with the config are not affected (they copied it).
///
/// @ingroup rmqs_config
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_config_free(cfg: *mut rmqs_config) {
    ffi_boundary((), || {
        // SAFETY: the caller passes NULL or a live config, freed once.
        if unsafe { handle_arg(cfg) }.is_ok() {
            let mut b = unsafe { Box::from_raw(cfg) };
            b.magic = 0;
            drop(b);
        }
    })
}
