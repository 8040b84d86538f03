//! `Publisher`: publish objects on a track.

use std::sync::Arc;

use super::records::ObjectLocation;
use super::MoqError;
use crate::core;

/// Publishes objects on one track. Thread-safe. `finish()` (or destroying the object) ends
/// the track for subscribers.
#[derive(uniffi::Object)]
pub struct Publisher {
    core: core::Publisher,
}

impl Publisher {
    pub(crate) fn new(core: core::Publisher) -> Arc<Self> {
        Arc::new(Self { core })
    }
}

#[uniffi::export]
impl Publisher {
    /// Publish one object. Non-blocking (queued and sent by the library runtime).
    pub fn publish(&self, payload: Vec<u8>) -> Result<ObjectLocation, MoqError> {
        let location = self.core.publish(payload)?;
        Ok(ObjectLocation {
            group_id: location.group_id,
            object_id: location.object_id,
        })
    }

    /// Publish several objects in order with one call (fewer FFI crossings).
    pub fn publish_many(&self, payloads: Vec<Vec<u8>>) -> Result<(), MoqError> {
        for payload in payloads {
            self.core.publish(payload)?;
        }
        Ok(())
    }

    /// End the current group; the next object starts a new one (e.g. at a key frame).
    pub fn new_group(&self) -> Result<(), MoqError> {
        Ok(self.core.new_group()?)
    }

    /// End the track. Further publishes fail with `Closed`. Idempotent.
    pub fn finish(&self) {
        self.core.close();
    }

    /// Whether the publisher can still publish.
    pub fn is_open(&self) -> bool {
        self.core.is_open()
    }

    /// The namespace.
    pub fn namespace(&self) -> String {
        self.core.namespace().to_string()
    }

    /// The track name.
    pub fn track(&self) -> String {
        self.core.track().to_string()
    }
}
