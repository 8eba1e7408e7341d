use super::*;
use crate::base::ids::JobId;

#[test]
fn unknown_job_lists_known_ones() {
    let reg = JobRegistry::new().job("a", "first", |_, _| Ok(())).job("b", "second", |_, _| Ok(()));
    let err = reg.get("c").unwrap_err().to_string();
    assert!(err.contains("'c'") && err.contains("a, b"), "{err}");
}

#[test]
fn job_id_round_trips() {
    let id = JobId::generate();
    assert_eq!(id.to_string().len(), 32);
    assert_eq!(id.to_string().parse::<JobId>().unwrap(), id);
    assert_ne!(JobId::generate(), id);
}
