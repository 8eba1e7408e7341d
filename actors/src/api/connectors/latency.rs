//! A sink that measures end-to-end latency: for every record, the wall clock when it reaches
//! the sink minus its timestamp. Fed by a source whose event time is when each event was made
//! (a [`Generator`](super::Generator) of a real-time [`EventSequence`](super::EventSequence)),
//! that is the time from an event's making to its result's arrival; a window's result carries
//! the window's last millisecond, so its latency counts from the window's end (and includes
//! the watermark's delay).
//!
//! Each subtask keeps a [`LatencyHistogram`] and writes it to `DIR/latency-<subtask>.tsv`
//! when its input ends, for a benchmark to merge ([`LatencyHistogram::read_dir`]). Reading the
//! clock for every record would cost a stateless pipeline a good part of its rate, so after
//! its first 1024 records a subtask measures one record in 16 (a sample spread evenly over
//! the run).

use std::fmt::Write as _;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

use weir_dataplane::Timestamp;

use crate::api::operator::OpenContext;
use crate::api::sink::Sink;
use crate::base::data::Data;
use crate::base::error::{Result, WeirError};

/// Sub-buckets per power of two: values are kept to within 1/32 (about 3 %).
const SUB_BUCKETS: u64 = 32;
const SUB_BITS: u32 = SUB_BUCKETS.trailing_zeros();

/// Counts of microsecond latencies in log-linear buckets: exact below 32 µs, then 32 buckets
/// per power of two (as HdrHistogram with two significant digits).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LatencyHistogram {
    counts: Vec<u64>,
    /// Records without a timestamp (not measured).
    pub untimed: u64,
    /// Records whose timestamp was still ahead of the wall clock (not measured): results
    /// released early, as a bounded input's end fires every window at once.
    pub early: u64,
}

impl LatencyHistogram {
    fn bucket(micros: u64) -> usize {
        if micros < SUB_BUCKETS {
            return micros as usize;
        }
        let exponent = 63 - micros.leading_zeros();
        let sub = (micros >> (exponent - SUB_BITS)) & (SUB_BUCKETS - 1);
        ((u64::from(exponent - SUB_BITS + 1)) * SUB_BUCKETS + sub) as usize
    }

    /// The lowest value of bucket `i`.
    fn lowest(i: usize) -> u64 {
        let i = i as u64;
        if i < SUB_BUCKETS {
            return i;
        }
        let exponent = i / SUB_BUCKETS + u64::from(SUB_BITS) - 1;
        (SUB_BUCKETS + i % SUB_BUCKETS) << (exponent - u64::from(SUB_BITS))
    }

    /// Counts one latency (µs).
    #[inline]
    pub fn record(&mut self, micros: u64) {
        let b = Self::bucket(micros);
        if b >= self.counts.len() {
            self.counts.resize(b + 1, 0);
        }
        self.counts[b] += 1;
    }

    /// How many latencies were counted.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Adds `other`'s counts.
    pub fn merge(&mut self, other: &LatencyHistogram) {
        if other.counts.len() > self.counts.len() {
            self.counts.resize(other.counts.len(), 0);
        }
        for (mine, theirs) in self.counts.iter_mut().zip(&other.counts) {
            *mine += theirs;
        }
        self.untimed += other.untimed;
        self.early += other.early;
    }

    /// The latency (µs, the lowest of its bucket) below which a fraction `q` of them are;
    /// `None` if none was counted.
    pub fn quantile(&self, q: f64) -> Option<u64> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, &n) in self.counts.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return Some(Self::lowest(i));
            }
        }
        None
    }

    /// As text: `untimed\tN`, `early\tN`, then `<lowest µs>\t<count>` per bucket counted.
    pub fn to_text(&self) -> String {
        let mut text = format!("untimed\t{}\nearly\t{}\n", self.untimed, self.early);
        for (i, &n) in self.counts.iter().enumerate().filter(|(_, n)| **n > 0) {
            let _ = writeln!(text, "{}\t{n}", Self::lowest(i));
        }
        text
    }

    /// Reads [`to_text`](Self::to_text)'s form; an error names the line.
    pub fn parse(text: &str, origin: &Path) -> Result<Self> {
        let mut h = LatencyHistogram::default();
        for (n, line) in text.lines().enumerate() {
            let bad = || WeirError::user(format!("{} line {}: not a latency count: '{line}'", origin.display(), n + 1));
            let (value, count) = line.split_once('\t').ok_or_else(bad)?;
            let count: u64 = count.parse().map_err(|_| bad())?;
            match value {
                "untimed" => h.untimed += count,
                "early" => h.early += count,
                _ => {
                    let b = Self::bucket(value.parse().map_err(|_| bad())?);
                    if b >= h.counts.len() {
                        h.counts.resize(b + 1, 0);
                    }
                    h.counts[b] += count;
                }
            }
        }
        Ok(h)
    }

    /// Merges every subtask's file a [`LatencySink`] wrote into `dir`.
    pub fn read_dir(dir: &Path) -> Result<Self> {
        let mut all = LatencyHistogram::default();
        let entries = std::fs::read_dir(dir).map_err(|e| WeirError::io(format!("cannot read {}", dir.display()), e))?;
        for entry in entries {
            let path = entry.map_err(|e| WeirError::io(format!("cannot read {}", dir.display()), e))?.path();
            if path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("latency-")) {
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| WeirError::io(format!("cannot read {}", path.display()), e))?;
                all.merge(&Self::parse(&text, &path)?);
            }
        }
        Ok(all)
    }
}

