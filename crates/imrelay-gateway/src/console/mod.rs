//! The web console at `/ui/`: server-rendered pages (maud), a small
//! hand-written stylesheet and script compiled into the binary, English and
//! Chinese.
//!
//! - [`config`]: `[console]` (off unless `enabled = true`), its users and
//!   their channels, with the same meaning as `[[api_keys]]`.
//! - [`auth`]: argon2 passwords, sessions kept in the store (shared by every
//!   instance on one database) behind an HttpOnly `SameSite=Strict` cookie,
//!   a CSRF token on every form, a limit on failed logins.
//! - [`handlers`]: the pages; every action goes through the API's own code
//!   (the [`ConsoleContext`] the API implements calls its handlers), with the
//!   caller's scope, and is written to the audit log (target
//!   `imrelay::audit`) and to the audit trail in the store (`/ui/audit`).
//!
//! Every `/ui` answer carries a strict Content-Security-Policy (no inline
//! script or style), `X-Content-Type-Options: nosniff` and
//! `Referrer-Policy: same-origin`.

pub mod auth;
pub mod config;
pub mod editor;
mod handlers;
pub mod i18n;
mod pages;
mod svg;

use std::future::Future;
use std::sync::Arc;

use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::Value;

pub use config::{demo_login, ConsoleConfig, Users};

use crate::channels::ChannelSet;
use crate::http::auth::Caller;
use crate::http::problem::Problem;
use crate::http::ApiContext;
use crate::store::{DeadEntry, DeliveryId, MessageId, MessageView, Store};

/// The Content-Security-Policy of every console answer.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'";

/// Which dead letters to list.
#[derive(Debug, Clone, Default)]
pub struct DeadQuery {
    pub channel: Option<String>,
    pub code: Option<String>,
    pub message_id: Option<String>,
    pub limit: u32,
}

/// What the console needs from the gateway. The API implements it with its
/// own handlers, so a console action and the API call are one code path
/// with the same scope checks.
pub trait ConsoleContext: ApiContext {
    fn store(&self) -> &Arc<dyn Store>;
    /// `[console]` in force.
    fn users(&self) -> Arc<Users>;
    /// Failed-login counts (per process).
    fn logins(&self) -> &Arc<auth::Logins>;
    fn channels(&self) -> Arc<ChannelSet>;
    /// `GET /v1/status` as `caller`.
    fn status(&self, caller: Arc<Caller>) -> impl Future<Output = Result<Value, Problem>> + Send;
    /// `GET /v1/messages/{id}` as `caller`.
    fn message(
        &self,
        caller: Arc<Caller>,
        id: String,
    ) -> impl Future<Output = Result<MessageView, Problem>> + Send;
    /// `GET /v1/dlq` as `caller`.
    fn dead_letters(
        &self,
        caller: Arc<Caller>,
        q: DeadQuery,
    ) -> impl Future<Output = Result<Vec<DeadEntry>, Problem>> + Send;
    /// `GET /v1/dlq/{id}` as `caller`.
    fn dead_letter(
        &self,
        caller: Arc<Caller>,
        id: DeliveryId,
    ) -> impl Future<Output = Result<DeadEntry, Problem>> + Send;
    /// `POST /v1/dlq/replay` with `ids` as `caller`.
    fn replay(
        &self,
        caller: Arc<Caller>,
        ids: Vec<DeliveryId>,
    ) -> impl Future<Output = Result<u64, Problem>> + Send;
    /// `POST /v1/dlq/purge` with `ids` as `caller`.
    fn purge(
        &self,
        caller: Arc<Caller>,
        ids: Vec<DeliveryId>,
    ) -> impl Future<Output = Result<u64, Problem>> + Send;
    /// `POST /v1/messages` `{channel, text}` as `caller`.
    fn submit(
        &self,
        caller: Arc<Caller>,
        channel: String,
        text: String,
    ) -> impl Future<Output = Result<MessageId, Problem>> + Send;
    /// `POST /v1/messages/{id}/silence` as `caller`; the silence's id.
    fn silence_like(
        &self,
        caller: Arc<Caller>,
        id: String,
        duration: String,
        comment: String,
    ) -> impl Future<Output = Result<String, Problem>> + Send;
    /// `GET /v1/silences` as `caller` (Alertmanager's shape).
    fn silences(
        &self,
        caller: Arc<Caller>,
    ) -> impl Future<Output = Result<Vec<Value>, Problem>> + Send;
    /// `GET /v1/oncall` as `caller`: who is on call on every schedule.
    fn oncall(
        &self,
        caller: Arc<Caller>,
    ) -> impl Future<Output = Result<Vec<Value>, Problem>> + Send;
    /// The templates a message may name (`[templates.NAME]` and built-ins).
    fn template_names(&self) -> Vec<String>;
    /// The Alertmanager routes and templates in force.
    fn alerting(&self) -> Arc<crate::alertmanager::Alerting>;
    /// `[alerting]`, `[templates]` and `[channels]` as written (the template
    /// editor compiles an edited template the way a config load does).
    fn template_settings(&self) -> editor::TemplateSettings;
    /// `imrelay config check` of the config file at `path` (written beside
    /// the one in force): every issue, each naming its key.
    fn check_config_file(&self, path: &std::path::Path) -> Result<(), Vec<editor::Issue>>;
    /// Load the config file and apply it, as a SIGHUP does (all or nothing).
    fn reload_config(&self) -> Result<(), String>;
    /// `POST /v1/render` with `body` as `caller`: what each destination
    /// would receive.
    fn render(&self, caller: Arc<Caller>, body: Value) -> Result<Value, Problem>;
    /// `DELETE /v1/silences/{id}` as `caller`; how many held deliveries went.
    fn expire_silence(
        &self,
        caller: Arc<Caller>,
        id: String,
    ) -> impl Future<Output = Result<u64, Problem>> + Send;
}

