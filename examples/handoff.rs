//! The floor under the foreign faces' added latency: how long a value sent by a runtime task
//! takes to reach (a) another task on the same runtime, as the Rust core's subscriber gets an
//! object, and (b) a plain thread waiting in `Handle::block_on`, as the bridge's pump (the
//! C ABI's and UniFFI listeners' delivery thread) gets it. No network, no relay: only the
//! wake-up. One value every millisecond, like the paced benchmark workload.
//!
//! Run: `cargo run --release --example handoff [count] [runs]` (defaults 1,000 and 5); prints
//! the median over runs of each path's p50 and p99, in microseconds, and the difference.

use std::time::{Duration, Instant};

use tokio::sync::mpsc;

/// One run: `count` values paced 1 ms apart; returns sorted one-way delays in ns.
fn run(runtime: &tokio::runtime::Runtime, count: usize, on_thread: bool) -> Vec<u64> {
    let (tx, mut rx) = mpsc::unbounded_channel::<Instant>();
    let sender = runtime.spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(1));
        for _ in 0..count {
            tick.tick().await;
            if tx.send(Instant::now()).is_err() {
                return;
            }
        }
    });
    let mut delays = Vec::with_capacity(count);
    if on_thread {
        let handle = runtime.handle().clone();
        delays = std::thread::spawn(move || {
            let mut delays = Vec::with_capacity(count);
            while let Some(sent) = handle.block_on(rx.recv()) {
                delays.push(sent.elapsed().as_nanos() as u64);
            }
            delays
        })
        .join()
        .unwrap_or_default();
    } else {
        runtime.block_on(async {
            let receiver = tokio::spawn(async move {
                let mut delays = Vec::with_capacity(count);
                while let Some(sent) = rx.recv().await {
                    delays.push(sent.elapsed().as_nanos() as u64);
                }
                delays
            });
            delays = receiver.await.unwrap_or_default();
        });
    }
    let _ = runtime.block_on(sender);
    delays.sort_unstable();
    delays
}

fn percentile_us(sorted: &[u64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1] as f64 / 1e3
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    let mut args = std::env::args().skip(1);
    let count: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1_000);
    let runs: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(5);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (mut task, mut thread) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        // Interleaved, so both paths see the same machine.
        task.push(run(&runtime, count, false));
        thread.push(run(&runtime, count, true));
    }
    let stat = |all: &[Vec<u64>], p| median(all.iter().map(|d| percentile_us(d, p)).collect());
    let (task50, thread50) = (stat(&task, 50.0), stat(&thread, 50.0));
    println!(
        "runtime task   p50 {task50:7.1} us  p99 {:7.1} us",
        stat(&task, 99.0)
    );
    println!(
        "block_on thread p50 {thread50:7.1} us  p99 {:7.1} us",
        stat(&thread, 99.0)
    );
    println!(
        "hand-off to a plain thread adds {:.1} us at p50 ({count} values x {runs} runs, medians)",
        thread50 - task50
    );
}
