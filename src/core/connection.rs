//! The client: one MoQT session with a relay, its state, and the namespaces it announces.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use moq_transport::coding::TrackNamespace;
use moq_transport::serve::{ServeError, Tracks, TracksReader};
use moq_transport::session::{
    transport::Session as TransportSession, PublishNamespace, SessionError, Subscribed,
};
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::config::{redacted, ClientConfig, Scheme};
use super::discovery::NamespaceWatch;
use super::error::shown;
use super::error::PublishError;
use super::error::{AnnounceError, ConnectError, SubscribeError};
pub use super::live::ConnectionState;
use super::live::{Announcement, Live, LiveParts};
use super::names::validate_namespace;
use super::publisher::{Publisher, PublisherOptions};
use crate::sync::lock;

/// How long `close()` waits for the relay to acknowledge the close before returning.
const CLOSE_DRAIN: Duration = Duration::from_millis(300);

/// The first wait before announcing again a namespace the relay refused on a reconnect (see
/// `Client::keep_reannouncing`); it doubles up to [`REANNOUNCE_MAX_RETRY`].
const REANNOUNCE_RETRY: Duration = Duration::from_millis(500);
const REANNOUNCE_MAX_RETRY: Duration = Duration::from_secs(4);
/// How long those retries go on: past moq-api's 600 s hold on a dead relay's registrations.
const REANNOUNCE_FOR: Duration = Duration::from_secs(660);

/// A MoQT client. Cheap to clone (clones share the session); thread-safe.
///
/// Dropping the last clone closes the session, so the relay releases announced namespaces
/// at once rather than after the QUIC idle timeout.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

/// A weak reference to a [`Client`], for tasks that must not keep it alive.
#[derive(Clone)]
pub(crate) struct WeakClient(std::sync::Weak<Inner>);

impl WeakClient {
    pub(crate) fn upgrade(&self) -> Option<Client> {
        self.0.upgrade().map(|inner| Client { inner })
    }
}

struct Inner {
    /// The runtime this client's tasks run on and its parts are dropped in.
    runtime: tokio::runtime::Handle,
    hub: Arc<super::discovery::Hub>,
    config: ClientConfig,
    /// `config.url`, then `config.fallback_urls`, parsed: the relays sessions are opened with.
    relays: Vec<(url::Url, Scheme)>,
    state: watch::Sender<ConnectionState>,
    live: Mutex<Option<Arc<Live>>>,
    /// Serializes connect, reconnect and close.
    lifecycle: tokio::sync::Mutex<()>,
    /// Set by `close()`: no reconnect after it.
    closed: std::sync::atomic::AtomicBool,
    /// What this client has set up, restored on a new session after a reconnect.
    intent: Mutex<Intent>,
    /// Upstream subscriptions shared by this client's local subscribers, kept across sessions.
    tracks: super::delivery::subscription::TrackRegistry,
    /// Subscriptions held now (bounded by `config.max_subscriptions`).
    subscriptions: Arc<tokio::sync::Semaphore>,
    /// The token the next session presents (`config.token`, replaced by `set_token`).
    token: Mutex<Option<super::Token>>,
    /// Sessions re-established by `reconnect` (for `stats()`).
    reconnects: std::sync::atomic::AtomicU64,
}

/// The namespaces and publishers a reconnect restores.
#[derive(Default)]
struct Intent {
    /// Announced namespaces, in announce order.
    namespaces: Vec<String>,
    publishers: Vec<std::sync::Weak<super::publisher::Shared>>,
}

