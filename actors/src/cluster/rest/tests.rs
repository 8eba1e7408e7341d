//! The REST API spoken to as a client would: raw HTTP/1.1 over TCP against a MiniCluster.

use std::collections::BTreeSet;
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use super::*;
use crate::api::connectors::{Click, DiscardSink, Generator, GeneratorConfig};
use crate::{MiniCluster, MiniClusterConfig};

/// The whole of one test.
const TEST_DEADLINE: Duration = Duration::from_secs(90);
/// One condition polled for.
const POLL_DEADLINE: Duration = Duration::from_secs(30);
const TOKEN: &str = "s3cret-token";

/// `count`: clicks per user, the latest kept, discarded; `--events` absent is unbounded.
fn registry() -> JobRegistry {
    JobRegistry::new().job("count", "the latest click per user, discarded", |env, args| {
        let config = GeneratorConfig::from_args(args)?;
        env.source("clicks", Generator::new(config))
            .key_by(|c: &Click| c.user)
            .reduce("latest", |_, b| *b)
            .sink("discard", DiscardSink::new().0);
        Ok(())
    })
}

/// Runs `test` with a deadline.
async fn within_deadline(test: impl std::future::Future<Output = ()>) {
    tokio::time::timeout(TEST_DEADLINE, test).await.expect("the test ran past its deadline");
}

/// Polls `condition` until it holds or the poll deadline passes.
async fn eventually<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = tokio::time::Instant::now();
    loop {
        if condition().await {
            return;
        }
        assert!(start.elapsed() < POLL_DEADLINE, "timed out after {POLL_DEADLINE:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

struct Server {
    addr: SocketAddr,
    task: JoinHandle<std::io::Result<()>>,
}

impl Server {
    async fn start(state: RestState) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local address");
        Server { addr, task: tokio::spawn(serve(listener, state)) }
    }

    fn stop(self) {
        self.task.abort();
    }
}

async fn cluster_and_server() -> (MiniCluster, Server) {
    let cluster = MiniCluster::start(MiniClusterConfig {
        task_managers: 2,
        slots_per_task_manager: 2,
        ..MiniClusterConfig::default()
    })
    .await
    .expect("start the mini cluster");
    let (dispatcher, resource_manager) = cluster.components();
    (cluster, Server::start(state_of(dispatcher, resource_manager)).await)
}

/// The REST server's state over these components, with the test token.
fn state_of(
    dispatcher: ComponentRef<DispatcherMessage>,
    resource_manager: ComponentRef<ResourceManagerMessage>,
) -> RestState {
    RestState {
        dispatcher,
        resource_manager,
        registry: registry(),
        token: TOKEN.to_owned(),
        savepoint_dir: None,
        rates: Default::default(),
        process: None,
    }
}

/// An answer: status code, the head (status line and headers) and the JSON body (`Null` if
/// empty).
#[derive(Debug)]
struct Reply {
    status: u16,
    head: String,
    body: Value,
}

/// One request on its own connection; `auth` is the whole `Authorization` value.
async fn request(addr: SocketAddr, method: &str, path: &str, auth: Option<&str>, body: Option<&str>) -> Reply {
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(auth) = auth {
        request.push_str(&format!("Authorization: {auth}\r\n"));
    }
    let body = body.unwrap_or("");
    if method != "GET" {
        request.push_str(&format!("Content-Type: application/json\r\nContent-Length: {}\r\n", body.len()));
    }
    request.push_str("\r\n");
    request.push_str(body);

    let mut stream = TcpStream::connect(addr).await.expect("connect to the REST server");
    stream.write_all(request.as_bytes()).await.expect("write the request");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.expect("read the reply");
    let text = String::from_utf8(raw).expect("a UTF-8 reply");
    let (head, body) =
        text.split_once("\r\n\r\n").unwrap_or_else(|| panic!("{method} {path}: no end of headers in {text:?}"));
    assert!(
        !head.to_ascii_lowercase().contains("transfer-encoding: chunked"),
        "{method} {path}: expected a Content-Length body, got {head}"
    );
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{method} {path}: bad status line in {head:?}"));
    let body = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(body).unwrap_or_else(|e| panic!("{method} {path}: body is not JSON ({e}): {body}"))
    };
    Reply { status, head: head.to_owned(), body }
}

