//! Taking a subscription's track reader before the transport can drop its first groups.
//!
//! moq-transport creates a subscription's reader side only when the first subgroup arrives,
//! and until a reader has been taken from it, it keeps just the newest 8 subgroups. The
//! session reads every data stream inside its own task, which can accept many subgroups in
//! one poll before any other task runs: a reader taken from a separate task could find the
//! first groups gone (a burst of short groups lost whole groups this way).
//!
//! So the session runs over [`ClaimingSession`], a transport wrapper whose stream reads
//! first take the reader of every pending subscription whose first subgroup has arrived.
//! The session must read the next stream's header before it can create that stream's
//! subgroup, so a reader is taken while the track holds at most one subgroup.

use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::FutureExt;
use moq_transport::serve::{ServeError, TrackReader, TrackReaderMode};
use tokio::sync::Notify;
use web_transport_quinn as wtq;
use web_transport_trait as wt;

use crate::sync::lock;

/// The subscriptions of one session whose reader has not been taken yet.
#[derive(Default)]
pub(crate) struct PendingReaders {
    pending: Mutex<Vec<Arc<Claim>>>,
    /// Fast path for every stream read: false when nothing is pending.
    any: AtomicBool,
}

struct Claim {
    reader: TrackReader,
    taken: Mutex<Option<TrackReaderMode>>,
    ready: Notify,
}

/// A registered subscription. Dropping it withdraws the registration.
pub(crate) struct EarlyReader {
    claim: Arc<Claim>,
    owner: Arc<PendingReaders>,
}

impl PendingReaders {
    /// Register `reader` (before SUBSCRIBE is sent, so no subgroup can precede it).
    pub(crate) fn register(self: &Arc<Self>, reader: TrackReader) -> EarlyReader {
        let claim = Arc::new(Claim {
            reader,
            taken: Mutex::new(None),
            ready: Notify::new(),
        });
        let mut pending = lock(&self.pending);
        pending.push(claim.clone());
        self.any.store(true, Ordering::Release);
        EarlyReader {
            claim,
            owner: self.clone(),
        }
    }

    /// Take the reader of every pending subscription whose track mode is set. Runs inside
    /// the session's task; never waits.
    fn take_ready(&self) {
        if !self.any.load(Ordering::Acquire) {
            return;
        }
        let mut pending = lock(&self.pending);
        pending.retain(|claim| match claim.reader.mode().now_or_never() {
            None => true,
            Some(outcome) => {
                if let Ok(mode) = outcome {
                    *lock(&claim.taken) = Some(mode);
                }
                claim.ready.notify_one();
                false
            }
        });
        self.any.store(!pending.is_empty(), Ordering::Release);
    }

    fn withdraw(&self, claim: &Arc<Claim>) {
        let mut pending = lock(&self.pending);
        pending.retain(|other| !Arc::ptr_eq(other, claim));
        self.any.store(!pending.is_empty(), Ordering::Release);
    }
}

impl EarlyReader {
    /// The track's reader handle, for requests about the track (a new group).
    pub(crate) fn track(&self) -> TrackReader {
        self.claim.reader.clone()
    }

    /// The track's reader: the one taken inside the session if it got there first, else a
    /// fresh one (datagram tracks, which do not go through stream reads).
    pub(crate) async fn mode(&self) -> Result<TrackReaderMode, ServeError> {
        loop {
            if let Some(mode) = lock(&self.claim.taken).take() {
                return Ok(mode);
            }
            tokio::select! {
                biased;
                _ = self.claim.ready.notified() => {}
                mode = self.claim.reader.mode() => {
                    return match lock(&self.claim.taken).take() {
                        Some(early) => Ok(early),
                        None => mode,
                    };
                }
            }
        }
    }
}

impl Drop for EarlyReader {
    fn drop(&mut self) {
        self.owner.withdraw(&self.claim);
    }
}

/// The WebTransport / raw QUIC session, with [`PendingReaders::take_ready`] run before
/// every poll of a stream read.
#[derive(Clone)]
pub(crate) struct ClaimingSession {
    inner: wtq::Session,
    pending: Arc<PendingReaders>,
}

impl ClaimingSession {
    pub(crate) fn new(inner: wtq::Session, pending: Arc<PendingReaders>) -> Self {
        Self { inner, pending }
    }

    fn wrap(&self, inner: wtq::RecvStream) -> ClaimingRecv {
        ClaimingRecv {
            inner,
            pending: self.pending.clone(),
        }
    }
}

/// A receive stream of [`ClaimingSession`].
pub(crate) struct ClaimingRecv {
    inner: wtq::RecvStream,
    pending: Arc<PendingReaders>,
}

impl wt::Session for ClaimingSession {
    type SendStream = wtq::SendStream;
    type RecvStream = ClaimingRecv;
    type Error = wtq::SessionError;

    async fn accept_uni(&self) -> Result<ClaimingRecv, Self::Error> {
        let stream = self.inner.accept_uni().await?;
        Ok(self.wrap(stream))
    }

    async fn accept_bi(&self) -> Result<(Self::SendStream, ClaimingRecv), Self::Error> {
        let (send, recv) = self.inner.accept_bi().await?;
        Ok((send, self.wrap(recv)))
    }

    async fn open_bi(&self) -> Result<(Self::SendStream, ClaimingRecv), Self::Error> {
        let (send, recv) = self.inner.open_bi().await?;
        Ok((send, self.wrap(recv)))
    }

    async fn open_uni(&self) -> Result<Self::SendStream, Self::Error> {
        self.inner.open_uni().await
    }

    fn send_datagram(&self, payload: Bytes) -> Result<(), Self::Error> {
        self.inner.send_datagram(payload)
    }

    async fn recv_datagram(&self) -> Result<Bytes, Self::Error> {
        self.inner.read_datagram().await
    }

    fn max_datagram_size(&self) -> usize {
        self.inner.max_datagram_size()
    }

    fn protocol(&self) -> Option<&str> {
        wt::Session::protocol(&self.inner)
    }

    fn close(&self, code: u32, reason: &str) {
        self.inner.close(code, reason.as_bytes());
    }

    async fn closed(&self) -> Self::Error {
        self.inner.closed().await
    }

    #[allow(refining_impl_trait)]
    fn stats(&self) -> wtq::SessionStats {
        self.inner.stats()
    }
}

impl wt::RecvStream for ClaimingRecv {
    type Error = wtq::ReadError;

    async fn read(&mut self, dst: &mut [u8]) -> Result<Option<usize>, Self::Error> {
        claiming(&self.pending, wt::RecvStream::read(&mut self.inner, dst)).await
    }

    async fn read_chunk(&mut self, max: usize) -> Result<Option<Bytes>, Self::Error> {
        claiming(
            &self.pending,
            wt::RecvStream::read_chunk(&mut self.inner, max),
        )
        .await
    }

    fn stop(&mut self, code: u32) {
        wt::RecvStream::stop(&mut self.inner, code);
    }

    async fn closed(&mut self) -> Result<(), Self::Error> {
        wt::RecvStream::closed(&mut self.inner).await
    }
}

/// Poll `read`, taking ready readers before each poll.
async fn claiming<T>(pending: &PendingReaders, read: impl Future<Output = T>) -> T {
    let mut read = pin!(read);
    std::future::poll_fn(|cx| {
        pending.take_ready();
        read.as_mut().poll(cx)
    })
    .await
}
