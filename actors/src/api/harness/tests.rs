//! The harness itself: timestamps and watermarks through a chain, processing time, side
//! outputs, snapshots restored at the same and at another parallelism, and bad use.

use std::time::Duration;

use crate::prelude::*;

/// Counts each key's records in keyed state and emits `(key, count)`; remembers the highest
/// count it emitted in operator state; at each record registers an event-time timer at the
/// record's timestamp + 100, which emits `(key, 0)` when it fires.
#[derive(Default)]
struct CountAndRemind {
    count: Option<ValueState<u64>>,
}

impl KeyedProcessFunction for CountAndRemind {
    type Key = u32;
    type In = u32;
    type Out = (u32, u64);

    fn open(&mut self, ctx: &mut KeyedOpenContext<'_, u32>) -> Result<()> {
        self.count = Some(ctx.value_state("count")?);
        Ok(())
    }

    fn process(&mut self, key: u32, ctx: &mut KeyedContext<'_, u32, (u32, u64)>) -> Result<()> {
        let state = self.count.expect("opened");
        let count = ctx.value(state).get()?.unwrap_or(0) + 1;
        ctx.value(state).update(count)?;
        ctx.emit((key, count));
        if let Some(ts) = ctx.timestamp() {
            ctx.register_event_time_timer(ts + 100);
        }
        Ok(())
    }

    fn on_timer(
        &mut self,
        _ts: Timestamp,
        _domain: TimeDomain,
        ctx: &mut KeyedContext<'_, u32, (u32, u64)>,
    ) -> Result<()> {
        let key = *ctx.key();
        ctx.emit((key, 0));
        Ok(())
    }
}

fn counting(input: DataStream<u32>) -> DataStream<(u32, u64)> {
    input.key_by(|k: &u32| *k).process("count", CountAndRemind::default)
}

#[test]
fn a_chain_keeps_timestamps_and_forwards_watermarks() {
    let mut h = OperatorHarness::new(|input: DataStream<i32>| {
        input.map("double", |x: i32| x * 2).filter("positive", |x: &i32| *x > 0)
    })
    .unwrap();
    h.process_at(1, 10).unwrap();
    h.process_at(-1, 20).unwrap();
    h.process(3).unwrap();
    h.process_watermark(15).unwrap();
    h.process_watermark(12).unwrap(); // behind: ignored
    assert_eq!(h.output_with_timestamps(), vec![(2, Some(10)), (6, None)]);
    assert_eq!(h.watermarks(), vec![15]);
    assert_eq!(h.current_watermark(), 15);
}

#[test]
fn event_time_timers_are_listed_and_fire_with_the_watermark() {
    let mut h = OperatorHarness::new(counting).unwrap();
    h.process_at(7, 1_000).unwrap();
    h.process_at(8, 1_050).unwrap();
    h.process_at(7, 1_000).unwrap(); // the same timer again: one timer
    assert_eq!(h.take_output(), vec![(7, 1), (8, 1), (7, 2)]);
    assert_eq!(h.timers(), vec![(TimeDomain::EventTime, 1_100), (TimeDomain::EventTime, 1_150)]);
    h.process_watermark(1_120).unwrap();
    assert_eq!(h.take_output(), vec![(7, 0)]);
    assert_eq!(h.timers(), vec![(TimeDomain::EventTime, 1_150)]);
    h.end_input().unwrap();
    assert_eq!(h.take_output(), vec![(8, 0)]);
    assert!(h.timers().is_empty());
}

#[test]
fn a_processing_time_window_fires_when_processing_time_reaches_its_end() {
    let mut h = HarnessConfig::new()
        .processing_time(100)
        .build(|input: DataStream<char>| {
            input
                .key_by(|c: &char| *c)
                .window(Tumbling::processing_time(Duration::from_secs(1)))
                .aggregate("count", Count)
        })
        .unwrap();
    for c in ['a', 'a', 'b'] {
        h.process(c).unwrap();
    }
    // As Flink's processing-time trigger: at the window's last millisecond, `end - 1`.
    h.set_processing_time(998).unwrap();
    assert!(h.output().is_empty());
    h.set_processing_time(999).unwrap();
    let mut fired: Vec<(char, u64)> = h.take_output().into_iter().map(|w| (w.key, w.value)).collect();
    fired.sort();
    assert_eq!(fired, vec![('a', 2), ('b', 1)]);
}

