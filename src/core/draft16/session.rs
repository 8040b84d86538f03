//! The draft-16 session front end: moq-transport 0.17 speaks draft 18 to this transport, and
//! this transport speaks draft 16 to the relay.
//!
//! Draft 18 gives each request (SUBSCRIBE, PUBLISH_NAMESPACE, ...) a bidirectional stream of
//! its own and each side a unidirectional control stream; draft 16 carries SETUP and every
//! request on one bidirectional control stream, the Request ID in every message, and limits
//! requests with MAX_REQUEST_ID. So here:
//! - the session's control stream (its first `open_uni` / `accept_uni`) becomes the one real
//!   control stream; SETUP becomes CLIENT_SETUP / SERVER_SETUP;
//! - each request stream the session opens (`open_bi`) is virtual: its messages go onto the
//!   control stream with their Request ID, and what the relay sends for that ID comes back on
//!   it; a request the relay makes (a SUBSCRIBE to a track we publish) arrives as a virtual
//!   stream from `accept_bi`;
//! - what draft 18 says by ending a stream, draft 16 says with a message: a cancelled
//!   SUBSCRIBE is an UNSUBSCRIBE, a withdrawn announcement a PUBLISH_NAMESPACE_DONE;
//! - SUBSCRIBE_NAMESPACE keeps a real stream of its own (draft 16 does that too);
//! - data streams and datagrams are re-encoded on the way (`data`).
//!
//! Two tasks per session move the control stream: a writer (every control message is queued
//! to it whole, so messages never interleave) and a reader (SERVER_SETUP, then dispatch by
//! Request ID). Both end with the control stream, which ends with the connection.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::sync::{mpsc, Notify};
use web_transport_quinn as wtq;
use web_transport_trait as wt;

use super::data::{self, DataRecv, DataSend};
use super::varint::Ints;
use super::wire::{self, kind, Direction, Frame};
use super::{WireError, INTERNAL_ERROR};
use crate::core::claiming_session::{ClaimingRecv, ClaimingSession};
use crate::sync::lock;

/// Requests the relay may have open toward us at once (we raise its MAX_REQUEST_ID as it
/// uses them).
const INBOUND_WINDOW: u64 = 1_024;
/// How long a request waits for the relay to allow more (MAX_REQUEST_ID) before it fails.
/// moq-relay-ietf 0.7 allows 50 per session and never raises it.
const CREDIT_WAIT: Duration = Duration::from_secs(2);
/// REQUEST_ERROR code for a request this client does not serve over draft 16.
const NOT_SUPPORTED: u64 = 0x3;
/// Draft 16's PROTOCOL_VIOLATION session close code.
const PROTOCOL_VIOLATION: u32 = 0x3;

/// What the relay sends on one virtual stream.
enum Event {
    Data(Bytes),
    Fin,
    Reset(u32),
}

type Feed = mpsc::UnboundedSender<Event>;

/// One request in flight, by Request ID.
struct Request {
    /// The message type that opened it.
    kind: u64,
    /// Whether this client made it (else the relay did).
    ours: bool,
    /// The virtual stream moq-transport reads for it.
    feed: Feed,
    /// The request was answered (SUBSCRIBE_OK / REQUEST_OK).
    answered: bool,
    /// Ended by the peer, or by a message that ends it: nothing more goes out for it.
    ended: bool,
}

struct State {
    requests: HashMap<u64, Request>,
    /// Our Request IDs must stay below this (the relay's MAX_REQUEST_ID).
    peer_max: u64,
    /// The limit we last told the relay REQUESTS_BLOCKED at.
    blocked_at: Option<u64>,
    /// The relay's Request IDs must stay below this (our MAX_REQUEST_ID).
    our_max: u64,
}

