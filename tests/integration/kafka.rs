//! The Kafka connector against a real Kafka-protocol broker: tansu, started on a free
//! 127.0.0.1 port for each test and stopped by its pid (`scripts/setup.sh --tests` installs it).

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use weir_actors::prelude::*;
use weir_actors::{JobStatus, JobSubmission, MiniCluster, MiniClusterConfig};
use weir_kafka::{Json, KafkaSource, StartingOffsets};

use crate::support::{S3, job_result, wait_for_port};

/// The clicks' first event time: `weir kafka produce-clicks`' default (Kafka takes 0 for "now").
pub(crate) const BASE_TIME: i64 = 1_704_067_200_000;

/// A tansu broker with its data in memory, killed when dropped.
pub(crate) struct Broker {
    child: Child,
    pub(crate) addr: String,
}

impl Broker {
    pub(crate) fn start() -> Broker {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        Broker::start_on(port)
    }

    /// A broker on `port` of 127.0.0.1.
    pub(crate) fn start_on(port: u16) -> Broker {
        Broker::spawn(port, "memory://tansu/", &[])
    }

    /// A broker on `port` keeping its topics in `s3` (they outlive the broker).
    fn start_on_s3(port: u16, s3: &S3) -> Broker {
        let env = s3.env();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        Broker::spawn(port, "s3://tansu/", &env)
    }

    fn spawn(port: u16, storage: &str, env: &[(&str, &str)]) -> Broker {
        let default = std::env::var("HOME").map(|h| format!("{h}/.cache/weir/tansu/bin/tansu")).unwrap_or_default();
        let tansu = std::env::var("WEIR_TANSU").unwrap_or(default);
        assert!(
            std::path::Path::new(&tansu).is_file(),
            "no tansu broker at {tansu}: run scripts/setup.sh --tests (or set WEIR_TANSU)"
        );
        let addr = format!("127.0.0.1:{port}");
        let url = format!("tcp://{addr}");
        let child = Command::new(&tansu)
            .args(["broker", "--listener-url", &url, "--advertised-listener-url", &url])
            .args(["--storage-engine", storage])
            .envs(env.iter().copied())
            .env("RUST_LOG", "error")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {tansu}: {e}"));
        let broker = Broker { child, addr };
        wait_for_port(&broker.addr, "tansu");
        broker
    }
}

