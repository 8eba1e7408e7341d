//! The control plane between two nodes: versioned messages, one frame each, on a
//! bidirectional QUIC stream.

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::FrameReader;
use crate::{DataplaneError, Result, decode_message, encode_message};

/// Sends framed, versioned messages on a control stream.
#[derive(Debug)]
pub struct ControlSender {
    stream: quinn::SendStream,
    max_frame: usize,
    /// Reused for every frame.
    buf: Vec<u8>,
}

impl ControlSender {
    /// Sends one message, waiting while the peer is not reading.
    ///
    /// Fails with [`DataplaneError::FrameTooLarge`] if it encodes to more than the maximum
    /// frame, and [`DataplaneError::Io`] if the stream or connection is gone.
    pub async fn send<M: Serialize>(&mut self, message: &M) -> Result<()> {
        self.buf.clear();
        encode_message(message, self.max_frame, &mut self.buf)?;
        self.stream
            .write_all(&self.buf)
            .await
            .map_err(|e| DataplaneError::Io(format!("sending a control message: {e}")))
    }

    /// Ends the stream after the messages sent so far: the peer's receiver then yields `None`.
    pub async fn finish(&mut self) -> Result<()> {
        self.stream.finish().map_err(|e| DataplaneError::Io(format!("finishing a control stream: {e}")))
    }
}

/// Receives framed, versioned messages from a control stream.
#[derive(Debug)]
pub struct ControlReceiver {
    reader: FrameReader,
}

impl ControlReceiver {
    /// The next message; `None` once the peer finished the stream.
    ///
    /// Fails on a truncated, oversized or undecodable frame and on another protocol version;
    /// the stream cannot be used after that.
    pub async fn recv<M: DeserializeOwned>(&mut self) -> Result<Option<M>> {
        match self.reader.next_frame().await? {
            Some(frame) => decode_message(&frame).map(Some),
            None => Ok(None),
        }
    }
}

/// Opens a control stream on `conn`. QUIC announces a stream to the peer only once data
/// flows, so this side must send first for the peer's [`accept_control`] to return.
pub async fn open_control(conn: &quinn::Connection, max_frame: usize) -> Result<(ControlSender, ControlReceiver)> {
    let (send, recv) =
        conn.open_bi().await.map_err(|e| DataplaneError::Io(format!("opening a control stream: {e}")))?;
    Ok(control_stream(send, recv, max_frame))
}

/// Accepts the next control stream the peer opens on `conn`.
pub async fn accept_control(conn: &quinn::Connection, max_frame: usize) -> Result<(ControlSender, ControlReceiver)> {
    let (send, recv) =
        conn.accept_bi().await.map_err(|e| DataplaneError::Io(format!("accepting a control stream: {e}")))?;
    Ok(control_stream(send, recv, max_frame))
}

fn control_stream(
    stream: quinn::SendStream,
    recv: quinn::RecvStream,
    max_frame: usize,
) -> (ControlSender, ControlReceiver) {
    (
        ControlSender { stream, max_frame, buf: Vec::new() },
        ControlReceiver { reader: FrameReader::new(recv, max_frame) },
    )
}

#[cfg(test)]
mod tests;