struct Shared {
    inner: ClaimingSession,
    state: Mutex<State>,
    /// The relay raised MAX_REQUEST_ID.
    credit: Notify,
    /// Control messages to write, in order (draft-16 frames).
    control_out: Mutex<Option<mpsc::UnboundedSender<Vec<u8>>>>,
    /// The control stream's receive half, from `open_uni` until the reader starts.
    control_recv: Mutex<Option<ClaimingRecv>>,
    /// Requests the relay made, for `accept_bi`.
    inbound: tokio::sync::Mutex<mpsc::UnboundedReceiver<(D16Send, D16Recv)>>,
    inbound_tx: mpsc::UnboundedSender<(D16Send, D16Recv)>,
    control_opened: AtomicBool,
    control_accepted: AtomicBool,
    /// One subgroup stream at a time per track (see [`data::TrackTurns`]).
    turns: data::TrackTurns,
    /// How many requests the relay's MAX_REQUEST_ID allows this session in all.
    allowed: Arc<AtomicU64>,
}

/// A moq-transport transport that speaks draft 16 to the relay. Cloning shares the session.
#[derive(Clone)]
pub(crate) struct Draft16Session {
    shared: Arc<Shared>,
}

impl Draft16Session {
    pub(crate) fn new(inner: ClaimingSession) -> Self {
        let (inbound_tx, inbound) = mpsc::unbounded_channel();
        Self {
            shared: Arc::new(Shared {
                inner,
                state: Mutex::new(State {
                    requests: HashMap::new(),
                    peer_max: 0,
                    blocked_at: None,
                    our_max: 2 * INBOUND_WINDOW,
                }),
                credit: Notify::new(),
                control_out: Mutex::new(None),
                control_recv: Mutex::new(None),
                inbound: tokio::sync::Mutex::new(inbound),
                inbound_tx,
                control_opened: AtomicBool::new(false),
                control_accepted: AtomicBool::new(false),
                turns: data::TrackTurns::default(),
                allowed: Arc::new(AtomicU64::new(0)),
            }),
        }
    }
}

impl Draft16Session {
    /// How many requests the relay allows this session in all (its MAX_REQUEST_ID, in
    /// requests: this client's IDs are the even ones below it), as it changes. moq-relay-ietf
    /// 0.7 allows 50 and never raises it: the client refuses the 51st request itself, with
    /// a typed error, rather than send one the relay would leave waiting.
    pub(crate) fn requests_allowed(&self) -> Arc<AtomicU64> {
        self.shared.allowed.clone()
    }
}

impl Shared {
    fn set_peer_max(&self, state: &mut State, limit: u64) {
        state.peer_max = limit;
        self.allowed.store(limit.div_ceil(2), Ordering::Release);
    }

    /// Queue a draft-16 control message.
    fn send(&self, frame: &Frame) {
        let bytes = match frame.encode(Ints::Quic) {
            Ok(bytes) => bytes,
            Err(err) => {
                log::warn!(
                    "draft 16: control message 0x{:x} not sent: {err}",
                    frame.kind
                );
                return;
            }
        };
        if let Some(out) = lock(&self.control_out).as_ref() {
            let _ = out.send(bytes);
        }
    }

    fn close(&self, code: u32, reason: &str) {
        log::warn!("draft 16: closing the session: {reason}");
        self.inner_close(code, reason);
    }

    fn inner_close(&self, code: u32, reason: &str) {
        wt::Session::close(&self.inner, code, reason);
    }

    async fn session_error(&self) -> wtq::SessionError {
        wt::Session::closed(&self.inner).await
    }

    /// Wait until Request ID `id` is below the relay's limit; false if it stays above.
    async fn await_credit(&self, id: u64) -> bool {
        let deadline = tokio::time::Instant::now() + CREDIT_WAIT;
        loop {
            let notified = self.credit.notified();
            let blocked = {
                let mut state = lock(&self.state);
                if id < state.peer_max {
                    return true;
                }
                let limit = state.peer_max;
                (state.blocked_at != Some(limit)).then(|| {
                    state.blocked_at = Some(limit);
                    limit
                })
            };
            if let Some(limit) = blocked {
                self.send(&wire::single_int(kind::REQUESTS_BLOCKED, limit));
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                let limit = lock(&self.state).peer_max;
                log::warn!(
                    "draft 16: the relay allows Request IDs below {limit} on this session and \
                     has not raised the limit; request {id} fails (reconnect for more)"
                );
                return false;
            }
        }
    }

