//! Answering the FETCHes a relay forwards to this client's publishers, from what each keeps
//! (`history.rs`). One task per session; each FETCH is served by its own task, a bounded
//! number at once.
//!
//! A relay resolves a joining FETCH against its own subscription and forwards a standalone
//! range here (moq-relay-ietf 0.8), so the range is what is served; a joining FETCH sent
//! straight to this client (no relay) is resolved by the transport against our SUBSCRIBE_OK
//! first.

use std::sync::Weak;
use std::time::Duration;

use moq_transport::coding::Location;
use moq_transport::data::{FetchRecord, FetchRecordObject};
use moq_transport::message::{GroupOrder, RequestErrorCode};
use moq_transport::session::{FetchOkInfo, FetchRequested, SessionError};
use tokio::task::JoinSet;

use super::error::shown;
use super::history::{History, Unavailable};
use super::live::Live;
use super::names::path;

/// FETCHes served at once on one session; more are refused with EXCESSIVE_LOAD (each holds
/// references to the payloads it is writing, so this bounds what eviction cannot free).
const MAX_SERVED_AT_ONCE: usize = 16;

/// Serve the FETCHes that reach `publisher` until the session ends.
pub(crate) async fn serve_fetches(
    mut publisher: moq_transport::session::Publisher,
    live: Weak<Live>,
    timeout: Duration,
) {
    let mut serving = JoinSet::new();
    loop {
        tokio::select! {
            Some(fetch) = publisher.fetch_requested() => {
                // Collect the ones that have ended, so only those still serving count.
                while serving.try_join_next().is_some() {}
                if serving.len() >= MAX_SERVED_AT_ONCE {
                    log::warn!("refusing a FETCH: {MAX_SERVED_AT_ONCE} are being served already");
                    let _ = fetch.reject(RequestErrorCode::ExcessiveLoad, "too many FETCHes at once");
                    continue;
                }
                let live = live.clone();
                serving.spawn(async move {
                    if let Err(err) = serve(fetch, live, timeout).await {
                        log::debug!("serving a FETCH ended: {err}");
                    }
                });
            }
            Some(_) = serving.join_next() => {}
            else => break,
        }
    }
}

/// Serve one FETCH from the history of the track it names, or refuse it.
async fn serve(
    fetch: FetchRequested,
    live: Weak<Live>,
    timeout: Duration,
) -> Result<(), SessionError> {
    let range = match tokio::time::timeout(timeout, fetch.resolve()).await {
        Ok(Ok(Some(range))) => range,
        // Refused by the transport already (a joining FETCH it could not resolve).
        Ok(Ok(None)) => return Ok(()),
        Ok(Err(err)) => return Err(err),
        Err(_) => {
            let _ = fetch.reject(RequestErrorCode::Timeout, "FETCH resolution timed out");
            return Ok(());
        }
    };
    // A name this library cannot have published (not UTF-8, a field with '/') finds nothing.
    let namespace =
        path(&range.track_namespace).unwrap_or_else(|| range.track_namespace.to_utf8_path());
    let track = range.track_name.to_string_lossy().into_owned();
    let history = live
        .upgrade()
        .and_then(|live| live.history(&namespace, &track));
    let history = match history {
        Some(Some(history)) => history,
        Some(None) => {
            let _ = fetch.reject(
                RequestErrorCode::DoesNotExist,
                "the publisher keeps no past groups (retain_groups is 0)",
            );
            return Ok(());
        }
        None => {
            let reason = format!(
                "no track '{}' in '{}' is published here",
                shown(&track),
                shown(&namespace)
            );
            let _ = fetch.reject(RequestErrorCode::DoesNotExist, &reason);
            return Ok(());
        }
    };
    let start = (
        range.start_location.group_id,
        range.start_location.object_id,
    );
    let end = inclusive_end(range.end_location);
    let objects = match history.range(start, end) {
        Ok(objects) => objects,
        Err(Unavailable::Nothing { kept }) => {
            let kept = match kept {
                Some((first, last)) => format!("groups {first} to {last} are kept"),
                None => "nothing is kept yet".into(),
            };
            let reason = format!("none of the range is kept by the publisher ({kept})");
            let _ = fetch.reject(RequestErrorCode::DoesNotExist, &reason);
            return Ok(());
        }
    };
    let descending = fetch.group_order() == Some(GroupOrder::Descending);
    match respond(fetch, &history, objects, descending, timeout).await {
        Err(Stalled) => {
            log::warn!(
                "a FETCH of '{}' stopped being read for {timeout:?}: its response was reset",
                shown(&track)
            );
            Ok(())
        }
        Ok(result) => result,
    }
}

/// A write of a FETCH response waited longer than the request timeout for the reader.
struct Stalled;

/// One write of a response, bounded by `stall`: a requester (or relay) that stops reading
/// does not hold a serving slot, and the payloads, for longer; a slow one that keeps
/// reading is never cut.
async fn within<T>(
    stall: Duration,
    write: impl std::future::Future<Output = T>,
) -> Result<T, Stalled> {
    tokio::time::timeout(stall, write)
        .await
        .map_err(|_| Stalled)
}

/// The inclusive end of a wire End Location (the last object plus one; object 0: the whole
/// group), as `(group, last object or None for the whole group)`.
fn inclusive_end(end: Location) -> (u64, Option<u64>) {
    match end.object_id {
        0 => (end.group_id, None),
        next => (end.group_id, Some(next - 1)),
    }
}

/// FETCH_OK, then the objects (groups newest first when the requester asked for
/// descending order, objects in order within each), then FIN. Dropped before the end, the
/// writer resets the data stream.
async fn respond(
    fetch: FetchRequested,
    history: &History,
    mut objects: Vec<super::history::Kept>,
    descending: bool,
    stall: Duration,
) -> Result<Result<(), SessionError>, Stalled> {
    // Not empty: `History::range` returns an error instead.
    let Some(last) = objects.last() else {
        return Ok(Ok(()));
    };
    let end_location = Location::new(last.group_id, last.object_id.saturating_add(1));
    if descending {
        // Stable: objects keep their order within a group.
        objects.sort_by_key(|object| std::cmp::Reverse(object.group_id));
    }
    let info = FetchOkInfo {
        end_of_track: false,
        end_location,
        params: Default::default(),
        track_extensions: Default::default(),
    };
    let mut writer = match within(stall, fetch.respond(info)).await? {
        Ok(writer) => writer,
        Err(err) => return Ok(Err(err)),
    };
    for object in &objects {
        let record = FetchRecord::Object(FetchRecordObject {
            group_id: object.group_id,
            subgroup_id: (!history.datagrams).then_some(0),
            object_id: object.object_id,
            publisher_priority: history.priority,
            extension_headers: Default::default(),
            payload_length: object.payload.len() as u64,
        });
        if let Err(err) = within(stall, writer.write_record(&record)).await? {
            return Ok(Err(err));
        }
        if let Err(err) = within(stall, writer.write_payload(&object.payload)).await? {
            return Ok(Err(err));
        }
    }
    within(stall, writer.finish()).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wire_end_location_is_the_last_object_plus_one_or_the_whole_group() {
        assert_eq!(inclusive_end(Location::new(4, 0)), (4, None));
        assert_eq!(inclusive_end(Location::new(4, 1)), (4, Some(0)));
        assert_eq!(inclusive_end(Location::new(4, 9)), (4, Some(8)));
    }
}
