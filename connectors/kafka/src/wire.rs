//! The few Kafka requests librdkafka does not offer, spoken directly (`kafka-protocol` encodes
//! them): ending a transaction that another process began (`EndTxn` with the producer id and
//! epoch a checkpoint kept), probing transactional ids (`InitProducerId`, which aborts what is
//! open under the id), and reading a topic as a `read_committed` consumer would from the
//! transaction markers in its log ([`read_committed`]).
//!
//! Blocking, one short-lived connection per broker, versions negotiated with `ApiVersions`.

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, EndTxnRequest, FetchRequest, FindCoordinatorRequest, InitProducerIdRequest,
    MetadataRequest, ProducerId, RequestHeader, ResponseHeader, TopicName, TransactionalId,
    fetch_request::{FetchPartition, FetchTopic},
    metadata_request::MetadataRequestTopic,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use kafka_protocol::records::RecordBatchDecoder;

/// A request failed: the message names the broker and what went wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireError {
    message: String,
    /// The connection failed (asking again may work); otherwise the broker answered.
    transient: bool,
}

impl WireError {
    fn transient(message: String) -> WireError {
        WireError { message, transient: true }
    }
}

impl From<String> for WireError {
    fn from(message: String) -> WireError {
        WireError { message, transient: false }
    }
}

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for WireError {}

/// What a request gave.
pub type WireResult<T> = std::result::Result<T, WireError>;

/// Kafka error codes this module acts on.
mod code {
    pub(super) const NONE: i16 = 0;
    pub(super) const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
    pub(super) const COORDINATOR_NOT_AVAILABLE: i16 = 15;
    pub(super) const NOT_COORDINATOR: i16 = 16;
    pub(super) const CONCURRENT_TRANSACTIONS: i16 = 51;
    pub(super) const INVALID_PRODUCER_EPOCH: i16 = 47;
    pub(super) const INVALID_TXN_STATE: i16 = 48;
    pub(super) const UNKNOWN_PRODUCER_ID: i16 = 59;
    pub(super) const PRODUCER_FENCED: i16 = 90;
}

/// Whether `EndTxn` error `code` says the transaction is over for this producer: it was
/// committed or aborted already, or a newer epoch of its id exists (Flink's committer treats
/// `InvalidTxnState` and `ProducerFenced` so).
pub(crate) fn transaction_ended(code: i16) -> bool {
    matches!(
        code,
        code::INVALID_PRODUCER_EPOCH | code::INVALID_TXN_STATE | code::UNKNOWN_PRODUCER_ID | code::PRODUCER_FENCED
    )
}

/// Whether error `code` goes away by asking again (the coordinator is moving or busy).
fn retriable(code: i16) -> bool {
    matches!(
        code,
        code::COORDINATOR_LOAD_IN_PROGRESS
            | code::COORDINATOR_NOT_AVAILABLE
            | code::NOT_COORDINATOR
            | code::CONCURRENT_TRANSACTIONS
    )
}

/// The name of Kafka error `code`.
pub(crate) fn error_name(code: i16) -> String {
    match kafka_protocol::ResponseError::try_from_code(code) {
        Some(e) => format!("{e:?} ({code})"),
        None => format!("error {code}"),
    }
}

/// A connection to one broker.
struct Connection {
    stream: TcpStream,
    addr: String,
    correlation: i32,
    /// The broker's version range per API key.
    versions: HashMap<i16, (i16, i16)>,
}

