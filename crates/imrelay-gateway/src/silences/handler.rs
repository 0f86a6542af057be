//! `/v1/silences`, in the shape of Alertmanager's v2 silences API:
//!
//! - `POST /v1/silences` `{matchers, startsAt, endsAt, createdBy, comment}` →
//!   `{"silenceID"}`;
//! - `GET /v1/silences`, `GET /v1/silences/{id}`: with `status.state`
//!   (`pending`, `active`, `expired`);
//! - `DELETE /v1/silences/{id}[?release=true]`: end it now; with `release`,
//!   what it held is sent.
//!
//! Silences hold messages of every channel, so only a key for every channel
//! (`channels = ["*"]`) may manage them.

use std::sync::Arc;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::SilenceCache;
use crate::http::auth::{Auth, Caller, Scope};
use crate::http::extract::{ApiJson, ApiPath, ApiQuery};
use crate::http::problem::Problem;
use crate::http::responses::{BodyProblems, KeyProblem, StoreProblem};
use crate::http::ApiContext;
use crate::http::{parse_time as time, rfc3339};
use crate::store::{Release, Silence, SilenceMatcher, Store};

/// What the silence endpoints need from the gateway's state.
pub trait SilencesContext: ApiContext {
    fn store(&self) -> &Arc<dyn Store>;
    /// The channels in force (their `silence_release`).
    fn channels(&self) -> Arc<crate::channels::ChannelSet>;
    fn silences(&self) -> &Arc<SilenceCache>;
}

/// The routes, for the API router to merge.
pub fn router<S: SilencesContext>() -> Router<S> {
    Router::new()
        .route("/v1/silences", get(list::<S>).post(create::<S>))
        .route("/v1/silences/{id}", get(one::<S>).delete(expire::<S>))
        .route(
            "/v1/messages/{id}/silence",
            axum::routing::post(like_message::<S>),
        )
}

/// The body of `POST /v1/messages/{id}/silence`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SilenceLikeRequest {
    /// How long, e.g. `1h`, `30m`.
    pub duration: String,
    /// Who silences.
    #[schema(min_length = 1)]
    pub by: String,
    #[serde(default)]
    pub comment: String,
}

/// A silence to create (Alertmanager's `postableSilence`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PostableSilence {
    /// Replace this silence instead of creating one.
    #[serde(default)]
    pub id: Option<String>,
    #[schema(min_items = 1)]
    pub matchers: Vec<SilenceMatcher>,
    /// RFC 3339.
    pub starts_at: String,
    /// RFC 3339, after `startsAt` and in the future.
    pub ends_at: String,
    #[schema(min_length = 1)]
    pub created_by: String,
    #[serde(default)]
    pub comment: String,
}

/// The answer to a creation.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SilenceCreated {
    #[serde(rename = "silenceID")]
    pub silence_id: String,
}

/// A silence as Alertmanager shows one (`gettableSilence`).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GettableSilence {
    pub id: String,
    pub status: SilenceStatus,
    pub matchers: Vec<SilenceMatcher>,
    pub starts_at: String,
    pub ends_at: String,
    pub updated_at: String,
    pub created_by: String,
    pub comment: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SilenceStatus {
    /// `pending`, `active` or `expired`.
    pub state: String,
}

/// The answer to a deletion.
#[derive(Debug, Serialize, ToSchema)]
pub struct SilenceExpired {
    /// Held messages' deliveries sent now (with `release=true`).
    pub released: u64,
}

/// `DELETE /v1/silences/{id}` query parameters.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpireQuery {
    /// Send what the silence held: `true` or `false` (default).
    #[serde(default)]
    pub release: Option<String>,
}

fn gettable(s: Silence, now: i64) -> GettableSilence {
    let state = if now >= s.ends_at {
        "expired"
    } else if now < s.starts_at {
        "pending"
    } else {
        "active"
    };
    GettableSilence {
        id: s.id,
        status: SilenceStatus {
            state: state.into(),
        },
        matchers: s.matchers,
        starts_at: rfc3339(s.starts_at),
        ends_at: rfc3339(s.ends_at),
        updated_at: rfc3339(s.updated_at),
        created_by: s.created_by,
        comment: s.comment,
    }
}

