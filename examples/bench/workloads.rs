//! The workloads shared by both Rust paths.

use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::{json, Value};

use crate::{
    baseline, cpu_time, fail, index_of, now_ns, percentile_us, sdk, sent_ns, stamped, Args, Path,
};

/// The publishing half of a connected pair.
pub enum Publish {
    Core(moq_ffi::core::Publisher),
    Baseline(baseline::Publish),
}

/// The receiving half of a connected pair.
pub enum Receive {
    Core(sdk::Receive),
    Baseline(Box<baseline::Receive>),
}

/// The two connections of a pair.
pub enum Clients {
    Core(sdk::Clients),
    Baseline(Box<baseline::Clients>),
}

/// Two connections, a publisher on one, a subscriber on the other (established).
async fn open(path: &Path, args: &Args, datagram: bool) -> (Publish, Receive, Clients) {
    match path {
        Path::Core => {
            let (p, r, c) = sdk::open(args, datagram).await;
            (Publish::Core(p), Receive::Core(r), Clients::Core(c))
        }
        Path::Baseline => {
            let (p, r, c) = baseline::open(args, datagram).await;
            (
                Publish::Baseline(p),
                Receive::Baseline(Box::new(r)),
                Clients::Baseline(Box::new(c)),
            )
        }
    }
}

impl Publish {
    /// Publish; the core waits while its queue toward the network is full (max_queued_bytes).
    async fn publish(&self, payload: Bytes) {
        match self {
            Publish::Core(p) => {
                if let Err(err) = p.publish_when_ready(payload, None).await {
                    fail(format!("publish: {err}"));
                }
            }
            Publish::Baseline(p) => p.publish(payload),
        }
    }
}

impl Receive {
    /// The next object's payload; None once the track ended.
    async fn recv(&mut self) -> Option<Bytes> {
        match self {
            Receive::Core(r) => r.recv().await,
            Receive::Baseline(r) => r.recv().await,
        }
    }
}

impl Clients {
    async fn close(self) {
        match self {
            Clients::Core(c) => c.close().await,
            Clients::Baseline(c) => c.close().await,
        }
    }
}

/// `count` objects of `size` bytes published as fast as possible; until the last arrives.
pub async fn burst(path: &Path, args: &Args) -> Value {
    let (publish, mut receive, clients) = open(path, args, false).await;
    let payloads: Vec<Bytes> = (0..args.count).map(|i| stamped(i, args.size)).collect();
    let cpu = cpu_time();
    let started = Instant::now();
    for payload in payloads {
        publish.publish(payload).await;
    }
    for expected in 0..args.count as u64 {
        match tokio::time::timeout(Duration::from_secs(30), receive.recv()).await {
            Ok(Some(payload)) if index_of(&payload) == expected => {}
            Ok(Some(payload)) => fail(format!(
                "object {} arrived where {expected} was expected",
                index_of(&payload)
            )),
            _ => fail(format!("only {expected} of {} objects arrived", args.count)),
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let cpu_s = (cpu_time() - cpu).as_secs_f64();
    drop(publish);
    clients.close().await;
    json!({
        "objects_per_s": args.count as f64 / secs,
        "mb_per_s": (args.count * args.size) as f64 / secs / 1e6,
        "cpu_s": cpu_s,
        "received": args.count,
    })
}

/// One object per millisecond; one-way latency of each (datagrams may be lost).
pub async fn paced(path: &Path, args: &Args, datagram: bool) -> Value {
    let (publish, mut receive, clients) = open(path, args, datagram).await;
    let count = args.count;
    // The receiver runs on its own task so it wakes the moment an object arrives.
    let receiver = tokio::spawn(async move {
        let mut latencies = Vec::with_capacity(count);
        while let Ok(Some(payload)) =
            tokio::time::timeout(Duration::from_secs(10), receive.recv()).await
        {
            latencies.push(now_ns().saturating_sub(sent_ns(&payload)));
            if index_of(&payload) + 1 == count as u64 {
                break;
            }
        }
        latencies
    });
    let started = tokio::time::Instant::now();
    for i in 0..count {
        tokio::time::sleep_until(started + Duration::from_millis(i as u64)).await;
        publish.publish(stamped(i, args.size)).await;
    }
    let mut latencies = receiver.await.unwrap_or_else(|_| fail("receiver panicked"));
    drop(publish);
    clients.close().await;
    latencies.sort_unstable();
    let received = latencies.len();
    if !datagram && received != count {
        fail(format!("only {received} of {count} objects arrived"));
    }
    json!({
        "p50_us": percentile_us(&latencies, 50.0),
        "p99_us": percentile_us(&latencies, 99.0),
        "ratio": received as f64 / count as f64,
        "received": received,
    })
}

/// The cost of one publish call with no subscriber (no network involved).
pub async fn publish(path: &Path, args: &Args) -> Value {
    let payload = Bytes::from(vec![0u8; args.size]);
    let ns = match path {
        Path::Core => sdk::publish_calls(args, payload).await,
        Path::Baseline => baseline::publish_calls(args, payload).await,
    };
    json!({ "ns_per_call": ns })
}

/// The cost of one `Client::stats()` call on a connected client (the SDK only).
pub async fn stats(path: &Path, args: &Args) -> Value {
    match path {
        Path::Core => json!({ "ns_per_call": sdk::stats_calls(args).await }),
        Path::Baseline => fail("stats: an SDK call; the plain moq-transport path has none"),
    }
}

/// Joining with the newest group fetched first: time to its first object.
pub async fn join_fetch(path: &Path, args: &Args) -> Value {
    match path {
        Path::Core => sdk::join_fetch(args).await,
        Path::Baseline => fail("joinfetch: an SDK option; the plain moq-transport path has none"),
    }
}
