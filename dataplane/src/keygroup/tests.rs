use super::*;

/// Pinned values: if any of these change, keyed state written by earlier builds would be read
/// by the wrong subtask. Never update them to make a test pass.
#[test]
fn hash_and_key_groups_are_stable() {
    assert_eq!(stable_hash(b"weir"), PIN_HASH_WEIR);
    let max = DEFAULT_MAX_PARALLELISM;
    let got = [
        key_group_of("alice", max),
        key_group_of("bob", max),
        key_group_of("carol", max),
        key_group_of("", max),
        key_group_of(&0u64, max),
        key_group_of(&1u64, max),
        key_group_of(&42u64, max),
        key_group_of(&7u32, max),
    ];
    assert_eq!(got, PIN_KEY_GROUPS);
}

const PIN_HASH_WEIR: u64 = 685424309925146904;
// "alice", "bob", "carol", "", 0u64, 1u64, 42u64, 7u32 at max 128.
const PIN_KEY_GROUPS: [KeyGroup; 8] = [19, 127, 15, 91, 91, 107, 13, 31];

#[test]
fn key_group_of_is_the_hash_of_the_postcard_encoding() {
    for key in ["", "alice", "a much longer key that does not fit the stack buffer"] {
        let bytes = postcard::to_stdvec(key).unwrap();
        assert_eq!(key_group_of(key, 1000), key_group_for_hash(stable_hash(&bytes), 1000));
    }
}

#[test]
fn large_keys_fall_back_to_the_heap() {
    let big: String = "x".repeat(10_000);
    let bytes = postcard::to_stdvec(&big).unwrap();
    assert!(bytes.len() > STACK_KEY_BYTES);
    assert_eq!(key_group_of(&big, 128), key_group_for_hash(stable_hash(&bytes), 128));
    // Str and String encode alike, so either can be used to route the same key.
    assert_eq!(key_group_of(big.as_str(), 128), key_group_of(&big, 128));
}

#[test]
fn key_groups_are_below_max() {
    for max in [1u16, 2, 7, 128, UPPER_MAX_PARALLELISM] {
        for k in 0u64..500 {
            assert!(key_group_of(&k, max) < max);
        }
    }
}

#[test]
fn ranges_are_contiguous_and_cover_all_key_groups() {
    for max in [1u16, 7, 128, 1000] {
        for p in 1..=usize::from(max) {
            let mut next = 0;
            for i in 0..p {
                let r = KeyGroupRange::for_subtask(max, p, i);
                assert_eq!(r.start, next, "max {max} p {p} subtask {i}");
                assert!(!r.is_empty(), "max {max} p {p} subtask {i}");
                next = r.end;
            }
            assert_eq!(next, max, "max {max} p {p}");
        }
    }
}

// Flink's formula, spelled as Flink spells it, against the div_ceil form in the code.
#[allow(clippy::manual_div_ceil)]
#[test]
fn ranges_match_flink_formula() {
    for max in [1u16, 7, 128, 1000] {
        for p in 1..=usize::from(max) {
            for i in 0..p {
                let m = usize::from(max);
                let start = (i * m + p - 1) / p;
                let inclusive_end = ((i + 1) * m - 1) / p;
                let r = KeyGroupRange::for_subtask(max, p, i);
                assert_eq!((usize::from(r.start), usize::from(r.end)), (start, inclusive_end + 1));
            }
        }
    }
}

#[test]
fn every_key_group_has_exactly_one_owner() {
    for max in [1u16, 2, 3, 7, 128, 1000] {
        for p in 1..=usize::from(max) {
            let ranges: Vec<_> = (0..p).map(|i| KeyGroupRange::for_subtask(max, p, i)).collect();
            for kg in 0..max {
                let owners: Vec<usize> = (0..p).filter(|&i| ranges[i].contains(kg)).collect();
                assert_eq!(owners.len(), 1, "max {max} p {p} kg {kg}");
                assert_eq!(subtask_for_key_group(max, p, kg), owners[0], "max {max} p {p} kg {kg}");
            }
        }
    }
}

#[test]
fn range_accessors() {
    let r = KeyGroupRange::new(3, 7);
    assert_eq!(r.len(), 4);
    assert!(!r.is_empty());
    assert!(r.contains(3) && r.contains(6));
    assert!(!r.contains(2) && !r.contains(7));
    assert_eq!(r.iter(), 3..7);
    assert_eq!(r.as_range().collect::<Vec<_>>(), vec![3, 4, 5, 6]);
    assert_eq!(r.into_iter().count(), 4);
    let empty = KeyGroupRange::new(5, 5);
    assert!(empty.is_empty());
    assert_eq!(KeyGroupRange::new(5, 2).len(), 0);
}

#[test]
fn parallelism_bounds() {
    assert!(check_parallelism(1, 128).is_ok());
    assert!(check_parallelism(128, 128).is_ok());
    assert!(matches!(
        check_parallelism(0, 128),
        Err(DataplaneError::InvalidParallelism { parallelism: 0, max_parallelism: 128 })
    ));
    assert!(matches!(check_parallelism(129, 128), Err(DataplaneError::InvalidParallelism { parallelism: 129, .. })));
}
