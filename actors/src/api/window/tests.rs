//! Window semantics, on the operator harness: boundaries, disorder within the watermark
//! bound, lateness, sessions, triggers, evictors and count windows; and on a MiniCluster, an
//! idle source subtask's watermark.

use std::time::Duration;

use super::*;
use crate::api::functions::Count;
use crate::api::window::evictor::{CountEvictor, TimeEvictor};
use crate::api::window::trigger::{
    ContinuousProcessingTimeTrigger, CountTrigger, DefaultTrigger, PurgingTrigger, Trigger, TriggerContext,
    TriggerResult,
};
use crate::api::window::{ProcessWindowFunction, WindowContext, WindowOpenContext};
use crate::base::state::StateBackend;
use crate::prelude::{DataStream, HarnessConfig, MiniCluster, OperatorHarness, WatermarkStrategy};

type Out = Vec<(i64, i64, u64)>;

/// Runs `(key, ts)` records (in this order) through a windowed count, each followed by the
/// watermark a bounded-out-of-orderness strategy of `bound_ms` derives from it, then ends the
/// input; returns `(window start, window end, count)` of every firing, sorted, and the late
/// records.
fn run(records: Vec<(char, i64)>, bound_ms: i64, assigner: WindowAssigner, lateness_ms: u64) -> (Out, Vec<char>) {
    let mut h = HarnessConfig::new()
        .build_with_side_outputs(|input: DataStream<char>, side| {
            let (results, late) = input
                .key_by(|r: &char| *r)
                .window(assigner)
                .allowed_lateness(Duration::from_millis(lateness_ms))
                .aggregate_with_late("count", Count);
            side.add("late", &late);
            results
        })
        .unwrap();
    for (key, ts) in records {
        h.process_at(key, ts).unwrap();
        h.process_watermark(ts - bound_ms - 1).unwrap();
    }
    h.end_input().unwrap();
    let mut out: Out = h.output().into_iter().map(|w| (w.window.start, w.window.end, w.value)).collect();
    out.sort();
    (out, h.side_output("late").unwrap())
}

#[test]
fn tumbling_boundaries_are_half_open() {
    let (out, late) =
        run(vec![('a', 0), ('a', 999), ('a', 1000), ('a', 2999)], 0, Tumbling::event_time(Duration::from_secs(1)), 0);
    assert_eq!(out, vec![(0, 1000, 2), (1000, 2000, 1), (2000, 3000, 1)]);
    assert!(late.is_empty());
}

#[test]
fn negative_timestamps_fall_in_the_right_window() {
    let (out, _) = run(vec![('a', -1), ('a', 0)], 0, Tumbling::event_time(Duration::from_secs(1)), 0);
    assert_eq!(out, vec![(-1000, 0, 1), (0, 1000, 1)]);
}

#[test]
fn disorder_within_the_bound_is_not_late() {
    // Watermark bound 500 ms: 700 after 1100 is 400 ms out of order.
    let (out, late) = run(
        vec![('a', 100), ('a', 1100), ('a', 700), ('a', 1900)],
        500,
        Tumbling::event_time(Duration::from_secs(1)),
        0,
    );
    assert_eq!(out, vec![(0, 1000, 2), (1000, 2000, 2)]);
    assert!(late.is_empty());
}

#[test]
fn late_records_are_side_output_and_never_merged() {
    // No disorder allowed: 2500 moves the watermark to 2499, closing [0, 1000).
    let (out, late) =
        run(vec![('a', 100), ('a', 2500), ('a', 200)], 0, Tumbling::event_time(Duration::from_secs(1)), 0);
    assert_eq!(out, vec![(0, 1000, 1), (2000, 3000, 1)], "the late record must not change a fired result");
    assert_eq!(late, vec!['a']);
}

