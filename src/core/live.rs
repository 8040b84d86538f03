//! The client's session as the rest of the core sees it: its observable state
//! ([`ConnectionState`]) and one established session ([`Live`]) with what hangs off it (the
//! namespaces it announced, its request budget, the publisher and subscriber halves).
//!
//! Its own module so the parts that work on a session (publisher, subscription, discovery)
//! depend on it and not on the client that owns it: the client (`connection.rs`) depends on
//! them, never the other way round.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use moq_transport::serve::TracksWriter;
use moq_transport::session::transport::Session as TransportSession;
use tokio::sync::watch;
use web_transport_quinn::quinn;

use super::config::ClientConfig;
use super::history::History;
use crate::sync::lock;

/// The connection's observable state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConnectionState {
    /// Not connected: never connected, or closed by `close()`.
    Disconnected,
    /// A connect is in progress.
    Connecting,
    /// The session is established.
    Connected,
    /// The connect failed, or an established session was lost (relay gone, network dead,
    /// detected within the configured idle timeout).
    Failed,
}

/// The client's current session, for a task that follows the client across sessions without
/// holding it (discovery): `None` while not connected, or once the client is gone.
pub(crate) type CurrentLive = Arc<dyn Fn() -> Option<Arc<Live>> + Send + Sync>;

/// One established session. Shared by the publishers and subscribers created on it, so they
/// fail with `NotConnected` once it is lost, and never reach a later session by accident.
/// Its parts are dropped inside the runtime's context, on whichever thread lets go last.
pub(crate) struct Live(pub(crate) super::in_runtime::InRuntime<LiveParts>);

impl std::ops::Deref for Live {
    type Target = LiveParts;
    fn deref(&self) -> &LiveParts {
        &self.0
    }
}

/// What a [`Live`] session holds.
pub(crate) struct LiveParts {
    pub(crate) publisher: moq_transport::session::Publisher,
    pub(crate) subscriber: moq_transport::session::Subscriber,
    pub(crate) config: ClientConfig,
    /// The MoQT draft this session speaks.
    pub(crate) draft: u32,
    /// Which of the client's relays the session is with (0: `url`, then `fallback_urls`).
    pub(crate) relay: usize,
    pub(crate) session: TransportSession,
    pub(crate) endpoint: quinn::Endpoint,
    /// The QUIC connection under the session, for its statistics.
    pub(crate) connection: quinn::Connection,
    /// Received datagram objects discarded on this session (over `max_object_size`).
    pub(crate) datagrams_dropped: Arc<std::sync::atomic::AtomicU64>,
    pub(crate) lost: watch::Sender<bool>,
    pub(crate) announced: Mutex<HashMap<String, Announcement>>,
    /// Subscriptions whose reader the session takes as soon as their first group arrives.
    pub(crate) claiming_sessions: Arc<super::claiming_session::PendingReaders>,
    /// Whether losing this session starts a reconnect (the client's policy, unless closed).
    pub(crate) reconnects: bool,
    /// Requests sent on this session (see `ClientConfig::max_requests_per_session`).
    pub(crate) requests: std::sync::atomic::AtomicU64,
    /// Over draft 16, how many requests the relay allows (its MAX_REQUEST_ID).
    pub(crate) requests_allowed: Option<Arc<std::sync::atomic::AtomicU64>>,
    /// Streams this session's subscriptions may leave unread at once (see
    /// [`super::config::max_stalled_streams`]): shared by their receive budgets.
    pub(crate) stall_limit: Arc<moq_transport::serve::StallLimit>,
    pub(crate) supervisor: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// A namespace this client announced: the tracks it serves and the task answering SUBSCRIBEs.
pub(crate) struct Announcement {
    pub(crate) tracks: TracksWriter,
    /// The tracks published in it, each with what its publisher keeps for FETCH (if any).
    pub(crate) track_names: Arc<Mutex<HashMap<String, Option<Arc<History>>>>>,
    pub(crate) task: tokio::task::JoinHandle<()>,
}

impl Drop for Announcement {
    fn drop(&mut self) {
        // Dropping the task drops the PublishNamespace handle, which withdraws the namespace.
        self.task.abort();
    }
}

impl Live {
    /// Whether the session has ended (lost or closed).
    pub(crate) fn is_lost(&self) -> bool {
        *self.lost.borrow()
    }