impl Connection {
    fn open(addr: &str, timeout: Duration) -> WireResult<Connection> {
        let failed = |e: std::io::Error| WireError::transient(format!("cannot connect to Kafka broker {addr}: {e}"));
        let target = addr.to_socket_addrs().map_err(failed)?.next().ok_or_else(|| format!("no address for {addr}"))?;
        let stream = TcpStream::connect_timeout(&target, timeout).map_err(failed)?;
        stream.set_read_timeout(Some(timeout)).map_err(failed)?;
        stream.set_write_timeout(Some(timeout)).map_err(failed)?;
        stream.set_nodelay(true).map_err(failed)?;
        let mut conn = Connection { stream, addr: addr.to_owned(), correlation: 0, versions: HashMap::new() };
        // Version 0 is the one every broker answers.
        let versions = conn.call(&ApiVersionsRequest::default(), 0)?;
        if versions.error_code != code::NONE {
            return Err(format!("Kafka broker {addr} refused ApiVersions: {}", error_name(versions.error_code)).into());
        }
        conn.versions = versions.api_keys.iter().map(|k| (k.api_key, (k.min_version, k.max_version))).collect();
        Ok(conn)
    }

    /// The highest version of `R` both sides speak, at most `highest`.
    fn version<R: Request>(&self, highest: i16) -> WireResult<i16> {
        let (min, max) = self.versions.get(&R::KEY).copied().unwrap_or((0, -1));
        let version = max.min(highest).min(R::VERSIONS.max);
        if version < min.max(R::VERSIONS.min) {
            let name = ApiKey::try_from(R::KEY).map(|k| format!("{k:?}")).unwrap_or_else(|_| R::KEY.to_string());
            return Err(
                format!("Kafka broker {} does not speak a version of {name} this client knows", self.addr).into()
            );
        }
        Ok(version)
    }

    /// Sends `request` at `version` and reads its response.
    fn call<R: Request>(&mut self, request: &R, version: i16) -> WireResult<R::Response> {
        let addr = self.addr.clone();
        let failed = move |e: String| WireError::transient(format!("request to Kafka broker {addr}: {e}"));
        self.correlation += 1;
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation)
            .with_client_id(Some(StrBytes::from_static_str("weir")));
        let mut frame = vec![0u8; 4];
        let encoded =
            header.encode(&mut frame, R::header_version(version)).and_then(|()| request.encode(&mut frame, version));
        encoded.map_err(|e| format!("cannot encode a request to Kafka broker {}: {e}", self.addr))?;
        let size = (frame.len() - 4) as i32;
        frame[..4].copy_from_slice(&size.to_be_bytes());
        self.stream.write_all(&frame).map_err(|e| failed(e.to_string()))?;
        let mut size = [0u8; 4];
        self.stream.read_exact(&mut size).map_err(|e| failed(e.to_string()))?;
        let size = i32::from_be_bytes(size);
        if !(0..=256 << 20).contains(&size) {
            return Err(failed(format!("a response of {size} bytes")));
        }
        let mut body = vec![0u8; size as usize];
        self.stream.read_exact(&mut body).map_err(|e| failed(e.to_string()))?;
        let mut buf = &body[..];
        let header = ResponseHeader::decode(&mut buf, R::Response::header_version(version))
            .map_err(|e| failed(format!("a malformed response header: {e}")))?;
        if header.correlation_id != self.correlation {
            return Err(failed(format!("response {} to request {}", header.correlation_id, self.correlation)));
        }
        R::Response::decode(&mut buf, version).map_err(|e| failed(format!("a malformed response: {e}")))
    }
}

/// Connections to the brokers of one cluster, opened as needed.
pub(crate) struct Cluster {
    bootstrap: Vec<String>,
    timeout: Duration,
    connections: HashMap<String, Connection>,
}

impl Cluster {
    /// The cluster behind `brokers` (`host:port,…`); each request waits at most `timeout`.
    pub(crate) fn new(brokers: &str, timeout: Duration) -> Cluster {
        let bootstrap = brokers.split(',').map(str::trim).filter(|b| !b.is_empty()).map(str::to_owned).collect();
        Cluster { bootstrap, timeout, connections: HashMap::new() }
    }

    fn connection(&mut self, addr: &str) -> WireResult<&mut Connection> {
        if !self.connections.contains_key(addr) {
            let conn = Connection::open(addr, self.timeout)?;
            self.connections.insert(addr.to_owned(), conn);
        }
        Ok(self.connections.get_mut(addr).expect("just opened"))
    }

