//! The partition committer: marks the partitions of a partitioned [`FileSink`] complete, with an
//! empty `_SUCCESS` file, once event time has passed them (Flink's `PartitionCommitter` with
//! the `partition-time` trigger and the `success-file` policy).
//!
//! The writer subtasks ([`DataStream::write_partitions`]) commit their part files when a
//! checkpoint completes, and then send the committer, a sink of parallelism 1 downstream, a
//! [`PartitionCommitInfo`]: the checkpoint, the partitions whose files they committed since
//! their last report, and their watermark at that checkpoint's barrier. Once every writer
//! subtask reported a checkpoint, the committer takes the least of their watermarks and
//! commits each partition it knows of whose time (read from its path with a pattern such as
//! `$dt $hm:00`, UTC) plus the delay is less than that watermark
//! ([`partition_committable`], Flink's `PartitionTimeCommitPredicate`): every record of such
//! a partition (but late ones) reached a writer before that checkpoint's barrier, so its files
//! are committed. Partitions not committable yet wait in the committer's checkpointed state.
//!
//! ## Restores
//!
//! A writer's report follows the barrier of the checkpoint it reports (it is sent when that
//! checkpoint completes), so a restore from that checkpoint loses it downstream. The writer
//! therefore keeps in its state what it had not reported at each barrier, and reports it again
//! after a restore; the committer keeps its pending partitions. What the writers reported
//! before a barrier is in the committer's state of that checkpoint, what they had not is in
//! theirs: every partition is reported once after a restore (a partition committed again, after
//! a restore behind its commit, gets the same empty file again). Which writers reported a
//! checkpoint is not kept: after a restore the next checkpoint every writer reports commits.
//!
//! ## The end of the input
//!
//! When its input ends, a writer sends an end report ([`PartitionCommitInfo::END`]) with
//! every partition it has not reported and the files it has not committed yet; end of data
//! follows it, so no report can come after. Without checkpoints its files are committed
//! already, and once every writer ended the committer commits every partition. With
//! checkpoints the writers' last files are committed by the first checkpoint after their
//! input ended (as the unpartitioned sink's, see [`FileSink`]), and the committer cannot hear
//! of that: at its first snapshot after every writer's end report (whose barrier came after
//! each writer's end, so each writer's state there lists those files as pre-committed) it
//! arms, and when that checkpoint (or a later one) completes it commits the listed files itself
//! (idempotently: the writers commit the same files, and a commit finds the file committed)
//! and then commits every partition it knows of, as Flink's committer does at the end of its
//! input, whose final watermark passes every partition anyway. A restore from a checkpoint
//! where it had armed does that at once.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use weir_dataplane::Timestamp;

use crate::api::connectors::file_sink::{PartitionCommitInfo, SUCCESS_FILE, commit_file};
use crate::api::operator::OpenContext;
use crate::api::sink::Sink;
use crate::base::error::{Result, WeirError};
use crate::base::failpoint::{self, Step};
use crate::base::fs::FileSystem;
use crate::base::ids::JobId;

#[cfg(doc)]
use crate::api::{connectors::FileSink, stream::DataStream};

/// Whether a partition of time `partition_time` is committed at `watermark` with `delay`:
/// Flink's `PartitionTimeCommitPredicate`, `watermark > partition time + delay`.
pub fn partition_committable(watermark: Timestamp, partition_time: Timestamp, delay: Duration) -> bool {
    watermark > partition_time.saturating_add(delay.as_millis() as Timestamp)
}

/// Escapes a partition column's name or value for a path, as Flink's
/// `PartitionPathUtils.escapePathName`: control characters and `"#%'*/:=?\{[]^` and DEL become
/// `%XX` (upper-case hex). Fails on an empty string, as Flink does.
pub fn escape_path_name(name: &str) -> Result<String> {
    if name.is_empty() {
        return Err(WeirError::user("a partition path name or value must not be empty"));
    }
    let mut out = String::with_capacity(name.len() + 2);
    for c in name.chars() {
        if needs_escaping(c) {
            out.push_str(&format!("%{:02X}", c as u32));
        } else {
            out.push(c);
        }
    }
    Ok(out)
}

fn needs_escaping(c: char) -> bool {
    (c as u32) < 0x20
        || matches!(c, '"' | '#' | '%' | '\'' | '*' | '/' | ':' | '=' | '?' | '\\' | '\u{7f}' | '{' | '[' | ']' | '^')
}

