//! `POST /v1/sources/{name}`: a source's own webhook payload.
//!
//! Authentication: an API key as `Authorization: Bearer <key>` or, for
//! senders that cannot set headers (GitHub, GitLab, the cloud consoles), as
//! `?key=<key>` in the URL; plus the platform's own proof where it has one
//! (GitLab's `X-Gitlab-Token`, GitHub's `X-Hub-Signature-256`).
//!
//! Answers, as the Alertmanager receiver's: 200 once every message is
//! committed (with their ids), or when the payload is one the source drops
//! (a GitHub ping, an event kind not configured); 4xx naming the field for
//! what can never succeed; 5xx when the queue could not commit (the senders
//! retry those).

use std::sync::Arc;

use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use bytes::Bytes;
use serde_json::{json, Map, Value};

use super::{aliyun, github, gitlab, grafana, json as json_source, plan, tencent, zabbix};
use super::{Kind, Parsed, Source, Sources};
use crate::channels::ChannelSet;
use crate::http::auth::Caller;
use crate::http::problem::Problem;
use crate::http::{body_bytes, parse_json, single_header, ApiContext};
use crate::store::{EnqueueOutcome, NewMessage, Store};
use crate::templates::Templates;

/// What the receiver needs from the gateway's state.
pub trait SourcesContext: ApiContext {
    fn store(&self) -> &Arc<dyn Store>;
    /// The sources in force now.
    fn sources(&self) -> Arc<Sources>;
    /// The templates in force now.
    fn templates(&self) -> Templates;
    /// The channels in force now.
    fn channels(&self) -> Arc<ChannelSet>;
    /// `Err` (503) once the gateway has started to shut down.
    fn check_accepting(&self) -> Result<(), Problem>;
    /// The silences and maintenance windows every accept checks.
    fn holds(&self) -> crate::silences::Holds<'_>;
}

/// The receiver's route, for the API router to merge.
pub fn router<S: SourcesContext>() -> Router<S> {
    Router::new().route("/v1/sources/{name}", post(receive::<S>))
}

/// `POST /v1/sources/{name}`.
pub async fn receive<S: SourcesContext>(
    State(st): State<S>,
    name: Result<Path<String>, PathRejection>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Problem> {
    let Path(name) = name.map_err(|e| Problem::malformed(format!("bad source in the URL: {e}")))?;
    let caller = authenticate(&st, &headers, query.as_deref())?;
    let bytes = body_bytes(body, st.max_body_bytes())?;
    let sources = st.sources();
    let source = find_source(&sources, &name)?;
    for c in source.all_channels() {
        caller.require(c)?;
    }
    verify_platform(source, &headers, &bytes)?;
    let payload = read_payload(&headers, &bytes)?;
    let events = match parse(source, &headers, &payload)? {
        Parsed::Events(e) => e,
        Parsed::Ignored(why) => {
            tracing::info!(source = %name, reason = %why, "source payload ignored");
            return Ok((
                StatusCode::OK,
                Json(json!({"source": name, "messages": [], "ignored": why})),
            )
                .into_response());
        }
    };
    let mut messages = plan(source, &events, &st.templates(), &st.channels()).map_err(|e| {
        tracing::error!(source = %name, error = %e.0, "cannot route a source's payload");
        Problem::internal(format!("{}; nothing was accepted", e.0))
    })?;
    st.check_accepting()?;
    let report: Vec<Value> = messages
        .iter()
        .map(|m| json!({"id": m.id, "channel": m.channel, "thread": m.thread}))
        .collect();
    st.holds().apply(&mut messages, st.store().now_ms());
    store_all(st.store(), messages, &name).await?;
    tracing::info!(source = %name, kind = source.kind.as_str(), messages = report.len(), "source payload accepted");
    Ok((
        StatusCode::OK,
        Json(json!({"source": name, "messages": report})),
    )
        .into_response())
}

/// The payload read by its source's parser (422 naming the field).
fn parse(source: &Source, headers: &HeaderMap, payload: &Value) -> Result<Parsed, Problem> {
    match &source.kind {
        Kind::Grafana => grafana::parse(payload),
        Kind::Zabbix => zabbix::parse(payload),
        Kind::AliyunCloudMonitor => aliyun::parse(payload),
        Kind::TencentCloud => tencent::parse(payload),
        Kind::Gitlab(s) => gitlab::parse(s, payload),
        Kind::Github(s) => github::parse(s, &github_event(headers)?, payload),
        Kind::Json(m) => json_source::parse(m, payload),
    }
    .map_err(|e| Problem::invalid(e.field, e.message))
}

/// The caller's API key, from `Authorization` or else `?key=`.
fn authenticate<S: ApiContext>(
    st: &S,
    headers: &HeaderMap,
    query: Option<&str>,
) -> Result<Arc<Caller>, Problem> {
    let keys = st.api_keys();
    if headers.contains_key(header::AUTHORIZATION) {
        return keys.authenticate(headers);
    }
    let key = query
        .into_iter()
        .flat_map(|q| url::form_urlencoded::parse(q.as_bytes()))
        .find(|(k, _)| k == "key")
        .map(|(_, v)| v.into_owned())
        .ok_or_else(|| {
            Problem::unauthorized(
                "missing API key: send `Authorization: Bearer <API key>`, or `?key=<API key>` where the sender cannot set headers",
            )
            .field("key")
        })?;
    // The same check as a bearer header (digest compared in constant time
    // against every key), so both ways in are equally strict.
    let mut as_header = HeaderMap::new();
    let value = HeaderValue::from_str(&format!("Bearer {key}"))
        .map_err(|_| Problem::unauthorized("unknown API key").field("key"))?;
    as_header.insert(header::AUTHORIZATION, value);
    keys.authenticate(&as_header)
        .map_err(|_| Problem::unauthorized("unknown API key").field("key"))
}

/// The source named in the URL; a 404 lists the ones there are.
fn find_source<'a>(sources: &'a Sources, name: &str) -> Result<&'a Source, Problem> {
    sources.sources.get(name).ok_or_else(|| {
        let known: Vec<&str> = sources.sources.keys().map(String::as_str).collect();
        Problem::not_found(format!(
            "no source `{name}` is configured{}",
            if known.is_empty() {
                "; define [sources.NAME] in the config".to_string()
            } else {
                format!("; defined: {}", known.join(", "))
            }
        ))
        .field("name")
    })
}

