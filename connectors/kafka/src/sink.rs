//! [`KafkaSink`]: records written to a Kafka topic, with Flink's `NONE`, `AT_LEAST_ONCE` or
//! `EXACTLY_ONCE` delivery guarantee.
//!
//! At least once: every checkpoint barrier flushes the producer and waits until the brokers
//! acknowledged everything sent before it (a refused record fails the checkpoint), so a job
//! restored from that checkpoint has lost nothing; records after it may be written again.
//! None: nothing is awaited at barriers.
//!
//! ## Exactly once
//!
//! As Flink's `KafkaSink` with `DeliveryGuarantee.EXACTLY_ONCE`: a subtask writes into a Kafka
//! transaction, one per checkpoint. At the barrier it pre-commits (flushes, and the brokers
//! acknowledged every record) and the checkpoint keeps the transaction; when the checkpoint
//! completes everywhere the transaction is committed. Consumers that read `read_committed` see
//! each record once, at the latency of the checkpoint interval.
//!
//! Each transaction has its own producer and transactional id,
//! `<prefix>-<subtask>-<n>`, `n` counting the subtask's transactions (Flink numbers them by
//! the checkpoint id; a counter has no gaps where checkpoints were skipped, which the probing
//! below relies on). The prefix is `weir-<job id>-<topic>` unless
//! [`KafkaSink::transactional_id_prefix`] sets one: two exactly-once sinks of one job writing
//! the same topic need distinct prefixes.
//!
//! **A transaction pre-committed by a process that died.** A job restored from a checkpoint
//! must commit what that checkpoint pre-committed; the producer that began it is gone, and
//! librdkafka cannot take over another producer's transaction (Flink sets the producer id and
//! epoch into a new Java producer by reflection). Weir keeps `(transactional id, producer id,
//! epoch)` in the checkpoint and ends the transaction itself with an `EndTxn` request
//! ([`wire`](crate::wire)). The producer id and epoch come from librdkafka's `eos` debug log
//! ("Acquired PID{Id:…,Epoch:…}"), the one place librdkafka tells them: the sink's producers
//! log at debug level into a context that reads that line (librdkafka 2.12, bundled, so the
//! line cannot change under a build; a test commits through it). A commit the broker refuses
//! because the transaction ended already or the producer was fenced is logged and skipped, as
//! Flink's committer does: the transaction was committed before the failure, or it timed out
//! (keep `transaction.timeout.ms`, 15 minutes here, above the longest outage).
//!
//! **Lingering transactions.** An attempt that failed may have left transactions open after
//! its last completed checkpoint; they would hold back `read_committed` consumers until they
//! time out. Before its first transaction, a subtask probes the ids after those its restored
//! state (or nothing) accounts for: `InitProducerId` on each aborts what is open under it,
//! until an id that was never used (epoch 0), as Flink's `TransactionAborter` does; after a
//! change of parallelism, also for the old subtasks whose state it took over.

use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientConfig, Message};
use serde::Serialize;
use weir_actors::prelude::*;

/// What the sink promises about each record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryGuarantee {
    /// Nothing: records may be lost on a failure (Flink's `NONE`).
    None,
    /// Each record at least once: barriers wait for the brokers' acknowledgements.
    AtLeastOnce,
    /// Each record once for `read_committed` consumers: a transaction per checkpoint,
    /// committed when the checkpoint completes (see the [module docs](self)).
    ExactlyOnce,
}

/// Turns an element into a record's key (optional) and value.
pub trait KafkaSerializer<T>: Clone + Send + Sync + 'static {
    /// The key and value of `value`'s record.
    fn serialize(&mut self, value: &T) -> std::result::Result<(Option<Vec<u8>>, Vec<u8>), String>;
}

/// The value as its `Display` text, no key.
#[derive(Debug, Clone, Copy, Default)]
pub struct DisplayText;

impl<T: std::fmt::Display> KafkaSerializer<T> for DisplayText {
    fn serialize(&mut self, value: &T) -> std::result::Result<(Option<Vec<u8>>, Vec<u8>), String> {
        Ok((None, value.to_string().into_bytes()))
    }
}

