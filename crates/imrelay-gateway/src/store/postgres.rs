//! The PostgreSQL store: any number of gateway instances share one database
//! (or one schema of it) with the guarantees of a single one.
//!
//! # How instances share the work
//! - **Claims** lock candidate rows with `FOR UPDATE SKIP LOCKED`, so two
//!   instances claiming at once take disjoint deliveries without waiting on
//!   each other. A claim is a lease: when an instance dies (SIGKILL, OOM, lost
//!   host), its claims become claimable again once `lease_until` passes.
//!   Unlike SQLite (one process per file), nothing is recovered at start: a
//!   claim of a live sibling must not be stolen, and only an expired lease
//!   proves its holder gone.
//! - **Fencing**: every change after a claim locks the row (`FOR UPDATE`) and
//!   checks the owner, so an instance that lost its lease cannot overwrite the
//!   new holder's result.
//! - **Idempotency keys** are a unique index; two instances accepting the same
//!   key race on it and the loser answers with the winner's id.
//! - **Wake-ups**: every commit that makes work due sends `NOTIFY` on a channel
//!   named after the schema, and each instance `LISTEN`s on it, so an idle
//!   cluster does not poll fast and a new message is claimed within
//!   milliseconds by whichever instance wakes first.
//!
//! Stored times come from each instance's clock (like SQLite); instances
//! must keep their clocks in sync (NTP) — the lease margin absorbs small skew.
//!
//! # URL
//! `postgres://user:password@host:5432/db`, optionally with `?schema=name`:
//! the schema is created if missing and holds all tables, so several clusters
//! (or test runs) can share one database. Other query parameters are sqlx's
//! (`sslmode`, `options[...]`, ...).

use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::future::BoxFuture;
use imrelay_sdk::clock::Clock;
use parking_lot::Mutex;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgListener, PgPool, PgPoolOptions, PgRow};
use sqlx::{ConnectOptions, Connection};
use tokio::sync::Notify;

use super::rows::{self, recipients_json};
use super::*;

pub mod cluster;

/// The embedded migrations.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Whether a store URL names PostgreSQL.
pub fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres:") || url.starts_with("postgresql:")
}

/// `url` with any password replaced by `***` (for Debug and logs).
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        Ok(_) => url.to_string(),
        Err(_) => "<unparsable URL>".to_string(),
    }
}

/// What is wrong with a `store.url`, if anything (for config checks: no
/// connection is made).
pub fn check_url(url: &str) -> Option<String> {
    if !is_postgres_url(url) {
        return Some("must be a postgres:// URL; for SQLite, set `store.path` instead".to_string());
    }
    PgTarget::parse(url).err().map(|e| {
        let text = e.to_string();
        match text.split_once("`store.url`: ") {
            Some((_, rest)) => rest.to_string(),
            None => text,
        }
    })
}

/// A parsed PostgreSQL store URL.
#[derive(Clone)]
pub struct PgTarget {
    /// Connection options, with `search_path` set to the schema when one was
    /// named.
    pub options: PgConnectOptions,
    /// The `schema=` parameter, if any.
    pub schema: Option<String>,
    /// `host:port/database`, for messages (never the password).
    pub display: String,
}

impl std::fmt::Debug for PgTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgTarget")
            .field("display", &self.display)
            .field("schema", &self.schema)
            .finish()
    }
}

impl PgTarget {
    /// Parse `postgres://...[?schema=name]`. Errors name `store.url` and never
    /// repeat the password.
    pub fn parse(url: &str) -> Result<Self> {
        let bad = |why: String| StoreError::Invalid(format!("`store.url`: {why}"));
        let mut u =
            url::Url::parse(url).map_err(|e| bad(format!("not a valid postgres:// URL ({e})")))?;
        let mut schema = None;
        let rest: Vec<(String, String)> = u
            .query_pairs()
            .filter_map(|(k, v)| {
                if k == "schema" {
                    schema = Some(v.into_owned());
                    None
                } else {
                    Some((k.into_owned(), v.into_owned()))
                }
            })
            .collect();
        if rest.is_empty() {
            u.set_query(None);
        } else {
            u.query_pairs_mut().clear().extend_pairs(rest);
        }
        if let Some(s) = &schema {
            let ok = !s.is_empty()
                && s.len() <= 48
                && s.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
                && s.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
            if !ok {
                return Err(bad(format!(
                    "schema `{s}` must be 1-48 characters of a-z, 0-9 and _, starting with a letter or _"
                )));
            }
        }
        let display = format!(
            "{}:{}{}",
            u.host_str().unwrap_or("localhost"),
            u.port().unwrap_or(5432),
            u.path()
        );
        let mut options = PgConnectOptions::from_str(u.as_str())
            .map_err(|e| bad(format!("cannot use the URL for {display}: {e}")))?
            .application_name("imrelay");
        if let Some(s) = &schema {
            options = options.options([("search_path", s.as_str())]);
        }
        Ok(PgTarget {
            options,
            schema,
            display,
        })
    }

    /// The `LISTEN`/`NOTIFY` channel of this schema's queue.
    pub fn wake_channel(&self) -> String {
        format!(
            "imrelay_wake_{}",
            self.schema.as_deref().unwrap_or("default")
        )
    }

