//! A text-file source: a file or a directory of files, read line by line, split by byte ranges
//! across subtasks as Hadoop and Flink split text input.
//!
//! Each file is cut into chunks (1 MiB unless [`TextFile::chunk_bytes`] says otherwise), dealt out in turn: subtask `j` of `p` reads
//! chunks `j`, `j + p`, `j + 2p`, … of every file, in file order. A line belongs to the chunk in
//! which it starts, so every line is read exactly once whatever the parallelism.
//!
//! Why chunks in turn rather than one range per subtask: files are mostly written in time
//! order, and with one range each, subtask 1 of 2 would start half the file's time span ahead
//! of subtask 0. Downstream, event time follows the slowest subtask, so windows and joins would
//! hold half the file in state (10 M rows of an interval join at parallelism 2 peaked at
//! 3.9 GiB that way, against 135 MiB at parallelism 1). Dealt in turn, the subtasks stay
//! within a chunk of each other.
//!
//! A checkpoint keeps each subtask's ranges left to read (the current one from the next line
//! on). Restored at another parallelism, the ranges left by all old subtasks are dealt out
//! to the new subtasks in turn: each is read once, by one of them.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::api::operator::OpenContext;
use crate::api::source::{Source, SourceContext};
use crate::base::data::Data;
use crate::base::error::{Result, WeirError};
use crate::runtime::nodes::ValidateContext;
use crate::runtime::source_head::SourcePoll;

/// The size of the chunks files are cut into for the subtasks, unless set (see the module docs).
const CHUNK_BYTES: u64 = 1 << 20;

/// Reads lines of text (`String`, without the line ending).
#[derive(Debug)]
pub struct TextFile {
    path: PathBuf,
    splits: Vec<Split>,
    current: Option<Reader>,
    /// (index, parallelism) of the subtask it runs in.
    subtask: (usize, usize),
    /// The size of the chunks its files are cut into.
    chunk: u64,
}

/// What a checkpoint keeps of a subtask: who it was, and what it had left to read.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Position {
    /// (index, parallelism) of the subtask.
    subtask: (usize, usize),
    left: Vec<Split>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Split {
    path: PathBuf,
    start: u64,
    end: u64,
}

#[derive(Debug)]
struct Reader {
    split: Split,
    reader: BufReader<File>,
    position: u64,
    line: Vec<u8>,
}

// Each subtask gets a clone of the configured source; an open reader is never shared.
impl Clone for TextFile {
    fn clone(&self) -> Self {
        TextFile {
            path: self.path.clone(),
            splits: self.splits.clone(),
            current: None,
            subtask: self.subtask,
            chunk: self.chunk,
        }
    }
}