    /// The reader task: SERVER_SETUP, then every control message.
    async fn read_control(self: Arc<Self>, mut recv: ClaimingRecv, control_in: Feed) {
        let mut buffer = BytesMut::new();
        let mut first = true;
        let outcome: Result<(), String> = async {
            loop {
                let frame = loop {
                    match Frame::parse(&buffer, Ints::Quic).map_err(|e| e.to_string())? {
                        Some((frame, used)) => {
                            let _ = buffer.split_to(used);
                            break frame;
                        }
                        None => match wt::RecvStream::read_chunk(&mut recv, 16 * 1024).await {
                            Ok(Some(chunk)) if !chunk.is_empty() => {
                                buffer.extend_from_slice(&chunk)
                            }
                            Ok(_) => return Ok(()),
                            // The connection ended (closed by either side): nothing to add.
                            Err(wtq::ReadError::SessionError(_)) => return Ok(()),
                            Err(err) => return Err(format!("control stream: {err}")),
                        },
                    }
                };
                if first {
                    first = false;
                    let (setup, limit) = wire::server_setup(&frame).map_err(|e| e.to_string())?;
                    self.set_peer_max(&mut lock(&self.state), limit);
                    self.credit.notify_waiters();
                    let bytes = setup.encode(Ints::Vi64).map_err(|e| e.to_string())?;
                    let _ = control_in.send(Event::Data(bytes.into()));
                    continue;
                }
                self.dispatch(frame, &control_in)
                    .map_err(|e| e.to_string())?;
            }
        }
        .await;
        if let Err(reason) = outcome {
            self.close(PROTOCOL_VIOLATION, &reason);
        }
        // Every virtual stream sees the session end.
        lock(&self.state).requests.clear();
    }

    fn dispatch(self: &Arc<Self>, frame: Frame, control_in: &Feed) -> Result<(), WireError> {
        match frame.kind {
            kind::MAX_REQUEST_ID => {
                let limit = super::varint::Cursor::new(&frame.payload).int(Ints::Quic)?;
                let mut state = lock(&self.state);
                if limit > state.peer_max {
                    self.set_peer_max(&mut state, limit);
                    drop(state);
                    self.credit.notify_waiters();
                }
            }
            kind::REQUESTS_BLOCKED => {
                let limit = {
                    let mut state = lock(&self.state);
                    state.our_max += 2 * INBOUND_WINDOW;
                    state.our_max
                };
                self.send(&wire::single_int(kind::MAX_REQUEST_ID, limit));
            }
            kind::GOAWAY => {
                let frame = wire::transcode(&frame, Direction::To18, None)?;
                let _ = control_in.send(Event::Data(frame.encode(Ints::Vi64)?.into()));
            }
            k if wire::is_request(k) => self.inbound_request(frame)?,
            _ => self.follow_up(frame)?,
        }
        Ok(())
    }

    /// A request from the relay: a virtual stream for `accept_bi`.
    fn inbound_request(self: &Arc<Self>, frame: Frame) -> Result<(), WireError> {
        let id = frame
            .request_id(Ints::Quic)
            .ok_or(WireError::Invalid("a request without a Request ID"))?;
        let raise = {
            let state = lock(&self.state);
            if id % 2 == 0 || id >= state.our_max || state.requests.contains_key(&id) {
                return Err(WireError::Invalid("a Request ID the relay may not use"));
            }
            (id + INBOUND_WINDOW >= state.our_max).then_some(id + 1 + 2 * INBOUND_WINDOW)
        };
        if let Some(limit) = raise {
            lock(&self.state).our_max = limit;
            self.send(&wire::single_int(kind::MAX_REQUEST_ID, limit));
        }
        if matches!(
            frame.kind,
            kind::FETCH | kind::REQUEST_UPDATE | kind::PUBLISH
        ) {
            self.send(&wire::with_reason(
                kind::REQUEST_ERROR,
                id,
                &[NOT_SUPPORTED, 0],
                "not served by this client over draft 16",
            ));
            return Ok(());
        }
        let request = wire::transcode(&frame, Direction::To18, None)?.encode(Ints::Vi64)?;
        let (feed, events) = mpsc::unbounded_channel();
        let _ = feed.send(Event::Data(request.into()));
        lock(&self.state).requests.insert(
            id,
            Request {
                kind: frame.kind,
                ours: false,
                feed,
                answered: false,
                ended: false,
            },
        );
        let send = D16Send::Request(RequestSend::inbound(self.clone(), id, frame.kind));
        let recv = D16Recv::Virtual(VirtualRecv::new(self.clone(), events));
        let _ = self.inbound_tx.send((send, recv));
        Ok(())
    }

