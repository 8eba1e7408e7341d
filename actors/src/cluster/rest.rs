//! The JobManager's REST API: Flink-like JSON over HTTP/1.1 for looking at the cluster and its
//! jobs, submitting registered jobs and cancelling them.
//!
//! | Route                           | Answer                                                   |
//! |---------------------------------|----------------------------------------------------------|
//! | `GET /overview`                 | TaskManagers, slots, jobs per status, the Weir version   |
//! | `GET /jobs`                     | every job's id, name and status                          |
//! | `GET /jobs/{id}`                | one job: status, cause, plan, per-subtask state/counters |
//! | `GET /jobs/{id}/vertices/{vid}` | one vertex (its index in the plan) and its subtasks      |
//! | `GET /jobs/{id}/vertices/{vid}/backpressure` | Flink's back-pressure levels and ratios     |
//! | `GET /taskmanagers`             | every TaskManager's slots                                |
//! | `GET /metrics`                  | slots, jobs, checkpoints, subtasks as Prometheus text    |
//! | `GET /`, `GET /ui/{file}`       | the web UI: a page reading this API, in the binary       |
//! | `POST /jobs`                    | submits `{"job": NAME, "args": [..], "parallelism": N}`  |
//! | `PATCH /jobs/{id}?mode=cancel`  | cancels a job (`202 {}`)                                 |
//! | `POST /jobs/{id}/savepoints`    | `{"target-directory": D}` (optional): a savepoint        |
//! | `POST /jobs/{id}/stop`          | `{"targetDirectory": D, "drain": B}`: stop with savepoint|
//!
//! The savepoint calls answer `{"location": PATH}` once the savepoint completed (Flink
//! answers with a trigger id to poll instead); without a directory they use the cluster's
//! default savepoint directory. A stopped job ends `FINISHED` shortly after.
//!
//! Paths and field names follow Flink's REST API where Flink has them (`slots-total`,
//! `slotsNumber`, `jid`); statuses use Flink's upper-case spelling (`RUNNING`, `CANCELED`).
//!
//! ## Security
//!
//! [`serve`] answers on whatever listener its caller bound: it binds nothing itself. The API
//! has no TLS, so callers bind it to loopback (`127.0.0.1`) unless the cluster configuration
//! asks for another address (DESIGN §8). Reading needs no credentials; mutating calls (`POST`,
//! `PATCH`) need `Authorization: Bearer <token>` with the cluster's REST token: without the
//! header the answer is 401, with another token 403. The token is compared in constant time;
//! an empty configured token authorizes nothing.
//!
//! ## Errors
//!
//! Every error is `{"errors": ["message"]}` with its status: 400 for a malformed request (a
//! bad job id, body, argument, or an unknown job name), 401/403 as above, 404 for an unknown
//! job id or route, 405 for a method a route lacks, 409 for a savepoint the job cannot take
//! (not running, another in progress, or it failed), 503 when an actor behind the API is not
//! running or does not answer within 10 seconds (a savepoint: within 15 minutes).

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use ractor::RpcReplyPort;
use ractor::rpc::CallResult;
use serde::{Deserialize, Serialize};

use crate::api::job::JobRegistry;
use crate::api::job_args::JobArgs;
use crate::base::error::{ErrorDomain, WeirError};
use crate::base::ids::JobId;
use crate::base::metrics::TaskMetricsSnapshot;
use crate::cluster::messages::{DispatcherMessage, ResourceManagerMessage};
use crate::cluster::mini_cluster::JobSubmission;
use crate::cluster::process_metrics::{ProcessMetrics, ProcessProbe};
use crate::cluster::{ComponentRef, ExecutionId, JobDetails, JobOverview, JobStatus, SubtaskDetails, TaskManagerInfo};
use crate::runtime::checkpoint::StopMode;
use crate::runtime::job_graph::JobGraph;
pub use rates::Rates;
use rates::SubtaskRates;

/// How long a handler waits for an actor's answer before answering 503.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a savepoint call waits (the coordinator times a savepoint out after its
/// checkpoint timeout, 10 minutes by default, and answers first).
const SAVEPOINT_TIMEOUT: Duration = Duration::from_secs(900);

