//! FETCH through the relay: a subscriber asks for past objects by location, the relay
//! forwards the range to the track's publisher (relays keep no FETCH cache), and the
//! publisher answers from the groups it keeps (`PublisherOptions::retain_groups`).
//! Over a draft-16 relay FETCH is refused locally, saying why.

mod common;

use std::time::Duration;

use common::*;
use moq_ffi::core::{
    Client, DeliveryMode, FetchError, FetchRange, Fetched, Object, PublisherOptions,
};

fn keeping(groups: u64) -> PublisherOptions {
    PublisherOptions {
        retain_groups: groups,
        ..PublisherOptions::default()
    }
}

/// Every object of a response, in order, within 10 s.
async fn all(mut fetched: Fetched) -> Vec<Object> {
    let mut objects = Vec::new();
    loop {
        match tokio::time::timeout(Duration::from_secs(10), fetched.next())
            .await
            .expect("the response keeps coming")
        {
            Ok(Some(object)) => objects.push(object),
            Ok(None) => return objects,
            Err(err) => panic!("response failed after {} objects: {err}", objects.len()),
        }
    }
}

fn ids(objects: &[Object]) -> Vec<(u64, u64)> {
    objects.iter().map(|o| (o.group_id, o.object_id)).collect()
}

/// `groups` groups of `per_group` objects: payload `payload(g * per_group + o, len)`.
fn publish_groups(t: &PubSub, groups: usize, per_group: usize, len: usize) {
    for g in 0..groups {
        if g > 0 {
            t.publisher.new_group().unwrap();
        }
        for o in 0..per_group {
            let at = t
                .publisher
                .publish(payload(g * per_group + o, len))
                .unwrap();
            assert_eq!((at.group_id, at.object_id), (g as u64, o as u64));
        }
    }
}

async fn fetch(client: &Client, t: &PubSub, range: FetchRange) -> Result<Fetched, FetchError> {
    client.fetch(&t.namespace, &t.track, range).await
}

trait SubscribeTo {
    async fn subscribe_to(&self, namespace: &str) -> moq_ffi::core::Subscriber;
}

impl SubscribeTo for PubSub {
    /// The subscribing client's subscription to track `t` of `namespace`.
    async fn subscribe_to(&self, namespace: &str) -> moq_ffi::core::Subscriber {
        self.subscribing
            .subscribe(namespace, "t", sub())
            .await
            .expect("subscribe")
    }
}

fn is_draft16(t: &PubSub) -> bool {
    t.relay.kind().draft() == 16
}

