//! `Client.fetch`: a track's past objects by location, and the `FetchResponse` they are
//! read from.

use std::sync::Arc;

use super::records::{FetchRange, ReceivedObject};
use super::{on_runtime, Client, MoqError};
use crate::bridge::fetch::FetchReader;

/// The response to `Client.fetch`: read its objects in order with `next()` until it returns
/// null. Thread-safe; reads are serialized. `cancel()` (or dropping it) stops what is left of
/// the response.
#[derive(uniffi::Object)]
pub struct FetchResponse {
    reader: Arc<FetchReader>,
    end_of_track: bool,
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
            reader: Arc::new(FetchReader::new(fetched)),
        }))
    }
}

#[uniffi::export]
impl FetchResponse {
    /// The next object, in order; null once the response is complete (or cancelled). Errors
    /// when it ended early (`PublisherLost`: what was read is all there is) or an object is
    /// over the client's `max_object_size` (`TooLarge`); null after that.
    pub async fn next(&self) -> Result<Option<ReceivedObject>, MoqError> {
        let reader = self.reader.clone();
        on_runtime(async move { Ok(reader.next().await?.map(ReceivedObject::from)) }).await
    }

    /// Whether the response reaches the end of the track (its publisher closed it).
    pub fn end_of_track(&self) -> bool {
        self.end_of_track
    }

    /// Stop the response: what was not read is not sent; a `next()` waiting returns null.
    /// Idempotent.
    pub async fn cancel(&self) {
        let reader = self.reader.clone();
        let _ = on_runtime(async move {
            reader.close().await;
            Ok(())
        })
        .await;
    }
}
