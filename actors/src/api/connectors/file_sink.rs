//! A two-phase file sink: text lines into part files of a directory, made visible exactly
//! once.
//!
//! A subtask writes `.part-<subtask>-<n>.a<attempt>.inprogress`. At a checkpoint barrier it
//! pre-commits: the file becomes `.part-<subtask>-<n>.a<attempt>.pending`, and the sink's state
//! lists it. When the checkpoint completes everywhere, pending files are committed by an atomic
//! rename to `part-<subtask>-<n>`. Restoring from a checkpoint commits what it had
//! pre-committed (idempotently: an already committed file is fine) and deletes what was written
//! after it. Files whose names start with `.` are therefore never output.
//!
//! The attempt in the uncommitted names fences executions, as the random per-execution part of
//! Flink's part-file names does: after a failover the new attempt numbers its files from the
//! restored checkpoint's sequence, which an old attempt still running somewhere (a TaskManager
//! cut off from the JobManager stops its subtasks only once it notices) may be writing too.
//! With the attempt in the name neither can truncate, rename or commit the other's file.
//!
//! The end of input: when the job checkpoints, the last file is not committed when the input
//! ends but by the job's final checkpoint, which every subtask takes part in after its input
//! ended (Flink's FLIP-147): it pre-commits the file, and its completion commits it. A
//! failure anywhere before that restores a checkpoint that has the file pending or not at
//! all, so the tail is written exactly once. Without checkpoints, the file is committed when
//! the input ends.
//!
//! A stop-with-savepoint pre-commits the current file at the savepoint and commits it when
//! the savepoint completes; an intermediate savepoint's file stays pending until the next
//! checkpoint completes (a failover restores checkpoints, not savepoints).
//!
//! ## Machine crashes
//!
//! A process crash loses nothing the kernel was given; a machine crash loses renames, links
//! and new files whose directory was not synced. So the sink syncs the output directory after
//! the rename that pre-commits a file (before the checkpoint listing it can complete, which a
//! restore relies on to find it), and after each commit (a later checkpoint no longer lists
//! the file as pending, and a restore from it would delete a pending name the crash brought
//! back); the directory itself is made durable in its parent. Tests crash a machine under the
//! sink with [`CrashFs`](crate::base::fs::CrashFs) ([`FileSink::with_file_system`]).
//!
//! ## Restored behind committed output
//!
//! A commit never replaces a committed file: it links the pending file to its final name (the
//! link fails if the name exists) and then removes the pending name, so an attempt still
//! running beside its replacement cannot replace the other's output, and a commit repeated
//! after a crash finds the same file under both names. A job restored from an older checkpoint
//! than the newest whose files were committed (the newest checkpoint was corrupt, or a
//! savepoint older than the output was restored into the same directory) would replay records
//! already in committed files, with other file boundaries. The sink cannot take committed
//! output back and will not write it twice, so such a restore fails, naming the first part file
//! committed after the restored state, and the job ends there (a restart cannot fix it): restore
//! the newest checkpoint, or move the later part files away. Flink's file sink writes such a
//! replay into new files beside the old (duplicates); Weir refuses instead.
//!
//! ## Earlier runs
//!
//! Output already committed is never deleted or overwritten behind the user's back. Before the
//! job is accepted, the directory is only checked, never changed: one that holds anything but
//! part files is refused, and so is one holding part files of an earlier run, unless the job
//! resumes from a savepoint (that output is its own) or the sink was built with
//! [`FileSink::overwrite`]. With `overwrite`, the earlier part files are deleted by the
//! subtasks themselves, on the machines that write, when the job first runs (an execution that
//! restored no state, which always starts its output over); a job that is refused or never
//! runs deletes nothing. Flink's file sink never deletes; Spark's `overwrite` save mode is the
//! model for the choice.
//!
//! ## Partitions
//!
//! Built with [`FileSink::partitioned`], the sink writes each record into the directory of its
//! partition, a path relative to the output directory such as `dt=2015-07-15/hm=12%3A01`
//! ([`partition_path`](crate::api::connectors::partition_path) escapes it as Flink does), with
//! the same names and the same rules in each: a subtask has one file open per partition, all
//! pre-committed at a barrier, and one sequence of numbers across its partitions. The
//! partition's values are in the path, not in the files. Such a sink runs as an operator,
//! [`DataStream::write_partitions`], which after each commit tells a
//! [`PartitionCommitter`](crate::api::connectors::PartitionCommitter) which partitions it
//! committed files into (see there). The output directory then holds only partition
//! directories, which hold part files, deeper partition directories and the committer's
//! `_SUCCESS` files; anything else is refused as for the unpartitioned sink, and committed
//! part files or success files of an earlier run are that run's output.
//!
//! [`FileSink::rollover_interval`] also closes a file once it has been open that long
//! (processing time, Flink's `sink.rolling-policy.rollover-interval`, checked as records come):
//! it is pre-committed at the next barrier with the others. The runtime's clock is what
//! decides, and only an operator sees it, so the interval applies to
//! [`DataStream::write_partitions`]; a sink added with `sink` rolls over at barriers only.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Display;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use weir_dataplane::Timestamp;

