//! Evictors: drop records from a window before (or after) its function runs (Flink's
//! `Evictor`).
//!
//! A window with an evictor keeps every record with its timestamp, not an incremental
//! aggregate: when it fires, the evictor removes some, the aggregate (or process function)
//! runs over the rest, and, if asked, the evictor removes more afterwards; what remains is the
//! window's contents from then on. The built-in ones are Flink's: [`CountEvictor`],
//! [`TimeEvictor`] and [`DeltaEvictor`].

use std::sync::Arc;
use std::time::Duration;

use weir_dataplane::{NO_TIMESTAMP, Timestamp};

use crate::api::functions::AggregateFunction;
use crate::api::window::TimeWindow;
use crate::api::window::operator::WindowContents;
use crate::base::data::Data;
use crate::base::task_io::TaskIo;

/// A record in a window with its event timestamp (Flink's `TimestampedValue`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Timestamped<T> {
    /// The record.
    pub value: T,
    /// Its event timestamp (`NO_TIMESTAMP` if it has none).
    pub timestamp: Timestamp,
}

/// What an evictor sees besides the records.
#[derive(Debug, Clone, Copy)]
pub struct EvictorContext {
    /// The current watermark.
    pub watermark: Timestamp,
    /// The current processing time (ms since the epoch).
    pub processing_time: Timestamp,
}

/// Removes records from a firing window (Flink's `Evictor`): `elements` are in arrival order.
///
/// ```
/// use weir_actors::prelude::*;
///
/// /// Drops the records below 10 before the window function runs.
/// struct Small;
///
/// impl Evictor<u32> for Small {
///     fn evict_before(&self, elements: &mut Vec<Timestamped<u32>>, _: &TimeWindow, _: &EvictorContext) {
///         elements.retain(|e| e.value >= 10);
///     }
/// }
///
/// let out = MiniCluster::collect(|env| {
///     env.from_vec_timestamped("v", vec![(5, 10), (50, 20), (7, 30)])
///         .key_by(|_: &u32| 0u8)
///         .window(Tumbling::event_time(std::time::Duration::from_secs(1)))
///         .evictor(Small)
///         .aggregate("count", Count)
/// }).unwrap();
/// assert_eq!(out[0].value, 1);
/// ```
pub trait Evictor<T>: Send + Sync + 'static {
    /// Removes records before the window function runs.
    fn evict_before(&self, elements: &mut Vec<Timestamped<T>>, window: &TimeWindow, ctx: &EvictorContext) {
        let _ = (elements, window, ctx);
    }

    /// Removes records after the window function ran.
    fn evict_after(&self, elements: &mut Vec<Timestamped<T>>, window: &TimeWindow, ctx: &EvictorContext) {
        let _ = (elements, window, ctx);
    }
}

/// Keeps the last `n` records of a window (Flink's `CountEvictor`); with
/// [`of_after`](Self::of_after) it evicts after the window function ran instead of before.
#[derive(Debug, Clone, Copy)]
pub struct CountEvictor {
    n: usize,
    after: bool,
}

impl CountEvictor {
    /// Keeps the last `n` records, evicting before the function.
    pub fn of(n: usize) -> Self {
        CountEvictor { n, after: false }
    }

    /// Keeps the last `n` records, evicting after the function.
    pub fn of_after(n: usize) -> Self {
        CountEvictor { n, after: true }
    }

    fn evict<T>(&self, elements: &mut Vec<Timestamped<T>>) {
        if elements.len() > self.n {
            elements.drain(..elements.len() - self.n);
        }
    }
}

/// Keeps the records within `size` of the newest record's timestamp (Flink's `TimeEvictor`:
/// evicts those at or before `max timestamp - size`); records without timestamps are kept.
#[derive(Debug, Clone, Copy)]
pub struct TimeEvictor {
    size: i64,
    after: bool,
}

impl TimeEvictor {
    /// Keeps `size` of time, evicting before the function.
    pub fn of(size: Duration) -> Self {
        TimeEvictor { size: i64::try_from(size.as_millis()).unwrap_or(i64::MAX), after: false }
    }

