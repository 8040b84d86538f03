//! Typed errors against a real relay: rendezvous, duplicates, unknown tracks, TLS, dead relays.

mod common;

use std::time::{Duration, Instant};

use common::*;
use moq_ffi::core::{
    AnnounceError, Client, ClientConfig, ConnectError, ConnectionState, PublishError,
    SubscribeError,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribe_before_announce_waits_for_the_publisher() {
    for scheme in SCHEMES {
        let relay = relay();
        let publisher_client = connect(&relay, scheme).await;
        let subscriber_client = connect(&relay, scheme).await;
        let pending = tokio::spawn(async move {
            let result = subscriber_client.subscribe("late/ns", "t", sub()).await;
            (result, subscriber_client)
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        let publisher = announced(&publisher_client, "late/ns", "t", stream()).await;
        let (result, _client) = pending.await.unwrap();
        let mut subscriber = result.expect("subscription completes once the publisher appears");
        publisher.publish(b"hi".to_vec()).unwrap();
        let object = next_object(&mut subscriber, "subscriber: the next object").await;
        assert_eq!(object.payload.as_ref(), b"hi", "over {scheme}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribe_without_publisher_fails_with_not_found_after_rendezvous() {
    let relay = relay();
    let mut config = config(&relay, "moqt");
    config.rendezvous_timeout = Duration::from_millis(800);
    let client = connect_with(config).await;
    let started = Instant::now();
    let err = client
        .subscribe("nobody/here", "t", sub())
        .await
        .unwrap_err();
    let waited = started.elapsed();
    assert!(matches!(err, SubscribeError::NotFound { .. }), "{err:?}");
    assert!(
        waited >= Duration::from_millis(700),
        "gave up after {waited:?}"
    );
    assert!(waited < Duration::from_secs(15), "waited {waited:?}");
    assert!(err.to_string().contains("not found"), "{err}");
    // The session survives a failed subscription.
    assert!(client.is_connected());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_track_in_an_announced_namespace_is_not_found() {
    let relay = relay();
    let mut config = config(&relay, "https");
    config.rendezvous_timeout = Duration::from_millis(300);
    let client = connect_with(config).await;
    let _publisher = announced(&client, "known", "real", stream()).await;
    let err = client
        .subscribe("known", "imaginary", sub())
        .await
        .unwrap_err();
    assert!(matches!(err, SubscribeError::NotFound { .. }), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_announce_on_one_client_is_a_typed_error() {
    let relay = relay();
    let client = connect(&relay, "moqt").await;
    client.announce("dup").await.unwrap();
    let err = client.announce("dup").await.unwrap_err();
    assert!(matches!(err, AnnounceError::Duplicate { .. }), "{err:?}");
    assert!(client.is_connected());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_announce_across_clients_is_a_typed_error() {
    let relay = relay();
    let first = connect(&relay, "moqt").await;
    let second = connect(&relay, "moqt").await;
    first.announce("taken").await.unwrap();
    let err = second.announce("taken").await.unwrap_err();
    assert!(
        matches!(
            err,
            AnnounceError::Duplicate { .. }
                | AnnounceError::Refused { .. }
                | AnnounceError::NotConnected
        ),
        "{err:?}"
    );
    // The first publisher is unaffected.
    assert!(first.is_connected());
    let publisher = first.create_publisher("taken", "t", stream()).unwrap();
    let mut sub = first.subscribe("taken", "t", sub()).await.unwrap();
    publisher.publish(b"still mine".to_vec()).unwrap();
    let object = next_object(&mut sub, "sub: the next object").await;
    assert_eq!(object.payload.as_ref(), b"still mine");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_releases_the_namespace_at_once() {
    let relay = relay();
    let first = connect(&relay, "moqt").await;
    first.announce("handover").await.unwrap();
    first.close().await;
    assert_eq!(first.state(), ConnectionState::Disconnected);
    let second = connect(&relay, "moqt").await;
    // Well within the relay's 10 s idle timeout: the close released it.
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        match second.announce("handover").await {
            Ok(()) => break,
            Err(err) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
                let _ = err;
            }
            Err(err) => panic!("namespace still held after close: {err}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operations_while_not_connected_are_typed_errors() {
    let relay = relay();
    let client = Client::new(config(&relay, "moqt")).unwrap();
    assert_eq!(client.state(), ConnectionState::Disconnected);
    assert_eq!(
        client.announce("x").await.unwrap_err(),
        AnnounceError::NotConnected
    );
    assert!(matches!(
        client.create_publisher("x", "t", stream()),
        Err(PublishError::NotConnected)
    ));
    assert!(matches!(
        client.subscribe("x", "t", sub()).await,
        Err(SubscribeError::NotConnected)
    ));
    client.connect().await.unwrap();
    assert!(matches!(
        client.create_publisher("never-announced", "t", stream()),
        Err(PublishError::NotAnnounced { .. })
    ));
    assert!(matches!(
        client.connect().await,
        Err(ConnectError::AlreadyConnected)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn untrusted_certificate_is_a_tls_error_both_schemes() {
    let relay = relay();
    for scheme in SCHEMES {
        let mut config = ClientConfig::new(url(&relay, scheme));
        config.tls.use_system_roots = false; // and no extra CA: the relay is not trusted
        let client = Client::new(config).unwrap();
        let err = client.connect().await.unwrap_err();
        assert!(matches!(err, ConnectError::Tls { .. }), "{scheme}: {err:?}");
        assert!(err.to_string().contains("CA"), "{err}");
        assert_eq!(client.state(), ConnectionState::Failed);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pinned_fingerprint_accepts_the_relay_and_a_mismatch_is_a_tls_error() {
    let relay = relay();
    let fingerprint = moq_ffi::core::certificate_sha256(relay.cert_der());
    let mut good = ClientConfig::new(relay.moqt_url());
    good.tls.use_system_roots = false;
    good.tls.pinned_sha256 = vec![fingerprint];
    let client = Client::new(good).unwrap();
    client.connect().await.expect("pinned certificate accepted");

    let mut bad = ClientConfig::new(relay.https_url());
    bad.tls.pinned_sha256 = vec![[0u8; 32]];
    let client = Client::new(bad).unwrap();
    let err = client.connect().await.unwrap_err();
    assert!(matches!(err, ConnectError::Tls { .. }), "{err:?}");
    assert!(err.to_string().contains("fingerprint"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_address_times_out_within_the_configured_bound() {
    // A bound UDP socket that never answers: nothing is listening for QUIC there.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let mut config = ClientConfig::new(format!("moqt://127.0.0.1:{port}"));
    config.connect_timeout = Duration::from_millis(700);
    let client = Client::new(config).unwrap();
    let started = Instant::now();
    let err = client.connect().await.unwrap_err();
    let took = started.elapsed();
    assert!(matches!(err, ConnectError::Timeout { .. }), "{err:?}");
    assert!(
        took >= Duration::from_millis(650) && took < Duration::from_secs(3),
        "{took:?}"
    );
    assert_eq!(client.state(), ConnectionState::Failed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_urls_are_config_errors() {
    for url in ["http://relay:1", "not a url", "moqt://", "ftp://x"] {
        let err = Client::new(ClientConfig::new(url)).err().expect(url);
        assert!(!err.to_string().is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_stopped_mid_stream_fails_within_the_detection_bound() {
    for scheme in SCHEMES {
        let mut relay = relay();
        let client = connect(&relay, scheme).await;
        let publisher = announced(&client, "doomed", "t", stream()).await;
        let mut subscription = client.subscribe("doomed", "t", sub()).await.unwrap();
        publisher.publish(b"before".to_vec()).unwrap();
        assert!(
            tokio::time::timeout(Duration::from_secs(5), subscription.next())
                .await
                .is_ok()
        );

        let mut states = client.state_watch();
        relay.stop();
        let stopped = Instant::now();
        let bound = client.config().idle_timeout + Duration::from_secs(2);
        tokio::time::timeout(bound, states.wait_for(|s| *s == ConnectionState::Failed))
            .await
            .unwrap_or_else(|_| panic!("{scheme}: loss not detected within {bound:?}"))
            .unwrap();
        let detected = stopped.elapsed();
        assert!(detected >= Duration::from_millis(500), "{detected:?}");
        assert!(!client.is_connected());
        assert!(matches!(
            publisher.publish(b"after".to_vec()),
            Err(PublishError::NotConnected)
        ));
        assert!(matches!(
            client.subscribe("doomed", "t", sub()).await,
            Err(SubscribeError::NotConnected)
        ));
        let end = tokio::time::timeout(Duration::from_secs(2), subscription.next())
            .await
            .expect("subscriber told");
        assert!(
            matches!(end, Err(SubscribeError::ConnectionLost) | Ok(None)),
            "{end:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_objects_are_rejected_on_publish() {
    let relay = relay();
    let mut config = config(&relay, "moqt");
    config.max_object_size = 1000;
    let client = connect_with(config).await;
    let publisher = announced(&client, "big", "t", stream()).await;
    assert!(matches!(
        publisher.publish(vec![0u8; 1001]),
        Err(PublishError::ObjectTooLarge {
            size: 1001,
            max: 1000
        })
    ));
    publisher.publish(vec![0u8; 1000]).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_incoming_objects_end_the_subscription_instead_of_buffering() {
    let relay = relay();
    let publisher_client = connect(&relay, "moqt").await;
    let mut small = config(&relay, "moqt");
    small.max_object_size = 1000;
    let subscriber_client = connect_with(small).await;
    let publisher = announced(&publisher_client, "flood", "t", stream()).await;
    let mut sub = subscriber_client
        .subscribe("flood", "t", sub())
        .await
        .unwrap();
    publisher.publish(vec![1u8; 10]).unwrap();
    publisher.publish(vec![2u8; 5000]).unwrap();
    let first = tokio::time::timeout(Duration::from_secs(5), sub.next())
        .await
        .unwrap();
    assert_eq!(first.unwrap().unwrap().payload.len(), 10);
    let second = tokio::time::timeout(Duration::from_secs(5), sub.next())
        .await
        .unwrap();
    assert!(
        matches!(
            second,
            Err(SubscribeError::ObjectTooLarge {
                size: 5000,
                max: 1000
            })
        ),
        "{second:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscription_cap_refuses_one_more_and_frees_a_slot_on_close() {
    let relay = relay();
    let publisher_client = connect(&relay, "moqt").await;
    publisher_client.announce("capped").await.unwrap();
    let _publishers: Vec<_> = ["a", "b", "c"]
        .iter()
        .map(|t| {
            publisher_client
                .create_publisher("capped", t, stream())
                .unwrap()
        })
        .collect();
    let mut capped = config(&relay, "moqt");
    capped.max_subscriptions = 2;
    let client = connect_with(capped).await;
    let mut first = client.subscribe("capped", "a", sub()).await.unwrap();
    let _second = client.subscribe("capped", "a", sub()).await.unwrap();
    let refused = client.subscribe("capped", "b", sub()).await.err();
    assert!(
        matches!(
            refused,
            Some(SubscribeError::TooManySubscriptions { max: 2 })
        ),
        "{refused:?}"
    );
    assert!(refused.unwrap().to_string().contains("max_subscriptions"));
    // Regression: the slot used to come back only when the subscriber object was dropped,
    // so a closed (unsubscribed) but still referenced subscriber kept it.
    first.close().await;
    client
        .subscribe("capped", "c", sub())
        .await
        .expect("a closed subscription frees its slot");
}

/// Regression: a SUBSCRIBE whose namespace and track each passed the SDK's checks but whose
/// full track name exceeded the wire's 4,096 bytes made the relay close the whole session
/// ("session protocol error"), ending every other subscription of the client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversize_full_track_name_is_refused_locally_and_the_session_survives() {
    for scheme in SCHEMES {
        let relay = relay();
        let publisher_client = connect(&relay, scheme).await;
        let subscriber_client = connect(&relay, scheme).await;
        let publisher = announced(&publisher_client, "names/ok", "t", stream()).await;
        let mut healthy = subscriber_client
            .subscribe("names/ok", "t", sub())
            .await
            .unwrap();

        let namespace = "n".repeat(4_000);
        let track = "t".repeat(200);
        let err = subscriber_client
            .subscribe(&namespace, &track, sub())
            .await
            .unwrap_err();
        assert!(matches!(err, SubscribeError::InvalidName { .. }), "{err:?}");
        let message = err.to_string();
        assert!(message.contains("4200 bytes"), "{message}");
        assert!(message.contains("at most 4096"), "{message}");
        assert!(
            message.len() < 500,
            "the name is cut in the message: {message}"
        );
        let err = publisher_client
            .create_publisher("names/ok", &"t".repeat(4_090), stream())
            .unwrap_err();
        assert!(matches!(err, PublishError::InvalidName { .. }), "{err:?}");

        // Nothing was sent: both sessions are up and the other subscription still receives.
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(subscriber_client.is_connected(), "over {scheme}");
        assert!(publisher_client.is_connected(), "over {scheme}");
        publisher.publish(b"still flowing".to_vec()).unwrap();
        let object = next_object(&mut healthy, "healthy: the next object").await;
        assert_eq!(object.payload.as_ref(), b"still flowing", "over {scheme}");
    }
}

/// A relay accepts at most 65,536 request ids in one session and ends the whole session on
/// the next one (TOO_MANY_REQUESTS): a waiting subscription's retries alone could spend that
/// in an hour. The client stops at its budget with a typed error; the session carries on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spent_request_budget_is_a_typed_error_and_the_session_survives() {
    let relay = relay();
    let publisher_client = connect(&relay, "moqt").await;
    publisher_client.announce("budget/ns").await.unwrap();
    let publishers: Vec<_> = (0..3)
        .map(|i| {
            publisher_client
                .create_publisher("budget/ns", &format!("t{i}"), stream())
                .unwrap()
        })
        .collect();
    let mut config = config(&relay, "moqt");
    config.max_requests_per_session = 2;
    let client = connect_with(config).await;
    let mut first = client.subscribe("budget/ns", "t0", sub()).await.unwrap();
    let _second = client.subscribe("budget/ns", "t1", sub()).await.unwrap();

    let err = client
        .subscribe("budget/ns", "t2", sub())
        .await
        .unwrap_err();
    assert!(
        matches!(err, SubscribeError::SessionRequestsExhausted { limit: 2 }),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("disconnect and connect again"),
        "{err}"
    );
    let err = client.announce("budget/other").await.unwrap_err();
    assert!(
        matches!(err, AnnounceError::SessionRequestsExhausted { limit: 2 }),
        "{err:?}"
    );

    assert!(client.is_connected());
    publishers[0].publish(b"still flowing".to_vec()).unwrap();
    let object = next_object(&mut first, "first: the next object").await;
    assert_eq!(object.payload.as_ref(), b"still flowing");

    // A new session has a new budget.
    drop(first);
    client.close().await;
    client.connect().await.unwrap();
    client.subscribe("budget/ns", "t2", sub()).await.unwrap();
}
