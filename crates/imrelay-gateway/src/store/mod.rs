//! Durable storage: the [`Store`] trait the API and the dispatcher use, its
//! types, and the SQLite implementation ([`sqlite::SqliteStore`]).
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

pub mod postgres;
mod rows;
pub mod sqlite;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use imrelay_sdk::clock::Clock;
use imrelay_sdk::Message;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

/// A message id (UUID v7, text).
pub type MessageId = String;
/// A delivery id.
pub type DeliveryId = i64;

/// A new message id: UUID v7, so ids sort by creation time.
pub fn new_message_id() -> MessageId {
    uuid::Uuid::now_v7().to_string()
}

/// Hash of a request body for idempotency checks (SHA-256, hex).
pub fn body_hash(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(bytes))
}

/// Errors from a store.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The database failed (I/O, disk full, corrupt file). The text never holds
    /// message content.
    #[error("database error: {0}")]
    Database(String),
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
        StoreError::Database(e.to_string())
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        StoreError::Database(format!("migration failed: {e}"))
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// What kind of message a row is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageKind {
    /// Sent by a producer.
    #[default]
    Normal,
    /// A digest the dispatcher built from merged messages (coalescing).
    Digest,
    /// A copy sent to a fallback channel.
    Fallback,
}

impl MessageKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MessageKind::Normal => "normal",
            MessageKind::Digest => "digest",
            MessageKind::Fallback => "fallback",
        }
    }
    pub fn parse(s: &str) -> Self {
        match s {
            "digest" => MessageKind::Digest,
            "fallback" => MessageKind::Fallback,
            _ => MessageKind::Normal,
        }
    }
}

/// An idempotency key as the API received it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Idempotency {
    /// Whose key space this is (the API key's name), so two producers cannot
    /// collide.
    pub scope: String,
    pub key: String,
    /// [`body_hash`] of the request body: the same key with another body is a
    /// conflict.
    pub body_hash: String,
}

/// A message to enqueue.
#[derive(Debug, Clone, PartialEq)]
pub struct NewMessage {
    /// Set by the caller ([`new_message_id`]) so it can be logged before commit.
    pub id: MessageId,
    pub channel: String,
    pub message: Message,
    /// One delivery row is created per target ([`crate::channels::Channel::targets`]).
    pub targets: Vec<String>,
    pub trace_id: Option<String>,
    pub idempotency: Option<Idempotency>,
    pub kind: MessageKind,
    /// For a fallback copy: the message it stands in for. For a digest: unused.
    pub origin: Option<MessageId>,
}

impl NewMessage {
    /// No idempotency key to check and at least one target: the stores
    /// insert such messages in bulk.
    pub fn is_plain(&self) -> bool {
        self.idempotency.is_none() && !self.targets.is_empty()
    }

    /// A normal message with a fresh id.
    pub fn new(channel: impl Into<String>, message: Message, targets: Vec<String>) -> Self {
        NewMessage {
            id: new_message_id(),
            channel: channel.into(),
            message,
            targets,
            trace_id: None,
            idempotency: None,
            kind: MessageKind::Normal,
            origin: None,
        }
    }

    pub fn with_idempotency(mut self, idem: Idempotency) -> Self {
        self.idempotency = Some(idem);
        self
    }

    pub fn with_trace_id(mut self, trace_id: impl Into<String>) -> Self {
        self.trace_id = Some(trace_id.into());
        self
    }
}

/// What became of one enqueued message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum EnqueueOutcome {
    /// Committed (durable: fsynced unless the store was configured weaker).
    Created { id: MessageId },
    /// The idempotency key was used before with the same body: the first answer.
    Existing { id: MessageId },
    /// The idempotency key was used before with a different body.
    Conflict { id: MessageId },
    /// This item was refused (the text names why); others in the batch are
    /// unaffected.
    Rejected { reason: String },
}

impl EnqueueOutcome {
    /// The message id for `Created` and `Existing`.
    pub fn accepted_id(&self) -> Option<&str> {
        match self {
            EnqueueOutcome::Created { id } | EnqueueOutcome::Existing { id } => Some(id),
            _ => None,
        }
    }
}

