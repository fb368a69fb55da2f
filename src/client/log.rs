//! Logging without a global logger: every [`Environment`](super::Environment) carries a [`Log`]
//! (a [`Logger`] plus a maximum [`Level`]) that it hands to its connections, and that
//! producers and consumers reach through [`Environment::logger`](super::Environment::logger) or
//! [`Connection::logger`](super::Connection::logger).
//!
//! The library installs nothing process-wide (no `log` or `tracing` facade): two environments
//! in one process log to two different places, and an application's own logger is never
//! replaced. A message is formatted only when its level passes the filter, so a disabled
//! level costs one comparison:
//!
//! ```
//! use std::sync::Arc;
//! use rmqstream::client::log::{Level, Log, Logger, log_at};
//!
//! struct Stderr;
//! impl Logger for Stderr {
//!     fn log(&self, level: Level, target: &str, message: &str) {
//!         eprintln!("{} {target}: {message}", level.as_str());
//!     }
//! }
//!
//! let log = Log::new(Arc::new(Stderr), Level::Info);
//! log_at!(log, Level::Info, "example", "shown: {}", 42);
//! log_at!(log, Level::Debug, "example", "not formatted: {}", 42);
//! assert!(!Log::off().enabled(Level::Error));
//! ```
//!
//! Targets used by the library: `connection` (open, handshake failures, close and its reason,
//! heartbeat timeouts, the broker's Close, MetadataUpdate, skipped frames, publisher and
//! subscription registrations), `environment` (locator and data connections). Producers and
//! consumers log under `producer` and `consumer`.

use std::fmt;
use std::sync::Arc;

/// Severity of a log message, most severe first. The numeric values are those of the C API's
/// `RMQS_LOG_*` constants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum Level {
    /// Something failed and the library could not carry on with it (a connection lost).
    Error = 1,
    /// Something went wrong and was handled, or may need attention.
    Warn = 2,
    /// Life-cycle events: connections opened and closed, producers and consumers created.
    Info = 3,
    /// Details useful when looking into a problem (handshake steps, registrations).
    Debug = 4,
    /// Per-frame detail; costly when enabled.
    Trace = 5,
}

impl Level {
    /// Every level, most severe first.
    pub const ALL: [Level; 5] = [
        Level::Error,
        Level::Warn,
        Level::Info,
        Level::Debug,
        Level::Trace,
    ];

    /// Lower-case name: `error`, `warn`, `info`, `debug`, `trace`.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Error => "error",
            Level::Warn => "warn",
            Level::Info => "info",
            Level::Debug => "debug",
            Level::Trace => "trace",
        }
    }

    /// The level of a name (case-insensitive; `warning` is accepted for `warn`).
    pub fn parse(name: &str) -> Option<Level> {
        let n = name.to_ascii_lowercase();
        if n == "warning" {
            return Some(Level::Warn);
        }
        Level::ALL.into_iter().find(|l| l.as_str() == n)
    }

    /// The level of a numeric value (1 = error ... 5 = trace).
    pub fn from_u8(v: u8) -> Option<Level> {
        Level::ALL.into_iter().find(|l| *l as u8 == v)
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where an environment's log messages go.
///
/// Called on whatever thread emits the message — often a Tokio worker of the connection's
/// runtime, in the middle of reading or writing frames — so implementations must be quick and
/// must not block (hand the message to a channel or a lock-free buffer when in doubt), and
/// must not call back into the client.
pub trait Logger: Send + Sync {
    /// One message. `target` names the part of the library (`connection`, `environment`,
    /// `producer`, `consumer`); `message` is a single line without a trailing newline.
    fn log(&self, level: Level, target: &str, message: &str);
}

/// A [`Logger`] with its level filter; cheap to clone. The default logs nothing.
#[derive(Clone, Default)]
pub struct Log {
    logger: Option<Arc<dyn Logger>>,
    /// The most verbose level let through (`Level as u8`); 0 = nothing.
    max: u8,
}

impl fmt::Debug for Log {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Log")
            .field("max_level", &self.max_level())
            .finish_non_exhaustive()
    }
}

impl Log {
    /// Logs nothing.
    pub fn off() -> Log {
        Log::default()
    }