/// The value as JSON, no key.
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonValue;

impl<T: Serialize> KafkaSerializer<T> for JsonValue {
    fn serialize(&mut self, value: &T) -> std::result::Result<(Option<Vec<u8>>, Vec<u8>), String> {
        serde_json::to_vec(value).map(|v| (None, v)).map_err(|e| format!("cannot encode as JSON: {e}"))
    }
}

/// Counts what the brokers refused, with the first reason; and learns a transactional
/// producer's id and epoch from librdkafka's log.
#[derive(Default)]
pub(crate) struct Deliveries {
    failed: Mutex<(u64, Option<String>)>,
    producer_id: Mutex<Option<(i64, i16)>>,
    acquired: Condvar,
}

impl Deliveries {
    /// Records refused since the last call, and the first reason.
    pub(crate) fn take_failures(&self) -> (u64, Option<String>) {
        std::mem::take(&mut *self.failed.lock().expect("deliveries lock"))
    }

    /// The producer id and epoch librdkafka acquired (with `debug=eos`), waiting up to
    /// `timeout` for its log line: librdkafka queues log lines for the producer's polling
    /// thread, which may not have handled it when `init_transactions` returns.
    fn producer_id(&self, timeout: Duration) -> Option<(i64, i16)> {
        let deadline = Instant::now() + timeout;
        let mut pid = self.producer_id.lock().expect("producer id lock");
        while pid.is_none() {
            let left = deadline.checked_duration_since(Instant::now())?;
            pid = self.acquired.wait_timeout(pid, left).expect("producer id lock").0;
        }
        *pid
    }
}

/// The producer id and epoch of librdkafka's `GETPID` debug line
/// `[thrd:main]: Acquired PID{Id:<id>,Epoch:<epoch>}[ (previous …)]`.
fn acquired_pid(line: &str) -> Option<(i64, i16)> {
    const ACQUIRED: &str = "Acquired PID{Id:";
    let rest = &line[line.find(ACQUIRED)? + ACQUIRED.len()..];
    let (id, rest) = rest.split_once(",Epoch:")?;
    let (epoch, _) = rest.split_once('}')?;
    Some((id.parse().ok()?, epoch.parse().ok()?))
}

impl ClientContext for Deliveries {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, line: &str) {
        if fac == "GETPID"
            && let Some(pid) = acquired_pid(line)
        {
            *self.producer_id.lock().expect("producer id lock") = Some(pid);
            self.acquired.notify_all();
        }
        match level {
            RDKafkaLogLevel::Emerg | RDKafkaLogLevel::Alert | RDKafkaLogLevel::Critical | RDKafkaLogLevel::Error => {
                tracing::error!(target: "librdkafka", "{fac} {line}")
            }
            RDKafkaLogLevel::Warning => tracing::warn!(target: "librdkafka", "{fac} {line}"),
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => tracing::info!(target: "librdkafka", "{fac} {line}"),
            RDKafkaLogLevel::Debug => tracing::trace!(target: "librdkafka", "{fac} {line}"),
        }
    }
}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((e, message)) = result {
            let mut failed = self.failed.lock().expect("deliveries lock");
            failed.0 += 1;
            failed.1.get_or_insert_with(|| format!("{e} (partition {})", message.partition()));
        }
    }
}

/// Sends `record`, waiting while the producer's queue is full.
pub(crate) fn send<K: rdkafka::message::ToBytes + ?Sized, P: rdkafka::message::ToBytes + ?Sized>(
    producer: &ThreadedProducer<Deliveries>,
    mut record: BaseRecord<'_, K, P>,
) -> std::result::Result<(), KafkaError> {
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                record = back;
                producer.poll(Duration::from_millis(10));
            }
            Err((e, _)) => return Err(e),
        }
    }
}

/// A transaction an exactly-once sink pre-committed: what a checkpoint keeps to commit it from
/// any process.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Transaction {
    /// The checkpoint whose barrier pre-committed it.
    checkpoint: u64,
    transactional_id: String,
    producer_id: i64,
    epoch: i16,
}