/// State of a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    Pending,
    Claimed,
    Done,
    Dead,
    /// Folded into a digest; becomes `done` (or `dead`) with it.
    Merged,
}

impl DeliveryState {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Claimed => "claimed",
            DeliveryState::Done => "done",
            DeliveryState::Dead => "dead",
            DeliveryState::Merged => "merged",
        }
    }
    pub fn parse(s: &str) -> Self {
        match s {
            "claimed" => DeliveryState::Claimed,
            "done" => DeliveryState::Done,
            "dead" => DeliveryState::Dead,
            "merged" => DeliveryState::Merged,
            _ => DeliveryState::Pending,
        }
    }
}

/// State of a message as a whole, derived from its deliveries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageState {
    /// Some delivery is still queued or in flight.
    Pending,
    /// Every delivery is done.
    Delivered,
    /// Every delivery is dead.
    Dead,
    /// Some done, some dead.
    Partial,
}

impl MessageState {
    /// Derive from delivery states.
    pub fn from_deliveries<'a>(states: impl IntoIterator<Item = &'a DeliveryState>) -> Self {
        let (mut open, mut done, mut dead) = (0, 0, 0);
        for s in states {
            match s {
                DeliveryState::Pending | DeliveryState::Claimed | DeliveryState::Merged => {
                    open += 1
                }
                DeliveryState::Done => done += 1,
                DeliveryState::Dead => dead += 1,
            }
        }
        match (open, done, dead) {
            (o, _, _) if o > 0 => MessageState::Pending,
            (_, 0, d) if d > 0 => MessageState::Dead,
            (_, _, 0) => MessageState::Delivered,
            _ => MessageState::Partial,
        }
    }
}

/// One request's outcome, as recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttemptRecord {
    pub started_at: i64,
    pub finished_at: i64,
    /// The destination that sent it (for pools, the member robot's key).
    pub destination: String,
    /// Which rendered part (0-based) of the message this request carried.
    pub part: u32,
    /// `delivered`, `retry`, `refresh_token`, `rate_limited`, `permanent`, or a
    /// gateway-side label (`render_failed`, `timeout`; `out_of_order` marks a
    /// delivery sent after later ones, with no request of its own).
    pub outcome: String,
    /// Whether it counted as a failed attempt for the retry policy (rate limits
    /// and waits do not).
    pub counted: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// The platform's error code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// The platform's message (or the transport error), never a secret.
    pub message: String,
}

impl AttemptRecord {
    /// A record of an SDK report.
    pub fn from_report(
        report: &imrelay_sdk::Report,
        destination: &str,
        part: u32,
        started_at: i64,
        finished_at: i64,
    ) -> Self {
        let counted = matches!(
            report.outcome,
            imrelay_sdk::Outcome::Retry { .. }
                | imrelay_sdk::Outcome::RefreshToken
                | imrelay_sdk::Outcome::Permanent
        );
        let mut message = report.message.clone();
        if let Some(h) = &report.hint {
            message.push_str(" -- ");
            message.push_str(h);
        }
        AttemptRecord {
            started_at,
            finished_at,
            destination: destination.to_string(),
            part,
            outcome: report.outcome.label().to_string(),
            counted,
            status: report.status,
            code: report.code.as_ref().map(|c| c.to_string()),
            message,
        }
    }
}

/// Why a delivery was dead-lettered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadReason {
    /// The platform's code, when it sent one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// The platform's message, or what the gateway decided (`max attempts`,
    /// `max age`).
    pub reason: String,
}

/// A claimed delivery, with everything needed to send it.
#[derive(Debug, Clone, PartialEq)]
pub struct Claimed {
    pub delivery_id: DeliveryId,
    pub message_id: MessageId,
    pub channel: String,
    pub target: String,
    pub kind: MessageKind,
    pub message: Message,
    /// Recipients of a per-recipient split; empty means the message's own.
    pub recipients: Vec<String>,
    /// Failed attempts so far.
    pub attempts: u32,
    /// Rendered parts already delivered (resume here).
    pub parts_done: u32,
    /// When the message was accepted.
    pub created_at: i64,
    /// Outcome label of the last recorded attempt, if any.
    pub last_outcome: Option<String>,
    pub trace_id: Option<String>,
    pub lease_until: i64,
}

