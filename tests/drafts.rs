//! MoQT drafts in the handshake: the one agreed is observable, and a relay that speaks none of
//! this client's gets a typed error naming both sides' drafts (issue #24, item 1), against a
//! real draft-16 relay: moq-relay-ietf 0.7.31 as published (`moq_test_relay::draft16`).

mod common;

use std::time::{Duration, Instant};

use common::*;
use moq_ffi::core::{Client, ClientConfig, ConnectError, ConnectionState};
use moq_test_relay::draft16::Draft16Relay;

fn draft16_config(relay: &Draft16Relay, url: String) -> ClientConfig {
    let mut config = ClientConfig::new(url);
    config.tls.use_system_roots = false;
    config.tls.extra_ca_pem = vec![relay.ca_pem().as_bytes().to_vec()];
    config.connect_timeout = Duration::from_secs(20);
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draft_16_relay_is_refused_with_both_sides_drafts_named_both_schemes() {
    let _ = env_logger::builder().is_test(true).try_init();
    let relay = Draft16Relay::start().expect("start moq-relay-ietf 0.7.31");
    for url in [relay.moqt_url(), relay.https_url()] {
        let client = Client::new(draft16_config(&relay, url.clone())).expect("config");
        let started = Instant::now();
        let err = client.connect().await.expect_err("no draft in common");
        match &err {
            ConnectError::UnsupportedDraft {
                offered,
                relay: speaks,
                ..
            } => {
                assert_eq!(offered, &vec![18], "{url}");
                assert_eq!(
                    speaks,
                    &vec![16],
                    "{url}: the relay's draft, found by asking it"
                );
            }
            other => panic!("{url}: expected UnsupportedDraft, got {other:?}"),
        }
        let message = err.to_string();
        assert!(
            message.contains("speaks draft 16") && message.contains("this client speaks draft 18"),
            "{url}: {message}"
        );
        // Known from the handshake (and the probes): not a wait for the connect timeout.
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{url}: took {:?}",
            started.elapsed()
        );
        assert_eq!(client.state(), ConnectionState::Failed);
        assert_eq!(client.negotiated_draft(), None);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_negotiated_draft_is_18_while_connected_both_schemes() {
    let relay = relay();
    for scheme in SCHEMES {
        let client = Client::new(config(&relay, scheme)).expect("config");
        assert_eq!(client.negotiated_draft(), None, "before connecting");
        client.connect().await.expect("connect");
        assert_eq!(client.negotiated_draft(), Some(18), "{scheme}");
        client.close().await;
        assert_eq!(client.negotiated_draft(), None, "{scheme}: after close");
    }
}
