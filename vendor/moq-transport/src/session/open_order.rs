// moq-ffi patch: subgroup streams of one subscription open in the order their
// subgroups were taken from the track.
//
// A subscription serves up to MAX_CONCURRENT_SUBGROUPS subgroups at once, each
// in its own task, and each task opens its own stream. When the peer's stream
// limit is reached, every task waits on the same quinn Notify and whichever is
// polled first after a MAX_STREAMS gets the next stream id: groups went out of
// order by up to the task limit (measured: a burst of 3,000 one-object groups
// through a relay delivered group 590 right after 519, 520 afterwards). A
// receiver accepts streams in id order and creates a subgroup once the
// stream's first object header has arrived, so the order covers opening the
// stream and writing its header and first object header; not the payload (a
// large object waiting for flow control holds back no other).
//
// Each task holds a ticket with its sequence number and waits, just before
// opening, until no earlier ticket is still active. A ticket stops being
// active when it is dropped, after its first object header was written or
// when nothing was (a subgroup filtered out entirely,
// a task that failed or was cancelled), and while it is parked: a subgroup
// that waits for its first object must not hold back the ones after it. Once
// its object is there it is active again, ahead of every later subgroup that
// has not opened yet (a publisher's subgroup can be seen an instant before its
// first object is written into it).

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

/// The opening order of one subscription's subgroup streams.
#[derive(Default)]
pub(super) struct OpenOrder {
    state: Mutex<OrderState>,
    turn: Notify,
}

#[derive(Default)]
struct OrderState {
    /// Tickets handed out so far.
    issued: u64,
    /// Tickets neither dropped nor parked.
    active: BTreeSet<u64>,
}

impl OpenOrder {
    /// The next ticket, in the order subgroups are taken.
    pub(super) fn ticket(self: &Arc<Self>) -> Ticket {
        let mut state = self.lock();
        let seq = state.issued;
        state.issued += 1;
        state.active.insert(seq);
        Ticket {
            order: self.clone(),
            seq,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, OrderState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn set_active(&self, seq: u64, active: bool) {
        let changed = {
            let mut state = self.lock();
            if active {
                state.active.insert(seq)
            } else {
                state.active.remove(&seq)
            }
        };
        if changed && !active {
            self.turn.notify_waiters();
        }
    }
}

/// One subgroup's place in the opening order. Dropping it gives the place up.
pub(super) struct Ticket {
    order: Arc<OpenOrder>,
    seq: u64,
}

impl Ticket {
    /// Wait until no earlier ticket is active.
    pub(super) async fn turn(&self) {
        loop {
            let notified = self.order.turn.notified();
            tokio::pin!(notified);
            // Registered before the check, so a change in between is not missed.
            notified.as_mut().enable();
            if self.order.lock().active.range(..self.seq).next().is_none() {
                return;
            }
            notified.await;
        }
    }

    /// Stop holding back later tickets (waiting for the first object).
    pub(super) fn park(&self) {
        self.order.set_active(self.seq, false);
    }

    /// Hold back later tickets again.
    pub(super) fn unpark(&self) {
        self.order.set_active(self.seq, true);
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.order.set_active(self.seq, false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::FutureExt;

    #[tokio::test]
    async fn later_tickets_wait_for_earlier_active_ones() {
        let order = Arc::new(OpenOrder::default());
        let first = order.ticket();
        let second = order.ticket();
        let third = order.ticket();

        assert!(first.turn().now_or_never().is_some());
        assert!(second.turn().now_or_never().is_none());
        assert!(third.turn().now_or_never().is_none());

        // The second waits for its first object: the third no longer waits for it.
        second.park();
        let waiting = tokio::spawn(async move {
            third.turn().await;
            third
        });
        tokio::task::yield_now().await;
        drop(first);
        let third = waiting.await.expect("third's turn came");

        // Its object came: the second goes before anything after it.
        second.unpark();
        assert!(second.turn().now_or_never().is_some());
        assert!(third.turn().now_or_never().is_none());
        let fourth = order.ticket();
        assert!(fourth.turn().now_or_never().is_none());
        drop(second);
        assert!(third.turn().now_or_never().is_some());
        drop(third);
        assert!(fourth.turn().now_or_never().is_some());
        drop(fourth);
        assert!(order.lock().active.is_empty());
    }
}
