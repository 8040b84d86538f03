//! Publishing objects on a track.
//!
//! # Delivery and the join problem
//! In `Stream` mode objects go out on one QUIC stream per group (one subgroup), written as
//! they are published, and a group stays open until [`Publisher::new_group`] or until it
//! reaches [`PublisherOptions::max_group_objects`] / `max_group_bytes`.
//!
//! Why not a group per object: every hop (this publisher, the relay's cache, the
//! subscriber's reader) starts following a track lazily and, until it does, remembers only
//! the newest 8 subgroups. The subscriber's own hop takes its reader while the first group
//! is the only one (see `claiming_session`), but a relay that has just subscribed upstream can
//! still drop the start of a burst of many short groups. An open group, by contrast, is
//! handed whole to every reader that joins while it is open (readers start from the open
//! groups, then follow new ones), so long groups keep every hop safe.
//! Bounding groups keeps the per-group memory the publisher and relay retain for late
//! joiners bounded too.
//!
//! # A network slower than the publisher
//! In `Stream` mode the bytes published but not yet handed to QUIC are bounded by
//! [`PublisherOptions::max_queued_bytes`] (QUIC then holds at most its send window, quinn's
//! default 10 MB per connection, of unacknowledged data), and so are the new groups waiting
//! for their first object to go out (512: moq-transport ends a subscription whose reader falls
//! 1,024 groups behind, which a burst of short groups did to the publisher's own upstream).
//! When the queue is full, [`Publisher::publish`] returns [`PublishError::WouldBlock`] and
//! publishes nothing;
//! [`Publisher::publish_when_ready`] waits for room instead. Objects count only while the
//! relay subscribes to the track: with no subscriber nothing is queued toward the network
//! (what is kept for late joiners is bounded by the group limits below). `Datagram` mode
//! never queues: QUIC drops the oldest unsent datagram instead.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use moq_transport::data::ObjectStatus;
use moq_transport::serve::{
    Datagram, DatagramsWriter, SendBudget, SendBudgetFull, Subgroup, SubgroupWriter,
    SubgroupsWriter, MAX_QUEUED_SUBGROUPS,
};
use tokio::sync::watch;

use super::config::ClientConfig;
use super::error::PublishError;
use super::history::History;
use super::live::{Live, TrackNameGuard};
use super::names::check_track;
use crate::sync::lock;

/// How a track's objects travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeliveryMode {
    /// Reliable and in order, on QUIC streams. Every object published after a subscription
    /// is established reaches that subscriber once, complete, in order.
    Stream,
    /// Lossy, on QUIC datagrams: objects may be dropped (congestion, or a faster publisher
    /// than the path: a newer datagram replaces one not yet sent), never corrupted. Each
    /// object must fit in one datagram (about 1,200 bytes).
    Datagram,
}

/// Options for [`Client::create_publisher`](super::Client::create_publisher).
#[derive(Debug, Clone, Copy)]
pub struct PublisherOptions {
    /// Delivery mode. Default `Stream`.
    pub delivery: DeliveryMode,
    /// Publisher priority, 0 (highest) to 255. Default 128.
    pub priority: u8,
    /// A group is closed after this many objects. Default [`DEFAULT_MAX_GROUP_OBJECTS`]
    /// (few, long groups: see the module docs; below what relays accept in one group).
    pub max_group_objects: u64,
    /// A group is closed once it holds this many payload bytes. Default 64 MiB.
    pub max_group_bytes: u64,
    /// `Stream` mode: the most payload bytes published and not yet handed to QUIC (a slow
    /// network or relay); beyond it `publish` returns [`PublishError::WouldBlock`]. An object
    /// is accepted while the queue is below the limit, so the queue holds at most this plus
    /// one object. Default 16 MiB.
    pub max_queued_bytes: usize,
    /// `Stream` mode: advertise that subscribers may ask for a new group (draft-18
    /// REQUEST_UPDATE with NEW_GROUP_REQUEST; relays forward it to the publisher), and hand
    /// each request to [`Publisher::new_group_requests`], so the app can start a group with a
    /// key frame. Without it a subscriber's request is refused. Default `false`.
    pub accept_new_group_requests: bool,
    /// Groups kept for FETCH (on a datagram track each object is a group of its own): the
    /// last this many groups of the track (with
    /// [`Self::retain_bytes`], whichever bound is reached first), handed to a subscriber's
    /// [`Client::fetch`](super::Client::fetch) that the relay forwards here. 0 (the default):
    /// none kept, and a FETCH is answered "not available". The payloads are shared with the
    /// objects sent, so this costs no copy, but holds up to `retain_bytes` of memory.
    pub retain_groups: u64,
    /// Payload bytes kept for FETCH at most (see [`Self::retain_groups`]); whole groups are
    /// evicted, oldest first, and a group larger than this is not kept. Default (and 0)
    /// [`DEFAULT_RETAIN_BYTES`], 16 MiB.
    pub retain_bytes: usize,
}

