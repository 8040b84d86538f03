//! FETCH: a track's past objects, by location (draft-18 §10.12, standalone FETCH).
//!
//! [`Client::fetch`] asks for a range of locations; the relay forwards it to the track's
//! publisher, which answers from the groups it keeps (see `history.rs` and
//! [`PublisherOptions::retain_groups`](super::PublisherOptions::retain_groups)), and
//! [`Fetched::next`] hands out the objects in order, then the end. Objects the publisher
//! does not have are skipped (visible as a jump in the ids), never invented.

use std::collections::VecDeque;
use std::time::Duration;

use futures::FutureExt;

use moq_transport::coding::{KeyValuePairs, Location, TrackName, TrackNamespace};
use moq_transport::data::FetchRecord;
use moq_transport::message::{RequestErrorCode, StandaloneFetch};
use moq_transport::serve::ServeError;

use super::delivery::subscription::is_unauthorized_code;
use super::delivery::Object;
use super::error::FetchError;
use super::live::Live;
use super::names::check_track;
use super::Client;

/// A range of locations to fetch, both ends included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchRange {
    /// First group.
    pub start_group: u64,
    /// First object in `start_group`.
    pub start_object: u64,
    /// Last group.
    pub end_group: u64,
    /// Last object in `end_group`; `None`: the whole group.
    pub end_object: Option<u64>,
}

impl FetchRange {
    /// Whole groups `first..=last`.
    pub fn groups(first: u64, last: u64) -> Self {
        FetchRange {
            start_group: first,
            start_object: 0,
            end_group: last,
            end_object: None,
        }
    }

    /// The range in the wire's encoding: the end is the last object plus one, or
    /// `{group, 0}` for a whole group.
    fn wire(&self) -> Result<(Location, Location), FetchError> {
        let start = Location::new(self.start_group, self.start_object);
        let end = match self.end_object {
            None => Location::new(self.end_group, 0),
            Some(last) => {
                let next = last
                    .checked_add(1)
                    .ok_or_else(|| FetchError::InvalidRange {
                        reason:
                            "the end object must be below 2^64-1 (use None for the whole group)"
                                .into(),
                    })?;
                Location::new(self.end_group, next)
            }
        };
        let inclusive_end = (self.end_group, self.end_object.unwrap_or(u64::MAX));
        if (self.start_group, self.start_object) > inclusive_end {
            return Err(FetchError::InvalidRange {
                reason: format!(
                    "the start ({}, {}) is after the end ({}, {})",
                    self.start_group,
                    self.start_object,
                    self.end_group,
                    self.end_object
                        .map_or_else(|| "end of group".into(), |o| o.to_string())
                ),
            });
        }
        Ok((start, end))
    }
}

/// The response to a FETCH: its objects in order. Not thread-safe to read from two tasks
/// at once (`&mut`); dropping it cancels what is left of the response.
pub struct Fetched {
    fetch: moq_transport::session::Fetch,
    max_object_size: usize,
    request_timeout: Duration,
    end_of_track: bool,
    done: bool,
    /// The object being read: kept here, not in the reading future, so a `next()` dropped
    /// halfway (a timeout, a cancelled coroutine) loses nothing; the next call goes on.
    partial: Option<Partial>,
    /// Objects read before FETCH_OK came (see [`Fetched::wait_ok`]), handed out first.
    ahead: VecDeque<Object>,
    ahead_bytes: usize,
    /// How the body ended while it was read ahead (then handed out after `ahead`).
    early_end: Option<Result<(), FetchError>>,
}

/// An object whose header has been read, and the payload chunks so far.
struct Partial {
    group_id: u64,
    object_id: u64,
    size: usize,
    chunks: Vec<bytes::Bytes>,
}

impl std::fmt::Debug for Fetched {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fetched")
            .field("end_of_track", &self.end_of_track)
            .field("done", &self.done)
            .finish()
    }
}

impl Client {
    /// Fetch a track's past objects in `range`. Returns once the publisher (through the
    /// relay) has accepted the FETCH; read the objects with [`Fetched::next`].
    ///
    /// Fails with [`FetchError::NotAvailable`] when none of the range is available (no such
    /// track, or its publisher does not keep those groups), `Unsupported` over a draft-16
    /// session, `Timeout` after the request timeout.
    pub async fn fetch(
        &self,
        namespace: &str,
        track: &str,
        range: FetchRange,
    ) -> Result<Fetched, FetchError> {
        check_track(namespace, track)?;
        range.wire()?;
        let live = self.live().ok_or(FetchError::NotConnected)?;
        fetch_on(&live, namespace, track, range).await
    }
}

