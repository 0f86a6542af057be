//! What several gateway instances on one PostgreSQL database share besides the
//! queue: platform rate limits ([`PgLimiter`]) and access tokens
//! ([`PgTokenCache`]), both on the store's own pool (see
//! [`crate::store::Store::shared_limiter`] and
//! [`crate::store::Store::shared_tokens`]).
//!
//! Both use the *database's* clock (`clock_timestamp()`), the one clock every
//! instance reads, so limits hold even when instance clocks drift apart.
//!
//! # Breakers and coalescing (deliberately per instance)
//! Circuit breakers stay in each process: a breaker reacts to what *this*
//! instance sees (its network path, its DNS), opening one needs no agreement,
//! and with N instances a broken destination costs at most N probes per
//! cool-down instead of one — cheap, and far simpler than a shared state
//! machine. Coalescing also stays per instance: a digest is built from
//! deliveries one instance has *claimed*, and claims are exclusive, so no
//! message can be merged twice or lost; with several instances a burst may
//! become up to N digests instead of one, which the shared rate limit still
//! keeps within the platform's quota.

use std::time::Duration;

use async_trait::async_trait;
use imrelay_sdk::http::HttpClient;
use imrelay_sdk::token::{refresh_margin, SharedToken, SharedTokenCache, TokenSource};
use imrelay_sdk::{Quota, Report, Secret};
use sqlx::postgres::PgPool;
use sqlx::Row;

use crate::domain::cluster::{window_ms, SharedAdmit, SharedLimiter, SharedPermit};

/// The database clock in ms since the epoch.
const DB_NOW: &str = "(extract(epoch from clock_timestamp()) * 1000)::bigint";

/// The shared rate limiter of the cluster: a row per key, locked while a
/// request is admitted, and a log of requests that may still occupy a
/// platform window. A key is a destination, or one recipient of a
/// destination ([`crate::dispatch::recipients::recipient_key`]: the
/// recipient hashed, so no phone number or user id is stored).
///
/// The same rule as the in-process [`crate::dispatch::limits::Limiter`]: a
/// request counts from its admission until one window (plus margin) after its
/// end, and in-flight requests count now; so no window at the platform, where
/// a request arrives somewhere between its start and its end, ever holds more
/// than the quota — whichever instances sent them.
///
/// Every window is lengthened by a safety margin ([`DEFAULT_MARGIN`] unless
/// set): the database clock is not the platform's, and a request reaches
/// the platform some latency after its admission here. A window overrun by
/// a few hundred ms costs a platform block of minutes (DingTalk 130101: 10
/// minutes), so a second of margin is cheap.
#[derive(Debug, Clone)]
pub struct PgLimiter {
    pool: PgPool,
    margin_ms: i64,
}

/// The safety margin added to every window unless
/// `[dispatch] cluster_rate_margin` says otherwise.
pub const DEFAULT_MARGIN: Duration = Duration::from_secs(1);

impl PgLimiter {
    pub fn new(pool: PgPool) -> Self {
        PgLimiter {
            pool,
            margin_ms: DEFAULT_MARGIN.as_millis() as i64,
        }
    }

    /// The same with `margin` added to every window.
    pub fn with_margin(mut self, margin: Duration) -> Self {
        self.margin_ms = margin.as_millis().min(i64::MAX as u128) as i64;
        self
    }
}

/// When a request may start again, given the ends (`held_until`) of requests
/// that may still count, ascending; `None` when it may start now. Each
/// quota's window is lengthened by `margin` ms.
fn wait_for(quotas: &[Quota], held: &[i64], now: i64, margin: i64) -> Option<i64> {
    let mut at = now;
    for q in quotas {
        let w = window_ms(q) + margin;
        let recent: Vec<i64> = held.iter().copied().filter(|&h| h >= now - w).collect();
        let used = recent.len() as u32;
        if used < q.count {
            continue;
        }
        // The (used - count + 1)-th oldest must leave the window. If it is
        // still in flight (held into the future) its end is unknown: look
        // again shortly.
        let h = recent[(used - q.count) as usize];
        let free = if h > now { now + 50 } else { h + w + 1 };
        at = at.max(free);
    }
    (at > now).then_some(at)
}

