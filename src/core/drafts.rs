//! MoQT drafts: which this client offers, how a relay names the one it speaks, and finding out
//! which a relay speaks when it has none in common with this client.
//!
//! A relay agrees a draft in the handshake: by TLS ALPN over raw QUIC (`moqt-18`), by the
//! `WT-Available-Protocols` / `WT-Protocol` headers over WebTransport. A relay that speaks none
//! of ours ends a raw-QUIC handshake with TLS alert 120 (no_application_protocol), which names
//! nothing. So, on that path only, the client offers the relay every draft identifier it knows
//! in fresh handshakes (each the relay picks from, then closed at once) to say in the error
//! which drafts the relay speaks: "draft 16, and this client speaks 18" tells a user what to
//! do; "TLS handshake failed: alert 120" does not.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use web_transport_quinn::quinn;

/// QUIC's code for TLS alert 120, no_application_protocol (0x100 + the alert).
const NO_APPLICATION_PROTOCOL: u64 = 0x100 + 120;

/// Every draft identifier a relay may speak that this client can name, newest first: draft
/// 15 on use ALPN `moqt-NN`; drafts up to 14 used `moq-00` (the version then went in SETUP).
const KNOWN_ALPNS: &[&str] = &[
    "moqt-22", "moqt-21", "moqt-20", "moqt-19", "moqt-18", "moqt-17", "moqt-16", "moqt-15",
    "moq-00",
];

/// At most this many probe handshakes (each finds one more draft the relay speaks).
const MAX_PROBES: usize = 4;

/// How long one probe handshake may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// The drafts this client speaks, newest first: its moq-transport's own (18), and 16 through
/// the draft-16 front end (`core::draft16`).
pub fn offered() -> Vec<u32> {
    let mut drafts: Vec<u32> = moq_transport::setup::SUPPORTED_ALPNS
        .iter()
        .filter_map(|alpn| draft_of(alpn))
        .collect();
    drafts.push(DRAFT_16);
    drafts
}

/// The draft spoken through `core::draft16`.
pub(crate) const DRAFT_16: u32 = 16;

/// The identifier a draft is offered by (`moqt-NN`).
pub(crate) fn alpn_of(draft: u32) -> String {
    format!("moqt-{draft}")
}

/// The draft number an identifier names: `moqt-16` is 16; `moq-00` is 14 (it stood for
/// drafts up to 14, which carried their version in SETUP).
pub fn draft_of(alpn: &str) -> Option<u32> {
    match alpn {
        "moq-00" => Some(14),
        _ => alpn.strip_prefix("moqt-")?.parse().ok(),
    }
}

/// Drafts as a reader wants them: "18", "16 and 14", "14, 16 and 18".
pub(crate) fn listed(drafts: &[u32]) -> String {
    let names: Vec<String> = drafts.iter().map(u32::to_string).collect();
    match names.split_last() {
        None => String::new(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
    }
}

/// Whether a failed handshake is the relay refusing every draft offered (TLS alert 120).
pub(crate) fn is_no_common_draft(err: &quinn::ConnectionError) -> bool {
    let code = match err {
        quinn::ConnectionError::TransportError(e) => u64::from(e.code),
        quinn::ConnectionError::ConnectionClosed(close) => u64::from(close.error_code),
        _ => return false,
    };
    code == NO_APPLICATION_PROTOCOL
}

/// The drafts the relay at `addr` speaks, found by raw-QUIC handshakes that offer every
/// [`KNOWN_ALPNS`] identifier not found yet (the relay picks one each time); newest first.
/// Empty when the relay picks none (or does not answer). `tls` is the client's TLS settings
/// (the relay's certificate is checked as for the real connection).
pub(crate) async fn probe_relay(
    endpoint: &quinn::Endpoint,
    addr: SocketAddr,
    host: &str,
    tls: &rustls::ClientConfig,
) -> Vec<u32> {
    let mut remaining: Vec<&str> = KNOWN_ALPNS.to_vec();
    let mut found = Vec::new();
    for _ in 0..MAX_PROBES {
        let Some(picked) = probe_once(endpoint, addr, host, tls, &remaining).await else {
            break;
        };
        remaining.retain(|alpn| *alpn != picked);
        found.extend(draft_of(&picked));
    }
    found.sort_unstable_by(|a, b| b.cmp(a));
    found.dedup();
    found
}

/// One handshake offering only `drafts` (in order of preference): the one the relay picks,
/// if it speaks one. What a WebTransport response that named no draft is settled with: one
/// handshake for a relay that speaks one of ours, where [`probe_relay`] takes up to four.
pub(crate) async fn probe_for(
    endpoint: &quinn::Endpoint,
    addr: SocketAddr,
    host: &str,
    tls: &rustls::ClientConfig,
    drafts: &[u32],
) -> Option<u32> {
    let alpns: Vec<String> = drafts.iter().map(|draft| alpn_of(*draft)).collect();
    let alpns: Vec<&str> = alpns.iter().map(String::as_str).collect();
    let picked = probe_once(endpoint, addr, host, tls, &alpns).await?;
    draft_of(&picked).filter(|draft| drafts.contains(draft))
}

/// One handshake offering `alpns`: the identifier the relay picked, if any.
async fn probe_once(
    endpoint: &quinn::Endpoint,
    addr: SocketAddr,
    host: &str,
    tls: &rustls::ClientConfig,
    alpns: &[&str],
) -> Option<String> {
    if alpns.is_empty() {
        return None;
    }
    let mut tls = tls.clone();
    tls.alpn_protocols = alpns.iter().map(|a| a.as_bytes().to_vec()).collect();
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls).ok()?;
    let config = quinn::ClientConfig::new(Arc::new(crypto));
    let connecting = endpoint.connect_with(config, addr, host).ok()?;
    let connection = tokio::time::timeout(PROBE_TIMEOUT, connecting)
        .await
        .ok()?
        .ok()?;
    let picked = negotiated_alpn(&connection);
    // Code 0 (no error): this was only a question.
    connection.close(0u32.into(), b"draft probe");
    picked
}

/// The ALPN identifier a finished handshake agreed, if any.
pub(crate) fn negotiated_alpn(connection: &quinn::Connection) -> Option<String> {
    let data = connection.handshake_data()?;
    let data = data
        .downcast::<quinn::crypto::rustls::HandshakeData>()
        .ok()?;
    data.protocol
        .map(|protocol| String::from_utf8_lossy(&protocol).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_name_their_draft() {
        assert_eq!(draft_of("moqt-18"), Some(18));
        assert_eq!(draft_of("moqt-16"), Some(16));
        assert_eq!(draft_of("moq-00"), Some(14));
        assert_eq!(draft_of("h3"), None);
        assert_eq!(draft_of("moqt-x"), None);
        assert_eq!(offered(), vec![18, 16]);
    }

    #[test]
    fn drafts_are_listed_for_a_reader() {
        assert_eq!(listed(&[]), "");
        assert_eq!(listed(&[18]), "18");
        assert_eq!(listed(&[16, 14]), "16 and 14");
        assert_eq!(listed(&[18, 16, 14]), "18, 16 and 14");
    }
}
