//! A sink that writes text lines to one part file per subtask in a directory.
//!
//! A subtask writes `.part-N.inprogress` and renames it to `part-N` when its input ends, so
//! files whose names start with `.` are never output. (Two-phase commits on checkpoints come
//! with fault tolerance.) On the client, before the job runs, the directory is checked: part
//! files of an earlier run are removed so outputs of two parallelisms never mix, and a
//! directory holding anything else is refused rather than written into.

use std::fmt::Display;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::marker::PhantomData;
use std::path::PathBuf;

use weir_dataplane::Timestamp;

use crate::error::{Result, WeirError};
use crate::operator::{Data, OpenContext};
use crate::source::Sink;

/// Writes each record's `Display` form as a line.
#[derive(Debug)]
pub struct FileSink<T> {
    dir: PathBuf,
    writer: Option<(BufWriter<File>, PathBuf, PathBuf)>,
    _types: PhantomData<fn(T)>,
}

impl<T> Clone for FileSink<T> {
    fn clone(&self) -> Self {
        FileSink { dir: self.dir.clone(), writer: None, _types: PhantomData }
    }
}

impl<T> FileSink<T> {
    /// Writes into directory `dir` (created if missing).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        FileSink { dir: dir.into(), writer: None, _types: PhantomData }
    }
}

fn is_part_file(name: &str) -> bool {
    name.starts_with("part-") || (name.starts_with(".part-") && name.ends_with(".inprogress"))
}

impl<T: Data + Display> Sink for FileSink<T> {
    type In = T;

    fn validate(&self) -> Result<()> {
        let dir = &self.dir;
        if !dir.exists() {
            return Ok(());
        }
        if !dir.is_dir() {
            return Err(WeirError::Argument(format!("output '{}' exists and is not a directory", dir.display())));
        }
        let entries =
            std::fs::read_dir(dir).map_err(|e| WeirError::io(format!("cannot list output '{}'", dir.display()), e))?;
        let mut parts = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| WeirError::io(format!("cannot list output '{}'", dir.display()), e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if !is_part_file(&name) {
                return Err(WeirError::Argument(format!(
                    "output directory '{}' holds '{name}', which this sink did not write; choose an empty directory",
                    dir.display()
                )));
            }
            parts.push(entry.path());
        }
        for part in parts {
            std::fs::remove_file(&part)
                .map_err(|e| WeirError::io(format!("cannot remove old output '{}'", part.display()), e))?;
        }
        Ok(())
    }

    fn open(&mut self, ctx: &OpenContext<'_>) -> Result<()> {
        std::fs::create_dir_all(&self.dir)
            .map_err(|e| WeirError::io(format!("cannot create output directory '{}'", self.dir.display()), e))?;
        let index = ctx.subtask().index;
        let temp = self.dir.join(format!(".part-{index}.inprogress"));
        let done = self.dir.join(format!("part-{index}"));
        let file = File::create(&temp).map_err(|e| WeirError::io(format!("cannot create '{}'", temp.display()), e))?;
        self.writer = Some((BufWriter::with_capacity(256 * 1024, file), temp, done));
        Ok(())
    }

    #[inline]
    fn write(&mut self, value: T, _timestamp: Option<Timestamp>) -> Result<()> {
        let (w, temp, _) = self.writer.as_mut().expect("opened");
        writeln!(w, "{value}").map_err(|e| WeirError::io(format!("cannot write '{}'", temp.display()), e))
    }

    fn finish(&mut self) -> Result<()> {
        let Some((w, temp, done)) = self.writer.take() else { return Ok(()) };
        let file =
            w.into_inner().map_err(|e| WeirError::io(format!("cannot write '{}'", temp.display()), e.into_error()))?;
        file.sync_all().map_err(|e| WeirError::io(format!("cannot sync '{}'", temp.display()), e))?;
        std::fs::rename(&temp, &done).map_err(|e| WeirError::io(format!("cannot publish '{}'", done.display()), e))
    }
}