    /// Check the server answers; create the schema if named and missing
    /// (several instances may race).
    async fn ensure_schema(&self) -> Result<()> {
        let mut base = self.options.clone();
        // Connect without our search_path: the schema may not exist yet. This
        // first connection also fails fast (the pool would retry for seconds)
        // when the server is down.
        base = base.options([("search_path", "public")]);
        let mut c = base.connect().await.map_err(|e| self.connect_error(e))?;
        let Some(s) = &self.schema else {
            let _ = c.close().await;
            return Ok(());
        };
        let exists: Option<(i32,)> =
            sqlx::query_as("SELECT 1 FROM pg_namespace WHERE nspname = $1")
                .bind(s)
                .fetch_optional(&mut c)
                .await?;
        if exists.is_some() {
            let _ = c.close().await;
            return Ok(());
        }
        // `s` is validated to [a-z0-9_], so quoting is enough.
        let r = sqlx::query(sqlx::AssertSqlSafe(format!(
            "CREATE SCHEMA IF NOT EXISTS \"{s}\""
        )))
        .execute(&mut c)
        .await;
        if let Err(e) = r {
            // A sibling created it at the same moment: fine.
            let dup = e
                .as_database_error()
                .and_then(|d| d.code())
                .is_some_and(|c| c == "23505" || c == "42P06");
            if !dup {
                return Err(e.into());
            }
        }
        let _ = c.close().await;
        Ok(())
    }

    fn connect_error(&self, e: sqlx::Error) -> StoreError {
        StoreError::Database(format!(
            "cannot connect to PostgreSQL at {} (`store.url`): {e}; is the server running and the URL right?",
            self.display
        ))
    }

    /// A pool on this target (lazy: connects on first use).
    pub fn lazy_pool(&self, max: u32) -> PgPool {
        PgPoolOptions::new()
            .max_connections(max)
            .acquire_timeout(Duration::from_secs(10))
            // No maintenance tasks, so this works outside a runtime too.
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_lazy_with(self.options.clone())
    }
}

/// The PostgreSQL [`Store`].
pub struct PgStore {
    pool: PgPool,
    notify: Arc<Notify>,
    clock: Arc<dyn Clock>,
    target: PgTarget,
    channel: String,
    listener: Mutex<Option<tokio::task::JoinHandle<()>>>,
    closed: AtomicBool,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("target", &self.target)
            .finish()
    }
}

impl PgStore {
    /// Connect, create the schema if named, run migrations (sqlx serialises
    /// concurrent migrators with an advisory lock), and start listening for
    /// wake-ups. Claims held by other instances are left alone.
    pub async fn open(options: StoreOptions) -> Result<Self> {
        let target = PgTarget::parse(&options.url)?;
        target.ensure_schema().await?;
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(target.options.clone())
            .await
            .map_err(|e| target.connect_error(e))?;
        MIGRATOR.run(&pool).await?;
        let notify = Arc::new(Notify::new());
        let channel = target.wake_channel();
        let mut listener = PgListener::connect_with(&pool)
            .await
            .map_err(|e| target.connect_error(e))?;
        listener.listen(&channel).await?;
        let n = notify.clone();
        let listener = tokio::spawn(async move {
            loop {
                match listener.try_recv().await {
                    Ok(Some(_)) => n.notify_one(),
                    // The connection dropped and was re-established: a
                    // notification may have been missed, so look now.
                    Ok(None) => n.notify_one(),
                    Err(e) => {
                        tracing::warn!(error = %e, "PostgreSQL LISTEN connection failed; reconnecting");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                }
            }
        });
        Ok(PgStore {
            pool,
            notify,
            clock: options.clock,
            target,
            channel,
            listener: Mutex::new(Some(listener)),
            closed: AtomicBool::new(false),
        })
    }

    /// The connection pool (shared with the cluster rate limiter and token
    /// cache).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The parsed URL.
    pub fn target(&self) -> &PgTarget {
        &self.target
    }

    fn check_open(&self) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            Err(StoreError::Closed)
        } else {
            Ok(())
        }
    }

    /// Run `f` in one transaction; commit when it succeeds, roll back when it
    /// fails. `wake` sends a cluster-wide notification with the commit.
    async fn tx<T, F>(&self, wake: bool, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut PgConnection) -> BoxFuture<'c, Result<(T, bool)>> + Send,
    {
        self.check_open()?;
        let mut tx = self.pool.begin().await?;
        match f(&mut tx).await {
            Ok((v, woke)) => {
                if wake || woke {
                    sqlx::query("SELECT pg_notify($1, '')")
                        .bind(&self.channel)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                if wake || woke {
                    self.notify.notify_one();
                }
                Ok(v)
            }
            Err(e) => {
                let _ = tx.rollback().await;
                Err(e)
            }
        }
    }
}