use crate::api::operator::{Context, OpenContext, Operator, OperatorLink};
use crate::api::sink::Sink;
use crate::api::stream::DataStream;
use crate::base::data::Data;
use crate::base::error::{Result, WeirError};
use crate::base::failpoint::{self, Step};
use crate::base::fs::FileSystem;
use crate::base::ids::JobId;
use crate::runtime::job_graph::NodeKind;
use crate::runtime::nodes::{MakeLink, ValidateContext};

/// A record's partition: a path relative to the output directory.
type Partitioner<T> = Arc<dyn Fn(&T) -> String + Send + Sync>;

/// A file being written.
#[derive(Debug)]
struct OpenFile {
    writer: BufWriter<File>,
    seq: u64,
    /// When it was opened (processing time), for the rollover interval.
    opened_ms: Option<Timestamp>,
}

/// A pre-committed file.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Pending {
    checkpoint: u64,
    seq: u64,
    attempt: u32,
    /// Its partition ("": the output directory itself).
    partition: String,
}

/// The name of the file that marks a partition complete.
pub const SUCCESS_FILE: &str = "_SUCCESS";

/// What a writer subtask of a partitioned [`FileSink`] tells the
/// [`PartitionCommitter`](crate::api::connectors::PartitionCommitter) (Flink's `PartitionCommitInfo`, with the writer's watermark).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PartitionCommitInfo {
    /// The checkpoint whose completion committed the files, or [`Self::END`].
    pub checkpoint: u64,
    /// The writer subtask.
    pub subtask: usize,
    /// How many writer subtasks there are.
    pub parallelism: usize,
    /// The writer's watermark at the checkpoint's barrier.
    pub watermark: Timestamp,
    /// The partitions (paths relative to the output directory) the writer committed files into
    /// since its last report; at the end, every one it has not reported.
    pub partitions: Vec<String>,
    /// At the end only: the writer's files not committed yet, as (pending name, final name)
    /// relative to the output directory; the first checkpoint after the end commits them.
    pub uncommitted: Vec<(String, String)>,
}

impl PartitionCommitInfo {
    /// The checkpoint of a writer's end report: its input ended.
    pub const END: u64 = u64::MAX;
}

/// Writes each record's `Display` form as a line.
pub struct FileSink<T> {
    dir: PathBuf,
    index: usize,
    parallelism: usize,
    /// The job checkpoints: the last file waits for the final checkpoint.
    checkpointing: bool,
    /// This execution's attempt, in the names of the files it writes.
    attempt: u32,
    /// The job (failpoints are armed per job).
    job: JobId,
    /// Where files are created, synced, renamed and linked (a crash-testing layer in tests).
    fs: Arc<dyn FileSystem>,
    /// Each record's partition (`None`: every record goes into the output directory).
    partitioner: Option<Partitioner<T>>,
    /// A file open this long is closed at the next record of its partition.
    rollover: Option<Duration>,
    /// The files being written, by partition ("" without partitions).
    current: BTreeMap<String, OpenFile>,
    /// Files closed by the rollover interval: pre-committed at the next barrier.
    rolled: Vec<(String, u64)>,
    next_seq: u64,
    /// Pre-committed files.
    pending: Vec<Pending>,
    /// Partitions whose files were committed and not yet reported to the partition committer.
    unreported: BTreeSet<String>,
    /// The end report went out (nothing is reported after it).
    end_reported: bool,
    /// The input watermark, and what it was at each barrier not yet complete.
    watermark: Timestamp,
    watermarks: BTreeMap<u64, Timestamp>,
    cleaned: bool,
    /// A directory holding an earlier run's part files is accepted (the first execution, which
    /// restores nothing, replaces them).
    overwrite: bool,
    /// This execution restored state: the output in the directory is the job's own.
    restored: bool,
    _types: PhantomData<fn(T)>,
}

impl<T> std::fmt::Debug for FileSink<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileSink")
            .field("dir", &self.dir)
            .field("index", &self.index)
            .field("partitioned", &self.partitioner.is_some())
            .field("rollover", &self.rollover)
            .field("next_seq", &self.next_seq)
            .field("pending", &self.pending)
            .finish_non_exhaustive()
    }
}

/// What a checkpoint keeps of a file sink subtask. The fields after `pending` came with
/// partitions; a state without them (an unpartitioned sink's of an earlier version) still
/// reads ([`FileSinkStateV1`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct FileSinkState {
    subtask: usize,
    next_seq: u64,
    /// (checkpoint, sequence number, attempt that wrote it).
    pending: Vec<(u64, u64, u32)>,
    /// The partition of each pending file, in the same order.
    partitions: Vec<String>,
    unreported: Vec<String>,
    end_reported: bool,
}

