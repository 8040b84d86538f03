//! Discovery of namespaces announced by others (SUBSCRIBE_NAMESPACE).
//!
//! A session may hold only one SUBSCRIBE_NAMESPACE per overlapping prefix, so each client
//! runs one hub: a single subscription to every namespace, shared by all watches, each of
//! which filters by its own prefix. The hub follows connects and reconnects, remembers the
//! namespaces currently announced (so a new watch starts with a snapshot) and reports them
//! withdrawn when the session is lost.
//!
//! Memory is bounded whatever the peers announce and however slowly an app reads:
//! - the hub remembers at most `ClientConfig::max_announced_namespaces`; announcements past
//!   it are ignored (with a warning) until some are withdrawn;
//! - a watch queues at most one pending change per namespace: changes the app has not read
//!   yet are coalesced, so a namespace announced and withdrawn in between is not reported
//!   at all, and what the app reads always converges on the announced set. A watch thus
//!   holds at most the namespaces announced plus those it last reported announced.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex, Weak};

use moq_transport::coding::TrackNamespacePrefix;
use moq_transport::session::NamespaceEvent as WireEvent;
use tokio::sync::Notify;

use super::connection::{ConnectionState, WeakClient};
use super::Client;
use crate::sync::lock;

/// A change in the set of namespaces announced under a watched prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NamespaceEvent {
    /// A namespace (`/`-joined) was announced.
    Announced(String),
    /// A namespace was withdrawn (or the session that reported it was lost).
    Withdrawn(String),
}

/// Follows namespaces announced under a prefix, across connects: it starts delivering when
/// the client connects (or at once if it is connected, beginning with those already
/// announced) and resumes after a reconnect. Changes not read yet are coalesced per
/// namespace (see the module doc). Dropping it stops the watch.
pub struct NamespaceWatch {
    queue: Arc<WatchQueue>,
    hub: Arc<Hub>,
    id: u64,
}

/// One client's shared namespace subscription.
pub(crate) struct Hub {
    state: Mutex<HubState>,
    limit: usize,
}

#[derive(Default)]
struct HubState {
    known: BTreeSet<String>,
    watchers: Vec<Watcher>,
    next_id: u64,
    task: Option<tokio::task::JoinHandle<()>>,
    /// Whether the "too many namespaces" warning was given since the set last had room.
    warned_full: bool,
}

struct Watcher {
    id: u64,
    prefix: String,
    queue: Arc<WatchQueue>,
}

/// A watch's unread changes, shared by the hub (writer) and the watch (reader).
#[derive(Default)]
struct WatchQueue {
    pending: Mutex<Pending>,
    ready: Notify,
}

/// Unread changes, at most one per namespace, in the order they first became unread.
#[derive(Default)]
struct Pending {
    /// Announced, as far as the reader has been told.
    reported: HashSet<String>,
    /// Namespaces whose state differs from `reported`, with their place in `order`.
    changed: HashMap<String, u64>,
    order: BTreeMap<u64, String>,
    next_seq: u64,
    closed: bool,
}

impl Pending {
    fn record(&mut self, namespace: &str, announced: bool) {
        let differs = self.reported.contains(namespace) != announced;
        match (self.changed.get(namespace).copied(), differs) {
            // Back to what the reader knows: nothing to report.
            (Some(seq), false) => {
                self.changed.remove(namespace);
                self.order.remove(&seq);
            }
            (None, true) => {
                let seq = self.next_seq;
                self.next_seq += 1;
                self.changed.insert(namespace.to_string(), seq);
                self.order.insert(seq, namespace.to_string());
            }
            _ => {}
        }
    }

    fn take(&mut self) -> Option<NamespaceEvent> {
        let (_, namespace) = self.order.pop_first()?;
        self.changed.remove(&namespace);
        if self.reported.remove(&namespace) {
            Some(NamespaceEvent::Withdrawn(namespace))
        } else {
            self.reported.insert(namespace.clone());
            Some(NamespaceEvent::Announced(namespace))
        }
    }
}

impl WatchQueue {
    fn record(&self, namespace: &str, announced: bool) {
        lock(&self.pending).record(namespace, announced);
        self.ready.notify_one();
    }
}

fn matches(prefix: &str, namespace: &str) -> bool {
    prefix.is_empty()
        || namespace == prefix
        || namespace
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('/'))
}