/// What a checkpoint keeps of an exactly-once sink subtask.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct SinkState {
    prefix: String,
    subtask: u32,
    /// The number of its next transaction (the first id it had not begun one under): the ids
    /// from there on may have open transactions of a failed attempt (lingering).
    next_transaction: u64,
    /// Pre-committed, not known to be committed.
    pending: Vec<Transaction>,
}

/// A transaction being written.
struct Open {
    producer: ThreadedProducer<Deliveries>,
    transactional_id: String,
    /// Its producer id and epoch.
    producer_id: (i64, i16),
}

/// A pre-committed transaction, with its producer while this execution still has it.
struct Precommitted {
    transaction: Transaction,
    producer: Option<ThreadedProducer<Deliveries>>,
}

/// The transactional ids one subtask may have left open: `<prefix>-<subtask>-<n>` from
/// `next` on.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Lingering {
    prefix: String,
    subtask: u32,
    next: u64,
}

/// What a sink's producers are made from (sent to the thread that makes the next one ahead).
#[derive(Clone)]
struct ProducerConfig {
    brokers: String,
    topic: String,
    properties: Vec<(String, String)>,
    timeout: Duration,
}

impl ProducerConfig {
    /// A producer; `transactional_id` makes it transactional.
    fn create(&self, transactional_id: Option<&str>) -> Result<ThreadedProducer<Deliveries>> {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.brokers).set("enable.idempotence", "true").set("linger.ms", "5");
        if let Some(id) = transactional_id {
            config.set("transactional.id", id).set("transaction.timeout.ms", TRANSACTION_TIMEOUT_MS.to_string());
        }
        for (key, value) in &self.properties {
            config.set(key, value);
        }
        if transactional_id.is_some() {
            // `eos` debug lines carry the producer id and epoch (see the module docs), besides
            // what the user asked to debug.
            let debug = debug_contexts(config.get("debug"));
            config.set("debug", debug).set_log_level(RDKafkaLogLevel::Debug);
        }
        config
            .create_with_context(Deliveries::default())
            .map_err(|e| WeirError::runtime(format!("cannot create a Kafka producer for {}: {e}", self.brokers)))
    }

    /// A transactional producer with id `id`, initialized (what was open under the id is
    /// aborted) and its producer id and epoch known.
    fn transactional(&self, id: String) -> Result<Open> {
        let producer = self.create(Some(&id))?;
        producer.init_transactions(self.timeout).map_err(txn_error(&self.topic, "initialize", &id))?;
        let Some(producer_id) = producer.context().producer_id(self.timeout) else {
            return Err(WeirError::runtime(format!(
                "Kafka transaction '{id}': librdkafka did not log its producer id (the `eos` debug line)"
            )));
        };
        Ok(Open { producer, transactional_id: id, producer_id })
    }
}

/// librdkafka's `debug` contexts for a transactional producer: those `asked` and `eos`.
fn debug_contexts(asked: Option<&str>) -> String {
    match asked {
        Some(asked) if !asked.is_empty() => format!("{asked},eos"),
        _ => "eos".to_owned(),
    }
}

/// An error of transaction `id` writing to `topic`.
fn txn_error(topic: &str, what: &str, id: &str) -> impl Fn(KafkaError) -> WeirError {
    let what = format!("cannot {what} Kafka transaction '{id}' (topic '{topic}')");
    move |e| WeirError::runtime(format!("{what}: {e}"))
}

/// Writes a stream into a Kafka topic; see the [module docs](self).
pub struct KafkaSink<T, S> {
    brokers: String,
    topic: String,
    guarantee: DeliveryGuarantee,
    serializer: S,
    properties: Vec<(String, String)>,
    flush_timeout: Duration,
    /// The user's transactional id prefix.
    prefix: Option<String>,
    /// The producer of `None` and `AtLeastOnce`.
    producer: Option<ThreadedProducer<Deliveries>>,
    /// Exactly once: this subtask's state (open and pre-committed transactions).
    txn: Transactions,
    _records: std::marker::PhantomData<fn(T)>,
}

