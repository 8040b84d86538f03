// SPDX-FileCopyrightText: 2024-2026 Cloudflare Inc., Luke Curley, Mike English and contributors
// SPDX-FileCopyrightText: 2023-2024 Luke Curley and contributors
// SPDX-License-Identifier: MIT OR Apache-2.0

use std::{cmp, io};

use bytes::{Buf, Bytes, BytesMut};

use crate::coding::{Decode, DecodeError};
use crate::data::{FetchRecord, FetchRecordDecoder, MAX_FETCH_RECORD_HEADER_SIZE};

use super::transport as web_transport;
use super::{SessionError, SessionId};
use tracing::Instrument;

pub struct Reader {
    session_id: SessionId,
    span: tracing::Span,
    stream: web_transport::RecvStream,
    buffer: BytesMut,
}

impl Reader {
    #[cfg(test)]
    pub fn new(stream: web_transport::RecvStream) -> Self {
        Self::with_session_id(stream, SessionId::generate())
    }

    pub fn with_session_id(stream: web_transport::RecvStream, session_id: SessionId) -> Self {
        Self {
            span: session_id.span(),
            session_id,
            stream,
            buffer: Default::default(),
        }
    }

    pub async fn decode<T: Decode>(&mut self) -> Result<T, SessionError> {
        let span = self.span.clone();
        self.decode_inner().instrument(span).await
    }

    pub fn session_id(&self) -> &SessionId {
        &self.session_id
    }

    async fn decode_inner<T: Decode>(&mut self) -> Result<T, SessionError> {
        tracing::trace!(
            "[READER] decode: attempting to decode {} (buffer_len={})",
            std::any::type_name::<T>(),
            self.buffer.len()
        );

        loop {
            let mut cursor = io::Cursor::new(&self.buffer);

            // Try to decode with the current buffer.
            let required = match T::decode(&mut cursor) {
                Ok(msg) => {
                    let consumed = cursor.position() as usize;
                    self.buffer.advance(consumed);
                    tracing::trace!(
                        "[READER] decode: successfully decoded {} (consumed={} bytes, buffer_remaining={})",
                        std::any::type_name::<T>(),
                        consumed,
                        self.buffer.len()
                    );
                    return Ok(msg);
                }
                Err(DecodeError::More(required)) => {
                    let total_needed = self.buffer.len() + required;
                    tracing::trace!(
                        "[READER] decode: need more data for {} (current={} bytes, need={} more, total_required={})",
                        std::any::type_name::<T>(),
                        self.buffer.len(),
                        required,
                        total_needed
                    );
                    total_needed
                }
                Err(err) => {
                    tracing::error!(
                        "[READER] decode: ERROR decoding {} - {:?} (buffer_len={})",
                        std::any::type_name::<T>(),
                        err,
                        self.buffer.len()
                    );
                    return Err(err.into());
                }
            };

            // Read in more data until we reach the requested amount.
            // We always read at least once to avoid an infinite loop if some dingus puts remain=0
            loop {
                let before_read = self.buffer.len();
                if self.stream.read_buf(&mut self.buffer).await?.is_none() {
                    tracing::warn!(
                        "[READER] decode: stream ended while waiting for data (have={} bytes, need={})",
                        self.buffer.len(),
                        required
                    );
                    return Err(DecodeError::More(required - self.buffer.len()).into());
                };

                let read_amount = self.buffer.len() - before_read;
                tracing::trace!(
                    "[READER] decode: read {} bytes from stream (buffer_len={})",
                    read_amount,
                    self.buffer.len()
                );

                if self.buffer.len() >= required {
                    tracing::trace!(
                        "[READER] decode: have enough data now (buffer_len={}), retrying decode",
                        self.buffer.len()
                    );
                    break;
                }
            }
        }
    }

    pub async fn read_chunk(&mut self, max: usize) -> Result<Option<Bytes>, SessionError> {
        let span = self.span.clone();
        self.read_chunk_inner(max).instrument(span).await
    }

    async fn read_chunk_inner(&mut self, max: usize) -> Result<Option<Bytes>, SessionError> {
        tracing::trace!(
            "[READER] read_chunk: requested max={} bytes (buffer_len={})",
            max,
            self.buffer.len()
        );

        if !self.buffer.is_empty() {
            let size = cmp::min(max, self.buffer.len());
            let data = self.buffer.split_to(size).freeze();
            tracing::trace!(
                "[READER] read_chunk: returned {} bytes from buffer (buffer_remaining={})",
                data.len(),
                self.buffer.len()
            );
            return Ok(Some(data));
        }

        let chunk = self.stream.read(max).await?;
        if let Some(ref data) = chunk {
            tracing::trace!("[READER] read_chunk: read {} bytes from stream", data.len());
        } else {
            tracing::trace!("[READER] read_chunk: stream returned None");
        }
        Ok(chunk)
    }

    /// Decode the next record from a FETCH data stream.
    ///
    /// Returns `Ok(None)` on a clean FIN between records. A FIN in the middle
    /// of a record, or a record header larger than
    /// [`MAX_FETCH_RECORD_HEADER_SIZE`], is [`SessionError::WrongSize`]. The
    /// decoder state only advances on success.
    pub(super) async fn decode_fetch(
        &mut self,
        decoder: &mut FetchRecordDecoder,
    ) -> Result<Option<FetchRecord>, SessionError> {
        let span = self.span.clone();
        self.decode_fetch_inner(decoder).instrument(span).await
    }

    async fn decode_fetch_inner(
        &mut self,
        decoder: &mut FetchRecordDecoder,
    ) -> Result<Option<FetchRecord>, SessionError> {
        loop {
            let available = self.buffer.len().min(MAX_FETCH_RECORD_HEADER_SIZE);
            let mut cursor = io::Cursor::new(&self.buffer[..available]);
            let mut candidate = decoder.clone();
            match candidate.decode(&mut cursor) {
                Ok(record) => {
                    let consumed = cursor.position() as usize;
                    self.buffer.advance(consumed);
                    *decoder = candidate;
                    return Ok(Some(record));
                }
                Err(DecodeError::More(required)) => {
                    if available == MAX_FETCH_RECORD_HEADER_SIZE
                        || self.buffer.len().saturating_add(required) > MAX_FETCH_RECORD_HEADER_SIZE
                    {
                        return Err(SessionError::WrongSize);
                    }
                    if self.stream.read_buf(&mut self.buffer).await?.is_none() {
                        if self.buffer.is_empty() {
                            return Ok(None);
                        }
                        return Err(SessionError::WrongSize);
                    }
                }
                Err(err) => return Err(err.into()),
            }
        }
    }

    pub async fn done(&mut self) -> Result<bool, SessionError> {
        if !self.buffer.is_empty() {
            return Ok(false);
        }

        Ok(self.stream.read_buf(&mut self.buffer).await?.is_none())
    }

    pub(super) fn stop(&mut self, code: u32) {
        self.stream.stop(code);
    }
}