#[test]
fn allowed_lateness_fires_again_then_drops() {
    // Lateness 1000: [0, 1000) is kept until the watermark passes 1999.
    let records = vec![('a', 100), ('a', 1500), ('a', 200), ('a', 3100), ('a', 300)];
    let (out, late) = run(records, 0, Tumbling::event_time(Duration::from_secs(1)), 1000);
    // [0,1000) fires with 1 at watermark 1499, again with 2 for the late record at 200; the
    // record at 300 comes after cleanup (watermark 3099) and is late.
    assert_eq!(out, vec![(0, 1000, 1), (0, 1000, 2), (1000, 2000, 1), (3000, 4000, 1)]);
    assert_eq!(late, vec!['a']);
}

#[test]
fn sliding_windows_overlap() {
    let (out, _) =
        run(vec![('a', 0), ('a', 600)], 0, Sliding::event_time(Duration::from_secs(1), Duration::from_millis(500)), 0);
    assert_eq!(out, vec![(-500, 500, 1), (0, 1000, 2), (500, 1500, 1)]);
}

#[test]
fn sessions_merge_when_a_record_bridges_them() {
    // Gap 100: [0,100) and [150,250) are separate until 90 bridges them into [0,250).
    let records = vec![('a', 0), ('b', 40), ('a', 150), ('a', 90), ('a', 1000)];
    let (out, late) = run(records, 200, Session::event_time(Duration::from_millis(100)), 0);
    assert_eq!(out, vec![(0, 250, 3), (40, 140, 1), (1000, 1100, 1)]);
    assert!(late.is_empty());
}

#[test]
fn late_session_records_are_late() {
    let records = vec![('a', 0), ('a', 5000), ('a', 10)];
    let (out, late) = run(records, 0, Session::event_time(Duration::from_millis(100)), 0);
    assert_eq!(out, vec![(0, 100, 1), (5000, 5100, 1)]);
    assert_eq!(late, vec!['a']);
}

#[test]
fn global_windows_fire_at_end_of_input() {
    let (out, _) = run(vec![('a', 1), ('a', 10_000_000), ('b', 5)], 0, Global::new(), 0);
    assert_eq!(out, vec![(i64::MIN, i64::MAX, 1), (i64::MIN, i64::MAX, 2)]);
}

#[test]
fn processing_time_windows_count_everything_once() {
    let mut h = OperatorHarness::new(|input: DataStream<u32>| {
        input
            .key_by(|k: &u32| *k)
            .window(Tumbling::processing_time(Duration::from_secs(3600)))
            .aggregate("count", Count)
    })
    .unwrap();
    (0..1000).try_for_each(|i| h.process(i % 7)).unwrap();
    h.end_input().unwrap();
    assert_eq!(h.output().iter().map(|w| w.value).sum::<u64>(), 1000);
}

#[test]
fn assigners_compute_windows() {
    let mut w = Vec::new();
    Tumbling::event_time(Duration::from_millis(10)).assign(25, &mut w);
    assert_eq!(w, vec![TimeWindow { start: 20, end: 30 }]);
    Sliding::event_time(Duration::from_millis(10), Duration::from_millis(5)).assign(7, &mut w);
    assert_eq!(w, vec![TimeWindow { start: 5, end: 15 }, TimeWindow { start: 0, end: 10 }]);
    assert!(TimeWindow { start: 0, end: 10 }.intersects(&TimeWindow { start: 10, end: 20 }));
    assert!(Tumbling::event_time(Duration::ZERO).validate().is_err());
}

/// Emits timestamps on subtask 0 then waits forever; subtask 1 never emits anything.
#[derive(Clone)]
struct HalfIdle {
    index: usize,
    sent: bool,
}

