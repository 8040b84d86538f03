//! `moq_subscribe`, `moq_subscribe_catalog`, `moq_unsubscribe`, `moq_is_subscribed`,
//! `moq_subscriber_destroy`, and the `moq_subscriber_wait_ready` extension.

use std::ffi::CString;
use std::os::raw::{c_char, c_void};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use super::boundary::{self, str_arg, CError};
use super::client::client_arg;
use super::types::*;
use crate::core::connection::lock;
use crate::core::{parse_catalog, runtime, Client, Object, SubscribeError, SubscriberOptions};
use crate::delivery::{stopped, Gate, Worker};

/// Objects pulled from the core per wake-up: one runtime round trip per batch.
const BATCH: usize = 256;

/// What a `MoqSubscriber` holds.
pub(crate) struct SubscriberHandle {
    shared: Arc<Shared>,
    worker: Mutex<Option<Worker>>,
}

/// Subscription status, shared with the delivery thread.
struct Shared {
    status: Mutex<Status>,
    changed: Condvar,
}

#[derive(Default)]
struct Status {
    established: bool,
    ended: bool,
    error: Option<(MoqResultCode, String)>,
}

impl Shared {
    fn update(&self, f: impl FnOnce(&mut Status)) {
        f(&mut lock(&self.status));
        self.changed.notify_all();
    }
}

/// What a delivery thread does with each object.
enum Sink {
    Data(MoqDataCallback),
    Catalog(MoqCatalogCallback),
}

fn subscribe_error(err: &SubscribeError) -> (MoqResultCode, String) {
    use MoqResultCode::*;
    let code = match err {
        SubscribeError::NotConnected | SubscribeError::ConnectionLost => MOQ_ERROR_NOT_CONNECTED,
        SubscribeError::InvalidName { .. } | SubscribeError::AlreadySubscribed { .. } => {
            MOQ_ERROR_INVALID_ARGUMENT
        }
        SubscribeError::NotFound { .. } | SubscribeError::Timeout { .. } => MOQ_ERROR_TIMEOUT,
        SubscribeError::Refused { .. } | SubscribeError::PublisherLost { .. } => {
            MOQ_ERROR_CONNECTION_FAILED
        }
        SubscribeError::ObjectTooLarge { .. } | SubscribeError::SlowConsumer { .. } => {
            MOQ_ERROR_BUFFER_TOO_SMALL
        }
        // No legacy code means "limit reached"; the message names the limit.
        SubscribeError::TooManySubscriptions { .. } => MOQ_ERROR_UNSUPPORTED,
    };
    (code, err.to_string())
}

/// Subscribe to `track_name` in `namespace_str`. Returns at once with a handle; the
/// subscription is set up in the background (use `moq_subscriber_wait_ready` to wait for
/// it). Each object is delivered as one `data_callback(user_data, data, data_len)` on a
/// library thread, in order. A failure arriving later turns `moq_is_subscribed` false and is
/// logged. Returns NULL with `moq_last_error` set for NULL client/namespace/track, invalid
/// UTF-8, or not connected. NULL `data_callback` is allowed. Free with
/// `moq_subscriber_destroy`.
///
/// # Safety
/// `client` must be NULL or a live handle; strings NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn moq_subscribe(
    client: *mut MoqClient,
    namespace_str: *const c_char,
    track_name: *const c_char,
    data_callback: MoqDataCallback,
    user_data: *mut c_void,
) -> *mut MoqSubscriber {
    boundary::value("moq_subscribe", std::ptr::null_mut(), || {
        // SAFETY: forwarded contract.
        let shared = unsafe { client_arg(client) }?;
        let namespace = unsafe { str_arg(namespace_str, "namespace_str") }?;
        let track = unsafe { str_arg(track_name, "track_name") }?;
        let core = shared.connected_core()?;
        start(
            core,
            namespace,
            track,
            Sink::Data(data_callback),
            UserData(user_data),
        )
    })
}

/// Subscribe to a catalog track: each object is parsed as MoQ catalog JSON and delivered as
/// `callback(user_data, tracks, track_count)` (valid only during the call). Malformed
/// catalogs are logged and skipped. Same lifetime and errors as `moq_subscribe`.
///
/// # Safety
/// As `moq_subscribe`.
#[no_mangle]
pub unsafe extern "C" fn moq_subscribe_catalog(
    client: *mut MoqClient,
    namespace_str: *const c_char,
    catalog_track_name: *const c_char,
    callback: MoqCatalogCallback,
    user_data: *mut c_void,
) -> *mut MoqSubscriber {
    boundary::value("moq_subscribe_catalog", std::ptr::null_mut(), || {
        // SAFETY: forwarded contract.
        let shared = unsafe { client_arg(client) }?;
        let namespace = unsafe { str_arg(namespace_str, "namespace_str") }?;
        let track = unsafe { str_arg(catalog_track_name, "catalog_track_name") }?;
        let core = shared.connected_core()?;
        start(
            core,
            namespace,
            track,
            Sink::Catalog(callback),
            UserData(user_data),
        )
    })
}