/// The console's routes, for the API router to merge. While `[console]` is
/// off they answer 404 (a reload can turn it on or off).
pub fn router<S: ConsoleContext>(state: S) -> Router<S> {
    Router::new()
        .route("/ui", get(|| async { redirect("/ui/") }))
        .route("/ui/", get(handlers::overview::<S>))
        .route("/ui/overview.json", get(handlers::overview_json::<S>))
        .route(
            "/ui/login",
            get(handlers::login_page).post(handlers::login::<S>),
        )
        .route("/ui/logout", post(handlers::logout::<S>))
        .route("/ui/lang/{code}", get(handlers::set_lang))
        .route("/ui/messages", get(handlers::messages::<S>))
        .route("/ui/messages/{id}", get(handlers::message::<S>))
        .route(
            "/ui/messages/{id}/silence",
            post(handlers::silence_message::<S>),
        )
        .route("/ui/dlq", get(handlers::dead_letters::<S>))
        .route("/ui/dlq/replay", post(handlers::replay::<S>))
        .route("/ui/dlq/purge", post(handlers::purge::<S>))
        .route("/ui/dlq/{id}", get(handlers::dead_letter::<S>))
        .route("/ui/channels", get(handlers::channels::<S>))
        .route(
            "/ui/channels/{name}/test",
            post(handlers::test_message::<S>),
        )
        .route("/ui/silences", get(handlers::silences::<S>))
        .route("/ui/oncall", get(handlers::oncall::<S>))
        .route("/ui/audit", get(handlers::audit_page::<S>))
        .route(
            "/ui/templates",
            get(handlers::templates::<S>).post(handlers::preview::<S>),
        )
        .route("/ui/templates/route", post(handlers::edit_route::<S>))
        .route("/ui/templates/save", post(handlers::save_template::<S>))
        .route(
            "/ui/silences/{id}/expire",
            post(handlers::expire_silence::<S>),
        )
        .route("/ui/static/{file}", get(static_file))
        .layer(axum::middleware::from_fn_with_state(state, guard::<S>))
}

/// Off unless enabled; the security headers on every answer.
async fn guard<S: ConsoleContext>(State(st): State<S>, req: Request, next: Next) -> Response {
    let mut resp = if st.users().enabled {
        next.run(req).await
    } else {
        Problem::not_found("the console is off; set `[console] enabled = true`").into_response()
    };
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    resp
}

fn redirect(to: &str) -> Response {
    (
        StatusCode::SEE_OTHER,
        [(
            header::LOCATION,
            HeaderValue::from_str(to).unwrap_or(HeaderValue::from_static("/ui/")),
        )],
    )
        .into_response()
}

/// The stylesheet and script, compiled in. Their names carry a version, so
/// they may be cached for a year.
const CSS: &str = include_str!("static/console.css");
const JS: &str = include_str!("static/console.js");
pub(crate) const CSS_PATH: &str = concat!("/ui/static/console-", env!("CARGO_PKG_VERSION"), ".css");
pub(crate) const JS_PATH: &str = concat!("/ui/static/console-", env!("CARGO_PKG_VERSION"), ".js");

async fn static_file(Path(file): Path<String>) -> Response {
    let path = format!("/ui/static/{file}");
    let (body, kind) = if path == CSS_PATH {
        (CSS, "text/css; charset=utf-8")
    } else if path == JS_PATH {
        (JS, "text/javascript; charset=utf-8")
    } else {
        return Problem::not_found(format!("no file `{}`", crate::http::truncate(&file, 64)))
            .into_response();
    };
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
        ],
        body,
    )
        .into_response()
}
