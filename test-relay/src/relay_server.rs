//! How a test relay is put together: moq-relay-ietf on one UDP socket, one certificate and a
//! coordinator for a single relay.
//!
//! This one file is compiled twice: into `moq-test-relay` (on the workspace's patched
//! moq-transport) and into `moq-upstream-relay` (`test-relay/upstream/`, its own workspace on
//! the published, unpatched moq-transport). The two relays differ only in the moq-transport
//! they link, which is what a test run against both is meant to compare.

use std::net::UdpSocket;
use std::sync::Arc;

use async_trait::async_trait;
use moq_native_ietf::quic;
use moq_relay_ietf::{
    AuthPublicKey, Coordinator, CoordinatorError, CoordinatorResult, NamespaceOrigin,
    NamespaceRegistration, Relay, RelayConfig, ScopeAuthConfig, ScopeConfig,
};
use moq_transport::coding::TrackNamespace;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// The connection path whose sessions must present a valid token in SETUP
/// (`moqt://host:port/secure`, `https://host:port/secure`); every other path is open. The
/// relay checks Common Access Tokens (moq-relay-ietf's `auth-cat`), as a deployment would.
pub const AUTH_PATH: &str = "/secure";
/// The issuer (`iss`) the relay accepts on [`AUTH_PATH`].
pub const TOKEN_ISSUER: &str = "moq-ffi-tests";
/// The audience (`aud`) the relay accepts on [`AUTH_PATH`].
pub const TOKEN_AUDIENCE: &str = "moq-test-relay";

/// Coordinator for a single relay: every namespace is local, nothing is found elsewhere.
/// With `auth_pem` (an ES256 public key), sessions on [`AUTH_PATH`] need a token it signed.
struct SingleRelayCoordinator {
    auth_pem: Option<String>,
}

#[async_trait]
impl Coordinator for SingleRelayCoordinator {
    async fn register_namespace(
        &self,
        _scope: Option<&str>,
        _namespace: &TrackNamespace,
        _context: &moq_relay_ietf::CoordinatorContext,
    ) -> CoordinatorResult<NamespaceRegistration> {
        Ok(NamespaceRegistration::new(()))
    }

    async fn unregister_namespace(
        &self,
        _scope: Option<&str>,
        _namespace: &TrackNamespace,
    ) -> CoordinatorResult<()> {
        Ok(())
    }

    async fn lookup(
        &self,
        _scope: Option<&str>,
        _namespace: &TrackNamespace,
    ) -> CoordinatorResult<(NamespaceOrigin, Option<moq_native_ietf::Client>)> {
        Err(CoordinatorError::NamespaceNotFound)
    }

    async fn get_scope_config(&self, scope: Option<&str>) -> CoordinatorResult<ScopeConfig> {
        let mut config = ScopeConfig::default();
        if let (Some(AUTH_PATH), Some(pem)) = (scope, &self.auth_pem) {
            config.auth = Some(
                ScopeAuthConfig::new(vec![AuthPublicKey::es256(pem.clone())])
                    .with_issuers(vec![TOKEN_ISSUER.to_string()])
                    .with_audiences(vec![TOKEN_AUDIENCE.to_string()]),
            );
        }
        Ok(config)
    }
}

/// TLS for a relay serving `cert` (DER) with its PKCS#8 `key_der`; TLS 1.3 only, ring.
/// With `client_ca`, every client must present a certificate that CA signed (mutual TLS).
pub fn tls_config(
    cert: &CertificateDer<'static>,
    key_der: &[u8],
    client_ca: Option<&CertificateDer<'static>>,
) -> anyhow::Result<moq_native_ietf::tls::Config> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key_der.to_vec()));
    let server = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])?;
    let server = match client_ca {
        None => server.with_no_client_auth(),
        Some(ca) => {
            let mut clients = rustls::RootCertStore::empty();
            clients.add(ca.clone())?;
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(clients),
                provider.clone(),
            )
            .build()?;
            server.with_client_cert_verifier(verifier)
        }
    }
    .with_single_cert(vec![cert.clone()], key)?;
    // The relay's own outbound client (unused with a single relay) trusts only this CA.
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.clone())?;
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(moq_native_ietf::tls::Config {
        client,
        server: Some(server),
        fingerprints: Vec::new(),
    })
}

/// Build a relay on `socket` with `tls`; `auth_pem` (an ES256 public key, PEM) turns token
/// checking on for [`AUTH_PATH`]. Call it inside the runtime that will drive it (a QUIC
/// endpoint belongs to the runtime it was created in); `Relay::run` is not `Send`, so run it
/// on a current-thread runtime in a `LocalSet`.
pub fn build_relay(
    socket: UdpSocket,
    tls: moq_native_ietf::tls::Config,
    auth_pem: Option<String>,
) -> anyhow::Result<Relay> {
    let endpoint = quic::Endpoint::new(quic::Config::with_socket(socket, None, tls.clone()))?;
    RelayConfig {
        bind: None,
        endpoints: vec![endpoint],
        tls,
        qlog_dir: None,
        mlog_dir: None,
        announce: None,
        node: None,
        coordinator: Arc::new(SingleRelayCoordinator { auth_pem }),
        session: Default::default(),
        connection_tagger: None,
    }
    .build()
}