impl crate::api::source::Source for HalfIdle {
    type Out = char;
    fn open(&mut self, ctx: &crate::api::operator::OpenContext<'_>) -> crate::Result<()> {
        self.index = ctx.subtask().index;
        Ok(())
    }
    fn poll_next(
        &mut self,
        ctx: &mut crate::api::source::SourceContext<'_, char>,
    ) -> crate::Result<crate::runtime::source_head::SourcePoll> {
        if self.index == 0 && !self.sent {
            self.sent = true;
            for ts in [100, 200, 1500] {
                ctx.emit_at('a', ts);
            }
        }
        Ok(crate::runtime::source_head::SourcePoll::Pending(Duration::from_millis(10)))
    }
    fn watermark_strategy(&self) -> WatermarkStrategy<char> {
        WatermarkStrategy::monotonous().with_idleness(Duration::from_millis(50))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_source_subtask_does_not_hold_the_watermark_back() {
    use crate::prelude::{JobSubmission, MiniClusterConfig};
    let (sink, results) = crate::api::connectors::CollectSink::new();
    let job = JobSubmission::new("idle", 2, move |env, _| {
        env.source("half-idle", HalfIdle { index: 0, sent: false })
            .key_by(|c: &char| *c)
            .window(Tumbling::event_time(Duration::from_secs(1)))
            .aggregate("count", Count)
            .sink("out", sink.clone());
        Ok(())
    });
    let cluster = MiniCluster::start(MiniClusterConfig::default()).await.unwrap();
    let id = cluster.submit(&job).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while results.is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "the window never fired: the idle subtask held the watermark");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let fired = results.take();
    assert_eq!(fired.len(), 1);
    assert_eq!((fired[0].window.start, fired[0].value), (0, 2));
    cluster.cancel(id).await.unwrap();
    cluster.wait(id).await.unwrap();
    cluster.shutdown().await;
}

/// Describes each firing: the elements, how often this window fired (window state) and how
/// many windows of the key fired before (global state); clears the window state when dropped.
#[derive(Default)]
struct Describe {
    firings: Option<crate::api::window::WindowState<u32>>,
    windows: Option<crate::api::keyed::ValueState<u32>>,
    cleared: std::sync::Arc<std::sync::Mutex<Vec<(char, i64)>>>,
}

impl ProcessWindowFunction for Describe {
    type Key = char;
    type In = (char, i64);
    type Out = String;
    fn open(&mut self, ctx: &mut WindowOpenContext<'_, char>) -> Result<(), WeirError> {
        self.firings = Some(ctx.window_state("firings")?);
        self.windows = Some(ctx.value_state("windows")?);
        Ok(())
    }
    fn process(
        &mut self,
        key: &char,
        elements: Vec<(char, i64)>,
        ctx: &mut WindowContext<'_, char, String>,
    ) -> Result<(), WeirError> {
        let firing = ctx.window_state(self.firings.unwrap())?.get()?.unwrap_or(0) + 1;
        ctx.window_state(self.firings.unwrap())?.update(firing)?;
        let mut windows = ctx.global_state(self.windows.unwrap());
        let seen = windows.get()?.unwrap_or(0);
        if firing == 1 {
            windows.update(seen + 1)?;
        }
        let times: Vec<i64> = elements.iter().map(|e| e.1).collect();
        let w = ctx.window();
        ctx.emit(format!("{key} [{}, {}) #{firing} after {seen}: {times:?}", w.start, w.end));
        Ok(())
    }
    fn clear(&mut self, ctx: &mut WindowContext<'_, char, String>) -> Result<(), WeirError> {
        ctx.window_state(self.firings.unwrap())?.clear()?;
        self.cleared.lock().unwrap().push((*ctx.key(), ctx.window().start));
        Ok(())
    }
}

#[test]
fn a_process_window_function_sees_every_element_with_window_and_global_state() {
    let cleared = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = cleared.clone();
    let mut h = HarnessConfig::new()
        .build(move |input: DataStream<(char, i64)>| {
            let cleared = seen.clone();
            input
                .key_by(|r: &(char, i64)| r.0)
                .window(Tumbling::event_time(Duration::from_secs(1)))
                .allowed_lateness(Duration::from_millis(500))
                .process("describe", move || Describe { cleared: cleared.clone(), ..Default::default() })
        })
        .unwrap();
    for (key, ts) in [('a', 100), ('a', 300), ('b', 200), ('a', 1_100)] {
        h.process_at((key, ts), ts).unwrap();
    }
    h.process_watermark(1_000).unwrap();
    assert_eq!(h.take_output(), ["a [0, 1000) #1 after 0: [100, 300]", "b [0, 1000) #1 after 0: [200]"]);
    // Late within the allowed lateness: the window fires again, with every element.
    h.process_at(('a', 900), 900).unwrap();
    assert_eq!(h.take_output(), ["a [0, 1000) #2 after 1: [100, 300, 900]"]);
    let snapshot = h.snapshot().unwrap();
    h.process_watermark(1_499).unwrap();
    assert_eq!(cleared.lock().unwrap().clone(), [('a', 0), ('b', 0)]);
    h.process_watermark(2_000).unwrap();
    assert_eq!(h.take_output(), ["a [1000, 2000) #1 after 1: [1100]"]);

    // Restored at parallelism 2, each subtask fires its keys' windows with their state.
    let mut out = Vec::new();
    for index in 0..2 {
        let config = HarnessConfig::new().subtask(index, 2).restore(vec![snapshot.clone()]);
        let owns_a = config.owns(&'a');
        let mut h = config
            .build(|input: DataStream<(char, i64)>| {
                input
                    .key_by(|r: &(char, i64)| r.0)
                    .window(Tumbling::event_time(Duration::from_secs(1)))
                    .allowed_lateness(Duration::from_millis(500))
                    .process("describe", Describe::default)
            })
            .unwrap();
        if owns_a {
            h.process_at(('a', 950), 950).unwrap();
        }
        h.process_watermark(2_000).unwrap();
        out.extend(h.take_output());
    }
    out.sort();
    assert_eq!(out, ["a [0, 1000) #3 after 1: [100, 300, 900, 950]", "a [1000, 2000) #1 after 1: [1100]"]);
}

#[test]
fn sessions_hand_a_process_function_their_elements_and_refuse_window_state() {
    struct Elements;
    impl ProcessWindowFunction for Elements {
        type Key = char;
        type In = (char, i64);
        type Out = (i64, i64, Vec<i64>);
        fn process(
            &mut self,
            _: &char,
            elements: Vec<(char, i64)>,
            ctx: &mut WindowContext<'_, char, Self::Out>,
        ) -> Result<(), WeirError> {
            let w = ctx.window();
            ctx.emit((w.start, w.end, elements.iter().map(|e| e.1).collect()));
            Ok(())
        }
    }
    let mut h = OperatorHarness::new(|input: DataStream<(char, i64)>| {
        input
            .key_by(|r: &(char, i64)| r.0)
            .window(Session::event_time(Duration::from_millis(150)))
            .process("s", || Elements)
    })
    .unwrap();
    for ts in [0, 50, 300, 180, 500] {
        h.process_at(('a', ts), ts).unwrap();
    }
    h.end_input().unwrap();
    // 180 bridged [0, 200) and [300, 450): one session of both, by start, then 180.
    assert_eq!(h.output(), [(0, 450, vec![0, 50, 300, 180]), (500, 650, vec![500])]);

    let mut h = OperatorHarness::new(|input: DataStream<(char, i64)>| {
        input
            .key_by(|r: &(char, i64)| r.0)
            .window(Session::event_time(Duration::from_millis(100)))
            .process("s", Describe::default)
    })
    .unwrap();
    h.process_at(('a', 0), 0).unwrap();
    let err = h.end_input().unwrap_err().to_string();
    assert!(err.contains("session windows merge: they have no per-window state"), "{err}");
}

#[test]
fn sessions_of_records_in_any_order_equal_a_direct_computation() {
    // Three keys, timestamps in [0, 20000), fed in a scrambled order with the watermark far
    // behind: many sessions per key at once, merged in every pattern.
    let mut x: u64 = 0x1234_5678_9ABC_DEF1;
    let mut next = |below: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % below
    };
    let records: Vec<(char, i64)> =
        (0..3_000).map(|_| (['a', 'b', 'c'][next(3) as usize], next(20_000) as i64)).collect();
    let gap = 40;
    let dir = std::env::temp_dir().join(format!("weir-sessions-{}", std::process::id()));
    let backends = [StateBackend::Memory, StateBackend::RocksDb { dir: Some(dir.clone()) }];
    let outputs: Vec<Vec<(char, i64, i64, u64)>> = backends
        .into_iter()
        .map(|backend| {
            let mut h = HarnessConfig::new()
                .state_backend(backend)
                .build(move |input: DataStream<(char, i64)>| {
                    input
                        .key_by(|r: &(char, i64)| r.0)
                        .window(Session::event_time(Duration::from_millis(gap)))
                        .aggregate("n", Count)
                })
                .unwrap();
            for &r in &records {
                h.process_at(r, r.1).unwrap();
            }
            h.end_input().unwrap();
            let mut out: Vec<_> =
                h.output().into_iter().map(|w| (w.key, w.window.start, w.window.end, w.value)).collect();
            out.sort();
            out
        })
        .collect();
    let _ = std::fs::remove_dir_all(&dir);
    let mut expected = Vec::new();
    for key in ['a', 'b', 'c'] {
        let mut times: Vec<i64> = records.iter().filter(|r| r.0 == key).map(|r| r.1).collect();
        times.sort();
        let (mut start, mut last, mut n) = (times[0], times[0], 0u64);
        for t in times {
            if t > last + gap as i64 {
                expected.push((key, start, last + gap as i64, n));
                (start, n) = (t, 0);
            }
            (last, n) = (t, n + 1);
        }
        expected.push((key, start, last + gap as i64, n));
    }
    assert_eq!(outputs[0], expected, "memory");
    assert_eq!(outputs[1], expected, "rocksdb");
}

