//! A UDP forwarder between one client and the relay that can delay, drop a share of,
//! black-hole, or rate-limit the traffic (test-only fault injection).
//!
//! The client connects to [`FaultyLink::addr`] instead of the relay; datagrams from the
//! client go to the relay from the link's own upstream socket, and the relay's answers go
//! back to the last client address seen. Faults apply to both directions and can change
//! while a session runs. Drops are drawn from a seeded generator, so a run is repeatable.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Context;
use tokio::net::UdpSocket;
use tokio::sync::Notify;

/// The faults applied now, shared with the forwarding thread.
#[derive(Default)]
struct Faults {
    /// Share of datagrams dropped, in millionths.
    loss_ppm: AtomicU32,
    /// Added one-way delay, microseconds.
    delay_us: AtomicU64,
    /// Drop everything.
    black_hole: AtomicBool,
    /// Client-to-relay rate limit, bytes per second; 0: none.
    upstream_rate: AtomicU64,
    forwarded: AtomicU64,
    dropped: AtomicU64,
}

/// A running forwarder. Stops when dropped.
pub struct FaultyLink {
    addr: SocketAddr,
    faults: Arc<Faults>,
    stop: Arc<Notify>,
    thread: Option<JoinHandle<()>>,
}

impl FaultyLink {
    /// Forward between a new local port and `relay`. `seed` makes the drop pattern repeatable.
    pub fn start(relay: SocketAddr, seed: u64) -> anyhow::Result<Self> {
        let client_side = std::net::UdpSocket::bind("127.0.0.1:0").context("bind client side")?;
        let relay_side = std::net::UdpSocket::bind("127.0.0.1:0").context("bind relay side")?;
        relay_side.connect(relay).context("connect relay side")?;
        client_side.set_nonblocking(true)?;
        relay_side.set_nonblocking(true)?;
        let addr = client_side.local_addr()?;
        let faults = Arc::new(Faults::default());
        let stop = Arc::new(Notify::new());
        let thread = {
            let faults = faults.clone();
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("faulty-link".into())
                .spawn(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .expect("faulty link runtime");
                    runtime.block_on(async move {
                        let client_side =
                            Arc::new(UdpSocket::from_std(client_side).expect("client socket"));
                        let relay_side =
                            Arc::new(UdpSocket::from_std(relay_side).expect("relay socket"));
                        let rng = Arc::new(Mutex::new(seed | 1));
                        let client: Arc<Mutex<Option<SocketAddr>>> = Arc::default();
                        let upstream =
                            forward_up(&client_side, &relay_side, &client, &faults, &rng);
                        let downstream =
                            forward_down(&relay_side, &client_side, &client, &faults, &rng);
                        tokio::select! {
                            _ = upstream => {}
                            _ = downstream => {}
                            _ = stop.notified() => {}
                        }
                    });
                })?
        };
        Ok(Self {
            addr,
            faults,
            stop,
            thread: Some(thread),
        })
    }

    /// Where the client should connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Drop this share of datagrams (0.0 to 1.0), each direction independently.
    pub fn set_loss(&self, share: f64) {
        let ppm = (share.clamp(0.0, 1.0) * 1e6) as u32;
        self.faults.loss_ppm.store(ppm, Ordering::Relaxed);
    }

    /// Delay every datagram by this much, each direction.
    pub fn set_delay(&self, delay: Duration) {
        let us = delay.as_micros().min(u64::MAX as u128) as u64;
        self.faults.delay_us.store(us, Ordering::Relaxed);
    }

    /// Drop everything (true) or nothing extra (false).
    pub fn set_black_hole(&self, on: bool) {
        self.faults.black_hole.store(on, Ordering::Relaxed);
    }

    /// Limit the client-to-relay direction to `bytes_per_s` (`None`: no limit), as a slow
    /// uplink does: datagrams leave at that rate, and what arrives meanwhile waits in the
    /// link's socket buffer, or is dropped once that is full.
    pub fn set_upstream_rate(&self, bytes_per_s: Option<u64>) {
        self.faults
            .upstream_rate
            .store(bytes_per_s.unwrap_or(0), Ordering::Relaxed);
    }

    /// Datagrams forwarded and dropped so far, both directions.
    pub fn counts(&self) -> (u64, u64) {
        (
            self.faults.forwarded.load(Ordering::Relaxed),
            self.faults.dropped.load(Ordering::Relaxed),
        )
    }
}

