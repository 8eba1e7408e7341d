//! How a Kafka record becomes a stream element: its value's bytes, its value as UTF-8 text, or
//! its value as JSON, or anything a [`KafkaDeserializer`] makes of the whole record.

use std::marker::PhantomData;

use serde::de::DeserializeOwned;
use weir_actors::prelude::*;

/// One record as read from a partition.
#[derive(Debug, Clone, Copy)]
pub struct KafkaRecord<'a> {
    /// Its topic.
    pub topic: &'a str,
    /// Its partition.
    pub partition: i32,
    /// Its offset in the partition.
    pub offset: i64,
    /// Its timestamp (create or log-append time, epoch ms), when it has one.
    pub timestamp: Option<i64>,
    /// Its key.
    pub key: Option<&'a [u8]>,
    /// Its value (`None`: a tombstone).
    pub value: Option<&'a [u8]>,
}

/// Turns records into elements. An error fails the job, naming the record's topic,
/// partition and offset (Flink's default for a record that does not deserialize).
pub trait KafkaDeserializer: Clone + Send + Sync + 'static {
    /// The element type.
    type Out: Data;
    /// The element of `record`.
    fn deserialize(&mut self, record: &KafkaRecord<'_>) -> std::result::Result<Self::Out, String>;
}

/// The value's bytes (empty for a tombstone).
#[derive(Debug, Clone, Copy, Default)]
pub struct Bytes;

impl KafkaDeserializer for Bytes {
    type Out = Vec<u8>;
    fn deserialize(&mut self, record: &KafkaRecord<'_>) -> std::result::Result<Vec<u8>, String> {
        Ok(record.value.unwrap_or_default().to_vec())
    }
}

/// The value as UTF-8 text (one line, as a line of a text file).
#[derive(Debug, Clone, Copy, Default)]
pub struct Utf8;

impl KafkaDeserializer for Utf8 {
    type Out = String;
    fn deserialize(&mut self, record: &KafkaRecord<'_>) -> std::result::Result<String, String> {
        let bytes = record.value.unwrap_or_default();
        std::str::from_utf8(bytes).map(str::to_owned).map_err(|e| format!("the value is not UTF-8 text: {e}"))
    }
}

/// The value as JSON, deserialized with serde.
#[derive(Debug)]
pub struct Json<T>(PhantomData<fn() -> T>);

impl<T> Json<T> {
    /// A JSON deserializer of `T`.
    pub fn new() -> Self {
        Json(PhantomData)
    }
}

impl<T> Default for Json<T> {
    fn default() -> Self {
        Json::new()
    }
}

impl<T> Clone for Json<T> {
    fn clone(&self) -> Self {
        Json::new()
    }
}

impl<T: Data + DeserializeOwned> KafkaDeserializer for Json<T> {
    type Out = T;
    fn deserialize(&mut self, record: &KafkaRecord<'_>) -> std::result::Result<T, String> {
        serde_json::from_slice(record.value.unwrap_or_default())
            .map_err(|e| format!("the value is not the JSON expected: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(value: &[u8]) -> KafkaRecord<'_> {
        KafkaRecord { topic: "t", partition: 0, offset: 7, timestamp: None, key: None, value: Some(value) }
    }

    #[test]
    fn values_become_bytes_text_or_json_and_bad_ones_say_why() {
        assert_eq!(Bytes.deserialize(&record(b"\x00\x01")), Ok(vec![0, 1]));
        assert_eq!(Utf8.deserialize(&record("héllo".as_bytes())), Ok("héllo".to_owned()));
        assert!(Utf8.deserialize(&record(b"\xff")).unwrap_err().contains("not UTF-8"));
        let mut json = Json::<(u32, String)>::new();
        assert_eq!(json.deserialize(&record(br#"[3, "x"]"#)), Ok((3, "x".to_owned())));
        assert!(json.deserialize(&record(b"{")).unwrap_err().contains("not the JSON expected"));
    }
}
