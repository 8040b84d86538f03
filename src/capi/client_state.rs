//! What a `MoqClient` handle stands for, and the connect / disconnect / destroy logic
//! behind `client.rs`'s entry points.
//!
//! Locks here guard plain data only: every callback is called, and every pump stopped
//! (which waits for callbacks in flight), after the lock that found it was released.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::boundary::CError;
use super::types::*;
use crate::bridge::gate::Gate;
use crate::bridge::pump::{Flow, Pump};
use crate::bridge::runtime::{self, RuntimeError};
use crate::bridge::sources::{Namespaces, StateChanges};
use crate::core::{Client, ClientConfig, ConnectionState, NamespaceEvent};
use crate::sync::lock;

/// The state behind one `MoqClient` handle.
pub(crate) struct ClientShared {
    /// Settings from `moq_client_create[_ex]` (and `moq_client_set_reconnect`); the URL
    /// comes with `moq_connect`.
    pub(crate) template: Mutex<ClientConfig>,
    /// The core client for the current URL.
    core: Mutex<Option<Client>>,
    connection: Mutex<Option<ConnectionCallback>>,
    announces: Mutex<Vec<AnnounceRegistration>>,
    /// Set by `moq_client_destroy` before it tears anything down.
    destroyed: AtomicBool,
    /// Counts `moq_disconnect`s and the destroy: a `moq_connect` that sees it change was
    /// overtaken (possibly by its own callback) and must not report success.
    closes: AtomicU64,
    /// The template changed since the core client was made from it (see
    /// [`ClientShared::update_template`]): the next connect makes a new one.
    template_changed: AtomicBool,
}

/// The connection callback of the latest `moq_connect`.
struct ConnectionCallback {
    callback: MoqConnectionCallback,
    user_data: UserData,
    /// States reported on the caller's thread (during connect and disconnect).
    gate: Arc<Gate>,
    /// Later changes (loss, reconnection), reported from a library thread.
    monitor: Option<Pump>,
}

/// One `moq_subscribe_announces` registration; its pump follows the current core client.
struct AnnounceRegistration {
    callback: MoqTrackCallback,
    user_data: UserData,
    pump: Option<Pump>,
}

/// Call a connection callback through `gate`. False once the gate is closed.
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

fn not_connected(message: &str) -> CError {
    CError::new(MoqResultCode::MOQ_ERROR_NOT_CONNECTED, message)
}

fn thread_error(err: std::io::Error) -> CError {
    CError::new(
        MoqResultCode::MOQ_ERROR_INTERNAL,
        format!("cannot start a library thread: {err}"),
    )
}

/// Close a core client from any thread: blocking where allowed, else in the background.
fn close_core(core: Client) {
    if runtime::on_runtime_thread() {
        core.runtime()
            .clone()
            .spawn(async move { core.close().await });
    } else if let Err(err) = runtime::block_on(core.close()) {
        log::debug!("close: {err}");
    }
}

/// Stop pumps after the lock that held them was released.
fn stop_all(pumps: impl IntoIterator<Item = Pump>) {
    for mut pump in pumps {
        pump.stop();
    }
}

impl ClientShared {
    pub(crate) fn new(template: ClientConfig) -> Self {
        Self {
            template: Mutex::new(template),
            core: Mutex::new(None),
            connection: Mutex::new(None),
            announces: Mutex::new(Vec::new()),
            destroyed: AtomicBool::new(false),
            closes: AtomicU64::new(0),
            template_changed: AtomicBool::new(false),
        }
    }

    /// Change the settings the next `moq_connect` uses. The current core client was made
    /// from the old ones, so the next connect replaces it even for the same URL.
    pub(crate) fn update_template(&self, change: impl FnOnce(&mut ClientConfig)) {
        change(&mut lock(&self.template));
        self.template_changed.store(true, Ordering::SeqCst);
    }

    /// The core client, if connected.
    pub(crate) fn connected_core(&self) -> Result<Client, CError> {
        lock(&self.core)
            .clone()
            .filter(Client::is_connected)
            .ok_or_else(|| not_connected("not connected; call moq_connect first"))
    }

    pub(crate) fn is_connected(&self) -> bool {
        lock(&self.core).as_ref().is_some_and(Client::is_connected)
    }

    /// The current core client's statistics; `None` before the first `moq_connect`.
    pub(crate) fn stats(&self) -> Option<crate::core::ConnectionStats> {
        lock(&self.core).as_ref().map(Client::stats)
    }

    /// The draft the current session agreed, if connected.
    pub(crate) fn negotiated_draft(&self) -> Option<u32> {
        lock(&self.core).as_ref().and_then(Client::negotiated_draft)
    }

