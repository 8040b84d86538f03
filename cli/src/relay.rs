//! `moqkit relay`: the real moq-relay-ietf in-process on 127.0.0.1 with a freshly generated
//! self-signed certificate, for local development. It prints where it is and how to trust it,
//! then runs until interrupted (Ctrl-C or SIGTERM).

use std::io::Write;

#[derive(clap::Args)]
pub struct Args {
    /// The UDP port (0: any free port).
    #[arg(long, default_value_t = 4443)]
    port: u16,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let relay = moq_test_relay::TestRelay::start_on_port(args.port)?;
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
