//! Rates of the subtasks' counters for the REST API and `/metrics`: records and bytes per
//! second, and the share of time each subtask's loop was busy, idle or backpressured (Flink's
//! `busyTimeMsPerSecond`, `idleTimeMsPerSecond` and `backPressuredTimeMsPerSecond`, as
//! ratios).
//!
//! The subtasks keep totals only; the REST server remembers the totals it was last shown and
//! divides the difference by the time between them. Each subtask keeps its samples of the last
//! [`WINDOW`] plus the newest older one, so a rate covers at least a few seconds (Flink's
//! metric views update every 5 s) once the API has been asked twice that far apart; before
//! that it covers whatever time there is, and on the very first look, the subtask's whole
//! life. Nothing here runs unless someone asks: no sampling task, nothing on a subtask's path.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::base::ids::JobId;
use crate::base::metrics::TaskMetricsSnapshot;

/// How far back a rate looks, at least once samples that old exist.
pub(crate) const WINDOW: Duration = Duration::from_secs(5);
/// A job's samples are forgotten when it was not looked at for this long.
const FORGET_AFTER: Duration = Duration::from_secs(600);
/// The most samples kept per subtask (for callers asking many times a second).
const MAX_SAMPLES: usize = 32;
/// A shorter interval gives no rate: the first look's whole-life figures stand instead.
const MIN_INTERVAL: Duration = Duration::from_millis(100);

/// A subtask's rates over its latest interval.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) struct SubtaskRates {
    pub(crate) records_in_per_second: f64,
    pub(crate) records_out_per_second: f64,
    pub(crate) bytes_in_per_second: f64,
    pub(crate) bytes_out_per_second: f64,
    /// Shares of the loop's time, summing to 1 (all 0 before the loop measured any time).
    pub(crate) busy_ratio: f64,
    pub(crate) idle_ratio: f64,
    pub(crate) backpressure_ratio: f64,
}

impl SubtaskRates {
    /// Flink's back-pressure level of a subtask: `ok` up to 10 % of the time backpressured,
    /// `low` up to 50 %, `high` above.
    pub(crate) fn level(&self) -> &'static str {
        level(self.backpressure_ratio)
    }
}

/// Flink's back-pressure level of a ratio (`BackPressureLevel`, thresholds 0.10 and 0.5).
pub(crate) fn level(ratio: f64) -> &'static str {
    if ratio <= 0.10 {
        "ok"
    } else if ratio <= 0.5 {
        "low"
    } else {
        "high"
    }
}

/// The samples the REST server took, by job, vertex and subtask.
#[derive(Clone, Default)]
pub struct Rates {
    inner: Arc<Mutex<HashMap<JobId, JobSamples>>>,
}

impl std::fmt::Debug for Rates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rates").finish_non_exhaustive()
    }
}

struct JobSamples {
    seen: Instant,
    /// By (vertex, subtask): samples, oldest first.
    subtasks: HashMap<(usize, usize), VecDeque<(Instant, TaskMetricsSnapshot)>>,
}

impl Rates {
    /// Records `now`'s counters of subtask `subtask` of vertex `vertex` and answers its rates
    /// since the oldest sample kept.
    pub(crate) fn sample(
        &self,
        job: JobId,
        vertex: usize,
        subtask: usize,
        now: Instant,
        counters: &TaskMetricsSnapshot,
    ) -> SubtaskRates {
        let mut jobs = self.inner.lock().expect("rates lock");
        jobs.retain(|id, j| *id == job || now.saturating_duration_since(j.seen) < FORGET_AFTER);
        let samples = jobs.entry(job).or_insert_with(|| JobSamples { seen: now, subtasks: HashMap::new() });
        samples.seen = now;
        let kept = samples.subtasks.entry((vertex, subtask)).or_default();
        // A restarted subtask counts from zero again: its older samples mean nothing now.
        if kept.back().is_some_and(|(_, last)| restarted(last, counters)) {
            kept.clear();
        }
        // Keep one sample at least WINDOW old, and every newer one.
        while kept.len() >= 2 && now.saturating_duration_since(kept[1].0) >= WINDOW {
            kept.pop_front();
        }
        if kept.len() >= MAX_SAMPLES {
            kept.remove(1);
        }
        let rates = match kept.front() {
            Some((then, old)) if now.saturating_duration_since(*then) >= MIN_INTERVAL => {
                between(old, counters, now.saturating_duration_since(*then))
            }
            _ => whole_life(counters),
        };
        kept.push_back((now, *counters));
        rates
    }
}

/// Whether `now`'s counters went back from `before`'s: a new attempt of the subtask.
fn restarted(before: &TaskMetricsSnapshot, now: &TaskMetricsSnapshot) -> bool {
    now.records_in < before.records_in
        || now.records_out < before.records_out
        || now.busy_ms + now.idle_ms + now.backpressure_ms < before.busy_ms + before.idle_ms + before.backpressure_ms
}

