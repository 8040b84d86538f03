//! `Client`: connect, announce, publish, subscribe, discover.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use super::error::thread_error;
use super::listeners::{
    report, CatalogListener, ConnectionListener, ListenerHandle, NamespaceListener, ObjectListener,
};
use super::records::{ClientConfig, ConnectionState, PublisherOptions, SubscribeOptions};
use super::subscriber::Subscriber;
use super::{on_runtime, MoqError, Publisher};
use crate::bridge::pump::{Flow, Pump};
use crate::bridge::runtime;
use crate::bridge::sources::{Namespaces, StateChanges};
use crate::core::{self, NamespaceEvent, SubscriberOptions};

/// A MoQT client: one session with a relay. Thread-safe; share it freely.
///
/// `disconnect()` ends the session (announced namespaces are released at once). The
/// session is also closed when the object is destroyed (Kotlin `close()`/`use {}`, Swift
/// deinit, Python garbage collection).
#[derive(uniffi::Object)]
pub struct Client {
    pub(super) core: core::Client,
    subscriber_options: SubscriberOptions,
}

#[uniffi::export]
impl Client {
    /// Create a client (validates the URL and TLS settings; does not connect).
    #[uniffi::constructor]
    pub fn new(config: ClientConfig) -> Result<Arc<Self>, MoqError> {
        let core = core::Client::with_runtime(config.to_core()?, runtime::handle()?)?;
        Ok(Arc::new(Self {
            core,
            subscriber_options: config.subscriber_options(),
        }))
    }

    /// Connect (QUIC + TLS, WebTransport for `https://`, MoQT SETUP), bounded by the connect
    /// timeout.
    pub async fn connect(&self) -> Result<(), MoqError> {
        let core = self.core.clone();
        on_runtime(async move { Ok(core.connect().await?) }).await
    }

    /// Blocking form of `connect`, for plain threads. Fails with `WrongThread` if called
    /// from a library thread (e.g. inside a listener).
    pub fn connect_blocking(&self) -> Result<(), MoqError> {
        Ok(runtime::block_on(self.core.connect())??)
    }

    /// Close the session: withdraw namespaces, end subscriptions, send CONNECTION_CLOSE.
    /// State becomes `Disconnected`. Idempotent. (Named `disconnect` because `close` is the
    /// generated bindings' destructor: closing/dropping the object also ends the session.)
    pub async fn disconnect(&self) {
        let core = self.core.clone();
        let _ = on_runtime(async move {
            core.close().await;
            Ok(())
        })
        .await;
    }

    /// The current connection state.
    pub fn state(&self) -> ConnectionState {
        self.core.state().into()
    }

    /// Whether the session is established.
    pub fn is_connected(&self) -> bool {
        self.core.is_connected()
    }

    /// The MoQT draft agreed with the relay (18) while the session is established; null
    /// otherwise. Follows reconnects. A relay that speaks none of this client's drafts fails
    /// `connect` with `MoqError.UnsupportedDraft`, naming both sides' drafts.
    pub fn negotiated_draft(&self) -> Option<u32> {
        self.core.negotiated_draft()
    }

    /// The relay the session is with while it is established (null otherwise): `index` 0 is
    /// `ClientConfig.url`, 1 and up `fallback_urls`. Follows connects and failovers (a
    /// reconnect may land on another relay of the list). Thread-safe.
    pub fn connected_relay(&self) -> Option<super::ConnectedRelay> {
        self.core
            .connected_relay()
            .map(|(index, url)| super::ConnectedRelay {
                index: u32::try_from(index).unwrap_or(u32::MAX),
                url,
            })
    }

    /// A snapshot of the connection's statistics (RTT, congestion window, bytes and packets,
    /// losses, datagrams, the draft, reconnects). Cheap: no allocation, no wait, callable
    /// from any thread as often as needed.
    pub fn stats(&self) -> super::ConnectionStats {
        self.core.stats().into()
    }

    /// Announce a namespace (`/`-separated, e.g. `"room/alice"`), waiting for the relay to
    /// accept it.
    pub async fn announce(&self, namespace: String) -> Result<(), MoqError> {
        let core = self.core.clone();
        on_runtime(async move { Ok(core.announce(&namespace).await?) }).await
    }

    /// Replace the authorization token (see `ClientConfig.token`), or remove it with `None`.
    /// It takes effect at the next connect or reconnect. Errors: `InvalidArgument` for text
    /// that is not a base64url token (the message never contains it).
    pub fn set_token(&self, token: Option<String>) -> Result<(), MoqError> {
        let token = token.as_deref().map(core::Token::parse).transpose()?;
        self.core.set_token(token);
        Ok(())
    }

