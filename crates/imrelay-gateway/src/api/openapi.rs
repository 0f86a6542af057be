//! `GET /openapi.json`: the OpenAPI 3.1 document of the HTTP API, derived from
//! the handlers (`#[utoipa::path]`) and the request and response types
//! (`ToSchema`) themselves, so it cannot drift from them. Routes served
//! outside this module's typed handlers (the Alertmanager receiver, platform
//! callbacks, `/metrics`) are described by the `OtherRoutes` modifier. The test
//! `obs_openapi` reads every `.route(...)` in the crate's source and fails when
//! one is missing from this document; schemathesis (in `tests/run`) checks a
//! running gateway against it.

use std::sync::OnceLock;

use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use utoipa::openapi::path::{HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::response::{ResponseBuilder, ResponsesBuilder};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{Content, PathItem, Required};
use utoipa::{Modify, OpenApi};

use super::problem::Problem;
use super::{dlq, messages, ops, render};
use crate::grouping::handler as groups;
use crate::http::responses::problem;
use crate::lifecycle::handler as lifecycle;
use crate::lifecycle::urgent;
use crate::oncall::handler as oncall;
use crate::silences::handler as silences;

/// The document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "imrelay",
        description = "A push gateway for DingTalk, Feishu/Lark, WeCom and WeChat: a durable queue with retries, rate limits, circuit breakers and a dead-letter queue. Errors are application/problem+json (RFC 9457). Authenticate with `Authorization: Bearer <API key>`. Every response carries `X-Trace-Id` (from `traceparent`, else `X-Request-Id`, else generated). Request bodies must be sent as `Content-Type: application/json` (415 otherwise)."
    ),
    paths(
        messages::submit, messages::submit_batch, messages::get, groups::one, render::render,
        lifecycle::update, lifecycle::recall, lifecycle::acknowledge, urgent::urgent,
        silences::create, silences::list, silences::one, silences::expire, silences::like_message,
        oncall::list, oncall::one, oncall::create_override, oncall::delete_override,
        dlq::list, dlq::inspect, dlq::purge_one, dlq::replay_one, dlq::replay_many, dlq::purge_many,
        ops::status, ops::healthz, ops::readyz, serve
    ),
    components(schemas(Problem)),
    modifiers(&BearerAuth, &OtherRoutes),
    tags(
        (name = "messages", description = "Submit messages and follow their deliveries"),
        (name = "dlq", description = "The dead-letter queue"),
        (name = "silences", description = "Silences for every message, in the shape of Alertmanager's v2 silences API"),
        (name = "oncall", description = "Who is on call ([[schedules]]) and temporary overrides"),
        (name = "alertmanager", description = "Prometheus Alertmanager webhook receiver"),
        (name = "sources", description = "Webhook receivers for Grafana, Zabbix, Alibaba Cloud CloudMonitor, Tencent Cloud Observability, GitLab, GitHub and any JSON ([sources.NAME])"),
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

/// The routes whose handlers live outside `api`'s typed handlers.
struct OtherRoutes;

fn object(description: &str) -> utoipa::openapi::Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            Content::new(Some(ObjectBuilder::new().schema_type(Type::Object))),
        )
        .build()
}

fn path_param(name: &str, description: &str) -> utoipa::openapi::path::Parameter {
    ParameterBuilder::new()
        .name(name)
        .parameter_in(ParameterIn::Path)
        .required(Required::True)
        .description(Some(description))
        .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
        .build()
}

impl Modify for OtherRoutes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let paths = &mut openapi.paths.paths;
        paths.insert(
            "/v1/alertmanager/{route}".into(),
            PathItem::new(HttpMethod::Post, alertmanager_operation()),
        );
        paths.insert(
            "/v1/sources/{name}".into(),
            PathItem::new(HttpMethod::Post, source_operation()),
        );
        let mut events = PathItem::new(HttpMethod::Get, callback_operation("get", false));
        events.post = Some(callback_operation("post", false));
        paths.insert("/v1/callbacks/{name}".into(), events);
        paths.insert(
            "/v1/callbacks/{name}/card".into(),
            PathItem::new(HttpMethod::Post, callback_operation("post", true)),
        );
        paths.insert(
            "/metrics".into(),
            PathItem::new(HttpMethod::Get, metrics_operation()),
        );
        paths.insert(
            "/dingtalk/{target}/send".into(),
            PathItem::new(HttpMethod::Post, compat_pwd_operation()),
        );
        paths.insert(
            "/prometheusalert".into(),
            PathItem::new(HttpMethod::Post, compat_pa_operation()),
        );
    }
}

fn query_param(name: &str, description: &str) -> utoipa::openapi::path::Parameter {
    ParameterBuilder::new()
        .name(name)
        .parameter_in(ParameterIn::Query)
        .required(Required::False)
        .description(Some(description))
        .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
        .build()
}

