//! Discovery of namespaces announced by others (SUBSCRIBE_NAMESPACE).
//!
//! A session may hold only one SUBSCRIBE_NAMESPACE per overlapping prefix, so each client
//! runs one hub: a single subscription to every namespace, shared by all watches, each of
//! which filters by its own prefix. The hub follows connects and reconnects, remembers the
//! namespaces currently announced (so a new watch starts with a snapshot) and reports them
//! withdrawn when the session is lost.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, Weak};

use moq_transport::coding::TrackNamespacePrefix;
use moq_transport::session::NamespaceEvent as WireEvent;
use tokio::sync::mpsc;

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
/// announced) and resumes after a reconnect. Dropping it stops the watch.
pub struct NamespaceWatch {
    events: mpsc::UnboundedReceiver<NamespaceEvent>,
    hub: Arc<Hub>,
    id: u64,
}

/// One client's shared namespace subscription.
pub(crate) struct Hub {
    state: Mutex<HubState>,
}

#[derive(Default)]
struct HubState {
    known: BTreeSet<String>,
    watchers: Vec<Watcher>,
    next_id: u64,
    task: Option<tokio::task::JoinHandle<()>>,
}

struct Watcher {
    id: u64,
    prefix: String,
    events: mpsc::UnboundedSender<NamespaceEvent>,
}

fn matches(prefix: &str, namespace: &str) -> bool {
    prefix.is_empty()
        || namespace == prefix
        || namespace
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('/'))
}

impl Hub {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(HubState::default()),
        })
    }

    fn publish(&self, event: NamespaceEvent) {
        let mut state = lock(&self.state);
        let namespace = match &event {
            NamespaceEvent::Announced(ns) => {
                if !state.known.insert(ns.clone()) {
                    return;
                }
                ns.clone()
            }
            NamespaceEvent::Withdrawn(ns) => {
                if !state.known.remove(ns) {
                    return;
                }
                ns.clone()
            }
        };
        state
            .watchers
            .retain(|w| !matches(&w.prefix, &namespace) || w.events.send(event.clone()).is_ok());
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
        let (tx, rx) = mpsc::unbounded_channel();
        let prefix = prefix.trim_matches('/').to_string();
        let mut state = lock(&hub.state);
        for namespace in state.known.iter().filter(|ns| matches(&prefix, ns)) {
            let _ = tx.send(NamespaceEvent::Announced(namespace.clone()));
        }
        let id = state.next_id;
        state.next_id += 1;
        state.watchers.push(Watcher {
            id,
            prefix,
            events: tx,
        });
        if state.task.is_none() {
            state.task = Some(tokio::spawn(follow(self.downgrade(), Arc::downgrade(&hub))));
        }
        drop(state);
        NamespaceWatch {
            events: rx,
            hub,
            id,
        }
    }
}

impl NamespaceWatch {
    /// The next event; `None` once the watch has stopped.
    pub async fn next(&mut self) -> Option<NamespaceEvent> {
        self.events.recv().await
    }

    /// Stop watching. Buffered events can still be read.
    pub fn close(&mut self) {
        lock(&self.hub.state).watchers.retain(|w| w.id != self.id);
        self.events.close();
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
    use super::{matches, path};
    use moq_transport::coding::{TrackNamespace, TupleField};

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
}
