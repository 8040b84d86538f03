//! Random sequences of legacy C ABI calls with random arguments: NULL handles and strings,
//! invalid UTF-8, garbage enum values, NULL data with huge lengths, oversize payloads,
//! handles destroyed in any order, and handles used (and destroyed again) after their destroy. Every call must return (a result, NULL or false) without
//! crashing, and every error must leave a readable `moq_last_error`.
//!
//! No relay is involved: `moq_connect` only meets argument errors (a real connect would wait
//! for its timeout), so the calls that need a session exercise their "not connected" paths.
#![no_main]

use std::ffi::{c_char, c_void, CString};
use std::ptr;

use libfuzzer_sys::fuzz_target;
use moq_ffi::capi::*;

/// The fuzz input, read front to back.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }

    fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.byte(), self.byte(), self.byte(), self.byte()])
    }

    /// Up to 24 raw bytes, NUL-terminated (an inner NUL ends the C string early); one time
    /// in eight repeated up to ~6,000 bytes, so names reach the protocol's limits (4,096
    /// bytes, 32 namespace fields).
    fn text(&mut self) -> CString {
        let len = usize::from(self.byte() % 25);
        let mut bytes: Vec<u8> = (0..len).map(|_| self.byte()).collect();
        bytes.retain(|&b| b != 0);
        if self.byte() % 8 == 0 && !bytes.is_empty() {
            let times = 1 + usize::from(self.byte()) * 6_000 / 256 / bytes.len();
            bytes = bytes.repeat(times);
        }
        CString::new(bytes).unwrap_or_default()
    }

    /// NULL or a string from the input.
    fn maybe_text<'s>(&mut self, keep: &'s mut Vec<CString>) -> *const c_char {
        if self.byte() % 4 == 0 {
            return ptr::null();
        }
        keep.push(self.text());
        keep.last().map_or(ptr::null(), |s| s.as_ptr())
    }

    fn pick<T: Copy>(&mut self, from: &[T]) -> Option<T> {
        if from.is_empty() || self.byte() % 5 == 0 {
            None
        } else {
            Some(from[usize::from(self.byte()) % from.len()])
        }
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

unsafe extern "C" fn on_data(_user: *mut c_void, _data: *const u8, _len: usize) {}
unsafe extern "C" fn on_track(_user: *mut c_void, _ns: *const c_char, _track: *const c_char) {}
unsafe extern "C" fn on_state(_user: *mut c_void, _state: MoqConnectionState) {}
unsafe extern "C" fn on_catalog(_user: *mut c_void, _tracks: *const MoqTrackInfo, _n: usize) {}

/// After a failing call, the thread's last error must be set and readable.
fn check_error(code: MoqResultCode, message: *const c_char) {
    if code != MoqResultCode::MOQ_OK {
        assert!(!message.is_null(), "an error result without a message");
        assert!(
            !moq_last_error().is_null(),
            "an error without moq_last_error"
        );
    }
    // SAFETY: a result's message is ours to free (NULL is a no-op).
    unsafe { moq_free_str(message) };
}

fn result(r: MoqResult) {
    check_error(r.code, r.message);
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    let mut clients: Vec<*mut MoqClient> = Vec::new();
    let mut publishers: Vec<*mut MoqPublisher> = Vec::new();
    let mut subscribers: Vec<*mut MoqSubscriber> = Vec::new();
    let mut keep: Vec<CString> = Vec::new();
    let payload = vec![7u8; 2048];

    // SAFETY (whole block): handles are opaque ids the library validates (NULL, live, or
    // destroyed: a destroyed one stays in its list and must be reported, not used); every string is NULL or NUL-terminated and outlives the call; `data` is
    // NULL or valid for the length passed, as the C contract requires of callers.
    unsafe {
        while !input.is_empty() && clients.len() + publishers.len() + subscribers.len() < 16 {
            keep.clear();
            let client = input.pick(&clients).unwrap_or(ptr::null_mut());
            match input.byte() % 16 {
                0 => {
                    let c = moq_client_create();
                    if !c.is_null() {
                        clients.push(c);
                    }
                }
                1 => {
                    let pem = input.maybe_text(&mut keep);
                    let file = input.maybe_text(&mut keep);
                    let pin = input.maybe_text(&mut keep);
                    let config = MoqClientConfig {
                        struct_size: match input.byte() % 3 {
                            0 => std::mem::size_of::<MoqClientConfig>(),
                            1 => 0,
                            _ => usize::from(input.byte()),
                        },
                        ca_cert_pem: pem,
                        ca_cert_file: file,
                        pinned_sha256: pin,
                        disable_system_roots: input.byte() % 2 == 0,
                        danger_accept_any_certificate: input.byte() % 2 == 0,
                        connect_timeout_ms: 1,
                        request_timeout_ms: input.u32() % 50,
                        rendezvous_timeout_ms: input.u32() % 50,
                        idle_timeout_ms: input.u32(),
                        max_object_size: u64::from(input.u32()),
                    };
                    let config_ptr = if input.byte() % 8 == 0 {
                        ptr::null()
                    } else {
                        &config
                    };
                    let c = moq_client_create_ex(config_ptr);
                    if c.is_null() {
                        assert!(!moq_last_error().is_null());
                    } else {
                        clients.push(c);
                    }
                }
                2 => {
                    // Stays in the list: later picks pass a destroyed (stale) handle.
                    moq_client_destroy(client);
                }
                3 => {
                    // Only the argument checks: a NULL URL, or one whose scheme can never be
                    // valid (a real connect would wait for its timeout).
                    let url = if input.byte() % 2 == 0 {
                        ptr::null()
                    } else {
                        let mut text = b"x".to_vec();
                        text.extend_from_slice(input.text().as_bytes());
                        keep.push(CString::new(text).unwrap_or_default());
                        keep.last().map_or(ptr::null(), |s| s.as_ptr())
                    };
                    let callback: MoqConnectionCallback = if input.byte() % 2 == 0 {
                        Some(on_state)
                    } else {
                        None
                    };
                    result(moq_connect(client, url, callback, ptr::null_mut()));
                }
                4 => result(moq_disconnect(client)),
                5 => {
                    let _ = moq_is_connected(client);
                }
                6 => {
                    let namespace = input.maybe_text(&mut keep);
                    result(moq_announce_namespace(client, namespace));
                }
                7 => {
                    let namespace = input.maybe_text(&mut keep);
                    let track = input.maybe_text(&mut keep);
                    let mode: MoqDeliveryModeRaw = match input.byte() % 3 {
                        0 => 0,
                        1 => 1,
                        _ => input.u32(),
                    };
                    let p = if input.byte() % 2 == 0 {
                        moq_create_publisher(client, namespace, track)
                    } else {
                        moq_create_publisher_ex(client, namespace, track, mode)
                    };
                    if p.is_null() {
                        assert!(!moq_last_error().is_null());
                    } else {
                        publishers.push(p);
                    }
                }
                8 => {
                    let publisher = input.pick(&publishers).unwrap_or(ptr::null_mut());
                    let (data, len) = match input.byte() % 4 {
                        0 => (ptr::null(), 0),
                        1 => (ptr::null(), input.u32() as usize | 1),
                        _ => (
                            payload.as_ptr(),
                            usize::from(input.byte()) * 8 % payload.len(),
                        ),
                    };
                    let mode = input.u32() % 4;
                    result(moq_publish_data(publisher, data, len, mode));
                }
                9 => {
                    let publisher = input.pick(&publishers).unwrap_or(ptr::null_mut());
                    // Stays in the list: later picks pass a destroyed (stale) handle.
                    moq_publisher_destroy(publisher);
                }
                10 => {
                    let namespace = input.maybe_text(&mut keep);
                    let track = input.maybe_text(&mut keep);
                    let s = if input.byte() % 2 == 0 {
                        let callback: MoqDataCallback = if input.byte() % 3 == 0 {
                            None
                        } else {
                            Some(on_data)
                        };
                        moq_subscribe(client, namespace, track, callback, ptr::null_mut())
                    } else {
                        let callback: MoqCatalogCallback = if input.byte() % 3 == 0 {
                            None
                        } else {
                            Some(on_catalog)
                        };
                        moq_subscribe_catalog(client, namespace, track, callback, ptr::null_mut())
                    };
                    if s.is_null() {
                        assert!(!moq_last_error().is_null());
                    } else {
                        subscribers.push(s);
                    }
                }
                11 => {
                    let s = input.pick(&subscribers).unwrap_or(ptr::null_mut());
                    match input.byte() % 3 {
                        0 => result(moq_unsubscribe(s)),
                        1 => {
                            let _ = moq_is_subscribed(s);
                        }
                        _ => result(moq_subscriber_wait_ready(s, input.u32() % 3)),
                    }
                }
                12 => {
                    let s = input.pick(&subscribers).unwrap_or(ptr::null_mut());
                    // Stays in the list: later picks pass a destroyed (stale) handle.
                    moq_subscriber_destroy(s);
                }
                13 => {
                    let callback: MoqTrackCallback = if input.byte() % 3 == 0 {
                        None
                    } else {
                        Some(on_track)
                    };
                    result(moq_subscribe_announces(client, callback, ptr::null_mut()));
                }
                14 => {
                    let _ = moq_init();
                    assert!(!moq_version().is_null());
                    let _ = moq_last_error();
                }
                _ => moq_free_str(ptr::null()),
            }
        }
        // Tear down in an order the input chooses: handles may outlive their client.
        while !(clients.is_empty() && publishers.is_empty() && subscribers.is_empty()) {
            match input.byte() % 3 {
                0 if !clients.is_empty() => moq_client_destroy(clients.remove(0)),
                1 if !publishers.is_empty() => moq_publisher_destroy(publishers.remove(0)),
                _ if !subscribers.is_empty() => moq_subscriber_destroy(subscribers.remove(0)),
                _ if !publishers.is_empty() => moq_publisher_destroy(publishers.remove(0)),
                _ => {
                    if let Some(c) = clients.pop() {
                        moq_client_destroy(c);
                    }
                }
            }
        }
    }
});
