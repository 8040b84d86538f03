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
/// beyond the budget, up to an overdraft ([`ReceiveBudget::with_limits`]): the data it waits
/// for may be behind streams that hold the budget (or the QUIC connection window) for later
/// groups, and would otherwise never arrive. The subgroup the consumer waits on
/// ([`ReceiveBudget::consumer_waits_on`]) is read even past that, one chunk at a time, as its
/// data goes straight to the consumer. Beyond those, nothing is read: a peer cannot grow the
/// subscriber by streaming one subgroup while the consumer waits on another.
///
/// A stalled consumer (not waiting, the budget spent) leaves the track's streams unread, each
/// holding some of the connection's receive window and stream credit; past
/// `max_stalled_streams` of them the track is *overrun* ([`ReceiveBudget::overrun`]): the
/// session stops each of its streams instead of letting them freeze the connection's other
/// tracks, and the consumer is told.
#[derive(Debug)]
pub struct ReceiveBudget {
    bytes: Semaphore,
    capacity: usize,
    /// Bytes that may be read past the budget while the consumer waits.
    extra: Semaphore,
    overdraft: usize,
    /// The subgroup the consumer waits on, by (group, subgroup).
    head: std::sync::Mutex<Option<(u64, u64)>>,
    /// Streams waiting unread for budgets, counted across the tracks that share it (a
    /// connection's), and the most a stalled consumer may leave.
    stall_limit: Arc<StallLimit>,
    overrun: std::sync::atomic::AtomicBool,
    /// When bytes last came back (the consumer read, or dropped, something), in microseconds
    /// since `born`: a consumer that takes nothing for [`STALL_GRACE`] is stalled.
    born: std::time::Instant,
    last_release: std::sync::atomic::AtomicU64,
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

/// How long a consumer may take nothing, with more streams than the stall limit waiting,
/// before its track is overrun: a reader that is merely behind during a burst keeps reading.
pub const STALL_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

/// Marks a consumer waiting for data while it lives (see [`ReceiveBudget::consumer_waits`]).
pub struct ConsumerWaiting<'a>(&'a ReceiveBudget);

/// How many streams may wait unread for the receive budgets that share it (one per
/// connection): each holds some of the connection's receive window and stream credit, so
/// enough of them would freeze every track of the connection.
#[derive(Debug)]
pub struct StallLimit {
    streams: AtomicUsize,
    max: usize,
    /// Budgets sharing it: with one alone there is no other track to freeze, and its
    /// consumer may stall it as long as it likes.
    tracks: AtomicUsize,
}

impl StallLimit {
    /// At most `max` streams waiting (0: no limit).
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(Self {
            streams: AtomicUsize::new(0),
            max,
            tracks: AtomicUsize::new(0),
        })
    }

    /// Streams waiting unread now.
    pub fn stalled(&self) -> usize {
        self.streams.load(Ordering::Acquire)
    }

    /// The most that may wait (0: no limit).
    pub fn max(&self) -> usize {
        self.max
    }
}

impl Drop for ReceiveBudget {
    fn drop(&mut self) {
        self.stall_limit.tracks.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A stream waiting unread for a budget (see `ReceiveBudget::stall`).
pub(crate) struct StalledStream<'a>(&'a StallLimit);

impl Drop for StalledStream<'_> {
    fn drop(&mut self) {
        self.0.streams.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A stalled consumer left more than `max` of the track's streams unread (`streams`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Overrun {
    pub streams: usize,
    pub max: usize,
}

impl Drop for ConsumerWaiting<'_> {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::AcqRel);
    }
}

impl ReceiveBudget {
    /// A budget of `bytes` (at least 1), with no overdraft and no limit on stalled streams.
    pub fn new(bytes: usize) -> Self {
        Self::with_limits(bytes, 0, StallLimit::new(0))
    }

