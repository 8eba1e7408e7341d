//! Built-in operators for the builder's closures (map, filter, flat_map) and the aggregate
//! functions of windows and keyed aggregations.

use std::marker::PhantomData;

use crate::api::operator::{Context, Operator};
use crate::base::data::Data;
use crate::base::error::Result;

/// `map`: one output per input.
pub struct MapOp<I, O, F> {
    f: F,
    _types: PhantomData<fn(I) -> O>,
}

impl<I, O, F> MapOp<I, O, F> {
    /// Wraps a closure.
    pub fn new(f: F) -> Self {
        MapOp { f, _types: PhantomData }
    }
}

impl<I: Data, O: Data, F: FnMut(I) -> O + Send + 'static> Operator for MapOp<I, O, F> {
    type In = I;
    type Out = O;
    #[inline]
    fn process(&mut self, value: I, ctx: &mut Context<'_, O>) -> Result<()> {
        ctx.emit((self.f)(value));
        Ok(())
    }
}

/// `filter`: keeps the records the predicate accepts.
pub struct FilterOp<T, F> {
    f: F,
    _types: PhantomData<fn(T)>,
}

impl<T, F> FilterOp<T, F> {
    /// Wraps a predicate.
    pub fn new(f: F) -> Self {
        FilterOp { f, _types: PhantomData }
    }
}

impl<T: Data, F: FnMut(&T) -> bool + Send + 'static> Operator for FilterOp<T, F> {
    type In = T;
    type Out = T;
    #[inline]
    fn process(&mut self, value: T, ctx: &mut Context<'_, T>) -> Result<()> {
        if (self.f)(&value) {
            ctx.emit(value);
        }
        Ok(())
    }
}

/// `flat_map`: any number of outputs per input.
pub struct FlatMapOp<I, O, It, F> {
    f: F,
    _types: PhantomData<fn(I) -> (O, It)>,
}

impl<I, O, It, F> FlatMapOp<I, O, It, F> {
    /// Wraps a closure returning an iterable.
    pub fn new(f: F) -> Self {
        FlatMapOp { f, _types: PhantomData }
    }
}

impl<I, O, It, F> Operator for FlatMapOp<I, O, It, F>
where
    I: Data,
    O: Data,
    It: IntoIterator<Item = O> + 'static,
    F: FnMut(I) -> It + Send + 'static,
{
    type In = I;
    type Out = O;
    #[inline]
    fn process(&mut self, value: I, ctx: &mut Context<'_, O>) -> Result<()> {
        for out in (self.f)(value) {
            ctx.emit(out);
        }
        Ok(())
    }
}

/// `process` on a non-keyed stream (Flink's `ProcessFunction`): a closure given each record
/// and a [`Context`] to emit to the main output or to side outputs.
pub struct ProcessOp<I, O, F> {
    f: F,
    _types: PhantomData<fn(I) -> O>,
}

impl<I, O, F> ProcessOp<I, O, F> {
    /// Wraps a closure.
    pub fn new(f: F) -> Self {
        ProcessOp { f, _types: PhantomData }
    }
}

impl<I: Data, O: Data, F> Operator for ProcessOp<I, O, F>
where
    F: FnMut(I, &mut Context<'_, O>) -> Result<()> + Send + 'static,
{
    type In = I;
    type Out = O;
    #[inline]
    fn process(&mut self, value: I, ctx: &mut Context<'_, O>) -> Result<()> {
        (self.f)(value, ctx)
    }
}

/// `map` with a fallible closure: an `Err` fails the job, naming the operator.
pub struct TryMapOp<I, O, F> {
    f: F,
    _types: PhantomData<fn(I) -> O>,
}

impl<I, O, F> TryMapOp<I, O, F> {
    /// Wraps a fallible closure.
    pub fn new(f: F) -> Self {
        TryMapOp { f, _types: PhantomData }
    }
}

impl<I: Data, O: Data, F: FnMut(I) -> Result<O> + Send + 'static> Operator for TryMapOp<I, O, F> {
    type In = I;
    type Out = O;
    fn process(&mut self, value: I, ctx: &mut Context<'_, O>) -> Result<()> {
        ctx.emit((self.f)(value)?);
        Ok(())
    }
}

