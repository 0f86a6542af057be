//! Durable storage: the [`Store`] trait the API and the dispatcher use, its
//! types, and two backends: SQLite ([`sqlite::SqliteStore`], the embedded
//! default) and PostgreSQL ([`postgres::PgStore`], for several instances).
//!
//! # Model
//! - A *message* is the neutral [`imrelay_sdk::Message`] as producers sent it,
//!   plus its channel, trace id and idempotency key. It is rendered only at
//!   dispatch, with the config current then.
//! - A *delivery* is one message going to one target (see [`crate::channels`]):
//!   one row per destination of the channel, one for a robot pool. It carries the
//!   queue state: attempts, next due time, lease, parts already sent (a split
//!   message resumes at the failed part) and, for per-recipient splits, its own
//!   recipients.
//! - An *attempt* is one request's outcome, kept for `GET /v1/messages/{id}`.
//!
//! A delivery moves `pending -> claimed -> done | pending (retry/requeue) | dead`;
//! `merged` means it was folded into a digest and settles with it. A claim is a
//! lease: if the claimer dies, the row becomes claimable again when the lease
//! expires (and on SQLite, at the next start).
//!
//! Every state change after a claim is *fenced* by the claimer's `owner`: a
//! claimer whose lease was lost gets [`StoreError::LeaseLost`] and must drop the
//! result.
//!
//! Times are milliseconds since the Unix epoch from the store's clock (see
//! [`TokioClock`] for tests that pause tokio time).
//!
//! # Layout
//! - `plan`: the state machine. Pure functions decide every post-claim
//!   transition (fence, progress, finish with each outcome, coalesce) and the
//!   steps of an enqueue; unit-tested without a database.
//! - `queue`: the SQL both backends share (one text, `$n` placeholders),
//!   executing those plans; `sql`: how that text reaches either dialect.
//! - `rows`: row-to-type mapping; [`sqlite`] and [`postgres`]: only what is
//!   each dialect's own (writer and group commit, SKIP LOCKED claims,
//!   set-based accepts and acknowledgements, LISTEN/NOTIFY).
//! - `health`: whether accepts can commit now ([`Store::health`],
//!   [`Store::ready`]), tracked once for both backends; [`retention`]: the
//!   deletion of expired settled messages, its SQL shared too.
//! - [`console`]: the web console's sessions and audit trail, through one
//!   method ([`Store::console`]) both backends answer with the same SQL.

pub mod console;
mod escalations;
mod groups;
mod health;
mod latency;
mod lifecycle;
mod plan;
pub mod postgres;
mod queue;
pub mod retention;
mod rows;
mod silences;
mod sql;
pub mod sqlite;
mod types;

pub use console::{AuditEntry, AuditFilter, ConsoleAnswer, ConsoleOp, ConsoleSession, SessionKind};
pub use health::{fault_kind, StoreHealth};
pub use latency::Latency;
pub use retention::{prune_expired, Expiry, PruneBatch, Pruned, Retention, StoreSize};
pub use types::*;

/// Run `pass` every `every` until the store closes: the loop of the
/// background runners (escalations, groups) that act on what is due in the
/// store. A failed pass is logged as `what` and tried again next tick.
pub fn every<F, Fut>(
    every: std::time::Duration,
    what: &'static str,
    mut pass: F,
) -> tokio::task::JoinHandle<()>
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<usize>> + Send,
{
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match pass().await {
                Ok(_) => {}
                Err(StoreError::Closed) => return,
                Err(e) => {
                    tracing::warn!(error = %e, "{what}: a pass failed; trying again next tick")
                }
            }
        }
    })
}

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use imrelay_sdk::clock::Clock;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

pub use crate::domain::attempt::AttemptOutcome;
use crate::domain::cluster::SharedLimiter;
use imrelay_sdk::token::SharedTokenCache;

pub use crate::domain::ids::{DeliveryId, MessageId, Target};

/// A new message id: UUID v7, so ids sort by creation time.
pub fn new_message_id() -> MessageId {
    MessageId::new_v7()
}

