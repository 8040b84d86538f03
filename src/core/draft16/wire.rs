//! Control messages between the two encodings: what moq-transport 0.17 writes (draft 18) and
//! what a draft-16 peer reads, field by field.
//!
//! The two drafts lay out the messages this client uses in the same field order; they differ
//! in the integer encoding (`varint::Ints`), in a few parameters that draft 17 made single
//! bytes or bare pairs, in SETUP, and in where the Request ID travels (draft 18 leaves it out
//! of the messages that follow a request on its stream). So a message is re-encoded from a
//! schema (the list of its fields) rather than through two sets of message types.

use super::varint::{put_int, Cursor, Ints};
use super::WireError;

/// Message types (the same number in both drafts unless said).
pub(crate) mod kind {
    pub const REQUEST_UPDATE: u64 = 0x2;
    pub const SUBSCRIBE: u64 = 0x3;
    pub const SUBSCRIBE_OK: u64 = 0x4;
    pub const REQUEST_ERROR: u64 = 0x5;
    pub const PUBLISH_NAMESPACE: u64 = 0x6;
    pub const REQUEST_OK: u64 = 0x7;
    pub const NAMESPACE: u64 = 0x8;
    pub const PUBLISH_NAMESPACE_DONE: u64 = 0x9;
    pub const UNSUBSCRIBE: u64 = 0xa;
    pub const PUBLISH_DONE: u64 = 0xb;
    pub const PUBLISH_NAMESPACE_CANCEL: u64 = 0xc;
    pub const TRACK_STATUS: u64 = 0xd;
    pub const NAMESPACE_DONE: u64 = 0xe;
    pub const GOAWAY: u64 = 0x10;
    /// SUBSCRIBE_NAMESPACE in draft 16 (0x50 in draft 18).
    pub const SUBSCRIBE_NAMESPACE_16: u64 = 0x11;
    pub const SUBSCRIBE_NAMESPACE_18: u64 = 0x50;
    /// Draft 16 only: the peer's request-id limit, and a notice that it was reached.
    pub const MAX_REQUEST_ID: u64 = 0x15;
    pub const REQUESTS_BLOCKED: u64 = 0x1a;
    pub const FETCH: u64 = 0x16;
    pub const FETCH_CANCEL: u64 = 0x17;
    pub const PUBLISH: u64 = 0x1d;
    pub const PUBLISH_OK: u64 = 0x1e;
    /// Draft 16's two SETUP messages; draft 18 has one, sent by each side.
    pub const CLIENT_SETUP: u64 = 0x20;
    pub const SERVER_SETUP: u64 = 0x21;
    pub const SETUP_18: u64 = 0x2f00;
}

/// SETUP parameter: draft 16's request-id limit ("max id + 1").
pub(crate) const SETUP_MAX_REQUEST_ID: u64 = 0x2;

// Message parameters whose value draft 17 changed (moq-transport `message::params`).
const PARAM_AUTHORIZATION_TOKEN: u64 = 0x03;
const PARAM_RENDEZVOUS_TIMEOUT: u64 = 0x04;
const PARAM_LARGEST_OBJECT: u64 = 0x09;
const PARAM_FORWARD: u64 = 0x10;
const PARAM_SUBSCRIBER_PRIORITY: u64 = 0x20;
const PARAM_SUBSCRIPTION_FILTER: u64 = 0x21;
const PARAM_GROUP_ORDER: u64 = 0x22;

/// PUBLISH_DONE status codes 0x5 and 0x6 swapped places between the drafts.
const DONE_EXPIRED_16: u64 = 0x5;
const DONE_TOO_FAR_BEHIND_16: u64 = 0x6;

/// One field of a message payload.
#[derive(Clone, Copy, Debug)]
enum Field {
    /// An integer (the Request ID included).
    Int,
    /// A PUBLISH_DONE status code (an integer whose values 5 and 6 swap).
    DoneStatus,
    /// Length-prefixed bytes: a track name, a reason phrase, a URI.
    Bytes,
    /// A namespace tuple: a count, then length-prefixed fields.
    Tuple,
    /// Message parameters: a count, then key-value pairs.
    Params,
    /// Track extensions: key-value pairs to the end of the payload, no count.
    TrackExtensions,
    /// Draft 16's SUBSCRIBE_NAMESPACE options (absent in draft 18: namespaces only).
    SubscribeOptions,
}

