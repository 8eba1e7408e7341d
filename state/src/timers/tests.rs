use super::*;

fn drain(timers: &mut TimerService<String, u32>, upto: Timestamp) -> Vec<(Timestamp, String, u32)> {
    std::iter::from_fn(|| timers.pop_due(upto)).collect()
}

fn k(s: &str) -> String {
    s.to_owned()
}

#[test]
fn register_deduplicates() {
    let mut t = TimerService::<String, u32>::new();
    assert!(t.is_empty());
    assert!(t.register(10, &k("a"), &0));
    assert!(!t.register(10, &k("a"), &0));
    assert!(t.register(10, &k("a"), &1));
    assert!(t.register(10, &k("b"), &0));
    assert!(t.register(11, &k("a"), &0));
    assert_eq!(t.len(), 4);
    assert_eq!(drain(&mut t, 100).len(), 4);
    // Once fired, the same timer can be registered again.
    assert!(t.register(10, &k("a"), &0));
}

#[test]
fn delete_removes_only_that_timer() {
    let mut t = TimerService::<String, u32>::default();
    t.register(10, &k("a"), &0);
    t.register(10, &k("b"), &0);
    assert!(t.delete(10, &k("a"), &0));
    assert!(!t.delete(10, &k("a"), &0));
    assert!(!t.delete(11, &k("b"), &0));
    assert_eq!(t.len(), 1);
    assert_eq!(drain(&mut t, 100), [(10, k("b"), 0)]);
    assert!(t.is_empty());
    // A deleted timer can be registered again.
    assert!(t.register(10, &k("a"), &0));
}

#[test]
fn fires_by_timestamp_then_registration_order() {
    let mut t = TimerService::<String, u32>::new();
    t.register(30, &k("c"), &0);
    t.register(20, &k("z"), &0);
    t.register(20, &k("a"), &0);
    t.register(10, &k("m"), &0);
    t.register(20, &k("m"), &1);
    assert_eq!(
        drain(&mut t, 100),
        [(10, k("m"), 0), (20, k("z"), 0), (20, k("a"), 0), (20, k("m"), 1), (30, k("c"), 0)]
    );
}

#[test]
fn pop_due_stops_at_the_bound_and_peek_shows_the_earliest() {
    let mut t = TimerService::<String, u32>::new();
    assert_eq!(t.peek(), None);
    assert_eq!(t.pop_due(i64::MAX), None);
    t.register(20, &k("b"), &0);
    t.register(10, &k("a"), &0);
    t.register(-5, &k("n"), &0);
    assert_eq!(t.peek(), Some(-5));
    assert_eq!(t.pop_due(-6), None);
    assert_eq!(drain(&mut t, 10), [(-5, k("n"), 0), (10, k("a"), 0)]);
    assert_eq!(t.peek(), Some(20));
    assert_eq!(t.pop_due(19), None);
    assert_eq!(t.len(), 1);
    assert_eq!(t.pop_due(20), Some((20, k("b"), 0)));
    assert_eq!(t.peek(), None);
    assert!(t.is_empty());
}

#[test]
fn borrowed_timer_hashes_as_the_tuple() {
    use std::hash::BuildHasher;
    let (key, ns) = (k("a"), 7u32);
    let hasher = FxBuildHasher;
    assert_eq!(hasher.hash_one(TimerRef(-3, &key, &ns)), hasher.hash_one((-3i64, key, ns)));
}

#[test]
fn entries_restore_round_trip_keeps_order_and_dedup() {
    let mut t = TimerService::<String, u32>::new();
    t.register(30, &k("c"), &0);
    t.register(20, &k("z"), &0);
    t.register(20, &k("a"), &0);
    t.register(10, &k("m"), &0);
    t.register(20, &k("m"), &1);
    t.delete(30, &k("c"), &0);
    let entries = t.entries();
    assert_eq!(entries, [(10, k("m"), 0), (20, k("z"), 0), (20, k("a"), 0), (20, k("m"), 1)]);
    assert_eq!(t.len(), 4, "entries leaves the timers registered");

    let mut restored = TimerService::<String, u32>::new();
    // A timer registered before the restore fires before restored ones of the same timestamp.
    restored.register(20, &k("early"), &0);
    let mut doubled = entries.clone();
    doubled.extend(entries.iter().cloned());
    restored.restore(doubled);
    assert_eq!(restored.len(), 5);
    assert_eq!(restored.entries()[1..4], [(20, k("early"), 0), (20, k("z"), 0), (20, k("a"), 0)]);
    // Registering a restored timer again is deduplicated.
    assert!(!restored.register(20, &k("a"), &0));
    assert_eq!(
        drain(&mut restored, 100),
        [(10, k("m"), 0), (20, k("early"), 0), (20, k("z"), 0), (20, k("a"), 0), (20, k("m"), 1)]
    );

    let mut copy = TimerService::<String, u32>::new();
    copy.restore(t.entries());
    assert_eq!(drain(&mut copy, 100), drain(&mut t, 100));
}
