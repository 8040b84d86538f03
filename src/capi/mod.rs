//! The legacy C ABI (`moq_*`), kept source- and binary-compatible with existing C/C++ users
//! and layered on [`crate::core`].
//!
//! A mapping over [`crate::core`] and [`crate::bridge`]. Every exported function goes
//! through one boundary (`boundary.rs`): panics are caught, arguments validated (NULL,
//! UTF-8, enum ranges, live handles), failures recorded in the thread-local last error, and
//! a typed default returned. Handles are ids looked up in a registry (`handles.rs`): each
//! call holds a strong reference to what it uses, and a destroyed handle is an error, not
//! undefined behaviour. Callbacks are delivered by the bridge's pump on library threads,
//! never under a library lock; destroy and unsubscribe wait for in-flight callbacks they own
//! (unless called from inside one of them). See `include/moq_ffi.h` for the contract of each
//! function.

mod boundary;
mod client;
mod client_state;
mod fetch;
mod handles;
mod publisher;
mod strings;
mod subscriber;
mod types;

pub use client::*;
pub use fetch::*;
pub use publisher::*;
pub use strings::*;
pub use subscriber::*;
pub use types::*;
