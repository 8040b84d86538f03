//! The bounded buffer between a subscription's reader and one local subscriber, with the
//! subscriber's overflow policy applied when the subscriber falls behind.
//!
//! One producer (the track's reader task) and one consumer (the subscriber) per queue, so a
//! stored `Notify` permit is enough to never miss a wake-up in either direction.

use std::collections::VecDeque;
use std::sync::Mutex;

use tokio::sync::Notify;

use super::subscriber::{Object, Overflow};
use crate::sync::lock;

/// What became of one pushed object.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Pushed {
    /// Queued.
    Queued,
    /// Queued after discarding the oldest queued object (`Overflow::DropOldest`).
    ReplacedOldest,
    /// The queue is full and the policy is `Overflow::End`: not queued.
    Overflowed,
    /// The consumer is gone: not queued.
    Closed,
}

struct State {
    items: VecDeque<Object>,
    closed: bool,
}

/// A bounded single-producer, single-consumer queue of objects.
pub(crate) struct Queue {
    state: Mutex<State>,
    capacity: usize,
    overflow: Overflow,
    readable: Notify,
    writable: Notify,
}

impl Queue {
    pub(crate) fn new(capacity: usize, overflow: Overflow) -> Self {
        Self {
            state: Mutex::new(State {
                items: VecDeque::new(),
                closed: false,
            }),
            capacity: capacity.max(1),
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
                if state.items.len() < self.capacity {
                    state.items.push_back(object);
                    drop(state);
                    self.readable.notify_one();
                    return Pushed::Queued;
                }
                match self.overflow {
                    Overflow::Backpressure => {}
                    Overflow::DropOldest => {
                        state.items.pop_front();
                        state.items.push_back(object);
                        drop(state);
                        self.readable.notify_one();
                        return Pushed::ReplacedOldest;
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
                    out.extend(state.items.drain(..n));
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
        let object = lock(&self.state).items.pop_front();
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
        let queue = Queue::new(2, Overflow::DropOldest);
        let mut replaced = 0;
        for i in 0..5 {
            if queue.push(object(i)).await == Pushed::ReplacedOldest {
                replaced += 1;
            }
        }
        let mut out = Vec::new();
        queue.pop_many(&mut out, 10).await;
        assert_eq!(ids(&out), [3, 4]);
        assert_eq!(replaced, 3);
    }

    #[tokio::test]
    async fn end_policy_refuses_when_full() {
        let queue = Queue::new(1, Overflow::End);
        assert_eq!(queue.push(object(0)).await, Pushed::Queued);
        assert_eq!(queue.push(object(1)).await, Pushed::Overflowed);
        assert_eq!(queue.len(), 1);
    }

    #[tokio::test]
    async fn backpressure_waits_for_room_and_loses_nothing() {
        let queue = std::sync::Arc::new(Queue::new(1, Overflow::Backpressure));
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
        let queue = std::sync::Arc::new(Queue::new(1, Overflow::Backpressure));
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
}
