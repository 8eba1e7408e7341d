//! Kafka for Weir jobs: [`KafkaSource`] reads topics with partitions as splits and offsets in
//! its state, restored at any parallelism; [`KafkaSink`] writes them, at least or exactly once (Kafka
//! transactions committed when checkpoints complete).
//!
//! Built on `rdkafka` (librdkafka 2.12, bundled). Tested against tansu, a Kafka-protocol broker
//! (see the README's Kafka section and `scripts/setup.sh --tests`).

pub mod deserializer;
pub mod produce;
pub mod sink;
pub mod source;
pub mod wire;

pub use deserializer::{Bytes, Json, KafkaDeserializer, KafkaRecord, Utf8};
pub use produce::{ProducerRecord, ensure_topic, produce, produce_clicks};
pub use sink::{DeliveryGuarantee, DisplayText, JsonValue, KafkaSerializer, KafkaSink};
pub use source::{KafkaSource, StartingOffsets, owner};
pub use wire::{CommittedRecord, TopicLog, read_committed};
