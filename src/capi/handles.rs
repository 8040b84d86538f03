//! What a C caller holds: handles that are ids, not addresses.
//!
//! `MoqClient*`, `MoqPublisher*` and `MoqSubscriber*` are opaque numbers the library looks
//! up in a registry (like file descriptors, but never reused within a process). Every entry
//! point takes a strong reference to what it uses for the whole call, so a destroy from
//! another thread or from inside a callback the call is delivering never frees memory in
//! use; and a handle that was destroyed (or never created here) is reported as
//! `MOQ_ERROR_INVALID_ARGUMENT` instead of being undefined behaviour. A destroy of such a
//! handle is a no-op.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use super::boundary::CError;

/// Ids for every kind of handle come from one counter, so a client passed where a
/// subscriber is expected is reported, not confused with one.
static NEXT_ID: AtomicUsize = AtomicUsize::new(1);

/// The live handles of one kind.
pub(crate) struct Registry<T> {
    what: &'static str,
    live: std::sync::LazyLock<RwLock<HashMap<usize, Arc<T>>>>,
}

impl<T> Registry<T> {
    /// An empty registry; `what` names the argument in error messages ("client").
    pub const fn new(what: &'static str) -> Self {
        Self {
            what,
            live: std::sync::LazyLock::new(Default::default),
        }
    }

    /// Register `value` and return its handle.
    pub fn insert<H>(&self, value: Arc<T>) -> *mut H {
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        self.live
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(id, value);
        id as *mut H
    }

    /// A strong reference to the value behind `handle`, for the duration of a call.
    pub fn get<H>(&self, handle: *const H) -> Result<Arc<T>, CError> {
        if handle.is_null() {
            return Err(CError::invalid(format!("{} is NULL", self.what)));
        }
        self.live
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(&(handle as usize))
            .cloned()
            .ok_or_else(|| {
                CError::invalid(format!(
                    "{} is not a live handle: it was destroyed already (or not created by this library)",
                    self.what
                ))
            })
    }

    /// Unregister `handle`: later calls with it fail. `None` if it was not live.
    pub fn remove<H>(&self, handle: *const H) -> Option<Arc<T>> {
        self.live
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(&(handle as usize))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_destroyed_handle_is_an_error_and_ids_are_not_reused() {
        let registry: Registry<u32> = Registry::new("thing");
        let first: *mut () = registry.insert(Arc::new(1));
        assert_eq!(*registry.get(first).unwrap(), 1);
        assert!(registry.remove(first).is_some());
        assert!(
            registry.remove(first).is_none(),
            "a double destroy is a no-op"
        );
        let err = registry.get(first).unwrap_err();
        assert!(err.message.contains("not a live handle"), "{}", err.message);
        let second: *mut () = registry.insert(Arc::new(2));
        assert_ne!(first, second);
        assert!(registry
            .get(std::ptr::null::<()>())
            .unwrap_err()
            .message
            .contains("NULL"));
    }
}