impl Broker {
    /// Fills `topic` (with `partitions`) from the generator, one record per batch (see
    /// `produce_clicks` on tansu's end offsets), from a test outside any runtime.
    fn produce(&self, topic: &str, config: &GeneratorConfig, partitions: i32) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(weir_kafka::produce_clicks(&self.addr, topic, config, partitions, 1)).unwrap();
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A click as `weir kafka produce-clicks` writes it into a topic of 4 partitions: key the user,
/// value JSON, timestamp its event time, partition `user % 4`.
pub(crate) fn click_record(click: Click) -> weir_kafka::ProducerRecord {
    weir_kafka::ProducerRecord {
        partition: (click.user % 4) as i32,
        key: Some(click.user.to_string().into_bytes()),
        value: serde_json::to_vec(&click).unwrap(),
        timestamp: click.time,
    }
}

/// Part `part` (of `of` equal parts) of the generator's events `0..clicks`, as records.
pub(crate) fn click_part(config: &GeneratorConfig, clicks: u64, part: u64, of: u64) -> Vec<weir_kafka::ProducerRecord> {
    (part * clicks / of..(part + 1) * clicks / of).map(|i| click_record(config.event(i))).collect()
}

/// One click a day after the first on each of 4 partitions: every partition's watermark passes
/// the windows of the clicks before it (its own window never fires).
pub(crate) fn clicks_a_day_later(index: u64) -> Vec<weir_kafka::ProducerRecord> {
    (0..4).map(|user| click_record(Click { user, time: BASE_TIME + 86_400_000, index })).collect()
}

/// The lines `kafka-window-agg` (1 s windows) commits for events `0..clicks` of the generator
/// without failures: each (user, window) counted once, sorted.
pub(crate) fn window_counts(config: &GeneratorConfig, clicks: u64) -> Vec<String> {
    let mut counts: BTreeMap<(u32, i64), u64> = BTreeMap::new();
    for click in (0..clicks).map(|i| config.event(i)) {
        *counts.entry((click.user, click.time - click.time % 1000)).or_default() += 1;
    }
    let mut lines: Vec<String> = counts.iter().map(|((u, w), n)| format!("{u}\t{w}\t{n}")).collect();
    lines.sort();
    lines
}

/// Runs a bounded Kafka source of `topic` at `parallelism` into a collecting sink.
async fn read_bounded(brokers: &str, topic: &str, parallelism: usize) -> Vec<Click> {
    let (sink, handle) = CollectSink::new();
    let (brokers, topic) = (brokers.to_owned(), topic.to_owned());
    let job = JobSubmission::new("kafka-read", parallelism, move |env, _| {
        let source = KafkaSource::new(brokers.clone(), &[topic.as_str()], Json::<Click>::new()).bounded(true);
        env.source("kafka", source).sink("collect", sink.clone());
        Ok(())
    });
    let config = MiniClusterConfig { slots_per_task_manager: parallelism, ..Default::default() };
    let cluster = MiniCluster::start(config).await.unwrap();
    let id = cluster.submit(&job).await.unwrap();
    let result = job_result(&cluster, id, Duration::from_secs(120)).await;
    cluster.shutdown().await;
    assert_eq!(result.status(), JobStatus::Finished, "{:?}", result.details.cause);
    handle.take()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bounded_kafka_source_reads_every_produced_click_once_at_any_parallelism() {
    let broker = Broker::start();
    let config = GeneratorConfig { events: Some(5000), keys: 50, base_time: BASE_TIME, ..GeneratorConfig::default() };
    // One record per batch: tansu 0.6 answers a partition's end as its latest batch's base
    // offset + 1, which is the true end only then (see produce_clicks).
    let written = weir_kafka::produce_clicks(&broker.addr, "clicks", &config, 4, 1).await.unwrap();
    assert_eq!(written, 5000);
    // Four partitions over 1, 2 and 3 subtasks (3 does not divide 4: one subtask reads two).
    for parallelism in [1, 2, 3] {
        let clicks = read_bounded(&broker.addr, "clicks", parallelism).await;
        let mut seen = BTreeMap::new();
        for click in &clicks {
            assert_eq!(*click, config.event(click.index), "a click not as generated");
            *seen.entry(click.index).or_insert(0) += 1;
        }
        assert_eq!(seen.len(), 5000, "p{parallelism}: {} distinct of 5000", seen.len());
        assert!(seen.values().all(|n| *n == 1), "p{parallelism}: some click read twice");
    }
    // A user's clicks are in one partition, in order: each subtask sees them in index order.
    let clicks = read_bounded(&broker.addr, "clicks", 2).await;
    let mut last: BTreeMap<u32, u64> = BTreeMap::new();
    for click in clicks {
        if let Some(before) = last.insert(click.user, click.index) {
            assert!(before < click.index, "user {}: {before} before {}", click.user, click.index);
        }
    }
}

#[test]
fn subtasks_own_partitions_as_flinks_enumerator_assigns_them() {
    // Java's "clicks".hashCode() is -1357714453 (computed apart from Weir's code); Flink's
    // KafkaSourceEnumerator starts topic "clicks" at ((hash * 31) & 0x7fffffff) % parallelism.
    let start = (-1357714453_i32).wrapping_mul(31) & 0x7fff_ffff;
    let start = start as usize;
    for p in 1..=5usize {
        let owners: Vec<usize> = (0..8).map(|partition| weir_kafka::owner("clicks", partition, p)).collect();
        let expected: Vec<usize> = (0..8).map(|partition| (start % p + partition) % p).collect();
        assert_eq!(owners, expected, "parallelism {p}");
        // Even: no subtask owns more than one partition more than another.
        let counts: Vec<usize> = (0..p).map(|s| owners.iter().filter(|o| **o == s).count()).collect();
        assert!(counts.iter().max().unwrap() - counts.iter().min().unwrap() <= 1, "{counts:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weir_kafka_produce_clicks_fills_a_topic_with_the_generators_clicks() {
    let broker = Broker::start();
    let produce = |more: &[&str]| {
        let mut args: Vec<String> = ["kafka", "produce-clicks", "--brokers", &broker.addr, "--topic", "from-cli"]
            .iter()
            .map(|a| (*a).to_owned())
            .collect();
        args.extend(more.iter().map(|a| (*a).to_owned()));
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            crate::support::weir(&args, Duration::from_secs(120))
        })
    };
    let out = produce(&["--events", "1200", "--keys", "7", "--seed", "3", "--partitions", "3", "--batch-records", "1"])
        .await
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && said.contains("1200 clicks written to 'from-cli'"), "{said}");
    let config =
        GeneratorConfig { events: Some(1200), keys: 7, seed: 3, base_time: BASE_TIME, ..GeneratorConfig::default() };
    let mut clicks = read_bounded(&broker.addr, "from-cli", 2).await;
    clicks.sort_by_key(|c| c.index);
    let expected: Vec<Click> = (0..1200).map(|i| config.event(i)).collect();
    assert_eq!(clicks, expected);
    // A second run into the same topic keeps its partitions (and adds its clicks).
    let out = produce(&["--events", "10", "--partitions", "5", "--batch-records", "1"]).await.unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(read_bounded(&broker.addr, "from-cli", 1).await.len(), 1210);
    // Bad arguments are named.
    let out = produce(&["--events", "10", "--batch-records", "0"]).await.unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && said.contains("--batch-records must be at least 1"), "{said}");
    let out = produce(&["--events", "10", "--base-time-ms", "0"]).await.unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && said.contains("timestamp of 0 for the current time"), "{said}");
}

