//! `moq_client_*`, `moq_connect`, `moq_disconnect`, `moq_is_connected`,
//! `moq_announce_namespace`, `moq_subscribe_announces`: argument checks and one call each
//! into [`ClientShared`](super::client_state::ClientShared).

use std::os::raw::{c_char, c_void};
use std::sync::Arc;
use std::time::Duration;

use super::boundary::{self, opt_str_arg, str_arg, CError};
use super::client_state::{blocking_allowed, ClientShared};
use super::handles::Registry;
use super::types::*;
use crate::bridge::runtime;
use crate::core::{self, Client, ClientConfig};
use crate::sync::lock;

/// The live `MoqClient` handles.
pub(crate) static CLIENTS: Registry<ClientShared> = Registry::new("client");

fn new_client(template: ClientConfig) -> *mut MoqClient {
    CLIENTS.insert(Arc::new(ClientShared::new(template)))
}

/// The settings a `MoqClientConfig` asks for (zero fields: the core's defaults).
///
/// # Safety
/// String fields must be NULL or NUL-terminated.
unsafe fn template_from(raw: &MoqClientConfig) -> Result<ClientConfig, CError> {
    let mut template = ClientConfig::new("moqt://unset.invalid");
    // SAFETY: string fields per the caller's contract.
    unsafe {
        if let Some(pem) = opt_str_arg(raw.ca_cert_pem, "config.ca_cert_pem")? {
            template.tls.extra_ca_pem.push(pem.as_bytes().to_vec());
        }
        if let Some(path) = opt_str_arg(raw.ca_cert_file, "config.ca_cert_file")? {
            template.tls.extra_ca_files.push(path.into());
        }
        if let Some(pin) = opt_str_arg(raw.pinned_sha256, "config.pinned_sha256")? {
            template
                .tls
                .pinned_sha256
                .push(core::config::parse_fingerprint(pin).map_err(CError::of)?);
        }
    }
    template.tls.use_system_roots = !raw.disable_system_roots;
    template.tls.danger_accept_any_certificate = raw.danger_accept_any_certificate;
    let ms = |value: u32, default: Duration| match value {
        0 => default,
        ms => Duration::from_millis(ms.into()),
    };
    template.connect_timeout = ms(raw.connect_timeout_ms, template.connect_timeout);
    template.request_timeout = ms(raw.request_timeout_ms, template.request_timeout);
    template.rendezvous_timeout = ms(raw.rendezvous_timeout_ms, template.rendezvous_timeout);
    template.idle_timeout = ms(raw.idle_timeout_ms, template.idle_timeout);
    // C cannot choose the keep-alive: the core's rule for an unset one.
    template.keep_alive_interval = core::config::keep_alive_for(template.idle_timeout);
    if raw.max_object_size != 0 {
        template.max_object_size = usize::try_from(raw.max_object_size)
            .map_err(|_| CError::invalid("config.max_object_size is too large"))?;
    }
    Ok(template)
}

/// Create a client that trusts the system root certificates (honouring `SSL_CERT_FILE` and
/// `SSL_CERT_DIR`) with default timeouts. Free with `moq_client_destroy`. Returns NULL only
/// on internal failure (see `moq_last_error`). Thread-safe.
#[no_mangle]
pub extern "C" fn moq_client_create() -> *mut MoqClient {
    boundary::value("moq_client_create", std::ptr::null_mut(), || {
        super::strings::init_once();
        Ok(new_client(ClientConfig::new("moqt://unset.invalid")))
    })
}

