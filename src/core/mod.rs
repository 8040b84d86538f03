//! The async Rust core: configuration, connection, publishing, subscribing, discovery.
//!
//! Everything here is plain Rust with `tokio`; the foreign-language layers wrap it.
//! All async functions must run on the library runtime ([`runtime::handle`]) or any tokio
//! multi-thread runtime.

pub mod catalog;
pub mod config;
pub mod connection;
pub mod discovery;
mod early_reader;
pub mod error;
pub mod publisher;
mod queue;
pub mod runtime;
pub mod subscriber;
mod subscription;
mod tls;
mod transport;

pub use catalog::{parse_catalog, CatalogError, CatalogReader, TrackInfo};
pub use config::{ClientConfig, ReconnectPolicy, Scheme, TlsConfig};
pub use connection::{Client, ConnectionState};
pub use discovery::{NamespaceEvent, NamespaceWatch};
pub use error::{
    AnnounceError, ConfigError, ConnectError, PublishError, RuntimeError, SubscribeError,
};
pub use publisher::{DeliveryMode, ObjectLocation, Publisher, PublisherOptions};
pub use subscriber::{Object, Overflow, Subscriber, SubscriberCloser, SubscriberOptions};
pub use tls::certificate_sha256;
