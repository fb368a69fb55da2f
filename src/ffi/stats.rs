//! Counters readable at any time: `rmqs_connection_stats()`, `rmqs_producer_stats()`,
//! `rmqs_consumer_stats()`.
//!
//! The structs are extensible the way Win32's `cbSize` structs and Linux's `statx`/`clone3`
//! are: the caller writes the size it knows into the first field, the library fills at most
//! that many bytes and writes back how many it filled. Fields are only ever appended, all
//! `uint64_t`, so a program built against an older header keeps working with a newer library
//! (the newer fields are simply not written) and a newer program with an older library sees
//! from `size` which fields were filled.

use std::mem::size_of;

use super::args::handle_arg;
use super::connection::rmqs_connection;
use super::consumer::rmqs_consumer;
use super::error::{Error, rmqs_error};
use super::manage::rmqs_stream_statistics;
use super::panic::ffi_status;
use super::producer::rmqs_producer;
use super::status::rmqs_status;
use crate::client::{ConsumerStats, ProducerStats};

/// Counters of a connection (all its TCP connections: the locator and the data connections).
///
/// Extensible: set `size` to `sizeof(rmqs_connection_statistics)` before the call. Fields may
/// be appended in later versions, never removed or reordered; the library fills
/// `min(size, its own size)` bytes and sets `size` to that.
///
/// @ingroup rmqs_connection
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct rmqs_connection_statistics {
    /// In: the size of the struct as the caller knows it. Out: the bytes the library filled.
    pub size: u64,
    /// Frames received (handshakes and heartbeats included).
    pub frames_in: u64,
    /// Frames sent (handshakes and heartbeats included).
    pub frames_out: u64,
    /// Bytes received (as framed by the protocol; TLS overhead not counted).
    pub bytes_in: u64,
    /// Bytes sent (as framed by the protocol; TLS overhead not counted).
    pub bytes_out: u64,
    /// TCP connections opened (handshake completed) since the connection was created.
    pub connections_opened: u64,
    /// Data connections (for producers and consumers) open now.
    pub data_connections: u64,
    /// Times the locator connection was reopened after it was lost.
    pub reconnects: u64,
}

/// Counters of a producer. Extensible like `rmqs_connection_statistics` (set `size` first).
///
/// @ingroup rmqs_producer
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct rmqs_producer_statistics {
    /// In: the size of the struct as the caller knows it. Out: the bytes the library filled.
    pub size: u64,
    /// Messages accepted by the send functions.
    pub published: u64,
    /// Messages confirmed by the broker.
    pub confirmed: u64,
    /// Messages that completed with an error (refused by the broker, timed out, closed).
    pub errored: u64,
    /// Messages accepted and not completed yet (those whose confirm callback is running
    /// included): `published - confirmed - errored`.
    pub in_flight: u64,
    /// Recoveries completed (`RMQS_STATE_RECOVERED` events).
    pub recoveries: u64,
    /// Publish entries sent again by recoveries, with their original publishing ids
    /// (messages; with sub-entry batching, sub-entries).
    pub republished: u64,
}

/// Counters of a consumer. Extensible like `rmqs_connection_statistics` (set `size` first).
///
/// @ingroup rmqs_consumer
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct rmqs_consumer_statistics {
    /// In: the size of the struct as the caller knows it. Out: the bytes the library filled.
    pub size: u64,
    /// Messages handed to the application (those before the requested offset excluded).
    pub messages: u64,
    /// Chunks handed to the application.
    pub chunks: u64,
    /// Bytes of the chunks' data sections handed to the application (as on the wire).
    pub bytes: u64,
    /// Credits granted to the broker, the initial credit included.
    pub credits_granted: u64,
    /// Messages the post-filter removed (filtering).
    pub filtered_out: u64,
    /// Offsets stored on the broker by this consumer (automatic and explicit stores).
    pub offsets_stored: u64,
    /// The offset this consumer stored last; `UINT64_MAX` when it stored none.
    pub last_stored_offset: u64,
    /// Recoveries completed (`RMQS_STATE_RECOVERED` events).
    pub recoveries: u64,
}

impl From<ProducerStats> for rmqs_producer_statistics {
    fn from(s: ProducerStats) -> Self {
        rmqs_producer_statistics {
            size: 0,
            published: s.published,
            confirmed: s.confirmed,
            errored: s.errored,
            in_flight: s.in_flight,
            recoveries: s.recoveries,
            republished: s.republished,
        }
    }
}

