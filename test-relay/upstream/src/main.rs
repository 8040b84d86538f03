//! `moq-upstream-relay`: moq-relay-ietf 0.8 on the published moq-transport 0.17 (no patch),
//! for `moq_test_relay::TestRelay` to run as a child process.
//!
//! Usage: `moq-upstream-relay --cert CERT.der --key KEY.pk8 [--port N] [--auth-pem PEM]`
//! (port 0, the default: an ephemeral port; `--auth-pem`, an ES256 public key file, makes
//! sessions on `/secure` present a token it signed). Prints `MOQ_RELAY_PORT=N` and `READY` once it listens on
//! `127.0.0.1:N`, then serves until its stdin closes (so a parent that dies takes it along)
//! or it is killed (as a crashed relay: no CONNECTION_CLOSE).

#[path = "../../src/relay_server.rs"]
mod relay_server;

use std::io::Write;

use anyhow::Context;
use tokio::io::AsyncReadExt;

fn main() -> anyhow::Result<()> {
    let mut cert = None;
    let mut key = None;
    let mut port = 0u16;
    let mut auth_pem = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--cert" => cert = Some(value()?),
            "--key" => key = Some(value()?),
            "--port" => port = value()?.parse().context("--port")?,
            "--auth-pem" => auth_pem = Some(value()?),
            other => anyhow::bail!("unknown argument {other}"),
        }
    }
    let cert = std::fs::read(cert.context("--cert is required")?).context("read --cert")?;
    let key = std::fs::read(key.context("--key is required")?).context("read --key")?;
    let tls = relay_server::tls_config(&cert.into(), &key, None)?;
    let auth_pem = match auth_pem {
        Some(path) => Some(std::fs::read_to_string(path).context("read --auth-pem")?),
        None => None,
    };
    let socket = std::net::UdpSocket::bind(("127.0.0.1", port))
        .with_context(|| format!("bind 127.0.0.1:{port}"))?;
    let port = socket.local_addr()?.port();

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, async move {
        let relay = relay_server::build_relay(socket, tls, auth_pem)?;
        let mut out = std::io::stdout().lock();
        writeln!(out, "MOQ_RELAY_PORT={port}\nREADY")?;
        out.flush()?;
        drop(out);
        let stdin_closed = async {
            let mut stdin = tokio::io::stdin();
            let mut buf = [0u8; 64];
            while matches!(stdin.read(&mut buf).await, Ok(n) if n > 0) {}
        };
        tokio::select! {
            result = relay.run() => result.context("relay stopped"),
            _ = stdin_closed => Ok(()),
        }
    })
}
