//! Draft 16 (ALPN `moqt-16`), spoken through moq-transport 0.17 (draft 18).
//!
//! moq-transport 0.17 speaks draft 18 only. Rather than a second moq-transport (0.16, whose
//! session reads without the receive budgets, ordering and early readers this client relies
//! on; see docs/drafts.md), a draft-16 connection runs the same draft-18 session over
//! [`Draft16Session`], a transport that re-encodes on the way: control messages and SETUP
//! (`wire`), the request streams draft 18 added (`session`), data streams and datagrams
//! (`data`), integers (`varint`). Everything above the session stays one code path.
//!
//! Carried: SETUP (with tokens), PUBLISH_NAMESPACE and its withdrawal, SUBSCRIBE, UNSUBSCRIBE,
//! PUBLISH_DONE, SUBSCRIBE_NAMESPACE with NAMESPACE / NAMESPACE_DONE, TRACK_STATUS, GOAWAY,
//! MAX_REQUEST_ID / REQUESTS_BLOCKED, subgroup streams, datagrams. Not carried: FETCH (its
//! records differ between the drafts; this client sends none and refuses the relay's), and
//! REQUEST_UPDATE and PUBLISH from the relay (refused with NOT_SUPPORTED).

mod data;
mod session;
mod varint;
mod wire;

pub(crate) use session::Draft16Session;

/// Reset / stop code for a stream this front end cannot carry (moq-transport's
/// `DataStreamResetCode::InternalError`).
const INTERNAL_ERROR: u32 = 0x0;

/// `RecvStream::read` over a source of chunks of at most `dst.len()` bytes.
fn copied(chunk: Option<bytes::Bytes>, dst: &mut [u8]) -> Option<usize> {
    let chunk = chunk?;
    dst[..chunk.len()].copy_from_slice(&chunk);
    Some(chunk.len())
}

/// A byte string that is not what a draft says it should be.
#[derive(Debug, thiserror::Error)]
pub(crate) enum WireError {
    /// More bytes are needed (by this many, at least).
    #[error("{0} more bytes needed")]
    Short(usize),
    #[error("value {0} does not fit a draft-16 integer")]
    TooLarge(u64),
    #[error("too long")]
    TooLong,
    #[error("message or stream type 0x{0:x} is not carried between drafts 16 and 18")]
    Unsupported(u64),
    #[error("bytes left over after message 0x{0:x}")]
    Trailing(u64),
    #[error("{0}")]
    Invalid(&'static str),
}
