//! `moqkit relay`: the real moq-relay-ietf on 127.0.0.1 with a freshly generated self-signed
//! certificate, for local development. It prints where it is and how to trust it, then runs
//! until interrupted (Ctrl-C or SIGTERM).
//!
//! By default the relay runs in-process on the moq-transport this binary links (the SDK's
//! patched copy): one program, nothing else to install. `--upstream` runs it on the published
//! moq-transport instead, the stream behaviour of the relays users meet, as the
//! `moq-upstream-relay` child process (built by `scripts/build-upstream-relay`, found beside
//! this binary or through `MOQ_UPSTREAM_RELAY_BIN`).

use std::io::Write;

#[derive(clap::Args)]
pub struct Args {
    /// The UDP port (0: any free port).
    #[arg(long, default_value_t = 4443)]
    port: u16,
    /// Run the relay on the published moq-transport (what relays users meet keep) in a child
    /// process, `moq-upstream-relay` (scripts/build-upstream-relay), instead of in-process on
    /// the SDK's patched copy. MOQ_TEST_RELAY=upstream does the same.
    #[arg(long)]
    upstream: bool,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    use moq_test_relay::{RelayKind, TestRelay};
    let kind = if args.upstream {
        RelayKind::Upstream
    } else {
        RelayKind::from_env()
    };
    let relay = TestRelay::start_kind(kind, args.port)?;
    let mut out = std::io::stdout().lock();
    write!(out, "{}", relay.environment())?;
    out.flush()?;
    drop(out);
    eprintln!(
        "relay running; try: moqkit sub {} demo chat --ca {}   (or --pin {})",
        relay.moqt_url(),
        relay.ca_path().display(),
        relay.sha256_hex()
    );
    interrupted().await?;
    drop(relay);
    Ok(())
}

/// Ctrl-C, or SIGTERM where there are Unix signals.
async fn interrupted() -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut terminate = signal(SignalKind::terminate())?;
        tokio::select! {
            result = tokio::signal::ctrl_c() => result?,
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c().await?;
    Ok(())
}
