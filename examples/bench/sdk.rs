//! The SDK core path, and the core-only resource workloads.

use std::collections::VecDeque;
use std::time::Duration;

use bytes::Bytes;
use moq_ffi::core::{
    Client, ClientConfig, DeliveryMode, Object, Publisher, PublisherOptions, Subscriber,
    SubscriberOptions,
};
use serde_json::{json, Value};

use crate::{fail, index_of, median_round_ns, rss_mb, stamped, Args};

fn config(url: &str, args: &Args) -> ClientConfig {
    let mut config = ClientConfig::new(url);
    config.tls.use_system_roots = false;
    config.tls.extra_ca_files = vec![args.ca_file.clone().into()];
    config
}

async fn connect(args: &Args) -> Client {
    connect_to(&args.url, args).await
}

async fn connect_to(url: &str, args: &Args) -> Client {
    let client = Client::new(config(url, args)).unwrap_or_else(|err| fail(err));
    client.connect().await.unwrap_or_else(|err| fail(err));
    client
}

fn options(datagram: bool) -> PublisherOptions {
    PublisherOptions {
        delivery: if datagram {
            DeliveryMode::Datagram
        } else {
            DeliveryMode::Stream
        },
        ..PublisherOptions::default()
    }
}

/// The subscriber, read a batch at a time (the fastest way the core offers).
pub struct Receive {
    subscriber: Subscriber,
    ready: VecDeque<Object>,
}

impl Receive {
    pub async fn recv(&mut self) -> Option<Bytes> {
        if self.ready.is_empty() {
            self.ready = self.subscriber.next_batch(1024).await.ok()?.into();
        }
        self.ready.pop_front().map(|object| object.payload)
    }
}

pub struct Clients([Client; 2]);

impl Clients {
    pub async fn close(self) {
        for client in &self.0 {
            client.close().await;
        }
    }
}

pub async fn open(args: &Args, datagram: bool) -> (Publisher, Receive, Clients) {
    let a = connect(args).await;
    let b = connect_to(args.subscribe_url.as_ref().unwrap_or(&args.url), args).await;
    a.announce(&args.namespace)
        .await
        .unwrap_or_else(|err| fail(err));
    let publisher = a
        .create_publisher(&args.namespace, "t", options(datagram))
        .unwrap_or_else(|err| fail(err));
    let subscriber = b
        .subscribe(&args.namespace, "t", SubscriberOptions::default())
        .await
        .unwrap_or_else(|err| fail(err));
    let receive = Receive {
        subscriber,
        ready: VecDeque::new(),
    };
    (publisher, receive, Clients([a, b]))
}

/// Nanoseconds per `publish` call on a track nobody subscribes to (median round).
pub async fn publish_calls(args: &Args, payload: Bytes) -> f64 {
    let client = connect(args).await;
    client
        .announce(&args.namespace)
        .await
        .unwrap_or_else(|err| fail(err));
    let publisher = client
        .create_publisher(&args.namespace, "t", options(false))
        .unwrap_or_else(|err| fail(err));
    let ns = median_round_ns(args.count as u64, |_| {
        publisher
            .publish(payload.clone())
            .unwrap_or_else(|err| fail(err));
    });
    drop(publisher);
    client.close().await;
    ns
}

/// Nanoseconds per `Client::stats()` call on a connected client (median round).
pub async fn stats_calls(args: &Args) -> f64 {
    let client = connect(args).await;
    let ns = median_round_ns(args.count as u64, |_| {
        std::hint::black_box(client.stats());
    });
    if client.stats().rtt.is_zero() {
        fail("stats() reported no RTT on a connected client");
    }
    client.close().await;
    ns
}

/// Resident memory of a connected client and of each active subscription
/// (`count` subscriptions, each to its own track with its own publisher).
pub async fn memory(args: &Args) -> Value {
    let settle = || tokio::time::sleep(Duration::from_millis(300));
    // The runtime and the TLS/QUIC code are warmed by a first client, then measured on a second.
    let warm = connect(args).await;
    warm.close().await;
    settle().await;
    let before = rss_mb();
    let subscriber = connect(args).await;
    settle().await;
    let connected = rss_mb();
    let publisher = connect(args).await;
    publisher
        .announce(&args.namespace)
        .await
        .unwrap_or_else(|err| fail(err));
    let tracks: Vec<Publisher> = (0..args.count)
        .map(|i| {
            publisher
                .create_publisher(&args.namespace, &format!("t{i}"), options(false))
                .unwrap_or_else(|err| fail(err))
        })
        .collect();
    settle().await;
    let before_subs = rss_mb();
    let mut subs = Vec::new();
    for i in 0..args.count {
        subs.push(
            subscriber
                .subscribe(
                    &args.namespace,
                    &format!("t{i}"),
                    SubscriberOptions::default(),
                )
                .await
                .unwrap_or_else(|err| fail(err)),
        );
    }
    // Every subscription carries one object, so each is fully active. Each group then ends:
    // moq-relay-ietf admits 100 concurrent streams per client, so 100 groups left open
    // would hold one track's stream back until another ends.
    for (i, track) in tracks.iter().enumerate() {
        track
            .publish(stamped(i, 100))
            .unwrap_or_else(|err| fail(err));
        track.new_group().unwrap_or_else(|err| fail(err));
    }
    for sub in &mut subs {
        match tokio::time::timeout(Duration::from_secs(10), sub.next()).await {
            Ok(Ok(Some(_))) => {}
            _ => fail("a subscription received nothing"),
        }
    }
    settle().await;
    let with_subs = rss_mb();
    drop(subs);
    drop(tracks);
    publisher.close().await;
    subscriber.close().await;
    json!({
        "client_mb": connected - before,
        "per_subscription_kb": (with_subs - before_subs) * 1e3 / args.count as f64,
        "subscriptions": args.count,
    })
}

