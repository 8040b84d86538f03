//! Discovery of namespaces announced by others (SUBSCRIBE_NAMESPACE).
//!
//! Each client runs one hub, shared by all its watches: it holds one SUBSCRIBE_NAMESPACE per
//! prefix the watches need (the broadest of overlapping ones: a session may not hold two
//! overlapping prefixes), so the relay sends only namespaces some watch asked for. Each watch
//! filters by its own prefix. The hub follows connects and reconnects, remembers the
//! namespaces currently announced under its prefixes (so a new watch starts with a snapshot)
//! and reports them withdrawn when the session is lost.
//!
//! The prefixes follow the watches: a watch whose prefix no subscription covers adds one; a
//! subscription stays while any watch is under it. A new watch broader than a held prefix
//! replaces it, so the watches under the old prefix see its namespaces withdrawn and announced
//! again (coalesced away if they had not read them yet).
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
use std::time::Duration;

use moq_transport::coding::TrackNamespacePrefix;
use moq_transport::session::NamespaceEvent as WireEvent;
use tokio::sync::{watch, Notify};
use tokio_util::task::AbortOnDropHandle;

use super::live::{ConnectionState, CurrentLive, Live};
use super::names::path;
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

/// One client's shared namespace subscriptions.
pub(crate) struct Hub {
    state: Mutex<HubState>,
    limit: usize,
    /// Woken when a watch starts or stops, so the hub task re-plans its prefixes. Its own
    /// `Arc`: the task waits on it without holding the hub.
    watches_changed: Arc<Notify>,
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
            watches_changed: Arc::new(Notify::new()),
        })
    }

    /// The prefixes watched now (each once).
    fn watched(&self) -> Vec<String> {
        let state = lock(&self.state);
        let prefixes: BTreeSet<&String> = state.watchers.iter().map(|w| &w.prefix).collect();
        prefixes.into_iter().cloned().collect()
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
        self.withdraw_under("");
    }

    /// Report withdrawn every namespace known under `prefix` (its subscription ended).
    fn withdraw_under(&self, prefix: &str) {
        let known: Vec<String> = lock(&self.state)
            .known
            .iter()
            .filter(|ns| matches(prefix, ns))
            .cloned()
            .collect();
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

impl Hub {
    /// A watch of the namespaces announced under `prefix` (`""` for all): the client's
    /// [`watch_namespaces`](super::Client::watch_namespaces). `state_changes` follows the client's
    /// connection and `current` gives its session; the task that holds the subscriptions
    /// the watches need (one per hub) holds neither the client nor the hub. Must be called
    /// inside a tokio runtime.
    pub(crate) fn watch(
        self: &Arc<Self>,
        prefix: &str,
        state_changes: watch::Receiver<ConnectionState>,
        current: CurrentLive,
    ) -> NamespaceWatch {
        let hub = self.clone();
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
            state.task = Some(tokio::spawn(follow(
                state_changes,
                current,
                Arc::downgrade(&hub),
                hub.watches_changed.clone(),
            )));
        }
        drop(state);
        hub.watches_changed.notify_one();
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
        self.hub.watches_changed.notify_one();
        lock(&self.queue.pending).closed = true;
        self.queue.ready.notify_one();
    }
}

impl Drop for NamespaceWatch {
    fn drop(&mut self) {
        self.close();
    }
}