/// What the REST server answers from.
#[derive(Clone)]
pub struct RestState {
    /// Answers for jobs and accepts submissions.
    pub dispatcher: ComponentRef<DispatcherMessage>,
    /// Answers for TaskManagers and slots.
    pub resource_manager: ComponentRef<ResourceManagerMessage>,
    /// The jobs `POST /jobs` can submit, by name.
    pub registry: JobRegistry,
    /// The bearer token mutating calls must carry; empty refuses every mutating call.
    pub token: String,
    /// Where savepoints go when a call names no directory.
    pub savepoint_dir: Option<weir_state::storage::Location>,
    /// The subtasks' counters as the API last showed them, for rates.
    pub rates: Rates,
    /// This process's figures for `/metrics` (`None`: not shown).
    pub process: Option<ProcessProbe>,
}

impl fmt::Debug for RestState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The token is a credential: never in logs.
        f.debug_struct("RestState")
            .field("dispatcher", &self.dispatcher)
            .field("resource_manager", &self.resource_manager)
            .field("registry", &self.registry)
            .field("token", &"<redacted>")
            .field("savepoint_dir", &self.savepoint_dir)
            .finish()
    }
}

/// Serves the REST API on `listener` until the future is dropped.
///
/// The caller chooses the address: bind loopback unless configured otherwise (see the module
/// docs). Connections accepted before the future is dropped finish their requests.
pub async fn serve(listener: tokio::net::TcpListener, state: RestState) -> std::io::Result<()> {
    axum::serve(listener, router(state)).await
}

