//! Operations endpoints: `GET /v1/status` (queue depth, dead letters, per-target
//! counts, and the dispatcher's view of each destination: breaker state, limiter)
//! and the unauthenticated liveness probe `GET /healthz`.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::auth::{Auth, Scope};
use super::problem::Problem;
use super::AppState;

/// `GET /v1/status` (any valid key; a key limited to some channels sees only
/// their channels).
pub async fn status(State(st): State<AppState>, Auth(caller): Auth) -> Result<Response, Problem> {
    let mut stats = st.store.stats().await?;
    if let Scope::Channels(_) = &caller.scope {
        stats.by_target.retain(|t| {
            t.target
                .split_once('/')
                .is_some_and(|(c, _)| caller.may_use(c))
        });
    }
    let channels: Vec<_> = st
        .channels()
        .channels
        .values()
        .filter(|c| caller.may_use(&c.name))
        .map(|c| {
            json!({
                "name": c.name,
                "pool": c.pool,
                "destinations": c.destinations.iter().map(|d| json!({"key": d.key, "type": d.dest.kind()})).collect::<Vec<_>>(),
                "fallback": c.fallback.as_ref().map(|f| f.channel.clone()),
            })
        })
        .collect();
    let dispatch = st.status.as_ref().map(|f| f());
    Ok(Json(json!({
        "store": st.store.backend(),
        "accepting": st.accepting.load(std::sync::atomic::Ordering::Acquire),
        "queue": stats,
        "channels": channels,
        "dispatch": dispatch,
    }))
    .into_response())
}

/// `GET /healthz`: the process is up and serving.
pub async fn healthz() -> Response {
    Json(json!({"status": "ok"})).into_response()
}

/// `GET /readyz`: ready to take traffic: the store answers, a config is
/// loaded, and the gateway is not draining. 503 with the failing check
/// otherwise, so a load balancer stops sending before shutdown completes.
pub async fn readyz(State(st): State<AppState>) -> Response {
    let store = st
        .store
        .stats()
        .await
        .map(|_| ())
        .map_err(|e| e.to_string());
    let channels = st.channels().channels.len();
    let accepting = st.accepting.load(std::sync::atomic::Ordering::Acquire);
    let ready = store.is_ok() && accepting;
    let body = json!({
        "status": if ready { "ready" } else { "not_ready" },
        "checks": {
            "store": match &store { Ok(()) => json!({"ok": true}), Err(e) => json!({"ok": false, "error": e}) },
            "config": {"ok": true, "channels": channels},
            "draining": {"ok": accepting, "draining": !accepting},
        },
    });
    let code = if ready {
        axum::http::StatusCode::OK
    } else {
        axum::http::StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body)).into_response()
}
