//! Delivery: everything that makes what a subscriber receives ordered, complete (or visibly
//! not) and bounded in memory, in one place, with the vendored transport's part named.
//!
//! The types every side shares live here: what a subscription delivers ([`Object`]) and how
//! it buffers for its reader ([`SubscriberOptions`], [`Overflow`]).
//!
//! | guarantee | here | vendored transport (`vendor/patches/`) |
//! |---|---|---|
//! | one upstream subscription per track, fanned out to local subscribers, each getting exactly what was read after it joined | `subscription` (`Fanout`, `SharedTrack`) | |
//! | the first groups of a new subscription are not dropped by our own session | `core::claiming_session` (outside this folder: the session takes the reader inside its own task) | `07-follow-before-subscribe-ok` (the same for the tracks we serve) |
//! | groups in order, a late or missing group waited for a bounded time, then a visible gap | `group_order` | `06-open-streams-in-group-order` (a publisher's streams open in order) |
//! | no repeats and no losses across a reconnect | `subscription` (`Fanout::resume`) | |
//! | a group cut short is counted and reading goes on | `subscription::read_track` (`cut_groups`) | `05-stop-sending-cancelled` (dropping a stream mid-group ends that stream only) |
//! | memory bounded on receive: the reader's queue, then QUIC flow control | `queue` (objects and bytes, the [`Overflow`] policy), `subscription` (the budget per track) | `01-receive-budget` |
//! | a reader that takes nothing cannot freeze the connection's other tracks | `subscription::send` (`Stalled`) | `01-receive-budget` (the stall limit) |
//! | datagrams not lost to scheduling | | `03-datagram-window` |
//! | memory bounded on publish | `publisher` (outside this folder: `WouldBlock`, `publish_when_ready`) | `02-send-budget` |
//!
//! Each row has its tests beside its code (in-memory tracks on a paused clock in
//! `subscription` and `group_order`, the buffer policies in `queue`) and through the relays
//! in `tests/`.

pub(crate) mod group_order;
pub(crate) mod queue;
pub(crate) mod subscription;

use bytes::Bytes;

/// One received object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Object {
    /// Group id.
    pub group_id: u64,
    /// Object id within the group.
    pub object_id: u64,
    /// The payload, exactly as published.
    pub payload: Bytes,
}

/// Options for [`Client::subscribe`](super::Client::subscribe).
#[derive(Debug, Clone, Copy)]
pub struct SubscriberOptions {
    /// Objects buffered between the network and the reader of this subscription: the bound
    /// on the objects a reader that falls behind can hold. Default 1,024.
    pub buffer: usize,
    /// Bytes of payload buffered for the reader of this subscription (the queue is full at
    /// `buffer` objects or at this many bytes, whichever comes first; one larger object
    /// passes alone), and separately the bytes the transport may receive for the track
    /// ahead of it: together the bound on the memory a reader that falls behind can hold.
    /// The second bound is what makes `Backpressure` reach the network: once it is spent,
    /// the client stops reading the track's QUIC streams and flow control slows the sender.
    /// Several local subscribers of one track share the first one's transport bound.
    /// Default 8 MiB.
    pub buffer_bytes: usize,
    /// What happens when the buffer is full. Default [`Overflow::Backpressure`].
    pub overflow: Overflow,
    /// Subscriber priority, 0 (highest) to 255, sent in SUBSCRIBE for the relay's scheduling
    /// (moq-relay-ietf 0.8 on moq-transport 0.17, and this client as a publisher, carry it but
    /// do not act on it). Default 128.
    pub priority: u8,
    /// Which of several ready groups the publisher and relays should send first (SUBSCRIBE's
    /// GROUP_ORDER). Default [`GroupOrder::Publisher`]: the publisher's choice.
    pub group_order: GroupOrder,
    /// Also deliver the track's recent past, ahead of the live objects: the group the live
    /// objects start in (from its start) and up to `past_groups - 1` groups before it,
    /// fetched from the publisher (FETCH through the relay; the publisher must keep them, see
    /// `PublisherOptions::retain_groups`), then the live objects, with no duplicate and no
    /// gap at the seam. Groups the publisher no longer keeps are skipped (a jump in the
    /// group ids). When the relay says where the live objects start, the past is fetched
    /// during `subscribe`, which fails if none of it is available or FETCH cannot be sent (a
    /// draft-16 relay); otherwise the first live object decides, and a past that cannot be
    /// fetched then is logged and counted in `cut_groups` (docs/contract.md, FETCH). 0 (the
    /// default): only what is published from now on.
    pub past_groups: u64,
}

/// The group order a subscription asks for ([`SubscriberOptions::group_order`]), sent in
/// SUBSCRIBE (GROUP_ORDER) for a sending side that orders its backlog by it; moq-relay-ietf
/// 0.8 on moq-transport 0.17 and this client as a publisher carry it but do not act on it.
/// Whatever order groups arrive in, the client hands them to the app in ascending order
/// within its reorder wait (`group_order`'s module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum GroupOrder {
    /// The publisher's order (GROUP_ORDER omitted).
    #[default]
    Publisher,
    /// Oldest group first.
    Ascending,
    /// Newest group first.
    Descending,
}

impl Default for SubscriberOptions {
    fn default() -> Self {
        Self {
            buffer: 1024,
            buffer_bytes: 8 * 1024 * 1024,
            overflow: Overflow::Backpressure,
            priority: 128,
            group_order: GroupOrder::Publisher,
            past_groups: 0,
        }
    }
}

/// What a subscription does when its reader falls `buffer` objects behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Overflow {
    /// Lose nothing: delivery of the track on this client pauses until the reader catches
    /// up, and QUIC flow control slows the relay's sending to this client. Other local
    /// subscribers of the same track on this client (they share one upstream subscription)
    /// pause with it; the publisher and other clients are not affected.
    Backpressure,
    /// Keep the newest `buffer` objects and discard older unread ones (live media that only
    /// wants the latest). Discards are counted ([`Subscriber::dropped`](super::Subscriber::dropped)) and logged.
    DropOldest,
    /// End this subscription with [`SubscribeError::SlowConsumer`](super::SubscribeError::SlowConsumer) (objects already
    /// buffered can still be read first); other subscribers are not affected.
    End,
}

/// One of the client's `max_subscriptions` slots, held by a subscriber while it lives (and
/// given back when dropped).
pub(crate) type SubscriptionPermit = tokio::sync::OwnedSemaphorePermit;
