//! `POST /v1/messages`, `POST /v1/messages/batch`, `GET /v1/messages/{id}`.
//!
//! A message is accepted (202 with its id) only after the store has durably
//! committed it. Everything a producer can get wrong is answered with a 4xx
//! problem naming the field, and nothing is stored: the channel, the shape, and
//! whether every destination of the channel can render the message at all.
//!
//! ```json
//! POST /v1/messages
//! Authorization: Bearer <key>
//! Idempotency-Key: deploy-42
//! {"channel": "alerts", "text": "disk full on db-1"}
//! {"channel": "deploys", "title": "Deploy", "body": {"type": "markdown", "text": "**v1.2** is live"}}
//! {"channel": "oncall-app", "text": "page", "recipients": ["user1", "user2"]}
//! ```

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use imrelay_sdk::message::Body;
use imrelay_sdk::Message;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::auth::{Auth, Caller};
use super::extract::{object_opt, ApiJson, ApiPath};
use super::problem::{from_json_error, join_path, Problem};
use super::{single_header, AppState};
use crate::channels::{Channel, ChannelSet};
use crate::http::responses::{
    BodyProblems, KeyProblem, MessageNotFound, NotAccepting, StoreProblem,
};
use crate::http::truncate;
use crate::store::{body_hash, EnqueueOutcome, Idempotency, MessageId, MessageView, NewMessage};

/// Longest idempotency key accepted.
pub const MAX_IDEMPOTENCY_KEY: usize = 255;

/// A message to send: the body of `POST /v1/messages` and each item of a
/// batch. Give exactly one of `text`, `body` or `template`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"channel": "alerts", "title": "Disk", "text": "disk 91% full on db-1"}))]
pub struct SubmitRequest {
    /// The channel to send to.
    #[schema(min_length = 1)]
    pub channel: String,
    #[serde(default)]
    pub title: Option<String>,
    /// Shorthand for `"body": {"type": "text", "text": ...}`.
    #[serde(default)]
    pub text: Option<String>,
    /// The message body: `{"type": "text"|"markdown"|"link"|"card"|"news"|"image"|"template"|"raw", ...}`
    /// (see the README's message model).
    #[serde(default, deserialize_with = "object_opt")]
    #[schema(value_type = Option<Object>)]
    pub body: Option<Body>,
    /// Who to @: the platforms' ids `{"all": bool, "user_ids": [...], "mobiles": [...]}`,
    /// or references resolved through `[[people]]` and `[[schedules]]`:
    /// `["oncall:dba", "label:owner", "zhangsan"]`.
    #[serde(default)]
    #[schema(schema_with = mentions_schema)]
    pub mentions: crate::domain::mentions::MentionsSpec,
    /// An escalation policy (`[[escalation_policies]]`) to walk until someone
    /// acknowledges the message.
    #[serde(default)]
    pub escalation: Option<String>,
    /// For app channels: who receives it (user ids, open ids, chat ids...).
    #[serde(default)]
    pub recipients: Vec<String>,
    /// Correlates logs; defaults to the `X-Request-Id` header.
    #[serde(default)]
    pub trace_id: Option<String>,
    /// Same as the `Idempotency-Key` header (batch items use this).
    #[serde(default)]
    pub idempotency_key: Option<String>,
    /// Render the title and body from this template (`[templates.NAME]` or a
    /// built-in) with `data`, instead of giving `text` or `body`.
    #[serde(default)]
    pub template: Option<String>,
    /// The template's context (a JSON object).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub data: Option<Value>,
    /// A thread key: the first message with a key on a channel is sent, later
    /// ones update its card in place where the destination can (see the
    /// README's "The life of a message").
    #[serde(default)]
    pub thread: Option<String>,
    /// String labels, stored with the message (silences match on them).
    #[serde(default)]
    pub labels: crate::store::Labels,
    /// Buttons that call back: `{"id": "ack" | "resolve" | "silence:1h", "text": "认领"}`.
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    pub actions: Vec<imrelay_sdk::lifecycle::Action>,
}

