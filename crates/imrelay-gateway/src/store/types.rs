//! The types of the [`super::Store`] trait: what is enqueued, claimed,
//! finished and shown.

use std::time::Duration;

use imrelay_sdk::{Message, UrgentKind};
use serde::{Deserialize, Serialize};

use super::{new_message_id, AttemptOutcome, DeliveryId, MessageId, Result, StoreError, Target};

/// What kind of message a row is.
///
/// Stored and serialized as one word: `normal`, `digest`, `fallback`,
/// `recall`, `urgent_app`, `urgent_sms`, `urgent_phone`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MessageKind {
    /// Sent by a producer.
    #[default]
    Normal,
    /// A digest the dispatcher built from merged messages (coalescing).
    Digest,
    /// A copy sent to a fallback channel.
    Fallback,
    /// Takes back what its origin delivered (`DELETE /v1/messages/{id}`).
    Recall,
    /// Asks the platform to push its origin urgently to the users in its
    /// recipients (`POST /v1/messages/{id}/urgent`).
    Urgent(UrgentKind),
}

impl MessageKind {
    /// Every kind, in the order of the API's documentation.
    pub const ALL: [MessageKind; 7] = [
        MessageKind::Normal,
        MessageKind::Digest,
        MessageKind::Fallback,
        MessageKind::Recall,
        MessageKind::Urgent(UrgentKind::App),
        MessageKind::Urgent(UrgentKind::Sms),
        MessageKind::Urgent(UrgentKind::Phone),
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            MessageKind::Normal => "normal",
            MessageKind::Digest => "digest",
            MessageKind::Fallback => "fallback",
            MessageKind::Recall => "recall",
            MessageKind::Urgent(UrgentKind::App) => "urgent_app",
            MessageKind::Urgent(UrgentKind::Sms) => "urgent_sms",
            MessageKind::Urgent(UrgentKind::Phone) => "urgent_phone",
        }
    }
    /// The kind stored as `s`; unknown text is [`StoreError::Corrupt`].
    pub fn parse(s: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| StoreError::corrupt("messages.kind", s))
    }

    /// Whether it acts on a message already sent (a recall or an urgent
    /// push) rather than being a message of its own.
    pub fn acts_on_origin(self) -> bool {
        matches!(self, MessageKind::Recall | MessageKind::Urgent(_))
    }
}

impl Serialize for MessageKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for MessageKind {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown message kind `{s}`")))
    }
}

impl utoipa::PartialSchema for MessageKind {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .description(Some(
                "What kind of message it is: sent by a producer (`normal`), a digest, a fallback copy, a recall, or an urgent push (`urgent_app`, `urgent_sms`, `urgent_phone`)",
            ))
            .enum_values(Some(MessageKind::ALL.iter().map(|k| k.as_str())))
            .into()
    }
}

impl utoipa::ToSchema for MessageKind {}

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
    pub targets: Vec<Target>,
    pub trace_id: Option<String>,
    pub idempotency: Option<Idempotency>,
    pub kind: MessageKind,
    /// For a fallback copy: the message it stands in for; for a recall: the
    /// message it takes back; for an urgent push: the message pushed. For a
    /// digest: unused.
    pub origin: Option<MessageId>,
    /// The silence that holds it: its deliveries are stored `silenced`.
    pub silenced_by: Option<String>,
    /// Not sent before this (ms): its channel's quiet hours end then.
    pub not_before: Option<i64>,
    /// Its severity where its source knows one without a `severity` label
    /// (an Alertmanager group's most urgent alert), for quiet hours. Not stored.
    pub severity: Option<String>,
    /// The thread it belongs to on its channel: the first message of a thread
    /// is sent, later ones update it (the lifecycle feature).
    pub thread: Option<String>,
    /// Labels the source attached (Alertmanager's group labels).
    pub labels: Labels,
    /// Where a silence for it is created (an Alertmanager's base URL).
    pub silence_url: Option<String>,
    /// What produced it (`alertmanager/prod`), for the rules of its card.
    pub source: Option<String>,
    /// The escalation it starts (unless its thread has one running).
    pub escalation: Option<EscalationStart>,
    /// It says its alert is resolved: its thread's escalation ends.
    pub resolved: bool,
    /// What its request asks of the on-call feature, resolved at accept
    /// (`crate::oncall::OnCall::apply`). Not stored.
    pub oncall: OnCallRequest,
    /// The group it is folded into (its channel groups messages): its
    /// deliveries are stored `merged` and go out with the group's
    /// notification.
    pub group: Option<GroupSpec>,
}

