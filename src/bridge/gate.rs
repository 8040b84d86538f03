//! Admission control for foreign callbacks: never after their owner was torn down, and a
//! teardown that waits for the callbacks in flight without deadlocking when it is itself
//! called from inside one of them.

use std::sync::{Condvar, Mutex};
use std::thread::ThreadId;

use crate::sync::lock;

/// Admission control for one owner's callbacks (a subscription, a connection, a namespace
/// registration). [`Gate::run`] runs a callback unless the gate is closed;
/// [`Gate::close`] returns once no callback is running or will start, except those running
/// on the calling thread (teardown from inside a callback must not deadlock).
///
/// Thread-safe. The gate's lock is never held while a callback runs.
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
    /// Run `callback` unless closed. Returns false if it did not run. Calls may nest on one
    /// thread (a callback that triggers another delivery of the same owner).
    pub fn run(&self, callback: impl FnOnce()) -> bool {
        let me = std::thread::current().id();
        {
            let mut state = lock(&self.state);
            if state.closed {
                return false;
            }
            state.running.push(me);
        }
        struct Leave<'a>(&'a Gate, std::thread::ThreadId);
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
    /// Blocks: never call it holding a lock a callback might take.
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
    #[cfg(test)]
    pub fn is_closed(&self) -> bool {
        lock(&self.state).closed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn close_from_another_thread_waits_for_the_callback_in_flight() {
        let gate = Arc::new(Gate::default());
        let (entered_tx, entered_rx) = std::sync::mpsc::channel();
        let finished = Arc::new(AtomicBool::new(false));
        let runner = {
            let (gate, finished) = (gate.clone(), finished.clone());
            std::thread::spawn(move || {
                gate.run(|| {
                    entered_tx.send(()).unwrap();
                    std::thread::sleep(Duration::from_millis(200));
                    finished.store(true, Ordering::SeqCst);
                })
            })
        };
        entered_rx.recv().unwrap();
        gate.close();
        assert!(
            finished.load(Ordering::SeqCst),
            "close returned while a callback was still running"
        );
        assert!(!gate.run(|| panic!("a callback ran after close")));
        assert!(runner.join().unwrap());
    }

    #[test]
    fn close_from_inside_a_callback_returns_without_deadlock() {
        let gate = Gate::default();
        assert!(gate.run(|| gate.close()));
        assert!(gate.is_closed());
        assert!(!gate.run(|| panic!("a callback ran after close")));
    }
}
