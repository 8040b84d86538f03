//! Statistics an app reads to run its own rate control and show connection health: the
//! connection's ([`Client::stats`]) and one subscription's
//! ([`Subscriber::stats`](super::Subscriber::stats)).
//!
//! Both are snapshots of counters kept anyway (quinn's per-connection statistics, the
//! subscription's atomics): taking one allocates nothing and holds a lock only for a copy
//! (quinn's connection state, the client's session slot, the subscription's buffer), so
//! polling it every frame is fine (BENCHMARKS.md: about 120 ns in Rust).

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::{Client, ConnectionState};

/// A snapshot of the connection (see [`Client::stats`]). The transport figures are those of
/// the current session (a reconnect starts them afresh); zero while not connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionStats {
    /// The connection state when the snapshot was taken.
    pub state: ConnectionState,
    /// The MoQT draft of the current session; `None` while not connected.
    pub draft: Option<u32>,
    /// Sessions re-established automatically after a loss, over this client's life.
    pub reconnects: u64,
    /// Smoothed round-trip time (QUIC's estimate); zero while not connected.
    pub rtt: Duration,
    /// Congestion window: bytes the sender may have in flight now.
    pub congestion_window: u64,
    /// UDP payload bytes sent on this session (packets' headers and retransmissions included).
    pub bytes_sent: u64,
    /// UDP payload bytes received on this session.
    pub bytes_received: u64,
    /// UDP datagrams (QUIC packets, possibly coalesced) sent on this session.
    pub packets_sent: u64,
    /// UDP datagrams received on this session.
    pub packets_received: u64,
    /// Packets declared lost (and retransmitted where reliable) on this session.
    pub packets_lost: u64,
    /// Times congestion control reacted to loss or congestion on this session.
    pub congestion_events: u64,
    /// QUIC DATAGRAM frames sent (objects of datagram-mode publishers) on this session.
    pub datagrams_sent: u64,
    /// QUIC DATAGRAM frames received on this session.
    pub datagrams_received: u64,
    /// Received datagram objects this client discarded (larger than `max_object_size`) on
    /// this session. Datagrams lost on the network are not seen, so not counted.
    pub datagrams_dropped: u64,
}

/// A snapshot of one subscription as its subscriber sees it (see
/// [`Subscriber::stats`](super::Subscriber::stats)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SubscriptionStats {
    /// Objects handed to this subscriber's buffer (read or not yet).
    pub objects_received: u64,
    /// Payload bytes of those objects.
    pub bytes_received: u64,
    /// Objects discarded unread under `Overflow::DropOldest`.
    pub objects_dropped: u64,
    /// Groups cut short upstream (see [`Subscriber::cut_groups`](super::Subscriber::cut_groups)).
    pub groups_cut: u64,
    /// The group of the latest object received; `None` before the first.
    pub current_group: Option<u64>,
    /// Groups (subgroups) of the track held back behind a gap, waiting for an earlier group
    /// to arrive so delivery stays in order (shared by the track's local subscribers).
    pub groups_held_for_ordering: u64,
    /// Objects received and not read yet.
    pub buffered_objects: u64,
}

impl Client {
    /// A snapshot of the connection's statistics. Cheap (no allocation, no wait): call it as
    /// often as a UI or a rate controller needs. Thread-safe.
    pub fn stats(&self) -> ConnectionStats {
        let live = self.live();
        let mut stats = ConnectionStats {
            state: self.state(),
            draft: live.as_ref().map(|live| live.draft),
            reconnects: self.reconnects(),
            rtt: Duration::ZERO,
            congestion_window: 0,
            bytes_sent: 0,
            bytes_received: 0,
            packets_sent: 0,
            packets_received: 0,
            packets_lost: 0,
            congestion_events: 0,
            datagrams_sent: 0,
            datagrams_received: 0,
            datagrams_dropped: 0,
        };
        if let Some(live) = live {
            let quic = live.connection.stats();
            stats.rtt = quic.path.rtt;
            stats.congestion_window = quic.path.cwnd;
            stats.bytes_sent = quic.udp_tx.bytes;
            stats.bytes_received = quic.udp_rx.bytes;
            stats.packets_sent = quic.udp_tx.datagrams;
            stats.packets_received = quic.udp_rx.datagrams;
            stats.packets_lost = quic.path.lost_packets;
            stats.congestion_events = quic.path.congestion_events;
            stats.datagrams_sent = quic.frame_tx.datagram;
            stats.datagrams_received = quic.frame_rx.datagram;
            stats.datagrams_dropped = live.datagrams_dropped.load(Ordering::Relaxed);
        }
        stats
    }
}
