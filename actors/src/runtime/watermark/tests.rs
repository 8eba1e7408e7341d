//! Watermark strategies mid-stream (on the operator harness) and at a source (on a
//! MiniCluster): assigners, bounded and monotonous generators, custom punctuated and periodic
//! generators, the auto-watermark interval, idleness, and upstream watermarks dropped.

use std::time::Duration;

use crate::prelude::*;

/// A reading: sensor and event time (ms).
type Reading = (char, i64);

fn by_time() -> WatermarkStrategy<Reading> {
    WatermarkStrategy::bounded_out_of_orderness(Duration::from_millis(100))
        .with_timestamp_assigner(|r: &Reading, _| r.1)
}

fn assigned(strategy: WatermarkStrategy<Reading>) -> impl FnOnce(DataStream<Reading>) -> DataStream<Reading> {
    move |input| input.assign_timestamps_and_watermarks(strategy)
}

#[test]
fn the_assigner_sets_timestamps_and_watermarks_follow_every_interval_of_processing_time() {
    let mut h =
        HarnessConfig::new().auto_watermark_interval(Duration::from_millis(50)).build(assigned(by_time())).unwrap();
    h.process(('a', 1_000)).unwrap();
    h.process_at(('a', 1_300), 7).unwrap(); // the carried timestamp is replaced
    h.process(('b', 1_200)).unwrap();
    assert_eq!(
        h.output_with_timestamps().iter().map(|(_, ts)| *ts).collect::<Vec<_>>(),
        [Some(1_000), Some(1_300), Some(1_200)]
    );
    assert!(h.watermarks().is_empty(), "bounded out-of-orderness emits periodically, not per record");
    h.set_processing_time(49).unwrap();
    assert!(h.watermarks().is_empty());
    h.set_processing_time(50).unwrap();
    assert_eq!(h.watermarks(), vec![1_199], "the highest timestamp - 100 - 1");
    h.process(('a', 1_250)).unwrap(); // behind the highest: no new watermark
    h.set_processing_time(100).unwrap();
    assert_eq!(h.watermarks(), vec![1_199]);
}

#[test]
fn upstream_watermarks_are_dropped_but_the_final_one() {
    let mut h =
        OperatorHarness::new(assigned(WatermarkStrategy::monotonous().with_timestamp_assigner(|r: &Reading, _| r.1)))
            .unwrap();
    h.process(('a', 10)).unwrap();
    h.process_watermark(5_000).unwrap();
    assert!(h.watermarks().is_empty(), "an upstream watermark does not pass");
    h.end_input().unwrap();
    assert_eq!(h.watermarks(), vec![9, i64::MAX], "the last periodic emission, then the end of event time");
}

/// Emits a watermark at each reading of sensor `'w'` (a punctuation), at its time.
struct Punctuated;

impl WatermarkGenerator<Reading> for Punctuated {
    fn on_event(&mut self, event: &Reading, timestamp: Timestamp, output: &mut WatermarkOutput) {
        if event.0 == 'w' {
            output.emit_watermark(timestamp);
        }
    }
    fn on_periodic_emit(&mut self, _output: &mut WatermarkOutput) {}
}

#[test]
fn a_punctuated_generator_emits_at_once_and_operators_after_it_see_its_watermark() {
    let mut h = OperatorHarness::new(|input: DataStream<Reading>| {
        input
            .assign_timestamps_and_watermarks(
                WatermarkStrategy::for_generator(|| Punctuated).with_timestamp_assigner(|r: &Reading, _| r.1),
            )
            .operator("current", || CurrentWatermark)
    })
    .unwrap();
    h.process(('a', 10)).unwrap();
    h.process(('w', 20)).unwrap();
    h.process(('a', 30)).unwrap();
    h.process(('w', 15)).unwrap(); // behind the last: ignored
    assert_eq!(h.watermarks(), vec![20]);
    // What a chained operator saw as the current watermark at each record.
    assert_eq!(h.output(), vec![i64::MIN, i64::MIN, 20, 20]);
}

/// Emits the current watermark for each record.
struct CurrentWatermark;

