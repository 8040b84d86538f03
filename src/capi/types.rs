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

impl From<crate::core::ConnectionState> for MoqConnectionState {
    fn from(state: crate::core::ConnectionState) -> Self {
        use crate::core::ConnectionState::*;
        match state {
            Disconnected => MoqConnectionState::MOQ_STATE_DISCONNECTED,
            Connecting => MoqConnectionState::MOQ_STATE_CONNECTING,
            Connected => MoqConnectionState::MOQ_STATE_CONNECTED,
            Failed => MoqConnectionState::MOQ_STATE_FAILED,
        }
    }
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

/// Called with each new-group request a subscriber sent (coalesced while a call runs):
/// `group` is the group it asks to reach (the largest it knows plus one; 0 when it knows
/// none). Start a group with `moq_publisher_new_group` and publish a key frame. Runs on a
/// library thread.
pub type MoqNewGroupCallback = Option<unsafe extern "C" fn(user_data: *mut c_void, group: u64)>;

/// Options for `moq_create_publisher_with_options`. Zero-initialise it and set what you need.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct MoqPublisherOptions {
    /// Size of this struct (`sizeof(MoqPublisherOptions)`), for forward compatibility.
    /// Required.
    pub struct_size: usize,
    /// `MOQ_DELIVERY_DATAGRAM` (0) or `MOQ_DELIVERY_STREAM` (1); validated like every mode.
    pub delivery_mode: MoqDeliveryModeRaw,
    /// Use `priority` (otherwise the default, 128).
    pub has_priority: bool,
    /// Publisher priority, 0 (highest) to 255: when this client's uplink cannot carry
    /// everything, a higher-priority track's objects go first. (Relays on the published
    /// moq-transport invert priorities on their own hop: docs/contract.md, Priorities.)
    pub priority: u8,
    /// STREAM mode: when set, subscribers may ask for a new group and each request is
    /// delivered here (see `MoqNewGroupCallback`); when NULL their requests are refused.
    pub on_new_group_request: MoqNewGroupCallback,
    /// Passed back to `on_new_group_request`.
    pub user_data: *mut c_void,
    /// Groups kept for `moq_fetch` and subscribers' `past_groups`: the last this many (with
    /// `retain_bytes`, whichever bound comes first). 0: none kept (FETCH is answered "not
    /// available"). Added after the first release of this struct: a shorter struct reads 0.
    pub retain_groups: u64,
    /// Payload bytes kept for FETCH at most; 0: the default, 16 MiB.
    pub retain_bytes: u64,
}

/// Options for `moq_subscribe_with_options`. Zero-initialise it and set what you need.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct MoqSubscribeOptions {
    /// Size of this struct (`sizeof(MoqSubscribeOptions)`), for forward compatibility.
    /// Required.
    pub struct_size: usize,
    /// Use `priority` (otherwise the default, 128).
    pub has_priority: bool,
    /// Subscriber priority, 0 (highest) to 255, sent in SUBSCRIBE (the relays tested carry it
    /// but do not act on it).
    pub priority: u8,
    /// The group order to ask for in SUBSCRIBE: 0 the publisher's choice (the default), 1
    /// oldest first, 2 newest first (the relays tested carry it but do not act on it).
    /// Objects reach the callback in ascending group order within the reorder wait either way.
    pub group_order: u32,
    /// Deliver the track's recent past first: the group the live objects start in (from its
    /// start) and up to `past_groups - 1` groups before it, fetched from the publisher (which
    /// must keep them: `MoqPublisherOptions.retain_groups`), then the live objects, with no
    /// duplicate and no gap at the seam. 0: only what is published from now on. Added after
    /// the first release of this struct: a shorter struct reads 0.
    pub past_groups: u64,
}

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

/// Connection statistics, filled by `moq_client_stats`. Set `struct_size` to
/// `sizeof(MoqStats)` before the call (the struct may grow; a library fills only the fields
/// both sides know). Transport figures are those of the current session (a reconnect starts
/// them afresh), zero while not connected.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct MoqStats {
    /// Size of this struct (`sizeof(MoqStats)`), set by the caller. Required.
    pub struct_size: usize,
    /// The connection state.
    pub state: MoqConnectionState,
    /// The MoQT draft of the current session; 0 while not connected.
    pub draft: u32,
    /// Sessions re-established automatically after a loss, counted from the `moq_connect`
    /// that made the current session's client (a connect to another URL, with other drafts,
    /// or after a setter changed the settings starts the count afresh; a reconnect by hand to
    /// the same URL does not).
    pub reconnects: u64,
    /// Smoothed round-trip time, microseconds.
    pub rtt_us: u64,
    /// Congestion window: bytes the sender may have in flight now.
    pub congestion_window: u64,
    /// UDP payload bytes sent on this session.
    pub bytes_sent: u64,
    /// UDP payload bytes received on this session.
    pub bytes_received: u64,
    /// UDP datagrams (QUIC packets) sent on this session.
    pub packets_sent: u64,
    /// UDP datagrams received on this session.
    pub packets_received: u64,
    /// Packets declared lost on this session.
    pub packets_lost: u64,
    /// Times congestion control reacted to loss or congestion on this session.
    pub congestion_events: u64,
    /// QUIC DATAGRAM frames sent (datagram-mode objects) on this session.
    pub datagrams_sent: u64,
    /// QUIC DATAGRAM frames received on this session.
    pub datagrams_received: u64,
    /// Received datagram objects discarded (over the maximum object size) on this session.
    pub datagrams_dropped: u64,
}

