//! The C API (`rmqs_*`): the only code in the crate with `extern "C"` functions.
//!
//! `include/rmqstream.h` is generated from this module tree (and only from it) by cbindgen:
//! `scripts/gen-header` regenerates it, `tests/header.rs` fails when it is stale. Doc comments of
//! exported items become the header's documentation, so each one states the ownership of every
//! pointer, thread safety and whether the call blocks.
//!
//! Conventions (SPEC §3):
//! - fallible calls return `rmqs_status` (0 = OK, > 0 = broker response code, < 0 = local error)
//!   and take an optional last `rmqs_error **err`, filled only on failure — not all of them yet:
//!   the close, flush, credit and statistics functions and `rmqs_config_set_*_cb` return a
//!   status without one;
//! - outputs are written only on success; byte inputs are `(const uint8_t *, size_t)` where NULL is
//!   allowed only with length 0; enum-like inputs are `int32_t` and validated;
//! - every body runs inside the panic boundary ([`panic::ffi_boundary`] / [`panic::ffi_status`]);
//! - C-visible names are lower-case `rmqs_*` types and functions and upper-case `RMQS_*` constants,
//!   hence the `non_camel_case_types` allowances.
//!
//! What this layer holds besides the argument checks, the panic boundary and the status
//! mapping (it should hold nothing else; see the crate docs; the config keys' meaning, checks
//! and defaults, the ordered close of a connection's children, lazy connect, each
//! connection's runtime and the blocking rules are the client's, `client::blocking`):
//! callback dispatch (`dispatch`, `hooks`, `log`) and the event queue (`queue`). The four
//! producer and consumer handles share one creation, close and free path (`object`).
#![allow(non_camel_case_types)]
// The pointer contracts of the `unsafe extern "C"` functions are written for C readers in each
// function's `@param` docs (which go into the header), not in Rust's `# Safety` sections.
#![allow(clippy::missing_safety_doc)]

// cbindgen emits items in parse order, so these declarations also order the header:
// version, status codes, errors, then the API proper.
pub mod version;

pub mod status;

pub mod error;

pub mod super_stream;

pub mod panic;

pub mod config;

pub mod connection;

pub mod log;

pub mod manage;

pub mod queue;

pub mod dispatch;

pub mod message;

pub mod producer;

pub mod consumer;

pub(crate) mod object;

pub mod hooks;

pub mod chunk;

pub mod stats;

pub mod super_producer;

pub mod super_consumer;

pub mod state;

pub mod args;

pub mod runtime;

pub use chunk::*;
pub use config::{
    rmqs_config, rmqs_config_dump, rmqs_config_free, rmqs_config_new, rmqs_config_set,
    rmqs_config_set_offset,
};
pub use connection::{
    rmqs_connection, rmqs_connection_close, rmqs_connection_free, rmqs_connection_negotiated,
    rmqs_connection_open, rmqs_connection_open_uri, rmqs_connection_server_version,
    rmqs_connection_supports,
};
pub use consumer::*;
pub use dispatch::rmqs_free_cb;
pub use error::{Error, rmqs_error, rmqs_error_free, rmqs_error_message, rmqs_error_status};
pub use hooks::*;
pub use log::*;
pub use manage::{
    rmqs_metadata, rmqs_metadata_free, rmqs_metadata_leader_host, rmqs_metadata_leader_port,
    rmqs_metadata_replica, rmqs_metadata_replica_count, rmqs_stream_create, rmqs_stream_delete,
    rmqs_stream_exists, rmqs_stream_metadata, rmqs_stream_query_offset, rmqs_stream_query_sequence,
    rmqs_stream_statistics, rmqs_stream_stats, rmqs_stream_store_offset, rmqs_strings,
    rmqs_strings_count, rmqs_strings_free, rmqs_strings_get, rmqs_super_stream_create,
    rmqs_super_stream_create_n, rmqs_super_stream_delete, rmqs_super_stream_partitions,
    rmqs_super_stream_route,
};
pub use message::*;
pub use producer::*;
pub use queue::*;
pub use state::{rmqs_config_set_state_cb, rmqs_state_cb};
pub use stats::*;
pub use status::{
    rmqs_status, rmqs_status_code, rmqs_status_desc, rmqs_status_descs, rmqs_status_name,
    rmqs_status_str,
};
pub use super_consumer::*;
pub use super_producer::*;
pub use super_stream::rmqs_super_stream_partition;
pub use version::{rmqs_version, rmqs_version_number};
