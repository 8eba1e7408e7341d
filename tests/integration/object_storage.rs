//! `weir_state::storage::Location` against a real S3 server (s3s-fs on 127.0.0.1): what the
//! checkpoint storage, savepoints, the job store and RocksDB's shared files rely on. The jobs
//! that store everything in a bucket are in `savepoints` (a rescale through S3 savepoints, with
//! RocksDB checkpoints in S3) and `cluster_recovery` (a killed TaskManager process restoring
//! its incremental checkpoint from the bucket).

use weir_state::fs::LocalFs;
use weir_state::storage::{Location, PART_SIZE};

use crate::support::{S3, TempDir};

fn sorted(mut names: Vec<String>) -> Vec<String> {
    names.sort();
    names
}

#[test]
fn files_in_a_bucket_are_written_whole_listed_read_downloaded_and_deleted() {
    let s3 = S3::start(&["weir-rt"]);
    weir_state::storage::configure_s3_bucket("weir-rt", s3.options());
    let job = Location::parse("s3://weir-rt/checkpoints/job-1").unwrap();

    // A small file is one PUT; a large one a multipart upload, whole once complete.
    job.join("chk-1/_metadata").write_atomically(&LocalFs, b"{}").unwrap();
    let big: Vec<u8> = (0..PART_SIZE * 2 + 12345).map(|i| (i % 251) as u8).collect();
    let written = job.join("chk-1/0-0-a0").write_with(&LocalFs, |out| out.write_all(&big)).unwrap();
    assert_eq!(written, big.len() as u64);
    assert_eq!(std::fs::read(s3.file("weir-rt/checkpoints/job-1/chk-1/0-0-a0")).unwrap(), big);
    assert_eq!(job.join("chk-1/0-0-a0").read().unwrap(), big);
    assert_eq!(job.join("chk-1/0-0-a0").size().unwrap(), big.len() as u64);
    job.join("shared/a.sst").write_atomically(&LocalFs, b"sst").unwrap();

    // Directories are prefixes: listed by their names, there while something is in them.
    assert_eq!(sorted(job.children().unwrap()), ["chk-1", "shared"]);
    assert_eq!(sorted(job.join("chk-1").children().unwrap()), ["0-0-a0", "_metadata"]);
    assert!(job.join("chk-1").is_dir().unwrap() && !job.join("chk-2").is_dir().unwrap());
    assert!(job.join("chk-1/_metadata").is_file().unwrap() && !job.join("chk-2/_metadata").is_file().unwrap());
    assert!(job.join("nothing").children().unwrap().is_empty());
    let missing = job.join("chk-2/_metadata").read().unwrap_err();
    assert_eq!(missing.kind(), std::io::ErrorKind::NotFound, "{missing}");

    // Downloads in ranged reads, the way a RocksDB restore fetches its shared files.
    let local = TempDir::new("s3-download");
    std::fs::create_dir_all(&local.0).unwrap();
    assert_eq!(job.join("chk-1/0-0-a0").download_to(&local.join("copy")).unwrap(), big.len() as u64);
    assert_eq!(std::fs::read(local.join("copy")).unwrap(), big);
    std::fs::write(local.join("up"), b"uploaded").unwrap();
    job.join("shared/b.sst").upload_from(&LocalFs, &local.join("up")).unwrap();
    assert_eq!(job.join("shared/b.sst").read().unwrap(), b"uploaded");

    // A writer that fails leaves nothing: no object, no upload in progress to complete later.
    let failed = job.join("chk-1/1-0-a0").write_with(&LocalFs, |out| {
        out.write_all(&big)?;
        Err(std::io::Error::other("the snapshot could not be encoded"))
    });
    let (_, at, e) = failed.unwrap_err();
    assert!(at.to_string().ends_with("chk-1/1-0-a0") && e.to_string().contains("could not be encoded"), "{at}: {e}");
    assert!(!job.join("chk-1/1-0-a0").is_file().unwrap());

    job.join("shared/a.sst").remove_file().unwrap();
    job.join("shared/a.sst").remove_file().unwrap();
    job.join("chk-1").remove_dir_all().unwrap();
    assert_eq!(sorted(job.children().unwrap()), ["shared"]);
    job.remove_dir_all().unwrap();
    assert!(job.children().unwrap().is_empty());
}

#[test]
fn a_store_it_may_not_reach_is_an_error_naming_the_location() {
    let s3 = S3::start(&["weir-tls-only"]);
    // A plain-HTTP endpoint without allow_http: refused before anything is sent.
    let options = weir_state::storage::S3Options { allow_http: Some(false), ..s3.options() };
    weir_state::storage::configure_s3_bucket("weir-tls-only", options);
    let at = Location::parse("s3://weir-tls-only/x").unwrap();
    let (what, location, e) = at.write_atomically(&LocalFs, b"x").unwrap_err();
    assert_eq!((what, location.to_string()), ("write", "s3://weir-tls-only/x".to_owned()));
    assert!(e.to_string().to_lowercase().contains("http"), "{e}");
    assert!(!s3.file("weir-tls-only/x").exists());
}