#[test]
fn side_outputs_are_read_by_name() {
    let mut h = HarnessConfig::new()
        .build_with_side_outputs(|input: DataStream<char>, side| {
            let (counts, late) = input
                .key_by(|c: &char| *c)
                .window(Tumbling::event_time(Duration::from_secs(1)))
                .aggregate_with_late("count", Count);
            side.add("late", &late);
            counts
        })
        .unwrap();
    h.process_at('a', 100).unwrap();
    h.process_watermark(1_500).unwrap();
    h.process_at('b', 200).unwrap(); // its window fired already
    assert_eq!(h.output().iter().map(|w| (w.key, w.value)).collect::<Vec<_>>(), vec![('a', 1)]);
    assert_eq!(h.side_output::<char>("late").unwrap(), vec!['b']);
    let err = h.side_output::<char>("early").unwrap_err().to_string();
    assert!(err.contains("no side output 'early'"), "{err}");
    let err = h.side_output::<u64>("late").unwrap_err().to_string();
    assert!(err.contains("'late' is not of u64"), "{err}");
}

#[test]
fn a_snapshot_restores_state_and_timers_into_a_fresh_instance() {
    let mut h = OperatorHarness::new(counting).unwrap();
    h.process_at(1, 500).unwrap();
    h.process_at(1, 600).unwrap();
    h.process_watermark(300).unwrap();
    let snapshot = h.snapshot().unwrap();
    h.process_at(1, 700).unwrap(); // after the snapshot: not in it

    let mut restored = HarnessConfig::new().restore(vec![snapshot]).build(counting).unwrap();
    assert_eq!(restored.current_watermark(), 300, "event time goes on from the snapshot");
    assert_eq!(restored.timers(), vec![(TimeDomain::EventTime, 600), (TimeDomain::EventTime, 700)]);
    restored.process_at(1, 650).unwrap();
    assert_eq!(restored.take_output(), vec![(1, 3)]);
    restored.end_input().unwrap();
    assert_eq!(restored.take_output(), vec![(1, 0), (1, 0), (1, 0)]);
}

/// Keys 0..40 counted by two subtasks, each fed the keys it owns, then restored into three
/// subtasks: every key's count and timer goes on in the subtask that owns it now.
#[test]
fn keyed_state_is_redistributed_when_the_parallelism_changes() {
    let keys = 0..40u32;
    let mut snapshots = Vec::new();
    for index in 0..2 {
        let config = HarnessConfig::new().subtask(index, 2);
        let mut h = config.clone().build(counting).unwrap();
        for key in keys.clone().filter(|k| config.owns(k)) {
            h.process_at(key, 1_000 + i64::from(key)).unwrap();
            h.process_at(key, 1_000 + i64::from(key)).unwrap();
        }
        snapshots.push(h.snapshot().unwrap());
    }
    let mut seen = Vec::new();
    let mut timers = 0;
    for index in 0..3 {
        let config = HarnessConfig::new().subtask(index, 3).restore(snapshots.clone());
        let mut h = config.clone().build(counting).unwrap();
        timers += h.timers().len();
        for key in keys.clone().filter(|k| config.owns(k)) {
            h.process(key).unwrap();
        }
        seen.extend(h.take_output());
    }
    seen.sort();
    assert_eq!(seen, keys.clone().map(|k| (k, 3)).collect::<Vec<_>>());
    assert_eq!(timers, 40, "each key's timer is restored once, by its new owner");
}

/// Keeps the records it saw in operator (non-keyed) state.
#[derive(Default)]
struct Remember {
    seen: Vec<u32>,
}

impl Operator for Remember {
    type In = u32;
    type Out = usize;

    fn process(&mut self, value: u32, ctx: &mut Context<'_, usize>) -> Result<()> {
        self.seen.push(value);
        ctx.emit(self.seen.len());
        Ok(())
    }

    fn snapshot_state(&mut self, _checkpoint_id: u64) -> Result<Option<Vec<u8>>> {
        Ok(Some(postcard::to_allocvec(&self.seen).expect("encodes")))
    }

    fn restore_state(&mut self, states: Vec<Vec<u8>>) -> Result<()> {
        for state in states {
            self.seen.extend(postcard::from_bytes::<Vec<u32>>(&state).expect("decodes"));
        }
        Ok(())
    }
}

#[test]
fn operator_state_is_the_subtasks_own_at_the_same_parallelism_and_a_union_at_another() {
    let remember = |input: DataStream<u32>| input.operator("remember", Remember::default);
    let mut snapshots = Vec::new();
    for (index, values) in [vec![1, 2], vec![3]].into_iter().enumerate() {
        let mut h = HarnessConfig::new().subtask(index, 2).build(remember).unwrap();
        values.into_iter().try_for_each(|v| h.process(v)).unwrap();
        snapshots.push(h.snapshot().unwrap());
    }
    let mut same = HarnessConfig::new().subtask(1, 2).restore(snapshots.clone()).build(remember).unwrap();
    same.process(9).unwrap();
    assert_eq!(same.output(), vec![2], "subtask 1 had 1 record, now 2");
    let mut other = HarnessConfig::new().subtask(0, 1).restore(snapshots).build(remember).unwrap();
    other.process(9).unwrap();
    assert_eq!(other.output(), vec![4], "the union: 3 records, now 4");
}