/// Count windows of 3 per key, run at parallelism 2 up to a snapshot, then restored at 3:
/// each key's partial count (the trigger's window state) and its records go on in the subtask
/// that owns the key now, and every window has exactly 3 records.
#[test]
fn count_windows_keep_their_counts_across_a_rescale() {
    type Sums = DataStream<Windowed<u32, i64>>;
    let pipeline = |input: DataStream<(u32, i64)>| -> Sums {
        input
            .key_by(|r: &(u32, i64)| r.0)
            .count_window(3)
            .aggregate("sum", crate::api::functions::Sum::of(|r: &(u32, i64)| r.1))
    };
    let keys = 0..20u32;
    let mut snapshots = Vec::new();
    for index in 0..2 {
        let config = HarnessConfig::new().subtask(index, 2);
        let mut h = config.clone().build(pipeline).unwrap();
        for key in keys.clone().filter(|k| config.owns(k)) {
            // Four records: one window fires, one record waits.
            for v in 1..=4 {
                h.process((key, v)).unwrap();
            }
        }
        assert_eq!(h.take_output().len(), keys.clone().filter(|k| config.owns(k)).count());
        snapshots.push(h.snapshot().unwrap());
    }
    let mut sums = Vec::new();
    for index in 0..3 {
        let config = HarnessConfig::new().subtask(index, 3).restore(snapshots.clone());
        let mut h = config.clone().build(pipeline).unwrap();
        for key in keys.clone().filter(|k| config.owns(k)) {
            h.process((key, 10)).unwrap();
            h.process((key, 100)).unwrap();
        }
        h.end_input().unwrap();
        sums.extend(h.take_output().into_iter().map(|w| (w.key, w.value)));
    }
    sums.sort();
    assert_eq!(sums, keys.map(|k| (k, 4 + 10 + 100)).collect::<Vec<_>>());
}

