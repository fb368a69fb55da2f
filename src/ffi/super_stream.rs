//! Super stream helpers that need no connection.

use super::args::{bytes_arg, out_arg, write_out};
use super::error::{Error, rmqs_error};
use super::panic::ffi_status;
use super::status::rmqs_status;
use crate::protocol::murmur3::{SUPER_STREAM_SEED, murmur3_32};

/// The partition a routing key goes to under hash routing, the routing of the Java, Go, .NET,
/// Rust and JS clients, byte for byte: MurmurHash3 x86 32-bit with seed 104729 over the key's
/// bytes, the hash taken as unsigned, modulo `partition_count`. The result indexes the partitions
/// in the order the broker's Partitions command lists them (`<super-stream>-0`, `-1`, ...).
///
/// @param routing_key the key's bytes (borrowed for the call; pass its UTF-8 encoding, without a
///        terminating NUL). May be NULL only if `len` is 0.
/// @param len number of bytes at `routing_key`.
/// @param partition_count number of partitions, at least 1.
/// @param out_index receives the partition index, in `[0, partition_count)`, only on success.
/// @param err optional error detail.
/// @return `RMQS_OK`, or `RMQS_ERR_INVALID_ARGUMENT` if `routing_key` is NULL with `len > 0`,
///         `partition_count` is 0 or `out_index` is NULL (then `*out_index` is not written).
///
/// Pure function: thread-safe, does not block, no I/O.
///
/// @ingroup rmqs_management
#[must_use]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_super_stream_partition(
    routing_key: *const u8,
    len: usize,
    partition_count: u32,
    out_index: *mut u32,
    err: *mut *mut rmqs_error,
) -> rmqs_status {
    // SAFETY: routing_key/len and out_index as documented; err NULL or writable.
    unsafe {
        ffi_status(err, || {
            let key = bytes_arg(routing_key, len, "routing_key")?;
            if partition_count == 0 {
                return Err(Error::invalid_argument(
                    "partition_count must be at least 1",
                ));
            }
            let out = out_arg(out_index, "out_index")?;
            write_out(out, partition_index(key, partition_count));
            Ok(())
        })
    }
}

/// Hash routing on bytes: `murmur3_32(key, 104729) mod partition_count` (unsigned).
///
/// # Panics
/// If `partition_count` is 0.
pub fn partition_index(key: &[u8], partition_count: u32) -> u32 {
    murmur3_32(key, SUPER_STREAM_SEED) % partition_count
}
