//! Priorities: a publisher's track priority decides what its uplink carries first when it
//! cannot carry everything (a throttled FaultyLink between the publisher and the relay), and
//! the subscriber priority and group order a subscription asks for reach the peer in its
//! SUBSCRIBE.
//!
//! The throttled test compares shares of one run with another (how much of a bulk backlog got
//! through before an urgent burst did), not absolute times.

mod common;

use std::time::Duration;

use common::*;
use moq_ffi::core::{Client, ClientConfig, GroupOrder, PublisherOptions, SubscriberOptions};
use moq_test_relay::faults::FaultyLink;

/// The publisher's uplink: slow enough that a 512 KB backlog takes about two seconds.
const UPLINK_BYTES_PER_S: u64 = 256 * 1024;
const BULK_OBJECTS: usize = 64;
const BULK_SIZE: usize = 8 * 1024;
const URGENT_OBJECTS: usize = 10;

fn via(link: &FaultyLink, relay: &TestRelay) -> ClientConfig {
    let mut config = config(relay, "moqt");
    config.url = format!("moqt://localhost:{}", link.addr().port());
    config.idle_timeout = Duration::from_secs(10);
    config
}

fn with_priority(priority: u8) -> PublisherOptions {
    PublisherOptions {
        priority,
        ..PublisherOptions::default()
    }
}

/// Publish a bulk backlog on a track of `bulk_priority`, then an urgent burst on one of
/// `urgent_priority`, through the throttled uplink; the share of the backlog the subscriber
/// had received when the urgent burst's last object arrived.
async fn bulk_share_before_urgent(urgent_priority: u8, bulk_priority: u8) -> f64 {
    let relay = relay();
    let link = FaultyLink::start(relay.addr(), 7).unwrap();
    let publishing = connect_with(via(&link, &relay)).await;
    let subscribing = connect(&relay, "moqt").await;
    publishing.announce("prio").await.unwrap();
    let bulk = publishing
        .create_publisher("prio", "bulk", with_priority(bulk_priority))
        .unwrap();
    let urgent = publishing
        .create_publisher("prio", "urgent", with_priority(urgent_priority))
        .unwrap();
    let mut bulk_sub = subscribing.subscribe("prio", "bulk", sub()).await.unwrap();
    let mut urgent_sub = subscribing
        .subscribe("prio", "urgent", sub())
        .await
        .unwrap();
    // The relay follows both tracks before the measured part starts.
    bulk.publish(b"warm-up".to_vec()).unwrap();
    urgent.publish(b"warm-up".to_vec()).unwrap();
    next_object(&mut bulk_sub, "bulk warm-up").await;
    next_object(&mut urgent_sub, "urgent warm-up").await;

    link.set_upstream_rate(Some(UPLINK_BYTES_PER_S));
    for i in 0..BULK_OBJECTS {
        bulk.publish(payload(i, BULK_SIZE)).unwrap();
    }
    for i in 0..URGENT_OBJECTS {
        urgent.publish(payload(i, 100)).unwrap();
    }
    let (mut bulk_got, mut urgent_got) = (0, 0);
    let mut bulk_when_urgent_done = None;
    let bound = Duration::from_secs(60);
    while bulk_got < BULK_OBJECTS || urgent_got < URGENT_OBJECTS {
        tokio::select! {
            object = next_within(&mut bulk_sub, bound, "bulk"), if bulk_got < BULK_OBJECTS => {
                assert_eq!(object.payload.as_ref(), payload(bulk_got, BULK_SIZE).as_slice());
                bulk_got += 1;
            }
            object = next_within(&mut urgent_sub, bound, "urgent"), if urgent_got < URGENT_OBJECTS => {
                assert_eq!(object.payload.as_ref(), payload(urgent_got, 100).as_slice());
                urgent_got += 1;
                if urgent_got == URGENT_OBJECTS {
                    bulk_when_urgent_done = Some(bulk_got);
                }
            }
        }
    }
    let share = bulk_when_urgent_done.unwrap() as f64 / BULK_OBJECTS as f64;
    eprintln!(
        "urgent priority {urgent_priority}, bulk {bulk_priority}: {:.0}% of the backlog arrived \
         before the urgent burst was complete",
        share * 100.0
    );
    share
}

/// Regression: moq-transport handed MoQT priorities to quinn as they are, and quinn sends the
/// higher number first, so a priority-0 track waited behind a priority-255 backlog (vendor
/// patch 09 inverts them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_high_priority_track_overtakes_a_bulk_backlog_on_a_throttled_uplink() {
    let prioritized = bulk_share_before_urgent(0, 255).await;
    let behind = bulk_share_before_urgent(255, 0).await;
    // Measured: 2-3% and 64-100% over 8 runs (before patch 09: 100% and 2%). The swapped run is below 100%
    // because the backlog's stream is not always waiting in quinn's buffer (flow control and
    // the session's writes pace it), and then the other stream goes.
    assert!(
        prioritized <= 0.3,
        "the urgent burst should overtake most of the backlog: {:.0}% of it came first",
        prioritized * 100.0
    );
    assert!(
        behind >= 0.5,
        "a low-priority burst should wait for most of a high-priority backlog: only {:.0}%",
        behind * 100.0
    );
    assert!(
        behind >= prioritized + 0.3,
        "priorities changed little: {prioritized:.2} vs {behind:.2}"
    );
}

/// The subscriber priority and group order a subscription asks for are what the peer's
/// SUBSCRIBE carries (the peer echoes them as the track's first object).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriber_priority_and_group_order_reach_the_peer() {
    let _ = env_logger::builder().is_test(true).try_init();
    let peer = RelayProcess::start_hostile();
    let client = Client::new(config(&peer, "moqt")).unwrap();
    client.connect().await.unwrap();
    let cases = [
        (
            SubscriberOptions::default(),
            "subscriber_priority=128 group_order=publisher",
        ),
        (
            SubscriberOptions {
                priority: 7,
                group_order: GroupOrder::Descending,
                ..SubscriberOptions::default()
            },
            "subscriber_priority=7 group_order=descending",
        ),
        (
            SubscriberOptions {
                priority: 0,
                group_order: GroupOrder::Ascending,
                ..SubscriberOptions::default()
            },
            "subscriber_priority=0 group_order=ascending",
        ),
    ];
    for (i, (options, expected)) in cases.into_iter().enumerate() {
        let mut sub = client
            .subscribe("echo", &format!("t{i}"), options)
            .await
            .unwrap();
        let echo = next_object(&mut sub, expected).await;
        assert_eq!(String::from_utf8_lossy(&echo.payload), expected);
    }
}
