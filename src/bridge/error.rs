//! One classification of every core error, from which each foreign face maps to its own
//! surface in a single match (UniFFI `MoqError` variants, C `MoqResultCode`s).
//!
//! The message of every error is its `Display` text, written in the core to say what
//! happened and what to do; only the kind is decided here.

use crate::bridge::runtime::RuntimeError;
use crate::core::{
    AnnounceError, CatalogError, ConfigError, ConnectError, FetchError, PublishError,
    SubscribeError,
};

/// What kind of failure an error is, as far as a caller can act on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum ErrorKind {
    /// A bad argument or setting: fix the call.
    InvalidArgument,
    /// The TLS handshake failed: the relay's certificate was not accepted, or the relay
    /// refused this client's: fix the trust or client certificate settings.
    Tls,
    /// The relay could not be reached: check the address and network.
    ConnectionFailed,
    /// Not connected (never, closed, or lost): connect first.
    NotConnected,
    /// The relay did not answer in time.
    Timeout,
    /// No publisher offers the track.
    NotFound,
    /// The namespace, track or subscription exists already.
    AlreadyExists,
    /// The relay or publisher refused the request.
    Refused,
    /// The relay speaks none of the drafts offered: offer another, or use another relay.
    UnsupportedDraft,
    /// The relay refused the credentials, or they do not allow the request: fix the token.
    Unauthorized,
    /// Larger than the configured maximum (or a datagram).
    TooLarge,
    /// The publisher's queue toward the network is full.
    WouldBlock,
    /// A configured limit was reached.
    LimitReached,
    /// The publisher went away.
    PublisherLost,
    /// The object was closed, or the operation cancelled.
    Closed,
    /// A blocking call on a library thread.
    WrongThread,
    /// A bug in this library.
    Internal,
}

/// A core error the foreign faces can report: its kind (the message is its `Display`).
pub(crate) trait Classify: std::fmt::Display {
    /// The kind of failure.
    fn kind(&self) -> ErrorKind;
}

impl Classify for RuntimeError {
    fn kind(&self) -> ErrorKind {
        match self {
            RuntimeError::BlockingOnRuntimeThread => ErrorKind::WrongThread,
            RuntimeError::Unavailable { .. } | RuntimeError::Panicked => ErrorKind::Internal,
            RuntimeError::Cancelled => ErrorKind::Closed,
        }
    }
}

impl Classify for ConfigError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::InvalidArgument
    }
}

impl Classify for CatalogError {
    fn kind(&self) -> ErrorKind {
        match self {
            CatalogError::Malformed { .. } => ErrorKind::InvalidArgument,
            CatalogError::TooLarge { .. } => ErrorKind::LimitReached,
        }
    }
}

impl Classify for ConnectError {
    fn kind(&self) -> ErrorKind {
        match self {
            ConnectError::Config(_) => ErrorKind::InvalidArgument,
            ConnectError::AlreadyConnected => ErrorKind::AlreadyExists,
            ConnectError::Timeout { .. } => ErrorKind::Timeout,
            ConnectError::Tls { .. } | ConnectError::ClientCertificateRejected { .. } => {
                ErrorKind::Tls
            }
            ConnectError::Resolve { .. } | ConnectError::Transport { .. } => {
                ErrorKind::ConnectionFailed
            }
            ConnectError::Refused { .. } => ErrorKind::Refused,
            ConnectError::UnsupportedDraft { .. } => ErrorKind::UnsupportedDraft,
            ConnectError::Unauthorized { .. } => ErrorKind::Unauthorized,
        }
    }
}

impl Classify for AnnounceError {
    fn kind(&self) -> ErrorKind {
        match self {
            AnnounceError::NotConnected => ErrorKind::NotConnected,
            AnnounceError::InvalidNamespace { .. } => ErrorKind::InvalidArgument,
            AnnounceError::Duplicate { .. } => ErrorKind::AlreadyExists,
            AnnounceError::Refused { .. } => ErrorKind::Refused,
            AnnounceError::Unauthorized { .. } => ErrorKind::Unauthorized,
            AnnounceError::Timeout { .. } => ErrorKind::Timeout,
            AnnounceError::SessionRequestsExhausted { .. } => ErrorKind::LimitReached,
        }
    }
}

impl Classify for PublishError {
    fn kind(&self) -> ErrorKind {
        match self {
            PublishError::NotConnected => ErrorKind::NotConnected,
            PublishError::InvalidName { .. } | PublishError::NotAnnounced { .. } => {
                ErrorKind::InvalidArgument
            }
            PublishError::DuplicateTrack { .. } => ErrorKind::AlreadyExists,
            PublishError::ObjectTooLarge { .. } | PublishError::DatagramTooLarge { .. } => {
                ErrorKind::TooLarge
            }
            PublishError::WouldBlock { .. } => ErrorKind::WouldBlock,
            PublishError::Closed => ErrorKind::Closed,
            PublishError::TrackClosed { .. } => ErrorKind::Internal,
        }
    }
}

impl Classify for SubscribeError {
    fn kind(&self) -> ErrorKind {
        match self {
            SubscribeError::NotConnected | SubscribeError::ConnectionLost => {
                ErrorKind::NotConnected
            }
            SubscribeError::InvalidName { .. } => ErrorKind::InvalidArgument,
            SubscribeError::NotFound { .. } => ErrorKind::NotFound,
            SubscribeError::AlreadySubscribed { .. } => ErrorKind::AlreadyExists,
            SubscribeError::Refused { .. } => ErrorKind::Refused,
            SubscribeError::Unauthorized { .. } => ErrorKind::Unauthorized,
            SubscribeError::Timeout { .. } => ErrorKind::Timeout,
            SubscribeError::PublisherLost { .. } => ErrorKind::PublisherLost,
            SubscribeError::ObjectTooLarge { .. } => ErrorKind::TooLarge,
            SubscribeError::TooManySubscriptions { .. }
            | SubscribeError::SlowConsumer { .. }
            | SubscribeError::Stalled { .. }
            | SubscribeError::SessionRequestsExhausted { .. } => ErrorKind::LimitReached,
        }
    }
}

impl Classify for FetchError {
    fn kind(&self) -> ErrorKind {
        match self {
            FetchError::NotConnected => ErrorKind::NotConnected,
            FetchError::InvalidName(_) | FetchError::InvalidRange { .. } => {
                ErrorKind::InvalidArgument
            }
            FetchError::NotAvailable { .. } => ErrorKind::NotFound,
            FetchError::Unsupported { .. } | FetchError::Refused { .. } => ErrorKind::Refused,
            FetchError::Unauthorized { .. } => ErrorKind::Unauthorized,
            FetchError::Timeout { .. } => ErrorKind::Timeout,
            FetchError::Cut { .. } => ErrorKind::PublisherLost,
            FetchError::ObjectTooLarge { .. } => ErrorKind::TooLarge,
            FetchError::SessionRequestsExhausted { .. } => ErrorKind::LimitReached,
        }
    }
}