fn mentions_schema() -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, OneOfBuilder, Schema, Type};
    Schema::OneOf(
        OneOfBuilder::new()
            .item(ObjectBuilder::new())
            .item(ArrayBuilder::new().items(ObjectBuilder::new().schema_type(Type::String)))
            .build(),
    )
}

/// The body of `POST /v1/messages/batch`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"messages": [
    {"channel": "alerts", "text": "backup finished"},
    {"channel": "alerts", "body": {"type": "markdown", "text": "**v1.2** is live"}}
]}))]
pub struct BatchRequest {
    /// At most `server.max_batch` messages. Items are parsed one by one, so
    /// one bad item is reported in its result without failing the others.
    #[schema(value_type = Vec<SubmitRequest>, min_items = 1)]
    pub messages: Vec<Value>,
}

/// A message was durably accepted (202).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Accepted {
    /// The message id; `GET /v1/messages/{id}` follows its deliveries.
    #[schema(value_type = String)]
    pub id: MessageId,
}

/// The 202 answer: [`Accepted`] with `Location`, and `Idempotent-Replayed`
/// when an idempotency key returned an earlier message.
pub struct AcceptedResponse {
    pub body: Accepted,
    pub replayed: bool,
}

impl IntoResponse for AcceptedResponse {
    fn into_response(self) -> Response {
        let location = HeaderValue::from_str(&format!("/v1/messages/{}", self.body.id));
        let mut resp = (StatusCode::ACCEPTED, Json(self.body)).into_response();
        if let Ok(loc) = location {
            resp.headers_mut().insert(header::LOCATION, loc);
        }
        if self.replayed {
            resp.headers_mut()
                .insert("idempotent-replayed", HeaderValue::from_static("true"));
        }
        resp
    }
}

/// The result of one batch item.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ItemResult {
    /// The item's position in `messages`.
    pub index: usize,
    /// 202 when accepted; otherwise the status the item alone would have got.
    pub status: u16,
    /// The accepted message's id.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub id: Option<MessageId>,
    /// Present (true) when an idempotency key returned an earlier message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idempotent_replayed: Option<bool>,
    /// Why the item was not accepted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<Problem>,
}

impl ItemResult {
    fn accepted(index: usize, id: MessageId, replayed: bool) -> Self {
        ItemResult {
            index,
            status: StatusCode::ACCEPTED.as_u16(),
            id: Some(id),
            idempotent_replayed: replayed.then_some(true),
            problem: None,
        }
    }

    fn failed(index: usize, p: Problem) -> Self {
        ItemResult {
            index,
            status: p.status.as_u16(),
            id: None,
            idempotent_replayed: None,
            problem: Some(p),
        }
    }
}

/// The answer to a batch with at least one accepted message: 202 when all
/// were, 207 when some were.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct BatchResult {
    pub accepted: usize,
    pub rejected: usize,
    /// One per item, in order.
    pub results: Vec<ItemResult>,
}

impl IntoResponse for BatchResult {
    fn into_response(self) -> Response {
        let status = if self.rejected == 0 {
            StatusCode::ACCEPTED
        } else {
            StatusCode::MULTI_STATUS
        };
        (status, Json(self)).into_response()
    }
}

