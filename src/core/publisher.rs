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
use moq_transport::serve::{Datagram, DatagramsWriter, SubgroupWriter, SubgroupsWriter};

use super::connection::{lock, validate_namespace, Live, TrackNameGuard};
use super::error::PublishError;
use super::Client;

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
pub struct Publisher {
    namespace: String,
    track: String,
    options: PublisherOptions,
    live: Arc<Live>,
    state: Mutex<Option<Writer>>,
    _name: TrackNameGuard,
}

enum Writer {
    Stream {
        groups: SubgroupsWriter,
        current: Option<OpenGroup>,
    },
    Datagram {
        writer: DatagramsWriter,
        group_id: u64,
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
        validate_namespace(namespace).map_err(|reason| PublishError::InvalidName {
            name: namespace.to_string(),
            reason,
        })?;
        validate_track(track).map_err(|reason| PublishError::InvalidName {
            name: track.to_string(),
            reason,
        })?;
        let live = self.live().ok_or(PublishError::NotConnected)?;
        let (writer, name) = live.create_track(namespace, track)?;
        let closed = |err: moq_transport::serve::ServeError| PublishError::TrackClosed {
            reason: err.to_string(),
        };
        let writer = match options.delivery {
            DeliveryMode::Stream => Writer::Stream {
                groups: writer.subgroups().map_err(closed)?,
                current: None,
            },
            DeliveryMode::Datagram => Writer::Datagram {
                writer: writer.datagrams().map_err(closed)?,
                group_id: 0,
                object_id: 0,
            },
        };
        Ok(Publisher {
            namespace: namespace.to_string(),
            track: track.to_string(),
            options,
            live,
            state: Mutex::new(Some(writer)),
            _name: name,
        })
    }
}

/// Track-name syntax: non-empty, at most 4096 bytes.
pub(crate) fn validate_track(track: &str) -> Result<(), String> {
    if track.is_empty() {
        return Err("must not be empty".into());
    }
    if track.len() > 4096 {
        return Err("at most 4096 bytes".into());
    }
    Ok(())
}

impl Publisher {
    /// The namespace this publisher publishes in.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The track name.
    pub fn track(&self) -> &str {
        &self.track
    }

    /// The options it was created with.
    pub fn options(&self) -> PublisherOptions {
        self.options
    }

    /// Publish one object. Non-blocking: the object is queued for every subscriber and sent
    /// by the library runtime.
    pub fn publish(&self, payload: impl Into<Bytes>) -> Result<ObjectLocation, PublishError> {
        let payload = payload.into();
        let max = self.live.config.max_object_size;
        if payload.len() > max {
            return Err(PublishError::ObjectTooLarge {
                size: payload.len(),
                max,
            });
        }
        if self.live.is_lost() {
            return Err(PublishError::NotConnected);
        }
        let mut state = lock(&self.state);
        let writer = state.as_mut().ok_or(PublishError::Closed)?;
        let closed = |err: moq_transport::serve::ServeError| PublishError::TrackClosed {
            reason: err.to_string(),
        };
        match writer {
            Writer::Stream { groups, current } => {
                if current.is_none() {
                    *current = Some(OpenGroup {
                        writer: groups.append(self.options.priority).map_err(closed)?,
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
                group.writer.write(payload).map_err(closed)?;
                if group.objects >= self.options.max_group_objects
                    || group.bytes >= self.options.max_group_bytes
                {
                    if let Some(done) = current.take() {
                        finish(done);
                    }
                }
                Ok(location)
            }
            Writer::Datagram {
                writer,
                group_id,
                object_id,
            } => {
                let limit = self
                    .live
                    .max_datagram_size()
                    .saturating_sub(DATAGRAM_HEADER_ROOM);
                if payload.len() > limit {
                    return Err(PublishError::DatagramTooLarge {
                        size: payload.len(),
                        max: limit,
                    });
                }
                let location = ObjectLocation {
                    group_id: *group_id,
                    object_id: *object_id,
                };
                writer
                    .write(Datagram {
                        group_id: *group_id,
                        object_id: *object_id,
                        priority: self.options.priority,
                        status: ObjectStatus::NormalObject,
                        end_of_group: false,
                        payload,
                        extension_headers: Default::default(),
                    })
                    .map_err(closed)?;
                // One object per group: datagrams carry no ordering, and the id pair stays
                // unique and increasing.
                *group_id += 1;
                Ok(location)
            }
        }
    }

    /// End the current group; the next object starts a new one (for example at a key frame).
    pub fn new_group(&self) -> Result<(), PublishError> {
        let mut state = lock(&self.state);
        match state.as_mut().ok_or(PublishError::Closed)? {
            Writer::Stream { current, .. } => {
                if let Some(done) = current.take() {
                    finish(done);
                }
            }
            Writer::Datagram { .. } => {}
        }
        Ok(())
    }

    /// End the track. Further publishes return `Closed`. Idempotent.
    pub fn close(&self) {
        let writer = lock(&self.state).take();
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
        lock(&self.state).is_some() && !self.live.is_lost()
    }
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("namespace", &self.namespace)
            .field("track", &self.track)
            .field("delivery", &self.options.delivery)
            .finish()
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        // May run on any thread; ending the track and releasing the session need the
        // runtime's context.
        let runtime = super::runtime::handle().ok();
        let _entered = runtime.as_ref().map(|handle| handle.enter());
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