/// Create a client with extra trust (CA certificates, fingerprint pinning), timeouts and a
/// maximum object size. `config` is read during the call only. Returns NULL with
/// `moq_last_error` set for a NULL config, a wrong `struct_size`, or invalid settings
/// (unparsable PEM, unreadable CA file, malformed fingerprint).
///
/// # Safety
/// `config` must be NULL or point to a `MoqClientConfig` whose string fields are NULL or
/// NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn moq_client_create_ex(config: *const MoqClientConfig) -> *mut MoqClient {
    boundary::value("moq_client_create_ex", std::ptr::null_mut(), || {
        super::strings::init_once();
        // SAFETY: per the caller's contract.
        let raw = unsafe { config.as_ref() }.ok_or_else(|| CError::invalid("config is NULL"))?;
        if raw.struct_size != std::mem::size_of::<MoqClientConfig>() {
            return Err(CError::invalid(format!(
                "config.struct_size is {} but this library expects {}; set it to sizeof(MoqClientConfig)",
                raw.struct_size,
                std::mem::size_of::<MoqClientConfig>()
            )));
        }
        // SAFETY: string fields per the caller's contract.
        let template = unsafe { template_from(raw) }?;
        // Check TLS inputs now so mistakes surface here, not at connect.
        let mut check = template.clone();
        check.url = "moqt://check.invalid".into();
        Client::with_runtime(check, runtime::handle().map_err(CError::of)?).map_err(CError::of)?;
        Ok(new_client(template))
    })
}

/// Reconnect automatically after the session is lost (off by default). Takes effect at the
/// next `moq_connect`. While reconnecting the connection callback receives CONNECTING, then
/// CONNECTED once a new session is up: announced namespaces are announced again, publishers
/// continue (their next object starts a new group) and subscribers receive again, in order
/// and without duplicates. Objects published while the session is down are not sent:
/// `moq_publish_data` fails with `MOQ_ERROR_NOT_CONNECTED`. Waits `initial_delay_ms` before
/// the first attempt, doubling up to `max_delay_ms`; after `max_attempts` failed attempts
/// (0 = no limit) it gives up with FAILED. `initial_delay_ms` 0 turns reconnection off.
/// Errors: NULL client or `max_delay_ms` < `initial_delay_ms`: `MOQ_ERROR_INVALID_ARGUMENT`.
/// Thread-safe.
#[no_mangle]
pub extern "C" fn moq_client_set_reconnect(
    client: *mut MoqClient,
    initial_delay_ms: u32,
    max_delay_ms: u32,
    max_attempts: u32,
) -> MoqResult {
    boundary::result("moq_client_set_reconnect", || {
        let shared = CLIENTS.get(client)?;
        let policy = (initial_delay_ms != 0).then(|| crate::core::ReconnectPolicy {
            initial_delay: Duration::from_millis(initial_delay_ms.into()),
            max_delay: Duration::from_millis(max_delay_ms.into()),
            max_attempts,
        });
        let mut config = lock(&shared.template).clone();
        config.reconnect = policy;
        config.url = "moqt://check.invalid".into();
        config.validate().map_err(CError::of)?;
        shared.update_template(|template| template.reconnect = policy);
        Ok(())
    })
}

/// Extension: the MoQT drafts to offer at the next `moq_connect` (and each reconnect), in
/// order of preference: `count` numbers at `drafts` (e.g. `{18}`); NULL with `count` 0
/// restores the default, every draft this library speaks, newest first (18, then 16). The
/// relay picks one (`moq_client_negotiated_draft` says which); a relay that speaks none of
/// them fails `moq_connect` with `MOQ_ERROR_CONNECTION_FAILED` and a `moq_last_error` naming
/// both sides' drafts. Errors: NULL client, NULL `drafts` with a nonzero `count`, or a draft
/// this library does not speak: `MOQ_ERROR_INVALID_ARGUMENT`. Thread-safe.
///
/// # Safety
/// `drafts` must be NULL or point to `count` readable `uint32_t`.
#[no_mangle]
pub unsafe extern "C" fn moq_client_set_drafts(
    client: *mut MoqClient,
    drafts: *const u32,
    count: usize,
) -> MoqResult {
    boundary::result("moq_client_set_drafts", || {
        let shared = CLIENTS.get(client)?;
        let drafts = match (drafts.is_null(), count) {
            (_, 0) => crate::core::drafts::offered(),
            (true, _) => return Err(CError::invalid("drafts is NULL but count is not 0")),
            // SAFETY: per the caller's contract (non-NULL, `count` elements).
            (false, _) => unsafe { std::slice::from_raw_parts(drafts, count) }.to_vec(),
        };
        let mut config = lock(&shared.template).clone();
        config.drafts = drafts.clone();
        config.url = "moqt://check.invalid".into();
        config.validate().map_err(CError::of)?;
        lock(&shared.template).drafts = drafts;
        Ok(())
    })
}

