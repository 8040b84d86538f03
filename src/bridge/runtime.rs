//! The library's single multi-thread tokio runtime, for the foreign faces.
//!
//! Created lazily on first use and kept for the life of the process (a runtime cannot be
//! shut down safely while foreign threads may still call in). Blocking entry points go
//! through [`block_on`], which refuses to run on a runtime thread instead of deadlocking or
//! panicking; async entry points go through [`spawn_awaited`], which runs the work on the
//! runtime whatever executor awaits it and cancels it when the caller stops awaiting.

use std::future::Future;
use std::sync::OnceLock;

use tokio::runtime::{Handle, Runtime};
use tokio_util::task::AbortOnDropHandle;

/// The library runtime could not run the request.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum RuntimeError {
    /// A blocking call was made from a library runtime thread (for example from inside a
    /// listener callback). Blocking there would stall the runtime; use the async form or
    /// call from your own thread.
    #[error("blocking call made from a moq-ffi runtime thread (e.g. inside a callback); call it from your own thread or use the async API")]
    BlockingOnRuntimeThread,
    /// The runtime's threads could not be created.
    #[error("the moq-ffi runtime could not start: {reason}")]
    Unavailable {
        /// What the operating system reported.
        reason: String,
    },
    /// The work panicked (a bug in this library; the panic was contained).
    #[error("internal error (panic in the library); please report it")]
    Panicked,
    /// The work was cancelled before it finished.
    #[error("the operation was cancelled")]
    Cancelled,
}

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

/// Whether the calling thread is inside a tokio runtime context (ours or any other).
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

/// Run `work` as a task on the library runtime and await it from whatever executor polls
/// the returned future (Kotlin coroutines, Swift tasks, Python asyncio). Dropping the
/// returned future (a cancelled coroutine) aborts the task; a panic inside is contained.
pub async fn spawn_awaited<T, F>(work: F) -> Result<T, RuntimeError>
where
    F: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let task = AbortOnDropHandle::new(handle()?.spawn(work));
    task.await.map_err(|err| {
        if err.is_panic() {
            RuntimeError::Panicked
        } else {
            RuntimeError::Cancelled
        }
    })
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

    #[test]
    fn dropping_an_awaited_spawn_aborts_the_work() {
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let guard = DropSignal(Some(tx));
        let awaited = spawn_awaited(async move {
            let _guard = guard;
            std::future::pending::<()>().await
        });
        // Poll once so the task is spawned, then drop the future as a cancelled caller does.
        block_on(async {
            let _ = tokio::time::timeout(std::time::Duration::from_millis(50), awaited).await;
        })
        .unwrap();
        assert!(rx.recv_timeout(std::time::Duration::from_secs(10)).is_ok());
    }

    #[test]
    fn a_panic_in_awaited_work_is_contained() {
        let outcome = block_on(spawn_awaited(async { panic!("boom") })).unwrap();
        assert_eq!(outcome, Err::<(), _>(RuntimeError::Panicked));
    }

    struct DropSignal(Option<std::sync::mpsc::Sender<()>>);
    impl Drop for DropSignal {
        fn drop(&mut self) {
            if let Some(tx) = self.0.take() {
                let _ = tx.send(());
            }
        }
    }
}
