use super::*;

fn wm(t: Timestamp) -> ValveOutput {
    ValveOutput { watermark: Some(t), idle: None }
}

fn status(idle: bool) -> ValveOutput {
    ValveOutput { watermark: None, idle: Some(idle) }
}

const NONE: ValveOutput = ValveOutput { watermark: None, idle: None };

#[test]
fn starts_active_at_min() {
    let v = WatermarkValve::new(2);
    assert_eq!(v.current(), MIN_WATERMARK);
    assert!(!v.is_idle());
    assert!(!v.all_finished());
    assert!(NONE.is_empty());
}

#[test]
fn combined_watermark_is_the_minimum() {
    let mut v = WatermarkValve::new(2);
    assert_eq!(v.on_watermark(0, 10), NONE);
    assert_eq!(v.on_watermark(1, 5), wm(5));
    assert_eq!(v.on_watermark(1, 20), wm(10));
    assert_eq!(v.on_watermark(0, 15), wm(15));
    assert_eq!(v.current(), 15);
}

#[test]
fn watermarks_are_monotonic() {
    let mut v = WatermarkValve::new(1);
    assert_eq!(v.on_watermark(0, 10), wm(10));
    assert_eq!(v.on_watermark(0, 7), NONE);
    assert_eq!(v.on_watermark(0, 10), NONE);
    assert_eq!(v.current(), 10);
    assert_eq!(v.on_watermark(0, 11), wm(11));

    // A channel's own watermark does not go back either.
    let mut v = WatermarkValve::new(2);
    v.on_watermark(0, 10);
    v.on_watermark(0, 3);
    assert_eq!(v.on_watermark(1, 20), wm(10));
}

#[test]
fn idle_channel_is_ignored() {
    let mut v = WatermarkValve::new(3);
    v.on_watermark(0, 10);
    v.on_watermark(1, 20);
    assert_eq!(v.on_idle(2, true), wm(10));
    assert!(!v.is_idle());
    assert_eq!(v.on_idle(0, true), wm(20));
    assert_eq!(v.on_watermark(1, 25), wm(25));
}

#[test]
fn all_idle_is_emitted_once() {
    let mut v = WatermarkValve::new(2);
    v.on_watermark(0, 10);
    v.on_watermark(1, 10);
    assert_eq!(v.on_idle(0, true), NONE);
    assert_eq!(v.on_idle(1, true), status(true));
    assert!(v.is_idle());
    assert_eq!(v.on_idle(1, true), NONE);
    assert_eq!(v.on_idle(0, true), NONE);
    assert_eq!(v.current(), 10);
    assert_eq!(v.on_idle(0, false), status(false));
    assert!(!v.is_idle());
    assert_eq!(v.on_watermark(0, 12), wm(12));
}

#[test]
fn reactivated_channel_behind_is_not_aligned_until_it_catches_up() {
    let mut v = WatermarkValve::new(2);
    v.on_watermark(0, 5);
    v.on_idle(0, true);
    assert_eq!(v.on_watermark(1, 100), wm(100));
    // Channel 0 comes back at 5, behind the combined 100: it must not hold the time back.
    assert_eq!(v.on_idle(0, false), NONE);
    assert_eq!(v.on_watermark(0, 50), NONE);
    assert_eq!(v.on_watermark(1, 200), wm(200));
    // Still behind 200, so still ignored.
    assert_eq!(v.on_watermark(0, 150), NONE);
    assert_eq!(v.on_watermark(1, 300), wm(300));
    // Caught up: from now on it takes part in the minimum.
    assert_eq!(v.on_watermark(0, 310), NONE);
    assert_eq!(v.on_watermark(1, 400), wm(310));
}

#[test]
fn reactivation_with_status_then_watermark() {
    let mut v = WatermarkValve::new(1);
    v.on_watermark(0, 10);
    assert_eq!(v.on_idle(0, true), status(true));
    // A watermark on an idle channel reactivates it.
    assert_eq!(v.on_watermark(0, 20), ValveOutput { watermark: Some(20), idle: Some(false) });
    assert!(!v.is_idle());
}

#[test]
fn end_of_data_of_the_slow_channel_lets_the_watermark_advance() {
    let mut v = WatermarkValve::new(2);
    v.on_watermark(0, 5);
    v.on_watermark(1, 50);
    assert_eq!(v.current(), 5);
    assert_eq!(v.on_end_of_data(0), wm(50));
    assert!(!v.all_finished());
    assert_eq!(v.on_watermark(0, 60), NONE);
    assert_eq!(v.on_end_of_data(0), NONE);
    // Every channel finished: nothing, the task emits MAX_WATERMARK itself.
    assert_eq!(v.on_end_of_data(1), NONE);
    assert!(v.all_finished());
    assert_eq!(v.current(), 50);
}

#[test]
fn a_finished_channel_and_an_idle_one_release_the_idle_ones_watermark() {
    let mut v = WatermarkValve::new(2);
    v.on_watermark(0, 5);
    v.on_watermark(1, 50);
    assert_eq!(v.on_idle(1, true), NONE);
    assert_eq!(v.on_end_of_data(0), ValveOutput { watermark: Some(50), idle: Some(true) });
    assert_eq!(v.current(), 50);
    assert!(v.is_idle());
    assert_eq!(v.on_idle(1, false), status(false));
}

#[test]
fn when_every_channel_is_idle_the_highest_watermark_is_emitted() {
    // As Flink: the fast input went idle first, then the one that never spoke.
    let mut v = WatermarkValve::new(2);
    assert_eq!(v.on_watermark(0, 1499), NONE);
    assert_eq!(v.on_idle(0, true), NONE);
    assert_eq!(v.on_idle(1, true), ValveOutput { watermark: Some(1499), idle: Some(true) });
    // Coming back active behind the emitted watermark does not move it back.
    assert_eq!(v.on_idle(1, false), status(false));
    assert_eq!(v.current(), 1499);
}

#[test]
fn valve_without_channels_is_finished() {
    let v = WatermarkValve::new(0);
    assert!(v.all_finished());
    assert_eq!(v.current(), MIN_WATERMARK);
}
