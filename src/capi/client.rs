//! `moq_client_*`, `moq_connect`, `moq_disconnect`, `moq_announce_namespace`,
//! `moq_subscribe_announces`.

use std::os::raw::{c_char, c_void};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::boundary::{self, opt_str_arg, str_arg, CError};
use super::types::*;
use crate::core::connection::lock;
use crate::core::{
    runtime, AnnounceError, Client, ClientConfig, ConfigError, ConnectError, ConnectionState,
    NamespaceEvent, RuntimeError,
};
use crate::delivery::{stopped, Gate, Worker};

/// What a `MoqClient` holds. Shared with its worker threads through `Arc`s so that a
/// destroy from inside a callback never frees memory a worker still uses.
pub(crate) struct ClientHandle {
    pub(crate) shared: Arc<ClientShared>,
}

pub(crate) struct ClientShared {
    /// Settings from `moq_client_create[_ex]` (and `moq_client_set_reconnect`); the URL
    /// comes with `moq_connect`.
    template: Mutex<ClientConfig>,
    /// The core client for the current URL.
    core: Mutex<Option<Client>>,
    connection: Mutex<Option<ConnectionCallback>>,
    announces: Mutex<Vec<AnnounceRegistration>>,
}

struct ConnectionCallback {
    callback: MoqConnectionCallback,
    user_data: UserData,
    gate: Arc<Gate>,
    monitor: Option<Worker>,
}

struct AnnounceRegistration {
    callback: MoqTrackCallback,
    user_data: UserData,
    gate: Arc<Gate>,
    worker: Option<Worker>,
}

impl ClientShared {
    pub(crate) fn connected_core(&self) -> Result<Client, CError> {
        lock(&self.core)
            .clone()
            .filter(Client::is_connected)
            .ok_or_else(|| {
                CError::new(
                    MoqResultCode::MOQ_ERROR_NOT_CONNECTED,
                    "not connected; call moq_connect first",
                )
            })
    }
}

/// Deliver `state` through `gate`. False once the gate is closed (the registration ended).
fn emit(
    gate: &Gate,
    callback: MoqConnectionCallback,
    user_data: UserData,
    state: MoqConnectionState,
) -> bool {
    match callback {
        Some(callback) => gate.run(|| {
            // SAFETY: a C function pointer supplied by the caller for exactly this use.
            unsafe { callback(user_data.ptr(), state) }
        }),
        None => true,
    }
}

pub(crate) fn runtime_error(err: RuntimeError) -> CError {
    match err {
        RuntimeError::BlockingOnRuntimeThread => CError::new(
            MoqResultCode::MOQ_ERROR_UNSUPPORTED,
            "blocking call made from a moq_ffi library thread (e.g. inside a callback that runs on the runtime); call it from your own thread",
        ),
        RuntimeError::Unavailable { reason } => CError::new(
            MoqResultCode::MOQ_ERROR_INTERNAL,
            format!("runtime unavailable: {reason}"),
        ),
    }
}

fn config_error(err: ConfigError) -> CError {
    CError::invalid(err.to_string())
}

fn connect_error(err: ConnectError) -> CError {
    use MoqResultCode::*;
    let code = match &err {
        ConnectError::Config(_) | ConnectError::AlreadyConnected => MOQ_ERROR_INVALID_ARGUMENT,
        ConnectError::Timeout { .. } => MOQ_ERROR_TIMEOUT,
        ConnectError::Tls { .. }
        | ConnectError::Resolve { .. }
        | ConnectError::Refused { .. }
        | ConnectError::Transport { .. }
        | ConnectError::Cancelled => MOQ_ERROR_CONNECTION_FAILED,
        ConnectError::Runtime(RuntimeError::BlockingOnRuntimeThread) => MOQ_ERROR_UNSUPPORTED,
        ConnectError::Runtime(_) => MOQ_ERROR_INTERNAL,
    };
    CError::new(code, err.to_string())
}