/// How long a subscription must stay for [`Publisher::wait_for_subscriber`] to count it: a
/// relay's probe (subscribe, then cancel within milliseconds) is not an audience.
pub const SUBSCRIBER_SETTLE: Duration = Duration::from_millis(200);

/// Default [`PublisherOptions::max_group_objects`]: 4,096.
///
/// Long groups keep every hop safe (module docs), but relays bound a group: moq-dev's relay
/// ends a group past about 8,160 objects ("group too large") and serves nothing more of it,
/// so a 10,000-object group delivered 7,334 objects and then silence. Half that cap leaves
/// room for relays we have not measured; a burst of 10,000 objects is still 3 groups, far
/// from the 8 a hop keeps before it starts following a track.
pub const DEFAULT_MAX_GROUP_OBJECTS: u64 = 4_096;

/// Default [`PublisherOptions::retain_bytes`]: 16 MiB.
pub const DEFAULT_RETAIN_BYTES: usize = 16 * 1024 * 1024;

/// Default [`PublisherOptions::max_queued_bytes`].
pub const DEFAULT_MAX_QUEUED_BYTES: usize = 16 * 1024 * 1024;

impl Default for PublisherOptions {
    fn default() -> Self {
        Self {
            delivery: DeliveryMode::Stream,
            priority: 128,
            max_group_objects: DEFAULT_MAX_GROUP_OBJECTS,
            max_group_bytes: 64 * 1024 * 1024,
            max_queued_bytes: DEFAULT_MAX_QUEUED_BYTES,
            accept_new_group_requests: false,
            retain_groups: 0,
            retain_bytes: DEFAULT_RETAIN_BYTES,
        }
    }
}

/// Where a published object went: its group and its index in the group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectLocation {
    /// Group id.
    pub group_id: u64,
    /// Object id within the group.
    pub object_id: u64,
}

/// Publishes objects on one track of an announced namespace. Thread-safe: several threads
/// may publish on one publisher (objects are ordered by the internal lock).
///
/// Dropping it (or [`Publisher::close`]) ends the track: subscribers see the track end.
/// With [`ClientConfig::reconnect`](super::ClientConfig::reconnect) it continues on the new
/// session after a reconnect, starting a new group (group ids keep increasing).
pub struct Publisher {
    shared: Arc<Shared>,
    /// Ending the track and releasing the session need this runtime's context.
    runtime: tokio::runtime::Handle,
}

/// A publisher's state, also known (weakly) to its client so a reconnect can move it to the
/// new session.
pub(crate) struct Shared {
    namespace: String,
    track: String,
    options: PublisherOptions,
    max_object_size: usize,
    /// The client's `request_timeout`: how long blocking faces wait for room.
    request_timeout: Duration,
    /// `Stream` mode: bytes published and not yet handed to QUIC, across sessions.
    send_budget: Arc<SendBudget>,
    binding: Mutex<Binding>,
    /// Cancelled by [`Publisher::close`]: wakes a `publish_when_ready` waiting for room, which
    /// then reports `Closed` (room may never come on a stalled network).
    closing: tokio_util::sync::CancellationToken,
    /// New-group requests received (how many, and the latest one's group), for
    /// [`NewGroupRequests`]; fed by the track's dynamic-groups handler on every session.
    new_group_requests: Arc<watch::Sender<(u64, u64)>>,
    /// The groups kept for FETCH (`retain_groups` > 0), across sessions.
    history: Option<Arc<History>>,
}

