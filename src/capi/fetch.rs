//! The FETCH extension: `moq_fetch`, `moq_fetch_next`, `moq_fetch_destroy`. Pull-style and
//! blocking (no callback, no thread): a FETCH is a bounded range read once.

use std::os::raw::c_char;
use std::sync::{Arc, Mutex};

use bytes::Bytes;

use super::boundary::{self, str_arg, CError};
use super::client::CLIENTS;
use super::handles::Registry;
use super::types::*;
use crate::bridge::fetch::FetchReader;
use crate::bridge::runtime;
use crate::core::FetchRange;
use crate::sync::lock;

/// The live `MoqFetch` handles.
static FETCHES: Registry<FetchHandle> = Registry::new("fetch");

/// What a `MoqFetch` handle stands for.
struct FetchHandle {
    /// The response; reads are serialized, and destroy cancels one waiting.
    reader: FetchReader,
    /// The payload handed out by the last `moq_fetch_next`, kept alive until the next one.
    current: Mutex<Option<Bytes>>,
    /// Held by a `moq_fetch_next` for its whole call, and taken by `moq_fetch_destroy`
    /// after cancelling: destroy returns only once no call on the handle is in flight, so
    /// no call can hand out a payload after it.
    in_call: Mutex<()>,
}

/// Extension: fetch the past objects of `track_name` in `namespace_str` from
/// (`start_group`, `start_object`) to (`end_group`, `end_object`), both included
/// (`end_object` = `MOQ_FETCH_WHOLE_GROUP`: to the end of `end_group`), from the groups the
/// track's publisher keeps (`MoqPublisherOptions.retain_groups`). Blocks until the publisher,
/// through the relay, accepts (at most the request timeout), then sets `*out` to a handle to
/// read the objects from with `moq_fetch_next`; free it with `moq_fetch_destroy`.
/// Errors: NULL arguments, invalid names, an empty range: `MOQ_ERROR_INVALID_ARGUMENT`; not
/// connected: `MOQ_ERROR_NOT_CONNECTED`; none of the range available (no such track, or not
/// kept), or no answer: `MOQ_ERROR_TIMEOUT` (the message says which); a draft-16 relay or
/// another refusal: `MOQ_ERROR_CONNECTION_FAILED`; the session's requests spent, or on a
/// library thread: `MOQ_ERROR_UNSUPPORTED`. Thread-safe.
///
/// # Safety
/// Strings must be NULL or NUL-terminated; `out` NULL or writable.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn moq_fetch(
    client: *mut MoqClient,
    namespace_str: *const c_char,
    track_name: *const c_char,
    start_group: u64,
    start_object: u64,
    end_group: u64,
    end_object: u64,
    out: *mut *mut MoqFetch,
) -> MoqResult {
    boundary::result("moq_fetch", || {
        if out.is_null() {
            return Err(CError::invalid("out is NULL"));
        }
        let shared = CLIENTS.get(client)?;
        // SAFETY: per the contract.
        let namespace = unsafe { str_arg(namespace_str, "namespace_str") }?;
        let track = unsafe { str_arg(track_name, "track_name") }?;
        let range = FetchRange {
            start_group,
            start_object,
            end_group,
            end_object: (end_object != MOQ_FETCH_WHOLE_GROUP).then_some(end_object),
        };
        let core = shared.connected_core()?;
        let fetched = runtime::block_on(core.fetch(namespace, track, range))
            .map_err(CError::of)?
            .map_err(CError::of)?;
        let handle = FETCHES.insert(Arc::new(FetchHandle {
            reader: FetchReader::new(fetched),
            current: Mutex::new(None),
            in_call: Mutex::new(()),
        }));
        // SAFETY: checked non-NULL; writable per the contract.
        unsafe { out.write(handle) };
        Ok(())
    })
}

/// Extension: the next object of a FETCH, in order. On `MOQ_OK` either `*done` is false and
/// `*object` holds the object (its `data` valid until the next `moq_fetch_next` on this
/// handle or `moq_fetch_destroy`), or `*done` is true: the response is complete. Blocks
/// until the object arrives (each wait at most the request timeout). Errors: NULL or
/// destroyed handle, NULL `object`/`done`, or destroyed while waiting:
/// `MOQ_ERROR_INVALID_ARGUMENT`; the response cut short (what was read is all there is):
/// `MOQ_ERROR_CONNECTION_FAILED`; an object over `max_object_size`:
/// `MOQ_ERROR_BUFFER_TOO_SMALL`; after an error, `*done` on the next call; on a library
/// thread: `MOQ_ERROR_UNSUPPORTED`. Calls on one handle are serialized (call it from one
/// thread at a time: another call invalidates `data`).
///
/// # Safety
/// `object` and `done` must be NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn moq_fetch_next(
    fetch: *mut MoqFetch,
    object: *mut MoqFetchedObject,
    done: *mut bool,
) -> MoqResult {
    boundary::result("moq_fetch_next", || {
        if object.is_null() || done.is_null() {
            return Err(CError::invalid("object and done must not be NULL"));
        }
        let handle = FETCHES.get(fetch)?;
        let _in_call = lock(&handle.in_call);
        let destroyed = || CError::invalid("the fetch was destroyed while waiting");
        if handle.reader.is_cancelled() {
            return Err(destroyed());
        }
        let next = runtime::block_on(handle.reader.next())
            .map_err(CError::of)?
            .map_err(CError::of)?;
        if handle.reader.is_cancelled() {
            return Err(destroyed()); // destroy waits for this call: nothing handed out
        }
        let mut current = lock(&handle.current);
        *current = None;
        match next {
            None => {
                // SAFETY: checked non-NULL; writable per the contract.
                unsafe { done.write(true) };
            }
            Some(next) => {
                let payload = current.insert(next.payload);
                let data = if payload.is_empty() {
                    std::ptr::null()
                } else {
                    payload.as_ptr()
                };
                // SAFETY: checked non-NULL; writable per the contract. The payload stays in
                // `current` until the next call or destroy.
                unsafe {
                    object.write(MoqFetchedObject {
                        group_id: next.group_id,
                        object_id: next.object_id,
                        data,
                        data_len: payload.len(),
                    });
                    done.write(false);
                }
            }
        }
        Ok(())
    })
}

/// Extension: free a FETCH handle; what was not read is not sent. A `moq_fetch_next`
/// waiting in another thread returns `MOQ_ERROR_INVALID_ARGUMENT`, and this returns only
/// after it did (the last object's `data` is invalid from then on). NULL or already
/// destroyed: no-op. Thread-safe.
#[no_mangle]
pub extern "C" fn moq_fetch_destroy(fetch: *mut MoqFetch) {
    boundary::value("moq_fetch_destroy", (), || {
        if let Some(handle) = FETCHES.remove(fetch) {
            handle.reader.cancel();
            // Wait for a call in flight on another thread (the cancel ends its wait).
            drop(lock(&handle.in_call));
        }
        Ok(())
    })
}
