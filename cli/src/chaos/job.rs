//! The chaos suite's own job, `semantics-check`, which ships with the CLI library so that any
//! binary's `weir chaos` can run it. Its check is after Flink's `SemanticsCheckMapper`: a keyed
//! operator that checks that each user's clicks arrive numbered `0, 1, 2, …` with none missing
//! or repeated, and keeps a running sum per user in keyed state.
//!
//! Its input comes from the generator with users taking turns
//! ([`GeneratorConfig::keys_in_turn`]), so every user's clicks carry a per-user sequence
//! ([`Click::key_sequence`]) and come from one source subtask in order. After a failover the
//! operator's state and the sources rewind to the same checkpoint, so the sequence carries on
//! where the state left it: a record lost or replayed twice between the source and the state
//! breaks it, and the check writes a `VIOLATION` line into the output instead of failing the
//! job, so that a chaos run counts violations as Flink's test does.

use weir_actors::prelude::*;

/// Adds `semantics-check` to a registry.
pub(crate) fn register(registry: JobRegistry) -> JobRegistry {
    registry.job(
        "semantics-check",
        "the chaos suite's job: per-user click sequences checked for gaps and repeats, with a running sum in state",
        semantics_check,
    )
}

/// `semantics-check`: users take turns in the generator, and a keyed operator checks each
/// user's sequence and keeps a running sum ([`SequenceCheck`]); `user<TAB>sequence<TAB>sum`
/// lines, and `VIOLATION` lines where a sequence breaks. `--keys` must be a multiple of the
/// parallelism, so that each user's clicks come from one source subtask, in order.
pub(crate) fn semantics_check(env: &mut StreamEnv, args: &JobArgs) -> Result<()> {
    let config = GeneratorConfig { keys_in_turn: true, ..GeneratorConfig::from_args(args)? };
    let output = FileSink::new(args.get("output")?);
    let output = if args.parse_or("overwrite", false)? { output.overwrite() } else { output };
    if !(config.keys as usize).is_multiple_of(env.parallelism()) {
        return Err(WeirError::Argument(format!(
            "--keys ({}) must be a multiple of the parallelism ({}): each user's clicks must come from one source subtask",
            config.keys,
            env.parallelism()
        )));
    }
    let keys = config.keys;
    env.source("clicks", Generator::new(config))
        .key_by(|c: &Click| c.user)
        .process("check", move || SequenceCheck::new(keys))
        .sink("output", output);
    Ok(())
}

/// What the check keeps per user.
#[derive(Debug, Clone, Copy, Default, serde::Serialize, serde::Deserialize)]
struct Progress {
    /// The sequence number the next click must carry.
    next: u64,
    /// The running sum of the user's click values.
    sum: u64,
}

/// Checks each user's click sequence and emits `user<TAB>sequence<TAB>running sum` per click,
/// or `VIOLATION<TAB>user<TAB>expected N<TAB>got M` where the sequence breaks.
pub(crate) struct SequenceCheck {
    keys: u32,
    progress: Option<ValueState<Progress>>,
}

impl SequenceCheck {
    /// A check of clicks of `keys` users taking turns.
    pub(crate) fn new(keys: u32) -> Self {
        SequenceCheck { keys, progress: None }
    }
}

/// A click's value in the running sum: deterministic, and different for neighbours.
fn value(click: &Click) -> u64 {
    click.index % 997
}

impl KeyedProcessFunction for SequenceCheck {
    type Key = u32;
    type In = Click;
    type Out = String;

    fn open(&mut self, ctx: &mut KeyedOpenContext<'_, u32>) -> Result<()> {
        self.progress = Some(ctx.value_state("progress")?);
        Ok(())
    }

    fn process(&mut self, click: Click, ctx: &mut KeyedContext<'_, u32, String>) -> Result<()> {
        let state = self.progress.expect("opened");
        let progress = ctx.value(state).get()?.unwrap_or_default();
        let seq = click.key_sequence(self.keys);
        if seq != progress.next {
            ctx.emit(format!("VIOLATION\t{}\texpected {}\tgot {seq}", click.user, progress.next));
        }
        let sum = progress.sum + value(&click);
        ctx.value(state).update(Progress { next: seq + 1, sum })?;
        ctx.emit(format!("{}\t{seq}\t{sum}", click.user));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn click(user: u32, nth: u64) -> Click {
        // Two users taking turns: user u's n-th click is event 2n + u.
        Click { user, time: 0, index: nth * 2 + u64::from(user) }
    }

    #[test]
    fn a_gap_or_a_repeat_in_a_users_sequence_is_reported() {
        // User 0: 0, 1, 3 (2 lost), 3 (replayed). User 1: 0, 1, 2.
        let clicks = vec![click(0, 0), click(1, 0), click(0, 1), click(1, 1), click(0, 3), click(1, 2), click(0, 3)];
        let out = MiniCluster::collect(move |env| {
            env.source("clicks", VecSource::new(clicks.clone()))
                .key_by(|c: &Click| c.user)
                .process("check", || SequenceCheck::new(2))
        })
        .unwrap();
        let violations: Vec<&String> = out.iter().filter(|l| l.starts_with("VIOLATION")).collect();
        assert_eq!(violations, ["VIOLATION\t0\texpected 2\tgot 3", "VIOLATION\t0\texpected 4\tgot 3"]);
        // The running sums: user 1's values are its clicks' indexes 1, 3, 5.
        assert!(out.contains(&"1\t2\t9".to_owned()), "{out:?}");
    }
}