    /// A broker that answers: one connected already, or the first of the bootstrap list.
    fn any(&mut self) -> WireResult<&mut Connection> {
        if let Some(addr) = self.connections.keys().next().cloned() {
            return self.connection(&addr);
        }
        let mut errors = Vec::new();
        for addr in self.bootstrap.clone() {
            match Connection::open(&addr, self.timeout) {
                Ok(conn) => {
                    self.connections.insert(addr.clone(), conn);
                    return self.connection(&addr);
                }
                Err(e) => errors.push(e),
            }
        }
        let errors: Vec<String> = errors.iter().map(ToString::to_string).collect();
        Err(WireError::transient(if errors.is_empty() {
            "no Kafka brokers given".to_owned()
        } else {
            errors.join("; ")
        }))
    }

    /// Sends `request` to `addr` (or any broker), dropping the connection if it failed.
    fn call<R: Request>(&mut self, addr: Option<&str>, request: R, highest: i16) -> WireResult<R::Response> {
        self.call_versioned(addr, highest, |_| request)
    }

    /// Sends the request `build` makes for the version chosen (at most `highest`).
    fn call_versioned<R: Request>(
        &mut self,
        addr: Option<&str>,
        highest: i16,
        build: impl FnOnce(i16) -> R,
    ) -> WireResult<R::Response> {
        let conn = match addr {
            Some(addr) => self.connection(addr)?,
            None => self.any()?,
        };
        let addr = conn.addr.clone();
        let result = conn.version::<R>(highest).and_then(|version| conn.call(&build(version), version));
        if result.is_err() {
            self.connections.remove(&addr);
        }
        result
    }

    /// The transaction coordinator of `transactional_id`, as `host:port`.
    fn coordinator(&mut self, transactional_id: &str) -> WireResult<String> {
        let key = StrBytes::from_string(transactional_id.to_owned());
        // From version 4 the keys go in a list.
        let response = self.call_versioned(None, 6, |version| {
            let request = FindCoordinatorRequest::default().with_key_type(1);
            if version >= 4 { request.with_coordinator_keys(vec![key]) } else { request.with_key(key) }
        })?;
        let (error, host, port) = match response.coordinators.first() {
            Some(c) => (c.error_code, c.host.as_str().to_owned(), c.port),
            None => (response.error_code, response.host.as_str().to_owned(), response.port),
        };
        if error != code::NONE {
            return Err(format!("no transaction coordinator for '{transactional_id}': {}", error_name(error)).into());
        }
        Ok(format!("{host}:{port}"))
    }

    /// Calls `attempt` with the coordinator of `transactional_id` until it gives an answer
    /// that is not a retriable error code, or the timeout passed.
    fn with_coordinator<T>(
        &mut self,
        transactional_id: &str,
        mut attempt: impl FnMut(&mut Cluster, &str) -> WireResult<(i16, T)>,
    ) -> WireResult<(i16, T)> {
        let deadline = Instant::now() + self.timeout;
        let mut backoff = Duration::from_millis(20);
        loop {
            let result = self.coordinator(transactional_id).and_then(|addr| attempt(self, &addr));
            match result {
                Ok((code, _)) if retriable(code) && Instant::now() < deadline => {}
                Ok(answer) => return Ok(answer),
                Err(e) if e.transient && Instant::now() < deadline => {}
                Err(e) => return Err(e),
            }
            // A coordinator moving or a transaction completing: ask again shortly.
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(Duration::from_millis(500));
        }
    }

