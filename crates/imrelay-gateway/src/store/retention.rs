//! Retention: settled messages are deleted once they are old enough, in small
//! batches, so the store does not grow without bound.
//!
//! A message goes when every one of its deliveries has expired: delivered
//! ones `keep_delivered` after they were delivered, dead ones `keep_dead`
//! after they died (the dead-letter queue keeps its own age). A message with
//! any delivery still open (pending, claimed, merged into a digest that has
//! not settled) is kept, whatever its age. Its deliveries and attempts go
//! with it.
//!
//! A pass walks the expired deliveries of each kind in index order with a
//! cursor, `batch` rows per statement and a pause between batches: each batch
//! is one short transaction (on SQLite a job of the writer like any other),
//! so accepts are never held behind a long delete. The SQL is one text for
//! both dialects.

use std::time::Duration;

use super::rows::Cols;
use super::sql::{args, Arg, Conn};
use super::*;

/// How long settled messages are kept, and how the pruning paces itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub keep_delivered: Duration,
    pub keep_dead: Duration,
    /// The console's audit trail (`[console] audit_keep`); expired console
    /// sessions go at every pass too.
    pub keep_audit: Duration,
    /// Deliveries looked at per statement.
    pub batch: u32,
    /// Between two batches (lets accepts through).
    pub pause: Duration,
    /// Between two passes.
    pub every: Duration,
}

impl Retention {
    pub const DEFAULT: Retention = Retention {
        keep_delivered: Duration::from_secs(7 * 24 * 3600),
        keep_dead: Duration::from_secs(30 * 24 * 3600),
        keep_audit: Duration::from_secs(90 * 24 * 3600),
        batch: 1_000,
        pause: Duration::from_millis(100),
        every: Duration::from_secs(60),
    };
}

impl Default for Retention {
    fn default() -> Self {
        Retention::DEFAULT
    }
}

/// Which expired deliveries a batch walks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    Delivered,
    Dead,
}

/// One batch of [`Store::prune`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PruneBatch {
    pub walk: Expiry,
    /// Delivered deliveries settled before this (ms) have expired.
    pub delivered_before: i64,
    /// Dead deliveries that died before this (ms) have expired.
    pub dead_before: i64,
    /// Where the walk stands: (time, delivery id) of the last row looked at.
    pub after: (i64, i64),
    pub limit: u32,
}

/// What a batch did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pruned {
    /// Messages deleted.
    pub messages: u64,
    /// Where the next batch starts; `None` at the end of the walk.
    pub next: Option<(i64, i64)>,
}

/// How much the store holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StoreSize {
    /// Messages with a delivery not settled yet.
    pub open: u64,
    /// Delivered or dead messages (retention deletes them).
    pub settled: u64,
    /// The database's size in bytes, where cheap to know.
    pub bytes: Option<u64>,
}

const WALK_DELIVERED: &str = "SELECT id, message_id, updated_at AS t FROM deliveries
     WHERE state = 'done' AND updated_at < $1 AND updated_at >= $2 AND (updated_at > $2 OR id > $3)
     ORDER BY updated_at, id LIMIT $4";
const WALK_DEAD: &str = "SELECT id, message_id, dead_at AS t FROM deliveries
     WHERE state = 'dead' AND dead_at < $1 AND dead_at >= $2 AND (dead_at > $2 OR id > $3)
     ORDER BY dead_at, id LIMIT $4";
/// Every delivery of the candidates, locked (PostgreSQL) so none changes
/// (a replay) between the check and the delete.
const LOCK: &str = "SELECT id FROM deliveries WHERE message_id IN_LIST($1) ORDER BY id FOR_UPDATE";
// A thread's first message stays while its thread is active (a later message
// within `keep_delivered`): its parts are what later messages update.
const DELETE: &str = "DELETE FROM messages WHERE id IN_LIST($1) AND NOT EXISTS (
       SELECT 1 FROM deliveries o WHERE o.message_id = messages.id
       AND NOT ((o.state = 'done' AND o.updated_at < $2) OR (o.state = 'dead' AND o.dead_at < $3)))
     AND NOT EXISTS (SELECT 1 FROM messages t WHERE t.thread_root = messages.id AND t.id <> messages.id
       AND t.created_at >= $2)";
