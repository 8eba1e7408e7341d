//! Matching a savepoint to the plan that restores it, and every refusal naming what is wrong.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use weir_state::storage::Location;

use super::*;
use crate::api::job::{JobFn, build_job};
use crate::api::job_args::JobArgs;
use crate::base::state::OperatorState;
use crate::prelude::*;
use crate::runtime::checkpoint::storage::{write_metadata_in, write_task_in};
use crate::runtime::checkpoint::{CheckpointMetadata, TaskSnapshot};

struct Dir(PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn temp(label: &str) -> Dir {
    let dir = std::env::temp_dir().join(format!("weir-savepoint-{label}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    Dir(dir)
}

/// clicks -> key_by -> `count` (uid "count-v1" if `uid`) -> sink; `extra` puts a map before
/// the count (shifting its node).
fn plan(parallelism: usize, uid: bool, extra: bool, max_parallelism: u16) -> JobGraph {
    let builder: JobFn = Arc::new(move |env: &mut StreamEnv, _: &JobArgs| {
        env.set_max_parallelism(max_parallelism);
        let mut clicks = env.source("clicks", Generator::new(GeneratorConfig::default()));
        if extra {
            clicks = clicks.map("same", |c: Click| c);
        }
        let counts = clicks.key_by(|c: &Click| c.user).aggregate("count", Count);
        let counts = if uid { counts.uid("count-v1") } else { counts };
        counts.sink("out", DiscardSink::new().0);
        Ok(())
    });
    build_job("p", &builder, &JobArgs::default(), parallelism, None).unwrap().job
}

/// A savepoint of `plan` in `dir` where every subtask of every operator but the sink has state.
fn write_savepoint(dir: &Path, plan: &JobGraph) {
    std::fs::create_dir_all(dir).unwrap();
    let dir = &Location::from(dir);
    let operators = OperatorMetadata::of_plan(plan);
    let mut tasks = Vec::new();
    for vertex in &plan.vertices {
        for subtask in 0..vertex.parallelism {
            let states = vertex
                .operators
                .iter()
                .filter(|op| op.kind != crate::runtime::job_graph::NodeKind::Sink)
                .map(|op| OperatorState { node: op.node, operator: Some(vec![1, 2, 3]), ..Default::default() })
                .collect();
            let snapshot = TaskSnapshot {
                checkpoint: 7,
                vertex: vertex.id,
                subtask,
                finished: false,
                operators: states,
                clock: Default::default(),
            };
            tasks.push(write_task_in(&crate::base::fs::LocalFs, dir, &snapshot, 0).unwrap());
        }
    }
    let metadata = CheckpointMetadata {
        version: CheckpointMetadata::VERSION,
        job: JobId(0xabcdef),
        checkpoint: 7,
        savepoint: true,
        fingerprint: plan.fingerprint,
        max_parallelism: plan.max_parallelism,
        triggered_ms: 0,
        duration_ms: 1,
        operators,
        tasks,
    };
    write_metadata_in(&crate::base::fs::LocalFs, dir, &metadata).unwrap();
}

fn node_named(plan: &JobGraph, name: &str) -> usize {
    OperatorMetadata::of_plan(plan).into_iter().find(|op| op.name == name).unwrap().node
}

#[test]
fn a_savepoint_restores_at_another_parallelism_and_matches_uids_across_versions() {
    let dir = temp("match");
    let old = plan(2, true, false, 128);
    write_savepoint(&dir.0, &old);
    let at_three = RestoreFrom::savepoint(&SavepointRestore::new(&dir.0), &plan(3, true, false, 128)).unwrap();
    assert_eq!(at_three.checkpoint(), 7);
    assert!(at_three.nodes.iter().all(|(new, old)| new == old), "{:?}", at_three.nodes);

    // A map inserted before the count moves it to another node: its uid still finds it.
    let newer = plan(1, true, true, 128);
    let from = RestoreFrom::savepoint(&SavepointRestore::new(&dir.0), &newer).unwrap();
    assert_eq!(from.nodes[&node_named(&newer, "count")], node_named(&old, "count"));
    assert!(!from.nodes.contains_key(&node_named(&newer, "same")), "a new operator starts without state");
}

#[test]
fn state_the_job_has_no_operator_for_is_refused_unless_allowed() {
    let dir = temp("lost");
    write_savepoint(&dir.0, &plan(2, false, false, 128));
    // Without a uid, an operator is matched by node and name; the map moved `count`.
    let err = RestoreFrom::savepoint(&SavepointRestore::new(&dir.0), &plan(2, false, true, 128)).unwrap_err();
    let text = err.to_string();
    assert!(text.contains(&dir.0.display().to_string()), "{text}");
    assert!(text.contains("'count' (node 1)") && text.contains("--allow-non-restored-state"), "{text}");
    let allowed = SavepointRestore::new(&dir.0).allow_non_restored_state();
    let from = RestoreFrom::savepoint(&allowed, &plan(2, false, true, 128)).unwrap();
    assert!(from.nodes.values().all(|&old| old != 1), "the lost state maps nowhere: {:?}", from.nodes);
}

#[test]
fn changed_types_and_key_groups_are_refused() {
    let dir = temp("types");
    write_savepoint(&dir.0, &plan(2, true, false, 128));
    let err = RestoreFrom::savepoint(&SavepointRestore::new(&dir.0), &plan(2, true, false, 64)).unwrap_err();
    assert!(err.to_string().contains("max parallelism 128 and the job has 64"), "{err}");

    // The same uid on an operator with other record types: its state cannot be read.
    let builder: JobFn = Arc::new(|env: &mut StreamEnv, _: &JobArgs| {
        env.source("clicks", Generator::new(GeneratorConfig::default()))
            .map("user", |c: Click| c.user)
            .key_by(|u: &u32| *u)
            .aggregate("count", Count)
            .uid("count-v1")
            .sink("out", DiscardSink::new().0);
        Ok(())
    });
    let other = build_job("p", &builder, &JobArgs::default(), 2, None).unwrap().job;
    let err = RestoreFrom::savepoint(&SavepointRestore::new(&dir.0), &other).unwrap_err().to_string();
    assert!(err.contains("record types changed") && err.contains("'count' (uid \"count-v1\")"), "{err}");
}

#[test]
fn a_missing_or_incomplete_savepoint_is_named() {
    let dir = temp("missing");
    let job = plan(2, true, false, 128);
    let err = RestoreFrom::savepoint(&SavepointRestore::new(&dir.0), &job).unwrap_err().to_string();
    assert!(err.contains(&dir.0.display().to_string()) && err.contains("does not exist"), "{err}");

    std::fs::create_dir_all(&dir.0).unwrap();
    let err = RestoreFrom::savepoint(&SavepointRestore::new(&dir.0), &job).unwrap_err().to_string();
    assert!(err.contains("has no _metadata"), "{err}");

    write_savepoint(&dir.0, &job);
    std::fs::remove_file(dir.0.join("1-1-a0")).unwrap();
    let err = RestoreFrom::savepoint(&SavepointRestore::new(&dir.0), &job).unwrap_err().to_string();
    assert!(err.contains(&dir.0.join("1-1-a0").display().to_string()) && err.contains("missing"), "{err}");

    std::fs::write(dir.0.join("_metadata"), b"{ not json").unwrap();
    let err = RestoreFrom::savepoint(&SavepointRestore::new(&dir.0), &job).unwrap_err().to_string();
    assert!(err.contains("_metadata") && err.contains("corrupt"), "{err}");
}

#[test]
fn savepoint_directories_are_named_after_the_job_and_the_checkpoint() {
    let job: JobId = "0123456789abcdef0123456789abcdef".parse().unwrap();
    assert_eq!(
        savepoint_dir(&Location::from(Path::new("/sp")), job, 12),
        Location::from(Path::new("/sp/savepoint-012345-12"))
    );
    let bucket = Location::parse("s3://bucket/savepoints").unwrap();
    assert_eq!(savepoint_dir(&bucket, job, 12).to_string(), "s3://bucket/savepoints/savepoint-012345-12");
}

/// Defect: a hand-edited or corrupt `_metadata` could name a task file outside the savepoint's
/// directory, or size an allocation by an operator's parallelism.
#[test]
fn metadata_naming_a_file_outside_or_a_huge_parallelism_is_refused() {
    let dir = temp("escape");
    let job = plan(2, true, false, 128);
    write_savepoint(&dir.0, &job);
    let path = dir.0.join("_metadata");
    let original: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let restore = |edit: &dyn Fn(&mut serde_json::Value)| {
        let mut json = original.clone();
        edit(&mut json);
        std::fs::write(&path, serde_json::to_vec(&json).unwrap()).unwrap();
        RestoreFrom::savepoint(&SavepointRestore::new(&dir.0), &job).unwrap_err().to_string()
    };
    for file in ["../../outside", "/etc/hostname", "a/b", ""] {
        let err = restore(&|json| json["tasks"][0]["file"] = file.into());
        assert!(err.contains("corrupt") && err.contains(&format!("{file:?}")), "{file}: {err}");
    }
    let err = restore(&|json| json["operators"][0]["parallelism"] = (1u64 << 40).into());
    assert!(err.contains("corrupt") && err.contains("parallelism 1099511627776"), "{err}");
    let err = restore(&|json| json["tasks"][0]["subtask"] = 7.into());
    assert!(err.contains("subtask 7"), "{err}");
}

/// Defect: plans and savepoints compared `std::any::type_name`, which changes when a type
/// moves to another module (and is not stable across compiler versions): the moved job had
/// another fingerprint, and its savepoints were refused as "record types changed".
#[test]
fn moving_a_record_type_to_another_module_keeps_the_plan_and_its_savepoints() {
    use crate::runtime::stream_graph::tests::{v1, v2};
    fn plan<E: crate::base::data::Data + Sync>(wrap: fn(u32) -> E, unwrap: fn(&E) -> u32) -> JobGraph {
        let builder: JobFn = Arc::new(move |env: &mut StreamEnv, _: &JobArgs| {
            env.from_vec("n", (0..10u32).collect())
                .map("wrap", wrap)
                .key_by(unwrap)
                .reduce("latest", |_: &E, b: &E| b.clone())
                .uid("latest")
                .sink("out", DiscardSink::new().0);
            Ok(())
        });
        build_job("moved", &builder, &JobArgs::default(), 2, None).unwrap().job
    }
    let before = plan(v1::Event, |e: &v1::Event| e.0);
    let after = plan(v2::Event, |e: &v2::Event| e.0);
    assert_eq!(before.fingerprint, after.fingerprint, "a failover restores across the move");
    let dir = temp("moved");
    write_savepoint(&dir.0, &before);
    let from = RestoreFrom::savepoint(&SavepointRestore::new(&dir.0), &after).unwrap();
    assert!(from.nodes.contains_key(&node_named(&after, "latest")));
}

/// An operator's declared state version: a savepoint whose state it wrote under another
/// version is refused, naming the operator and both versions; the same version restores.
/// Metadata written before versions were declared reads as version 1.
#[test]
fn a_declared_state_version_must_match_the_savepoints() {
    fn plan(version: Option<u32>) -> JobGraph {
        let builder: JobFn = Arc::new(move |env: &mut StreamEnv, _: &JobArgs| {
            let counts = env
                .source("clicks", Generator::new(GeneratorConfig::default()))
                .key_by(|c: &Click| c.user)
                .aggregate("count", Count)
                .uid("count");
            let counts = match version {
                Some(v) => counts.state_version(v),
                None => counts,
            };
            counts.sink("out", DiscardSink::new().0);
            Ok(())
        });
        build_job("versioned", &builder, &JobArgs::default(), 2, None).unwrap().job
    }
    let dir = temp("versions");
    write_savepoint(&dir.0, &plan(None));
    RestoreFrom::savepoint(&SavepointRestore::new(&dir.0), &plan(Some(1))).unwrap();
    let e = RestoreFrom::savepoint(&SavepointRestore::new(&dir.0), &plan(Some(2))).unwrap_err().to_string();
    assert!(e.contains("'count' (uid \"count\") wrote it with state version 1 and the job declares version 2"), "{e}");
    assert!(e.contains("new uid"), "{e}");

    // Metadata from before declared versions: no `state_version` in its JSON.
    let metadata = dir.0.join(METADATA);
    let json = std::fs::read_to_string(&metadata).unwrap().replace("\"state_version\": 1,", "");
    assert!(!json.contains("state_version"));
    std::fs::write(&metadata, json).unwrap();
    RestoreFrom::savepoint(&SavepointRestore::new(&dir.0), &plan(None)).unwrap();
    assert!(RestoreFrom::savepoint(&SavepointRestore::new(&dir.0), &plan(Some(3))).is_err());
}
