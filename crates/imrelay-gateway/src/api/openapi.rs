//! `GET /openapi.json`: the OpenAPI 3.1 document of the HTTP API as
//! implemented, built with `utoipa`. The operations are declared here (on
//! stub functions; the handlers live in their own files), and the test
//! `obs_openapi` reads every `.route(...)` in the crate's source and fails when
//! one is missing from this document.

use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use serde_json::Value;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

/// The document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "imrelay",
        description = "A push gateway for DingTalk, Feishu/Lark, WeCom and WeChat: a durable queue with retries, rate limits, circuit breakers and a dead-letter queue. Errors are application/problem+json (RFC 9457). Authenticate with `Authorization: Bearer <API key>`. Every response carries `X-Trace-Id` (from `traceparent`, else `X-Request-Id`, else generated)."
    ),
    paths(
        submit, submit_batch, get_message, dlq_list, dlq_inspect, dlq_purge_one, dlq_replay_one,
        dlq_replay_many, dlq_purge_many, status, alertmanager, callback_verify, callback_event,
        callback_card, healthz, readyz, metrics, openapi_json
    ),
    components(schemas(SubmitRequest, Accepted, BatchRequest, BatchResult, Problem, Selector, Health, Readiness)),
    modifiers(&BearerAuth),
    tags(
        (name = "messages", description = "Submit messages and follow their deliveries"),
        (name = "dlq", description = "The dead-letter queue"),
        (name = "alertmanager", description = "Prometheus Alertmanager webhook receiver"),
        (name = "callbacks", description = "Platform event callbacks (authenticated by the platforms' own signatures, no API key)"),
        (name = "operations", description = "Status, health, metrics")
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The document as JSON.
pub fn document() -> Value {
    serde_json::to_value(ApiDoc::openapi()).unwrap_or_default()
}

/// `GET /openapi.json` (no key needed).
pub async fn serve() -> Response {
    Json(document()).into_response()
}

/// A message to send (`POST /v1/messages`, and each item of a batch).
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
struct SubmitRequest {
    /// The channel to send to.
    channel: String,
    title: Option<String>,
    /// Shorthand for `{"type": "text", "text": ...}`; give `text` or `body`.
    text: Option<String>,
    /// `{"type": "text"|"markdown"|"link"|"card"|"news"|"image"|"template"|"raw", ...}`.
    #[schema(value_type = Option<Object>)]
    body: Option<Value>,
    /// `{"all": bool, "users": [...], "mobiles": [...]}`.
    #[schema(value_type = Option<Object>)]
    mentions: Option<Value>,
    /// For app channels: user, open or chat ids.
    recipients: Option<Vec<String>>,
    /// Correlates logs; defaults to the request's trace id.
    trace_id: Option<String>,
    /// Same as the `Idempotency-Key` header.
    idempotency_key: Option<String>,
}

/// A message was durably accepted.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
struct Accepted {
    id: String,
}

#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
struct BatchRequest {
    messages: Vec<SubmitRequest>,
}

/// Per-item results of a batch.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
struct BatchResult {
    accepted: u64,
    rejected: u64,
    #[schema(value_type = Vec<Object>)]
    results: Vec<Value>,
}

/// RFC 9457 problem details; `field` names the field at fault.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
struct Problem {
    r#type: String,
    title: String,
    status: u16,
    detail: String,
    field: Option<String>,
}

/// Dead letters to replay or purge: `{"ids": [...]}` or `{"filter": {...}}`.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
struct Selector {
    ids: Option<Vec<i64>>,
    /// `channel`, `code`, `message_id`, `since`, `until`.
    #[schema(value_type = Option<Object>)]
    filter: Option<Value>,
}

#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
struct Health {
    status: String,
}

/// Readiness with each check's result.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
struct Readiness {
    /// `ready` or `not_ready`.
    status: String,
    /// `store`, `config`, `draining`.
    #[schema(value_type = Object)]
    checks: Value,
}

#[utoipa::path(post, path = "/v1/messages", tag = "messages",
    request_body = SubmitRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Resubmitting with the same key returns the first message's id"),
           ("traceparent" = Option<String>, Header, description = "W3C trace context; its trace id is stored with the message")),
    responses((status = 202, description = "Durably accepted", body = Accepted),
              (status = 400, description = "Malformed body", body = Problem, content_type = "application/problem+json"),
              (status = 401, description = "Missing or unknown key", body = Problem, content_type = "application/problem+json"),
              (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
              (status = 422, description = "Invalid field", body = Problem, content_type = "application/problem+json"),
              (status = 503, description = "Draining", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
#[allow(dead_code)]
fn submit() {}

#[utoipa::path(post, path = "/v1/messages/batch", tag = "messages", request_body = BatchRequest,
    responses((status = 202, description = "All accepted", body = BatchResult),
              (status = 207, description = "Some accepted", body = BatchResult),
              (status = 422, description = "None accepted", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
#[allow(dead_code)]
fn submit_batch() {}

#[utoipa::path(get, path = "/v1/messages/{id}", tag = "messages",
    params(("id" = String, Path, description = "Message id")),
    responses((status = 200, description = "State, deliveries and every attempt", body = Object),
              (status = 404, description = "No such message", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
#[allow(dead_code)]
fn get_message() {}

#[utoipa::path(get, path = "/v1/dlq", tag = "dlq",
    params(("channel" = Option<String>, Query), ("code" = Option<String>, Query),
           ("since" = Option<String>, Query, description = "RFC 3339 or ms since the epoch"),
           ("until" = Option<String>, Query), ("limit" = Option<u32>, Query), ("after" = Option<i64>, Query)),
    responses((status = 200, description = "A page of dead letters", body = Object)),
    security(("bearer" = [])))]
#[allow(dead_code)]
fn dlq_list() {}

#[utoipa::path(get, path = "/v1/dlq/{id}", tag = "dlq", params(("id" = i64, Path)),
    responses((status = 200, description = "One dead letter", body = Object),
              (status = 404, description = "No such dead letter", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
#[allow(dead_code)]
fn dlq_inspect() {}

#[utoipa::path(delete, path = "/v1/dlq/{id}", tag = "dlq", params(("id" = i64, Path)),
    responses((status = 200, description = "Purged", body = Object)), security(("bearer" = [])))]
#[allow(dead_code)]
fn dlq_purge_one() {}

#[utoipa::path(post, path = "/v1/dlq/{id}/replay", tag = "dlq", params(("id" = i64, Path)),
    responses((status = 200, description = "Queued again with a fresh attempt count", body = Object)),
    security(("bearer" = [])))]
#[allow(dead_code)]
fn dlq_replay_one() {}

#[utoipa::path(post, path = "/v1/dlq/replay", tag = "dlq", request_body = Selector,
    responses((status = 200, description = "How many were queued again", body = Object)), security(("bearer" = [])))]
#[allow(dead_code)]
fn dlq_replay_many() {}

#[utoipa::path(post, path = "/v1/dlq/purge", tag = "dlq", request_body = Selector,
    responses((status = 200, description = "How many were purged", body = Object)), security(("bearer" = [])))]
