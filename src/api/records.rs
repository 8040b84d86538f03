//! Records and enums of the UniFFI surface.

use std::time::Duration;

use crate::core;
pub use crate::core::TrackInfo;

/// Certificate trust (core's `TlsConfig`), and a client certificate for relays that require
/// one. Defaults: system roots on, nothing else. The library never logs the client key;
/// the generated record's text form (Kotlin `toString`, Swift `description`, Python `repr`)
/// does show `client_key_pem`, so do not log the configuration (or give the key as a file).
#[derive(Clone, uniffi::Record)]
pub struct TlsOptions {
    /// Trust the system root certificates (honouring `SSL_CERT_FILE` / `SSL_CERT_DIR`).
    #[uniffi(default = true)]
    pub use_system_roots: bool,
    /// Extra trusted CA certificates, PEM text.
    #[uniffi(default = [])]
    pub extra_ca_pem: Vec<String>,
    /// Extra trusted CA certificate files (PEM).
    #[uniffi(default = [])]
    pub extra_ca_files: Vec<String>,
    /// SHA-256 fingerprints (64 hex digits, colons allowed) of accepted relay certificates.
    /// When set, they replace CA validation.
    #[uniffi(default = [])]
    pub pinned_sha256: Vec<String>,
    /// DEVELOPMENT ONLY: accept any certificate. Logged as a warning on every connect.
    #[uniffi(default = false)]
    pub danger_accept_any_certificate: bool,
    /// The client certificate chain to present to a relay that requires one (mutual TLS),
    /// PEM text. Give it here or as `client_certificate_file`, with the key.
    #[uniffi(default = None)]
    pub client_certificate_pem: Option<String>,
    /// The client certificate chain as a PEM file (read at client creation and at each
    /// connect, so a renewed file is picked up).
    #[uniffi(default = None)]
    pub client_certificate_file: Option<String>,
    /// The client certificate's private key, PEM text (never logged by the library).
    #[uniffi(default = None)]
    pub client_key_pem: Option<String>,
    /// The client certificate's private key as a PEM file.
    #[uniffi(default = None)]
    pub client_key_file: Option<String>,
}

impl std::fmt::Debug for TlsOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Written out so the client key stays hidden (configurations get logged).
        f.debug_struct("TlsOptions")
            .field("use_system_roots", &self.use_system_roots)
            .field("extra_ca_pem", &self.extra_ca_pem.len())
            .field("extra_ca_files", &self.extra_ca_files)
            .field("pinned_sha256", &self.pinned_sha256)
            .field(
                "danger_accept_any_certificate",
                &self.danger_accept_any_certificate,
            )
            .field("client_certificate_file", &self.client_certificate_file)
            .field("client_key_file", &self.client_key_file)
            .field(
                "client_key_pem",
                &self.client_key_pem.as_ref().map(|_| "(hidden)"),
            )
            .finish_non_exhaustive()
    }
}

impl TlsOptions {
    /// The client certificate the four `client_*` fields name: none, or a chain and a key,
    /// each given once.
    fn client_certificate(&self) -> Result<Option<core::ClientCertificate>, super::MoqError> {
        let source = |pem: &Option<String>, file: &Option<String>, what: &str| match (pem, file) {
            (Some(pem), None) => Ok(Some(core::PemSource::Pem(pem.clone().into_bytes()))),
            (None, Some(file)) => Ok(Some(core::PemSource::File(file.into()))),
            (None, None) => Ok(None),
            (Some(_), Some(_)) => Err(super::MoqError::InvalidArgument {
                reason: format!("tls: give the client {what} as PEM text or as a file, not both"),
            }),
        };
        let chain = source(
            &self.client_certificate_pem,
            &self.client_certificate_file,
            "certificate",
        )?;
        let key = source(&self.client_key_pem, &self.client_key_file, "key")?;
        match (chain, key) {
            (Some(chain), Some(key)) => Ok(Some(core::ClientCertificate { chain, key })),
            (None, None) => Ok(None),
            _ => Err(super::MoqError::InvalidArgument {
                reason: "tls: a client certificate needs both the certificate and its key".into(),
            }),
        }
    }
}

