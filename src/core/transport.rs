//! QUIC endpoint, TLS and WebTransport/raw-QUIC session establishment (before MoQT SETUP).

use std::net::SocketAddr;
use std::sync::Arc;

use moq_transport::session::{transport::Session as TransportSession, Transport};
use web_transport_quinn::quinn;

use super::config::{redacted, ClientConfig, Scheme};
use super::error::ConnectError;

/// An established QUIC connection carrying a WebTransport (or raw) session.
pub(crate) struct Established {
    pub session: TransportSession,
    pub transport: Transport,
    pub endpoint: quinn::Endpoint,
    /// The QUIC connection under the session (for its statistics and close reason).
    pub connection: quinn::Connection,
    /// The MoQT draft agreed in the handshake.
    pub draft: u32,
    /// Over draft 16: how many requests the relay allows this session in all (it may raise
    /// it). `None`: no limit from the relay (draft 18 has none).
    pub requests_allowed: Option<Arc<std::sync::atomic::AtomicU64>>,
}

fn transport_config(config: &ClientConfig) -> Result<quinn::TransportConfig, ConnectError> {
    let mut transport = quinn::TransportConfig::default();
    let idle = quinn::IdleTimeout::try_from(config.idle_timeout).map_err(|_| {
        ConnectError::Config(super::error::ConfigError::InvalidSetting {
            name: "idle_timeout",
            reason: "too large".into(),
        })
    })?;
    transport.max_idle_timeout(Some(idle));
    transport.keep_alive_interval(Some(config.keep_alive_interval));
    // Streams the relay may have open to us at once: one per subgroup in flight (uni) and one
    // per request such as a SUBSCRIBE to a published track (bidi). quinn keeps a receive state
    // for every stream id in this window and recycles it, so the window also bounds that
    // memory: ~2,000 x a few hundred bytes per connection once warm (10x quinn's default of
    // 100 each, for bursts of short groups and many published tracks).
    transport.max_concurrent_uni_streams(1_000u32.into());
    transport.max_concurrent_bidi_streams(1_000u32.into());
    // Flow control: bounded (quinn's connection window is unbounded by default), so a reader
    // that stops (subscription receive budgets) makes the relay stop sending.
    let window = |bytes: u64| quinn::VarInt::from_u64(bytes).unwrap_or(quinn::VarInt::MAX);
    transport.receive_window(window(config.receive_window));
    transport.stream_receive_window(window(
        super::config::STREAM_RECEIVE_WINDOW.min(config.receive_window),
    ));
    Ok(transport)
}

/// Resolve, handshake (TLS 1.3 with the configured trust) and open the session.
/// Not bounded in time: the caller applies the connect timeout.
pub(crate) async fn establish(
    config: &ClientConfig,
    url: &url::Url,
    scheme: Scheme,
    claiming_sessions: Arc<super::claiming_session::PendingReaders>,
) -> Result<Established, ConnectError> {
    let shown = redacted(url);
    let transport_err = |reason: String| ConnectError::Transport {
        url: shown.clone(),
        reason,
    };

    let host = url.host_str().unwrap_or_default().to_string();
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(&host)
        .to_string();
    let port = url.port().unwrap_or(443);
    let addr = resolve(&host, port).await?;

    let mut tls = super::tls::client_config(&config.tls)?;
    // Kept for draft probes, which set their own ALPN lists.
    let base_tls = tls.clone();
    let offered = config.drafts.clone();
    tls.alpn_protocols = match scheme {
        Scheme::WebTransport => vec![web_transport_quinn::ALPN.as_bytes().to_vec()],
        // The relay picks one; the session follows its pick.
        Scheme::RawQuic => offered
            .iter()
            .map(|draft| super::drafts::alpn_of(*draft).into_bytes())
            .collect(),
    };
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls)
        .map_err(|err| transport_err(err.to_string()))?;
    let mut client_config = quinn::ClientConfig::new(Arc::new(crypto));
    client_config.transport_config(Arc::new(transport_config(config)?));

    let bind: SocketAddr = if addr.is_ipv6() {
        "[::]:0".parse().expect("static address")
    } else {
        "0.0.0.0:0".parse().expect("static address")
    };
    let endpoint =
        quinn::Endpoint::client(bind).map_err(|err| transport_err(format!("bind: {err}")))?;
    let connecting = endpoint
        .connect_with(client_config, addr, &host)
        .map_err(|err| transport_err(err.to_string()))?;
    let unsupported = |relay: Vec<u32>| ConnectError::UnsupportedDraft {
        url: shown.clone(),
        offered: offered.clone(),
        relay,
    };
    let connection = match connecting.await {
        Ok(connection) => connection,
        Err(err) if super::drafts::is_no_common_draft(&err) => {
            let relay = super::drafts::probe_relay(&endpoint, addr, &host, &base_tls).await;
            return Err(unsupported(relay));
        }
        Err(err) => return Err(classify(&shown, &err)),
    };

    let quic = connection.clone();
    let (session, transport) = match scheme {
        Scheme::WebTransport => {
            let mut request = web_transport_quinn::proto::ConnectRequest::new(url.clone());
            for draft in &offered {
                request = request.with_protocol(super::drafts::alpn_of(*draft));
            }
            let session = web_transport_quinn::Session::connect(connection, request)
                .await
                .map_err(|err| {
                    // A relay refusing our certificate closes the connection meanwhile.
                    if let Some(tls) = tls_failure(&shown, &quic) {
                        return tls;
                    }
                    match err {
                        web_transport_quinn::ClientError::Connection(err) => classify(&shown, &err),
                        web_transport_quinn::ClientError::HttpError(err) => ConnectError::Refused {
                            url: shown.clone(),
                            reason: format!("WebTransport CONNECT refused: {err}"),
                        },
                        other => transport_err(other.to_string()),
                    }
                })?;
            (session, Transport::WebTransport)
        }
        Scheme::RawQuic => (
            web_transport_quinn::Session::raw(
                connection,
                url.clone(),
                web_transport_quinn::proto::ConnectResponse::default(),
            ),
            Transport::RawQuic,
        ),
    };
    let draft = match scheme {
        Scheme::RawQuic => super::drafts::negotiated_alpn(&session)
            .as_deref()
            .and_then(super::drafts::draft_of),
        Scheme::WebTransport => session
            .response()
            .protocol
            .as_deref()
            .and_then(super::drafts::draft_of),
    };
    let draft = match draft {
        Some(draft) if offered.contains(&draft) => draft,
        Some(other) => return Err(unsupported(vec![other])),
        None => {
            // A WebTransport response that names no draft: a relay of a draft that predates
            // the header (draft-16 relays answer so), or one that just does not echo it. Ask
            // its raw-QUIC side (same address) before sending it a SETUP it cannot read.
            let draft = match super::drafts::probe_for(&endpoint, addr, &host, &base_tls, &offered)
                .await
            {
                Some(draft) => draft,
                None => {
                    // None of ours: which does it speak, for the error (none found: no
                    // raw-QUIC side to ask; try the first offered).
                    let relay = super::drafts::probe_relay(&endpoint, addr, &host, &base_tls).await;
                    if !relay.is_empty() {
                        return Err(unsupported(relay));
                    }
                    offered[0]
                }
            };
            log::debug!("{shown}: the WebTransport response named no MoQT draft; speaking {draft}");
            draft
        }
    };
    // The session's own URL, as `From<web_transport_quinn::Session>` takes it.
    let session_url = session.request().url.clone();
    let claiming = super::claiming_session::ClaimingSession::new(session, claiming_sessions);
    let (session, requests_allowed) = if draft == super::drafts::DRAFT_16 {
        let draft16 = super::draft16::Draft16Session::new(claiming);
        let allowed = draft16.requests_allowed();
        (TransportSession::new(draft16, session_url), Some(allowed))
    } else {
        (TransportSession::new(claiming, session_url), None)
    };
    Ok(Established {
        session,
        requests_allowed,
        transport,
        endpoint,
        connection: quic,
        draft,
    })
}

