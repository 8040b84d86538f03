//! Shared helpers for the integration tests: a real relay on an ephemeral port, and client
//! configurations that trust its certificate through the client's own TLS settings.
#![allow(dead_code)]

use std::time::Duration;

use moq_ffi::core::{
    Client, ClientConfig, Object, Publisher, PublisherOptions, Subscriber, SubscriberOptions,
};
pub use moq_test_relay::TestRelay;

/// The two ways to reach a relay.
pub const SCHEMES: [&str; 2] = ["moqt", "https"];

/// Where a relay is and which certificate it presents: the in-process [`TestRelay`] or a
/// [`RelayProcess`].
pub trait Relay {
    fn moqt_url(&self) -> String;
    fn https_url(&self) -> String;
    fn ca_pem(&self) -> &str;
}

impl Relay for TestRelay {
    fn moqt_url(&self) -> String {
        TestRelay::moqt_url(self)
    }
    fn https_url(&self) -> String {
        TestRelay::https_url(self)
    }
    fn ca_pem(&self) -> &str {
        TestRelay::ca_pem(self)
    }
}

/// The test relay in a child process (the `moq-test-relay` binary), for measurements of this
/// process that the relay's own memory must not blur. Killed when dropped.
impl Relay for moq_test_relay::draft16::Draft16Relay {
    fn moqt_url(&self) -> String {
        moq_test_relay::draft16::Draft16Relay::moqt_url(self)
    }
    fn https_url(&self) -> String {
        moq_test_relay::draft16::Draft16Relay::https_url(self)
    }
    fn ca_pem(&self) -> &str {
        moq_test_relay::draft16::Draft16Relay::ca_pem(self)
    }
}

pub struct RelayProcess {
    child: std::process::Child,
    moqt_url: String,
    https_url: String,
    ca_pem: String,
    ca_file: std::path::PathBuf,
}

impl RelayProcess {
    /// Start `target/<profile>/moq-test-relay` (the test command builds it first:
    /// `cargo build -p moq-test-relay --bin moq-test-relay`) and wait until it is ready.
    pub fn start() -> Self {
        Self::spawn(&[])
    }

    /// Start `moq-test-relay --hostile`: the hostile peer of `moq_test_relay::hostile`.
    pub fn start_hostile() -> Self {
        Self::spawn(&["--hostile"])
    }

    fn spawn(args: &[&str]) -> Self {
        use std::io::BufRead;
        let exe = std::env::current_exe().expect("test executable path");
        let binary = exe
            .parent()
            .and_then(std::path::Path::parent)
            .map(|dir| dir.join("moq-test-relay"))
            .expect("target directory");
        assert!(
            binary.exists(),
            "{} is missing: build it with `cargo build -p moq-test-relay --bin moq-test-relay` \
             (scripts/test does)",
            binary.display()
        );
        let mut child = std::process::Command::new(&binary)
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("start moq-test-relay");
        let stdout = child.stdout.take().expect("relay stdout");
        let mut values = std::collections::HashMap::new();
        for line in std::io::BufReader::new(stdout).lines() {
            let line = line.expect("relay output");
            if line == "READY" {
                break;
            }
            if let Some((key, value)) = line.split_once('=') {
                values.insert(key.to_string(), value.to_string());
            }
        }
        let value = |key: &str| {
            values
                .get(key)
                .cloned()
                .unwrap_or_else(|| panic!("relay printed no {key}"))
        };
        let ca_file = std::path::PathBuf::from(value("MOQ_RELAY_CA_FILE"));
        let ca_pem = std::fs::read_to_string(&ca_file).expect("relay CA file");
        Self {
            child,
            moqt_url: value("MOQ_RELAY_MOQT_URL"),
            https_url: value("MOQ_RELAY_HTTPS_URL"),
            ca_pem,
            ca_file,
        }
    }

    /// The file holding the relay's CA certificate.
    pub fn ca_file(&self) -> &std::path::Path {
        &self.ca_file
    }
}

impl Relay for RelayProcess {
    fn moqt_url(&self) -> String {
        self.moqt_url.clone()
    }
    fn https_url(&self) -> String {
        self.https_url.clone()
    }
    fn ca_pem(&self) -> &str {
        &self.ca_pem
    }
}

impl Drop for RelayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The relay's URL for `scheme`.
pub fn url(relay: &impl Relay, scheme: &str) -> String {
    match scheme {
        "moqt" => relay.moqt_url(),
        _ => relay.https_url(),
    }
}

/// A configuration that trusts only the relay's CA, with short loss detection for tests.
pub fn config(relay: &impl Relay, scheme: &str) -> ClientConfig {
    let mut config = ClientConfig::new(url(relay, scheme));
    config.tls.use_system_roots = false;
    config.tls.extra_ca_pem = vec![relay.ca_pem().as_bytes().to_vec()];
    config.keep_alive_interval = Duration::from_millis(300);
    config.idle_timeout = Duration::from_secs(2);
    config.rendezvous_timeout = Duration::from_secs(2);
    config.connect_timeout = Duration::from_secs(5);
    config
}

/// A connected client.
pub async fn connect(relay: &impl Relay, scheme: &str) -> Client {
    connect_with(config(relay, scheme)).await
}

/// A client with `config`, connected.
pub async fn connect_with(config: ClientConfig) -> Client {
    let client = Client::new(config).expect("valid config");
    client.connect().await.expect("connect");
    client
}

/// Default publisher options.
pub fn stream() -> PublisherOptions {
    PublisherOptions::default()
}

