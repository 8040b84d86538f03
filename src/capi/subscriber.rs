//! `moq_subscribe`, `moq_subscribe_catalog`, `moq_unsubscribe`, `moq_is_subscribed`,
//! `moq_subscriber_destroy`, and the `moq_subscriber_wait_ready` extension.

use std::ffi::CString;
use std::os::raw::{c_char, c_void};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use super::boundary::{self, str_arg, CError};
use super::client::CLIENTS;
use super::client_state::{blocking_allowed, ClientShared};
use super::handles::Registry;
use super::types::*;
use crate::bridge::pump::{Delivery, Flow, Pump};
use crate::bridge::sources::{Subscription, SubscriptionEvent};
use crate::core::error::shown;
use crate::core::{self, catalog::catalog_or_skip, Object, SubscriberOptions, TrackInfo};
use crate::sync::lock;

/// Objects pulled from the core per wake-up: one runtime round trip per batch.
const BATCH: usize = 256;

/// The live `MoqSubscriber` handles.
static SUBSCRIBERS: Registry<SubscriberHandle> = Registry::new("subscriber");

/// What a `MoqSubscriber` handle stands for.
pub(crate) struct SubscriberHandle {
    status: Arc<Shared>,
    pump: Mutex<Option<Pump>>,
}

/// Subscription status, updated by the delivery thread.
struct Shared {
    status: Mutex<Status>,
    changed: Condvar,
}

#[derive(Default)]
struct Status {
    established: bool,
    ended: bool,
    /// `moq_unsubscribe` (or destroy) was called: wait_ready fails from then on, whether or
    /// not the subscription had been established.
    unsubscribed: bool,
    error: Option<CError>,
    /// The established subscription's counters.
    closer: Option<core::SubscriberCloser>,
}

impl Shared {
    fn update(&self, f: impl FnOnce(&mut Status)) {
        f(&mut lock(&self.status));
        self.changed.notify_all();
    }
}

/// What a delivery thread does with each object.
#[derive(Clone, Copy)]
enum Sink {
    Data(MoqDataCallback),
    Catalog(MoqCatalogCallback),
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
/// Strings must be NULL or NUL-terminated.
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
        let subscribe =
            unsafe { subscribe_data(client, namespace_str, track_name, data_callback, user_data) };
        subscribe(SubscriberOptions::default())
    })
}

/// Extension: as `moq_subscribe`, with options (`options->struct_size =
/// sizeof(MoqSubscribeOptions)`): the subscriber priority and the group order sent in
/// SUBSCRIBE, and the past groups to deliver first. `options` is read during the call only.
/// A struct from an older header (smaller `struct_size`) is read as far as it goes, the rest
/// zero. Returns NULL with `moq_last_error` set for what `moq_subscribe` refuses, a NULL
/// `options`, a `struct_size` smaller than the first release's (or larger, with fields this
/// library does not know set), or a `group_order` other than 0, 1, 2. With `past_groups`,
/// a past that cannot be fetched ends the subscription (`moq_subscriber_wait_ready` reports
/// why) when the relay said where the live objects start, and is otherwise logged and
/// counted in `groups_cut` (`moq_subscriber_stats`).
///
/// # Safety
/// Strings must be NULL or NUL-terminated; `options` NULL or a valid `MoqSubscribeOptions`.
#[no_mangle]
pub unsafe extern "C" fn moq_subscribe_with_options(
    client: *mut MoqClient,
    namespace_str: *const c_char,
    track_name: *const c_char,
    data_callback: MoqDataCallback,
    user_data: *mut c_void,
    options: *const MoqSubscribeOptions,
) -> *mut MoqSubscriber {
    boundary::value("moq_subscribe_with_options", std::ptr::null_mut(), || {
        // SAFETY: forwarded contract.
        let subscribe =
            unsafe { subscribe_data(client, namespace_str, track_name, data_callback, user_data) };
        // SAFETY: per the caller's contract.
        let raw = unsafe { sized_input(options, "options", "MoqSubscribeOptions") }?;
        let mut core_options = SubscriberOptions::default();
        if raw.has_priority {
            core_options.priority = raw.priority;
        }
        core_options.past_groups = raw.past_groups;
        core_options.group_order = match raw.group_order {
            0 => core::GroupOrder::Publisher,
            1 => core::GroupOrder::Ascending,
            2 => core::GroupOrder::Descending,
            other => {
                return Err(CError::invalid(format!(
                    "options->group_order {other} is not 0 (the publisher's), 1 (ascending) or 2 (descending)"
                )))
            }
        };
        subscribe(core_options)
    })
}

