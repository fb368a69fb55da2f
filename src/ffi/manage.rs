//! Stream management through a connection: create, delete, exists, stats, metadata, stored
//! offsets and publisher sequences.
//!
//! Every call goes through the connection's locator connection. When that connection is lost
//! (its node died), a call is retried once on the next seed host; a retried create that finds
//! the stream reports it created, a retried delete that finds none reports it deleted. No
//! retry after the broker answered, after a timeout, or once the application closed the
//! connection.

use std::ffi::{CString, c_char};

use super::args::{Handle, handle_arg, name_arg, out_arg, write_out};
use super::config::{rmqs_config, settings_arg};
use super::connection::rmqs_connection;
use super::error::{Error, rmqs_error};
use super::panic::{ffi_boundary, ffi_status};
use super::stats::write_extensible;
use super::status::{rmqs_status, rmqs_status_code};

/// Creates a stream.
///
/// @param conn the connection (borrowed).
/// @param stream the stream name, 1 to 255 bytes of UTF-8 (borrowed).
/// @param args stream arguments (`max_length_bytes`, `max_age`, `stream_max_segment_size_bytes`,
///        `initial_cluster_size`, `queue_leader_locator`, `filter_size`, `arg.<name>`: see
///        `rmqs_config_set()`), borrowed; NULL for the broker's defaults. Other keys are an
///        error.
/// @param err optional error detail.
/// @return `RMQS_OK` when the stream was created; `RMQS_ERR_STREAM_ALREADY_EXISTS` (5, positive,
///         so callers that only want the stream to exist can accept it) when it existed already,
///         whatever its arguments; `RMQS_ERR_INVALID_ARGUMENT`, `RMQS_ERR_PRECONDITION_FAILED`
///         (17, arguments the broker rejects), `RMQS_ERR_ACCESS_REFUSED`, `RMQS_ERR_CLOSED`,
///         `RMQS_ERR_TIMEOUT`, `RMQS_ERR_IO`, `RMQS_ERR_WOULD_DEADLOCK` (from a callback).
///
/// Thread-safe; blocks for one round trip (connecting first with lazy open).
///
/// @ingroup rmqs_management
#[must_use]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_stream_create(
    conn: *mut rmqs_connection,
    stream: *const c_char,
    args: *const rmqs_config,
    err: *mut *mut rmqs_error,
) -> rmqs_status {
    // SAFETY: pointers checked; err NULL or writable.
    unsafe {
        ffi_status(err, || {
            let c = handle_arg(conn)?;
            let stream = name_arg(stream, "stream name")?;
            let args = settings_arg(args)?.stream_arguments()?;
            let created = c.shared.run("rmqs_stream_create", async |env| {
                env.create_stream(stream, &args).await
            })?;
            if created {
                Ok(())
            } else {
                Err(Error::new(
                    rmqs_status_code::RMQS_ERR_STREAM_ALREADY_EXISTS,
                    format!("stream \"{stream}\" already exists"),
                ))
            }
        })
    }
}

/// Deletes a stream and its data.
///
/// @param conn the connection (borrowed).
/// @param stream the stream name (borrowed).
/// @param err optional error detail.
/// @return `RMQS_OK`; `RMQS_ERR_STREAM_DOES_NOT_EXIST` (2); `RMQS_ERR_ACCESS_REFUSED`; local
///         errors as `rmqs_stream_create()`.
///
/// Thread-safe; blocks for one round trip.
///
/// @ingroup rmqs_management
#[must_use]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_stream_delete(
    conn: *mut rmqs_connection,
    stream: *const c_char,
    err: *mut *mut rmqs_error,
) -> rmqs_status {
    // SAFETY: as above.
    unsafe {
        ffi_status(err, || {
            let c = handle_arg(conn)?;
            let stream = name_arg(stream, "stream name")?;
            Ok(c.shared.run("rmqs_stream_delete", async |env| {
                env.delete_stream(stream).await
            })?)
        })
    }
}