    /// Withdraw a namespace this client announced. Returns whether it was announced.
    pub fn unannounce(&self, namespace: String) -> bool {
        self.core.unannounce(&namespace)
    }

    /// Create a publisher for `track` in an announced namespace.
    pub fn create_publisher(
        &self,
        namespace: String,
        track: String,
        options: Option<PublisherOptions>,
    ) -> Result<Arc<Publisher>, MoqError> {
        let options = options.unwrap_or_default().to_core();
        let publisher = self.core.create_publisher(&namespace, &track, options)?;
        Ok(Publisher::new(publisher))
    }

    /// Subscribe to `track` in `namespace`; read objects with `next()` / `next_batch()`.
    /// Returns once the relay accepted (waiting up to the rendezvous timeout for a
    /// publisher). `options`: subscriber priority, group order and past groups (none: 128,
    /// the publisher's order, no past).
    #[uniffi::method(default(options = None))]
    pub async fn subscribe(
        &self,
        namespace: String,
        track: String,
        options: Option<SubscribeOptions>,
    ) -> Result<Arc<Subscriber>, MoqError> {
        Ok(Subscriber::pull(
            self.core_subscribe(namespace, track, options).await?,
        ))
    }

    /// Subscribe and deliver objects to `listener` (in order, in batches) on a library
    /// thread. The subscriber's `unsubscribe()` stops delivery; no listener call runs
    /// after it returns. `options` as for `subscribe`.
    #[uniffi::method(default(options = None))]
    pub async fn subscribe_with_listener(
        &self,
        namespace: String,
        track: String,
        listener: Arc<dyn ObjectListener>,
        options: Option<SubscribeOptions>,
    ) -> Result<Arc<Subscriber>, MoqError> {
        let subscriber = self.core_subscribe(namespace, track, options).await?;
        Subscriber::with_listener(subscriber, listener)
    }

    /// Subscribe to a catalog track: each well-formed catalog is delivered to `listener` as
    /// a track list; malformed ones are logged and skipped.
    pub async fn subscribe_catalog(
        &self,
        namespace: String,
        track: String,
        listener: Arc<dyn CatalogListener>,
    ) -> Result<Arc<Subscriber>, MoqError> {
        let subscriber = self.core_subscribe(namespace, track, None).await?;
        Subscriber::with_catalog_listener(subscriber, listener)
    }

    /// Observe connection state changes (the current state first). Returns the registration;
    /// `cancel()` it to stop.
    pub fn observe_state(
        &self,
        listener: Arc<dyn ConnectionListener>,
    ) -> Result<Arc<ListenerHandle>, MoqError> {
        let failures = Arc::new(AtomicU64::new(0));
        let counted = failures.clone();
        let source = StateChanges::of(&self.core);
        let pump = Pump::spawn("moq-state", self.runtime(), source, move |state, _| {
            report("connection", listener.on_state(state.into()), &counted);
            Flow::Continue
        })
        .map_err(thread_error)?;
        Ok(ListenerHandle::new(pump, failures))
    }

    /// Watch namespaces announced by other publishers under `prefix` (`""` for all):
    /// those already announced first, then changes; follows reconnects. Returns the
    /// registration; `cancel()` it to stop.
    pub fn watch_namespaces(
        &self,
        prefix: String,
        listener: Arc<dyn NamespaceListener>,
    ) -> Result<Arc<ListenerHandle>, MoqError> {
        let failures = Arc::new(AtomicU64::new(0));
        let counted = failures.clone();
        let source = Namespaces::of(self.core.clone(), prefix);
        let pump = Pump::spawn("moq-namespaces", self.runtime(), source, move |event, _| {
            let result = match event {
                NamespaceEvent::Announced(ns) => listener.on_announced(ns),
                NamespaceEvent::Withdrawn(ns) => listener.on_withdrawn(ns),
            };
            report("namespace", result, &counted);
            Flow::Continue
        })
        .map_err(thread_error)?;
        Ok(ListenerHandle::new(pump, failures))
    }
}

impl Client {
    /// The runtime this client's work runs on.
    pub(crate) fn runtime(&self) -> tokio::runtime::Handle {
        self.core.runtime().clone()
    }

    /// The one place the three subscribe flavours open a core subscription.
    async fn core_subscribe(
        &self,
        namespace: String,
        track: String,
        options: Option<SubscribeOptions>,
    ) -> Result<core::Subscriber, MoqError> {
        let core = self.core.clone();
        let mut options_for = self.subscriber_options;
        if let Some(options) = options {
            options_for.priority = options.priority;
            options_for.group_order = options
                .group_order
                .map_or(core::GroupOrder::Publisher, Into::into);
            options_for.past_groups = options.past_groups;
        }
        let options = options_for;
        on_runtime(async move { Ok(core.subscribe(&namespace, &track, options).await?) }).await
    }
}
