//! The one delivery loop of both foreign faces: pull items from an async source on the
//! runtime, hand each to a foreign callback on a library thread of its own.
//!
//! Why a thread per registration: a foreign callback may block (or call back into the
//! library's blocking functions), which must never stall the async runtime. Why a [`Gate`]:
//! [`Pump::stop`] returns only once no callback is running or can start, except one running
//! on the calling thread, so teardown from inside a callback cannot deadlock and no callback
//! ever runs after its owner was torn down.

use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::thread::JoinHandle;

use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;

use super::gate::Gate;

/// Where a pump's items come from. Polled only on the pump's thread, inside the runtime.
pub(crate) trait Source: Send + 'static {
    /// What is delivered to the callback.
    type Item: Send;
    /// The next item, or `None` once the source is exhausted.
    fn next(&mut self) -> impl Future<Output = Option<Self::Item>>;
    /// Release what the source holds (e.g. unsubscribe). Runs once, on the pump's thread,
    /// after the last delivery, whether the source ran out or the pump was stopped.
    fn finish(self) -> impl Future<Output = ()>
    where
        Self: Sized,
    {
        async {}
    }
}

/// Whether to keep delivering after a callback returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flow {
    /// Deliver the next item.
    Continue,
    /// Stop: the source is finished and the thread ends.
    Stop,
}

/// What a delivery callback can ask its pump.
pub(crate) struct Delivery {
    stop: CancellationToken,
}

impl Delivery {
    /// Whether the pump is being stopped: a callback delivering a batch item by item checks
    /// it between items so a stop from another thread does not wait for the whole batch.
    pub fn is_stopping(&self) -> bool {
        self.stop.is_cancelled()
    }
}

/// A running delivery: a named thread pulling from a [`Source`] and calling a callback.
/// Dropping it stops it (see [`Pump::stop`]).
pub(crate) struct Pump {
    stop: CancellationToken,
    gate: Arc<Gate>,
    thread: Option<JoinHandle<()>>,
}

impl Pump {
    /// Start a thread named `name` delivering `source`'s items to `deliver`, in order, one
    /// call at a time. A panic in `deliver` is logged and delivery continues.
    pub fn spawn<S: Source>(
        name: &str,
        runtime: Handle,
        mut source: S,
        mut deliver: impl FnMut(S::Item, &Delivery) -> Flow + Send + 'static,
    ) -> Result<Self, std::io::Error> {
        let stop = CancellationToken::new();
        let gate = Arc::new(Gate::default());
        let context = Delivery { stop: stop.clone() };
        let body_gate = gate.clone();
        let label = name.to_string();
        let thread = std::thread::Builder::new()
            .name(name.chars().take(15).collect())
            .spawn(move || {
                loop {
                    let item = runtime.block_on(async {
                        tokio::select! {
                            biased;
                            _ = context.stop.cancelled() => None,
                            item = source.next() => item,
                        }
                    });
                    let Some(item) = item else { break };
                    let mut flow = Flow::Stop;
                    let ran = body_gate.run(|| {
                        match catch_unwind(AssertUnwindSafe(|| deliver(item, &context))) {
                            Ok(next) => flow = next,
                            Err(_) => {
                                log::error!("{label}: a callback panicked; delivery continues");
                                flow = Flow::Continue;
                            }
                        }
                    });
                    if !ran || flow == Flow::Stop || context.stop.is_cancelled() {
                        break;
                    }
                }
                runtime.block_on(source.finish());
            })?;
        Ok(Self {
            stop,
            gate,
            thread: Some(thread),
        })
    }

    /// Stop delivering: once this returns no callback runs or will start, except one on
    /// the calling thread (a stop from inside the callback returns at once; the thread ends
    /// when that callback returns). Otherwise waits for the thread to finish its source.
    /// Idempotent. Blocks: never call it holding a lock a callback might take.
    pub fn stop(&mut self) {
        // Cancel first, so a callback delivering a batch sees it between items.
        self.stop.cancel();
        self.gate.close();
        if let Some(thread) = self.thread.take() {
            if thread.thread().id() != std::thread::current().id() {
                // Free here: no lock of ours is held by this function.
                let _ = thread.join();
            }
        }
    }

