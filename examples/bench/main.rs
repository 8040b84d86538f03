//! The Rust path programs of the benchmark suite (`scripts/bench` runs them): the SDK's core
//! (`core`) and a plain moq-transport client with no SDK layer (`baseline`), through a relay
//! named by `MOQ_RELAY_MOQT_URL` / `MOQ_RELAY_CA_FILE` (with `MOQ_RELAY_SUBSCRIBE_URL`, the
//! core's publisher and subscriber are on two relays of a cluster).
//!
//! Usage: `bench <core|baseline> <workload> <count> <size>`; one run per invocation, one
//! `RESULT {json}` line on stdout. Workloads (shared with the C, Python and Kotlin programs,
//! see `bench/README.md`): `burst`, `paced`, `datagram`, `publish`; core only: `stats`,
//! `joinfetch` (count = objects in the fetched group), `memory` (count = subscriptions) and
//! `soak` (count = seconds).

mod baseline;
mod sdk;
mod workloads;

use std::time::{Duration, Instant};

/// Which client the workloads run on.
pub enum Path {
    Core,
    Baseline,
}

pub struct Args {
    pub url: String,
    /// Where the subscribing client of the two-client workloads connects, when not `url`
    /// (`MOQ_RELAY_SUBSCRIBE_URL`: another relay of a cluster, for the two-relay figures).
    pub subscribe_url: Option<String>,
    pub ca_file: String,
    pub namespace: String,
    pub count: usize,
    pub size: usize,
}

/// The moment every timestamp in this process counts from.
pub fn epoch() -> Instant {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// Nanoseconds since [`epoch`].
pub fn now_ns() -> u64 {
    epoch().elapsed().as_nanos() as u64
}

/// Payload of `size` bytes (at least 16) carrying its index and send time.
pub fn stamped(index: usize, size: usize) -> bytes::Bytes {
    let mut payload = vec![0u8; size.max(16)];
    payload[..8].copy_from_slice(&(index as u64).to_le_bytes());
    payload[8..16].copy_from_slice(&now_ns().to_le_bytes());
    payload.into()
}

pub fn index_of(payload: &[u8]) -> u64 {
    u64::from_le_bytes(payload[..8].try_into().unwrap_or_default())
}

pub fn sent_ns(payload: &[u8]) -> u64 {
    u64::from_le_bytes(payload[8..16].try_into().unwrap_or_default())
}

/// Process CPU time (user + system).
pub fn cpu_time() -> Duration {
    // SAFETY: getrusage fills the zeroed struct it is given.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// Resident set size in MB (from /proc/self/statm).
pub fn rss_mb() -> f64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: f64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as f64;
    pages * page / 1e6
}

/// Nearest-rank percentile of sorted latencies, in microseconds.
pub fn percentile_us(sorted_ns: &[u64], p: f64) -> f64 {
    if sorted_ns.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted_ns.len() as f64).ceil() as usize;
    sorted_ns[rank.clamp(1, sorted_ns.len()) - 1] as f64 / 1e3
}

pub fn fail(message: impl std::fmt::Display) -> ! {
    eprintln!("bench: {message}");
    std::process::exit(1);
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    epoch();
    let argv: Vec<String> = std::env::args().collect();
    if argv.len() != 5 {
        fail("usage: bench <core|baseline> <workload> <count> <size>");
    }
    let path = match argv[1].as_str() {
        "core" => Path::Core,
        "baseline" => Path::Baseline,
        other => fail(format!("unknown path {other}")),
    };
    let env = |name: &str| std::env::var(name).unwrap_or_else(|_| fail(format!("{name} unset")));
    let args = Args {
        url: env("MOQ_RELAY_MOQT_URL"),
        subscribe_url: std::env::var("MOQ_RELAY_SUBSCRIBE_URL").ok(),
        ca_file: env("MOQ_RELAY_CA_FILE"),
        namespace: format!("bench-{}-{}-{}", std::process::id(), argv[1], argv[2]),
        count: argv[3]
            .parse()
            .unwrap_or_else(|_| fail("count must be a number")),
        size: argv[4]
            .parse()
            .unwrap_or_else(|_| fail("size must be a number")),
    };
    let result = match argv[2].as_str() {
        "burst" => workloads::burst(&path, &args).await,
        "paced" => workloads::paced(&path, &args, false).await,
        "datagram" => workloads::paced(&path, &args, true).await,
        "publish" => workloads::publish(&path, &args).await,
        "stats" => workloads::stats(&path, &args).await,
        "joinfetch" => workloads::join_fetch(&path, &args).await,
        "memory" => sdk::memory(&args).await,
        "soak" => sdk::soak(&args).await,
        other => fail(format!("unknown workload {other}")),
    };
    println!("RESULT {result}");
}

/// Rounds the publish microbenchmark is split into; it reports the median round, so a
/// scheduler preemption on a busy machine spoils one round instead of the figure.
pub const PUBLISH_ROUNDS: u64 = 10;

/// Median over [`PUBLISH_ROUNDS`] rounds of the mean ns per `call` (`count` calls in all;
/// `call` gets the call's index).
pub fn median_round_ns(count: u64, mut call: impl FnMut(u64)) -> f64 {
    let per_round = (count / PUBLISH_ROUNDS).max(1);
    let mut rounds: Vec<f64> = (0..PUBLISH_ROUNDS)
        .map(|round| {
            let started = Instant::now();
            for i in round * per_round..(round + 1) * per_round {
                call(i);
            }
            started.elapsed().as_nanos() as f64 / per_round as f64
        })
        .collect();
    rounds.sort_by(f64::total_cmp);
    (rounds[rounds.len() / 2 - 1] + rounds[rounds.len() / 2]) / 2.0
}