/// What both compatibility endpoints take and answer (see `crate::compat`).
fn compat_operation(id: &str, summary: &str) -> OperationBuilder {
    OperationBuilder::new()
        .tag("alertmanager")
        .operation_id(Some(id))
        .summary(Some(summary))
        .parameter(query_param(
            "key",
            "An API key, for senders that cannot set `Authorization` (also `token`)",
        ))
        .request_body(Some(
            RequestBodyBuilder::new()
                .description(Some(
                    "Alertmanager webhook payload (version 4), read as JSON whatever the \
                     Content-Type says, as the old tools did",
                ))
                .required(Some(Required::True))
                .content(
                    "*/*",
                    Content::new(Some(ObjectBuilder::new().schema_type(Type::Object))),
                )
                .build(),
        ))
}

fn compat_responses(not_found: &str) -> ResponsesBuilder {
    ResponsesBuilder::new()
        .response(
            "200",
            object("Every message committed: their ids, and what was not sent"),
        )
        .response("400", problem("The body is not JSON"))
        .response(
            "401",
            problem("Missing or unknown API key (unless `allow_unauthenticated`)"),
        )
        .response(
            "403",
            problem("The key may not use a channel, or the robot is not configured"),
        )
        .response("404", problem(not_found))
        .response("413", problem("Body larger than `server.max_body_bytes`"))
        .response(
            "422",
            problem("A bad query parameter or payload field (named)"),
        )
        .response(
            "500",
            problem("The running config cannot route the alerts; Alertmanager retries"),
        )
        .response(
            "503",
            problem("The queue cannot commit now; Alertmanager retries"),
        )
}

/// `POST /dingtalk/{target}/send` (`[compat] pwd = true`).
fn compat_pwd_operation() -> utoipa::openapi::path::Operation {
    compat_operation(
        "compat_pwd_send",
        "prometheus-webhook-dingtalk's path: the route `[alerting.routes.{target}]`",
    )
    .parameter(path_param("target", "A route under [alerting.routes]"))
    .responses(compat_responses("`[compat] pwd` is off, or no such route").build())
    .build()
}

/// `POST /prometheusalert` (`[compat] prometheusalert = true`).
fn compat_pa_operation() -> utoipa::openapi::path::Operation {
    let mut op = compat_operation(
        "compat_prometheusalert",
        "PrometheusAlert's path: template `tpl` to the configured robot the URL names",
    );
    for (name, what) in [
        ("type", "dd (DingTalk), wx (WeCom) or fs (Feishu)"),
        ("tpl", "A template under [templates]"),
        (
            "ddurl",
            "DingTalk robot URLs (comma-separated), each a configured destination",
        ),
        ("wxurl", "WeCom robot URLs, each a configured destination"),
        ("fsurl", "Feishu bot URLs, each a configured destination"),
        (
            "at",
            "Whom to mention: DingTalk mobiles, WeCom or Feishu user ids",
        ),
    ] {
        op = op.parameter(query_param(name, what));
    }
    op.responses(compat_responses("`[compat] prometheusalert` is off").build())
        .build()
}

/// `POST /v1/alertmanager/{route}`.
fn alertmanager_operation() -> utoipa::openapi::path::Operation {
    OperationBuilder::new()
        .tag("alertmanager")
        .operation_id(Some("alertmanager_receive"))
        .summary(Some("Alertmanager webhook receiver"))
        .parameter(path_param("route", "A route under [alerting.routes]"))
        .request_body(Some(
            RequestBodyBuilder::new()
                .description(Some("Alertmanager webhook payload (version 4)"))
                .required(Some(Required::True))
                .content(
                    "application/json",
                    Content::new(Some(ObjectBuilder::new().schema_type(Type::Object))),
                )
                .build(),
        ))
        .responses(
            ResponsesBuilder::new()
                .response(
                    "200",
                    object("Every message committed: their ids, and what was not sent"),
                )
                .response("400", problem("The body is not JSON"))
                .response("401", problem("Missing or unknown API key"))
                .response("403", problem("The key may not use a channel of the route"))
                .response("404", problem("No such route"))
                .response("413", problem("Body larger than `server.max_body_bytes`"))
                .response(
                    "422",
                    problem("Not an Alertmanager payload (the field is named)"),
                )
                .response(
                    "500",
                    problem("The running config cannot route the alerts; Alertmanager retries"),
                )
                .response(
                    "503",
                    problem("The queue cannot commit now; Alertmanager retries"),
                ),
        )
        .security(SecurityRequirement::new("bearer", Vec::<String>::new()))
        .build()
}