/// The group a message belongs to, and the channel's timing then.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSpec {
    /// Hash of the channel and the grouping labels' values.
    pub id: String,
    /// The grouping labels and their values.
    pub labels: Labels,
    /// A new group waits this long for more before it is sent (ms).
    pub wait_ms: i64,
    /// A group with new content is sent at most this often (ms).
    pub interval_ms: i64,
    /// A group whose content has not changed is sent again at most this often (ms).
    pub repeat_ms: i64,
    /// Hash of the message's content (title and body): a repeat has the same.
    pub content_hash: String,
}

/// A group with something to send now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DueGroup {
    pub id: String,
    pub channel: String,
    pub labels: Labels,
    /// The version a send compares against.
    pub version: i64,
    /// Messages folded since the last send.
    pub pending: i64,
    pub pending_since: Option<i64>,
    pub total: i64,
    /// The newest message folded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latest: Option<MessageId>,
    pub due_at: Option<i64>,
    pub sent_at: Option<i64>,
    /// Notifications sent so far.
    pub sends: i64,
    /// The last notification.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sent_message: Option<MessageId>,
}

/// Send group `id` if its version is still `version`: queue `message` (its
/// targets are those of the folded deliveries) and point them at it.
#[derive(Debug, Clone)]
pub struct SendGroup {
    pub id: String,
    pub version: i64,
    pub message: NewMessage,
}

/// What a request asks of the on-call feature: references to mention
/// (`oncall:dba`, `label:owner`, a person) and an escalation policy by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OnCallRequest {
    pub mentions: Vec<String>,
    pub escalation: Option<String>,
    /// Labels and annotations `label:` and `annotation:` references read
    /// beyond the message's own labels (an Alertmanager group's common ones).
    pub labels: Labels,
    pub annotations: Labels,
}

/// String labels, sorted by name.
pub type Labels = std::collections::BTreeMap<String, String>;

impl NewMessage {
    /// No idempotency key to check and at least one target: the stores
    /// insert such messages in bulk.
    pub fn is_plain(&self) -> bool {
        self.idempotency.is_none()
            && !self.targets.is_empty()
            && self.thread.is_none()
            && self.labels.is_empty()
            && self.silence_url.is_none()
            && self.source.is_none()
            && self.silenced_by.is_none()
            && self.not_before.is_none()
            && self.escalation.is_none()
            && !self.resolved
            && self.group.is_none()
    }

    /// A normal message with a fresh id.
    pub fn new(channel: impl Into<String>, message: Message, targets: Vec<Target>) -> Self {
        NewMessage {
            id: new_message_id(),
            channel: channel.into(),
            message,
            targets,
            trace_id: None,
            idempotency: None,
            kind: MessageKind::Normal,
            origin: None,
            thread: None,
            labels: Labels::new(),
            silence_url: None,
            source: None,
            silenced_by: None,
            not_before: None,
            severity: None,
            escalation: None,
            resolved: false,
            oncall: OnCallRequest::default(),
            group: None,
        }
    }

    pub fn with_thread(mut self, thread: impl Into<String>) -> Self {
        self.thread = Some(thread.into());
        self
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
            EnqueueOutcome::Created { id } | EnqueueOutcome::Existing { id } => Some(id.as_str()),
            _ => None,
        }
    }
}

/// State of a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    Pending,
    Claimed,
    Done,
    Dead,
    /// Folded into a digest; becomes `done` (or `dead`) with it.
    Merged,
    /// Held by a silence: kept, not sent; pending again if the silence is
    /// deleted early with release asked for.
    Silenced,
}

