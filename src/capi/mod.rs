//! The legacy C ABI (`moq_*`), kept source- and binary-compatible with existing C/C++ users
//! and layered on [`crate::core`].
//!
//! Every exported function goes through one boundary ([`boundary`]): panics are caught,
//! arguments validated (NULL, UTF-8, enum ranges), failures recorded in the thread-local
//! last error, and a typed default returned. Callbacks run on library threads, never under a
//! library lock; destroy and unsubscribe wait for in-flight callbacks they own (unless called
//! from inside one of them). See `include/moq_ffi.h` for the contract of each function.

mod boundary;
mod client;
mod publisher;
mod strings;
mod subscriber;
mod types;

pub use client::*;
pub use publisher::*;
pub use strings::*;
pub use subscriber::*;
pub use types::*;