impl Client {
    /// Create a client for `config` on the current tokio runtime (call it inside one, or use
    /// [`Client::with_runtime`]). Validates the URL and settings; does not connect.
    pub fn new(config: ClientConfig) -> Result<Self, super::ConfigError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
            super::ConfigError::InvalidSetting {
                name: "runtime",
                reason: "Client::new was called outside a tokio runtime; call it inside one or use Client::with_runtime".into(),
            }
        })?;
        Self::with_runtime(config, runtime)
    }

    /// Create a client for `config` whose tasks run on `runtime` (a multi-thread tokio
    /// runtime). Validates the URL and settings; does not connect. Callable from any thread.
    pub fn with_runtime(
        config: ClientConfig,
        runtime: tokio::runtime::Handle,
    ) -> Result<Self, super::ConfigError> {
        config.validate()?;
        let relays = config.relays()?;
        let max_subscriptions = config
            .max_subscriptions
            .min(tokio::sync::Semaphore::MAX_PERMITS);
        // Build the TLS configuration once now so bad CA input fails here, not at connect.
        super::tls::client_config(&config.tls)?;
        let (state, _) = watch::channel(ConnectionState::Disconnected);
        let token = Mutex::new(config.token.clone());
        Ok(Self {
            inner: Arc::new(Inner {
                token,
                runtime,
                hub: super::discovery::Hub::new(config.max_announced_namespaces),
                config,
                relays,
                state,
                live: Mutex::new(None),
                lifecycle: tokio::sync::Mutex::new(()),
                closed: Default::default(),
                intent: Default::default(),
                tracks: Default::default(),
                subscriptions: Arc::new(tokio::sync::Semaphore::new(max_subscriptions)),
                reconnects: Default::default(),
            }),
        })
    }

    /// Replace the token the client presents (or remove it, `None`). It takes effect at the
    /// next connect or reconnect; the current session keeps the credentials it was opened
    /// with. Thread-safe.
    pub fn set_token(&self, token: Option<super::Token>) {
        *lock(&self.inner.token) = token;
    }

    pub(crate) fn downgrade(&self) -> WeakClient {
        WeakClient(Arc::downgrade(&self.inner))
    }

    /// The runtime this client belongs to.
    pub fn runtime(&self) -> &tokio::runtime::Handle {
        &self.inner.runtime
    }

    /// The configuration this client was created with.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// The current connection state.
    pub fn state(&self) -> ConnectionState {
        *self.inner.state.borrow()
    }

    /// A receiver that observes every state change (latest value semantics).
    pub fn state_watch(&self) -> watch::Receiver<ConnectionState> {
        self.inner.state.subscribe()
    }

    /// Whether the session is established and not lost.
    pub fn is_connected(&self) -> bool {
        self.state() == ConnectionState::Connected && self.live().is_some()
    }

    /// The MoQT draft agreed with the relay (18), while the session is established; `None`
    /// otherwise. Follows reconnects (each session agrees its own).
    pub fn negotiated_draft(&self) -> Option<u32> {
        self.live().map(|live| live.draft)
    }

    /// Sessions re-established automatically after a loss.
    pub(crate) fn reconnects(&self) -> u64 {
        self.inner.reconnects.load(Ordering::Relaxed)
    }

    pub(crate) fn live(&self) -> Option<Arc<Live>> {
        lock(&self.inner.live)
            .as_ref()
            .filter(|live| !live.is_lost())
            .cloned()
    }

    fn set_state(&self, state: ConnectionState) {
        self.inner.state.send_if_modified(|current| {
            let changed = *current != state;
            *current = state;
            changed
        });
    }

    /// Connect to the relay: QUIC + TLS handshake, WebTransport CONNECT for `https://`, and
    /// MoQT SETUP, bounded by `connect_timeout`. State goes Connecting, then Connected or
    /// Failed; `Disconnected` if the caller stops awaiting (cancellation) midway.
    ///
    /// With `fallback_urls`, tries `url` and then each of them in order until one accepts
    /// (each bounded by `connect_timeout`, each failure logged); if none does, the error is
    /// the first that is not about reaching the relay (a refusal, TLS, credentials, drafts:
    /// what the app must fix), else the last relay's.
    ///
    /// Fails with `AlreadyConnected` if connected when called. Called while a reconnect is
    /// in progress, it waits for that attempt and succeeds if it did.
    pub async fn connect(&self) -> Result<(), ConnectError> {
        if self.live().is_some() {
            return Err(ConnectError::AlreadyConnected);
        }
        let _lifecycle = self.inner.lifecycle.lock().await;
        if self.live().is_some() {
            return Ok(()); // a reconnect attempt got there first
        }
        self.inner.closed.store(false, Ordering::SeqCst);
        self.set_state(ConnectionState::Connecting);
        // Dropped before the outcome (the caller cancelled): not connecting any more.
        let mut cancelled = StateOnDrop(Some((self, ConnectionState::Disconnected)));
        let outcome = self.open_any(0, false).await;
        cancelled.0 = None;
        match outcome {
            Ok(_) => {
                self.set_state(ConnectionState::Connected);
                Ok(())
            }
            Err(err) => {
                log::warn!("connect failed: {err}");
                self.set_state(ConnectionState::Failed);
                Err(err)
            }
        }
    }

    /// Which relay the session is with: its index in `url` (0) then `fallback_urls` (1...),
    /// and its URL as configured. `None` while there is no session; set as soon as a
    /// (re)connect has one, while the state may still say `Connecting` as announcements and
    /// subscriptions are restored on it. Thread-safe.
    pub fn connected_relay(&self) -> Option<(usize, String)> {
        let relay = self.live()?.relay;
        let url = match relay {
            0 => self.inner.config.url.clone(),
            n => self.inner.config.fallback_urls.get(n - 1)?.clone(),
        };
        Some((relay, url))
    }

    /// Open a session with the first relay that accepts one, trying them in turn from
    /// `first` (wrapping around, each once). See [`Client::connect`] for the error returned.
    ///
    /// Between relays it stops (with the failure so far) once `close()` was called, so a close
    /// waits for one relay's attempt at most; `reconnecting`, also once the app has dropped
    /// the client (this pass holds the last reference).
    async fn open_any(&self, first: usize, reconnecting: bool) -> Result<Arc<Live>, ConnectError> {
        let count = self.inner.relays.len();
        let mut reported: Option<ConnectError> = None;
        for (step, relay) in (0..count).map(|step| (step, (first + step) % count)) {
            let dropped = reconnecting && Arc::strong_count(&self.inner) == 1;
            if step > 0 && (self.inner.closed.load(Ordering::SeqCst) || dropped) {
                break;
            }
            let err = match self.open_session(relay).await {
                Ok(live) => return Ok(live),
                Err(err) => err,
            };
            if count > 1 {
                log::warn!("relay {} of {count} failed: {err}", relay + 1);
            }
            // Keep the first failure the app must fix; else the latest.
            if reported.as_ref().is_none_or(about_reaching) {
                reported = Some(err);
            }
        }
        // `url` is always one relay, so there is a failure to report.
        Err(reported.unwrap_or(ConnectError::Config(super::ConfigError::MissingHost)))
    }

    /// Establish a session with relay `relay` and make it the current one (state is left to
    /// the caller).
    async fn open_session(&self, relay: usize) -> Result<Arc<Live>, ConnectError> {
        let config = &self.inner.config;
        let (relay_url, scheme) = &self.inner.relays[relay];
        let claiming_sessions = Arc::new(super::claiming_session::PendingReaders::default());
        let attempt = async {
            let established =
                super::transport::establish(config, relay_url, *scheme, claiming_sessions.clone())
                    .await?;
            let url = redacted(relay_url);
            let setup = async {
                let token = lock(&self.inner.token).clone();
                let tokens = token.iter().map(super::Token::setup_token).collect();
                let (session, publisher, subscriber) =
                    moq_transport::session::Session::connect_with_tokens(
                        established.session.clone(),
                        None,
                        established.transport,
                        tokens,
                    )
                    .await
                    .map_err(|err| match unauthorized(&err) {
                        Some(reason) => ConnectError::Unauthorized {
                            url: redacted(relay_url),
                            reason,
                        },
                        None => ConnectError::Refused {
                            url: redacted(relay_url),
                            reason: format!("MoQT SETUP failed: {err}"),
                        },
                    })?;
                // Where credentials are in play: a token, or a path (relays scope access by
                // path, and a path without the token a scope needs is refused the same way).
                if token.is_some() || !relay_url.path().trim_matches('/').is_empty() {
                    admitted(&established.session, relay_url).await?;
                }
                Ok::<_, ConnectError>((session, publisher, subscriber))
            };
            let (session, publisher, subscriber) = setup.await.map_err(|err| {
                // A relay refusing our certificate closes the connection during SETUP.
                super::transport::tls_failure(&url, &established.connection).unwrap_or(err)
            })?;
            Ok::<_, ConnectError>((established, session, publisher, subscriber))
        };
        let (established, session, publisher, subscriber) =
            match tokio::time::timeout(config.connect_timeout, attempt).await {
                Ok(result) => result?,
                Err(_) => {
                    return Err(ConnectError::Timeout {
                        url: redacted(relay_url),
                        after: config.connect_timeout,
                    })
                }
            };
        let (lost, _) = watch::channel(false);
        let live = Arc::new(Live(super::in_runtime::InRuntime::new(
            LiveParts {
                publisher,
                subscriber,
                config: config.clone(),
                draft: established.draft,
                relay,
                session: established.session,
                endpoint: established.endpoint,
                connection: established.connection,
                datagrams_dropped: Default::default(),
                lost,
                announced: Mutex::new(HashMap::new()),
                claiming_sessions,
                reconnects: config.reconnect.is_some(),
                requests: Default::default(),
                requests_allowed: established.requests_allowed.clone(),
                stall_limit: moq_transport::serve::StallLimit::new(
                    super::config::max_stalled_streams(config.receive_window),
                ),
                supervisor: Mutex::new(None),
            },
            self.inner.runtime.clone(),
        )));
        let supervisor = self.inner.runtime.spawn(boxed_supervise(
            Arc::downgrade(&self.inner),
            live.clone(),
            session,
        ));
        *lock(&live.supervisor) = Some(supervisor);
        *lock(&self.inner.live) = Some(live.clone());
        log::info!(
            "connected to {} over {} (MoQT draft {})",
            redacted(relay_url),
            match scheme {
                Scheme::RawQuic => "raw QUIC",
                Scheme::WebTransport => "WebTransport",
            },
            live.draft
        );
        Ok(live)
    }

    /// After a lost session with relay `lost`: reconnect under `policy` until it succeeds, the
    /// client is closed or dropped, or the attempts run out. Each attempt tries every relay
    /// once, starting with the one after `lost` (a cluster's other relays before the one that
    /// just failed). Holds only a weak reference between attempts.
    async fn reconnect(
        inner: std::sync::Weak<Inner>,
        policy: super::config::ReconnectPolicy,
        lost: usize,
    ) {
        let mut delay = policy.initial_delay;
        let mut attempt = 0u32;
        loop {
            tokio::time::sleep(delay).await;
            attempt += 1;
            let Some(client) = inner.upgrade().map(|inner| Client { inner }) else {
                return;
            };
            let _lifecycle = client.inner.lifecycle.lock().await;
            if client.inner.closed.load(Ordering::SeqCst) || client.live().is_some() {
                return; // closed, or connected by hand meanwhile
            }
            let next = (lost + 1) % client.inner.relays.len();
            match client.open_any(next, true).await {
                Ok(live) => {
                    log::info!("reconnected after {attempt} attempt(s)");
                    client.inner.reconnects.fetch_add(1, Ordering::Relaxed);
                    client.restore(&live).await;
                    client.set_state(ConnectionState::Connected);
                    return;
                }
                Err(err) => log::warn!("reconnect attempt {attempt} failed: {err}"),
            }
            if policy.max_attempts != 0 && attempt >= policy.max_attempts {
                log::warn!("giving up reconnecting after {attempt} attempt(s)");
                super::delivery::subscription::end_all(
                    &client.inner.tracks,
                    SubscribeError::ConnectionLost,
                );
                client.set_state(ConnectionState::Failed);
                return;
            }
            delay = (delay * 2).min(policy.max_delay);
        }
    }

    /// Bring a new session to where the lost one was: announce the namespaces again, move the
    /// publishers onto it, and subscribe again (in the background: a subscription may wait
    /// for its publisher to come back).
    async fn restore(&self, live: &Arc<Live>) {
        let namespaces = lock(&self.inner.intent).namespaces.clone();
        for namespace in namespaces {
            // close() waits for this (it takes the lifecycle lock): at most one request.
            if self.inner.closed.load(Ordering::SeqCst) {
                return;
            }
            match self.reannounce(live, &namespace).await {
                Ok(()) | Err(AnnounceError::NotConnected) => {}
                Err(err @ (AnnounceError::Refused { .. } | AnnounceError::Timeout { .. })) => {
                    log::warn!(
                        "could not announce '{}' again after reconnecting: {err}; retrying \
                         while this session lasts",
                        shown(&namespace)
                    );
                    self.keep_reannouncing(live, namespace);
                }
                Err(err) => log::warn!(
                    "could not announce '{}' again after reconnecting: {err}",
                    shown(&namespace)
                ),
            }
        }
        if !self.inner.closed.load(Ordering::SeqCst) {
            super::delivery::subscription::resubscribe_all(&self.inner.tracks, live);
        }
    }

    /// Announce `namespace` on `live` again after a reconnect and move its publishers onto
    /// it, unless the app withdrew it meanwhile (then it is withdrawn here too).
    async fn reannounce(&self, live: &Arc<Live>, namespace: &str) -> Result<(), AnnounceError> {
        self.announce_with_publishers(live, namespace).await?;
        let wanted = lock(&self.inner.intent)
            .namespaces
            .iter()
            .any(|n| n == namespace);
        if !wanted {
            // `unannounce` ran while the relay answered: it found nothing to remove.
            lock(&live.announced).remove(namespace);
        }
        Ok(())
    }

    /// Announce `namespace` on `live` and move its publishers onto it.
    async fn announce_with_publishers(
        &self,
        live: &Arc<Live>,
        namespace: &str,
    ) -> Result<(), AnnounceError> {
        let publishers: Vec<_> = {
            let mut intent = lock(&self.inner.intent);
            intent.publishers.retain(|p| p.strong_count() > 0);
            intent
                .publishers
                .iter()
                .filter_map(std::sync::Weak::upgrade)
                .filter(|p| p.namespace() == namespace)
                .collect()
        };
        // The namespace's tracks exist before its first SUBSCRIBE is answered: a relay
        // re-subscribing at once must not be told "not found".
        let rebind = || {
            for publisher in &publishers {
                publisher.rebind(live);
            }
        };
        self.announce_on(live, namespace, rebind).await
    }

    /// After the relay refused `namespace` on a reconnect, announce it again now and then
    /// (from [`REANNOUNCE_RETRY`], doubling up to [`REANNOUNCE_MAX_RETRY`]) while `live` is
    /// the session and the app still announces it, for at most [`REANNOUNCE_FOR`]. Why: a
    /// relay of a cluster refuses a namespace its coordinator still records for another
    /// relay, such as the one this client just lost (moq-api keeps a dead relay's
    /// registrations up to 600 s); once that lapses, the publishers continue here without the
    /// app doing anything. A refusal retrying cannot change (credentials, the name, the
    /// session's request budget) ends the retries at once.
    fn keep_reannouncing(&self, live: &Arc<Live>, namespace: String) {
        let (client, session) = (self.downgrade(), Arc::downgrade(live));
        self.inner.runtime.spawn(async move {
            let started = tokio::time::Instant::now();
            let mut delay = REANNOUNCE_RETRY;
            for attempt in 1u32.. {
                tokio::time::sleep(delay).await;
                let (Some(client), Some(live)) = (client.upgrade(), session.upgrade()) else {
                    return;
                };
                let wanted = lock(&client.inner.intent).namespaces.contains(&namespace);
                if live.is_lost() || !wanted || lock(&live.announced).contains_key(&namespace) {
                    return;
                }
                let err = match client.reannounce(&live, &namespace).await {
                    Ok(()) => {
                        log::info!(
                            "announced '{}' again after {attempt} retries",
                            shown(&namespace)
                        );
                        return;
                    }
                    Err(err) => err,
                };
                let hopeless = !matches!(
                    err,
                    AnnounceError::Refused { .. } | AnnounceError::Timeout { .. }
                );
                if hopeless || started.elapsed() >= REANNOUNCE_FOR {
                    if !matches!(
                        err,
                        AnnounceError::NotConnected | AnnounceError::Duplicate { .. }
                    ) {
                        log::warn!(
                            "stopped announcing '{}' again after {attempt} retries: {err}; \
                             its publishers stay unannounced until the next session (or \
                             announce it again)",
                            shown(&namespace)
                        );
                    }
                    return;
                }
                log::debug!(
                    "announcing '{}' again, retry {attempt}: {err}",
                    shown(&namespace)
                );
                delay = (delay * 2).min(REANNOUNCE_MAX_RETRY);
            }
        });
    }

    /// Create a publisher for `track` in `namespace`, which this client must have announced.
    pub fn create_publisher(
        &self,
        namespace: &str,
        track: &str,
        options: PublisherOptions,
    ) -> Result<Publisher, PublishError> {
        let publisher = Publisher::create(
            self.live(),
            self.config(),
            self.runtime().clone(),
            namespace,
            track,
            options,
        )?;
        self.remember_publisher(publisher.shared());
        Ok(publisher)
    }

    /// Watch namespaces announced by other publishers under `prefix` (`""` for all).
    /// Must be called inside a tokio runtime (the library runtime or any other).
    pub fn watch_namespaces(&self, prefix: &str) -> NamespaceWatch {
        let client = self.downgrade();
        self.inner.hub.watch(
            prefix,
            self.state_watch(),
            Arc::new(move || client.upgrade().and_then(|client| client.live())),
        )
    }

    /// Record a publisher so a reconnect moves it to the new session.
    fn remember_publisher(&self, publisher: &Arc<super::publisher::Shared>) {
        let mut intent = lock(&self.inner.intent);
        intent.publishers.retain(|p| p.strong_count() > 0);
        intent.publishers.push(Arc::downgrade(publisher));
    }

    pub(crate) fn tracks(&self) -> &super::delivery::subscription::TrackRegistry {
        &self.inner.tracks
    }

    pub(crate) fn subscription_slots(&self) -> &Arc<tokio::sync::Semaphore> {
        &self.inner.subscriptions
    }

    /// Close the session cleanly: withdraw announced namespaces, end subscriptions, send
    /// CONNECTION_CLOSE, and wait briefly for the relay to acknowledge. State becomes
    /// Disconnected. Idempotent.
    pub async fn close(&self) {
        self.inner.closed.store(true, Ordering::SeqCst);
        let _lifecycle = self.inner.lifecycle.lock().await;
        *lock(&self.inner.intent) = Intent::default();
        let live = lock(&self.inner.live).take();
        if let Some(live) = live {
            live.shutdown(0, "client closed");
            let _ = tokio::time::timeout(CLOSE_DRAIN, live.endpoint.wait_idle()).await;
        }
        // Subscriptions waiting for a reconnect end here.
        super::delivery::subscription::end_all(&self.inner.tracks, SubscribeError::ConnectionLost);
        self.set_state(ConnectionState::Disconnected);
    }

    /// Announce `namespace` (`/`-separated tuple, e.g. `"room/alice"`), waiting for the relay
    /// to accept it (bounded by `request_timeout`). Tracks published in it are served to any
    /// number of subscribers until [`Client::unannounce`] or `close()`.
    pub async fn announce(&self, namespace: &str) -> Result<(), AnnounceError> {
        let live = self.live().ok_or(AnnounceError::NotConnected)?;
        validate_namespace(namespace).map_err(|reason| AnnounceError::InvalidNamespace {
            namespace: namespace.to_string(),
            reason,
        })?;
        // Publishers of the namespace that are still on a lost session (the relay refused it
        // on a reconnect) continue on this announcement.
        self.announce_with_publishers(&live, namespace).await?;
        let mut intent = lock(&self.inner.intent);
        if !intent.namespaces.iter().any(|n| n == namespace) {
            intent.namespaces.push(namespace.to_string());
        }
        Ok(())
    }

    /// Announce `namespace` on `live`; `before_serving` runs once the namespace is usable
    /// (tracks can be created in it) and before any SUBSCRIBE for it is answered.
    async fn announce_on(
        &self,
        live: &Arc<Live>,
        namespace: &str,
        before_serving: impl FnOnce(),
    ) -> Result<(), AnnounceError> {
        if lock(&live.announced).contains_key(namespace) {
            return Err(AnnounceError::Duplicate {
                namespace: namespace.to_string(),
            });
        }
        live.take_request()
            .map_err(|limit| AnnounceError::SessionRequestsExhausted { limit })?;
        let track_namespace = TrackNamespace::from_utf8_path(namespace);
        // Dropping the request half makes unknown track names answer "not found" at once.
        let (writer, _request, reader) = Tracks::new(track_namespace.clone()).produce();
        let mut publisher = live.publisher.clone();
        let timeout = live.config.request_timeout;
        let request = async {
            let mut backoff = Duration::from_millis(5);
            let handle = loop {
                match publisher
                    .publish_namespace_start(track_namespace.clone())
                    .await
                {
                    // Withdrawn on this session a moment ago (`unannounce`): the transport
                    // lets go of the name once its request stream's task handles that. (Not
                    // when it is announced here: then it is a duplicate.)
                    Err(SessionError::Serve(ServeError::Duplicate) | SessionError::Duplicate)
                        if !lock(&live.announced).contains_key(namespace) =>
                    {
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_millis(100));
                    }
                    other => break other?,
                }
            };
            handle.ok().await?;
            Ok::<_, SessionError>(handle)
        };
        let handle = match tokio::time::timeout(timeout, request).await {
            Err(_) => {
                return Err(AnnounceError::Timeout {
                    namespace: namespace.to_string(),
                    after: timeout,
                })
            }
            Ok(Err(err)) => return Err(announce_error(namespace, err, live)),
            Ok(Ok(handle)) => handle,
        };
        let (ready, serve) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(serve_namespace(handle, reader, serve));
        {
            let mut announced = lock(&live.announced);
            if announced.contains_key(namespace) {
                // A concurrent announce of the same namespace won the race.
                task.abort();
                return Err(AnnounceError::Duplicate {
                    namespace: namespace.to_string(),
                });
            }
            announced.insert(
                namespace.to_string(),
                Announcement {
                    tracks: writer,
                    track_names: Arc::new(Mutex::new(HashMap::new())),
                    task,
                },
            );
        }
        before_serving();
        let _ = ready.send(());
        log::debug!("announced namespace '{}'", shown(namespace));
        Ok(())
    }

    /// Withdraw a namespace announced by this client. Its publishers stop reaching new
    /// subscribers. Returns whether it was announced.
    pub fn unannounce(&self, namespace: &str) -> bool {
        lock(&self.inner.intent)
            .namespaces
            .retain(|n| n != namespace);
        self.live()
            .map(|live| lock(&live.announced).remove(namespace).is_some())
            .unwrap_or(false)
    }
}