/// The REST API's routes, for serving with [`serve`] or embedding in a larger router.
pub fn router(state: RestState) -> Router {
    Router::new()
        .route("/overview", get(overview))
        .route("/jobs", get(list_jobs).post(submit_job))
        .route("/jobs/{id}", get(job_details).patch(patch_job))
        .route("/jobs/{id}/checkpoints", get(job_checkpoints))
        .route("/jobs/{id}/vertices/{vid}", get(vertex_details))
        .route("/jobs/{id}/vertices/{vid}/backpressure", get(vertex_backpressure))
        .route("/jobs/{id}/exceptions", get(job_exceptions))
        .route("/jobs/{id}/savepoints", post(trigger_savepoint))
        .route("/jobs/{id}/stop", post(stop_job))
        .route("/taskmanagers", get(task_managers))
        .route("/metrics", get(metrics))
        .merge(ui::routes())
        .fallback(no_route)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

// ---------------------------------------------------------------------------------------------
// Response bodies: the API's field names, independent of the runtime's structs.

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct OverviewBody {
    taskmanagers: usize,
    slots_total: usize,
    slots_available: usize,
    jobs_running: usize,
    jobs_finished: usize,
    jobs_cancelled: usize,
    jobs_failed: usize,
    weir_version: &'static str,
}

#[derive(Serialize)]
struct JobsBody {
    jobs: Vec<JobEntryBody>,
}

#[derive(Serialize)]
struct JobEntryBody {
    id: String,
    name: String,
    status: &'static str,
}

#[derive(Serialize)]
struct JobDetailsBody {
    jid: String,
    name: String,
    state: &'static str,
    /// Milliseconds since submission, or until the job ended.
    duration: u64,
    cause: Option<String>,
    plan: JobGraph,
    vertices: Vec<VertexBody>,
}

#[derive(Serialize)]
struct VertexBody {
    id: usize,
    name: String,
    parallelism: usize,
    subtasks: Vec<SubtaskBody>,
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct SubtaskBody {
    subtask: usize,
    status: &'static str,
    /// `null` until the subtask has a slot.
    taskmanager_id: Option<String>,
    read_records: u64,
    write_records: u64,
    /// Its loop's time so far: blocked on full output channels, waiting for work, working
    /// (Flink's backpressured, idle and busy time, as totals).
    backpressure_ms: u64,
    idle_ms: u64,
    busy_ms: u64,
    /// Records waiting in its output channels now, and the most there ever were.
    queued_out: u64,
    peak_queued_out: u64,
    /// Bytes of network frames read and written for it (0 within a process).
    read_bytes: u64,
    write_bytes: u64,
    /// How full its input and output channels are (0 to 1; Flink's inPoolUsage/outPoolUsage).
    in_queue_usage: f64,
    out_queue_usage: f64,
    /// Its current input watermark and the last watermark it sent (epoch ms; `null`: none yet,
    /// or the end of input's).
    input_watermark: Option<i64>,
    output_watermark: Option<i64>,
    /// Its part of the latest checkpoint it stored.
    checkpoint: Option<SubtaskCheckpointBody>,
    /// Records and bytes per second and its loop's time shares over the last seconds.
    #[serde(flatten)]
    rates: SubtaskRates,
    /// `ok`, `low` or `high` (Flink's back-pressure level of `backpressure-ratio`).
    backpressure_level: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct SubtaskCheckpointBody {
    id: u64,
    state_size: u64,
    alignment_ms: u64,
    sync_us: u64,
    async_us: u64,
}

#[derive(Serialize)]
struct TaskManagersBody {
    taskmanagers: Vec<TaskManagerBody>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TaskManagerBody {
    id: String,
    slots_number: usize,
    free_slots: usize,
    /// Its process's figures from its latest heartbeat (`null` within one process).
    metrics: Option<ProcessMetrics>,
}

#[derive(Serialize)]
struct SubmitResponseBody {
    jobid: String,
}

/// Where a completed savepoint is.
#[derive(Serialize)]
struct SavepointResponseBody {
    location: String,
}

/// The body of `POST /jobs/{id}/savepoints` (Flink's field name).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct SavepointRequest {
    #[serde(default)]
    target_directory: Option<weir_state::storage::Location>,
}

/// The body of `POST /jobs/{id}/stop` (Flink's field names).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct StopRequest {
    #[serde(default)]
    target_directory: Option<weir_state::storage::Location>,
    #[serde(default)]
    drain: bool,
}

/// `{}`: Flink's answer to an accepted cancellation.
#[derive(Serialize)]
struct EmptyBody {}

#[derive(Serialize)]
struct ErrorBody {
    errors: Vec<String>,
}

/// The body of `POST /jobs`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SubmitRequest {
    job: String,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default = "default_parallelism")]
    parallelism: usize,
}

fn default_parallelism() -> usize {
    1
}

impl From<&JobOverview> for JobEntryBody {
    fn from(job: &JobOverview) -> Self {
        JobEntryBody { id: job.id.to_string(), name: job.name.clone(), status: job.status.as_str() }
    }
}

impl SubtaskBody {
    fn new(s: SubtaskDetails, rates: SubtaskRates) -> Self {
        let m = s.metrics;
        SubtaskBody {
            subtask: s.index,
            status: s.state.as_str(),
            taskmanager_id: Some(s.task_manager).filter(|tm| !tm.is_empty()),
            read_records: m.records_in,
            write_records: m.records_out,
            backpressure_ms: m.backpressure_ms,
            idle_ms: m.idle_ms,
            busy_ms: m.busy_ms,
            queued_out: m.queued_out,
            peak_queued_out: m.peak_queued_out,
            read_bytes: m.bytes_in,
            write_bytes: m.bytes_out,
            in_queue_usage: f64::from(m.in_queue_usage_permille) / 1000.0,
            out_queue_usage: f64::from(m.out_queue_usage_permille) / 1000.0,
            // The end-of-input watermark is no time to show.
            input_watermark: m.input_watermark.filter(|wm| *wm < weir_dataplane::MAX_WATERMARK),
            output_watermark: m.output_watermark.filter(|wm| *wm < weir_dataplane::MAX_WATERMARK),
            checkpoint: m.last_checkpoint.map(|c| SubtaskCheckpointBody {
                id: c.id,
                state_size: c.bytes,
                alignment_ms: c.alignment_ms,
                sync_us: c.sync_us,
                async_us: c.async_us,
            }),
            backpressure_level: rates.level(),
            rates,
        }
    }
}