    /// Whether the calling thread is this pump's thread (i.e. inside its callback).
    pub fn is_its_thread(&self) -> bool {
        self.thread
            .as_ref()
            .is_some_and(|t| t.thread().id() == std::thread::current().id())
    }

    /// Whether the pump's thread is still delivering (or finishing its source).
    pub fn is_running(&self) -> bool {
        self.thread.as_ref().is_some_and(|t| !t.is_finished())
    }
}

impl Drop for Pump {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;
    use std::time::Duration;

    /// Counts up forever (a slow source), recording that it was finished.
    struct Counter {
        next: usize,
        finished: Arc<AtomicUsize>,
    }

    impl Source for Counter {
        type Item = usize;
        async fn next(&mut self) -> Option<usize> {
            tokio::time::sleep(Duration::from_millis(1)).await;
            self.next += 1;
            Some(self.next)
        }
        async fn finish(self) {
            self.finished.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// A pump over a [`Counter`] that adds to `finished` when its source is finished.
    fn counting_pump(
        finished: &Arc<AtomicUsize>,
        deliver: impl FnMut(usize, &Delivery) -> Flow + Send + 'static,
    ) -> Pump {
        let runtime = super::super::runtime::handle().unwrap();
        let counter = Counter {
            next: 0,
            finished: finished.clone(),
        };
        Pump::spawn("test-pump", runtime, counter, deliver).unwrap()
    }

    #[test]
    fn stop_from_inside_delivery_returns_and_nothing_is_delivered_after() {
        let finished = Arc::new(AtomicUsize::new(0));
        let delivered = Arc::new(AtomicUsize::new(0));
        let slot: Arc<Mutex<Option<Pump>>> = Arc::new(Mutex::new(None));
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        let pump = {
            let (slot, delivered) = (slot.clone(), delivered.clone());
            counting_pump(&finished, move |item, _| {
                delivered.fetch_add(1, Ordering::SeqCst);
                if item == 3 {
                    // Take the pump out first: never stop while holding the slot's lock.
                    let pump = crate::sync::lock(&slot).take();
                    if let Some(mut pump) = pump {
                        pump.stop(); // from inside its own callback: must not deadlock
                    }
                    done_tx.send(()).unwrap();
                }
                Flow::Continue
            })
        };
        *crate::sync::lock(&slot) = Some(pump);
        done_rx.recv_timeout(Duration::from_secs(10)).unwrap();
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(delivered.load(Ordering::SeqCst), 3);
        assert_eq!(finished.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn stop_from_another_thread_waits_for_delivery_in_flight() {
        let finished = Arc::new(AtomicUsize::new(0));
        let in_flight = Arc::new(AtomicUsize::new(0));
        let (entered_tx, entered_rx) = std::sync::mpsc::channel();
        let mut pump = {
            let in_flight = in_flight.clone();
            counting_pump(&finished, move |_, _| {
                in_flight.fetch_add(1, Ordering::SeqCst);
                let _ = entered_tx.send(());
                std::thread::sleep(Duration::from_millis(50));
                in_flight.fetch_sub(1, Ordering::SeqCst);
                Flow::Continue
            })
        };
        entered_rx.recv_timeout(Duration::from_secs(10)).unwrap();
        pump.stop();
        assert_eq!(
            in_flight.load(Ordering::SeqCst),
            0,
            "stop returned mid-callback"
        );
        assert_eq!(finished.load(Ordering::SeqCst), 1, "source not finished");
        assert!(!pump.is_running());
    }

    #[test]
    fn a_panicking_callback_does_not_end_delivery() {
        let delivered = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = std::sync::mpsc::channel();
        let _pump = {
            let delivered = delivered.clone();
            counting_pump(&Arc::default(), move |item, _| {
                delivered.fetch_add(1, Ordering::SeqCst);
                if item == 1 {
                    panic!("callback failure");
                }
                if item == 3 {
                    let _ = tx.send(());
                }
                Flow::Continue
            })
        };
        rx.recv_timeout(Duration::from_secs(10)).unwrap();
        assert!(delivered.load(Ordering::SeqCst) >= 3);
    }
}