/// A file sink subtask's state before partitions.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct FileSinkStateV1 {
    subtask: usize,
    next_seq: u64,
    pending: Vec<(u64, u64, u32)>,
}

impl FileSinkState {
    fn decode(bytes: &[u8]) -> std::result::Result<Self, postcard::Error> {
        postcard::from_bytes::<FileSinkState>(bytes).or_else(|_| {
            let v1 = postcard::from_bytes::<FileSinkStateV1>(bytes)?;
            Ok(FileSinkState {
                subtask: v1.subtask,
                next_seq: v1.next_seq,
                partitions: vec![String::new(); v1.pending.len()],
                pending: v1.pending,
                unreported: Vec::new(),
                end_reported: false,
            })
        })
    }

    fn pending(&self) -> impl Iterator<Item = Pending> + '_ {
        self.pending.iter().enumerate().map(|(i, &(checkpoint, seq, attempt))| Pending {
            checkpoint,
            seq,
            attempt,
            partition: self.partitions.get(i).cloned().unwrap_or_default(),
        })
    }
}

impl<T> Clone for FileSink<T> {
    fn clone(&self) -> Self {
        FileSink {
            overwrite: self.overwrite,
            fs: self.fs.clone(),
            partitioner: self.partitioner.clone(),
            rollover: self.rollover,
            ..FileSink::new(self.dir.clone())
        }
    }
}

