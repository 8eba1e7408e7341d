//! Joins end to end: the `interval-join` example job through the `weir` binary (the same
//! pairs at any parallelism, equal to a nested loop over the input; bad lines named or set
//! aside), and an interval join's keyed state and timers across failovers.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use weir_actors::JobStatus;
use weir_actors::api::job::{JobConfig, RestartStrategy};
use weir_actors::prelude::*;
use weir_actors::runtime::checkpoint::CheckpointConfig;

use crate::support::{TempDir, eventually, latest_checkpoint, read_output, weir};

const TIMEOUT: Duration = Duration::from_secs(120);

/// A small deterministic generator (xorshift).
struct Rng(u64);

impl Rng {
    fn next(&mut self, below: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % below
    }
}

/// Writes `orders.csv` and `payments.csv` into `dir`: `orders` orders at rising times with up
/// to 40 ms of disorder, and for most of them one or two payments 0–300 ms later (some before,
/// some outside any interval), shuffled within 40 ms too. Returns the expected
/// `interval-join` lines for `[lower, upper]`, sorted.
fn write_input(dir: &Path, orders: u64, lower: i64, upper: i64) -> Vec<String> {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut order_rows = Vec::new();
    let mut payment_rows = Vec::new();
    for i in 0..orders {
        let id = format!("o{}", rng.next(orders / 2 + 1)); // ids repeat: several orders per id
        let ts = (i * 10) as i64 + rng.next(40) as i64;
        let amount = format!("{}.{:02}", rng.next(500), rng.next(100));
        order_rows.push((id.clone(), ts, amount));
        for _ in 0..rng.next(3) {
            let pts = ts + rng.next(340) as i64 - 40;
            let method = ["card", "cash", "wire"][rng.next(3) as usize];
            payment_rows.push((id.clone(), pts, method.to_owned()));
        }
    }
    // Rows go out in time order, give or take 40 ms (within the watermarks' 60 ms bound).
    payment_rows.sort_by_cached_key(|p| p.1 + rng.next(40) as i64);
    let mut text = String::from("order_id,ts_ms,amount\n");
    for (id, ts, amount) in &order_rows {
        writeln!(text, "{id},{ts},{amount}").unwrap();
    }
    std::fs::write(dir.join("orders.csv"), text).unwrap();
    let mut text = String::from("order_id,ts_ms,method\n");
    for (id, ts, method) in &payment_rows {
        writeln!(text, "{id},{ts},{method}").unwrap();
    }
    std::fs::write(dir.join("payments.csv"), text).unwrap();

    let mut by_id: HashMap<&str, Vec<&(String, i64, String)>> = HashMap::new();
    for p in &payment_rows {
        by_id.entry(&p.0).or_default().push(p);
    }
    let mut expected = Vec::new();
    for (id, ts, amount) in &order_rows {
        for (_, pts, method) in by_id.get(id.as_str()).into_iter().flatten() {
            if ts + lower <= *pts && *pts <= ts + upper {
                expected.push(format!("{id}\t{ts}\t{pts}\t{amount}\t{method}"));
            }
        }
    }
    expected.sort();
    expected
}