/// The source's offsets are its state: subtasks stopped part-way at parallelism 2 and restored
/// at 3 (union redistribution: each takes the partitions it owns now) read each click once.
#[test]
fn kafka_offsets_restored_at_another_parallelism_read_each_click_once() {
    let broker = Broker::start();
    let config = GeneratorConfig { events: Some(2000), keys: 40, base_time: BASE_TIME, ..GeneratorConfig::default() };
    broker.produce("rescale", &config, 4);
    let source = || KafkaSource::new(broker.addr.clone(), &["rescale"], Json::<Click>::new()).bounded(true);
    let mut read: Vec<Click> = Vec::new();
    let mut snapshots = Vec::new();
    for index in 0..2 {
        let mut harness = HarnessConfig::new().subtask(index, 2).batch_size(50).build_source(source()).unwrap();
        // Part of its share only: 300 of about 1000.
        assert!(!harness.run(300).unwrap(), "subtask {index} of 2 finished early");
        read.extend(harness.take_output().into_iter().map(|(c, ts)| {
            assert_eq!(ts, Some(c.time), "the Kafka timestamp is the click's event time");
            c
        }));
        snapshots.push(harness.snapshot().unwrap());
    }
    assert!(read.len() >= 600 && read.len() < 2000, "{}", read.len());
    for index in 0..3 {
        let mut harness =
            HarnessConfig::new().subtask(index, 3).restore(snapshots.clone()).build_source(source()).unwrap();
        assert!(harness.run(usize::MAX).unwrap(), "subtask {index} of 3 did not finish");
        read.extend(harness.take_output().into_iter().map(|(c, _)| c));
    }
    let mut seen: BTreeMap<u64, usize> = BTreeMap::new();
    for click in &read {
        *seen.entry(click.index).or_default() += 1;
    }
    let twice = seen.values().filter(|n| **n > 1).count();
    assert!(seen.len() == 2000 && twice == 0, "{} of 2000 clicks read, {twice} more than once", seen.len());
}

/// Polls `harness` until it emitted `records` more, finished, or `deadline` passed; answers
/// what it emitted (a source that never finishes must not hang the test).
fn poll_for(harness: &mut SourceHarness<KafkaSource<Json<Click>>>, records: usize, deadline: Duration) -> Vec<Click> {
    let start = Instant::now();
    let mut got = Vec::new();
    while got.len() < records && start.elapsed() < deadline {
        let poll = harness.poll_at_most(100).unwrap();
        got.extend(harness.take_output().into_iter().map(|(c, _)| c));
        match poll {
            SourcePoll::Finished => break,
            SourcePoll::Ready => {}
            SourcePoll::Pending(_) => std::thread::sleep(Duration::from_millis(5)),
        }
    }
    got
}

/// A topic pattern with discovery on: a topic created while the source runs is read too,
/// from its start.
#[test]
fn a_topic_created_while_running_is_discovered_through_the_pattern() {
    let broker = Broker::start();
    let first = GeneratorConfig { events: Some(300), keys: 10, base_time: BASE_TIME, ..GeneratorConfig::default() };
    broker.produce("events-a", &first, 2);
    let source = KafkaSource::pattern(broker.addr.clone(), "events-.*", Json::<Click>::new())
        .unwrap()
        .partition_discovery(Some(Duration::from_millis(100)));
    let mut harness = SourceHarness::new(source).unwrap();
    let read = poll_for(&mut harness, 300, Duration::from_secs(30));
    assert_eq!(read.len(), 300, "the first topic's clicks");
    // Another topic matching the pattern, and one that does not.
    let second = GeneratorConfig { events: Some(200), seed: 9, base_time: BASE_TIME, ..first };
    broker.produce("events-b", &second, 3);
    broker.produce("other", &second, 1);
    let more = poll_for(&mut harness, 200, Duration::from_secs(30));
    let mut indices: Vec<u64> = more.iter().map(|c| c.index).collect();
    indices.sort_unstable();
    assert_eq!(indices, (0..200).collect::<Vec<_>>(), "events-b's clicks, each once");
    assert!(more.iter().all(|c| *c == second.event(c.index)), "clicks of events-b, not of 'other'");
    // Nothing else comes: 'other' does not match.
    assert!(poll_for(&mut harness, 1, Duration::from_millis(500)).is_empty());
    // A bad pattern is named.
    let bad = KafkaSource::pattern(broker.addr.clone(), "events-(", Json::<Click>::new()).unwrap_err();
    assert!(bad.to_string().contains("invalid Kafka topic pattern 'events-('"), "{bad}");
}

