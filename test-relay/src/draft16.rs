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

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::Context;

use crate::Identity;

/// A running draft-16 relay. Dropping it kills the process (SIGKILL, as a crash).
pub struct Draft16Relay {
    identity: Identity,
    port: u16,
    child: Child,
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
            child,
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

impl Drop for Draft16Relay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Start moq-relay-ietf 0.7.31 on `127.0.0.1:port` (0: ephemeral) with `identity`'s
/// certificate; returns the process and the port it listens on. Its stdin is null: a test
/// that dies leaves it to be killed by its owner's drop (or the test harness).
pub(crate) fn spawn(identity: &Identity, port: u16) -> anyhow::Result<(Child, u16)> {
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
        .env("NO_COLOR", "1")
        // Its "listening on" line is an info log: a caller's RUST_LOG must not hide it.
        .env(
            "RUST_LOG",
            std::env::var("MOQ_DRAFT16_RELAY_RUST_LOG").unwrap_or_else(|_| "info".into()),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // It reads no stdin, so it would outlive a parent killed with SIGKILL (a test harness
    // ending `moq-test-relay --draft16` so): have the kernel end it with its parent.
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::process::CommandExt;
        // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
        unsafe {
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    let mut child = command
        .spawn()
        .with_context(|| format!("start {}", binary.display()))?;
    // It logs to stdout or stderr (both seen): read both, always, so that neither pipe
    // fills and stalls it, and take the port from the line saying it listens.
    let (lines, listening) = std::sync::mpsc::channel::<String>();
    let stdout = child.stdout.take().context("relay stdout")?;
    let stderr = child.stderr.take().context("relay stderr")?;
    for output in [
        Box::new(stdout) as Box<dyn std::io::Read + Send>,
        Box::new(stderr),
    ] {
        let lines = lines.clone();
        // MOQ_DRAFT16_RELAY_LOG=1 shows the relay's log (with RUST_LOG for the relay in
        // MOQ_DRAFT16_RELAY_RUST_LOG) on stderr, to debug against it.
        let show = std::env::var_os("MOQ_DRAFT16_RELAY_LOG").is_some();
        std::thread::spawn(move || {
            for line in BufReader::new(output).lines().map_while(Result::ok) {
                if show {
                    eprintln!("[draft-16 relay] {line}");
                }
                let _ = lines.send(line);
            }
        });
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
        let Ok(line) = listening.recv_timeout(left) else {
            break;
        };
        if let Some((_, addr)) = line.split_once("listening on 127.0.0.1:") {
            if let Ok(port) = addr.trim().parse::<u16>() {
                return Ok((child, port));
            }
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    anyhow::bail!("{} did not listen within 30 s", binary.display())
}

/// The relay's token policy, in its `--scope-config` format: sessions on [`crate::AUTH_PATH`]
/// need a Common Access Token signed by `identity`'s token key, with the issuer and audience
/// the in-process relays require; every other path is open. Returns the file's path.
fn write_scope_config(identity: &Identity) -> anyhow::Result<PathBuf> {
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