/// Whether a stream exists (and is visible to this user).
///
/// @param conn the connection (borrowed).
/// @param stream the stream name (borrowed).
/// @param out receives true or false, only on success.
/// @param err optional error detail.
/// @return `RMQS_OK`; local errors as `rmqs_stream_create()`.
///
/// Thread-safe; blocks for one round trip (Metadata).
///
/// @ingroup rmqs_management
#[must_use]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_stream_exists(
    conn: *mut rmqs_connection,
    stream: *const c_char,
    out: *mut bool,
    err: *mut *mut rmqs_error,
) -> rmqs_status {
    // SAFETY: as above.
    unsafe {
        ffi_status(err, || {
            let c = handle_arg(conn)?;
            let stream = name_arg(stream, "stream name")?;
            let out = out_arg(out, "out")?;
            let exists = c.shared.run("rmqs_stream_exists", async |env| {
                env.stream_exists(stream).await
            })?;
            write_out(out, exists);
            Ok(())
        })
    }
}

/// Statistics of a stream (RabbitMQ 3.11+). Chunk ids are the offsets of chunks' first
/// messages; -1 when unknown (empty stream; `last_chunk_id` also on brokers that do not report
/// it). Extensible like `rmqs_connection_statistics` (set `size` first): brokers may report
/// more statistics in later versions.
///
/// @ingroup rmqs_management
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct rmqs_stream_statistics {
    /// In: the size of the struct as the caller knows it. Out: the bytes the library filled.
    pub size: u64,
    /// Id of the first chunk still in the stream.
    pub first_chunk_id: i64,
    /// Id of the last chunk committed (replicated to a quorum), the last one readable.
    pub committed_chunk_id: i64,
    /// Id of the last chunk written.
    pub last_chunk_id: i64,
}

/// Reads a stream's statistics (StreamStats command).
///
/// @param conn the connection (borrowed).
/// @param stream the stream name (borrowed).
/// @param out the caller's struct, with `out->size` set to `sizeof(rmqs_stream_statistics)`;
///        filled (up to that size, `size` updated) only on success.
/// @param err optional error detail.
/// @return `RMQS_OK`; `RMQS_ERR_STREAM_DOES_NOT_EXIST`; `RMQS_ERR_UNSUPPORTED` on brokers before
///         3.11 (the message names the version needed); local errors as `rmqs_stream_create()`.
///
/// Thread-safe; blocks for one round trip.
///
/// @ingroup rmqs_management
#[must_use]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_stream_stats(
    conn: *mut rmqs_connection,
    stream: *const c_char,
    out: *mut rmqs_stream_statistics,
    err: *mut *mut rmqs_error,
) -> rmqs_status {
    // SAFETY: as above.
    unsafe {
        ffi_status(err, || {
            let c = handle_arg(conn)?;
            let stream = name_arg(stream, "stream name")?;
            let s = c.shared.run("rmqs_stream_stats", async |env| {
                env.stream_stats(stream).await
            })?;
            write_extensible(
                out,
                "rmqs_stream_statistics",
                rmqs_stream_statistics {
                    size: 0,
                    first_chunk_id: s.first_chunk_id,
                    committed_chunk_id: s.committed_chunk_id,
                    last_chunk_id: s.last_chunk_id,
                },
            )
        })
    }
}

/// Where a stream lives: its leader and replicas. Opaque, immutable.
///
/// Created by `rmqs_stream_metadata()`, freed by `rmqs_metadata_free()`. May be read
/// from several threads at once.
///
/// @ingroup rmqs_management
pub struct rmqs_metadata {
    magic: u64,
    leader: Option<(CString, u16)>,
    replicas: Vec<(CString, u16)>,
}

impl Handle for rmqs_metadata {
    const MAGIC: u64 = 0x726d_7173_6d65_7461; // "rmqsmeta"
    const NAME: &'static str = "rmqs_metadata";
    fn magic(&self) -> u64 {
        self.magic
    }
}

fn cstring(s: &str) -> CString {
    CString::new(s.replace('\0', "")).unwrap_or_default()
}

