//! Async I/O (Flink's `AsyncDataStream` and `AsyncWaitOperator`): each record starts a
//! request to an external system (a future run on the subtask's tokio runtime), up to
//! `capacity` at once, so that a slow call does not stall the subtask; results are emitted
//! in input order (`async_wait_ordered`) or as they complete (`async_wait_unordered`, which
//! still never moves a result across a watermark).
//!
//! As Flink: a result keeps its input record's timestamp; a request that does not complete
//! within the timeout is handed to [`AsyncFunction::timeout`] (by default the job fails); at
//! a checkpoint the inputs whose results are not yet emitted are kept (operator list state,
//! split when the parallelism changes) and their requests are started again on restore, so
//! the external system may see a request twice but every result is emitted exactly once; at
//! the end of a bounded input the operator waits for every request before it ends.
//!
//! Decision: the async operator runs as a task of its own, never chained with what follows
//! it: its successors must see the watermark it forwarded, which trails the subtask's while
//! requests run (Flink chains it and keeps the two apart in its mailbox).

use std::collections::VecDeque;
use std::future::Future;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::time::Duration;

use weir_dataplane::{CheckpointBarrier, Timestamp};

use crate::api::operator::OperatorLists;
use crate::api::stream::DataStream;
use crate::base::data::Data;
use crate::base::error::{Result, WeirError};
use crate::base::link::{Link, LinkInfo, Outputs};
use crate::base::state::OperatorState;
use crate::base::task_io::TaskIo;
use crate::base::time::TimeDomain;
use crate::runtime::job_graph::NodeKind;
use crate::runtime::nodes::MakeLink;

/// A request per record to an external system (Flink's `AsyncFunction`).
///
/// ```
/// use std::future::Future;
/// use std::time::Duration;
/// use weir_actors::prelude::*;
///
/// /// Looks a user's name up in a (simulated) remote service.
/// struct Lookup;
///
/// impl AsyncFunction for Lookup {
///     type In = u32;
///     type Out = String;
///     fn invoke(&self, user: u32) -> impl Future<Output = Result<Vec<String>>> + Send + 'static {
///         async move {
///             tokio::time::sleep(Duration::from_millis(u64::from(5 - user))).await;
///             Ok(vec![format!("user {user}")])
///         }
///     }
/// }
///
/// let out = MiniCluster::collect(|env| {
///     env.from_vec("users", vec![1, 2, 3]).async_wait_ordered("lookup", Lookup, Duration::from_secs(5), 10)
/// }).unwrap();
/// assert_eq!(out, ["user 1", "user 2", "user 3"]);
/// ```
pub trait AsyncFunction: Send + Sync + 'static {
    /// The input record type.
    type In: Data;
    /// The result type (any number of results per input).
    type Out: Data;

    /// Starts the request for `input`: the future runs on the subtask's tokio runtime, beside
    /// the subtask's loop. An error fails the job, naming the operator.
    fn invoke(&self, input: Self::In) -> impl Future<Output = Result<Vec<Self::Out>>> + Send + 'static;

    /// The request for `input` did not complete within the timeout: what to emit instead. By
    /// default an error, which fails the job (as Flink's).
    fn timeout(&self, input: &Self::In) -> Result<Vec<Self::Out>> {
        let _ = input;
        Err(WeirError::user("an async request timed out"))
    }
}

impl<T: Data> DataStream<T> {
    /// Runs `f`'s request for each record, at most `capacity` at once, each given `timeout`;
    /// emits the results in the order of the input records (Flink's `orderedWait`).
    ///
    /// ```
    /// use std::future::Future;
    /// use std::time::Duration;
    /// use weir_actors::prelude::*;
    ///
    /// /// Never answers: every request times out, and `timeout` gives a fallback.
    /// struct Down;
    /// impl AsyncFunction for Down {
    ///     type In = u32;
    ///     type Out = String;
    ///     fn invoke(&self, _: u32) -> impl Future<Output = Result<Vec<String>>> + Send + 'static {
    ///         std::future::pending()
    ///     }
    ///     fn timeout(&self, n: &u32) -> Result<Vec<String>> {
    ///         Ok(vec![format!("{n}: unknown")])
    ///     }
    /// }
    ///
    /// let out = MiniCluster::collect(|env| {
    ///     env.from_vec("n", vec![1, 2]).async_wait_ordered("lookup", Down, Duration::from_millis(10), 2)
    /// }).unwrap();
    /// assert_eq!(out, ["1: unknown", "2: unknown"]);
    /// ```
    pub fn async_wait_ordered<F: AsyncFunction<In = T>>(
        &self,
        name: &str,
        f: F,
        timeout: Duration,
        capacity: usize,
    ) -> DataStream<F::Out> {
        self.async_wait(name, f, timeout, capacity, true)
    }