    /// Which relay the current session is with (0: the `moq_connect` URL, then the fallback
    /// URLs), if connected.
    pub(crate) fn connected_relay(&self) -> Option<usize> {
        lock(&self.core)
            .as_ref()
            .and_then(Client::connected_relay)
            .map(|(index, _)| index)
    }

    /// `moq_connect`: see its documentation. Returns OK only if connected when it returns.
    pub(crate) fn connect(
        &self,
        url: &str,
        callback: MoqConnectionCallback,
        user_data: UserData,
    ) -> Result<(), CError> {
        let closes = self.closes.load(Ordering::SeqCst);
        let core = self.core_for(url)?;
        let gate = self.install_callback(callback, user_data);
        let report = |state| emit(&gate, callback, user_data, state);

        report(MoqConnectionState::MOQ_STATE_CONNECTING);
        self.still_wanted(closes)?;
        let outcome = runtime::block_on(core.connect()).map_err(CError::of)?;
        if let Err(err) = outcome {
            report(MoqConnectionState::MOQ_STATE_FAILED);
            return Err(CError::of(err));
        }
        if let Err(err) = self.still_wanted(closes) {
            close_core(core); // a disconnect or destroy raced the handshake
            return Err(err);
        }
        report(MoqConnectionState::MOQ_STATE_CONNECTED);
        self.still_wanted(closes)?;

        self.start_monitor(&core, &gate, callback, user_data)?;
        self.start_announce_pumps(&core);
        Ok(())
    }

    /// Fails if a disconnect or destroy happened since `closes` was read.
    fn still_wanted(&self, closes: u64) -> Result<(), CError> {
        if self.destroyed.load(Ordering::SeqCst) {
            return Err(not_connected(
                "the client was destroyed during moq_connect (e.g. from its connection callback)",
            ));
        }
        if self.closes.load(Ordering::SeqCst) != closes {
            return Err(not_connected(
                "moq_disconnect was called during moq_connect (e.g. from its connection callback)",
            ));
        }
        Ok(())
    }

    /// The token for the next session: kept in the template (for a new core client) and given
    /// to the current core client (for its next connect or reconnect).
    pub(crate) fn set_token(&self, token: Option<crate::core::Token>) {
        lock(&self.template).token = token.clone();
        let core = lock(&self.core).clone();
        if let Some(core) = core {
            core.set_token(token);
        }
    }

    /// The core client for `url`: the current one, or a new one replacing it.
    fn core_for(&self, url: &str) -> Result<Client, CError> {
        let existing = lock(&self.core).clone();
        if existing.as_ref().is_some_and(Client::is_connected) {
            return Err(CError::invalid(
                "already connected; call moq_disconnect before connecting again",
            ));
        }
        let drafts = lock(&self.template).drafts.clone();
        let changed = self.template_changed.swap(false, Ordering::SeqCst);
        if let Some(core) =
            existing.filter(|c| !changed && c.config().url == url && c.config().drafts == drafts)
        {
            return Ok(core);
        }
        let mut config = lock(&self.template).clone();
        config.url = url.to_string();
        let made = runtime::handle()
            .map_err(CError::of)
            .and_then(|handle| Client::with_runtime(config, handle).map_err(CError::of));
        let core = match made {
            Ok(core) => core,
            Err(err) => {
                // Not made: the next connect must still not reuse the old client.
                self.template_changed.store(changed, Ordering::SeqCst);
                return Err(err);
            }
        };
        let replaced = lock(&self.core).replace(core.clone());
        if replaced.is_some() {
            // Registrations follow the new client: their pumps restart on connect.
            let pumps: Vec<Pump> = lock(&self.announces)
                .iter_mut()
                .filter_map(|r| r.pump.take())
                .collect();
            stop_all(pumps);
        }
        Ok(core)
    }

    /// Make `callback` the connection callback, silencing the previous one (whose monitor
    /// is stopped outside the lock). Returns its gate.
    fn install_callback(&self, callback: MoqConnectionCallback, user_data: UserData) -> Arc<Gate> {
        let gate = Arc::new(Gate::default());
        let previous = lock(&self.connection).replace(ConnectionCallback {
            callback,
            user_data,
            gate: gate.clone(),
            monitor: None,
        });
        if let Some(mut previous) = previous {
            stop_all(previous.monitor.take());
            previous.gate.close();
        }
        gate
    }

