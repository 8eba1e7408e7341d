//! Keyed process functions, on the operator harness: every kind of state per key,
//! deduplicated timers, refused state registrations; and on a MiniCluster, processing-time
//! timers firing while a job runs.

use std::time::Duration;

use crate::prelude::*;

/// Keeps every kind of state per key; at the end of each key's activity (an event-time timer
/// registered several times per record) emits what it holds.
#[derive(Default)]
struct AllStates {
    count: Option<ValueState<u32>>,
    seen: Option<ListState<u32>>,
    parity: Option<MapState<u32, u32>>,
    sum: Option<ReducingState<u32>>,
}

impl KeyedProcessFunction for AllStates {
    type Key = char;
    type In = (char, u32);
    type Out = String;

    fn open(&mut self, ctx: &mut KeyedOpenContext<'_, char>) -> Result<()> {
        self.count = Some(ctx.value_state("count")?);
        self.seen = Some(ctx.list_state("seen")?);
        self.parity = Some(ctx.map_state("parity")?);
        self.sum = Some(ctx.reducing_state("sum", |a: &u32, b: &u32| a + b)?);
        Ok(())
    }

    fn process(&mut self, (_, x): (char, u32), ctx: &mut KeyedContext<'_, char, String>) -> Result<()> {
        let count = ctx.value(self.count.unwrap()).get()?.unwrap_or(0);
        ctx.value(self.count.unwrap()).update(count + 1)?;
        ctx.list(self.seen.unwrap()).add(x)?;
        let mut parity = ctx.map(self.parity.unwrap());
        let n = parity.get(&(x % 2))?.unwrap_or(0);
        parity.put(x % 2, n + 1)?;
        ctx.reducing(self.sum.as_ref().unwrap()).add(x)?;
        // The same timer, twice: it must fire once.
        ctx.register_event_time_timer(1_000);
        ctx.register_event_time_timer(1_000);
        Ok(())
    }

    fn on_timer(&mut self, ts: Timestamp, domain: TimeDomain, ctx: &mut KeyedContext<'_, char, String>) -> Result<()> {
        assert_eq!((ts, domain), (1_000, TimeDomain::EventTime));
        let count = ctx.value(self.count.unwrap()).get()?.unwrap();
        let seen = ctx.list(self.seen.unwrap()).get()?;
        let mut parity = ctx.map(self.parity.unwrap()).entries()?;
        parity.sort();
        let sum = ctx.reducing(self.sum.as_ref().unwrap()).get()?.unwrap();
        let key = *ctx.key();
        ctx.emit(format!("{key} count={count} seen={seen:?} parity={parity:?} sum={sum}"));
        ctx.value(self.count.unwrap()).clear()?;
        ctx.list(self.seen.unwrap()).clear()?;
        ctx.map(self.parity.unwrap()).clear()?;
        ctx.reducing(self.sum.as_ref().unwrap()).clear()?;
        Ok(())
    }
}

#[test]
fn every_kind_of_state_is_kept_per_key_and_timers_fire_once() {
    let mut h = OperatorHarness::new(|input: DataStream<(char, u32)>| {
        input.key_by(|r: &(char, u32)| r.0).process("all", AllStates::default)
    })
    .unwrap();
    for (record, ts) in [(('a', 1), 10), (('b', 2), 20), (('a', 4), 30), (('a', 5), 40)] {
        h.process_at(record, ts).unwrap();
    }
    // One timer per key, however often it was registered.
    assert_eq!(h.timers(), vec![(TimeDomain::EventTime, 1_000), (TimeDomain::EventTime, 1_000)]);
    h.process_watermark(1_000).unwrap();
    assert!(h.timers().is_empty());
    let mut out = h.take_output();
    out.sort();
    assert_eq!(
        out,
        vec![
            "a count=3 seen=[1, 4, 5] parity=[(0, 1), (1, 2)] sum=10".to_owned(),
            "b count=1 seen=[2] parity=[(0, 1)] sum=2".to_owned(),
        ]
    );
}

