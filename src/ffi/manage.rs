//! Stream management through a connection: create, delete, exists, stats, metadata, stored
//! offsets and publisher sequences.

use std::ffi::{CString, c_char};

use super::args::{Handle, handle_arg, name_arg, out_arg, write_out};
use super::config::{Settings, rmqs_config};
use super::connection::rmqs_connection;
use super::error::{Error, rmqs_error};
use super::panic::{ffi_boundary, ffi_status};
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
            let args = Settings::from_arg(args)?.stream_arguments()?;
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
            c.shared.run("rmqs_stream_delete", async |env| {
                env.delete_stream(stream).await
            })
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
/// it).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct rmqs_stream_statistics {
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
/// @param out receives the statistics, only on success.
/// @param err optional error detail.
/// @return `RMQS_OK`; `RMQS_ERR_STREAM_DOES_NOT_EXIST`; `RMQS_ERR_UNSUPPORTED` on brokers before
///         3.11 (the message names the version needed); local errors as `rmqs_stream_create()`.
///
/// Thread-safe; blocks for one round trip.
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
            let out = out_arg(out, "out")?;
            let s = c.shared.run("rmqs_stream_stats", async |env| {
                env.stream_stats(stream).await
            })?;
            write_out(
                out,
                rmqs_stream_statistics {
                    first_chunk_id: s.first_chunk_id,
                    committed_chunk_id: s.committed_chunk_id,
                    last_chunk_id: s.last_chunk_id,
                },
            );
            Ok(())
        })
    }
}

/// Where a stream lives: its leader and replicas. Opaque, immutable.
///
/// Created by `rmqs_stream_metadata()`, freed by `rmqs_metadata_free()`. May be read
/// from several threads at once.
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
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_offset_query(
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
            match c.shared.run("rmqs_offset_query", async |env| {
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
/// not answer: `rmqs_offset_query()` shows when it is applied.
///
/// @param conn the connection (borrowed).
/// @param reference the tracking reference (borrowed, 1–255 bytes).
/// @param stream the stream name (borrowed).
/// @param offset the offset to store.
/// @param err optional error detail.
/// @return `RMQS_OK` once the frame is queued for sending; local errors as
///         `rmqs_stream_create()`.
///
/// Thread-safe; blocks only to connect (lazy open).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_offset_store(
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
            c.shared.run("rmqs_offset_store", async |env| {
                env.store_offset(reference, stream, offset).await
            })
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
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_producer_sequence_query(
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
            let seq = c.shared.run("rmqs_producer_sequence_query", async |env| {
                env.query_publisher_sequence(reference, stream).await
            })?;
            write_out(out, seq);
            Ok(())
        })
    }
}