impl Operator for CurrentWatermark {
    type In = Reading;
    type Out = i64;
    fn process(&mut self, _: Reading, ctx: &mut Context<'_, i64>) -> Result<()> {
        ctx.emit(ctx.current_watermark());
        Ok(())
    }
}

/// Emits the number of events seen so far as the watermark, periodically.
#[derive(Default)]
struct Counting(i64);

impl WatermarkGenerator<Reading> for Counting {
    fn on_event(&mut self, _event: &Reading, _timestamp: Timestamp, _output: &mut WatermarkOutput) {
        self.0 += 1;
    }
    fn on_periodic_emit(&mut self, output: &mut WatermarkOutput) {
        output.emit_watermark(self.0);
    }
}

#[test]
fn a_periodic_generator_emits_on_the_jobs_interval() {
    let mut h = HarnessConfig::new()
        .auto_watermark_interval(Duration::from_secs(1))
        .build(assigned(WatermarkStrategy::for_generator(Counting::default)))
        .unwrap();
    h.process(('a', 0)).unwrap();
    h.process(('a', 0)).unwrap();
    h.set_processing_time(999).unwrap();
    assert!(h.watermarks().is_empty());
    h.set_processing_time(1_000).unwrap();
    h.process(('a', 0)).unwrap();
    h.set_processing_time(2_000).unwrap();
    assert_eq!(h.watermarks(), vec![2, 3]);
}

/// Idleness is measured from the periodic check that last saw a new record (as Flink's
/// `IdlenessTimer`), so the harness moves time one interval at a time, as a subtask's loop does.
#[test]
fn a_stream_without_records_for_the_idle_timeout_is_idle_until_its_next_record() {
    let strategy = by_time().with_idleness(Duration::from_millis(500));
    let mut h =
        HarnessConfig::new().auto_watermark_interval(Duration::from_millis(100)).build(assigned(strategy)).unwrap();
    let mut now = 0;
    let mut tick = |h: &mut OperatorHarness<Reading, Reading>| {
        now += 100;
        h.set_processing_time(now).unwrap();
    };
    h.process(('a', 1_000)).unwrap();
    (0..5).for_each(|_| tick(&mut h)); // 500: the record was seen at the check at 100
    assert!(!h.is_idle());
    tick(&mut h); // 600: 500 ms since
    assert!(h.is_idle(), "500 ms without a record");
    h.process(('a', 2_000)).unwrap();
    assert!(!h.is_idle(), "a record makes it active again");
    tick(&mut h);
    assert_eq!(h.watermarks(), vec![899, 1_899]);
}

#[test]
fn a_zero_interval_is_refused() {
    let err = MiniCluster::collect(|env| {
        env.set_auto_watermark_interval(Duration::ZERO);
        env.from_vec("n", vec![1u32])
    })
    .unwrap_err()
    .to_string();
    assert!(err.contains("auto-watermark interval"), "{err}");
}

/// At a source, a custom generator sees each record and emits after the poll: the reading at
/// 500 comes after the punctuation at 1000 has closed its window, so it is late (without the
/// generator, no watermark would come before the end of input and nothing would be late).
#[test]
fn a_custom_generator_at_a_source_drives_event_time() {
    let readings = vec![(('a', 100), 100), (('a', 900), 900), (('w', 1_000), 1_000), (('a', 500), 500)];
    let (late_sink, late) = CollectSink::new();
    let mut fired = MiniCluster::collect(move |env| {
        let strategy = WatermarkStrategy::for_generator(|| Punctuated);
        let (windows, late_readings) = env
            .source("readings", VecSource::timestamped(readings.clone(), strategy))
            .key_by(|r: &Reading| r.0)
            .window(Tumbling::event_time(Duration::from_secs(1)))
            .aggregate_with_late("count", Count);
        late_readings.sink("late", late_sink.clone());
        windows.map("start", |w: Windowed<char, u64>| (w.key, w.window.start, w.value))
    })
    .unwrap();
    fired.sort();
    assert_eq!(fired, vec![('a', 0, 2), ('w', 1_000, 1)]);
    assert_eq!(late.take(), vec![('a', 500)]);
}