/// GitLab's token and GitHub's signature (401 naming the header).
fn verify_platform(source: &Source, headers: &HeaderMap, body: &[u8]) -> Result<(), Problem> {
    match &source.kind {
        Kind::Gitlab(s) => {
            let sent = single_header(headers, "x-gitlab-token")?.unwrap_or_default();
            if !s.token_matches(sent) {
                return Err(Problem::unauthorized(
                    "`X-Gitlab-Token` is missing or is not the source's `token`; set the webhook's Secret token to it",
                )
                .field("X-Gitlab-Token"));
            }
        }
        Kind::Github(s) => {
            let sent = single_header(headers, "x-hub-signature-256")?.unwrap_or_default();
            if !s.signature_matches(sent, body) {
                return Err(Problem::unauthorized(
                    "`X-Hub-Signature-256` is missing or does not sign this body with the source's `secret`",
                )
                .field("X-Hub-Signature-256"));
            }
        }
        _ => {}
    }
    Ok(())
}

fn github_event(headers: &HeaderMap) -> Result<String, Problem> {
    single_header(headers, "x-github-event")?
        .map(str::to_string)
        .ok_or_else(|| {
            Problem::invalid(
                "X-GitHub-Event",
                "missing: GitHub names the event in this header",
            )
        })
}

/// The body as a JSON object: JSON, or a form (CloudMonitor posts
/// `application/x-www-form-urlencoded`) as an object of strings.
fn read_payload(headers: &HeaderMap, bytes: &[u8]) -> Result<Value, Problem> {
    let form = single_header(headers, "content-type")?
        .is_some_and(|t| t.trim().starts_with("application/x-www-form-urlencoded"));
    if form {
        let fields: Map<String, Value> = url::form_urlencoded::parse(bytes)
            .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
            .collect();
        return Ok(Value::Object(fields));
    }
    // `parse_json` refuses anything but an object.
    parse_json(bytes, "")
}

/// Enqueue the messages in one call, one transaction: all or none, so a
/// sender's retry after a 5xx cannot half-duplicate.
async fn store_all(
    store: &Arc<dyn Store>,
    messages: Vec<NewMessage>,
    source: &str,
) -> Result<(), Problem> {
    if messages.is_empty() {
        return Ok(());
    }
    let outcomes = store.enqueue(messages).await.map_err(|e| {
        tracing::error!(source = %source, error = %e, "store error while accepting a source's payload");
        Problem::unavailable("the queue could not commit the messages; nothing was accepted, retry")
    })?;
    for o in &outcomes {
        if o.accepted_id().is_none() {
            let why = match o {
                EnqueueOutcome::Rejected { reason } => reason.clone(),
                other => format!("{other:?}"),
            };
            tracing::error!(source = %source, reason = %why, "the store refused a source message");
            return Err(Problem::unavailable(format!(
                "the queue refused a message ({why}); retry"
            )));
        }
    }
    Ok(())
}