/// Extension: other relays of the same cluster, tried after the URL given to `moq_connect`,
/// in order: `count` URLs at `urls` (`moqt://` or `https://`, at most 16); NULL with `count`
/// 0 removes them. Takes effect at the next `moq_connect`. `moq_connect` tries its URL, then
/// each of these, until one accepts (each bounded by the connect timeout); with
/// `moq_client_set_reconnect` on, a lost session moves to the relay after the one it lost
/// (then the others, the lost one last) and announces and subscribes again there. The TLS
/// settings and token apply to every relay. `moq_client_connected_relay` says which relay is
/// in use. Errors: NULL client, NULL `urls` with a nonzero `count`, a NULL, non-UTF-8 or
/// unparsable URL, or more than 16: `MOQ_ERROR_INVALID_ARGUMENT` (nothing changed).
/// Thread-safe.
///
/// # Safety
/// `urls` must be NULL or point to `count` readable pointers, each NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn moq_client_set_fallback_urls(
    client: *mut MoqClient,
    urls: *const *const c_char,
    count: usize,
) -> MoqResult {
    boundary::result("moq_client_set_fallback_urls", || {
        let shared = CLIENTS.get(client)?;
        let urls: Vec<String> = match (urls.is_null(), count) {
            (_, 0) => Vec::new(),
            (true, _) => return Err(CError::invalid("urls is NULL but count is not 0")),
            (false, count) if count > core::config::MAX_FALLBACK_URLS => {
                return Err(CError::invalid(format!(
                    "{count} fallback URLs: at most {}",
                    core::config::MAX_FALLBACK_URLS
                )))
            }
            // SAFETY: per the caller's contract (non-NULL, `count` pointers, each NULL or
            // NUL-terminated).
            (false, _) => unsafe { std::slice::from_raw_parts(urls, count) }
                .iter()
                .map(|&url| unsafe { str_arg(url, "urls[i]") }.map(str::to_owned))
                .collect::<Result<_, _>>()?,
        };
        let mut config = lock(&shared.template).clone();
        config.fallback_urls = urls.clone();
        config.url = "moqt://check.invalid".into();
        config.validate().map_err(CError::of)?;
        shared.update_template(|template| template.fallback_urls = urls);
        Ok(())
    })
}

/// Extension: which relay the session is with while connected: 0 for the URL given to
/// `moq_connect`, 1 and up for the fallback URLs (`moq_client_set_fallback_urls`, in their
/// order). Follows reconnects, which may move to another relay. -1 for NULL, a destroyed
/// handle, or a client not connected. Thread-safe.
#[no_mangle]
pub extern "C" fn moq_client_connected_relay(client: *const MoqClient) -> i32 {
    boundary::value("moq_client_connected_relay", -1, || {
        Ok(CLIENTS
            .get(client)?
            .connected_relay()
            .map_or(-1, |index| i32::try_from(index).unwrap_or(i32::MAX)))
    })
}

/// Extension: the authorization token to present at session setup (SETUP's AUTHORIZATION
/// TOKEN), for relays with authorization on: the base64url text the relay's issuer hands out
/// (a Common Access Token); NULL removes it. Takes effect at the next `moq_connect` and at
/// each automatic reconnect. Relays that take the token in the URL (`?jwt=...`, a path
/// segment) need only the URL given to `moq_connect`. A relay that refuses the credentials
/// fails `moq_connect` with `MOQ_ERROR_CONNECTION_FAILED` and a message saying so (and a
/// request the token does not allow fails the same way). The library never logs the token.
/// Errors: NULL client, invalid UTF-8, or text that is not base64url:
/// `MOQ_ERROR_INVALID_ARGUMENT` (the message does not contain the token). Thread-safe.
///
/// # Safety
/// `token` must be NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn moq_client_set_token(
    client: *mut MoqClient,
    token: *const c_char,
) -> MoqResult {
    boundary::result("moq_client_set_token", || {
        let shared = CLIENTS.get(client)?;
        // SAFETY: per the caller's contract.
        let text = unsafe { opt_str_arg(token, "token") }?;
        let token = text
            .map(crate::core::Token::parse)
            .transpose()
            .map_err(CError::of)?;
        shared.set_token(token);
        Ok(())
    })
}