impl PgStore {
    /// Messages without idempotency keys, each with a target, in one
    /// statement (so one round trip, atomic on its own): the messages, their
    /// deliveries in order, and the wake-up of the other instances. One
    /// statement per row made batches cost a round trip per row.
    async fn enqueue_plain(&self, msgs: &[NewMessage], now: i64) -> Result<Vec<EnqueueOutcome>> {
        self.check_open()?;
        let n = msgs.len();
        let (mut ids, mut channels, mut kinds, mut bodies) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        let (mut traces, mut origins) = (Vec::with_capacity(n), Vec::with_capacity(n));
        let (mut d_ids, mut d_targets) = (Vec::new(), Vec::new());
        // A repeated id: only its first occurrence may be inserted (as one by
        // one), so only its deliveries are listed.
        let mut first = std::collections::HashSet::new();
        for m in msgs {
            let body = serde_json::to_string(&m.message)
                .map_err(|e| StoreError::Invalid(format!("message: {e}")))?;
            ids.push(m.id.clone());
            channels.push(m.channel.clone());
            kinds.push(m.kind.as_str());
            bodies.push(body);
            traces.push(m.trace_id.clone());
            origins.push(m.origin.clone());
            if first.insert(m.id.as_str()) {
                for t in &m.targets {
                    d_ids.push(m.id.clone());
                    d_targets.push(t.clone());
                }
            }
        }
        let inserted: Vec<(String,)> = sqlx::query_as(
            "WITH input AS (
               SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[])
                 WITH ORDINALITY AS t(id, channel, kind, body, trace_id, origin, ord)),
             ins AS (
               INSERT INTO messages (id, channel, kind, body, trace_id, origin, created_at)
               SELECT id, channel, kind, body, trace_id, origin, $7 FROM input ORDER BY ord
               ON CONFLICT DO NOTHING RETURNING id),
             dl AS (
               INSERT INTO deliveries (message_id, target, state, due_at, created_at, updated_at)
               SELECT d.mid, d.target, 'pending', $7, $7, $7
               FROM UNNEST($8::text[], $9::text[]) WITH ORDINALITY AS d(mid, target, ord)
               WHERE d.mid IN (SELECT id FROM ins) ORDER BY d.ord)
             SELECT ins.id FROM ins CROSS JOIN (SELECT pg_notify($10, '')) AS wake",
        )
        .bind(&ids)
        .bind(&channels)
        .bind(&kinds)
        .bind(&bodies)
        .bind(&traces)
        .bind(&origins)
        .bind(now)
        .bind(&d_ids)
        .bind(&d_targets)
        .bind(&self.channel)
        .fetch_all(&self.pool)
        .await?;
        let mut inserted: std::collections::HashSet<String> =
            inserted.into_iter().map(|(i,)| i).collect();
        if !inserted.is_empty() {
            self.notify.notify_one();
        }
        Ok(bulk_outcomes(msgs, &mut inserted))
    }
}

// ---- helpers -------------------------------------------------------------

/// Insert a message and its deliveries; `false` (nothing written) when its id
/// or idempotency key exists already.
async fn insert_message(c: &mut PgConnection, m: &NewMessage, now: i64) -> Result<bool> {
    let body = serde_json::to_string(&m.message)
        .map_err(|e| StoreError::Invalid(format!("message: {e}")))?;
    let (scope, key, hash) = match &m.idempotency {
        Some(i) => (
            Some(i.scope.as_str()),
            Some(i.key.as_str()),
            Some(i.body_hash.as_str()),
        ),
        None => (None, None, None),
    };
    let inserted = sqlx::query(
        "INSERT INTO messages (id, channel, kind, body, trace_id, origin, idem_scope, idem_key, body_hash, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT DO NOTHING",
    )
    .bind(&m.id)
    .bind(&m.channel)
    .bind(m.kind.as_str())
    .bind(body)
    .bind(&m.trace_id)
    .bind(&m.origin)
    .bind(scope)
    .bind(key)
    .bind(hash)
    .bind(now)
    .execute(&mut *c)
    .await?
    .rows_affected();
    if inserted == 0 {
        return Ok(false);
    }
    for t in &m.targets {
        sqlx::query(
            "INSERT INTO deliveries (message_id, target, state, due_at, created_at, updated_at)
             VALUES ($1, $2, 'pending', $3, $3, $3)",
        )
        .bind(&m.id)
        .bind(t)
        .bind(now)
        .execute(&mut *c)
        .await?;
    }
    Ok(true)
}

async fn insert_new(c: &mut PgConnection, m: &NewMessage, now: i64) -> Result<()> {
    if insert_message(c, m, now).await? {
        Ok(())
    } else {
        Err(StoreError::Invalid(format!(
            "message id `{}` already exists",
            m.id
        )))
    }
}

async fn existing_by_key(c: &mut PgConnection, i: &Idempotency) -> Result<Option<EnqueueOutcome>> {
    let row =
        sqlx::query("SELECT id, body_hash FROM messages WHERE idem_scope = $1 AND idem_key = $2")
            .bind(&i.scope)
            .bind(&i.key)
            .fetch_optional(&mut *c)
            .await?;
    row.map(|row| rows::existing_outcome(&row, &i.body_hash))
        .transpose()
}

async fn enqueue_one(c: &mut PgConnection, m: &NewMessage, now: i64) -> Result<EnqueueOutcome> {
    if let Some(i) = &m.idempotency {
        if let Some(o) = existing_by_key(c, i).await? {
            return Ok(o);
        }
    }
    if m.targets.is_empty() {
        return Ok(EnqueueOutcome::Rejected {
            reason: format!("channel `{}` has no destination", m.channel),
        });
    }
    if !insert_message(c, m, now).await? {
        // Another instance (or transaction) committed the same key between our
        // look-up and our insert: the insert waited for it, then did nothing.
        if let Some(i) = &m.idempotency {
            if let Some(o) = existing_by_key(c, i).await? {
                return Ok(o);
            }
        }
        return Ok(EnqueueOutcome::Rejected {
            reason: format!("message id `{}` already exists", m.id),
        });
    }
    Ok(EnqueueOutcome::Created { id: m.id.clone() })
}

