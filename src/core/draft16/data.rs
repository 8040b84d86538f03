//! Data streams and datagrams between the encodings: subgroup headers and object headers are
//! re-encoded as they pass; payload bytes pass through untouched.
//!
//! Draft 16's subgroup stream types are draft 18's without its two new bits (0x20: the
//! priority byte left out, meaning 128; 0x40: the stream starts at the subgroup's first
//! object); objects are laid out alike (Object ID deltas in both). FETCH streams differ more
//! (absolute against delta locations) and are not carried: this client sends no FETCH, and a
//! FETCH from the relay is refused before any stream opens.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use web_transport_quinn as wtq;
use web_transport_trait as wt;

use super::varint::{put_int, Cursor, Ints};
use super::wire::Direction;
use super::WireError;

const HAS_EXTENSIONS: u64 = 0x01;
const SUBGROUP_ID_MODE: u64 = 0x06;
const EXPLICIT_SUBGROUP_ID: u64 = 0x04;
const DEFAULT_PRIORITY: u64 = 0x20;
/// The priority a draft-18 header leaves out means (moq-transport `DEFAULT_PUBLISHER_PRIORITY`).
const PRIORITY_WHEN_LEFT_OUT: u8 = 128;
/// Longest header (stream or object, extensions included) held while it completes.
const MAX_HEADER: usize = 64 * 1024;

fn ints(direction: Direction) -> (Ints, Ints) {
    match direction {
        Direction::To16 => (Ints::Vi64, Ints::Quic),
        Direction::To18 => (Ints::Quic, Ints::Vi64),
    }
}

/// Whether objects on a stream of this header type carry extension headers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Layout {
    extensions: bool,
}

/// Re-encode a subgroup stream header at the start of `bytes`: `Ok(None)` until complete.
pub(crate) fn stream_header(
    bytes: &[u8],
    direction: Direction,
) -> Result<Option<(Vec<u8>, usize, Layout)>, WireError> {
    complete(|| {
        let (from, to) = ints(direction);
        let mut input = Cursor::new(bytes);
        let kind = input.int(from)?;
        let valid = match direction {
            Direction::To16 => kind & !0x7f == 0 && kind & 0x10 != 0 && kind & 0x06 != 0x06,
            Direction::To18 => matches!(kind, 0x10..=0x15 | 0x18..=0x1d),
        };
        if !valid {
            return Err(WireError::Unsupported(kind));
        }
        let mut out = Vec::with_capacity(16);
        put_int(&mut out, to, kind & 0x1f)?;
        put_int(&mut out, to, input.int(from)?)?; // track alias
        put_int(&mut out, to, input.int(from)?)?; // group
        if kind & SUBGROUP_ID_MODE == EXPLICIT_SUBGROUP_ID {
            put_int(&mut out, to, input.int(from)?)?;
        }
        if kind & DEFAULT_PRIORITY != 0 {
            out.push(PRIORITY_WHEN_LEFT_OUT);
        } else {
            out.push(input.u8()?);
        }
        let layout = Layout {
            extensions: kind & HAS_EXTENSIONS != 0,
        };
        Ok((out, input.position(), layout))
    })
}

/// Re-encode an object header (ID delta, extensions, payload length, status) at the start of
/// `bytes`: the header, the bytes it used, and the payload length that follows it.
pub(crate) fn object_header(
    bytes: &[u8],
    direction: Direction,
    layout: Layout,
) -> Result<Option<(Vec<u8>, usize, u64)>, WireError> {
    complete(|| {
        let (from, to) = ints(direction);
        let mut input = Cursor::new(bytes);
        let mut out = Vec::with_capacity(16);
        put_int(&mut out, to, input.int(from)?)?; // object id delta
        if layout.extensions {
            extensions(&mut input, &mut out, direction)?;
        }
        let payload = input.int(from)?;
        put_int(&mut out, to, payload)?;
        if payload == 0 {
            put_int(&mut out, to, input.int(from)?)?; // status
        }
        Ok((out, input.position(), payload))
    })
}

