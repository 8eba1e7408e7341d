use crate::prelude::*;

/// Matches each order with its payment (same key); an order still unpaid 100 ms of event time
/// after it arrived is reported, and so is a payment with no order by then.
#[derive(Default)]
struct Match {
    order: Option<ValueState<u32>>,
    payment: Option<ValueState<String>>,
}

type Ctx<'a> = KeyedContext<'a, u64, String>;

impl KeyedCoProcessFunction for Match {
    type Key = u64;
    type In1 = (u64, u32);
    type In2 = (u64, String);
    type Out = String;
    fn open(&mut self, ctx: &mut KeyedOpenContext<'_, u64>) -> Result<()> {
        self.order = Some(ctx.value_state("order")?);
        self.payment = Some(ctx.value_state("payment")?);
        Ok(())
    }
    fn process1(&mut self, (id, amount): (u64, u32), ctx: &mut Ctx<'_>) -> Result<()> {
        match ctx.value(self.payment.unwrap()).get()? {
            Some(method) => {
                ctx.value(self.payment.unwrap()).clear()?;
                ctx.emit(format!("{id} paid {amount} by {method}"));
            }
            None => {
                ctx.value(self.order.unwrap()).update(amount)?;
                ctx.register_event_time_timer(ctx.timestamp().unwrap() + 100);
            }
        }
        Ok(())
    }
    fn process2(&mut self, (id, method): (u64, String), ctx: &mut Ctx<'_>) -> Result<()> {
        match ctx.value(self.order.unwrap()).get()? {
            Some(amount) => {
                ctx.value(self.order.unwrap()).clear()?;
                ctx.emit(format!("{id} paid {amount} by {method}"));
            }
            None => {
                ctx.value(self.payment.unwrap()).update(method)?;
                ctx.register_event_time_timer(ctx.timestamp().unwrap() + 100);
            }
        }
        Ok(())
    }
    fn on_timer(&mut self, _ts: Timestamp, _: TimeDomain, ctx: &mut Ctx<'_>) -> Result<()> {
        let id = *ctx.key();
        if let Some(amount) = ctx.value(self.order.unwrap()).get()? {
            ctx.value(self.order.unwrap()).clear()?;
            ctx.emit(format!("{id} unpaid {amount}"));
        }
        if let Some(method) = ctx.value(self.payment.unwrap()).get()? {
            ctx.value(self.payment.unwrap()).clear()?;
            ctx.emit(format!("{id} no order for {method}"));
        }
        Ok(())
    }
}

fn matching(orders: DataStream<(u64, u32)>, payments: DataStream<(u64, String)>) -> DataStream<String> {
    orders
        .key_by(|o: &(u64, u32)| o.0)
        .connect(&payments.key_by(|p: &(u64, String)| p.0))
        .process("match", Match::default)
}

#[test]
fn a_keyed_co_function_keeps_state_and_timers_for_both_inputs() {
    let mut h = HarnessConfig::new().build_two_input(matching).unwrap();
    h.process1_at((1, 30), 10).unwrap();
    h.process2_at((1, "card".into()), 20).unwrap();
    h.process2_at((2, "cash".into()), 30).unwrap();
    h.process1_at((3, 40), 40).unwrap();
    assert_eq!(h.take_output(), vec!["1 paid 30 by card".to_owned()]);
    // The operator's watermark is the minimum of the inputs'.
    h.process_watermark1(500).unwrap();
    assert_eq!(h.current_watermark(), Timestamp::MIN);
    h.process_watermark2(135).unwrap();
    assert_eq!(h.take_output(), vec!["2 no order for cash".to_owned()]);
    h.process_watermark2(140).unwrap();
    assert_eq!(h.take_output(), vec!["3 unpaid 40".to_owned()]);
}

