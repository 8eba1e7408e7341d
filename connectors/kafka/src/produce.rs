//! `weir kafka produce-clicks`: fills a topic with the generator's clicks, so that a job reading
//! it sees the same events as one reading the generator with the same arguments.
//!
//! Each click is a record keyed by its user (decimal text), its value the click as JSON
//! (`{"user":…,"time":…,"index":…}`, what [`crate::Json`]`<Click>` reads), its timestamp the
//! click's event time, in partition `user % partitions`: a user's clicks stay in one partition,
//! in order.
//!
//! [`produce`] writes records of your own, each into the partition and with the timestamp it
//! names (a test's uneven partitions, say).

use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};
use weir_actors::prelude::*;

use crate::sink::{Deliveries, send};
use crate::source::BROKER_TIMEOUT;

fn kafka(what: impl std::fmt::Display) -> impl FnOnce(KafkaError) -> WeirError {
    move |e| WeirError::runtime(format!("{what}: {e}"))
}

/// Creates `topic` with `partitions` at `brokers` unless it exists; answers its partition count.
pub async fn ensure_topic(brokers: &str, topic: &str, partitions: i32) -> Result<i32> {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", brokers);
    let admin: AdminClient<DefaultClientContext> =
        config.create().map_err(kafka(format!("cannot reach the Kafka cluster at {brokers}")))?;
    let existing = |admin: &AdminClient<DefaultClientContext>| -> Result<Option<i32>> {
        let metadata = admin
            .inner()
            .fetch_metadata(Some(topic), BROKER_TIMEOUT)
            .map_err(kafka(format!("cannot read the topics of the Kafka cluster at {brokers}")))?;
        Ok(metadata
            .topics()
            .iter()
            .find(|t| t.name() == topic && t.error().is_none() && !t.partitions().is_empty())
            .map(|t| t.partitions().len() as i32))
    };
    if let Some(n) = existing(&admin)? {
        return Ok(n);
    }
    let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    let options = AdminOptions::new().operation_timeout(Some(BROKER_TIMEOUT));
    let results =
        admin.create_topics([&new], &options).await.map_err(kafka(format!("cannot create topic '{topic}'")))?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((_, code)) => return Err(WeirError::runtime(format!("cannot create topic '{topic}': {code}"))),
        }
    }
    Ok(existing(&admin)?.unwrap_or(partitions))
}

/// A record for [`produce`]: its partition, key, value and timestamp.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerRecord {
    /// The partition it goes to.
    pub partition: i32,
    /// Its key, if any.
    pub key: Option<Vec<u8>>,
    /// Its value.
    pub value: Vec<u8>,
    /// Its timestamp, ms since the epoch (above 0: Kafka takes 0 for the current time).
    pub timestamp: i64,
}

/// Produces events `0..config.events` of the generator into `topic` (created with `partitions`
/// if absent; an existing topic keeps its own), at most `batch_records` records per batch, and
/// waits until the broker has them all. Answers how many records it wrote.
///
/// `batch_records` 1 is for tansu 0.6, whose ListOffsets answers one past the latest batch's
/// base offset as a partition's end (not one past its last record): with one record per batch
/// that is the true end, which a bounded [`crate::KafkaSource`] stops at.
pub async fn produce_clicks(
    brokers: &str,
    topic: &str,
    config: &GeneratorConfig,
    partitions: i32,
    batch_records: usize,
) -> Result<u64> {
    if config.base_time <= 0 {
        // librdkafka sends a timestamp of 0 as "now": event 0 would lose its time.
        return Err(WeirError::Argument(format!(
            "the clicks' event time must start after the epoch (--base-time-ms {} is not): Kafka takes a \
             timestamp of 0 for the current time",
            config.base_time
        )));
    }
    let Some(events) = config.events else {
        return Err(WeirError::Argument("--events is required: the topic is filled once".into()));
    };
    let records = move |partitions: i32| {
        (0..events).map(move |index| {
            let click = config.event(index);
            let value =
                serde_json::to_vec(&click).map_err(|e| WeirError::runtime(format!("cannot encode a click: {e}")))?;
            Ok(ProducerRecord {
                partition: (click.user % partitions as u32) as i32,
                key: Some(click.user.to_string().into_bytes()),
                value,
                timestamp: click.time,
            })
        })
    };
    write(brokers, topic, partitions, batch_records, records).await
}

/// Produces `records` into `topic` (created with `partitions` if absent; an existing topic
/// keeps its own), at most `batch_records` records per batch (1 for tansu: see
/// [`produce_clicks`]), and waits until the broker has them all. Answers how many it wrote.
pub async fn produce(
    brokers: &str,
    topic: &str,
    partitions: i32,
    batch_records: usize,
    records: impl IntoIterator<Item = ProducerRecord>,
) -> Result<u64> {
    write(brokers, topic, partitions, batch_records, |_| records.into_iter().map(Ok)).await
}

/// Writes the records `records` makes (given the topic's partition count) into `topic`
/// (created with `partitions` if absent), and waits for the broker to have them.
async fn write<I: Iterator<Item = Result<ProducerRecord>>>(
    brokers: &str,
    topic: &str,
    partitions: i32,
    batch_records: usize,
    records: impl FnOnce(i32) -> I,
) -> Result<u64> {
    if batch_records == 0 {
        return Err(WeirError::Argument("--batch-records must be at least 1".into()));
    }
    let partitions = ensure_topic(brokers, topic, partitions).await?;
    let producer: ThreadedProducer<Deliveries> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .set("batch.num.messages", batch_records.to_string())
        .create_with_context(Deliveries::default())
        .map_err(kafka(format!("cannot create a Kafka producer for {brokers}")))?;
    let mut written = 0;
    for record in records(partitions) {
        let record = record?;
        if !(0..partitions).contains(&record.partition) {
            return Err(WeirError::Argument(format!(
                "partition {} of '{topic}' does not exist (it has {partitions})",
                record.partition
            )));
        }
        if record.timestamp <= 0 {
            return Err(WeirError::Argument(format!(
                "a record's timestamp must be after the epoch ({} is not): Kafka takes a timestamp of 0 for the \
                 current time",
                record.timestamp
            )));
        }
        let mut base = BaseRecord::to(topic).payload(&record.value).partition(record.partition);
        if let Some(key) = &record.key {
            base = base.key(key);
        }
        send(&producer, base.timestamp(record.timestamp)).map_err(kafka(format!("cannot produce to '{topic}'")))?;
        written += 1;
    }
    producer.flush(Duration::from_secs(120)).map_err(kafka(format!("cannot flush the records to '{topic}'")))?;
    let (failed, reason) = producer.context().take_failures();
    if failed > 0 {
        return Err(WeirError::runtime(format!(
            "{failed} of {written} records were not written to '{topic}': {}",
            reason.unwrap_or_default()
        )));
    }
    Ok(written)
}