impl Hub {
    pub(crate) fn new(limit: usize) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(HubState::default()),
            limit,
        })
    }

    fn publish(&self, event: NamespaceEvent) {
        let mut state = lock(&self.state);
        let (namespace, announced) = match &event {
            NamespaceEvent::Announced(ns) => {
                if state.known.contains(ns) {
                    return;
                }
                if state.known.len() >= self.limit {
                    if !std::mem::replace(&mut state.warned_full, true) {
                        log::warn!(
                            "{} namespaces announced (max_announced_namespaces); ignoring further announcements until some are withdrawn",
                            self.limit
                        );
                    }
                    return;
                }
                state.known.insert(ns.clone());
                (ns, true)
            }
            NamespaceEvent::Withdrawn(ns) => {
                if !state.known.remove(ns) {
                    return;
                }
                state.warned_full = false;
                (ns, false)
            }
        };
        for watcher in state
            .watchers
            .iter()
            .filter(|w| matches(&w.prefix, namespace))
        {
            watcher.queue.record(namespace, announced);
        }
    }

    fn withdraw_all(&self) {
        let known: Vec<String> = lock(&self.state).known.iter().cloned().collect();
        for namespace in known {
            self.publish(NamespaceEvent::Withdrawn(namespace));
        }
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        if let Some(task) = lock(&self.state).task.take() {
            task.abort();
        }
    }
}

impl Client {
    /// Watch namespaces announced by other publishers under `prefix` (`""` for all).
    /// Must be called inside a tokio runtime (the library runtime or any other).
    pub fn watch_namespaces(&self, prefix: &str) -> NamespaceWatch {
        let hub = self.hub();
        let queue = Arc::new(WatchQueue::default());
        let prefix = prefix.trim_matches('/').to_string();
        let mut state = lock(&hub.state);
        for namespace in state.known.iter().filter(|ns| matches(&prefix, ns)) {
            queue.record(namespace, true);
        }
        let id = state.next_id;
        state.next_id += 1;
        state.watchers.push(Watcher {
            id,
            prefix,
            queue: queue.clone(),
        });
        if state.task.is_none() {
            state.task = Some(tokio::spawn(follow(self.downgrade(), Arc::downgrade(&hub))));
        }
        drop(state);
        NamespaceWatch { queue, hub, id }
    }
}

impl NamespaceWatch {
    /// The next event; `None` once the watch has stopped and what it held has been read.
    pub async fn next(&mut self) -> Option<NamespaceEvent> {
        loop {
            {
                let mut pending = lock(&self.queue.pending);
                if let Some(event) = pending.take() {
                    return Some(event);
                }
                if pending.closed {
                    return None;
                }
            }
            // `notify_one` stores a permit when nobody waits, so a change recorded between
            // the check above and this wait is not missed.
            self.queue.ready.notified().await;
        }
    }

    /// Stop watching. Changes already queued can still be read.
    pub fn close(&mut self) {
        lock(&self.hub.state).watchers.retain(|w| w.id != self.id);
        lock(&self.queue.pending).closed = true;
        self.queue.ready.notify_one();
    }
}

impl Drop for NamespaceWatch {
    fn drop(&mut self) {
        self.close();
    }
}

/// The hub task: subscribe to every namespace on each new session. Holds the client weakly
/// so watches never keep a dropped client's session alive.
async fn follow(client: WeakClient, hub: Weak<Hub>) {
    let Some(mut state) = client.upgrade().map(|c| c.state_watch()) else {
        return;
    };
    loop {
        if state
            .wait_for(|s| *s == ConnectionState::Connected)
            .await
            .is_err()
        {
            return; // the client is gone
        }
        let live = client.upgrade().and_then(|c| c.live());
        let live = live.filter(|live| match live.take_request() {
            Ok(()) => true,
            Err(limit) => {
                log::warn!("namespace discovery not started: this session has sent {limit} requests (max_requests_per_session)");
                false
            }
        });
        if let Some(live) = live {
            let mut subscriber = live.subscriber.clone();
            match subscriber
                .subscribe_namespace(TrackNamespacePrefix::new(), Default::default())
                .await
            {
                Ok(handle) => {
                    let lost = live.wait_lost();
                    drop(live);
                    tokio::pin!(lost);
                    loop {
                        let event = tokio::select! {
                            event = handle.next() => event,
                            _ = &mut lost => break,
                        };
                        let Some(hub) = hub.upgrade() else { return };
                        match event {
                            Ok(Some(WireEvent::Added(ns))) => {
                                if let Some(ns) = path(&ns) {
                                    hub.publish(NamespaceEvent::Announced(ns))
                                }
                            }
                            Ok(Some(WireEvent::Removed(ns))) => {
                                if let Some(ns) = path(&ns) {
                                    hub.publish(NamespaceEvent::Withdrawn(ns))
                                }
                            }
                            Ok(None) | Err(_) => break,
                        }
                    }
                }
                Err(err) => log::warn!("namespace discovery refused: {err}"),
            }
        }
        if let Some(hub) = hub.upgrade() {
            hub.withdraw_all();
        }
        // Wait for this session to end before subscribing on the next one.
        if state
            .wait_for(|s| *s != ConnectionState::Connected)
            .await
            .is_err()
        {
            return;
        }
    }
}

