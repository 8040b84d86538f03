//! Where the library's log records go: stderr (logcat on Android) by default, or a host-app
//! sink set by a foreign face (a UniFFI `Logger`).
//!
//! Records for a sink go through a bounded queue to a thread of their own, so foreign code
//! never runs inside a `log` call (which may happen under a library lock), a slow sink never
//! slows the library (records beyond the queue are dropped), and a sink that fails (a
//! foreign exception surfaces as a panic) loses that record only. Writing to stderr ignores
//! write errors: a closed stderr must never panic a library thread or a C call.

use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::{Mutex, OnceLock};

use crate::sync::lock;

/// Records queued for a slow sink before new ones are dropped.
const SINK_QUEUE: usize = 1024;

/// A host-app log destination: called with (level, target, message) on the sink thread.
pub(crate) type Sink = Box<dyn Fn(log::Level, String, String) + Send>;

struct Record {
    level: log::Level,
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
                // A full queue drops the record: a sink slower than the library must not
                // slow it down.
                let _ = queue.try_send(Record {
                    level,
                    target: record.target().to_string(),
                    message: record.args().to_string(),
                });
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
    use std::io::Write;
    // Not eprintln!: it panics when stderr is closed (EPIPE), which would abort a C caller.
    let _ = writeln!(
        std::io::stderr().lock(),
        "[{level} {}] {}",
        record.target(),
        record.args()
    );
}

/// On Android the default destination is logcat (tag `moq_ffi`).
#[cfg(target_os = "android")]
fn platform_log(level: log::Level, record: &log::Record) {
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

/// Install the router (once) and set the level.
pub(crate) fn set_level(level: log::LevelFilter) {
    router();
    log::set_max_level(level);
}

/// Initialise from the `MOQ_LOG` environment variable (`error`, `warn`, `info`, `debug`,
/// `trace`, `off`; default `warn`).
pub(crate) fn init_from_env() {
    let level = match std::env::var("MOQ_LOG")
        .unwrap_or_default()
        .to_ascii_lowercase()
        .as_str()
    {
        "error" => log::LevelFilter::Error,
        "info" => log::LevelFilter::Info,
        "debug" => log::LevelFilter::Debug,
        "trace" => log::LevelFilter::Trace,
        "off" => log::LevelFilter::Off,
        _ => log::LevelFilter::Warn,
    };
    set_level(level);
}

/// Send records to `sink` (on a thread of its own) or, with `None`, back to stderr/logcat.
/// A previous sink's thread ends once its queue is drained.
pub(crate) fn route_to(sink: Option<Sink>) -> Result<(), std::io::Error> {
    let router = router();
    if log::max_level() == log::LevelFilter::Off {
        log::set_max_level(log::LevelFilter::Warn);
    }
    let Some(sink) = sink else {
        *lock(&router.queue) = None;
        return Ok(());
    };
    let (tx, rx) = sync_channel::<Record>(SINK_QUEUE);
    std::thread::Builder::new()
        .name("moq-logger".into())
        .spawn(move || {
            // Ends when the sender is replaced or removed.
            for record in rx {
                let call = std::panic::AssertUnwindSafe(|| {
                    sink(record.level, record.target, record.message)
                });
                if std::panic::catch_unwind(call).is_err() {
                    // Not through `log`: that would queue a record for the failing sink.
                    use std::io::Write;
                    let _ = writeln!(
                        std::io::stderr().lock(),
                        "[WARN moq_ffi] the app's logger failed on a record; later records still go to it"
                    );
                }
            }
        })?;
    *lock(&router.queue) = Some(tx);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc::channel;
    use std::time::Duration;

    #[test]
    fn a_sink_that_panics_loses_that_record_only() {
        let (tx, rx) = channel::<String>();
        let tx = Mutex::new(tx);
        let calls = std::sync::atomic::AtomicUsize::new(0);
        set_level(log::LevelFilter::Info);
        route_to(Some(Box::new(move |_, target, message| {
            if target != "bridge_log_test" {
                return; // records of other tests running in parallel
            }
            if calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
                panic!("the app's logger failed");
            }
            let _ = lock(&tx).send(message);
        })))
        .unwrap();
        log::info!(target: "bridge_log_test", "first");
        log::info!(target: "bridge_log_test", "second");
        let received = rx.recv_timeout(Duration::from_secs(10));
        route_to(None).unwrap();
        assert_eq!(received.as_deref(), Ok("second"));
    }
}
