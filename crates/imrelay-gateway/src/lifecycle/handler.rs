//! The API of a message's life after it is sent:
//!
//! - `PATCH /v1/messages/{id}`: update it (its thread's card) with new content;
//! - `DELETE /v1/messages/{id}`: recall every part delivered, where the
//!   platform can; the answer says per destination what will happen;
//! - `POST /v1/messages/{id}/ack`: acknowledge (or resolve, or silence) it.
//!
//! Each queues durable work (an update or a recall is a message in the queue)
//! and answers 202 with its id; another channel's message answers like a
//! missing one.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{patch, post};
use axum::{Json, Router};
use imrelay_sdk::http::HttpClient;
use imrelay_sdk::lifecycle::RecallMode;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::act::{act, ActContext, ActError, Actor};
use super::card::ActionKind;
use super::LifecycleSettings;
use crate::channels::ChannelSet;
use crate::http::auth::{Auth, Caller};
use crate::http::extract::{ApiJson, ApiPath};
use crate::http::problem::Problem;
use crate::http::responses::{BodyProblems, KeyProblem, MessageNotFound, NotAccepting};
use crate::http::ApiContext;
use crate::store::{Ack, MessageId, MessageKind, MessageView, NewMessage, Store};

/// What the lifecycle endpoints need from the gateway's state.
pub trait LifecycleContext: ApiContext {
    fn store(&self) -> &Arc<dyn Store>;
    fn channels(&self) -> Arc<ChannelSet>;
    fn settings(&self) -> Arc<LifecycleSettings>;
    /// The client silences are created with.
    fn http(&self) -> Option<&HttpClient>;
    /// `Err` (503) once the gateway has started to shut down.
    fn check_accepting(&self) -> Result<(), Problem>;
    /// A message for `channel` from a request body, checked exactly as
    /// `POST /v1/messages` checks one (`body` has no `channel`).
    fn prepare(&self, caller: &Caller, channel: &str, body: Value) -> Result<NewMessage, Problem>;
}

/// The routes, for the API router to merge.
pub fn router<S: LifecycleContext>() -> Router<S> {
    Router::new()
        .route("/v1/messages/{id}", patch(update::<S>).delete(recall::<S>))
        .route("/v1/messages/{id}/ack", post(acknowledge::<S>))
        .route("/v1/messages/{id}/urgent", post(super::urgent::urgent::<S>))
}

/// The answer to an update or a recall.
#[derive(Debug, Serialize, ToSchema)]
pub struct Queued {
    /// The id of the queued update or recall (`GET /v1/messages/{id}`).
    #[schema(value_type = String)]
    pub id: MessageId,
    /// The message it acts on (a thread's first message).
    #[schema(value_type = String)]
    pub of: MessageId,
    /// For a recall: what happens per destination.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub destinations: Vec<RecallPlan>,
}

/// What a recall does at one destination.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RecallPlan {
    pub target: crate::store::Target,
    /// The destination type (`feishu_app`, `dingtalk_robot`, ...).
    pub kind: String,
    /// Parts delivered there.
    pub parts: usize,
    /// Whether the recall is queued for it.
    pub recall: bool,
    /// Why not, when not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The body of `POST /v1/messages/{id}/ack`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AckRequest {
    /// Who acknowledges (a name or a user id).
    #[schema(min_length = 1)]
    pub by: String,
    /// `ack` (default), `resolve`, or `silence:DURATION` (e.g. `silence:1h`:
    /// a silence in the Alertmanager that sent the alert).
    #[serde(default)]
    pub action: Option<String>,
}

/// The answer to an acknowledgement.
#[derive(Debug, Serialize, ToSchema)]
pub struct AckAnswer {
    pub ack: Ack,
    /// The same action was taken before: this one changed nothing.
    pub already: bool,
}

/// A message the caller may see, or 404 as for a missing one.
pub(super) async fn visible<S: LifecycleContext>(
    st: &S,
    caller: &Caller,
    id: &str,
) -> Result<MessageView, Problem> {
    let missing = || Problem::not_found(format!("no message `{}`", crate::http::truncate(id, 64)));
    if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        return Err(missing());
    }
    match st.store().get_message(id).await? {
        Some(v) if caller.may_use(&v.channel) => Ok(v),
        _ => Err(missing()),
    }
}

pub(super) fn root_of(v: &MessageView) -> MessageId {
    v.thread
        .as_ref()
        .map(|t| t.root.clone())
        .unwrap_or_else(|| v.id.clone())
}

