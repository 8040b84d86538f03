//! `moq_create_publisher[_ex]`, `moq_publish_data`, `moq_publisher_destroy`.

use std::os::raw::c_char;
use std::sync::Arc;

use super::boundary::{self, str_arg, CError};
use super::client::CLIENTS;
use super::handles::Registry;
use super::types::*;
use crate::bridge::publish::publish_blocking;
use crate::bridge::pump::{Flow, Pump};
use crate::core::{DeliveryMode, Publisher, PublisherOptions};

/// The live `MoqPublisher` handles.
static PUBLISHERS: Registry<PublisherHandle> = Registry::new("publisher");

/// What a `MoqPublisher` holds.
pub(crate) struct PublisherHandle {
    publisher: Publisher,
    mode: MoqDeliveryMode,
    /// Delivers new-group requests to the C callback. `moq_publisher_destroy` stops it (waiting
    /// for a running call, unless on its own thread): a call in flight on another thread may
    /// keep the handle alive past the destroy, the callback must not outlive it.
    requests: std::sync::Mutex<Option<Pump>>,
}

/// Validate a raw delivery-mode integer.
pub(crate) fn parse_mode(raw: MoqDeliveryModeRaw) -> Result<MoqDeliveryMode, CError> {
    match raw {
        0 => Ok(MoqDeliveryMode::MOQ_DELIVERY_DATAGRAM),
        1 => Ok(MoqDeliveryMode::MOQ_DELIVERY_STREAM),
        other => Err(CError::invalid(format!(
            "delivery_mode {other} is not a MoqDeliveryMode (0 = MOQ_DELIVERY_DATAGRAM, 1 = MOQ_DELIVERY_STREAM)"
        ))),
    }
}

/// Create a reliable (STREAM mode) publisher for `track_name` in an announced namespace.
/// Returns NULL with `moq_last_error` set for a NULL client/namespace/track, invalid UTF-8,
/// not connected, or a namespace this client never announced. Free with
/// `moq_publisher_destroy`.
///
/// # Safety
/// Strings must be NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn moq_create_publisher(
    client: *mut MoqClient,
    namespace_str: *const c_char,
    track_name: *const c_char,
) -> *mut MoqPublisher {
    // SAFETY: forwarded contract.
    unsafe {
        create(
            "moq_create_publisher",
            client,
            namespace_str,
            track_name,
            MoqDeliveryMode::MOQ_DELIVERY_STREAM as MoqDeliveryModeRaw,
        )
    }
}

/// As `moq_create_publisher`, choosing the delivery mode. An out-of-range `delivery_mode`
/// returns NULL with `moq_last_error` set.
///
/// # Safety
/// As `moq_create_publisher`.
#[no_mangle]
pub unsafe extern "C" fn moq_create_publisher_ex(
    client: *mut MoqClient,
    namespace_str: *const c_char,
    track_name: *const c_char,
    delivery_mode: MoqDeliveryModeRaw,
) -> *mut MoqPublisher {
    // SAFETY: forwarded contract.
    unsafe {
        create(
            "moq_create_publisher_ex",
            client,
            namespace_str,
            track_name,
            delivery_mode,
        )
    }
}

unsafe fn create(
    function: &str,
    client: *mut MoqClient,
    namespace_str: *const c_char,
    track_name: *const c_char,
    delivery_mode: MoqDeliveryModeRaw,
) -> *mut MoqPublisher {
    boundary::value(function, std::ptr::null_mut(), || {
        let shared = CLIENTS.get(client)?;
        // SAFETY: forwarded contract.
        let (namespace, track) = unsafe { names(namespace_str, track_name) }?;
        let mode = parse_mode(delivery_mode)?;
        open(
            &shared,
            namespace,
            track,
            mode,
            PublisherOptions::default(),
            None,
        )
    })
}