/// Extension: the client certificate (and its private key) to present to relays that require
/// one (mutual TLS), as PEM text; NULL for both removes it. Takes effect at the next
/// `moq_connect` and each automatic reconnect. A relay that refuses the certificate (or
/// requires one and none is set) fails `moq_connect` with `MOQ_ERROR_CONNECTION_FAILED` and a
/// `moq_last_error` saying the relay refused the client certificate. The library never logs
/// the key. Errors: NULL client, only one of the two given, invalid UTF-8, no PEM
/// certificate, no usable private key, or a key that does not match the certificate:
/// `MOQ_ERROR_INVALID_ARGUMENT`. Thread-safe.
///
/// # Safety
/// `certificate_pem` and `key_pem` must be NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn moq_client_set_client_certificate(
    client: *mut MoqClient,
    certificate_pem: *const c_char,
    key_pem: *const c_char,
) -> MoqResult {
    boundary::result("moq_client_set_client_certificate", || {
        let shared = CLIENTS.get(client)?;
        // SAFETY: per the caller's contract.
        let (chain, key) = unsafe {
            (
                opt_str_arg(certificate_pem, "certificate_pem")?,
                opt_str_arg(key_pem, "key_pem")?,
            )
        };
        let pem = |text: &str| core::PemSource::Pem(text.as_bytes().to_vec());
        set_client_certificate(&shared, chain.map(pem), key.map(pem))
    })
}

/// Extension: as `moq_client_set_client_certificate`, with the certificate chain and the key
/// read from PEM files: now (a mistake fails here) and again at each connect and reconnect,
/// so a certificate renewed on disk is picked up. NULL for both removes it. Errors: as
/// `moq_client_set_client_certificate`, and an unreadable file. Thread-safe.
///
/// # Safety
/// `certificate_file` and `key_file` must be NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn moq_client_set_client_certificate_files(
    client: *mut MoqClient,
    certificate_file: *const c_char,
    key_file: *const c_char,
) -> MoqResult {
    boundary::result("moq_client_set_client_certificate_files", || {
        let shared = CLIENTS.get(client)?;
        // SAFETY: per the caller's contract.
        let (chain, key) = unsafe {
            (
                opt_str_arg(certificate_file, "certificate_file")?,
                opt_str_arg(key_file, "key_file")?,
            )
        };
        let file = |path: &str| core::PemSource::File(path.into());
        set_client_certificate(&shared, chain.map(file), key.map(file))
    })
}

/// Check and store a client certificate for the next connect (both parts or neither).
fn set_client_certificate(
    shared: &ClientShared,
    chain: Option<core::PemSource>,
    key: Option<core::PemSource>,
) -> Result<(), CError> {
    let certificate = match (chain, key) {
        (Some(chain), Some(key)) => Some(core::ClientCertificate { chain, key }),
        (None, None) => None,
        _ => {
            return Err(CError::invalid(
                "give both the client certificate and its key (or NULL for both to remove it)",
            ))
        }
    };
    let mut check = lock(&shared.template).clone();
    check.tls.client_certificate = certificate.clone();
    check.url = "moqt://check.invalid".into();
    Client::with_runtime(check, runtime::handle().map_err(CError::of)?).map_err(CError::of)?;
    shared.update_template(|template| template.tls.client_certificate = certificate);
    Ok(())
}