/// Client configuration. Only `url` is required; every other field has a default.
#[derive(Debug, Clone, uniffi::Record)]
pub struct ClientConfig {
    /// `moqt://host:port` (raw QUIC) or `https://host:port` (WebTransport).
    pub url: String,
    /// Certificate trust.
    #[uniffi(default = None)]
    pub tls: Option<TlsOptions>,
    /// Handshake bound, milliseconds.
    #[uniffi(default = 10000)]
    pub connect_timeout_ms: u64,
    /// Per-request bound (announce, subscribe acknowledgement), milliseconds.
    #[uniffi(default = 10000)]
    pub request_timeout_ms: u64,
    /// How long a subscription waits for a publisher to appear, milliseconds.
    #[uniffi(default = 5000)]
    pub rendezvous_timeout_ms: u64,
    /// QUIC keep-alive interval, milliseconds; must be shorter than `idle_timeout_ms`.
    /// 0 (the default): a quarter of `idle_timeout_ms`, at most 1,000.
    #[uniffi(default = 0)]
    pub keep_alive_interval_ms: u64,
    /// A session silent this long is declared lost (the loss-detection bound), milliseconds.
    #[uniffi(default = 5000)]
    pub idle_timeout_ms: u64,
    /// Largest object accepted on publish and receive, bytes.
    #[uniffi(default = 16777216)]
    pub max_object_size: u64,
    /// Most subscriptions the client may hold at once; one more fails with `LimitReached`.
    #[uniffi(default = 1000)]
    pub max_subscriptions: u32,
    /// Objects each subscription buffers for a reader that falls behind.
    #[uniffi(default = 1024)]
    pub subscription_buffer: u32,
    /// Payload bytes each subscription buffers for a reader that falls behind, and bytes the
    /// transport may receive for its track ahead of it (see docs/memory.md).
    #[uniffi(default = 8388608)]
    pub subscription_buffer_bytes: u64,
    /// Bytes the relay may send on the connection ahead of what the client has read (QUIC's
    /// connection receive window; 64 KiB to 1 TiB).
    #[uniffi(default = 33554432)]
    pub receive_window_bytes: u64,
    /// What a subscription does when that buffer is full (none: `Backpressure`).
    #[uniffi(default)]
    pub overflow: Option<OverflowPolicy>,
    /// Reconnect automatically after the session is lost (none: do not; a lost session ends
    /// every publisher and subscription).
    #[uniffi(default)]
    pub reconnect: Option<ReconnectPolicy>,
    /// Authorization token for relays with authorization on: the base64url text the relay's
    /// issuer hands out (a Common Access Token), sent in SETUP. None: no token.
    /// `Client.set_token` replaces it for the next connect. A relay that takes its token in
    /// the URL instead (`?jwt=...`, a path segment) needs only the URL. The library never logs
    /// it; the generated record's text form (Kotlin `toString`, Swift `description`) does show
    /// it, so do not log the configuration.
    #[uniffi(default = None)]
    pub token: Option<String>,
    /// The MoQT drafts to offer, in order of preference (the relay picks one;
    /// `Client.negotiated_draft` says which). Empty (the default): every draft this client
    /// speaks, newest first (18, then 16). A relay that speaks none of them fails `connect`
    /// with `MoqError.UnsupportedDraft` naming both sides' drafts.
    #[uniffi(default = [])]
    pub drafts: Vec<u32>,
    /// Other relays of the same cluster, tried after `url`, in order (at most 16; same forms
    /// as `url`). `connect` tries `url`, then each of these, until one accepts (each attempt
    /// bounded by `connect_timeout_ms`); with `reconnect` set, a lost session moves to the
    /// relay after the one it lost (then the others, the lost one last) and announces and
    /// subscribes again there. `Client.connected_relay` says which relay is in use. The TLS
    /// options and token apply to every relay. Empty (the default): `url` only.
    #[uniffi(default = [])]
    pub fallback_urls: Vec<String>,
}

/// Which of a client's relays its session is with (`Client.connected_relay`).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct ConnectedRelay {
    /// 0: `ClientConfig.url`; 1 and up: `ClientConfig.fallback_urls[index - 1]`.
    pub index: u32,
    /// That relay's URL, as configured.
    pub url: String,
}

