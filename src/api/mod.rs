//! The UniFFI API: `Client`, `Publisher`, `Subscriber` objects, records, one error type and
//! foreign-implemented listener traits, generating the Kotlin, Swift and Python bindings.
//!
//! A thin layer over [`crate::core`]: every async method runs its work on the library
//! runtime (so it can be awaited from any foreign executor), and listeners are called on
//! library threads of their own, never under a lock and never after the `close()` that owns
//! them has returned.

mod client;
mod error;
mod listeners;
mod logging;
mod publisher;
mod records;
mod subscriber;

pub use client::Client;
pub use error::MoqError;
pub use listeners::{
    CatalogListener, ConnectionListener, ListenerError, ListenerHandle, NamespaceListener,
    ObjectListener,
};
pub(crate) use logging::init_from_env as init_logging_from_env;
pub use logging::{set_log_level, set_logger, LogLevel, Logger};
pub use publisher::Publisher;
pub use records::*;
pub use subscriber::Subscriber;

use std::future::Future;

/// Run `work` on the library runtime and await it from whatever executor polls us (Kotlin
/// coroutines, Swift tasks, Python asyncio). A panic inside becomes `MoqError::Internal`.
pub(crate) async fn on_runtime<T, F>(work: F) -> Result<T, MoqError>
where
    F: Future<Output = Result<T, MoqError>> + Send + 'static,
    T: Send + 'static,
{
    let handle = crate::core::runtime::handle().map_err(MoqError::from)?;
    let task = handle.spawn(work);
    // If the caller stops awaiting (a cancelled coroutine or task), cancel the work too.
    struct AbortOnDrop(Option<tokio::task::AbortHandle>);
    impl Drop for AbortOnDrop {
        fn drop(&mut self) {
            if let Some(task) = self.0.take() {
                task.abort();
            }
        }
    }
    let mut guard = AbortOnDrop(Some(task.abort_handle()));
    let outcome = task.await;
    guard.0 = None;
    match outcome {
        Ok(result) => result,
        Err(err) if err.is_panic() => Err(MoqError::Internal {
            reason: "internal error (panic in the library); please report it".into(),
        }),
        Err(_) => Err(MoqError::Closed {
            reason: "the operation was cancelled".into(),
        }),
    }
}

/// The library version (`moq_ffi X.Y.Z`).
#[uniffi::export]
pub fn version() -> String {
    concat!("moq_ffi ", env!("CARGO_PKG_VERSION")).to_string()
}