/// Object extension headers: a byte length, then key-value pairs filling it.
fn extensions(
    input: &mut Cursor<'_>,
    out: &mut Vec<u8>,
    direction: Direction,
) -> Result<(), WireError> {
    let (from, to) = ints(direction);
    let len = usize::try_from(input.int(from)?).map_err(|_| WireError::TooLong)?;
    let mut pairs = Cursor::new(input.take(len)?);
    let mut encoded = Vec::with_capacity(len + 4);
    let mut key = 0u64;
    while !pairs.is_empty() {
        let delta = pairs.int(from)?;
        key = key
            .checked_add(delta)
            .ok_or(WireError::Invalid("extension type overflows"))?;
        put_int(&mut encoded, to, delta)?;
        if key % 2 == 0 {
            put_int(&mut encoded, to, pairs.int(from)?)?;
        } else {
            let n = usize::try_from(pairs.int(from)?).map_err(|_| WireError::TooLong)?;
            put_int(&mut encoded, to, n as u64)?;
            encoded.extend_from_slice(pairs.take(n)?);
        }
    }
    put_int(out, to, encoded.len() as u64)?;
    out.extend_from_slice(&encoded);
    Ok(())
}

/// Run a parse; a short input is "not yet", not an error (a header longer than
/// [`MAX_HEADER`] is).
fn complete<T>(parse: impl FnOnce() -> Result<T, WireError>) -> Result<Option<T>, WireError> {
    match parse() {
        Ok(value) => Ok(Some(value)),
        Err(WireError::Short(_)) => Ok(None),
        Err(err) => Err(err),
    }
}

/// Re-encode one OBJECT_DATAGRAM.
pub(crate) fn datagram(bytes: &[u8], direction: Direction) -> Result<Vec<u8>, WireError> {
    const EXTENSIONS: u64 = 0x01;
    const ZERO_OBJECT_ID: u64 = 0x04;
    const DEFAULT_PRIORITY: u64 = 0x08;
    const STATUS: u64 = 0x20;
    let (from, to) = ints(direction);
    let mut input = Cursor::new(bytes);
    let kind = input.int(from)?;
    let valid = match direction {
        Direction::To16 => matches!(
            kind,
            0x00..=0x0f | 0x20 | 0x21 | 0x24 | 0x25 | 0x28 | 0x29 | 0x2c | 0x2d
        ),
        Direction::To18 => matches!(kind, 0x00..=0x07 | 0x20 | 0x21),
    };
    if !valid {
        return Err(WireError::Unsupported(kind));
    }
    // Draft 16 has no status datagram without an Object ID: such a one is written with ID 0.
    let status = kind & STATUS != 0;
    let mut out_kind = kind & !DEFAULT_PRIORITY;
    if status {
        out_kind &= !ZERO_OBJECT_ID;
    }
    let mut out = Vec::with_capacity(bytes.len() + 4);
    put_int(&mut out, to, out_kind)?;
    put_int(&mut out, to, input.int(from)?)?; // track alias
    put_int(&mut out, to, input.int(from)?)?; // group
    if kind & ZERO_OBJECT_ID == 0 {
        put_int(&mut out, to, input.int(from)?)?;
    } else if status {
        put_int(&mut out, to, 0)?;
    }
    if kind & DEFAULT_PRIORITY != 0 {
        out.push(PRIORITY_WHEN_LEFT_OUT);
    } else {
        out.push(input.u8()?);
    }
    if kind & EXTENSIONS != 0 {
        extensions(&mut input, &mut out, direction)?;
    }
    if status {
        put_int(&mut out, to, input.int(from)?)?;
    }
    out.extend_from_slice(input.take(input.remaining())?);
    Ok(out)
}

/// Where a data stream is, between headers and payload.
#[derive(Clone, Copy, Debug)]
enum Position {
    StreamHeader,
    ObjectHeader(Layout),
    Payload(Layout, u64),
}

/// One subgroup stream at a time per track, for draft-16 relays.
///
/// moq-relay-ietf 0.7 (moq-transport 0.16) keeps only the newest subgroup of a track for its
/// readers: a subgroup whose stream is still arriving when the next one's header is read
/// loses its reader, its writer fails (`Cancel`), and that ends the relay's whole upstream
/// subscription (measured: a burst of 10-object groups ended it within 3 groups; one group
/// at a time, all 1,000 objects arrived). So over draft 16 the next subgroup stream of a
/// track starts only once the previous one is finished and acknowledged (QUIC), or reset.
/// A live publisher ends a group when it starts the next, so this costs nothing there; a
/// burst of short groups goes at one group per round trip.
#[derive(Clone, Default)]
pub(crate) struct TrackTurns {
    turns: Arc<Mutex<HashMap<u64, Arc<tokio::sync::Mutex<()>>>>>,
}

impl TrackTurns {
    async fn take(&self, alias: u64) -> tokio::sync::OwnedMutexGuard<()> {
        let turn = crate::sync::lock(&self.turns)
            .entry(alias)
            .or_default()
            .clone();
        turn.lock_owned().await
    }