#[test]
fn state_registered_twice_with_other_types_is_refused() {
    struct Twice;
    impl KeyedProcessFunction for Twice {
        type Key = u32;
        type In = u32;
        type Out = u32;
        fn open(&mut self, ctx: &mut KeyedOpenContext<'_, u32>) -> Result<()> {
            ctx.value_state::<u64>("s")?;
            ctx.list_state::<u64>("s")?;
            Ok(())
        }
        fn process(&mut self, v: u32, ctx: &mut KeyedContext<'_, u32, u32>) -> Result<()> {
            ctx.emit(v);
            Ok(())
        }
    }
    let err = OperatorHarness::new(|input: DataStream<u32>| input.key_by(|x: &u32| *x).process("twice", || Twice))
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("operator 'twice' failed") && err.contains("state \"s\""), "{err}");
}

/// On each key's first record, a processing-time timer one second later; it reports when it
/// was registered, when it fired and how many of the key's records had arrived by then.
#[derive(Default)]
struct Reminder {
    registered: Option<ValueState<i64>>,
    seen: Option<ValueState<u32>>,
}

impl KeyedProcessFunction for Reminder {
    type Key = u32;
    type In = Click;
    type Out = (u32, i64, i64, u32);

    fn open(&mut self, ctx: &mut KeyedOpenContext<'_, u32>) -> Result<()> {
        self.registered = Some(ctx.value_state("registered")?);
        self.seen = Some(ctx.value_state("seen")?);
        Ok(())
    }

    fn process(&mut self, _: Click, ctx: &mut KeyedContext<'_, u32, Self::Out>) -> Result<()> {
        let seen = ctx.value(self.seen.unwrap()).get()?.unwrap_or(0);
        ctx.value(self.seen.unwrap()).update(seen + 1)?;
        if ctx.value(self.registered.unwrap()).get()?.is_none() {
            let now = ctx.processing_time();
            ctx.value(self.registered.unwrap()).update(now)?;
            ctx.register_processing_time_timer(now + 1_000);
        }
        Ok(())
    }

    fn on_timer(
        &mut self,
        ts: Timestamp,
        domain: TimeDomain,
        ctx: &mut KeyedContext<'_, u32, Self::Out>,
    ) -> Result<()> {
        assert_eq!(domain, TimeDomain::ProcessingTime);
        let registered = ctx.value(self.registered.unwrap()).get()?.unwrap();
        let seen = ctx.value(self.seen.unwrap()).get()?.unwrap();
        let key = *ctx.key();
        assert_eq!(ts, registered + 1_000);
        ctx.emit((key, registered, ctx.processing_time(), seen));
        Ok(())
    }
}

/// A rolling maximum per key keeps the first of equal maxima, and keys do not mix.
#[test]
fn max_by_keeps_each_keys_first_greatest_record() {
    let mut h = OperatorHarness::new(|input: DataStream<(char, u32, u32)>| {
        input.key_by(|r: &(char, u32, u32)| r.0).max_by("highest", |r: &(char, u32, u32)| r.1)
    })
    .unwrap();
    for record in [('a', 5, 0), ('b', 1, 1), ('a', 9, 2), ('a', 9, 3), ('a', 2, 4), ('b', 4, 5)] {
        h.process(record).unwrap();
    }
    assert_eq!(h.output(), vec![('a', 5, 0), ('b', 1, 1), ('a', 9, 2), ('a', 9, 2), ('a', 9, 2), ('b', 4, 5)]);
}

/// On the harness, processing time stands still until set: a key's timer fires when the clock
/// reaches it, and not before.
#[test]
fn processing_time_timers_fire_when_the_clock_reaches_them() {
    let mut h = HarnessConfig::new()
        .processing_time(5_000)
        .build(|input: DataStream<Click>| input.key_by(|c: &Click| c.user).process("remind", Reminder::default))
        .unwrap();
    let click = |user, index| Click { user, time: 0, index };
    h.process(click(1, 0)).unwrap();
    h.set_processing_time(5_500).unwrap();
    h.process(click(2, 1)).unwrap();
    h.process(click(1, 2)).unwrap();
    assert_eq!(h.timers(), vec![(TimeDomain::ProcessingTime, 6_000), (TimeDomain::ProcessingTime, 6_500)]);
    h.set_processing_time(5_999).unwrap();
    assert!(h.output().is_empty());
    h.set_processing_time(6_000).unwrap();
    assert_eq!(h.take_output(), vec![(1, 5_000, 6_000, 2)]);
    h.set_processing_time(10_000).unwrap();
    assert_eq!(h.take_output(), vec![(2, 5_500, 10_000, 1)]);
}