/// The namespace and track arguments.
///
/// # Safety
/// Both must be NULL or NUL-terminated.
unsafe fn names<'a>(
    namespace_str: *const c_char,
    track_name: *const c_char,
) -> Result<(&'a str, &'a str), CError> {
    // SAFETY: forwarded contract.
    let namespace = unsafe { str_arg(namespace_str, "namespace_str") }?;
    let track = unsafe { str_arg(track_name, "track_name") }?;
    Ok((namespace, track))
}

/// Create the core publisher and its handle; with `requests`, a pump delivering its
/// new-group requests to the C callback.
fn open(
    shared: &super::client_state::ClientShared,
    namespace: &str,
    track: &str,
    mode: MoqDeliveryMode,
    mut options: PublisherOptions,
    requests: Option<(
        unsafe extern "C" fn(*mut std::os::raw::c_void, u64),
        UserData,
    )>,
) -> Result<*mut MoqPublisher, CError> {
    let core = shared.connected_core()?;
    options.delivery = match mode {
        MoqDeliveryMode::MOQ_DELIVERY_STREAM => DeliveryMode::Stream,
        MoqDeliveryMode::MOQ_DELIVERY_DATAGRAM => DeliveryMode::Datagram,
    };
    options.accept_new_group_requests = requests.is_some();
    let publisher = core
        .create_publisher(namespace, track, options)
        .map_err(CError::of)?;
    let pump = match requests {
        None => None,
        Some((callback, user_data)) => Some(
            Pump::spawn(
                "moq-new-group",
                core.runtime().clone(),
                publisher.new_group_requests(),
                move |group, _| {
                    // SAFETY: a C function pointer supplied by the caller for exactly this use.
                    unsafe { callback(user_data.ptr(), group) };
                    Flow::Continue
                },
            )
            .map_err(|err| {
                CError::new(
                    MoqResultCode::MOQ_ERROR_INTERNAL,
                    format!("cannot start a library thread: {err}"),
                )
            })?,
        ),
    };
    Ok(PUBLISHERS.insert(Arc::new(PublisherHandle {
        publisher,
        mode,
        requests: std::sync::Mutex::new(pump),
    })))
}

/// Extension: create a publisher with options (`options->struct_size =
/// sizeof(MoqPublisherOptions)`): the delivery mode, a publisher priority, a callback for
/// subscribers' new-group requests, and the groups kept for FETCH. A struct from an older
/// header (smaller `struct_size`) is read as far as it goes, the rest zero. Returns NULL with
/// `moq_last_error` set for what `moq_create_publisher_ex` refuses, a NULL `options`, or a
/// `struct_size` smaller than the first release's (or larger, with fields this library does
/// not know set).
/// `options` is read during the call only. The callback runs on a library thread; no call
/// runs after `moq_publisher_destroy` returns (a destroy from inside the callback returns at
/// once).
///
/// # Safety
/// Strings must be NULL or NUL-terminated; `options` NULL or a valid `MoqPublisherOptions`.
#[no_mangle]
pub unsafe extern "C" fn moq_create_publisher_with_options(
    client: *mut MoqClient,
    namespace_str: *const c_char,
    track_name: *const c_char,
    options: *const MoqPublisherOptions,
) -> *mut MoqPublisher {
    boundary::value(
        "moq_create_publisher_with_options",
        std::ptr::null_mut(),
        || {
            let shared = CLIENTS.get(client)?;
            // SAFETY: per the caller's contract.
            let raw = unsafe { sized_input(options, "options", "MoqPublisherOptions") }?;
            // SAFETY: forwarded contract.
            let (namespace, track) = unsafe { names(namespace_str, track_name) }?;
            let mode = parse_mode(raw.delivery_mode)?;
            let mut core_options = PublisherOptions::default();
            if raw.has_priority {
                core_options.priority = raw.priority;
            }
            core_options.retain_groups = raw.retain_groups;
            // 0 is the default on every face.
            core_options.retain_bytes = usize::try_from(raw.retain_bytes).unwrap_or(usize::MAX);
            let requests = raw
                .on_new_group_request
                .map(|callback| (callback, UserData(raw.user_data)));
            if requests.is_some() && mode != MoqDeliveryMode::MOQ_DELIVERY_STREAM {
                return Err(CError::invalid(
                    "on_new_group_request needs MOQ_DELIVERY_STREAM (each datagram is a group of its own)",
                ));
            }
            open(&shared, namespace, track, mode, core_options, requests)
        },
    )
}

