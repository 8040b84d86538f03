//! Dropping values whose destructors need a tokio runtime's context (QUIC endpoints,
//! sessions, tracks that send UNSUBSCRIBE) on whatever thread lets go of them last: a
//! foreign finalizer, a C destroy, a test thread.

use tokio::runtime::Handle;

/// Owns a value and drops it inside the context of the runtime it was created on.
pub(crate) struct InRuntime<T> {
    value: std::mem::ManuallyDrop<T>,
    runtime: Handle,
}

impl<T> InRuntime<T> {
    pub(crate) fn new(value: T, runtime: Handle) -> Self {
        Self {
            value: std::mem::ManuallyDrop::new(value),
            runtime,
        }
    }
}

impl<T> std::ops::Deref for InRuntime<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T> Drop for InRuntime<T> {
    fn drop(&mut self) {
        let _entered = self.runtime.enter();
        // SAFETY: dropped exactly once, here; never used again.
        unsafe { std::mem::ManuallyDrop::drop(&mut self.value) }
    }
}