/// The hub task: on each new session, hold the subscriptions the watches need. Holds the
/// client and the hub weakly so watches never keep a dropped client's session alive.
async fn follow(
    mut state: watch::Receiver<ConnectionState>,
    current: CurrentLive,
    hub: Weak<Hub>,
    watches_changed: Arc<Notify>,
) {
    loop {
        if state
            .wait_for(|s| *s == ConnectionState::Connected)
            .await
            .is_err()
        {
            return; // the client is gone
        }
        if let Some(live) = current() {
            follow_session(live, &hub, &watches_changed).await;
        }
        let Some(strong) = hub.upgrade() else { return };
        strong.withdraw_all();
        drop(strong);
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

/// Hold one subscription per planned prefix on `live`'s session until it is lost (or the hub
/// is gone), re-planning whenever a watch starts or stops.
async fn follow_session(live: Arc<Live>, hub: &Weak<Hub>, watches_changed: &Notify) {
    let lost = live.wait_lost();
    let live = Arc::downgrade(&live);
    tokio::pin!(lost);
    let mut held: BTreeMap<String, AbortOnDropHandle<()>> = BTreeMap::new();
    loop {
        let Some(watched) = hub.upgrade().map(|hub| hub.watched()) else {
            return;
        };
        let current: BTreeSet<String> = held.keys().cloned().collect();
        let planned = plan(&current, &watched);
        for prefix in current.difference(&planned) {
            if let Some(task) = held.remove(prefix) {
                task.abort();
                let _ = task.await; // its subscription is gone before an overlapping one starts
            }
            if let Some(hub) = hub.upgrade() {
                hub.withdraw_under(prefix);
            }
        }
        for prefix in planned.difference(&current) {
            let task = tokio::spawn(hold_prefix(live.clone(), prefix.clone(), hub.clone()));
            held.insert(prefix.clone(), AbortOnDropHandle::new(task));
        }
        tokio::select! {
            _ = watches_changed.notified() => {}
            _ = &mut lost => return,
        }
    }
}

/// The prefixes to hold, given those `held` now and those `watched`: a held prefix stays
/// while a watch is under it; each watched prefix under none of those is covered by the
/// broadest new prefix over it; a held prefix under a new one goes (a session may not hold
/// overlapping prefixes). Prefixes that cannot name a namespace are left out.
fn plan(held: &BTreeSet<String>, watched: &[String]) -> BTreeSet<String> {
    let watched: Vec<&String> = watched
        .iter()
        .filter(|prefix| prefix.is_empty() || super::names::validate_namespace(prefix).is_ok())
        .collect();
    let mut keep: BTreeSet<String> = held
        .iter()
        .filter(|h| watched.iter().any(|p| matches(h, p)))
        .cloned()
        .collect();
    let mut uncovered: Vec<&String> = watched
        .into_iter()
        .filter(|p| !keep.iter().any(|k| matches(k, p)))
        .collect();
    // Broader first: a prefix is shorter than every prefix under it.
    uncovered.sort_by_key(|p| p.len());
    let mut new: BTreeSet<String> = BTreeSet::new();
    for prefix in uncovered {
        if !new.iter().any(|n| matches(n, prefix)) {
            new.insert(prefix.clone());
        }
    }
    keep.retain(|k| !new.iter().any(|n| matches(n, k)));
    keep.extend(new);
    keep
}

/// How often a refused SUBSCRIBE_NAMESPACE is tried again: the relay refuses a prefix that
/// overlaps one whose subscription this client has just ended, until it has seen that end.
const SUBSCRIBE_ATTEMPTS: u32 = 6;

/// Subscribe to `prefix` and report what the relay announces under it, until the relay ends
/// the subscription or the task is aborted.
async fn hold_prefix(live: Weak<Live>, prefix: String, hub: Weak<Hub>) {
    let mut retry = Duration::from_millis(50);
    let mut attempt = 1;
    let handle = loop {
        let Some(subscriber) = live.upgrade().and_then(|live| match live.take_request() {
            Ok(()) => Some(live.subscriber.clone()),
            Err(limit) => {
                log::warn!("namespace discovery under '{}' not started: this session has sent {limit} requests (max_requests_per_session)", super::error::shown(&prefix));
                None
            }
        }) else {
            return;
        };
        let mut subscriber = subscriber;
        match subscriber
            .subscribe_namespace(
                TrackNamespacePrefix::from_utf8_path(&prefix),
                Default::default(),
            )
            .await
        {
            Ok(handle) => break handle,
            Err(err) if attempt < SUBSCRIBE_ATTEMPTS => {
                log::debug!(
                    "namespace discovery under '{}' refused ({err}); trying again",
                    super::error::shown(&prefix)
                );
                tokio::time::sleep(retry).await;
                retry *= 2;
                attempt += 1;
            }
            Err(err) => {
                log::warn!(
                    "namespace discovery under '{}' refused: {err}",
                    super::error::shown(&prefix)
                );
                return;
            }
        }
    };
    loop {
        let event = handle.next().await;
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
            Ok(None) | Err(_) => {
                // The relay ended it: what it reported is no longer followed.
                hub.withdraw_under(&prefix);
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::names::path;
    use super::{matches, plan, Hub, NamespaceEvent, Pending, WatchQueue, Watcher};
    use moq_transport::coding::{TrackNamespace, TupleField};
    use std::collections::BTreeSet;
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
    fn the_hub_holds_the_broadest_of_overlapping_prefixes_and_what_is_still_needed() {
        let set = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
        let watched = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let none = set(&[]);
        assert_eq!(
            plan(&none, &watched(&["a/b", "a", "c", "ab"])),
            set(&["a", "ab", "c"])
        );
        // A broader watch replaces a held prefix; a held one stays while a watch is under it.
        assert_eq!(plan(&set(&["a/b"]), &watched(&["a/b", "a"])), set(&["a"]));
        assert_eq!(plan(&set(&["a"]), &watched(&["a/b"])), set(&["a"]));
        assert_eq!(plan(&set(&["a", "c"]), &watched(&["c/d"])), set(&["c"]));
        assert_eq!(plan(&set(&["a"]), &watched(&["", "a"])), set(&[""]));
        assert_eq!(plan(&set(&["x"]), &watched(&[])), none);
        // A prefix no namespace can have (33 fields) is not sent.
        assert_eq!(plan(&none, &watched(&[&["f"; 33].join("/")])), none);
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