    /// Resolves when the session ends (lost or closed).
    pub(crate) fn wait_lost(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut lost = self.lost.subscribe();
        async move {
            let _ = lost.wait_for(|lost| *lost).await.map(|_| ());
        }
    }

    pub(crate) fn mark_lost(&self) {
        self.lost.send_replace(true);
    }

    /// Create the track `name` in an announced namespace. Returns the track writer and a
    /// guard that frees the name when the publisher goes away.
    /// `history`: what the publisher keeps for FETCH, served on this session.
    pub(crate) fn create_track(
        &self,
        namespace: &str,
        name: &str,
        history: Option<Arc<History>>,
    ) -> Result<(moq_transport::serve::TrackWriter, TrackNameGuard), super::PublishError> {
        let mut announced = lock(&self.announced);
        let announcement =
            announced
                .get_mut(namespace)
                .ok_or_else(|| super::PublishError::NotAnnounced {
                    namespace: namespace.to_string(),
                })?;
        {
            let mut names = lock(&announcement.track_names);
            if names.contains_key(name) {
                return Err(super::PublishError::DuplicateTrack {
                    namespace: namespace.to_string(),
                    track: name.to_string(),
                });
            }
            names.insert(name.to_string(), history);
        }
        let guard = TrackNameGuard {
            names: announcement.track_names.clone(),
            name: name.to_string(),
        };
        let writer = announcement
            .tracks
            .create(name)
            .ok_or(super::PublishError::NotConnected)?;
        Ok((writer, guard))
    }

    /// What the publisher of `namespace`/`track` keeps for FETCH on this session: `None`
    /// when no such track is published here, `Some(None)` when its publisher keeps nothing.
    pub(crate) fn history(&self, namespace: &str, track: &str) -> Option<Option<Arc<History>>> {
        let announced = lock(&self.announced);
        let names = lock(&announced.get(namespace)?.track_names);
        names.get(track).cloned()
    }

    /// Count one request against the session's budget; `Err(limit)` (and nothing counted)
    /// once it is spent: the request must not be sent.
    pub(crate) fn take_request(&self) -> Result<(), u64> {
        let relay_allows = self
            .requests_allowed
            .as_ref()
            .map_or(u64::MAX, |allowed| allowed.load(Ordering::Acquire));
        let limit = self.config.max_requests_per_session.min(relay_allows);
        self.requests
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |sent| {
                (sent < limit).then_some(sent + 1)
            })
            .map(|_| ())
            .map_err(|_| limit)
    }

    /// Whether the relay limits how many requests this session may send (draft 16's
    /// MAX_REQUEST_ID), so retries should be sparing.
    pub(crate) fn requests_limited(&self) -> bool {
        self.requests_allowed.is_some()
    }

    /// Largest datagram payload the path currently allows.
    pub(crate) fn max_datagram_size(&self) -> usize {
        self.session.max_datagram_size()
    }

    pub(crate) fn shutdown(&self, code: u32, reason: &str) {
        self.mark_lost();
        lock(&self.announced).clear();
        self.session.close(code, reason);
        if let Some(task) = lock(&self.supervisor).take() {
            task.abort();
        }
    }
}

/// Frees a track name in its announcement when the publisher is dropped.
pub(crate) struct TrackNameGuard {
    names: Arc<Mutex<HashMap<String, Option<Arc<History>>>>>,
    name: String,
}

impl Drop for TrackNameGuard {
    fn drop(&mut self) {
        lock(&self.names).remove(&self.name);
    }
}
