//! The HTTP API, versioned under `/v1`. One file per resource:
//! - [`messages`]: `POST /v1/messages`, `POST /v1/messages/batch`, `GET /v1/messages/{id}`;
//! - [`dlq`]: `GET /v1/dlq`, `GET|DELETE /v1/dlq/{id}`, `POST /v1/dlq/{id}/replay`,
//!   `POST /v1/dlq/replay`, `POST /v1/dlq/purge`;
//! - [`render`]: `POST /v1/render` (what a message would send, nothing stored);
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

pub mod dlq;
pub mod messages;
pub mod metrics;
pub mod openapi;
pub mod ops;
pub mod render;

pub(crate) use crate::http::single_header;
pub use crate::http::{auth, extract, problem};

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::HeaderMap;
use axum::http::{Method, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Json;
use axum::Router;

use crate::channels::ChannelSet;
use crate::runtime::Live;
use crate::store::Store;
pub use auth::{ApiKeys, Auth, Caller};
use extract::{ApiJson, ApiPath, ApiQuery};
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
    /// For what the gateway itself calls (Alertmanager's silence API); no
    /// redirects, answers capped. `None` only if no TLS client could be built.
    pub http: Option<imrelay_sdk::http::HttpClient>,
    /// The silences every accept checks.
    pub silences: Arc<crate::silences::SilenceCache>,
    /// The on-call overrides every accept resolves `oncall:` mentions with.
    pub overrides: Arc<crate::oncall::OverrideCache>,
    /// The web console's failed-login counts (per process; its sessions
    /// are in the store).
    pub console_logins: Arc<crate::console::auth::Logins>,
}

impl AppState {
    pub fn new(store: Arc<dyn Store>, live: Arc<Live>) -> Self {
        let http = imrelay_sdk::http::HttpClient::new(imrelay_sdk::http::Timeouts::default()).ok();
        AppState {
            store,
            live,
            limits: ApiLimits::default(),
            status: None,
            accepting: Arc::new(AtomicBool::new(true)),
            http,
            silences: Arc::default(),
            overrides: Arc::default(),
            console_logins: Arc::default(),
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

    /// The silences and maintenance windows every accept checks.
    pub fn holds(&self) -> crate::silences::Holds<'_> {
        let runtime = self.live.runtime();
        crate::silences::Holds {
            before: Some({
                let (oncall, overrides) = (runtime.oncall.clone(), self.overrides.get());
                let channels = runtime.channels.clone();
                Box::new(move |msgs: &mut [crate::store::NewMessage], now| {
                    oncall.apply(msgs, &channels, &overrides, now)
                })
            }),
            silences: &self.silences,
            windows: runtime.maintenance.clone(),
            channels: runtime.channels.clone(),
            groups: runtime.groups.clone(),
        }
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
impl crate::alertmanager::handler::AlertmanagerContext for AppState {
    fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    fn holds(&self) -> crate::silences::Holds<'_> {
        AppState::holds(self)
    }

    fn alerting(&self) -> Arc<crate::alertmanager::Alerting> {
        self.live.runtime().alerting.clone()
    }

    fn channels(&self) -> Arc<ChannelSet> {
        AppState::channels(self)
    }

    fn check_accepting(&self) -> Result<(), Problem> {
        AppState::check_accepting(self)
    }
}

impl crate::sources::handler::SourcesContext for AppState {
    fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    fn sources(&self) -> Arc<crate::sources::Sources> {
        self.live.runtime().sources.clone()
    }

    fn templates(&self) -> crate::templates::Templates {
        self.live.runtime().alerting.templates.clone()
    }

    fn channels(&self) -> Arc<ChannelSet> {
        AppState::channels(self)
    }

    fn check_accepting(&self) -> Result<(), Problem> {
        AppState::check_accepting(self)
    }

    fn holds(&self) -> crate::silences::Holds<'_> {
        AppState::holds(self)
    }
}

impl crate::compat::CompatContext for AppState {
    fn compat(&self) -> Arc<crate::compat::CompatConfig> {
        self.live.runtime().compat.clone()
    }
}

impl crate::callbacks::handler::CallbacksContext for AppState {
    fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    fn callbacks(&self) -> Arc<crate::callbacks::CallbackSet> {
        self.live.runtime().callbacks.clone()
    }

