//! Urgent pushes about a message already sent: the platform itself pushes
//! it again, in the app, by SMS or by phone (Feishu 加急 on the sent message,
//! DingTalk DING carrying its text). WeCom and robots have no such push.
//!
//! A push is a message in the queue of kind `urgent_app`, `urgent_sms` or
//! `urgent_phone` whose `origin` is the message pushed and whose recipients
//! are the users, so retries, rate limits, leases and the dead-letter queue
//! apply to it as to a send, and it is never pushed twice. The dispatcher
//! turns it into one push per part the origin delivered at each target
//! (or one DING).
//!
//! - [`plan`]: per destination the origin went to, whether it can push
//!   `kind` and why not;
//! - [`urgent_message`]: the queued message for those that can (what the
//!   escalation engine enqueues); [`prepare`] does both;
//! - `POST /v1/messages/{id}/urgent`: both, over the API.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use imrelay_sdk::lifecycle::UrgentScope;
use imrelay_sdk::{Message, UrgentKind};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::handler::{root_of, visible, LifecycleContext};
use crate::channels::ChannelSet;
use crate::http::auth::{Auth, Caller};
use crate::http::extract::{ApiJson, ApiPath};
use crate::http::problem::Problem;
use crate::http::responses::{BodyProblems, KeyProblem, MessageNotFound, NotAccepting};
use crate::store::{
    DeliveryState, MessageId, MessageKind, MessageView, NewMessage, SentPartRecord, Store,
    StoreError,
};

/// Users one push may name (Feishu's and DingTalk's in-app limit).
pub const MAX_USERS: usize = 200;
/// The longest text a push carries.
pub const MAX_TEXT_BYTES: usize = 2_000;

/// The body of `POST /v1/messages/{id}/urgent`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UrgentRequest {
    /// `app` (in the app, free), `sms` or `phone` (both draw on the
    /// tenant's paid quota).
    #[schema(value_type = String, example = "phone")]
    pub kind: UrgentKind,
    /// The users to push, as the platform names them (Feishu open_id,
    /// DingTalk userId).
    #[schema(min_items = 1, max_items = 200)]
    pub users: Vec<String>,
    /// What a DING says (DingTalk); defaults to the message's title or text.
    /// Feishu pushes the message itself and ignores it.
    #[serde(default)]
    pub text: Option<String>,
}

/// What an urgent push does at one destination.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct UrgentPlan {
    pub target: crate::store::Target,
    /// The destination type (`feishu_app`, `dingtalk_app`, ...).
    pub kind: String,
    /// Whether the push is queued for it.
    pub urgent: bool,
    /// Why not, when not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The answer to an urgent push.
#[derive(Debug, Serialize, ToSchema)]
pub struct UrgentQueued {
    /// The id of the queued push (`GET /v1/messages/{id}` shows its attempts).
    #[schema(value_type = String)]
    pub id: MessageId,
    /// The message pushed (a thread's first message).
    #[schema(value_type = String)]
    pub of: MessageId,
    /// What happens per destination.
    pub destinations: Vec<UrgentPlan>,
}

/// Per destination `origin` went to: whether it can push `kind` about it.
/// `parts` are the origin's sent parts ([`crate::store::Store::sent_parts`]).
pub fn plan(
    channels: &ChannelSet,
    origin: &MessageView,
    parts: &[(String, SentPartRecord)],
    kind: UrgentKind,
) -> Vec<UrgentPlan> {
    let mut plans: Vec<UrgentPlan> = Vec::new();
    for d in &origin.deliveries {
        if plans.iter().any(|p| p.target == d.target) {
            continue;
        }
        let resolved = channels.resolve(&d.target);
        let first = resolved.as_ref().and_then(|r| r.members.first());
        let lifecycle = first.map(|m| m.dest.lifecycle());
        let sent_here = parts.iter().any(|(t, _)| *t == d.target);
        let open = origin.deliveries.iter().any(|x| {
            x.target == d.target
                && matches!(
                    x.state,
                    DeliveryState::Pending | DeliveryState::Claimed | DeliveryState::Merged
                )
        });
        let reason = match &lifecycle {
            None => Some("the destination is no longer configured".to_string()),
            Some(l) => match l.can_urgent(kind) {
                Err(why) => Some(why),
                Ok(()) if l.urgent_scope == UrgentScope::SentMessage && !sent_here && !open => {
                    Some("nothing with a platform id was delivered there to push".into())
                }
                Ok(()) => None,
            },
        };
        plans.push(UrgentPlan {
            target: d.target.clone(),
            kind: first.map(|m| m.dest.kind().to_string()).unwrap_or_default(),
            urgent: reason.is_none(),
            reason,
        });
    }
    plans
}