    /// A budget of `bytes` (at least 1); `overdraft` more bytes may be read while the
    /// consumer waits; streams waiting unread count against `stall_limit` (shared by the
    /// tracks of one connection), past which a stalled consumer's track is overrun.
    pub fn with_limits(bytes: usize, overdraft: usize, stall_limit: Arc<StallLimit>) -> Self {
        let capacity = bytes.clamp(1, Semaphore::MAX_PERMITS);
        let overdraft = overdraft.min(Semaphore::MAX_PERMITS);
        stall_limit.tracks.fetch_add(1, Ordering::AcqRel);
        Self {
            bytes: Semaphore::new(capacity),
            capacity,
            extra: Semaphore::new(overdraft),
            overdraft,
            head: std::sync::Mutex::new(None),
            stall_limit,
            overrun: std::sync::atomic::AtomicBool::new(false),
            born: std::time::Instant::now(),
            last_release: std::sync::atomic::AtomicU64::new(0),
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

    /// [`Self::consumer_waits`], on the next data of subgroup (`group`, `subgroup`): that
    /// subgroup's stream is read even past the overdraft until the guard is dropped.
    pub fn consumer_waits_on(&self, group: u64, subgroup: u64) -> ConsumerWaiting<'_> {
        *self.head.lock().unwrap_or_else(|e| e.into_inner()) = Some((group, subgroup));
        self.consumer_waits()
    }

    /// Whether the consumer waits on subgroup (`group`, `subgroup`) now.
    pub(crate) fn is_head(&self, group: u64, subgroup: u64) -> bool {
        self.consumer_waiting()
            && *self.head.lock().unwrap_or_else(|e| e.into_inner()) == Some((group, subgroup))
    }

    /// Take up to `want` bytes (at most a chunk) without waiting: from the budget, or while
    /// the consumer waits, from the overdraft. `None` when neither has any.
    pub(crate) fn try_reserve(&self, want: usize) -> Option<usize> {
        let want = want.min(BUDGET_CHUNK).min(self.capacity).max(1);
        if self.bytes.is_closed() {
            return Some(want);
        }
        let pools: &[&Semaphore] = if self.consumer_waiting() {
            &[&self.bytes, &self.extra]
        } else {
            &[&self.bytes]
        };
        for pool in pools {
            let take = want.min(pool.available_permits());
            if take > 0 {
                if let Ok(permit) = pool.try_acquire_many(take as u32) {
                    permit.forget();
                    return Some(take);
                }
            }
        }
        None
    }

    /// A stream is about to wait unread for the budget: counted while the guard lives.
    pub(crate) fn stall(&self) -> StalledStream<'_> {
        self.stall_limit.streams.fetch_add(1, Ordering::AcqRel);
        StalledStream(&self.stall_limit)
    }

    /// Check, for a stream waiting unread, whether the track is overrun now: another track
    /// shares the limit, more streams wait than it allows, the consumer is not waiting for
    /// data, and it has taken nothing for [`STALL_GRACE`]. Once overrun, it stays so.
    pub(crate) fn check_overrun(&self) -> Result<(), Overrun> {
        let limit = &self.stall_limit;
        let stalled = limit.stalled();
        if !self.overrun()
            && limit.max > 0
            && stalled > limit.max
            && limit.tracks.load(Ordering::Acquire) > 1
            && !self.consumer_waiting()
            && self.since_last_release() >= STALL_GRACE
        {
            self.overrun.store(true, Ordering::Release);
            self.starving.notify_waiters();
        }
        if self.overrun() {
            return Err(Overrun {
                streams: stalled,
                max: limit.max,
            });
        }
        Ok(())
    }

    fn since_last_release(&self) -> std::time::Duration {
        let last = std::time::Duration::from_micros(self.last_release.load(Ordering::Acquire));
        self.born.elapsed().saturating_sub(last)
    }

    /// Whether a stalled consumer left more streams unread than allowed: the session stops
    /// the track's streams from then on, and the consumer should end the subscription.
    pub fn overrun(&self) -> bool {
        self.overrun.load(Ordering::Acquire)
    }

    /// Resolves once the track is overrun (at once if it is).
    pub async fn overrun_notified(&self) {
        loop {
            let notified = self.starving.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.overrun() {
                return;
            }
            notified.await;
        }
    }

    /// The limit on streams waiting unread this budget counts against.
    pub fn stall_limit(&self) -> &Arc<StallLimit> {
        &self.stall_limit
    }

    /// Whether a consumer waits for data now.
    pub(crate) fn consumer_waiting(&self) -> bool {
        self.waiting.load(Ordering::Acquire) > 0
    }

    /// Whether the consumer is gone (see [`Self::close`]).
    pub(crate) fn is_closed(&self) -> bool {
        self.bytes.is_closed()
    }

    /// The turn to create the track's next subgroup (see `SubgroupRoom`).
    pub(crate) async fn creating(&self) -> tokio::sync::OwnedMutexGuard<()> {
        self.creating.clone().lock_owned().await
    }

