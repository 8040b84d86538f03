//! Tokens against a relay with authorization on: moq-relay-ietf's own token checking
//! (`auth-cat`: Common Access Tokens in SETUP), on the test relay's `/secure` path, of the kind
//! `MOQ_TEST_RELAY` picks (`scripts/test` runs this file against all three: over draft 16 the
//! token travels in CLIENT_SETUP's AUTHORIZATION TOKEN parameter, re-encoded by core/draft16).
//!
//! The right token passes and data flows; a missing, foreign or malformed one fails `connect`
//! with `Unauthorized`; a token that does not allow publishing fails `announce` with
//! `Unauthorized`; `set_token` fixes a client for its next connect.

mod common;

use std::time::{Duration, Instant};

use common::*;
use moq_ffi::core::{AnnounceError, Client, ClientConfig, ConnectError, ConnectionState, Token};
use moq_test_relay::{TestRelay, TokenGrant, AUTH_PATH};

/// A configuration for the relay's `/secure` path over `scheme`, with `token` if any.
fn secure(relay: &TestRelay, scheme: &str, token: Option<&str>) -> ClientConfig {
    let mut config = config(relay, scheme);
    config.url = format!("{}{AUTH_PATH}", config.url);
    config.token = token.map(|text| Token::parse(text).expect("a base64url token"));
    config
}

async fn connect_err(config: ClientConfig) -> ConnectError {
    let client = Client::new(config).expect("valid config");
    let err = client.connect().await.expect_err("the relay refuses");
    assert!(!client.is_connected());
    err
}

fn assert_unauthorized(err: &ConnectError, what: &str) {
    assert!(
        matches!(err, ConnectError::Unauthorized { .. }),
        "{what}: expected Unauthorized, got {err:?}"
    );
    let message = err.to_string();
    assert!(message.contains("refused the credentials"), "{message}");
    assert!(
        message.contains(AUTH_PATH) || message.contains("/..."),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_right_token_passes_and_objects_flow_over_both_schemes() {
    let relay = relay();
    let token = relay.token(TokenGrant::PublishAndSubscribe);
    for scheme in ["moqt", "https"] {
        let publishing = Client::new(secure(&relay, scheme, Some(&token))).unwrap();
        publishing.connect().await.expect("admitted with the token");
        let subscribing = Client::new(secure(&relay, scheme, Some(&token))).unwrap();
        subscribing
            .connect()
            .await
            .expect("admitted with the token");
        let namespace = format!("auth/{scheme}");
        publishing.announce(&namespace).await.expect("announce");
        let publisher = publishing
            .create_publisher(&namespace, "t", stream())
            .unwrap();
        let mut subscriber = subscribing
            .subscribe(&namespace, "t", sub())
            .await
            .expect("subscribe");
        assert!(
            publisher
                .wait_for_subscriber(std::time::Duration::from_secs(5))
                .await
        );
        publisher.publish(b"behind the token".to_vec()).unwrap();
        let object = tokio::time::timeout(std::time::Duration::from_secs(10), subscriber.next())
            .await
            .expect("in time")
            .expect("no error")
            .expect("an object");
        assert_eq!(object.payload.as_ref(), b"behind the token");
        subscribing.close().await;
        publishing.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_foreign_or_malformed_token_is_unauthorized() {
    let relay = relay();
    // Signed by another relay's key: well-formed, not trusted here.
    let other = TestRelay::start_kind(relay.kind(), 0).unwrap();
    let foreign = other.token(TokenGrant::PublishAndSubscribe);
    for scheme in ["moqt", "https"] {
        let err = connect_err(secure(&relay, scheme, None)).await;
        assert_unauthorized(&err, &format!("{scheme}, no token"));
        let err = connect_err(secure(&relay, scheme, Some(&foreign))).await;
        assert_unauthorized(&err, &format!("{scheme}, a foreign token"));
        // Valid base64url, not a token.
        let err = connect_err(secure(&relay, scheme, Some("bm90IGEgdG9rZW4"))).await;
        assert_unauthorized(&err, &format!("{scheme}, a malformed token"));
        // The message never carries the token.
        assert!(!err.to_string().contains("bm90IGEgdG9rZW4"));
    }
    // The open paths stay open, token or not.
    connect(&relay, "moqt").await.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscribe_only_token_cannot_announce_but_can_subscribe() {
    let relay = relay();
    let token = relay.token(TokenGrant::SubscribeOnly);
    let client = Client::new(secure(&relay, "moqt", Some(&token))).unwrap();
    client
        .connect()
        .await
        .expect("admitted: the token allows setup");
    let err = client
        .announce("auth/denied")
        .await
        .expect_err("publishing is not in the token");
    assert!(
        matches!(err, AnnounceError::Unauthorized { .. }),
        "expected Unauthorized, got {err:?}"
    );
    assert!(err.to_string().contains("not authorized"), "{err}");
    assert!(
        client.is_connected(),
        "a refused request leaves the session up"
    );
    client.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_token_takes_effect_at_the_next_connect() {
    let relay = relay();
    let client = Client::new(secure(&relay, "https", None)).unwrap();
    assert_unauthorized(
        &client.connect().await.expect_err("no token yet"),
        "before set_token",
    );
    client.set_token(Some(
        Token::parse(&relay.token(TokenGrant::PublishAndSubscribe)).unwrap(),
    ));
    client.connect().await.expect("admitted after set_token");
    client
        .announce("auth/after-set-token")
        .await
        .expect("announce");
    client.close().await;
    client.set_token(None);
    assert_unauthorized(
        &client.connect().await.expect_err("token removed"),
        "after set_token(None)",
    );
}

/// `set_token` is for the next connect *or reconnect*: a client that lost its session while
/// its token was removed is refused at each automatic attempt (the relay checks the token it
/// presents then, not the one it opened with), and is admitted at the first attempt after
/// the token is set again, without a call to `connect`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_token_takes_effect_at_the_next_automatic_reconnect() {
    let mut relay = relay();
    let token = || Token::parse(&relay.token(TokenGrant::PublishAndSubscribe)).unwrap();
    let mut config = secure(&relay, "moqt", None);
    config.token = Some(token());
    config.reconnect = Some(moq_ffi::core::ReconnectPolicy {
        initial_delay: Duration::from_millis(100),
        max_delay: Duration::from_millis(400),
        max_attempts: 0,
    });
    let client = Client::new(config).unwrap();
    client.connect().await.expect("admitted with the token");
    let valid = token();
    client.set_token(None);
    assert!(client.is_connected(), "the session keeps its credentials");

    relay.restart().unwrap();
    // Lost within the idle timeout (2 s), then attempts every 400 ms at most: all refused.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(
        !client.is_connected(),
        "reconnected without a token on a path that requires one"
    );
    assert_eq!(
        client.negotiated_draft(),
        None,
        "no draft while the session is lost"
    );

    client.set_token(Some(valid));
    let deadline = Instant::now() + Duration::from_secs(15);
    while !client.is_connected() {
        assert!(Instant::now() < deadline, "not readmitted after set_token");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(client.state(), ConnectionState::Connected);
    assert_eq!(
        client.negotiated_draft(),
        Some(relay.kind().draft()),
        "the reconnected session's draft"
    );
    client
        .announce("auth/after-reconnect")
        .await
        .expect("the readmitted session is usable");
    client.close().await;
}
