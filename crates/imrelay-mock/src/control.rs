//! The mock's own HTTP API, under `/_mock/`:
//!
//! | method | path | what |
//! |---|---|---|
//! | GET | `/_mock/health` | `{"ok":true}` |
//! | GET | `/_mock/requests?platform=&target=&target_prefix=&endpoint=&accepted=&since=&limit=` | logged requests |
//! | DELETE | `/_mock/requests` | clear the log |
//! | GET | `/_mock/counts` | accepted/rejected/duplicate counts per target |
//! | GET, POST, DELETE | `/_mock/faults` | list, add (a [`FaultRule`]), clear fault rules |
//! | POST | `/_mock/robots` | register a robot ([`RobotConfig`]) |
//! | POST | `/_mock/apps` | register an app ([`AppConfig`]) |
//! | POST | `/_mock/tokens/expire` | expire every issued token now (`{"platform": "wechat"}` to limit) |
//! | POST | `/_mock/clock` | `{"advance_ms": N}`: move the mock's clock forward |
//! | GET | `/_mock/messages?platform=&target=` | messages the platforms took, with revisions, recall, reads and urgent pushes (`urgent`: kind, users, time) |
//! | GET | `/_mock/messages/{id}` | one of them by platform message id |
//! | POST | `/_mock/messages/{id}/read` | `{"user": "ou_x"}`: that user read it (read receipts) |
//! | POST | `/_mock/messages/{id}/click` | `{"action": "ack", "user": "ou_x"}`: click the button of that action, firing the platform's card callback at the app's `callback.url` (see [`crate::platform::click`]) |
//! | POST | `/_mock/reset` | clear log, faults, tokens, limits, dedup memory and clock offset |

use std::sync::Arc;

use axum::extract::{Query as QueryParams, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use crate::config::{AppConfig, MockPlatform, RobotConfig};
use crate::faults::FaultRule;
use crate::log::Query;
use crate::state::MockState;

pub fn routes() -> Router<Arc<MockState>> {
    Router::new()
        .route("/_mock/health", get(|| async { Json(json!({"ok": true})) }))
        .route("/_mock/requests", get(list_requests).delete(clear_requests))
        .route("/_mock/counts", get(counts))
        .route(
            "/_mock/faults",
            get(list_faults).post(add_fault).delete(clear_faults),
        )
        .route("/_mock/robots", post(add_robot))
        .route("/_mock/apps", post(add_app))
        .route("/_mock/tokens/expire", post(expire_tokens))
        .route("/_mock/clock", post(advance_clock))
        .route("/_mock/messages", get(list_messages))
        .route("/_mock/messages/{id}", get(get_message))
        .route("/_mock/messages/{id}/read", post(mark_read))
        .route("/_mock/messages/{id}/click", post(click))
        .route("/_mock/reset", post(reset))
}

#[derive(Debug, Deserialize)]
struct MessagesQuery {
    platform: Option<MockPlatform>,
    target: Option<String>,
}

async fn list_messages(
    State(s): State<Arc<MockState>>,
    QueryParams(q): QueryParams<MessagesQuery>,
) -> Response {
    let messages = s.sent.list(q.platform, q.target.as_deref());
    Json(json!({"total": messages.len(), "messages": messages})).into_response()
}

async fn get_message(
    State(s): State<Arc<MockState>>,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Response {
    match s.sent.get(&id) {
        Some(m) => Json(m).into_response(),
        None => no_message(&id),
    }
}

fn no_message(id: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(json!({"error": format!("no message {id}")})),
    )
        .into_response()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReadBody {
    user: String,
}

async fn mark_read(
    State(s): State<Arc<MockState>>,
    axum::extract::Path(id): axum::extract::Path<String>,
    Json(b): Json<ReadBody>,
) -> Response {
    if s.sent.mark_read(&id, &b.user, s.now_ms()) {
        match s.sent.get(&id) {
            Some(m) => Json(json!({"read_by": m.read_by})).into_response(),
            None => no_message(&id),
        }
    } else {
        no_message(&id)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClickBody {
    action: String,
    user: String,
}

async fn click(
    State(s): State<Arc<MockState>>,
    axum::extract::Path(id): axum::extract::Path<String>,
    Json(b): Json<ClickBody>,
) -> Response {
    let Some(m) = s.sent.get(&id) else {
        return no_message(&id);
    };
    match crate::platform::click(&s, &m, &b.action, &b.user).await {
        Ok(v) => Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn list_requests(
    State(s): State<Arc<MockState>>,
    QueryParams(q): QueryParams<Query>,
) -> Response {
    let entries = s.log.query(&q);
    Json(json!({"total": entries.len(), "requests": entries})).into_response()
}

async fn clear_requests(State(s): State<Arc<MockState>>) -> StatusCode {
    s.log.clear();
    StatusCode::NO_CONTENT
}

async fn counts(State(s): State<Arc<MockState>>) -> Response {
    Json(s.log.counts()).into_response()
}

async fn list_faults(State(s): State<Arc<MockState>>) -> Response {
    Json(s.faults.list()).into_response()
}

async fn add_fault(State(s): State<Arc<MockState>>, Json(rule): Json<FaultRule>) -> StatusCode {
    s.faults.add(rule);
    StatusCode::CREATED
}

async fn clear_faults(State(s): State<Arc<MockState>>) -> StatusCode {
    s.faults.clear();
    StatusCode::NO_CONTENT
}

async fn add_robot(State(s): State<Arc<MockState>>, Json(robot): Json<RobotConfig>) -> StatusCode {
    s.add_robot(robot);
    StatusCode::CREATED
}

async fn add_app(State(s): State<Arc<MockState>>, Json(app): Json<AppConfig>) -> StatusCode {
    s.add_app(app);
    StatusCode::CREATED
}

#[derive(Debug, Default, Deserialize)]
struct ExpireBody {
    platform: Option<MockPlatform>,
}

async fn expire_tokens(
    State(s): State<Arc<MockState>>,
    body: Option<Json<ExpireBody>>,
) -> Response {
    let platform = body.and_then(|b| b.0.platform);
    let n = s.tokens.expire_all(platform, s.now_ms());
    Json(json!({"expired": n})).into_response()
}

#[derive(Debug, Deserialize)]
struct ClockBody {
    advance_ms: i64,
}

async fn advance_clock(State(s): State<Arc<MockState>>, Json(b): Json<ClockBody>) -> Response {
    s.advance_clock(b.advance_ms);
    Json(json!({"now_ms": s.now_ms()})).into_response()
}

async fn reset(State(s): State<Arc<MockState>>) -> StatusCode {
    s.reset();
    StatusCode::NO_CONTENT
}