/// The new-group requests subscribers send a publisher (see
/// [`PublisherOptions::accept_new_group_requests`]). Requests that arrive while the app is
/// busy are coalesced: [`NewGroupRequests::next`] returns once for all of them.
pub struct NewGroupRequests {
    requests: watch::Receiver<(u64, u64)>,
    seen: u64,
    closing: tokio_util::sync::CancellationToken,
}

impl NewGroupRequests {
    /// Wait for the next request (or requests, coalesced) since the last call. Returns the
    /// group the latest one asks to reach (the largest group that subscriber knows, plus one;
    /// 0 when it knows none): call [`Publisher::new_group`] and publish a key frame. `None`
    /// once the publisher is closed. Cancel-safe.
    pub async fn next(&mut self) -> Option<u64> {
        let seen = self.seen;
        let request = tokio::select! {
            request = self.requests.wait_for(|(count, _)| *count > seen) => *request.ok()?,
            _ = self.closing.cancelled() => return None,
        };
        self.seen = request.0;
        Some(request.1)
    }

    /// Requests received so far, in all.
    pub fn count(&self) -> u64 {
        self.requests.borrow().0
    }
}

/// The session a publisher writes to, and its writer there.
struct Binding {
    live: Arc<Live>,
    /// `None` once closed, or if the track could not be created again after a reconnect.
    writer: Option<Writer>,
    closed: bool,
    _name: Option<TrackNameGuard>,
    /// The id of the next group (or datagram): ids keep increasing across sessions, so a
    /// subscriber can tell the objects of a new session from those it has seen.
    next_group: u64,
}

enum Writer {
    Stream {
        groups: SubgroupsWriter,
        current: Option<OpenGroup>,
    },
    Datagram {
        writer: DatagramsWriter,
        object_id: u64,
    },
}

struct OpenGroup {
    writer: SubgroupWriter,
    objects: u64,
    bytes: u64,
}

impl Publisher {
    /// A publisher of `track` in `namespace` on `live`, the client's session (`None`: not
    /// connected), which must have announced `namespace`. The client's
    /// [`create_publisher`](super::Client::create_publisher) calls it, then remembers
    /// [`Publisher::shared`] for reconnects.
    pub(crate) fn create(
        live: Option<Arc<Live>>,
        config: &ClientConfig,
        runtime: tokio::runtime::Handle,
        namespace: &str,
        track: &str,
        options: PublisherOptions,
    ) -> Result<Publisher, PublishError> {
        check_track(namespace, track)?;
        let live = live.ok_or(PublishError::NotConnected)?;
        let send_budget = SendBudget::new(options.max_queued_bytes, MAX_QUEUED_SUBGROUPS);
        let history = (options.retain_groups > 0).then(|| {
            Arc::new(History::new(
                options.retain_groups,
                match options.retain_bytes {
                    0 => DEFAULT_RETAIN_BYTES,
                    bytes => bytes,
                },
                options.delivery == DeliveryMode::Datagram,
                options.priority,
            ))
        });
        let (writer, name) = live.create_track(namespace, track, history.clone())?;
        let new_group_requests = Arc::new(watch::channel((0, 0)).0);
        let writer = Writer::new(writer, &options, &send_budget, &new_group_requests)?;
        let shared = Arc::new(Shared {
            namespace: namespace.to_string(),
            track: track.to_string(),
            options,
            max_object_size: config.max_object_size,
            request_timeout: config.request_timeout,
            send_budget,
            binding: Mutex::new(Binding {
                live,
                writer: Some(writer),
                closed: false,
                _name: Some(name),
                next_group: 0,
            }),
            closing: Default::default(),
            new_group_requests,
            history,
        });
        Ok(Publisher { shared, runtime })
    }

    /// What the client keeps (weakly) to move this publisher onto a new session.
    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }
}