    /// Messages up to `max_level` (inclusive) go to `logger`.
    pub fn new(logger: Arc<dyn Logger>, max_level: Level) -> Log {
        Log {
            logger: Some(logger),
            max: max_level as u8,
        }
    }

    /// `logger` with an optional maximum level: `None` logs nothing.
    pub fn with_max(logger: Arc<dyn Logger>, max_level: Option<Level>) -> Log {
        match max_level {
            Some(l) => Log::new(logger, l),
            None => Log::off(),
        }
    }

    /// The most verbose level let through, `None` when logging is off.
    pub fn max_level(&self) -> Option<Level> {
        Level::from_u8(self.max)
    }

    /// Whether a message at `level` would be passed on. Check it before building a costly
    /// message; [`log_at!`] does.
    #[inline]
    pub fn enabled(&self, level: Level) -> bool {
        level as u8 <= self.max
    }

    /// Formats and passes on a message if `level` is enabled. Prefer [`log_at!`], which skips
    /// evaluating the arguments when the level is disabled.
    pub fn write(&self, level: Level, target: &str, args: fmt::Arguments<'_>) {
        if !self.enabled(level) {
            return;
        }
        if let Some(l) = &self.logger {
            match args.as_str() {
                Some(s) => l.log(level, target, s),
                None => l.log(level, target, &args.to_string()),
            }
        }
    }
}

/// `log_at!(log, level, target, "format", args...)`: logs through a [`Log`] (or a reference
/// to one) when `level` is enabled; neither formats nor evaluates the arguments otherwise.
#[macro_export]
macro_rules! log_at {
    ($log:expr, $level:expr, $target:expr, $($arg:tt)+) => {{
        let log: &$crate::client::log::Log = &$log;
        let level: $crate::client::log::Level = $level;
        if log.enabled(level) {
            log.write(level, $target, format_args!($($arg)+));
        }
    }};
}

pub use crate::log_at;

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[derive(Default)]
    struct Capture(Mutex<Vec<(Level, String, String)>>);

    impl Logger for Capture {
        fn log(&self, level: Level, target: &str, message: &str) {
            self.0
                .lock()
                .unwrap()
                .push((level, target.into(), message.into()));
        }
    }

    #[test]
    fn levels_filter_and_order() {
        let cap = Arc::new(Capture::default());
        let log = Log::new(cap.clone(), Level::Info);
        assert!(log.enabled(Level::Error) && log.enabled(Level::Info));
        assert!(!log.enabled(Level::Debug) && !log.enabled(Level::Trace));
        log_at!(log, Level::Warn, "t", "w {}", 1);
        log_at!(log, Level::Debug, "t", "d {}", 2);
        log_at!(log, Level::Info, "t", "plain");
        let got = cap.0.lock().unwrap().clone();
        assert_eq!(
            got,
            vec![
                (Level::Warn, "t".into(), "w 1".into()),
                (Level::Info, "t".into(), "plain".into())
            ]
        );
        assert_eq!(log.max_level(), Some(Level::Info));
        assert_eq!(Log::off().max_level(), None);
        assert_eq!(
            Log::with_max(cap.clone(), None).max_level(),
            None,
            "None = off"
        );
    }

    #[test]
    fn disabled_levels_do_not_evaluate_arguments() {
        let calls = AtomicUsize::new(0);
        let costly = || {
            calls.fetch_add(1, Ordering::Relaxed);
            "x"
        };
        let log = Log::new(Arc::new(Capture::default()), Level::Warn);
        log_at!(log, Level::Debug, "t", "{}", costly());
        log_at!(Log::off(), Level::Error, "t", "{}", costly());
        assert_eq!(calls.load(Ordering::Relaxed), 0);
        log_at!(log, Level::Error, "t", "{}", costly());
        assert_eq!(calls.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn names_round_trip() {
        for l in Level::ALL {
            assert_eq!(Level::parse(l.as_str()), Some(l));
            assert_eq!(Level::from_u8(l as u8), Some(l));
        }
        assert_eq!(Level::parse("WARNING"), Some(Level::Warn));
        assert_eq!(Level::parse("off"), None);
        assert_eq!(Level::from_u8(0), None);
        assert!(Level::Error < Level::Trace);
    }
}
