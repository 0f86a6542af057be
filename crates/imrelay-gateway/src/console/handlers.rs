//! The console's pages and actions. Reads and actions go through
//! [`ConsoleContext`] (the API's handlers) as the logged-in caller; only the
//! message search and the per-minute counts, which the API does not offer,
//! read the store directly, limited to the caller's channels the same way.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequestParts, Path, Query, RawQuery, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::{self, Session, Who, LOGIN_COOKIE, SESSION_COOKIE};
use super::editor::{EditorForm, EditorView};
use super::i18n::{Lang, LANG_COOKIE};
use super::pages::{self, Page};
use super::{redirect, ConsoleContext, DeadQuery};
use crate::http::auth::{Caller, Scope};
use crate::http::problem::Problem;
use crate::store::{ActivityMinute, DeliveryId, Latency, MessageFilter, MessageState};
use crate::store::{AuditEntry, AuditFilter, SessionKind};

/// A logged-in request: who, their session, their language.
pub(crate) struct Ctx {
    pub caller: Arc<Caller>,
    pub session: Session,
    pub lang: Lang,
    /// The path and query asked for (for the language switch).
    pub here: String,
    /// The client's address, for the audit trail.
    pub source: Option<String>,
}

impl Ctx {
    pub(crate) fn page(&self) -> Page<'_> {
        Page {
            lang: self.lang,
            user: Some((&self.caller.name, self.session.csrf())),
            here: &self.here,
            every_channel: self.every_channel(),
        }
    }

    /// Whether `form` carries this session's CSRF token.
    fn csrf_ok(&self, form: &Form) -> bool {
        self.session.csrf_ok(form.get("csrf").unwrap_or(""))
    }

    /// 403 for a form without this session's token: nothing was done.
    fn expired_form(&self) -> Response {
        pages::error_page(
            &self.page(),
            StatusCode::FORBIDDEN,
            self.lang
                .t("The form expired; reload the page and try again."),
        )
    }

    fn fail(&self, p: Problem) -> Response {
        pages::error_page(&self.page(), p.status, &p.detail)
    }

    /// Record an action of this session's user (see [`audit`]).
    async fn audit<S: ConsoleContext>(&self, st: &S, action: &str, object: &str, outcome: &str) {
        audit(
            st,
            &self.caller.name,
            self.source.as_deref(),
            action,
            object,
            outcome,
        )
        .await
    }

    /// Whether this session's user may use every channel (the audit trail
    /// and saving templates are theirs only).
    fn every_channel(&self) -> bool {
        matches!(self.caller.scope, Scope::All)
    }
}

/// The caller a session stands for, under the config in force now.
fn resolve<S: ConsoleContext>(st: &S, s: &Session) -> Option<Arc<Caller>> {
    let subject = &s.stored.subject;
    match s.stored.kind {
        SessionKind::User => st.users().users.get(subject).map(|u| u.caller.clone()),
        SessionKind::Key => st.api_keys().by_digest(&auth::key_digest(subject)?),
    }
}

/// The client's address, when the server passed it on.
fn source_of(parts: &Parts) -> Option<String> {
    parts
        .extensions
        .get::<ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip().to_string())
}

impl<S: ConsoleContext> FromRequestParts<S> for Ctx {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, st: &S) -> Result<Self, Response> {
        let lang = Lang::from_headers(&parts.headers);
        let session = match auth::cookie(&parts.headers, SESSION_COOKIE) {
            Some(id) => auth::session(st.store(), id).await.map_err(|e| {
                tracing::warn!(error = %e, "console: cannot read the session from the store");
                Problem::from(e).into_response()
            })?,
            None => None,
        };
        let here = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| "/ui/".into());
        match session.and_then(|s| resolve(st, &s).map(|c| (s, c))) {
            Some((session, caller)) => Ok(Ctx {
                caller,
                session,
                lang,
                here,
                source: source_of(parts),
            }),
            None if parts.uri.path().ends_with(".json") => Err((
                StatusCode::UNAUTHORIZED,
                Json(json!({"error": "log in again"})),
            )
                .into_response()),
            None => Err(redirect(&format!(
                "/ui/login?next={}",
                url::form_urlencoded::byte_serialize(here.as_bytes()).collect::<String>()
            ))),
        }
    }
}

/// A submitted form: its fields in order (a name may repeat: `id`).
pub(crate) struct Form(Vec<(String, String)>);

impl Form {
    fn parse(body: &[u8]) -> Form {
        Form(url::form_urlencoded::parse(body).into_owned().collect())
    }
    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
    fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A console action, for the audit log (target `imrelay::audit`) and the
/// audit trail in the store. A store that cannot take the row does not undo
/// the action, which is done already: the log line still tells.
async fn audit<S: ConsoleContext>(
    st: &S,
    user: &str,
    source: Option<&str>,
    action: &str,
    object: &str,
    outcome: &str,
) {
    tracing::info!(
        target: "imrelay::audit",
        user = %user,
        action,
        object,
        outcome,
        source,
        "console action"
    );
    let entry = AuditEntry {
        at: st.store().now_ms(),
        user: user.to_string(),
        action: action.to_string(),
        object: object.to_string(),
        outcome: outcome.to_string(),
        source: source.map(str::to_string),
    };
    if let Err(e) = st.store().audit(entry).await {
        tracing::warn!(error = %e, action, "console: cannot write the audit trail row");
    }
}

/// Only a local path of the console (no open redirect).
fn local_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with("/ui") && !n.starts_with("//") && !n.contains('\\') => n.into(),
        _ => "/ui/".into(),
    }
}

