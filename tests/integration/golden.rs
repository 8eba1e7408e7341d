//! Every example job at parallelism 1 and 4: identical output, equal to the checked-in golden
//! file, and equal to an independent computation of what the job should produce.
//!
//! `WEIR_BLESS=1` rewrites the golden files (review the diff before committing it).

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::Duration;

use weir_actors::JobStatus;
use weir_actors::prelude::*;

use crate::support::{TempDir, read_output, repo_root};

fn run_example(job: &str, args: &[&str], parallelism: usize) -> Vec<String> {
    let out = TempDir::new(job);
    let output = out.join("out");
    let mut all: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    all.extend(["--output".to_owned(), output.display().to_string()]);
    let submission =
        JobSubmission::from_registry(&weir_examples::registry(), job, JobArgs::parse(&all).unwrap(), parallelism)
            .unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let result = runtime.block_on(async {
        let cluster = MiniCluster::start(MiniClusterConfig {
            task_managers: 2,
            slots_per_task_manager: parallelism.div_ceil(2),
            ..MiniClusterConfig::default()
        })
        .await
        .unwrap();
        let result = tokio::time::timeout(Duration::from_secs(120), cluster.execute(&submission)).await;
        cluster.shutdown().await;
        result.expect("job timed out").unwrap()
    });
    assert_eq!(result.status(), JobStatus::Finished, "{job} at p{parallelism}: {:?}", result.details.cause);
    read_output(&output)
}

fn golden(name: &str, lines: &[String]) {
    let path: PathBuf = repo_root().join("tests/golden").join(format!("{name}.tsv"));
    if std::env::var_os("WEIR_BLESS").is_some() {
        std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("missing golden file {} ({e}); run with WEIR_BLESS=1 to create it", path.display()));
    let expected: Vec<&str> = expected.lines().collect();
    assert_eq!(lines.len(), expected.len(), "{name}: line count differs from {}", path.display());
    for (got, want) in lines.iter().zip(&expected) {
        assert_eq!(got, want, "{name}: output differs from {}", path.display());
    }
}

fn check_example(job: &str, args: &[&str], oracle: Vec<String>) {
    let p1 = run_example(job, args, 1);
    let p4 = run_example(job, args, 4);
    assert!(!p1.is_empty(), "{job} produced no output");
    assert_eq!(p1, p4, "{job}: parallelism 1 and 4 differ");
    let mut oracle = oracle;
    oracle.sort();
    assert_eq!(p1, oracle, "{job}: output differs from the independent computation");
    golden(job, &p1);
}

const GENERATOR: [&str; 6] = ["--events", "20000", "--keys", "50", "--seed", "3"];

fn generator_args(extra: &[&'static str]) -> (Vec<&'static str>, GeneratorConfig) {
    let mut args: Vec<&'static str> = GENERATOR.to_vec();
    args.extend(["--out-of-order-ms", "200"]);
    args.extend(extra);
    let config = GeneratorConfig {
        events: Some(20_000),
        keys: 50,
        seed: 3,
        rate: None,
        out_of_order_ms: 200,
        event_time_rate: 1000,
        ..GeneratorConfig::default()
    };
    (args, config)
}

fn events(config: &GeneratorConfig) -> Vec<Click> {
    (0..config.events.unwrap()).map(|i| config.event(i)).collect()
}

#[test]
fn word_count() {
    let input = repo_root().join("data/words.txt");
    let text = std::fs::read_to_string(&input).unwrap();
    let mut counts: HashMap<&str, u64> = HashMap::new();
    for word in text.split_whitespace() {
        *counts.entry(word).or_default() += 1;
    }
    let oracle = counts.iter().map(|(w, c)| format!("{w}\t{c}")).collect();
    check_example("word-count", &["--input", input.to_str().unwrap()], oracle);
}

#[test]
fn window_agg() {
    let (args, config) = generator_args(&["--window-ms", "1000"]);
    let mut counts: BTreeMap<(u32, i64), u64> = BTreeMap::new();
    for c in events(&config) {
        *counts.entry((c.user, c.time.div_euclid(1000) * 1000)).or_default() += 1;
    }
    let oracle = counts.iter().map(|((u, w), n)| format!("{u}\t{w}\t{n}")).collect();
    check_example("window-agg", &args, oracle);
}

#[test]
fn sessions() {
    let (args, config) = generator_args(&["--gap-ms", "80"]);
    let mut by_user: BTreeMap<u32, Vec<i64>> = BTreeMap::new();
    for c in events(&config) {
        by_user.entry(c.user).or_default().push(c.time);
    }
    let mut oracle = Vec::new();
    for (user, mut times) in by_user {
        times.sort();
        let (mut start, mut end, mut n) = (times[0], times[0] + 80, 0u64);
        for t in times {
            if t > end {
                oracle.push(format!("{user}\t{start}\t{end}\t{n}"));
                (start, n) = (t, 0);
            }
            end = end.max(t + 80);
            n += 1;
        }
        oracle.push(format!("{user}\t{start}\t{end}\t{n}"));
    }
    check_example("sessions", &args, oracle);
}

#[test]
fn alerts() {
    let (args, config) = generator_args(&["--threshold", "3", "--within-ms", "100"]);
    let mut by_user: BTreeMap<u32, Vec<Click>> = BTreeMap::new();
    for c in events(&config) {
        by_user.entry(c.user).or_default().push(c);
    }
    let mut oracle = Vec::new();
    for (user, mut clicks) in by_user {
        clicks.sort_by_key(|c| (c.time, c.index));
        let mut burst: Option<(i64, u64, bool)> = None;
        for c in clicks {
            let (start, count, alerted) = match burst {
                Some((s, n, a)) if c.time < s + 100 => (s, n + 1, a),
                _ => (c.time, 1, false),
            };
            let alert = count > 3 && !alerted;
            if alert {
                oracle.push(format!("{user}\t{start}\t{}\t{count}", c.time));
            }
            burst = Some((start, count, alerted || alert));
        }
    }
    check_example("alerts", &args, oracle);
}

#[test]
fn slow_sink() {
    let (mut args, config) = generator_args(&[]);
    args.extend(["--sink-rate", "1000000"]);
    let oracle = events(&config).iter().map(|c| format!("{}\t{}", c.user, c.index)).collect();
    check_example("slow-sink", &args, oracle);
}