/// Over a draft-16 relay FETCH is refused before anything is sent.
async fn refused_over_draft16(t: &PubSub) {
    let err = fetch(&t.subscribing, t, FetchRange::groups(0, 0))
        .await
        .expect_err("no FETCH over draft 16");
    assert!(
        matches!(&err, FetchError::Unsupported { reason } if reason.contains("draft 16")),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_returns_the_kept_groups_in_order_over_both_schemes() {
    for scheme in SCHEMES {
        let t = PubSub::with(relay(), [scheme, scheme], "fetch", "t", keeping(3)).await;
        if is_draft16(&t) {
            refused_over_draft16(&t).await;
            return;
        }
        publish_groups(&t, 5, 4, 100);
        // Groups 0 and 1 were evicted (3 kept): the response starts at group 2, in order,
        // byte-exact.
        let objects = all(fetch(&t.subscribing, &t, FetchRange::groups(0, 4))
            .await
            .expect("fetch"))
        .await;
        let expected: Vec<(u64, u64)> = (2..5).flat_map(|g| (0..4).map(move |o| (g, o))).collect();
        assert_eq!(ids(&objects), expected, "{scheme}");
        for object in &objects {
            let i = (object.group_id * 4 + object.object_id) as usize;
            assert_eq!(object.payload.as_ref(), payload(i, 100).as_slice());
        }
        // Part of a group to part of the next, both ends included.
        let range = FetchRange {
            start_group: 2,
            start_object: 3,
            end_group: 3,
            end_object: Some(1),
        };
        let objects = all(fetch(&t.subscribing, &t, range).await.expect("fetch")).await;
        assert_eq!(ids(&objects), [(2, 3), (3, 0), (3, 1)], "{scheme}");
        // The open group as far as it goes; a range past the newest object ends there.
        let objects = all(fetch(&t.subscribing, &t, FetchRange::groups(4, 9))
            .await
            .expect("fetch"))
        .await;
        assert_eq!(ids(&objects), [(4, 0), (4, 1), (4, 2), (4, 3)], "{scheme}");
        // The publishing client's own session can fetch its track through the relay too.
        let objects = all(fetch(&t.publishing, &t, FetchRange::groups(3, 3))
            .await
            .expect("fetch from the publisher's own client"))
        .await;
        assert_eq!(objects.len(), 4);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_range_that_is_not_kept_is_a_typed_error_naming_what_is() {
    let t = PubSub::with(relay(), ["moqt", "moqt"], "fetch-gone", "t", keeping(2)).await;
    if is_draft16(&t) {
        return refused_over_draft16(&t).await;
    }
    publish_groups(&t, 4, 2, 10);
    let err = fetch(&t.subscribing, &t, FetchRange::groups(0, 1))
        .await
        .expect_err("groups 0 and 1 were evicted");
    assert!(
        matches!(&err, FetchError::NotAvailable { reason, .. }
            if reason.contains("groups 2 to 3 are kept")),
        "{err:?}"
    );
    // A track not published in an announced namespace.
    let err = t
        .subscribing
        .fetch(&t.namespace, "nope", FetchRange::groups(0, 0))
        .await
        .expect_err("no such track");
    assert!(
        matches!(&err, FetchError::NotAvailable { reason, .. } if reason.contains("nope")),
        "{err:?}"
    );
    // A namespace nobody announced: the relay refuses it.
    let err = t
        .subscribing
        .fetch("fetch-nobody", "t", FetchRange::groups(0, 0))
        .await
        .expect_err("no such namespace");
    assert!(matches!(err, FetchError::NotAvailable { .. }), "{err:?}");
    // An empty range never leaves the client.
    let err = fetch(&t.subscribing, &t, FetchRange::groups(3, 2))
        .await
        .expect_err("backwards");
    assert!(matches!(err, FetchError::InvalidRange { .. }), "{err:?}");

    // A publisher that keeps nothing (the default) says so.
    let plain = announced(&t.publishing, "fetch-plain", "t", stream()).await;
    plain.publish(b"x".to_vec()).unwrap();
    let err = t
        .subscribing
        .fetch("fetch-plain", "t", FetchRange::groups(0, 0))
        .await
        .expect_err("nothing kept");
    assert!(
        matches!(&err, FetchError::NotAvailable { reason, .. } if reason.contains("retain_groups")),
        "{err:?}"
    );
}

/// Objects larger than a QUIC stream window come whole; datagram tracks are kept too; an
/// object over the fetcher's `max_object_size` ends the response with a typed error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_objects_datagram_tracks_and_the_size_limit() {
    let options = PublisherOptions {
        retain_groups: 2,
        ..PublisherOptions::default()
    };
    let t = PubSub::with(relay(), ["moqt", "https"], "fetch-big", "t", options).await;
    if is_draft16(&t) {
        return refused_over_draft16(&t).await;
    }
    publish_groups(&t, 2, 3, 400_000);
    let objects = all(fetch(&t.subscribing, &t, FetchRange::groups(0, 1))
        .await
        .expect("fetch"))
    .await;
    assert_eq!(objects.len(), 6);
    for (i, object) in objects.iter().enumerate() {
        assert_eq!(
            object.payload.as_ref(),
            payload(i, 400_000).as_slice(),
            "object {i}"
        );
    }

    let datagrams = PublisherOptions {
        delivery: DeliveryMode::Datagram,
        retain_groups: 3,
        ..PublisherOptions::default()
    };
    let lossy = announced(&t.publishing, "fetch-dg", "t", datagrams).await;
    for i in 0..5 {
        lossy.publish(payload(i, 50)).unwrap();
    }
    let objects = all(t
        .subscribing
        .fetch("fetch-dg", "t", FetchRange::groups(0, 10))
        .await
        .expect("fetch a datagram track"))
    .await;
    assert_eq!(ids(&objects), [(2, 0), (3, 0), (4, 0)]);
    assert_eq!(objects[2].payload.as_ref(), payload(4, 50).as_slice());

    let mut small = config(&t.relay, "moqt");
    small.max_object_size = 1000;
    let small = connect_with(small).await;
    let mut fetched = fetch(&small, &t, FetchRange::groups(1, 1))
        .await
        .expect("fetch");
    let err = fetched.next().await.expect_err("over max_object_size");
    assert!(
        matches!(
            err,
            FetchError::ObjectTooLarge {
                size: 400_000,
                max: 1000
            }
        ),
        "{err:?}"
    );
    assert_eq!(fetched.next().await, Ok(None), "ended after the error");
}

/// Over a draft-16 relay the past cannot be fetched: `subscribe` says so when the relay's
/// SUBSCRIBE_OK named the newest object (the fetch is tried at once); otherwise the first
/// live object decides the range, the fetch is refused, and that loss is counted (unless
/// the live objects start at the track's very beginning: nothing to fetch).
async fn no_past_over_draft16(
    subscribed: Result<moq_ffi::core::Subscriber, moq_ffi::core::SubscribeError>,
) {
    match subscribed {
        Err(err) => assert!(err.to_string().contains("draft 16"), "{err}"),
        Ok(mut sub) => {
            let first = next_object(&mut sub, "first").await;
            let lost = u64::from((first.group_id, first.object_id) != (0, 0));
            assert_eq!(sub.cut_groups(), lost, "{first:?}");
        }
    }
}

fn with_past(groups: u64) -> moq_ffi::core::SubscriberOptions {
    moq_ffi::core::SubscriberOptions {
        past_groups: groups,
        ..sub()
    }
}

async fn next_ids(sub: &mut moq_ffi::core::Subscriber, n: usize) -> Vec<(u64, u64)> {
    let mut ids = Vec::new();
    for i in 0..n {
        let object = next_object(sub, format_args!("object {i}")).await;
        let index = (object.group_id * 3 + object.object_id) as usize;
        assert_eq!(
            object.payload.as_ref(),
            payload(index, 64).as_slice(),
            "{object:?}"
        );
        ids.push((object.group_id, object.object_id));
    }
    ids
}

fn in_groups(groups: std::ops::Range<u64>, per_group: u64) -> Vec<(u64, u64)> {
    groups
        .flat_map(|g| (0..per_group).map(move |o| (g, o)))
        .collect()
}

/// `past_groups` where the relay already follows the track (another client subscribed):
/// its SUBSCRIBE_OK says where the live objects start, the groups up to there are fetched
/// from the publisher, then the live objects come, with nothing twice (the relay sends the
/// open group from its start too) and nothing missing at the seam.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_groups_come_first_then_the_live_objects_with_no_gap_or_duplicate_at_the_seam() {
    for scheme in SCHEMES {
        let t = PubSub::with(relay(), [scheme, scheme], "past", "t", keeping(8)).await;
        let watcher_client = connect(&t.relay, scheme).await;
        let mut watcher = watcher_client
            .subscribe(&t.namespace, &t.track, sub())
            .await
            .expect("the watcher subscribes");
        // Groups 0-5 whole, group 6 open with two objects; the relay has them all.
        publish_groups(&t, 6, 3, 64);
        t.publisher.new_group().unwrap();
        t.publisher.publish(payload(18, 64)).unwrap();
        t.publisher.publish(payload(19, 64)).unwrap();
        if is_draft16(&t) {
            // That relay skips to the newest group of a watcher that falls behind.
            next_object(&mut watcher, "watched").await;
            let subscribed = t
                .subscribing
                .subscribe(&t.namespace, &t.track, with_past(3))
                .await;
            return no_past_over_draft16(subscribed).await;
        }
        assert_eq!(next_ids(&mut watcher, 20).await.len(), 20);
        let mut sub = t
            .subscribing
            .subscribe(&t.namespace, &t.track, with_past(3))
            .await
            .expect("subscribe with the past");
        // The rest of group 6, then group 7, live.
        t.publisher.publish(payload(20, 64)).unwrap();
        t.publisher.new_group().unwrap();
        for i in 21..24 {
            t.publisher.publish(payload(i, 64)).unwrap();
        }
        let got = next_ids(&mut sub, 12).await;
        assert_eq!(got, in_groups(4..8, 3), "{scheme}");
        assert!(
            tokio::time::timeout(Duration::from_millis(300), sub.next())
                .await
                .is_err(),
            "nothing more (no duplicate)"
        );
        // Live objects skipped at the seam are not counted as received.
        assert_eq!(sub.stats().objects_received, 12);
        assert_eq!(sub.stats().bytes_received, 12 * 64);
    }
}

/// `past_groups` where the relay has no state for the track: it forwards what the publisher
/// still holds unclaimed (its last 8 groups) from the start, and the client fetches the
/// groups before the first one that comes, up to `past_groups` of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_groups_complete_what_a_relay_without_state_for_the_track_forwards() {
    let t = PubSub::with(relay(), ["moqt", "moqt"], "past-fresh", "t", keeping(16)).await;
    publish_groups(&t, 12, 3, 64);
    let subscribed = t
        .subscribing
        .subscribe(&t.namespace, &t.track, with_past(12))
        .await;
    if is_draft16(&t) {
        return no_past_over_draft16(subscribed).await;
    }
    let mut sub = subscribed.expect("subscribe with the past");
    t.publisher.new_group().unwrap();
    for i in 36..39 {
        t.publisher.publish(payload(i, 64)).unwrap();
    }
    // Groups 0-3 can only have come from the FETCH: the publisher holds 8 groups unclaimed.
    assert_eq!(next_ids(&mut sub, 39).await, in_groups(0..13, 3));
    assert_eq!(sub.cut_groups(), 0);
}

/// A second subscriber of a track this client already follows gets the past up to where its
/// live objects start; a publisher that keeps nothing makes `subscribe` fail, saying why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_groups_for_a_second_local_subscriber_and_when_none_is_kept() {
    let t = PubSub::with(relay(), ["moqt", "moqt"], "past-2", "t", keeping(4)).await;
    if is_draft16(&t) {
        return refused_over_draft16(&t).await;
    }
    let mut first = t.subscribe(sub()).await;
    publish_groups(&t, 3, 3, 64);
    assert_eq!(next_ids(&mut first, 9).await, in_groups(0..3, 3));
    let mut second = t
        .subscribing
        .subscribe(&t.namespace, &t.track, with_past(2))
        .await
        .expect("a second subscriber with the past");
    t.publisher.new_group().unwrap();
    for i in 9..12 {
        t.publisher.publish(payload(i, 64)).unwrap();
    }
    assert_eq!(next_ids(&mut second, 9).await, in_groups(1..4, 3));
    assert_eq!(next_ids(&mut first, 3).await, in_groups(3..4, 3));

    let plain = announced(&t.publishing, "past-plain", "t", stream()).await;
    let mut watcher = t.subscribe_to("past-plain").await;
    plain.publish(payload(0, 64)).unwrap();
    next_object(&mut watcher, "watched").await;
    let other = connect(&t.relay, "moqt").await;
    let err = other
        .subscribe("past-plain", "t", with_past(1))
        .await
        .expect_err("the publisher keeps nothing");
    assert!(err.to_string().contains("retain_groups"), "{err}");
    // The failed subscribe left nothing behind: a plain one works.
    let mut live = other
        .subscribe("past-plain", "t", sub())
        .await
        .expect("subscribe");
    plain.publish(payload(1, 64)).unwrap();
    // The relay sends the open group from its start: object 0, then the new one.
    let mut object = next_object(&mut live, "live").await;
    if object.object_id == 0 {
        object = next_object(&mut live, "the new object").await;
    }
    assert_eq!(object.payload.as_ref(), payload(1, 64).as_slice());
}

