//! Acknowledgements on PostgreSQL, group-committed: concurrent `finish`
//! calls (a send's outcome) share one transaction and one commit.
//!
//! With hundreds of sends in flight, one transaction per acknowledgement
//! made the server's commits the limit of end-to-end delivery (3,000/s
//! where accepts reached 50,000/s in batches). Each finish still runs the
//! queue's shared statements, fenced on its lease as before; only the
//! commit is shared, and a caller hears "done" only after it.
//!
//! A finish refused by its fence (lease lost) writes nothing, so it is
//! refused alone. A finish whose writes fail leaves the transaction unusable:
//! the batch is rolled back and each half runs again in a transaction of
//! its own, down to single finishes, so one bad finish fails alone.

use std::sync::Arc;

use sqlx::postgres::PgPool;
use tokio::sync::{oneshot, Notify};

use super::super::*;
use super::super::{plan, queue};
use super::group::Group;
use super::PgStore;

/// Finishes one transaction takes at most.
const MAX_BATCH: usize = 256;
/// A batch the server aborted for a deadlock or a serialization failure is
/// run again this many times: the finishes are sound, only their
/// interleaving with another transaction was not.
const RETRIES: usize = 3;

pub(super) struct Pending {
    delivery: DeliveryId,
    owner: String,
    finish: Finish,
    now: i64,
    reply: oneshot::Sender<Result<()>>,
}

/// The group committer of finishes (one per store).
pub(super) type Finisher = Group<Pending>;

/// Start the acknowledgement group committer.
pub(super) fn start(pool: PgPool, channel: String, notify: Arc<Notify>) -> Finisher {
    let committer = Arc::new(Committer {
        pool,
        channel,
        notify,
    });
    Group::start(
        MAX_BATCH,
        |_| 1,
        move |mut batch: Vec<Pending>| {
            // One lock order for every batch: fewer deadlocks between
            // concurrent batches that touch the same message.
            batch.sort_by_key(|p| p.delivery);
            let c = committer.clone();
            async move { c.commit(batch).await }
        },
    )
}

struct Committer {
    pool: PgPool,
    channel: String,
    notify: Arc<Notify>,
}

impl Committer {
    async fn commit(&self, batch: Vec<Pending>) {
        let mut tries = 0;
        let results = loop {
            match self.once(&batch).await {
                Err(e) if tries < RETRIES && retryable(&e) => tries += 1,
                Err(_) if batch.len() > 1 => {
                    let mut first = batch;
                    let second = first.split_off(first.len() / 2);
                    self.commit_part(first).await;
                    self.commit_part(second).await;
                    return;
                }
                r => break r,
            }
        };
        match results {
            Ok((results, wakes)) => {
                if wakes {
                    self.notify.notify_one();
                }
                for (p, r) in batch.into_iter().zip(results) {
                    let _ = p.reply.send(r);
                }
            }
            Err(e) => {
                for p in batch {
                    let _ = p.reply.send(Err(e.clone()));
                }
            }
        }
    }

    /// Half of a batch that failed, in a transaction of its own.
    fn commit_part(&self, part: Vec<Pending>) -> futures::future::BoxFuture<'_, ()> {
        Box::pin(self.commit(part))
    }

    /// The batch in one transaction: each finish's own result (a fence's
    /// refusal, which wrote nothing), and whether any made work due (then
    /// the cluster is woken with the commit). `Err` when a write failed:
    /// nothing of the batch is committed.
    async fn once(&self, batch: &[Pending]) -> Result<(Vec<Result<()>>, bool)> {
        let mut tx = self.pool.begin().await?;
        let mut results = Vec::with_capacity(batch.len());
        let mut wakes = false;
        for p in batch {
            let row = queue::lease(&mut *tx, p.delivery).await?;
            match plan::finish(row.as_ref(), p.delivery, &p.owner, p.finish.clone(), p.now) {
                Ok(plan) => {
                    wakes |= queue::execute(&mut *tx, plan).await?;
                    results.push(Ok(()));
                }
                Err(e) => results.push(Err(e)),
            }
        }
        if wakes {
            sqlx::query("SELECT pg_notify($1, '')")
                .bind(&self.channel)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok((results, wakes))
    }
}

/// A deadlock or serialization failure: the transaction was rolled back
/// whole and may simply run again.
fn retryable(e: &StoreError) -> bool {
    match e {
        StoreError::Database(e) => match &**e {
            sqlx::Error::Database(d) => matches!(d.code().as_deref(), Some("40P01" | "40001")),
            _ => false,
        },
        _ => false,
    }
}

impl PgStore {
    /// A send's outcome, group-committed with the others in flight.
    pub(super) async fn finish_grouped(
        &self,
        delivery: DeliveryId,
        owner: &str,
        finish: Finish,
    ) -> Result<()> {
        self.check_open()?;
        let (reply, rx) = oneshot::channel();
        self.finishes
            .send(Pending {
                delivery,
                owner: owner.to_string(),
                finish,
                now: self.now_ms(),
                reply,
            })
            .map_err(|_| StoreError::Closed)?;
        let r = rx.await.map_err(|_| {
            StoreError::Internal("the acknowledgement writer stopped before answering".into())
        })?;
        self.health.check(self.now_ms(), &r);
        r
    }
}
