//! Platform callback endpoints, one per `[[callbacks]]` app (no bearer key:
//! the platforms authenticate with their own signatures):
//! - `GET|POST /v1/callbacks/{name}`: Feishu/Lark events, DingTalk events,
//!   WeCom and WeChat URL verification (GET) and messages (POST);
//! - `POST /v1/callbacks/{name}/card`: Feishu legacy card actions.
//!
//! An event is acknowledged only after the store committed it (with its
//! forward deliveries); forwarding is asynchronous, through the dispatcher.
//! Answers (see `docs/callbacks.md`): 200 with the platform's reply; 400
//! malformed; 401 bad signature, stale timestamp or replayed nonce; 403 wrong
//! verification token / receive id; 404 unknown app; 503 when the event could
//! not be stored (the platform retries). A duplicate (same event id) gets the normal 200
//! reply, so the platform stops retrying, and is not forwarded again.

use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use bytes::Bytes;
use imrelay_sdk::message::Body;
use imrelay_sdk::Message;

use std::sync::Arc;

use super::config::CallbackPlatform;
use super::{clicks, CallbackRequest, CallbackSet, Reply, Verdict};
use crate::channels::ChannelSet;
use crate::http::problem::Problem;
use crate::http::{body_bytes, ApiContext};
use crate::lifecycle::click::ClickAnswer;
use crate::store::{body_hash, EnqueueOutcome, Idempotency, NewMessage, Store};
use imrelay_sdk::CardClick;

/// What the callback endpoints need from the gateway's state.
pub trait CallbacksContext: ApiContext {
    fn store(&self) -> &Arc<dyn Store>;
    /// The callback apps in force now.
    fn callbacks(&self) -> Arc<CallbackSet>;
    /// The channels in force now (each app forwards through its own).
    fn channels(&self) -> Arc<ChannelSet>;
    /// `Err` (503) once the gateway has started to shut down.
    fn check_accepting(&self) -> Result<(), Problem>;
    /// Act on a click on one of imrelay's card buttons (see
    /// [`crate::lifecycle::click`]).
    fn on_card_click(
        &self,
        platform: CallbackPlatform,
        click: CardClick,
    ) -> impl std::future::Future<Output = ClickAnswer> + Send;
}

/// The callback routes, for the API router to merge.
pub fn routes<S: CallbacksContext>() -> Router<S> {
    Router::new()
        .route("/v1/callbacks/{name}", get(event::<S>).post(event::<S>))
        .route("/v1/callbacks/{name}/card", post(card::<S>))
}

async fn event<S: CallbacksContext>(
    state: State<S>,
    name: Path<String>,
    method: Method,
    query: RawQuery,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    handle(state, name, false, method, query, headers, body).await
}

async fn card<S: CallbacksContext>(
    state: State<S>,
    name: Path<String>,
    method: Method,
    query: RawQuery,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    handle(state, name, true, method, query, headers, body).await
}

fn reply(r: Reply) -> Response {
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(r.content_type),
        )],
        r.body,
    )
        .into_response()
}

async fn handle<S: CallbacksContext>(
    State(state): State<S>,
    Path(name): Path<String>,
    card: bool,
    method: Method,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let set = state.channels();
    let Some(app) = state.callbacks().get(&name).cloned() else {
        tracing::warn!(callback = %name, "callback for an unknown app refused (404)");
        return Problem::not_found(format!(
            "no callback app `{name}` is configured; add [[callbacks]] with name = \"{name}\""
        ))
        .into_response();
    };
    let body = match body_bytes(body, state.max_body_bytes()) {
        Ok(b) => b,
        Err(p) => return p.into_response(),
    };
    let req = CallbackRequest {
        method,
        query: url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
            .into_owned()
            .collect(),
        headers,
        body,
        card,
    };
    let now = state.store().now_ms();
    let platform = app.platform.as_str();
    let (event, answer, claim) = match app.admit(&req, now) {
        Err(r) => {
            tracing::warn!(
                callback = %app.name,
                platform,
                check = r.check,
                status = r.status.as_u16(),
                detail = %r.detail,
                "callback rejected: {} check failed",
                r.check
            );
            let title = match r.status {
                StatusCode::UNAUTHORIZED => "Callback not authenticated",
                StatusCode::FORBIDDEN => "Callback for another app",
                _ => "Callback refused",
            };
            return Problem::new(r.status, "callback-rejected", title, r.detail)
                .with("check", r.check)
                .into_response();
        }
        Ok((Verdict::Answer { what, reply: r }, _)) => {
            tracing::info!(callback = %app.name, platform, handshake = what, "callback handshake answered");
            return reply(r);
        }
        Ok((Verdict::Event { event, reply }, claim)) => (event, reply, claim),
    };
    if let Err(p) = state.check_accepting() {
        return p.into_response();
    }
    let Some(channel) = set.get(&app.channel) else {
        tracing::error!(callback = %app.name, "the callback's forward channel is missing (a bug)");
        return Problem::internal("the callback's forward channel is missing").into_response();
    };
    let mut nm = NewMessage::new(
        app.channel.clone(),
        Message::new(Body::Text {
            text: String::new(),
        }),
        channel.targets(),
    );
    let doc = app.forward_document(&nm.id, &event, now);
    nm.message = Message::new(Body::Raw {
        platform: None,
        payload: doc,
    });
    // The webhook's `webhook-id` derives from the message id: stable across retries.
    nm.message.id = Some(nm.id.clone());
    nm.idempotency = Some(Idempotency {
        scope: app.channel.clone(),
        key: event.event_id.clone(),
        body_hash: body_hash(event.plaintext.as_bytes()),
    });
    let stored = state.store().enqueue(vec![nm]).await.map(|mut v| v.pop());
    // Stored (now or before): its timestamp and nonce are used up. Otherwise
    // the claim is dropped, so the platform's retry is not taken for a replay.
    if let Ok(Some(
        EnqueueOutcome::Created { .. }
        | EnqueueOutcome::Existing { .. }
        | EnqueueOutcome::Conflict { .. },
    )) = &stored
    {
        claim.keep();
    }
    match stored {
        Ok(Some(EnqueueOutcome::Created { id })) => {
            tracing::info!(
                callback = %app.name,
                platform,
                event_id = %event.event_id,
                event_type = event.normalized.event_type.as_deref().unwrap_or(""),
                kind = event.normalized.kind,
                message_id = %id,
                "callback event stored; forwarding"
            );
            // A click on an imrelay button: act on it once, when it is first
            // stored (a retried callback is a duplicate and acts no more).
            match clicks::card_click(app.platform, &event) {
                Some(click) => {
                    let done = state.on_card_click(app.platform, click).await;
                    reply(clicks::reply(app.platform, &done, answer))
                }
                None => reply(answer),
            }
        }
        Ok(Some(EnqueueOutcome::Existing { id } | EnqueueOutcome::Conflict { id })) => {
            tracing::info!(
                callback = %app.name,
                platform,
                check = "duplicate",
                event_id = %event.event_id,
                first_message_id = %id,
                "callback rejected: duplicate check failed (event already stored); acknowledged with 200 so the platform stops retrying, not forwarded again"
            );
            reply(answer)
        }
        Ok(other) => {
            tracing::error!(callback = %app.name, outcome = ?other, "the store refused the callback event");
            Problem::internal("the event could not be stored").into_response()
        }
        Err(e) => {
            tracing::error!(callback = %app.name, error = %e, "storing the callback event failed; the platform will retry");
            Problem::unavailable("the event could not be stored; retry").into_response()
        }
    }
}
