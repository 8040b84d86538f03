//! What the two foreign faces ([`crate::api`] for UniFFI, [`crate::capi`] for C) share,
//! written once: the runtime they run the core on, the [`pump`] that delivers to foreign
//! callbacks (with its [`gate`]), the [`log`] router, the [`error`] classification each
//! face maps from, the blocking [`publish`] both faces' synchronous calls use, and the
//! [`fetch`] reader both faces' FETCH responses are read through.
//!
//! The contract both faces build on (docs/contract.md, the normative statement):
//! - foreign code is never called while a library lock is held;
//! - a callback never runs after the teardown (destroy, unsubscribe, cancel) that owns it
//!   returned, and a teardown from inside that callback returns at once instead of
//!   waiting for itself;
//! - blocking calls refuse to run on runtime threads ([`runtime::block_on`]);
//! - a panic inside the library never reaches foreign code.
//!
//! `core` knows nothing of this module; `api` and `capi` are mappings over it and `core`.

pub(crate) mod error;
pub(crate) mod fetch;
pub(crate) mod gate;
pub(crate) mod log;
pub(crate) mod publish;
pub(crate) mod pump;
pub mod runtime;
pub(crate) mod sources;
