//! Errors, one enum per operation. Every variant says what happened and what to do.
//!
//! Messages never contain payloads or credentials (URLs are shown without user info,
//! password or query).

use std::time::Duration;

/// Longest name (namespace, track) quoted in an error message or log line; longer ones are
/// cut, so a hostile or mistaken 4,000-byte name does not flood logs.
const SHOWN_NAME_MAX: usize = 128;

/// `name` as quoted in messages: at most [`SHOWN_NAME_MAX`] bytes (cut at a character
/// boundary, with the full length noted).
pub(crate) fn shown(name: &str) -> std::borrow::Cow<'_, str> {
    if name.len() <= SHOWN_NAME_MAX {
        return name.into();
    }
    let mut end = SHOWN_NAME_MAX;
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}... ({} bytes)", &name[..end], name.len()).into()
}

/// A namespace or track name that cannot be used: empty, malformed or too long. Carried by
/// [`PublishError::InvalidName`] and [`SubscribeError::InvalidName`].
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("invalid name '{name_}': {reason}", name_ = shown(.name))]
pub struct InvalidName {
    /// The offending name: the namespace, the track, or `namespace/track`.
    pub name: String,
    /// Why it cannot be used.
    pub reason: String,
}

/// The client configuration is invalid.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// The URL does not parse.
    #[error("invalid relay URL: {reason}; expected moqt://host:port or https://host:port")]
    InvalidUrl {
        /// Why parsing failed.
        reason: String,
    },
    /// The URL scheme is neither `moqt` nor `https`.
    #[error(
        "unsupported URL scheme '{scheme}'; use moqt:// (raw QUIC) or https:// (WebTransport)"
    )]
    UnsupportedScheme {
        /// The scheme that was given.
        scheme: String,
    },
    /// The URL has no host.
    #[error("relay URL has no host; expected moqt://host:port or https://host:port")]
    MissingHost,
    /// An extra CA certificate could not be used.
    #[error("invalid CA certificate: {reason}; provide PEM-encoded X.509 certificates")]
    InvalidCaCertificate {
        /// What was wrong with it.
        reason: String,
    },
    /// A CA file could not be read.
    #[error("cannot read CA file '{path}': {reason}")]
    CaFileUnreadable {
        /// The file path.
        path: String,
        /// The I/O error.
        reason: String,
    },
    /// The client certificate or its key cannot be used (unreadable file, no PEM block, a
    /// key that does not match the certificate). The message never contains the key.
    #[error("invalid client certificate: {reason}; provide the certificate chain and its private key as PEM")]
    InvalidClientCertificate {
        /// What is wrong with it.
        reason: String,
    },
    /// A certificate fingerprint is not a SHA-256 digest.
    #[error("invalid certificate fingerprint '{value}': expected 32 bytes as 64 hex digits (colons allowed)")]
    InvalidFingerprint {
        /// The rejected value.
        value: String,
    },
    /// An authorization token is not usable (the message never contains the token).
    #[error("invalid token: {reason}; pass the token as its issuer gives it (base64url text)")]
    InvalidToken {
        /// What is wrong with it.
        reason: String,
    },
    /// A numeric setting is out of range.
    #[error("invalid setting {name}: {reason}")]
    InvalidSetting {
        /// The setting's name.
        name: &'static str,
        /// Why it was rejected.
        reason: String,
    },
}

