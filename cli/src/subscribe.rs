//! `moqkit sub`: a track's objects to stdout.

use std::time::Duration;

use base64::Engine;
use moq_ffi::core::{Object, SubscriberOptions};
use tokio::io::AsyncWriteExt;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    target: crate::connect::Track,
    /// Exit after this many objects (default: until the track ends).
    #[arg(long, value_name = "N")]
    count: Option<u64>,
    /// One JSON object per line: group_id, object_id, size, and the payload as `text` (UTF-8)
    /// or `base64`.
    #[arg(long, conflicts_with = "raw")]
    json: bool,
    /// Payloads back to back, nothing added (a file published with `pub --file`). The
    /// default writes each payload followed by a newline.
    #[arg(long)]
    raw: bool,
    /// How long to wait for a publisher of the track to appear, in milliseconds.
    #[arg(long, default_value_t = 5000, value_name = "MS")]
    wait_ms: u64,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let client = args
        .target
        .relay
        .connect_with(|config| config.rendezvous_timeout = Duration::from_millis(args.wait_ms))
        .await?;
    let mut subscriber = client
        .subscribe(
            &args.target.namespace,
            &args.target.track,
            SubscriberOptions::default(),
        )
        .await?;
    eprintln!(
        "subscribed to {}/{} on {}",
        args.target.namespace,
        args.target.track,
        args.target.relay.shown()
    );
    let mut stdout = tokio::io::stdout();
    let mut received = 0u64;
    while args.count.is_none_or(|count| received < count) {
        let Some(object) = subscriber.next().await? else {
            eprintln!("the track ended after {received} objects");
            break;
        };
        let written = match stdout.write_all(&format(&object, &args)).await {
            Ok(()) => stdout.flush().await,
            Err(err) => Err(err),
        };
        match written {
            Ok(()) => received += 1,
            // The reader went away (`moqkit sub ... | head -1`): done, not an error.
            Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => break,
            Err(err) => return Err(err.into()),
        }
    }
    client.close().await;
    Ok(())
}

/// What one object looks like on stdout.
fn format(object: &Object, args: &Args) -> Vec<u8> {
    if args.raw {
        return object.payload.to_vec();
    }
    if !args.json {
        let mut line = object.payload.to_vec();
        line.push(b'\n');
        return line;
    }
    let mut record = serde_json::json!({
        "group_id": object.group_id,
        "object_id": object.object_id,
        "size": object.payload.len(),
    });
    match std::str::from_utf8(&object.payload) {
        Ok(text) => record["text"] = text.into(),
        Err(_) => {
            record["base64"] = base64::engine::general_purpose::STANDARD
                .encode(&object.payload)
                .into()
        }
    }
    let mut line = record.to_string().into_bytes();
    line.push(b'\n');
    line
}