fn would_block(full: SendBudgetFull) -> PublishError {
    PublishError::WouldBlock {
        queued: full.queued,
        groups: full.groups,
        max: full.capacity,
        max_groups: full.max_groups,
    }
}

fn track_closed(err: moq_transport::serve::ServeError) -> PublishError {
    PublishError::TrackClosed {
        reason: err.to_string(),
    }
}

impl Writer {
    fn new(
        track: moq_transport::serve::TrackWriter,
        options: &PublisherOptions,
        send_budget: &Arc<SendBudget>,
        requests: &Arc<watch::Sender<(u64, u64)>>,
    ) -> Result<Self, PublishError> {
        if options.accept_new_group_requests && options.delivery == DeliveryMode::Stream {
            // Set before the track is served, so SUBSCRIBE_OK advertises it.
            let requests = requests.clone();
            track
                .enable_dynamic_groups(move |value| {
                    requests.send_modify(|(count, latest)| {
                        *count += 1;
                        *latest = value;
                    });
                    log::debug!("a subscriber asked for a new group (group {value} or later)");
                    std::future::ready(Ok(()))
                })
                .map_err(track_closed)?;
        }
        Ok(match options.delivery {
            DeliveryMode::Stream => Writer::Stream {
                groups: {
                    track.set_send_budget(send_budget.clone());
                    track.subgroups().map_err(track_closed)?
                },
                current: None,
            },
            DeliveryMode::Datagram => Writer::Datagram {
                writer: track.datagrams().map_err(track_closed)?,
                object_id: 0,
            },
        })
    }
}

impl Shared {
    pub(crate) fn namespace(&self) -> &str {
        &self.namespace
    }

    /// Continue on `live` after a reconnect (its namespace announced there again). The
    /// group open on the lost session is abandoned; the next object starts a new group.
    pub(crate) fn rebind(&self, live: &Arc<Live>) {
        let mut binding = lock(&self.binding);
        if binding.closed {
            return;
        }
        binding.live = live.clone();
        binding.writer = None;
        binding._name = None;
        let created = live
            .create_track(&self.namespace, &self.track, self.history.clone())
            .and_then(|(writer, name)| {
                let writer = Writer::new(
                    writer,
                    &self.options,
                    &self.send_budget,
                    &self.new_group_requests,
                )?;
                Ok((writer, name))
            });
        match created {
            Ok((writer, name)) => {
                binding.writer = Some(writer);
                binding._name = Some(name);
            }
            Err(err) => log::warn!(
                "publisher of '{}/{}' could not continue after reconnecting: {err}",
                super::error::shown(&self.namespace),
                super::error::shown(&self.track)
            ),
        }
    }
}

impl Publisher {
    /// The namespace this publisher publishes in.
    pub fn namespace(&self) -> &str {
        &self.shared.namespace
    }

    /// The track name.
    pub fn track(&self) -> &str {
        &self.shared.track
    }

    /// Whether an object of `size` bytes may be published (`max_object_size`): for callers
    /// that can refuse it before copying the payload.
    pub fn check_size(&self, size: usize) -> Result<(), PublishError> {
        let max = self.shared.max_object_size;
        if size > max {
            return Err(PublishError::ObjectTooLarge { size, max });
        }
        Ok(())
    }

    /// The options it was created with.
    pub fn options(&self) -> PublisherOptions {
        self.shared.options
    }