/// Connecting to the relay failed.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ConnectError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The client is already connected or connecting; close it first.
    #[error("already connected or connecting; call close() before connecting again")]
    AlreadyConnected,
    /// The relay did not complete the handshake in time (unreachable address, firewall, or
    /// nothing listening).
    #[error("connection to {url} timed out after {after:?}; check the address and that the relay is running and reachable over UDP")]
    Timeout {
        /// The relay URL (without credentials).
        url: String,
        /// The configured connect timeout.
        after: Duration,
    },
    /// The relay's certificate was not accepted.
    #[error("TLS handshake with {url} failed: {reason}; trust the relay's CA (extra CA certificates) or pin its certificate fingerprint")]
    Tls {
        /// The relay URL (without credentials).
        url: String,
        /// What the TLS layer reported.
        reason: String,
    },
    /// The relay refused this client's certificate: it requires one (mutual TLS) and none
    /// was configured, or the one presented is not signed by a CA it trusts (or expired).
    #[error("relay {url} refused the client certificate: {reason}; configure the certificate and key the relay's operator issued (TlsConfig::client_certificate)")]
    ClientCertificateRejected {
        /// The relay URL (without credentials).
        url: String,
        /// What the relay's TLS alert said.
        reason: String,
    },
    /// The host name could not be resolved.
    #[error("cannot resolve host '{host}': {reason}")]
    Resolve {
        /// The host name.
        host: String,
        /// The resolver's error.
        reason: String,
    },
    /// The relay refused this client's credentials: no token where one is required, or one
    /// it does not accept (wrong signer, expired, malformed). Set a valid token
    /// (`ClientConfig::token`, `Client::set_token`) or use the URL the relay's operator gave.
    #[error("relay {url} refused the credentials ({reason}); present a valid token (ClientConfig::token / set_token) or the token URL the relay's operator gave")]
    Unauthorized {
        /// The relay URL (without credentials).
        url: String,
        /// The relay's reason (e.g. "unauthorized").
        reason: String,
    },
    /// The relay refused the session (wrong protocol version, WebTransport CONNECT refused,
    /// SETUP rejected).
    #[error("relay {url} refused the session: {reason}")]
    Refused {
        /// The relay URL (without credentials).
        url: String,
        /// The relay's reason.
        reason: String,
    },
    /// The relay speaks none of the drafts offered (`ClientConfig::drafts`): it refused every
    /// one in the handshake, or its WebTransport response named none and its raw-QUIC side
    /// speaks none either. `relay` is what it speaks, as far as it said (empty: it named
    /// none); offer one of `relay` if this client speaks it, or use a relay that speaks one of
    /// `offered`.
    #[error("relay {url} speaks {relay_} and this client offered draft {offered_}: no MoQT draft in common; offer one the relay speaks (the client's `drafts` setting; this client speaks draft {all_}), or use a relay that speaks draft {offered_} (e.g. moq-relay-ietf 0.8, moq-dev's moq-relay)",
        relay_ = speaks(.relay), offered_ = super::drafts::listed(.offered),
        all_ = super::drafts::listed(&super::drafts::offered()))]
    UnsupportedDraft {
        /// The relay URL (without credentials).
        url: String,
        /// The drafts this client offered, newest first.
        offered: Vec<u32>,
        /// The drafts the relay speaks, newest first, as far as it named them.
        relay: Vec<u32>,
    },
    /// A network or QUIC error.
    #[error("connection to {url} failed: {reason}")]
    Transport {
        /// The relay URL (without credentials).
        url: String,
        /// The transport error.
        reason: String,
    },
}

/// "draft 16" / "drafts 16 and 14" / "a draft it does not name".
fn speaks(drafts: &[u32]) -> String {
    match drafts {
        [] => "a MoQT draft it does not name".into(),
        [one] => format!("draft {one}"),
        _ => format!("drafts {}", super::drafts::listed(drafts)),
    }
}

/// Announcing a namespace failed.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum AnnounceError {
    /// The client is not connected; call connect() first.
    #[error("not connected; call connect() first")]
    NotConnected,
    /// This session has sent as many requests as a relay accepts in one session (see
    /// `ClientConfig::max_requests_per_session`); nothing was sent. Disconnect and connect
    /// again for a new session.
    #[error("this session has sent {limit} requests, as many as the relay accepts in one session (max_requests_per_session, or a draft-16 relay's MAX_REQUEST_ID); nothing was sent: disconnect and connect again to continue")]
    SessionRequestsExhausted {
        /// The budget.
        limit: u64,
    },
    /// The namespace is empty or malformed.
    #[error("invalid namespace '{ns_}': {reason}", ns_ = shown(.namespace))]
    InvalidNamespace {
        /// The namespace given.
        namespace: String,
        /// Why it is invalid.
        reason: String,
    },
    /// This client, or another publisher on the relay, already announced the namespace.
    #[error("namespace '{ns_}' is already announced (only one publisher per namespace); choose another namespace or close the other publisher", ns_ = shown(.namespace))]
    Duplicate {
        /// The namespace.
        namespace: String,
    },
    /// The relay's authorization refused the announcement: the session's token does not
    /// allow publishing this namespace (or has expired).
    #[error("relay refused to announce '{ns_}': not authorized ({reason}); the token must allow publishing this namespace", ns_ = shown(.namespace))]
    Unauthorized {
        /// The namespace.
        namespace: String,
        /// The relay's reason.
        reason: String,
    },
    /// The relay refused the announcement.
    #[error("relay refused to announce '{ns_}': {reason}", ns_ = shown(.namespace))]
    Refused {
        /// The namespace.
        namespace: String,
        /// The relay's reason.
        reason: String,
    },
    /// The relay did not answer within the request timeout.
    #[error("relay did not confirm the announcement of '{ns_}' within {after:?}", ns_ = shown(.namespace))]
    Timeout {
        /// The namespace.
        namespace: String,
        /// The configured request timeout.
        after: Duration,
    },
}

