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
    publisher_client.announce("show").await.unwrap();
    let catalog = publisher_client
        .create_publisher("show", "catalog", stream())
        .unwrap();
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