/// Runs `interval-join` over `input` at `parallelism` with `extra` arguments.
fn run_join(input: &Path, output: &Path, parallelism: &str, extra: &[&str]) -> std::process::Output {
    let (orders, payments) = (input.join("orders.csv"), input.join("payments.csv"));
    let mut args = vec![
        "run",
        "interval-join",
        "--local",
        "-p",
        parallelism,
        "--",
        "--orders",
        orders.to_str().unwrap(),
        "--payments",
        payments.to_str().unwrap(),
        "--lower-ms",
        "-20",
        "--upper-ms",
        "200",
        "--out-of-order-ms",
        "60",
        "--chunk-bytes",
        "4096",
        "--output",
        output.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    weir(&args, TIMEOUT)
}

#[test]
fn the_interval_join_job_gives_every_pair_in_the_interval_at_any_parallelism() {
    let dir = TempDir::new("interval-join");
    let expected = write_input(&dir.0, 5_000, -20, 200);
    assert!(expected.len() > 2_000, "a test with pairs to find: {}", expected.len());
    for p in ["1", "2", "3"] {
        let output = dir.join(&format!("out-{p}"));
        let run = run_join(&dir.0, &output, p, &[]);
        assert!(run.status.success(), "p={p}: {}", String::from_utf8_lossy(&run.stderr));
        let mut lines = read_output(&output);
        lines.sort();
        assert_eq!(lines.len(), expected.len(), "p={p}");
        assert!(lines == expected, "p={p}: the pairs differ from a nested loop's");
    }
}

#[test]
fn a_bad_line_fails_the_job_naming_file_line_and_field_or_is_set_aside() {
    let dir = TempDir::new("interval-join-bad");
    std::fs::write(dir.join("orders.csv"), "order_id,ts_ms,amount\no1,100,5.00\no2,later,7.00\no3,300,1.50\n").unwrap();
    std::fs::write(dir.join("payments.csv"), "o1,150,card\no3,310,cash\n").unwrap();
    let run = run_join(&dir.0, &dir.join("out-fail"), "1", &[]);
    assert!(!run.status.success(), "a bad line fails the job by default");
    let stderr = String::from_utf8_lossy(&run.stderr);
    let orders = dir.join("orders.csv");
    let named = format!("'{}' line 3: field 2 'ts_ms': 'later' is not an integer", orders.display());
    assert!(stderr.contains(&named), "{stderr}");

    let bad_dir = dir.join("bad");
    let run = run_join(
        &dir.0,
        &dir.join("out-skip"),
        "2",
        &["--on-bad-line", "skip", "--bad-lines", bad_dir.to_str().unwrap()],
    );
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let mut lines = read_output(&dir.join("out-skip"));
    lines.sort();
    assert_eq!(lines, ["o1\t100\t150\t5.00\tcard", "o3\t300\t310\t1.50\tcash"]);
    let bad = read_output(&bad_dir.join("orders"));
    assert_eq!(
        bad,
        [format!(
            "{}:3\tfield 2 'ts_ms': 'later' is not an integer (ms since the epoch)\to2,later,7.00",
            orders.display()
        )]
    );

    let run = run_join(&dir.0, &dir.join("out-arg"), "1", &["--on-bad-line", "ignore"]);
    assert!(!run.status.success());
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.contains("--on-bad-line must be 'skip' or 'fail', not 'ignore'"), "{stderr}");
}

/// An interval join of two generated click streams (rate-limited, so faults strike while it
/// runs): each click of the first joins the second's clicks of the same user 0–50 ms later.
fn generated_join(env: &mut StreamEnv, args: &JobArgs) -> Result<()> {
    let events: u64 = args.parse_req("events")?;
    let output = FileSink::new(args.get("output")?);
    let clicks = |seed| GeneratorConfig {
        events: Some(events),
        keys: 50,
        seed,
        rate: Some(20_000.0),
        out_of_order_ms: 80,
        ..Default::default()
    };
    let left = env.source("left", Generator::new(clicks(3))).key_by(|c: &Click| c.user);
    let right = env.source("right", Generator::new(clicks(4))).key_by(|c: &Click| c.user);
    left.interval_join(&right)
        .between(0, 50)
        .process("join", |l: &Click, r: &Click, ctx: &mut JoinContext<'_, u32, String>| {
            ctx.emit(format!("{}\t{}\t{}\t{}\t{}", l.user, l.index, r.index, l.time, r.time));
            Ok(())
        })
        .sink("output", output);
    Ok(())
}

/// A job of generated clicks, `--events N --output DIR`.
type GeneratedJob = fn(&mut StreamEnv, &JobArgs) -> Result<()>;

