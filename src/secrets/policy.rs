//! Whether plaintext is still read where a sealed value belongs (docs/reference.md
//! §2, "Secrets at rest"): it is until `jirasync secrets reencrypt` records in
//! `secrets_sealed` that every secret is sealed. Each process re-reads that record
//! at most every [`RECHECK`] (`db::sealed_columns::recheck`, called by the readers
//! of sealed columns), and once it has seen it, never forgets it.

use std::sync::LazyLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How often a process re-reads the record: a record written while workers run
/// takes effect in them within this long, and the webhook path pays one query
/// per process this often, not one per message.
pub const RECHECK: Duration = Duration::from_secs(60);

/// The process's clock origin for [`PlaintextPolicy::checked_ms`].
static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);

/// Milliseconds since [`EPOCH`], at least 1 (0 means "never checked").
fn now_ms() -> u64 {
    u64::try_from(EPOCH.elapsed().as_millis())
        .unwrap_or(u64::MAX)
        .max(1)
}

/// The record as this process last read it. Atomics, not a lock: every read of a
/// sealed column asks, the webhook path included.
#[derive(Debug, Default)]
pub(super) struct PlaintextPolicy {
    /// The record was seen: plaintext is refused.
    refused: AtomicBool,
    /// When the record was last read (ms since [`EPOCH`]); 0: never.
    checked_ms: AtomicU64,
}

impl PlaintextPolicy {
    /// Whether plaintext is refused.
    pub(super) fn refused(&self) -> bool {
        self.refused.load(Ordering::Acquire)
    }

    /// Whether the caller should read the record now: never read, or last read
    /// [`RECHECK`] ago. Of callers asking at once, one is told to.
    pub(super) fn due(&self) -> bool {
        let checked = self.checked_ms.load(Ordering::Acquire);
        let now = now_ms();
        let recheck = u64::try_from(RECHECK.as_millis()).unwrap_or(u64::MAX);
        if checked != 0 && now.saturating_sub(checked) < recheck {
            return false;
        }
        self.checked_ms
            .compare_exchange(checked, now, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// What the record said: `sealed` when it is there. A record once seen stays
    /// in force in this process even if the row goes away (a database writer who
    /// deletes it must not thereby get plaintext read again).
    pub(super) fn read(&self, sealed: bool) {
        if sealed {
            self.refused.store(true, Ordering::Release);
        } else if self.refused() {
            tracing::warn!(
                "the record that every secret is sealed (secrets_sealed) is gone; this process \
                 keeps refusing plaintext secrets; run `jirasync secrets reencrypt` to write it again"
            );
        }
    }

    /// Reading the record failed: the next reader tries again.
    pub(super) fn failed(&self) {
        self.checked_ms.store(0, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_record_is_read_once_per_interval_and_never_forgotten() {
        let policy = PlaintextPolicy::default();
        assert!(!policy.refused());
        assert!(policy.due(), "never read");
        assert!(!policy.due(), "just read");
        policy.read(true);
        assert!(policy.refused());
        policy.failed();
        assert!(policy.due(), "a failed read is tried again");
        policy.read(false);
        assert!(policy.refused(), "a record seen stays in force");
    }
}