/// An exactly-once sink subtask's transactions.
#[derive(Default)]
struct Transactions {
    /// The prefix of its transactional ids (resolved at `open`).
    prefix: String,
    subtask: u32,
    parallelism: u32,
    checkpointing: bool,
    /// The number of the next transactional id (the producer made ahead has one).
    next: u64,
    open: Option<Open>,
    precommitted: Vec<Precommitted>,
    /// Ids to probe before the first transaction; `None` once done.
    lingering: Option<Vec<Lingering>>,
    /// The producer of the next transaction, being made ahead.
    ahead: Option<std::thread::JoinHandle<Result<Open>>>,
}

impl<T, S: Clone> Clone for KafkaSink<T, S> {
    fn clone(&self) -> Self {
        KafkaSink {
            brokers: self.brokers.clone(),
            topic: self.topic.clone(),
            guarantee: self.guarantee,
            serializer: self.serializer.clone(),
            properties: self.properties.clone(),
            flush_timeout: self.flush_timeout,
            prefix: self.prefix.clone(),
            producer: None,
            txn: Transactions::default(),
            _records: std::marker::PhantomData,
        }
    }
}

impl<T, S> std::fmt::Debug for KafkaSink<T, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaSink")
            .field("brokers", &self.brokers)
            .field("topic", &self.topic)
            .field("guarantee", &self.guarantee)
            .finish_non_exhaustive()
    }
}

/// The transaction timeout the sink asks for: Kafka brokers' default maximum
/// (`transaction.max.timeout.ms`), well above a checkpoint interval plus a restart.
const TRANSACTION_TIMEOUT_MS: i32 = 15 * 60 * 1000;

/// At most this many ids are probed per subtask for lingering transactions.
const MAX_PROBES: u64 = 10_000;

impl<T, S> KafkaSink<T, S> {
    /// Writes into `topic` at `brokers` with `serializer`, at least once.
    pub fn new(brokers: impl Into<String>, topic: impl Into<String>, serializer: S) -> Self {
        KafkaSink {
            brokers: brokers.into(),
            topic: topic.into(),
            guarantee: DeliveryGuarantee::AtLeastOnce,
            serializer,
            properties: Vec::new(),
            flush_timeout: Duration::from_secs(60),
            prefix: None,
            producer: None,
            txn: Transactions::default(),
            _records: std::marker::PhantomData,
        }
    }

    /// The delivery guarantee (default at least once).
    pub fn delivery_guarantee(mut self, guarantee: DeliveryGuarantee) -> Self {
        self.guarantee = guarantee;
        self
    }

    /// A librdkafka property for the producer (e.g. `linger.ms`).
    pub fn property(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.properties.push((key.into(), value.into()));
        self
    }