/// Runs `job` at parallelism 2 with checkpoints every 100 ms, killing `victims` (vertex,
/// subtask) one after another, each after a new completed checkpoint; returns the committed
/// output, sorted.
async fn run_with_kills(dir: &TempDir, job: GeneratedJob, victims: &[(usize, usize)]) -> Vec<String> {
    crate::support::init_logging();
    let output = dir.join("output");
    let args = JobArgs::parse(&["--events", "30000", "--output", output.to_str().unwrap()]).unwrap();
    let config = JobConfig {
        checkpoints: Some(CheckpointConfig {
            retained: 2,
            ..CheckpointConfig::every(Duration::from_millis(100), dir.join("checkpoints"))
        }),
        restart: RestartStrategy::FixedDelay { attempts: 10, delay: Duration::from_millis(50) },
        ..Default::default()
    };
    let job = JobSubmission::new("generated", 2, job).with_args(args).with_config(config);
    let cluster =
        MiniCluster::start(MiniClusterConfig { task_managers: 2, slots_per_task_manager: 2, ..Default::default() })
            .await
            .unwrap();
    let id = cluster.submit(&job).await.unwrap();
    for (n, &(vertex, index)) in victims.iter().enumerate() {
        let target = latest_checkpoint(&cluster, id).await + 1;
        eventually("a new completed checkpoint", TIMEOUT, || async { latest_checkpoint(&cluster, id).await >= target })
            .await;
        cluster.kill_subtask(id, vertex, index).await.unwrap();
        eventually("the job to restart", TIMEOUT, || async {
            let d = cluster.details(id).await.unwrap();
            d.restarts as usize > n && d.status == JobStatus::Running || d.status.is_terminal()
        })
        .await;
    }
    let result = crate::support::job_result(&cluster, id, TIMEOUT).await;
    cluster.shutdown().await;
    assert_eq!(result.status(), JobStatus::Finished, "{:?} {:?}", result.details.cause, result.details.exceptions);
    if !victims.is_empty() {
        assert!(result.details.restarts >= victims.len() as u32, "{:?}", result.details);
    }
    let mut lines = read_output(&output);
    lines.sort();
    lines
}

