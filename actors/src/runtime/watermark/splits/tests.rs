//! Per-split watermarks, on the source harness (which emits after each poll as a subtask's
//! loop does): the minimum over the splits, idle splits left out, finished splits forgotten,
//! never backwards, and a subtask idle when every split is.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::prelude::*;

/// A record: its split's name and event time (ms).
type Reading = (char, Timestamp);

/// What a scripted source does in its next poll.
#[derive(Debug, Clone, Copy)]
enum Step {
    /// Adds a split, named by a char.
    Add(char),
    /// Emits a record of a split at a time.
    Emit(char, Timestamp),
    /// Emits a record at a time, without a split.
    Plain(char, Timestamp),
    /// Finishes a split.
    Finish(char),
}

/// Runs the steps the test queued since its last poll.
struct Scripted {
    strategy: WatermarkStrategy<Reading>,
    steps: Arc<Mutex<VecDeque<Step>>>,
    splits: HashMap<char, SplitId>,
}

impl Source for Scripted {
    type Out = Reading;

    fn poll_next(&mut self, ctx: &mut SourceContext<'_, Reading>) -> Result<SourcePoll> {
        let steps: Vec<Step> = self.steps.lock().unwrap().drain(..).collect();
        for step in steps {
            match step {
                Step::Add(name) => {
                    let id = ctx.add_split();
                    self.splits.insert(name, id);
                }
                Step::Emit(name, ts) => ctx.emit_at_split(self.splits[&name], (name, ts), ts),
                Step::Plain(name, ts) => ctx.emit_at((name, ts), ts),
                Step::Finish(name) => ctx.finish_split(self.splits[&name]),
            }
        }
        Ok(SourcePoll::Pending(Duration::from_millis(1)))
    }

    fn watermark_strategy(&self) -> WatermarkStrategy<Reading> {
        self.strategy.clone()
    }
}

/// A harness of a scripted source under `strategy`, and its poll: runs `steps`, answers the
/// watermarks emitted so far.
struct Script {
    harness: SourceHarness<Scripted>,
    steps: Arc<Mutex<VecDeque<Step>>>,
}

impl Script {
    fn new(strategy: WatermarkStrategy<Reading>) -> Script {
        let steps = Arc::new(Mutex::new(VecDeque::new()));
        let source = Scripted { strategy, steps: steps.clone(), splits: HashMap::new() };
        Script { harness: SourceHarness::new(source).unwrap(), steps }
    }

    fn poll(&mut self, steps: &[Step]) -> Vec<Timestamp> {
        self.steps.lock().unwrap().extend(steps.iter().copied());
        self.harness.poll_at_most(usize::MAX).unwrap();
        self.harness.watermarks()
    }
}

/// No watermark emitted yet.
const NONE: [Timestamp; 0] = [];

fn monotonous() -> WatermarkStrategy<Reading> {
    WatermarkStrategy::monotonous()
}

use Step::{Add, Emit, Finish, Plain};

#[test]
fn the_watermark_is_the_minimum_over_the_splits() {
    let mut s = Script::new(monotonous());
    assert_eq!(s.poll(&[Add('a'), Add('b'), Emit('a', 1_000)]), NONE, "b has no watermark yet: it holds a's back");
    assert_eq!(s.poll(&[Emit('b', 100)]), [99]);
    assert_eq!(s.poll(&[Emit('b', 500), Emit('a', 2_000)]), [99, 499], "the slower split's");
    assert_eq!(s.poll(&[Emit('b', 3_000)]), [99, 499, 1_999], "now a is the slower");
    // Records carry their own timestamps, whatever the watermark.
    let times: Vec<_> = s.harness.take_output().into_iter().map(|(r, ts)| (r, ts.unwrap())).collect();
    assert!(times.iter().all(|((_, t), ts)| t == ts), "{times:?}");
}

#[test]
fn one_generator_per_split_assigns_timestamps_too() {
    // The carried timestamp is ignored: the assigner takes the reading's.
    let mut s = Script::new(monotonous().with_timestamp_assigner(|r: &Reading, _| r.1 * 10));
    s.poll(&[Add('a'), Add('b'), Emit('a', 100), Emit('b', 50)]);
    assert_eq!(s.harness.watermarks(), [499]);
    assert_eq!(s.harness.take_output().iter().map(|(_, ts)| ts.unwrap()).collect::<Vec<_>>(), [1_000, 500]);
}