    /// Forget a track's turn once nobody holds or waits for it.
    fn tidy(&self, alias: u64) {
        let mut turns = crate::sync::lock(&self.turns);
        if turns
            .get(&alias)
            .is_some_and(|turn| Arc::strong_count(turn) == 1)
        {
            turns.remove(&alias);
        }
    }
}

/// A subgroup stream this client sends, written by moq-transport in draft 18, sent in 16.
pub(crate) struct DataSend {
    /// `None` once handed to the task that waits for its acknowledgement.
    inner: Option<wtq::SendStream>,
    position: Position,
    /// Bytes of a header not complete yet (and any that followed it in the same write).
    pending: Vec<u8>,
    turns: TrackTurns,
    /// This stream's turn on its track, and the track.
    turn: Option<(u64, tokio::sync::OwnedMutexGuard<()>)>,
    finished: bool,
}

impl DataSend {
    pub(crate) fn new(inner: wtq::SendStream, turns: TrackTurns) -> Self {
        Self {
            inner: Some(inner),
            position: Position::StreamHeader,
            pending: Vec::new(),
            turns,
            turn: None,
            finished: false,
        }
    }

    fn stream(&mut self) -> Result<&mut wtq::SendStream, wtq::WriteError> {
        self.inner.as_mut().ok_or(wtq::WriteError::ClosedStream)
    }

    async fn drain(&mut self) -> Result<(), wtq::WriteError> {
        loop {
            match self.position {
                Position::Payload(layout, left) => {
                    let n = usize::try_from(left)
                        .unwrap_or(usize::MAX)
                        .min(self.pending.len());
                    if n == 0 {
                        return Ok(());
                    }
                    let stream = self.inner.as_mut().ok_or(wtq::WriteError::ClosedStream)?;
                    wt::SendStream::write_all(stream, &self.pending[..n]).await?;
                    self.pending.drain(..n);
                    let left = left - n as u64;
                    self.position = if left == 0 {
                        Position::ObjectHeader(layout)
                    } else {
                        Position::Payload(layout, left)
                    };
                }
                Position::StreamHeader => match stream_header(&self.pending, Direction::To16) {
                    Ok(Some((header, used, layout))) => {
                        let alias = track_alias(&self.pending)?;
                        let turn = self.turns.take(alias).await;
                        self.turn = Some((alias, turn));
                        wt::SendStream::write_all(self.stream()?, &header).await?;
                        self.pending.drain(..used);
                        self.position = Position::ObjectHeader(layout);
                    }
                    Ok(None) => return self.bounded(),
                    Err(err) => return Err(self.refuse(err)),
                },
                Position::ObjectHeader(layout) => {
                    match object_header(&self.pending, Direction::To16, layout) {
                        Ok(Some((header, used, payload))) => {
                            wt::SendStream::write_all(self.stream()?, &header).await?;
                            self.pending.drain(..used);
                            self.position = if payload == 0 {
                                Position::ObjectHeader(layout)
                            } else {
                                Position::Payload(layout, payload)
                            };
                        }
                        Ok(None) => return self.bounded(),
                        Err(err) => return Err(self.refuse(err)),
                    }
                }
            }
        }
    }

    fn bounded(&mut self) -> Result<(), wtq::WriteError> {
        if self.pending.len() > MAX_HEADER {
            return Err(self.refuse(WireError::TooLong));
        }
        Ok(())
    }

    fn refuse(&mut self, err: WireError) -> wtq::WriteError {
        log::warn!("draft 16: cannot send this data stream ({err}); resetting it");
        wt::SendStream::reset(self, super::INTERNAL_ERROR);
        wtq::WriteError::ClosedStream
    }
}

/// The track alias of a draft-18 subgroup header (its second integer).
fn track_alias(header: &[u8]) -> Result<u64, wtq::WriteError> {
    let mut input = Cursor::new(header);
    input
        .int(Ints::Vi64)
        .and_then(|_| input.int(Ints::Vi64))
        .map_err(|_| wtq::WriteError::ClosedStream)
}

impl Drop for DataSend {
    fn drop(&mut self) {
        let Some((alias, turn)) = self.turn.take() else {
            return;
        };
        let turns = self.turns.clone();
        match (self.finished, self.inner.take()) {
            // The next stream of this track starts once the relay acknowledged this one.
            (true, Some(stream)) => {
                tokio::spawn(async move {
                    let _ = stream.stopped().await;
                    drop(turn);
                    turns.tidy(alias);
                });
            }
            _ => {
                drop(turn);
                turns.tidy(alias);
            }
        }
    }
}