impl<T> FileSink<T> {
    /// Writes into directory `dir` (created if missing).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        FileSink {
            dir: dir.into(),
            index: 0,
            parallelism: 1,
            checkpointing: false,
            attempt: 0,
            job: JobId(0),
            fs: crate::base::fs::local(),
            partitioner: None,
            rollover: None,
            current: BTreeMap::new(),
            rolled: Vec::new(),
            next_seq: 0,
            pending: Vec::new(),
            unreported: BTreeSet::new(),
            end_reported: false,
            watermark: Timestamp::MIN,
            watermarks: BTreeMap::new(),
            cleaned: false,
            overwrite: false,
            restored: false,
            _types: PhantomData,
        }
    }

    /// Writes through `fs` instead of the local file system as it is: tests crash a machine
    /// under the sink with [`CrashFs`](crate::base::fs::CrashFs).
    pub fn with_file_system(mut self, fs: Arc<dyn FileSystem>) -> Self {
        self.fs = fs;
        self
    }

    /// Replaces the part files an earlier run left in the directory (by default such a
    /// directory is refused). They are deleted when the job first runs, by the subtasks that
    /// write (an execution that restored nothing starts its output over): never by a job that
    /// is refused, and never output a restored job committed.
    pub fn overwrite(mut self) -> Self {
        self.overwrite = true;
        self
    }

    /// Writes each record into the directory of its partition, `partition(record)`: a path
    /// relative to the output directory, e.g. made with
    /// [`partition_path`](crate::api::connectors::partition_path) (see "Partitions" in the
    /// module docs). Run such a sink with [`DataStream::write_partitions`].
    pub fn partitioned(mut self, partition: impl Fn(&T) -> String + Send + Sync + 'static) -> Self {
        self.partitioner = Some(Arc::new(partition));
        self
    }

    /// Closes a file once it has been open for `interval` of processing time (besides at
    /// every barrier); applies in [`DataStream::write_partitions`] (see the module docs).
    pub fn rollover_interval(mut self, interval: Duration) -> Self {
        self.rollover = Some(interval);
        self
    }

    /// The directory of `partition`.
    fn part_dir(&self, partition: &str) -> PathBuf {
        if partition.is_empty() { self.dir.clone() } else { self.dir.join(partition) }
    }

    fn in_progress(&self, partition: &str, seq: u64) -> PathBuf {
        self.part_dir(partition).join(format!(".part-{}-{seq}.a{}.inprogress", self.index, self.attempt))
    }

    fn pending_file(&self, partition: &str, seq: u64, attempt: u32) -> PathBuf {
        self.part_dir(partition).join(pending_name(self.index, seq, attempt))
    }

    fn committed(&self, partition: &str, seq: u64) -> PathBuf {
        self.part_dir(partition).join(committed_name(self.index, seq))
    }

    /// Gives a pending file its final name, durably (see [`commit_file`]).
    fn commit(&self, partition: &str, seq: u64, attempt: u32) -> Result<()> {
        commit_file(&*self.fs, self.job, &self.pending_file(partition, seq, attempt), &self.committed(partition, seq))
    }

    /// Before the first file of this execution: delete this subtask's uncommitted files that
    /// no checkpoint pre-committed (written after the checkpoint the job restored from).
    /// Subtask 0 also deletes those of subtasks the job no longer has (it ran at a higher
    /// parallelism before a restore): every restored subtask committed the restored
    /// checkpoint's pending files in `restore_state`, so what is left of theirs is not output.
    /// An execution that restored nothing starts the output over: it also deletes the
    /// committed part files of the same subtasks. They are an earlier attempt's of this job
    /// (restarted from the start: its replay writes them again), or, with
    /// [`overwrite`](Self::overwrite), an earlier run's; any other part files made the job's
    /// validation refuse the directory before it ran. With partitions, every partition
    /// directory is cleaned so.
    fn clean(&mut self) -> Result<()> {
        if std::mem::replace(&mut self.cleaned, true) {
            return Ok(());
        }
        let keep: BTreeSet<PathBuf> =
            self.pending.iter().map(|p| self.pending_file(&p.partition, p.seq, p.attempt)).collect();
        let replace = !self.restored;
        let owned = |name: &str| {
            let uncommitted =
                name.strip_prefix(".part-").and_then(|rest| rest.split('-').next()?.parse::<usize>().ok());
            let owner = uncommitted.or_else(|| committed_part(name).filter(|_| replace).map(|(subtask, _)| subtask));
            owner == Some(self.index) || (self.index == 0 && owner.is_some_and(|o| o >= self.parallelism))
        };
        for (path, name) in output_files(&self.dir, self.partitioner.is_some())? {
            if owned(&name) && !keep.contains(&path) {
                self.fs
                    .remove_file(&path)
                    .map_err(|e| WeirError::io(format!("cannot remove '{}'", path.display()), e))?;
            }
        }
        Ok(())
    }

    /// Fails if a file that the restored subtasks numbered after their state was committed
    /// already (see the module docs: "Restored behind committed output").
    fn refuse_restore_behind_committed(&self, states: &[FileSinkState]) -> Result<()> {
        let mut later: Vec<String> = output_files(&self.dir, self.partitioner.is_some())?
            .into_iter()
            .filter(|(_, name)| {
                committed_part(name)
                    .is_some_and(|(subtask, seq)| states.iter().any(|s| s.subtask == subtask && seq >= s.next_seq))
            })
            .map(|(path, _)| path.strip_prefix(&self.dir).unwrap_or(&path).display().to_string())
            .collect();
        if later.is_empty() {
            return Ok(());
        }
        later.sort();
        Err(WeirError::RestoredBehindOutput(format!(
            "output directory '{}' holds {} committed after the state this job restored ({} in all): replaying from \
             that state would write their records a second time; restore the newest checkpoint, or move those part \
             files away",
            self.dir.display(),
            later[0],
            later.len()
        )))
    }

    /// Closes the file of `partition` (flushed and synced) and returns its sequence number.
    fn close_file(&mut self, partition: &str) -> Result<Option<u64>> {
        let Some(open) = self.current.remove(partition) else { return Ok(None) };
        let path = self.in_progress(partition, open.seq);
        let file = open
            .writer
            .into_inner()
            .map_err(|e| WeirError::io(format!("cannot write '{}'", path.display()), e.into_error()))?;
        self.fs.sync_file(&path, &file).map_err(|e| WeirError::io(format!("cannot sync '{}'", path.display()), e))?;
        Ok(Some(open.seq))
    }

    /// Closes every open file; returns them with those the rollover closed, to pre-commit.
    fn close_all(&mut self) -> Result<Vec<(String, u64)>> {
        let mut closed = std::mem::take(&mut self.rolled);
        let partitions: Vec<String> = self.current.keys().cloned().collect();
        for partition in partitions {
            if let Some(seq) = self.close_file(&partition)? {
                closed.push((partition, seq));
            }
        }
        Ok(closed)
    }

    /// Pre-commits files: their pending names, made durable before the checkpoint that lists
    /// them can complete (a machine crash must not undo a rename a completed checkpoint relies
    /// on).
    fn pre_commit(&self, files: &[(String, u64)]) -> Result<()> {
        let mut dirs = BTreeSet::new();
        for (partition, seq) in files {
            let (from, to) = (self.in_progress(partition, *seq), self.pending_file(partition, *seq, self.attempt));
            self.fs.rename(&from, &to).map_err(|e| WeirError::io(format!("cannot rename '{}'", from.display()), e))?;
            dirs.insert(self.part_dir(partition));
        }
        for dir in dirs {
            self.fs
                .sync_dir(&dir)
                .map_err(|e| WeirError::io(format!("cannot sync '{}' after pre-committing", dir.display()), e))?;
        }
        Ok(())
    }

    /// Commits the pending files of checkpoints up to `checkpoint`; their partitions are to be
    /// reported.
    fn commit_up_to(&mut self, checkpoint: u64) -> Result<()> {
        let (done, waiting): (Vec<_>, Vec<_>) =
            std::mem::take(&mut self.pending).into_iter().partition(|p| p.checkpoint <= checkpoint);
        self.pending = waiting;
        if !done.is_empty() {
            failpoint::hit(Step::BeforeCommit, self.job);
        }
        for (i, p) in done.iter().enumerate() {
            if let Err(e) = self.commit(&p.partition, p.seq, p.attempt) {
                // What is not committed stays pending.
                self.pending.extend(done[i..].iter().cloned());
                return Err(e);
            }
            self.mark_committed(&p.partition);
        }
        Ok(())
    }

    /// Files of `partition` were committed: the partition committer is to hear of it.
    fn mark_committed(&mut self, partition: &str) {
        if self.partitioner.is_some() && !self.end_reported && !self.unreported.contains(partition) {
            self.unreported.insert(partition.to_owned());
        }
    }

    /// Writes one record; `now` (processing time) closes a file open for the rollover
    /// interval.
    fn write_at(&mut self, value: T, now: Option<Timestamp>) -> Result<()>
    where
        T: Display,
    {
        let partition = match &self.partitioner {
            Some(partition) => partition(&value),
            None => String::new(),
        };
        if let (Some(now), Some(interval)) = (now, self.rollover)
            && let Some(open) = self.current.get(&partition)
            && open.opened_ms.is_some_and(|at| now.saturating_sub(at) >= interval.as_millis() as Timestamp)
            && let Some(seq) = self.close_file(&partition)?
        {
            self.rolled.push((partition.clone(), seq));
        }
        if !self.current.contains_key(&partition) {
            self.clean()?;
            let seq = self.next_seq;
            self.next_seq += 1;
            let dir = self.part_dir(&partition);
            if !partition.is_empty() {
                self.fs
                    .create_dir_durably(&dir)
                    .map_err(|e| WeirError::io(format!("cannot create partition directory '{}'", dir.display()), e))?;
            }
            let path = self.in_progress(&partition, seq);
            let file =
                self.fs.create(&path).map_err(|e| WeirError::io(format!("cannot create '{}'", path.display()), e))?;
            let writer = BufWriter::with_capacity(if partition.is_empty() { 256 * 1024 } else { 64 * 1024 }, file);
            self.current.insert(partition.clone(), OpenFile { writer, seq, opened_ms: now });
        }
        let open = self.current.get_mut(&partition).expect("just opened");
        writeln!(open.writer, "{value}")
            .map_err(|e| WeirError::io(format!("cannot write part {} in '{}'", open.seq, self.dir.display()), e))
    }

    /// This subtask's report of everything it has not reported, when its input ended: the
    /// partitions, and the files not committed yet (pending, open or rolled over; with
    /// checkpoints the next checkpoint pre-commits the last two).
    fn end_report(&mut self) -> PartitionCommitInfo {
        let mut partitions = std::mem::take(&mut self.unreported);
        let mut uncommitted = Vec::new();
        let relative = |path: PathBuf| path.strip_prefix(&self.dir).unwrap_or(&path).to_string_lossy().into_owned();
        let waiting = self.pending.iter().map(|p| (p.partition.clone(), p.seq, p.attempt));
        let open = self.current.iter().map(|(partition, f)| (partition.clone(), f.seq, self.attempt));
        let rolled = self.rolled.iter().map(|(partition, seq)| (partition.clone(), *seq, self.attempt));
        for (partition, seq, attempt) in waiting.chain(open).chain(rolled) {
            uncommitted.push((
                relative(self.pending_file(&partition, seq, attempt)),
                relative(self.committed(&partition, seq)),
            ));
            partitions.insert(partition);
        }
        self.end_reported = true;
        PartitionCommitInfo {
            checkpoint: PartitionCommitInfo::END,
            subtask: self.index,
            parallelism: self.parallelism,
            watermark: Timestamp::MAX,
            partitions: partitions.into_iter().collect(),
            uncommitted,
        }
    }
}