/// Extension: a snapshot of the connection's statistics into `*out` (set
/// `out->struct_size = sizeof(MoqStats)` first; on return it holds the bytes filled): state, draft, reconnects, RTT, congestion
/// window, bytes and packets each way, losses, datagrams. Cheap: call it as often as needed.
/// Before any `moq_connect` the state is DISCONNECTED and the figures 0. Errors: NULL or
/// destroyed client, NULL `out`, or a `struct_size` smaller than the first published
/// `MoqStats`: `MOQ_ERROR_INVALID_ARGUMENT`. Thread-safe.
///
/// # Safety
/// `out` must be NULL or point to a writable `MoqStats` of at least `out->struct_size` bytes.
#[no_mangle]
pub unsafe extern "C" fn moq_client_stats(
    client: *const MoqClient,
    out: *mut MoqStats,
) -> MoqResult {
    boundary::result("moq_client_stats", || {
        let shared = CLIENTS.get(client)?;
        let stats = shared.stats();
        let value = MoqStats {
            struct_size: std::mem::size_of::<MoqStats>(),
            state: stats.map_or(MoqConnectionState::MOQ_STATE_DISCONNECTED, |s| {
                s.state.into()
            }),
            draft: stats.and_then(|s| s.draft).unwrap_or(0),
            reconnects: stats.map_or(0, |s| s.reconnects),
            rtt_us: stats.map_or(0, |s| u64::try_from(s.rtt.as_micros()).unwrap_or(u64::MAX)),
            congestion_window: stats.map_or(0, |s| s.congestion_window),
            bytes_sent: stats.map_or(0, |s| s.bytes_sent),
            bytes_received: stats.map_or(0, |s| s.bytes_received),
            packets_sent: stats.map_or(0, |s| s.packets_sent),
            packets_received: stats.map_or(0, |s| s.packets_received),
            packets_lost: stats.map_or(0, |s| s.packets_lost),
            congestion_events: stats.map_or(0, |s| s.congestion_events),
            datagrams_sent: stats.map_or(0, |s| s.datagrams_sent),
            datagrams_received: stats.map_or(0, |s| s.datagrams_received),
            datagrams_dropped: stats.map_or(0, |s| s.datagrams_dropped),
        };
        // SAFETY: per the caller's contract.
        unsafe { write_sized(out, value, "out") }
    })
}

/// Destroy a client: disconnects, stops every callback it owns (waiting for running ones,
/// unless called from inside one, which is allowed: it returns at once and no callback of
/// this client starts after), and frees the handle. NULL or an already-destroyed handle is
/// a no-op. Publishers and subscribers created from it stay valid (they report
/// not-connected) until destroyed. Thread-safe.
#[no_mangle]
pub extern "C" fn moq_client_destroy(client: *mut MoqClient) {
    boundary::value("moq_client_destroy", (), || {
        if let Some(shared) = CLIENTS.remove(client) {
            shared.destroy();
        }
        Ok(())
    })
}

/// Connect to `url` (`moqt://host:port` or `https://host:port`), blocking until the outcome
/// is known (bounded by the connect timeout, which yields `MOQ_ERROR_TIMEOUT`).
/// `connection_callback` (may be NULL) receives CONNECTING, then CONNECTED or FAILED before
/// this returns, and later FAILED if the session is lost (with reconnection on: CONNECTING
/// while reconnecting, then CONNECTED or FAILED), or DISCONNECTED on `moq_disconnect`. It
/// replaces any callback from a previous connect. Returns `MOQ_OK` only if the client is
/// connected when it returns: a `moq_disconnect` or `moq_client_destroy` during the call
/// (from the callback or another thread) makes it `MOQ_ERROR_NOT_CONNECTED`. Called while
/// the client is reconnecting by itself, it joins that attempt.
///
/// Errors: NULL client/url, a stale handle, unparsable URL or unsupported scheme, already
/// connected: `MOQ_ERROR_INVALID_ARGUMENT` (no callback fires); TLS/network/refusal:
/// `MOQ_ERROR_CONNECTION_FAILED`; called on a library runtime thread:
/// `MOQ_ERROR_UNSUPPORTED`. Free a failed result's message with `moq_free_str`.
///
/// # Safety
/// `url` must be NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn moq_connect(
    client: *mut MoqClient,
    url: *const c_char,
    connection_callback: MoqConnectionCallback,
    user_data: *mut c_void,
) -> MoqResult {
    boundary::result("moq_connect", || {
        let shared = CLIENTS.get(client)?;
        // SAFETY: per the contract.
        let url = unsafe { str_arg(url, "url") }?;
        core::config::parse_url(url).map_err(CError::of)?;
        blocking_allowed()?;
        shared.connect(url, connection_callback, UserData(user_data))
    })
}

/// Disconnect: withdraws announced namespaces, ends subscriptions, closes the session, and
/// delivers DISCONNECTED to the connection callback. OK if not connected. Allowed from
/// inside any callback. Errors: NULL or stale client: `MOQ_ERROR_INVALID_ARGUMENT`.
#[no_mangle]
pub extern "C" fn moq_disconnect(client: *mut MoqClient) -> MoqResult {
    boundary::result("moq_disconnect", || {
        CLIENTS.get(client)?.disconnect();
        Ok(())
    })
}

