//! The SQLite store: WAL, `synchronous=FULL` by default, embedded migrations,
//! and one writer task that group-commits.
//!
//! # Group commit
//! Every write (enqueue, claim, finish...) is a job sent to one writer task that
//! owns the only writing connection. The writer takes whatever jobs are waiting
//! (up to `max_batch`), runs each inside its own savepoint of one transaction,
//! commits once (one fsync), and only then answers each caller. Concurrent
//! accepts therefore share an fsync, so durability does not cost throughput,
//! and a failing job rolls back to its savepoint without affecting the others.
//! Reads go through a separate pool (WAL lets them run beside the writer).
//!
//! One gateway per database file: at open, deliveries left claimed by a previous
//! process (crash, kill -9) are returned to the queue so they are sent again.

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::future::BoxFuture;
use imrelay_sdk::clock::Clock;
use parking_lot::Mutex;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};
use sqlx::{ConnectOptions, Connection};
use tokio::sync::{mpsc, oneshot, Notify};

use super::rows::{self, recipients_json};
use super::*;

/// The embedded migrations.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// A job's answer, called with the commit's result once the transaction ends.
type Reply = Box<dyn FnOnce(Result<()>) + Send>;
/// A write operation: runs on the writer's connection inside a savepoint;
/// returns whether it succeeded (else its savepoint is rolled back) and its
/// reply.
type Op = Box<dyn for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, (bool, Reply)> + Send>;

/// What the writer is asked to do. The two commonest writes, accepting plain
/// messages and acknowledging a delivery, have their own kinds: the writer
/// runs all of them in one transaction as a few set-based statements
/// (`json_each`), instead of several statements each. Every statement is a
/// round trip to SQLite's worker thread, and those round trips, not SQLite,
/// were the cost (see BENCHMARKS.md).
enum Job {
    /// Messages without idempotency keys, each with at least one target.
    Enqueue(EnqueueJob),
    /// A delivery delivered ([`FinishAction::Done`]).
    Done(DoneJob),
    Op(Op),
}

struct EnqueueJob {
    msgs: Vec<NewMessage>,
    now: i64,
    reply: oneshot::Sender<Result<Vec<EnqueueOutcome>>>,
}

struct DoneJob {
    delivery: DeliveryId,
    owner: String,
    finish: Finish,
    now: i64,
    reply: oneshot::Sender<Result<()>>,
}

/// The SQLite [`Store`].
pub struct SqliteStore {
    read: SqlitePool,
    jobs: Mutex<Option<mpsc::Sender<Job>>>,
    writer: Mutex<Option<tokio::task::JoinHandle<()>>>,
    notify: Arc<Notify>,
    clock: Arc<dyn Clock>,
    path: PathBuf,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish()
    }
}

fn path_of(url: &str) -> PathBuf {
    let p = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    let p = p.split('?').next().unwrap_or(p);
    PathBuf::from(p)
}

impl SqliteStore {
    /// Open (creating if missing) and migrate the database, return deliveries a
    /// previous process left claimed to the queue, and start the writer.
    pub async fn open(options: StoreOptions) -> Result<Self> {
        let path = path_of(&options.url);
        if path.as_os_str().is_empty() || path.to_str() == Some(":memory:") {
            return Err(StoreError::Invalid(
                "`store.url`: SQLite needs a file path (an in-memory database would lose acknowledged messages)"
                    .into(),
            ));
        }
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                StoreError::Invalid(format!(
                    "`store.url`: cannot create directory {}: {e}",
                    dir.display()
                ))
            })?;
        }
        let sync = match options.synchronous {
            Synchronous::Full => SqliteSynchronous::Full,
            Synchronous::Normal => SqliteSynchronous::Normal,
        };
        let base = SqliteConnectOptions::from_str("sqlite://")
            .map_err(StoreError::from)?
            .filename(&path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(sync)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let mut conn = base.clone().connect().await.map_err(|e| {
            StoreError::Database(format!(
                "cannot open SQLite database {}: {e}",
                path.display()
            ))
        })?;
        MIGRATOR.run(&mut conn).await?;
        let now = options.clock.now_ms();
        let recovered = sqlx::query(
            "UPDATE deliveries SET state = 'pending', lease_owner = NULL, lease_until = NULL, updated_at = ?1
             WHERE state = 'claimed'",
        )
        .bind(now)
        .execute(&mut conn)
        .await?
        .rows_affected();
        if recovered > 0 {
            tracing::warn!(
                deliveries = recovered,
                "deliveries claimed by a previous run were not finished; they are queued again"
            );
        }
        let read = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(base.read_only(true))
            .await?;
        let (tx, rx) = mpsc::channel::<Job>(4096);
        let writer = tokio::spawn(writer_loop(
            conn,
            rx,
            options.max_batch.max(1),
            options.group_commit_window,
        ));
        Ok(SqliteStore {
            read,
            jobs: Mutex::new(Some(tx)),
            writer: Mutex::new(Some(writer)),
            notify: Arc::new(Notify::new()),
            clock: options.clock,
            path,
        })
    }

    /// `journal_mode` and `synchronous` (0 off, 1 normal, 2 full) as a
    /// connection of this store sees them.
    pub async fn pragmas(&self) -> Result<(String, i64)> {
        let mut c = self.read.acquire().await?;
        let (mode,): (String,) = sqlx::query_as("PRAGMA journal_mode")
            .fetch_one(&mut *c)
            .await?;
        let (sync,): (i64,) = sqlx::query_as("PRAGMA synchronous")
            .fetch_one(&mut *c)
            .await?;
        Ok((mode, sync))
    }

    /// The database file.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// Run `f` in the writer's transaction; answers after the commit.
    async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, Result<T>> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel::<Result<T>>();
        self.submit(Job::Op(replying_op(f, tx)), rx).await
    }

    /// Queue a job for the writer and wait for its answer (after the commit).
    async fn submit<T>(&self, job: Job, rx: oneshot::Receiver<Result<T>>) -> Result<T> {
        let Some(jobs) = self.jobs.lock().clone() else {
            return Err(StoreError::Closed);
        };
        jobs.send(job).await.map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| {
            StoreError::Database("the SQLite writer stopped before answering".into())
        })?
    }
}

