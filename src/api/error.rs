//! The one public error of the UniFFI surface, and the single place core errors map to it.

use crate::core::{
    AnnounceError, ConfigError, ConnectError, PublishError, RuntimeError, SubscribeError,
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
    /// The relay's certificate was not accepted (untrusted CA, fingerprint mismatch).
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
    /// No publisher offers the track (after the rendezvous period).
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
    /// An object exceeds the maximum object size (or a datagram).
    #[error("{reason}")]
    TooLarge {
        /// Sizes involved.
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
            | MoqError::TooLarge { reason }
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

impl From<ConfigError> for MoqError {
    fn from(err: ConfigError) -> Self {
        MoqError::InvalidArgument {
            reason: err.to_string(),
        }
    }
}

impl From<RuntimeError> for MoqError {
    fn from(err: RuntimeError) -> Self {
        let message = err.to_string();
        match err {
            RuntimeError::BlockingOnRuntimeThread => MoqError::WrongThread { reason: message },
            RuntimeError::Unavailable { .. } => MoqError::Internal { reason: message },
        }
    }
}

impl From<ConnectError> for MoqError {
    fn from(err: ConnectError) -> Self {
        let message = err.to_string();
        match err {
            ConnectError::Config(_) => MoqError::InvalidArgument { reason: message },
            ConnectError::AlreadyConnected => MoqError::AlreadyExists { reason: message },
            ConnectError::Timeout { .. } => MoqError::Timeout { reason: message },
            ConnectError::Tls { .. } => MoqError::Tls { reason: message },
            ConnectError::Resolve { .. } | ConnectError::Transport { .. } => {
                MoqError::ConnectionFailed { reason: message }
            }
            ConnectError::Refused { .. } => MoqError::Refused { reason: message },
            ConnectError::Cancelled => MoqError::Closed { reason: message },
            ConnectError::Runtime(err) => err.into(),
        }
    }
}

impl From<AnnounceError> for MoqError {
    fn from(err: AnnounceError) -> Self {
        let message = err.to_string();
        match err {
            AnnounceError::NotConnected => MoqError::NotConnected { reason: message },
            AnnounceError::InvalidNamespace { .. } => MoqError::InvalidArgument { reason: message },
            AnnounceError::Duplicate { .. } => MoqError::AlreadyExists { reason: message },
            AnnounceError::Refused { .. } => MoqError::Refused { reason: message },
            AnnounceError::Timeout { .. } => MoqError::Timeout { reason: message },
        }
    }
}

impl From<PublishError> for MoqError {
    fn from(err: PublishError) -> Self {
        let message = err.to_string();
        match err {
            PublishError::NotConnected => MoqError::NotConnected { reason: message },
            PublishError::InvalidName { .. } | PublishError::NotAnnounced { .. } => {
                MoqError::InvalidArgument { reason: message }
            }
            PublishError::DuplicateTrack { .. } => MoqError::AlreadyExists { reason: message },
            PublishError::ObjectTooLarge { .. } | PublishError::DatagramTooLarge { .. } => {
                MoqError::TooLarge { reason: message }
            }
            PublishError::Closed => MoqError::Closed { reason: message },
            PublishError::TrackClosed { .. } => MoqError::Internal { reason: message },
        }
    }
}

impl From<SubscribeError> for MoqError {
    fn from(err: SubscribeError) -> Self {
        let message = err.to_string();
        match err {
            SubscribeError::NotConnected | SubscribeError::ConnectionLost => {
                MoqError::NotConnected { reason: message }
            }
            SubscribeError::InvalidName { .. } => MoqError::InvalidArgument { reason: message },
            SubscribeError::NotFound { .. } => MoqError::NotFound { reason: message },
            SubscribeError::AlreadySubscribed { .. } => MoqError::AlreadyExists { reason: message },
            SubscribeError::Refused { .. } => MoqError::Refused { reason: message },
            SubscribeError::Timeout { .. } => MoqError::Timeout { reason: message },
            SubscribeError::PublisherLost { .. } => MoqError::PublisherLost { reason: message },
            SubscribeError::ObjectTooLarge { .. } => MoqError::TooLarge { reason: message },
            SubscribeError::TooManySubscriptions { .. } | SubscribeError::SlowConsumer { .. } => {
                MoqError::LimitReached { reason: message }
            }
        }
    }
}
