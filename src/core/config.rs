//! Client configuration: where the relay is, whom to trust, and how long to wait.

use std::path::PathBuf;
use std::time::Duration;

use super::error::ConfigError;

/// How to reach the relay, taken from the URL scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// `moqt://`: MoQT directly on QUIC (ALPN `moqt-18`).
    RawQuic,
    /// `https://`: MoQT over WebTransport over HTTP/3.
    WebTransport,
}

/// Which certificates the client accepts from the relay.
///
/// Default: the operating system's roots (honouring `SSL_CERT_FILE` and `SSL_CERT_DIR` as
/// OpenSSL-based tools do). Verification is never switched off silently: the only way to
/// skip it is [`TlsConfig::danger_accept_any_certificate`].
#[derive(Debug, Clone)]
pub struct TlsConfig {
    /// Trust the system's root certificates. Default `true`.
    pub use_system_roots: bool,
    /// Extra trusted CA certificates, PEM text (one or more certificates per entry).
    pub extra_ca_pem: Vec<Vec<u8>>,
    /// Extra trusted CA certificate files (PEM).
    pub extra_ca_files: Vec<PathBuf>,
    /// SHA-256 fingerprints of accepted end-entity certificates. When non-empty, the relay's
    /// certificate is accepted if and only if its SHA-256 digest is in this list (like
    /// WebTransport `serverCertificateHashes`). What pinned mode checks: the digest, and the
    /// TLS 1.3 handshake signature (the relay holds the certificate's key). What it does not:
    /// the CA chain, the host name and the validity period (an expired pinned certificate
    /// is accepted; rotate pins when the relay's certificate changes).
    pub pinned_sha256: Vec<[u8; 32]>,
    /// DEVELOPMENT ONLY: accept any certificate, so anyone on the path can read and alter the
    /// session. Logged as a warning on every connect. Never enable in a shipped app.
    pub danger_accept_any_certificate: bool,
    /// The certificate this client presents to a relay that asks for one (mutual TLS).
    /// Default `None`: none presented; a relay that requires one fails `connect` with
    /// [`ConnectError::ClientCertificateRejected`](super::ConnectError::ClientCertificateRejected).
    pub client_certificate: Option<ClientCertificate>,
}

/// A client certificate and its private key, for relays that require mutual TLS.
///
/// Files are read when the client is created (a mistake fails there) and again at each
/// connect and reconnect, so a certificate renewed on disk is picked up without a new client.
#[derive(Clone)]
pub struct ClientCertificate {
    /// The certificate chain, PEM: the client's certificate first, then any intermediates.
    pub chain: PemSource,
    /// The private key, PEM (PKCS#8, PKCS#1 or SEC1). Never logged or shown.
    pub key: PemSource,
}

impl std::fmt::Debug for ClientCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key stays out of debug output (configurations get logged).
        f.debug_struct("ClientCertificate")
            .field("chain", &self.chain)
            .field("key", &"(hidden)")
            .finish()
    }
}

/// PEM text given inline or as a file to read.
#[derive(Clone)]
pub enum PemSource {
    /// The PEM text itself.
    Pem(Vec<u8>),
    /// A file holding it.
    File(PathBuf),
}

impl std::fmt::Debug for PemSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PemSource::Pem(pem) => write!(f, "Pem({} bytes)", pem.len()),
            PemSource::File(path) => write!(f, "File({})", path.display()),
        }
    }
}

impl Default for TlsConfig {
    fn default() -> Self {
        Self {
            use_system_roots: true,
            extra_ca_pem: Vec::new(),
            extra_ca_files: Vec::new(),
            pinned_sha256: Vec::new(),
            danger_accept_any_certificate: false,
            client_certificate: None,
        }
    }
}

/// Parse a SHA-256 fingerprint written as 64 hex digits, optionally separated by colons.
pub fn parse_fingerprint(text: &str) -> Result<[u8; 32], ConfigError> {
    let invalid = || ConfigError::InvalidFingerprint {
        value: text.chars().take(100).collect(),
    };
    let hex: Vec<u8> = text
        .bytes()
        .filter(|b| *b != b':' && !b.is_ascii_whitespace())
        .collect();
    if hex.len() != 64 {
        return Err(invalid());
    }
    let mut out = [0u8; 32];
    for (i, pair) in hex.chunks(2).enumerate() {
        let digits = std::str::from_utf8(pair).map_err(|_| invalid())?;
        out[i] = u8::from_str_radix(digits, 16).map_err(|_| invalid())?;
    }
    Ok(out)
}