    /// A message about a request already open: onto its virtual stream.
    fn follow_up(&self, frame: Frame) -> Result<(), WireError> {
        let Some(id) = frame.request_id(Ints::Quic) else {
            log::debug!("draft 16: ignoring control message 0x{:x}", frame.kind);
            return Ok(());
        };
        let mut state = lock(&self.state);
        let Some(request) = state.requests.get_mut(&id) else {
            log::debug!(
                "draft 16: message 0x{:x} for request {id}, which has ended",
                frame.kind
            );
            return Ok(());
        };
        if frame.kind == kind::PUBLISH_NAMESPACE_CANCEL {
            // Draft 18 says this by resetting the announcement's stream.
            let _ = request.feed.send(Event::Reset(INTERNAL_ERROR));
            state.requests.remove(&id);
            return Ok(());
        }
        let on_stream = wire::transcode(&frame, Direction::To18, Some(id))?.encode(Ints::Vi64)?;
        let _ = request.feed.send(Event::Data(on_stream.into()));
        let ends = match frame.kind {
            kind::SUBSCRIBE_OK | kind::PUBLISH_OK => {
                request.answered = true;
                false
            }
            kind::REQUEST_OK => {
                request.answered = true;
                matches!(request.kind, kind::TRACK_STATUS)
            }
            kind::REQUEST_ERROR
            | kind::PUBLISH_DONE
            | kind::UNSUBSCRIBE
            | kind::PUBLISH_NAMESPACE_DONE
            | kind::FETCH_CANCEL => true,
            _ => false,
        };
        if ends {
            let _ = request.feed.send(Event::Fin);
            state.requests.remove(&id);
        }
        Ok(())
    }
}

/// A virtual stream's receive side: what the relay sent for one request.
pub(crate) struct VirtualRecv {
    shared: Arc<Shared>,
    events: mpsc::UnboundedReceiver<Event>,
    buffered: Bytes,
    finished: bool,
}

impl VirtualRecv {
    fn new(shared: Arc<Shared>, events: mpsc::UnboundedReceiver<Event>) -> Self {
        Self {
            shared,
            events,
            buffered: Bytes::new(),
            finished: false,
        }
    }

    async fn next(&mut self, max: usize) -> Result<Option<Bytes>, wtq::ReadError> {
        loop {
            if !self.buffered.is_empty() {
                let n = self.buffered.len().min(max.max(1));
                return Ok(Some(self.buffered.split_to(n)));
            }
            if self.finished {
                return Ok(None);
            }
            match self.events.recv().await {
                Some(Event::Data(bytes)) => self.buffered = bytes,
                Some(Event::Fin) => self.finished = true,
                Some(Event::Reset(code)) => return Err(wtq::ReadError::Reset(code)),
                // The session ended (the reader task dropped every feed).
                None => {
                    return Err(wtq::ReadError::SessionError(
                        self.shared.session_error().await,
                    ))
                }
            }
        }
    }
}

impl wt::RecvStream for VirtualRecv {
    type Error = wtq::ReadError;

    async fn read(&mut self, dst: &mut [u8]) -> Result<Option<usize>, Self::Error> {
        Ok(super::copied(self.next(dst.len()).await?, dst))
    }

    async fn read_chunk(&mut self, max: usize) -> Result<Option<Bytes>, Self::Error> {
        self.next(max).await
    }

    fn stop(&mut self, _code: u32) {
        self.events.close();
    }

    async fn closed(&mut self) -> Result<(), Self::Error> {
        Err(wtq::ReadError::SessionError(
            self.shared.session_error().await,
        ))
    }
}

/// The session's own control stream (its SETUP, and GOAWAY): onto the real one.
pub(crate) struct ControlSend {
    shared: Arc<Shared>,
    pending: Vec<u8>,
    setup_sent: bool,
}

