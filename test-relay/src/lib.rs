//! The real `moq-relay-ietf` relay for moq-ffi's tests, demo and benchmarks, of two kinds
//! ([`RelayKind`]): on the workspace's patched moq-transport, in-process, or on the published
//! moq-transport (what every relay users meet keeps), as the `moq-upstream-relay` child
//! process. `MOQ_TEST_RELAY=patched|upstream|draft16` selects the kind for a whole test run.
//!
//! [`TestRelay::start`] generates a self-signed certificate (SANs `localhost`, `127.0.0.1`,
//! `::1`), writes its PEM to a temporary CA file, binds the relay to `127.0.0.1:0` (an
//! ephemeral port) and runs it: in-process, on a dedicated thread with its own current-thread
//! runtime (`Relay::run` is not `Send`); or in a child process built from the same
//! `relay_server.rs`. Clients trust the relay by adding that CA to their own TLS
//! configuration: no "insecure" switch is involved.
//!
//! [`TestRelay::stop`] (or dropping the handle) shuts the relay down and closes its socket, so
//! clients see the relay vanish as they would in production (no CONNECTION_CLOSE is sent).
//! [`TestRelay::restart`] brings a new relay up on the same port with the same certificate.
//!
//! [`faults::FaultyLink`] sits between a client and the relay to delay, drop or black-hole
//! traffic. [`hostile::HostilePeer`] is a MoQT peer that misbehaves on purpose.
//! [`foreign::ForeignSubscriber`] subscribes to a client's tracks as moq-dev's relay does.
//! [`draft16::Draft16Relay`] runs moq-relay-ietf 0.7 (draft 16) as published.
//! [`cluster::Cluster`] runs three moq-relay-ietf 0.8 relays, as published, as one cluster.
//!
//! This crate is a dev-dependency only: the shipped `moq_ffi` library never links the relay.

#![deny(missing_docs)]

pub mod cluster;
pub mod draft16;
pub mod faults;
pub mod foreign;
pub mod hostile;

mod child;
mod relay_server;

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::JoinHandle;

use anyhow::Context;
use rustls::pki_types::CertificateDer;

/// Which moq-relay-ietf 0.8 a [`TestRelay`] runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RelayKind {
    /// In this process, on the workspace's moq-transport (vendor/moq-transport, patched).
    Patched,
    /// The `moq-upstream-relay` binary in a child process, on the published moq-transport
    /// 0.17 without our patch: the stream and datagram behaviour every other relay has.
    /// `scripts/build-upstream-relay` builds it.
    Upstream,
    /// moq-relay-ietf 0.7.31 as published (draft 16, moq-transport 0.16) in a child
    /// process: the client speaks draft 16 to it (`scripts/build-draft16-relay` installs
    /// it), checking tokens on [`AUTH_PATH`] as the others do.
    Draft16,
}

impl RelayKind {
    /// The kind `MOQ_TEST_RELAY` selects (`patched`, the default, `upstream` or `draft16`),
    /// so one switch runs a whole suite against any of them.
    ///
    /// # Panics
    /// On any other value: a typo must not silently test the wrong relay.
    pub fn from_env() -> Self {
        match std::env::var("MOQ_TEST_RELAY").as_deref() {
            Err(_) | Ok("") | Ok("patched") => RelayKind::Patched,
            Ok("upstream") => RelayKind::Upstream,
            Ok("draft16") => RelayKind::Draft16,
            Ok(other) => {
                panic!("MOQ_TEST_RELAY={other}: expected `patched`, `upstream` or `draft16`")
            }
        }
    }

    /// The MoQT draft a client negotiates with this relay.
    pub fn draft(self) -> u32 {
        match self {
            RelayKind::Patched | RelayKind::Upstream => 18,
            RelayKind::Draft16 => 16,
        }
    }

    /// `patched`, `upstream` or `draft16`, as `MOQ_TEST_RELAY` spells it.
    pub fn name(self) -> &'static str {
        match self {
            RelayKind::Patched => "patched",
            RelayKind::Upstream => "upstream",
            RelayKind::Draft16 => "draft16",
        }
    }
}

