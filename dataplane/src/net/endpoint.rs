//! One QUIC endpoint per process: it accepts other nodes' connections and dials its own, one
//! connection per peer.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use quinn::{IdleTimeout, TransportConfig, VarInt};

use super::{NodeIdentity, SERVER_NAME};
use crate::{DEFAULT_MAX_FRAME_BYTES, DataplaneError, Result};

/// Network settings of a node.
#[derive(Debug, Clone)]
pub struct NetConfig {
    /// The largest frame payload sent or accepted.
    pub max_frame_bytes: usize,
    /// How many bytes a peer may send on one stream ahead of the reader. Small, so that a
    /// slow consumer holds its producer back quickly and per-channel memory stays bounded.
    pub stream_window_bytes: u64,
    /// How many bytes a peer may send on all streams of a connection ahead of the readers.
    ///
    /// A channel that is not being read (a slow consumer, or one blocked for barrier
    /// alignment) holds up to `stream_window_bytes` of this; once blocked channels hold all of
    /// it, every other channel on the connection stalls too. Keep it at least
    /// `stream_window_bytes` times the number of channels that may be blocked at once.
    pub connection_window_bytes: u64,
    /// How many streams of each kind a peer may have open at once: one unidirectional stream
    /// per data channel.
    pub max_concurrent_streams: u32,
    /// How often an otherwise idle connection is kept alive.
    pub keep_alive: Duration,
    /// How long a silent peer is given before its connection is considered lost.
    pub idle_timeout: Duration,
}

impl Default for NetConfig {
    fn default() -> Self {
        Self {
            max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
            stream_window_bytes: 512 * 1024,
            connection_window_bytes: 64 * 1024 * 1024,
            max_concurrent_streams: 4096,
            keep_alive: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(10),
        }
    }
}

/// QUIC transport settings from `net`, with values beyond QUIC's range clamped to it.
pub(super) fn transport_config(net: &NetConfig) -> Arc<TransportConfig> {
    let varint = |value: u64| VarInt::from_u64(value).unwrap_or(VarInt::MAX);
    let mut transport = TransportConfig::default();
    transport
        .stream_receive_window(varint(net.stream_window_bytes))
        .receive_window(varint(net.connection_window_bytes))
        .send_window(net.connection_window_bytes)
        .max_concurrent_uni_streams(net.max_concurrent_streams.into())
        .max_concurrent_bidi_streams(net.max_concurrent_streams.into())
        .keep_alive_interval(Some(net.keep_alive))
        .max_idle_timeout(Some(IdleTimeout::try_from(net.idle_timeout).unwrap_or(VarInt::MAX.into())));
    Arc::new(transport)
}

/// The connection dialed to one peer, behind a lock held through the handshake.
type DialSlot = Arc<tokio::sync::Mutex<Option<quinn::Connection>>>;

/// A node's QUIC endpoint: a server for its peers and a client to them, on one UDP socket.
#[derive(Debug)]
pub struct NetEndpoint {
    endpoint: quinn::Endpoint,
    local_addr: SocketAddr,
    config: NetConfig,
    /// The connection this endpoint dialed to each peer. Each peer has its own async lock,
    /// held through the handshake, so concurrent callers end up sharing one connection.
    dialed: Mutex<HashMap<SocketAddr, DialSlot>>,
    /// UDP bytes (sent, received) of connections that left their peer's slot: replaced by a
    /// new one after they closed.
    retired: Mutex<(u64, u64)>,
}

/// What an endpoint's connections carried, for a process's metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NetStats {
    /// Connections open now.
    pub connections: u64,
    /// UDP bytes sent by the connections kept per peer, those since replaced included.
    pub sent_bytes: u64,
    /// UDP bytes received by them.
    pub received_bytes: u64,
}

impl NetEndpoint {
    /// Binds an endpoint to `addr` (port 0 for any free port) that serves and dials peers
    /// with `identity`. Must be called within a tokio runtime.
    pub fn bind(addr: SocketAddr, identity: &NodeIdentity, config: NetConfig) -> Result<Arc<Self>> {
        let mut endpoint = quinn::Endpoint::server(identity.server_config(&config)?, addr)
            .map_err(|e| DataplaneError::Io(format!("binding a UDP socket to {addr}: {e}")))?;
        endpoint.set_default_client_config(identity.client_config(&config)?);
        let local_addr =
            endpoint.local_addr().map_err(|e| DataplaneError::Io(format!("reading the bound address: {e}")))?;
        Ok(Arc::new(Self { endpoint, local_addr, config, dialed: Mutex::default(), retired: Mutex::default() }))
    }