/// A completed checkpoint commits the source's offsets to its consumer group (for
/// monitoring, as Flink does): a source starting from the group's committed offsets reads on
/// from there.
#[test]
fn a_completed_checkpoint_commits_the_offsets_to_the_group() {
    let broker = Broker::start();
    let config = GeneratorConfig { events: Some(1000), keys: 10, base_time: BASE_TIME, ..GeneratorConfig::default() };
    broker.produce("committed", &config, 2);
    let source = || {
        KafkaSource::new(broker.addr.clone(), &["committed"], Json::<Click>::new()).group_id("monitor").bounded(true)
    };
    let mut harness = HarnessConfig::new().batch_size(50).build_source(source()).unwrap();
    let before: std::collections::BTreeSet<u64> =
        poll_for(&mut harness, 400, Duration::from_secs(30)).iter().map(|c| c.index).collect();
    harness.snapshot().unwrap(); // checkpoint 1: the offsets just past `before`
    // Read on past the snapshot: only checkpoint 1's offsets may be committed.
    assert!(!poll_for(&mut harness, 100, Duration::from_secs(30)).is_empty());
    harness.checkpoint_complete(1).unwrap();
    // The commit is asynchronous: a source starting from the group's offsets reads exactly
    // what `before` lacks once it landed (all 1000 before: the fallback, earliest).
    let start = Instant::now();
    let rest = loop {
        let from_group =
            source().starting_offsets(StartingOffsets::Committed { fallback: Box::new(StartingOffsets::Earliest) });
        let mut second = SourceHarness::new(from_group).unwrap();
        let rest: std::collections::BTreeSet<u64> =
            poll_for(&mut second, 1000, Duration::from_secs(5)).iter().map(|c| c.index).collect();
        if rest.len() < 1000 {
            break rest;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "no offsets committed for group 'monitor'");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(before.is_disjoint(&rest), "a click read before the checkpoint was read again");
    assert_eq!(before.len() + rest.len(), 1000, "{} before the checkpoint, {} after", before.len(), rest.len());
}

/// A subtask killed after a checkpoint: the job restores the Kafka offsets of its latest
/// checkpoint and the two-phase file sink's output holds each click exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_failover_the_restored_offsets_lose_and_repeat_nothing() {
    let broker = Broker::start();
    let config = GeneratorConfig { events: Some(6000), keys: 30, base_time: BASE_TIME, ..GeneratorConfig::default() };
    weir_kafka::produce_clicks(&broker.addr, "failover", &config, 4, 1).await.unwrap();
    let out = crate::support::TempDir::new("kafka-failover");
    let timing = (Duration::from_millis(100), Duration::from_micros(50));
    run_through_a_failover(&broker.addr, "failover", timing, &out, FileSink::new(out.join("output"))).await;
    assert_each_once(&crate::support::read_output(&out.join("output")), 6000);
}

/// Runs `topic`'s clicks (bounded, at parallelism 2) into `sink` as their indices, taking
/// `per_click` for each and checkpointing every `interval` into `out`; kills a source subtask
/// once a checkpoint completed and waits until the job restarted and finished.
async fn run_through_a_failover<S: Sink<In = u64> + Clone + Sync>(
    brokers: &str,
    topic: &str,
    (interval, per_click): (Duration, Duration),
    out: &crate::support::TempDir,
    sink: S,
) {
    use weir_actors::api::job::{JobConfig, RestartStrategy};
    use weir_actors::runtime::checkpoint::CheckpointConfig;
    let (brokers, topic) = (brokers.to_owned(), topic.to_owned());
    let job = JobSubmission::new("kafka-failover", 2, move |env, _| {
        let source = KafkaSource::new(brokers.clone(), &[&topic], Json::<Click>::new()).bounded(true);
        // Slowly enough that the job still runs when a subtask is killed.
        let slowly = move |click: Click, ctx: &mut Context<'_, u64>| {
            std::thread::sleep(per_click);
            ctx.emit(click.index);
            Ok(())
        };
        env.source("kafka", source).process("slowly", slowly).sink("out", sink.clone());
        Ok(())
    })
    .with_config(JobConfig {
        checkpoints: Some(CheckpointConfig { retained: 2, ..CheckpointConfig::every(interval, out.join("ckpt")) }),
        restart: RestartStrategy::FixedDelay { attempts: 5, delay: Duration::from_millis(50) },
        ..Default::default()
    });
    let cluster =
        MiniCluster::start(MiniClusterConfig { slots_per_task_manager: 2, ..Default::default() }).await.unwrap();
    let id = cluster.submit(&job).await.unwrap();
    crate::support::eventually("a completed checkpoint", Duration::from_secs(60), || async {
        crate::support::latest_checkpoint(&cluster, id).await >= 1
    })
    .await;
    // The source subtask 1 (chained with the slow operator) dies mid-way.
    cluster.kill_subtask(id, 0, 1).await.unwrap();
    let result = job_result(&cluster, id, Duration::from_secs(120)).await;
    cluster.shutdown().await;
    assert_eq!(result.status(), JobStatus::Finished, "{:?}", result.details.cause);
    assert!(result.details.restarts >= 1, "the kill did not restart the job: {:?}", result.details.exceptions);
}

/// Each of the click indices `0..n` is in `lines` exactly once.
fn assert_each_once(lines: &[String], n: usize) {
    let mut seen: BTreeMap<u64, usize> = BTreeMap::new();
    for line in lines {
        *seen.entry(line.parse().unwrap()).or_default() += 1;
    }
    let twice = seen.values().filter(|n| **n > 1).count();
    assert!(
        seen.len() == n && seen.keys().all(|i| *i < n as u64) && twice == 0,
        "{} of {n} clicks written, {twice} more than once",
        seen.len()
    );
}

