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

use std::collections::BTreeSet;
use std::fmt::Display;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use weir_dataplane::Timestamp;

use crate::api::operator::OpenContext;
use crate::api::sink::Sink;
use crate::base::data::Data;
use crate::base::error::{Result, WeirError};
use crate::base::failpoint::{self, Step};
use crate::base::fs::FileSystem;
use crate::base::ids::JobId;
use crate::runtime::nodes::ValidateContext;

/// Writes each record's `Display` form as a line.
#[derive(Debug)]
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
    current: Option<(BufWriter<File>, u64)>,
    next_seq: u64,
    /// Pre-committed files: (checkpoint, sequence number, attempt that wrote it).
    pending: Vec<(u64, u64, u32)>,
    cleaned: bool,
    /// A directory holding an earlier run's part files is accepted (the first execution, which
    /// restores nothing, replaces them).
    overwrite: bool,
    /// This execution restored state: the output in the directory is the job's own.
    restored: bool,
    _types: PhantomData<fn(T)>,
}

/// What a checkpoint keeps of a file sink subtask.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct FileSinkState {
    subtask: usize,
    next_seq: u64,
    pending: Vec<(u64, u64, u32)>,
}

impl<T> Clone for FileSink<T> {
    fn clone(&self) -> Self {
        FileSink { overwrite: self.overwrite, fs: self.fs.clone(), ..FileSink::new(self.dir.clone()) }
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
            current: None,
            next_seq: 0,
            pending: Vec::new(),
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

    fn in_progress(&self, seq: u64) -> PathBuf {
        self.dir.join(format!(".part-{}-{seq}.a{}.inprogress", self.index, self.attempt))
    }

    fn pending_file(&self, seq: u64, attempt: u32) -> PathBuf {
        self.dir.join(format!(".part-{}-{seq}.a{attempt}.pending", self.index))
    }

    fn committed(&self, seq: u64) -> PathBuf {
        self.dir.join(format!("part-{}-{seq}", self.index))
    }

    /// Gives a pending file its final name, durably (the directory is synced, so a machine
    /// crash cannot undo the commit after the next checkpoint stopped listing the file as
    /// pending). Never replaces a committed file: the pending file is linked to the final name,
    /// which fails if that name exists, then its pending name is removed. Committing twice is
    /// fine (the pending name is gone, or both names are the same file).
    fn commit(&self, seq: u64, attempt: u32) -> Result<()> {
        let (pending, done) = (self.pending_file(seq, attempt), self.committed(seq));
        let failed = |what: &str, e| WeirError::io(format!("cannot {what} '{}'", pending.display()), e);
        match self.fs.hard_link(&pending, &done) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                if !same_file(&pending, &done).map_err(|e| failed("commit", e))? {
                    return Err(WeirError::runtime(format!(
                        "cannot commit '{}': '{}' is committed already, with other records (an older execution or a \
                         restore behind committed output); committed output is never replaced",
                        pending.display(),
                        done.display()
                    )));
                }
            }
            // Committed before (the pending name is gone).
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && done.exists() => return Ok(()),
            Err(e) => return Err(failed("commit", e)),
        }
        self.fs.remove_file(&pending).map_err(|e| failed("remove the pending name of", e))?;
        failpoint::hit(Step::BeforeDirSync, self.job);
        self.sync_dir("committing")
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
    /// validation refuse the directory before it ran.
    fn clean(&mut self) -> Result<()> {
        if std::mem::replace(&mut self.cleaned, true) {
            return Ok(());
        }
        let keep: BTreeSet<PathBuf> =
            self.pending.iter().map(|&(_, seq, attempt)| self.pending_file(seq, attempt)).collect();
        let replace = !self.restored;
        let owned = |name: &str| {
            let uncommitted =
                name.strip_prefix(".part-").and_then(|rest| rest.split('-').next()?.parse::<usize>().ok());
            let owner = uncommitted.or_else(|| committed_part(name).filter(|_| replace).map(|(subtask, _)| subtask));
            owner == Some(self.index) || (self.index == 0 && owner.is_some_and(|o| o >= self.parallelism))
        };
        let entries = std::fs::read_dir(&self.dir)
            .map_err(|e| WeirError::io(format!("cannot list '{}'", self.dir.display()), e))?;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if owned(&name) && !keep.contains(&entry.path()) {
                self.fs
                    .remove_file(&entry.path())
                    .map_err(|e| WeirError::io(format!("cannot remove '{}'", entry.path().display()), e))?;
            }
        }
        Ok(())
    }

    /// Fails if a file that the restored subtasks numbered after their state was committed
    /// already (see the module docs: "Restored behind committed output").
    fn refuse_restore_behind_committed(&self, states: &[FileSinkState]) -> Result<()> {
        let entries = std::fs::read_dir(&self.dir)
            .map_err(|e| WeirError::io(format!("cannot list '{}'", self.dir.display()), e))?;
        let mut later: Vec<String> = entries
            .flatten()
            .filter_map(|e| e.file_name().to_str().map(str::to_owned))
            .filter(|name| {
                committed_part(name)
                    .is_some_and(|(subtask, seq)| states.iter().any(|s| s.subtask == subtask && seq >= s.next_seq))
            })
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

    /// Closes the current file (flushed and synced) and returns its sequence number.
    fn close_current(&mut self) -> Result<Option<u64>> {
        let Some((writer, seq)) = self.current.take() else { return Ok(None) };
        let path = self.in_progress(seq);
        let file = writer
            .into_inner()
            .map_err(|e| WeirError::io(format!("cannot write '{}'", path.display()), e.into_error()))?;
        self.fs.sync_file(&path, &file).map_err(|e| WeirError::io(format!("cannot sync '{}'", path.display()), e))?;
        Ok(Some(seq))
    }

    /// Pre-commits file `seq`: its pending name, made durable before the checkpoint that lists
    /// it can complete (a machine crash must not undo a rename a completed checkpoint relies on).
    fn pre_commit(&self, seq: u64) -> Result<()> {
        let (from, to) = (self.in_progress(seq), self.pending_file(seq, self.attempt));
        self.fs.rename(&from, &to).map_err(|e| WeirError::io(format!("cannot rename '{}'", from.display()), e))?;
        self.sync_dir("pre-committing")
    }

    /// Syncs the output directory: the names made in it are durable.
    fn sync_dir(&self, after: &str) -> Result<()> {
        self.fs
            .sync_dir(&self.dir)
            .map_err(|e| WeirError::io(format!("cannot sync '{}' after {after}", self.dir.display()), e))
    }
}