/// Locates a stream (Metadata command): advertised host and port of its leader and replicas.
///
/// @param conn the connection (borrowed).
/// @param stream the stream name (borrowed).
/// @param out receives new metadata owned by the caller (free with
///        `rmqs_metadata_free()`), only on success.
/// @param err optional error detail.
/// @return `RMQS_OK`; `RMQS_ERR_STREAM_DOES_NOT_EXIST`, `RMQS_ERR_STREAM_NOT_AVAILABLE`; local
///         errors as `rmqs_stream_create()`.
///
/// Thread-safe; blocks for one round trip.
///
/// @ingroup rmqs_management
#[must_use]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_stream_metadata(
    conn: *mut rmqs_connection,
    stream: *const c_char,
    out: *mut *mut rmqs_metadata,
    err: *mut *mut rmqs_error,
) -> rmqs_status {
    // SAFETY: as above.
    unsafe {
        ffi_status(err, || {
            let c = handle_arg(conn)?;
            let stream = name_arg(stream, "stream name")?;
            let out = out_arg(out, "out")?;
            let loc = c
                .shared
                .run("rmqs_stream_metadata", async |env| env.locate(stream).await)?;
            let m = rmqs_metadata {
                magic: rmqs_metadata::MAGIC,
                leader: loc.leader.map(|e| (cstring(&e.host), e.port)),
                replicas: loc
                    .replicas
                    .iter()
                    .map(|e| (cstring(&e.host), e.port))
                    .collect(),
            };
            write_out(out, Box::into_raw(Box::new(m)));
            Ok(())
        })
    }
}

/// The leader's advertised host.
///
/// @param md metadata (borrowed).
/// @return a string owned by `md`, valid until it is freed; NULL when the stream has no leader
///         now or `md` is NULL.
///
/// Thread-safe; does not block.
///
/// @ingroup rmqs_management
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_metadata_leader_host(md: *const rmqs_metadata) -> *const c_char {
    ffi_boundary(std::ptr::null(), || {
        // SAFETY: NULL or live.
        unsafe { handle_arg(md) }
            .ok()
            .and_then(|m| m.leader.as_ref())
            .map_or(std::ptr::null(), |(h, _)| h.as_ptr())
    })
}

/// The leader's advertised port; 0 when there is no leader or `md` is NULL.
///
/// Thread-safe; does not block.
///
/// @ingroup rmqs_management
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_metadata_leader_port(md: *const rmqs_metadata) -> u16 {
    ffi_boundary(0, || {
        // SAFETY: NULL or live.
        unsafe { handle_arg(md) }
            .ok()
            .and_then(|m| m.leader.as_ref())
            .map_or(0, |(_, p)| *p)
    })
}

/// Number of replicas (members other than the leader); 0 for NULL.
///
/// Thread-safe; does not block.
///
/// @ingroup rmqs_management
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_metadata_replica_count(md: *const rmqs_metadata) -> usize {
    ffi_boundary(0, || {
        // SAFETY: NULL or live.
        unsafe { handle_arg(md) }.map_or(0, |m| m.replicas.len())
    })
}

/// Replica `i` (0-based): its advertised host, and its port through `port` (may be NULL).
///
/// @return a string owned by `md`, valid until it is freed; NULL when `i` is out of range or
///         `md` is NULL (`*port` is then not written).
///
/// Thread-safe; does not block.
///
/// @ingroup rmqs_management
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_metadata_replica(
    md: *const rmqs_metadata,
    i: usize,
    port: *mut u16,
) -> *const c_char {
    ffi_boundary(std::ptr::null(), || {
        // SAFETY: NULL or live; port NULL or writable.
        let Some((h, p)) = unsafe { handle_arg(md) }
            .ok()
            .and_then(|m| m.replicas.get(i))
        else {
            return std::ptr::null();
        };
        if !port.is_null() {
            unsafe { port.write(*p) };
        }
        h.as_ptr()
    })
}

/// Frees metadata. NULL is allowed.
///
/// @param md metadata from `rmqs_stream_metadata()` (ownership passes to the library).
///
/// @ingroup rmqs_management
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_metadata_free(md: *mut rmqs_metadata) {
    ffi_boundary((), || {
        // SAFETY: NULL or live, freed once.
        if unsafe { handle_arg(md) }.is_ok() {
            let mut b = unsafe { Box::from_raw(md) };
            b.magic = 0;
        }
    })
}