/// What to claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimRequest {
    /// Only this target; `None`: any.
    pub target: Option<String>,
    pub limit: u32,
    pub lease: Duration,
    pub owner: String,
}

/// A per-recipient delivery split off a partly failed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildDelivery {
    pub recipients: Vec<String>,
    /// Parts already delivered to these recipients.
    pub parts_done: u32,
    pub state: ChildState,
}

/// The initial state of a [`ChildDelivery`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChildState {
    /// Queue it (not an attempt).
    Pending { due_at: i64 },
    /// Retry it (counts as the first failed attempt).
    Retry { due_at: i64 },
    /// Dead-letter it at once.
    Dead(DeadReason),
}

/// How a claimed delivery ends (for now).
#[derive(Debug, Clone, PartialEq)]
pub enum FinishAction {
    /// Delivered to everyone; also settles deliveries merged into it.
    Done,
    /// Transient failure: retry at `at`; counts as a failed attempt.
    Retry { at: i64 },
    /// Not an attempt (rate limited, limiter wait, breaker open, shutdown):
    /// pending again from `at`.
    Requeue { at: i64 },
    /// Dead-letter. Deliveries merged into it die with it. `fallback`, when set,
    /// is enqueued in the same transaction.
    Dead {
        reason: DeadReason,
        fallback: Option<Box<NewMessage>>,
    },
    /// Delivered except for some recipients: this delivery is done and each
    /// child becomes its own delivery.
    Split { children: Vec<ChildDelivery> },
}

/// A finished (or progressed) claim.
#[derive(Debug, Clone, PartialEq)]
pub struct Finish {
    /// Requests made during this claim, in order.
    pub attempts: Vec<AttemptRecord>,
    pub parts_done: u32,
    pub action: FinishAction,
}

/// A dead-lettered delivery.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeadEntry {
    pub delivery_id: DeliveryId,
    pub message_id: MessageId,
    pub channel: String,
    pub target: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub recipients: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    pub reason: String,
    pub attempts: u32,
    pub created_at: i64,
    pub dead_at: i64,
    pub message: Message,
}

/// Which dead letters to list.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DeadFilter {
    pub channel: Option<String>,
    pub code: Option<String>,
    pub message_id: Option<MessageId>,
    /// Dead-lettered at or after (ms).
    pub since: Option<i64>,
    /// Dead-lettered before (ms).
    pub until: Option<i64>,
    /// Page size (0: the store's default of 100).
    pub limit: u32,
    /// Cursor: only delivery ids greater than this.
    pub after: Option<DeliveryId>,
}

/// Which dead letters to replay or purge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeadSelector {
    Ids(Vec<DeliveryId>),
    /// Every dead letter matching (`limit` and `after` ignored).
    Filter(DeadFilter),
}

/// One delivery of a message, for `GET /v1/messages/{id}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeliveryView {
    pub id: DeliveryId,
    pub target: String,
    pub state: DeliveryState,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub recipients: Vec<String>,
    pub attempts: u32,
    pub parts_done: u32,
    /// Next due time while pending.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub due_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dead: Option<DeadReason>,
    /// The digest message this delivery was merged into.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub merged_into: Option<MessageId>,
    /// Every request made for this delivery, oldest first.
    pub history: Vec<AttemptRecord>,
}

/// A message with its deliveries and history.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MessageView {
    pub id: MessageId,
    pub channel: String,
    pub kind: MessageKind,
    pub state: MessageState,
    pub message: Message,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub origin: Option<MessageId>,
    pub created_at: i64,
    pub deliveries: Vec<DeliveryView>,
}