    fn channels(&self) -> Arc<ChannelSet> {
        AppState::channels(self)
    }

    fn check_accepting(&self) -> Result<(), Problem> {
        AppState::check_accepting(self)
    }

    async fn on_card_click(
        &self,
        platform: crate::callbacks::config::CallbackPlatform,
        click: imrelay_sdk::CardClick,
        event_id: &str,
    ) -> crate::lifecycle::click::ClickAnswer {
        let runtime = self.live.runtime();
        let cx = crate::lifecycle::act::ActContext {
            store: &self.store,
            settings: &runtime.lifecycle,
            http: self.http.as_ref(),
            now_ms: self.store.now_ms(),
        };
        // A route's own list, else `[lifecycle] allowed_users`.
        let allowed = |source: Option<&str>| {
            let route = source
                .and_then(crate::alertmanager::route_of)
                .and_then(|r| runtime.alerting.routes.get(r));
            match route {
                Some(r) if !r.card.allowed_users.is_empty() => r.card.allowed_users.clone(),
                _ => runtime.lifecycle.allowed_users.iter().cloned().collect(),
            }
        };
        crate::lifecycle::click::on_click(&cx, platform.as_str(), &click, event_id, allowed).await
    }
}

impl crate::oncall::handler::OnCallContext for AppState {
    fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    fn oncall(&self) -> Arc<crate::oncall::OnCall> {
        self.live.runtime().oncall.clone()
    }

    fn overrides(&self) -> &Arc<crate::oncall::OverrideCache> {
        &self.overrides
    }
}

impl crate::grouping::handler::GroupsContext for AppState {
    fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }
}

impl crate::silences::handler::SilencesContext for AppState {
    fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    fn silences(&self) -> &Arc<crate::silences::SilenceCache> {
        &self.silences
    }

    fn channels(&self) -> Arc<ChannelSet> {
        AppState::channels(self)
    }
}

impl crate::lifecycle::handler::LifecycleContext for AppState {
    fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    fn channels(&self) -> Arc<ChannelSet> {
        AppState::channels(self)
    }

    fn settings(&self) -> Arc<crate::lifecycle::LifecycleSettings> {
        self.live.runtime().lifecycle.clone()
    }

    fn http(&self) -> Option<&imrelay_sdk::http::HttpClient> {
        self.http.as_ref()
    }

    fn check_accepting(&self) -> Result<(), Problem> {
        AppState::check_accepting(self)
    }

    fn prepare(
        &self,
        caller: &Caller,
        channel: &str,
        body: serde_json::Value,
    ) -> Result<crate::store::NewMessage, Problem> {
        let mut body = body;
        if let serde_json::Value::Object(fields) = &mut body {
            fields.insert("channel".into(), channel.into());
        }
        let mut req: messages::SubmitRequest =
            crate::http::parse_json(&body.to_string().into_bytes(), "")?;
        messages::apply_template(self, &mut req, "")?;
        messages::prepare(caller, req, &self.live.runtime(), "")
    }
}

/// The console acts through the API's own handlers, as the logged-in caller.
impl crate::console::ConsoleContext for AppState {
    fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    fn users(&self) -> Arc<crate::console::Users> {
        self.live.runtime().console.clone()
    }

    fn logins(&self) -> &Arc<crate::console::auth::Logins> {
        &self.console_logins
    }

    fn channels(&self) -> Arc<ChannelSet> {
        AppState::channels(self)
    }