/// The data subscription `moq_subscribe[_with_options]` make, given its options.
///
/// # Safety
/// Strings must be NULL or NUL-terminated.
unsafe fn subscribe_data(
    client: *mut MoqClient,
    namespace_str: *const c_char,
    track_name: *const c_char,
    data_callback: MoqDataCallback,
    user_data: *mut c_void,
) -> impl FnOnce(SubscriberOptions) -> Result<*mut MoqSubscriber, CError> {
    move |options| {
        let shared = CLIENTS.get(client)?;
        // SAFETY: forwarded contract.
        let namespace = unsafe { str_arg(namespace_str, "namespace_str") }?;
        let track = unsafe { str_arg(track_name, "track_name") }?;
        start(
            &shared,
            namespace,
            track,
            Sink::Data(data_callback),
            UserData(user_data),
            options,
        )
    }
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
        let shared = CLIENTS.get(client)?;
        let namespace = unsafe { str_arg(namespace_str, "namespace_str") }?;
        let track = unsafe { str_arg(catalog_track_name, "catalog_track_name") }?;
        start(
            &shared,
            namespace,
            track,
            Sink::Catalog(callback),
            UserData(user_data),
            SubscriberOptions::default(),
        )
    })
}

fn start(
    client: &ClientShared,
    namespace: &str,
    track: &str,
    sink: Sink,
    user_data: UserData,
    options: SubscriberOptions,
) -> Result<*mut MoqSubscriber, CError> {
    // Names are checked here, so a bad one is a NULL return now rather than a failure
    // reported later by moq_subscriber_wait_ready.
    crate::core::names::check_track(namespace, track)
        .map_err(|invalid| CError::of(crate::core::SubscribeError::from(invalid)))?;
    let core = client.connected_core()?;
    let status = Arc::new(Shared {
        status: Mutex::new(Status::default()),
        changed: Condvar::new(),
    });
    let label = format!("'{}' / '{}'", shown(namespace), shown(track));
    let source = Subscription::open(
        core.clone(),
        namespace.to_string(),
        track.to_string(),
        options,
        BATCH,
    );
    let updates = status.clone();
    let pump = Pump::spawn(
        "moq-subscriber",
        core.runtime().clone(),
        source,
        move |event, delivery| match event {
            SubscriptionEvent::Established(closer) => {
                updates.update(|s| {
                    s.established = true;
                    s.closer = Some(closer);
                });
                Flow::Continue
            }
            SubscriptionEvent::Objects(objects) => {
                dispatch(sink, user_data, delivery, &objects);
                Flow::Continue
            }
            SubscriptionEvent::End(error) => {
                if let Some(err) = &error {
                    log::warn!("subscription to {label} ended: {err}");
                }
                updates.update(|s| {
                    s.ended = true;
                    s.error = error.map(CError::of);
                });
                Flow::Stop
            }
        },
    )
    .map_err(|err| {
        CError::new(
            MoqResultCode::MOQ_ERROR_INTERNAL,
            format!("cannot start delivery thread: {err}"),
        )
    })?;
    Ok(SUBSCRIBERS.insert(Arc::new(SubscriberHandle {
        status,
        pump: Mutex::new(Some(pump)),
    })))
}

/// Deliver a batch object by object, stopping early once the subscriber is being stopped.
fn dispatch(sink: Sink, user_data: UserData, delivery: &Delivery, objects: &[Object]) {
    for object in objects {
        if delivery.is_stopping() {
            return;
        }
        match sink {
            Sink::Data(None) | Sink::Catalog(None) => {}
            Sink::Data(Some(callback)) => {
                let (ptr, len) = if object.payload.is_empty() {
                    (std::ptr::null(), 0)
                } else {
                    (object.payload.as_ptr(), object.payload.len())
                };
                // SAFETY: caller-supplied function pointer; the payload outlives the call.
                unsafe { callback(user_data.ptr(), ptr, len) }
            }
            Sink::Catalog(Some(callback)) => {
                if let Some(tracks) = catalog_or_skip(object) {
                    with_track_infos(&tracks, |infos| {
                        // SAFETY: caller-supplied function pointer; the array and its
                        // strings outlive the call.
                        unsafe { callback(user_data.ptr(), infos.as_ptr(), infos.len()) }
                    });
                }
            }
        }
    }
}

