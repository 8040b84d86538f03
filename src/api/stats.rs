//! The statistics records: `Client.stats()` and `Subscriber.stats()` (core's
//! `ConnectionStats` and `SubscriptionStats`, durations in microseconds).

use super::records::ConnectionState;
use crate::core;

/// A snapshot of the connection (`Client.stats()`): cheap to take, so poll it as often as a
/// UI or a rate controller needs. Transport figures are those of the current session (a
/// reconnect starts them afresh) and zero while not connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Record)]
pub struct ConnectionStats {
    /// The connection state when the snapshot was taken.
    pub state: ConnectionState,
    /// The MoQT draft of the current session; null while not connected.
    pub draft: Option<u32>,
    /// Sessions re-established automatically after a loss, over the client's life.
    pub reconnects: u64,
    /// Smoothed round-trip time (QUIC's estimate), microseconds.
    pub rtt_us: u64,
    /// Congestion window: bytes the sender may have in flight now.
    pub congestion_window: u64,
    /// UDP payload bytes sent on this session.
    pub bytes_sent: u64,
    /// UDP payload bytes received on this session.
    pub bytes_received: u64,
    /// UDP datagrams (QUIC packets) sent on this session.
    pub packets_sent: u64,
    /// UDP datagrams received on this session.
    pub packets_received: u64,
    /// Packets declared lost on this session.
    pub packets_lost: u64,
    /// Times congestion control reacted to loss or congestion on this session.
    pub congestion_events: u64,
    /// QUIC DATAGRAM frames sent (datagram-mode objects) on this session.
    pub datagrams_sent: u64,
    /// QUIC DATAGRAM frames received on this session.
    pub datagrams_received: u64,
    /// Received datagram objects discarded (over `max_object_size`) on this session.
    pub datagrams_dropped: u64,
}

impl From<core::ConnectionStats> for ConnectionStats {
    fn from(stats: core::ConnectionStats) -> Self {
        Self {
            state: stats.state.into(),
            draft: stats.draft,
            reconnects: stats.reconnects,
            rtt_us: u64::try_from(stats.rtt.as_micros()).unwrap_or(u64::MAX),
            congestion_window: stats.congestion_window,
            bytes_sent: stats.bytes_sent,
            bytes_received: stats.bytes_received,
            packets_sent: stats.packets_sent,
            packets_received: stats.packets_received,
            packets_lost: stats.packets_lost,
            congestion_events: stats.congestion_events,
            datagrams_sent: stats.datagrams_sent,
            datagrams_received: stats.datagrams_received,
            datagrams_dropped: stats.datagrams_dropped,
        }
    }
}

/// A snapshot of one subscription as its subscriber sees it (`Subscriber.stats()`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Record)]
pub struct SubscriptionStats {
    /// Objects handed to this subscriber (read or still buffered).
    pub objects_received: u64,
    /// Payload bytes of those objects.
    pub bytes_received: u64,
    /// Objects discarded unread under `OverflowPolicy.DropOldest`.
    pub objects_dropped: u64,
    /// Groups cut short upstream (the rest of each never arrived).
    pub groups_cut: u64,
    /// The group of the latest object received; null before the first.
    pub current_group: Option<u64>,
    /// Groups held back waiting for an earlier one, so delivery stays in order.
    pub groups_held_for_ordering: u64,
    /// Objects received and not read yet.
    pub buffered_objects: u64,
}

impl From<core::SubscriptionStats> for SubscriptionStats {
    fn from(stats: core::SubscriptionStats) -> Self {
        Self {
            objects_received: stats.objects_received,
            bytes_received: stats.bytes_received,
            objects_dropped: stats.objects_dropped,
            groups_cut: stats.groups_cut,
            current_group: stats.current_group,
            groups_held_for_ordering: stats.groups_held_for_ordering,
            buffered_objects: stats.buffered_objects,
        }
    }
}
