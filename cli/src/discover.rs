//! `moqkit discover`: the namespaces announced on a relay, as they come and go.

use std::io::Write;

use moq_ffi::core::NamespaceEvent;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    relay: crate::connect::Relay,
    /// Only namespaces under this prefix (whole `/`-separated fields; default: all).
    #[arg(long, default_value = "", value_name = "NAMESPACE")]
    prefix: String,
    /// Exit after this many announcements (default: until interrupted).
    #[arg(long, value_name = "N")]
    count: Option<u64>,
    /// One JSON object per line: {"event": "announced" | "withdrawn", "namespace": ...}.
    #[arg(long)]
    json: bool,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let client = args.relay.connect().await?;
    let mut watch = client.watch_namespaces(&args.prefix);
    eprintln!(
        "watching namespaces under '{}' on {}",
        args.prefix,
        args.relay.shown()
    );
    let mut announced = 0u64;
    let mut stdout = std::io::stdout();
    while args.count.is_none_or(|count| announced < count) {
        let Some(event) = watch.next().await else {
            break;
        };
        let (kind, namespace) = match event {
            NamespaceEvent::Announced(namespace) => {
                announced += 1;
                ("announced", namespace)
            }
            NamespaceEvent::Withdrawn(namespace) => ("withdrawn", namespace),
        };
        let line = if args.json {
            serde_json::json!({ "event": kind, "namespace": namespace }).to_string()
        } else {
            format!("{kind} {namespace}")
        };
        match writeln!(stdout, "{line}").and_then(|()| stdout.flush()) {
            Ok(()) => {}
            // The reader went away (`moqkit discover ... | head -1`): done, not an error.
            Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => break,
            Err(err) => return Err(err.into()),
        }
    }
    watch.close();
    client.close().await;
    Ok(())
}