impl TextFile {
    /// Reads `path`: a file, or every file (not starting with `.`) directly in a directory.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        TextFile { path: path.into(), splits: Vec::new(), current: None, subtask: (0, 1), chunk: CHUNK_BYTES }
    }

    /// Cuts files into chunks of `bytes` (at least 1; default 1 MiB) dealt out to the subtasks
    /// in turn: smaller chunks keep subtasks closer in a file written in time order.
    pub fn chunk_bytes(mut self, bytes: u64) -> Self {
        self.chunk = bytes.max(1);
        self
    }

    fn files(&self) -> Result<Vec<(PathBuf, u64)>> {
        let path = &self.path;
        let meta =
            std::fs::metadata(path).map_err(|e| WeirError::io(format!("cannot read input '{}'", path.display()), e))?;
        let mut files = Vec::new();
        if meta.is_dir() {
            let entries = std::fs::read_dir(path)
                .map_err(|e| WeirError::io(format!("cannot list input directory '{}'", path.display()), e))?;
            for entry in entries {
                let entry =
                    entry.map_err(|e| WeirError::io(format!("cannot list input directory '{}'", path.display()), e))?;
                let name = entry.file_name();
                if name.to_string_lossy().starts_with('.') {
                    continue;
                }
                let meta = entry
                    .metadata()
                    .map_err(|e| WeirError::io(format!("cannot read '{}'", entry.path().display()), e))?;
                if meta.is_file() {
                    files.push((entry.path(), meta.len()));
                }
            }
            files.sort();
        } else {
            files.push((path.clone(), meta.len()));
        }
        Ok(files)
    }

    /// Reads up to a batch of lines, handing each to `each` with its file and the byte offset
    /// it starts at.
    fn poll_lines<T: Data>(
        &mut self,
        ctx: &mut SourceContext<'_, T>,
        mut each: impl FnMut(&mut SourceContext<'_, T>, &str, &Path, u64) -> Result<()>,
    ) -> Result<SourcePoll> {
        while ctx.emitted() < ctx.batch_size() {
            if self.current.is_none() {
                match self.splits.pop() {
                    Some(split) => self.current = Some(Self::open_split(&split)?),
                    None => return Ok(SourcePoll::Finished),
                }
            }
            let r = self.current.as_mut().expect("just opened");
            if r.position >= r.split.end {
                self.current = None;
                continue;
            }
            r.line.clear();
            let n = r
                .reader
                .read_until(b'\n', &mut r.line)
                .map_err(|e| WeirError::io(format!("cannot read input '{}'", r.split.path.display()), e))?;
            if n == 0 {
                self.current = None;
                continue;
            }
            let offset = r.position;
            r.position += n as u64;
            let mut bytes: &[u8] = &r.line;
            if let Some(rest) = bytes.strip_suffix(b"\n") {
                bytes = rest.strip_suffix(b"\r").unwrap_or(rest);
            }
            let line = std::str::from_utf8(bytes).map_err(|_| {
                WeirError::user(format!("input '{}' is not UTF-8 text (line at byte {offset})", r.split.path.display()))
            })?;
            each(ctx, line, &r.split.path, offset)?;
        }
        Ok(SourcePoll::Ready)
    }

    /// Parses each line with `parse` (Flink's CSV and JSON formats do this in the source): a
    /// line it refuses becomes a [`BadLine`] naming the file, the line number and why, for
    /// the job to fail with or to set aside.
    ///
    /// ```
    /// use weir_actors::prelude::*;
    /// let dir = std::env::temp_dir().join(format!("weir-doc-parse-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir).unwrap();
    /// std::fs::write(dir.join("n.txt"), "1\n2\nthree\n").unwrap();
    /// let source = TextFile::new(dir.join("n.txt")).parse(|line: &str| line.parse::<u32>().map_err(|e| e.to_string()));
    /// let out = MiniCluster::collect(move |env| env.source("numbers", source.clone())).unwrap();
    /// assert_eq!(out[..2], [Ok(1), Ok(2)]);
    /// let bad = out[2].clone().unwrap_err();
    /// assert_eq!((bad.line, bad.text.as_str()), (3, "three"));
    /// assert!(bad.to_string().ends_with("n.txt' line 3: invalid digit found in string"), "{bad}");
    /// # std::fs::remove_dir_all(&dir).unwrap();
    /// ```
    pub fn parse<T, F>(self, parse: F) -> ParsedTextFile<T>
    where
        T: Data,
        F: Fn(&str) -> std::result::Result<T, String> + Send + Sync + 'static,
    {
        ParsedTextFile { text: self, parse: Arc::new(parse), lines: LineCounter::default() }
    }

    fn open_split(split: &Split) -> Result<Reader> {
        let context = || format!("cannot read input '{}'", split.path.display());
        let file = File::open(&split.path).map_err(|e| WeirError::io(context(), e))?;
        let mut reader = BufReader::with_capacity(256 * 1024, file);
        let mut position = split.start;
        let mut line = Vec::new();
        if split.start > 0 {
            // Start one byte early: if that byte ends a line, the range begins on a line start;
            // otherwise skip the rest of the line the previous range owns.
            reader.seek(SeekFrom::Start(split.start - 1)).map_err(|e| WeirError::io(context(), e))?;
            let skipped = reader.read_until(b'\n', &mut line).map_err(|e| WeirError::io(context(), e))?;
            position = split.start - 1 + skipped as u64;
            line.clear();
        }
        Ok(Reader { split: split.clone(), reader, position, line })
    }
}

impl Source for TextFile {
    type Out = String;

    fn validate(&self, _ctx: &ValidateContext) -> Result<()> {
        self.files().map(|_| ())
    }

    fn open(&mut self, ctx: &OpenContext<'_>) -> Result<()> {
        let info = ctx.subtask();
        self.subtask = (info.index, info.parallelism);
        let (p, j) = (info.parallelism as u64, info.index as u64);
        let mut splits = Vec::new();
        for (path, len) in self.files()? {
            let mut start = j * self.chunk;
            while start < len {
                splits.push(Split { path: path.clone(), start, end: (start + self.chunk).min(len) });
                start += p * self.chunk;
            }
        }
        splits.reverse();
        self.splits = splits;
        Ok(())
    }

    fn poll_next(&mut self, ctx: &mut SourceContext<'_, String>) -> Result<SourcePoll> {
        self.poll_lines(ctx, |ctx, line, _, _| {
            ctx.emit(line.to_owned());
            Ok(())
        })
    }

    /// The splits left, the current one from the line after the last emitted (a line
    /// boundary, which is where a split may start).
    fn snapshot_state(&mut self) -> Result<Vec<u8>> {
        let mut left: Vec<Split> = Vec::new();
        if let Some(r) = &self.current
            && r.position < r.split.end
        {
            left.push(Split { start: r.position, ..r.split.clone() });
        }
        left.extend(self.splits.iter().rev().cloned());
        postcard::to_allocvec(&Position { subtask: self.subtask, left })
            .map_err(|e| WeirError::runtime(format!("cannot encode the text source's position: {e}")))
    }

