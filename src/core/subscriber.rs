//! Subscribing to a track and receiving its objects in order.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use moq_transport::coding::{KeyValuePairs, TrackNamespace};
use moq_transport::serve::{ServeError, SubgroupObjectReader, Track, TrackReader, TrackReaderMode};
use moq_transport::session::Subscribe;
use tokio::sync::{mpsc, oneshot, watch};

use super::connection::{lock, validate_namespace, Live};
use super::error::SubscribeError;
use super::publisher::validate_track;
use super::Client;

/// One received object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Object {
    /// Group id.
    pub group_id: u64,
    /// Object id within the group.
    pub object_id: u64,
    /// The payload, exactly as published.
    pub payload: Bytes,
}

/// Options for [`Client::subscribe`].
#[derive(Debug, Clone, Copy)]
pub struct SubscriberOptions {
    /// Objects buffered between the network and the reader of this subscription. When the
    /// reader falls behind, delivery pauses (back-pressure on the QUIC streams) rather than
    /// dropping objects. Default 1,024.
    pub buffer: usize,
    /// Subscriber priority, 0 (highest) to 255. Default 128.
    pub priority: u8,
}

impl Default for SubscriberOptions {
    fn default() -> Self {
        Self {
            buffer: 1024,
            priority: 128,
        }
    }
}

/// An established subscription. Objects arrive in order through [`Subscriber::next`] or
/// [`Subscriber::next_batch`].
///
/// Dropping it unsubscribes (without waiting); [`Subscriber::close`] unsubscribes and waits
/// until the delivery task has stopped.
pub struct Subscriber {
    namespace: String,
    track: String,
    objects: mpsc::Receiver<Object>,
    end: Arc<Mutex<Option<Result<(), SubscribeError>>>>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    active: watch::Receiver<bool>,
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
        validate_namespace(namespace).map_err(|reason| SubscribeError::InvalidName {
            name: namespace.to_string(),
            reason,
        })?;
        validate_track(track).map_err(|reason| SubscribeError::InvalidName {
            name: track.to_string(),
            reason,
        })?;
        let live = self.live().ok_or(SubscribeError::NotConnected)?;
        let (subscribe, reader) = open(&live, namespace, track, options).await?;

        let (tx, rx) = mpsc::channel(options.buffer.max(1));
        let end = Arc::new(Mutex::new(None));
        let (stop_tx, stop_rx) = oneshot::channel();
        let (active_tx, active_rx) = watch::channel(true);
        let task = tokio::spawn(deliver(
            subscribe,
            reader,
            tx,
            live.clone(),
            stop_rx,
            end.clone(),
            active_tx,
        ));
        Ok(Subscriber {
            namespace: namespace.to_string(),
            track: track.to_string(),
            objects: rx,
            end,
            stop: Some(stop_tx),
            task: Some(task),
            active: active_rx,
        })
    }
}