#[test]
fn keyed_co_state_and_timers_restore_at_another_parallelism() {
    let mut h = HarnessConfig::new().build_two_input(matching).unwrap();
    for id in 0..20u64 {
        if id % 2 == 0 {
            h.process1_at((id, id as u32), 10).unwrap();
        } else {
            h.process2_at((id, "card".into()), 10).unwrap();
        }
    }
    let snapshot = h.snapshot().unwrap();
    let mut out = Vec::new();
    for index in 0..3 {
        let config = HarnessConfig::new().subtask(index, 3).restore(vec![snapshot.clone()]);
        let mut h = config.clone().build_two_input(matching).unwrap();
        // Each key's other half arrives after the restore, at the subtask that owns it.
        for id in (0..10u64).filter(|id| config.owns(id)) {
            if id % 2 == 0 {
                h.process2_at((id, "cash".into()), 50).unwrap();
            } else {
                h.process1_at((id, 7), 50).unwrap();
            }
        }
        h.process_watermark1(1_000).unwrap();
        h.process_watermark2(1_000).unwrap();
        out.extend(h.take_output());
    }
    out.sort();
    let mut expected: Vec<String> = (0..10u64)
        .map(|id| if id % 2 == 0 { format!("{id} paid {id} by cash") } else { format!("{id} paid 7 by card") })
        .collect();
    expected.extend(
        (10..20u64).map(|id| if id % 2 == 0 { format!("{id} unpaid {id}") } else { format!("{id} no order for card") }),
    );
    expected.sort();
    assert_eq!(out, expected);
}

#[test]
fn keyed_connected_streams_meet_per_key_across_subtasks() {
    let out = MiniCluster::collect(|env| {
        env.set_parallelism(3);
        let orders = env.from_vec_timestamped("orders", (0..3_000u64).map(|id| ((id, 1u32), 0)).collect());
        let payments =
            env.from_vec_timestamped("payments", (0..3_000u64).rev().map(|id| ((id, "card".to_owned()), 0)).collect());
        matching(orders, payments)
    })
    .unwrap();
    assert_eq!(out.len(), 3_000);
    assert!(out.iter().all(|line| line.ends_with("paid 1 by card")), "{:?}", &out[..5]);
}

#[test]
fn a_co_process_function_keeps_operator_state_across_a_restore() {
    /// Counts both inputs' records in operator state; emits the counts at the end.
    #[derive(Default)]
    struct Counts(u64, u64);
    impl CoProcessFunction for Counts {
        type In1 = u8;
        type In2 = char;
        type Out = (u64, u64);
        fn process1(&mut self, _: u8, _: &mut Context<'_, (u64, u64)>) -> Result<()> {
            self.0 += 1;
            Ok(())
        }
        fn process2(&mut self, _: char, _: &mut Context<'_, (u64, u64)>) -> Result<()> {
            self.1 += 1;
            Ok(())
        }
        fn end_input(&mut self, ctx: &mut Context<'_, (u64, u64)>) -> Result<()> {
            ctx.emit((self.0, self.1));
            Ok(())
        }
        fn snapshot_state(&mut self, _: u64) -> Result<Option<Vec<u8>>> {
            Ok(Some(postcard::to_allocvec(&(self.0, self.1)).unwrap()))
        }
        fn restore_state(&mut self, states: Vec<Vec<u8>>) -> Result<()> {
            for state in states {
                let (a, b): (u64, u64) = postcard::from_bytes(&state).unwrap();
                (self.0, self.1) = (self.0 + a, self.1 + b);
            }
            Ok(())
        }
    }
    let counts = |a: DataStream<u8>, b: DataStream<char>| a.connect(&b).process("counts", Counts::default);
    let mut h = HarnessConfig::new().build_two_input(counts).unwrap();
    h.process1(1).unwrap();
    h.process2('x').unwrap();
    h.process2('y').unwrap();
    let snapshot = h.snapshot().unwrap();
    let mut h = HarnessConfig::new().restore(vec![snapshot]).build_two_input(counts).unwrap();
    h.process1(2).unwrap();
    h.end_input().unwrap();
    assert_eq!(h.output(), vec![(2, 2)]);
}

#[test]
fn the_two_input_harness_needs_its_inputs_connected_directly() {
    let err = HarnessConfig::new()
        .build_two_input(|a: DataStream<u8>, b: DataStream<u8>| {
            a.map("m", |x: u8| x).connect(&b).map("both", |x: u8| x, |x: u8| x)
        })
        .err()
        .expect("refused")
        .to_string();
    assert!(err.contains("connect them directly"), "{err}");
}
