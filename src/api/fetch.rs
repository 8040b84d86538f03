//! `Client.fetch`: a track's past objects by location, and the `FetchResponse` they are
//! read from.

use std::sync::Arc;

use super::records::{FetchRange, ReceivedObject};
use super::{on_runtime, Client, MoqError};
use crate::core;

/// The response to `Client.fetch`: read its objects in order with `next()` until it returns
/// null. Thread-safe; reads are serialized. `cancel()` (or dropping it) stops what is left of
/// the response.
#[derive(uniffi::Object)]
pub struct FetchResponse {
    fetched: Arc<tokio::sync::Mutex<Option<core::Fetched>>>,
    end_of_track: bool,
    /// Cancelled by `cancel()`: a `next()` waiting for the network returns null.
    cancelled: tokio_util::sync::CancellationToken,
}

#[uniffi::export]
impl Client {
    /// Fetch the past objects of `track` in `namespace` within `range` (both ends included),
    /// from the groups its publisher keeps (`PublisherOptions.retain_groups`). Returns once
    /// the publisher, through the relay, accepted; read the objects from the response.
    /// `NotFound` when none of the range is available (no such track, or not kept);
    /// `Refused` over a draft-16 relay; `InvalidArgument` for an empty range.
    pub async fn fetch(
        &self,
        namespace: String,
        track: String,
        range: FetchRange,
    ) -> Result<Arc<FetchResponse>, MoqError> {
        let core = self.core.clone();
        let range = range.to_core();
        let fetched =
            on_runtime(async move { Ok(core.fetch(&namespace, &track, range).await?) }).await?;
        Ok(Arc::new(FetchResponse {
            end_of_track: fetched.end_of_track(),
            fetched: Arc::new(tokio::sync::Mutex::new(Some(fetched))),
            cancelled: Default::default(),
        }))
    }
}

#[uniffi::export]
impl FetchResponse {
    /// The next object, in order; null once the response is complete (or cancelled). Errors
    /// when it ended early (`PublisherLost`: what was read is all there is) or an object is
    /// over the client's `max_object_size` (`TooLarge`); null after that.
    pub async fn next(&self) -> Result<Option<ReceivedObject>, MoqError> {
        let fetched = self.fetched.clone();
        let cancelled = self.cancelled.clone();
        on_runtime(async move {
            let mut fetched = fetched.lock().await;
            let Some(response) = fetched.as_mut() else {
                return Ok(None);
            };
            tokio::select! {
                next = response.next() => Ok(next?.map(ReceivedObject::from)),
                _ = cancelled.cancelled() => Ok(None),
            }
        })
        .await
    }

    /// Whether the response reaches the end of the track (its publisher closed it).
    pub fn end_of_track(&self) -> bool {
        self.end_of_track
    }

    /// Stop the response: what was not read is not sent; a `next()` waiting returns null.
    /// Idempotent.
    pub async fn cancel(&self) {
        self.cancelled.cancel();
        let fetched = self.fetched.clone();
        let _ = on_runtime(async move {
            fetched.lock().await.take();
            Ok(())
        })
        .await;
    }
}