async fn writer_loop(
    mut conn: SqliteConnection,
    mut rx: mpsc::Receiver<Job>,
    max_batch: usize,
    window: Duration,
) {
    let mut batch: Vec<Job> = Vec::with_capacity(max_batch);
    while let Some(first) = rx.recv().await {
        batch.push(first);
        if !window.is_zero() {
            tokio::time::sleep(window).await;
        }
        while batch.len() < max_batch {
            match rx.try_recv() {
                Ok(j) => batch.push(j),
                Err(_) => break,
            }
        }
        let mut replies: Vec<Reply> = Vec::with_capacity(batch.len());
        let begun = sqlx::query("BEGIN IMMEDIATE").execute(&mut conn).await;
        if let Err(e) = begun {
            tracing::error!(error = %e, "SQLite: cannot begin a transaction");
            // Dropping the jobs drops their answer channels: callers see an error.
            batch.clear();
            continue;
        }
        let mut enqueues = Vec::new();
        let mut dones = Vec::new();
        for job in batch.drain(..) {
            match job {
                Job::Enqueue(j) => enqueues.push(j),
                Job::Done(j) => dones.push(j),
                Job::Op(op) => replies.push(run_op(&mut conn, op).await),
            }
        }
        bulk_enqueue(&mut conn, enqueues, &mut replies).await;
        bulk_done(&mut conn, dones, &mut replies).await;
        let commit = match sqlx::query("COMMIT").execute(&mut conn).await {
            Ok(_) => Ok(()),
            Err(e) => {
                tracing::error!(error = %e, "SQLite: commit failed; the batch is rolled back");
                let _ = sqlx::query("ROLLBACK").execute(&mut conn).await;
                Err(StoreError::from(e))
            }
        };
        for reply in replies {
            reply(commit.clone());
        }
    }
    let _ = conn.close().await;
}

/// An operation running `f`, whose result goes to `tx` once the commit ends
/// (the commit's error if it fails).
fn replying_op<T, F>(f: F, tx: oneshot::Sender<Result<T>>) -> Op
where
    T: Send + 'static,
    F: for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, Result<T>> + Send + 'static,
{
    Box::new(move |conn| {
        Box::pin(async move {
            let r = f(conn).await;
            let ok = r.is_ok();
            let reply: Reply = Box::new(move |commit: Result<()>| {
                let _ = tx.send(commit.and(r));
            });
            (ok, reply)
        })
    })
}

/// Run one operation inside its own savepoint.
async fn run_op(conn: &mut SqliteConnection, op: Op) -> Reply {
    if let Err(e) = sqlx::query("SAVEPOINT job").execute(&mut *conn).await {
        tracing::error!(error = %e, "SQLite: savepoint failed");
        // Dropping `op` drops its answer channel: the caller sees an error.
        return Box::new(|_| {});
    }
    let (ok, reply) = op(&mut *conn).await;
    let end = if ok {
        sqlx::query("RELEASE job").execute(&mut *conn).await
    } else {
        match sqlx::query("ROLLBACK TO job").execute(&mut *conn).await {
            Ok(_) => sqlx::query("RELEASE job").execute(&mut *conn).await,
            Err(e) => Err(e),
        }
    };
    if let Err(e) = end {
        tracing::error!(error = %e, "SQLite: ending a savepoint failed");
    }
    reply
}

/// Run `f` as one savepoint: released on success, rolled back on error.
async fn in_savepoint<T>(
    conn: &mut SqliteConnection,
    f: impl for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, Result<T>>,
) -> Result<T> {
    sqlx::query("SAVEPOINT bulk").execute(&mut *conn).await?;
    let r = f(&mut *conn).await;
    if r.is_err() {
        sqlx::query("ROLLBACK TO bulk").execute(&mut *conn).await?;
    }
    sqlx::query("RELEASE bulk").execute(&mut *conn).await?;
    r
}

