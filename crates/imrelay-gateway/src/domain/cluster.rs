//! What the dispatcher asks of a cluster-wide rate limiter, and what a store
//! that several instances share (PostgreSQL) provides. It lives here, below
//! both, so neither depends on the other.

use std::time::Duration;

use imrelay_sdk::Quota;

/// How long a request occupies a quota's window after it ends, in ms: the
/// window plus a margin. Shared limiters use the same rule.
pub fn window_ms(q: &Quota) -> i64 {
    let per = q.per.as_millis() as i64;
    // Margin for ms rounding and for the platform's clock ticking slightly
    // differently: 2 ms, or 0.5% of long windows.
    per + (per / 200).max(2)
}

/// Cluster-wide admission, for several gateway instances sending to the same
/// destination: each request is admitted here *as well as* by the instance's
/// own limiter, so the instances together stay within the platform's
/// quotas. `None` in the dispatcher's config (the default, and SQLite) means
/// the in-process limiter alone decides.
#[async_trait::async_trait]
pub trait SharedLimiter: Send + Sync {
    /// Admit one request to destination `key` now under `quotas`. A granted
    /// request counts as in flight until released, or at most `hold_max` (so a
    /// crashed instance's permits free themselves).
    async fn acquire(
        &self,
        key: &str,
        quotas: &[Quota],
        hold_max: Duration,
    ) -> Result<SharedAdmit, String>;

    /// The request ended (now); `blocked_for`: the platform said to wait that
    /// long before sending to this destination again.
    async fn release(&self, permit: SharedPermit, blocked_for: Option<Duration>);

    /// The request was admitted but never sent (another permit it needed was
    /// refused): forget it. By default it is released as if sent, which
    /// only ever waits longer than needed.
    async fn cancel(&self, permit: SharedPermit) {
        self.release(permit, None).await;
    }
}

/// The answer of [`SharedLimiter::acquire`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SharedAdmit {
    Granted(SharedPermit),
    /// Over quota: try again after this long.
    Wait(Duration),
}

/// A request admitted by a [`SharedLimiter`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedPermit {
    pub id: i64,
    pub key: String,
}