    /// The prefix of the exactly-once sink's transactional ids (default `weir-<job id>-<topic>`;
    /// see the [module docs](self)).
    pub fn transactional_id_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = Some(prefix.into());
        self
    }

    /// What its producers are made from.
    fn producer_config(&self) -> ProducerConfig {
        ProducerConfig {
            brokers: self.brokers.clone(),
            topic: self.topic.clone(),
            properties: self.properties.clone(),
            timeout: self.flush_timeout,
        }
    }

    /// Flushes `producer` and fails if a record was refused.
    fn flush(&self, producer: &ThreadedProducer<Deliveries>) -> Result<()> {
        producer.flush(self.flush_timeout).map_err(|e| {
            WeirError::runtime(format!("cannot flush the records to Kafka topic '{}': {e}", self.topic))
        })?;
        match producer.context().take_failures() {
            (0, _) => Ok(()),
            (n, reason) => Err(WeirError::runtime(format!(
                "{n} records were not written to Kafka topic '{}': {}",
                self.topic,
                reason.unwrap_or_default()
            ))),
        }
    }

    fn txn_error(&self, what: &str, id: &str) -> impl Fn(KafkaError) -> WeirError {
        txn_error(&self.topic, what, id)
    }

    /// Exactly once: aborts what earlier attempts left open (once), and begins a transaction
    /// with a producer of its own: the one made ahead in the background if there is one, and
    /// makes the next one ahead (a new transactional producer takes librdkafka about half a
    /// second to be ready, which would otherwise stall the subtask at every checkpoint).
    fn begin(&mut self) -> Result<()> {
        if let Some(lingering) = self.txn.lingering.take() {
            self.abort_lingering(&lingering)?;
        }
        let ready = match self.txn.ahead.take() {
            Some(ahead) => ahead.join().map_err(|_| WeirError::runtime("a Kafka producer's making panicked"))??,
            None => {
                let id = self.next_id();
                self.producer_config().transactional(id)?
            }
        };
        ready.producer.begin_transaction().map_err(self.txn_error("begin", &ready.transactional_id))?;
        self.txn.open = Some(ready);
        let (config, id) = (self.producer_config(), self.next_id());
        self.txn.ahead = Some(std::thread::spawn(move || config.transactional(id)));
        Ok(())
    }

    /// The transactional id of the subtask's next producer.
    fn next_id(&mut self) -> String {
        self.txn.next += 1;
        format!("{}-{}-{}", self.txn.prefix, self.txn.subtask, self.txn.next - 1)
    }

    /// Probes each subtask's ids from where its state left off until one never used,
    /// aborting what is open under them (see the module docs).
    fn abort_lingering(&self, lingering: &[Lingering]) -> Result<()> {
        let mut cluster = crate::wire::Cluster::new(&self.brokers, self.flush_timeout);
        for l in lingering {
            let mut aborted = 0;
            for n in l.next..l.next + MAX_PROBES {
                let id = format!("{}-{}-{n}", l.prefix, l.subtask);
                let (_, epoch) = cluster.init_producer(&id, TRANSACTION_TIMEOUT_MS).map_err(|e| {
                    WeirError::runtime(format!("cannot abort lingering Kafka transactions of '{}': {e}", self.topic))
                })?;
                if epoch == 0 {
                    break;
                }
                aborted += 1;
            }
            if aborted > 0 {
                tracing::info!(
                    topic = %self.topic, prefix = %l.prefix, subtask = l.subtask, from = l.next, ids = aborted,
                    "fenced transactional ids an earlier attempt used (open transactions under them aborted)"
                );
            }
        }
        Ok(())
    }

    /// Commits, from this process, a transaction another producer pre-committed.
    fn commit_recovered(&self, cluster: &mut crate::wire::Cluster, t: &Transaction) -> Result<()> {
        let code = cluster.end_transaction(&t.transactional_id, t.producer_id, t.epoch, true).map_err(|e| {
            WeirError::runtime(format!(
                "cannot commit Kafka transaction '{}' of checkpoint {}: {e}",
                t.transactional_id, t.checkpoint
            ))
        })?;
        if code == 0 {
            return Ok(());
        }
        if !crate::wire::transaction_ended(code) {
            // Anything else (a coordinator unavailable all along): the restore fails and is
            // tried again, the transaction still pending.
            return Err(WeirError::runtime(format!(
                "cannot commit Kafka transaction '{}' of checkpoint {}: {}",
                t.transactional_id,
                t.checkpoint,
                crate::wire::error_name(code)
            )));
        }
        // Committed before the failure, or timed out: what Flink's committer also accepts.
        tracing::warn!(
            topic = %self.topic, transactional_id = %t.transactional_id, checkpoint = t.checkpoint,
            error = %crate::wire::error_name(code),
            "the broker refused to commit a restored transaction: it ended already (committed before the failure, \
             or aborted after transaction.timeout.ms)"
        );
        Ok(())
    }

    /// Exactly once, at a barrier: pre-commits the open transaction and returns the state.
    fn precommit(&mut self, checkpoint: u64) -> Result<Vec<u8>> {
        if let Some(open) = self.txn.open.take() {
            self.flush(&open.producer)?;
            let (producer_id, epoch) = open.producer_id;
            let transaction = Transaction { checkpoint, transactional_id: open.transactional_id, producer_id, epoch };
            self.txn.precommitted.push(Precommitted { transaction, producer: Some(open.producer) });
        }
        // The producer made ahead has an id but began nothing yet: a restore probes from it.
        let begun = self.txn.next - u64::from(self.txn.ahead.is_some());
        let state = SinkState {
            prefix: self.txn.prefix.clone(),
            subtask: self.txn.subtask,
            next_transaction: begun,
            pending: self.txn.precommitted.iter().map(|p| p.transaction.clone()).collect(),
        };
        postcard::to_allocvec(&state)
            .map_err(|e| WeirError::runtime(format!("cannot encode the Kafka sink's state: {e}")))
    }

    /// Commits the pre-committed transactions of checkpoints up to `checkpoint`.
    fn commit_up_to(&mut self, checkpoint: u64) -> Result<()> {
        while let Some(i) = self.txn.precommitted.iter().position(|p| p.transaction.checkpoint <= checkpoint) {
            let p = &self.txn.precommitted[i];
            if let Some(producer) = &p.producer {
                let id = &p.transaction.transactional_id;
                producer.commit_transaction(self.flush_timeout).map_err(self.txn_error("commit", id))?;
            }
            self.txn.precommitted.remove(i);
        }
        Ok(())
    }
}

