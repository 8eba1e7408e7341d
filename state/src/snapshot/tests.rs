use super::*;

fn state(name: &str, kind: StateKind, key_groups: &[(KeyGroup, &[u8])]) -> StateSnapshot {
    StateSnapshot {
        name: name.to_owned(),
        kind,
        key_groups: key_groups.iter().map(|&(kg, bytes)| (kg, bytes.to_vec())).collect(),
    }
}

fn sample() -> KeyedSnapshot {
    KeyedSnapshot {
        states: vec![
            state("count", StateKind::Value, &[(1, b"ab"), (70, b"cde")]),
            state("buffer", StateKind::List, &[(3, b"f")]),
            state("seen", StateKind::Map, &[]),
        ],
    }
}

#[test]
fn size_counts_payload_bytes() {
    assert_eq!(KeyedSnapshot::default().size_bytes(), 0);
    assert_eq!(sample().size_bytes(), 6);
    assert_eq!(sample().states[0].size_bytes(), 5);
}

#[test]
fn survives_a_postcard_round_trip() {
    let snapshot = sample();
    let bytes = postcard::to_allocvec(&snapshot).unwrap();
    assert_eq!(postcard::from_bytes::<KeyedSnapshot>(&bytes).unwrap(), snapshot);
    let empty = KeyedSnapshot::default();
    assert_eq!(postcard::from_bytes::<KeyedSnapshot>(&postcard::to_allocvec(&empty).unwrap()).unwrap(), empty);
}

#[test]
fn merge_concatenates_states_of_the_same_name_and_kind() {
    let mut merged = sample();
    merged.merge(KeyedSnapshot {
        states: vec![
            state("count", StateKind::Value, &[(0, b"x"), (70, b"y"), (100, b"z")]),
            state("seen", StateKind::Map, &[(5, b"m")]),
            state("extra", StateKind::Value, &[(2, b"e")]),
            state("buffer", StateKind::Map, &[(3, b"other kind")]),
        ],
    });
    assert_eq!(
        merged,
        KeyedSnapshot {
            states: vec![
                // Key groups ascending; key group 70 twice, in merge order.
                state("count", StateKind::Value, &[(0, b"x"), (1, b"ab"), (70, b"cde"), (70, b"y"), (100, b"z")]),
                state("buffer", StateKind::List, &[(3, b"f")]),
                state("seen", StateKind::Map, &[(5, b"m")]),
                state("extra", StateKind::Value, &[(2, b"e")]),
                // Kept apart, so that restoring it fails on the kind.
                state("buffer", StateKind::Map, &[(3, b"other kind")]),
            ],
        }
    );
    let size = merged.size_bytes();
    merged.merge(KeyedSnapshot::default());
    assert_eq!(merged.size_bytes(), size);
}

#[test]
fn retain_drops_other_key_groups_and_empty_states() {
    let mut low = sample();
    low.retain_key_groups(0..64);
    assert_eq!(
        low,
        KeyedSnapshot {
            states: vec![
                state("count", StateKind::Value, &[(1, b"ab")]),
                state("buffer", StateKind::List, &[(3, b"f")])
            ]
        }
    );
    let mut high = sample();
    high.retain_key_groups(64..128);
    assert_eq!(high, KeyedSnapshot { states: vec![state("count", StateKind::Value, &[(70, b"cde")])] });
    let mut none = sample();
    none.retain_key_groups(0..0);
    assert_eq!(none, KeyedSnapshot::default());
}
