//! `Subscriber`: pull objects (`next`, `next_batch`) or have them delivered to a listener.

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use super::client::thread_error;
use super::listeners::{report, CatalogListener, ObjectListener};
use super::records::{PackedObjects, ReceivedObject, TrackInfo};
use super::{on_runtime, MoqError};
use crate::core::{self, connection::lock, parse_catalog, runtime};
use crate::delivery::{stopped, Gate, Worker};

/// Objects handed to a listener per call at most.
const LISTENER_BATCH: usize = 512;

/// A subscription. Pull mode: `next()` / `next_batch()`. Listener mode: objects are pushed
/// to the listener. `unsubscribe()` stops it; in listener mode no listener call runs after it
/// returns (unless called from inside the listener, which returns without deadlock).
#[derive(uniffi::Object)]
pub struct Subscriber {
    pull: Option<Arc<tokio::sync::Mutex<core::Subscriber>>>,
    closer: core::SubscriberCloser,
    active: tokio::sync::watch::Receiver<bool>,
    worker: Mutex<Option<Worker>>,
    failures: Arc<AtomicU64>,
    namespace: String,
    track: String,
}

enum Sink {
    Objects(Arc<dyn ObjectListener>),
    Catalog(Arc<dyn CatalogListener>),
}

impl Subscriber {
    pub(crate) fn pull(core: core::Subscriber) -> Arc<Self> {
        Arc::new(Self {
            closer: core.closer(),
            active: core.active_watch(),
            namespace: core.namespace().to_string(),
            track: core.track().to_string(),
            pull: Some(Arc::new(tokio::sync::Mutex::new(core))),
            worker: Mutex::new(None),
            failures: Arc::new(AtomicU64::new(0)),
        })
    }

    pub(crate) fn with_listener(
        core: core::Subscriber,
        listener: Arc<dyn ObjectListener>,
    ) -> Result<Arc<Self>, MoqError> {
        Self::pushing(core, Sink::Objects(listener))
    }

    pub(crate) fn with_catalog_listener(
        core: core::Subscriber,
        listener: Arc<dyn CatalogListener>,
    ) -> Result<Arc<Self>, MoqError> {
        Self::pushing(core, Sink::Catalog(listener))
    }

    fn pushing(mut core: core::Subscriber, sink: Sink) -> Result<Arc<Self>, MoqError> {
        let active = core.active_watch();
        let closer = core.closer();
        let (namespace, track) = (core.namespace().to_string(), core.track().to_string());
        let gate = Arc::new(Gate::default());
        let failures = Arc::new(AtomicU64::new(0));
        let body_gate = gate.clone();
        let body_failures = failures.clone();
        let worker = Worker::spawn("moq-listener", gate, move |stop| {
            let Ok(handle) = runtime::handle() else {
                return;
            };
            let end = loop {
                let batch = handle.block_on(async {
                    tokio::select! {
                        _ = stopped(stop.clone()) => None,
                        batch = core.next_batch(LISTENER_BATCH) => Some(batch),
                    }
                });
                match batch {
                    None => break None, // unsubscribed: no on_end after unsubscribe()
                    Some(Ok(objects)) if objects.is_empty() => break Some(None),
                    Some(Ok(objects)) => {
                        let ran = body_gate.run(|| deliver(&sink, objects, &body_failures));
                        if !ran {
                            break None;
                        }
                    }
                    Some(Err(err)) => break Some(Some(MoqError::from(err).to_string())),
                }
            };
            if let (Some(error), Sink::Objects(listener)) = (end, &sink) {
                body_gate.run(|| report("object", listener.on_end(error), &body_failures));
            }
            handle.block_on(core.close());
        })
        .map_err(thread_error)?;
        Ok(Arc::new(Self {
            pull: None,
            closer,
            active,
            worker: Mutex::new(Some(worker)),
            failures,
            namespace,
            track,
        }))
    }

    fn pull_handle(&self) -> Result<Arc<tokio::sync::Mutex<core::Subscriber>>, MoqError> {
        self.pull.clone().ok_or_else(|| MoqError::InvalidArgument {
            reason: "this subscription delivers to a listener; next()/next_batch() are for subscriptions made with subscribe()".into(),
        })
    }
}

