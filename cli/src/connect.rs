//! What every client command shares: the relay URL, the trust flags, and connecting.

use std::time::Duration;

use moq_ffi::core::{config::parse_fingerprint, Client, ClientConfig, Token};

/// The relay and how to trust it.
#[derive(clap::Args)]
pub struct Relay {
    /// The relay: moqt://host:port (raw QUIC) or https://host:port (WebTransport).
    pub url: String,
    /// Trust this PEM CA certificate too (besides the system roots). Repeatable.
    #[arg(long = "ca", value_name = "FILE")]
    pub ca: Vec<std::path::PathBuf>,
    /// Trust a certificate with this SHA-256 fingerprint (64 hex digits, colons allowed).
    /// Repeatable.
    #[arg(long = "pin", value_name = "SHA256")]
    pub pin: Vec<String>,
    /// How long to wait for the connection, in milliseconds.
    #[arg(long, default_value_t = 5000, value_name = "MS")]
    pub connect_timeout_ms: u64,
    /// Present this authorization token (the base64url text the relay's issuer gives) in
    /// SETUP. From the environment (MOQKIT_TOKEN) it stays out of the process list.
    #[arg(
        long,
        env = "MOQKIT_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub token: Option<String>,
}

/// `url` as messages show it: scheme, host and port (path and query, where relays take
/// tokens such as `?jwt=`, hidden).
pub fn shown_url(url: &str) -> String {
    url::Url::parse(url)
        .map(|url| moq_ffi::core::config::redacted(&url))
        .unwrap_or_else(|_| "(not a URL)".to_string())
}

impl Relay {
    /// [`shown_url`] of the relay.
    pub fn shown(&self) -> String {
        shown_url(&self.url)
    }

    /// Connect to the relay; the error says what failed and what to check.
    pub async fn connect(&self) -> anyhow::Result<Client> {
        self.connect_with(|_| {}).await
    }

    /// [`Relay::connect`], with a command's own settings applied to the configuration.
    pub async fn connect_with(
        &self,
        adjust: impl FnOnce(&mut ClientConfig),
    ) -> anyhow::Result<Client> {
        let mut config = ClientConfig::new(self.url.clone());
        config.tls.extra_ca_files = self.ca.clone();
        for pin in &self.pin {
            config.tls.pinned_sha256.push(parse_fingerprint(pin)?);
        }
        config.connect_timeout = Duration::from_millis(self.connect_timeout_ms);
        config.token = self.token.as_deref().map(Token::parse).transpose()?;
        adjust(&mut config);
        let client = Client::new(config)?;
        // The error names the relay (its path redacted) and what to check.
        client.connect().await?;
        Ok(client)
    }
}

/// A track on a relay: what `pub` and `sub` take first.
#[derive(clap::Args)]
pub struct Track {
    #[command(flatten)]
    pub relay: Relay,
    /// The namespace (`/` separates its fields).
    pub namespace: String,
    /// The track.
    pub track: String,
}