    /// The address the endpoint is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The network settings.
    pub fn config(&self) -> &NetConfig {
        &self.config
    }

    /// The connection to `peer`: the one dialed before while it is open, else a new one.
    ///
    /// Fails with [`DataplaneError::Connect`] if the handshake fails, for instance because
    /// the peer's certificate is not signed by the cluster CA. With mutual TLS the server
    /// checks this node's certificate after the client considers the handshake done, so a
    /// refused client may get a connection that closes right away.
    pub async fn connect(&self, peer: SocketAddr) -> Result<quinn::Connection> {
        let slot = self.dialed().entry(peer).or_default().clone();
        let mut slot = slot.lock().await;
        if let Some(connection) = slot.as_ref().filter(|c| c.close_reason().is_none()) {
            return Ok(connection.clone());
        }
        let refused = |reason: String, handshake| DataplaneError::Connect { peer: peer.to_string(), reason, handshake };
        let connecting = self.endpoint.connect(peer, SERVER_NAME).map_err(|e| refused(e.to_string(), false))?;
        let connection = connecting.await.map_err(|e| refused(e.to_string(), handshake_failed(&e)))?;
        self.retire(slot.replace(connection.clone()));
        Ok(connection)
    }

    /// The next incoming connection, once its handshake is done; an `Err` for a handshake
    /// that failed (worth logging: a peer without a valid certificate tried to connect), and
    /// `None` once the endpoint is closed.
    ///
    /// Keep the connection (for instance in [`super::NetShuffle::serve_connection`]): quinn
    /// closes a connection once every handle to it is dropped.
    ///
    /// An accepted connection also becomes the one [`NetEndpoint::connect`] returns for that
    /// peer (unless this side dialed one already): every node dials from the socket it
    /// listens on, so a peer's remote address is its listening address, and the pair of
    /// processes then shares one connection.
    pub async fn accept(&self) -> Option<Result<quinn::Connection>> {
        let incoming = self.endpoint.accept().await?;
        let peer = incoming.remote_address();
        let accepted = incoming.await.map_err(|e| DataplaneError::Connect {
            peer: peer.to_string(),
            reason: e.to_string(),
            handshake: handshake_failed(&e),
        });
        if let Ok(connection) = &accepted {
            let slot = self.dialed().entry(peer).or_default().clone();
            // A dial in progress keeps its own connection; a rare double connection is harmless.
            if let Ok(mut slot) = slot.try_lock()
                && slot.as_ref().is_none_or(|c| c.close_reason().is_some())
            {
                self.retire(slot.replace(connection.clone()));
            }
        }
        Some(accepted)
    }

    /// Open connections, and the bytes of those kept per peer (the rare second connection of
    /// a pair that dialed each other at once is left out).
    pub fn stats(&self) -> NetStats {
        let connections: Vec<quinn::Connection> =
            self.dialed().values().filter_map(|slot| slot.try_lock().ok()?.clone()).collect();
        let (sent, received) = *self.retired.lock().unwrap_or_else(|e| e.into_inner());
        connections.iter().map(|c| c.stats()).fold(
            NetStats {
                connections: self.endpoint.open_connections() as u64,
                sent_bytes: sent,
                received_bytes: received,
            },
            |mut total, s| {
                total.sent_bytes += s.udp_tx.bytes;
                total.received_bytes += s.udp_rx.bytes;
                total
            },
        )
    }

    /// Counts what a connection leaving its slot carried.
    fn retire(&self, old: Option<quinn::Connection>) {
        if let Some(old) = old {
            let s = old.stats();
            let mut retired = self.retired.lock().unwrap_or_else(|e| e.into_inner());
            retired.0 += s.udp_tx.bytes;
            retired.1 += s.udp_rx.bytes;
        }
    }

    /// Closes every connection and stops accepting new ones.
    pub fn close(&self) {
        self.endpoint.close(VarInt::from_u32(0), b"endpoint closed");
    }

    fn dialed(&self) -> MutexGuard<'_, HashMap<SocketAddr, DialSlot>> {
        // Every update is a single insert: poisoning cannot leave the map half-updated.
        self.dialed.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Whether `e` is a failed TLS handshake (a crypto error, QUIC codes 0x100–0x1ff), raised here
/// or by the peer.
fn handshake_failed(e: &quinn::ConnectionError) -> bool {
    let code = match e {
        quinn::ConnectionError::TransportError(error) => error.code,
        quinn::ConnectionError::ConnectionClosed(close) => close.error_code,
        _ => return false,
    };
    (0x100..0x200).contains(&u64::from(code))
}

#[cfg(test)]
mod tests;
