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
//! is the only one (see `early_reader`), but a relay that has just subscribed upstream can
//! still drop the start of a burst of many short groups. An open group, by contrast, is
//! handed whole to every reader that joins while it is open (readers start from the open
//! groups, then follow new ones), so long groups keep every hop safe.
//! Bounding groups keeps the per-group memory the publisher and relay retain for late
//! joiners bounded too.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use moq_transport::data::ObjectStatus;
use moq_transport::serve::{Datagram, DatagramsWriter, Subgroup, SubgroupWriter, SubgroupsWriter};

use super::connection::{Live, TrackNameGuard};
use super::error::PublishError;
use super::names::check_track;
use super::Client;
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

/// Options for [`Client::create_publisher`].
#[derive(Debug, Clone, Copy)]
pub struct PublisherOptions {
    /// Delivery mode. Default `Stream`.
    pub delivery: DeliveryMode,
    /// Publisher priority, 0 (highest) to 255. Default 128.
    pub priority: u8,
    /// A group is closed after this many objects. Default 65,536 (few, long groups: see the
    /// module docs).
    pub max_group_objects: u64,
    /// A group is closed once it holds this many payload bytes. Default 64 MiB.
    pub max_group_bytes: u64,
}

impl Default for PublisherOptions {
    fn default() -> Self {
        Self {
            delivery: DeliveryMode::Stream,
            priority: 128,
            max_group_objects: 65_536,
            max_group_bytes: 64 * 1024 * 1024,
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
    binding: Mutex<Binding>,
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

impl Client {
    /// Create a publisher for `track` in `namespace`, which this client must have announced.
    pub fn create_publisher(
        &self,
        namespace: &str,
        track: &str,
        options: PublisherOptions,
    ) -> Result<Publisher, PublishError> {
        check_track(namespace, track)
            .map_err(|(name, reason)| PublishError::InvalidName { name, reason })?;
        let live = self.live().ok_or(PublishError::NotConnected)?;
        let (writer, name) = live.create_track(namespace, track)?;
        let writer = Writer::new(writer, options.delivery)?;
        let shared = Arc::new(Shared {
            namespace: namespace.to_string(),
            track: track.to_string(),
            options,
            max_object_size: self.config().max_object_size,
            binding: Mutex::new(Binding {
                live,
                writer: Some(writer),
                closed: false,
                _name: Some(name),
                next_group: 0,
            }),
        });
        self.remember_publisher(&shared);
        Ok(Publisher {
            shared,
            runtime: self.runtime().clone(),
        })
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
        delivery: DeliveryMode,
    ) -> Result<Self, PublishError> {
        Ok(match delivery {
            DeliveryMode::Stream => Writer::Stream {
                groups: track.subgroups().map_err(track_closed)?,
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
            .create_track(&self.namespace, &self.track)
            .and_then(|(writer, name)| Ok((Writer::new(writer, self.options.delivery)?, name)));
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
    /// session is lost, including while reconnecting.
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
                group.writer.write(payload).map_err(track_closed)?;
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
                *next_group += 1;
                Ok(location)
            }
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

    /// End the track. Further publishes return `Closed`. Idempotent.
    pub fn close(&self) {
        let writer = {
            let mut binding = lock(&self.shared.binding);
            binding.closed = true;
            binding._name = None;
            binding.writer.take()
        };
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