#[async_trait]
impl SharedLimiter for PgLimiter {
    async fn acquire(
        &self,
        key: &str,
        quotas: &[Quota],
        hold_max: Duration,
    ) -> Result<SharedAdmit, String> {
        let quotas: Vec<Quota> = quotas
            .iter()
            .filter(|q| q.count > 0 && !q.per.is_zero())
            .copied()
            .collect();
        let longest = quotas.iter().map(window_ms).max().unwrap_or(0) + self.margin_ms;
        let run = async {
            let mut tx = self.pool.begin().await?;
            sqlx::query("INSERT INTO rate_limits (destination) VALUES ($1) ON CONFLICT DO NOTHING")
                .bind(key)
                .execute(&mut *tx)
                .await?;
            // The row lock serialises admissions to one destination across
            // instances; the clock is read only once it is held.
            let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT blocked_until, {DB_NOW} AS now FROM rate_limits WHERE destination = $1 FOR UPDATE"
            )))
            .bind(key)
            .fetch_one(&mut *tx)
            .await?;
            let blocked: i64 = row.try_get("blocked_until")?;
            let now: i64 = row.try_get("now")?;
            if now < blocked {
                tx.rollback().await?;
                return Ok(SharedAdmit::Wait(Duration::from_millis(
                    (blocked - now) as u64,
                )));
            }
            let held: Vec<(i64,)> = sqlx::query_as(
                "SELECT held_until FROM rate_slots WHERE destination = $1 AND held_until >= $2
                 ORDER BY held_until",
            )
            .bind(key)
            .bind(now - longest)
            .fetch_all(&mut *tx)
            .await?;
            let held: Vec<i64> = held.into_iter().map(|(h,)| h).collect();
            if let Some(at) = wait_for(&quotas, &held, now, self.margin_ms) {
                tx.rollback().await?;
                return Ok(SharedAdmit::Wait(Duration::from_millis((at - now) as u64)));
            }
            sqlx::query("DELETE FROM rate_slots WHERE destination = $1 AND held_until < $2")
                .bind(key)
                .bind(now - longest)
                .execute(&mut *tx)
                .await?;
            let (id,): (i64,) = sqlx::query_as(
                "INSERT INTO rate_slots (destination, started_at, held_until) VALUES ($1, $2, $3) RETURNING id",
            )
            .bind(key)
            .bind(now)
            .bind(now + hold_max.as_millis() as i64)
            .fetch_one(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok::<_, sqlx::Error>(SharedAdmit::Granted(SharedPermit {
                id,
                key: key.to_string(),
            }))
        };
        run.await.map_err(|e| e.to_string())
    }

    async fn cancel(&self, permit: SharedPermit) {
        // A failed delete leaves the slot held until its `hold_max`: safe.
        let r = sqlx::query("DELETE FROM rate_slots WHERE id = $1")
            .bind(permit.id)
            .execute(&self.pool)
            .await;
        if let Err(e) = r {
            tracing::warn!(destination = %permit.key, error = %e, "could not give back an unused shared rate-limit slot; it frees itself later");
        }
    }

    async fn release(&self, permit: SharedPermit, blocked_for: Option<Duration>) {
        // A failed release leaves the slot held until its `hold_max`: safe.
        let r = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE rate_slots SET held_until = LEAST(held_until, {DB_NOW}) WHERE id = $1"
        )))
        .bind(permit.id)
        .execute(&self.pool)
        .await;
        if let Err(e) = r {
            tracing::warn!(destination = %permit.key, error = %e, "could not release a shared rate-limit slot; it frees itself later");
        }
        if let Some(b) = blocked_for {
            let r = sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE rate_limits SET blocked_until = GREATEST(blocked_until, {DB_NOW} + $2) WHERE destination = $1"
            )))
            .bind(&permit.key)
            .bind(b.as_millis() as i64)
            .execute(&self.pool)
            .await;
            if let Err(e) = r {
                tracing::warn!(destination = %permit.key, error = %e, "could not share a platform wait");
            }
        }
    }
}

/// The cluster's access-token cache: one row per credential. A refresh takes
/// a transaction-level advisory lock on the credential, so one instance
/// fetches while the others wait and then reuse its token; a rejected token
/// is deleted for all.
#[derive(Debug, Clone)]
pub struct PgTokenCache {
    pool: PgPool,
}

impl PgTokenCache {
    pub fn new(pool: PgPool) -> Self {
        PgTokenCache { pool }
    }
}

fn stored(row: &sqlx::postgres::PgRow) -> Result<Option<SharedToken>, sqlx::Error> {
    let now: i64 = row.try_get("now")?;
    let refresh_at: i64 = row.try_get("refresh_at")?;
    let expires_at: i64 = row.try_get("expires_at")?;
    if now >= refresh_at {
        return Ok(None);
    }
    Ok(Some(SharedToken {
        value: Secret::new(row.try_get::<String, _>("value")?),
        refresh_in: Duration::from_millis((refresh_at - now) as u64),
        expires_in: Duration::from_millis((expires_at - now).max(0) as u64),
        fetched_here: false,
    }))
}