impl wt::SendStream for ControlSend {
    type Error = wtq::WriteError;

    async fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
        self.pending.extend_from_slice(buf);
        while let Some(frame) = next_frame(&mut self.pending)? {
            let out = if self.setup_sent {
                wire::transcode(&frame, Direction::To16, None)
            } else {
                self.setup_sent = true;
                let limit = lock(&self.shared.state).our_max;
                wire::client_setup(&frame, limit)
            };
            self.shared.send(&out.map_err(write_refused)?);
        }
        Ok(buf.len())
    }

    fn set_priority(&mut self, _order: u8) {}

    fn finish(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }

    fn reset(&mut self, _code: u32) {}

    async fn closed(&mut self) -> Result<(), Self::Error> {
        Err(wtq::WriteError::SessionError(
            self.shared.session_error().await,
        ))
    }
}

/// The next whole draft-18 frame moq-transport wrote, taken off `pending`.
fn next_frame(pending: &mut Vec<u8>) -> Result<Option<Frame>, wtq::WriteError> {
    let Some((frame, used)) = Frame::parse(pending, Ints::Vi64).map_err(write_refused)? else {
        return Ok(None);
    };
    pending.drain(..used);
    Ok(Some(frame))
}

fn write_refused(err: WireError) -> wtq::WriteError {
    log::warn!("draft 16: cannot send a control message: {err}");
    wtq::WriteError::ClosedStream
}

/// A virtual stream's send side: the messages of one request, onto the control stream (or,
/// for SUBSCRIBE_NAMESPACE, onto a real stream of its own).
pub(crate) struct RequestSend {
    shared: Arc<Shared>,
    pending: Vec<u8>,
    /// The request's ID and type, once its first message has been written.
    request: Option<(u64, u64)>,
    /// Until then, where the relay's answers go.
    feed: Option<Feed>,
    /// SUBSCRIBE_NAMESPACE's own stream.
    own_stream: Option<wtq::SendStream>,
    done: bool,
}

impl RequestSend {
    fn outbound(shared: Arc<Shared>, feed: Feed) -> Self {
        Self {
            shared,
            pending: Vec::new(),
            request: None,
            feed: Some(feed),
            own_stream: None,
            done: false,
        }
    }

    fn inbound(shared: Arc<Shared>, id: u64, kind: u64) -> Self {
        Self {
            shared,
            pending: Vec::new(),
            request: Some((id, kind)),
            feed: None,
            own_stream: None,
            done: false,
        }
    }

    async fn open(&mut self, frame: Frame) -> Result<(), wtq::WriteError> {
        let id = frame
            .request_id(Ints::Vi64)
            .ok_or_else(|| write_refused(WireError::Invalid("a request without a Request ID")))?;
        let feed = self.feed.take().ok_or(wtq::WriteError::ClosedStream)?;
        self.request = Some((id, frame.kind));
        let wire = wire::transcode(&frame, Direction::To16, None).map_err(write_refused)?;
        if frame.kind == kind::SUBSCRIBE_NAMESPACE_18 {
            // Draft 16 gives SUBSCRIBE_NAMESPACE a stream of its own too.
            let (mut send, recv) = wt::Session::open_bi(&self.shared.inner)
                .await
                .map_err(wtq::WriteError::SessionError)?;
            let bytes = wire.encode(Ints::Quic).map_err(write_refused)?;
            wt::SendStream::write_all(&mut send, &bytes).await?;
            self.own_stream = Some(send);
            tokio::spawn(forward_own_stream(recv, feed, id));
            return Ok(());
        }
        if !self.shared.await_credit(id).await {
            return Err(wtq::WriteError::ClosedStream);
        }
        lock(&self.shared.state).requests.insert(
            id,
            Request {
                kind: frame.kind,
                ours: true,
                feed,
                answered: false,
                ended: false,
            },
        );
        self.shared.send(&wire);
        Ok(())
    }