/// The queued urgent push of `kind` about `origin` (a thread's first
/// message, which carries its sent parts) to `users` at `targets` (those
/// [`plan`] queues), carrying `text` where the platform shows text. Enqueue
/// it with [`crate::store::Store::enqueue`].
pub fn urgent_message(
    origin: &MessageView,
    targets: Vec<crate::store::Target>,
    kind: UrgentKind,
    users: Vec<String>,
    text: impl Into<String>,
) -> NewMessage {
    let mut msg = Message::text(text);
    msg.title = origin.message.title.clone();
    msg.recipients = users;
    let mut nm = NewMessage::new(origin.channel.clone(), msg, targets);
    nm.kind = MessageKind::Urgent(kind);
    nm.origin = Some(origin.id.clone());
    nm.trace_id = origin.trace_id.clone();
    nm
}

/// [`plan`] and [`urgent_message`] in one: the push of `kind` about
/// `origin` (a thread's first message) to `users`, `None` when no
/// destination can push it, with the plan either way. `text` defaults to
/// [`default_text`]. The caller enqueues the message.
pub async fn prepare(
    store: &dyn Store,
    channels: &ChannelSet,
    origin: &MessageView,
    kind: UrgentKind,
    users: Vec<String>,
    text: Option<String>,
) -> Result<(Option<NewMessage>, Vec<UrgentPlan>), StoreError> {
    let parts = store.sent_parts(&origin.id).await?;
    let plans = plan(channels, origin, &parts, kind);
    let targets: Vec<crate::store::Target> = plans
        .iter()
        .filter(|p| p.urgent)
        .map(|p| p.target.clone())
        .collect();
    if targets.is_empty() {
        return Ok((None, plans));
    }
    let text = text.unwrap_or_else(|| default_text(&origin.message));
    Ok((
        Some(urgent_message(origin, targets, kind, users, text)),
        plans,
    ))
}

