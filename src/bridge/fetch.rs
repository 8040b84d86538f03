//! A FETCH response as both foreign faces read it: one read at a time, and a cancel that
//! ends a read waiting in another thread (UniFFI `FetchResponse`, C `moq_fetch_next` /
//! `moq_fetch_destroy`).

use crate::core::{FetchError, Fetched, Object};

/// A FETCH response shared between callers. Thread-safe: reads are serialized.
pub(crate) struct FetchReader {
    fetched: tokio::sync::Mutex<Option<Fetched>>,
    cancelled: tokio_util::sync::CancellationToken,
}

impl FetchReader {
    pub(crate) fn new(fetched: Fetched) -> Self {
        FetchReader {
            fetched: tokio::sync::Mutex::new(Some(fetched)),
            cancelled: Default::default(),
        }
    }

    /// The next object; `Ok(None)` at the end, and once cancelled (a read waiting when
    /// [`Self::cancel`] is called returns so, without an object).
    pub(crate) async fn next(&self) -> Result<Option<Object>, FetchError> {
        let mut fetched = self.fetched.lock().await;
        let Some(response) = fetched.as_mut() else {
            return Ok(None);
        };
        tokio::select! {
            biased;
            _ = self.cancelled.cancelled() => Ok(None),
            next = response.next() => next,
        }
    }

    /// Stop the response (what was not read is not sent). Idempotent; never blocks.
    pub(crate) fn cancel(&self) {
        self.cancelled.cancel();
    }

    /// Whether [`Self::cancel`] was called.
    pub(crate) fn is_cancelled(&self) -> bool {
        self.cancelled.is_cancelled()
    }

    /// Drop the response once no read is in flight (after [`Self::cancel`], promptly).
    pub(crate) async fn close(&self) {
        self.cancel();
        self.fetched.lock().await.take();
    }
}