/// Everything a [`Client`](super::Client) needs. Build with [`ClientConfig::new`] and adjust
/// the public fields; [`ClientConfig::validate`] checks them (connect calls it too).
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Relay URL: `moqt://host:port[/path]` or `https://host:port[/path]` (port defaults to 443).
    pub url: String,
    /// Other relays of the same cluster, tried after `url`, in order (at most
    /// [`MAX_FALLBACK_URLS`]; same forms as `url`, schemes may differ). `connect` tries `url`,
    /// then each of these, until one accepts the session (each attempt bounded by
    /// `connect_timeout`); with `reconnect` set, a lost session tries the relay after the one
    /// it lost first, then the others in turn, the lost one last, and restores announcements
    /// and subscriptions on whichever accepts (the cluster routes them to the publisher's
    /// relay). `Client::connected_relay` says which one the session is on. Default empty:
    /// `url` only. The TLS settings (and `token`) apply to every relay: trust each one's
    /// certificate.
    pub fallback_urls: Vec<String>,
    /// Certificate trust.
    pub tls: TlsConfig,
    /// Bound on the QUIC + TLS + MoQT SETUP handshake. Default 10 s.
    pub connect_timeout: Duration,
    /// Bound on each request to the relay (announce, subscribe acknowledgement). Default 10 s.
    pub request_timeout: Duration,
    /// How long a subscription waits for a publisher to appear before failing with
    /// `NotFound`. Default 5 s; zero fails at once.
    pub rendezvous_timeout: Duration,
    /// QUIC keep-alive interval. Default 1 s. Must be shorter than `idle_timeout`.
    pub keep_alive_interval: Duration,
    /// A session that hears nothing from the relay for this long is declared lost
    /// (state `Failed`). This is the bound on detecting a dead relay or network. Default 5 s.
    pub idle_timeout: Duration,
    /// Largest object accepted on publish and on receive, in bytes. Default 16 MiB.
    pub max_object_size: usize,
    /// Most subscriptions this client may hold at once (each costs a buffer and, per track,
    /// an upstream subscription); one more fails with `TooManySubscriptions`. Default 1,000.
    pub max_subscriptions: usize,
    /// Most requests (SUBSCRIBE, including the retries of one waiting for its publisher,
    /// PUBLISH_NAMESPACE, SUBSCRIBE_NAMESPACE) one session may send. A relay built on
    /// moq-transport accepts at most 65,536 request ids per session and ends the whole
    /// session on the next one (TOO_MANY_REQUESTS); past this budget the client refuses the
    /// request instead, with `SessionRequestsExhausted`, and the session carries on (a new
    /// session, after a disconnect and connect, has a new budget). Default 65,000.
    pub max_requests_per_session: u64,
    /// Most namespaces discovery remembers as announced (what a new `watch_namespaces`
    /// starts from). Announcements past it are ignored, with a warning, until some are
    /// withdrawn: a peer announcing without end cannot grow the client. Default 10,000.
    pub max_announced_namespaces: usize,
    /// Bytes the relay may send on this connection ahead of what the client has read (QUIC's
    /// connection receive window; each stream may take at most 1 MiB of it). With the
    /// subscriptions' `buffer_bytes`, the bound on received data held in memory. A
    /// subscription under `Backpressure` whose reader stops holds up to 1 MiB per open
    /// group of its track here; stalled subscriptions together may leave at most half the
    /// window's worth of streams unread (16 streams of 1 MiB at 32 MiB): past that, when
    /// another subscription shares the connection, the stalled one ends with
    /// `SubscribeError::Stalled`, so the others keep flowing. Default 32 MiB.
    pub receive_window: u64,
    /// Reconnect automatically after the session is lost. Default `None`: a lost session
    /// ends every publisher and subscription (state `Failed`).
    pub reconnect: Option<ReconnectPolicy>,
    /// The token to present at session setup (SETUP's AUTHORIZATION TOKEN), for relays with
    /// authorization on; see [`Token`](super::Token). `Client::set_token` replaces it for the
    /// next connect or reconnect. Default `None`. A relay that refuses it fails `connect` with
    /// [`ConnectError::Unauthorized`](super::ConnectError::Unauthorized).
    pub token: Option<super::Token>,
    /// The MoQT drafts to offer, in order of preference; the relay picks one
    /// (`Client::negotiated_draft` says which). Default: every draft this client speaks,
    /// newest first (`core::drafts::offered()`: 18, then 16). A relay that speaks none of
    /// them fails `connect` with `ConnectError::UnsupportedDraft`, naming both sides' drafts.
    pub drafts: Vec<u32>,
}

