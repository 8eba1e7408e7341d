//! A job's arguments: `--key value` pairs given after `--` on the command line, parsed once
//! and read by the job builder, which must read every one of them (a typo is an error).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;
use std::sync::Mutex;

use crate::base::error::{Result, WeirError};

/// The arguments of a job, given after `--` as `--key value` pairs.
///
/// Reads are tracked: after a job builder has run, an argument it never read is reported as
/// unknown, so a typo (`--windw-ms`) is an error rather than a silently ignored flag.
#[derive(Debug, Default)]
pub struct JobArgs {
    values: BTreeMap<String, String>,
    read: Mutex<BTreeSet<String>>,
}

impl Clone for JobArgs {
    fn clone(&self) -> Self {
        JobArgs { values: self.values.clone(), read: Mutex::new(BTreeSet::new()) }
    }
}

impl PartialEq for JobArgs {
    fn eq(&self, other: &Self) -> bool {
        self.values == other.values
    }
}

impl serde::Serialize for JobArgs {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.values.serialize(s)
    }
}

impl<'de> serde::Deserialize<'de> for JobArgs {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        Ok(JobArgs { values: BTreeMap::deserialize(d)?, read: Mutex::new(BTreeSet::new()) })
    }
}

impl JobArgs {
    /// Parses `--key value` pairs; a `--flag` followed by another `--key` (or nothing) is `true`.
    pub fn parse<S: AsRef<str>>(args: &[S]) -> Result<Self> {
        let mut values = BTreeMap::new();
        let mut i = 0;
        while i < args.len() {
            let arg = args[i].as_ref();
            let Some(key) = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-')).filter(|k| !k.is_empty()) else {
                return Err(WeirError::Argument(format!("expected '--key value' pairs, found '{arg}'")));
            };
            let (key, value) = match key.split_once('=') {
                Some((k, v)) => (k.to_owned(), v.to_owned()),
                None => match args.get(i + 1).map(AsRef::as_ref) {
                    Some(next) if !next.starts_with("--") => {
                        i += 1;
                        (key.to_owned(), next.to_owned())
                    }
                    _ => (key.to_owned(), "true".to_owned()),
                },
            };
            if values.insert(key.clone(), value).is_some() {
                return Err(WeirError::Argument(format!("--{key} is given twice")));
            }
            i += 1;
        }
        Ok(JobArgs { values, read: Mutex::new(BTreeSet::new()) })
    }

    /// Builds arguments from pairs (for tests and programmatic submission).
    pub fn from_pairs<K: Into<String>, V: Into<String>>(pairs: impl IntoIterator<Item = (K, V)>) -> Self {
        JobArgs {
            values: pairs.into_iter().map(|(k, v)| (k.into(), v.into())).collect(),
            read: Mutex::new(BTreeSet::new()),
        }
    }

    fn mark(&self, key: &str) {
        self.read.lock().expect("job args lock").insert(key.to_owned());
    }

    /// The raw value of a required argument.
    pub fn get(&self, key: &str) -> Result<&str> {
        self.mark(key);
        self.values
            .get(key)
            .map(String::as_str)
            .ok_or_else(|| WeirError::Argument(format!("missing required argument --{key}")))
    }

    /// The raw value of an optional argument.
    pub fn get_opt(&self, key: &str) -> Option<&str> {
        self.mark(key);
        self.values.get(key).map(String::as_str)
    }

    /// An optional argument parsed as `T`; a value of the wrong form is an error naming it.
    pub fn parse_opt<T: FromStr>(&self, key: &str) -> Result<Option<T>>
    where
        T::Err: fmt::Display,
    {
        match self.get_opt(key) {
            None => Ok(None),
            Some(raw) => raw.parse::<T>().map(Some).map_err(|e| {
                WeirError::Argument(format!(
                    "invalid value '{raw}' for --{key}: {e} (expected {})",
                    std::any::type_name::<T>()
                ))
            }),
        }
    }

    /// An optional argument parsed as `T`, or `default`.
    pub fn parse_or<T: FromStr>(&self, key: &str, default: T) -> Result<T>
    where
        T::Err: fmt::Display,
    {
        Ok(self.parse_opt(key)?.unwrap_or(default))
    }

    /// A required argument parsed as `T`.
    pub fn parse_req<T: FromStr>(&self, key: &str) -> Result<T>
    where
        T::Err: fmt::Display,
    {
        self.get(key)?;
        Ok(self.parse_opt(key)?.expect("checked present"))
    }

    /// Arguments given but never read by the job builder.
    pub fn unread(&self) -> Vec<String> {
        let read = self.read.lock().expect("job args lock");
        self.values.keys().filter(|k| !read.contains(*k)).cloned().collect()
    }

    /// Fails if an argument was given that the job builder never read.
    pub fn check_all_read(&self, job: &str) -> Result<()> {
        let unread = self.unread();
        if unread.is_empty() {
            return Ok(());
        }
        let read = self.read.lock().expect("job args lock");
        let known: Vec<String> = read.iter().map(|k| format!("--{k}")).collect();
        Err(WeirError::Argument(format!(
            "unknown argument{} {} for job '{job}' (it takes: {})",
            if unread.len() > 1 { "s" } else { "" },
            unread.iter().map(|k| format!("--{k}")).collect::<Vec<_>>().join(", "),
            if known.is_empty() { "no arguments".to_owned() } else { known.join(" ") }
        )))
    }

    /// The arguments as `(key, value)` pairs.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.values.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

#[cfg(test)]
mod tests;