    /// A message after the request (a response, UNSUBSCRIBE): with its Request ID.
    async fn follow(&mut self, id: u64, frame: Frame) -> Result<(), wtq::WriteError> {
        let wire = wire::transcode(&frame, Direction::To16, Some(id)).map_err(write_refused)?;
        if let Some(stream) = self.own_stream.as_mut() {
            let bytes = wire.encode(Ints::Quic).map_err(write_refused)?;
            return wt::SendStream::write_all(stream, &bytes).await;
        }
        let mut state = lock(&self.shared.state);
        let Some(request) = state.requests.get_mut(&id) else {
            return Ok(()); // ended by the relay: nothing more goes out for it
        };
        if request.ended {
            return Ok(());
        }
        match frame.kind {
            kind::SUBSCRIBE_OK | kind::REQUEST_OK | kind::PUBLISH_OK => request.answered = true,
            kind::REQUEST_ERROR | kind::PUBLISH_DONE | kind::PUBLISH_NAMESPACE_DONE => {
                request.ended = true
            }
            kind::UNSUBSCRIBE => {
                // Draft 16's publisher answers UNSUBSCRIBE with nothing; draft 18's ends the
                // stream. End it here so moq-transport's reader does not wait for that.
                request.ended = true;
                let _ = request.feed.send(Event::Fin);
            }
            _ => {}
        }
        drop(state);
        self.shared.send(&wire);
        Ok(())
    }

    /// moq-transport ended its side of the request; `cancel`: by a reset.
    fn end(&mut self, cancel: bool) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        if let Some(stream) = self.own_stream.as_mut() {
            if cancel {
                wt::SendStream::reset(stream, INTERNAL_ERROR);
            } else {
                let _ = wt::SendStream::finish(stream);
            }
            return;
        }
        let Some((id, _)) = self.request else {
            return;
        };
        let mut state = lock(&self.shared.state);
        let Some(request) = state.requests.get(&id) else {
            return;
        };
        let ending = if request.ended {
            None
        } else if request.ours {
            // Withdrawing what we asked for: draft 16 says it with a message.
            match (request.kind, cancel) {
                (kind::SUBSCRIBE, true) => Some(wire::single_int(kind::UNSUBSCRIBE, id)),
                (kind::PUBLISH_NAMESPACE, true) => {
                    Some(wire::single_int(kind::PUBLISH_NAMESPACE_DONE, id))
                }
                _ => None,
            }
        } else if request.answered {
            // Serving a subscription stopped without PUBLISH_DONE.
            Some(wire::with_reason(kind::PUBLISH_DONE, id, &[0, 0], "ended"))
        } else {
            Some(wire::with_reason(kind::REQUEST_ERROR, id, &[0, 0], "ended"))
        };
        // A request of ours stays until the relay's last word for it (its answers still
        // matter); one we served ends with our side.
        let keep = request.ours && !request.ended && !cancel;
        if !keep {
            // Whoever still reads its virtual stream sees it end (not the session's end).
            if let Some(request) = state.requests.remove(&id) {
                let _ = request.feed.send(Event::Fin);
            }
        }
        drop(state);
        if let Some(ending) = ending {
            self.shared.send(&ending);
        }
    }
}

/// Copy SUBSCRIBE_NAMESPACE's own stream from the relay (draft 16) onto its virtual stream.
async fn forward_own_stream(mut recv: ClaimingRecv, feed: Feed, id: u64) {
    let mut buffer = BytesMut::new();
    loop {
        match Frame::parse(&buffer, Ints::Quic) {
            Ok(Some((frame, used))) => {
                let _ = buffer.split_to(used);
                let Ok(bytes) = wire::transcode(&frame, Direction::To18, Some(id))
                    .and_then(|frame| frame.encode(Ints::Vi64))
                else {
                    let _ = feed.send(Event::Reset(INTERNAL_ERROR));
                    return;
                };
                if feed.send(Event::Data(bytes.into())).is_err() {
                    wt::RecvStream::stop(&mut recv, INTERNAL_ERROR);
                    return;
                }
                continue;
            }
            Ok(None) => {}
            Err(_) => {
                let _ = feed.send(Event::Reset(INTERNAL_ERROR));
                return;
            }
        }
        match wt::RecvStream::read_chunk(&mut recv, 16 * 1024).await {
            Ok(Some(chunk)) if !chunk.is_empty() => buffer.extend_from_slice(&chunk),
            Ok(_) => {
                let _ = feed.send(Event::Fin);
                return;
            }
            Err(err) => {
                let _ = feed.send(Event::Reset(
                    wt::Error::stream_error(&err).unwrap_or(INTERNAL_ERROR),
                ));
                return;
            }
        }
    }
}