/// A `next()` dropped halfway (an app's timeout, a cancelled coroutine) loses nothing: the
/// object being read stays for the next call, for a FETCH and for the fetched past of a
/// subscription alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_next_dropped_halfway_loses_nothing() {
    let t = PubSub::with(relay(), ["moqt", "moqt"], "fetch-cancel", "t", keeping(4)).await;
    if is_draft16(&t) {
        return refused_over_draft16(&t).await;
    }
    // Objects of several stream windows each, so each takes many reads.
    let _watcher = watched_large_groups(&t).await;
    let mut fetched = fetch(&t.subscribing, &t, FetchRange::groups(0, 2))
        .await
        .expect("fetch");
    let mut objects = Vec::new();
    let mut dropped = 0;
    while objects.len() < 6 {
        match tokio::time::timeout(Duration::from_micros(200), fetched.next()).await {
            Ok(Ok(Some(object))) => objects.push(object),
            Ok(other) => panic!("after {} objects: {other:?}", objects.len()),
            Err(_) => dropped += 1,
        }
    }
    assert!(
        dropped > 0,
        "no read was dropped halfway: the test proves nothing"
    );
    for (i, object) in objects.iter().enumerate() {
        assert_eq!(
            object.payload.as_ref(),
            payload(i, 300_000).as_slice(),
            "object {i}"
        );
    }
    assert_eq!(fetched.next().await, Ok(None));

    let other = connect(&t.relay, "moqt").await;
    let mut sub = other
        .subscribe(&t.namespace, &t.track, with_past(3))
        .await
        .expect("subscribe with the past");
    let mut got = Vec::new();
    while got.len() < 6 {
        if let Ok(object) = tokio::time::timeout(Duration::from_micros(200), sub.next()).await {
            got.push(object.expect("delivery").expect("not ended"));
        }
    }
    for (i, object) in got.iter().enumerate() {
        assert_eq!(
            object.payload.as_ref(),
            payload(i, 300_000).as_slice(),
            "object {i}"
        );
    }
}