#[test]
fn sliding_count_windows_fire_every_slide_over_the_last_size_records() {
    let mut h = HarnessConfig::new()
        .build(|input: DataStream<u32>| {
            input.key_by(|_: &u32| 0u8).count_window_sliding(3, 2).process("all", || Collect)
        })
        .unwrap();
    for v in 1..=7 {
        h.process(v).unwrap();
    }
    h.end_input().unwrap();
    assert_eq!(h.output(), [vec![1, 2], vec![2, 3, 4], vec![4, 5, 6]]);
}

/// Hands each firing's records on as one vector.
struct Collect;

impl ProcessWindowFunction for Collect {
    type Key = u8;
    type In = u32;
    type Out = Vec<u32>;
    fn process(
        &mut self,
        _: &u8,
        elements: Vec<u32>,
        ctx: &mut WindowContext<'_, u8, Vec<u32>>,
    ) -> Result<(), WeirError> {
        ctx.emit(elements);
        Ok(())
    }
}

/// Sessions with a count trigger: the counts of two sessions add up when a record bridges
/// them (the trigger's `on_merge`), so the bridging record is the third and fires.
#[test]
fn a_count_trigger_adds_up_the_counts_of_merged_sessions() {
    let mut h = HarnessConfig::new()
        .build(|input: DataStream<char>| {
            input
                .key_by(|c: &char| *c)
                .window(Session::event_time(Duration::from_millis(100)))
                .trigger(CountTrigger::of(3))
                .aggregate("count", Count)
        })
        .unwrap();
    h.process_at('a', 0).unwrap();
    h.process_at('a', 180).unwrap();
    assert!(h.output().is_empty());
    h.process_at('a', 90).unwrap();
    let out: Vec<_> = h.output().into_iter().map(|w| (w.window.start, w.window.end, w.value)).collect();
    assert_eq!(out, [(0, 280, 3)]);
    // The merged session's count restarted: three more records fire it again, with all six.
    for ts in [100, 110, 120] {
        h.process_at('a', ts).unwrap();
    }
    assert_eq!(h.output().last().map(|w| w.value), Some(6));
}

