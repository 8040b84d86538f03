//! A publisher faster than its network (issue #15, item 3): what waits to be sent is bounded
//! by `max_queued_bytes` (and 512 new groups); `publish` says `WouldBlock` instead of
//! queueing more, `publish_when_ready` waits, and nothing is lost.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use moq_ffi::core::{
    Client, PublishError, Publisher, PublisherOptions, SubscribeError, SubscriberOptions,
};
use moq_test_relay::faults::FaultyLink;

const MIB: usize = 1024 * 1024;

/// Serializes the tests of this binary: one measures the whole process.
static ALONE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Publish object `index` (its index, then `size - 8` bytes of its low byte): without
/// waiting first, and when that is refused, waiting for room. Returns whether it was refused.
async fn publish_counting_refusals(publisher: &Publisher, index: u64, size: usize) -> bool {
    let payload = object(index, size);
    match publisher.publish(payload.clone()) {
        Ok(_) => false,
        Err(PublishError::WouldBlock {
            queued,
            groups,
            max,
            max_groups,
        }) => {
            assert!(
                queued >= max || groups >= max_groups,
                "refused below the limits: {queued}/{max} bytes, {groups}/{max_groups} groups"
            );
            publisher
                .publish_when_ready(payload, None)
                .await
                .unwrap_or_else(|err| panic!("object {index}: {err}"));
            true
        }
        Err(err) => panic!("object {index}: {err}"),
    }
}

fn object(index: u64, size: usize) -> Vec<u8> {
    let mut bytes = vec![index as u8; size];
    bytes[..8].copy_from_slice(&index.to_le_bytes());
    bytes
}

/// A reader of `ns/track` on `client` that checks every object: each of the `count` exactly
/// once, byte-exact, in order through our relay; its task ends when all arrived (panics on a
/// loss, a duplicate, a reorder or a stall of 60 s). `received` counts.
///
/// Through a relay on the published moq-transport, which opens a subscriber's streams
/// concurrently, a group may come later than the client's reorder wait on a loaded machine
/// (pinned by `a_burst_of_3000_one_object_groups_waits_instead_of_ending_the_upstream`, CI of
/// stop 35: group 1809 after 1810): the contract delivers it late rather than not at all, so
/// there a late group is accepted when it fills a gap, and every gap must fill. A draft-16
/// relay drops a group its reader had not reached when the next arrived: there a group may
/// stay missing (a visible group-id jump), at most 1 in 20.
async fn reader(
    client: &Client,
    ns: &str,
    track: &str,
    options: SubscriberOptions,
    count: u64,
    size: usize,
) -> (tokio::task::JoinHandle<()>, Arc<AtomicU64>) {
    use moq_test_relay::RelayKind;
    let mut sub = client
        .subscribe(ns, track, options)
        .await
        .expect("subscribe");
    let received = Arc::new(AtomicU64::new(0));
    let counter = received.clone();
    let kind = RelayKind::from_env();
    let gaps_allowed = kind == RelayKind::Draft16;
    let late_allowed = kind != RelayKind::Patched;
    let task = tokio::spawn(async move {
        let mut next_index = 0;
        let mut missing = std::collections::BTreeSet::new();
        let mut late = 0;
        while next_index < count || (!gaps_allowed && !missing.is_empty()) {
            let waiting = missing.first().copied().unwrap_or(next_index);
            let next = tokio::time::timeout(Duration::from_secs(60), sub.next())
                .await
                .unwrap_or_else(|_| panic!("object {waiting} did not arrive"))
                .unwrap_or_else(|err| panic!("object {waiting}: {err}"))
                .unwrap_or_else(|| panic!("the subscription ended before object {waiting}"));
            let got = next
                .payload
                .get(..8)
                .map(|head| u64::from_le_bytes(head.try_into().expect("8 bytes")));
            let index = match got {
                Some(got) if got > next_index && (late_allowed || gaps_allowed) => {
                    missing.extend(next_index..got);
                    got
                }
                Some(got) if got < next_index && late_allowed && missing.remove(&got) => {
                    late += 1;
                    got
                }
                _ => next_index,
            };
            assert!(
                next.payload.as_ref() == object(index, size).as_slice(),
                "object {next_index} is not the one published next: got {got:?} ({} bytes, group {} object {})",
                next.payload.len(),
                next.group_id,
                next.object_id
            );
            if index >= next_index {
                // Groups skipped over count as received (a late one is not counted again).
                counter.fetch_add(index + 1 - next_index, Ordering::Relaxed);
                next_index = index + 1;
            }
        }
        if late > 0 {
            eprintln!("{late} groups came after a later one (delivered late, none lost)");
        }
        let skipped = missing.len() as u64;
        assert!(skipped * 20 <= count, "{skipped} of {count} groups missing");
    });
    (task, received)
}