fn db_error(e: sqlx::Error) -> Report {
    Report::new(
        imrelay_sdk::Outcome::Retry { after: None },
        format!("the shared token cache (PostgreSQL) failed: {e}"),
    )
}

#[async_trait]
impl SharedTokenCache for PgTokenCache {
    async fn get(
        &self,
        source: &dyn TokenSource,
        http: &HttpClient,
    ) -> Result<SharedToken, Report> {
        let key = source.cache_key();
        let select = format!(
            "SELECT value, refresh_at, expires_at, {DB_NOW} AS now FROM access_tokens WHERE cache_key = $1"
        );
        if let Some(row) = sqlx::query(sqlx::AssertSqlSafe(select.clone()))
            .bind(&key)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error)?
        {
            if let Some(t) = stored(&row).map_err(db_error)? {
                return Ok(t);
            }
        }
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('imrelay-token:' || current_schema() || ':' || $1, 0))")
            .bind(&key)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        // Whoever held the lock before us may have fetched already.
        if let Some(row) = sqlx::query(sqlx::AssertSqlSafe(select))
            .bind(&key)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_error)?
        {
            if let Some(t) = stored(&row).map_err(db_error)? {
                tx.commit().await.map_err(db_error)?;
                return Ok(t);
            }
        }
        // Fetch while holding the lock: the other instances wait for this one.
        let token = source.fetch(http).await?;
        let life = token.expires_in.as_millis() as i64;
        let margin = refresh_margin(token.expires_in).as_millis() as i64;
        let (now,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "INSERT INTO access_tokens (cache_key, value, fetched_at, refresh_at, expires_at)
             VALUES ($1, $2, {DB_NOW}, {DB_NOW} + $3, {DB_NOW} + $4)
             ON CONFLICT (cache_key) DO UPDATE SET value = EXCLUDED.value, fetched_at = EXCLUDED.fetched_at,
               refresh_at = EXCLUDED.refresh_at, expires_at = EXCLUDED.expires_at
             RETURNING fetched_at"
        )))
        .bind(&key)
        .bind(token.value.expose())
        .bind(life - margin)
        .bind(life)
        .fetch_one(&mut *tx)
        .await
        .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        let _ = now;
        tracing::info!(credential = %key, expires_in_s = token.expires_in.as_secs(), "access token fetched for the cluster");
        Ok(SharedToken {
            value: token.value,
            refresh_in: Duration::from_millis((life - margin).max(0) as u64),
            expires_in: token.expires_in,
            fetched_here: true,
        })
    }

    async fn expires_in(&self, key: &str) -> Result<Option<Duration>, Report> {
        let row: Option<(i64, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT expires_at, {DB_NOW} AS now FROM access_tokens WHERE cache_key = $1"
        )))
        .bind(key)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(row
            .filter(|(expires_at, now)| expires_at > now)
            .map(|(expires_at, now)| Duration::from_millis((expires_at - now) as u64)))
    }

    async fn invalidate(&self, key: &str, stale: &Secret) {
        let r = sqlx::query("DELETE FROM access_tokens WHERE cache_key = $1 AND value = $2")
            .bind(key)
            .bind(stale.expose())
            .execute(&self.pool)
            .await;
        if let Err(e) = r {
            tracing::warn!(credential = %key, error = %e, "could not drop a rejected token from the shared cache");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_follow_the_oldest_counted_request() {
        let q = [Quota {
            count: 2,
            per: Duration::from_millis(1_000),
        }];
        let w = window_ms(&q[0]);
        assert_eq!(wait_for(&q, &[], 0, 0), None);
        assert_eq!(wait_for(&q, &[100], 200, 0), None);
        // Two ended requests in the window: the older must leave it.
        assert_eq!(wait_for(&q, &[100, 150], 200, 0), Some(100 + w + 1));
        // One of the two still in flight (held into the future): look soon.
        assert_eq!(wait_for(&q, &[500, 40_000], 200, 0), Some(250));
        assert_eq!(wait_for(&q, &[100, 150], 100 + w + 1, 0), None);
    }

    #[test]
    fn the_margin_lengthens_every_window() {
        let q = [Quota {
            count: 20,
            per: Duration::from_secs(60),
        }];
        let ends: Vec<i64> = (0..20).collect();
        let w = window_ms(&q[0]);
        assert_eq!(wait_for(&q, &ends, 100, 1_000), Some(w + 1_000 + 1));
        assert_eq!(wait_for(&q, &ends, w + 1, 1_000), Some(w + 1_000 + 1));
        assert_eq!(wait_for(&q, &ends, w + 1_001, 1_000), None);
        assert!(w + 1_000 >= 61_000, "at least a second past the window");
    }
}