impl<T: Data, S: KafkaSerializer<T>> Sink for KafkaSink<T, S> {
    type In = T;

    fn validate(&self, _ctx: &ValidateContext) -> Result<()> {
        if self.topic.is_empty() || self.brokers.trim().is_empty() {
            return Err(WeirError::Argument("a Kafka sink needs the brokers and a topic".into()));
        }
        if let Some((key, _)) = self.properties.iter().find(|(k, _)| k == "transactional.id") {
            return Err(WeirError::Argument(format!(
                "the Kafka sink sets '{key}' itself (one per transaction); set a prefix with transactional_id_prefix"
            )));
        }
        if self.prefix.as_ref().is_some_and(|p| p.is_empty()) {
            return Err(WeirError::Argument("a Kafka sink's transactional id prefix must not be empty".into()));
        }
        Ok(())
    }

    fn open(&mut self, ctx: &OpenContext<'_>) -> Result<()> {
        if self.guarantee != DeliveryGuarantee::ExactlyOnce {
            self.producer = Some(self.producer_config().create(None)?);
            return Ok(());
        }
        let info = ctx.subtask();
        let prefix = self.prefix.clone().unwrap_or_else(|| format!("weir-{}-{}", info.job_id, self.topic));
        let subtask = info.index as u32;
        self.txn = Transactions {
            lingering: Some(vec![Lingering { prefix: prefix.clone(), subtask, next: 0 }]),
            prefix,
            subtask,
            parallelism: info.parallelism as u32,
            checkpointing: ctx.checkpointing(),
            ..Transactions::default()
        };
        Ok(())
    }

    fn write(&mut self, value: T, timestamp: Option<Timestamp>) -> Result<()> {
        let (key, payload) = self
            .serializer
            .serialize(&value)
            .map_err(|e| WeirError::user(format!("Kafka sink to '{}': {e}", self.topic)))?;
        if self.guarantee == DeliveryGuarantee::ExactlyOnce && self.txn.open.is_none() {
            self.begin()?;
        }
        let producer = match &self.txn.open {
            Some(open) => &open.producer,
            None => self.producer.as_ref().expect("opened"),
        };
        let mut record = BaseRecord::<[u8], [u8]>::to(&self.topic).payload(&payload);
        if let Some(key) = &key {
            record = record.key(key);
        }
        // Kafka takes a timestamp of 0 for "now": only real event times go with the record.
        if let Some(ts) = timestamp.filter(|ts| *ts > 0) {
            record = record.timestamp(ts);
        }
        send(producer, record)
            .map_err(|e| WeirError::runtime(format!("cannot write to Kafka topic '{}': {e}", self.topic)))
    }