/// Sets a client's state when dropped (a connect future dropped midway).
struct StateOnDrop<'a>(Option<(&'a Client, ConnectionState)>);

impl Drop for StateOnDrop<'_> {
    fn drop(&mut self) {
        if let Some((client, state)) = self.0.take() {
            client.set_state(state);
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The last reference may go away on any thread (a foreign finalizer, a C destroy):
        // tearing the session down needs the runtime's context.
        let _entered = self.runtime.enter();
        if let Some(live) = lock(&self.live).take() {
            live.shutdown(0, "client dropped");
        }
        // Subscriptions that outlive the client (waiting for a reconnect, say) end here.
        super::delivery::subscription::end_all(&self.tracks, SubscribeError::ConnectionLost);
    }
}

fn announce_error(namespace: &str, err: SessionError, live: &Live) -> AnnounceError {
    let namespace = namespace.to_string();
    match err {
        SessionError::Serve(ServeError::Duplicate) | SessionError::Duplicate => {
            AnnounceError::Duplicate { namespace }
        }
        _ if live.is_lost() => AnnounceError::NotConnected,
        SessionError::Serve(ServeError::Closed(code))
            if super::delivery::subscription::is_unauthorized_code(code) =>
        {
            AnnounceError::Unauthorized {
                namespace,
                reason: format!("REQUEST_ERROR code {code:#x}"),
            }
        }
        SessionError::Serve(ServeError::Closed(code)) => AnnounceError::Refused {
            namespace,
            reason: format!("relay closed the request (code {code})"),
        },
        other => AnnounceError::Refused {
            namespace,
            reason: other.to_string(),
        },
    }
}