/// SUBSCRIBE, retrying "not found" until the rendezvous deadline. The relay is also asked
/// to hold the request (RENDEZVOUS_TIMEOUT), but not every relay honours that parameter.
async fn open(
    live: &Live,
    namespace: &str,
    track: &str,
    options: SubscriberOptions,
) -> Result<(Subscribe, TrackReader), SubscribeError> {
    let config = &live.config;
    let started = Instant::now();
    let deadline = started + config.rendezvous_timeout;
    let mut backoff = Duration::from_millis(20);
    loop {
        let (writer, reader) =
            Track::new(TrackNamespace::from_utf8_path(namespace), track).produce();
        let mut params = KeyValuePairs::default();
        params.set_subscriber_priority(options.priority);
        let remaining = deadline.saturating_duration_since(Instant::now());
        if !remaining.is_zero() {
            // The relay caps this at 30 s.
            params.set_rendezvous_timeout(remaining.as_millis().min(30_000) as u64);
        }
        let mut subscriber = live.subscriber.clone();
        let bound = config.request_timeout + remaining;
        let attempt =
            tokio::time::timeout(bound, subscriber.subscribe_open_with_params(writer, params))
                .await;
        let err = match attempt {
            Err(_) => return Err(SubscribeError::Timeout { after: bound }),
            Ok(Ok(subscribe)) => return Ok((subscribe, reader)),
            Ok(Err(err)) => err,
        };
        if live.is_lost() {
            return Err(SubscribeError::NotConnected);
        }
        match err {
            ServeError::NotFound | ServeError::NotFoundWithId(..) | ServeError::Timeout
                if Instant::now() + backoff < deadline =>
            {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_millis(250));
            }
            ServeError::NotFound | ServeError::NotFoundWithId(..) | ServeError::Timeout => {
                return Err(SubscribeError::NotFound {
                    namespace: namespace.to_string(),
                    track: track.to_string(),
                    waited: started.elapsed(),
                })
            }
            ServeError::Duplicate => {
                return Err(SubscribeError::AlreadySubscribed {
                    namespace: namespace.to_string(),
                    track: track.to_string(),
                })
            }
            // Relays answer an unknown track with a closed request carrying a code.
            ServeError::Closed(code) if is_not_found_code(code) => {
                if Instant::now() + backoff < deadline {
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_millis(250));
                } else {
                    return Err(SubscribeError::NotFound {
                        namespace: namespace.to_string(),
                        track: track.to_string(),
                        waited: started.elapsed(),
                    });
                }
            }
            other => {
                return Err(SubscribeError::Refused {
                    reason: other.to_string(),
                })
            }
        }
    }
}

/// REQUEST_ERROR codes meaning "no such track/namespace (yet)": DOES_NOT_EXIST (0x10), the
/// legacy NOT_FOUND (0x4) and TIMEOUT (0x3, a relay's rendezvous hold expiring).
fn is_not_found_code(code: u64) -> bool {
    matches!(code, 0x3 | 0x4 | 0x10)
}

/// Read the track and hand objects to the subscriber's channel, in order.
async fn deliver(
    subscribe: Subscribe,
    reader: TrackReader,
    tx: mpsc::Sender<Object>,
    live: Arc<Live>,
    mut stop: oneshot::Receiver<()>,
    end: Arc<Mutex<Option<Result<(), SubscribeError>>>>,
    active: watch::Sender<bool>,
) {
    let max = live.config.max_object_size;
    let outcome = tokio::select! {
        result = read_track(reader, &tx, max) => result,
        _ = live.wait_lost() => Err(SubscribeError::ConnectionLost),
        _ = &mut stop => Ok(()),
    };
    if let Err(err) = &outcome {
        log::info!("subscription ended: {err}");
    }
    *lock(&end) = Some(outcome);
    active.send_replace(false);
    drop(tx);
    if !live.is_lost() {
        // Tell the publisher side; bounded so a dead relay cannot hold the task.
        let _ = tokio::time::timeout(Duration::from_secs(1), subscribe.unsubscribe()).await;
    }
}