async fn resolve(host: &str, port: u16) -> Result<SocketAddr, ConnectError> {
    if let Ok(ip) = host.parse::<std::net::IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    let resolve_err = |reason: String| ConnectError::Resolve {
        host: host.to_string(),
        reason,
    };
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|err| resolve_err(err.to_string()))?
        .collect();
    // Prefer IPv4 for names like localhost that resolve to both: relays commonly bind v4.
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or_else(|| addrs.first())
        .copied()
        .ok_or_else(|| resolve_err("no addresses".into()))
}

/// Map a QUIC connection error to a typed connect error (TLS failures are crypto errors).
fn classify(url: &str, err: &quinn::ConnectionError) -> ConnectError {
    match err {
        quinn::ConnectionError::TransportError(e) if is_crypto(e.code) => ConnectError::Tls {
            url: url.to_string(),
            reason: e.reason.clone(),
        },
        quinn::ConnectionError::ConnectionClosed(close) if is_crypto(close.error_code) => {
            let alert = (u64::from(close.error_code) - 0x100) as u8;
            match client_certificate_alert(alert) {
                // The relay verifies one certificate only: ours.
                Some(name) => ConnectError::ClientCertificateRejected {
                    url: url.to_string(),
                    reason: format!("TLS alert {name} ({alert})"),
                },
                None => ConnectError::Tls {
                    url: url.to_string(),
                    reason: format!("relay rejected the handshake: {}", close.error_code),
                },
            }
        }
        quinn::ConnectionError::ConnectionClosed(close) => ConnectError::Refused {
            url: url.to_string(),
            reason: format!(
                "{} {}",
                close.error_code,
                String::from_utf8_lossy(&close.reason)
            ),
        },
        quinn::ConnectionError::ApplicationClosed(close) => ConnectError::Refused {
            url: url.to_string(),
            reason: format!(
                "code {} {}",
                close.error_code,
                String::from_utf8_lossy(&close.reason)
            ),
        },
        other => ConnectError::Transport {
            url: url.to_string(),
            reason: other.to_string(),
        },
    }
}

/// The TLS alerts (RFC 8446 §6.2) a server sends about the client's certificate, by name:
/// from a relay, they can only mean ours.
fn client_certificate_alert(alert: u8) -> Option<&'static str> {
    Some(match alert {
        42 => "bad_certificate",
        43 => "unsupported_certificate",
        44 => "certificate_revoked",
        45 => "certificate_expired",
        46 => "certificate_unknown",
        48 => "unknown_ca",
        116 => "certificate_required: the relay requires a client certificate",
        _ => return None,
    })
}

/// The handshake's verdict on a session that failed after QUIC connected: over TLS 1.3 a
/// relay checks the client's certificate after the client considers the handshake done, so
/// its refusal surfaces as a closed connection while the session is being set up.
pub(crate) fn tls_failure(url: &str, connection: &quinn::Connection) -> Option<ConnectError> {
    let reason = connection.close_reason()?;
    match classify(url, &reason) {
        err @ (ConnectError::Tls { .. } | ConnectError::ClientCertificateRejected { .. }) => {
            Some(err)
        }
        _ => None,
    }
}

fn is_crypto(code: quinn::TransportErrorCode) -> bool {
    let value = u64::from(code);
    (0x100..0x200).contains(&value)
}