/// Lay `tracks` out as C structs (valid during `f` only).
fn with_track_infos(tracks: &[TrackInfo], f: impl FnOnce(&[MoqTrackInfo])) {
    let c = |s: Option<&str>| s.map(|s| CString::new(s.replace('\0', "?")).unwrap_or_default());
    let owned: Vec<[Option<CString>; 4]> = tracks
        .iter()
        .map(|t| {
            [
                c(Some(&t.name)),
                c(t.codec.as_deref()),
                c(t.mime_type.as_deref()),
                c(t.language.as_deref()),
            ]
        })
        .collect();
    let ptr = |s: &Option<CString>| s.as_ref().map_or(std::ptr::null(), |s| s.as_ptr());
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
    f(&infos);
}

impl SubscriberHandle {
    fn stop(&self) {
        // Taken out first: the lock is free while stopping waits for a callback.
        let pump = lock(&self.pump).take();
        if let Some(mut pump) = pump {
            pump.stop();
        }
        self.status.update(|s| {
            s.ended = true;
            s.unsubscribed = true;
        });
    }
}

/// Unsubscribe. Idempotent. After it returns no data callback for this subscriber runs
/// (unless called from inside that callback, which returns at once without deadlock) and
/// `moq_is_subscribed` is false. Errors: NULL or destroyed subscriber:
/// `MOQ_ERROR_INVALID_ARGUMENT`.
#[no_mangle]
pub extern "C" fn moq_unsubscribe(subscriber: *mut MoqSubscriber) -> MoqResult {
    boundary::result("moq_unsubscribe", || {
        SUBSCRIBERS.get(subscriber)?.stop();
        Ok(())
    })
}

/// Whether the subscription is active (set up or being set up, and not ended). False for
/// NULL or a destroyed handle, after `moq_unsubscribe`, after the track ended, and after a
/// failure.
#[no_mangle]
pub extern "C" fn moq_is_subscribed(subscriber: *const MoqSubscriber) -> bool {
    boundary::value("moq_is_subscribed", false, || {
        Ok(!lock(&SUBSCRIBERS.get(subscriber)?.status.status).ended)
    })
}

/// Extension: ask the publisher for a new group (a decoder that lost its reference needs a
/// key frame). The relay forwards the request to the publisher, whose callback
/// (`MoqPublisherOptions.on_new_group_request`) starts a group. Blocks until the relay
/// accepted the request (bounded by the request timeout). Errors: NULL or destroyed
/// subscriber: `MOQ_ERROR_INVALID_ARGUMENT`; not established or ended:
/// `MOQ_ERROR_NOT_CONNECTED`; the publisher does not take new-group requests:
/// `MOQ_ERROR_CONNECTION_FAILED` (the message says so); no answer: `MOQ_ERROR_TIMEOUT`; on a
/// library runtime thread: `MOQ_ERROR_UNSUPPORTED`. Thread-safe; callable from its data
/// callback.
#[no_mangle]
pub extern "C" fn moq_subscriber_request_new_group(subscriber: *mut MoqSubscriber) -> MoqResult {
    boundary::result("moq_subscriber_request_new_group", || {
        blocking_allowed()?;
        let handle = SUBSCRIBERS.get(subscriber)?;
        let closer = lock(&handle.status.status).closer.clone().ok_or_else(|| {
            CError::new(
                MoqResultCode::MOQ_ERROR_NOT_CONNECTED,
                "the subscription is not established (moq_subscriber_wait_ready first)",
            )
        })?;
        crate::bridge::runtime::block_on(closer.request_new_group())
            .map_err(CError::of)?
            .map_err(CError::of)
    })
}

