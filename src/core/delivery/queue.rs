//! The bounded buffer between a subscription's reader and one local subscriber, with the
//! subscriber's overflow policy applied when the subscriber falls behind. Bounded in objects
//! and in payload bytes: it is full at `capacity` objects, or when the next object would take
//! it past `max_bytes` (an object larger than `max_bytes` still passes, alone).
//!
//! One producer (the track's reader task) and one consumer (the subscriber) per queue, so a
//! stored `Notify` permit is enough to never miss a wake-up in either direction.

use std::collections::VecDeque;
use std::sync::Mutex;

use tokio::sync::Notify;

use super::{Object, Overflow};
use crate::sync::lock;

/// What became of one pushed object.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Pushed {
    /// Queued.
    Queued,
    /// Queued after discarding this many of the oldest queued objects (`Overflow::DropOldest`;
    /// more than one when the byte bound needed the room of several).
    ReplacedOldest(u64),
    /// The queue is full and the policy is `Overflow::End`: not queued.
    Overflowed,
    /// The consumer is gone: not queued.
    Closed,
}

struct State {
    items: VecDeque<Object>,
    /// Payload bytes of `items`.
    bytes: usize,
    closed: bool,
}

impl State {
    fn has_room(&self, capacity: usize, max_bytes: usize, next: usize) -> bool {
        self.items.is_empty()
            || (self.items.len() < capacity && self.bytes.saturating_add(next) <= max_bytes)
    }

    fn push(&mut self, object: Object) {
        self.bytes += object.payload.len();
        self.items.push_back(object);
    }

    fn pop(&mut self) -> Option<Object> {
        let object = self.items.pop_front()?;
        self.bytes -= object.payload.len();
        Some(object)
    }
}

/// A bounded single-producer, single-consumer queue of objects.
pub(crate) struct Queue {
    state: Mutex<State>,
    capacity: usize,
    max_bytes: usize,
    overflow: Overflow,
    readable: Notify,
    writable: Notify,
}

impl Queue {
    pub(crate) fn new(capacity: usize, max_bytes: usize, overflow: Overflow) -> Self {
        Self {
            state: Mutex::new(State {
                items: VecDeque::new(),
                bytes: 0,
                closed: false,
            }),
            capacity: capacity.max(1),
            max_bytes,
            overflow,
            readable: Notify::new(),
            writable: Notify::new(),
        }
    }

    /// Queue `object`, applying the overflow policy when full (`Backpressure` waits for
    /// room).
    pub(crate) async fn push(&self, object: Object) -> Pushed {
        loop {
            {
                let mut state = lock(&self.state);
                if state.closed {
                    return Pushed::Closed;
                }
                let size = object.payload.len();
                if state.has_room(self.capacity, self.max_bytes, size) {
                    state.push(object);
                    drop(state);
                    self.readable.notify_one();
                    return Pushed::Queued;
                }
                match self.overflow {
                    Overflow::Backpressure => {}
                    Overflow::DropOldest => {
                        let mut discarded = 0;
                        while !state.has_room(self.capacity, self.max_bytes, size) {
                            state.pop();
                            discarded += 1;
                        }
                        state.push(object);
                        drop(state);
                        self.readable.notify_one();
                        return Pushed::ReplacedOldest(discarded);
                    }
                    Overflow::End => return Pushed::Overflowed,
                }
            }
            self.writable.notified().await;
        }
    }

    /// Move up to `max` objects into `out`, waiting for at least one. Returns 0 once the queue
    /// is closed and empty.
    pub(crate) async fn pop_many(&self, out: &mut Vec<Object>, max: usize) -> usize {
        loop {
            {
                let mut state = lock(&self.state);
                if !state.items.is_empty() {
                    let n = max.max(1).min(state.items.len());
                    out.extend((0..n).filter_map(|_| state.pop()));
                    drop(state);
                    self.writable.notify_one();
                    return n;
                }
                if state.closed {
                    return 0;
                }
            }
            self.readable.notified().await;
        }
    }

    /// The next object if one is queued.
    pub(crate) fn try_pop(&self) -> Option<Object> {
        let object = lock(&self.state).pop();
        if object.is_some() {
            self.writable.notify_one();
        }
        object
    }

    /// No more objects will be pushed; queued ones can still be read.
    pub(crate) fn close(&self) {
        lock(&self.state).closed = true;
        self.readable.notify_one();
        self.writable.notify_one();
    }

