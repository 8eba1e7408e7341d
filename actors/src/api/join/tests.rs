use crate::prelude::*;

type Order = (u32, i64);
type Payment = (u32, i64);

/// `(order id, order ts, payment ts, result ts)` of a joined pair.
type Joined = (u32, i64, i64, i64);

/// A fragment joining orders and payments.
trait Fragment: Fn(DataStream<Order>, DataStream<Payment>) -> DataStream<Joined> + Copy {}
impl<F: Fn(DataStream<Order>, DataStream<Payment>) -> DataStream<Joined> + Copy> Fragment for F {}

fn join(lower: i64, upper: i64, exclusive: (bool, bool)) -> impl Fragment {
    move |orders, payments| {
        let mut joined =
            orders.key_by(|o: &Order| o.0).interval_join(&payments.key_by(|p: &Payment| p.0)).between(lower, upper);
        if exclusive.0 {
            joined = joined.lower_bound_exclusive();
        }
        if exclusive.1 {
            joined = joined.upper_bound_exclusive();
        }
        joined.process("join", |o: &Order, p: &Payment, ctx: &mut JoinContext<'_, u32, Joined>| {
            assert_eq!((ctx.left_timestamp(), ctx.right_timestamp()), (o.1, p.1));
            let ts = ctx.timestamp();
            ctx.emit((o.0, o.1, p.1, ts));
            Ok(())
        })
    }
}

/// Feeds every order and payment at its timestamp, then ends the input.
fn run(pipeline: impl Fragment, orders: &[Order], payments: &[Payment]) -> Vec<Joined> {
    let mut h = HarnessConfig::new().build_two_input(pipeline).unwrap();
    for &o in orders {
        h.process1_at(o, o.1).unwrap();
    }
    for &p in payments {
        h.process2_at(p, p.1).unwrap();
    }
    h.end_input().unwrap();
    let mut out = h.output();
    out.sort();
    out
}

#[test]
fn pairs_within_the_bounds_join_inclusive_unless_made_exclusive() {
    let orders = [(1, 100), (2, 100)];
    let payments = [(1, 90), (1, 100), (1, 150), (1, 200), (1, 201), (2, 150), (3, 150)];
    let inclusive = run(join(0, 100, (false, false)), &orders, &payments);
    assert_eq!(inclusive, vec![(1, 100, 100, 100), (1, 100, 150, 150), (1, 100, 200, 200), (2, 100, 150, 150)]);
    let exclusive = run(join(0, 100, (true, true)), &orders, &payments);
    assert_eq!(exclusive, vec![(1, 100, 150, 150), (2, 100, 150, 150)]);
    // A negative lower bound reaches back in time; the result is at the later timestamp.
    let back = run(join(-10, 0, (false, false)), &orders, &payments);
    assert_eq!(back, vec![(1, 100, 90, 100), (1, 100, 100, 100)]);
}

#[test]
fn state_is_dropped_once_the_watermark_passes_what_could_still_join() {
    let mut h = HarnessConfig::new().build_two_input(join(-5, 10, (false, false))).unwrap();
    h.process1_at((1, 100), 100).unwrap();
    h.process2_at((1, 200), 200).unwrap();
    assert!(h.timers().contains(&(TimeDomain::EventTime, 110)), "left cleanup at 100 + upper: {:?}", h.timers());
    assert!(h.timers().contains(&(TimeDomain::EventTime, 205)), "right cleanup at 200 - lower: {:?}", h.timers());
    h.process_watermark1(150).unwrap();
    h.process_watermark2(150).unwrap();
    assert_eq!(h.timers(), vec![(TimeDomain::EventTime, 205)]);
    // The left record is gone: a right record that would have joined it is late anyway; one
    // at the watermark finds nothing.
    h.process2_at((1, 150), 150).unwrap();
    assert!(h.output().is_empty());
    let snapshot = h.snapshot().unwrap();
    let mut restored =
        HarnessConfig::new().restore(vec![snapshot]).build_two_input(join(-5, 10, (false, false))).unwrap();
    // The right record at 200 is still buffered after a restore: a left record at 195 joins it.
    restored.process1_at((1, 195), 195).unwrap();
    assert_eq!(restored.output(), vec![(1, 195, 200, 200)]);
}

