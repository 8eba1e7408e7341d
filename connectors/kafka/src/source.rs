//! [`KafkaSource`]: Kafka partitions as the splits of a source, their offsets in its state.
//!
//! Each subtask owns the partitions Flink's `KafkaSourceEnumerator` would give it
//! (`(hash(topic) * 31 & 0x7fffffff) % parallelism + partition`, modulo the parallelism: spread
//! evenly, the same after every restart), assigns them to its own consumer (no group
//! rebalancing: the group id only names where offsets are committed for monitoring) and reads
//! them from their starting offsets. Each partition's next offset is in the source's state, a
//! union list: restored at the same parallelism each subtask takes its own partitions back, at
//! another each takes the ones it owns now out of everyone's. A partition the state does not
//! know (new since, or never seen) starts from the earliest offset, as Flink's discovered
//! partitions do.
//!
//! Bounded mode stops each partition at the offset that was its end when the job first read
//! it (kept in the state, so a restored job stops at the same place), and the source finishes
//! once every partition reached its stop.
//!
//! # Event time
//!
//! Each record carries its Kafka timestamp; with [`KafkaSource::watermarks`] the watermarks
//! are per partition, as Flink's Kafka source makes them (per-split watermarks): each partition
//! a subtask reads has its own generator from the strategy, and the subtask's watermark is the
//! minimum of its partitions' watermarks, so a partition that is behind (less data, or
//! consumed more slowly) holds it back instead of seeing its records turn late. A partition
//! that reached its stop (bounded mode) no longer counts. A partition without records holds
//! the watermark back too, until the strategy's idle timeout
//! ([`WatermarkStrategy::with_idleness`]) leaves it out while it stays quiet; without one it
//! holds it back for good, as in Flink. A partition read for the first time (discovered, or
//! after a restore) starts without a watermark, holding the subtask's where it is until its
//! records catch up: the watermark never goes back.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::{Message, Timestamp as KafkaTimestamp};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};
use weir_actors::prelude::*;

use crate::deserializer::{KafkaDeserializer, KafkaRecord};

/// How long a call to the broker (metadata, offsets) may take before the source fails.
pub(crate) const BROKER_TIMEOUT: Duration = Duration::from_secs(30);
/// How often an unbounded source looks for new partitions by default (Flink's default).
const DEFAULT_DISCOVERY: Duration = Duration::from_secs(300);
/// Snapshots whose offsets wait for their checkpoint to complete, at most.
const MAX_PENDING_COMMITS: usize = 16;
/// How long a poll that found nothing waits before the next one.
const IDLE_WAIT: Duration = Duration::from_millis(5);

/// Where a partition the source has no offset for starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum StartingOffsets {
    /// Its first record (Flink's `OffsetsInitializer.earliest()`).
    Earliest,
    /// After its last record at start (`latest()`).
    Latest,
    /// The consumer group's committed offset, else `fallback` (`committedOffsets(strategy)`).
    Committed {
        /// Where a partition without a committed offset starts.
        fallback: Box<StartingOffsets>,
    },
    /// The first record at or after this time, epoch ms (`timestamp(ms)`).
    Timestamp(i64),
    /// These offsets per (topic, partition), earliest for the others (`offsets(map)`).
    Explicit(BTreeMap<(String, i32), i64>),
}

/// The configuration every subtask of a [`KafkaSource`] shares.
#[derive(Debug, Clone)]
struct Config {
    brokers: String,
    topics: Vec<String>,
    /// Read every topic whose whole name matches this regular expression instead.
    pattern: Option<regex::Regex>,
    group_id: String,
    starting: StartingOffsets,
    bounded: bool,
    /// How often an unbounded source looks for new partitions (`None`: never).
    discovery: Option<Duration>,
    /// How long a call to the brokers (metadata, offsets) may take before the source fails.
    broker_timeout: Duration,
    properties: Vec<(String, String)>,
}

