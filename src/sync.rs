//! Lock helpers shared by every layer.

use std::sync::{Mutex, MutexGuard};

/// Lock `mutex`, ignoring poisoning.
///
/// A poisoned lock only means a panic happened elsewhere while it was held; every value this
/// library keeps behind a `Mutex` is updated in single steps that leave it consistent, so
/// carrying on is correct (and the alternative, panicking, would take the app down).
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