/// A thread whose first message is gone starts again with the next message.
const FORGET_THREADS: &str = "DELETE FROM threads WHERE root IN_LIST($1)
     AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.id = threads.root)";
const COUNTS: &str = "SELECT (SELECT COUNT(*) FROM messages) AS total,
       (SELECT COUNT(DISTINCT message_id) FROM deliveries
        WHERE state IN ('pending', 'claimed', 'merged')) AS open";

/// One batch: look at up to `limit` expired deliveries after the cursor and
/// delete those of their messages that have expired entirely.
pub(super) async fn prune<C: Conn>(c: &mut C, b: &PruneBatch) -> Result<Pruned> {
    let (walk, before) = match b.walk {
        Expiry::Delivered => (WALK_DELIVERED, b.delivered_before),
        Expiry::Dead => (WALK_DEAD, b.dead_before),
    };
    if b.walk == Expiry::Delivered && b.after == (i64::MIN, i64::MIN) {
        // Once a pass: groups long idle (see `groups::forget_idle`).
        super::groups::forget_idle(c, b.delivered_before, b.limit).await?;
    }
    let rows = c
        .fetch(walk, args![before, b.after.0, b.after.1, b.limit])
        .await?;
    let next = if rows.len() < b.limit as usize {
        None
    } else {
        rows.last()
            .map(|r| Ok::<_, StoreError>((r.int("t")?, r.int("id")?)))
            .transpose()?
    };
    let mut ids = rows
        .iter()
        .map(|r| r.text("message_id"))
        .collect::<Result<Vec<_>>>()?;
    ids.sort_unstable();
    ids.dedup();
    if ids.is_empty() {
        return Ok(Pruned { messages: 0, next });
    }
    c.fetch(LOCK, args![ids.clone()]).await?;
    let messages = c
        .exec(
            DELETE,
            args![ids.clone(), b.delivered_before, b.dead_before],
        )
        .await?;
    c.exec(FORGET_THREADS, args![ids]).await?;
    Ok(Pruned { messages, next })
}

/// Open and settled message counts (the bytes are the backend's).
pub(super) async fn counts<C: Conn>(c: &mut C) -> Result<StoreSize> {
    let rows = c.fetch(COUNTS, vec![]).await?;
    let r = rows
        .first()
        .ok_or_else(|| StoreError::Internal("the size query returned no row".into()))?;
    let total = r.int("total")?.max(0) as u64;
    let open = r.int("open")?.max(0) as u64;
    Ok(StoreSize {
        open,
        settled: total.saturating_sub(open),
        bytes: None,
    })
}

/// One pass over every expired message as of `now`: batches until both
/// walks end, `pause` between batches. Returns how many messages went.
/// Expired console sessions and old audit rows go first.
pub async fn prune_expired(store: &dyn Store, r: &Retention, now: i64) -> Result<u64> {
    let age = |d: Duration| now.saturating_sub(d.as_millis().min(i64::MAX as u128) as i64);
    // Few rows (logins and console actions): one statement each.
    store.prune_console(now, age(r.keep_audit)).await?;
    let mut total = 0;
    for walk in [Expiry::Delivered, Expiry::Dead] {
        let mut after = (i64::MIN, i64::MIN);
        loop {
            let p = store
                .prune(PruneBatch {
                    walk,
                    delivered_before: age(r.keep_delivered),
                    dead_before: age(r.keep_dead),
                    after,
                    limit: r.batch.max(1),
                })
                .await?;
            total += p.messages;
            let Some(next) = p.next else {
                break;
            };
            after = next;
            if !r.pause.is_zero() {
                tokio::time::sleep(r.pause).await;
            }
        }
    }
    Ok(total)
}

/// Prune every `r.every` until the store closes (the first pass at once),
/// telling `pruned` how many messages each pass deleted (metrics).
pub fn spawn(store: Arc<dyn Store>, r: Retention, pruned: fn(u64)) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(r.every.max(Duration::from_secs(1)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match prune_expired(&*store, &r, store.now_ms()).await {
                Ok(n) => pruned(n),
                Err(StoreError::Closed) => return,
                Err(e) => {
                    tracing::warn!(error = %e, "retention: pruning failed; trying again next pass")
                }
            }
        }
    })
}