/// Automatic reconnection. While reconnecting the state is `Connecting`; on success the
/// client announces its namespaces again, its publishers continue (starting a new group) and
/// its subscriptions subscribe again, and the state is `Connected`.
///
/// What may be missed: objects published while the session is down are not sent (`publish`
/// fails with `NotConnected`, so the caller knows which), and objects in flight at the loss
/// may be lost. Subscribers continue in order, without duplicates; a jump in `group_id`
/// marks the gap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Record)]
pub struct ReconnectPolicy {
    /// Wait before the first attempt, milliseconds.
    #[uniffi(default = 250)]
    pub initial_delay_ms: u32,
    /// The wait doubles after each failed attempt up to this, milliseconds.
    #[uniffi(default = 5000)]
    pub max_delay_ms: u32,
    /// Attempts before giving up (state `Failed`, subscriptions end); 0 = no limit.
    #[uniffi(default = 0)]
    pub max_attempts: u32,
}

impl From<ReconnectPolicy> for core::ReconnectPolicy {
    fn from(policy: ReconnectPolicy) -> Self {
        core::ReconnectPolicy {
            initial_delay: Duration::from_millis(policy.initial_delay_ms.into()),
            max_delay: Duration::from_millis(policy.max_delay_ms.into()),
            max_attempts: policy.max_attempts,
        }
    }
}

/// What a subscription does when its reader falls `subscription_buffer` objects behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum OverflowPolicy {
    /// Lose nothing: delivery of the track on this client pauses until the reader catches up
    /// (other subscribers of the same track on this client pause too; the publisher and
    /// other clients do not).
    Backpressure,
    /// Keep the newest objects, discard older unread ones; counted by
    /// `Subscriber.dropped_count()` and logged.
    DropOldest,
    /// End the subscription with `LimitReached` (buffered objects can still be read first).
    End,
}

impl From<OverflowPolicy> for core::Overflow {
    fn from(policy: OverflowPolicy) -> Self {
        match policy {
            OverflowPolicy::Backpressure => core::Overflow::Backpressure,
            OverflowPolicy::DropOldest => core::Overflow::DropOldest,
            OverflowPolicy::End => core::Overflow::End,
        }
    }
}

impl ClientConfig {
    pub(crate) fn to_core(&self) -> Result<core::ClientConfig, super::MoqError> {
        let mut config = core::ClientConfig::new(self.url.clone());
        config.fallback_urls = self.fallback_urls.clone();
        // No `tls`: the core's defaults, which the field defaults above restate.
        if let Some(tls) = &self.tls {
            config.tls.use_system_roots = tls.use_system_roots;
            config.tls.extra_ca_pem = tls
                .extra_ca_pem
                .iter()
                .map(|pem| pem.clone().into_bytes())
                .collect();
            config.tls.extra_ca_files = tls.extra_ca_files.iter().map(Into::into).collect();
            config.tls.pinned_sha256 = tls
                .pinned_sha256
                .iter()
                .map(|pin| core::config::parse_fingerprint(pin))
                .collect::<Result<_, _>>()?;
            config.tls.danger_accept_any_certificate = tls.danger_accept_any_certificate;
            config.tls.client_certificate = tls.client_certificate()?;
        }
        config.connect_timeout = Duration::from_millis(self.connect_timeout_ms);
        config.request_timeout = Duration::from_millis(self.request_timeout_ms);
        config.rendezvous_timeout = Duration::from_millis(self.rendezvous_timeout_ms);
        config.idle_timeout = Duration::from_millis(self.idle_timeout_ms);
        config.keep_alive_interval = match self.keep_alive_interval_ms {
            0 => core::config::keep_alive_for(config.idle_timeout),
            ms => Duration::from_millis(ms),
        };
        config.max_object_size = usize::try_from(self.max_object_size).unwrap_or(usize::MAX);
        config.max_subscriptions = self.max_subscriptions as usize;
        config.receive_window = self.receive_window_bytes;
        config.reconnect = self.reconnect.map(Into::into);
        config.token = self.token.as_deref().map(core::Token::parse).transpose()?;
        if !self.drafts.is_empty() {
            config.drafts = self.drafts.clone();
        }
        Ok(config)
    }