    fn finish(&mut self) -> Result<()> {
        if self.guarantee != DeliveryGuarantee::ExactlyOnce {
            return self.producer.as_ref().map_or(Ok(()), |p| self.flush(p));
        }
        if self.txn.checkpointing {
            // The job's final checkpoint pre-commits the last transaction; its completion
            // commits it.
            return Ok(());
        }
        // Without checkpoints, the end commits.
        self.precommit(u64::MAX)?;
        self.commit_up_to(u64::MAX)
    }

    fn snapshot_state(&mut self, checkpoint_id: u64) -> Result<Option<Vec<u8>>> {
        match self.guarantee {
            DeliveryGuarantee::None => Ok(None),
            DeliveryGuarantee::AtLeastOnce => self.producer.as_ref().map_or(Ok(()), |p| self.flush(p)).map(|()| None),
            DeliveryGuarantee::ExactlyOnce => self.precommit(checkpoint_id).map(Some),
        }
    }

    fn restore_state(&mut self, states: Vec<Vec<u8>>) -> Result<()> {
        if self.guarantee != DeliveryGuarantee::ExactlyOnce {
            return Ok(());
        }
        let states = states
            .iter()
            .map(|bytes| postcard::from_bytes::<SinkState>(bytes))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| WeirError::runtime(format!("the Kafka sink's checkpointed state is corrupt: {e}")))?;
        let (index, parallelism) = (self.txn.subtask, self.txn.parallelism.max(1));
        // At the same parallelism a subtask gets its own state; at another, every subtask's:
        // it takes over those of the old subtasks congruent to it.
        let mine: Vec<&SinkState> = states.iter().filter(|s| s.subtask % parallelism == index).collect();
        let mut cluster = crate::wire::Cluster::new(&self.brokers, self.flush_timeout);
        let mut lingering = Vec::new();
        for state in &mine {
            for t in &state.pending {
                self.commit_recovered(&mut cluster, t)?;
            }
            lingering.push(Lingering {
                prefix: state.prefix.clone(),
                subtask: state.subtask,
                next: state.next_transaction,
            });
            if state.subtask == index {
                self.txn.next = self.txn.next.max(state.next_transaction);
            }
        }
        // Its own ids under its own prefix, from where its state left off (0 without one).
        let own = Lingering { prefix: self.txn.prefix.clone(), subtask: index, next: self.txn.next };
        if !lingering.contains(&own) {
            lingering.push(own);
        }
        self.txn.lingering = Some(lingering);
        Ok(())
    }

    fn notify_checkpoint_complete(&mut self, checkpoint_id: u64) -> Result<()> {
        if self.guarantee != DeliveryGuarantee::ExactlyOnce {
            return Ok(());
        }
        self.commit_up_to(checkpoint_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_producer_id_is_read_from_librdkafkas_getpid_line() {
        assert_eq!(acquired_pid("[thrd:main]: Acquired PID{Id:1000,Epoch:3}"), Some((1000, 3)));
        assert_eq!(acquired_pid("Acquired PID{Id:7,Epoch:0} (previous PID{Invalid})"), Some((7, 0)));
        assert_eq!(acquired_pid("[thrd:main]: TxnCoordinator/111: Acquiring ProducerId"), None);
        assert_eq!(acquired_pid("Acquired PID{Invalid}"), None);
    }

    #[test]
    fn a_transactional_id_property_is_refused_naming_the_prefix_instead() {
        let sink = KafkaSink::<String, DisplayText>::new("127.0.0.1:9092", "out", DisplayText)
            .delivery_guarantee(DeliveryGuarantee::ExactlyOnce)
            .property("transactional.id", "mine");
        let err = Sink::validate(&sink, &ValidateContext::new(false)).unwrap_err().to_string();
        assert!(err.contains("'transactional.id'") && err.contains("transactional_id_prefix"), "{err}");
    }

    #[test]
    fn the_users_debug_contexts_are_kept_beside_eos() {
        assert_eq!(debug_contexts(None), "eos");
        assert_eq!(debug_contexts(Some("")), "eos");
        assert_eq!(debug_contexts(Some("broker,topic")), "broker,topic,eos");
    }
}
