//! Remote exchange: channels between subtasks in different processes, one QUIC
//! unidirectional stream per channel, opened by the producer.
//!
//! Each end is a local bounded channel drained or fed by a task. The receiving task reads a
//! frame only when its channel has room, so a slow consumer stops returning flow-control
//! credit: the producer's stream writes wait, its local channel fills, and the producer waits.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use quinn::VarInt;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::oneshot;
use tracing::{debug, warn};

use super::{FrameReader, NetEndpoint};
use crate::{
    BatchReceiver, BatchSender, ChannelId, DataplaneError, Result, StreamHeader, decode_batch, decode_message,
    encode_batch, encode_message, local_channel,
};

/// How long a data stream waits for its receiver to be registered before it is dropped.
const PARK_TIMEOUT: Duration = Duration::from_secs(60);

// Application error codes on data streams: a receiver stops a stream (STOP_SENDING) with a
// `STOP_` code, a producer abandons one (RESET_STREAM) with `RESET_FAILED`.
/// The stream could not be read or decoded.
const STOP_FAILED: VarInt = VarInt::from_u32(1);
/// No receiver claimed the stream: its job was released, or none registered in time.
const STOP_UNCLAIMED: VarInt = VarInt::from_u32(2);
/// The channel already has a stream.
const STOP_DUPLICATE: VarInt = VarInt::from_u32(3);
/// The consumer is gone.
const STOP_CLOSED: VarInt = VarInt::from_u32(4);
/// The producer could not encode or write a batch.
const RESET_FAILED: VarInt = VarInt::from_u32(1);

/// An incoming data stream whose header has been read.
#[derive(Debug)]
struct DataStream {
    reader: FrameReader,
    peer: SocketAddr,
}

/// Where the data stream of a channel meets its receiver, whichever comes first.
#[derive(Debug)]
enum Inbound {
    /// The receiver is registered; its task waits for the stream.
    Waiting(oneshot::Sender<DataStream>),
    /// The stream arrived first. `serial` tells this parking from a later one of the same
    /// channel when its timeout fires.
    Parked { stream: DataStream, serial: u64 },
}

/// The channels of one process to and from other processes.
#[derive(Debug)]
pub struct NetShuffle {
    endpoint: Arc<NetEndpoint>,
    inbound: Mutex<HashMap<ChannelId, Inbound>>,
    next_serial: AtomicU64,
    /// Connections whose data streams are served, by `stable_id`, until they close.
    served: Mutex<HashMap<usize, quinn::Connection>>,
}

impl NetShuffle {
    /// The remote exchange over `endpoint`.
    pub fn new(endpoint: Arc<NetEndpoint>) -> Arc<Self> {
        Arc::new(Self { endpoint, inbound: Mutex::default(), next_serial: AtomicU64::new(0), served: Mutex::default() })
    }

    /// Serves the data streams a peer opens on `conn`, until it closes: reads each stream's
    /// [`StreamHeader`] and hands the stream to the receiver registered for that channel, or
    /// parks it until one registers (for at most a minute, or until [`NetShuffle::release_job`]).
    ///
    /// Call it for every connection [`NetEndpoint::accept`] yields: producers open their
    /// streams on the connection they dialed. Only unidirectional streams are taken, so the
    /// same connection can carry control streams for [`super::accept_control`].
    pub fn serve_connection(self: &Arc<Self>, conn: quinn::Connection) {
        let serial = conn.stable_id();
        if self.served().insert(serial, conn.clone()).is_some() {
            return;
        }
        let shuffle = self.clone();
        tokio::spawn(async move {
            let peer = conn.remote_address();
            loop {
                match conn.accept_uni().await {
                    Ok(stream) => {
                        let shuffle = shuffle.clone();
                        tokio::spawn(async move { shuffle.route(stream, peer).await });
                    }
                    Err(e) => {
                        debug!(%peer, error = %e, "connection closed: no more data streams");
                        shuffle.served().remove(&serial);
                        return;
                    }
                }
            }
        });
    }

    /// Fault injection: cuts every data connection this process has (see
    /// [`super::cut_connection`]) and returns how many. Every channel on them fails at both
    /// ends, as after a network failure; channels opened afterwards dial new connections.
    pub fn cut_connections(&self) -> usize {
        let cut: Vec<quinn::Connection> = self.served().values().cloned().collect();
        for conn in &cut {
            warn!(peer = %conn.remote_address(), "cutting a data connection (fault injection)");
            super::cut_connection(conn);
        }
        cut.len()
    }

