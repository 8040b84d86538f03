//! Slow consumers: a reader that stops reading holds at most its buffer, its overflow policy
//! applies and is reported, and the publisher and other subscribers carry on.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use moq_ffi::api;
use moq_ffi::core::{Overflow, SubscribeError, Subscriber, SubscriberOptions};

const COUNT: usize = 1000;

fn options(buffer: usize, overflow: Overflow) -> SubscriberOptions {
    SubscriberOptions {
        buffer,
        overflow,
        ..SubscriberOptions::default()
    }
}

fn index(object: &moq_ffi::core::Object) -> u32 {
    u32::from_le_bytes(object.payload[..4].try_into().unwrap())
}

async fn read_all_in_order(sub: &mut Subscriber, count: usize) {
    for i in 0..count {
        let object = tokio::time::timeout(Duration::from_secs(10), sub.next())
            .await
            .unwrap_or_else(|_| panic!("a reader that keeps up stalled at {i}"))
            .unwrap()
            .unwrap();
        assert_eq!(index(&object), i as u32);
    }
}

fn numbered(i: usize) -> Vec<u8> {
    let mut payload = (i as u32).to_le_bytes().to_vec();
    payload.resize(100, 0);
    payload
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_oldest_keeps_the_newest_reports_drops_and_spares_the_other_subscriber() {
    let relay = relay();
    let publisher_client = connect(&relay, "moqt").await;
    let client = connect(&relay, "moqt").await;
    publisher_client.announce("slow").await.unwrap();
    let publisher = publisher_client
        .create_publisher("slow", "t", stream())
        .unwrap();
    // Two local subscribers of one track share one upstream subscription.
    let mut stalled = client
        .subscribe("slow", "t", options(10, Overflow::DropOldest))
        .await
        .unwrap();
    let mut reader = client.subscribe("slow", "t", sub()).await.unwrap();
    for i in 0..COUNT {
        publisher.publish(numbered(i)).unwrap();
    }
    read_all_in_order(&mut reader, COUNT).await;
    let kept = stalled.next_batch(100).await.unwrap();
    let kept: Vec<u32> = kept.iter().map(index).collect();
    assert_eq!(
        kept,
        (990..1000).collect::<Vec<u32>>(),
        "the newest 10 are kept"
    );
    assert_eq!(stalled.dropped(), 990);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn end_policy_ends_only_the_slow_subscriber_with_a_typed_error() {
    let relay = relay();
    let publisher_client = connect(&relay, "moqt").await;
    let client = connect(&relay, "moqt").await;
    publisher_client.announce("slow").await.unwrap();
    let publisher = publisher_client
        .create_publisher("slow", "t", stream())
        .unwrap();
    let mut stalled = client
        .subscribe("slow", "t", options(10, Overflow::End))
        .await
        .unwrap();
    let mut reader = client.subscribe("slow", "t", sub()).await.unwrap();
    for i in 0..COUNT {
        publisher.publish(numbered(i)).unwrap();
    }
    read_all_in_order(&mut reader, COUNT).await;
    // What was buffered is still readable, in order, then the typed end.
    for i in 0..10 {
        let object = stalled.next().await.unwrap().unwrap();
        assert_eq!(index(&object), i);
    }
    let end = stalled.next().await;
    assert!(
        matches!(end, Err(SubscribeError::SlowConsumer { buffered: 10 })),
        "{end:?}"
    );
    assert!(!stalled.is_active());
    // The publisher was never held up.
    publisher.publish(numbered(COUNT)).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backpressure_loses_nothing_through_a_tiny_buffer() {
    let relay = relay();
    let publisher_client = connect(&relay, "moqt").await;
    let client = connect(&relay, "moqt").await;
    publisher_client.announce("slow").await.unwrap();
    let publisher = publisher_client
        .create_publisher("slow", "t", stream())
        .unwrap();
    let mut slow = client
        .subscribe("slow", "t", options(4, Overflow::Backpressure))
        .await
        .unwrap();
    for i in 0..COUNT {
        publisher.publish(numbered(i)).unwrap();
    }
    for i in 0..COUNT {
        if i % 100 == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let object = tokio::time::timeout(Duration::from_secs(10), slow.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(index(&object), i as u32);
    }
}

/// A listener that blocks in its first call until released.
struct Blocking {
    release: Arc<AtomicBool>,
    ended: Mutex<Option<Option<String>>>,
}

impl api::ObjectListener for Blocking {
    fn on_objects(&self, _objects: Vec<api::ReceivedObject>) -> Result<(), api::ListenerError> {
        while !self.release.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(())
    }

    fn on_end(&self, error: Option<String>) -> Result<(), api::ListenerError> {
        *self.ended.lock().unwrap() = Some(error);
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_listener_under_the_end_policy_is_ended_and_others_get_everything() {
    let relay = relay();
    let config = |overflow| {
        let mut config = api_config(&relay);
        config.subscription_buffer = 8;
        config.overflow = Some(overflow);
        config
    };
    let publisher_client = api::Client::new(config(api::OverflowPolicy::Backpressure)).unwrap();
    let blocked_client = api::Client::new(config(api::OverflowPolicy::End)).unwrap();
    let other_client = api::Client::new(config(api::OverflowPolicy::Backpressure)).unwrap();
    for client in [&publisher_client, &blocked_client, &other_client] {
        client.connect().await.unwrap();
    }
    publisher_client.announce("blocked".into()).await.unwrap();
    let publisher = publisher_client
        .create_publisher("blocked".into(), "t".into(), None)
        .unwrap();
    let listener = Arc::new(Blocking {
        release: Arc::new(AtomicBool::new(false)),
        ended: Mutex::new(None),
    });
    let blocked = blocked_client
        .subscribe_with_listener("blocked".into(), "t".into(), listener.clone())
        .await
        .unwrap();
    let other = other_client
        .subscribe("blocked".into(), "t".into())
        .await
        .unwrap();
    for i in 0..COUNT {
        publisher.publish(numbered(i)).unwrap();
    }
    let mut got = 0;
    while got < COUNT {
        let batch = tokio::time::timeout(Duration::from_secs(10), other.next_batch(256))
            .await
            .expect("the other subscriber stalled")
            .unwrap();
        for object in batch {
            assert_eq!(
                u32::from_le_bytes(object.payload[..4].try_into().unwrap()),
                got as u32
            );
            got += 1;
        }
    }
    listener.release.store(true, Ordering::SeqCst);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let ended = loop {
        if let Some(ended) = listener.ended.lock().unwrap().clone() {
            break ended;
        }
        assert!(std::time::Instant::now() < deadline, "on_end never came");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let reason = ended.expect("ended with an error");
    assert!(
        reason.contains("fell") && reason.contains("behind"),
        "{reason}"
    );
    assert!(!blocked.is_active());
}