impl wt::SendStream for RequestSend {
    type Error = wtq::WriteError;

    async fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
        self.pending.extend_from_slice(buf);
        while let Some(frame) = next_frame(&mut self.pending)? {
            match self.request {
                None => self.open(frame).await?,
                Some((id, _)) => self.follow(id, frame).await?,
            }
        }
        Ok(buf.len())
    }

    fn set_priority(&mut self, _order: u8) {}

    fn finish(&mut self) -> Result<(), Self::Error> {
        self.end(false);
        Ok(())
    }

    fn reset(&mut self, _code: u32) {
        self.end(true);
    }

    async fn closed(&mut self) -> Result<(), Self::Error> {
        Err(wtq::WriteError::SessionError(
            self.shared.session_error().await,
        ))
    }
}

impl Drop for RequestSend {
    fn drop(&mut self) {
        self.end(false);
    }
}

/// A send stream of [`Draft16Session`].
pub(crate) enum D16Send {
    Control(ControlSend),
    Request(RequestSend),
    Data(DataSend),
}

/// A receive stream of [`Draft16Session`].
pub(crate) enum D16Recv {
    Virtual(VirtualRecv),
    Data(DataRecv<ClaimingRecv>),
}

impl wt::SendStream for D16Send {
    type Error = wtq::WriteError;

    async fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
        match self {
            D16Send::Control(s) => s.write(buf).await,
            D16Send::Request(s) => s.write(buf).await,
            D16Send::Data(s) => s.write(buf).await,
        }
    }

    fn set_priority(&mut self, order: u8) {
        match self {
            D16Send::Control(s) => s.set_priority(order),
            D16Send::Request(s) => s.set_priority(order),
            D16Send::Data(s) => s.set_priority(order),
        }
    }

    fn finish(&mut self) -> Result<(), Self::Error> {
        match self {
            D16Send::Control(s) => s.finish(),
            D16Send::Request(s) => s.finish(),
            D16Send::Data(s) => s.finish(),
        }
    }

    fn reset(&mut self, code: u32) {
        match self {
            D16Send::Control(s) => s.reset(code),
            D16Send::Request(s) => s.reset(code),
            D16Send::Data(s) => s.reset(code),
        }
    }

    async fn closed(&mut self) -> Result<(), Self::Error> {
        match self {
            D16Send::Control(s) => s.closed().await,
            D16Send::Request(s) => s.closed().await,
            D16Send::Data(s) => s.closed().await,
        }
    }
}

impl wt::RecvStream for D16Recv {
    type Error = wtq::ReadError;

    async fn read(&mut self, dst: &mut [u8]) -> Result<Option<usize>, Self::Error> {
        match self {
            D16Recv::Virtual(s) => s.read(dst).await,
            D16Recv::Data(s) => s.read(dst).await,
        }
    }

    async fn read_chunk(&mut self, max: usize) -> Result<Option<Bytes>, Self::Error> {
        match self {
            D16Recv::Virtual(s) => s.read_chunk(max).await,
            D16Recv::Data(s) => s.read_chunk(max).await,
        }
    }

    fn stop(&mut self, code: u32) {
        match self {
            D16Recv::Virtual(s) => s.stop(code),
            D16Recv::Data(s) => s.stop(code),
        }
    }

    async fn closed(&mut self) -> Result<(), Self::Error> {
        match self {
            D16Recv::Virtual(s) => s.closed().await,
            D16Recv::Data(s) => s.closed().await,
        }
    }
}

/// The control stream's writer task.
async fn write_control(mut send: wtq::SendStream, mut queue: mpsc::UnboundedReceiver<Vec<u8>>) {
    while let Some(bytes) = queue.recv().await {
        if wt::SendStream::write_all(&mut send, &bytes).await.is_err() {
            return;
        }
    }
}