/// Whether `a` and `b` name the same file (a pending file linked to its final name).
fn same_file(a: &Path, b: &Path) -> std::io::Result<bool> {
    use std::os::unix::fs::MetadataExt;
    let (a, b) = (std::fs::metadata(a)?, std::fs::metadata(b)?);
    Ok((a.dev(), a.ino()) == (b.dev(), b.ino()))
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
        let entries =
            std::fs::read_dir(dir).map_err(|e| WeirError::io(format!("cannot list output '{}'", dir.display()), e))?;
        let mut committed = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| WeirError::io(format!("cannot list output '{}'", dir.display()), e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if !is_part_file(&name) {
                return Err(WeirError::Argument(format!(
                    "output directory '{}' holds '{name}', which this sink did not write; choose an empty directory",
                    dir.display()
                )));
            }
            if !name.starts_with('.') {
                committed.push(name);
            }
        }
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
        if self.current.is_none() {
            self.clean()?;
            let seq = self.next_seq;
            self.next_seq += 1;
            let path = self.in_progress(seq);
            let file =
                self.fs.create(&path).map_err(|e| WeirError::io(format!("cannot create '{}'", path.display()), e))?;
            self.current = Some((BufWriter::with_capacity(256 * 1024, file), seq));
        }
        let (w, seq) = self.current.as_mut().expect("just opened");
        let seq = *seq;
        writeln!(w, "{value}")
            .map_err(|e| WeirError::io(format!("cannot write part {seq} in '{}'", self.dir.display()), e))
    }

    fn snapshot_state(&mut self, checkpoint_id: u64) -> Result<Option<Vec<u8>>> {
        self.clean()?;
        if let Some(seq) = self.close_current()? {
            self.pre_commit(seq)?;
            self.pending.push((checkpoint_id, seq, self.attempt));
        }
        let state = FileSinkState { subtask: self.index, next_seq: self.next_seq, pending: self.pending.clone() };
        Ok(Some(
            postcard::to_allocvec(&state)
                .map_err(|e| WeirError::runtime(format!("cannot encode the sink's state: {e}")))?,
        ))
    }

    fn restore_state(&mut self, states: Vec<Vec<u8>>) -> Result<()> {
        let states = states
            .iter()
            .map(|bytes| postcard::from_bytes::<FileSinkState>(bytes))
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
            for &(_, seq, attempt) in &state.pending {
                owner.commit(seq, attempt)?;
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
        let (done, waiting): (Vec<_>, Vec<_>) = self.pending.iter().partition(|(c, _, _)| *c <= checkpoint_id);
        if !done.is_empty() {
            failpoint::hit(Step::BeforeCommit, self.job);
        }
        for (_, seq, attempt) in done {
            self.commit(seq, attempt)?;
        }
        self.pending = waiting;
        Ok(())
    }

    fn finish(&mut self) -> Result<()> {
        self.clean()?;
        if self.checkpointing {
            // The job's final checkpoint pre-commits the current file; its completion commits.
            if let Some((writer, seq)) = &mut self.current {
                let seq = *seq;
                writer
                    .flush()
                    .map_err(|e| WeirError::io(format!("cannot write part {seq} in '{}'", self.dir.display()), e))?;
            }
            return Ok(());
        }
        for (_, seq, attempt) in std::mem::take(&mut self.pending) {
            self.commit(seq, attempt)?;
        }
        if let Some(seq) = self.close_current()? {
            // Through the pending name, so that this commit never replaces a committed file
            // either.
            self.pre_commit(seq)?;
            self.commit(seq, self.attempt)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