async fn read_track(
    reader: TrackReader,
    tx: &mpsc::Sender<Object>,
    max: usize,
) -> Result<(), SubscribeError> {
    let lost = |err: ServeError| match err {
        ServeError::Done | ServeError::Cancel => Ok(()),
        other => Err(SubscribeError::PublisherLost {
            reason: other.to_string(),
        }),
    };
    let mode = match reader.mode().await {
        Ok(mode) => mode,
        Err(err) => return lost(err),
    };
    match mode {
        TrackReaderMode::Subgroups(mut groups) => loop {
            let group = match groups.next().await {
                Ok(Some(group)) => group,
                Ok(None) => return Ok(()),
                Err(err) => return lost(err),
            };
            let group_id = group.group_id;
            log::trace!("group {group_id} opened at object {}", group.pos());
            let mut group = group;
            loop {
                match group.next().await {
                    Ok(Some(object)) => {
                        let payload = read_object(object_checked(&object, max)?, object).await;
                        let payload = match payload {
                            Ok(payload) => payload,
                            Err(err) => {
                                log::debug!("object in group {group_id} incomplete: {err}");
                                break;
                            }
                        };
                        if tx.send(payload.with_group(group_id)).await.is_err() {
                            return Ok(()); // the subscriber went away
                        }
                    }
                    Ok(None) => {
                        log::trace!("group {group_id} complete");
                        break;
                    }
                    Err(err) => {
                        // A group cut short (reset stream): move on to the next group.
                        log::debug!("group {group_id} ended early: {err}");
                        break;
                    }
                }
            }
        },
        TrackReaderMode::Datagrams(mut datagrams) => loop {
            match datagrams.read().await {
                Ok(Some(datagram)) => {
                    if datagram.payload.len() > max {
                        log::warn!(
                            "dropping datagram of {} bytes (max_object_size {max})",
                            datagram.payload.len()
                        );
                        continue;
                    }
                    let object = Object {
                        group_id: datagram.group_id,
                        object_id: datagram.object_id,
                        payload: datagram.payload,
                    };
                    if tx.send(object).await.is_err() {
                        return Ok(());
                    }
                }
                Ok(None) => return Ok(()),
                Err(err) => return lost(err),
            }
        },
        TrackReaderMode::Stream(_) => Err(SubscribeError::Refused {
            reason: "publisher uses single-stream track mode, which is not supported".into(),
        }),
    }
}

/// Reject an object whose announced size exceeds the limit before reading it.
fn object_checked(object: &SubgroupObjectReader, max: usize) -> Result<u64, SubscribeError> {
    if object.size > max {
        return Err(SubscribeError::ObjectTooLarge {
            size: object.size,
            max,
        });
    }
    Ok(object.object_id)
}

struct PartialObject {
    object_id: u64,
    payload: Bytes,
}

impl PartialObject {
    fn with_group(self, group_id: u64) -> Object {
        Object {
            group_id,
            object_id: self.object_id,
            payload: self.payload,
        }
    }
}

/// Read a whole object without copying when it arrived in one chunk (the common case).
async fn read_object(
    object_id: u64,
    mut object: SubgroupObjectReader,
) -> Result<PartialObject, ServeError> {
    let first = object.read().await?.unwrap_or_default();
    let payload = match object.read().await? {
        None => first,
        Some(second) => {
            let mut joined = BytesMut::with_capacity(object.size);
            joined.extend_from_slice(&first);
            joined.extend_from_slice(&second);
            while let Some(chunk) = object.read().await? {
                joined.extend_from_slice(&chunk);
            }
            joined.freeze()
        }
    };
    Ok(PartialObject { object_id, payload })
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
        match self.objects.recv().await {
            Some(object) => Ok(Some(object)),
            None => self.finished(),
        }
    }

    /// Up to `max` objects at once (at least one, waiting for it), in order. An empty vector
    /// means the track ended normally.
    pub async fn next_batch(&mut self, max: usize) -> Result<Vec<Object>, SubscribeError> {
        let mut batch = Vec::with_capacity(max.clamp(1, 1024));
        if self.objects.recv_many(&mut batch, max.max(1)).await == 0 {
            self.finished::<()>()?;
        }
        Ok(batch)
    }

    /// The next object if one is already buffered, without waiting.
    pub fn try_next(&mut self) -> Option<Object> {
        self.objects.try_recv().ok()
    }

    fn finished<T>(&self) -> Result<Option<T>, SubscribeError> {
        match lock(&self.end).clone() {
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
        lock(&self.end).clone()
    }

    /// Unsubscribe and wait until the delivery task has stopped. Buffered objects can still
    /// be read afterwards. Idempotent.
    pub async fn close(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
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
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