/// A partition this subtask reads: where it is, and where it stops in bounded mode.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Split {
    topic: String,
    partition: i32,
    /// The next offset to read.
    next: i64,
    /// Bounded mode: the offset it ends before.
    stop: Option<i64>,
    /// Its split in the subtask's event time once it is read (its own watermarks); not state:
    /// added again after a restore.
    #[serde(skip)]
    id: Option<SplitId>,
}

impl Split {
    /// Whether it reached its stop (bounded mode).
    fn at_stop(&self) -> bool {
        self.stop.is_some_and(|stop| self.next >= stop)
    }
}

/// Reads Kafka topics; see the [module docs](self).
pub struct KafkaSource<D: KafkaDeserializer> {
    config: Arc<Config>,
    deserializer: D,
    strategy: WatermarkStrategy<D::Out>,
    reader: Option<Reader>,
}

/// (topic, partition, next offset) of every split.
type Offsets = Vec<(String, i32, i64)>;

struct Reader {
    consumer: BaseConsumer,
    subtask: usize,
    parallelism: usize,
    /// Restored splits, taken at the first poll.
    restored: Option<Vec<Split>>,
    /// The splits read, by (topic, partition); `None` until the first poll resolved them.
    splits: Option<BTreeMap<(String, i32), Split>>,
    /// Partitions assigned and not at their stop.
    reading: usize,
    /// When it last looked for new partitions.
    discovered: Instant,
    /// Offsets of the snapshots taken, by checkpoint, to commit when one completes.
    pending_commits: Vec<(u64, Offsets)>,
}

impl<D: KafkaDeserializer> Clone for KafkaSource<D> {
    fn clone(&self) -> Self {
        KafkaSource {
            config: self.config.clone(),
            deserializer: self.deserializer.clone(),
            strategy: self.strategy.clone(),
            reader: None,
        }
    }
}

impl<D: KafkaDeserializer> std::fmt::Debug for KafkaSource<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaSource").field("config", &self.config).finish_non_exhaustive()
    }
}

impl<D: KafkaDeserializer> KafkaSource<D> {
    /// Reads `topics` from the cluster at `brokers` (`host:port,…`) with `deserializer`,
    /// unbounded, from the earliest offsets, committing nowhere (group `weir`).
    pub fn new(brokers: impl Into<String>, topics: &[&str], deserializer: D) -> Self {
        KafkaSource {
            config: Arc::new(Config {
                brokers: brokers.into(),
                topics: topics.iter().map(|t| (*t).to_owned()).collect(),
                pattern: None,
                group_id: "weir".to_owned(),
                starting: StartingOffsets::Earliest,
                bounded: false,
                discovery: Some(DEFAULT_DISCOVERY),
                broker_timeout: BROKER_TIMEOUT,
                properties: Vec::new(),
            }),
            deserializer,
            strategy: WatermarkStrategy::none(),
            reader: None,
        }
    }

    /// Reads every topic whose whole name matches `pattern` (a regular expression, as Flink's
    /// `setTopicPattern`), those created while it runs too when partition discovery is on.
    /// Topics whose names start with `__` (the broker's own) are left out.
    pub fn pattern(brokers: impl Into<String>, pattern: &str, deserializer: D) -> Result<Self> {
        let pattern = regex::Regex::new(&format!("^(?:{pattern})$"))
            .map_err(|e| WeirError::Argument(format!("invalid Kafka topic pattern '{pattern}': {e}")))?;
        Ok(KafkaSource::new(brokers, &[], deserializer).config(|c| c.pattern = Some(pattern)))
    }

    fn config(mut self, change: impl FnOnce(&mut Config)) -> Self {
        change(Arc::make_mut(&mut self.config));
        self
    }

    /// Where partitions without an offset in the state start.
    pub fn starting_offsets(self, starting: StartingOffsets) -> Self {
        self.config(|c| c.starting = starting)
    }

