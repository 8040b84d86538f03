//! `uniffi-bindgen`, pinned to the uniffi version of moq-ffi. Used by scripts/gen-bindings
//! (library mode: `generate --library target/debug/libmoq_ffi.so`) and by maturin.

fn main() {
    uniffi::uniffi_bindgen_main()
}