/// A client publishing track `t` of `namespace` (announced) with one object per group, and
/// another client to subscribe with, both over `scheme`.
async fn one_object_groups(
    relay: &TestRelay,
    scheme: &str,
    namespace: &str,
) -> (Client, Publisher, Client) {
    let publisher_client = connect(relay, scheme).await;
    let subscriber_client = connect(relay, scheme).await;
    publisher_client
        .announce(namespace)
        .await
        .expect("announce");
    let options = PublisherOptions {
        max_group_objects: 1,
        ..PublisherOptions::default()
    };
    let publisher = publisher_client
        .create_publisher(namespace, "t", options)
        .expect("publisher");
    (publisher_client, publisher, subscriber_client)
}

/// Publish object 0 and wait until it arrived: every hop follows the track from then on. (A
/// relay that has just subscribed upstream keeps only the newest 8 groups of a burst of short
/// groups it has not started following yet: see `core::publisher`'s module docs.)
async fn publish_first(publisher: &Publisher, received: &AtomicU64, size: usize) {
    publisher.publish(object(0, size)).expect("object 0");
    let waited = std::time::Instant::now();
    while received.load(Ordering::Relaxed) == 0 {
        assert!(
            waited.elapsed() < Duration::from_secs(30),
            "object 0 never arrived"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Pins issue #15's publisher-side finding: a publisher faster than its uplink kept every
/// object it published in memory until the network took it. Through a 16 MiB/s uplink, 48 MiB
/// in 4 MiB groups published as fast as `publish` allows: the queue stays at
/// `max_queued_bytes` (1 MiB) plus one object, resident memory stays under a bound from the
/// configuration, and all arrive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publisher_faster_than_its_uplink_waits_stays_bounded_and_loses_nothing() {
    let _alone = ALONE.lock().await;
    let _ = env_logger::builder().is_test(true).try_init();
    let relay = RelayProcess::start();
    let relay_addr = url::Url::parse(&relay.moqt_url())
        .ok()
        .and_then(|url| url.port())
        .map(|port| std::net::SocketAddr::from(([127, 0, 0, 1], port)))
        .expect("relay port");
    let link = FaultyLink::start(relay_addr, 15).expect("link");
    link.set_upstream_rate(Some(16 * MIB as u64));
    let mut config = config(&relay, "moqt");
    let mut url = url::Url::parse(&config.url).unwrap();
    url.set_port(Some(link.addr().port())).unwrap();
    config.url = url.to_string();
    config.idle_timeout = Duration::from_secs(10);
    let publisher_client = Client::new(config).expect("config");
    publisher_client
        .connect()
        .await
        .expect("connect through the link");
    publisher_client.announce("uplink").await.expect("announce");
    let publisher = publisher_client
        .create_publisher(
            "uplink",
            "t",
            PublisherOptions {
                max_queued_bytes: MIB,
                // What the publisher keeps of its open group for late joiners.
                max_group_bytes: 4 * MIB as u64,
                ..PublisherOptions::default()
            },
        )
        .expect("publisher");

    // The subscriber reads as objects arrive, with small buffers of its own.
    let mut sub_config = common::config(&relay, "moqt");
    sub_config.receive_window = 4 * MIB as u64;
    let subscriber_client = Client::new(sub_config).expect("config");
    subscriber_client.connect().await.expect("connect");
    let size = 64 * 1024;
    let count = 768u64; // 48 MiB
    let options = SubscriberOptions {
        buffer_bytes: 2 * MIB,
        ..SubscriberOptions::default()
    };
    let (reading, received) = reader(&subscriber_client, "uplink", "t", options, count, size).await;
    publish_first(&publisher, &received, size).await;

    let before = rss_mb();
    let mut peak_rss = 0.0f64;
    let mut peak_queued = 0;
    let mut refused = 0;
    for index in 1..count {
        refused += usize::from(publish_counting_refusals(&publisher, index, size).await);
        peak_queued = peak_queued.max(publisher.queued_bytes());
        if index % 16 == 0 {
            peak_rss = peak_rss.max(rss_mb() - before);
        }
    }
    tokio::time::timeout(Duration::from_secs(120), reading)
        .await
        .expect("every object arrived")
        .expect("in order");
    // The queue (1 MiB + one object) + the open group kept for late joiners (4 MiB) + what
    // QUIC holds unacknowledged (its send window, quinn's default 10 MB) + the subscriber's
    // own buffers (receive window 4 MiB, queue and budget 2 MiB each) + allocator and
    // bookkeeping slack. Measured here: 14.6 MB. With the queue unbounded (max_queued_bytes
    // 1 TiB): 32 MiB at 8 MiB/s peaked at 23.6 MB queued and grew RSS by 42.8 MB, and this
    // run (48 MiB at 16 MiB/s) lost a whole group (objects 640-703) on the way.
    let bound = (1.0 + 0.0625 + 4.0 + 10.0 + 4.0 + 2.0 + 2.0) * MIB as f64 / 1e6 + 16.0;
    eprintln!(
        "48 MiB through a 16 MiB/s uplink: {refused} of {count} publishes refused first, \
         peak queue {peak_queued} bytes, RSS grew {peak_rss:.1} MB (bound {bound:.1} MB)"
    );
    assert!(refused > 0, "the uplink never held the publisher back");
    assert!(
        peak_queued <= MIB + size,
        "queue reached {peak_queued} bytes"
    );
    assert!(
        peak_rss < bound,
        "grew {peak_rss:.1} MB, bound {bound:.1} MB"
    );
}

/// Pins a finding of issue #15: an unpaced burst of more than 1,024 one-object groups ended
/// the publisher's own upstream (moq-transport ends a subscription whose reader falls 1,024
/// subgroups behind). Now new groups wait at 512 and all 3,000 arrive in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_3000_one_object_groups_waits_instead_of_ending_the_upstream() {
    let _alone = ALONE.lock().await;
    let relay = relay();
    let (_publisher_client, publisher, subscriber_client) =
        one_object_groups(&relay, "moqt", "groups").await;
    let size = 1024;
    let count = 3000;
    let (reading, received) = reader(&subscriber_client, "groups", "t", sub(), count, size).await;
    publish_first(&publisher, &received, size).await;
    let mut refused = 0;
    for index in 1..count {
        refused += usize::from(publish_counting_refusals(&publisher, index, size).await);
    }
    tokio::time::timeout(Duration::from_secs(120), reading)
        .await
        .expect("every object arrived")
        .expect("in order");
    eprintln!("3,000 one-object groups: {refused} publishes refused first, all arrived");
    assert!(refused > 0, "the burst never reached the group limit");
}

/// The UniFFI face over a stalled uplink: `publish` (synchronous) waits for room at most the
/// client's request timeout, then fails with `WouldBlock` having published nothing; on a
/// runtime thread it fails at once instead of waiting; `publish_async` waits as long as it
/// takes. Everything published arrives, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_uniffi_publish_waits_then_says_would_block_and_publish_async_waits_for_room() {
    use moq_ffi::api;
    let _alone = ALONE.lock().await;
    let relay = relay();
    let link = FaultyLink::start(relay.addr(), 17).expect("link");
    let mut config = api_config(&relay);
    let mut url = url::Url::parse(&config.url).unwrap();
    url.set_port(Some(link.addr().port())).unwrap();
    config.url = url.to_string();
    config.request_timeout_ms = 3000;
    config.idle_timeout_ms = 30_000;
    let client = api::Client::new(config).expect("config");
    client.connect().await.expect("connect through the link");
    client.announce("faces".into()).await.expect("announce");
    let options = api::PublisherOptions {
        max_queued_bytes: 64 * 1024,
        ..api::PublisherOptions::default()
    };
    let publisher = client
        .create_publisher("faces".into(), "t".into(), Some(options))
        .expect("publisher");
    let subscriber_client = connect(&relay, "moqt").await;
    let mut sub = subscriber_client
        .subscribe("faces", "t", sub())
        .await
        .expect("subscribe");
    let size = 16 * 1024;
    publisher.publish(object(0, size)).expect("object 0");
    let first = tokio::time::timeout(Duration::from_secs(30), sub.next())
        .await
        .expect("object 0 arrived")
        .expect("object 0")
        .expect("object 0");
    assert_eq!(first.payload.as_ref(), object(0, size).as_slice());

    // Nothing gets through now: QUIC takes what its windows allow, then the queue fills.
    link.set_black_hole(true);
    let blocking = publisher.clone();
    let (published, waited, err) = std::thread::spawn(move || {
        let mut index = 1;
        loop {
            let started = std::time::Instant::now();
            match blocking.publish(object(index, size)) {
                Ok(_) => index += 1,
                Err(err) => return (index, started.elapsed(), err),
            }
            assert!(index < 100_000, "publish never pushed back");
        }
    })
    .join()
    .expect("publishing thread");
    assert!(matches!(err, api::MoqError::WouldBlock { .. }), "{err}");
    assert!(
        waited >= Duration::from_millis(2700),
        "gave up after {waited:?}, before the 3 s request timeout"
    );
    // On a runtime thread (this test's) it does not wait.
    let started = std::time::Instant::now();
    let err = publisher
        .publish(object(published, size))
        .expect_err("still full");
    assert!(matches!(err, api::MoqError::WouldBlock { .. }), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "waited {:?} on a runtime thread",
        started.elapsed()
    );
    eprintln!(
        "{} objects of 16 KiB taken before the stall pushed back; publish gave up after {waited:?}: {err}",
        published - 1
    );

    // publish_async waits for room as long as it takes: here until the path is back.
    let waiting = tokio::spawn({
        let publisher = publisher.clone();
        async move { publisher.publish_async(object(published, size)).await }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !waiting.is_finished(),
        "publish_async did not wait for room"
    );
    link.set_black_hole(false);
    tokio::time::timeout(Duration::from_secs(60), waiting)
        .await
        .expect("publish_async returned once there was room")
        .expect("task")
        .expect("published");
    for index in 1..=published {
        let next = tokio::time::timeout(Duration::from_secs(60), sub.next())
            .await
            .unwrap_or_else(|_| panic!("object {index} did not arrive"))
            .unwrap_or_else(|err| panic!("object {index}: {err}"))
            .unwrap_or_else(|| panic!("the subscription ended before object {index}"));
        assert!(
            next.payload.as_ref() == object(index, size).as_slice(),
            "object {index} is not the one published next"
        );
    }
}

/// Regression (#23 item 6): `close()` did not wake a `publish_when_ready` waiting for room, so
/// on a stalled network it hung after the track was ended (and the blocking faces reported
/// `WouldBlock` after their timeout instead of `Closed`). Now it returns `Closed` at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_wakes_a_publish_waiting_for_room_with_closed() {
    let _alone = ALONE.lock().await;
    let relay = relay();
    let link = FaultyLink::start(relay.addr(), 19).expect("link");
    let mut config = config(&relay, "moqt");
    let mut url = url::Url::parse(&config.url).unwrap();
    url.set_port(Some(link.addr().port())).unwrap();
    config.url = url.to_string();
    config.idle_timeout = Duration::from_secs(30);
    let client = Client::new(config).expect("config");
    client.connect().await.expect("connect through the link");
    client.announce("closing").await.expect("announce");
    let publisher = Arc::new(
        client
            .create_publisher(
                "closing",
                "t",
                PublisherOptions {
                    max_queued_bytes: 64 * 1024,
                    ..PublisherOptions::default()
                },
            )
            .expect("publisher"),
    );
    let subscriber_client = connect(&relay, "moqt").await;
    let (_reading, received) = reader(&subscriber_client, "closing", "t", sub(), 1, 1024).await;
    publish_first(&publisher, &received, 1024).await;

    // Nothing gets through now: QUIC takes what its windows allow, then the queue fills.
    link.set_black_hole(true);
    let size = 16 * 1024;
    let mut index = 1;
    // Until QUIC's windows are full too and no room comes for a whole second.
    while publisher
        .publish_when_ready(object(index, size), Some(Duration::from_secs(1)))
        .await
        .is_ok()
    {
        index += 1;
        assert!(index < 100_000, "publish never pushed back");
    }
    let waiting = tokio::spawn({
        let publisher = publisher.clone();
        async move {
            publisher
                .publish_when_ready(object(index, size), None)
                .await
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiting.is_finished(), "publish_when_ready did not wait");
    publisher.close();
    let outcome = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("close woke the waiting publish")
        .expect("task");
    assert!(matches!(outcome, Err(PublishError::Closed)), "{outcome:?}");
}

/// Issue #23: 3,000 one-object groups published at once, with no warm-up object, into a
/// subscription that is established (SUBSCRIBE_OK received), through the relay
/// `MOQ_TEST_RELAY` selects (scripts/test runs this file against both). What arrives is every
/// group from some group on, whole and in order; the groups before it are the ones the relay
/// dropped at its first-subscriber hop (docs/contract.md "Stream delivery": moq-relay-ietf keeps only
/// the newest 8 subgroups of a track until its forwarder toward the first subscriber reads).
///
/// Two outcomes besides come from a loaded machine (the test used to fail on both, about 1
/// run in 10 of the test command, 1 in 3 with a busy loop beside), and the contract is that
/// the app sees them and nothing is lost silently:
/// - a relay on moq-transport ends a subscription whose forwarder falls 1,024 groups behind
///   its upstream ("subgroup reader exceeded its pending stream limit"; docs/contract.md, slow
///   consumers): it resets the group streams in flight (groups 9, 11, 13... cut short), then
///   ends the subscription. Every group missing mid-burst must be counted as cut, and
///   delivery must end with `PublisherLost`, not a stall ("group 10 came in place of 9").
/// - a group's stream comes more than the reorder wait (100 ms) after a later one: delivery
///   goes on past it and it is delivered late, out of order, once ("group 2066 came after
///   2149").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_3000_one_object_groups_into_an_established_subscription() {
    let _alone = ALONE.lock().await;
    for scheme in SCHEMES {
        let relay = relay();
        let (_publisher_client, publisher, subscriber_client) =
            one_object_groups(&relay, scheme, "cold").await;
        let size = 1024;
        let count = 3000u64;
        let mut sub = subscriber_client
            .subscribe("cold", "t", sub())
            .await
            .expect("subscribe");
        for index in 0..count {
            publish_counting_refusals(&publisher, index, size).await;
        }
        // Whatever the relay dropped is at the start; from the first group delivered on,
        // every group arrives, whole, once, in order (or is counted as cut, see above).
        let mut first = None;
        let mut expected = 0;
        // Groups passed over mid-burst and not (yet) delivered late.
        let mut skipped = std::collections::BTreeSet::new();
        let mut late = 0u64;
        let mut ended = None;
        // Until every group is in, or counted as cut (a late group may still be on its way).
        while expected < count || skipped.len() as u64 > sub.cut_groups() {
            let wait = if expected < count { 60 } else { 10 };
            let next = tokio::time::timeout(Duration::from_secs(wait), sub.next()).await;
            let next = match next {
                Ok(Ok(Some(next))) => next,
                Ok(other) => {
                    ended = Some(other.map(|_| ()));
                    break;
                }
                Err(_) if expected >= count => break,
                Err(_) => panic!("{scheme}: stalled before group {expected}"),
            };
            let index = u64::from_le_bytes(next.payload[..8].try_into().expect("8 bytes"));
            assert_eq!(next.payload.as_ref(), object(index, size).as_slice());
            assert_eq!(next.group_id, index, "{scheme}: one group per object");
            if first.is_none() {
                first = Some(index);
                expected = index;
            }
            if index < expected {
                // Later than the reorder wait (100 ms, core::group_order): delivered out of
                // order, once, into the gap delivery went on past; never a duplicate.
                assert!(
                    skipped.remove(&index),
                    "{scheme}: group {index} came after {}: a duplicate or out of order",
                    expected - 1
                );
                late += 1;
                continue;
            }
            skipped.extend(expected..index);
            expected = index + 1;
        }
        let missing = skipped.len() as u64;
        if late > 0 {
            eprintln!(
                "{scheme}: {late} groups came more than the reorder wait late, out of order \
                 (a loaded machine)"
            );
        }
        let lost = first.expect("something arrived");
        let kind = relay.kind().name();
        let cut = sub.cut_groups();
        if relay.kind() == moq_test_relay::RelayKind::Draft16 {
            // This relay drops a group its reader had not reached when the next arrived, with
            // no stream for it: the gap is the group-id jump the app sees, not a cut group.
            assert!(
                missing * 20 <= count,
                "{scheme}: {missing} of {count} groups missing"
            );
            assert!(
                ended.is_none(),
                "{scheme}: ended at group {expected}: {ended:?}"
            );
            eprintln!(
                "{scheme}, draft16 relay: {} of {count} groups arrived in order, {missing} \
                 dropped by the relay (group-id jumps)",
                count - lost - missing
            );
            continue;
        }
        assert!(
            missing <= cut,
            "{scheme}: {missing} groups missing mid-burst, only {cut} counted as cut: silent loss"
        );
        match ended {
            None if missing == 0 && lost == 0 => {
                eprintln!("{scheme}, {kind} relay: all {count} arrived in order")
            }
            None if missing == 0 => eprintln!(
                "{scheme}, {kind} relay: groups 0-{} lost at the relay's first-subscriber hop, \
                 {} of {count} arrived in order",
                lost - 1,
                count - lost
            ),
            None => {
                panic!("{scheme}: {missing} groups cut mid-burst, yet the subscription went on")
            }
            Some(end) => {
                assert!(
                    matches!(end, Err(SubscribeError::PublisherLost { .. })),
                    "{scheme}: delivery stopped at group {expected} with {end:?}, not an error \
                     naming the relay"
                );
                eprintln!(
                    "{scheme}, {kind} relay: the relay ended the subscription at group {expected} \
                     ({cut} groups cut, {end:?}): its forwarder fell 1,024 groups behind"
                );
            }
        }
    }
}
