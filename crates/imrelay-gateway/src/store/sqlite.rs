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
//!
//! The queue's transitions are planned in [`super::plan`] and written by the
//! shared statements of [`super::queue`]; this file keeps what is SQLite's
//! own: the writer (see [`writer`]), its set-based accepts and
//! acknowledgements (`json_each`), and the claims.

mod open;
mod writer;

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
    SqliteRow, SqliteSynchronous,
};
use sqlx::ConnectOptions;
use tokio::sync::{mpsc, oneshot, Notify};

use super::console;
use super::escalations;
use super::groups;
use super::health::{Health, PROBE};
use super::latency;
use super::lifecycle;
use super::queue;
use super::retention;
use super::silences;
use super::sql::{args, impl_conn, Arg, Conn, Dialect};
use super::*;
use writer::{replying_op, DoneJob, EnqueueJob, Job, Queued};

/// The embedded migrations.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

impl_conn!(
    sqlite,
    SqliteConnection,
    sqlx::Sqlite,
    SqliteRow,
    Dialect::Sqlite
);

/// The SQLite [`Store`].
pub struct SqliteStore {
    read: SqlitePool,
    jobs: Mutex<Option<mpsc::Sender<Queued>>>,
    writer: Mutex<Option<tokio::task::JoinHandle<()>>>,
    notify: Arc<Notify>,
    clock: Arc<dyn Clock>,
    path: PathBuf,
    health: Health,
    /// Longest a write waits for the writer to take it.
    acquire_timeout: Duration,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish()
    }
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

    fn health(&self) -> StoreHealth {
        self.health.get()
    }

    async fn ready(&self) -> StoreHealth {
        let limit = self.acquire_timeout + Duration::from_secs(1);
        self.health
            .ready(
                || self.now_ms(),
                limit,
                || async {
                    let now = self.now_ms();
                    self.write(move |c| {
                        Box::pin(async move { c.exec(PROBE, args![now]).await.map(|_| ()) })
                    })
                    .await
                },
            )
            .await
    }

    async fn enqueue(&self, msgs: Vec<NewMessage>) -> Result<Vec<EnqueueOutcome>> {
        let now = self.now_ms();
        let out = if msgs.iter().all(NewMessage::is_plain) {
            let (reply, rx) = oneshot::channel();
            self.submit(Job::Enqueue(EnqueueJob { msgs, now, reply }), rx)
                .await?
        } else {
            self.write(move |c| Box::pin(async move { queue::enqueue_all(c, &msgs, now).await }))
                .await?
        };
        self.health.committed(now);
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
        queue::message_view(&mut *c, id).await
    }

    async fn sent_parts(&self, message: &str) -> Result<Vec<(String, SentPartRecord)>> {
        let mut c = self.read.acquire().await?;
        lifecycle::sent_parts(&mut *c, message).await
    }

    async fn superseded(&self, root: &str, seq: i64, target: &str) -> Result<bool> {
        let mut c = self.read.acquire().await?;
        lifecycle::superseded(&mut *c, root, seq, target).await
    }

    async fn thread_latest(&self, root: &str) -> Result<Option<MessageId>> {
        let mut c = self.read.acquire().await?;
        lifecycle::thread_latest(&mut *c, root).await
    }

    async fn adopt_thread(&self, id: &str) -> Result<Option<String>> {
        let (id, now) = (id.to_string(), self.now_ms());
        self.write(move |c| Box::pin(async move { lifecycle::adopt_thread(c, &id, now).await }))
            .await
    }

    async fn acknowledge(&self, root: &str, ack: Ack, update: Option<NewMessage>) -> Result<()> {
        let (root, now) = (root.to_string(), self.now_ms());
        let notify = update.is_some();
        self.write(move |c| {
            Box::pin(async move {
                lifecycle::insert_ack(c, &root, &ack).await?;
                escalations::stop(c, &root, EscalationState::Acknowledged, &ack.user_id, now)
                    .await?;
                if let Some(u) = &update {
                    queue::insert_new(c, u, now).await?;
                }
                Ok(())
            })
        })
        .await?;
        if notify {
            self.notify.notify_one();
        }
        Ok(())
    }

    async fn set_update_token(&self, platform_message_id: &str, token: &str) -> Result<()> {
        let (id, token) = (platform_message_id.to_string(), token.to_string());
        self.write(move |c| {
            Box::pin(async move { lifecycle::set_update_token(c, &id, &token).await })
        })
        .await
    }

    async fn due_groups(&self, limit: u32) -> Result<Vec<DueGroup>> {
        let mut c = self.read.acquire().await?;
        groups::due(&mut *c, self.now_ms(), limit).await
    }

    async fn send_group(&self, send: SendGroup) -> Result<bool> {
        let now = self.now_ms();
        let sent = self
            .write(move |c| Box::pin(async move { groups::send(c, &send, now).await }))
            .await?;
        if sent {
            self.notify.notify_one();
        }
        Ok(sent)
    }

    async fn group(&self, id: &str) -> Result<Option<DueGroup>> {
        let mut c = self.read.acquire().await?;
        groups::get(&mut *c, id).await
    }

    async fn group_members(&self, id: &str) -> Result<Vec<(MessageId, imrelay_sdk::Message)>> {
        let mut c = self.read.acquire().await?;
        groups::members(&mut *c, id).await
    }

    async fn due_escalations(&self, limit: u32) -> Result<Vec<Escalation>> {
        let mut c = self.read.acquire().await?;
        escalations::due(&mut *c, self.now_ms(), limit).await
    }

    async fn fire_escalation(&self, fire: FireStep) -> Result<bool> {
        let now = self.now_ms();
        let queued = !fire.messages.is_empty();
        let fired = self
            .write(move |c| Box::pin(async move { escalations::fire(c, &fire, now).await }))
            .await?;
        if fired && queued {
            self.notify.notify_one();
        }
        Ok(fired)
    }

    async fn stop_escalation(&self, root: &str, state: EscalationState, by: &str) -> Result<bool> {
        let (root, by, now) = (root.to_string(), by.to_string(), self.now_ms());
        self.write(move |c| {
            Box::pin(async move { Ok(escalations::stop(c, &root, state, &by, now).await? > 0) })
        })
        .await
    }

    async fn put_override(&self, o: Override) -> Result<()> {
        self.write(move |c| Box::pin(async move { escalations::put_override(c, &o).await }))
            .await
    }

    async fn overrides(&self, schedule: Option<&str>) -> Result<Vec<Override>> {
        let mut c = self.read.acquire().await?;
        escalations::overrides(&mut *c, schedule, self.now_ms()).await
    }

    async fn delete_override(&self, id: &str) -> Result<bool> {
        let id = id.to_string();
        self.write(move |c| Box::pin(async move { escalations::delete_override(c, &id).await }))
            .await
    }

    async fn put_silence(&self, silence: Silence) -> Result<()> {
        self.write(move |c| Box::pin(async move { silences::put(c, &silence).await }))
            .await
    }

    async fn silences(&self) -> Result<Vec<Silence>> {
        let mut c = self.read.acquire().await?;
        silences::list(&mut *c).await
    }

    async fn expire_silence(&self, id: &str, release: Release) -> Result<Option<u64>> {
        let (id, now) = (id.to_string(), self.now_ms());
        let n = self
            .write(move |c| Box::pin(async move { silences::expire(c, &id, now, &release).await }))
            .await?;
        if n.is_some_and(|n| n > 0) {
            self.notify.notify_one();
        }
        Ok(n)
    }

    async fn lock_thread(
        &self,
        root: &str,
        target: &str,
        owner: &str,
        lease: Duration,
    ) -> Result<bool> {
        let now = self.now_ms();
        let until = now + lease.as_millis() as i64;
        let (root, target, owner) = (root.to_string(), target.to_string(), owner.to_string());
        self.write(move |c| {
            Box::pin(
                async move { lifecycle::lock_thread(c, &root, &target, &owner, until, now).await },
            )
        })
        .await
    }

    async fn unlock_thread(&self, root: &str, target: &str, owner: &str) -> Result<()> {
        let (root, target, owner) = (root.to_string(), target.to_string(), owner.to_string());
        self.write(move |c| {
            Box::pin(async move { lifecycle::unlock_thread(c, &root, &target, &owner).await })
        })
        .await
    }

    async fn spend_update_token(&self, platform_message_id: &str, token: &str) -> Result<()> {
        let (id, token) = (platform_message_id.to_string(), token.to_string());
        self.write(move |c| {
            Box::pin(async move { lifecycle::spend_update_token(c, &id, &token).await })
        })
        .await
    }

    async fn backlog(&self, cap: u64) -> Result<Vec<TargetBacklog>> {
        let now = self.now_ms();
        let mut c = self.read.acquire().await?;
        queue::backlog(&mut *c, now, cap).await
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
                queue::claimed(c, ids.into_iter().map(|(i,)| DeliveryId::from(i)).collect(), queue::ClaimOrder::Due).await
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
                queue::progress(c, delivery, &owner, attempts, parts_done, lease_until, now).await
            })
        })
        .await
    }

    async fn finish(&self, delivery: DeliveryId, owner: &str, finish: Finish) -> Result<()> {
        let owner = owner.to_string();
        let now = self.now_ms();
        let wakes = if matches!(finish.action, FinishAction::Done) {
            let (reply, rx) = oneshot::channel();
            let job = DoneJob {
                delivery,
                owner,
                finish,
                now,
                reply,
            };
            self.submit(Job::Done(job), rx).await?;
            false
        } else {
            self.write(move |c| {
                Box::pin(async move { queue::finish(c, delivery, &owner, finish, now).await })
            })
            .await?
        };
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
        let owner = owner.to_string();
        let now = self.now_ms();
        let id = self
            .write(move |c| {
                Box::pin(async move { queue::coalesce(c, &owner, members, digest, now).await })
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
        let mut c = self.read.acquire().await?;
        queue::overdue(&mut *c, channel, created_before, limit).await
    }

    async fn fall_back(&self, delivery: DeliveryId, fallback: NewMessage) -> Result<bool> {
        let now = self.now_ms();
        let done = self
            .write(move |c| {
                Box::pin(async move { queue::fall_back(c, delivery, &fallback, now).await })
            })
            .await?;
        if done {
            self.notify.notify_one();
        }
        Ok(done)
    }

    async fn list_dead(&self, filter: &DeadFilter) -> Result<Vec<DeadEntry>> {
        let mut c = self.read.acquire().await?;
        queue::list_dead(&mut *c, filter).await
    }

    async fn search_messages(&self, filter: &MessageFilter) -> Result<Vec<MessageSummary>> {
        let mut c = self.read.acquire().await?;
        queue::search_messages(&mut *c, filter).await
    }

    async fn activity(
        &self,
        since: i64,
        channels: Option<&[String]>,
    ) -> Result<Vec<ActivityMinute>> {
        let mut c = self.read.acquire().await?;
        queue::activity(&mut *c, since, channels).await
    }

    async fn latency(&self, since: i64, channels: Option<&[String]>) -> Result<Latency> {
        let mut c = self.read.acquire().await?;
        latency::latency(&mut *c, since, channels).await
    }

    async fn get_dead(&self, delivery: DeliveryId) -> Result<Option<DeadEntry>> {
        let mut c = self.read.acquire().await?;
        queue::get_dead(&mut *c, delivery).await
    }

    async fn replay(&self, sel: &DeadSelector) -> Result<u64> {
        let sel = sel.clone();
        let now = self.now_ms();
        let n = self
            .write(move |c| Box::pin(async move { queue::replay(c, &sel, now).await }))
            .await?;
        if n > 0 {
            self.notify.notify_one();
        }
        Ok(n)
    }

    async fn purge_dead(&self, sel: &DeadSelector) -> Result<u64> {
        let sel = sel.clone();
        self.write(move |c| Box::pin(async move { queue::purge(c, &sel).await }))
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
            Box::pin(async move { queue::extend_leases(c, &owner, deliveries, lease_until).await })
        })
        .await
    }

    async fn release(&self, owner: &str) -> Result<u64> {
        let owner = owner.to_string();
        let now = self.now_ms();
        let n = self
            .write(move |c| Box::pin(async move { queue::release(c, &owner, now).await }))
            .await?;
        if n > 0 {
            self.notify.notify_one();
        }
        Ok(n)
    }

    async fn stats(&self) -> Result<QueueStats> {
        let now = self.now_ms();
        let mut c = self.read.acquire().await?;
        queue::stats(&mut *c, now).await
    }

    async fn prune(&self, batch: PruneBatch) -> Result<Pruned> {
        // A job of the writer like any other: one short transaction per
        // batch, so accepts queue behind it for milliseconds at most.
        self.write(move |c| Box::pin(async move { retention::prune(c, &batch).await }))
            .await
    }

    async fn console(&self, op: ConsoleOp) -> Result<ConsoleAnswer> {
        if op.reads_only() {
            let mut c = self.read.acquire().await?;
            return console::run(&mut *c, op).await;
        }
        self.write(move |c| Box::pin(async move { console::run(c, op).await }))
            .await
    }

    async fn size(&self) -> Result<StoreSize> {
        let mut c = self.read.acquire().await?;
        let mut size = retention::counts(&mut *c).await?;
        let (bytes,): (i64,) = sqlx::query_as(
            "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()",
        )
        .fetch_one(&mut *c)
        .await?;
        size.bytes = Some(bytes.max(0) as u64);
        Ok(size)
    }

    async fn close(&self) {
        self.health.failed(self.now_ms(), &StoreError::Closed);
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A write the writer does not take within the acquire timeout (the
    /// writer stalled, as on a hung disk) fails fast as a timeout and is
    /// withdrawn: nothing of it is written later.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_write_not_taken_in_time_fails_fast_and_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("q.db").display());
        let mut opts = StoreOptions::new(url);
        opts.acquire_timeout = Duration::from_millis(100);
        let store = Arc::new(SqliteStore::open(opts).await.unwrap());
        let s = store.clone();
        let stall = tokio::spawn(async move {
            s.write(|_| {
                Box::pin(async {
                    tokio::time::sleep(Duration::from_millis(800)).await;
                    Ok(())
                })
            })
            .await
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        let one = || {
            NewMessage::new(
                "ops",
                imrelay_sdk::Message::text("a"),
                vec!["ops/x".parse().unwrap()],
            )
        };
        let t = std::time::Instant::now();
        let err = store.enqueue(vec![one()]).await.unwrap_err();
        assert!(
            t.elapsed() < Duration::from_millis(500),
            "{:?}",
            t.elapsed()
        );
        assert_eq!(fault_kind(&err), Some("timeout"), "{err}");
        assert!(!store.health().ok);
        // The write the writer had taken still commits.
        stall.await.unwrap().unwrap();
        assert_eq!(store.stats().await.unwrap().messages, 0);
        store.enqueue(vec![one()]).await.unwrap();
        assert!(store.health().ok);
        assert_eq!(store.stats().await.unwrap().messages, 1);
        store.close().await;
    }
}
