//! Shared helpers for the integration tests: a real relay on an ephemeral port, and client
//! configurations that trust its certificate through the client's own TLS settings.
#![allow(dead_code)]

use std::time::Duration;

use moq_ffi::core::{Client, ClientConfig, PublisherOptions, SubscriberOptions};
pub use moq_test_relay::TestRelay;

/// The two ways to reach a relay.
pub const SCHEMES: [&str; 2] = ["moqt", "https"];

/// The relay's URL for `scheme`.
pub fn url(relay: &TestRelay, scheme: &str) -> String {
    match scheme {
        "moqt" => relay.moqt_url(),
        _ => relay.https_url(),
    }
}

/// A configuration that trusts only the relay's CA, with short loss detection for tests.
pub fn config(relay: &TestRelay, scheme: &str) -> ClientConfig {
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
pub async fn connect(relay: &TestRelay, scheme: &str) -> Client {
    let client = Client::new(config(relay, scheme)).expect("valid config");
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

/// A UniFFI-surface configuration (raw QUIC) that trusts only the relay's CA.
pub fn api_config(relay: &TestRelay) -> moq_ffi::api::ClientConfig {
    let mut config = moq_ffi::api::default_client_config(relay.moqt_url());
    config.tls = Some(moq_ffi::api::TlsOptions {
        use_system_roots: false,
        extra_ca_pem: vec![relay.ca_pem().to_string()],
        extra_ca_files: vec![],
        pinned_sha256: vec![],
        danger_accept_any_certificate: false,
    });
    config
}