fn announce_error(err: AnnounceError) -> CError {
    use MoqResultCode::*;
    let code = match &err {
        AnnounceError::NotConnected => MOQ_ERROR_NOT_CONNECTED,
        AnnounceError::InvalidNamespace { .. } | AnnounceError::Duplicate { .. } => {
            MOQ_ERROR_INVALID_ARGUMENT
        }
        AnnounceError::Timeout { .. } => MOQ_ERROR_TIMEOUT,
        AnnounceError::Refused { .. } => MOQ_ERROR_CONNECTION_FAILED,
    };
    CError::new(code, err.to_string())
}

/// # Safety
/// `client` must be NULL or a live handle from `moq_client_create[_ex]`.
pub(crate) unsafe fn client_arg<'a>(client: *const MoqClient) -> Result<&'a ClientShared, CError> {
    // SAFETY: per the caller's contract.
    unsafe { client.as_ref() }
        .map(|c| &*c.inner.shared)
        .ok_or_else(|| CError::invalid("client is NULL"))
}

fn new_client(template: ClientConfig) -> *mut MoqClient {
    Box::into_raw(Box::new(MoqClient {
        inner: ClientHandle {
            shared: Arc::new(ClientShared {
                template: Mutex::new(template),
                core: Mutex::new(None),
                connection: Mutex::new(None),
                announces: Mutex::new(Vec::new()),
            }),
        },
    }))
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
                    .push(crate::core::config::parse_fingerprint(pin).map_err(config_error)?);
            }
        }
        template.tls.use_system_roots = !raw.disable_system_roots;
        template.tls.danger_accept_any_certificate = raw.danger_accept_any_certificate;
        let ms = |value: u32, default: Duration| {
            if value == 0 {
                default
            } else {
                Duration::from_millis(value.into())
            }
        };
        template.connect_timeout = ms(raw.connect_timeout_ms, template.connect_timeout);
        template.request_timeout = ms(raw.request_timeout_ms, template.request_timeout);
        template.rendezvous_timeout = ms(raw.rendezvous_timeout_ms, template.rendezvous_timeout);
        template.idle_timeout = ms(raw.idle_timeout_ms, template.idle_timeout);
        if template.keep_alive_interval * 2 > template.idle_timeout {
            template.keep_alive_interval = template.idle_timeout / 4;
        }
        if raw.max_object_size != 0 {
            template.max_object_size = usize::try_from(raw.max_object_size)
                .map_err(|_| CError::invalid("config.max_object_size is too large"))?;
        }
        // Check TLS inputs now so mistakes surface here, not at connect.
        let mut check = template.clone();
        check.url = "moqt://check.invalid".into();
        Client::new(check).map_err(config_error)?;
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
///
/// # Safety
/// `client` must be NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn moq_client_set_reconnect(
    client: *mut MoqClient,
    initial_delay_ms: u32,
    max_delay_ms: u32,
    max_attempts: u32,
) -> MoqResult {
    boundary::result("moq_client_set_reconnect", || {
        // SAFETY: per the contract.
        let shared = unsafe { client_arg(client) }?;
        let policy = (initial_delay_ms != 0).then(|| crate::core::ReconnectPolicy {
            initial_delay: Duration::from_millis(initial_delay_ms.into()),
            max_delay: Duration::from_millis(max_delay_ms.into()),
            max_attempts,
        });
        let mut config = lock(&shared.template).clone();
        config.reconnect = policy;
        config.url = "moqt://check.invalid".into();
        config.validate().map_err(config_error)?;
        lock(&shared.template).reconnect = policy;
        Ok(())
    })
}

