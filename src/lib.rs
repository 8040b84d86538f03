//! # moq-ffi
//!
//! A Media over QUIC (IETF MoQT, draft-18) client for applications in any language.
//!
//! One async Rust core ([`core`]) on Cloudflare's `moq-transport`, `quinn` and `rustls`
//! connects to any MoQT relay over raw QUIC (`moqt://`) or WebTransport (`https://`),
//! announces namespaces, publishes tracks (reliable stream or lossy datagram delivery),
//! subscribes, and discovers announced namespaces and catalog tracks.
//!
//! The core knows nothing about foreign languages; the UniFFI API ([`api`]) and the legacy
//! C ABI ([`capi`]) are thin layers over it and over [`bridge`], the machinery both share
//! (runtime, callback delivery, logging, error classification).

#![deny(missing_docs)]

/// The README's Rust example, compiled by `cargo test` (doctests), so it stays correct.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

pub mod api;
pub mod bridge;
pub mod capi;
pub mod core;
mod sync;

uniffi::setup_scaffolding!();
