//! `POST /dingtalk/{target}/send`: prometheus-webhook-dingtalk's path. The
//! target is the route `[alerting.routes.{target}]`, whose channels,
//! mentions and template `imrelay import pwd` carried over from the target.

use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use bytes::Bytes;

use super::auth::{authenticate, query_key};
use super::{query_pairs, switched_off, CompatContext};
use crate::alertmanager::handler::{accept, parse_notification, request_trace_id};
use crate::http::body_bytes;
use crate::http::problem::Problem;

/// `POST /dingtalk/{target}/send`.
pub async fn send<S: CompatContext>(
    State(st): State<S>,
    Path(target): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Problem> {
    let compat = st.compat();
    if !compat.pwd {
        return Err(switched_off(&format!("/dingtalk/{target}/send"), "pwd"));
    }
    let query = query_pairs(raw.as_deref());
    let caller = authenticate(
        &st.api_keys(),
        &headers,
        query_key(&query),
        compat.allow_unauthenticated,
    )?;
    let bytes = body_bytes(body, st.max_body_bytes())?;
    let alerting = st.alerting();
    let route = alerting.routes.get(&target).ok_or_else(|| {
        Problem::not_found(format!(
            "no target `{target}`: prometheus-webhook-dingtalk targets are the routes of \
             [alerting.routes]; add [alerting.routes.{target}] (`imrelay import pwd` writes one per target)"
        ))
        .field("target")
    })?;
    caller.require(route.channels())?;
    let n = parse_notification(&bytes)?;
    accept(&st, &alerting, route, &n, request_trace_id(&headers)).await
}
