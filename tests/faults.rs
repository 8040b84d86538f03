//! Fault injection: lossy, delayed and black-holed paths between clients and a real relay
//! (through `moq_test_relay::faults::FaultyLink`), and a relay killed mid-burst.

mod common;

use std::time::{Duration, Instant};

use common::*;
use moq_ffi::core::{
    AnnounceError, Client, ClientConfig, ConnectionState, PublishError, SubscribeError,
};
use moq_test_relay::faults::FaultyLink;

/// The test configuration, pointed at `link` instead of the relay.
fn via(link: &FaultyLink, relay: &TestRelay, scheme: &str) -> ClientConfig {
    let mut config = config(relay, scheme);
    let mut url = url::Url::parse(&config.url).unwrap();
    url.set_port(Some(link.addr().port())).unwrap();
    config.url = url.to_string();
    config
}

async fn connect_via(link: &FaultyLink, relay: &TestRelay, scheme: &str) -> Client {
    let client = Client::new(via(link, relay, scheme)).unwrap();
    client.connect().await.expect("connect through the link");
    client
}

async fn stream_survives_loss(scheme: &str) {
    const COUNT: usize = 2_000;
    let relay = relay();
    let pub_link = FaultyLink::start(relay.addr(), 1).unwrap();
    let sub_link = FaultyLink::start(relay.addr(), 2).unwrap();
    let publisher_client = connect_via(&pub_link, &relay, scheme).await;
    let subscriber_client = connect_via(&sub_link, &relay, scheme).await;
    pub_link.set_loss(0.05);
    sub_link.set_loss(0.05);
    let publisher = announced(&publisher_client, "lossy", "t", stream()).await;
    let mut sub = subscriber_client
        .subscribe("lossy", "t", sub())
        .await
        .unwrap();
    for i in 0..COUNT {
        publisher.publish(payload(i, 100)).unwrap();
    }
    let mut got = 0;
    while got < COUNT {
        let object = tokio::time::timeout(Duration::from_secs(30), sub.next())
            .await
            .unwrap_or_else(|_| panic!("{scheme}: stalled after {got} objects"))
            .unwrap_or_else(|err| panic!("{scheme}: failed after {got} objects: {err}"))
            .unwrap_or_else(|| panic!("{scheme}: ended after {got} objects"));
        assert_eq!(
            object.payload.as_ref(),
            payload(got, 100).as_slice(),
            "{scheme}: object {got}"
        );
        got += 1;
    }
    let (pub_fwd, pub_drop) = pub_link.counts();
    let (sub_fwd, sub_drop) = sub_link.counts();
    eprintln!(
        "{scheme}: {COUNT}/{COUNT} delivered in order; datagrams dropped {} of {}",
        pub_drop + sub_drop,
        pub_fwd + pub_drop + sub_fwd + sub_drop
    );
    assert!(
        pub_drop + sub_drop > 0,
        "the link dropped nothing: the test tested nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_mode_delivers_everything_in_order_at_5_percent_loss_raw_quic() {
    stream_survives_loss("moqt").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_mode_delivers_everything_in_order_at_5_percent_loss_webtransport() {
    stream_survives_loss("https").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delay_adds_latency_and_loses_nothing() {
    let relay = relay();
    let link = FaultyLink::start(relay.addr(), 3).unwrap();
    let publisher_client = connect(&relay, "moqt").await;
    let subscriber_client = connect_via(&link, &relay, "moqt").await;
    let publisher = announced(&publisher_client, "slow", "t", stream()).await;
    let mut sub = subscriber_client
        .subscribe("slow", "t", sub())
        .await
        .unwrap();
    link.set_delay(Duration::from_millis(50));
    let sent = Instant::now();
    publisher.publish(b"late".to_vec()).unwrap();
    let object = next_object(&mut sub, "sub: the next object").await;
    assert_eq!(object.payload.as_ref(), b"late");
    assert!(
        sent.elapsed() >= Duration::from_millis(50),
        "{:?}",
        sent.elapsed()
    );
}

async fn black_hole_detected(scheme: &str) {
    let relay = relay();
    let link = FaultyLink::start(relay.addr(), 4).unwrap();
    let mut config = via(&link, &relay, scheme);
    config.request_timeout = Duration::from_secs(1);
    let client = connect_with(config).await;
    let publisher = announced(&client, "dark", "t", stream()).await;
    let mut subscription = client.subscribe("dark", "t", sub()).await.unwrap();
    let mut states = client.state_watch();

    link.set_black_hole(true);
    let dark = Instant::now();
    // A request in flight meets the request timeout (or the detected loss), never a hang.
    let announce = client.announce("dark/too").await;
    assert!(
        matches!(
            announce,
            Err(AnnounceError::Timeout { .. }) | Err(AnnounceError::NotConnected)
        ),
        "{scheme}: {announce:?}"
    );
    assert!(
        dark.elapsed() < Duration::from_secs(3),
        "{scheme}: {:?}",
        dark.elapsed()
    );

    let bound = client.config().idle_timeout + Duration::from_secs(1);
    tokio::time::timeout(bound, states.wait_for(|s| *s == ConnectionState::Failed))
        .await
        .unwrap_or_else(|_| panic!("{scheme}: black hole not detected within {bound:?}"))
        .unwrap();
    let detected = dark.elapsed();
    eprintln!("{scheme}: black hole detected after {detected:?} (idle_timeout 2 s)");
    assert!(
        detected >= Duration::from_millis(1500),
        "{scheme}: {detected:?}"
    );
    assert!(matches!(
        publisher.publish(b"x".to_vec()),
        Err(PublishError::NotConnected)
    ));
    let end = tokio::time::timeout(Duration::from_secs(2), subscription.next())
        .await
        .expect("subscriber told of the loss");
    assert!(
        matches!(end, Err(SubscribeError::ConnectionLost) | Ok(None)),
        "{scheme}: {end:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn black_hole_trips_the_detection_bound_and_timeouts_raw_quic() {
    black_hole_detected("moqt").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn black_hole_trips_the_detection_bound_and_timeouts_webtransport() {
    black_hole_detected("https").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_killed_mid_burst_gives_typed_errors_and_no_hang() {
    for scheme in SCHEMES {
        let mut relay = relay();
        let publisher_client = connect(&relay, scheme).await;
        let subscriber_client = connect(&relay, scheme).await;
        let publisher = announced(&publisher_client, "killed", "t", stream()).await;
        let mut sub = subscriber_client
            .subscribe("killed", "t", sub())
            .await
            .unwrap();
        // Publish continuously from another task while the relay dies.
        let burst = tokio::spawn(async move {
            let started = Instant::now();
            let mut i = 0usize;
            loop {
                // Waiting whenever the queue toward the network is full (the relay's death
                // stalls the network before the session is known to be lost).
                match publisher.publish_when_ready(payload(i, 1000), None).await {
                    Ok(_) => i += 1,
                    Err(err) => return (i, err, started.elapsed()),
                }
                if i % 100 == 0 {
                    tokio::task::yield_now().await;
                }
                if started.elapsed() > Duration::from_secs(20) {
                    panic!("{scheme}: publishing never failed");
                }
            }
        });
        // Let some objects through, then kill the relay mid-burst.
        let first = tokio::time::timeout(Duration::from_secs(5), sub.next())
            .await
            .unwrap()
            .unwrap();
        assert!(first.is_some());
        relay.stop();
        let killed = Instant::now();
        let bound = Duration::from_secs(2) + Duration::from_secs(2);
        let (published, err, _) = tokio::time::timeout(bound + Duration::from_secs(1), burst)
            .await
            .unwrap_or_else(|_| panic!("{scheme}: publisher hung"))
            .unwrap();
        assert!(
            matches!(err, PublishError::NotConnected),
            "{scheme}: {err:?}"
        );
        // The subscriber drains what arrived in order, then learns of the loss.
        let mut received = 1;
        let end = loop {
            match tokio::time::timeout(bound, sub.next()).await {
                Ok(Ok(Some(object))) => {
                    assert_eq!(object.payload.as_ref(), payload(received, 1000).as_slice());
                    received += 1;
                }
                Ok(other) => break other,
                Err(_) => panic!("{scheme}: subscriber hung after {received} objects"),
            }
        };
        assert!(
            matches!(end, Err(SubscribeError::ConnectionLost) | Ok(None)),
            "{scheme}: {end:?}"
        );
        assert!(killed.elapsed() < bound + Duration::from_secs(1));
        eprintln!("{scheme}: {published} published, {received} received in order before the loss");
    }
}
