//! moq-relay-ietf 0.7 (draft 16, on moq-transport 0.16), the published binary, in a child
//! process: a relay of a draft this client does not speak, as the ones users meet on
//! Cloudflare's network and in the interop registry.
//!
//! `scripts/build-draft16-relay` installs it into `target/draft16-relay/bin/moq-relay-ietf`
//! (`cargo install --locked`, its own lockfile; no `[patch]` applies). It listens on
//! `127.0.0.1` with an ephemeral port, raw QUIC (`moqt-16`) and WebTransport on one socket,
//! with a fresh self-signed certificate the client trusts through its TLS configuration.
//! Built with `auth-cat` and given a `--scope-config`, it checks tokens on
//! [`crate::AUTH_PATH`] as the in-process relays do ([`crate::TestRelay::token`] mints them), so
//! `tests/auth.rs` runs against it too.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context;

use crate::child::Logged;
use crate::Identity;

/// A running draft-16 relay. Dropping it kills the process (SIGKILL, as a crash).
pub struct Draft16Relay {
    identity: Identity,
    port: u16,
    _child: Logged,
}

impl Draft16Relay {
    /// Where the binary is: `MOQ_DRAFT16_RELAY_BIN`, else `draft16-relay/bin/moq-relay-ietf`
    /// in the target directory this executable runs from.
    pub fn binary() -> anyhow::Result<PathBuf> {
        crate::near_this_executable(
            "MOQ_DRAFT16_RELAY_BIN",
            "draft16-relay/bin/moq-relay-ietf",
            "scripts/build-draft16-relay",
        )
    }

    /// Start it and wait until it listens.
    pub fn start() -> anyhow::Result<Self> {
        let identity = Identity::generate()?;
        let (child, port) = spawn(&identity, 0)?;
        Ok(Self {
            identity,
            port,
            _child: child,
        })
    }

    /// `moqt://localhost:PORT`.
    pub fn moqt_url(&self) -> String {
        format!("moqt://localhost:{}", self.port)
    }

    /// `https://localhost:PORT`.
    pub fn https_url(&self) -> String {
        format!("https://localhost:{}", self.port)
    }

    /// The CA certificate (PEM) clients must trust.
    pub fn ca_pem(&self) -> &str {
        &self.identity.ca_pem
    }

    /// Path of a file holding [`Self::ca_pem`].
    pub fn ca_path(&self) -> &Path {
        &self.identity.ca_path
    }
}

/// Start moq-relay-ietf 0.7.31 on `127.0.0.1:port` (0: ephemeral) with `identity`'s
/// certificate; returns the process (killed when dropped) and the port it listens on.
pub(crate) fn spawn(identity: &Identity, port: u16) -> anyhow::Result<(Logged, u16)> {
    let dir = identity._dir.path();
    let (cert, key) = (dir.join("relay-cert.pem"), dir.join("relay-key.pem"));
    std::fs::write(&cert, &identity.ca_pem).context("write certificate")?;
    std::fs::write(&key, &identity.key_pem).context("write key")?;
    let binary = Draft16Relay::binary()?;
    // The coordinator file remembers which relay owns each namespace: a restarted relay must
    // not inherit its predecessor's (it would route to a relay that is gone).
    let coordinator = dir.join("coordinator.json");
    let _ = std::fs::remove_file(&coordinator);
    let scope_config = write_scope_config(identity)?;
    let mut command = Command::new(&binary);
    command
        .arg("--bind")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--tls-cert")
        .arg(&cert)
        .arg("--tls-key")
        .arg(&key)
        .arg("--coordinator-file")
        .arg(&coordinator)
        .arg("--scope-config")
        .arg(&scope_config)
        // Its "listening on" line is an info log: a caller's RUST_LOG must not hide it.
        .env(
            "RUST_LOG",
            std::env::var("MOQ_DRAFT16_RELAY_RUST_LOG").unwrap_or_else(|_| "info".into()),
        );
    // MOQ_DRAFT16_RELAY_LOG=1 shows the relay's log (with RUST_LOG for the relay in
    // MOQ_DRAFT16_RELAY_RUST_LOG) on stderr, to debug against it. It logs to stdout or stderr
    // (both seen): the port comes from the line saying it listens.
    let mut relay = Logged::spawn(&mut command, "draft-16 relay", "MOQ_DRAFT16_RELAY_LOG")?;
    let port = relay.wait_for(
        std::time::Duration::from_secs(30),
        &format!("{} did not listen", binary.display()),
        listening_port,
    )?;
    Ok((relay, port))
}

/// The port of a moq-relay-ietf "listening on 127.0.0.1:PORT" log line.
pub(crate) fn listening_port(line: &str) -> Option<u16> {
    let (_, addr) = line.split_once("listening on 127.0.0.1:")?;
    addr.trim().parse().ok()
}

/// The relay's token policy, in its `--scope-config` format: sessions on [`crate::AUTH_PATH`]
/// need a Common Access Token signed by `identity`'s token key, with the issuer and audience
/// the in-process relays require; every other path is open. Returns the file's path.
pub(crate) fn write_scope_config(identity: &Identity) -> anyhow::Result<PathBuf> {
    use crate::relay_server::{AUTH_PATH, TOKEN_AUDIENCE, TOKEN_ISSUER};
    let dir = identity._dir.path();
    // A relative `pem_file` is read from the config file's directory.
    std::fs::write(dir.join("token-key.pem"), &identity.token_key_pem)
        .context("write token key")?;
    let config = format!(
        r#"{{"scopes": {{"{AUTH_PATH}": {{"auth": {{
            "keys": [{{"alg": "ES256", "pem_file": "token-key.pem"}}],
            "issuers": ["{TOKEN_ISSUER}"],
            "audiences": ["{TOKEN_AUDIENCE}"]
        }}}}}}}}"#
    );
    let path = dir.join("scope-config.json");
    std::fs::write(&path, config).context("write scope config")?;
    Ok(path)
}
