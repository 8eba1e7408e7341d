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