/// Creating a publisher or publishing an object failed.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum PublishError {
    /// The client is not connected (or the session was lost); reconnect first.
    #[error("not connected; the session is closed or was lost")]
    NotConnected,
    /// The namespace or track name is empty or malformed.
    #[error(transparent)]
    InvalidName(#[from] InvalidName),
    /// The namespace was never announced by this client.
    #[error("namespace '{ns_}' is not announced by this client; call announce() first", ns_ = shown(.namespace))]
    NotAnnounced {
        /// The namespace.
        namespace: String,
    },
    /// A publisher for this track already exists on this client.
    #[error("track '{track_}' in '{ns_}' already has a publisher on this client", ns_ = shown(.namespace), track_ = shown(.track))]
    DuplicateTrack {
        /// The namespace.
        namespace: String,
        /// The track name.
        track: String,
    },
    /// The payload exceeds the configured maximum object size.
    #[error("object of {size} bytes exceeds the maximum object size of {max} bytes; split it or raise max_object_size")]
    ObjectTooLarge {
        /// The payload size.
        size: usize,
        /// The configured maximum.
        max: usize,
    },
    /// The payload does not fit in one QUIC datagram.
    #[error("object of {size} bytes does not fit in a datagram (at most {max} bytes); use stream delivery for large objects")]
    DatagramTooLarge {
        /// The payload size.
        size: usize,
        /// The largest datagram payload the path allows.
        max: usize,
    },
    /// Published objects wait for a network slower than the publisher, at its limits
    /// (`max_queued_bytes`, or 512 new groups); nothing was published.
    #[error("{queued} bytes in {groups} new groups already wait to be sent (limits: max_queued_bytes {max}, {max_groups} groups): the network or relay is slower than the publisher; publish again once there is room (the waiting form of publish does), publish less, or raise max_queued_bytes")]
    WouldBlock {
        /// Bytes published and not yet handed to QUIC.
        queued: usize,
        /// Groups whose first object is not yet handed to QUIC.
        groups: usize,
        /// The publisher's `max_queued_bytes`.
        max: usize,
        /// The most groups that may wait.
        max_groups: usize,
    },
    /// The publisher was closed.
    #[error("publisher is closed")]
    Closed,
    /// The track was closed underneath the publisher.
    #[error("track closed: {reason}")]
    TrackClosed {
        /// The transport's reason.
        reason: String,
    },
}

/// Subscribing failed, or an established subscription ended with an error.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum SubscribeError {
    /// The client is not connected (or the session was lost).
    #[error("not connected; the session is closed or was lost")]
    NotConnected,
    /// The namespace or track name is empty or malformed.
    #[error(transparent)]
    InvalidName(#[from] InvalidName),
    /// No publisher offered the track within the rendezvous period.
    #[error("track '{track_}' in '{ns_}' not found: no publisher announced it within {waited:?}; check the names or raise the rendezvous timeout", ns_ = shown(.namespace), track_ = shown(.track))]
    NotFound {
        /// The namespace.
        namespace: String,
        /// The track name.
        track: String,
        /// How long the subscription waited for a publisher.
        waited: Duration,
    },
    /// The session's previous subscription to the track was still open in the transport
    /// after the request timeout (it normally drains within seconds of unsubscribing).
    #[error("track '{track_}' in '{ns_}' is still subscribed by this client's previous subscription; retry later", ns_ = shown(.namespace), track_ = shown(.track))]
    AlreadySubscribed {
        /// The namespace.
        namespace: String,
        /// The track name.
        track: String,
    },
    /// The relay's authorization refused the subscription: the session's token does not
    /// allow subscribing to this track (or has expired).
    #[error("subscription refused: not authorized ({reason}); the token must allow subscribing to this track")]
    Unauthorized {
        /// The relay's reason.
        reason: String,
    },
    /// The relay or publisher refused the subscription.
    #[error("subscription refused: {reason}")]
    Refused {
        /// The peer's reason.
        reason: String,
    },
    /// The relay did not answer within the request timeout.
    #[error("relay did not answer the subscription within {after:?}; it may be unreachable, or limit the subscriptions one client holds at once (moq-relay-ietf admits about 100: each holds a request stream)")]
    Timeout {
        /// The configured timeout.
        after: Duration,
    },
    /// The publisher went away or the relay closed the track before it ended normally.
    #[error("publisher lost: {reason}")]
    PublisherLost {
        /// The transport's reason.
        reason: String,
    },
    /// The connection to the relay was lost.
    #[error("connection lost while subscribed")]
    ConnectionLost,
    /// An incoming object exceeded the configured maximum object size; the subscription was
    /// ended rather than buffer it.
    #[error("incoming object of {size} bytes exceeds the maximum object size of {max} bytes; subscription ended")]
    ObjectTooLarge {
        /// The announced object size.
        size: usize,
        /// The configured maximum.
        max: usize,
    },
    /// The reader fell `buffered` objects behind under the `End` overflow policy, so the
    /// subscription was ended rather than lose objects silently. Read faster, enlarge the
    /// buffer, or choose another overflow policy.
    #[error("subscriber fell {buffered} objects behind (its buffer is full) and the overflow policy is End; subscription ended")]
    SlowConsumer {
        /// Objects buffered when it ended.
        buffered: usize,
    },
    /// The reader took nothing (`Backpressure`, its buffer full) while the track's streams
    /// waited unread, and the connection's stalled streams reached `max_streams` (half its
    /// `receive_window`, in stream windows): the subscription was ended so the connection's
    /// other tracks keep flowing. Objects buffered before are still delivered first. Read
    /// faster, unsubscribe while paused, or raise `buffer_bytes` / `receive_window`.
    #[error("the subscriber took nothing while its track's streams waited unread, and the connection's {max_streams} stalled streams (half its receive_window) were reached; subscription ended so other tracks keep flowing: read faster, unsubscribe while paused, or raise buffer_bytes or receive_window")]
    Stalled {
        /// The most streams the connection's stalled subscriptions may leave unread.
        max_streams: usize,
    },
    /// The client already holds `max_subscriptions` subscriptions; close one first (or raise
    /// the limit in the client configuration).
    #[error("this client already holds {max} subscriptions (max_subscriptions); close one or raise the limit")]
    TooManySubscriptions {
        /// The configured maximum.
        max: usize,
    },
    /// This session has sent as many requests as a relay accepts in one session (see
    /// `ClientConfig::max_requests_per_session`); nothing was sent. Disconnect and connect
    /// again for a new session.
    #[error("this session has sent {limit} requests, as many as the relay accepts in one session (max_requests_per_session, or a draft-16 relay's MAX_REQUEST_ID); nothing was sent: disconnect and connect again to continue")]
    SessionRequestsExhausted {
        /// The budget.
        limit: u64,
    },
}