impl Drop for FaultyLink {
    fn drop(&mut self) {
        self.stop.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// xorshift64*: enough to spread drops evenly, and repeatable from the seed.
fn next_unit(rng: &Mutex<u64>) -> u32 {
    let mut state = rng.lock().unwrap_or_else(|e| e.into_inner());
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    (state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 32) as u32 % 1_000_000
}

/// Whether this datagram goes through, counting the outcome.
fn admit(faults: &Faults, rng: &Mutex<u64>) -> bool {
    let dropped = faults.black_hole.load(Ordering::Relaxed)
        || next_unit(rng) < faults.loss_ppm.load(Ordering::Relaxed);
    let counter = if dropped {
        &faults.dropped
    } else {
        &faults.forwarded
    };
    counter.fetch_add(1, Ordering::Relaxed);
    !dropped
}

async fn forward_up(
    from: &Arc<UdpSocket>,
    to: &Arc<UdpSocket>,
    client: &Arc<Mutex<Option<SocketAddr>>>,
    faults: &Arc<Faults>,
    rng: &Arc<Mutex<u64>>,
) {
    let mut buf = vec![0u8; 65_536];
    // When the previous datagram finished leaving under the rate limit.
    let mut free_at = tokio::time::Instant::now();
    loop {
        let Ok((len, source)) = from.recv_from(&mut buf).await else {
            tokio::time::sleep(Duration::from_millis(1)).await;
            continue;
        };
        *client.lock().unwrap_or_else(|e| e.into_inner()) = Some(source);
        if !admit(faults, rng) {
            continue;
        }
        let rate = faults.upstream_rate.load(Ordering::Relaxed);
        if rate > 0 {
            // Not receiving while this one waits: the socket buffer is the link's queue.
            free_at = free_at.max(tokio::time::Instant::now());
            tokio::time::sleep_until(free_at).await;
            free_at += Duration::from_secs_f64(len as f64 / rate as f64);
        }
        send(to, None, &buf[..len], faults).await;
    }
}

async fn forward_down(
    from: &Arc<UdpSocket>,
    to: &Arc<UdpSocket>,
    client: &Arc<Mutex<Option<SocketAddr>>>,
    faults: &Arc<Faults>,
    rng: &Arc<Mutex<u64>>,
) {
    let mut buf = vec![0u8; 65_536];
    loop {
        // A relay that is gone answers with ICMP "port unreachable", which surfaces here as
        // an error on the connected socket: keep forwarding rather than stop.
        let Ok(len) = from.recv(&mut buf).await else {
            tokio::time::sleep(Duration::from_millis(1)).await;
            continue;
        };
        let Some(target) = *client.lock().unwrap_or_else(|e| e.into_inner()) else {
            continue;
        };
        if !admit(faults, rng) {
            continue;
        }
        send(to, Some(target), &buf[..len], faults).await;
    }
}

/// Send now (keeping order), or after the configured delay without holding up the rest.
async fn send(socket: &Arc<UdpSocket>, target: Option<SocketAddr>, data: &[u8], faults: &Faults) {
    let delay = Duration::from_micros(faults.delay_us.load(Ordering::Relaxed));
    if delay.is_zero() {
        let _ = match target {
            Some(target) => socket.send_to(data, target).await,
            None => socket.send(data).await,
        };
        return;
    }
    let socket = socket.clone();
    let data = data.to_vec();
    tokio::spawn(async move {
        tokio::time::sleep(delay).await;
        let _ = match target {
            Some(target) => socket.send_to(&data, target).await,
            None => socket.send(&data).await,
        };
    });
}
