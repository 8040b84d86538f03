//! The interop cases: the runner's six core cases, then four data cases.
//!
//! Every case uses namespace [`NAMESPACE`] and track [`TRACK`] (the runner's names) unless
//! it says otherwise, and closes its clients before it returns, so the next case starts
//! with nothing of it left on the relay.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use moq_ffi::core::{Client, Object, Publisher, PublisherOptions, Subscriber, SubscriberOptions};

use super::{Outcome, Relay};

/// The namespace the runner's cases use.
pub const NAMESPACE: &str = "moq-test/interop";
/// The track the runner's cases use.
pub const TRACK: &str = "test-track";

/// One case: its name on the command line and in TAP, its time limit, what it does.
pub struct Case {
    /// The runner's name for it.
    pub name: &'static str,
    /// The runner's time limit for the case (ours for the data cases).
    pub limit: Duration,
    /// The case.
    pub run: fn(Relay) -> Pin<Box<dyn Future<Output = Outcome> + Send>>,
}

macro_rules! case {
    ($name:literal, $limit_ms:literal, $function:ident) => {
        Case {
            name: $name,
            limit: Duration::from_millis($limit_ms),
            run: |relay| Box::pin($function(relay)),
        }
    };
}

/// Every case, in the order they run.
pub const CASES: &[Case] = &[
    case!("setup-only", 2000, setup_only),
    case!("announce-only", 2000, announce_only),
    case!("publish-namespace-done", 2000, publish_namespace_done),
    case!("subscribe-error", 2000, subscribe_error),
    case!("announce-subscribe", 3000, announce_subscribe),
    case!("subscribe-before-announce", 3500, subscribe_before_announce),
    case!("single-object", 5000, single_object),
    case!("single-group", 5000, single_group),
    case!("multiple-groups", 5000, multiple_groups),
    case!("late-subscriber", 5000, late_subscriber),
];

/// Connect, exchange SETUP, close.
async fn setup_only(relay: Relay) -> Outcome {
    let client = relay.connect(Duration::ZERO).await?;
    client.close().await;
    Ok(())
}

/// PUBLISH_NAMESPACE, accepted.
async fn announce_only(relay: Relay) -> Outcome {
    let client = relay.connect(Duration::ZERO).await?;
    let announced = client.announce(NAMESPACE).await;
    client.close().await;
    announced.map_err(|err| format!("announce: {err}"))
}

/// Announce, then withdraw; the session stays up.
async fn publish_namespace_done(relay: Relay) -> Outcome {
    let client = relay.connect(Duration::ZERO).await?;
    let outcome = async {
        client
            .announce(NAMESPACE)
            .await
            .map_err(|err| format!("announce: {err}"))?;
        if !client.unannounce(NAMESPACE) {
            return Err("the namespace was not announced any more when withdrawn".to_string());
        }
        // A relay that took the withdrawal badly would end the session.
        tokio::time::sleep(Duration::from_millis(100)).await;
        if !client.is_connected() {
            return Err(format!(
                "the session ended after the withdrawal ({:?})",
                client.state()
            ));
        }
        Ok(())
    }
    .await;
    client.close().await;
    outcome
}

/// A SUBSCRIBE nobody can serve gets an error response (the expected outcome).
async fn subscribe_error(relay: Relay) -> Outcome {
    let client = relay.connect(Duration::ZERO).await?;
    let result = client
        .subscribe("nonexistent/namespace", TRACK, SubscriberOptions::default())
        .await;
    client.close().await;
    match result {
        Err(_) => Ok(()),
        Ok(_) => Err("the relay accepted a subscription nobody publishes".to_string()),
    }
}

/// One connection announces and publishes the track, another subscribes: accepted.
async fn announce_subscribe(relay: Relay) -> Outcome {
    let (publishing, _publisher) = publish(&relay, PublisherOptions::default()).await?;
    let outcome = async {
        let client = relay.connect(Duration::from_millis(1000)).await?;
        let result = client
            .subscribe(NAMESPACE, TRACK, SubscriberOptions::default())
            .await;
        client.close().await;
        result.map(drop).map_err(|err| format!("subscribe: {err}"))
    }
    .await;
    publishing.close().await;
    outcome
}

