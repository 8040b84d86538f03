//! Publish objects to a relay from a process of its own (the memory tests run it so that the
//! subscriber's process holds only what the subscriber holds).
//!
//! ```text
//! cargo run --example publish -- --url moqt://localhost:4443 --ca relay-ca.pem \
//!     --namespace mem --track t --count 200 --size 1048576 \
//!     [--group-objects N] [--group-bytes N] [--rate BYTES_PER_S]
//! ```
//! Prints `ANNOUNCED` once the namespace is announced, waits for a line on stdin (the
//! subscriber is ready), publishes, prints `PUBLISHED <count>`, then holds the namespace until
//! stdin closes. Object `i` is `--size` bytes: `i` (little-endian u64) then `i`'s low byte.

use std::io::{BufRead, Write};
use std::time::{Duration, Instant};

use moq_ffi::core::{Client, ClientConfig, PublisherOptions};

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn number(args: &[String], name: &str, default: u64) -> u64 {
    arg(args, name).map_or(default, |v| {
        v.parse()
            .unwrap_or_else(|_| panic!("{name} takes a number, got {v}"))
    })
}

/// Object `index` of `size` bytes: the index, then its low byte repeated.
pub fn payload(index: u64, size: usize) -> Vec<u8> {
    let mut bytes = vec![index as u8; size];
    let head = size.min(8);
    bytes[..head].copy_from_slice(&index.to_le_bytes()[..head]);
    bytes
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let url = arg(&args, "--url").ok_or("--url is required")?;
    let mut config = ClientConfig::new(url);
    if let Some(ca) = arg(&args, "--ca") {
        config.tls.use_system_roots = false;
        config.tls.extra_ca_files = vec![ca.into()];
    }
    let namespace = arg(&args, "--namespace").unwrap_or_else(|| "publish".into());
    let track = arg(&args, "--track").unwrap_or_else(|| "t".into());
    let count = number(&args, "--count", 100);
    let size = number(&args, "--size", 1024) as usize;
    let rate = number(&args, "--rate", 0);
    let mut options = PublisherOptions::default();
    options.max_group_objects = number(&args, "--group-objects", options.max_group_objects);
    options.max_group_bytes = number(&args, "--group-bytes", options.max_group_bytes);

    let client = Client::new(config)?;
    client.connect().await?;
    client.announce(&namespace).await?;
    let publisher = client.create_publisher(&namespace, &track, options)?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "ANNOUNCED")?;
    out.flush()?;
    let mut lines = std::io::stdin().lock().lines();
    let _go = lines.next();

    let started = Instant::now();
    for index in 0..count {
        if rate > 0 {
            // Paced: object `index` leaves no earlier than its share of the rate allows.
            let due = Duration::from_secs_f64((index * size as u64) as f64 / rate as f64);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                tokio::time::sleep(wait).await;
            }
        }
        // Waits while the queue toward the network is full (max_queued_bytes).
        publisher
            .publish_when_ready(payload(index, size), None)
            .await?;
    }
    writeln!(out, "PUBLISHED {count}")?;
    out.flush()?;
    for line in lines {
        if line.is_err() {
            break;
        }
    }
    client.close().await;
    Ok(())
}
