//! Namespace discovery (SUBSCRIBE_NAMESPACE) and catalog tracks through a real relay.

mod common;

use std::time::Duration;

use common::*;
use moq_ffi::core::{CatalogReader, Client, NamespaceEvent};

async fn next_event(watch: &mut moq_ffi::core::NamespaceWatch) -> NamespaceEvent {
    tokio::time::timeout(Duration::from_secs(5), watch.next())
        .await
        .expect("event within 5 s")
        .expect("watch running")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn announces_from_another_client_are_discovered_both_schemes() {
    for scheme in SCHEMES {
        let relay = relay();
        let watcher = connect(&relay, scheme).await;
        let mut watch = watcher.watch_namespaces("");
        // Give the SUBSCRIBE_NAMESPACE a moment to be established at the relay.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let publisher = connect(&relay, scheme).await;
        publisher.announce("live/room1").await.unwrap();
        assert_eq!(
            next_event(&mut watch).await,
            NamespaceEvent::Announced("live/room1".into()),
            "over {scheme}"
        );
        publisher.close().await;
        assert_eq!(
            next_event(&mut watch).await,
            NamespaceEvent::Withdrawn("live/room1".into())
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_registered_before_connect_delivers_after_connect() {
    let relay = relay();
    let watcher = Client::new(config(&relay, "moqt")).unwrap();
    let mut watch = watcher.watch_namespaces("");
    let publisher = connect(&relay, "moqt").await;
    publisher.announce("early/bird").await.unwrap();
    watcher.connect().await.unwrap();
    // Already-announced namespaces are reported when the watch starts.
    assert_eq!(
        next_event(&mut watch).await,
        NamespaceEvent::Announced("early/bird".into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalog_track_is_parsed_and_malformed_catalogs_are_skipped() {
    let relay = relay();
    let publisher_client = connect(&relay, "https").await;
    let subscriber_client = connect(&relay, "moqt").await;
    let catalog = announced(&publisher_client, "show", "catalog", stream()).await;
    let subscriber = subscriber_client
        .subscribe("show", "catalog", sub())
        .await
        .unwrap();
    let mut reader = CatalogReader::new(subscriber);
    catalog.publish(b"{ this is not json".to_vec()).unwrap();
    catalog
        .publish(
            br#"{"version":1,"tracks":[{"name":"video","selectionParams":{"codec":"avc1.64001f","mimeType":"video/mp4","width":1920,"height":1080,"bitrate":4000000}},{"name":"audio","selectionParams":{"codec":"opus","samplerate":48000,"lang":"fr"}}]}"#.to_vec(),
        )
        .unwrap();
    let tracks = tokio::time::timeout(Duration::from_secs(5), reader.next())
        .await
        .unwrap()
        .unwrap()
        .expect("a catalog");
    assert_eq!(tracks.len(), 2);
    assert_eq!(tracks[0].name, "video");
    assert_eq!((tracks[0].width, tracks[0].height), (1920, 1080));
    assert_eq!(tracks[1].language.as_deref(), Some("fr"));
    assert_eq!(tracks[1].sample_rate, 48000);
}

/// Apply `event` to `set` (the namespaces a watch has reported announced).
fn apply(set: &mut std::collections::BTreeSet<String>, event: NamespaceEvent) {
    match event {
        NamespaceEvent::Announced(ns) => set.insert(ns),
        NamespaceEvent::Withdrawn(ns) => set.remove(&ns),
    };
}

/// Read `watch` until what it reported announced is `expected`.
async fn converges_on(
    watch: &mut moq_ffi::core::NamespaceWatch,
    reported: &mut std::collections::BTreeSet<String>,
    expected: &[&str],
) {
    let expected: std::collections::BTreeSet<String> =
        expected.iter().map(|s| s.to_string()).collect();
    while *reported != expected {
        let event = next_event(watch).await;
        apply(reported, event);
    }
}

/// Pins issue #15's discovery finding: the hub subscribed to every namespace on the relay and
/// held them all, so namespaces nobody watched filled `max_announced_namespaces` and hid those
/// a watch asked for. It now subscribes to the watched prefixes only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespaces_outside_every_watched_prefix_are_neither_held_nor_counted() {
    let relay = relay();
    let mut watcher_config = config(&relay, "moqt");
    watcher_config.max_announced_namespaces = 5;
    let watcher = connect_with(watcher_config).await;
    let publisher = connect(&relay, "moqt").await;
    for i in 0..20 {
        publisher.announce(&format!("noise/{i}")).await.unwrap();
    }
    let mut watch = watcher.watch_namespaces("wanted");
    tokio::time::sleep(Duration::from_millis(200)).await;
    publisher.announce("wanted/room").await.unwrap();
    assert_eq!(
        next_event(&mut watch).await,
        NamespaceEvent::Announced("wanted/room".into())
    );
}

/// Watches of overlapping prefixes on one client: a broader watch replaces the narrower
/// subscription (a session may not hold overlapping prefixes), both watches follow their
/// namespaces, and the narrower one keeps working after the broader one stops.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watches_of_overlapping_prefixes_share_the_broadest_subscription() {
    let relay = relay();
    let watcher = connect(&relay, "moqt").await;
    let publisher = connect(&relay, "moqt").await;
    let mut narrow = watcher.watch_namespaces("site/a");
    let mut narrow_seen = std::collections::BTreeSet::new();
    tokio::time::sleep(Duration::from_millis(200)).await;
    publisher.announce("site/a/1").await.unwrap();
    converges_on(&mut narrow, &mut narrow_seen, &["site/a/1"]).await;

    let mut broad = watcher.watch_namespaces("site");
    let mut broad_seen = std::collections::BTreeSet::new();
    converges_on(&mut broad, &mut broad_seen, &["site/a/1"]).await;
    publisher.announce("site/b/1").await.unwrap();
    publisher.announce("site/a/2").await.unwrap();
    converges_on(
        &mut broad,
        &mut broad_seen,
        &["site/a/1", "site/a/2", "site/b/1"],
    )
    .await;
    converges_on(&mut narrow, &mut narrow_seen, &["site/a/1", "site/a/2"]).await;

    // The broader subscription stays while a watch is under it.
    drop(broad);
    publisher.announce("site/a/3").await.unwrap();
    assert!(publisher.unannounce("site/a/1"));
    converges_on(&mut narrow, &mut narrow_seen, &["site/a/2", "site/a/3"]).await;
}