/// Keeps the records it saw in a split list and a union list.
#[derive(Default)]
struct Lists {
    split: Vec<u32>,
    union: Vec<u32>,
}

impl Operator for Lists {
    type In = u32;
    type Out = (Vec<u32>, Vec<u32>);

    fn open(&mut self, ctx: &mut OpenContext<'_>) -> Result<()> {
        self.split = ctx.list_state("split")?;
        self.union = ctx.union_list_state("union")?;
        Ok(())
    }

    /// Any record: emits what the subtask holds.
    fn process(&mut self, value: u32, ctx: &mut Context<'_, (Vec<u32>, Vec<u32>)>) -> Result<()> {
        if value > 0 {
            self.split.push(value);
            self.union.push(value);
        }
        ctx.emit((self.split.clone(), self.union.clone()));
        Ok(())
    }

    fn snapshot_lists(&mut self, _: u64, lists: &mut OperatorLists) -> Result<()> {
        lists.split("split", &self.split)?;
        lists.union("union", &self.union)
    }
}

/// Split lists are cut into even contiguous shares of every subtask's elements when the
/// parallelism changes; union lists go whole to every subtask; at the same parallelism each
/// subtask gets its own back.
#[test]
fn operator_list_state_is_split_evenly_or_united_when_the_parallelism_changes() {
    let lists = |input: DataStream<u32>| input.operator("lists", Lists::default);
    let mut snapshots = Vec::new();
    for (index, values) in [vec![1, 2, 3, 4], vec![5, 6, 7]].into_iter().enumerate() {
        let mut h = HarnessConfig::new().subtask(index, 2).build(lists).unwrap();
        values.into_iter().try_for_each(|v| h.process(v)).unwrap();
        snapshots.push(h.snapshot().unwrap());
    }
    let held = |index, parallelism| {
        let config = HarnessConfig::new().subtask(index, parallelism).restore(snapshots.clone());
        let mut h = config.build(lists).unwrap();
        h.process(0).unwrap();
        h.output().pop().unwrap()
    };
    assert_eq!(held(1, 2), (vec![5, 6, 7], vec![5, 6, 7]));
    let all = vec![1, 2, 3, 4, 5, 6, 7];
    assert_eq!(held(0, 3), (vec![1, 2, 3], all.clone()));
    assert_eq!(held(1, 3), (vec![4, 5], all.clone()));
    assert_eq!(held(2, 3), (vec![6, 7], all.clone()));
    assert_eq!(held(0, 1), (all.clone(), all));

    // Read as the other kind: an error naming the state.
    struct Misread;
    impl Operator for Misread {
        type In = u32;
        type Out = u32;
        fn open(&mut self, ctx: &mut OpenContext<'_>) -> Result<()> {
            ctx.union_list_state::<u32>("split").map(drop)
        }
        fn process(&mut self, v: u32, ctx: &mut Context<'_, u32>) -> Result<()> {
            ctx.emit(v);
            Ok(())
        }
    }
    let err = HarnessConfig::new()
        .restore(vec![snapshots[0].clone()])
        .subtask(0, 2)
        .build(|input: DataStream<u32>| input.operator("lists", || Misread))
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("list state 'split' was checkpointed as a split list and is read as a union one"), "{err}");
}

#[test]
fn bad_use_is_an_error_naming_what_is_wrong() {
    let err = HarnessConfig::new().subtask(2, 2).build(counting).err().unwrap().to_string();
    assert!(err.contains("subtask 2 of parallelism 2"), "{err}");

    let mut h = HarnessConfig::new().subtask(0, 2).build(counting).unwrap();
    let snapshot = h.snapshot().unwrap();
    let err = HarnessConfig::new()
        .restore(vec![snapshot.clone(), snapshot.clone()])
        .build(counting)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("two harness snapshots of subtask 0"), "{err}");
    let err =
        HarnessConfig::new().max_parallelism(64).restore(vec![snapshot]).build(counting).err().unwrap().to_string();
    assert!(err.contains("max parallelism"), "{err}");

    // A key another subtask owns: its state is not here.
    let config = HarnessConfig::new().subtask(0, 2);
    let foreign = (0..100u32).find(|k| !config.owns(k)).unwrap();
    let err = h.process(foreign).unwrap_err().to_string();
    assert!(err.contains("operator 'count' failed") && err.contains("key group"), "{err}");

    let union = OperatorHarness::new(|input: DataStream<u32>| {
        let doubled = input.map("double", |x: u32| x * 2);
        input.union(&[doubled])
    });
    assert!(union.err().unwrap().to_string().contains("one chain from its input"));
}
