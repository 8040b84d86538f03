//! The synchronous publish of both foreign faces: backpressure as a bounded wait.
//!
//! A C `moq_publish_data` or a UniFFI `publish` is a plain function call on the app's thread.
//! When the publisher's queue toward the network is full (`max_queued_bytes`) it waits for
//! room, at most the client's `request_timeout`, as a blocking socket write would; then it
//! fails with `WouldBlock` and publishes nothing. On a library runtime thread it never waits
//! (it fails at once), so nothing can stall the runtime that drains the queue. Callbacks run
//! on delivery threads outside the runtime: there it waits like anywhere, pausing only that
//! registration's deliveries.

use bytes::Bytes;

use crate::bridge::runtime;
use crate::core::{ObjectLocation, PublishError, Publisher};

/// Publish `payload`, waiting for room as described in the module docs.
pub(crate) fn publish_blocking(
    publisher: &Publisher,
    payload: impl Into<Bytes>,
) -> Result<ObjectLocation, PublishError> {
    let payload = payload.into();
    // The fast path costs no runtime entry.
    match publisher.publish(payload.clone()) {
        Err(err @ PublishError::WouldBlock { .. }) => {
            let timeout = publisher.request_timeout();
            runtime::block_on(publisher.publish_when_ready(payload, Some(timeout)))
                .unwrap_or(Err(err))
        }
        other => other,
    }
}
