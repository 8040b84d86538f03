//! `Publisher`: publish objects on a track.

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;

use super::records::ObjectLocation;
use super::MoqError;
use crate::bridge::publish::publish_blocking;
use crate::core;

/// Publishes objects on one track. Thread-safe. `finish()` (or destroying the object) ends
/// the track for subscribers.
#[derive(uniffi::Object)]
pub struct Publisher {
    core: core::Publisher,
    /// The track's new-group requests, from the publisher's creation on.
    new_group_requests: Arc<tokio::sync::Mutex<core::NewGroupRequests>>,
}

impl Publisher {
    pub(crate) fn new(core: core::Publisher) -> Arc<Self> {
        let new_group_requests = Arc::new(tokio::sync::Mutex::new(core.new_group_requests()));
        Arc::new(Self {
            core,
            new_group_requests,
        })
    }
}

#[uniffi::export]
impl Publisher {
    /// Publish one object: queued and sent by the library runtime. Returns at once unless
    /// `max_queued_bytes` already wait for the network (stream mode): then it waits for room,
    /// at most the client's request timeout, and fails with `WouldBlock` (nothing published).
    /// Inside a listener it waits too, pausing that listener's deliveries meanwhile (the queue
    /// drains on the library runtime). `publish_async` waits without blocking a thread.
    pub fn publish(&self, payload: Vec<u8>) -> Result<ObjectLocation, MoqError> {
        Ok(location(publish_blocking(&self.core, payload)?))
    }

    /// Publish one object, first waiting (as long as it takes, without blocking a thread)
    /// while `max_queued_bytes` wait for the network. Cancelling the call publishes nothing.
    pub async fn publish_async(&self, payload: Vec<u8>) -> Result<ObjectLocation, MoqError> {
        Ok(location(self.core.publish_when_ready(payload, None).await?))
    }

    /// Bytes published and not yet handed to the network (stream mode).
    pub fn queued_bytes(&self) -> u64 {
        self.core.queued_bytes() as u64
    }

    /// Publish several objects in order with one call (fewer FFI crossings); each waits for
    /// room like `publish`. On an error, the objects before the failing one were published
    /// and the rest were not; the error message says how many.
    pub fn publish_many(&self, payloads: Vec<Vec<u8>>) -> Result<(), MoqError> {
        let count = payloads.len();
        for (index, payload) in payloads.into_iter().enumerate() {
            publish_blocking(&self.core, payload)
                .map_err(|err| partly_published(err.into(), index, count))?;
        }
        Ok(())
    }

    /// Publish several objects in order from packed form: `payloads` holds them back to back
    /// and `lengths` one little-endian u32 per object (so `lengths` is 4 bytes per object
    /// and the lengths add up to `payloads`' size). One buffer crosses the language boundary
    /// instead of one per object, and the objects share it without copies. Errors like
    /// `publish_many`; a malformed `lengths` is `InvalidArgument` and publishes nothing.
    pub fn publish_packed(&self, payloads: Vec<u8>, lengths: Vec<u8>) -> Result<(), MoqError> {
        let ranges = packed_ranges(payloads.len(), &lengths)?;
        let count = ranges.len();
        let payloads = Bytes::from(payloads);
        for (index, range) in ranges.into_iter().enumerate() {
            publish_blocking(&self.core, payloads.slice(range))
                .map_err(|err| partly_published(err.into(), index, count))?;
        }
        Ok(())
    }

    /// Wait for subscribers' next new-group request (created with
    /// `PublisherOptions.accept_new_group_requests`): requests since the last call are
    /// coalesced into one. Returns the group the latest asks to reach (the largest group that
    /// subscriber knows plus one; 0 when it knows none): call `new_group()` and publish a key
    /// frame. Null once the publisher is finished. Without the option no request ever
    /// comes, so this waits until the publisher is finished. Cancelling the call loses no
    /// request (it is awaited where the caller awaits: the wait needs no library thread).
    pub async fn next_new_group_request(&self) -> Result<Option<u64>, MoqError> {
        Ok(self.new_group_requests.lock().await.next().await)
    }

    /// End the current group; the next object starts a new one (e.g. at a key frame).
    pub fn new_group(&self) -> Result<(), MoqError> {
        Ok(self.core.new_group()?)
    }

    /// End the track. Further publishes fail with `Closed`. Idempotent.
    pub fn finish(&self) {
        self.core.close();
    }

    /// Whether the publisher can still publish.
    pub fn is_open(&self) -> bool {
        self.core.is_open()
    }

    /// The namespace.
    pub fn namespace(&self) -> String {
        self.core.namespace().to_string()
    }

    /// The track name.
    pub fn track(&self) -> String {
        self.core.track().to_string()
    }
}

fn location(location: core::ObjectLocation) -> ObjectLocation {
    ObjectLocation {
        group_id: location.group_id,
        object_id: location.object_id,
    }
}

/// The payload ranges described by packed `lengths`, checked against the buffer's size.
pub(super) fn packed_ranges(size: usize, lengths: &[u8]) -> Result<Vec<Range<usize>>, MoqError> {
    if lengths.len() % 4 != 0 {
        return Err(MoqError::InvalidArgument {
            reason: format!(
                "publish_packed: lengths has {} bytes; it must hold one 4-byte little-endian length per object",
                lengths.len()
            ),
        });
    }
    let mut start = 0usize;
    let mut ranges = Vec::with_capacity(lengths.len() / 4);
    for chunk in lengths.chunks_exact(4) {
        let length = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]) as usize;
        let end = start.saturating_add(length);
        if end > size {
            return Err(MoqError::InvalidArgument {
                reason: format!(
                    "publish_packed: the lengths add up to more than the {size} payload bytes given (object {} ends at byte {end}); nothing was published",
                    ranges.len()
                ),
            });
        }
        ranges.push(start..end);
        start = end;
    }
    if start != size {
        return Err(MoqError::InvalidArgument {
            reason: format!(
                "publish_packed: the lengths add up to {start} bytes but {size} payload bytes were given; nothing was published"
            ),
        });
    }
    Ok(ranges)
}

/// `err` for object `index` of `count`: the message says what was and was not published.
fn partly_published(err: MoqError, index: usize, count: usize) -> MoqError {
    if count <= 1 {
        return err;
    }
    err.with_context(&format!(
        "object {index} of {count} was not published (objects 0..{index} were, the rest were not)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lengths(values: &[u32]) -> Vec<u8> {
        values.iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    #[test]
    fn packed_ranges_split_the_buffer_in_order() {
        let ranges = packed_ranges(6, &lengths(&[1, 0, 2, 3])).expect("valid");
        assert_eq!(ranges, vec![0..1, 1..1, 1..3, 3..6]);
        assert_eq!(
            packed_ranges(0, &[]).expect("empty"),
            Vec::<Range<usize>>::new()
        );
    }

    #[test]
    fn packed_ranges_reject_lengths_that_do_not_match_the_buffer() {
        for (size, bad) in [
            (6, vec![1, 0, 0]),                  // not a multiple of 4
            (6, lengths(&[4, 4])),               // too long
            (6, lengths(&[1, 2])),               // too short
            (6, lengths(&[u32::MAX, u32::MAX])), // no overflow where usize is 32 bits
        ] {
            let err = packed_ranges(size, &bad).expect_err("malformed");
            assert!(matches!(err, MoqError::InvalidArgument { .. }), "{err}");
        }
    }
}