/// The job's answer for `GET /jobs/{id}`, each subtask with its rates since the API was last
/// asked (see [`rates`]).
fn job_body(d: JobDetails, rates: &Rates) -> JobDetailsBody {
    let now = std::time::Instant::now();
    let id = d.id;
    let vertices = d
        .vertices
        .into_iter()
        .map(|v| {
            let vertex = v.id;
            VertexBody {
                id: v.id,
                name: v.name,
                parallelism: v.parallelism,
                subtasks: v
                    .subtasks
                    .into_iter()
                    .map(|s| {
                        let r = rates.sample(id, vertex, s.index, now, &s.metrics);
                        SubtaskBody::new(s, r)
                    })
                    .collect(),
            }
        })
        .collect();
    JobDetailsBody {
        jid: d.id.to_string(),
        name: d.name,
        state: d.status.as_str(),
        duration: u64::try_from(d.duration.as_millis()).unwrap_or(u64::MAX),
        cause: d.cause,
        plan: d.graph,
        vertices,
    }
}

impl From<&TaskManagerInfo> for TaskManagerBody {
    fn from(tm: &TaskManagerInfo) -> Self {
        TaskManagerBody { id: tm.id.clone(), slots_number: tm.slots, free_slots: tm.free_slots, metrics: tm.process }
    }
}

// ---------------------------------------------------------------------------------------------
// Errors.

/// An error answer: a status and one message.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    message: String,
}

type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError { status, message: message.into() }
    }

    fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    fn unavailable(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, message)
    }
}

impl From<WeirError> for ApiError {
    fn from(e: WeirError) -> Self {
        let status = match &e {
            WeirError::UnknownJobId(_) => StatusCode::NOT_FOUND,
            WeirError::Savepoint(_) => StatusCode::CONFLICT,
            // An actor that did not answer, or a cluster short of slots: worth retrying later.
            WeirError::Runtime(_) | WeirError::NoResources(_) => StatusCode::SERVICE_UNAVAILABLE,
            // A job's arguments, builder or inputs: the request's fault.
            e if matches!(e.domain(), ErrorDomain::User | ErrorDomain::External) => StatusCode::BAD_REQUEST,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(ErrorBody { errors: vec![self.message] })).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers.

/// Calls an actor with a deadline; an actor that is gone or silent is a 503 naming it.
async fn ask<M, T, F>(actor: &ComponentRef<M>, name: &str, message: F) -> ApiResult<T>
where
    M: ractor::Message,
    T: Send + 'static,
    F: FnOnce(RpcReplyPort<T>) -> M,
{
    // A restarted component answers at the same address; one that is restarting right now is
    // reported as unavailable (503), and the client may ask again.
    match actor.get().call(message, Some(CALL_TIMEOUT)).await {
        Ok(CallResult::Success(reply)) => Ok(reply),
        Ok(CallResult::Timeout) => {
            Err(ApiError::unavailable(format!("{name} did not answer within {} s", CALL_TIMEOUT.as_secs())))
        }
        Ok(CallResult::SenderError) => Err(ApiError::unavailable(format!("{name} stopped before answering"))),
        Err(e) => Err(ApiError::unavailable(format!("{name} is not running: {e}"))),
    }
}

/// Compares without an early exit, so the time taken does not tell how much of a guess was
/// right. Lengths are compared first: a token's length is not the secret.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| std::hint::black_box(acc | (x ^ y)));
    diff == 0
}

/// Checks the bearer token of a mutating call: 401 without one, 403 with a wrong one.
fn authorize(headers: &HeaderMap, token: &str) -> ApiResult<()> {
    let unauthorized = |m: &str| ApiError::new(StatusCode::UNAUTHORIZED, m);
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err(unauthorized("missing Authorization header: this call needs 'Authorization: Bearer <token>'"));
    };
    let given = value
        .to_str()
        .ok()
        .and_then(|v| v.trim().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, given)| given.trim());
    let Some(given) = given else {
        return Err(unauthorized("the Authorization header is not of the form 'Bearer <token>'"));
    };
    if token.is_empty() || !constant_time_eq(given.as_bytes(), token.as_bytes()) {
        return Err(ApiError::new(StatusCode::FORBIDDEN, "the bearer token is not this cluster's REST token"));
    }
    Ok(())
}