fn with_cookies(mut resp: Response, cookies: &[String]) -> Response {
    for c in cookies {
        if let Ok(v) = HeaderValue::from_str(c) {
            resp.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    resp
}

// ---- login ------------------------------------------------------------------

#[derive(Deserialize, Default)]
pub(crate) struct NextQuery {
    next: Option<String>,
}

pub(crate) async fn login_page(headers: HeaderMap, Query(q): Query<NextQuery>) -> Response {
    login_form(&headers, q.next.as_deref(), None, StatusCode::OK)
}

/// The login form with a fresh double-submit token (there is no session to
/// hold one yet).
fn login_form(
    headers: &HeaderMap,
    next: Option<&str>,
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    let lang = Lang::from_headers(headers);
    let token = auth::random_token(32);
    let next = local_next(next);
    let page = Page {
        lang,
        user: None,
        here: "/ui/login",
        every_channel: false,
    };
    let resp = (status, pages::login(&page, &token, &next, error)).into_response();
    with_cookies(
        resp,
        &[auth::set_cookie(
            LOGIN_COOKIE,
            &token,
            3600,
            auth::secure(headers),
            true,
        )],
    )
}

pub(crate) async fn login<S: ConsoleContext>(
    State(st): State<S>,
    connect: Option<Extension<ConnectInfo<std::net::SocketAddr>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let source = connect.map(|c| c.0 .0.ip().to_string());
    let source = source.as_deref();
    let form = Form::parse(&body);
    let lang = Lang::from_headers(&headers);
    let next = form.get("next").map(str::to_string);
    if !login_csrf_ok(&headers, &form) {
        return login_form(
            &headers,
            next.as_deref(),
            Some(lang.t("The form expired; reload the page and try again.")),
            StatusCode::FORBIDDEN,
        );
    }
    let now = st.store().now_ms();
    let name = form.get("user").unwrap_or("").trim().to_string();
    let key = form.get("key").unwrap_or("").trim().to_string();
    let limit_name = if key.is_empty() {
        name.clone()
    } else {
        "(api key)".into()
    };
    if !st.logins().may_try(&limit_name, now) {
        audit(&st, &limit_name, source, "login", "", "rate_limited").await;
        return login_form(
            &headers,
            next.as_deref(),
            Some(lang.t("Too many failed logins; wait a few minutes.")),
            StatusCode::TOO_MANY_REQUESTS,
        );
    }
    let who = check_credentials(&st, &form, &name, &key);
    let Some((who, caller)) = who else {
        st.logins().failed(&limit_name, now);
        audit(&st, &limit_name, source, "login", "", "refused").await;
        return login_form(
            &headers,
            next.as_deref(),
            Some(lang.t("Wrong user name, password or key.")),
            StatusCode::UNAUTHORIZED,
        );
    };
    st.logins().succeeded(&limit_name);
    let lifetime = st.users().session_lifetime;
    let lifetime_ms = lifetime.as_millis().min(i64::MAX as u128) as i64;
    let id = match auth::open_session(st.store(), &who, &caller.name, lifetime_ms).await {
        Ok((id, _)) => id,
        Err(e) => {
            audit(&st, &caller.name, source, "login", "", &e.to_string()).await;
            return Problem::from(e).into_response();
        }
    };
    audit(&st, &caller.name, source, "login", "", "ok").await;
    let secure = auth::secure(&headers);
    with_cookies(
        redirect(&local_next(next.as_deref())),
        &[
            auth::set_cookie(SESSION_COOKIE, &id, lifetime.as_secs() as i64, secure, true),
            auth::set_cookie(LOGIN_COOKIE, "", 0, secure, true),
        ],
    )
}

/// The login form's CSRF token matches its cookie (compared in constant
/// time).
fn login_csrf_ok(headers: &HeaderMap, form: &Form) -> bool {
    let expected = auth::cookie(headers, LOGIN_COOKIE).unwrap_or("");
    let given = form.get("csrf").unwrap_or("");
    !expected.is_empty()
        && expected.len() == given.len()
        && bool::from(subtle::ConstantTimeEq::ct_eq(
            expected.as_bytes(),
            given.as_bytes(),
        ))
}

/// Who the form's API key or user name and password are, if they check out.
fn check_credentials<S: ConsoleContext>(
    st: &S,
    form: &Form,
    name: &str,
    key: &str,
) -> Option<(Who, Arc<Caller>)> {
    if !key.is_empty() {
        let mut h = HeaderMap::new();
        let caller = HeaderValue::from_str(&format!("Bearer {key}"))
            .ok()
            .and_then(|v| {
                h.insert(header::AUTHORIZATION, v);
                st.api_keys().authenticate(&h).ok()
            });
        caller.map(|c| {
            (
                Who::Key(imrelay_sdk::secret::Secret::new(key.to_string())),
                c,
            )
        })
    } else {
        let users = st.users();
        let password = form.get("password").unwrap_or("");
        match users.users.get(name) {
            Some(u) if auth::verify_password(password, &u.password_hash) => {
                Some((Who::User(name.to_string()), u.caller.clone()))
            }
            Some(_) => None,
            None => {
                // As slow as a wrong password, so timing does not tell which
                // names exist.
                let _ = auth::verify_password(password, dummy_hash());
                None
            }
        }
    }
}

fn dummy_hash() -> &'static str {
    static H: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    H.get_or_init(|| auth::hash_password("imrelay-no-such-user").unwrap_or_default())
}

pub(crate) async fn logout<S: ConsoleContext>(
    State(st): State<S>,
    ctx: Ctx,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form = Form::parse(&body);
    if !ctx.csrf_ok(&form) {
        return ctx.expired_form();
    }
    if let Some(id) = auth::cookie(&headers, SESSION_COOKIE) {
        if let Err(e) = auth::close_session(st.store(), id).await {
            ctx.audit(&st, "logout", "", &e.to_string()).await;
            return ctx.fail(e.into());
        }
    }
    ctx.audit(&st, "logout", "", "ok").await;
    with_cookies(
        redirect("/ui/login"),
        &[auth::set_cookie(
            SESSION_COOKIE,
            "",
            0,
            auth::secure(&headers),
            true,
        )],
    )
}

pub(crate) async fn set_lang(
    Path(code): Path<String>,
    headers: HeaderMap,
    Query(q): Query<NextQuery>,
) -> Response {
    let lang = Lang::parse(&code).unwrap_or(Lang::En);
    let cookie = format!(
        "{LANG_COOKIE}={}; Path=/ui; Max-Age=31536000; SameSite=Lax{}",
        if lang == Lang::Zh { "zh" } else { "en" },
        if auth::secure(&headers) {
            "; Secure"
        } else {
            ""
        }
    );
    with_cookies(redirect(&local_next(q.next.as_deref())), &[cookie])
}

// ---- overview ---------------------------------------------------------------

/// What the overview shows, for the page and its JSON refresh.
pub(crate) struct Overview {
    pub accepted: u64,
    pub delivered: u64,
    pub failed: u64,
    pub dead_hour: u64,
    pub pending: u64,
    pub in_flight: u64,
    pub silenced: Option<u64>,
    pub dlq: u64,
    pub oldest_pending_ms: Option<i64>,
    pub open_breakers: usize,
    /// The last 60 minutes, oldest first.
    pub minutes: Vec<ActivityMinute>,
    /// Accept-to-delivered percentiles of the last hour's deliveries.
    pub latency: Latency,
}

fn scope_channels(caller: &Caller) -> Option<Vec<String>> {
    match &caller.scope {
        Scope::All => None,
        Scope::Channels(c) => Some(c.iter().cloned().collect()),
    }
}

async fn overview_data<S: ConsoleContext>(
    st: &S,
    caller: &Arc<Caller>,
) -> Result<Overview, Problem> {
    let status = st.status(caller.clone()).await?;
    let q = &status["queue"];
    let n = |v: &Value| v.as_u64().unwrap_or(0);
    let all = matches!(caller.scope, Scope::All);
    let (pending, in_flight, dlq) = if all {
        (n(&q["pending"]), n(&q["in_flight"]), n(&q["dead"]))
    } else {
        // The API keeps only the caller's targets; the totals are everyone's.
        let t = q["by_target"].as_array().cloned().unwrap_or_default();
        let sum = |k: &str| t.iter().map(|x| n(&x[k])).sum::<u64>();
        (sum("pending"), sum("in_flight"), sum("dead"))
    };
    let open_breakers = status["dispatch"]["destinations"]
        .as_array()
        .map(|d| {
            d.iter()
                .filter(|x| {
                    x["breaker"]["state"]
                        .as_str()
                        .is_some_and(|s| s != "closed")
                })
                .count()
        })
        .unwrap_or(0);
    let now = st.store().now_ms();
    let first = (now / 60_000 - 59) * 60_000;
    let scope = scope_channels(caller);
    let got = st.store().activity(first, scope.as_deref()).await?;
    let latency = st
        .store()
        .latency(now - 3_600_000, scope.as_deref())
        .await?;
    let minutes: Vec<ActivityMinute> = (0..60)
        .map(|i| {
            let minute = first + i * 60_000;
            got.iter()
                .find(|m| m.minute == minute)
                .copied()
                .unwrap_or(ActivityMinute {
                    minute,
                    ..Default::default()
                })
        })
        .collect();
    Ok(Overview {
        accepted: minutes.iter().map(|m| m.accepted).sum(),
        delivered: minutes.iter().map(|m| m.delivered).sum(),
        failed: minutes.iter().map(|m| m.failed).sum(),
        dead_hour: minutes.iter().map(|m| m.dead).sum(),
        pending,
        in_flight,
        silenced: all.then(|| n(&q["silenced"])),
        dlq,
        oldest_pending_ms: if all {
            q["oldest_pending_age_ms"].as_i64()
        } else {
            None
        },
        open_breakers,
        minutes,
        latency,
    })
}

pub(crate) async fn overview<S: ConsoleContext>(State(st): State<S>, ctx: Ctx) -> Response {
    match overview_data(&st, &ctx.caller).await {
        Ok(o) => pages::overview(&ctx.page(), &o).into_response(),
        Err(p) => ctx.fail(p),
    }
}

pub(crate) async fn overview_json<S: ConsoleContext>(State(st): State<S>, ctx: Ctx) -> Response {
    match overview_data(&st, &ctx.caller).await {
        Ok(o) => Json(json!({
            "numbers": pages::overview_numbers(ctx.lang, &o),
            "latency": o.latency,
            "charts": pages::overview_charts(ctx.lang, &o).into_string(),
        }))
        .into_response(),
        Err(p) => (p.status, Json(json!({"error": p.detail}))).into_response(),
    }
}

// ---- messages ---------------------------------------------------------------

#[derive(Deserialize, Default, Debug)]
pub(crate) struct MessagesQuery {
    #[serde(default)]
    pub channel: String,
    #[serde(default)]
    pub state: String,
    #[serde(default)]
    pub text: String,
    #[serde(default)]
    pub trace_id: String,
    /// `name=value`.
    #[serde(default)]
    pub label: String,
    #[serde(default)]
    pub since: String,
    #[serde(default)]
    pub until: String,
}

/// `2026-12-01T08:00` (a `datetime-local` field, read as UTC) or RFC 3339.
fn form_time(field: &str, v: &str) -> Result<Option<i64>, Problem> {
    let v = v.trim();
    if v.is_empty() {
        return Ok(None);
    }
    if let Ok(t) = v.parse::<jiff::Timestamp>() {
        return Ok(Some(t.as_millisecond()));
    }
    v.parse::<jiff::civil::DateTime>()
        .ok()
        .and_then(|d| jiff::tz::TimeZone::UTC.to_timestamp(d).ok())
        .map(|t| Some(t.as_millisecond()))
        .ok_or_else(|| {
            Problem::invalid(
                field,
                format!(
                    "`{}` is not a time like 2026-12-01T08:00",
                    crate::http::truncate(v, 40)
                ),
            )
        })
}

fn parse_state(v: &str) -> Result<Option<MessageState>, Problem> {
    Ok(Some(match v {
        "" => return Ok(None),
        "pending" => MessageState::Pending,
        "delivered" => MessageState::Delivered,
        "dead" => MessageState::Dead,
        "partial" => MessageState::Partial,
        "silenced" => MessageState::Silenced,
        _ => return Err(Problem::invalid("state", "unknown state")),
    }))
}

pub(crate) async fn messages<S: ConsoleContext>(
    State(st): State<S>,
    ctx: Ctx,
    Query(q): Query<MessagesQuery>,
) -> Response {
    let filter = (|| -> Result<MessageFilter, Problem> {
        let channels = if q.channel.is_empty() {
            scope_channels(&ctx.caller)
        } else {
            ctx.caller.require(&q.channel)?;
            Some(vec![q.channel.clone()])
        };
        Ok(MessageFilter {
            channels,
            state: parse_state(&q.state)?,
            text: Some(q.text.trim().to_string()).filter(|t| !t.is_empty()),
            trace_id: Some(q.trace_id.trim().to_string()).filter(|t| !t.is_empty()),
            label: match q.label.trim() {
                "" => None,
                l => match l.split_once('=') {
                    Some((k, v)) if !k.trim().is_empty() => {
                        Some((k.trim().to_string(), v.trim().to_string()))
                    }
                    _ => return Err(Problem::invalid("label", "write a label as name=value")),
                },
            },
            since: form_time("since", &q.since)?,
            until: form_time("until", &q.until)?,
            limit: 100,
        })
    })();
    let filter = match filter {
        Ok(f) => f,
        Err(p) => return ctx.fail(p),
    };
    match st.store().search_messages(&filter).await {
        Ok(found) => {
            let channels = visible_channels(&st, &ctx.caller);
            pages::messages(&ctx.page(), &q, &channels, &found).into_response()
        }
        Err(e) => ctx.fail(e.into()),
    }
}

fn visible_channels<S: ConsoleContext>(st: &S, caller: &Caller) -> Vec<String> {
    st.channels()
        .channels
        .keys()
        .map(|c| c.to_string())
        .filter(|c| !c.starts_with("callback:") && caller.may_use(c))
        .collect()
}

#[derive(Deserialize, Default)]
pub(crate) struct NoticeQuery {
    #[serde(default)]
    pub notice: String,
}

pub(crate) async fn message<S: ConsoleContext>(
    State(st): State<S>,
    ctx: Ctx,
    Path(id): Path<String>,
    Query(nq): Query<NoticeQuery>,
) -> Response {
    match st.message(ctx.caller.clone(), id).await {
        Ok(view) => {
            let set = st.channels();
            pages::message(&ctx.page(), &view, &set, &nq.notice).into_response()
        }
        Err(p) => ctx.fail(p),
    }
}

pub(crate) async fn silence_message<S: ConsoleContext>(
    State(st): State<S>,
    ctx: Ctx,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let form = Form::parse(&body);
    if !ctx.csrf_ok(&form) {
        return ctx.expired_form();
    }
    let duration = form.get("duration").unwrap_or("1h").to_string();
    let comment = form.get("comment").unwrap_or("").to_string();
    match st
        .silence_like(ctx.caller.clone(), id.clone(), duration, comment)
        .await
    {
        Ok(silence) => {
            ctx.audit(
                &st,
                "silence.create",
                &format!("message {id} → silence {silence}"),
                "ok",
            )
            .await;
            redirect(&format!("/ui/messages/{}?notice=silenced", enc(&id)))
        }
        Err(p) => {
            ctx.audit(&st, "silence.create", &format!("message {id}"), &p.detail)
                .await;
            ctx.fail(p)
        }
    }
}

fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

// ---- dead letters -----------------------------------------------------------

#[derive(Deserialize, Default, Debug)]
pub(crate) struct DlqQuery {
    #[serde(default)]
    pub channel: String,
    #[serde(default)]
    pub code: String,
    #[serde(default)]
    pub notice: String,
    #[serde(default)]
    pub n: Option<u64>,
}

pub(crate) async fn dead_letters<S: ConsoleContext>(
    State(st): State<S>,
    ctx: Ctx,
    Query(q): Query<DlqQuery>,
) -> Response {
    let code = Some(q.code.trim().to_string()).filter(|c| !c.is_empty());
    // A user of several (not all) channels lists each of theirs: the API
    // asks such a key to name one.
    let channels: Vec<Option<String>> = match (&q.channel, &ctx.caller.scope) {
        (c, _) if !c.is_empty() => vec![Some(c.clone())],
        (_, Scope::All) => vec![None],
        (_, Scope::Channels(set)) => set.iter().cloned().map(Some).collect(),
    };
    let mut items = Vec::new();
    for channel in channels {
        let q = DeadQuery {
            channel,
            code: code.clone(),
            message_id: None,
            limit: 500,
        };
        match st.dead_letters(ctx.caller.clone(), q).await {
            Ok(mut page) => items.append(&mut page),
            Err(p) => return ctx.fail(p),
        }
    }
    items.sort_by_key(|e| std::cmp::Reverse(e.dead_at));
    let set = st.channels();
    let channels = visible_channels(&st, &ctx.caller);
    pages::dead_letters(&ctx.page(), &q, &channels, &items, &set).into_response()
}

pub(crate) async fn dead_letter<S: ConsoleContext>(
    State(st): State<S>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Response {
    let Ok(id) = id.parse::<i64>().map(DeliveryId::new) else {
        return ctx.fail(Problem::not_found(format!(
            "no dead letter {}",
            crate::http::truncate(&id, 32)
        )));
    };
    match st.dead_letter(ctx.caller.clone(), id).await {
        Ok(e) => {
            let set = st.channels();
            pages::dead_letter(&ctx.page(), &e, &set).into_response()
        }
        Err(p) => ctx.fail(p),
    }
}

fn form_ids(form: &Form) -> Vec<DeliveryId> {
    form.all("id")
        .filter_map(|v| v.parse::<i64>().ok())
        .map(DeliveryId::new)
        // The API takes at most 1000 ids per request.
        .take(1000)
        .collect()
}

pub(crate) async fn replay<S: ConsoleContext>(
    State(st): State<S>,
    ctx: Ctx,
    body: Bytes,
) -> Response {
    dlq_action(st, ctx, body, "replay").await
}

pub(crate) async fn purge<S: ConsoleContext>(
    State(st): State<S>,
    ctx: Ctx,
    body: Bytes,
) -> Response {
    dlq_action(st, ctx, body, "purge").await
}

async fn dlq_action<S: ConsoleContext>(st: S, ctx: Ctx, body: Bytes, op: &str) -> Response {
    let form = Form::parse(&body);
    if !ctx.csrf_ok(&form) {
        return ctx.expired_form();
    }
    let ids = form_ids(&form);
    let object = ids
        .iter()
        .map(|i| i.get().to_string())
        .collect::<Vec<_>>()
        .join(",");
    let result = if ids.is_empty() {
        Ok(0)
    } else if op == "replay" {
        st.replay(ctx.caller.clone(), ids).await
    } else {
        st.purge(ctx.caller.clone(), ids).await
    };
    match result {
        Ok(n) => {
            ctx.audit(&st, &format!("dlq.{op}"), &object, &format!("{n} done"))
                .await;
            let notice = if op == "replay" { "replayed" } else { "purged" };
            let back = form.get("back").filter(|b| b.starts_with("/ui/messages/"));
            match back {
                Some(b) => redirect(&format!("{b}?notice={notice}")),
                None => redirect(&format!("/ui/dlq?notice={notice}&n={n}")),
            }
        }
        Err(p) => {
            ctx.audit(&st, &format!("dlq.{op}"), &object, &p.detail)
                .await;
            ctx.fail(p)
        }
    }
}

// ---- channels ---------------------------------------------------------------

pub(crate) async fn channels<S: ConsoleContext>(
    State(st): State<S>,
    ctx: Ctx,
    RawQuery(_q): RawQuery,
) -> Response {
    match st.status(ctx.caller.clone()).await {
        Ok(status) => {
            let tokens = token_states(&st, &ctx.caller).await;
            pages::channels(&ctx.page(), &status, &tokens).into_response()
        }
        Err(p) => ctx.fail(p),
    }
}

/// What the token cache holds (this process's, else the shared one of
/// several instances) for each destination (by key) of the caller's channels
/// that uses an access token.
async fn token_states<S: ConsoleContext>(st: &S, caller: &Caller) -> BTreeMap<String, TokenView> {
    let now = st.store().now_ms();
    let set = st.channels();
    let mut out = BTreeMap::new();
    for (name, ch) in &set.channels {
        if !caller.may_use(name.as_str()) {
            continue;
        }
        for e in &ch.destinations {
            if let Some(state) = e.dest.token_state().await {
                let ms = |d: std::time::Duration| d.as_millis().min(i64::MAX as u128) as i64;
                out.insert(
                    e.key.clone(),
                    TokenView {
                        expires_at: state.expires_in.map(|d| now.saturating_add(ms(d))),
                        last_error: state
                            .last_error
                            .map(|(msg, ago)| (msg, now.saturating_sub(ms(ago)))),
                    },
                );
            }
        }
    }
    out
}

/// One destination's access token, as the channels page shows it (never
/// the token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TokenView {
    /// When the cached token expires; `None`: none is cached.
    pub expires_at: Option<i64>,
    /// The last failed fetch: what the platform said, and when.
    pub last_error: Option<(String, i64)>,
}

// ---- audit trail ------------------------------------------------------------

#[derive(Deserialize, Default, Debug)]
pub(crate) struct AuditQuery {
    #[serde(default)]
    pub user: String,
    #[serde(default)]
    pub action: String,
}

/// The newest rows of the audit trail; only for a user of every channel
/// (anyone else gets the 404 of a page that is not theirs).
pub(crate) async fn audit_page<S: ConsoleContext>(
    State(st): State<S>,
    ctx: Ctx,
    Query(q): Query<AuditQuery>,
) -> Response {
    if !ctx.every_channel() {
        return ctx.fail(Problem::not_found("no such page"));
    }
    let some = |v: &str| Some(v.trim().to_string()).filter(|v| !v.is_empty());
    let filter = AuditFilter {
        user: some(&q.user),
        action: some(&q.action),
        limit: 200,
    };
    match st.store().audit_log(filter).await {
        Ok(rows) => pages::audit(&ctx.page(), &q, &rows).into_response(),
        Err(e) => ctx.fail(e.into()),
    }
}

pub(crate) async fn test_message<S: ConsoleContext>(
    State(st): State<S>,
    ctx: Ctx,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    let form = Form::parse(&body);
    if !ctx.csrf_ok(&form) {
        return ctx.expired_form();
    }
    let text = form
        .get("text")
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .unwrap_or("imrelay console test message")
        .to_string();
    match st.submit(ctx.caller.clone(), name.clone(), text).await {
        Ok(id) => {
            ctx.audit(
                &st,
                "message.test",
                &format!("channel {name} → message {id}"),
                "ok",
            )
            .await;
            redirect(&format!("/ui/messages/{}?notice=queued", enc(id.as_str())))
        }
        Err(p) => {
            ctx.audit(&st, "message.test", &format!("channel {name}"), &p.detail)
                .await;
            ctx.fail(p)
        }
    }
}

// ---- silences ---------------------------------------------------------------

pub(crate) async fn silences<S: ConsoleContext>(
    State(st): State<S>,
    ctx: Ctx,
    Query(nq): Query<NoticeQuery>,
) -> Response {
    match st.silences(ctx.caller.clone()).await {
        Ok(list) => pages::silences(&ctx.page(), Some(&list), &nq.notice).into_response(),
        Err(p) if p.status == StatusCode::FORBIDDEN => (
            StatusCode::FORBIDDEN,
            pages::silences(&ctx.page(), None, ""),
        )
            .into_response(),
        Err(p) => ctx.fail(p),
    }
}

pub(crate) async fn oncall<S: ConsoleContext>(State(st): State<S>, ctx: Ctx) -> Response {
    match st.oncall(ctx.caller.clone()).await {
        Ok(list) => pages::oncall(&ctx.page(), &list).into_response(),
        Err(p) => ctx.fail(p),
    }
}

pub(crate) async fn expire_silence<S: ConsoleContext>(
    State(st): State<S>,
    ctx: Ctx,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let form = Form::parse(&body);
    if !ctx.csrf_ok(&form) {
        return ctx.expired_form();
    }
    match st.expire_silence(ctx.caller.clone(), id.clone()).await {
        Ok(n) => {
            ctx.audit(&st, "silence.expire", &id, &format!("{n} released"))
                .await;
            redirect("/ui/silences?notice=expired")
        }
        Err(p) => {
            ctx.audit(&st, "silence.expire", &id, &p.detail).await;
            ctx.fail(p)
        }
    }
}

// ---- templates: a live preview through POST /v1/render ---------------------

/// What the preview form holds.
#[derive(Debug, Default, Clone)]
pub(crate) struct PreviewForm {
    pub channel: String,
    pub template: String,
    pub title: String,
    pub text: String,
    pub data: String,
}

impl PreviewForm {
    fn from_form(f: &Form) -> PreviewForm {
        let g = |k: &str| f.get(k).unwrap_or("").to_string();
        PreviewForm {
            channel: g("channel"),
            template: g("template"),
            title: g("title"),
            text: g("text"),
            data: g("data"),
        }
    }

    /// The `POST /v1/render` body.
    fn request(&self) -> Result<Value, Problem> {
        let mut body = json!({ "channel": self.channel });
        if !self.title.trim().is_empty() {
            body["title"] = json!(self.title);
        }
        if self.template.is_empty() {
            body["text"] = json!(self.text);
        } else {
            body["template"] = json!(self.template);
            if !self.data.trim().is_empty() {
                let data: Value = serde_json::from_str(&self.data)
                    .map_err(|e| Problem::invalid("data", format!("not JSON: {e}")))?;
                body["data"] = data;
            }
        }
        Ok(body)
    }
}

pub(crate) async fn templates<S: ConsoleContext>(State(st): State<S>, ctx: Ctx) -> Response {
    let channels = visible_channels(&st, &ctx.caller);
    let form = PreviewForm {
        channel: channels.first().cloned().unwrap_or_default(),
        text: "disk 91% full on db-1".into(),
        ..Default::default()
    };
    let result = match form.request() {
        Ok(body) => st.render(ctx.caller.clone(), body),
        Err(p) => Err(p),
    };
    let editor = editor_view(&st, &ctx, &EditorForm::default());
    pages::templates(
        &ctx.page(),
        &channels,
        &st.template_names(),
        &form,
        &result,
        &editor,
    )
    .into_response()
}

fn editor_view<S: ConsoleContext>(st: &S, ctx: &Ctx, form: &EditorForm) -> EditorView {
    let set = st.channels();
    super::editor::view(
        &ctx.caller,
        &st.template_settings(),
        &st.alerting(),
        &set,
        form,
    )
}

/// The route editor posted: the whole page, or with `X-Preview: 1` only the
/// editor.
pub(crate) async fn edit_route<S: ConsoleContext>(
    State(st): State<S>,
    ctx: Ctx,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let f = Form::parse(&body);
    if !ctx.csrf_ok(&f) {
        return ctx.expired_form();
    }
    let form = editor_form(&f);
    let editor = editor_view(&st, &ctx, &form);
    if headers.get("x-preview").is_some_and(|v| v == "1") {
        return axum::response::Html(pages::route_preview(&ctx.page(), &editor).into_string())
            .into_response();
    }
    templates_page(&st, &ctx, &editor)
}

fn editor_form(f: &Form) -> EditorForm {
    let g = |k: &str| f.get(k).unwrap_or("").to_string();
    EditorForm {
        route: g("route"),
        template: g("template"),
        sample: g("sample"),
        // The source belongs to the route and template it was loaded for.
        source: (f.get("loaded") == Some(format!("{}|{}", g("route"), g("template")).as_str()))
            .then(|| g("source")),
    }
}

/// The templates page around `editor`.
fn templates_page<S: ConsoleContext>(st: &S, ctx: &Ctx, editor: &EditorView) -> Response {
    let channels = visible_channels(st, &ctx.caller);
    let pf = PreviewForm {
        channel: channels.first().cloned().unwrap_or_default(),
        text: "disk 91% full on db-1".into(),
        ..Default::default()
    };
    let result = pf.request().and_then(|b| st.render(ctx.caller.clone(), b));
    pages::templates(
        &ctx.page(),
        &channels,
        &st.template_names(),
        &pf,
        &result,
        editor,
    )
    .into_response()
}

/// Save the edited template: validated as a config load validates it,
/// written atomically (a temporary beside the file, renamed over it), then
/// the config is reloaded as on SIGHUP. Where the gateway cannot write, the
/// page shows what to paste instead. Only a user of every channel may save.
pub(crate) async fn save_template<S: ConsoleContext>(
    State(st): State<S>,
    ctx: Ctx,
    body: Bytes,
) -> Response {
    let f = Form::parse(&body);
    if !ctx.csrf_ok(&f) {
        return ctx.expired_form();
    }
    let form = editor_form(&f);
    let object = format!("route {} template {}", form.route, form.template);
    if !ctx.every_channel() {
        ctx.audit(&st, "template.save", &object, "forbidden").await;
        return pages::error_page(
            &ctx.page(),
            StatusCode::FORBIDDEN,
            ctx.lang
                .t("Only a user of every channel may save templates."),
        );
    }
    let mut v = editor_view(&st, &ctx, &form);
    if v.empty || !v.issues.is_empty() || form.source.is_none() {
        ctx.audit(&st, "template.save", &object, "invalid").await;
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            templates_page(&st, &ctx, &v),
        )
            .into_response();
    }
    let outcome = write_edit(&st, &mut v);
    let outcome = outcome.and_then(|()| {
        st.reload_config().map_err(|e| {
            fail(
                &mut v,
                "",
                format!("written, but the reload was refused: {e}"),
            );
        })
    });
    match outcome {
        Ok(()) => {
            ctx.audit(&st, "template.save", &object, "saved").await;
            // What the reloaded gateway renders now.
            let mut v = editor_view(
                &st,
                &ctx,
                &EditorForm {
                    source: None,
                    ..form
                },
            );
            v.saved = true;
            templates_page(&st, &ctx, &v)
        }
        Err(()) if v.paste.is_some() => {
            ctx.audit(
                &st,
                "template.save",
                &object,
                "not writable; shown to paste",
            )
            .await;
            templates_page(&st, &ctx, &v)
        }
        Err(()) => {
            let why = v
                .issues
                .last()
                .map(|i| i.message.clone())
                .unwrap_or_default();
            ctx.audit(&st, "template.save", &object, &why).await;
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                templates_page(&st, &ctx, &v),
            )
                .into_response()
        }
    }
}

