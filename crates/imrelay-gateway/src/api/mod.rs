//! The HTTP API, versioned under `/v1`. One file per resource:
//! - [`messages`]: `POST /v1/messages`, `POST /v1/messages/batch`, `GET /v1/messages/{id}`;
//! - [`dlq`]: `GET /v1/dlq`, `GET|DELETE /v1/dlq/{id}`, `POST /v1/dlq/{id}/replay`,
//!   `POST /v1/dlq/replay`, `POST /v1/dlq/purge`;
//! - [`ops`]: `GET /v1/status` (queue and destination state), `GET /healthz`.
//!
//! Every error is `application/problem+json` ([`problem`]): the extractors in
//! [`extract`] turn every rejection into one, and a last layer converts any
//! other error answer. Bearer keys are checked by [`auth`]. Bodies must be
//! `application/json` (415) and at most `server.max_body_bytes` (413).
//!
//! Two kinds of malformed request never reach the router: hyper answers them
//! itself, with an empty body, and closes the connection: headers larger than
//! its buffer or more than 100 of them (431), and unparsable HTTP, including
//! `Content-Length` headers that disagree (400; identical repeats are
//! accepted as one).
//!
//! Handlers read the channel set and keys through `ArcSwap`, so a reload takes
//! effect on the next request.

pub mod alertmanager;
pub mod auth;
pub mod callbacks;
pub mod dlq;
pub mod extract;
pub mod messages;
pub mod metrics;
pub mod openapi;
pub mod ops;
pub mod problem;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::extract::rejection::BytesRejection;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use bytes::Bytes;

use crate::channels::ChannelSet;
use crate::runtime::Live;
use crate::store::Store;
pub use auth::{ApiKeys, Caller};
pub use problem::Problem;

/// A snapshot of dispatcher state for `GET /v1/status` (breakers, limiters).
pub type StatusFn = Arc<dyn Fn() -> serde_json::Value + Send + Sync>;

/// Limits on requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiLimits {
    pub max_body_bytes: usize,
    pub max_batch: usize,
}

impl Default for ApiLimits {
    fn default() -> Self {
        let s = crate::config::ServerConfig::default();
        ApiLimits {
            max_body_bytes: s.max_body_bytes,
            max_batch: s.max_batch,
        }
    }
}

/// What every handler sees.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    /// The runtime in force: channels, keys, routes and templates, swapped as one.
    pub live: Arc<Live>,
    pub limits: ApiLimits,
    /// Dispatcher state for `/v1/status`, when a dispatcher runs.
    pub status: Option<StatusFn>,
    /// Cleared when shutdown starts: new messages get 503 instead of being
    /// accepted by a gateway about to stop.
    pub accepting: Arc<AtomicBool>,
}

impl AppState {
    pub fn new(store: Arc<dyn Store>, live: Arc<Live>) -> Self {
        AppState {
            store,
            live,
            limits: ApiLimits::default(),
            status: None,
            accepting: Arc::new(AtomicBool::new(true)),
        }
    }

    /// The channel set in force now.
    pub fn channels(&self) -> Arc<ChannelSet> {
        self.live.runtime().channels.clone()
    }

    pub fn with_limits(mut self, limits: ApiLimits) -> Self {
        self.limits = limits;
        self
    }

    pub fn with_status(mut self, status: StatusFn) -> Self {
        self.status = Some(status);
        self
    }

    pub(crate) fn check_accepting(&self) -> Result<(), Problem> {
        if self.accepting.load(Ordering::Acquire) {
            Ok(())
        } else {
            Err(Problem::unavailable(
                "the gateway is shutting down and accepts no new messages; retry against another instance or later",
            ))
        }
    }
}

/// The API router.
pub fn router(state: AppState) -> Router {
    let limit = state.limits.max_body_bytes;
    Router::new()
        .route("/v1/messages", post(messages::submit))
        .route("/v1/messages/batch", post(messages::submit_batch))
        .route("/v1/messages/{id}", get(messages::get))
        .route("/v1/dlq", get(dlq::list))
        .route("/v1/dlq/replay", post(dlq::replay_many))
        .route("/v1/dlq/purge", post(dlq::purge_many))
        .route("/v1/dlq/{id}", get(dlq::inspect).delete(dlq::purge_one))
        .route("/v1/dlq/{id}/replay", post(dlq::replay_one))
        .route("/v1/status", get(ops::status))
        .route("/v1/alertmanager/{route}", post(alertmanager::receive))
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/openapi.json", get(openapi::serve))
        .merge(callbacks::routes())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(limit))
        .layer(axum::middleware::map_response(
            problem::problem_for_bare_errors,
        ))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(on_panic))
        .with_state(state)
}

async fn not_found(uri: Uri) -> Problem {
    Problem::not_found(format!(
        "no such endpoint `{}`; the API lives under /v1 (POST /v1/messages, GET /v1/messages/{{id}}, GET /v1/dlq, ...)",
        uri.path()
    ))
}

async fn method_not_allowed(method: Method, uri: Uri) -> Problem {
    Problem::method_not_allowed(format!("`{}` does not accept {method}", uri.path()))
}

fn on_panic(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("a request handler panicked (a bug); answered 500, nothing was accepted");
    Problem::internal("the gateway hit a bug handling this request; nothing was accepted")
        .into_response()
}

/// Read the body, mapping a size overflow to 413 and anything else to 400.
pub(crate) fn body_bytes(
    body: Result<Bytes, BytesRejection>,
    limit: usize,
) -> Result<Bytes, Problem> {
    body.map_err(|e| {
        if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            Problem::too_large(limit)
        } else {
            Problem::malformed(format!("cannot read the request body: {}", e.body_text()))
        }
    })
}

/// One header's value as text; `None` when absent. Several values or non-ASCII
/// bytes are errors naming the header.
pub(crate) fn single_header<'a>(
    headers: &'a HeaderMap,
    name: &str,
) -> Result<Option<&'a str>, Problem> {
    let mut it = headers.get_all(name).iter();
    let Some(v) = it.next() else {
        return Ok(None);
    };
    if it.next().is_some() {
        return Err(Problem::invalid(
            name,
            format!("send one `{name}` header, not several"),
        ));
    }
    v.to_str()
        .map(Some)
        .map_err(|_| Problem::invalid(name, format!("the `{name}` header must be visible ASCII")))
}

/// Parse a JSON body as `T`, with errors naming the field (prefixed by `at`).
pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    at: &str,
) -> Result<T, Problem> {
    // serde would read a struct from a JSON array too; requests are objects.
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first.is_some_and(|b| *b != b'{')
        && serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_ok()
    {
        return Err(Problem::new(
            axum::http::StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-field",
            "Invalid field",
            "the body must be a JSON object",
        ));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let v: T =
        serde_path_to_error::deserialize(&mut de).map_err(|e| problem::from_json_error(e, at))?;
    de.end().map_err(|e| {
        Problem::malformed(format!(
            "the body has trailing characters after the JSON value: {e}"
        ))
    })?;
    Ok(v)
}