    /// Stops at the offsets current when each partition is first read, then finishes.
    pub fn bounded(self, bounded: bool) -> Self {
        self.config(|c| c.bounded = bounded)
    }

    /// The consumer group whose committed offsets `StartingOffsets::Committed` reads.
    pub fn group_id(self, group: impl Into<String>) -> Self {
        let group = group.into();
        self.config(|c| c.group_id = group)
    }

    /// How often an unbounded source looks for partitions added to its topics (default 5 min,
    /// Flink's `partition.discovery.interval.ms`; `None` turns it off). Bounded sources never
    /// do. New partitions are read from their earliest offset.
    pub fn partition_discovery(self, interval: Option<Duration>) -> Self {
        self.config(|c| c.discovery = interval)
    }

    /// How long a call to the brokers (metadata, offsets) may take before the subtask fails
    /// and the job restarts under its restart strategy (default 30 s).
    pub fn broker_timeout(self, timeout: Duration) -> Self {
        self.config(|c| c.broker_timeout = timeout)
    }

    /// A librdkafka property for the consumer (e.g. `fetch.wait.max.ms`).
    pub fn property(self, key: impl Into<String>, value: impl Into<String>) -> Self {
        let (key, value) = (key.into(), value.into());
        self.config(|c| c.properties.push((key, value)))
    }

    /// Event time: each record's Kafka timestamp, and watermarks from `strategy`.
    pub fn watermarks(mut self, strategy: WatermarkStrategy<D::Out>) -> Self {
        self.strategy = strategy;
        self
    }
}

/// The subtask that reads `partition` of `topic` at `parallelism` (Flink's
/// `KafkaSourceEnumerator.getSplitOwner`, with Java's `String.hashCode`).
pub fn owner(topic: &str, partition: i32, parallelism: usize) -> usize {
    let hash = topic.encode_utf16().fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(i32::from(c)));
    let p = parallelism.max(1) as i64;
    let start = i64::from(hash.wrapping_mul(31) & 0x7fff_ffff) % p;
    ((start + i64::from(partition)) % p) as usize
}

/// Whether librdkafka reports a connection problem it retries by itself.
fn transient(e: &rdkafka::error::KafkaError) -> bool {
    use rdkafka::types::RDKafkaErrorCode::{
        AllBrokersDown, BrokerTransportFailure, NetworkException, OperationTimedOut,
    };
    matches!(
        e.rdkafka_error_code(),
        Some(AllBrokersDown | BrokerTransportFailure | NetworkException | OperationTimedOut)
    )
}

fn kafka_error(what: impl std::fmt::Display, e: rdkafka::error::KafkaError) -> WeirError {
    WeirError::runtime(format!("{what}: {e}"))
}