/// Validate a request against the current channels and the caller's scope,
/// and build the message to enqueue. `at` prefixes field paths (`messages[3]`).
pub fn prepare(
    caller: &Caller,
    req: SubmitRequest,
    rt: &crate::runtime::Runtime,
    at: &str,
) -> Result<NewMessage, Problem> {
    let f = |name: &str| join_path(at, name);
    let channel = channel_for(caller, &req.channel, &rt.channels, at)?;
    let body = request_body(req.text, req.body, at)?;
    for (i, r) in req.recipients.iter().enumerate() {
        if r.trim().is_empty() || r.len() > 256 {
            return Err(Problem::invalid(
                f(&format!("recipients[{i}]")),
                "each recipient is a non-empty id of at most 256 bytes",
            ));
        }
    }
    if let Some(t) = &req.trace_id {
        check_token(t, 128).map_err(|why| Problem::invalid(f("trace_id"), why))?;
    }

    if let Some(p) = &req.escalation {
        if !rt.oncall.policies.contains_key(p) {
            return Err(Problem::invalid(
                f("escalation"),
                format!(
                    "there is no escalation policy `{}`; define it in [[escalation_policies]]",
                    crate::http::truncate(p, 64)
                ),
            ));
        }
    }
    let refs = req.mentions.refs();
    for (i, r) in refs.iter().enumerate() {
        let who = crate::oncall::who::Who::parse(r)
            .map_err(|why| Problem::invalid(f(&format!("mentions[{i}]")), why.to_string()))?;
        let mut issues = Vec::new();
        who.check("", &rt.oncall.people, &rt.oncall.schedules, &mut issues);
        if let Some(i0) = issues.first() {
            return Err(Problem::invalid(
                f(&format!("mentions[{i}]")),
                i0.message.clone(),
            ));
        }
    }

    let mut msg = Message::new(body);
    msg.title = req.title;
    msg.mentions = req.mentions.direct();
    msg.recipients = req.recipients;
    check_renders(channel, &msg, at)?;

    let mut nm = NewMessage::new(channel.name.clone(), msg, channel.targets());
    // The SDK derives platform dedup keys (Feishu uuid, WeChat client_msg_id)
    // from the message id, so retries of this message cannot duplicate.
    nm.message.id = Some(nm.id.to_string());
    nm.trace_id = req.trace_id;
    nm.oncall.mentions = refs;
    nm.oncall.escalation = req.escalation;
    crate::lifecycle::request::attach(&mut nm, req.thread, req.labels, req.actions, at)?;
    Ok(nm)
}

/// The channel a request names, if the caller may use it and it takes
/// producers' messages.
fn channel_for<'s>(
    caller: &Caller,
    name: &str,
    set: &'s ChannelSet,
    at: &str,
) -> Result<&'s Channel, Problem> {
    let f = |field: &str| join_path(at, field);
    if name.trim().is_empty() {
        return Err(Problem::invalid(f("channel"), "must name a channel"));
    }
    // Scope before existence, so a key cannot probe for other teams' channels.
    caller.require(name)?;
    // Callback forward channels carry only verified platform events.
    let forward = name.starts_with("callback:");
    set.get(name)
        .filter(|_| !forward)
        .ok_or_else(|| Problem::invalid(f("channel"), format!("no channel `{name}` is configured")))
}

/// The message body from `text` or `body` (exactly one, not empty).
fn request_body(text: Option<String>, body: Option<Body>, at: &str) -> Result<Body, Problem> {
    let f = |field: &str| join_path(at, field);
    match (text, body) {
        (Some(_), Some(_)) => Err(Problem::invalid(
            f("text"),
            "give either `text` or `body`, not both",
        )),
        (Some(text), None) => {
            if text.trim().is_empty() {
                return Err(Problem::invalid(f("text"), "must not be empty"));
            }
            Ok(Body::Text { text })
        }
        (None, Some(body)) => {
            if let Body::Text { text } | Body::Markdown { text } = &body {
                if text.trim().is_empty() {
                    return Err(Problem::invalid(f("body.text"), "must not be empty"));
                }
            }
            Ok(body)
        }
        (None, None) => Err(Problem::invalid(
            f("body"),
            "missing: give `text` (plain text) or `body` (e.g. {\"type\": \"markdown\", \"text\": \"...\"})",
        )),
    }
}