/// The offset stored on the broker under `reference` for `stream` (QueryOffset).
///
/// @param conn the connection (borrowed).
/// @param reference the tracking reference, usually a consumer name (borrowed, 1–255 bytes).
/// @param stream the stream name (borrowed).
/// @param out receives the offset, only on success.
/// @param err optional error detail.
/// @return `RMQS_OK`; `RMQS_ERR_NO_OFFSET` (19, positive) when nothing is stored;
///         `RMQS_ERR_STREAM_DOES_NOT_EXIST`; local errors as `rmqs_stream_create()`.
///
/// Thread-safe; blocks for one round trip.
///
/// @ingroup rmqs_management
#[must_use]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_stream_query_offset(
    conn: *mut rmqs_connection,
    reference: *const c_char,
    stream: *const c_char,
    out: *mut u64,
    err: *mut *mut rmqs_error,
) -> rmqs_status {
    // SAFETY: as above.
    unsafe {
        ffi_status(err, || {
            let c = handle_arg(conn)?;
            let reference = name_arg(reference, "reference")?;
            let stream = name_arg(stream, "stream name")?;
            let out = out_arg(out, "out")?;
            match c.shared.run("rmqs_stream_query_offset", async |env| {
                env.query_offset(reference, stream).await
            })? {
                Some(o) => {
                    write_out(out, o);
                    Ok(())
                }
                None => Err(Error::new(
                    rmqs_status_code::RMQS_ERR_NO_OFFSET,
                    format!("no offset stored for \"{reference}\" on stream \"{stream}\""),
                )),
            }
        })
    }
}

/// Stores `offset` on the broker under `reference` for `stream` (StoreOffset). The broker does
/// not answer: `rmqs_stream_query_offset()` shows when it is applied.
///
/// @param conn the connection (borrowed).
/// @param reference the tracking reference (borrowed, 1–255 bytes).
/// @param stream the stream name (borrowed).
/// @param offset the offset to store.
/// @param err optional error detail.
/// @return `RMQS_OK` once the frame is queued for sending; local errors as
///         `rmqs_stream_create()`.
///
/// Thread-safe; blocks only to connect (lazy open), but like every call through the connection
/// it returns `RMQS_ERR_WOULD_DEADLOCK` from a library callback: store from a consumer's
/// callback with `rmqs_consumer_store_offset()`.
///
/// @ingroup rmqs_management
#[must_use]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_stream_store_offset(
    conn: *mut rmqs_connection,
    reference: *const c_char,
    stream: *const c_char,
    offset: u64,
    err: *mut *mut rmqs_error,
) -> rmqs_status {
    // SAFETY: as above.
    unsafe {
        ffi_status(err, || {
            let c = handle_arg(conn)?;
            let reference = name_arg(reference, "reference")?;
            let stream = name_arg(stream, "stream name")?;
            Ok(c.shared.run("rmqs_stream_store_offset", async |env| {
                env.store_offset(reference, stream, offset).await
            })?)
        })
    }
}

/// The last publishing id the broker kept for the named producer `reference` on `stream`
/// (QueryPublisherSequence); 0 when the broker knows none.
///
/// @param conn the connection (borrowed).
/// @param reference the producer name (borrowed, 1–255 bytes).
/// @param stream the stream name (borrowed).
/// @param out receives the sequence, only on success.
/// @param err optional error detail.
/// @return `RMQS_OK`; `RMQS_ERR_STREAM_DOES_NOT_EXIST`; local errors as
///         `rmqs_stream_create()`.
///
/// Thread-safe; blocks for one round trip.
///
/// @ingroup rmqs_management
#[must_use]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_stream_query_sequence(
    conn: *mut rmqs_connection,
    reference: *const c_char,
    stream: *const c_char,
    out: *mut u64,
    err: *mut *mut rmqs_error,
) -> rmqs_status {
    // SAFETY: as above.
    unsafe {
        ffi_status(err, || {
            let c = handle_arg(conn)?;
            let reference = name_arg(reference, "producer name")?;
            let stream = name_arg(stream, "stream name")?;
            let out = out_arg(out, "out")?;
            let seq = c.shared.run("rmqs_stream_query_sequence", async |env| {
                env.query_publisher_sequence(reference, stream).await
            })?;
            write_out(out, seq);
            Ok(())
        })
    }
}

/// A list of strings returned by the library (super stream partitions, routes). Opaque,
/// immutable.
///
/// Freed by `rmqs_strings_free()`. May be read from several threads at once.
///
/// @ingroup rmqs_management
pub struct rmqs_strings {
    magic: u64,
    items: Vec<CString>,
}

impl Handle for rmqs_strings {
    const MAGIC: u64 = 0x726d_7173_7374_7273; // "rmqsstrs"
    const NAME: &'static str = "rmqs_strings";
    fn magic(&self) -> u64 {
        self.magic
    }
}

/// A new list owned by the caller.
pub(crate) fn strings(items: Vec<String>) -> *mut rmqs_strings {
    Box::into_raw(Box::new(rmqs_strings {
        magic: rmqs_strings::MAGIC,
        items: items.iter().map(|s| cstring(s)).collect(),
    }))
}