/// Parses a job id of exactly 32 hex digits, as the API shows them.
fn parse_job_id(path: Result<Path<String>, PathRejection>) -> ApiResult<JobId> {
    let Path(raw) = path.map_err(|e| ApiError::bad_request(format!("invalid job id in the path: {e}")))?;
    if raw.len() != 32 || !raw.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ApiError::bad_request(format!("'{raw}' is not a job id (32 hex digits)")));
    }
    raw.parse::<JobId>().map_err(ApiError::from)
}

// ---------------------------------------------------------------------------------------------
// Handlers.

/// The TaskManagers and the jobs, asked of the ResourceManager and the Dispatcher at once.
async fn cluster(state: &RestState) -> ApiResult<(Vec<TaskManagerInfo>, Vec<JobOverview>)> {
    let (task_managers, jobs) = tokio::join!(
        ask(&state.resource_manager, "the resource manager", ResourceManagerMessage::TaskManagers),
        ask(&state.dispatcher, "the dispatcher", DispatcherMessage::List),
    );
    Ok((task_managers?, jobs?))
}

async fn overview(State(state): State<RestState>) -> ApiResult<Json<OverviewBody>> {
    let (task_managers, jobs) = cluster(&state).await?;
    let count = |status: JobStatus| jobs.iter().filter(|j| j.status == status).count();
    Ok(Json(OverviewBody {
        taskmanagers: task_managers.len(),
        slots_total: task_managers.iter().map(|t| t.slots).sum(),
        slots_available: task_managers.iter().map(|t| t.free_slots).sum(),
        jobs_running: jobs.iter().filter(|j| !j.status.is_terminal()).count(),
        jobs_finished: count(JobStatus::Finished),
        jobs_cancelled: count(JobStatus::Cancelled),
        jobs_failed: count(JobStatus::Failed),
        weir_version: env!("CARGO_PKG_VERSION"),
    }))
}

async fn list_jobs(State(state): State<RestState>) -> ApiResult<Json<JobsBody>> {
    let jobs = ask(&state.dispatcher, "the dispatcher", DispatcherMessage::List).await?;
    Ok(Json(JobsBody { jobs: jobs.iter().map(JobEntryBody::from).collect() }))
}

async fn job_details(
    State(state): State<RestState>,
    id: Result<Path<String>, PathRejection>,
) -> ApiResult<Json<JobDetailsBody>> {
    let id = parse_job_id(id)?;
    let details = ask(&state.dispatcher, "the dispatcher", |reply| DispatcherMessage::Details(id, reply)).await??;
    Ok(Json(job_body(details, &state.rates)))
}

/// The vertex `vid` of a job: its subtasks as `GET /jobs/{id}` shows them.
async fn vertex_of(state: &RestState, path: Result<Path<(String, String)>, PathRejection>) -> ApiResult<VertexBody> {
    let Path((id, vertex)) = path.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let id = parse_job_id(Ok(Path(id)))?;
    let details = ask(&state.dispatcher, "the dispatcher", |reply| DispatcherMessage::Details(id, reply)).await??;
    let count = details.vertices.len();
    let vertex = vertex.parse::<usize>().ok().filter(|v| *v < count).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            format!("job {id} has no vertex {vertex:?} (it has 0 to {})", count.saturating_sub(1)),
        )
    })?;
    let mut body = job_body(details, &state.rates);
    Ok(body.vertices.swap_remove(vertex))
}

/// `GET /jobs/{id}/vertices/{vid}`: one vertex (its index in the plan) and its subtasks.
async fn vertex_details(
    State(state): State<RestState>,
    path: Result<Path<(String, String)>, PathRejection>,
) -> ApiResult<Json<VertexBody>> {
    Ok(Json(vertex_of(&state, path).await?))
}