#[test]
fn late_records_are_counted_or_sent_to_a_side_output() {
    let late = OutputTag::<Order>::new("late-orders");
    let mut h = HarnessConfig::new()
        .build_two_input_with_side_outputs(|orders: DataStream<Order>, payments: DataStream<Payment>, side| {
            let joined = orders
                .key_by(|o: &Order| o.0)
                .interval_join(&payments.key_by(|p: &Payment| p.0))
                .between(0, 10)
                .side_output_left_late_data(late.clone())
                .process("join", |o: &Order, p: &Payment, ctx: &mut JoinContext<'_, u32, (Order, Payment)>| {
                    ctx.emit((*o, *p));
                    Ok(())
                });
            side.add("late", &joined.get_side_output(&late));
            joined
        })
        .unwrap();
    h.process_watermark1(100).unwrap();
    h.process_watermark2(100).unwrap();
    h.process1_at((1, 99), 99).unwrap();
    h.process2_at((1, 99), 99).unwrap();
    h.process1_at((1, 100), 100).unwrap();
    assert_eq!(h.side_output::<Order>("late").unwrap(), vec![(1, 99)]);
    assert!(h.output().is_empty(), "the late payment is dropped and counted");
}

#[test]
fn records_without_timestamps_and_inverted_bounds_are_refused() {
    let mut h = HarnessConfig::new().build_two_input(join(0, 10, (false, false))).unwrap();
    let err = h.process1((1, 5)).unwrap_err().to_string();
    assert!(err.contains("a left record of an interval join has no timestamp"), "{err}");
    let err = HarnessConfig::new().build_two_input(join(5, 5, (true, false))).err().expect("refused").to_string();
    assert!(err.contains("the lower bound (6 ms) is above the upper bound (5 ms)"), "{err}");
}

#[test]
fn an_interval_join_over_channels_at_parallelism_three_joins_every_pair_once() {
    let mut out = MiniCluster::collect(|env| {
        env.set_parallelism(3);
        let orders =
            env.from_vec_timestamped("orders", (0..2_000u32).map(|id| ((id, i64::from(id)), i64::from(id))).collect());
        let payments = env.from_vec_timestamped(
            "payments",
            (0..2_000u32).map(|id| ((id % 1_000, i64::from(id) + 5), i64::from(id) + 5)).collect(),
        );
        join(0, 10, (false, false))(orders, payments)
    })
    .unwrap();
    out.sort();
    // Payment p (id p % 1000, at p + 5) joins order p % 1000 at p % 1000 when p < 1000 only.
    let expected: Vec<_> = (0..1_000u32).map(|id| (id, i64::from(id), i64::from(id) + 5, i64::from(id) + 5)).collect();
    assert_eq!(out, expected);
}

#[test]
fn a_window_join_pairs_every_record_of_a_key_and_window_at_the_window_end() {
    use std::time::Duration;
    let mut out = MiniCluster::collect(|env| {
        env.set_parallelism(2);
        let clicks = env.from_vec_timestamped("clicks", vec![(('a', 1), 100), (('a', 2), 700), (('b', 3), 800)]);
        let buys = env.from_vec_timestamped("buys", vec![(('a', 10), 600), (('b', 20), 1_400), (('c', 30), 100)]);
        clicks
            .join(&buys)
            .where_(|c: &(char, u32)| c.0)
            .equal_to(|b: &(char, u32)| b.0)
            .window(Sliding::event_time(Duration::from_millis(1_000), Duration::from_millis(500)))
            .apply("pairs", |c: &(char, u32), b: &(char, u32)| (c.0, c.1, b.1))
            .process("with-time", |p: (char, u32, u32), ctx: &mut Context<'_, ((char, u32, u32), i64)>| {
                let ts = ctx.timestamp().unwrap();
                ctx.emit((p, ts));
                Ok(())
            })
    })
    .unwrap();
    out.sort();
    // Windows [0,1000) and [500,1500) hold a's 1 (100: only the first), 2 and 10 (both); b's
    // 3 (800) and 20 (1400) share [500,1500); c has no click.
    assert_eq!(out, [(('a', 1, 10), 999), (('a', 2, 10), 999), (('a', 2, 10), 1_499), (('b', 3, 20), 1_499)]);
}