/// How a client reconnects after losing its session (see [`ClientConfig::reconnect`]).
///
/// While reconnecting the state is `Connecting`; once a new session is up the client
/// announces its namespaces again, its publishers continue on it, its subscriptions subscribe
/// again, and the state is `Connected`. Objects published while the session is down are not
/// delivered: `publish` fails with `NotConnected` during the gap (the caller knows exactly
/// which objects were not sent), and objects still in flight when the session was lost may be
/// lost. A subscriber continues in order and without duplicates from the first object it
/// receives on the new subscription: a publisher starts a new group after reconnecting, so a
/// jump in `group_id` marks the gap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReconnectPolicy {
    /// Wait before the first attempt. Default 250 ms.
    pub initial_delay: Duration,
    /// The wait doubles after each failed attempt, up to this. Default 5 s.
    pub max_delay: Duration,
    /// Attempts before giving up (state `Failed`, subscriptions end with `ConnectionLost`);
    /// 0 means no limit. Default 0. With `fallback_urls`, one attempt tries every relay once.
    pub max_attempts: u32,
}

impl Default for ReconnectPolicy {
    fn default() -> Self {
        Self {
            initial_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(5),
            max_attempts: 0,
        }
    }
}

impl ClientConfig {
    /// Defaults for `url`: system roots, 10 s connect and request timeouts, 5 s rendezvous,
    /// 1 s keep-alive, 5 s loss detection, 16 MiB objects.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            fallback_urls: Vec::new(),
            tls: TlsConfig::default(),
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(10),
            rendezvous_timeout: Duration::from_secs(5),
            keep_alive_interval: keep_alive_for(DEFAULT_IDLE_TIMEOUT),
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            max_object_size: 16 * 1024 * 1024,
            max_subscriptions: 1000,
            max_requests_per_session: 65_000,
            max_announced_namespaces: 10_000,
            receive_window: DEFAULT_RECEIVE_WINDOW,
            reconnect: None,
            token: None,
            drafts: super::drafts::offered(),
        }
    }

    /// Check the URL and settings; returns the parsed URL and its scheme.
    pub fn validate(&self) -> Result<(url::Url, Scheme), ConfigError> {
        let (url, scheme) = parse_url(&self.url)?;
        let positive = |name: &'static str, d: Duration| {
            if d.is_zero() {
                Err(ConfigError::InvalidSetting {
                    name,
                    reason: "must be greater than zero".into(),
                })
            } else {
                Ok(())
            }
        };
        positive("connect_timeout", self.connect_timeout)?;
        positive("request_timeout", self.request_timeout)?;
        positive("keep_alive_interval", self.keep_alive_interval)?;
        positive("idle_timeout", self.idle_timeout)?;
        if let Some(policy) = &self.reconnect {
            positive("reconnect.initial_delay", policy.initial_delay)?;
            if policy.max_delay < policy.initial_delay {
                return Err(ConfigError::InvalidSetting {
                    name: "reconnect.max_delay",
                    reason: "must not be shorter than reconnect.initial_delay".into(),
                });
            }
        }
        if self.max_requests_per_session == 0 || self.max_requests_per_session > 65_536 {
            return Err(ConfigError::InvalidSetting {
                name: "max_requests_per_session",
                reason: "must be 1 to 65,536 (what a moq-transport relay accepts per session)"
                    .into(),
            });
        }
        if self.tls.danger_accept_any_certificate && !self.tls.pinned_sha256.is_empty() {
            return Err(ConfigError::InvalidSetting {
                name: "tls.danger_accept_any_certificate",
                reason: "cannot be combined with pinned_sha256 (the pins would be ignored); remove one of them".into(),
            });
        }
        if !(MIN_RECEIVE_WINDOW..=MAX_RECEIVE_WINDOW).contains(&self.receive_window) {
            return Err(ConfigError::InvalidSetting {
                name: "receive_window",
                reason: format!(
                    "must be between {MIN_RECEIVE_WINDOW} and {MAX_RECEIVE_WINDOW} bytes"
                ),
            });
        }
        if self.max_announced_namespaces == 0 {
            return Err(ConfigError::InvalidSetting {
                name: "max_announced_namespaces",
                reason: "must be greater than zero".into(),
            });
        }
        if self.max_subscriptions == 0 {
            return Err(ConfigError::InvalidSetting {
                name: "max_subscriptions",
                reason: "must be greater than zero".into(),
            });
        }
        if self.keep_alive_interval >= self.idle_timeout {
            return Err(ConfigError::InvalidSetting {
                name: "keep_alive_interval",
                reason: "must be shorter than idle_timeout".into(),
            });
        }
        if self.idle_timeout > Duration::from_secs(600) {
            return Err(ConfigError::InvalidSetting {
                name: "idle_timeout",
                reason: "must be at most 600 s".into(),
            });
        }
        let speaks = super::drafts::offered();
        if self.drafts.is_empty() || self.drafts.iter().any(|d| !speaks.contains(d)) {
            return Err(ConfigError::InvalidSetting {
                name: "drafts",
                reason: format!(
                    "must list one or more of the drafts this client speaks ({})",
                    super::drafts::listed(&speaks)
                ),
            });
        }
        if self.max_object_size == 0 {
            return Err(ConfigError::InvalidSetting {
                name: "max_object_size",
                reason: "must be greater than zero".into(),
            });
        }
        if self.max_object_size > MAX_OBJECT_SIZE_LIMIT {
            // Packed batches carry each length as a u32; no object should be near this anyway.
            return Err(ConfigError::InvalidSetting {
                name: "max_object_size",
                reason: format!("must be at most {MAX_OBJECT_SIZE_LIMIT} bytes (4 GiB - 1)"),
            });
        }
        self.relays()?;
        Ok((url, scheme))
    }

    /// `url`, then `fallback_urls`, parsed: the relays a client tries, in order.
    pub(crate) fn relays(&self) -> Result<Vec<(url::Url, Scheme)>, ConfigError> {
        if self.fallback_urls.len() > MAX_FALLBACK_URLS {
            return Err(ConfigError::InvalidSetting {
                name: "fallback_urls",
                reason: format!("at most {MAX_FALLBACK_URLS} relays"),
            });
        }
        let mut relays = vec![parse_url(&self.url)?];
        for (index, text) in self.fallback_urls.iter().enumerate() {
            let relay = parse_url(text).map_err(|err| ConfigError::InvalidSetting {
                name: "fallback_urls",
                reason: format!("entry {index}: {err}"),
            })?;
            relays.push(relay);
        }
        Ok(relays)
    }
}

