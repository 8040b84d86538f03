//! Running foreign callbacks safely (shared by the UniFFI and C layers): never under a
//! library lock, never after their owner was torn down, on library threads of their own so a
//! slow callback cannot stall the async runtime.

use std::sync::{Arc, Condvar, Mutex};
use std::thread::{JoinHandle, ThreadId};

use crate::core::connection::lock;

/// Admission control for one owner's callbacks (a subscription, a connection, a namespace
/// registration). [`Gate::run`] runs a callback unless the gate is closed;
/// [`Gate::close`] returns once no callback is running or will start, except one running
/// on the calling thread (teardown from inside a callback must not deadlock).
#[derive(Default)]
pub(crate) struct Gate {
    state: Mutex<GateState>,
    idle: Condvar,
}

#[derive(Default)]
struct GateState {
    closed: bool,
    running: Vec<ThreadId>,
}

impl Gate {
    /// Run `callback` unless closed. Returns false if it did not run. The gate's lock is
    /// not held while `callback` runs.
    pub fn run(&self, callback: impl FnOnce()) -> bool {
        let me = std::thread::current().id();
        {
            let mut state = lock(&self.state);
            if state.closed {
                return false;
            }
            state.running.push(me);
        }
        struct Leave<'a>(&'a Gate, ThreadId);
        impl Drop for Leave<'_> {
            fn drop(&mut self) {
                let mut state = lock(&self.0.state);
                if let Some(i) = state.running.iter().position(|t| *t == self.1) {
                    state.running.swap_remove(i);
                }
                self.0.idle.notify_all();
            }
        }
        let _leave = Leave(self, me);
        callback();
        true
    }

    /// Close the gate and wait until callbacks running on other threads have returned.
    pub fn close(&self) {
        let me = std::thread::current().id();
        let mut state = lock(&self.state);
        state.closed = true;
        while state.running.iter().any(|t| *t != me) {
            state = self
                .idle
                .wait(state)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
    }

    /// Whether the gate was closed.
    pub fn is_closed(&self) -> bool {
        lock(&self.state).closed
    }
}

/// A library thread that delivers one owner's callbacks, with a stop signal.
pub(crate) struct Worker {
    gate: Arc<Gate>,
    stop: Option<tokio::sync::watch::Sender<bool>>,
    thread: Option<JoinHandle<()>>,
}

/// The stop signal a worker body watches.
pub(crate) type Stop = tokio::sync::watch::Receiver<bool>;

/// Resolves when `stop` is signalled (or its sender dropped).
pub(crate) async fn stopped(mut stop: Stop) {
    let _ = stop.wait_for(|stop| *stop).await.map(|_| ());
}

impl Worker {
    /// Start a named thread running `body(stop)`.
    pub fn spawn(
        name: &str,
        gate: Arc<Gate>,
        body: impl FnOnce(Stop) + Send + 'static,
    ) -> Result<Self, std::io::Error> {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let thread = std::thread::Builder::new()
            .name(name.chars().take(15).collect())
            .spawn(move || body(stop_rx))?;
        Ok(Self {
            gate,
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }

    /// Stop: no callback runs after this returns (except one on the calling thread), the
    /// thread is signalled, and joined unless it is the calling thread.
    pub fn stop(&mut self) {
        self.gate.close();
        if let Some(stop) = self.stop.take() {
            stop.send_replace(true);
        }
        if let Some(thread) = self.thread.take() {
            if thread.thread().id() != std::thread::current().id() {
                let _ = thread.join();
            }
            // Called from inside its own callback: the thread exits when the callback
            // returns, seeing the closed gate and the stop signal.
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.stop();
    }
}