/// A job whose brokers are unreachable: each attempt fails naming them, within the source's
/// broker timeout, and the job fails once its restart strategy gives up; started again with
/// the broker coming up between its attempts, it reads everything (unbounded).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn brokers_down_at_start_fail_each_attempt_clearly_and_the_job_recovers_once_they_are_up() {
    use weir_actors::api::job::{JobConfig, RestartStrategy};
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let brokers = format!("127.0.0.1:{port}");
    // Unbounded: an attempt may start after the topic is created and before it is filled.
    let job = |attempts: u32, delay: Duration, sink: CollectSink<Click>| {
        let brokers = brokers.clone();
        JobSubmission::new("kafka-down", 1, move |env, _| {
            let source = KafkaSource::new(brokers.clone(), &["late"], Json::<Click>::new())
                .broker_timeout(Duration::from_millis(500));
            env.source("kafka", source).sink("collect", sink.clone());
            Ok(())
        })
        .with_config(JobConfig { restart: RestartStrategy::FixedDelay { attempts, delay }, ..Default::default() })
    };
    let cluster = MiniCluster::start(MiniClusterConfig::default()).await.unwrap();

    // Nobody listens: two restarts, then the job fails with a cause naming the brokers.
    let (sink, _) = CollectSink::new();
    let id = cluster.submit(&job(2, Duration::from_millis(50), sink)).await.unwrap();
    let result = job_result(&cluster, id, Duration::from_secs(60)).await;
    assert_eq!(result.status(), JobStatus::Failed);
    assert_eq!(result.details.restarts, 2, "{:?}", result.details.exceptions);
    let cause = result.details.cause.clone().unwrap_or_default();
    assert!(cause.contains(&format!("cannot read the topics of the Kafka cluster at {brokers}")), "{cause}");

    // The broker comes up on that port while the job retries: it reads every click.
    let (sink, handle) = CollectSink::new();
    let id = cluster.submit(&job(100, Duration::from_millis(200), sink)).await.unwrap();
    crate::support::eventually("a failed attempt", Duration::from_secs(60), || async {
        cluster.details(id).await.unwrap().restarts >= 1
    })
    .await;
    let broker = Broker::start_on(port);
    let config = GeneratorConfig { events: Some(500), keys: 5, base_time: BASE_TIME, ..GeneratorConfig::default() };
    weir_kafka::produce_clicks(&broker.addr, "late", &config, 2, 1).await.unwrap();
    crate::support::eventually("the 500 clicks", Duration::from_secs(60), || async { handle.len() >= 500 }).await;
    assert_eq!(cluster.details(id).await.unwrap().status, JobStatus::Running);
    cluster.cancel(id).await.unwrap();
    cluster.shutdown().await;
    let mut indices: Vec<u64> = handle.take().iter().map(|c| c.index).collect();
    indices.sort_unstable();
    assert!(indices.iter().copied().eq(0..500), "{} clicks read, not each of 0..500 once", indices.len());
}

/// Per-partition watermarks (Flink's per-split watermarks): one subtask reads two partitions,
/// partition 0 an hour of event time ahead of partition 1. Each partition has its own
/// generator and the subtask's watermark is the slower one's, so no click of partition 1 is
/// late: every one-second window counts all its clicks. (With one generator over both
/// partitions, partition 0's timestamps would carry the watermark an hour past partition 1's
/// clicks, dropped as late.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_partition_watermarks_keep_a_slow_partition_on_time() {
    use weir_kafka::ProducerRecord;
    const AHEAD: i64 = 3_600_000;
    let broker = Broker::start();
    // User `u`'s clicks in partition `u`, a hundred a second for 20 s; user 0's an hour ahead.
    let clicks: Vec<Click> = (0..2000u64)
        .flat_map(|i| {
            [0, 1].map(|user| Click { user, time: BASE_TIME + AHEAD * i64::from(1 - user) + i as i64 * 10, index: i })
        })
        .collect();
    let records = clicks.iter().map(|c| ProducerRecord {
        partition: c.user as i32,
        key: None,
        value: serde_json::to_vec(c).unwrap(),
        timestamp: c.time,
    });
    // One record per batch: tansu's end offsets are right only then (see produce_clicks).
    assert_eq!(weir_kafka::produce(&broker.addr, "uneven", 2, 1, records).await.unwrap(), 4000);
    let (windows, counted) = CollectSink::new();
    let (late_sink, late) = CollectSink::new();
    let brokers = broker.addr.clone();
    let job = JobSubmission::new("kafka-uneven", 1, move |env, _| {
        let source = KafkaSource::new(brokers.clone(), &["uneven"], Json::<Click>::new())
            .bounded(true)
            // Small fetches: the consumer reads the two partitions side by side, a few records
            // of each at a time (each poll emits a watermark).
            .property("max.partition.fetch.bytes", "4096")
            .watermarks(WatermarkStrategy::monotonous());
        let (counts, late) = env
            .source("kafka", source)
            .key_by(|c: &Click| c.user)
            .window(Tumbling::event_time(Duration::from_secs(1)))
            .aggregate_with_late("count", Count);
        late.sink("late", late_sink.clone());
        counts.map("start", |w: Windowed<u32, u64>| (w.key, w.window.start, w.value)).sink("windows", windows.clone());
        Ok(())
    });
    let cluster = MiniCluster::start(MiniClusterConfig::default()).await.unwrap();
    let id = cluster.submit(&job).await.unwrap();
    let result = job_result(&cluster, id, Duration::from_secs(120)).await;
    cluster.shutdown().await;
    assert_eq!(result.status(), JobStatus::Finished, "{:?}", result.details.cause);
    let late = late.take();
    assert!(late.is_empty(), "{} of partition 1's 2000 clicks were late", late.len());
    let mut counts = counted.take();
    counts.sort_unstable();
    let expected: Vec<(u32, i64, u64)> = [0, 1]
        .into_iter()
        .flat_map(|user: u32| (0..20).map(move |s| (user, BASE_TIME + AHEAD * i64::from(1 - user) + s * 1000, 100)))
        .collect();
    assert_eq!(counts, expected, "twenty windows of a hundred clicks per partition");
}