fn deliver(sink: &Sink, objects: Vec<core::Object>, failures: &AtomicU64) {
    match sink {
        Sink::Objects(listener) => {
            let objects = objects.into_iter().map(ReceivedObject::from).collect();
            report("object", listener.on_objects(objects), failures);
        }
        Sink::Catalog(listener) => {
            for object in objects {
                match parse_catalog(&object.payload) {
                    Ok(tracks) => report(
                        "catalog",
                        listener.on_catalog(tracks.into_iter().map(TrackInfo::from).collect()),
                        failures,
                    ),
                    Err(err) => log::warn!("skipping malformed catalog: {err}"),
                }
            }
        }
    }
}

#[uniffi::export]
impl Subscriber {
    /// The next object, in order; `None` when the track ended normally or the subscription
    /// was closed. Errors when it ended abnormally (publisher or connection lost).
    pub async fn next(&self) -> Result<Option<ReceivedObject>, MoqError> {
        let pull = self.pull_handle()?;
        on_runtime(async move {
            let object = pull.lock().await.next().await?;
            Ok(object.map(ReceivedObject::from))
        })
        .await
    }

    /// Up to `max` objects (at least one, waiting for it); empty when the track ended.
    pub async fn next_batch(&self, max: u32) -> Result<Vec<ReceivedObject>, MoqError> {
        let pull = self.pull_handle()?;
        on_runtime(async move {
            let objects = pull.lock().await.next_batch(max.max(1) as usize).await?;
            Ok(objects.into_iter().map(ReceivedObject::from).collect())
        })
        .await
    }

    /// Like `next_batch`, in packed form: up to `max` objects (at least one, waiting for it)
    /// as one payload buffer plus an index; empty when the track ended. The fastest way to
    /// read many small objects from Python, Kotlin or Swift.
    pub async fn next_packed(&self, max: u32) -> Result<PackedObjects, MoqError> {
        let pull = self.pull_handle()?;
        on_runtime(async move {
            let objects = pull.lock().await.next_batch(max.max(1) as usize).await?;
            Ok(PackedObjects::pack(&objects))
        })
        .await
    }

    /// Unsubscribe and stop delivery. Idempotent.
    pub async fn unsubscribe(&self) {
        let worker = lock(&self.worker).take();
        if let Some(mut worker) = worker {
            // Blocking wait for an in-flight listener call: run it off the caller's executor.
            let stopping = std::thread::spawn(move || worker.stop());
            let _ = on_runtime(async move {
                let _ = tokio::task::spawn_blocking(move || stopping.join()).await;
                Ok(())
            })
            .await;
        }
        if let Some(pull) = self.pull.clone() {
            // Stop delivery first: a `next()` still waiting (e.g. from a cancelled
            // coroutine) returns and releases the subscriber.
            self.closer.close();
            let _ = on_runtime(async move {
                pull.lock().await.close().await;
                Ok(())
            })
            .await;
        }
    }

    /// Blocking form of `unsubscribe`, callable from any thread, including from inside this
    /// subscription's own listener (then it returns without waiting for itself).
    pub fn unsubscribe_blocking(&self) {
        let worker = lock(&self.worker).take();
        if let Some(mut worker) = worker {
            worker.stop();
        }
        if let Some(pull) = self.pull.clone() {
            self.closer.close();
            if let Ok(handle) = runtime::handle() {
                handle.spawn(async move { pull.lock().await.close().await });
            }
        }
    }

    /// Whether objects may still arrive.
    pub fn is_active(&self) -> bool {
        *self.active.borrow() && (self.pull.is_some() || lock(&self.worker).is_some())
    }

    /// Objects discarded because the reader fell behind (overflow policy `DropOldest`).
    pub fn dropped_count(&self) -> u64 {
        self.closer.dropped()
    }

    /// How many listener calls failed (returned an error or threw).
    pub fn listener_failure_count(&self) -> u64 {
        self.failures.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The namespace.
    pub fn namespace(&self) -> String {
        self.namespace.clone()
    }

    /// The track name.
    pub fn track(&self) -> String {
        self.track.clone()
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.closer.close();
        let worker = lock(&self.worker).take();
        if let Some(mut worker) = worker {
            worker.stop();
        }
    }
}