/// Default subscriber options.
pub fn sub() -> SubscriberOptions {
    SubscriberOptions::default()
}

/// Start the relay (and logging once).
pub fn relay() -> TestRelay {
    let _ = env_logger::builder().is_test(true).try_init();
    TestRelay::start().expect("start relay")
}

/// Announce `namespace` on `client` and create a publisher of `track` in it.
pub async fn announced(
    client: &Client,
    namespace: &str,
    track: &str,
    options: PublisherOptions,
) -> Publisher {
    client.announce(namespace).await.expect("announce");
    client
        .create_publisher(namespace, track, options)
        .expect("create publisher")
}

/// The cast of most delivery tests: a relay, a client that announced `namespace` and
/// publishes `track` in it, and a second client to subscribe with.
/// Fields drop in declaration order: the publisher, then the clients, the relay last (as a
/// test's locals did).
pub struct PubSub {
    pub publisher: Publisher,
    /// A second client, for subscriptions.
    pub subscribing: Client,
    /// The client that announced and publishes.
    pub publishing: Client,
    pub namespace: String,
    pub track: String,
    pub relay: TestRelay,
}

impl PubSub {
    /// Both clients over `scheme`, default publisher options.
    pub async fn start(scheme: &str, namespace: &str, track: &str) -> Self {
        Self::with(relay(), [scheme, scheme], namespace, track, stream()).await
    }

    /// The publishing client over `schemes[0]`, the subscribing one over `schemes[1]`.
    pub async fn with(
        relay: TestRelay,
        schemes: [&str; 2],
        namespace: &str,
        track: &str,
        options: PublisherOptions,
    ) -> Self {
        let publishing = connect(&relay, schemes[0]).await;
        let subscribing = connect(&relay, schemes[1]).await;
        let publisher = announced(&publishing, namespace, track, options).await;
        Self {
            relay,
            publishing,
            subscribing,
            publisher,
            namespace: namespace.to_string(),
            track: track.to_string(),
        }
    }

    /// One client publishing and subscribing (through the relay) over `scheme`:
    /// `subscribing` is a handle on `publishing`'s session.
    pub async fn one_client(
        scheme: &str,
        namespace: &str,
        track: &str,
        options: PublisherOptions,
    ) -> Self {
        let relay = relay();
        let publishing = connect(&relay, scheme).await;
        let publisher = announced(&publishing, namespace, track, options).await;
        Self {
            relay,
            subscribing: publishing.clone(),
            publishing,
            publisher,
            namespace: namespace.to_string(),
            track: track.to_string(),
        }
    }

    /// Subscribe the second client to the track.
    pub async fn subscribe(&self, options: SubscriberOptions) -> Subscriber {
        self.subscribing
            .subscribe(&self.namespace, &self.track, options)
            .await
            .expect("subscribe")
    }
}

/// The subscription's next object, within 10 s; `what` names it in the failure.
pub async fn next_object(sub: &mut Subscriber, what: impl std::fmt::Display) -> Object {
    next_within(sub, Duration::from_secs(10), what).await
}

/// The subscription's next object, within `bound` (a stall check with slack for a loaded
/// machine, not a speed measurement); `what` names it in the failure.
pub async fn next_within(
    sub: &mut Subscriber,
    bound: Duration,
    what: impl std::fmt::Display,
) -> Object {
    match tokio::time::timeout(bound, sub.next()).await {
        Ok(Ok(Some(object))) => object,
        Ok(Ok(None)) => panic!("{what}: the subscription ended"),
        Ok(Err(err)) => panic!("{what}: the subscription failed: {err}"),
        Err(_) => panic!("{what}: nothing arrived within {bound:?}"),
    }
}

/// A payload that encodes its index, so order and content can be checked byte for byte.
pub fn payload(i: usize, len: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; len];
    for (j, b) in bytes.iter_mut().enumerate() {
        *b = (i.wrapping_mul(31).wrapping_add(j.wrapping_mul(7))) as u8;
    }
    if len >= 8 {
        bytes[..8].copy_from_slice(&(i as u64).to_le_bytes());
    }
    bytes
}

/// Publish `payload(i, 64)` for i in `from..` every 5 ms until aborted; counts the objects
/// refused as not connected (while the publisher's session or namespace is away).
pub fn publish_steadily(
    publisher: std::sync::Arc<Publisher>,
    from: usize,
    refused: std::sync::Arc<std::sync::atomic::AtomicUsize>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        for i in from.. {
            match publisher.publish(payload(i, 64)) {
                Ok(_) => {}
                Err(moq_ffi::core::PublishError::NotConnected) => {
                    refused.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
                Err(err) => panic!("publish {i}: {err}"),
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
}

/// A UniFFI-surface configuration (raw QUIC) that trusts only the relay's CA.
pub fn api_config(relay: &impl Relay) -> moq_ffi::api::ClientConfig {
    let mut config = moq_ffi::api::default_client_config(relay.moqt_url());
    config.tls = Some(moq_ffi::api::TlsOptions {
        use_system_roots: false,
        extra_ca_pem: vec![relay.ca_pem().to_string()],
        extra_ca_files: vec![],
        pinned_sha256: vec![],
        danger_accept_any_certificate: false,
        client_certificate_pem: None,
        client_certificate_file: None,
        client_key_pem: None,
        client_key_file: None,
    });
    config
}

/// This process's resident memory, in MB.
pub fn rss_mb() -> f64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("/proc/self/statm");
    let pages: f64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|pages| pages.parse().ok())
        .expect("resident pages in statm");
    pages * 4096.0 / 1e6
}