    /// Report every later change after CONNECTED from a library thread: FAILED on a loss;
    /// with reconnection on, CONNECTING while reconnecting, then CONNECTED (or FAILED on
    /// giving up). DISCONNECTED comes from `moq_disconnect`.
    fn start_monitor(
        &self,
        core: &Client,
        gate: &Arc<Gate>,
        callback: MoqConnectionCallback,
        user_data: UserData,
    ) -> Result<(), CError> {
        let Some(callback) = callback else {
            return Ok(());
        };
        let mut reported = ConnectionState::Connected;
        let monitor = Pump::spawn(
            "moq-conn-mon",
            core.runtime().clone(),
            StateChanges::of(core),
            move |state, _| {
                if state == reported || state == ConnectionState::Disconnected {
                    return Flow::Continue;
                }
                reported = state;
                let state = match state {
                    ConnectionState::Connecting => MoqConnectionState::MOQ_STATE_CONNECTING,
                    ConnectionState::Connected => MoqConnectionState::MOQ_STATE_CONNECTED,
                    _ => MoqConnectionState::MOQ_STATE_FAILED,
                };
                // SAFETY: a C function pointer supplied by the caller for exactly this use.
                unsafe { callback(user_data.ptr(), state) };
                Flow::Continue
            },
        )
        .map_err(thread_error)?;
        let unused = {
            let mut connection = lock(&self.connection);
            match connection.as_mut() {
                Some(c) if Arc::ptr_eq(&c.gate, gate) && !self.destroyed.load(Ordering::SeqCst) => {
                    c.monitor.replace(monitor)
                }
                _ => Some(monitor), // replaced by a later connect, or destroyed meanwhile
            }
        };
        stop_all(unused);
        Ok(())
    }

    /// `moq_disconnect`: see its documentation.
    pub(crate) fn disconnect(&self) {
        self.closes.fetch_add(1, Ordering::SeqCst);
        let Some(core) = lock(&self.core).clone() else {
            return;
        };
        let (monitor, target) = {
            let mut connection = lock(&self.connection);
            match connection.as_mut() {
                Some(c) => (
                    c.monitor.take(),
                    Some((c.callback, c.user_data, c.gate.clone())),
                ),
                None => (None, None),
            }
        };
        stop_all(monitor);
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
    }

    /// `moq_client_destroy` (after the handle was unregistered): stop every callback this
    /// client owns (waiting for those running on other threads) and close the session.
    pub(crate) fn destroy(&self) {
        self.destroyed.store(true, Ordering::SeqCst);
        self.closes.fetch_add(1, Ordering::SeqCst);
        let registrations = std::mem::take(&mut *lock(&self.announces));
        stop_all(registrations.into_iter().filter_map(|r| r.pump));
        let connection = lock(&self.connection).take();
        if let Some(mut connection) = connection {
            stop_all(connection.monitor.take());
            connection.gate.close();
        }
        let core = lock(&self.core).take();
        if let Some(core) = core {
            close_core(core);
        }
    }

    /// `moq_subscribe_announces`: register, and deliver at once if a client exists.
    pub(crate) fn subscribe_announces(
        &self,
        callback: MoqTrackCallback,
        user_data: UserData,
    ) -> Result<(), CError> {
        {
            let mut registrations = lock(&self.announces);
            // Checked under the lock destroy takes the registrations under.
            if self.destroyed.load(Ordering::SeqCst) {
                return Err(CError::invalid("the client is being destroyed"));
            }
            registrations.push(AnnounceRegistration {
                callback,
                user_data,
                pump: None,
            });
        }
        let core = lock(&self.core).clone();
        if let Some(core) = core {
            self.start_announce_pumps(&core);
        }
        Ok(())
    }

    /// Give every registration without a pump one delivering from `core`. Spawning does not
    /// wait for the new threads, so holding the lock here cannot block on a callback.
    fn start_announce_pumps(&self, core: &Client) {
        let mut registrations = lock(&self.announces);
        for registration in registrations.iter_mut().filter(|r| r.pump.is_none()) {
            let (callback, user_data) = (registration.callback, registration.user_data);
            let source = Namespaces::of(core.clone(), String::new());
            let pump = Pump::spawn(
                "moq-announces",
                core.runtime().clone(),
                source,
                move |event, _| {
                    let (NamespaceEvent::Announced(namespace), Some(callback)) = (event, callback)
                    else {
                        return Flow::Continue;
                    };
                    let namespace = std::ffi::CString::new(namespace).unwrap_or_default();
                    // SAFETY: caller-supplied function pointer; strings live for the call.
                    unsafe { callback(user_data.ptr(), namespace.as_ptr(), c"".as_ptr()) };
                    Flow::Continue
                },
            );
            match pump {
                Ok(pump) => registration.pump = Some(pump),
                Err(err) => log::error!("cannot start the announce thread: {err}"),
            }
        }
    }
}

/// Whether a blocking entry point may run on this thread.
pub(crate) fn blocking_allowed() -> Result<(), CError> {
    if runtime::on_runtime_thread() {
        return Err(CError::of(RuntimeError::BlockingOnRuntimeThread));
    }
    Ok(())
}