/// What a push says by default: the message's title, else its text.
pub fn default_text(origin: &Message) -> String {
    let text = match &origin.body {
        imrelay_sdk::Body::Text { text } | imrelay_sdk::Body::Markdown { text } => text.as_str(),
        imrelay_sdk::Body::Card { text, .. } | imrelay_sdk::Body::Link { text, .. } => {
            text.as_str()
        }
        _ => "",
    };
    let s = match origin.title.as_deref().filter(|t| !t.trim().is_empty()) {
        Some(t) => t.to_string(),
        None if !text.trim().is_empty() => text.to_string(),
        None => origin.title_or_default(),
    };
    truncate(&s, MAX_TEXT_BYTES)
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

/// The users of a request: 1..=200 ids without spaces, duplicates dropped.
fn check_users(users: Vec<String>) -> Result<Vec<String>, Problem> {
    let mut out: Vec<String> = Vec::with_capacity(users.len());
    for (i, u) in users.into_iter().enumerate() {
        let u = u.trim().to_string();
        if u.is_empty() || u.len() > 128 || u.chars().any(char::is_whitespace) {
            return Err(Problem::invalid(
                format!("users[{i}]"),
                "a user id is 1-128 bytes without spaces (a Feishu open_id, a DingTalk userId)",
            ));
        }
        if !out.contains(&u) {
            out.push(u);
        }
    }
    if out.is_empty() || out.len() > MAX_USERS {
        return Err(Problem::invalid(
            "users",
            format!("name 1 to {MAX_USERS} users to push"),
        ));
    }
    Ok(out)
}

/// `POST /v1/messages/{id}/urgent`: have the platform push the message
/// urgently to `users`.
#[utoipa::path(post, path = "/v1/messages/{id}/urgent", tag = "messages",
    params(("id" = String, Path, description = "The message (any message of its thread)")),
    request_body = UrgentRequest,
    responses(
        (status = 202, description = "The push is queued; `destinations` says per destination whether it pushes and why not", body = UrgentQueued),
        KeyProblem,
        MessageNotFound,
        NotAccepting,
        BodyProblems,
        (status = 409, description = "No destination of the message can push it (WeCom, robots, nothing delivered); `destinations` says why", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A field is invalid (named in `field`), or the message is itself a recall or an urgent push", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub async fn urgent<S: LifecycleContext>(
    State(st): State<S>,
    Auth(caller): Auth,
    ApiPath(id): ApiPath<String>,
    ApiJson { value: req, .. }: ApiJson<UrgentRequest>,
) -> Result<Response, Problem> {
    st.check_accepting()?;
    let users = check_users(req.users)?;
    let text = match req.text.map(|t| t.trim().to_string()) {
        Some(t) if t.is_empty() || t.len() > MAX_TEXT_BYTES => {
            return Err(Problem::invalid(
                "text",
                format!("the text is 1 to {MAX_TEXT_BYTES} bytes (or leave it out)"),
            ))
        }
        t => t,
    };
    let root = pushed_message(&st, &caller, &id).await?;
    let (nm, plans) = prepare(
        st.store().as_ref(),
        &st.channels(),
        &root,
        req.kind,
        users,
        text,
    )
    .await?;
    let Some(nm) = nm else {
        return Err(Problem::new(
            StatusCode::CONFLICT,
            "cannot-push-urgently",
            "Cannot push urgently",
            format!(
                "no destination of this message can push it by {}; `destinations` says why for each",
                req.kind
            ),
        )
        .with(
            "destinations",
            serde_json::to_value(&plans).unwrap_or_default(),
        ));
    };
    let new_id = nm.id.clone();
    st.store().enqueue(vec![nm]).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(UrgentQueued {
            id: new_id,
            of: root.id,
            destinations: plans,
        }),
    )
        .into_response())
}

/// The thread's first message the caller may see: what a push points at.
async fn pushed_message<S: LifecycleContext>(
    st: &S,
    caller: &Caller,
    id: &str,
) -> Result<MessageView, Problem> {
    let view = visible(st, caller, id).await?;
    if view.kind.acts_on_origin() {
        return Err(Problem::invalid(
            "id",
            format!(
                "a message of kind `{}` cannot be pushed",
                view.kind.as_str()
            ),
        ));
    }
    let root_id = root_of(&view);
    if root_id == view.id {
        return Ok(view);
    }
    st.store()
        .get_message(&root_id)
        .await?
        .ok_or_else(|| Problem::not_found(format!("no message `{id}`")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_are_checked_and_deduplicated() {
        assert_eq!(
            check_users(vec!["ou_a".into(), " ou_b ".into(), "ou_a".into()]).unwrap(),
            ["ou_a", "ou_b"]
        );
        assert!(check_users(vec![]).is_err());
        assert!(check_users(vec!["ou a".into()]).is_err());
        let many: Vec<String> = (0..=MAX_USERS).map(|i| format!("ou_{i}")).collect();
        assert!(check_users(many).is_err());
    }

    #[test]
    fn the_default_text_is_the_title_else_the_text() {
        let titled = Message::text("disk full on db-1").with_title("DiskFull");
        assert_eq!(default_text(&titled), "DiskFull");
        assert_eq!(default_text(&Message::text("disk full")), "disk full");
        let long = Message::text("é".repeat(MAX_TEXT_BYTES));
        assert!(default_text(&long).len() <= MAX_TEXT_BYTES);
    }
}