/// Render now, so a message no destination can express is refused here (422)
/// instead of dead-lettering later. Rendering is pure and cheap.
fn check_renders(channel: &Channel, msg: &Message, at: &str) -> Result<(), Problem> {
    let f = |field: &str| join_path(at, field);
    let mut addresses_recipients = false;
    for d in &channel.destinations {
        match d.dest.render(msg) {
            Ok(payloads) => {
                addresses_recipients |= payloads.iter().any(|p| !p.recipients.is_empty())
            }
            Err(e) => {
                let field = match &e {
                    imrelay_sdk::Error::Unsupported { .. } => f("body.type"),
                    _ => f("body"),
                };
                return Err(Problem::invalid(
                    field,
                    format!(
                        "channel `{}` cannot send this message to `{}`: {e}",
                        channel.name, d.key
                    ),
                ));
            }
        }
        if channel.pool {
            break; // members share one type
        }
    }
    if !msg.recipients.is_empty() && !addresses_recipients {
        return Err(Problem::invalid(
            f("recipients"),
            format!(
                "channel `{}` has only group robots/webhooks, which post to their group; remove `recipients` or use an app channel",
                channel.name
            ),
        ));
    }
    Ok(())
}

/// Printable ASCII without spaces, 1..=max bytes.
fn check_token(s: &str, max: usize) -> Result<(), String> {
    if s.is_empty() || s.len() > max || !s.bytes().all(|b| b.is_ascii_graphic()) {
        Err(format!(
            "must be 1-{max} visible ASCII characters without spaces"
        ))
    } else {
        Ok(())
    }
}

fn idempotency_header(headers: &HeaderMap) -> Result<Option<String>, Problem> {
    let Some(v) = single_header(headers, "idempotency-key")? else {
        return Ok(None);
    };
    // The IETF draft writes the key as a structured-field string ("...").
    let v = v.trim();
    let v = v
        .strip_prefix('"')
        .and_then(|x| x.strip_suffix('"'))
        .unwrap_or(v);
    check_token(v, MAX_IDEMPOTENCY_KEY).map_err(|why| Problem::invalid("Idempotency-Key", why))?;
    Ok(Some(v.to_string()))
}

fn request_id(headers: &HeaderMap) -> Option<String> {
    // The request's trace id (traceparent, X-Request-Id, or generated).
    let v = crate::telemetry::trace::request_trace_id(headers)?;
    check_token(&v, 128).ok()?;
    Some(v)
}

fn accepted(id: MessageId, replayed: bool) -> AcceptedResponse {
    AcceptedResponse {
        body: Accepted { id },
        replayed,
    }
}

fn conflict(field: &str, existing: &MessageId) -> Problem {
    Problem::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "idempotency-key-reused",
        "Idempotency key reused",
        "this idempotency key was already used with a different request body; use a new key for a new message",
    )
    .field(field)
    .with("existing_id", existing.as_str())
}

fn rejected(reason: String) -> Problem {
    Problem::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "rejected",
        "Message rejected",
        reason,
    )
}