/// A watcher (another client) subscribes, so the relay follows the track; then 3 groups of
/// 2 objects of 300 KB are published and the watcher has read them all. Keep the returned
/// client and subscriber for as long as the relay should follow the track.
async fn watched_large_groups(t: &PubSub) -> (Client, moq_ffi::core::Subscriber) {
    let client = connect(&t.relay, "moqt").await;
    let mut watcher = client
        .subscribe(&t.namespace, &t.track, sub())
        .await
        .expect("subscribe");
    publish_groups(t, 3, 2, 300_000);
    for _ in 0..6 {
        next_object(&mut watcher, "watched").await;
    }
    (client, watcher)
}

/// The track ends (its publisher closes) while the past is still being read: the past is
/// delivered whole, then the end (a subscriber waiting on the past used to give up when
/// the track ended).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_past_is_delivered_whole_when_the_track_ends_meanwhile() {
    let t = PubSub::with(relay(), ["moqt", "moqt"], "past-end", "t", keeping(4)).await;
    if is_draft16(&t) {
        return refused_over_draft16(&t).await;
    }
    let _watcher = watched_large_groups(&t).await;
    let joining = connect(&t.relay, "moqt").await;
    let mut sub = joining
        .subscribe(&t.namespace, &t.track, with_past(3))
        .await
        .expect("subscribe with the past");
    t.publisher.close();
    tokio::time::timeout(Duration::from_secs(10), async {
        while sub.is_active() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the track's end reaches the subscriber");
    for i in 0..6 {
        let object = next_object(&mut sub, format_args!("past object {i}")).await;
        assert_eq!(
            object.payload.as_ref(),
            payload(i, 300_000).as_slice(),
            "object {i}"
        );
    }
    let end = tokio::time::timeout(Duration::from_secs(10), sub.next())
        .await
        .expect("the end comes");
    assert_eq!(end, Ok(None), "a normal end after the past");
}

/// A FETCH that asks for descending group order (this client never does; other requesters
/// may) gets the newest group first, objects in order within each group, through the relay.
/// Sent with a plain moq-transport client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fetch_asking_for_descending_order_gets_the_newest_group_first() {
    use moq_native_ietf::{quic, tls};
    use moq_transport::coding::{KeyValuePairs, Location, TrackName, TrackNamespace};
    use moq_transport::data::FetchRecord;
    use moq_transport::message::{GroupOrder, StandaloneFetch};

    let t = PubSub::with(relay(), ["moqt", "moqt"], "fetch-desc", "t", keeping(3)).await;
    if is_draft16(&t) {
        return refused_over_draft16(&t).await;
    }
    publish_groups(&t, 3, 2, 10);
    let ca = std::env::temp_dir().join(format!("fetch-desc-ca-{}.pem", std::process::id()));
    std::fs::write(&ca, t.relay.ca_pem()).unwrap();
    let quic_args = quic::Args {
        bind: "127.0.0.1:0".parse().unwrap(),
        qlog_dir: None,
        tls: tls::Args {
            root: vec![ca.clone()],
            ..Default::default()
        },
    };
    let endpoint = quic::Endpoint::new(quic_args.load().unwrap()).unwrap();
    let url = url::Url::parse(&t.relay.moqt_url()).unwrap();
    let (session, _cid, transport) = endpoint.client.connect(&url, None).await.unwrap();
    let (moq, _publisher, mut subscriber) =
        moq_transport::session::Session::connect(session.clone(), None, transport)
            .await
            .unwrap();
    let run = tokio::spawn(async move {
        let _ = moq.run().await;
    });
    let mut params = KeyValuePairs::default();
    params.set_group_order(GroupOrder::Descending);
    let request = StandaloneFetch {
        track_namespace: TrackNamespace::from_utf8_path("fetch-desc"),
        track_name: TrackName::from("t".to_string()),
        start_location: Location::new(0, 0),
        end_location: Location::new(2, 0),
    };
    let mut fetch = subscriber.fetch(request, params).await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), fetch.ok())
        .await
        .expect("FETCH_OK in time")
        .expect("FETCH_OK");
    let mut got = Vec::new();
    while let Some(record) = tokio::time::timeout(Duration::from_secs(10), fetch.next())
        .await
        .expect("the body keeps coming")
        .expect("a well-formed body")
    {
        if let FetchRecord::Object(object) = record {
            let mut payload = Vec::new();
            while let Some(chunk) = fetch.read_payload_chunk(64).await.unwrap() {
                payload.extend_from_slice(&chunk);
            }
            let index = (object.group_id * 2 + object.object_id) as usize;
            assert_eq!(payload, payload_of(index));
            got.push((object.group_id, object.object_id));
        }
    }
    assert_eq!(got, [(2, 0), (2, 1), (1, 0), (1, 1), (0, 0), (0, 1)]);
    session.close(0, "done");
    run.abort();
    let _ = std::fs::remove_file(ca);
}

fn payload_of(index: usize) -> Vec<u8> {
    payload(index, 10)
}
