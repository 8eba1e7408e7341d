//! Sans-IO wire framing: length-prefixed frames, batches and versioned messages as payloads.
//!
//! A frame is `[u32 big-endian length][payload]`. A data stream carries a [`StreamHeader`]
//! message and then one batch per frame; a control stream carries one message per frame. Every
//! length is checked against a maximum before anything is allocated for it, and nothing here
//! panics on bad input: a peer can make a stream fail, never the process.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{Batch, ChannelId, DataplaneError, Element, Result};

/// The version of the wire protocol this build speaks.
pub const PROTOCOL_VERSION: u16 = 1;

/// The largest frame payload accepted unless configured otherwise.
pub const DEFAULT_MAX_FRAME_BYTES: usize = 16 * 1024 * 1024;

/// The size of the length prefix of a frame.
const LENGTH_BYTES: usize = 4;

/// The size of the version prefix of a message.
const VERSION_BYTES: usize = 2;

/// The first frame of every data stream, encoded with [`encode_message`]: which channel the
/// stream feeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StreamHeader {
    /// The channel whose batches follow.
    pub channel: ChannelId,
}

/// Appends a frame holding `payload` to `out`.
///
/// Fails with [`DataplaneError::FrameTooLarge`] (appending nothing) if the payload is longer
/// than `max` bytes or than a length prefix can say.
pub fn encode_frame(payload: &[u8], max: usize, out: &mut Vec<u8>) -> Result<()> {
    let len = checked_len(payload.len(), max)?;
    out.reserve(LENGTH_BYTES + payload.len());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(payload);
    Ok(())
}

/// Appends a frame whose payload `write` appends to `out`, patching in its length afterwards so
/// the payload is encoded in place. On error `out` is left as it was.
fn encode_frame_with(max: usize, out: &mut Vec<u8>, write: impl FnOnce(&mut Vec<u8>) -> Result<()>) -> Result<()> {
    let start = out.len();
    out.extend_from_slice(&[0; LENGTH_BYTES]);
    let len = write(out).and_then(|()| checked_len(out.len() - start - LENGTH_BYTES, max));
    match len {
        Ok(len) => {
            out[start..start + LENGTH_BYTES].copy_from_slice(&len.to_be_bytes());
            Ok(())
        }
        Err(e) => {
            out.truncate(start);
            Err(e)
        }
    }
}

/// The length prefix of a payload of `len` bytes, if it may be sent.
fn checked_len(len: usize, max: usize) -> Result<u32> {
    u32::try_from(len)
        .ok()
        .filter(|_| len <= max)
        .ok_or(DataplaneError::FrameTooLarge { len: len as u64, max: max.min(u32::MAX as usize) })
}

/// Splits a byte stream into frames, holding at most one partial frame plus what was pushed
/// since the last complete one.
#[derive(Debug)]
pub struct FrameDecoder {
    max: usize,
    buf: Vec<u8>,
    /// Where the unread bytes of `buf` start.
    start: usize,
    /// The length of the oversized frame that failed this decoder, if one did.
    failed: Option<u64>,
}

impl FrameDecoder {
    /// A decoder that accepts payloads of up to `max` bytes.
    pub fn new(max: usize) -> Self {
        Self { max, buf: Vec::new(), start: 0, failed: None }
    }

