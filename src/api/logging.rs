//! Log level control and routing the library's logs into the host app's logger (the
//! routing itself is the bridge's `log` router).

use std::sync::Arc;

/// Log levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum LogLevel {
    /// Errors only.
    Error,
    /// Warnings and errors (default).
    Warn,
    /// Informational.
    Info,
    /// Debugging detail.
    Debug,
    /// Everything, including the transport's internals.
    Trace,
    /// Nothing.
    Off,
}

impl LogLevel {
    fn filter(self) -> log::LevelFilter {
        match self {
            LogLevel::Error => log::LevelFilter::Error,
            LogLevel::Warn => log::LevelFilter::Warn,
            LogLevel::Info => log::LevelFilter::Info,
            LogLevel::Debug => log::LevelFilter::Debug,
            LogLevel::Trace => log::LevelFilter::Trace,
            LogLevel::Off => log::LevelFilter::Off,
        }
    }

    fn from_level(level: log::Level) -> Self {
        match level {
            log::Level::Error => LogLevel::Error,
            log::Level::Warn => LogLevel::Warn,
            log::Level::Info => LogLevel::Info,
            log::Level::Debug => LogLevel::Debug,
            log::Level::Trace => LogLevel::Trace,
        }
    }
}

/// A host-app logger (e.g. forwarding to `android.util.Log`, `os_log`, Python `logging`).
/// Called on a dedicated library thread.
#[uniffi::export(with_foreign)]
pub trait Logger: Send + Sync {
    /// One log record. `target` is the Rust module that logged it.
    fn log(&self, level: LogLevel, target: String, message: String);
}

/// Set the library's log level (default `Warn`). Without a logger set, records go to
/// stderr (logcat on Android).
#[uniffi::export]
pub fn set_log_level(level: LogLevel) {
    crate::bridge::log::set_level(level.filter());
}

/// Route the library's logs to `logger` (or back to stderr/logcat with `None`). The logger
/// is called on a library thread of its own, one record at a time; a logger that throws
/// loses that record only.
#[uniffi::export]
pub fn set_logger(logger: Option<Arc<dyn Logger>>) {
    let sink = logger.map(|logger| -> crate::bridge::log::Sink {
        Box::new(move |level, target, message| {
            logger.log(LogLevel::from_level(level), target, message)
        })
    });
    if let Err(err) = crate::bridge::log::route_to(sink) {
        log::error!("cannot start the logger thread: {err}; logs stay on stderr");
    }
}