/// Number of strings; 0 for NULL.
///
/// Thread-safe; does not block.
///
/// @ingroup rmqs_management
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_strings_count(list: *const rmqs_strings) -> usize {
    ffi_boundary(0, || {
        // SAFETY: NULL or live.
        unsafe { handle_arg(list) }.map_or(0, |l| l.items.len())
    })
}

/// String `i` (0-based).
///
/// @return a NUL-terminated string owned by `list`, valid until it is freed; NULL when `i` is
///         out of range or `list` is NULL.
///
/// Thread-safe; does not block.
///
/// @ingroup rmqs_management
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_strings_get(list: *const rmqs_strings, i: usize) -> *const c_char {
    ffi_boundary(std::ptr::null(), || {
        // SAFETY: NULL or live.
        unsafe { handle_arg(list) }
            .ok()
            .and_then(|l| l.items.get(i))
            .map_or(std::ptr::null(), |s| s.as_ptr())
    })
}

/// Frees a list. NULL is allowed.
///
/// @param list a list returned by the library (ownership passes back to it), or NULL.
///
/// @ingroup rmqs_management
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_strings_free(list: *mut rmqs_strings) {
    ffi_boundary((), || {
        // SAFETY: NULL or live, freed once.
        if unsafe { handle_arg(list) }.is_ok() {
            let mut b = unsafe { Box::from_raw(list) };
            b.magic = 0;
        }
    })
}

/// Reads `n` NUL-terminated names from a C array.
///
/// # Safety
/// `arr` must be NULL or point to `n` readable pointers.
unsafe fn name_array(
    arr: *const *const c_char,
    n: usize,
    what: &str,
) -> Result<Vec<String>, Error> {
    // SAFETY: per the caller's contract.
    let ptrs = unsafe { super::args::slice_arg(arr, n, what) }?;
    ptrs.iter()
        .enumerate()
        // SAFETY: each entry NULL or a NUL-terminated string.
        .map(|(i, p)| {
            unsafe { super::args::str_arg(*p, &format!("{what}[{i}]")) }.map(str::to_string)
        })
        .collect()
}

/// Creates a super stream (RabbitMQ 3.13+): its partitions (streams) and the binding key that
/// routes to each.
///
/// @param conn the connection (borrowed).
/// @param name the super stream name (borrowed, 1–255 bytes).
/// @param partitions `count` partition stream names (borrowed).
/// @param binding_keys `count` binding keys, one per partition (borrowed).
/// @param count number of partitions, at least 1.
/// @param args stream arguments applied to every partition (as `rmqs_stream_create()`), or NULL.
/// @param err optional error detail.
/// @return `RMQS_OK`; `RMQS_ERR_STREAM_ALREADY_EXISTS`; `RMQS_ERR_UNSUPPORTED` before 3.13;
///         `RMQS_ERR_INVALID_ARGUMENT`; local errors as `rmqs_stream_create()`.
///
/// Thread-safe; blocks for one round trip.
///
/// @ingroup rmqs_management
#[must_use]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_super_stream_create(
    conn: *mut rmqs_connection,
    name: *const c_char,
    partitions: *const *const c_char,
    binding_keys: *const *const c_char,
    count: usize,
    args: *const rmqs_config,
    err: *mut *mut rmqs_error,
) -> rmqs_status {
    // SAFETY: pointers checked; err NULL or writable.
    unsafe {
        ffi_status(err, || {
            let c = handle_arg(conn)?;
            let name = name_arg(name, "super stream name")?;
            let partitions = name_array(partitions, count, "partitions")?;
            let keys = name_array(binding_keys, count, "binding_keys")?;
            let args = settings_arg(args)?.stream_arguments()?;
            Ok(c.shared.run("rmqs_super_stream_create", async |env| {
                env.create_super_stream(name, &partitions, &keys, &args)
                    .await
            })?)
        })
    }
}

