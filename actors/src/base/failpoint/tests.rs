use super::*;

#[test]
fn names_parse_back() {
    for step in Step::ALL {
        assert_eq!(step.name().parse::<Step>(), Ok(step));
    }
    assert_eq!(
        parse_list("before-ack@3, after-completion@1").unwrap(),
        vec![Failpoint { step: Step::BeforeAck, hit: 3 }, Failpoint { step: Step::AfterCompletion, hit: 1 }]
    );
    assert_eq!(parse_list("").unwrap(), vec![]);
}

#[test]
fn bad_failpoints_are_named() {
    let e = parse_list("before-ack@0").unwrap_err();
    assert!(e.contains("before-ack@0") && e.contains("from 1"), "{e}");
    let e = parse_list("before-ack").unwrap_err();
    assert!(e.contains("<step>@<hit>"), "{e}");
    let e = parse_list("before-lunch@2").unwrap_err();
    assert!(e.contains("before-lunch") && e.contains("before-ack"), "{e}");
}

#[test]
fn the_nth_hit_of_the_armed_job_panics_with_its_failpoint() {
    let (job, other) = (JobId::generate(), JobId::generate());
    let point = Failpoint { step: Step::BeforeCommit, hit: 2 };
    let armed = arm(Some(job), vec![point], Action::Panic);
    hit(Step::BeforeCommit, job);
    // Another job's steps do not count.
    hit(Step::BeforeCommit, other);
    hit(Step::BeforeCommit, other);
    hit(Step::AfterTrigger, job);
    assert!(armed.fired().is_empty());
    let payload = std::panic::catch_unwind(|| hit(Step::BeforeCommit, job)).unwrap_err();
    assert_eq!(InjectedCrash::of(&*payload), Some(InjectedCrash(point)));
    assert_eq!(armed.fired(), vec![point]);
    // Only once.
    hit(Step::BeforeCommit, job);
    let hits = armed.hits();
    assert!(hits.contains(&(Step::BeforeCommit, 3)) && hits.contains(&(Step::AfterTrigger, 1)), "{hits:?}");
    drop(armed);
    hit(Step::BeforeCommit, job);
}
