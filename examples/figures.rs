//! Throughput and latency of the SDK's Rust core through the embedded relay, per scheme:
//! 10,000 x 100 B burst (objects/s), 1,000 x 100 KB burst (MB/s), 1,000 x 100 B paced at
//! 1 ms (one-way latency p50/p99). Each workload runs RUNS times; medians are printed.
//!
//! Run: `cargo run --release --example figures` (optional argument: number of runs).

use std::time::{Duration, Instant};

use moq_ffi::core::{Client, ClientConfig, PublisherOptions, SubscriberOptions};
use moq_test_relay::TestRelay;

fn config(relay: &TestRelay, url: &str) -> ClientConfig {
    let mut config = ClientConfig::new(url);
    config.tls.use_system_roots = false;
    config.tls.extra_ca_pem = vec![relay.ca_pem().as_bytes().to_vec()];
    config
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    values[values.len() / 2]
}

struct Pair {
    publisher: moq_ffi::core::Publisher,
    subscriber: moq_ffi::core::Subscriber,
    clients: [Client; 2],
}

async fn pair(relay: &TestRelay, url: &str, name: &str) -> Pair {
    let a = Client::new(config(relay, url)).unwrap();
    let b = Client::new(config(relay, url)).unwrap();
    a.connect().await.unwrap();
    b.connect().await.unwrap();
    a.announce(name).await.unwrap();
    let publisher = a
        .create_publisher(name, "t", PublisherOptions::default())
        .unwrap();
    let subscriber = b
        .subscribe(name, "t", SubscriberOptions::default())
        .await
        .unwrap();
    Pair {
        publisher,
        subscriber,
        clients: [a, b],
    }
}

/// Publish `count` objects of `size` bytes as fast as possible; seconds until all arrived.
async fn burst(relay: &TestRelay, url: &str, name: &str, count: usize, size: usize) -> f64 {
    let mut p = pair(relay, url, name).await;
    let payload = bytes::Bytes::from(vec![7u8; size]);
    let started = Instant::now();
    for _ in 0..count {
        p.publisher.publish(payload.clone()).unwrap();
    }
    let mut received = 0;
    while received < count {
        // Bounded: a lost object must show up as a failure, not a hang.
        match tokio::time::timeout(Duration::from_secs(20), p.subscriber.next_batch(1024)).await {
            Ok(Ok(batch)) if !batch.is_empty() => received += batch.len(),
            other => {
                eprintln!("{name}: only {received} of {count} objects arrived ({other:?})");
                std::process::exit(1);
            }
        }
    }
    let secs = started.elapsed().as_secs_f64();
    for client in &p.clients {
        client.close().await;
    }
    secs
}

/// One-way latencies of `count` objects sent every millisecond.
async fn paced(relay: &TestRelay, url: &str, name: &str, count: usize) -> Vec<Duration> {
    let mut p = pair(relay, url, name).await;
    let epoch = Instant::now();
    let publisher = p.publisher;
    let sender = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(1));
        for _ in 0..count {
            tick.tick().await;
            let now = epoch.elapsed().as_nanos() as u64;
            let mut payload = vec![0u8; 100];
            payload[..8].copy_from_slice(&now.to_le_bytes());
            publisher.publish(payload).unwrap();
        }
        publisher
    });
    let mut latencies = Vec::with_capacity(count);
    while latencies.len() < count {
        let object = p.subscriber.next().await.unwrap().unwrap();
        let sent = u64::from_le_bytes(object.payload[..8].try_into().unwrap());
        latencies.push(Duration::from_nanos(
            epoch.elapsed().as_nanos() as u64 - sent,
        ));
    }
    drop(sender.await.unwrap());
    for client in &p.clients {
        client.close().await;
    }
    latencies.sort();
    latencies
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let runs: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(5);
    let relay = TestRelay::start().unwrap();
    println!("| scheme | 10k x 100 B burst | 1k x 100 KB burst | paced 1k x 100 B p50 | p99 |");
    println!("|---|---|---|---|---|");
    for (label, url) in [
        ("raw QUIC", relay.moqt_url()),
        ("WebTransport", relay.https_url()),
    ] {
        let mut small = Vec::new();
        let mut large = Vec::new();
        let mut p50 = Vec::new();
        let mut p99 = Vec::new();
        for run in 0..runs {
            small
                .push(10_000.0 / burst(&relay, &url, &format!("s{label}{run}"), 10_000, 100).await);
            let secs = burst(&relay, &url, &format!("l{label}{run}"), 1_000, 100 * 1024).await;
            large.push(1_000.0 * 100.0 * 1024.0 / 1e6 / secs);
            let latencies = paced(&relay, &url, &format!("p{label}{run}"), 1_000).await;
            p50.push(latencies[latencies.len() / 2].as_secs_f64() * 1e3);
            p99.push(latencies[latencies.len() * 99 / 100].as_secs_f64() * 1e3);
        }
        println!(
            "| {label} | {:.0} obj/s | {:.1} MB/s | {:.3} ms | {:.3} ms |",
            median(small),
            median(large),
            median(p50),
            median(p99)
        );
    }
}