fn fail(v: &mut EditorView, key: &str, message: String) {
    v.issues.push(super::editor::Issue {
        key: key.to_string(),
        message,
    });
}

/// Write the edited template where it lives (its own file, or the config),
/// or, when that is not writable, put the text to paste in the view. `Err`
/// when nothing was written; the view then says why.
fn write_edit<S: ConsoleContext>(st: &S, v: &mut EditorView) -> Result<(), ()> {
    use super::editor::{self, SaveTarget};
    let s = st.template_settings();
    match editor::save_target(&s, &v.template) {
        SaveTarget::Nowhere => {
            v.paste = Some((
                "TOML".into(),
                editor::template_toml(&s, &v.template, &v.source),
            ));
            Err(())
        }
        SaveTarget::TemplateFile(path) if !editor::writable(&path) => {
            v.paste = Some((path.display().to_string(), v.source.clone()));
            Err(())
        }
        SaveTarget::Config(path) if !editor::writable(&path) => {
            v.paste = Some((
                "TOML".into(),
                editor::template_toml(&s, &v.template, &v.source),
            ));
            Err(())
        }
        // Compiled with the edit already (the editor's view): write it.
        SaveTarget::TemplateFile(path) => editor::write_temp(&path, &v.source)
            .and_then(|tmp| std::fs::rename(&tmp, &path))
            .map_err(|e| {
                fail(
                    v,
                    "templates",
                    format!("cannot write {}: {e}", path.display()),
                )
            }),
        SaveTarget::Config(path) => write_config(st, &s, &path, v),
    }
}