/// How long a session that presented a token (or asked for a path) waits after SETUP for the
/// relay to refuse it.
///
/// A relay checks the token after its own SETUP has gone out (moq-relay-ietf authorizes the
/// session it has just accepted), and refuses by closing the connection with session error
/// 0x2 right after. Without this wait `connect` would report success and the session would
/// end a moment later; with it the refusal is `ConnectError::Unauthorized`. The close follows
/// the relay's SETUP on the same path, so it arrives within the relay's token check (about a
/// millisecond) of it, RTT aside; a close that comes later still ends the session, logged as
/// a refusal of the credentials.
const ADMISSION_WAIT: Duration = Duration::from_millis(100);

/// Wait [`ADMISSION_WAIT`] for the relay to refuse the session's token.
async fn admitted(session: &TransportSession, url: &url::Url) -> Result<(), ConnectError> {
    tokio::select! {
        err = session.closed() => {
            let err = SessionError::WebTransport(err);
            Err(match unauthorized(&err) {
                Some(reason) => ConnectError::Unauthorized { url: redacted(url), reason },
                None => ConnectError::Refused {
                    url: redacted(url),
                    reason: format!("the relay closed the session after SETUP: {err}"),
                },
            })
        }
        _ = tokio::time::sleep(ADMISSION_WAIT) => Ok(()),
    }
}