fn start(
    core: Client,
    namespace: &str,
    track: &str,
    sink: Sink,
    user_data: UserData,
) -> Result<*mut MoqSubscriber, CError> {
    let shared = Arc::new(Shared {
        status: Mutex::new(Status::default()),
        changed: Condvar::new(),
    });
    let gate = Arc::new(Gate::default());
    let (namespace, track) = (namespace.to_string(), track.to_string());
    let body_shared = shared.clone();
    let body_gate = gate.clone();
    let worker = Worker::spawn("moq-subscriber", gate, move |stop| {
        deliver(
            core,
            namespace,
            track,
            sink,
            user_data,
            body_shared,
            body_gate,
            stop,
        )
    })
    .map_err(|err| {
        CError::new(
            MoqResultCode::MOQ_ERROR_INTERNAL,
            format!("cannot start delivery thread: {err}"),
        )
    })?;
    Ok(Box::into_raw(Box::new(MoqSubscriber {
        inner: SubscriberHandle {
            shared,
            worker: Mutex::new(Some(worker)),
        },
    })))
}

#[allow(clippy::too_many_arguments)]
fn deliver(
    core: Client,
    namespace: String,
    track: String,
    sink: Sink,
    user_data: UserData,
    shared: Arc<Shared>,
    gate: Arc<Gate>,
    stop: crate::delivery::Stop,
) {
    let Ok(handle) = runtime::handle() else {
        shared.update(|s| {
            s.ended = true;
            s.error = Some((
                MoqResultCode::MOQ_ERROR_INTERNAL,
                "runtime unavailable".into(),
            ));
        });
        return;
    };
    let subscribed = handle.block_on(async {
        tokio::select! {
            _ = stopped(stop.clone()) => None,
            result = core.subscribe(&namespace, &track, SubscriberOptions::default()) => Some(result),
        }
    });
    let mut subscriber = match subscribed {
        None => {
            shared.update(|s| s.ended = true);
            return;
        }
        Some(Err(err)) => {
            log::warn!("subscription to '{namespace}' / '{track}' failed: {err}");
            shared.update(|s| {
                s.ended = true;
                s.error = Some(subscribe_error(&err));
            });
            return;
        }
        Some(Ok(subscriber)) => subscriber,
    };
    shared.update(|s| s.established = true);

    let outcome = loop {
        let batch = handle.block_on(async {
            tokio::select! {
                _ = stopped(stop.clone()) => None,
                batch = subscriber.next_batch(BATCH) => Some(batch),
            }
        });
        match batch {
            None => break Ok(()),
            Some(Ok(objects)) if objects.is_empty() => break Ok(()),
            Some(Ok(objects)) => {
                if !dispatch(&sink, user_data, &gate, &objects) {
                    break Ok(());
                }
            }
            Some(Err(err)) => break Err(err),
        }
    };
    if let Err(err) = &outcome {
        log::warn!("subscription to '{namespace}' / '{track}' ended: {err}");
    }
    shared.update(|s| {
        s.ended = true;
        if let Err(err) = &outcome {
            s.error = Some(subscribe_error(err));
        }
    });
    handle.block_on(subscriber.close());
}

/// Deliver a batch; false once the gate is closed (unsubscribed).
fn dispatch(sink: &Sink, user_data: UserData, gate: &Gate, objects: &[Object]) -> bool {
    for object in objects {
        let ran = match sink {
            Sink::Data(None) => !gate.is_closed(),
            Sink::Data(Some(callback)) => {
                let (ptr, len) = if object.payload.is_empty() {
                    (std::ptr::null(), 0)
                } else {
                    (object.payload.as_ptr(), object.payload.len())
                };
                // SAFETY: caller-supplied function pointer; the payload outlives the call.
                gate.run(|| unsafe { callback(user_data.ptr(), ptr, len) })
            }
            Sink::Catalog(callback) => match parse_catalog(&object.payload) {
                Err(err) => {
                    log::warn!("skipping malformed catalog: {err}");
                    !gate.is_closed()
                }
                Ok(tracks) => match callback {
                    None => !gate.is_closed(),
                    Some(callback) => {
                        let owned: Vec<[Option<CString>; 5]> = tracks
                            .iter()
                            .map(|t| {
                                let c = |s: Option<&str>| {
                                    s.map(|s| {
                                        CString::new(s.replace('\0', "?")).unwrap_or_default()
                                    })
                                };
                                [
                                    c(Some(&t.name)),
                                    c(t.codec.as_deref()),
                                    c(t.mime_type.as_deref()),
                                    c(t.language.as_deref()),
                                    None,
                                ]
                            })
                            .collect();
                        let ptr = |s: &Option<CString>| {
                            s.as_ref().map_or(std::ptr::null(), |s| s.as_ptr())
                        };
                        let infos: Vec<MoqTrackInfo> = tracks
                            .iter()
                            .zip(&owned)
                            .map(|(t, strings)| MoqTrackInfo {
                                name: ptr(&strings[0]),
                                codec: ptr(&strings[1]),
                                mime_type: ptr(&strings[2]),
                                width: t.width,
                                height: t.height,
                                bitrate: t.bitrate,
                                sample_rate: t.sample_rate,
                                language: ptr(&strings[3]),
                            })
                            .collect();
                        // SAFETY: caller-supplied function pointer; the array and strings
                        // outlive the call.
                        gate.run(|| unsafe {
                            callback(user_data.ptr(), infos.as_ptr(), infos.len())
                        })
                    }
                },
            },
        };
        if !ran {
            return false;
        }
    }
    true
}

