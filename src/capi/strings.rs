//! Library-wide functions: init, version, last error, freeing strings.

use std::ffi::CString;
use std::os::raw::c_char;

use super::boundary;

/// Initialise the library: installs the TLS crypto provider and a stderr logger whose level
/// is the `MOQ_LOG` environment variable (`error`, `warn`, `info`, `debug`, `trace`, `off`;
/// default `warn`).
/// Optional (every function initialises what it needs), idempotent, thread-safe.
/// Returns true.
#[no_mangle]
pub extern "C" fn moq_init() -> bool {
    boundary::value("moq_init", false, || {
        init_once();
        Ok(true)
    })
}

pub(crate) fn init_once() {
    static INIT: std::sync::Once = std::sync::Once::new();
    INIT.call_once(|| {
        crate::bridge::log::init_from_env();
    });
}

/// The library version: a static string containing `moq_ffi` and the crate version. Never
/// freed by the caller.
#[no_mangle]
pub extern "C" fn moq_version() -> *const c_char {
    static VERSION: &str = concat!("moq_ffi ", env!("CARGO_PKG_VERSION"), "\0");
    VERSION.as_ptr().cast()
}

/// The message of the last failing `moq_*` call on this thread ("" if none). Owned by the
/// library; valid at least until the next `moq_*` call on this thread. Never freed by the
/// caller.
#[no_mangle]
pub extern "C" fn moq_last_error() -> *const c_char {
    boundary::last_error()
}

/// Free a string returned by this library in `MoqResult.message`. NULL is a no-op. Passing
/// any other pointer (e.g. from `moq_version` or `moq_last_error`) is undefined behaviour.
///
/// # Safety
/// `str` must be NULL or a `MoqResult.message` not freed before.
#[no_mangle]
pub unsafe extern "C" fn moq_free_str(str: *const c_char) {
    boundary::value("moq_free_str", (), || {
        if !str.is_null() {
            // SAFETY: created by CString::into_raw in boundary::result, per the contract.
            drop(unsafe { CString::from_raw(str.cast_mut()) });
        }
        Ok(())
    })
}