/// Steady publish/subscribe (1 KB every millisecond, a new group every second as a live
/// stream starts one at each key frame) for `count` seconds: resident memory after warm-up
/// and at the end (medians of the first and last few once-a-second samples). (A track that never starts a group keeps its open group, up to
/// `max_group_bytes`, in memory at each hop: bounded, but not flat.)
pub async fn soak(args: &Args) -> Value {
    let seconds = args.count as u64;
    let (publisher, mut receive, clients) = open(args, false).await;
    let total = seconds * 1000;
    let receiver = tokio::spawn(async move {
        let mut received = 0u64;
        while received < total {
            match tokio::time::timeout(Duration::from_secs(10), receive.recv()).await {
                Ok(Some(payload)) if index_of(&payload) == received => received += 1,
                Ok(Some(payload)) => fail(format!(
                    "object {} arrived where {received} was expected",
                    index_of(&payload)
                )),
                _ => fail(format!("soak: only {received} of {total} objects arrived")),
            }
        }
        received
    });
    let warm_up = (seconds / 6).clamp(1, 10);
    let started = tokio::time::Instant::now();
    // RSS once a second after warm-up; the growth compares the medians of the first and the
    // last few samples, so one allocator hiccup does not decide it.
    let mut samples = Vec::new();
    for i in 0..total {
        tokio::time::sleep_until(started + Duration::from_millis(i)).await;
        if i >= warm_up * 1000 && i % 1000 == 0 {
            samples.push(rss_mb());
        }
        publisher
            .publish(stamped(i as usize, args.size))
            .unwrap_or_else(|err| fail(err));
        if i % 1000 == 999 {
            publisher.new_group().unwrap_or_else(|err| fail(err));
        }
    }
    let received = receiver.await.unwrap_or_else(|_| fail("receiver panicked"));
    samples.push(rss_mb());
    let window = (samples.len() / 4).clamp(1, 5);
    let median = |window: &[f64]| {
        let mut sorted = window.to_vec();
        sorted.sort_by(f64::total_cmp);
        sorted[sorted.len() / 2]
    };
    let warm_rss = median(&samples[..window]);
    let end_rss = median(&samples[samples.len() - window..]);
    drop(publisher);
    clients.close().await;
    json!({
        "seconds": seconds,
        "warm_up_s": warm_up,
        "rss_warm_mb": warm_rss,
        "rss_end_mb": end_rss,
        "growth_mb": end_rss - warm_rss,
        "received": received,
    })
}

/// Joining a track with `past_groups = 1` where the relay already follows it: time from the
/// `subscribe` call to the first object of the newest group (`count` objects of `size` bytes,
/// kept by the publisher and fetched through the relay), over 15 joins (median, p90), and the
/// median for a plain subscribe, which the relay serves from the open group's start itself.
pub async fn join_fetch(args: &Args) -> Value {
    let publishing = connect(args).await;
    let watching = connect(args).await;
    publishing
        .announce(&args.namespace)
        .await
        .unwrap_or_else(|err| fail(err));
    let keep = PublisherOptions {
        retain_groups: 2,
        ..options(false)
    };
    let publisher = publishing
        .create_publisher(&args.namespace, "t", keep)
        .unwrap_or_else(|err| fail(err));
    // The relay follows the track (a watcher), so SUBSCRIBE_OK names the newest object.
    let mut watcher = watching
        .subscribe(&args.namespace, "t", SubscriberOptions::default())
        .await
        .unwrap_or_else(|err| fail(err));
    publisher
        .publish(stamped(0, 16))
        .unwrap_or_else(|err| fail(err));
    publisher.new_group().unwrap_or_else(|err| fail(err));
    for i in 0..args.count {
        publisher
            .publish(stamped(i, args.size))
            .unwrap_or_else(|err| fail(err));
    }
    for _ in 0..=args.count {
        watcher.next().await.unwrap_or_else(|err| fail(err));
    }
    let with_past = SubscriberOptions {
        past_groups: 1,
        ..SubscriberOptions::default()
    };
    let joins = time_to_first_object(args, with_past).await;
    // For comparison: a plain subscribe, which the relay (following the track) serves from
    // the open group's start itself.
    let plain = time_to_first_object(args, SubscriberOptions::default()).await;
    let result = json!({
        "p50_us": joins[joins.len() / 2],
        "p90_us": joins[joins.len() * 9 / 10],
        "plain_p50_us": plain[plain.len() / 2],
    });
    publishing.close().await;
    watching.close().await;
    result
}

/// 15 joins of the track with `options`, each on a new client: microseconds from the
/// `subscribe` call to the open group's first object, sorted.
async fn time_to_first_object(args: &Args, options: SubscriberOptions) -> Vec<f64> {
    let mut joins = Vec::new();
    for _ in 0..15 {
        let joining = connect(args).await;
        let started = std::time::Instant::now();
        let mut sub = joining
            .subscribe(&args.namespace, "t", options)
            .await
            .unwrap_or_else(|err| fail(err));
        let first = sub.next().await.unwrap_or_else(|err| fail(err));
        let elapsed = started.elapsed();
        match first {
            Some(object) if (object.group_id, object.object_id) == (1, 0) => {}
            other => fail(format!("the first object was {other:?}, not (1, 0)")),
        }
        for _ in 1..args.count {
            sub.next().await.unwrap_or_else(|err| fail(err));
        }
        joins.push(elapsed.as_secs_f64() * 1e6);
        joining.close().await;
    }
    joins.sort_by(f64::total_cmp);
    joins
}
