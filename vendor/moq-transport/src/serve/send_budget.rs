// moq-ffi patch (see vendor/README.md): a publisher's byte budget for data not yet sent.

use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

/// Bytes a publisher lets queue on one track ahead of the network.
///
/// The publisher charges each object's payload ([`SendBudget::try_charge`]) and writes it with
/// the charge ([`super::SubgroupWriter::write_charged_object`]). The charge returns to the
/// budget when a session has handed the object to a QUIC stream for a subscription (the first
/// to do so), when a subscription's filter skips it, or when the object is dropped.
///
/// Objects are charged only while a subscription serves the track: with none, nothing is
/// queued toward the network (the track's cache keeps a bounded history for late joiners).
/// When the last subscription ends, the outstanding charges are forgiven.
///
/// Admission: an object is accepted while less than the capacity is charged, so a track holds
/// at most `capacity` plus one object of unsent data. Groups are bounded too: an object that
/// starts a subgroup is refused while `max_groups` subgroups wait for their first object to
/// be sent, which keeps a burst of short groups under the serving side's limit of pending
/// subgroups per subscription (1,024; a subscription past it is ended as lagging).
#[derive(Debug)]
pub struct SendBudget {
    state: Mutex<BudgetState>,
    capacity: usize,
    max_groups: usize,
    room: Notify,
}

/// The most subgroups a [`SendBudget`] lets wait (see its admission rule).
pub const MAX_QUEUED_SUBGROUPS: usize = 512;

#[derive(Debug, Default)]
struct BudgetState {
    charged: usize,
    /// Charged objects that start a subgroup.
    groups: usize,
    subscriptions: usize,
    /// Bumped when the last subscription ends: charges of an older generation are forgiven.
    generation: u64,
}

/// The budget is spent: `queued` bytes in `groups` subgroups wait for the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendBudgetFull {
    pub queued: usize,
    pub groups: usize,
    pub capacity: usize,
    pub max_groups: usize,
}

/// An object's charge; returned to the budget when dropped.
#[derive(Debug)]
pub struct SendCharge {
    budget: Arc<SendBudget>,
    bytes: usize,
    starts_group: bool,
    generation: u64,
}

/// A subscription serving the track; while any exists, objects are charged.
pub(crate) struct ServingSubscription(Arc<SendBudget>);

impl SendBudget {
    /// A budget of `capacity` bytes and `max_groups` subgroups (each at least 1).
    pub fn new(capacity: usize, max_groups: usize) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(BudgetState::default()),
            capacity: capacity.max(1),
            max_groups: max_groups.max(1),
            room: Notify::new(),
        })
    }

    fn state(&self) -> MutexGuard<'_, BudgetState> {
        // The state is a few counters, consistent after every statement.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The budget's size in bytes.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Bytes charged now: published, not yet handed to QUIC.
    pub fn queued(&self) -> usize {
        self.state().charged
    }

    /// Subgroups charged now (waiting for their first object to be sent).
    pub fn queued_groups(&self) -> usize {
        self.state().groups
    }

    /// Charge an object of `bytes` (`starts_group`: the first of its subgroup): `Ok(None)`
    /// when no subscription serves the track (nothing to charge), `Err` when the budget is
    /// spent.
    pub fn try_charge(
        self: &Arc<Self>,
        bytes: usize,
        starts_group: bool,
    ) -> Result<Option<SendCharge>, SendBudgetFull> {
        let mut state = self.state();
        if state.subscriptions == 0 {
            return Ok(None);
        }
        if !self.admits(&state, starts_group) {
            return Err(SendBudgetFull {
                queued: state.charged,
                groups: state.groups,
                capacity: self.capacity,
                max_groups: self.max_groups,
            });
        }
        state.charged += bytes;
        state.groups += usize::from(starts_group);
        Ok(Some(SendCharge {
            budget: self.clone(),
            bytes,
            starts_group,
            generation: state.generation,
        }))
    }

    fn admits(&self, state: &BudgetState, starts_group: bool) -> bool {
        state.subscriptions == 0
            || (state.charged < self.capacity && (!starts_group || state.groups < self.max_groups))
    }

    /// Whether an object (`starts_group`: the first of its subgroup) would be admitted now.
    pub fn has_room(&self, starts_group: bool) -> bool {
        self.admits(&self.state(), starts_group)
    }

    /// Wait until an object (`starts_group`: the first of its subgroup) would be admitted.
    pub async fn ready(&self, starts_group: bool) {
        loop {
            let room = self.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            if self.has_room(starts_group) {
                return;
            }
            room.await;
        }
    }

    /// Subscriptions serving the track now.
    pub fn subscriptions(&self) -> usize {
        self.state().subscriptions
    }

    /// Wait until a subscription serves the track (a publisher that would rather not publish
    /// into nobody: what it publishes before is kept only as the track's newest subgroups).
    pub async fn subscribed(&self) {
        loop {
            let changed = self.room.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if self.subscriptions() > 0 {
                return;
            }
            changed.await;
        }
    }

    pub(crate) fn serving(self: &Arc<Self>) -> ServingSubscription {
        self.state().subscriptions += 1;
        // Wakes `subscribed` (and `ready`, which checks again: nothing is admitted that
        // was not before).
        self.room.notify_waiters();
        ServingSubscription(self.clone())
    }
}

