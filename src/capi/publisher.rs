//! `moq_create_publisher[_ex]`, `moq_publish_data`, `moq_publisher_destroy`.

use std::os::raw::c_char;

use super::boundary::{self, str_arg, CError};
use super::client::client_arg;
use super::types::*;
use crate::core::{DeliveryMode, PublishError, Publisher, PublisherOptions};

/// What a `MoqPublisher` holds.
pub(crate) struct PublisherHandle {
    publisher: Publisher,
    mode: MoqDeliveryMode,
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

fn publish_error(err: PublishError) -> CError {
    use MoqResultCode::*;
    let code = match &err {
        PublishError::NotConnected => MOQ_ERROR_NOT_CONNECTED,
        PublishError::InvalidName { .. }
        | PublishError::NotAnnounced { .. }
        | PublishError::DuplicateTrack { .. }
        | PublishError::Closed => MOQ_ERROR_INVALID_ARGUMENT,
        PublishError::ObjectTooLarge { .. } | PublishError::DatagramTooLarge { .. } => {
            MOQ_ERROR_BUFFER_TOO_SMALL
        }
        PublishError::TrackClosed { .. } => MOQ_ERROR_INTERNAL,
    };
    CError::new(code, err.to_string())
}

/// Create a reliable (STREAM mode) publisher for `track_name` in an announced namespace.
/// Returns NULL with `moq_last_error` set for a NULL client/namespace/track, invalid UTF-8,
/// not connected, or a namespace this client never announced. Free with
/// `moq_publisher_destroy`.
///
/// # Safety
/// `client` must be NULL or a live handle; strings NULL or NUL-terminated.
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
        // SAFETY: forwarded contract.
        let shared = unsafe { client_arg(client) }?;
        let namespace = unsafe { str_arg(namespace_str, "namespace_str") }?;
        let track = unsafe { str_arg(track_name, "track_name") }?;
        let mode = parse_mode(delivery_mode)?;
        let core = shared.connected_core()?;
        let options = PublisherOptions {
            delivery: match mode {
                MoqDeliveryMode::MOQ_DELIVERY_STREAM => DeliveryMode::Stream,
                MoqDeliveryMode::MOQ_DELIVERY_DATAGRAM => DeliveryMode::Datagram,
            },
            ..PublisherOptions::default()
        };
        let publisher = core
            .create_publisher(namespace, track, options)
            .map_err(publish_error)?;
        Ok(Box::into_raw(Box::new(MoqPublisher {
            inner: PublisherHandle { publisher, mode },
        })))
    })
}

/// Publish one object (`data_len` bytes; `data` may be NULL only when `data_len` is 0).
/// Non-blocking. `delivery_mode` must match the publisher's mode. In STREAM mode each call
/// is one object delivered reliably, in order, once to every established subscriber.
/// Errors: NULL publisher, NULL data with a length, bad or mismatched mode:
/// `MOQ_ERROR_INVALID_ARGUMENT`; session lost: `MOQ_ERROR_NOT_CONNECTED`; larger than the
/// maximum object size or a datagram: `MOQ_ERROR_BUFFER_TOO_SMALL`. Thread-safe.
///
/// # Safety
/// `publisher` must be NULL or a live handle; `data` NULL or valid for `data_len` bytes.
#[no_mangle]
pub unsafe extern "C" fn moq_publish_data(
    publisher: *mut MoqPublisher,
    data: *const u8,
    data_len: usize,
    delivery_mode: MoqDeliveryModeRaw,
) -> MoqResult {
    boundary::result("moq_publish_data", || {
        // SAFETY: per the contract.
        let handle = unsafe { publisher.as_ref() }
            .map(|p| &p.inner)
            .ok_or_else(|| CError::invalid("publisher is NULL"))?;
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
        let payload = if data_len == 0 {
            bytes::Bytes::new()
        } else {
            // SAFETY: non-NULL and valid for data_len bytes per the contract; copied because
            // the caller's buffer is only valid during the call.
            bytes::Bytes::copy_from_slice(unsafe { std::slice::from_raw_parts(data, data_len) })
        };
        handle
            .publisher
            .publish(payload)
            .map(|_| ())
            .map_err(publish_error)
    })
}

/// Destroy a publisher, ending its track for subscribers. NULL is a no-op. Valid before or
/// after its client's destroy.
///
/// # Safety
/// `publisher` must be NULL or a live handle; it is invalid after the call.
#[no_mangle]
pub unsafe extern "C" fn moq_publisher_destroy(publisher: *mut MoqPublisher) {
    boundary::value("moq_publisher_destroy", (), || {
        if !publisher.is_null() {
            // SAFETY: a live handle from Box::into_raw, per the contract.
            drop(unsafe { Box::from_raw(publisher) });
        }
        Ok(())
    })
}
