//! The real `moq-relay-ietf` relay, run in-process for moq-ffi's tests, demo and benchmarks.
//!
//! [`TestRelay::start`] generates a self-signed certificate (SANs `localhost`, `127.0.0.1`,
//! `::1`), writes its PEM to a temporary CA file, binds the relay to `127.0.0.1:0` (an
//! ephemeral port) and runs it on a dedicated thread with its own current-thread runtime
//! (`Relay::run` is not `Send`). Clients trust the relay by adding that CA to their own TLS
//! configuration: no "insecure" switch is involved.
//!
//! [`TestRelay::stop`] (or dropping the handle) shuts the relay down and closes its socket, so
//! clients see the relay vanish as they would in production (no CONNECTION_CLOSE is sent).
//! [`TestRelay::restart`] brings a new relay up on the same port with the same certificate.
//!
//! [`faults::FaultyLink`] sits between a client and the relay to delay, drop or black-hole
//! traffic. [`hostile::HostilePeer`] is a MoQT peer that misbehaves on purpose.
//!
//! This crate is a dev-dependency only: the shipped `moq_ffi` library never links the relay.

#![deny(missing_docs)]

pub mod faults;
pub mod hostile;

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;

use anyhow::Context;
use async_trait::async_trait;
use moq_native_ietf::quic;
use moq_relay_ietf::{
    Coordinator, CoordinatorError, CoordinatorResult, NamespaceOrigin, NamespaceRegistration,
    RelayConfig,
};
use moq_transport::coding::TrackNamespace;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// Coordinator for a single relay: every namespace is local, nothing is found elsewhere.
struct SingleRelayCoordinator;

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
}

/// The certificate a test relay serves, kept so a restarted relay presents the same one.
struct Identity {
    cert: CertificateDer<'static>,
    key_der: Vec<u8>,
    _dir: tempfile::TempDir,
    ca_path: PathBuf,
    ca_pem: String,
}

impl Identity {
    fn generate() -> anyhow::Result<Self> {
        let names = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
        let certified =
            rcgen::generate_simple_self_signed(names).context("generate certificate")?;
        let ca_pem = certified.cert.pem();
        let dir = tempfile::tempdir().context("create temporary directory")?;
        let ca_path = dir.path().join("relay-ca.pem");
        std::fs::write(&ca_path, &ca_pem).context("write CA file")?;
        Ok(Self {
            cert: certified.cert.der().clone(),
            key_der: certified.key_pair.serialize_der(),
            _dir: dir,
            ca_path,
            ca_pem,
        })
    }

    fn tls(&self) -> anyhow::Result<moq_native_ietf::tls::Config> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone()));
        let server = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_no_client_auth()
            .with_single_cert(vec![self.cert.clone()], key)?;
        // The relay's own outbound client (unused with a single relay) trusts only this CA.
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.cert.clone())?;
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
}

/// A running in-process relay. Dropping it stops the relay.
pub struct TestRelay {
    identity: Identity,
    addr: SocketAddr,
    running: Option<Running>,
}

/// A server on a thread of its own, with a current-thread runtime and a `LocalSet` (the relay
/// is not `Send`). Stopping it drops the runtime, which aborts every task and closes the socket.
struct Running {
    shutdown: tokio::sync::oneshot::Sender<()>,
    thread: JoinHandle<()>,
}

impl Running {
    /// Build the server with `setup` inside the thread's runtime (a QUIC endpoint must be
    /// created in the runtime that drives it; its error is returned here), then run `serve`
    /// until it returns or the server is stopped.
    fn start<T, S, F>(
        name: &str,
        setup: S,
        serve: impl FnOnce(T) -> F + Send + 'static,
    ) -> anyhow::Result<Self>
    where
        S: FnOnce() -> anyhow::Result<T> + Send + 'static,
        F: std::future::Future<Output = ()> + 'static,
    {
        let (shutdown, shutdown_rx) = tokio::sync::oneshot::channel::<()>();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<anyhow::Result<()>>();
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(err) => {
                        let _ = ready_tx.send(Err(err.into()));
                        return;
                    }
                };
                let local = tokio::task::LocalSet::new();
                local.block_on(&runtime, async move {
                    let server = match setup() {
                        Ok(server) => {
                            let _ = ready_tx.send(Ok(()));
                            server
                        }
                        Err(err) => {
                            let _ = ready_tx.send(Err(err));
                            return;
                        }
                    };
                    tokio::select! {
                        _ = serve(server) => {}
                        _ = shutdown_rx => {}
                    }
                });
            })
            .with_context(|| format!("spawn {name} thread"))?;
        ready_rx
            .recv()
            .with_context(|| format!("{name} thread exited during start-up"))??;
        Ok(Self { shutdown, thread })
    }

    /// Stop the server and wait for its thread.
    fn stop(self) {
        let _ = self.shutdown.send(());
        let _ = self.thread.join();
    }
}

