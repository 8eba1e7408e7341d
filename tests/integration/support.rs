//! Helpers: temporary directories, reading part files, polling with a deadline, running the
//! `weir` binary with a timeout.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A directory removed when dropped.
pub(crate) struct TempDir(pub(crate) PathBuf);

impl TempDir {
    pub(crate) fn new(label: &str) -> Self {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "weir-it-{label}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub(crate) fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The lines of every finished part file in `dir` (not the in-progress `.` files), sorted.
pub(crate) fn read_output(dir: &Path) -> Vec<String> {
    let mut lines = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("no output in {}: {e}", dir.display())) {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        assert!(!name.starts_with('.'), "in-progress file {name} left in {}", dir.display());
        lines.extend(std::fs::read_to_string(entry.path()).unwrap().lines().map(str::to_owned));
    }
    lines.sort();
    lines
}

/// The repository's root.
pub(crate) fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// Polls `condition` until it holds or `deadline` passes.
pub(crate) async fn eventually<F, Fut>(what: &str, deadline: Duration, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = tokio::time::Instant::now();
    loop {
        if condition().await {
            return;
        }
        assert!(start.elapsed() < deadline, "timed out after {deadline:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Runs the `weir` binary with `args`, killing it if it runs longer than `timeout`.
pub(crate) fn weir(args: &[&str], timeout: Duration) -> Output {
    weir_with_env(args, &[], timeout)
}

/// As [`weir`], with extra environment variables for the process (and what it starts).
pub(crate) fn weir_with_env(args: &[&str], env: &[(&str, &str)], timeout: Duration) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_weir"));
    command.args(args).envs(env.iter().copied()).current_dir(repo_root()).env("RUST_LOG", "warn");
    output_within(command, &format!("weir {args:?}"), timeout)
}

/// Runs `command` to its end with no input and returns its output, read while it runs (a child
/// blocks once a pipe nobody reads holds 64 KiB); kills it and fails the test past `timeout`.
pub(crate) fn output_within(command: Command, what: &str, timeout: Duration) -> Output {
    output_within_or(command, what, timeout, |_| {})
}

/// As [`output_within`], calling `on_timeout` with the child's pid after killing it (to stop
/// what it started, by their own ids) before the test fails.
pub(crate) fn output_within_or(
    mut command: Command,
    what: &str,
    timeout: Duration,
    on_timeout: impl FnOnce(u32),
) -> Output {
    fn drain(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<Vec<u8>> {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            bytes
        })
    }
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("start {what}: {e}"));
    let stdout = drain(child.stdout.take().expect("piped stdout"));
    let stderr = drain(child.stderr.take().expect("piped stderr"));
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap_or_else(|e| panic!("wait for {what}: {e}")) {
            break status;
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            on_timeout(child.id());
            let (stdout, stderr) = (stdout.join().unwrap_or_default(), stderr.join().unwrap_or_default());
            panic!(
                "{what} ran longer than {timeout:?}; stdout:\n{}\nstderr:\n{}",
                String::from_utf8_lossy(&stdout),
                String::from_utf8_lossy(&stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Output { status, stdout: stdout.join().unwrap_or_default(), stderr: stderr.join().unwrap_or_default() }
}

/// Logs of the actors in this test process, filtered by `RUST_LOG` (nothing when unset), to
/// the test's captured output: `RUST_LOG=warn cargo test … -- --nocapture` shows them.
pub(crate) fn init_logging() {
    static INIT: std::sync::Once = std::sync::Once::new();
    INIT.call_once(|| {
        if let Ok(filter) = tracing_subscriber::EnvFilter::try_from_default_env() {
            let _ = tracing_subscriber::fmt().with_env_filter(filter).with_test_writer().try_init();
        }
    });
}

/// The window-agg arguments of the rescaling tests, without `--output`: 60,000 clicks of
/// 50 users at 30,000 per second, 200 ms windows.
pub(crate) const RESCALE_ARGS: [&str; 12] = [
    "--events",
    "60000",
    "--rate",
    "30000",
    "--keys",
    "50",
    "--seed",
    "7",
    "--out-of-order-ms",
    "100",
    "--window-ms",
    "200",
];

/// Waits up to `deadline` for job `id` to end. One that does not end fails the test with what
/// it was doing: its status, every subtask's state, its checkpoints, its exceptions (a hang
/// in CI must say where it hung).
pub(crate) async fn job_result(
    cluster: &weir_actors::MiniCluster,
    id: weir_actors::JobId,
    deadline: Duration,
) -> weir_actors::JobResult {
    match tokio::time::timeout(deadline, cluster.wait(id)).await {
        Ok(result) => result.unwrap(),
        Err(_) => {
            let details = cluster.details(id).await;
            let stats = cluster.checkpoint_stats(id).await;
            let subtasks: Vec<String> = details
                .iter()
                .flat_map(|d| &d.vertices)
                .flat_map(|v| v.subtasks.iter().map(move |s| format!("{} {}: {:?}", v.name, s.index, s.state)))
                .collect();
            panic!(
                "job {id} did not end within {deadline:?}: status {:?}, subtasks {subtasks:?}, checkpoints {stats:?}, \
                 exceptions {:?}",
                details.as_ref().map(|d| d.status),
                details.as_ref().map(|d| &d.exceptions)
            )
        }
    }
}

/// The id of a job's latest completed checkpoint (0: none yet). Ids keep rising across
/// restarted coordinators and JobMasters, unlike their counters.
pub(crate) async fn latest_checkpoint(cluster: &weir_actors::MiniCluster, id: weir_actors::JobId) -> u64 {
    let stats = cluster.checkpoint_stats(id).await.ok().flatten();
    stats.map_or(0, |s| s.latest_completed.map(|c| c.id).or(s.restored_from).unwrap_or(0))
}

/// The last `n` lines of `text`.
pub(crate) fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Waits until something listens on `addr`.
pub(crate) fn wait_for_port(addr: &str, what: &str) {
    let start = Instant::now();
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(start.elapsed() < Duration::from_secs(30), "{what} does not listen on {addr}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A real S3 server (s3s-fs, over a temporary directory, on a free port of 127.0.0.1) with
/// the given buckets, killed when dropped.
pub(crate) struct S3 {
    child: std::process::Child,
    pub(crate) addr: String,
    dir: TempDir,
}

impl S3 {
    pub(crate) const KEY: &'static str = "weir";
    pub(crate) const SECRET: &'static str = "weir-secret";

    pub(crate) fn start(buckets: &[&str]) -> S3 {
        let default = std::env::var("HOME").map(|h| format!("{h}/.cache/weir/s3s/bin/s3s-fs")).unwrap_or_default();
        let s3s = std::env::var("WEIR_S3S").unwrap_or(default);
        assert!(Path::new(&s3s).is_file(), "no s3s-fs at {s3s}: run scripts/setup.sh --tests (or set WEIR_S3S)");
        let dir = TempDir::new("s3");
        for bucket in buckets {
            std::fs::create_dir_all(dir.join(bucket)).unwrap();
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new(&s3s)
            .args(["--host", "127.0.0.1", "--port", &port.to_string(), "--access-key", S3::KEY])
            .args(["--secret-key", S3::SECRET])
            .arg(&dir.0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {s3s}: {e}"));
        let s3 = S3 { child, addr: format!("127.0.0.1:{port}"), dir };
        wait_for_port(&s3.addr, "s3s-fs");
        s3
    }

    /// The standard `AWS_*` variables that point a client (Weir's, tansu's) at it.
    pub(crate) fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", S3::KEY.to_owned()),
            ("AWS_SECRET_ACCESS_KEY", S3::SECRET.to_owned()),
            ("AWS_DEFAULT_REGION", "us-east-1".to_owned()),
            ("AWS_REGION", "us-east-1".to_owned()),
            ("AWS_ENDPOINT", format!("http://{}", self.addr)),
            ("AWS_ALLOW_HTTP", "true".to_owned()),
        ]
    }

    /// The same, as the options of this (test) process's own client.
    pub(crate) fn options(&self) -> weir_state::storage::S3Options {
        weir_state::storage::S3Options {
            endpoint: Some(format!("http://{}", self.addr)),
            region: Some("us-east-1".to_owned()),
            access_key_id: Some(S3::KEY.to_owned()),
            secret_access_key: Some(S3::SECRET.to_owned()),
            allow_http: Some(true),
        }
    }

    /// Where s3s-fs keeps `path` (`bucket/key…`) on disk, to look at what was stored.
    pub(crate) fn file(&self, path: &str) -> PathBuf {
        self.dir.join(path)
    }
}

impl Drop for S3 {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A real etcd (Debian's etcd-server) on free ports of 127.0.0.1 over a temporary directory,
/// killed when dropped: the coordination service of JobManager high availability.
pub(crate) struct Etcd {
    child: std::process::Child,
    pub(crate) endpoint: String,
    _dir: TempDir,
}

impl Etcd {
    pub(crate) fn start() -> Etcd {
        let free = || std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        Etcd::start_with(Command::new(Etcd::binary()), "127.0.0.1", free(), free(), None)
    }

    /// An etcd on host `host` of `network`, listening on its address; with `tls`, a cluster
    /// directory issued for it, serving its clients over TLS with that directory's certificate
    /// and accepting only clients whose certificate its CA signed.
    pub(crate) fn start_in(network: &weir_cli::hosts::Network, host: &str, tls: Option<&Path>) -> Etcd {
        let address = network.address(host).unwrap().to_string();
        Etcd::start_with(network.command(host, Etcd::binary()).unwrap(), &address, 2379, 2380, tls)
    }

    fn binary() -> String {
        let etcd = std::env::var("WEIR_ETCD").unwrap_or_else(|_| "/usr/bin/etcd".to_owned());
        assert!(Path::new(&etcd).is_file(), "no etcd at {etcd}: run scripts/setup.sh --tests (or set WEIR_ETCD)");
        etcd
    }

    fn start_with(mut command: Command, ip: &str, client_port: u16, peer_port: u16, tls: Option<&Path>) -> Etcd {
        let dir = TempDir::new("etcd");
        let scheme = if tls.is_some() { "https" } else { "http" };
        let (client, peer) = (format!("{scheme}://{ip}:{client_port}"), format!("http://{ip}:{peer_port}"));
        if let Some(identity) = tls {
            let file = |f: &str| identity.join(f).to_str().unwrap().to_owned();
            command.args(["--cert-file", &file("node.pem"), "--key-file", &file("node.key")]);
            command.args(["--trusted-ca-file", &file("ca.pem"), "--client-cert-auth"]);
        }
        let child = command
            .args(["--name", "weir-test", "--data-dir", dir.0.to_str().unwrap()])
            .args(["--listen-client-urls", &client, "--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer, "--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &format!("weir-test={peer}"), "--log-level", "error"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start etcd: {e}"));
        let etcd = Etcd { child, endpoint: client, _dir: dir };
        wait_for_port(etcd.endpoint.split("://").nth(1).unwrap(), "etcd");
        etcd
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