/// `POST /v1/sources/{name}`.
fn source_operation() -> utoipa::openapi::path::Operation {
    OperationBuilder::new()
        .tag("sources")
        .operation_id(Some("source_receive"))
        .summary(Some("A source's own webhook payload (Grafana, Zabbix, CloudMonitor, Tencent Cloud, GitLab, GitHub, JSON)"))
        .parameter(path_param("name", "A source under [sources]"))
        .parameter(
            ParameterBuilder::new()
                .name("key")
                .parameter_in(ParameterIn::Query)
                .required(Required::False)
                .description(Some("The API key, for senders that cannot set `Authorization`"))
                .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
                .build(),
        )
        .request_body(Some(
            RequestBodyBuilder::new()
                .description(Some("The source's payload as it sends it"))
                .required(Some(Required::True))
                .content(
                    "application/json",
                    Content::new(Some(ObjectBuilder::new().schema_type(Type::Object))),
                )
                .content(
                    "application/x-www-form-urlencoded",
                    Content::new(Some(ObjectBuilder::new().schema_type(Type::Object))),
                )
                .build(),
        ))
        .responses(
            ResponsesBuilder::new()
                .response(
                    "200",
                    object("Every message committed (their ids and threads), or the payload ignored (why)"),
                )
                .response("400", problem("The body is not JSON"))
                .response(
                    "401",
                    problem("Missing or unknown API key, or a bad GitLab token or GitHub signature"),
                )
                .response("403", problem("The key may not use a channel of the source"))
                .response("404", problem("No such source"))
                .response("413", problem("Body larger than `server.max_body_bytes`"))
                .response("422", problem("Not this source's payload (the field is named)"))
                .response("500", problem("The running config cannot route the payload"))
                .response("503", problem("The queue cannot commit now; retry")),
        )
        .security(SecurityRequirement::new("bearer", Vec::<String>::new()))
        .build()
}

/// A platform callback: the URL verification (`get`), an event or a Feishu
/// legacy card action (`post`, `card`).
fn callback_operation(method: &str, card: bool) -> utoipa::openapi::path::Operation {
    let (what, id) = match (method, card) {
        ("get", _) => (
            "URL verification (WeCom, WeChat): the echo",
            "callback_verify",
        ),
        (_, false) => (
            "A platform event (JSON or XML, possibly encrypted)",
            "callback_event",
        ),
        (_, true) => ("A Feishu legacy card action", "callback_card"),
    };
    let mut op = OperationBuilder::new()
        .tag("callbacks")
        .operation_id(Some(id))
        .summary(Some(what))
        .parameter(path_param("name", "A configured [[callbacks]] app"))
        .responses(
            ResponsesBuilder::new()
                .response("200", callback_reply())
                .response("400", problem("Malformed"))
                .response("401", problem("Bad signature or stale timestamp"))
                .response("403", problem("Wrong verification token or receive id"))
                .response("404", problem("No such callback app"))
                .response("413", problem("Body larger than `server.max_body_bytes`"))
                .response("503", problem("Not stored; the platform retries")),
        );
    if method == "post" {
        op = op.request_body(Some(
            RequestBodyBuilder::new()
                .description(Some(what))
                .content("application/json", Content::new(Some(ObjectBuilder::new())))
                .content(
                    "application/xml",
                    Content::new(Some(ObjectBuilder::new().schema_type(Type::String))),
                )
                .build(),
        ));
    }
    op.build()
}

/// A callback's 200: whatever reply the platform expects.
fn callback_reply() -> utoipa::openapi::Response {
    ResponseBuilder::new()
        .description("The platform's expected reply (text, JSON or XML)")
        .content(
            "text/plain",
            Content::new(Some(ObjectBuilder::new().schema_type(Type::String))),
        )
        .content("application/json", Content::new(Some(ObjectBuilder::new())))
        .content(
            "application/xml",
            Content::new(Some(ObjectBuilder::new().schema_type(Type::String))),
        )
        .build()
}

/// `GET /metrics`.
fn metrics_operation() -> utoipa::openapi::path::Operation {
    OperationBuilder::new()
        .tag("operations")
        .operation_id(Some("metrics"))
        .summary(Some("Prometheus metrics (no key)"))
        .response(
            "200",
            ResponseBuilder::new()
                .description("Prometheus text exposition format 0.0.4")
                .content(
                    "text/plain",
                    Content::new(Some(ObjectBuilder::new().schema_type(Type::String))),
                )
                .build(),
        )
        .build()
}

/// The document as JSON.
pub fn document() -> Value {
    serde_json::to_value(ApiDoc::openapi()).unwrap_or_default()
}

/// `GET /openapi.json` (no key needed).
#[utoipa::path(get, path = "/openapi.json", tag = "operations",
    responses((status = 200, description = "This document", body = Object)))]
pub async fn serve() -> Response {
    // Built once: the document depends on the code only.
    static DOC: OnceLock<Vec<u8>> = OnceLock::new();
    let body = DOC.get_or_init(|| serde_json::to_vec(&document()).unwrap_or_default());
    (
        [(header::CONTENT_TYPE, "application/json")],
        body.as_slice(),
    )
        .into_response()
}
