use std::sync::Arc;

use super::*;
use crate::api::functions::Count;
use crate::api::job::{JobFn, build_job};
use crate::api::job_args::JobArgs;
use crate::api::stream::StreamEnv;
use crate::api::window::Tumbling;
use crate::runtime::nodes::stable_type_name;

fn job(f: impl Fn(&mut StreamEnv, &JobArgs) -> Result<()> + Send + Sync + 'static) -> JobFn {
    Arc::new(f)
}

fn pipeline() -> JobFn {
    job(|env, _| {
        env.from_vec("src", vec![1u32, 2, 3])
            .map("m", |x: u32| x + 1)
            .set_parallelism(1)
            .filter("f", |x: &u32| *x > 1)
            .set_parallelism(1)
            .key_by(|x: &u32| *x % 2)
            .window(Tumbling::event_time(std::time::Duration::from_secs(1)))
            .aggregate("count", Count)
            .map("fmt", |w| format!("{w:?}"))
            .sink("out", crate::api::connectors::DiscardSink::new().0);
        Ok(())
    })
}

#[test]
fn chains_forward_edges_and_splits_at_hash_edges() {
    let g = build_job("p", &pipeline(), &JobArgs::default(), 2, None).unwrap().job;
    let names: Vec<&str> = g.vertices.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(names, vec!["src -> m -> f", "count -> fmt -> out"]);
    assert_eq!(g.vertices[0].parallelism, 1);
    assert_eq!(g.vertices[1].parallelism, 2);
    assert_eq!(g.edges.len(), 1);
    assert_eq!(g.edges[0].partitioning, Partitioning::Hash);
    assert_eq!(g.slots_needed(), 2);
}

#[test]
fn a_side_output_chains_like_the_main_output_or_leaves_on_an_edge_of_its_own() {
    use crate::api::side_output::OutputTag;
    let g = build_job(
        "p",
        &job(|env, _| {
            let odd = OutputTag::<u32>::new("odd");
            let tag = odd.clone();
            let split = env.from_vec("src", vec![1u32, 2]).process(
                "split",
                move |n: u32, ctx: &mut crate::Context<'_, u32>| {
                    if n.is_multiple_of(2) {
                        ctx.emit(n)
                    } else {
                        ctx.output(&tag, n)
                    }
                    Ok(())
                },
            );
            split
                .get_side_output(&odd)
                .map("odd-chained", |n: u32| n)
                .sink("a", crate::api::connectors::DiscardSink::new().0);
            split
                .get_side_output(&odd)
                .map("odd-apart", |n: u32| n)
                .set_parallelism(2)
                .sink("b", crate::api::connectors::DiscardSink::new().0)
                .set_parallelism(2);
            split.sink("c", crate::api::connectors::DiscardSink::new().0);
            Ok(())
        }),
        &JobArgs::default(),
        1,
        None,
    )
    .unwrap();
    let names: Vec<&str> = g.job.vertices.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(names, vec!["src -> split -> odd-chained -> a -> c", "odd-apart -> b"]);
    assert_eq!(g.job.edges.len(), 1);
    let edge = &g.job.edges[0];
    assert_eq!((edge.output, edge.partitioning), (1, Partitioning::Rebalance));
    assert_eq!(g.stream.nodes[edge.from_node].name, "split");
    // One tag id read as two types is refused.
    let err = build_job(
        "p",
        &job(|env, _| {
            let split = env.from_vec("src", vec![1u32]).map("m", |n: u32| n);
            split.get_side_output(&OutputTag::<u32>::new("x")).print("a");
            split.get_side_output(&OutputTag::<String>::new("x")).print("b");
            Ok(())
        }),
        &JobArgs::default(),
        1,
        None,
    )
    .err()
    .expect("refused");
    assert!(err.to_string().contains("the side output 'x' of 'm' is read as u32 and as String"), "{err}");
}

#[test]
fn fingerprint_is_stable_and_sensitive() {
    let a = build_job("p", &pipeline(), &JobArgs::default(), 2, None).unwrap().job;
    let b = build_job("p", &pipeline(), &JobArgs::default(), 2, None).unwrap().job;
    let c = build_job("p", &pipeline(), &JobArgs::default(), 3, None).unwrap().job;
    assert_eq!(a.fingerprint, b.fingerprint);
    assert_ne!(a.fingerprint, c.fingerprint);
    let bytes = postcard::to_allocvec(&a).unwrap();
    assert_eq!(postcard::from_bytes::<JobGraph>(&bytes).unwrap(), a);
}

#[test]
fn parallelism_change_inserts_rebalance_and_disable_chaining_splits() {
    let g = build_job(
        "p",
        &job(|env, _| {
            env.from_vec("src", vec![1u32])
                .map("a", |x: u32| x)
                .set_parallelism(3)
                .map("b", |x: u32| x)
                .disable_chaining();
            Ok(())
        }),
        &JobArgs::default(),
        3,
        None,
    )
    .unwrap()
    .job;
    assert_eq!(g.vertices.len(), 3);
    assert_eq!(g.edges[0].partitioning, Partitioning::Rebalance);
    assert_eq!(g.edges[1].partitioning, Partitioning::Forward);
}

#[test]
fn bad_graphs_are_refused_with_reasons() {
    let empty = build_job("e", &job(|_, _| Ok(())), &JobArgs::default(), 1, None).err().unwrap();
    assert!(empty.to_string().contains("no operators"), "{empty}");
    let too_wide = build_job(
        "w",
        &job(|env, _| {
            env.from_vec("src", vec![1u32]).map("m", |x: u32| x).set_parallelism(200);
            Ok(())
        }),
        &JobArgs::default(),
        1,
        None,
    )
    .err()
    .unwrap();
    assert!(too_wide.to_string().contains("'m'"), "{too_wide}");
    let unread = build_job("u", &pipeline(), &JobArgs::parse(&["--nope", "1"]).unwrap(), 1, None).err().unwrap();
    assert!(unread.to_string().contains("--nope"), "{unread}");
    let same_uid = build_job(
        "d",
        &job(|env, _| {
            env.from_vec("src", vec![1u32]).uid("x").map("m", |x: u32| x).uid("x");
            Ok(())
        }),
        &JobArgs::default(),
        1,
        None,
    )
    .err()
    .unwrap();
    assert!(same_uid.to_string().contains("'src' and 'm' have the same uid 'x'"), "{same_uid}");
}

pub(crate) mod v1 {
    /// A record type in one module...
    #[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
    pub(crate) struct Event(pub(crate) u32);
}

pub(crate) mod v2 {
    /// ...and, after a refactoring, in another.
    #[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
    pub(crate) struct Event(pub(crate) u32);
}

#[test]
fn type_names_leave_out_module_paths() {
    assert_eq!(stable_type_name::<v1::Event>(), "Event");
    assert_eq!(stable_type_name::<v1::Event>(), stable_type_name::<v2::Event>());
    assert_eq!(stable_type_name::<Vec<(v1::Event, String)>>(), "Vec<(Event, String)>");
    assert_eq!(stable_type_name::<Option<std::collections::BTreeMap<u8, v2::Event>>>(), "Option<BTreeMap<u8, Event>>");
    assert_eq!(stable_type_name::<[u8; 4]>(), "[u8; 4]");
}
