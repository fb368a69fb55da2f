//! Super stream helpers that need no connection.

use super::panic::ffi_boundary;
use super::status::{rmqs_status, rmqs_status_code::*};
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
/// @return `RMQS_OK`, or `RMQS_ERR_INVALID_ARGUMENT` if `routing_key` is NULL with `len > 0`,
///         `partition_count` is 0 or `out_index` is NULL (then `*out_index` is not written).
///
/// Pure function: thread-safe, does not block, no I/O.
#[must_use]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_super_stream_partition(
    routing_key: *const u8,
    len: usize,
    partition_count: u32,
    out_index: *mut u32,
) -> rmqs_status {
    ffi_boundary(RMQS_ERR_PANIC.status(), || {
        if (routing_key.is_null() && len > 0) || partition_count == 0 || out_index.is_null() {
            return RMQS_ERR_INVALID_ARGUMENT.status();
        }
        let key: &[u8] = if len == 0 {
            &[]
        } else {
            // SAFETY: the caller guarantees `len` readable bytes at a non-NULL `routing_key`.
            unsafe { std::slice::from_raw_parts(routing_key, len) }
        };
        let index = partition_index(key, partition_count);
        // SAFETY: out_index is non-NULL and writable per the contract.
        unsafe { out_index.write(index) };
        RMQS_OK.status()
    })
}

/// Hash routing on bytes: `murmur3_32(key, 104729) mod partition_count` (unsigned).
///
/// # Panics
/// If `partition_count` is 0.
pub fn partition_index(key: &[u8], partition_count: u32) -> u32 {
    murmur3_32(key, SUPER_STREAM_SEED) % partition_count
}
