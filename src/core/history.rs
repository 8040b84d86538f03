//! What a publisher keeps of its track for FETCH: its last groups, bounded by count and
//! bytes ([`PublisherOptions::retain_groups`](super::PublisherOptions::retain_groups),
//! [`retain_bytes`](super::PublisherOptions::retain_bytes)).
//!
//! Why the publisher keeps them: relays forward a FETCH to the namespace's publisher instead
//! of answering it from a cache (moq-relay-ietf 0.8 resolves a joining FETCH against its own
//! subscription and forwards the range to the origin session), so past objects exist only
//! where the publisher kept them.
//!
//! Payloads are `Bytes` shared with the objects sent, so keeping them costs no copy; an
//! object is dropped from here once its group is evicted (a FETCH being served holds its
//! own references until it has written them).

use std::collections::VecDeque;
use std::sync::Mutex;

use bytes::Bytes;

use crate::sync::lock;

/// One kept object.
#[derive(Clone, Debug)]
pub(crate) struct Kept {
    pub(crate) group_id: u64,
    pub(crate) object_id: u64,
    pub(crate) payload: Bytes,
}

/// The last groups of one track. Thread-safe; the publisher appends under its own lock,
/// FETCH serving reads a snapshot.
pub(crate) struct History {
    max_groups: u64,
    max_bytes: usize,
    /// Whether the track's objects go as datagrams (no subgroup on the FETCH stream).
    pub(crate) datagrams: bool,
    /// The track's publisher priority, repeated on every FETCH object.
    pub(crate) priority: u8,
    kept: Mutex<Groups>,
}

#[derive(Default)]
struct Groups {
    groups: VecDeque<Group>,
    bytes: usize,
    /// A group too large to keep whole: its later objects are not kept either (a FETCH
    /// never hands out a group with its tail missing and nothing to say so).
    skipped: Option<u64>,
}

struct Group {
    id: u64,
    objects: Vec<Kept>,
}

/// Why a range cannot be served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Unavailable {
    /// Nothing of the range was ever published, or all of it was evicted.
    Nothing {
        /// The kept range, `(first group, last group)`, if any.
        kept: Option<(u64, u64)>,
    },
}

impl History {
    /// Keep at most `max_groups` groups and `max_bytes` payload bytes (both at least 1).
    pub(crate) fn new(max_groups: u64, max_bytes: usize, datagrams: bool, priority: u8) -> Self {
        History {
            max_groups: max_groups.max(1),
            max_bytes: max_bytes.max(1),
            datagrams,
            priority,
            kept: Mutex::default(),
        }
    }

    /// Keep one published object, evicting the oldest groups beyond the bounds. Objects come
    /// in publishing order: group ids increase, object ids increase within a group.
    pub(crate) fn record(&self, group_id: u64, object_id: u64, payload: &Bytes) {
        let mut kept = lock(&self.kept);
        if kept.skipped == Some(group_id) {
            return;
        }
        if kept.groups.back().is_none_or(|g| g.id != group_id) {
            kept.groups.push_back(Group {
                id: group_id,
                objects: Vec::new(),
            });
        }
        kept.bytes += payload.len();
        if let Some(group) = kept.groups.back_mut() {
            group.objects.push(Kept {
                group_id,
                object_id,
                payload: payload.clone(),
            });
        }
        while kept.groups.len() as u64 > self.max_groups
            || (kept.bytes > self.max_bytes && !kept.groups.is_empty())
        {
            let Some(oldest) = kept.groups.pop_front() else {
                break;
            };
            kept.bytes -= oldest
                .objects
                .iter()
                .map(|o| o.payload.len())
                .sum::<usize>();
            if oldest.id == group_id {
                // The newest group alone is over the byte bound.
                kept.skipped = Some(group_id);
            }
        }
    }

    /// The kept objects from `start` to `end` (inclusive; `end.1 == None`: to the end of
    /// group `end.0`), in order.
    pub(crate) fn range(
        &self,
        start: (u64, u64),
        end: (u64, Option<u64>),
    ) -> Result<Vec<Kept>, Unavailable> {
        let kept = lock(&self.kept);
        let within = |o: &&Kept| {
            (o.group_id, o.object_id) >= start
                && match end.1 {
                    Some(last) => (o.group_id, o.object_id) <= (end.0, last),
                    None => o.group_id <= end.0,
                }
        };
        let objects: Vec<Kept> = kept
            .groups
            .iter()
            .filter(|g| g.id >= start.0 && g.id <= end.0)
            .flat_map(|g| g.objects.iter())
            .filter(within)
            .cloned()
            .collect();
        if objects.is_empty() {
            let first = kept.groups.front().map(|g| g.id);
            let last = kept.groups.back().map(|g| g.id);
            return Err(Unavailable::Nothing {
                kept: first.zip(last),
            });
        }
        Ok(objects)
    }

    /// Payload bytes kept now.
    #[cfg(test)]
    fn bytes(&self) -> usize {
        lock(&self.kept).bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(objects: &[Kept]) -> Vec<(u64, u64)> {
        objects.iter().map(|o| (o.group_id, o.object_id)).collect()
    }

    #[test]
    fn keeps_the_last_groups_within_both_bounds() {
        let history = History::new(2, 1000, false, 128);
        for group in 0..4 {
            for object in 0..3 {
                history.record(group, object, &Bytes::from(vec![0; 10]));
            }
        }
        let all = history.range((0, 0), (10, None)).unwrap();
        assert_eq!(
            ids(&all),
            [(2, 0), (2, 1), (2, 2), (3, 0), (3, 1), (3, 2)],
            "only the last two groups"
        );
        assert_eq!(history.bytes(), 60);
        assert_eq!(
            ids(&history.range((2, 1), (3, Some(0))).unwrap()),
            [(2, 1), (2, 2), (3, 0)]
        );
        assert_eq!(
            history.range((0, 0), (1, None)).unwrap_err(),
            Unavailable::Nothing { kept: Some((2, 3)) }
        );

        // The byte bound evicts whole groups, oldest first.
        let history = History::new(10, 25, false, 128);
        for group in 0..3 {
            for object in 0..2 {
                history.record(group, object, &Bytes::from(vec![0; 10]));
            }
        }
        assert_eq!(
            ids(&history.range((0, 0), (9, None)).unwrap()),
            [(2, 0), (2, 1)]
        );
    }

    /// A group larger than the byte bound is not kept at all, nor its later objects: a FETCH
    /// must not hand out a group missing its head.
    #[test]
    fn a_group_over_the_byte_bound_is_not_kept_in_part() {
        let history = History::new(10, 25, false, 128);
        history.record(0, 0, &Bytes::from(vec![0; 10]));
        for object in 0..4 {
            history.record(1, object, &Bytes::from(vec![0; 10]));
        }
        history.record(2, 0, &Bytes::from(vec![0; 10]));
        assert_eq!(ids(&history.range((0, 0), (9, None)).unwrap()), [(2, 0)]);
        assert_eq!(history.bytes(), 10);
    }
}