    /// As [`async_wait_ordered`](Self::async_wait_ordered), emitting each result as soon as
    /// its request completes, but never across a watermark (Flink's `unorderedWait`).
    ///
    /// ```
    /// use std::future::Future;
    /// use std::time::Duration;
    /// use weir_actors::prelude::*;
    ///
    /// /// Answers later the smaller the number.
    /// struct Slow;
    /// impl AsyncFunction for Slow {
    ///     type In = u64;
    ///     type Out = u64;
    ///     fn invoke(&self, n: u64) -> impl Future<Output = Result<Vec<u64>>> + Send + 'static {
    ///         async move {
    ///             tokio::time::sleep(Duration::from_millis(60 - 20 * n)).await;
    ///             Ok(vec![n])
    ///         }
    ///     }
    /// }
    ///
    /// let out = MiniCluster::collect(|env| {
    ///     env.from_vec("n", vec![0, 1, 2]).async_wait_unordered("slow", Slow, Duration::from_secs(5), 3)
    /// }).unwrap();
    /// assert_eq!(out, [2, 1, 0]);
    /// ```
    pub fn async_wait_unordered<F: AsyncFunction<In = T>>(
        &self,
        name: &str,
        f: F,
        timeout: Duration,
        capacity: usize,
    ) -> DataStream<F::Out> {
        self.async_wait(name, f, timeout, capacity, false)
    }

    fn async_wait<F: AsyncFunction<In = T>>(
        &self,
        name: &str,
        f: F,
        timeout: Duration,
        capacity: usize,
        ordered: bool,
    ) -> DataStream<F::Out> {
        if capacity == 0 {
            self.fail(WeirError::Graph(format!("async operator '{name}': the capacity must be at least 1")));
        }
        let f = Arc::new(f);
        let make: MakeLink<T, F::Out> = Arc::new(move |name, down| {
            Box::new(AsyncLink::new(f.clone(), AsyncSpec { ordered, timeout, capacity: capacity.max(1) }, down, name))
        });
        self.then(name, NodeKind::Operator, make, None).disable_chaining()
    }
}

/// An input whose result is not emitted yet, as a checkpoint keeps it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
enum Pending<I> {
    Record(I, Timestamp),
    Watermark(Timestamp),
}

/// Where a record's request stands.
enum Call<O> {
    /// Over capacity: not started yet.
    Waiting,
    Running,
    Done(Vec<O>),
    /// Its results went downstream (unordered: before older records' did).
    Emitted,
}

/// An element in input order.
enum Slot<I, O> {
    Record { input: I, ts: Timestamp, call: Call<O> },
    Watermark(Timestamp),
}

/// A request's outcome: its results or error, or its timeout.
type Outcome<O> = std::result::Result<Result<Vec<O>>, tokio::time::error::Elapsed>;

/// A completed request: its input's sequence number and its outcome.
type Completed<O> = (u64, Outcome<O>);

/// How an async operator runs, given once by the builder.
struct AsyncSpec {
    ordered: bool,
    timeout: Duration,
    capacity: usize,
}

/// The name of the in-flight inputs' list state.
const IN_FLIGHT: &str = "in-flight";

/// Runs one async operator (the head of its chain).
struct AsyncLink<F: AsyncFunction> {
    f: Arc<F>,
    spec: AsyncSpec,
    /// Records and watermarks in input order, from the oldest not yet emitted.
    queue: VecDeque<Slot<F::In, F::Out>>,
    /// The sequence number of `queue[0]`.
    base: u64,
    /// The sequence number of the first record not started (or the end of the queue).
    next_start: u64,
    /// Records started and not yet emitted (what the capacity bounds).
    active: usize,
    /// Records not started.
    waiting: usize,
    /// Requests running, aborted when the operator goes.
    running: tokio::task::JoinSet<()>,
    /// Where requests send their outcome, and where the link takes them.
    done: Sender<Completed<F::Out>>,
    completed: Receiver<Completed<F::Out>>,
    runtime: Option<Runtime>,
    down: Outputs<F::Out>,
    name: LinkInfo,
}

/// Where the requests run: the subtask's runtime, or (outside any, as in the operator
/// harness) one of the operator's own.
enum Runtime {
    Shared(tokio::runtime::Handle),
    Own(tokio::runtime::Runtime),
}

impl Runtime {
    fn handle(&self) -> &tokio::runtime::Handle {
        match self {
            Runtime::Shared(handle) => handle,
            Runtime::Own(runtime) => runtime.handle(),
        }
    }

