//! The MoQ catalog JSON parser: any bytes give a track list or a typed error, never a panic,
//! and the same bytes always give the same answer.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let first = moq_ffi::core::parse_catalog(data).map_err(|e| e.to_string());
    let again = moq_ffi::core::parse_catalog(data).map_err(|e| e.to_string());
    assert_eq!(first, again);
});
