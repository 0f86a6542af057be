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
//! - **Ordered targets** are claimed one instance at a time, in accept order
//!   (see `claim_in_order`): an advisory lock per target serialises their
//!   claimers, and no SKIP LOCKED, which would let a later delivery pass.
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
//! Stored queue times come from each instance's clock (like SQLite);
//! instances must keep their clocks in sync (NTP) — the lease margin absorbs
//! small skew. The cluster rate limiter and token cache read only the
//! database's clock (see [`cluster`]).
//!
//! # URL
//! `postgres://user:password@host:5432/db`, optionally with `?schema=name`:
//! the schema is created if missing and holds all tables, so several clusters
//! (or test runs) can share one database. Other query parameters are sqlx's
//! (`sslmode`, `options[...]`, ...).
//!
//! The queue's transitions are planned in [`super::plan`] and written by the
//! shared statements of [`super::queue`]; this file keeps what is
//! PostgreSQL's own: the claims (SKIP LOCKED), the set-based accepts
//! (`UNNEST`), LISTEN/NOTIFY, and the cluster limiter and token cache on the
//! store's pool ([`cluster`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::future::BoxFuture;
use imrelay_sdk::clock::Clock;
use imrelay_sdk::token::SharedTokenCache;
use parking_lot::Mutex;
use sqlx::postgres::{PgConnection, PgListener, PgPool, PgPoolOptions, PgRow};
use tokio::sync::Notify;

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
use crate::domain::cluster::SharedLimiter;

mod accept;
mod claim;
pub mod cluster;
mod conn;
mod finish;
mod group;
mod target;

pub use target::{check_url, is_postgres_url, redact_url, PgTarget};

/// The embedded migrations.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

impl_conn!(
    postgres,
    PgConnection,
    sqlx::Postgres,
    PgRow,
    Dialect::Postgres
);

/// The PostgreSQL [`Store`].
pub struct PgStore {
    pool: PgPool,
    notify: Arc<Notify>,
    clock: Arc<dyn Clock>,
    target: PgTarget,
    channel: String,
    listener: Mutex<Option<tokio::task::JoinHandle<()>>>,
    accepts: accept::Batcher,
    finishes: finish::Finisher,
    closed: AtomicBool,
    rate_margin: Duration,
    health: Health,
    acquire_timeout: Duration,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("target", &self.target)
            .finish()
    }
}

