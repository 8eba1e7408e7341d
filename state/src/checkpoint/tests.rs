use super::*;

fn shared(name: &str, bytes: u64, uploaded_in: u64) -> SharedFile {
    SharedFile { name: name.to_owned(), local: format!("{name}.sst"), bytes, checksum: 0, uploaded_in }
}

fn incremental(checkpoint: u64, shared: Vec<SharedFile>) -> IncrementalHandle {
    IncrementalHandle {
        checkpoint,
        backend: "b".to_owned(),
        key_groups: 0..4,
        states: vec![IncrementalState { name: "s".to_owned(), kind: StateKind::Value, column_family: "c".to_owned() }],
        shared,
        private: vec![PrivateFile { name: "CURRENT".to_owned(), bytes: vec![0; 16] }],
    }
}

#[test]
fn handles_count_their_own_uploads_as_incremental() {
    let handle = KeyedStateHandle::Incremental(incremental(3, vec![shared("a", 100, 1), shared("b", 10, 3)]));
    assert_eq!(handle.size_bytes(), 126);
    assert_eq!(handle.incremental_bytes(), 26);
    assert_eq!(handle.shared_files().len(), 2);

    let full = KeyedStateHandle::Full(KeyedSnapshot::default());
    assert_eq!((full.size_bytes(), full.incremental_bytes(), full.shared_files().len()), (0, 0, 0));
}

#[test]
fn handles_survive_a_postcard_round_trip() {
    let handle = KeyedStateHandle::Incremental(incremental(3, vec![shared("a", 100, 1)]));
    let bytes = postcard::to_allocvec(&handle).unwrap();
    assert_eq!(postcard::from_bytes::<KeyedStateHandle>(&bytes).unwrap(), handle);
}

#[test]
fn a_file_is_deleted_when_the_last_checkpoint_referencing_it_is_released() {
    let mut registry = SharedStateRegistry::new();
    registry.register(1, ["a", "b"]);
    registry.register(2, ["b", "c"]);
    // Two subtasks of checkpoint 2 reference "c" (after a rescale): counted once.
    registry.register(2, ["c", "d"]);
    assert_eq!((registry.references("b"), registry.references("c")), (2, 1));
    assert_eq!(registry.file_count(), 4);

    assert_eq!(registry.release(1), ["a"]);
    registry.register(3, ["c", "e"]);
    let mut released = registry.release(2);
    released.sort();
    assert_eq!(released, ["b", "d"]);
    assert_eq!(registry.checkpoints().collect::<Vec<_>>(), [3]);
    assert!(registry.release(2).is_empty(), "releasing twice releases nothing");
    assert!(registry.release(99).is_empty());
}

#[test]
fn an_aborted_checkpoint_deletes_only_its_own_uploads() {
    let mut registry = SharedStateRegistry::new();
    registry.register(4, ["old"]);
    let aborted = incremental(5, vec![shared("old", 1, 4), shared("new", 1, 5)]);
    let files = aborted.shared.iter().map(|f| f.name.as_str());
    assert_eq!(registry.unreferenced(files), ["new"]);
}

#[test]
fn a_restarted_coordinator_rebuilds_the_same_counts() {
    let mut live = SharedStateRegistry::new();
    live.register(7, vec!["x".to_owned(), "y".to_owned()]);
    live.register(8, vec!["y".to_owned()]);
    let handles =
        [(7, incremental(7, vec![shared("x", 1, 7), shared("y", 1, 7)])), (8, incremental(8, vec![shared("y", 1, 7)]))];
    let rebuilt =
        SharedStateRegistry::rebuild(handles.iter().map(|(n, h)| (*n, h.shared.iter().map(|f| f.name.clone()))));
    assert_eq!(rebuilt, live);
}