#[test]
fn a_split_idle_for_the_timeout_is_left_out_until_its_next_record() {
    let mut s = Script::new(monotonous().with_idleness(Duration::from_millis(500)));
    assert_eq!(s.poll(&[Add('a'), Add('b'), Emit('a', 1_000)]), NONE);
    s.harness.set_processing_time(499);
    assert_eq!(s.poll(&[Emit('a', 1_100)]), NONE, "b is not idle yet");
    s.harness.set_processing_time(500);
    assert_eq!(s.poll(&[Emit('a', 1_200)]), [1_199], "b idle: a alone");
    assert!(!s.harness.is_idle(), "one split is active");
    // b's record makes it active again; its watermark is behind, and the subtask's stays.
    assert_eq!(s.poll(&[Emit('b', 800)]), [1_199]);
    assert_eq!(s.poll(&[Emit('a', 1_600)]), [1_199], "b holds it back again");
    assert_eq!(s.poll(&[Emit('b', 1_500)]), [1_199, 1_499]);
}

#[test]
fn without_an_idle_timeout_a_split_without_records_holds_the_watermark_back() {
    let mut s = Script::new(monotonous());
    s.poll(&[Add('a'), Add('b'), Emit('a', 1_000)]);
    s.harness.set_processing_time(3_600_000);
    assert_eq!(s.poll(&[Emit('a', 2_000)]), NONE, "as in Flink, only `with_idleness` lets it go");
}

#[test]
fn a_finished_split_no_longer_holds_the_watermark_back() {
    let mut s = Script::new(monotonous());
    assert_eq!(s.poll(&[Add('a'), Add('b'), Emit('a', 1_000), Emit('b', 100)]), [99]);
    assert_eq!(s.poll(&[Finish('b')]), [99, 999]);
    // Its id goes to the next split, which holds the watermark back as a new one.
    s.poll(&[Add('c'), Emit('a', 2_000)]);
    assert_eq!(s.harness.watermarks(), [99, 999]);
    assert_eq!(s.poll(&[Emit('c', 5_000)]), [99, 999, 1_999]);
    assert_eq!(s.poll(&[Finish('a')]), [99, 999, 1_999, 4_999]);
    // Finishing the last split (twice does no harm) leaves the watermark where it was.
    assert_eq!(s.poll(&[Finish('c'), Finish('c')]), [99, 999, 1_999, 4_999]);
    assert!(!s.harness.is_idle());
}

#[test]
fn a_split_added_later_with_older_timestamps_does_not_move_the_watermark_back() {
    let mut s = Script::new(monotonous());
    assert_eq!(s.poll(&[Add('a'), Emit('a', 1_000)]), [999]);
    assert_eq!(s.poll(&[Add('b'), Emit('b', 200), Emit('a', 1_500)]), [999], "never below 999");
    assert_eq!(s.poll(&[Emit('b', 2_000)]), [999, 1_499]);
    let wms = s.harness.watermarks();
    assert!(wms.windows(2).all(|w| w[0] < w[1]), "{wms:?}");
}

#[test]
fn every_split_idle_makes_the_subtask_idle_and_a_record_active_again() {
    let mut s = Script::new(monotonous().with_idleness(Duration::from_millis(500)));
    assert_eq!(s.poll(&[Add('a'), Add('b'), Emit('a', 1_000), Emit('b', 900)]), [899]);
    s.harness.set_processing_time(400);
    s.poll(&[]);
    assert!(!s.harness.is_idle());
    s.harness.set_processing_time(500);
    s.poll(&[]);
    assert!(s.harness.is_idle(), "no record in either split for 500 ms");
    s.poll(&[Emit('b', 2_000)]);
    assert!(!s.harness.is_idle(), "a record makes the subtask active");
    assert_eq!(s.harness.watermarks(), [899, 1_999], "b alone: a is still idle");
}

#[test]
fn a_strategy_without_watermarks_tracks_no_splits() {
    let mut s = Script::new(WatermarkStrategy::none().with_timestamp_assigner(|r: &Reading, _| r.1 + 1));
    assert_eq!(s.poll(&[Add('a'), Emit('a', 1_000), Plain('b', 5)]), NONE);
    assert_eq!(s.harness.take_output().iter().map(|(_, ts)| ts.unwrap()).collect::<Vec<_>>(), [1_001, 6]);
}

#[test]
fn a_source_without_splits_keeps_one_generator_for_all_its_records() {
    let mut s = Script::new(monotonous());
    assert_eq!(s.poll(&[Plain('a', 1_000), Plain('b', 100)]), [999], "the highest timestamp of all");
}

#[test]
fn once_splits_are_added_records_without_one_drive_no_watermark() {
    let mut s = Script::new(monotonous());
    assert_eq!(s.poll(&[Add('a'), Emit('a', 1_000), Plain('x', 9_000)]), [999]);
    // A record of a finished split counts as one without a split.
    assert_eq!(s.poll(&[Finish('a'), Emit('a', 9_500)]), [999]);
    assert_eq!(s.harness.take_output().len(), 3, "every record is emitted");
}
