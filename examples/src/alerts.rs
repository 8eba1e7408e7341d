//! A keyed process function written by hand: burst alerts with value state and event-time
//! timers.
//!
//! Clicks of one user arrive from several source subtasks in no fixed order, so the function
//! first buffers them and handles them in event-time order when the watermark passes them (an
//! event-time timer per click time). That makes its output the same at any parallelism and
//! rate. A burst starts at a click and lasts `within` ms; the click that takes the burst past
//! `threshold` raises one alert; a timer at the burst's end clears the user's state.

use weir_actors::prelude::*;

/// The state of a user's current burst.
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
struct Burst {
    start: i64,
    count: u64,
    alerted: bool,
}

/// Alerts on bursts of clicks per user.
pub struct BurstAlerts {
    threshold: u64,
    within: i64,
    burst: Option<ValueState<Burst>>,
    pending: Option<ListState<Click>>,
}

impl BurstAlerts {
    /// Alert when more than `threshold` clicks fall within `within` ms.
    pub fn new(threshold: u64, within: i64) -> Self {
        BurstAlerts { threshold, within, burst: None, pending: None }
    }
}

impl KeyedProcessFunction for BurstAlerts {
    type Key = u32;
    type In = Click;
    type Out = String;

    fn open(&mut self, ctx: &mut KeyedOpenContext<'_, u32>) -> Result<()> {
        self.burst = Some(ctx.value_state("burst")?);
        self.pending = Some(ctx.list_state("pending")?);
        Ok(())
    }

    fn process(&mut self, click: Click, ctx: &mut KeyedContext<'_, u32, String>) -> Result<()> {
        ctx.list(self.pending.expect("opened")).add(click)?;
        ctx.register_event_time_timer(click.time);
        Ok(())
    }

    fn on_timer(&mut self, now: Timestamp, _domain: TimeDomain, ctx: &mut KeyedContext<'_, u32, String>) -> Result<()> {
        let (burst_state, pending_state) = (self.burst.expect("opened"), self.pending.expect("opened"));
        let mut pending = ctx.list(pending_state).get()?;
        if !pending.is_empty() {
            // Every click at or before the watermark has arrived: handle them in time order.
            pending.sort_by_key(|c| (c.time, c.index));
            let split = pending.partition_point(|c| c.time <= now);
            let rest = pending.split_off(split);
            ctx.list(pending_state).update(rest)?;
            let mut burst = ctx.value(burst_state).get()?;
            for click in pending {
                let current = match burst {
                    Some(b) if click.time < b.start + self.within => Burst { count: b.count + 1, ..b },
                    _ => {
                        ctx.register_event_time_timer(click.time + self.within);
                        Burst { start: click.time, count: 1, alerted: false }
                    }
                };
                let mut current = current;
                if current.count > self.threshold && !current.alerted {
                    current.alerted = true;
                    let user = *ctx.key();
                    ctx.emit(format!("{user}\t{}\t{}\t{}", current.start, click.time, current.count));
                }
                burst = Some(current);
            }
            match burst {
                Some(b) => ctx.value(burst_state).update(b)?,
                None => ctx.value(burst_state).clear()?,
            }
        }
        // The burst's end: clear the user's state.
        if let Some(b) = ctx.value(burst_state).get()?
            && b.start + self.within <= now
        {
            ctx.value(burst_state).clear()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn click(user: u32, time: i64, index: u64) -> Click {
        Click { user, time, index }
    }

    fn alerts(input: DataStream<Click>) -> DataStream<String> {
        input.key_by(|c: &Click| c.user).process("bursts", || BurstAlerts::new(3, 100))
    }

    /// Clicks out of order are handled in event-time order once the watermark passes them: the
    /// fourth click within 100 ms of the burst's first raises one alert, and the burst's end
    /// clears the user's state and timers.
    #[test]
    fn the_click_past_the_threshold_raises_one_alert_in_event_time_order() {
        let mut h = OperatorHarness::new(alerts).unwrap();
        for (time, index) in [(1_030, 2), (1_000, 0), (1_010, 1), (1_090, 4), (1_050, 3), (1_095, 5)] {
            h.process_at(click(7, time, index), time).unwrap();
        }
        h.process_at(click(8, 1_020, 6), 1_020).unwrap();
        assert!(h.output().is_empty(), "nothing before the watermark");
        h.process_watermark(1_060).unwrap();
        assert_eq!(h.take_output(), vec!["7\t1000\t1050\t4".to_owned()]);
        h.process_watermark(1_200).unwrap();
        assert!(h.take_output().is_empty(), "one alert per burst");
        assert!(h.timers().is_empty(), "the bursts' ends cleared them");
    }

    /// A burst half seen when the job checkpoints goes on after a restore.
    #[test]
    fn a_burst_goes_on_across_a_snapshot_and_restore() {
        let mut h = OperatorHarness::new(alerts).unwrap();
        for (time, index) in [(2_000, 0), (2_010, 1), (2_020, 2)] {
            h.process_at(click(3, time, index), time).unwrap();
        }
        h.process_watermark(2_015).unwrap();
        let snapshot = h.snapshot().unwrap();
        let mut restored = HarnessConfig::new().restore(vec![snapshot]).build(alerts).unwrap();
        restored.process_at(click(3, 2_030, 3), 2_030).unwrap();
        restored.process_watermark(2_050).unwrap();
        assert_eq!(restored.output(), vec!["3\t2000\t2030\t4".to_owned()]);
        // What is left: the burst's end.
        assert_eq!(restored.timers(), vec![(TimeDomain::EventTime, 2_100)]);
    }
}