    /// The sending end of channel `id` to the process at `peer`.
    ///
    /// Batches go through a local channel of `capacity_batches` to a task that connects,
    /// opens the channel's stream and writes one frame per batch, finishing the stream once
    /// this sender is dropped. If the connection or stream fails, the task ends and the next
    /// [`BatchSender::send`] fails with [`DataplaneError::ChannelClosed`].
    pub fn remote_sender<T: Serialize + Send + 'static>(
        self: &Arc<Self>,
        id: ChannelId,
        peer: SocketAddr,
        capacity_batches: usize,
    ) -> BatchSender<T> {
        let (sender, batches) = local_channel(capacity_batches);
        let shuffle = self.clone();
        tokio::spawn(async move {
            if let Err(e) = send_stream(&shuffle, id, peer, batches).await {
                warn!(channel = %id, %peer, error = %e, "data stream failed; closing the channel");
            }
        });
        sender
    }

    /// The receiving end of channel `id`, fed by the stream its producer opens.
    ///
    /// A task reads one frame at a time into a local channel of `capacity_batches`, and waits
    /// while that is full. A frame that does not decode ends the stream (the producer is told
    /// to stop) and the channel, as does a broken connection: the receiver then yields `None`
    /// before any [`crate::Element::EndOfData`].
    pub fn remote_receiver<T: DeserializeOwned + Send + 'static>(
        self: &Arc<Self>,
        id: ChannelId,
        capacity_batches: usize,
    ) -> BatchReceiver<T> {
        let (batches, receiver) = local_channel(capacity_batches);
        let (route, routed) = oneshot::channel();
        {
            let mut inbound = self.inbound();
            match inbound.remove(&id) {
                Some(Inbound::Parked { stream, .. }) => {
                    // The receiving end of `route` is alive here: this cannot fail.
                    let _ = route.send(stream);
                }
                previous => {
                    if previous.is_some() {
                        warn!(channel = %id, "receiver registered twice; the first one gets no data");
                    }
                    inbound.insert(id, Inbound::Waiting(route));
                }
            }
        }
        tokio::spawn(async move {
            // An error means the registration was released before the stream came.
            if let Ok(stream) = routed.await {
                receive_stream(id, stream, batches).await;
            }
        });
        receiver
    }

    /// Drops the parked streams and waiting receivers of job `job`'s attempts up to
    /// `last_attempt` (after the job ended, or before it restarts): their producers are told
    /// to stop, their consumers see the end of their input. Channels already streaming are
    /// left to end on their own, and those of later attempts are kept.
    pub fn release_job(&self, job: u128, last_attempt: u32) {
        let released: Vec<_> = self
            .inbound()
            .extract_if(|id, _| id.job == job && id.attempt <= last_attempt)
            .map(|(_, entry)| entry)
            .collect();
        for entry in released {
            if let Inbound::Parked { mut stream, .. } = entry {
                stream.reader.stop(STOP_UNCLAIMED);
            }
        }
    }

    /// How many data streams wait for their receiver to be registered.
    pub fn parked(&self) -> usize {
        self.inbound().values().filter(|entry| matches!(entry, Inbound::Parked { .. })).count()
    }

    /// Reads the header of a new data stream and hands the stream on.
    async fn route(self: Arc<Self>, stream: quinn::RecvStream, peer: SocketAddr) {
        let mut reader = FrameReader::new(stream, self.endpoint.config().max_frame_bytes);
        let header = match reader.next_frame().await {
            Ok(Some(frame)) => decode_message::<StreamHeader>(&frame),
            Ok(None) => Err(DataplaneError::Malformed("data stream: it ended before its header".into())),
            Err(e) => Err(e),
        };
        match header {
            Ok(header) => self.deliver(header.channel, DataStream { reader, peer }),
            Err(e) => {
                warn!(%peer, error = %e, "rejected a data stream");
                reader.stop(STOP_FAILED);
            }
        }
    }

    /// Gives `stream` to the receiver of `id`, or parks it until one registers.
    fn deliver(self: &Arc<Self>, id: ChannelId, mut stream: DataStream) {
        let mut inbound = self.inbound();
        match inbound.remove(&id) {
            Some(Inbound::Waiting(route)) => {
                drop(inbound);
                if let Err(mut stream) = route.send(stream) {
                    stream.reader.stop(STOP_UNCLAIMED);
                }
            }
            Some(parked @ Inbound::Parked { .. }) => {
                inbound.insert(id, parked);
                drop(inbound);
                warn!(channel = %id, peer = %stream.peer, "a second data stream for one channel; stopping it");
                stream.reader.stop(STOP_DUPLICATE);
            }
            None => {
                let serial = self.next_serial.fetch_add(1, Ordering::Relaxed);
                inbound.insert(id, Inbound::Parked { stream, serial });
                drop(inbound);
                let shuffle = Arc::downgrade(self);
                tokio::spawn(async move {
                    tokio::time::sleep(PARK_TIMEOUT).await;
                    if let Some(shuffle) = shuffle.upgrade() {
                        shuffle.expire(id, serial);
                    }
                });
            }
        }
    }

    /// Drops the stream parked for `id` as `serial` if no receiver claimed it meanwhile.
    fn expire(&self, id: ChannelId, serial: u64) {
        let mut inbound = self.inbound();
        if !matches!(inbound.get(&id), Some(Inbound::Parked { serial: s, .. }) if *s == serial) {
            return;
        }
        if let Some(Inbound::Parked { mut stream, .. }) = inbound.remove(&id) {
            drop(inbound);
            warn!(channel = %id, peer = %stream.peer, "no receiver registered for a data stream; dropping it");
            stream.reader.stop(STOP_UNCLAIMED);
        }
    }

    fn served(&self) -> MutexGuard<'_, HashMap<usize, quinn::Connection>> {
        // Every update is a single insert or remove: poisoning cannot leave it half-updated.
        self.served.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn inbound(&self) -> MutexGuard<'_, HashMap<ChannelId, Inbound>> {
        // Every update is a single insert or remove: poisoning cannot leave it half-updated.
        self.inbound.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The producer's side of channel `id`: writes the header, then a frame per batch until the
