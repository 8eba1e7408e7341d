//! Identifiers: the job's id, which names it in every message, directory and channel.

use std::fmt;
use std::str::FromStr;

use crate::base::error::{Result, WeirError};

/// The identity of a submitted job: 16 bytes, shown as 32 hex digits as in Flink.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct JobId(pub u128);

impl JobId {
    /// A new, practically unique id.
    pub fn generate() -> Self {
        use std::sync::atomic::{AtomicU64, Ordering};
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
        let seed = format!("{nanos}/{}/{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed));
        JobId(xxhash_rust::xxh3::xxh3_128(seed.as_bytes()))
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

impl fmt::Debug for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "JobId({self})")
    }
}

impl FromStr for JobId {
    type Err = WeirError;
    fn from_str(s: &str) -> Result<Self> {
        u128::from_str_radix(s, 16)
            .map(JobId)
            .map_err(|_| WeirError::UnknownJobId(format!("'{s}' is not a job id (32 hex digits)")))
    }
}
