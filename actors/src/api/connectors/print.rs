//! A sink that prints records to standard output, prefixed by the subtask as Flink's `print()`.

use std::fmt::Display;
use std::io::Write;
use std::marker::PhantomData;

use weir_dataplane::Timestamp;

use crate::api::operator::OpenContext;
use crate::api::sink::Sink;
use crate::base::data::Data;
use crate::base::error::{Result, WeirError};

/// Prints each record on its own line (`N> record` when the sink runs in several subtasks).
#[derive(Debug)]
pub struct PrintSink<T> {
    prefix: String,
    _types: PhantomData<fn(T)>,
}

impl<T> Clone for PrintSink<T> {
    fn clone(&self) -> Self {
        PrintSink { prefix: self.prefix.clone(), _types: PhantomData }
    }
}

impl<T> PrintSink<T> {
    /// A print sink.
    pub fn new() -> Self {
        PrintSink { prefix: String::new(), _types: PhantomData }
    }
}

impl<T> Default for PrintSink<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Data + Display> Sink for PrintSink<T> {
    type In = T;

    fn open(&mut self, ctx: &OpenContext<'_>) -> Result<()> {
        let info = ctx.subtask();
        if info.parallelism > 1 {
            self.prefix = format!("{}> ", info.index + 1);
        }
        Ok(())
    }

    fn write(&mut self, value: T, _timestamp: Option<Timestamp>) -> Result<()> {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{}{value}", self.prefix).map_err(|e| WeirError::io("cannot write to standard output", e))
    }
}