/// Undoes [`escape_path_name`], as Flink's `unescapePathName` (a `%` not followed by two hex
/// digits stays as it is).
pub fn unescape_path_name(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(code) = path.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(char::from(code));
            i += 3;
            continue;
        }
        let c = path[i..].chars().next().expect("in bounds");
        out.push(c);
        i += c.len_utf8();
    }
    out
}

/// A partition's path relative to the output directory: `key=value` for each column, escaped,
/// joined with `/` (Flink's `PartitionPathUtils.generatePartitionPath`, without its trailing
/// `/`), e.g. `dt=2015-07-15/hm=12%3A01`.
pub fn partition_path(spec: &[(&str, &str)]) -> Result<String> {
    let mut path = String::new();
    for (i, (key, value)) in spec.iter().enumerate() {
        if i > 0 {
            path.push('/');
        }
        path.push_str(&escape_path_name(key)?);
        path.push('=');
        path.push_str(&escape_path_name(value)?);
    }
    Ok(path)
}

/// The (column, value) pairs of a partition path, unescaped, in order (Flink's
/// `extractPartitionSpecFromPath`: components not of the form `key=value` are skipped).
pub fn partition_spec(path: &str) -> Vec<(String, String)> {
    path.split('/')
        .filter_map(|component| {
            let (key, value) = component.split_once('=')?;
            (!key.is_empty() && !value.is_empty()).then(|| (unescape_path_name(key), unescape_path_name(value)))
        })
        .collect()
}

/// A partition's time, from its values and a pattern (Flink's `DefaultPartTimeExtractor` with
/// `partition.time-extractor.timestamp-pattern`): each `$column` in the pattern is replaced by
/// the partition's value of that column, and the result is read as `yyyy-MM-dd[ HH:mm:ss[.S…]]`
/// (fields of one or two digits accepted, as Flink's lenient formatter), in UTC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionTime {
    pattern: String,
}

impl PartitionTime {
    /// Extracts with `pattern`, e.g. `$dt $hm:00`.
    pub fn pattern(pattern: impl Into<String>) -> Self {
        PartitionTime { pattern: pattern.into() }
    }

    /// The time of the partition at relative path `partition`, in epoch milliseconds.
    pub fn extract(&self, partition: &str) -> Result<Timestamp> {
        let mut text = self.pattern.clone();
        for (key, value) in partition_spec(partition) {
            text = text.replace(&format!("${key}"), &value);
        }
        parse_timestamp(&text).ok_or_else(|| {
            WeirError::user(format!(
                "partition '{partition}' has no time: pattern '{}' gives '{text}', which is not a timestamp \
                 (yyyy-MM-dd[ HH:mm:ss])",
                self.pattern
            ))
        })
    }
}

/// `yyyy-MM-dd[ HH:mm:ss[.fraction]]` in UTC, as epoch milliseconds.
fn parse_timestamp(text: &str) -> Option<Timestamp> {
    let (date, time) = match text.split_once(' ') {
        Some((d, t)) => (d, Some(t)),
        None => (text, None),
    };
    let mut ymd = date.splitn(3, '-');
    let y: i64 = ymd.next()?.parse().ok()?;
    let m = small(ymd.next()?, 1, 12)?;
    let d = small(ymd.next()?, 1, 31)?;
    let mut ms = days_from_civil(y, m, d) * 86_400_000;
    if let Some(time) = time {
        let (hms, fraction) = match time.split_once('.') {
            Some((hms, f)) => (hms, Some(f)),
            None => (time, None),
        };
        let mut parts = hms.splitn(3, ':');
        let h = small(parts.next()?, 0, 23)?;
        let mi = small(parts.next()?, 0, 59)?;
        let s = small(parts.next()?, 0, 59)?;
        ms += (h * 3600 + mi * 60 + s) * 1000;
        if let Some(f) = fraction {
            if f.is_empty() || f.len() > 9 || !f.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let digits: String = f.chars().chain(std::iter::repeat('0')).take(3).collect();
            ms += digits.parse::<i64>().ok()?;
        }
    }
    Some(ms)
}