/// One subscription's counters, filled by `moq_subscriber_stats`. Set `struct_size` to
/// `sizeof(MoqSubscriptionStats)` before the call.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct MoqSubscriptionStats {
    /// Size of this struct (`sizeof(MoqSubscriptionStats)`), set by the caller. Required.
    pub struct_size: usize,
    /// Objects handed to this subscriber (delivered or about to be).
    pub objects_received: u64,
    /// Payload bytes of those objects.
    pub bytes_received: u64,
    /// Objects discarded because the reader fell behind.
    pub objects_dropped: u64,
    /// Groups cut short upstream (see `moq_subscriber_cut_groups`).
    pub groups_cut: u64,
    /// The group of the latest object received (valid when `has_current_group`).
    pub current_group: u64,
    /// Whether any object was received yet.
    pub has_current_group: bool,
    /// Groups held back waiting for an earlier one, so delivery stays in order.
    pub groups_held_for_ordering: u64,
    /// Objects received and waiting in the subscription's buffer (a batch the delivery thread
    /// has taken and is passing to the data callback is not counted).
    pub buffered_objects: u64,
}

/// A C input struct whose first field is its `struct_size`, read by the library. All-zero
/// bytes must be a valid value (numbers, bools, NULL pointers and callbacks): the fields a
/// caller's older, shorter struct lacks read as zero, their defaults.
pub(crate) trait SizedIn: Copy {
    /// The smallest `struct_size` accepted: the struct's first published size.
    const FIRST_SIZE: usize;
}

/// The first published layouts of the growable input structs: their `sizeof` is the
/// smallest `struct_size` accepted. Not the offset of the first added field: on a target
/// where a `uint64_t` is 8-aligned and pointers are 4 bytes (armv7), the old struct ends
/// before that offset.
mod first_release {
    use std::os::raw::c_void;

    #[repr(C)]
    #[allow(dead_code)] // only measured
    pub struct MoqPublisherOptions {
        struct_size: usize,
        delivery_mode: super::MoqDeliveryModeRaw,
        has_priority: bool,
        priority: u8,
        on_new_group_request: super::MoqNewGroupCallback,
        user_data: *mut c_void,
    }

    #[repr(C)]
    #[allow(dead_code)] // only measured
    pub struct MoqSubscribeOptions {
        struct_size: usize,
        has_priority: bool,
        priority: u8,
        group_order: u32,
    }
}

impl SizedIn for MoqPublisherOptions {
    const FIRST_SIZE: usize = std::mem::size_of::<first_release::MoqPublisherOptions>();
}

impl SizedIn for MoqSubscribeOptions {
    const FIRST_SIZE: usize = std::mem::size_of::<first_release::MoqSubscribeOptions>();
}

/// The largest `struct_size` read: a value beyond it is a struct whose size was never set
/// (garbage), refused rather than read that far.
const MAX_STRUCT_SIZE: usize = 1024;

/// Read an input struct whose first field is its `struct_size`: from a caller built against
/// this header all of it; from one built against an older, shorter one (at least the first
/// published size) the fields it has, the rest zero (their defaults); from a newer, longer
/// one the fields this library knows, provided the ones it does not know are zero (a set
/// option it cannot honour is refused, not ignored); a size above `MAX_STRUCT_SIZE` is
/// refused unread. The size is read on its own first, and only the caller's bytes are read,
/// never a reference to its struct.
///
/// # Safety
/// `ptr` must be NULL or point to a readable struct of at least its `struct_size` bytes,
/// starting with that `size_t` size.
pub(crate) unsafe fn sized_input<T: SizedIn>(
    ptr: *const T,
    name: &str,
    type_name: &str,
) -> Result<T, super::boundary::CError> {
    if ptr.is_null() {
        return Err(super::boundary::CError::invalid(format!("{name} is NULL")));
    }
    // SAFETY: non-NULL, and the struct starts with its size (per the contract).
    let size = unsafe { std::ptr::read_unaligned(ptr as *const usize) };
    let ours = std::mem::size_of::<T>();
    if size < T::FIRST_SIZE {
        return Err(super::boundary::CError::invalid(format!(
            "{name}->struct_size is {size}, smaller than any {type_name} (this library's is {ours}); set it to sizeof({type_name})"
        )));
    }
    if size > MAX_STRUCT_SIZE {
        return Err(super::boundary::CError::invalid(format!(
            "{name}->struct_size is {size}: not a {type_name} size (this library's is {ours}); set it to sizeof({type_name})"
        )));
    }
    if size > ours {
        // SAFETY: the caller's struct has `size` readable bytes (per the contract).
        let tail = unsafe { std::slice::from_raw_parts((ptr as *const u8).add(ours), size - ours) };
        if tail.iter().any(|&b| b != 0) {
            return Err(super::boundary::CError::invalid(format!(
                "{name}->struct_size is {size}: the caller sets fields of {type_name} this library (size {ours}) does not know; use a newer library or leave them zero"
            )));
        }
    }
    // SAFETY: all-zero bytes are a valid `T` (the trait's contract).
    let mut value: T = unsafe { std::mem::zeroed() };
    // SAFETY: `size.min(ours)` bytes are readable from the caller's struct and writable in
    // ours; the two do not overlap.
    unsafe {
        std::ptr::copy_nonoverlapping(
            ptr as *const u8,
            &mut value as *mut T as *mut u8,
            size.min(ours),
        )
    };
    Ok(value)
}

