//! MoQ catalog (draft-ietf-moq-catalogformat / WARP) parsing and a catalog-track reader.
//!
//! A catalog object is JSON: `{"version":1, "tracks":[{"name":"video",
//! "selectionParams":{"codec":"avc1.64001f","mimeType":"video/mp4","width":1280,
//! "height":720,"bitrate":2000000,"samplerate":48000,"lang":"en"}}]}`. Selection
//! parameters may also appear directly on the track object (older drafts), and
//! `commonTrackFields` supplies defaults for every track.

use serde::Deserialize;

use super::error::SubscribeError;
use super::subscriber::Subscriber;

/// One track listed in a catalog. Unknown numbers are 0, unknown strings `None`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrackInfo {
    /// Track name (always present).
    pub name: String,
    /// Codec string, e.g. `avc1.64001f`, `opus`.
    pub codec: Option<String>,
    /// MIME type, e.g. `video/mp4`.
    pub mime_type: Option<String>,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Bitrate in bits per second.
    pub bitrate: u32,
    /// Audio sample rate in Hz.
    pub sample_rate: u32,
    /// Language tag, e.g. `en`.
    pub language: Option<String>,
}

/// The largest catalog object parsed, in bytes: a catalog describes a broadcast's tracks, a
/// few kilobytes even with initialization data; a larger object is refused unread.
pub const MAX_CATALOG_BYTES: usize = 1024 * 1024;
/// The most tracks a catalog may list: the parser stops at the next one, so a catalog cannot
/// expand into more memory than this many track descriptions.
pub const MAX_CATALOG_TRACKS: usize = 1024;

/// Why a catalog object could not be used.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum CatalogError {
    /// Not valid catalog JSON.
    #[error("malformed catalog: {reason}")]
    Malformed {
        /// The parser's message.
        reason: String,
    },
    /// Over [`MAX_CATALOG_BYTES`] or [`MAX_CATALOG_TRACKS`].
    #[error("catalog over the limit: {reason}; catalogs are read up to {MAX_CATALOG_BYTES} bytes and {MAX_CATALOG_TRACKS} tracks")]
    TooLarge {
        /// Which limit, and by how much.
        reason: String,
    },
}

#[derive(Deserialize, Default, Clone)]
#[serde(rename_all = "camelCase")]
struct Params {
    codec: Option<String>,
    mime_type: Option<String>,
    width: Option<u64>,
    height: Option<u64>,
    bitrate: Option<u64>,
    #[serde(alias = "sampleRate")]
    samplerate: Option<u64>,
    #[serde(alias = "language")]
    lang: Option<String>,
}