impl Drop for SendCharge {
    fn drop(&mut self) {
        {
            let mut state = self.budget.state();
            if state.generation != self.generation {
                return;
            }
            state.charged = state.charged.saturating_sub(self.bytes);
            state.groups = state.groups.saturating_sub(usize::from(self.starts_group));
        }
        self.budget.room.notify_waiters();
    }
}

impl Drop for ServingSubscription {
    fn drop(&mut self) {
        {
            let mut state = self.0.state();
            state.subscriptions -= 1;
            if state.subscriptions > 0 {
                return;
            }
            state.generation += 1;
            state.charged = 0;
            state.groups = 0;
        }
        self.0.room.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_is_charged_without_a_subscription() {
        let budget = SendBudget::new(10, 1);
        assert!(budget.try_charge(100, true).unwrap().is_none());
        assert!(budget.try_charge(100, true).unwrap().is_none());
        assert_eq!(budget.queued(), 0);
        assert!(budget.has_room(true));
    }

    #[test]
    fn admits_while_under_capacity_and_frees_on_drop() {
        let budget = SendBudget::new(10, 8);
        let _serving = budget.serving();
        let first = budget.try_charge(6, true).unwrap().unwrap();
        // Under capacity: admitted even though it overshoots.
        let second = budget.try_charge(6, false).unwrap().unwrap();
        assert_eq!(budget.queued(), 12);
        assert_eq!(
            budget.try_charge(1, false).unwrap_err(),
            SendBudgetFull {
                queued: 12,
                groups: 1,
                capacity: 10,
                max_groups: 8
            }
        );
        drop(first);
        assert_eq!((budget.queued(), budget.queued_groups()), (6, 0));
        assert!(budget.try_charge(1, false).unwrap().is_some());
        drop(second);
    }

    #[test]
    fn groups_waiting_for_their_first_object_are_bounded() {
        let budget = SendBudget::new(1 << 20, 2);
        let _serving = budget.serving();
        let a = budget.try_charge(1, true).unwrap().unwrap();
        let _b = budget.try_charge(1, true).unwrap().unwrap();
        // A third group waits; more objects of the open groups do not.
        assert!(budget.try_charge(1, true).is_err());
        assert!(!budget.has_room(true) && budget.has_room(false));
        let _more = budget.try_charge(1, false).unwrap().unwrap();
        drop(a);
        assert!(budget.try_charge(1, true).unwrap().is_some());
    }

    #[test]
    fn the_last_subscription_ending_forgives_outstanding_charges() {
        let budget = SendBudget::new(10, 8);
        let serving = budget.serving();
        let old = budget.try_charge(20, true).unwrap().unwrap();
        assert!(!budget.has_room(false));
        drop(serving);
        assert_eq!(budget.queued(), 0);
        let _again = budget.serving();
        let new = budget.try_charge(5, false).unwrap().unwrap();
        // An old charge returning does not free the new generation's bytes.
        drop(old);
        assert_eq!(budget.queued(), 5);
        drop(new);
        assert_eq!(budget.queued(), 0);
    }

    #[tokio::test]
    async fn subscribed_wakes_when_a_subscription_starts_serving() {
        let budget = SendBudget::new(10, 8);
        let waiter = tokio::spawn({
            let budget = budget.clone();
            async move { budget.subscribed().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        assert_eq!(budget.subscriptions(), 0);
        let _serving = budget.serving();
        assert_eq!(budget.subscriptions(), 1);
        tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
            .await
            .expect("woken")
            .unwrap();
        budget.subscribed().await; // at once while one serves
    }

    #[tokio::test]
    async fn ready_wakes_when_a_charge_returns() {
        let budget = SendBudget::new(1, 8);
        let _serving = budget.serving();
        let charge = budget.try_charge(1, false).unwrap().unwrap();
        let waiter = tokio::spawn({
            let budget = budget.clone();
            async move { budget.ready(false).await }
        });
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert!(!waiter.is_finished());
        drop(charge);
        tokio::time::timeout(std::time::Duration::from_secs(10), waiter)
            .await
            .expect("ready() woke")
            .unwrap();
    }
}