/// Gives pending file `pending` its final name `done`, durably (the directory is synced, so a
/// machine crash cannot undo the commit after the next checkpoint stopped listing the file as
/// pending). Never replaces a committed file: the pending file is linked to the final name,
/// which fails if that name exists, then its pending name is removed. Committing twice, or
/// twice at once (a partition committer commits a writer's last files too), is fine: the
/// pending name is gone, or both names are the same file.
pub(crate) fn commit_file(fs: &dyn FileSystem, job: JobId, pending: &Path, done: &Path) -> Result<()> {
    let failed = |what: &str, e| WeirError::io(format!("cannot {what} '{}'", pending.display()), e);
    let gone = |e: &std::io::Error| e.kind() == std::io::ErrorKind::NotFound && done.exists();
    match fs.hard_link(pending, done) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => match same_file(pending, done) {
            Ok(true) => {}
            Ok(false) => {
                return Err(WeirError::runtime(format!(
                    "cannot commit '{}': '{}' is committed already, with other records (an older execution or a \
                     restore behind committed output); committed output is never replaced",
                    pending.display(),
                    done.display()
                )));
            }
            // Committed meanwhile by another (the pending name is gone).
            Err(e) if gone(&e) => return Ok(()),
            Err(e) => return Err(failed("commit", e)),
        },
        // Committed before (the pending name is gone).
        Err(e) if gone(&e) => return Ok(()),
        Err(e) => return Err(failed("commit", e)),
    }
    match fs.remove_file(pending) {
        Ok(()) => {}
        Err(e) if gone(&e) => {}
        Err(e) => return Err(failed("remove the pending name of", e)),
    }
    failpoint::hit(Step::BeforeDirSync, job);
    let dir = done.parent().unwrap_or(Path::new("."));
    fs.sync_dir(dir).map_err(|e| WeirError::io(format!("cannot sync '{}' after committing", dir.display()), e))
}