    async fn status(&self, caller: Arc<Caller>) -> Result<serde_json::Value, Problem> {
        let Json(s) = ops::status(State(self.clone()), Auth(caller)).await?;
        serde_json::to_value(s).map_err(|e| Problem::internal(e.to_string()))
    }

    async fn message(
        &self,
        caller: Arc<Caller>,
        id: String,
    ) -> Result<crate::store::MessageView, Problem> {
        let Json(v) = messages::get(State(self.clone()), Auth(caller), ApiPath(id)).await?;
        Ok(v)
    }

    async fn dead_letters(
        &self,
        caller: Arc<Caller>,
        q: crate::console::DeadQuery,
    ) -> Result<Vec<crate::store::DeadEntry>, Problem> {
        let query = dlq::ListQuery {
            channel: q.channel,
            code: q.code,
            message_id: q.message_id,
            limit: Some(q.limit.clamp(1, dlq::MAX_PAGE)),
            ..Default::default()
        };
        let Json(page) = dlq::list(State(self.clone()), Auth(caller), ApiQuery(query)).await?;
        Ok(page.items)
    }

    async fn dead_letter(
        &self,
        caller: Arc<Caller>,
        id: crate::store::DeliveryId,
    ) -> Result<crate::store::DeadEntry, Problem> {
        let Json(e) = dlq::inspect(State(self.clone()), Auth(caller), ApiPath(id)).await?;
        Ok(e)
    }

    async fn replay(
        &self,
        caller: Arc<Caller>,
        ids: Vec<crate::store::DeliveryId>,
    ) -> Result<u64, Problem> {
        let body = dlq::SelectorBody {
            ids: Some(ids),
            filter: None,
        };
        let Json(r) = dlq::replay_many(State(self.clone()), Auth(caller), api_json(body)).await?;
        Ok(r.replayed)
    }

    async fn purge(
        &self,
        caller: Arc<Caller>,
        ids: Vec<crate::store::DeliveryId>,
    ) -> Result<u64, Problem> {
        let body = dlq::SelectorBody {
            ids: Some(ids),
            filter: None,
        };
        let Json(r) = dlq::purge_many(State(self.clone()), Auth(caller), api_json(body)).await?;
        Ok(r.purged)
    }

    async fn submit(
        &self,
        caller: Arc<Caller>,
        channel: String,
        text: String,
    ) -> Result<crate::store::MessageId, Problem> {
        let raw = serde_json::json!({"channel": channel, "text": text}).to_string();
        let req: messages::SubmitRequest = crate::http::parse_json(raw.as_bytes(), "")?;
        let body = ApiJson {
            value: req,
            raw: raw.into(),
        };
        let r = messages::submit(State(self.clone()), Auth(caller), HeaderMap::new(), body).await?;
        Ok(r.body.id)
    }

    async fn silence_like(
        &self,
        caller: Arc<Caller>,
        id: String,
        duration: String,
        comment: String,
    ) -> Result<String, Problem> {
        let by = caller.name.clone();
        let req = crate::silences::handler::SilenceLikeRequest {
            duration,
            by,
            comment,
        };
        let Json(s) = crate::silences::handler::like_message(
            State(self.clone()),
            Auth(caller),
            ApiPath(id),
            api_json(req),
        )
        .await?;
        Ok(s.id)
    }

    fn template_names(&self) -> Vec<String> {
        let alerting = self.live.runtime().alerting.clone();
        alerting.templates.names().map(str::to_string).collect()
    }

    fn alerting(&self) -> Arc<crate::alertmanager::Alerting> {
        self.live.runtime().alerting.clone()
    }

    fn template_settings(&self) -> crate::console::editor::TemplateSettings {
        let cfg = self.live.config();
        crate::console::editor::TemplateSettings {
            alerting: cfg.alerting,
            templates: cfg.templates,
            channels: cfg.channels,
            base_dir: cfg.base_dir,
            file: cfg.source,
        }
    }