impl Reader {
    /// Resolves this subtask's splits: the restored ones it owns, and every other partition
    /// it owns from its starting offset; again at each discovery, for partitions added since
    /// (from their earliest offset). Those it reads are splits of `ctx`'s event time, those it
    /// no longer owns not.
    fn resolve<O: Data>(&mut self, config: &Config, ctx: &mut SourceContext<'_, O>) -> Result<()> {
        self.discovered = Instant::now();
        let metadata = self.consumer.fetch_metadata(None, config.broker_timeout).map_err(|e| {
            kafka_error(format!("cannot read the topics of the Kafka cluster at {}", config.brokers), e)
        })?;
        let mut owned = Vec::new();
        let topics: Vec<String> = match &config.pattern {
            Some(pattern) => metadata
                .topics()
                .iter()
                .map(|t| t.name())
                .filter(|name| !name.starts_with("__") && pattern.is_match(name))
                .map(str::to_owned)
                .collect(),
            None => config.topics.clone(),
        };
        for topic in &topics {
            let Some(t) = metadata.topics().iter().find(|t| t.name() == topic) else {
                return Err(WeirError::runtime(format!("Kafka topic '{topic}' does not exist at {}", config.brokers)));
            };
            if let Some(e) = t.error() {
                return Err(WeirError::runtime(format!("Kafka topic '{topic}' at {}: {e:?}", config.brokers)));
            }
            for p in t.partitions() {
                if owner(topic, p.id(), self.parallelism) == self.subtask {
                    owned.push((topic.clone(), p.id()));
                }
            }
        }
        // Known: what this subtask reads already (a discovery), else what it restores.
        let known_before = self.splits.is_some();
        let restoring = self.restored.is_some() || known_before;
        let restored: BTreeMap<(String, i32), Split> = match self.splits.take() {
            Some(splits) => splits,
            None => self
                .restored
                .take()
                .unwrap_or_default()
                .into_iter()
                .map(|s| ((s.topic.clone(), s.partition), s))
                .collect(),
        };
        if known_before && owned.iter().all(|key| restored.contains_key(key)) {
            self.splits = Some(restored);
            return Ok(());
        }
        let mut splits = BTreeMap::new();
        for key in owned {
            let split = match restored.get(&key) {
                Some(s) => s.clone(),
                None => {
                    // A partition the restored state does not know is new: from its start.
                    let starting = if restoring { &StartingOffsets::Earliest } else { &config.starting };
                    self.start_split(config, &key.0, key.1, starting)?
                }
            };
            if known_before && !restored.contains_key(&key) {
                tracing::info!(topic = %key.0, partition = key.1, offset = split.next, "reading a new Kafka partition");
            }
            splits.insert(key, split);
        }
        // Partitions no longer read (their topic is gone) no longer hold the watermark back.
        for gone in restored.iter().filter(|(key, _)| !splits.contains_key(*key)).filter_map(|(_, s)| s.id) {
            ctx.finish_split(gone);
        }
        let mut assignment = TopicPartitionList::new();
        self.reading = 0;
        for s in splits.values_mut().filter(|s| !s.at_stop()) {
            assignment
                .add_partition_offset(&s.topic, s.partition, Offset::Offset(s.next))
                .map_err(|e| kafka_error("cannot assign a partition", e))?;
            self.reading += 1;
            if s.id.is_none() {
                s.id = Some(ctx.add_split());
            }
        }
        self.consumer.assign(&assignment).map_err(|e| kafka_error("cannot assign the partitions", e))?;
        self.splits = Some(splits);
        Ok(())
    }

    /// A new split of `topic`/`partition` at `starting`, with its stop in bounded mode.
    fn start_split(&self, config: &Config, topic: &str, partition: i32, starting: &StartingOffsets) -> Result<Split> {
        let (low, high) = self
            .consumer
            .fetch_watermarks(topic, partition, config.broker_timeout)
            .map_err(|e| kafka_error(format!("cannot read the offsets of {topic}/{partition}"), e))?;
        let next = match starting {
            StartingOffsets::Earliest => low,
            StartingOffsets::Latest => high,
            StartingOffsets::Explicit(offsets) => offsets.get(&(topic.to_owned(), partition)).copied().unwrap_or(low),
            StartingOffsets::Timestamp(ms) => {
                let mut query = TopicPartitionList::new();
                query
                    .add_partition_offset(topic, partition, Offset::Offset(*ms))
                    .map_err(|e| kafka_error("cannot ask for offsets by time", e))?;
                let found = self
                    .consumer
                    .offsets_for_times(query, config.broker_timeout)
                    .map_err(|e| kafka_error(format!("cannot find the offset of {topic}/{partition} at {ms} ms"), e))?;
                match found.find_partition(topic, partition).map(|e| e.offset()) {
                    Some(Offset::Offset(o)) => o,
                    // No record at or after that time: from the end.
                    _ => high,
                }
            }
            StartingOffsets::Committed { fallback } => {
                let mut query = TopicPartitionList::new();
                query.add_partition(topic, partition);
                let committed = self
                    .consumer
                    .committed_offsets(query, config.broker_timeout)
                    .map_err(|e| kafka_error(format!("cannot read group '{}' offsets", config.group_id), e))?;
                match committed.find_partition(topic, partition).map(|e| e.offset()) {
                    Some(Offset::Offset(o)) => o,
                    _ => return self.start_split(config, topic, partition, fallback),
                }
            }
        };
        let next = next.clamp(low, high);
        Ok(Split { topic: topic.to_owned(), partition, next, stop: config.bounded.then_some(high), id: None })
    }
}