    /// Objects queued now.
    pub(crate) fn len(&self) -> usize {
        lock(&self.state).items.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(i: u64) -> Object {
        Object {
            group_id: 0,
            object_id: i,
            payload: bytes::Bytes::new(),
        }
    }

    fn ids(objects: &[Object]) -> Vec<u64> {
        objects.iter().map(|o| o.object_id).collect()
    }

    #[tokio::test]
    async fn drop_oldest_keeps_the_newest_and_counts_the_rest() {
        let queue = Queue::new(2, usize::MAX, Overflow::DropOldest);
        let mut replaced = 0;
        for i in 0..5 {
            if let Pushed::ReplacedOldest(n) = queue.push(object(i)).await {
                replaced += n;
            }
        }
        let mut out = Vec::new();
        queue.pop_many(&mut out, 10).await;
        assert_eq!(ids(&out), [3, 4]);
        assert_eq!(replaced, 3);
    }

    #[tokio::test]
    async fn end_policy_refuses_when_full() {
        let queue = Queue::new(1, usize::MAX, Overflow::End);
        assert_eq!(queue.push(object(0)).await, Pushed::Queued);
        assert_eq!(queue.push(object(1)).await, Pushed::Overflowed);
        assert_eq!(queue.len(), 1);
    }

    #[tokio::test]
    async fn backpressure_waits_for_room_and_loses_nothing() {
        let queue = std::sync::Arc::new(Queue::new(1, usize::MAX, Overflow::Backpressure));
        let producer = {
            let queue = queue.clone();
            tokio::spawn(async move {
                for i in 0..100 {
                    assert_eq!(queue.push(object(i)).await, Pushed::Queued);
                }
                queue.close();
            })
        };
        let mut out = Vec::new();
        while queue.pop_many(&mut out, 7).await > 0 {}
        producer.await.unwrap();
        assert_eq!(ids(&out), (0..100).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn close_wakes_a_blocked_producer_and_drains_for_the_consumer() {
        let queue = std::sync::Arc::new(Queue::new(1, usize::MAX, Overflow::Backpressure));
        queue.push(object(0)).await;
        let blocked = {
            let queue = queue.clone();
            tokio::spawn(async move { queue.push(object(1)).await })
        };
        tokio::task::yield_now().await;
        queue.close();
        assert_eq!(blocked.await.unwrap(), Pushed::Closed);
        assert_eq!(queue.try_pop().map(|o| o.object_id), Some(0));
        let mut out = Vec::new();
        assert_eq!(queue.pop_many(&mut out, 1).await, 0);
    }

    fn sized(i: u64, len: usize) -> Object {
        Object {
            group_id: 0,
            object_id: i,
            payload: bytes::Bytes::from(vec![0; len]),
        }
    }

    #[tokio::test]
    async fn the_byte_bound_fills_the_queue_before_the_object_count_does() {
        let queue = Queue::new(100, 1000, Overflow::End);
        assert_eq!(queue.push(sized(0, 600)).await, Pushed::Queued);
        assert_eq!(queue.push(sized(1, 400)).await, Pushed::Queued);
        assert_eq!(queue.push(sized(2, 1)).await, Pushed::Overflowed);
        let mut out = Vec::new();
        queue.pop_many(&mut out, 1).await;
        assert_eq!(queue.push(sized(3, 600)).await, Pushed::Queued, "600 freed");
    }

    /// Regression (#23 item 7): the byte bound can pop several small objects to make room for
    /// one large one, and DropOldest counted one discard per push however many went.
    #[tokio::test]
    async fn drop_oldest_counts_every_object_the_byte_bound_discards() {
        let queue = Queue::new(100, 1000, Overflow::DropOldest);
        for i in 0..10 {
            assert_eq!(queue.push(sized(i, 100)).await, Pushed::Queued);
        }
        assert_eq!(queue.push(sized(10, 550)).await, Pushed::ReplacedOldest(6));
        let mut out = Vec::new();
        queue.pop_many(&mut out, 100).await;
        assert_eq!(ids(&out), [6, 7, 8, 9, 10]);
    }

    #[tokio::test]
    async fn an_object_over_the_byte_bound_passes_alone() {
        let queue = Queue::new(100, 1000, Overflow::DropOldest);
        queue.push(sized(0, 10)).await;
        assert_eq!(queue.push(sized(1, 5000)).await, Pushed::ReplacedOldest(1));
        assert_eq!(queue.len(), 1);
        assert_eq!(queue.try_pop().map(|o| o.object_id), Some(1));
        assert_eq!(queue.push(sized(2, 5000)).await, Pushed::Queued);
    }
}