impl wt::Session for Draft16Session {
    type SendStream = D16Send;
    type RecvStream = D16Recv;
    type Error = wtq::SessionError;

    async fn accept_uni(&self) -> Result<D16Recv, Self::Error> {
        let shared = &self.shared;
        if !shared.control_accepted.swap(true, Ordering::SeqCst) {
            // moq-transport's first accept: the relay's control stream, which in draft 16 is
            // the receive half of the one we opened.
            // moq-transport opens its control stream before it accepts the relay's; if that
            // ever changed, fail the session rather than the process.
            let Some(recv) = lock(&shared.control_recv).take() else {
                return Err(wtq::SessionError::WebTransportError(
                    wtq::WebTransportError::Closed(0, "draft 16: no control stream yet".into()),
                ));
            };
            let (control_in, events) = mpsc::unbounded_channel();
            tokio::spawn(shared.clone().read_control(recv, control_in));
            return Ok(D16Recv::Virtual(VirtualRecv::new(shared.clone(), events)));
        }
        let stream = wt::Session::accept_uni(&shared.inner).await?;
        Ok(D16Recv::Data(DataRecv::new(stream)))
    }

    async fn accept_bi(&self) -> Result<(D16Send, D16Recv), Self::Error> {
        let mut inbound = self.shared.inbound.lock().await;
        tokio::select! {
            request = inbound.recv() => match request {
                Some(request) => Ok(request),
                None => Err(self.shared.session_error().await),
            },
            err = self.shared.session_error() => Err(err),
        }
    }

    async fn open_bi(&self) -> Result<(D16Send, D16Recv), Self::Error> {
        let (feed, events) = mpsc::unbounded_channel();
        Ok((
            D16Send::Request(RequestSend::outbound(self.shared.clone(), feed)),
            D16Recv::Virtual(VirtualRecv::new(self.shared.clone(), events)),
        ))
    }

    async fn open_uni(&self) -> Result<D16Send, Self::Error> {
        let shared = &self.shared;
        if !shared.control_opened.swap(true, Ordering::SeqCst) {
            // moq-transport's control stream: draft 16's is one bidirectional stream.
            let (send, recv) = wt::Session::open_bi(&shared.inner).await?;
            let (queue, writes) = mpsc::unbounded_channel();
            *lock(&shared.control_out) = Some(queue);
            *lock(&shared.control_recv) = Some(recv);
            tokio::spawn(write_control(send, writes));
            return Ok(D16Send::Control(ControlSend {
                shared: shared.clone(),
                pending: Vec::new(),
                setup_sent: false,
            }));
        }
        let stream = wt::Session::open_uni(&shared.inner).await?;
        Ok(D16Send::Data(DataSend::new(stream, shared.turns.clone())))
    }

    fn send_datagram(&self, payload: Bytes) -> Result<(), Self::Error> {
        match data::datagram(&payload, Direction::To16) {
            Ok(datagram) => wt::Session::send_datagram(&self.shared.inner, datagram.into()),
            Err(err) => {
                log::warn!("draft 16: datagram not sent: {err}");
                Ok(())
            }
        }
    }

    async fn recv_datagram(&self) -> Result<Bytes, Self::Error> {
        loop {
            let datagram = wt::Session::recv_datagram(&self.shared.inner).await?;
            match data::datagram(&datagram, Direction::To18) {
                Ok(datagram) => return Ok(datagram.into()),
                Err(err) => log::debug!("draft 16: dropping an unreadable datagram: {err}"),
            }
        }
    }

    fn max_datagram_size(&self) -> usize {
        wt::Session::max_datagram_size(&self.shared.inner)
    }

    fn protocol(&self) -> Option<&str> {
        wt::Session::protocol(&self.shared.inner)
    }

    fn close(&self, code: u32, reason: &str) {
        self.shared.inner_close(code, reason);
    }

    async fn closed(&self) -> Self::Error {
        self.shared.session_error().await
    }

    #[allow(refining_impl_trait)]
    fn stats(&self) -> wtq::SessionStats {
        wt::Session::stats(&self.shared.inner)
    }
}