use Field::*;

/// A message's fields after the Request ID, and whether it has one.
fn schema(kind: u64) -> Option<(bool, &'static [Field])> {
    Some(match kind {
        kind::SUBSCRIBE | kind::TRACK_STATUS => (true, &[Tuple, Bytes, Params]),
        kind::SUBSCRIBE_OK => (true, &[Int, Params, TrackExtensions]),
        kind::REQUEST_ERROR => (true, &[Int, Int, Bytes]),
        kind::PUBLISH_NAMESPACE => (true, &[Tuple, Params]),
        kind::REQUEST_OK | kind::PUBLISH_OK => (true, &[Params]),
        kind::PUBLISH_NAMESPACE_DONE | kind::UNSUBSCRIBE | kind::FETCH_CANCEL => (true, &[]),
        kind::PUBLISH_DONE => (true, &[DoneStatus, Int, Bytes]),
        kind::PUBLISH_NAMESPACE_CANCEL => (true, &[Int, Bytes]),
        kind::NAMESPACE | kind::NAMESPACE_DONE => (false, &[Tuple]),
        kind::GOAWAY => (false, &[Bytes]),
        kind::SUBSCRIBE_NAMESPACE_16 | kind::SUBSCRIBE_NAMESPACE_18 => {
            (true, &[Tuple, SubscribeOptions, Params])
        }
        kind::PUBLISH => (true, &[Tuple, Bytes, Int, Params, TrackExtensions]),
        kind::MAX_REQUEST_ID | kind::REQUESTS_BLOCKED => (false, &[Int]),
        _ => return None,
    })
}

/// Whether a message of this type opens a request (and so takes a new Request ID).
pub(crate) fn is_request(kind: u64) -> bool {
    matches!(
        kind,
        kind::SUBSCRIBE
            | kind::TRACK_STATUS
            | kind::PUBLISH_NAMESPACE
            | kind::SUBSCRIBE_NAMESPACE_16
            | kind::SUBSCRIBE_NAMESPACE_18
            | kind::PUBLISH
            | kind::FETCH
            | kind::REQUEST_UPDATE
    )
}

/// One control message frame: its type and payload (the `u16` length is implied).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Frame {
    pub kind: u64,
    pub payload: Vec<u8>,
}

impl Frame {
    /// Split the first complete frame off `bytes`: `Ok(None)` when more bytes are needed.
    pub(crate) fn parse(bytes: &[u8], ints: Ints) -> Result<Option<(Frame, usize)>, WireError> {
        let mut cursor = Cursor::new(bytes);
        let header = (|| Ok::<_, WireError>((cursor.int(ints)?, cursor.u16()?)))();
        let (kind, len) = match header {
            Ok(header) => header,
            Err(WireError::Short(_)) => return Ok(None),
            Err(err) => return Err(err),
        };
        match cursor.take(usize::from(len)) {
            Ok(payload) => Ok(Some((
                Frame {
                    kind,
                    payload: payload.to_vec(),
                },
                cursor.position(),
            ))),
            Err(WireError::Short(_)) => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// The frame's bytes: type, `u16` length, payload.
    pub(crate) fn encode(&self, ints: Ints) -> Result<Vec<u8>, WireError> {
        let len = u16::try_from(self.payload.len()).map_err(|_| WireError::TooLong)?;
        let mut out = Vec::with_capacity(self.payload.len() + 10);
        put_int(&mut out, ints, self.kind)?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&self.payload);
        Ok(out)
    }

    /// The Request ID a draft-16 frame carries first, if its type has one.
    pub(crate) fn request_id(&self, ints: Ints) -> Option<u64> {
        let (has_id, _) = schema(self.kind)?;
        has_id.then(|| Cursor::new(&self.payload).int(ints).ok())?
    }
}

/// How a frame moves between the encodings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Direction {
    /// From moq-transport (draft 18) to a draft-16 peer.
    To16,
    /// From a draft-16 peer to moq-transport (draft 18).
    To18,
}

