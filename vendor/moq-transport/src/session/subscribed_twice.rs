// SPDX-License-Identifier: MIT OR Apache-2.0

//! A publisher serves a peer that subscribes to one track twice, over real
//! QUIC request and data streams.
//!
//! moq-dev's relay subscribes, cancels and subscribes again within about a
//! millisecond; the new SUBSCRIBE arrives on a new request stream and can be
//! read before the cancel on the old one. Draft-19 allows several
//! subscriptions per track outright. Refusing the second request with
//! DUPLICATE_SUBSCRIPTION left the relay's subscribers with no data.

use std::time::Duration;

use super::*;
use crate::{
    coding::TrackNamespace,
    serve::{self, Subgroup},
};

const T: Duration = Duration::from_secs(10);

async fn endpoints() -> ((Session, Subscriber), (Session, Publisher)) {
    let (client, server) = test_support::loopback_session_pair().await;
    let (client, server) = tokio::join!(
        Session::connect(client, None, Transport::WebTransport),
        Session::accept(server, None, Transport::WebTransport),
    );
    let (client, _client_pub, client_sub) = client.unwrap();
    let (server, server_pub, _server_sub) = server.unwrap();
    ((client, client_sub), (server, server_pub.unwrap()))
}

async fn first_object(received: serve::TrackReader) -> bytes::Bytes {
    let serve::TrackReaderMode::Subgroups(mut subgroups) = received.mode().await.unwrap() else {
        panic!("expected subgroup delivery");
    };
    let mut subgroup = subgroups.next().await.unwrap().expect("a subgroup");
    subgroup.read_next().await.unwrap().expect("an object")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_subscription_to_one_track_is_served_to_both_requests() {
    tokio::time::timeout(T, async {
        let ((subscriber_session, mut subscriber), (publisher_session, mut publisher)) =
            endpoints().await;
        tokio::spawn(subscriber_session.run());
        tokio::spawn(publisher_session.run());

        let namespace = TrackNamespace::from_utf8_path("twice");
        let (writer, source) = serve::Track::new(namespace.clone(), "video").produce();

        let mut received = Vec::new();
        let mut subscriptions = Vec::new();
        let mut serving = Vec::new();
        for _ in 0..2 {
            let (target, reader) = serve::Track::new(namespace.clone(), "video").produce();
            subscriber.forget_subscribed_names_for_tests();
            let subscription = subscriber.subscribe_start(target).await.unwrap();
            let request = publisher
                .subscribed()
                .await
                .expect("the publisher surfaces each SUBSCRIBE");
            serving.push(tokio::spawn(request.serve(source.clone())));
            subscription
                .ok()
                .await
                .expect("each SUBSCRIBE for the track is accepted");
            subscriptions.push(subscription);
            received.push(reader);
        }

        let mut subgroups = writer.subgroups().unwrap();
        let mut group = subgroups
            .create(Subgroup {
                group_id: 0,
                subgroup_id: 0,
                priority: 0,
            })
            .unwrap();
        group.write(bytes::Bytes::from_static(b"to both")).unwrap();

        for reader in received {
            assert_eq!(first_object(reader).await.as_ref(), b"to both");
        }
        drop(subscriptions);
        for task in serving {
            task.abort();
        }
    })
    .await
    .expect("both subscriptions receive the object in time");
}
