use super::*;
use crate::connectors::testing::run_source;

/// Runs subtasks `0..parallelism` from `states`, each until it emitted `limits[i]`; returns
/// their snapshots and adds what they emitted to `seen`.
fn leg(config: GeneratorConfig, states: &[Vec<u8>], limits: &[usize], seen: &mut Vec<u64>) -> Vec<Vec<u8>> {
    let parallelism = limits.len();
    (0..parallelism)
        .map(|i| {
            let (out, state) = run_source(Generator::new(config), (i, parallelism), states.to_vec(), limits[i], 64);
            seen.extend(out.iter().map(|c| c.index));
            state
        })
        .collect()
}

#[test]
fn rescaling_twice_emits_every_event_once() {
    let config = GeneratorConfig { events: Some(1000), keys: 7, ..GeneratorConfig::default() };
    let mut seen = Vec::new();
    let two = leg(config, &[], &[300, 300], &mut seen);
    // Subtask 0 of three stops at once, before passing what the two emitted: its snapshot
    // must carry their positions along.
    let three = leg(config, &two, &[0, 30, 30], &mut seen);
    let one = leg(config, &three, &[usize::MAX], &mut seen);
    assert_eq!(one.len(), 1);
    seen.sort_unstable();
    let expected: Vec<u64> = (0..1000).collect();
    assert_eq!(seen.len(), expected.len(), "events lost or emitted twice");
    assert_eq!(seen, expected);
}

#[test]
fn the_same_parallelism_resumes_each_subtask_where_it_stood() {
    let config = GeneratorConfig { events: Some(100), keys: 3, ..GeneratorConfig::default() };
    let mut seen = Vec::new();
    let first = leg(config, &[], &[10, 20], &mut seen);
    for (i, state) in first.iter().enumerate() {
        let (out, _) = run_source(Generator::new(config), (i, 2), vec![state.clone()], usize::MAX, 64);
        seen.extend(out.iter().map(|c| c.index));
    }
    seen.sort_unstable();
    assert_eq!(seen, (0..100).collect::<Vec<_>>());
}
