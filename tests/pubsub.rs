//! Publish/subscribe through a real relay, over raw QUIC and WebTransport.

mod common;

use std::time::Duration;

use common::*;
use moq_ffi::core::{DeliveryMode, PublisherOptions, SubscribeError};
use moq_test_relay::RelayKind;

async fn receive_all(
    sub: &mut moq_ffi::core::Subscriber,
    count: usize,
    within: Duration,
) -> Vec<moq_ffi::core::Object> {
    let mut got = Vec::with_capacity(count);
    let deadline = tokio::time::Instant::now() + within;
    while got.len() < count {
        match tokio::time::timeout_at(deadline, sub.next_batch(256)).await {
            Ok(Ok(batch)) if !batch.is_empty() => got.extend(batch),
            Ok(Ok(_)) => break,
            Ok(Err(err)) => panic!("subscription failed after {} objects: {err}", got.len()),
            Err(_) => break,
        }
    }
    got
}

async fn burst(scheme: &str, count: usize, size: usize) {
    let options = PublisherOptions {
        max_group_objects: std::env::var("GROUP_OBJECTS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1024),
        ..PublisherOptions::default()
    };
    let t = PubSub::with(relay(), [scheme, scheme], "bench/burst", "data", options).await;
    let mut sub = t.subscribe(sub()).await;
    let (relay, publisher) = (&t.relay, &t.publisher);
    // The subscription is established: publish as fast as the publisher's queue allows.
    for i in 0..count {
        publisher
            .publish_when_ready(payload(i, size), None)
            .await
            .unwrap();
    }
    if relay.kind() == RelayKind::Draft16 {
        return burst_through_a_draft_16_relay(&mut sub, scheme, count, size).await;
    }
    let got = receive_all(&mut sub, count, Duration::from_secs(60)).await;
    if got.len() != count {
        let indices: Vec<u64> = got
            .iter()
            .map(|o| u64::from_le_bytes(o.payload[..8].try_into().unwrap()))
            .collect();
        let groups: Vec<u64> = got.iter().map(|o| o.group_id).collect();
        let mut seq = groups.clone();
        seq.dedup();
        eprintln!("group sequence: {seq:?}");
        let missing: Vec<u64> = (0..count as u64).filter(|i| !indices.contains(i)).collect();
        panic!(
            "objects lost over {scheme}: got {} of {count}; missing {:?}",
            got.len(),
            &missing[..missing.len().min(60)]
        );
    }
    for (i, object) in got.iter().enumerate() {
        assert_eq!(
            object.payload.as_ref(),
            payload(i, size).as_slice(),
            "object {i} differs"
        );
    }
    // Strictly increasing (group, object) locations: in order, no duplicates.
    for pair in got.windows(2) {
        assert!((pair[0].group_id, pair[0].object_id) < (pair[1].group_id, pair[1].object_id));
    }
}

/// A burst through moq-relay-ietf 0.7 (draft 16): it hands a reader only the newest group of
/// a track, so a group arriving while its subscriber is still being sent an earlier one is
/// gone (seen: 1 of 10 groups of 1,024 objects in a 10k burst). The client sees whole groups
/// missing, as a group-id jump; what arrives is in order and exactly what was published.
async fn burst_through_a_draft_16_relay(
    sub: &mut moq_ffi::core::Subscriber,
    scheme: &str,
    count: usize,
    size: usize,
) {
    let last = count as u64 - 1;
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while got
        .last()
        .map(|o: &moq_ffi::core::Object| u64::from_le_bytes(o.payload[..8].try_into().unwrap()))
        != Some(last)
    {
        match tokio::time::timeout_at(deadline, sub.next_batch(256)).await {
            Ok(Ok(batch)) if !batch.is_empty() => got.extend(batch),
            Ok(other) => panic!(
                "{scheme}: delivery ended after {} objects: {other:?}",
                got.len()
            ),
            Err(_) => panic!(
                "{scheme}: the last object did not arrive ({} did)",
                got.len()
            ),
        }
    }
    let mut delivered = std::collections::BTreeMap::<u64, Vec<u64>>::new();
    for pair in got.windows(2) {
        assert!((pair[0].group_id, pair[0].object_id) < (pair[1].group_id, pair[1].object_id));
    }
    for object in &got {
        let index = u64::from_le_bytes(object.payload[..8].try_into().unwrap());
        assert_eq!(
            object.payload.as_ref(),
            payload(index as usize, size).as_slice()
        );
        delivered.entry(object.group_id).or_default().push(index);
    }
    // Every group that arrived arrived whole (its indices consecutive, ending where the
    // next group's begin); only whole groups are missing.
    let groups: Vec<(u64, Vec<u64>)> = delivered.into_iter().collect();
    for pair in groups.windows(2) {
        let (first, next) = (&pair[0].1, &pair[1].1);
        assert_eq!(
            first.len() as u64,
            first[first.len() - 1] - first[0] + 1,
            "{scheme}: group {} cut",
            pair[0].0
        );
        if pair[1].0 == pair[0].0 + 1 {
            assert_eq!(
                first[first.len() - 1] + 1,
                next[0],
                "{scheme}: objects missing between groups"
            );
        }
    }
    let published_groups = groups.last().map_or(0, |(group, _)| group + 1);
    eprintln!(
        "{scheme}: {} of {published_groups} groups ({} of {count} objects) through the draft-16 relay",
        groups.len(),
        got.len()
    );
    // How many groups arrive is the relay's pace against the subscriber's (a loaded CI run saw
    // 2 of 10), not the client's: what the client owes is above (order, whole groups, exact
    // content, the last object arriving; the subscription never ends).
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn burst_10k_small_objects_arrive_complete_in_order_raw_quic() {
    burst("moqt", 10_000, 100).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn burst_10k_small_objects_arrive_complete_in_order_webtransport() {
    burst("https", 10_000, 100).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn burst_1k_large_objects_arrive_complete_raw_quic() {
    burst("moqt", 1_000, 100 * 1024).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn burst_1k_large_objects_arrive_complete_webtransport() {
    burst("https", 1_000, 100 * 1024).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn byte_exact_including_zero_length_objects_both_schemes() {
    for scheme in SCHEMES {
        let t = PubSub::one_client(scheme, "exact", "t", stream()).await;
        let (publisher, mut sub) = (&t.publisher, t.subscribe(sub()).await);
        let payloads: Vec<Vec<u8>> = vec![
            vec![],
            b"hello".to_vec(),
            vec![0u8; 1],
            (0..=255u8).collect(),
            vec![],
            payload(7, 5000),
        ];
        for p in &payloads {
            publisher.publish(p.clone()).unwrap();
        }
        let got = receive_all(&mut sub, payloads.len(), Duration::from_secs(10)).await;
        let got: Vec<Vec<u8>> = got.into_iter().map(|o| o.payload.to_vec()).collect();
        assert_eq!(got, payloads, "over {scheme}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_group_starts_a_new_group_and_keeps_order() {
    let t = PubSub::one_client("moqt", "groups", "t", stream()).await;
    let (publisher, mut sub) = (&t.publisher, t.subscribe(sub()).await);
    // Joined once an object arrives: a draft-16 relay (moq-relay-ietf 0.7) starts a new
    // subscription at the first group it receives after it began serving it, so a group
    // already under way when SUBSCRIBE_OK came back may not reach it.
    publisher.publish(b"warm-up".to_vec()).unwrap();
    let warm = receive_all(&mut sub, 1, Duration::from_secs(10)).await;
    assert_eq!(warm.len(), 1, "the subscription did not start");
    publisher.new_group().unwrap();
    publisher.publish(b"a".to_vec()).unwrap();
    publisher.publish(b"b".to_vec()).unwrap();
    // Groups a moment apart, as a live source's: the draft-16 relay forwards only the newest
    // group of a track, so a group followed within milliseconds by the next can be skipped
    // even for a subscriber that keeps up (seen: only "c" arrived, 1 clean-clone run in 3).
    tokio::time::sleep(Duration::from_millis(100)).await;
    publisher.new_group().unwrap();
    publisher.publish(b"c".to_vec()).unwrap();
    let got = receive_all(&mut sub, 3, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 3);
    assert_eq!((got[0].group_id, got[0].object_id), (got[1].group_id, 0));
    assert_eq!(got[1].object_id, 1);
    assert!(got[2].group_id > got[1].group_id);
    assert_eq!(got[2].object_id, 0);
    assert_eq!(got[2].payload.as_ref(), b"c");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn datagram_mode_delivers_intact_objects_both_schemes() {
    for scheme in SCHEMES {
        let options = PublisherOptions {
            delivery: DeliveryMode::Datagram,
            ..PublisherOptions::default()
        };
        let t = PubSub::one_client(scheme, "dg", "t", options).await;
        let (publisher, mut sub) = (&t.publisher, t.subscribe(sub()).await);
        // Paced: datagrams are lossy by design, and a publisher more than 64 datagrams
        // ahead of a hop loses the oldest.
        for i in 0..200 {
            publisher.publish(payload(i, 200)).unwrap();
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let mut got = Vec::new();
        while let Ok(Ok(Some(object))) =
            tokio::time::timeout(Duration::from_millis(500), sub.next()).await
        {
            got.push(object);
        }
        assert!(
            got.len() >= 150,
            "only {} of 200 datagrams over {scheme}",
            got.len()
        );
        for object in &got {
            // Never corrupted: the payload matches the index it carries.
            let index = u64::from_le_bytes(object.payload[..8].try_into().unwrap()) as usize;
            assert_eq!(object.payload.as_ref(), payload(index, 200).as_slice());
        }
        let oversize = publisher.publish(vec![0u8; 4000]).unwrap_err();
        assert!(matches!(
            oversize,
            moq_ffi::core::PublishError::DatagramTooLarge { .. }
        ));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_publishers_and_subscribers_on_one_client_and_two_clients() {
    let relay = relay();
    let a = connect(&relay, "moqt").await;
    let b = connect(&relay, "https").await;
    a.announce("multi/a").await.unwrap();
    b.announce("multi/b").await.unwrap();
    let pubs = [
        a.create_publisher("multi/a", "one", stream()).unwrap(),
        a.create_publisher("multi/a", "two", stream()).unwrap(),
        b.create_publisher("multi/b", "three", stream()).unwrap(),
    ];
    let mut subs = [
        b.subscribe("multi/a", "one", sub()).await.unwrap(),
        b.subscribe("multi/a", "two", sub()).await.unwrap(),
        a.subscribe("multi/b", "three", sub()).await.unwrap(),
        // A client can subscribe to its own track through the relay.
        a.subscribe("multi/a", "one", sub()).await.unwrap(),
    ];
    for i in 0..100 {
        for (k, p) in pubs.iter().enumerate() {
            p.publish(payload(i * 10 + k, 64)).unwrap();
        }
    }
    for (s, k) in subs.iter_mut().zip([0usize, 1, 2, 0]) {
        let got = receive_all(s, 100, Duration::from_secs(10)).await;
        assert_eq!(got.len(), 100);
        for (i, o) in got.iter().enumerate() {
            assert_eq!(o.payload.as_ref(), payload(i * 10 + k, 64).as_slice());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_the_publisher_ends_the_track_for_subscribers() {
    let t = PubSub::one_client("moqt", "end", "t", stream()).await;
    let mut sub = t.subscribe(sub()).await;
    t.publisher.publish(b"last".to_vec()).unwrap();
    let first = next_object(&mut sub, "the last object").await;
    assert_eq!(first.payload.as_ref(), b"last");
    drop(t.publisher);
    let end = tokio::time::timeout(Duration::from_secs(10), sub.next())
        .await
        .expect("track end reported");
    // A publisher that closes its track ends it normally: not an error.
    assert!(matches!(end, Ok(None)), "{end:?}");
    assert!(!sub.is_active());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsubscribe_stops_delivery() {
    let t = PubSub::one_client("moqt", "unsub", "t", stream()).await;
    let (publisher, mut sub) = (&t.publisher, t.subscribe(sub()).await);
    publisher.publish(b"1".to_vec()).unwrap();
    next_object(&mut sub, "the first object").await;
    sub.close().await;
    assert!(!sub.is_active());
    publisher.publish(b"2".to_vec()).unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(sub.try_next(), None);
    assert!(matches!(sub.next().await, Ok(None)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_local_subscribers_of_one_track_each_get_every_object() {
    // A session holds one upstream subscription per track; local subscribers share it.
    let t = PubSub::with(relay(), ["moqt", "https"], "shared", "t", stream()).await;
    let (publisher, mut first) = (&t.publisher, t.subscribe(sub()).await);
    publisher.publish(payload(0, 64)).unwrap();
    // A subscriber joining while a group is open (at this client: the end of the group may
    // still be in flight) starts at that group's beginning, as a decoder needs its key frame.
    publisher.new_group().unwrap();
    let mut second = t.subscribe(sub()).await;
    for i in 1..500 {
        publisher.publish(payload(i, 64)).unwrap();
    }
    let got_first = receive_all(&mut first, 500, Duration::from_secs(10)).await;
    assert_eq!(got_first.len(), 500);
    // The second gets everything published after it joined (and possibly object 0, from the
    // group that was still open when it joined).
    let mut got_second = receive_all(&mut second, 499, Duration::from_secs(10)).await;
    if got_second
        .first()
        .is_some_and(|o| o.payload.as_ref() == payload(0, 64).as_slice())
    {
        got_second.remove(0);
        got_second.extend(receive_all(&mut second, 1, Duration::from_secs(5)).await);
    }
    assert_eq!(got_second.len(), 499);
    for (k, object) in got_second.iter().enumerate() {
        assert_eq!(object.payload.as_ref(), payload(k + 1, 64).as_slice());
    }
    // Closing one leaves the other flowing.
    first.close().await;
    publisher.publish(payload(500, 64)).unwrap();
    let more = receive_all(&mut second, 1, Duration::from_secs(5)).await;
    assert_eq!(more[0].payload.as_ref(), payload(500, 64).as_slice());
}

/// Bug: the subscriber's track reader was taken by a separate task after the first group
/// arrived, while the session (one task) could accept many groups in one poll; moq-transport
/// keeps only the newest 8 groups for a reader not yet taken, so a burst of short groups
/// lost its first groups. The relay already follows the track here (a first subscriber holds
/// it), so every loss would be at the second subscriber's own reader.
async fn short_group_burst_reaches_a_subscriber_joining_a_followed_track(scheme: &str) {
    let one_object_groups = PublisherOptions {
        max_group_objects: 1,
        ..PublisherOptions::default()
    };
    let t = PubSub::with(relay(), [scheme, scheme], "short", "t", one_object_groups).await;
    let (relay, publisher, mut first) = (&t.relay, &t.publisher, t.subscribe(sub()).await);
    publisher.publish(b"warm-up".to_vec()).unwrap();
    let warm = receive_all(&mut first, 1, Duration::from_secs(10)).await;
    assert_eq!(warm.len(), 1, "the relay did not start following the track");

    let second_client = connect(relay, scheme).await;
    let mut second = second_client.subscribe("short", "t", sub()).await.unwrap();
    const COUNT: usize = 400; // groups; below the transport's 1,024 pending-stream cap
    for i in 0..COUNT {
        publisher.publish(payload(i, 100)).unwrap();
    }
    let mut got = receive_all(&mut second, COUNT, Duration::from_secs(30)).await;
    // A draft-16 relay (moq-relay-ietf 0.7) starts a new subscription at the newest group it
    // has, here the warm-up; the others start after it.
    if relay.kind() == RelayKind::Draft16
        && got
            .first()
            .is_some_and(|o| o.payload.as_ref() == b"warm-up")
    {
        got.remove(0);
        got.extend(receive_all(&mut second, 1, Duration::from_secs(10)).await);
    }
    let indices: Vec<u64> = got
        .iter()
        .map(|o| u64::from_le_bytes(o.payload[..8].try_into().unwrap()))
        .collect();
    let expected: Vec<u64> = (0..COUNT as u64).collect();
    if relay.kind() == RelayKind::Draft16 {
        // moq-relay-ietf 0.7 hands a reader only the newest group of a track: a group its
        // reader had not reached when the next arrived is gone, a visible gap (the client
        // sends one group stream at a time to keep this rare). What arrives is in order.
        assert!(
            indices.windows(2).all(|w| w[0] < w[1]),
            "over {scheme}: reordered: {indices:?}"
        );
        assert!(
            indices.len() * 100 >= COUNT * 95,
            "over {scheme}: {} of {COUNT}",
            indices.len()
        );
        assert_eq!(
            indices.last(),
            Some(&(COUNT as u64 - 1)),
            "over {scheme}: the last group"
        );
        return;
    }
    assert_eq!(indices, expected, "over {scheme}: groups lost or reordered");
    let also = receive_all(&mut first, COUNT, Duration::from_secs(30)).await;
    assert_eq!(
        also.len(),
        COUNT,
        "over {scheme}: the first subscriber lost objects"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_group_burst_keeps_its_first_groups_raw_quic() {
    short_group_burst_reaches_a_subscriber_joining_a_followed_track("moqt").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_group_burst_keeps_its_first_groups_webtransport() {
    short_group_burst_reaches_a_subscriber_joining_a_followed_track("https").await;
}

/// Unsubscribe and subscribe again at once, 300 times, while the track's group is open (so
/// the relay sends the open group with SUBSCRIBE_OK). Pins two bugs: the new subscription's
/// reader task could take that first object before the subscriber was registered, find no
/// one to deliver to and end, stranding the subscriber; and the transport, still draining the
/// previous subscription, refused the new one as a duplicate (`AlreadySubscribed`).
async fn resubscribe_at_once_while_a_group_is_open(scheme: &str) {
    let t = PubSub::start(scheme, "again", "t").await;
    let (relay, publisher, subscriber_client) = (&t.relay, &t.publisher, &t.subscribing);
    let mut sessions = 1;
    for i in 0..300 {
        let mut sub = match subscriber_client.subscribe("again", "t", sub()).await {
            Ok(sub) => sub,
            // A draft-16 relay allows a session a fixed number of requests (moq-relay-ietf
            // 0.7: 50, never raised): the client says so, typed, and a new session goes on.
            Err(SubscribeError::SessionRequestsExhausted { limit })
                if relay.kind() == RelayKind::Draft16 =>
            {
                assert_eq!(limit, 50, "{scheme} cycle {i}");
                subscriber_client.close().await;
                subscriber_client.connect().await.expect("a new session");
                sessions += 1;
                subscriber_client
                    .subscribe("again", "t", sub())
                    .await
                    .unwrap_or_else(|e| panic!("{scheme} cycle {i}, new session: {e}"))
            }
            Err(e) => panic!("{scheme} cycle {i}: {e}"),
        };
        publisher.publish(payload(i, 16)).unwrap();
        loop {
            let object = next_object(&mut sub, format!("{scheme} cycle {i}")).await;
            if object.payload.as_ref() == payload(i, 16).as_slice() {
                break;
            }
            // Only the previous object (the group that just ended) may come first.
            assert_eq!(object.payload.as_ref(), payload(i - 1, 16).as_slice());
        }
        sub.close().await;
        publisher.new_group().unwrap();
    }
    if relay.kind() == RelayKind::Draft16 {
        assert!(
            sessions >= 6,
            "{scheme}: {sessions} sessions for 300 subscriptions"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resubscribe_at_once_while_a_group_is_open_raw_quic() {
    resubscribe_at_once_while_a_group_is_open("moqt").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resubscribe_at_once_while_a_group_is_open_webtransport() {
    resubscribe_at_once_while_a_group_is_open("https").await;
}

/// Withdrawing a namespace and announcing it again at once (an app restarting its stream):
/// the second announce used to fail with `Duplicate` while the transport had not yet let go
/// of the first (it does when its request stream's task handles the withdrawal). Now it
/// succeeds, and the namespace's existing publisher reaches a new subscriber.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unannounce_then_announce_at_once_succeeds_and_the_publisher_continues() {
    let cast = PubSub::start("moqt", "again", "t").await;
    for round in 0..20 {
        assert!(
            cast.publishing.unannounce("again"),
            "round {round}: announced"
        );
        cast.publishing
            .announce("again")
            .await
            .unwrap_or_else(|err| panic!("round {round}: announce again: {err}"));
    }
    let mut sub = cast.subscribe(sub()).await;
    cast.publisher.publish(payload(7, 64)).expect("publish");
    let object = next_object(&mut sub, "after announcing again").await;
    assert_eq!(object.payload.as_ref(), payload(7, 64).as_slice());
}
