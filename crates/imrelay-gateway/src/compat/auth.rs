//! Who may use the compatibility endpoints: an API key, from the
//! `Authorization` header or, for Alertmanager setups that cannot send
//! headers, from `?key=` / `?token=` in the URL; or anyone, when the config
//! says `allow_unauthenticated` (as the old tools did).

use axum::http::{header, HeaderMap, HeaderValue};

use crate::http::auth::{ApiKeys, Caller};
use crate::http::problem::Problem;

/// The caller of a compatibility endpoint.
#[derive(Debug, Clone)]
pub enum CompatCaller {
    Key(std::sync::Arc<Caller>),
    /// `allow_unauthenticated = true`: every configured channel.
    Anyone,
}

impl CompatCaller {
    /// 403 unless the caller may send to every channel in `channels`.
    pub fn require<'a>(&self, channels: impl IntoIterator<Item = &'a str>) -> Result<(), Problem> {
        match self {
            CompatCaller::Anyone => Ok(()),
            CompatCaller::Key(c) => channels.into_iter().try_for_each(|ch| c.require(ch)),
        }
    }
}

/// The URL's `key` or `token` parameter.
pub fn query_key(query: &[(String, String)]) -> Option<&str> {
    query
        .iter()
        .find(|(k, _)| k == "key" || k == "token")
        .map(|(_, v)| v.as_str())
}

/// Authenticates by header, else by URL key (compared as the header's, in
/// constant time), else lets anyone in when `open`.
pub fn authenticate(
    keys: &ApiKeys,
    headers: &HeaderMap,
    url_key: Option<&str>,
    open: bool,
) -> Result<CompatCaller, Problem> {
    if headers.contains_key(header::AUTHORIZATION) {
        return keys.authenticate(headers).map(CompatCaller::Key);
    }
    if let Some(key) = url_key {
        let mut as_header = HeaderMap::new();
        let value = HeaderValue::from_str(&format!("Bearer {key}")).map_err(|_| {
            Problem::unauthorized("the `key` in the URL is not a valid API key").field("key")
        })?;
        as_header.insert(header::AUTHORIZATION, value);
        return keys
            .authenticate(&as_header)
            .map(CompatCaller::Key)
            .map_err(|p| p.field("key"));
    }
    if open {
        return Ok(CompatCaller::Anyone);
    }
    Err(Problem::unauthorized(
        "send an API key: `Authorization: Bearer KEY`, or `?key=KEY` in the webhook URL \
         (or set `[compat] allow_unauthenticated = true`, as the old tool had no authentication)",
    )
    .field("Authorization"))
}