    /// The options every subscription of this client uses.
    pub(crate) fn subscriber_options(&self) -> core::SubscriberOptions {
        core::SubscriberOptions {
            buffer: (self.subscription_buffer as usize).max(1),
            buffer_bytes: usize::try_from(self.subscription_buffer_bytes)
                .unwrap_or(usize::MAX)
                .max(1),
            overflow: self.overflow.unwrap_or(OverflowPolicy::Backpressure).into(),
            ..core::SubscriberOptions::default()
        }
    }
}

/// A configuration for `url` with every default (the core's defaults: the same as a
/// `ClientConfig` built with only `url`).
#[uniffi::export]
pub fn default_client_config(url: String) -> ClientConfig {
    let core = core::ClientConfig::new(url);
    let ms = |d: Duration| d.as_millis() as u64;
    ClientConfig {
        tls: None,
        connect_timeout_ms: ms(core.connect_timeout),
        request_timeout_ms: ms(core.request_timeout),
        rendezvous_timeout_ms: ms(core.rendezvous_timeout),
        keep_alive_interval_ms: 0,
        idle_timeout_ms: ms(core.idle_timeout),
        max_object_size: core.max_object_size as u64,
        max_subscriptions: core.max_subscriptions as u32,
        subscription_buffer: core::SubscriberOptions::default().buffer as u32,
        subscription_buffer_bytes: core::SubscriberOptions::default().buffer_bytes as u64,
        receive_window_bytes: core.receive_window,
        overflow: None,
        reconnect: None,
        token: None,
        drafts: Vec::new(),
        fallback_urls: core.fallback_urls,
        url: core.url,
    }
}

/// How a track's objects travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum DeliveryMode {
    /// Reliable and ordered (QUIC streams).
    Stream,
    /// Lossy (QUIC datagrams): may drop, never corrupts; objects must fit one datagram.
    Datagram,
}

/// Publisher settings.
#[derive(Debug, Clone, uniffi::Record)]
pub struct PublisherOptions {
    /// Delivery mode.
    pub delivery: DeliveryMode,
    /// Priority, 0 (highest) to 255.
    #[uniffi(default = 128)]
    pub priority: u8,
    /// Objects per group before a new group starts automatically. Default 4,096: below what
    /// relays accept in one group (moq-dev's relay ends a group past about 8,160 objects).
    #[uniffi(default = 4096)]
    pub max_group_objects: u64,
    /// Stream mode: the most payload bytes published and not yet handed to the network (a
    /// network slower than the publisher). When full, `publish` waits for room up to the
    /// client's request timeout, then fails with `WouldBlock`; `publish_async` waits as long
    /// as it takes. Default 16 MiB.
    #[uniffi(default = 16777216)]
    pub max_queued_bytes: u64,
    /// Stream mode: let subscribers ask for a new group (say, a decoder that needs a key
    /// frame); each request comes out of `Publisher.next_new_group_request()`. Without it
    /// their requests are refused.
    #[uniffi(default = false)]
    pub accept_new_group_requests: bool,
    /// Groups kept for `Client.fetch` and subscribers' `past_groups`: the last this many
    /// (with `retain_bytes`, whichever bound comes first). 0: none kept, FETCH is answered
    /// "not available".
    #[uniffi(default = 0)]
    pub retain_groups: u64,
    /// Payload bytes kept for FETCH at most; whole groups are evicted, oldest first. Default
    /// (and 0) 16 MiB.
    #[uniffi(default = 16777216)]
    pub retain_bytes: u64,
}

impl Default for PublisherOptions {
    fn default() -> Self {
        let core = core::PublisherOptions::default();
        Self {
            delivery: match core.delivery {
                core::DeliveryMode::Stream => DeliveryMode::Stream,
                core::DeliveryMode::Datagram => DeliveryMode::Datagram,
            },
            priority: core.priority,
            max_group_objects: core.max_group_objects,
            max_queued_bytes: core.max_queued_bytes as u64,
            accept_new_group_requests: core.accept_new_group_requests,
            retain_groups: core.retain_groups,
            retain_bytes: core.retain_bytes as u64,
        }
    }
}