/// Insert the messages of every enqueue job in two statements. If that
/// fails, each job runs alone, so one bad job cannot fail the others.
async fn bulk_enqueue(
    conn: &mut SqliteConnection,
    jobs: Vec<EnqueueJob>,
    replies: &mut Vec<Reply>,
) {
    if jobs.is_empty() {
        return;
    }
    let mut messages = Vec::new();
    let mut deliveries = Vec::new();
    // A repeated id: only its first occurrence may be inserted (as one by
    // one), so only its deliveries are listed.
    let mut first = std::collections::HashSet::new();
    for j in &jobs {
        for m in &j.msgs {
            let body = match serde_json::to_string(&m.message) {
                Ok(b) => b,
                Err(_) => return enqueue_each(conn, jobs, replies).await,
            };
            messages.push(serde_json::json!([
                m.id,
                m.channel,
                m.kind.as_str(),
                body,
                m.trace_id,
                m.origin,
                j.now
            ]));
            if first.insert(m.id.as_str()) {
                for t in &m.targets {
                    deliveries.push(serde_json::json!([m.id, t, j.now]));
                }
            }
        }
    }
    let messages = serde_json::Value::Array(messages).to_string();
    let deliveries = serde_json::Value::Array(deliveries).to_string();
    let inserted = in_savepoint(conn, move |c| {
        Box::pin(async move {
            let ids: Vec<(String,)> = sqlx::query_as(
                "INSERT INTO messages (id, channel, kind, body, trace_id, origin, created_at)
                 SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), json_extract(value, '$[2]'),
                   json_extract(value, '$[3]'), json_extract(value, '$[4]'), json_extract(value, '$[5]'),
                   json_extract(value, '$[6]')
                 FROM json_each(?1) WHERE true
                 ON CONFLICT (id) DO NOTHING RETURNING id",
            )
            .bind(messages)
            .fetch_all(&mut *c)
            .await?;
            let inserted: std::collections::HashSet<String> = ids.into_iter().map(|(i,)| i).collect();
            // Deliveries only of messages inserted now (an existing id keeps
            // its own), in order, so ids follow acceptance order.
            sqlx::query(
                "INSERT INTO deliveries (message_id, target, state, due_at, created_at, updated_at)
                 SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), 'pending',
                   json_extract(value, '$[2]'), json_extract(value, '$[2]'), json_extract(value, '$[2]')
                 FROM json_each(?1)
                 WHERE json_extract(value, '$[0]') IN (SELECT value FROM json_each(?2))",
            )
            .bind(deliveries)
            .bind(serde_json::to_string(&inserted).unwrap_or_else(|_| "[]".into()))
            .execute(&mut *c)
            .await?;
            Ok(inserted)
        })
    })
    .await;
    let mut inserted = match inserted {
        Ok(i) => i,
        Err(e) => {
            tracing::warn!(error = %e, "SQLite: bulk enqueue failed; enqueueing job by job");
            return enqueue_each(conn, jobs, replies).await;
        }
    };
    for j in jobs {
        // An id repeated within the batch is created once, like one by one.
        let out = bulk_outcomes(&j.msgs, &mut inserted);
        let tx = j.reply;
        replies.push(Box::new(move |commit: Result<()>| {
            let _ = tx.send(commit.map(|_| out));
        }));
    }
}

/// The slow path of [`bulk_enqueue`]: each job in its own savepoint.
async fn enqueue_each(
    conn: &mut SqliteConnection,
    jobs: Vec<EnqueueJob>,
    replies: &mut Vec<Reply>,
) {
    for EnqueueJob { msgs, now, reply } in jobs {
        let op = replying_op(
            move |c| Box::pin(async move { enqueue_all(c, &msgs, now).await }),
            reply,
        );
        replies.push(run_op(conn, op).await);
    }
}

/// Acknowledge every delivered delivery of the batch in three statements:
/// the fenced state change, the attempts, and digest members. A delivery the
/// fence refuses (lease lost) or a failed statement falls back to the
/// one-by-one path, which reports it exactly.
async fn bulk_done(conn: &mut SqliteConnection, jobs: Vec<DoneJob>, replies: &mut Vec<Reply>) {
    if jobs.is_empty() {
        return;
    }
    let mut seen = std::collections::HashSet::new();
    let (jobs, mut slow): (Vec<DoneJob>, Vec<DoneJob>) =
        jobs.into_iter().partition(|j| seen.insert(j.delivery));
    let rows = serde_json::Value::Array(
        jobs.iter()
            .map(|j| {
                let last = j.finish.attempts.last().map(|a| a.outcome.as_str());
                serde_json::json!([j.delivery, j.owner, j.finish.parts_done, last, j.now])
            })
            .collect(),
    )
    .to_string();
    let attempts: Vec<(DeliveryId, serde_json::Value)> = jobs
        .iter()
        .flat_map(|j| {
            j.finish.attempts.iter().map(move |a| {
                let row = serde_json::json!([
                    j.delivery,
                    a.started_at,
                    a.finished_at,
                    a.destination,
                    a.part,
                    a.outcome,
                    a.counted,
                    a.status,
                    a.code,
                    a.message
                ]);
                (j.delivery, row)
            })
        })
        .collect();
    let latest = jobs.iter().map(|j| j.now).max().unwrap_or_default();
    let done = in_savepoint(conn, move |c| {
        Box::pin(async move {
            let ids: Vec<(i64,)> = sqlx::query_as(
                // `+state`: look rows up by id, not by scanning every claim.
                "UPDATE deliveries SET state = 'done', parts_done = json_extract(j.value, '$[2]'),
                   lease_owner = NULL, lease_until = NULL,
                   last_outcome = COALESCE(json_extract(j.value, '$[3]'), last_outcome),
                   updated_at = json_extract(j.value, '$[4]')
                 FROM json_each(?1) AS j
                 WHERE deliveries.id = json_extract(j.value, '$[0]') AND +deliveries.state = 'claimed'
                   AND deliveries.lease_owner = json_extract(j.value, '$[1]')
                 RETURNING deliveries.id",
            )
            .bind(rows)
            .fetch_all(&mut *c)
            .await?;
            let done: std::collections::HashSet<i64> = ids.into_iter().map(|(i,)| i).collect();
            let attempts = serde_json::Value::Array(
                attempts
                    .into_iter()
                    .filter(|(d, _)| done.contains(d))
                    .map(|(_, a)| a)
                    .collect(),
            )
            .to_string();
            sqlx::query(
                "INSERT INTO attempts (delivery_id, started_at, finished_at, destination, part, outcome, counted,
                   status, code, message)
                 SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), json_extract(value, '$[2]'),
                   json_extract(value, '$[3]'), json_extract(value, '$[4]'), json_extract(value, '$[5]'),
                   json_extract(value, '$[6]'), json_extract(value, '$[7]'), json_extract(value, '$[8]'),
                   json_extract(value, '$[9]')
                 FROM json_each(?1)",
            )
            .bind(attempts)
            .execute(&mut *c)
            .await?;
            let ids: Vec<i64> = done.iter().copied().collect();
            sqlx::query(
                "UPDATE deliveries SET state = 'done', updated_at = ?2
                 WHERE merged_into IN (SELECT value FROM json_each(?1)) AND state = 'merged'",
            )
            .bind(json_ids(&ids))
            .bind(latest)
            .execute(&mut *c)
            .await?;
            Ok(done)
        })
    })
    .await;
    let done = match done {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!(error = %e, "SQLite: bulk acknowledgement failed; acknowledging one by one");
            std::collections::HashSet::new()
        }
    };
    for j in jobs {
        if done.contains(&j.delivery) {
            let tx = j.reply;
            replies.push(Box::new(move |commit: Result<()>| {
                let _ = tx.send(commit);
            }));
        } else {
            slow.push(j);
        }
    }
    for j in slow {
        let DoneJob {
            delivery,
            owner,
            finish,
            now,
            reply,
        } = j;
        let op = replying_op(
            move |c| Box::pin(async move { finish_op(c, delivery, &owner, finish, now).await }),
            reply,
        );
        replies.push(run_op(conn, op).await);
    }
}