impl DeliveryState {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Claimed => "claimed",
            DeliveryState::Done => "done",
            DeliveryState::Dead => "dead",
            DeliveryState::Merged => "merged",
            DeliveryState::Silenced => "silenced",
        }
    }
    /// The state stored as `s`; unknown text is [`StoreError::Corrupt`].
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "pending" => Ok(DeliveryState::Pending),
            "claimed" => Ok(DeliveryState::Claimed),
            "done" => Ok(DeliveryState::Done),
            "dead" => Ok(DeliveryState::Dead),
            "merged" => Ok(DeliveryState::Merged),
            "silenced" => Ok(DeliveryState::Silenced),
            _ => Err(StoreError::corrupt("deliveries.state", s)),
        }
    }
}

/// State of a message as a whole, derived from its deliveries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
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
    /// Held by a silence (nothing open, something held).
    Silenced,
}

impl MessageState {
    /// Derive from delivery states.
    pub fn from_deliveries<'a>(states: impl IntoIterator<Item = &'a DeliveryState>) -> Self {
        let (mut open, mut done, mut dead, mut held) = (0, 0, 0, 0);
        for s in states {
            match s {
                DeliveryState::Pending | DeliveryState::Claimed | DeliveryState::Merged => {
                    open += 1
                }
                DeliveryState::Done => done += 1,
                DeliveryState::Dead => dead += 1,
                DeliveryState::Silenced => held += 1,
            }
        }
        match (open, done, dead) {
            (o, _, _) if o > 0 => MessageState::Pending,
            _ if held > 0 => MessageState::Silenced,
            (_, 0, d) if d > 0 => MessageState::Dead,
            (_, _, 0) => MessageState::Delivered,
            _ => MessageState::Partial,
        }
    }
}

/// One request's outcome, as recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AttemptRecord {
    pub started_at: i64,
    pub finished_at: i64,
    /// The destination that sent it (for pools, the member robot's key).
    pub destination: String,
    /// Which rendered part (0-based) of the message this request carried.
    pub part: u32,
    /// `delivered`, `retry`, `refresh_token`, `rate_limited` or `permanent`.
    pub outcome: AttemptOutcome,
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
    /// The platform's id for the part this request delivered (Feishu
    /// `message_id`, WeCom `msgid`, DingTalk `processQueryKey`, ...), kept
    /// to update or recall it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform_message_id: Option<String>,
    /// What a later update of that part needs besides its id (WeCom's
    /// one-shot `response_code`); never shown.
    #[serde(skip)]
    pub update_token: Option<String>,
    /// The recipients the request addressed (app destinations), kept with a
    /// platform id to update or recall that part.
    #[serde(skip)]
    pub recipients: Vec<String>,
}

impl AttemptRecord {
    /// A note in the history that is not a request (delivered out of order,
    /// an update that gave way to a newer one): never counted.
    pub fn note(
        outcome: AttemptOutcome,
        destination: &str,
        part: u32,
        at: i64,
        message: impl Into<String>,
    ) -> Self {
        AttemptRecord {
            started_at: at,
            finished_at: at,
            destination: destination.to_string(),
            part,
            outcome,
            counted: false,
            status: None,
            code: None,
            message: message.into(),
            platform_message_id: None,
            update_token: None,
            recipients: Vec::new(),
        }
    }

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
            outcome: AttemptOutcome::from(&report.outcome),
            counted,
            status: report.status,
            code: report.code.as_ref().map(|c| c.to_string()),
            message,
            platform_message_id: report
                .platform_message_id
                .clone()
                .filter(|_| report.outcome.is_delivered()),
            update_token: report
                .update_token
                .clone()
                .filter(|_| report.outcome.is_delivered()),
            recipients: Vec::new(),
        }
    }
}

