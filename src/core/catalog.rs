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

/// Why a catalog object could not be used.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum CatalogError {
    /// Not valid catalog JSON.
    #[error("malformed catalog: {reason}")]
    Malformed {
        /// The parser's message.
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

fn clamp(value: Option<u64>) -> u32 {
    value.map(|v| v.min(u32::MAX as u64) as u32).unwrap_or(0)
}

/// Parse one catalog object into its track list.
pub fn parse_catalog(json: &[u8]) -> Result<Vec<TrackInfo>, CatalogError> {
    let catalog: WireCatalog =
        serde_json::from_slice(json).map_err(|err| CatalogError::Malformed {
            reason: err.to_string(),
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
}