/// `GET /jobs/{id}/vertices/{vid}/backpressure`: Flink's answer, from each subtask's
/// backpressured, idle and busy time over the last seconds (see [`rates`]).
async fn vertex_backpressure(
    State(state): State<RestState>,
    path: Result<Path<(String, String)>, PathRejection>,
) -> ApiResult<Json<serde_json::Value>> {
    let vertex = vertex_of(&state, path).await?;
    let worst = vertex.subtasks.iter().map(|s| s.rates.backpressure_ratio).fold(0.0, f64::max);
    let subtasks: Vec<_> = vertex
        .subtasks
        .iter()
        .map(|s| {
            serde_json::json!({
                "subtask": s.subtask,
                "backpressureLevel": s.backpressure_level,
                "ratio": s.rates.backpressure_ratio,
                "idleRatio": s.rates.idle_ratio,
                "busyRatio": s.rates.busy_ratio,
            })
        })
        .collect();
    Ok(Json(serde_json::json!({
        "status": "ok",
        "backpressureLevel": rates::level(worst),
        "end-timestamp": now_ms(),
        "subtasks": subtasks,
    })))
}

/// `GET /jobs/{id}/checkpoints`: counts, the latest completed checkpoint, every checkpoint the
/// job restored from, and recent ones with duration, size and alignment time (savepoints
/// included; `null` counts once the job ended).
async fn job_checkpoints(
    State(state): State<RestState>,
    id: Result<Path<String>, PathRejection>,
) -> ApiResult<Json<serde_json::Value>> {
    let id = parse_job_id(id)?;
    // Unknown ids are 404 as for the job itself.
    let details = ask(&state.dispatcher, "the dispatcher", |reply| DispatcherMessage::Details(id, reply)).await??;
    let stats = ask(&state.dispatcher, "the dispatcher", |reply| DispatcherMessage::CheckpointStats(id, reply)).await?;
    // Restores come from the job's history, which outlives its JobMasters and coordinators.
    Ok(Json(serde_json::json!({
        "counts": stats.as_ref().map(|s| serde_json::json!({
            "restored": details.restored.len(),
            "completed": s.completed,
            "failed": s.failed,
            "in_progress": s.in_progress.map_or(0, |_| 1),
        })),
        "latest": {
            "completed": stats.as_ref().and_then(|s| s.latest_completed.clone()),
            "restored": details.restored.last().copied().or(details.restored_from),
        },
        "restored": details.restored,
        "history": stats.map(|s| s.history).unwrap_or_default(),
    })))
}

/// `GET /jobs/{id}/exceptions`: the job's failures, oldest first.
async fn job_exceptions(
    State(state): State<RestState>,
    id: Result<Path<String>, PathRejection>,
) -> ApiResult<Json<serde_json::Value>> {
    let id = parse_job_id(id)?;
    let details = ask(&state.dispatcher, "the dispatcher", |reply| DispatcherMessage::Details(id, reply)).await??;
    Ok(Json(serde_json::json!({ "restarts": details.restarts, "exceptions": details.exceptions })))
}

async fn task_managers(State(state): State<RestState>) -> ApiResult<Json<TaskManagersBody>> {
    let tms = ask(&state.resource_manager, "the resource manager", ResourceManagerMessage::TaskManagers).await?;
    Ok(Json(TaskManagersBody { taskmanagers: tms.iter().map(TaskManagerBody::from).collect() }))
}

/// `GET /metrics`: the cluster's slots, jobs and subtasks as OpenMetrics text when the scraper
/// accepts it, else in Prometheus' text format (see [`metrics`](self::metrics)); a job that
/// ended while it was being read is left out.
async fn metrics(State(state): State<RestState>, headers: HeaderMap) -> ApiResult<Response> {
    let (task_managers, jobs) = cluster(&state).await?;
    let mut details = Vec::with_capacity(jobs.len());
    for job in jobs {
        let id = job.id;
        let Ok(job) = ask(&state.dispatcher, "the dispatcher", |reply| DispatcherMessage::Details(id, reply)).await?
        else {
            continue;
        };
        let stats =
            ask(&state.dispatcher, "the dispatcher", |reply| DispatcherMessage::CheckpointStats(id, reply)).await?;
        details.push((job, stats));
    }
    let now_ms = now_ms();
    let process = state.process.as_ref().map(ProcessProbe::read);
    let text = metrics::encode(&task_managers, &details, &state.rates, now_ms, process);
    Ok(metrics_response(&headers, text))
}