/// Whether `a` and `b` name the same file (a pending file linked to its final name).
fn same_file(a: &Path, b: &Path) -> std::io::Result<bool> {
    use std::os::unix::fs::MetadataExt;
    let (a, b) = (std::fs::metadata(a)?, std::fs::metadata(b)?);
    Ok((a.dev(), a.ino()) == (b.dev(), b.ino()))
}

fn pending_name(subtask: usize, seq: u64, attempt: u32) -> String {
    format!(".part-{subtask}-{seq}.a{attempt}.pending")
}

fn committed_name(subtask: usize, seq: u64) -> String {
    format!("part-{subtask}-{seq}")
}

/// The (subtask, sequence number) of a committed part file's name, `part-<subtask>-<seq>`.
fn committed_part(name: &str) -> Option<(usize, u64)> {
    let (subtask, seq) = name.strip_prefix("part-")?.split_once('-')?;
    Some((subtask.parse().ok()?, seq.parse().ok()?))
}

fn is_part_file(name: &str) -> bool {
    name.starts_with("part-")
        || (name.starts_with(".part-") && (name.ends_with(".inprogress") || name.ends_with(".pending")))
}

/// Whether `name` is a partition directory's (`column=value`).
fn is_partition_dir(name: &str) -> bool {
    name.split_once('=').is_some_and(|(k, v)| !k.is_empty() && !v.is_empty())
}

/// The files of the output directory: its own, and with `partitioned` those of its partition
/// directories, at any depth, as (path, name).
fn output_files(dir: &Path, partitioned: bool) -> Result<Vec<(PathBuf, String)>> {
    let mut files = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(WeirError::io(format!("cannot list '{}'", dir.display()), e)),
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = entry.path();
            if partitioned && path.is_dir() && is_partition_dir(&name) {
                dirs.push(path);
            } else {
                files.push((path, name));
            }
        }
    }
    Ok(files)
}

