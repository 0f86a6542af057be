//! `GET /metrics`: Prometheus text exposition (format 0.0.4). Gauges that
//! describe state (queue depth, DLQ size, breaker states, readiness) and
//! counters kept elsewhere (token fetches, config reloads, digests) are
//! refreshed at scrape time, so they are exact rather than sampled.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use metrics::{counter, gauge};

use crate::dispatch::Dispatcher;
use crate::runtime::Live;
use crate::store::Store;
use crate::telemetry::events::{self, *};
use crate::telemetry::exporter::handle;

/// What `/metrics` reads at scrape time.
#[derive(Clone)]
pub struct ObsState {
    pub store: Arc<dyn Store>,
    pub dispatcher: Dispatcher,
    pub live: Arc<Live>,
    /// Cleared when the gateway starts draining.
    pub accepting: Arc<AtomicBool>,
}

/// Routes served next to the API: `GET /metrics`.
pub fn router(state: ObsState) -> Router {
    let _ = handle();
    Router::new()
        .route("/metrics", get(metrics_handler))
        .with_state(state)
}

async fn metrics_handler(State(st): State<ObsState>) -> Response {
    refresh(&st).await;
    let body = handle().render();
    let mut resp = (StatusCode::OK, body).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    resp
}

/// Set state gauges and mirrored counters from their sources.
pub async fn refresh(st: &ObsState) {
    let stats = st.store.stats().await;
    let accepting = st.accepting.load(Ordering::Acquire);
    let commits = st.store.health().ok;
    gauge!(READY).set(if stats.is_ok() && commits && accepting {
        1.0
    } else {
        0.0
    });
    if let Ok(size) = st.store.size().await {
        events::store_size(&size);
    }
    if let Ok(q) = &stats {
        for (state, n) in [
            ("pending", q.pending),
            ("in_flight", q.in_flight),
            ("dead", q.dead),
            ("merged", q.merged),
            ("done", q.done),
        ] {
            gauge!(QUEUE_DEPTH, "state" => state).set(n as f64);
        }
        gauge!(DLQ_SIZE).set(q.dead as f64);
        gauge!(OLDEST_PENDING_AGE).set(q.oldest_pending_age_ms.unwrap_or(0).max(0) as f64 / 1000.0);
    }
    let snap = st.dispatcher.snapshot();
    for d in &snap.destinations {
        events::breaker_state(&d.key, d.breaker.label());
    }
    counter!(DIGESTS).absolute(snap.counters.digests);
    counter!(DIGEST_MEMBERS).absolute(snap.counters.merged);
    let r = st.live.status();
    counter!(CONFIG_RELOADS, "outcome" => "applied").absolute(r.applied);
    counter!(CONFIG_RELOADS, "outcome" => "refused").absolute(r.attempts - r.applied);
    let (ok, failed) = st.live.token_fetches();
    counter!(TOKEN_REFRESHES, "outcome" => "ok").absolute(ok);
    counter!(TOKEN_REFRESHES, "outcome" => "failed").absolute(failed);
}