/// Replace the template in the config file: edited beside it, checked like
/// `imrelay config check`, then renamed over it (never half written).
fn write_config<S: ConsoleContext>(
    st: &S,
    s: &super::editor::TemplateSettings,
    path: &std::path::Path,
    v: &mut EditorView,
) -> Result<(), ()> {
    use super::editor;
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))
        .and_then(|old| editor::edit_config_text(&old, s, &v.template, &v.source))
        .map_err(|e| fail(v, "", e))?;
    let tmp = editor::write_temp(path, &text).map_err(|e| {
        fail(
            v,
            "",
            format!("cannot write beside {}: {e}", path.display()),
        )
    })?;
    if let Err(issues) = st.check_config_file(&tmp) {
        let _ = std::fs::remove_file(&tmp);
        v.issues.extend(issues);
        return Err(());
    }
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        fail(v, "", format!("cannot replace {}: {e}", path.display()))
    })
}

/// The form posted: the whole page, or with `X-Preview: 1` (the script's live
/// preview) only the preview.
pub(crate) async fn preview<S: ConsoleContext>(
    State(st): State<S>,
    ctx: Ctx,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let f = Form::parse(&body);
    if !ctx.csrf_ok(&f) {
        return ctx.expired_form();
    }
    let form = PreviewForm::from_form(&f);
    let result = form
        .request()
        .and_then(|b| st.render(ctx.caller.clone(), b));
    if headers.get("x-preview").is_some_and(|v| v == "1") {
        return axum::response::Html(pages::preview(ctx.lang, &result).into_string())
            .into_response();
    }
    let channels = visible_channels(&st, &ctx.caller);
    let editor = editor_view(&st, &ctx, &EditorForm::default());
    pages::templates(
        &ctx.page(),
        &channels,
        &st.template_names(),
        &form,
        &result,
        &editor,
    )
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_stays_in_the_console() {
        assert_eq!(local_next(Some("/ui/dlq?x=1")), "/ui/dlq?x=1");
        for bad in [
            "https://evil.example",
            "//evil.example",
            "/v1/dlq",
            "/ui\\..\\x",
        ] {
            assert_eq!(local_next(Some(bad)), "/ui/", "{bad}");
        }
    }

    #[test]
    fn forms_keep_repeated_fields_and_times_read_as_utc() {
        let f = Form::parse(b"csrf=a&id=1&id=2&id=x&text=a+b%21");
        assert_eq!(form_ids(&f), vec![DeliveryId::new(1), DeliveryId::new(2)]);
        assert_eq!(f.get("text"), Some("a b!"));
        assert_eq!(
            form_time("since", "2023-11-14T22:13").unwrap(),
            Some(1_699_999_980_000)
        );
        assert_eq!(
            form_time("since", "2023-11-14T22:13:20Z").unwrap(),
            Some(1_700_000_000_000)
        );
        assert_eq!(form_time("since", "").unwrap(), None);
        assert_eq!(
            form_time("since", "soon").unwrap_err().field.as_deref(),
            Some("since")
        );
    }
}