impl PublisherOptions {
    pub(crate) fn to_core(&self) -> core::PublisherOptions {
        core::PublisherOptions {
            delivery: match self.delivery {
                DeliveryMode::Stream => core::DeliveryMode::Stream,
                DeliveryMode::Datagram => core::DeliveryMode::Datagram,
            },
            priority: self.priority,
            max_group_objects: self.max_group_objects.max(1),
            max_queued_bytes: usize::try_from(self.max_queued_bytes).unwrap_or(usize::MAX),
            accept_new_group_requests: self.accept_new_group_requests,
            retain_groups: self.retain_groups,
            retain_bytes: usize::try_from(self.retain_bytes).unwrap_or(usize::MAX),
            ..core::PublisherOptions::default()
        }
    }
}

/// Per-subscription options of `Client.subscribe` and `subscribe_with_listener` (buffering
/// is the client's: `ClientConfig.subscription_buffer`...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Record)]
pub struct SubscribeOptions {
    /// Subscriber priority, 0 (highest) to 255, sent in SUBSCRIBE for the relay's scheduling
    /// (the relays tested carry it but do not act on it).
    #[uniffi(default = 128)]
    pub priority: u8,
    /// Which of several ready groups the sending side should send first (none: the
    /// publisher's choice).
    #[uniffi(default = None)]
    pub group_order: Option<GroupOrder>,
    /// Deliver the track's recent past first: the group the live objects start in (from its
    /// start) and up to `past_groups - 1` groups before it, fetched from the publisher (it
    /// must keep them: `PublisherOptions.retain_groups`), then the live objects, with no
    /// duplicate and no gap at the seam. 0: only what is published from now on.
    #[uniffi(default = 0)]
    pub past_groups: u64,
}

/// A range of locations for `Client.fetch`, both ends included.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Record)]
pub struct FetchRange {
    /// First group.
    pub start_group: u64,
    /// Last group.
    pub end_group: u64,
    /// First object in `start_group`.
    #[uniffi(default = 0)]
    pub start_object: u64,
    /// Last object in `end_group`; null: the whole group.
    #[uniffi(default = None)]
    pub end_object: Option<u64>,
}

impl FetchRange {
    pub(crate) fn to_core(self) -> core::FetchRange {
        core::FetchRange {
            start_group: self.start_group,
            start_object: self.start_object,
            end_group: self.end_group,
            end_object: self.end_object,
        }
    }
}

/// The group order a subscription asks for, sent in SUBSCRIBE (the relays tested carry it
/// but do not act on it). Groups reach the app in ascending order either way (within the
/// reorder wait, docs/contract.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum GroupOrder {
    /// Oldest group first.
    Ascending,
    /// Newest group first.
    Descending,
}

impl From<GroupOrder> for core::GroupOrder {
    fn from(order: GroupOrder) -> Self {
        match order {
            GroupOrder::Ascending => core::GroupOrder::Ascending,
            GroupOrder::Descending => core::GroupOrder::Descending,
        }
    }
}

/// A received object.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct ReceivedObject {
    /// Group id.
    pub group_id: u64,
    /// Object id within the group.
    pub object_id: u64,
    /// The payload, exactly as published.
    pub payload: Vec<u8>,
}

impl From<core::Object> for ReceivedObject {
    fn from(object: core::Object) -> Self {
        Self {
            group_id: object.group_id,
            object_id: object.object_id,
            payload: object.payload.to_vec(),
        }
    }
}

/// Bytes per object in [`PackedObjects::index`]: group id (u64), object id (u64), payload
/// length (u32), all little-endian.
pub const PACKED_INDEX_ENTRY: usize = 20;

/// Received objects in packed form: every payload in one buffer plus a fixed-width index.
///
/// The same objects as a `Vec<ReceivedObject>`, crossing the language boundary as two byte
/// strings instead of one record per object: for small objects the per-record conversion in
/// the generated bindings (about 2 us per object in Python) costs more than the transport.
/// The language packages iterate it for you (Python `for group_id, object_id, payload in
/// batch`, Kotlin `batch.forEach { ... }`, Swift `batch.objects`).
#[derive(Debug, Clone, PartialEq, Eq, Default, uniffi::Record)]
pub struct PackedObjects {
    /// The payloads back to back, in order.
    pub payloads: Vec<u8>,
    /// One 20-byte entry per object, in order: group id (u64 LE), object id (u64 LE),
    /// payload length (u32 LE). The payload of entry `i` follows the payload of entry `i - 1`.
    pub index: Vec<u8>,
}