impl From<ConsumerStats> for rmqs_consumer_statistics {
    fn from(s: ConsumerStats) -> Self {
        rmqs_consumer_statistics {
            size: 0,
            messages: s.messages,
            chunks: s.chunks,
            bytes: s.bytes,
            credits_granted: s.credits_granted,
            filtered_out: s.filtered_out,
            offsets_stored: s.offsets_stored,
            last_stored_offset: s.last_stored_offset.unwrap_or(u64::MAX),
            recoveries: s.recoveries,
        }
    }
}

/// An extensible counters struct: `size: u64` first, then `u64` fields.
pub(crate) trait Extensible: Copy {
    /// Size of the struct's first version: the smallest `size` a caller can have.
    const FIRST_SIZE: usize;
    fn set_size(&mut self, size: u64);
}

impl Extensible for rmqs_connection_statistics {
    const FIRST_SIZE: usize = 8 * 8;
    fn set_size(&mut self, size: u64) {
        self.size = size;
    }
}

impl Extensible for rmqs_producer_statistics {
    const FIRST_SIZE: usize = 5 * 8;
    fn set_size(&mut self, size: u64) {
        self.size = size;
    }
}

impl Extensible for rmqs_stream_statistics {
    const FIRST_SIZE: usize = 4 * 8;
    fn set_size(&mut self, size: u64) {
        self.size = size;
    }
}

impl Extensible for rmqs_consumer_statistics {
    const FIRST_SIZE: usize = 8 * 8;
    fn set_size(&mut self, size: u64) {
        self.size = size;
    }
}

/// Writes `value` into the caller's struct, as much of it as the caller's `size` says.
///
/// # Safety
/// `out` must be NULL or point to a struct of at least `out->size` writable bytes.
pub(crate) unsafe fn write_extensible<T: Extensible>(
    out: *mut T,
    name: &str,
    mut value: T,
) -> Result<(), Error> {
    if out.is_null() {
        return Err(Error::invalid_argument(format!("{name} out is NULL")));
    }
    // SAFETY: non-NULL; its first field is the caller's size.
    let size = unsafe { out.cast::<u64>().read_unaligned() };
    if size < T::FIRST_SIZE as u64 || size % 8 != 0 {
        return Err(Error::invalid_argument(format!(
            "{name}.size is {size}: set it to sizeof({name}) before the call"
        )));
    }
    let n = (size as usize).min(size_of::<T>());
    value.set_size(n as u64);
    // SAFETY: the caller's struct has `size` >= n writable bytes; `value` has n readable ones.
    unsafe { std::ptr::copy_nonoverlapping((&raw const value).cast::<u8>(), out.cast::<u8>(), n) };
    Ok(())
}

/// Reads a connection's counters. Before a lazy connection has connected they are all 0; after
/// `rmqs_connection_close()` they keep their last values (`data_connections` 0).
///
/// @param conn the connection (borrowed).
/// @param out the caller's struct, with `out->size` set to `sizeof(rmqs_connection_statistics)`;
///        filled (up to that size, `size` updated) only on success.
/// @return `RMQS_OK`; `RMQS_ERR_INVALID_ARGUMENT` for a NULL or invalid handle, a NULL `out`
///         or an `out->size` smaller than the struct's first version.
///
/// Thread-safe; does not block (relaxed atomic reads: counters read while traffic flows may be
/// a few frames apart from one another).
///
/// @ingroup rmqs_connection
#[must_use]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_connection_stats(
    conn: *const rmqs_connection,
    out: *mut rmqs_connection_statistics,
    err: *mut *mut rmqs_error,
) -> rmqs_status {
    // SAFETY: conn checked; out NULL or as documented.
    unsafe {
        ffi_status(err, || {
            let c = handle_arg(conn)?;
            let s = c
                .shared
                .environment()
                .map(|e| e.stats())
                .unwrap_or_default();
            write_extensible(
                out,
                "rmqs_connection_statistics",
                rmqs_connection_statistics {
                    size: 0,
                    frames_in: s.frames_in,
                    frames_out: s.frames_out,
                    bytes_in: s.bytes_in,
                    bytes_out: s.bytes_out,
                    connections_opened: s.connections_opened,
                    data_connections: s.data_connections,
                    reconnects: s.reconnects,
                },
            )
        })
    }
}

