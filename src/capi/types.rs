//! C types: result codes, states, delivery modes, track info, callbacks, handles, config.

use std::os::raw::{c_char, c_void};

/// Result codes. Stable numbers: never renumber.
#[repr(C)]
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MoqResultCode {
    /// Success.
    MOQ_OK = 0,
    /// A NULL or malformed argument, invalid UTF-8, an out-of-range enum value, or a call
    /// that does not fit the object's state (e.g. a mode mismatch).
    MOQ_ERROR_INVALID_ARGUMENT = 1,
    /// The relay could not be reached or refused the connection (TLS, network, protocol).
    MOQ_ERROR_CONNECTION_FAILED = 2,
    /// The client is not connected (never connected, disconnected, or the session was lost).
    MOQ_ERROR_NOT_CONNECTED = 3,
    /// The relay did not answer in time.
    MOQ_ERROR_TIMEOUT = 4,
    /// An internal failure (including a caught panic); the message says more.
    MOQ_ERROR_INTERNAL = 5,
    /// The operation is not supported here (e.g. a blocking call from a library thread, a
    /// track mode this library cannot read).
    MOQ_ERROR_UNSUPPORTED = 6,
    /// The object is larger than the configured maximum object size (or than a datagram).
    MOQ_ERROR_BUFFER_TOO_SMALL = 7,
}

/// Outcome of a call. `message` is NULL on success; otherwise a heap string the caller frees
/// with `moq_free_str`.
#[repr(C)]
#[derive(Debug)]
pub struct MoqResult {
    /// The result code.
    pub code: MoqResultCode,
    /// NULL on success, else an error message owned by the caller (free with `moq_free_str`).
    pub message: *const c_char,
}

/// Connection states reported to `MoqConnectionCallback`.
#[repr(C)]
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MoqConnectionState {
    /// Not connected.
    MOQ_STATE_DISCONNECTED = 0,
    /// Connecting.
    MOQ_STATE_CONNECTING = 1,
    /// Connected.
    MOQ_STATE_CONNECTED = 2,
    /// Connect failed, or the session was lost.
    MOQ_STATE_FAILED = 3,
}

/// Delivery modes. Functions taking a mode accept the raw integer and reject other values
/// with `MOQ_ERROR_INVALID_ARGUMENT`.
#[repr(C)]
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MoqDeliveryMode {
    /// Lossy QUIC datagrams: objects may be dropped, never corrupted.
    MOQ_DELIVERY_DATAGRAM = 0,
    /// Reliable, ordered QUIC streams.
    MOQ_DELIVERY_STREAM = 1,
}

/// A delivery mode as passed by C: any integer. Validated before use, so an out-of-range
/// value is an error, never undefined behaviour. Appears as `MoqDeliveryMode` in the header.
pub type MoqDeliveryModeRaw = u32;

/// A track listed in a catalog. Strings may be NULL except `name`; numbers are 0 when
/// unknown. Valid only during the callback that receives it.
#[repr(C)]
#[derive(Debug)]
pub struct MoqTrackInfo {
    /// Track name (never NULL).
    pub name: *const c_char,
    /// Codec string, or NULL.
    pub codec: *const c_char,
    /// MIME type, or NULL.
    pub mime_type: *const c_char,
    /// Width in pixels, 0 if unknown.
    pub width: u32,
    /// Height in pixels, 0 if unknown.
    pub height: u32,
    /// Bitrate in bits per second, 0 if unknown.
    pub bitrate: u32,
    /// Audio sample rate in Hz, 0 if unknown.
    pub sample_rate: u32,
    /// Language tag, or NULL.
    pub language: *const c_char,
}

/// Called with each connection state change. Runs on a library thread or, for the states
/// reported during `moq_connect`/`moq_disconnect`, on the calling thread.
pub type MoqConnectionCallback =
    Option<unsafe extern "C" fn(user_data: *mut c_void, state: MoqConnectionState)>;

/// Called with each received object. `data` is valid only during the call (NULL when
/// `data_len` is 0). Runs on a library thread.
pub type MoqDataCallback =
    Option<unsafe extern "C" fn(user_data: *mut c_void, data: *const u8, data_len: usize)>;

/// Called with each namespace announced by another publisher (`track_name` is empty: a
/// namespace announcement names no track). Strings are valid only during the call.
pub type MoqTrackCallback = Option<
    unsafe extern "C" fn(
        user_data: *mut c_void,
        namespace_str: *const c_char,
        track_name: *const c_char,
    ),
>;

/// Called with each well-formed catalog's track list (valid only during the call).
pub type MoqCatalogCallback = Option<
    unsafe extern "C" fn(user_data: *mut c_void, tracks: *const MoqTrackInfo, track_count: usize),
>;

/// Extension configuration for `moq_client_create_ex`. Zero-initialise it
/// (`MoqClientConfig config = {0};`) and set what you need: zero means the default.
#[repr(C)]
#[derive(Debug)]
pub struct MoqClientConfig {
    /// Size of this struct (`sizeof(MoqClientConfig)`), for forward compatibility. Required.
    pub struct_size: usize,
    /// Extra trusted CA certificates, PEM text (NUL-terminated), or NULL.
    pub ca_cert_pem: *const c_char,
    /// Path of a PEM file with extra trusted CA certificates, or NULL.
    pub ca_cert_file: *const c_char,
    /// SHA-256 fingerprint of the relay certificate to pin (64 hex digits, colons allowed),
    /// or NULL. When set, CA validation is replaced by the fingerprint check.
    pub pinned_sha256: *const c_char,
    /// Do not trust the system root certificates (only the extra CA / pin).
    pub disable_system_roots: bool,
    /// DEVELOPMENT ONLY: accept any server certificate. Logged as a warning on every connect.
    pub danger_accept_any_certificate: bool,
    /// Connect timeout in milliseconds (0: 10,000).
    pub connect_timeout_ms: u32,
    /// Request timeout in milliseconds (0: 10,000).
    pub request_timeout_ms: u32,
    /// How long a subscription waits for a publisher to appear, in milliseconds (0: 5,000).
    pub rendezvous_timeout_ms: u32,
    /// A session silent for this long is declared lost, in milliseconds (0: 5,000).
    pub idle_timeout_ms: u32,
    /// Largest object accepted on publish and receive, in bytes (0: 16 MiB).
    pub max_object_size: u64,
}

/// A client handle. Create with `moq_client_create`, free with `moq_client_destroy`.
/// Handles are opaque ids, never dereferenced: a destroyed one is reported as an error.
pub struct MoqClient {
    _opaque: [u8; 0],
}

/// A publisher handle. Free with `moq_publisher_destroy`.
pub struct MoqPublisher {
    _opaque: [u8; 0],
}

/// A subscriber handle (data or catalog). Free with `moq_subscriber_destroy`.
pub struct MoqSubscriber {
    _opaque: [u8; 0],
}

/// Opaque user data pointer, passed back to callbacks untouched. The caller guarantees it
/// may be used from library threads.
#[derive(Clone, Copy)]
pub(crate) struct UserData(pub *mut c_void);
// SAFETY: the C contract makes the caller responsible for user_data's thread safety.
unsafe impl Send for UserData {}
unsafe impl Sync for UserData {}

impl UserData {
    /// The pointer (a method, so closures capture the whole `Send` wrapper).
    pub(crate) fn ptr(self) -> *mut c_void {
        self.0
    }
}
