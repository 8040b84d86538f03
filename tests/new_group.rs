//! New-group requests through the relay (draft-18 REQUEST_UPDATE with NEW_GROUP_REQUEST): a
//! subscriber asks, the relay forwards, the publisher's app sees the request and starts a
//! group; a publisher that did not opt in has its subscribers' requests refused.

mod common;

use std::time::Duration;

use common::*;
use moq_ffi::core::{PublisherOptions, SubscribeError};

fn accepting() -> PublisherOptions {
    PublisherOptions {
        accept_new_group_requests: true,
        ..PublisherOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_group_request_reaches_the_publisher_and_its_key_frame_starts_a_group() {
    for scheme in SCHEMES {
        let t = PubSub::with(relay(), [scheme, scheme], "newgroup", "video", accepting()).await;
        let draft16 = t.relay.kind().draft() == 16;
        let mut requests = t.publisher.new_group_requests();
        let mut sub = t.subscribe(sub()).await;
        for i in 0..3 {
            t.publisher.publish(payload(i, 100)).unwrap();
        }
        for i in 0..3 {
            let object = next_object(&mut sub, format_args!("delta {i}")).await;
            assert_eq!(object.group_id, 0);
        }
        if draft16 {
            // moq-relay-ietf 0.7.31 does not pass the track's dynamic-groups property on, so
            // the client refuses the request itself, saying why.
            let err = sub
                .request_new_group()
                .await
                .expect_err("no dynamic groups via 0.7");
            assert!(err.to_string().contains("draft-16 relays"), "{err}");
            continue;
        }
        sub.request_new_group()
            .await
            .expect("the relay accepts the request");
        let asked = tokio::time::timeout(Duration::from_secs(10), requests.next())
            .await
            .expect("the request reaches the publisher")
            .expect("the publisher is open");
        assert_eq!(
            asked, 1,
            "the subscriber knows group 0, so it asks for group 1"
        );
        assert_eq!(requests.count(), 1);
        // The app answers: a new group, starting with its key frame.
        t.publisher.new_group().unwrap();
        t.publisher.publish(b"key frame".to_vec()).unwrap();
        let key = next_object(&mut sub, "the key frame").await;
        assert_eq!((key.group_id, key.object_id), (1, 0));
        assert_eq!(key.payload.as_ref(), b"key frame");
        // Satisfied: asking again for a group the subscriber has reached sends a new one.
        sub.request_new_group().await.expect("a second request");
        let asked = tokio::time::timeout(Duration::from_secs(10), requests.next())
            .await
            .expect("the second request reaches the publisher")
            .expect("the publisher is open");
        assert_eq!(asked, 2);
        // A closed publisher ends the stream of requests.
        t.publisher.close();
        assert_eq!(requests.next().await, None);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publisher_that_did_not_opt_in_has_new_group_requests_refused() {
    let t = PubSub::start("moqt", "newgroup-no", "t").await;
    let mut requests = t.publisher.new_group_requests();
    let mut sub = t.subscribe(sub()).await;
    t.publisher.publish(b"0".to_vec()).unwrap();
    next_object(&mut sub, "the first object").await;
    let err = sub.request_new_group().await.expect_err("refused");
    assert!(matches!(err, SubscribeError::Refused { .. }), "{err:?}");
    assert!(
        err.to_string().contains("accept_new_group_requests"),
        "{err}"
    );
    // Nothing reached the publisher, and the subscription carries on.
    assert!(
        tokio::time::timeout(Duration::from_millis(300), requests.next())
            .await
            .is_err()
    );
    t.publisher.publish(b"1".to_vec()).unwrap();
    assert_eq!(
        next_object(&mut sub, "after the refusal")
            .await
            .payload
            .as_ref(),
        b"1"
    );
}