/// Reads a producer's counters, at any time (after close too, until it is freed).
///
/// @param p the producer (borrowed).
/// @param out the caller's struct, with `out->size` set to `sizeof(rmqs_producer_statistics)`;
///        filled (up to that size, `size` updated) only on success.
/// @return `RMQS_OK`; `RMQS_ERR_INVALID_ARGUMENT` as `rmqs_connection_stats()`.
///
/// Thread-safe; does not block.
///
/// @ingroup rmqs_producer
#[must_use]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_producer_stats(
    p: *const rmqs_producer,
    out: *mut rmqs_producer_statistics,
    err: *mut *mut rmqs_error,
) -> rmqs_status {
    // SAFETY: p checked; out NULL or as documented.
    unsafe {
        ffi_status(err, || {
            let s = handle_arg(p)?.core().stats();
            write_extensible(
                out,
                "rmqs_producer_statistics",
                rmqs_producer_statistics::from(s),
            )
        })
    }
}

/// Reads a consumer's counters, at any time (after close too, until it is freed).
///
/// @param c the consumer (borrowed).
/// @param out the caller's struct, with `out->size` set to `sizeof(rmqs_consumer_statistics)`;
///        filled (up to that size, `size` updated) only on success.
/// @return `RMQS_OK`; `RMQS_ERR_INVALID_ARGUMENT` as `rmqs_connection_stats()`.
///
/// Thread-safe; does not block.
///
/// @ingroup rmqs_consumer
#[must_use]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmqs_consumer_stats(
    c: *const rmqs_consumer,
    out: *mut rmqs_consumer_statistics,
    err: *mut *mut rmqs_error,
) -> rmqs_status {
    // SAFETY: c checked; out NULL or as documented.
    unsafe {
        ffi_status(err, || {
            let s = handle_arg(c)?.core().stats();
            write_extensible(
                out,
                "rmqs_consumer_statistics",
                rmqs_consumer_statistics::from(s),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_grow_from_the_first_versions() {
        assert_eq!(
            size_of::<rmqs_connection_statistics>(),
            rmqs_connection_statistics::FIRST_SIZE
        );
        // 0.2 appended the recovery counters.
        assert_eq!(
            size_of::<rmqs_producer_statistics>(),
            rmqs_producer_statistics::FIRST_SIZE + 2 * 8
        );
        assert_eq!(
            size_of::<rmqs_consumer_statistics>(),
            rmqs_consumer_statistics::FIRST_SIZE + 8
        );
    }

    fn value() -> rmqs_producer_statistics {
        rmqs_producer_statistics {
            size: 0,
            published: 1,
            confirmed: 2,
            errored: 3,
            in_flight: 4,
            recoveries: 5,
            republished: 6,
        }
    }

    #[test]
    fn sizes_are_honoured() {
        // a newer caller: a bigger struct; only ours is written, size says how much
        let mut big = [u64::MAX; 8];
        big[0] = 64;
        unsafe {
            write_extensible(
                big.as_mut_ptr().cast::<rmqs_producer_statistics>(),
                "p",
                value(),
            )
        }
        .unwrap();
        assert_eq!(big, [56, 1, 2, 3, 4, 5, 6, u64::MAX]);
        // an older caller: the first version's size; the newer fields are not written
        let mut old = [u64::MAX; 7];
        old[0] = 40;
        unsafe {
            write_extensible(
                old.as_mut_ptr().cast::<rmqs_producer_statistics>(),
                "p",
                value(),
            )
        }
        .unwrap();
        assert_eq!(old, [40, 1, 2, 3, 4, u64::MAX, u64::MAX]);
        // exact size
        let mut s = rmqs_producer_statistics {
            size: size_of::<rmqs_producer_statistics>() as u64,
            ..Default::default()
        };
        unsafe { write_extensible(&raw mut s, "p", value()) }.unwrap();
        assert_eq!(
            s,
            rmqs_producer_statistics {
                size: 56,
                ..value()
            }
        );
        // not set, or not a multiple of 8: refused, nothing written
        for bad in [0u64, 8, 32, 41] {
            let mut s = rmqs_producer_statistics {
                size: bad,
                ..Default::default()
            };
            let e = unsafe { write_extensible(&raw mut s, "p", value()) }.unwrap_err();
            assert!(e.message.contains("sizeof(p)"), "{}", e.message);
            assert_eq!(s.published, 0);
        }
        assert!(unsafe { write_extensible(std::ptr::null_mut(), "p", value()) }.is_err());
    }
}
