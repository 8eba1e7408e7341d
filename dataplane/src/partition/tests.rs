use super::*;

const ALL: [Partitioning; 5] = [
    Partitioning::Forward,
    Partitioning::Hash,
    Partitioning::Rebalance,
    Partitioning::Rescale,
    Partitioning::Broadcast,
];

#[test]
fn consumers_of_and_producers_of_are_inverses() {
    for part in ALL {
        for p_up in 1..=12 {
            for p_down in 1..=12 {
                if part == Partitioning::Forward && p_up != p_down {
                    continue;
                }
                for prod in 0..p_up {
                    for cons in 0..p_down {
                        let forward = part.consumers_of(prod, p_up, p_down).contains(&cons);
                        let backward = part.producers_of(cons, p_up, p_down).contains(&prod);
                        assert_eq!(forward, backward, "{part} {p_up}->{p_down}: {prod}->{cons}");
                    }
                }
            }
        }
    }
}

#[test]
fn every_subtask_is_connected() {
    for part in ALL {
        for p_up in 1..=12 {
            for p_down in 1..=12 {
                if part == Partitioning::Forward && p_up != p_down {
                    continue;
                }
                for prod in 0..p_up {
                    assert!(!part.consumers_of(prod, p_up, p_down).is_empty());
                }
                for cons in 0..p_down {
                    assert!(!part.producers_of(cons, p_up, p_down).is_empty());
                }
            }
        }
    }
}

#[test]
fn rescale_is_pointwise() {
    // Each side connects to contiguous slices; one of the two ends always has exactly one peer.
    for p_up in 1..=12 {
        for p_down in 1..=12 {
            let part = Partitioning::Rescale;
            let max_out = (0..p_up).map(|i| part.consumers_of(i, p_up, p_down).len()).max();
            let max_in = (0..p_down).map(|i| part.producers_of(i, p_up, p_down).len()).max();
            assert!(max_out == Some(1) || max_in == Some(1), "{p_up}->{p_down}");
        }
    }
    assert_eq!(Partitioning::Rescale.consumers_of(0, 2, 4), 0..2);
    assert_eq!(Partitioning::Rescale.consumers_of(1, 2, 4), 2..4);
    assert_eq!(Partitioning::Rescale.producers_of(0, 4, 2), 0..2);
    assert_eq!(Partitioning::Rescale.producers_of(1, 4, 2), 2..4);
    assert_eq!(Partitioning::Rescale.consumers_of(3, 4, 2), 1..2);
}

#[test]
fn forward_is_one_to_one_and_empty_on_mismatch() {
    assert_eq!(Partitioning::Forward.consumers_of(2, 4, 4), 2..3);
    assert_eq!(Partitioning::Forward.producers_of(3, 4, 4), 3..4);
    assert!(Partitioning::Forward.consumers_of(0, 2, 3).is_empty());
    assert!(Partitioning::Forward.producers_of(0, 2, 3).is_empty());
}

#[test]
fn all_to_all() {
    for part in [Partitioning::Hash, Partitioning::Rebalance, Partitioning::Broadcast] {
        assert!(part.is_all_to_all());
        assert_eq!(part.consumers_of(1, 3, 5), 0..5);
        assert_eq!(part.producers_of(4, 3, 5), 0..3);
    }
    assert!(!Partitioning::Forward.is_all_to_all());
    assert!(!Partitioning::Rescale.is_all_to_all());
}

#[test]
fn names() {
    let names: Vec<_> = ALL.iter().map(|p| p.name()).collect();
    assert_eq!(names, ["forward", "hash", "rebalance", "rescale", "broadcast"]);
    assert_eq!(Partitioning::Hash.to_string(), "hash");
}
