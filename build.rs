//! Gives the Linux shared library a versioned SONAME, `libmoq_ffi.so.1`, so a C program
//! linked against it records the C ABI's major version and a future incompatible ABI could
//! be installed beside it. The `moq_*` ABI is kept binary-compatible (its contract), so the
//! major stays 1. Android is left alone: its loader wants the plain file name.

/// Major version of the legacy C ABI; `scripts/package-c` reads it back from the library.
const C_ABI_MAJOR: u32 = 1;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libmoq_ffi.so.{C_ABI_MAJOR}");
    }
}