// ---- helpers -------------------------------------------------------------

fn json_ids(ids: &[DeliveryId]) -> String {
    serde_json::to_string(ids).unwrap_or_else(|_| "[]".into())
}

/// Insert a message and its deliveries; `false` (nothing written) when the id
/// exists already.
async fn insert_message(c: &mut SqliteConnection, m: &NewMessage, now: i64) -> Result<bool> {
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
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) ON CONFLICT (id) DO NOTHING",
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
             VALUES (?1, ?2, 'pending', ?3, ?3, ?3)",
        )
        .bind(&m.id)
        .bind(t)
        .bind(now)
        .execute(&mut *c)
        .await?;
    }
    Ok(true)
}

/// Insert a message the store itself creates (digest, fallback copy); an id
/// collision is an error, not an outcome.
async fn insert_new(c: &mut SqliteConnection, m: &NewMessage, now: i64) -> Result<()> {
    if insert_message(c, m, now).await? {
        Ok(())
    } else {
        Err(StoreError::Invalid(format!(
            "message id `{}` already exists",
            m.id
        )))
    }
}

async fn enqueue_one(c: &mut SqliteConnection, m: &NewMessage, now: i64) -> Result<EnqueueOutcome> {
    if let Some(i) = &m.idempotency {
        let row = sqlx::query(
            "SELECT id, body_hash FROM messages WHERE idem_scope = ?1 AND idem_key = ?2",
        )
        .bind(&i.scope)
        .bind(&i.key)
        .fetch_optional(&mut *c)
        .await?;
        if let Some(row) = row {
            return rows::existing_outcome(&row, &i.body_hash);
        }
    }
    if m.targets.is_empty() {
        return Ok(EnqueueOutcome::Rejected {
            reason: format!("channel `{}` has no destination", m.channel),
        });
    }
    if !insert_message(c, m, now).await? {
        return Ok(EnqueueOutcome::Rejected {
            reason: format!("message id `{}` already exists", m.id),
        });
    }
    Ok(EnqueueOutcome::Created { id: m.id.clone() })
}

/// Enqueue messages one by one (idempotency keys checked), in order.
async fn enqueue_all(
    c: &mut SqliteConnection,
    msgs: &[NewMessage],
    now: i64,
) -> Result<Vec<EnqueueOutcome>> {
    let mut out = Vec::with_capacity(msgs.len());
    for m in msgs {
        out.push(enqueue_one(c, m, now).await?);
    }
    Ok(out)
}