/// Why a [`Client::fetch`](super::Client::fetch) failed, or its response ended early.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum FetchError {
    /// The client is not connected (or the session was lost).
    #[error("not connected; the session is closed or was lost")]
    NotConnected,
    /// The namespace or track name is empty or malformed.
    #[error(transparent)]
    InvalidName(#[from] InvalidName),
    /// The range is empty (its end before its start).
    #[error("invalid FETCH range: {reason}")]
    InvalidRange {
        /// What is wrong with it.
        reason: String,
    },
    /// Nothing of the range is available: the track is not published, or the publisher no
    /// longer keeps (or never kept) those groups. A publisher keeps its last
    /// `retain_groups` groups (`PublisherOptions`), none by default.
    #[error("objects of track '{track_}' in '{ns_}' not available: {reason}", ns_ = shown(.namespace), track_ = shown(.track))]
    NotAvailable {
        /// The namespace.
        namespace: String,
        /// The track name.
        track: String,
        /// The peer's reason.
        reason: String,
    },
    /// FETCH cannot be sent on this session: the relay speaks draft 16, whose FETCH this
    /// client does not carry.
    #[error("FETCH is not supported here: {reason}")]
    Unsupported {
        /// Why.
        reason: String,
    },
    /// The relay's authorization refused the FETCH.
    #[error(
        "FETCH refused: not authorized ({reason}); the token must allow subscribing to this track"
    )]
    Unauthorized {
        /// The relay's reason.
        reason: String,
    },
    /// The relay or publisher refused the FETCH.
    #[error("FETCH refused: {reason}")]
    Refused {
        /// The peer's reason.
        reason: String,
    },
    /// The relay did not answer within the request timeout.
    #[error("relay did not answer the FETCH within {after:?}")]
    Timeout {
        /// The configured timeout.
        after: Duration,
    },
    /// The response ended before its end (the publisher, a relay or the connection reset
    /// it): the objects read so far are all there is.
    #[error("FETCH response cut short: {reason}")]
    Cut {
        /// The transport's reason.
        reason: String,
    },
    /// An object of the response exceeded the configured maximum object size; the FETCH was
    /// cancelled rather than buffer it.
    #[error("fetched object of {size} bytes exceeds the maximum object size of {max} bytes; FETCH cancelled")]
    ObjectTooLarge {
        /// The announced object size.
        size: usize,
        /// The configured maximum.
        max: usize,
    },
    /// This session has sent as many requests as the relay accepts in one session.
    #[error("this session has sent {limit} requests, as many as the relay accepts in one session; nothing was sent: disconnect and connect again to continue")]
    SessionRequestsExhausted {
        /// The budget.
        limit: u64,
    },
}
