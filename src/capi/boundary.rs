//! The one boundary every exported function goes through, and the one table mapping
//! classified errors to result codes.

use std::cell::RefCell;
use std::ffi::{CStr, CString};
use std::os::raw::c_char;
use std::panic::{catch_unwind, AssertUnwindSafe};

use super::types::{MoqResult, MoqResultCode};
use crate::bridge::error::{Classify, ErrorKind};

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

/// A failure to report to C: a code and an actionable message.
#[derive(Debug)]
pub(crate) struct CError {
    pub code: MoqResultCode,
    pub message: String,
}

impl CError {
    pub fn new(code: MoqResultCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(MoqResultCode::MOQ_ERROR_INVALID_ARGUMENT, message)
    }

    /// A classified core or bridge error, with its message.
    pub fn of(err: impl Classify) -> Self {
        Self::new(code(err.kind()), err.to_string())
    }
}

/// The one table from a kind of failure to the legacy result codes.
fn code(kind: ErrorKind) -> MoqResultCode {
    use MoqResultCode::*;
    match kind {
        ErrorKind::InvalidArgument | ErrorKind::AlreadyExists | ErrorKind::Closed => {
            MOQ_ERROR_INVALID_ARGUMENT
        }
        ErrorKind::Tls
        | ErrorKind::ConnectionFailed
        | ErrorKind::Refused
        // No legacy code means "unauthorized" or "no draft in common"; the message says so
        // and what to do.
        | ErrorKind::Unauthorized
        | ErrorKind::UnsupportedDraft
        | ErrorKind::PublisherLost => MOQ_ERROR_CONNECTION_FAILED,
        ErrorKind::NotConnected => MOQ_ERROR_NOT_CONNECTED,
        ErrorKind::Timeout | ErrorKind::NotFound | ErrorKind::WouldBlock => MOQ_ERROR_TIMEOUT,
        ErrorKind::TooLarge => MOQ_ERROR_BUFFER_TOO_SMALL,
        // No legacy code means "limit reached"; the message names the limit.
        ErrorKind::LimitReached | ErrorKind::WrongThread => MOQ_ERROR_UNSUPPORTED,
        ErrorKind::Internal => MOQ_ERROR_INTERNAL,
    }
}

fn to_cstring(message: &str) -> CString {
    // Interior NULs cannot appear in a C string: replace them.
    CString::new(message.replace('\0', "?")).unwrap_or_default()
}

/// Record `err` as the thread's last error (and log it). Runs outside the body's
/// `catch_unwind`, so it must not panic either: a panic here would cross `extern "C"` and
/// abort the process. Logging is guarded too (a host's own `log` logger might panic).
fn record(function: &str, err: &CError) {
    let text = format!("{function}: {}", err.message);
    let _ = catch_unwind(|| log::debug!("{text}"));
    LAST_ERROR.with(|last| *last.borrow_mut() = to_cstring(&text));
}

fn panic_error(payload: Box<dyn std::any::Any + Send>) -> CError {
    let detail = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into());
    let _ = catch_unwind(|| log::error!("panic caught at the C boundary: {detail}"));
    CError::new(
        MoqResultCode::MOQ_ERROR_INTERNAL,
        format!("internal error (caught panic: {detail}); please report it"),
    )
}

/// Run `body` for an exported function returning a value: on failure or panic, record the
/// last error and return `default`.
pub(crate) fn value<T>(function: &str, default: T, body: impl FnOnce() -> Result<T, CError>) -> T {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(value)) => value,
        Ok(Err(err)) => {
            record(function, &err);
            default
        }
        Err(payload) => {
            record(function, &panic_error(payload));
            default
        }
    }
}

/// Run `body` for an exported function returning `MoqResult`: failures become a result with
/// a caller-owned message (and are recorded as the last error too).
pub(crate) fn result(function: &str, body: impl FnOnce() -> Result<(), CError>) -> MoqResult {
    let err = match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => {
            return MoqResult {
                code: MoqResultCode::MOQ_OK,
                message: std::ptr::null(),
            }
        }
        Ok(Err(err)) => err,
        Err(payload) => panic_error(payload),
    };
    record(function, &err);
    MoqResult {
        code: err.code,
        message: to_cstring(&format!("{function}: {}", err.message)).into_raw(),
    }
}

/// The thread's last error message (empty if none). Valid until the next failing call on
/// this thread.
pub(crate) fn last_error() -> *const c_char {
    LAST_ERROR.with(|last| last.borrow().as_ptr())
}

/// A required string argument: NULL and invalid UTF-8 are `INVALID_ARGUMENT`.
///
/// # Safety
/// `ptr` must be NULL or point to a NUL-terminated string valid for the call.
pub(crate) unsafe fn str_arg<'a>(ptr: *const c_char, name: &str) -> Result<&'a str, CError> {
    if ptr.is_null() {
        return Err(CError::invalid(format!("{name} is NULL")));
    }
    // SAFETY: non-NULL and NUL-terminated per the caller's contract.
    unsafe { CStr::from_ptr(ptr) }
        .to_str()
        .map_err(|_| CError::invalid(format!("{name} is not valid UTF-8")))
}

/// An optional string argument (NULL allowed).
///
/// # Safety
/// As [`str_arg`].
pub(crate) unsafe fn opt_str_arg<'a>(
    ptr: *const c_char,
    name: &str,
) -> Result<Option<&'a str>, CError> {
    if ptr.is_null() {
        Ok(None)
    } else {
        // SAFETY: forwarded contract.
        unsafe { str_arg(ptr, name) }.map(Some)
    }
}