#[allow(dead_code)]
fn dlq_purge_many() {}

#[utoipa::path(get, path = "/v1/status", tag = "operations",
    responses((status = 200, description = "Channels, destinations, breaker states, queue depths, DLQ size, recent success rate", body = Object)),
    security(("bearer" = [])))]
#[allow(dead_code)]
fn status() {}

#[utoipa::path(post, path = "/v1/alertmanager/{route}", tag = "alertmanager",
    params(("route" = String, Path, description = "A route under [alerting.routes]")),
    request_body(content = Object, description = "Alertmanager webhook payload (version 4)"),
    responses((status = 200, description = "Every message committed", body = Object),
              (status = 404, description = "No such route", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
#[allow(dead_code)]
fn alertmanager() {}

#[utoipa::path(get, path = "/v1/callbacks/{name}", tag = "callbacks",
    params(("name" = String, Path, description = "A configured [[callbacks]] app")),
    responses((status = 200, description = "URL verification echo (WeCom, WeChat)", body = String, content_type = "text/plain"),
              (status = 401, description = "Bad signature or stale timestamp", body = Problem, content_type = "application/problem+json"),
              (status = 404, description = "Unknown app", body = Problem, content_type = "application/problem+json")))]
#[allow(dead_code)]
fn callback_verify() {}

#[utoipa::path(post, path = "/v1/callbacks/{name}", tag = "callbacks",
    params(("name" = String, Path, description = "A configured [[callbacks]] app")),
    request_body(content = String, description = "The platform's event (JSON or XML, possibly encrypted)"),
    responses((status = 200, description = "Stored; the platform's expected reply", body = String),
              (status = 400, description = "Malformed", body = Problem, content_type = "application/problem+json"),
              (status = 401, description = "Bad signature or stale timestamp", body = Problem, content_type = "application/problem+json"),
              (status = 403, description = "Wrong verification token or receive id", body = Problem, content_type = "application/problem+json"),
              (status = 404, description = "Unknown app", body = Problem, content_type = "application/problem+json"),
              (status = 503, description = "Not stored; the platform retries", body = Problem, content_type = "application/problem+json")))]
#[allow(dead_code)]
fn callback_event() {}

#[utoipa::path(post, path = "/v1/callbacks/{name}/card", tag = "callbacks",
    params(("name" = String, Path, description = "A configured Feishu [[callbacks]] app")),
    request_body(content = Object, description = "Feishu legacy card action"),
    responses((status = 200, description = "Stored; the card reply", body = Object),
              (status = 401, description = "Bad signature", body = Problem, content_type = "application/problem+json")))]
#[allow(dead_code)]
fn callback_card() {}

#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "The process is up", body = Health)))]
#[allow(dead_code)]
fn healthz() {}

#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses((status = 200, description = "Ready", body = Readiness),
              (status = 503, description = "Not ready: store unreachable or draining", body = Readiness)))]
#[allow(dead_code)]
fn readyz() {}

#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text exposition format 0.0.4", body = String, content_type = "text/plain")))]
#[allow(dead_code)]
fn metrics() {}

#[utoipa::path(get, path = "/openapi.json", tag = "operations",
    responses((status = 200, description = "This document", body = Object)))]
#[allow(dead_code)]
fn openapi_json() {}
