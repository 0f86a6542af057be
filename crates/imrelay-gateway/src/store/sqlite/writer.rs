//! The SQLite writer: one task owns the only writing connection and
//! group-commits every write (see [`super`]).

use futures::future::BoxFuture;
use sqlx::sqlite::SqliteConnection;
use sqlx::Connection;
use tokio::sync::{mpsc, oneshot};

use super::super::queue;
use super::super::*;

/// A job's answer, called with the commit's result once the transaction ends.
type Reply = Box<dyn FnOnce(Result<()>) + Send>;
type RunOp =
    Box<dyn for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, (bool, Reply)> + Send>;

/// A write operation: `run` runs on the writer's connection inside a
/// savepoint and returns whether it succeeded (else its savepoint is rolled
/// back) and its reply; `fail` answers its caller without running it (the
/// transaction could not begin).
pub(super) struct Op {
    run: RunOp,
    fail: Box<dyn FnOnce(StoreError) + Send>,
}

/// What the writer is asked to do. The two commonest writes, accepting plain
/// messages and acknowledging a delivery, have their own kinds: the writer
/// runs all of them in one transaction as a few set-based statements
/// (`json_each`), instead of several statements each. Every statement is a
/// round trip to SQLite's worker thread, and those round trips, not SQLite,
/// were the cost (see BENCHMARKS.md).
pub(super) enum Job {
    /// Messages without idempotency keys, each with at least one target.
    Enqueue(EnqueueJob),
    /// A delivery delivered ([`FinishAction::Done`]).
    Done(DoneJob),
    Op(Op),
    /// Runs outside any transaction (a connection setting).
    Setting(Op),
}

/// A job as queued: `taken` is set by whichever comes first, the writer
/// taking the job or its caller giving up waiting (then the writer skips it,
/// so a caller told "timed out" can rely on nothing having been written).
pub(super) struct Queued {
    pub job: Job,
    pub taken: Arc<std::sync::atomic::AtomicBool>,
}

impl Queued {
    /// The job, unless its caller gave up.
    fn take(self) -> Option<Job> {
        (!self.taken.swap(true, std::sync::atomic::Ordering::AcqRel)).then_some(self.job)
    }
}

pub(super) struct EnqueueJob {
    pub msgs: Vec<NewMessage>,
    pub now: i64,
    pub reply: oneshot::Sender<Result<Vec<EnqueueOutcome>>>,
}

pub(super) struct DoneJob {
    pub delivery: DeliveryId,
    pub owner: String,
    pub finish: Finish,
    pub now: i64,
    pub reply: oneshot::Sender<Result<()>>,
}