/// Kafka to Kafka, at least once, with checkpoints (each barrier flushes the sink): without a
/// failure every click arrives once, with its event time as the record's timestamp.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kafka_sink_writes_each_record_with_its_event_time() {
    use weir_actors::api::job::JobConfig;
    use weir_actors::runtime::checkpoint::CheckpointConfig;
    use weir_kafka::{DeliveryGuarantee, JsonValue, KafkaSink};
    let broker = Broker::start();
    let config = GeneratorConfig { events: Some(3000), keys: 20, base_time: BASE_TIME, ..GeneratorConfig::default() };
    weir_kafka::produce_clicks(&broker.addr, "in", &config, 3, 1).await.unwrap();
    weir_kafka::ensure_topic(&broker.addr, "out", 2).await.unwrap();
    let out = crate::support::TempDir::new("kafka-sink");
    let brokers = broker.addr.clone();
    let job = JobSubmission::new("kafka-to-kafka", 2, move |env, _| {
        let source = KafkaSource::new(brokers.clone(), &["in"], Json::<Click>::new()).bounded(true);
        // One record per batch: tansu's end offsets are right only then (see produce_clicks).
        let sink = KafkaSink::new(brokers.clone(), "out", JsonValue)
            .delivery_guarantee(DeliveryGuarantee::AtLeastOnce)
            .property("batch.num.messages", "1");
        env.source("kafka", source).sink("kafka-out", sink);
        Ok(())
    })
    .with_config(JobConfig {
        checkpoints: Some(CheckpointConfig::every(Duration::from_millis(50), out.join("ckpt"))),
        ..Default::default()
    });
    let cluster =
        MiniCluster::start(MiniClusterConfig { slots_per_task_manager: 2, ..Default::default() }).await.unwrap();
    let id = cluster.submit(&job).await.unwrap();
    let result = job_result(&cluster, id, Duration::from_secs(120)).await;
    cluster.shutdown().await;
    assert_eq!(result.status(), JobStatus::Finished, "{:?}", result.details.cause);
    // Read back with the record timestamps: each click once, its time kept.
    let mut read = Vec::new();
    for index in 0..2 {
        let source = KafkaSource::new(broker.addr.clone(), &["out"], Json::<Click>::new()).bounded(true);
        let mut harness = HarnessConfig::new().subtask(index, 2).build_source(source).unwrap();
        assert!(harness.run(usize::MAX).unwrap());
        read.extend(harness.take_output());
    }
    assert!(
        read.iter().all(|(c, ts)| *ts == Some(c.time) && *c == config.event(c.index)),
        "timestamps or clicks differ"
    );
    let mut indices: Vec<u64> = read.iter().map(|(c, _)| c.index).collect();
    indices.sort_unstable();
    assert!(indices.iter().copied().eq(0..3000), "{} clicks in 'out', not each of 0..3000 once", indices.len());
}

/// The committed values of `topic`, read through its transaction markers (tansu returns
/// aborted records to `read_committed` consumers, so a consumer cannot tell), with the counts
/// of records in aborted and still-open transactions.
fn committed_values(brokers: &str, topic: &str) -> (Vec<String>, u64, u64) {
    let log = weir_kafka::read_committed(brokers, topic, Duration::from_secs(30)).unwrap();
    let values =
        log.committed.iter().map(|r| String::from_utf8(r.value.clone().unwrap_or_default()).unwrap()).collect();
    (values, log.aborted, log.open)
}

/// An exactly-once Kafka sink subtask writing into topic `eo` (2 partitions), restored from
/// `checkpoint` if given.
fn exactly_once_subtask(broker: &Broker, checkpoint: Option<HarnessSnapshot>) -> OperatorHarness<String, ()> {
    use weir_kafka::{DeliveryGuarantee, DisplayText, KafkaSink};
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(weir_kafka::ensure_topic(&broker.addr, "eo", 2)).unwrap();
    let sink =
        KafkaSink::new(broker.addr.clone(), "eo", DisplayText).delivery_guarantee(DeliveryGuarantee::ExactlyOnce);
    let config = HarnessConfig::new();
    let config = match checkpoint {
        Some(checkpoint) => config.restore(vec![checkpoint]),
        None => config,
    };
    config.build(move |s: DataStream<String>| s.sink("kafka", sink.clone())).unwrap()
}