/// # Safety
/// `subscriber` must be NULL or a live handle.
unsafe fn handle_arg<'a>(subscriber: *const MoqSubscriber) -> Result<&'a SubscriberHandle, CError> {
    // SAFETY: per the caller's contract.
    unsafe { subscriber.as_ref() }
        .map(|s| &s.inner)
        .ok_or_else(|| CError::invalid("subscriber is NULL"))
}

impl SubscriberHandle {
    fn stop(&self) {
        let worker = lock(&self.worker).take();
        if let Some(mut worker) = worker {
            worker.stop();
        }
        self.shared.update(|s| s.ended = true);
    }
}

/// Unsubscribe. Idempotent. After it returns no data callback for this subscriber runs
/// (unless called from inside that callback, which returns at once without deadlock) and
/// `moq_is_subscribed` is false. Errors: NULL subscriber: `MOQ_ERROR_INVALID_ARGUMENT`.
///
/// # Safety
/// `subscriber` must be NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn moq_unsubscribe(subscriber: *mut MoqSubscriber) -> MoqResult {
    boundary::result("moq_unsubscribe", || {
        // SAFETY: per the contract.
        unsafe { handle_arg(subscriber) }?.stop();
        Ok(())
    })
}

/// Whether the subscription is active (set up or being set up, and not ended). False for
/// NULL, after `moq_unsubscribe`, after the track ended, and after a failure.
///
/// # Safety
/// `subscriber` must be NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn moq_is_subscribed(subscriber: *const MoqSubscriber) -> bool {
    boundary::value("moq_is_subscribed", false, || {
        // SAFETY: per the contract.
        let handle = unsafe { handle_arg(subscriber) }?;
        Ok(!lock(&handle.shared.status).ended)
    })
}

/// Extension: wait up to `timeout_ms` until the subscription is established at the relay
/// (from then on every object published reaches it). Returns `MOQ_OK` once established;
/// `MOQ_ERROR_TIMEOUT` if still pending; the failure's code (e.g. `MOQ_ERROR_TIMEOUT` when
/// no publisher appeared, `MOQ_ERROR_NOT_CONNECTED`) if it failed or was unsubscribed.
///
/// # Safety
/// `subscriber` must be NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn moq_subscriber_wait_ready(
    subscriber: *const MoqSubscriber,
    timeout_ms: u32,
) -> MoqResult {
    boundary::result("moq_subscriber_wait_ready", || {
        // SAFETY: per the contract.
        let handle = unsafe { handle_arg(subscriber) }?;
        let shared = &handle.shared;
        let status = lock(&shared.status);
        let (status, _) = shared
            .changed
            .wait_timeout_while(status, Duration::from_millis(timeout_ms.into()), |s| {
                !s.established && !s.ended
            })
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some((code, message)) = &status.error {
            return Err(CError::new(*code, message.clone()));
        }
        if status.established {
            return Ok(());
        }
        if status.ended {
            return Err(CError::invalid(
                "the subscription was closed before it was established",
            ));
        }
        Err(CError::new(
            MoqResultCode::MOQ_ERROR_TIMEOUT,
            format!("subscription not established within {timeout_ms} ms"),
        ))
    })
}

/// Unsubscribe (as `moq_unsubscribe`) and free the handle. NULL is a no-op. Valid before or
/// after its client's destroy.
///
/// # Safety
/// `subscriber` must be NULL or a live handle; it is invalid after the call.
#[no_mangle]
pub unsafe extern "C" fn moq_subscriber_destroy(subscriber: *mut MoqSubscriber) {
    boundary::value("moq_subscriber_destroy", (), || {
        if !subscriber.is_null() {
            // SAFETY: a live handle from Box::into_raw, per the contract.
            let subscriber = unsafe { Box::from_raw(subscriber) };
            subscriber.inner.stop();
        }
        Ok(())
    })
}
