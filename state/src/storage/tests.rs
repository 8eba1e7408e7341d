use super::*;

fn s3(text: &str) -> Location {
    Location::parse(text).unwrap()
}

#[test]
fn parses_paths_file_urls_and_s3_urls() {
    assert_eq!(s3("/tmp/x"), Location::Local(PathBuf::from("/tmp/x")));
    assert_eq!(s3("relative/dir"), Location::Local(PathBuf::from("relative/dir")));
    assert_eq!(s3("file:///tmp/x"), Location::Local(PathBuf::from("/tmp/x")));
    assert_eq!(s3("s3://bucket/a/b/").to_string(), "s3://bucket/a/b");
    assert_eq!(s3("s3://bucket").to_string(), "s3://bucket");
    assert_eq!(s3("s3://bucket/").to_string(), "s3://bucket");
}

#[test]
fn refuses_what_it_cannot_store_to_and_names_it() {
    for (text, says) in [
        ("s3://", "names no bucket"),
        ("s3:///key", "names no bucket"),
        ("gs://bucket/x", "'gs://' is not supported"),
        ("file://relative", "not an absolute file:// URL"),
        ("s3://bucket/a//b", "empty, '.' or '..' path segment"),
        ("s3://bucket/a/../b", "empty, '.' or '..' path segment"),
        ("", "an empty path"),
    ] {
        let e = Location::parse(text).unwrap_err();
        assert!(e.contains(says), "{text:?}: {e}");
    }
}

#[test]
fn joins_and_walks_up_like_paths() {
    let root = s3("s3://bucket/checkpoints");
    let file = root.join("job/chk-3").join("_metadata");
    assert_eq!(file.to_string(), "s3://bucket/checkpoints/job/chk-3/_metadata");
    assert_eq!(file.name(), Some("_metadata"));
    assert_eq!(file.parent().unwrap().to_string(), "s3://bucket/checkpoints/job/chk-3");
    assert!(file.starts_with(&root) && file.starts_with(&s3("s3://bucket")));
    assert!(!s3("s3://bucket/checkpoints2/x").starts_with(&root));
    assert!(!s3("s3://other/checkpoints/x").starts_with(&root));
    assert_eq!(s3("s3://bucket").join("x").to_string(), "s3://bucket/x");
    assert_eq!(s3("s3://bucket/x").parent(), Some(s3("s3://bucket")));
    assert_eq!(s3("s3://bucket").parent(), None);
    let local = s3("/tmp/a").join("b");
    assert_eq!(local.as_local(), Some(Path::new("/tmp/a/b")));
    assert_eq!(local.parent(), Some(s3("/tmp/a")));
}

#[test]
fn serializes_as_its_text_and_reads_plain_paths_back_as_local() {
    let object = s3("s3://bucket/a");
    assert_eq!(serde_json::to_string(&object).unwrap(), "\"s3://bucket/a\"");
    assert_eq!(serde_json::from_str::<Location>("\"s3://bucket/a\"").unwrap(), object);
    // What an older build stored as a PathBuf.
    let old = serde_json::to_string(&PathBuf::from("/var/weir/chk-1")).unwrap();
    assert_eq!(serde_json::from_str::<Location>(&old).unwrap(), s3("/var/weir/chk-1"));
    let bytes = postcard::to_allocvec(&object).unwrap();
    assert_eq!(postcard::from_bytes::<Location>(&bytes).unwrap(), object);
    let e = serde_json::from_str::<Location>("\"gs://x\"").unwrap_err().to_string();
    assert!(e.contains("not supported"), "{e}");
}

#[test]
fn local_files_are_written_whole_listed_and_removed() {
    let root = std::env::temp_dir().join(format!("weir-storage-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let dir = Location::Local(root.clone()).join("job");
    let fs = crate::fs::LocalFs;
    dir.join("a").write_atomically(&fs, b"first").unwrap();
    let written = dir.join("b").write_with(&fs, |w| w.write_all(b"second")).unwrap();
    assert_eq!(written, 6);
    assert_eq!(dir.join("a").read().unwrap(), b"first");
    assert_eq!(dir.join("b").size().unwrap(), 6);
    let mut names = dir.children().unwrap();
    names.sort();
    assert_eq!(names, ["a", "b"]);
    assert!(dir.join("a").is_file().unwrap() && !dir.join("c").is_file().unwrap());
    let copy = root.join("copy");
    assert_eq!(dir.join("b").download_to(&copy).unwrap(), 6);
    assert_eq!(std::fs::read(&copy).unwrap(), b"second");
    dir.remove_dir_all().unwrap();
    dir.remove_dir_all().unwrap();
    assert!(dir.children().unwrap().is_empty() && !dir.is_dir().unwrap());
    let _ = std::fs::remove_dir_all(&root);
}