/// Whether `err` is about reaching a relay (nothing answered in time, the network, the
/// name): on a pass over a cluster's relays, a refusal, TLS, credentials or drafts failure is
/// what the app must fix, and the other relays' timeouts would hide it.
fn about_reaching(err: &ConnectError) -> bool {
    matches!(
        err,
        ConnectError::Timeout { .. }
            | ConnectError::Transport { .. }
            | ConnectError::Resolve { .. }
    )
}

/// The relay's reason, if `err` is its refusal of this client's credentials: session error
/// UNAUTHORIZED (0x2, draft-18 §15.10.1), or an application close whose reason is
/// "unauthorized" (moq-relay-ietf's fixed text, whatever layer carried the code).
fn unauthorized(err: &SessionError) -> Option<String> {
    const UNAUTHORIZED: u32 = 0x2;
    let SessionError::WebTransport(err) = err else {
        return None;
    };
    match err.session_error() {
        Some((UNAUTHORIZED, reason)) => Some(if reason.is_empty() {
            "unauthorized".into()
        } else {
            reason
        }),
        Some((_, reason)) if reason == "unauthorized" => Some(reason),
        _ => {
            // A QUIC-level close seen through the WebTransport layer may not map back to a
            // session error; its text still carries the relay's reason.
            let text = err.to_string();
            text.contains("unauthorized").then(|| "unauthorized".into())
        }
    }
}