/// `text` (OpenMetrics) as the scraper asked for it: OpenMetrics when it accepts it, else
/// Prometheus' text format.
fn metrics_response(headers: &HeaderMap, text: String) -> Response {
    let openmetrics = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/openmetrics-text"));
    let (content_type, text) = if openmetrics {
        (metrics::OPENMETRICS, text)
    } else {
        (metrics::PROMETHEUS_TEXT, metrics::to_prometheus_text(&text))
    };
    ([(header::CONTENT_TYPE, HeaderValue::from_static(content_type))], text).into_response()
}

/// What a TaskManager's own `/metrics` shows: its process and its subtasks' counters.
#[derive(Clone)]
pub struct TaskManagerMetrics {
    /// The TaskManager's id.
    pub id: String,
    /// Reads its process's figures.
    pub probe: ProcessProbe,
    /// Its subtasks' counters now.
    pub subtasks: Arc<dyn Fn() -> Vec<(ExecutionId, TaskMetricsSnapshot)> + Send + Sync>,
}

impl fmt::Debug for TaskManagerMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskManagerMetrics").field("id", &self.id).finish_non_exhaustive()
    }
}

/// Serves a TaskManager's own `GET /metrics` on `listener` until the future is dropped (bind
/// it to loopback: like the REST API, it has no TLS).
pub async fn serve_task_manager_metrics(
    listener: tokio::net::TcpListener,
    source: TaskManagerMetrics,
) -> std::io::Result<()> {
    let rates = Rates::default();
    let metrics = get(move |headers: HeaderMap| async move {
        let now_ms = now_ms();
        let text = metrics::encode_task_manager(&source.id, source.probe.read(), &(source.subtasks)(), &rates, now_ms);
        metrics_response(&headers, text)
    });
    let router =
        Router::new().route("/metrics", metrics).fallback(no_route).method_not_allowed_fallback(method_not_allowed);
    axum::serve(listener, router).await
}

/// Processing time now, epoch ms.
fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

async fn patch_job(
    State(state): State<RestState>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> ApiResult<(StatusCode, Json<EmptyBody>)> {
    authorize(&headers, &state.token)?;
    let Query(query) = query.map_err(|e| ApiError::bad_request(format!("invalid query string: {e}")))?;
    match query.get("mode").map(String::as_str) {
        Some("cancel") => {}
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "unsupported mode '{other}' for PATCH /jobs/{{id}}: the only mode is 'cancel'"
            )));
        }
        None => return Err(ApiError::bad_request("missing query parameter 'mode' (PATCH /jobs/{id}?mode=cancel)")),
    }
    let id = parse_job_id(id)?;
    ask(&state.dispatcher, "the dispatcher", |reply| DispatcherMessage::Cancel(id, reply)).await??;
    Ok((StatusCode::ACCEPTED, Json(EmptyBody {})))
}

/// Parses an optional JSON body (empty means every field's default).
fn optional_body<T: serde::de::DeserializeOwned + Default>(body: &Bytes, route: &str, shape: &str) -> ApiResult<T> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("invalid body for POST {route}: {e} (expected {shape})")))
}