/// The committed output in `dir` (checked before a job runs): part files and, with
/// partitions, success files, as paths relative to the output directory; anything else in it
/// is refused.
fn committed_output(root: &Path, dir: &Path, partitioned: bool, committed: &mut Vec<String>) -> Result<()> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| WeirError::io(format!("cannot list output '{}'", dir.display()), e))?;
    for entry in entries {
        let entry = entry.map_err(|e| WeirError::io(format!("cannot list output '{}'", dir.display()), e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        let relative = path.strip_prefix(root).unwrap_or(&path).display().to_string();
        if partitioned && path.is_dir() && is_partition_dir(&name) {
            committed_output(root, &path, partitioned, committed)?;
            continue;
        }
        // Partitioned output has files only in partitions.
        let in_partition = dir != root;
        let ours = if partitioned {
            in_partition && (is_part_file(&name) || name == SUCCESS_FILE) && path.is_file()
        } else {
            is_part_file(&name)
        };
        if !ours {
            return Err(WeirError::Argument(format!(
                "output directory '{}' holds '{relative}', which this sink did not write; choose an empty directory",
                root.display()
            )));
        }
        if !name.starts_with('.') {
            committed.push(relative);
        }
    }
    Ok(())
}

impl<T: Data + Display> Sink for FileSink<T> {
    type In = T;

    fn validate(&self, ctx: &ValidateContext) -> Result<()> {
        let dir = &self.dir;
        if !dir.exists() {
            return Ok(());
        }
        if !dir.is_dir() {
            return Err(WeirError::Argument(format!("output '{}' exists and is not a directory", dir.display())));
        }
        let mut committed = Vec::new();
        committed_output(dir, dir, self.partitioner.is_some(), &mut committed)?;
        // Checked only: nothing is deleted before the job runs (see the module docs).
        if committed.is_empty() || ctx.restoring() || self.overwrite {
            return Ok(());
        }
        committed.sort();
        Err(WeirError::Argument(format!(
            "output directory '{}' holds the output of an earlier run ({}{}); choose another directory, remove them, \
             or overwrite them (FileSink::overwrite; the example jobs take --overwrite)",
            dir.display(),
            committed[0],
            if committed.len() > 1 { format!(" and {} more", committed.len() - 1) } else { String::new() }
        )))
    }

    fn open(&mut self, ctx: &OpenContext<'_>) -> Result<()> {
        // Durable in its parent too: committed files must not vanish with it.
        self.fs
            .create_dir_durably(&self.dir)
            .map_err(|e| WeirError::io(format!("cannot create output directory '{}'", self.dir.display()), e))?;
        self.index = ctx.subtask().index;
        self.parallelism = ctx.subtask().parallelism;
        self.checkpointing = ctx.checkpointing();
        self.attempt = ctx.subtask().attempt;
        self.job = ctx.subtask().job_id;
        Ok(())
    }

    #[inline]
    fn write(&mut self, value: T, _timestamp: Option<Timestamp>) -> Result<()> {
        self.write_at(value, None)
    }

    fn snapshot_state(&mut self, checkpoint_id: u64) -> Result<Option<Vec<u8>>> {
        self.clean()?;
        let closed = self.close_all()?;
        self.pre_commit(&closed)?;
        let attempt = self.attempt;
        self.pending.extend(closed.into_iter().map(|(partition, seq)| Pending {
            checkpoint: checkpoint_id,
            seq,
            attempt,
            partition,
        }));
        if self.partitioner.is_some() {
            self.watermarks.insert(checkpoint_id, self.watermark);
        }
        let state = FileSinkState {
            subtask: self.index,
            next_seq: self.next_seq,
            pending: self.pending.iter().map(|p| (p.checkpoint, p.seq, p.attempt)).collect(),
            partitions: self.pending.iter().map(|p| p.partition.clone()).collect(),
            unreported: self.unreported.iter().cloned().collect(),
            end_reported: self.end_reported,
        };
        Ok(Some(
            postcard::to_allocvec(&state)
                .map_err(|e| WeirError::runtime(format!("cannot encode the sink's state: {e}")))?,
        ))
    }

    fn restore_state(&mut self, states: Vec<Vec<u8>>) -> Result<()> {
        let states = states
            .iter()
            .map(|bytes| FileSinkState::decode(bytes))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| WeirError::runtime(format!("the file sink's checkpointed state is corrupt: {e}")))?;
        self.restored = true;
        for state in &states {
            // What the restored checkpoint pre-committed is committed: that checkpoint completed.
            let owner = FileSink::<T> {
                index: state.subtask,
                job: self.job,
                fs: self.fs.clone(),
                ..FileSink::new(self.dir.clone())
            };
            for p in state.pending() {
                owner.commit(&p.partition, p.seq, p.attempt)?;
            }
            // This subtask reports its own partitions, subtask 0 those of subtasks the job no
            // longer has.
            let mine = state.subtask == self.index || (self.index == 0 && state.subtask >= self.parallelism);
            if mine {
                self.end_reported |= state.end_reported && state.subtask == self.index;
                let partitions: Vec<String> =
                    state.pending().map(|p| p.partition).chain(state.unreported.iter().cloned()).collect();
                for partition in partitions {
                    self.mark_committed(&partition);
                }
            }
            if state.subtask == self.index {
                self.next_seq = self.next_seq.max(state.next_seq);
            }
        }
        // At another parallelism old subtasks' leftovers cannot be told apart safely: only
        // this subtask's own files are cleaned (in `clean`).
        self.next_seq = self.next_seq.max(states.iter().map(|s| s.next_seq).max().unwrap_or(0));
        self.refuse_restore_behind_committed(&states)
    }

    fn notify_checkpoint_complete(&mut self, checkpoint_id: u64) -> Result<()> {
        self.commit_up_to(checkpoint_id)
    }

    fn finish(&mut self) -> Result<()> {
        self.clean()?;
        if self.checkpointing {
            // The job's next checkpoint (its final one, or one while other inputs still run)
            // pre-commits the open files; its completion commits them.
            for open in self.current.values_mut() {
                let seq = open.seq;
                open.writer
                    .flush()
                    .map_err(|e| WeirError::io(format!("cannot write part {seq} in '{}'", self.dir.display()), e))?;
            }
            return Ok(());
        }
        self.commit_up_to(u64::MAX)?;
        // Through the pending names, so that these commits never replace a committed file
        // either.
        let closed = self.close_all()?;
        self.pre_commit(&closed)?;
        for (partition, seq) in closed {
            self.commit(&partition, seq, self.attempt)?;
            self.mark_committed(&partition);
        }
        Ok(())
    }
}

