//! Backpressure: a deliberately slow sink slows the source, and the records queued between
//! them stay within the channel's bound. Measured in queued records, not in time.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use weir_actors::prelude::*;
use weir_actors::{JobStatus, TaskState};

use crate::support::eventually;

/// A sink that takes ~200 µs per record (it blocks its worker thread on purpose).
#[derive(Clone)]
struct SlowSink {
    consumed: Arc<AtomicU64>,
}

impl Sink for SlowSink {
    type In = Click;
    fn write(&mut self, _value: Click, _ts: Option<Timestamp>) -> Result<()> {
        std::thread::sleep(Duration::from_micros(200));
        self.consumed.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_sink_slows_the_source_and_queues_stay_bounded() {
    const BATCH: usize = 100;
    const CAPACITY: usize = 4;
    let consumed = Arc::new(AtomicU64::new(0));
    let sink = SlowSink { consumed: consumed.clone() };
    let job = JobSubmission::new("backpressure", 1, move |env, _| {
        env.set_batch_config(BatchConfig {
            max_records: BATCH,
            flush_interval: Duration::from_millis(5),
            channel_capacity: CAPACITY,
        });
        env.source("clicks", Generator::new(GeneratorConfig { events: None, ..GeneratorConfig::default() }))
            .sink("slow", sink.clone())
            .disable_chaining();
        Ok(())
    });
    let cluster = MiniCluster::start(MiniClusterConfig::default()).await.unwrap();
    let id = cluster.submit(&job).await.unwrap();
    eventually("the slow sink consumed 3000 records", Duration::from_secs(60), || async {
        consumed.load(Ordering::Relaxed) >= 3000
    })
    .await;
    let details = cluster.details(id).await.unwrap();
    let source = &details.vertices[0].subtasks[0];
    let sink_task = &details.vertices[1].subtasks[0];
    assert_eq!(source.state, TaskState::Running);
    let produced = source.metrics.records_in;
    let done = consumed.load(Ordering::Relaxed);
    // What may sit between them: the channel (CAPACITY batches), the writer's partial batch,
    // the source's last poll, and the batch the sink is working through.
    let bound = (CAPACITY + 3) * BATCH;
    assert!(
        produced <= done + bound as u64,
        "the source ran ahead of the sink: produced {produced}, consumed {done}, bound {bound}"
    );
    // Queued records count from the moment a send starts, so the batch a blocked sender holds
    // is included: the bound is one batch over the channel's capacity.
    assert!(
        source.metrics.peak_queued_out <= ((CAPACITY + 1) * BATCH) as u64,
        "queue grew past its capacity: peak {} records",
        source.metrics.peak_queued_out
    );
    assert!(source.metrics.peak_queued_out >= (BATCH) as u64, "the queue filled (the sink is the bottleneck)");
    assert!(sink_task.metrics.records_in >= 3000);
    cluster.cancel(id).await.unwrap();
    let result = tokio::time::timeout(Duration::from_secs(30), cluster.wait(id)).await.expect("no hang").unwrap();
    assert_eq!(result.status(), JobStatus::Cancelled);
    cluster.shutdown().await;
}
