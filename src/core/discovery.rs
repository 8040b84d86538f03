//! Discovery of namespaces announced by others (SUBSCRIBE_NAMESPACE).

use moq_transport::coding::TrackNamespacePrefix;
use moq_transport::session::NamespaceEvent as WireEvent;
use tokio::sync::mpsc;

use super::connection::ConnectionState;
use super::Client;

/// A change in the set of namespaces announced under a watched prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NamespaceEvent {
    /// A namespace (`/`-joined) was announced.
    Announced(String),
    /// A namespace was withdrawn.
    Withdrawn(String),
}

/// Follows namespaces announced under a prefix, across connects: it starts delivering when
/// the client connects (or at once if it is connected) and resumes after a reconnect.
/// Dropping it stops the watch.
pub struct NamespaceWatch {
    events: mpsc::Receiver<NamespaceEvent>,
    task: tokio::task::JoinHandle<()>,
}

impl Client {
    /// Watch namespaces announced by other publishers under `prefix` (`""` for all).
    /// Must be called on the library runtime (or inside any tokio runtime).
    pub fn watch_namespaces(&self, prefix: &str) -> NamespaceWatch {
        let (tx, rx) = mpsc::channel(256);
        let task = tokio::spawn(follow(self.clone(), prefix.to_string(), tx));
        NamespaceWatch { events: rx, task }
    }
}

impl NamespaceWatch {
    /// The next event; `None` once the watch has stopped.
    pub async fn next(&mut self) -> Option<NamespaceEvent> {
        self.events.recv().await
    }

    /// Stop watching and wait until the task has stopped.
    pub async fn close(&mut self) {
        self.task.abort();
        let _ = (&mut self.task).await;
        self.events.close();
    }
}

impl Drop for NamespaceWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The watch keeps only a weak interest in the client's session: it re-subscribes on each
/// new session and ends when the client is gone.
async fn follow(client: Client, prefix: String, tx: mpsc::Sender<NamespaceEvent>) {
    let mut state = client.state_watch();
    loop {
        if state
            .wait_for(|s| *s == ConnectionState::Connected)
            .await
            .is_err()
        {
            return;
        }
        if let Some(live) = client.live() {
            let mut subscriber = live.subscriber.clone();
            let prefix_tuple = if prefix.is_empty() {
                TrackNamespacePrefix::new()
            } else {
                TrackNamespacePrefix::from_utf8_path(&prefix)
            };
            match subscriber
                .subscribe_namespace(prefix_tuple, Default::default())
                .await
            {
                Ok(handle) => {
                    let lost = live.wait_lost();
                    tokio::pin!(lost);
                    loop {
                        tokio::select! {
                            event = handle.next() => match event {
                                Ok(Some(WireEvent::Added(ns))) => {
                                    if tx.send(NamespaceEvent::Announced(ns.to_utf8_path())).await.is_err() { return; }
                                }
                                Ok(Some(WireEvent::Removed(ns))) => {
                                    if tx.send(NamespaceEvent::Withdrawn(ns.to_utf8_path())).await.is_err() { return; }
                                }
                                Ok(None) | Err(_) => break,
                            },
                            _ = &mut lost => break,
                            _ = tx.closed() => return,
                        }
                    }
                }
                Err(err) => log::warn!("namespace discovery for '{prefix}' refused: {err}"),
            }
        }
        // Wait for this session to end before trying again on the next one.
        let mut ended = state.clone();
        let _ = ended
            .wait_for(|s| *s != ConnectionState::Connected)
            .await;
        state = ended;
    }
}

impl NamespaceWatch {
    /// Whether the watch task is still running.
    pub fn is_running(&self) -> bool {
        !self.task.is_finished()
    }
}
