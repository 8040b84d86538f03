//! `Subscriber`: pull objects (`next`, `next_batch`) or have them delivered to a listener.

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use super::error::thread_error;
use super::listeners::{report, CatalogListener, ObjectListener};
use super::records::{PackedObjects, ReceivedObject};
use super::{on_runtime, MoqError};
use crate::bridge::pump::{Flow, Pump};
use crate::bridge::sources::{Subscription, SubscriptionEvent};
use crate::core::{self, catalog::catalog_or_skip};
use crate::sync::lock;

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
    pump: Mutex<Option<Pump>>,
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
            pump: Mutex::new(None),
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

    fn pushing(core: core::Subscriber, sink: Sink) -> Result<Arc<Self>, MoqError> {
        let active = core.active_watch();
        let closer = core.closer();
        let (namespace, track) = (core.namespace().to_string(), core.track().to_string());
        let failures = Arc::new(AtomicU64::new(0));
        let counted = failures.clone();
        let runtime = crate::bridge::runtime::handle()?;
        let source = Subscription::established(core, LISTENER_BATCH);
        let pump = Pump::spawn("moq-listener", runtime, source, move |event, _| {
            deliver(&sink, event, &counted)
        })
        .map_err(thread_error)?;
        Ok(Arc::new(Self {
            pull: None,
            closer,
            active,
            pump: Mutex::new(Some(pump)),
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

/// Hand one event to the listener. No `on_end` after `unsubscribe()`: the pump stops
/// before delivering it.
fn deliver(sink: &Sink, event: SubscriptionEvent, failures: &AtomicU64) -> Flow {
    match (sink, event) {
        (_, SubscriptionEvent::Established(_)) => {}
        (Sink::Objects(listener), SubscriptionEvent::Objects(objects)) => {
            let objects = objects.into_iter().map(ReceivedObject::from).collect();
            report("object", listener.on_objects(objects), failures);
        }
        (Sink::Objects(listener), SubscriptionEvent::End(error)) => {
            let error = error.map(|err| MoqError::from(err).to_string());
            report("object", listener.on_end(error), failures);
            return Flow::Stop;
        }
        (Sink::Catalog(listener), SubscriptionEvent::Objects(objects)) => {
            for tracks in objects.iter().filter_map(catalog_or_skip) {
                report("catalog", listener.on_catalog(tracks), failures);
            }
        }
        (Sink::Catalog(_), SubscriptionEvent::End(_)) => return Flow::Stop,
    }
    Flow::Continue
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

    /// The next object if one has already arrived, without waiting (a plain call, not
    /// async, so it costs no round trip through the caller's event loop): `None` when none
    /// is buffered, when the subscription has ended, or while another read of this
    /// subscription (`next`, `next_batch`, `next_packed`) or `unsubscribe` is in progress.
    /// Objects come from the same queue as `next`'s, in order, so the two mix freely: take
    /// what is there with `try_next`, then await `next`.
    pub fn try_next(&self) -> Result<Option<ReceivedObject>, MoqError> {
        let pull = self.pull_handle()?;
        let Ok(mut subscriber) = pull.try_lock() else {
            return Ok(None);
        };
        Ok(subscriber.try_next().map(ReceivedObject::from))
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
        let pump = lock(&self.pump).take();
        if let Some(mut pump) = pump {
            if pump.is_its_thread() {
                // Awaited on the listener's own thread (e.g. a blocking executor inside the
                // listener): returns at once, like unsubscribe_blocking.
                pump.stop();
            } else {
                // Waiting for a listener call in flight blocks: wait on a blocking thread,
                // never on the caller's executor.
                let _ = on_runtime(async move {
                    let _ = tokio::task::spawn_blocking(move || pump.stop()).await;
                    Ok(())
                })
                .await;
            }
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
        let pump = lock(&self.pump).take();
        if let Some(mut pump) = pump {
            pump.stop();
        }
        if let Some(pull) = self.pull.clone() {
            self.closer.close();
            if let Ok(handle) = crate::bridge::runtime::handle() {
                handle.spawn(async move { pull.lock().await.close().await });
            }
        }
    }

    /// Whether objects may still arrive.
    pub fn is_active(&self) -> bool {
        *self.active.borrow() && (self.pull.is_some() || lock(&self.pump).is_some())
    }

    /// Objects discarded because the reader fell behind (overflow policy `DropOldest`).
    pub fn dropped_count(&self) -> u64 {
        self.closer.dropped()
    }

    /// Groups cut short upstream while subscribed: a relay, the publisher or the network
    /// reset a group's stream (or ended it mid-object), so the rest of that group is lost and
    /// delivery went on with the next group. Each is also logged as a warning. In stream
    /// (reliable) mode this is the one way data is lost without the subscription ending.
    pub fn cut_group_count(&self) -> u64 {
        self.closer.cut_groups()
    }

    /// How many listener calls failed (returned an error or threw).
    pub fn listener_failure_count(&self) -> u64 {
        self.failures.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Ask the publisher for a new group (a decoder that lost its reference needs a key
    /// frame): the relay forwards the request to the publisher, whose app starts a group.
    /// Returns once the relay accepted it. `Refused` when the publisher does not take such
    /// requests; `NotConnected` when the subscription or session is gone.
    pub async fn request_new_group(&self) -> Result<(), MoqError> {
        let closer = self.closer.clone();
        super::on_runtime(async move { Ok(closer.request_new_group().await?) }).await
    }

    /// A snapshot of this subscription's counters: objects and bytes received, dropped,
    /// groups cut, the current group, groups held for ordering, objects buffered. Cheap;
    /// callable from any thread.
    pub fn stats(&self) -> super::SubscriptionStats {
        self.closer.stats().into()
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
        let pump = lock(&self.pump).take();
        if let Some(mut pump) = pump {
            pump.stop();
        }
    }
}