/// Answer SUBSCRIBE requests for one announced namespace until the announcement ends, from
/// when `ready` fires (requests arriving before it wait in the handle).
async fn serve_namespace(
    handle: PublishNamespace,
    tracks: TracksReader,
    ready: tokio::sync::oneshot::Receiver<()>,
) {
    let _ = ready.await;
    let mut serving = JoinSet::new();
    let mut open = true;
    loop {
        tokio::select! {
            request = handle.subscribed(), if open => match request {
                Ok(Some(subscribed)) => {
                    let tracks = tracks.clone();
                    let track = shown(&subscribed.track_name.to_string()).into_owned();
                    log::debug!("serving a subscription to track '{track}'");
                    serving.spawn(async move {
                        match serve_subscribe(subscribed, tracks).await {
                            Ok(()) => log::debug!("subscription to track '{track}' ended"),
                            Err(err) => log::debug!("subscription to track '{track}' ended: {err}"),
                        }
                    });
                }
                Ok(None) | Err(_) => open = false,
            },
            Some(_) = serving.join_next() => {}
            else => break,
        }
    }
    log::debug!(
        "announcement of '{}' ended",
        shown(&handle.namespace.to_string())
    );
}

/// Serve one SUBSCRIBE from the track of that name, or answer "not found".
async fn serve_subscribe(
    mut subscribed: Subscribed,
    mut tracks: TracksReader,
) -> Result<(), SessionError> {
    let namespace = subscribed.info.track_namespace.clone();
    let Some(track) = tracks.subscribe(namespace, &subscribed.info.track_name) else {
        let name = shown(&subscribed.info.track_name.to_string()).into_owned();
        subscribed.close(ServeError::not_found_ctx(format!("no track '{name}'")))?;
        return Ok(());
    };
    start_largest_object_at_its_group(&mut subscribed.info, track.largest_location());
    subscribed.serve(track).await
}