/// Destroy a client: disconnects, stops every callback it owns (waiting for running ones,
/// unless called from inside one), and frees the handle. NULL is a no-op. Publishers and
/// subscribers created from it stay valid (they report not-connected) until destroyed.
///
/// # Safety
/// `client` must be NULL or a live handle; it is invalid after the call.
#[no_mangle]
pub unsafe extern "C" fn moq_client_destroy(client: *mut MoqClient) {
    boundary::value("moq_client_destroy", (), || {
        if client.is_null() {
            return Ok(());
        }
        // SAFETY: a live handle from Box::into_raw, per the contract.
        let client = unsafe { Box::from_raw(client) };
        let shared = &client.inner.shared;
        for mut registration in std::mem::take(&mut *lock(&shared.announces)) {
            if let Some(mut worker) = registration.worker.take() {
                worker.stop();
            }
            registration.gate.close();
        }
        if let Some(mut connection) = lock(&shared.connection).take() {
            if let Some(mut monitor) = connection.monitor.take() {
                monitor.stop();
            }
            connection.gate.close();
        }
        if let Some(core) = lock(&shared.core).take() {
            close_core(core);
        }
        Ok(())
    })
}

/// Close a core client from any thread: blocking where allowed, else in the background.
fn close_core(core: Client) {
    if runtime::on_runtime_thread() {
        tokio::spawn(async move { core.close().await });
    } else if let Err(err) = runtime::block_on(core.close()) {
        log::debug!("close: {err}");
    }
}

/// Connect to `url` (`moqt://host:port` or `https://host:port`), blocking until the outcome
/// is known (bounded by the connect timeout, which yields `MOQ_ERROR_TIMEOUT`).
/// `connection_callback` (may be NULL) receives CONNECTING, then CONNECTED or FAILED before
/// this returns, and later FAILED if the session is lost or DISCONNECTED on
/// `moq_disconnect`. It replaces any callback from a previous connect.
///
/// Errors: NULL client/url, unparsable URL or unsupported scheme, already connected:
/// `MOQ_ERROR_INVALID_ARGUMENT` (no callback fires); TLS/network/refusal:
/// `MOQ_ERROR_CONNECTION_FAILED`; called on a library runtime thread:
/// `MOQ_ERROR_UNSUPPORTED`. Free a failed result's message with `moq_free_str`.
///
/// # Safety
/// `client` must be NULL or a live handle; `url` NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn moq_connect(
    client: *mut MoqClient,
    url: *const c_char,
    connection_callback: MoqConnectionCallback,
    user_data: *mut c_void,
) -> MoqResult {
    boundary::result("moq_connect", || {
        // SAFETY: per the contract.
        let shared = unsafe { client_arg(client) }?;
        let url = unsafe { str_arg(url, "url") }?;
        let _ = crate::core::config::parse_url(url).map_err(config_error)?;
        if runtime::on_runtime_thread() {
            return Err(runtime_error(RuntimeError::BlockingOnRuntimeThread));
        }
        let existing = lock(&shared.core).clone();
        if existing.as_ref().is_some_and(Client::is_connected) {
            return Err(CError::invalid(
                "already connected; call moq_disconnect before connecting again",
            ));
        }
        let core = match existing.filter(|c| c.config().url == url) {
            Some(core) => core,
            None => {
                let mut config = lock(&shared.template).clone();
                config.url = url.to_string();
                let core = Client::new(config).map_err(config_error)?;
                let replaced = lock(&shared.core).replace(core.clone());
                if replaced.is_some() {
                    // Registrations follow the new client.
                    for registration in lock(&shared.announces).iter_mut() {
                        if let Some(mut worker) = registration.worker.take() {
                            worker.stop();
                        }
                    }
                }
                core
            }
        };

        // Install the connection callback (replacing and silencing the previous one).
        let gate = Arc::new(Gate::default());
        let user_data = UserData(user_data);
        let previous = lock(&shared.connection).replace(ConnectionCallback {
            callback: connection_callback,
            user_data,
            gate: gate.clone(),
            monitor: None,
        });
        if let Some(mut previous) = previous {
            if let Some(mut monitor) = previous.monitor.take() {
                monitor.stop();
            }
            previous.gate.close();
        }

        emit(
            &gate,
            connection_callback,
            user_data,
            MoqConnectionState::MOQ_STATE_CONNECTING,
        );
        let outcome = runtime::block_on(core.connect()).map_err(runtime_error)?;
        if let Err(err) = outcome {
            emit(
                &gate,
                connection_callback,
                user_data,
                MoqConnectionState::MOQ_STATE_FAILED,
            );
            return Err(connect_error(err));
        }
        emit(
            &gate,
            connection_callback,
            user_data,
            MoqConnectionState::MOQ_STATE_CONNECTED,
        );

        // Later changes (loss) are reported from a monitor thread with its own gate, so
        // teardown can stop it and still deliver DISCONNECTED through the connection gate.
        let monitor_core = core.clone();
        let monitor_gate = Arc::new(Gate::default());
        let body_gate = monitor_gate.clone();
        let monitor = Worker::spawn("moq-conn-mon", monitor_gate, move |stop| {
            let Ok(handle) = runtime::handle() else {
                return;
            };
            let mut states = monitor_core.state_watch();
            // Each change after CONNECTED (latest-value: a quick flip may be coalesced):
            // FAILED on a loss; with reconnection on, CONNECTING while reconnecting, then
            // CONNECTED (or FAILED on giving up). DISCONNECTED comes from moq_disconnect.
            let mut reported = ConnectionState::Connected;
            loop {
                let current = *states.borrow_and_update();
                if current == reported || current == ConnectionState::Disconnected {
                    let changed = handle.block_on(async {
                        tokio::select! {
                            _ = stopped(stop.clone()) => false,
                            res = states.changed() => res.is_ok(),
                        }
                    });
                    if !changed {
                        return;
                    }
                    continue;
                }
                reported = current;
                let state = match current {
                    ConnectionState::Connecting => MoqConnectionState::MOQ_STATE_CONNECTING,
                    ConnectionState::Connected => MoqConnectionState::MOQ_STATE_CONNECTED,
                    _ => MoqConnectionState::MOQ_STATE_FAILED,
                };
                if !emit(&body_gate, connection_callback, user_data, state) {
                    return;
                }
            }
        })
        .map_err(|err| {
            CError::new(
                MoqResultCode::MOQ_ERROR_INTERNAL,
                format!("cannot start thread: {err}"),
            )
        })?;
        if let Some(connection) = lock(&shared.connection).as_mut() {
            if Arc::ptr_eq(&connection.gate, &gate) {
                connection.monitor = Some(monitor);
            }
        }

        start_announce_workers(shared, &core);
        Ok(())
    })
}

