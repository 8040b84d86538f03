//! `moqkit pub`: stdin's lines, or a file's chunks, as the objects of a track.

use std::time::Duration;

use anyhow::Context;
use moq_ffi::core::{DeliveryMode, PublisherOptions};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, BufReader};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    target: crate::connect::Track,
    /// Publish this file's chunks instead of stdin's lines.
    #[arg(long, value_name = "PATH")]
    file: Option<std::path::PathBuf>,
    /// With --file: the size of each object, in bytes (at most 64 MiB).
    #[arg(long, default_value_t = 64 * 1024, value_name = "BYTES",
          value_parser = clap::value_parser!(u64).range(1..=64 * 1024 * 1024))]
    chunk_size: u64,
    /// At most this many objects per second (0: as fast as the network takes them).
    #[arg(long, default_value = "0", value_name = "N", value_parser = interval)]
    rate: Duration,
    /// Datagram delivery (lossy; each object must fit one datagram) instead of streams.
    #[arg(long)]
    datagram: bool,
    /// Start a new group after this many objects.
    #[arg(long, default_value_t = PublisherOptions::default().max_group_objects, value_name = "N")]
    group_objects: u64,
    /// After the input ends, keep the track up this long so subscribers and the relay
    /// receive the last objects, in milliseconds.
    #[arg(long, default_value_t = 2000, value_name = "MS")]
    linger_ms: u64,
    /// Before reading the input, wait up to this long for a subscriber (the relay subscribes
    /// at once for one already waiting): what is published while nobody subscribes reaches
    /// nobody. 0: do not wait. Stream mode only.
    #[arg(long, default_value_t = 2000, value_name = "MS")]
    wait_subscriber_ms: u64,
}

/// Below this many objects per group, `pub` warns that a burst can lose its start at a relay.
const SHORT_GROUPS: u64 = 1000;

pub async fn run(args: Args) -> anyhow::Result<()> {
    let client = args.target.relay.connect().await?;
    client.announce(&args.target.namespace).await?;
    let options = PublisherOptions {
        delivery: if args.datagram {
            DeliveryMode::Datagram
        } else {
            DeliveryMode::Stream
        },
        max_group_objects: args.group_objects.max(1),
        ..PublisherOptions::default()
    };
    let publisher = client.create_publisher(&args.target.namespace, &args.target.track, options)?;
    if !args.datagram && args.group_objects < SHORT_GROUPS {
        eprintln!(
            "warning: with --group-objects {}, a burst of more than 8 groups just after a \
             relay starts following the track can lose its first groups at the relay (it keeps \
             the newest 8 until it forwards: docs/contract.md, Stream delivery); --rate paces it",
            args.group_objects
        );
    }
    eprintln!(
        "publishing {}/{} on {} ({})",
        args.target.namespace,
        args.target.track,
        args.target.relay.shown(),
        if args.file.is_some() {
            "file chunks"
        } else {
            "one object per stdin line"
        }
    );
    if !args.datagram && args.wait_subscriber_ms > 0 {
        let wait = Duration::from_millis(args.wait_subscriber_ms);
        if publisher.wait_for_subscriber(wait).await {
            eprintln!("a subscriber is there");
        } else {
            eprintln!(
                "no subscriber after {} ms: publishing anyway",
                args.wait_subscriber_ms
            );
        }
    }
    let mut input = Input::open(&args).await?;
    let mut next_at = tokio::time::Instant::now();
    let mut count = 0u64;
    while let Some(object) = input.next().await? {
        if !args.rate.is_zero() {
            // No catching up after a stall (slow input, a full queue): at most the rate.
            tokio::time::sleep_until(next_at).await;
            next_at = next_at.max(tokio::time::Instant::now()) + args.rate;
        }
        // Waits while the queue toward the network is full (reliable mode loses nothing).
        publisher.publish_when_ready(object, None).await?;
        count += 1;
    }
    // Everything queued reaches QUIC before the linger starts.
    while publisher.queued_bytes() > 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    eprintln!("published {count} objects");
    // The track stays up (a subscription joining now still gets the open group), then ends,
    // and the session stays a moment longer so the end reaches the relay.
    tokio::time::sleep(Duration::from_millis(args.linger_ms)).await;
    publisher.close();
    tokio::time::sleep(Duration::from_millis(200)).await;
    client.close().await;
    Ok(())
}

/// `--rate N` as the interval between objects; zero (from 0) means no pacing.
fn interval(text: &str) -> Result<Duration, String> {
    let rate: f64 = text
        .parse()
        .map_err(|_| format!("'{text}' is not a number"))?;
    if rate == 0.0 {
        return Ok(Duration::ZERO);
    }
    if !(rate > 0.0 && rate.is_finite()) {
        return Err("the rate must be 0 (no pacing) or a positive number".into());
    }
    Duration::try_from_secs_f64(1.0 / rate)
        .map_err(|_| format!("a rate of {rate} objects per second is too slow to pace"))
}

/// The objects to publish: stdin's lines (without their line ending) or a file's chunks.
enum Input {
    Lines(BufReader<tokio::io::Stdin>),
    Chunks(Box<dyn AsyncRead + Unpin + Send>, u64),
}

impl Input {
    async fn open(args: &Args) -> anyhow::Result<Self> {
        Ok(match &args.file {
            Some(path) => {
                let file = tokio::fs::File::open(path)
                    .await
                    .with_context(|| format!("open {}", path.display()))?;
                Input::Chunks(Box::new(file), args.chunk_size)
            }
            None => Input::Lines(BufReader::new(tokio::io::stdin())),
        })
    }

    async fn next(&mut self) -> anyhow::Result<Option<Vec<u8>>> {
        match self {
            Input::Lines(stdin) => {
                // Bytes, not text: a line need not be UTF-8.
                let mut line = Vec::new();
                if stdin.read_until(b'\n', &mut line).await? == 0 {
                    return Ok(None);
                }
                if line.last() == Some(&b'\n') {
                    line.pop();
                    if line.last() == Some(&b'\r') {
                        line.pop();
                    }
                }
                Ok(Some(line))
            }
            Input::Chunks(file, size) => {
                let mut chunk = Vec::new();
                // A short read is not the end: fill the chunk unless the file ends.
                (&mut **file).take(*size).read_to_end(&mut chunk).await?;
                Ok((!chunk.is_empty()).then_some(chunk))
            }
        }
    }
}