/// local channel closes, then finishes the stream.
async fn send_stream<T: Serialize>(
    shuffle: &Arc<NetShuffle>,
    id: ChannelId,
    peer: SocketAddr,
    mut batches: BatchReceiver<T>,
) -> Result<()> {
    let max_frame = shuffle.endpoint.config().max_frame_bytes;
    let conn = shuffle.endpoint.connect(peer).await?;
    // One connection per pair of processes: the peer may open its own data streams on the
    // connection this side dialed, so serve them here too.
    shuffle.serve_connection(conn.clone());
    let mut stream =
        conn.open_uni().await.map_err(|e| DataplaneError::Io(format!("opening a data stream to {peer}: {e}")))?;
    let mut frame = Vec::new();
    encode_message(&StreamHeader { channel: id }, max_frame, &mut frame)?;
    let written = async {
        // The header goes out at once so the receiver can route the stream before any data.
        loop {
            stream
                .write_all(&frame)
                .await
                .map_err(|e| DataplaneError::Io(format!("writing a data stream to {peer}: {e}")))?;
            frame.clear();
            match batches.recv().await {
                Some(batch) => {
                    encode_batch(&batch, max_frame, &mut frame)?;
                    batches.metrics().add_bytes(frame.len() as u64);
                }
                None => break,
            }
        }
        stream.finish().map_err(|e| DataplaneError::Io(format!("finishing a data stream to {peer}: {e}")))
    }
    .await;
    if written.is_err() {
        // Dropping the stream would finish it, and the consumer would take a clean end for
        // the end of its input.
        let _ = stream.reset(RESET_FAILED);
    }
    written
}

/// The consumer's side of channel `id`: decodes each frame of `stream` into `batches`.
async fn receive_stream<T: DeserializeOwned>(id: ChannelId, mut stream: DataStream, batches: BatchSender<T>) {
    let failure = loop {
        let frame = match stream.reader.next_frame().await {
            Ok(Some(frame)) => frame,
            Ok(None) => return,
            Err(e) => break e,
        };
        let batch = match decode_batch(&frame) {
            Ok(batch) => batch,
            Err(e) => break e,
        };
        batches.metrics().add_bytes(frame.len() as u64);
        if batches.send(batch).await.is_err() {
            debug!(channel = %id, peer = %stream.peer, "consumer gone; stopping its data stream");
            stream.reader.stop(STOP_CLOSED);
            return;
        }
    };
    warn!(channel = %id, peer = %stream.peer, error = %failure, "data stream failed; closing the channel");
    stream.reader.stop(STOP_FAILED);
}

#[cfg(test)]
mod tests;