    /// Publish one object. Non-blocking: the object is queued for every subscriber and sent
    /// by the library runtime. Fails with `NotConnected` (the object is not sent) while the
    /// session is lost, including while reconnecting, and with `WouldBlock` (nothing
    /// published) while `max_queued_bytes` wait for the network.
    pub fn publish(&self, payload: impl Into<Bytes>) -> Result<ObjectLocation, PublishError> {
        let payload = payload.into();
        self.check_size(payload.len())?;
        let shared = &*self.shared;
        let mut binding = lock(&shared.binding);
        if binding.closed {
            return Err(PublishError::Closed);
        }
        if binding.live.is_lost() {
            return Err(PublishError::NotConnected);
        }
        let Binding {
            live,
            writer,
            next_group,
            ..
        } = &mut *binding;
        match writer.as_mut().ok_or(PublishError::NotConnected)? {
            Writer::Stream { groups, current } => {
                // First, so that a full queue has no side effect.
                let charge = shared
                    .send_budget
                    .try_charge(payload.len(), current.is_none())
                    .map_err(would_block)?;
                if current.is_none() {
                    let writer = groups
                        .create(Subgroup {
                            group_id: *next_group,
                            subgroup_id: 0,
                            priority: shared.options.priority,
                        })
                        .map_err(track_closed)?;
                    *next_group += 1;
                    *current = Some(OpenGroup {
                        writer,
                        objects: 0,
                        bytes: 0,
                    });
                }
                let group = current.as_mut().ok_or(PublishError::Closed)?;
                let location = ObjectLocation {
                    group_id: group.writer.group_id,
                    object_id: group.objects,
                };
                group.objects += 1;
                group.bytes += payload.len() as u64;
                // Kept once sent (a failed write keeps nothing); a clone of `Bytes` is a
                // reference count.
                let kept = shared.history.as_ref().map(|h| (h, payload.clone()));
                group
                    .writer
                    .write_charged_object(payload, charge)
                    .map_err(track_closed)?;
                if let Some((history, payload)) = kept {
                    history.record(location.group_id, location.object_id, &payload);
                }
                if group.objects >= shared.options.max_group_objects
                    || group.bytes >= shared.options.max_group_bytes
                {
                    if let Some(done) = current.take() {
                        finish(done);
                    }
                }
                Ok(location)
            }
            Writer::Datagram { writer, object_id } => {
                let limit = live
                    .max_datagram_size()
                    .saturating_sub(DATAGRAM_HEADER_ROOM);
                if payload.len() > limit {
                    return Err(PublishError::DatagramTooLarge {
                        size: payload.len(),
                        max: limit,
                    });
                }
                let location = ObjectLocation {
                    group_id: *next_group,
                    object_id: *object_id,
                };
                let kept = shared.history.as_ref().map(|h| (h, payload.clone()));
                writer
                    .write(Datagram {
                        group_id: *next_group,
                        object_id: *object_id,
                        priority: shared.options.priority,
                        status: ObjectStatus::NormalObject,
                        end_of_group: false,
                        payload,
                        extension_headers: Default::default(),
                    })
                    .map_err(track_closed)?;
                if let Some((history, payload)) = kept {
                    history.record(location.group_id, location.object_id, &payload);
                }
                *next_group += 1;
                Ok(location)
            }
        }
    }

    /// [`Self::publish`], first waiting while the queue toward the network is full: at most
    /// `timeout` (then `WouldBlock`), or as long as it takes with `None`; [`Self::close`] from
    /// another thread ends the wait with `Closed`. Cancel-safe: a dropped future publishes
    /// nothing.
    pub async fn publish_when_ready(
        &self,
        payload: impl Into<Bytes>,
        timeout: Option<Duration>,
    ) -> Result<ObjectLocation, PublishError> {
        let payload = payload.into();
        let deadline = timeout.map(|timeout| tokio::time::Instant::now() + timeout);
        loop {
            match self.publish(payload.clone()) {
                Err(err @ PublishError::WouldBlock { .. }) => {
                    let room = self.shared.send_budget.ready(self.next_starts_group());
                    let room = async {
                        match deadline {
                            None => {
                                room.await;
                                true
                            }
                            Some(deadline) => tokio::time::timeout_at(deadline, room).await.is_ok(),
                        }
                    };
                    tokio::select! {
                        // Closed meanwhile: the next publish says so.
                        _ = self.shared.closing.cancelled() => {}
                        in_time = room => if !in_time {
                            return Err(err);
                        }
                    }
                }
                other => return other,
            }
        }
    }

    /// Whether a subscription is being served (`Stream` mode: the relay subscribes for its
    /// subscribers; always false in `Datagram` mode, which does not track them).
    pub fn has_subscriber(&self) -> bool {
        self.shared.options.delivery == DeliveryMode::Stream
            && self.shared.send_budget.subscriptions() > 0
    }