/// The certificate a test relay serves, and the key its tokens are signed with, kept so a
/// restarted relay presents the same ones.
struct Identity {
    cert: CertificateDer<'static>,
    key_der: Vec<u8>,
    /// The same key, PEM (PKCS#8), for relays that read PEM files.
    key_pem: String,
    _dir: tempfile::TempDir,
    ca_path: PathBuf,
    ca_pem: String,
    /// Signs the tokens [`AUTH_PATH`] accepts (ES256).
    token_signer: cat_token::Es256Algorithm,
    /// Its public half, PEM: what the relay verifies tokens with.
    token_key_pem: String,
    /// With mutual TLS on: the CA client certificates must chain to, and what it issued.
    client_auth: Option<(CertificateDer<'static>, ClientCertificates)>,
}

/// Client certificates for a relay that requires them
/// ([`TestRelay::start_requiring_client_certificates`]).
pub struct ClientCertificates {
    /// Issued by the CA the relay trusts for clients: accepted.
    pub accepted: ClientIdentity,
    /// Self-signed, unknown to the relay: refused.
    pub untrusted: ClientIdentity,
}

/// A client certificate and its key, as PEM text and as files (valid while the relay lives).
pub struct ClientIdentity {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// Its private key, PEM (PKCS#8).
    pub key_pem: String,
    /// A file holding `cert_pem`.
    pub cert_path: PathBuf,
    /// A file holding `key_pem`.
    pub key_path: PathBuf,
}

impl ClientCertificates {
    /// A client CA and two identities (one it signed, one self-signed), files in `dir`.
    fn generate(dir: &Path) -> anyhow::Result<(CertificateDer<'static>, Self)> {
        use rcgen::{BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, KeyPair};
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "moq-ffi test client CA");
        let ca_key = KeyPair::generate()?;
        let ca = ca_params.self_signed(&ca_key)?;
        let client_params = || -> anyhow::Result<CertificateParams> {
            let mut params = CertificateParams::new(vec!["moq-ffi-test-client".to_string()])?;
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
            Ok(params)
        };
        let write = |name: &str, cert: &rcgen::Certificate, key: &KeyPair| {
            let (cert_path, key_path) = (
                dir.join(format!("{name}-cert.pem")),
                dir.join(format!("{name}-key.pem")),
            );
            std::fs::write(&cert_path, cert.pem()).context("write client certificate")?;
            std::fs::write(&key_path, key.serialize_pem()).context("write client key")?;
            anyhow::Ok(ClientIdentity {
                cert_pem: cert.pem(),
                key_pem: key.serialize_pem(),
                cert_path,
                key_path,
            })
        };
        let key = KeyPair::generate()?;
        let accepted = write(
            "client",
            &client_params()?.signed_by(&key, &ca, &ca_key)?,
            &key,
        )?;
        let stranger_key = KeyPair::generate()?;
        let untrusted = write(
            "stranger",
            &client_params()?.self_signed(&stranger_key)?,
            &stranger_key,
        )?;
        Ok((
            ca.der().clone(),
            Self {
                accepted,
                untrusted,
            },
        ))
    }
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
        let token_signer =
            cat_token::Es256Algorithm::new_with_key_pair().context("generate the token key")?;
        let token_key_pem = {
            use p256::pkcs8::EncodePublicKey;
            token_signer
                .verifying_key()
                .to_public_key_pem(Default::default())
                .context("encode the token key")?
        };
        Ok(Self {
            cert: certified.cert.der().clone(),
            key_der: certified.key_pair.serialize_der(),
            key_pem: certified.key_pair.serialize_pem(),
            _dir: dir,
            ca_path,
            ca_pem,
            token_signer,
            token_key_pem,
            client_auth: None,
        })
    }

    fn tls(&self) -> anyhow::Result<moq_native_ietf::tls::Config> {
        let client_ca = self.client_auth.as_ref().map(|(ca, _)| ca);
        relay_server::tls_config(&self.cert, &self.key_der, client_ca)
    }

    /// Write the certificate (DER), its key (PKCS#8 DER) and the token key (public, PEM) for
    /// a relay in another process.
    fn write_files(&self) -> anyhow::Result<(PathBuf, PathBuf, PathBuf)> {
        let dir = self._dir.path();
        let (cert, key) = (dir.join("relay-cert.der"), dir.join("relay-key.pk8"));
        let token_key = dir.join("token-key.pem");
        std::fs::write(&cert, self.cert.as_ref()).context("write certificate file")?;
        std::fs::write(&key, &self.key_der).context("write key file")?;
        std::fs::write(&token_key, &self.token_key_pem).context("write token key file")?;
        Ok((cert, key, token_key))
    }

    /// A token for [`AUTH_PATH`], valid for an hour, base64url as issuers hand them out.
    fn mint(&self, grant: TokenGrant) -> anyhow::Result<String> {
        use cat_token::{CatToken, MoqtAction, MoqtScopeBuilder};
        let media = MoqtScopeBuilder::new();
        let media = match grant {
            TokenGrant::PublishAndSubscribe => media.publisher().subscriber(),
            TokenGrant::SubscribeOnly => media.subscriber(),
        };
        // No namespace or track match: any (cat-token refuses an empty prefix pattern).
        let media = media.build();
        let setup = MoqtScopeBuilder::new()
            .action(MoqtAction::ClientSetup)
            .build();
        let token = CatToken::new()
            .with_issuer(relay_server::TOKEN_ISSUER)
            .with_single_audience(relay_server::TOKEN_AUDIENCE)
            .with_subject("moq-ffi-tests")
            .with_expires_in(3600)
            .with_moqt_scope(media)
            .with_moqt_scope(setup);
        cat_token::encode_token_base64(&token, &self.token_signer)
            .map_err(|err| anyhow::anyhow!("mint a token: {err}"))
    }
}

