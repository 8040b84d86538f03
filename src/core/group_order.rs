//! A subscription's groups in ascending order, whatever order their streams came in.
//!
//! Each group (each subgroup) of a track reaches the subscriber on a QUIC stream of its own,
//! and the transport hands them over in the order it read their first object. A relay or
//! publisher that opens streams concurrently makes a later group come first (measured, with
//! moq-transport 0.17's concurrent opening at each hop: a burst of 3,000 one-object groups
//! delivered group 590 right after 519, 520 afterwards), and so does a lost packet even when
//! streams are opened in order (measured: groups 1444 to 1447 read after 1582, the
//! retransmission some 50 ms later). So subgroups that come after a gap in the group ids are
//! held for up to [`REORDER_WAIT`] (and at most [`REORDER_GROUPS`] of them) for the missing
//! groups to come; then delivery goes on past the gap. A group that comes later than that is
//! still delivered (nothing is dropped), out of order. Held subgroups keep their payload
//! under the subscription's receive budget (`buffer_bytes`), as any other.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::FutureExt;
use moq_transport::serve::{ServeError, SubgroupReader, SubgroupsReader};
use tokio::time::Instant;

/// The longest a group after a gap waits for the groups before it.
pub(crate) const REORDER_WAIT: Duration = Duration::from_millis(100);

/// The most subgroups held back while waiting for a gap to fill (a retransmitted packet
/// can hold back more than a hundred one-object groups).
pub(crate) const REORDER_GROUPS: usize = 512;

/// A track's subgroups, in ascending group order (see the module docs).
pub(crate) struct GroupOrder {
    groups: SubgroupsReader,
    /// Taken from the transport, not handed out yet, by (group, subgroup).
    held: BTreeMap<(u64, u64), SubgroupReader>,
    /// The highest group handed out.
    last: Option<u64>,
    /// How the transport's reader ended, once it has.
    ended: Option<Result<(), ServeError>>,
}

impl GroupOrder {
    pub(crate) fn new(groups: SubgroupsReader) -> Self {
        Self {
            groups,
            held: BTreeMap::new(),
            last: None,
            ended: None,
        }
    }

    /// The next subgroup in group order; `Ok(None)` once the track has ended and everything
    /// held was handed out, then the reader's error if it failed. Cancel-safe.
    pub(crate) async fn next(&mut self) -> Result<Option<SubgroupReader>, ServeError> {
        self.take_ready();
        let mut deadline: Option<Instant> = None;
        loop {
            let Some(&(group, subgroup)) = self.held.keys().next() else {
                match &self.ended {
                    Some(end) => return end.clone().map(|()| None),
                    None => {
                        let next = self.groups.next().await;
                        self.take(next);
                        continue;
                    }
                }
            };
            let in_order = self.last.is_none_or(|last| group <= last.saturating_add(1));
            let expired = deadline.is_some_and(|at| Instant::now() >= at);
            if in_order || expired || self.ended.is_some() || self.held.len() >= REORDER_GROUPS {
                if !in_order {
                    log::debug!("groups before {group} did not come: delivery goes on past them");
                }
                self.last = Some(self.last.map_or(group, |last| last.max(group)));
                return Ok(self.held.remove(&(group, subgroup)));
            }
            let at = *deadline.get_or_insert_with(|| Instant::now() + REORDER_WAIT);
            tokio::select! {
                next = self.groups.next() => self.take(next),
                _ = tokio::time::sleep_until(at) => {}
            }
        }
    }

    /// Take every subgroup the transport already has, up to the hold limit.
    fn take_ready(&mut self) {
        while self.ended.is_none() && self.held.len() < REORDER_GROUPS {
            match self.groups.next().now_or_never() {
                Some(next) => self.take(next),
                None => return,
            }
        }
    }

