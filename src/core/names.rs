//! The wire's limits on names, checked before anything is sent.
//!
//! A relay that decodes a request breaking them treats it as a protocol violation and closes
//! the whole session (every publisher and subscription of the client), so the client checks
//! them first and reports a typed `InvalidName` / `InvalidNamespace` error instead. Limits
//! (draft-ietf-moq-transport §2.4.1, as moq-transport's decoder enforces them in
//! `coding::track_namespace`):
//! - a namespace has 1 to 32 fields, none empty (here: `/`-separated);
//! - a full track name (the namespace's field bytes plus the track name's bytes, separators
//!   not counted) is at most [`MAX_FULL_TRACK_NAME_LEN`] = 4,096 bytes.

pub use moq_transport::coding::MAX_FULL_TRACK_NAME_LEN;

use super::error::InvalidName;

/// Most fields in a namespace tuple.
pub const MAX_NAMESPACE_FIELDS: usize = 32;

/// Namespace syntax: 1 to 32 non-empty `/`-separated fields, at most 4,096 bytes of them.
pub(crate) fn validate_namespace(namespace: &str) -> Result<(), String> {
    if namespace.is_empty() {
        return Err("must not be empty".into());
    }
    if namespace.split('/').any(str::is_empty) {
        return Err("fields between '/' must not be empty".into());
    }
    let fields = namespace.split('/').count();
    if fields > MAX_NAMESPACE_FIELDS {
        return Err(format!(
            "has {fields} fields; the protocol allows at most {MAX_NAMESPACE_FIELDS}"
        ));
    }
    let bytes = field_bytes(namespace);
    if bytes > MAX_FULL_TRACK_NAME_LEN {
        return Err(format!(
            "its fields are {bytes} bytes; the protocol allows at most {MAX_FULL_TRACK_NAME_LEN}"
        ));
    }
    Ok(())
}

/// Track name syntax: non-empty, and short enough for the full track name limit.
pub(crate) fn validate_track(track: &str) -> Result<(), String> {
    if track.is_empty() {
        return Err("must not be empty".into());
    }
    if track.len() > MAX_FULL_TRACK_NAME_LEN {
        return Err(format!(
            "is {} bytes; the protocol allows at most {MAX_FULL_TRACK_NAME_LEN}",
            track.len()
        ));
    }
    Ok(())
}

/// The full track name limit: `namespace`'s field bytes plus `track`'s bytes.
pub(crate) fn validate_full_track_name(namespace: &str, track: &str) -> Result<(), String> {
    let total = field_bytes(namespace) + track.len();
    if total > MAX_FULL_TRACK_NAME_LEN {
        return Err(format!(
            "namespace fields plus track name are {total} bytes; the protocol allows at most {MAX_FULL_TRACK_NAME_LEN} (a relay would close the session)"
        ));
    }
    Ok(())
}

/// Every check a (namespace, track) pair needs before a SUBSCRIBE or a track is created:
/// on failure, the offending name (the namespace, the track, or `namespace/track`) and why.
pub(crate) fn check_track(namespace: &str, track: &str) -> Result<(), InvalidName> {
    let invalid = |name: String| move |reason| InvalidName { name, reason };
    validate_namespace(namespace).map_err(invalid(namespace.to_string()))?;
    validate_track(track).map_err(invalid(track.to_string()))?;
    validate_full_track_name(namespace, track).map_err(invalid(format!("{namespace}/{track}")))
}

/// The namespace as this library names namespaces: its fields joined by `/`. `None` (and
/// logged) for one that has no such name: a field that is not UTF-8, or contains `/` or NUL,
/// would alias another namespace (`["a/b"]` and `["a", "b"]` are both "a/b") or could not
/// cross the C ABI, and could not be subscribed to by name anyway.
pub(crate) fn path(namespace: &moq_transport::coding::TrackNamespace) -> Option<String> {
    let mut fields = Vec::with_capacity(namespace.fields.len());
    for field in &namespace.fields {
        match std::str::from_utf8(&field.value) {
            Ok(text) if !text.contains(['/', '\0']) => fields.push(text),
            _ => {
                let lossy = namespace.to_utf8_path();
                log::debug!(
                    "namespace '{}' has no name here: a field is not UTF-8 or contains '/' or NUL",
                    super::error::shown(&lossy)
                );
                return None;
            }
        }
    }
    Some(fields.join("/"))
}

fn field_bytes(namespace: &str) -> usize {
    namespace.split('/').map(str::len).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_full_track_name_limit_counts_field_and_track_bytes_not_separators() {
        let namespace = format!("{}/{}", "a".repeat(2000), "b".repeat(2000));
        assert!(validate_namespace(&namespace).is_ok());
        assert!(validate_full_track_name(&namespace, &"t".repeat(96)).is_ok());
        let err = validate_full_track_name(&namespace, &"t".repeat(97)).unwrap_err();
        assert!(err.contains("4097 bytes"), "{err}");
        assert!(validate_namespace(&vec!["x"; 33].join("/")).is_err());
        assert!(validate_namespace(&vec!["x"; 32].join("/")).is_ok());
    }
}