/// The most fallback relays a client takes: each dead one costs up to `connect_timeout` on
/// every pass of a connect or reconnect, so a longer list would only stretch failover.
pub const MAX_FALLBACK_URLS: usize = 16;

/// The default `idle_timeout`.
/// Default [`ClientConfig::receive_window`].
pub const DEFAULT_RECEIVE_WINDOW: u64 = 32 * 1024 * 1024;
/// Smallest [`ClientConfig::receive_window`]: room for a few packets.
const MIN_RECEIVE_WINDOW: u64 = 64 * 1024;
/// Largest [`ClientConfig::receive_window`] (QUIC's variable-length integer limit is far
/// higher; this keeps a typo from meaning "unbounded").
const MAX_RECEIVE_WINDOW: u64 = 1 << 40;
/// The most one QUIC stream may hold unread, within the connection's window.
pub(crate) const STREAM_RECEIVE_WINDOW: u64 = 1024 * 1024;

/// How many streams the subscriptions of one connection may leave unread at once while their
/// readers are stalled (`Backpressure` with nothing taken for a second): each holds up to a
/// stream window of the connection's `receive_window`, so together they may hold at most half
/// of it (at least 2 streams). Past that, when another subscription shares the connection, the
/// stalled one ends with [`super::SubscribeError::Stalled`] instead of freezing the others (a
/// subscription alone may stall as long as its reader likes: it loses nothing).
pub(crate) fn max_stalled_streams(receive_window: u64) -> usize {
    let per_stream = STREAM_RECEIVE_WINDOW.min(receive_window).max(1);
    ((receive_window / per_stream / 2) as usize).max(2)
}

const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(5);

/// The keep-alive interval used when none is chosen (the faces' "0" or unset): a quarter of
/// `idle_timeout`, so several keep-alives fit in the loss-detection bound, and at most 1 s.
pub fn keep_alive_for(idle_timeout: Duration) -> Duration {
    (idle_timeout / 4).min(Duration::from_secs(1))
}