/// Processing-time timers fire while the job runs, when the clock passes them, not only at
/// its end (about 4 s of real time: tokio's paused clock would need its `test-util` feature,
/// which would make a fresh machine compile tokio and everything above it twice).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processing_time_timers_fire_mid_run() {
    let (sink, out) = CollectSink::new();
    let job = JobSubmission::new("reminders", 1, move |env, _| {
        let config = GeneratorConfig {
            events: Some(400),
            keys: 4,
            rate: Some(100.0),
            keys_in_turn: true,
            ..GeneratorConfig::default()
        };
        env.source("clicks", Generator::new(config))
            .key_by(|c: &Click| c.user)
            .process("remind", Reminder::default)
            .sink("out", sink.clone());
        Ok(())
    });
    let cluster = MiniCluster::start(MiniClusterConfig::default()).await.unwrap();
    let started = tokio::time::Instant::now();
    cluster.execute(&job).await.unwrap().into_result().unwrap();
    let ran = started.elapsed();
    cluster.shutdown().await;
    let mut fired = out.take();
    fired.sort();
    assert_eq!(fired.iter().map(|f| f.0).collect::<Vec<_>>(), vec![0, 1, 2, 3], "{fired:?}");
    for &(key, registered, at, seen) in &fired {
        assert!((1_000..1_500).contains(&(at - registered)), "key {key} fired {} ms after", at - registered);
        // 25 of each key's 100 records arrive per second: the timer fired mid-run.
        assert!((10..=60).contains(&seen), "key {key} had seen {seen} of its 100 records");
    }
    assert!(ran >= std::time::Duration::from_secs(3), "the input takes 4 s: {ran:?}");
}

#[test]
fn rolling_min_max_and_sum_fold_one_field_into_the_first_record() {
    let run = |op: &'static str| {
        let mut h = OperatorHarness::new(move |input: DataStream<(char, i32, String)>| {
            let keyed = input.key_by(|r: &(char, i32, String)| r.0);
            match op {
                "min" => keyed.min("min", |r: &mut (char, i32, String)| &mut r.1),
                "max" => keyed.max("max", |r: &mut (char, i32, String)| &mut r.1),
                _ => keyed.sum("sum", |r: &mut (char, i32, String)| &mut r.1),
            }
        })
        .unwrap();
        for (key, v, tag) in [('a', 5, "x"), ('b', 1, "y"), ('a', 3, "z"), ('a', 7, "w")] {
            h.process((key, v, tag.to_owned())).unwrap();
        }
        h.output().into_iter().map(|(k, v, t)| format!("{k}{v}{t}")).collect::<Vec<_>>()
    };
    assert_eq!(run("min"), ["a5x", "b1y", "a3x", "a3x"]);
    assert_eq!(run("max"), ["a5x", "b1y", "a5x", "a7x"]);
    assert_eq!(run("sum"), ["a5x", "b1y", "a8x", "a15x"]);
}

/// A record a subtask holds in a partial batch goes out as soon as the subtask has nothing
/// else to do, not at the flush interval (an hour here): a sparse stream is not delayed by
/// batching, while under load the input is always ready and batches fill.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partial_batch_leaves_when_its_subtask_runs_dry() {
    let (sink, out) = CollectSink::new();
    let job = JobSubmission::new("sparse", 2, move |env, _| {
        env.set_batch_config(BatchConfig { flush_interval: Duration::from_secs(3600), ..BatchConfig::default() });
        // Unbounded, one event a second: after each the source waits.
        let config = GeneratorConfig { events: None, keys: 4, rate: Some(1.0), ..GeneratorConfig::default() };
        env.source("clicks", Generator::new(config))
            .key_by(|c: &Click| c.user)
            .reduce("latest", |_, c| *c)
            .sink("out", sink.clone());
        Ok(())
    });
    let cluster = MiniCluster::start(MiniClusterConfig::default()).await.unwrap();
    let id = cluster.submit(&job).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while out.is_empty() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let arrived = !out.is_empty();
    cluster.cancel(id).await.unwrap();
    cluster.shutdown().await;
    assert!(arrived, "the first record waited for the hour-long flush interval");
}