fn may_manage(caller: &Caller) -> Result<(), Problem> {
    match caller.scope {
        Scope::All => Ok(()),
        Scope::Channels(_) => Err(Problem::forbidden(
            "silences hold messages of every channel: use a key with channels = [\"*\"]",
        )),
    }
}

fn check(req: &PostableSilence, now: i64) -> Result<(i64, i64), Problem> {
    if req.matchers.is_empty() {
        return Err(Problem::invalid("matchers", "give at least one matcher"));
    }
    for (i, m) in req.matchers.iter().enumerate() {
        if !crate::domain::labels::valid_label_name(&m.name) {
            return Err(Problem::invalid(
                format!("matchers[{i}].name"),
                "label names are letters, digits and `_`, not starting with a digit",
            ));
        }
    }
    super::compile(&req.matchers)
        .map_err(|(i, why)| Problem::invalid(format!("matchers[{i}].value"), why))?;
    if super::matches_everything(&req.matchers) {
        return Err(Problem::invalid(
            "matchers",
            "these matchers match every message; name at least one label value",
        ));
    }
    if req.created_by.trim().is_empty() {
        return Err(Problem::invalid(
            "createdBy",
            "name who creates the silence",
        ));
    }
    let (starts, ends) = (
        time("startsAt", &req.starts_at)?,
        time("endsAt", &req.ends_at)?,
    );
    if ends <= starts {
        return Err(Problem::invalid("endsAt", "must be after startsAt"));
    }
    if ends <= now {
        return Err(Problem::invalid("endsAt", "is in the past"));
    }
    Ok((starts, ends))
}

/// `POST /v1/silences`.
#[utoipa::path(post, path = "/v1/silences", tag = "silences",
    request_body = PostableSilence,
    responses(
        (status = 200, description = "Created (or replaced)", body = SilenceCreated),
        KeyProblem,
        BodyProblems,
        (status = 403, description = "The key may not use every channel", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A field is invalid (named in `field`)", body = Problem, content_type = "application/problem+json"),
        StoreProblem,
    ),
    security(("bearer" = [])))]
pub async fn create<S: SilencesContext>(
    State(st): State<S>,
    Auth(caller): Auth,
    ApiJson { value: req, .. }: ApiJson<PostableSilence>,
) -> Result<Json<SilenceCreated>, Problem> {
    may_manage(&caller)?;
    let now = st.store().now_ms();
    let (starts_at, ends_at) = check(&req, now)?;
    let id = match req.id {
        Some(id) if !id.trim().is_empty() && id.len() <= 64 => id,
        Some(_) => return Err(Problem::invalid("id", "a silence id is 1-64 characters")),
        None => uuid::Uuid::now_v7().to_string(),
    };
    st.store()
        .put_silence(Silence {
            id: id.clone(),
            matchers: req.matchers,
            starts_at,
            ends_at,
            created_by: req.created_by,
            comment: req.comment,
            updated_at: now,
        })
        .await?;
    st.silences().refresh(&**st.store()).await?;
    tracing::info!(silence_id = %id, by = %caller.name, "silence created");
    Ok(Json(SilenceCreated { silence_id: id }))
}

/// `GET /v1/silences`.
#[utoipa::path(get, path = "/v1/silences", tag = "silences",
    responses(
        (status = 200, description = "Every silence, newest first", body = Vec<GettableSilence>),
        KeyProblem,
        (status = 403, description = "The key may not use every channel", body = Problem, content_type = "application/problem+json"),
        StoreProblem,
    ),
    security(("bearer" = [])))]
pub async fn list<S: SilencesContext>(
    State(st): State<S>,
    Auth(caller): Auth,
) -> Result<Json<Vec<GettableSilence>>, Problem> {
    may_manage(&caller)?;
    let now = st.store().now_ms();
    let all = st.store().silences().await?;
    Ok(Json(all.into_iter().map(|s| gettable(s, now)).collect()))
}

/// `GET /v1/silences/{id}`.
#[utoipa::path(get, path = "/v1/silences/{id}", tag = "silences",
    params(("id" = String, Path, description = "The silence id")),
    responses(
        (status = 200, description = "The silence", body = GettableSilence),
        KeyProblem,
        (status = 403, description = "The key may not use every channel", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such silence", body = Problem, content_type = "application/problem+json"),
        StoreProblem,
    ),
    security(("bearer" = [])))]
