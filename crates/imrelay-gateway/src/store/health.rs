//! Whether the store can commit an accept right now, for `/readyz` and the
//! `imrelay_ready` gauge.
//!
//! Reads answering proves nothing about writes (a full disk still serves
//! reads), so health follows commits: a failed write marks the store
//! unhealthy, a committed accept or a successful probe (a one-row write
//! through the same path as accepts, bounded in time) marks it healthy
//! again. [`Health::ready`] probes only when that evidence is stale, so
//! frequent readiness checks cost no writes while accepts flow.

use std::future::Future;
use std::time::Duration;

use parking_lot::Mutex;
use serde::Serialize;
use tokio::time::Instant;

use super::*;

/// Whether accepts can commit now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoreHealth {
    pub ok: bool,
    /// Since when `ok` has had its value (store clock, ms since the epoch).
    pub since: i64,
    /// The last failure's kind (`disk_full`, `read_only`, `timeout`,
    /// `unavailable`, `io`, `busy`, `closed`, `internal`), never its text:
    /// the text may name the database user or a path.
    pub last_error_kind: Option<&'static str>,
}

impl StoreHealth {
    /// Healthy, as far as anyone knows (stores that do not track it).
    pub fn assumed() -> Self {
        StoreHealth {
            ok: true,
            since: 0,
            last_error_kind: None,
        }
    }
}

/// A healthy store is probed when nothing committed for this long.
const PROBE_WHEN_IDLE: Duration = Duration::from_secs(5);
/// An unhealthy store is probed at most this often.
const PROBE_WHEN_FAILING: Duration = Duration::from_secs(1);

/// The probe's write, the same text in both dialects.
pub(super) const PROBE: &str = "INSERT INTO store_probe (id, at) VALUES (1, $1)
     ON CONFLICT (id) DO UPDATE SET at = excluded.at";

/// Why a failed operation means the store cannot commit now; `None` for
/// errors that say nothing about that (a lost lease, a bad request, a
/// constraint).
pub fn fault_kind(e: &StoreError) -> Option<&'static str> {
    match e {
        StoreError::Database(e) | StoreError::Connect { source: e, .. } => sqlx_kind(e),
        StoreError::Internal(_) => Some("internal"),
        StoreError::Closed => Some("closed"),
        _ => None,
    }
}

fn sqlx_kind(e: &sqlx::Error) -> Option<&'static str> {
    use sqlx::Error as E;
    match e {
        E::PoolTimedOut => Some("timeout"),
        E::Io(_) | E::Tls(_) | E::PoolClosed | E::WorkerCrashed | E::Protocol(_) => {
            Some("unavailable")
        }
        E::Database(d) => {
            let code = d.code()?;
            if d.try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
                .is_some()
            {
                pg_kind(&code)
            } else {
                sqlite_kind(code.parse().ok()?)
            }
        }
        _ => None,
    }
}

/// SQLite (extended) result codes: the primary code is the low byte.
fn sqlite_kind(code: i32) -> Option<&'static str> {
    match code & 0xff {
        13 => Some("disk_full"),
        8 => Some("read_only"),
        // IOERR, CORRUPT, CANTOPEN, NOTADB
        10 | 11 | 14 | 26 => Some("io"),
        // BUSY, LOCKED
        5 | 6 => Some("busy"),
        _ => None,
    }
}

/// PostgreSQL SQLSTATE classes.
fn pg_kind(code: &str) -> Option<&'static str> {
    match code.get(..2)? {
        "53" if code == "53100" => Some("disk_full"),
        "53" => Some("resources"),
        "25" if code == "25006" => Some("read_only"),
        // Connection, operator intervention (shutdown), auth, no database.
        "08" | "57" | "28" | "3D" => Some("unavailable"),
        "58" | "XX" => Some("io"),
        _ => None,
    }
}

struct State {
    health: StoreHealth,
    /// Last evidence either way (a commit, a failure, a probe).
    checked: Option<Instant>,
    probed: Option<Instant>,
}

/// A store's health, shared by its implementations.
pub(super) struct Health {
    state: Mutex<State>,
    probing: tokio::sync::Mutex<()>,
}

impl Health {
    pub fn new(now: i64) -> Self {
        Health {
            state: Mutex::new(State {
                health: StoreHealth {
                    ok: true,
                    since: now,
                    last_error_kind: None,
                },
                checked: None,
                probed: None,
            }),
            probing: tokio::sync::Mutex::new(()),
        }
    }

    pub fn get(&self) -> StoreHealth {
        self.state.lock().health.clone()
    }

    /// An accept (or a probe) committed.
    pub fn committed(&self, now: i64) {
        let mut s = self.state.lock();
        s.checked = Some(Instant::now());
        if !s.health.ok {
            s.health.ok = true;
            s.health.since = now;
            tracing::info!("the store commits again");
        }
    }

