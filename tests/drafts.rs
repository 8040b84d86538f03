//! MoQT drafts in the handshake: the one agreed is observable, and a relay that speaks none of
//! this client's gets a typed error naming both sides' drafts (issue #24, item 1), against a
//! real draft-16 relay: moq-relay-ietf 0.7.31 as published (`moq_test_relay::draft16`).

mod common;

use std::time::{Duration, Instant};

use common::*;
use moq_ffi::core::{Client, ClientConfig, ConnectError, ConnectionState, PublisherOptions};
use moq_test_relay::draft16::Draft16Relay;

fn draft16_config(relay: &Draft16Relay, url: String) -> ClientConfig {
    let mut config = ClientConfig::new(url);
    config.tls.use_system_roots = false;
    config.tls.extra_ca_pem = vec![relay.ca_pem().as_bytes().to_vec()];
    config.connect_timeout = Duration::from_secs(20);
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_limited_to_draft_18_is_refused_by_a_draft_16_relay_with_both_named() {
    let _ = env_logger::builder().is_test(true).try_init();
    let relay = Draft16Relay::start().expect("start moq-relay-ietf 0.7.31");
    for url in [relay.moqt_url(), relay.https_url()] {
        let mut config = draft16_config(&relay, url.clone());
        config.drafts = vec![18];
        let client = Client::new(config).expect("config");
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
            message.contains("speaks draft 16") && message.contains("this client offered draft 18"),
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
async fn a_draft_16_relay_carries_objects_in_order_both_schemes() {
    let _ = env_logger::builder().is_test(true).try_init();
    let relay = Draft16Relay::start().expect("start moq-relay-ietf 0.7.31");
    for scheme in SCHEMES {
        let publisher_client = Client::new(config(&relay, scheme)).expect("config");
        publisher_client.connect().await.expect("connect");
        assert_eq!(publisher_client.negotiated_draft(), Some(16), "{scheme}");
        let subscriber_client = Client::new(config(&relay, scheme)).expect("config");
        subscriber_client.connect().await.expect("connect");
        let namespace = format!("d16/{scheme}");
        publisher_client
            .announce(&namespace)
            .await
            .expect("announce");
        let publisher = publisher_client
            .create_publisher(
                &namespace,
                "data",
                PublisherOptions {
                    max_group_objects: 10,
                    ..stream()
                },
            )
            .expect("publisher");
        let mut subscription = subscriber_client
            .subscribe(&namespace, "data", sub())
            .await
            .expect("subscribe through a draft-16 relay");
        let count = 1_000;
        for i in 0..count {
            publisher
                .publish_when_ready(payload(i, 100), None)
                .await
                .expect("publish");
        }
        let mut got = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        let last_object = ((count / 10 - 1) as u64, 9);
        while got
            .last()
            .map(|o: &moq_ffi::core::Object| (o.group_id, o.object_id))
            != Some(last_object)
        {
            match tokio::time::timeout_at(deadline, subscription.next_batch(256)).await {
                Ok(Ok(batch)) if !batch.is_empty() => got.extend(batch),
                Ok(Ok(_)) => break,
                Ok(Err(err)) => panic!("{scheme}: failed after {} objects: {err}", got.len()),
                Err(_) => break,
            }
        }
        // moq-relay-ietf 0.7 hands its readers only the newest group of a track: a group a
        // reader had not reached when the next one arrived is gone (the client sends one
        // group stream at a time, so this is rare: at the start of a burst, or under load).
        // What arrives is in order, whole, and exactly what was published; a group id jump
        // is the visible gap.
        let groups = count / 10;
        let mut delivered = std::collections::BTreeMap::<u64, Vec<u64>>::new();
        let mut last = None;
        for object in &got {
            let position = (object.group_id, object.object_id);
            assert!(
                last < Some(position),
                "{scheme}: {position:?} after {last:?}"
            );
            last = Some(position);
            let i = (object.group_id * 10 + object.object_id) as usize;
            assert_eq!(
                object.payload.as_ref(),
                payload(i, 100).as_slice(),
                "{scheme}: {position:?}"
            );
            delivered
                .entry(object.group_id)
                .or_default()
                .push(object.object_id);
        }
        for (group, objects) in &delivered {
            assert_eq!(
                objects,
                &(0..10).collect::<Vec<u64>>(),
                "{scheme}: group {group} whole"
            );
        }
        // How many arrive is the relay's pace against the subscriber's (98-100 of 100 seen; a
        // loaded machine drops more), not the client's: not asserted. Without one group stream
        // at a time the relay ended the subscription within 3 groups, which fails above.
        assert_eq!(
            delivered.keys().last(),
            Some(&(groups as u64 - 1)),
            "{scheme}: the last group arrived"
        );
        eprintln!(
            "{scheme}: {} of {groups} groups through the draft-16 relay",
            delivered.len()
        );
        drop(subscription);
        publisher_client.close().await;
        subscriber_client.close().await;
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