/// Measures each record's latency (the wall clock at the sink minus its timestamp) and drops
/// it; see the module docs.
#[derive(Debug)]
pub struct LatencySink<T> {
    dir: PathBuf,
    subtask: usize,
    histogram: LatencyHistogram,
    /// Records written so far (sampled from the 1024th on).
    seen: u64,
    _types: PhantomData<fn(T)>,
}

impl<T> Clone for LatencySink<T> {
    fn clone(&self) -> Self {
        LatencySink::new(self.dir.clone())
    }
}

impl<T> LatencySink<T> {
    /// Writes each subtask's histogram into directory `dir` (created if missing).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        LatencySink {
            dir: dir.into(),
            subtask: 0,
            histogram: LatencyHistogram::default(),
            seen: 0,
            _types: PhantomData,
        }
    }
}

impl<T: Data> Sink for LatencySink<T> {
    type In = T;

    fn open(&mut self, ctx: &OpenContext<'_>) -> Result<()> {
        self.subtask = ctx.subtask().index;
        std::fs::create_dir_all(&self.dir)
            .map_err(|e| WeirError::io(format!("cannot create {}", self.dir.display()), e))
    }

    #[inline]
    fn write(&mut self, _: T, timestamp: Option<Timestamp>) -> Result<()> {
        self.seen += 1;
        if self.seen > 1024 && !self.seen.is_multiple_of(16) {
            return Ok(());
        }
        match timestamp {
            Some(t) => {
                let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
                let now = u64::try_from(now.as_micros()).unwrap_or(u64::MAX);
                // The record's millisecond began at `at`: it is early only once that is ahead.
                let at = u64::try_from(t.max(0)).unwrap_or(0).saturating_mul(1000);
                match now.checked_sub(at) {
                    Some(latency) => self.histogram.record(latency),
                    None => self.histogram.early += 1,
                }
            }
            None => self.histogram.untimed += 1,
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<()> {
        let path = self.dir.join(format!("latency-{}.tsv", self.subtask));
        std::fs::write(&path, self.histogram.to_text())
            .map_err(|e| WeirError::io(format!("cannot write {}", path.display()), e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_keep_values_to_within_a_thirty_second() {
        for v in [0, 1, 31, 32, 33, 63, 64, 65, 100, 1000, 4_999, 1_000_000, u64::MAX / 2] {
            let low = LatencyHistogram::lowest(LatencyHistogram::bucket(v));
            assert!(low <= v && v - low <= v / 32, "{v} in the bucket from {low}");
        }
        for i in 0..1000 {
            assert_eq!(LatencyHistogram::bucket(LatencyHistogram::lowest(i)), i);
        }
    }

    #[test]
    fn quantiles_merge_and_survive_the_text_form() {
        let mut a = LatencyHistogram::default();
        for v in 1..=99 {
            a.record(v * 100);
        }
        let mut b = LatencyHistogram::default();
        b.record(1_000_000);
        b.untimed = 3;
        b.early = 2;
        a.merge(&b);
        assert_eq!(a.count(), 100);
        let p50 = a.quantile(0.5).unwrap();
        assert!((4_900..=5_000).contains(&p50), "{p50}");
        assert!(a.quantile(1.0).unwrap() >= 1_000_000 * 31 / 32);
        let back = LatencyHistogram::parse(&a.to_text(), Path::new("x")).unwrap();
        assert_eq!(back, a);
        let bad = LatencyHistogram::parse("untimed\t1\n12\tx\n", Path::new("h.tsv")).unwrap_err();
        assert!(bad.to_string().contains("h.tsv line 2"), "{bad}");
        assert_eq!(LatencyHistogram::default().quantile(0.5), None);
    }
}
