//! Shapes foreign relays use toward a publisher, played by peers built on moq-transport's
//! server side (`moq_test_relay::foreign`): what our relays never send, but moq-dev's does.

mod common;

use std::sync::mpsc::Receiver;
use std::time::Duration;

use moq_ffi::core::{Client, ClientConfig};
use moq_test_relay::foreign::{Delivery, ForeignSubscriber, Received};

fn next(received: &Receiver<Delivery>, what: &str) -> Received {
    match received.recv_timeout(Duration::from_secs(10)) {
        Ok(Ok(object)) => object,
        Ok(Err(ended)) => panic!("{what}: the subscription ended: {ended}"),
        Err(_) => panic!("{what}: nothing arrived within 10 s"),
    }
}

/// moq-dev's relay subscribes with the Largest Object filter when a subscriber joins, and
/// drops a group whose stream starts mid-group: through it, `moqkit pub` lost its first group.
/// A Largest Object subscription that arrives while a group is open gets that group from its
/// first object, then what follows, in order.
async fn connect(peer: &ForeignSubscriber) -> Client {
    let _ = env_logger::builder().is_test(true).try_init();
    let mut config = ClientConfig::new(peer.moqt_url());
    config.tls.use_system_roots = false;
    config.tls.extra_ca_pem = vec![std::fs::read(peer.ca_path()).expect("peer CA")];
    let client = Client::new(config).expect("valid config");
    client.connect().await.expect("connect to the foreign peer");
    client
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn largest_object_subscription_mid_group_gets_the_open_group_from_object_0() {
    let peer = ForeignSubscriber::start().expect("start the foreign peer");
    let client = connect(&peer).await;
    client.announce("mid").await.expect("announce");
    let publisher = client
        .create_publisher("mid", "t", common::stream())
        .expect("publisher");
    for i in 0..5u8 {
        publisher
            .publish(vec![i])
            .expect("publish before the subscription");
    }

    let received = peer.subscribe_largest("mid", "t");
    // The subscription is served once it is in place; objects published after it follow.
    tokio::time::sleep(Duration::from_millis(300)).await;
    for i in 5..8u8 {
        publisher
            .publish(vec![i])
            .expect("publish after the subscription");
    }
    publisher.new_group().expect("new group");
    publisher
        .publish(vec![8])
        .expect("publish into the next group");

    let got: Vec<(u64, u64, Vec<u8>)> = (0..9)
        .map(|n| {
            let object = next(&received, &format!("object {n}"));
            (object.group, object.object, object.payload.to_vec())
        })
        .collect();
    let group = got[0].0;
    let expected: Vec<(u64, u64, Vec<u8>)> = (0..8u8)
        .map(|i| (group, u64::from(i), vec![i]))
        .chain([(group + 1, 0, vec![8])])
        .collect();
    assert_eq!(got, expected, "the open group whole, then the next");
    client.close().await;
}

/// moq-dev's relay probes a track (SUBSCRIBE, cancel ~2 ms later) before it subscribes for
/// real with the Largest Object filter. `moqkit pub` started its file on the probe, and the
/// relay's subscriber lost group 0 (1 run in 6 of scripts/interop). `wait_for_subscriber`
/// counts a subscription only once it has stayed: everything published after it returns
/// arrives, from group 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_for_subscriber_ignores_a_relay_probe_so_group_0_is_not_lost() {
    let peer = ForeignSubscriber::start().expect("start the foreign peer");
    let client = connect(&peer).await;
    client.announce("probe").await.expect("announce");
    let options = moq_ffi::core::PublisherOptions {
        max_group_objects: 64,
        ..common::stream()
    };
    let publisher = client
        .create_publisher("probe", "t", options)
        .expect("publisher");
    let received = peer.subscribe_largest_after_probe("probe", "t");
    assert!(
        publisher.wait_for_subscriber(Duration::from_secs(10)).await,
        "the real subscription is there"
    );
    const OBJECTS: u64 = 300;
    for i in 0..OBJECTS {
        publisher
            .publish(i.to_le_bytes().to_vec())
            .expect("publish");
    }
    for i in 0..OBJECTS {
        let object = next(&received, &format!("object {i}"));
        assert_eq!(
            (object.group, object.object, object.payload.to_vec()),
            (i / 64, i % 64, i.to_le_bytes().to_vec()),
            "object {i} in order, none lost"
        );
    }
    client.close().await;
}
