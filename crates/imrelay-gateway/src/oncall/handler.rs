//! `/v1/oncall`: who is on call now and next, and temporary overrides.
//!
//! - `GET /v1/oncall`: every schedule;
//! - `GET /v1/oncall/{schedule}`: one, with its overrides;
//! - `POST /v1/oncall/{schedule}/overrides` `{person, startsAt, endsAt}`;
//! - `DELETE /v1/oncall/{schedule}/overrides/{id}`.
//!
//! Any key may read; overrides change who is woken for every channel, so
//! only a key for every channel (`channels = ["*"]`) may make them.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::schedule::Shift;
use super::{OnCall, OverrideCache};
use crate::http::auth::{Auth, Caller, Scope};
use crate::http::extract::{ApiJson, ApiPath};
use crate::http::problem::Problem;
use crate::http::responses::{BodyProblems, KeyProblem, StoreProblem};
use crate::http::ApiContext;
use crate::http::{parse_time as time, rfc3339};
use crate::store::{Override, Store};

/// What the on-call endpoints need from the gateway's state.
pub trait OnCallContext: ApiContext {
    fn store(&self) -> &Arc<dyn Store>;
    fn oncall(&self) -> Arc<OnCall>;
    fn overrides(&self) -> &Arc<OverrideCache>;
}

/// The routes, for the API router to merge.
pub fn router<S: OnCallContext>() -> Router<S> {
    Router::new()
        .route("/v1/oncall", get(list::<S>))
        .route("/v1/oncall/{schedule}", get(one::<S>))
        .route(
            "/v1/oncall/{schedule}/overrides",
            axum::routing::post(create_override::<S>),
        )
        .route(
            "/v1/oncall/{schedule}/overrides/{id}",
            delete(delete_override::<S>),
        )
}

/// Who is on call on one schedule.
#[derive(Debug, Serialize, ToSchema)]
pub struct OnCallView {
    pub schedule: String,
    /// On call now; absent when nobody is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub now: Option<ShiftView>,
    /// The next person on call after the current shift.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<ShiftView>,
    /// Overrides that have not ended.
    pub overrides: Vec<OverrideView>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ShiftView {
    pub person: String,
    /// Their `display` name from `[[people]]`.
    pub display: String,
    /// RFC 3339.
    pub from: String,
    /// RFC 3339; absent when it does not change within 60 days.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub override_id: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OverrideView {
    pub id: String,
    pub person: String,
    pub starts_at: String,
    pub ends_at: String,
    pub created_by: String,
}

/// The body of `POST /v1/oncall/{schedule}/overrides`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PostableOverride {
    /// A person of `[[people]]`.
    #[schema(min_length = 1)]
    pub person: String,
    /// RFC 3339.
    pub starts_at: String,
    /// RFC 3339, after `startsAt` and in the future.
    pub ends_at: String,
}

fn shift(oncall: &OnCall, s: Shift) -> ShiftView {
    ShiftView {
        display: oncall.people.display_name(&s.person).to_string(),
        person: s.person,
        from: rfc3339(s.from),
        until: s.until.map(rfc3339),
        override_id: s.override_id,
    }
}

fn view(oncall: &OnCall, name: &str, overrides: &[Override], now: i64) -> Option<OnCallView> {
    let s = oncall.schedule(name)?;
    Some(OnCallView {
        schedule: s.name.clone(),
        now: s.on_call(now, overrides).map(|x| shift(oncall, x)),
        next: s.next(now, overrides).map(|x| shift(oncall, x)),
        overrides: overrides
            .iter()
            .filter(|o| o.schedule == s.name)
            .map(|o| OverrideView {
                id: o.id.clone(),
                person: o.person.clone(),
                starts_at: rfc3339(o.starts_at),
                ends_at: rfc3339(o.ends_at),
                created_by: o.created_by.clone(),
            })
            .collect(),
    })
}

fn not_found(name: &str) -> Problem {
    Problem::not_found(format!(
        "no schedule `{}` is configured",
        crate::http::truncate(name, 64)
    ))
}

/// `GET /v1/oncall`.
#[utoipa::path(get, path = "/v1/oncall", tag = "oncall",
    responses(
        (status = 200, description = "Who is on call on every schedule", body = Vec<OnCallView>),
        KeyProblem,
        StoreProblem,
    ),
    security(("bearer" = [])))]
pub async fn list<S: OnCallContext>(
    State(st): State<S>,
    Auth(_caller): Auth,
) -> Result<Json<Vec<OnCallView>>, Problem> {
    let oncall = st.oncall();
    let overrides = st.store().overrides(None).await?;
    let now = st.store().now_ms();
    Ok(Json(
        oncall
            .schedules
            .iter()
            .filter_map(|s| view(&oncall, &s.name, &overrides, now))
            .collect(),
    ))
}