impl Direction {
    fn ints(self) -> (Ints, Ints) {
        match self {
            Direction::To16 => (Ints::Vi64, Ints::Quic),
            Direction::To18 => (Ints::Quic, Ints::Vi64),
        }
    }
}

/// Re-encode a control message between the drafts.
///
/// `request_id`: for a message that follows a request on draft 18's request stream, the ID
/// that stream stands for. Going to draft 16 it is written in (draft 18 left it out); going to
/// draft 18 it is taken out. `None`: the message is written whole (a request, or a message
/// of the control stream).
pub(crate) fn transcode(
    frame: &Frame,
    direction: Direction,
    request_id: Option<u64>,
) -> Result<Frame, WireError> {
    let (from, to) = direction.ints();
    let (has_id, fields) = schema(frame.kind).ok_or(WireError::Unsupported(frame.kind))?;
    let mut input = Cursor::new(&frame.payload);
    let mut out = Vec::with_capacity(frame.payload.len() + 8);
    if has_id {
        match (direction, request_id) {
            (Direction::To16, Some(id)) => put_int(&mut out, to, id)?,
            (Direction::To18, Some(_)) => {
                input.int(from)?;
            }
            (_, None) => {
                let id = input.int(from)?;
                put_int(&mut out, to, id)?;
            }
        }
    }
    for field in fields {
        transcode_field(*field, &mut input, &mut out, direction)?;
    }
    if !input.is_empty() {
        return Err(WireError::Trailing(frame.kind));
    }
    let kind = match (frame.kind, direction) {
        (kind::SUBSCRIBE_NAMESPACE_18, Direction::To16) => kind::SUBSCRIBE_NAMESPACE_16,
        (kind::SUBSCRIBE_NAMESPACE_16, Direction::To18) => kind::SUBSCRIBE_NAMESPACE_18,
        (kind, _) => kind,
    };
    Ok(Frame { kind, payload: out })
}

