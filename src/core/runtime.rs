//! The library's single multi-thread tokio runtime.
//!
//! Created lazily on first use and kept for the life of the process (a runtime cannot be
//! shut down safely while foreign threads may still call in). Every layer reaches it through
//! [`handle`]; blocking entry points go through [`block_on`], which refuses to run on a
//! runtime thread instead of deadlocking or panicking.

use std::future::Future;
use std::sync::OnceLock;

use tokio::runtime::{Handle, Runtime};

use super::error::RuntimeError;

static RUNTIME: OnceLock<Result<Runtime, String>> = OnceLock::new();

fn runtime() -> Result<&'static Runtime, RuntimeError> {
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .thread_name("moq-ffi-rt")
                .enable_all()
                .build()
                .map_err(|err| err.to_string())
        })
        .as_ref()
        .map_err(|reason| RuntimeError::Unavailable {
            reason: reason.clone(),
        })
}

/// A handle to the library runtime, creating it on first use.
///
/// Errors only if the operating system refuses to create the runtime's threads.
pub fn handle() -> Result<Handle, RuntimeError> {
    runtime().map(|rt| rt.handle().clone())
}

/// Whether the calling thread is a tokio runtime thread (ours or any other).
pub fn on_runtime_thread() -> bool {
    Handle::try_current().is_ok()
}

/// Run `future` to completion on the library runtime, blocking the calling thread.
///
/// Safe from any non-runtime thread. Called from a runtime thread (for example from inside
/// a listener callback running on a library thread) it returns
/// [`RuntimeError::BlockingOnRuntimeThread`] instead of blocking the runtime.
pub fn block_on<F: Future>(future: F) -> Result<F::Output, RuntimeError> {
    if on_runtime_thread() {
        return Err(RuntimeError::BlockingOnRuntimeThread);
    }
    Ok(runtime()?.block_on(future))
}

/// Install the process-wide rustls crypto provider (ring) once. Both ring and aws-lc-rs are
/// compiled in through dependencies, so rustls cannot pick one by itself.
pub(crate) fn install_crypto_provider() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        // Err means another component installed a provider first, which is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// Owns a value whose destructor needs the runtime's context (QUIC endpoints, sessions),
/// and drops it inside that context, whichever thread the last reference goes away on.
pub(crate) struct RuntimeDrop<T>(std::mem::ManuallyDrop<T>);

impl<T> RuntimeDrop<T> {
    pub(crate) fn new(value: T) -> Self {
        Self(std::mem::ManuallyDrop::new(value))
    }
}

impl<T> std::ops::Deref for RuntimeDrop<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> Drop for RuntimeDrop<T> {
    fn drop(&mut self) {
        let handle = handle().ok();
        let _entered = handle.as_ref().map(|handle| handle.enter());
        // SAFETY: dropped exactly once, here; never used again.
        unsafe { std::mem::ManuallyDrop::drop(&mut self.0) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_on_from_a_runtime_thread_is_an_error_not_a_deadlock() {
        let from_runtime = block_on(async {
            // Inside a library runtime task: a nested blocking call must refuse.
            handle()
                .unwrap()
                .spawn(async { block_on(async { 1 }) })
                .await
                .unwrap()
        })
        .unwrap();
        assert_eq!(from_runtime, Err(RuntimeError::BlockingOnRuntimeThread));
        assert_eq!(block_on(async { 2 }), Ok(2));
    }
}