pub(super) async fn writer_loop(
    mut conn: SqliteConnection,
    mut rx: mpsc::Receiver<Queued>,
    max_batch: usize,
    window: Duration,
) {
    let mut batch: Vec<Job> = Vec::with_capacity(max_batch);
    while let Some(first) = rx.recv().await {
        let Some(first) = first.take() else {
            continue;
        };
        batch.push(first);
        if !window.is_zero() {
            tokio::time::sleep(window).await;
        }
        while batch.len() < max_batch {
            match rx.try_recv() {
                Ok(q) => batch.extend(q.take()),
                Err(_) => break,
            }
        }
        let mut replies: Vec<Reply> = Vec::with_capacity(batch.len());
        let begun = sqlx::query("BEGIN IMMEDIATE").execute(&mut conn).await;
        if let Err(e) = begun {
            tracing::error!(error = %e, "SQLite: cannot begin a transaction");
            let e = StoreError::from(e);
            for job in batch.drain(..) {
                match job {
                    Job::Enqueue(j) => drop(j.reply.send(Err(e.clone()))),
                    Job::Done(j) => drop(j.reply.send(Err(e.clone()))),
                    Job::Op(op) => (op.fail)(e.clone()),
                    Job::Setting(op) => run_setting(&mut conn, op).await,
                }
            }
            continue;
        }
        let mut enqueues = Vec::new();
        let mut dones = Vec::new();
        let mut settings = Vec::new();
        for job in batch.drain(..) {
            match job {
                Job::Enqueue(j) => enqueues.push(j),
                Job::Done(j) => dones.push(j),
                Job::Op(op) => replies.push(run_op(&mut conn, op).await),
                Job::Setting(op) => settings.push(op),
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
        for op in settings {
            run_setting(&mut conn, op).await;
        }
    }
    let _ = conn.close().await;
}

/// Run a setting on the connection, outside any transaction.
async fn run_setting(conn: &mut SqliteConnection, op: Op) {
    let (_, reply) = (op.run)(conn).await;
    reply(Ok(()));
}

/// An operation running `f`, whose result goes to `tx` once the commit ends
/// (the commit's error if it fails).
pub(super) fn replying_op<T, F>(f: F, tx: oneshot::Sender<Result<T>>) -> Op
where
    T: Send + 'static,
    F: for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, Result<T>> + Send + 'static,
{
    // Shared by `run` and `fail`; only one of them is ever called.
    let tx = Arc::new(parking_lot::Mutex::new(Some(tx)));
    let on_fail = tx.clone();
    Op {
        run: Box::new(move |conn| {
            Box::pin(async move {
                let r = f(conn).await;
                let ok = r.is_ok();
                let reply: Reply = Box::new(move |commit: Result<()>| {
                    if let Some(tx) = tx.lock().take() {
                        let _ = tx.send(commit.and(r));
                    }
                });
                (ok, reply)
            })
        }),
        fail: Box::new(move |e| {
            if let Some(tx) = on_fail.lock().take() {
                let _ = tx.send(Err(e));
            }
        }),
    }
}

/// Run one operation inside its own savepoint.
async fn run_op(conn: &mut SqliteConnection, op: Op) -> Reply {
    if let Err(e) = sqlx::query("SAVEPOINT job").execute(&mut *conn).await {
        tracing::error!(error = %e, "SQLite: savepoint failed");
        (op.fail)(StoreError::from(e));
        return Box::new(|_| {});
    }
    let (ok, reply) = (op.run)(&mut *conn).await;
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
    let Some((messages, deliveries)) = enqueue_rows(&jobs) else {
        return enqueue_each(conn, jobs, replies).await;
    };
    let inserted = in_savepoint(conn, move |c| {
        Box::pin(insert_enqueue_rows(c, messages, deliveries))
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
        let out = queue::bulk_outcomes(&j.msgs, &mut inserted);
        let tx = j.reply;
        replies.push(Box::new(move |commit: Result<()>| {
            let _ = tx.send(commit.map(|_| out));
        }));
    }
}

/// The message rows and delivery rows of every job, as JSON arrays for
/// `json_each`; `None` when a message body cannot be serialized.
fn enqueue_rows(jobs: &[EnqueueJob]) -> Option<(String, String)> {
    let mut messages = Vec::new();
    let mut deliveries = Vec::new();
    // A repeated id: only its first occurrence may be inserted (as one by
    // one), so only its deliveries are listed.
    let mut first = std::collections::HashSet::new();
    for j in jobs {
        for m in &j.msgs {
            let body = serde_json::to_string(&m.message).ok()?;
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
    Some((
        serde_json::Value::Array(messages).to_string(),
        serde_json::Value::Array(deliveries).to_string(),
    ))
}

/// Insert the rows of [`enqueue_rows`]; the ids of the messages inserted now.
async fn insert_enqueue_rows(
    c: &mut SqliteConnection,
    messages: String,
    deliveries: String,
) -> Result<std::collections::HashSet<String>> {
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
}

/// The slow path of [`bulk_enqueue`]: each job in its own savepoint.
async fn enqueue_each(
    conn: &mut SqliteConnection,
    jobs: Vec<EnqueueJob>,
    replies: &mut Vec<Reply>,
) {
    for EnqueueJob { msgs, now, reply } in jobs {
        let op = replying_op(
            move |c| Box::pin(async move { queue::enqueue_all(c, &msgs, now).await }),
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
    let rows = done_rows(&jobs);
    let attempts = done_attempt_rows(&jobs);
    let latest = jobs.iter().map(|j| j.now).max().unwrap_or_default();
    let done = in_savepoint(conn, move |c| {
        Box::pin(mark_done(c, rows, attempts, latest))
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
    finish_each(conn, slow, replies).await;
}

/// One `[delivery, owner, parts_done, last outcome, now]` row per job, as a
/// JSON array for `json_each`.
fn done_rows(jobs: &[DoneJob]) -> String {
    serde_json::Value::Array(
        jobs.iter()
            .map(|j| {
                let last = j.finish.attempts.last().map(|a| a.outcome.as_str());
                serde_json::json!([j.delivery, j.owner, j.finish.parts_done, last, j.now])
            })
            .collect(),
    )
    .to_string()
}

/// Every attempt of every job, as an `attempts` row keyed by its delivery.
fn done_attempt_rows(jobs: &[DoneJob]) -> Vec<(DeliveryId, serde_json::Value)> {
    jobs.iter()
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
                    a.message,
                    a.platform_message_id,
                    a.update_token,
                    a.platform_message_id
                        .as_ref()
                        .and_then(|_| super::super::rows::recipients_json(&a.recipients))
                ]);
                (j.delivery, row)
            })
        })
        .collect()
}

/// The three statements of [`bulk_done`]; the deliveries the fence let
/// through (their attempts and merged members are recorded, the others' not).
async fn mark_done(
    c: &mut SqliteConnection,
    rows: String,
    attempts: Vec<(DeliveryId, serde_json::Value)>,
    latest: i64,
) -> Result<std::collections::HashSet<DeliveryId>> {
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
    let done: std::collections::HashSet<DeliveryId> =
        ids.into_iter().map(|(i,)| DeliveryId::from(i)).collect();
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
           status, code, message, platform_message_id, update_token, recipients)
         SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), json_extract(value, '$[2]'),
           json_extract(value, '$[3]'), json_extract(value, '$[4]'), json_extract(value, '$[5]'),
           json_extract(value, '$[6]'), json_extract(value, '$[7]'), json_extract(value, '$[8]'),
           json_extract(value, '$[9]'), json_extract(value, '$[10]'), json_extract(value, '$[11]'),
           json_extract(value, '$[12]')
         FROM json_each(?1)",
    )
    .bind(attempts)
    .execute(&mut *c)
    .await?;
    let ids: Vec<DeliveryId> = done.iter().copied().collect();
    sqlx::query(
        "UPDATE deliveries SET state = 'done', updated_at = ?2
         WHERE merged_into IN (SELECT value FROM json_each(?1)) AND state = 'merged'",
    )
    .bind(json_ids(&ids))
    .bind(latest)
    .execute(&mut *c)
    .await?;
    Ok(done)
}

/// The slow path of [`bulk_done`]: each acknowledgement on its own, so a lost
/// lease is reported exactly.
async fn finish_each(conn: &mut SqliteConnection, jobs: Vec<DoneJob>, replies: &mut Vec<Reply>) {
    for j in jobs {
        let DoneJob {
            delivery,
            owner,
            finish,
            now,
            reply,
        } = j;
        let op = replying_op(
            move |c| {
                Box::pin(async move {
                    queue::finish(c, delivery, &owner, finish, now)
                        .await
                        .map(|_| ())
                })
            },
            reply,
        );
        replies.push(run_op(conn, op).await);
    }
}

pub(super) fn json_ids(ids: &[DeliveryId]) -> String {
    serde_json::to_string(ids).unwrap_or_else(|_| "[]".into())
}