/// [`Client::fetch`] on the session `live`, names checked.
pub(crate) async fn fetch_on(
    live: &Live,
    namespace: &str,
    track: &str,
    range: FetchRange,
) -> Result<Fetched, FetchError> {
    let (start, end) = range.wire()?;
    if live.is_lost() {
        return Err(FetchError::NotConnected);
    }
    if live.draft == 16 {
        return Err(FetchError::Unsupported {
            reason: "the relay speaks draft 16, whose FETCH this client does not carry; \
                     use a draft-18 relay"
                .into(),
        });
    }
    live.take_request()
        .map_err(|limit| FetchError::SessionRequestsExhausted { limit })?;
    let request = StandaloneFetch {
        track_namespace: TrackNamespace::from_utf8_path(namespace),
        track_name: TrackName::from(track.to_string()),
        start_location: start,
        end_location: end,
    };
    let after = live.config.request_timeout;
    let mut subscriber = live.subscriber.clone();
    let fetch = tokio::time::timeout(after, subscriber.fetch(request, KeyValuePairs::new()))
        .await
        .map_err(|_| FetchError::Timeout { after })?
        .map_err(|err| refused(&err.to_string()))?;
    let mut fetched = Fetched {
        fetch,
        max_object_size: live.config.max_object_size,
        request_timeout: after,
        end_of_track: false,
        done: false,
        partial: None,
        ahead: VecDeque::new(),
        ahead_bytes: 0,
        early_end: None,
    };
    match fetched.wait_ok(live).await? {
        Ok(ok) => {
            fetched.end_of_track = ok.end_of_track;
            Ok(fetched)
        }
        Err(err) => Err(rejected(namespace, track, &fetched.fetch, err)),
    }
}

/// How long one read ahead runs before FETCH_OK is looked at again (see [`Fetched::wait_ok`]).
const READ_AHEAD_SLOT: Duration = Duration::from_millis(20);

/// Objects read ahead of FETCH_OK at most: a bound for empty objects, which the byte bound
/// does not see; far more than a relay sends before it looks for FETCH_OK again.
const READ_AHEAD_OBJECTS: usize = 65_536;

fn refused(reason: &str) -> FetchError {
    FetchError::Refused {
        reason: reason.to_string(),
    }
}

/// The typed error for a FETCH the relay or publisher answered with REQUEST_ERROR.
fn rejected(
    namespace: &str,
    track: &str,
    fetch: &moq_transport::session::Fetch,
    err: ServeError,
) -> FetchError {
    let Some(rejection) = fetch.rejection() else {
        return match err {
            ServeError::Cancel => FetchError::NotConnected,
            other => refused(&other.to_string()),
        };
    };
    let code = rejection.error_code;
    let reason = if rejection.reason.0.is_empty() {
        format!("REQUEST_ERROR code {code:#x}")
    } else {
        rejection.reason.0.clone()
    };
    if is_unauthorized_code(code) {
        FetchError::Unauthorized { reason }
    } else if code == RequestErrorCode::DoesNotExist as u64 {
        FetchError::NotAvailable {
            namespace: namespace.to_string(),
            track: track.to_string(),
            reason,
        }
    } else if code == RequestErrorCode::InvalidRange as u64 {
        FetchError::InvalidRange { reason }
    } else if code == RequestErrorCode::NotSupported as u64 {
        FetchError::Unsupported { reason }
    } else {
        FetchError::Refused { reason }
    }
}

impl Fetched {
    /// Whether the response reaches the track's end (the publisher closed it).
    pub fn end_of_track(&self) -> bool {
        self.end_of_track
    }

    /// The next object, in order; `Ok(None)` once the response is complete. An error when
    /// it ended early ([`FetchError::Cut`]) or an object is over `max_object_size`; after an
    /// error or the end, `Ok(None)`. Each wait for the network is bounded by the request
    /// timeout (a response that stops coming is `Cut`). Cancel-safe: a future dropped
    /// halfway through an object leaves what it read for the next call.
    pub async fn next(&mut self) -> Result<Option<Object>, FetchError> {
        if self.done {
            return Ok(None);
        }
        if let Some(object) = self.ahead.pop_front() {
            self.ahead_bytes -= object.payload.len();
            return Ok(Some(object));
        }
        let result = match self.early_end.take() {
            Some(end) => end.map(|()| None),
            None => self.read_object().await,
        };
        if !matches!(result, Ok(Some(_))) {
            self.done = true;
        }
        result
    }