    fn take(&mut self, next: Result<Option<SubgroupReader>, ServeError>) {
        match next {
            Ok(Some(subgroup)) => {
                self.held
                    .insert((subgroup.group_id, subgroup.subgroup_id), subgroup);
            }
            Ok(None) => self.ended = Some(Ok(())),
            Err(err) => self.ended = Some(Err(err)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use moq_transport::coding::TrackNamespace;
    use moq_transport::serve::{Subgroup, SubgroupWriter, SubgroupsWriter, Track, TrackReaderMode};

    async fn track() -> (SubgroupsWriter, SubgroupsReader) {
        let (writer, reader) = Track::new(TrackNamespace::from_utf8_path("order"), "t").produce();
        let writer = writer.subgroups().expect("subgroups");
        let TrackReaderMode::Subgroups(reader) = reader.mode().await.expect("mode") else {
            panic!("subgroup mode expected");
        };
        (writer, reader)
    }

    fn group(writer: &mut SubgroupsWriter, group_id: u64) -> SubgroupWriter {
        let mut subgroup = writer
            .create(Subgroup {
                group_id,
                subgroup_id: 0,
                priority: 0,
            })
            .expect("create");
        subgroup.write(Bytes::from_static(b"x")).expect("write");
        subgroup
    }

    /// Groups 0 and 2 came; 0 was delivered.
    async fn zero_delivered_two_waiting() -> (SubgroupsWriter, GroupOrder, [SubgroupWriter; 2]) {
        let (mut writer, reader) = track().await;
        let mut order = GroupOrder::new(reader);
        let held = [group(&mut writer, 0), group(&mut writer, 2)];
        assert_eq!(next_group(&mut order).await, Some(0));
        (writer, order, held)
    }

    async fn next_group(order: &mut GroupOrder) -> Option<u64> {
        order
            .next()
            .await
            .expect("next")
            .map(|subgroup| subgroup.group_id)
    }

    /// Regression: groups whose streams came in the order 0, 2, 1 reached the subscriber
    /// in that order (a burst of 3,000 one-object groups through a relay failed its
    /// in-order check at group 520, 1406, ...).
    #[tokio::test(start_paused = true)]
    async fn a_group_that_comes_after_a_later_one_is_still_delivered_first() {
        let (mut writer, mut order, [g0, g2]) = zero_delivered_two_waiting().await;
        let late = tokio::spawn(async move {
            tokio::time::sleep(REORDER_WAIT / 4).await;
            let g1 = group(&mut writer, 1);
            (writer, g1)
        });
        assert_eq!(next_group(&mut order).await, Some(1));
        assert_eq!(next_group(&mut order).await, Some(2));
        // The track ends once its writer and every subgroup writer are gone.
        let (writer, g1) = late.await.expect("writer task");
        drop((writer, g0, g1, g2));
        assert_eq!(next_group(&mut order).await, None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_gap_that_never_fills_delays_delivery_by_the_reorder_wait_only() {
        let (mut writer, mut order, _held) = zero_delivered_two_waiting().await;
        let started = Instant::now();
        assert_eq!(next_group(&mut order).await, Some(2));
        assert_eq!(started.elapsed(), REORDER_WAIT);
        // A group older than one delivered is delivered too, at once.
        let _g1 = group(&mut writer, 1);
        let started = Instant::now();
        assert_eq!(next_group(&mut order).await, Some(1));
        assert_eq!(started.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn at_most_reorder_groups_are_held_back() {
        let (mut writer, reader) = track().await;
        let mut order = GroupOrder::new(reader);
        let _g0 = group(&mut writer, 0);
        assert_eq!(next_group(&mut order).await, Some(0));
        let held: Vec<_> = (2..2 + REORDER_GROUPS as u64)
            .map(|id| group(&mut writer, id))
            .collect();
        let started = Instant::now();
        assert_eq!(next_group(&mut order).await, Some(2));
        assert_eq!(
            started.elapsed(),
            Duration::ZERO,
            "the hold was full: no wait"
        );
        drop(held);
    }

    #[tokio::test(start_paused = true)]
    async fn what_is_held_is_delivered_before_the_end_of_the_track() {
        let (mut writer, reader) = track().await;
        let mut order = GroupOrder::new(reader);
        let g3 = group(&mut writer, 3);
        let g5 = group(&mut writer, 5);
        assert_eq!(next_group(&mut order).await, Some(3));
        drop((g3, g5));
        writer
            .close(ServeError::Closed(7))
            .expect("close the track");
        assert_eq!(next_group(&mut order).await, Some(5));
        assert_eq!(order.next().await.err(), Some(ServeError::Closed(7)));
        assert_eq!(order.next().await.err(), Some(ServeError::Closed(7)));
    }
}
