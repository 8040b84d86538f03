//! The one public error of the UniFFI surface, and the single place core errors map to it.

use crate::bridge::error::{Classify, ErrorKind};
use crate::bridge::runtime::RuntimeError;
use crate::core::{
    AnnounceError, ConfigError, ConnectError, FetchError, PublishError, SubscribeError,
};

/// Everything that can go wrong, with a readable, actionable message in every variant
/// (Kotlin `message`, Swift `description`, Python `str(e)`).
#[derive(Debug, Clone, thiserror::Error, uniffi::Error)]
#[uniffi::export(Display)]
pub enum MoqError {
    /// An argument or configuration value is invalid (bad URL, unsupported scheme, bad name,
    /// unparsable CA certificate, ...).
    #[error("{reason}")]
    InvalidArgument {
        /// What is wrong and how to fix it.
        reason: String,
    },
    /// The TLS handshake failed: the relay's certificate was not accepted (untrusted CA,
    /// fingerprint mismatch), or the relay refused this client's certificate (mutual TLS:
    /// none configured where one is required, or one it does not trust).
    #[error("{reason}")]
    Tls {
        /// What the TLS layer reported and what to do.
        reason: String,
    },
    /// The relay could not be reached or refused the session.
    #[error("{reason}")]
    ConnectionFailed {
        /// The cause.
        reason: String,
    },
    /// The client is not connected (never connected, closed, or the session was lost).
    #[error("{reason}")]
    NotConnected {
        /// The cause.
        reason: String,
    },
    /// The relay did not answer in time.
    #[error("{reason}")]
    Timeout {
        /// What timed out and after how long.
        reason: String,
    },
    /// No publisher offers the track (after the rendezvous period), or none of a FETCH's
    /// range is available.
    #[error("{reason}")]
    NotFound {
        /// Which track and how long it waited.
        reason: String,
    },
    /// The namespace, track or subscription already exists.
    #[error("{reason}")]
    AlreadyExists {
        /// What exists already.
        reason: String,
    },
    /// The relay or publisher refused the request.
    #[error("{reason}")]
    Refused {
        /// The peer's reason.
        reason: String,
    },
    /// The relay refused the credentials (no token, or one it does not accept), or the
    /// token does not allow this request: set a valid token (`ClientConfig.token`,
    /// `Client.set_token`).
    #[error("{reason}")]
    Unauthorized {
        /// The relay's reason and what to do.
        reason: String,
    },
    /// The relay speaks none of the MoQT drafts this client offered (`ClientConfig.drafts`);
    /// the message names both sides' drafts. Offer one the relay speaks, or use a relay that
    /// speaks one of this client's.
    #[error("{reason}")]
    UnsupportedDraft {
        /// Both sides' drafts and what to do.
        reason: String,
    },
    /// An object exceeds the maximum object size (or a datagram).
    #[error("{reason}")]
    TooLarge {
        /// Sizes involved.
        reason: String,
    },
    /// The publisher's queue toward the network stayed full (`max_queued_bytes`): the network
    /// or relay is slower than the publisher. Nothing was published; publish again later or
    /// use `publish_async`.
    #[error("{reason}")]
    WouldBlock {
        /// How much waits and the limit.
        reason: String,
    },
    /// A configured limit was reached (e.g. `max_subscriptions`); release something first.
    #[error("{reason}")]
    LimitReached {
        /// Which limit.
        reason: String,
    },
    /// The publisher went away or ended the track abnormally.
    #[error("{reason}")]
    PublisherLost {
        /// The cause.
        reason: String,
    },
    /// The object was closed.
    #[error("{reason}")]
    Closed {
        /// What was closed.
        reason: String,
    },
    /// A blocking call was made from a library thread (e.g. inside a listener); use the async
    /// form or call from your own thread.
    #[error("{reason}")]
    WrongThread {
        /// Explanation.
        reason: String,
    },
    /// An internal failure (including a caught panic); please report it.
    #[error("{reason}")]
    Internal {
        /// Details.
        reason: String,
    },
}

impl MoqError {
    /// The same error with `context` appended to its message.
    pub(crate) fn with_context(mut self, context: &str) -> Self {
        let reason = match &mut self {
            MoqError::InvalidArgument { reason }
            | MoqError::Tls { reason }
            | MoqError::ConnectionFailed { reason }
            | MoqError::NotConnected { reason }
            | MoqError::Timeout { reason }
            | MoqError::NotFound { reason }
            | MoqError::AlreadyExists { reason }
            | MoqError::Refused { reason }
            | MoqError::Unauthorized { reason }
            | MoqError::UnsupportedDraft { reason }
            | MoqError::TooLarge { reason }
            | MoqError::WouldBlock { reason }
            | MoqError::LimitReached { reason }
            | MoqError::PublisherLost { reason }
            | MoqError::Closed { reason }
            | MoqError::WrongThread { reason }
            | MoqError::Internal { reason } => reason,
        };
        reason.push_str(": ");
        reason.push_str(context);
        self
    }
}

impl MoqError {
    /// The variant for a kind of failure, carrying `reason`.
    fn of_kind(kind: ErrorKind, reason: String) -> Self {
        match kind {
            ErrorKind::InvalidArgument => MoqError::InvalidArgument { reason },
            ErrorKind::Tls => MoqError::Tls { reason },
            ErrorKind::ConnectionFailed => MoqError::ConnectionFailed { reason },
            ErrorKind::NotConnected => MoqError::NotConnected { reason },
            ErrorKind::Timeout => MoqError::Timeout { reason },
            ErrorKind::NotFound => MoqError::NotFound { reason },
            ErrorKind::AlreadyExists => MoqError::AlreadyExists { reason },
            ErrorKind::Refused => MoqError::Refused { reason },
            ErrorKind::Unauthorized => MoqError::Unauthorized { reason },
            ErrorKind::UnsupportedDraft => MoqError::UnsupportedDraft { reason },
            ErrorKind::TooLarge => MoqError::TooLarge { reason },
            ErrorKind::WouldBlock => MoqError::WouldBlock { reason },
            ErrorKind::LimitReached => MoqError::LimitReached { reason },
            ErrorKind::PublisherLost => MoqError::PublisherLost { reason },
            ErrorKind::Closed => MoqError::Closed { reason },
            ErrorKind::WrongThread => MoqError::WrongThread { reason },
            ErrorKind::Internal => MoqError::Internal { reason },
        }
    }
}

/// Every classified error converts by its kind (the one table is [`MoqError::of_kind`]).
macro_rules! from_classified {
    ($($error:ty),*) => {$(
        impl From<$error> for MoqError {
            fn from(err: $error) -> Self {
                MoqError::of_kind(err.kind(), err.to_string())
            }
        }
    )*};
}

from_classified!(
    ConfigError,
    RuntimeError,
    ConnectError,
    AnnounceError,
    PublishError,
    SubscribeError,
    FetchError
);

/// A delivery thread (a listener's, a watch's) could not be started.
pub(crate) fn thread_error(err: std::io::Error) -> MoqError {
    MoqError::Internal {
        reason: format!("cannot start a delivery thread: {err}"),
    }
}
