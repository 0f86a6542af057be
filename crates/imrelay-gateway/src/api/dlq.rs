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
//! must name the channel in a filter unless it has exactly one. Another
//! channel's dead letter is answered like a missing one (404, or skipped in
//! `ids`), so ids reveal nothing.

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::{Auth, Caller, Scope};
use super::extract::{from_text, object_opt, ApiJson, ApiPath, ApiQuery};
use super::problem::Problem;
use super::AppState;
use crate::http::responses::{BodyProblems, DeadLetterNotFound, KeyProblem, StoreProblem};
use crate::store::{DeadEntry, DeadFilter, DeadSelector, DeliveryId, MessageId};

/// Largest page.
pub const MAX_PAGE: u32 = 1000;
/// Most ids in one replay/purge request.
pub const MAX_IDS: usize = 1000;

/// The query of `GET /v1/dlq`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only this channel's dead letters (required for a key with several
    /// channels but not all).
    #[param(min_length = 1)]
    pub channel: Option<String>,
    /// Only those with this platform code.
    #[param(min_length = 1)]
    pub code: Option<String>,
    /// Only this message's.
    #[param(min_length = 1)]
    pub message_id: Option<String>,
    /// Dead-lettered at or after: RFC 3339 (`2026-01-01T00:00:00Z`) or
    /// milliseconds since the epoch.
    #[param(value_type = Option<String>)]
    pub since: Option<Time>,
    /// Dead-lettered before (same forms as `since`).
    #[param(value_type = Option<String>)]
    pub until: Option<Time>,
    /// Page size, 1 to 1000 (default 100).
    #[serde(default, deserialize_with = "from_text")]
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// The `next_after` of the previous page.
    #[serde(default, deserialize_with = "from_text")]
    #[param(value_type = Option<i64>)]
    pub after: Option<DeliveryId>,
}

/// A time: RFC 3339 (`2026-01-01T00:00:00Z`) or milliseconds since the epoch,
/// as a number or as text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Time(pub i64);

impl utoipa::PartialSchema for Time {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Type};
        OneOfBuilder::new()
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                        utoipa::openapi::KnownFormat::Int64,
                    )))
                    .description(Some("Milliseconds since the epoch")),
            )
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .description(Some(
                        "RFC 3339 (`2026-01-01T00:00:00Z`), or milliseconds as text",
                    )),
            )
            .into()
    }
}

impl ToSchema for Time {
    fn name() -> std::borrow::Cow<'static, str> {
        "Time".into()
    }
}

