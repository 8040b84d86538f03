//! The committed C header must be exactly what cbindgen generates from `src/capi`.
//! Regenerate with `scripts/gen-header` (or `MOQ_UPDATE_HEADER=1 cargo test --test c_header`).

use std::path::Path;

#[test]
fn committed_header_matches_cbindgen_output() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(root.join("cbindgen.toml")).expect("cbindgen.toml");
    let mut generated = Vec::new();
    cbindgen::Builder::new()
        .with_crate(root)
        .with_config(config)
        .generate()
        .expect("cbindgen generates the header")
        .write(&mut generated);
    let generated = String::from_utf8(generated).expect("UTF-8 header");
    let path = root.join("include/moq_ffi.h");
    if std::env::var_os("MOQ_UPDATE_HEADER").is_some() {
        std::fs::write(&path, &generated).expect("write header");
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "include/moq_ffi.h is out of date with src/capi; run scripts/gen-header and commit it"
    );
    // UniFFI scaffolding must never leak into the C header.
    assert!(
        !generated.contains("uniffi"),
        "UniFFI symbols in the C header"
    );
    for function in [
        "moq_init",
        "moq_client_create",
        "moq_client_destroy",
        "moq_connect",
        "moq_disconnect",
        "moq_is_connected",
        "moq_announce_namespace",
        "moq_create_publisher",
        "moq_create_publisher_ex",
        "moq_publisher_destroy",
        "moq_publish_data",
        "moq_subscribe",
        "moq_subscriber_destroy",
        "moq_unsubscribe",
        "moq_is_subscribed",
        "moq_subscribe_announces",
        "moq_subscribe_catalog",
        "moq_free_str",
        "moq_version",
        "moq_last_error",
    ] {
        assert!(
            generated.contains(&format!("{function}(")),
            "{function} missing"
        );
    }
}
