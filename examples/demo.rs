//! First-run demo: starts the embedded relay, a publisher and a subscriber, sends objects over
//! raw QUIC and WebTransport, and prints what arrived, throughput and latency.
//!
//! Run: `cargo run --release --example demo` (no setup, no flags).

use std::time::{Duration, Instant};

use moq_ffi::core::{Client, ClientConfig, PublisherOptions, SubscriberOptions};
use moq_test_relay::TestRelay;

const BURST: usize = 5_000;
const PACED: usize = 1_000;
const SIZE: usize = 100;

fn config(relay: &TestRelay, url: String) -> ClientConfig {
    let mut config = ClientConfig::new(url);
    // Trust the relay's freshly generated certificate, and nothing else.
    config.tls.use_system_roots = false;
    config.tls.extra_ca_pem = vec![relay.ca_pem().as_bytes().to_vec()];
    config
}

fn stamp(epoch: Instant, index: usize) -> Vec<u8> {
    let mut payload = vec![0u8; SIZE];
    payload[..8].copy_from_slice(&(index as u64).to_le_bytes());
    payload[8..16].copy_from_slice(&(epoch.elapsed().as_nanos() as u64).to_le_bytes());
    payload
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

async fn run(
    relay: &TestRelay,
    url: String,
    label: &str,
) -> Result<(), Box<dyn std::error::Error>> {
    let publisher_client = Client::new(config(relay, url.clone()))?;
    let subscriber_client = Client::new(config(relay, url.clone()))?;
    publisher_client.connect().await?;
    subscriber_client.connect().await?;
    publisher_client.announce("demo").await?;
    let publisher =
        publisher_client.create_publisher("demo", "counter", PublisherOptions::default())?;
    let mut subscriber = subscriber_client
        .subscribe("demo", "counter", SubscriberOptions::default())
        .await?;
    let epoch = Instant::now();

    // Burst: as fast as possible.
    let started = Instant::now();
    for i in 0..BURST {
        publisher.publish(stamp(epoch, i))?;
    }
    let mut received = 0;
    let mut in_order = true;
    while received < BURST {
        for object in subscriber.next_batch(512).await? {
            let index = u64::from_le_bytes(object.payload[..8].try_into()?) as usize;
            in_order &= index == received;
            received += 1;
        }
    }
    let burst_secs = started.elapsed().as_secs_f64();

    // Paced: one object per millisecond, one-way latency measured on arrival.
    let mut latencies = Vec::with_capacity(PACED);
    let sender = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(1));
        for i in 0..PACED {
            tick.tick().await;
            if publisher.publish(stamp(epoch, BURST + i)).is_err() {
                break;
            }
        }
        publisher
    });
    while latencies.len() < PACED {
        let Some(object) = subscriber.next().await? else {
            break;
        };
        let sent = u64::from_le_bytes(object.payload[8..16].try_into()?);
        let now = epoch.elapsed().as_nanos() as u64;
        latencies.push(Duration::from_nanos(now.saturating_sub(sent)));
    }
    let _publisher = sender.await?;
    latencies.sort();

    println!(
        "{label:<13} burst: {received}/{BURST} objects of {SIZE} B received{}, {:.0} objects/s | paced: {}/{PACED} received, latency p50 {:.3} ms, p99 {:.3} ms",
        if in_order { " in order" } else { " OUT OF ORDER" },
        received as f64 / burst_secs,
        latencies.len(),
        percentile(&latencies, 0.50).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
    );
    subscriber.close().await;
    publisher_client.close().await;
    subscriber_client.close().await;
    Ok(())
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // MOQ_TEST_RELAY=upstream: the relay on the published moq-transport (CONTRIBUTING.md, The test relays).
    let relay = TestRelay::start()?;
    println!(
        "relay ({} moq-transport) listening on {} (and {})",
        relay.kind().name(),
        relay.moqt_url(),
        relay.https_url()
    );
    run(&relay, relay.moqt_url(), "raw QUIC").await?;
    run(&relay, relay.https_url(), "WebTransport").await?;
    Ok(())
}