impl TestRelay {
    /// Start a relay on `127.0.0.1` with an ephemeral port and a fresh self-signed certificate.
    pub fn start() -> anyhow::Result<Self> {
        Self::start_on_port(0)
    }

    /// Start a relay on `127.0.0.1:port` (0: an ephemeral port) with a fresh self-signed
    /// certificate for `localhost` and `127.0.0.1`.
    pub fn start_on_port(port: u16) -> anyhow::Result<Self> {
        let identity = Identity::generate()?;
        let socket = UdpSocket::bind(("127.0.0.1", port))
            .with_context(|| format!("bind relay socket 127.0.0.1:{port}"))?;
        let addr = socket.local_addr()?;
        let running = Self::spawn(&identity, socket)?;
        Ok(Self {
            identity,
            addr,
            running: Some(running),
        })
    }

    fn spawn(identity: &Identity, socket: UdpSocket) -> anyhow::Result<Running> {
        let tls = identity.tls()?;
        Running::start(
            "moq-test-relay",
            move || {
                let tls_for_config = tls.clone();
                quic::Endpoint::new(quic::Config::with_socket(socket, None, tls)).and_then(
                    |endpoint| {
                        RelayConfig {
                            bind: None,
                            endpoints: vec![endpoint],
                            tls: tls_for_config,
                            qlog_dir: None,
                            mlog_dir: None,
                            announce: None,
                            node: None,
                            coordinator: Arc::new(SingleRelayCoordinator),
                            session: Default::default(),
                            connection_tagger: None,
                        }
                        .build()
                    },
                )
            },
            |relay| async move {
                if let Err(err) = relay.run().await {
                    eprintln!("moq-test-relay: relay stopped: {err:#}");
                }
            },
        )
    }

    /// The relay's raw-QUIC URL, `moqt://localhost:PORT`.
    pub fn moqt_url(&self) -> String {
        format!("moqt://localhost:{}", self.addr.port())
    }

    /// The relay's WebTransport URL, `https://localhost:PORT`.
    pub fn https_url(&self) -> String {
        format!("https://localhost:{}", self.addr.port())
    }

    /// The UDP address the relay listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Path of a PEM file holding the relay's self-signed certificate (the CA to trust).
    /// Valid as long as this handle lives.
    pub fn ca_path(&self) -> &Path {
        &self.identity.ca_path
    }

    /// The relay's self-signed certificate as PEM text.
    pub fn ca_pem(&self) -> &str {
        &self.identity.ca_pem
    }

    /// The relay certificate's DER bytes (e.g. to compute a SHA-256 fingerprint for pinning).
    pub fn cert_der(&self) -> &[u8] {
        self.identity.cert.as_ref()
    }

    /// The certificate's SHA-256 fingerprint in lowercase hex (what a client pins).
    pub fn sha256_hex(&self) -> String {
        use sha2::Digest;
        sha2::Sha256::digest(self.cert_der())
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect()
    }

    /// Where the relay is and how to trust it, one `KEY=VALUE` line each (what `moq-test-relay`
    /// and `moqkit relay` print): `MOQ_RELAY_MOQT_URL`, `MOQ_RELAY_HTTPS_URL`,
    /// `MOQ_RELAY_CA_FILE`, `MOQ_RELAY_SHA256`, `MOQ_RELAY_PORT`.
    pub fn environment(&self) -> String {
        format!(
            "MOQ_RELAY_MOQT_URL={}\nMOQ_RELAY_HTTPS_URL={}\nMOQ_RELAY_CA_FILE={}\n\
             MOQ_RELAY_SHA256={}\nMOQ_RELAY_PORT={}\n",
            self.moqt_url(),
            self.https_url(),
            self.ca_path().display(),
            self.sha256_hex(),
            self.addr.port()
        )
    }

    /// Whether the relay is currently running.
    pub fn is_running(&self) -> bool {
        self.running.is_some()
    }

    /// Stop the relay abruptly, as a crashed relay would: every session is dropped without a
    /// CONNECTION_CLOSE and the port stops answering. Idempotent.
    pub fn stop(&mut self) {
        if let Some(running) = self.running.take() {
            running.stop();
        }
    }

    /// Start the relay again on the same port with the same certificate.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.stop();
        let socket = UdpSocket::bind(self.addr).context("re-bind relay port")?;
        self.running = Some(Self::spawn(&self.identity, socket)?);
        Ok(())
    }
}

impl Drop for TestRelay {
    fn drop(&mut self) {
        self.stop();
    }
}