#[async_trait]
impl Store for PgStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    fn shared_limiter(&self) -> Option<Arc<dyn SharedLimiter>> {
        Some(Arc::new(
            cluster::PgLimiter::new(self.pool.clone()).with_margin(self.rate_margin),
        ))
    }

    fn shared_tokens(&self) -> Option<Arc<dyn SharedTokenCache>> {
        Some(Arc::new(cluster::PgTokenCache::new(self.pool.clone())))
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
                    self.tx(false, move |c| {
                        Box::pin(async move {
                            c.exec(PROBE, args![now]).await?;
                            Ok(((), false))
                        })
                    })
                    .await
                },
            )
            .await
    }

    async fn enqueue(&self, msgs: Vec<NewMessage>) -> Result<Vec<EnqueueOutcome>> {
        let now = self.now_ms();
        let out = if msgs.iter().all(NewMessage::is_plain) {
            self.enqueue_plain(msgs, now).await?
        } else {
            self.tx(false, move |c| {
                Box::pin(async move {
                    let out = queue::enqueue_all(c, &msgs, now).await?;
                    let created = out
                        .iter()
                        .any(|o| matches!(o, EnqueueOutcome::Created { .. }));
                    Ok((out, created))
                })
            })
            .await?
        };
        self.health.committed(now);
        Ok(out)
    }

    async fn get_message(&self, id: &str) -> Result<Option<MessageView>> {
        self.check_open()?;
        // One snapshot for the message, its deliveries and attempts.
        let mut tx = self.snapshot().await?;
        let view = queue::message_view(&mut *tx, id).await?;
        tx.commit().await?;
        Ok(view)
    }

    async fn sent_parts(&self, message: &str) -> Result<Vec<(String, SentPartRecord)>> {
        self.check_open()?;
        let mut c = self.pool.acquire().await?;
        lifecycle::sent_parts(&mut *c, message).await
    }

    async fn superseded(&self, root: &str, seq: i64, target: &str) -> Result<bool> {
        self.check_open()?;
        let mut c = self.pool.acquire().await?;
        lifecycle::superseded(&mut *c, root, seq, target).await
    }

    async fn thread_latest(&self, root: &str) -> Result<Option<MessageId>> {
        self.check_open()?;
        let mut c = self.pool.acquire().await?;
        lifecycle::thread_latest(&mut *c, root).await
    }

    async fn adopt_thread(&self, id: &str) -> Result<Option<String>> {
        let (id, now) = (id.to_string(), self.now_ms());
        self.tx(false, move |c| {
            Box::pin(async move { Ok((lifecycle::adopt_thread(c, &id, now).await?, false)) })
        })
        .await
    }

    async fn acknowledge(&self, root: &str, ack: Ack, update: Option<NewMessage>) -> Result<()> {
        let (root, now) = (root.to_string(), self.now_ms());
        self.tx(false, move |c| {
            Box::pin(async move {
                lifecycle::insert_ack(c, &root, &ack).await?;
                escalations::stop(c, &root, EscalationState::Acknowledged, &ack.user_id, now)
                    .await?;
                if let Some(u) = &update {
                    queue::insert_new(c, u, now).await?;
                }
                Ok(((), update.is_some()))
            })
        })
        .await
    }

    async fn set_update_token(&self, platform_message_id: &str, token: &str) -> Result<()> {
        let (id, token) = (platform_message_id.to_string(), token.to_string());
        self.tx(false, move |c| {
            Box::pin(async move {
                lifecycle::set_update_token(c, &id, &token).await?;
                Ok(((), false))
            })
        })
        .await
    }

    async fn due_groups(&self, limit: u32) -> Result<Vec<DueGroup>> {
        self.check_open()?;
        let mut c = self.pool.acquire().await?;
        groups::due(&mut *c, self.now_ms(), limit).await
    }

    async fn send_group(&self, send: SendGroup) -> Result<bool> {
        let now = self.now_ms();
        self.tx(false, move |c| {
            Box::pin(async move {
                let sent = groups::send(c, &send, now).await?;
                Ok((sent, sent))
            })
        })
        .await
    }

    async fn group(&self, id: &str) -> Result<Option<DueGroup>> {
        self.check_open()?;
        let mut c = self.pool.acquire().await?;
        groups::get(&mut *c, id).await
    }

    async fn group_members(&self, id: &str) -> Result<Vec<(MessageId, imrelay_sdk::Message)>> {
        self.check_open()?;
        let mut c = self.pool.acquire().await?;
        groups::members(&mut *c, id).await
    }

    async fn due_escalations(&self, limit: u32) -> Result<Vec<Escalation>> {
        self.check_open()?;
        let mut c = self.pool.acquire().await?;
        escalations::due(&mut *c, self.now_ms(), limit).await
    }

    async fn fire_escalation(&self, fire: FireStep) -> Result<bool> {
        let now = self.now_ms();
        self.tx(false, move |c| {
            Box::pin(async move {
                let fired = escalations::fire(c, &fire, now).await?;
                Ok((fired, fired && !fire.messages.is_empty()))
            })
        })
        .await
    }

    async fn stop_escalation(&self, root: &str, state: EscalationState, by: &str) -> Result<bool> {
        let (root, by, now) = (root.to_string(), by.to_string(), self.now_ms());
        self.tx(false, move |c| {
            Box::pin(async move {
                Ok((
                    escalations::stop(c, &root, state, &by, now).await? > 0,
                    false,
                ))
            })
        })
        .await
    }

    async fn put_override(&self, o: Override) -> Result<()> {
        self.tx(false, move |c| {
            Box::pin(async move {
                escalations::put_override(c, &o).await?;
                Ok(((), false))
            })
        })
        .await
    }

    async fn overrides(&self, schedule: Option<&str>) -> Result<Vec<Override>> {
        self.check_open()?;
        let mut c = self.pool.acquire().await?;
        escalations::overrides(&mut *c, schedule, self.now_ms()).await
    }

    async fn delete_override(&self, id: &str) -> Result<bool> {
        let id = id.to_string();
        self.tx(false, move |c| {
            Box::pin(async move { Ok((escalations::delete_override(c, &id).await?, false)) })
        })
        .await
    }

    async fn put_silence(&self, silence: Silence) -> Result<()> {
        self.tx(false, move |c| {
            Box::pin(async move {
                silences::put(c, &silence).await?;
                Ok(((), false))
            })
        })
        .await
    }

    async fn silences(&self) -> Result<Vec<Silence>> {
        self.check_open()?;
        let mut c = self.pool.acquire().await?;
        silences::list(&mut *c).await
    }

    async fn expire_silence(&self, id: &str, release: Release) -> Result<Option<u64>> {
        let (id, now) = (id.to_string(), self.now_ms());
        self.tx(false, move |c| {
            Box::pin(async move {
                let n = silences::expire(c, &id, now, &release).await?;
                Ok((n, n.is_some_and(|n| n > 0)))
            })
        })
        .await
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
        self.tx(false, move |c| {
            Box::pin(async move {
                let got = lifecycle::lock_thread(c, &root, &target, &owner, until, now).await?;
                Ok((got, false))
            })
        })
        .await
    }

    async fn unlock_thread(&self, root: &str, target: &str, owner: &str) -> Result<()> {
        let (root, target, owner) = (root.to_string(), target.to_string(), owner.to_string());
        self.tx(false, move |c| {
            Box::pin(async move {
                lifecycle::unlock_thread(c, &root, &target, &owner).await?;
                Ok(((), false))
            })
        })
        .await
    }

    async fn spend_update_token(&self, platform_message_id: &str, token: &str) -> Result<()> {
        let (id, token) = (platform_message_id.to_string(), token.to_string());
        self.tx(false, move |c| {
            Box::pin(async move {
                lifecycle::spend_update_token(c, &id, &token).await?;
                Ok(((), false))
            })
        })
        .await
    }

    async fn backlog(&self, cap: u64) -> Result<Vec<TargetBacklog>> {
        self.check_open()?;
        let now = self.now_ms();
        let mut c = self.pool.acquire().await?;
        queue::backlog(&mut *c, now, cap).await
    }

    async fn claim(&self, req: ClaimRequest) -> Result<Vec<Claimed>> {
        self.claim_deliveries(req).await
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
                queue::progress(c, delivery, &owner, attempts, parts_done, lease_until, now)
                    .await?;
                Ok(((), false))
            })
        })
        .await
    }

    async fn finish(&self, delivery: DeliveryId, owner: &str, finish: Finish) -> Result<()> {
        self.finish_grouped(delivery, owner, finish).await
    }

    async fn coalesce(
        &self,
        owner: &str,
        members: Vec<DeliveryId>,
        digest: NewMessage,
    ) -> Result<MessageId> {
        let owner = owner.to_string();
        let now = self.now_ms();
        self.tx(true, move |c| {
            Box::pin(async move {
                let id = queue::coalesce(c, &owner, members, digest, now).await?;
                Ok((id, true))
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
        let mut c = self.pool.acquire().await?;
        queue::overdue(&mut *c, channel, created_before, limit).await
    }

    async fn fall_back(&self, delivery: DeliveryId, fallback: NewMessage) -> Result<bool> {
        let now = self.now_ms();
        self.tx(false, move |c| {
            Box::pin(async move {
                let done = queue::fall_back(c, delivery, &fallback, now).await?;
                Ok((done, done))
            })
        })
        .await
    }

    async fn list_dead(&self, filter: &DeadFilter) -> Result<Vec<DeadEntry>> {
        self.check_open()?;
        let mut c = self.pool.acquire().await?;
        queue::list_dead(&mut *c, filter).await
    }

    async fn search_messages(&self, filter: &MessageFilter) -> Result<Vec<MessageSummary>> {
        self.check_open()?;
        let mut c = self.pool.acquire().await?;
        queue::search_messages(&mut *c, filter).await
    }

    async fn activity(
        &self,
        since: i64,
        channels: Option<&[String]>,
    ) -> Result<Vec<ActivityMinute>> {
        self.check_open()?;
        let mut c = self.pool.acquire().await?;
        queue::activity(&mut *c, since, channels).await
    }

    async fn latency(&self, since: i64, channels: Option<&[String]>) -> Result<Latency> {
        self.check_open()?;
        let mut c = self.pool.acquire().await?;
        latency::latency(&mut *c, since, channels).await
    }

    async fn get_dead(&self, delivery: DeliveryId) -> Result<Option<DeadEntry>> {
        self.check_open()?;
        let mut c = self.pool.acquire().await?;
        queue::get_dead(&mut *c, delivery).await
    }

    async fn replay(&self, sel: &DeadSelector) -> Result<u64> {
        let sel = sel.clone();
        let now = self.now_ms();
        self.tx(false, move |c| {
            Box::pin(async move {
                let n = queue::replay(c, &sel, now).await?;
                Ok((n, n > 0))
            })
        })
        .await
    }

    async fn purge_dead(&self, sel: &DeadSelector) -> Result<u64> {
        let sel = sel.clone();
        self.tx(false, move |c| {
            Box::pin(async move { Ok((queue::purge(c, &sel).await?, false)) })
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
                let n = queue::extend_leases(c, &owner, deliveries, lease_until).await?;
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
                let n = queue::release(c, &owner, now).await?;
                Ok((n, n > 0))
            })
        })
        .await
    }

    async fn stats(&self) -> Result<QueueStats> {
        self.check_open()?;
        let now = self.now_ms();
        let mut tx = self.snapshot().await?;
        let s = queue::stats(&mut *tx, now).await?;
        tx.commit().await?;
        Ok(s)
    }

    async fn prune(&self, batch: PruneBatch) -> Result<Pruned> {
        self.tx(false, move |c| {
            Box::pin(async move { Ok((retention::prune(c, &batch).await?, false)) })
        })
        .await
    }

    async fn console(&self, op: ConsoleOp) -> Result<ConsoleAnswer> {
        if op.reads_only() {
            self.check_open()?;
            let mut c = self.pool.acquire().await?;
            return console::run(&mut *c, op).await;
        }
        self.tx(false, move |c| {
            Box::pin(async move { Ok((console::run(c, op).await?, false)) })
        })
        .await
    }

    async fn size(&self) -> Result<StoreSize> {
        self.check_open()?;
        let mut c = self.pool.acquire().await?;
        let mut size = retention::counts(&mut *c).await?;
        let (bytes,): (i64,) = sqlx::query_as(
            "SELECT (pg_total_relation_size('messages') + pg_total_relation_size('deliveries')
               + pg_total_relation_size('attempts'))::bigint",
        )
        .fetch_one(&mut *c)
        .await?;
        size.bytes = Some(bytes.max(0) as u64);
        Ok(size)
    }

    async fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.health.failed(self.now_ms(), &StoreError::Closed);
        self.accepts.stop();
        self.finishes.stop();
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
        self.accepts.stop();
        self.finishes.stop();
        if let Some(h) = self.listener.lock().take() {
            h.abort();
        }
    }
}
