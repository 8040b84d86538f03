//! Log level control and routing the library's logs into the host app's logger.
//!
//! Records go through a bounded queue to a dedicated thread that calls the foreign logger,
//! so foreign code never runs inside a log call (which may happen under a lock).

use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, OnceLock};

use crate::core::connection::lock;

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

struct Record {
    level: LogLevel,
    target: String,
    message: String,
}

struct Router {
    queue: Mutex<Option<SyncSender<Record>>>,
}

impl log::Log for Router {
    fn enabled(&self, _metadata: &log::Metadata) -> bool {
        // Decided in `log`, where transport records are demoted first.
        log::max_level() > log::LevelFilter::Off
    }

    fn log(&self, record: &log::Record) {
        // The transport stack's own records (including teardown noise it logs as errors,
        // like "subgroup receive failed") are debugging detail for app developers: the
        // library reports real failures itself, as typed errors and its own log records.
        let level = if is_transport(record.target()) {
            record.level().max(log::Level::Debug)
        } else {
            record.level()
        };
        if level > log::max_level() {
            return;
        }
        let queue = lock(&self.queue).clone();
        match queue {
            Some(queue) => {
                let entry = Record {
                    level: LogLevel::from_level(level),
                    target: record.target().to_string(),
                    message: record.args().to_string(),
                };
                if let Err(TrySendError::Full(_)) = queue.try_send(entry) {
                    // Dropped: a logger slower than the library must not slow it down.
                }
            }
            None => platform_log(level, record),
        }
    }

    fn flush(&self) {}
}

fn is_transport(target: &str) -> bool {
    ["moq_transport", "web_transport", "quinn", "rustls", "h3"]
        .iter()
        .any(|prefix| target.starts_with(prefix))
}

#[cfg(not(target_os = "android"))]
fn platform_log(level: log::Level, record: &log::Record) {
    eprintln!("[{level} {}] {}", record.target(), record.args());
}

/// On Android the default destination is logcat (tag `moq_ffi`).
#[cfg(target_os = "android")]
fn platform_log(level: log::Level, record: &log::Record) {
    use std::sync::OnceLock;
    static LOGCAT: OnceLock<android_logger::AndroidLogger> = OnceLock::new();
    let logcat = LOGCAT.get_or_init(|| {
        android_logger::AndroidLogger::new(
            android_logger::Config::default()
                .with_max_level(log::LevelFilter::Trace)
                .with_tag("moq_ffi"),
        )
    });
    log::Log::log(
        logcat,
        &log::Record::builder()
            .args(*record.args())
            .level(level)
            .target(record.target())
            .build(),
    );
}

/// Initialise logging from the `MOQ_LOG` environment variable (`error`, `warn`, `info`,
/// `debug`, `trace`, `off`; default `warn`). Used by the C ABI's `moq_init`.
pub(crate) fn init_from_env() {
    router();
    let level = match std::env::var("MOQ_LOG")
        .unwrap_or_default()
        .to_ascii_lowercase()
        .as_str()
    {
        "error" => LogLevel::Error,
        "info" => LogLevel::Info,
        "debug" => LogLevel::Debug,
        "trace" => LogLevel::Trace,
        "off" => LogLevel::Off,
        _ => LogLevel::Warn,
    };
    log::set_max_level(level.filter());
}

fn router() -> &'static Router {
    static ROUTER: OnceLock<&'static Router> = OnceLock::new();
    ROUTER.get_or_init(|| {
        let router: &'static Router = Box::leak(Box::new(Router {
            queue: Mutex::new(None),
        }));
        if log::set_logger(router).is_err() {
            // The host already installed a `log` logger (e.g. a Rust app): use that one.
        }
        router
    })
}

/// Set the library's log level (default `Warn`). Without a logger set, records go to
/// stderr (logcat on Android).
#[uniffi::export]
pub fn set_log_level(level: LogLevel) {
    router();
    log::set_max_level(level.filter());
}

/// Route the library's logs to `logger` (or back to stderr/logcat with `None`).
#[uniffi::export]
pub fn set_logger(logger: Option<Arc<dyn Logger>>) {
    let router = router();
    if log::max_level() == log::LevelFilter::Off {
        log::set_max_level(log::LevelFilter::Warn);
    }
    let Some(logger) = logger else {
        *lock(&router.queue) = None;
        return;
    };
    let (tx, rx) = sync_channel::<Record>(1024);
    let spawned = std::thread::Builder::new()
        .name("moq-logger".into())
        .spawn(move || {
            // Ends when the sender is replaced or removed.
            for record in rx {
                logger.log(record.level, record.target, record.message);
            }
        });
    if spawned.is_ok() {
        *lock(&router.queue) = Some(tx);
    }
}