/// The subscriber comes first; the publisher announces 500 ms later. A subscription that
/// succeeds once announced, or an error, both pass; silence does not.
async fn subscribe_before_announce(relay: Relay) -> Outcome {
    let subscribing = relay.connect(Duration::from_millis(2500)).await?;
    let subscription = {
        let client = subscribing.clone();
        tokio::spawn(async move {
            client
                .subscribe(NAMESPACE, TRACK, SubscriberOptions::default())
                .await
                .map(drop)
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let published = publish(&relay, PublisherOptions::default()).await;
    let result = subscription.await;
    if let Ok((publishing, _)) = &published {
        publishing.close().await;
    }
    subscribing.close().await;
    published?;
    match result {
        Ok(Ok(())) => Ok(()),
        // An error response is an acceptable outcome of this case.
        Ok(Err(err)) => {
            eprintln!("subscribe-before-announce: the relay answered with an error: {err}");
            Ok(())
        }
        Err(err) => Err(format!("the subscribing task failed: {err}")),
    }
}

/// One object, received byte-exact.
async fn single_object(relay: Relay) -> Outcome {
    transfer(&relay, &[1]).await
}

/// One group of 10 objects, in order.
async fn single_group(relay: Relay) -> Outcome {
    transfer(&relay, &[10]).await
}

/// Three groups of 5 objects, in order, each group complete.
async fn multiple_groups(relay: Relay) -> Outcome {
    transfer(&relay, &[5, 5, 5]).await
}

/// A subscriber that joins after group 0 was published gets group 1 whole and in order (and,
/// if the relay replays it, group 0 before it, in order, without repeats); the subscriber
/// that was there from the start gets both.
async fn late_subscriber(relay: Relay) -> Outcome {
    let (publishing, publisher) = publish(&relay, PublisherOptions::default()).await?;
    let early_client = relay.connect(Duration::from_millis(1000)).await?;
    let late_client = relay.connect(Duration::from_millis(1000)).await?;
    let outcome = async {
        let mut early = subscribe(&early_client).await?;
        wait_for_subscriber(&publisher).await?;
        let first = publish_group(&publisher, 0, 5)?;
        let mut late = subscribe(&late_client).await?;
        publisher
            .new_group()
            .map_err(|err| format!("new group: {err}"))?;
        let second = publish_group(&publisher, 1, 5)?;

        let all: Vec<_> = first.iter().chain(&second).cloned().collect();
        expect_exactly(&mut early, &all, "the early subscriber").await?;
        // Read up to the last object published, whatever the relay replays before it.
        let last = second.last().map(|o| (o.group_id, o.object_id));
        let mut received = Vec::new();
        while received.len() < all.len() {
            let object = next(&mut late, "the late subscriber").await?;
            let at = Some((object.group_id, object.object_id));
            received.push(object);
            if at >= last {
                break;
            }
        }
        in_order(&received, "the late subscriber")?;
        let tail = &received[received.len().saturating_sub(second.len())..];
        if tail != second.as_slice() {
            return Err(format!(
                "the late subscriber did not get group 1 whole: got {}",
                summary(&received)
            ));
        }
        Ok(())
    }
    .await;
    early_client.close().await;
    late_client.close().await;
    publishing.close().await;
    outcome
}

/// Publish `groups` (objects per group) to a fresh subscriber and check it receives exactly
/// them, in order.
async fn transfer(relay: &Relay, groups: &[u64]) -> Outcome {
    let (publishing, publisher) = publish(relay, PublisherOptions::default()).await?;
    let subscribing = relay.connect(Duration::from_millis(1000)).await?;
    let outcome = async {
        let mut subscriber = subscribe(&subscribing).await?;
        wait_for_subscriber(&publisher).await?;
        let mut sent = Vec::new();
        for (index, &objects) in groups.iter().enumerate() {
            if index > 0 {
                publisher
                    .new_group()
                    .map_err(|err| format!("new group: {err}"))?;
            }
            sent.extend(publish_group(&publisher, index as u64, objects)?);
        }
        expect_exactly(&mut subscriber, &sent, "the subscriber").await
    }
    .await;
    subscribing.close().await;
    publishing.close().await;
    outcome
}

/// A connection that announced [`NAMESPACE`], and a publisher of [`TRACK`] on it.
async fn publish(relay: &Relay, options: PublisherOptions) -> Result<(Client, Publisher), String> {
    let client = relay.connect(Duration::ZERO).await?;
    if let Err(err) = client.announce(NAMESPACE).await {
        client.close().await;
        return Err(format!("announce: {err}"));
    }
    match client.create_publisher(NAMESPACE, TRACK, options) {
        Ok(publisher) => Ok((client, publisher)),
        Err(err) => {
            client.close().await;
            Err(format!("create publisher: {err}"))
        }
    }
}

async fn subscribe(client: &Client) -> Result<Subscriber, String> {
    client
        .subscribe(NAMESPACE, TRACK, SubscriberOptions::default())
        .await
        .map_err(|err| format!("subscribe: {err}"))
}

/// What is published before the relay subscribes to the publisher goes nowhere: wait for it.
async fn wait_for_subscriber(publisher: &Publisher) -> Outcome {
    if publisher.wait_for_subscriber(Duration::from_secs(3)).await {
        Ok(())
    } else {
        Err("the relay never subscribed to the publisher".to_string())
    }
}

/// Publish `objects` objects in the open group, `group` naming them in their payloads; returns
/// what a subscriber should receive.
fn publish_group(publisher: &Publisher, group: u64, objects: u64) -> Result<Vec<Object>, String> {
    (0..objects)
        .map(|object| {
            let payload = format!("moqkit interop group {group} object {object}");
            let at = publisher
                .publish(payload.clone().into_bytes())
                .map_err(|err| format!("publish: {err}"))?;
            Ok(Object {
                group_id: at.group_id,
                object_id: at.object_id,
                payload: payload.into(),
            })
        })
        .collect()
}

async fn next(subscriber: &mut Subscriber, who: &str) -> Result<Object, String> {
    match subscriber.next().await {
        Ok(Some(object)) => Ok(object),
        Ok(None) => Err(format!("{who}'s track ended early")),
        Err(err) => Err(format!("{who}'s subscription failed: {err}")),
    }
}

async fn expect_exactly(subscriber: &mut Subscriber, sent: &[Object], who: &str) -> Outcome {
    let mut received = Vec::new();
    for _ in sent {
        received.push(next(subscriber, who).await?);
    }
    if received != sent {
        return Err(format!(
            "{who} got {} where {} were published",
            summary(&received),
            summary(sent)
        ));
    }
    Ok(())
}

fn in_order(objects: &[Object], who: &str) -> Outcome {
    for pair in objects.windows(2) {
        if (pair[1].group_id, pair[1].object_id) <= (pair[0].group_id, pair[0].object_id) {
            return Err(format!(
                "{who} got objects out of order: {}",
                summary(objects)
            ));
        }
    }
    Ok(())
}

/// `g/o` for each object: enough to see what went wrong.
fn summary(objects: &[Object]) -> String {
    let ids: Vec<String> = objects
        .iter()
        .map(|object| format!("{}/{}", object.group_id, object.object_id))
        .collect();
    format!("[{}]", ids.join(" "))
}
