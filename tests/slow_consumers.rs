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
        let object = next_object(sub, format!("a reader that keeps up, object {i}")).await;
        assert_eq!(index(&object), i as u32);
    }
}

fn numbered(i: usize) -> Vec<u8> {
    let mut payload = (i as u32).to_le_bytes().to_vec();
    payload.resize(100, 0);
    payload
}

/// A subscriber that reads nothing (buffer 10, `overflow`) beside one that reads all `COUNT`
/// objects of the track (two local subscribers of one track share one upstream subscription),
/// once that reader has them all. The reader is returned so it stays subscribed.
async fn stalled_beside_a_reader(overflow: Overflow) -> (PubSub, Subscriber, Subscriber) {
    let t = PubSub::start("moqt", "slow", "t").await;
    let stalled = t.subscribe(options(10, overflow)).await;
    let mut reader = t.subscribe(sub()).await;
    for i in 0..COUNT {
        t.publisher.publish(numbered(i)).unwrap();
    }
    read_all_in_order(&mut reader, COUNT).await;
    (t, stalled, reader)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_oldest_keeps_the_newest_reports_drops_and_spares_the_other_subscriber() {
    let (_t, mut stalled, _reader) = stalled_beside_a_reader(Overflow::DropOldest).await;
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
    let (t, mut stalled, _reader) = stalled_beside_a_reader(Overflow::End).await;
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
    t.publisher.publish(numbered(COUNT)).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backpressure_loses_nothing_through_a_tiny_buffer() {
    let t = PubSub::start("moqt", "slow", "t").await;
    let publisher = &t.publisher;
    let mut slow = t.subscribe(options(4, Overflow::Backpressure)).await;
    for i in 0..COUNT {
        publisher.publish(numbered(i)).unwrap();
    }
    for i in 0..COUNT {
        if i % 100 == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let object = next_object(&mut slow, format!("object {i}")).await;
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
        .subscribe_with_listener("blocked".into(), "t".into(), listener.clone(), None)
        .await
        .unwrap();
    let other = other_client
        .subscribe("blocked".into(), "t".into(), None)
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

/// Issue #23 item 5: a `Backpressure` subscription whose reader stops leaves its track's
/// streams unread, each holding up to its stream window of the connection's receive window;
/// enough of them froze every other track of the client (a paused video tile silenced the
/// audio). A 4 Mbit/s track of one-second groups, paused, beside a small track read as it
/// comes, with `receive_window` 8 MiB (the connection's share that stalled streams could
/// fill within the test; 32 MiB by default). Before the fix the other track went silent
/// about 25 s into the pause. Now it keeps flowing; the paused one ends with `Stalled` once
/// more than half the window's worth of its streams (4 here) waited unread for a second,
/// after the objects it had buffered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_track_does_not_freeze_the_clients_other_tracks() {
    let relay = relay();
    let publisher_client = connect(&relay, "moqt").await;
    let mut config = common::config(&relay, "moqt");
    config.receive_window = 8 * 1024 * 1024;
    let client = connect_with(config).await;
    let video = announced(&publisher_client, "tile", "video", stream()).await;
    let audio = publisher_client
        .create_publisher("tile", "audio", stream())
        .unwrap();
    let paused_options = SubscriberOptions {
        buffer_bytes: 2 * 1024 * 1024,
        overflow: Overflow::Backpressure,
        ..SubscriberOptions::default()
    };
    let mut paused = client
        .subscribe("tile", "video", paused_options)
        .await
        .unwrap();
    let mut listening = client.subscribe("tile", "audio", sub()).await.unwrap();

    let running = Arc::new(AtomicBool::new(true));
    let publishing = tokio::spawn({
        let running = running.clone();
        async move {
            // 10 video objects of 50 KB a second (4 Mbit/s), a group a second; 50 audio
            // objects of 1 KB a second.
            let mut tick = tokio::time::interval(Duration::from_millis(20));
            let mut n = 0usize;
            while running.load(Ordering::Relaxed) {
                tick.tick().await;
                let _ = audio.publish(numbered(n));
                if n % 5 == 0 {
                    if n % 50 == 0 {
                        let _ = video.new_group();
                    }
                    let _ = video.publish(vec![7u8; 50_000]);
                }
                n += 1;
            }
        }
    });
    let started = std::time::Instant::now();
    let mut heard = 0usize;
    let mut longest_silence = Duration::ZERO;
    let mut last = std::time::Instant::now();
    while started.elapsed() < Duration::from_secs(40) {
        match tokio::time::timeout(Duration::from_secs(5), listening.next()).await {
            Ok(Ok(Some(_))) => {
                heard += 1;
                longest_silence = longest_silence.max(last.elapsed());
                last = std::time::Instant::now();
            }
            Ok(other) => panic!("the audio subscription ended: {other:?}"),
            Err(_) => panic!(
                "audio silent for 5 s after {heard} objects, {:?} into the pause",
                started.elapsed()
            ),
        }
    }
    running.store(false, Ordering::Relaxed);
    publishing.await.unwrap();
    eprintln!("audio: {heard} objects in 40 s, longest silence {longest_silence:?}");
    // Generous for a loaded machine: before the fix the silence never ended.
    assert!(
        longest_silence < Duration::from_secs(3),
        "silent for {longest_silence:?}"
    );
    // The paused track: what it buffered, then the typed end.
    let mut buffered = 0;
    let end = loop {
        match tokio::time::timeout(Duration::from_secs(10), paused.next()).await {
            Ok(Ok(Some(_))) => buffered += 1,
            Ok(other) => break other,
            Err(_) => panic!("the paused track neither ended nor delivered"),
        }
    };
    eprintln!("paused track: {buffered} buffered objects, then {end:?}");
    assert!(
        matches!(end, Err(SubscribeError::Stalled { max_streams: 4 })),
        "{end:?}"
    );
}
