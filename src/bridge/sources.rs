//! The [`Source`]s both faces deliver from: connection state changes, namespace events, and
//! a subscription's objects.

use std::future::Future;
use std::pin::Pin;

use tokio::sync::watch;

use super::pump::Source;
use crate::core::{self, ConnectionState, NamespaceEvent, Object, SubscribeError};

/// A client's connection state: the current state first, then every change (latest-value:
/// a quick flip may be coalesced).
pub(crate) struct StateChanges {
    states: watch::Receiver<ConnectionState>,
    started: bool,
}

impl StateChanges {
    pub fn of(client: &core::Client) -> Self {
        Self {
            states: client.state_watch(),
            started: false,
        }
    }
}

impl Source for StateChanges {
    type Item = ConnectionState;

    async fn next(&mut self) -> Option<ConnectionState> {
        if std::mem::replace(&mut self.started, true) {
            self.states.changed().await.ok()?;
        }
        Some(*self.states.borrow_and_update())
    }
}

/// Namespaces announced by others under a prefix (see [`core::Client::watch_namespaces`]);
/// the watch is opened on the pump's thread, inside the runtime.
pub(crate) struct Namespaces {
    client: core::Client,
    prefix: String,
    watch: Option<core::NamespaceWatch>,
}

impl Namespaces {
    pub fn of(client: core::Client, prefix: String) -> Self {
        Self {
            client,
            prefix,
            watch: None,
        }
    }
}

impl Source for Namespaces {
    type Item = NamespaceEvent;

    async fn next(&mut self) -> Option<NamespaceEvent> {
        let watch = self
            .watch
            .get_or_insert_with(|| self.client.watch_namespaces(&self.prefix));
        watch.next().await
    }
}

/// What a subscription delivers.
pub(crate) enum SubscriptionEvent {
    /// The relay accepted the subscription (only for [`Subscription::open`]); the closer
    /// reads its counters from any thread.
    Established(core::SubscriberCloser),
    /// The next objects, in order.
    Objects(Vec<Object>),
    /// The subscription ended: normally (`None`) or with an error. Nothing follows.
    End(Option<SubscribeError>),
}

type Opening = Pin<Box<dyn Future<Output = Result<core::Subscriber, SubscribeError>> + Send>>;

/// A subscription's objects, in batches of at most `batch`. Closed (UNSUBSCRIBE) when the
/// pump finishes.
pub(crate) struct Subscription {
    opening: Option<Opening>,
    subscriber: Option<core::Subscriber>,
    batch: usize,
    ended: bool,
}

impl Subscription {
    /// Subscribe on the pump's thread (for callers that return before the relay answers).
    pub fn open(
        client: core::Client,
        namespace: String,
        track: String,
        options: core::SubscriberOptions,
        batch: usize,
    ) -> Self {
        let opening: Opening =
            Box::pin(async move { client.subscribe(&namespace, &track, options).await });
        Self {
            opening: Some(opening),
            subscriber: None,
            batch,
            ended: false,
        }
    }

    /// Deliver from a subscription already established.
    pub fn established(subscriber: core::Subscriber, batch: usize) -> Self {
        Self {
            opening: None,
            subscriber: Some(subscriber),
            batch,
            ended: false,
        }
    }
}

impl Source for Subscription {
    type Item = SubscriptionEvent;

    async fn next(&mut self) -> Option<SubscriptionEvent> {
        if self.ended {
            return None;
        }
        if let Some(opening) = &mut self.opening {
            let outcome = opening.await;
            self.opening = None;
            return Some(match outcome {
                Ok(subscriber) => {
                    let closer = subscriber.closer();
                    self.subscriber = Some(subscriber);
                    SubscriptionEvent::Established(closer)
                }
                Err(err) => {
                    self.ended = true;
                    SubscriptionEvent::End(Some(err))
                }
            });
        }
        let subscriber = self.subscriber.as_mut()?;
        let event = match subscriber.next_batch(self.batch).await {
            Ok(objects) if !objects.is_empty() => return Some(SubscriptionEvent::Objects(objects)),
            Ok(_) => SubscriptionEvent::End(None),
            Err(err) => SubscriptionEvent::End(Some(err)),
        };
        self.ended = true;
        Some(event)
    }

    async fn finish(self) {
        if let Some(mut subscriber) = self.subscriber {
            subscriber.close().await;
        }
    }
}

/// A publisher's new-group requests (see [`core::NewGroupRequests`]), until it is closed.
impl Source for core::NewGroupRequests {
    type Item = u64;

    async fn next(&mut self) -> Option<u64> {
        core::NewGroupRequests::next(self).await
    }
}