impl Params {
    fn or(self, fallback: &Params) -> Params {
        Params {
            codec: self.codec.or_else(|| fallback.codec.clone()),
            mime_type: self.mime_type.or_else(|| fallback.mime_type.clone()),
            width: self.width.or(fallback.width),
            height: self.height.or(fallback.height),
            bitrate: self.bitrate.or(fallback.bitrate),
            samplerate: self.samplerate.or(fallback.samplerate),
            lang: self.lang.or_else(|| fallback.lang.clone()),
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireTrack {
    name: String,
    #[serde(default)]
    selection_params: Option<Params>,
    #[serde(flatten)]
    flat: Params,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireCatalog {
    #[serde(deserialize_with = "at_most_max_tracks")]
    tracks: Vec<WireTrack>,
    #[serde(default)]
    common_track_fields: Option<CommonFields>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct CommonFields {
    #[serde(default)]
    selection_params: Option<Params>,
    #[serde(flatten)]
    flat: Params,
}

/// The message that marks a catalog over [`MAX_CATALOG_TRACKS`] in serde's error.
const TOO_MANY_TRACKS: &str = "more tracks than the limit";

/// Deserialize the track list, failing at track `MAX_CATALOG_TRACKS + 1` instead of
/// materializing however many the object lists.
fn at_most_max_tracks<'de, D>(deserializer: D) -> Result<Vec<WireTrack>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    struct Bounded;
    impl<'de> serde::de::Visitor<'de> for Bounded {
        type Value = Vec<WireTrack>;

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            write!(f, "a list of at most {MAX_CATALOG_TRACKS} tracks")
        }

        fn visit_seq<A: serde::de::SeqAccess<'de>>(
            self,
            mut seq: A,
        ) -> Result<Self::Value, A::Error> {
            let mut tracks = Vec::new();
            while let Some(track) = seq.next_element::<WireTrack>()? {
                if tracks.len() == MAX_CATALOG_TRACKS {
                    return Err(serde::de::Error::custom(TOO_MANY_TRACKS));
                }
                tracks.push(track);
            }
            Ok(tracks)
        }
    }
    deserializer.deserialize_seq(Bounded)
}

fn clamp(value: Option<u64>) -> u32 {
    value.map(|v| v.min(u32::MAX as u64) as u32).unwrap_or(0)
}

/// Parse one catalog object into its track list.
pub fn parse_catalog(json: &[u8]) -> Result<Vec<TrackInfo>, CatalogError> {
    if json.len() > MAX_CATALOG_BYTES {
        return Err(CatalogError::TooLarge {
            reason: format!("{} bytes", json.len()),
        });
    }
    let catalog: WireCatalog = serde_json::from_slice(json).map_err(|err| {
        if err.to_string().starts_with(TOO_MANY_TRACKS) {
            CatalogError::TooLarge {
                reason: format!("more than {MAX_CATALOG_TRACKS} tracks"),
            }
        } else {
            CatalogError::Malformed {
                reason: err.to_string(),
            }
        }
    })?;
    let common = catalog.common_track_fields.unwrap_or_default();
    let common = common.selection_params.unwrap_or_default().or(&common.flat);
    catalog
        .tracks
        .into_iter()
        .map(|track| {
            if track.name.is_empty() {
                return Err(CatalogError::Malformed {
                    reason: "a track has an empty name".into(),
                });
            }
            let params = track
                .selection_params
                .unwrap_or_default()
                .or(&track.flat)
                .or(&common);
            Ok(TrackInfo {
                name: track.name,
                codec: params.codec,
                mime_type: params.mime_type,
                width: clamp(params.width),
                height: clamp(params.height),
                bitrate: clamp(params.bitrate),
                sample_rate: clamp(params.samplerate),
                language: params.lang,
            })
        })
        .collect()
}

/// The track list of a catalog object, or `None` (logged) if it is malformed: what every
/// catalog reader does with a bad catalog, so one bad object never ends a catalog track.
pub(crate) fn catalog_or_skip(object: &super::Object) -> Option<Vec<TrackInfo>> {
    parse_catalog(&object.payload)
        .inspect_err(|err| {
            log::warn!(
                "skipping catalog object {}/{}: {err}",
                object.group_id,
                object.object_id
            )
        })
        .ok()
}

/// Reads a catalog track: each object is parsed into a track list; malformed catalogs are
/// logged and skipped.
pub struct CatalogReader {
    subscriber: Subscriber,
}

impl CatalogReader {
    /// Read catalogs from an established subscription to a catalog track.
    pub fn new(subscriber: Subscriber) -> Self {
        Self { subscriber }
    }

    /// The next well-formed catalog; `Ok(None)` when the track ends.
    pub async fn next(&mut self) -> Result<Option<Vec<TrackInfo>>, SubscribeError> {
        while let Some(object) = self.subscriber.next().await? {
            if let Some(tracks) = catalog_or_skip(&object) {
                return Ok(Some(tracks));
            }
        }
        Ok(None)
    }

    /// The underlying subscription.
    pub fn subscriber(&mut self) -> &mut Subscriber {
        &mut self.subscriber
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_selection_params_and_common_fields() {
        let json = br#"{"version":1,"commonTrackFields":{"selectionParams":{"lang":"en"}},
            "tracks":[{"name":"video","selectionParams":{"codec":"avc1.64001f","mimeType":"video/mp4","width":1280,"height":720,"bitrate":2000000}},
                      {"name":"audio","codec":"opus","samplerate":48000}]}"#;
        let tracks = parse_catalog(json).unwrap();
        assert_eq!(tracks.len(), 2);
        assert_eq!(tracks[0].name, "video");
        assert_eq!(tracks[0].width, 1280);
        assert_eq!(tracks[0].mime_type.as_deref(), Some("video/mp4"));
        assert_eq!(tracks[0].language.as_deref(), Some("en"));
        assert_eq!(tracks[1].codec.as_deref(), Some("opus"));
        assert_eq!(tracks[1].sample_rate, 48000);
        assert_eq!(tracks[1].width, 0);
    }

    #[test]
    fn malformed_catalogs_are_errors_not_panics() {
        for bad in [
            &b"{"[..],
            b"[]",
            b"{\"tracks\":5}",
            b"{\"tracks\":[{\"name\":\"\"}]}",
            b"\xff\xfe",
        ] {
            assert!(parse_catalog(bad).is_err());
        }
    }

    #[test]
    fn a_catalog_over_the_limits_is_a_typed_error_not_a_million_tracks() {
        let track = r#"{"name":"t"},"#;
        let many = format!(
            r#"{{"tracks":[{}{{"name":"last"}}]}}"#,
            track.repeat(MAX_CATALOG_TRACKS)
        );
        assert!(many.len() < MAX_CATALOG_BYTES);
        assert!(matches!(
            parse_catalog(many.as_bytes()),
            Err(CatalogError::TooLarge { .. })
        ));
        let at_limit = format!(
            r#"{{"tracks":[{}{{"name":"last"}}]}}"#,
            track.repeat(MAX_CATALOG_TRACKS - 1)
        );
        assert_eq!(
            parse_catalog(at_limit.as_bytes()).unwrap().len(),
            MAX_CATALOG_TRACKS
        );
        let huge = vec![b' '; MAX_CATALOG_BYTES + 1];
        let err = parse_catalog(&huge).unwrap_err();
        assert!(matches!(err, CatalogError::TooLarge { .. }), "{err}");
        assert!(err.to_string().contains("1048577 bytes"), "{err}");
    }
}