    /// Ends transaction `transactional_id` of producer `(producer_id, epoch)`: commits it, or
    /// aborts it. Returns the broker's error code (0 when done; a fenced producer or a
    /// transaction in another state are for the caller to judge).
    pub(crate) fn end_transaction(
        &mut self,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
        commit: bool,
    ) -> WireResult<i16> {
        let request = EndTxnRequest::default()
            .with_transactional_id(TransactionalId(StrBytes::from_string(transactional_id.to_owned())))
            .with_producer_id(ProducerId(producer_id))
            .with_producer_epoch(epoch)
            .with_committed(commit);
        // Version 5 (KIP-890) bumps the epoch at every end; up to 4 the epoch stays.
        self.with_coordinator(transactional_id, |cluster, addr| {
            cluster.call(Some(addr), request.clone(), 4).map(|r| (r.error_code, ()))
        })
        .map(|(code, ())| code)
    }

    /// Initializes a producer for `transactional_id`, as a new producer does: the broker aborts
    /// a transaction left open under the id and bumps its epoch. Returns `(producer id, epoch)`;
    /// epoch 0 means the id was never used before.
    pub(crate) fn init_producer(&mut self, transactional_id: &str, timeout_ms: i32) -> WireResult<(i64, i16)> {
        let request = InitProducerIdRequest::default()
            .with_transactional_id(Some(TransactionalId(StrBytes::from_string(transactional_id.to_owned()))))
            .with_transaction_timeout_ms(timeout_ms)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1);
        let (code, pid) = self.with_coordinator(transactional_id, |cluster, addr| {
            cluster.call(Some(addr), request.clone(), 4).map(|r| (r.error_code, (r.producer_id.0, r.producer_epoch)))
        })?;
        if code != code::NONE {
            return Err(format!("cannot initialize transactional id '{transactional_id}': {}", error_name(code)).into());
        }
        Ok(pid)
    }

    /// The partitions of `topic` and each one's leader (`host:port`).
    fn partitions(&mut self, topic: &str) -> WireResult<BTreeMap<i32, String>> {
        let request = MetadataRequest::default()
            .with_topics(Some(vec![
                MetadataRequestTopic::default().with_name(Some(TopicName(StrBytes::from_string(topic.to_owned())))),
            ]))
            .with_allow_auto_topic_creation(false);
        let response = self.call(None, request, 12)?;
        let brokers: HashMap<i32, String> =
            response.brokers.iter().map(|b| (b.node_id.0, format!("{}:{}", b.host.as_str(), b.port))).collect();
        let t = response
            .topics
            .iter()
            .find(|t| t.name.as_ref().is_some_and(|n| n.0.as_str() == topic))
            .ok_or_else(|| format!("Kafka topic '{topic}' does not exist"))?;
        if t.error_code != code::NONE {
            return Err(format!("Kafka topic '{topic}': {}", error_name(t.error_code)).into());
        }
        t.partitions
            .iter()
            .map(|p| {
                let leader = brokers.get(&p.leader_id.0).cloned().ok_or_else(|| {
                    format!(
                        "partition {} of Kafka topic '{topic}' has no leader ({})",
                        p.partition_index, p.leader_id.0
                    )
                })?;
                Ok((p.partition_index, leader))
            })
            .collect()
    }
}

/// A record as a `read_committed` consumer sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedRecord {
    /// Its partition.
    pub partition: i32,
    /// Its offset in the partition.
    pub offset: i64,
    /// Its timestamp (ms since the epoch).
    pub timestamp: i64,
    /// Its key.
    pub key: Option<Vec<u8>>,
    /// Its value.
    pub value: Option<Vec<u8>>,
}

/// How long a fetch of [`read_committed`] may wait for records (ms).
const FETCH_WAIT_MS: i32 = 200;
/// [`read_committed`] leaves a partition after this many fetches in a row found nothing new.
const EMPTY_FETCHES: u32 = 3;

/// A topic as [`read_committed`] found it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TopicLog {
    /// What a `read_committed` consumer gets, by partition and offset.
    pub committed: Vec<CommittedRecord>,
    /// Records of aborted transactions.
    pub aborted: u64,
    /// Records of transactions still open (no marker yet).
    pub open: u64,
}