async fn get(addr: SocketAddr, path: &str) -> Reply {
    request(addr, "GET", path, None, None).await
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// The single error message of an error answer.
fn error_of(reply: &Reply) -> &str {
    let errors = reply.body["errors"].as_array().unwrap_or_else(|| panic!("no errors array in {reply:?}"));
    assert_eq!(errors.len(), 1, "{reply:?}");
    errors[0].as_str().expect("a text error")
}

fn subtasks(details: &Value) -> Vec<&Value> {
    details["vertices"].as_array().expect("vertices").iter().flat_map(|v| v["subtasks"].as_array().unwrap()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_is_submitted_watched_and_cancelled_over_rest() {
    within_deadline(async {
        let (cluster, server) = cluster_and_server().await;
        let addr = server.addr;

        let overview = get(addr, "/overview").await;
        assert_eq!(overview.status, 200, "{overview:?}");
        assert!(overview.head.to_ascii_lowercase().contains("content-type: application/json"), "{}", overview.head);
        let o = &overview.body;
        assert_eq!(o["taskmanagers"], 2);
        assert_eq!(o["slots-total"], 4);
        assert_eq!(o["slots-available"], 4);
        assert_eq!(o["jobs-running"], 0);
        assert_eq!(o["weir-version"], env!("CARGO_PKG_VERSION"));

        let tms = get(addr, "/taskmanagers").await;
        assert_eq!(tms.status, 200, "{tms:?}");
        let tms = tms.body["taskmanagers"].as_array().expect("taskmanagers").clone();
        assert_eq!(tms.len(), 2);
        assert!(tms.iter().all(|t| t["slotsNumber"] == 2 && t["freeSlots"] == 2), "{tms:?}");
        let tm_ids: BTreeSet<&str> = tms.iter().map(|t| t["id"].as_str().unwrap()).collect();

        // Submission: the token first, then the job.
        let good = r#"{"job": "count", "args": ["--rate", "20000"], "parallelism": 2}"#;
        let r = request(addr, "POST", "/jobs", None, Some(good)).await;
        assert_eq!(r.status, 401, "{r:?}");
        assert!(error_of(&r).contains("Authorization"), "{r:?}");
        assert!(r.head.to_ascii_lowercase().contains("www-authenticate: bearer"), "{}", r.head);
        let r = request(addr, "POST", "/jobs", Some(&bearer("wrong")), Some(good)).await;
        assert_eq!(r.status, 403, "{r:?}");
        assert!(!error_of(&r).contains(TOKEN), "the error must not show the token: {r:?}");
        let r = request(addr, "POST", "/jobs", Some(&bearer(TOKEN)), Some(r#"{"job": "cuont"}"#)).await;
        assert_eq!(r.status, 400, "{r:?}");
        assert!(error_of(&r).contains("cuont") && error_of(&r).contains("count"), "{r:?}");
        let r = request(addr, "POST", "/jobs", Some(&bearer(TOKEN)), Some(good)).await;
        assert_eq!(r.status, 200, "{r:?}");
        let id = r.body["jobid"].as_str().expect("a job id").to_owned();
        assert!(id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");

        let jobs = get(addr, "/jobs").await;
        assert_eq!(jobs.status, 200, "{jobs:?}");
        assert_eq!(jobs.body["jobs"].as_array().unwrap().len(), 1, "{jobs:?}");
        assert_eq!(jobs.body["jobs"][0]["id"], id.as_str());
        assert_eq!(jobs.body["jobs"][0]["name"], "count");
        assert_eq!(jobs.body["jobs"][0]["status"], "RUNNING");

        let path = format!("/jobs/{id}");
        eventually("every subtask running and records read", || async {
            let d = get(addr, &path).await;
            assert_eq!(d.status, 200, "{d:?}");
            let subtasks = subtasks(&d.body);
            !subtasks.is_empty()
                && subtasks.iter().all(|s| s["status"] == "RUNNING")
                && subtasks.iter().any(|s| s["read-records"].as_u64().unwrap() > 0)
        })
        .await;
        let d = get(addr, &path).await.body;
        assert_eq!(d["jid"], id.as_str());
        assert_eq!(d["name"], "count");
        assert_eq!(d["state"], "RUNNING");
        assert!(d["cause"].is_null(), "{d}");
        assert!(d["duration"].is_u64(), "{d}");
        assert_eq!(d["plan"]["job_name"], "count");
        let vertices = d["vertices"].as_array().unwrap();
        assert_eq!(vertices.len(), d["plan"]["vertices"].as_array().unwrap().len(), "{d}");
        for v in vertices {
            assert_eq!(v["parallelism"], 2, "{v}");
            assert_eq!(v["subtasks"].as_array().unwrap().len(), 2, "{v}");
            assert!(v["name"].is_string() && v["id"].is_u64(), "{v}");
        }
        for s in subtasks(&d) {
            let tm = s["taskmanager-id"].as_str().unwrap_or_else(|| panic!("no task manager: {s}"));
            assert!(tm_ids.contains(tm), "{tm} is not one of {tm_ids:?}");
            assert!(s["subtask"].is_u64() && s["write-records"].is_u64() && s["backpressure-ms"].is_u64(), "{s}");
        }
        let o = get(addr, "/overview").await.body;
        assert_eq!((o["jobs-running"].as_u64(), o["slots-available"].as_u64()), (Some(1), Some(2)), "{o}");

        // Cancellation.
        let cancel = format!("{path}?mode=cancel");
        let r = request(addr, "PATCH", &cancel, None, None).await;
        assert_eq!(r.status, 401, "{r:?}");
        let r = request(addr, "PATCH", &cancel, Some(&bearer(TOKEN)), None).await;
        assert_eq!(r.status, 202, "{r:?}");
        assert_eq!(r.body, serde_json::json!({}));
        eventually("the job cancelled and its slots free", || async {
            let d = get(addr, &path).await.body;
            let o = get(addr, "/overview").await.body;
            d["state"] == "CANCELED" && o["slots-available"] == 4
        })
        .await;
        let jobs = get(addr, "/jobs").await.body;
        assert_eq!(jobs["jobs"][0]["status"], "CANCELED", "{jobs}");
        let o = get(addr, "/overview").await.body;
        assert_eq!((o["jobs-running"].as_u64(), o["jobs-cancelled"].as_u64()), (Some(0), Some(1)), "{o}");
        let d = get(addr, &path).await.body;
        assert!(subtasks(&d).iter().all(|s| s["status"] == "CANCELED"), "{d}");

        let r = get(addr, "/jobs/0123456789abcdef0123456789abcdef").await;
        assert_eq!(r.status, 404, "{r:?}");
        assert!(error_of(&r).contains("0123456789abcdef0123456789abcdef"), "{r:?}");

        server.stop();
        cluster.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn savepoints_are_taken_and_a_job_stopped_over_rest() {
    within_deadline(async {
        let (cluster, server) = cluster_and_server().await;
        let addr = server.addr;
        let dir = std::env::temp_dir().join(format!("weir-rest-savepoints-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let body = |key: &str| serde_json::json!({ key: dir }).to_string();
        let r = request(
            addr,
            "POST",
            "/jobs",
            Some(&bearer(TOKEN)),
            Some(r#"{"job": "count", "args": ["--rate", "20000"]}"#),
        )
        .await;
        let id = r.body["jobid"].as_str().expect("a job id").to_owned();
        let (savepoints, stop) = (format!("/jobs/{id}/savepoints"), format!("/jobs/{id}/stop"));
        eventually("the job running", || async { get(addr, &format!("/jobs/{id}")).await.body["state"] == "RUNNING" })
            .await;

        let r = request(addr, "POST", &savepoints, None, Some(&body("target-directory"))).await;
        assert_eq!(r.status, 401, "{r:?}");
        let r = request(addr, "POST", &savepoints, Some(&bearer(TOKEN)), None).await;
        assert_eq!(r.status, 400, "{r:?}");
        assert!(error_of(&r).contains("no default savepoint directory"), "{r:?}");
        let r =
            request(addr, "POST", &savepoints, Some(&bearer(TOKEN)), Some(r#"{"target-directory": "rel/dir"}"#)).await;
        assert_eq!(r.status, 400, "{r:?}");
        assert!(error_of(&r).contains("'rel/dir' is relative"), "{r:?}");
        let r = request(addr, "POST", &savepoints, Some(&bearer(TOKEN)), Some(r#"{"targetDirectory": "/x"}"#)).await;
        assert_eq!(r.status, 400, "{r:?}");
        let unknown = "/jobs/0123456789abcdef0123456789abcdef/savepoints";
        let r = request(addr, "POST", unknown, Some(&bearer(TOKEN)), Some(&body("target-directory"))).await;
        assert_eq!(r.status, 404, "{r:?}");

        let r = request(addr, "POST", &savepoints, Some(&bearer(TOKEN)), Some(&body("target-directory"))).await;
        assert_eq!(r.status, 200, "{r:?}");
        let location = std::path::PathBuf::from(r.body["location"].as_str().expect("a location"));
        assert!(location.starts_with(&dir) && location.join("_metadata").is_file(), "{location:?}");
        let checkpoints = get(addr, &format!("/jobs/{id}/checkpoints")).await.body;
        assert_eq!(checkpoints["counts"]["completed"], 1, "{checkpoints}");
        assert_eq!(checkpoints["history"][0]["savepoint"], location.to_str().unwrap(), "{checkpoints}");

        let r = request(addr, "POST", &stop, Some(&bearer(TOKEN)), Some(&body("targetDirectory"))).await;
        assert_eq!(r.status, 200, "{r:?}");
        let stopped = std::path::PathBuf::from(r.body["location"].as_str().expect("a location"));
        assert!(stopped.join("_metadata").is_file() && stopped != location, "{stopped:?}");
        eventually("the job finished", || async {
            get(addr, &format!("/jobs/{id}")).await.body["state"] == "FINISHED"
        })
        .await;
        let r = request(addr, "POST", &stop, Some(&bearer(TOKEN)), Some(&body("targetDirectory"))).await;
        assert_eq!(r.status, 409, "{r:?}");
        assert!(error_of(&r).contains("has ended"), "{r:?}");

        server.stop();
        cluster.shutdown().await;
        let _ = std::fs::remove_dir_all(&dir);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_are_refused_with_the_reason() {
    within_deadline(async {
        let (cluster, server) = cluster_and_server().await;
        let addr = server.addr;
        let token = bearer(TOKEN);
        let post = |body: &'static str| {
            let token = token.clone();
            async move { request(addr, "POST", "/jobs", Some(&token), Some(body)).await }
        };

        for (path, bad) in [("/jobs/not-a-job", "not-a-job"), ("/jobs/abc", "abc")] {
            let r = get(addr, path).await;
            assert_eq!(r.status, 400, "{r:?}");
            assert!(error_of(&r).contains(bad) && error_of(&r).contains("32 hex digits"), "{r:?}");
        }
        let r = get(addr, "/nothing/here").await;
        assert_eq!(r.status, 404, "{r:?}");
        assert!(error_of(&r).contains("/nothing/here"), "{r:?}");
        let r = request(addr, "DELETE", "/jobs", Some(&token), None).await;
        assert_eq!(r.status, 405, "{r:?}");
        assert!(error_of(&r).contains("DELETE"), "{r:?}");

        let r = post(r#"{"job": "count", "args": ["--events", "many"]}"#).await;
        assert_eq!(r.status, 400, "{r:?}");
        assert!(error_of(&r).contains("--events") && error_of(&r).contains("many"), "{r:?}");
        let r = post(r#"{"job": "count", "args": ["--evnts", "5"]}"#).await;
        assert_eq!(r.status, 400, "{r:?}");
        assert!(error_of(&r).contains("--evnts"), "{r:?}");
        let r = post(r#"{"job": "count", "args": ["events"]}"#).await;
        assert_eq!(r.status, 400, "{r:?}");
        assert!(error_of(&r).contains("'events'"), "{r:?}");
        let r = post(r#"{"job": "count", "parallelism": 0}"#).await;
        assert_eq!(r.status, 400, "{r:?}");
        assert!(error_of(&r).contains("parallelism"), "{r:?}");
        let r = post(r#"{"job": "count", "paralellism": 2}"#).await;
        assert_eq!(r.status, 400, "{r:?}");
        assert!(error_of(&r).contains("paralellism"), "{r:?}");
        let r = post("not json").await;
        assert_eq!(r.status, 400, "{r:?}");
        assert!(error_of(&r).contains("POST /jobs"), "{r:?}");

        let r = request(addr, "POST", "/jobs", Some(&format!("Basic {TOKEN}")), Some("{}")).await;
        assert_eq!(r.status, 401, "{r:?}");
        let r = request(addr, "POST", "/jobs", Some(&format!("bearer {TOKEN}")), Some("{\"job\": \"x\"}")).await;
        assert_eq!(r.status, 400, "the scheme is case-insensitive: {r:?}");

        let job = "/jobs/0123456789abcdef0123456789abcdef";
        let r = request(addr, "PATCH", job, Some(&token), None).await;
        assert_eq!(r.status, 400, "{r:?}");
        assert!(error_of(&r).contains("mode"), "{r:?}");
        let r = request(addr, "PATCH", &format!("{job}?mode=stop"), Some(&token), None).await;
        assert_eq!(r.status, 400, "{r:?}");
        assert!(error_of(&r).contains("'stop'"), "{r:?}");
        let r = request(addr, "PATCH", &format!("{job}?mode=cancel"), Some(&token), None).await;
        assert_eq!(r.status, 404, "{r:?}");

        // Nothing above started a job.
        assert_eq!(get(addr, "/jobs").await.body, serde_json::json!({"jobs": []}));

        server.stop();
        cluster.shutdown().await;
    })
    .await;
}

/// Takes any message and drops it, reply port and all.
struct Mute<M>(PhantomData<fn() -> M>);

impl<M: ractor::Message> Actor for Mute<M> {
    type Msg = M;
    type State = ();
    type Arguments = ();

    async fn pre_start(&self, _myself: ActorRef<M>, _args: ()) -> Result<(), ActorProcessingErr> {
        Ok(())
    }

    async fn handle(&self, _myself: ActorRef<M>, message: M, _state: &mut ()) -> Result<(), ActorProcessingErr> {
        drop(message);
        Ok(())
    }
}

/// A Dispatcher and a ResourceManager stand-in that answer nothing.
async fn mute_stand_ins() -> (ActorRef<DispatcherMessage>, ActorRef<ResourceManagerMessage>) {
    let (dispatcher, _) = Actor::spawn(None, Mute(PhantomData), ()).await.expect("spawn a dispatcher stand-in");
    let (resource_manager, _) =
        Actor::spawn(None, Mute(PhantomData), ()).await.expect("spawn a resource manager stand-in");
    (dispatcher, resource_manager)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actors_that_are_gone_or_mute_are_503() {
    within_deadline(async {
        let (dispatcher, resource_manager) = mute_stand_ins().await;
        dispatcher.stop_and_wait(None, Some(Duration::from_secs(5))).await.expect("stop the dispatcher stand-in");
        let state = state_of(ComponentRef::new(dispatcher), ComponentRef::new(resource_manager.clone()));
        let server = Server::start(state).await;
        let addr = server.addr;

        let r = get(addr, "/jobs").await;
        assert_eq!(r.status, 503, "{r:?}");
        assert!(error_of(&r).contains("the dispatcher is not running"), "{r:?}");
        let r = request(addr, "POST", "/jobs", Some(&bearer(TOKEN)), Some(r#"{"job": "count"}"#)).await;
        assert_eq!(r.status, 503, "{r:?}");
        let r = get(addr, "/taskmanagers").await;
        assert_eq!(r.status, 503, "{r:?}");
        assert!(error_of(&r).contains("the resource manager stopped before answering"), "{r:?}");
        let r = get(addr, "/overview").await;
        assert_eq!(r.status, 503, "{r:?}");

        server.stop();
        resource_manager.stop(None);
    })
    .await;
}

#[test]
fn tokens_compare_by_content_and_length() {
    assert!(constant_time_eq(b"abc", b"abc"));
    assert!(!constant_time_eq(b"abc", b"abd"));
    assert!(!constant_time_eq(b"abc", b"abcd"));
    assert!(constant_time_eq(b"", b""));
}

#[test]
fn an_empty_configured_token_authorizes_nothing() {
    let mut headers = HeaderMap::new();
    headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer "));
    assert_eq!(authorize(&headers, "").unwrap_err().status, StatusCode::UNAUTHORIZED, "no token given");
    headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer anything"));
    assert_eq!(authorize(&headers, "").unwrap_err().status, StatusCode::FORBIDDEN);
    headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer t"));
    assert!(authorize(&headers, "t").is_ok());
    assert_eq!(authorize(&HeaderMap::new(), "t").unwrap_err().status, StatusCode::UNAUTHORIZED);
}

/// One GET on its own connection, whatever the body: (status, lower-cased head, body).
async fn get_raw(addr: SocketAddr, path: &str) -> (u16, String, String) {
    let mut stream = TcpStream::connect(addr).await.expect("connect to the REST server");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("write the request");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.expect("read the reply");
    let text = String::from_utf8(raw).expect("a UTF-8 reply");
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or_else(|| panic!("GET {path}: no end of headers"));
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("a status line");
    (status, head.to_ascii_lowercase(), body.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_web_ui_is_served_from_the_binary_beside_the_api() {
    within_deadline(async {
        // The UI's files need no actor: stand-ins that answer nothing do.
        let (dispatcher, resource_manager) = mute_stand_ins().await;
        let state = state_of(ComponentRef::new(dispatcher.clone()), ComponentRef::new(resource_manager.clone()));
        let server = Server::start(state).await;
        let addr = server.addr;

        let (status, head, page) = get_raw(addr, "/").await;
        assert_eq!(status, 200, "{head}");
        assert!(head.contains("content-type: text/html; charset=utf-8"), "{head}");
        assert!(head.contains("cache-control: no-cache"), "{head}");
        assert!(head.contains("content-security-policy: default-src 'none'; script-src 'self'"), "{head}");
        assert!(page.contains(r#"<script type="module" src="ui/app.js"></script>"#), "{page}");
        assert!(page.contains(r#"<link rel="icon""#), "a favicon link, or the browser asks for /favicon.ico");

        let (status, head, script) = get_raw(addr, "/ui/app.js").await;
        assert_eq!(status, 200, "{head}");
        assert!(head.contains("content-type: text/javascript; charset=utf-8"), "{head}");
        assert!(head.contains("cache-control: no-cache") && head.contains("x-content-type-options: nosniff"), "{head}");
        assert!(script.contains("from './graph.js'"), "{script}");
        // Every file the page and its modules name is served.
        for (path, content_type) in [
            ("/ui/graph.js", "text/javascript"),
            ("/ui/format.js", "text/javascript"),
            ("/ui/style.css", "text/css"),
            ("/ui/favicon.svg", "image/svg+xml"),
        ] {
            let (status, head, _) = get_raw(addr, path).await;
            assert_eq!(status, 200, "{path}: {head}");
            assert!(head.contains(&format!("content-type: {content_type}")), "{path}: {head}");
        }

        let r = get(addr, "/ui/x").await;
        assert_eq!(r.status, 404, "{r:?}");
        assert_eq!(error_of(&r), "no route for GET /ui/x");
        let r = request(addr, "POST", "/", Some(&bearer(TOKEN)), None).await;
        assert_eq!(r.status, 405, "{r:?}");

        server.stop();
        dispatcher.stop(None);
        resource_manager.stop(None);
    })
    .await;
}