/// A purging event-time trigger with allowed lateness: the on-time firing drops the window's
/// contents, so a late record fires it with itself alone.
#[test]
fn a_purging_trigger_empties_the_window_after_each_firing() {
    let mut h = HarnessConfig::new()
        .build(|input: DataStream<char>| {
            input
                .key_by(|c: &char| *c)
                .window(Tumbling::event_time(Duration::from_secs(1)))
                .allowed_lateness(Duration::from_secs(1))
                .trigger(PurgingTrigger::of(DefaultTrigger::event_time()))
                .aggregate("count", Count)
        })
        .unwrap();
    h.process_at('a', 100).unwrap();
    h.process_at('a', 200).unwrap();
    h.process_watermark(1_200).unwrap();
    h.process_at('a', 300).unwrap();
    h.process_watermark(2_500).unwrap();
    h.process_at('a', 400).unwrap(); // past the allowed lateness: late
    let counts: Vec<u64> = h.output().into_iter().map(|w| w.value).collect();
    assert_eq!(counts, [2, 1]);
    assert!(h.timers().is_empty(), "the window was dropped with its timers: {:?}", h.timers());
}

/// A continuous processing-time trigger fires every interval of the clock while the window
/// holds records, aligned to multiples of the interval.
#[test]
fn a_continuous_processing_time_trigger_fires_on_the_clock() {
    let mut h = HarnessConfig::new()
        .processing_time(1_050)
        .build(|input: DataStream<char>| {
            input
                .key_by(|c: &char| *c)
                .window(Tumbling::event_time(Duration::from_secs(10)))
                .trigger(ContinuousProcessingTimeTrigger::of(Duration::from_millis(100)))
                .aggregate("count", Count)
        })
        .unwrap();
    h.process_at('a', 5).unwrap();
    h.set_processing_time(1_099).unwrap();
    assert!(h.output().is_empty());
    h.set_processing_time(1_100).unwrap();
    h.process_at('a', 6).unwrap();
    h.set_processing_time(1_200).unwrap();
    let counts: Vec<u64> = h.output().into_iter().map(|w| w.value).collect();
    assert_eq!(counts, [1, 2]);
}