/// The largest `max_object_size` accepted.
pub const MAX_OBJECT_SIZE_LIMIT: usize = u32::MAX as usize;

/// Parse and check a relay URL: scheme `moqt` or `https`, and a host.
pub fn parse_url(text: &str) -> Result<(url::Url, Scheme), ConfigError> {
    let url = url::Url::parse(text).map_err(|err| ConfigError::InvalidUrl {
        reason: err.to_string(),
    })?;
    let scheme = match url.scheme() {
        "moqt" => Scheme::RawQuic,
        "https" => Scheme::WebTransport,
        other => {
            return Err(ConfigError::UnsupportedScheme {
                scheme: other.chars().take(32).collect(),
            })
        }
    };
    match url.host_str() {
        Some(host) if !host.is_empty() => {}
        _ => return Err(ConfigError::MissingHost),
    }
    Ok((url, scheme))
}

/// The URL as safe to show in messages and logs: scheme, host and port only. User info,
/// query and path are left out: relays put credentials in each (Cloudflare-style
/// `https://relay/<jwt>`); a path is shown as `/...`.
pub fn redacted(url: &url::Url) -> String {
    let host = url.host_str().unwrap_or("");
    let path = if url.path().trim_matches('/').is_empty() {
        ""
    } else {
        "/..."
    };
    match url.port() {
        Some(port) => format!("{}://{host}:{port}{path}", url.scheme()),
        None => format!("{}://{host}{path}", url.scheme()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_both_schemes() {
        assert_eq!(parse_url("moqt://relay:4443").unwrap().1, Scheme::RawQuic);
        assert_eq!(parse_url("https://relay").unwrap().1, Scheme::WebTransport);
    }

    #[test]
    fn pins_and_accept_any_certificate_together_are_a_config_error() {
        let mut config = ClientConfig::new("moqt://relay:4443");
        config.tls.pinned_sha256.push([0xAB; 32]);
        config.tls.danger_accept_any_certificate = true;
        let err = config.validate().unwrap_err();
        assert!(err.to_string().contains("pinned_sha256"), "{err}");
        config.tls.danger_accept_any_certificate = false;
        assert!(config.validate().is_ok());
    }

    #[test]
    fn rejects_other_schemes_and_missing_hosts() {
        assert!(matches!(
            parse_url("http://relay:1"),
            Err(ConfigError::UnsupportedScheme { .. })
        ));
        assert!(matches!(
            parse_url("not a url"),
            Err(ConfigError::InvalidUrl { .. })
        ));
        assert!(parse_url("moqt:///path").is_err());
    }

    #[test]
    fn max_object_size_must_fit_a_packed_length() {
        let mut config = ClientConfig::new("moqt://relay.example:4443");
        config.max_object_size = MAX_OBJECT_SIZE_LIMIT;
        assert!(config.validate().is_ok());
        config.max_object_size = MAX_OBJECT_SIZE_LIMIT + 1;
        let err = config.validate().expect_err("over the limit");
        assert!(err.to_string().contains("max_object_size"), "{err}");
    }

    #[test]
    fn redaction_drops_credentials_query_and_path() {
        let url = url::Url::parse("https://user:secret@relay:4443/room?token=abc").unwrap();
        assert_eq!(redacted(&url), "https://relay:4443/...");
        let url = url::Url::parse("https://relay/eyJhbGciOiJFZERTQSJ9.payload.sig").unwrap();
        assert_eq!(redacted(&url), "https://relay/...");
        let url = url::Url::parse("moqt://relay:4443").unwrap();
        assert_eq!(redacted(&url), "moqt://relay:4443");
    }

    #[test]
    fn fingerprints_parse_with_and_without_colons() {
        let hex = "AB".repeat(32);
        assert_eq!(parse_fingerprint(&hex).unwrap(), [0xAB; 32]);
        let colons = vec!["ab"; 32].join(":");
        assert_eq!(parse_fingerprint(&colons).unwrap(), [0xAB; 32]);
        assert!(parse_fingerprint("abcd").is_err());
    }

    #[test]
    fn keep_alive_must_be_shorter_than_idle_timeout() {
        let mut config = ClientConfig::new("moqt://relay:1");
        config.keep_alive_interval = config.idle_timeout;
        assert!(matches!(
            config.validate(),
            Err(ConfigError::InvalidSetting {
                name: "keep_alive_interval",
                ..
            })
        ));
    }
}
