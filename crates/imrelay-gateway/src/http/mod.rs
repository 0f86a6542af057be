//! The HTTP kit every endpoint shares, below the features that serve
//! endpoints: problem+json errors ([`problem`]), bearer keys ([`auth`], which
//! owns `[[api_keys]]`), extractors that turn every rejection into a problem
//! ([`extract`]), and body helpers. Handlers reach their state through
//! [`ApiContext`], so a feature's handler does not depend on the API's state.

pub mod auth;
pub mod extract;
pub mod problem;
pub mod responses;

use std::sync::Arc;

use axum::extract::rejection::BytesRejection;
use axum::http::HeaderMap;
use bytes::Bytes;

use auth::ApiKeys;
use problem::Problem;

/// What the shared extractors need from a handler's state.
pub trait ApiContext: Clone + Send + Sync + 'static {
    /// The API keys in force now.
    fn api_keys(&self) -> Arc<ApiKeys>;
    /// The largest request body accepted (`server.max_body_bytes`).
    fn max_body_bytes(&self) -> usize;
}

/// Read the body, mapping a size overflow to 413 and anything else to 400.
pub fn body_bytes(body: Result<Bytes, BytesRejection>, limit: usize) -> Result<Bytes, Problem> {
    body.map_err(|e| {
        if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            Problem::too_large(limit)
        } else {
            Problem::malformed(format!("cannot read the request body: {}", e.body_text()))
        }
    })
}

/// One header's value as text; `None` when absent. Several values or non-ASCII
/// bytes are errors naming the header.
pub fn single_header<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, Problem> {
    let mut it = headers.get_all(name).iter();
    let Some(v) = it.next() else {
        return Ok(None);
    };
    if it.next().is_some() {
        return Err(Problem::invalid(
            name,
            format!("send one `{name}` header, not several"),
        ));
    }
    v.to_str()
        .map(Some)
        .map_err(|_| Problem::invalid(name, format!("the `{name}` header must be visible ASCII")))
}

/// Parse a JSON body as `T`, with errors naming the field (prefixed by `at`).
pub fn parse_json<T: serde::de::DeserializeOwned>(bytes: &[u8], at: &str) -> Result<T, Problem> {
    // serde would read a struct from a JSON array too; requests are objects.
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first.is_some_and(|b| *b != b'{')
        && serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_ok()
    {
        return Err(Problem::new(
            axum::http::StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-field",
            "Invalid field",
            "the body must be a JSON object",
        ));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let v: T =
        serde_path_to_error::deserialize(&mut de).map_err(|e| problem::from_json_error(e, at))?;
    de.end().map_err(|e| {
        Problem::malformed(format!(
            "the body has trailing characters after the JSON value: {e}"
        ))
    })?;
    Ok(v)
}

/// An instant (ms) as RFC 3339, as the API writes times.
pub fn rfc3339(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

/// Field `field` of a request as an instant (ms): RFC 3339, else a 422
/// naming the field.
pub fn parse_time(field: &str, v: &str) -> Result<i64, problem::Problem> {
    v.trim()
        .parse::<jiff::Timestamp>()
        .map(|t| t.as_millisecond())
        .map_err(|_| {
            problem::Problem::invalid(
                field,
                format!("`{}` is not an RFC 3339 time", truncate(v, 64)),
            )
        })
}

/// `s` cut to at most `max` bytes on a char boundary, marked with `…` when cut
/// (user input echoed in an error detail stays short).
pub fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}