/// The connection path on which a test relay checks tokens: sessions to
/// `moqt://localhost:PORT/secure` (or `https://`) must present a Common Access Token the relay's
/// key signed ([`TestRelay::token`]) in SETUP's AUTHORIZATION TOKEN, or are refused
/// ("unauthorized"). Every other path is open, as before.
pub const AUTH_PATH: &str = relay_server::AUTH_PATH;

/// What a token minted by [`TestRelay::token`] allows (on any namespace and track).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenGrant {
    /// Announce, publish, subscribe, discover.
    PublishAndSubscribe,
    /// Subscribe and discover only: an announce is refused as unauthorized.
    SubscribeOnly,
}

/// A running relay of either [`RelayKind`]. Dropping it stops the relay.
pub struct TestRelay {
    identity: Identity,
    kind: RelayKind,
    addr: SocketAddr,
    running: Option<Server>,
}

/// A helper binary: the path in `env`, else `relative` beside this executable or up to two
/// directories up (a test binary lives in `target/<profile>/deps`; the relays' installs in
/// `target/`). The error names `build`, the script that makes it.
pub(crate) fn near_this_executable(
    env: &str,
    relative: &str,
    build: &str,
) -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os(env) {
        return Ok(PathBuf::from(path));
    }
    let exe = std::env::current_exe().context("this executable's path")?;
    exe.ancestors()
        .skip(1)
        .take(3)
        .map(|dir| dir.join(relative))
        .find(|candidate| candidate.exists())
        .with_context(|| {
            format!(
                "{relative} not found near {} (build it with {build}, or set {env})",
                exe.display()
            )
        })
}

/// The relay as it runs: a thread of this process, or a child process.
enum Server {
    InProcess(Running),
    Child(UpstreamProcess),
    /// moq-relay-ietf 0.7.31, the published binary (killed when dropped).
    Published(child::Logged),
}

impl Server {
    fn stop(self) {
        match self {
            Server::InProcess(running) => running.stop(),
            Server::Child(child) => child.stop(),
            Server::Published(mut child) => child.kill(),
        }
    }
}

/// A relay in a child process (`moq-upstream-relay`). Killed (SIGKILL: no CONNECTION_CLOSE, as a crash)
/// when stopped or dropped; its stdin is a pipe, so it also ends if this process dies.
struct UpstreamProcess {
    child: Child,
}