    /// Wait until a subscription is served ([`Self::has_subscriber`]) and is still served
    /// [`SUBSCRIBER_SETTLE`] later, at most `timeout`; true if one is. What is published while
    /// nobody subscribes reaches nobody (a subscriber that arrives later starts at the newest
    /// group), so a publisher of a finite input (a file, a recording) can wait for its
    /// audience first. `Datagram` mode: false at once. [`Self::close`] ends the wait (false).
    ///
    /// Why the settle: moq-dev's relay probes a track (SUBSCRIBE, then cancel ~2 ms later)
    /// before it subscribes for real with a Largest Object filter; a publisher that started
    /// on the probe had its first group done before the real subscription came, and the
    /// relay's subscribers never got it.
    pub async fn wait_for_subscriber(&self, timeout: Duration) -> bool {
        if self.shared.options.delivery != DeliveryMode::Stream {
            return false;
        }
        let budget = &self.shared.send_budget;
        let settled = async {
            loop {
                budget.subscribed().await;
                tokio::time::sleep(SUBSCRIBER_SETTLE).await;
                if budget.subscriptions() > 0 {
                    return;
                }
            }
        };
        tokio::select! {
            _ = self.shared.closing.cancelled() => false,
            waited = tokio::time::timeout(timeout, settled) => {
                waited.is_ok() || self.has_subscriber()
            }
        }
    }

    /// Whether the next object starts a group (`Stream` mode).
    fn next_starts_group(&self) -> bool {
        matches!(
            lock(&self.shared.binding).writer,
            Some(Writer::Stream { current: None, .. })
        )
    }

    /// The client's `request_timeout`: how long a blocking publish waits for room.
    pub fn request_timeout(&self) -> Duration {
        self.shared.request_timeout
    }

    /// Bytes published and not yet handed to QUIC (`Stream` mode; see `max_queued_bytes`).
    pub fn queued_bytes(&self) -> usize {
        self.shared.send_budget.queued()
    }

    /// The new-group requests of this track's subscribers, from now on (needs
    /// [`PublisherOptions::accept_new_group_requests`]; otherwise none ever comes). Each call
    /// gives an independent receiver.
    pub fn new_group_requests(&self) -> NewGroupRequests {
        let requests = self.shared.new_group_requests.subscribe();
        let seen = requests.borrow().0;
        NewGroupRequests {
            requests,
            seen,
            closing: self.shared.closing.clone(),
        }
    }

    /// End the current group; the next object starts a new one (for example at a key frame).
    pub fn new_group(&self) -> Result<(), PublishError> {
        let mut binding = lock(&self.shared.binding);
        if binding.closed {
            return Err(PublishError::Closed);
        }
        if let Some(Writer::Stream { current, .. }) = binding.writer.as_mut() {
            if let Some(done) = current.take() {
                finish(done);
            }
        }
        Ok(())
    }

    /// End the track. Further publishes return `Closed`, and so do those waiting for room
    /// in [`Self::publish_when_ready`]. Idempotent.
    pub fn close(&self) {
        let writer = {
            let mut binding = lock(&self.shared.binding);
            binding.closed = true;
            binding._name = None;
            binding.writer.take()
        };
        self.shared.closing.cancel();
        if let Some(Writer::Stream {
            current: Some(done),
            ..
        }) = writer
        {
            finish(done);
        }
    }

    /// Whether the publisher can still publish (not closed, session alive).
    pub fn is_open(&self) -> bool {
        let binding = lock(&self.shared.binding);
        !binding.closed && binding.writer.is_some() && !binding.live.is_lost()
    }
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("namespace", &self.shared.namespace)
            .field("track", &self.shared.track)
            .field("delivery", &self.shared.options.delivery)
            .finish()
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        // May run on any thread; ending the track and releasing the session need the
        // runtime's context.
        let _entered = self.runtime.enter();
        self.close();
    }
}

/// Room for the datagram header (type, alias, group, object, priority varints).
const DATAGRAM_HEADER_ROOM: usize = 32;

fn finish(group: OpenGroup) {
    if let Err(err) = group.writer.finish() {
        log::debug!("finishing group failed: {err}");
    }
}