    /// Wait for FETCH_OK (or REQUEST_ERROR), reading the body meanwhile.
    ///
    /// Why read before FETCH_OK: a relay that proxies the FETCH (moq-relay-ietf 0.8 on
    /// moq-transport 0.17) writes the body downstream as it arrives, and checks for the
    /// publisher's FETCH_OK only between writes; when the body reaches it first and is larger
    /// than a stream window, its write waits for this client to read, while this client would
    /// wait for FETCH_OK: both stalled until the timeouts (seen in 2 of ~35 runs of
    /// tests/fetch.rs). Reading ahead lets the write finish and FETCH_OK follow. It stops
    /// once `max_object_size` bytes (so at most about twice that, with the object being
    /// read) or `READ_AHEAD_OBJECTS` objects are held. The read and the check take turns (`READ_AHEAD_SLOT`), as both need the
    /// one `Fetch` handle; a read cut off by its turn keeps what it read.
    async fn wait_ok(
        &mut self,
        live: &Live,
    ) -> Result<Result<moq_transport::message::FetchOk, ServeError>, FetchError> {
        let after = self.request_timeout;
        let deadline = tokio::time::Instant::now() + after;
        loop {
            if let Some(ok) = self.fetch.ok().now_or_never() {
                return Ok(ok);
            }
            if live.is_lost() {
                return Err(FetchError::NotConnected);
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Err(FetchError::Timeout { after });
            }
            let slot = READ_AHEAD_SLOT.min(deadline - now);
            let room = self.early_end.is_none()
                && self.ahead_bytes < self.max_object_size
                && self.ahead.len() < READ_AHEAD_OBJECTS;
            if !room {
                // Nothing more to read: wait for the answer itself.
                if let Ok(ok) = tokio::time::timeout(deadline - now, self.fetch.ok()).await {
                    return Ok(ok);
                }
                continue;
            }
            match tokio::time::timeout(slot, self.read_object()).await {
                Ok(Ok(Some(object))) => {
                    self.ahead_bytes += object.payload.len();
                    self.ahead.push_back(object);
                }
                Ok(Ok(None)) => self.early_end = Some(Ok(())),
                Ok(Err(err)) => self.early_end = Some(Err(err)),
                Err(_) => {} // the turn is over; a partial object stays for the next one
            }
        }
    }

    async fn read_object(&mut self) -> Result<Option<Object>, FetchError> {
        let after = self.request_timeout;
        let waited = |_| cut(format!("nothing arrived for {after:?}"));
        loop {
            let partial = match self.partial.as_mut() {
                Some(partial) => partial,
                None => {
                    let record = tokio::time::timeout(after, self.fetch.next())
                        .await
                        .map_err(waited)?
                        .map_err(|err| cut(err.to_string()))?;
                    let object = match record {
                        None => return Ok(None),
                        // Locations the publisher does not have: skipped, visible in the ids.
                        Some(FetchRecord::NotExist { .. } | FetchRecord::Unknown { .. }) => {
                            continue
                        }
                        Some(FetchRecord::Object(object)) => object,
                    };
                    let size = usize::try_from(object.payload_length).unwrap_or(usize::MAX);
                    if size > self.max_object_size {
                        return Err(FetchError::ObjectTooLarge {
                            size,
                            max: self.max_object_size,
                        });
                    }
                    self.partial.insert(Partial {
                        group_id: object.group_id,
                        object_id: object.object_id,
                        size,
                        chunks: Vec::with_capacity(1),
                    })
                }
            };
            let max = partial.size.max(1);
            while let Some(chunk) = tokio::time::timeout(after, self.fetch.read_payload_chunk(max))
                .await
                .map_err(waited)?
                .map_err(|err| cut(err.to_string()))?
            {
                partial.chunks.push(chunk);
            }
            let Some(mut whole) = self.partial.take() else {
                continue;
            };
            // One chunk is the usual case: no copy.
            let payload = match whole.chunks.len() {
                0 => bytes::Bytes::new(),
                1 => whole.chunks.swap_remove(0),
                _ => whole.chunks.concat().into(),
            };
            return Ok(Some(Object {
                group_id: whole.group_id,
                object_id: whole.object_id,
                payload,
            }));
        }
    }
}

fn cut(reason: String) -> FetchError {
    FetchError::Cut { reason }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_sent_in_the_wire_encoding_and_empty_ones_refused() {
        assert_eq!(
            FetchRange::groups(3, 5).wire().unwrap(),
            (Location::new(3, 0), Location::new(5, 0))
        );
        let one_object = FetchRange {
            start_group: 2,
            start_object: 4,
            end_group: 2,
            end_object: Some(4),
        };
        assert_eq!(
            one_object.wire().unwrap(),
            (Location::new(2, 4), Location::new(2, 5))
        );
        let backwards = FetchRange {
            end_object: Some(3),
            ..one_object
        };
        assert!(matches!(
            backwards.wire(),
            Err(FetchError::InvalidRange { .. })
        ));
        assert!(matches!(
            FetchRange::groups(5, 3).wire(),
            Err(FetchError::InvalidRange { .. })
        ));
    }
}