/// Why a delivery was dead-lettered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
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
    pub target: Target,
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
    /// Outcome of the last recorded attempt, if any.
    pub last_outcome: Option<AttemptOutcome>,
    pub trace_id: Option<String>,
    pub lease_until: i64,
    /// Its place in a thread, when it has one.
    pub thread: Option<ThreadPos>,
    /// For a recall: the message it takes back.
    pub origin: Option<MessageId>,
    /// An ordered claim on a shared store: a delivery of the same target
    /// accepted after this one was delivered already (by any instance), so
    /// this one goes out of order. Per target: the store does not tell an
    /// app's conversations apart. Always `false` for other claims.
    pub overtaken: bool,
}

/// Where a message sits in its thread.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ThreadPos {
    /// The thread key (Alertmanager's groupKey, or the API's `thread`).
    pub key: String,
    /// The thread's first message on this channel: the one later messages update.
    #[schema(value_type = String)]
    pub root: MessageId,
    /// Its order in the thread (the root is 1).
    pub seq: i64,
}

impl ThreadPos {
    /// Whether this message started the thread (it is sent, not an update).
    pub fn is_root(&self, id: &str) -> bool {
        self.root == id
    }
}

/// One part a delivery got to the platform, as kept to update or recall it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentPartRecord {
    /// The destination (pool member) that sent it.
    pub destination: String,
    pub part: u32,
    pub sent: imrelay_sdk::SentPart,
}

/// What a person did about a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AckAction {
    /// Took it ("I'm on it").
    Ack,
    /// Silenced it for a while.
    Silence,
    /// Said it is resolved.
    Resolve,
}

impl AckAction {
    pub fn as_str(self) -> &'static str {
        match self {
            AckAction::Ack => "ack",
            AckAction::Silence => "silence",
            AckAction::Resolve => "resolve",
        }
    }
    /// The action stored as `s`; unknown text is [`StoreError::Corrupt`].
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "ack" => Ok(AckAction::Ack),
            "silence" => Ok(AckAction::Silence),
            "resolve" => Ok(AckAction::Resolve),
            _ => Err(StoreError::corrupt("acks.action", s)),
        }
    }
}

/// An acknowledgement (or silence, or resolution) recorded on a thread.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Ack {
    pub action: AckAction,
    /// The platform's user id (or the API caller's name).
    pub user_id: String,
    /// The person's name, where known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_name: Option<String>,
    /// Where it came from: `api`, `feishu`, `dingtalk`, `wecom`.
    pub source: String,
    /// What it made (a silence's id and end), when anything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub detail: Option<serde_json::Value>,
    pub at: i64,
}

impl Ack {
    /// Who, as shown: the name when known, else the id.
    pub fn who(&self) -> &str {
        self.user_name.as_deref().unwrap_or(&self.user_id)
    }
}

/// What to claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimRequest {
    /// Only this target; `None`: any.
    pub target: Option<Target>,
    pub limit: u32,
    pub lease: Duration,
    pub owner: String,
    /// The target's channel delivers in accept order, with this
    /// `order_hold`; `None`: unordered (or any target). On a shared store
    /// an ordered claim takes the target's deliveries in accept order and
    /// nothing while another owner holds one (see [`super::Store::claim`]).
    pub order_hold: Option<Duration>,
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
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct DeadEntry {
    #[schema(value_type = i64)]
    pub delivery_id: DeliveryId,
    #[schema(value_type = String)]
    pub message_id: MessageId,
    pub channel: String,
    pub target: Target,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub recipients: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    pub reason: String,
    pub attempts: u32,
    pub created_at: i64,
    pub dead_at: i64,
    #[schema(value_type = Object)]
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

/// Which messages to list (the console's search), newest first.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MessageFilter {
    /// Only these channels; `None`: every channel.
    pub channels: Option<Vec<String>>,
    /// Only messages in this state (derived from their deliveries, as
    /// [`MessageState::from_deliveries`] does).
    pub state: Option<MessageState>,
    /// Text contained in the stored message (title, body, fields), ASCII
    /// letters matched in either case.
    pub text: Option<String>,
    pub trace_id: Option<String>,
    /// Only messages with this label (name, value), ASCII letters in either case.
    pub label: Option<(String, String)>,
    /// Created at or after (ms).
    pub since: Option<i64>,
    /// Created before (ms).
    pub until: Option<i64>,
    /// Page size (0: the store's default of 100).
    pub limit: u32,
}