/// The committed output of `job` is the same with `victims` killed as without faults.
async fn exactly_once_across_kills(label: &str, job: GeneratedJob, victims: &[(usize, usize)]) {
    let clean = run_with_kills(&TempDir::new(&format!("{label}-clean")), job, &[]).await;
    assert!(clean.len() > 1_000, "{label}: output to lose: {}", clean.len());
    let faulty = run_with_kills(&TempDir::new(&format!("{label}-faulty")), job, victims).await;
    assert_eq!(faulty.len(), clean.len(), "{label}");
    assert!(faulty == clean, "{label}: the faulty run's output differs from the clean run's");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interval_join_restores_its_buffers_and_timers_exactly_once_after_failovers() {
    // Vertices: 0 left source, 1 right source, 2 the join and its sink.
    exactly_once_across_kills("interval-join", generated_join, &[(2, 0), (2, 1), (0, 1)]).await;
}

/// Generated transactions and rules through `fraud-rules`' keyed broadcast function.
fn generated_rules(env: &mut StreamEnv, args: &JobArgs) -> Result<()> {
    let events: u64 = args.parse_req("events")?;
    let output = FileSink::new(args.get("output")?);
    let clicks = |seed, events, rate| GeneratorConfig {
        events: Some(events),
        keys: 40,
        seed,
        rate: Some(rate),
        out_of_order_ms: 50,
        ..Default::default()
    };
    let transactions = env.source("transactions", Generator::new(clicks(8, events, 20_000.0))).map("tx", |c: Click| {
        weir_examples::Transaction {
            id: c.index.to_string(),
            account: format!("acc{}", c.user),
            ts: c.time,
            amount: (c.index * 7919 % 1_000) as i64,
        }
    });
    let rules = env
        .source("rules", Generator::new(clicks(9, events / 50, 400.0)))
        .set_parallelism(1)
        .map("rule", |c: Click| weir_examples::Rule {
            id: format!("r{}", c.user % 3),
            max_amount: 500 + (c.index * 31 % 400) as i64,
            from: c.time,
        })
        .set_parallelism(1);
    let unmatched = OutputTag::<String>::new("unmatched");
    let alerts = weir_examples::check_rules(&transactions, &rules, &unmatched);
    let unmatched = alerts.get_side_output(&unmatched).map("mark", |l: String| format!("ok\t{l}"));
    alerts.union(&[unmatched]).sink("output", output);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keyed_broadcast_function_restores_its_rules_state_and_timers_exactly_once_after_failovers() {
    // Vertices: 0 transactions, 1 rules, 2 the keyed broadcast function, 3 the union and sink.
    exactly_once_across_kills("broadcast", generated_rules, &[(2, 1), (1, 0), (2, 0)]).await;
}

/// Counts each window with a process window function that keeps a firing count per window
/// and a window count per key (window and global state), allowed lateness keeping windows.
struct CountWindows {
    firings: Option<WindowState<u32>>,
    windows: Option<ValueState<u32>>,
}

impl ProcessWindowFunction for CountWindows {
    type Key = u32;
    type In = u64;
    type Out = String;
    fn open(&mut self, ctx: &mut WindowOpenContext<'_, u32>) -> Result<()> {
        self.firings = Some(ctx.window_state("firings")?);
        self.windows = Some(ctx.value_state("windows")?);
        Ok(())
    }
    fn process(&mut self, user: &u32, counts: Vec<u64>, ctx: &mut WindowContext<'_, u32, String>) -> Result<()> {
        let firing = ctx.window_state(self.firings.unwrap())?.get()?.unwrap_or(0) + 1;
        ctx.window_state(self.firings.unwrap())?.update(firing)?;
        let windows = ctx.global_state(self.windows.unwrap()).get()?.unwrap_or(0) + 1;
        ctx.global_state(self.windows.unwrap()).update(windows)?;
        let start = ctx.window().start;
        ctx.emit(format!("{user}\t{start}\t{}\t#{firing}\tw{windows}", counts[0]));
        Ok(())
    }
    fn clear(&mut self, ctx: &mut WindowContext<'_, u32, String>) -> Result<()> {
        ctx.window_state(self.firings.unwrap())?.clear()
    }
}

fn generated_windows(env: &mut StreamEnv, args: &JobArgs) -> Result<()> {
    let config = GeneratorConfig {
        events: Some(args.parse_req("events")?),
        keys: 30,
        seed: 12,
        rate: Some(20_000.0),
        out_of_order_ms: 80,
        ..Default::default()
    };
    env.source("clicks", Generator::new(config))
        .key_by(|c: &Click| c.user)
        .window(Tumbling::event_time(Duration::from_millis(200)))
        .allowed_lateness(Duration::from_millis(300))
        .aggregate_with("count", Count, || CountWindows { firings: None, windows: None })
        .sink("output", FileSink::new(args.get("output")?));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_window_function_restores_its_window_and_key_state_exactly_once_after_failovers() {
    // Vertices: 0 the source, 1 the window and its sink.
    exactly_once_across_kills("process-window", generated_windows, &[(1, 0), (0, 1), (1, 1)]).await;
}

/// Sliding count windows (a count trigger's counts and a count evictor's records in window
/// state) over one source subtask, so that each key's records arrive in the same order in
/// every run: the last 5 clicks of each user, every 3 clicks.
fn generated_count_windows(env: &mut StreamEnv, args: &JobArgs) -> Result<()> {
    let config = GeneratorConfig {
        events: Some(args.parse_req("events")?),
        keys: 30,
        seed: 13,
        rate: Some(20_000.0),
        ..Default::default()
    };
    env.source("clicks", Generator::new(config))
        .set_parallelism(1)
        .key_by(|c: &Click| c.user)
        .count_window_sliding(5, 3)
        .process("last5", || Last5)
        .sink("output", FileSink::new(args.get("output")?));
    Ok(())
}

/// `user<TAB>index,index,…` of a count window's clicks.
struct Last5;

impl ProcessWindowFunction for Last5 {
    type Key = u32;
    type In = Click;
    type Out = String;
    fn process(&mut self, user: &u32, clicks: Vec<Click>, ctx: &mut WindowContext<'_, u32, String>) -> Result<()> {
        let ids: Vec<String> = clicks.iter().map(|c| c.index.to_string()).collect();
        ctx.emit(format!("{user}\t{}", ids.join(",")));
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn count_windows_restore_their_trigger_and_evictor_state_exactly_once_after_failovers() {
    // Vertices: 0 the source, 1 the window and its sink.
    exactly_once_across_kills("count-windows", generated_count_windows, &[(1, 0), (0, 0), (1, 1)]).await;
}

/// Looks each click's user up in a (simulated) remote service that answers after 0–2 ms.
struct UserLookup;

impl AsyncFunction for UserLookup {
    type In = Click;
    type Out = String;
    #[allow(clippy::manual_async_fn, reason = "the request must not borrow the function ('static)")]
    fn invoke(&self, c: Click) -> impl std::future::Future<Output = Result<Vec<String>>> + Send + 'static {
        async move {
            tokio::time::sleep(Duration::from_micros(c.index % 2_000)).await;
            Ok(vec![format!("{}\t{}\tuser-{}", c.index, c.time, c.user)])
        }
    }
}

/// Generated clicks through an ordered async lookup with a small capacity (so that the input
/// is held back while requests run) into the file sink.
fn generated_lookups(env: &mut StreamEnv, args: &JobArgs) -> Result<()> {
    let config = GeneratorConfig {
        events: Some(args.parse_req("events")?),
        keys: 30,
        seed: 14,
        rate: Some(20_000.0),
        ..Default::default()
    };
    env.source("clicks", Generator::new(config))
        .async_wait_ordered("lookup", UserLookup, Duration::from_secs(10), 8)
        .sink("output", FileSink::new(args.get("output")?));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_io_restarts_its_in_flight_requests_exactly_once_after_failovers() {
    // Vertices: 0 the source, 1 the async lookup (never chained), 2 the sink.
    exactly_once_across_kills("async-io", generated_lookups, &[(1, 0), (0, 1), (1, 1), (2, 0)]).await;
}

/// `fraud-rules` at several parallelisms equals checking each transaction against the version
/// of every rule in force at its time; the transactions no rule flags go to `--unmatched`.
#[test]
fn fraud_rules_alert_on_the_rules_in_force_at_each_transaction_at_any_parallelism() {
    let dir = TempDir::new("fraud-rules");
    let mut rng = Rng(0xDEAD_BEEF_1234_5678);
    let mut transactions = Vec::new();
    for i in 0..4_000u64 {
        let ts = (i * 5) as i64 + rng.next(30) as i64;
        transactions.push((format!("t{i}"), format!("acc{}", rng.next(25)), ts, rng.next(1_000) as i64));
    }
    // Rules: two from the start, one arriving later, and a new version of the first.
    let rules: Vec<(&str, i64, Option<i64>)> =
        vec![("big", 900, None), ("huge", 980, None), ("night", 700, Some(8_000)), ("big", 500, Some(15_000))];
    let mut text = String::from("tx_id,account,ts_ms,amount\n");
    for (id, account, ts, amount) in &transactions {
        writeln!(text, "{id},{account},{ts},{amount}").unwrap();
    }
    std::fs::write(dir.join("transactions.csv"), text).unwrap();
    let mut text = String::new();
    for (id, max, from) in &rules {
        match from {
            Some(from) => writeln!(text, "{id},{max},{from}").unwrap(),
            None => writeln!(text, "{id},{max}").unwrap(),
        }
    }
    std::fs::write(dir.join("rules.csv"), text).unwrap();

    let (mut alerts, mut unmatched) = (Vec::new(), Vec::new());
    for (id, account, ts, amount) in &transactions {
        let mut broken: Vec<&str> = Vec::new();
        for rule in ["big", "huge", "night"] {
            let in_force = rules
                .iter()
                .filter(|r| r.0 == rule && r.2.unwrap_or(i64::MIN) <= *ts)
                .max_by_key(|r| r.2.unwrap_or(i64::MIN));
            if in_force.is_some_and(|r| *amount > r.1) {
                broken.push(rule);
            }
        }
        let line = format!("{id}\t{account}\t{ts}\t{amount}");
        if broken.is_empty() { unmatched.push(line) } else { alerts.push(format!("{line}\t{}", broken.join(","))) }
    }
    alerts.sort();
    unmatched.sort();
    assert!(alerts.len() > 500 && unmatched.len() > 500, "{} alerts, {} unmatched", alerts.len(), unmatched.len());

    for p in ["1", "2", "3"] {
        let (output, unmatched_dir) = (dir.join(&format!("alerts-{p}")), dir.join(&format!("unmatched-{p}")));
        let run = weir(
            &[
                "run",
                "fraud-rules",
                "--local",
                "-p",
                p,
                "--",
                "--transactions",
                dir.join("transactions.csv").to_str().unwrap(),
                "--rules",
                dir.join("rules.csv").to_str().unwrap(),
                "--out-of-order-ms",
                "40",
                "--chunk-bytes",
                "4096",
                "--output",
                output.to_str().unwrap(),
                "--unmatched",
                unmatched_dir.to_str().unwrap(),
            ],
            TIMEOUT,
        );
        assert!(run.status.success(), "p={p}: {}", String::from_utf8_lossy(&run.stderr));
        let mut got = read_output(&output);
        got.sort();
        assert!(got == alerts, "p={p}: {} alerts, expected {}", got.len(), alerts.len());
        let mut got = read_output(&unmatched_dir);
        got.sort();
        assert!(got == unmatched, "p={p}: {} unmatched, expected {}", got.len(), unmatched.len());
    }
}