/// Disconnect: withdraws announced namespaces, ends subscriptions, closes the session, and
/// delivers DISCONNECTED to the connection callback. OK if not connected.
/// Errors: NULL client: `MOQ_ERROR_INVALID_ARGUMENT`.
///
/// # Safety
/// `client` must be NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn moq_disconnect(client: *mut MoqClient) -> MoqResult {
    boundary::result("moq_disconnect", || {
        // SAFETY: per the contract.
        let shared = unsafe { client_arg(client) }?;
        let Some(core) = lock(&shared.core).clone() else {
            return Ok(());
        };
        // Stop the loss monitor first (outside the lock: it may be mid-callback).
        let (monitor, target) = {
            let mut connection = lock(&shared.connection);
            match connection.as_mut() {
                Some(c) => (
                    c.monitor.take(),
                    Some((c.callback, c.user_data, c.gate.clone())),
                ),
                None => (None, None),
            }
        };
        if let Some(mut monitor) = monitor {
            monitor.stop();
        }
        let was_connected = core.state() != ConnectionState::Disconnected;
        close_core(core);
        if let (true, Some((callback, user_data, gate))) = (was_connected, target) {
            emit(
                &gate,
                callback,
                user_data,
                MoqConnectionState::MOQ_STATE_DISCONNECTED,
            );
        }
        Ok(())
    })
}