    fn open() -> Result<Runtime> {
        match tokio::runtime::Handle::try_current() {
            Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::CurrentThread => {
                Err(WeirError::runtime("async I/O needs tokio's multi-threaded runtime, not a current-thread one"))
            }
            Ok(handle) => Ok(Runtime::Shared(handle)),
            Err(_) => tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .map(Runtime::Own)
                .map_err(|e| WeirError::runtime(format!("cannot start a runtime for async I/O: {e}"))),
        }
    }
}

impl<F: AsyncFunction> AsyncLink<F> {
    fn new(f: Arc<F>, spec: AsyncSpec, down: Outputs<F::Out>, name: LinkInfo) -> Self {
        let (done, completed) = std::sync::mpsc::channel();
        AsyncLink {
            f,
            spec,
            queue: VecDeque::new(),
            base: 0,
            next_start: 0,
            active: 0,
            waiting: 0,
            running: tokio::task::JoinSet::new(),
            done,
            completed,
            runtime: None,
            down,
            name,
        }
    }

    fn push(&mut self, input: F::In, ts: Timestamp) {
        self.queue.push_back(Slot::Record { input, ts, call: Call::Waiting });
        self.waiting += 1;
    }

    /// Starts waiting requests, oldest first, while there is capacity; holds the input back
    /// while some must wait.
    fn start(&mut self, io: &mut TaskIo) {
        let Some(runtime) = &self.runtime else { return };
        let mut at = (self.next_start.max(self.base) - self.base) as usize;
        while self.waiting > 0 && self.active < self.spec.capacity {
            if let Some(Slot::Record { input, call: call @ Call::Waiting, .. }) = self.queue.get_mut(at) {
                let request = self.f.invoke(input.clone());
                let (id, timeout, done) = (self.base + at as u64, self.spec.timeout, self.done.clone());
                let wake = io.async_work.wake.clone();
                self.running.spawn_on(
                    async move {
                        let outcome = tokio::time::timeout(timeout, request).await;
                        // Sent before the wake: the loop finds it when it wakes.
                        let _ = done.send((id, outcome));
                        wake.notify_one();
                    },
                    runtime.handle(),
                );
                *call = Call::Running;
                self.waiting -= 1;
                self.active += 1;
                io.async_work.running += 1;
            }
            at += 1;
        }
        self.next_start = self.base + at as u64;
        io.async_work.input_held = self.waiting > 0 || self.active >= self.spec.capacity;
    }

    /// Takes the outcomes of the requests that completed.
    fn take_results(&mut self, io: &mut TaskIo) -> Result<()> {
        while let Some(joined) = self.running.try_join_next() {
            if let Err(e) = joined
                && e.is_panic()
            {
                return Err(WeirError::user("an async request panicked"));
            }
        }
        while let Ok((id, outcome)) = self.completed.try_recv() {
            self.complete(id, outcome, io)?;
        }
        Ok(())
    }

    fn complete(&mut self, id: u64, outcome: Outcome<F::Out>, io: &mut TaskIo) -> Result<()> {
        io.async_work.running -= 1;
        let at = id.checked_sub(self.base).and_then(|at| usize::try_from(at).ok());
        let Some(Slot::Record { input, call, .. }) = at.and_then(|at| self.queue.get_mut(at)) else {
            return Ok(()); // a request of before a restore
        };
        let results = match outcome {
            Ok(results) => results?,
            Err(_) => self.f.timeout(input)?,
        };
        *call = Call::Done(results);
        Ok(())
    }

    /// Emits what may go downstream now: ordered, the completed records at the front and the
    /// watermarks between them; unordered, every completed record before the first
    /// watermark, then that watermark once nothing is left before it.
    fn emit(&mut self, io: &mut TaskIo) {
        loop {
            if !self.spec.ordered {
                for slot in self.queue.iter_mut() {
                    let Slot::Record { ts, call, .. } = slot else { break };
                    if let Call::Done(_) = call
                        && let Call::Done(results) = std::mem::replace(call, Call::Emitted)
                    {
                        self.active -= 1;
                        for r in results {
                            self.down.record(r, *ts, io);
                        }
                    }
                }
            }
            match self.queue.front_mut() {
                Some(Slot::Watermark(wm)) => {
                    let wm = *wm;
                    self.down.watermark(wm, io);
                }
                Some(Slot::Record { call: Call::Emitted, .. }) => {}
                Some(Slot::Record { ts, call: call @ Call::Done(_), .. }) => {
                    if let Call::Done(results) = std::mem::replace(call, Call::Emitted) {
                        self.active -= 1;
                        for r in results {
                            self.down.record(r, *ts, io);
                        }
                    }
                }
                _ => return,
            }
            self.queue.pop_front();
            self.base += 1;
        }
    }