/// An exactly-once sink subtask that pre-committed a transaction at a barrier and died before
/// the checkpoint's completion could commit it (its process gone: nothing aborted or
/// committed). The subtask restored from that checkpoint commits the transaction from its
/// kept producer id and epoch, aborts the transaction the dead one had begun after the
/// barrier, and writes on.
#[test]
fn a_restored_exactly_once_sink_commits_what_its_checkpoint_precommitted_and_aborts_the_rest() {
    let broker = Broker::start();
    let mut first = exactly_once_subtask(&broker, None);
    for i in 0..100 {
        first.process(format!("a{i}")).unwrap();
    }
    let checkpoint = first.snapshot().unwrap();
    for i in 0..50 {
        first.process(format!("b{i}")).unwrap();
    }
    // The second transaction's records reach the log and stay open; nothing is committed.
    let start = Instant::now();
    loop {
        let (values, aborted, open) = committed_values(&broker.addr, "eo");
        assert!(values.is_empty() && aborted == 0, "{} committed, {aborted} aborted before any commit", values.len());
        if open == 150 {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "{open} of 150 records in the log");
        std::thread::sleep(Duration::from_millis(20));
    }
    // The process dies: its producers neither commit nor abort anything.
    std::mem::forget(first);

    let mut restored = exactly_once_subtask(&broker, Some(checkpoint));
    for i in 0..30 {
        restored.process(format!("c{i}")).unwrap();
    }
    restored.snapshot().unwrap();
    restored.notify_checkpoint_complete(1).unwrap();

    let (mut values, aborted, still_open) = committed_values(&broker.addr, "eo");
    values.sort();
    let mut expected: Vec<String> = (0..100).map(|i| format!("a{i}")).chain((0..30).map(|i| format!("c{i}"))).collect();
    expected.sort();
    assert_eq!(values, expected, "committed output");
    assert_eq!((aborted, still_open), (50, 0), "the dead subtask's open transaction is aborted");
}

/// Kafka to Kafka exactly once, through a failover: a subtask killed after a checkpoint
/// restores the source offsets and the sink's transactions of the latest checkpoint; what a
/// `read_committed` consumer gets holds each click once, and no transaction is left open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_to_kafka_exactly_once_through_a_failover() {
    use weir_kafka::{DeliveryGuarantee, DisplayText, KafkaSink};
    let broker = Broker::start();
    let config = GeneratorConfig { events: Some(6000), keys: 30, base_time: BASE_TIME, ..GeneratorConfig::default() };
    weir_kafka::produce_clicks(&broker.addr, "in", &config, 4, 1).await.unwrap();
    weir_kafka::ensure_topic(&broker.addr, "out", 3).await.unwrap();
    let out = crate::support::TempDir::new("kafka-eo-failover");
    let sink =
        KafkaSink::new(broker.addr.clone(), "out", DisplayText).delivery_guarantee(DeliveryGuarantee::ExactlyOnce);
    // Checkpoints every 300 ms: a transaction per checkpoint, and a new transactional producer
    // takes librdkafka about 500 ms to be ready (made ahead, while the previous one writes).
    let timing = (Duration::from_millis(300), Duration::from_micros(500));
    run_through_a_failover(&broker.addr, "in", timing, &out, sink).await;
    let (values, aborted, open) = committed_values(&broker.addr, "out");
    assert_each_once(&values, 6000);
    assert_eq!(open, 0, "transactions left open");
    println!("committed 6000 clicks once; {aborted} records of aborted transactions in the log");
}

/// `weir run kafka-word-count --bounded true` counts the words of a topic's lines into
/// another topic, exactly once; `weir kafka read-committed` prints what was committed, and the
/// latest count of each word is its count in the lines.
#[test]
fn kafka_word_count_writes_each_words_running_count() {
    use crate::cluster::{text, weir_env};
    let broker = Broker::start();
    let lines = ["to be or not to be", "that is the question", "to be is to do", "do be do be do"];
    let mut expected: BTreeMap<&str, u64> = BTreeMap::new();
    for word in lines.iter().flat_map(|l| l.split_whitespace()) {
        *expected.entry(word).or_default() += 1;
    }
    let records = lines.iter().enumerate().map(|(i, line)| weir_kafka::ProducerRecord {
        partition: (i % 2) as i32,
        key: None,
        value: line.as_bytes().to_vec(),
        timestamp: BASE_TIME + i as i64,
    });
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(weir_kafka::produce(&broker.addr, "lines", 2, 1, records)).unwrap();
    let args = ["--brokers", &broker.addr, "--input-topic", "lines", "--output-topic", "counts", "--bounded", "true"];
    let mut cmd = vec!["run", "kafka-word-count", "--local", "-p", "2", "--checkpoint-interval", "100ms", "--"];
    cmd.extend(args);
    let out = weir_env(&cmd);
    assert!(out.status.success(), "{}", text(&out));
    let read = weir_env(&["kafka", "read-committed", "--brokers", &broker.addr, "--topic", "counts"]);
    assert!(read.status.success(), "{}", text(&read));
    let stdout = String::from_utf8(read.stdout).unwrap();
    let words = expected.values().sum::<u64>();
    // A record per word read: each word's records count up to its count, in order (keyed by the
    // word, one partition each).
    let mut counts: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    for line in stdout.lines() {
        let (word, count) = line.split_once('\t').unwrap();
        counts.entry(word).or_default().push(count.parse().unwrap());
    }
    for (word, n) in &expected {
        assert_eq!(counts.get(word), Some(&(1..=*n).collect::<Vec<u64>>()), "the counts of '{word}'");
    }
    assert_eq!(counts.len(), expected.len(), "{stdout}");
    assert!(String::from_utf8_lossy(&read.stderr).contains(&format!("{words} committed records in 'counts'")));
}

