//! `GET /metrics`: the cluster's jobs, subtasks and slots as Prometheus text (OpenMetrics 1.0).
//!
//! The figures are the ones the REST API already answers with (job details, checkpoint
//! statistics, TaskManagers), which the JobMaster gathers from every subtask, remote ones
//! included, over the control plane; this module only names and encodes them, into a registry
//! made for each scrape, so nothing here is on a subtask's path. The subtasks count per batch
//! into counters of their own (`TaskMetrics`), never per record into one shared across cores.
//!
//! Names follow Prometheus' conventions: a `weir_` prefix, base units (`_seconds`, `_bytes`),
//! `_total` on counters. Labels: `job` (its id) and `name` on a job's series; `job`, `vertex`
//! (its index in the plan), `vertex_name`, `subtask` and `task_manager` on a subtask's.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};

use super::Rates;
use super::rates::SubtaskRates;
use crate::base::ids::JobId;
use crate::base::metrics::TaskMetricsSnapshot;
use crate::cluster::ExecutionId;
use crate::cluster::messages::CheckpointStats;
use crate::cluster::process_metrics::ProcessMetrics;
use crate::cluster::{JobDetails, TaskManagerInfo};
use weir_dataplane::MAX_WATERMARK;

/// The content type of OpenMetrics text, which `GET /metrics` answers with when the scraper
/// accepts it (a Prometheus server asks for it).
pub(crate) const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// The content type of Prometheus' own text format, the answer to any other request.
pub(crate) const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Prometheus' text format (0.0.4) of OpenMetrics `text`, as `promtool check metrics` and
/// scrapers that do not ask for OpenMetrics read it: a counter's `HELP` and `TYPE` name its
/// samples (`x_total`), not its family (`x`), and there is no `UNIT` or `EOF` line. The samples
/// are the same.
pub(crate) fn to_prometheus_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut help: Option<&str> = None;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            help = Some(rest);
            continue;
        }
        if line.starts_with("# UNIT ") || line == "# EOF" {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, ""));
            let name = if kind == "counter" { format!("{name}_total") } else { name.to_owned() };
            if let Some(help) = help.take() {
                let text = help.split_once(' ').map_or("", |(_, text)| text);
                out.push_str(&format!("# HELP {name} {text}\n"));
            }
            out.push_str(&format!("# TYPE {name} {kind}\n"));
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JobLabels {
    job: String,
    name: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JobStatusLabels {
    job: String,
    name: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SubtaskLabels {
    job: String,
    vertex: String,
    vertex_name: String,
    subtask: String,
    task_manager: String,
}

type Seconds = Gauge<f64, AtomicU64>;
type Ratio = Gauge<f64, AtomicU64>;
type SecondsTotal = Counter<f64, AtomicU64>;

/// Registers a family of metrics under `name` and hands it back to be filled.
fn family<L, M>(registry: &mut Registry, name: &str, help: &str, unit: Option<Unit>) -> Family<L, M>
where
    L: Clone + std::hash::Hash + Eq + EncodeLabelSet + std::fmt::Debug + Send + Sync + 'static,
    M: prometheus_client::metrics::TypedMetric
        + prometheus_client::encoding::EncodeMetric
        + Default
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let family = Family::<L, M>::default();
    match unit {
        Some(unit) => registry.register_with_unit(name, help, unit, family.clone()),
        None => registry.register(name, help, family.clone()),
    }
    family
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProcessLabels {
    process: String,
}

/// Registers the figures of each process (`process`: `jobmanager` or a TaskManager's id).
pub(crate) fn encode_processes<'a>(
    registry: &mut Registry,
    processes: impl Iterator<Item = (&'a str, ProcessMetrics)>,
) {
    let rss: Family<ProcessLabels, Gauge> =
        family(registry, "process_resident_memory", "Resident memory of the process", Some(Unit::Bytes));
    let cpu: Family<ProcessLabels, SecondsTotal> =
        family(registry, "process_cpu", "User and system CPU time of the process", Some(Unit::Seconds));
    let connections: Family<ProcessLabels, Gauge> =
        family(registry, "process_quic_connections", "QUIC connections open", None);
    let sent: Family<ProcessLabels, Counter> =
        family(registry, "process_quic_sent", "UDP bytes sent by QUIC connections", Some(Unit::Bytes));
    let received: Family<ProcessLabels, Counter> =
        family(registry, "process_quic_received", "UDP bytes received by QUIC connections", Some(Unit::Bytes));
    let misses: Family<ProcessLabels, Counter> =
        family(registry, "process_heartbeat_misses", "Heartbeat intervals a peer stayed silent", None);
    for (process, m) in processes {
        let labels = ProcessLabels { process: process.to_owned() };
        rss.get_or_create(&labels).set(i64::try_from(m.rss_bytes).unwrap_or(i64::MAX));
        cpu.get_or_create(&labels).inc_by(m.cpu_seconds);
        connections.get_or_create(&labels).set(i64::try_from(m.quic_connections).unwrap_or(i64::MAX));
        sent.get_or_create(&labels).inc_by(m.quic_sent_bytes);
        received.get_or_create(&labels).inc_by(m.quic_received_bytes);
        misses.get_or_create(&labels).inc_by(m.heartbeat_misses);
    }
}

/// Registers a family of gauges in seconds under `name` (`name_seconds`).
fn seconds<L>(registry: &mut Registry, name: &str, help: &str) -> Family<L, Seconds>
where
    L: Clone + std::hash::Hash + Eq + EncodeLabelSet + std::fmt::Debug + Send + Sync + 'static,
{
    family(registry, name, help, Some(Unit::Seconds))
}

/// The series of every subtask, registered once per scrape.
struct SubtaskSeries {
    records_in: Family<SubtaskLabels, Counter>,
    records_out: Family<SubtaskLabels, Counter>,
    late: Family<SubtaskLabels, Counter>,
    backpressured: Family<SubtaskLabels, SecondsTotal>,
    idle: Family<SubtaskLabels, SecondsTotal>,
    busy: Family<SubtaskLabels, SecondsTotal>,
    queued: Family<SubtaskLabels, Gauge>,
    bytes_in: Family<SubtaskLabels, Counter>,
    bytes_out: Family<SubtaskLabels, Counter>,
    records_in_rate: Family<SubtaskLabels, Ratio>,
    records_out_rate: Family<SubtaskLabels, Ratio>,
    bytes_in_rate: Family<SubtaskLabels, Ratio>,
    bytes_out_rate: Family<SubtaskLabels, Ratio>,
    busy_ratio: Family<SubtaskLabels, Ratio>,
    idle_ratio: Family<SubtaskLabels, Ratio>,
    backpressured_ratio: Family<SubtaskLabels, Ratio>,
    in_queue: Family<SubtaskLabels, Ratio>,
    out_queue: Family<SubtaskLabels, Ratio>,
    input_watermark: Family<SubtaskLabels, Seconds>,
    output_watermark: Family<SubtaskLabels, Seconds>,
    watermark_lag: Family<SubtaskLabels, Seconds>,
    state_size: Family<SubtaskLabels, Gauge>,
    subtask_alignment: Family<SubtaskLabels, Seconds>,
    subtask_sync: Family<SubtaskLabels, Seconds>,
    subtask_async: Family<SubtaskLabels, Seconds>,
    subtask_checkpoint: Family<SubtaskLabels, Gauge>,
}

impl SubtaskSeries {
    fn register(registry: &mut Registry) -> Self {
        let records_in: Family<SubtaskLabels, Counter> =
            family(registry, "subtask_records_in", "Records read from input channels or made by a source", None);
        let records_out: Family<SubtaskLabels, Counter> =
            family(registry, "subtask_records_out", "Records written to output channels", None);
        let late: Family<SubtaskLabels, Counter> =
            family(registry, "subtask_late_records_dropped", "Records dropped as late by windows", None);
        let backpressured: Family<SubtaskLabels, SecondsTotal> =
            family(registry, "subtask_backpressured", "Time blocked on full output channels", Some(Unit::Seconds));
        let idle: Family<SubtaskLabels, SecondsTotal> =
            family(registry, "subtask_idle", "Time the subtask waited for something to do", Some(Unit::Seconds));
        let busy: Family<SubtaskLabels, SecondsTotal> = family(
            registry,
            "subtask_busy",
            "Time the subtask worked, neither idle nor backpressured",
            Some(Unit::Seconds),
        );
        let queued: Family<SubtaskLabels, Gauge> =
            family(registry, "subtask_output_queue_records", "Records waiting in the subtask's output channels", None);
        let bytes_in: Family<SubtaskLabels, Counter> = family(
            registry,
            "subtask_network_in",
            "Bytes of network frames read (0 within a process)",
            Some(Unit::Bytes),
        );
        let bytes_out: Family<SubtaskLabels, Counter> =
            family(registry, "subtask_network_out", "Bytes of network frames written", Some(Unit::Bytes));
        let rate = |registry: &mut Registry, name: &str, help: &str| -> Family<SubtaskLabels, Ratio> {
            family(registry, name, help, None)
        };
        let records_in_rate = rate(registry, "subtask_records_in_per_second", "Records in per second, last seconds");
        let records_out_rate = rate(registry, "subtask_records_out_per_second", "Records out per second, last seconds");
        let bytes_in_rate = rate(registry, "subtask_bytes_in_per_second", "Network bytes in per second, last seconds");
        let bytes_out_rate =
            rate(registry, "subtask_bytes_out_per_second", "Network bytes out per second, last seconds");
        let busy_ratio = rate(registry, "subtask_busy_ratio", "Share of the last seconds spent working");
        let idle_ratio = rate(registry, "subtask_idle_ratio", "Share of the last seconds spent waiting for work");
        let backpressured_ratio =
            rate(registry, "subtask_backpressured_ratio", "Share of the last seconds blocked on output");
        let in_queue = rate(registry, "subtask_input_queue_usage", "How full the input channels are, 0 to 1");
        let out_queue = rate(registry, "subtask_output_queue_usage", "How full the output channels are, 0 to 1");
        let input_watermark: Family<SubtaskLabels, Seconds> =
            seconds(registry, "subtask_input_watermark", "The subtask's current input watermark, since the epoch");
        let output_watermark: Family<SubtaskLabels, Seconds> = seconds(
            registry,
            "subtask_output_watermark",
            "The last watermark the subtask sent downstream, since the epoch",
        );
        let watermark_lag: Family<SubtaskLabels, Seconds> =
            seconds(registry, "subtask_watermark_lag", "Processing time minus the subtask's input watermark");
        let state_size: Family<SubtaskLabels, Gauge> = family(
            registry,
            "subtask_checkpointed_state_size",
            "The subtask's state in its latest checkpoint",
            Some(Unit::Bytes),
        );
        let subtask_alignment: Family<SubtaskLabels, Seconds> = seconds(
            registry,
            "subtask_last_checkpoint_alignment",
            "Barrier alignment in the subtask's latest checkpoint",
        );
        let subtask_sync: Family<SubtaskLabels, Seconds> =
            seconds(registry, "subtask_last_checkpoint_sync", "Synchronous part of the subtask's latest checkpoint");
        let subtask_async: Family<SubtaskLabels, Seconds> =
            seconds(registry, "subtask_last_checkpoint_async", "Asynchronous part of the subtask's latest checkpoint");
        let subtask_checkpoint: Family<SubtaskLabels, Gauge> =
            family(registry, "subtask_last_checkpoint_id", "The subtask's latest stored checkpoint", None);

        SubtaskSeries {
            records_in,
            records_out,
            late,
            backpressured,
            idle,
            busy,
            queued,
            bytes_in,
            bytes_out,
            records_in_rate,
            records_out_rate,
            bytes_in_rate,
            bytes_out_rate,
            busy_ratio,
            idle_ratio,
            backpressured_ratio,
            in_queue,
            out_queue,
            input_watermark,
            output_watermark,
            watermark_lag,
            state_size,
            subtask_alignment,
            subtask_sync,
            subtask_async,
            subtask_checkpoint,
        }
    }

    /// Adds subtask `labels`' counters `m`, its rates `r`, and its watermark lag at `now_ms`.
    fn add(&self, labels: &SubtaskLabels, m: &TaskMetricsSnapshot, r: &SubtaskRates, now_ms: i64) {
        self.records_in.get_or_create(labels).inc_by(m.records_in);
        self.records_out.get_or_create(labels).inc_by(m.records_out);
        self.late.get_or_create(labels).inc_by(m.late_records_dropped);
        self.backpressured.get_or_create(labels).inc_by(m.backpressure_ms as f64 / 1e3);
        self.idle.get_or_create(labels).inc_by(m.idle_ms as f64 / 1e3);
        self.busy.get_or_create(labels).inc_by(m.busy_ms as f64 / 1e3);
        self.queued.get_or_create(labels).set(i64::try_from(m.queued_out).unwrap_or(i64::MAX));
        self.bytes_in.get_or_create(labels).inc_by(m.bytes_in);
        self.bytes_out.get_or_create(labels).inc_by(m.bytes_out);
        self.records_in_rate.get_or_create(labels).set(r.records_in_per_second);
        self.records_out_rate.get_or_create(labels).set(r.records_out_per_second);
        self.bytes_in_rate.get_or_create(labels).set(r.bytes_in_per_second);
        self.bytes_out_rate.get_or_create(labels).set(r.bytes_out_per_second);
        self.busy_ratio.get_or_create(labels).set(r.busy_ratio);
        self.idle_ratio.get_or_create(labels).set(r.idle_ratio);
        self.backpressured_ratio.get_or_create(labels).set(r.backpressure_ratio);
        self.in_queue.get_or_create(labels).set(f64::from(m.in_queue_usage_permille) / 1e3);
        self.out_queue.get_or_create(labels).set(f64::from(m.out_queue_usage_permille) / 1e3);
        // No series before the first watermark, nor after the last (end of input).
        if let Some(wm) = m.input_watermark.filter(|wm| *wm < MAX_WATERMARK) {
            self.input_watermark.get_or_create(labels).set(wm as f64 / 1e3);
            self.watermark_lag.get_or_create(labels).set(now_ms.saturating_sub(wm) as f64 / 1e3);
        }
        if let Some(wm) = m.output_watermark.filter(|wm| *wm < MAX_WATERMARK) {
            self.output_watermark.get_or_create(labels).set(wm as f64 / 1e3);
        }
        if let Some(c) = m.last_checkpoint {
            self.state_size.get_or_create(labels).set(i64::try_from(c.bytes).unwrap_or(i64::MAX));
            self.subtask_alignment.get_or_create(labels).set(c.alignment_ms as f64 / 1e3);
            self.subtask_sync.get_or_create(labels).set(c.sync_us as f64 / 1e6);
            self.subtask_async.get_or_create(labels).set(c.async_us as f64 / 1e6);
            self.subtask_checkpoint.get_or_create(labels).set(i64::try_from(c.id).unwrap_or(i64::MAX));
        }
    }
}

/// The OpenMetrics text of one TaskManager's own `/metrics`: its process, and the latest
/// attempt of each subtask it runs. `vertex_name` is empty there: the TaskManager knows its
/// subtasks by vertex index (the JobManager's `/metrics` names them).
pub(crate) fn encode_task_manager(
    id: &str,
    process: ProcessMetrics,
    subtasks: &[(ExecutionId, TaskMetricsSnapshot)],
    rates: &Rates,
    now_ms: i64,
) -> String {
    let mut registry = Registry::with_prefix("weir");
    encode_processes(&mut registry, std::iter::once((id, process)));
    let series = SubtaskSeries::register(&mut registry);
    let now = std::time::Instant::now();
    let mut latest: std::collections::BTreeMap<(JobId, usize, usize), (u32, &TaskMetricsSnapshot)> = Default::default();
    for (e, m) in subtasks {
        let entry = latest.entry((e.job, e.vertex, e.index)).or_insert((e.attempt, m));
        if e.attempt >= entry.0 {
            *entry = (e.attempt, m);
        }
    }
    for ((job, vertex, index), (_, m)) in latest {
        let labels = SubtaskLabels {
            job: job.to_string(),
            vertex: vertex.to_string(),
            vertex_name: String::new(),
            subtask: index.to_string(),
            task_manager: id.to_owned(),
        };
        series.add(&labels, m, &rates.sample(job, vertex, index, now, m), now_ms);
    }
    let mut text = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut text, &registry);
    text
}

/// The Prometheus text of the cluster: its TaskManagers and slots, and each job with its
/// checkpoint statistics (`None` once it has no JobMaster) and its subtasks.
///
/// Subtask rates come from `rates` (sampled here too); the watermark lag is `now_ms` minus a
/// subtask's input watermark.
pub(crate) fn encode(
    task_managers: &[TaskManagerInfo],
    jobs: &[(JobDetails, Option<CheckpointStats>)],
    rates: &Rates,
    now_ms: i64,
    jobmanager: Option<ProcessMetrics>,
) -> String {
    let now = std::time::Instant::now();
    let mut registry = Registry::with_prefix("weir");

    let gauge = |registry: &mut Registry, name: &str, help: &str, value: usize| {
        let g = Gauge::<i64>::default();
        g.set(i64::try_from(value).unwrap_or(i64::MAX));
        registry.register(name, help, g);
    };
    gauge(&mut registry, "taskmanagers", "TaskManagers registered with the ResourceManager", task_managers.len());
    gauge(&mut registry, "slots", "Task slots the TaskManagers offer", task_managers.iter().map(|t| t.slots).sum());
    gauge(
        &mut registry,
        "slots_available",
        "Task slots not allocated to a job",
        task_managers.iter().map(|t| t.free_slots).sum(),
    );

    let processes = task_managers.iter().filter_map(|t| Some((t.id.as_str(), t.process?)));
    encode_processes(&mut registry, jobmanager.map(|m| ("jobmanager", m)).into_iter().chain(processes));

    let status: Family<JobStatusLabels, Gauge> =
        family(&mut registry, "job_status", "1 for the job's current status", None);
    let uptime: Family<JobLabels, Seconds> =
        seconds(&mut registry, "job_uptime", "Time since submission (until the end)");
    let restarts: Family<JobLabels, Counter> = family(&mut registry, "job_restarts", "Restarts after failures", None);
    let completed: Family<JobLabels, Counter> =
        family(&mut registry, "job_checkpoints_completed", "Checkpoints completed", None);
    let failed: Family<JobLabels, Counter> =
        family(&mut registry, "job_checkpoints_failed", "Checkpoints aborted", None);
    let in_progress: Family<JobLabels, Gauge> =
        family(&mut registry, "job_checkpoints_in_progress", "Checkpoints in flight", None);
    let last_duration: Family<JobLabels, Seconds> = seconds(
        &mut registry,
        "job_last_checkpoint_duration",
        "The latest completed checkpoint, from trigger to completion",
    );
    let last_size: Family<JobLabels, Gauge> =
        family(&mut registry, "job_last_checkpoint_size", "The latest completed checkpoint's state", Some(Unit::Bytes));
    let last_alignment: Family<JobLabels, Seconds> = seconds(
        &mut registry,
        "job_last_checkpoint_alignment",
        "The latest completed checkpoint's longest barrier alignment",
    );
    let last_sync: Family<JobLabels, Seconds> = seconds(
        &mut registry,
        "job_last_checkpoint_sync",
        "The latest completed checkpoint's longest synchronous part, on a processing loop",
    );
    let last_async: Family<JobLabels, Seconds> = seconds(
        &mut registry,
        "job_last_checkpoint_async",
        "The latest completed checkpoint's longest asynchronous part, off the loop",
    );
    let restored: Family<JobLabels, Gauge> = family(
        &mut registry,
        "job_restored_checkpoint_id",
        "The checkpoint or savepoint the job last restored from",
        None,
    );

    let subtasks = SubtaskSeries::register(&mut registry);

    for (job, stats) in jobs {
        let labels = JobLabels { job: job.id.to_string(), name: job.name.clone() };
        let status_labels =
            JobStatusLabels { job: labels.job.clone(), name: labels.name.clone(), status: job.status.to_string() };
        status.get_or_create(&status_labels).set(1);
        uptime.get_or_create(&labels).set(job.duration.as_secs_f64());
        restarts.get_or_create(&labels).inc_by(u64::from(job.restarts));
        if let Some(id) = job.restored.last().copied().or(job.restored_from) {
            restored.get_or_create(&labels).set(i64::try_from(id).unwrap_or(i64::MAX));
        }
        if let Some(stats) = stats {
            completed.get_or_create(&labels).inc_by(stats.completed);
            failed.get_or_create(&labels).inc_by(stats.failed);
            in_progress.get_or_create(&labels).set(i64::from(stats.in_progress.is_some()));
            if let Some(last) = &stats.latest_completed {
                last_duration.get_or_create(&labels).set(last.duration_ms as f64 / 1e3);
                last_size.get_or_create(&labels).set(i64::try_from(last.bytes).unwrap_or(i64::MAX));
                last_alignment.get_or_create(&labels).set(last.alignment_ms as f64 / 1e3);
                last_sync.get_or_create(&labels).set(last.sync_us as f64 / 1e6);
                last_async.get_or_create(&labels).set(last.async_us as f64 / 1e6);
            }
        }
        for vertex in &job.vertices {
            for subtask in &vertex.subtasks {
                let labels = SubtaskLabels {
                    job: labels.job.clone(),
                    vertex: vertex.id.to_string(),
                    vertex_name: vertex.name.clone(),
                    subtask: subtask.index.to_string(),
                    task_manager: subtask.task_manager.clone(),
                };
                let r = rates.sample(job.id, vertex.id, subtask.index, now, &subtask.metrics);
                subtasks.add(&labels, &subtask.metrics, &r, now_ms);
            }
        }
    }

    let mut text = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut text, &registry);
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_and_task_managers_are_gauges_and_the_text_ends_with_eof() {
        let tms = [
            TaskManagerInfo { id: "tm-1".into(), slots: 2, free_slots: 1, process: None },
            TaskManagerInfo { id: "tm-2".into(), slots: 2, free_slots: 2, process: Some(ProcessMetrics::default()) },
        ];
        let jm = ProcessMetrics { rss_bytes: 4096, cpu_seconds: 1.5, heartbeat_misses: 2, ..Default::default() };
        let text = encode(&tms, &[], &Rates::default(), 0, Some(jm));
        assert!(text.contains("weir_process_resident_memory_bytes{process=\"jobmanager\"} 4096\n"), "{text}");
        assert!(text.contains("weir_process_cpu_seconds_total{process=\"jobmanager\"} 1.5\n"), "{text}");
        assert!(text.contains("weir_process_heartbeat_misses_total{process=\"jobmanager\"} 2\n"), "{text}");
        // A TaskManager that reported, not one that did not.
        assert!(text.contains("weir_process_quic_connections{process=\"tm-2\"} 0\n"), "{text}");
        assert!(!text.contains("process=\"tm-1\""), "{text}");
        assert!(text.contains("# TYPE weir_taskmanagers gauge\nweir_taskmanagers 2\n"), "{text}");
        assert!(text.contains("weir_slots 4\n"), "{text}");
        assert!(text.contains("weir_slots_available 3\n"), "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn prometheus_text_names_counters_by_their_samples_and_drops_unit_and_eof() {
        let open = "# HELP weir_job_restarts Restarts after failures.\n\
                    # TYPE weir_job_restarts counter\n\
                    weir_job_restarts_total{job=\"a\"} 3\n\
                    # HELP weir_job_uptime_seconds Time since submission.\n\
                    # TYPE weir_job_uptime_seconds gauge\n\
                    # UNIT weir_job_uptime_seconds seconds\n\
                    weir_job_uptime_seconds{job=\"a\"} 1.5\n\
                    # EOF\n";
        assert_eq!(
            to_prometheus_text(open),
            "# HELP weir_job_restarts_total Restarts after failures.\n\
             # TYPE weir_job_restarts_total counter\n\
             weir_job_restarts_total{job=\"a\"} 3\n\
             # HELP weir_job_uptime_seconds Time since submission.\n\
             # TYPE weir_job_uptime_seconds gauge\n\
             weir_job_uptime_seconds{job=\"a\"} 1.5\n"
        );
    }
}
