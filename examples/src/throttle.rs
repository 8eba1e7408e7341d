//! A sink that is slow on purpose, to show backpressure.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use weir_actors::prelude::*;

/// Accepts at most `rate` clicks per second (per subtask) and writes each as a
/// `user<TAB>index` line to a part file of `dir`.
///
/// It keeps its pace by sleeping its thread: fine for a demonstration, wrong for a real sink
/// (operators share worker threads; a real slow sink is slow because its destination is).
#[derive(Debug)]
pub struct ThrottledSink {
    rate: f64,
    dir: PathBuf,
    out: Option<(BufWriter<File>, PathBuf, PathBuf)>,
    taken: u64,
    started: Option<Instant>,
}

impl Clone for ThrottledSink {
    fn clone(&self) -> Self {
        ThrottledSink::new(self.rate, self.dir.clone())
    }
}

impl ThrottledSink {
    /// At most `rate` clicks/s per subtask, written to `dir`.
    pub fn new(rate: f64, dir: impl Into<PathBuf>) -> Self {
        ThrottledSink { rate, dir: dir.into(), out: None, taken: 0, started: None }
    }
}

fn io(what: &str, path: &std::path::Path, e: std::io::Error) -> WeirError {
    WeirError::io(format!("cannot {what} '{}'", path.display()), e)
}

impl Sink for ThrottledSink {
    type In = Click;

    fn validate(&self, ctx: &ValidateContext) -> Result<()> {
        FileSink::<String>::new(self.dir.clone()).validate(ctx)
    }

    fn open(&mut self, ctx: &OpenContext<'_>) -> Result<()> {
        std::fs::create_dir_all(&self.dir).map_err(|e| io("create", &self.dir, e))?;
        let index = ctx.subtask().index;
        let (temp, done) = (self.dir.join(format!(".part-{index}.inprogress")), self.dir.join(format!("part-{index}")));
        let file = File::create(&temp).map_err(|e| io("create", &temp, e))?;
        self.out = Some((BufWriter::new(file), temp, done));
        Ok(())
    }

    fn write(&mut self, click: Click, _ts: Option<Timestamp>) -> Result<()> {
        let started = *self.started.get_or_insert_with(Instant::now);
        self.taken += 1;
        let due = Duration::from_secs_f64(self.taken as f64 / self.rate);
        if let Some(ahead) = due.checked_sub(started.elapsed()) {
            std::thread::sleep(ahead);
        }
        let (w, temp, _) = self.out.as_mut().expect("opened");
        writeln!(w, "{}\t{}", click.user, click.index).map_err(|e| io("write", temp, e))
    }

    fn finish(&mut self) -> Result<()> {
        let Some((w, temp, done)) = self.out.take() else { return Ok(()) };
        w.into_inner().map_err(|e| io("write", &temp, e.into_error()))?;
        std::fs::rename(&temp, &done).map_err(|e| io("publish", &done, e))
    }
}
