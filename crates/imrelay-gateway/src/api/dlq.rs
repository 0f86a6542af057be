//! The dead-letter queue: list (filter by channel, code, time), inspect,
//! replay one or many, purge.
//!
//! - `GET /v1/dlq?channel=alerts&code=310000&since=2026-01-01T00:00:00Z&until=...&limit=100&after=<id>`
//! - `GET /v1/dlq/{id}`, `DELETE /v1/dlq/{id}`, `POST /v1/dlq/{id}/replay`
//! - `POST /v1/dlq/replay` and `POST /v1/dlq/purge` with `{"ids": [1, 2]}` or
//!   `{"filter": {"channel": "alerts", "code": "310000", "since": ..., "until": ...}}`
//!
//! Times are RFC 3339 (`2026-01-01T00:00:00Z`) or milliseconds since the epoch.
//! A key limited to some channels sees and changes only their dead letters; it
//! must name the channel in a filter unless it has exactly one.

use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::{Auth, Caller, Scope};
use super::problem::Problem;
use super::{body_bytes, parse_json, AppState};
use crate::store::{DeadEntry, DeadFilter, DeadSelector, DeliveryId};

/// Largest page.
pub const MAX_PAGE: u32 = 1000;
/// Most ids in one replay/purge request.
pub const MAX_IDS: usize = 1000;

/// `GET /v1/dlq`.
pub async fn list(
    State(st): State<AppState>,
    Auth(caller): Auth,
    RawQuery(q): RawQuery,
) -> Result<Response, Problem> {
    let mut filter = DeadFilter::default();
    for (k, v) in url::form_urlencoded::parse(q.unwrap_or_default().as_bytes()) {
        let (k, v) = (k.into_owned(), v.into_owned());
        match k.as_str() {
            "channel" => filter.channel = Some(non_empty(&k, v)?),
            "code" => filter.code = Some(non_empty(&k, v)?),
            "message_id" => filter.message_id = Some(non_empty(&k, v)?),
            "since" => filter.since = Some(parse_time(&k, &v)?),
            "until" => filter.until = Some(parse_time(&k, &v)?),
            "limit" => {
                let n: u32 = v
                    .parse()
                    .ok()
                    .filter(|n| (1..=MAX_PAGE).contains(n))
                    .ok_or_else(|| Problem::invalid("limit", format!("must be a number from 1 to {MAX_PAGE}")))?;
                filter.limit = n;
            }
            "after" => {
                filter.after = Some(
                    v.parse()
                        .map_err(|_| Problem::invalid("after", "must be a dead-letter id (a number) from `next_after`"))?,
                )
            }
            other => {
                return Err(Problem::invalid(
                    other,
                    format!("unknown query parameter `{other}`; use channel, code, message_id, since, until, limit, after"),
                ))
            }
        }
    }
    scope_filter(&caller, &mut filter, "channel")?;
    let limit = if filter.limit == 0 { 100 } else { filter.limit };
    filter.limit = limit;
    let items = st.store.list_dead(&filter).await?;
    let next_after = if items.len() as u32 >= limit {
        items.last().map(|e| e.delivery_id)
    } else {
        None
    };
    Ok(Json(json!({"items": items, "next_after": next_after})).into_response())
}