    fn check_config_file(
        &self,
        path: &std::path::Path,
    ) -> Result<(), Vec<crate::console::editor::Issue>> {
        crate::runtime::check_file(path).map(|_| ()).map_err(|e| {
            e.issues
                .into_iter()
                .map(|i| crate::console::editor::Issue {
                    key: i.key,
                    message: i.message,
                })
                .collect()
        })
    }

    fn reload_config(&self) -> Result<(), String> {
        let Some(path) = self.live.config().source else {
            return Err("the config did not come from a file".into());
        };
        self.live.reload_file(&path).map_err(|e| e.to_string())
    }

    fn render(
        &self,
        caller: Arc<Caller>,
        body: serde_json::Value,
    ) -> Result<serde_json::Value, Problem> {
        let req: messages::SubmitRequest =
            crate::http::parse_json(body.to_string().as_bytes(), "")?;
        let r = render::render_request(self, &caller, req)?;
        serde_json::to_value(r).map_err(|e| Problem::internal(e.to_string()))
    }

    async fn oncall(&self, caller: Arc<Caller>) -> Result<Vec<serde_json::Value>, Problem> {
        let Json(list) = crate::oncall::handler::list(State(self.clone()), Auth(caller)).await?;
        json_values(list)
    }

    async fn silences(&self, caller: Arc<Caller>) -> Result<Vec<serde_json::Value>, Problem> {
        let Json(list) = crate::silences::handler::list(State(self.clone()), Auth(caller)).await?;
        json_values(list)
    }

    async fn expire_silence(&self, caller: Arc<Caller>, id: String) -> Result<u64, Problem> {
        let q = crate::silences::handler::ExpireQuery { release: None };
        let Json(r) = crate::silences::handler::expire(
            State(self.clone()),
            Auth(caller),
            ApiPath(id),
            ApiQuery(q),
        )
        .await?;
        Ok(r.released)
    }
}

/// A body as the JSON extractor gives it to a handler (these handlers read
/// only the value; the raw bytes matter only for idempotency keys).
fn api_json<T>(value: T) -> ApiJson<T> {
    ApiJson {
        value,
        raw: Default::default(),
    }
}

impl crate::http::ApiContext for AppState {
    fn api_keys(&self) -> Arc<ApiKeys> {
        self.live.runtime().keys.clone()
    }

    fn max_body_bytes(&self) -> usize {
        self.limits.max_body_bytes
    }
}

/// An API answer's items as JSON values, for the console's pages.
fn json_values<T: serde::Serialize>(list: Vec<T>) -> Result<Vec<serde_json::Value>, Problem> {
    list.into_iter()
        .map(|s| serde_json::to_value(s).map_err(|e| Problem::internal(e.to_string())))
        .collect()
}

pub fn router(state: AppState) -> Router {
    let limit = state.limits.max_body_bytes;
    Router::new()
        .route("/v1/messages", post(messages::submit))
        .route("/v1/messages/batch", post(messages::submit_batch))
        .route("/v1/messages/{id}", get(messages::get))
        .route("/v1/render", post(render::render))
        .route("/v1/dlq", get(dlq::list))
        .route("/v1/dlq/replay", post(dlq::replay_many))
        .route("/v1/dlq/purge", post(dlq::purge_many))
        .route("/v1/dlq/{id}", get(dlq::inspect).delete(dlq::purge_one))
        .route("/v1/dlq/{id}/replay", post(dlq::replay_one))
        .route("/v1/status", get(ops::status))
        .merge(crate::alertmanager::handler::router())
        .merge(crate::sources::handler::router())
        .merge(crate::compat::router())
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/openapi.json", get(openapi::serve))
        .merge(crate::callbacks::handler::routes())
        .merge(crate::lifecycle::handler::router())
        .merge(crate::silences::handler::router())
        .merge(crate::grouping::handler::router())
        .merge(crate::oncall::handler::router())
        .merge(crate::console::router(state.clone()))
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
