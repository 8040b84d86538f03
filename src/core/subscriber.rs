//! Subscribing to a track and receiving its objects in order.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::sync::watch;

use super::delivery::queue::Queue;
use super::delivery::subscription::{join, SharedTrack, Sink};
pub use super::delivery::{GroupOrder, Object, Overflow, SubscriberOptions};
use super::error::SubscribeError;
use super::names::check_track;
use super::stats::SubscriptionStats;
use super::Client;
use crate::sync::lock;

/// An established subscription. Objects arrive in order through [`Subscriber::next`] or
/// [`Subscriber::next_batch`].
///
/// Several subscribers of one track on one client share one upstream subscription; each
/// receives every object read after it was established. Dropping it (or
/// [`Subscriber::close`]) leaves; the last one to leave unsubscribes upstream.
pub struct Subscriber {
    namespace: String,
    track: String,
    objects: Arc<Queue>,
    sink: Arc<Sink>,
    active: watch::Receiver<bool>,
    shared: Option<Arc<SharedTrack>>,
    /// Leaving the shared track sends UNSUBSCRIBE, which needs this runtime's context.
    runtime: tokio::runtime::Handle,
}

impl Client {
    /// Subscribe to `track` in `namespace`. Returns once the relay has accepted the
    /// subscription: every object published after that reaches this subscriber.
    ///
    /// If no publisher has announced the track yet, waits up to the configured rendezvous
    /// timeout for one to appear, then fails with [`SubscribeError::NotFound`].
    pub async fn subscribe(
        &self,
        namespace: &str,
        track: &str,
        options: SubscriberOptions,
    ) -> Result<Subscriber, SubscribeError> {
        check_track(namespace, track)?;
        let live = self.live().ok_or(SubscribeError::NotConnected)?;
        let permit = self
            .subscription_slots()
            .clone()
            .try_acquire_owned()
            .map_err(|_| SubscribeError::TooManySubscriptions {
                max: self.config().max_subscriptions,
            })?;
        let (shared, sink, objects) = join(self.tracks(), &live, namespace, track, options).await?;
        // The slot is given back when the subscriber leaves or the subscription ends.
        *lock(&sink.permit) = Some(permit);
        Ok(Subscriber {
            namespace: namespace.to_string(),
            track: track.to_string(),
            objects,
            active: sink.active.subscribe(),
            sink,
            shared: Some(shared),
            runtime: self.runtime().clone(),
        })
    }
}

impl Subscriber {
    /// The namespace subscribed to.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The track subscribed to.
    pub fn track(&self) -> &str {
        &self.track
    }

    /// The next object, in order. `Ok(None)` once the track has ended normally (the publisher
    /// closed it) or the subscription was closed; an error when it ended abnormally
    /// (publisher lost, connection lost, oversize object).
    pub async fn next(&mut self) -> Result<Option<Object>, SubscribeError> {
        let mut one = Vec::with_capacity(1);
        match self.objects.pop_many(&mut one, 1).await {
            0 => self.finished(),
            _ => Ok(one.pop()),
        }
    }

    /// Up to `max` objects at once (at least one, waiting for it), in order. An empty vector
    /// means the track ended normally.
    pub async fn next_batch(&mut self, max: usize) -> Result<Vec<Object>, SubscribeError> {
        let mut batch = Vec::with_capacity(max.clamp(1, 1024));
        if self.objects.pop_many(&mut batch, max.max(1)).await == 0 {
            self.finished::<()>()?;
        }
        Ok(batch)
    }

    /// Ask the publisher for a new group (say, a decoder lost its reference and needs a key
    /// frame): draft-18 REQUEST_UPDATE with NEW_GROUP_REQUEST, forwarded by relays to the
    /// publisher, whose app starts a group when it sees the request. Returns once the relay
    /// accepted the request, not when the group comes. A request while one is outstanding,
    /// or for a group already delivered, is not sent again. Fails with `Refused` when the
    /// publisher does not take such requests, `NotConnected` without a session (also while
    /// reconnecting), `Timeout` after `request_timeout`.
    pub async fn request_new_group(&self) -> Result<(), SubscribeError> {
        self.closer().request_new_group().await
    }

    /// A snapshot of this subscription's counters. Cheap (a few atomic loads and one short
    /// lock of the buffer); thread-safe through [`SubscriberCloser::stats`] too.
    pub fn stats(&self) -> SubscriptionStats {
        self.closer().stats()
    }

    /// The next object if one is already buffered, without waiting.
    pub fn try_next(&mut self) -> Option<Object> {
        self.objects.try_pop()
    }

    /// Objects discarded so far under [`Overflow::DropOldest`].
    pub fn dropped(&self) -> u64 {
        self.sink.dropped.load(Ordering::Relaxed)
    }