impl PackedObjects {
    pub(crate) fn pack(objects: &[core::Object]) -> Self {
        let bytes = objects.iter().map(|object| object.payload.len()).sum();
        let mut packed = Self {
            payloads: Vec::with_capacity(bytes),
            index: Vec::with_capacity(objects.len() * PACKED_INDEX_ENTRY),
        };
        for object in objects {
            packed
                .index
                .extend_from_slice(&object.group_id.to_le_bytes());
            packed
                .index
                .extend_from_slice(&object.object_id.to_le_bytes());
            // Payloads never exceed `max_object_size`, which config validation keeps within u32.
            let length = u32::try_from(object.payload.len()).unwrap_or(u32::MAX);
            packed.index.extend_from_slice(&length.to_le_bytes());
            packed.payloads.extend_from_slice(&object.payload);
        }
        packed
    }
}

/// Where a published object went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Record)]
pub struct ObjectLocation {
    /// Group id.
    pub group_id: u64,
    /// Object id within the group.
    pub object_id: u64,
}

/// Connection state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum ConnectionState {
    /// Not connected.
    Disconnected,
    /// Connecting.
    Connecting,
    /// Connected.
    Connected,
    /// Connect failed or the session was lost.
    Failed,
}

impl From<core::ConnectionState> for ConnectionState {
    fn from(state: core::ConnectionState) -> Self {
        match state {
            core::ConnectionState::Disconnected => Self::Disconnected,
            core::ConnectionState::Connecting => Self::Connecting,
            core::ConnectionState::Connected => Self::Connected,
            core::ConnectionState::Failed => Self::Failed,
        }
    }
}

/// A track listed in a catalog: its name; codec, MIME type and language tag when the catalog
/// gives them; width and height in pixels, bitrate in bits/s and sample rate in Hz, each 0
/// when unknown. The core's record, exposed as it is (`uniffi::remote` mirrors its fields).
#[uniffi::remote(Record)]
pub struct TrackInfo {
    pub name: String,
    pub codec: Option<String>,
    pub mime_type: Option<String>,
    pub width: u32,
    pub height: u32,
    pub bitrate: u32,
    pub sample_rate: u32,
    pub language: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The client key stays out of the records' debug text (a logged configuration).
    #[test]
    fn the_client_key_is_hidden_from_debug_output() {
        let mut config = default_client_config("moqt://relay:1".into());
        config.tls = Some(TlsOptions {
            use_system_roots: false,
            extra_ca_pem: vec![],
            extra_ca_files: vec![],
            pinned_sha256: vec![],
            danger_accept_any_certificate: false,
            client_certificate_pem: Some("CERT".into()),
            client_certificate_file: None,
            client_key_pem: Some("-----BEGIN PRIVATE KEY-----\nc2VjcmV0\n".into()),
            client_key_file: None,
        });
        let shown = format!("{config:?}");
        assert!(
            !shown.contains("c2VjcmV0") && !shown.contains("PRIVATE"),
            "{shown}"
        );
        assert!(shown.contains("(hidden)"), "{shown}");
    }

    /// The one source of defaults is the core; the UniFFI record's attribute defaults are
    /// checked against `default_client_config` by the Python and Kotlin suites.
    #[test]
    fn the_default_record_means_the_core_defaults() {
        let url = "moqt://relay.example:4443".to_string();
        let record = default_client_config(url.clone());
        assert_eq!(
            format!("{:?}", record.to_core().unwrap()),
            format!("{:?}", core::ClientConfig::new(url))
        );
        assert_eq!(
            format!("{:?}", record.subscriber_options()),
            format!("{:?}", core::SubscriberOptions::default())
        );
        assert_eq!(
            format!("{:?}", PublisherOptions::default().to_core()),
            format!("{:?}", core::PublisherOptions::default())
        );
    }

    #[test]
    fn a_short_idle_timeout_gets_a_keep_alive_within_it_not_an_error() {
        let mut record = default_client_config("moqt://relay.example:4443".into());
        record.idle_timeout_ms = 1_000;
        let config = record.to_core().unwrap();
        config.validate().unwrap();
        assert_eq!(config.keep_alive_interval, Duration::from_millis(250));
        record.keep_alive_interval_ms = 1_000;
        assert!(record.to_core().unwrap().validate().is_err());
    }
}