pub async fn one<S: SilencesContext>(
    State(st): State<S>,
    Auth(caller): Auth,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<GettableSilence>, Problem> {
    may_manage(&caller)?;
    let now = st.store().now_ms();
    let found = st
        .store()
        .silences()
        .await?
        .into_iter()
        .find(|s| s.id == id);
    found.map(|s| Json(gettable(s, now))).ok_or_else(|| {
        Problem::not_found(format!("no silence `{}`", crate::http::truncate(&id, 64)))
    })
}

/// `DELETE /v1/silences/{id}`.
#[utoipa::path(delete, path = "/v1/silences/{id}", tag = "silences",
    params(("id" = String, Path, description = "The silence id"),
        ("release" = Option<bool>, Query, description = "Send what it held (default false: held messages stay held)")),
    responses(
        (status = 200, description = "Ended now", body = SilenceExpired),
        KeyProblem,
        (status = 403, description = "The key may not use every channel", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such silence", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A query parameter is invalid", body = Problem, content_type = "application/problem+json"),
        StoreProblem,
    ),
    security(("bearer" = [])))]
pub async fn expire<S: SilencesContext>(
    State(st): State<S>,
    Auth(caller): Auth,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<ExpireQuery>,
) -> Result<Json<SilenceExpired>, Problem> {
    may_manage(&caller)?;
    let release = match q.release.as_deref() {
        Some("false") => Release::None,
        Some("true") => Release::All,
        // Unsaid: the channels that say to send what a silence held.
        None => Release::Channels(
            st.channels()
                .channels
                .values()
                .filter(|c| c.silence_release)
                .map(|c| c.name.to_string())
                .collect(),
        ),
        Some(_) => return Err(Problem::invalid("release", "is `true` or `false`")),
    };
    let released = st
        .store()
        .expire_silence(&id, release)
        .await?
        .ok_or_else(|| {
            Problem::not_found(format!("no silence `{}`", crate::http::truncate(&id, 64)))
        })?;
    st.silences().refresh(&**st.store()).await?;
    tracing::info!(silence_id = %id, released, by = %caller.name, "silence ended");
    Ok(Json(SilenceExpired { released }))
}

/// `POST /v1/messages/{id}/silence`: silence the messages like this one (its
/// labels and its channel, each an equality matcher).
#[utoipa::path(post, path = "/v1/messages/{id}/silence", tag = "silences",
    params(("id" = String, Path, description = "The message whose labels the silence matches")),
    request_body = SilenceLikeRequest,
    responses(
        (status = 200, description = "Created", body = GettableSilence),
        KeyProblem,
        BodyProblems,
        (status = 404, description = "No such message, or one of a channel the key may not use (answered alike)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A field is invalid, or the message has no labels", body = Problem, content_type = "application/problem+json"),
        StoreProblem,
    ),
    security(("bearer" = [])))]
pub async fn like_message<S: SilencesContext>(
    State(st): State<S>,
    Auth(caller): Auth,
    ApiPath(id): ApiPath<String>,
    ApiJson { value: req, .. }: ApiJson<SilenceLikeRequest>,
) -> Result<Json<GettableSilence>, Problem> {
    let duration = humantime::parse_duration(req.duration.trim())
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| Problem::invalid("duration", "a duration such as \"1h\" or \"30m\""))?;
    if req.by.trim().is_empty() {
        return Err(Problem::invalid("by", "name who silences"));
    }
    let missing = || Problem::not_found(format!("no message `{}`", crate::http::truncate(&id, 64)));
    let view = match st.store().get_message(&id).await? {
        Some(v) if caller.may_use(&v.channel) => v,
        _ => return Err(missing()),
    };
    let now = st.store().now_ms();
    let silence = super::like_message(
        &view.labels,
        &view.channel,
        now,
        duration,
        req.by.trim(),
        &req.comment,
    )
    .ok_or_else(|| Problem::invalid("id", "the message has no labels to silence by"))?;
    st.store().put_silence(silence.clone()).await?;
    st.silences().refresh(&**st.store()).await?;
    tracing::info!(silence_id = %silence.id, message_id = %view.id, by = %caller.name, "silence created from a message");
    Ok(Json(gettable(silence, now)))
}