async fn insert_attempts(
    c: &mut SqliteConnection,
    delivery: DeliveryId,
    attempts: &[AttemptRecord],
) -> Result<()> {
    for a in attempts {
        sqlx::query(
            "INSERT INTO attempts (delivery_id, started_at, finished_at, destination, part, outcome, counted, status, code, message)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
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

/// Check that `owner` holds `delivery`; returns its message id and target.
async fn fence(
    c: &mut SqliteConnection,
    delivery: DeliveryId,
    owner: &str,
) -> Result<(String, String)> {
    let row =
        sqlx::query("SELECT state, lease_owner, message_id, target FROM deliveries WHERE id = ?1")
            .bind(delivery)
            .fetch_optional(&mut *c)
            .await?;
    rows::fenced(row.as_ref(), delivery, owner)
}

async fn finish_op(
    c: &mut SqliteConnection,
    delivery: DeliveryId,
    owner: &str,
    f: Finish,
    now: i64,
) -> Result<()> {
    let (message_id, target) = fence(c, delivery, owner).await?;
    insert_attempts(c, delivery, &f.attempts).await?;
    let last = f.attempts.last().map(|a| a.outcome.clone());
    let parts = f.parts_done as i64;
    let q = |sql: &'static str| sqlx::query(sql);
    match f.action {
        FinishAction::Done => {
            q("UPDATE deliveries SET state = 'done', parts_done = ?2, lease_owner = NULL, lease_until = NULL,
               last_outcome = COALESCE(?3, last_outcome), updated_at = ?4 WHERE id = ?1")
            .bind(delivery)
            .bind(parts)
            .bind(&last)
            .bind(now)
            .execute(&mut *c)
            .await?;
            q("UPDATE deliveries SET state = 'done', updated_at = ?2 WHERE merged_into = ?1 AND state = 'merged'")
                .bind(delivery)
                .bind(now)
                .execute(&mut *c)
                .await?;
        }
        FinishAction::Retry { at } => {
            q("UPDATE deliveries SET state = 'pending', attempts = attempts + 1, due_at = ?2, parts_done = ?3,
               lease_owner = NULL, lease_until = NULL, last_outcome = COALESCE(?4, last_outcome), updated_at = ?5
               WHERE id = ?1")
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
                "UPDATE deliveries SET state = 'pending', due_at = ?2, parts_done = ?3,
               lease_owner = NULL, lease_until = NULL, updated_at = ?4 WHERE id = ?1",
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
            q("UPDATE deliveries SET state = 'dead', attempts = attempts + ?2, parts_done = ?3, dead_code = ?4,
               dead_reason = ?5, dead_at = ?6, lease_owner = NULL, lease_until = NULL,
               last_outcome = COALESCE(?7, last_outcome), updated_at = ?6 WHERE id = ?1")
            .bind(delivery)
            .bind(counted)
            .bind(parts)
            .bind(&reason.code)
            .bind(&reason.reason)
            .bind(now)
            .bind(&last)
            .execute(&mut *c)
            .await?;
            q("UPDATE deliveries SET state = 'dead', dead_code = ?2, dead_reason = ?3, dead_at = ?4, updated_at = ?4
               WHERE merged_into = ?1 AND state = 'merged'")
            .bind(delivery)
            .bind(&reason.code)
            .bind(format!("the digest {message_id} it was merged into was dead-lettered: {}", reason.reason))
            .bind(now)
            .execute(&mut *c)
            .await?;
            if let Some(fb) = fallback {
                insert_new(c, &fb, now).await?;
            }
        }
        FinishAction::Split { children } => {
            q("UPDATE deliveries SET state = 'done', parts_done = ?2, lease_owner = NULL, lease_until = NULL,
               last_outcome = COALESCE(?3, last_outcome), updated_at = ?4 WHERE id = ?1")
            .bind(delivery)
            .bind(parts)
            .bind(&last)
            .bind(now)
            .execute(&mut *c)
            .await?;
            for ch in children {
                let (state, due, attempts, code, reason, dead_at) = match ch.state {
                    ChildState::Pending { due_at } => ("pending", due_at, 0, None, None, None),
                    ChildState::Retry { due_at } => ("pending", due_at, 1, None, None, None),
                    ChildState::Dead(r) => ("dead", now, 1, r.code, Some(r.reason), Some(now)),
                };
                q("INSERT INTO deliveries (message_id, target, recipients, state, attempts, parts_done, due_at,
                   last_outcome, dead_code, dead_reason, dead_at, created_at, updated_at)
                   VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?12)")
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
        }
    }
    Ok(())
}

const DEAD_ONE: &str = "SELECT d.id, d.message_id, m.channel, d.target, d.recipients, d.dead_code, d.dead_reason,
    d.attempts, m.created_at, d.dead_at, m.body FROM deliveries d JOIN messages m ON m.id = d.message_id
    WHERE d.state = 'dead' AND d.id = ?1";

/// Ids of dead letters matching a selector.
async fn select_dead_ids(c: &mut SqliteConnection, sel: &DeadSelector) -> Result<Vec<DeliveryId>> {
    match sel {
        DeadSelector::Ids(ids) => {
            let rows = sqlx::query("SELECT id FROM deliveries WHERE state = 'dead' AND id IN (SELECT value FROM json_each(?1))")
                .bind(json_ids(ids))
                .fetch_all(&mut *c)
                .await?;
            rows::ids(&rows)
        }
        DeadSelector::Filter(f) => {
            let rows = dead_query(f, false).fetch_all(&mut *c).await?;
            rows::ids(&rows)
        }
    }
}

fn dead_query(
    f: &DeadFilter,
    page: bool,
) -> sqlx::query::Query<'static, sqlx::Sqlite, sqlx::sqlite::SqliteArguments> {
    let sql: &'static str = if page {
        "SELECT d.id, d.message_id, m.channel, d.target, d.recipients, d.dead_code, d.dead_reason,
           d.attempts, m.created_at, d.dead_at, m.body FROM deliveries d JOIN messages m ON m.id = d.message_id
         WHERE d.state = 'dead' AND (?1 IS NULL OR m.channel = ?1) AND (?2 IS NULL OR d.dead_code = ?2)
           AND (?3 IS NULL OR d.message_id = ?3) AND (?4 IS NULL OR d.dead_at >= ?4) AND (?5 IS NULL OR d.dead_at < ?5)
           AND d.id > ?6 ORDER BY d.id LIMIT ?7"
    } else {
        "SELECT d.id FROM deliveries d JOIN messages m ON m.id = d.message_id
         WHERE d.state = 'dead' AND (?1 IS NULL OR m.channel = ?1) AND (?2 IS NULL OR d.dead_code = ?2)
           AND (?3 IS NULL OR d.message_id = ?3) AND (?4 IS NULL OR d.dead_at >= ?4) AND (?5 IS NULL OR d.dead_at < ?5)
           AND d.id > ?6 ORDER BY d.id LIMIT ?7"
    };
    let (after, limit) = if page {
        (
            f.after.unwrap_or(0),
            if f.limit == 0 { 100 } else { f.limit as i64 },
        )
    } else {
        (0, -1)
    };
    sqlx::query(sql)
        .bind(f.channel.clone())
        .bind(f.code.clone())
        .bind(f.message_id.clone())
        .bind(f.since)
        .bind(f.until)
        .bind(after)
        .bind(limit)
}

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    fn notifier(&self) -> Arc<Notify> {
        self.notify.clone()
    }

    async fn enqueue(&self, msgs: Vec<NewMessage>) -> Result<Vec<EnqueueOutcome>> {
        let now = self.now_ms();
        let out = if msgs.iter().all(NewMessage::is_plain) {
            let (reply, rx) = oneshot::channel();
            self.submit(Job::Enqueue(EnqueueJob { msgs, now, reply }), rx)
                .await?
        } else {
            self.write(move |c| Box::pin(async move { enqueue_all(c, &msgs, now).await }))
                .await?
        };
        if out
            .iter()
            .any(|o| matches!(o, EnqueueOutcome::Created { .. }))
        {
            self.notify.notify_one();
        }
        Ok(out)
    }

    async fn get_message(&self, id: &str) -> Result<Option<MessageView>> {
        let mut c = self.read.acquire().await?;
        let Some(m) = sqlx::query("SELECT id, channel, kind, body, trace_id, origin, created_at FROM messages WHERE id = ?1")
            .bind(id)
            .fetch_optional(&mut *c)
            .await?
        else {
            return Ok(None);
        };
        let rows = sqlx::query(
            "SELECT d.id, d.target, d.state, d.recipients, d.attempts, d.parts_done, d.due_at, d.created_at,
               d.updated_at, d.dead_code, d.dead_reason, g.message_id AS merged_into
             FROM deliveries d LEFT JOIN deliveries g ON g.id = d.merged_into
             WHERE d.message_id = ?1 ORDER BY d.id",
        )
        .bind(id)
        .fetch_all(&mut *c)
        .await?;
        let attempts = sqlx::query(
            "SELECT a.delivery_id, a.started_at, a.finished_at, a.destination, a.part, a.outcome, a.counted, a.status,
               a.code, a.message FROM attempts a JOIN deliveries d ON d.id = a.delivery_id
             WHERE d.message_id = ?1 ORDER BY a.id",
        )
        .bind(id)
        .fetch_all(&mut *c)
        .await?;
        rows::message_view(&m, &rows, &attempts).map(Some)
    }

    async fn backlog(&self, cap: u64) -> Result<Vec<TargetBacklog>> {
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
                  WHERE state = 'pending' AND target = t.target LIMIT ?2)) AS pending,
               (SELECT COUNT(*) FROM (SELECT 1 FROM deliveries
                  WHERE state = 'pending' AND target = t.target AND due_at <= ?1 LIMIT ?2)) AS due,
               (SELECT MIN(due_at) FROM deliveries WHERE state = 'pending' AND target = t.target) AS next_due_at
             FROM t WHERE target IS NOT NULL
             UNION ALL
             SELECT target, COUNT(*) AS pending, COUNT(*) AS due, ?1 AS next_due_at FROM deliveries
             WHERE state = 'claimed' AND lease_until <= ?1 GROUP BY target",
        )
        .bind(now)
        .bind(cap.min(i64::MAX as u64) as i64)
        .fetch_all(&self.read)
        .await?;
        let rows = rows.iter().map(rows::backlog).collect::<Result<Vec<_>>>()?;
        Ok(merge_backlog(rows))
    }

    async fn claim(&self, req: ClaimRequest) -> Result<Vec<Claimed>> {
        let now = self.now_ms();
        let lease_until = now + req.lease.as_millis() as i64;
        self.write(move |c| {
            Box::pin(async move {
                let ids: Vec<(i64,)> = match &req.target {
                    // Expired claims first (they are older), then due pending
                    // ones in index order: no sort, at most `limit` rows read.
                    Some(t) => sqlx::query_as(
                        "UPDATE deliveries SET state = 'claimed', lease_owner = ?1, lease_until = ?2, updated_at = ?3
                         WHERE id IN (
                           SELECT id FROM deliveries WHERE state = 'claimed' AND target = ?4 AND lease_until <= ?3
                           UNION ALL
                           SELECT id FROM (SELECT id FROM deliveries WHERE state = 'pending' AND target = ?4
                             AND due_at <= ?3 ORDER BY due_at, id LIMIT ?5)
                           LIMIT ?5)
                         RETURNING id",
                    )
                    .bind(&req.owner)
                    .bind(lease_until)
                    .bind(now)
                    .bind(t)
                    .bind(req.limit as i64)
                    .fetch_all(&mut *c)
                    .await?,
                    None => sqlx::query_as(
                        "UPDATE deliveries SET state = 'claimed', lease_owner = ?1, lease_until = ?2, updated_at = ?3
                         WHERE id IN (SELECT id FROM deliveries WHERE
                           (state = 'pending' AND due_at <= ?3) OR (state = 'claimed' AND lease_until <= ?3)
                           ORDER BY due_at, id LIMIT ?4)
                         RETURNING id",
                    )
                    .bind(&req.owner)
                    .bind(lease_until)
                    .bind(now)
                    .bind(req.limit as i64)
                    .fetch_all(&mut *c)
                    .await?,
                };
                if ids.is_empty() {
                    return Ok(Vec::new());
                }
                let ids: Vec<i64> = ids.into_iter().map(|(i,)| i).collect();
                let rows = sqlx::query(
                    "SELECT d.id, d.message_id, m.channel, d.target, m.kind, m.body, d.recipients, d.attempts,
                       d.parts_done, m.created_at, d.last_outcome, m.trace_id, d.lease_until
                     FROM deliveries d JOIN messages m ON m.id = d.message_id
                     WHERE d.id IN (SELECT value FROM json_each(?1)) ORDER BY d.due_at, d.id",
                )
                .bind(json_ids(&ids))
                .fetch_all(&mut *c)
                .await?;
                rows.iter().map(rows::claimed).collect()
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
        self.write(move |c| {
            Box::pin(async move {
                fence(c, delivery, &owner).await?;
                insert_attempts(c, delivery, &attempts).await?;
                let last = attempts.last().map(|a| a.outcome.clone());
                let counted = attempts.iter().filter(|a| a.counted).count() as i64;
                sqlx::query(
                    "UPDATE deliveries SET parts_done = ?2, lease_until = ?3, last_outcome = COALESCE(?4, last_outcome),
                     updated_at = ?5, attempts = attempts + ?6 WHERE id = ?1",
                )
                .bind(delivery)
                .bind(parts_done as i64)
                .bind(lease_until)
                .bind(last)
                .bind(now)
                .bind(counted)
                .execute(&mut *c)
                .await?;
                Ok(())
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
        self.write(move |c| {
            Box::pin(async move {
                Ok(sqlx::query(
                    "UPDATE deliveries SET lease_until = ?2
                     WHERE state = 'claimed' AND lease_owner = ?1 AND lease_until < ?2
                       AND id IN (SELECT value FROM json_each(?3))",
                )
                .bind(owner)
                .bind(lease_until)
                .bind(json_ids(&deliveries))
                .execute(&mut *c)
                .await?
                .rows_affected())
            })
        })
        .await
    }

    async fn finish(&self, delivery: DeliveryId, owner: &str, finish: Finish) -> Result<()> {
        let owner = owner.to_string();
        let now = self.now_ms();
        let wakes = matches!(
            finish.action,
            FinishAction::Split { .. }
                | FinishAction::Dead {
                    fallback: Some(_),
                    ..
                }
        );
        if matches!(finish.action, FinishAction::Done) {
            let (reply, rx) = oneshot::channel();
            let job = DoneJob {
                delivery,
                owner,
                finish,
                now,
                reply,
            };
            self.submit(Job::Done(job), rx).await?;
        } else {
            self.write(move |c| {
                Box::pin(async move { finish_op(c, delivery, &owner, finish, now).await })
            })
            .await?;
        }
        if wakes {
            self.notify.notify_one();
        }
        Ok(())
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
        let id = self
            .write(move |c| {
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
                    let (did,): (i64,) = sqlx::query_as("SELECT id FROM deliveries WHERE message_id = ?1")
                        .bind(&digest.id)
                        .fetch_one(&mut *c)
                        .await?;
                    sqlx::query(
                        "UPDATE deliveries SET state = 'merged', merged_into = ?1, lease_owner = NULL, lease_until = NULL,
                         updated_at = ?2 WHERE id IN (SELECT value FROM json_each(?3))",
                    )
                    .bind(did)
                    .bind(now)
                    .bind(json_ids(&members))
                    .execute(&mut *c)
                    .await?;
                    Ok(digest.id.clone())
                })
            })
            .await?;
        self.notify.notify_one();
        Ok(id)
    }

    async fn overdue(
        &self,
        channel: &str,
        created_before: i64,
        limit: u32,
    ) -> Result<Vec<Overdue>> {
        let rows = sqlx::query(
            "SELECT d.id, d.message_id, m.channel, d.target, m.created_at FROM deliveries d
             JOIN messages m ON m.id = d.message_id
             WHERE d.state IN ('pending', 'claimed') AND d.fell_back = 0 AND m.kind <> 'fallback'
               AND m.created_at < ?1 AND m.channel = ?3 ORDER BY m.created_at, d.id LIMIT ?2",
        )
        .bind(created_before)
        .bind(limit as i64)
        .bind(channel)
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(rows::overdue).collect()
    }

    async fn fall_back(&self, delivery: DeliveryId, fallback: NewMessage) -> Result<bool> {
        let now = self.now_ms();
        let done = self
            .write(move |c| {
                Box::pin(async move {
                    let n = sqlx::query(
                        "UPDATE deliveries SET fell_back = 1, updated_at = ?2
                         WHERE id = ?1 AND fell_back = 0 AND state IN ('pending', 'claimed')",
                    )
                    .bind(delivery)
                    .bind(now)
                    .execute(&mut *c)
                    .await?
                    .rows_affected();
                    if n == 0 {
                        return Ok(false);
                    }
                    insert_new(c, &fallback, now).await?;
                    Ok(true)
                })
            })
            .await?;
        if done {
            self.notify.notify_one();
        }
        Ok(done)
    }

    async fn list_dead(&self, filter: &DeadFilter) -> Result<Vec<DeadEntry>> {
        let rows = dead_query(filter, true).fetch_all(&self.read).await?;
        rows.iter().map(rows::dead_entry).collect()
    }

    async fn get_dead(&self, delivery: DeliveryId) -> Result<Option<DeadEntry>> {
        let row = sqlx::query(DEAD_ONE)
            .bind(delivery)
            .fetch_optional(&self.read)
            .await?;
        row.as_ref().map(rows::dead_entry).transpose()
    }

    async fn replay(&self, sel: &DeadSelector) -> Result<u64> {
        let sel = sel.clone();
        let now = self.now_ms();
        let n = self
            .write(move |c| {
                Box::pin(async move {
                    let ids = select_dead_ids(c, &sel).await?;
                    if ids.is_empty() {
                        return Ok(0);
                    }
                    let ids = json_ids(&ids);
                    // A member whose digest is replayed too goes back to waiting for
                    // the digest; any other becomes an ordinary delivery again.
                    let revived = sqlx::query(
                        "UPDATE deliveries SET state = 'merged', dead_code = NULL, dead_reason = NULL, dead_at = NULL,
                         updated_at = ?2
                         WHERE state = 'dead' AND merged_into IN (SELECT value FROM json_each(?1))",
                    )
                    .bind(&ids)
                    .bind(now)
                    .execute(&mut *c)
                    .await?
                    .rows_affected();
                    let replayed = sqlx::query(
                        "UPDATE deliveries SET state = 'pending', attempts = 0, due_at = ?2, dead_code = NULL,
                         dead_reason = NULL, dead_at = NULL, merged_into = NULL, last_outcome = NULL,
                         lease_owner = NULL, lease_until = NULL, updated_at = ?2
                         WHERE state = 'dead' AND id IN (SELECT value FROM json_each(?1))",
                    )
                    .bind(&ids)
                    .bind(now)
                    .execute(&mut *c)
                    .await?
                    .rows_affected();
                    Ok(revived + replayed)
                })
            })
            .await?;
        if n > 0 {
            self.notify.notify_one();
        }
        Ok(n)
    }

    async fn purge_dead(&self, sel: &DeadSelector) -> Result<u64> {
        let sel = sel.clone();
        self.write(move |c| {
            Box::pin(async move {
                let ids = select_dead_ids(c, &sel).await?;
                if ids.is_empty() {
                    return Ok(0);
                }
                let ids = json_ids(&ids);
                let msgs: Vec<(String,)> = sqlx::query_as(
                    "SELECT DISTINCT message_id FROM deliveries WHERE id IN (SELECT value FROM json_each(?1))",
                )
                .bind(&ids)
                .fetch_all(&mut *c)
                .await?;
                let n = sqlx::query("DELETE FROM deliveries WHERE state = 'dead' AND id IN (SELECT value FROM json_each(?1))")
                    .bind(&ids)
                    .execute(&mut *c)
                    .await?
                    .rows_affected();
                for (m,) in msgs {
                    sqlx::query(
                        "DELETE FROM messages WHERE id = ?1 AND NOT EXISTS (SELECT 1 FROM deliveries WHERE message_id = ?1)",
                    )
                    .bind(m)
                    .execute(&mut *c)
                    .await?;
                }
                Ok(n)
            })
        })
        .await
    }

    async fn release(&self, owner: &str) -> Result<u64> {
        let owner = owner.to_string();
        let now = self.now_ms();
        let n = self
            .write(move |c| {
                Box::pin(async move {
                    Ok(sqlx::query(
                        "UPDATE deliveries SET state = 'pending', lease_owner = NULL, lease_until = NULL,
                         due_at = MIN(due_at, ?2), updated_at = ?2 WHERE state = 'claimed' AND lease_owner = ?1",
                    )
                    .bind(owner)
                    .bind(now)
                    .execute(&mut *c)
                    .await?
                    .rows_affected())
                })
            })
            .await?;
        if n > 0 {
            self.notify.notify_one();
        }
        Ok(n)
    }

    async fn stats(&self) -> Result<QueueStats> {
        let now = self.now_ms();
        let mut c = self.read.acquire().await?;
        let rows = sqlx::query("SELECT target, state, COUNT(*) AS n FROM deliveries GROUP BY target, state ORDER BY target")
            .fetch_all(&mut *c)
            .await?;
        let mut s = rows::tally(&rows)?;
        let (messages,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM messages")
            .fetch_one(&mut *c)
            .await?;
        s.messages = messages as u64;
        let (oldest,): (Option<i64>,) = sqlx::query_as(
            "SELECT MIN(m.created_at) FROM deliveries d JOIN messages m ON m.id = d.message_id
             WHERE d.state IN ('pending', 'claimed', 'merged')",
        )
        .fetch_one(&mut *c)
        .await?;
        s.oldest_pending_age_ms = oldest.map(|o| (now - o).max(0));
        Ok(s)
    }

    async fn close(&self) {
        // Dropping the last sender ends the writer once it has committed what is
        // queued.
        self.jobs.lock().take();
        let handle = self.writer.lock().take();
        if let Some(h) = handle {
            let _ = h.await;
        }
        self.read.close().await;
    }
}
