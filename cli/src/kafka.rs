//! `weir kafka …`: tools around the Kafka connector.

use anyhow::Context as _;
use clap::{Args, Subcommand};
use weir_actors::prelude::GeneratorConfig;

#[derive(Debug, Subcommand)]
pub(crate) enum KafkaCommand {
    /// Fill a topic with the generator's clicks (created if absent): key the user, value the
    /// click as JSON, timestamp its event time, partition user % partitions. With the same
    /// generator arguments a job reading the topic sees the clicks the generator would make.
    ProduceClicks(ProduceArgs),
    /// Print the values a `read_committed` consumer gets from a topic, a line each, by
    /// partition and offset, judged from the transaction markers in the log (tansu 0.6 returns
    /// aborted records to `read_committed` consumers; this does not); a summary goes to
    /// standard error.
    ReadCommitted(ReadArgs),
}

#[derive(Debug, Args)]
pub(crate) struct ReadArgs {
    /// The brokers (`host:port,…`).
    #[arg(long)]
    brokers: String,
    /// The topic.
    #[arg(long)]
    topic: String,
    /// How long a request may take (ms).
    #[arg(long, default_value_t = 30_000)]
    timeout_ms: u64,
}

#[derive(Debug, Args)]
pub(crate) struct ProduceArgs {
    /// The brokers (`host:port,…`).
    #[arg(long)]
    brokers: String,
    /// The topic.
    #[arg(long)]
    topic: String,
    /// How many clicks (events 0..N of the generator).
    #[arg(long)]
    events: u64,
    /// Distinct users.
    #[arg(long, default_value_t = 100)]
    keys: u32,
    /// Seed of the generator.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Event time of the first click (ms since the epoch; default 2024-01-01T00:00:00Z; Kafka
    /// takes a timestamp of 0 for "now", so it must be positive).
    #[arg(long, default_value_t = 1_704_067_200_000)]
    base_time_ms: i64,
    /// Partitions of the topic when it is created (an existing topic keeps its own).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(i32).range(1..=100_000))]
    partitions: i32,
    /// Records per batch at most (1 for tansu 0.6, whose end offsets are right only then).
    #[arg(long, default_value_t = 1000)]
    batch_records: usize,
}

pub(crate) fn command(command: KafkaCommand) -> anyhow::Result<()> {
    match command {
        KafkaCommand::ProduceClicks(args) => {
            let config = GeneratorConfig {
                events: Some(args.events),
                keys: args.keys,
                seed: args.seed,
                base_time: args.base_time_ms,
                ..GeneratorConfig::default()
            };
            anyhow::ensure!(args.keys > 0, "--keys must be at least 1");
            let written = crate::runtime()?
                .block_on(weir_kafka::produce_clicks(
                    &args.brokers,
                    &args.topic,
                    &config,
                    args.partitions,
                    args.batch_records,
                ))
                .with_context(|| format!("cannot fill topic '{}' at {}", args.topic, args.brokers))?;
            eprintln!("{written} clicks written to '{}' at {}", args.topic, args.brokers);
            Ok(())
        }
        KafkaCommand::ReadCommitted(args) => {
            use std::io::Write as _;
            let timeout = std::time::Duration::from_millis(args.timeout_ms);
            let log = weir_kafka::read_committed(&args.brokers, &args.topic, timeout)
                .with_context(|| format!("cannot read topic '{}' at {}", args.topic, args.brokers))?;
            let mut out = std::io::stdout().lock();
            for record in &log.committed {
                out.write_all(record.value.as_deref().unwrap_or_default())?;
                out.write_all(b"\n")?;
            }
            out.flush()?;
            eprintln!(
                "{} committed records in '{}' ({} in aborted transactions, {} in open ones)",
                log.committed.len(),
                args.topic,
                log.aborted,
                log.open
            );
            Ok(())
        }
    }
}