/// Evictors run at each firing, before or after the function, and what they leave is the
/// window's contents from then on.
#[test]
fn evictors_drop_records_before_or_after_the_function() {
    let run = |evictor: CountEvictor| {
        let mut h = HarnessConfig::new()
            .build(move |input: DataStream<u32>| {
                input
                    .key_by(|_: &u32| 0u8)
                    .window(Global::new())
                    .trigger(CountTrigger::of(2))
                    .evictor(evictor)
                    .process("all", || Collect)
            })
            .unwrap();
        for v in 1..=6 {
            h.process(v).unwrap();
        }
        h.output()
    };
    // Keep the last 3 before the function: [1,2], [2,3,4], [4,5,6].
    assert_eq!(run(CountEvictor::of(3)), [vec![1, 2], vec![2, 3, 4], vec![4, 5, 6]]);
    // Keep the last 1 before it: the function sees one record.
    assert_eq!(run(CountEvictor::of(1)), [vec![2], vec![4], vec![6]]);
    // Keep the last 1 after it: the function sees what was kept plus the new records.
    assert_eq!(run(CountEvictor::of_after(1)), [vec![1, 2], vec![2, 3, 4], vec![4, 5, 6]]);
    let mut h = HarnessConfig::new()
        .build(|input: DataStream<u32>| {
            input
                .key_by(|_: &u32| 0u8)
                .window(Tumbling::event_time(Duration::from_secs(10)))
                .trigger(CountTrigger::of(3))
                .evictor(TimeEvictor::of(Duration::from_millis(100)))
                .process("all", || Collect)
        })
        .unwrap();
    for (v, ts) in [(1, 0), (2, 150), (3, 200), (4, 210), (5, 260), (6, 400)] {
        h.process_at(v, ts).unwrap();
    }
    // At 3 records the newest is 200: 0 is evicted; at 6 (newest 400) only 6 is within 100.
    assert_eq!(h.output(), [vec![2, 3], vec![6]]);
}

/// A trigger that cannot merge is refused on session windows, naming why.
#[test]
fn session_windows_refuse_a_trigger_that_cannot_merge() {
    #[derive(Clone)]
    struct Never;
    impl Trigger<char> for Never {
        fn on_element<K: Key>(
            &mut self,
            _: &char,
            _: Timestamp,
            _: TimeWindow,
            _: &mut TriggerContext<'_, K>,
        ) -> crate::base::error::Result<TriggerResult> {
            Ok(TriggerResult::Continue)
        }
        fn on_event_time<K: Key>(
            &mut self,
            _: Timestamp,
            _: TimeWindow,
            _: &mut TriggerContext<'_, K>,
        ) -> crate::base::error::Result<TriggerResult> {
            Ok(TriggerResult::Continue)
        }
        fn on_processing_time<K: Key>(
            &mut self,
            _: Timestamp,
            _: TimeWindow,
            _: &mut TriggerContext<'_, K>,
        ) -> crate::base::error::Result<TriggerResult> {
            Ok(TriggerResult::Continue)
        }
        fn clear<K: Key>(&mut self, _: TimeWindow, _: &mut TriggerContext<'_, K>) -> crate::base::error::Result<()> {
            Ok(())
        }
    }
    let built = HarnessConfig::new().build(|input: DataStream<char>| {
        input
            .key_by(|c: &char| *c)
            .window(Session::event_time(Duration::from_millis(10)))
            .trigger(Never)
            .aggregate("n", Count)
    });
    let err = built.err().expect("refused").to_string();
    assert!(err.contains("trigger must be able to merge"), "{err}");
}