/// A subtask that committed its checkpoint's transaction and then died: the restored one
/// commits it again (the broker answers that it is committed already) and nothing is written
/// twice.
#[test]
fn restoring_a_transaction_committed_already_writes_nothing_twice() {
    let broker = Broker::start();
    let mut first = exactly_once_subtask(&broker, None);
    for i in 0..40 {
        first.process(format!("a{i}")).unwrap();
    }
    let checkpoint = first.snapshot().unwrap();
    first.notify_checkpoint_complete(1).unwrap();
    std::mem::forget(first);
    let mut restored = exactly_once_subtask(&broker, Some(checkpoint));
    restored.snapshot().unwrap();
    restored.notify_checkpoint_complete(1).unwrap();
    let (mut values, aborted, open) = committed_values(&broker.addr, "eo");
    values.sort();
    let mut expected: Vec<String> = (0..40).map(|i| format!("a{i}")).collect();
    expected.sort();
    assert_eq!((values, aborted, open), (expected, 0, 0));
}

/// The broker SIGKILLed mid-run and started again on the same port (its topics in S3):
/// `kafka-window-agg` reads on and commits every window's count once. At parallelism 1: tansu
/// 0.6 on S3 storage fails two transactional producers writing one partition at once (both
/// race for a batch's object name and one gets an error), with or without faults.
#[test]
#[ignore = "blocked on the broker: about 1 run in 5 leaves one transaction's records without a commit \
            marker while every commit succeeds. tansu's EndTxn on S3 saves PrepareCommit before writing \
            the markers and writes them only from state Begin, so one killed between the two answers the \
            retried EndTxn with success and writes none; s3s-fs 0.14.1's If-Match is not atomic either \
            (see README, Kafka). Run it with --ignored (needs s3s-fs: scripts/setup.sh --tests)"]
fn a_broker_killed_and_restarted_mid_run_leaves_the_output_exactly_once() {
    const CLICKS: u64 = 2000;
    let s3 = S3::start(&["tansu"]);
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut broker = Broker::start_on_s3(port, &s3);
    let brokers = broker.addr.clone();
    let config =
        GeneratorConfig { events: Some(CLICKS), keys: 10, seed: 3, base_time: BASE_TIME, ..GeneratorConfig::default() };
    let expected = window_counts(&config, CLICKS);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let produce = |records: Vec<weir_kafka::ProducerRecord>| {
        runtime.block_on(weir_kafka::produce(&brokers, "clicks", 4, 200, records)).unwrap();
    };
    let part = |part: u64| click_part(&config, CLICKS, part, 10);
    runtime.block_on(weir_kafka::ensure_topic(&brokers, "windows", 1)).unwrap();
    produce(part(0));

    let out = crate::support::TempDir::new("kafka-broker-restart");
    let log = std::fs::File::create(out.join("job.log")).unwrap();
    let job = crate::cluster_recovery::Process(
        Command::new(env!("CARGO_BIN_EXE_weir"))
            .args(["run", "kafka-window-agg", "--local", "-p", "1", "--checkpoint-interval", "500ms"])
            .args(["--restart-delay", "500ms", "--", "--brokers", &brokers])
            .args(["--input-topic", "clicks", "--output-topic", "windows"])
            .env("RUST_LOG", "info,librdkafka=warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let committed = |brokers: &str| committed_values(brokers, "windows").0;
    for p in 1..6 {
        produce(part(p));
    }
    // Windows are committed: the job runs, with transactions open, when the broker dies.
    let start = Instant::now();
    while committed(&brokers).is_empty() {
        assert!(start.elapsed() < Duration::from_secs(90), "no window committed before the broker's kill");
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(broker);
    broker = Broker::start_on_s3(port, &s3);
    for p in 6..10 {
        produce(part(p));
    }
    produce(clicks_a_day_later(CLICKS));

    let start = Instant::now();
    let mut values = loop {
        let (committed, aborted, open) = committed_values(&broker.addr, "windows");
        if committed.len() >= expected.len() {
            break committed;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{} of {} windows committed ({aborted} records aborted, {open} open); the end of the job's log:\n{}",
            committed.len(),
            expected.len(),
            crate::support::tail(&std::fs::read_to_string(out.join("job.log")).unwrap_or_default(), 30)
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    values.sort();
    assert_eq!(values.len(), expected.len(), "windows committed twice");
    assert!(values == expected, "the committed windows differ from the clicks' counts");
    drop(job);
}