    /// Resolves at the next [`Self::consumer_waits`]; enable it before checking.
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
        self.extra.close();
        self.starving.notify_waiters();
    }

    /// Return `bytes` taken from the budget or the overdraft (the budget refills first: the
    /// overdraft is only drawn on once it is spent).
    pub(crate) fn release(&self, bytes: usize) {
        let now = u64::try_from(self.born.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.last_release.store(now, Ordering::Release);
        let to_budget = bytes.min(self.capacity.saturating_sub(self.bytes.available_permits()));
        self.bytes.add_permits(to_budget);
        let rest = bytes - to_budget;
        let to_extra = rest.min(
            self.overdraft
                .saturating_sub(self.extra.available_permits()),
        );
        self.extra.add_permits(to_extra);
    }

    /// Bytes received and not yet read (budget and overdraft).
    pub fn in_use(&self) -> usize {
        self.capacity.saturating_sub(self.bytes.available_permits())
            + self
                .overdraft
                .saturating_sub(self.extra.available_permits())
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

    #[tokio::test]
    async fn the_overdraft_is_drawn_only_while_the_consumer_waits() {
        let budget = ReceiveBudget::with_limits(10, 25, super::StallLimit::new(0));
        assert_eq!(budget.try_reserve(10), Some(10));
        assert_eq!(budget.try_reserve(5), None, "spent, and nobody waits");
        let waiting = budget.consumer_waits();
        // From the overdraft, a chunk of at most the budget's size at a time.
        assert_eq!(budget.try_reserve(16), Some(10));
        assert_eq!(budget.try_reserve(16), Some(10));
        assert_eq!(budget.try_reserve(16), Some(5), "what is left of it");
        assert_eq!(budget.try_reserve(1), None, "the overdraft is spent too");
        assert_eq!(budget.in_use(), 35);
        drop(waiting);
        // Returned bytes refill the budget first.
        budget.release(12);
        assert_eq!(budget.try_reserve(16), Some(10));
        assert_eq!(budget.try_reserve(1), None);
        assert_eq!(budget.in_use(), 33);
    }

    #[tokio::test]
    async fn only_the_subgroup_the_consumer_waits_on_is_the_head() {
        let budget = ReceiveBudget::new(10);
        assert!(!budget.is_head(3, 0));
        let waiting = budget.consumer_waits_on(3, 0);
        assert!(budget.is_head(3, 0));
        assert!(!budget.is_head(4, 0));
        drop(waiting);
        assert!(!budget.is_head(3, 0), "not while nobody waits");
    }

    #[tokio::test]
    async fn streams_past_the_stall_limit_overrun_a_track_stalled_for_the_grace() {
        let limit = super::StallLimit::new(2);
        let stalled = ReceiveBudget::with_limits(10, 0, limit.clone());
        let reading = ReceiveBudget::with_limits(10, 0, limit.clone());
        let a = stalled.stall();
        let _b = stalled.stall();
        assert!(stalled.check_overrun().is_ok(), "at the limit");
        let _c = stalled.stall();
        assert_eq!(limit.stalled(), 3);
        {
            // A consumer that waits for data is reading: over the limit, but not stalled.
            let _waits = reading.consumer_waits();
            assert!(reading.check_overrun().is_ok());
        }
        // Over the limit, but the consumer took something within the grace.
        stalled.release(1);
        assert!(stalled.check_overrun().is_ok());
        tokio::time::sleep(super::super::STALL_GRACE).await;
        let err = stalled
            .check_overrun()
            .err()
            .expect("stalled for the grace");
        assert_eq!(err, super::Overrun { streams: 3, max: 2 });
        assert!(stalled.overrun());
        stalled.overrun_notified().await;
        drop(a);
        assert_eq!(limit.stalled(), 2);
        assert!(stalled.check_overrun().is_err(), "overrun stays");
        // `reading` took nothing for the grace too, but waits now: not overrun.
        let _waits = reading.consumer_waits();
        assert!(reading.check_overrun().is_ok() && !reading.overrun());
    }

    #[tokio::test]
    async fn a_track_alone_on_its_limit_is_never_overrun() {
        let limit = super::StallLimit::new(1);
        let alone = ReceiveBudget::with_limits(10, 0, limit.clone());
        let _streams = [alone.stall(), alone.stall(), alone.stall()];
        tokio::time::sleep(super::super::STALL_GRACE).await;
        assert!(alone.check_overrun().is_ok(), "nothing else to freeze");
        let other = ReceiveBudget::with_limits(10, 0, limit.clone());
        assert!(
            alone.check_overrun().is_err(),
            "now another track shares the window"
        );
        drop(other);
    }
}