/// One message of a [`MessageFilter`] listing.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MessageSummary {
    pub id: MessageId,
    pub channel: String,
    pub state: MessageState,
    pub created_at: i64,
    pub trace_id: Option<String>,
    pub message: Message,
}

/// Messages accepted, deliveries done, requests that failed and dead
/// letters in one minute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct ActivityMinute {
    /// The minute's start (ms since the epoch, a multiple of 60 000).
    pub minute: i64,
    pub accepted: u64,
    pub delivered: u64,
    /// Requests to a platform that did not deliver (retried, rate limited,
    /// refused), by when they finished.
    pub failed: u64,
    pub dead: u64,
}

/// Which dead letters to replay or purge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeadSelector {
    Ids(Vec<DeliveryId>),
    /// Every dead letter matching (`limit` and `after` ignored).
    Filter(DeadFilter),
}

/// One delivery of a message, for `GET /v1/messages/{id}`.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct DeliveryView {
    #[schema(value_type = i64)]
    pub id: DeliveryId,
    pub target: Target,
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
    /// The silence holding it (state `silenced`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub silenced_by: Option<String>,
    /// The digest message this delivery was merged into.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub merged_into: Option<MessageId>,
    /// The group it was folded into (a channel's `group`); `merged_into`
    /// names the group's notification once it is sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Every request made for this delivery, oldest first.
    pub history: Vec<AttemptRecord>,
}

/// A message with its deliveries and history.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct MessageView {
    #[schema(value_type = String)]
    pub id: MessageId,
    pub channel: String,
    pub kind: MessageKind,
    pub state: MessageState,
    #[schema(value_type = Object)]
    pub message: Message,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub origin: Option<MessageId>,
    pub created_at: i64,
    /// Its thread, when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thread: Option<ThreadPos>,
    #[serde(skip_serializing_if = "Labels::is_empty")]
    pub labels: Labels,
    /// What produced it (`alertmanager/prod`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Where a silence for it is created.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub silence_url: Option<String>,
    /// Acknowledgements, silences and resolutions of its thread, oldest first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub acks: Vec<Ack>,
    /// The escalation of its thread, with every step fired.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub escalation: Option<Escalation>,
    pub deliveries: Vec<DeliveryView>,
}

/// Backlog of one target, for the dispatcher's scheduling.
///
/// Counts stop at the `cap` given to [`Store::backlog`] (plus expired claims):
/// the dispatcher needs to know "at least this many", and counting a queue
/// of a million to learn that would cost a million index steps per cycle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TargetBacklog {
    pub target: Target,
    /// Pending deliveries (due or not), counted up to the cap, plus claimed
    /// ones whose lease expired.
    pub pending: u64,
    /// Of those, due now (also counted up to the cap).
    pub due: u64,
    /// Earliest due time among them (now, for an expired claim).
    pub next_due_at: Option<i64>,
}

/// A delivery still open long after its message was accepted (fallback).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Overdue {
    pub delivery_id: DeliveryId,
    pub message_id: MessageId,
    pub channel: String,
    pub target: Target,
    pub created_at: i64,
}

/// Queue statistics.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, utoipa::ToSchema)]
pub struct QueueStats {
    pub messages: u64,
    pub pending: u64,
    pub in_flight: u64,
    pub done: u64,
    pub dead: u64,
    pub merged: u64,
    /// Held by silences.
    pub silenced: u64,
    /// Age of the oldest pending or in-flight delivery's message, ms.
    pub oldest_pending_age_ms: Option<i64>,
    pub by_target: Vec<TargetStats>,
}

/// Per-target counts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct TargetStats {
    pub target: Target,
    pub pending: u64,
    pub in_flight: u64,
    pub dead: u64,
}