/// A field of one or two digits within `min..=max`.
fn small(field: &str, min: i64, max: i64) -> Option<i64> {
    if field.is_empty() || field.len() > 2 || !field.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let v: i64 = field.parse().ok()?;
    (min..=max).contains(&v).then_some(v)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// What the committer knows of the writers' end (checkpointed).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct EndState {
    /// The writer subtasks whose end report came, and how many there are.
    ended: BTreeSet<usize>,
    parallelism: usize,
    /// Their files not committed yet (pending name, final name).
    uncommitted: Vec<(String, String)>,
    /// The snapshot taken after every writer's end report: its completion (or a later one's)
    /// commits the rest.
    armed: Option<u64>,
    /// The rest was committed.
    done: bool,
}

impl EndState {
    fn complete(&self) -> bool {
        self.parallelism > 0 && self.ended.len() >= self.parallelism
    }
}

/// What a checkpoint keeps of the committer.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct CommitterState {
    pending: BTreeSet<String>,
    end: EndState,
}

/// The reports of one checkpoint so far.
#[derive(Debug, Default)]
struct Round {
    reported: BTreeSet<usize>,
    watermark: Option<Timestamp>,
}

/// Commits the partitions of a partitioned [`FileSink`](crate::api::connectors::FileSink) with
/// an empty `_SUCCESS` file each, once event time passed them (see the module docs). Run it at
/// parallelism 1 on the stream of [`DataStream::write_partitions`].
#[derive(Debug)]
pub struct PartitionCommitter {
    dir: PathBuf,
    time: PartitionTime,
    delay: Duration,
    fs: Arc<dyn FileSystem>,
    job: JobId,
    checkpointing: bool,
    state: CommitterState,
    rounds: BTreeMap<u64, Round>,
    restored: bool,
    cleaned: bool,
}

impl Clone for PartitionCommitter {
    fn clone(&self) -> Self {
        PartitionCommitter::new(self.dir.clone(), self.time.clone(), self.delay).with_file_system(self.fs.clone())
    }
}

impl PartitionCommitter {
    /// Commits the partitions under `dir` (the writers' output directory) whose time, by
    /// `time`, plus `delay` the watermark has passed.
    pub fn new(dir: impl Into<PathBuf>, time: PartitionTime, delay: Duration) -> Self {
        PartitionCommitter {
            dir: dir.into(),
            time,
            delay,
            fs: crate::base::fs::local(),
            job: JobId(0),
            checkpointing: false,
            state: CommitterState::default(),
            rounds: BTreeMap::new(),
            restored: false,
            cleaned: false,
        }
    }

    /// Writes through `fs` (tests crash a machine under it).
    pub fn with_file_system(mut self, fs: Arc<dyn FileSystem>) -> Self {
        self.fs = fs;
        self
    }

    /// The partitions known and not committed yet.
    pub fn pending(&self) -> impl Iterator<Item = &str> {
        self.state.pending.iter().map(String::as_str)
    }

    /// A fresh start (nothing restored) starts the output over, as the writers do: the
    /// success files of an earlier attempt go (the earlier part files are the writers' to
    /// delete).
    fn clean(&mut self) -> Result<()> {
        if std::mem::replace(&mut self.cleaned, true) || self.restored {
            return Ok(());
        }
        let mut dirs = vec![self.dir.clone()];
        while let Some(dir) = dirs.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else { continue };
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                let path = entry.path();
                if path.is_dir() && name.contains('=') {
                    dirs.push(path);
                } else if name == SUCCESS_FILE {
                    self.fs
                        .remove_file(&path)
                        .map_err(|e| WeirError::io(format!("cannot remove '{}'", path.display()), e))?;
                }
            }
        }
        Ok(())
    }

    /// Writes the success file of `partition` (idempotently: an existing one is replaced by
    /// the same empty file), durably.
    fn commit_partition(&self, partition: &str) -> Result<()> {
        let dir = self.dir.join(partition);
        let path = dir.join(SUCCESS_FILE);
        let failed = |what: &str, e| WeirError::io(format!("cannot {what} '{}'", path.display()), e);
        self.fs.create_dir_durably(&dir).map_err(|e| failed("create the directory of", e))?;
        let file = self.fs.create(&path).map_err(|e| failed("create", e))?;
        self.fs.sync_file(&path, &file).map_err(|e| failed("sync", e))?;
        self.fs.sync_dir(&dir).map_err(|e| failed("sync the directory of", e))?;
        tracing::info!(job = %self.job, partition, "partition committed with a success file");
        Ok(())
    }

    /// Commits the pending partitions that `watermark` passed.
    fn commit_passed(&mut self, watermark: Timestamp) -> Result<()> {
        let mut passed = Vec::new();
        for partition in &self.state.pending {
            if partition_committable(watermark, self.time.extract(partition)?, self.delay) {
                passed.push(partition.clone());
            }
        }
        if !passed.is_empty() {
            failpoint::hit(Step::BeforeCommit, self.job);
        }
        for partition in passed {
            self.commit_partition(&partition)?;
            self.state.pending.remove(&partition);
        }
        Ok(())
    }

    /// Every writer ended and their last files are in a completed checkpoint: commits those
    /// files (if their writers have not yet) and every partition.
    fn commit_end(&mut self) -> Result<()> {
        if self.state.end.done {
            return Ok(());
        }
        failpoint::hit(Step::BeforeCommit, self.job);
        for (pending, done) in &self.state.end.uncommitted {
            let (pending, done) = (self.dir.join(pending), self.dir.join(done));
            commit_file(&*self.fs, self.job, &pending, &done)?;
        }
        for partition in std::mem::take(&mut self.state.pending) {
            self.commit_partition(&partition)?;
        }
        self.state.end.uncommitted.clear();
        self.state.end.done = true;
        Ok(())
    }
}

