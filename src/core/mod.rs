//! The async Rust core: configuration, connection, publishing, subscribing, discovery.
//!
//! Everything here is plain Rust with `tokio`; the foreign-language layers wrap it.
//! A [`Client`] belongs to the tokio runtime it was created on (or was given with
//! [`Client::with_runtime`]): its tasks run there and its parts are dropped in that
//! runtime's context, whichever thread lets go of them. Its async functions may be awaited
//! from any multi-thread tokio runtime.

pub mod catalog;
mod claiming_session;
pub mod config;
pub mod connection;
mod delivery;
pub mod discovery;
mod draft16;
pub mod drafts;
pub mod error;
pub mod fetch;
mod fetch_serving;
mod history;
mod in_runtime;
mod live;
pub mod names;
pub mod publisher;
pub mod stats;
pub mod subscriber;
mod tls;
pub mod token;
mod transport;

pub use catalog::{parse_catalog, CatalogError, CatalogReader, TrackInfo};
pub use config::{ClientCertificate, ClientConfig, PemSource, ReconnectPolicy, Scheme, TlsConfig};
pub use connection::Client;
pub use delivery::{GroupOrder, Object, Overflow, SubscriberOptions};
pub use discovery::{NamespaceEvent, NamespaceWatch};
pub use error::{
    AnnounceError, ConfigError, ConnectError, FetchError, InvalidName, PublishError, SubscribeError,
};
pub use fetch::{FetchRange, Fetched};
pub use live::ConnectionState;
pub use publisher::{
    DeliveryMode, NewGroupRequests, ObjectLocation, Publisher, PublisherOptions,
    DEFAULT_MAX_GROUP_OBJECTS, DEFAULT_MAX_QUEUED_BYTES, DEFAULT_RETAIN_BYTES, SUBSCRIBER_SETTLE,
};
pub use stats::{ConnectionStats, SubscriptionStats};
pub use subscriber::{Subscriber, SubscriberCloser};
pub use tls::certificate_sha256;
pub use token::Token;
