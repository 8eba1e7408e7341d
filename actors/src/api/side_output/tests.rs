use std::time::Duration;

use crate::prelude::*;

/// Sends each key's records above 10 to a side output, and a key's count to another one when
/// its event-time timer fires.
struct Split {
    big: OutputTag<(char, u32)>,
    counts: OutputTag<String>,
    seen: Option<ValueState<u64>>,
}

impl KeyedProcessFunction for Split {
    type Key = char;
    type In = (char, u32);
    type Out = (char, u32);
    fn open(&mut self, ctx: &mut KeyedOpenContext<'_, char>) -> Result<()> {
        self.seen = Some(ctx.value_state("seen")?);
        Ok(())
    }
    fn process(&mut self, r: (char, u32), ctx: &mut KeyedContext<'_, char, (char, u32)>) -> Result<()> {
        let seen = self.seen.expect("opened");
        let n = ctx.value(seen).get()?.unwrap_or(0) + 1;
        ctx.value(seen).update(n)?;
        ctx.register_event_time_timer(1_000);
        if r.1 > 10 {
            ctx.output(&self.big, r)
        } else {
            ctx.emit(r)
        }
        Ok(())
    }
    fn on_timer(&mut self, ts: Timestamp, _: TimeDomain, ctx: &mut KeyedContext<'_, char, (char, u32)>) -> Result<()> {
        let n = ctx.value(self.seen.expect("opened")).get()?.unwrap_or(0);
        let key = *ctx.key();
        ctx.output(&self.counts, format!("{key}:{n}@{ts}"));
        Ok(())
    }
}

fn split(input: DataStream<(char, u32)>, side: &mut SideOutputs) -> DataStream<(char, u32)> {
    let (big, counts) = (OutputTag::new("big"), OutputTag::new("counts"));
    let (b, c) = (big.clone(), counts.clone());
    let main = input.key_by(|r: &(char, u32)| r.0).process("split", move || Split {
        big: b.clone(),
        counts: c.clone(),
        seen: None,
    });
    side.add("big", &main.get_side_output(&big));
    side.add("counts", &main.get_side_output(&counts).map("upper", |s: String| s.to_uppercase()));
    main
}

#[test]
fn a_keyed_function_sends_records_and_timer_results_to_side_outputs() {
    let mut h = HarnessConfig::new().build_with_side_outputs(split).unwrap();
    h.process_at(('a', 5), 10).unwrap();
    h.process_at(('a', 50), 20).unwrap();
    h.process_at(('b', 11), 30).unwrap();
    assert_eq!(h.output(), vec![('a', 5)]);
    assert_eq!(h.side_output::<(char, u32)>("big").unwrap(), vec![('a', 50), ('b', 11)]);
    assert!(h.side_output::<String>("counts").unwrap().is_empty());
    h.process_watermark(1_000).unwrap();
    assert_eq!(h.side_output::<String>("counts").unwrap(), vec!["A:2@1000".to_owned(), "B:1@1000".to_owned()]);
}

#[test]
fn side_outputs_survive_a_restore_at_another_parallelism() {
    let mut h = HarnessConfig::new().build_with_side_outputs(split).unwrap();
    h.process_at(('a', 1), 10).unwrap();
    h.process_at(('b', 1), 10).unwrap();
    let snapshot = h.snapshot().unwrap();
    let mut fired = Vec::new();
    for index in 0..2 {
        let config = HarnessConfig::new().subtask(index, 2).restore(vec![snapshot.clone()]);
        let mut h = config.build_with_side_outputs(split).unwrap();
        h.process_watermark(2_000).unwrap();
        fired.extend(h.side_output::<String>("counts").unwrap());
    }
    fired.sort();
    assert_eq!(fired, vec!["A:1@1000".to_owned(), "B:1@1000".to_owned()]);
}

#[test]
fn a_side_output_read_over_channels_gets_every_record_and_the_end_of_input() {
    let odd = OutputTag::<u64>::new("odd");
    let (odd_sink, odd_records) = CollectSink::new();
    let evens = MiniCluster::collect(move |env| {
        env.set_parallelism(2);
        let tag = odd.clone();
        let numbers = env.from_vec("n", (0..10_000u64).collect()).rebalance().process(
            "split",
            move |n: u64, ctx: &mut Context<'_, u64>| {
                if n.is_multiple_of(2) {
                    ctx.emit(n)
                } else {
                    ctx.output(&tag, n)
                }
                Ok(())
            },
        );
        // Read across a rebalance into parallelism 3, and chained.
        numbers
            .get_side_output(&odd)
            .rebalance()
            .map("odd", |n: u64| n)
            .set_parallelism(3)
            .sink("odd", odd_sink.clone());
        numbers.get_side_output(&odd).filter("none", |_: &u64| false).sink("nothing", DiscardSink::new().0);
        numbers
    })
    .unwrap();
    let mut odd = odd_records.take();
    odd.sort();
    assert_eq!(odd, (0..10_000).filter(|n| n % 2 == 1).collect::<Vec<_>>());
    assert_eq!(evens.len(), 5_000);
}

#[test]
fn late_records_reach_the_late_side_output_as_they_arrive() {
    let late = OutputTag::<(char, i64)>::new("late");
    let mut h = HarnessConfig::new()
        .build_with_side_outputs(|input: DataStream<(char, i64)>, side| {
            let counts = input
                .key_by(|r: &(char, i64)| r.0)
                .window(Tumbling::event_time(Duration::from_secs(1)))
                .side_output_late_data(late.clone())
                .aggregate("count", Count);
            side.add("late", &counts.get_side_output(&late));
            counts
        })
        .unwrap();
    h.process_at(('a', 100), 100).unwrap();
    h.process_watermark(1_200).unwrap();
    h.process_at(('a', 300), 300).unwrap();
    h.process_at(('a', 1_100), 1_100).unwrap();
    h.process_at(('b', 999), 999).unwrap();
    assert_eq!(h.side_output::<(char, i64)>("late").unwrap(), vec![('a', 300), ('b', 999)]);
}

#[test]
fn what_only_an_operator_has_is_refused_on_a_side_output() {
    let err = MiniCluster::collect(|env| {
        let n = env.from_vec("n", vec![1u32]).map("m", |x: u32| x);
        n.get_side_output(&OutputTag::<u32>::new("x")).set_parallelism(2);
        n
    })
    .unwrap_err()
    .to_string();
    assert!(err.contains("set_parallelism on the side output 'x' of 'm'"), "{err}");
}