    /// Appends bytes read from the stream.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.failed.is_some() {
            return;
        }
        // Consumed frames are dropped before growing, so the buffer holds only unread bytes.
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete frame's payload; `Ok(None)` if more bytes are needed.
    ///
    /// A length prefix over the maximum fails with [`DataplaneError::FrameTooLarge`] before
    /// anything is allocated for it, and the decoder keeps failing from then on: the stream
    /// can no longer be split into frames.
    pub fn next_frame(&mut self) -> Result<Option<Vec<u8>>> {
        if let Some(len) = self.failed {
            return Err(DataplaneError::FrameTooLarge { len, max: self.max });
        }
        let unread = &self.buf[self.start..];
        let Some((prefix, rest)) = unread.split_first_chunk::<LENGTH_BYTES>() else {
            return Ok(None);
        };
        let len = u32::from_be_bytes(*prefix);
        if len as usize > self.max {
            self.failed = Some(len.into());
            return Err(DataplaneError::FrameTooLarge { len: len.into(), max: self.max });
        }
        let Some(payload) = rest.get(..len as usize) else {
            return Ok(None);
        };
        let payload = payload.to_vec();
        self.start += LENGTH_BYTES + payload.len();
        if self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        }
        Ok(Some(payload))
    }

    /// How many more bytes the next frame needs: at least 1 while no complete frame is
    /// buffered, 0 once one is (or the decoder failed). A reader that reads no more than this
    /// never holds more than one frame.
    pub fn missing(&self) -> usize {
        if self.failed.is_some() {
            return 0;
        }
        let unread = &self.buf[self.start..];
        let wanted = match unread.first_chunk::<LENGTH_BYTES>() {
            Some(prefix) => LENGTH_BYTES + u32::from_be_bytes(*prefix) as usize,
            None => LENGTH_BYTES,
        };
        wanted.saturating_sub(unread.len())
    }

    /// The number of bytes pushed and not yet returned in a frame.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }
}

/// Appends a frame holding `batch` (the postcard encoding of its elements) to `out`.
///
/// Fails with [`DataplaneError::FrameTooLarge`] if the encoding is longer than `max`.
pub fn encode_batch<T: Serialize>(batch: &[Element<T>], max: usize, out: &mut Vec<u8>) -> Result<()> {
    encode_frame_with(max, out, |out| {
        postcard::to_io(batch, out).map(drop).map_err(|e| DataplaneError::Malformed(format!("batch: {e}")))
    })
}

/// Decodes the payload of a batch frame.
///
/// Fails with [`DataplaneError::Malformed`] if the bytes are not exactly one batch of `T`.
pub fn decode_batch<T: DeserializeOwned>(payload: &[u8]) -> Result<Batch<T>> {
    decode_exact(payload, "batch frame")
}

/// Appends a frame holding `message` with this build's [`PROTOCOL_VERSION`] to `out`:
/// `[u16 big-endian version][postcard message]`.
///
/// Fails with [`DataplaneError::FrameTooLarge`] if the encoding is longer than `max`.
pub fn encode_message<M: Serialize>(message: &M, max: usize, out: &mut Vec<u8>) -> Result<()> {
    encode_frame_with(max, out, |out| {
        out.extend_from_slice(&PROTOCOL_VERSION.to_be_bytes());
        postcard::to_io(message, out).map(drop).map_err(|e| DataplaneError::Malformed(format!("message: {e}")))
    })
}

/// Decodes the payload of a message frame.
///
/// Fails with [`DataplaneError::UnsupportedVersion`] if it carries another protocol version,
/// and [`DataplaneError::Malformed`] if it is not exactly one `M`.
pub fn decode_message<M: DeserializeOwned>(payload: &[u8]) -> Result<M> {
    let Some((version, message)) = payload.split_first_chunk::<VERSION_BYTES>() else {
        return Err(DataplaneError::Malformed(format!(
            "message frame: {} bytes cannot hold a protocol version",
            payload.len()
        )));
    };
    let version = u16::from_be_bytes(*version);
    if version != PROTOCOL_VERSION {
        return Err(DataplaneError::UnsupportedVersion { got: version, supported: PROTOCOL_VERSION });
    }
    decode_exact(message, "message frame")
}

/// Decodes `bytes` as exactly one `V`: trailing bytes mean the two ends disagree on the type.
fn decode_exact<V: DeserializeOwned>(bytes: &[u8], what: &str) -> Result<V> {
    match postcard::take_from_bytes(bytes) {
        Ok((value, [])) => Ok(value),
        Ok((_, rest)) => Err(DataplaneError::Malformed(format!("{what}: {} bytes left over", rest.len()))),
        Err(e) => Err(DataplaneError::Malformed(format!("{what}: {e}"))),
    }
}

#[cfg(test)]
mod tests;