impl UpstreamProcess {
    /// Where the binary is: `MOQ_UPSTREAM_RELAY_BIN`, else beside this executable or one
    /// directory up (a test binary lives in `target/<profile>/deps`).
    fn binary() -> anyhow::Result<PathBuf> {
        near_this_executable(
            "MOQ_UPSTREAM_RELAY_BIN",
            "moq-upstream-relay",
            "scripts/build-upstream-relay",
        )
    }

    /// Start it on `127.0.0.1:port` (0: ephemeral) and return it with the port it bound.
    fn start(identity: &Identity, port: u16) -> anyhow::Result<(Self, u16)> {
        use std::io::BufRead;
        let (cert, key, token_key) = identity.write_files()?;
        let binary = Self::binary()?;
        let mut child = Command::new(&binary)
            .arg("--cert")
            .arg(&cert)
            .arg("--key")
            .arg(&key)
            .arg("--auth-pem")
            .arg(&token_key)
            .arg("--port")
            .arg(port.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .with_context(|| format!("start {}", binary.display()))?;
        let stdout = child.stdout.take().context("relay stdout")?;
        let mut bound = None;
        for line in std::io::BufReader::new(stdout).lines() {
            let line = line.context("read the relay's output")?;
            if line == "READY" {
                break;
            }
            if let Some(value) = line.strip_prefix("MOQ_RELAY_PORT=") {
                bound = value.parse::<u16>().ok();
            }
        }
        let process = Self { child };
        let port = bound.context("moq-upstream-relay exited before it was ready")?;
        log::debug!("moq-upstream-relay (unpatched moq-transport) on 127.0.0.1:{port}");
        Ok((process, port))
    }

    fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for UpstreamProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
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
    /// Start the relay `MOQ_TEST_RELAY` selects ([`RelayKind::from_env`]) on `127.0.0.1` with
    /// an ephemeral port and a fresh self-signed certificate.
    pub fn start() -> anyhow::Result<Self> {
        Self::start_kind(RelayKind::from_env(), 0)
    }

    /// Start the relay `MOQ_TEST_RELAY` selects on `127.0.0.1:port` (0: an ephemeral port)
    /// with a fresh self-signed certificate for `localhost` and `127.0.0.1`.
    pub fn start_on_port(port: u16) -> anyhow::Result<Self> {
        Self::start_kind(RelayKind::from_env(), port)
    }

    /// Start a relay of `kind` on `127.0.0.1:port` (0: an ephemeral port), whatever
    /// `MOQ_TEST_RELAY` says.
    pub fn start_kind(kind: RelayKind, port: u16) -> anyhow::Result<Self> {
        let identity = Identity::generate()?;
        let (running, addr) = Self::spawn(&identity, kind, port)?;
        Ok(Self {
            identity,
            kind,
            addr,
            running: Some(running),
        })
    }

    /// Start an in-process relay (the workspace's moq-transport, whatever `MOQ_TEST_RELAY`
    /// says: the TLS layer in front of it is the same rustls either way) that requires every
    /// client to present a certificate signed by its client CA ([`ClientCertificates`]):
    /// a client without one, or with another, is refused in the handshake.
    pub fn start_requiring_client_certificates() -> anyhow::Result<Self> {
        let mut identity = Identity::generate()?;
        identity.client_auth = Some(ClientCertificates::generate(identity._dir.path())?);
        let (running, addr) = Self::spawn(&identity, RelayKind::Patched, 0)?;
        Ok(Self {
            identity,
            kind: RelayKind::Patched,
            addr,
            running: Some(running),
        })
    }

    /// The client certificates of a relay started with
    /// [`TestRelay::start_requiring_client_certificates`]; `None` for any other.
    pub fn client_certificates(&self) -> Option<&ClientCertificates> {
        self.identity.client_auth.as_ref().map(|(_, certs)| certs)
    }

    fn spawn(
        identity: &Identity,
        kind: RelayKind,
        port: u16,
    ) -> anyhow::Result<(Server, SocketAddr)> {
        if kind == RelayKind::Upstream {
            let (process, port) = UpstreamProcess::start(identity, port)?;
            return Ok((
                Server::Child(process),
                SocketAddr::from(([127, 0, 0, 1], port)),
            ));
        }
        if kind == RelayKind::Draft16 {
            let (child, port) = draft16::spawn(identity, port)?;
            return Ok((
                Server::Published(child),
                SocketAddr::from(([127, 0, 0, 1], port)),
            ));
        }
        let socket = UdpSocket::bind(("127.0.0.1", port))
            .with_context(|| format!("bind relay socket 127.0.0.1:{port}"))?;
        let addr = socket.local_addr()?;
        let tls = identity.tls()?;
        let auth_pem = Some(identity.token_key_pem.clone());
        let running = Running::start(
            "moq-test-relay",
            move || relay_server::build_relay(socket, tls, auth_pem),
            |relay| async move {
                if let Err(err) = relay.run().await {
                    eprintln!("moq-test-relay: relay stopped: {err:#}");
                }
            },
        )?;
        Ok((Server::InProcess(running), addr))
    }

    /// Which relay this is.
    pub fn kind(&self) -> RelayKind {
        self.kind
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

    /// A token this relay accepts on [`AUTH_PATH`] (base64url, valid for an hour).
    ///
    /// # Panics
    /// If minting fails (a bug in the test harness).
    pub fn token(&self, grant: TokenGrant) -> String {
        self.identity.mint(grant).expect("mint a test token")
    }

    /// Where the relay is and how to trust it, one `KEY=VALUE` line each (what `moq-test-relay`
    /// and `moqkit relay` print): `MOQ_RELAY_MOQT_URL`, `MOQ_RELAY_HTTPS_URL`,
    /// `MOQ_RELAY_CA_FILE`, `MOQ_RELAY_SHA256`, `MOQ_RELAY_KIND` (`patched` or `upstream`),
    /// `MOQ_RELAY_AUTH_PATH` ([`AUTH_PATH`]), `MOQ_RELAY_TOKEN` (publish and subscribe there),
    /// `MOQ_RELAY_TOKEN_SUBSCRIBE_ONLY`, `MOQ_RELAY_PORT` (last). A relay requiring client
    /// certificates also prints, first, `MOQ_RELAY_CLIENT_CERT_FILE` and
    /// `MOQ_RELAY_CLIENT_KEY_FILE` (accepted) and `MOQ_RELAY_UNTRUSTED_CERT_FILE` and
    /// `MOQ_RELAY_UNTRUSTED_KEY_FILE` (refused).
    pub fn environment(&self) -> String {
        let mut client_auth = String::new();
        if let Some(certs) = self.client_certificates() {
            client_auth = format!(
                "MOQ_RELAY_CLIENT_CERT_FILE={}\nMOQ_RELAY_CLIENT_KEY_FILE={}\n\
                 MOQ_RELAY_UNTRUSTED_CERT_FILE={}\nMOQ_RELAY_UNTRUSTED_KEY_FILE={}\n",
                certs.accepted.cert_path.display(),
                certs.accepted.key_path.display(),
                certs.untrusted.cert_path.display(),
                certs.untrusted.key_path.display(),
            );
        }
        client_auth
            + &format!(
                "MOQ_RELAY_MOQT_URL={}\nMOQ_RELAY_HTTPS_URL={}\nMOQ_RELAY_CA_FILE={}\n\
             MOQ_RELAY_SHA256={}\nMOQ_RELAY_KIND={}\nMOQ_RELAY_AUTH_PATH={AUTH_PATH}\n\
             MOQ_RELAY_TOKEN={}\nMOQ_RELAY_TOKEN_SUBSCRIBE_ONLY={}\nMOQ_RELAY_PORT={}\n",
                self.moqt_url(),
                self.https_url(),
                self.ca_path().display(),
                self.sha256_hex(),
                self.kind.name(),
                self.token(TokenGrant::PublishAndSubscribe),
                self.token(TokenGrant::SubscribeOnly),
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
        let (running, _) = Self::spawn(&self.identity, self.kind, self.addr.port())
            .context("restart the relay on its port")?;
        self.running = Some(running);
        Ok(())
    }
}

impl Drop for TestRelay {
    fn drop(&mut self) {
        self.stop();
    }
}