    fn restore_state(&mut self, states: Vec<Vec<u8>>) -> Result<()> {
        let positions = states
            .iter()
            .map(|bytes| postcard::from_bytes::<Position>(bytes))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| WeirError::runtime(format!("the text source's checkpointed position is corrupt: {e}")))?;
        // This subtask's own position at the same parallelism; otherwise every old subtask's
        // ranges, dealt out in turn (every new subtask sees them in the same order).
        let (index, parallelism) = self.subtask;
        let mine: Vec<Split> = match positions.as_slice() {
            [own] if own.subtask == self.subtask => own.left.clone(),
            _ => positions
                .into_iter()
                .flat_map(|p| p.left)
                .enumerate()
                .filter(|(i, _)| i % parallelism == index)
                .map(|(_, s)| s)
                .collect(),
        };
        self.current = None;
        self.splits = mine.into_iter().rev().collect();
        Ok(())
    }
}

/// A line a [`ParsedTextFile`]'s parser refused: where it is, what it says, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BadLine {
    /// The file.
    pub path: String,
    /// Its line number, from 1.
    pub line: u64,
    /// The line, without its line ending.
    pub text: String,
    /// What the parser said.
    pub reason: String,
}

impl std::fmt::Display for BadLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "'{}' line {}: {}", self.path, self.line, self.reason)
    }
}

/// Parses a line into a record, or says why it cannot.
type LineParser<T> = Arc<dyn Fn(&str) -> std::result::Result<T, String> + Send + Sync>;

/// A [`TextFile`] whose lines are parsed in the source ([`TextFile::parse`]): it emits each
/// parsed record, or the [`BadLine`] the parser refused.
pub struct ParsedTextFile<T> {
    text: TextFile,
    parse: LineParser<T>,
    lines: LineCounter,
}

impl<T> Clone for ParsedTextFile<T> {
    fn clone(&self) -> Self {
        ParsedTextFile { text: self.text.clone(), parse: self.parse.clone(), lines: LineCounter::default() }
    }
}

impl<T: Data> Source for ParsedTextFile<T> {
    type Out = std::result::Result<T, BadLine>;

    fn validate(&self, ctx: &ValidateContext) -> Result<()> {
        self.text.validate(ctx)
    }

    fn open(&mut self, ctx: &OpenContext<'_>) -> Result<()> {
        self.text.open(ctx)
    }

    fn poll_next(&mut self, ctx: &mut SourceContext<'_, Self::Out>) -> Result<SourcePoll> {
        let (parse, lines) = (&self.parse, &mut self.lines);
        self.text.poll_lines(ctx, |ctx, line, path, offset| {
            match parse(line) {
                Ok(record) => ctx.emit(Ok(record)),
                Err(reason) => {
                    let bad = BadLine {
                        path: path.display().to_string(),
                        line: lines.line_at(path, offset)?,
                        text: line.to_owned(),
                        reason,
                    };
                    ctx.emit(Err(bad));
                }
            }
            Ok(())
        })
    }

    fn snapshot_state(&mut self) -> Result<Vec<u8>> {
        self.text.snapshot_state()
    }

    fn restore_state(&mut self, states: Vec<Vec<u8>>) -> Result<()> {
        self.text.restore_state(states)
    }
}

/// Line numbers of byte offsets, counted only when a bad line needs one (a subtask reads
/// from the middle of a file, so it does not know them as it reads): from the last offset it
/// counted to in the same file, so a file is read at most once more however many lines are
/// bad.
#[derive(Debug, Default)]
struct LineCounter {
    /// A file, an offset in it where a line starts, and that line's number.
    last: Option<(PathBuf, u64, u64)>,
}

impl LineCounter {
    fn line_at(&mut self, path: &Path, offset: u64) -> Result<u64> {
        let (from, mut line) = match &self.last {
            Some((last, at, line)) if last == path && *at <= offset => (*at, *line),
            _ => (0, 1),
        };
        let context = || format!("cannot read input '{}'", path.display());
        let mut file = File::open(path).map_err(|e| WeirError::io(context(), e))?;
        file.seek(SeekFrom::Start(from)).map_err(|e| WeirError::io(context(), e))?;
        let mut left = offset - from;
        let mut buffer = vec![0u8; 64 * 1024];
        while left > 0 {
            let want = buffer.len().min(usize::try_from(left).unwrap_or(usize::MAX));
            let n = file.read(&mut buffer[..want]).map_err(|e| WeirError::io(context(), e))?;
            if n == 0 {
                break;
            }
            line += buffer[..n].iter().filter(|&&b| b == b'\n').count() as u64;
            left -= n as u64;
        }
        self.last = Some((path.to_owned(), offset, line));
        Ok(line)
    }
}

#[cfg(test)]
mod tests;