/// Whether the client is connected (false for NULL). Accurate right after `moq_connect`
/// returns; turns false once a session loss is detected.
///
/// # Safety
/// `client` must be NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn moq_is_connected(client: *const MoqClient) -> bool {
    boundary::value("moq_is_connected", false, || {
        // SAFETY: per the contract.
        let shared = unsafe { client_arg(client) }?;
        Ok(lock(&shared.core)
            .as_ref()
            .is_some_and(Client::is_connected))
    })
}

/// Announce a namespace (`/`-separated tuple, e.g. `"room/alice"`), blocking until the relay
/// accepts it. Errors: NULL client or namespace, invalid UTF-8, duplicate:
/// `MOQ_ERROR_INVALID_ARGUMENT`; not connected: `MOQ_ERROR_NOT_CONNECTED`; no answer:
/// `MOQ_ERROR_TIMEOUT`; on a library runtime thread: `MOQ_ERROR_UNSUPPORTED`.
///
/// # Safety
/// `client` must be NULL or a live handle; `namespace_str` NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn moq_announce_namespace(
    client: *mut MoqClient,
    namespace_str: *const c_char,
) -> MoqResult {
    boundary::result("moq_announce_namespace", || {
        // SAFETY: per the contract.
        let shared = unsafe { client_arg(client) }?;
        let namespace = unsafe { str_arg(namespace_str, "namespace_str") }?;
        let core = shared.connected_core()?;
        runtime::block_on(core.announce(namespace))
            .map_err(runtime_error)?
            .map_err(announce_error)
    })
}

/// Receive namespaces announced by other publishers: `callback(user_data, namespace, "")`
/// for each (including those already announced when the registration starts). May be called
/// before `moq_connect`: it takes effect on connect and follows later reconnects. The
/// registration lasts until `moq_client_destroy`. NULL callback is allowed (no-op).
/// Errors: NULL client: `MOQ_ERROR_INVALID_ARGUMENT`.
///
/// # Safety
/// `client` must be NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn moq_subscribe_announces(
    client: *mut MoqClient,
    callback: MoqTrackCallback,
    user_data: *mut c_void,
) -> MoqResult {
    boundary::result("moq_subscribe_announces", || {
        // SAFETY: per the contract.
        let shared = unsafe { client_arg(client) }?;
        lock(&shared.announces).push(AnnounceRegistration {
            callback,
            user_data: UserData(user_data),
            gate: Arc::new(Gate::default()),
            worker: None,
        });
        if let Some(core) = lock(&shared.core).clone() {
            start_announce_workers(shared, &core);
        }
        Ok(())
    })
}

/// Give every registration without a worker a thread delivering from `core`.
fn start_announce_workers(shared: &ClientShared, core: &Client) {
    let mut registrations = lock(&shared.announces);
    for registration in registrations.iter_mut().filter(|r| r.worker.is_none()) {
        let gate = registration.gate.clone();
        let callback = registration.callback;
        let user_data = registration.user_data;
        let core = core.clone();
        let body_gate = gate.clone();
        let worker = Worker::spawn("moq-announces", gate, move |stop| {
            let Ok(handle) = runtime::handle() else {
                return;
            };
            let mut watch = {
                let _entered = handle.enter();
                core.watch_namespaces("")
            };
            loop {
                let event = handle.block_on(async {
                    tokio::select! {
                        _ = stopped(stop.clone()) => None,
                        event = watch.next() => event,
                    }
                });
                let Some(event) = event else { break };
                let NamespaceEvent::Announced(namespace) = event else {
                    continue;
                };
                let Some(callback) = callback else { continue };
                let namespace = std::ffi::CString::new(namespace).unwrap_or_default();
                let ran = body_gate.run(|| {
                    // SAFETY: caller-supplied function pointer; strings live for the call.
                    unsafe { callback(user_data.ptr(), namespace.as_ptr(), c"".as_ptr()) }
                });
                if !ran {
                    break;
                }
            }
            drop(watch);
        });
        match worker {
            Ok(worker) => registration.worker = Some(worker),
            Err(err) => log::error!("cannot start announce thread: {err}"),
        }
    }
}
