//! URL and configuration parsing: any text gives a parsed URL or a typed error, and errors
//! never echo credentials.
#![no_main]

use libfuzzer_sys::fuzz_target;
use moq_ffi::core::{config, ClientConfig};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok((url, _scheme)) = config::parse_url(&text) {
        // What messages and logs show never carries credentials or a query.
        let shown = config::redacted(&url);
        if let Ok(reparsed) = url::Url::parse(&shown) {
            assert!(reparsed.username().is_empty(), "{shown}");
            assert!(reparsed.password().is_none(), "{shown}");
            assert!(reparsed.query().is_none(), "{shown}");
        }
    }
    let _ = config::parse_fingerprint(&text);
    let mut client = ClientConfig::new(text.as_ref());
    if let Some(&first) = data.first() {
        client.idle_timeout = std::time::Duration::from_millis(u64::from(first) * 100);
        client.keep_alive_interval = std::time::Duration::from_millis(u64::from(first));
        client.max_subscriptions = usize::from(first);
    }
    let _ = client.validate();
});
