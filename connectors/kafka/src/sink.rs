//! [`KafkaSink`]: records written to a Kafka topic, with Flink's `NONE` or `AT_LEAST_ONCE`
//! delivery guarantee.
//!
//! At least once: every checkpoint barrier flushes the producer and waits until the brokers
//! acknowledged everything sent before it (a refused record fails the checkpoint), so a job
//! restored from that checkpoint has lost nothing; records after it may be written again.
//! None: nothing is awaited at barriers. (Exactly once, with a transaction per checkpoint, is
//! not offered yet.)

use std::sync::Mutex;
use std::time::Duration;

use rdkafka::client::ClientContext;
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

/// Counts what the brokers refused, with the first reason.
#[derive(Default)]
pub(crate) struct Deliveries {
    failed: Mutex<(u64, Option<String>)>,
}

impl Deliveries {
    /// Records refused since the last call, and the first reason.
    pub(crate) fn take_failures(&self) -> (u64, Option<String>) {
        std::mem::take(&mut *self.failed.lock().expect("deliveries lock"))
    }
}

impl ClientContext for Deliveries {}

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

/// Writes a stream into a Kafka topic; see the [module docs](self).
pub struct KafkaSink<T, S> {
    brokers: String,
    topic: String,
    guarantee: DeliveryGuarantee,
    serializer: S,
    properties: Vec<(String, String)>,
    flush_timeout: Duration,
    producer: Option<ThreadedProducer<Deliveries>>,
    _records: std::marker::PhantomData<fn(T)>,
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
            producer: None,
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
            producer: None,
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

    fn flush(&self) -> Result<()> {
        let Some(producer) = &self.producer else { return Ok(()) };
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
}

impl<T: Data, S: KafkaSerializer<T>> Sink for KafkaSink<T, S> {
    type In = T;

    fn validate(&self, _ctx: &ValidateContext) -> Result<()> {
        if self.topic.is_empty() || self.brokers.trim().is_empty() {
            return Err(WeirError::Argument("a Kafka sink needs the brokers and a topic".into()));
        }
        Ok(())
    }

    fn open(&mut self, _ctx: &OpenContext<'_>) -> Result<()> {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.brokers).set("enable.idempotence", "true").set("linger.ms", "5");
        for (key, value) in &self.properties {
            config.set(key, value);
        }
        let producer = config
            .create_with_context(Deliveries::default())
            .map_err(|e| WeirError::runtime(format!("cannot create a Kafka producer for {}: {e}", self.brokers)))?;
        self.producer = Some(producer);
        Ok(())
    }

    fn write(&mut self, value: T, timestamp: Option<Timestamp>) -> Result<()> {
        let (key, payload) = self
            .serializer
            .serialize(&value)
            .map_err(|e| WeirError::user(format!("Kafka sink to '{}': {e}", self.topic)))?;
        let producer = self.producer.as_ref().expect("opened");
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
        self.flush()
    }

    fn snapshot_state(&mut self, _checkpoint_id: u64) -> Result<Option<Vec<u8>>> {
        if self.guarantee == DeliveryGuarantee::AtLeastOnce {
            self.flush()?;
        }
        Ok(None)
    }
}