impl<'de> Deserialize<'de> for Time {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Time;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("milliseconds since the epoch or an RFC 3339 time")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Time, E> {
                Ok(Time(v))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Time, E> {
                i64::try_from(v)
                    .map(Time)
                    .map_err(|_| E::custom("milliseconds since the epoch out of range"))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Time, E> {
                parse_time(v).map(Time).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// A page of dead letters.
#[derive(Debug, Serialize, ToSchema)]
pub struct DlqPage {
    /// Oldest first.
    pub items: Vec<DeadEntry>,
    /// Pass as `after` for the next page; null on the last page.
    #[schema(value_type = Option<i64>)]
    pub next_after: Option<DeliveryId>,
}

/// How many dead letters were queued again (with a fresh attempt count).
#[derive(Debug, Serialize, ToSchema)]
pub struct Replayed {
    pub replayed: u64,
}

/// How many dead letters were deleted.
#[derive(Debug, Serialize, ToSchema)]
pub struct Purged {
    pub purged: u64,
}

/// `GET /v1/dlq`.
#[utoipa::path(get, path = "/v1/dlq", tag = "dlq",
    params(ListQuery),
    responses(
        (status = 200, description = "A page of dead letters", body = DlqPage),
        KeyProblem,
        StoreProblem,
        (status = 403, description = "The key may not use this channel", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A query parameter is invalid (named in `field`)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub async fn list(
    State(st): State<AppState>,
    Auth(caller): Auth,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<DlqPage>, Problem> {
    let limit = match q.limit {
        None => 100,
        Some(n) if (1..=MAX_PAGE).contains(&n) => n,
        Some(_) => {
            return Err(Problem::invalid(
                "limit",
                format!("must be a number from 1 to {MAX_PAGE}"),
            ))
        }
    };
    let mut filter = DeadFilter {
        channel: q.channel.map(|v| non_empty("channel", v)).transpose()?,
        code: q.code.map(|v| non_empty("code", v)).transpose()?,
        message_id: q
            .message_id
            .map(|v| non_empty("message_id", v).map(MessageId::from))
            .transpose()?,
        since: q.since.map(|t| t.0),
        until: q.until.map(|t| t.0),
        limit,
        after: q.after,
    };
    scope_filter(&caller, &mut filter, "channel")?;
    let items = st.store.list_dead(&filter).await?;
    let next_after = if items.len() as u32 >= limit {
        items.last().map(|e| e.delivery_id)
    } else {
        None
    };
    Ok(Json(DlqPage { items, next_after }))
}

/// `GET /v1/dlq/{id}`.
#[utoipa::path(get, path = "/v1/dlq/{id}", tag = "dlq",
    params(("id" = i64, Path, description = "A dead letter's `delivery_id`")),
    responses(
        (status = 200, description = "One dead letter with its message", body = DeadEntry),
        KeyProblem,
        StoreProblem,
        DeadLetterNotFound,
    ),
    security(("bearer" = [])))]
pub async fn inspect(
    State(st): State<AppState>,
    Auth(caller): Auth,
    ApiPath(id): ApiPath<DeliveryId>,
) -> Result<Json<DeadEntry>, Problem> {
    find(&st, &caller, id).await.map(Json)
}

/// `POST /v1/dlq/{id}/replay`.
#[utoipa::path(post, path = "/v1/dlq/{id}/replay", tag = "dlq",
    params(("id" = i64, Path, description = "A dead letter's `delivery_id`")),
    responses(
        (status = 200, description = "Queued again with a fresh attempt count", body = Replayed),
        KeyProblem,
        StoreProblem,
        DeadLetterNotFound,
    ),
    security(("bearer" = [])))]
pub async fn replay_one(
    State(st): State<AppState>,
    Auth(caller): Auth,
    ApiPath(id): ApiPath<DeliveryId>,
) -> Result<Json<Replayed>, Problem> {
    let entry = find(&st, &caller, id).await?;
    let replayed = st
        .store
        .replay(&DeadSelector::Ids(vec![entry.delivery_id]))
        .await?;
    Ok(Json(Replayed { replayed }))
}

/// `DELETE /v1/dlq/{id}`.
#[utoipa::path(delete, path = "/v1/dlq/{id}", tag = "dlq",
    params(("id" = i64, Path, description = "A dead letter's `delivery_id`")),
    responses(
        (status = 200, description = "Deleted", body = Purged),
        KeyProblem,
        StoreProblem,
        DeadLetterNotFound,
    ),
    security(("bearer" = [])))]
pub async fn purge_one(
    State(st): State<AppState>,
    Auth(caller): Auth,
    ApiPath(id): ApiPath<DeliveryId>,
) -> Result<Json<Purged>, Problem> {
    let entry = find(&st, &caller, id).await?;
    let purged = st
        .store
        .purge_dead(&DeadSelector::Ids(vec![entry.delivery_id]))
        .await?;
    Ok(Json(Purged { purged }))
}

/// `POST /v1/dlq/replay`.
#[utoipa::path(post, path = "/v1/dlq/replay", tag = "dlq",
    request_body(content = SelectorBody, content_type = "application/json"),
    responses(
        (status = 200, description = "How many were queued again", body = Replayed),
        KeyProblem,
        BodyProblems,
        StoreProblem,
        (status = 403, description = "The key may not use the channel named in `filter`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A field is invalid (named in `field`)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub async fn replay_many(
    State(st): State<AppState>,
    Auth(caller): Auth,
    ApiJson { value, .. }: ApiJson<SelectorBody>,
) -> Result<Json<Replayed>, Problem> {
    let sel = selector(&st, &caller, value).await?;
    if matches!(&sel, DeadSelector::Ids(ids) if ids.is_empty()) {
        return Ok(Json(Replayed { replayed: 0 }));
    }
    let replayed = st.store.replay(&sel).await?;
    Ok(Json(Replayed { replayed }))
}

/// `POST /v1/dlq/purge`.
#[utoipa::path(post, path = "/v1/dlq/purge", tag = "dlq",
    request_body(content = SelectorBody, content_type = "application/json"),
    responses(
        (status = 200, description = "How many were deleted", body = Purged),
        KeyProblem,
        BodyProblems,
        StoreProblem,
        (status = 403, description = "The key may not use the channel named in `filter`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A field is invalid (named in `field`)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub async fn purge_many(
    State(st): State<AppState>,
    Auth(caller): Auth,
    ApiJson { value, .. }: ApiJson<SelectorBody>,
) -> Result<Json<Purged>, Problem> {
    let sel = selector(&st, &caller, value).await?;
    if matches!(&sel, DeadSelector::Ids(ids) if ids.is_empty()) {
        return Ok(Json(Purged { purged: 0 }));
    }
    let purged = st.store.purge_dead(&sel).await?;
    Ok(Json(Purged { purged }))
}

/// Dead letters to replay or purge: `{"ids": [...]}` or `{"filter": {...}}`
/// (`{"filter": {}}` selects every dead letter the key may see).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SelectorBody {
    /// Dead-letter ids (`delivery_id`), 1 to 1000. Ids that do not exist, or
    /// belong to a channel the key may not use, are skipped alike.
    #[serde(default)]
    #[schema(value_type = Option<Vec<i64>>, min_items = 1, max_items = 1000)]
    pub ids: Option<Vec<DeliveryId>>,
    #[serde(default, deserialize_with = "object_opt")]
    pub filter: Option<FilterBody>,
}

/// Which dead letters a filter selects; every member narrows it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FilterBody {
    #[serde(default)]
    pub channel: Option<String>,
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub message_id: Option<String>,
    /// Dead-lettered at or after.
    #[serde(default)]
    pub since: Option<Time>,
    /// Dead-lettered before.
    #[serde(default)]
    pub until: Option<Time>,
}

async fn selector(
    st: &AppState,
    caller: &Caller,
    b: SelectorBody,
) -> Result<DeadSelector, Problem> {
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
            if matches!(caller.scope, Scope::All) {
                return Ok(DeadSelector::Ids(ids));
            }
            // Ids of other channels' dead letters are dropped like ids that do
            // not exist (neither is counted), so the answer reveals nothing.
            let mut mine = Vec::with_capacity(ids.len());
            for id in ids {
                if let Some(e) = st.store.get_dead(id).await? {
                    if caller.may_use(&e.channel) {
                        mine.push(id);
                    }
                }
            }
            Ok(DeadSelector::Ids(mine))
        }
        (None, Some(f)) => {
            let mut filter = DeadFilter {
                channel: f.channel,
                code: f.code,
                message_id: f.message_id.map(MessageId::from),
                since: f.since.map(|t| t.0),
                until: f.until.map(|t| t.0),
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

/// A dead letter of another channel answers exactly like a missing one, so a
/// key cannot learn which ids exist.
async fn find(st: &AppState, caller: &Caller, id: DeliveryId) -> Result<DeadEntry, Problem> {
    match st.store.get_dead(id).await? {
        Some(entry) if caller.may_use(&entry.channel) => Ok(entry),
        _ => Err(Problem::not_found(format!("no dead letter {id}"))),
    }
}

fn non_empty(field: &str, v: String) -> Result<String, Problem> {
    if v.is_empty() {
        Err(Problem::invalid(field, "must not be empty"))
    } else {
        Ok(v)
    }
}

/// Text that is no time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{0}` is not a time; write RFC 3339 (2026-01-31T08:00:00Z) or milliseconds since the epoch"
)]
pub struct NotATime(String);

/// RFC 3339 (`2026-01-01T00:00:00Z`) or milliseconds since the epoch.
pub fn parse_time(v: &str) -> Result<i64, NotATime> {
    if let Ok(ms) = v.parse::<i64>() {
        return Ok(ms);
    }
    let t = humantime::parse_rfc3339_weak(v.trim())
        .map_err(|_| NotATime(crate::http::truncate(v, 64)))?;
    Ok(t.duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn since(v: &str) -> Result<i64, Problem> {
        let q = format!(
            "since={}",
            url::form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>()
        );
        super::super::extract::parse_query::<ListQuery>(&q).map(|q| q.since.unwrap().0)
    }

    #[test]
    fn times_parse_both_ways() {
        assert_eq!(since("1700000000000").unwrap(), 1_700_000_000_000);
        assert_eq!(since("2023-11-14T22:13:20Z").unwrap(), 1_700_000_000_000);
        let p = since("yesterday").unwrap_err();
        assert_eq!(
            (p.status.as_u16(), p.field.as_deref()),
            (422, Some("since"))
        );
        let f: FilterBody =
            serde_json::from_str(r#"{"since": 1700000000000, "until": "2023-11-14T22:13:20Z"}"#)
                .unwrap();
        assert_eq!(
            (f.since, f.until),
            (Some(Time(1_700_000_000_000)), Some(Time(1_700_000_000_000)))
        );
    }

    #[test]
    fn query_errors_name_the_parameter() {
        let field = |q: &str| {
            super::super::extract::parse_query::<ListQuery>(q)
                .unwrap_err()
                .field
        };
        assert_eq!(field("colour=red").as_deref(), Some("colour"));
        assert_eq!(field("limit=x").as_deref(), Some("limit"));
        assert_eq!(field("channel=a&channel=b").as_deref(), Some("channel"));
        let q =
            super::super::extract::parse_query::<ListQuery>("limit=5&after=7&channel=a").unwrap();
        assert_eq!(
            (q.limit, q.after, q.channel.as_deref()),
            (Some(5), Some(DeliveryId::new(7)), Some("a"))
        );
    }
}
