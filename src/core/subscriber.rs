//! Subscribing to a track and receiving its objects in order.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::sync::watch;

use super::delivery::queue::Queue;
use super::delivery::subscription::{join, Joined, SharedTrack, Sink};
pub use super::delivery::{GroupOrder, Object, Overflow, SubscriberOptions};
use super::error::FetchError;
use super::error::SubscribeError;
use super::fetch::{fetch_on, FetchRange, Fetched};
use super::live::Live;
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
    /// The past asked for with `SubscriberOptions::past_groups`, delivered first.
    past: Option<Box<Past>>,
}

/// The past asked for with `SubscriberOptions::past_groups`, and where the live objects
/// take over from it.
struct Past {
    /// How many groups, counting the one the live objects start in.
    groups: u64,
    /// The session the subscription was made on, to fetch on.
    live: std::sync::Weak<Live>,
    stage: Stage,
}

enum Stage {
    /// Nothing says yet where the live objects start (the relay had no state for the track:
    /// it forwards what the publisher holds, from its start): the first live object does.
    FirstLive,
    /// The first live object, held while the past before it is fetched.
    Held(Object),
    /// Handing out the fetched objects, then `held` (the first live object, if it was
    /// taken to decide the range), then the live ones after the last fetched one.
    Fetching {
        fetched: Box<Fetched>,
        held: Option<Object>,
        /// The last fetched object handed to the app.
        last_handed_out: Option<(u64, u64)>,
    },
    /// The past is out: live objects up to `upto`, the last one it handed out, came twice
    /// and are skipped, until the subscription is made again after a reconnect (`resumes`
    /// changes: what follows is new, whatever its ids).
    Skipping {
        upto: (u64, u64),
        resumes: u64,
    },
    Done,
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
        let Joined {
            shared,
            sink,
            queue: objects,
            seam,
        } = join(self.tracks(), &live, namespace, track, options).await?;
        // The slot is given back when the subscriber leaves or the subscription ends.
        *lock(&sink.permit) = Some(permit);
        let mut subscriber = Subscriber {
            namespace: namespace.to_string(),
            track: track.to_string(),
            objects,
            active: sink.active.subscribe(),
            sink,
            shared: Some(shared),
            runtime: self.runtime().clone(),
            past: None,
        };
        if options.past_groups > 0 {
            let mut past = Past {
                groups: options.past_groups,
                live: Arc::downgrade(&live),
                stage: Stage::FirstLive,
            };
            if let Some(seam) = seam {
                // Where the live objects start is known: fetch at once (the live objects
                // queue meanwhile), so `subscribe` can say when the past is not available.
                match past.fetch_before(namespace, track, seam, true).await {
                    Ok(stage) => past.stage = stage,
                    Err(err) => {
                        subscriber.close().await;
                        return Err(past_not_fetched(err, options.past_groups));
                    }
                }
            }
            subscriber.past = Some(Box::new(past));
        }
        Ok(subscriber)
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
        if let Some(object) = self.next_past().await? {
            return Ok(Some(object));
        }
        let mut one = Vec::with_capacity(1);
        loop {
            match self.objects.pop_many(&mut one, 1).await {
                0 => return self.finished(),
                _ => {
                    self.skip_before_seam(&mut one);
                    if let Some(object) = one.pop() {
                        return Ok(Some(object));
                    }
                }
            }
        }
    }

    /// Up to `max` objects at once (at least one, waiting for it), in order. An empty vector
    /// means the track ended normally.
    pub async fn next_batch(&mut self, max: usize) -> Result<Vec<Object>, SubscribeError> {
        if let Some(object) = self.next_past().await? {
            return Ok(vec![object]);
        }
        let mut batch = Vec::with_capacity(max.clamp(1, 1024));
        loop {
            if self.objects.pop_many(&mut batch, max.max(1)).await == 0 {
                self.finished::<()>()?;
                return Ok(batch);
            }
            self.skip_before_seam(&mut batch);
            if !batch.is_empty() {
                return Ok(batch);
            }
        }
    }

    /// The next object of the past, while it lasts (`SubscriberOptions::past_groups`): the
    /// fetched objects, then the first live object if it was held back to decide the range.
    /// A fetch that fails or is cut short is counted as a cut group and logged; delivery goes
    /// on with the live objects (a jump in the ids). `Err` only when the live objects ended
    /// before the first came.
    async fn next_past(&mut self) -> Result<Option<Object>, SubscribeError> {
        loop {
            let Some(past) = self.past.as_mut() else {
                return Ok(None);
            };
            match &mut past.stage {
                Stage::FirstLive => {
                    let mut one = Vec::with_capacity(1);
                    if self.objects.pop_many(&mut one, 1).await == 0 {
                        past.stage = Stage::Done;
                        return self.finished();
                    }
                    // Held in the stage while the past is fetched, so a `next()` dropped
                    // meanwhile loses nothing: the next call fetches again.
                    if let Some(first) = one.pop() {
                        past.stage = Stage::Held(first);
                    }
                }
                Stage::Held(first) => {
                    let at = (first.group_id, first.object_id);
                    let fetched = tokio::select! {
                        biased;
                        // The app's close() ends the fetch too (the held object stays).
                        _ = self.sink.closed.cancelled() => Ok(Stage::Done),
                        fetched = past.fetch_before(&self.namespace, &self.track, at, false) => {
                            fetched
                        }
                    };
                    let Stage::Held(first) = std::mem::replace(&mut past.stage, Stage::Done) else {
                        continue;
                    };
                    match fetched {
                        Ok(Stage::Fetching { fetched, .. }) => {
                            past.stage = Stage::Fetching {
                                fetched,
                                held: Some(first),
                                last_handed_out: None,
                            }
                        }
                        Ok(_) => return Ok(Some(first)),
                        Err(err) => {
                            self.past_lost(&err);
                            return Ok(Some(first));
                        }
                    }
                }
                Stage::Fetching {
                    fetched,
                    last_handed_out,
                    ..
                } => {
                    // Only the app's own `close()` ends the wait: a track that ends (or is
                    // lost) upstream still has its past read to the end (each read is bounded
                    // by the request timeout).
                    let outcome = tokio::select! {
                        biased;
                        _ = self.sink.closed.cancelled() => Ok(None),
                        outcome = fetched.next() => outcome,
                    };
                    match outcome {
                        Ok(Some(object)) => {
                            use std::sync::atomic::Ordering::Relaxed;
                            self.sink.received.fetch_add(1, Relaxed);
                            self.sink
                                .received_bytes
                                .fetch_add(object.payload.len() as u64, Relaxed);
                            *last_handed_out = Some((object.group_id, object.object_id));
                            return Ok(Some(object));
                        }
                        Ok(None) => {}
                        Err(err) => self.past_lost(&err),
                    }
                    let Some(past) = self.past.as_mut() else {
                        return Ok(None);
                    };
                    let Stage::Fetching {
                        held,
                        last_handed_out,
                        ..
                    } = std::mem::replace(&mut past.stage, Stage::Done)
                    else {
                        continue;
                    };
                    // Live objects up to the last one the past handed out came twice (a relay
                    // sends the open group from its start; a late stream may bring an earlier
                    // group after a later one): skipped for the rest of the subscription. Up
                    // to it only: what the past did not deliver (cut short) still comes live.
                    if let Some(upto) = last_handed_out {
                        past.stage = Stage::Skipping {
                            upto,
                            resumes: self.sink.resumes.load(Ordering::Relaxed),
                        };
                    }
                    return Ok(held);
                }
                Stage::Skipping { .. } | Stage::Done => return Ok(None),
            }
        }
    }

    fn past_lost(&self, err: &FetchError) {
        self.sink.cut_groups.fetch_add(1, Ordering::Relaxed);
        log::warn!(
            "the past of '{}' (past_groups) could not be fetched whole ({err}): what is \
             missing is lost; counted in the subscriber's cut groups",
            super::error::shown(&self.track)
        );
    }

    /// Drop live objects the past delivered already (up to the seam), until the first one
    /// after it.
    fn skip_before_seam(&mut self, batch: &mut Vec<Object>) {
        let Some(past) = self.past.as_ref() else {
            return;
        };
        let Stage::Skipping { upto, resumes } = past.stage else {
            return;
        };
        if self.sink.resumes.load(Ordering::Relaxed) != resumes {
            if let Some(past) = self.past.as_mut() {
                past.stage = Stage::Done;
            }
            return;
        }
        let bytes = |batch: &[Object]| batch.iter().map(|o| o.payload.len()).sum::<usize>();
        let before = (batch.len(), bytes(batch));
        batch.retain(|o| (o.group_id, o.object_id) > upto);
        // Counted as received when they were queued; they are not, twice.
        let after = (batch.len(), bytes(batch));
        self.sink
            .received
            .fetch_sub((before.0 - after.0) as u64, Ordering::Relaxed);
        self.sink
            .received_bytes
            .fetch_sub((before.1 - after.1) as u64, Ordering::Relaxed);
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

    /// The next object if one is already buffered, without waiting. While the past asked for
    /// with `past_groups` is still to come, `None`: it needs waiting for ([`Self::next`]).
    pub fn try_next(&mut self) -> Option<Object> {
        if self.past.as_ref().is_some_and(|past| {
            matches!(
                past.stage,
                Stage::FirstLive | Stage::Held(_) | Stage::Fetching { .. }
            )
        }) {
            return None; // the past comes first, and needs waiting for
        }
        loop {
            let mut one = vec![self.objects.try_pop()?];
            self.skip_before_seam(&mut one);
            if let Some(object) = one.pop() {
                return Some(object);
            }
        }
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
        self.sink.closed.cancel();
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

impl Past {
    /// Fetch the past before `at`: `inclusive` (the seam is the last object published before
    /// the live ones) fetches through `at`, else up to just before it (the first live object).
    /// `Stage::Done` when there is nothing before it to fetch.
    async fn fetch_before(
        &self,
        namespace: &str,
        track: &str,
        at: (u64, u64),
        inclusive: bool,
    ) -> Result<Stage, FetchError> {
        let start_group = at.0.saturating_sub(self.groups - 1);
        let end = if inclusive {
            Some((at.0, Some(at.1)))
        } else if at.1 > 0 {
            Some((at.0, Some(at.1 - 1)))
        } else if at.0 > start_group {
            Some((at.0 - 1, None))
        } else {
            None
        };
        let Some((end_group, end_object)) = end else {
            return Ok(Stage::Done);
        };
        let live = self.live.upgrade().ok_or(FetchError::NotConnected)?;
        let range = FetchRange {
            start_group,
            start_object: 0,
            end_group,
            end_object,
        };
        let fetched = fetch_on(&live, namespace, track, range).await?;
        Ok(Stage::Fetching {
            fetched: Box::new(fetched),
            held: None,
            last_handed_out: None,
        })
    }
}

/// The subscribe error for a past that could not be fetched: the FETCH's kind where the
/// subscription has one (not connected, timeout, token, request budget), else `Refused`
/// saying why.
fn past_not_fetched(err: FetchError, groups: u64) -> SubscribeError {
    match err {
        FetchError::NotConnected => SubscribeError::NotConnected,
        FetchError::Timeout { after } => SubscribeError::Timeout { after },
        FetchError::Unauthorized { reason } => SubscribeError::Unauthorized { reason },
        FetchError::SessionRequestsExhausted { limit } => {
            SubscribeError::SessionRequestsExhausted { limit }
        }
        other => SubscribeError::Refused {
            reason: format!(
                "the past groups asked for (past_groups = {groups}) cannot be fetched: {other}"
            ),
        },
    }
}