    /// A write failed: unhealthy if the error says the store cannot commit.
    pub fn failed(&self, now: i64, e: &StoreError) {
        let Some(kind) = fault_kind(e) else {
            return;
        };
        let mut s = self.state.lock();
        s.checked = Some(Instant::now());
        s.health.last_error_kind = Some(kind);
        if s.health.ok {
            s.health.ok = false;
            s.health.since = now;
            // The detail goes to the log only (it may name the database user).
            tracing::warn!(error = %e, kind, "the store cannot commit; /readyz answers 503 until it can");
        }
    }

    /// [`Health::failed`] for a write's result.
    pub fn check<T>(&self, now: i64, r: &Result<T>) {
        if let Err(e) = r {
            self.failed(now, e);
        }
    }

    fn probe_due(&self) -> bool {
        let s = self.state.lock();
        if s.health.ok {
            s.checked.is_none_or(|c| c.elapsed() >= PROBE_WHEN_IDLE)
        } else {
            s.probed.is_none_or(|p| p.elapsed() >= PROBE_WHEN_FAILING)
        }
    }

    /// The health, after a probe when the evidence is stale. One probe at a
    /// time; it fails as a timeout after `limit`.
    pub async fn ready<F, Fut>(
        &self,
        now: impl Fn() -> i64,
        limit: Duration,
        probe: F,
    ) -> StoreHealth
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<()>>,
    {
        if !self.probe_due() {
            return self.get();
        }
        let _one = self.probing.lock().await;
        if !self.probe_due() {
            return self.get();
        }
        let r = tokio::time::timeout(limit, probe())
            .await
            .unwrap_or_else(|_| Err(StoreError::Database(Arc::new(sqlx::Error::PoolTimedOut))));
        self.state.lock().probed = Some(Instant::now());
        match &r {
            Ok(()) => self.committed(now()),
            Err(e) => self.failed(now(), e),
        }
        self.get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_of_faults() {
        let timeout = StoreError::from(sqlx::Error::PoolTimedOut);
        assert_eq!(fault_kind(&timeout), Some("timeout"));
        let io = StoreError::from(sqlx::Error::Io(std::io::Error::other("reset")));
        assert_eq!(fault_kind(&io), Some("unavailable"));
        assert_eq!(fault_kind(&StoreError::Closed), Some("closed"));
        assert_eq!(fault_kind(&StoreError::LeaseLost(DeliveryId::new(1))), None);
        assert_eq!(fault_kind(&StoreError::NotFound("x".into())), None);
        assert_eq!(sqlite_kind(13), Some("disk_full"));
        assert_eq!(sqlite_kind(8 | (5 << 8)), Some("read_only"));
        assert_eq!(sqlite_kind(10 | (3 << 8)), Some("io"));
        assert_eq!(sqlite_kind(2067), None, "a unique violation is no fault");
        assert_eq!(pg_kind("53100"), Some("disk_full"));
        assert_eq!(pg_kind("57P01"), Some("unavailable"));
        assert_eq!(pg_kind("23505"), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failure_holds_until_a_commit_or_a_probe_succeeds() {
        let h = Health::new(5);
        assert!(h.get().ok);
        h.failed(10, &StoreError::LeaseLost(DeliveryId::new(3)));
        assert!(h.get().ok, "not a store fault");
        h.failed(20, &StoreError::from(sqlx::Error::PoolTimedOut));
        let got = h.get();
        assert_eq!(
            (got.ok, got.since, got.last_error_kind),
            (false, 20, Some("timeout"))
        );
        // A failing probe keeps it down; probes are spaced.
        let probes = std::sync::atomic::AtomicU32::new(0);
        let failing = || async {
            probes.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Err(StoreError::Closed)
        };
        let got = h.ready(|| 30, Duration::from_secs(1), failing).await;
        assert!(!got.ok && got.last_error_kind == Some("closed"));
        let got = h.ready(|| 31, Duration::from_secs(1), failing).await;
        assert!(!got.ok);
        assert_eq!(probes.load(std::sync::atomic::Ordering::Relaxed), 1);
        // A probe that hangs is a timeout, bounded.
        tokio::time::advance(PROBE_WHEN_FAILING).await;
        let got = h
            .ready(|| 40, Duration::from_millis(300), std::future::pending)
            .await;
        assert_eq!((got.ok, got.last_error_kind), (false, Some("timeout")));
        tokio::time::advance(PROBE_WHEN_FAILING).await;
        let got = h
            .ready(|| 50, Duration::from_secs(1), || async { Ok(()) })
            .await;
        assert_eq!((got.ok, got.since), (true, 50));
        // Healthy with fresh evidence: no probe.
        h.committed(60);
        let got = h
            .ready(
                || 70,
                Duration::from_secs(1),
                || async { Err(StoreError::Closed) },
            )
            .await;
        assert!(got.ok);
        tokio::time::advance(PROBE_WHEN_IDLE).await;
        let got = h
            .ready(
                || 80,
                Duration::from_secs(1),
                || async { Err(StoreError::Closed) },
            )
            .await;
        assert!(!got.ok, "stale evidence is probed");
    }
}