    /// Groups cut short upstream while subscribed: the publisher, a relay or the network
    /// reset a group's stream (or ended it mid-object), so the rest of that group never
    /// arrives; delivery goes on with the next group. Each is logged as a warning too.
    pub fn cut_groups(&self) -> u64 {
        self.sink.cut_groups.load(Ordering::Relaxed)
    }

    fn finished<T>(&self) -> Result<Option<T>, SubscribeError> {
        match lock(&self.sink.end).clone() {
            Some(Err(err)) => Err(err),
            _ => Ok(None),
        }
    }

    /// Whether objects may still arrive.
    pub fn is_active(&self) -> bool {
        *self.active.borrow()
    }

    /// A receiver that turns `false` when delivery stops.
    pub fn active_watch(&self) -> watch::Receiver<bool> {
        self.active.clone()
    }

    /// How the subscription ended, once it has: `Ok(())` for a normal end or unsubscribe.
    pub fn end_reason(&self) -> Option<Result<(), SubscribeError>> {
        lock(&self.sink.end).clone()
    }

    /// Unsubscribe: no object is delivered to this subscriber afterwards (buffered ones can
    /// still be read). The last local subscriber of the track unsubscribes upstream and
    /// waits (bounded) for the relay. Idempotent.
    pub async fn close(&mut self) {
        self.leave();
        if let Some(shared) = self.shared.take() {
            if let Ok(shared) = Arc::try_unwrap(shared) {
                shared.unsubscribe().await;
            }
        }
    }

    fn leave(&self) {
        self.closer().close();
    }

    /// A handle that stops delivery to this subscriber from anywhere, without `&mut`
    /// access (e.g. while another task is waiting in [`Subscriber::next`], which then
    /// returns the end). The upstream subscription ends when the subscriber is dropped or
    /// closed.
    pub fn closer(&self) -> SubscriberCloser {
        SubscriberCloser {
            fanout: self
                .shared
                .as_ref()
                .map(|shared| Arc::downgrade(&shared.fanout)),
            sink: self.sink.clone(),
            objects: self.objects.clone(),
            track: self.shared.as_ref().map(Arc::downgrade),
        }
    }
}

/// Stops delivery to one [`Subscriber`]; see [`Subscriber::closer`].
#[derive(Clone)]
pub struct SubscriberCloser {
    fanout: Option<std::sync::Weak<super::delivery::subscription::Fanout>>,
    sink: Arc<Sink>,
    objects: Arc<Queue>,
    track: Option<std::sync::Weak<SharedTrack>>,
}

impl SubscriberCloser {
    /// Objects discarded so far under [`Overflow::DropOldest`].
    pub fn dropped(&self) -> u64 {
        self.sink.dropped.load(Ordering::Relaxed)
    }

    /// Groups cut short upstream while subscribed (see [`Subscriber::cut_groups`]).
    pub fn cut_groups(&self) -> u64 {
        self.sink.cut_groups.load(Ordering::Relaxed)
    }

    /// Ask the publisher for a new group (see [`Subscriber::request_new_group`]).
    pub async fn request_new_group(&self) -> Result<(), SubscribeError> {
        let track = self.track.as_ref().and_then(std::sync::Weak::upgrade);
        if !*self.sink.active.borrow() {
            return Err(SubscribeError::NotConnected);
        }
        match track {
            Some(track) => track.request_new_group().await,
            None => Err(SubscribeError::NotConnected),
        }
    }

    /// A snapshot of the subscription's counters (see [`Subscriber::stats`]).
    pub fn stats(&self) -> SubscriptionStats {
        let held = self
            .fanout
            .as_ref()
            .and_then(std::sync::Weak::upgrade)
            .map_or(0, |fanout| fanout.held.load(Ordering::Relaxed));
        let sink = &self.sink;
        SubscriptionStats {
            objects_received: sink.received.load(Ordering::Relaxed),
            bytes_received: sink.received_bytes.load(Ordering::Relaxed),
            objects_dropped: sink.dropped.load(Ordering::Relaxed),
            groups_cut: sink.cut_groups.load(Ordering::Relaxed),
            current_group: sink.current_group.load(Ordering::Relaxed).checked_sub(1),
            groups_held_for_ordering: held,
            buffered_objects: self.objects.len() as u64,
        }
    }

    /// Stop delivery (idempotent). Objects already buffered can still be read.
    pub fn close(&self) {
        if let Some(fanout) = self.fanout.as_ref().and_then(std::sync::Weak::upgrade) {
            fanout.leave(self.sink.id());
        }
        lock(&self.sink.end).get_or_insert(Ok(()));
        self.sink.active.send_replace(false);
        lock(&self.sink.permit).take();
    }
}

impl std::fmt::Debug for Subscriber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscriber")
            .field("namespace", &self.namespace)
            .field("track", &self.track)
            .field("active", &self.is_active())
            .finish()
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.leave();
        // Dropping the last reference to the shared track sends UNSUBSCRIBE; that needs the
        // runtime's context, whichever thread drops us.
        let _entered = self.runtime.enter();
        self.shared.take();
    }
}