/// `PATCH /v1/messages/{id}`: new content for the message's card.
#[utoipa::path(patch, path = "/v1/messages/{id}", tag = "messages",
    params(("id" = String, Path, description = "The message (any message of its thread)")),
    request_body(content = Object, description = "The new content: the fields of `POST /v1/messages` except `channel`"),
    responses(
        (status = 202, description = "The update is queued: it edits the card in place where the destination can, else it is sent as a new message naming the first", body = Queued),
        KeyProblem,
        MessageNotFound,
        NotAccepting,
        BodyProblems,
        (status = 422, description = "A field is invalid (named in `field`)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub async fn update<S: LifecycleContext>(
    State(st): State<S>,
    Auth(caller): Auth,
    ApiPath(id): ApiPath<String>,
    ApiJson { value: body, .. }: ApiJson<Value>,
) -> Result<Response, Problem> {
    st.check_accepting()?;
    let view = visible(&st, &caller, &id).await?;
    if view.kind.acts_on_origin() {
        return Err(Problem::invalid(
            "id",
            format!(
                "a message of kind `{}` cannot be updated",
                view.kind.as_str()
            ),
        ));
    }
    if let Some(c) = body
        .get("channel")
        .filter(|c| c.as_str() != Some(view.channel.as_str()))
    {
        return Err(Problem::invalid(
            "channel",
            format!(
                "an update stays in its message's channel `{}`; leave `channel` out (got {c})",
                view.channel
            ),
        ));
    }
    let Value::Object(mut fields) = body else {
        return Err(Problem::invalid("", "the body must be a JSON object"));
    };
    fields.remove("channel");
    let key = st
        .store()
        .adopt_thread(&view.id)
        .await?
        .ok_or_else(|| Problem::not_found(format!("no message `{id}`")))?;
    let root = root_of(&view);
    let mut nm = st.prepare(&caller, &view.channel, Value::Object(fields))?;
    nm.thread = Some(key);
    nm.labels = view.labels.clone();
    nm.silence_url = view.silence_url.clone();
    nm.source = view.source.clone();
    // Only the destinations the thread went to.
    let sent_to: Vec<crate::store::Target> =
        view.deliveries.iter().map(|d| d.target.clone()).collect();
    nm.targets.retain(|t| sent_to.contains(t));
    let new_id = nm.id.clone();
    st.store().enqueue(vec![nm]).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(Queued {
            id: new_id,
            of: root,
            destinations: Vec::new(),
        }),
    )
        .into_response())
}

/// `DELETE /v1/messages/{id}`: recall what the message (its thread's card)
/// delivered.
#[utoipa::path(delete, path = "/v1/messages/{id}", tag = "messages",
    params(("id" = String, Path, description = "The message (any message of its thread)")),
    responses(
        (status = 202, description = "The recall is queued; `destinations` says per destination whether it is recalled and why not", body = Queued),
        KeyProblem,
        MessageNotFound,
        NotAccepting,
        (status = 409, description = "No destination can recall it (custom robots, past the platform's window); `destinations` says why", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The message is itself a recall", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub async fn recall<S: LifecycleContext>(
    State(st): State<S>,
    Auth(caller): Auth,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, Problem> {
    st.check_accepting()?;
    let view = visible(&st, &caller, &id).await?;
    if view.kind == MessageKind::Recall {
        return Err(Problem::invalid("id", "a recall cannot be recalled"));
    }
    let root_id = root_of(&view);
    let root = match root_id == view.id {
        true => view,
        false => st
            .store()
            .get_message(&root_id)
            .await?
            .ok_or_else(|| Problem::not_found(format!("no message `{id}`")))?,
    };
    let plans = recall_plans(&st, &root).await?;
    let targets: Vec<crate::store::Target> = plans
        .iter()
        .filter(|p| p.recall)
        .map(|p| p.target.clone())
        .collect();
    if targets.is_empty() {
        return Err(Problem::new(
            StatusCode::CONFLICT,
            "cannot-recall",
            "Cannot recall",
            "no destination of this message can recall it; `destinations` says why for each",
        )
        .with(
            "destinations",
            serde_json::to_value(&plans).unwrap_or_default(),
        ));
    }
    let mut nm = NewMessage::new(root.channel.clone(), root.message.clone(), targets);
    nm.kind = MessageKind::Recall;
    nm.origin = Some(root.id.clone());
    let new_id = nm.id.clone();
    st.store().enqueue(vec![nm]).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(Queued {
            id: new_id,
            of: root.id,
            destinations: plans,
        }),
    )
        .into_response())
}