impl<D: KafkaDeserializer> Source for KafkaSource<D> {
    type Out = D::Out;

    fn validate(&self, _ctx: &ValidateContext) -> Result<()> {
        if self.config.topics.is_empty() && self.config.pattern.is_none() {
            return Err(WeirError::Argument("a Kafka source needs at least one topic".into()));
        }
        if self.config.brokers.trim().is_empty() {
            return Err(WeirError::Argument("a Kafka source needs the brokers' addresses".into()));
        }
        Ok(())
    }

    fn open(&mut self, ctx: &OpenContext<'_>) -> Result<()> {
        let mut client = ClientConfig::new();
        client
            .set("bootstrap.servers", &self.config.brokers)
            .set("group.id", &self.config.group_id)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("isolation.level", "read_committed")
            .set("enable.partition.eof", "false");
        for (key, value) in &self.config.properties {
            client.set(key, value);
        }
        let consumer: BaseConsumer = client
            .create()
            .map_err(|e| kafka_error(format!("cannot create a Kafka consumer for {}", self.config.brokers), e))?;
        let info = ctx.subtask();
        self.reader = Some(Reader {
            consumer,
            subtask: info.index,
            parallelism: info.parallelism,
            restored: None,
            splits: None,
            reading: 0,
            discovered: Instant::now(),
            pending_commits: Vec::new(),
        });
        Ok(())
    }

    fn poll_next(&mut self, ctx: &mut SourceContext<'_, Self::Out>) -> Result<SourcePoll> {
        let reader = self.reader.as_mut().expect("opened");
        let discover =
            !self.config.bounded && self.config.discovery.is_some_and(|every| reader.discovered.elapsed() >= every);
        if reader.splits.is_none() || discover {
            reader.resolve(&self.config, ctx)?;
        }
        if reader.reading == 0 {
            return Ok(if self.config.bounded { SourcePoll::Finished } else { SourcePoll::Pending(IDLE_WAIT * 20) });
        }
        let deadline = Instant::now() + Duration::from_millis(2);
        while ctx.emitted() < ctx.batch_size() {
            let message = match reader.consumer.poll(Duration::ZERO) {
                None => break,
                // librdkafka retries lost connections itself and reports them on the way:
                // the source goes on (it makes no progress meanwhile, which its metrics show).
                Some(Err(e)) if transient(&e) => {
                    tracing::warn!(brokers = %self.config.brokers, "Kafka: {e} (retrying)");
                    break;
                }
                Some(Err(e)) => return Err(kafka_error("cannot read from Kafka", e)),
                Some(Ok(m)) => m,
            };
            let splits = reader.splits.as_mut().expect("resolved");
            // A subtask reads a few partitions: found by comparison, without a key to allocate.
            let (topic, partition) = (message.topic(), message.partition());
            let Some(split) = splits.values_mut().find(|s| s.partition == partition && s.topic == topic) else {
                continue;
            };
            let offset = message.offset();
            if offset < split.next || split.stop.is_some_and(|stop| offset >= stop) {
                continue;
            }
            split.next = offset + 1;
            let timestamp = match message.timestamp() {
                KafkaTimestamp::CreateTime(ms) | KafkaTimestamp::LogAppendTime(ms) => Some(ms),
                KafkaTimestamp::NotAvailable => None,
            };
            let record = KafkaRecord {
                topic: message.topic(),
                partition: message.partition(),
                offset,
                timestamp,
                key: message.key(),
                value: message.payload(),
            };
            let value = self.deserializer.deserialize(&record).map_err(|e| {
                WeirError::user(format!("Kafka record {}/{} at offset {offset}: {e}", record.topic, record.partition))
            })?;
            // Per partition: its own watermarks (see the module docs).
            let id = split.id.expect("a split read is added");
            match timestamp {
                Some(ts) => ctx.emit_at_split(id, value, ts),
                None => ctx.emit_split(id, value),
            }
            if split.at_stop() {
                ctx.finish_split(id);
                reader.reading -= 1;
                let mut done = TopicPartitionList::new();
                done.add_partition(&split.topic, split.partition);
                let _ = reader.consumer.pause(&done);
            }
            if Instant::now() >= deadline {
                break;
            }
        }
        if self.config.bounded && reader.reading == 0 {
            return Ok(SourcePoll::Finished);
        }
        Ok(if ctx.emitted() > 0 { SourcePoll::Ready } else { SourcePoll::Pending(IDLE_WAIT) })
    }