/// A Largest Object filter starts "after the newest object"; we start it at the first object
/// of the newest group instead, so a subscriber that joins mid-group gets that group whole.
///
/// Why: moq-dev's relay subscribes with this filter whenever a subscriber joins and cannot
/// use a group stream that begins mid-group ("no fill to stitch"): it dropped the open group,
/// and with it the first group of every `moqkit pub` it relayed. Objects before the filter's
/// start are ones a subscriber may ignore; a group with its head missing is one it cannot use.
/// The publisher still holds the newest group whole (its group limit bounds it).
fn start_largest_object_at_its_group(
    info: &mut moq_transport::session::SubscribeInfo,
    largest: Option<moq_transport::coding::Location>,
) {
    use moq_transport::message::{FilterType, SubscriptionFilter};
    let Some(largest) = largest else { return };
    let Some(filter) = info.filter.as_mut() else {
        return;
    };
    if filter.filter_type != FilterType::LargestObject {
        return;
    }
    let start = moq_transport::coding::Location::new(largest.group_id, 0);
    *filter = SubscriptionFilter {
        filter_type: FilterType::AbsoluteStart,
        start_location: Some(start),
        end_group_id: None,
    };
    info.filter_type = FilterType::AbsoluteStart;
    info.start_location = Some(start);
}