/// Backlog of one target, for the dispatcher's scheduling.
///
/// Counts stop at the `cap` given to [`Store::backlog`] (plus expired claims):
/// the dispatcher needs to know "at least this many", and counting a queue
/// of a million to learn that would cost a million index steps per cycle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TargetBacklog {
    pub target: String,
    /// Pending deliveries (due or not), counted up to the cap, plus claimed
    /// ones whose lease expired.
    pub pending: u64,
    /// Of those, due now (also counted up to the cap).
    pub due: u64,
    /// Earliest due time among them (now, for an expired claim).
    pub next_due_at: Option<i64>,
}

/// Outcomes of a bulk insert of plain messages, in input order, from the
/// ids the database inserted: an id's first occurrence is created, a
/// repeat or an id that existed already is refused (as one by one).
pub(crate) fn bulk_outcomes(
    msgs: &[NewMessage],
    inserted: &mut std::collections::HashSet<String>,
) -> Vec<EnqueueOutcome> {
    msgs.iter()
        .map(|m| {
            if inserted.remove(&m.id) {
                EnqueueOutcome::Created { id: m.id.clone() }
            } else {
                EnqueueOutcome::Rejected {
                    reason: format!("message id `{}` already exists", m.id),
                }
            }
        })
        .collect()
}

/// Fold rows of `target, pending, due, next_due_at` that may name a target
/// twice (its pending deliveries, its expired claims) into one per target,
/// in byte order of the target.
pub(crate) fn merge_backlog(rows: Vec<TargetBacklog>) -> Vec<TargetBacklog> {
    let mut by_target: std::collections::BTreeMap<String, TargetBacklog> = Default::default();
    for r in rows {
        match by_target.get_mut(&r.target) {
            Some(b) => {
                b.pending += r.pending;
                b.due += r.due;
                b.next_due_at = b.next_due_at.into_iter().chain(r.next_due_at).min();
            }
            None => {
                by_target.insert(r.target.clone(), r);
            }
        }
    }
    by_target.into_values().collect()
}

/// A delivery still open long after its message was accepted (fallback).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Overdue {
    pub delivery_id: DeliveryId,
    pub message_id: MessageId,
    pub channel: String,
    pub target: String,
    pub created_at: i64,
}

/// Queue statistics.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct QueueStats {
    pub messages: u64,
    pub pending: u64,
    pub in_flight: u64,
    pub done: u64,
    pub dead: u64,
    pub merged: u64,
    /// Age of the oldest pending or in-flight delivery's message, ms.
    pub oldest_pending_age_ms: Option<i64>,
    pub by_target: Vec<TargetStats>,
}

/// Per-target counts.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct TargetStats {
    pub target: String,
    pub pending: u64,
    pub in_flight: u64,
    pub dead: u64,
}

/// Durable storage of messages, deliveries and attempts.
///
/// Implementations must make [`Store::enqueue`] durable before it returns, and
/// fence every post-claim change by owner.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Short backend name for logs and status (`sqlite`).
    fn backend(&self) -> &'static str;

    /// The store's clock (milliseconds since the epoch).
    fn now_ms(&self) -> i64;

    /// Woken whenever new work may be due (enqueue, replay, release), so the
    /// dispatcher need not poll fast.
    fn notifier(&self) -> Arc<Notify>;

    /// Commit messages and their deliveries. One outcome per input, in order.
    /// Concurrent callers share one transaction (group commit).
    async fn enqueue(&self, msgs: Vec<NewMessage>) -> Result<Vec<EnqueueOutcome>>;

    /// A message with every delivery and attempt.
    async fn get_message(&self, id: &str) -> Result<Option<MessageView>>;

    /// Pending work per target (targets with nothing pending are omitted),
    /// each count stopping at `cap`. Costs O(targets × cap), not O(queue).
    async fn backlog(&self, cap: u64) -> Result<Vec<TargetBacklog>>;

    /// Claim due deliveries (oldest due first), leasing them to `owner`.
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
    pub clock: Arc<dyn Clock>,
}

impl StoreOptions {
    pub fn new(url: impl Into<String>) -> Self {
        StoreOptions {
            url: url.into(),
            synchronous: Synchronous::Full,
            group_commit_window: Duration::ZERO,
            max_batch: 512,
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
    fn body_hash_is_sha256_hex() {
        assert_eq!(
            body_hash(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
