//! The UniFFI API: `Client`, `Publisher`, `Subscriber` objects, records, one error type and
//! foreign-implemented listener traits, generating the Kotlin, Swift and Python bindings.
//!
//! A mapping over [`crate::core`] and [`crate::bridge`]: argument conversions, one call
//! into the core, errors mapped by kind in one table (`error.rs`). Every async method runs
//! its work on the library runtime (so it can be awaited from any foreign executor, and is
//! cancelled with the caller), and listeners are fed by the bridge's pump on library threads
//! of their own, never under a lock and never after the `cancel()`/`unsubscribe()` that
//! owns them has returned. What each call promises (delivery, limits, threads) is stated
//! once, in docs/contract.md.

mod client;
mod error;
mod fetch;
mod listeners;
mod logging;
#[cfg(test)]
mod packed_vectors;
mod publisher;
mod records;
mod stats;
mod subscriber;

pub use client::Client;
pub use error::MoqError;
pub use fetch::FetchResponse;
pub use listeners::{
    CatalogListener, ConnectionListener, ListenerError, ListenerHandle, NamespaceListener,
    ObjectListener,
};
pub use logging::{set_log_level, set_logger, LogLevel, Logger};
pub use publisher::Publisher;
pub use records::*;
pub use stats::{ConnectionStats, SubscriptionStats};
pub use subscriber::Subscriber;

use std::future::Future;

/// Run `work` on the library runtime and await it from whatever executor polls us (Kotlin
/// coroutines, Swift tasks, Python asyncio); cancelled with the caller. A panic inside
/// becomes `MoqError::Internal`.
pub(crate) async fn on_runtime<T, F>(work: F) -> Result<T, MoqError>
where
    F: Future<Output = Result<T, MoqError>> + Send + 'static,
    T: Send + 'static,
{
    crate::bridge::runtime::spawn_awaited(work).await?
}

/// The library version (`moq_ffi X.Y.Z`).
#[uniffi::export]
pub fn version() -> String {
    concat!("moq_ffi ", env!("CARGO_PKG_VERSION")).to_string()
}