impl Sink for PartitionCommitter {
    type In = PartitionCommitInfo;

    fn open(&mut self, ctx: &OpenContext<'_>) -> Result<()> {
        if ctx.subtask().parallelism != 1 {
            return Err(WeirError::user(format!(
                "the partition committer runs at parallelism 1, not {} (set_parallelism(1))",
                ctx.subtask().parallelism
            )));
        }
        self.job = ctx.subtask().job_id;
        self.checkpointing = ctx.checkpointing();
        Ok(())
    }

    fn write(&mut self, info: PartitionCommitInfo, _timestamp: Option<Timestamp>) -> Result<()> {
        self.clean()?;
        self.state.pending.extend(info.partitions);
        if info.checkpoint == PartitionCommitInfo::END {
            let end = &mut self.state.end;
            end.ended.insert(info.subtask);
            end.parallelism = info.parallelism;
            end.uncommitted.extend(info.uncommitted);
            if end.complete() && !self.checkpointing {
                // Without checkpoints the writers committed their files when their input ended.
                self.commit_end()?;
            }
            return Ok(());
        }
        let round = self.rounds.entry(info.checkpoint).or_default();
        round.reported.insert(info.subtask);
        round.watermark = Some(round.watermark.map_or(info.watermark, |w| w.min(info.watermark)));
        if round.reported.len() < info.parallelism {
            return Ok(());
        }
        let watermark = round.watermark.expect("set above");
        self.rounds = self.rounds.split_off(&(info.checkpoint + 1));
        self.commit_passed(watermark)
    }

    fn snapshot_state(&mut self, checkpoint_id: u64) -> Result<Option<Vec<u8>>> {
        self.clean()?;
        let end = &mut self.state.end;
        if end.complete() && end.armed.is_none() {
            end.armed = Some(checkpoint_id);
        }
        postcard::to_allocvec(&self.state)
            .map(Some)
            .map_err(|e| WeirError::runtime(format!("cannot encode the partition committer's state: {e}")))
    }

    fn restore_state(&mut self, states: Vec<Vec<u8>>) -> Result<()> {
        self.restored = true;
        for bytes in states {
            let state: CommitterState = postcard::from_bytes(&bytes).map_err(|e| {
                WeirError::runtime(format!("the partition committer's checkpointed state is corrupt: {e}"))
            })?;
            self.state.pending.extend(state.pending);
            let end = &mut self.state.end;
            end.ended.extend(state.end.ended);
            end.parallelism = end.parallelism.max(state.end.parallelism);
            end.uncommitted.extend(state.end.uncommitted);
            end.armed = end.armed.or(state.end.armed);
            end.done |= state.end.done;
        }
        // The restored checkpoint completed, and it was taken at or after the armed one.
        if self.state.end.armed.is_some() {
            self.commit_end()?;
        }
        Ok(())
    }

    fn notify_checkpoint_complete(&mut self, checkpoint_id: u64) -> Result<()> {
        if self.state.end.armed.is_some_and(|armed| armed <= checkpoint_id) {
            self.commit_end()?;
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<()> {
        self.clean()
    }
}

#[cfg(test)]
mod tests;
