//! Lease-based fencing of what a JobManager writes to the state it shares with the other
//! JobManagers of a highly available cluster (the job store, the checkpoints' metadata, their
//! ids' high water mark, deletions of checkpoints and shared files).
//!
//! A leader holds its leadership until a deadline its lease keeper moves forward at every
//! keep-alive the coordination service acknowledges (`weir jobmanager` with `[ha]`; see the
//! CLI's `ha` module): 3/4 of the lease after the acknowledged keep-alive was sent, so before
//! the service could elect anyone else. Every such write first checks the deadline and is
//! refused once it passed, naming why. A process frozen (or partitioned) past its lease
//! therefore writes nothing when it runs again, even before its lease keeper notices and ends
//! the process; the remaining window is the time between the check and the write reaching the
//! store, which the last quarter of the lease covers. Without high availability nothing is
//! fenced.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use crate::base::error::{Result, WeirError};

/// No fence: writes are always allowed.
const UNFENCED: u64 = u64::MAX;

/// The deadline of a leadership, in µs since the process's first use of it.
struct Fence {
    deadline_us: AtomicU64,
}

/// This process's leadership.
static LEADERSHIP: Fence = Fence::new();

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn micros(at: Instant) -> u64 {
    at.saturating_duration_since(epoch()).as_micros() as u64
}

impl Fence {
    const fn new() -> Fence {
        Fence { deadline_us: AtomicU64::new(UNFENCED) }
    }

    fn hold_until(&self, deadline: Instant) {
        self.deadline_us.store(micros(deadline).min(UNFENCED - 1), Ordering::Release);
    }

    fn revoke(&self) {
        self.deadline_us.store(0, Ordering::Release);
    }

    fn check(&self, what: &str) -> Result<()> {
        let deadline = self.deadline_us.load(Ordering::Acquire);
        if deadline == UNFENCED || micros(Instant::now()) < deadline {
            return Ok(());
        }
        Err(WeirError::runtime(format!(
            "not {what}: this JobManager's leadership lapsed (its lease was not renewed in time), so another may lead"
        )))
    }
}

/// This process leads until `deadline` (moved forward by each acknowledged keep-alive).
pub fn hold_until(deadline: Instant) {
    LEADERSHIP.hold_until(deadline);
}

/// This process no longer leads: every fenced write is refused from now on.
pub fn revoke() {
    LEADERSHIP.revoke();
}

/// Fails, naming `what`, if this process's leadership has lapsed.
pub fn check(what: &str) -> Result<()> {
    LEADERSHIP.check(what)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn writes_are_refused_once_the_leadership_lapsed_or_was_revoked() {
        let fence = Fence::new();
        fence.check("writing").unwrap();
        fence.hold_until(Instant::now() + Duration::from_secs(60));
        fence.check("writing").unwrap();
        fence.hold_until(Instant::now() - Duration::from_millis(1));
        let e = fence.check("writing the job store").unwrap_err().to_string();
        assert!(e.contains("not writing the job store") && e.contains("lapsed"), "{e}");
        fence.hold_until(Instant::now() + Duration::from_secs(60));
        fence.check("writing").unwrap();
        fence.revoke();
        assert!(fence.check("writing").is_err());
    }
}
