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
//! config cannot route the alerts.

use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use serde_json::json;

use std::sync::Arc;

use axum::routing::post;
use axum::Router;

use super::{payload, plan, Alerting, Route};
use crate::channels::ChannelSet;
use crate::http::auth::Auth;
use crate::http::problem::Problem;
use crate::http::{body_bytes, parse_json, ApiContext};
use crate::store::{EnqueueOutcome, NewMessage, Store};

/// What the receiver needs from the gateway's state.
pub trait AlertmanagerContext: ApiContext {
    fn store(&self) -> &Arc<dyn Store>;
    /// The routes and templates in force now.
    fn alerting(&self) -> Arc<Alerting>;
    /// The silences and maintenance windows every accept checks.
    fn holds(&self) -> crate::silences::Holds<'_>;
    /// The channels in force now.
    fn channels(&self) -> Arc<ChannelSet>;
    /// `Err` (503) once the gateway has started to shut down.
    fn check_accepting(&self) -> Result<(), Problem>;
}

/// The receiver's route, for the API router to merge.
pub fn router<S: AlertmanagerContext>() -> Router<S> {
    Router::new().route("/v1/alertmanager/{route}", post(receive::<S>))
}

/// `POST /v1/alertmanager/{route}`.
pub async fn receive<S: AlertmanagerContext>(
    State(st): State<S>,
    Auth(caller): Auth,
    route: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Problem> {
    let Path(route_name) =
        route.map_err(|e| Problem::malformed(format!("bad route in the URL: {e}")))?;
    let bytes = body_bytes(body, st.max_body_bytes())?;
    let alerting = st.alerting();
    let route = find_route(&alerting, &route_name)?;
    // The key must cover every channel the route can use, so a scope mistake
    // shows on the first notification, not on the first critical one.
    for c in route.channels() {
        caller.require(c)?;
    }
    let n = parse_notification(&bytes)?;
    accept(&st, &alerting, route, &n, request_trace_id(&headers)).await
}

/// A webhook body as a validated notification; errors name the field.
pub fn parse_notification(bytes: &[u8]) -> Result<payload::Notification, Problem> {
    let n: payload::Notification = parse_json(bytes, "")?;
    payload::validate(&n).map_err(|e| Problem::invalid(e.field, e.message))?;
    Ok(n)
}

/// Plan `n` on `route` and commit its messages; the answer lists them. The
/// caller has authenticated the request for the route's channels. Shared
/// with the endpoints other tools answered on ([`crate::compat`]).
pub async fn accept<S: AlertmanagerContext>(
    st: &S,
    alerting: &Alerting,
    route: &Route,
    n: &payload::Notification,
    trace_id: Option<String>,
) -> Result<Response, Problem> {
    let route_name = &route.name;
    let set = st.channels();
    let planned = plan(alerting, route, n, &set, jiff::Timestamp::now()).map_err(|e| {
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
        st.holds().apply(&mut to_store, st.store().now_ms());
        store_all(st.store(), to_store, route_name).await?;
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

/// The route named in the URL; a 404 lists the ones there are.
pub fn find_route<'a>(alerting: &'a Alerting, route_name: &str) -> Result<&'a Route, Problem> {
    alerting.routes.get(route_name).ok_or_else(|| {
        let known: Vec<&str> = alerting.routes.keys().map(String::as_str).collect();
        Problem::not_found(format!(
            "no Alertmanager route `{route_name}` is configured{}",
            if known.is_empty() {
                "; define [alerting.routes.NAME] in the config".to_string()
            } else {
                format!("; defined: {}", known.join(", "))
            }
        ))
        .field("route")
    })
}

/// The `X-Request-Id` header as the messages' trace id, when it is a usable
/// token (printable ASCII, at most 128 bytes).
pub fn request_trace_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_string)
}

/// Enqueue a notification's messages in one call, one transaction: all commit
/// together or not at all, so a retry after a 5xx cannot half-duplicate. Any
/// message the store refuses is a 503, so Alertmanager retries.
async fn store_all(
    store: &Arc<dyn Store>,
    to_store: Vec<NewMessage>,
    route_name: &str,
) -> Result<(), Problem> {
    let outcomes = store.enqueue(to_store).await.map_err(unavailable)?;
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
    Ok(())
}

/// Every store failure is a 503 here: Alertmanager drops a notification that
/// got a 4xx, and nothing a store says is the sender's fault.
fn unavailable(e: crate::store::StoreError) -> Problem {
    tracing::error!(error = %e, "store error while accepting an Alertmanager notification");
    Problem::unavailable(
        "the queue could not commit the alert messages; nothing was accepted, Alertmanager will retry",
    )
}