    fn watermark_strategy(&self) -> WatermarkStrategy<Self::Out> {
        self.strategy.clone()
    }

    fn snapshot_state(&mut self) -> Result<Vec<u8>> {
        self.snapshot_state_at(0)
    }

    fn snapshot_state_at(&mut self, checkpoint: u64) -> Result<Vec<u8>> {
        let reader = self.reader.as_mut().expect("opened");
        let splits: Vec<Split> = match (&reader.splits, &reader.restored) {
            (Some(splits), _) => splits.values().cloned().collect(),
            (None, Some(restored)) => restored.clone(),
            (None, None) => Vec::new(),
        };
        let offsets = splits.iter().map(|s| (s.topic.clone(), s.partition, s.next)).collect();
        reader.pending_commits.push((checkpoint, offsets));
        // Checkpoints that never complete must not pile up.
        let excess = reader.pending_commits.len().saturating_sub(MAX_PENDING_COMMITS);
        reader.pending_commits.drain(..excess);
        postcard::to_allocvec(&splits).map_err(|e| WeirError::runtime(format!("cannot encode the Kafka offsets: {e}")))
    }

    /// Commits the offsets of the completed checkpoint to the consumer group, for monitoring
    /// only (as Flink does: the job restores from its own state, never from these), without
    /// waiting; a failed commit is logged and the next checkpoint's commits again.
    fn notify_checkpoint_complete(&mut self, checkpoint: u64) -> Result<()> {
        let reader = self.reader.as_mut().expect("opened");
        let Some(at) = reader.pending_commits.iter().rposition(|(id, _)| *id == checkpoint) else { return Ok(()) };
        let (_, offsets) = reader.pending_commits.remove(at);
        reader.pending_commits.retain(|(id, _)| *id > checkpoint);
        if offsets.is_empty() {
            return Ok(());
        }
        let mut commit = TopicPartitionList::new();
        for (topic, partition, next) in &offsets {
            commit
                .add_partition_offset(topic, *partition, Offset::Offset(*next))
                .map_err(|e| kafka_error("cannot name the offsets to commit", e))?;
        }
        if let Err(e) = reader.consumer.commit(&commit, CommitMode::Async) {
            tracing::warn!(group = %self.config.group_id, checkpoint, "cannot commit the Kafka offsets: {e}");
        }
        Ok(())
    }

    fn restore_state(&mut self, states: Vec<Vec<u8>>) -> Result<()> {
        let mut all = Vec::new();
        for (i, bytes) in states.iter().enumerate() {
            let splits: Vec<Split> = postcard::from_bytes(bytes).map_err(|e| {
                WeirError::user(format!("the Kafka source's state of subtask {i} does not decode: {e}"))
            })?;
            all.extend(splits);
        }
        let reader = self.reader.as_mut().expect("opened");
        reader.restored = Some(all);
        Ok(())
    }
}