/// The namespace as this library names namespaces: its fields joined by `/`. `None` (and
/// logged) for one that has no such name: a field that is not UTF-8, or contains `/` or NUL,
/// would alias another namespace (`["a/b"]` and `["a", "b"]` are both "a/b") or could not
/// cross the C ABI, and could not be subscribed to by name anyway.
fn path(namespace: &moq_transport::coding::TrackNamespace) -> Option<String> {
    let mut fields = Vec::with_capacity(namespace.fields.len());
    for field in &namespace.fields {
        match std::str::from_utf8(&field.value) {
            Ok(text) if !text.contains(['/', '\0']) => fields.push(text),
            _ => {
                let lossy = namespace.to_utf8_path();
                log::debug!(
                    "skipping announced namespace '{}': a field is not UTF-8 or contains '/' or NUL",
                    super::error::shown(&lossy)
                );
                return None;
            }
        }
    }
    Some(fields.join("/"))
}

#[cfg(test)]
mod tests {
    use super::{matches, path, Hub, NamespaceEvent, Pending, WatchQueue, Watcher};
    use moq_transport::coding::{TrackNamespace, TupleField};
    use std::sync::Arc;

    fn namespace(fields: &[&[u8]]) -> TrackNamespace {
        TrackNamespace {
            fields: fields
                .iter()
                .map(|f| TupleField { value: f.to_vec() })
                .collect(),
        }
    }

    #[test]
    fn namespaces_without_a_faithful_name_are_skipped_not_aliased() {
        assert_eq!(path(&namespace(&[b"a", b"b"])).as_deref(), Some("a/b"));
        assert_eq!(path(&namespace(&[b"a/b"])), None, "would alias [a, b]");
        assert_eq!(path(&namespace(&[b"a\0b"])), None, "cannot cross the C ABI");
        assert_eq!(path(&namespace(&[b"\xff"])), None, "not UTF-8");
    }

    #[test]
    fn prefixes_match_whole_fields() {
        assert!(matches("", "a/b"));
        assert!(matches("a", "a/b"));
        assert!(matches("a/b", "a/b"));
        assert!(!matches("a", "ab/c"));
        assert!(!matches("a/b/c", "a/b"));
    }

    fn drain(pending: &mut Pending) -> Vec<NamespaceEvent> {
        std::iter::from_fn(|| pending.take()).collect()
    }

    #[test]
    fn unread_changes_coalesce_per_namespace_and_converge_on_the_announced_set() {
        let mut pending = Pending::default();
        pending.record("a", true);
        pending.record("b", true);
        pending.record("a", false); // announced and withdrawn unread: nothing to report
        pending.record("c", true);
        assert_eq!(
            drain(&mut pending),
            [
                NamespaceEvent::Announced("b".into()),
                NamespaceEvent::Announced("c".into())
            ]
        );
        pending.record("b", false);
        pending.record("b", true); // back to what the reader knows
        pending.record("c", false);
        assert_eq!(drain(&mut pending), [NamespaceEvent::Withdrawn("c".into())]);
    }

    #[test]
    fn a_watch_that_never_reads_holds_one_change_per_namespace() {
        let mut pending = Pending::default();
        for round in 0..1000 {
            for i in 0..10 {
                pending.record(&format!("ns/{i}"), round % 2 == 0);
                pending.record(&format!("flap/{round}"), true);
                pending.record(&format!("flap/{round}"), false);
            }
        }
        assert!(pending.changed.len() <= 10 && pending.order.len() <= 10);
        assert!(
            drain(&mut pending).is_empty(),
            "1,000 rounds end where they began"
        );
    }

    #[test]
    fn announcements_past_the_limit_are_ignored_until_one_is_withdrawn() {
        let hub = Hub::new(2);
        let queue = Arc::new(WatchQueue::default());
        super::lock(&hub.state).watchers.push(Watcher {
            id: 0,
            prefix: String::new(),
            queue: queue.clone(),
        });
        for ns in ["a", "b", "c"] {
            hub.publish(NamespaceEvent::Announced(ns.into()));
        }
        hub.publish(NamespaceEvent::Withdrawn("a".into()));
        hub.publish(NamespaceEvent::Announced("d".into()));
        let events = drain(&mut super::lock(&queue.pending));
        assert_eq!(
            events,
            [
                NamespaceEvent::Announced("b".into()),
                NamespaceEvent::Announced("d".into())
            ]
        );
        assert_eq!(super::lock(&hub.state).known.len(), 2);
    }
}