/// Per destination the root went to: whether it can be recalled now.
async fn recall_plans<S: LifecycleContext>(
    st: &S,
    root: &MessageView,
) -> Result<Vec<RecallPlan>, Problem> {
    let parts = st.store().sent_parts(&root.id).await?;
    let channels = st.channels();
    let now = st.store().now_ms();
    let mut plans: Vec<RecallPlan> = Vec::new();
    for d in &root.deliveries {
        if plans.iter().any(|p| p.target == d.target) {
            continue;
        }
        let here: Vec<_> = parts
            .iter()
            .filter(|(t, _)| *t == d.target)
            .map(|(_, p)| p)
            .collect();
        let resolved = channels.resolve(&d.target);
        let kind = resolved
            .as_ref()
            .and_then(|r| r.members.first())
            .map(|m| m.dest.kind().to_string())
            .unwrap_or_default();
        let mut plan = RecallPlan {
            target: d.target.clone(),
            kind,
            parts: here.len(),
            recall: false,
            reason: None,
        };
        plan.reason = match &resolved {
            None => Some("the destination is no longer configured".into()),
            Some(r) => match r.members.first().map(|m| m.dest.lifecycle().recall) {
                Some(RecallMode::Unsupported { reason }) => Some(reason),
                _ if here.is_empty() => {
                    Some("nothing with a platform id was delivered there (yet)".into())
                }
                _ => here.iter().find_map(|p| {
                    let member = r.members.iter().find(|m| m.key == p.destination)?;
                    member
                        .dest
                        .lifecycle()
                        .can_recall(p.sent.sent_at_ms, now)
                        .err()
                }),
            },
        };
        plan.recall = plan.reason.is_none();
        plans.push(plan);
    }
    Ok(plans)
}

/// `POST /v1/messages/{id}/ack`: acknowledge, resolve or silence it.
#[utoipa::path(post, path = "/v1/messages/{id}/ack", tag = "messages",
    params(("id" = String, Path, description = "The message (any message of its thread)")),
    request_body = AckRequest,
    responses(
        (status = 202, description = "Recorded; the card update is queued", body = AckAnswer),
        (status = 200, description = "The same action was taken before; nothing changed", body = AckAnswer),
        KeyProblem,
        MessageNotFound,
        NotAccepting,
        BodyProblems,
        (status = 422, description = "A field is invalid (named in `field`)", body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "Alertmanager did not create the silence; nothing was recorded", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub async fn acknowledge<S: LifecycleContext>(
    State(st): State<S>,
    Auth(caller): Auth,
    ApiPath(id): ApiPath<String>,
    ApiJson { value: req, .. }: ApiJson<AckRequest>,
) -> Result<Response, Problem> {
    st.check_accepting()?;
    let by = req.by.trim();
    if by.is_empty() || by.len() > 128 {
        return Err(Problem::invalid(
            "by",
            "name who acknowledges (1-128 bytes)",
        ));
    }
    let action = req.action.as_deref().unwrap_or("ack");
    let kind = ActionKind::of(action).ok_or_else(|| {
        Problem::invalid(
            "action",
            format!("`{action}` is not an action; use `ack`, `resolve` or `silence:DURATION` (e.g. `silence:1h`)"),
        )
    })?;
    let view = visible(&st, &caller, &id).await?;
    let settings = st.settings();
    let cx = ActContext {
        store: st.store(),
        settings: &settings,
        http: st.http(),
        now_ms: st.store().now_ms(),
    };
    let actor = Actor {
        user_id: by.to_string(),
        user_name: Some(by.to_string()),
        source: "api".into(),
        event_id: None,
    };
    match act(&cx, &view, kind, actor).await {
        Ok(done) => Ok((
            if done.already {
                StatusCode::OK
            } else {
                StatusCode::ACCEPTED
            },
            Json(AckAnswer {
                ack: done.ack,
                already: done.already,
            }),
        )
            .into_response()),
        Err(ActError::Store(e)) => Err(e.into()),
        Err(e @ ActError::NotActionable(_)) => Err(Problem::invalid("id", e.to_string())),
        Err(ActError::Silence(why)) => Err(Problem::new(
            StatusCode::BAD_GATEWAY,
            "silence-failed",
            "Silence not created",
            format!("nothing was recorded: {why}"),
        )),
    }
}
