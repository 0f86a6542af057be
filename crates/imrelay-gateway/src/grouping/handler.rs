//! `GET /v1/groups/{id}`: a message group as it stands (the id is in each
//! folded delivery's `group` in `GET /v1/messages/{id}`): its channel and
//! labels, how many messages it took, how many wait for its next
//! notification and when that goes, and its last notification.

use std::sync::Arc;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use utoipa::ToSchema;

use crate::http::auth::Auth;
use crate::http::extract::ApiPath;
use crate::http::problem::Problem;
use crate::http::responses::{KeyProblem, StoreProblem};
use crate::http::ApiContext;
use crate::store::{Labels, Store};

/// What the group endpoint needs from the gateway's state.
pub trait GroupsContext: ApiContext {
    fn store(&self) -> &Arc<dyn Store>;
}

/// The routes, for the API router to merge.
pub fn router<S: GroupsContext>() -> Router<S> {
    Router::new().route("/v1/groups/{id}", get(one::<S>))
}

/// A message group. Times are milliseconds since the epoch.
#[derive(Debug, Serialize, ToSchema)]
pub struct GroupView {
    pub id: String,
    pub channel: String,
    /// The grouping labels and their values (`quiet_until` for a channel's
    /// quiet-hours digest).
    pub labels: Labels,
    /// Every message it took.
    pub total: i64,
    /// Messages waiting for its next notification.
    pub pending: i64,
    /// When the first of them came.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pending_since: Option<i64>,
    /// When the next notification goes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub due_at: Option<i64>,
    /// Notifications sent.
    pub sends: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sent_at: Option<i64>,
    /// The last notification's message id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sent_message: Option<String>,
    /// The newest message it took.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latest: Option<String>,
}

/// `GET /v1/groups/{id}`.
#[utoipa::path(get, path = "/v1/groups/{id}", tag = "messages",
    params(("id" = String, Path, description = "The group id (a folded delivery's `group`)")),
    responses(
        (status = 200, description = "The group", body = GroupView),
        KeyProblem,
        (status = 404, description = "No such group on a channel this key may use", body = Problem, content_type = "application/problem+json"),
        StoreProblem,
    ),
    security(("bearer" = [])))]
pub async fn one<S: GroupsContext>(
    State(st): State<S>,
    Auth(caller): Auth,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<GroupView>, Problem> {
    let not_found = || Problem::not_found(format!("no group `{}`", crate::http::truncate(&id, 64)));
    // A group of a channel the key may not use does not exist for it.
    let g = st
        .store()
        .group(&id)
        .await?
        .filter(|g| caller.may_use(&g.channel))
        .ok_or_else(not_found)?;
    Ok(Json(GroupView {
        id: g.id,
        channel: g.channel,
        labels: g.labels,
        total: g.total,
        pending: g.pending,
        pending_since: g.pending_since,
        due_at: g.due_at,
        sends: g.sends,
        sent_at: g.sent_at,
        sent_message: g.sent_message.map(|m| m.to_string()),
        latest: g.latest.map(|m| m.to_string()),
    }))
}