/// Reads all of `topic` and returns what a `read_committed` consumer would get, decided from
/// the transaction markers in the log itself: a transactional record counts once a commit
/// marker of its producer follows it in its partition; one followed by an abort marker, or by
/// none yet (still open), does not. Records written outside transactions all count. For
/// checking output, and for brokers that do not filter for `read_committed` themselves (tansu
/// returns aborted records to such consumers).
pub fn read_committed(brokers: &str, topic: &str, timeout: Duration) -> WireResult<TopicLog> {
    let mut cluster = Cluster::new(brokers, timeout);
    let mut log = TopicLog::default();
    let out = &mut log.committed;
    for (partition, leader) in cluster.partitions(topic)? {
        let mut offset = 0;
        // Per producer: its records not yet followed by a marker.
        let mut open: HashMap<i64, Vec<CommittedRecord>> = HashMap::new();
        // Fetches in a row that brought nothing new.
        let mut empty = 0;
        while empty < EMPTY_FETCHES {
            let request = FetchRequest::default()
                .with_replica_id(kafka_protocol::messages::BrokerId(-1))
                // tansu answers nothing to a fetch that may not wait, and on S3 storage only
                // what it read within the wait.
                .with_max_wait_ms(FETCH_WAIT_MS)
                .with_min_bytes(1)
                .with_max_bytes(64 << 20)
                .with_isolation_level(0)
                .with_session_epoch(-1)
                .with_topics(vec![
                    FetchTopic::default()
                        .with_topic(TopicName(StrBytes::from_string(topic.to_owned())))
                        .with_partitions(vec![
                            FetchPartition::default()
                                .with_partition(partition)
                                .with_fetch_offset(offset)
                                .with_partition_max_bytes(32 << 20),
                        ]),
                ]);
            // Up to 12 topics go by name.
            let response = cluster.call(Some(&leader), request, 11)?;
            // A broker may leave out a partition it has nothing (more) of (tansu does).
            let Some(data) =
                response.responses.iter().flat_map(|t| &t.partitions).find(|p| p.partition_index == partition)
            else {
                empty += 1;
                continue;
            };
            if data.error_code != code::NONE {
                return Err(
                    format!("cannot read partition {partition} of '{topic}': {}", error_name(data.error_code)).into()
                );
            }
            let before = offset;
            if let Some(mut records) = data.records.clone() {
                let sets = RecordBatchDecoder::decode_all(&mut records)
                    .map_err(|e| format!("partition {partition} of '{topic}' holds a malformed batch: {e}"))?;
                for record in sets.into_iter().flat_map(|s| s.records) {
                    if record.offset < offset {
                        continue;
                    }
                    offset = record.offset + 1;
                    if record.control {
                        // Key: version (i16), type (i16): 0 abort, 1 commit.
                        let commit = record.key.as_ref().is_some_and(|k| k.len() >= 4 && k[2..4] == [0, 1]);
                        let ended = open.remove(&record.producer_id).unwrap_or_default();
                        if commit {
                            out.extend(ended);
                        } else {
                            log.aborted += ended.len() as u64;
                        }
                        continue;
                    }
                    let committed = CommittedRecord {
                        partition,
                        offset: record.offset,
                        timestamp: record.timestamp,
                        key: record.key.map(|k| k.to_vec()),
                        value: record.value.map(|v| v.to_vec()),
                    };
                    if record.transactional {
                        open.entry(record.producer_id).or_default().push(committed);
                    } else {
                        out.push(committed);
                    }
                }
            }
            // Up to the high watermark (tansu's can be short of the end, and a fetch then
            // brought the rest), or until fetches find nothing new.
            if offset >= data.high_watermark && offset > before {
                break;
            }
            empty = if offset == before { empty + 1 } else { 0 };
        }
        log.open += open.values().map(|r| r.len() as u64).sum::<u64>();
    }
    log.committed.sort_by_key(|r| (r.partition, r.offset));
    Ok(log)
}
