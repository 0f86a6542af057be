//! `POST /v1/alertmanager/{route}`: Alertmanager's webhook receiver.
//!
//! ```yaml
//! # alertmanager.yml
//! receivers:
//!   - name: imrelay
//!     webhook_configs:
//!       - url: http://imrelay:8080/v1/alertmanager/prod
//!         send_resolved: true
//!         http_config:
//!           authorization:
//!             credentials: <an imrelay API key>
//! ```
//!
//! Answers: 200 once every message is committed (with their ids); 4xx only for
//! what can never succeed (payload, route, key), naming the problem; 5xx
//! (which Alertmanager retries) when the queue could not commit or the running
//! config cannot route the alerts. See [`crate::alertmanager`].

use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use serde_json::json;

use super::auth::Auth;
use super::problem::Problem;
use super::{body_bytes, AppState};
use crate::alertmanager::{payload, plan};
use crate::store::EnqueueOutcome;

/// `POST /v1/alertmanager/{route}`.
pub async fn receive(
    State(st): State<AppState>,
    Auth(caller): Auth,
    route: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Problem> {
    let Path(route_name) =
        route.map_err(|e| Problem::malformed(format!("bad route in the URL: {e}")))?;
    let bytes = body_bytes(body, st.limits.max_body_bytes)?;
    let alerting = st.live.runtime().alerting.clone();
    let Some(route) = alerting.routes.get(&route_name) else {
        let known: Vec<&str> = alerting.routes.keys().map(String::as_str).collect();
        return Err(Problem::not_found(format!(
            "no Alertmanager route `{route_name}` is configured{}",
            if known.is_empty() {
                "; define [alerting.routes.NAME] in the config".to_string()
            } else {
                format!("; defined: {}", known.join(", "))
            }
        ))
        .field("route"));
    };
    // The key must cover every channel the route can use, so a scope mistake
    // shows on the first notification, not on the first critical one.
    for c in route.channels() {
        caller.require(c)?;
    }
    let n: payload::Notification = super::parse_json(&bytes, "")?;
    payload::validate(&n).map_err(|e| Problem::invalid(e.field, e.message))?;
    let trace_id = headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_string);

    let set = st.channels();
    let planned = plan(&alerting, route, &n, &set, jiff::Timestamp::now()).map_err(|e| {
        tracing::error!(route = %route_name, error = %e.0, "cannot route an Alertmanager notification");
        Problem::internal(format!(
            "{}; nothing was accepted, Alertmanager will retry",
            e.0
        ))
    })?;
    drop(set);
    st.check_accepting()?;
    let mut report = Vec::with_capacity(planned.messages.len());
    let mut to_store = Vec::with_capacity(planned.messages.len());
    for p in planned.messages {
        let mut m = p.message;
        m.trace_id = trace_id.clone();
        report.push(json!({
            "id": m.id,
            "channel": m.channel,
            "platform": p.platform.as_str(),
            "rule": p.rule,
            "template": p.template,
            "alerts": p.alerts,
            "shown": p.shown,
        }));
        to_store.push(m);
    }
    if !to_store.is_empty() {
        // One call, one transaction: all of a notification's messages commit
        // together or not at all, so a retry after a 5xx cannot half-duplicate.
        let outcomes = st.store.enqueue(to_store).await.map_err(unavailable)?;
        for o in &outcomes {
            if o.accepted_id().is_none() {
                let why = match o {
                    EnqueueOutcome::Rejected { reason } => reason.clone(),
                    other => format!("{other:?}"),
                };
                tracing::error!(route = %route_name, reason = %why, "the store refused an alert message");
                return Err(Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "Service unavailable",
                    format!("the queue refused a message ({why}); Alertmanager will retry"),
                ));
            }
        }
    }
    tracing::info!(
        route = %route_name,
        status = %n.status,
        alerts = n.alerts.len(),
        messages = report.len(),
        "Alertmanager notification accepted"
    );
    Ok((
        StatusCode::OK,
        Json(json!({
            "route": route_name,
            "messages": report,
            "resolved_suppressed": planned.resolved_suppressed,
            "unrouted": planned.unrouted,
        })),
    )
        .into_response())
}

/// Every store failure is a 503 here: Alertmanager drops a notification that
/// got a 4xx, and nothing a store says is the sender's fault.
fn unavailable(e: crate::store::StoreError) -> Problem {
    tracing::error!(error = %e, "store error while accepting an Alertmanager notification");
    Problem::unavailable(
        "the queue could not commit the alert messages; nothing was accepted, Alertmanager will retry",
    )
}

/// `POST /v1/messages` with `template` (+ `data`): render the title and body
/// from the template, so `prepare` sees an ordinary message. Errors name the
/// field (`template`, `data`) and are 422: the producer can fix them.
pub(crate) fn apply_template(
    st: &AppState,
    req: &mut super::messages::SubmitRequest,
    at: &str,
) -> Result<(), Problem> {
    use super::problem::join_path;
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
    let data = req.data.take().unwrap_or_else(|| json!({}));
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