/// A silence, in the shape of Alertmanager's v2 API: every matcher must hold
/// on a message's labels (its channel is the label `channel` unless it has
/// its own) from `starts_at` until `ends_at`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Silence {
    pub id: String,
    pub matchers: Vec<SilenceMatcher>,
    /// ms since the epoch.
    pub starts_at: i64,
    pub ends_at: i64,
    pub created_by: String,
    pub comment: String,
    pub updated_at: i64,
}

/// One matcher, as Alertmanager writes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SilenceMatcher {
    pub name: String,
    pub value: String,
    #[serde(rename = "isRegex", default)]
    pub is_regex: bool,
    #[serde(rename = "isEqual", default = "yes")]
    pub is_equal: bool,
}

fn yes() -> bool {
    true
}

/// What an early end of a silence sends of what it held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Release {
    None,
    All,
    /// The deliveries of messages of these channels.
    Channels(Vec<String>),
}

/// The escalation a message starts: its policy, and when the first step fires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EscalationStart {
    pub policy: String,
    pub first_due: i64,
}

/// Where an escalation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EscalationState {
    /// Walking its steps.
    Active,
    /// Someone acknowledged (or silenced) it.
    Acknowledged,
    /// Its alert resolved.
    Resolved,
    /// Every step (and repeat) fired without an acknowledgement.
    Completed,
}

impl EscalationState {
    pub fn as_str(self) -> &'static str {
        match self {
            EscalationState::Active => "active",
            EscalationState::Acknowledged => "acknowledged",
            EscalationState::Resolved => "resolved",
            EscalationState::Completed => "completed",
        }
    }
    /// The state stored as `s`; unknown text is [`StoreError::Corrupt`].
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "active" => Ok(EscalationState::Active),
            "acknowledged" => Ok(EscalationState::Acknowledged),
            "resolved" => Ok(EscalationState::Resolved),
            "completed" => Ok(EscalationState::Completed),
            _ => Err(StoreError::corrupt("escalations.state", s)),
        }
    }
}

/// An escalation and the steps it fired.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Escalation {
    /// The message that started it.
    #[schema(value_type = String)]
    pub id: MessageId,
    /// Its thread's first message (acknowledgements name it).
    #[schema(value_type = String)]
    pub root: MessageId,
    pub channel: String,
    pub policy: String,
    pub state: EscalationState,
    /// Steps fired so far, counting repeats.
    pub next_step: i64,
    /// When the next step fires (while active).
    pub due_at: i64,
    pub started_at: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<i64>,
    /// Who or what ended it: a user, `alertmanager`, `policy`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ended_by: Option<String>,
    pub steps: Vec<FiredStep>,
}

/// One step fired.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct FiredStep {
    /// Its number among every step fired (0 first), counting repeats.
    pub step: i64,
    pub fired_at: i64,
    #[serde(flatten)]
    pub record: StepRecord,
}

/// What a step did.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StepRecord {
    /// The step of the policy (0 first) and the round (0 first, then repeats).
    pub policy_step: usize,
    pub round: u32,
    pub notified: Vec<Notified>,
    /// What could not be done, e.g. a schedule with nobody on call.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// One notification of a step: a message queued to a channel, or an urgent
/// push on the message itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Notified {
    /// `channel:NAME` or `urgent:app|sms|phone`.
    pub via: String,
    /// The people it reached, by directory name.
    pub people: Vec<String>,
    /// The message queued for it.
    #[schema(value_type = String)]
    pub message_id: MessageId,
}

/// Firing one step: see [`Store::fire_escalation`].
#[derive(Debug, Clone)]
pub struct FireStep {
    pub id: MessageId,
    /// The step fired: the escalation's `next_step` as read.
    pub step: i64,
    pub record: StepRecord,
    pub messages: Vec<NewMessage>,
    /// When the step after it fires; `None`: this was the last.
    pub next_due: Option<i64>,
}

/// A temporary change of who is on call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Override {
    pub id: String,
    pub schedule: String,
    /// A person of `[[people]]`.
    pub person: String,
    pub starts_at: i64,
    pub ends_at: i64,
    pub created_by: String,
    pub created_at: i64,
}