fn transcode_field(
    field: Field,
    input: &mut Cursor<'_>,
    out: &mut Vec<u8>,
    direction: Direction,
) -> Result<(), WireError> {
    let (from, to) = direction.ints();
    match field {
        Int => put_int(out, to, input.int(from)?)?,
        DoneStatus => {
            let code = match input.int(from)? {
                DONE_EXPIRED_16 => DONE_TOO_FAR_BEHIND_16,
                DONE_TOO_FAR_BEHIND_16 => DONE_EXPIRED_16,
                other => other,
            };
            put_int(out, to, code)?;
        }
        Bytes => {
            let len = input.int(from)?;
            put_int(out, to, len)?;
            out.extend_from_slice(input.take(usize_of(len)?)?);
        }
        Tuple => {
            let count = input.int(from)?;
            put_int(out, to, count)?;
            for _ in 0..count.min(64) {
                transcode_field(Bytes, input, out, direction)?;
            }
            if count > 64 {
                return Err(WireError::Invalid("namespace of more than 64 fields"));
            }
        }
        Params => {
            let count = input.int(from)?;
            if count > 256 {
                return Err(WireError::Invalid("more than 256 parameters"));
            }
            // Re-encoded one by one (delta keys from 0), then written without the ones the
            // target draft lacks: draft 16 has no RENDEZVOUS_TIMEOUT (a draft-16 relay
            // refuses a SUBSCRIBE that carries it), so there a subscription to a track not
            // announced yet fails at once instead of waiting.
            let mut kept = Vec::with_capacity(usize::try_from(count).unwrap_or(0));
            let mut key = 0u64;
            for _ in 0..count {
                let mut one = Vec::new();
                let previous = key;
                key = transcode_pair(input, &mut one, direction, previous, ParamKind::Message)?;
                // Drop the delta this pair was written with: it is re-written below.
                let mut cursor = Cursor::new(&one);
                cursor.int(to)?;
                let value = one[cursor.position()..].to_vec();
                if !(direction == Direction::To16 && key == PARAM_RENDEZVOUS_TIMEOUT) {
                    kept.push((key, value));
                }
            }
            put_int(out, to, kept.len() as u64)?;
            let mut previous = 0u64;
            for (key, value) in kept {
                put_int(out, to, key - previous)?;
                previous = key;
                out.extend_from_slice(&value);
            }
        }
        TrackExtensions => {
            let mut key = 0u64;
            while !input.is_empty() {
                key = transcode_pair(input, out, direction, key, ParamKind::Extension)?;
            }
        }
        SubscribeOptions => match direction {
            // Draft 18's SUBSCRIBE_NAMESPACE asks for namespaces only: draft 16's option 1.
            Direction::To16 => put_int(out, to, 1)?,
            Direction::To18 => {
                input.int(from)?;
            }
        },
    }
    Ok(())
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum ParamKind {
    /// A message parameter: draft 18 types some values (single bytes, bare pairs).
    Message,
    /// A SETUP option.
    Setup,
    /// A track extension or object extension header: the generic rule in both drafts.
    Extension,
}

/// Re-encode one key-value pair (delta-coded key); returns its absolute key.
fn transcode_pair(
    input: &mut Cursor<'_>,
    out: &mut Vec<u8>,
    direction: Direction,
    previous: u64,
    kind: ParamKind,
) -> Result<u64, WireError> {
    let (from, to) = direction.ints();
    let delta = input.int(from)?;
    let key = previous
        .checked_add(delta)
        .ok_or(WireError::Invalid("parameter type overflows"))?;
    put_int(out, to, delta)?;
    let typed = kind == ParamKind::Message;
    match key {
        PARAM_FORWARD | PARAM_SUBSCRIBER_PRIORITY | PARAM_GROUP_ORDER if typed => {
            // Draft 18: one byte. Draft 16: a varint.
            match direction {
                Direction::To16 => put_int(out, to, u64::from(input.u8()?))?,
                Direction::To18 => {
                    let value = u8::try_from(input.int(from)?)
                        .map_err(|_| WireError::Invalid("parameter value above 255"))?;
                    out.push(value);
                }
            }
        }
        PARAM_LARGEST_OBJECT if typed => match direction {
            // Draft 18: two bare integers. Draft 16: a length, then the two.
            Direction::To16 => {
                let mut location = Vec::new();
                put_int(&mut location, to, input.int(from)?)?;
                put_int(&mut location, to, input.int(from)?)?;
                put_int(out, to, location.len() as u64)?;
                out.extend_from_slice(&location);
            }
            Direction::To18 => {
                let len = usize_of(input.int(from)?)?;
                let mut location = Cursor::new(input.take(len)?);
                put_int(out, to, location.int(from)?)?;
                put_int(out, to, location.int(from)?)?;
            }
        },
        _ if key % 2 == 0 => put_int(out, to, input.int(from)?)?,
        _ => {
            let len = usize_of(input.int(from)?)?;
            let value = input.take(len)?;
            // Values that hold integers of their own are re-encoded inside too.
            let inner = match key {
                PARAM_AUTHORIZATION_TOKEN if kind != ParamKind::Extension => {
                    Some(transcode_token(value, direction)?)
                }
                PARAM_SUBSCRIPTION_FILTER if typed => Some(transcode_filter(value, direction)?),
                _ => None,
            };
            let value = inner.as_deref().unwrap_or(value);
            put_int(out, to, value.len() as u64)?;
            out.extend_from_slice(value);
        }
    }
    Ok(key)
}

/// AUTHORIZATION TOKEN: alias type, token type, then the token's own bytes.
fn transcode_token(value: &[u8], direction: Direction) -> Result<Vec<u8>, WireError> {
    let (from, to) = direction.ints();
    let mut input = Cursor::new(value);
    let mut out = Vec::with_capacity(value.len() + 4);
    put_int(&mut out, to, input.int(from)?)?;
    put_int(&mut out, to, input.int(from)?)?;
    out.extend_from_slice(input.take(input.remaining())?);
    Ok(out)
}

/// SUBSCRIPTION_FILTER: a filter type, then its integers (a start, an end group).
fn transcode_filter(value: &[u8], direction: Direction) -> Result<Vec<u8>, WireError> {
    let (from, to) = direction.ints();
    let mut input = Cursor::new(value);
    let mut out = Vec::with_capacity(value.len() + 4);
    while !input.is_empty() {
        put_int(&mut out, to, input.int(from)?)?;
    }
    Ok(out)
}

/// Our SETUP (draft 18, options without a count) as draft 16's CLIENT_SETUP, offering the
/// peer `max_request_id` (its Request IDs must stay below it).
pub(crate) fn client_setup(setup: &Frame, max_request_id: u64) -> Result<Frame, WireError> {
    if setup.kind != kind::SETUP_18 {
        return Err(WireError::Invalid(
            "the first control message was not SETUP",
        ));
    }
    let mut input = Cursor::new(&setup.payload);
    let mut pairs = Vec::new();
    let mut key = 0u64;
    let mut count = 0u64;
    while !input.is_empty() {
        key = transcode_pair(
            &mut input,
            &mut pairs,
            Direction::To16,
            key,
            ParamKind::Setup,
        )?;
        count += 1;
    }
    // Options are delta-coded in key order: MAX_REQUEST_ID (2) goes between PATH (1) and
    // the rest. Rebuild the list sorted, with it added.
    let mut decoded = decode_pairs(&pairs, count, Ints::Quic)?;
    decoded.retain(|(k, _)| *k != SETUP_MAX_REQUEST_ID);
    let mut value = Vec::new();
    put_int(&mut value, Ints::Quic, max_request_id)?;
    decoded.push((SETUP_MAX_REQUEST_ID, value));
    decoded.sort_by_key(|(k, _)| *k);
    let mut out = Vec::new();
    put_int(&mut out, Ints::Quic, decoded.len() as u64)?;
    encode_pairs(&decoded, &mut out)?;
    Ok(Frame {
        kind: kind::CLIENT_SETUP,
        payload: out,
    })
}

/// The peer's SERVER_SETUP as draft 18's SETUP, and the request-id limit it set for us
/// (0 when absent, as draft 16 says).
pub(crate) fn server_setup(frame: &Frame) -> Result<(Frame, u64), WireError> {
    if frame.kind != kind::SERVER_SETUP {
        return Err(WireError::Invalid(
            "the relay's first control message was not SERVER_SETUP",
        ));
    }
    let mut input = Cursor::new(&frame.payload);
    let count = input.int(Ints::Quic)?;
    let mut pairs = Vec::new();
    let mut key = 0u64;
    for _ in 0..count.min(256) {
        key = transcode_pair(
            &mut input,
            &mut pairs,
            Direction::To18,
            key,
            ParamKind::Setup,
        )?;
    }
    let decoded = decode_pairs(&pairs, count.min(256), Ints::Vi64)?;
    let mut max_request_id = 0;
    let mut kept = Vec::new();
    for (key, value) in decoded {
        if key == SETUP_MAX_REQUEST_ID {
            max_request_id = Cursor::new(&value).int(Ints::Vi64)?;
        } else {
            kept.push((key, value));
        }
    }
    let mut out = Vec::new();
    encode_pairs_18(&kept, &mut out)?;
    Ok((
        Frame {
            kind: kind::SETUP_18,
            payload: out,
        },
        max_request_id,
    ))
}

/// Key-value pairs (already in `ints`) as (key, raw value bytes): for an even key the
/// integer's encoding, for an odd key the bytes after the length.
fn decode_pairs(bytes: &[u8], count: u64, ints: Ints) -> Result<Vec<(u64, Vec<u8>)>, WireError> {
    let mut input = Cursor::new(bytes);
    let mut key = 0u64;
    let mut out = Vec::new();
    for _ in 0..count {
        key = key
            .checked_add(input.int(ints)?)
            .ok_or(WireError::Invalid("option type overflows"))?;
        if key % 2 == 0 {
            let start = input.position();
            input.int(ints)?;
            out.push((key, bytes[start..input.position()].to_vec()));
        } else {
            let len = usize_of(input.int(ints)?)?;
            out.push((key, input.take(len)?.to_vec()));
        }
    }
    Ok(out)
}

/// Sorted (key, value) pairs in draft 16's form (values already in QUIC integers).
fn encode_pairs(pairs: &[(u64, Vec<u8>)], out: &mut Vec<u8>) -> Result<(), WireError> {
    encode_pairs_in(pairs, out, Ints::Quic)
}

fn encode_pairs_18(pairs: &[(u64, Vec<u8>)], out: &mut Vec<u8>) -> Result<(), WireError> {
    encode_pairs_in(pairs, out, Ints::Vi64)
}

fn encode_pairs_in(
    pairs: &[(u64, Vec<u8>)],
    out: &mut Vec<u8>,
    ints: Ints,
) -> Result<(), WireError> {
    let mut previous = 0u64;
    for (key, value) in pairs {
        put_int(out, ints, key - previous)?;
        previous = *key;
        if key % 2 == 1 {
            put_int(out, ints, value.len() as u64)?;
        }
        out.extend_from_slice(value);
    }
    Ok(())
}

/// A draft-16 control message with one integer (MAX_REQUEST_ID, REQUESTS_BLOCKED, and the
/// id-only messages).
pub(crate) fn single_int(kind: u64, value: u64) -> Frame {
    let mut payload = Vec::new();
    put_int(&mut payload, Ints::Quic, value).expect("ids stay below 2^62");
    Frame { kind, payload }
}

/// A draft-16 message made of a Request ID, integers and a reason phrase (REQUEST_ERROR,
/// PUBLISH_DONE).
pub(crate) fn with_reason(kind: u64, id: u64, ints: &[u64], reason: &str) -> Frame {
    let mut payload = Vec::new();
    put_int(&mut payload, Ints::Quic, id).expect("ids stay below 2^62");
    for value in ints {
        put_int(&mut payload, Ints::Quic, *value).expect("small codes");
    }
    put_int(&mut payload, Ints::Quic, reason.len() as u64).expect("short reason");
    payload.extend_from_slice(reason.as_bytes());
    Frame { kind, payload }
}

fn usize_of(len: u64) -> Result<usize, WireError> {
    usize::try_from(len).map_err(|_| WireError::Invalid("length does not fit in memory"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use moq_transport::coding::{Encode, KeyValuePairs, TrackNamespace};
    use moq_transport::message::{self, GroupOrder, Message};

    fn frame_of(message: &Message) -> Frame {
        let mut bytes = Vec::new();
        message.encode(&mut bytes).unwrap();
        let (frame, used) = Frame::parse(&bytes, Ints::Vi64).unwrap().unwrap();
        assert_eq!(used, bytes.len());
        frame
    }

    #[test]
    fn a_subscribe_with_typed_parameters_reads_as_draft_16_and_back() {
        let mut params = KeyValuePairs::new();
        params.set_forward(true);
        params.set_subscriber_priority(128);
        params.set_group_order(GroupOrder::Descending);
        let subscribe = Message::Subscribe(message::Subscribe {
            id: 300,
            track_namespace: TrackNamespace::from_utf8_path("moq-test/interop"),
            track_name: "test-track".into(),
            params,
        });
        let frame18 = frame_of(&subscribe);
        let frame16 = transcode(&frame18, Direction::To16, None).unwrap();
        // Draft 16 by hand: id 300 (0x412c), 2 fields "moq-test", "interop", name, then 3
        // parameters: FORWARD 1, SUBSCRIBER_PRIORITY 128 as a varint (0x4080), GROUP_ORDER 2.
        let mut expected = vec![0x41, 0x2c, 0x02, 0x08];
        expected.extend_from_slice(b"moq-test");
        expected.push(0x07);
        expected.extend_from_slice(b"interop");
        expected.push(0x0a);
        expected.extend_from_slice(b"test-track");
        expected.extend_from_slice(&[0x03, 0x10, 0x01, 0x10, 0x40, 0x80, 0x02, 0x02]);
        assert_eq!(frame16.payload, expected);
        assert_eq!(frame16.request_id(Ints::Quic), Some(300));
        let back = transcode(&frame16, Direction::To18, None).unwrap();
        assert_eq!(back, frame_of(&subscribe));
    }

    #[test]
    fn rendezvous_timeout_is_left_out_for_draft_16() {
        let mut params = KeyValuePairs::new();
        params.set_rendezvous_timeout(2_000);
        params.set_forward(true);
        let subscribe = Message::Subscribe(message::Subscribe {
            id: 0,
            track_namespace: TrackNamespace::from_utf8_path("a"),
            track_name: "b".into(),
            params,
        });
        let frame16 = transcode(&frame_of(&subscribe), Direction::To16, None).unwrap();
        // id 0, namespace ("a"), name "b", then one parameter: FORWARD (delta 0x10) 1.
        assert_eq!(
            frame16.payload,
            [0x00, 0x01, 0x01, b'a', 0x01, b'b', 0x01, 0x10, 0x01]
        );
    }

    #[test]
    fn a_response_gains_its_request_id_in_draft_16_and_loses_it_in_18() {
        let ok = Message::SubscribeOk(message::SubscribeOk {
            id: 7,
            track_alias: 9,
            params: KeyValuePairs::new(),
            track_extensions: Default::default(),
        });
        let whole = frame_of(&ok);
        let to16 = transcode(&whole, Direction::To16, None).unwrap();
        assert_eq!(to16.payload, [0x07, 0x09, 0x00]);
        // On draft 18's request stream the id is left out; the stream stands for it.
        let on_stream = transcode(&to16, Direction::To18, Some(7)).unwrap();
        assert_eq!(on_stream.payload, [0x09, 0x00]);
        let again16 = transcode(&on_stream, Direction::To16, Some(7)).unwrap();
        assert_eq!(again16, to16);
    }

    #[test]
    fn publish_done_status_codes_keep_their_meaning() {
        let done = Message::PublishDone(message::PublishDone {
            id: 2,
            status_code: message::PublishDoneCode::TooFarBehind as u64,
            stream_count: 3,
            reason: moq_transport::coding::ReasonPhrase::new("slow"),
        });
        let to16 = transcode(&frame_of(&done), Direction::To16, None).unwrap();
        assert_eq!(to16.payload[1], DONE_TOO_FAR_BEHIND_16 as u8);
        assert_eq!(
            transcode(&to16, Direction::To18, None).unwrap(),
            frame_of(&done)
        );
    }

    #[test]
    fn setup_gains_max_request_id_and_the_relays_limit_is_read() {
        let mut options = Vec::new();
        // PATH "/x" (1), AUTHORITY "h:1" (5), in draft 18 (no count).
        options.extend_from_slice(&[0x01, 0x02, b'/', b'x', 0x04, 0x03, b'h', b':', b'1']);
        let setup = Frame {
            kind: kind::SETUP_18,
            payload: options,
        };
        let client = client_setup(&setup, 1_000).unwrap();
        assert_eq!(client.kind, kind::CLIENT_SETUP);
        assert_eq!(
            client.payload,
            [0x03, 0x01, 0x02, b'/', b'x', 0x01, 0x43, 0xe8, 0x03, 0x03, b'h', b':', b'1']
        );
        let server = Frame {
            kind: kind::SERVER_SETUP,
            payload: vec![0x01, 0x02, 0x40, 0x64], // MAX_REQUEST_ID 100
        };
        let (setup18, limit) = server_setup(&server).unwrap();
        assert_eq!(limit, 100);
        assert_eq!(setup18.kind, kind::SETUP_18);
        assert!(setup18.payload.is_empty());
    }

    #[test]
    fn a_token_parameter_is_re_encoded_inside() {
        let token = Frame {
            kind: kind::SETUP_18,
            // AUTHORIZATION TOKEN (3): USE_VALUE 3, token type 0x4000 (vi64 0xc0 0x40 0x00), "t".
            payload: vec![0x03, 0x05, 0x03, 0xc0, 0x40, 0x00, b't'],
        };
        let client = client_setup(&token, 0).unwrap();
        // count 2; MAX_REQUEST_ID (delta 2) 0; token (delta 1): len 6: 3, 0x80004000, "t".
        assert_eq!(
            client.payload,
            [0x02, 0x02, 0x00, 0x01, 0x06, 0x03, 0x80, 0x00, 0x40, 0x00, b't']
        );
    }
}