    /// Takes the completed requests' results, emits what may go, and starts waiting ones.
    fn progress(&mut self, io: &mut TaskIo) -> Result<()> {
        self.take_results(io)?;
        self.emit(io);
        self.start(io);
        Ok(())
    }

    /// Waits (off the runtime's worker) until every request completed and was emitted.
    fn wait_all(&mut self, io: &mut TaskIo) -> Result<()> {
        loop {
            self.progress(io)?;
            if self.queue.is_empty() {
                return Ok(());
            }
            let rx = &self.completed;
            let got = tokio::task::block_in_place(|| rx.recv_timeout(Duration::from_millis(100)));
            match got {
                Ok((id, outcome)) => self.complete(id, outcome, io)?,
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => unreachable!("the link holds a sender"),
            }
        }
    }

    /// What a checkpoint keeps: every input whose results are not emitted, and the
    /// watermarks between them, in order.
    fn pending(&self) -> Vec<Pending<F::In>> {
        self.queue
            .iter()
            .filter_map(|slot| match slot {
                Slot::Record { call: Call::Emitted, .. } => None,
                Slot::Record { input, ts, .. } => Some(Pending::Record(input.clone(), *ts)),
                Slot::Watermark(wm) => Some(Pending::Watermark(*wm)),
            })
            .collect()
    }

    fn restore(&mut self, io: &mut TaskIo) -> Result<()> {
        let Some(restored) = io.restored.clone() else { return Ok(()) };
        let mut lists = restored.operator_lists(self.name.node)?;
        let Some((_, items)) = lists.remove(IN_FLIGHT) else { return Ok(()) };
        for bytes in items {
            let pending: Pending<F::In> = postcard::from_bytes(&bytes)
                .map_err(|e| WeirError::runtime(format!("an in-flight async input does not decode: {e}")))?;
            match pending {
                Pending::Record(input, ts) => self.push(input, ts),
                Pending::Watermark(wm) => self.queue.push_back(Slot::Watermark(wm)),
            }
        }
        Ok(())
    }
}

impl<F: AsyncFunction> Link<F::In> for AsyncLink<F> {
    fn open(&mut self, io: &mut TaskIo) {
        self.down.open(io);
        let opened = Runtime::open().and_then(|runtime| {
            self.runtime = Some(runtime);
            self.restore(io)
        });
        match opened {
            Ok(()) => self.start(io),
            Err(e) => io.fail(e.in_operator(&self.name)),
        }
    }

    fn checkpoint(&mut self, barrier: &CheckpointBarrier, io: &mut TaskIo, out: &mut Vec<OperatorState>) {
        let mut lists = OperatorLists::default();
        match lists.split(IN_FLIGHT, &self.pending()).and_then(|()| lists.encode()) {
            Ok(lists) => out.push(OperatorState { node: self.name.node, lists, ..Default::default() }),
            Err(e) => io.fail(e.in_operator(&self.name)),
        }
        self.down.checkpoint(barrier, io, out);
    }

    fn timers(&self, out: &mut Vec<(TimeDomain, Timestamp)>) {
        self.down.timers(out);
    }

    fn checkpoint_complete(&mut self, id: u64, io: &mut TaskIo) {
        self.down.checkpoint_complete(id, io);
    }

    #[inline]
    fn record(&mut self, value: F::In, ts: Timestamp, io: &mut TaskIo) {
        self.push(value, ts);
        self.start(io);
    }

    fn watermark(&mut self, wm: Timestamp, io: &mut TaskIo) {
        if self.queue.is_empty() {
            self.down.watermark(wm, io);
        } else {
            self.queue.push_back(Slot::Watermark(wm));
        }
    }

    fn idle(&mut self, idle: bool, io: &mut TaskIo) {
        self.down.idle(idle, io);
    }

    /// A tick of the loop: also how it hands over completed requests.
    fn processing_time(&mut self, now: Timestamp, io: &mut TaskIo) {
        if let Err(e) = self.progress(io) {
            io.fail(e.in_operator(&self.name));
        }
        self.down.processing_time(now, io);
    }

    fn flush(&mut self, io: &mut TaskIo) {
        self.down.flush(io);
    }

    fn end_input(&mut self, drain: bool, io: &mut TaskIo) {
        // As Flink: a bounded input ends only once every request's results are out.
        if drain && let Err(e) = self.wait_all(io) {
            io.fail(e.in_operator(&self.name));
        }
        self.down.end_input(drain, io);
    }

    fn close(&mut self, io: &mut TaskIo) {
        self.running.abort_all();
        self.down.close(io);
    }
}

#[cfg(test)]
mod tests;
