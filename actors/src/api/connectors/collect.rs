//! Sinks for tests and benchmarks: one that collects records in memory, one that counts and
//! drops them.

use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use weir_dataplane::Timestamp;

use crate::api::sink::Sink;
use crate::base::data::Data;
use crate::base::error::Result;

/// Collects every record into a shared vector (all subtasks into the same one), visible as
/// soon as it is written. For tests and examples.
#[derive(Debug)]
pub struct CollectSink<T> {
    shared: Arc<Mutex<Vec<T>>>,
    local: Vec<T>,
}

impl<T> Clone for CollectSink<T> {
    fn clone(&self) -> Self {
        CollectSink { shared: self.shared.clone(), local: Vec::new() }
    }
}

/// Reads what a [`CollectSink`] collected.
#[derive(Debug)]
pub struct CollectHandle<T> {
    shared: Arc<Mutex<Vec<T>>>,
}

impl<T> Clone for CollectHandle<T> {
    fn clone(&self) -> Self {
        CollectHandle { shared: self.shared.clone() }
    }
}

impl<T> CollectHandle<T> {
    /// Takes what has been collected so far.
    pub fn take(&self) -> Vec<T> {
        std::mem::take(&mut *self.shared.lock().expect("collect lock"))
    }

    /// How many records have been collected so far.
    pub fn len(&self) -> usize {
        self.shared.lock().expect("collect lock").len()
    }

    /// Whether nothing has been collected yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<T> CollectSink<T> {
    /// A sink and the handle that reads it.
    pub fn new() -> (Self, CollectHandle<T>) {
        let shared = Arc::new(Mutex::new(Vec::new()));
        (CollectSink { shared: shared.clone(), local: Vec::new() }, CollectHandle { shared })
    }

    fn publish(&mut self) {
        self.shared.lock().expect("collect lock").append(&mut self.local);
    }
}

impl<T: Data> Sink for CollectSink<T> {
    type In = T;

    fn write(&mut self, value: T, _timestamp: Option<Timestamp>) -> Result<()> {
        // Visible at once, so tests of unbounded jobs can poll for results (a test sink:
        // a lock per record is fine here).
        self.local.push(value);
        self.publish();
        Ok(())
    }

    fn finish(&mut self) -> Result<()> {
        self.publish();
        Ok(())
    }
}

/// Drops records, counting them (benchmarks).
#[derive(Debug)]
pub struct DiscardSink<T> {
    count: Arc<AtomicU64>,
    local: u64,
    _types: PhantomData<fn(T)>,
}

impl<T> Clone for DiscardSink<T> {
    fn clone(&self) -> Self {
        DiscardSink { count: self.count.clone(), local: 0, _types: PhantomData }
    }
}

impl<T> DiscardSink<T> {
    /// A discarding sink and the counter of what it dropped (updated every 4096 records and at the end).
    pub fn new() -> (Self, Arc<AtomicU64>) {
        let count = Arc::new(AtomicU64::new(0));
        (DiscardSink { count: count.clone(), local: 0, _types: PhantomData }, count)
    }

    /// A discarding sink that adds to an existing counter.
    pub fn counting_into(count: Arc<AtomicU64>) -> Self {
        DiscardSink { count, local: 0, _types: PhantomData }
    }
}

impl<T: Data> Sink for DiscardSink<T> {
    type In = T;

    #[inline]
    fn write(&mut self, value: T, _timestamp: Option<Timestamp>) -> Result<()> {
        drop(value);
        self.local += 1;
        if self.local == 4096 {
            self.count.fetch_add(self.local, Ordering::Relaxed);
            self.local = 0;
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<()> {
        self.count.fetch_add(self.local, Ordering::Relaxed);
        self.local = 0;
        Ok(())
    }
}