/// A C struct whose first field is its `struct_size`, filled by the library.
pub(crate) trait SizedOut: Copy {
    /// The smallest `struct_size` accepted: the struct's first published size.
    const FIRST_SIZE: usize;
}

impl SizedOut for MoqStats {
    const FIRST_SIZE: usize = std::mem::size_of::<MoqStats>();
}

impl SizedOut for MoqSubscriptionStats {
    const FIRST_SIZE: usize = std::mem::size_of::<MoqSubscriptionStats>();
}

/// Write `value` to the caller's `out`, as much of it as the caller's `struct_size` says it
/// has room for (a caller built against an older, shorter struct gets the fields it knows),
/// and set `struct_size` to the bytes filled (a caller with a newer, longer struct learns
/// which fields this library wrote).
///
/// # Safety
/// `out` must be NULL or point to a writable struct of at least its `struct_size` bytes.
pub(crate) unsafe fn write_sized<T: SizedOut>(
    out: *mut T,
    value: T,
    name: &str,
) -> Result<(), super::boundary::CError> {
    if out.is_null() {
        return Err(super::boundary::CError::invalid(format!("{name} is NULL")));
    }
    // SAFETY: non-NULL, and every such struct starts with its size (per the contract).
    let size = unsafe { std::ptr::read_unaligned(out as *const usize) };
    if size < T::FIRST_SIZE {
        return Err(super::boundary::CError::invalid(format!(
            "{name}->struct_size is {size}; set it to sizeof the struct ({})",
            std::mem::size_of::<T>()
        )));
    }
    let header = std::mem::size_of::<usize>();
    let len = size.min(std::mem::size_of::<T>()) - header;
    // SAFETY: both sides hold at least `header + len` bytes; they do not overlap.
    unsafe {
        std::ptr::copy_nonoverlapping(
            (&value as *const T as *const u8).add(header),
            (out as *mut u8).add(header),
            len,
        );
        std::ptr::write_unaligned(out as *mut usize, header + len);
    }
    Ok(())
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

/// A FETCH response handle (`moq_fetch`). Free with `moq_fetch_destroy`.
pub struct MoqFetch {
    _opaque: [u8; 0],
}

/// `end_object` of `moq_fetch` meaning "to the end of the group" (the header defines it in
/// cbindgen.toml, which exports no constants).
pub const MOQ_FETCH_WHOLE_GROUP: u64 = 0xFFFF_FFFF_FFFF_FFFF;

/// One object of a FETCH response, filled by `moq_fetch_next`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct MoqFetchedObject {
    /// Group id.
    pub group_id: u64,
    /// Object id within the group.
    pub object_id: u64,
    /// The payload (NULL when empty), valid until the next `moq_fetch_next` on the handle or
    /// `moq_fetch_destroy`.
    pub data: *const u8,
    /// Payload length in bytes.
    pub data_len: usize,
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

#[cfg(test)]
mod sized_input_tests {
    use super::*;

    /// The first releases' sizes, as the C compiler laid them out on this 64-bit target: a
    /// caller built against that header passes exactly these.
    #[test]
    fn the_first_release_sizes_are_the_old_structs() {
        if std::mem::size_of::<usize>() == 8 {
            assert_eq!(<MoqPublisherOptions as SizedIn>::FIRST_SIZE, 32);
            assert_eq!(<MoqSubscribeOptions as SizedIn>::FIRST_SIZE, 16);
        }
        assert!(
            <MoqSubscribeOptions as SizedIn>::FIRST_SIZE
                < std::mem::size_of::<MoqSubscribeOptions>()
        );
    }

    /// A struct from the first release reads its fields and zero for the rest; a garbage
    /// size is refused without reading.
    #[test]
    fn an_older_struct_reads_as_far_as_it_goes_and_garbage_sizes_are_refused() {
        let mut options: MoqSubscribeOptions = unsafe { std::mem::zeroed() };
        options.struct_size = <MoqSubscribeOptions as SizedIn>::FIRST_SIZE;
        options.priority = 7;
        options.past_groups = 99; // beyond the old struct: never read
        let read = unsafe { sized_input(&options, "options", "MoqSubscribeOptions") }.unwrap();
        assert_eq!((read.priority, read.past_groups), (7, 0));
        options.struct_size = 1 << 40;
        assert!(unsafe { sized_input(&options, "options", "MoqSubscribeOptions") }.is_err());
    }
}
