//! The network layer between processes: QUIC with mutual TLS, framed control streams and the
//! remote exchange of batches.
//!
//! A thin async driver over the sans-IO [`crate::frame`] codec: every byte a peer sends passes
//! through a [`FrameDecoder`], so a bad peer can fail a stream but never panic the process or
//! make it allocate more than one frame.

mod control;
mod endpoint;
mod shuffle;
#[cfg(test)]
mod testing;
mod tls;

pub use control::{ControlReceiver, ControlSender, accept_control, open_control};
use endpoint::transport_config;
pub use endpoint::{NetConfig, NetEndpoint};
pub use shuffle::NetShuffle;
pub use tls::{ClusterCa, NodeIdentity, SERVER_NAME};

use crate::{DataplaneError, FrameDecoder, Result};

/// The application error code of a connection closed by fault injection.
pub const CUT_CODE: quinn::VarInt = quinn::VarInt::from_u32(0xC07);

/// Fault injection: closes `conn` at once, as a network failure would look to both ends.
///
/// The peer sees the connection closed with [`CUT_CODE`] and a reason saying it was cut on
/// purpose, so the logs of a chaos run name the fault rather than a mystery. Streams on it
/// fail at both ends; the next dial opens a new connection. Tests and chaos runs only: nothing
/// in the runtime calls this unless fault injection is switched on.
pub fn cut_connection(conn: &quinn::Connection) {
    conn.close(CUT_CODE, b"connection cut (fault injection)");
}

/// Reads the frames of one QUIC receive stream.
#[derive(Debug)]
struct FrameReader {
    stream: quinn::RecvStream,
    decoder: FrameDecoder,
}

impl FrameReader {
    fn new(stream: quinn::RecvStream, max_frame: usize) -> Self {
        Self { stream, decoder: FrameDecoder::new(max_frame) }
    }

    /// The next frame's payload; `None` if the stream ended cleanly between frames.
    ///
    /// Reads only what the next frame still needs: a caller that stops calling stops reading,
    /// so the stream's flow-control window, not this reader, bounds what the peer can send
    /// ahead.
    async fn next_frame(&mut self) -> Result<Option<Vec<u8>>> {
        loop {
            if let Some(frame) = self.decoder.next_frame()? {
                return Ok(Some(frame));
            }
            match self.stream.read_chunk(self.decoder.missing(), true).await {
                Ok(Some(chunk)) => self.decoder.push(&chunk.bytes),
                Ok(None) if self.decoder.buffered() == 0 => return Ok(None),
                Ok(None) => {
                    return Err(DataplaneError::Malformed(format!(
                        "stream: it ended inside a frame, {} bytes into it",
                        self.decoder.buffered()
                    )));
                }
                Err(e) => return Err(DataplaneError::Io(format!("reading a stream: {e}"))),
            }
        }
    }

    /// Asks the peer to stop sending, with an application error code.
    fn stop(&mut self, code: quinn::VarInt) {
        // Fails only if the stream already ended or was stopped: nothing left to stop.
        let _ = self.stream.stop(code);
    }
}
