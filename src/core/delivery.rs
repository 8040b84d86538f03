//! What a subscription delivers ([`Object`]) and how it buffers for its reader
//! ([`SubscriberOptions`], [`Overflow`]): shared by the subscriber (the reader's end), the
//! subscription (the network's end) and the queue between them, so none of them depends on
//! another for its types.

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
    /// Subscriber priority, 0 (highest) to 255. Default 128.
    pub priority: u8,
}

impl Default for SubscriberOptions {
    fn default() -> Self {
        Self {
            buffer: 1024,
            buffer_bytes: 8 * 1024 * 1024,
            overflow: Overflow::Backpressure,
            priority: 128,
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