/// `GET /v1/dlq/{id}`.
pub async fn inspect(
    State(st): State<AppState>,
    Auth(caller): Auth,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, Problem> {
    let entry = find(&st, &caller, id).await?;
    Ok(Json(entry).into_response())
}

/// `POST /v1/dlq/{id}/replay`.
pub async fn replay_one(
    State(st): State<AppState>,
    Auth(caller): Auth,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, Problem> {
    let entry = find(&st, &caller, id).await?;
    let n = st
        .store
        .replay(&DeadSelector::Ids(vec![entry.delivery_id]))
        .await?;
    Ok(Json(json!({"replayed": n})).into_response())
}

/// `DELETE /v1/dlq/{id}`.
pub async fn purge_one(
    State(st): State<AppState>,
    Auth(caller): Auth,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, Problem> {
    let entry = find(&st, &caller, id).await?;
    let n = st
        .store
        .purge_dead(&DeadSelector::Ids(vec![entry.delivery_id]))
        .await?;
    Ok(Json(json!({"purged": n})).into_response())
}

/// `POST /v1/dlq/replay`.
pub async fn replay_many(
    State(st): State<AppState>,
    Auth(caller): Auth,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Problem> {
    let sel = selector(&st, &caller, body).await?;
    let n = st.store.replay(&sel).await?;
    Ok(Json(json!({"replayed": n})).into_response())
}

/// `POST /v1/dlq/purge`.
pub async fn purge_many(
    State(st): State<AppState>,
    Auth(caller): Auth,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Problem> {
    let sel = selector(&st, &caller, body).await?;
    let n = st.store.purge_dead(&sel).await?;
    Ok(Json(json!({"purged": n})).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SelectorBody {
    #[serde(default)]
    ids: Option<Vec<DeliveryId>>,
    #[serde(default)]
    filter: Option<FilterBody>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FilterBody {
    #[serde(default)]
    channel: Option<String>,
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    message_id: Option<String>,
    #[serde(default)]
    since: Option<Value>,
    #[serde(default)]
    until: Option<Value>,
}

async fn selector(
    st: &AppState,
    caller: &Caller,
    body: Result<Bytes, BytesRejection>,
) -> Result<DeadSelector, Problem> {
    let bytes = body_bytes(body, st.limits.max_body_bytes)?;
    let b: SelectorBody = parse_json(&bytes, "")?;
    match (b.ids, b.filter) {
        (Some(_), Some(_)) => Err(Problem::invalid("filter", "give either `ids` or `filter`, not both")),
        (None, None) => Err(Problem::invalid(
            "ids",
            "missing: give `ids` (dead-letter ids) or `filter` ({} selects every dead letter you may see)",
        )),
        (Some(ids), None) => {
            if ids.is_empty() {
                return Err(Problem::invalid("ids", "must hold at least one id"));
            }
            if ids.len() > MAX_IDS {
                return Err(Problem::invalid("ids", format!("at most {MAX_IDS} ids per request")));
            }
            if !matches!(caller.scope, Scope::All) {
                for (i, id) in ids.iter().enumerate() {
                    if let Some(e) = st.store.get_dead(*id).await? {
                        if !caller.may_use(&e.channel) {
                            return Err(caller.require(&e.channel).unwrap_err().field(format!("ids[{i}]")));
                        }
                    }
                }
            }
            Ok(DeadSelector::Ids(ids))
        }
        (None, Some(f)) => {
            let mut filter = DeadFilter {
                channel: f.channel,
                code: f.code,
                message_id: f.message_id,
                since: f.since.map(|v| time_value("filter.since", &v)).transpose()?,
                until: f.until.map(|v| time_value("filter.until", &v)).transpose()?,
                ..Default::default()
            };
            scope_filter(caller, &mut filter, "filter.channel")?;
            Ok(DeadSelector::Filter(filter))
        }
    }
}

/// Restrict a filter to what the caller may see.
fn scope_filter(caller: &Caller, filter: &mut DeadFilter, field: &str) -> Result<(), Problem> {
    match (&filter.channel, &caller.scope) {
        (Some(c), _) => caller.require(c).map_err(|p| p.field(field)),
        (None, Scope::All) => Ok(()),
        (None, Scope::Channels(_)) => match caller.sole_channel() {
            Some(c) => {
                filter.channel = Some(c.to_string());
                Ok(())
            }
            None => Err(Problem::invalid(
                field,
                format!(
                    "API key `{}` may use several channels: name one",
                    caller.name
                ),
            )),
        },
    }
}

async fn find(
    st: &AppState,
    caller: &Caller,
    id: Result<Path<String>, PathRejection>,
) -> Result<DeadEntry, Problem> {
    let raw = id.map(|Path(s)| s).unwrap_or_default();
    let id: DeliveryId = raw.parse().map_err(|_| {
        Problem::not_found(format!(
            "no dead letter `{}`",
            super::messages::truncate(&raw, 64)
        ))
    })?;
    let entry = st
        .store
        .get_dead(id)
        .await?
        .ok_or_else(|| Problem::not_found(format!("no dead letter {id}")))?;
    caller.require(&entry.channel)?;
    Ok(entry)
}

fn non_empty(field: &str, v: String) -> Result<String, Problem> {
    if v.is_empty() {
        Err(Problem::invalid(field, "must not be empty"))
    } else {
        Ok(v)
    }
}

fn time_value(field: &str, v: &Value) -> Result<i64, Problem> {
    match v {
        Value::Number(n) => n.as_i64().ok_or_else(|| {
            Problem::invalid(
                field,
                "must be milliseconds since the epoch or an RFC 3339 time",
            )
        }),
        Value::String(s) => parse_time(field, s),
        _ => Err(Problem::invalid(
            field,
            "must be milliseconds since the epoch or an RFC 3339 time",
        )),
    }
}

/// RFC 3339 (`2026-01-01T00:00:00Z`) or milliseconds since the epoch.
pub fn parse_time(field: &str, v: &str) -> Result<i64, Problem> {
    if let Ok(ms) = v.parse::<i64>() {
        return Ok(ms);
    }
    let t = humantime::parse_rfc3339_weak(v.trim()).map_err(|_| {
        Problem::invalid(
            field,
            format!("`{}` is not a time; write RFC 3339 (2026-01-31T08:00:00Z) or milliseconds since the epoch", super::messages::truncate(v, 64)),
        )
    })?;
    Ok(t.duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_both_ways() {
        assert_eq!(
            parse_time("since", "1700000000000").unwrap(),
            1_700_000_000_000
        );
        assert_eq!(
            parse_time("since", "2023-11-14T22:13:20Z").unwrap(),
            1_700_000_000_000
        );
        let p = parse_time("since", "yesterday").unwrap_err();
        assert_eq!(
            (p.status.as_u16(), p.field.as_deref()),
            (422, Some("since"))
        );
    }
}