    /// Keeps `size` of time, evicting after the function.
    pub fn of_after(size: Duration) -> Self {
        TimeEvictor { after: true, ..TimeEvictor::of(size) }
    }

    fn evict<T>(&self, elements: &mut Vec<Timestamped<T>>) {
        if elements.iter().any(|e| e.timestamp == NO_TIMESTAMP) {
            return;
        }
        let Some(newest) = elements.iter().map(|e| e.timestamp).max() else { return };
        let cutoff = newest.saturating_sub(self.size);
        elements.retain(|e| e.timestamp > cutoff);
    }
}

/// How far apart two records are, for a [`DeltaEvictor`].
type Delta<T> = Arc<dyn Fn(&T, &T) -> f64 + Send + Sync>;

/// Evicts the records whose `delta` to the newest record is at least `threshold` (Flink's
/// `DeltaEvictor`).
pub struct DeltaEvictor<T> {
    threshold: f64,
    delta: Delta<T>,
    after: bool,
}

impl<T> DeltaEvictor<T> {
    /// Evicts before the function the records with `delta(record, newest) >= threshold`.
    pub fn of(threshold: f64, delta: impl Fn(&T, &T) -> f64 + Send + Sync + 'static) -> Self {
        DeltaEvictor { threshold, delta: Arc::new(delta), after: false }
    }

    /// As [`of`](Self::of), evicting after the function.
    pub fn of_after(threshold: f64, delta: impl Fn(&T, &T) -> f64 + Send + Sync + 'static) -> Self {
        DeltaEvictor { after: true, ..DeltaEvictor::of(threshold, delta) }
    }

    fn evict(&self, elements: &mut Vec<Timestamped<T>>) {
        let Some(last) = elements.pop() else { return };
        elements.retain(|e| (self.delta)(&e.value, &last.value) < self.threshold);
        // The newest record's delta to itself is zero in any sane metric: it stays unless
        // the threshold is zero or below, as Flink's loop would have it.
        if (self.delta)(&last.value, &last.value) < self.threshold {
            elements.push(last);
        }
    }
}

/// The built-in evictors evict once per firing, before the function or (`after`) after it.
macro_rules! before_or_after {
    ($($evictor:ty),*) => {$(
        impl<T: 'static> Evictor<T> for $evictor {
            fn evict_before(&self, elements: &mut Vec<Timestamped<T>>, _: &TimeWindow, _: &EvictorContext) {
                if !self.after {
                    self.evict(elements);
                }
            }
            fn evict_after(&self, elements: &mut Vec<Timestamped<T>>, _: &TimeWindow, _: &EvictorContext) {
                if self.after {
                    self.evict(elements);
                }
            }
        }
    )*};
}

before_or_after!(CountEvictor, TimeEvictor, DeltaEvictor<T>);

/// A window's contents under an evictor: every record with its timestamp; the aggregate
/// runs over what the evictor leaves when the window fires (Flink's `EvictingWindowOperator`).
pub(crate) struct Evicting<A, T> {
    pub(crate) agg: A,
    pub(crate) evictor: Arc<dyn Evictor<T>>,
}

impl<T: Data, A: AggregateFunction<T>> WindowContents<T> for Evicting<A, T> {
    type Acc = Vec<Timestamped<T>>;
    type Out = A::Out;

    fn create(&self) -> Self::Acc {
        Vec::new()
    }

    #[inline]
    fn add(&self, acc: &mut Self::Acc, value: &T, ts: Timestamp) {
        acc.push(Timestamped { value: value.clone(), timestamp: ts });
    }

    fn merge(&self, acc: &mut Self::Acc, other: Self::Acc) {
        acc.extend(other);
    }

    fn fire(&self, acc: &mut Self::Acc, window: &TimeWindow, io: &TaskIo) -> (Self::Out, bool) {
        let before = acc.len();
        let ctx = EvictorContext { watermark: io.watermark, processing_time: io.now_ms() };
        self.evictor.evict_before(acc, window, &ctx);
        let mut folded = self.agg.create();
        for e in acc.iter() {
            self.agg.add(&mut folded, &e.value);
        }
        let out = self.agg.result(&folded);
        self.evictor.evict_after(acc, window, &ctx);
        (out, acc.len() != before)
    }
}