/// Runs a partitioned [`FileSink`] as an operator that reports its commits (see
/// [`DataStream::write_partitions`]).
struct PartitionWriter<T> {
    sink: FileSink<T>,
}

impl<T: Data + Display> Operator for PartitionWriter<T> {
    type In = T;
    type Out = PartitionCommitInfo;

    fn open(&mut self, ctx: &mut OpenContext<'_>) -> Result<()> {
        self.sink.open(ctx)
    }

    #[inline]
    fn process(&mut self, value: T, ctx: &mut Context<'_, PartitionCommitInfo>) -> Result<()> {
        let now = self.sink.rollover.map(|_| ctx.processing_time());
        self.sink.write_at(value, now)
    }

    fn on_watermark(&mut self, watermark: Timestamp, _ctx: &mut Context<'_, PartitionCommitInfo>) -> Result<()> {
        self.sink.watermark = watermark;
        Ok(())
    }

    fn end_input(&mut self, ctx: &mut Context<'_, PartitionCommitInfo>) -> Result<()> {
        self.sink.finish()?;
        if !self.sink.end_reported {
            ctx.emit(self.sink.end_report());
        }
        Ok(())
    }

    fn snapshot_state(&mut self, checkpoint_id: u64) -> Result<Option<Vec<u8>>> {
        self.sink.snapshot_state(checkpoint_id)
    }

    fn restore_state(&mut self, states: Vec<Vec<u8>>) -> Result<()> {
        self.sink.restore_state(states)
    }

    fn notify_checkpoint_complete(&mut self, checkpoint_id: u64) -> Result<()> {
        self.sink.notify_checkpoint_complete(checkpoint_id)
    }

    /// Reports the partitions committed since the last report, with the watermark at the
    /// checkpoint's barrier (a checkpoint this execution took no snapshot for, such as one
    /// completing while it restored, is reported with the next).
    fn after_checkpoint_complete(
        &mut self,
        checkpoint_id: u64,
        ctx: &mut Context<'_, PartitionCommitInfo>,
    ) -> Result<()> {
        let sink = &mut self.sink;
        let later = sink.watermarks.split_off(&(checkpoint_id + 1));
        let Some(watermark) = std::mem::replace(&mut sink.watermarks, later).remove(&checkpoint_id) else {
            return Ok(());
        };
        ctx.emit(PartitionCommitInfo {
            checkpoint: checkpoint_id,
            subtask: sink.index,
            parallelism: sink.parallelism,
            watermark,
            partitions: std::mem::take(&mut sink.unreported).into_iter().collect(),
            uncommitted: Vec::new(),
        });
        Ok(())
    }
}

impl<T: Data + Display> DataStream<T> {
    /// Writes the stream into the partitions of a [`FileSink`] built with
    /// [`FileSink::partitioned`], exactly once, and emits what each subtask committed for a
    /// [`PartitionCommitter`](crate::api::connectors::PartitionCommitter) of parallelism 1
    /// (Flink's streaming file writer; see "Partitions" in the file sink's module docs).
    ///
    /// ```
    /// use std::time::Duration;
    /// use weir_actors::prelude::*;
    /// use weir_actors::api::connectors::{PartitionCommitter, PartitionTime, partition_path};
    ///
    /// let dir = std::env::temp_dir().join(format!("weir-doc-partitions-{}", std::process::id()));
    /// let _ = std::fs::remove_dir_all(&dir);
    /// let out = dir.clone();
    /// MiniCluster::collect(move |env| {
    ///     let days = env.from_vec("days", vec!["2024-01-01".to_owned(), "2024-01-02".to_owned()]);
    ///     days.write_partitions(
    ///         "writer",
    ///         FileSink::new(&out).partitioned(|d: &String| partition_path(&[("dt", d)]).unwrap()),
    ///     )
    ///     .sink("committer", PartitionCommitter::new(&out, PartitionTime::pattern("$dt"), Duration::ZERO))
    ///     .set_parallelism(1);
    ///     days
    /// })
    /// .unwrap();
    /// assert!(dir.join("dt=2024-01-02/part-0-1").exists());
    /// assert!(dir.join("dt=2024-01-02/_SUCCESS").exists(), "the final watermark passed every partition");
    /// std::fs::remove_dir_all(&dir).unwrap();
    /// ```
    pub fn write_partitions(&self, name: &str, sink: FileSink<T>) -> DataStream<PartitionCommitInfo> {
        let validator = sink.clone();
        let make: MakeLink<T, PartitionCommitInfo> =
            Arc::new(move |name, down| Box::new(OperatorLink::new(PartitionWriter { sink: sink.clone() }, down, name)));
        self.then(name, NodeKind::Operator, make, Some(Arc::new(move |ctx| validator.validate(ctx))))
    }
}

#[cfg(test)]
mod tests;