/// Extension: end the current group; the next `moq_publish_data` starts a new one (for
/// example at a key frame, or answering a new-group request). STREAM mode. Errors: NULL or
/// destroyed publisher: `MOQ_ERROR_INVALID_ARGUMENT`. Thread-safe.
#[no_mangle]
pub extern "C" fn moq_publisher_new_group(publisher: *mut MoqPublisher) -> MoqResult {
    boundary::result("moq_publisher_new_group", || {
        PUBLISHERS
            .get(publisher)?
            .publisher
            .new_group()
            .map_err(CError::of)
    })
}

/// Publish one object (`data_len` bytes; `data` may be NULL only when `data_len` is 0).
/// `delivery_mode` must match the publisher's mode. In STREAM mode each call is one object
/// delivered reliably, in order, once to every established subscriber.
/// Returns at once, unless 16 MiB of published objects already wait for a network slower
/// than the publisher (STREAM mode): then it waits for room, like a blocking socket write,
/// at most the client's request timeout (10 s by default), and fails with
/// `MOQ_ERROR_TIMEOUT` without publishing (inside a callback it waits too, pausing that
/// callback's deliveries meanwhile).
/// Errors: NULL publisher, NULL data with a length, bad or mismatched mode:
/// `MOQ_ERROR_INVALID_ARGUMENT`; session lost: `MOQ_ERROR_NOT_CONNECTED`; larger than the
/// maximum object size or a datagram: `MOQ_ERROR_BUFFER_TOO_SMALL`; queue full (above):
/// `MOQ_ERROR_TIMEOUT`. Thread-safe.
///
/// # Safety
/// `data` must be NULL or valid for `data_len` bytes.
#[no_mangle]
pub unsafe extern "C" fn moq_publish_data(
    publisher: *mut MoqPublisher,
    data: *const u8,
    data_len: usize,
    delivery_mode: MoqDeliveryModeRaw,
) -> MoqResult {
    boundary::result("moq_publish_data", || {
        let handle = PUBLISHERS.get(publisher)?;
        if data.is_null() && data_len > 0 {
            return Err(CError::invalid(format!(
                "data is NULL but data_len is {data_len}"
            )));
        }
        let mode = parse_mode(delivery_mode)?;
        if mode != handle.mode {
            return Err(CError::invalid(format!(
                "delivery_mode {mode:?} does not match the publisher's mode {:?} chosen at creation",
                handle.mode
            )));
        }
        // Before copying: an oversize object costs nothing.
        handle.publisher.check_size(data_len).map_err(CError::of)?;
        let payload = if data_len == 0 {
            bytes::Bytes::new()
        } else {
            // SAFETY: non-NULL and valid for data_len bytes per the contract; copied because
            // the caller's buffer is only valid during the call.
            bytes::Bytes::copy_from_slice(unsafe { std::slice::from_raw_parts(data, data_len) })
        };
        publish_blocking(&handle.publisher, payload)
            .map(|_| ())
            .map_err(CError::of)
    })
}

/// Destroy a publisher, ending its track for subscribers (once no `moq_publish_data` on
/// it is still running). Its new-group callback does not run after this returns (a destroy
/// from inside that callback returns at once). NULL or an already-destroyed handle is a no-op. Valid before or
/// after its client's destroy. Thread-safe.
#[no_mangle]
pub extern "C" fn moq_publisher_destroy(publisher: *mut MoqPublisher) {
    boundary::value("moq_publisher_destroy", (), || {
        if let Some(handle) = PUBLISHERS.remove(publisher) {
            // Taken out first: never stop (join) under the lock.
            let pump = crate::sync::lock(&handle.requests).take();
            if let Some(mut pump) = pump {
                pump.stop();
            }
        }
        Ok(())
    })
}