/// Extension: a snapshot of this subscription's counters into `*out` (set
/// `out->struct_size = sizeof(MoqSubscriptionStats)` first; on return it holds the bytes
/// filled): objects and bytes received,
/// dropped, groups cut, the current group, groups held for ordering, objects not yet
/// delivered. All 0 until the subscription is established. Errors: NULL or destroyed
/// subscriber, NULL `out`, or a `struct_size` smaller than the first published struct:
/// `MOQ_ERROR_INVALID_ARGUMENT`. Thread-safe; callable from inside its data callback.
///
/// # Safety
/// `out` must be NULL or point to a writable `MoqSubscriptionStats` of at least
/// `out->struct_size` bytes.
#[no_mangle]
pub unsafe extern "C" fn moq_subscriber_stats(
    subscriber: *const MoqSubscriber,
    out: *mut MoqSubscriptionStats,
) -> MoqResult {
    boundary::result("moq_subscriber_stats", || {
        let handle = SUBSCRIBERS.get(subscriber)?;
        let stats = lock(&handle.status.status)
            .closer
            .as_ref()
            .map(core::SubscriberCloser::stats)
            .unwrap_or_default();
        let value = MoqSubscriptionStats {
            struct_size: std::mem::size_of::<MoqSubscriptionStats>(),
            objects_received: stats.objects_received,
            bytes_received: stats.bytes_received,
            objects_dropped: stats.objects_dropped,
            groups_cut: stats.groups_cut,
            current_group: stats.current_group.unwrap_or(0),
            has_current_group: stats.current_group.is_some(),
            groups_held_for_ordering: stats.groups_held_for_ordering,
            buffered_objects: stats.buffered_objects,
        };
        // SAFETY: per the caller's contract.
        unsafe { write_sized(out, value, "out") }
    })
}

/// Extension: how many groups of this subscription were cut short upstream (a relay, the
/// publisher or the network reset a group's stream, or ended it mid-object): the rest of
/// each such group is lost, and delivery went on with the next group. Each is also logged as
/// a warning. In stream (reliable) mode this is the one way data is lost while the
/// subscription stays up. 0 for NULL, a destroyed handle, or a subscription not yet
/// established. Thread-safe.
#[no_mangle]
pub extern "C" fn moq_subscriber_cut_groups(subscriber: *const MoqSubscriber) -> u64 {
    boundary::value("moq_subscriber_cut_groups", 0, || {
        let handle = SUBSCRIBERS.get(subscriber)?;
        let status = lock(&handle.status.status);
        Ok(status
            .closer
            .as_ref()
            .map_or(0, |closer| closer.cut_groups()))
    })
}

/// Extension: wait up to `timeout_ms` until the subscription is established at the relay
/// (from then on every object published reaches it). Returns `MOQ_OK` once established;
/// `MOQ_ERROR_TIMEOUT` if still pending; the failure's code (e.g. `MOQ_ERROR_TIMEOUT` when
/// no publisher appeared, `MOQ_ERROR_NOT_CONNECTED`) if it failed or was unsubscribed.
#[no_mangle]
pub extern "C" fn moq_subscriber_wait_ready(
    subscriber: *const MoqSubscriber,
    timeout_ms: u32,
) -> MoqResult {
    boundary::result("moq_subscriber_wait_ready", || {
        let handle = SUBSCRIBERS.get(subscriber)?;
        let shared = &handle.status;
        let status = lock(&shared.status);
        let (status, _) = shared
            .changed
            .wait_timeout_while(status, Duration::from_millis(timeout_ms.into()), |s| {
                !s.established && !s.ended
            })
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if status.unsubscribed {
            return Err(CError::invalid(
                "the subscriber was unsubscribed (moq_unsubscribe): subscribe again",
            ));
        }
        if let Some(err) = &status.error {
            return Err(CError::new(err.code, err.message.clone()));
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

/// Unsubscribe (as `moq_unsubscribe`) and free the handle. NULL or an already-destroyed
/// handle is a no-op. Valid before or after its client's destroy, and from inside this
/// subscriber's own callback.
#[no_mangle]
pub extern "C" fn moq_subscriber_destroy(subscriber: *mut MoqSubscriber) {
    boundary::value("moq_subscriber_destroy", (), || {
        if let Some(handle) = SUBSCRIBERS.remove(subscriber) {
            handle.stop();
        }
        Ok(())
    })
}