/// `GET /v1/oncall/{schedule}`.
#[utoipa::path(get, path = "/v1/oncall/{schedule}", tag = "oncall",
    params(("schedule" = String, Path, description = "A schedule's name")),
    responses(
        (status = 200, description = "Who is on call now and next", body = OnCallView),
        KeyProblem,
        (status = 404, description = "No such schedule", body = Problem, content_type = "application/problem+json"),
        StoreProblem,
    ),
    security(("bearer" = [])))]
pub async fn one<S: OnCallContext>(
    State(st): State<S>,
    Auth(_caller): Auth,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<OnCallView>, Problem> {
    let oncall = st.oncall();
    let overrides = st.store().overrides(Some(&name)).await?;
    view(&oncall, &name, &overrides, st.store().now_ms())
        .map(Json)
        .ok_or_else(|| not_found(&name))
}

fn may_override(caller: &Caller) -> Result<(), Problem> {
    match caller.scope {
        Scope::All => Ok(()),
        Scope::Channels(_) => Err(Problem::forbidden(
            "overrides change who is woken for every channel: use a key with channels = [\"*\"]",
        )),
    }
}

/// `POST /v1/oncall/{schedule}/overrides`.
#[utoipa::path(post, path = "/v1/oncall/{schedule}/overrides", tag = "oncall",
    params(("schedule" = String, Path, description = "A schedule's name")),
    request_body = PostableOverride,
    responses(
        (status = 201, description = "Created", body = OverrideView),
        KeyProblem,
        BodyProblems,
        (status = 403, description = "The key may not use every channel", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such schedule", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A field is invalid (named in `field`)", body = Problem, content_type = "application/problem+json"),
        StoreProblem,
    ),
    security(("bearer" = [])))]
pub async fn create_override<S: OnCallContext>(
    State(st): State<S>,
    Auth(caller): Auth,
    ApiPath(name): ApiPath<String>,
    ApiJson { value: req, .. }: ApiJson<PostableOverride>,
) -> Result<(StatusCode, Json<OverrideView>), Problem> {
    may_override(&caller)?;
    let oncall = st.oncall();
    if oncall.schedule(&name).is_none() {
        return Err(not_found(&name));
    }
    if !oncall.people.contains(&req.person) {
        return Err(Problem::invalid(
            "person",
            format!(
                "`{}` is not in [[people]]",
                crate::http::truncate(&req.person, 64)
            ),
        ));
    }
    let now = st.store().now_ms();
    let (starts_at, ends_at) = (
        time("startsAt", &req.starts_at)?,
        time("endsAt", &req.ends_at)?,
    );
    if ends_at <= starts_at {
        return Err(Problem::invalid("endsAt", "must be after startsAt"));
    }
    if ends_at <= now {
        return Err(Problem::invalid("endsAt", "is in the past"));
    }
    let o = Override {
        id: uuid::Uuid::now_v7().to_string(),
        schedule: name,
        person: req.person,
        starts_at,
        ends_at,
        created_by: caller.name.clone(),
        created_at: now,
    };
    st.store().put_override(o.clone()).await?;
    st.overrides().refresh(&**st.store()).await?;
    tracing::info!(override_id = %o.id, schedule = %o.schedule, person = %o.person, by = %caller.name, "on-call override created");
    Ok((
        StatusCode::CREATED,
        Json(OverrideView {
            id: o.id,
            person: o.person,
            starts_at: rfc3339(o.starts_at),
            ends_at: rfc3339(o.ends_at),
            created_by: o.created_by,
        }),
    ))
}

/// `DELETE /v1/oncall/{schedule}/overrides/{id}`.
#[utoipa::path(delete, path = "/v1/oncall/{schedule}/overrides/{id}", tag = "oncall",
    params(
        ("schedule" = String, Path, description = "A schedule's name"),
        ("id" = String, Path, description = "The override's id"),
    ),
    responses(
        (status = 204, description = "Deleted"),
        KeyProblem,
        (status = 403, description = "The key may not use every channel", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such override", body = Problem, content_type = "application/problem+json"),
        StoreProblem,
    ),
    security(("bearer" = [])))]
pub async fn delete_override<S: OnCallContext>(
    State(st): State<S>,
    Auth(caller): Auth,
    ApiPath((name, id)): ApiPath<(String, String)>,
) -> Result<StatusCode, Problem> {
    may_override(&caller)?;
    let of_schedule = st
        .store()
        .overrides(Some(&name))
        .await?
        .iter()
        .any(|o| o.id == id);
    if !of_schedule || !st.store().delete_override(&id).await? {
        return Err(Problem::not_found(format!(
            "schedule `{}` has no override `{}` in force",
            crate::http::truncate(&name, 64),
            crate::http::truncate(&id, 64)
        )));
    }
    st.overrides().refresh(&**st.store()).await?;
    tracing::info!(override_id = %id, schedule = %name, by = %caller.name, "on-call override deleted");
    Ok(StatusCode::NO_CONTENT)
}