impl wt::SendStream for DataSend {
    type Error = wtq::WriteError;

    async fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
        // Payload with nothing held: straight through, as much as the stream takes.
        if let (Position::Payload(layout, left), true) = (self.position, self.pending.is_empty()) {
            let n = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
            let written = wt::SendStream::write(self.stream()?, &buf[..n]).await?;
            let left = left - written as u64;
            self.position = if left == 0 {
                Position::ObjectHeader(layout)
            } else {
                Position::Payload(layout, left)
            };
            return Ok(written);
        }
        self.pending.extend_from_slice(buf);
        self.drain().await?;
        Ok(buf.len())
    }

    fn set_priority(&mut self, order: u8) {
        if let Some(stream) = self.inner.as_mut() {
            wt::SendStream::set_priority(stream, order);
        }
    }

    fn finish(&mut self) -> Result<(), Self::Error> {
        wt::SendStream::finish(self.stream()?)?;
        self.finished = true;
        Ok(())
    }

    fn reset(&mut self, code: u32) {
        self.finished = false;
        if let Some(stream) = self.inner.as_mut() {
            wt::SendStream::reset(stream, code);
        }
    }

    async fn closed(&mut self) -> Result<(), Self::Error> {
        wt::SendStream::closed(self.stream()?).await
    }
}

/// A subgroup stream the relay sends, read in draft 16, handed to moq-transport in 18.
pub(crate) struct DataRecv<R> {
    inner: R,
    position: Position,
    /// Bytes read from the stream and not yet used.
    input: BytesMut,
    /// Re-encoded header bytes not yet handed on.
    output: Bytes,
    finished: bool,
}

impl<R: wt::RecvStream<Error = wtq::ReadError>> DataRecv<R> {
    pub(crate) fn new(inner: R) -> Self {
        Self {
            inner,
            position: Position::StreamHeader,
            input: BytesMut::new(),
            output: Bytes::new(),
            finished: false,
        }
    }

    /// The next bytes for moq-transport, at most `max`; `None` at the stream's end.
    async fn next(&mut self, max: usize) -> Result<Option<Bytes>, wtq::ReadError> {
        loop {
            if !self.output.is_empty() {
                let n = self.output.len().min(max);
                return Ok(Some(self.output.split_to(n)));
            }
            match self.position {
                Position::Payload(layout, left) => {
                    let limit = usize::try_from(left).unwrap_or(usize::MAX).min(max);
                    let chunk = if !self.input.is_empty() {
                        let n = self.input.len().min(limit);
                        self.input.split_to(n).freeze()
                    } else {
                        match wt::RecvStream::read_chunk(&mut self.inner, limit).await? {
                            Some(chunk) if !chunk.is_empty() => chunk,
                            _ => return Ok(None), // cut short: moq-transport sees the end
                        }
                    };
                    let left = left - chunk.len() as u64;
                    self.position = if left == 0 {
                        Position::ObjectHeader(layout)
                    } else {
                        Position::Payload(layout, left)
                    };
                    return Ok(Some(chunk));
                }
                Position::StreamHeader => match stream_header(&self.input, Direction::To18) {
                    Ok(Some((header, used, layout))) => {
                        let _ = self.input.split_to(used);
                        self.output = Bytes::from(header);
                        self.position = Position::ObjectHeader(layout);
                    }
                    Ok(None) => {
                        if !self.fill().await? {
                            return Ok(None);
                        }
                    }
                    Err(err) => return Err(self.refuse(err)),
                },
                Position::ObjectHeader(layout) => {
                    match object_header(&self.input, Direction::To18, layout) {
                        Ok(Some((header, used, payload))) => {
                            let _ = self.input.split_to(used);
                            self.output = Bytes::from(header);
                            if payload > 0 {
                                self.position = Position::Payload(layout, payload);
                            }
                        }
                        Ok(None) => {
                            if !self.fill().await? {
                                return Ok(None);
                            }
                        }
                        Err(err) => return Err(self.refuse(err)),
                    }
                }
            }
        }
    }

    /// Read more of a header; false at the stream's end.
    async fn fill(&mut self) -> Result<bool, wtq::ReadError> {
        if self.finished {
            return Ok(false);
        }
        if self.input.len() > MAX_HEADER {
            return Err(self.refuse(WireError::TooLong));
        }
        match wt::RecvStream::read_chunk(&mut self.inner, 16 * 1024).await? {
            Some(chunk) if !chunk.is_empty() => {
                self.input.extend_from_slice(&chunk);
                Ok(true)
            }
            _ => {
                self.finished = true;
                Ok(false)
            }
        }
    }