fn ratios(busy: u64, idle: u64, backpressure: u64) -> (f64, f64, f64) {
    let total = (busy + idle + backpressure) as f64;
    if total == 0.0 {
        return (0.0, 0.0, 0.0);
    }
    (busy as f64 / total, idle as f64 / total, backpressure as f64 / total)
}

/// The rates between two samples `elapsed` apart.
fn between(old: &TaskMetricsSnapshot, new: &TaskMetricsSnapshot, elapsed: Duration) -> SubtaskRates {
    let seconds = elapsed.as_secs_f64();
    let per_second = |a: u64, b: u64| b.saturating_sub(a) as f64 / seconds;
    let (busy_ratio, idle_ratio, backpressure_ratio) = ratios(
        new.busy_ms.saturating_sub(old.busy_ms),
        new.idle_ms.saturating_sub(old.idle_ms),
        new.backpressure_ms.saturating_sub(old.backpressure_ms),
    );
    SubtaskRates {
        records_in_per_second: per_second(old.records_in, new.records_in),
        records_out_per_second: per_second(old.records_out, new.records_out),
        bytes_in_per_second: per_second(old.bytes_in, new.bytes_in),
        bytes_out_per_second: per_second(old.bytes_out, new.bytes_out),
        busy_ratio,
        idle_ratio,
        backpressure_ratio,
    }
}

/// The first look: averages over the loop's whole life so far.
fn whole_life(counters: &TaskMetricsSnapshot) -> SubtaskRates {
    let lived_ms = counters.busy_ms + counters.idle_ms + counters.backpressure_ms;
    if lived_ms == 0 {
        return SubtaskRates::default();
    }
    let zero = TaskMetricsSnapshot::default();
    let mut rates = between(&zero, counters, Duration::from_millis(lived_ms));
    (rates.busy_ratio, rates.idle_ratio, rates.backpressure_ratio) =
        ratios(counters.busy_ms, counters.idle_ms, counters.backpressure_ms);
    rates
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counters(records_in: u64, busy_ms: u64, idle_ms: u64, backpressure_ms: u64) -> TaskMetricsSnapshot {
        TaskMetricsSnapshot { records_in, busy_ms, idle_ms, backpressure_ms, ..Default::default() }
    }

    #[test]
    fn the_first_look_averages_the_whole_life_then_rates_cover_the_interval() {
        let rates = Rates::default();
        let job = JobId::generate();
        let t0 = Instant::now();
        // 2 s of life: 0.5 s busy, 1.5 s backpressured, 4000 records.
        let first = rates.sample(job, 0, 0, t0, &counters(4000, 500, 0, 1500));
        assert_eq!(first.records_in_per_second, 2000.0);
        assert_eq!((first.busy_ratio, first.idle_ratio, first.backpressure_ratio), (0.25, 0.0, 0.75));
        assert_eq!(first.level(), "high");
        // One second later: 500 more records, 100 ms busy and 900 ms idle.
        let second = rates.sample(job, 0, 0, t0 + Duration::from_secs(1), &counters(4500, 600, 900, 1500));
        assert_eq!(second.records_in_per_second, 500.0);
        assert!((second.busy_ratio - 0.1).abs() < 1e-9 && (second.idle_ratio - 0.9).abs() < 1e-9, "{second:?}");
        assert_eq!(second.backpressure_ratio, 0.0);
        assert_eq!(second.level(), "ok");
        // Too soon after: still measured from the first sample.
        let soon = rates.sample(job, 0, 0, t0 + Duration::from_millis(1050), &counters(4510, 610, 940, 1500));
        assert!((soon.records_in_per_second - 510.0 / 1.05).abs() < 1e-6, "{soon:?}");
    }

    #[test]
    fn rates_look_back_about_the_window_and_forget_a_restarted_attempt() {
        let rates = Rates::default();
        let job = JobId::generate();
        let t0 = Instant::now();
        for s in 0..=10u64 {
            // 1000 records a second, every second.
            rates.sample(job, 1, 2, t0 + Duration::from_secs(s), &counters(1000 * s, 1000 * s, 0, 0));
        }
        // At 11 s the oldest kept sample is the newest at least WINDOW old: 6 s.
        let at = t0 + Duration::from_secs(11);
        let r = rates.sample(job, 1, 2, at, &counters(11_000 + 6000, 11_000, 0, 0));
        assert!((r.records_in_per_second - (17_000.0 - 6000.0) / 5.0).abs() < 1e-6, "{r:?}");
        // Counters back at zero: a new attempt, measured over its own life.
        let r = rates.sample(job, 1, 2, at + Duration::from_secs(1), &counters(300, 100, 100, 0));
        assert_eq!(r.records_in_per_second, 1500.0);
        assert_eq!(r.busy_ratio, 0.5);
        // Another subtask has its own samples.
        let other = rates.sample(job, 1, 3, at, &TaskMetricsSnapshot::default());
        assert_eq!(other, SubtaskRates::default());
    }

    #[test]
    fn levels_follow_flinks_thresholds() {
        assert_eq!([level(0.0), level(0.10), level(0.11), level(0.5), level(0.51)], ["ok", "ok", "low", "low", "high"]);
    }
}
