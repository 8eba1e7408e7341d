use super::*;
use crate::api::harness::{HarnessConfig, HarnessSnapshot};

/// Runs subtasks `0..parallelism` restored from `states`, each until it emitted `limits[i]`;
/// returns their snapshots and adds what they emitted to `seen`.
fn leg(
    config: GeneratorConfig,
    states: &[HarnessSnapshot],
    limits: &[usize],
    seen: &mut Vec<u64>,
) -> Vec<HarnessSnapshot> {
    let parallelism = limits.len();
    (0..parallelism)
        .map(|i| {
            let harness = HarnessConfig::new().subtask(i, parallelism).batch_size(64).restore(states.to_vec());
            let mut h = harness.build_source(Generator::new(config)).unwrap();
            h.run(limits[i]).unwrap();
            seen.extend(h.output().iter().map(|c| c.index));
            h.snapshot().unwrap()
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
        let harness = HarnessConfig::new().subtask(i, 2).batch_size(64).restore(vec![state.clone()]);
        let mut h = harness.build_source(Generator::new(config)).unwrap();
        assert!(h.run(usize::MAX).unwrap(), "the generator finishes");
        seen.extend(h.output().iter().map(|c| c.index));
    }
    seen.sort_unstable();
    assert_eq!(seen, (0..100).collect::<Vec<_>>());
}

/// Defects: a corrupt checkpoint with stride 0 divided by zero; a huge `--out-of-order-ms`
/// overflowed the event times.
#[test]
fn a_corrupt_position_and_a_huge_disorder_are_errors() {
    let corrupt = postcard::to_allocvec(&GeneratorState {
        position: Position { stride: 0, offset: 0, next: 10 },
        inherited: Vec::new(),
    })
    .unwrap();
    let mut generator = Generator::new(GeneratorConfig::default());
    generator.stride = 2;
    let err = generator.restore_state(vec![corrupt.clone(), corrupt]).unwrap_err().to_string();
    assert!(err.contains("corrupt") && err.contains("stride 0"), "{err}");

    let config = GeneratorConfig { out_of_order_ms: i64::MAX, ..GeneratorConfig::default() };
    let err = config.check().unwrap_err().to_string();
    assert!(err.contains("--out-of-order-ms"), "{err}");
    let most = GeneratorConfig { out_of_order_ms: MAX_OUT_OF_ORDER_MS, ..GeneratorConfig::default() };
    most.check().unwrap();
    assert!(most.event(u64::MAX / 2).time > 0);
    assert_eq!(most.event(u64::MAX).time, i64::MAX);
}

#[test]
fn event_times_in_64_bits_are_those_of_the_128_bit_formula() {
    let exact = |index: u64, rate: u64| i64::try_from(u128::from(index) * 1000 / u128::from(rate)).unwrap_or(i64::MAX);
    let edge = u64::MAX / 1000;
    for index in [0, 1, 999, 1_000_001, edge - 1, edge, edge + 1, u64::MAX / 2, u64::MAX - 1, u64::MAX] {
        for rate in [1, 7, 1000, 10_000, 1 << 40, u64::MAX] {
            assert_eq!(event_time_ms(index, rate), exact(index, rate), "index {index} rate {rate}");
        }
    }
}
