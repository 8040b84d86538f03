// moq-ffi patch (see vendor/README.md): a subscriber's byte budget for received data.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::{Notify, Semaphore};

/// Bytes a subscriber lets the session receive for one track ahead of the application.
///
/// With a budget (see [`super::Track::produce_with_receive_budget`]) the session reserves
/// bytes before it reads each payload chunk from QUIC and stops reading the track's streams
/// while the budget is spent, so QUIC flow control slows the sender. Bytes return to the
/// budget when the consumer reads them (or the object is dropped unread). Such a track is
/// read by one consumer: an object leaves the subgroup cache when it is read, instead of
/// staying until its group ends.
///
/// While the consumer waits for data ([`ReceiveBudget::consumer_waits`]) the session reads
/// beyond the budget: the data it waits for may be behind streams that hold the budget (or
/// the QUIC connection window) for later groups, and would otherwise never arrive.
#[derive(Debug)]
pub struct ReceiveBudget {
    bytes: Semaphore,
    capacity: usize,
    /// Consumers waiting for data now.
    waiting: AtomicUsize,
    /// Woken when a consumer starts waiting.
    starving: Notify,
    /// Held while a stream waits for room to create its subgroup (`SubgroupRoom`),
    /// so streams create theirs in the order they came (tokio's mutex queues its
    /// waiters first come, first served).
    creating: Arc<tokio::sync::Mutex<()>>,
}

/// The most a session reads from a stream at once under a budget.
pub const BUDGET_CHUNK: usize = 16 * 1024;

/// Marks a consumer waiting for data while it lives (see [`ReceiveBudget::consumer_waits`]).
pub struct ConsumerWaiting<'a>(&'a ReceiveBudget);

impl Drop for ConsumerWaiting<'_> {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::AcqRel);
    }
}

impl ReceiveBudget {
    /// A budget of `bytes` (at least 1).
    pub fn new(bytes: usize) -> Self {
        let capacity = bytes.clamp(1, Semaphore::MAX_PERMITS);
        Self {
            bytes: Semaphore::new(capacity),
            capacity,
            waiting: AtomicUsize::new(0),
            starving: Notify::new(),
            creating: Arc::default(),
        }
    }

    /// The budget's size in bytes.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The consumer waits for the track's data until the returned guard is dropped: hold it
    /// across each wait on the track's readers (not across waits on anything else).
    pub fn consumer_waits(&self) -> ConsumerWaiting<'_> {
        self.waiting.fetch_add(1, Ordering::AcqRel);
        self.starving.notify_waiters();
        ConsumerWaiting(self)
    }

    /// Whether a consumer waits for data now.
    pub(crate) fn consumer_waiting(&self) -> bool {
        self.waiting.load(Ordering::Acquire) > 0
    }

    /// Resolves at the next [`Self::consumer_waits`]; enable it before checking.
    /// the consumer is gone (see [`Self::close`]).
    pub(crate) fn is_closed(&self) -> bool {
        self.bytes.is_closed()
    }

    /// The turn to create the track's next subgroup (see `SubgroupRoom`).
    pub(crate) async fn creating(&self) -> tokio::sync::OwnedMutexGuard<()> {
        self.creating.clone().lock_owned().await
    }

    pub(crate) fn starving(&self) -> tokio::sync::futures::Notified<'_> {
        self.starving.notified()
    }

    /// Wait until some of the budget is free and take up to `want` bytes of it (at most one
    /// chunk); returns how many were taken.
    pub(crate) async fn reserve(&self, want: usize) -> usize {
        let want = want.min(BUDGET_CHUNK).min(self.capacity).max(1);
        // Take whatever is free, at least one byte, so a large object is read chunk by chunk.
        let available = self.bytes.available_permits();
        let take = if available > 0 {
            want.min(available)
        } else {
            1
        };
        match self.bytes.acquire_many(take as u32).await {
            Ok(permit) => permit.forget(),
            Err(_) => return want, // closed: the consumer is gone, read on (see `close`)
        }
        take
    }

    /// The consumer is gone: stop limiting, so reads blocked on the budget go on and find the
    /// track closed (its streams then end) instead of waiting forever.
    pub fn close(&self) {
        self.bytes.close();
        self.starving.notify_waiters();
    }

    /// Return `bytes` taken from the budget.
    pub(crate) fn release(&self, bytes: usize) {
        let room = Semaphore::MAX_PERMITS - self.bytes.available_permits();
        self.bytes.add_permits(bytes.min(room));
    }

    /// Bytes received and not yet read.
    pub fn in_use(&self) -> usize {
        self.capacity.saturating_sub(self.bytes.available_permits())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bytes::Bytes;

    use super::ReceiveBudget;
    use crate::coding::TrackNamespace;
    use crate::serve::{Subgroup, Track, TrackReaderMode};

    #[tokio::test]
    async fn a_budgeted_track_returns_bytes_when_read_or_dropped_and_keeps_nothing_read() {
        let budget = Arc::new(ReceiveBudget::new(100));
        let (writer, reader) = Track::new(TrackNamespace::from_utf8_path("ns"), "t")
            .produce_with_receive_budget(budget.clone());
        let mut groups = writer.subgroups().unwrap();
        let mut group = groups
            .create(Subgroup {
                group_id: 0,
                subgroup_id: 0,
                priority: 0,
            })
            .unwrap();
        for _ in 0..3 {
            assert_eq!(budget.reserve(10).await, 10);
            let mut object = group.create(10, None).unwrap();
            object.write_charged(Bytes::from(vec![7; 10]), 10).unwrap();
        }
        assert_eq!(budget.in_use(), 30);

        let TrackReaderMode::Subgroups(mut subgroups) = reader.mode().await.unwrap() else {
            panic!("subgroups mode");
        };
        let mut subgroup = subgroups.next().await.unwrap().unwrap();
        let mut first = subgroup.next().await.unwrap().unwrap();
        assert_eq!(first.read().await.unwrap().unwrap().len(), 10);
        assert_eq!(budget.in_use(), 20, "a chunk read returns its bytes");
        assert_eq!(subgroup.len(), 3, "objects are counted as before");

        let second = subgroup.next().await.unwrap().unwrap();
        drop(second);
        assert_eq!(
            budget.in_use(),
            10,
            "an object dropped unread returns its bytes"
        );
        drop(subgroup);
        drop(subgroups);
        drop(group);
        drop(groups);
        assert_eq!(
            budget.in_use(),
            0,
            "nothing read stays charged once the track is gone"
        );
    }

    #[tokio::test]
    async fn reserve_takes_what_is_free_and_waits_when_nothing_is() {
        let budget = Arc::new(ReceiveBudget::new(50));
        assert_eq!(budget.reserve(30).await, 30);
        assert_eq!(budget.reserve(30).await, 20, "takes the rest, not more");
        let waiting = {
            let budget = budget.clone();
            tokio::spawn(async move { budget.reserve(30).await })
        };
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "spent: waits");
        budget.release(5);
        assert!(waiting.await.unwrap() >= 1);
        let _waits = budget.consumer_waits();
        assert!(budget.consumer_waiting());
    }

    #[tokio::test]
    async fn a_closed_budget_no_longer_blocks() {
        let budget = Arc::new(ReceiveBudget::new(10));
        assert_eq!(budget.reserve(10).await, 10);
        let blocked = {
            let budget = budget.clone();
            tokio::spawn(async move { budget.reserve(10).await })
        };
        tokio::task::yield_now().await;
        assert!(!blocked.is_finished());
        budget.close();
        assert_eq!(blocked.await.unwrap(), 10);
        assert_eq!(budget.reserve(5).await, 5);
    }
}
