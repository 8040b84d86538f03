//! Foreign-implemented listener traits and the handle that owns a registration.

use std::sync::{Arc, Mutex};

use super::records::{ConnectionState, ReceivedObject, TrackInfo};
use crate::bridge::pump::Pump;
use crate::sync::lock;

/// What a listener may return to say it failed. The failure is logged and counted; delivery
/// continues.
#[derive(Debug, Clone, thiserror::Error, uniffi::Error)]
#[uniffi::export(Display)]
pub enum ListenerError {
    /// The listener failed (a foreign exception is reported as this too).
    #[error("listener failed: {reason}")]
    Failed {
        /// What went wrong.
        reason: String,
    },
}

impl From<uniffi::UnexpectedUniFFICallbackError> for ListenerError {
    fn from(err: uniffi::UnexpectedUniFFICallbackError) -> Self {
        ListenerError::Failed { reason: err.reason }
    }
}

/// Receives connection state changes. Called on a library thread.
#[uniffi::export(with_foreign)]
pub trait ConnectionListener: Send + Sync {
    /// The state changed (the current state is delivered first).
    fn on_state(&self, state: ConnectionState) -> Result<(), ListenerError>;
}

/// Receives a subscription's objects, in order, in batches (one foreign call per batch of
/// objects already received, so a busy track costs few crossings). Called on a library
/// thread.
#[uniffi::export(with_foreign)]
pub trait ObjectListener: Send + Sync {
    /// The next objects, in order.
    fn on_objects(&self, objects: Vec<ReceivedObject>) -> Result<(), ListenerError>;
    /// Delivery ended: `error` is `None` when the track ended normally or the subscription
    /// was unsubscribed, else what went wrong. Not called after `unsubscribe()` returned.
    fn on_end(&self, error: Option<String>) -> Result<(), ListenerError>;
}

/// Receives namespaces announced (and withdrawn) by other publishers. Called on a library
/// thread.
#[uniffi::export(with_foreign)]
pub trait NamespaceListener: Send + Sync {
    /// A namespace was announced.
    fn on_announced(&self, namespace: String) -> Result<(), ListenerError>;
    /// A namespace was withdrawn (or its session lost).
    fn on_withdrawn(&self, namespace: String) -> Result<(), ListenerError>;
}

/// Receives each well-formed catalog of a catalog track (malformed ones are logged and
/// skipped). Called on a library thread.
#[uniffi::export(with_foreign)]
pub trait CatalogListener: Send + Sync {
    /// A catalog arrived.
    fn on_catalog(&self, tracks: Vec<TrackInfo>) -> Result<(), ListenerError>;
}

/// Owns a listener registration. `cancel()` (or destroying the object) stops it; no
/// listener call runs after `cancel()` returns, unless `cancel()` is called from inside that
/// listener (which returns at once, without deadlock).
#[derive(uniffi::Object)]
pub struct ListenerHandle {
    pump: Mutex<Option<Pump>>,
    failures: Arc<std::sync::atomic::AtomicU64>,
}

impl ListenerHandle {
    pub(crate) fn new(pump: Pump, failures: Arc<std::sync::atomic::AtomicU64>) -> Arc<Self> {
        Arc::new(Self {
            pump: Mutex::new(Some(pump)),
            failures,
        })
    }
}

#[uniffi::export]
impl ListenerHandle {
    /// Stop the registration and wait until no listener call is running.
    pub fn cancel(&self) {
        // Taken out first: the lock is free while stopping waits for a listener call.
        let pump = lock(&self.pump).take();
        if let Some(mut pump) = pump {
            pump.stop();
        }
    }

    /// Whether the registration is still delivering.
    pub fn is_active(&self) -> bool {
        lock(&self.pump).as_ref().is_some_and(Pump::is_running)
    }

    /// How many listener calls failed (returned an error or threw).
    pub fn failure_count(&self) -> u64 {
        self.failures.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl Drop for ListenerHandle {
    fn drop(&mut self) {
        self.cancel();
    }
}

/// Log and count a failed listener call.
pub(crate) fn report(
    what: &str,
    result: Result<(), ListenerError>,
    failures: &std::sync::atomic::AtomicU64,
) {
    if let Err(err) = result {
        failures.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        log::warn!("{what} listener failed: {err}; delivery continues");
    }
}