/// Creates a super stream with `count` partitions named `<name>-0` ... `<name>-<count-1>`,
/// bound with the keys `0` ... `<count-1>` (the convention of the other clients and of
/// `rabbitmq-streams add_super_stream --partitions`).
///
/// @return as `rmqs_super_stream_create()`.
///
/// Thread-safe; blocks for one round trip.
///
/// @ingroup rmqs_management
#[must_use]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_super_stream_create_n(
    conn: *mut rmqs_connection,
    name: *const c_char,
    count: u32,
    args: *const rmqs_config,
    err: *mut *mut rmqs_error,
) -> rmqs_status {
    // SAFETY: pointers checked; err NULL or writable.
    unsafe {
        ffi_status(err, || {
            let c = handle_arg(conn)?;
            let name = name_arg(name, "super stream name")?;
            if count == 0 {
                return Err(Error::invalid_argument(
                    "a super stream needs at least 1 partition",
                ));
            }
            let partitions: Vec<String> = (0..count).map(|i| format!("{name}-{i}")).collect();
            let keys: Vec<String> = (0..count).map(|i| i.to_string()).collect();
            let args = settings_arg(args)?.stream_arguments()?;
            Ok(c.shared.run("rmqs_super_stream_create_n", async |env| {
                env.create_super_stream(name, &partitions, &keys, &args)
                    .await
            })?)
        })
    }
}

/// Deletes a super stream and its partitions (RabbitMQ 3.13+).
///
/// @return `RMQS_OK`; `RMQS_ERR_STREAM_DOES_NOT_EXIST`; `RMQS_ERR_UNSUPPORTED` before 3.13; local
///         errors as `rmqs_stream_create()`.
///
/// Thread-safe; blocks for one round trip.
///
/// @ingroup rmqs_management
#[must_use]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_super_stream_delete(
    conn: *mut rmqs_connection,
    name: *const c_char,
    err: *mut *mut rmqs_error,
) -> rmqs_status {
    // SAFETY: pointers checked; err NULL or writable.
    unsafe {
        ffi_status(err, || {
            let c = handle_arg(conn)?;
            let name = name_arg(name, "super stream name")?;
            Ok(c.shared.run("rmqs_super_stream_delete", async |env| {
                env.delete_super_stream(name).await
            })?)
        })
    }
}

/// The partitions of a super stream, in routing order (Partitions command).
///
/// @param conn the connection (borrowed).
/// @param name the super stream name (borrowed).
/// @param out receives a new list owned by the caller (free with `rmqs_strings_free()`), only on
///        success.
/// @param err optional error detail.
/// @return `RMQS_OK`; `RMQS_ERR_STREAM_DOES_NOT_EXIST`; local errors as `rmqs_stream_create()`.
///
/// Thread-safe; blocks for one round trip.
///
/// @ingroup rmqs_management
#[must_use]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_super_stream_partitions(
    conn: *mut rmqs_connection,
    name: *const c_char,
    out: *mut *mut rmqs_strings,
    err: *mut *mut rmqs_error,
) -> rmqs_status {
    // SAFETY: pointers checked; err NULL or writable.
    unsafe {
        ffi_status(err, || {
            let c = handle_arg(conn)?;
            let name = name_arg(name, "super stream name")?;
            let out = out_arg(out, "out")?;
            let p = c.shared.run("rmqs_super_stream_partitions", async |env| {
                env.partitions(name).await
            })?;
            write_out(out, strings(p));
            Ok(())
        })
    }
}

/// The partitions a routing key is bound to in a super stream (Route command); the list may be
/// empty.
///
/// @param conn the connection (borrowed).
/// @param routing_key the key (borrowed, NUL-terminated UTF-8).
/// @param name the super stream name (borrowed).
/// @param out receives a new list owned by the caller (free with `rmqs_strings_free()`), only on
///        success.
/// @param err optional error detail.
/// @return `RMQS_OK`; `RMQS_ERR_STREAM_DOES_NOT_EXIST`; local errors as `rmqs_stream_create()`.
///
/// Thread-safe; blocks for one round trip.
///
/// @ingroup rmqs_management
#[must_use]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_super_stream_route(
    conn: *mut rmqs_connection,
    routing_key: *const c_char,
    name: *const c_char,
    out: *mut *mut rmqs_strings,
    err: *mut *mut rmqs_error,
) -> rmqs_status {
    // SAFETY: pointers checked; err NULL or writable.
    unsafe {
        ffi_status(err, || {
            let c = handle_arg(conn)?;
            let key = super::args::str_arg(routing_key, "routing_key")?;
            let name = name_arg(name, "super stream name")?;
            let out = out_arg(out, "out")?;
            let r = c.shared.run("rmqs_super_stream_route", async |env| {
                env.route(key, name).await
            })?;
            write_out(out, strings(r));
            Ok(())
        })
    }
}