/// Whether the client is connected (false for NULL or a stale handle). Accurate right
/// after `moq_connect` returns; turns false once a session loss is detected.
#[no_mangle]
pub extern "C" fn moq_is_connected(client: *const MoqClient) -> bool {
    boundary::value("moq_is_connected", false, || {
        Ok(CLIENTS.get(client)?.is_connected())
    })
}

/// Extension: the MoQT draft agreed with the relay (18 or 16) while connected; 0 for NULL, a
/// destroyed handle, or a client not connected. Follows reconnects. A relay that speaks none
/// of this client's drafts fails `moq_connect` with `MOQ_ERROR_CONNECTION_FAILED` and a
/// `moq_last_error` naming both sides' drafts. Thread-safe.
#[no_mangle]
pub extern "C" fn moq_client_negotiated_draft(client: *const MoqClient) -> u32 {
    boundary::value("moq_client_negotiated_draft", 0, || {
        Ok(CLIENTS.get(client)?.negotiated_draft().unwrap_or(0))
    })
}

/// Announce a namespace (`/`-separated tuple, e.g. `"room/alice"`), blocking until the relay
/// accepts it. Errors: NULL or stale client, NULL namespace, invalid UTF-8, duplicate:
/// `MOQ_ERROR_INVALID_ARGUMENT`; not connected: `MOQ_ERROR_NOT_CONNECTED`; no answer:
/// `MOQ_ERROR_TIMEOUT`; on a library runtime thread: `MOQ_ERROR_UNSUPPORTED`.
///
/// # Safety
/// `namespace_str` must be NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn moq_announce_namespace(
    client: *mut MoqClient,
    namespace_str: *const c_char,
) -> MoqResult {
    boundary::result("moq_announce_namespace", || {
        let shared = CLIENTS.get(client)?;
        // SAFETY: per the contract.
        let namespace = unsafe { str_arg(namespace_str, "namespace_str") }?;
        let core = shared.connected_core()?;
        runtime::block_on(core.announce(namespace))
            .map_err(CError::of)?
            .map_err(CError::of)
    })
}

/// Receive namespaces announced by other publishers: `callback(user_data, namespace, "")`
/// for each (including those already announced when the registration starts), on a library
/// thread. May be called before `moq_connect`: it takes effect on connect and follows later
/// reconnects. The registration lasts until `moq_client_destroy`. NULL callback is allowed
/// (no-op). Errors: NULL or stale client: `MOQ_ERROR_INVALID_ARGUMENT`.
#[no_mangle]
pub extern "C" fn moq_subscribe_announces(
    client: *mut MoqClient,
    callback: MoqTrackCallback,
    user_data: *mut c_void,
) -> MoqResult {
    boundary::result("moq_subscribe_announces", || {
        CLIENTS
            .get(client)?
            .subscribe_announces(callback, UserData(user_data))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zeroed() -> MoqClientConfig {
        MoqClientConfig {
            struct_size: std::mem::size_of::<MoqClientConfig>(),
            ca_cert_pem: std::ptr::null(),
            ca_cert_file: std::ptr::null(),
            pinned_sha256: std::ptr::null(),
            disable_system_roots: false,
            danger_accept_any_certificate: false,
            connect_timeout_ms: 0,
            request_timeout_ms: 0,
            rendezvous_timeout_ms: 0,
            idle_timeout_ms: 0,
            max_object_size: 0,
        }
    }

    #[test]
    fn a_zeroed_c_config_means_the_core_defaults() {
        // SAFETY: no strings.
        let template = unsafe { template_from(&zeroed()) }.unwrap();
        assert_eq!(
            format!("{template:?}"),
            format!("{:?}", ClientConfig::new("moqt://unset.invalid"))
        );
    }

    #[test]
    fn a_short_idle_timeout_gets_the_same_keep_alive_as_in_uniffi() {
        let raw = MoqClientConfig {
            idle_timeout_ms: 1_000,
            ..zeroed()
        };
        // SAFETY: no strings.
        let template = unsafe { template_from(&raw) }.unwrap();
        assert_eq!(template.keep_alive_interval, Duration::from_millis(250));
        template.validate().unwrap();
    }
}
