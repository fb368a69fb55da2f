//! The blocking rules as the C API applies them (the rules themselves, the runtime and the
//! blocking calls are the client's: [`crate::client::blocking`]), and the mapping of client
//! errors to statuses.
//!
//! The library's threads are also marked for the panic hook: a runtime or dispatcher thread's
//! panics are the library's.

use std::time::Duration;

use super::error::Error;
use super::status::{rmqs_status_code, status_from_response_code};
use crate::client::ClientError;
use crate::client::blocking;
pub use crate::client::blocking::{ThreadRole, check_may_block, thread_role};

/// Marks the current thread (a runtime or dispatcher thread is one of the library's, for the
/// panic hook too).
pub fn mark_thread(role: ThreadRole) {
    blocking::mark_thread(role);
    if role != ThreadRole::Application {
        super::panic::mark_library_thread();
    }
}

/// Runs `work` on a new `rmqs-reaper` thread (closing or freeing in the background, for calls
/// made on library threads), marked as the library's for the panic hook. The thread keeps the
/// application role otherwise: it may block.
pub fn spawn_reaper(work: impl FnOnce() + Send + 'static) {
    let _ = std::thread::Builder::new()
        .name("rmqs-reaper".into())
        .spawn(move || {
            super::panic::mark_library_thread();
            work()
        });
}

/// A C timeout in milliseconds: negative = no limit (`None`).
pub fn timeout_from_ms(ms: i32) -> Option<Duration> {
    (ms >= 0).then(|| Duration::from_millis(ms as u64))
}

/// The status and message of a client error.
pub fn client_error(e: ClientError) -> Error {
    use rmqs_status_code::*;
    let status = match &e {
        ClientError::Server { code, .. } | ClientError::Auth(code) => {
            status_from_response_code(code.as_u16())
        }
        ClientError::Io(_) => RMQS_ERR_IO.status(),
        ClientError::Tls(_) => RMQS_ERR_TLS.status(),
        ClientError::Protocol(_) => RMQS_ERR_PROTOCOL.status(),
        ClientError::Timeout(..) => RMQS_ERR_TIMEOUT.status(),
        ClientError::Closed(_) => RMQS_ERR_CLOSED.status(),
        ClientError::Unsupported { .. } => RMQS_ERR_UNSUPPORTED.status(),
        ClientError::InvalidArgument(_) => RMQS_ERR_INVALID_ARGUMENT.status(),
        ClientError::QueueFull(_) | ClientError::NoneAccepted(_) => RMQS_ERR_QUEUE_FULL.status(),
        ClientError::NotConfirmed(_) => RMQS_ERR_NOT_CONFIRMED.status(),
        ClientError::WouldDeadlock(_) => RMQS_ERR_WOULD_DEADLOCK.status(),
    };
    // An Auth/Server code of 1 (OK) never reaches here; keep the status an error anyway.
    let status = if status == 0 {
        RMQS_ERR_PROTOCOL.status()
    } else {
        status
    };
    Error::new(status, e.to_string())
}

impl From<ClientError> for Error {
    fn from(e: ClientError) -> Self {
        client_error(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ffi::status::rmqs_status_code::*;

    #[test]
    fn errors_map_to_statuses() {
        use crate::protocol::codes::ResponseCode;
        let e = client_error(ClientError::Server {
            operation: "x",
            code: ResponseCode::STREAM_DOES_NOT_EXIST,
        });
        assert_eq!(e.status, 2);
        assert_eq!(
            client_error(ClientError::Auth(ResponseCode::AUTHENTICATION_FAILURE)).status,
            8
        );
        assert_eq!(
            client_error(ClientError::Timeout(1, "x")).status,
            RMQS_ERR_TIMEOUT.status()
        );
        assert_eq!(
            client_error(ClientError::QueueFull(3)).status,
            RMQS_ERR_QUEUE_FULL.status()
        );
        assert_eq!(
            client_error(ClientError::WouldDeadlock("x".into())).status,
            RMQS_ERR_WOULD_DEADLOCK.status()
        );
    }
}