/// Takes the savepoint a call's body asks for (`into` reads its directory and stop mode
/// from it; without a directory, the default one), after checking the token and job id.
async fn savepoint<R: serde::de::DeserializeOwned + Default>(
    state: RestState,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
    body: Bytes,
    (route, shape): (&str, &str),
    into: impl FnOnce(R) -> (Option<weir_state::storage::Location>, Option<StopMode>),
) -> ApiResult<Json<SavepointResponseBody>> {
    authorize(&headers, &state.token)?;
    let id = parse_job_id(id)?;
    let (dir, stop) = into(optional_body(&body, route, shape)?);
    let dir = dir.or_else(|| state.savepoint_dir.clone()).ok_or_else(|| {
        ApiError::bad_request("no target directory given, and the cluster has no default savepoint directory")
    })?;
    if dir.as_local().is_some_and(|dir| !dir.is_absolute()) {
        return Err(ApiError::bad_request(format!(
            "the target directory '{dir}' is relative: give an absolute path the cluster's nodes reach, or an s3:// URL"
        )));
    }
    let message = |reply| DispatcherMessage::TriggerSavepoint { job: id, dir, stop, reply };
    let path = match state.dispatcher.get().call(message, Some(SAVEPOINT_TIMEOUT)).await {
        Ok(CallResult::Success(result)) => result?,
        Ok(CallResult::Timeout) => {
            return Err(ApiError::unavailable(format!(
                "the savepoint did not complete within {} s",
                SAVEPOINT_TIMEOUT.as_secs()
            )));
        }
        Ok(CallResult::SenderError) => return Err(ApiError::unavailable("the dispatcher stopped before answering")),
        Err(e) => return Err(ApiError::unavailable(format!("the dispatcher is not running: {e}"))),
    };
    Ok(Json(SavepointResponseBody { location: path.to_string() }))
}

/// `POST /jobs/{id}/savepoints`: a savepoint of a running job; answers once it completed.
async fn trigger_savepoint(
    State(state): State<RestState>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
    body: Bytes,
) -> ApiResult<Json<SavepointResponseBody>> {
    let route = ("/jobs/{id}/savepoints", "{\"target-directory\": DIR} or no body");
    savepoint(state, headers, id, body, route, |r: SavepointRequest| (r.target_directory, None)).await
}

/// `POST /jobs/{id}/stop`: stop-with-savepoint; answers once the savepoint completed.
async fn stop_job(
    State(state): State<RestState>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
    body: Bytes,
) -> ApiResult<Json<SavepointResponseBody>> {
    let route = ("/jobs/{id}/stop", "{\"targetDirectory\": DIR, \"drain\": BOOL} or no body");
    savepoint(state, headers, id, body, route, |r: StopRequest| {
        (r.target_directory, Some(if r.drain { StopMode::Drain } else { StopMode::NoDrain }))
    })
    .await
}

async fn submit_job(
    State(state): State<RestState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<SubmitResponseBody>> {
    authorize(&headers, &state.token)?;
    let request: SubmitRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(format!(
            "invalid body for POST /jobs: {e} (expected {{\"job\": NAME, \"args\": [\"--key\", \"value\", ..], \
             \"parallelism\": N}})"
        ))
    })?;
    if request.parallelism == 0 {
        return Err(ApiError::bad_request("invalid parallelism 0 for POST /jobs: it must be at least 1"));
    }
    let args = JobArgs::parse(&request.args)?;
    let submission = JobSubmission::from_registry(&state.registry, &request.job, args, request.parallelism)?;
    // Building the plan runs the job's builder and its client-side checks (files, arguments):
    // user code that may block, so off the async workers.
    let prepared =
        tokio::task::spawn_blocking(move || submission.prepare()).await.map_err(|e| match e.try_into_panic() {
            Ok(panic) => {
                let message = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a panic without a message".to_owned());
                ApiError::bad_request(format!("the builder of job '{}' panicked: {message}", request.job))
            }
            Err(e) => ApiError::unavailable(format!("building job '{}' was cancelled: {e}", request.job)),
        })??;
    let id = ask(&state.dispatcher, "the dispatcher", |reply| DispatcherMessage::Submit(Box::new(prepared), reply))
        .await??;
    Ok(Json(SubmitResponseBody { jobid: id.to_string() }))
}

async fn no_route(method: Method, uri: Uri) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, format!("no route for {method} {}", uri.path()))
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, format!("{method} is not allowed on {}", uri.path()))
}

mod metrics;
mod rates;
#[cfg(test)]
mod tests;
mod ui;