    fn refuse(&mut self, err: WireError) -> wtq::ReadError {
        log::warn!("draft 16: unreadable data stream from the relay ({err}); stopping it");
        wt::RecvStream::stop(&mut self.inner, super::INTERNAL_ERROR);
        wtq::ReadError::Reset(super::INTERNAL_ERROR)
    }
}

impl<R: wt::RecvStream<Error = wtq::ReadError>> wt::RecvStream for DataRecv<R> {
    type Error = wtq::ReadError;

    async fn read(&mut self, dst: &mut [u8]) -> Result<Option<usize>, Self::Error> {
        Ok(super::copied(self.next(dst.len()).await?, dst))
    }

    async fn read_chunk(&mut self, max: usize) -> Result<Option<Bytes>, Self::Error> {
        self.next(max).await
    }

    fn stop(&mut self, code: u32) {
        wt::RecvStream::stop(&mut self.inner, code);
    }

    async fn closed(&mut self) -> Result<(), Self::Error> {
        wt::RecvStream::closed(&mut self.inner).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use moq_transport::coding::Encode;
    use moq_transport::data::{StreamHeaderType, SubgroupHeader, SubgroupIdMode};

    #[test]
    fn a_draft_18_header_with_new_bits_becomes_a_draft_16_one() {
        // moq-transport writes FIRST_OBJECT (0x40) on a subgroup's first stream.
        let header = SubgroupHeader {
            header_type: StreamHeaderType::subgroup(
                SubgroupIdMode::Explicit,
                false,
                true,
                false,
                true,
            ),
            track_alias: 1,
            group_id: 200,
            subgroup_id: Some(0),
            publisher_priority: 7,
        };
        let mut bytes = Vec::new();
        header.encode(&mut bytes).unwrap();
        assert_eq!(bytes[0], 0x5c);
        let (to16, used, layout) = stream_header(&bytes, Direction::To16).unwrap().unwrap();
        assert_eq!(used, bytes.len());
        // 0x1c (explicit subgroup id, end of group), alias 1, group 200 (0x40c8), subgroup 0,
        // priority 7.
        assert_eq!(to16, [0x1c, 0x01, 0x40, 0xc8, 0x00, 0x07]);
        assert!(!layout.extensions);
        let (back, _, _) = stream_header(&to16, Direction::To18).unwrap().unwrap();
        let mut expected = bytes.clone();
        expected[0] = 0x1c;
        assert_eq!(back, expected);
    }

    #[test]
    fn a_left_out_priority_is_written_as_128() {
        let bytes = [0x30, 0x01, 0x02]; // zero subgroup id, default priority
        let (to16, _, _) = stream_header(&bytes, Direction::To16).unwrap().unwrap();
        assert_eq!(to16, [0x10, 0x01, 0x02, 128]);
    }

    #[test]
    fn object_headers_with_extensions_and_status_round_trip() {
        let layout = Layout { extensions: true };
        // delta 0; extensions of 4 bytes: type 2 (even) value 300 (vi64 0x81 0x2c), then
        // payload length 0 and status 3 (end of group).
        let d18 = [0x00, 0x03, 0x02, 0x81, 0x2c, 0x00, 0x03];
        let (to16, used, payload) = object_header(&d18, Direction::To16, layout)
            .unwrap()
            .unwrap();
        assert_eq!((used, payload), (d18.len(), 0));
        assert_eq!(to16, [0x00, 0x03, 0x02, 0x41, 0x2c, 0x00, 0x03]);
        let (back, _, _) = object_header(&to16, Direction::To18, layout)
            .unwrap()
            .unwrap();
        assert_eq!(back, d18);
        assert!(object_header(&d18[..4], Direction::To16, layout)
            .unwrap()
            .is_none());
    }

    #[test]
    fn datagrams_carry_their_payload_across() {
        // draft 18: type 0x08 (object id, default priority), alias 1, group 2, object 3, "hi".
        let d18 = [0x08, 0x01, 0x02, 0x03, b'h', b'i'];
        let to16 = datagram(&d18, Direction::To16).unwrap();
        assert_eq!(to16, [0x00, 0x01, 0x02, 0x03, 128, b'h', b'i']);
        let back = datagram(&to16, Direction::To18).unwrap();
        assert_eq!(back, [0x00, 0x01, 0x02, 0x03, 128, b'h', b'i']);
        assert!(datagram(&[0x08], Direction::To18).is_err());
    }
}