/// `POST /v1/messages`.
#[utoipa::path(post, path = "/v1/messages", tag = "messages",
    request_body(content = SubmitRequest, content_type = "application/json"),
    params(
        ("Idempotency-Key" = Option<String>, Header, description = "Resubmitting with the same key and body returns the first message's id (1-255 visible ASCII characters)"),
        ("X-Request-Id" = Option<String>, Header, description = "Stored as the message's trace id unless `traceparent` or `trace_id` gives one"),
    ),
    responses(
        (status = 202, description = "Durably accepted", body = Accepted,
            headers(("Location" = String, description = "`/v1/messages/{id}`"),
                    ("Idempotent-Replayed" = String, description = "`true` when the key returned an earlier message"))),
        KeyProblem,
        BodyProblems,
        NotAccepting,
        (status = 403, description = "The key may not use this channel", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A field is invalid (named in `field`), or the idempotency key was used with another body", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub async fn submit(
    State(st): State<AppState>,
    Auth(caller): Auth,
    headers: HeaderMap,
    body: ApiJson<SubmitRequest>,
) -> Result<AcceptedResponse, Problem> {
    let header_key = idempotency_header(&headers)?;
    let ApiJson {
        value: mut req,
        raw: bytes,
    } = body;
    let key_field = if header_key.is_some() {
        "Idempotency-Key"
    } else {
        "idempotency_key"
    };
    let key = match (header_key, req.idempotency_key.take()) {
        (Some(h), Some(b)) if h != b => {
            return Err(Problem::invalid(
                "idempotency_key",
                "differs from the `Idempotency-Key` header; send one of them",
            ))
        }
        (Some(h), _) => Some(h),
        (None, Some(b)) => {
            check_token(&b, MAX_IDEMPOTENCY_KEY)
                .map_err(|why| Problem::invalid("idempotency_key", why))?;
            Some(b)
        }
        (None, None) => None,
    };
    if req.trace_id.is_none() {
        req.trace_id = request_id(&headers);
    }
    apply_template(&st, &mut req, "")?;
    let rt = st.live.runtime();
    let mut nm = prepare(&caller, req, &rt, "")?;
    drop(rt);
    if let Some(key) = key {
        nm.idempotency = Some(Idempotency {
            scope: caller.name.clone(),
            key,
            body_hash: body_hash(&bytes),
        });
    }
    st.check_accepting()?;
    let (channel, trace_id) = (nm.channel.clone(), nm.trace_id.clone());
    let mut batch = vec![nm];
    st.holds().apply(&mut batch, st.store.now_ms());
    let outcome = st.store.enqueue(batch).await?.into_iter().next();
    match outcome {
        Some(EnqueueOutcome::Created { id }) => {
            crate::telemetry::events::accepted(&channel, id.as_str(), trace_id.as_deref());
            Ok(accepted(id, false))
        }
        Some(EnqueueOutcome::Existing { id }) => Ok(accepted(id, true)),
        Some(EnqueueOutcome::Conflict { id }) => Err(conflict(key_field, &id)),
        Some(EnqueueOutcome::Rejected { reason }) => Err(rejected(reason)),
        None => Err(Problem::internal(
            "the store returned no outcome; nothing was accepted",
        )),
    }
}

/// `POST /v1/messages/batch`: `{"messages": [...]}`. Valid items are committed
/// in one transaction; each item gets its own result. 202 when all were
/// accepted, 207 when some were, and a 422 problem (with the same per-item
/// `results`) when none was: nothing stored.
#[utoipa::path(post, path = "/v1/messages/batch", tag = "messages",
    request_body(content = BatchRequest, content_type = "application/json"),
    params(
        ("Idempotency-Key" = Option<String>, Header, description = "Item i without its own `idempotency_key` uses `<key>/<i>`, so resending the batch returns the same ids"),
        ("X-Request-Id" = Option<String>, Header, description = "The items' trace id unless they give one"),
    ),
    responses(
        (status = 202, description = "Every message accepted (one commit)", body = BatchResult),
        (status = 207, description = "Some accepted; `results` gives each item's status and problem", body = BatchResult),
        KeyProblem,
        BodyProblems,
        NotAccepting,
        (status = 422, description = "None accepted (the problem's `results` gives each item's reason), or the batch itself is invalid", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub async fn submit_batch(
    State(st): State<AppState>,
    Auth(caller): Auth,
    headers: HeaderMap,
    ApiJson { value: batch, .. }: ApiJson<BatchRequest>,
) -> Result<BatchResult, Problem> {
    let header_key = idempotency_header(&headers)?;
    check_batch_size(batch.messages.len(), st.limits.max_batch)?;
    let request_id = request_id(&headers);

    let mut results: Vec<Option<ItemResult>> = vec![None; batch.messages.len()];
    let mut queued: Vec<(usize, String)> = Vec::new(); // (index, key field)
    let mut to_store = Vec::new();
    {
        let rt = st.live.runtime();
        let ctx = BatchContext {
            st: &st,
            caller: &caller,
            rt: &rt,
            header_key: header_key.as_deref(),
            request_id: request_id.as_deref(),
        };
        for (i, item) in batch.messages.into_iter().enumerate() {
            match ctx.parse_item(i, item) {
                Ok((nm, field)) => {
                    queued.push((i, field));
                    to_store.push(nm);
                }
                Err(p) => results[i] = Some(ItemResult::failed(i, p)),
            }
        }
    }
    let accepted_count = if to_store.is_empty() {
        0
    } else {
        st.check_accepting()?;
        store_batch(&st, queued, to_store, &mut results).await?
    };
    batch_answer(results, accepted_count)
}

/// A batch must hold from one to `server.max_batch` messages.
fn check_batch_size(len: usize, max_batch: usize) -> Result<(), Problem> {
    if len == 0 {
        return Err(Problem::invalid(
            "messages",
            "must hold at least one message",
        ));
    }
    if len > max_batch {
        return Err(Problem::invalid(
            "messages",
            format!("holds {len} messages; at most {max_batch} per batch (`server.max_batch`)"),
        ));
    }
    Ok(())
}

/// What every item of one batch is read against.
struct BatchContext<'a> {
    st: &'a AppState,
    caller: &'a Caller,
    rt: &'a crate::runtime::Runtime,
    /// The batch's `Idempotency-Key` header.
    header_key: Option<&'a str>,
    request_id: Option<&'a str>,
}

impl BatchContext<'_> {
    /// Item `i` as a message to store, with the name of the field its
    /// idempotency key came from (for a conflict's problem).
    fn parse_item(&self, i: usize, item: Value) -> Result<(NewMessage, String), Problem> {
        let at = format!("messages[{i}]");
        let item_hash = body_hash(&serde_json::to_vec(&item).unwrap_or_default());
        // serde would read a struct from an array too (positionally).
        if !item.is_object() {
            return Err(Problem::invalid(at, "each message must be a JSON object"));
        }
        let mut req = serde_path_to_error::deserialize::<_, SubmitRequest>(item)
            .map_err(|e| from_json_error(e, &at))?;
        let (key, field) = self.item_key(i, req.idempotency_key.take(), &at)?;
        if req.trace_id.is_none() {
            req.trace_id = self.request_id.map(str::to_string);
        }
        apply_template(self.st, &mut req, &at)?;
        let mut nm = prepare(self.caller, req, self.rt, &at)?;
        if let Some(key) = key {
            nm.idempotency = Some(Idempotency {
                scope: self.caller.name.clone(),
                key,
                body_hash: item_hash,
            });
        }
        Ok((nm, field))
    }

    /// Item `i`'s idempotency key and the field it came from: its own, else
    /// `"<header>/<i>"` so that resending the same batch returns the same ids.
    fn item_key(
        &self,
        i: usize,
        own: Option<String>,
        at: &str,
    ) -> Result<(Option<String>, String), Problem> {
        if let Some(k) = &own {
            check_token(k, MAX_IDEMPOTENCY_KEY)
                .map_err(|why| Problem::invalid(format!("{at}.idempotency_key"), why))?;
        }
        Ok(match (own, self.header_key) {
            (Some(k), _) => (Some(k), format!("{at}.idempotency_key")),
            (None, Some(h)) => (Some(format!("{h}/{i}")), "Idempotency-Key".to_string()),
            (None, None) => (None, String::new()),
        })
    }
}

/// Enqueue the parsed items in one commit and fill in their results; the
/// number accepted (created or returned by an idempotency key).
async fn store_batch(
    st: &AppState,
    queued: Vec<(usize, String)>,
    to_store: Vec<NewMessage>,
    results: &mut [Option<ItemResult>],
) -> Result<usize, Problem> {
    let meta: Vec<_> = to_store
        .iter()
        .map(|m| (m.channel.clone(), m.trace_id.clone()))
        .collect();
    let mut to_store = to_store;
    st.holds().apply(&mut to_store, st.store.now_ms());
    let outcomes = st.store.enqueue(to_store).await?;
    let mut accepted_count = 0usize;
    for (((i, field), outcome), (channel, trace_id)) in queued.into_iter().zip(outcomes).zip(meta) {
        results[i] = Some(match outcome {
            EnqueueOutcome::Created { id } => {
                accepted_count += 1;
                crate::telemetry::events::accepted(&channel, id.as_str(), trace_id.as_deref());
                ItemResult::accepted(i, id, false)
            }
            EnqueueOutcome::Existing { id } => {
                accepted_count += 1;
                ItemResult::accepted(i, id, true)
            }
            EnqueueOutcome::Conflict { id } => ItemResult::failed(i, conflict(&field, &id)),
            EnqueueOutcome::Rejected { reason } => ItemResult::failed(i, rejected(reason)),
        });
    }
    Ok(accepted_count)
}

/// The batch's answer: its results, or a problem holding them when none was
/// accepted.
fn batch_answer(
    results: Vec<Option<ItemResult>>,
    accepted_count: usize,
) -> Result<BatchResult, Problem> {
    let total = results.len();
    let results: Vec<ItemResult> = results
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            r.unwrap_or_else(|| {
                ItemResult::failed(
                    i,
                    Problem::internal("the store returned no outcome for this item"),
                )
            })
        })
        .collect();
    if accepted_count == 0 {
        // Nothing stored: answer as a problem, still with every item's reason.
        return Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "batch-rejected",
            "No message accepted",
            format!("none of the {total} messages was accepted; `results` gives each one's reason"),
        )
        .with("accepted", 0)
        .with("rejected", total)
        .with(
            "results",
            serde_json::to_value(&results).unwrap_or_default(),
        ));
    }
    Ok(BatchResult {
        accepted: accepted_count,
        rejected: total - accepted_count,
        results,
    })
}