/// [`supervise`] behind a named type: the supervisor may reconnect, which opens a session,
/// which spawns a supervisor (a recursive future type otherwise).
fn boxed_supervise(
    inner: std::sync::Weak<Inner>,
    live: Arc<Live>,
    session: moq_transport::session::Session,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
    Box::pin(supervise(inner, live, session))
}

/// Drive the session; when it ends, mark it lost and report the state (and reconnect, if the
/// client's policy says so).
async fn supervise(
    inner: std::sync::Weak<Inner>,
    live: Arc<Live>,
    session: moq_transport::session::Session,
) {
    let mut unknown = live.publisher.clone();
    // SUBSCRIBEs for namespaces we never announced: answer "not found" instead of leaving
    // them queued.
    let reject_unknown = async move {
        while let Some(subscribed) = unknown.subscribed().await {
            let _ = subscribed.close(ServeError::NotFound);
        }
        std::future::pending::<()>().await
    };
    // FETCHes the relay forwards to this client's publishers.
    let fetches = super::fetch_serving::serve_fetches(
        live.publisher.clone(),
        Arc::downgrade(&live),
        live.config.request_timeout,
    );
    let result = tokio::select! {
        result = session.run() => result,
        _ = reject_unknown => Ok(()),
        _ = fetches => std::future::pending().await,
    };
    let was_closing = live.is_lost();
    live.mark_lost();
    lock(&live.announced).clear();
    if was_closing {
        return;
    }
    match &result {
        Ok(()) => log::warn!("session ended by the relay"),
        Err(err) => match unauthorized(err) {
            Some(reason) => log::error!(
                "the relay refused this client's credentials ({reason}): set a valid token \
                 (ClientConfig::token / set_token)"
            ),
            None => log::warn!("session lost: {err}"),
        },
    }
    let Some(strong) = inner.upgrade() else {
        return;
    };
    {
        let mut current = lock(&strong.live);
        if !current.as_ref().is_some_and(|l| Arc::ptr_eq(l, &live)) {
            return; // already replaced
        }
        *current = None;
    }
    let relay = live.relay;
    drop(live);
    match strong.config.reconnect {
        Some(policy) if !strong.closed.load(Ordering::SeqCst) => {
            strong.state.send_replace(ConnectionState::Connecting);
            drop(strong);
            Client::reconnect(inner, policy, relay).await;
        }
        _ => {
            strong.state.send_replace(ConnectionState::Failed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use web_transport_quinn as wtq;

    fn webtransport_close(code: u32, reason: &str) -> SessionError {
        let err = wtq::SessionError::WebTransportError(wtq::WebTransportError::Closed(
            code,
            reason.into(),
        ));
        SessionError::WebTransport(moq_transport::session::transport::Error::Session(err))
    }

    fn quic_close(code: u32, reason: &'static str) -> SessionError {
        let err = wtq::SessionError::ConnectionError(quinn::ConnectionError::ApplicationClosed(
            quinn::ApplicationClose {
                error_code: code.into(),
                reason: reason.as_bytes().to_vec().into(),
            },
        ));
        SessionError::WebTransport(moq_transport::session::transport::Error::Session(err))
    }

    /// A relay refuses credentials with UNAUTHORIZED (0x2), or with another code whose reason
    /// says "unauthorized" (moq-relay-ietf's fixed text, whatever layer carried the code), or
    /// over raw QUIC as a QUIC application close that maps back to no session error: each is
    /// `Unauthorized`; other refusals are not.
    #[test]
    fn unauthorized_is_told_by_code_or_by_the_relay_s_text() {
        assert_eq!(
            unauthorized(&webtransport_close(0x2, "")).as_deref(),
            Some("unauthorized")
        );
        assert_eq!(
            unauthorized(&webtransport_close(0x2, "token expired")).as_deref(),
            Some("token expired")
        );
        assert_eq!(
            unauthorized(&webtransport_close(0x1, "unauthorized")).as_deref(),
            Some("unauthorized")
        );
        assert_eq!(
            unauthorized(&quic_close(0x2, "unauthorized")).as_deref(),
            Some("unauthorized")
        );
        assert_eq!(
            unauthorized(&webtransport_close(0x1, "protocol violation")),
            None
        );
        assert_eq!(unauthorized(&quic_close(0x3, "protocol violation")), None);
    }
}
