//! Plain accepts on PostgreSQL: messages without idempotency keys, written
//! with their deliveries by one set-based statement, and concurrent accepts
//! group-committed into one such statement.
//!
//! One transaction per accept made the server's commit (WAL flush) and the
//! cross-instance `pg_notify` (which serialises committing transactions) the
//! limit: pgbench did 14,500 single-row transactions a second where imrelay
//! did 3,000. The [`Batcher`] takes what concurrent callers hand it while
//! its statements are in flight, writes them as one statement (one commit,
//! one notification), and answers each caller only after that commit.

use std::sync::Arc;

use sqlx::postgres::PgPool;
use tokio::sync::{oneshot, Notify};

use super::super::queue;
use super::super::*;
use super::group::Group;
use super::PgStore;

/// Messages one statement takes at most (bounded so one statement's arrays
/// stay small and its commit prompt).
const MAX_BATCH: usize = 1_000;

/// One caller's accept waiting for its commit.
pub(super) struct Pending {
    msgs: Vec<NewMessage>,
    now: i64,
    reply: oneshot::Sender<Result<Vec<EnqueueOutcome>>>,
}

/// The group committer of plain accepts (one per store).
pub(super) type Batcher = Group<Pending>;

/// Start the accept group committer.
pub(super) fn start(pool: PgPool, channel: String, notify: Arc<Notify>) -> Batcher {
    let writer = Arc::new(Writer {
        pool,
        channel,
        notify,
    });
    Group::start(
        MAX_BATCH,
        |p: &Pending| p.msgs.len(),
        move |batch| {
            let w = writer.clone();
            async move { w.write(batch).await }
        },
    )
}

struct Writer {
    pool: PgPool,
    channel: String,
    notify: Arc<Notify>,
}

impl Writer {
    /// Write a batch as one statement. When the server refuses it and it
    /// holds several callers, each half is written on its own, down to single callers: one
    /// bad accept costs a few more statements but fails alone, and every
    /// caller gets its own error.
    fn write(&self, batch: Vec<Pending>) -> futures::future::BoxFuture<'_, ()> {
        Box::pin(async move {
            let all: Vec<&NewMessage> = batch.iter().flat_map(|p| &p.msgs).collect();
            let nows: Vec<i64> = batch
                .iter()
                .flat_map(|p| std::iter::repeat_n(p.now, p.msgs.len()))
                .collect();
            match insert(&self.pool, &self.channel, &all, &nows).await {
                Ok(mut inserted) => {
                    if !inserted.is_empty() {
                        self.notify.notify_one();
                    }
                    for p in batch {
                        let out = queue::bulk_outcomes(&p.msgs, &mut inserted);
                        let _ = p.reply.send(Ok(out));
                    }
                }
                // Only a statement the server refused is known to have
                // written nothing; after a lost connection the batch may
                // have committed, so its callers learn the error as it is.
                Err(e) if batch.len() == 1 || !refused(&e) => {
                    for p in batch {
                        let _ = p.reply.send(Err(e.clone()));
                    }
                }
                Err(_) => {
                    let mut first = batch;
                    let second = first.split_off(first.len() / 2);
                    self.write(first).await;
                    self.write(second).await;
                }
            }
        })
    }
}

/// The server refused the statement (so it wrote nothing).
fn refused(e: &StoreError) -> bool {
    matches!(e, StoreError::Database(e) if matches!(**e, sqlx::Error::Database(_)))
}

/// The messages, their deliveries in order, and the wake-up of the other
/// instances, in one statement (one round trip, atomic on its own). Returns
/// the ids inserted; a repeated id is inserted once (its first occurrence).
async fn insert(
    pool: &PgPool,
    channel: &str,
    msgs: &[&NewMessage],
    nows: &[i64],
) -> Result<std::collections::HashSet<String>> {
    let n = msgs.len();
    let (mut ids, mut channels, mut kinds, mut bodies) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let (mut traces, mut origins) = (Vec::with_capacity(n), Vec::with_capacity(n));
    let (mut d_ids, mut d_targets, mut d_nows) = (Vec::new(), Vec::new(), Vec::new());
    let mut first = std::collections::HashSet::new();
    for (m, now) in msgs.iter().zip(nows) {
        let body = serde_json::to_string(&m.message)
            .map_err(|e| StoreError::Invalid(format!("message: {e}")))?;
        ids.push(m.id.as_str());
        channels.push(m.channel.as_str());
        kinds.push(m.kind.as_str());
        bodies.push(body);
        traces.push(m.trace_id.as_deref());
        origins.push(m.origin.as_deref());
        if first.insert(m.id.as_str()) {
            for t in &m.targets {
                d_ids.push(m.id.as_str());
                d_targets.push(t.as_str());
                d_nows.push(*now);
            }
        }
    }
    let inserted: Vec<(String,)> = sqlx::query_as(
        "WITH input AS (
           SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bigint[])
             WITH ORDINALITY AS t(id, channel, kind, body, trace_id, origin, now, ord)),
         ins AS (
           INSERT INTO messages (id, channel, kind, body, trace_id, origin, created_at)
           SELECT id, channel, kind, body, trace_id, origin, now FROM input ORDER BY ord
           ON CONFLICT DO NOTHING RETURNING id),
         dl AS (
           INSERT INTO deliveries (message_id, target, state, due_at, created_at, updated_at)
           SELECT d.mid, d.target, 'pending', d.now, d.now, d.now
           FROM UNNEST($8::text[], $9::text[], $10::bigint[]) WITH ORDINALITY AS d(mid, target, now, ord)
           WHERE d.mid IN (SELECT id FROM ins) ORDER BY d.ord)
         SELECT ins.id FROM ins CROSS JOIN (SELECT pg_notify($11, '')) AS wake",
    )
    .bind(&ids)
    .bind(&channels)
    .bind(&kinds)
    .bind(&bodies)
    .bind(&traces)
    .bind(&origins)
    .bind(nows)
    .bind(&d_ids)
    .bind(&d_targets)
    .bind(&d_nows)
    .bind(channel)
    .fetch_all(pool)
    .await?;
    Ok(inserted.into_iter().map(|(i,)| i).collect())
}

impl PgStore {
    /// Accept messages without idempotency keys, each with a target: handed
    /// to the group committer, answered after the commit.
    pub(super) async fn enqueue_plain(
        &self,
        msgs: Vec<NewMessage>,
        now: i64,
    ) -> Result<Vec<EnqueueOutcome>> {
        let r = self.enqueue_plain_unchecked(msgs, now).await;
        self.health.check(self.now_ms(), &r);
        r
    }

    async fn enqueue_plain_unchecked(
        &self,
        msgs: Vec<NewMessage>,
        now: i64,
    ) -> Result<Vec<EnqueueOutcome>> {
        self.check_open()?;
        let (reply, rx) = oneshot::channel();
        self.accepts
            .send(Pending { msgs, now, reply })
            .map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| {
            StoreError::Internal("the accept writer stopped before answering".into())
        })?
    }
}