/// `GET /v1/messages/{id}`: state, deliveries, every attempt with its outcome and
/// platform code, timestamps (milliseconds since the Unix epoch).
#[utoipa::path(get, path = "/v1/messages/{id}", tag = "messages",
    params(("id" = String, Path, description = "The id `POST /v1/messages` answered")),
    responses(
        (status = 200, description = "State, deliveries and every attempt", body = MessageView),
        KeyProblem,
        StoreProblem,
        MessageNotFound,
    ),
    security(("bearer" = [])))]
pub async fn get(
    State(st): State<AppState>,
    Auth(caller): Auth,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<MessageView>, Problem> {
    if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        return Err(Problem::not_found(format!(
            "no message `{}`",
            truncate(&id, 64)
        )));
    }
    // Another channel's message answers exactly like a missing one, so a key
    // cannot learn which ids exist.
    match st.store.get_message(&id).await? {
        Some(view) if caller.may_use(&view.channel) => Ok(Json(view)),
        _ => Err(Problem::not_found(format!("no message `{id}`"))),
    }
}

/// `POST /v1/messages` with `template` (+ `data`): render the title and body
/// from the template, so `prepare` sees an ordinary message. Errors name the
/// field (`template`, `data`) and are 422: the producer can fix them.
pub(crate) fn apply_template(
    st: &AppState,
    req: &mut super::messages::SubmitRequest,
    at: &str,
) -> Result<(), Problem> {
    use crate::http::problem::join_path;
    let f = |name: &str| join_path(at, name);
    let Some(name) = req.template.take() else {
        if req.data.is_some() {
            return Err(Problem::invalid(
                f("data"),
                "`data` is the context of a `template`; name the template too",
            ));
        }
        return Ok(());
    };
    if req.text.is_some() || req.body.is_some() {
        return Err(Problem::invalid(
            f("template"),
            "give either `template` (with `data`) or `text`/`body`, not both",
        ));
    }
    let data = req
        .data
        .take()
        .unwrap_or_else(|| serde_json::Value::Object(Default::default()));
    if !data.is_object() {
        return Err(Problem::invalid(f("data"), "must be a JSON object"));
    }
    let alerting = st.live.runtime().alerting.clone();
    if !alerting.templates.contains(&name) {
        let names: Vec<&str> = alerting.templates.names().collect();
        return Err(Problem::invalid(
            f("template"),
            format!(
                "no template `{name}` is defined; defined: {}",
                names.join(", ")
            ),
        ));
    }
    let ctx = minijinja::Value::from(minijinja::value::Serde(&data));
    let r = alerting
        .templates
        .render(&name, &ctx, Vec::new())
        .map_err(|e| {
            Problem::invalid(f("data"), format!("{e}; check `data` against the template"))
        })?;
    if req.title.is_none() {
        req.title = r.title;
    }
    req.body = Some(r.body);
    Ok(())
}
