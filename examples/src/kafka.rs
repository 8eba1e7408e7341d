//! The Kafka example jobs: `kafka-word-count` and `kafka-window-agg`, read from and written to
//! Kafka topics, exactly once (see `weir_kafka`).

use std::time::Duration;

use weir_actors::prelude::*;
use weir_kafka::{DeliveryGuarantee, Json, KafkaSerializer, KafkaSink, KafkaSource, Utf8};

/// A `(key, text)` record: the key as the Kafka record's key, the text as its value.
#[derive(Debug, Clone, Copy, Default)]
pub struct KeyedText;

impl KafkaSerializer<(String, String)> for KeyedText {
    fn serialize(&mut self, (key, text): &(String, String)) -> std::result::Result<(Option<Vec<u8>>, Vec<u8>), String> {
        Ok((Some(key.clone().into_bytes()), text.clone().into_bytes()))
    }
}

/// What a Kafka example job reads and writes: `--brokers B --input-topic T --output-topic U
/// [--bounded true]`; the sink writes exactly once.
struct Topics {
    brokers: String,
    input: String,
    bounded: bool,
    sink: KafkaSink<(String, String), KeyedText>,
}

impl Topics {
    fn from_args(args: &JobArgs) -> Result<Topics> {
        let brokers = args.get("brokers")?.to_owned();
        let output = args.get("output-topic")?.to_owned();
        let sink =
            KafkaSink::new(brokers.clone(), output, KeyedText).delivery_guarantee(DeliveryGuarantee::ExactlyOnce);
        Ok(Topics {
            input: args.get("input-topic")?.to_owned(),
            bounded: args.parse_or("bounded", false)?,
            brokers,
            sink,
        })
    }
}

/// `kafka-word-count`: counts the words (split on Unicode whitespace) of the input topic's
/// UTF-8 values. Every word read updates its count: a record keyed by the word with the value
/// `word<TAB>count`, so the latest record of a word (a compacted topic keeps only that) is its
/// count so far, as Flink's streaming word count emits them. With `--bounded true` the job
/// reads up to the offsets current at its start and finishes.
pub fn kafka_word_count(env: &mut StreamEnv, args: &JobArgs) -> Result<()> {
    let Topics { brokers, input, bounded, sink } = Topics::from_args(args)?;
    env.source("kafka", KafkaSource::new(brokers, &[&input], Utf8).bounded(bounded))
        .flat_map("split", |line: String| line.split_whitespace().map(|w| (w.to_owned(), 1u64)).collect::<Vec<_>>())
        .key_by(|w: &(String, u64)| w.0.clone())
        .sum("count", |w: &mut (String, u64)| &mut w.1)
        .map("format", |(word, count): (String, u64)| {
            let line = format!("{word}\t{count}");
            (word, line)
        })
        .sink("kafka-out", sink);
    Ok(())
}

/// `kafka-window-agg`: clicks (JSON, as `weir kafka produce-clicks` writes them) counted per
/// user in tumbling event-time windows of `--window-ms` (default 1000). Event time is the
/// Kafka record timestamp, with watermarks per partition bounded by `--out-of-order-ms`
/// (default 0: each partition in time order, as produce-clicks writes it). Each window's count
/// is one record keyed by the user, `user<TAB>window_start_ms<TAB>count`, written exactly once:
/// over the whole topic the counts sum to the number of clicks.
pub fn kafka_window_agg(env: &mut StreamEnv, args: &JobArgs) -> Result<()> {
    let Topics { brokers, input, bounded, sink } = Topics::from_args(args)?;
    let window = crate::positive_ms(args, "window-ms", 1000)?;
    let disorder: u64 = args.parse_or("out-of-order-ms", 0)?;
    let strategy = WatermarkStrategy::bounded_out_of_orderness(Duration::from_millis(disorder));
    env.source(
        "kafka",
        KafkaSource::new(brokers, &[&input], Json::<Click>::new()).bounded(bounded).watermarks(strategy),
    )
    .key_by(|c: &Click| c.user)
    .window(Tumbling::event_time(window))
    .aggregate("count", Count)
    .map("format", |w: Windowed<u32, u64>| (w.key.to_string(), format!("{}\t{}\t{}", w.key, w.window.start, w.value)))
    .sink("kafka-out", sink);
    Ok(())
}