/// An incremental aggregation: an accumulator per key (and window), updated per record.
///
/// `merge` is needed by session windows, which merge when a record bridges two sessions.
pub trait AggregateFunction<In>: Send + Sync + 'static {
    /// The accumulator kept in state.
    type Acc: Data;
    /// The result emitted.
    type Out: Data;
    /// A fresh accumulator.
    fn create(&self) -> Self::Acc;
    /// Adds one record.
    fn add(&self, acc: &mut Self::Acc, value: &In);
    /// Folds `other` into `acc`.
    fn merge(&self, acc: &mut Self::Acc, other: Self::Acc);
    /// The result of an accumulator.
    fn result(&self, acc: &Self::Acc) -> Self::Out;
}

/// Counts records.
#[derive(Debug, Clone, Copy, Default)]
pub struct Count;

impl<In> AggregateFunction<In> for Count {
    type Acc = u64;
    type Out = u64;
    fn create(&self) -> u64 {
        0
    }
    #[inline]
    fn add(&self, acc: &mut u64, _value: &In) {
        *acc += 1;
    }
    fn merge(&self, acc: &mut u64, other: u64) {
        *acc += other;
    }
    fn result(&self, acc: &u64) -> u64 {
        *acc
    }
}

/// Sums a field of each record, extracted as `i64`.
pub struct Sum<F> {
    field: F,
}

impl<F> Sum<F> {
    /// Sums `field(record)`.
    pub fn of(field: F) -> Self {
        Sum { field }
    }
}

impl<In, F: Fn(&In) -> i64 + Send + Sync + 'static> AggregateFunction<In> for Sum<F> {
    type Acc = i64;
    type Out = i64;
    fn create(&self) -> i64 {
        0
    }
    /// Wraps on overflow, as Flink's sum of a Java `long` does (and the same in every build
    /// profile: never a panic).
    #[inline]
    fn add(&self, acc: &mut i64, value: &In) {
        *acc = acc.wrapping_add((self.field)(value));
    }
    fn merge(&self, acc: &mut i64, other: i64) {
        *acc = acc.wrapping_add(other);
    }
    fn result(&self, acc: &i64) -> i64 {
        *acc
    }
}

/// An aggregation by a reduce function `f(a, b) -> c` over records of one type.
pub struct ReduceAgg<T, F> {
    f: F,
    _types: PhantomData<fn(T) -> T>,
}

impl<T, F> ReduceAgg<T, F> {
    /// Wraps a reduce function.
    pub fn new(f: F) -> Self {
        ReduceAgg { f, _types: PhantomData }
    }
}

impl<T: Data, F: Fn(&T, &T) -> T + Send + Sync + 'static> AggregateFunction<T> for ReduceAgg<T, F> {
    type Acc = Option<T>;
    type Out = T;
    fn create(&self) -> Option<T> {
        None
    }
    fn add(&self, acc: &mut Option<T>, value: &T) {
        *acc = Some(match acc.take() {
            Some(a) => (self.f)(&a, value),
            None => value.clone(),
        });
    }
    fn merge(&self, acc: &mut Option<T>, other: Option<T>) {
        if let Some(o) = other {
            self.add(acc, &o);
        }
    }
    fn result(&self, acc: &Option<T>) -> T {
        acc.clone().expect("a reduce result exists only after a record")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Defect: the sum panicked on overflow in debug builds (and wrapped in release ones).
    #[test]
    fn sum_wraps_on_overflow_as_flinks_sum_of_longs() {
        let sum = Sum::of(|v: &i64| *v);
        let mut acc = AggregateFunction::<i64>::create(&sum);
        sum.add(&mut acc, &i64::MAX);
        sum.add(&mut acc, &1);
        assert_eq!(AggregateFunction::<i64>::result(&sum, &acc), i64::MIN);
        AggregateFunction::<i64>::merge(&sum, &mut acc, -1);
        assert_eq!(acc, i64::MAX);
    }
}