async fn insert_attempts(
    c: &mut PgConnection,
    delivery: DeliveryId,
    attempts: &[AttemptRecord],
) -> Result<()> {
    for a in attempts {
        sqlx::query(
            "INSERT INTO attempts (delivery_id, started_at, finished_at, destination, part, outcome, counted, status, code, message)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(delivery)
        .bind(a.started_at)
        .bind(a.finished_at)
        .bind(&a.destination)
        .bind(a.part as i64)
        .bind(&a.outcome)
        .bind(a.counted)
        .bind(a.status.map(i64::from))
        .bind(&a.code)
        .bind(&a.message)
        .execute(&mut *c)
        .await?;
    }
    Ok(())
}

/// Lock `delivery` and check that `owner` holds it; returns its message id and
/// target.
async fn fence(
    c: &mut PgConnection,
    delivery: DeliveryId,
    owner: &str,
) -> Result<(String, String)> {
    let row = sqlx::query(
        "SELECT state, lease_owner, message_id, target FROM deliveries WHERE id = $1 FOR UPDATE",
    )
    .bind(delivery)
    .fetch_optional(&mut *c)
    .await?;
    rows::fenced(row.as_ref(), delivery, owner)
}

/// End a claim; returns whether new work became due (children, fallback).
async fn finish_op(
    c: &mut PgConnection,
    delivery: DeliveryId,
    owner: &str,
    f: Finish,
    now: i64,
) -> Result<bool> {
    let (message_id, target) = fence(c, delivery, owner).await?;
    insert_attempts(c, delivery, &f.attempts).await?;
    let last = f.attempts.last().map(|a| a.outcome.clone());
    let parts = f.parts_done as i64;
    let q = |sql: &'static str| sqlx::query(sql);
    let mut wakes = false;
    match f.action {
        FinishAction::Done => {
            q("UPDATE deliveries SET state = 'done', parts_done = $2, lease_owner = NULL, lease_until = NULL,
               last_outcome = COALESCE($3, last_outcome), updated_at = $4 WHERE id = $1")
            .bind(delivery)
            .bind(parts)
            .bind(&last)
            .bind(now)
            .execute(&mut *c)
            .await?;
            q("UPDATE deliveries SET state = 'done', updated_at = $2 WHERE merged_into = $1 AND state = 'merged'")
                .bind(delivery)
                .bind(now)
                .execute(&mut *c)
                .await?;
        }
        FinishAction::Retry { at } => {
            q("UPDATE deliveries SET state = 'pending', attempts = attempts + 1, due_at = $2, parts_done = $3,
               lease_owner = NULL, lease_until = NULL, last_outcome = COALESCE($4, last_outcome), updated_at = $5
               WHERE id = $1")
            .bind(delivery)
            .bind(at)
            .bind(parts)
            .bind(&last)
            .bind(now)
            .execute(&mut *c)
            .await?;
        }
        FinishAction::Requeue { at } => {
            q(
                "UPDATE deliveries SET state = 'pending', due_at = $2, parts_done = $3,
               lease_owner = NULL, lease_until = NULL, updated_at = $4 WHERE id = $1",
            )
            .bind(delivery)
            .bind(at)
            .bind(parts)
            .bind(now)
            .execute(&mut *c)
            .await?;
        }
        FinishAction::Dead { reason, fallback } => {
            let counted = f.attempts.iter().filter(|a| a.counted).count().min(1) as i64;
            q("UPDATE deliveries SET state = 'dead', attempts = attempts + $2, parts_done = $3, dead_code = $4,
               dead_reason = $5, dead_at = $6, lease_owner = NULL, lease_until = NULL,
               last_outcome = COALESCE($7, last_outcome), updated_at = $6 WHERE id = $1")
            .bind(delivery)
            .bind(counted)
            .bind(parts)
            .bind(&reason.code)
            .bind(&reason.reason)
            .bind(now)
            .bind(&last)
            .execute(&mut *c)
            .await?;
            q("UPDATE deliveries SET state = 'dead', dead_code = $2, dead_reason = $3, dead_at = $4, updated_at = $4
               WHERE merged_into = $1 AND state = 'merged'")
            .bind(delivery)
            .bind(&reason.code)
            .bind(format!(
                "the digest {message_id} it was merged into was dead-lettered: {}",
                reason.reason
            ))
            .bind(now)
            .execute(&mut *c)
            .await?;
            if let Some(fb) = fallback {
                insert_new(c, &fb, now).await?;
                wakes = true;
            }
        }
        FinishAction::Split { children } => {
            q("UPDATE deliveries SET state = 'done', parts_done = $2, lease_owner = NULL, lease_until = NULL,
               last_outcome = COALESCE($3, last_outcome), updated_at = $4 WHERE id = $1")
            .bind(delivery)
            .bind(parts)
            .bind(&last)
            .bind(now)
            .execute(&mut *c)
            .await?;
            for ch in children {
                let (state, due, attempts, code, reason, dead_at) = match ch.state {
                    ChildState::Pending { due_at } => ("pending", due_at, 0i64, None, None, None),
                    ChildState::Retry { due_at } => ("pending", due_at, 1, None, None, None),
                    ChildState::Dead(r) => ("dead", now, 1, r.code, Some(r.reason), Some(now)),
                };
                q("INSERT INTO deliveries (message_id, target, recipients, state, attempts, parts_done, due_at,
                   last_outcome, dead_code, dead_reason, dead_at, created_at, updated_at)
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12)")
                .bind(&message_id)
                .bind(&target)
                .bind(recipients_json(&ch.recipients))
                .bind(state)
                .bind(attempts)
                .bind(ch.parts_done as i64)
                .bind(due)
                .bind(&last)
                .bind(code)
                .bind(reason)
                .bind(dead_at)
                .bind(now)
                .execute(&mut *c)
                .await?;
            }
            wakes = true;
        }
    }
    Ok(wakes)
}

const DEAD_COLS: &str =
    "d.id, d.message_id, m.channel, d.target, d.recipients, d.dead_code, d.dead_reason,
    d.attempts, m.created_at, d.dead_at, m.body";

/// Dead letters matching `f`: the full rows for a page, or only ids (every
/// match) for replay and purge.
async fn dead_rows(c: &mut PgConnection, f: &DeadFilter, page: bool) -> Result<Vec<PgRow>> {
    let cols = if page { DEAD_COLS } else { "d.id" };
    let sql = format!(
        "SELECT {cols} FROM deliveries d JOIN messages m ON m.id = d.message_id
         WHERE d.state = 'dead' AND ($1::text IS NULL OR m.channel = $1) AND ($2::text IS NULL OR d.dead_code = $2)
           AND ($3::text IS NULL OR d.message_id = $3) AND ($4::bigint IS NULL OR d.dead_at >= $4)
           AND ($5::bigint IS NULL OR d.dead_at < $5) AND d.id > $6 ORDER BY d.id LIMIT $7"
    );
    let (after, limit) = if page {
        (
            f.after.unwrap_or(0),
            Some(if f.limit == 0 { 100 } else { f.limit as i64 }),
        )
    } else {
        (0, None)
    };
    // Only our constant column lists are spliced in; values are bound.
    Ok(sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(f.channel.clone())
        .bind(f.code.clone())
        .bind(f.message_id.clone())
        .bind(f.since)
        .bind(f.until)
        .bind(after)
        .bind(limit)
        .fetch_all(&mut *c)
        .await?)
}

async fn select_dead_ids(c: &mut PgConnection, sel: &DeadSelector) -> Result<Vec<DeliveryId>> {
    let rows = match sel {
        DeadSelector::Ids(ids) => {
            sqlx::query(
                "SELECT id FROM deliveries WHERE state = 'dead' AND id = ANY($1) ORDER BY id",
            )
            .bind(ids.clone())
            .fetch_all(&mut *c)
            .await?
        }
        DeadSelector::Filter(f) => dead_rows(c, f, false).await?,
    };
    rows::ids(&rows)
}

#[async_trait]
impl Store for PgStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    fn notifier(&self) -> Arc<Notify> {
        self.notify.clone()
    }

    async fn enqueue(&self, msgs: Vec<NewMessage>) -> Result<Vec<EnqueueOutcome>> {
        let now = self.now_ms();
        if msgs.iter().all(NewMessage::is_plain) {
            return self.enqueue_plain(&msgs, now).await;
        }
        self.tx(false, move |c| {
            Box::pin(async move {
                let mut out = Vec::with_capacity(msgs.len());
                for m in &msgs {
                    out.push(enqueue_one(c, m, now).await?);
                }
                let created = out
                    .iter()
                    .any(|o| matches!(o, EnqueueOutcome::Created { .. }));
                Ok((out, created))
            })
        })
        .await
    }

    async fn get_message(&self, id: &str) -> Result<Option<MessageView>> {
        self.check_open()?;
        // One snapshot for the message, its deliveries and attempts.
        let mut tx = self.pool.begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .execute(&mut *tx)
            .await?;
        let Some(m) = sqlx::query(
            "SELECT id, channel, kind, body, trace_id, origin, created_at FROM messages WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?
        else {
            return Ok(None);
        };
        let rows = sqlx::query(
            "SELECT d.id, d.target, d.state, d.recipients, d.attempts, d.parts_done, d.due_at, d.created_at,
               d.updated_at, d.dead_code, d.dead_reason, g.message_id AS merged_into
             FROM deliveries d LEFT JOIN deliveries g ON g.id = d.merged_into
             WHERE d.message_id = $1 ORDER BY d.id",
        )
        .bind(id)
        .fetch_all(&mut *tx)
        .await?;
        let attempts = sqlx::query(
            "SELECT a.delivery_id, a.started_at, a.finished_at, a.destination, a.part, a.outcome, a.counted, a.status,
               a.code, a.message FROM attempts a JOIN deliveries d ON d.id = a.delivery_id
             WHERE d.message_id = $1 ORDER BY a.id",
        )
        .bind(id)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        rows::message_view(&m, &rows, &attempts).map(Some)
    }

    async fn backlog(&self, cap: u64) -> Result<Vec<TargetBacklog>> {
        self.check_open()?;
        let now = self.now_ms();
        // A loose index scan over `deliveries_queue (state, target, due_at)`:
        // one index seek per distinct target, then counts that stop at `cap`.
        // Expired claims are few (bounded by what was in flight).
        let rows = sqlx::query(
            "WITH RECURSIVE t(target) AS (
               SELECT (SELECT MIN(target) FROM deliveries WHERE state = 'pending')
               UNION ALL
               SELECT (SELECT MIN(target) FROM deliveries WHERE state = 'pending' AND target > t.target)
               FROM t WHERE t.target IS NOT NULL)
             SELECT target,
               (SELECT COUNT(*) FROM (SELECT 1 FROM deliveries
                  WHERE state = 'pending' AND target = t.target LIMIT $2) p)::bigint AS pending,
               (SELECT COUNT(*) FROM (SELECT 1 FROM deliveries
                  WHERE state = 'pending' AND target = t.target AND due_at <= $1 LIMIT $2) d)::bigint AS due,
               (SELECT MIN(due_at) FROM deliveries WHERE state = 'pending' AND target = t.target) AS next_due_at
             FROM t WHERE target IS NOT NULL
             UNION ALL
             SELECT target, COUNT(*)::bigint, COUNT(*)::bigint, $1::bigint FROM deliveries
             WHERE state = 'claimed' AND lease_until <= $1 GROUP BY target",
        )
        .bind(now)
        .bind(cap.min(i64::MAX as u64) as i64)
        .fetch_all(&self.pool)
        .await?;
        let rows = rows.iter().map(rows::backlog).collect::<Result<Vec<_>>>()?;
        Ok(merge_backlog(rows))
    }

    async fn claim(&self, req: ClaimRequest) -> Result<Vec<Claimed>> {
        let now = self.now_ms();
        let lease_until = now + req.lease.as_millis() as i64;
        self.tx(false, move |c| {
            Box::pin(async move {
                // SKIP LOCKED: rows another instance is claiming right now are
                // passed over, not waited for; an expired lease is claimable.
                // A claimed row was due when claimed, so every claimable row
                // has `due_at <= now`: with a target that bounds the scan of
                // `deliveries_open (target, due_at, id)` to due rows, in order.
                let sql = if req.target.is_some() {
                    "UPDATE deliveries SET state = 'claimed', lease_owner = $1, lease_until = $2, updated_at = $3
                     WHERE id IN (SELECT id FROM deliveries WHERE target = $4 AND due_at <= $3
                       AND state IN ('pending', 'claimed') AND (state = 'pending' OR lease_until <= $3)
                       ORDER BY due_at, id LIMIT $5 FOR UPDATE SKIP LOCKED)
                     RETURNING id"
                } else {
                    "UPDATE deliveries SET state = 'claimed', lease_owner = $1, lease_until = $2, updated_at = $3
                     WHERE id IN (SELECT id FROM deliveries WHERE ($4::text IS NULL) AND
                       ((state = 'pending' AND due_at <= $3) OR (state = 'claimed' AND lease_until <= $3))
                       ORDER BY due_at, id LIMIT $5 FOR UPDATE SKIP LOCKED)
                     RETURNING id"
                };
                let ids: Vec<(i64,)> = sqlx::query_as(sql)
                .bind(&req.owner)
                .bind(lease_until)
                .bind(now)
                .bind(&req.target)
                .bind(req.limit as i64)
                .fetch_all(&mut *c)
                .await?;
                if ids.is_empty() {
                    return Ok((Vec::new(), false));
                }
                let ids: Vec<i64> = ids.into_iter().map(|(i,)| i).collect();
                let rows = sqlx::query(
                    "SELECT d.id, d.message_id, m.channel, d.target, m.kind, m.body, d.recipients, d.attempts,
                       d.parts_done, m.created_at, d.last_outcome, m.trace_id, d.lease_until
                     FROM deliveries d JOIN messages m ON m.id = d.message_id
                     WHERE d.id = ANY($1) ORDER BY d.due_at, d.id",
                )
                .bind(ids)
                .fetch_all(&mut *c)
                .await?;
                let out = rows.iter().map(rows::claimed).collect::<Result<Vec<_>>>()?;
                Ok((out, false))
            })
        })
        .await
    }

    async fn progress(
        &self,
        delivery: DeliveryId,
        owner: &str,
        attempts: Vec<AttemptRecord>,
        parts_done: u32,
        lease_until: i64,
    ) -> Result<()> {
        let owner = owner.to_string();
        let now = self.now_ms();
        self.tx(false, move |c| {
            Box::pin(async move {
                fence(c, delivery, &owner).await?;
                insert_attempts(c, delivery, &attempts).await?;
                let last = attempts.last().map(|a| a.outcome.clone());
                let counted = attempts.iter().filter(|a| a.counted).count() as i64;
                sqlx::query(
                    "UPDATE deliveries SET parts_done = $2, lease_until = $3, last_outcome = COALESCE($4, last_outcome),
                     updated_at = $5, attempts = attempts + $6 WHERE id = $1",
                )
                .bind(delivery)
                .bind(parts_done as i64)
                .bind(lease_until)
                .bind(last)
                .bind(now)
                .bind(counted)
                .execute(&mut *c)
                .await?;
                Ok(((), false))
            })
        })
        .await
    }

    async fn extend_leases(
        &self,
        owner: &str,
        deliveries: Vec<DeliveryId>,
        lease_until: i64,
    ) -> Result<u64> {
        if deliveries.is_empty() {
            return Ok(0);
        }
        let owner = owner.to_string();
        self.tx(false, move |c| {
            Box::pin(async move {
                let n = sqlx::query(
                    "UPDATE deliveries SET lease_until = $2
                     WHERE state = 'claimed' AND lease_owner = $1 AND lease_until < $2 AND id = ANY($3)",
                )
                .bind(owner)
                .bind(lease_until)
                .bind(deliveries)
                .execute(&mut *c)
                .await?
                .rows_affected();
                Ok((n, false))
            })
        })
        .await
    }

    async fn finish(&self, delivery: DeliveryId, owner: &str, finish: Finish) -> Result<()> {
        let owner = owner.to_string();
        let now = self.now_ms();
        self.tx(false, move |c| {
            Box::pin(async move {
                let wakes = finish_op(c, delivery, &owner, finish, now).await?;
                Ok(((), wakes))
            })
        })
        .await
    }

    async fn coalesce(
        &self,
        owner: &str,
        members: Vec<DeliveryId>,
        digest: NewMessage,
    ) -> Result<MessageId> {
        if digest.targets.len() != 1 {
            return Err(StoreError::Invalid(
                "a digest needs exactly one target".into(),
            ));
        }
        if members.is_empty() {
            return Err(StoreError::Invalid("a digest needs members".into()));
        }
        let owner = owner.to_string();
        let now = self.now_ms();
        self.tx(true, move |c| {
            Box::pin(async move {
                for m in &members {
                    let (_, target) = fence(c, *m, &owner).await?;
                    if target != digest.targets[0] {
                        return Err(StoreError::Invalid(format!(
                            "delivery {m} goes to `{target}`, not the digest's target"
                        )));
                    }
                }
                insert_new(c, &digest, now).await?;
                let (did,): (i64,) =
                    sqlx::query_as("SELECT id FROM deliveries WHERE message_id = $1")
                        .bind(&digest.id)
                        .fetch_one(&mut *c)
                        .await?;
                sqlx::query(
                    "UPDATE deliveries SET state = 'merged', merged_into = $1, lease_owner = NULL, lease_until = NULL,
                     updated_at = $2 WHERE id = ANY($3)",
                )
                .bind(did)
                .bind(now)
                .bind(members)
                .execute(&mut *c)
                .await?;
                Ok((digest.id.clone(), true))
            })
        })
        .await
    }

    async fn overdue(
        &self,
        channel: &str,
        created_before: i64,
        limit: u32,
    ) -> Result<Vec<Overdue>> {
        self.check_open()?;
        let rows = sqlx::query(
            "SELECT d.id, d.message_id, m.channel, d.target, m.created_at FROM deliveries d
             JOIN messages m ON m.id = d.message_id
             WHERE d.state IN ('pending', 'claimed') AND NOT d.fell_back AND m.kind <> 'fallback'
               AND m.created_at < $1 AND m.channel = $3 ORDER BY m.created_at, d.id LIMIT $2",
        )
        .bind(created_before)
        .bind(limit as i64)
        .bind(channel)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(rows::overdue).collect()
    }

    async fn fall_back(&self, delivery: DeliveryId, fallback: NewMessage) -> Result<bool> {
        let now = self.now_ms();
        self.tx(false, move |c| {
            Box::pin(async move {
                // Two instances scanning at once: the row update decides which
                // one enqueues the copy.
                let n = sqlx::query(
                    "UPDATE deliveries SET fell_back = TRUE, updated_at = $2
                     WHERE id = $1 AND NOT fell_back AND state IN ('pending', 'claimed')",
                )
                .bind(delivery)
                .bind(now)
                .execute(&mut *c)
                .await?
                .rows_affected();
                if n == 0 {
                    return Ok((false, false));
                }
                insert_new(c, &fallback, now).await?;
                Ok((true, true))
            })
        })
        .await
    }

    async fn list_dead(&self, filter: &DeadFilter) -> Result<Vec<DeadEntry>> {
        self.check_open()?;
        let mut c = self.pool.acquire().await?;
        let rows = dead_rows(&mut c, filter, true).await?;
        rows.iter().map(rows::dead_entry).collect()
    }

    async fn get_dead(&self, delivery: DeliveryId) -> Result<Option<DeadEntry>> {
        self.check_open()?;
        let sql = format!(
            "SELECT {DEAD_COLS} FROM deliveries d JOIN messages m ON m.id = d.message_id
             WHERE d.state = 'dead' AND d.id = $1"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(delivery)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(rows::dead_entry).transpose()
    }

    async fn replay(&self, sel: &DeadSelector) -> Result<u64> {
        let sel = sel.clone();
        let now = self.now_ms();
        self.tx(false, move |c| {
            Box::pin(async move {
                let ids = select_dead_ids(c, &sel).await?;
                if ids.is_empty() {
                    return Ok((0, false));
                }
                // A member whose digest is replayed too goes back to waiting for
                // the digest; any other becomes an ordinary delivery again.
                let revived = sqlx::query(
                    "UPDATE deliveries SET state = 'merged', dead_code = NULL, dead_reason = NULL, dead_at = NULL,
                     updated_at = $2
                     WHERE state = 'dead' AND merged_into = ANY($1)",
                )
                .bind(&ids)
                .bind(now)
                .execute(&mut *c)
                .await?
                .rows_affected();
                let replayed = sqlx::query(
                    "UPDATE deliveries SET state = 'pending', attempts = 0, due_at = $2, dead_code = NULL,
                     dead_reason = NULL, dead_at = NULL, merged_into = NULL, last_outcome = NULL,
                     lease_owner = NULL, lease_until = NULL, updated_at = $2
                     WHERE state = 'dead' AND id = ANY($1)",
                )
                .bind(&ids)
                .bind(now)
                .execute(&mut *c)
                .await?
                .rows_affected();
                let n = revived + replayed;
                Ok((n, n > 0))
            })
        })
        .await
    }

    async fn purge_dead(&self, sel: &DeadSelector) -> Result<u64> {
        let sel = sel.clone();
        self.tx(false, move |c| {
            Box::pin(async move {
                let ids = select_dead_ids(c, &sel).await?;
                if ids.is_empty() {
                    return Ok((0, false));
                }
                let msgs: Vec<(String,)> =
                    sqlx::query_as("SELECT DISTINCT message_id FROM deliveries WHERE id = ANY($1)")
                        .bind(&ids)
                        .fetch_all(&mut *c)
                        .await?;
                let n = sqlx::query("DELETE FROM deliveries WHERE state = 'dead' AND id = ANY($1)")
                    .bind(&ids)
                    .execute(&mut *c)
                    .await?
                    .rows_affected();
                let msgs: Vec<String> = msgs.into_iter().map(|(m,)| m).collect();
                sqlx::query(
                    "DELETE FROM messages m WHERE m.id = ANY($1)
                     AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.message_id = m.id)",
                )
                .bind(msgs)
                .execute(&mut *c)
                .await?;
                Ok((n, false))
            })
        })
        .await
    }

    async fn release(&self, owner: &str) -> Result<u64> {
        let owner = owner.to_string();
        let now = self.now_ms();
        self.tx(false, move |c| {
            Box::pin(async move {
                let n = sqlx::query(
                    "UPDATE deliveries SET state = 'pending', lease_owner = NULL, lease_until = NULL,
                     due_at = LEAST(due_at, $2), updated_at = $2 WHERE state = 'claimed' AND lease_owner = $1",
                )
                .bind(owner)
                .bind(now)
                .execute(&mut *c)
                .await?
                .rows_affected();
                Ok((n, n > 0))
            })
        })
        .await
    }

    async fn stats(&self) -> Result<QueueStats> {
        self.check_open()?;
        let now = self.now_ms();
        let mut tx = self.pool.begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .execute(&mut *tx)
            .await?;
        let rows = sqlx::query(
            "SELECT target, state, COUNT(*) AS n FROM deliveries GROUP BY target, state ORDER BY target COLLATE \"C\"",
        )
        .fetch_all(&mut *tx)
        .await?;
        let mut s = rows::tally(&rows)?;
        let (messages,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM messages")
            .fetch_one(&mut *tx)
            .await?;
        s.messages = messages as u64;
        let (oldest,): (Option<i64>,) = sqlx::query_as(
            "SELECT MIN(m.created_at) FROM deliveries d JOIN messages m ON m.id = d.message_id
             WHERE d.state IN ('pending', 'claimed', 'merged')",
        )
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        s.oldest_pending_age_ms = oldest.map(|o| (now - o).max(0));
        Ok(s)
    }

    async fn close(&self) {
        self.closed.store(true, Ordering::Release);
        let listener = self.listener.lock().take();
        if let Some(h) = listener {
            h.abort();
            let _ = h.await;
        }
        self.pool.close().await;
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        if let Some(h) = self.listener.lock().take() {
            h.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_schema_is_split_off_and_checked() {
        let t = PgTarget::parse(
            "postgres://postgres:pw@127.0.0.1:5433/test?schema=imr_1&sslmode=disable",
        )
        .unwrap();
        assert_eq!(t.schema.as_deref(), Some("imr_1"));
        assert_eq!(t.display, "127.0.0.1:5433/test");
        assert_eq!(t.wake_channel(), "imrelay_wake_imr_1");
        assert!(!format!("{t:?}").contains("pw"));
        let err = PgTarget::parse("postgres://u:secretpw@h/db?schema=Bad;drop")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`store.url`") && err.contains("schema"),
            "{err}"
        );
        assert!(!err.contains("secretpw"), "{err}");
        assert_eq!(
            PgTarget::parse("postgres://h/db").unwrap().wake_channel(),
            "imrelay_wake_default"
        );
        assert_eq!(
            redact_url("postgres://u:hunter2@h:5432/db?schema=a"),
            "postgres://u:***@h:5432/db?schema=a"
        );
        assert_eq!(check_url("postgresql://h/db?schema=a_1"), None);
        assert!(check_url("sqlite://x.db").unwrap().contains("store.path"));
        assert!(check_url("postgres://h/db?schema=A")
            .unwrap()
            .contains("schema"));
    }
}
