use crate::prelude::*;

/// Counts each account's transactions above the limit its broadcast rule sets; a
/// transaction of an account with no rule waits (in keyed state) for one, and is checked
/// when its event-time timer fires.
#[derive(Default)]
struct Limits {
    over: Option<ValueState<u32>>,
    waiting: Option<ListState<u64>>,
}

impl KeyedBroadcastProcessFunction for Limits {
    type Key = char;
    type In = (char, u64);
    type Broadcast = (char, u64);
    type StateKey = char;
    type StateValue = u64;
    type Out = String;
    fn open(&mut self, ctx: &mut KeyedOpenContext<'_, char>) -> Result<()> {
        self.over = Some(ctx.value_state("over")?);
        self.waiting = Some(ctx.list_state("waiting")?);
        Ok(())
    }
    fn process_element(
        &mut self,
        (account, amount): (char, u64),
        limits: &BroadcastState<char, u64>,
        ctx: &mut KeyedContext<'_, char, String>,
    ) -> Result<()> {
        match limits.get(&account) {
            Some(&limit) => self.check(account, amount, limit, ctx),
            None => {
                ctx.list(self.waiting.unwrap()).add(amount)?;
                ctx.register_event_time_timer(1_000);
                Ok(())
            }
        }
    }
    fn process_broadcast_element(
        &mut self,
        (account, limit): (char, u64),
        limits: &mut BroadcastState<char, u64>,
        ctx: &mut BroadcastContext<'_, String>,
    ) -> Result<()> {
        limits.put(account, limit);
        ctx.emit(format!("rule {account} {limit}"));
        Ok(())
    }
    fn on_timer(
        &mut self,
        _: Timestamp,
        _: TimeDomain,
        limits: &BroadcastState<char, u64>,
        ctx: &mut KeyedContext<'_, char, String>,
    ) -> Result<()> {
        let account = *ctx.key();
        let waiting = ctx.list(self.waiting.unwrap()).get()?;
        ctx.list(self.waiting.unwrap()).clear()?;
        let limit = limits.get(&account).copied().unwrap_or(u64::MAX);
        for amount in waiting {
            self.check(account, amount, limit, ctx)?;
        }
        Ok(())
    }
}

impl Limits {
    fn check(&self, account: char, amount: u64, limit: u64, ctx: &mut KeyedContext<'_, char, String>) -> Result<()> {
        if amount > limit {
            let n = ctx.value(self.over.unwrap()).get()?.unwrap_or(0) + 1;
            ctx.value(self.over.unwrap()).update(n)?;
            ctx.emit(format!("{account} over #{n}: {amount}"));
        }
        Ok(())
    }
}

fn limits(tx: DataStream<(char, u64)>, rules: DataStream<(char, u64)>) -> DataStream<String> {
    let descriptor = BroadcastStateDescriptor::<char, u64>::new("limits");
    tx.key_by(|t: &(char, u64)| t.0)
        .connect_broadcast(&rules.broadcast_state(&descriptor))
        .process("limits", Limits::default)
}

#[test]
fn the_broadcast_state_and_keyed_state_restore_at_any_parallelism() {
    let mut h = HarnessConfig::new().build_two_input(limits).unwrap();
    h.process2(('a', 10)).unwrap();
    h.process2(('b', 20)).unwrap();
    h.process1(('a', 15)).unwrap();
    h.process1(('c', 99)).unwrap(); // no rule for c yet: it waits for its timer
    assert_eq!(h.take_output(), ["rule a 10", "rule b 20", "a over #1: 15"]);
    let snapshot = h.snapshot().unwrap();

    // At parallelism 3 every subtask has every rule, and each key its own state.
    let mut out = Vec::new();
    for index in 0..3 {
        let config = HarnessConfig::new().subtask(index, 3).restore(vec![snapshot.clone()]);
        let owns: Vec<char> = ['a', 'b', 'c'].into_iter().filter(|k| config.owns(k)).collect();
        let mut h = config.build_two_input(limits).unwrap();
        h.process2(('c', 50)).unwrap(); // broadcast: every subtask gets it
        for account in owns {
            h.process1((account, 30)).unwrap();
        }
        h.process_watermark1(2_000).unwrap();
        h.process_watermark2(2_000).unwrap();
        out.extend(h.take_output().into_iter().filter(|l| !l.starts_with("rule")));
    }
    out.sort();
    assert_eq!(out, ["a over #2: 30", "b over #1: 30", "c over #1: 99"]);
}

#[test]
fn a_broadcast_process_function_keeps_its_state_across_a_restore() {
    struct Table;
    impl BroadcastProcessFunction for Table {
        type In = u32;
        type Broadcast = (u32, String);
        type StateKey = u32;
        type StateValue = String;
        type Out = String;
        fn process_element(
            &mut self,
            n: u32,
            names: &BroadcastState<u32, String>,
            ctx: &mut Context<'_, String>,
        ) -> Result<()> {
            ctx.emit(names.get(&n).cloned().unwrap_or_else(|| format!("#{n}")));
            Ok(())
        }
        fn process_broadcast_element(
            &mut self,
            (n, name): (u32, String),
            names: &mut BroadcastState<u32, String>,
            _: &mut Context<'_, String>,
        ) -> Result<()> {
            names.put(n, name);
            Ok(())
        }
    }
    let table = |numbers: DataStream<u32>, names: DataStream<(u32, String)>| {
        let descriptor = BroadcastStateDescriptor::<u32, String>::new("names");
        numbers.connect_broadcast(&names.broadcast_state(&descriptor)).process("table", || Table)
    };
    let mut h = HarnessConfig::new().build_two_input(table).unwrap();
    h.process2((1, "one".to_owned())).unwrap();
    let snapshot = h.snapshot().unwrap();
    for index in 0..2 {
        let mut h =
            HarnessConfig::new().subtask(index, 2).restore(vec![snapshot.clone()]).build_two_input(table).unwrap();
        h.process1(1).unwrap();
        h.process1(2).unwrap();
        assert_eq!(h.output(), ["one", "#2"], "subtask {index}");
    }
}

/// Each subtask reports the broadcast records it got.
struct Report;

impl BroadcastProcessFunction for Report {
    type In = u32;
    type Broadcast = u32;
    type StateKey = u32;
    type StateValue = ();
    type Out = (usize, u32);
    fn process_element(
        &mut self,
        _: u32,
        _: &BroadcastState<u32, ()>,
        _: &mut Context<'_, (usize, u32)>,
    ) -> Result<()> {
        Ok(())
    }
    fn process_broadcast_element(
        &mut self,
        rule: u32,
        seen: &mut BroadcastState<u32, ()>,
        ctx: &mut Context<'_, (usize, u32)>,
    ) -> Result<()> {
        seen.put(rule, ());
        let index = ctx.subtask().index;
        ctx.emit((index, rule));
        Ok(())
    }
}

#[test]
fn the_broadcast_input_reaches_every_subtask_over_channels() {
    let mut out = MiniCluster::collect(|env| {
        env.set_parallelism(3);
        let rules = env.from_vec("rules", (0..50u32).collect());
        let numbers = env.from_vec("numbers", (0..300u32).collect()).rebalance();
        let descriptor = BroadcastStateDescriptor::<u32, ()>::new("seen");
        numbers.connect_broadcast(&rules.broadcast_state(&descriptor)).process("report", || Report)
    })
    .unwrap();
    out.sort();
    let expected: Vec<(usize, u32)> = (0..3).flat_map(|i| (0..50).map(move |r| (i, r))).collect();
    assert_eq!(out, expected);
}