/// Hash of a request body for idempotency checks (SHA-256, hex).
pub fn body_hash(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(bytes))
}

/// Errors from a store.
///
/// Cloneable (the SQLite writer answers every job of a batch with the
/// commit's result), so sources are shared behind an [`Arc`].
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The database failed (I/O, disk full, corrupt file, lost connection).
    /// The text never holds message content.
    #[error("database error: {0}")]
    Database(#[source] Arc<sqlx::Error>),
    /// The database could not be reached or opened; `what` names it (never
    /// a password).
    #[error("{what}: {source}")]
    Connect {
        what: String,
        #[source]
        source: Arc<sqlx::Error>,
    },
    /// The schema could not be migrated.
    #[error("migration failed: {0}")]
    Migrate(#[source] Arc<sqlx::migrate::MigrateError>),
    /// A stored value the store cannot read back (an unknown state or kind,
    /// a body that is not a message): the database was changed by something
    /// else, or by a newer version.
    #[error("corrupt stored data: `{column}` holds {value}")]
    Corrupt { column: &'static str, value: String },
    /// The store's machinery failed without a database error (its writer
    /// stopped, its task panicked).
    #[error("store failure: {0}")]
    Internal(String),
    /// The claimer no longer holds this delivery (its lease expired and someone
    /// else claimed it, or it was released). The result must be dropped.
    #[error("delivery {0} is no longer claimed by this dispatcher (lease lost)")]
    LeaseLost(DeliveryId),
    /// Something the caller asked for does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// The caller passed something invalid; the text names it.
    #[error("invalid store request: {0}")]
    Invalid(String),
    /// The store is shutting down.
    #[error("the store is closed")]
    Closed,
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        StoreError::Database(Arc::new(e))
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        StoreError::Migrate(Arc::new(e))
    }
}

impl StoreError {
    /// An unreadable stored value of `column`.
    pub fn corrupt(column: &'static str, value: impl std::fmt::Display) -> Self {
        StoreError::Corrupt {
            column,
            value: format!("`{value}`"),
        }
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Durable storage of messages, deliveries and attempts.
///
/// Implementations must make [`Store::enqueue`] durable before it returns, and
/// fence every post-claim change by owner.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Short backend name for logs and status (`sqlite`).
    fn backend(&self) -> &'static str;

    /// A rate limiter shared by every instance on this store, when the store
    /// is shared (PostgreSQL: on the store's own pool). `None`: limits are
    /// per process.
    fn shared_limiter(&self) -> Option<Arc<dyn SharedLimiter>> {
        None
    }

    /// An access-token cache shared by every instance on this store, when
    /// the store is shared. `None`: each process fetches its own tokens.
    fn shared_tokens(&self) -> Option<Arc<dyn SharedTokenCache>> {
        None
    }

    /// The store's clock (milliseconds since the epoch).
    fn now_ms(&self) -> i64;

    /// Woken whenever new work may be due (enqueue, replay, release), so the
    /// dispatcher need not poll fast.
    fn notifier(&self) -> Arc<Notify>;

    /// Whether accepts can commit now, from the latest commits and failures
    /// (no I/O): a failed write marks the store unhealthy until an accept or
    /// a probe commits.
    fn health(&self) -> StoreHealth {
        StoreHealth::assumed()
    }

    /// [`Store::health`], after a one-row probe commit when the evidence is
    /// stale (nothing committed for a few seconds, or failing). Bounded by
    /// the acquire timeout.
    async fn ready(&self) -> StoreHealth {
        self.health()
    }

    /// Commit messages and their deliveries. One outcome per input, in order.
    /// Concurrent callers share one transaction (group commit).
    async fn enqueue(&self, msgs: Vec<NewMessage>) -> Result<Vec<EnqueueOutcome>>;

    /// A message with every delivery and attempt.
    async fn get_message(&self, id: &str) -> Result<Option<MessageView>>;

    /// Every part `message` delivered, with the target it went to (to update
    /// or recall them), oldest first.
    async fn sent_parts(&self, message: &str) -> Result<Vec<(String, SentPartRecord)>>;

    /// Whether a later message of the thread rooted at `root` goes to
    /// `target` too (and is not dead): the update at `seq` is stale.
    async fn superseded(&self, root: &str, seq: i64, target: &str) -> Result<bool>;

    /// The newest message of the thread rooted at `root`.
    async fn thread_latest(&self, root: &str) -> Result<Option<MessageId>>;

    /// Put message `id` in a thread of its own unless it has one; its thread
    /// key (`None`: no such message).
    async fn adopt_thread(&self, id: &str) -> Result<Option<String>>;

    /// Record `ack` on the thread rooted at `root` and enqueue `update` (the
    /// card that shows it) in the same transaction.
    async fn acknowledge(&self, root: &str, ack: Ack, update: Option<NewMessage>) -> Result<()>;

    /// Keep an update token a callback handed out for a sent part (each is
    /// good for one update; the newest is used first).
    async fn set_update_token(&self, platform_message_id: &str, token: &str) -> Result<()>;

    /// Forget an update token an update used.
    async fn spend_update_token(&self, platform_message_id: &str, token: &str) -> Result<()>;

    /// Active escalations whose next step is due now, earliest first.
    async fn due_escalations(&self, limit: u32) -> Result<Vec<Escalation>>;

    /// Fire one step of an escalation unless it was fired already or the
    /// escalation ended: record it, queue its messages and schedule the next,
    /// in one transaction. Whether this call fired it.
    async fn fire_escalation(&self, fire: FireStep) -> Result<bool>;

    /// Message groups with something to send now, earliest first.
    async fn due_groups(&self, limit: u32) -> Result<Vec<DueGroup>>;

    /// Send a group unless its version moved on (a fold came, or another
    /// instance sent it): queue its notification and point the folded
    /// deliveries at it, in one transaction. Whether this call sent it.
    async fn send_group(&self, send: SendGroup) -> Result<bool>;

    /// Message group `id`, as it stands.
    async fn group(&self, id: &str) -> Result<Option<DueGroup>>;

    /// The messages folded into group `id` since its last send, oldest first.
    async fn group_members(&self, id: &str) -> Result<Vec<(MessageId, imrelay_sdk::Message)>>;

    /// End the active escalation of thread `root` as `state`, by `by`;
    /// whether one was active.
    async fn stop_escalation(&self, root: &str, state: EscalationState, by: &str) -> Result<bool>;

    /// Add a temporary on-call override.
    async fn put_override(&self, o: Override) -> Result<()>;

    /// Overrides that have not ended (of `schedule`, or of every schedule).
    async fn overrides(&self, schedule: Option<&str>) -> Result<Vec<Override>>;

    /// Delete override `id`; whether it existed.
    async fn delete_override(&self, id: &str) -> Result<bool>;

    /// Create or replace a silence.
    async fn put_silence(&self, silence: Silence) -> Result<()>;

    /// Every silence, newest first (expired ones too, until retention).
    async fn silences(&self) -> Result<Vec<Silence>>;

    /// End silence `id` now; with `release`, the deliveries it holds are
    /// sent. `None` when there is no such silence, else how many it released.
    async fn expire_silence(&self, id: &str, release: Release) -> Result<Option<u64>>;

    /// Take the lease on updating the card of thread `root` at `target` for
    /// `lease`, unless another owner holds it: one update at a time, across
    /// instances. Whether it was taken.
    async fn lock_thread(
        &self,
        root: &str,
        target: &str,
        owner: &str,
        lease: Duration,
    ) -> Result<bool>;

    /// Give back a lease [`Store::lock_thread`] gave `owner`.
    async fn unlock_thread(&self, root: &str, target: &str, owner: &str) -> Result<()>;

    /// Pending work per target (targets with nothing pending are omitted),
    /// each count stopping at `cap`. Costs O(targets × cap), not O(queue).
    async fn backlog(&self, cap: u64) -> Result<Vec<TargetBacklog>>;

    /// Claim due deliveries (oldest due first), leasing them to `owner`.
    /// With `order_hold` (an ordered target), a store shared by several
    /// instances hands the target out in accept order and to one owner at a
    /// time; a store of one process needs nothing more than its dispatcher.
    async fn claim(&self, req: ClaimRequest) -> Result<Vec<Claimed>>;

    /// Record progress of a claimed delivery (attempts made, parts done) and
    /// extend its lease to `lease_until`, keeping it claimed. Each counted
    /// attempt (a failure retried within the claim) adds to its failed
    /// attempts.
    async fn progress(
        &self,
        delivery: DeliveryId,
        owner: &str,
        attempts: Vec<AttemptRecord>,
        parts_done: u32,
        lease_until: i64,
    ) -> Result<()>;

    /// Extend to `lease_until` the leases of those of `deliveries` that
    /// `owner` still holds (a heartbeat while their sends run; never
    /// shortens a lease). Returns how many it extended.
    async fn extend_leases(
        &self,
        owner: &str,
        deliveries: Vec<DeliveryId>,
        lease_until: i64,
    ) -> Result<u64>;

    /// End a claim. Fails with [`StoreError::LeaseLost`] when `owner` no longer
    /// holds it.
    async fn finish(&self, delivery: DeliveryId, owner: &str, finish: Finish) -> Result<()>;

    /// Fold claimed deliveries (all held by `owner`, all to one target) into a
    /// digest message, enqueued in the same transaction with one delivery due
    /// now. The members become `merged` and settle with the digest.
    async fn coalesce(
        &self,
        owner: &str,
        members: Vec<DeliveryId>,
        digest: NewMessage,
    ) -> Result<MessageId>;

    /// Open deliveries of `channel`'s non-fallback messages accepted before
    /// `created_before` that have not been given to a fallback yet, oldest first.
    async fn overdue(&self, channel: &str, created_before: i64, limit: u32)
        -> Result<Vec<Overdue>>;

    /// Mark a delivery as fallen back and enqueue its fallback copy, atomically;
    /// `false` when it was already marked (or is no longer open).
    async fn fall_back(&self, delivery: DeliveryId, fallback: NewMessage) -> Result<bool>;

    /// Dead letters, oldest first.
    async fn list_dead(&self, filter: &DeadFilter) -> Result<Vec<DeadEntry>>;

    /// Messages matching `filter`, newest first (the console's search).
    async fn search_messages(&self, filter: &MessageFilter) -> Result<Vec<MessageSummary>>;

    /// Per-minute counts from `since` (ms) on, of `channels` (`None`: all),
    /// oldest first; minutes with nothing are left out.
    async fn activity(
        &self,
        since: i64,
        channels: Option<&[String]>,
    ) -> Result<Vec<ActivityMinute>>;

    /// Accept-to-delivered percentiles of the deliveries delivered since
    /// `since` (ms), of `channels` (`None`: all). Both backends answer it;
    /// a store without it reports no deliveries.
    async fn latency(&self, since: i64, channels: Option<&[String]>) -> Result<Latency> {
        let _ = (since, channels);
        Ok(Latency::default())
    }

    /// One dead letter.
    async fn get_dead(&self, delivery: DeliveryId) -> Result<Option<DeadEntry>>;

    /// Put dead letters back in the queue, due now, with a fresh attempt count
    /// (history is kept). Returns how many.
    async fn replay(&self, sel: &DeadSelector) -> Result<u64>;

    /// Delete dead letters (and messages left with no delivery). Returns how many
    /// deliveries.
    async fn purge_dead(&self, sel: &DeadSelector) -> Result<u64>;

    /// Give back every delivery `owner` holds, unchanged and due now (shutdown).
    async fn release(&self, owner: &str) -> Result<u64>;

    /// Counts for status and metrics.
    async fn stats(&self) -> Result<QueueStats>;

    /// Delete one batch of expired messages (see [`retention`]). The default
    /// keeps everything.
    async fn prune(&self, batch: PruneBatch) -> Result<Pruned> {
        let _ = batch;
        Ok(Pruned::default())
    }

    /// How much the store holds, for metrics. The default does not know.
    async fn size(&self) -> Result<StoreSize> {
        Err(StoreError::Internal(
            "this store does not report its size".into(),
        ))
    }

    /// The web console's sessions and audit trail (see [`console`]; the
    /// typed methods on `dyn Store` there wrap it). The default keeps none.
    async fn console(&self, op: ConsoleOp) -> Result<ConsoleAnswer> {
        let _ = op;
        Err(StoreError::Internal(
            "this store keeps no console sessions".into(),
        ))
    }

    /// Flush and close. Further calls fail with [`StoreError::Closed`].
    async fn close(&self);

    // Convenience wrappers around `finish`.

    /// Delivered.
    async fn complete(
        &self,
        delivery: DeliveryId,
        owner: &str,
        attempts: Vec<AttemptRecord>,
        parts_done: u32,
    ) -> Result<()> {
        self.finish(
            delivery,
            owner,
            Finish {
                attempts,
                parts_done,
                action: FinishAction::Done,
            },
        )
        .await
    }

    /// Transient failure: retry at `at` (counts as an attempt).
    async fn retry_at(
        &self,
        delivery: DeliveryId,
        owner: &str,
        at: i64,
        attempts: Vec<AttemptRecord>,
        parts_done: u32,
    ) -> Result<()> {
        self.finish(
            delivery,
            owner,
            Finish {
                attempts,
                parts_done,
                action: FinishAction::Retry { at },
            },
        )
        .await
    }

    /// Rate limited or otherwise not sent: pending again from `at`, not an attempt.
    async fn requeue_without_attempt(
        &self,
        delivery: DeliveryId,
        owner: &str,
        at: i64,
        attempts: Vec<AttemptRecord>,
        parts_done: u32,
    ) -> Result<()> {
        self.finish(
            delivery,
            owner,
            Finish {
                attempts,
                parts_done,
                action: FinishAction::Requeue { at },
            },
        )
        .await
    }

    /// Dead-letter with the platform's code and reason.
    async fn dead(
        &self,
        delivery: DeliveryId,
        owner: &str,
        reason: DeadReason,
        attempts: Vec<AttemptRecord>,
        parts_done: u32,
    ) -> Result<()> {
        self.finish(
            delivery,
            owner,
            Finish {
                attempts,
                parts_done,
                action: FinishAction::Dead {
                    reason,
                    fallback: None,
                },
            },
        )
        .await
    }
}

/// A clock that follows tokio's (pausable) time, anchored at the wall clock when
/// created. Tests that `tokio::time::pause` give it to the store and the
/// dispatcher so stored due times move with the paused clock.
#[derive(Debug, Clone)]
pub struct TokioClock {
    wall_ms: i64,
    start: tokio::time::Instant,
}

impl TokioClock {
    pub fn new() -> Self {
        TokioClock {
            wall_ms: imrelay_sdk::clock::SystemClock.now_ms(),
            start: tokio::time::Instant::now(),
        }
    }
}

impl Default for TokioClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for TokioClock {
    fn now_ms(&self) -> i64 {
        self.wall_ms + self.start.elapsed().as_millis() as i64
    }
}

/// [`StoreOptions::acquire_timeout`] unless `[store] acquire_timeout` says
/// otherwise.
pub const DEFAULT_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(1);

/// Settings shared by store implementations.
#[derive(Clone)]
pub struct StoreOptions {
    /// `sqlite://path/to/file.db` (created if missing) or a plain path.
    pub url: String,
    /// SQLite `synchronous`: `Full` (default: an acknowledged message survives
    /// power loss) or `Normal` (WEAKER: survives a process crash, but the last
    /// commits may be lost on power loss or an OS crash).
    pub synchronous: Synchronous,
    /// Longest time an enqueue waits for others to join its transaction. Zero
    /// (default) still batches whatever queued while the previous commit ran,
    /// which is where group commit gains: no added latency when idle.
    pub group_commit_window: Duration,
    /// Most operations in one transaction.
    pub max_batch: usize,
    /// Added to every window of the cluster rate limiter (PostgreSQL).
    pub cluster_rate_margin: Duration,
    /// Longest a write waits for a connection (PostgreSQL's pool) or for the
    /// writer to take it (SQLite) before failing: an accept answers 503
    /// quickly when the store is down.
    pub acquire_timeout: Duration,
    pub clock: Arc<dyn Clock>,
}

impl StoreOptions {
    pub fn new(url: impl Into<String>) -> Self {
        StoreOptions {
            url: url.into(),
            synchronous: Synchronous::Full,
            group_commit_window: Duration::ZERO,
            max_batch: 512,
            cluster_rate_margin: postgres::cluster::DEFAULT_MARGIN,
            acquire_timeout: DEFAULT_ACQUIRE_TIMEOUT,
            clock: Arc::new(imrelay_sdk::clock::SystemClock),
        }
    }

    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }
}

impl std::fmt::Debug for StoreOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreOptions")
            .field("url", &postgres::redact_url(&self.url))
            .field("synchronous", &self.synchronous)
            .field("group_commit_window", &self.group_commit_window)
            .field("max_batch", &self.max_batch)
            .field("cluster_rate_margin", &self.cluster_rate_margin)
            .field("acquire_timeout", &self.acquire_timeout)
            .finish()
    }
}

/// SQLite `synchronous` setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Synchronous {
    /// fsync on every commit: durable against power loss.
    #[default]
    Full,
    /// Weaker: durable against a process crash only.
    Normal,
}

/// Open the store a URL names: `postgres://` (several instances may share
/// it; see [`postgres`]), else `sqlite:` or a path.
pub async fn open(options: StoreOptions) -> Result<Arc<dyn Store>> {
    if postgres::is_postgres_url(&options.url) {
        return Ok(Arc::new(postgres::PgStore::open(options).await?));
    }
    Ok(Arc::new(sqlite::SqliteStore::open(options).await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn tokio_clock_moves_with_paused_time() {
        let c = TokioClock::new();
        let t0 = c.now_ms();
        tokio::time::advance(Duration::from_secs(90)).await;
        assert_eq!(c.now_ms() - t0, 90_000);
    }

    #[test]
    fn message_state_from_deliveries() {
        use DeliveryState::*;
        let s = |v: &[DeliveryState]| MessageState::from_deliveries(v.iter());
        assert_eq!(s(&[Done, Done]), MessageState::Delivered);
        assert_eq!(s(&[Done, Pending]), MessageState::Pending);
        assert_eq!(s(&[Merged]), MessageState::Pending);
        assert_eq!(s(&[Dead, Dead]), MessageState::Dead);
        assert_eq!(s(&[Done, Dead]), MessageState::Partial);
    }

    #[test]
    fn stored_states_and_kinds_parse_strictly() {
        for s in [
            DeliveryState::Pending,
            DeliveryState::Claimed,
            DeliveryState::Done,
            DeliveryState::Dead,
            DeliveryState::Merged,
        ] {
            assert_eq!(DeliveryState::parse(s.as_str()).unwrap(), s);
        }
        for k in MessageKind::ALL {
            assert_eq!(MessageKind::parse(k.as_str()).unwrap(), k);
            assert_eq!(
                serde_json::to_value(k).unwrap(),
                serde_json::json!(k.as_str())
            );
        }
        assert_eq!(
            MessageKind::Urgent(imrelay_sdk::UrgentKind::Phone).as_str(),
            "urgent_phone"
        );
        let e = DeliveryState::parse("pending ").unwrap_err();
        assert!(
            matches!(&e, StoreError::Corrupt { column: "deliveries.state", value } if value == "`pending `"),
            "{e:?}"
        );
        assert!(matches!(
            MessageKind::parse("bogus"),
            Err(StoreError::Corrupt {
                column: "messages.kind",
                ..
            })
        ));
    }

    #[test]
    fn database_errors_keep_their_source() {
        use std::error::Error as _;
        let e = StoreError::from(sqlx::Error::RowNotFound);
        assert!(e.source().is_some());
        assert!(e.to_string().starts_with("database error: "), "{e}");
    }

    #[test]
    fn body_hash_is_sha256_hex() {
        assert_eq!(
            body_hash(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
